#!/usr/bin/env python3
"""simple-salesforce 1.12.10, unmodified, against the daemon's Bulk API 2.0 over HTTPS.

`sf.bulk2.Account.insert`, `upsert` and `delete` (each creates a job, uploads the CSV, closes
it, polls it to JobComplete and reads the counters), `get_successful_records`,
`get_failed_records` and `get_unprocessed_records` of those jobs, `sf.bulk2.Account.query`
across several pages (`maxRecords`, following `Sforce-Locator`), a job the worker fails
(`insert` raises with the job's `errorMessage`) and `delete_job`.

The jobs are run by `jobstore worker` with `job.py` (`COMPAT_API=bulk2`): a record whose
`outcome` is `fail` fails alone, `skip` stays unprocessed, `fatal` fails the whole job; a
query answers `LIMIT n` records.

simple-salesforce builds `https://` URLs from the instance and sends the session id as
`Authorization: Bearer`; the daemon's certificate is trusted through REQUESTS_CA_BUNDLE.
One bug of the client's own is worked around, as docs/dialect-bulk2.md ("Clients") says:
`_Bulk2Client.delete_job` answers `result.json()` of the vendor's empty `204 No Content`
and raises; the driver checks the 204 and the job's absence instead of that return value.

Environment: COMPAT_RESULTS, COMPAT_HOST (localhost:PORT), COMPAT_TOKEN, REQUESTS_CA_BUNDLE.
"""

import csv
import io
import os
import sys
import time

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceOperationError

CLIENT = "simple-salesforce 1.12.10"
failures = 0


def record(call: str, ok: bool, detail: str) -> None:
    """Appends one row to the suite's table."""
    global failures
    detail = " ".join(str(detail).split())
    with open(os.environ["COMPAT_RESULTS"], "a", encoding="utf-8") as rows:
        rows.write(f"{CLIENT}\t{call}\t{'ok' if ok else 'FAILED'}\t{detail}\n")
    if not ok:
        failures += 1


def check(call: str, fn):
    """Runs `fn`: what it answers is the row's detail; an exception fails the row."""
    started = time.monotonic()
    try:
        detail, value = fn()
    except Exception as err:  # the row says what went wrong
        record(call, False, f"{type(err).__name__}: {err}")
        return None
    record(call, True, f"{detail} ({time.monotonic() - started:.1f} s)")
    return value


class Expectation(Exception):
    """What a call answered that it should not have."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise Expectation(message)


def rows(text: str) -> list:
    return list(csv.DictReader(io.StringIO(text)))


def main() -> int:
    host, token = os.environ["COMPAT_HOST"], os.environ["COMPAT_TOKEN"]
    sf = Salesforce(instance_url=f"https://{host}", session_id=token, version="59.0")
    account = sf.bulk2.Account

    records = [
        {"Name": "Acme", "outcome": "ok"},
        {"Name": "Globex, \"Global\"", "outcome": "ok"},
        {"Name": "Initech", "outcome": "fail"},
        {"Name": "Umbrella", "outcome": "skip"},
        {"Name": "Hooli\nWest", "outcome": "ok"},
    ]

    def insert():
        results = account.insert(records=records, wait=0.2)
        expect(len(results) == 1, f"one job: {results}")
        result = results[0]
        expect(result["numberRecordsProcessed"] == 4 and result["numberRecordsFailed"] == 1
               and result["numberRecordsTotal"] == 5, str(result))
        return (f"job {result['job_id']} JobComplete, processed 4, failed 1 of 5",
                result["job_id"])

    job_id = check("bulk2.Account.insert(records=...)", insert)

    if job_id:
        def successful():
            found = rows(account.get_successful_records(job_id))
            names = [row["Name"] for row in found]
            expect(names == ["Acme", "Globex, \"Global\"", "Hooli\nWest"], str(found))
            expect(all(row["sf__Id"] and row["sf__Created"] == "true" for row in found),
                   str(found))
            return f"{len(found)} records with sf__Id, sf__Created", None

        def failed():
            found = rows(account.get_failed_records(job_id))
            expect([row["Name"] for row in found] == ["Initech"], str(found))
            expect(found[0]["sf__Error"].startswith("FIELD_CUSTOM_VALIDATION_EXCEPTION"),
                   str(found))
            return f"1 record, sf__Error {found[0]['sf__Error'].split(':')[0]}", None

        def unprocessed():
            found = rows(account.get_unprocessed_records(job_id))
            expect([row["Name"] for row in found] == ["Umbrella"], str(found))
            return "1 record (GET .../unprocessedRecords)", None

        check("bulk2.Account.get_successful_records", successful)
        check("bulk2.Account.get_failed_records", failed)
        check("bulk2.Account.get_unprocessed_records", unprocessed)

    def upsert():
        upserted = [{"Ext__c": f"E{i}", "Name": f"Upserted {i}", "outcome": "ok"}
                    for i in range(1, 301)]
        results = account.upsert(records=upserted, external_id_field="Ext__c", wait=0.2)
        result = results[0]
        expect(result["numberRecordsProcessed"] == 300 and result["numberRecordsFailed"] == 0,
               str(result))
        job = sf.session.get(f"https://{host}/services/data/v59.0/jobs/ingest/"
                             f"{result['job_id']}",
                             headers={"Authorization": f"Bearer {token}"}).json()
        expect(job["operation"] == "upsert" and job["externalIdFieldName"] == "Ext__c",
               str(job))
        return f"job {result['job_id']} upsert on Ext__c, processed 300", None

    check("bulk2.Account.upsert(records=..., external_id_field=Ext__c)", upsert)

    def delete():
        ids = [{"Id": "001000000000000001"}, {"Id": "fail"}, {"Id": "001000000000000003"}]
        results = account.delete(records=ids, wait=0.2)
        result = results[0]
        expect(result["numberRecordsProcessed"] == 3 and result["numberRecordsFailed"] == 1,
               str(result))
        failed = rows(account.get_failed_records(result["job_id"]))
        expect([row["Id"] for row in failed] == ["fail"], str(failed))
        return f"job {result['job_id']} delete, processed 3, failed 1", result["job_id"]

    deleted_job = check("bulk2.Account.delete(records=[{Id}])", delete)

    def fails():
        try:
            account.insert(records=[{"Name": "Doomed", "outcome": "fatal"}], wait=0.2)
        except SalesforceOperationError as err:
            expect("record 1 asked the whole job to fail" in str(err), str(err))
            return f"raises: {err}", None
        raise Expectation("insert of a failing job returned")

    check("bulk2.Account.insert of a job that fails (raises)", fails)

    def query():
        pages = list(account.query("SELECT Id, Name FROM Account LIMIT 25", max_records=10,
                                   wait=0.2))
        expect(len(pages) == 3, f"{len(pages)} pages")
        found = [row for page in pages for row in rows(page)]
        expect(len(found) == 25, f"{len(found)} records")
        expect(found[0] == {"Id": "001000000000000001", "Name": "Name 1, \"quoted\""},
               str(found[0]))
        expect(len({row["Id"] for row in found}) == 25, "records repeated")
        return "25 records in pages of 10, 10, 5 through Sforce-Locator", None

    check("bulk2.Account.query(max_records=10)", query)

    def query_all():
        pages = list(account.query_all("SELECT Id FROM Account LIMIT 4", wait=0.2))
        found = [row for page in pages for row in rows(page)]
        expect(len(pages) == 1 and len(found) == 4, f"{len(pages)} pages, {len(found)}")
        return "4 records in one page", None

    check("bulk2.Account.query_all", query_all)

    if deleted_job:
        def delete_job():
            client = sf.bulk2.Account._client
            try:
                client.delete_job(deleted_job, is_query=False)
                raise Expectation("delete_job returned: the 204 had a body to decode")
            except requests.exceptions.JSONDecodeError:
                pass  # the client's .json() of the empty 204, as documented
            gone = sf.session.get(
                f"https://{host}/services/data/v59.0/jobs/ingest/{deleted_job}",
                headers={"Authorization": f"Bearer {token}"})
            expect(gone.status_code == 404, f"after delete: {gone.status_code}")
            return "204, then 404 (its .json() of the 204 raises: a client bug)", None

        check("bulk2 _client.delete_job", delete_job)

    def refused():
        bad = Salesforce(instance_url=f"https://{host}", session_id="not-a-token",
                         version="59.0")
        try:
            bad.bulk2.Account.insert(records=[{"Name": "x"}], wait=0.2)
        except SalesforceError as err:
            expect(err.status == 401, f"status {err.status}")
            return f"{type(err).__name__} {err.status}", None
        raise Expectation("a wrong token was accepted")

    check("a wrong session id is refused", refused)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
