#!/usr/bin/env python3
"""The command `jobstore worker` runs for every job of the compatibility suite.

It succeeds or fails by the job's input, read on stdin:

- an OCAPI execution (kind: the job definition's id): its payload's `parameters`; the
  parameter `outcome` with the value `fail` fails it. The definition's one step, `run`, is
  reported started and then finished ok or in error.
- an AEP export job (kind `segment-export`): its payload, the export request; a
  `destination.datasetId` of `fail` fails it. Success reports `totalExportedProfileCounter`.
- a Data Cloud ingest job (kind `ingest`, the worker's `stdin = "data"`): its uploaded CSV; a
  record whose `outcome` column is `fail` fails it. The records are counted and reported as
  `numberRecordsProcessed` / `numberRecordsFailed`.

A failure is reported fatal (no retry), with its reason as the job's error.
"""

import csv
import io
import json
import os
import sys


def report(kind: str, value: object) -> None:
    """One line of the worker's line protocol."""
    text = value if isinstance(value, str) else json.dumps(value)
    print(f"##jobstore {kind} {text}", flush=True)


def fail(message: str) -> None:
    """Fails the job without retry, `message` as its error."""
    report("fatal", message)
    sys.exit(1)


def ocapi(stdin: str) -> None:
    payload = json.loads(stdin or "{}") or {}
    parameters = {p.get("name"): p.get("value") for p in payload.get("parameters") or []}
    report("step", "run start")
    if parameters.get("outcome") == "fail":
        report("step", "run error ERROR the parameter outcome asked to fail")
        fail("the parameter outcome asked to fail")
    report("step", "run ok OK ran")
    report("result", {"parameters": parameters})


def aep(stdin: str) -> None:
    payload = json.loads(stdin)
    dataset = payload.get("destination", {}).get("datasetId")
    if dataset == "fail":
        fail("the export to dataset fail was asked to fail")
    report("progress", {"totalExportedProfileCounter": 3})
    report("result", {"datasetId": dataset})


def ingest(stdin: str) -> None:
    records = list(csv.DictReader(io.StringIO(stdin)))
    failed = [r for r in records if r.get("outcome") == "fail"]
    report(
        "progress",
        {"numberRecordsProcessed": len(records) - len(failed), "numberRecordsFailed": len(failed)},
    )
    if failed:
        fail(f"{len(failed)} of {len(records)} records asked to fail")
    report("result", {"records": len(records)})


def main() -> None:
    kind = os.environ.get("JOBSTORE_JOB_KIND", "")
    stdin = sys.stdin.read()
    if kind == "ingest":
        ingest(stdin)
    elif kind == "segment-export":
        aep(stdin)
    else:
        ocapi(stdin)


if __name__ == "__main__":
    main()
