//! Salesforce Data Cloud Ingest API bulk jobs (`/api/v1/ingest/jobs`), a view of the canonical
//! jobs: a bulk job is a job of kind `ingest` on the configured queue, tagged `datacloud`,
//! created `open` with its `sourceName` as source, its `object` as target and its operation in
//! the payload. Uploaded batches are the job's data batches; closing and aborting are the core's
//! close and cancel; workers run the job through the native worker API and report
//! `numberRecordsProcessed` and `numberRecordsFailed` as progress.
//!
//! This module owns the wire types, the state mapping, the fault documents
//! (`[{"errorCode", "message"}]`) and the streaming CSV check of uploads (`csv`). It owns no
//! SQL and no state logic: which move is allowed is the core's answer, rendered here.
//!
//! **Boundary:** this API sees only jobs it created (dialect `datacloud`); another job's id is
//! the same 404 as an unknown one.

mod csv;

use std::io;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jobstore::{
    DataBatch, Direction, Error, Event, Job, ListQuery, NewJob, Pagination, Scope, SortField,
    State, Store, transition,
};
use serde::Serialize;
use serde_json::{Value, json};

use self::csv::{BatchCheck, BatchFault, Layout};
use crate::App;
use crate::auth::{Permission, Principal};
use crate::body::{self, ResponseBody};
use crate::dialects::DialectConfig;
use crate::fault::{ApiError, ErrorKind};
use crate::time::rfc3339_millis;

/// The path every route of this API starts with.
const JOBS: &str = "/api/v1/ingest/jobs";

/// The kind of every Data Cloud job.
pub const KIND: &str = "ingest";

/// Page size of a list when `limit` is not given.
const DEFAULT_LIMIT: u32 = 20;

/// The largest page; larger `limit`s are clamped to it.
const MAX_LIMIT: u32 = 100;

/// The message of every 404, as Salesforce words it.
const NOT_FOUND: &str = "The requested resource does not exist";

/// Whether `path` is one of this dialect's paths (any path under `/api/v1/ingest/jobs`, so
/// that an unknown one gets this API's 404 document).
pub fn matches(path: &str) -> bool {
    path == JOBS || path.starts_with("/api/v1/ingest/jobs/")
}

/// Answers one request of this dialect.
pub(crate) async fn handle(
    app: &App,
    config: &DialectConfig,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    serve(app, config, request)
        .await
        .unwrap_or_else(|fault| fault.render())
}

// ---------------------------------------------------------------------------------------------
// Routes

/// A resolved path of this API. An id that is not a positive number names no job (404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `POST|GET /api/v1/ingest/jobs`
    Jobs,
    /// `GET|PATCH|DELETE /api/v1/ingest/jobs/{id}`
    Job(Option<i64>),
    /// `PUT /api/v1/ingest/jobs/{id}/batches`
    Batches(Option<i64>),
}

impl Route {
    fn resolve(path: &str) -> Option<Route> {
        let rest = path.strip_prefix(JOBS)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let id = |text: &str| {
            crate::router::percent_decode(text)
                .and_then(|t| t.parse::<i64>().ok())
                .filter(|id| *id > 0)
        };
        let segments: Vec<&str> = rest.split('/').skip(1).collect();
        match segments.as_slice() {
            [] => Some(Route::Jobs),
            [job] if !job.is_empty() => Some(Route::Job(id(job))),
            [job, "batches"] if !job.is_empty() => Some(Route::Batches(id(job))),
            _ => None,
        }
    }

    /// The methods the route allows, for `405` and `Allow`.
    fn allow(self) -> &'static str {
        match self {
            Route::Jobs => "GET,POST",
            Route::Job(_) => "GET,PATCH,DELETE",
            Route::Batches(_) => "PUT",
        }
    }
}

async fn serve(
    app: &App,
    config: &DialectConfig,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    let route = Route::resolve(request.uri().path()).ok_or_else(Fault::not_found)?;
    let method = request.method().clone();
    let allowed = route.allow().split(',').any(|m| m == method.as_str());
    if !allowed {
        return Err(Fault::method_not_allowed(&method, route.allow()));
    }
    let principal = app.authenticate(&request).map_err(Fault::from)?;
    match (route, method) {
        (Route::Jobs, Method::POST) => create(app, config, &principal, request).await,
        (Route::Jobs, _) => list(app, &principal, request.uri().query()).await,
        (Route::Job(id), Method::GET) => {
            get(app, &principal, id.ok_or_else(Fault::not_found)?).await
        }
        (Route::Job(id), Method::PATCH) => {
            patch(app, &principal, id.ok_or_else(Fault::not_found)?, request).await
        }
        (Route::Job(id), _) => delete(app, &principal, id.ok_or_else(Fault::not_found)?).await,
        (Route::Batches(id), _) => {
            upload(
                app,
                config,
                &principal,
                id.ok_or_else(Fault::not_found)?,
                request,
            )
            .await
        }
    }
}

// ---------------------------------------------------------------------------------------------
// States

/// A Data Cloud job state. Each canonical state is exactly one of these, and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum JobState {
    /// Accepting batches (`open`).
    Open,
    /// Closed, waiting for a worker (`queued`).
    UploadComplete,
    /// A worker is processing it (`running`).
    InProgress,
    /// Processed (`succeeded`).
    JobComplete,
    /// Processing failed (`failed`).
    Failed,
    /// Aborted, its data deleted (`cancelled`).
    Aborted,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Open,
        JobState::UploadComplete,
        JobState::InProgress,
        JobState::JobComplete,
        JobState::Failed,
        JobState::Aborted,
    ];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }

    /// The state named `text` (case-insensitive).
    fn parse(text: &str) -> Option<JobState> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(text))
    }

    fn valid_names() -> String {
        JobState::ALL.map(JobState::as_str).join(", ")
    }
}

impl From<State> for JobState {
    fn from(state: State) -> JobState {
        match state {
            State::Open => JobState::Open,
            State::Queued => JobState::UploadComplete,
            State::Running => JobState::InProgress,
            State::Succeeded => JobState::JobComplete,
            State::Failed => JobState::Failed,
            State::Cancelled => JobState::Aborted,
        }
    }
}

impl From<JobState> for State {
    fn from(state: JobState) -> State {
        match state {
            JobState::Open => State::Open,
            JobState::UploadComplete => State::Queued,
            JobState::InProgress => State::Running,
            JobState::JobComplete => State::Succeeded,
            JobState::Failed => State::Failed,
            JobState::Aborted => State::Cancelled,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire types

/// The operation of a bulk job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Upsert records: every batch starts with a header row.
    Upsert,
    /// Delete records: batches have no header, the primary key first.
    Delete,
}

impl Operation {
    /// The name on the wire and in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Upsert => "upsert",
            Operation::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<Operation> {
        [Operation::Upsert, Operation::Delete]
            .into_iter()
            .find(|op| op.as_str().eq_ignore_ascii_case(text))
    }

    fn layout(self) -> Layout {
        match self {
            Operation::Upsert => Layout::Header,
            Operation::Delete => Layout::KeysFirst,
        }
    }

    /// The operation recorded in a job's payload (upsert when it names none).
    fn of(job: &Job) -> Operation {
        job.payload
            .get("operation")
            .and_then(Value::as_str)
            .and_then(Operation::parse)
            .unwrap_or(Operation::Upsert)
    }
}

/// `POST /api/v1/ingest/jobs`: `object`, `sourceName` and `operation`, all required. Bulk API
/// 2.0 clients may add `contentType` (`CSV`), `columnDelimiter` (`COMMA`) and `lineEnding`
/// (`LF` or `CRLF`, both accepted anyway); any other member is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CreateJob {
    object: String,
    source_name: String,
    operation: Operation,
}

impl TryFrom<Value> for CreateJob {
    type Error = Fault;

    fn try_from(body: Value) -> Result<CreateJob, Fault> {
        let Value::Object(members) = body else {
            return Err(Fault::invalid_job("the request body must be a JSON object"));
        };
        for (name, value) in &members {
            let allowed: &[&str] = match name.as_str() {
                "object" | "sourceName" | "operation" => continue,
                "contentType" => &["CSV"],
                "columnDelimiter" => &["COMMA"],
                "lineEnding" => &["LF", "CRLF"],
                other => {
                    return Err(Fault::invalid_job(format!(
                        "unknown member `{other}`; a job has object, sourceName and operation"
                    )));
                }
            };
            if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
                return Err(Fault::invalid_job(format!(
                    "`{name}` must be {}, got {value}",
                    allowed.join(" or ")
                )));
            }
        }
        let text = |name: &str| -> Result<String, Fault> {
            match members.get(name) {
                None | Some(Value::Null) => Err(Fault::invalid_job(format!(
                    "`{name}` is required: a job has object, sourceName and operation"
                ))),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                Some(other) => Err(Fault::invalid_job(format!(
                    "`{name}` must be a non-empty string, got {other}"
                ))),
            }
        };
        let object = text("object")?;
        let source_name = text("sourceName")?;
        let operation = text("operation")?;
        let operation = Operation::parse(&operation).ok_or_else(|| {
            Fault::invalid_job(format!(
                "`operation` must be upsert or delete, got `{operation}`"
            ))
        })?;
        Ok(CreateJob {
            object,
            source_name,
            operation,
        })
    }
}

impl CreateJob {
    fn into_new_job(self, principal: &Principal, queue: &str) -> NewJob {
        let name = format!("{} {}", self.operation.as_str(), self.object);
        NewJob::new(KIND)
            .queue(queue)
            .dialect("datacloud")
            .upload(true)
            .name(name)
            .source(self.source_name.clone())
            .target(self.object.clone())
            .created_by(principal.name.clone())
            .payload(json!({
                "object": self.object,
                "sourceName": self.source_name,
                "operation": self.operation.as_str(),
            }))
    }
}

/// A bulk job as every answer renders it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobInfo {
    /// The native id, as a string.
    pub id: String,
    /// `upsert` or `delete`.
    pub operation: &'static str,
    /// The target object.
    pub object: String,
    /// The Ingest API connector.
    pub source_name: String,
    /// The token that created it.
    pub created_by_id: String,
    /// Creation time.
    pub created_date: String,
    /// Last change.
    pub system_modstamp: String,
    /// The state.
    pub state: JobState,
    /// Always `CSV`.
    pub content_type: &'static str,
    /// Always `v1`.
    pub api_version: &'static str,
    /// Where batches are uploaded.
    pub content_url: String,
}

impl From<&Job> for JobInfo {
    fn from(job: &Job) -> JobInfo {
        JobInfo {
            id: job.id.to_string(),
            operation: Operation::of(job).as_str(),
            object: job.target.clone(),
            source_name: job.source.clone(),
            created_by_id: job.created_by.clone(),
            created_date: rfc3339_millis(job.created_at),
            system_modstamp: rfc3339_millis(job.updated_at),
            state: job.state.into(),
            content_type: "CSV",
            api_version: "v1",
            content_url: format!("api/v1/ingest/jobs/{}/batches", job.id),
        }
    }
}

/// `GET /api/v1/ingest/jobs/{id}`: the job with its counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    /// The job.
    #[serde(flatten)]
    pub info: JobInfo,
    /// Attempts after the first.
    pub retries: i64,
    /// Milliseconds the latest attempt ran (so far, while it runs).
    pub total_processing_time: i64,
    /// From the worker's progress member of the same name.
    pub number_records_processed: i64,
    /// From the worker's progress member of the same name.
    pub number_records_failed: i64,
    /// Why a failed job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
}

impl JobDetail {
    fn new(job: &Job, now: i64) -> JobDetail {
        let counter = |name: &str| {
            job.progress
                .get(name)
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
                .unwrap_or(0)
                .max(0)
        };
        let processing = match job.started_at {
            Some(started) => job
                .finished_at
                .unwrap_or(now)
                .saturating_sub(started)
                .max(0),
            None => 0,
        };
        JobDetail {
            info: JobInfo::from(job),
            retries: job.attempt.saturating_sub(1).max(0),
            total_processing_time: processing,
            number_records_processed: counter("numberRecordsProcessed"),
            number_records_failed: counter("numberRecordsFailed"),
            error_message: (job.state == State::Failed)
                .then(|| job.error.clone())
                .flatten(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Faults

/// A fault, rendered as Salesforce REST APIs do: `[{"errorCode": "...", "message": "..."}]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable `errorCode`.
    pub code: &'static str,
    /// The `message`.
    pub message: String,
    allow: Option<&'static str>,
    retry_after: Option<u32>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FaultItem<'a> {
    error_code: &'a str,
    message: &'a str,
}

impl Fault {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Fault {
        Fault {
            status,
            code,
            message: message.into(),
            allow: None,
            retry_after: None,
        }
    }

    fn not_found() -> Fault {
        Fault::new(StatusCode::NOT_FOUND, "NOT_FOUND", NOT_FOUND)
    }

    fn method_not_allowed(method: &Method, allow: &'static str) -> Fault {
        Fault {
            allow: Some(allow),
            ..Fault::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                format!("HTTP Method '{method}' not allowed. Allowed are {allow}"),
            )
        }
    }

    fn invalid_job(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::BAD_REQUEST, "INVALIDJOB", message)
    }

    fn invalid_state(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::BAD_REQUEST, "INVALIDJOBSTATE", message)
    }

    fn conflict(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::CONFLICT, "INVALIDJOBSTATE", message)
    }

    fn bad_parameter(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::BAD_REQUEST, "INVALID_QUERY_PARAMETER", message)
    }

    fn too_large(limit: u64) -> Fault {
        Fault::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "REQUEST_TOO_LARGE",
            format!("a batch may hold at most {limit} bytes"),
        )
    }

    fn render(&self) -> Response<ResponseBody> {
        let items = [FaultItem {
            error_code: self.code,
            message: &self.message,
        }];
        let mut response = body::json(self.status, &items);
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }

    /// The fault for a core error met while doing `what` to a job.
    fn from_core(err: Error, what: Action) -> Fault {
        match err {
            Error::JobNotFound { .. } => Fault::not_found(),
            Error::InvalidTransition { job, from, .. } => {
                let state = from.map_or("(new)", |s| JobState::from(s).as_str());
                Fault::conflict(what.refused(job, state))
            }
            Error::TooManyDataBatches { limit, .. } => too_many_batches(limit),
            Error::DataBatchTooLarge { limit } => Fault::too_large(limit),
            Error::DataRead(io) => Fault::from_read(&io),
            Error::InvalidInput { field, reason } => Fault::new(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                format!("invalid {field}: {reason}"),
            ),
            Error::IdempotencyKeyReused { .. } => Fault::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "DUPLICATE_VALUE",
                err.to_string(),
            ),
            other => Fault::from(ApiError::from(other)),
        }
    }

    /// The fault for a batch whose reading failed: a CSV fault, the size limit, the client.
    fn from_read(err: &io::Error) -> Fault {
        match BatchFault::of(err) {
            Some(fault @ BatchFault::Csv { .. }) => Fault::new(
                StatusCode::BAD_REQUEST,
                "INVALID_CSV",
                format!("the batch is not valid CSV and was not kept: {fault}"),
            ),
            Some(BatchFault::TooLarge { limit }) => Fault::too_large(*limit),
            None => Fault::new(
                StatusCode::BAD_REQUEST,
                "CLIENTINPUTERROR",
                format!("the request body broke off; the batch was not kept: {err}"),
            ),
        }
    }
}

/// What a request was doing when the core refused a state change: words for the 409.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Read,
    Upload,
    Close,
    Abort,
    Delete,
}

impl Action {
    fn refused(self, job: i64, state: &str) -> String {
        match self {
            Action::Read => format!("job {job} is {state}"),
            Action::Upload => {
                format!("job {job} is {state}: batches may be uploaded only while it is Open")
            }
            Action::Close => {
                format!("job {job} is {state}: only an Open job can be set to UploadComplete")
            }
            Action::Abort => format!("job {job} is {state}: a finished job cannot be aborted"),
            Action::Delete => format!(
                "job {job} is {state}: only jobs in UploadComplete, JobComplete, Aborted or \
                 Failed can be deleted"
            ),
        }
    }
}

fn too_many_batches(limit: u32) -> Fault {
    Fault::new(
        StatusCode::BAD_REQUEST,
        "LIMIT_EXCEEDED",
        format!("a job may hold at most {limit} batches"),
    )
}

impl From<ApiError> for Fault {
    /// The daemon's own faults (authentication, bounded bodies, storage) in this API's shape.
    fn from(err: ApiError) -> Fault {
        let code = match (err.status, err.kind) {
            (StatusCode::UNAUTHORIZED, _) => "INVALID_SESSION_ID",
            (StatusCode::FORBIDDEN, _) => "INSUFFICIENT_ACCESS",
            (StatusCode::NOT_FOUND, _) => "NOT_FOUND",
            (StatusCode::BAD_REQUEST, ErrorKind::InvalidJson) => "JSON_PARSER_ERROR",
            (StatusCode::BAD_REQUEST, _) => "INVALID_INPUT",
            (StatusCode::REQUEST_TIMEOUT, _) => "REQUEST_TIMEOUT",
            (StatusCode::PAYLOAD_TOO_LARGE, _) => "REQUEST_TOO_LARGE",
            (StatusCode::CONFLICT, _) => "INVALIDJOBSTATE",
            (StatusCode::SERVICE_UNAVAILABLE, _) => "SERVER_UNAVAILABLE",
            _ => "UNKNOWN_EXCEPTION",
        };
        Fault {
            status: err.status,
            code,
            message: err.message,
            allow: None,
            retry_after: err.retry_after,
        }
    }
}

/// Runs a blocking store call in the principal's scope, keeping the core's typed error.
async fn call<T, F>(app: &App, principal: &Principal, what: Action, f: F) -> Result<T, Fault>
where
    T: Send + 'static,
    F: FnOnce(Store) -> jobstore::Result<T> + Send + 'static,
{
    app.call(principal, move |store| Ok(f(store)))
        .await
        .map_err(Fault::from)?
        .map_err(|err| Fault::from_core(err, what))
}

/// The job, if it is a Data Cloud job of the caller's tenant.
fn own_job(store: &Store, id: i64) -> jobstore::Result<Job> {
    let job = store.get(id)?;
    if job.dialect == "datacloud" {
        Ok(job)
    } else {
        Err(Error::JobNotFound { id })
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers

type Answer = Result<Response<ResponseBody>, Fault>;

async fn create(
    app: &App,
    config: &DialectConfig,
    principal: &Principal,
    request: Request<Incoming>,
) -> Answer {
    principal.require(Permission::Write)?;
    let idempotency = crate::app::idempotency_key(request.headers()).map_err(Fault::invalid_job)?;
    let body: Value = app.json_body(request).await.map_err(Fault::from)?;
    let create = CreateJob::try_from(body)?;
    let mut new = create.into_new_job(principal, &config.datacloud_queue);
    if let Some(key) = idempotency {
        new = new.idempotency_key(key);
    }
    let job = app
        .write_typed(principal, move |store| store.enqueue_call(new))
        .await?
        .map_err(|err| Fault::from_core(err, Action::Read))?;
    Ok(body::json(StatusCode::CREATED, &JobInfo::from(&job)))
}

async fn get(app: &App, principal: &Principal, id: i64) -> Answer {
    principal.require(Permission::Read)?;
    let detail = call(app, principal, Action::Read, move |store| {
        let job = own_job(&store, id)?;
        Ok(JobDetail::new(&job, store.now()))
    })
    .await?;
    Ok(body::json(StatusCode::OK, &detail))
}

/// The target state of `PATCH /api/v1/ingest/jobs/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Patch {
    Close,
    Abort,
}

impl TryFrom<Value> for Patch {
    type Error = Fault;

    fn try_from(body: Value) -> Result<Patch, Fault> {
        let Value::Object(members) = body else {
            return Err(Fault::invalid_state(
                "the request body must be a JSON object {\"state\": ...}",
            ));
        };
        if let Some(other) = members.keys().find(|k| *k != "state") {
            return Err(Fault::invalid_state(format!(
                "unknown member `{other}`; the body is {{\"state\": \"UploadComplete\" | \
                 \"Aborted\"}}"
            )));
        }
        let state = match members.get("state") {
            Some(Value::String(state)) => state,
            None | Some(Value::Null) => {
                return Err(Fault::invalid_state(
                    "`state` is required: UploadComplete or Aborted",
                ));
            }
            Some(other) => {
                return Err(Fault::invalid_state(format!(
                    "`state` must be UploadComplete or Aborted, got {other}"
                )));
            }
        };
        match JobState::parse(state) {
            Some(JobState::UploadComplete) => Ok(Patch::Close),
            Some(JobState::Aborted) => Ok(Patch::Abort),
            _ => Err(Fault::invalid_state(format!(
                "a job can only be set to UploadComplete or Aborted, not `{state}`"
            ))),
        }
    }
}

async fn patch(app: &App, principal: &Principal, id: i64, request: Request<Incoming>) -> Answer {
    principal.require(Permission::Write)?;
    let body: Value = app.json_body(request).await.map_err(Fault::from)?;
    let patch = Patch::try_from(body)?;
    let actor = principal.name.clone();
    let what = match patch {
        Patch::Close => Action::Close,
        Patch::Abort => Action::Abort,
    };
    let job = call(app, principal, what, move |store| {
        own_job(&store, id)?;
        match patch {
            Patch::Close => store.close_upload(id, &actor),
            // Open and UploadComplete: Aborted at once, the data deleted in the same
            // transaction. InProgress: the worker is asked to stop (it sees the request on its
            // next heartbeat); the answer still says InProgress.
            Patch::Abort => store.cancel(id, &actor),
        }
    })
    .await?;
    Ok(body::json(StatusCode::OK, &JobInfo::from(&job)))
}

async fn delete(app: &App, principal: &Principal, id: i64) -> Answer {
    principal.require(Permission::Write)?;
    call(app, principal, Action::Delete, move |store| {
        own_job(&store, id)?;
        // UploadComplete is a live (queued) job in the core: the store aborts and deletes it in
        // one transaction, so a worker cannot claim it in between.
        store.discard(
            id,
            &[
                State::Queued,
                State::Succeeded,
                State::Cancelled,
                State::Failed,
            ],
        )
    })
    .await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// Streams a batch into the store through the CSV check: the body is forwarded frame by
/// frame to a blocking thread that writes it a chunk at a time. Memory stays at a few frames.
async fn upload(
    app: &App,
    config: &DialectConfig,
    principal: &Principal,
    id: i64,
    request: Request<Incoming>,
) -> Answer {
    principal.require(Permission::Write)?;
    check_csv_content_type(&request)?;
    let limit = config.datacloud_max_batch_bytes;
    let max_batches = config.datacloud_max_batches;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Refuse what can be refused before a byte of the body is read.
    let operation = call(app, principal, Action::Upload, move |store| {
        let job = own_job(&store, id)?;
        // The core's answer, asked early; the store asks again as it appends.
        transition(Some(job.state), Event::Upload).map_err(|err| match err {
            Error::InvalidTransition { from, event, .. } => Error::InvalidTransition {
                job: id,
                from,
                event,
            },
            other => other,
        })?;
        let batches: Vec<DataBatch> = store.data_batches(id)?;
        if batches.len() >= usize::try_from(max_batches).unwrap_or(usize::MAX) {
            return Err(Error::TooManyDataBatches {
                job: id,
                limit: max_batches,
            });
        }
        Ok(Operation::of(&job))
    })
    .await?;
    if declared.is_some_and(|length| length > limit) {
        return Err(Fault::too_large(limit));
    }

    let layout = operation.layout();
    match app
        .append_body(
            principal,
            id,
            request,
            BatchCheck::new(layout, limit),
            jobstore::UploadLimits::default(),
        )
        .await?
    {
        Ok(_) => Ok(body::empty(StatusCode::ACCEPTED)),
        Err(err) => Err(Fault::from_core(err, Action::Upload)),
    }
}

/// Batches are `text/csv` (a `charset`, if any, must be UTF-8); a request without a
/// Content-Type is taken as CSV.
fn check_csv_content_type(request: &Request<Incoming>) -> Result<(), Fault> {
    let Some(value) = request.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let mut parts = text.split(';').map(str::trim);
    let media = parts.next().unwrap_or("");
    let charset_ok = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    if media.eq_ignore_ascii_case("text/csv") && charset_ok {
        Ok(())
    } else {
        Err(Fault::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALID_CONTENT_TYPE",
            format!("batches are uploaded as `Content-Type: text/csv` (UTF-8), not `{text}`"),
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Listing

/// `GET /api/v1/ingest/jobs` parameters, as the core's list query.
fn list_query(query: Option<&str>) -> Result<ListQuery, Fault> {
    let pairs = crate::dialects::query_pairs(query)
        .ok_or_else(|| Fault::bad_parameter("malformed query string"))?;
    let mut list = ListQuery {
        dialects: vec!["datacloud".to_owned()],
        sort: Some(SortField::UpdatedAt),
        direction: Direction::Desc,
        limit: Some(DEFAULT_LIMIT),
        page: Pagination::Offset(0),
        ..ListQuery::default()
    };
    for (key, value) in pairs {
        // Real clients send empty values (`orderby=&states=`): "not given".
        if value.trim().is_empty() {
            continue;
        }
        match key.as_str() {
            "limit" => {
                let limit = value
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        Fault::bad_parameter(format!(
                            "limit must be a whole number from 1 to {MAX_LIMIT}, got `{value}`"
                        ))
                    })?;
                list.limit =
                    Some(u32::try_from(limit.min(i64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT));
            }
            "offset" => {
                let offset = value.trim().parse::<u64>().map_err(|_| {
                    Fault::bad_parameter(format!(
                        "offset must be a whole number of rows (0 or more), got `{value}`"
                    ))
                })?;
                list.page = Pagination::Offset(offset);
            }
            "orderBy" | "orderby" => {
                let (sort, direction) = order_by(&value)?;
                list.sort = Some(sort);
                list.direction = direction;
            }
            "states" | "state" => {
                for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let state = JobState::parse(name).ok_or_else(|| {
                        Fault::bad_parameter(format!(
                            "unknown state `{name}`; valid states: {}",
                            JobState::valid_names()
                        ))
                    })?;
                    let state = State::from(state);
                    if !list.states.contains(&state) {
                        list.states.push(state);
                    }
                }
            }
            other => {
                return Err(Fault::bad_parameter(format!(
                    "unknown query parameter `{other}`; known: limit, offset, orderBy, states"
                )));
            }
        }
    }
    Ok(list)
}

/// `orderBy`: a field, optionally followed by `ASC` or `DESC` (default descending).
fn order_by(value: &str) -> Result<(SortField, Direction), Fault> {
    let mut words = value.split_whitespace();
    let field = words.next().unwrap_or("");
    let direction = match words.next() {
        None => Direction::Desc,
        Some(word) if word.eq_ignore_ascii_case("desc") => Direction::Desc,
        Some(word) if word.eq_ignore_ascii_case("asc") => Direction::Asc,
        Some(word) => {
            return Err(Fault::bad_parameter(format!(
                "orderBy direction must be ASC or DESC, got `{word}`"
            )));
        }
    };
    if words.next().is_some() {
        return Err(Fault::bad_parameter(format!(
            "orderBy is a field and an optional ASC or DESC, got `{value}`"
        )));
    }
    let sort = match field.to_ascii_lowercase().as_str() {
        "systemmodstamp" => SortField::UpdatedAt,
        "createddate" => SortField::CreatedAt,
        "id" => SortField::Id,
        "object" => SortField::Target,
        "state" => SortField::State,
        _ => {
            return Err(Fault::bad_parameter(format!(
                "orderBy must be one of systemModstamp, createdDate, id, object, state; got \
                 `{field}`"
            )));
        }
    };
    Ok((sort, direction))
}

/// The list document.
#[derive(Debug, Serialize)]
struct JobList {
    data: Vec<JobInfo>,
}

async fn list(app: &App, principal: &Principal, query: Option<&str>) -> Answer {
    principal.require(Permission::Read)?;
    let query = list_query(query)?;
    let page = call(app, principal, Action::Read, move |store| {
        store.list(&query)
    })
    .await?;
    let data = page.jobs.iter().map(JobInfo::from).collect();
    Ok(body::json(StatusCode::OK, &JobList { data }))
}

// ---------------------------------------------------------------------------------------------
// Retention

/// Deletes the Data Cloud jobs still Open or UploadComplete `datacloud_retention_ms` after
/// they were created, with their data, in every tenant. Answers how many. The daemon's
/// maintenance loop calls it on its purge interval.
///
/// Each job is aborted and deleted with its data in one transaction (`Store::discard`); a job
/// a worker claimed meanwhile is left to run.
///
/// # Errors
/// Storage errors only; a job that changed meanwhile is skipped.
pub fn purge_expired(store: &Store, config: &DialectConfig) -> jobstore::Result<u64> {
    let store = store.with_scope(Scope::All);
    let cutoff = store.now().saturating_sub(config.datacloud_retention_ms);
    let mut purged = 0;
    loop {
        // Each job handled leaves the filter (deleted, or claimed meanwhile), so the next
        // page starts at the top again.
        let page = store.list(&ListQuery {
            dialects: vec!["datacloud".to_owned()],
            states: vec![State::Open, State::Queued],
            created_before: Some(cutoff),
            sort: Some(SortField::Id),
            direction: Direction::Asc,
            limit: Some(500),
            ..ListQuery::default()
        })?;
        let mut changed = 0;
        for job in &page.jobs {
            // Aborted and deleted in one transaction; a job claimed meanwhile is left to run.
            match store.discard(job.id, &[State::Open, State::Queued]) {
                Ok(()) => {
                    purged += 1;
                    changed += 1;
                }
                Err(Error::JobNotFound { .. } | Error::InvalidTransition { .. }) => {
                    changed += 1;
                }
                Err(err) => return Err(err),
            }
        }
        if !page.has_more || changed == 0 {
            break;
        }
    }
    if purged > 0 {
        log::info!("purged {purged} Data Cloud jobs left Open or UploadComplete past retention");
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jobstore::{Clock as _, ManualClock, StoreOptions};

    use super::*;

    #[test]
    fn paths_resolve_with_and_without_a_trailing_slash() {
        for (path, route) in [
            ("/api/v1/ingest/jobs", Some(Route::Jobs)),
            ("/api/v1/ingest/jobs/", Some(Route::Jobs)),
            ("/api/v1/ingest/jobs/42", Some(Route::Job(Some(42)))),
            ("/api/v1/ingest/jobs/42/", Some(Route::Job(Some(42)))),
            (
                "/api/v1/ingest/jobs/42/batches",
                Some(Route::Batches(Some(42))),
            ),
            (
                "/api/v1/ingest/jobs/42/batches/",
                Some(Route::Batches(Some(42))),
            ),
            (
                "/api/v1/ingest/jobs/7505e000001NLkPAAW",
                Some(Route::Job(None)),
            ),
            ("/api/v1/ingest/jobs/-1", Some(Route::Job(None))),
            ("/api/v1/ingest/jobs/42/results", None),
            ("/api/v1/ingest/jobs//batches", None),
        ] {
            assert!(matches(path), "{path}");
            assert_eq!(Route::resolve(path), route, "{path}");
        }
        for path in ["/api/v1/ingest", "/api/v1/ingest/jobsx", "/v1/jobs"] {
            assert!(!matches(path), "{path}");
        }
    }

    #[test]
    fn every_state_maps_both_ways() {
        for state in State::ALL {
            assert_eq!(State::from(JobState::from(state)), state);
        }
        for state in JobState::ALL {
            assert_eq!(JobState::parse(state.as_str()), Some(state));
            assert_eq!(JobState::from(State::from(state)), state);
        }
    }

    #[test]
    fn list_parameters_in_both_spellings_and_empty_values() {
        let query = list_query(Some("orderby=&states=&limit=&offset=")).unwrap();
        assert_eq!(query.sort, Some(SortField::UpdatedAt));
        assert_eq!(query.limit, Some(DEFAULT_LIMIT));
        assert!(query.states.is_empty());
        let query = list_query(Some(
            "state=Open,Aborted&orderBy=object%20ASC&limit=500&offset=3",
        ))
        .unwrap();
        assert_eq!(query.states, vec![State::Open, State::Cancelled]);
        assert_eq!(query.sort, Some(SortField::Target));
        assert_eq!(query.direction, Direction::Asc);
        assert_eq!(query.limit, Some(MAX_LIMIT));
        assert_eq!(query.page, Pagination::Offset(3));
        for bad in [
            "states=Done",
            "orderBy=name",
            "limit=0",
            "offset=-1",
            "page=2",
        ] {
            let fault = list_query(Some(bad)).err();
            assert_eq!(
                fault.map(|f| (f.status, f.code)),
                Some((StatusCode::BAD_REQUEST, "INVALID_QUERY_PARAMETER")),
                "{bad}"
            );
        }
    }

    #[test]
    fn create_bodies_are_checked_member_by_member() {
        let good = json!({"object": "Contact", "sourceName": "ecomm", "operation": "Upsert"});
        assert_eq!(
            CreateJob::try_from(good).ok().map(|c| c.operation),
            Some(Operation::Upsert)
        );
        for bad in [
            json!([]),
            json!({"sourceName": "ecomm", "operation": "upsert"}),
            json!({"object": "", "sourceName": "ecomm", "operation": "upsert"}),
            json!({"object": "C", "sourceName": 3, "operation": "upsert"}),
            json!({"object": "C", "sourceName": "s", "operation": "insert"}),
            json!({"object": "C", "sourceName": "s", "operation": "delete", "x": 1}),
            json!({"object": "C", "sourceName": "s", "operation": "delete", "contentType": "JSON"}),
        ] {
            let fault = CreateJob::try_from(bad.clone()).err();
            assert_eq!(fault.map(|f| f.code), Some("INVALIDJOB"), "{bad}");
        }
    }

    fn temp_store(clock: Arc<ManualClock>) -> (Store, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "jobstore-datacloud-{}-{}",
            std::process::id(),
            clock.now_ms()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let options = StoreOptions {
            clock,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.join("jobs.db"), options)
            .unwrap_or_else(|e| panic!("{e}"))
            .with_scope(Scope::All);
        (store, dir)
    }

    #[test]
    fn retention_deletes_only_old_open_and_closed_data_cloud_jobs() {
        let clock = Arc::new(ManualClock::new(1_700_000_000_123));
        let (store, dir) = temp_store(Arc::clone(&clock));
        let config = DialectConfig::default();
        let principal = Principal::anonymous_local();
        let new = |op: Operation| {
            CreateJob {
                object: "Contact".into(),
                source_name: "ecomm".into(),
                operation: op,
            }
            .into_new_job(&principal, "datacloud")
        };
        let enqueue = |job: NewJob| store.enqueue(job).unwrap_or_else(|e| panic!("{e}")).id;
        let open = enqueue(new(Operation::Upsert));
        let closed = enqueue(new(Operation::Delete));
        store
            .append_data(closed, &b"k1\n"[..])
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .close_upload(closed, "t")
            .unwrap_or_else(|e| panic!("{e}"));
        let native_open = enqueue(NewJob::new("x").upload(true));
        let aborted = enqueue(new(Operation::Upsert));
        store.cancel(aborted, "t").unwrap_or_else(|e| panic!("{e}"));
        clock.advance(config.datacloud_retention_ms - 1);
        let young = enqueue(new(Operation::Upsert));
        assert_eq!(purge_expired(&store, &config).ok(), Some(0));
        clock.advance(2);
        assert_eq!(purge_expired(&store, &config).ok(), Some(2));
        for id in [open, closed] {
            assert!(
                matches!(store.get(id), Err(Error::JobNotFound { .. })),
                "{id}"
            );
        }
        for id in [native_open, aborted, young] {
            assert!(store.get(id).is_ok(), "{id}");
        }
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }
}
