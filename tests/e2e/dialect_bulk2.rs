//! Conformance of Salesforce Bulk API 2.0 ingest jobs
//! (`/services/data/v{NN}.{N}/jobs/ingest`): a job walked through its whole life the way
//! simple-salesforce and jsforce drive it (create, upload CSV with the job's delimiter and
//! line ending, close, poll), with a worker driven through the native worker API; malformed
//! CSV refused naming the line with nothing kept; abort; listing with its filters and
//! locators; delete; versions; tenancy and scopes. Status codes, field names, types, states
//! and fault documents are checked exactly.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{Body, Client, Daemon, Options, Response, add_token, temp_dir};

const JOBS: &str = "/services/data/v58.0/jobs/ingest";
const CSV: (&str, &str) = ("Content-Type", "text/csv");
const JSON: (&str, &str) = ("Content-Type", "application/json");

/// Every member of a job as create, PATCH and list answer it (`externalIdFieldName` only for
/// an upsert).
const JOB_FIELDS: [&str; 14] = [
    "id",
    "operation",
    "object",
    "createdById",
    "createdDate",
    "systemModstamp",
    "state",
    "concurrencyMode",
    "contentType",
    "apiVersion",
    "jobType",
    "contentUrl",
    "lineEnding",
    "columnDelimiter",
];

/// The counters `GET …/jobs/ingest/{id}` adds, every one always present.
const DETAIL_FIELDS: [&str; 7] = [
    "retries",
    "totalProcessingTime",
    "apiActiveProcessingTime",
    "apexProcessingTime",
    "numberRecordsProcessed",
    "numberRecordsFailed",
    "errorMessage",
];

#[track_caller]
fn create(api: &Client, body: Value) -> Value {
    let job = api.post(JOBS, &body).expect_json(200);
    assert_job(&job, &[]);
    assert_eq!(job["state"], "Open", "{job}");
    job
}

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
    assert_job(&job, &DETAIL_FIELDS);
    for counter in &DETAIL_FIELDS[..6] {
        assert!(job[counter].is_i64(), "{counter} in {job}");
    }
    job
}

/// Asserts the exact member set and the enumerations of a job document.
#[track_caller]
fn assert_job(job: &Value, more: &[&str]) {
    let members: BTreeSet<&str> = job
        .as_object()
        .unwrap_or_else(|| panic!("a job is an object: {job}"))
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected: BTreeSet<&str> = JOB_FIELDS.iter().chain(more).copied().collect();
    if job["operation"] == "upsert" {
        expected.insert("externalIdFieldName");
    }
    assert_eq!(members, expected, "members of {job}");
    let states = [
        "Open",
        "UploadComplete",
        "InProgress",
        "JobComplete",
        "Failed",
        "Aborted",
    ];
    assert!(
        states.contains(&job["state"].as_str().unwrap_or("")),
        "{job}"
    );
    assert_eq!(job["contentType"], "CSV");
    // Times as the vendor's Java services write them: `2022-01-02T21:57:03.000+0000`.
    for time in ["createdDate", "systemModstamp"] {
        let text = job[time].as_str().unwrap_or_default();
        let shape: String = text
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        assert_eq!(shape, "9999-99-99T99:99:99.999+9999", "{time} in {job}");
        assert!(text.ends_with("+0000"), "{time} in {job}");
    }
    assert_eq!(job["jobType"], "V2Ingest");
    assert_eq!(job["concurrencyMode"], "Parallel");
    assert_eq!(job["apiVersion"], 58.0);
    assert_eq!(
        job["contentUrl"],
        format!("services/data/v58.0/jobs/ingest/{}/batches", id(job))
    );
}

/// Asserts a Bulk API fault document `[{"errorCode", "message"}]`; answers the message.
#[track_caller]
fn assert_fault(response: &Response, status: u16, code: &str) -> String {
    assert_eq!(response.status, status, "{}", response.text());
    let doc: Value = serde_json::from_slice(&response.body).expect("a JSON fault");
    let item = &doc[0];
    assert_eq!(doc.as_array().map(Vec::len), Some(1), "{doc}");
    let keys: BTreeSet<&str> = item
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(keys, BTreeSet::from(["errorCode", "message"]), "{doc}");
    assert_eq!(item["errorCode"], code, "{doc}");
    item["message"].as_str().unwrap_or("").to_owned()
}

/// Claims the one job waiting on queue `bulk2` and answers its id and lease token.
#[track_caller]
fn claim(api: &Client) -> (i64, i64) {
    let jobs = api.claim("w", "bulk2", 1);
    assert_eq!(jobs.len(), 1, "one job to claim: {jobs:?}");
    let job = &jobs[0];
    (
        job["id"].as_i64().unwrap_or(0),
        job["lease_token"].as_i64().unwrap_or(0),
    )
}

#[track_caller]
fn worker_call(api: &Client, (id, token): (i64, i64), action: &str, mut body: Value) {
    body["worker"] = json!("w");
    body["lease_token"] = json!(token);
    api.post(&format!("/v1/jobs/{id}/{action}"), &body)
        .expect_json(200);
}

#[test]
fn an_ingest_job_walks_its_whole_life() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = create(
        &api,
        json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "Ext__c",
            "contentType": "CSV", "columnDelimiter": "PIPE", "lineEnding": "CRLF"}),
    );
    let id = id(&job);
    assert_eq!(job["externalIdFieldName"], "Ext__c");
    assert_eq!(job["columnDelimiter"], "PIPE");
    assert_eq!(job["lineEnding"], "CRLF");
    assert_eq!(job["createdById"], "local");

    let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["kind"], "ingest");
    assert_eq!(native["queue"], "bulk2");
    assert_eq!(native["dialect"], "bulk2");
    assert_eq!(native["target"], "Account");
    assert_eq!(native["payload"]["operation"], "upsert");
    assert!(api.claim("w", "bulk2", 1).is_empty());

    // The job's delimiter and line ending; a body with and without Content-Length: 201.
    let first = "Ext__c|Name\r\n1|\"Acme, Inc\"\r\n2|\"Pipe | inside\"\r\n";
    let answer = upload(&api, id, first);
    answer.expect(201);
    assert!(answer.body.is_empty());
    let second = "Ext__c|Name\r\n3|Globex\r\n4|\"two\nlines\"\r\n";
    let pieces: Vec<Vec<u8>> = second.as_bytes().chunks(5).map(<[u8]>::to_vec).collect();
    upload(&api, id, Body::Chunked(pieces)).expect(201);

    // Records that end with LF alone, or use commas, are refused naming the line.
    let message = assert_fault(
        &upload(&api, id, "Ext__c|Name\r\n5|x\n"),
        400,
        "INVALID_CSV",
    );
    assert!(
        message.contains("line 2") && message.contains("CRLF"),
        "{message}"
    );
    let message = assert_fault(
        &upload(&api, id, "Ext__c|Name\r\n5,x\r\n"),
        400,
        "INVALID_CSV",
    );
    assert!(
        message.contains("line 2: 1 field where the header row has 2"),
        "{message}"
    );
    assert_fault(
        &api.request("PUT", &format!("{JOBS}/{id}/batches"), &[JSON], "{}"),
        415,
        "INVALID_CONTENT_TYPE",
    );

    let open = get(&api, id);
    assert_eq!(open["state"], "Open");
    assert_eq!(open["numberRecordsProcessed"], 0);
    assert_eq!(open["errorMessage"], Value::Null);
    let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["data_batches"], 2);
    let data = api
        .get(&format!("/v1/jobs/{id}/data"))
        .expect(200)
        .body
        .clone();
    assert_eq!(data, format!("{first}{second}").into_bytes());

    let closed = patch(&api, id, "UploadComplete").expect_json(200);
    assert_job(&closed, &[]);
    assert_eq!(closed["state"], "UploadComplete");
    let message = assert_fault(&upload(&api, id, first), 409, "INVALIDJOBSTATE");
    assert!(message.contains("UploadComplete"), "{message}");
    assert_fault(&patch(&api, id, "UploadComplete"), 409, "INVALIDJOBSTATE");
    assert_fault(&patch(&api, id, "Open"), 400, "INVALIDJOBSTATE");

    let lease = claim(&api);
    assert_eq!(lease.0, id);
    assert_eq!(get(&api, id)["state"], "InProgress");
    worker_call(
        &api,
        lease,
        "heartbeat",
        json!({"progress": {"numberRecordsProcessed": 4, "numberRecordsFailed": 1}}),
    );
    worker_call(&api, lease, "complete", json!({}));
    let done = get(&api, id);
    assert_eq!(done["state"], "JobComplete");
    assert_eq!(done["numberRecordsProcessed"], 4);
    assert_eq!(done["numberRecordsFailed"], 1);
    assert_eq!(done["retries"], 0);
    assert_fault(&patch(&api, id, "Aborted"), 409, "INVALIDJOBSTATE");

    let deleted = api.delete(&format!("{JOBS}/{id}"));
    deleted.expect(204);
    assert!(deleted.body.is_empty());
    assert_fault(&api.get(&format!("{JOBS}/{id}")), 404, "NOT_FOUND");
}

#[test]
fn a_failed_job_says_why_and_an_open_job_aborts() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let insert = json!({"object": "Contact", "operation": "insert"});
    let failing = id(&create(&api, insert.clone()));
    upload(&api, failing, "LastName\nSmith\n").expect(201);
    patch(&api, failing, "UploadComplete").expect(200);
    let lease = claim(&api);
    worker_call(
        &api,
        lease,
        "fail",
        json!({"error": "the org refused the load", "retryable": false}),
    );
    let failed = get(&api, failing);
    assert_eq!(failed["state"], "Failed");
    assert_eq!(failed["errorMessage"], "the org refused the load");

    // An abort of an Open job deletes its data; an aborted job may be deleted.
    let open = id(&create(&api, insert));
    upload(&api, open, "LastName\nJones\n").expect(201);
    let aborted = patch(&api, open, "Aborted").expect_json(200);
    assert_eq!(aborted["state"], "Aborted");
    let native = api.get(&format!("/v1/jobs/{open}")).expect_json(200);
    assert_eq!(native["data_batches"], 0);
    assert_fault(&upload(&api, open, "LastName\nX\n"), 409, "INVALIDJOBSTATE");
    api.delete(&format!("{JOBS}/{open}")).expect(204);
}

#[test]
fn open_and_running_jobs_are_not_deleted() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id(&create(
        &api,
        json!({"object": "Lead", "operation": "delete"}),
    ));
    let message = assert_fault(&api.delete(&format!("{JOBS}/{id}")), 409, "INVALIDJOBSTATE");
    assert!(message.contains("Open"), "{message}");
    upload(&api, id, "Id\n00Q000000000001\n").expect(201);
    patch(&api, id, "UploadComplete").expect(200);
    claim(&api);
    assert_fault(&api.delete(&format!("{JOBS}/{id}")), 409, "INVALIDJOBSTATE");
}

#[test]
fn listing_filters_and_locators() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let body = json!({"object": "Account", "operation": "insert"});
    let ids: Vec<i64> = (0..3).map(|_| id(&create(&api, body.clone()))).collect();
    // A Data Cloud job is another API's: never listed here.
    api.post(
        "/api/v1/ingest/jobs",
        &json!({"object": "C", "sourceName": "s", "operation": "upsert"}),
    )
    .expect(201);
    let page = api.get(JOBS).expect_json(200);
    assert_eq!(page["done"], true);
    assert_eq!(page["nextRecordsUrl"], Value::Null);
    let listed: Vec<i64> = page["records"]
        .as_array()
        .map(|records| records.iter().map(id).collect())
        .unwrap_or_default();
    assert_eq!(listed, ids);
    for record in page["records"].as_array().into_iter().flatten() {
        assert_job(record, &[]);
    }
    let rest = api
        .get(&format!(
            "{JOBS}?queryLocator=1&jobType=V2Ingest&isPkChunkingEnabled=false"
        ))
        .expect_json(200);
    assert_eq!(rest["records"].as_array().map(Vec::len), Some(2));
    for none in [
        "jobType=Classic",
        "isPkChunkingEnabled=true",
        "concurrencyMode=serial",
    ] {
        let page = api.get(&format!("{JOBS}?{none}")).expect_json(200);
        assert_eq!(page["records"], json!([]), "{none}");
    }
    assert_fault(
        &api.get(&format!("{JOBS}?jobType=Other")),
        400,
        "INVALID_QUERY_FILTER_OPERATOR",
    );
}

#[test]
fn requests_are_checked_and_faults_have_the_bulk_api_shape() {
    let daemon = Daemon::start();
    let api = daemon.client();
    for bad in [
        json!({"operation": "insert"}),
        json!({"object": "Account", "operation": "merge"}),
        json!({"object": "Account", "operation": "upsert"}),
        json!({"object": "Account", "operation": "insert", "columnDelimiter": "COLON"}),
        json!({"object": "Account", "operation": "insert", "lineEnding": "CR"}),
    ] {
        assert_fault(&api.post(JOBS, &bad), 400, "INVALIDJOB");
    }
    assert_fault(
        &api.request("POST", JOBS, &[JSON], "{not json"),
        400,
        "JSON_PARSER_ERROR",
    );
    assert_fault(&api.get(&format!("{JOBS}/999999")), 404, "NOT_FOUND");
    assert_fault(&api.get(&format!("{JOBS}/7503h00000XYZ")), 404, "NOT_FOUND");
    // Versions from 41.0 on.
    api.get("/services/data/v41.0/jobs/ingest").expect(200);
    assert_fault(
        &api.get("/services/data/v40.0/jobs/ingest"),
        404,
        "NOT_FOUND",
    );
    assert_fault(
        &api.get("/services/data/latest/jobs/ingest"),
        404,
        "NOT_FOUND",
    );
    let refused = api.request("POST", &format!("{JOBS}/1/batches"), &[CSV], "a\n1\n");
    assert_fault(&refused, 405, "METHOD_NOT_ALLOWED");
    assert!(
        refused
            .header("allow")
            .is_some_and(|allow| allow.contains("PUT"))
    );
    // A Data Cloud job is not found here.
    let other = api
        .post(
            "/api/v1/ingest/jobs",
            &json!({"object": "C", "sourceName": "s", "operation": "upsert"}),
        )
        .expect_json(201);
    assert_fault(
        &api.get(&format!("{JOBS}/{}", id(&other))),
        404,
        "NOT_FOUND",
    );
}

#[test]
fn tokens_and_tenants_apply() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    let alice = add_token(&tokens, "alice", "acme", "read,write");
    let reader = add_token(&tokens, "reader", "acme", "read");
    let bob = add_token(&tokens, "bob", "globex", "read,write");
    let daemon = Daemon::start_with(
        dir,
        Options {
            tokens: Some(tokens),
            ..Options::default()
        },
    );
    let alice_api = daemon.client_with(&alice);
    let job = create(
        &alice_api,
        json!({"object": "Account", "operation": "insert"}),
    );
    assert_eq!(job["createdById"], "alice");
    let id = id(&job);
    assert_fault(&daemon.client().get(JOBS), 401, "INVALID_SESSION_ID");
    let reader_api = daemon.client_with(&reader);
    get(&reader_api, id);
    assert_fault(
        &reader_api.post(JOBS, &json!({"object": "A", "operation": "insert"})),
        403,
        "INSUFFICIENT_ACCESS",
    );
    assert_fault(
        &upload(&reader_api, id, "Name\nx\n"),
        403,
        "INSUFFICIENT_ACCESS",
    );
    let bob_api = daemon.client_with(&bob);
    assert_fault(&bob_api.get(&format!("{JOBS}/{id}")), 404, "NOT_FOUND");
    assert_fault(&upload(&bob_api, id, "Name\nx\n"), 404, "NOT_FOUND");
    assert_eq!(bob_api.get(JOBS).expect_json(200)["records"], json!([]));
}

const QUERIES: &str = "/services/data/v58.0/jobs/query";

/// Asserts the members of a query job document.
#[track_caller]
fn assert_query_job(job: &Value) {
    let members: BTreeSet<&str> = job
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let expected: BTreeSet<&str> = JOB_FIELDS
        .iter()
        .copied()
        .filter(|name| *name != "contentUrl")
        .collect();
    assert_eq!(members, expected, "members of {job}");
    assert_eq!(job["jobType"], "V2Query");
    assert_eq!(job["apiVersion"], 58.0);
}

#[test]
fn a_query_job_is_queued_for_a_worker_and_can_be_aborted_or_deleted() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let soql = "SELECT Id, Name FROM Account WHERE Name LIKE 'A%'";
    let job = api
        .post(QUERIES, &json!({"operation": "query", "query": soql}))
        .expect_json(200);
    assert_query_job(&job);
    assert_eq!(job["state"], "UploadComplete");
    assert_eq!(job["object"], "Account");
    assert_eq!(job["operation"], "query");
    let query_id = id(&job);
    let native = api.get(&format!("/v1/jobs/{query_id}")).expect_json(200);
    assert_eq!(native["kind"], "query");
    assert_eq!(native["payload"]["query"], soql);

    // A query job is not an ingest job, nor the other way round.
    assert_fault(&api.get(&format!("{JOBS}/{query_id}")), 404, "NOT_FOUND");
    let ingest = id(&create(&api, json!({"object": "A", "operation": "insert"})));
    assert_fault(&api.get(&format!("{QUERIES}/{ingest}")), 404, "NOT_FOUND");
    let listed = api.get(QUERIES).expect_json(200);
    assert_eq!(listed["records"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["records"][0]["id"], job["id"]);
    // Filtered by the query jobs' own type, and by the ingest jobs' (none of them).
    let typed = api
        .get(&format!("{QUERIES}?jobType=V2Query"))
        .expect_json(200);
    assert_eq!(typed["records"], listed["records"]);
    let other = api
        .get(&format!("{QUERIES}?jobType=V2Ingest"))
        .expect_json(200);
    assert_eq!(other["records"], json!([]));

    let close = api.request(
        "PATCH",
        &format!("{QUERIES}/{query_id}"),
        &[JSON],
        json!({"state": "UploadComplete"}),
    );
    assert_fault(&close, 400, "INVALIDJOBSTATE");

    let lease = claim(&api);
    assert_eq!(lease.0, query_id);
    let running = api.get(&format!("{QUERIES}/{query_id}")).expect_json(200);
    assert_eq!(running["state"], "InProgress");
    assert_fault(
        &api.delete(&format!("{QUERIES}/{query_id}")),
        409,
        "INVALIDJOBSTATE",
    );
    worker_call(&api, lease, "complete", json!({}));
    let done = api.get(&format!("{QUERIES}/{query_id}")).expect_json(200);
    assert_eq!(done["state"], "JobComplete");
    api.delete(&format!("{QUERIES}/{query_id}")).expect(204);

    let abort = api
        .post(QUERIES, &json!({"query": "SELECT Id FROM Contact"}))
        .expect_json(200);
    let abort = id(&abort);
    let aborted = api
        .request(
            "PATCH",
            &format!("{QUERIES}/{abort}"),
            &[JSON],
            json!({"state": "Aborted"}),
        )
        .expect_json(200);
    assert_eq!(aborted["state"], "Aborted");
    assert!(api.claim("w", "bulk2", 1).is_empty());
    assert_fault(
        &api.post(QUERIES, &json!({"query": "DELETE Account"})),
        400,
        "INVALIDJOB",
    );
}

#[test]
fn per_record_results_are_the_csv_outputs_of_the_worker() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id(&create(
        &api,
        json!({"object": "Account", "operation": "insert"}),
    ));
    upload(&api, id, "Name\nAcme\nGlobex\nInitech\n").expect(201);
    // Nothing uploaded yet: each result is an empty CSV.
    for path in ["successfulResults", "failedResults", "unprocessedrecords"] {
        let answer = api.get(&format!("{JOBS}/{id}/{path}"));
        answer.expect(200);
        assert_eq!(answer.header("content-type"), Some("text/csv"));
        assert!(answer.body.is_empty(), "{path}");
    }
    patch(&api, id, "UploadComplete").expect(200);
    let lease = claim(&api);
    let successful = "\"sf__Id\",\"sf__Created\",Name\n\"001000000000001AAA\",\"true\",Acme\n";
    let failed = "\"sf__Id\",\"sf__Error\",Name\n\"\",\"REQUIRED_FIELD_MISSING:x\",Globex\n";
    let unprocessed = "Name\nInitech\n";
    for (name, csv) in [
        ("results%2Fsuccessful", successful),
        ("results%2Ffailed", failed),
        ("results%2Funprocessed", unprocessed),
    ] {
        api.request(
            "PUT",
            &format!(
                "/v1/jobs/{id}/outputs/{name}?worker=w&lease_token={}",
                lease.1
            ),
            &[CSV],
            csv,
        )
        .expect(201);
    }
    worker_call(&api, lease, "complete", json!({}));
    for (path, csv) in [
        ("successfulResults", successful),
        ("failedResults", failed),
        ("unprocessedrecords", unprocessed),
        ("unprocessedRecords", unprocessed),
    ] {
        let answer = api.get(&format!("{JOBS}/{id}/{path}"));
        answer.expect(200);
        assert_eq!(answer.text(), csv, "{path}");
    }
    // The input is unchanged; an unknown job is refused.
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}/data")).text(),
        "Name\nAcme\nGlobex\nInitech\n"
    );
    assert_fault(
        &api.get(&format!("{JOBS}/999999/failedResults")),
        404,
        "NOT_FOUND",
    );
}

/// Uploads `csv` as a batch of the query results of a running job.
#[track_caller]
fn upload_results(api: &Client, (id, token): (i64, i64), csv: &str) {
    api.request(
        "PUT",
        &format!("/v1/jobs/{id}/outputs/query%2Fresults?worker=w&lease_token={token}"),
        &[CSV],
        csv.as_bytes().to_vec(),
    )
    .expect(201);
}

/// Follows `Sforce-Locator` from the first page to the last, `max` records a page (the
/// server's default when `None`): answers each page's body and record count, and checks that
/// asking a locator again answers the same page.
#[track_caller]
fn pages(api: &Client, id: i64, max: Option<u64>) -> Vec<(String, u64)> {
    let mut pages = Vec::new();
    let mut locator: Option<String> = None;
    loop {
        let mut params = Vec::new();
        if let Some(max) = max {
            params.push(format!("maxRecords={max}"));
        }
        if let Some(locator) = &locator {
            params.push(format!("locator={locator}"));
        }
        let path = format!("{QUERIES}/{id}/results?{}", params.join("&"));
        let answer = api.get(&path);
        answer.expect(200);
        assert_eq!(answer.header("content-type"), Some("text/csv"));
        let records: u64 = answer
            .header("sforce-numberofrecords")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("Sforce-NumberOfRecords on {path}"));
        let next = answer
            .header("sforce-locator")
            .unwrap_or_else(|| panic!("Sforce-Locator on {path}"))
            .to_owned();
        let again = api.get(&path);
        assert_eq!(again.text(), answer.text(), "{path} asked twice");
        assert_eq!(again.header("sforce-locator"), Some(next.as_str()));
        pages.push((answer.text(), records));
        if next == "null" {
            return pages;
        }
        assert!(pages.len() < 1000, "the pages never end");
        locator = Some(next);
    }
}

#[test]
fn query_results_page_by_max_records_with_locators() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = api
        .post(QUERIES, &json!({"query": "SELECT Id, Name FROM Account"}))
        .expect_json(200);
    let query_id = id(&job);
    let results = format!("{QUERIES}/{query_id}/results");
    // Not before the job is JobComplete.
    let early = assert_fault(&api.get(&results), 409, "INVALIDJOBSTATE");
    assert!(early.contains("UploadComplete"), "{early}");

    // The worker's CSV, in two batches: a quoted field with a line feed and doubled
    // quotes, a CRLF inside quotes, and a last record without a line ending.
    let header = "\"Id\",\"Name\"\n";
    let records = [
        "\"001A\",\"Acme\"\n",
        "\"001B\",\"Line one\nline two\"\n",
        "\"001C\",\"Say \"\"hi\"\"\"\n",
        "\"001D\",\"a\r\nb\"\n",
        "\"001E\",\"Globex\"",
    ];
    let lease = claim(&api);
    upload_results(
        &api,
        lease,
        &format!("{header}{}{}", records[0], records[1]),
    );
    upload_results(&api, lease, &records[2..].concat());
    assert_fault(&api.get(&results), 409, "INVALIDJOBSTATE");
    worker_call(&api, lease, "complete", json!({}));

    // One page by default: the whole CSV.
    let all = pages(&api, query_id, None);
    assert_eq!(all, [(format!("{header}{}", records.concat()), 5)]);
    // Pages of 2: each starts with the header row; together they are every record once.
    let paged = pages(&api, query_id, Some(2));
    assert_eq!(
        paged,
        [
            (format!("{header}{}{}", records[0], records[1]), 2),
            (format!("{header}{}{}", records[2], records[3]), 2),
            (format!("{header}{}", records[4]), 1),
        ]
    );
    assert_eq!(pages(&api, query_id, Some(5)).len(), 1);

    // Parameters are checked; results are read with the version the job was created with.
    for bad in [
        "maxRecords=0",
        "maxRecords=x",
        "locator=MTAwMDA",
        "locator=1-0-999999",
        "x=1",
    ] {
        assert_fault(
            &api.get(&format!("{results}?{bad}")),
            400,
            "INVALID_QUERY_FILTER_OPERATOR",
        );
    }
    let other_version = format!("/services/data/v59.0/jobs/query/{query_id}/results");
    let message = assert_fault(&api.get(&other_version), 409, "INVALIDJOBSTATE");
    assert!(message.contains("58.0"), "{message}");
    // Another API's job, or an ingest job, is not found.
    let ingest = id(&create(&api, json!({"object": "A", "operation": "insert"})));
    assert_fault(
        &api.get(&format!("{QUERIES}/{ingest}/results")),
        404,
        "NOT_FOUND",
    );

    // A query that found nothing (the worker uploaded no results): an empty last page.
    let empty = id(&api
        .post(QUERIES, &json!({"query": "SELECT Id FROM Contact"}))
        .expect_json(200));
    let lease = claim(&api);
    assert_eq!(lease.0, empty);
    worker_call(&api, lease, "complete", json!({}));
    assert_eq!(pages(&api, empty, None), [(String::new(), 0)]);
}

#[test]
fn large_query_results_page_across_stored_chunks() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let query_id = id(&api
        .post(QUERIES, &json!({"query": "SELECT Id, Name FROM Account"}))
        .expect_json(200));
    let lease = claim(&api);
    // 20,000 records, about 600 KiB: several 256 KiB chunks in the store.
    let header = "Id,Name\n";
    let records: Vec<String> = (0..20_000)
        .map(|i| format!("{i:018},\"Account number {i}\"\n"))
        .collect();
    upload_results(&api, lease, &format!("{header}{}", records.concat()));
    worker_call(&api, lease, "complete", json!({}));

    let paged = pages(&api, query_id, Some(7_000));
    let counts: Vec<u64> = paged.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [7_000, 7_000, 6_000]);
    let mut seen = String::new();
    for (body, _) in &paged {
        let rest = body
            .strip_prefix(header)
            .unwrap_or_else(|| panic!("a page starts with the header row"));
        seen.push_str(rest);
    }
    assert!(seen == records.concat(), "every record once, in order");
}
