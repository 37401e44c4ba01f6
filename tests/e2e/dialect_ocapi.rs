//! The OCAPI Data API job executions dialect (17.4 and later), driven the way the vendor's
//! clients (`sfcc-ci`, the B2C tooling SDK) drive it, with a worker on the native worker API:
//! execute, one live execution per job (RUNNING from its creation, through a retry, until it
//! is over), reads while running and after the steps finished,
//! `_resource_state` and `duration`, DELETE before and after the end, the restart rules,
//! `job_execution_search`, every version path and body form, and every fault of the vendor
//! table in the vendor's fault document, checked field by field.

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Body, Client, Daemon, Response};

// ---------------------------------------------------------------------------------------------
// Helpers (this dialect's only)

const BASE: &str = "/dw/data/v17_4";

/// A daemon with tokens: `importer` (read, write) and `runner` (work) of tenant `acme`,
/// `viewer` (read) of `acme`, `other` (read, write) of tenant `globex`.
struct World {
    daemon: Daemon,
    importer: Client,
    runner: Client,
    viewer: Client,
    other: Client,
}

fn world() -> World {
    let (daemon, [importer, runner, viewer, other]) = Daemon::with_tokens([
        ("importer", "acme", "read,write"),
        ("runner", "acme", "work"),
        ("viewer", "acme", "read"),
        ("other", "globex", "read,write"),
    ]);
    World {
        importer,
        runner,
        viewer,
        other,
        daemon,
    }
}

/// `PUT /v1/definitions/{id}` (the native API defines jobs; OCAPI executes them).
fn define(api: &Client, id: &str, body: Value) {
    api.put(&format!("/v1/definitions/{id}"), &body).expect(200);
}

/// Three steps in three scopes, restartable, on `queue`.
fn three_steps(queue: &str) -> Value {
    json!({
        "queue": queue,
        "restartable": true,
        "steps": [
            {"step_id": "Step1", "step_type_id": "ExecutePipeline",
             "description": "A step that executes a pipeline", "execution_scope": "SiteGenesis-US"},
            {"step_id": "Step2", "step_type_id": "ExecuteScriptModule",
             "description": "A step that runs a script module", "execution_scope": "Organization"},
            {"step_id": "Step3", "step_type_id": "ExecutePipeline",
             "description": "", "execution_scope": "SiteGenesis"}
        ]
    })
}

fn executions(job: &str) -> String {
    format!("{BASE}/jobs/{job}/executions")
}

fn execution(job: &str, id: &str) -> String {
    format!("{BASE}/jobs/{job}/executions/{id}")
}

/// `POST .../executions` as the vendor sample sends it (JSON content type, no body).
fn execute(api: &Client, path: &str) -> Response {
    api.request(
        "POST",
        path,
        &[("Content-Type", "application/json; charset=UTF-8")],
        Body::None,
    )
}

/// A lease: the job id and its token.
struct Lease {
    id: i64,
    token: i64,
}

/// The worker claims one job of `queue`.
fn claim(worker: &Client, queue: &str) -> Lease {
    let jobs = worker.claim("runner", queue, 1);
    assert_eq!(jobs.len(), 1, "nothing to claim on {queue}");
    Lease {
        id: jobs[0]["id"].as_i64().unwrap(),
        token: jobs[0]["lease_token"].as_i64().unwrap(),
    }
}

/// A step report; `exit` is `(exit_code, message)`.
fn step(worker: &Client, lease: &Lease, step: &str, status: &str, exit: Option<(&str, &str)>) {
    let mut body = json!({"worker": "runner", "lease_token": lease.token, "status": status});
    if let Some((code, message)) = exit {
        body["exit_code"] = json!(code);
        body["message"] = json!(message);
    }
    worker
        .post(&format!("/v1/jobs/{}/steps/{step}", lease.id), &body)
        .expect(200);
}

fn complete(worker: &Client, lease: &Lease) {
    worker
        .post(
            &format!("/v1/jobs/{}/complete", lease.id),
            &json!({"worker": "runner", "lease_token": lease.token, "result": {}}),
        )
        .expect(200);
}

fn fail(worker: &Client, lease: &Lease, error: &str) {
    worker
        .post(
            &format!("/v1/jobs/{}/fail", lease.id),
            &json!({"worker": "runner", "lease_token": lease.token, "error": error,
                    "retryable": false}),
        )
        .expect(200);
}

/// Asserts the vendor fault document exactly: `{"_v", "fault": {"arguments", "type",
/// "message"}}`, string arguments, a non-empty message. Answers the fault.
#[track_caller]
fn assert_fault(response: &Response, status: u16, kind: &str, v: &str) -> Value {
    let doc = response.expect_error_document(status, kind);
    let keys: BTreeSet<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, BTreeSet::from(["_v", "fault"]), "{doc}");
    assert_eq!(doc["_v"], v, "{doc}");
    let fault = doc["fault"].as_object().unwrap();
    let keys: BTreeSet<&str> = fault.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["arguments", "message", "type"]),
        "{doc}"
    );
    assert_eq!(doc["fault"]["type"], kind, "{doc}");
    assert!(
        doc["fault"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{doc}"
    );
    for (name, value) in doc["fault"]["arguments"].as_object().unwrap() {
        assert!(value.is_string(), "argument {name} of {doc}");
    }
    doc["fault"].clone()
}

/// `2021-06-10T13:25:40.000Z`.
#[track_caller]
fn assert_time(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    let bytes = text.as_bytes();
    assert_eq!(bytes.len(), 24, "{text}");
    for (i, byte) in bytes.iter().enumerate() {
        let want = match i {
            4 | 7 => b'-',
            10 => b'T',
            13 | 16 => b':',
            19 => b'.',
            23 => b'Z',
            _ => b'0',
        };
        if want == b'0' {
            assert!(byte.is_ascii_digit(), "{text}");
        } else {
            assert_eq!(*byte, want, "{text}");
        }
    }
}

fn keys(doc: &Value) -> BTreeSet<String> {
    doc.as_object().unwrap().keys().cloned().collect()
}

/// Asserts every member of a `job_execution` (and its steps): names, types, enumerations,
/// time formats, and which members are present in which state.
#[track_caller]
fn assert_execution(doc: &Value, v: Option<&str>) {
    let required = [
        "_type",
        "_resource_state",
        "client_id",
        "duration",
        "execution_scopes",
        "execution_status",
        "id",
        "is_log_file_existing",
        "is_restart",
        "job_id",
        "log_file_name",
        "modification_time",
        "status",
        "step_executions",
    ];
    let optional = ["_v", "end_time", "exit_status", "parameters", "start_time"];
    let present = keys(doc);
    for key in required {
        assert!(present.contains(key), "{key} missing in {doc}");
    }
    for key in &present {
        assert!(
            required.contains(&key.as_str()) || optional.contains(&key.as_str()),
            "unexpected member {key} in {doc}"
        );
    }
    match v {
        Some(v) => assert_eq!(doc["_v"], v),
        None => assert!(doc.get("_v").is_none(), "{doc}"),
    }
    assert_eq!(doc["_type"], "job_execution");
    let state = doc["_resource_state"].as_str().unwrap();
    assert!(
        state.len() == 64 && state.bytes().all(|b| b.is_ascii_hexdigit()),
        "{state}"
    );
    assert!(doc["client_id"].is_string());
    assert!(doc["duration"].as_i64().is_some_and(|d| d >= 0), "{doc}");
    let id = doc["id"].as_str().unwrap();
    assert!(id.parse::<i64>().is_ok(), "{id}");
    assert!(doc["is_log_file_existing"].is_boolean());
    assert!(doc["is_restart"].is_boolean());
    let job_id = doc["job_id"].as_str().unwrap();
    let log = doc["log_file_name"].as_str().unwrap();
    let stamp = log
        .strip_prefix(&format!("Job-{job_id}-"))
        .and_then(|rest| rest.strip_suffix(".log"))
        .unwrap_or_else(|| panic!("log_file_name {log}"));
    assert!(
        stamp.len() == 17 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{log}"
    );
    assert_time(&doc["modification_time"]);
    let scopes: Vec<&str> = doc["execution_scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut sorted = scopes.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(scopes, sorted, "execution_scopes is a sorted set");

    let execution_status = doc["execution_status"].as_str().unwrap();
    let status = doc["status"].as_str().unwrap();
    let over = match execution_status {
        "running" | "aborting" => {
            assert_eq!(status, "RUNNING");
            false
        }
        "finished" => {
            assert!(["OK", "ERROR"].contains(&status), "{status}");
            true
        }
        "aborted" => {
            assert_eq!(status, "ABORTED");
            true
        }
        other => panic!("execution_status {other}"),
    };
    assert_eq!(doc.get("exit_status").is_some(), over, "{doc}");
    assert_eq!(doc.get("end_time").is_some(), over, "{doc}");
    if over {
        assert_exit_status(&doc["exit_status"]);
        assert_eq!(doc["exit_status"]["code"], status);
        assert_time(&doc["end_time"]);
    }
    if let Some(start) = doc.get("start_time") {
        assert_time(start);
    } else {
        assert_eq!(doc["duration"], 0);
    }
    if let Some(parameters) = doc.get("parameters") {
        for parameter in parameters.as_array().unwrap() {
            assert_eq!(
                keys(parameter),
                ["_type", "name", "value"].map(String::from).into()
            );
            assert_eq!(parameter["_type"], "job_execution_parameter");
        }
    }
    for step in doc["step_executions"].as_array().unwrap() {
        assert_step(step);
    }
}

#[track_caller]
fn assert_exit_status(exit: &Value) {
    let present = keys(exit);
    for key in &present {
        assert!(
            ["_type", "code", "message", "status"].contains(&key.as_str()),
            "{exit}"
        );
    }
    assert_eq!(exit["_type"], "status");
    assert!(exit["code"].is_string());
    assert!(["ok", "error"].contains(&exit["status"].as_str().unwrap()));
    if let Some(message) = exit.get("message") {
        assert!(message.is_string());
    }
}

#[track_caller]
fn assert_step(step: &Value) {
    let required = [
        "_type",
        "duration",
        "execution_scope",
        "execution_status",
        "id",
        "modification_time",
        "status",
        "step_description",
        "step_id",
        "step_type_id",
        "step_type_info",
    ];
    let optional = ["end_time", "exit_status", "start_time"];
    let present = keys(step);
    for key in required {
        assert!(present.contains(key), "{key} missing in {step}");
    }
    for key in &present {
        assert!(
            required.contains(&key.as_str()) || optional.contains(&key.as_str()),
            "unexpected member {key} in {step}"
        );
    }
    assert_eq!(step["_type"], "job_step_execution");
    let id = step["id"].as_str().unwrap();
    assert!(
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()),
        "{step}"
    );
    for text in [
        "execution_scope",
        "step_description",
        "step_id",
        "step_type_id",
        "step_type_info",
    ] {
        assert!(step[text].is_string(), "{text} of {step}");
    }
    assert!(step["duration"].as_i64().is_some_and(|d| d >= 0));
    assert_time(&step["modification_time"]);
    let status = step["status"].as_str().unwrap();
    match step["execution_status"].as_str().unwrap() {
        "pending" => {
            assert_eq!(status, "PENDING");
            assert!(step.get("start_time").is_none() && step.get("exit_status").is_none());
        }
        "running" => {
            assert_eq!(status, "RUNNING");
            assert_time(&step["start_time"]);
            assert!(step.get("end_time").is_none() && step.get("exit_status").is_none());
        }
        "finished" => {
            assert_exit_status(&step["exit_status"]);
            assert!(step["exit_status"]["message"].is_string(), "{step}");
            assert_eq!(step["exit_status"]["code"], status);
            assert_time(&step["end_time"]);
        }
        other => panic!("step execution_status {other}"),
    }
}

/// The execution's id (a string).
fn id_of(doc: &Value) -> String {
    doc["id"].as_str().unwrap().to_owned()
}

fn steps_of(doc: &Value) -> Vec<Value> {
    doc["step_executions"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------------------------
// The life of an execution

#[test]
fn an_execution_walks_through_its_whole_life() {
    let w = world();
    define(&w.importer, "CustomerImportJob", three_steps("imports"));

    // Execute: the vendor sample, sent as printed (with our host).
    let created = execute(&w.importer, &executions("CustomerImportJob"));
    created.expect(200);
    assert!(
        created
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    let doc = created.json();
    assert_execution(&doc, Some("17.4"));
    let id = id_of(&doc);
    assert_eq!(doc["job_id"], "CustomerImportJob");
    assert_eq!(doc["client_id"], "importer");
    // Running from its creation, as the vendor's create sample is, while it waits for a worker.
    assert_eq!(doc["execution_status"], "running");
    assert_eq!(doc["status"], "RUNNING");
    assert_eq!(doc["is_restart"], false);
    assert_eq!(doc["is_log_file_existing"], false);
    assert_eq!(doc["duration"], 0);
    assert_eq!(
        doc["execution_scopes"],
        json!(["Organization", "SiteGenesis", "SiteGenesis-US"])
    );
    assert!(doc.get("start_time").is_none() && doc.get("parameters").is_none());
    let steps = steps_of(&doc);
    assert_eq!(steps.len(), 3);
    for (step, want) in steps.iter().zip(["Step1", "Step2", "Step3"]) {
        assert_eq!(step["step_id"], want);
        assert_eq!(step["execution_status"], "pending");
    }
    assert_eq!(steps[0]["step_type_id"], "ExecutePipeline");
    assert_eq!(
        steps[0]["step_description"],
        "A step that executes a pipeline"
    );
    assert_eq!(steps[1]["execution_scope"], "Organization");

    // One job, one number, in every API: the native API sees an ordinary queued job.
    let native = w.importer.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["dialect"], "ocapi");
    assert_eq!(native["definition_id"], "CustomerImportJob");
    assert_eq!(native["kind"], "CustomerImportJob");
    assert_eq!(native["queue"], "imports");
    assert_eq!(native["state"], "queued");
    assert_eq!(native["created_by"], "importer");

    // A second execution while this one lives.
    let again = execute(&w.importer, &executions("CustomerImportJob"));
    let fault = assert_fault(&again, 400, "JobAlreadyRunningException", "17.4");
    assert_eq!(fault["arguments"], json!({"jobId": "CustomerImportJob"}));

    // Reading it changes nothing: the same document, the same resource state.
    let read = w
        .importer
        .get(&execution("CustomerImportJob", &id))
        .expect_json(200);
    assert_execution(&read, Some("17.4"));
    assert_eq!(read, doc);
    let mut states = vec![doc["_resource_state"].as_str().unwrap().to_owned()];
    let mut changed = |doc: &Value| {
        let state = doc["_resource_state"].as_str().unwrap().to_owned();
        assert!(
            !states.contains(&state),
            "_resource_state did not change: {doc}"
        );
        states.push(state);
    };
    let get = || {
        let doc = w
            .importer
            .get(&execution("CustomerImportJob", &id))
            .expect_json(200);
        assert_execution(&doc, Some("17.4"));
        doc
    };

    // A worker claims it: running, with a start time and a growing duration.
    let lease = claim(&w.runner, "imports");
    assert_eq!(lease.id.to_string(), id);
    let running = get();
    changed(&running);
    assert_eq!(running["execution_status"], "running");
    assert_eq!(running["status"], "RUNNING");
    assert_time(&running["start_time"]);
    assert!(running.get("end_time").is_none() && running.get("exit_status").is_none());
    let first = running["duration"].as_i64().unwrap();
    thread::sleep(Duration::from_millis(30));
    let later = get();
    assert!(
        later["duration"].as_i64().unwrap() > first,
        "duration grows while running: {first} then {}",
        later["duration"]
    );

    // DELETE before the end: refused, nothing changes.
    let refused = w.importer.delete(&execution("CustomerImportJob", &id));
    let fault = assert_fault(&refused, 403, "JobExecutionNotFinishedException", "17.4");
    assert_eq!(fault["arguments"], json!({"executionId": id}));
    assert_eq!(get()["_resource_state"], later["_resource_state"]);

    // Step by step.
    step(&w.runner, &lease, "Step1", "running", None);
    let doc = get();
    changed(&doc);
    let steps = steps_of(&doc);
    assert_eq!(steps[0]["execution_status"], "running");
    assert_eq!(steps[0]["status"], "RUNNING");
    assert_eq!(steps[1]["execution_status"], "pending");

    step(&w.runner, &lease, "Step1", "ok", Some(("OK", "")));
    step(&w.runner, &lease, "Step2", "running", None);
    step(
        &w.runner,
        &lease,
        "Step2",
        "ok",
        Some(("SUCCESS", "Step was successful!")),
    );
    let doc = get();
    changed(&doc);
    let steps = steps_of(&doc);
    assert_eq!(steps[0]["execution_status"], "finished");
    assert_eq!(
        steps[0]["exit_status"],
        json!({"_type": "status", "code": "OK", "message": "", "status": "ok"})
    );
    assert_eq!(steps[0]["status"], "OK");
    assert_eq!(
        steps[1]["exit_status"],
        json!({"_type": "status", "code": "SUCCESS", "message": "Step was successful!",
               "status": "ok"})
    );
    assert_eq!(steps[1]["status"], "SUCCESS");
    assert_eq!(doc["execution_status"], "running");

    // The worker writes a log: the log file exists.
    w.runner
        .post(
            &format!("/v1/jobs/{id}/logs"),
            &json!({"lines": [{"message": "imported 10 customers"}]}),
        )
        .expect(200);
    assert_eq!(get()["is_log_file_existing"], true);

    // The last step finishes without an exit code: OK. The worker completes the job.
    step(&w.runner, &lease, "Step3", "ok", None);
    complete(&w.runner, &lease);
    let done = get();
    changed(&done);
    assert_eq!(done["execution_status"], "finished");
    assert_eq!(done["status"], "OK");
    assert_eq!(
        done["exit_status"],
        json!({"_type": "status", "code": "OK", "status": "ok"})
    );
    assert_time(&done["end_time"]);
    let steps = steps_of(&done);
    assert!(steps.iter().all(|s| s["execution_status"] == "finished"));
    assert_eq!(
        steps[2]["exit_status"],
        json!({"_type": "status", "code": "OK", "message": "", "status": "ok"})
    );
    // Once over, the duration is the time from start to end, and stays.
    let start = done["start_time"].as_str().unwrap();
    let end = done["end_time"].as_str().unwrap();
    let millis = |t: &str| -> i64 {
        // Same day in these tests: seconds of the day and milliseconds.
        let h: i64 = t[11..13].parse().unwrap();
        let m: i64 = t[14..16].parse().unwrap();
        let s: i64 = t[17..19].parse().unwrap();
        let ms: i64 = t[20..23].parse().unwrap();
        ((h * 60 + m) * 60 + s) * 1000 + ms
    };
    if start[..10] == end[..10] {
        assert_eq!(
            done["duration"].as_i64().unwrap(),
            millis(end) - millis(start)
        );
    }
    thread::sleep(Duration::from_millis(20));
    assert_eq!(get(), done, "a finished execution no longer changes");

    // DELETE after the end: 204 without a body; then it is gone everywhere.
    let deleted = w.importer.delete(&execution("CustomerImportJob", &id));
    deleted.expect(204);
    assert!(deleted.body.is_empty());
    let gone = w.importer.get(&execution("CustomerImportJob", &id));
    let fault = assert_fault(&gone, 404, "JobExecutionNotFoundException", "17.4");
    assert_eq!(fault["arguments"], json!({"executionId": id}));
    assert_fault(
        &w.importer.delete(&execution("CustomerImportJob", &id)),
        404,
        "JobExecutionNotFoundException",
        "17.4",
    );
    w.importer.get(&format!("/v1/jobs/{id}")).expect(404);

    // The job runs again from scratch.
    let fresh = execute(&w.importer, &executions("CustomerImportJob")).expect_json(200);
    assert_ne!(id_of(&fresh), id);
    assert!(
        steps_of(&fresh)
            .iter()
            .all(|s| s["execution_status"] == "pending")
    );
}

/// `sfcc-ci job:run -s` polls while `status` is `RUNNING`: an execution waiting for a worker,
/// running, or waiting for the retry of a failed attempt keeps such a client waiting; only the
/// end of the execution answers its exit code.
#[test]
fn a_live_execution_is_running_until_it_is_over() {
    let w = world();
    define(&w.importer, "Flaky", three_steps("flaky"));
    let created = execute(&w.importer, &executions("Flaky")).expect_json(200);
    assert_execution(&created, Some("17.4"));
    let id = id_of(&created);
    let get = || {
        let doc = w.importer.get(&execution("Flaky", &id)).expect_json(200);
        assert_execution(&doc, Some("17.4"));
        doc
    };
    let live = |doc: &Value, what: &str| {
        assert_eq!(doc["execution_status"], "running", "{what}: {doc}");
        assert_eq!(doc["status"], "RUNNING", "{what}: {doc}");
        assert!(doc.get("exit_status").is_none(), "{what}: {doc}");
    };
    live(&created, "waiting for a worker");
    live(&get(), "waiting for a worker");

    let lease = claim(&w.runner, "flaky");
    live(&get(), "running");

    // A retryable failure: the job waits for its retry, the execution is not over.
    w.runner
        .post(
            &format!("/v1/jobs/{}/fail", lease.id),
            &json!({"worker": "runner", "lease_token": lease.token, "error": "flaky",
                    "retryable": true}),
        )
        .expect(200);
    let native = w.importer.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(native["state"], "queued", "{native}");
    let waiting = get();
    live(&waiting, "waiting for its retry");
    assert_time(&waiting["start_time"]);
    let running = BTreeSet::from([id.clone()]);
    let found = hits(
        &w.importer,
        &json!({"query": {"term_query": {"fields": ["status"], "operator": "is",
                                         "values": ["RUNNING"]}}}),
    );
    assert_eq!(sorted(found), running, "a search for RUNNING finds it");

    // The retry runs and ends: only now is the status the exit code.
    let mut retry = None;
    crate::support::eventually("the retry is claimable", Duration::from_secs(10), || {
        let jobs = w.runner.claim("runner", "flaky", 1);
        retry = jobs.first().map(|job| Lease {
            id: job["id"].as_i64().unwrap_or_default(),
            token: job["lease_token"].as_i64().unwrap_or_default(),
        });
        retry.is_some()
    });
    let Some(retry) = retry else {
        unreachable!("eventually returned");
    };
    live(&get(), "running its retry");
    complete(&w.runner, &retry);
    let done = get();
    assert_eq!(done["execution_status"], "finished", "{done}");
    assert_eq!(done["status"], "OK", "{done}");
}

// ---------------------------------------------------------------------------------------------
// Faults

#[test]
fn every_fault_of_the_vendor_table() {
    let w = world();

    // Unknown job: the vendor sample's 404, exactly.
    let unknown = execute(&w.importer, &executions("CustomerImportJob"));
    assert_fault(&unknown, 404, "JobNotFoundException", "17.4");
    assert_eq!(
        unknown.json(),
        json!({"_v": "17.4", "fault": {"arguments": {"jobId": "CustomerImportJob"},
               "type": "JobNotFoundException",
               "message": "No job with ID 'CustomerImportJob' was found."}})
    );

    // Invalid: marked invalid, or without steps.
    define(
        &w.importer,
        "Broken",
        json!({"steps": [{"step_id": "a"}], "valid": false}),
    );
    let fault = assert_fault(
        &execute(&w.importer, &executions("Broken")),
        400,
        "JobInvalidException",
        "17.4",
    );
    assert_eq!(fault["arguments"]["jobId"], "Broken");
    assert_eq!(fault["arguments"]["cause"], "it is marked invalid");
    define(&w.importer, "Empty", json!({"steps": []}));
    let fault = assert_fault(
        &execute(&w.importer, &executions("Empty")),
        400,
        "JobInvalidException",
        "17.4",
    );
    assert_eq!(fault["arguments"]["cause"], "it has no steps");

    // Could not be executed (disabled): 409 with the vendor's message.
    define(
        &w.importer,
        "Disabled",
        json!({"steps": [{"step_id": "a"}], "enabled": false}),
    );
    let disabled = execute(&w.importer, &executions("Disabled"));
    assert_fault(&disabled, 409, "JobExecutionException", "17.4");
    assert_eq!(
        disabled.json()["fault"],
        json!({"arguments": {"jobId": "Disabled"}, "type": "JobExecutionException",
               "message": "The job with ID 'Disabled' could not be executed."})
    );

    // Restarts: nothing to restart; a job that does not restart.
    define(&w.importer, "Fresh", three_steps("fresh"));
    let fault = assert_fault(
        &execute(
            &w.importer,
            &format!("{}?restart=true", executions("Fresh")),
        ),
        400,
        "JobRestartException",
        "17.4",
    );
    assert_eq!(fault["arguments"], json!({"jobId": "Fresh"}));
    define(
        &w.importer,
        "Once",
        json!({"steps": [{"step_id": "a"}], "restartable": false}),
    );
    let fault = assert_fault(
        &execute(&w.importer, &format!("{}?restart=true", executions("Once"))),
        400,
        "JobNotRestartableException",
        "17.4",
    );
    assert_eq!(fault["arguments"], json!({"jobId": "Once"}));

    // Unknown execution: the vendor sample's 404, exactly; also an id of another job, an id
    // that is not a number, and a job that is not an execution.
    let missing = w.importer.get(&execution("CustomerImportJob", "90"));
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"_v": "17.4", "fault": {"arguments": {"executionId": "90"},
               "type": "JobExecutionNotFoundException",
               "message": "No Job execution with ID '90' was found."}})
    );
    let fresh = execute(&w.importer, &executions("Fresh")).expect_json(200);
    let id = id_of(&fresh);
    let native = w.importer.create(&json!({"kind": "export"}));
    let native_id = native["id"].as_i64().unwrap().to_string();
    for (job, id) in [
        ("Once", id.clone()),
        ("Fresh", "abc".to_owned()),
        ("Fresh", "0".to_owned()),
        ("Fresh", format!("0{id}")),
        ("Fresh", native_id.clone()),
        ("export", native_id.clone()),
    ] {
        let fault = assert_fault(
            &w.importer.get(&execution(job, &id)),
            404,
            "JobExecutionNotFoundException",
            "17.4",
        );
        assert_eq!(fault["arguments"], json!({"executionId": id}));
    }
    let deleted = w.importer.delete(&execution("CustomerImportJob", "85"));
    assert_eq!(
        deleted.json(),
        json!({"_v": "17.4", "fault": {"arguments": {"executionId": "85"},
               "type": "JobExecutionNotFoundException",
               "message": "No Job execution with ID '85' was found."}})
    );

    // Not finished: 403 (and nothing changes).
    let fault = assert_fault(
        &w.importer.delete(&execution("Fresh", &id)),
        403,
        "JobExecutionNotFinishedException",
        "17.4",
    );
    assert_eq!(fault["arguments"], json!({"executionId": id}));
    assert_eq!(
        w.importer.get(&execution("Fresh", &id)).expect_json(200)["execution_status"],
        "running"
    );

    // 401 without a token or with a wrong one; 403 without the scope; in the vendor's shape.
    let anonymous = w.daemon.client();
    assert_fault(
        &execute(&anonymous, &executions("Fresh")),
        401,
        "UnauthorizedException",
        "17.4",
    );
    let wrong = w.daemon.client_with("0123456789abcdef0123456789abcdef");
    assert_fault(
        &wrong.get(&execution("Fresh", &id)),
        401,
        "InvalidAccessTokenException",
        "17.4",
    );
    assert_fault(
        &execute(&w.viewer, &executions("Fresh")),
        403,
        "ClientAccessForbiddenException",
        "17.4",
    );
    assert_fault(
        &w.viewer.delete(&execution("Fresh", &id)),
        403,
        "ClientAccessForbiddenException",
        "17.4",
    );
    assert_fault(
        &w.runner.get(&execution("Fresh", &id)),
        403,
        "ClientAccessForbiddenException",
        "17.4",
    );
    w.viewer.get(&execution("Fresh", &id)).expect(200);

    // Another tenant: its definitions and executions are unknown, not forbidden.
    let theirs = w.other.get(&execution("Fresh", &id));
    assert_eq!(theirs.status, 404);
    assert_eq!(
        theirs.json(),
        json!({"_v": "17.4", "fault": {"arguments": {"executionId": id},
               "type": "JobExecutionNotFoundException",
               "message": format!("No Job execution with ID '{id}' was found.")}})
    );
    assert_fault(
        &w.other.delete(&execution("Fresh", &id)),
        404,
        "JobExecutionNotFoundException",
        "17.4",
    );
    let fault = assert_fault(
        &execute(&w.other, &executions("Fresh")),
        404,
        "JobNotFoundException",
        "17.4",
    );
    assert_eq!(fault["arguments"], json!({"jobId": "Fresh"}));

    // Methods, resources and versions that are not served.
    let put = w.importer.put(&executions("Fresh"), &json!({}));
    assert_fault(&put, 405, "MethodNotAllowedException", "17.4");
    assert_eq!(put.header("allow"), Some("POST"));
    let post = w.importer.post(&execution("Fresh", &id), &json!({}));
    assert_fault(&post, 405, "MethodNotAllowedException", "17.4");
    assert_eq!(post.header("allow"), Some("GET, HEAD, DELETE"));
    let search = w.importer.get("/dw/data/v19_5/job_execution_search");
    assert_fault(&search, 405, "MethodNotAllowedException", "19.5");
    let fault = assert_fault(
        &w.importer.get("/dw/data/v19_5/sites"),
        404,
        "NotFoundException",
        "19.5",
    );
    assert_eq!(fault["arguments"]["path"], "/dw/data/v19_5/sites");
    assert_fault(
        &w.importer
            .get("/dw/data/v19_5/jobs/Fresh/executions/1/steps"),
        404,
        "NotFoundException",
        "19.5",
    );
    for path in [
        "/dw/data/v16_1/jobs/Fresh/executions",
        "/dw/data/v17_3/jobs/Fresh/executions",
        "/dw/data/vlatest/jobs/Fresh/executions",
        "/dw/data/17_4/jobs/Fresh/executions",
        "/dw/data",
    ] {
        assert_fault(
            &execute(&w.importer, path),
            400,
            "InvalidVersionException",
            "17.4",
        );
    }

    // Bad input: 400 in the vendor's shape, and nothing is created.
    let before = w.importer.all_jobs();
    let post_body = |body: &str| {
        w.importer.request(
            "POST",
            &executions("Once"),
            &[("Content-Type", "application/json")],
            body,
        )
    };
    for body in [
        "{",
        "[]",
        "\"x\"",
        r#"{"parameters": "SiteScope"}"#,
        r#"{"parameters": [{"name": "a", "value": 1}]}"#,
        r#"{"parameters": [{"value": "v"}]}"#,
        r#"{"parameters": [{"name": "a", "value": "v", "extra": true}]}"#,
    ] {
        assert_fault(&post_body(body), 400, "BodyDecodingException", "17.4");
    }
    for body in [
        r#"{"parameters": [{"name": "", "value": "v"}]}"#.to_owned(),
        json!({"parameters": [{"name": "a", "value": "x".repeat(1001)}]}).to_string(),
        json!({"parameters": [{"name": "n".repeat(257), "value": "v"}]}).to_string(),
    ] {
        assert_fault(
            &post_body(&body),
            400,
            "ValueConstraintViolationException",
            "17.4",
        );
    }
    let fault = assert_fault(
        &execute(
            &w.importer,
            &format!("{}?restart=maybe", executions("Once")),
        ),
        400,
        "MalformedParameterException",
        "17.4",
    );
    assert_eq!(
        fault["arguments"],
        json!({"parameter": "restart", "value": "maybe"})
    );
    assert_eq!(
        w.importer.all_jobs(),
        before,
        "a refused request created nothing"
    );
}

// ---------------------------------------------------------------------------------------------
// Restarts and aborts

#[test]
fn restart_rules_and_aborted_executions() {
    let w = world();
    define(&w.importer, "Nightly", three_steps("nightly"));

    // The first execution fails in its second step.
    let first = execute(&w.importer, &executions("Nightly")).expect_json(200);
    let first_id = id_of(&first);
    let lease = claim(&w.runner, "nightly");
    step(
        &w.runner,
        &lease,
        "Step1",
        "ok",
        Some(("OK", "read 10 rows")),
    );
    step(&w.runner, &lease, "Step2", "running", None);
    step(
        &w.runner,
        &lease,
        "Step2",
        "error",
        Some(("ERROR", "bucket missing")),
    );
    fail(&w.runner, &lease, "step Step2 failed");
    let failed = w
        .importer
        .get(&execution("Nightly", &first_id))
        .expect_json(200);
    assert_execution(&failed, Some("17.4"));
    assert_eq!(failed["execution_status"], "finished");
    assert_eq!(failed["status"], "ERROR");
    assert_eq!(
        failed["exit_status"],
        json!({"_type": "status", "code": "ERROR", "message": "step Step2 failed",
               "status": "error"})
    );
    let steps = steps_of(&failed);
    assert_eq!(
        steps[1]["exit_status"],
        json!({"_type": "status", "code": "ERROR", "message": "bucket missing",
               "status": "error"})
    );
    assert_eq!(steps[1]["status"], "ERROR");
    assert_eq!(steps[2]["execution_status"], "pending");

    // Restart: a new execution; the step that finished ok is copied as finished, the rest
    // run again.
    let restarted = execute(
        &w.importer,
        &format!("{}?restart=true", executions("Nightly")),
    )
    .expect_json(200);
    assert_execution(&restarted, Some("17.4"));
    let second_id = id_of(&restarted);
    assert_ne!(second_id, first_id);
    assert_eq!(restarted["is_restart"], true);
    assert_eq!(restarted["execution_status"], "running");
    assert_eq!(restarted["status"], "RUNNING");
    let steps = steps_of(&restarted);
    assert_eq!(steps[0]["execution_status"], "finished");
    assert_eq!(
        steps[0]["exit_status"],
        json!({"_type": "status", "code": "OK", "message": "read 10 rows", "status": "ok"})
    );
    assert_eq!(steps[1]["execution_status"], "pending");
    assert_eq!(steps[2]["execution_status"], "pending");
    let native = w
        .importer
        .get(&format!("/v1/jobs/{second_id}"))
        .expect_json(200);
    assert_eq!(native["restart_of"].to_string(), first_id);
    // The failed execution is still there, unchanged.
    assert_eq!(
        w.importer
            .get(&execution("Nightly", &first_id))
            .expect_json(200),
        failed
    );

    // While it lives, neither a restart nor a plain execution.
    for path in [
        format!("{}?restart=true", executions("Nightly")),
        executions("Nightly"),
    ] {
        assert_fault(
            &execute(&w.importer, &path),
            400,
            "JobAlreadyRunningException",
            "17.4",
        );
    }

    // A cancel of the running execution (native API): aborting until the worker stops, then
    // aborted.
    let lease = claim(&w.runner, "nightly");
    step(&w.runner, &lease, "Step2", "running", None);
    w.importer
        .post(&format!("/v1/jobs/{second_id}/cancel"), &json!({}))
        .expect(200);
    let aborting = w
        .importer
        .get(&execution("Nightly", &second_id))
        .expect_json(200);
    assert_execution(&aborting, Some("17.4"));
    assert_eq!(aborting["execution_status"], "aborting");
    assert_eq!(aborting["status"], "RUNNING");
    fail(&w.runner, &lease, "cancelled by request");
    let aborted = w
        .importer
        .get(&execution("Nightly", &second_id))
        .expect_json(200);
    assert_execution(&aborted, Some("17.4"));
    assert_eq!(aborted["execution_status"], "aborted");
    assert_eq!(aborted["status"], "ABORTED");
    assert_eq!(
        aborted["exit_status"],
        json!({"_type": "status", "code": "ABORTED", "message": "cancelled by request",
               "status": "error"})
    );

    // An aborted execution restarts too; a pending one aborted by a cancel is aborted at once.
    let third = execute(
        &w.importer,
        &format!("{}?restart=true", executions("Nightly")),
    )
    .expect_json(200);
    let third_id = id_of(&third);
    assert_eq!(third["is_restart"], true);
    assert_eq!(steps_of(&third)[0]["execution_status"], "finished");
    w.importer
        .post(&format!("/v1/jobs/{third_id}/cancel"), &json!({}))
        .expect(200);
    let cancelled = w
        .importer
        .get(&execution("Nightly", &third_id))
        .expect_json(200);
    assert_execution(&cancelled, Some("17.4"));
    assert_eq!(cancelled["execution_status"], "aborted");
    assert_eq!(
        cancelled["exit_status"],
        json!({"_type": "status", "code": "ABORTED", "status": "error"})
    );
    assert!(cancelled.get("start_time").is_none());
    assert_eq!(cancelled["duration"], 0);
    // An aborted execution is over: it may be deleted.
    w.importer
        .delete(&execution("Nightly", &third_id))
        .expect(204);

    // After a success there is nothing to restart; a plain execution starts from scratch.
    let fourth = execute(
        &w.importer,
        &format!("{}?restart=true", executions("Nightly")),
    )
    .expect_json(200);
    let lease = claim(&w.runner, "nightly");
    assert_eq!(lease.id.to_string(), id_of(&fourth));
    step(&w.runner, &lease, "Step2", "ok", None);
    step(&w.runner, &lease, "Step3", "ok", None);
    complete(&w.runner, &lease);
    assert_fault(
        &execute(
            &w.importer,
            &format!("{}?restart=false&restart=true", executions("Nightly")),
        ),
        400,
        "JobRestartException",
        "17.4",
    );
    let plain = execute(
        &w.importer,
        &format!("{}?restart=false", executions("Nightly")),
    )
    .expect_json(200);
    assert_eq!(plain["is_restart"], false);
    assert!(
        steps_of(&plain)
            .iter()
            .all(|s| s["execution_status"] == "pending")
    );

    // A job that does not restart: its failure stays failed.
    define(
        &w.importer,
        "OneShot",
        json!({"queue": "oneshot", "restartable": false, "steps": [{"step_id": "only"}]}),
    );
    execute(&w.importer, &executions("OneShot")).expect(200);
    let lease = claim(&w.runner, "oneshot");
    fail(&w.runner, &lease, "boom");
    assert_fault(
        &execute(
            &w.importer,
            &format!("{}?restart=true", executions("OneShot")),
        ),
        400,
        "JobNotRestartableException",
        "17.4",
    );
}

// ---------------------------------------------------------------------------------------------
// Versions, prefixes and request bodies

/// Request headers of a case.
type Headers = Vec<(&'static str, &'static str)>;

#[test]
fn every_version_path_and_body_form() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let cases = [
        ("/dw/data/v17_4", "17.4"),
        ("/dw/data/v19_5", "19.5"),
        ("/dw/data/v19_10", "19.10"),
        ("/dw/data/v25_6", "25.6"),
        ("/s/-/dw/data/v19_5", "19.5"),
        ("/s/-/dw/data/v23_2", "23.2"),
    ];
    for (n, (base, v)) in cases.iter().enumerate() {
        let job = format!("Job{n}");
        define(&api, &job, three_steps("versions"));
        for slash in ["", "/"] {
            let created = api
                .request(
                    "POST",
                    &format!("{base}/jobs/{job}/executions{slash}"),
                    &[],
                    Body::None,
                )
                .expect_json(200);
            assert_execution(&created, Some(v));
            let id = id_of(&created);
            assert_eq!(created["client_id"], "local");
            let read = api
                .get(&format!("{base}/jobs/{job}/executions/{id}{slash}"))
                .expect_json(200);
            assert_execution(&read, Some(v));
            assert_eq!(read["id"], id);
            api.post(&format!("/v1/jobs/{id}/cancel"), &json!({}))
                .expect(200);
            api.delete(&format!("{base}/jobs/{job}/executions/{id}{slash}"))
                .expect(204);
        }
        let fault = assert_fault(
            &api.get(&format!("{base}/jobs/{job}/executions/424242")),
            404,
            "JobExecutionNotFoundException",
            v,
        );
        assert_eq!(fault["arguments"], json!({"executionId": "424242"}));
        for slash in ["", "/"] {
            let found = api
                .post(
                    &format!("{base}/job_execution_search{slash}"),
                    &json!({"query": {"term_query": {"fields": ["job_id"], "operator": "is",
                                                     "values": [job]}}}),
                )
                .expect_json(200);
            assert_eq!(found["_v"], *v);
            assert_eq!(found["total"], 0, "its executions were deleted: {found}");
        }
    }

    // The bodies clients send: none at all, an empty one without a Content-Type, `{}`, `null`
    // (sfcc-ci's `job.run(instance, job, null, token)`), the 19.x parameters (sfcc-ci sends
    // `null` for a parameter without a value), and a system job's own request document.
    define(&api, "Bodies", three_steps("bodies"));
    let path = "/s/-/dw/data/v19_5/jobs/Bodies/executions";
    let bodies: Vec<(Headers, Body, Value)> = vec![
        (vec![], Body::None, json!({})),
        (vec![], Body::Full(Vec::new()), json!({})),
        (
            vec![("Content-Type", "application/json")],
            Body::from("{}"),
            json!({}),
        ),
        (
            vec![("Content-Type", "application/json")],
            Body::from("null"),
            json!({}),
        ),
        (
            vec![("Content-Type", "application/json; charset=UTF-8")],
            Body::from(" null\n"),
            json!({}),
        ),
        (
            vec![("Content-Type", "application/json; charset=UTF-8")],
            Body::from(json!({"parameters": [
                {"name": "SiteScope", "value": "{\"all_storefront_sites\":true}"},
                {"name": "Flag", "value": null}
            ]})),
            json!({"parameters": [
                {"name": "SiteScope", "value": "{\"all_storefront_sites\":true}"},
                {"name": "Flag", "value": null}
            ]}),
        ),
        (
            vec![("Content-Type", "application/json")],
            Body::from(json!({"parameters": []})),
            json!({"parameters": []}),
        ),
        (
            vec![("Content-Type", "application/json")],
            Body::from(json!({"file_name": "siteGenesis.zip", "mode": "merge"})),
            json!({"file_name": "siteGenesis.zip", "mode": "merge"}),
        ),
    ];
    for (headers, body, payload) in bodies {
        let created = api.request("POST", path, &headers, body).expect_json(200);
        assert_execution(&created, Some("19.5"));
        let id = id_of(&created);
        let native = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
        assert_eq!(native["payload"], payload);
        let expected = payload.get("parameters").map(|list| {
            Value::Array(
                list.as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        json!({"_type": "job_execution_parameter", "name": p["name"],
                               "value": p["value"]})
                    })
                    .collect(),
            )
        });
        assert_eq!(created.get("parameters"), expected.as_ref(), "{created}");
        let read = api
            .get(&format!("/s/-/dw/data/v19_5/jobs/Bodies/executions/{id}"))
            .expect_json(200);
        assert_eq!(read.get("parameters"), expected.as_ref());
        api.post(&format!("/v1/jobs/{id}/cancel"), &json!({}))
            .expect(200);
    }
}

/// HEAD on an execution answers as its GET without the body (RFC 9110 §9.1): the same status
/// and headers (`Content-Length`, when sent, the GET's), and no byte after the head.
#[test]
fn head_on_an_execution_answers_as_get_without_a_body() {
    use std::io::{Read, Write};
    let daemon = Daemon::start();
    let api = daemon.client();
    define(&api, "Headed", three_steps("headed"));
    let id = id_of(&execute(&api, &executions("Headed")).expect_json(200));
    let path = format!("/s/-/dw/data/v19_5/jobs/Headed/executions/{id}");
    let get = api.get(&path);
    assert_eq!(get.status, 200, "GET {path}: {}", get.text());
    let mut stream = crate::support::connect(daemon.addr());
    let head = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
    assert!(head.starts_with("HTTP/1.1 200"), "HEAD {path}: {head}");
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
        get.header("content-type")
    );
    assert_eq!(
        header("cache-control").as_deref(),
        get.header("cache-control")
    );
}

// ---------------------------------------------------------------------------------------------
// job_execution_search

/// `POST {base}/job_execution_search`.
fn search(api: &Client, body: &Value) -> Response {
    api.post("/s/-/dw/data/v19_5/job_execution_search", body)
}

/// The ids of a search's hits, in order; checks the envelope and every hit.
#[track_caller]
fn hits(api: &Client, body: &Value) -> Vec<String> {
    let result = search(api, body).expect_json(200);
    let members = keys(&result);
    let allowed: BTreeSet<String> = [
        "_v", "_type", "count", "hits", "next", "previous", "query", "select", "sorts", "start",
        "total",
    ]
    .map(String::from)
    .into();
    assert!(members.is_subset(&allowed), "{result}");
    for required in [
        "_v", "_type", "count", "hits", "query", "select", "start", "total",
    ] {
        assert!(members.contains(required), "{required} missing in {result}");
    }
    assert_eq!(result["_v"], "19.5");
    assert_eq!(result["_type"], "job_execution_search_result");
    assert_eq!(result["query"], body["query"]);
    assert_eq!(
        result["start"],
        body.get("start").cloned().unwrap_or(json!(0))
    );
    let hits = result["hits"].as_array().unwrap();
    assert_eq!(result["count"], hits.len());
    assert!(result["total"].as_u64().unwrap() >= hits.len() as u64);
    for hit in hits {
        assert_execution(hit, None);
    }
    hits.iter().map(id_of).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

fn sorted(mut ids: Vec<String>) -> BTreeSet<String> {
    ids.sort();
    ids.into_iter().collect()
}

#[test]
fn job_execution_search_queries_sorts_and_pages() {
    let w = world();
    let api = &w.importer;
    for (job, queue) in [("Alpha", "qa"), ("Beta", "qb"), ("Gamma", "qc")] {
        define(api, job, three_steps(queue));
    }
    let run = |job: &str| id_of(&execute(api, &executions(job)).expect_json(200));

    // Alpha: one succeeded, one failed, one waiting for a worker. Beta: running. Gamma:
    // aborted before it ran. And a native job that is not an execution at all.
    let alpha_ok = run("Alpha");
    let lease = claim(&w.runner, "qa");
    thread::sleep(Duration::from_millis(3));
    complete(&w.runner, &lease);
    let alpha_error = run("Alpha");
    let lease = claim(&w.runner, "qa");
    thread::sleep(Duration::from_millis(3));
    fail(&w.runner, &lease, "boom");
    let beta_running = run("Beta");
    claim(&w.runner, "qb");
    let alpha_waiting = run("Alpha");
    let gamma_aborted = run("Gamma");
    api.post(&format!("/v1/jobs/{gamma_aborted}/cancel"), &json!({}))
        .expect(200);
    api.create(&json!({"kind": "export"}));
    // Another tenant's execution is never found.
    define(&w.other, "Alpha", three_steps("qa"));
    execute(&w.other, &executions("Alpha")).expect(200);

    let all = set(&[
        &alpha_ok,
        &alpha_error,
        &beta_running,
        &alpha_waiting,
        &gamma_aborted,
    ]);
    let term = |field: &str, operator: &str, values: Value| json!({"term_query": {"fields": [field], "operator": operator, "values": values}});
    let find = |query: Value| sorted(hits(api, &json!({"query": query})));

    // match_all: every execution of the tenant, newest first by default.
    let everything = hits(api, &json!({"query": {"match_all_query": {}}}));
    assert_eq!(sorted(everything.clone()), all);
    let mut newest_first = everything.clone();
    newest_first.sort_by_key(|id| std::cmp::Reverse(id.parse::<i64>().unwrap()));
    assert_eq!(everything, newest_first);
    let envelope = search(api, &json!({"query": {"match_all_query": {}}})).expect_json(200);
    assert_eq!(envelope["total"], 5);
    assert_eq!(envelope["select"], "(**)");
    assert!(envelope.get("sorts").is_none());

    // term queries on each field and operator.
    assert_eq!(
        find(term("job_id", "is", json!(["Alpha"]))),
        set(&[&alpha_ok, &alpha_error, &alpha_waiting])
    );
    assert_eq!(
        find(term("job_id", "one_of", json!(["Beta", "Gamma", "Nope"]))),
        set(&[&beta_running, &gamma_aborted])
    );
    assert_eq!(
        find(term("job_id", "not_in", json!(["Alpha", "Beta"]))),
        set(&[&gamma_aborted])
    );
    assert_eq!(
        find(term("id", "is", json!([alpha_error]))),
        set(&[&alpha_error])
    );
    assert_eq!(
        find(term(
            "id",
            "one_of",
            json!([alpha_ok, "not-a-number", 999_999])
        )),
        set(&[&alpha_ok])
    );
    assert_eq!(find(term("id", "is", json!(["x"]))), BTreeSet::new());
    for (status, ids) in [
        ("OK", set(&[&alpha_ok])),
        ("ERROR", set(&[&alpha_error])),
        // Waiting for a worker or running: both live, both RUNNING.
        ("RUNNING", set(&[&beta_running, &alpha_waiting])),
        ("PENDING", BTreeSet::new()),
        ("ABORTED", set(&[&gamma_aborted])),
    ] {
        assert_eq!(find(term("status", "is", json!([status]))), ids, "{status}");
    }
    assert_eq!(
        find(term("status", "neq", json!(["RUNNING"]))),
        set(&[&alpha_ok, &alpha_error, &gamma_aborted])
    );
    assert_eq!(
        find(term("start_time", "is_null", json!([]))),
        set(&[&alpha_waiting, &gamma_aborted])
    );
    assert_eq!(
        find(term("start_time", "is_not_null", json!([]))),
        set(&[&alpha_ok, &alpha_error, &beta_running])
    );
    assert_eq!(
        find(term("end_time", "is_null", json!([]))),
        set(&[&beta_running, &alpha_waiting])
    );
    assert_eq!(
        find(
            json!({"term_query": {"fields": ["job_id", "status"], "operator": "one_of",
                                   "values": ["Gamma", "RUNNING"]}})
        ),
        set(&[&beta_running, &alpha_waiting, &gamma_aborted])
    );

    // Times: exactly, before, after, compared with the documents' own times.
    let docs: Vec<Value> = [&alpha_ok, &alpha_error, &beta_running]
        .iter()
        .map(|id| {
            let job = if **id == beta_running {
                "Beta"
            } else {
                "Alpha"
            };
            api.get(&execution(job, id)).expect_json(200)
        })
        .collect();
    let started = |keep: &dyn Fn(&str) -> bool| -> BTreeSet<String> {
        docs.iter()
            .filter(|d| keep(d["start_time"].as_str().unwrap()))
            .map(id_of)
            .collect()
    };
    for doc in &docs {
        let at = doc["start_time"].as_str().unwrap();
        assert_eq!(
            find(term("start_time", "is", json!([at]))),
            started(&|t| t == at)
        );
        assert_eq!(
            find(term("start_time", "greater", json!([at]))),
            started(&|t| t > at)
        );
        assert_eq!(
            find(term("start_time", "less", json!([at]))),
            started(&|t| t < at)
        );
        assert_eq!(
            find(term("start_time", "neq", json!([at]))),
            &all - &started(&|t| t == at)
        );
    }
    let error_end = docs[1]["end_time"].as_str().unwrap().to_owned();
    assert_eq!(
        find(term("end_time", "less", json!([error_end]))),
        set(&[&alpha_ok])
    );
    assert_eq!(
        find(term("end_time", "greater", json!(["2000-01-01"]))),
        set(&[&alpha_ok, &alpha_error, &gamma_aborted])
    );
    assert_eq!(
        find(term(
            "end_time",
            "less",
            json!(["2000-01-01T00:00:00+01:00"])
        )),
        BTreeSet::new()
    );

    // bool queries: must (AND), should (OR), must_not (NOT), nested.
    // What the B2C tooling SDK sends to find a running execution of a job:
    assert_eq!(
        find(json!({"bool_query": {"must": [
            term("job_id", "is", json!(["Alpha"])),
            term("status", "one_of", json!(["RUNNING", "PENDING"]))
        ]}})),
        set(&[&alpha_waiting])
    );
    assert_eq!(
        find(json!({"bool_query": {"should": [
            term("status", "is", json!(["OK"])),
            term("status", "is", json!(["ERROR"]))
        ]}})),
        set(&[&alpha_ok, &alpha_error])
    );
    assert_eq!(
        find(json!({"bool_query": {"must_not": [
            term("job_id", "is", json!(["Alpha"])),
            term("status", "is", json!(["ABORTED"]))
        ]}})),
        set(&[&beta_running])
    );
    assert_eq!(
        find(json!({"bool_query": {
            "must": [{"match_all_query": {}}],
            "should": [
                {"bool_query": {"must": [term("job_id", "is", json!(["Alpha"])),
                                         term("end_time", "is_not_null", json!([]))]}},
                term("job_id", "is", json!(["Gamma"]))
            ],
            "must_not": [term("status", "is", json!(["ERROR"]))]
        }})),
        set(&[&alpha_ok, &gamma_aborted])
    );
    assert_eq!(find(json!({"bool_query": {}})), all);

    // Sorts: each sortable field in both directions, checked against the documents; not
    // started and not finished sort first ascending.
    let key_of = |doc: &Value, field: &str| -> String {
        match field {
            "id" => format!(
                "{:020}",
                doc["id"].as_str().unwrap().parse::<i64>().unwrap()
            ),
            "status" => doc["status"].as_str().unwrap().to_owned(),
            other => doc
                .get(other)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        }
    };
    for field in ["id", "job_id", "start_time", "end_time", "status"] {
        for order in ["asc", "desc"] {
            let result = search(
                api,
                &json!({"query": {"match_all_query": {}},
                        "sorts": [{"field": field, "sort_order": order}], "count": 200}),
            )
            .expect_json(200);
            assert_eq!(
                result["sorts"],
                json!([{"field": field, "sort_order": order}])
            );
            let docs = result["hits"].as_array().unwrap();
            let keys: Vec<(String, i64)> = docs
                .iter()
                .map(|d| (key_of(d, field), d["id"].as_str().unwrap().parse().unwrap()))
                .collect();
            let mut expected = keys.clone();
            expected.sort();
            if order == "desc" {
                expected.reverse();
            }
            assert_eq!(keys, expected, "sort by {field} {order}");
        }
    }
    // Without a sort order: ascending.
    let ascending = hits(
        api,
        &json!({"query": {"match_all_query": {}}, "sorts": [{"field": "id"}]}),
    );
    let mut by_id = ascending.clone();
    by_id.sort_by_key(|id| id.parse::<i64>().unwrap());
    assert_eq!(ascending, by_id);

    // Paging with start and count: no execution repeated or skipped.
    let mut seen = Vec::new();
    for start in [0, 2, 4, 6] {
        let body = json!({"query": {"match_all_query": {}}, "count": 2, "start": start,
                          "sorts": [{"field": "id", "sort_order": "asc"}]});
        let result = search(api, &body).expect_json(200);
        assert_eq!(result["total"], 5);
        assert_eq!(result["start"], start);
        seen.extend(hits(api, &body));
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(sorted(seen), all);
    let select = search(
        api,
        &json!({"query": {"match_all_query": {}}, "select": "(hits.(id))", "expand": []}),
    )
    .expect_json(200);
    assert_eq!(select["select"], "(hits.(id))");

    // Faults.
    let fault = |body: Value, kind: &str| {
        assert_fault(&search(api, &body), 400, kind, "19.5");
    };
    let all_query = json!({"match_all_query": {}});
    let all_query = &all_query;
    fault(json!({}), "BodyDecodingException");
    fault(json!({"query": {}}), "BodyDecodingException");
    fault(
        json!({"query": {"match_all_query": {}, "term_query": {}}}),
        "BodyDecodingException",
    );
    fault(
        json!({"query": all_query, "limit": 5}),
        "BodyDecodingException",
    );
    fault(
        json!({"query": {"funny_query": {}}}),
        "BodyDecodingException",
    );
    fault(
        json!({"query": {"term_query": {"fields": ["id"], "operator": "is"}}}),
        "ValueConstraintViolationException",
    );
    fault(
        json!({"query": {"term_query": {"fields": ["id"], "values": ["1"]}}}),
        "BodyDecodingException",
    );
    fault(
        json!({"query": all_query, "count": 0}),
        "ValueConstraintViolationException",
    );
    fault(
        json!({"query": all_query, "count": 201}),
        "ValueConstraintViolationException",
    );
    fault(
        json!({"query": all_query, "start": -1}),
        "ValueConstraintViolationException",
    );
    fault(
        json!({"query": term("client_id", "is", json!(["x"]))}),
        "FieldNotSearchableException",
    );
    fault(
        json!({"query": term("job_id", "like", json!(["x"]))}),
        "EnumConstraintViolationException",
    );
    fault(
        json!({"query": term("start_time", "is", json!(["yesterday"]))}),
        "InvalidSearchFieldTypeException",
    );
    fault(
        json!({"query": term("job_id", "is", json!([1]))}),
        "InvalidSearchFieldTypeException",
    );
    fault(
        json!({"query": term("status", "less", json!(["OK"]))}),
        "UnsupportedQueryException",
    );
    fault(
        json!({"query": term("start_time", "less", json!(["2020-01-01", "2021-01-01"]))}),
        "ValueConstraintViolationException",
    );
    fault(
        json!({"query": {"text_query": {"fields": ["job_id"], "search_phrase": "Alpha"}}}),
        "UnsupportedQueryException",
    );
    let not_sortable = search(
        api,
        &json!({"query": all_query, "sorts": [{"field": "client_id"}]}),
    );
    let sortable = assert_fault(&not_sortable, 400, "FieldNotSortableException", "19.5");
    assert_eq!(sortable["arguments"], json!({"field": "client_id"}));
    fault(
        json!({"query": all_query, "sorts": [{"field": "id", "sort_order": "up"}]}),
        "EnumConstraintViolationException",
    );
    assert_fault(
        &search(&w.runner, &json!({"query": all_query})),
        403,
        "ClientAccessForbiddenException",
        "19.5",
    );
    assert_fault(
        &search(&w.daemon.client(), &json!({"query": all_query})),
        401,
        "UnauthorizedException",
        "19.5",
    );
    // A read-only token searches; the other tenant sees only its own execution.
    assert_eq!(sorted(hits(&w.viewer, &json!({"query": all_query}))), all);
    assert_eq!(hits(&w.other, &json!({"query": all_query})).len(), 1);
}

/// The vendor's search sample (23.2), sent as printed with our host.
#[test]
fn the_vendor_search_sample_answers_as_documented() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let mut ids = Vec::new();
    for (n, job) in ["ImportProducts_stg", "VerifyPromotions_stg", "Other"]
        .iter()
        .enumerate()
    {
        define(&api, job, three_steps(&format!("sample{n}")));
        ids.push(id_of(&execute(&api, &executions(job)).expect_json(200)));
        let lease = claim(&api, &format!("sample{n}"));
        thread::sleep(Duration::from_millis(3));
        complete(&api, &lease);
    }
    let response = api.request(
        "POST",
        "/s/-/dw/data/v23_2/job_execution_search",
        &[("Content-Type", "application/json; charset=UTF-8")],
        r#"{ 
  "query" : 
  {
    "term_query": { "fields": ["job_id"], "operator": "is", "values": ["ImportProducts_stg", "VerifyPromotions_stg"] }
  },
  "sorts":[{"field":"start_time", "sort_order":"asc"}]
}"#,
    );
    let result = response.expect_json(200);
    assert_eq!(result["_v"], "23.2");
    assert_eq!(result["_type"], "job_execution_search_result");
    assert_eq!(result["count"], 2);
    assert_eq!(result["total"], 2);
    assert_eq!(result["start"], 0);
    let hits = result["hits"].as_array().unwrap();
    assert_eq!(
        hits.iter().map(id_of).collect::<Vec<_>>(),
        ids[..2].to_vec()
    );
    for hit in hits {
        assert_execution(hit, None);
        assert_eq!(hit["exit_status"]["code"], "OK");
    }
}

/// Executions of a definition are the same resources whichever API started them: one made
/// with the native `POST /v1/definitions/{id}/executions` is read and found through OCAPI like
/// one made through OCAPI.
#[test]
fn an_execution_started_natively_is_an_ocapi_execution() {
    let w = world();
    define(&w.importer, "nightly", three_steps("nightly"));
    let native = w
        .importer
        .post("/v1/definitions/nightly/executions", &json!({}))
        .expect_json(201);
    let id = native["id"].as_i64().expect("a job id").to_string();
    let read = w.importer.get(&execution("nightly", &id)).expect_json(200);
    assert_eq!(read["id"], id, "{read}");
    assert_eq!(read["job_id"], "nightly", "{read}");
    let found = w
        .importer
        .post(
            &format!("{BASE}/job_execution_search"),
            &json!({"query": {"term_query": {"fields": ["id"], "operator": "is", "values": [id]}}}),
        )
        .expect_json(200);
    assert_eq!(found["total"], 1, "{found}");
    // Another definition's path does not name it.
    define(&w.importer, "weekly", three_steps("weekly"));
    let other = w.importer.get(&execution("weekly", &id));
    assert_eq!(other.status, 404, "{}", other.text());
}

// ---------------------------------------------------------------------------------------------
// The vendor's response headers

/// Every answer with a body carries the headers of every seed sample: `Content-Type:
/// application/json;charset=UTF-8` (no space), `Expires: Thu, 01-Jan-1970 00:00:00 GMT` and
/// `Cache-Control: no-cache,no-store,must-revalidate`, faults included.
#[test]
fn every_answer_carries_the_vendor_content_type_and_expires() {
    let w = world();
    #[track_caller]
    fn vendor_headers(response: &Response, what: &str) {
        assert_eq!(
            response.header("content-type"),
            Some("application/json;charset=UTF-8"),
            "{what}: {}",
            response.text()
        );
        assert_eq!(
            response.header("expires"),
            Some("Thu, 01-Jan-1970 00:00:00 GMT"),
            "{what}"
        );
        assert_eq!(
            response.header("cache-control"),
            Some("no-cache,no-store,must-revalidate"),
            "{what}"
        );
    }
    let unknown = execute(&w.importer, &executions("CustomerImportJob"));
    unknown.expect(404);
    vendor_headers(&unknown, "JobNotFoundException");
    define(&w.importer, "CustomerImportJob", three_steps("headers"));
    let created = execute(&w.importer, &executions("CustomerImportJob"));
    created.expect(200);
    vendor_headers(&created, "POST executions");
    let id = id_of(&created.json());
    let read = w.importer.get(&execution("CustomerImportJob", &id));
    read.expect(200);
    vendor_headers(&read, "GET execution");
    let head = w.importer.request(
        "HEAD",
        &execution("CustomerImportJob", &id),
        &[],
        Body::None,
    );
    head.expect(200);
    vendor_headers(&head, "HEAD execution");
    let missing = w.importer.get(&execution("CustomerImportJob", "90"));
    missing.expect(404);
    vendor_headers(&missing, "JobExecutionNotFoundException");
    let found = search(&w.importer, &json!({"query": {"match_all_query": {}}}));
    found.expect(200);
    vendor_headers(&found, "job_execution_search");
    let anonymous = w
        .daemon
        .client_with("no-such-token")
        .get(&execution("CustomerImportJob", &id));
    anonymous.expect(401);
    vendor_headers(&anonymous, "InvalidAccessTokenException");
    let refused = w.importer.delete(&execution("CustomerImportJob", &id));
    refused.expect(403);
    vendor_headers(&refused, "JobExecutionNotFinishedException");
    let not_allowed = w
        .importer
        .request("PUT", &executions("CustomerImportJob"), &[], Body::None);
    not_allowed.expect(405);
    vendor_headers(&not_allowed, "MethodNotAllowedException");

    // The 204 of a DELETE has no body, and no content type.
    let lease = claim(&w.runner, "headers");
    complete(&w.runner, &lease);
    let deleted = w.importer.delete(&execution("CustomerImportJob", &id));
    deleted.expect(204);
    assert_eq!(deleted.header("content-type"), None);
}

// ---------------------------------------------------------------------------------------------
// Resource states

/// A DELETE that names a resource state (`x-dw-resource-state`) other than the execution's
/// `_resource_state` is the vendor's 409 `ResourceStateConflictException`, and deletes
/// nothing; the current one deletes. A HEAD answers the state in the same header.
#[test]
fn a_stale_resource_state_refuses_the_delete() {
    let w = world();
    define(&w.importer, "Stateful", three_steps("stateful"));
    let created = execute(&w.importer, &executions("Stateful")).expect_json(200);
    let id = id_of(&created);
    let lease = claim(&w.runner, "stateful");
    complete(&w.runner, &lease);
    let path = execution("Stateful", &id);
    let current = w.importer.get(&path).expect_json(200);
    let state = current["_resource_state"].as_str().unwrap().to_owned();
    assert_ne!(created["_resource_state"], current["_resource_state"]);
    let stale = created["_resource_state"].as_str().unwrap();
    let head = w.importer.request("HEAD", &path, &[], Body::None);
    head.expect(200);
    assert_eq!(head.header("x-dw-resource-state"), Some(state.as_str()));

    for given in [stale, "", "not-a-state"] {
        let refused = w.importer.request(
            "DELETE",
            &path,
            &[("x-dw-resource-state", given)],
            Body::None,
        );
        assert_fault(&refused, 409, "ResourceStateConflictException", "17.4");
        assert_eq!(w.importer.get(&path).expect_json(200), current);
    }
    let deleted = w.importer.request(
        "DELETE",
        &path,
        &[("x-dw-resource-state", &state)],
        Body::None,
    );
    deleted.expect(204);
    w.importer.get(&path).expect(404);
}

// ---------------------------------------------------------------------------------------------
// HTTP method override

/// A POST with `x-dw-http-method-override` (or the `method` query parameter) is the
/// overriding method on every route: a DELETE deletes, a HEAD reads without a body; an
/// override the route does not serve is the vendor's 405 with `Allow`, and one the vendor
/// does not allow is its `IllegalHttpMethodOverrideException`. A POST with an override never
/// creates an execution.
#[test]
fn the_method_override_routes_a_post_as_its_method() {
    let w = world();
    define(&w.importer, "Overridden", three_steps("overridden"));
    let total = || {
        search(
            &w.importer,
            &json!({"query": {"term_query": {"fields": ["job_id"], "operator": "is",
                                             "values": ["Overridden"]}}}),
        )
        .expect_json(200)["total"]
            .clone()
    };
    let post = |path: &str, method: &str| {
        w.importer.request(
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("x-dw-http-method-override", method),
            ],
            Body::None,
        )
    };

    // The executions resource serves POST only: an override to DELETE creates nothing.
    let refused = post(&executions("Overridden"), "DELETE");
    let fault = assert_fault(&refused, 405, "MethodNotAllowedException", "17.4");
    assert_eq!(fault["arguments"], json!({"method": "DELETE"}), "{fault}");
    assert_eq!(refused.header("allow"), Some("POST"));
    assert_eq!(total(), 0);

    let id = id_of(&execute(&w.importer, &executions("Overridden")).expect_json(200));
    let path = execution("Overridden", &id);
    // DELETE of a live execution, through the override: the vendor's 403, nothing changes.
    assert_fault(
        &post(&path, "DELETE"),
        403,
        "JobExecutionNotFinishedException",
        "17.4",
    );
    // HEAD: the GET's answer without a body; a read-only token may ask it.
    let head = w.viewer.request(
        "POST",
        &path,
        &[("x-dw-http-method-override", "HEAD")],
        Body::None,
    );
    head.expect(200);
    assert!(head.body.is_empty(), "{}", head.text());
    let doc = w.importer.get(&path).expect_json(200);
    assert_eq!(
        head.header("x-dw-resource-state"),
        doc["_resource_state"].as_str()
    );
    // Methods the route does not serve: 405 with its Allow list.
    for (route, method, allow) in [
        (path.as_str(), "PATCH", "GET, HEAD, DELETE"),
        (path.as_str(), "PUT", "GET, HEAD, DELETE"),
        (path.as_str(), "OPTIONS", "GET, HEAD, DELETE"),
        (&format!("{BASE}/job_execution_search"), "PUT", "POST"),
        (&format!("{BASE}/job_execution_search"), "DELETE", "POST"),
    ] {
        let refused = post(route, method);
        assert_fault(&refused, 405, "MethodNotAllowedException", "17.4");
        assert_eq!(refused.header("allow"), Some(allow), "{method} {route}");
    }
    // Methods the vendor does not take as an override.
    for method in ["GET", "POST", "TRACE", "delete-it"] {
        let refused = post(&path, method);
        let fault = assert_fault(&refused, 400, "IllegalHttpMethodOverrideException", "17.4");
        assert_eq!(fault["arguments"], json!({"method": method}), "{fault}");
    }
    assert_eq!(total(), 1);

    // Once finished, the override deletes it; so does the `method` query parameter.
    let lease = claim(&w.runner, "overridden");
    complete(&w.runner, &lease);
    post(&path, "DELETE").expect(204);
    w.importer.get(&path).expect(404);
    let id = id_of(&execute(&w.importer, &executions("Overridden")).expect_json(200));
    let lease = claim(&w.runner, "overridden");
    complete(&w.runner, &lease);
    let path = execution("Overridden", &id);
    w.importer
        .request("POST", &format!("{path}?method=DELETE"), &[], Body::None)
        .expect(204);
    w.importer.get(&path).expect(404);
    assert_eq!(total(), 0);
}

// ---------------------------------------------------------------------------------------------
// Formats

/// The vendor lists `json` and `xml` but documents no XML document: XML (asked with
/// `?format=xml`, or sent as an `application/xml` or `text/xml` body) is refused with the
/// vendor's 415 for an unsupported format, in JSON, and changes nothing.
#[test]
fn xml_is_refused_with_the_vendor_fault_for_an_unsupported_format() {
    let w = world();
    define(&w.importer, "Formats", three_steps("formats"));
    let xml_body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><job_execution_request/>";
    for content_type in ["application/xml", "text/xml; charset=UTF-8"] {
        let refused = w.importer.request(
            "POST",
            &executions("Formats"),
            &[("Content-Type", content_type)],
            xml_body,
        );
        let fault = assert_fault(&refused, 415, "UnsupportedMediaTypeException", "17.4");
        let media = content_type.split(';').next().unwrap();
        assert_eq!(fault["arguments"], json!({"mediaType": media}), "{fault}");
    }
    let refused = w.importer.request(
        "POST",
        &format!("{BASE}/job_execution_search"),
        &[("Content-Type", "text/xml")],
        "<search_request/>",
    );
    assert_fault(&refused, 415, "UnsupportedMediaTypeException", "17.4");
    // Nothing was executed: the first JSON execution is not refused as already running.
    let created = execute(
        &w.importer,
        &format!("{}?format=xml", executions("Formats")),
    );
    assert_execution(&created.expect_json(200), Some("17.4"));
    let id = id_of(&created.json());
    // On a GET the format parameter asks: json is served, anything else refused.
    let path = execution("Formats", &id);
    w.importer.get(&format!("{path}?format=json")).expect(200);
    for format in ["xml", "yaml"] {
        let refused = w.importer.get(&format!("{path}?format={format}"));
        let fault = assert_fault(&refused, 415, "UnsupportedMediaTypeException", "17.4");
        assert_eq!(fault["arguments"], json!({"mediaType": format}), "{fault}");
    }
    let refused = w
        .importer
        .request("DELETE", &format!("{path}?format=xml"), &[], Body::None);
    assert_fault(&refused, 415, "UnsupportedMediaTypeException", "17.4");
    w.importer.get(&path).expect(200);
}

/// Step executions as in the vendor's sample: each has its own numeric id (a string), the
/// `step_type_info` member, an `exit_status.message` (`""` when the step reported none);
/// `include_steps_from_job_id` only names a job a step was included from, and no step of
/// a jobstore definition is.
#[test]
fn step_executions_are_documented_as_in_the_vendor_sample() {
    let w = world();
    define(&w.importer, "Stepped", three_steps("stepped"));
    let created = execute(&w.importer, &executions("Stepped")).expect_json(200);
    let id = id_of(&created);
    let lease = claim(&w.runner, "stepped");
    step(&w.runner, &lease, "Step1", "ok", Some(("OK", "")));
    step(
        &w.runner,
        &lease,
        "Step2",
        "ok",
        Some(("SUCCESS", "Step was successful!")),
    );
    step(&w.runner, &lease, "Step3", "ok", None);
    complete(&w.runner, &lease);
    let doc = w.importer.get(&execution("Stepped", &id)).expect_json(200);
    let steps = steps_of(&doc);
    let mut seen = BTreeSet::new();
    for step in &steps {
        let step_id = step["id"].as_str().unwrap();
        assert!(
            !step_id.is_empty() && step_id.bytes().all(|b| b.is_ascii_digit()),
            "{step}"
        );
        assert!(seen.insert(step_id.to_owned()), "{step_id} twice");
        assert_eq!(step["step_type_info"], "", "{step}");
        assert!(step.get("include_steps_from_job_id").is_none(), "{step}");
    }
    assert_eq!(
        steps[0]["exit_status"],
        json!({"_type": "status", "code": "OK", "message": "", "status": "ok"})
    );
    assert_eq!(
        steps[1]["exit_status"],
        json!({"_type": "status", "code": "SUCCESS", "message": "Step was successful!",
               "status": "ok"})
    );
    assert_eq!(
        steps[2]["exit_status"],
        json!({"_type": "status", "code": "OK", "message": "", "status": "ok"})
    );
    // The execution's own exit status has no message when there is none, as in the sample.
    assert_eq!(
        doc["exit_status"],
        json!({"_type": "status", "code": "OK", "status": "ok"})
    );
    // Step ids are stable, and differ between executions.
    let again = w.importer.get(&execution("Stepped", &id)).expect_json(200);
    assert_eq!(steps_of(&again)[0]["id"], steps[0]["id"]);
    let next = execute(&w.importer, &executions("Stepped")).expect_json(200);
    for step in steps_of(&next) {
        assert!(!seen.contains(step["id"].as_str().unwrap()), "{step}");
    }
}

/// Search results carry the vendor's `next` and `previous` result pages (`{"_type":
/// "result_page", "count", "start"}`): the search parameters of the neighbouring pages,
/// absent where there is none.
#[test]
fn search_results_link_the_next_and_previous_pages() {
    let daemon = Daemon::start();
    let api = daemon.client();
    define(&api, "Paged", three_steps("paged"));
    for _ in 0..5 {
        execute(&api, &executions("Paged")).expect(200);
        let lease = claim(&api, "paged");
        complete(&api, &lease);
    }
    let page = |start: u64, count: u64| {
        let result = search(
            &api,
            &json!({"query": {"match_all_query": {}}, "start": start, "count": count}),
        )
        .expect_json(200);
        assert_eq!(result["total"], 5, "{result}");
        result
    };
    let page_of =
        |start: u64, count: u64| json!({"_type": "result_page", "count": count, "start": start});
    let first = page(0, 2);
    assert_eq!(first["next"], page_of(2, 2), "{first}");
    assert!(first.get("previous").is_none(), "{first}");
    let middle = page(2, 2);
    assert_eq!(middle["next"], page_of(4, 2), "{middle}");
    assert_eq!(middle["previous"], page_of(0, 2), "{middle}");
    let last = page(4, 2);
    assert_eq!(last["count"], 1);
    assert!(last.get("next").is_none(), "{last}");
    assert_eq!(last["previous"], page_of(2, 2), "{last}");
    // A page that does not start on a page boundary: the previous page ends where it starts.
    let odd = page(1, 2);
    assert_eq!(odd["previous"], page_of(0, 1), "{odd}");
    assert_eq!(odd["next"], page_of(3, 2), "{odd}");
    let all = page(0, 25);
    assert!(
        all.get("next").is_none() && all.get("previous").is_none(),
        "{all}"
    );
    let past = page(7, 2);
    assert!(past.get("next").is_none(), "{past}");
    assert_eq!(past["previous"], page_of(5, 2), "{past}");
}

/// Several sort clauses are accepted and echoed: the first orders the hits, ties broken by
/// id in its direction; every clause is checked like the first.
#[test]
fn several_sort_clauses_are_accepted_and_the_first_sorts() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let mut ids = Vec::new();
    for (job, queue) in [("B", "sb"), ("A", "sa"), ("B", "sb"), ("A", "sa")] {
        define(&api, job, three_steps(queue));
        ids.push(id_of(&execute(&api, &executions(job)).expect_json(200)));
        let lease = claim(&api, queue);
        complete(&api, &lease);
    }
    let sorts = json!([{"field": "job_id", "sort_order": "asc"},
                       {"field": "start_time", "sort_order": "desc"}]);
    let result = search(
        &api,
        &json!({"query": {"match_all_query": {}}, "sorts": sorts}),
    )
    .expect_json(200);
    assert_eq!(result["sorts"], sorts, "{result}");
    let order: Vec<String> = result["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(
        order,
        vec![
            ids[1].clone(),
            ids[3].clone(),
            ids[0].clone(),
            ids[2].clone()
        ],
        "{result}"
    );
    let bad = search(
        &api,
        &json!({"query": {"match_all_query": {}},
                "sorts": [{"field": "job_id"}, {"field": "client_id"}]}),
    );
    let fault = assert_fault(&bad, 400, "FieldNotSortableException", "19.5");
    assert_eq!(fault["arguments"], json!({"field": "client_id"}), "{fault}");
    let bad = search(
        &api,
        &json!({"query": {"match_all_query": {}},
                "sorts": [{"field": "job_id"}, {"field": "id", "sort_order": "up"}]}),
    );
    assert_fault(&bad, 400, "EnumConstraintViolationException", "19.5");
}

/// A query nests up to 32 levels of `bool_query` (the terms inside the innermost), whatever
/// its terms; 33 levels are refused with the vendor's constraint fault.
#[test]
fn search_queries_nest_32_levels_deep() {
    let daemon = Daemon::start();
    let api = daemon.client();
    define(&api, "Deep", three_steps("deep"));
    let id = id_of(&execute(&api, &executions("Deep")).expect_json(200));
    let terms = [
        json!({"term_query": {"fields": ["job_id"], "operator": "is", "values": ["Deep"]}}),
        json!({"term_query": {"fields": ["start_time", "end_time"], "operator": "not_in",
                              "values": ["2001-01-01", "2001-01-02"]}}),
        json!({"term_query": {"fields": ["end_time"], "operator": "is_null"}}),
    ];
    let nest = |levels: usize, slot: &str| {
        let mut query = json!({"bool_query": {"must": terms.to_vec()}});
        for level in 1..levels {
            let slot = if slot == "mixed" {
                ["must", "should", "must_not"][level % 3]
            } else {
                slot
            };
            // must_not twice over is a must: an even depth keeps the match.
            let inner = if slot == "must_not" {
                json!({"bool_query": {"must_not": [query]}})
            } else {
                json!({"bool_query": {slot: [query, terms[0].clone()]}})
            };
            query = inner;
        }
        query
    };
    for slot in ["must", "should", "mixed"] {
        let query = nest(32, slot);
        let result = search(&api, &json!({"query": query})).expect_json(200);
        assert!(result["total"].as_u64().is_some(), "{slot}: {result}");
        let refused = search(&api, &json!({"query": nest(33, slot)}));
        let fault = assert_fault(&refused, 400, "ValueConstraintViolationException", "19.5");
        assert!(
            fault["message"].as_str().unwrap().contains("32"),
            "{slot}: {fault}"
        );
    }
    let found = search(&api, &json!({"query": nest(32, "must")})).expect_json(200);
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["hits"][0]["id"], id.as_str());
}
