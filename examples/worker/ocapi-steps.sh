#!/bin/sh
# An OCAPI-style job definition with steps: report each step's start and end.
# Define it once:  curl -X PUT localhost:8080/v1/definitions/nightly-export -d '{"steps": [
#   {"step_id": "export-catalog", "step_type_id": "ExportCatalog"},
#   {"step_id": "transfer", "step_type_id": "TransferFiles"}]}'
# Run it:          curl -X POST localhost:8080/v1/definitions/nightly-export/executions
set -e
echo "##jobstore step export-catalog start"
echo "exporting the catalog for job $JOBSTORE_JOB_ID (attempt $JOBSTORE_ATTEMPT)"
sleep 1
echo "##jobstore step export-catalog ok OK"
echo "##jobstore step transfer start"
if ! sleep 1; then
    echo "##jobstore step transfer error ERROR transfer failed"
    exit 1
fi
echo "##jobstore step transfer ok OK"
