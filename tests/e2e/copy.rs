//! `jobstore copy`: a node's SQLite file copied into PostgreSQL by the real binary while its
//! daemon still runs (the copy reads one snapshot), then served by a daemon on the database:
//! the copied jobs answer as they did, a queued one is claimed and completed, `check` passes
//! and `stats` agree. A second copy into the same database is refused and changes nothing;
//! the command refuses arguments the wrong way round. The server is the test binary's
//! throwaway cluster ([`crate::cluster`]).

use std::ffi::OsString;
use std::path::Path;

use serde_json::{Value, json};

use crate::cluster;
use crate::support::{Daemon, Options, id_of, jobstore, temp_dir};

/// `jobstore copy --from FILE --to URL`.
fn copy(from: &Path, to: &str) -> crate::support::Output {
    jobstore([
        OsString::from("copy"),
        "--from".into(),
        from.into(),
        "--to".into(),
        to.into(),
    ])
}

/// A job's document without what a daemon adds at read time.
fn job(daemon: &Daemon, id: i64) -> Value {
    daemon
        .client()
        .get(&format!("/v1/jobs/{id}"))
        .expect_json(200)
}

#[test]
fn a_copied_node_is_served_from_postgresql_with_its_jobs_as_they_were() {
    // The node is on a SQLite file whichever engine the suite's daemons use.
    let dir = temp_dir();
    let file = dir.path().join("jobstore.db");
    let node = Daemon::start_with(
        dir,
        Options {
            db: Some(file.clone().into_os_string()),
            ..Options::default()
        },
    );
    let api = node.client();
    let octets = [("Content-Type", "application/octet-stream")];

    // A finished job with a log, an open one with 400 KiB of data, a running one, and two
    // queued ones: one scheduled later, one to be claimed after the move.
    let done = id_of(&api.create(&json!({"kind": "export", "queue": "work"})));
    let claimed = api.claim("w-old", "work", 1);
    let token = claimed[0]["lease_token"].clone();
    api.post(
        &format!("/v1/jobs/{done}/logs"),
        &json!({"lines": [{"level": "info", "message": "exported 3 rows"}]}),
    )
    .expect(200);
    api.post(
        &format!("/v1/jobs/{done}/complete"),
        &json!({"worker": "w-old", "lease_token": token, "result": {"rows": 3}}),
    )
    .expect(200);
    let open = id_of(&api.create(&json!({"kind": "import", "queue": "in", "upload": true})));
    let data: Vec<u8> = (0..400 * 1024).map(|i| (i % 253) as u8).collect();
    api.request(
        "PUT",
        &format!("/v1/jobs/{open}/data"),
        &octets,
        data.clone(),
    )
    .expect(201);
    let running = id_of(&api.create(&json!({"kind": "export", "queue": "work"})));
    assert_eq!(api.claim("w-old", "work", 1)[0]["id"], json!(running));
    let later = id_of(&api.create(&json!({
        "kind": "export", "queue": "moved", "run_at": 4_102_444_800_000_i64
    })));
    let queued = id_of(&api.create(&json!({
        "kind": "export", "queue": "moved", "payload": {"z": 1, "a": 1.50}
    })));
    let ids = [done, open, running, later, queued];

    // The copy, while the node still runs.
    let url = cluster::fresh_database();
    let output = copy(&file, &url);
    let printed = output.success();
    for line in [
        "jobs",
        "job_events",
        "job_logs",
        "job_data_chunks",
        "copied ",
    ] {
        assert!(printed.contains(line), "no {line:?} in:\n{printed}");
    }
    assert!(printed.contains("(5 jobs, "), "{printed}");

    assert_eq!(
        jobstore(["check", "--db", url.as_str()]).success().trim(),
        "ok"
    );
    let stats = |db: &str| {
        jobstore(["stats", "--json", "--db", db])
            .success()
            .to_owned()
    };
    assert_eq!(stats(&url), stats(&file.to_string_lossy()));

    // A daemon on the database answers the copied jobs as the node did.
    let moved = Daemon::start_with(
        temp_dir(),
        Options {
            db: Some(url.clone().into()),
            ..Options::default()
        },
    );
    let client = moved.client();
    for id in ids {
        assert_eq!(job(&moved, id), job(&node, id), "job {id}");
        assert_eq!(
            client
                .get(&format!("/v1/jobs/{id}/events"))
                .expect_json(200),
            api.get(&format!("/v1/jobs/{id}/events")).expect_json(200),
            "events of {id}"
        );
    }
    assert_eq!(
        client.get(&format!("/v1/jobs/{done}/logs")).text(),
        api.get(&format!("/v1/jobs/{done}/logs")).text()
    );
    assert_eq!(client.get(&format!("/v1/jobs/{open}/data")).body, data);
    assert_eq!(
        client.get("/v1/jobs?sort=id&order=asc").expect_json(200),
        api.get("/v1/jobs?sort=id&order=asc").expect_json(200)
    );

    // A worker claims the queued job (not the scheduled one) and completes it; the running
    // job's lease goes on through the new daemon.
    let got = client.claim("w-new", "moved", 5);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["id"], json!(queued));
    assert_eq!(got[0]["payload"], json!({"z": 1, "a": 1.50}));
    let token = got[0]["lease_token"].clone();
    client
        .post(
            &format!("/v1/jobs/{queued}/complete"),
            &json!({"worker": "w-new", "lease_token": token, "result": null}),
        )
        .expect(200);
    let lease = job(&node, running)["lease_token"].clone();
    client
        .post(
            &format!("/v1/jobs/{running}/heartbeat"),
            &json!({"worker": "w-old", "lease_token": lease}),
        )
        .expect(200);
    let new = id_of(&client.create(&json!({"kind": "export"})));
    assert!(new > queued, "new job {new} after the copied {queued}");

    // A second copy into the database is refused and changes nothing.
    let before = stats(&url);
    let again = copy(&file, &url);
    assert!(!again.status.success());
    assert!(again.stderr.contains("not empty"), "{}", again.stderr);
    assert_eq!(stats(&url), before);
}

#[test]
fn the_command_takes_a_file_from_and_a_database_to() {
    let dir = temp_dir();
    let file = dir.path().join("jobstore.db");
    let url = cluster::fresh_database();

    let backwards = jobstore([
        OsString::from("copy"),
        "--from".into(),
        url.clone().into(),
        "--to".into(),
        file.clone().into(),
    ]);
    assert!(!backwards.status.success());
    assert!(
        backwards.stderr.contains("--from names the SQLite file"),
        "{}",
        backwards.stderr
    );

    let to_file = copy(&file, file.to_str().unwrap_or_default());
    assert!(!to_file.status.success());
    assert!(
        to_file.stderr.contains("jobstore backup"),
        "{}",
        to_file.stderr
    );

    // A file that is not there is not created.
    let missing = copy(&file, &url);
    assert!(!missing.status.success());
    assert!(missing.stderr.contains("cannot read"), "{}", missing.stderr);
    assert!(!file.exists());

    let help = jobstore(["copy", "--help"]);
    for words in ["one read transaction", "one transaction", "jobstore check"] {
        assert!(help.success().contains(words), "{words:?} not in --help");
    }
}
