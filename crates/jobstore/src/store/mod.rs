//! The store: the public, synchronous API over one SQLite file.
//!
//! Writes go to the single writer thread ([`crate::writer`]) as closures and are group
//! committed; reads use the r2d2 pool in short statements. Each submodule adds one family of
//! calls to [`Store`]: job lifecycle, worker calls, uploaded data, definitions, maintenance.
//!
//! **Invariant:** every write of `jobs.state` is asked of [`crate::state::transition`] first and
//! is a compare-and-set `UPDATE … WHERE id = ? AND state = ? [AND lease_token = ?]`, with its
//! `job_events` row in the same transaction.

/// `scope_tenants!()`: the tenants a maintenance statement covers, as the common table
/// `tenants(name)`: the
/// scope's tenant (`?2`), or with `?2` NULL every tenant, found by hopping along
/// `jobs_by_tenant_id` (one index seek per tenant, never a scan). Each tenant's rows are then
/// sought in a `(tenant, …)` index the transitions keep anyway. `CROSS JOIN` keeps the tenants
/// the outer loop and `INDEXED BY` names the index: left to itself SQLite built a temporary
/// index over the whole table, or walked the whole index. So rescue, purge and the activity
/// summaries need no index of their own for every claim and finish to pay for.
macro_rules! scope_tenants {
    () => {
        "WITH RECURSIVE tenants(name) AS ( \
         SELECT CASE WHEN ?2 IS NULL THEN (SELECT min(tenant) FROM jobs) ELSE ?2 END \
         UNION ALL \
         SELECT (SELECT min(tenant) FROM jobs WHERE tenant > tenants.name) FROM tenants \
         WHERE ?2 IS NULL AND tenants.name IS NOT NULL) "
    };
}

mod activity;
mod call;
mod data;
mod definitions;
mod jobs;
mod maintenance;
mod rows;
mod worker_calls;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub use activity::MAX_THROUGHPUT_BUCKETS;
pub use call::WriteCall;
pub use data::{
    BatchUpload, DataPosition, DataReader, MAX_OUTPUT_NAME_BYTES, UploadLimits, valid_output_name,
};
pub use jobs::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_CALL};
pub use worker_calls::MAX_CLAIM;

use crate::Result;
use crate::clock::{Clock, SystemClock};
use crate::db::{self, Checkpoints, ConnectionSettings, Durability, ReadPool};
use crate::model::Scope;
use crate::writer::Writer;

/// Settings of a store; [`StoreOptions::default`] suits most uses.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `full` (default) or `normal`; see [`Durability`].
    pub durability: Durability,
    /// How long one statement waits for another process's lock (`PRAGMA busy_timeout`).
    /// A replicator's checkpoint holds the write lock briefly; Litestream asks for 5 s.
    pub busy_timeout: Duration,
    /// Who checkpoints the WAL: the store (default) or a replicator; see [`Checkpoints`].
    pub checkpoints: Checkpoints,
    /// How long a write waits in all for the write lock before it answers [`Error::Busy`](crate::Error::Busy).
    pub lock_wait: Duration,
    /// Read connections in the pool.
    pub read_connections: u32,
    /// The largest data batch, in bytes.
    pub max_batch_bytes: u64,
    /// The most data batches one job may hold.
    pub max_batches_per_job: u32,
    /// The largest payload or result document, in bytes of JSON.
    pub max_document_bytes: usize,
    /// Lease length when a heartbeat does not name one.
    pub default_lease: Duration,
    /// First retry delay; it doubles with each attempt.
    pub retry_base: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// The clock (tests substitute a [`crate::ManualClock`]).
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            busy_timeout: Duration::from_secs(5),
            checkpoints: Checkpoints::Store,
            lock_wait: Duration::from_secs(30),
            read_connections: 8,
            max_batch_bytes: 150 * 1024 * 1024,
            max_batches_per_job: 100,
            max_document_bytes: 1024 * 1024,
            default_lease: Duration::from_secs(30),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(3600),
            clock: Arc::new(SystemClock),
        }
    }
}

/// Size of one stored data chunk. Batches are streamed in and out a chunk at a time.
pub(crate) const CHUNK_BYTES: usize = 256 * 1024;

/// Tells waiting workers that jobs may be ready (an enqueue, a close, a retry in this process).
#[derive(Default)]
pub(crate) struct JobSignal {
    generation: Mutex<u64>,
    changed: Condvar,
    listeners: Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>,
}

impl JobSignal {
    /// Wakes this process's waiting workers and the registered listeners.
    pub(crate) fn notify(&self) {
        self.wake_all();
        let listeners = self.listeners.lock().map(|l| l.clone()).unwrap_or_default();
        for listener in listeners {
            listener();
        }
    }

    /// Wakes this process's waiting workers only (a worker shutting down uses it).
    pub(crate) fn wake_all(&self) {
        if let Ok(mut generation) = self.generation.lock() {
            *generation = generation.wrapping_add(1);
        }
        self.changed.notify_all();
    }

    pub(crate) fn generation(&self) -> u64 {
        self.generation.lock().map(|g| *g).unwrap_or(0)
    }

    /// Waits until the generation moves past `seen` or `timeout` passes.
    pub(crate) fn wait_past(&self, seen: u64, timeout: Duration) {
        let Ok(guard) = self.generation.lock() else {
            return;
        };
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |generation| *generation == seen);
    }
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    pool: ReadPool,
    options: StoreOptions,
    signal: Arc<JobSignal>,
    /// Incomplete batches (job, batch) whose delete failed; see `reclaim_abandoned_batches`.
    abandoned_batches: std::sync::Mutex<Vec<(i64, i64)>>,
}

/// A handle on one job store file. Cheap to clone; clones share the writer and the pool.
///
/// A handle acts within one [`Scope`]: [`Store::open`] gives the default tenant's scope, as an
/// embedded program needs; [`Store::with_scope`] gives another tenant's or every tenant's.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    scope: Scope,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .field("scope", &self.scope)
            .finish()
    }
}

impl Store {
    /// Opens (creating or migrating) the store at `path` with default options.
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`](crate::Error::SchemaTooNew) for a file written by a newer build, [`Error::SettingNotApplied`](crate::Error::SettingNotApplied)
    /// when SQLite refused a setting, [`Error::Sqlite`](crate::Error::Sqlite) for a file that is not a database.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        Store::open_with(path, StoreOptions::default())
    }

    /// Opens the store at `path` with `options`.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let settings = ConnectionSettings {
            durability: options.durability,
            busy_timeout: options.busy_timeout,
            checkpoints: options.checkpoints,
        };
        let conn = db::open_writer(&path, settings)?;
        let pool = db::open_read_pool(&path, settings, options.read_connections)?;
        let writer = Writer::start(
            conn,
            options.lock_wait,
            options.checkpoints == Checkpoints::Store,
        )?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                writer,
                pool,
                options,
                signal: Arc::default(),
                abandoned_batches: std::sync::Mutex::default(),
            }),
            scope: Scope::default(),
        })
    }

    /// The same store acting within `scope`.
    pub fn with_scope(&self, scope: Scope) -> Store {
        Store {
            inner: Arc::clone(&self.inner),
            scope,
        }
    }

    /// The scope this handle acts within.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The store's clock reading, in ms since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.inner.options.clock.now_ms()
    }

    /// Calls `listener` after every commit that may have made a job claimable in this process
    /// (the daemon wakes its long-polling claims with it). It must return quickly.
    pub fn on_jobs_available(&self, listener: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.inner.signal.listeners.lock() {
            listeners.push(Arc::new(listener));
        }
    }

    /// How many writes the writer ran and in how many commits (group commit at work).
    pub fn writer_stats(&self) -> crate::WriterStats {
        self.inner.writer.stats()
    }

    pub(crate) fn signal(&self) -> &Arc<JobSignal> {
        &self.inner.signal
    }

    fn abandoned_batches(&self) -> std::sync::MutexGuard<'_, Vec<(i64, i64)>> {
        // A list of ids stays consistent even if a holder panicked.
        self.inner
            .abandoned_batches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tenant_filter(&self) -> Option<String> {
        self.scope.tenant().map(str::to_owned)
    }

    /// Runs `f` on the writer, in the next group commit.
    fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.writer.write(f)
    }

    /// Runs `f` on a pooled read connection.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.inner.pool.get()?;
        f(&conn)
    }
}
