//! The embedded worker: threads that claim jobs of some queues and run a handler per kind,
//! with automatic heartbeats, cancellation visible to the handler, and panics turned into
//! failed attempts.
//!
//! An enqueue in the same process wakes an idle worker at once; jobs enqueued by another
//! process are found by polling every `poll_interval`. The worker also rescues expired leases
//! (of any process) every `rescue_interval`, so the jobs of a dead worker run again.
//!
//! Successful outcomes are reported together: the runners hand them to one completer thread,
//! which acknowledges everything handed over while its last acknowledgement was committing in
//! one [`Store::complete_many`] (one write, one transaction). A lone outcome goes at once; under
//! load the outcomes of many jobs share a write, as a claim's jobs share one.
//!
//! It has no async runtime: one thread per concurrent job, plus one for heartbeats and one
//! that reports the successful outcomes.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::model::{
    ClaimRequest, Completion, Failure, Heartbeat, Job, Lease, LogLevel, StepReport, StepStatus,
};
use crate::store::{DataReader, Store};
use crate::{Error, Result};

/// Why a handler gave up on a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// What went wrong (stored as the job's error).
    pub message: String,
    /// Do not retry: the job fails at once.
    pub fatal: bool,
}

impl JobError {
    /// A failure that is retried while attempts remain.
    pub fn retryable(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            fatal: false,
        }
    }

    /// A failure that ends the job.
    pub fn fatal(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            fatal: true,
        }
    }
}

impl<E: std::error::Error> From<E> for JobError {
    fn from(err: E) -> Self {
        JobError::retryable(err.to_string())
    }
}

/// What a handler returns: the result document, or why it failed.
pub type HandlerResult = std::result::Result<Value, JobError>;

type Handler = Arc<dyn Fn(&mut JobContext) -> HandlerResult + Send + Sync>;

/// The state the heartbeat thread shares with a running handler.
struct RunningJob {
    lease: Lease,
    cancel_requested: AtomicBool,
    lease_lost: AtomicBool,
}

/// What a handler sees of its job, and the calls it makes about it.
pub struct JobContext {
    store: Store,
    job: Job,
    running: Arc<RunningJob>,
}

impl JobContext {
    /// The job as it was claimed (attempt counted, lease set).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The job's payload.
    pub fn payload(&self) -> &Value {
        &self.job.payload
    }

    /// Whether the handler should stop: a client asked to cancel the job, or the lease was
    /// lost (then nothing the handler reports is kept). Checked by the heartbeat thread.
    pub fn is_cancelled(&self) -> bool {
        self.running.cancel_requested.load(Ordering::SeqCst)
            || self.running.lease_lost.load(Ordering::SeqCst)
    }

    /// Merges counters into the job's progress document (and extends the lease).
    ///
    /// # Errors
    /// [`Error::StaleLease`] when the lease was lost.
    pub fn progress(&self, progress: Value) -> Result<()> {
        self.beat(Heartbeat {
            progress: Some(progress),
            ..Heartbeat::default()
        })
    }

    /// Sets the job's phase text.
    ///
    /// # Errors
    /// [`Error::StaleLease`] when the lease was lost.
    pub fn phase(&self, phase: impl Into<String>) -> Result<()> {
        self.beat(Heartbeat {
            phase: Some(phase.into()),
            ..Heartbeat::default()
        })
    }

    fn beat(&self, beat: Heartbeat) -> Result<()> {
        match self.store.heartbeat(self.job.id, &self.running.lease, beat) {
            Ok(answer) => {
                if answer.cancel_requested {
                    self.running.cancel_requested.store(true, Ordering::SeqCst);
                }
                Ok(())
            }
            Err(err) => {
                if matches!(err, Error::StaleLease { .. }) {
                    self.running.lease_lost.store(true, Ordering::SeqCst);
                }
                Err(err)
            }
        }
    }

    /// Appends a line to the job's log.
    ///
    /// # Errors
    /// Storage errors.
    pub fn log(&self, level: LogLevel, message: impl Into<String>) -> Result<()> {
        self.store
            .append_log(self.job.id, vec![(level, message.into())])
            .map(|_| ())
    }

    /// Reports that a step started.
    ///
    /// # Errors
    /// As [`Store::report_step`].
    pub fn step_started(&self, step_id: &str) -> Result<()> {
        self.store.report_step(
            self.job.id,
            &self.running.lease,
            step_id,
            StepReport {
                status: StepStatus::Running,
                exit_code: None,
                message: None,
            },
        )
    }

    /// Reports that a step finished, well (`ok`) or not, with an exit code and message.
    ///
    /// # Errors
    /// As [`Store::report_step`].
    pub fn step_finished(
        &self,
        step_id: &str,
        ok: bool,
        exit_code: impl Into<String>,
        message: Option<String>,
    ) -> Result<()> {
        self.store.report_step(
            self.job.id,
            &self.running.lease,
            step_id,
            StepReport {
                status: if ok {
                    StepStatus::Ok
                } else {
                    StepStatus::Error
                },
                exit_code: Some(exit_code.into()),
                message,
            },
        )
    }

    /// The job's uploaded data, every batch in order, as a stream.
    ///
    /// # Errors
    /// Storage errors.
    pub fn data(&self) -> Result<DataReader> {
        self.store.read_data(self.job.id, None)
    }
}

/// Builds an embedded worker. See [`Worker::start`].
pub struct Worker {
    store: Store,
    queues: Vec<String>,
    name: String,
    concurrency: usize,
    prefetch: u32,
    lease: Duration,
    poll_interval: Duration,
    rescue_interval: Option<Duration>,
    handlers: HashMap<String, Handler>,
}

impl Worker {
    /// A worker for `queues` with one thread, a 30 s lease and a 1 s poll for jobs enqueued
    /// by other processes.
    pub fn new<Q: Into<String>>(store: Store, queues: impl IntoIterator<Item = Q>) -> Worker {
        Worker {
            store,
            queues: queues.into_iter().map(Into::into).collect(),
            name: format!("worker-{}-{}", std::process::id(), fastrand::u32(..)),
            concurrency: 1,
            prefetch: 1,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            rescue_interval: Some(Duration::from_secs(15)),
            handlers: HashMap::new(),
        }
    }

    /// Runs up to `n` jobs at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// How many jobs each thread claims at once (1 to [`crate::MAX_CLAIM`]; default 1). The
    /// thread runs them one after another; the jobs waiting their turn keep their leases
    /// alive through the heartbeat, and one that was cancelled meanwhile is acknowledged as
    /// cancelled without running. Fewer claims for short jobs; a shutdown still runs every
    /// job already claimed.
    pub fn prefetch(mut self, n: u32) -> Self {
        self.prefetch = n.clamp(1, crate::MAX_CLAIM);
        self
    }

    /// The worker's name, recorded as the lease owner.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The lease length; heartbeats come every third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(30));
        self
    }

    /// How often an idle worker looks for jobs enqueued by other processes.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How often to rescue expired leases (`None`: never; another process does it).
    pub fn rescue_interval(mut self, interval: Option<Duration>) -> Self {
        self.rescue_interval = interval;
        self
    }

    /// Runs jobs of `kind` with `handler` (takes precedence over the fallback of `start`).
    pub fn handle(
        mut self,
        kind: impl Into<String>,
        handler: impl Fn(&mut JobContext) -> HandlerResult + Send + Sync + 'static,
    ) -> Self {
        self.handlers.insert(kind.into(), Arc::new(handler));
        self
    }

    /// Starts the threads; jobs of a kind without its own handler go to `fallback`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] without queues; [`Error::Io`] when a thread cannot start.
    pub fn start(
        self,
        fallback: impl Fn(&mut JobContext) -> HandlerResult + Send + Sync + 'static,
    ) -> Result<WorkerHandle> {
        self.spawn(Some(Arc::new(fallback)))
    }

    /// Starts the threads with only the handlers given to [`Worker::handle`]; a job of any
    /// other kind fails fatally.
    ///
    /// # Errors
    /// As [`Worker::start`].
    pub fn start_registered(self) -> Result<WorkerHandle> {
        self.spawn(None)
    }

    fn spawn(self, fallback: Option<Handler>) -> Result<WorkerHandle> {
        if self.queues.is_empty() {
            return Err(Error::invalid("queues", "name at least one queue"));
        }
        let shared = Arc::new(Shared {
            store: self.store,
            queues: self.queues,
            name: self.name,
            prefetch: self.prefetch,
            lease: self.lease,
            poll_interval: self.poll_interval,
            handlers: self.handlers,
            fallback,
            stopping: AtomicBool::new(false),
            running: Mutex::new(HashMap::new()),
            reports: Arc::default(),
            completions: Completions::default(),
        });
        // Threads join the handle as they start: when one cannot start, dropping the handle
        // stops and joins those already running.
        let mut handle = WorkerHandle {
            shared,
            runners: Vec::with_capacity(self.concurrency),
            completer: None,
            keeper: None,
        };
        // Before the runners: every success they report has a completer to take it.
        let shared = Arc::clone(&handle.shared);
        handle.completer = Some(
            std::thread::Builder::new()
                .name("jobstore-completer".into())
                .spawn(move || shared.completer_loop())?,
        );
        for index in 0..self.concurrency {
            let shared = Arc::clone(&handle.shared);
            handle.runners.push(
                std::thread::Builder::new()
                    .name(format!("jobstore-worker-{index}"))
                    .spawn(move || shared.run_loop())?,
            );
        }
        let shared = Arc::clone(&handle.shared);
        let rescue = self.rescue_interval;
        handle.keeper = Some(
            std::thread::Builder::new()
                .name("jobstore-heartbeat".into())
                .spawn(move || shared.heartbeat_loop(rescue))?,
        );
        Ok(handle)
    }
}

struct Shared {
    store: Store,
    queues: Vec<String>,
    name: String,
    prefetch: u32,
    lease: Duration,
    poll_interval: Duration,
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
    stopping: AtomicBool,
    running: Mutex<HashMap<i64, Arc<RunningJob>>>,
    reports: Arc<PendingReports>,
    completions: Completions,
}

/// Outcome reports handed over (successes to the completer, failures to the writer) and not
/// yet answered.
#[derive(Default)]
struct PendingReports {
    count: Mutex<usize>,
    answered: Condvar,
}

impl PendingReports {
    fn started(&self) {
        if let Ok(mut count) = self.count.lock() {
            *count += 1;
        }
    }

    fn finished(&self) {
        self.finished_many(1);
    }

    fn finished_many(&self, n: usize) {
        if let Ok(mut count) = self.count.lock() {
            *count = count.saturating_sub(n);
        }
        self.answered.notify_all();
    }

    /// Blocks until every report was answered.
    fn wait_all(&self) {
        if let Ok(count) = self.count.lock() {
            drop(self.answered.wait_while(count, |count| *count > 0));
        }
    }
}

/// Successful outcomes handed over by the runners and not yet sent to the store, for the
/// completer thread; closed at shutdown, after the runners ended.
#[derive(Default)]
struct Completions {
    state: Mutex<CompletionsState>,
    handed_over: Condvar,
}

#[derive(Default)]
struct CompletionsState {
    waiting: Vec<Completion>,
    closed: bool,
}

impl Completions {
    /// The state, also when a thread panicked holding it: every change to it is one `Vec`
    /// operation or one flag, never left half done, and a completion lost there would keep
    /// shutdown waiting for its report.
    fn state(&self) -> MutexGuard<'_, CompletionsState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `completion` over to the completer.
    fn push(&self, completion: Completion) {
        self.state().waiting.push(completion);
        self.handed_over.notify_one();
    }

    /// Blocks until outcomes wait, then takes the oldest of them, at most [`crate::MAX_CLAIM`]
    /// (what one [`Store::complete_many`] takes); `None` once closed and none is left.
    fn take(&self) -> Option<Vec<Completion>> {
        let mut state = self
            .handed_over
            .wait_while(self.state(), |state| {
                state.waiting.is_empty() && !state.closed
            })
            .unwrap_or_else(PoisonError::into_inner);
        if state.waiting.is_empty() {
            return None;
        }
        let n = state.waiting.len().min(crate::MAX_CLAIM as usize);
        Some(state.waiting.drain(..n).collect())
    }

    /// Lets the completer end once it took what is left.
    fn close(&self) {
        self.state().closed = true;
        self.handed_over.notify_all();
    }
}

impl Shared {
    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    fn run_loop(&self) {
        let request = ClaimRequest {
            worker: self.name.clone(),
            queues: self.queues.clone(),
            max: self.prefetch,
            lease_ms: self.lease_ms(),
        };
        let mut error_backoff = Duration::from_millis(50);
        while !self.stopping.load(Ordering::SeqCst) {
            let seen = self.store.signal().generation();
            match self.store.claim(&request) {
                Ok(jobs) if !jobs.is_empty() => {
                    error_backoff = Duration::from_millis(50);
                    // Every claimed job is heartbeaten from now on, also while it waits.
                    let claimed: Vec<(Job, Arc<RunningJob>)> =
                        jobs.into_iter().filter_map(|job| self.track(job)).collect();
                    for (job, running) in claimed {
                        self.run_job(job, &running);
                    }
                }
                Ok(_) => self.store.signal().wait_past(seen, self.poll_interval),
                Err(err) => {
                    log::warn!("worker {}: claim failed: {err}", self.name);
                    self.store.signal().wait_past(seen, error_backoff);
                    error_backoff = (error_backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Registers a claimed job with the heartbeat thread.
    fn track(&self, job: Job) -> Option<(Job, Arc<RunningJob>)> {
        let Some(lease) = job.lease() else {
            log::error!("job {} was claimed without a lease", job.id);
            return None;
        };
        let running = Arc::new(RunningJob {
            lease,
            cancel_requested: AtomicBool::new(job.cancel_requested_at.is_some()),
            lease_lost: AtomicBool::new(false),
        });
        if let Ok(mut map) = self.running.lock() {
            map.insert(job.id, Arc::clone(&running));
        }
        Some((job, running))
    }

    /// Takes a job off the heartbeat thread's list.
    fn untrack(&self, id: i64) {
        if let Ok(mut map) = self.running.lock() {
            map.remove(&id);
        }
    }

    fn run_job(&self, job: Job, running: &Arc<RunningJob>) {
        let id = job.id;
        let lease = running.lease.clone();
        if running.lease_lost.load(Ordering::SeqCst) {
            // Lost while it waited its turn (another worker may run it now): leave it.
            self.untrack(id);
            log::warn!("job {id}: lease lost before it started; not run");
            return;
        }
        if running.cancel_requested.load(Ordering::SeqCst) {
            // Cancelled while it waited its turn: acknowledge without running it.
            self.untrack(id);
            self.report(
                id,
                lease,
                Err(JobError::fatal("cancelled before it started")),
            );
            return;
        }
        let handler = self
            .handlers
            .get(&job.kind)
            .or(self.fallback.as_ref())
            .cloned();
        let kind = job.kind.clone();
        let mut context = JobContext {
            store: self.store.clone(),
            job,
            running: Arc::clone(running),
        };
        let outcome = match handler {
            Some(handler) => catch_unwind(AssertUnwindSafe(|| handler(&mut context)))
                .unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    Err(JobError::retryable(format!("handler panicked: {message}")))
                }),
            None => Err(JobError::fatal(format!("no handler for job kind `{kind}`"))),
        };
        self.untrack(id);
        if running.lease_lost.load(Ordering::SeqCst) {
            log::warn!("job {id}: lease lost while running; its outcome is dropped");
            return;
        }
        self.report(id, lease, outcome);
    }

    /// Reports an outcome without waiting for its commit: the next job (or claim) goes on
    /// meanwhile. A success goes to the completer, which acknowledges it with the others
    /// waiting ([`Shared::completer_loop`]); a failure is its own write, queued at once, which
    /// shares a commit with the writes waiting beside it. The lease stays valid in between;
    /// shutdown waits for every report to be answered.
    fn report(&self, id: i64, lease: Lease, outcome: HandlerResult) {
        self.reports.started();
        let err = match outcome {
            Ok(result) => {
                self.completions.push(Completion { id, lease, result });
                return;
            }
            Err(err) => err,
        };
        let failure = Failure {
            error: err.message,
            retryable: !err.fatal,
        };
        let reports = Arc::clone(&self.reports);
        self.store
            .fail_call(id, &lease, failure)
            .then(move |reported| {
                log_report(id, reported.map(|_| ()));
                reports.finished();
            });
    }

    /// Acknowledges the successful outcomes: everything the runners handed over while the
    /// last acknowledgement was committing goes in the next [`Store::complete_many`], each job
    /// still judged alone (a stale lease or a refused result drops that outcome only). Ends
    /// once the completions are closed and none is left.
    fn completer_loop(&self) {
        while let Some(batch) = self.completions.take() {
            let ids: Vec<i64> = batch.iter().map(|c| c.id).collect();
            match self.store.complete_many(batch) {
                Ok(answers) => {
                    for (id, answer) in ids.iter().zip(answers) {
                        log_report(*id, answer.map(|_| ()));
                    }
                }
                Err(err) => {
                    log::error!("reporting the outcomes of {} jobs failed: {err}", ids.len());
                }
            }
            self.reports.finished_many(ids.len());
        }
    }

    fn heartbeat_loop(&self, rescue_interval: Option<Duration>) {
        let every = (self.lease / 3).max(Duration::from_millis(10));
        let mut last_rescue = Instant::now();
        let mut next_beat = Instant::now() + every;
        while !self.stopping.load(Ordering::SeqCst) || self.has_running() {
            std::thread::sleep(Duration::from_millis(10).min(every));
            if Instant::now() < next_beat {
                continue;
            }
            next_beat = Instant::now() + every;
            let jobs: Vec<(i64, Arc<RunningJob>)> = self
                .running
                .lock()
                .map(|map| map.iter().map(|(id, r)| (*id, Arc::clone(r))).collect())
                .unwrap_or_default();
            for (id, running) in jobs {
                let beat = Heartbeat {
                    lease_ms: Some(self.lease_ms()),
                    ..Heartbeat::default()
                };
                match self.store.heartbeat(id, &running.lease, beat) {
                    Ok(answer) => {
                        if answer.cancel_requested {
                            running.cancel_requested.store(true, Ordering::SeqCst);
                        }
                    }
                    Err(Error::StaleLease { .. } | Error::JobNotFound { .. }) => {
                        running.lease_lost.store(true, Ordering::SeqCst);
                    }
                    Err(err) => log::warn!("job {id}: heartbeat failed: {err}"),
                }
            }
            if let Some(interval) = rescue_interval
                && last_rescue.elapsed() >= interval
                && !self.stopping.load(Ordering::SeqCst)
            {
                last_rescue = Instant::now();
                if let Err(err) = self.store.rescue_expired_leases() {
                    log::warn!("rescuing expired leases failed: {err}");
                }
            }
        }
    }

    fn has_running(&self) -> bool {
        self.running.lock().map(|m| !m.is_empty()).unwrap_or(false)
    }
}

/// Logs what became of an outcome the store did not keep.
fn log_report(id: i64, reported: Result<()>) {
    match reported {
        Ok(()) => {}
        Err(Error::StaleLease { .. }) => {
            log::warn!("job {id}: lease expired before the outcome was reported; dropped");
        }
        Err(err) => log::error!("job {id}: reporting the outcome failed: {err}"),
    }
}

/// A started worker. [`WorkerHandle::shutdown`] (or dropping it) stops claiming, lets the
/// running handlers finish and joins the threads.
pub struct WorkerHandle {
    shared: Arc<Shared>,
    runners: Vec<JoinHandle<()>>,
    completer: Option<JoinHandle<()>>,
    keeper: Option<JoinHandle<()>>,
}

impl WorkerHandle {
    /// The worker's name (the lease owner of its jobs).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Stops claiming, waits for the running handlers to return and their outcomes to be
    /// reported, and stops the heartbeat thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.store.signal().wake_all();
        for runner in self.runners.drain(..) {
            let _ = runner.join();
        }
        // The runners handed over their last outcomes; the completer sends them, then ends.
        self.shared.completions.close();
        if let Some(completer) = self.completer.take() {
            let _ = completer.join();
        }
        self.shared.reports.wait_all();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion(id: i64) -> Completion {
        Completion {
            id,
            lease: Lease {
                worker: "w".into(),
                token: id,
            },
            result: Value::Null,
        }
    }

    #[test]
    fn the_completer_takes_every_waiting_success_at_once_up_to_what_one_call_takes() {
        let completions = Completions::default();
        let max = crate::MAX_CLAIM as i64;
        for id in 0..max + 5 {
            completions.push(completion(id));
        }
        let first = completions.take().expect("a batch");
        assert_eq!(first.len(), crate::MAX_CLAIM as usize);
        assert_eq!(first.first().map(|c| c.id), Some(0), "oldest first");
        let second = completions.take().expect("the rest");
        let ids: Vec<i64> = second.iter().map(|c| c.id).collect();
        assert_eq!(ids, (max..max + 5).collect::<Vec<_>>());
        // Closed: what is left is still taken, then the completer ends.
        completions.push(completion(max + 5));
        completions.close();
        assert_eq!(completions.take().map(|b| b.len()), Some(1));
        assert!(completions.take().is_none());
    }

    #[test]
    fn the_completer_waits_for_a_success_and_wakes_for_it() {
        let completions = Arc::new(Completions::default());
        let taker = {
            let completions = Arc::clone(&completions);
            std::thread::spawn(move || completions.take())
        };
        completions.push(completion(7));
        let taken = taker.join().expect("the taker");
        assert_eq!(taken.map(|b| b.len()), Some(1));
    }
}
