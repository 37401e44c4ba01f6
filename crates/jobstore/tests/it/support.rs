//! Fixtures: a store on a fresh file in its own temporary folder, on a manual clock.

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
