//! The schema: migrations reproduce `schema.sql` from every earlier version, a newer database
//! is refused and left untouched, a file that is not a database is never "repaired".

use jobstore::{Error, NewJob, SCHEMA_VERSION, Scope, State, Store, migrate_to};

use crate::support::Fixture;
use rusqlite::Connection;

const SCHEMA_SQL: &str = include_str!("../../../../schema.sql");

/// `sqlite_master` as sorted (type, name, table, sql) rows, whitespace normalised.
fn master(conn: &Connection) -> Vec<(String, String, String, String)> {
    let mut stmt = conn
        .prepare(
            "SELECT type, name, tbl_name, ifnull(sql, '') FROM sqlite_master \
             WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .unwrap();
    stmt.query_map([], |row| {
        Ok((
            row.get(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get::<_, String>(3)?
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        ))
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

fn from_schema_sql(dir: &std::path::Path) -> Connection {
    let conn = Connection::open(dir.join("reference.db")).unwrap();
    conn.execute_batch(SCHEMA_SQL).unwrap();
    conn
}

#[test]
fn a_fresh_migrated_database_has_exactly_the_schema_of_schema_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    drop(Store::open(&path).unwrap());
    let migrated = Connection::open(&path).unwrap();
    let reference = from_schema_sql(dir.path());
    let got = master(&migrated);
    assert!(got.len() > 20, "suspiciously small schema: {got:?}");
    assert_eq!(got, master(&reference));
    let version: i64 = migrated
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn every_earlier_version_upgrades_to_the_current_schema_keeping_its_rows() {
    for from in 0..SCHEMA_VERSION {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        {
            let conn = Connection::open(&path).unwrap();
            migrate_to(&conn, from).unwrap();
            if from >= 1 {
                conn.execute(
                    "INSERT INTO jobs (kind, state, run_at, created_at, updated_at) \
                     VALUES ('old', 'queued', 1, 1, 1)",
                    [],
                )
                .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        if from >= 1 {
            assert_eq!(store.get(1).unwrap().kind, "old");
            // The counts of migration 7 start from the jobs already there.
            let stats = store.stats().unwrap();
            assert_eq!(stats.len(), 1, "{stats:?}");
            assert_eq!((stats[0].state, stats[0].jobs), (State::Queued, 1));
        }
        drop(store);
        let migrated = Connection::open(&path).unwrap();
        let reference = from_schema_sql(dir.path());
        assert_eq!(master(&migrated), master(&reference), "from version {from}");
    }
}

#[test]
fn a_database_from_a_newer_build_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    drop(Store::open(&path).unwrap());
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    match Store::open(&path) {
        Err(Error::SchemaTooNew { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_not_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let garbage = b"this is not a database, it is a shopping list\n".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    assert!(matches!(Store::open(&path), Err(Error::Sqlite(_))));
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn the_file_is_in_wal_mode_with_both_durability_levels() {
    for durability in [jobstore::Durability::Full, jobstore::Durability::Normal] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let options = jobstore::StoreOptions {
            durability,
            ..jobstore::StoreOptions::default()
        };
        let store = Store::open_with(&path, options).unwrap();
        store.enqueue(jobstore::NewJob::new("a")).unwrap();
        let conn = Connection::open(&path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
}

#[test]
fn the_schema_refuses_what_the_state_machine_forbids() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let store = Store::open(&path).unwrap();
    let job = store.enqueue(jobstore::NewJob::new("a")).unwrap();
    let conn = Connection::open(&path).unwrap();
    for bad in [
        // Unknown state.
        "UPDATE jobs SET state = 'done' WHERE id = ?1",
        // Terminal without a finished time.
        "UPDATE jobs SET state = 'succeeded' WHERE id = ?1",
        // Running without a lease.
        "UPDATE jobs SET state = 'running' WHERE id = ?1",
        // A lease on a job that is not running.
        "UPDATE jobs SET lease_owner = 'w' WHERE id = ?1",
        // A payload that is not JSON.
        "UPDATE jobs SET payload = '{oops' WHERE id = ?1",
    ] {
        let err = conn.execute(bad, [job.id]).err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.to_string().contains("constraint failed")),
            "{bad}: {err:?}"
        );
    }
    // A second live job with the same unique key, written by hand, is refused by the index.
    conn.execute("UPDATE jobs SET unique_key = 'k' WHERE id = ?1", [job.id])
        .unwrap();
    let err = conn
        .execute(
            "INSERT INTO jobs (kind, state, run_at, created_at, updated_at, unique_key) \
             VALUES ('a', 'queued', 0, 0, 0, 'k')",
            [],
        )
        .err();
    assert!(err.is_some_and(|e| e.to_string().contains("UNIQUE")));
}

/// `job_counts` follows every write, the store's and another program's, and `check` notices
/// when it does not.
#[test]
fn job_counts_follow_every_write_and_check_compares_them() {
    let f = Fixture::new();
    let a = f.store.enqueue(NewJob::new("k").queue("q1")).unwrap();
    f.store.enqueue(NewJob::new("k").queue("q2")).unwrap();
    f.store.cancel(a.id, "test").unwrap();
    let conn = f.sql();
    // Writes from outside the store: an insert, a move to another queue, a delete.
    conn.execute(
        "INSERT INTO jobs (tenant, kind, queue, state, run_at, created_at, updated_at) \
         VALUES ('other', 'k', 'q1', 'queued', 1, 1, 1)",
        [],
    )
    .unwrap();
    conn.execute("UPDATE jobs SET queue = 'q3' WHERE queue = 'q2'", [])
        .unwrap();
    f.store.discard(a.id, &[State::Cancelled]).unwrap();
    let counts = |conn: &Connection| -> Vec<(String, String, String, i64)> {
        conn.prepare(
            "SELECT tenant, queue, state, jobs FROM job_counts WHERE jobs > 0 ORDER BY 1, 2, 3",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    assert_eq!(
        counts(&conn),
        [
            ("default".into(), "q3".into(), "queued".into(), 1),
            ("other".into(), "q1".into(), "queued".into(), 1),
        ]
    );
    let stats = f.store.with_scope(Scope::All).stats().unwrap();
    assert_eq!(
        stats
            .iter()
            .map(|c| (c.queue.as_str(), c.state, c.jobs))
            .collect::<Vec<_>>(),
        [("q1", State::Queued, 1), ("q3", State::Queued, 1)]
    );
    // (The row written with SQL has no create event, which `check` reports too.)
    let counts_problem = |problems: &[String]| {
        problems
            .iter()
            .any(|p| p.starts_with("job counts (job_counts) that differ from the jobs"))
    };
    assert!(!counts_problem(&f.store.check().unwrap().problems));

    conn.execute(
        "UPDATE job_counts SET jobs = jobs + 1 WHERE queue = 'q3'",
        [],
    )
    .unwrap();
    let report = f.store.check().unwrap();
    assert!(counts_problem(&report.problems), "{:?}", report.problems);
}
