//! The store's data types: jobs as read back, jobs to create, leases, steps, logs, events,
//! definitions and statistics. Plain data with serde derives; no SQL and no state logic.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::state::State;
use crate::{Error, Result};

/// Which tenants a store handle sees and touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One tenant's jobs, definitions and data only; another tenant's id is "not found".
    Tenant(String),
    /// Every tenant (an admin). Jobs created under this scope go to [`NewJob::tenant`], or to
    /// [`DEFAULT_TENANT`].
    All,
}

/// The label of jobs created through the native API (or the library directly): every other
/// API labels the jobs it creates with its own name.
pub const NATIVE: &str = "native";

/// The tenant of embedded use, and of every job created without one.
pub const DEFAULT_TENANT: &str = "default";

impl Scope {
    /// The one tenant this scope is limited to, or `None` for [`Scope::All`].
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Scope::Tenant(tenant) => Some(tenant),
            Scope::All => None,
        }
    }
}

impl Default for Scope {
    fn default() -> Self {
        Scope::Tenant(DEFAULT_TENANT.to_owned())
    }
}

/// A job as stored: one row of `jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Never reused (`AUTOINCREMENT`).
    pub id: i64,
    /// The tenant that owns the job.
    pub tenant: String,
    /// What kind of work this is; workers pick a handler by it.
    pub kind: String,
    /// The queue workers claim it from.
    pub queue: String,
    /// A human name (may be empty).
    pub name: String,
    /// Where the data comes from (free text; empty when not given).
    pub source: String,
    /// Where the data goes (free text; empty when not given).
    pub target: String,
    /// Who created it (a token name, a user; empty when not given).
    pub created_by: String,
    /// The label of the API that created it ([`NATIVE`], or another API's name), so that
    /// each API lists and reads its own jobs.
    pub dialect: String,
    /// The current state.
    pub state: State,
    /// Lower runs first.
    pub priority: i64,
    /// Not claimed before this time (ms since the Unix epoch).
    pub run_at: i64,
    /// Attempts started so far (claims since creation or the last restart).
    pub attempt: i64,
    /// Attempts allowed before a retryable failure becomes final.
    pub max_attempts: i64,
    /// The worker holding the lease (running jobs only).
    pub lease_owner: Option<String>,
    /// The fencing token of the current lease: it grows with every claim of this job, and
    /// every worker call must carry it.
    pub lease_token: Option<i64>,
    /// When the lease runs out unless extended by a heartbeat.
    pub lease_expires_at: Option<i64>,
    /// The last heartbeat of the current lease (`None` before the first one).
    pub heartbeat_at: Option<i64>,
    /// When a cancel was asked for.
    pub cancel_requested_at: Option<i64>,
    /// At most one live job per tenant holds a given key.
    pub unique_key: Option<String>,
    /// The job definition this job executes, if any.
    pub definition_id: Option<String>,
    /// The job this one restarts (definition executions restarted as a new job).
    pub restart_of: Option<i64>,
    /// Whether a failed or cancelled job may be restarted.
    pub restartable: bool,
    /// The request document.
    pub payload: Value,
    /// The result document of a succeeded job.
    pub result: Option<Value>,
    /// The last error reported.
    pub error: Option<String>,
    /// Progress counters reported by the worker (a JSON object, merged on every report).
    pub progress: Value,
    /// A short free text the worker may set (e.g. `update`).
    pub phase: Option<String>,
    /// Creation time (ms since the Unix epoch, UTC).
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// Start of the current (or last) attempt.
    pub started_at: Option<i64>,
    /// When it reached a terminal state.
    pub finished_at: Option<i64>,
}

impl Job {
    /// The lease a worker must present for this job, if it is running.
    pub fn lease(&self) -> Option<Lease> {
        match (&self.lease_owner, self.lease_token) {
            (Some(worker), Some(token)) => Some(Lease {
                worker: worker.clone(),
                token,
            }),
            _ => None,
        }
    }
}

/// What a worker presents on every call about a job it claimed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Lease {
    /// The worker's name, as given when claiming.
    pub worker: String,
    /// The fencing token handed out with the claim.
    pub token: i64,
}

/// A job to create. Build it with [`NewJob::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Required, non-empty.
    pub kind: String,
    /// Default `default`.
    pub queue: String,
    /// Default empty.
    pub name: String,
    /// Default empty.
    pub source: String,
    /// Default empty.
    pub target: String,
    /// Default empty.
    pub created_by: String,
    /// Default `native`.
    pub dialect: String,
    /// Lower runs first; default 0.
    pub priority: i64,
    /// Not before this time (ms); default now.
    pub run_at: Option<i64>,
    /// Default 3.
    pub max_attempts: i64,
    /// At most one live job per key (per tenant).
    pub unique_key: Option<String>,
    /// A retried create with the same key returns the first job instead of a second one.
    pub idempotency_key: Option<String>,
    /// The request document; default `null`.
    pub payload: Value,
    /// Start `open`, accepting data batches until closed.
    pub upload: bool,
    /// Whether a failed or cancelled run may be restarted; default true.
    pub restartable: bool,
    /// The tenant, honoured only under [`Scope::All`]; other scopes use their own tenant.
    pub tenant: Option<String>,
}

impl NewJob {
    /// A job of `kind` with every other field at its default.
    pub fn new(kind: impl Into<String>) -> NewJob {
        NewJob {
            kind: kind.into(),
            queue: "default".into(),
            name: String::new(),
            source: String::new(),
            target: String::new(),
            created_by: String::new(),
            dialect: NATIVE.into(),
            priority: 0,
            run_at: None,
            max_attempts: 3,
            unique_key: None,
            idempotency_key: None,
            payload: Value::Null,
            upload: false,
            restartable: true,
            tenant: None,
        }
    }

    /// Sets the queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }
    /// Sets the name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets the source.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }
    /// Sets the target.
    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = target.into();
        self
    }
    /// Sets who created the job.
    pub fn created_by(mut self, created_by: impl Into<String>) -> Self {
        self.created_by = created_by.into();
        self
    }
    /// Sets the dialect that created the job.
    pub fn dialect(mut self, dialect: impl Into<String>) -> Self {
        self.dialect = dialect.into();
        self
    }
    /// Sets the priority (lower runs first).
    pub fn priority(mut self, priority: i64) -> Self {
        self.priority = priority;
        self
    }
    /// Schedules the job for a time (ms since the Unix epoch).
    pub fn run_at(mut self, run_at_ms: i64) -> Self {
        self.run_at = Some(run_at_ms);
        self
    }
    /// Sets how many attempts a retryable failure gets.
    pub fn max_attempts(mut self, max_attempts: i64) -> Self {
        self.max_attempts = max_attempts;
        self
    }
    /// Sets the unique key.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }
    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// Sets the payload document.
    pub fn payload(mut self, payload: Value) -> Self {
        self.payload = payload;
        self
    }
    /// Sets the payload from JSON text.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming `payload` when the text is not JSON, or holds a number
    /// that could not be kept exactly (see [`crate::exact_json`]).
    pub fn payload_json(mut self, text: &str) -> Result<Self> {
        crate::exact_json::check_numbers(text.as_bytes())
            .map_err(|reason| Error::invalid("payload", reason))?;
        self.payload = serde_json::from_str(text)
            .map_err(|err| Error::invalid("payload", format!("malformed json: {err}")))?;
        Ok(self)
    }
    /// Starts the job `open` (accepting data batches) instead of `queued`.
    pub fn upload(mut self, upload: bool) -> Self {
        self.upload = upload;
        self
    }
    /// Allows or forbids restarts.
    pub fn restartable(mut self, restartable: bool) -> Self {
        self.restartable = restartable;
        self
    }
    /// Sets the tenant (honoured under [`Scope::All`] only).
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }
}

/// A request to lease jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// The worker's name; it must be repeated on every call about the jobs it gets.
    pub worker: String,
    /// The queues to take jobs from.
    pub queues: Vec<String>,
    /// At most this many jobs.
    pub max: u32,
    /// How long the lease lasts without a heartbeat (ms).
    pub lease_ms: i64,
}

impl ClaimRequest {
    /// Up to one job of `queue` for `worker`, with a 30 s lease.
    pub fn new(worker: impl Into<String>, queue: impl Into<String>) -> ClaimRequest {
        ClaimRequest {
            worker: worker.into(),
            queues: vec![queue.into()],
            max: 1,
            lease_ms: 30_000,
        }
    }
}

/// What a heartbeat carries besides "alive".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Members merged into the job's progress document (JSON merge patch).
    pub progress: Option<Value>,
    /// A new phase text.
    pub phase: Option<String>,
    /// Extend the lease by this much from now (ms); default: the length of the lease the job
    /// holds (what its claim, or the last heartbeat that named one, asked for).
    pub lease_ms: Option<i64>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    /// A client asked to cancel the job: stop, then call `fail` to acknowledge.
    pub cancel_requested: bool,
    /// The lease now runs until this time.
    pub lease_expires_at: i64,
}

/// One job's successful end, as given to [`crate::Store::complete_many`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// The job.
    pub id: i64,
    /// The lease it was claimed under.
    pub lease: Lease,
    /// Its result document.
    pub result: serde_json::Value,
}

/// How a worker reports a failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What went wrong.
    pub error: String,
    /// Whether another attempt may succeed (retry with backoff while attempts remain).
    pub retryable: bool,
}

impl Failure {
    /// A failure that is retried while attempts remain.
    pub fn retryable(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retryable: true,
        }
    }
    /// A failure that ends the job at once.
    pub fn fatal(error: impl Into<String>) -> Failure {
        Failure {
            error: error.into(),
            retryable: false,
        }
    }
}

/// The status of one step of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished well.
    Ok,
    /// Finished with an error.
    Error,
}

impl StepStatus {
    /// The name stored in `job_steps.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Running => "running",
            StepStatus::Ok => "ok",
            StepStatus::Error => "error",
        }
    }

    /// Whether the step is over.
    pub fn is_finished(self) -> bool {
        matches!(self, StepStatus::Ok | StepStatus::Error)
    }
}

impl std::str::FromStr for StepStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(StepStatus::Pending),
            "running" => Ok(StepStatus::Running),
            "ok" => Ok(StepStatus::Ok),
            "error" => Ok(StepStatus::Error),
            other => Err(Error::invalid(
                "status",
                format!("unknown step status `{other}`; valid: pending, running, ok, error"),
            )),
        }
    }
}

/// One step of a job, as the worker reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// 0-based order within the job.
    pub position: i64,
    /// The step's id within its definition.
    pub step_id: String,
    /// The step's type.
    pub step_type_id: String,
    /// A description.
    pub description: String,
    /// The scope it runs in (e.g. a site).
    pub execution_scope: String,
    /// Its status.
    pub status: StepStatus,
    /// The exit code reported when it finished (e.g. `OK`, `ERROR`).
    pub exit_code: Option<String>,
    /// A message reported with it.
    pub message: Option<String>,
    /// When it started.
    pub started_at: Option<i64>,
    /// When it finished.
    pub finished_at: Option<i64>,
    /// Last change.
    pub updated_at: i64,
}

/// A step start or finish reported by the lease holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    /// `running` (started), `ok` or `error` (finished).
    pub status: StepStatus,
    /// The exit code (finished steps).
    pub exit_code: Option<String>,
    /// A message.
    pub message: Option<String>,
}

/// A named job with ordered steps, executed as jobs on its queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Definition {
    /// Unique within the tenant.
    pub id: String,
    /// A description.
    pub description: String,
    /// The queue its executions go to.
    pub queue: String,
    /// Whether a failed or cancelled execution may be restarted.
    pub restartable: bool,
    /// Whether it may be executed at all.
    pub enabled: bool,
    /// Whether it is valid (an invalid definition is refused with its cause).
    pub valid: bool,
    /// The steps, in order.
    pub steps: Vec<DefinitionStep>,
    /// Creation time (set by the store).
    pub created_at: i64,
    /// Last change (set by the store).
    pub updated_at: i64,
}

impl Definition {
    /// A valid, enabled, restartable definition with the given steps, its executions queued
    /// on `queue`.
    pub fn new(
        id: impl Into<String>,
        queue: impl Into<String>,
        steps: Vec<DefinitionStep>,
    ) -> Definition {
        Definition {
            id: id.into(),
            description: String::new(),
            queue: queue.into(),
            restartable: true,
            enabled: true,
            valid: true,
            steps,
            created_at: 0,
            updated_at: 0,
        }
    }
}

/// One step of a definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionStep {
    /// Unique within the definition.
    pub step_id: String,
    /// The step's type (what a worker must know how to run).
    pub step_type_id: String,
    /// A description.
    pub description: String,
    /// The scope it runs in.
    pub execution_scope: String,
}

impl DefinitionStep {
    /// A step with an id and a type.
    pub fn new(step_id: impl Into<String>, step_type_id: impl Into<String>) -> DefinitionStep {
        DefinitionStep {
            step_id: step_id.into(),
            step_type_id: step_type_id.into(),
            description: String::new(),
            execution_scope: String::new(),
        }
    }
}

/// How to execute a definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    /// Restart the latest execution, which must have failed or been cancelled: its steps that
    /// finished ok are copied as finished.
    pub restart: bool,
    /// Stored as the job's payload (an API's execution parameters, say).
    pub payload: Value,
    /// Who executes it.
    pub created_by: String,
    /// The API used.
    pub dialect: Option<String>,
}

/// The level of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Detailed.
    Debug,
    /// Ordinary.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// The name stored in `job_logs.level`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

impl std::str::FromStr for LogLevel {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "trace" => Ok(LogLevel::Trace),
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            other => Err(Error::invalid(
                "level",
                format!("unknown log level `{other}`; valid: trace, debug, info, warn, error"),
            )),
        }
    }
}

/// One log line of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Increases with every line appended (across jobs); use it to read on from a line.
    pub seq: i64,
    /// When it was appended.
    pub at: i64,
    /// Its level.
    pub level: LogLevel,
    /// Its text.
    pub message: String,
}

/// One transition in a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEvent {
    /// Increases with every event.
    pub seq: i64,
    /// When it happened.
    pub at: i64,
    /// The event's name (`create`, `claim`, ...).
    pub event: String,
    /// The state before (`None` for `create`).
    pub from: Option<State>,
    /// The state after.
    pub to: State,
    /// Who caused it (worker, user; may be empty).
    pub actor: String,
    /// Free text (an error, a batch number).
    pub detail: Option<String>,
}

/// One uploaded data batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataBatch {
    /// 1-based order within the job.
    pub batch: i64,
    /// Its size.
    pub bytes: i64,
    /// When it was uploaded.
    pub created_at: i64,
}

/// One named output of a job ([`Store::outputs`](crate::Store::outputs)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Its name, as the worker gave it.
    pub name: String,
    /// How many batches it was uploaded in.
    pub batches: i64,
    /// Its size.
    pub bytes: i64,
}

/// Jobs in one queue and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueCount {
    /// The queue.
    pub queue: String,
    /// The state.
    pub state: State,
    /// How many jobs.
    pub jobs: i64,
}

/// Jobs created and finished in one interval of time ([`Store::throughput`](crate::Store::throughput)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThroughputBucket {
    /// The interval's start (ms since the Unix epoch); it lasts the bucket length asked for.
    pub start: i64,
    /// Jobs created in it (still stored).
    pub created: i64,
    /// Jobs that ended `succeeded` in it (still stored, not restarted since).
    pub succeeded: i64,
    /// Jobs that ended `failed` in it (still stored, not restarted since).
    pub failed: i64,
}

/// What waits and runs in one queue ([`Store::queue_activity`](crate::Store::queue_activity)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueActivity {
    /// The queue.
    pub queue: String,
    /// Jobs `queued` (due or scheduled).
    pub queued: i64,
    /// Jobs `queued` whose `run_at` has come: what workers could claim now.
    pub due: i64,
    /// Jobs `running`.
    pub running: i64,
    /// Jobs that ended `failed` since the time asked for.
    pub failed_since: i64,
    /// The due job that has waited longest (smallest `run_at`), if any.
    pub oldest_due_id: Option<i64>,
    /// Since when it waits (its `run_at`).
    pub oldest_due_since: Option<i64>,
}

/// The live jobs of one tenant's queue ([`Store::live_counts`](crate::Store::live_counts)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveCount {
    /// The tenant.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// Jobs `queued` (due or scheduled).
    pub queued: i64,
    /// Jobs `running`.
    pub running: i64,
}

/// What an integrity check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Each problem found; empty when the database is sound.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}
