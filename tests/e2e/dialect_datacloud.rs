//! Conformance of the Salesforce Data Cloud Ingest API bulk jobs (`/api/v1/ingest/jobs`): a job
//! walked through its whole life the way a Data Cloud client does it (create, upload CSV
//! batches, close, poll), with a worker driven through the native worker API; malformed CSV
//! refused naming the line with nothing kept; abort deleting the data from the database file;
//! listing, deleting, tenancy, the seed's own example request, batch limits, and a 150 MB batch
//! streamed in bounded memory. Status codes, field names, types, states, time formats and
//! fault documents are checked exactly.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Body, Client, Daemon, Options, Response, add_token, eventually, on_keep_alive, read_response,
    temp_dir, try_connect,
};

const JOBS: &str = "/api/v1/ingest/jobs";
const CSV: (&str, &str) = ("Content-Type", "text/csv");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Every member of a job as create, close, abort and list answer it.
const JOB_FIELDS: [&str; 11] = [
    "id",
    "operation",
    "object",
    "sourceName",
    "createdById",
    "createdDate",
    "systemModstamp",
    "state",
    "contentType",
    "apiVersion",
    "contentUrl",
];

/// The counters `GET /api/v1/ingest/jobs/{id}` adds.
const DETAIL_FIELDS: [&str; 4] = [
    "retries",
    "totalProcessingTime",
    "numberRecordsProcessed",
    "numberRecordsFailed",
];

// ---------------------------------------------------------------------------------------------
// Helpers of this suite

/// `POST /api/v1/ingest/jobs`, asserting 201 and the job's shape; answers the job.
#[track_caller]
fn create(api: &Client, object: &str, operation: &str) -> Value {
    let job = api
        .post(
            JOBS,
            &json!({"object": object, "sourceName": "ecomm", "operation": operation}),
        )
        .expect_json(201);
    assert_job(&job, &JOB_FIELDS);
    assert_eq!(job["state"], "Open", "{job}");
    assert_eq!(job["object"], object);
    assert_eq!(job["operation"], operation);
    job
}

/// The native id of a Data Cloud job document (a string holding the number).
#[track_caller]
fn id(job: &Value) -> i64 {
    job["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("id is not a numeric string in {job}"))
}

#[track_caller]
fn upload(api: &Client, id: i64, body: impl Into<Body>) -> Response {
    api.request("PUT", &format!("{JOBS}/{id}/batches"), &[CSV], body)
}

#[track_caller]
fn patch(api: &Client, id: i64, state: &str) -> Response {
    api.request(
        "PATCH",
        &format!("{JOBS}/{id}"),
        &[JSON],
        json!({ "state": state }),
    )
}

#[track_caller]
fn get(api: &Client, id: i64) -> Value {
    let job = api.get(&format!("{JOBS}/{id}")).expect_json(200);
    let mut fields = JOB_FIELDS.to_vec();
    fields.extend(DETAIL_FIELDS);
    if job["state"] == "Failed" {
        fields.push("errorMessage");
    }
    assert_job(&job, &fields);
    job
}

/// Asserts the exact member set, the types and the enumerations of a job document.
#[track_caller]
fn assert_job(job: &Value, fields: &[&str]) {
    let members: BTreeSet<&str> = job
        .as_object()
        .unwrap_or_else(|| panic!("a job is an object: {job}"))
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = fields.iter().copied().collect();
    assert_eq!(members, expected, "members of {job}");
    let id = id(job);
    assert!(id > 0);
    for text in ["object", "sourceName", "createdById"] {
        assert!(job[text].is_string(), "{text} in {job}");
    }
    assert!(
        ["upsert", "delete"].contains(&job["operation"].as_str().unwrap()),
        "{job}"
    );
    assert!(
        [
            "Open",
            "UploadComplete",
            "InProgress",
            "JobComplete",
            "Failed",
            "Aborted"
        ]
        .contains(&job["state"].as_str().unwrap()),
        "{job}"
    );
    assert_eq!(job["contentType"], "CSV");
    assert_eq!(job["apiVersion"], "v1");
    assert_eq!(
        job["contentUrl"],
        format!("api/v1/ingest/jobs/{id}/batches")
    );
    for time in ["createdDate", "systemModstamp"] {
        assert_time(job[time].as_str().unwrap_or_default());
    }
    for counter in DETAIL_FIELDS {
        if fields.contains(&counter) {
            assert!(
                job[counter].as_i64().is_some_and(|n| n >= 0),
                "{counter} in {job}"
            );
        }
    }
}

/// `2021-06-10T13:25:40.000Z`, exactly.
#[track_caller]
fn assert_time(text: &str) {
    let shape = "dddd-dd-ddTdd:dd:dd.dddZ";
    let fits = text.len() == shape.len()
        && text.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            other => c == other,
        });
    assert!(fits, "not a Data Cloud time: {text:?}");
}

/// Asserts the Salesforce fault document `[{"errorCode": CODE, "message": "..."}]` and
/// nothing else; answers the message.
#[track_caller]
fn assert_fault(response: &Response, status: u16, code: &str) -> String {
    assert_eq!(
        response.status,
        status,
        "expected {status} {code}, got {}: {}",
        response.status,
        response.text()
    );
    assert!(
        response
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{:?}",
        response.headers
    );
    let doc = response.json();
    let items = doc
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {doc}"));
    assert_eq!(items.len(), 1, "{doc}");
    let item = items[0].as_object().unwrap();
    let keys: BTreeSet<&str> = item.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["errorCode", "message"]), "{doc}");
    assert_eq!(item["errorCode"], code, "{doc}");
    let message = item["message"].as_str().unwrap();
    assert!(!message.is_empty());
    message.to_owned()
}

/// A worker's lease on a claimed job (native worker API).
struct Lease {
    id: i64,
    worker: String,
    token: i64,
}

/// Claims the one job waiting on queue `datacloud` for `worker`.
#[track_caller]
fn claim(api: &Client, worker: &str) -> Lease {
    let jobs = api.claim(worker, "datacloud", 1);
    assert_eq!(jobs.len(), 1, "one job to claim: {jobs:?}");
    Lease {
        id: jobs[0]["id"].as_i64().unwrap(),
        worker: worker.to_owned(),
        token: jobs[0]["lease_token"].as_i64().unwrap(),
    }
}

impl Lease {
    #[track_caller]
    fn call(&self, api: &Client, action: &str, mut body: Value) -> Value {
        body["worker"] = json!(self.worker);
        body["lease_token"] = json!(self.token);
        api.post(&format!("/v1/jobs/{}/{action}", self.id), &body)
            .expect_json(200)
    }
}

/// Data rows (batches, chunks) of a job in the database file.
#[track_caller]
fn data_rows(daemon: &Daemon, id: i64) -> (u64, u64) {
    let batches = daemon.sql(&format!(
        "SELECT count(*) FROM job_data_batches WHERE job_id = {id}"
    ));
    let chunks = daemon.sql(&format!(
        "SELECT count(*) FROM job_data_chunks WHERE job_id = {id}"
    ));
    (batches.parse().unwrap(), chunks.parse().unwrap())
}

/// The job's data as the native API streams it back.
fn native_data(api: &Client, id: i64) -> Vec<u8> {
    api.get(&format!("/v1/jobs/{id}/data"))
        .expect(200)
        .body
        .clone()
}

/// CSV rows `from..to` of four columns, with quoted fields, escaped quotes and a line break
/// inside a quoted field every so often.
fn rows(from: u64, to: u64, line_end: &str) -> String {
    let mut out = String::new();
    for i in from..to {
        if i % 7 == 0 {
            out.push_str(&format!(
                "{i},\"Name, {i}\",\"says \"\"hi\"\"\nand more\",{i}.5{line_end}"
            ));
        } else {
            out.push_str(&format!("{i},Name {i},plain,{i}.25{line_end}"));
        }
    }
    out
}

const HEADER: &str = "id,name,note,amount\n";

// ---------------------------------------------------------------------------------------------
// The whole life of a job

#[test]
fn a_bulk_job_walks_its_whole_life() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = create(&api, "Contact", "upsert");
    let id = id(&job);
    assert_eq!(job["sourceName"], "ecomm");
    assert_eq!(job["createdById"], "local");
    assert_eq!(job["createdDate"], job["systemModstamp"]);

    // The job is an ordinary job of the native API: kind ingest on queue datacloud.
    let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["kind"], "ingest");
    assert_eq!(native["queue"], "datacloud");
    assert_eq!(native["dialect"], "datacloud");
    assert_eq!(native["state"], "open");
    assert_eq!(native["source"], "ecomm");
    assert_eq!(native["target"], "Contact");
    assert_eq!(native["payload"]["operation"], "upsert");
    // Open: not runnable yet.
    assert!(api.claim("w", "datacloud", 1).is_empty());

    // Three batches: with Content-Length, chunked without it, and a multi-MB one in pieces.
    let first = format!("{HEADER}{}", rows(0, 10, "\n")).into_bytes();
    let second = format!("id,name,note,amount\r\n{}", rows(10, 30, "\r\n")).into_bytes();
    let large = format!("{HEADER}{}", rows(30, 120_000, "\n")).into_bytes();
    assert!(large.len() > 3 * 1024 * 1024, "{}", large.len());
    let answer = upload(&api, id, first.clone());
    answer.expect(202);
    assert!(answer.body.is_empty(), "202 has no body: {}", answer.text());
    let pieces: Vec<Vec<u8>> = second.chunks(37).map(<[u8]>::to_vec).collect();
    upload(&api, id, Body::Chunked(pieces)).expect(202);
    let pieces: Vec<Vec<u8>> = large.chunks(100_003).map(<[u8]>::to_vec).collect();
    upload(&api, id, Body::Chunked(pieces)).expect(202);
    // Trailing slash, and a charset parameter.
    api.request(
        "PUT",
        &format!("{JOBS}/{id}/batches/"),
        &[("Content-Type", "text/csv; charset=UTF-8")],
        first.clone(),
    )
    .expect(202);

    let open = get(&api, id);
    assert_eq!(open["state"], "Open");
    assert_eq!(open["numberRecordsProcessed"], 0);
    assert_eq!(open["totalProcessingTime"], 0);
    assert_eq!(open["retries"], 0);
    let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["data_batches"], 4);
    assert_eq!(
        native["data_bytes"],
        first.len() * 2 + second.len() + large.len()
    );
    assert_eq!(data_rows(&daemon, id).0, 4);

    // Close: UploadComplete, the job is queued for a worker.
    let closed = patch(&api, id, "UploadComplete").expect_json(200);
    assert_job(&closed, &JOB_FIELDS);
    assert_eq!(closed["state"], "UploadComplete");
    assert_eq!(closed["createdDate"], job["createdDate"]);
    assert_eq!(get(&api, id)["state"], "UploadComplete");

    // No batch after close, no second close.
    let message = assert_fault(&upload(&api, id, first.clone()), 409, "INVALIDJOBSTATE");
    assert!(message.contains("UploadComplete"), "{message}");
    assert_fault(&patch(&api, id, "UploadComplete"), 409, "INVALIDJOBSTATE");

    // A worker claims it through the native API and reads the batches byte for byte.
    let lease = claim(&api, "ingester");
    assert_eq!(lease.id, id);
    assert_eq!(get(&api, id)["state"], "InProgress");
    let mut all = first.clone();
    all.extend_from_slice(&second);
    all.extend_from_slice(&large);
    all.extend_from_slice(&first);
    assert!(native_data(&api, id) == all, "the batches read back differ");

    lease.call(
        &api,
        "heartbeat",
        json!({"progress": {"numberRecordsProcessed": 5000, "numberRecordsFailed": 2}}),
    );
    let running = get(&api, id);
    assert_eq!(running["state"], "InProgress");
    assert_eq!(running["numberRecordsProcessed"], 5000);
    assert_eq!(running["numberRecordsFailed"], 2);
    lease.call(
        &api,
        "heartbeat",
        json!({"progress": {"numberRecordsProcessed": 120_010}}),
    );
    lease.call(&api, "complete", json!({"result": {"ok": true}}));

    let done = get(&api, id);
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["numberRecordsProcessed"], 120_010);
    assert_eq!(done["numberRecordsFailed"], 2);
    assert_eq!(done["retries"], 0);
    assert!(done["systemModstamp"].as_str() >= job["systemModstamp"].as_str());

    // Finished: no abort, no close, no batch.
    assert_fault(&patch(&api, id, "Aborted"), 409, "INVALIDJOBSTATE");
    assert_fault(&patch(&api, id, "UploadComplete"), 409, "INVALIDJOBSTATE");
    assert_fault(&upload(&api, id, first.clone()), 409, "INVALIDJOBSTATE");

    // Delete: 204, the job and its data are gone.
    let deleted = api.delete(&format!("{JOBS}/{id}"));
    deleted.expect(204);
    assert!(deleted.body.is_empty());
    assert_fault(&api.get(&format!("{JOBS}/{id}")), 404, "NOT_FOUND");
    assert_eq!(data_rows(&daemon, id), (0, 0));
    assert_eq!(
        daemon.sql(&format!("SELECT count(*) FROM jobs WHERE id = {id}")),
        "0"
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed CSV

#[test]
fn malformed_batches_are_refused_naming_the_line_and_nothing_is_kept() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = create(&api, "Order", "upsert");
    let id = id(&job);
    let good = format!("{HEADER}{}", rows(0, 20, "\n")).into_bytes();
    upload(&api, id, good.clone()).expect(202);

    let deep = {
        // A fault 2 MB into a chunked batch: chunks already written are discarded too.
        let mut text = format!("{HEADER}{}", rows(0, 80_000, "\n"));
        let line = text.matches('\n').count() + 1;
        text.push_str("80000,\"never closed,x,1\n80001,a,b,2\n");
        (text.into_bytes(), line)
    };
    assert!(deep.0.len() > 2 * 1024 * 1024);

    let cases: Vec<(&str, Body, usize, &str)> = vec![
        (
            "unbalanced quote",
            Body::from("id,name\n1,\"open\n2,b\n"),
            2,
            "unbalanced quote",
        ),
        (
            "wrong field count",
            Body::from("id,name\n1,a\n2,b,c\n"),
            3,
            "3 fields where the header row has 2",
        ),
        (
            "invalid UTF-8",
            Body::from(b"id,name\n1,a\n2,caf\xE9\n".to_vec()),
            3,
            "UTF-8",
        ),
        (
            "quote inside an unquoted field",
            Body::from("id,name\n1,a\"b\n"),
            2,
            "double quote",
        ),
        (
            "text after a closing quote",
            Body::from("id,name\n1,\"a\"b\n"),
            2,
            "closing quote",
        ),
        (
            "a bare carriage return",
            Body::from("id,name\r1,a\r\n"),
            1,
            "carriage return",
        ),
        ("an empty batch", Body::from(""), 1, "empty"),
        (
            "a duplicate header name",
            Body::from("id,id\n1,2\n"),
            1,
            "twice",
        ),
        (
            "wrong field count, chunked",
            Body::Chunked(vec![
                b"id,na".to_vec(),
                b"me\n1,a\n2,".to_vec(),
                b"b\n3\n".to_vec(),
            ]),
            4,
            "1 field where",
        ),
        (
            "a fault deep in a large chunked batch",
            Body::Chunked(deep.0.chunks(65_536).map(<[u8]>::to_vec).collect()),
            deep.1,
            "never closed",
        ),
    ];
    for (what, body, line, words) in cases {
        let message = assert_fault(&upload(&api, id, body), 400, "INVALID_CSV");
        assert!(
            message.contains(&format!("line {line}:")) && message.contains(words),
            "{what}: {message}"
        );
    }

    // Nothing of any refused batch is kept: one batch, the good one, in the API and the file.
    let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["data_batches"], 1, "{native}");
    assert_eq!(native["data_bytes"], good.len());
    assert_eq!(data_rows(&daemon, id), (1, 1));
    assert!(native_data(&api, id) == good);
    assert_eq!(get(&api, id)["state"], "Open");

    // Delete jobs: no header, and the primary key first.
    let delete = id_of_created(&api, "Order", "delete");
    upload(&api, delete, "k-1\nk-2\r\n\"k,3\"\n").expect(202);
    upload(&api, delete, "k-4,2021-06-10\nk-5,2021-06-11").expect(202);
    let message = assert_fault(&upload(&api, delete, "k-6\n\nk-7\n"), 400, "INVALID_CSV");
    assert!(
        message.contains("line 2:") && message.contains("primary key"),
        "{message}"
    );
    let message = assert_fault(&upload(&api, delete, "k-6,a\nk-7\n"), 400, "INVALID_CSV");
    assert!(message.contains("line 2:"), "{message}");
    assert_eq!(data_rows(&daemon, delete).0, 2);

    // Not CSV at all: 415, before the body is read.
    assert_fault(
        &api.request(
            "PUT",
            &format!("{JOBS}/{id}/batches"),
            &[JSON],
            json!({"id": 1}),
        ),
        415,
        "INVALID_CONTENT_TYPE",
    );
    assert_fault(
        &api.request(
            "PUT",
            &format!("{JOBS}/{id}/batches"),
            &[("Content-Type", "text/csv; charset=ISO-8859-1")],
            "id\n1\n",
        ),
        415,
        "INVALID_CONTENT_TYPE",
    );
    assert_eq!(data_rows(&daemon, id), (1, 1));
}

#[track_caller]
fn id_of_created(api: &Client, object: &str, operation: &str) -> i64 {
    id(&create(api, object, operation))
}

/// A batch refused before it is read (415 content type, 404 unknown job or path, 409 job no
/// longer open), with a small body, 8 MiB or 8 MiB chunked, leaves a keep-alive client
/// (jsforce's pooled agent) able to send its next request: on the same connection, or on a
/// new one after an answer that said `Connection: close`.
#[test]
fn a_refused_batch_leaves_its_keep_alive_connection_good() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let open = id_of_created(&api, "Orders", "upsert");
    let closed = id_of_created(&api, "Orders", "upsert");
    patch(&api, closed, "UploadComplete").expect(200);
    let next = format!("{JOBS}/{open}");
    let refusals = [
        (
            format!("{JOBS}/{open}/batches"),
            JSON,
            415,
            "INVALID_CONTENT_TYPE",
        ),
        (format!("{JOBS}/999999/batches"), CSV, 404, "NOT_FOUND"),
        (format!("{JOBS}/{open}/batchez"), CSV, 404, "NOT_FOUND"),
        (
            format!("{JOBS}/{closed}/batches"),
            CSV,
            409,
            "INVALIDJOBSTATE",
        ),
    ];
    for (path, content_type, status, code) in refusals {
        for (what, body) in crate::data::refused_bodies() {
            let (refused, after) =
                on_keep_alive(daemon.addr(), "PUT", &path, &[content_type], body, &next);
            assert_eq!(
                refused.status,
                status,
                "PUT {path} with {what}: {}",
                refused.text()
            );
            assert_fault(&refused, status, code);
            if let Some(after) = after {
                after.expect(200);
            }
        }
    }
    assert_eq!(get(&api, open)["state"], "Open");
}

// ---------------------------------------------------------------------------------------------
// Abort

#[test]
fn abort_deletes_the_data_from_the_database_file() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let kept = id_of_created(&api, "Contact", "upsert");
    let aborted = id_of_created(&api, "Contact", "upsert");
    let batch = format!("{HEADER}{}", rows(0, 30_000, "\n")).into_bytes();
    for job in [kept, aborted] {
        upload(&api, job, batch.clone()).expect(202);
        upload(&api, job, batch.clone()).expect(202);
    }
    let (batches, chunks) = data_rows(&daemon, aborted);
    assert_eq!(batches, 2);
    assert!(chunks >= 2, "{chunks}");

    let answer = patch(&api, aborted, "Aborted").expect_json(200);
    assert_job(&answer, &JOB_FIELDS);
    assert_eq!(answer["state"], "Aborted");
    assert_eq!(get(&api, aborted)["state"], "Aborted");
    // The rows are gone from the file; the other job's are untouched.
    assert_eq!(data_rows(&daemon, aborted), (0, 0));
    assert_eq!(data_rows(&daemon, kept), (2, chunks));
    assert_eq!(
        daemon.sql(&format!("SELECT state FROM jobs WHERE id = {aborted}")),
        "cancelled"
    );

    // After an abort: no batch, no close, no second abort.
    assert_fault(
        &upload(&api, aborted, batch.clone()),
        409,
        "INVALIDJOBSTATE",
    );
    assert_fault(
        &patch(&api, aborted, "UploadComplete"),
        409,
        "INVALIDJOBSTATE",
    );
    assert_fault(&patch(&api, aborted, "Aborted"), 409, "INVALIDJOBSTATE");

    // An UploadComplete job aborts too, its data deleted; it never reaches a worker.
    patch(&api, kept, "UploadComplete").expect(200);
    assert_eq!(
        patch(&api, kept, "Aborted").expect_json(200)["state"],
        "Aborted"
    );
    assert_eq!(data_rows(&daemon, kept), (0, 0));
    assert!(api.claim("w", "datacloud", 1).is_empty());

    // Any other target state is a 400; so is a body that is not {"state": ...}.
    let open = id_of_created(&api, "Contact", "upsert");
    for state in ["Open", "InProgress", "JobComplete", "Failed", "Closed", ""] {
        let message = assert_fault(&patch(&api, open, state), 400, "INVALIDJOBSTATE");
        assert!(message.contains("UploadComplete or Aborted"), "{message}");
    }
    for body in [
        json!({}),
        json!({"state": 3}),
        json!(["UploadComplete"]),
        json!({"state": "Aborted", "reason": "x"}),
    ] {
        assert_fault(
            &api.request("PATCH", &format!("{JOBS}/{open}"), &[JSON], body),
            400,
            "INVALIDJOBSTATE",
        );
    }
    assert_fault(
        &api.request("PATCH", &format!("{JOBS}/{open}"), &[JSON], "{\"state\":"),
        400,
        "JSON_PARSER_ERROR",
    );
    assert_eq!(get(&api, open)["state"], "Open");

    // Aborting a job a worker is processing asks the worker to stop: it sees the request on
    // its next heartbeat and acknowledges it, and the job ends Aborted with its data gone.
    let busy = id_of_created(&api, "Contact", "upsert");
    upload(&api, busy, batch.clone()).expect(202);
    patch(&api, busy, "UploadComplete").expect(200);
    let lease = claim(&api, "w");
    assert_eq!(
        patch(&api, busy, "Aborted").expect_json(200)["state"],
        "InProgress"
    );
    let beat = lease.call(&api, "heartbeat", json!({}));
    assert_eq!(beat["cancel_requested"], true);
    lease.call(
        &api,
        "fail",
        json!({"error": "aborted", "retryable": false}),
    );
    assert_eq!(get(&api, busy)["state"], "Aborted");
    assert_eq!(data_rows(&daemon, busy), (0, 0));
}

// ---------------------------------------------------------------------------------------------
// Listing

/// The ids of a list answer, asserting its envelope and each item's shape.
#[track_caller]
fn listed(api: &Client, query: &str) -> Vec<Value> {
    let page = api.get(&format!("{JOBS}?{query}")).expect_json(200);
    let members: Vec<&String> = page.as_object().unwrap().keys().collect();
    assert_eq!(members, ["data"], "{page}");
    let data = page["data"].as_array().unwrap().clone();
    for job in &data {
        assert_job(job, &JOB_FIELDS);
    }
    data
}

fn ids(jobs: &[Value]) -> Vec<i64> {
    jobs.iter().map(id).collect()
}

#[test]
fn listing_filters_orders_and_pages() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let objects = ["Delta", "alpha", "Charlie", "bravo", "Echo", "Alpha"];
    let mut all = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let op = if i % 2 == 0 { "upsert" } else { "delete" };
        all.push(id_of_created(&api, object, op));
        thread::sleep(Duration::from_millis(3));
    }
    // States: [Open, UploadComplete, Aborted, InProgress, JobComplete, Open].
    patch(&api, all[2], "Aborted").expect(200);
    for job in [all[3], all[4]] {
        patch(&api, job, "UploadComplete").expect(200);
    }
    let first = claim(&api, "w1");
    let second = claim(&api, "w2");
    let (done, busy) = if first.id == all[4] {
        (first, second)
    } else {
        (second, first)
    };
    assert_eq!(busy.id, all[3]);
    done.call(&api, "complete", json!({}));
    patch(&api, all[1], "UploadComplete").expect(200);
    // A native job is not a Data Cloud job: never listed here.
    let native = crate::support::id_of(
        &api.create(&json!({"kind": "ingest", "queue": "datacloud", "upload": true})),
    );
    assert_fault(&api.get(&format!("{JOBS}/{native}")), 404, "NOT_FOUND");

    // Default: every Data Cloud job, latest change first.
    let default = listed(&api, "");
    assert_eq!(default.len(), 6);
    assert!(!ids(&default).contains(&native));
    let stamps: Vec<(String, i64)> = default
        .iter()
        .map(|j| (j["systemModstamp"].as_str().unwrap().to_owned(), id(j)))
        .collect();
    let mut sorted = stamps.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(stamps, sorted, "systemModstamp descending");
    assert_eq!(
        ids(&listed(&api, "orderby=&states=&limit=&offset=")),
        ids(&default)
    );
    assert_eq!(ids(&api_list_slash(&api)), ids(&default));

    // states, and the older spelling state; several in one comma list.
    let by_states =
        |query: &str| -> BTreeSet<i64> { ids(&listed(&api, query)).into_iter().collect() };
    assert_eq!(by_states("states=Open"), BTreeSet::from([all[0], all[5]]));
    assert_eq!(by_states("state=Open"), BTreeSet::from([all[0], all[5]]));
    assert_eq!(
        by_states("states=UploadComplete,Aborted,InProgress"),
        BTreeSet::from([all[1], all[2], all[3]])
    );
    assert_eq!(by_states("states=JobComplete"), BTreeSet::from([all[4]]));
    assert_eq!(by_states("states=Failed"), BTreeSet::new());
    for job in listed(&api, "states=Open,JobComplete") {
        assert!(["Open", "JobComplete"].contains(&job["state"].as_str().unwrap()));
    }

    // orderBy (and orderby): descending unless ASC is asked for.
    let created = ids(&listed(&api, "orderBy=createdDate"));
    assert_eq!(created, all.iter().rev().copied().collect::<Vec<_>>());
    let by_id = ids(&listed(&api, "orderby=id%20ASC"));
    assert_eq!(by_id, all);
    let by_object: Vec<String> = listed(&api, "orderBy=object")
        .iter()
        .map(|j| j["object"].as_str().unwrap().to_owned())
        .collect();
    let mut expected: Vec<String> = objects.iter().map(|s| (*s).to_owned()).collect();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(by_object, expected);
    let by_state: Vec<String> = listed(&api, "orderBy=state+ASC")
        .iter()
        .map(|j| j["state"].as_str().unwrap().to_owned())
        .collect();
    // Ordered by the canonical state name: cancelled, open, queued, running, succeeded.
    assert_eq!(
        by_state,
        [
            "Aborted",
            "Open",
            "Open",
            "UploadComplete",
            "InProgress",
            "JobComplete"
        ]
    );
    assert_eq!(ids(&listed(&api, "orderBy=systemModstamp")), ids(&default));

    // limit and offset (rows).
    let page = ids(&listed(&api, "orderBy=id&limit=2&offset=2"));
    assert_eq!(page, vec![all[3], all[2]]);
    assert_eq!(
        ids(&listed(&api, "orderBy=id&limit=4&offset=4")),
        vec![all[1], all[0]]
    );
    assert!(listed(&api, "offset=6").is_empty());
    assert_eq!(
        listed(&api, "limit=1000").len(),
        6,
        "a large limit is clamped"
    );

    // The default page is 20.
    for _ in 0..16 {
        id_of_created(&api, "More", "upsert");
    }
    assert_eq!(listed(&api, "").len(), 20);
    assert_eq!(listed(&api, "offset=20").len(), 2);

    // Bad values: 400 naming the parameter.
    for (query, words) in [
        ("states=Done", "unknown state"),
        ("states=Open,Closed", "unknown state"),
        ("orderBy=name", "orderBy"),
        ("orderBy=id%20UP", "direction"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("page=2", "unknown query parameter"),
    ] {
        let message = assert_fault(
            &api.get(&format!("{JOBS}?{query}")),
            400,
            "INVALID_QUERY_PARAMETER",
        );
        assert!(message.contains(words), "{query}: {message}");
    }
}

fn api_list_slash(api: &Client) -> Vec<Value> {
    let page = api.get(&format!("{JOBS}/")).expect_json(200);
    page["data"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// Delete

#[test]
fn delete_only_in_upload_complete_or_a_finished_state() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let batch = format!("{HEADER}{}", rows(0, 100, "\n"));
    let delete = |job: i64| api.delete(&format!("{JOBS}/{job}"));

    // Open: 409.
    let open = id_of_created(&api, "Contact", "upsert");
    upload(&api, open, batch.as_str()).expect(202);
    let message = assert_fault(&delete(open), 409, "INVALIDJOBSTATE");
    assert!(message.contains("Open"), "{message}");
    assert_eq!(get(&api, open)["state"], "Open");

    // UploadComplete: 204, with its data.
    patch(&api, open, "UploadComplete").expect(200);
    assert_eq!(data_rows(&daemon, open), (1, 1));
    delete(open).expect(204);
    assert_eq!(data_rows(&daemon, open), (0, 0));
    assert_fault(&api.get(&format!("{JOBS}/{open}")), 404, "NOT_FOUND");
    assert!(
        api.claim("w", "datacloud", 1).is_empty(),
        "a deleted job never runs"
    );

    // InProgress: 409. Failed (with its error), then 204.
    let failing = id_of_created(&api, "Contact", "delete");
    upload(&api, failing, "k1\nk2\n").expect(202);
    patch(&api, failing, "UploadComplete").expect(200);
    let lease = claim(&api, "w");
    assert_fault(&delete(failing), 409, "INVALIDJOBSTATE");
    // A retryable failure puts the job back in the queue, still InProgress, and counts as a
    // retry.
    lease.call(&api, "fail", json!({"error": "flaky", "retryable": true}));
    assert_eq!(get(&api, failing)["state"], "InProgress");
    assert_fault(&delete(failing), 409, "INVALIDJOBSTATE");
    let mut again = None;
    eventually("the retry is claimable", Duration::from_secs(10), || {
        let jobs = api.claim("w", "datacloud", 1);
        again = jobs.first().map(|j| Lease {
            id: j["id"].as_i64().unwrap(),
            worker: "w".into(),
            token: j["lease_token"].as_i64().unwrap(),
        });
        again.is_some()
    });
    let again = again.unwrap();
    assert_eq!(get(&api, failing)["retries"], 1);
    again.call(
        &api,
        "fail",
        json!({"error": "bad rows", "retryable": false}),
    );
    let failed = get(&api, failing);
    assert_eq!(failed["state"], "Failed");
    assert_eq!(failed["errorMessage"], "bad rows");
    assert_eq!(failed["retries"], 1);
    assert!(failed["totalProcessingTime"].as_i64().unwrap() >= 0);
    delete(failing).expect(204);
    assert_eq!(data_rows(&daemon, failing), (0, 0));

    // JobComplete and Aborted: 204.
    let complete = id_of_created(&api, "Contact", "upsert");
    upload(&api, complete, batch.as_str()).expect(202);
    patch(&api, complete, "UploadComplete").expect(200);
    claim(&api, "w").call(&api, "complete", json!({}));
    delete(complete).expect(204);
    assert_eq!(data_rows(&daemon, complete), (0, 0));
    let aborted = id_of_created(&api, "Contact", "upsert");
    patch(&api, aborted, "Aborted").expect(200);
    delete(aborted).expect(204);

    // Unknown, deleted, not a number: the same 404.
    for path in [
        format!("{JOBS}/{aborted}"),
        format!("{JOBS}/999999"),
        format!("{JOBS}/7505e000001NLkPAAW"),
    ] {
        let message = assert_fault(&api.delete(&path), 404, "NOT_FOUND");
        assert_eq!(message, "The requested resource does not exist");
    }
}

// ---------------------------------------------------------------------------------------------
// Requests and faults

#[test]
fn requests_are_checked_and_faults_have_the_salesforce_shape() {
    let daemon = Daemon::start();
    let api = daemon.client();

    // Required members, values, unknown members.
    for (body, words) in [
        (
            json!({"sourceName": "s", "operation": "upsert"}),
            "`object` is required",
        ),
        (
            json!({"object": "o", "operation": "upsert"}),
            "`sourceName` is required",
        ),
        (
            json!({"object": "o", "sourceName": "s"}),
            "`operation` is required",
        ),
        (
            json!({"object": "o", "sourceName": "s", "operation": "insert"}),
            "upsert or delete",
        ),
        (
            json!({"object": "", "sourceName": "s", "operation": "upsert"}),
            "non-empty",
        ),
        (
            json!({"object": "o", "sourceName": "s", "operation": "upsert", "externalIdFieldName": "Id"}),
            "unknown member `externalIdFieldName`",
        ),
        (json!(["o"]), "JSON object"),
    ] {
        let message = assert_fault(&api.post(JOBS, &body), 400, "INVALIDJOB");
        assert!(message.contains(words), "{body}: {message}");
    }
    assert_fault(
        &api.request("POST", JOBS, &[JSON], "{\"object\": "),
        400,
        "JSON_PARSER_ERROR",
    );
    // Bulk API 2.0 clients' extra members with their only values are accepted.
    let job = api
        .post(
            JOBS,
            &json!({"object": "o", "sourceName": "s", "operation": "delete",
                    "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "CRLF"}),
        )
        .expect_json(201);
    assert_job(&job, &JOB_FIELDS);
    assert_eq!(job["operation"], "delete");
    // Nothing was created by the refused requests.
    assert_eq!(listed(&api, "").len(), 1);
    let id = id(&job);

    // Every route with and without a trailing slash; wrong methods are 405 with Allow.
    api.get(&format!("{JOBS}/{id}/")).expect(200);
    api.request(
        "POST",
        &format!("{JOBS}/"),
        &[JSON],
        json!({"object": "o", "sourceName": "s", "operation": "upsert"}),
    )
    .expect(201);
    for (method, path, allow) in [
        ("PUT", JOBS.to_owned(), "GET, HEAD, POST"),
        ("POST", format!("{JOBS}/{id}"), "GET, HEAD, PATCH, DELETE"),
        ("GET", format!("{JOBS}/{id}/batches"), "PUT"),
        ("DELETE", format!("{JOBS}/{id}/batches/"), "PUT"),
    ] {
        let answer = api.request(method, &path, &[], Body::None);
        let message = assert_fault(&answer, 405, "METHOD_NOT_ALLOWED");
        assert_eq!(
            message,
            format!("HTTP Method '{method}' not allowed. Allowed are {allow}")
        );
        assert_eq!(answer.header("allow"), Some(allow));
    }
    // HEAD on every GET route: the GET's status and length, without a body.
    for path in [JOBS.to_owned(), format!("{JOBS}/"), format!("{JOBS}/{id}")] {
        let get = api.get(&path);
        assert_eq!(get.status, 200, "GET {path}: {}", get.text());
        let mut stream = crate::support::connect(daemon.addr());
        let head = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let mut raw = Vec::new();
        io::Read::read_to_end(&mut stream, &mut raw).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
        assert!(head.starts_with("HTTP/1.1 200"), "HEAD {path}: {head}");
        assert!(rest.is_empty(), "HEAD {path} sent a body: {rest}");
        let length = head.lines().find_map(|line| {
            let line = line.to_ascii_lowercase();
            line.strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        });
        if let Some(length) = length {
            assert_eq!(length, get.body.len().to_string(), "HEAD {path}");
        }
        assert!(head.contains("application/json"), "HEAD {path}: {head}");
    }
    for path in [
        format!("{JOBS}/{id}/results"),
        format!("{JOBS}/{id}/batches/1"),
        format!("{JOBS}/abc/batches"),
    ] {
        let verb = if path.ends_with("batches") {
            "PUT"
        } else {
            "GET"
        };
        assert_fault(
            &api.request(verb, &path, &[CSV], "a\n1\n"),
            404,
            "NOT_FOUND",
        );
    }
}

/// The seed's example request, sent as printed (with our host and a job of ours): the
/// documented answer.
#[test]
fn the_vendor_example_request_gets_the_documented_answer() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of_created(&api, "Contact", "upsert");
    upload(
        &api,
        id,
        format!("{HEADER}{}", rows(0, 3, "\n")).into_bytes(),
    )
    .expect(202);
    // curl --location --request PATCH 'https://{instance_url}/api/v1/ingest/jobs/{id}'
    //   --header 'Content-Type: application/json' --header 'Authorization: Bearer <token>'
    //   --data-raw '{ "state":"UploadComplete" }'
    let answer = api.request(
        "PATCH",
        &format!("/api/v1/ingest/jobs/{id}"),
        &[("Content-Type", "application/json")],
        "{\n   \"state\":\"UploadComplete\"\n}",
    );
    let job = answer.expect_json(200);
    assert!(
        answer
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    for field in [
        "id",
        "operation",
        "object",
        "createdById",
        "createdDate",
        "systemModstamp",
        "state",
        "contentType",
        "apiVersion",
    ] {
        assert!(job.get(field).is_some(), "{field} in {job}");
    }
    assert_eq!(job["id"], id.to_string());
    assert_eq!(job["operation"], "upsert");
    assert_eq!(job["object"], "Contact");
    assert_eq!(job["state"], "UploadComplete");
    assert_eq!(job["contentType"], "CSV");
    assert_eq!(job["apiVersion"], "v1");
    assert_job(&job, &JOB_FIELDS);
}

// ---------------------------------------------------------------------------------------------
// Tenancy

#[test]
fn tokens_and_tenants_apply() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    let alice = add_token(&tokens, "alice", "acme", "read,write");
    let reader = add_token(&tokens, "reader", "acme", "read");
    let bob = add_token(&tokens, "bob", "globex", "read,write,work");
    let runner = add_token(&tokens, "runner", "acme", "work");
    let daemon = Daemon::start_with(
        dir,
        Options {
            tokens: Some(tokens),
            ..Options::default()
        },
    );
    let alice_api = daemon.client_with(&alice);
    let bob_api = daemon.client_with(&bob);

    let job = create(&alice_api, "Contact", "upsert");
    assert_eq!(job["createdById"], "alice");
    let id = id(&job);
    upload(&alice_api, id, "id\n1\n").expect(202);

    // No token, an unknown token: 401 in the Salesforce shape.
    assert_fault(&daemon.client().get(JOBS), 401, "INVALID_SESSION_ID");
    assert_fault(
        &daemon
            .client_with("not-a-token")
            .get(&format!("{JOBS}/{id}")),
        401,
        "INVALID_SESSION_ID",
    );
    // A read-only token reads but neither creates, uploads, closes nor deletes.
    let reader_api = daemon.client_with(&reader);
    get(&reader_api, id);
    assert_eq!(ids(&listed(&reader_api, "")), vec![id]);
    assert_fault(
        &reader_api.post(
            JOBS,
            &json!({"object": "o", "sourceName": "s", "operation": "upsert"}),
        ),
        403,
        "INSUFFICIENT_ACCESS",
    );
    assert_fault(
        &upload(&reader_api, id, "id\n2\n"),
        403,
        "INSUFFICIENT_ACCESS",
    );
    assert_fault(
        &patch(&reader_api, id, "Aborted"),
        403,
        "INSUFFICIENT_ACCESS",
    );
    assert_fault(
        &reader_api.delete(&format!("{JOBS}/{id}")),
        403,
        "INSUFFICIENT_ACCESS",
    );

    // Another tenant's job is the same 404 as an unknown id, for every route.
    let unknown = bob_api.get(&format!("{JOBS}/999999"));
    assert_fault(&unknown, 404, "NOT_FOUND");
    for answer in [
        bob_api.get(&format!("{JOBS}/{id}")),
        upload(&bob_api, id, "id\n3\n"),
        patch(&bob_api, id, "UploadComplete"),
        patch(&bob_api, id, "Aborted"),
        bob_api.delete(&format!("{JOBS}/{id}")),
    ] {
        assert_fault(&answer, 404, "NOT_FOUND");
        assert_eq!(answer.body, unknown.body);
    }
    assert!(listed(&bob_api, "").is_empty());
    let bobs = id_of_created(&bob_api, "Lead", "delete");
    assert_eq!(ids(&listed(&bob_api, "")), vec![bobs]);
    assert_eq!(ids(&listed(&alice_api, "")), vec![id]);

    // Still alice's, untouched; a worker of another tenant does not see it.
    assert_eq!(get(&alice_api, id)["state"], "Open");
    patch(&alice_api, id, "UploadComplete").expect(200);
    assert!(bob_api.claim("b", "datacloud", 1).is_empty());
    let lease = claim(&daemon.client_with(&runner), "r");
    assert_eq!(lease.id, id);
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn batch_count_and_size_are_bounded_by_the_dialect_settings() {
    let daemon = Daemon::with_config(
        "[dialects]\ndatacloud_max_batches = 2\ndatacloud_max_batch_bytes = 1000\n",
    );
    let api = daemon.client();
    let id = id_of_created(&api, "Contact", "upsert");

    // Past the size, announced or chunked: 413 and nothing kept.
    let big = format!("{HEADER}{}", rows(0, 60, "\n"));
    assert!(big.len() > 1000);
    assert_fault(&upload(&api, id, big.as_str()), 413, "REQUEST_TOO_LARGE");
    let pieces: Vec<Vec<u8>> = big.as_bytes().chunks(300).map(<[u8]>::to_vec).collect();
    assert_fault(
        &upload(&api, id, Body::Chunked(pieces)),
        413,
        "REQUEST_TOO_LARGE",
    );
    assert_eq!(data_rows(&daemon, id), (0, 0));

    // Two batches, then 400 LIMIT_EXCEEDED.
    let small = format!("{HEADER}{}", rows(0, 5, "\n"));
    upload(&api, id, small.as_str()).expect(202);
    upload(&api, id, small.as_str()).expect(202);
    let message = assert_fault(&upload(&api, id, small.as_str()), 400, "LIMIT_EXCEEDED");
    assert!(message.contains('2'), "{message}");
    assert_eq!(data_rows(&daemon, id).0, 2);
}

// ---------------------------------------------------------------------------------------------
// Memory

/// The daemon's process id: the `jobstore serve` whose command line names its database.
fn daemon_pid(daemon: &Daemon) -> u32 {
    let db = daemon.database().to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.iter().any(|a| a == "serve") && args.contains(&db) {
            return pid;
        }
    }
    panic!("no jobstore serve process for {db}");
}

/// A `kB` line of `/proc/PID/status`, in bytes.
fn status_bytes(pid: u32, name: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad line {line}"));
    kb * 1024
}

/// Sends `PUT path` with a chunked body of at least `total` bytes of generated CSV (upsert
/// rows), made on the fly a piece at a time: the client never holds the batch either.
fn put_generated_csv(addr: SocketAddr, path: &str, total: u64) -> io::Result<Response> {
    let stream = try_connect(addr)?;
    let mut writer = stream.try_clone()?;
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: text/csv\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    thread::scope(|scope| {
        let written = scope.spawn(move || -> io::Result<()> {
            writer.write_all(head.as_bytes())?;
            let mut piece = String::with_capacity(300 * 1024);
            piece.push_str(HEADER);
            let mut sent = 0_u64;
            let mut row = 0_u64;
            while sent < total {
                while piece.len() < 256 * 1024 {
                    piece.push_str(&rows(row, row + 1, "\r\n"));
                    row += 1;
                }
                writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                writer.write_all(piece.as_bytes())?;
                writer.write_all(b"\r\n")?;
                sent += piece.len() as u64;
                piece.clear();
            }
            writer.write_all(b"0\r\n\r\n")?;
            writer.flush()
        });
        let answer = read_response(&mut &stream);
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let written = written
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer panicked")));
        match (answer, written) {
            (Ok(response), _) => Ok(response),
            (Err(err), _) => Err(err),
        }
    })
}

#[test]
fn a_150_mb_batch_streams_in_bounded_memory() {
    const TOTAL: u64 = 150_000_000;
    const ALLOWED_GROWTH: u64 = 20 * 1024 * 1024;
    let daemon = Daemon::start();
    let api = daemon.client();
    let pid = daemon_pid(&daemon);

    // Warm up: one job through create, upload, read, so pools and buffers exist.
    let warm = id_of_created(&api, "Warm", "upsert");
    upload(
        &api,
        warm,
        format!("{HEADER}{}", rows(0, 20_000, "\n")).into_bytes(),
    )
    .expect(202);
    let id = id_of_created(&api, "Big", "upsert");
    let baseline = status_bytes(pid, "VmRSS:");
    let peak_before = status_bytes(pid, "VmHWM:");

    // Sample the resident size while the batch streams in.
    let done = Arc::new(AtomicBool::new(false));
    let sampled = Arc::new(AtomicU64::new(baseline));
    let sampler = {
        let (done, sampled) = (Arc::clone(&done), Arc::clone(&sampled));
        thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                sampled.fetch_max(status_bytes(pid, "VmRSS:"), Ordering::SeqCst);
                thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let answer = put_generated_csv(daemon.addr(), &format!("{JOBS}/{id}/batches"), TOTAL)
        .unwrap_or_else(|err| panic!("upload: {err}; stderr:\n{}", daemon.stderr()));
    done.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    answer.expect(202);

    let peak_after = status_bytes(pid, "VmHWM:");
    let peak = sampled
        .load(Ordering::SeqCst)
        .max(if peak_after > peak_before {
            peak_after
        } else {
            0
        });
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "150 MB batch: baseline {} KiB, peak {} KiB, growth {} KiB",
        baseline / 1024,
        peak / 1024,
        growth / 1024
    );
    assert!(
        growth < ALLOWED_GROWTH,
        "the daemon grew by {} KiB (baseline {} KiB, peak {} KiB) for a {TOTAL}-byte batch",
        growth / 1024,
        baseline / 1024,
        peak / 1024
    );

    // The batch is stored whole.
    let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["data_batches"], 1);
    assert!(native["data_bytes"].as_u64().unwrap() >= TOTAL, "{native}");
}

// ---------------------------------------------------------------------------------------------
// The vendor's answers

/// The vendor answers JSON as `Content-Type: application/json;charset=UTF-8` (seed 003's
/// example response): every JSON answer of this API, faults and HEAD included.
#[test]
fn json_answers_name_their_charset() {
    const TYPE: &str = "application/json;charset=UTF-8";
    let daemon = Daemon::start();
    let api = daemon.client();
    let created = api.post(
        JOBS,
        &json!({"object": "Contact", "sourceName": "ecomm", "operation": "upsert"}),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.header("content-type"), Some(TYPE));
    let id = id(&created.json());
    let uploaded = upload(
        &api,
        id,
        format!("{HEADER}{}", rows(0, 2, "\n")).into_bytes(),
    );
    assert_eq!(uploaded.status, 202);
    let closed = patch(&api, id, "UploadComplete");
    assert_eq!(closed.status, 200);
    for answer in [
        &closed,
        &api.get(&format!("{JOBS}/{id}")),
        &api.get(JOBS),
        &api.get(&format!("{JOBS}/999999")),
        &api.get(&format!("{JOBS}?limit=0")),
        &patch(&api, id, "Open"),
        &api.request("POST", &format!("{JOBS}/{id}"), &[], Body::None),
    ] {
        assert_eq!(
            answer.header("content-type"),
            Some(TYPE),
            "{}",
            answer.text()
        );
    }
    let mut stream = crate::support::connect(daemon.addr());
    let head = format!("HEAD {JOBS}/{id} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write");
    let mut raw = Vec::new();
    io::Read::read_to_end(&mut stream, &mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("\r\ncontent-type: application/json;charset=utf-8\r\n"),
        "{text}"
    );
}

/// The vendor's states only move forward: a job a worker claimed is InProgress until it
/// finishes, also while it waits for the retry of a retryable failure; it is listed, refused
/// and worded as InProgress.
#[test]
fn a_claimed_job_stays_in_progress_while_it_waits_for_a_retry() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = id_of_created(&api, "Contact", "delete");
    upload(&api, job, "k1\nk2\n").expect(202);
    patch(&api, job, "UploadComplete").expect(200);
    let never_claimed = id_of_created(&api, "Contact", "delete");
    patch(&api, never_claimed, "UploadComplete").expect(200);
    let lease = claim(&api, "w");
    assert_eq!(lease.id, job);
    assert_eq!(get(&api, job)["state"], "InProgress");
    lease.call(&api, "fail", json!({"error": "flaky", "retryable": true}));

    let waiting = get(&api, job);
    assert_eq!(waiting["state"], "InProgress", "{waiting}");
    assert_eq!(waiting["retries"], 0);
    let native = api.get(&format!("/v1/jobs/{job}")).expect_json(200);
    assert_eq!(native["state"], "queued");
    assert_eq!(get(&api, never_claimed)["state"], "UploadComplete");

    // Listed as InProgress, never as UploadComplete.
    let by_states =
        |query: &str| -> BTreeSet<i64> { ids(&listed(&api, query)).into_iter().collect() };
    assert_eq!(by_states("states=InProgress"), BTreeSet::from([job]));
    assert_eq!(
        by_states("states=UploadComplete"),
        BTreeSet::from([never_claimed])
    );
    assert_eq!(
        by_states("states=UploadComplete,InProgress"),
        BTreeSet::from([job, never_claimed])
    );
    let all = listed(&api, "");
    let shown = all.iter().find(|j| id(j) == job).unwrap();
    assert_eq!(shown["state"], "InProgress");

    // Refused as an InProgress job: delete, close, upload.
    let message = assert_fault(
        &api.delete(&format!("{JOBS}/{job}")),
        409,
        "INVALIDJOBSTATE",
    );
    assert!(message.contains("is InProgress"), "{message}");
    let message = assert_fault(&patch(&api, job, "UploadComplete"), 409, "INVALIDJOBSTATE");
    assert!(message.contains("is InProgress"), "{message}");
    let message = assert_fault(&upload(&api, job, "k3\n"), 409, "INVALIDJOBSTATE");
    assert!(message.contains("is InProgress"), "{message}");
    assert_eq!(data_rows(&daemon, job), (1, 1));

    // The retry runs; the job finishes forward.
    let mut again = None;
    eventually("the retry is claimable", Duration::from_secs(10), || {
        let jobs = api.claim("w", "datacloud", 1);
        again = jobs
            .iter()
            .find(|j| j["id"].as_i64() == Some(job))
            .map(|j| Lease {
                id: job,
                worker: "w".into(),
                token: j["lease_token"].as_i64().unwrap(),
            });
        again.is_some()
    });
    let again = again.unwrap();
    assert_eq!(get(&api, job)["state"], "InProgress");
    assert_eq!(get(&api, job)["retries"], 1);
    again.call(&api, "complete", json!({}));
    assert_eq!(get(&api, job)["state"], "JobComplete");
}
