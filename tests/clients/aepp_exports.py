#!/usr/bin/env python3
"""aepp 0.6.0, unmodified, against the daemon's AEP segment export jobs over HTTPS.

`Segmentation.createExport`, `getExport` (polled to SUCCEEDED and to FAILED) and
`getExportJobs` (its default `limit=1000`, following `link.next`) across more than one page:
1001 jobs of a second tenant, created with `createExport` too, which no worker claims.

aepp is configured as its `support` environment does for a given endpoint and access token
(no IMS exchange). Two of its own bugs are worked around here, as docs/dialect-aep.md
("Clients") says:

- `configure(environment="support", accesstoken=...)` leaves out the `connectionType` key
  that `AdobeRequest` then reads (KeyError): the configuration handed to `Segmentation` is
  aepp's own with `connectionType = "support"` added.
- every call passes `verify=False` to requests (and silences urllib3's warning), so the
  server's certificate is never checked and REQUESTS_CA_BUNDLE is ignored: an adapter mounted
  on the connector's session verifies every request against REQUESTS_CA_BUNDLE.

Environment: COMPAT_RESULTS, COMPAT_HOST (localhost:PORT), COMPAT_TOKEN, COMPAT_PAGING_TOKEN
(the second tenant's), REQUESTS_CA_BUNDLE (the daemon's certificate).
"""

import logging
import os
import sys
import time

import aepp
import certifi
import requests
from aepp import segmentation
from requests.adapters import HTTPAdapter

CLIENT = "aepp 0.6.0"
PAGING_JOBS = 1001
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


class VerifyingAdapter(HTTPAdapter):
    """Checks the server's certificate against REQUESTS_CA_BUNDLE, whatever `verify` the
    caller passed (aepp passes False)."""

    def send(self, request, **kwargs):
        kwargs["verify"] = os.environ["REQUESTS_CA_BUNDLE"]
        return super().send(request, **kwargs)


def segmentation_for(token: str) -> segmentation.Segmentation:
    """aepp's Segmentation API on the daemon, as the holder of `token`."""
    aepp.configure(
        org_id="compat@AdobeOrg",
        client_id="compat",
        secret="unused",
        environment="support",
        endpoint=f"https://{os.environ['COMPAT_HOST']}",
        accesstoken=token,
        sandbox="prod",
    )
    config = dict(aepp.config.config_object, connectionType="support")
    api = segmentation.Segmentation(config=config)
    session = api.connector.session
    retries = session.get_adapter("https://").max_retries
    session.mount("https://", VerifyingAdapter(max_retries=retries))
    return api


def request(dataset: str) -> dict:
    return {
        "fields": "identities.id,person.name",
        "destination": {"datasetId": dataset},
        "schema": {"name": "_xdm.context.profile"},
        "filter": {"segments": [{"segmentId": "compat-segment"}]},
    }


def finished(api: segmentation.Segmentation, job_id) -> tuple:
    """Polls `getExport` until the job is SUCCEEDED or FAILED."""
    deadline = time.monotonic() + 30
    polls = 0
    while True:
        polls += 1
        job = api.getExport(job_id)
        if job.get("status") in ("SUCCEEDED", "FAILED"):
            return job, polls
        expect(time.monotonic() < deadline, f"job {job_id} is {job.get('status')} after 30 s")
        time.sleep(0.2)


def exports(api: segmentation.Segmentation) -> None:
    created = {}
    for outcome in ("ok", "fail"):

        def create(outcome=outcome):
            job = api.createExport(request(outcome))
            expect(isinstance(job.get("id"), int) and job.get("status") == "NEW", str(job))
            return f"job {job['id']} NEW", job["id"]

        created[outcome] = check(f"createExport datasetId={outcome}", create)
    for outcome, job_id in created.items():
        if job_id is None:
            continue

        def poll(outcome=outcome, job_id=job_id):
            job, polls = finished(api, job_id)
            if outcome == "ok":
                counter = job.get("metrics", {}).get("totalExportedProfileCounter")
                expect(job["status"] == "SUCCEEDED" and counter == 3, str(job))
                return f"SUCCEEDED, totalExportedProfileCounter {counter}, {polls} polls", job
            errors = job.get("errors") or [{}]
            message = errors[0].get("msg")
            expect(
                job["status"] == "FAILED"
                and message == "the export to dataset fail was asked to fail",
                str(job),
            )
            return f'FAILED "{message}", {polls} polls', job

        check(f"getExport until finished, datasetId={outcome}", poll)

    def listed():
        jobs = api.getExportJobs()
        statuses = {job["id"]: job["status"] for job in jobs}
        expect(
            statuses.get(created["ok"]) == "SUCCEEDED"
            and statuses.get(created["fail"]) == "FAILED",
            str(statuses),
        )
        return f"{len(jobs)} jobs, one page", None

    check("getExportJobs", listed)


class Requests(logging.Handler):
    """Counts the list requests urllib3 logs (it logs every request it sends)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lists = 0

    def emit(self, entry: logging.LogRecord) -> None:
        if "GET /data/core/ups/export/jobs" in entry.getMessage():
            self.lists += 1


def paging(api: segmentation.Segmentation) -> None:
    def create():
        ids = [api.createExport(request(f"page-{i}"))["id"] for i in range(PAGING_JOBS)]
        expect(len(set(ids)) == PAGING_JOBS, f"{len(set(ids))} distinct ids")
        return f"{PAGING_JOBS} jobs", ids

    ids = check(f"createExport x {PAGING_JOBS} (a second tenant, no worker)", create)
    if ids is None:
        return

    def walk():
        counter = Requests()
        log = logging.getLogger("urllib3.connectionpool")
        log.addHandler(counter)
        log.setLevel(logging.DEBUG)
        try:
            jobs = api.getExportJobs(limit=1000)
        finally:
            log.removeHandler(counter)
        listed = [job["id"] for job in jobs]
        expect(sorted(listed) == sorted(ids), f"{len(listed)} listed, {len(set(listed))} distinct")
        expect(counter.lists >= 2, f"{counter.lists} list requests")
        return f"{len(listed)} jobs, each once, in {counter.lists} pages", None

    check("getExportJobs limit=1000 through link.next", walk)


def untrusted(api: segmentation.Segmentation) -> None:
    def refused():
        saved = os.environ["REQUESTS_CA_BUNDLE"]
        os.environ["REQUESTS_CA_BUNDLE"] = certifi.where()
        try:
            api.createExport(request("untrusted"))
        except requests.exceptions.SSLError as err:
            expect("CERTIFICATE_VERIFY_FAILED" in str(err), str(err))
            return "SSLError: CERTIFICATE_VERIFY_FAILED", None
        finally:
            os.environ["REQUESTS_CA_BUNDLE"] = saved
        raise Expectation("the call was answered")

    check("certificate refused with another CA bundle", refused)


def main() -> int:
    api = segmentation_for(os.environ["COMPAT_TOKEN"])
    exports(api)
    untrusted(api)
    paging(segmentation_for(os.environ["COMPAT_PAGING_TOKEN"]))
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
