//! The store: the public, synchronous API, one code path over every engine.
//!
//! Each call checks its input, then runs as a write (a closure over the driver's typed
//! operations, [`crate::driver::WriteTx`], run in the driver's transaction: with SQLite, on
//! the single writer thread, group committed) or a read (one short call on a read connection,
//! [`crate::driver::Reader`]). Each submodule adds one family of calls to [`Store`]: job
//! lifecycle, worker calls, uploaded data, definitions, maintenance.
//!
//! **Invariant:** every write of `jobs.state` is asked of [`crate::state::transition`] first and
//! is a compare-and-set on the state read (`WHERE id = ? AND state = ? [AND lease_token = ?]`
//! in the driver), with its event row in the same transaction.

mod activity;
mod call;
mod data;
mod definitions;
mod jobs;
mod maintenance;
mod rows;
mod worker_calls;

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

pub use activity::MAX_THROUGHPUT_BUCKETS;
pub use call::WriteCall;
pub use data::{
    BatchUpload, DataPosition, DataReader, MAX_OUTPUT_NAME_BYTES, UploadLimits, valid_output_name,
};
pub use jobs::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_CALL};
pub use worker_calls::MAX_CLAIM;

use crate::clock::{Clock, SystemClock};
use crate::driver::{Driver, Op, Reader, Waker, WriteTx};
use crate::model::Scope;
use crate::sqlite::{Checkpoints, Durability, SqliteDriver};
use crate::{Error, Result};

/// Settings of a store; [`StoreOptions::default`] suits most uses. The first five are the
/// SQLite driver's ([`Store::open_with`]); the rest hold for every engine.
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
    /// Lease length for a heartbeat that names none when the job's own cannot be read (a
    /// claim always records it: such a heartbeat keeps the length the job holds).
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

/// Tells waiting workers that jobs may be ready (an enqueue, a close, a retry in this process;
/// or, through the driver's [`Waker`](crate::driver::Waker), a commit of another process on a
/// shared database).
pub(crate) struct JobSignal {
    generation: Mutex<u64>,
    changed: Condvar,
    listeners: Mutex<Vec<Arc<dyn Fn() + Send + Sync>>>,
    /// The driver, told of this process's own commits that may have made jobs claimable so
    /// that it can tell other processes. Weak: the driver holds the signal (through its
    /// waker) and the store holds the driver.
    driver: Weak<dyn Driver>,
}

impl JobSignal {
    fn new(driver: Weak<dyn Driver>) -> JobSignal {
        JobSignal {
            generation: Mutex::new(0),
            changed: Condvar::new(),
            listeners: Mutex::default(),
            driver,
        }
    }

    /// After a commit of this process that may have made jobs claimable: wakes this
    /// process's waiting workers and the registered listeners, and tells the driver (which
    /// tells the other processes on the same database, if any).
    pub(crate) fn notify(&self) {
        self.wake_listeners();
        if let Some(driver) = self.driver.upgrade() {
            driver.jobs_available();
        }
    }

    /// Wakes this process's waiting workers and the registered listeners (jobs made
    /// claimable by another process: the driver's waker).
    pub(crate) fn wake_listeners(&self) {
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
    driver: Arc<dyn Driver>,
    options: StoreOptions,
    signal: Arc<JobSignal>,
    /// Incomplete batches (job, batch) whose delete failed; see `reclaim_abandoned_batches`.
    abandoned_batches: std::sync::Mutex<Vec<(i64, i64)>>,
}

/// A handle on one job store. Cheap to clone; clones share the driver (with SQLite: the
/// writer and the pool).
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
            .field("driver", &self.inner.driver.describe())
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
        let driver = SqliteDriver::open(path, &options)?;
        Ok(Store::with_driver(Arc::new(driver), options))
    }

    /// A store over `driver`, another engine's (the SQLite driver is opened by
    /// [`Store::open_with`]); the options' engine settings are the driver's business, the
    /// rest (limits, lease, retries, clock) hold here.
    ///
    /// The driver gets the store's [`Waker`] ([`Driver::set_waker`]): a driver whose database
    /// other processes share wakes the store's waiting claims with it when they made jobs
    /// claimable.
    pub fn with_driver(driver: Arc<dyn Driver>, options: StoreOptions) -> Store {
        let signal = Arc::new(JobSignal::new(Arc::downgrade(&driver)));
        driver.set_waker(Waker::new(Arc::downgrade(&signal)));
        Store {
            inner: Arc::new(Inner {
                driver,
                options,
                signal,
                abandoned_batches: std::sync::Mutex::default(),
            }),
            scope: Scope::default(),
        }
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

    /// The database file (empty for an engine that keeps none).
    pub fn path(&self) -> &Path {
        self.inner.driver.path().unwrap_or(Path::new(""))
    }

    /// The driver under the store.
    pub fn driver(&self) -> &Arc<dyn Driver> {
        &self.inner.driver
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &StoreOptions {
        &self.inner.options
    }

    /// The store's clock reading, in ms since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.inner.options.clock.now_ms()
    }

    /// Calls `listener` after every commit that may have made a job claimable in this process,
    /// and when the driver tells of such a commit by another process sharing the database
    /// (the daemon wakes its long-polling claims with it). It must return quickly.
    pub fn on_jobs_available(&self, listener: impl Fn() + Send + Sync + 'static) {
        if let Ok(mut listeners) = self.inner.signal.listeners.lock() {
            listeners.push(Arc::new(listener));
        }
    }

    /// How many writes the writer ran and in how many commits (group commit at work).
    pub fn writer_stats(&self) -> crate::WriterStats {
        self.inner.driver.writer_stats()
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

    /// Runs `f` in the driver's next transaction and answers once it committed.
    fn write<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut dyn WriteTx) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.write_on(None, f)
    }

    /// [`Store::write`] of a write that concerns job `job`: the driver runs the writes of one
    /// job in the order they were submitted ([`crate::driver::WriteOp::job`]).
    fn write_on<T, F>(&self, job: Option<i64>, f: F) -> Result<T>
    where
        F: FnOnce(&mut dyn WriteTx) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(job, f, move |result| {
            // The caller may have given up waiting; nothing to do then.
            let _ = reply.send(result);
        });
        answer.recv().map_err(|_| Error::Closed)?
    }

    /// Queues `f` (a write of `job`, if it concerns one) for the driver's next transaction
    /// and returns at once; `done` gets what [`Store::write`] would have answered, after the
    /// commit.
    fn submit<T, F, R>(&self, job: Option<i64>, f: F, done: R)
    where
        F: FnOnce(&mut dyn WriteTx) -> Result<T> + Send + 'static,
        T: Send + 'static,
        R: FnOnce(Result<T>) + Send + 'static,
    {
        self.inner.driver.submit(Box::new(Op {
            job,
            write: f,
            reply: done,
        }));
    }

    /// Runs `f` on a read connection.
    fn read<T>(&self, f: impl FnOnce(&mut dyn Reader) -> Result<T>) -> Result<T> {
        let mut reader = self.inner.driver.reader()?;
        f(&mut *reader)
    }
}
