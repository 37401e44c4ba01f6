//! Opening the database: the settings every connection gets (and reads back), the read pool,
//! and the migrations that bring a file to the current schema.
//!
//! This module knows nothing of jobs. It never repairs or deletes a file that fails to open.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::{Error, Result};

/// How hard a commit works to survive a power loss (`PRAGMA synchronous`).
///
/// Both levels survive a crash of the process: a commit that returned is in the WAL file, and
/// the operating system writes it out. They differ when the machine loses power or the kernel
/// crashes before the data reached the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced on every commit. A commit that returned survives
    /// power loss. The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: the WAL is fsynced only at checkpoints. A power loss may roll the
    /// database back to an earlier consistent state, losing the last commits (acknowledged
    /// jobs among them); it is never corrupted.
    Normal,
}

impl Durability {
    fn pragma_value(self) -> i64 {
        match self {
            Durability::Full => 2,
            Durability::Normal => 1,
        }
    }

    /// The name used in configuration files: `full` or `normal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }
}

impl std::str::FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(Error::invalid(
                "durability",
                format!("unknown level `{other}`; valid levels: full, normal"),
            )),
        }
    }
}

/// Who checkpoints the WAL: copies its frames back into the database file and restarts or
/// truncates it.
///
/// A replicator that follows the WAL (Litestream) must be the only one to do so: it copies
/// each frame to the replica before it lets a checkpoint move past it. A checkpoint it did not
/// make loses its place in the WAL and costs a full snapshot of the database; a `TRUNCATE` or
/// `RESTART` checkpoint also waits, holding the write lock, for the replicator's read
/// transaction to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Checkpoints {
    /// The store checkpoints: SQLite's automatic passive checkpoint once the WAL holds
    /// [`AUTOCHECKPOINT_PAGES`] pages, a passive checkpoint when the store closes, SQLite's own
    /// checkpoint when the last connection to the file closes, and `Store::checkpoint` on
    /// demand. The default.
    #[default]
    Store,
    /// Another process checkpoints (Litestream): every connection runs with
    /// `wal_autocheckpoint = 0` and `SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`, the store does not
    /// checkpoint when it closes, and `Store::checkpoint` refuses. The WAL grows until that
    /// process checkpoints it.
    External,
}

/// SQLite's automatic checkpoint threshold, in pages, under [`Checkpoints::Store`] (SQLite's
/// default).
pub const AUTOCHECKPOINT_PAGES: i64 = 1000;

impl Checkpoints {
    fn autocheckpoint_pages(self) -> i64 {
        match self {
            Checkpoints::Store => AUTOCHECKPOINT_PAGES,
            Checkpoints::External => 0,
        }
    }
}

/// The settings applied to every connection, the writer's and each pooled reader's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionSettings {
    pub durability: Durability,
    pub busy_timeout: Duration,
    pub checkpoints: Checkpoints,
}

/// Applies the settings to one connection and reads each back; refuses the connection when a
/// setting did not take (SQLite ignores a misspelled or unsupported pragma silently).
pub(crate) fn init_connection(conn: &Connection, settings: ConnectionSettings) -> Result<()> {
    let journal: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    expect_setting("journal_mode", "wal", &journal.to_ascii_lowercase())?;

    conn.execute_batch("PRAGMA foreign_keys = ON")?;
    let foreign_keys: i64 = conn.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
    expect_setting("foreign_keys", "1", &foreign_keys.to_string())?;

    let wanted_ms = i64::try_from(settings.busy_timeout.as_millis()).unwrap_or(i64::MAX);
    conn.busy_timeout(settings.busy_timeout)?;
    let busy: i64 = conn.query_row("PRAGMA busy_timeout", [], |row| row.get(0))?;
    expect_setting("busy_timeout", &wanted_ms.to_string(), &busy.to_string())?;

    let level = settings.durability.pragma_value();
    conn.pragma_update(None, "synchronous", level)?;
    let got: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    expect_setting("synchronous", &level.to_string(), &got.to_string())?;

    // Each write runs in a SAVEPOINT, whose statement journal saves every page the write
    // first touches. In a file (the default past 64 KiB, which one enqueue reaches through
    // its indexes) that is a pwrite per page: most of the writer's system time. In memory
    // it is a copy; nothing durable depends on it (the WAL holds the transaction).
    conn.execute_batch("PRAGMA temp_store = MEMORY")?;
    let temp_store: i64 = conn.query_row("PRAGMA temp_store", [], |row| row.get(0))?;
    expect_setting("temp_store", "2", &temp_store.to_string())?;

    let pages = settings.checkpoints.autocheckpoint_pages();
    conn.pragma_update(None, "wal_autocheckpoint", pages)?;
    let got: i64 = conn.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))?;
    expect_setting("wal_autocheckpoint", &pages.to_string(), &got.to_string())?;
    // Closing the last connection to a file checkpoints it and deletes the WAL, unless told not to.
    let no_checkpoint_on_close = settings.checkpoints == Checkpoints::External;
    let got = conn.set_db_config(
        DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        no_checkpoint_on_close,
    )?;
    expect_setting(
        "no_ckpt_on_close",
        &no_checkpoint_on_close.to_string(),
        &got.to_string(),
    )?;

    // Statements are prepared from a small fixed set of texts; keep them all.
    conn.set_prepared_statement_cache_capacity(128);
    Ok(())
}

fn expect_setting(setting: &'static str, wanted: &str, got: &str) -> Result<()> {
    if wanted == got {
        Ok(())
    } else {
        Err(Error::SettingNotApplied {
            setting,
            wanted: wanted.to_owned(),
            got: got.to_owned(),
        })
    }
}

/// Opens the single write connection, applies the settings and migrates the file.
pub(crate) fn open_writer(path: &Path, settings: ConnectionSettings) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    init_connection(&conn, settings)?;
    migrate(&conn)?;
    Ok(conn)
}

/// The pool of read connections. Each is initialised like the writer.
///
/// **Invariant:** once a `ReadPool` is dropped, none of its connections is open. r2d2 opens
/// connections on threads of its own, and a thread opening one holds the pool while it does:
/// when the store let go of the pool meanwhile, the pool, and the file with it, were closed
/// on that thread a moment after the store's drop returned (its WAL not yet checkpointed and
/// removed). The pool counts its open connections, and its drop waits for the last.
pub(crate) struct ReadPool {
    // Fields drop in order: the pool first, then the wait for its last connection.
    pool: r2d2::Pool<ReadManager>,
    _closing: WaitClosed,
}

/// How long a dropped pool waits for a connection still being opened on r2d2's thread.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

impl ReadPool {
    /// A connection of the pool, waiting for one while all are busy.
    pub(crate) fn get(&self) -> Result<ReadConnection> {
        Ok(ReadConnection(self.pool.get()?))
    }
}

/// Waits, when dropped, for every connection of its pool to be closed.
struct WaitClosed(Arc<OpenConnections>);

impl Drop for WaitClosed {
    fn drop(&mut self) {
        if !self.0.wait_none(CLOSE_WAIT) {
            log::warn!("a read connection was still open {CLOSE_WAIT:?} after its store closed");
        }
    }
}

/// A read connection checked out of the pool.
pub(crate) struct ReadConnection(r2d2::PooledConnection<ReadManager>);

impl std::ops::Deref for ReadConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.0
    }
}

/// The count of a pool's open connections.
#[derive(Default)]
struct OpenConnections {
    count: Mutex<usize>,
    changed: Condvar,
}

impl OpenConnections {
    fn add(&self, delta: isize) {
        let mut count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        *count = count.saturating_add_signed(delta);
        self.changed.notify_all();
    }

    /// Waits up to `limit` for the count to reach zero; whether it did.
    fn wait_none(&self, limit: Duration) -> bool {
        let count = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, _) = self
            .changed
            .wait_timeout_while(count, limit, |count| *count > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *count == 0
    }
}

/// A connection of the pool, counted while open. Fields drop in order: the connection is
/// closed before the count goes down.
struct CountedConnection {
    conn: Connection,
    _counted: Counted,
}

impl std::ops::Deref for CountedConnection {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// One open connection in its pool's count, taken out when dropped.
struct Counted(Arc<OpenConnections>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

/// Opens the pool's connections, as `SqliteConnectionManager` does, and counts them.
struct ReadManager {
    inner: SqliteConnectionManager,
    open: Arc<OpenConnections>,
}

impl r2d2::ManageConnection for ReadManager {
    type Connection = CountedConnection;
    type Error = rusqlite::Error;

    fn connect(&self) -> rusqlite::Result<CountedConnection> {
        let conn = r2d2::ManageConnection::connect(&self.inner)?;
        self.open.add(1);
        Ok(CountedConnection {
            conn,
            _counted: Counted(Arc::clone(&self.open)),
        })
    }

    fn is_valid(&self, conn: &mut CountedConnection) -> rusqlite::Result<()> {
        self.inner.is_valid(&mut conn.conn)
    }

    fn has_broken(&self, conn: &mut CountedConnection) -> bool {
        self.inner.has_broken(&mut conn.conn)
    }
}

/// Opens the pool of `size` read connections to the file at `path`, each set up like the
/// writer's.
pub(crate) fn open_read_pool(
    path: &Path,
    settings: ConnectionSettings,
    size: u32,
) -> Result<ReadPool> {
    let inner = SqliteConnectionManager::file(path)
        .with_flags(
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_URI,
        )
        .with_init(move |conn| {
            init_connection(conn, settings).map_err(|err| match err {
                Error::Sqlite(inner) => inner,
                other => rusqlite::Error::ToSqlConversionFailure(Box::new(other)),
            })
        });
    let open = Arc::new(OpenConnections::default());
    let manager = ReadManager {
        inner,
        open: Arc::clone(&open),
    };
    let pool = r2d2::Pool::builder()
        .max_size(size.max(1))
        .min_idle(Some(1))
        // The writer already proved the settings take, so a failing init here is a real fault:
        // fail within seconds rather than r2d2's default 30 s.
        .connection_timeout(Duration::from_secs(10))
        .build(manager)?;
    Ok(ReadPool {
        pool,
        _closing: WaitClosed(open),
    })
}

/// One migration step: the schema version it produces and its SQL.
struct Migration {
    version: i64,
    sql: &'static str,
}

/// Every migration, in order. Migration `n` turns version `n - 1` into version `n`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../migrations/0002_dialect_list_indexes.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../migrations/0003_fewer_write_indexes.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../../migrations/0004_batch_uploader.sql"),
    },
    Migration {
        version: 5,
        sql: include_str!("../../migrations/0005_labelled_list_indexes.sql"),
    },
    Migration {
        version: 6,
        sql: include_str!("../../migrations/0006_named_outputs.sql"),
    },
    Migration {
        version: 7,
        sql: include_str!("../../migrations/0007_job_counts.sql"),
    },
    Migration {
        version: 8,
        sql: include_str!("../../migrations/0008_filters_in_sort_indexes.sql"),
    },
    Migration {
        version: 9,
        sql: include_str!("../../migrations/0009_failed_or_cancelled_sort_indexes.sql"),
    },
];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 9;

/// Brings the database to [`SCHEMA_VERSION`]. Each step runs with its `user_version` bump in
/// one `BEGIN IMMEDIATE` transaction, so two processes opening one file never both migrate it.
fn migrate(conn: &Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Applies the migrations up to `target` (tests use this to build every earlier version).
#[doc(hidden)]
pub fn migrate_to(conn: &Connection, target: i64) -> Result<()> {
    loop {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let step = (|| {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            if version > SCHEMA_VERSION {
                return Err(Error::SchemaTooNew {
                    found: version,
                    supported: SCHEMA_VERSION,
                });
            }
            let Some(next) = MIGRATIONS
                .iter()
                .find(|m| m.version == version + 1 && m.version <= target)
            else {
                return Ok(false);
            };
            conn.execute_batch(next.sql)?;
            conn.pragma_update(None, "user_version", next.version)?;
            log::info!("migrated database schema to version {}", next.version);
            Ok(true)
        })();
        match step {
            Ok(more) => {
                conn.execute_batch("COMMIT")?;
                if !more {
                    return Ok(());
                }
            }
            Err(err) => {
                if !conn.is_autocommit() {
                    conn.execute_batch("ROLLBACK")?;
                }
                return Err(err);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_after_another() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }

    #[test]
    fn durability_names_round_trip() {
        for level in [Durability::Full, Durability::Normal] {
            assert_eq!(level.as_str().parse::<Durability>().ok(), Some(level));
        }
        assert!("FULL!".parse::<Durability>().is_err());
    }
}
