//! The limit: plain rusqlite running the statements jobstore runs, with the same schema (the
//! core's own migration), the same connection settings and durability, and no framework —
//! no writer thread, no savepoints, no row decoding beyond the columns it needs.
//!
//! The statements are copied from the core (`crates/jobstore/src/store/jobs.rs`,
//! `worker_calls.rs` and `rows.rs`), where they are private.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::common::{Level, Result, fail};

/// The core's schema, applied as the core's migration does.
const SCHEMA: [&str; 9] = [
    include_str!("../../crates/jobstore/migrations/0001_initial.sql"),
    include_str!("../../crates/jobstore/migrations/0002_dialect_list_indexes.sql"),
    include_str!("../../crates/jobstore/migrations/0003_fewer_write_indexes.sql"),
    include_str!("../../crates/jobstore/migrations/0004_batch_uploader.sql"),
    include_str!("../../crates/jobstore/migrations/0005_labelled_list_indexes.sql"),
    include_str!("../../crates/jobstore/migrations/0006_named_outputs.sql"),
    include_str!("../../crates/jobstore/migrations/0007_job_counts.sql"),
    include_str!("../../crates/jobstore/migrations/0008_filters_in_sort_indexes.sql"),
    include_str!("../../crates/jobstore/migrations/0009_failed_or_cancelled_sort_indexes.sql"),
];

/// `rows.rs`: the columns every job statement returns.
pub const JOB_COLUMNS: &str = "id, tenant, kind, queue, name, source, target, created_by, \
     dialect, state, priority, run_at, attempt, max_attempts, lease_owner, lease_token, \
     lease_expires_at, heartbeat_at, cancel_requested_at, unique_key, definition_id, restart_of, \
     restartable, payload, result, error, progress, phase, created_at, updated_at, started_at, \
     finished_at";

/// `jobs.rs`: one job.
pub const INSERT_JOB: &str = "INSERT INTO jobs (tenant, kind, queue, name, source, target, \
     created_by, dialect, state, priority, run_at, max_attempts, unique_key, definition_id, \
     restart_of, restartable, payload, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18) \
     RETURNING id";

/// `rows.rs`: one history row.
pub const INSERT_EVENT: &str = "INSERT INTO job_events (job_id, at, event, from_state, \
     to_state, actor, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// `worker_calls.rs`: `CLAIM_ONE_QUEUE`, followed by [`JOB_COLUMNS`].
pub const CLAIM_ONE_QUEUE: &str = "UPDATE jobs SET state = ?1, attempt = attempt + 1, \
     leases = leases + 1, lease_token = leases + 1, lease_owner = ?2, lease_expires_at = ?3, \
     heartbeat_at = NULL, started_at = ?4, updated_at = ?4 \
     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = ?5 AND run_at <= ?4 \
         AND (?6 IS NULL OR tenant = ?6) ORDER BY priority, run_at, id LIMIT ?7) \
     RETURNING ";

/// `worker_calls.rs`: `PreparedCompletion::run`, followed by [`JOB_COLUMNS`].
pub const COMPLETE: &str = "UPDATE jobs SET state = ?1, result = ?2, finished_at = ?3, \
     updated_at = ?3, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
     WHERE id = ?4 AND state = 'running' AND lease_token = ?5 AND lease_owner = ?6 \
         AND (?7 IS NULL OR tenant = ?7) \
     RETURNING ";

/// The tenant of an embedded store's default scope.
pub const TENANT: &str = "default";

/// Opens a connection with the core's settings (WAL, foreign keys, busy timeout, the
/// durability) and reads each back, as the core does.
pub fn open(path: &Path, level: Level) -> Result<Connection> {
    let conn = Connection::open(path)?;
    let journal: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !journal.eq_ignore_ascii_case("wal") {
        return Err(fail(format!("journal_mode stayed {journal}")));
    }
    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    // Several raw writers contend for the lock; let them wait rather than fail.
    conn.busy_timeout(Duration::from_secs(120))?;
    conn.pragma_update(None, "synchronous", level.pragma())?;
    let got: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    if got != level.pragma() {
        return Err(fail(format!("synchronous stayed {got}")));
    }
    // The core keeps temporary files (its savepoints' statement journals) in memory.
    conn.execute_batch("PRAGMA temp_store = MEMORY")?;
    conn.set_prepared_statement_cache_capacity(128);
    Ok(conn)
}

/// Creates the core's schema in a new file (every migration, and the core's `user_version`).
pub fn create(path: &Path, level: Level) -> Result<Connection> {
    let conn = open(path, level)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    if i64::try_from(SCHEMA.len())? != jobstore::SCHEMA_VERSION {
        return Err(fail(
            "raw.rs applies fewer migrations than the core has: add the new one",
        ));
    }
    for migration in SCHEMA {
        conn.execute_batch(migration)?;
    }
    conn.pragma_update(None, "user_version", jobstore::SCHEMA_VERSION)?;
    conn.execute_batch("COMMIT")?;
    Ok(conn)
}

/// Runs `body` in one `BEGIN IMMEDIATE` … `COMMIT` (rolled back on error).
pub fn in_transaction<T>(
    conn: &Connection,
    body: impl FnOnce(&Connection) -> Result<T>,
) -> Result<T> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match body(conn) {
        Ok(value) => {
            conn.execute_batch("COMMIT")?;
            Ok(value)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err)
        }
    }
}

/// The statements of `Store::enqueue` for one plain job (no idempotency key): insert the job
/// (answering its id) and its `create` event.
pub fn insert_job(conn: &Connection, now: i64, payload: &str) -> Result<i64> {
    let id: i64 = conn.prepare_cached(INSERT_JOB)?.query_row(
        params![
            TENANT,
            "bench",
            "default",
            "",
            "",
            "",
            "",
            "native",
            "queued",
            0,
            now,
            3,
            Option::<String>::None,
            Option::<String>::None,
            Option::<i64>::None,
            true,
            payload,
            now,
        ],
        |row| row.get(0),
    )?;
    insert_event(conn, id, now, "create", None, "queued", "", None)?;
    Ok(id)
}

/// `insert_event` of the core.
#[allow(clippy::too_many_arguments)]
pub fn insert_event(
    conn: &Connection,
    job: i64,
    at: i64,
    event: &str,
    from: Option<&str>,
    to: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<()> {
    conn.prepare_cached(INSERT_EVENT)?
        .execute(params![job, at, event, from, to, actor, detail])?;
    Ok(())
}

/// The claim of `Store::claim` for one queue: leases up to `max` jobs and writes a `claim`
/// event for each. Answers (id, lease token) of each.
pub fn claim(conn: &Connection, worker: &str, now: i64, max: u32) -> Result<Vec<(i64, i64)>> {
    let sql = format!("{CLAIM_ONE_QUEUE}{JOB_COLUMNS}");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![
        "running",
        worker,
        now + 60_000,
        now,
        "default",
        TENANT,
        max
    ])?;
    let mut jobs = Vec::new();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let attempt: i64 = row.get(12)?;
        let token: i64 = row.get(15)?;
        jobs.push((id, token, attempt));
    }
    drop(rows);
    drop(stmt);
    jobs.sort_unstable();
    let mut leased = Vec::with_capacity(jobs.len());
    for (id, token, attempt) in jobs {
        let detail = format!("attempt {attempt}, lease {token}");
        insert_event(
            conn,
            id,
            now,
            "claim",
            Some("queued"),
            "running",
            worker,
            Some(&detail),
        )?;
        leased.push((id, token));
    }
    Ok(leased)
}

/// The statements of `Store::complete` (and of each job of `Store::complete_many`): finish
/// the job under its lease with one `UPDATE … RETURNING`, and write the `complete` event.
pub fn complete(conn: &Connection, worker: &str, now: i64, id: i64, token: i64) -> Result<()> {
    let sql = format!("{COMPLETE}{JOB_COLUMNS}");
    conn.prepare_cached(&sql)?.query_row(
        params!["succeeded", "{\"ok\":true}", now, id, token, worker, TENANT],
        |row| row.get::<_, i64>(0),
    )?;
    insert_event(
        conn,
        id,
        now,
        "complete",
        Some("running"),
        "succeeded",
        worker,
        None,
    )?;
    Ok(())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
