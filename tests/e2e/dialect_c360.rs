//! Conformance of the Customer 360 Data Manager dialect (Data Jobs API v1.0): the six job types,
//! the `external://` rule, list paging, status filters in both spellings, every `sortBy` in
//! both directions, every invalid parameter, a job's whole life driven by a worker through the
//! native worker API, faults, and tenancy. Every answer is checked field by field.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::{Client, Daemon, Options, Response, add_token, id_of, temp_dir};

const JOBS: &str = "/datamanager/datatools/v1.0/jobs";

/// The members of every job document, in order.
const DOCUMENT_MEMBERS: [&str; 15] = [
    "id",
    "name",
    "status",
    "type",
    "jobType",
    "source",
    "target",
    "object",
    "fileType",
    "createdBy",
    "createdTime",
    "lastModifiedTime",
    "startTime",
    "endTime",
    "errorMessage",
];

const STATUSES: [&str; 6] = ["QUEUED", "START", "RUNNING", "UPDATE", "SUCCESS", "FAIL"];

/// The headers the vendor's client sends besides the token.
const VENDOR_HEADERS: [(&str, &str); 3] = [
    ("accept", "application/json"),
    ("content-type", "application/json"),
    ("x-sfdc-domain", "https://example.my.salesforce.com"),
];

// ---------------------------------------------------------------------------------------
// Helpers.

/// `POST .../jobs` as the vendor's client sends it.
fn post(api: &Client, path: &str, body: &Value) -> Response {
    api.request("POST", path, &VENDOR_HEADERS, body)
}

/// Creates a job, asserting 201, the `Location` and the document; answers the document.
#[track_caller]
fn create(api: &Client, body: &Value) -> Value {
    let response = post(api, JOBS, body);
    let doc = response.expect_json(201);
    assert_job_document(&doc);
    assert_eq!(
        response.header("location"),
        Some(format!("{JOBS}/{}", doc["id"].as_str().unwrap()).as_str())
    );
    doc
}

/// `GET .../jobs/{id}`, asserting 200 and the document.
#[track_caller]
fn get(api: &Client, id: &str) -> Value {
    let doc = api
        .request("GET", &format!("{JOBS}/{id}"), &VENDOR_HEADERS, "")
        .expect_json(200);
    assert_job_document(&doc);
    doc
}

/// `GET .../jobs?query`, asserting 200 and the envelope; answers it.
#[track_caller]
fn list(api: &Client, query: &str) -> Value {
    let page = api.get(&format!("{JOBS}?{query}")).expect_json(200);
    assert_envelope(&page);
    page
}

fn jobs(page: &Value) -> Vec<Value> {
    page["jobs"].as_array().expect("jobs").clone()
}

fn ids(page: &Value) -> Vec<String> {
    jobs(page)
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_owned())
        .collect()
}

fn id_set(page: &Value) -> BTreeSet<String> {
    ids(page).into_iter().collect()
}

/// Asserts `[{"errorCode": code, "message": "..."}]` with this status; answers the message.
#[track_caller]
fn assert_fault(response: &Response, status: u16, code: &str) -> String {
    let doc = response.expect_error_document(status, code);
    let items = doc.as_array().expect("a fault is an array");
    assert_eq!(items.len(), 1, "one fault: {doc}");
    let item = items[0].as_object().expect("an object");
    let keys: Vec<&str> = item.keys().map(String::as_str).collect();
    assert_eq!(
        keys.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from(["errorCode", "message"]),
        "{doc}"
    );
    assert_eq!(item["errorCode"], code, "{doc}");
    let message = item["message"].as_str().expect("message is a string");
    assert!(!message.is_empty(), "{doc}");
    message.to_owned()
}

/// `2021-06-10T13:25:40.000+0000`: the vendor's form, UTC with milliseconds and a numeric
/// offset without a colon.
#[track_caller]
fn assert_time(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    let shape = "dddd-dd-ddTdd:dd:dd.ddd+0000";
    let fits = text.len() == shape.len()
        && text.chars().zip(shape.chars()).all(|(c, s)| match s {
            'd' => c.is_ascii_digit(),
            other => c == other,
        });
    assert!(
        fits && text >= "2020",
        "{what} is not the vendor's UTC time with milliseconds: {text}"
    );
}

/// Every member, its type and its enumeration.
#[track_caller]
fn assert_job_document(doc: &Value) {
    let object = doc.as_object().expect("a job document is an object");
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = DOCUMENT_MEMBERS.to_vec();
    expected.sort_unstable();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "members of {doc}");
    let id = doc["id"].as_str().expect("id is a string");
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "{doc}"
    );
    assert!(doc["name"].as_str().is_some_and(|n| !n.is_empty()), "{doc}");
    assert!(
        STATUSES.contains(&doc["status"].as_str().unwrap_or("")),
        "{doc}"
    );
    let category = doc["jobType"].as_str().expect("jobType");
    assert!(
        ["ANALYTICS", "EXPORT", "FLUSH", "IMPORT", "LOAD"].contains(&category),
        "{doc}"
    );
    assert_eq!(doc["type"], category, "{doc}");
    for member in ["source", "target", "object", "fileType", "errorMessage"] {
        assert!(
            doc[member].is_null() || doc[member].as_str().is_some_and(|s| !s.is_empty()),
            "{member} in {doc}"
        );
    }
    assert!(doc["createdBy"].is_string(), "{doc}");
    assert_time(&doc["createdTime"], "createdTime");
    assert_time(&doc["lastModifiedTime"], "lastModifiedTime");
    assert!(doc["createdTime"].as_str() <= doc["lastModifiedTime"].as_str());
    let status = doc["status"].as_str().unwrap_or("");
    match status {
        "QUEUED" => assert!(doc["endTime"].is_null(), "{doc}"),
        "START" | "RUNNING" | "UPDATE" => {
            assert_time(&doc["startTime"], "startTime");
            assert!(doc["endTime"].is_null(), "{doc}");
        }
        _ => assert_time(&doc["endTime"], "endTime"),
    }
    if !doc["startTime"].is_null() {
        assert_time(&doc["startTime"], "startTime");
    }
    if status != "FAIL" {
        assert!(doc["errorMessage"].is_null(), "{doc}");
    }
}

#[track_caller]
fn assert_envelope(page: &Value) {
    let keys: BTreeSet<&str> = page
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["jobs", "page", "resultsPerPage", "totalResults"]),
        "{page}"
    );
    assert!(page["page"].is_u64() && page["resultsPerPage"].is_u64());
    assert!(page["totalResults"].is_u64());
    let listed = jobs(page);
    assert!(listed.len() as u64 <= page["resultsPerPage"].as_u64().unwrap());
    for job in &listed {
        assert_job_document(job);
    }
}

/// The vendor's jobType → type table.
fn type_of(job_type: &str) -> &'static str {
    match job_type {
        "B2CtoFS" | "GPtoFS" => "EXPORT",
        "FStoB2C" => "LOAD",
        "FStoGP" => "IMPORT",
        "Analytics" => "ANALYTICS",
        "Flush" => "FLUSH",
        other => panic!("unknown jobType {other}"),
    }
}

/// Every job the native API lists (a database-untouched check).
fn native_count(admin: &Client) -> usize {
    admin.all_jobs().len()
}

/// A worker on the native worker API, holding the lease of the job it claimed last.
struct Worker<'a> {
    api: &'a Client,
    name: &'static str,
}

impl Worker<'_> {
    /// Claims the next C360 job; answers its id and lease token.
    #[track_caller]
    fn claim(&self, queue: &str) -> (i64, i64) {
        let claimed = self.api.claim(self.name, queue, 1);
        assert_eq!(claimed.len(), 1, "nothing to claim in {queue}");
        (
            id_of(&claimed[0]),
            claimed[0]["lease_token"].as_i64().expect("lease_token"),
        )
    }

    #[track_caller]
    fn heartbeat(&self, (id, token): (i64, i64), phase: Option<&str>) {
        let mut body = json!({"worker": self.name, "lease_token": token});
        if let Some(phase) = phase {
            body["phase"] = json!(phase);
        }
        self.api
            .post(&format!("/v1/jobs/{id}/heartbeat"), &body)
            .expect(200);
    }

    #[track_caller]
    fn complete(&self, (id, token): (i64, i64)) {
        self.api
            .post(
                &format!("/v1/jobs/{id}/complete"),
                &json!({"worker": self.name, "lease_token": token, "result": {"rows": 3}}),
            )
            .expect(200);
    }

    #[track_caller]
    fn fail(&self, (id, token): (i64, i64), error: &str, retryable: bool) {
        self.api
            .post(
                &format!("/v1/jobs/{id}/fail"),
                &json!({"worker": self.name, "lease_token": token, "error": error,
                        "retryable": retryable}),
            )
            .expect(200);
    }
}

// ---------------------------------------------------------------------------------------
// Tests.

#[test]
fn each_job_type_is_created_with_its_type_and_seen_everywhere() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let bodies = [
        (
            json!({"jobType": "B2CtoFS", "source": "bjxb-stg", "target": "file-staging",
                   "object": "Customer", "fileType": "CSV", "siteId": "SiteGenesis"}),
            "B2CtoFS-Customer-CSV",
        ),
        (
            json!({"jobType": "GPtoFS", "source": "external://crm-eu", "object": "Account",
                   "fileType": "CSV"}),
            "GPtoFS-Account-CSV",
        ),
        (
            json!({"jobType": "GPtoFS", "name": "all sources since May",
                   "filter": {"from": "2021-05-01"}}),
            "all sources since May",
        ),
        (
            json!({"jobType": "FStoB2C", "target": "bjxb-stg", "object": "GlobalPartyId",
                   "fileType": "JSON"}),
            "FStoB2C-GlobalPartyId-JSON",
        ),
        (
            json!({"jobType": "FStoGP", "source": "external://service-cloud", "object": "Account"}),
            "FStoGP-Account",
        ),
        (
            json!({"jobType": "Analytics", "snapshot": "A"}),
            "Analytics",
        ),
        (json!({"jobType": "Flush"}), "Flush"),
    ];
    for (body, name) in &bodies {
        let doc = create(&api, body);
        assert_eq!(doc["status"], "QUEUED");
        assert_eq!(doc["jobType"], type_of(body["jobType"].as_str().unwrap()));
        assert_eq!(doc["type"], doc["jobType"]);
        assert_eq!(doc["name"], *name);
        for member in ["source", "target", "object", "fileType"] {
            assert_eq!(doc[member], body[member], "{member} of {doc}");
        }
        assert_eq!(doc["createdBy"], "local");
        assert_eq!(doc["startTime"], Value::Null);
        assert_eq!(doc["errorMessage"], Value::Null);
        let id = doc["id"].as_str().unwrap();

        // The same document on GET, with and without a trailing slash.
        assert_eq!(get(&api, id), doc);
        assert_eq!(get(&api, &format!("{id}/")), doc);

        // An ordinary job under the same number: kind, queue, dialect, creator, payload.
        let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
        assert_eq!(native["id"].as_i64().unwrap().to_string(), id);
        assert_eq!(native["kind"], body["jobType"]);
        assert_eq!(native["queue"], "c360");
        assert_eq!(native["dialect"], "c360");
        assert_eq!(native["created_by"], "local");
        assert_eq!(native["name"], *name);
        assert_eq!(native["payload"], *body);
        assert_eq!(native["state"], "queued");
    }

    // POST with a trailing slash works as well.
    let doc = create(&api, &json!({"jobType": "Flush", "name": "again"}));
    let slash = post(&api, &format!("{JOBS}/"), &json!({"jobType": "Flush"})).expect_json(201);
    assert_job_document(&slash);
    assert_ne!(slash["id"], doc["id"]);

    // A retried POST with the same Idempotency-Key answers the first job.
    let mut headers = VENDOR_HEADERS.to_vec();
    headers.push(("Idempotency-Key", "flush-2021-06-10"));
    let body = json!({"jobType": "Flush", "name": "nightly"});
    let first = api.request("POST", JOBS, &headers, &body).expect_json(201);
    let retry = api.request("POST", JOBS, &headers, &body).expect_json(201);
    assert_eq!(first, retry);

    // A worker of the C360 queue finds them all, in creation order.
    let claimed = api.claim("w", "c360", 100);
    assert_eq!(claimed.len(), bodies.len() + 3);
}

/// The vendor's Job resource answers `{"id", "name", "status": "SUCCESS", "createdTime":
/// "2020-07-02T00:34:28.353+0000", "jobType": "IMPORT", "target", "createdBy"}`: the category in
/// `jobType`, times with a `+0000` offset.
#[test]
fn job_documents_carry_the_category_in_job_type_and_vendor_times() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let worker = Worker {
        api: &api,
        name: "w",
    };
    let body = json!({"jobType": "FStoGP", "source": "external://service-cloud",
                      "target": "global-profile", "object": "Account"});
    let doc = create(&api, &body);
    let id = doc["id"].as_str().unwrap().to_owned();
    assert_eq!(doc["jobType"], "IMPORT", "{doc}");
    assert_eq!(doc["type"], "IMPORT", "{doc}");
    // The request's jobType stays the job's kind and names the job.
    assert_eq!(doc["name"], "FStoGP-Account");
    let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["kind"], "FStoGP");

    // The time is the job's, to the millisecond.
    let created = doc["createdTime"].as_str().unwrap();
    assert!(created.ends_with("+0000"), "{created}");
    let created_ms = native["created_at"].as_i64().unwrap();
    assert_eq!(created[20..23], format!("{:03}", created_ms % 1000));
    assert_eq!(created[17..19], format!("{:02}", created_ms / 1000 % 60));

    let lease = worker.claim("c360");
    let started = get(&api, &id);
    assert!(started["startTime"].as_str().unwrap().ends_with("+0000"));
    worker.complete(lease);
    let done = get(&api, &id);
    assert_eq!(done["status"], "SUCCESS");
    assert_eq!(done["jobType"], "IMPORT");
    for member in ["createdTime", "lastModifiedTime", "startTime", "endTime"] {
        assert!(done[member].as_str().unwrap().ends_with("+0000"), "{done}");
    }
    let listed = list(&api, "status=SUCCESS");
    assert_eq!(jobs(&listed), vec![done]);
    // Every request jobType is still accepted, each answered with its category.
    for (job_type, category) in [
        ("B2CtoFS", "EXPORT"),
        ("GPtoFS", "EXPORT"),
        ("FStoB2C", "LOAD"),
        ("Analytics", "ANALYTICS"),
        ("Flush", "FLUSH"),
    ] {
        let doc = create(&api, &json!({ "jobType": job_type }));
        assert_eq!(doc["jobType"], category, "{job_type}");
    }
}

#[test]
fn the_external_prefix_rule_and_the_configured_queue() {
    let daemon = Daemon::with_config(
        "[dialects]\nc360_queue = \"dm-jobs\"\nc360_connected_sources = [\"crm-na\", \"bjxb-stg\"]\n",
    );
    let api = daemon.client();

    // GPtoFS and FStoGP: a connected source as is, any other with the prefix.
    let connected = create(&api, &json!({"jobType": "GPtoFS", "source": "crm-na"}));
    let external = create(
        &api,
        &json!({"jobType": "FStoGP", "source": "external://crm-eu", "object": "Account"}),
    );
    create(
        &api,
        &json!({"jobType": "GPtoFS", "source": "external://crm-na"}),
    );
    let before = native_count(&api);
    for job_type in ["GPtoFS", "FStoGP"] {
        let message = assert_fault(
            &post(
                &api,
                JOBS,
                &json!({"jobType": job_type, "source": "crm-eu", "object": "Account"}),
            ),
            400,
            "INVALID_DATA_SOURCE",
        );
        assert!(
            message.contains("external://crm-eu") && message.contains(job_type),
            "{message}"
        );
        assert_fault(
            &post(
                &api,
                JOBS,
                &json!({"jobType": job_type, "source": "external://"}),
            ),
            400,
            "INVALID_DATA_SOURCE",
        );
    }
    assert_eq!(native_count(&api), before, "a refused job was stored");

    // The other job types take any source.
    let b2c = create(&api, &json!({"jobType": "B2CtoFS", "source": "crm-eu"}));

    // The configured queue.
    let native = api
        .get(&format!("/v1/jobs/{}", connected["id"].as_str().unwrap()))
        .expect_json(200);
    assert_eq!(native["queue"], "dm-jobs");
    assert_eq!(api.claim("w", "c360", 10).len(), 0);

    // GET filters match with or without the prefix.
    let eu = list(&api, "source=crm-eu&resultsPerPage=100");
    assert_eq!(
        id_set(&eu),
        BTreeSet::from([
            external["id"].as_str().unwrap().to_owned(),
            b2c["id"].as_str().unwrap().to_owned()
        ])
    );
    assert_eq!(eu["totalResults"], 2);
    assert_eq!(
        id_set(&list(&api, "source=external%3A%2F%2Fcrm-eu")),
        id_set(&eu)
    );
    let na = list(&api, "source=external://crm-na");
    assert_eq!(na["totalResults"], 2);
    assert!(id_set(&na).contains(connected["id"].as_str().unwrap()));
    assert_eq!(list(&api, "source=nowhere")["totalResults"], 0);
}

#[test]
fn list_pages_and_totals() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let mut created = Vec::new();
    for i in 0..23 {
        let doc = create(
            &api,
            &json!({"jobType": "Flush", "name": format!("flush-{i:02}")}),
        );
        created.push(doc["id"].as_str().unwrap().to_owned());
    }
    // A job of another API is no C360 job: not listed.
    api.create(&json!({"kind": "Flush"}));

    // Defaults: page 1 of 10, newest first.
    for path in [JOBS.to_owned(), format!("{JOBS}/")] {
        let first = api.get(&path).expect_json(200);
        assert_envelope(&first);
        assert_eq!(first["page"], 1);
        assert_eq!(first["resultsPerPage"], 10);
        assert_eq!(first["totalResults"], 23);
        let newest: Vec<String> = created.iter().rev().take(10).cloned().collect();
        assert_eq!(ids(&first), newest);
    }

    let third = list(&api, "page=3");
    assert_eq!(third["page"], 3);
    assert_eq!(
        ids(&third),
        created[..3].iter().rev().cloned().collect::<Vec<_>>()
    );
    let beyond = list(&api, "page=4");
    assert_eq!(beyond["page"], 4);
    assert_eq!(beyond["totalResults"], 23);
    assert!(jobs(&beyond).is_empty());

    let all = list(&api, "resultsPerPage=100&sortBy=id&sortDirection=asc");
    assert_eq!(all["resultsPerPage"], 100);
    assert_eq!(ids(&all), created);

    // Pages of 7 cover every job once, in order.
    let mut paged = Vec::new();
    for page in 1..=4 {
        let answer = list(
            &api,
            &format!("resultsPerPage=7&page={page}&sortBy=id&sortDirection=asc"),
        );
        assert_eq!(answer["page"], page);
        assert_eq!(answer["resultsPerPage"], 7);
        assert_eq!(answer["totalResults"], 23);
        assert_eq!(jobs(&answer).len(), if page < 4 { 7 } else { 2 });
        paged.extend(ids(&answer));
    }
    assert_eq!(paged, created);
    let one = list(&api, "resultsPerPage=1&page=23&sortBy=id&sortDirection=asc");
    assert_eq!(ids(&one), vec![created[22].clone()]);
}

/// One job in every status (two queued, two failing ways); answers the ids by status.
fn jobs_in_every_status(api: &Client, worker: &Worker<'_>) -> Vec<(&'static str, String)> {
    let mut made = Vec::new();
    let next = |job_type: &str| {
        create(api, &json!({"jobType": job_type}))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let start = next("B2CtoFS");
    let lease_start = worker.claim("c360");
    made.push(("START", start));
    let running = next("GPtoFS");
    let lease = worker.claim("c360");
    worker.heartbeat(lease, None);
    made.push(("RUNNING", running));
    let running_in_other_phase = next("FStoGP");
    let lease = worker.claim("c360");
    worker.heartbeat(lease, Some("extract"));
    made.push(("RUNNING", running_in_other_phase));
    let update = next("FStoB2C");
    let lease = worker.claim("c360");
    worker.heartbeat(lease, Some("update"));
    made.push(("UPDATE", update));
    let success = next("Analytics");
    let lease = worker.claim("c360");
    worker.complete(lease);
    made.push(("SUCCESS", success));
    let failed = next("Flush");
    let lease = worker.claim("c360");
    worker.fail(lease, "the file is not there", false);
    made.push(("FAIL", failed));
    let cancelled = next("GPtoFS");
    api.post(&format!("/v1/jobs/{cancelled}/cancel"), &json!({}))
        .expect(200);
    made.push(("FAIL", cancelled));
    made.push(("QUEUED", next("B2CtoFS")));
    made.push(("QUEUED", next("Flush")));
    assert_eq!(lease_start.0.to_string(), made[0].1);
    made
}

#[test]
fn status_filters_repeated_or_comma_separated() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let worker = Worker {
        api: &api,
        name: "w1",
    };
    let made = jobs_in_every_status(&api, &worker);
    let with = |statuses: &[&str]| -> BTreeSet<String> {
        made.iter()
            .filter(|(s, _)| statuses.contains(s))
            .map(|(_, id)| id.clone())
            .collect()
    };
    // Every job shows the status it was put in.
    for (status, id) in &made {
        assert_eq!(get(&api, id)["status"], *status, "job {id}");
    }
    let combinations: Vec<Vec<&str>> = vec![
        vec!["QUEUED"],
        vec!["START"],
        vec!["RUNNING"],
        vec!["UPDATE"],
        vec!["SUCCESS"],
        vec!["FAIL"],
        vec!["START", "UPDATE"],
        vec!["RUNNING", "UPDATE"],
        vec!["START", "RUNNING"],
        vec!["QUEUED", "START"],
        vec!["SUCCESS", "FAIL"],
        vec!["QUEUED", "RUNNING", "FAIL"],
        vec!["START", "RUNNING", "UPDATE"],
        STATUSES.to_vec(),
    ];
    for statuses in combinations {
        let expected = with(&statuses);
        let comma = list(
            &api,
            &format!("resultsPerPage=100&status={}", statuses.join(",")),
        );
        let repeated = list(
            &api,
            &format!(
                "resultsPerPage=100&{}",
                statuses
                    .iter()
                    .map(|s| format!("status={s}"))
                    .collect::<Vec<_>>()
                    .join("&")
            ),
        );
        let encoded = list(
            &api,
            &format!("resultsPerPage=100&status={}", statuses.join("%2C")),
        );
        for answer in [&comma, &repeated, &encoded] {
            assert_eq!(id_set(answer), expected, "{statuses:?}: {answer}");
            assert_eq!(answer["totalResults"], expected.len(), "{statuses:?}");
            for job in jobs(answer) {
                assert!(statuses.contains(&job["status"].as_str().unwrap()));
            }
        }
        // Both spellings at once.
        if statuses.len() >= 2 {
            let (first, rest) = statuses.split_at(1);
            let mixed = list(
                &api,
                &format!(
                    "status={}&status={}&resultsPerPage=100",
                    first[0],
                    rest.join(",")
                ),
            );
            assert_eq!(id_set(&mixed), expected, "{statuses:?}");
        }
    }
    // Paged through a filter, the total stays that of the filter.
    let page = list(&api, "status=FAIL,QUEUED&resultsPerPage=3&page=2");
    assert_eq!(page["totalResults"], 4);
    assert_eq!(jobs(&page).len(), 1);
}

/// The sort key of a job document for a `sortBy` field, as the dialect orders it.
fn sort_key(doc: &Value, field: &str) -> (i64, String) {
    let text = |member: &str| doc[member].as_str().unwrap_or("").to_owned();
    match field {
        "id" => (text("id").parse().unwrap(), String::new()),
        // FAIL < QUEUED < the running statuses (START, RUNNING, UPDATE: one core state, in
        // id order) < SUCCESS.
        "status" => (
            match doc["status"].as_str().unwrap() {
                "FAIL" => 0,
                "QUEUED" => 1,
                "START" | "RUNNING" | "UPDATE" => 2,
                "SUCCESS" => 3,
                other => panic!("status {other}"),
            },
            String::new(),
        ),
        "createdTime" => (0, text("createdTime")),
        other => (0, text(other)),
    }
}

#[test]
fn every_sort_field_in_both_directions() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    let creators: Vec<(String, String)> = ["carol", "alice", "bob"]
        .iter()
        .map(|name| {
            (
                (*name).to_owned(),
                add_token(&tokens, name, "acme", "read,write"),
            )
        })
        .collect();
    let runner = add_token(&tokens, "runner", "acme", "work");
    let daemon = Daemon::start_with(
        dir,
        Options {
            tokens: Some(tokens),
            ..Options::default()
        },
    );
    let worker_api = daemon.client_with(&runner);
    let worker = Worker {
        api: &worker_api,
        name: "w1",
    };
    let names = [
        None,
        Some("zeta"),
        Some("Alpha"),
        Some("beta"),
        None,
        Some("beta"),
        Some("Zulu"),
        None,
        Some("alpha 2"),
        None,
        Some("mid"),
        Some("Beta"),
    ];
    let job_types = [
        "Flush",
        "GPtoFS",
        "FStoB2C",
        "Analytics",
        "FStoGP",
        "B2CtoFS",
    ];
    let sources = [
        None,
        Some("crm-b"),
        Some("Crm-a"),
        Some("bjxb"),
        Some("external://a"),
    ];
    let targets = [Some("fs-2"), None, Some("fs-1")];
    let mut made = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (_, token) = &creators[i % creators.len()];
        let api = daemon.client_with(token);
        let mut body = json!({"jobType": job_types[i % job_types.len()]});
        if let Some(name) = name {
            body["name"] = json!(name);
        }
        if let Some(source) = sources[i % sources.len()] {
            // Not connected: GPtoFS and FStoGP name it with the prefix.
            let job_type = job_types[i % job_types.len()];
            body["source"] = if ["GPtoFS", "FStoGP"].contains(&job_type) {
                json!(format!("external://{source}"))
            } else {
                json!(source)
            };
        }
        if let Some(target) = targets[i % targets.len()] {
            body["target"] = json!(target);
        }
        made.push(create(&api, &body)["id"].as_str().unwrap().to_owned());
        // Statuses spread over the list: a worker takes the oldest waiting job and moves it on.
        match i % 6 {
            1 => {
                worker.claim("c360");
            }
            3 => {
                let lease = worker.claim("c360");
                worker.heartbeat(lease, Some("update"));
            }
            4 => {
                let lease = worker.claim("c360");
                worker.complete(lease);
            }
            5 => {
                let lease = worker.claim("c360");
                worker.fail(lease, "broken", false);
            }
            _ => {}
        }
    }
    // The newest job cancelled: FAIL like the failed ones, but sorted among them by id.
    let newest = made.last().unwrap();
    daemon
        .client_with(&creators[0].1)
        .post(&format!("/v1/jobs/{newest}/cancel"), &json!({}))
        .expect(200);
    let reader = daemon.client_with(&creators[0].1);
    let everything = jobs(&list(
        &reader,
        "resultsPerPage=100&sortBy=id&sortDirection=asc",
    ));
    assert_eq!(everything.len(), made.len());
    let statuses: BTreeSet<&str> = everything
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        BTreeSet::from(["QUEUED", "START", "UPDATE", "SUCCESS", "FAIL"])
    );
    let creators_seen: BTreeSet<&str> = everything
        .iter()
        .map(|j| j["createdBy"].as_str().unwrap())
        .collect();
    assert_eq!(creators_seen, BTreeSet::from(["alice", "bob", "carol"]));

    let fields = [
        "id",
        "name",
        "status",
        "type",
        "source",
        "target",
        "createdBy",
        "createdTime",
    ];
    for field in fields {
        let mut expected = everything.clone();
        expected.sort_by_key(|doc| (sort_key(doc, field), sort_key(doc, "id")));
        let ascending: Vec<String> = expected
            .iter()
            .map(|j| j["id"].as_str().unwrap().to_owned())
            .collect();
        let descending: Vec<String> = ascending.iter().rev().cloned().collect();
        for (direction, order) in [("asc", &ascending), ("desc", &descending)] {
            let query = format!("sortBy={field}&sortDirection={direction}");
            let whole = list(&reader, &format!("{query}&resultsPerPage=100"));
            assert_eq!(ids(&whole), *order, "sortBy={field} {direction}");
            // The sort holds across pages.
            let mut paged = Vec::new();
            for page in 1..=3 {
                paged.extend(ids(&list(
                    &reader,
                    &format!("{query}&resultsPerPage=5&page={page}"),
                )));
            }
            assert_eq!(paged, *order, "sortBy={field} {direction}, paged");
        }
    }
    // The default is createdTime, descending.
    let by_created = list(
        &reader,
        "sortBy=createdTime&sortDirection=desc&resultsPerPage=100",
    );
    assert_eq!(ids(&list(&reader, "resultsPerPage=100")), ids(&by_created));
    assert_eq!(
        ids(&list(&reader, "sortBy=createdTime&resultsPerPage=100")),
        ids(&by_created)
    );
}

#[test]
fn every_invalid_parameter_is_refused_and_nothing_changes() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = create(&api, &json!({"jobType": "Flush"}));
    let id = job["id"].as_str().unwrap().to_owned();
    let before = native_count(&api);

    let bad_queries = [
        ("resultsPerPage=0", "resultsPerPage"),
        ("resultsPerPage=101", "resultsPerPage"),
        ("resultsPerPage=-1", "resultsPerPage"),
        ("resultsPerPage=ten", "resultsPerPage"),
        ("resultsPerPage=", "resultsPerPage"),
        ("resultsPerPage=2.5", "resultsPerPage"),
        ("resultsPerPage=5&resultsPerPage=6", "resultsPerPage"),
        ("page=0", "page"),
        ("page=-2", "page"),
        ("page=first", "page"),
        ("page=", "page"),
        ("page=1&page=2", "page"),
        ("status=queued", "status"),
        ("status=DONE", "status"),
        ("status=", "status"),
        ("status=QUEUED,", "status"),
        ("status=QUEUED,BOGUS", "status"),
        ("status=QUEUED&status=nope", "status"),
        ("sortBy=created", "sortBy"),
        ("sortBy=CreatedTime", "sortBy"),
        ("sortBy=priority", "sortBy"),
        ("sortBy=", "sortBy"),
        ("sortBy=id&sortBy=name", "sortBy"),
        ("sortDirection=ASC", "sortDirection"),
        ("sortDirection=up", "sortDirection"),
        ("sortDirection=", "sortDirection"),
        ("source=", "source"),
        ("source=external://", "source"),
        ("limit=5", "limit"),
        ("resultsperpage=5", "resultsperpage"),
        ("page=%zz", "malformed"),
    ];
    for (query, needle) in bad_queries {
        let message = assert_fault(
            &api.get(&format!("{JOBS}?{query}")),
            400,
            "INVALID_QUERY_PARAMETER",
        );
        assert!(message.contains(needle), "{query}: {message}");
    }

    let bad_bodies: [(&[u8], &str); 10] = [
        (b"{\"jobType\": \"Flush\",}", "JSON_PARSER_ERROR"),
        (b"not json", "JSON_PARSER_ERROR"),
        (b"[{\"jobType\": \"Flush\"}]", "JSON_PARSER_ERROR"),
        (b"\"Flush\"", "JSON_PARSER_ERROR"),
        (b"{}", "REQUIRED_FIELD_MISSING"),
        (
            b"{\"name\": \"x\", \"jobType\": null}",
            "REQUIRED_FIELD_MISSING",
        ),
        (b"{\"jobType\": \"Export\"}", "INVALID_FIELD"),
        (b"{\"jobType\": \"flush\"}", "INVALID_FIELD"),
        (b"{\"jobType\": 3}", "INVALID_FIELD"),
        (
            b"{\"jobType\": \"Flush\", \"source\": {\"id\": 1}}",
            "INVALID_FIELD",
        ),
    ];
    for (body, code) in bad_bodies {
        let message = assert_fault(
            &api.request("POST", JOBS, &VENDOR_HEADERS, body.to_vec()),
            400,
            code,
        );
        if code != "JSON_PARSER_ERROR" {
            assert!(
                message.contains("jobType") || message.contains("source"),
                "{message}"
            );
        }
    }
    let listed = assert_fault(
        &post(&api, JOBS, &json!({"jobType": "Backup"})),
        400,
        "INVALID_FIELD",
    );
    assert!(listed.contains("B2CtoFS, GPtoFS, FStoB2C, FStoGP, Analytics, Flush"));
    assert_fault(
        &post(&api, JOBS, &json!({"jobType": "Flush", "name": 7})),
        400,
        "INVALID_FIELD",
    );

    // Methods the resources do not have: 405 with Allow.
    let delete = api.delete(&format!("{JOBS}/{id}"));
    assert_fault(&delete, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(delete.header("allow"), Some("GET, HEAD"));
    let put = api.put(JOBS, &json!({"jobType": "Flush"}));
    assert_fault(&put, 405, "METHOD_NOT_ALLOWED");
    assert_eq!(put.header("allow"), Some("GET, HEAD, POST"));
    assert_fault(
        &api.post(&format!("{JOBS}/{id}"), &json!({"jobType": "Flush"})),
        405,
        "METHOD_NOT_ALLOWED",
    );

    // Unknown jobs and resources: 404 in the same shape.
    let unknown = assert_fault(&api.get(&format!("{JOBS}/987654")), 404, "NOT_FOUND");
    for path in [
        format!("{JOBS}/core%2fstmfpba44ice1%2f00DRM000000D1or2BC"),
        format!("{JOBS}/-1"),
        format!("{JOBS}/{id}/files"),
        "/datamanager/datatools/v1.0/data-sources".to_owned(),
    ] {
        assert_fault(&api.get(&path), 404, "NOT_FOUND");
    }
    // A job of another API under its own number is no C360 job.
    let native = id_of(&api.create(&json!({"kind": "Flush"})));
    let other = api.get(&format!("{JOBS}/{native}"));
    assert_eq!(assert_fault(&other, 404, "NOT_FOUND"), unknown);

    assert_eq!(
        native_count(&api),
        before + 1,
        "only the native job was added"
    );
    assert_eq!(get(&api, &id), job);
}

#[test]
fn a_job_walks_through_its_whole_life() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    let client_token = add_token(&tokens, "dm-integration", "acme", "read,write");
    let runner = add_token(&tokens, "runner", "acme", "work");
    let daemon = Daemon::start_with(
        dir,
        Options {
            tokens: Some(tokens),
            ..Options::default()
        },
    );
    let client = daemon.client_with(&client_token);
    let worker_api = daemon.client_with(&runner);
    let worker = Worker {
        api: &worker_api,
        name: "dm-worker-1",
    };

    let created = create(
        &client,
        &json!({"jobType": "GPtoFS", "source": "external://crm-eu", "target": "file-staging",
                "object": "Account", "fileType": "CSV", "exportAll": false}),
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "GPtoFS-Account-CSV");
    assert_eq!(created["createdBy"], "dm-integration");
    let in_list = |status: &str| {
        id_set(&list(
            &client,
            &format!("status={status}&resultsPerPage=100"),
        ))
        .contains(&id)
    };

    let mut seen = vec![created.clone()];
    let observe = |expected: &str, seen: &mut Vec<Value>| {
        let doc = get(&client, &id);
        assert_eq!(doc["status"], expected, "{doc}");
        assert!(in_list(expected), "{expected} filter misses the job");
        for other in STATUSES.iter().filter(|s| **s != expected) {
            assert!(!in_list(other), "{other} filter lists a {expected} job");
        }
        let previous = seen.last().unwrap();
        for member in [
            "id",
            "name",
            "type",
            "jobType",
            "source",
            "target",
            "createdTime",
        ] {
            assert_eq!(doc[member], previous[member], "{member} changed");
        }
        assert!(doc["lastModifiedTime"].as_str() >= previous["lastModifiedTime"].as_str());
        seen.push(doc.clone());
        doc
    };

    let queued = observe("QUEUED", &mut seen);
    assert_eq!(queued["startTime"], Value::Null);
    let lease = worker.claim("c360");
    assert_eq!(lease.0.to_string(), id);
    let started = observe("START", &mut seen);
    assert!(started["startTime"].as_str() >= started["createdTime"].as_str());
    worker.heartbeat(lease, None);
    observe("RUNNING", &mut seen);
    worker.heartbeat(lease, Some("update"));
    let updating = observe("UPDATE", &mut seen);
    assert_eq!(updating["startTime"], started["startTime"]);
    worker.heartbeat(lease, Some("update"));
    observe("UPDATE", &mut seen);
    worker.complete(lease);
    let done = observe("SUCCESS", &mut seen);
    assert!(done["endTime"].as_str() >= done["startTime"].as_str());
    assert_eq!(done["errorMessage"], Value::Null);

    // The native API saw the same life.
    let native = client.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["state"], "succeeded");
    assert_eq!(native["result"], json!({"rows": 3}));
}

#[test]
fn failures_and_cancels_are_fail_and_retries_queue_again() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let worker = Worker {
        api: &api,
        name: "w",
    };
    let retried = create(&api, &json!({"jobType": "FStoB2C", "target": "bjxb-stg"}));
    let retried_id = retried["id"].as_str().unwrap().to_owned();

    // A retryable failure with attempts left: waiting again (after a backoff), QUEUED.
    let lease = worker.claim("c360");
    worker.heartbeat(lease, Some("update"));
    worker.fail(lease, "connection reset", true);
    let again = get(&api, &retried_id);
    assert_eq!(again["status"], "QUEUED");
    assert_eq!(again["errorMessage"], Value::Null);
    assert!(id_set(&list(&api, "status=QUEUED")).contains(&retried_id));

    // A fatal failure: FAIL, with the worker's error.
    let doomed = create(
        &api,
        &json!({"jobType": "FStoGP", "source": "external://x"}),
    );
    let doomed_id = doomed["id"].as_str().unwrap().to_owned();
    let lease = worker.claim("c360");
    assert_eq!(lease.0.to_string(), doomed_id);
    assert_eq!(get(&api, &doomed_id)["status"], "START");
    worker.fail(lease, "the file is not there", false);
    let failed = get(&api, &doomed_id);
    assert_eq!(failed["status"], "FAIL");
    assert_eq!(failed["errorMessage"], "the file is not there");

    // A cancelled job is FAIL too.
    let cancelled = create(&api, &json!({"jobType": "Analytics"}));
    let cancelled_id = cancelled["id"].as_str().unwrap().to_owned();
    api.post(&format!("/v1/jobs/{cancelled_id}/cancel"), &json!({}))
        .expect(200);
    assert_eq!(get(&api, &cancelled_id)["status"], "FAIL");
    let fails = list(&api, "status=FAIL");
    assert_eq!(fails["totalResults"], 2);
    assert_eq!(id_set(&fails), BTreeSet::from([doomed_id, cancelled_id]));
}

#[test]
fn tokens_and_tenants() {
    let (daemon, [alice, reader, bob, root]) = Daemon::with_tokens([
        ("alice", "acme", "read,write"),
        ("reader", "acme", "read"),
        ("bob", "globex", "read,write"),
        ("root", "ops", "admin"),
    ]);
    let anonymous = daemon.client();
    let wrong = daemon.client_with("0123456789abcdef0123456789abcdef");

    let job = create(&alice, &json!({"jobType": "B2CtoFS", "source": "bjxb-stg"}));
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(job["createdBy"], "alice");

    // 401 without a valid token, in the dialect's shape, and nothing is created.
    for api in [&anonymous, &wrong] {
        assert_fault(&api.get(JOBS), 401, "INVALID_SESSION_ID");
        assert_fault(&api.get(&format!("{JOBS}/{id}")), 401, "INVALID_SESSION_ID");
        assert_fault(
            &post(api, JOBS, &json!({"jobType": "Flush"})),
            401,
            "INVALID_SESSION_ID",
        );
    }
    // 403 without the scope.
    assert_fault(
        &post(&reader, JOBS, &json!({"jobType": "Flush"})),
        403,
        "INSUFFICIENT_ACCESS",
    );
    assert_eq!(get(&reader, &id), job);

    // Another tenant's job is exactly an unknown one.
    let foreign = bob.get(&format!("{JOBS}/{id}"));
    let unknown = bob.get(&format!("{JOBS}/{}", id.parse::<i64>().unwrap() + 1000));
    assert_fault(&foreign, 404, "NOT_FOUND");
    assert_eq!(foreign.body, unknown.body);
    let bobs = list(&bob, "");
    assert_eq!(bobs["totalResults"], 0);
    let bob_job = create(&bob, &json!({"jobType": "Flush"}));
    assert_eq!(
        ids(&list(&bob, "")),
        vec![bob_job["id"].as_str().unwrap().to_owned()]
    );
    assert_eq!(ids(&list(&alice, "")), vec![id.clone()]);

    // The admin sees every tenant.
    assert_eq!(list(&root, "")["totalResults"], 2);
    assert_eq!(get(&root, &id), job);
}
