//! `Idempotency-Key` on `POST /v1/jobs`: a retried create answers the first job; the same key
//! with a different request is refused.

use serde_json::json;

use crate::support::{Client, Daemon, Response, assert_error, id_of};

fn create_with_key(api: &Client, key: &str, body: &serde_json::Value) -> Response {
    api.request(
        "POST",
        "/v1/jobs",
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", key),
        ],
        body,
    )
}

#[test]
fn a_retried_create_answers_the_same_job() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let body = json!({"kind": "export", "payload": {"n": 1}});

    let first = create_with_key(&api, "order-42", &body).expect_json(201);
    let second = create_with_key(&api, "order-42", &body).expect_json(201);
    assert_eq!(id_of(&first), id_of(&second));
    assert_eq!(second["payload"], json!({"n": 1}));
    assert_eq!(api.all_jobs().len(), 1);

    // The same key with another request: 422, nothing created.
    let other = create_with_key(
        &api,
        "order-42",
        &json!({"kind": "export", "payload": {"n": 2}}),
    );
    let message = assert_error(&other, 422, "idempotency_key_reused");
    assert!(message.contains("order-42"), "{message}");
    assert_eq!(api.all_jobs().len(), 1);

    // Another key is another job; no key is always a new job.
    let third = create_with_key(&api, "order-43", &body).expect_json(201);
    assert_ne!(id_of(&third), id_of(&first));
    let fourth = api.create(&body);
    let fifth = api.create(&body);
    assert_ne!(id_of(&fourth), id_of(&fifth));
    assert_eq!(api.all_jobs().len(), 4);

    // The key still answers the first job after it changed state.
    api.post(&format!("/v1/jobs/{}/cancel", id_of(&first)), &json!({}))
        .expect(200);
    let replay = create_with_key(&api, "order-42", &body).expect_json(201);
    assert_eq!(id_of(&replay), id_of(&first));
    assert_eq!(api.all_jobs().len(), 4);

    // An empty key is refused.
    assert_error(&create_with_key(&api, "", &body), 400, "invalid_request");
    assert_eq!(api.all_jobs().len(), 4);
}
