//! Salesforce Customer 360 Data Manager, Data Jobs API v1.0: `GET|POST
//! /datamanager/datatools/v1.0/jobs` and `GET /datamanager/datatools/v1.0/jobs/{jobId}`, with
//! and without a trailing slash.
//!
//! A C360 job is an ordinary job: kind = the `jobType`, queue = the configured C360 queue,
//! dialect `c360`, the request body kept whole as the payload. This module owns the wire types
//! (the request, the job document, the list envelope, the fault list), the status mapping and
//! the conversions to and from core types; it owns no SQL and no state logic. The finer
//! running statuses (START, RUNNING, UPDATE) come from the job's `heartbeat_at` and `phase`,
//! and the list filters on them with the core's running-stage filters.
//!
//! It deliberately does not serve the vendor's other resources (files, data sources): every
//! other path under `/datamanager/` is a 404 in this dialect's fault shape.
//! `docs/dialect-c360.md` records every choice made where the vendor is silent.

use std::collections::BTreeMap;
use std::str::FromStr;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jobstore::{Direction, Job, ListQuery, NewJob, Pagination, SortField, State};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::App;
use crate::auth::{Permission, Principal};
use crate::body::{self, ResponseBody};
use crate::dialects::DialectConfig;
use crate::dialects::query_pairs;
use crate::fault::{ApiError, ErrorKind};
use crate::router::percent_decode;
use crate::time::rfc3339_millis;

/// The name stored in `jobs.dialect` for jobs created here.
const DIALECT: &str = "c360";

/// Every path of this dialect starts here; other vendor resources get this dialect's 404.
const DOMAIN: &str = "/datamanager";

/// The Jobs resource.
const JOBS: &str = "/datamanager/datatools/v1.0/jobs";

/// The prefix a data source that is not connected must carry in GPtoFS and FStoGP bodies.
const EXTERNAL: &str = "external://";

/// The worker phase that makes a running job UPDATE.
const UPDATE_PHASE: &str = "update";

/// `resultsPerPage` when not given.
const DEFAULT_PAGE_SIZE: u32 = 10;

/// The largest `resultsPerPage`.
const MAX_PAGE_SIZE: u32 = 100;

/// Whether `path` is one of this dialect's paths: anything under `/datamanager/`, so that
/// resources not served still answer in this dialect's fault shape.
pub fn matches(path: &str) -> bool {
    path == DOMAIN
        || path
            .strip_prefix(DOMAIN)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Answers one request of this dialect: every answer, faults included, in the vendor's shape.
pub(crate) async fn handle(
    app: &App,
    config: &DialectConfig,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    answer(app, config, request)
        .await
        .unwrap_or_else(|fault| fault.render())
}

/// The routes of this dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `GET|POST /datamanager/datatools/v1.0/jobs`
    Jobs,
    /// `GET /datamanager/datatools/v1.0/jobs/{jobId}`; `None`: an id that names no job.
    Job(Option<i64>),
}

impl Route {
    /// The route of a path; `None`: no such resource.
    fn resolve(path: &str) -> Option<Route> {
        let trimmed = path.strip_suffix('/').unwrap_or(path);
        if trimmed == JOBS {
            return Some(Route::Jobs);
        }
        let segment = trimmed.strip_prefix(JOBS)?.strip_prefix('/')?;
        if segment.is_empty() || segment.contains('/') {
            return None;
        }
        // An id that is not a native id's digits names no job: the same 404 as an unknown id.
        let id = percent_decode(segment)
            .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|id| id.parse::<i64>().ok());
        Some(Route::Job(id))
    }

    /// The methods the route allows.
    fn allowed(self) -> &'static [Method] {
        match self {
            Route::Jobs => &[Method::GET, Method::POST],
            Route::Job(_) => &[Method::GET],
        }
    }
}

async fn answer(
    app: &App,
    config: &DialectConfig,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    let path = request.uri().path().to_owned();
    let route = Route::resolve(&path).ok_or_else(|| {
        Fault::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("The requested resource does not exist: {path}"),
        )
    })?;
    let method = request.method().clone();
    if !route.allowed().contains(&method) {
        return Err(Fault::method_not_allowed(&method, &path, route.allowed()));
    }
    let principal = app.authenticate(&request)?;
    match route {
        Route::Jobs if method == Method::POST => create(app, config, &principal, request).await,
        Route::Jobs => list(app, &principal, request.uri().query()).await,
        Route::Job(id) => get(app, &principal, id).await,
    }
}

/// `POST .../jobs`: runs a data job.
async fn create(
    app: &App,
    config: &DialectConfig,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    principal.require(Permission::Write)?;
    let idempotency =
        crate::app::idempotency_key(request.headers()).map_err(Fault::invalid_field)?;
    let body: Value = app.json_body(request).await?;
    let create = CreateJobRequest::try_from(body)?;
    create.check_data_source(&config.c360_connected_sources)?;
    let mut new = NewJob::from(create)
        .queue(config.c360_queue.clone())
        .created_by(principal.name.clone());
    if let Some(key) = idempotency {
        new = new.idempotency_key(key);
    }
    let job = app
        .write(principal, move |store| store.enqueue_call(new))
        .await?;
    let document = JobDocument::try_from(&job)?;
    let mut response = body::json(StatusCode::CREATED, &document);
    if let Ok(location) = HeaderValue::from_str(&format!("{JOBS}/{}", job.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// `GET .../jobs/{jobId}`: one C360 job of the caller's tenant.
async fn get(
    app: &App,
    principal: &Principal,
    id: Option<i64>,
) -> Result<Response<ResponseBody>, Fault> {
    principal.require(Permission::Read)?;
    let not_found = || {
        Fault::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "The requested job does not exist",
        )
    };
    let id = id.ok_or_else(not_found)?;
    let job = app.call(principal, move |store| store.get(id)).await?;
    // Jobs of other APIs are not C360 jobs: invisible here, like an unknown id.
    if job.dialect != DIALECT {
        return Err(not_found());
    }
    let document = JobDocument::try_from(&job).map_err(|_| not_found())?;
    Ok(body::json(StatusCode::OK, &document))
}

/// `GET .../jobs`: one page of the caller's C360 jobs.
async fn list(
    app: &App,
    principal: &Principal,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, Fault> {
    principal.require(Permission::Read)?;
    let params = ListParams::from_str(query.unwrap_or_default())?;
    let query = ListQuery::from(&params);
    let page = app.call(principal, move |store| store.list(&query)).await?;
    let jobs = page
        .jobs
        .iter()
        .map(JobDocument::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = ListEnvelope {
        jobs,
        page: params.page,
        results_per_page: params.results_per_page,
        total_results: page.total.unwrap_or(0),
    };
    Ok(body::json(StatusCode::OK, &envelope))
}

// ---------------------------------------------------------------------------------------
// Job types and statuses.

/// A C360 `jobType`: the job's kind in the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobType {
    /// B2C Commerce to file staging.
    B2CtoFS,
    /// Global profile hub to file staging.
    GPtoFS,
    /// File staging to B2C Commerce.
    FStoB2C,
    /// File staging to global profile hub.
    FStoGP,
    /// Global profile hub to analytics.
    Analytics,
    /// Delete all profiles.
    Flush,
}

impl JobType {
    const ALL: [JobType; 6] = [
        JobType::B2CtoFS,
        JobType::GPtoFS,
        JobType::FStoB2C,
        JobType::FStoGP,
        JobType::Analytics,
        JobType::Flush,
    ];

    fn as_str(self) -> &'static str {
        match self {
            JobType::B2CtoFS => "B2CtoFS",
            JobType::GPtoFS => "GPtoFS",
            JobType::FStoB2C => "FStoB2C",
            JobType::FStoGP => "FStoGP",
            JobType::Analytics => "Analytics",
            JobType::Flush => "Flush",
        }
    }

    /// The job's `type`.
    fn category(self) -> Category {
        match self {
            JobType::B2CtoFS | JobType::GPtoFS => Category::Export,
            JobType::FStoB2C => Category::Load,
            JobType::FStoGP => Category::Import,
            JobType::Analytics => Category::Analytics,
            JobType::Flush => Category::Flush,
        }
    }

    /// Whether a data source that is not connected must carry `external://`.
    fn checks_data_source(self) -> bool {
        matches!(self, JobType::GPtoFS | JobType::FStoGP)
    }

    fn valid_list() -> String {
        JobType::ALL.map(JobType::as_str).join(", ")
    }
}

impl FromStr for JobType {
    type Err = Fault;

    fn from_str(text: &str) -> Result<Self, Fault> {
        JobType::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| {
                Fault::invalid_field(format!(
                    "jobType: unknown value `{text}`; valid: {}",
                    JobType::valid_list()
                ))
            })
    }
}

/// A job's `type`. Declared in alphabetical order: the order `sortBy=type` sorts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Category {
    Analytics,
    Export,
    Flush,
    Import,
    Load,
}

/// A C360 job status. Declared in alphabetical order: the order `sortBy=status` sorts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Status {
    /// Failed or cancelled.
    Fail,
    /// Created, not started.
    Queued,
    /// Running, the worker has sent a heartbeat.
    Running,
    /// Claimed by a worker that has not sent a heartbeat yet.
    Start,
    /// Succeeded.
    Success,
    /// Running in the worker phase `update`.
    Update,
}

impl Status {
    const ALL: [Status; 6] = [
        Status::Queued,
        Status::Start,
        Status::Running,
        Status::Update,
        Status::Success,
        Status::Fail,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "QUEUED",
            Status::Start => "START",
            Status::Running => "RUNNING",
            Status::Update => "UPDATE",
            Status::Success => "SUCCESS",
            Status::Fail => "FAIL",
        }
    }

    /// The status of a job in `state`, a running job taken as RUNNING (the state alone does
    /// not tell START and UPDATE apart).
    fn of_state(state: State) -> Status {
        match state {
            // C360 jobs have no upload phase; an open job is waiting like a queued one.
            State::Open | State::Queued => Status::Queued,
            State::Running => Status::Running,
            State::Succeeded => Status::Success,
            State::Failed | State::Cancelled => Status::Fail,
        }
    }
}

impl From<&Job> for Status {
    fn from(job: &Job) -> Status {
        match Status::of_state(job.state) {
            Status::Running if job.heartbeat_at.is_none() => Status::Start,
            Status::Running if job.phase.as_deref() == Some(UPDATE_PHASE) => Status::Update,
            status => status,
        }
    }
}

impl FromStr for Status {
    type Err = Fault;

    fn from_str(text: &str) -> Result<Self, Fault> {
        Status::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                Fault::invalid_parameter(format!(
                    "status: unknown value `{text}`; valid: {}",
                    Status::ALL.map(Status::as_str).join(", ")
                ))
            })
    }
}

// ---------------------------------------------------------------------------------------
// The request.

/// A POST body: `jobType` and the members this dialect understands; the whole body is kept as
/// the job's payload.
#[derive(Debug, Clone, PartialEq)]
struct CreateJobRequest {
    job_type: JobType,
    name: Option<String>,
    source: Option<String>,
    target: Option<String>,
    object: Option<String>,
    file_type: Option<String>,
    body: Map<String, Value>,
}

impl TryFrom<Value> for CreateJobRequest {
    type Error = Fault;

    fn try_from(body: Value) -> Result<Self, Fault> {
        let Value::Object(body) = body else {
            return Err(Fault::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::JsonParserError,
                "the request body must be a JSON object",
            ));
        };
        let text = |member: &str| -> Result<Option<String>, Fault> {
            match body.get(member) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) if text.is_empty() => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(Fault::invalid_field(format!("{member} must be a string"))),
            }
        };
        let job_type = text("jobType")?.ok_or_else(|| {
            Fault::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::RequiredFieldMissing,
                format!(
                    "Required fields are missing: [jobType]; valid job types: {}",
                    JobType::valid_list()
                ),
            )
        })?;
        Ok(CreateJobRequest {
            job_type: job_type.parse()?,
            name: text("name")?,
            source: text("source")?,
            target: text("target")?,
            object: text("object")?,
            file_type: text("fileType")?,
            body,
        })
    }
}

impl CreateJobRequest {
    /// The vendor's `external://` rule: in GPtoFS and FStoGP bodies a data source that is not
    /// connected must carry the prefix.
    fn check_data_source(&self, connected: &[String]) -> Result<(), Fault> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        if let Some(name) = source.strip_prefix(EXTERNAL) {
            return if name.is_empty() {
                Err(Fault::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidDataSource,
                    format!("source `{source}`: {EXTERNAL} must be followed by a data source name"),
                ))
            } else {
                Ok(())
            };
        }
        if !self.job_type.checks_data_source() || connected.iter().any(|c| c == source) {
            return Ok(());
        }
        Err(Fault::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidDataSource,
            format!(
                "source `{source}` is not a connected data source: {} jobs must name a data \
                 source that is not connected as `{EXTERNAL}{source}`",
                self.job_type.as_str()
            ),
        ))
    }

    /// The name when the body gives none: jobType, object and file type, e.g.
    /// `GPtoFS-Account-CSV`.
    fn derived_name(&self) -> String {
        [
            Some(self.job_type.as_str()),
            self.object.as_deref(),
            self.file_type.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("-")
    }
}

impl From<CreateJobRequest> for NewJob {
    /// The job without its queue and creator, which the handler adds.
    fn from(request: CreateJobRequest) -> NewJob {
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| request.derived_name());
        let mut new = NewJob::new(request.job_type.as_str())
            .dialect(DIALECT)
            .name(name);
        if let Some(source) = request.source {
            new = new.source(source);
        }
        if let Some(target) = request.target {
            new = new.target(target);
        }
        new.payload(Value::Object(request.body))
    }
}

// ---------------------------------------------------------------------------------------
// The list query.

/// The list's query parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListParams {
    results_per_page: u32,
    page: u64,
    statuses: Vec<Status>,
    sort_by: SortBy,
    direction: Direction,
    sources: Vec<String>,
    targets: Vec<String>,
}

/// A `sortBy` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Id,
    Name,
    Status,
    Type,
    Source,
    Target,
    CreatedBy,
    CreatedTime,
}

impl SortBy {
    const ALL: [SortBy; 8] = [
        SortBy::Id,
        SortBy::Name,
        SortBy::Status,
        SortBy::Type,
        SortBy::Source,
        SortBy::Target,
        SortBy::CreatedBy,
        SortBy::CreatedTime,
    ];

    fn as_str(self) -> &'static str {
        match self {
            SortBy::Id => "id",
            SortBy::Name => "name",
            SortBy::Status => "status",
            SortBy::Type => "type",
            SortBy::Source => "source",
            SortBy::Target => "target",
            SortBy::CreatedBy => "createdBy",
            SortBy::CreatedTime => "createdTime",
        }
    }

    /// The core sort field.
    fn field(self) -> SortField {
        match self {
            SortBy::Id => SortField::Id,
            SortBy::Name => SortField::Name,
            SortBy::Status => SortField::State,
            SortBy::Type => SortField::Kind,
            SortBy::Source => SortField::Source,
            SortBy::Target => SortField::Target,
            SortBy::CreatedBy => SortField::CreatedBy,
            SortBy::CreatedTime => SortField::CreatedAt,
        }
    }

    /// For a field whose C360 value is derived from the core's: the core values ranked in the
    /// C360 order (statuses and types alphabetically).
    fn rank(self) -> BTreeMap<String, i64> {
        match self {
            SortBy::Status => State::ALL
                .into_iter()
                .map(|state| (state.as_str().to_owned(), Status::of_state(state) as i64))
                .collect(),
            SortBy::Type => JobType::ALL
                .into_iter()
                .map(|t| (t.as_str().to_owned(), t.category() as i64))
                .collect(),
            _ => BTreeMap::new(),
        }
    }
}

impl FromStr for SortBy {
    type Err = Fault;

    fn from_str(text: &str) -> Result<Self, Fault> {
        SortBy::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                Fault::invalid_parameter(format!(
                    "sortBy: unknown value `{text}`; valid: {}",
                    SortBy::ALL.map(SortBy::as_str).join(", ")
                ))
            })
    }
}

impl Default for ListParams {
    fn default() -> Self {
        ListParams {
            results_per_page: DEFAULT_PAGE_SIZE,
            page: 1,
            statuses: Vec::new(),
            sort_by: SortBy::CreatedTime,
            direction: Direction::Desc,
            sources: Vec::new(),
            targets: Vec::new(),
        }
    }
}

impl FromStr for ListParams {
    type Err = Fault;

    /// Parses a query string. Unknown parameters, unknown values and a single-valued
    /// parameter given twice are refused.
    fn from_str(query: &str) -> Result<Self, Fault> {
        let pairs = query_pairs(Some(query))
            .ok_or_else(|| Fault::invalid_parameter("malformed query string"))?;
        let mut params = ListParams::default();
        let mut seen: Vec<String> = Vec::new();
        for (key, value) in pairs {
            let single = matches!(
                key.as_str(),
                "resultsPerPage" | "page" | "sortBy" | "sortDirection"
            );
            if single && seen.contains(&key) {
                return Err(Fault::invalid_parameter(format!(
                    "{key}: given more than once"
                )));
            }
            seen.push(key.clone());
            match key.as_str() {
                "resultsPerPage" => {
                    params.results_per_page = match value.parse::<u32>() {
                        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
                        _ => {
                            return Err(Fault::invalid_parameter(format!(
                                "resultsPerPage: must be an integer from 1 to {MAX_PAGE_SIZE}, \
                                 got `{value}`"
                            )));
                        }
                    }
                }
                "page" => {
                    params.page = match value.parse::<u64>() {
                        Ok(n) if n >= 1 => n,
                        _ => {
                            return Err(Fault::invalid_parameter(format!(
                                "page: must be an integer of at least 1, got `{value}`"
                            )));
                        }
                    }
                }
                "status" => {
                    for status in value.split(',') {
                        let status: Status = status.parse()?;
                        if !params.statuses.contains(&status) {
                            params.statuses.push(status);
                        }
                    }
                }
                "sortBy" => params.sort_by = value.parse()?,
                "sortDirection" => {
                    params.direction = match value.as_str() {
                        "asc" => Direction::Asc,
                        "desc" => Direction::Desc,
                        other => {
                            return Err(Fault::invalid_parameter(format!(
                                "sortDirection: unknown value `{other}`; valid: asc, desc"
                            )));
                        }
                    }
                }
                "source" | "target" => {
                    let name = value.strip_prefix(EXTERNAL).unwrap_or(&value);
                    if name.is_empty() {
                        return Err(Fault::invalid_parameter(format!(
                            "{key}: must name a data source"
                        )));
                    }
                    // With or without the prefix, as the vendor's GET does.
                    let both = [name.to_owned(), format!("{EXTERNAL}{name}")];
                    if key == "source" {
                        params.sources.extend(both);
                    } else {
                        params.targets.extend(both);
                    }
                }
                other => {
                    return Err(Fault::invalid_parameter(format!(
                        "unknown query parameter `{other}`; known: resultsPerPage, page, \
                         status, sortBy, sortDirection, source, target"
                    )));
                }
            }
        }
        Ok(params)
    }
}

impl From<&ListParams> for ListQuery {
    fn from(params: &ListParams) -> ListQuery {
        let mut query = ListQuery {
            dialects: vec![DIALECT.to_owned()],
            kinds: JobType::ALL.map(|t| t.as_str().to_owned()).to_vec(),
            sources: params.sources.clone(),
            targets: params.targets.clone(),
            sort: Some(params.sort_by.field()),
            sort_rank: params.sort_by.rank(),
            direction: params.direction,
            limit: Some(params.results_per_page),
            page: Pagination::Offset(
                (params.page - 1).saturating_mul(u64::from(params.results_per_page)),
            ),
            count_total: true,
            ..ListQuery::default()
        };
        for status in &params.statuses {
            let states: &[State] = match status {
                Status::Queued => &[State::Queued, State::Open],
                Status::Start | Status::Running | Status::Update => &[State::Running],
                Status::Success => &[State::Succeeded],
                Status::Fail => &[State::Failed, State::Cancelled],
            };
            for state in states {
                if !query.states.contains(state) {
                    query.states.push(*state);
                }
            }
        }
        let running = [Status::Start, Status::Running, Status::Update];
        let asked: Vec<Status> = running
            .into_iter()
            .filter(|s| params.statuses.contains(s))
            .collect();
        // Some but not all of the running statuses: split the running state.
        if !asked.is_empty() && asked.len() < running.len() {
            for status in asked {
                match status {
                    Status::Start => query.running_unreported = true,
                    Status::Update => query.running_in_phases = vec![UPDATE_PHASE.to_owned()],
                    _ => query.running_outside_phases = Some(vec![UPDATE_PHASE.to_owned()]),
                }
            }
        }
        query
    }
}

// ---------------------------------------------------------------------------------------
// The responses.

/// A C360 job document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct JobDocument {
    id: String,
    name: String,
    status: Status,
    #[serde(rename = "type")]
    category: Category,
    job_type: &'static str,
    source: Option<String>,
    target: Option<String>,
    object: Option<String>,
    file_type: Option<String>,
    created_by: String,
    created_time: String,
    last_modified_time: String,
    start_time: Option<String>,
    end_time: Option<String>,
    error_message: Option<String>,
}

impl TryFrom<&Job> for JobDocument {
    type Error = Fault;

    /// Fails for a job whose kind is not a C360 job type (a job of another API).
    fn try_from(job: &Job) -> Result<Self, Fault> {
        let job_type: JobType = job.kind.parse().map_err(|_| {
            log::error!("job {} of kind `{}` is not a C360 job", job.id, job.kind);
            Fault::internal()
        })?;
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        let payload_text = |member: &str| {
            job.payload
                .get(member)
                .and_then(Value::as_str)
                .and_then(non_empty)
        };
        Ok(JobDocument {
            id: job.id.to_string(),
            name: job.name.clone(),
            status: Status::from(job),
            category: job_type.category(),
            job_type: job_type.as_str(),
            source: non_empty(&job.source),
            target: non_empty(&job.target),
            object: payload_text("object"),
            file_type: payload_text("fileType"),
            created_by: job.created_by.clone(),
            created_time: rfc3339_millis(job.created_at),
            last_modified_time: rfc3339_millis(job.updated_at),
            start_time: job.started_at.map(rfc3339_millis),
            end_time: job.finished_at.map(rfc3339_millis),
            error_message: match Status::from(job) {
                Status::Fail => job.error.clone(),
                _ => None,
            },
        })
    }
}

/// The list envelope **(ours)**.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
struct ListEnvelope {
    jobs: Vec<JobDocument>,
    page: u64,
    results_per_page: u32,
    total_results: u64,
}

// ---------------------------------------------------------------------------------------
// Faults.

/// The `errorCode` of a fault (Salesforce REST names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorCode {
    JsonParserError,
    RequiredFieldMissing,
    InvalidField,
    InvalidDataSource,
    InvalidQueryParameter,
    InvalidSessionId,
    InsufficientAccess,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    RequestTooLarge,
    Conflict,
    IdempotencyKeyReused,
    ServerUnavailable,
    UnknownException,
}

impl ErrorCode {
    fn as_str(self) -> &'static str {
        match self {
            ErrorCode::JsonParserError => "JSON_PARSER_ERROR",
            ErrorCode::RequiredFieldMissing => "REQUIRED_FIELD_MISSING",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::InvalidDataSource => "INVALID_DATA_SOURCE",
            ErrorCode::InvalidQueryParameter => "INVALID_QUERY_PARAMETER",
            ErrorCode::InvalidSessionId => "INVALID_SESSION_ID",
            ErrorCode::InsufficientAccess => "INSUFFICIENT_ACCESS",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::RequestTimeout => "REQUEST_TIMEOUT",
            ErrorCode::RequestTooLarge => "REQUEST_TOO_LARGE",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::ServerUnavailable => "SERVER_UNAVAILABLE",
            ErrorCode::UnknownException => "UNKNOWN_EXCEPTION",
        }
    }
}

/// A fault, rendered `[{"errorCode": "...", "message": "..."}]` (the Salesforce REST
/// convention) with its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fault {
    status: StatusCode,
    code: ErrorCode,
    message: String,
    retry_after: Option<u32>,
    allow: Option<String>,
}

impl Fault {
    fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Fault {
        Fault {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    fn invalid_field(message: impl Into<String>) -> Fault {
        Fault::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidField, message)
    }

    fn invalid_parameter(message: impl Into<String>) -> Fault {
        Fault::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidQueryParameter,
            message,
        )
    }

    fn internal() -> Fault {
        Fault::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::UnknownException,
            "internal error; the server log has the reason",
        )
    }

    fn method_not_allowed(method: &Method, path: &str, allowed: &[Method]) -> Fault {
        let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        Fault {
            allow: Some(allow.join(", ")),
            ..Fault::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                format!("HTTP method '{method}' not allowed on {path}. Allowed are {allow:?}"),
            )
        }
    }

    fn render(&self) -> Response<ResponseBody> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Item<'a> {
            error_code: &'static str,
            message: &'a str,
        }
        let mut response = body::json(
            self.status,
            &[Item {
                error_code: self.code.as_str(),
                message: &self.message,
            }],
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self
            .allow
            .as_deref()
            .and_then(|a| HeaderValue::from_str(a).ok())
        {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

impl From<ApiError> for Fault {
    /// The daemon's errors (authentication, bodies, the core's errors) in this dialect's
    /// codes; the status and message are kept.
    fn from(err: ApiError) -> Fault {
        use StatusCode as S;
        let code = match (err.status, err.kind) {
            (_, ErrorKind::InvalidJson) => ErrorCode::JsonParserError,
            (_, ErrorKind::IdempotencyKeyReused) => ErrorCode::IdempotencyKeyReused,
            (S::BAD_REQUEST, _) => ErrorCode::InvalidField,
            (S::UNAUTHORIZED, _) => ErrorCode::InvalidSessionId,
            (S::FORBIDDEN, _) => ErrorCode::InsufficientAccess,
            (S::NOT_FOUND, _) => ErrorCode::NotFound,
            (S::METHOD_NOT_ALLOWED, _) => ErrorCode::MethodNotAllowed,
            (S::REQUEST_TIMEOUT, _) => ErrorCode::RequestTimeout,
            (S::PAYLOAD_TOO_LARGE, _) => ErrorCode::RequestTooLarge,
            (S::CONFLICT, _) => ErrorCode::Conflict,
            (S::SERVICE_UNAVAILABLE, _) => ErrorCode::ServerUnavailable,
            _ => ErrorCode::UnknownException,
        };
        let message = match code {
            ErrorCode::NotFound => "The requested job does not exist".to_owned(),
            _ => err.message,
        };
        Fault {
            retry_after: err.retry_after,
            ..Fault::new(err.status, code, message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_and_without_a_trailing_slash() {
        assert_eq!(Route::resolve(JOBS), Some(Route::Jobs));
        assert_eq!(Route::resolve(&format!("{JOBS}/")), Some(Route::Jobs));
        assert_eq!(
            Route::resolve(&format!("{JOBS}/42/")),
            Some(Route::Job(Some(42)))
        );
        assert_eq!(
            Route::resolve(&format!("{JOBS}/core%2fx")),
            Some(Route::Job(None))
        );
        assert_eq!(
            Route::resolve(&format!("{JOBS}/+4")),
            Some(Route::Job(None))
        );
        assert_eq!(Route::resolve(&format!("{JOBS}/4/files")), None);
        assert!(matches("/datamanager/datatools/v1.0/data-sources"));
        assert!(!matches("/datamanagers"));
    }

    #[test]
    fn status_and_type_ranks_follow_the_alphabet() {
        let statuses: Vec<&str> = [
            Status::Fail,
            Status::Queued,
            Status::Running,
            Status::Start,
            Status::Success,
            Status::Update,
        ]
        .map(Status::as_str)
        .to_vec();
        let mut sorted = statuses.clone();
        sorted.sort_unstable();
        assert_eq!(statuses, sorted);
        let rank = SortBy::Type.rank();
        assert!(rank["Analytics"] < rank["B2CtoFS"]);
        assert_eq!(rank["B2CtoFS"], rank["GPtoFS"]);
        assert!(rank["GPtoFS"] < rank["Flush"]);
        assert!(rank["Flush"] < rank["FStoGP"]);
        assert!(rank["FStoGP"] < rank["FStoB2C"]);
    }

    #[test]
    fn names_are_derived_from_type_object_and_file_type() {
        let request = CreateJobRequest::try_from(serde_json::json!({
            "jobType": "GPtoFS", "object": "Account", "fileType": "CSV"
        }));
        assert_eq!(
            request.map(|r| r.derived_name()).ok().as_deref(),
            Some("GPtoFS-Account-CSV")
        );
    }
}
