//! The web dashboard and the native endpoints its pages read: `/` redirects to `/ui/`, the
//! embedded files come with their content types and security headers (also with a tokens
//! file, without a token: they hold no data), and throughput, queues, queue depth and busy
//! workers answer within the caller's tenant and scopes.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Body, Daemon, assert_error, eventually, id_of};

/// Asserts the security headers every dashboard answer carries.
#[track_caller]
fn assert_secured(answer: &crate::support::Response, what: &str) {
    let policy = answer.header("content-security-policy").unwrap_or_default();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            policy.contains(directive),
            "{what}: {directive} in {policy:?}"
        );
    }
    assert!(!policy.contains("unsafe"), "{what}: {policy}");
    assert_eq!(
        answer.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{what}");
}

#[test]
fn the_root_redirects_to_the_dashboard_and_its_files_are_served_secured() {
    let (daemon, [_ops]) = Daemon::with_tokens([("ops", "acme", "read,write")]);
    let anonymous = daemon.client();

    for method in ["GET", "HEAD"] {
        let root = anonymous.request(method, "/", &[], Body::None);
        root.expect(302);
        assert_eq!(root.header("location"), Some("/ui/"), "{method} /");
        assert_secured(&root, "/");
    }
    for (path, content_type, marker) in [
        (
            "/ui/",
            "text/html; charset=utf-8",
            "<title>jobstore</title>",
        ),
        ("/ui", "text/html; charset=utf-8", "<main id=\"view\""),
        (
            "/ui/app.js",
            "text/javascript; charset=utf-8",
            "sessionStorage",
        ),
        (
            "/ui/charts.js",
            "text/javascript; charset=utf-8",
            "createElementNS",
        ),
        ("/ui/style.css", "text/css; charset=utf-8", ".badge"),
        ("/ui/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let answer = anonymous.get(path);
        answer.expect(200);
        assert_eq!(answer.header("content-type"), Some(content_type), "{path}");
        assert!(answer.text().contains(marker), "{path}: no {marker}");
        assert_secured(&answer, path);
        // The page sets no cookie and asks not to be kept stale.
        assert!(answer.header("set-cookie").is_none(), "{path}");
        assert_eq!(answer.header("cache-control"), Some("no-cache"), "{path}");
    }

    // Unknown files and other methods: the native fault document, secured too.
    let missing = anonymous.get("/ui/secrets.txt");
    assert_error(&missing, 404, "route_not_found");
    assert_secured(&missing, "/ui/secrets.txt");
    let post = anonymous.post("/ui/", &json!({}));
    assert_error(&post, 405, "method_not_allowed");
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // The data stays behind the token.
    assert_error(&anonymous.get("/v1/queues"), 401, "unauthorized");
}

/// The sum of one member over every bucket of a throughput answer.
fn total(answer: &Value, member: &str) -> i64 {
    answer["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|bucket| bucket[member].as_i64().expect("count"))
        .sum()
}

#[test]
fn throughput_queues_depth_and_workers_within_a_tenant_and_its_scopes() {
    let (daemon, [alice, reader, bob, runner]) = Daemon::with_tokens([
        ("alice", "acme", "read,write,work"),
        ("reader", "acme", "read"),
        ("bob", "globex", "read,write"),
        ("runner", "acme", "work"),
    ]);
    let queued = alice.create(&json!({"kind": "export", "queue": "exports"}));
    alice.create(&json!({"kind": "export", "queue": "exports", "run_at": 4_000_000_000_000_i64}));
    for _ in 0..2 {
        alice.create(&json!({"kind": "import", "queue": "imports", "max_attempts": 1}));
    }
    let claimed = alice.claim("w1", "imports", 2);
    let lease = |job: &Value| json!({"worker": "w1", "lease_token": job["lease_token"]});
    let mut done = lease(&claimed[0]);
    done["result"] = json!({"rows": 1});
    alice
        .post(&format!("/v1/jobs/{}/complete", id_of(&claimed[0])), &done)
        .expect(200);
    let mut failed = lease(&claimed[1]);
    failed["error"] = json!("no");
    failed["retryable"] = json!(false);
    alice
        .post(&format!("/v1/jobs/{}/fail", id_of(&claimed[1])), &failed)
        .expect(200);
    let running = alice.create(&json!({"kind": "sync", "queue": "imports"}));
    let held = alice.claim("w2", "imports", 1);
    assert_eq!(id_of(&held[0]), id_of(&running));
    bob.create(&json!({"kind": "secret", "queue": "exports"}));

    // Throughput: the last hour, one bucket a minute, the current minute last.
    let throughput = reader.get("/v1/throughput").expect_json(200);
    assert_eq!(throughput["bucket_ms"], 60_000);
    assert_eq!(throughput["buckets"].as_array().map(Vec::len), Some(60));
    assert_eq!(
        (
            total(&throughput, "created"),
            total(&throughput, "succeeded"),
            total(&throughput, "failed")
        ),
        (5, 1, 1)
    );
    let short = reader.get("/v1/throughput?minutes=5").expect_json(200);
    assert_eq!(short["buckets"].as_array().map(Vec::len), Some(5));
    let starts: Vec<i64> = short["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|b| b["start"].as_i64().expect("start"))
        .collect();
    assert!(
        starts.windows(2).all(|w| w[1] - w[0] == 60_000),
        "{starts:?}"
    );
    assert!(starts.iter().all(|start| start % 60_000 == 0), "{starts:?}");
    for bad in ["minutes=0", "minutes=1441", "minutes=x", "since=1"] {
        assert_error(
            &reader.get(&format!("/v1/throughput?{bad}")),
            400,
            "invalid_request",
        );
    }
    let other = bob.get("/v1/throughput").expect_json(200);
    assert_eq!((total(&other, "created"), total(&other, "failed")), (1, 0));

    // Queues: waiting (and due), running, failed in the last hour, the longest wait.
    let queues = reader.get("/v1/queues").expect_json(200);
    let find = |answer: &Value, name: &str| -> Value {
        answer["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .find(|q| q["queue"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no queue {name} in {answer}"))
    };
    let exports = find(&queues, "exports");
    assert_eq!(
        (&exports["queued"], &exports["due"], &exports["running"]),
        (&json!(2), &json!(1), &json!(0))
    );
    assert_eq!(exports["oldest_due_id"], queued["id"]);
    assert_eq!(exports["oldest_due_since"], queued["run_at"]);
    let imports = find(&queues, "imports");
    assert_eq!(
        (&imports["running"], &imports["failed_last_hour"]),
        (&json!(1), &json!(1))
    );
    let globex = bob.get("/v1/queues").expect_json(200);
    assert_eq!(globex["queues"].as_array().map(Vec::len), Some(1));
    assert_eq!(find(&globex, "exports")["queued"], 1);

    // Busy workers: the lease owners and their running jobs, this tenant's only.
    let workers = reader.get("/v1/workers").expect_json(200);
    assert_eq!(workers["workers"][0]["worker"], "w2");
    assert_eq!(workers["workers"][0]["jobs"][0]["id"], running["id"]);
    assert_eq!(workers["workers"].as_array().map(Vec::len), Some(1));
    let none = bob.get("/v1/workers").expect_json(200);
    assert_eq!(none["workers"], json!([]));

    // Queue depth: sampled by the daemon every 10 s since it started. A sample taken while
    // the jobs above were being made may hold part of them: only one taken after every
    // answer above arrived (its time is read before its counts) must show them all, and one
    // comes within an interval.
    let settled = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .expect("the clock is after 1970");
    let after_setup = |s: &&Value| s["at"].as_i64().is_some_and(|at| at > settled);
    let mut depth = Value::Null;
    eventually("a queue depth sample", Duration::from_secs(30), || {
        depth = reader.get("/v1/queues/depth").expect_json(200);
        depth["samples"].as_array().is_some_and(|samples| {
            samples
                .iter()
                .filter(after_setup)
                .any(|s| s["queue"] == "exports")
        })
    });
    assert_eq!(depth["interval_ms"], 10_000);
    let sample = depth["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter(after_setup)
        .find(|s| s["queue"] == "exports")
        .cloned()
        .expect("an exports sample");
    assert_eq!(
        (&sample["queued"], &sample["running"]),
        (&json!(2), &json!(0))
    );
    assert!(sample["at"].as_i64() >= depth["since"].as_i64());
    let theirs = bob.get("/v1/queues/depth").expect_json(200);
    let samples = theirs["samples"].as_array().expect("samples");
    assert!(
        samples.iter().all(|s| s["queue"] == "exports"),
        "another tenant's samples hold only its own queue: {theirs}"
    );
    assert!(
        samples.iter().filter(after_setup).count() >= 1
            && samples.iter().filter(after_setup).all(|s| s["queued"] == 1),
        "{theirs}"
    );

    // Every one needs the read scope.
    for path in [
        "/v1/throughput",
        "/v1/queues",
        "/v1/queues/depth",
        "/v1/workers",
    ] {
        assert_error(&runner.get(path), 403, "forbidden");
        assert_error(&daemon.client().get(path), 401, "unauthorized");
    }
}

#[test]
fn the_job_list_filters_by_api_and_a_job_lists_its_batches() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = api.create(&json!({"kind": "import", "upload": true}));
    let id = id_of(&job);
    for data in ["a,b\n", "1,2\n3,4\n"] {
        api.request(
            "PUT",
            &format!("/v1/jobs/{id}/data"),
            &[("Content-Type", "text/csv")],
            data,
        )
        .expect(201);
    }
    let native = api.get("/v1/jobs?dialect=native").expect_json(200);
    assert_eq!(native["jobs"][0]["id"], id);
    let vendor = api
        .get("/v1/jobs?dialect=c360&dialect=aep")
        .expect_json(200);
    assert_eq!(vendor["jobs"], json!([]));

    let one = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    let sizes: Vec<i64> = one["batches"]
        .as_array()
        .expect("batches")
        .iter()
        .map(|b| b["bytes"].as_i64().expect("bytes"))
        .collect();
    assert_eq!(sizes, [4, 8]);
    assert_eq!(
        (&one["data_batches"], &one["data_bytes"]),
        (&json!(2), &json!(12))
    );
}
