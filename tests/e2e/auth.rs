//! Bearer tokens, scopes and tenants: 401 without a valid token, 403 without the scope, another
//! tenant's job and definition are 404 like an unknown id, an admin crosses tenants, SIGHUP
//! reloads the tokens file, and the daemon refuses to listen beyond loopback without tokens.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{
    Client, Daemon, Options, add_token, assert_error, database_in, eventually, id_of, jobstore,
    temp_dir,
};

fn listed_ids(api: &Client) -> BTreeSet<i64> {
    api.all_jobs().into_iter().map(|(id, _)| id).collect()
}

#[test]
fn tokens_scopes_and_tenants() {
    let (daemon, [alice, reader, bob, root, worker]) = Daemon::with_tokens([
        ("alice", "acme", "read,write,work"),
        ("reader", "acme", "read"),
        ("bob", "globex", "read,write,work"),
        ("root", "ops", "admin"),
        ("runner", "acme", "work"),
    ]);
    let anonymous = daemon.client();

    // Liveness needs no token.
    let health = anonymous.get("/healthz");
    health.expect(200);

    // No token, a wrong token, a malformed header: 401, and nothing is created.
    assert_error(&anonymous.get("/v1/jobs"), 401, "unauthorized");
    assert_error(
        &anonymous.post("/v1/jobs", &json!({"kind": "x"})),
        401,
        "unauthorized",
    );
    let wrong = daemon.client_with("0123456789abcdef0123456789abcdef");
    assert_error(&wrong.get("/v1/jobs"), 401, "unauthorized");
    // RFC 9110 §11.6.1: every 401, in every API, names the scheme it wants.
    for path in [
        "/v1/jobs",
        "/datamanager/datatools/v1.0/jobs",
        "/s/-/dw/data/v19_5/job_execution_search",
        "/data/core/ups/export/jobs",
        "/api/v1/ingest/jobs",
    ] {
        let answer = wrong.get(path);
        assert_eq!(answer.status, 401, "{path}: {}", answer.text());
        let challenge = answer.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{path}: `{challenge}`");
    }
    assert_error(
        &wrong.post("/v1/jobs", &json!({"kind": "x"})),
        401,
        "unauthorized",
    );
    assert_error(
        &anonymous.request(
            "GET",
            "/v1/jobs",
            &[("Authorization", "Basic YWxpY2U6eA==")],
            json!(null),
        ),
        401,
        "unauthorized",
    );
    assert_error(&anonymous.get("/v1/stats"), 401, "unauthorized");
    assert!(listed_ids(&root).is_empty());
    // The scheme's name in any case (RFC 9110, 11.1).
    let token = alice.token().expect("alice's token");
    for scheme in ["BEARER", "bearer", "BeArEr"] {
        let header = format!("{scheme} {token}");
        anonymous
            .request(
                "GET",
                "/v1/jobs",
                &[("Authorization", &header)],
                json!(null),
            )
            .expect(200);
    }

    // Alice creates in her tenant.
    let job = alice.create(&json!({"kind": "export", "queue": "shared"}));
    let a = id_of(&job);
    assert_eq!(job["tenant"], "acme");
    assert_eq!(job["created_by"], "alice");

    // A read-only token reads but does not write or work: 403.
    assert_eq!(
        reader.get(&format!("/v1/jobs/{a}")).expect_json(200)["id"],
        a
    );
    assert_error(
        &reader.post("/v1/jobs", &json!({"kind": "x"})),
        403,
        "forbidden",
    );
    assert_error(
        &reader.post(&format!("/v1/jobs/{a}/cancel"), &json!({})),
        403,
        "forbidden",
    );
    assert_error(&reader.delete(&format!("/v1/jobs/{a}")), 403, "forbidden");
    assert_error(
        &reader.post(
            "/v1/claim",
            &json!({"worker": "r", "queues": ["shared"], "max": 1}),
        ),
        403,
        "forbidden",
    );
    assert_error(
        &reader.put("/v1/definitions/d", &json!({"steps": []})),
        403,
        "forbidden",
    );
    assert_eq!(listed_ids(&reader), BTreeSet::from([a]));

    // Bob (another tenant) cannot see or touch it: the same 404 as an unknown id.
    let unknown = bob.get("/v1/jobs/999999");
    assert_error(&unknown, 404, "job_not_found");
    for (method, path, body) in [
        ("GET", format!("/v1/jobs/{a}"), Value::Null),
        ("DELETE", format!("/v1/jobs/{a}"), Value::Null),
        ("POST", format!("/v1/jobs/{a}/cancel"), json!({})),
        ("POST", format!("/v1/jobs/{a}/restart"), json!({})),
        ("GET", format!("/v1/jobs/{a}/events"), Value::Null),
        ("GET", format!("/v1/jobs/{a}/data"), Value::Null),
        ("GET", format!("/v1/jobs/{a}/logs"), Value::Null),
        (
            "POST",
            format!("/v1/jobs/{a}/logs"),
            json!({"lines": [{"message": "x"}]}),
        ),
    ] {
        let body = if body.is_null() {
            crate::support::Body::None
        } else {
            body.into()
        };
        let answer = bob.request(method, &path, &[("Content-Type", "application/json")], body);
        assert_error(&answer, 404, "job_not_found");
    }
    // ... nor claim it from the queue it sits in.
    assert!(bob.claim("bob-worker", "shared", 10).is_empty());

    // Worker calls and uploads on another tenant's job are the same 404 too (not a
    // `stale_lease` or `invalid_transition` that would tell the job exists).
    let leased = alice.create(&json!({"kind": "leased", "queue": "alice-only", "upload": false}));
    let leased_id = id_of(&leased);
    let lease = alice.claim("alice-worker", "alice-only", 1);
    let token = lease[0]["lease_token"].as_i64().unwrap();
    let upload = id_of(&alice.create(&json!({"kind": "upload", "upload": true})));
    for (method, path, body) in [
        (
            "POST",
            format!("/v1/jobs/{leased_id}/heartbeat"),
            json!({"worker": "alice-worker", "lease_token": token}),
        ),
        (
            "POST",
            format!("/v1/jobs/{leased_id}/complete"),
            json!({"worker": "alice-worker", "lease_token": token, "result": {}}),
        ),
        (
            "POST",
            format!("/v1/jobs/{leased_id}/fail"),
            json!({"worker": "alice-worker", "lease_token": token, "error": "x"}),
        ),
        (
            "POST",
            format!("/v1/jobs/{leased_id}/steps/s1"),
            json!({"worker": "alice-worker", "lease_token": token, "status": "running"}),
        ),
        ("PUT", format!("/v1/jobs/{upload}/data"), json!("bytes")),
        ("POST", format!("/v1/jobs/{upload}/close"), json!({})),
    ] {
        let answer = bob.request(method, &path, &[], body);
        assert_error(&answer, 404, "job_not_found");
    }
    let still = alice.get(&format!("/v1/jobs/{leased_id}")).expect_json(200);
    assert_eq!(still["state"], "running");
    assert_eq!(
        alice.get(&format!("/v1/jobs/{upload}")).expect_json(200)["state"],
        "open"
    );
    alice
        .post(
            &format!("/v1/jobs/{leased_id}/complete"),
            &json!({"worker": "alice-worker", "lease_token": token, "result": {}}),
        )
        .expect(200);
    alice
        .post(&format!("/v1/jobs/{upload}/cancel"), &json!({}))
        .expect(200);
    let a_set = BTreeSet::from([a, leased_id, upload]);

    // Only an admin may name the tenant of a new job.
    assert_error(
        &alice.post("/v1/jobs", &json!({"kind": "x", "tenant": "globex"})),
        403,
        "forbidden",
    );

    let b = id_of(&bob.create(&json!({"kind": "import", "queue": "shared"})));
    assert_eq!(listed_ids(&bob), BTreeSet::from([b]));
    assert_eq!(listed_ids(&alice), a_set);
    assert_error(&alice.get(&format!("/v1/jobs/{b}")), 404, "job_not_found");

    // Idempotency keys belong to a tenant: the same key in two tenants makes two jobs.
    let keyed = |api: &Client| {
        api.request(
            "POST",
            "/v1/jobs",
            &[("Idempotency-Key", "same-key")],
            json!({"kind": "keyed"}),
        )
        .expect_json(201)
    };
    let alice_keyed = id_of(&keyed(&alice));
    let bob_keyed = id_of(&keyed(&bob));
    assert_ne!(alice_keyed, bob_keyed);
    assert_eq!(id_of(&keyed(&alice)), alice_keyed);
    let a_set: BTreeSet<i64> = a_set.into_iter().chain([alice_keyed]).collect();
    let b_set = BTreeSet::from([b, bob_keyed]);

    // Definitions are per tenant too.
    alice
        .put(
            "/v1/definitions/nightly",
            &json!({"steps": [{"step_id": "s1"}]}),
        )
        .expect(200);
    assert_error(
        &bob.get("/v1/definitions/nightly"),
        404,
        "definition_not_found",
    );
    assert_error(
        &bob.post("/v1/definitions/nightly/executions", &json!({})),
        404,
        "definition_not_found",
    );
    let theirs = bob.get("/v1/definitions").expect_json(200);
    assert_eq!(theirs["definitions"], json!([]));

    // The admin crosses tenants, and may create in any.
    assert_eq!(listed_ids(&root), a_set.union(&b_set).copied().collect());
    let placed = root.create(&json!({"kind": "placed", "tenant": "globex"}));
    assert_eq!(placed["tenant"], "globex");
    assert_eq!(
        bob.get(&format!("/v1/jobs/{}", id_of(&placed)))
            .expect_json(200)["kind"],
        "placed"
    );
    assert_eq!(
        root.get(&format!("/v1/jobs/{a}")).expect_json(200)["tenant"],
        "acme"
    );
    assert_eq!(
        root.get(&format!("/v1/jobs/{b}")).expect_json(200)["tenant"],
        "globex"
    );
    let only_acme = root.get("/v1/jobs?tenant=acme").expect_json(200);
    let only_acme: Vec<i64> = only_acme["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(only_acme.into_iter().collect::<BTreeSet<i64>>(), a_set);

    // A worker token (scope `work` only) claims but does not read or write.
    assert_error(&worker.get("/v1/jobs"), 403, "forbidden");
    assert_error(
        &worker.post("/v1/jobs", &json!({"kind": "x"})),
        403,
        "forbidden",
    );

    // Her tenant's worker claims her job.
    let claimed = worker.claim("runner", "shared", 10);
    assert_eq!(claimed.len(), 1);
    assert_eq!(id_of(&claimed[0]), a);
}

#[test]
fn sighup_reloads_the_tokens_file() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    let alice = add_token(&tokens, "alice", "acme", "read,write");
    let daemon = Daemon::start_with(
        dir,
        Options {
            tokens: Some(tokens.clone()),
            ..Options::default()
        },
    );
    let alice = daemon.client_with(&alice);
    alice.get("/v1/jobs").expect(200);

    // A token added to the file is unknown until SIGHUP.
    let carol_token = add_token(&tokens, "carol", "acme", "read,write");
    let carol = daemon.client_with(&carol_token);
    assert_error(&carol.get("/v1/jobs"), 401, "unauthorized");
    daemon.signal("HUP");
    eventually(
        "the new token works after SIGHUP",
        Duration::from_secs(10),
        || carol.get("/v1/jobs").status == 200,
    );
    alice.get("/v1/jobs").expect(200);
    carol.create(&json!({"kind": "after-reload"}));

    // A token removed from the file stops working on the next SIGHUP.
    let text = std::fs::read_to_string(&tokens).unwrap();
    let kept: String = text
        .lines()
        .filter(|line| !line.starts_with("alice "))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(kept, text);
    std::fs::write(&tokens, kept).unwrap();
    daemon.signal("HUP");
    eventually(
        "the removed token fails after SIGHUP",
        Duration::from_secs(10),
        || alice.get("/v1/jobs").status == 401,
    );
    assert_error(&alice.get("/v1/jobs"), 401, "unauthorized");
    carol.get("/v1/jobs").expect(200);

    // A broken file keeps the old tokens.
    std::fs::write(&tokens, "this is not a tokens file\n").unwrap();
    daemon.signal("HUP");
    eventually(
        "the daemon reports the broken file",
        Duration::from_secs(10),
        || daemon.stderr().contains("keeping the old tokens"),
    );
    carol.get("/v1/jobs").expect(200);
    assert_eq!(daemon.client().get("/healthz").status, 200);
}

#[test]
fn refuses_to_listen_beyond_loopback_without_tokens() {
    let dir = temp_dir();
    let output = jobstore([
        "serve".into(),
        "--db".into(),
        database_in(dir.path()),
        "--listen".into(),
        "0.0.0.0:0".into(),
    ]);
    assert!(
        !output.status.success(),
        "serve on 0.0.0.0 without tokens started: {output:?}"
    );
    assert!(
        output.stderr.contains("refusing"),
        "the message should say it refuses: {}",
        output.stderr
    );
    assert!(!output.stderr.contains("listening on"), "{}", output.stderr);
}
