//! A job's life over HTTP: create, read, claim, heartbeat, complete, fail, cancel, restart,
//! delete, its event history, and the fencing of stale leases.

use serde_json::{Value, json};

use crate::support::{Daemon, assert_error, id_of};

/// The event names of a job's history, in order.
fn event_names(events: &Value) -> Vec<String> {
    events["events"]
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| e["event"].as_str().expect("event name").to_owned())
        .collect()
}

#[test]
fn create_claim_heartbeat_complete() {
    let daemon = Daemon::start();
    let api = daemon.client();

    let created = api.create(&json!({
        "kind": "export", "queue": "reports", "name": "monthly",
        "payload": {"month": "2024-05"}, "source": "crm", "target": "s3"
    }));
    let id = id_of(&created);
    assert_eq!(created["state"], "queued");
    assert_eq!(created["kind"], "export");
    assert_eq!(created["queue"], "reports");
    assert_eq!(created["name"], "monthly");
    assert_eq!(created["payload"], json!({"month": "2024-05"}));
    assert_eq!(created["source"], "crm");
    assert_eq!(created["target"], "s3");
    assert_eq!(created["attempt"], 0);
    assert_eq!(created["tenant"], "default");

    let fetched = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(id_of(&fetched), id);
    assert_eq!(fetched["state"], "queued");
    assert_eq!(fetched["steps"], json!([]));
    assert_eq!(fetched["data_batches"], 0);

    // Another queue's worker gets nothing.
    assert!(api.claim("w1", "elsewhere", 1).is_empty());

    let claimed = api
        .post(
            "/v1/claim",
            &json!({"worker": "w1", "queues": ["reports"], "max": 5, "lease_ms": 30000}),
        )
        .expect_json(200);
    let jobs = claimed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{claimed}");
    let job = &jobs[0];
    assert_eq!(id_of(job), id);
    assert_eq!(job["state"], "running");
    assert_eq!(job["lease_owner"], "w1");
    assert_eq!(job["attempt"], 1);
    let token = job["lease_token"].as_i64().expect("lease_token");
    assert!(job["lease_expires_at"].is_i64(), "{job}");

    // Nothing left to claim.
    assert!(api.claim("w2", "reports", 5).is_empty());

    let beat = api
        .post(
            &format!("/v1/jobs/{id}/heartbeat"),
            &json!({"worker": "w1", "lease_token": token,
                    "progress": {"rows": 10}, "phase": "extract"}),
        )
        .expect_json(200);
    assert_eq!(beat["cancel_requested"], false);
    assert!(beat["lease_expires_at"].is_i64(), "{beat}");
    api.post(
        &format!("/v1/jobs/{id}/heartbeat"),
        &json!({"worker": "w1", "lease_token": token, "progress": {"errors": 1}}),
    )
    .expect(200);
    let running = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(running["state"], "running");
    assert_eq!(running["progress"], json!({"rows": 10, "errors": 1}));
    assert_eq!(running["phase"], "extract");

    let done = api
        .post(
            &format!("/v1/jobs/{id}/complete"),
            &json!({"worker": "w1", "lease_token": token, "result": {"rows": 10}}),
        )
        .expect_json(200);
    assert_eq!(done["state"], "succeeded");
    assert_eq!(done["result"], json!({"rows": 10}));

    let finished = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(finished["state"], "succeeded");
    assert_eq!(finished["result"], json!({"rows": 10}));
    assert!(finished["finished_at"].is_i64(), "{finished}");

    // The lease ended with the job: the same token is refused and changes nothing.
    let again = api.post(
        &format!("/v1/jobs/{id}/complete"),
        &json!({"worker": "w1", "lease_token": token, "result": {"rows": 99}}),
    );
    assert_error(&again, 409, "stale_lease");

    let events = api.get(&format!("/v1/jobs/{id}/events")).expect_json(200);
    let names = event_names(&events);
    let transitions: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| ["create", "claim", "complete"].contains(n))
        .collect();
    assert_eq!(transitions, ["create", "claim", "complete"], "{events}");
    let list = events["events"].as_array().unwrap();
    let find = |name: &str| list.iter().find(|e| e["event"] == name).unwrap();
    assert_eq!(find("create")["from"], Value::Null);
    assert_eq!(find("create")["to"], "queued");
    assert_eq!(find("claim")["from"], "queued");
    assert_eq!(find("claim")["to"], "running");
    assert_eq!(find("complete")["from"], "running");
    assert_eq!(find("complete")["to"], "succeeded");
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}")).expect_json(200)["result"],
        json!({"rows": 10})
    );
}

#[test]
fn retryable_failure_requeues_and_stale_leases_are_fenced() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "sync", "queue": "q", "max_attempts": 3})));

    let first = api.claim("w1", "q", 1);
    let t1 = first[0]["lease_token"].as_i64().unwrap();

    let failed = api
        .post(
            &format!("/v1/jobs/{id}/fail"),
            &json!({"worker": "w1", "lease_token": t1, "error": "timeout", "retryable": true}),
        )
        .expect_json(200);
    assert_eq!(failed["state"], "queued");
    assert_eq!(failed["error"], "timeout");
    assert_eq!(failed["attempt"], 1);
    assert!(
        failed["run_at"].as_i64().unwrap() > failed["updated_at"].as_i64().unwrap(),
        "a retry waits for its backoff: {failed}"
    );

    // The retry becomes claimable after its backoff; a long poll picks it up.
    let second = api
        .post(
            "/v1/claim",
            &json!({"worker": "w2", "queues": ["q"], "max": 1, "lease_ms": 30000, "wait_ms": 15000}),
        )
        .expect_json(200);
    let second = second["jobs"].as_array().unwrap();
    assert_eq!(second.len(), 1, "the retry was not claimed again");
    assert_eq!(id_of(&second[0]), id);
    assert_eq!(second[0]["attempt"], 2);
    let t2 = second[0]["lease_token"].as_i64().unwrap();
    assert_ne!(t1, t2, "every claim gets a new fencing token");

    // The first lease is stale: every worker call with it is 409 and changes nothing.
    for (path, body) in [
        (
            "heartbeat",
            json!({"worker": "w1", "lease_token": t1, "progress": {"stale": true}}),
        ),
        (
            "complete",
            json!({"worker": "w1", "lease_token": t1, "result": {"stale": true}}),
        ),
        (
            "fail",
            json!({"worker": "w1", "lease_token": t1, "error": "stale", "retryable": false}),
        ),
        // The right worker with the old token, the old worker with the new token.
        (
            "complete",
            json!({"worker": "w2", "lease_token": t1, "result": {}}),
        ),
        (
            "complete",
            json!({"worker": "w1", "lease_token": t2, "result": {}}),
        ),
    ] {
        let answer = api.post(&format!("/v1/jobs/{id}/{path}"), &body);
        assert_error(&answer, 409, "stale_lease");
    }
    let unchanged = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(unchanged["state"], "running");
    assert_eq!(unchanged["lease_owner"], "w2");
    assert_eq!(unchanged["lease_token"], t2);
    assert_eq!(unchanged["progress"].get("stale"), None, "{unchanged}");

    let done = api
        .post(
            &format!("/v1/jobs/{id}/complete"),
            &json!({"worker": "w2", "lease_token": t2, "result": {"ok": true}}),
        )
        .expect_json(200);
    assert_eq!(done["state"], "succeeded");

    let names = event_names(&api.get(&format!("/v1/jobs/{id}/events")).expect_json(200));
    let transitions: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| *n != "heartbeat")
        .collect();
    assert_eq!(
        transitions,
        ["create", "claim", "fail", "claim", "complete"]
    );
}

#[test]
fn cancel_restart_and_delete() {
    let daemon = Daemon::start();
    let api = daemon.client();

    // Cancel a queued job: cancelled at once; restart it: queued again.
    let queued = id_of(&api.create(&json!({"kind": "import"})));
    let cancelled = api
        .post(&format!("/v1/jobs/{queued}/cancel"), &json!({}))
        .expect_json(200);
    assert_eq!(cancelled["state"], "cancelled");
    let restarted = api
        .post(&format!("/v1/jobs/{queued}/restart"), &json!({}))
        .expect_json(200);
    assert_eq!(restarted["state"], "queued");
    assert_eq!(restarted["attempt"], 0);

    // Restarting a job that is not failed or cancelled is refused.
    let again = api.post(&format!("/v1/jobs/{queued}/restart"), &json!({}));
    assert_error(&again, 409, "invalid_transition");

    // Delete refuses a live job and leaves it alone.
    let refused = api.delete(&format!("/v1/jobs/{queued}"));
    assert_error(&refused, 409, "invalid_transition");
    assert_eq!(
        api.get(&format!("/v1/jobs/{queued}")).expect_json(200)["state"],
        "queued"
    );

    // Cancel a running job: cooperative. The worker sees it on its heartbeat and acknowledges
    // with a failure, which ends the job cancelled.
    let running = id_of(&api.create(&json!({"kind": "import", "queue": "work"})));
    let lease = api.claim("w1", "work", 1);
    let token = lease[0]["lease_token"].as_i64().unwrap();
    let refused = api.delete(&format!("/v1/jobs/{running}"));
    assert_error(&refused, 409, "invalid_transition");
    let asked = api
        .post(&format!("/v1/jobs/{running}/cancel"), &json!({}))
        .expect_json(200);
    assert_eq!(asked["state"], "running");
    assert!(asked["cancel_requested_at"].is_i64(), "{asked}");
    let beat = api
        .post(
            &format!("/v1/jobs/{running}/heartbeat"),
            &json!({"worker": "w1", "lease_token": token}),
        )
        .expect_json(200);
    assert_eq!(beat["cancel_requested"], true);
    let acknowledged = api
        .post(
            &format!("/v1/jobs/{running}/fail"),
            &json!({"worker": "w1", "lease_token": token, "error": "cancelled by request"}),
        )
        .expect_json(200);
    assert_eq!(acknowledged["state"], "cancelled");

    // A fatal failure ends the job failed; a failed job restarts.
    let fatal = id_of(&api.create(&json!({"kind": "import", "queue": "fatal"})));
    let lease = api.claim("w1", "fatal", 1);
    let token = lease[0]["lease_token"].as_i64().unwrap();
    let failed = api
        .post(
            &format!("/v1/jobs/{fatal}/fail"),
            &json!({"worker": "w1", "lease_token": token, "error": "bad input", "retryable": false}),
        )
        .expect_json(200);
    assert_eq!(failed["state"], "failed");
    assert_eq!(failed["error"], "bad input");
    let restarted = api
        .post(&format!("/v1/jobs/{fatal}/restart"), &json!({}))
        .expect_json(200);
    assert_eq!(restarted["state"], "queued");

    // A job created not restartable stays failed.
    let once =
        id_of(&api.create(&json!({"kind": "import", "queue": "once", "restartable": false})));
    let lease = api.claim("w1", "once", 1);
    let token = lease[0]["lease_token"].as_i64().unwrap();
    api.post(
        &format!("/v1/jobs/{once}/fail"),
        &json!({"worker": "w1", "lease_token": token, "error": "x", "retryable": false}),
    )
    .expect(200);
    let refused = api.post(&format!("/v1/jobs/{once}/restart"), &json!({}));
    assert_error(&refused, 409, "not_restartable");
    assert_eq!(
        api.get(&format!("/v1/jobs/{once}")).expect_json(200)["state"],
        "failed"
    );

    // Delete a terminal job: 204 without a body, then it is gone.
    let gone = api.delete(&format!("/v1/jobs/{once}"));
    gone.expect(204);
    assert!(gone.body.is_empty(), "204 with a body: {}", gone.text());
    assert_error(&api.get(&format!("/v1/jobs/{once}")), 404, "job_not_found");
    assert_error(
        &api.delete(&format!("/v1/jobs/{once}")),
        404,
        "job_not_found",
    );
    assert_error(
        &api.get(&format!("/v1/jobs/{once}/events")),
        404,
        "job_not_found",
    );

    // Unknown ids, numeric or not, are the same 404.
    for path in ["/v1/jobs/999999", "/v1/jobs/not-a-number"] {
        assert_error(&api.get(path), 404, "job_not_found");
    }
    assert_error(
        &api.post("/v1/jobs/999999/cancel", &json!({})),
        404,
        "job_not_found",
    );
}

#[test]
fn a_unique_key_admits_one_live_job() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let first =
        id_of(&api.create(&json!({"kind": "sync", "queue": "u", "unique_key": "crm-sync"})));
    let refused = api.post(
        "/v1/jobs",
        &json!({"kind": "sync", "queue": "u", "unique_key": "crm-sync"}),
    );
    let message = assert_error(&refused, 409, "job_already_running");
    assert!(message.contains("crm-sync"), "{message}");
    assert_eq!(api.all_jobs().len(), 1);

    // Once the holder finished, the key is free again.
    let token = api.claim("w", "u", 1)[0]["lease_token"].as_i64().unwrap();
    api.post(
        &format!("/v1/jobs/{first}/complete"),
        &json!({"worker": "w", "lease_token": token, "result": null}),
    )
    .expect(200);
    let second =
        id_of(&api.create(&json!({"kind": "sync", "queue": "u", "unique_key": "crm-sync"})));
    assert_ne!(first, second);
}

#[test]
fn claims_follow_priority_and_run_at() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let later = api.create(&json!({"kind": "k", "queue": "p", "priority": 5}));
    let first = api.create(&json!({"kind": "k", "queue": "p", "priority": 1}));
    let middle = api.create(&json!({"kind": "k", "queue": "p", "priority": 3}));
    // Scheduled far in the future: not claimable now.
    let scheduled =
        api.create(&json!({"kind": "k", "queue": "p", "run_at": 4_102_444_800_000_i64}));
    assert_eq!(scheduled["state"], "queued");
    let order: Vec<i64> = (0..3).map(|_| id_of(&api.claim("w", "p", 1)[0])).collect();
    assert_eq!(order, [id_of(&first), id_of(&middle), id_of(&later)]);
    assert!(
        api.claim("w", "p", 10).is_empty(),
        "a scheduled job was claimed early"
    );

    // `max` bounds one claim.
    for _ in 0..5 {
        api.create(&json!({"kind": "k", "queue": "many"}));
    }
    assert_eq!(api.claim("w", "many", 3).len(), 3);
    assert_eq!(api.claim("w", "many", 3).len(), 2);
}
