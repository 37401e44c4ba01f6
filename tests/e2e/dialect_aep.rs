//! Conformance of the Adobe Experience Platform segment export jobs dialect
//! (`/data/core/ups/export/jobs`, `docs/dialect-aep.md`), the way the vendor's clients use it:
//! required-member validation; create with every echoed and generated member; list pages
//! followed through `link.next` while jobs keep being created; metrics from a worker driven
//! through the native worker API; DELETE of a queued, a running and a finished job; the
//! status filter; limit defaults and clamping; bad parameters; tokens and tenants.

use std::collections::BTreeSet;
use std::thread;

use serde_json::{Map, Value, json};

use crate::support::{Body, Client, Daemon, Options, Response, id_of, temp_dir};

/// The collection path.
const JOBS: &str = "/data/core/ups/export/jobs";

/// The Segmentation API base that `link.next` is relative to.
const BASE: &str = "/data/core/ups";

/// The vendor page's create request body, as printed.
fn vendor_request() -> Value {
    json!({
        "fields": "identities.id,personalEmail.address",
        "mergePolicy": {
            "id": "timestampOrdered-none-mp",
            "version": 1
        },
        "filter": {
            "segments": [
                {
                    "segmentId": "52c26d0d-45f2-47a2-ab30-ed06abc981ff",
                    "segmentNs": "ups",
                    "status": [
                        "realized"
                    ]
                }
            ],
            "segmentQualificationTime": {
                "startTime": "2018-01-01T00:00:00Z",
                "endTime": "2018-02-01T00:00:00Z"
            },
            "fromIngestTimestamp": "2018-01-01T00:00:00Z",
            "emptyProfiles": true
        },
        "additionalFields": {
            "eventList": {
                "fields": "string",
                "filter": {
                    "fromIngestTimestamp": "2018-01-01T00:00:00Z",
                    "toIngestTimestamp": "2020-01-01T00:00:00Z"
                }
            }
        },
        "destination": {
            "datasetId": "5b7c86968f7b6501e21ba9df",
            "segmentPerBatch": false
        },
        "schema": {
            "name": "_xdm.context.profile"
        },
        "evaluationInfo": {
            "segmentation": true
        }
    })
}

/// The smallest valid request.
fn minimal(dataset: &str) -> Value {
    json!({"destination": {"datasetId": dataset}, "schema": {"name": "_xdm.context.profile"}})
}

/// The vendor's identity headers, as its examples send them.
const VENDOR_HEADERS: [(&str, &str); 4] = [
    ("Content-Type", "application/json"),
    ("x-gw-ims-org-id", "1BD6382559DF0C130A49422D@AdobeOrg"),
    ("x-api-key", "acme-api-key"),
    ("x-sandbox-name", "prod"),
];

/// `POST /data/core/ups/export/jobs`, asserting 200; answers the job.
#[track_caller]
fn create(api: &Client, body: &Value) -> Value {
    let answer = api.request("POST", JOBS, &VENDOR_HEADERS, body);
    answer.expect_json_type();
    answer.expect_json(200)
}

/// `GET /data/core/ups/export/jobs/{id}`, asserting 200.
#[track_caller]
fn get(api: &Client, id: i64) -> Value {
    let answer = api.get(&format!("{JOBS}/{id}"));
    answer.expect_json_type();
    answer.expect_json(200)
}

/// Asserts the dialect's fault document `{"type", "status", "title", "detail"}` and nothing
/// else; answers the detail.
#[track_caller]
fn assert_problem(answer: &Response, status: u16, kind: &str) -> String {
    let doc = answer.expect_error_document(status, kind);
    let keys: BTreeSet<&str> = doc
        .as_object()
        .expect("fault is an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["type", "status", "title", "detail"]),
        "{doc}"
    );
    assert_eq!(doc["type"], kind, "{doc}");
    assert_eq!(doc["status"], status, "{doc}");
    assert!(!doc["title"].as_str().expect("title").is_empty(), "{doc}");
    let detail = doc["detail"].as_str().expect("detail");
    assert!(!detail.is_empty(), "{doc}");
    detail.to_owned()
}

/// The native view of a job.
#[track_caller]
fn native(api: &Client, id: i64) -> Value {
    api.get(&format!("/v1/jobs/{id}")).expect_json(200)
}

/// A worker's lease on one job, through the native worker API.
struct Lease {
    id: i64,
    token: i64,
}

const WORKER: &str = "aep-worker";

/// Claims the next job of queue `aep`, asserting it is `id`.
#[track_caller]
fn claim(api: &Client, id: i64) -> Lease {
    let jobs = api.claim(WORKER, "aep", 1);
    assert_eq!(jobs.len(), 1, "nothing to claim");
    assert_eq!(id_of(&jobs[0]), id, "claimed another job");
    Lease {
        id,
        token: jobs[0]["lease_token"].as_i64().expect("lease_token"),
    }
}

/// A heartbeat with progress; answers whether a cancel was requested.
#[track_caller]
fn heartbeat(api: &Client, lease: &Lease, progress: Value) -> bool {
    let answer = api
        .post(
            &format!("/v1/jobs/{}/heartbeat", lease.id),
            &json!({"worker": WORKER, "lease_token": lease.token, "progress": progress}),
        )
        .expect_json(200);
    answer["cancel_requested"]
        .as_bool()
        .expect("cancel_requested")
}

#[track_caller]
fn complete(api: &Client, lease: &Lease) {
    api.post(
        &format!("/v1/jobs/{}/complete", lease.id),
        &json!({"worker": WORKER, "lease_token": lease.token, "result": {"exported": 1}}),
    )
    .expect(200);
}

#[track_caller]
fn fail(api: &Client, lease: &Lease, error: &str, retryable: bool) {
    api.post(
        &format!("/v1/jobs/{}/fail", lease.id),
        &json!({"worker": WORKER, "lease_token": lease.token, "error": error, "retryable": retryable}),
    )
    .expect(200);
}

/// One page of the list at `path` (a full path).
#[track_caller]
fn page(api: &Client, path: &str) -> Value {
    let answer = api.get(path);
    answer.expect_json_type();
    answer.expect_json(200)
}

/// The record ids of a page.
fn ids(page: &Value) -> Vec<i64> {
    page["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(id_of)
        .collect()
}

/// Every record id of a list, following `link.next` until it is `""`.
#[track_caller]
fn all_pages(api: &Client, first: &str) -> Vec<i64> {
    let mut seen = Vec::new();
    let mut path = first.to_owned();
    loop {
        let page = page(api, &path);
        seen.extend(ids(&page));
        let next = page["link"]["next"].as_str().expect("link.next");
        if next.is_empty() {
            return seen;
        }
        path = format!("{BASE}{next}");
    }
}

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    parts.len() == 5
        && [8, 4, 4, 4, 12]
            .iter()
            .zip(&parts)
            .all(|(len, part)| is_hex(part, *len))
}

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn create_echoes_the_request_and_generates_the_rest() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let request = vendor_request();

    let job = create(&api, &request);
    let id = id_of(&job);
    assert_eq!(
        keys(&job),
        [
            "id",
            "jobType",
            "fields",
            "mergePolicy",
            "filter",
            "additionalFields",
            "destination",
            "schema",
            "evaluationInfo",
            "imsOrgId",
            "status",
            "profileInstanceId",
            "metrics",
            "computeGatewayJobId",
            "creationTime",
            "updateTime",
            "requestId",
        ]
        .into_iter()
        .map(String::from)
        .collect(),
        "{job}"
    );
    assert!(job["id"].is_i64(), "numeric id: {job}");
    assert_eq!(job["jobType"], "BATCH");
    assert_eq!(job["status"], "NEW");
    // The request's members, echoed exactly.
    for member in [
        "fields",
        "mergePolicy",
        "filter",
        "additionalFields",
        "schema",
        "evaluationInfo",
    ] {
        assert_eq!(job[member], request[member], "{member}");
    }
    // The destination, with a generated batch id.
    let batch = job["destination"]["batchId"].as_str().expect("batchId");
    assert!(is_hex(batch, 32), "{batch}");
    assert_eq!(
        job["destination"],
        json!({"datasetId": "5b7c86968f7b6501e21ba9df", "segmentPerBatch": false, "batchId": batch})
    );
    // Identity headers are echoed; the profile instance defaults to `ups`.
    assert_eq!(job["imsOrgId"], "1BD6382559DF0C130A49422D@AdobeOrg");
    assert_eq!(job["profileInstanceId"], "ups");
    // Times in epoch milliseconds; nothing has run yet.
    let created = job["creationTime"].as_i64().expect("creationTime");
    let updated = job["updateTime"].as_i64().expect("updateTime");
    assert!(created > 1_600_000_000_000 && updated >= created, "{job}");
    assert_eq!(
        job["metrics"],
        json!({"totalTime": {"startTimeInMs": created}})
    );
    assert_eq!(job["computeGatewayJobId"], json!({"exportJob": ""}));
    let request_id = job["requestId"].as_str().expect("requestId");
    assert!(is_uuid(request_id), "{request_id}");

    // GET answers the same document.
    assert_eq!(get(&api, id), job);
    // With and without a trailing slash.
    assert_eq!(api.get(&format!("{JOBS}/{id}/")).expect_json(200), job);

    // The canonical job: one id in every API.
    let canonical = native(&api, id);
    assert_eq!(canonical["kind"], "segment-export");
    assert_eq!(canonical["queue"], "aep");
    assert_eq!(canonical["dialect"], "aep");
    assert_eq!(canonical["state"], "queued");
    assert_eq!(canonical["created_at"], created);
    assert_eq!(canonical["target"], "5b7c86968f7b6501e21ba9df");
    assert_eq!(canonical["source"], "ups");
    let mut payload = request.as_object().unwrap().clone();
    payload.insert(
        "imsOrgId".into(),
        json!("1BD6382559DF0C130A49422D@AdobeOrg"),
    );
    payload.insert("profileInstanceId".into(), json!("ups"));
    assert_eq!(canonical["payload"], Value::Object(payload));

    // x-profile-instance-id is echoed; without x-gw-ims-org-id there is no imsOrgId. Read-only
    // members of a request (a job document posted back) are ignored, and so is a batch id.
    let mut second = minimal("ds-2");
    second["status"] = json!("SUCCEEDED");
    second["id"] = json!(1);
    second["requestId"] = json!("mine");
    second["destination"]["batchId"] = json!("mine");
    let other = api
        .request(
            "POST",
            &format!("{JOBS}/"),
            &[("x-profile-instance-id", "test_xdm_profile")],
            &second,
        )
        .expect_json(200);
    let other_id = id_of(&other);
    assert!(other_id > id);
    assert_eq!(other["status"], "NEW");
    assert_eq!(other["profileInstanceId"], "test_xdm_profile");
    assert!(other.get("imsOrgId").is_none(), "{other}");
    assert_ne!(other["requestId"], "mine");
    assert_ne!(other["requestId"], job["requestId"]);
    let other_batch = other["destination"]["batchId"].as_str().unwrap();
    assert!(is_hex(other_batch, 32) && other_batch != batch, "{other}");
    assert_eq!(native(&api, other_id)["source"], "test_xdm_profile");
    assert_eq!(
        native(&api, other_id)["payload"],
        json!({
            "destination": {"datasetId": "ds-2"},
            "schema": {"name": "_xdm.context.profile"},
            "profileInstanceId": "test_xdm_profile"
        })
    );

    // segmentPerBatch: one batch per segment, each with its own id.
    let mut per_batch = minimal("ds-3");
    per_batch["destination"]["segmentPerBatch"] = json!(true);
    per_batch["filter"] = json!({"segments": [
        {"segmentId": "segment1", "segmentNs": "ups", "status": ["realized"]},
        {"segmentId": "segment2", "segmentNs": "AdCloud", "status": ["exited"]}
    ]});
    let batched = create(&api, &per_batch);
    let batches = batched["destination"]["batches"]
        .as_array()
        .expect("batches");
    assert_eq!(batches.len(), 2, "{batched}");
    for (batch, segment) in batches.iter().zip(["segment1", "segment2"]) {
        assert_eq!(batch["segmentId"], segment);
        assert!(is_hex(batch["batchId"].as_str().unwrap(), 32), "{batch}");
    }
    assert_ne!(batches[0]["batchId"], batches[1]["batchId"]);
    assert!(batched["destination"]["batchId"].is_string());

    // A retried POST with the same Idempotency-Key answers the same job.
    let headers = [("Idempotency-Key", "retry-1")];
    let first = api
        .request("POST", JOBS, &headers, minimal("ds-4"))
        .expect_json(200);
    let again = api
        .request("POST", JOBS, &headers, minimal("ds-4"))
        .expect_json(200);
    assert_eq!(first["id"], again["id"]);
    assert_eq!(first["requestId"], again["requestId"]);
}

#[test]
fn the_queue_is_configurable() {
    let dir = temp_dir();
    let config = dir.path().join("jobstore.toml");
    std::fs::write(&config, "[dialects]\naep_queue = \"exports\"\n").unwrap();
    let daemon = Daemon::start_with(
        dir,
        Options {
            args: vec!["--config".into(), config.into_os_string()],
            ..Options::default()
        },
    );
    let api = daemon.client();
    let id = id_of(&create(&api, &minimal("ds")));
    assert_eq!(native(&api, id)["queue"], "exports");
    let jobs = api.claim("w", "exports", 1);
    assert_eq!(jobs.len(), 1);
    assert_eq!(get(&api, id)["status"], "PROCESSING");
}

#[test]
fn required_members_are_named_and_nothing_is_created() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let post = |body: Body| api.request("POST", JOBS, &VENDOR_HEADERS, body);

    // No body at all, and an empty object: both required members are named.
    for body in [Body::None, Body::from("{}")] {
        let detail = assert_problem(&post(body), 400, "invalid_request");
        assert!(detail.contains("destination.datasetId"), "{detail}");
        assert!(detail.contains("schema.name"), "{detail}");
    }
    // Present but empty objects: the members inside them are named.
    let detail = assert_problem(
        &post(json!({"destination": {"segmentPerBatch": false}, "schema": {}}).into()),
        400,
        "invalid_request",
    );
    assert!(
        detail.contains("missing required members: destination.datasetId, schema.name"),
        "{detail}"
    );
    // One missing.
    let detail = assert_problem(
        &post(json!({"destination": {"datasetId": "d"}}).into()),
        400,
        "invalid_request",
    );
    assert!(detail.contains("schema.name"), "{detail}");
    assert!(!detail.contains("datasetId"), "{detail}");
    let detail = assert_problem(
        &post(json!({"schema": {"name": "_xdm.context.profile"}, "destination": null}).into()),
        400,
        "invalid_request",
    );
    assert!(detail.contains("destination.datasetId"), "{detail}");
    assert!(!detail.contains("schema"), "{detail}");

    // Wrong types, each named, together with what is missing.
    let detail = assert_problem(
        &post(
            json!({
                "destination": {"datasetId": 5, "segmentPerBatch": "yes"},
                "fields": ["a"],
                "mergePolicy": {"id": "m", "version": "1"},
                "filter": {
                    "segments": [{"segmentNs": "ups"}, "s"],
                    "fromIngestTimestamp": "yesterday",
                    "emptyProfiles": 1
                },
                "evaluationInfo": {"segmentation": "true"}
            })
            .into(),
        ),
        400,
        "invalid_request",
    );
    for named in [
        "schema.name",
        "destination.datasetId must be a non-empty string",
        "destination.segmentPerBatch",
        "fields must be a string",
        "mergePolicy.version must be an integer",
        "filter.segments[0].segmentId",
        "filter.segments[1] must be an object",
        "filter.fromIngestTimestamp must be an RFC 3339 timestamp",
        "filter.emptyProfiles",
        "evaluationInfo.segmentation",
    ] {
        assert!(detail.contains(named), "`{named}` not in {detail}");
    }
    assert_problem(
        &post(json!({"destination": "ds", "schema": "s"}).into()),
        400,
        "invalid_request",
    );

    // Not JSON, not an object.
    assert_problem(&post(Body::from("{\"destination\":")), 400, "invalid_json");
    assert_problem(&post(Body::from("[1, 2]")), 400, "invalid_request");

    // Nothing of it reached the database.
    assert!(api.all_jobs().is_empty());
    assert_eq!(
        page(&api, JOBS),
        json!({
            "records": [],
            "page": {"sortField": "createdTime", "sort": "desc", "pageOffset": "", "pageSize": 0},
            "link": {"next": ""}
        })
    );
}

#[test]
fn list_pages_never_repeat_or_skip_while_jobs_are_created() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let mut existing: Vec<(i64, i64)> = (0..23)
        .map(|i| {
            let job = create(&api, &minimal(&format!("ds-{i}")));
            (job["creationTime"].as_i64().unwrap(), id_of(&job))
        })
        .collect();
    // A native job is not an export job and is never listed here.
    let native_job = id_of(&api.create(&json!({"kind": "segment-export", "queue": "aep"})));
    // Newest first: creation time, then id, both descending.
    existing.sort_by(|a, b| b.cmp(a));
    let expected: Vec<i64> = existing.iter().map(|(_, id)| *id).collect();

    let mut seen = Vec::new();
    let mut created_meanwhile = Vec::new();
    let mut path = format!("{JOBS}?limit=5");
    let mut pages = 0;
    loop {
        let page = page(&api, &path);
        pages += 1;
        let records = page["records"].as_array().unwrap();
        assert_eq!(page["page"]["sortField"], "createdTime");
        assert_eq!(page["page"]["sort"], "desc");
        assert_eq!(page["page"]["pageSize"], records.len());
        let last = records.last().unwrap();
        let offset = format!("{}_{}", last["creationTime"], last["id"]);
        assert_eq!(page["page"]["pageOffset"], offset.as_str());
        for record in records {
            assert_eq!(record["jobType"], "BATCH");
            assert_eq!(record["status"], "NEW");
        }
        seen.extend(ids(&page));
        // Jobs keep arriving between pages.
        for i in 0..2 {
            let job = create(&api, &minimal(&format!("late-{pages}-{i}")));
            created_meanwhile.push(id_of(&job));
        }
        let next = page["link"]["next"].as_str().expect("link.next").to_owned();
        if next.is_empty() {
            assert!(records.len() <= 5);
            break;
        }
        assert_eq!(records.len(), 5);
        assert_eq!(next, format!("/export/jobs/?limit=5&offset={offset}"));
        path = format!("{BASE}{next}");
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, expected, "every job exactly once, newest first");
    assert!(!seen.contains(&native_job));

    // A fresh walk sees the jobs created meanwhile too (and still no native job).
    let everything = all_pages(&api, &format!("{JOBS}/?limit=7"));
    let unique: BTreeSet<i64> = everything.iter().copied().collect();
    assert_eq!(unique.len(), everything.len(), "no repeats");
    let mut all: BTreeSet<i64> = expected.iter().copied().collect();
    all.extend(&created_meanwhile);
    assert_eq!(unique, all);
}

#[test]
fn metrics_come_from_the_worker() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&create(&api, &vendor_request()));

    let lease = claim(&api, id);
    let running = get(&api, id);
    let canonical = native(&api, id);
    let started = canonical["started_at"].as_i64().expect("started_at");
    let created = running["creationTime"].as_i64().unwrap();
    assert_eq!(running["status"], "PROCESSING");
    assert_eq!(
        running["metrics"],
        json!({
            "totalTime": {"startTimeInMs": created},
            "profileExportTime": {"startTimeInMs": started}
        })
    );
    let export_job = running["computeGatewayJobId"]["exportJob"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(is_uuid(&export_job), "{running}");
    assert_eq!(running["updateTime"], canonical["updated_at"]);

    // Progress reports become the counters; later reports merge into earlier ones.
    assert!(!heartbeat(
        &api,
        &lease,
        json!({"totalExportedProfileCounter": 10,
               "exportedProfileByNamespaceCounter": {"ECID": 7, "Email": 3}})
    ));
    let metrics = &get(&api, id)["metrics"];
    assert_eq!(metrics["totalExportedProfileCounter"], 10);
    assert_eq!(
        metrics["exportedProfileByNamespaceCounter"],
        json!({"ECID": 7, "Email": 3})
    );
    heartbeat(
        &api,
        &lease,
        json!({"totalExportedProfileCounter": 20,
               "exportedProfileByNamespaceCounter": {"Email": 13}}),
    );
    let metrics = &get(&api, id)["metrics"];
    assert_eq!(metrics["totalExportedProfileCounter"], 20);
    assert_eq!(
        metrics["exportedProfileByNamespaceCounter"],
        json!({"ECID": 7, "Email": 13})
    );

    complete(&api, &lease);
    let done = get(&api, id);
    let finished = native(&api, id)["finished_at"].as_i64().unwrap();
    assert_eq!(done["status"], "SUCCEEDED");
    assert!(done.get("errors").is_none(), "{done}");
    assert_eq!(
        done["metrics"],
        json!({
            "totalTime": {
                "startTimeInMs": created, "endTimeInMs": finished,
                "totalTimeInMs": finished - created
            },
            "profileExportTime": {
                "startTimeInMs": started, "endTimeInMs": finished,
                "totalTimeInMs": finished - started
            },
            "totalExportedProfileCounter": 20,
            "exportedProfileByNamespaceCounter": {"ECID": 7, "Email": 13}
        })
    );
    assert_eq!(
        done["computeGatewayJobId"]["exportJob"],
        export_job.as_str()
    );
    assert_eq!(done["updateTime"], finished);

    // A retryable failure puts the job back to NEW; a fatal one fails it with its error.
    let failing = id_of(&create(&api, &minimal("ds-fail")));
    let lease = claim(&api, failing);
    fail(&api, &lease, "dataset is locked", true);
    let retried = get(&api, failing);
    assert_eq!(retried["status"], "NEW");
    assert!(retried.get("errors").is_none(), "{retried}");
    let fatal = id_of(&create(&api, &minimal("ds-fatal")));
    let lease = claim(&api, fatal);
    fail(&api, &lease, "Error writing profiles to output path", false);
    let failed = get(&api, fatal);
    assert_eq!(failed["status"], "FAILED");
    assert_eq!(
        failed["errors"],
        json!([{"code": "unknown", "msg": "Error writing profiles to output path", "callStack": ""}])
    );
    assert!(failed["metrics"]["totalTime"]["totalTimeInMs"].is_i64());
    assert!(
        failed["metrics"]
            .get("totalExportedProfileCounter")
            .is_none()
    );
}

#[test]
fn delete_cancels_a_queued_or_running_job_and_deletes_a_finished_one() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let cancelling =
        json!({"status": true, "message": "Export job has been marked for cancelling"});

    // Queued: cancelled at once; a second DELETE deletes it.
    let queued = id_of(&create(&api, &minimal("ds-queued")));
    let answer = api.request(
        "DELETE",
        &format!("{JOBS}/{queued}"),
        &VENDOR_HEADERS[1..],
        Body::None,
    );
    answer.expect_json_type();
    assert_eq!(answer.expect_json(200), cancelling);
    let cancelled = get(&api, queued);
    assert_eq!(cancelled["status"], "FAILED");
    assert_eq!(native(&api, queued)["state"], "cancelled");
    assert!(cancelled["metrics"]["totalTime"]["endTimeInMs"].is_i64());
    assert!(cancelled["metrics"].get("profileExportTime").is_none());
    let gone = api.delete(&format!("{JOBS}/{queued}/"));
    gone.expect(204);
    assert!(gone.body.is_empty());
    assert_problem(&api.get(&format!("{JOBS}/{queued}")), 404, "job_not_found");
    assert_eq!(api.get(&format!("/v1/jobs/{queued}")).status, 404);
    assert_problem(
        &api.delete(&format!("{JOBS}/{queued}")),
        404,
        "job_not_found",
    );

    // Running: the worker is asked to stop; the job stays PROCESSING until it acknowledges.
    let running = id_of(&create(&api, &minimal("ds-running")));
    let lease = claim(&api, running);
    assert_eq!(
        api.delete(&format!("{JOBS}/{running}")).expect_json(200),
        cancelling
    );
    assert_eq!(get(&api, running)["status"], "PROCESSING");
    assert!(native(&api, running)["cancel_requested_at"].is_i64());
    // Asking again changes nothing and answers the same.
    assert_eq!(
        api.delete(&format!("{JOBS}/{running}")).expect_json(200),
        cancelling
    );
    assert!(heartbeat(
        &api,
        &lease,
        json!({"totalExportedProfileCounter": 1})
    ));
    fail(&api, &lease, "cancelled", false);
    let acknowledged = get(&api, running);
    assert_eq!(acknowledged["status"], "FAILED");
    assert_eq!(
        acknowledged["errors"][0]["code"], "cancelled",
        "{acknowledged}"
    );
    assert_eq!(acknowledged["metrics"]["totalExportedProfileCounter"], 1);
    api.delete(&format!("{JOBS}/{running}")).expect(204);
    assert_eq!(api.get(&format!("/v1/jobs/{running}")).status, 404);

    // Finished: deleted at once, with its history.
    let finished = id_of(&create(&api, &minimal("ds-finished")));
    let lease = claim(&api, finished);
    complete(&api, &lease);
    api.delete(&format!("{JOBS}/{finished}")).expect(204);
    assert_problem(
        &api.get(&format!("{JOBS}/{finished}")),
        404,
        "job_not_found",
    );
    assert_eq!(api.get(&format!("/v1/jobs/{finished}/events")).status, 404);

    // Unknown ids, and ids that cannot be one.
    for id in ["999999", "abc", "0", "-3"] {
        assert_problem(&api.delete(&format!("{JOBS}/{id}")), 404, "job_not_found");
        assert_problem(&api.get(&format!("{JOBS}/{id}")), 404, "job_not_found");
    }

    // A job of another API is not an export job: 404 here, and left alone.
    let other = id_of(&api.create(&json!({"kind": "segment-export", "queue": "aep"})));
    assert_problem(&api.get(&format!("{JOBS}/{other}")), 404, "job_not_found");
    assert_problem(
        &api.delete(&format!("{JOBS}/{other}")),
        404,
        "job_not_found",
    );
    assert_eq!(native(&api, other)["state"], "queued");
}

#[test]
fn status_filter_selects_by_vendor_status() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let succeeded = id_of(&create(&api, &minimal("a")));
    let lease = claim(&api, succeeded);
    complete(&api, &lease);
    let failed = id_of(&create(&api, &minimal("b")));
    let lease = claim(&api, failed);
    fail(&api, &lease, "boom", false);
    let processing = id_of(&create(&api, &minimal("c")));
    claim(&api, processing);
    let cancelled = id_of(&create(&api, &minimal("d")));
    api.delete(&format!("{JOBS}/{cancelled}")).expect(200);
    let new_1 = id_of(&create(&api, &minimal("e")));
    let new_2 = id_of(&create(&api, &minimal("f")));

    let listed = |query: &str| -> BTreeSet<i64> {
        all_pages(&api, &format!("{JOBS}?{query}"))
            .into_iter()
            .collect()
    };
    assert_eq!(listed("status=NEW"), BTreeSet::from([new_1, new_2]));
    assert_eq!(listed("status=PROCESSING"), BTreeSet::from([processing]));
    assert_eq!(listed("status=SUCCEEDED"), BTreeSet::from([succeeded]));
    assert_eq!(listed("status=FAILED"), BTreeSet::from([failed, cancelled]));
    let new_or_failed = BTreeSet::from([new_1, new_2, failed, cancelled]);
    assert_eq!(listed("status=NEW,FAILED"), new_or_failed);
    assert_eq!(listed("status=NEW&status=FAILED"), new_or_failed);
    assert_eq!(listed("status=new&status=Failed"), new_or_failed);
    // An empty value means "not given".
    assert_eq!(listed("status=&limit=").len(), 6);
    assert_eq!(listed("").len(), 6);

    // Each record shows its status; link.next keeps the filter.
    let first = page(&api, &format!("{JOBS}?status=NEW&limit=1"));
    assert_eq!(ids(&first), vec![new_2]);
    assert_eq!(first["records"][0]["status"], "NEW");
    let next = first["link"]["next"].as_str().unwrap();
    assert_eq!(
        next,
        format!(
            "/export/jobs/?limit=1&offset={}_{new_2}&status=NEW",
            first["records"][0]["creationTime"]
        )
    );
    let second = page(&api, &format!("{BASE}{next}"));
    assert_eq!(ids(&second), vec![new_1]);
    assert_eq!(second["link"]["next"], "");
    for (id, status) in [
        (succeeded, "SUCCEEDED"),
        (cancelled, "FAILED"),
        (processing, "PROCESSING"),
    ] {
        let page = page(&api, &format!("{JOBS}?status={status}"));
        assert_eq!(page["records"][0]["id"], id);
        assert_eq!(page["records"][0]["status"], status);
    }
}

#[test]
fn limit_defaults_to_20_and_clamps_to_1000() {
    let daemon = Daemon::start();
    let api = daemon.client();
    // 1001 jobs, created from a few threads at once.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let api = api.clone();
            thread::spawn(move || {
                let count = if t == 0 { 126 } else { 125 };
                for i in 0..count {
                    api.request("POST", JOBS, &[], minimal(&format!("ds-{t}-{i}")))
                        .expect(200);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }

    let first = page(&api, JOBS);
    assert_eq!(first["records"].as_array().unwrap().len(), 20);
    assert_eq!(first["page"]["pageSize"], 20);
    let next = first["link"]["next"].as_str().unwrap();
    assert!(next.starts_with("/export/jobs/?limit=20&offset="), "{next}");

    // The `aepp` client's default, and more: clamped to 1000, never refused.
    for limit in ["1000", "5000", "99999999999999999999999"] {
        let big = page(&api, &format!("{JOBS}?limit={limit}"));
        assert_eq!(big["records"].as_array().unwrap().len(), 1000, "{limit}");
        assert_eq!(big["page"]["pageSize"], 1000);
        let next = big["link"]["next"].as_str().unwrap();
        assert!(
            next.starts_with("/export/jobs/?limit=1000&offset="),
            "{next}"
        );
        let rest = page(&api, &format!("{BASE}{next}"));
        assert_eq!(rest["records"].as_array().unwrap().len(), 1);
        assert_eq!(rest["link"]["next"], "");
    }
    let all = all_pages(&api, &format!("{JOBS}?limit=1000"));
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 1001);
}

#[test]
fn bad_parameters_and_routes_are_refused_in_the_fault_shape() {
    let daemon = Daemon::start();
    let api = daemon.client();
    create(&api, &minimal("ds"));
    for (query, named) in [
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=2.5", "limit"),
        ("offset=garbage", "offset"),
        ("offset=1540974701302_", "offset"),
        ("offset=_96", "offset"),
        ("offset=1540974701302-96", "offset"),
        ("status=DONE", "status"),
        ("status=NEW,RUNNING", "RUNNING"),
        ("status=CANCELLED", "CANCELLED"),
        ("start=-1", "start"),
        ("orderBy=createdTime", "orderBy"),
        ("limit=%zz", "query"),
    ] {
        let detail = assert_problem(&api.get(&format!("{JOBS}?{query}")), 400, "invalid_request");
        assert!(detail.contains(named), "{query}: {detail}");
    }
    let detail = assert_problem(
        &api.get(&format!("{JOBS}?status=DONE")),
        400,
        "invalid_request",
    );
    assert!(
        detail.ends_with("valid: NEW, PROCESSING, SUCCEEDED, FAILED"),
        "{detail}"
    );

    // Methods a path does not have: 405 with Allow (HEAD is served wherever GET is).
    for (method, path, allow) in [
        ("PUT", JOBS.to_owned(), "GET, HEAD, POST"),
        ("DELETE", JOBS.to_owned(), "GET, HEAD, POST"),
        ("POST", format!("{JOBS}/1"), "GET, HEAD, DELETE"),
        ("PATCH", format!("{JOBS}/1/"), "GET, HEAD, DELETE"),
    ] {
        let answer = api.request(method, &path, &[], Body::None);
        assert_problem(&answer, 405, "method_not_allowed");
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
    }
    // Paths below the collection that name nothing.
    for path in [format!("{JOBS}/1/metrics"), format!("{JOBS}//")] {
        assert_problem(&api.get(&path), 404, "route_not_found");
    }
    // Nothing was created or changed by any of it.
    assert_eq!(api.all_jobs().len(), 1);
}

/// HEAD on the GET routes answers as GET (RFC 9110 §9.1): the same status and content type
/// (and `Content-Length`, when sent), and no byte after the head; faults included.
#[test]
fn head_answers_as_get_without_a_body() {
    use std::io::{Read, Write};
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&create(&api, &minimal("ds")));
    for (path, status) in [
        (JOBS.to_owned(), 200),
        (format!("{JOBS}/?limit=1&status=NEW"), 200),
        (format!("{JOBS}/{id}"), 200),
        (format!("{JOBS}/{id}/"), 200),
        (format!("{JOBS}/999999"), 404),
    ] {
        let get = api.get(&path);
        assert_eq!(get.status, status, "GET {path}: {}", get.text());
        let mut stream = crate::support::connect(daemon.addr());
        let head = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "HEAD {path}: {head}"
        );
        assert!(rest.is_empty(), "HEAD {path} sent a body: {rest}");
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        if let Some(length) = header("content-length") {
            assert_eq!(length, get.body.len().to_string(), "HEAD {path}");
        }
        assert_eq!(
            header("content-type").as_deref(),
            get.header("content-type"),
            "HEAD {path}"
        );
    }
    // Nothing was created by any of it.
    assert_eq!(api.all_jobs().len(), 1);
}

#[test]
fn tokens_and_tenants_apply() {
    let (daemon, [alice, reader, runner, bob, root]) = Daemon::with_tokens([
        ("alice", "acme", "read,write"),
        ("reader", "acme", "read"),
        ("runner", "acme", "work"),
        ("bob", "globex", "read,write"),
        ("root", "ops", "admin"),
    ]);
    let anonymous = daemon.client();

    // No token, a wrong token: 401 in the dialect's fault shape; the vendor's identity
    // headers are no credential.
    for client in [
        &anonymous,
        &daemon.client_with("0123456789abcdef0123456789abcdef"),
    ] {
        assert_problem(
            &client.request("GET", JOBS, &VENDOR_HEADERS, Body::None),
            401,
            "unauthorized",
        );
        assert_problem(
            &client.request("POST", JOBS, &VENDOR_HEADERS, minimal("ds")),
            401,
            "unauthorized",
        );
        assert_problem(&client.delete(&format!("{JOBS}/1")), 401, "unauthorized");
    }

    // Alice creates; a read-only token reads but neither creates nor deletes; a worker token
    // does not read export jobs.
    let job = create(&alice, &vendor_request());
    let id = id_of(&job);
    assert_eq!(native(&alice, id)["tenant"], "acme");
    assert_eq!(native(&alice, id)["created_by"], "alice");
    assert_eq!(get(&reader, id)["id"], id);
    assert_problem(
        &reader.request("POST", JOBS, &VENDOR_HEADERS, minimal("ds")),
        403,
        "forbidden",
    );
    assert_problem(&reader.delete(&format!("{JOBS}/{id}")), 403, "forbidden");
    assert_problem(&runner.get(JOBS), 403, "forbidden");
    assert_problem(&runner.get(&format!("{JOBS}/{id}")), 403, "forbidden");

    // Bob, in another tenant, sending Alice's org header: the same 404 as an unknown id, and
    // Alice's job is untouched.
    let unknown = bob.get(&format!("{JOBS}/999999"));
    assert_problem(&unknown, 404, "job_not_found");
    let theirs = bob.request("GET", &format!("{JOBS}/{id}"), &VENDOR_HEADERS, Body::None);
    assert_problem(&theirs, 404, "job_not_found");
    let deleted = bob.request(
        "DELETE",
        &format!("{JOBS}/{id}"),
        &VENDOR_HEADERS,
        Body::None,
    );
    assert_problem(&deleted, 404, "job_not_found");
    assert_eq!(get(&alice, id)["status"], "NEW");
    assert!(all_pages(&bob, JOBS).is_empty());
    let bobs = id_of(&create(&bob, &minimal("globex-ds")));
    assert_eq!(all_pages(&bob, JOBS), vec![bobs]);
    assert_eq!(all_pages(&alice, JOBS), vec![id]);
    assert_problem(&alice.get(&format!("{JOBS}/{bobs}")), 404, "job_not_found");

    // An admin crosses tenants.
    let everyone: BTreeSet<i64> = all_pages(&root, JOBS).into_iter().collect();
    assert_eq!(everyone, BTreeSet::from([id, bobs]));
    assert_eq!(
        get(&root, id)["imsOrgId"],
        "1BD6382559DF0C130A49422D@AdobeOrg"
    );
    assert_eq!(
        root.delete(&format!("{JOBS}/{bobs}")).expect_json(200)["status"],
        true
    );
    assert_eq!(get(&bob, bobs)["status"], "FAILED");
}

#[test]
fn the_vendor_examples_get_the_documented_answers() {
    let daemon = Daemon::start();
    let api = daemon.client();
    // "Create a new export job": the printed request and headers.
    let created = create(&api, &vendor_request());
    let second = create(&api, &vendor_request());
    let third = create(&api, &vendor_request());
    // "Retrieve a list of export jobs": `?limit=2` answers the last two jobs.
    let listed = page(&api, &format!("{JOBS}?limit=2"));
    assert_eq!(ids(&listed), vec![id_of(&third), id_of(&second)]);
    let next = listed["link"]["next"].as_str().unwrap();
    assert!(next.starts_with("/export/jobs/?limit=2&offset="), "{next}");
    assert_eq!(
        keys(&listed),
        ["link", "page", "records"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(
        keys(&listed["page"]),
        ["pageOffset", "pageSize", "sort", "sortField"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    // The printed offset form is accepted (it names no job here: everything older follows).
    let older = page(&api, &format!("{JOBS}?offset=1540974701302_96"));
    assert!(ids(&older).is_empty());
    let all = page(&api, &format!("{JOBS}?offset={}_{}", i64::MAX, i64::MAX));
    assert_eq!(ids(&all).len(), 3);
    // "Retrieve a specific export job" and "Cancel or delete a specific export job".
    let id = id_of(&created);
    assert_eq!(get(&api, id)["status"], "NEW");
    let answer = api.request(
        "DELETE",
        &format!("{JOBS}/{id}"),
        &VENDOR_HEADERS[1..],
        Body::None,
    );
    assert_eq!(
        answer.expect_json(200),
        json!({"status": true, "message": "Export job has been marked for cancelling"})
    );
    let records: Vec<Map<String, Value>> = page(&api, JOBS)["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    assert_eq!(records.len(), 3);
}

/// `page.pageOffset` is "the creation time and job id for the last record on the page" (the
/// vendor's OpenAPI), on the first page too: a client that pages by it sees every job once
/// and stops.
#[test]
fn page_offset_names_the_last_record_of_every_page() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let made: Vec<i64> = (0..5)
        .map(|i| id_of(&create(&api, &minimal(&format!("ds-{i}")))))
        .collect();
    let first = page(&api, &format!("{JOBS}?limit=2"));
    let last = &first["records"][1];
    assert_eq!(
        first["page"]["pageOffset"],
        format!("{}_{}", last["creationTime"], last["id"])
    );

    // Paging by pageOffset alone, as a client reading only `page` does.
    let mut seen = Vec::new();
    let mut path = format!("{JOBS}?limit=2");
    for _ in 0..10 {
        let page = page(&api, &path);
        let records = ids(&page);
        if records.is_empty() {
            assert_eq!(page["page"]["pageOffset"], "");
            break;
        }
        seen.extend(records);
        let offset = page["page"]["pageOffset"].as_str().unwrap();
        path = format!("{JOBS}?limit=2&offset={offset}");
    }
    let newest_first: Vec<i64> = made.iter().rev().copied().collect();
    assert_eq!(seen, newest_first, "every job once, and an end");
}

/// The vendor's create answer carries `X-Location`, the href of the job.
#[test]
fn create_answers_the_job_href_in_x_location() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let answer = api.request("POST", JOBS, &VENDOR_HEADERS, vendor_request());
    let job = answer.expect_json(200);
    let href = format!("{JOBS}/{}", id_of(&job));
    assert_eq!(answer.header("x-location"), Some(href.as_str()));
    assert_eq!(api.get(&href).expect_json(200), job);
}

/// `destination.segmentPerBatch` "if not provided, defaults to false": every document says so.
#[test]
fn segment_per_batch_is_false_when_not_sent() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = create(&api, &minimal("ds"));
    let batch = job["destination"]["batchId"].clone();
    let expected = json!({"datasetId": "ds", "segmentPerBatch": false, "batchId": batch});
    assert_eq!(job["destination"], expected);
    assert!(job["destination"].get("batches").is_none(), "{job}");
    let id = id_of(&job);
    assert_eq!(get(&api, id)["destination"], expected);
    assert_eq!(page(&api, JOBS)["records"][0]["destination"], expected);
    let mut null = minimal("ds-null");
    null["destination"]["segmentPerBatch"] = Value::Null;
    assert_eq!(create(&api, &null)["destination"]["segmentPerBatch"], false);
}

/// Every `status` rendered is one of the vendor's enumeration (NEW, PROCESSING, SUCCEEDED,
/// FAILED): a cancelled job is FAILED, its `errors` saying it was cancelled; the filter takes
/// the same four.
#[test]
fn every_status_is_in_the_vendor_enumeration() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let queued = id_of(&create(&api, &minimal("ds-queued")));
    api.delete(&format!("{JOBS}/{queued}")).expect_json(200);
    let running = id_of(&create(&api, &minimal("ds-running")));
    let lease = claim(&api, running);
    api.delete(&format!("{JOBS}/{running}")).expect_json(200);
    assert_eq!(get(&api, running)["status"], "PROCESSING");
    assert!(heartbeat(&api, &lease, json!({})));
    fail(&api, &lease, "stopped", false);
    let cancelled =
        json!([{"code": "cancelled", "msg": "Export job was cancelled", "callStack": ""}]);
    for id in [queued, running] {
        assert_eq!(native(&api, id)["state"], "cancelled");
        let job = get(&api, id);
        assert_eq!(job["status"], "FAILED", "{job}");
        assert_eq!(job["errors"], cancelled, "{job}");
    }
    let listed: BTreeSet<i64> = all_pages(&api, &format!("{JOBS}?status=FAILED"))
        .into_iter()
        .collect();
    assert_eq!(listed, BTreeSet::from([queued, running]));
    for record in page(&api, JOBS)["records"].as_array().unwrap() {
        assert_eq!(record["status"], "FAILED");
    }
    let detail = assert_problem(
        &api.get(&format!("{JOBS}?status=CANCELLED")),
        400,
        "invalid_request",
    );
    assert!(
        detail.ends_with("valid: NEW, PROCESSING, SUCCEEDED, FAILED"),
        "{detail}"
    );
}

/// The Profile API's list parameters on the same path: `start` (records to skip), `page`
/// (counted from 0), `sort` (`field:asc|desc`), with `limit`; combinations that choose the
/// page twice, or page by the creation-time cursor another order, are refused.
#[test]
fn profile_list_parameters_start_page_and_sort() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let made: Vec<i64> = (0..7)
        .map(|i| id_of(&create(&api, &minimal(&format!("ds-{i}")))))
        .collect();
    let newest_first: Vec<i64> = made.iter().rev().copied().collect();

    // start: skip records of the default order; link.next continues after the last one.
    let started = page(&api, &format!("{JOBS}?limit=3&start=2"));
    assert_eq!(ids(&started), newest_first[2..5]);
    let last = &started["records"][2];
    let offset = format!("{}_{}", last["creationTime"], last["id"]);
    assert_eq!(started["page"]["pageOffset"], offset.as_str());
    assert_eq!(
        started["link"]["next"],
        format!("/export/jobs/?limit=3&offset={offset}")
    );
    let rest = page(
        &api,
        &format!("{BASE}{}", started["link"]["next"].as_str().unwrap()),
    );
    assert_eq!(ids(&rest), newest_first[5..]);
    assert_eq!(rest["link"]["next"], "");

    // page: counted from 0.
    assert_eq!(
        ids(&page(&api, &format!("{JOBS}?limit=3&page=0"))),
        newest_first[..3]
    );
    assert_eq!(
        ids(&page(&api, &format!("{JOBS}?limit=3&page=1"))),
        newest_first[3..6]
    );
    assert!(ids(&page(&api, &format!("{JOBS}?limit=3&page=3"))).is_empty());

    // sort: by creation time ascending, paged by the cursor.
    let oldest = page(&api, &format!("{JOBS}?limit=4&sort=creationTime:asc"));
    assert_eq!(ids(&oldest), made[..4]);
    assert_eq!(oldest["page"]["sortField"], "createdTime");
    assert_eq!(oldest["page"]["sort"], "asc");
    let next = oldest["link"]["next"].as_str().unwrap();
    let last = &oldest["records"][3];
    assert_eq!(
        next,
        format!(
            "/export/jobs/?limit=4&offset={}_{}&sort=createdTime:asc",
            last["creationTime"], last["id"]
        )
    );
    assert_eq!(ids(&page(&api, &format!("{BASE}{next}"))), made[4..]);

    // sort by updateTime: the job a worker claimed changed last.
    let lease = claim(&api, made[0]);
    heartbeat(&api, &lease, json!({}));
    let by_update = page(&api, &format!("{JOBS}?limit=3&sort=updateTime:desc"));
    assert_eq!(ids(&by_update)[0], made[0]);
    assert_eq!(by_update["page"]["sortField"], "updateTime");
    assert_eq!(by_update["page"]["sort"], "desc");
    assert_eq!(
        by_update["link"]["next"],
        "/export/jobs/?limit=3&start=3&sort=updateTime:desc"
    );
    let mut walked = Vec::new();
    let mut path = format!("{JOBS}?limit=3&sort=updateTime:desc");
    loop {
        let page = page(&api, &path);
        walked.extend(ids(&page));
        let next = page["link"]["next"].as_str().unwrap().to_owned();
        if next.is_empty() {
            break;
        }
        path = format!("{BASE}{next}");
    }
    assert_eq!(walked.len(), 7);
    assert_eq!(walked.iter().collect::<BTreeSet<_>>().len(), 7);
    let paged = page(
        &api,
        &format!("{JOBS}?limit=3&page=1&sort=id:asc&status=NEW"),
    );
    assert_eq!(ids(&paged), made[4..7]);
    assert_eq!(paged["link"]["next"], "");
    let paged = page(
        &api,
        &format!("{JOBS}?limit=2&page=1&sort=id:asc&status=NEW"),
    );
    assert_eq!(
        paged["link"]["next"],
        "/export/jobs/?limit=2&page=2&sort=id:asc&status=NEW"
    );

    for (query, named) in [
        ("offset=1_1&start=1", "at most one"),
        ("offset=1_1&page=1", "at most one"),
        ("start=1&page=1", "at most one"),
        ("offset=1_1&sort=updateTime:asc", "createdTime"),
        ("sort=name:asc", "sort"),
        ("sort=updateTime:up", "sort direction"),
        ("sort=updateTime:asc,id:desc", "one field"),
        ("page=-1", "page"),
        ("start=x", "start"),
    ] {
        let detail = assert_problem(&api.get(&format!("{JOBS}?{query}")), 400, "invalid_request");
        assert!(detail.contains(named), "{query}: {detail}");
    }
}
