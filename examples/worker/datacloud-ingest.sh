#!/bin/sh
# A Data Cloud-style bulk ingest: read the uploaded CSV batches on stdin (run the worker with
# --stdin data), count the records, and report them as numberRecordsProcessed/Failed.
# The header line of each upsert batch is not a record.
processed=0
failed=0
while IFS= read -r line; do
    case "$line" in
        "") ;;
        id,*|Id,*) ;;                       # a header row
        *,*) processed=$((processed + 1)) ;;
        *) failed=$((failed + 1)) ;;
    esac
    if [ $((processed % 1000)) -eq 0 ]; then
        echo "##jobstore progress {\"numberRecordsProcessed\": $processed, \"numberRecordsFailed\": $failed}"
    fi
done
echo "##jobstore progress {\"numberRecordsProcessed\": $processed, \"numberRecordsFailed\": $failed}"
if [ "$failed" -gt 0 ] && [ "$processed" -eq 0 ]; then
    echo "##jobstore fatal no record could be read"
    exit 1
fi
echo "##jobstore result {\"numberRecordsProcessed\": $processed}"
