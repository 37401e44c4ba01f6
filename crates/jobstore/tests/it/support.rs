//! Fixtures: a store on a fresh file in its own temporary folder, on a manual clock.
//!
//! The driver-agnostic modules of this suite run on PostgreSQL too
//! (`crates/jobstore-postgres/tests/core`), with a fixture of the same shape there. They
//! read the tables only through [`Fixture::rows`], [`Fixture::count`], [`Fixture::snapshot`]
//! and [`Fixture::id_high_water`], in SQL both engines take (`$1` placeholders, no engine's
//! own functions); what inspects SQLite itself (`sql()`, the file) is in `sqlite_only`.

use std::path::PathBuf;
use std::sync::Arc;

use jobstore::{ManualClock, Store, StoreOptions};
use rusqlite::Connection;

/// The start of every manual clock: 2026-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_767_225_600_000;

pub(crate) struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub clock: Arc<ManualClock>,
}

impl Fixture {
    pub(crate) fn new() -> Fixture {
        Fixture::with(|_| {})
    }

    pub(crate) fn with(configure: impl FnOnce(&mut StoreOptions)) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let clock = Arc::new(ManualClock::new(T0));
        let mut options = StoreOptions {
            clock: clock.clone(),
            ..StoreOptions::default()
        };
        configure(&mut options);
        let store = Store::open_with(dir.path().join("jobs.db"), options).expect("open store");
        Fixture { dir, store, clock }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.dir.path().join("jobs.db")
    }

    /// A separate plain connection to the file, as `sqlite3` would open it.
    pub(crate) fn sql(&self) -> Connection {
        Connection::open(self.path()).expect("open raw connection")
    }

    /// The rows `sql` answers, every value as text (`None` for NULL); `$1`, `$2`, … are
    /// `params` (SQLite numbers `$n` parameters in order of appearance).
    pub(crate) fn rows(&self, sql: &str, params: &[i64]) -> Vec<Vec<Option<String>>> {
        let conn = self.sql();
        let mut stmt = conn.prepare(sql).expect("prepare");
        let columns = stmt.column_count();
        stmt.query_map(rusqlite::params_from_iter(params.iter()), |row| {
            (0..columns)
                .map(|i| {
                    Ok(match row.get::<_, rusqlite::types::Value>(i)? {
                        rusqlite::types::Value::Null => None,
                        rusqlite::types::Value::Integer(n) => Some(n.to_string()),
                        rusqlite::types::Value::Real(x) => Some(x.to_string()),
                        rusqlite::types::Value::Text(t) => Some(t),
                        rusqlite::types::Value::Blob(b) => Some(format!("{b:?}")),
                    })
                })
                .collect()
        })
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
    }

    /// The integer in the first column of the first row `sql` answers.
    pub(crate) fn count(&self, sql: &str, params: &[i64]) -> i64 {
        let rows = self.rows(sql, params);
        rows.first()
            .and_then(|row| row.first().cloned().flatten())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no integer from {sql}: {rows:?}"))
    }

    /// The highest job id ever handed out (ids are never reused).
    pub(crate) fn id_high_water(&self) -> i64 {
        self.count(
            "SELECT ifnull(max(seq), 0) FROM sqlite_sequence WHERE name = 'jobs'",
            &[],
        )
    }

    /// Every row of every job table, as text: compared before and after a refused call.
    pub(crate) fn snapshot(&self) -> String {
        let conn = self.sql();
        let mut out = String::new();
        for table in [
            "jobs",
            "job_events",
            "job_steps",
            "job_data_batches",
            "job_data_chunks",
            "job_logs",
            "idempotency_keys",
            "job_definitions",
            "job_definition_steps",
        ] {
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))
                .expect("prepare snapshot");
            let columns = stmt.column_count();
            let rows = stmt
                .query_map([], |row| {
                    let mut line = Vec::new();
                    for i in 0..columns {
                        let value: rusqlite::types::Value = row.get(i)?;
                        line.push(format!("{value:?}"));
                    }
                    Ok(line.join("|"))
                })
                .expect("query snapshot");
            out.push_str(table);
            out.push('\n');
            for row in rows {
                out.push_str(&row.expect("row"));
                out.push('\n');
            }
        }
        out
    }
}
