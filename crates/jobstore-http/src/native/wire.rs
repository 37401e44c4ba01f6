//! The native API's wire types: the JSON bodies it reads, with unknown fields refused, and
//! the documents it answers, each converted from the core's types by an explicit `From`, so
//! that the wire changes only here (a renamed core field does not rename a JSON key). The
//! OpenAPI schemas are derived from these same types.

use jobstore::SortField;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{
    AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Array, RefOr};
use utoipa::{IntoParams, ToSchema};

use crate::fault::{ApiError, ErrorKind};

/// Any JSON document the API stores (payloads, results, progress): its integers are kept
/// exactly from -2^63 to 2^64-1 and every other number as an IEEE double; a number that would
/// not come back as sent is refused (400 `invalid_json`).
pub(crate) struct JsonValue;

impl utoipa::PartialSchema for JsonValue {
    fn schema() -> RefOr<Schema> {
        let this = || RefOr::Ref(utoipa::openapi::Ref::from_schema_name("JsonValue"));
        let of = |kind| ObjectBuilder::new().schema_type(SchemaType::new(kind));
        AnyOfBuilder::new()
            .description(Some(
                "Any JSON value. Integers are kept exactly from -2^63 to 2^64-1, other \
                 numbers as IEEE doubles; a number that would not come back as sent is refused.",
            ))
            .item(of(Type::Null))
            .item(of(Type::Boolean))
            .item(of(Type::String))
            .item(
                of(Type::Integer)
                    .minimum(Some(i64::MIN))
                    .maximum(Some(u64::MAX)),
            )
            .item(of(Type::Number))
            .item(ArrayBuilder::new().items(this()))
            .item(of(Type::Object).additional_properties(Some(this())))
            .into()
    }
}

impl ToSchema for JsonValue {}

/// A JSON object of [`JsonValue`]s.
fn json_object() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::Object))
        .additional_properties(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "JsonValue",
        ))))
        .into()
}

/// A JSON object of [`JsonValue`]s, or `null`.
fn json_object_or_null() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .additional_properties(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
            "JsonValue",
        ))))
        .into()
}

/// The state of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    /// Created with an upload phase: accepts data batches, not yet runnable.
    Open,
    /// Waiting for a worker (or for its `run_at`, or to retry).
    Queued,
    /// Leased by a worker.
    Running,
    /// Completed by its worker.
    Succeeded,
    /// A fatal error, or attempts exhausted.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl From<jobstore::State> for JobState {
    fn from(state: jobstore::State) -> Self {
        use jobstore::State as S;
        match state {
            S::Open => JobState::Open,
            S::Queued => JobState::Queued,
            S::Running => JobState::Running,
            S::Succeeded => JobState::Succeeded,
            S::Failed => JobState::Failed,
            S::Cancelled => JobState::Cancelled,
        }
    }
}

/// A job. Every field is always present (`null` when it has no value); `steps`,
/// `data_batches` and `data_bytes` only in the answer about one job.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Job {
    /// The job's id (never reused).
    id: i64,
    /// The tenant that owns the job.
    tenant: String,
    /// What kind of work this is.
    kind: String,
    /// The queue workers claim it from.
    queue: String,
    /// A human name (may be empty).
    name: String,
    /// Where the data comes from (may be empty).
    source: String,
    /// Where the data goes (may be empty).
    target: String,
    /// Who created it.
    created_by: String,
    /// The API that created it (`native`, or a vendor API's name).
    dialect: String,
    /// The current state.
    state: JobState,
    /// Lower runs first.
    priority: i64,
    /// Not claimed before this time (ms since the Unix epoch).
    run_at: i64,
    /// Attempts started so far.
    attempt: i64,
    /// Attempts allowed before a retryable failure becomes final.
    max_attempts: i64,
    /// The worker holding the lease (running jobs only).
    #[schema(required = true)]
    lease_owner: Option<String>,
    /// The fencing token of the current lease, sent back on every worker call.
    #[schema(required = true)]
    lease_token: Option<i64>,
    /// When the lease runs out unless a heartbeat extends it.
    #[schema(required = true)]
    lease_expires_at: Option<i64>,
    /// The last heartbeat of the current lease.
    #[schema(required = true)]
    heartbeat_at: Option<i64>,
    /// When a cancel was asked for.
    #[schema(required = true)]
    cancel_requested_at: Option<i64>,
    /// At most one live job per tenant holds a given key.
    #[schema(required = true)]
    unique_key: Option<String>,
    /// The job definition this job executes.
    #[schema(required = true)]
    definition_id: Option<String>,
    /// The job this one restarts.
    #[schema(required = true)]
    restart_of: Option<i64>,
    /// Whether a failed or cancelled job may be restarted.
    restartable: bool,
    /// The request document.
    #[schema(value_type = JsonValue)]
    payload: Value,
    /// The result document of a succeeded job.
    #[schema(value_type = JsonValue, required = true)]
    result: Option<Value>,
    /// The last error reported.
    #[schema(required = true)]
    error: Option<String>,
    /// Progress counters reported by the worker.
    #[schema(schema_with = json_object)]
    progress: Value,
    /// A short text the worker may set.
    #[schema(required = true)]
    phase: Option<String>,
    /// Creation time (ms since the Unix epoch).
    created_at: i64,
    /// Last change.
    updated_at: i64,
    /// Start of the current (or last) attempt.
    #[schema(required = true)]
    started_at: Option<i64>,
    /// When it reached a terminal state.
    #[schema(required = true)]
    finished_at: Option<i64>,
    /// Its steps (one job only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = steps_schema)]
    steps: Option<Vec<Step>>,
    /// How many data batches it holds (one job only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    data_batches: Option<u64>,
    /// The size of all its data batches, in bytes (one job only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = u64)]
    data_bytes: Option<i64>,
    /// Its data batches in order: number, size and upload time (one job only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = batches_schema)]
    batches: Option<Vec<DataBatch>>,
}

/// `batches` of a job: an array of [`DataBatch`], present only on one job.
fn batches_schema() -> Array {
    Array::new(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
        "DataBatch",
    )))
}

/// `steps` of a job: an array of [`Step`], present only on one job.
fn steps_schema() -> Array {
    Array::new(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("Step")))
}

impl From<jobstore::Job> for Job {
    fn from(job: jobstore::Job) -> Self {
        Job {
            id: job.id,
            tenant: job.tenant,
            kind: job.kind,
            queue: job.queue,
            name: job.name,
            source: job.source,
            target: job.target,
            created_by: job.created_by,
            dialect: job.dialect,
            state: job.state.into(),
            priority: job.priority,
            run_at: job.run_at,
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            lease_owner: job.lease_owner,
            lease_token: job.lease_token,
            lease_expires_at: job.lease_expires_at,
            heartbeat_at: job.heartbeat_at,
            cancel_requested_at: job.cancel_requested_at,
            unique_key: job.unique_key,
            definition_id: job.definition_id,
            restart_of: job.restart_of,
            restartable: job.restartable,
            payload: job.payload,
            result: job.result,
            error: job.error,
            progress: job.progress,
            phase: job.phase,
            created_at: job.created_at,
            updated_at: job.updated_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            steps: None,
            data_batches: None,
            data_bytes: None,
            batches: None,
        }
    }
}

impl Job {
    /// The answer about one job: the job with its steps and the count and size of its data.
    pub(crate) fn detailed(
        job: jobstore::Job,
        steps: Vec<jobstore::Step>,
        batches: &[jobstore::DataBatch],
    ) -> Job {
        Job {
            steps: Some(steps.into_iter().map(Step::from).collect()),
            data_batches: Some(batches.len() as u64),
            data_bytes: Some(batches.iter().map(|b| b.bytes).sum()),
            batches: Some(batches.iter().copied().map(DataBatch::from).collect()),
            ..Job::from(job)
        }
    }
}

/// The status of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StepStatus {
    /// Not started.
    Pending,
    /// Started, not finished.
    Running,
    /// Finished well.
    Ok,
    /// Finished with an error.
    Error,
}

impl From<jobstore::StepStatus> for StepStatus {
    fn from(status: jobstore::StepStatus) -> Self {
        use jobstore::StepStatus as S;
        match status {
            S::Pending => StepStatus::Pending,
            S::Running => StepStatus::Running,
            S::Ok => StepStatus::Ok,
            S::Error => StepStatus::Error,
        }
    }
}

/// One step of a job, as its worker reported it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Step {
    /// 0-based order within the job.
    position: i64,
    /// The step's id within its definition.
    step_id: String,
    /// The step's type.
    step_type_id: String,
    /// A description.
    description: String,
    /// The scope it runs in.
    execution_scope: String,
    /// Its status.
    status: StepStatus,
    /// The exit code reported when it finished.
    #[schema(required = true)]
    exit_code: Option<String>,
    /// A message reported with it.
    #[schema(required = true)]
    message: Option<String>,
    /// When it started.
    #[schema(required = true)]
    started_at: Option<i64>,
    /// When it finished.
    #[schema(required = true)]
    finished_at: Option<i64>,
    /// Last change.
    updated_at: i64,
}

impl From<jobstore::Step> for Step {
    fn from(step: jobstore::Step) -> Self {
        Step {
            position: step.position,
            step_id: step.step_id,
            step_type_id: step.step_type_id,
            description: step.description,
            execution_scope: step.execution_scope,
            status: step.status.into(),
            exit_code: step.exit_code,
            message: step.message,
            started_at: step.started_at,
            finished_at: step.finished_at,
            updated_at: step.updated_at,
        }
    }
}

/// A job definition: a named job with ordered steps, executed as jobs on its queue.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Definition {
    /// Unique within the tenant.
    id: String,
    /// A description.
    description: String,
    /// The queue its executions go to.
    queue: String,
    /// Whether a failed or cancelled execution may be restarted.
    restartable: bool,
    /// Whether it may be executed.
    enabled: bool,
    /// Whether it is valid.
    valid: bool,
    /// The steps, in order.
    steps: Vec<DefinitionStep>,
    /// Creation time.
    created_at: i64,
    /// Last change.
    updated_at: i64,
}

impl From<jobstore::Definition> for Definition {
    fn from(definition: jobstore::Definition) -> Self {
        Definition {
            id: definition.id,
            description: definition.description,
            queue: definition.queue,
            restartable: definition.restartable,
            enabled: definition.enabled,
            valid: definition.valid,
            steps: definition
                .steps
                .into_iter()
                .map(DefinitionStep::from)
                .collect(),
            created_at: definition.created_at,
            updated_at: definition.updated_at,
        }
    }
}

/// One step of a definition.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct DefinitionStep {
    /// Unique within the definition.
    step_id: String,
    /// The step's type.
    step_type_id: String,
    /// A description.
    description: String,
    /// The scope it runs in.
    execution_scope: String,
}

impl From<jobstore::DefinitionStep> for DefinitionStep {
    fn from(step: jobstore::DefinitionStep) -> Self {
        DefinitionStep {
            step_id: step.step_id,
            step_type_id: step.step_type_id,
            description: step.description,
            execution_scope: step.execution_scope,
        }
    }
}

/// One transition in a job's history.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct JobEvent {
    /// Increases with every event.
    seq: i64,
    /// When it happened.
    at: i64,
    /// The event's name (`create`, `claim`, ...).
    event: String,
    /// The state before (`null` for `create`).
    #[schema(required = true)]
    from: Option<JobState>,
    /// The state after.
    to: JobState,
    /// Who caused it (may be empty).
    actor: String,
    /// Free text (an error, a batch number).
    #[schema(required = true)]
    detail: Option<String>,
}

impl From<jobstore::JobEvent> for JobEvent {
    fn from(event: jobstore::JobEvent) -> Self {
        JobEvent {
            seq: event.seq,
            at: event.at,
            event: event.event,
            from: event.from.map(JobState::from),
            to: event.to.into(),
            actor: event.actor,
            detail: event.detail,
        }
    }
}

/// One uploaded data batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct DataBatch {
    /// 1-based order within the job.
    batch: i64,
    /// Its size in bytes.
    bytes: i64,
    /// When it was uploaded.
    created_at: i64,
}

impl From<jobstore::DataBatch> for DataBatch {
    fn from(batch: jobstore::DataBatch) -> Self {
        DataBatch {
            batch: batch.batch,
            bytes: batch.bytes,
            created_at: batch.created_at,
        }
    }
}

/// Jobs in one queue and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct QueueCount {
    /// The queue.
    queue: String,
    /// The state.
    state: JobState,
    /// How many jobs.
    jobs: i64,
}

impl From<jobstore::QueueCount> for QueueCount {
    fn from(count: jobstore::QueueCount) -> Self {
        QueueCount {
            queue: count.queue,
            state: count.state.into(),
            jobs: count.jobs,
        }
    }
}

/// `GET /v1/stats`: job counts by queue and state (only non-zero counts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct Stats {
    /// One row per queue and state holding jobs.
    stats: Vec<QueueCount>,
}

impl From<Vec<jobstore::QueueCount>> for Stats {
    fn from(counts: Vec<jobstore::QueueCount>) -> Self {
        Stats {
            stats: counts.into_iter().map(QueueCount::from).collect(),
        }
    }
}

/// Jobs created and ended in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct ThroughputBucket {
    /// The minute's start (ms since the Unix epoch).
    start: i64,
    /// Jobs created in it.
    created: i64,
    /// Jobs that ended `succeeded` in it.
    succeeded: i64,
    /// Jobs that ended `failed` in it.
    failed: i64,
}

impl From<jobstore::ThroughputBucket> for ThroughputBucket {
    fn from(bucket: jobstore::ThroughputBucket) -> Self {
        ThroughputBucket {
            start: bucket.start,
            created: bucket.created,
            succeeded: bucket.succeeded,
            failed: bucket.failed,
        }
    }
}

/// `GET /v1/throughput`: jobs created, succeeded and failed per minute, oldest first, the
/// current minute last. Jobs count where they are now: a deleted job no longer counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct Throughput {
    /// The length of each interval (ms): 60000.
    bucket_ms: i64,
    /// One per minute, every minute of the window.
    buckets: Vec<ThroughputBucket>,
}

impl Throughput {
    /// The answer for `buckets` of `bucket_ms` each.
    pub(crate) fn new(bucket_ms: i64, buckets: Vec<jobstore::ThroughputBucket>) -> Self {
        Throughput {
            bucket_ms,
            buckets: buckets.into_iter().map(ThroughputBucket::from).collect(),
        }
    }
}

/// What waits and runs in one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct QueueSummary {
    /// The queue.
    queue: String,
    /// Jobs `queued` (due or scheduled).
    queued: i64,
    /// Jobs `queued` whose `run_at` has come.
    due: i64,
    /// Jobs `running`.
    running: i64,
    /// Jobs that ended `failed` in the last hour.
    failed_last_hour: i64,
    /// The due job that has waited longest.
    #[schema(required = true)]
    oldest_due_id: Option<i64>,
    /// Since when it waits (its `run_at`, ms since the Unix epoch).
    #[schema(required = true)]
    oldest_due_since: Option<i64>,
}

impl From<jobstore::QueueActivity> for QueueSummary {
    fn from(activity: jobstore::QueueActivity) -> Self {
        QueueSummary {
            queue: activity.queue,
            queued: activity.queued,
            due: activity.due,
            running: activity.running,
            failed_last_hour: activity.failed_since,
            oldest_due_id: activity.oldest_due_id,
            oldest_due_since: activity.oldest_due_since,
        }
    }
}

/// `GET /v1/queues`: every queue with live jobs or failures in the last hour, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct Queues {
    /// One per queue.
    queues: Vec<QueueSummary>,
}

impl From<Vec<jobstore::QueueActivity>> for Queues {
    fn from(queues: Vec<jobstore::QueueActivity>) -> Self {
        Queues {
            queues: queues.into_iter().map(QueueSummary::from).collect(),
        }
    }
}

/// One queue's live jobs at one sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct DepthSample {
    /// When the sample was taken (ms since the Unix epoch).
    pub(crate) at: i64,
    /// The queue.
    pub(crate) queue: String,
    /// Jobs `queued` then.
    pub(crate) queued: i64,
    /// Jobs `running` then.
    pub(crate) running: i64,
}

/// `GET /v1/queues/depth`: queue depth over time, sampled by this daemon since it started
/// (at most the last hour); a queue without live jobs at a sample has no row in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct QueueDepth {
    /// How often the daemon samples (ms).
    pub(crate) interval_ms: i64,
    /// When this daemon started (ms since the Unix epoch): no sample is older.
    pub(crate) since: i64,
    /// The samples, oldest first, by queue within one sample.
    pub(crate) samples: Vec<DepthSample>,
}

/// The jobs one worker runs.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct BusyWorker {
    /// The worker's name (the jobs' `lease_owner`).
    worker: String,
    /// Its running jobs.
    jobs: Vec<Job>,
}

/// `GET /v1/workers`: the workers holding leases on running jobs, by name, with those jobs
/// (at most 1000 jobs in all).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Workers {
    /// One per worker.
    workers: Vec<BusyWorker>,
}

impl From<Vec<jobstore::Job>> for Workers {
    fn from(jobs: Vec<jobstore::Job>) -> Self {
        let mut workers: Vec<BusyWorker> = Vec::new();
        for job in jobs {
            let worker = job.lease_owner.clone().unwrap_or_default();
            match workers.last_mut() {
                Some(last) if last.worker == worker => last.jobs.push(Job::from(job)),
                _ => workers.push(BusyWorker {
                    worker,
                    jobs: vec![Job::from(job)],
                }),
            }
        }
        Workers { workers }
    }
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct HeartbeatAnswer {
    /// A client asked to cancel the job: stop, then call `fail` to acknowledge.
    cancel_requested: bool,
    /// The lease now runs until this time.
    lease_expires_at: i64,
}

impl From<jobstore::HeartbeatAnswer> for HeartbeatAnswer {
    fn from(answer: jobstore::HeartbeatAnswer) -> Self {
        HeartbeatAnswer {
            cancel_requested: answer.cancel_requested,
            lease_expires_at: answer.lease_expires_at,
        }
    }
}

/// `GET /v1/jobs`: a page of jobs and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct JobList {
    /// The page's jobs.
    jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

impl From<jobstore::JobPage> for JobList {
    fn from(page: jobstore::JobPage) -> Self {
        JobList {
            jobs: page.jobs.into_iter().map(Job::from).collect(),
            next_cursor: page.next_cursor.map(|cursor| cursor.encode()),
        }
    }
}

/// `POST /v1/claim`: the jobs leased to the worker, each with its `lease_token`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Claimed {
    /// The jobs (none when the wait ran out).
    jobs: Vec<Job>,
}

impl From<Vec<jobstore::Job>> for Claimed {
    fn from(jobs: Vec<jobstore::Job>) -> Self {
        Claimed {
            jobs: jobs.into_iter().map(Job::from).collect(),
        }
    }
}

/// `GET /v1/jobs/{id}/events`: a job's transitions, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Events {
    /// The transitions.
    events: Vec<JobEvent>,
}

impl From<Vec<jobstore::JobEvent>> for Events {
    fn from(events: Vec<jobstore::JobEvent>) -> Self {
        Events {
            events: events.into_iter().map(JobEvent::from).collect(),
        }
    }
}

/// A job's steps after a step report.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Steps {
    /// The steps, in order.
    steps: Vec<Step>,
}

impl From<Vec<jobstore::Step>> for Steps {
    fn from(steps: Vec<jobstore::Step>) -> Self {
        Steps {
            steps: steps.into_iter().map(Step::from).collect(),
        }
    }
}

/// `GET /v1/definitions`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub(crate) struct Definitions {
    /// Every definition of the tenant.
    definitions: Vec<Definition>,
}

impl From<Vec<jobstore::Definition>> for Definitions {
    fn from(definitions: Vec<jobstore::Definition>) -> Self {
        Definitions {
            definitions: definitions.into_iter().map(Definition::from).collect(),
        }
    }
}

/// The answer to appended log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct Appended {
    /// How many lines were appended.
    appended: u64,
}

impl From<usize> for Appended {
    fn from(appended: usize) -> Self {
        Appended {
            appended: appended as u64,
        }
    }
}

/// Every native error answer: `{"error": {"type", "message"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct ErrorDocument {
    /// What went wrong.
    error: ErrorDetail,
}

/// The error of an [`ErrorDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// The stable, machine-readable type.
    #[serde(rename = "type")]
    #[schema(schema_with = error_types)]
    kind: &'static str,
    /// A readable message.
    message: String,
}

impl From<&ApiError> for ErrorDocument {
    fn from(err: &ApiError) -> Self {
        ErrorDocument {
            error: ErrorDetail {
                kind: err.kind.as_str(),
                message: err.message.clone(),
            },
        }
    }
}

/// The error types, from the fault table itself.
fn error_types() -> Schema {
    let mut types: Vec<&str> = ErrorKind::ALL.iter().map(|kind| kind.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(types))
        .into()
}

/// Integers of request bodies as JSON has them: `3`, or a number without a fraction written
/// otherwise (`3.0`, `3e0`), which JSON Schema counts as the same integer. A fraction, or a
/// value out of the field's range, is refused.
mod integer {
    use std::fmt;

    use serde::de::{self, Deserializer, Unexpected, Visitor};

    struct Integral;

    impl Visitor<'_> for Integral {
        type Value = i128;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
            Ok(i128::from(v))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
            Ok(i128::from(v))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
            // Every integral f64 below 2^64 in magnitude converts exactly.
            const LIMIT: f64 = 18_446_744_073_709_551_616.0;
            if v.is_finite() && v.fract() == 0.0 && v.abs() < LIMIT {
                Ok(v as i128)
            } else {
                Err(E::invalid_type(Unexpected::Float(v), &self))
            }
        }
    }

    fn convert<T: TryFrom<i128>, E: de::Error>(value: i128) -> Result<T, E> {
        T::try_from(value).map_err(|_| {
            E::invalid_value(
                Unexpected::Other(&format!("integer `{value}`")),
                &"an integer in the field's range",
            )
        })
    }

    /// A required integer.
    pub(super) fn required<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i128>,
    {
        convert(deserializer.deserialize_any(Integral)?)
    }

    /// An optional integer (`null` or absent: `None`; the field needs `#[serde(default)]`).
    pub(super) fn optional<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i128>,
    {
        struct Maybe;

        impl<'de> Visitor<'de> for Maybe {
            type Value = Option<i128>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or null")
            }

            fn visit_none<E: de::Error>(self) -> Result<Option<i128>, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Option<i128>, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<i128>, D::Error> {
                d.deserialize_any(Integral).map(Some)
            }
        }

        deserializer
            .deserialize_option(Maybe)?
            .map(convert)
            .transpose()
    }
}

/// `POST /v1/jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"kind": "export", "queue": "default", "payload": {"rows": 10}}))]
pub(crate) struct CreateJob {
    /// What kind of work this is (not blank). No text field of a job holds U+0000.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub(crate) kind: String,
    /// The queue (not blank); default `default`.
    #[schema(
        min_length = 1,
        max_length = 1024,
        pattern = r"^[^\x00]*[^\s\x00][^\x00]*$"
    )]
    pub(crate) queue: Option<String>,
    /// A human name.
    #[schema(max_length = 1024, pattern = r"^[^\x00]*$")]
    pub(crate) name: Option<String>,
    /// The request document; default `null`.
    #[schema(value_type = JsonValue, required = false)]
    pub(crate) payload: Option<Value>,
    /// Lower runs first; default 0.
    #[serde(default, deserialize_with = "integer::optional")]
    pub(crate) priority: Option<i64>,
    /// Not claimed before this time (ms since the Unix epoch); default now.
    #[serde(default, deserialize_with = "integer::optional")]
    pub(crate) run_at: Option<i64>,
    /// Attempts a retryable failure gets; default 3.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "integer::optional")]
    pub(crate) max_attempts: Option<i64>,
    /// At most one live job of the tenant holds the key (409 `job_already_running`). Keys
    /// beginning with `definition:` are the executions' of definitions (400).
    // The pattern: no U+0000, and not beginning with `definition:`, written without a
    // lookahead, which not every JSON Schema tool reads.
    #[schema(
        max_length = 1024,
        pattern = r"^(?:[^d\x00][^\x00]*|d(?:[^e\x00][^\x00]*|e(?:[^f\x00][^\x00]*|f(?:[^i\x00][^\x00]*|i(?:[^n\x00][^\x00]*|n(?:[^i\x00][^\x00]*|i(?:[^t\x00][^\x00]*|t(?:[^i\x00][^\x00]*|i(?:[^o\x00][^\x00]*|o(?:[^n\x00][^\x00]*|n(?:[^:\x00][^\x00]*)?)?)?)?)?)?)?)?)?)?)?$"
    )]
    pub(crate) unique_key: Option<String>,
    /// Where the data comes from.
    #[schema(max_length = 1024, pattern = r"^[^\x00]*$")]
    pub(crate) source: Option<String>,
    /// Where the data goes.
    #[schema(max_length = 1024, pattern = r"^[^\x00]*$")]
    pub(crate) target: Option<String>,
    /// Start `open`, accepting data batches until closed.
    pub(crate) upload: Option<bool>,
    /// Whether a failed or cancelled run may be restarted; default true.
    pub(crate) restartable: Option<bool>,
    /// Admins only (403 otherwise): the tenant to create the job in.
    pub(crate) tenant: Option<String>,
}

/// `POST /v1/claim`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"worker": "w1", "queues": ["default"], "max": 1}))]
pub(crate) struct ClaimBody {
    /// The worker's name, repeated on every call about the jobs it gets; no U+0000.
    #[schema(min_length = 1, pattern = r"^[^\x00]*$")]
    pub(crate) worker: String,
    /// The queues to take jobs from.
    #[schema(min_items = 1)]
    pub(crate) queues: Vec<String>,
    /// At most this many jobs; default 1.
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "integer::optional")]
    pub(crate) max: Option<u32>,
    /// How long the lease lasts without a heartbeat (ms); default 30000.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "integer::optional")]
    pub(crate) lease_ms: Option<i64>,
    /// How long to wait for a job (ms; the daemon's `max_wait_ms` at most); default 0.
    #[serde(default, deserialize_with = "integer::optional")]
    #[schema(format = "uint64", minimum = 0, maximum = 18446744073709551615_u64)]
    pub(crate) wait_ms: Option<u64>,
}

/// `POST /v1/jobs/{id}/heartbeat`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatBody {
    /// The worker holding the lease.
    pub(crate) worker: String,
    /// The lease's fencing token.
    #[serde(deserialize_with = "integer::required")]
    pub(crate) lease_token: i64,
    /// Members merged into the job's progress document.
    #[schema(schema_with = json_object_or_null)]
    pub(crate) progress: Option<Value>,
    /// A new phase text.
    pub(crate) phase: Option<String>,
    /// Extend the lease by this much from now (ms); default: the length of the lease the job
    /// holds (what its claim, or the last heartbeat that named one, asked for).
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "integer::optional")]
    pub(crate) lease_ms: Option<i64>,
}

/// `POST /v1/jobs/{id}/steps/{step}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct StepBody {
    /// The worker holding the lease.
    pub(crate) worker: String,
    /// The lease's fencing token.
    #[serde(deserialize_with = "integer::required")]
    pub(crate) lease_token: i64,
    /// `running` (started), `ok` or `error` (finished).
    #[schema(schema_with = reported_status)]
    pub(crate) status: String,
    /// The exit code of a finished step.
    pub(crate) exit_code: Option<String>,
    /// A message.
    pub(crate) message: Option<String>,
}

/// The statuses a worker reports.
fn reported_status() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(["running", "ok", "error"]))
        .into()
}

/// `POST /v1/jobs/{id}/complete`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteBody {
    /// The worker holding the lease.
    pub(crate) worker: String,
    /// The lease's fencing token.
    #[serde(deserialize_with = "integer::required")]
    pub(crate) lease_token: i64,
    /// The result document; default `null`.
    #[serde(default)]
    #[schema(value_type = JsonValue)]
    pub(crate) result: Value,
}

/// `POST /v1/jobs/{id}/fail`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailBody {
    /// The worker holding the lease.
    pub(crate) worker: String,
    /// The lease's fencing token.
    #[serde(deserialize_with = "integer::required")]
    pub(crate) lease_token: i64,
    /// What went wrong.
    pub(crate) error: String,
    /// Whether another attempt may succeed; default true.
    #[serde(default = "yes")]
    pub(crate) retryable: bool,
}

fn yes() -> bool {
    true
}

/// `POST /v1/jobs/{id}/logs` as JSON.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"lines": [{"level": "info", "message": "started"}]}))]
pub(crate) struct LogBody {
    /// The lines, at most 10000.
    #[schema(max_items = 10000)]
    pub(crate) lines: Vec<LogLineBody>,
}

/// One log line to append.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogLineBody {
    /// Its level; default `info`.
    #[serde(default = "info")]
    #[schema(schema_with = log_levels)]
    pub(crate) level: String,
    /// Its text (cut at 64 KiB).
    pub(crate) message: String,
}

fn info() -> String {
    "info".into()
}

/// The log levels.
fn log_levels() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(["trace", "debug", "info", "warn", "error"]))
        .default(Some(Value::from("info")))
        .into()
}

/// `PUT /v1/definitions/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"steps": [{"step_id": "s1", "step_type_id": "copy"}], "queue": "default"}))]
pub(crate) struct DefinitionBody {
    /// The steps, in order; no two with one `step_id` (400).
    #[serde(default)]
    pub(crate) steps: Vec<DefinitionStepBody>,
    /// Whether a failed or cancelled execution may be restarted; default true.
    #[serde(default = "yes")]
    pub(crate) restartable: bool,
    /// The queue of its executions; default: the daemon's `[dialects] ocapi_queue`.
    #[schema(min_length = 1)]
    pub(crate) queue: Option<String>,
    /// A description.
    #[serde(default)]
    pub(crate) description: String,
    /// Whether it may be executed; default true.
    #[serde(default = "yes")]
    pub(crate) enabled: bool,
    /// Whether it is valid; default true.
    #[serde(default = "yes")]
    pub(crate) valid: bool,
}

/// One step of a definition to store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DefinitionStepBody {
    /// Unique within the definition.
    #[schema(min_length = 1)]
    pub(crate) step_id: String,
    /// The step's type.
    #[serde(default)]
    pub(crate) step_type_id: String,
    /// A description.
    #[serde(default)]
    pub(crate) description: String,
    /// The scope it runs in.
    #[serde(default)]
    pub(crate) execution_scope: String,
}

impl From<DefinitionStepBody> for jobstore::DefinitionStep {
    fn from(step: DefinitionStepBody) -> Self {
        jobstore::DefinitionStep {
            step_id: step.step_id,
            step_type_id: step.step_type_id,
            description: step.description,
            execution_scope: step.execution_scope,
        }
    }
}

/// `POST /v1/definitions/{id}/executions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecuteBody {
    /// Restart the latest execution (failed or cancelled) instead of starting anew.
    #[serde(default)]
    pub(crate) restart: bool,
    /// Stored as the job's payload; default `null`.
    #[serde(default)]
    #[schema(value_type = JsonValue)]
    pub(crate) payload: Value,
}

/// The query of `GET /v1/jobs`. Repeated filters match any of their values; unknown
/// parameters are refused.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "read by the list handler's query parser, described here"
)]
pub(crate) struct ListParams {
    /// Jobs in any of these states.
    state: Option<Vec<JobState>>,
    /// Jobs of any of these kinds.
    kind: Option<Vec<String>>,
    /// Jobs in any of these queues.
    queue: Option<Vec<String>>,
    /// Jobs from any of these sources.
    source: Option<Vec<String>>,
    /// Jobs to any of these targets.
    target: Option<Vec<String>>,
    /// Jobs created by any of these.
    created_by: Option<Vec<String>>,
    /// Executions of any of these definitions.
    definition: Option<Vec<String>>,
    /// Jobs created through any of these APIs (`native`, `c360`, `ocapi`, `aep`,
    /// `datacloud`, `bulk2`).
    dialect: Option<Vec<String>>,
    /// Admins only (403 otherwise): the jobs of this tenant.
    tenant: Option<String>,
    /// Jobs created at or after this time (ms since the Unix epoch).
    created_after: Option<i64>,
    /// Jobs created before this time (ms since the Unix epoch).
    created_before: Option<i64>,
    /// The sort field; default `created_at`.
    #[param(schema_with = sort_fields)]
    sort: Option<String>,
    /// The sort direction; default `asc`.
    #[param(schema_with = orders)]
    order: Option<String>,
    /// The page size; default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page, with the same filters and sort.
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// The query of `GET /v1/throughput`.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "read by the throughput handler's query parser, described here"
)]
pub(crate) struct ThroughputParams {
    /// How many minutes back, the current one included; default 60.
    #[param(minimum = 1, maximum = 1440)]
    minutes: Option<u32>,
}

/// The query of `GET /v1/jobs/{id}/logs`: the whole log without one; `after` for the lines
/// after one (10,000 at most), `tail` for the last lines (of those after `after`, if given),
/// as a live viewer reads.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "read by the log handler's query parser, described here"
)]
pub(crate) struct LogParams {
    /// Only the last this many lines.
    #[param(minimum = 1, maximum = 10000)]
    tail: Option<u32>,
    /// Only the lines after the one of this `seq` (the `Jobstore-Log-Seq` of an earlier
    /// answer).
    #[param(minimum = 0)]
    after: Option<i64>,
}

/// The query of `PUT /v1/jobs/{id}/outputs/{name}`: the lease the output is uploaded under.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(
    dead_code,
    reason = "read by the output handler's query parser, described here"
)]
pub(crate) struct OutputParams {
    /// The worker holding the lease.
    #[param(min_length = 1)]
    worker: String,
    /// The lease's fencing token.
    lease_token: i64,
}

/// The sort fields, from the core's whitelist.
fn sort_fields() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(SortField::ALL.map(SortField::as_str)))
        .into()
}

/// The sort directions.
fn orders() -> Schema {
    ObjectBuilder::new()
        .schema_type(SchemaType::new(Type::String))
        .enum_values(Some(["asc", "desc"]))
        .into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn core_job() -> jobstore::Job {
        jobstore::Job {
            id: 7,
            tenant: "acme".into(),
            kind: "export".into(),
            queue: "default".into(),
            name: "nightly".into(),
            source: "crm".into(),
            target: "lake".into(),
            created_by: "ci".into(),
            dialect: "native".into(),
            state: jobstore::State::Running,
            priority: -2,
            run_at: 1000,
            attempt: 1,
            max_attempts: 3,
            lease_owner: Some("w1".into()),
            lease_token: Some(4),
            lease_expires_at: Some(31_000),
            heartbeat_at: Some(2000),
            cancel_requested_at: Some(2500),
            unique_key: Some("k".into()),
            definition_id: Some("d".into()),
            restart_of: Some(6),
            restartable: true,
            payload: json!({"rows": 10}),
            result: Some(json!([1])),
            error: Some("flaky".into()),
            progress: json!({"done": 5}),
            phase: Some("update".into()),
            created_at: 900,
            updated_at: 2600,
            started_at: Some(1500),
            finished_at: Some(2700),
        }
    }

    /// The wire is spelled here, key by key: a renamed core field must not change it.
    #[test]
    fn a_full_job_document_renders_every_key() {
        let step = jobstore::Step {
            position: 0,
            step_id: "s1".into(),
            step_type_id: "copy".into(),
            description: "copy it".into(),
            execution_scope: "site".into(),
            status: jobstore::StepStatus::Ok,
            exit_code: Some("OK".into()),
            message: Some("done".into()),
            started_at: Some(1600),
            finished_at: Some(1700),
            updated_at: 1700,
        };
        let batches = [
            jobstore::DataBatch {
                batch: 1,
                bytes: 10,
                created_at: 1100,
            },
            jobstore::DataBatch {
                batch: 2,
                bytes: 32,
                created_at: 1200,
            },
        ];
        let job = Job::detailed(core_job(), vec![step], &batches);
        let rendered = serde_json::to_value(&job).unwrap_or_default();
        let expected: Value = serde_json::from_str(
            r#"{
                "id": 7, "tenant": "acme", "kind": "export", "queue": "default",
                "name": "nightly", "source": "crm", "target": "lake", "created_by": "ci",
                "dialect": "native", "state": "running", "priority": -2, "run_at": 1000,
                "attempt": 1, "max_attempts": 3, "lease_owner": "w1", "lease_token": 4,
                "lease_expires_at": 31000, "heartbeat_at": 2000, "cancel_requested_at": 2500,
                "unique_key": "k", "definition_id": "d", "restart_of": 6, "restartable": true,
                "payload": {"rows": 10}, "result": [1], "error": "flaky",
                "progress": {"done": 5}, "phase": "update", "created_at": 900,
                "updated_at": 2600, "started_at": 1500, "finished_at": 2700,
                "steps": [{
                    "position": 0, "step_id": "s1", "step_type_id": "copy",
                    "description": "copy it", "execution_scope": "site", "status": "ok",
                    "exit_code": "OK", "message": "done", "started_at": 1600,
                    "finished_at": 1700, "updated_at": 1700
                }],
                "data_batches": 2, "data_bytes": 42,
                "batches": [
                    {"batch": 1, "bytes": 10, "created_at": 1100},
                    {"batch": 2, "bytes": 32, "created_at": 1200}
                ]
            }"#,
        )
        .unwrap_or_default();
        assert_eq!(rendered, expected);
    }

    #[test]
    fn a_listed_job_has_no_steps_or_counters_and_nulls_stay() {
        let mut job = core_job();
        job.lease_owner = None;
        job.result = None;
        let rendered = serde_json::to_value(Job::from(job)).unwrap_or_default();
        assert_eq!(rendered["lease_owner"], Value::Null);
        assert!(
            rendered
                .as_object()
                .is_some_and(|o| o.contains_key("result"))
        );
        for key in ["steps", "data_batches", "data_bytes", "batches"] {
            assert!(rendered.get(key).is_none(), "{key}");
        }
    }

    #[test]
    fn the_other_documents_keep_their_keys() {
        let event = jobstore::JobEvent {
            seq: 1,
            at: 2,
            event: "create".into(),
            from: None,
            to: jobstore::State::Queued,
            actor: "ci".into(),
            detail: None,
        };
        assert_eq!(
            serde_json::to_value(Events::from(vec![event])).unwrap_or_default(),
            json!({"events": [{"seq": 1, "at": 2, "event": "create", "from": null,
                "to": "queued", "actor": "ci", "detail": null}]})
        );
        let definition =
            jobstore::Definition::new("d", "q", vec![jobstore::DefinitionStep::new("s1", "copy")]);
        assert_eq!(
            serde_json::to_value(Definitions::from(vec![definition])).unwrap_or_default(),
            json!({"definitions": [{"id": "d", "description": "", "queue": "q",
                "restartable": true, "enabled": true, "valid": true,
                "steps": [{"step_id": "s1", "step_type_id": "copy", "description": "",
                    "execution_scope": ""}],
                "created_at": 0, "updated_at": 0}]})
        );
        let count = jobstore::QueueCount {
            queue: "q".into(),
            state: jobstore::State::Failed,
            jobs: 3,
        };
        assert_eq!(
            serde_json::to_value(Stats::from(vec![count])).unwrap_or_default(),
            json!({"stats": [{"queue": "q", "state": "failed", "jobs": 3}]})
        );
        let beat = jobstore::HeartbeatAnswer {
            cancel_requested: true,
            lease_expires_at: 9,
        };
        assert_eq!(
            serde_json::to_value(HeartbeatAnswer::from(beat)).unwrap_or_default(),
            json!({"cancel_requested": true, "lease_expires_at": 9})
        );
        let batch = jobstore::DataBatch {
            batch: 1,
            bytes: 2,
            created_at: 3,
        };
        assert_eq!(
            serde_json::to_value(DataBatch::from(batch)).unwrap_or_default(),
            json!({"batch": 1, "bytes": 2, "created_at": 3})
        );
        assert_eq!(
            serde_json::to_value(Appended::from(2)).unwrap_or_default(),
            json!({"appended": 2})
        );
        let err = ApiError::new(ErrorKind::StaleLease, "no");
        assert_eq!(
            serde_json::to_value(ErrorDocument::from(&err)).unwrap_or_default(),
            json!({"error": {"type": "stale_lease", "message": "no"}})
        );
    }

    #[test]
    fn integers_may_be_written_as_whole_floats() {
        let beat: Result<HeartbeatBody, _> =
            serde_json::from_str(r#"{"worker": "w", "lease_token": 4.0, "lease_ms": 3e3}"#);
        let beat = beat.map(|b| (b.lease_token, b.lease_ms)).ok();
        assert_eq!(beat, Some((4, Some(3000))));
        let claim: Result<ClaimBody, _> = serde_json::from_str(
            r#"{"worker": "w", "queues": ["q"], "max": null, "wait_ms": 18446744073709551615}"#,
        );
        let claim = claim.map(|c| (c.max, c.lease_ms, c.wait_ms)).ok();
        assert_eq!(claim, Some((None, None, Some(u64::MAX))));
        for refused in [
            r#"{"worker": "w", "lease_token": 4.5}"#,
            r#"{"worker": "w", "lease_token": 1e300}"#,
            r#"{"worker": "w", "lease_token": 9223372036854775808}"#,
            r#"{"worker": "w", "lease_token": "4"}"#,
            r#"{"worker": "w", "lease_token": null}"#,
        ] {
            assert!(
                serde_json::from_str::<HeartbeatBody>(refused).is_err(),
                "{refused}"
            );
        }
        let max: Result<ClaimBody, _> =
            serde_json::from_str(r#"{"worker": "w", "queues": ["q"], "max": -1.0}"#);
        assert!(max.is_err());
    }

    #[test]
    fn every_core_state_and_status_has_its_wire_name() {
        for state in jobstore::State::ALL {
            let wire = serde_json::to_value(JobState::from(state)).unwrap_or_default();
            assert_eq!(wire, state.as_str());
        }
        for status in [
            jobstore::StepStatus::Pending,
            jobstore::StepStatus::Running,
            jobstore::StepStatus::Ok,
            jobstore::StepStatus::Error,
        ] {
            let wire = serde_json::to_value(StepStatus::from(status)).unwrap_or_default();
            assert_eq!(wire, status.as_str());
        }
    }
}
