//! The fixture of the core's behaviour tests, on PostgreSQL: a store on the PostgreSQL driver
//! over a fresh database of its own (dropped with the fixture), on a manual clock, with the
//! same fields and table readers as the SQLite fixture (`crates/jobstore/tests/it/support.rs`).

use std::sync::Arc;

use jobstore::{ManualClock, Store, StoreOptions};
use jobstore_postgres::{PostgresDriver, PostgresOptions};
use postgres::SimpleQueryMessage;

use crate::cluster;

/// The start of every manual clock: 2026-01-01T00:00:00Z.
pub(crate) const T0: i64 = 1_767_225_600_000;

pub(crate) struct Fixture {
    /// A folder of the test's own (for files a test writes).
    pub dir: tempfile::TempDir,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    url: String,
    _database: Database,
}

/// The fixture's database, dropped once the last session of its store has ended (a test may
/// keep the store after the fixture is gone).
struct Database(String);

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
        let url = cluster::fresh_database();
        // The production default of 4 writers: the tests may count on what the driver promises
        // (the writes of one job in the order they were submitted, as a dropped upload's
        // discard, then the next upload of the job), and on nothing more (writes of different
        // jobs run in any order).
        let pg = PostgresOptions {
            read_connections: 4,
            ..PostgresOptions::default()
        };
        let driver = PostgresDriver::connect(&url, &pg).expect("connect the driver");
        let store = Store::with_driver(Arc::new(driver), options);
        Fixture {
            dir,
            store,
            clock,
            url: url.clone(),
            _database: Database(url),
        }
    }

    /// The rows `sql` answers, every value as text (`None` for NULL); `$1`, `$2`, … are
    /// `params`, written into the statement as integer literals.
    pub(crate) fn rows(&self, sql: &str, params: &[i64]) -> Vec<Vec<Option<String>>> {
        let mut text = sql.to_owned();
        for (index, value) in params.iter().enumerate().rev() {
            text = text.replace(&format!("${}", index + 1), &format!("({value})::bigint"));
        }
        let mut client = cluster::connect(&self.url);
        client
            .simple_query(&text)
            .unwrap_or_else(|err| panic!("{text}: {err}"))
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
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
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM jobs_id_seq",
            &[],
        )
    }

    /// Every row of every job table, as text: compared before and after a refused call.
    pub(crate) fn snapshot(&self) -> String {
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
            "job_counts",
        ] {
            out.push_str(table);
            out.push('\n');
            for row in self.rows(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[]) {
                out.push_str(row[0].as_deref().unwrap_or_default());
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let Some((base, name)) = self.0.rsplit_once('/') else {
            return;
        };
        let (admin, name) = (format!("{base}/postgres"), name.to_owned());
        // DROP DATABASE waits for no one: it fails while the store's sessions last, so it is
        // tried again until they are gone (what is left at exit goes with the cluster).
        std::thread::spawn(move || {
            for _ in 0..300 {
                let dropped = postgres::Client::connect(&admin, postgres::NoTls)
                    .and_then(|mut c| c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")));
                if dropped.is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
    }
}
