#!/bin/sh
# An AEP-style segment export: report the exported profile counters as progress; the AEP
# dialect renders them as the job's metrics.
set -e
exported=0
for batch in 1 2 3; do
    sleep 1
    exported=$((exported + 1000))
    echo "##jobstore progress {\"totalExportedProfileCounter\": $exported, \"exportedProfileByNamespaceCounter\": {\"email\": $exported}}"
done
echo "##jobstore result {\"exported\": $exported}"
