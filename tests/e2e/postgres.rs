//! Several daemons on one PostgreSQL database (`serve --db postgres://…`): a job created
//! through one is visible, claimable, cancellable and listed through the other; fencing holds
//! across them; a waiting claim on one finds a job created on the other; a vendor API's job is
//! served by either; `migrate`, `check`, `stats` and `jobs` work on the URL; both ride out a
//! restart of the server (503 `storage_unavailable` while it is down, served again after, no
//! acknowledged job lost). The server is the test binary's throwaway cluster
//! ([`crate::cluster`]), or one of the test's own that it stops and starts.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::cluster;
use crate::support::{Daemon, Options, assert_error, eventually, id_of, jobstore, temp_dir};

fn daemon_on(url: &str) -> Daemon {
    Daemon::start_with(
        temp_dir(),
        Options {
            db: Some(url.into()),
            ..Options::default()
        },
    )
}

#[test]
fn two_daemons_share_the_jobs_of_one_database() {
    let url = cluster::fresh_database();
    let (one, two) = (daemon_on(&url), daemon_on(&url));
    let (a, b) = (one.client(), two.client());

    // Created on one, read, listed and claimed on the other.
    let job = a.create(&json!({"kind": "export", "queue": "shared", "payload": {"n": 1}}));
    let id = id_of(&job);
    let read = b.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(
        (&read["kind"], &read["payload"]),
        (&json!("export"), &json!({"n": 1}))
    );
    let listed = b.get("/v1/jobs?queue=shared").expect_json(200);
    assert_eq!(listed["jobs"][0]["id"], json!(id));
    let claimed = b.claim("w-two", "shared", 1);
    assert_eq!(claimed.len(), 1);
    assert!(a.claim("w-one", "shared", 1).is_empty(), "claimed twice");
    let token = claimed[0]["lease_token"].clone();

    // Fencing across daemons: a wrong token through one is refused; the lease's token works
    // through either.
    let stale = a.post(
        &format!("/v1/jobs/{id}/complete"),
        &json!({"worker": "w-two", "lease_token": 99, "result": null}),
    );
    assert_error(&stale, 409, "stale_lease");
    a.post(
        &format!("/v1/jobs/{id}/complete"),
        &json!({"worker": "w-two", "lease_token": token, "result": {"rows": 3}}),
    )
    .expect(200);
    assert_eq!(
        b.get(&format!("/v1/jobs/{id}")).expect_json(200)["state"],
        "succeeded"
    );

    // Created on one, cancelled through the other.
    let other = id_of(&b.create(&json!({"kind": "sync", "queue": "later"})));
    a.post(&format!("/v1/jobs/{other}/cancel"), &json!({}))
        .expect(200);
    assert_eq!(
        b.get(&format!("/v1/jobs/{other}")).expect_json(200)["state"],
        "cancelled"
    );

    // A claim waiting on one finds a job created on the other (woken by the other's NOTIFY;
    // the periodic re-poll is the fallback).
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let jobs = a
            .post(
                "/v1/claim",
                &json!({"worker": "w-wait", "queues": ["wait"], "wait_ms": 20_000}),
            )
            .expect_json(200);
        (jobs, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    let late = id_of(&b.create(&json!({"kind": "late", "queue": "wait"})));
    let (jobs, waited) = waiter.join().expect("the waiting claim");
    assert_eq!(jobs["jobs"][0]["id"], json!(late), "{jobs}");
    assert!(waited < Duration::from_secs(20), "the claim waited it out");

    // A vendor API's job, created through one daemon, is served by the other.
    let b = two.client();
    let c360 = one
        .client()
        .post(
            "/datamanager/datatools/v1.0/jobs",
            &json!({"jobType": "B2CtoFS", "source": "crm", "target": "lake"}),
        )
        .expect_json(201);
    let c360_id = c360["id"].as_str().expect("a C360 id").to_owned();
    let seen = b
        .get(&format!("/datamanager/datatools/v1.0/jobs/{c360_id}"))
        .expect_json(200);
    assert_eq!(
        (&seen["id"], &seen["source"], &seen["target"]),
        (&c360["id"], &c360["source"], &c360["target"])
    );

    // The same counts through both.
    assert_eq!(
        one.client().get("/v1/stats").expect_json(200),
        b.get("/v1/stats").expect_json(200)
    );
}

#[test]
fn the_commands_work_on_a_database_url() {
    let url = cluster::fresh_database();
    let migrated = jobstore(["migrate", "--db", url.as_str()]);
    assert!(
        migrated.success().contains(&format!(
            "schema version {}",
            jobstore_postgres::SCHEMA_VERSION
        )),
        "{}",
        migrated.stdout
    );
    let daemon = daemon_on(&url);
    let id = id_of(
        &daemon
            .client()
            .create(&json!({"kind": "export", "queue": "cli"})),
    );
    assert_eq!(
        jobstore(["check", "--db", url.as_str()]).success().trim(),
        "ok"
    );
    let stats = jobstore(["stats", "--json", "--db", url.as_str()]);
    let stats: serde_json::Value = serde_json::from_str(stats.success()).expect("stats JSON");
    assert_eq!(
        stats,
        json!([{"queue": "cli", "state": "queued", "jobs": 1}])
    );
    let listed = jobstore(["jobs", "list", "--json", "--db", url.as_str()]);
    assert!(
        listed.success().contains(&format!("\"id\": {id}")),
        "{}",
        listed.stdout
    );

    // What only a SQLite file has is refused, saying why.
    let restore = jobstore(["restore", "--db", url.as_str()]);
    assert!(!restore.status.success());
    assert!(
        restore.stderr.contains("PostgreSQL database"),
        "{}",
        restore.stderr
    );
    let backup = jobstore(["backup", "--db", url.as_str(), "/tmp/never-written.db"]);
    assert!(!backup.status.success());
    assert!(backup.stderr.contains("pg_dump"), "{}", backup.stderr);
    // A password in the URL never reaches a message.
    let wrong = url.replacen("postgres://postgres@", "postgres://postgres:s3cret@", 1) + "_none";
    let refused = jobstore(["check", "--db", wrong.as_str()]);
    assert!(!refused.status.success());
    assert!(!refused.stderr.contains("s3cret"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("postgres:***@"),
        "{}",
        refused.stderr
    );
}

/// A daemon on `url` whose waiting claims re-poll only every minute: a job of another daemon
/// reaches them in time only by a wake-up.
fn daemon_without_repoll(url: &str) -> Daemon {
    let dir = temp_dir();
    let config = dir.path().join("jobstore.toml");
    std::fs::write(&config, "[limits]\nclaim_poll_ms = 60000\n").expect("write the config");
    Daemon::start_with(
        dir,
        Options {
            db: Some(url.into()),
            args: vec!["--config".into(), config.into_os_string()],
            ..Options::default()
        },
    )
}

/// How long a refusal may take while the server is down: the daemons answer at once (the
/// bound keeps a loaded machine from failing the test).
const REFUSED_WITHIN: Duration = Duration::from_secs(5);

/// `client` answers `method path` with 503 `storage_unavailable` and `Retry-After`, within
/// [`REFUSED_WITHIN`]; answers how long it took.
#[track_caller]
fn refused(
    client: &crate::support::Client,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> Duration {
    let started = Instant::now();
    let response = match method {
        "GET" => client.get(path),
        _ => client.post(path, body),
    };
    let took = started.elapsed();
    assert_error(&response, 503, "storage_unavailable");
    assert!(
        response.header("retry-after").is_some(),
        "{method} {path}: no Retry-After"
    );
    assert!(took < REFUSED_WITHIN, "{method} {path} took {took:?}");
    took
}

#[test]
fn two_daemons_ride_out_a_postgres_restart() {
    let cluster = cluster::PrivateCluster::start();
    let url = cluster.fresh_database();
    let (one, two) = (daemon_without_repoll(&url), daemon_without_repoll(&url));
    let (a, b) = (one.client(), two.client());
    let mut acknowledged = Vec::new();
    for n in 0..6 {
        let client = if n % 2 == 0 { &a } else { &b };
        acknowledged.push(id_of(
            &client.create(&json!({"kind": "export", "queue": "kept", "payload": {"n": n}})),
        ));
    }

    cluster.stop();
    let mut slowest = Duration::ZERO;
    for client in [&a, &b] {
        let job = format!("/v1/jobs/{}", acknowledged[0]);
        for (method, path, body) in [
            (
                "POST",
                "/v1/jobs",
                json!({"kind": "export", "queue": "kept"}),
            ),
            ("GET", job.as_str(), json!(null)),
            ("GET", "/v1/jobs?queue=kept", json!(null)),
            (
                "POST",
                "/v1/claim",
                json!({"worker": "w", "queues": ["kept"], "wait_ms": 2000}),
            ),
            ("POST", &format!("{job}/cancel"), json!({})),
            ("GET", "/v1/stats", json!(null)),
        ] {
            slowest = slowest.max(refused(client, method, path, &body));
        }
        // A vendor API says it in its own words, with the same status.
        let vendor = client.get("/datamanager/datatools/v1.0/jobs");
        assert_eq!(vendor.status, 503, "{}", vendor.text());
        assert_eq!(vendor.json()[0]["errorCode"], "SERVER_UNAVAILABLE");
        assert!(vendor.header("retry-after").is_some());
        // Liveness does not depend on the database: the daemon is alive and will recover.
        assert_eq!(client.get("/healthz").expect(200).text(), "ok\n");
    }
    eprintln!("while PostgreSQL was down, the slowest refusal took {slowest:?}");

    cluster.start_again();
    let up = Instant::now();
    let mut recovered = Vec::new();
    for client in [&a, &b] {
        eventually(
            "a create after the restart",
            Duration::from_secs(30),
            || {
                client
                    .try_request(
                        "POST",
                        "/v1/jobs",
                        &[("Content-Type", "application/json")],
                        json!({"kind": "export", "queue": "after"}),
                    )
                    .is_ok_and(|response| response.status == 201)
            },
        );
        recovered.push(up.elapsed());
    }
    eprintln!("after PostgreSQL started again, each daemon created again after {recovered:?}");

    // Every job acknowledged before the stop is there, claimed through one daemon and
    // completed through the other.
    let claimed = b.claim("w", "kept", 10);
    let mut ids: Vec<i64> = claimed.iter().map(id_of).collect();
    ids.sort_unstable();
    assert_eq!(ids, acknowledged);
    for job in &claimed {
        a.post(
            &format!("/v1/jobs/{}/complete", id_of(job)),
            &json!({"worker": "w", "lease_token": job["lease_token"], "result": {"ok": true}}),
        )
        .expect(200);
    }
    for id in &acknowledged {
        assert_eq!(
            b.get(&format!("/v1/jobs/{id}")).expect_json(200)["state"],
            "succeeded"
        );
    }

    // A claim waiting on one daemon is woken by a create on the other (its re-poll is a
    // minute away): the wake-ups came back with the server.
    let waiting = one.client();
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = waiting
            .post(
                "/v1/claim",
                &json!({"worker": "w-wait", "queues": ["wake"], "wait_ms": 30_000}),
            )
            .expect_json(200);
        (answer, started.elapsed())
    });
    eventually("the claim waits", Duration::from_secs(10), || {
        a.get("/metrics")
            .text()
            .contains("\njobstore_claims_waiting 1\n")
    });
    let late = id_of(&b.create(&json!({"kind": "late", "queue": "wake"})));
    let (answer, waited) = waiter.join().expect("the waiting claim");
    assert_eq!(answer["jobs"][0]["id"], json!(late), "{answer}");
    assert!(
        waited < Duration::from_secs(20),
        "woken only by the re-poll: {waited:?}"
    );
}

/// The daemon's sessions on the database `url` names (every driver instance's connections
/// carry an `application_name` beginning `jobstore-`).
fn daemon_sessions(url: &str) -> i64 {
    let database = url.rsplit('/').next().unwrap_or_default().to_owned();
    cluster::connect(url)
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = $1 AND application_name LIKE 'jobstore-%'",
            &[&database],
        )
        .expect("count sessions")
        .get(0)
}

/// `[postgres] writers` and `read_connections` size what a daemon holds open: a burst of
/// concurrent reads and writes is served with one writer and one read connection, and the
/// daemon never holds more sessions than those two, its notifier and its listener. The
/// defaults (4 writers) hold more from the start.
#[test]
fn the_postgres_settings_bound_a_daemons_connections() {
    let url = cluster::fresh_database();
    let dir = temp_dir();
    let config = dir.path().join("jobstore.toml");
    std::fs::write(&config, "[postgres]\nwriters = 1\nread_connections = 1\n").unwrap();
    let small = Daemon::start_with(
        dir,
        Options {
            db: Some(url.clone().into()),
            args: vec!["--config".into(), config.into_os_string()],
            ..Options::default()
        },
    );
    let burst: Vec<_> = (0..16)
        .map(|n| {
            let client = small.client();
            std::thread::spawn(move || {
                let id = id_of(&client.create(&json!({"kind": "burst", "payload": {"n": n}})));
                client.get(&format!("/v1/jobs/{id}")).expect(200);
                client.get("/v1/jobs?kind=burst").expect(200);
            })
        })
        .collect();
    for thread in burst {
        thread.join().expect("a request of the burst");
    }
    let held = daemon_sessions(&url);
    assert!(
        (1..=4).contains(&held),
        "one writer, one read connection, the notifier and the listener: {held} sessions"
    );
    drop(small);

    let url = cluster::fresh_database();
    let _default = daemon_on(&url);
    eventually("the default writers", Duration::from_secs(10), || {
        daemon_sessions(&url) >= 4 + 2
    });
}
