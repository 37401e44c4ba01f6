//! The storage seam: what the store asks of a database engine, as typed operations.
//!
//! The store's logic (`store/`: validation, the transition table, fencing, backoff,
//! idempotency, tenancy, list whitelists) is one code path for every engine. It decides; a
//! driver carries out. A [`Driver`] runs writes in its transactions and hands out read
//! connections; a write sees the engine through [`WriteTx`], a read through [`Reader`], each a
//! set of typed operations (load a job, insert it, update it under its lease, write its event,
//! claim, store a data chunk, ...). No operation decides a state: the state it writes is an
//! argument, asked of [`crate::state::transition`] by the store, and every `UPDATE` of a state
//! is a compare-and-set on the state the store read.
//!
//! The traits are object-safe: the store holds its driver as an `Arc<dyn Driver>`, and a
//! driver may live in another crate (`jobstore-postgres`). A dynamic call costs a few
//! nanoseconds; the store makes a handful per write (never one per row of a batch where a
//! batch operation exists), against microseconds of statement execution.
//!
//! A write is a closure over `&mut dyn WriteTx`, type-erased as a [`WriteOp`] so that a driver
//! can queue it (the SQLite driver's writer thread takes many and commits them together). The
//! driver must keep two promises for every write:
//! - **alone:** a write that fails (answers `Err`, or panics) is undone by itself; the other
//!   writes of the same transaction are not affected (SQLite: one `SAVEPOINT` per write);
//! - **after commit:** it calls [`PendingReply::finish`] only once the transaction holding
//!   the write committed, with the commit's error when it did not; a commit that may have
//!   happened anyway is [`Error::OutcomeUnknown`], never "not done".
//!
//! And for the writes of one job ([`WriteOp::job`]):
//! - **in order:** they run and commit in the order they were submitted, as a driver with one
//!   queue and one writer does anyway. A caller may queue a write without waiting for it
//!   (dropping an upload deletes its batch so; the embedded worker reports failures so) and
//!   count on the job's next write finding it done. Writes of different jobs may run in any
//!   order.
//!
//! An engine out of reach (its server down, restarting, or the connection lost) is
//! [`Error::Unavailable`]: nothing was written, and the call may be repeated later.
//!
//! **Wake-ups.** The store wakes its own waiting claims after a commit that may have made jobs
//! claimable, and tells its driver ([`Driver::jobs_available`]); a driver whose database other
//! processes share passes that on to them, and wakes this store's claims for theirs through
//! the [`Waker`] the store gave it ([`Driver::set_waker`]). Both default to nothing: a
//! database only this process writes needs neither.
//!
//! **Boundary:** no SQL outside the drivers. The store passes values and states, never
//! statement text.
//!
//! The engines: [`crate::sqlite`] (the embedded default, [`crate::Store::open`]); another
//! engine's driver is given to [`crate::Store::with_driver`].

pub mod list_sql;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Weak;

use crate::list::{JobPage, ListQuery};
use crate::model::{
    DataBatch, Definition, DefinitionStep, Job, JobEvent, LogLevel, LogLine, NewJob, Output,
    QueueCount, Step, StepStatus,
};
use crate::state::State;
use crate::store::JobSignal;
use crate::{Error, Result};

/// What the writer has done since the store opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Writes run (each undone alone on error: its own savepoint).
    pub writes: u64,
    /// Transactions committed (each holding one or more writes: one fsync each under FULL).
    pub commits: u64,
}

/// A database engine under the store.
pub trait Driver: Send + Sync + 'static {
    /// The engine and where its data lives, for logs and `Debug` (`sqlite /var/lib/x.db`).
    fn describe(&self) -> String;

    /// The database file, for an engine that keeps one.
    fn path(&self) -> Option<&Path>;

    /// Runs `write` in a transaction and answers it through the op after the commit (or at
    /// once with [`Error::Closed`] when the driver is shutting down). Must not block on the
    /// write: a caller that waits does so on the op's reply.
    fn submit(&self, write: Box<dyn WriteOp>);

    /// A read connection for one short call; no transaction outlives the call.
    ///
    /// # Errors
    /// When no connection can be had.
    fn reader(&self) -> Result<Box<dyn Reader + '_>>;

    /// Writes run and transactions committed so far.
    fn writer_stats(&self) -> WriterStats;

    /// The uploaders named by incomplete data batches ([`WriteTx::insert_batch`]) that are
    /// certainly gone: their batches can never be completed.
    ///
    /// # Errors
    /// Storage errors.
    fn gone_uploaders(&self) -> Result<Vec<String>>;

    /// Writes a consistent copy of the database to `dest`, which does not exist.
    ///
    /// # Errors
    /// Storage errors; [`Error::InvalidInput`] where the engine cannot.
    fn backup_to(&self, dest: &Path) -> Result<()>;

    /// Bounds the engine's log (SQLite: a `TRUNCATE` checkpoint of the WAL; PostgreSQL, whose
    /// server bounds its own: a fold of the job counts' change rows); answers whether it
    /// completed.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when another process owns this; storage errors.
    fn checkpoint(&self) -> Result<bool>;

    /// Checks the storage and the store's invariants across tables; answers the problems
    /// found, one line each.
    ///
    /// # Errors
    /// Storage errors only.
    fn check(&self) -> Result<Vec<String>>;

    /// Takes the store's waker ([`crate::Store::with_driver`] gives it once): a driver whose
    /// database other processes share wakes the store's waiting claims with it when one of
    /// them made jobs claimable. The default keeps nothing.
    fn set_waker(&self, waker: Waker) {
        let _ = waker;
    }

    /// Told after a commit of this process that may have made jobs claimable (the store woke
    /// its own waiting claims already): a driver whose database other processes share tells
    /// them. Called on the thread that answered the write (a writer thread): it must return
    /// at once. The default does nothing.
    fn jobs_available(&self) {}
}

/// Wakes a store's waiting claims (the embedded worker's, the daemon's long polls) and its
/// [`crate::Store::on_jobs_available`] listeners, as a commit of the store's own process that
/// made jobs claimable does. A driver gets it from [`Driver::set_waker`]. It holds the store
/// weakly: a driver keeping it keeps no store alive.
#[derive(Clone)]
pub struct Waker {
    signal: Weak<JobSignal>,
}

impl Waker {
    pub(crate) fn new(signal: Weak<JobSignal>) -> Waker {
        Waker { signal }
    }

    /// Wakes the store's waiting claims and listeners (returning quickly; the listeners must
    /// be quick). Answers `false` once the store is gone.
    pub fn wake(&self) -> bool {
        match self.signal.upgrade() {
            Some(signal) => {
                signal.wake_listeners();
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for Waker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waker")
            .field("store_alive", &(self.signal.strong_count() > 0))
            .finish()
    }
}

/// A write as a driver sees it: run it in the current transaction, or refuse it unrun.
pub trait WriteOp: Send {
    /// Runs the write; its outcome waits in the answer for the transaction's end.
    fn run(self: Box<Self>, tx: &mut dyn WriteTx) -> Box<dyn PendingReply>;

    /// Answers `err` without running (the driver is closed, the lock was not had).
    fn refuse(self: Box<Self>, err: Error);

    /// The job this write concerns, when it concerns one: a driver runs the writes of one job
    /// in the order they were submitted (see the module's promises). `None` (creates,
    /// claims, maintenance): any order.
    fn job(&self) -> Option<i64> {
        None
    }
}

/// The outcome of a write that ran, held until its transaction commits or fails.
pub trait PendingReply {
    /// Whether the write answered `Ok` (keep it) or `Err` (undo it alone).
    fn succeeded(&self) -> bool;

    /// Answers the caller: the write's own outcome once `commit` is `Ok`, else `commit`'s
    /// error.
    fn finish(self: Box<Self>, commit: Result<()>);
}

/// One write, the job it concerns, and where its answer goes.
pub(crate) struct Op<F, R> {
    pub job: Option<i64>,
    pub write: F,
    pub reply: R,
}

struct Reply<T, R> {
    result: Result<T>,
    reply: R,
}

impl<F, T, R> WriteOp for Op<F, R>
where
    F: FnOnce(&mut dyn WriteTx) -> Result<T> + Send + 'static,
    T: Send + 'static,
    R: FnOnce(Result<T>) + Send + 'static,
{
    fn run(self: Box<Self>, tx: &mut dyn WriteTx) -> Box<dyn PendingReply> {
        let Op { write, reply, .. } = *self;
        let result = write(tx);
        Box::new(Reply { result, reply })
    }

    fn refuse(self: Box<Self>, err: Error) {
        answer(self.reply, Err(err));
    }

    fn job(&self) -> Option<i64> {
        self.job
    }
}

impl<T: Send + 'static, R: FnOnce(Result<T>) + Send + 'static> PendingReply for Reply<T, R> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn finish(self: Box<Self>, commit: Result<()>) {
        let result = match (self.result, commit) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(err)) | (Err(err), _) => Err(err),
        };
        answer(self.reply, result);
    }
}

/// Hands `result` to the caller's reply. A reply that panics (a caller's callback) is logged
/// and contained: the driver's thread must outlive any one caller.
fn answer<T>(reply: impl FnOnce(Result<T>), result: Result<T>) {
    if catch_unwind(AssertUnwindSafe(|| reply(result))).is_err() {
        log::error!("a write's answer callback panicked");
    }
}

/// A job to insert, validated: the request's fields and what the store chose.
#[derive(Debug, Clone, Copy)]
pub struct JobRow<'a> {
    /// The tenant it belongs to.
    pub tenant: &'a str,
    /// The request (its idempotency key is not a column of `jobs`).
    pub new: &'a NewJob,
    /// The payload as JSON text, as it is stored.
    pub payload: &'a str,
    /// The state `transition(None, Create)` answered.
    pub state: State,
    /// The definition it executes.
    pub definition_id: Option<&'a str>,
    /// The execution it restarts.
    pub restart_of: Option<i64>,
    /// `created_at`, `updated_at`, and `run_at` when the request names none.
    pub now: i64,
}

/// One transition of one job, for the history.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    /// The job.
    pub job: i64,
    /// When (ms).
    pub at: i64,
    /// The event's name.
    pub event: &'a str,
    /// The state before (`None` at creation).
    pub from: Option<State>,
    /// The state after.
    pub to: State,
    /// Who (a worker, a token name; may be empty).
    pub actor: &'a str,
    /// Free text.
    pub detail: Option<&'a str>,
}

/// A claim: lease up to `max` due `queued` jobs of `queues` to `worker`.
#[derive(Debug, Clone, Copy)]
pub struct ClaimJobs<'a> {
    /// The queues (at least one).
    pub queues: &'a [String],
    /// Only this tenant's jobs (`None`: any tenant's).
    pub tenant: Option<&'a str>,
    /// The worker the leases go to.
    pub worker: &'a str,
    /// The state `transition(Queued, Claim)` answered.
    pub to: State,
    /// Now (ms): jobs with `run_at <= now` are due; `started_at`.
    pub now: i64,
    /// When the leases run out.
    pub expires: i64,
    /// The most jobs (1 to [`crate::MAX_CLAIM`]).
    pub max: u32,
}

/// A heartbeat of a running job under its lease.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatRow<'a> {
    /// The job.
    pub id: i64,
    /// Its current fencing token.
    pub lease_token: i64,
    /// The state `transition(Running, Heartbeat)` answered.
    pub to: State,
    /// The new lease end.
    pub expires: i64,
    /// Now (ms).
    pub now: i64,
    /// A JSON object (text) to merge into the progress document (RFC 7386).
    pub progress: Option<&'a str>,
    /// The new phase, if any.
    pub phase: Option<&'a str>,
}

/// A completion of a running job under its lease.
#[derive(Debug, Clone, Copy)]
pub struct CompleteRow<'a> {
    /// The job.
    pub id: i64,
    /// The lease's fencing token.
    pub lease_token: i64,
    /// The lease's worker.
    pub worker: &'a str,
    /// Only in this tenant (`None`: any).
    pub tenant: Option<&'a str>,
    /// The state `transition(Running, Complete)` answered.
    pub to: State,
    /// The result document (JSON text).
    pub result: &'a str,
    /// Now (ms).
    pub now: i64,
}

/// The end of a lease after a failure or an expiry.
#[derive(Debug, Clone, Copy)]
pub struct ReleaseRow<'a> {
    /// The job as read, running under `job.lease_token`.
    pub job: &'a Job,
    /// The state the transition answered.
    pub to: State,
    /// The new `run_at`.
    pub run_at: i64,
    /// Set when `to` is terminal.
    pub finished_at: Option<i64>,
    /// The failure's text.
    pub error: &'a str,
    /// Now (ms).
    pub now: i64,
}

/// A step report, checked against the step's current status.
#[derive(Debug, Clone, Copy)]
pub struct StepRow<'a> {
    /// The job.
    pub job: i64,
    /// The step.
    pub step_id: &'a str,
    /// The new status.
    pub status: StepStatus,
    /// Kept when `None`.
    pub exit_code: Option<&'a str>,
    /// Kept when `None`.
    pub message: Option<&'a str>,
    /// Now (ms): `updated_at`, and `started_at` when the step had none.
    pub now: i64,
    /// Set when the status is a finished one.
    pub finished_at: Option<i64>,
}

/// A stored chunk of a data batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The batch.
    pub batch: i64,
    /// The chunk's index in its batch.
    pub chunk: i64,
    /// Its bytes (at most 256 KiB).
    pub data: Vec<u8>,
}

/// Which chunk [`Reader::next_chunk`] reads: the first after `(after_batch, after_chunk)` in
/// `(batch, chunk)` order, of complete batches only.
#[derive(Debug, Clone, Copy)]
pub struct ChunkQuery<'a> {
    /// The job.
    pub job: i64,
    /// Only this batch.
    pub only_batch: Option<i64>,
    /// The output (`None`: the input data).
    pub name: Option<&'a str>,
    /// The batch read last.
    pub after_batch: i64,
    /// The chunk read last (`i64::MAX`: the whole batch).
    pub after_chunk: i64,
}

/// Jobs counted per tenant, queue and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    /// The tenant.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: State,
    /// How many.
    pub jobs: i64,
    /// Of those, how many are due (`run_at <= now`), where the query asked.
    pub due: i64,
}

/// Jobs that finished in one interval, by state and queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedCount {
    /// The interval's index from the start.
    pub bucket: i64,
    /// The state they finished in.
    pub state: State,
    /// The queue.
    pub queue: String,
    /// How many.
    pub jobs: i64,
}

/// The due queued job that has waited longest in one tenant's queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldestDue {
    /// The tenant.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// Its `run_at`.
    pub run_at: i64,
    /// The job.
    pub id: i64,
}

/// The typed reads: on a read connection, and inside a write ([`WriteTx`] is a `Reader`).
/// A `tenant` of `None` is every tenant.
pub trait Reader {
    /// Proves the connection answers.
    ///
    /// # Errors
    /// Storage errors.
    fn ping(&mut self) -> Result<()>;

    /// One job, if it exists in `tenant`.
    ///
    /// # Errors
    /// Storage errors.
    fn load_job(&mut self, tenant: Option<&str>, id: i64) -> Result<Option<Job>>;

    /// One page of `query` (already checked: [`ListQuery`]'s limits hold) within `tenant`.
    ///
    /// # Errors
    /// Storage errors.
    fn list_jobs(&mut self, tenant: Option<&str>, query: &ListQuery) -> Result<JobPage>;

    /// The job's events, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    fn events(&mut self, job: i64) -> Result<Vec<JobEvent>>;

    /// The job's steps, in order.
    ///
    /// # Errors
    /// Storage errors.
    fn steps(&mut self, job: i64) -> Result<Vec<Step>>;

    /// Up to `limit` log lines of the job after line `after_seq`.
    ///
    /// # Errors
    /// Storage errors.
    fn log(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>>;

    /// The job's last `limit` log lines after line `after_seq`, oldest first.
    ///
    /// # Errors
    /// Storage errors.
    fn log_tail(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>>;

    /// The job's complete input batches, in order.
    ///
    /// # Errors
    /// Storage errors.
    fn data_batches(&mut self, job: i64) -> Result<Vec<DataBatch>>;

    /// The job's outputs (complete batches), by name.
    ///
    /// # Errors
    /// Storage errors.
    fn outputs(&mut self, job: i64) -> Result<Vec<Output>>;

    /// Whether the job has a complete batch of output `name`.
    ///
    /// # Errors
    /// Storage errors.
    fn output_exists(&mut self, job: i64, name: &str) -> Result<bool>;

    /// The length of a chunk of a complete batch of output `name`, if there is that chunk.
    ///
    /// # Errors
    /// Storage errors.
    fn output_chunk_len(
        &mut self,
        job: i64,
        name: &str,
        batch: i64,
        chunk: i64,
    ) -> Result<Option<usize>>;

    /// The next chunk `query` names, if any.
    ///
    /// # Errors
    /// Storage errors.
    fn next_chunk(&mut self, query: &ChunkQuery<'_>) -> Result<Option<Chunk>>;

    /// One definition of `tenant` with its steps.
    ///
    /// # Errors
    /// Storage errors.
    fn definition(&mut self, tenant: &str, id: &str) -> Result<Option<Definition>>;

    /// The ids of `tenant`'s definitions, in order.
    ///
    /// # Errors
    /// Storage errors.
    fn definition_ids(&mut self, tenant: &str) -> Result<Vec<String>>;

    /// Job counts by queue and state (not zero), by queue then state.
    ///
    /// # Errors
    /// Storage errors.
    fn queue_counts(&mut self, tenant: Option<&str>) -> Result<Vec<QueueCount>>;

    /// Queued and running jobs by tenant, queue and state (not zero; `due` not counted),
    /// from counts the engine keeps (their cost follows the queues, not the jobs).
    ///
    /// # Errors
    /// Storage errors.
    fn live_counts(&mut self, tenant: Option<&str>) -> Result<Vec<StateCount>>;

    /// Queued and running jobs by tenant, queue and state, with those due at `now`.
    ///
    /// # Errors
    /// Storage errors.
    fn live_jobs(&mut self, tenant: Option<&str>, now: i64) -> Result<Vec<StateCount>>;

    /// Per tenant and queue, the due queued job with the smallest `run_at`.
    ///
    /// # Errors
    /// Storage errors.
    fn oldest_due(&mut self, tenant: Option<&str>, now: i64) -> Result<Vec<OldestDue>>;

    /// Jobs created at or after `since`, counted per `bucket_ms` from `since`: (interval
    /// index, jobs).
    ///
    /// # Errors
    /// Storage errors.
    fn created_since(
        &mut self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, i64)>>;

    /// Jobs finished at or after `since`, counted per `bucket_ms` from `since`, by state and
    /// queue.
    ///
    /// # Errors
    /// Storage errors.
    fn finished_since(
        &mut self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<FinishedCount>>;

    /// Up to `limit` running jobs, by worker (`lease_owner`) then id.
    ///
    /// # Errors
    /// Storage errors.
    fn running_jobs(&mut self, tenant: Option<&str>, limit: u32) -> Result<Vec<Job>>;
}

/// The typed operations of one write, inside the driver's transaction. Each either does all
/// it says or fails; the store undoes the whole write on any `Err`.
pub trait WriteTx: Reader {
    /// The job as [`Reader::load_job`] reads it, held for the rest of the write: no other
    /// write changes it before this one ends, so what the write decides from it (the state
    /// machine's answer, a lease check) still holds when its statements run. A driver with
    /// one writer at a time has nothing to hold: the default reads.
    ///
    /// # Errors
    /// Storage errors.
    fn lock_job(&mut self, tenant: Option<&str>, id: i64) -> Result<Option<Job>> {
        self.load_job(tenant, id)
    }

    /// The job and request fingerprint an idempotency key of `tenant` was first used with.
    ///
    /// # Errors
    /// Storage errors.
    fn idempotency_key(&mut self, tenant: &str, key: &str) -> Result<Option<(i64, String)>>;

    /// Takes, before a write looks up several idempotency keys, whatever lock the driver holds
    /// a key under while its transaction runs, all in one order (`keys` come sorted and
    /// distinct), so that two writes taking the same keys never wait for each other. A
    /// driver with one writer at a time has nothing to lock: the default does nothing.
    ///
    /// # Errors
    /// Storage errors.
    fn lock_idempotency_keys(&mut self, keys: &[(&str, &str)]) -> Result<()> {
        let _ = keys;
        Ok(())
    }

    /// Records an idempotency key.
    ///
    /// # Errors
    /// Storage errors.
    fn insert_idempotency_key(
        &mut self,
        tenant: &str,
        key: &str,
        job: i64,
        fingerprint: &str,
        now: i64,
    ) -> Result<()>;

    /// Inserts a job; answers its id (ids are never reused).
    ///
    /// # Errors
    /// [`Error::JobAlreadyRunning`] when a live job of the tenant holds its unique key;
    /// storage errors.
    fn insert_job(&mut self, row: &JobRow<'_>) -> Result<i64>;

    /// [`WriteTx::insert_job`] for each row, as if one after the other in their order: all
    /// inserted, answering their ids in order, or the first refusal (then the caller undoes
    /// the transaction). The default runs them one by one; a driver whose statements cost a
    /// round trip each inserts them in one.
    ///
    /// # Errors
    /// As [`WriteTx::insert_job`].
    fn insert_jobs(&mut self, rows: &[JobRow<'_>]) -> Result<Vec<i64>> {
        rows.iter().map(|row| self.insert_job(row)).collect()
    }

    /// Appends events to the history.
    ///
    /// # Errors
    /// Storage errors.
    fn insert_events(&mut self, events: &[EventRow<'_>]) -> Result<()>;

    /// `job` (as read) goes to `to` with a cancel request at `now` (and `finished_at` when
    /// `to` is terminal); answers the job as written.
    ///
    /// # Errors
    /// Storage errors (also when the job is no longer in `job.state`).
    fn cancel_job(&mut self, job: &Job, to: State, now: i64) -> Result<Job>;

    /// `job` (as read) goes back to `to` with its attempts, times, error, result, progress
    /// and phase cleared, and its steps back to pending; answers the job as written.
    ///
    /// # Errors
    /// [`Error::JobAlreadyRunning`] when its unique key is held by another live job; storage
    /// errors.
    fn restart_job(&mut self, job: &Job, to: State, now: i64) -> Result<Job>;

    /// Deletes the job if it is still in `state` (with everything that is its); answers
    /// whether it did.
    ///
    /// # Errors
    /// Storage errors.
    fn delete_job(&mut self, id: i64, state: State) -> Result<bool>;

    /// Deletes every data batch (input and output) of the job.
    ///
    /// # Errors
    /// Storage errors.
    fn delete_job_data(&mut self, job: i64) -> Result<()>;

    /// Appends log lines at `now`.
    ///
    /// # Errors
    /// Storage errors.
    fn insert_log(&mut self, job: i64, now: i64, lines: &[(LogLevel, &str)]) -> Result<()>;

    /// Leases the jobs `claim` names in one statement, so that two claimers never lease one
    /// job; answers them as written (in any order).
    ///
    /// # Errors
    /// Storage errors.
    fn claim(&mut self, claim: &ClaimJobs<'_>) -> Result<Vec<Job>>;

    /// Extends a lease and merges progress, if the job still runs under `row.lease_token`;
    /// answers whether it did.
    ///
    /// # Errors
    /// Storage errors.
    fn heartbeat(&mut self, row: &HeartbeatRow<'_>) -> Result<bool>;

    /// Finishes a job that still runs under the lease; `None` when it does not (or is not
    /// in the tenant).
    ///
    /// # Errors
    /// Storage errors.
    fn complete_job(&mut self, row: &CompleteRow<'_>) -> Result<Option<Job>>;

    /// [`WriteTx::complete_job`] for each row, as if one after the other in their order:
    /// answers one entry per row, in order. The default runs them one by one; a driver whose
    /// statements cost a round trip each finishes them in one.
    ///
    /// # Errors
    /// Storage errors.
    fn complete_jobs(&mut self, rows: &[CompleteRow<'_>]) -> Result<Vec<Option<Job>>> {
        rows.iter().map(|row| self.complete_job(row)).collect()
    }

    /// Ends `row.job`'s lease; a job cancelled this way loses its data. Answers the job as
    /// written.
    ///
    /// # Errors
    /// Storage errors (also when the lease is no longer the current one).
    fn release_lease(&mut self, row: &ReleaseRow<'_>) -> Result<Job>;

    /// The status of one step of the job, if it has that step.
    ///
    /// # Errors
    /// Storage errors.
    fn step_status(&mut self, job: i64, step_id: &str) -> Result<Option<StepStatus>>;

    /// Writes a step report and the job's `updated_at`.
    ///
    /// # Errors
    /// Storage errors.
    fn update_step(&mut self, row: &StepRow<'_>) -> Result<()>;

    /// `open` job `id` goes to `to`, `run_at` no earlier than `now`; answers whether it was
    /// still `from`.
    ///
    /// # Errors
    /// Storage errors.
    fn close_upload(&mut self, id: i64, from: State, to: State, now: i64) -> Result<bool>;

    /// Of the job's batches: how many are inputs (`outputs` false) or outputs (true), and the
    /// highest batch number (0 without batches). Called with the job held ([`Self::lock_job`]),
    /// so that two uploads begun at once count one after the other.
    ///
    /// # Errors
    /// Storage errors.
    fn batch_count(&mut self, job: i64, outputs: bool) -> Result<(u32, i64)>;

    /// Deletes the batches of output `name` uploaded under another lease than `lease_token`.
    ///
    /// # Errors
    /// Storage errors.
    fn delete_replaced_output(&mut self, job: i64, name: &str, lease_token: i64) -> Result<()>;

    /// Reserves batch `batch` (incomplete, invisible), naming this process as its uploader;
    /// `output` is the output's name and lease token, `None` for input data.
    ///
    /// # Errors
    /// Storage errors.
    fn insert_batch(
        &mut self,
        job: i64,
        batch: i64,
        now: i64,
        output: Option<(&str, i64)>,
    ) -> Result<()>;

    /// Stores chunk `chunk` of a reserved batch and adds its size to the batch.
    ///
    /// # Errors
    /// Storage errors (also when the batch is gone).
    fn insert_chunk(
        &mut self,
        job: i64,
        batch: i64,
        chunk: i64,
        data: &[u8],
        now: i64,
    ) -> Result<()>;

    /// Marks a batch complete; answers its bytes and creation time.
    ///
    /// # Errors
    /// Storage errors (also when the batch is gone).
    fn seal_batch(&mut self, job: i64, batch: i64, now: i64) -> Result<(i64, i64)>;

    /// Sets the job's `updated_at` (only while it is in `state`, when given).
    ///
    /// # Errors
    /// Storage errors.
    fn touch_job(&mut self, id: i64, state: Option<State>, now: i64) -> Result<()>;

    /// Deletes one batch (only if incomplete, with `incomplete_only`); answers how many rows
    /// went.
    ///
    /// # Errors
    /// Storage errors.
    fn delete_batch(&mut self, job: i64, batch: i64, incomplete_only: bool) -> Result<usize>;

    /// Deletes the incomplete batches of one uploader; answers how many.
    ///
    /// # Errors
    /// Storage errors.
    fn delete_uploader_batches(&mut self, uploader: &str) -> Result<usize>;

    /// Creates or replaces a definition of `tenant` and its steps.
    ///
    /// # Errors
    /// Storage errors.
    fn put_definition(&mut self, tenant: &str, definition: &Definition, now: i64) -> Result<()>;

    /// The latest execution of a definition: its id and state.
    ///
    /// # Errors
    /// Storage errors.
    fn latest_execution(&mut self, tenant: &str, definition: &str) -> Result<Option<(i64, State)>>;

    /// Inserts the job's steps, pending; with `restart_of`, the steps that finished `ok` in
    /// that execution are copied as finished.
    ///
    /// # Errors
    /// Storage errors.
    fn insert_steps(
        &mut self,
        job: i64,
        steps: &[DefinitionStep],
        restart_of: Option<i64>,
        now: i64,
    ) -> Result<()>;

    /// Up to `limit` running jobs whose lease expired before `now`, oldest expiry first.
    ///
    /// # Errors
    /// Storage errors.
    fn expired_leases(&mut self, tenant: Option<&str>, now: i64, limit: i64) -> Result<Vec<i64>>;

    /// Deletes up to `limit` jobs that finished before `before`; answers how many.
    ///
    /// # Errors
    /// Storage errors.
    fn purge_finished(&mut self, tenant: Option<&str>, before: i64, limit: i64) -> Result<usize>;

    /// Deletes up to `limit` `open` jobs created before `before`; answers how many.
    ///
    /// # Errors
    /// Storage errors.
    fn purge_open(&mut self, tenant: Option<&str>, before: i64, limit: i64) -> Result<usize>;

    /// Deletes up to `limit` incomplete batches not grown since `before`; answers how many.
    ///
    /// # Errors
    /// Storage errors.
    fn purge_incomplete_batches(&mut self, before: i64, limit: i64) -> Result<usize>;
}
