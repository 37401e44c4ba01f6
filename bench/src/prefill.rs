//! The prefilled database of scenarios 3 and 4: N finished jobs (1M in a full run) with
//! varied kinds, queues, dialects, sources, targets, creators, definitions and times, written with
//! one `INSERT … SELECT` per 100k rows, then opened and closed once by the store (which runs
//! its own `PRAGMA optimize` on close, as a long-running daemon's file would have had).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::common::{Level, Record, Result, fresh_db, open_store, remove_db};
use crate::raw;

const INSERT: &str = "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i < ?2) \
    INSERT INTO jobs (tenant, kind, queue, name, source, target, created_by, dialect, state, \
        priority, run_at, attempt, max_attempts, leases, definition_id, payload, result, error, \
        created_at, updated_at, started_at, finished_at) \
    SELECT 'default', \
        CASE i % 8 WHEN 0 THEN 'export' WHEN 1 THEN 'import' WHEN 2 THEN 'ingest' \
            WHEN 3 THEN 'sync' WHEN 4 THEN 'report' WHEN 5 THEN 'cleanup' WHEN 6 THEN 'backup' \
            ELSE 'notify' END, \
        CASE i % 4 WHEN 0 THEN 'imports' WHEN 1 THEN 'exports' WHEN 2 THEN 'reports' \
            ELSE 'default' END, \
        printf('job %07d', (i * 7919) % ?3), printf('src-%03d', i % 200), \
        printf('tgt-%03d', (i * 31) % 150), printf('user-%02d', i % 50), \
        CASE i % 5 WHEN 0 THEN 'native' WHEN 1 THEN 'aep' WHEN 2 THEN 'c360' \
            WHEN 3 THEN 'datacloud' ELSE 'ocapi' END, \
        CASE WHEN i % 100 < 90 THEN 'succeeded' WHEN i % 100 < 96 THEN 'failed' \
            ELSE 'cancelled' END, \
        0, ?4 + i * 50, 1, 3, 1, \
        CASE WHEN i % 10 = 0 THEN printf('def-%02d', i % 37) END, \
        json_object('n', i), \
        CASE WHEN i % 100 < 90 THEN '{\"ok\":true}' END, \
        CASE WHEN i % 100 >= 90 AND i % 100 < 96 THEN 'boom' END, \
        ?4 + i * 50, ?4 + i * 50 + 1000 + (i % 7) * 100, \
        CASE WHEN i % 100 < 96 THEN ?4 + i * 50 + 500 END, \
        ?4 + i * 50 + 1000 + (i % 7) * 100 \
    FROM n";

/// Builds (or reuses) the prefilled template with `jobs` finished jobs in `dir`.
pub fn template(dir: &Path, jobs: u64) -> Result<PathBuf> {
    let path = dir.join(format!("template-{jobs}.db"));
    if path.exists() {
        return Ok(path);
    }
    let building = fresh_db(dir, &format!("template-{jobs}-building"))?;
    let start = Instant::now();
    // The store creates the schema exactly as it would for a user.
    drop(open_store(&building, Level::Normal)?);
    let conn = raw::open(&building, Level::Normal)?;
    let base = raw::now_ms() - i64::try_from(jobs).unwrap_or(0) * 50 - 3_600_000;
    let mut from = 1_u64;
    while from <= jobs {
        let to = (from + 99_999).min(jobs);
        raw::in_transaction(&conn, |c| {
            c.execute(
                INSERT,
                rusqlite::params![from as i64, to as i64, jobs as i64, base],
            )?;
            Ok(())
        })?;
        from = to + 1;
    }
    drop(conn);
    // Opened and closed by the store once, as a running daemon's file would have been.
    drop(open_store(&building, Level::Normal)?);
    let conn = raw::open(&building, Level::Normal)?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    let analyzed: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'",
        [],
        |row| row.get(0),
    )?;
    drop(conn);
    let bytes = std::fs::metadata(&building)?.len();
    std::fs::rename(&building, &path)?;
    remove_db(&building);
    Record::new("prefill", "jobstore", &format!("{jobs} finished jobs"))
        .timed(jobs, start.elapsed())
        .set("file_mb", (bytes as f64 / 1e6).round())
        .set("statistics", analyzed > 0)
        .emit();
    Ok(path)
}

/// Copies the template to a fresh database named `name` in `dir`.
pub fn copy_of(template: &Path, dir: &Path, name: &str) -> Result<PathBuf> {
    let path = fresh_db(dir, name)?;
    std::fs::copy(template, &path)?;
    Ok(path)
}
