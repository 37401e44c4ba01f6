//! Long-poll claims and shutdown: an enqueue wakes a waiting claim; SIGTERM answers a waiting
//! claim empty, lets an in-flight request finish, and the daemon exits 0.

use std::io::Write;
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::support::{Daemon, Options, connect, id_of, read_response, temp_dir};

/// An enqueue wakes a claim that is already waiting. The daemon's re-poll is set longer
/// than the claim's wait, and the job is created only once `/metrics` shows the claim
/// waiting; the claim gets the job, and the daemon counts the wake-up (without one, the
/// claim would find the job only in its last look at the end of its wait, and the count
/// would stay 0).
#[test]
fn a_waiting_claim_gets_a_job_enqueued_meanwhile() {
    let daemon = Daemon::with_config_in(temp_dir(), "[limits]\nclaim_poll_ms = 3600000\n", None);
    let worker = daemon.client();
    let waiting = thread::spawn(move || {
        worker
            .post(
                "/v1/claim",
                &json!({"worker": "w1", "queues": ["wake"], "max": 1,
                        "lease_ms": 30000, "wait_ms": 20000}),
            )
            .expect_json(200)
    });
    let api = daemon.client();
    let mut polls = 0;
    while !api
        .get("/metrics")
        .text()
        .contains("\njobstore_claims_waiting 1\n")
    {
        polls += 1;
        assert!(polls < 2000, "the claim never started waiting");
        thread::sleep(Duration::from_millis(10));
    }
    let id = id_of(&api.create(&json!({"kind": "ping", "queue": "wake"})));
    let answer = waiting.join().expect("claim thread");
    let jobs = answer["jobs"].as_array().expect("jobs array");
    assert_eq!(
        jobs.len(),
        1,
        "the waiting claim was not woken by the enqueue: {answer}"
    );
    assert_eq!(id_of(&jobs[0]), id);
    assert_eq!(jobs[0]["state"], "running");
    assert_eq!(jobs[0]["lease_owner"], "w1");
    assert!(jobs[0]["lease_token"].is_i64());
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}")).expect_json(200)["state"],
        "running"
    );
    let metrics = api.get("/metrics").text();
    assert!(
        metrics.contains("\njobstore_claims_waiting 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\njobstore_claim_wakeups_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn sigterm_answers_a_waiting_claim_empty_and_exits_zero() {
    let mut daemon = Daemon::start();
    let worker = daemon.client();
    let waiting = thread::spawn(move || {
        worker.request(
            "POST",
            "/v1/claim",
            &[("Content-Type", "application/json")],
            json!({"worker": "w1", "queues": ["empty"], "max": 1, "wait_ms": 30000}),
        )
    });
    thread::sleep(Duration::from_millis(500));
    daemon.signal("TERM");
    let answer = waiting.join().expect("claim thread");
    assert_eq!(answer.expect_json(200), json!({"jobs": []}));
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
    assert!(!daemon.stderr().contains("panicked"), "{}", daemon.stderr());
}

#[test]
fn sigterm_lets_an_in_flight_upload_finish() {
    let mut daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));

    // Half a body, then SIGTERM, then the rest: the request completes.
    let mut stream = connect(daemon.addr());
    let head = format!(
        "PUT /v1/jobs/{id}/data HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Length: 8\r\n\r\nfirst",
        daemon.addr()
    );
    stream.write_all(head.as_bytes()).unwrap();
    thread::sleep(Duration::from_millis(500));
    daemon.signal("TERM");
    thread::sleep(Duration::from_millis(300));
    stream.write_all(b"end").unwrap();
    let answer = read_response(&mut stream).expect("an answer to the in-flight upload");
    let batch = answer.expect_json(201);
    assert_eq!(batch["bytes"], 8);

    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());

    // The batch is in the file: a new daemon on it serves it.
    let daemon = daemon.restart(Options::default());
    let api = daemon.client();
    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(job["state"], "open");
    assert_eq!(job["data_batches"], 1);
    assert_eq!(api.get(&format!("/v1/jobs/{id}/data")).body, b"firstend");
}

#[test]
fn concurrent_waiting_claims_never_share_a_job() {
    let daemon = Daemon::start();
    let waiters: Vec<_> = (0..8)
        .map(|i| {
            let worker = daemon.client();
            thread::spawn(move || {
                let answer = worker
                    .post(
                        "/v1/claim",
                        &json!({"worker": format!("w{i}"), "queues": ["race"], "max": 1,
                                "lease_ms": 30000, "wait_ms": 3000}),
                    )
                    .expect_json(200);
                answer["jobs"].as_array().expect("jobs array").clone()
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let api = daemon.client();
    let mut created: Vec<i64> = (0..3)
        .map(|_| id_of(&api.create(&json!({"kind": "k", "queue": "race"}))))
        .collect();
    let mut claimed: Vec<i64> = Vec::new();
    for waiter in waiters {
        let jobs = waiter.join().expect("claim thread");
        assert!(jobs.len() <= 1);
        claimed.extend(jobs.iter().map(id_of));
    }
    claimed.sort_unstable();
    created.sort_unstable();
    assert_eq!(claimed, created, "each job claimed exactly once");
    for id in created {
        assert_eq!(
            api.get(&format!("/v1/jobs/{id}")).expect_json(200)["attempt"],
            1
        );
    }
}
