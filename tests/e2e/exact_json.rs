//! Numbers come back as they were sent: a payload, a progress, a result and a definition's
//! execution payload keep 64-bit integers at both ends of their range and floats to the last
//! digit; a number that cannot be kept (an integer beyond 64 bits, a fraction finer than a
//! 64-bit float, a value beyond its range) is refused with 400 `invalid_json` and stores
//! nothing. The `jobstore worker` refuses such a number in a command's report the same way.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Client, Daemon, Process, Response, assert_error, binary, id_of};

/// Numbers at the edges of what is kept exactly, as a client writes them. `-3299.5810196630678`
/// is a float that an imprecise decoder reads one unit in the last place off.
const NUMBERS: &str = r#"{"i64_max": 9223372036854775807, "i64_min": -9223372036854775808,
    "u64_max": 18446744073709551615, "tenth": 0.1, "small": 1e-7,
    "drifting": -3299.5810196630678, "list": [0.1, -0.0, 2.5E-3, 1e5, 12345678901234567]}"#;

/// The digits that must come back as written (the floats come back as the same value, maybe
/// written otherwise: `1e5` as `100000.0`).
const VERBATIM: [&str; 5] = [
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551615",
    "-3299.5810196630678",
    "12345678901234567",
];

/// An integer beyond 64 bits, which a 64-bit float would turn into `1.2345678901234568e29`.
const TOO_BIG: &str = "123456789012345678901234567890";

/// How long a worker may take to finish a job.
const JOB_WAIT: Duration = Duration::from_secs(30);

fn numbers() -> Value {
    serde_json::from_str(NUMBERS).expect("NUMBERS is JSON")
}

/// `POST path` with this JSON text as it is.
#[track_caller]
fn post_text(api: &Client, path: &str, text: &str) -> Response {
    api.request("POST", path, &[("Content-Type", "application/json")], text)
}

/// Asserts that `value` is [`NUMBERS`] and that `text` (where it was read from) holds the
/// digits of [`VERBATIM`] as written.
#[track_caller]
fn assert_kept(what: &str, value: &Value, text: &str) {
    assert_eq!(value, &numbers(), "{what}: {text}");
    for digits in VERBATIM {
        assert!(text.contains(digits), "{what}: {digits} not in {text}");
    }
}

/// Asserts a 400 `invalid_json` that names `number` and asks for it as a string.
#[track_caller]
fn assert_refused(response: &Response, number: &str) {
    let message = assert_error(response, 400, "invalid_json");
    assert!(message.contains(number), "{message}");
    assert!(message.contains("cannot be stored exactly"), "{message}");
    assert!(message.contains("as a string"), "{message}");
}

/// The job as the daemon has it now, with its text.
#[track_caller]
fn job(api: &Client, id: i64) -> (Value, String) {
    let response = api.get(&format!("/v1/jobs/{id}"));
    (response.expect_json(200), response.text())
}

/// Claims the one job of queue `q` as `w1`; answers its id and lease token.
#[track_caller]
fn claim_one(api: &Client) -> (i64, i64) {
    let jobs = api.claim("w1", "q", 1);
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let token = jobs[0]["lease_token"].as_i64().expect("lease_token");
    (id_of(&jobs[0]), token)
}

#[test]
fn a_payload_comes_back_as_sent() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let body = format!(r#"{{"kind": "x", "queue": "q", "payload": {NUMBERS}}}"#);
    let created = post_text(&api, "/v1/jobs", &body);
    let created_job = created.expect_json(201);
    assert_kept("created", &created_job["payload"], &created.text());
    let (read, text) = job(&api, id_of(&created_job));
    assert_kept("read", &read["payload"], &text);
    // A claimed job carries it too.
    let claimed = api
        .post(
            "/v1/claim",
            &json!({"worker": "w1", "queues": ["q"], "max": 1, "lease_ms": 30_000}),
        )
        .expect(200)
        .clone();
    assert_kept(
        "claimed",
        &claimed.json()["jobs"][0]["payload"],
        &claimed.text(),
    );
}

#[test]
fn a_progress_and_a_result_come_back_as_sent() {
    let daemon = Daemon::start();
    let api = daemon.client();
    api.create(&json!({"kind": "x", "queue": "q"}));
    let (id, token) = claim_one(&api);

    let beat = format!(r#"{{"worker": "w1", "lease_token": {token}, "progress": {NUMBERS}}}"#);
    post_text(&api, &format!("/v1/jobs/{id}/heartbeat"), &beat).expect(200);
    // A second heartbeat is merged into the first in the database.
    let again =
        format!(r#"{{"worker": "w1", "lease_token": {token}, "progress": {{"tenth": 0.1}}}}"#);
    post_text(&api, &format!("/v1/jobs/{id}/heartbeat"), &again).expect(200);
    let (running, text) = job(&api, id);
    assert_kept("progress", &running["progress"], &text);

    let done = format!(r#"{{"worker": "w1", "lease_token": {token}, "result": {NUMBERS}}}"#);
    let completed = post_text(&api, &format!("/v1/jobs/{id}/complete"), &done);
    let completed_job = completed.expect_json(200);
    assert_kept("completed", &completed_job["result"], &completed.text());
    let (finished, text) = job(&api, id);
    assert_eq!(finished["state"], "succeeded", "{finished}");
    assert_kept("result", &finished["result"], &text);
    assert_kept("final progress", &finished["progress"], &text);
}

#[test]
fn a_definition_execution_payload_comes_back_as_sent() {
    let daemon = Daemon::start();
    let api = daemon.client();
    api.put(
        "/v1/definitions/nightly",
        &json!({"queue": "q", "steps": [{"step_id": "s1", "step_type_id": "t"}]}),
    )
    .expect(200);
    let body = format!(r#"{{"payload": {{"parameters": {NUMBERS}}}}}"#);
    let executed = post_text(&api, "/v1/definitions/nightly/executions", &body);
    let execution = executed.expect_json(201);
    assert_kept(
        "execution",
        &execution["payload"]["parameters"],
        &executed.text(),
    );
    let (read, text) = job(&api, id_of(&execution));
    assert_kept("read", &read["payload"]["parameters"], &text);
}

#[test]
fn a_payload_integer_beyond_64_bits_is_refused_and_stores_nothing() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let body = format!(r#"{{"kind": "x", "payload": {{"n": {TOO_BIG}}}}}"#);
    assert_refused(&post_text(&api, "/v1/jobs", &body), TOO_BIG);
    for number in ["1.00000000000000000001", "1e400", "-18446744073709551616"] {
        let body = format!(r#"{{"kind": "x", "payload": [{number}]}}"#);
        assert_refused(&post_text(&api, "/v1/jobs", &body), number);
    }
    assert!(api.all_jobs().is_empty(), "{:?}", api.all_jobs());
    // The same number as a string is kept as it is.
    let body = format!(r#"{{"kind": "x", "payload": {{"n": "{TOO_BIG}"}}}}"#);
    let created = post_text(&api, "/v1/jobs", &body).expect_json(201);
    assert_eq!(created["payload"], json!({"n": TOO_BIG}));
}

/// Every vendor API reads its bodies as the native one does: an integer beyond 64 bits in what
/// a client sends is refused with that API's 400, naming the number, and no job is made.
#[test]
fn every_vendor_api_refuses_an_integer_beyond_64_bits_and_stores_nothing() {
    let daemon = Daemon::start();
    let api = daemon.client();
    api.put(
        "/v1/definitions/Nightly",
        &json!({"queue": "q", "steps": [{"step_id": "S1", "step_type_id": "T"}]}),
    )
    .expect(200);
    let creates = [
        (
            "c360",
            "/datamanager/datatools/v1.0/jobs",
            format!(
                r#"{{"name": "n", "type": "FStoGP", "source": "s", "target": "t", "object": "Account", "rows": {TOO_BIG}}}"#
            ),
        ),
        (
            "ocapi",
            "/s/-/dw/data/v19_5/jobs/Nightly/executions",
            format!(r#"{{"parameters": [{{"name": "limit", "value": {TOO_BIG}}}]}}"#),
        ),
        (
            "aep",
            "/data/core/ups/export/jobs",
            format!(r#"{{"fields": "identities", "schema": {{"name": "x"}}, "rows": {TOO_BIG}}}"#),
        ),
        (
            "datacloud",
            "/api/v1/ingest/jobs",
            format!(
                r#"{{"object": "Account", "sourceName": "ecomm", "operation": "upsert", "rows": {TOO_BIG}}}"#
            ),
        ),
        (
            "bulk2",
            "/services/data/v60.0/jobs/ingest",
            format!(r#"{{"object": "Account", "operation": "insert", "rows": {TOO_BIG}}}"#),
        ),
    ];
    for (dialect, path, body) in creates {
        let refused = post_text(&api, path, &body);
        assert_eq!(refused.status, 400, "{dialect}: {}", refused.text());
        let text = refused.text();
        assert!(
            text.contains(TOO_BIG) && text.contains("cannot be stored exactly"),
            "{dialect}: {text}"
        );
    }
    assert!(api.all_jobs().is_empty(), "{:?}", api.all_jobs());
}

#[test]
fn a_progress_or_result_that_cannot_be_kept_is_refused_and_changes_nothing() {
    let daemon = Daemon::start();
    let api = daemon.client();
    api.create(&json!({"kind": "x", "queue": "q"}));
    let (id, token) = claim_one(&api);

    let beat = format!(
        r#"{{"worker": "w1", "lease_token": {token}, "progress": {{"n": 1.00000000000000000001}}}}"#
    );
    assert_refused(
        &post_text(&api, &format!("/v1/jobs/{id}/heartbeat"), &beat),
        "1.00000000000000000001",
    );
    let done = format!(r#"{{"worker": "w1", "lease_token": {token}, "result": [{TOO_BIG}]}}"#);
    assert_refused(
        &post_text(&api, &format!("/v1/jobs/{id}/complete"), &done),
        TOO_BIG,
    );
    let (running, _) = job(&api, id);
    assert_eq!(running["state"], "running", "{running}");
    assert_eq!(running["progress"], json!({}), "{running}");
    assert_eq!(running["result"], Value::Null, "{running}");
    // The lease is still good.
    api.post(
        &format!("/v1/jobs/{id}/complete"),
        &json!({"worker": "w1", "lease_token": token, "result": {"n": TOO_BIG}}),
    )
    .expect(200);
}

#[test]
fn a_definition_execution_with_a_number_that_cannot_be_kept_is_refused() {
    let daemon = Daemon::start();
    let api = daemon.client();
    api.put(
        "/v1/definitions/nightly",
        &json!({"queue": "q", "steps": [{"step_id": "s1", "step_type_id": "t"}]}),
    )
    .expect(200);
    let body = format!(r#"{{"payload": {{"parameters": {{"n": {TOO_BIG}}}}}}}"#);
    assert_refused(
        &post_text(&api, "/v1/definitions/nightly/executions", &body),
        TOO_BIG,
    );
    assert!(api.all_jobs().is_empty(), "{:?}", api.all_jobs());
}

/// Writes a shell script into `dir`; answers the command that runs it.
fn script(dir: &Path, body: &str) -> String {
    let path = dir.join("numbers.sh");
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    format!("sh {}", path.display())
}

/// Waits (bounded) until the job is `succeeded`; answers it and its text.
#[track_caller]
fn wait_succeeded(api: &Client, id: i64, worker: &Process) -> (Value, String) {
    let deadline = Instant::now() + JOB_WAIT;
    loop {
        let (now, text) = job(api, id);
        if now["state"] == "succeeded" {
            return (now, text);
        }
        let over = ["failed", "cancelled"].iter().any(|s| now["state"] == *s);
        assert!(
            !over && Instant::now() < deadline,
            "job {id} did not succeed within {JOB_WAIT:?}: {now}\nworker stderr:\n{}",
            worker.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_worker_keeps_exact_numbers_and_refuses_a_report_that_cannot_be_kept() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    // Job kind `exact` reports the numbers back; kind `too-big` reports a result beyond 64 bits.
    let one_line = NUMBERS.replace('\n', " ");
    let command = script(
        &dir,
        &format!(
            r#"cat > "payload-$JOBSTORE_JOB_ID.json"
echo '##jobstore progress {one_line}'
if [ "$JOBSTORE_JOB_KIND" = exact ]; then
  echo '##jobstore result {one_line}'
else
  echo '##jobstore result {{"n": {TOO_BIG}}}'
fi
"#
        ),
    );
    let mut worker = binary();
    worker
        .arg("worker")
        .arg("--url")
        .arg(format!("http://{}", daemon.addr()))
        .args(["--queue", "q", "--name", "w1", "--lease-ms", "1200"])
        .args(["--grace-ms", "300", "--exec", &command]);
    let worker = Process::spawn(worker, &dir, "the worker", None);

    let body = format!(r#"{{"kind": "exact", "queue": "q", "payload": {NUMBERS}}}"#);
    let exact = id_of(&post_text(&api, "/v1/jobs", &body).expect_json(201));
    let (done, text) = wait_succeeded(&api, exact, &worker);
    assert_kept("result", &done["result"], &text);
    assert_kept("progress", &done["progress"], &text);
    let stdin = std::fs::read_to_string(dir.join(format!("payload-{exact}.json"))).unwrap();
    let fed: Value = serde_json::from_str(&stdin).expect("the payload on stdin is JSON");
    assert_kept("stdin", &fed, &stdin);

    let too_big = id_of(&api.create(&json!({"kind": "too-big", "queue": "q"})));
    let (done, _) = wait_succeeded(&api, too_big, &worker);
    // The result is refused, not stored altered; the log says why.
    assert_eq!(done["result"], Value::Null, "{done}");
    let log = api.get(&format!("/v1/jobs/{too_big}/logs"));
    let log = log.expect(200).text();
    assert!(
        log.lines().any(|line| line.contains("WARN")
            && line.contains(TOO_BIG)
            && line.contains("cannot be stored exactly")
            && line.contains("as a string")),
        "{log}"
    );
}
