//! B2C Commerce OCAPI Data API job executions, 17.4 and every later version: the vendor's
//! paths (`/dw/data/v{major}_{minor}/...`, also under `/s/-`), its `job_execution` and
//! `job_step_execution` documents, its `job_execution_search`, and its fault document
//! `{"_v", "fault": {"arguments", "type", "message"}}` for every error, 401 and 403 included.
//!
//! A job is an execution of a job definition (native `PUT /v1/definitions/{id}`): executing
//! creates an ordinary job through [`jobstore::Store::execute`], tagged with dialect `ocapi`,
//! which workers claim and report on with the native worker calls. This module parses the
//! vendor's requests, makes the store calls and renders the vendor's shapes; it owns no SQL,
//! no table and no state logic (the state a document shows is a rendering of the job's state,
//! see `Phase`). Search queries become nested [`ListQuery`] conditions, evaluated by the
//! core. `docs/dialect-ocapi.md` lists what is supported and every choice made here.

use std::collections::{BTreeMap, BTreeSet};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jobstore::{
    Direction, Error, Execution, Job, ListQuery, Pagination, SortField, State, Step, StepStatus,
    Store,
};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::App;
use crate::auth::{Permission, Principal};
use crate::body::{self, ResponseBody};
use crate::dialects::DialectConfig;
use crate::dialects::query_pairs;
use crate::fault::{ApiError, ErrorKind};
use crate::router::percent_decode;
use crate::time::rfc3339_millis;

/// The first version served; also the `_v` of faults about a version that is not served.
const FIRST: Version = Version {
    major: 17,
    minor: 4,
};

/// `count` of a search when the request names none.
const DEFAULT_SEARCH_COUNT: i64 = 25;

/// The largest `count` of a search.
const MAX_SEARCH_COUNT: i64 = 200;

/// Whether `path` is one of this dialect's: anything under `/dw/data` (or `/s/-/dw/data`), with
/// or without a trailing slash. Unknown resources and versions there get the vendor's faults.
pub fn matches(path: &str) -> bool {
    data_api_rest(path).is_some()
}

/// Answers one request of this dialect.
pub(crate) async fn handle(
    app: &App,
    _config: &DialectConfig,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let (version, target) = match route(&path) {
        Ok(routed) => routed,
        Err(fault) => return fault.render(&FIRST.render()),
    };
    let v = version.render();
    answer(app, &v, target, request)
        .await
        .unwrap_or_else(|fault| fault.render(&v))
}

async fn answer(
    app: &App,
    v: &str,
    target: Target,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    let method = request.method().clone();
    if !target.allows(&method) {
        return Err(Fault::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowedException",
            format!(
                "Method '{method}' is not allowed for resource '{}'.",
                target.template()
            ),
        )
        .arg("method", method.as_str())
        .allow(target.allow_header()));
    }
    let principal = authenticate(app, &request)?;
    // A search is a POST that only reads.
    let permission = if method == Method::GET || matches!(target, Target::Search) {
        Permission::Read
    } else {
        Permission::Write
    };
    if !principal.may(permission) {
        return Err(Fault::new(
            StatusCode::FORBIDDEN,
            "ClientAccessForbiddenException",
            format!(
                "Access to resource '{method} {}' is not allowed for the current client \
                 (token `{}` lacks the `{}` scope).",
                target.template(),
                principal.name,
                permission.as_str()
            ),
        )
        .arg("method", method.as_str())
        .arg("path", target.template()));
    }
    match target {
        Target::Executions { job_id } => execute(app, &principal, v, job_id, request).await,
        Target::Execution { job_id, id } if method == Method::GET => {
            read(app, &principal, v, job_id, id).await
        }
        Target::Execution { job_id, id } => delete(app, &principal, job_id, id).await,
        Target::Search => search(app, &principal, v, request).await,
    }
}

// ---------------------------------------------------------------------------------------------
// Routes

/// An OCAPI version, `v19_5` in a path, `"19.5"` in `_v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    major: u32,
    minor: u32,
}

impl Version {
    /// `v{major}_{minor}`, digits only.
    fn parse(segment: &str) -> Option<Version> {
        let (major, minor) = segment.strip_prefix('v')?.split_once('_')?;
        let number = |text: &str| {
            (!text.is_empty() && text.len() <= 4 && text.bytes().all(|b| b.is_ascii_digit()))
                .then(|| text.parse::<u32>().ok())
                .flatten()
        };
        Some(Version {
            major: number(major)?,
            minor: number(minor)?,
        })
    }

    fn render(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }
}

/// A resource of the dialect.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// `/jobs/{job_id}/executions`
    Executions { job_id: String },
    /// `/jobs/{job_id}/executions/{id}`
    Execution { job_id: String, id: String },
    /// `/job_execution_search`
    Search,
}

impl Target {
    fn allows(&self, method: &Method) -> bool {
        match self {
            Target::Executions { .. } | Target::Search => method == Method::POST,
            Target::Execution { .. } => method == Method::GET || method == Method::DELETE,
        }
    }

    fn allow_header(&self) -> &'static str {
        match self {
            Target::Executions { .. } | Target::Search => "POST",
            Target::Execution { .. } => "GET, DELETE",
        }
    }

    /// The vendor's resource template (fault messages).
    fn template(&self) -> &'static str {
        match self {
            Target::Executions { .. } => "/jobs/{job_id}/executions",
            Target::Execution { .. } => "/jobs/{job_id}/executions/{id}",
            Target::Search => "/job_execution_search",
        }
    }
}

/// The part of `path` after `/dw/data`, without `/s/-` and one trailing slash; `None` when
/// the path is not the Data API's.
fn data_api_rest(path: &str) -> Option<&str> {
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let path = path.strip_prefix("/s/-").unwrap_or(path);
    path.strip_prefix("/dw/data")
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn route(path: &str) -> Result<(Version, Target), Fault> {
    let rest = data_api_rest(path).unwrap_or_default();
    let unknown = || {
        Fault::new(
            StatusCode::NOT_FOUND,
            "NotFoundException",
            format!("Unknown resource '{path}'. Please provide a valid resource."),
        )
        .arg("path", path)
    };
    let segments: Vec<String> = rest
        .split('/')
        .skip(1)
        .map(percent_decode)
        .collect::<Option<Vec<_>>>()
        .ok_or_else(unknown)?;
    let Some((first, resource)) = segments.split_first() else {
        return Err(invalid_version(""));
    };
    let version = Version::parse(first).ok_or_else(|| invalid_version(first))?;
    if version < FIRST {
        return Err(invalid_version(first));
    }
    let resource: Vec<&str> = resource.iter().map(String::as_str).collect();
    let target = match resource.as_slice() {
        ["jobs", job_id, "executions"] if !job_id.is_empty() => Target::Executions {
            job_id: (*job_id).to_owned(),
        },
        ["jobs", job_id, "executions", id] if !job_id.is_empty() && !id.is_empty() => {
            Target::Execution {
                job_id: (*job_id).to_owned(),
                id: (*id).to_owned(),
            }
        }
        ["job_execution_search"] => Target::Search,
        _ => return Err(unknown().version(version)),
    };
    Ok((version, target))
}

fn invalid_version(segment: &str) -> Fault {
    Fault::new(
        StatusCode::BAD_REQUEST,
        "InvalidVersionException",
        format!(
            "Version '{segment}' is missing, malformed or not served: this server serves \
             v17_4 and every later version (v{{major}}_{{minor}})."
        ),
    )
    .arg("version", segment)
}

// ---------------------------------------------------------------------------------------------
// Faults

/// A vendor fault: the status, the fault type, a message and its arguments.
#[derive(Debug)]
struct Fault {
    status: StatusCode,
    kind: &'static str,
    message: String,
    arguments: Vec<(&'static str, String)>,
    /// The `_v` to answer with, when not the one of the request.
    version: Option<Version>,
    allow: Option<&'static str>,
    retry_after: Option<u32>,
}

impl Fault {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Fault {
        Fault {
            status,
            kind,
            message: message.into(),
            arguments: Vec::new(),
            version: None,
            allow: None,
            retry_after: None,
        }
    }

    fn arg(mut self, name: &'static str, value: impl Into<String>) -> Fault {
        self.arguments.push((name, value.into()));
        self
    }

    fn version(mut self, version: Version) -> Fault {
        self.version = Some(version);
        self
    }

    fn allow(mut self, methods: &'static str) -> Fault {
        self.allow = Some(methods);
        self
    }

    fn render(&self, v: &str) -> Response<ResponseBody> {
        #[derive(Serialize)]
        struct Inner<'a> {
            arguments: Map<String, Value>,
            #[serde(rename = "type")]
            kind: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Document<'a> {
            #[serde(rename = "_v")]
            v: &'a str,
            fault: Inner<'a>,
        }
        let version = self.version.map(Version::render);
        let arguments = self
            .arguments
            .iter()
            .map(|(name, value)| ((*name).to_owned(), Value::String(value.clone())))
            .collect();
        let mut response = respond(
            self.status,
            &Document {
                v: version.as_deref().unwrap_or(v),
                fault: Inner {
                    arguments,
                    kind: self.kind,
                    message: &self.message,
                },
            },
        );
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<ApiError> for Fault {
    /// Errors of the daemon's common layers (body limits, storage) in the vendor's shape.
    fn from(err: ApiError) -> Fault {
        let kind = match err.status {
            StatusCode::BAD_REQUEST if err.kind == ErrorKind::InvalidJson => {
                "BodyDecodingException"
            }
            StatusCode::BAD_REQUEST => "ValueConstraintViolationException",
            StatusCode::NOT_FOUND => "NotFoundException",
            StatusCode::REQUEST_TIMEOUT => "RequestTimeoutException",
            StatusCode::CONFLICT => "ConflictException",
            StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLargeException",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableException",
            _ => "InternalServerErrorException",
        };
        Fault {
            retry_after: err.retry_after,
            ..Fault::new(err.status, kind, err.message)
        }
    }
}

fn job_not_found(job_id: &str) -> Fault {
    Fault::new(
        StatusCode::NOT_FOUND,
        "JobNotFoundException",
        format!("No job with ID '{job_id}' was found."),
    )
    .arg("jobId", job_id)
}

fn execution_not_found(id: &str) -> Fault {
    Fault::new(
        StatusCode::NOT_FOUND,
        "JobExecutionNotFoundException",
        format!("No Job execution with ID '{id}' was found."),
    )
    .arg("executionId", id)
}

/// The vendor's faults of `POST .../executions` for the core's refusals.
fn execute_fault(job_id: &str, err: Error) -> Fault {
    match err {
        Error::DefinitionNotFound { .. } => job_not_found(job_id),
        Error::JobAlreadyRunning { job, .. } => Fault::new(
            StatusCode::BAD_REQUEST,
            "JobAlreadyRunningException",
            format!("The job with ID '{job_id}' is already running (execution '{job}')."),
        )
        .arg("jobId", job_id),
        Error::DefinitionInvalid { cause, .. } => Fault::new(
            StatusCode::BAD_REQUEST,
            "JobInvalidException",
            format!("The job with ID '{job_id}' is invalid and cannot be executed: {cause}."),
        )
        .arg("jobId", job_id)
        .arg("cause", cause),
        Error::DefinitionDisabled { .. } => Fault::new(
            StatusCode::CONFLICT,
            "JobExecutionException",
            format!("The job with ID '{job_id}' could not be executed."),
        )
        .arg("jobId", job_id),
        Error::NotRestartable { .. } => Fault::new(
            StatusCode::BAD_REQUEST,
            "JobNotRestartableException",
            format!("The job with ID '{job_id}' does not support restarting."),
        )
        .arg("jobId", job_id),
        Error::NothingToRestart { .. } => Fault::new(
            StatusCode::BAD_REQUEST,
            "JobRestartException",
            format!(
                "The job with ID '{job_id}' could not be restarted: its latest execution did \
                 not end in an error and was not aborted."
            ),
        )
        .arg("jobId", job_id),
        other => Fault::from(ApiError::from(other)),
    }
}

fn body_fault(message: impl Into<String>) -> Fault {
    Fault::new(
        StatusCode::BAD_REQUEST,
        "BodyDecodingException",
        format!(
            "The request document could not be decoded: {}",
            message.into()
        ),
    )
}

fn constraint_fault(message: impl Into<String>) -> Fault {
    Fault::new(
        StatusCode::BAD_REQUEST,
        "ValueConstraintViolationException",
        message,
    )
}

fn authenticate(app: &App, request: &Request<Incoming>) -> Result<Principal, Fault> {
    app.authenticate(request).map_err(|_| {
        if request.headers().contains_key(header::AUTHORIZATION) {
            Fault::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAccessTokenException",
                "The request is unauthorized, the access token is invalid.",
            )
        } else {
            Fault::new(
                StatusCode::UNAUTHORIZED,
                "UnauthorizedException",
                "The request is unauthorized: the 'Authorization: Bearer <token>' header is \
                 missing.",
            )
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Executions

/// A job with what its document shows besides the job row.
struct ExecutionView {
    job: Job,
    steps: Vec<Step>,
    has_log: bool,
    now: i64,
}

/// Reads what the document of `job` needs.
fn view(store: &Store, job: Job) -> jobstore::Result<ExecutionView> {
    let steps = store.steps(job.id)?;
    let has_log = !store.log(job.id, 0, 1)?.is_empty();
    Ok(ExecutionView {
        job,
        steps,
        has_log,
        now: store.now(),
    })
}

/// The execution `id` of definition `job_id`, or `None` when there is none such (unknown,
/// another tenant's, another job's, or not an execution at all).
fn find(store: &Store, job_id: &str, id: i64) -> jobstore::Result<Option<ExecutionView>> {
    let gone = |err: Error| match err {
        Error::JobNotFound { .. } => Ok(None),
        other => Err(other),
    };
    let job = match store.get(id) {
        Ok(job) if job.definition_id.as_deref() == Some(job_id) => job,
        Ok(_) => return Ok(None),
        Err(err) => return gone(err),
    };
    view(store, job).map(Some).or_else(gone)
}

/// The numeric id of an execution id as the vendor's clients send it (a string): only the
/// canonical decimal form names a job.
fn execution_id(id: &str) -> Option<i64> {
    id.parse::<i64>()
        .ok()
        .filter(|n| *n > 0 && n.to_string() == id)
}

/// `POST .../jobs/{job_id}/executions[?restart=true]`.
async fn execute(
    app: &App,
    principal: &Principal,
    v: &str,
    job_id: String,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    let restart = restart_flag(request.uri().query())?;
    let bytes = app.raw_body(request).await.map_err(Fault::from)?;
    let payload = execution_payload(&bytes)?;
    let execution = Execution {
        restart,
        payload,
        created_by: principal.name.clone(),
        dialect: Some("ocapi".to_owned()),
    };
    let definition = job_id.clone();
    let outcome = app
        .call(principal, move |store| {
            Ok(store
                .execute(&definition, execution)
                .and_then(|job| view(&store, job)))
        })
        .await
        .map_err(Fault::from)?;
    let view = outcome.map_err(|err| execute_fault(&job_id, err))?;
    Ok(respond(StatusCode::OK, &JobExecution::of(&view, Some(v))))
}

/// `restart` of the query: `true` or `false`; other parameters are ignored, as the vendor
/// ignores what it does not know (`client_id`, `format`).
fn restart_flag(query: Option<&str>) -> Result<bool, Fault> {
    let pairs = query_pairs(query).ok_or_else(|| {
        Fault::new(
            StatusCode::BAD_REQUEST,
            "MalformedParameterException",
            "The query string is malformed.",
        )
    })?;
    let mut restart = false;
    for (name, value) in pairs {
        if name == "restart" {
            restart = match value.as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(Fault::new(
                        StatusCode::BAD_REQUEST,
                        "MalformedParameterException",
                        format!(
                            "The value '{value}' of parameter 'restart' is malformed: expected \
                             'true' or 'false'."
                        ),
                    )
                    .arg("parameter", "restart")
                    .arg("value", value));
                }
            };
        }
    }
    Ok(restart)
}

/// One `job_execution_parameter` of a 19.x request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParameterIn {
    name: String,
    /// `null` is what `sfcc-ci job:run NAME` (no `=value`) sends.
    value: Option<String>,
    #[serde(rename = "_type")]
    _kind: Option<IgnoredAny>,
}

/// The execution's payload from the request body: empty (with or without a Content-Type) is
/// `{}`; otherwise a JSON object whose `parameters`, when present, must be the 19.x list of
/// `{"name", "value"}`. Other members (system jobs' request documents) are kept as they are.
fn execution_payload(bytes: &[u8]) -> Result<Value, Fault> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    jobstore::exact_json::check_numbers(bytes).map_err(body_fault)?;
    let document: Value =
        serde_json::from_slice(bytes).map_err(|err| body_fault(err.to_string()))?;
    let Value::Object(mut members) = document else {
        return Err(body_fault("the request document must be a JSON object"));
    };
    if let Some(parameters) = members.remove("parameters") {
        let parameters: Vec<ParameterIn> = serde_json::from_value(parameters)
            .map_err(|err| body_fault(format!("`parameters`: {err}")))?;
        let mut normalised = Vec::with_capacity(parameters.len());
        for parameter in parameters {
            if parameter.name.is_empty() || parameter.name.chars().count() > 256 {
                return Err(constraint_fault(
                    "The name of a job execution parameter must be 1 to 256 characters long.",
                ));
            }
            if parameter
                .value
                .as_ref()
                .is_some_and(|value| value.chars().count() > 1000)
            {
                return Err(constraint_fault(format!(
                    "The value of job execution parameter '{}' is longer than 1000 characters.",
                    parameter.name
                )));
            }
            normalised.push(serde_json::json!({
                "name": parameter.name,
                "value": parameter.value,
            }));
        }
        members.insert("parameters".to_owned(), Value::Array(normalised));
    }
    Ok(Value::Object(members))
}

/// `GET .../jobs/{job_id}/executions/{id}`.
async fn read(
    app: &App,
    principal: &Principal,
    v: &str,
    job_id: String,
    id: String,
) -> Result<Response<ResponseBody>, Fault> {
    let Some(number) = execution_id(&id) else {
        return Err(execution_not_found(&id));
    };
    let found = app
        .call(principal, move |store| find(&store, &job_id, number))
        .await
        .map_err(Fault::from)?;
    let view = found.ok_or_else(|| execution_not_found(&id))?;
    Ok(respond(StatusCode::OK, &JobExecution::of(&view, Some(v))))
}

/// What a DELETE found.
enum Deleted {
    Yes,
    NotFound,
    NotFinished,
}

/// `DELETE .../jobs/{job_id}/executions/{id}`: only a finished (or aborted) execution is
/// deleted; the core refuses the others, and nothing changes.
async fn delete(
    app: &App,
    principal: &Principal,
    job_id: String,
    id: String,
) -> Result<Response<ResponseBody>, Fault> {
    let Some(number) = execution_id(&id) else {
        return Err(execution_not_found(&id));
    };
    let outcome = app
        .call(principal, move |store| {
            match store.get(number) {
                Ok(job) if job.definition_id.as_deref() == Some(job_id.as_str()) => {}
                Ok(_) | Err(Error::JobNotFound { .. }) => return Ok(Deleted::NotFound),
                Err(err) => return Err(err),
            }
            match store.delete(number) {
                Ok(()) => Ok(Deleted::Yes),
                Err(Error::InvalidTransition { .. }) => Ok(Deleted::NotFinished),
                Err(Error::JobNotFound { .. }) => Ok(Deleted::NotFound),
                Err(err) => Err(err),
            }
        })
        .await
        .map_err(Fault::from)?;
    match outcome {
        Deleted::Yes => Ok(body::empty(StatusCode::NO_CONTENT)),
        Deleted::NotFound => Err(execution_not_found(&id)),
        Deleted::NotFinished => Err(Fault::new(
            StatusCode::FORBIDDEN,
            "JobExecutionNotFinishedException",
            format!("The Job execution with ID '{id}' is not finished and cannot be deleted."),
        )
        .arg("executionId", id)),
    }
}

// ---------------------------------------------------------------------------------------------
// Documents

/// The vendor's view of a job's state: the status mapping of this dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Queued (or open): not claimed yet, or waiting for a retry.
    Pending,
    /// Claimed by a worker.
    Running,
    /// Running with a cancel requested.
    Aborting,
    /// Succeeded.
    FinishedOk,
    /// Failed.
    FinishedError,
    /// Cancelled.
    Aborted,
}

impl Phase {
    fn of(job: &Job) -> Phase {
        match job.state {
            State::Open | State::Queued => Phase::Pending,
            State::Running if job.cancel_requested_at.is_some() => Phase::Aborting,
            State::Running => Phase::Running,
            State::Succeeded => Phase::FinishedOk,
            State::Failed => Phase::FinishedError,
            State::Cancelled => Phase::Aborted,
        }
    }

    /// `execution_status`.
    fn execution_status(self) -> &'static str {
        match self {
            Phase::Pending => "pending",
            Phase::Running => "running",
            Phase::Aborting => "aborting",
            Phase::FinishedOk | Phase::FinishedError => "finished",
            Phase::Aborted => "aborted",
        }
    }

    /// `status`: PENDING or RUNNING while live, the exit code once over.
    fn status(self) -> &'static str {
        match self {
            Phase::Pending => "PENDING",
            Phase::Running | Phase::Aborting => "RUNNING",
            Phase::FinishedOk => "OK",
            Phase::FinishedError => "ERROR",
            Phase::Aborted => "ABORTED",
        }
    }
}

/// The states whose executions show `status` (a search term).
fn states_of_status(status: &str) -> &'static [State] {
    match status {
        "PENDING" => &[State::Open, State::Queued],
        "RUNNING" => &[State::Running],
        "OK" => &[State::Succeeded],
        "ERROR" => &[State::Failed],
        "ABORTED" => &[State::Cancelled],
        _ => &[],
    }
}

/// The rank of each state in a sort by `status`: the vendor's status strings in order.
fn status_ranks() -> BTreeMap<String, i64> {
    [
        (State::Cancelled, 0), // ABORTED
        (State::Failed, 1),    // ERROR
        (State::Succeeded, 2), // OK
        (State::Open, 3),      // PENDING
        (State::Queued, 3),    // PENDING
        (State::Running, 4),   // RUNNING
    ]
    .into_iter()
    .map(|(state, rank)| (state.as_str().to_owned(), rank))
    .collect()
}

/// `{"_type": "status", "code", "message"?, "status": "ok"|"error"}`.
#[derive(Debug, Serialize)]
struct ExitStatus {
    #[serde(rename = "_type")]
    kind: &'static str,
    code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    status: &'static str,
}

impl ExitStatus {
    fn new(code: String, message: Option<String>, ok: bool) -> ExitStatus {
        ExitStatus {
            kind: "status",
            code,
            message,
            status: if ok { "ok" } else { "error" },
        }
    }
}

/// `job_execution_parameter`.
#[derive(Debug, Serialize)]
struct Parameter {
    #[serde(rename = "_type")]
    kind: &'static str,
    name: String,
    value: Value,
}

/// The `job_execution` document. Members in the vendor's (alphabetical) order.
#[derive(Debug, Serialize)]
struct JobExecution {
    #[serde(rename = "_v", skip_serializing_if = "Option::is_none")]
    v: Option<String>,
    #[serde(rename = "_type")]
    kind: &'static str,
    #[serde(rename = "_resource_state")]
    resource_state: String,
    client_id: String,
    duration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    execution_scopes: BTreeSet<String>,
    execution_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_status: Option<ExitStatus>,
    id: String,
    is_log_file_existing: bool,
    is_restart: bool,
    job_id: String,
    log_file_name: String,
    modification_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Vec<Parameter>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    status: String,
    step_executions: Vec<StepExecution>,
}

/// The `job_step_execution` document.
#[derive(Debug, Serialize)]
struct StepExecution {
    #[serde(rename = "_type")]
    kind: &'static str,
    duration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    execution_scope: String,
    execution_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_status: Option<ExitStatus>,
    id: String,
    modification_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    status: String,
    step_description: String,
    step_id: String,
    step_type_id: String,
}

/// Milliseconds from `start` to `end` (or `now` while not ended); 0 before the start.
fn duration(start: Option<i64>, end: Option<i64>, now: i64) -> i64 {
    start.map_or(0, |start| end.unwrap_or(now).saturating_sub(start).max(0))
}

impl JobExecution {
    /// The document of an execution; `v` is `None` inside a search result.
    fn of(view: &ExecutionView, v: Option<&str>) -> JobExecution {
        let job = &view.job;
        let phase = Phase::of(job);
        let exit_status = match phase {
            Phase::Pending | Phase::Running | Phase::Aborting => None,
            Phase::FinishedOk => Some(ExitStatus::new("OK".into(), None, true)),
            Phase::FinishedError | Phase::Aborted => Some(ExitStatus::new(
                phase.status().into(),
                job.error.clone().filter(|e| !e.is_empty()),
                false,
            )),
        };
        let job_id = job.definition_id.clone().unwrap_or_default();
        let stamp: String = rfc3339_millis(job.created_at)
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        JobExecution {
            v: v.map(str::to_owned),
            kind: "job_execution",
            resource_state: resource_state(job, &view.steps),
            client_id: job.created_by.clone(),
            duration: duration(job.started_at, job.finished_at, view.now),
            end_time: job.finished_at.map(rfc3339_millis),
            execution_scopes: view
                .steps
                .iter()
                .map(|s| s.execution_scope.clone())
                .filter(|scope| !scope.is_empty())
                .collect(),
            execution_status: phase.execution_status(),
            exit_status,
            id: job.id.to_string(),
            is_log_file_existing: view.has_log,
            is_restart: job.restart_of.is_some(),
            log_file_name: format!("Job-{job_id}-{stamp}.log"),
            job_id,
            modification_time: rfc3339_millis(job.updated_at),
            parameters: parameters(&job.payload),
            start_time: job.started_at.map(rfc3339_millis),
            status: phase.status().to_owned(),
            step_executions: view
                .steps
                .iter()
                .map(|step| StepExecution::of(job.id, step, view.now))
                .collect(),
        }
    }
}

impl StepExecution {
    fn of(execution: i64, step: &Step, now: i64) -> StepExecution {
        let (execution_status, exit_status, status) = match step.status {
            StepStatus::Pending => ("pending", None, "PENDING".to_owned()),
            StepStatus::Running => ("running", None, "RUNNING".to_owned()),
            StepStatus::Ok | StepStatus::Error => {
                let ok = step.status == StepStatus::Ok;
                let code = step
                    .exit_code
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| if ok { "OK" } else { "ERROR" }.to_owned());
                let exit = ExitStatus::new(code.clone(), step.message.clone(), ok);
                ("finished", Some(exit), code)
            }
        };
        StepExecution {
            kind: "job_step_execution",
            duration: duration(step.started_at, step.finished_at, now),
            end_time: step.finished_at.map(rfc3339_millis),
            execution_scope: step.execution_scope.clone(),
            execution_status,
            exit_status,
            id: format!("{execution}-{}", step.position + 1),
            modification_time: rfc3339_millis(step.updated_at),
            start_time: step.started_at.map(rfc3339_millis),
            status,
            step_description: step.description.clone(),
            step_id: step.step_id.clone(),
            step_type_id: step.step_type_id.clone(),
        }
    }
}

/// The 19.x parameters kept in the payload, if the execution was given any.
fn parameters(payload: &Value) -> Option<Vec<Parameter>> {
    let list = payload.get("parameters")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|p| {
                Some(Parameter {
                    kind: "job_execution_parameter",
                    name: p.get("name")?.as_str()?.to_owned(),
                    value: p.get("value").cloned().unwrap_or(Value::Null),
                })
            })
            .collect(),
    )
}

/// A hash of everything the document shows that can change: it changes whenever the
/// execution or one of its steps does (a heartbeat included), and only then.
fn resource_state(job: &Job, steps: &[Step]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(
        format!(
            "{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
            job.id,
            job.state.as_str(),
            job.updated_at,
            job.started_at,
            job.finished_at,
            job.cancel_requested_at,
            job.error
        )
        .as_bytes(),
    );
    for step in steps {
        hasher.update(
            format!(
                "\u{1}{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{:?}\u{0}{:?}\u{0}{:?}",
                step.step_id,
                step.status.as_str(),
                step.updated_at,
                step.started_at,
                step.finished_at,
                step.exit_code,
                step.message
            )
            .as_bytes(),
        );
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A JSON response with the vendor's cache headers.
fn respond<T: Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    let mut response = body::json(status, value);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache,no-store,must-revalidate"),
    );
    response
}

// ---------------------------------------------------------------------------------------------
// Search

/// The `SearchRequest` document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    query: Option<Value>,
    count: Option<i64>,
    start: Option<i64>,
    select: Option<String>,
    #[serde(default)]
    sorts: Vec<SortClause>,
    /// Accepted and ignored: executions have no expansions.
    #[serde(rename = "expand")]
    _expand: Option<IgnoredAny>,
    /// Accepted and ignored (a vendor paging hint).
    #[serde(rename = "db_start_record_")]
    _db_start_record: Option<IgnoredAny>,
}

/// One `Sort` clause.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SortClause {
    field: String,
    #[serde(default)]
    sort_order: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TermQuery {
    fields: Vec<String>,
    operator: String,
    #[serde(default)]
    values: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoolQuery {
    #[serde(default)]
    must: Vec<Value>,
    #[serde(default)]
    must_not: Vec<Value>,
    #[serde(default)]
    should: Vec<Value>,
}

/// The `job_execution_search_result` document.
#[derive(Debug, Serialize)]
struct SearchResult {
    #[serde(rename = "_v")]
    v: String,
    #[serde(rename = "_type")]
    kind: &'static str,
    count: usize,
    hits: Vec<JobExecution>,
    query: Value,
    select: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sorts: Option<Vec<SortClause>>,
    start: i64,
    total: u64,
}

/// The searchable attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SearchField {
    Id,
    JobId,
    StartTime,
    EndTime,
    Status,
}

impl SearchField {
    fn parse(name: &str) -> Result<SearchField, Fault> {
        match name {
            "id" => Ok(SearchField::Id),
            "job_id" => Ok(SearchField::JobId),
            "start_time" => Ok(SearchField::StartTime),
            "end_time" => Ok(SearchField::EndTime),
            "status" => Ok(SearchField::Status),
            other => Err(Fault::new(
                StatusCode::BAD_REQUEST,
                "FieldNotSearchableException",
                format!(
                    "The field '{other}' is not searchable; searchable fields: id, job_id, \
                     start_time, end_time, status."
                ),
            )
            .arg("field", other)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            SearchField::Id => "id",
            SearchField::JobId => "job_id",
            SearchField::StartTime => "start_time",
            SearchField::EndTime => "end_time",
            SearchField::Status => "status",
        }
    }

    /// The vendor's type name of the field (faults).
    fn type_name(self) -> &'static str {
        match self {
            SearchField::StartTime | SearchField::EndTime => "Date",
            SearchField::Id | SearchField::JobId | SearchField::Status => "String",
        }
    }
}

/// The term query operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    Is,
    OneOf,
    IsNull,
    IsNotNull,
    Less,
    Greater,
    NotIn,
    Neq,
}

impl Operator {
    fn parse(name: &str) -> Result<Operator, Fault> {
        Ok(match name {
            "is" => Operator::Is,
            "one_of" => Operator::OneOf,
            "is_null" => Operator::IsNull,
            "is_not_null" => Operator::IsNotNull,
            "less" => Operator::Less,
            "greater" => Operator::Greater,
            "not_in" => Operator::NotIn,
            "neq" => Operator::Neq,
            other => {
                return Err(Fault::new(
                    StatusCode::BAD_REQUEST,
                    "EnumConstraintViolationException",
                    format!(
                        "The operator '{other}' is not one of is, one_of, is_null, \
                         is_not_null, less, greater, not_in, neq."
                    ),
                )
                .arg("document", "term_query")
                .arg("enumValue", other));
            }
        })
    }
}

/// `POST .../job_execution_search`.
async fn search(
    app: &App,
    principal: &Principal,
    v: &str,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    let bytes = app.raw_body(request).await.map_err(Fault::from)?;
    jobstore::exact_json::check_numbers(&bytes).map_err(body_fault)?;
    let search: SearchRequest =
        serde_json::from_slice(&bytes).map_err(|err| body_fault(err.to_string()))?;
    let query_document = search
        .query
        .ok_or_else(|| body_fault("the search request needs a `query`"))?;
    let condition = condition(&query_document)?;
    let count = search.count.unwrap_or(DEFAULT_SEARCH_COUNT);
    if !(1..=MAX_SEARCH_COUNT).contains(&count) {
        return Err(constraint_fault(format!(
            "The count must be 1 to {MAX_SEARCH_COUNT}, got {count}."
        )));
    }
    let start = search.start.unwrap_or(0);
    let offset = u64::try_from(start)
        .map_err(|_| constraint_fault(format!("The start must be 0 or more, got {start}.")))?;
    let mut list = ListQuery {
        with_definition: true,
        all_of: vec![condition],
        limit: u32::try_from(count).ok(),
        page: Pagination::Offset(offset),
        count_total: true,
        sort: Some(SortField::Id),
        direction: Direction::Desc,
        ..ListQuery::default()
    };
    let mut sorts = None;
    match search.sorts.as_slice() {
        [] => {}
        [clause] => {
            let (sort, direction) = sort_of(clause)?;
            if sort == SortField::State {
                list.sort_rank = status_ranks();
            }
            list.sort = Some(sort);
            list.direction = direction;
            sorts = Some(vec![SortClause {
                field: clause.field.clone(),
                sort_order: Some(direction.as_str().to_owned()),
            }]);
        }
        _ => {
            return Err(constraint_fault(
                "At most one sort clause is supported by this server.",
            ));
        }
    }
    let (views, total) = app
        .call(principal, move |store| {
            let page = store.list(&list)?;
            let mut views = Vec::with_capacity(page.jobs.len());
            for job in page.jobs {
                match view(&store, job) {
                    Ok(view) => views.push(view),
                    // Deleted since the page was read.
                    Err(Error::JobNotFound { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            Ok((views, page.total.unwrap_or(0)))
        })
        .await
        .map_err(Fault::from)?;
    let hits: Vec<JobExecution> = views
        .iter()
        .map(|view| JobExecution::of(view, None))
        .collect();
    Ok(respond(
        StatusCode::OK,
        &SearchResult {
            v: v.to_owned(),
            kind: "job_execution_search_result",
            count: hits.len(),
            hits,
            query: query_document,
            select: search.select.unwrap_or_else(|| "(**)".to_owned()),
            sorts,
            start,
            total,
        },
    ))
}

fn sort_of(clause: &SortClause) -> Result<(SortField, Direction), Fault> {
    let sort = match clause.field.as_str() {
        "id" => SortField::Id,
        "job_id" => SortField::DefinitionId,
        "start_time" => SortField::StartedAt,
        "end_time" => SortField::FinishedAt,
        "status" => SortField::State,
        other => {
            return Err(Fault::new(
                StatusCode::BAD_REQUEST,
                "FieldNotSortableException",
                format!(
                    "The field '{other}' is not sortable; sortable fields: id, job_id, \
                     start_time, end_time, status."
                ),
            )
            .arg("field", other));
        }
    };
    let direction = match clause.sort_order.as_deref() {
        None | Some("asc") => Direction::Asc,
        Some("desc") => Direction::Desc,
        Some(other) => {
            return Err(Fault::new(
                StatusCode::BAD_REQUEST,
                "EnumConstraintViolationException",
                format!("The sort order '{other}' is not one of asc, desc."),
            )
            .arg("document", "sort")
            .arg("enumValue", other));
        }
    };
    Ok((sort, direction))
}

/// A query document as a condition on jobs (a filters-only [`ListQuery`]).
fn condition(query: &Value) -> Result<ListQuery, Fault> {
    let Some(members) = query.as_object() else {
        return Err(body_fault("a query must be a JSON object"));
    };
    let mut kinds = members.iter();
    let (Some((kind, body)), None) = (kinds.next(), kinds.next()) else {
        return Err(body_fault(
            "a query holds exactly one of term_query, bool_query, match_all_query",
        ));
    };
    match kind.as_str() {
        "match_all_query" => match body.as_object() {
            Some(members) if members.is_empty() => Ok(ListQuery::default()),
            _ => Err(body_fault("`match_all_query` must be an empty object")),
        },
        "bool_query" => {
            let bool_query: BoolQuery = serde_json::from_value(body.clone())
                .map_err(|err| body_fault(format!("`bool_query`: {err}")))?;
            let all = |queries: &[Value]| -> Result<Vec<ListQuery>, Fault> {
                queries.iter().map(condition).collect()
            };
            Ok(ListQuery {
                all_of: all(&bool_query.must)?,
                any_of: all(&bool_query.should)?,
                none_of: all(&bool_query.must_not)?,
                ..ListQuery::default()
            })
        }
        "term_query" => {
            let term: TermQuery = serde_json::from_value(body.clone())
                .map_err(|err| body_fault(format!("`term_query`: {err}")))?;
            term_condition(&term)
        }
        "text_query" | "filtered_query" | "nested_query" => Err(Fault::new(
            StatusCode::BAD_REQUEST,
            "UnsupportedQueryException",
            format!(
                "The query type '{kind}' is not supported for job executions; use term_query, \
                 bool_query or match_all_query."
            ),
        )
        .arg("query", kind.as_str())),
        other => Err(body_fault(format!(
            "unknown query type `{other}`; expected term_query, bool_query or match_all_query"
        ))),
    }
}

/// A term query: the operator applied to each field, the fields combined with OR.
fn term_condition(term: &TermQuery) -> Result<ListQuery, Fault> {
    let operator = Operator::parse(&term.operator)?;
    // The vendor's own search sample sends `is` with two values: `is` and `neq` with several
    // values are read as `one_of` and `not_in`.
    let arity_ok = match operator {
        Operator::Less | Operator::Greater => term.values.len() == 1,
        Operator::Is | Operator::Neq | Operator::OneOf | Operator::NotIn => !term.values.is_empty(),
        Operator::IsNull | Operator::IsNotNull => term.values.is_empty(),
    };
    if !arity_ok {
        return Err(constraint_fault(format!(
            "The operator '{}' does not take {} value(s): less and greater take one, is, neq, \
             one_of and not_in one or more, is_null and is_not_null none.",
            term.operator,
            term.values.len()
        )));
    }
    if term.fields.is_empty() {
        return Err(constraint_fault("A term query needs at least one field."));
    }
    let mut per_field = term
        .fields
        .iter()
        .map(|name| field_condition(SearchField::parse(name)?, operator, &term.values))
        .collect::<Result<Vec<_>, Fault>>()?;
    Ok(if per_field.len() == 1 {
        per_field.swap_remove(0)
    } else {
        ListQuery {
            any_of: per_field,
            ..ListQuery::default()
        }
    })
}

/// A condition that no job meets.
fn nothing() -> ListQuery {
    ListQuery {
        none_of: vec![ListQuery::default()],
        ..ListQuery::default()
    }
}

fn not(query: ListQuery) -> ListQuery {
    ListQuery {
        none_of: vec![query],
        ..ListQuery::default()
    }
}

fn field_condition(
    field: SearchField,
    operator: Operator,
    values: &[Value],
) -> Result<ListQuery, Fault> {
    Ok(match operator {
        Operator::Is | Operator::OneOf => equals(field, values)?,
        Operator::Neq | Operator::NotIn => not(equals(field, values)?),
        Operator::IsNull => is_null(field),
        Operator::IsNotNull => not(is_null(field)),
        Operator::Less | Operator::Greater => {
            let bound = values.first().map(|v| time_value(field, v)).transpose()?;
            let Some(Some(bound)) = bound else {
                return Err(Fault::new(
                    StatusCode::BAD_REQUEST,
                    "UnsupportedQueryException",
                    format!(
                        "The operators less and greater apply to start_time and end_time only, \
                         not to '{}'.",
                        field.name()
                    ),
                )
                .arg("field", field.name()));
            };
            let less = operator == Operator::Less;
            let after = bound.saturating_add(1);
            match (field, less) {
                (SearchField::StartTime, true) => ListQuery {
                    started_before: Some(bound),
                    ..ListQuery::default()
                },
                (SearchField::StartTime, false) => ListQuery {
                    started_after: Some(after),
                    ..ListQuery::default()
                },
                (SearchField::EndTime, true) => ListQuery {
                    finished_before: Some(bound),
                    ..ListQuery::default()
                },
                _ => ListQuery {
                    finished_after: Some(after),
                    ..ListQuery::default()
                },
            }
        }
    })
}

/// `field` equals one of `values`.
fn equals(field: SearchField, values: &[Value]) -> Result<ListQuery, Fault> {
    let texts = || {
        values
            .iter()
            .map(|value| match value {
                Value::String(text) => Ok(text.clone()),
                other => Err(field_type_fault(field, other)),
            })
            .collect::<Result<Vec<String>, Fault>>()
    };
    let query = match field {
        SearchField::Id => {
            let mut ids = Vec::new();
            for value in values {
                match value {
                    // Ids are strings to the vendor: one that is not a number names nothing.
                    Value::String(text) => ids.extend(execution_id(text)),
                    Value::Number(number) => ids.extend(number.as_i64()),
                    other => return Err(field_type_fault(field, other)),
                }
            }
            ListQuery {
                ids,
                ..ListQuery::default()
            }
        }
        SearchField::JobId => ListQuery {
            definitions: texts()?,
            ..ListQuery::default()
        },
        SearchField::Status => ListQuery {
            states: texts()?
                .iter()
                .flat_map(|status| states_of_status(status).iter().copied())
                .collect(),
            ..ListQuery::default()
        },
        SearchField::StartTime | SearchField::EndTime => {
            let mut instants = Vec::new();
            for value in values {
                instants.extend(time_value(field, value)?);
            }
            let exactly = |at: i64| {
                let end = Some(at.saturating_add(1));
                if field == SearchField::StartTime {
                    ListQuery {
                        started_after: Some(at),
                        started_before: end,
                        ..ListQuery::default()
                    }
                } else {
                    ListQuery {
                        finished_after: Some(at),
                        finished_before: end,
                        ..ListQuery::default()
                    }
                }
            };
            ListQuery {
                any_of: instants.into_iter().map(exactly).collect(),
                ..ListQuery::default()
            }
        }
    };
    // An empty filter list would mean "no filter": no usable value matches nothing.
    let empty = query.ids.is_empty()
        && query.definitions.is_empty()
        && query.states.is_empty()
        && query.any_of.is_empty();
    Ok(if empty { nothing() } else { query })
}

/// `field` has no value: only a time can be missing (not started, not finished).
fn is_null(field: SearchField) -> ListQuery {
    match field {
        SearchField::StartTime => not(ListQuery {
            started_after: Some(i64::MIN),
            ..ListQuery::default()
        }),
        SearchField::EndTime => not(ListQuery {
            finished_after: Some(i64::MIN),
            ..ListQuery::default()
        }),
        SearchField::Id | SearchField::JobId | SearchField::Status => nothing(),
    }
}

/// The instant of a time value (`Some`), or `None` when `field` is not a time.
fn time_value(field: SearchField, value: &Value) -> Result<Option<i64>, Fault> {
    if !matches!(field, SearchField::StartTime | SearchField::EndTime) {
        return Ok(None);
    }
    match value {
        Value::String(text) => parse_time(text)
            .map(Some)
            .ok_or_else(|| field_type_fault(field, value)),
        other => Err(field_type_fault(field, other)),
    }
}

fn field_type_fault(field: SearchField, value: &Value) -> Fault {
    let shown = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    Fault::new(
        StatusCode::BAD_REQUEST,
        "InvalidSearchFieldTypeException",
        format!(
            "The value '{shown}' does not match the type {} of field '{}'{}.",
            field.type_name(),
            field.name(),
            if field.type_name() == "Date" {
                " (expected an ISO 8601 date or time such as 2024-05-01T12:00:00.000Z)"
            } else {
                ""
            }
        ),
    )
    .arg("field", field.name())
    .arg("value", shown)
    .arg("type", field.type_name())
}

/// Milliseconds since the Unix epoch of `2024-05-01`, `2024-05-01T12:00`,
/// `2024-05-01T12:00:00`, with optional fractions and a zone (`Z` or `±hh:mm`; none is UTC).
fn parse_time(text: &str) -> Option<i64> {
    let number = |part: &str| -> Option<i64> {
        (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse().ok())
            .flatten()
    };
    let (date, time) = match text.split_once(['T', 't', ' ']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut date_parts = date.split('-');
    let (Some(year), Some(month), Some(day), None) = (
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
        date_parts.next(),
    ) else {
        return None;
    };
    if year.len() != 4 || month.len() != 2 || day.len() != 2 {
        return None;
    }
    let (year, month, day) = (number(year)?, number(month)?, number(day)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let mut ms = days_from_civil(year, month, day).checked_mul(86_400_000)?;
    if let Some(time) = time {
        let (clock, offset_minutes) = if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            (clock, 0)
        } else if let Some(at) = time.rfind(['+', '-']) {
            let (clock, zone) = time.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = zone.get(1..)?.split_once(':')?;
            if hours.len() != 2 || minutes.len() != 2 {
                return None;
            }
            let (hours, minutes) = (number(hours)?, number(minutes)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            (clock, sign * (hours * 60 + minutes))
        } else {
            (time, 0)
        };
        let (clock, fraction) = match clock.split_once('.') {
            Some((clock, fraction)) => (clock, Some(fraction)),
            None => (clock, None),
        };
        let mut parts = clock.split(':');
        let (Some(hour), Some(minute), second, None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if hour.len() != 2 || minute.len() != 2 || second.is_some_and(|s| s.len() != 2) {
            return None;
        }
        if fraction.is_some() && second.is_none() {
            return None;
        }
        let (hour, minute) = (number(hour)?, number(minute)?);
        let second = second.map_or(Some(0), number)?;
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let millis = match fraction {
            None => 0,
            Some(digits) if (1..=9).contains(&digits.len()) => {
                let padded = format!("{digits:0<3}");
                number(padded.get(..3)?)?
            }
            Some(_) => return None,
        };
        ms = ms
            .checked_add((hour * 3600 + minute * 60 + second) * 1000 + millis)?
            .checked_sub(offset_minutes * 60_000)?;
    }
    Some(ms)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm, the
/// inverse of the one in [`crate::time`]).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_from_17_4_on_and_render_with_a_dot() {
        assert_eq!(
            Version::parse("v19_5").map(Version::render),
            Some("19.5".into())
        );
        assert_eq!(
            Version::parse("v25_6").map(Version::render),
            Some("25.6".into())
        );
        for bad in ["19_5", "v19", "v19_", "v_5", "v19_5a", "v+1_2", "v12345_1"] {
            assert_eq!(Version::parse(bad), None, "{bad}");
        }
        assert!(Version::parse("v17_3").is_some_and(|v| v < FIRST));
        assert!(Version::parse("v17_10").is_some_and(|v| v > FIRST));
    }

    #[test]
    fn paths_match_with_prefix_and_trailing_slash() {
        for path in [
            "/dw/data/v17_4/jobs/a/executions",
            "/dw/data/v17_4/jobs/a/executions/",
            "/s/-/dw/data/v19_5/jobs/a/executions/7",
            "/s/-/dw/data/v19_5/job_execution_search/",
            "/dw/data",
        ] {
            assert!(matches(path), "{path}");
        }
        for path in [
            "/dw/database",
            "/s/site/dw/data/v19_5/jobs",
            "/v1/jobs",
            "/data/core",
        ] {
            assert!(!matches(path), "{path}");
        }
        let routed = route("/s/-/dw/data/v19_5/jobs/My%20Job/executions/12/").ok();
        assert_eq!(
            routed,
            Some((
                Version {
                    major: 19,
                    minor: 5
                },
                Target::Execution {
                    job_id: "My Job".into(),
                    id: "12".into()
                }
            ))
        );
    }

    #[test]
    fn times_parse_as_iso_8601() {
        assert_eq!(parse_time("1970-01-01"), Some(0));
        assert_eq!(
            parse_time("2021-06-10T13:25:40.000Z"),
            Some(1_623_331_540_000)
        );
        assert_eq!(parse_time("2021-06-10T13:25:40Z"), Some(1_623_331_540_000));
        assert_eq!(
            parse_time("2021-06-10T15:25:40.5+02:00"),
            Some(1_623_331_540_500)
        );
        assert_eq!(
            parse_time("2000-02-29T00:00:00.123Z"),
            Some(951_782_400_123)
        );
        assert_eq!(parse_time("2021-06-10T13:25"), Some(1_623_331_500_000));
        for bad in [
            "",
            "2021",
            "2021-6-10",
            "2021-02-30",
            "2021-13-01",
            "2021-06-10T25:00Z",
            "2021-06-10T13:25.5Z",
            "2021-06-10T13:25:40+2",
            "yesterday",
            "2021-06-10T13:25:40.1234567890Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        for ms in [0, 1_623_331_540_123, 4_102_444_799_999, -86_400_000] {
            assert_eq!(parse_time(&rfc3339_millis(ms)), Some(ms), "{ms}");
        }
    }

    #[test]
    fn execution_ids_are_canonical_decimals() {
        assert_eq!(execution_id("42"), Some(42));
        for bad in ["042", "-1", "0", "4x", "", "+4"] {
            assert_eq!(execution_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_become_payloads() {
        assert_eq!(execution_payload(b"").ok(), Some(serde_json::json!({})));
        assert_eq!(execution_payload(b" \n").ok(), Some(serde_json::json!({})));
        assert_eq!(
            execution_payload(br#"{"parameters": [{"name": "A", "value": null}], "x": 1}"#).ok(),
            Some(serde_json::json!({"parameters": [{"name": "A", "value": null}], "x": 1}))
        );
        for bad in [
            &br#"[]"#[..],
            br#"{"parameters": {}}"#,
            br#"{"parameters": [{"name": "A", "value": 1}]}"#,
            br#"{"parameters": [{"name": "", "value": "v"}]}"#,
            br#"{"parameters": [{"name": "A", "other": "v"}]}"#,
            b"{",
        ] {
            assert!(
                execution_payload(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
