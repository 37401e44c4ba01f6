//! Replication with Litestream: with `replication = "litestream"` the daemon never checkpoints
//! the WAL (Litestream owns checkpoints), nor do the commands on a file beside Litestream's
//! state; without it, they checkpoint as they always did. And
//! `jobstore restore`, run here with a stand-in for `litestream restore`, checks the restored
//! file before it moves it into place, and overwrites nothing. (`tests/drill/litestream` runs
//! the real Litestream.)

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::support::{Daemon, eventually, jobstore, temp_dir};

/// 64 KiB payloads, enough of them to pass SQLite's automatic checkpoint threshold (1,000
/// pages) twice over.
const BIG_JOBS: usize = 160;

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The WAL header's checkpoint sequence number and salts: they change whenever a checkpoint
/// lets the WAL restart.
fn wal_generation(db: &Path) -> Vec<u8> {
    std::fs::read(sibling(db, "-wal")).unwrap()[12..24].to_vec()
}

/// Frames a checkpoint copied into the database since the WAL last restarted (`nBackfill` of
/// the wal-index, byte 96 of the `-shm` file, native byte order).
fn backfilled(db: &Path) -> u32 {
    let shm = std::fs::read(sibling(db, "-shm")).unwrap();
    u32::from_ne_bytes(shm[96..100].try_into().unwrap())
}

fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(sibling(db, "-wal")).map_or(0, |m| m.len())
}

#[test]
fn with_litestream_replication_the_daemon_never_checkpoints() {
    crate::support::sqlite_only!("reads the WAL and -shm files to see that no checkpoint ran");
    let mut daemon = Daemon::with_config(
        "replication = \"litestream\"\n[maintenance]\ncheckpoint_interval_ms = 20\n",
    );
    let api = daemon.client();
    let db = daemon.db();
    api.create(&json!({"kind": "first"}));
    let generation = wal_generation(&db);

    let blob = "x".repeat(64 * 1024);
    for n in 0..BIG_JOBS {
        api.create(&json!({"kind": "big", "payload": {"n": n, "blob": blob}}));
    }
    // Many checkpoint ticks pass.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(wal_generation(&db), generation, "the WAL restarted");
    assert_eq!(backfilled(&db), 0, "a checkpoint copied frames");
    let written = wal_bytes(&db);
    assert!(
        written > BIG_JOBS as u64 * 64 * 1024,
        "WAL of {written} bytes"
    );

    daemon.stop();
    assert!(wal_bytes(&db) >= written, "the WAL shrank at shutdown");
    assert_eq!(
        wal_generation(&db),
        generation,
        "the WAL restarted at shutdown"
    );
    assert_eq!(backfilled(&db), 0, "a checkpoint at shutdown copied frames");
    let log = daemon.stderr();
    assert!(log.contains("replication litestream"), "{log}");
    assert!(log.contains("the WAL is left to Litestream"), "{log}");

    // A command on the file beside Litestream's state leaves the WAL alone too; without that
    // state, it checkpoints as the file's last connection and the WAL goes.
    let meta = daemon.dir().join(".jobstore.db-litestream");
    std::fs::create_dir(&meta).unwrap();
    let check = || jobstore(["--db".as_ref(), db.as_os_str(), "check".as_ref()]);
    check().success();
    assert_eq!(
        wal_generation(&db),
        generation,
        "`jobstore check` restarted the WAL"
    );
    assert_eq!(backfilled(&db), 0, "`jobstore check` checkpointed");
    std::fs::remove_dir(&meta).unwrap();
    check().success();
    assert!(
        !sibling(&db, "-wal").exists(),
        "no checkpoint without Litestream's state"
    );
}

#[test]
fn without_replication_the_daemon_checkpoints_as_before() {
    crate::support::sqlite_only!("reads the WAL file to see the daemon's checkpoints");
    let mut daemon = Daemon::with_config("[maintenance]\ncheckpoint_interval_ms = 20\n");
    let api = daemon.client();
    let db = daemon.db();
    for n in 0..5 {
        api.create(&json!({"kind": "k", "payload": {"n": n}}));
    }
    eventually(
        "the periodic TRUNCATE checkpoint empties the WAL",
        Duration::from_secs(10),
        || wal_bytes(&db) == 0,
    );
    api.create(&json!({"kind": "last"}));
    daemon.stop();
    assert!(!sibling(&db, "-wal").exists(), "the WAL outlived the stop");
    let log = daemon.stderr();
    assert!(log.contains("replication none"), "{log}");
    assert!(log.contains("checkpointed; stopped"), "{log}");
}

#[test]
fn a_daemon_beside_litestream_state_without_the_setting_warns() {
    crate::support::sqlite_only!("Litestream's state sits beside a database file");
    let dir = temp_dir();
    std::fs::create_dir(dir.path().join(".jobstore.db-litestream")).unwrap();
    let daemon = Daemon::with_config_in(dir, "", None);
    // Logged before `listening on`, which the start waited for.
    let log = daemon.stderr();
    assert!(
        log.contains("Litestream replicates this database, but replication is not set"),
        "{log}"
    );
}

/// A stand-in for `litestream`: `restore -o OUT …` copies `source` to OUT.
fn fake_litestream(dir: &Path, source: &Path) -> PathBuf {
    let script = dir.join("litestream");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = restore ] && [ \"$2\" = -o ] || exit 64\ncp '{}' \"$3\"\n",
            source.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

fn restore(db: &Path, litestream: &Path) -> crate::support::Output {
    jobstore([
        "--db".as_ref(),
        db.as_os_str(),
        "restore".as_ref(),
        "--replica".as_ref(),
        "file:///nowhere".as_ref(),
        "--litestream".as_ref(),
        litestream.as_os_str(),
    ])
}

#[test]
fn restore_checks_the_file_before_moving_it_into_place_and_overwrites_nothing() {
    crate::support::sqlite_only!("restores a database file from a Litestream replica");
    let mut daemon = Daemon::start();
    let api = daemon.client();
    for n in 0..3 {
        api.create(&json!({"kind": "k", "payload": {"n": n}}));
    }
    let replica = daemon.dir().join("replica.db");
    jobstore([
        "--db".as_ref(),
        daemon.db().as_os_str(),
        "backup".as_ref(),
        replica.as_os_str(),
    ])
    .success();
    daemon.stop();

    let node = temp_dir();
    let db = node.path().join("jobstore.db");
    let litestream = fake_litestream(node.path(), &replica);
    let restored = restore(&db, &litestream);
    let out = restored.success();
    assert!(out.contains("check: ok") && out.contains("3 jobs"), "{out}");
    assert!(db.is_file());
    for left in ["-wal", "-shm"] {
        assert!(
            !sibling(&db, left).exists(),
            "{left} left beside the restored file"
        );
    }
    assert!(!node.path().join(".jobstore.db.restoring").exists());
    jobstore(["--db".as_ref(), db.as_os_str(), "check".as_ref()]).success();

    // A database that is there is never overwritten.
    let again = restore(&db, &litestream);
    assert!(!again.status.success());
    assert!(again.stderr.contains("exists"), "{}", again.stderr);

    // Nor restored under Litestream's state of the lost file.
    std::fs::remove_file(&db).unwrap();
    let meta = node.path().join(".jobstore.db-litestream");
    std::fs::create_dir(&meta).unwrap();
    let stale = restore(&db, &litestream);
    assert!(!stale.status.success());
    assert!(
        stale.stderr.contains("Litestream's state"),
        "{}",
        stale.stderr
    );
    assert!(!db.exists());
    std::fs::remove_dir(&meta).unwrap();

    // A replica that fails the check is kept aside, not moved into place.
    let status = std::process::Command::new("sqlite3")
        .arg(&replica)
        .arg(
            "INSERT INTO jobs (kind, state, run_at, created_at, updated_at) \
             VALUES ('k', 'queued', 1, 1, 1)",
        )
        .status()
        .expect("run sqlite3");
    assert!(status.success());
    let broken = restore(&db, &litestream);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    assert!(
        broken.stdout.contains("failed its check"),
        "{}",
        broken.stdout
    );
    assert!(
        !db.exists(),
        "a file that failed its check was moved into place"
    );
    assert!(node.path().join(".jobstore.db.restoring").exists());
}
