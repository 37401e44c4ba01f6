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
- a Bulk API 2.0 ingest job (kind `ingest` with `COMPAT_API=bulk2` from the worker's kind
  `env`; its uploaded CSV on stdin, comma-separated): loads each record as Salesforce would,
  per record. A record whose `outcome` column is `fail` (or, without that column, whose `Id`
  is `fail`) fails alone and goes to `results/failed` with its `sf__Error`; a record whose
  `outcome` is `skip` stays unprocessed (`results/unprocessed`); the others go to
  `results/successful` with an `sf__Id` and `sf__Created`. The job completes (JobComplete,
  the failed records counted), unless a record's `outcome` is `fatal`: then the whole job
  fails. Counters as the vendor keeps them: `numberRecordsProcessed` counts the successful
  and the failed records.
- a Bulk API 2.0 query job (kind `query`, its payload on stdin): answers
  `SELECT f1, f2 FROM Object [LIMIT n]` with n records (3 by default) of the selected fields,
  written as `query/results` with the job's column delimiter and line ending; a query of the
  object `Fail` fails the job.

Outputs are files under `$JOBSTORE_OUTPUT_DIR` (`results/successful`, `query/results`, ...),
which `jobstore worker` uploads as the job's outputs. A failure is reported fatal (no
retry), with its reason as the job's error.
"""

import csv
import io
import json
import os
import re
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


def output(name: str, text: str) -> None:
    """Writes the job's output `name` (uploaded by `jobstore worker` once this exits)."""
    path = os.path.join(os.environ["JOBSTORE_OUTPUT_DIR"], *name.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as file:
        file.write(text)


def csv_text(header: list, rows: list, delimiter: str = ",", line_ending: str = "\n") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=line_ending,
                        quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def bulk2_ingest(stdin: str) -> None:
    reader = csv.DictReader(io.StringIO(stdin))
    fields = list(reader.fieldnames or [])
    successful, failed, unprocessed = [], [], []
    for number, record in enumerate(reader, start=1):
        outcome = record.get("outcome", "fail" if record.get("Id") == "fail" else "ok")
        values = [record.get(field, "") for field in fields]
        if outcome == "fatal":
            fail(f"record {number} asked the whole job to fail")
        elif outcome == "fail":
            failed.append(["", f"FIELD_CUSTOM_VALIDATION_EXCEPTION:record {number} asked to fail:--"]
                          + values)
        elif outcome == "skip":
            unprocessed.append(values)
        else:
            record_id = record.get("Id") or f"001{number:015d}"
            successful.append([record_id, "true" if not record.get("Id") else "false"] + values)
    output("results/successful", csv_text(["sf__Id", "sf__Created"] + fields, successful))
    output("results/failed", csv_text(["sf__Id", "sf__Error"] + fields, failed))
    if unprocessed:
        output("results/unprocessed", csv_text(fields, unprocessed))
    report(
        "progress",
        {"numberRecordsProcessed": len(successful) + len(failed),
         "numberRecordsFailed": len(failed)},
    )
    report("result", {"successful": len(successful), "failed": len(failed),
                      "unprocessed": len(unprocessed)})


DELIMITERS = {"COMMA": ",", "SEMICOLON": ";", "PIPE": "|", "TAB": "\t", "CARET": "^",
              "BACKQUOTE": "`"}


def bulk2_query(stdin: str) -> None:
    payload = json.loads(stdin)
    soql = payload.get("query", "")
    match = re.match(r"\s*SELECT\s+(.+?)\s+FROM\s+(\w+)(?:.*?\bLIMIT\s+(\d+))?", soql,
                     re.IGNORECASE | re.DOTALL)
    if not match:
        fail(f"not a query this worker answers: {soql}")
    fields = [field.strip() for field in match.group(1).split(",")]
    if match.group(2) == "Fail":
        fail("the object Fail cannot be queried")
    count = int(match.group(3) or 3)
    rows = [[f"001{i:015d}" if field == "Id" else f"{field} {i}, \"quoted\"" for field in fields]
            for i in range(1, count + 1)]
    delimiter = DELIMITERS[payload.get("columnDelimiter", "COMMA")]
    line_ending = "\r\n" if payload.get("lineEnding") == "CRLF" else "\n"
    output("query/results", csv_text(fields, rows, delimiter, line_ending))
    report("progress", {"numberRecordsProcessed": count, "numberRecordsFailed": 0})
    report("result", {"records": count})


def main() -> None:
    kind = os.environ.get("JOBSTORE_JOB_KIND", "")
    stdin = sys.stdin.read()
    if os.environ.get("COMPAT_API") == "bulk2":
        if kind == "query":
            bulk2_query(stdin)
        else:
            bulk2_ingest(stdin)
    elif kind == "ingest":
        ingest(stdin)
    elif kind == "segment-export":
        aep(stdin)
    else:
        ocapi(stdin)


if __name__ == "__main__":
    main()
