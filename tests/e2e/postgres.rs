//! Several daemons on one PostgreSQL database (`serve --db postgres://…`): a job created
//! through one is visible, claimable, cancellable and listed through the other; fencing holds
//! across them; a waiting claim on one finds a job created on the other; a vendor API's job is
//! served by either; `migrate`, `check`, `stats` and `jobs` work on the URL. The server is a
//! throwaway cluster of this test binary's own (see the module below).

#[path = "../../crates/jobstore-postgres/tests/support/mod.rs"]
mod cluster;

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{Daemon, Options, assert_error, id_of, jobstore, temp_dir};

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

    // A claim waiting on one finds a job created on the other (the periodic re-poll).
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
        migrated.success().contains("schema version 1"),
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
