//! The daemon's background maintenance: expired leases are rescued (the job runs again, the
//! dead worker's token is stale) and finished jobs are purged after their retention.

use std::time::Duration;

use serde_json::json;

use crate::support::{Daemon, assert_error, eventually, id_of};

#[test]
fn an_expired_lease_is_rescued() {
    let daemon = Daemon::with_config("[maintenance]\nrescue_interval_ms = 100\n");
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "k", "queue": "r", "max_attempts": 3})));
    let claimed = api
        .post(
            "/v1/claim",
            &json!({"worker": "dies", "queues": ["r"], "max": 1, "lease_ms": 200}),
        )
        .expect_json(200);
    let token = claimed["jobs"][0]["lease_token"].as_i64().unwrap();

    // The worker says nothing more: the lease runs out and the job is queued for a retry.
    eventually(
        "the expired lease is rescued",
        Duration::from_secs(10),
        || api.get(&format!("/v1/jobs/{id}")).expect_json(200)["state"] == "queued",
    );
    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["lease_owner"], serde_json::Value::Null, "{job}");
    let events = api.get(&format!("/v1/jobs/{id}/events")).expect_json(200);
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "lease_expired"),
        "{events}"
    );
    // The dead worker's late word is refused.
    assert_error(
        &api.post(
            &format!("/v1/jobs/{id}/complete"),
            &json!({"worker": "dies", "lease_token": token, "result": {}}),
        ),
        409,
        "stale_lease",
    );
}

#[test]
fn finished_jobs_are_purged_after_their_retention() {
    let daemon = Daemon::with_config("[maintenance]\npurge_interval_ms = 100\nretention_ms = 1\n");
    let api = daemon.client();
    let done = id_of(&api.create(&json!({"kind": "k"})));
    let live = id_of(&api.create(&json!({"kind": "k"})));
    api.post(&format!("/v1/jobs/{done}/cancel"), &json!({}))
        .expect(200);
    eventually(
        "the finished job is purged",
        Duration::from_secs(10),
        || api.get(&format!("/v1/jobs/{done}")).status == 404,
    );
    assert_error(&api.get(&format!("/v1/jobs/{done}")), 404, "job_not_found");
    assert_eq!(
        api.get(&format!("/v1/jobs/{live}")).expect_json(200)["state"],
        "queued"
    );
}
