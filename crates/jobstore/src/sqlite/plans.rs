//! The query plans of the statements the maintenance calls and the activity summaries run:
//! each seeks each tenant in an index and never scans the jobs.

use super::ops::{
    CREATED_SINCE, EXPIRED_LEASES, FINISHED_SINCE, LIVE, OLDEST_DUE, PURGE_FINISHED, RUNNING_IDS,
};
use crate::Store;

/// The query plan of `sql` (every detail line), on the store's current schema.
fn plan(conn: &rusqlite::Connection, sql: &str, tenant: Option<&str>) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("prepare");
    stmt.query_map(rusqlite::params![0, tenant, 10], |row| {
        row.get::<_, String>(3)
    })
    .expect("plan")
    .collect::<rusqlite::Result<Vec<_>>>()
    .expect("plan rows")
}

#[test]
fn rescue_and_purge_seek_each_tenant_and_never_scan_the_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jobs.db");
    drop(Store::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("connection");
    // Enough rows in several tenants, with statistics, for the planner to choose freely.
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO jobs (tenant, kind, state, run_at, created_at, updated_at, finished_at) \
         SELECT 't' || (i % 5), 'k', 'succeeded', i, i, i, i FROM n; ANALYZE;",
    )
    .expect("rows");
    for (sql, index) in [
        (
            EXPIRED_LEASES,
            "jobs_by_tenant_state (tenant=? AND state=?)",
        ),
        (PURGE_FINISHED, "jobs_by_tenant_finished (tenant=?"),
    ] {
        for tenant in [None, Some("t1")] {
            let plan = plan(&conn, sql, tenant);
            assert!(
                plan.iter().any(|line| line.contains(index)),
                "{index} unused: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|line| line.starts_with("SCAN jobs") || line.contains("AUTOMATIC")),
                "a scan of the jobs: {plan:?}"
            );
        }
    }
}

/// The query plan of `sql` (every detail line) with `params`.
fn plan_with(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    let mut stmt = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("prepare");
    stmt.query_map(params, |row| row.get::<_, String>(3))
        .expect("plan")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("plan rows")
}

#[test]
fn each_summary_seeks_each_tenant_in_an_index_and_never_scans_the_jobs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jobs.db");
    drop(Store::open(&path).expect("open"));
    let conn = rusqlite::Connection::open(&path).expect("connection");
    // Enough rows in several tenants and states, with statistics, for the planner to
    // choose freely.
    conn.execute_batch(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
         INSERT INTO jobs (tenant, kind, queue, state, run_at, created_at, updated_at, \
                           finished_at) \
         SELECT 't' || (i % 5), 'k', 'q' || (i % 3), \
                CASE WHEN i % 10 = 0 THEN 'queued' ELSE 'succeeded' END, \
                i, i, i, CASE WHEN i % 10 = 0 THEN NULL ELSE i END FROM n; ANALYZE;",
    )
    .expect("rows");
    for tenant in [None, Some("t1")] {
        for (sql, index, plan) in [
            (
                "created",
                "jobs_by_tenant_created (tenant=? AND created_at>?)",
                plan_with(&conn, CREATED_SINCE, rusqlite::params![0, tenant, 60_000]),
            ),
            (
                "finished",
                "jobs_by_tenant_finished (tenant=? AND <expr>>?)",
                plan_with(&conn, FINISHED_SINCE, rusqlite::params![0, tenant, 60_000]),
            ),
            (
                "live",
                "jobs_by_tenant_state (tenant=? AND state=?)",
                plan_with(&conn, LIVE, rusqlite::params![0, tenant]),
            ),
            (
                "oldest",
                "jobs_by_tenant_state (tenant=? AND state=?)",
                plan_with(&conn, OLDEST_DUE, rusqlite::params![0, tenant]),
            ),
            (
                "running",
                "jobs_by_tenant_state (tenant=? AND state=?)",
                plan_with(&conn, RUNNING_IDS, rusqlite::params![10, tenant]),
            ),
        ] {
            assert!(
                plan.iter().any(|line| line.contains(index)),
                "{sql} ({tenant:?}): {index} unused: {plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|line| line.starts_with("SCAN jobs") || line.contains("AUTOMATIC")),
                "{sql} ({tenant:?}): a scan of the jobs: {plan:?}"
            );
        }
    }
}
