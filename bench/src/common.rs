//! What every scenario shares: the result record printed as one JSON line, latency
//! percentiles, durability levels and the settings read back from a database file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

/// A boxed error: the benchmark stops on the first failure and says where.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The result type of every scenario.
pub type Result<T> = std::result::Result<T, BoxError>;

/// Builds an error from a message.
pub fn fail(message: impl Into<String>) -> BoxError {
    message.into().into()
}

/// One measured figure: printed as one JSON line, read back by the report.
#[derive(Debug, Clone)]
pub struct Record {
    fields: Map<String, Value>,
}

impl Record {
    /// A record of `scenario` for `store`, in case `case`.
    pub fn new(scenario: &str, store: &str, case: &str) -> Record {
        let mut fields = Map::new();
        fields.insert("scenario".into(), json!(scenario));
        fields.insert("store".into(), json!(store));
        fields.insert("case".into(), json!(case));
        Record { fields }
    }

    /// Sets one field.
    pub fn set(mut self, key: &str, value: impl Into<Value>) -> Record {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// Sets the count, the elapsed time and the rate (`n` per second).
    pub fn timed(self, n: u64, elapsed: Duration) -> Record {
        let secs = elapsed.as_secs_f64();
        let rate = if secs > 0.0 { n as f64 / secs } else { 0.0 };
        self.set("n", n)
            .set("secs", round3(secs))
            .set("rate", rate.round())
    }

    /// Sets p50 and p99 (µs) of `latencies`.
    pub fn latencies(self, latencies: &mut [u64]) -> Record {
        let (p50, p99) = percentiles(latencies);
        self.set("p50_us", p50).set("p99_us", p99)
    }

    /// Prints the record as one JSON line on stdout (the run script collects them) and a
    /// short human line on stderr.
    pub fn emit(self) {
        let value = Value::Object(self.fields);
        eprintln!("  {}", summary(&value));
        println!("{value}");
    }
}

fn summary(value: &Value) -> String {
    let text = |key: &str| value.get(key).and_then(Value::as_str).unwrap_or("");
    let mut out = format!(
        "{} | {} | {}",
        text("scenario"),
        text("store"),
        text("case")
    );
    for key in ["durability", "workers", "n", "rate", "p50_us", "p99_us"] {
        if let Some(v) = value.get(key) {
            out.push_str(&format!(" | {key} {v}"));
        }
    }
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// p50 and p99 of `values` (sorted in place); zeros when empty.
pub fn percentiles(values: &mut [u64]) -> (u64, u64) {
    if values.is_empty() {
        return (0, 0);
    }
    values.sort_unstable();
    let at = |q: f64| {
        let index = ((values.len() as f64 - 1.0) * q).round() as usize;
        values[index.min(values.len() - 1)]
    };
    (at(0.50), at(0.99))
}

/// Microseconds elapsed since `start`.
pub fn micros_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A durability level as the benchmark names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `synchronous=FULL`.
    Full,
    /// `synchronous=NORMAL`.
    Normal,
}

impl Level {
    /// `full` or `normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Full => "full",
            Level::Normal => "normal",
        }
    }

    /// The core's durability.
    pub fn durability(self) -> jobstore::Durability {
        match self {
            Level::Full => jobstore::Durability::Full,
            Level::Normal => jobstore::Durability::Normal,
        }
    }

    /// `PRAGMA synchronous` value.
    pub fn pragma(self) -> i64 {
        match self {
            Level::Full => 2,
            Level::Normal => 1,
        }
    }

    /// Parses `full` or `normal`.
    pub fn parse(text: &str) -> Result<Level> {
        match text {
            "full" => Ok(Level::Full),
            "normal" => Ok(Level::Normal),
            other => Err(fail(format!("unknown durability `{other}`"))),
        }
    }
}

/// Opens jobstore at `path` with the given durability and otherwise default options.
pub fn open_store(path: &Path, level: Level) -> Result<jobstore::Store> {
    let options = jobstore::StoreOptions {
        durability: level.durability(),
        ..jobstore::StoreOptions::default()
    };
    Ok(jobstore::Store::open_with(path, options)?)
}

/// A database path in `dir` that does not exist yet (removing leftovers of an earlier run).
pub fn fresh_db(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", path.display()));
        if file.exists() {
            std::fs::remove_file(&file)?;
        }
    }
    Ok(path)
}

/// Deletes a database file with its WAL and shared-memory files.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Reads back, with a plain connection on the file, its journal mode (kept in the file) and
/// the `synchronous` level a new connection gets (a per-connection setting: the level a store
/// ran with is the one its own connections set, reported beside it).
pub fn read_back(path: &Path) -> Result<(String, i64)> {
    let conn = rusqlite::Connection::open(path)?;
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    Ok((journal, synchronous))
}

/// The name of a `PRAGMA synchronous` value.
pub fn synchronous_name(level: i64) -> &'static str {
    match level {
        0 => "off",
        1 => "normal",
        2 => "full",
        3 => "extra",
        _ => "unknown",
    }
}

/// Emits the settings record of one store's database file.
pub fn emit_settings(store: &str, path: &Path, as_run: &str, how: &str) -> Result<()> {
    let (journal, synchronous) = read_back(path)?;
    Record::new("settings", store, "database file after the run")
        .set("journal_mode", journal)
        .set("synchronous_new_connection", synchronous_name(synchronous))
        .set("synchronous_as_run", as_run)
        .set("how", how)
        .emit();
    Ok(())
}
