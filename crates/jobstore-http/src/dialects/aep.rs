//! Adobe Experience Platform segment export jobs (`/data/core/ups/export/jobs`): the
//! vendor's request and response types, its status mapping, its fault document and the
//! conversions to and from core types. See `docs/dialect-aep.md`.
//!
//! An export job is an ordinary job of kind `segment-export` on the configured AEP queue,
//! tagged `aep`, whose payload is the vendor request (plus the identity headers it came
//! with). Everything the vendor generates is derived from the stored job when it is
//! rendered: `destination.batchId`, `requestId` and `computeGatewayJobId.exportJob` are
//! hashes of the job's tenant, id and creation time; `metrics` come from its times and from
//! the worker's progress counters.
//!
//! **Boundary:** no SQL and no state logic. A DELETE chooses between the core's `cancel` and
//! `delete` by [`State::is_terminal`]; the core decides everything else.

use std::fmt::Write as _;
use std::str::FromStr;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jobstore::{
    Cursor, CursorValue, Direction, Job, JobPage, ListQuery, NewJob, Pagination, SortField, State,
};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::App;
use crate::auth::{Permission, Principal};
use crate::body::{self, ResponseBody};
use crate::dialects::DialectConfig;
use crate::fault::{ApiError, ErrorKind};

/// Every path of this dialect starts here.
const BASE: &str = "/data/core/ups/export/jobs";
/// The kind of every export job.
const KIND: &str = "segment-export";
/// The tag in `jobs.dialect`.
const DIALECT: &str = "aep";
/// Records per page when `limit` is not given **(ours)**.
const DEFAULT_LIMIT: u32 = 20;
/// Larger `limit`s are clamped to this (the `aepp` client asks for 1000).
const MAX_LIMIT: u32 = 1000;
/// `profileInstanceId` when the request has no `x-profile-instance-id`.
const DEFAULT_PROFILE_INSTANCE: &str = "ups";
/// The longest `destination.datasetId` and `x-profile-instance-id` (they become the job's
/// target and source).
const MAX_ID_BYTES: usize = 1024;
/// The answer to a DELETE that cancels.
const CANCEL_MESSAGE: &str = "Export job has been marked for cancelling";

/// Members of a job document the server sets: in a request they are ignored, never stored.
const READ_ONLY_MEMBERS: [&str; 11] = [
    "id",
    "jobType",
    "imsOrgId",
    "status",
    "profileInstanceId",
    "errors",
    "metrics",
    "computeGatewayJobId",
    "creationTime",
    "updateTime",
    "requestId",
];

/// Whether `path` is one of this dialect's paths (anything under the export jobs collection;
/// paths below it that name nothing are answered 404 in this dialect's fault shape).
pub fn matches(path: &str) -> bool {
    path.strip_prefix(BASE)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Answers one request of this dialect; every fault in the dialect's shape.
pub(crate) async fn handle(
    app: &App,
    config: &DialectConfig,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    answer(app, config, request)
        .await
        .unwrap_or_else(|fault| fault.render())
}

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Resource {
    /// `/data/core/ups/export/jobs`
    Collection,
    /// `/data/core/ups/export/jobs/{id}`, the id as given (decoded).
    Job(String),
}

impl Resource {
    fn of(path: &str) -> Option<Resource> {
        let rest = path.strip_prefix(BASE)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return Some(Resource::Collection);
        }
        let segment = rest.strip_prefix('/')?;
        if segment.is_empty() || segment.contains('/') {
            return None;
        }
        crate::router::percent_decode(segment).map(Resource::Job)
    }

    fn allow(&self) -> &'static str {
        match self {
            Resource::Collection => "GET, POST",
            Resource::Job(_) => "GET, DELETE",
        }
    }
}

/// The job id of a path; text that cannot be an id names no job: 404, like an unknown id.
fn job_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::JobNotFound,
                format!("export job `{text}` not found"),
            )
        })
}

async fn answer(
    app: &App,
    config: &DialectConfig,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    let path = request.uri().path().to_owned();
    let resource = Resource::of(&path).ok_or_else(|| {
        ApiError::new(
            ErrorKind::RouteNotFound,
            format!("no export jobs route for {path}"),
        )
    })?;
    let method = request.method().clone();
    let allowed = matches!(
        (&resource, &method),
        (Resource::Collection, &Method::GET | &Method::POST)
            | (Resource::Job(_), &Method::GET | &Method::DELETE)
    );
    if !allowed {
        return Err(Fault {
            error: ApiError::method_not_allowed(&method, &path, resource.allow().to_owned()),
            allow: Some(resource.allow()),
        });
    }
    let principal = app.authenticate(&request)?;
    match (resource, method) {
        (Resource::Collection, Method::POST) => create(app, config, &principal, request).await,
        (Resource::Collection, _) => {
            principal.require(Permission::Read)?;
            list(app, &principal, request.uri().query()).await
        }
        (Resource::Job(id), Method::DELETE) => {
            principal.require(Permission::Write)?;
            let id = job_id(&id)?;
            app.drain_body(request).await?;
            delete(app, &principal, id).await
        }
        (Resource::Job(id), _) => {
            principal.require(Permission::Read)?;
            let id = job_id(&id)?;
            let job = app
                .call(&principal, move |store| export_job(store.get(id)?))
                .await?;
            Ok(body::json(StatusCode::OK, &ExportJob::from(&job)))
        }
    }
}

/// Only jobs this dialect created are export jobs; any other job is "not found" here, like
/// an unknown id **(ours)**.
fn export_job(job: Job) -> jobstore::Result<Job> {
    if job.dialect == DIALECT {
        Ok(job)
    } else {
        Err(jobstore::Error::JobNotFound { id: job.id })
    }
}

/// `POST /data/core/ups/export/jobs`.
async fn create(
    app: &App,
    config: &DialectConfig,
    principal: &Principal,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    principal.require(Permission::Write)?;
    let identity = Identity::from_headers(request.headers())?;
    let idempotency = header_text(request.headers(), "idempotency-key")?;
    let body: Value = app.json_body(request).await?;
    let export = ExportRequest::try_from(body)?;
    let mut new = NewJob::new(KIND)
        .queue(config.aep_queue.clone())
        .dialect(DIALECT)
        .created_by(principal.name.clone())
        .source(identity.profile_instance_id.clone())
        .target(export.dataset_id.clone())
        .payload(export.into_payload(identity));
    if let Some(key) = idempotency {
        new = new.idempotency_key(key);
    }
    let job = app
        .write(principal, move |store| store.enqueue_call(new))
        .await?;
    Ok(body::json(StatusCode::OK, &ExportJob::from(&job)))
}

/// `DELETE /data/core/ups/export/jobs/{id}`: a job still to finish is cancelled (at once when
/// queued, cooperatively when running), a finished one is deleted.
async fn delete(
    app: &App,
    principal: &Principal,
    id: i64,
) -> Result<Response<ResponseBody>, Fault> {
    let actor = principal.name.clone();
    let outcome = app
        .call(principal, move |store| {
            // The job may finish (or be restarted elsewhere) between the read and the call;
            // then the core refuses the transition and the choice is made again.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let job = export_job(store.get(id)?)?;
                let result = if job.state.is_terminal() {
                    store.delete(id).map(|()| Deleted::Removed)
                } else {
                    store.cancel(id, &actor).map(|_| Deleted::Cancelling)
                };
                match result {
                    Err(jobstore::Error::InvalidTransition { .. }) if attempts < 3 => {}
                    other => return other,
                }
            }
        })
        .await?;
    Ok(match outcome {
        Deleted::Removed => body::empty(StatusCode::NO_CONTENT),
        Deleted::Cancelling => body::json(
            StatusCode::OK,
            &CancelAnswer {
                status: true,
                message: CANCEL_MESSAGE,
            },
        ),
    })
}

/// What a DELETE did.
enum Deleted {
    /// A finished job was removed.
    Removed,
    /// A job still to finish was cancelled, or its worker was asked to stop.
    Cancelling,
}

/// The answer to a DELETE that cancels.
#[derive(Debug, Serialize)]
struct CancelAnswer {
    status: bool,
    message: &'static str,
}

/// `GET /data/core/ups/export/jobs`.
async fn list(
    app: &App,
    principal: &Principal,
    query: Option<&str>,
) -> Result<Response<ResponseBody>, Fault> {
    let max = MAX_LIMIT.min(app.limits.max_page).max(1);
    let params = ListParams::parse(query, max)?;
    let list = ListQuery::from(&params);
    let page = app.call(principal, move |store| store.list(&list)).await?;
    Ok(body::json(
        StatusCode::OK,
        &ExportJobPage::new(&params, &page),
    ))
}

/// The list query parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ListParams {
    /// Records per page (clamped to the maximum).
    limit: u32,
    /// Start after this record.
    offset: Option<Offset>,
    /// Any of these statuses (empty: all).
    statuses: Vec<ExportStatus>,
}

impl ListParams {
    /// Parses `limit`, `offset` and `status` (repeated, or a comma list). An empty value means
    /// "not given"; any other parameter is refused **(ours)**.
    fn parse(query: Option<&str>, max: u32) -> Result<ListParams, ApiError> {
        let pairs = crate::dialects::query_pairs(query)
            .ok_or_else(|| ApiError::bad_request("malformed query string"))?;
        let mut params = ListParams {
            limit: DEFAULT_LIMIT.min(max),
            offset: None,
            statuses: Vec::new(),
        };
        for (key, value) in pairs {
            let value = value.trim();
            if value.is_empty() && matches!(key.as_str(), "limit" | "offset" | "status") {
                continue;
            }
            match key.as_str() {
                "limit" => params.limit = parse_limit(value, max)?,
                "offset" => params.offset = Some(value.parse()?),
                "status" => {
                    for status in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                        let status: ExportStatus = status.parse()?;
                        if !params.statuses.contains(&status) {
                            params.statuses.push(status);
                        }
                    }
                }
                other => {
                    return Err(ApiError::bad_request(format!(
                        "unknown query parameter `{other}`; known: limit, offset, status"
                    )));
                }
            }
        }
        Ok(params)
    }

    /// The query string of the page after `last`, for `link.next`.
    fn next_link(&self, last: Offset) -> String {
        let mut link = format!("/export/jobs/?limit={}&offset={last}", self.limit);
        for status in &self.statuses {
            let _ = write!(link, "&status={}", status.as_str());
        }
        link
    }
}

/// A positive integer; larger than `max` is clamped to `max`.
fn parse_limit(value: &str, max: u32) -> Result<u32, ApiError> {
    let refuse = || {
        ApiError::bad_request(format!(
            "limit must be a positive integer (at most {max} are answered), got `{value}`"
        ))
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse());
    }
    // All digits: a number too large for u64 is still just "larger than the maximum".
    let limit = value.parse::<u64>().unwrap_or(u64::MAX);
    if limit == 0 {
        return Err(refuse());
    }
    Ok(u32::try_from(limit).unwrap_or(u32::MAX).min(max))
}

impl From<&ListParams> for ListQuery {
    /// Export jobs only, newest first, keyset-paged on (creation time, id).
    fn from(params: &ListParams) -> ListQuery {
        let states = State::ALL
            .into_iter()
            .filter(|state| params.statuses.contains(&ExportStatus::from(*state)))
            .collect();
        ListQuery {
            states,
            dialects: vec![DIALECT.to_owned()],
            sort: Some(SortField::CreatedAt),
            direction: Direction::Desc,
            limit: Some(params.limit),
            page: Pagination::Cursor(params.offset.map(Cursor::from)),
            ..ListQuery::default()
        }
    }
}

/// The list cursor: `{creationTimeMs}_{id}` of the last record of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Offset {
    created_ms: i64,
    id: i64,
}

impl Offset {
    fn of(job: &Job) -> Offset {
        Offset {
            created_ms: job.created_at,
            id: job.id,
        }
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.created_ms, self.id)
    }
}

impl FromStr for Offset {
    type Err = ApiError;

    fn from_str(text: &str) -> Result<Offset, ApiError> {
        let parsed = text.split_once('_').and_then(|(ms, id)| {
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !digits(ms) || !digits(id) {
                return None;
            }
            Some(Offset {
                created_ms: ms.parse().ok()?,
                id: id.parse().ok()?,
            })
        });
        parsed.ok_or_else(|| {
            ApiError::bad_request(format!(
                "offset must be `{{creationTimeMs}}_{{id}}` as given in link.next, got `{text}`"
            ))
        })
    }
}

impl From<Offset> for Cursor {
    fn from(offset: Offset) -> Cursor {
        Cursor {
            sort: SortField::CreatedAt,
            direction: Direction::Desc,
            value: CursorValue::Integer(offset.created_ms),
            id: offset.id,
        }
    }
}

/// The vendor's job status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum ExportStatus {
    /// Waiting for a worker.
    New,
    /// A worker runs it.
    Processing,
    /// Done.
    Succeeded,
    /// Failed for good.
    Failed,
    /// Cancelled **(ours: the vendor documents no state after a cancel)**.
    Cancelled,
}

impl ExportStatus {
    const ALL: [ExportStatus; 5] = [
        ExportStatus::New,
        ExportStatus::Processing,
        ExportStatus::Succeeded,
        ExportStatus::Failed,
        ExportStatus::Cancelled,
    ];

    fn as_str(self) -> &'static str {
        match self {
            ExportStatus::New => "NEW",
            ExportStatus::Processing => "PROCESSING",
            ExportStatus::Succeeded => "SUCCEEDED",
            ExportStatus::Failed => "FAILED",
            ExportStatus::Cancelled => "CANCELLED",
        }
    }
}

impl From<State> for ExportStatus {
    fn from(state: State) -> ExportStatus {
        match state {
            // No export job is ever `open` (it has no upload phase); NEW is the nearest.
            State::Open | State::Queued => ExportStatus::New,
            State::Running => ExportStatus::Processing,
            State::Succeeded => ExportStatus::Succeeded,
            State::Failed => ExportStatus::Failed,
            State::Cancelled => ExportStatus::Cancelled,
        }
    }
}

impl FromStr for ExportStatus {
    type Err = ApiError;

    /// Case-insensitive **(ours)**.
    fn from_str(text: &str) -> Result<ExportStatus, ApiError> {
        ExportStatus::ALL
            .into_iter()
            .find(|status| status.as_str().eq_ignore_ascii_case(text))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "unknown status `{text}`; valid: {}",
                    ExportStatus::ALL.map(ExportStatus::as_str).join(", ")
                ))
            })
    }
}

/// The identity headers of a create, echoed in the job and never used for access.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    /// `x-gw-ims-org-id`.
    ims_org_id: Option<String>,
    /// `x-profile-instance-id`, default `ups`.
    profile_instance_id: String,
}

impl Identity {
    fn from_headers(headers: &http::HeaderMap) -> Result<Identity, ApiError> {
        let ims_org_id = header_text(headers, "x-gw-ims-org-id")?;
        let profile_instance_id = header_text(headers, "x-profile-instance-id")?
            .unwrap_or_else(|| DEFAULT_PROFILE_INSTANCE.to_owned());
        if profile_instance_id.len() > MAX_ID_BYTES {
            return Err(ApiError::bad_request(format!(
                "x-profile-instance-id is longer than {MAX_ID_BYTES} bytes"
            )));
        }
        Ok(Identity {
            ims_org_id,
            profile_instance_id,
        })
    }
}

/// A header's text; `None` when absent or blank.
fn header_text(headers: &http::HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request(format!("{name} must be visible ASCII")))?
                .trim();
            Ok((!text.is_empty()).then(|| text.to_owned()))
        }
    }
}

/// A validated create request: the vendor members as sent (read-only members dropped).
#[derive(Debug, Clone, PartialEq)]
struct ExportRequest {
    members: Map<String, Value>,
    dataset_id: String,
}

impl ExportRequest {
    /// The job's payload: the request, with the identity it came with under the names the job
    /// document uses.
    fn into_payload(self, identity: Identity) -> Value {
        let mut payload = self.members;
        if let Some(org) = identity.ims_org_id {
            payload.insert("imsOrgId".into(), Value::String(org));
        }
        payload.insert(
            "profileInstanceId".into(),
            Value::String(identity.profile_instance_id),
        );
        Value::Object(payload)
    }
}

impl TryFrom<Value> for ExportRequest {
    type Error = ApiError;

    /// Checks the vendor members: `destination.datasetId` and `schema.name` are required,
    /// the documented optional members must have their documented types. Every missing and
    /// every malformed member is named in one answer. Unknown members are kept.
    fn try_from(body: Value) -> Result<ExportRequest, ApiError> {
        let Value::Object(mut members) = body else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        for name in READ_ONLY_MEMBERS {
            members.remove(name);
        }
        let mut check = Checker::default();
        let mut dataset_id = String::new();
        if let Some(destination) =
            check.required_object(&members, "destination", "destination.datasetId")
        {
            if let Some(id) = check.required_string(destination, "datasetId", "destination") {
                if id.len() > MAX_ID_BYTES {
                    check.invalid(format!(
                        "destination.datasetId is longer than {MAX_ID_BYTES} bytes"
                    ));
                }
                dataset_id = id.to_owned();
            }
            check.optional_bool(destination, "segmentPerBatch", "destination");
        }
        if let Some(schema) = check.required_object(&members, "schema", "schema.name") {
            check.required_string(schema, "name", "schema");
        }
        check.optional_string(&members, "fields", "");
        if let Some(policy) = check.optional_object(&members, "mergePolicy", "") {
            check.optional_string(policy, "id", "mergePolicy");
            check.optional_integer(policy, "version", "mergePolicy");
        }
        if let Some(filter) = check.optional_object(&members, "filter", "") {
            check.segments(filter);
            if let Some(time) = check.optional_object(filter, "segmentQualificationTime", "filter")
            {
                let at = "filter.segmentQualificationTime";
                check.optional_timestamp(time, "startTime", at);
                check.optional_timestamp(time, "endTime", at);
            }
            check.optional_timestamp(filter, "fromIngestTimestamp", "filter");
            check.optional_bool(filter, "emptyProfiles", "filter");
        }
        if let Some(additional) = check.optional_object(&members, "additionalFields", "") {
            let at = "additionalFields";
            if let Some(events) = check.optional_object(additional, "eventList", at) {
                let at = "additionalFields.eventList";
                check.optional_string(events, "fields", at);
                if let Some(filter) = check.optional_object(events, "filter", at) {
                    let at = "additionalFields.eventList.filter";
                    check.optional_timestamp(filter, "fromIngestTimestamp", at);
                    check.optional_timestamp(filter, "toIngestTimestamp", at);
                }
            }
        }
        if let Some(info) = check.optional_object(&members, "evaluationInfo", "") {
            check.optional_bool(info, "segmentation", "evaluationInfo");
        }
        check.finish()?;
        // Generated on every read, never taken from a request.
        if let Some(Value::Object(destination)) = members.get_mut("destination") {
            destination.remove("batchId");
            destination.remove("batches");
        }
        Ok(ExportRequest {
            members,
            dataset_id,
        })
    }
}

/// Collects what is missing and what is malformed in a request.
#[derive(Debug, Default)]
struct Checker {
    missing: Vec<String>,
    invalid: Vec<String>,
}

/// `parent.name`, or `name` at the top.
fn path_of(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// A member's value; `null` counts as absent.
fn member<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|value| !value.is_null())
}

impl Checker {
    fn invalid(&mut self, what: String) {
        self.invalid.push(what);
    }

    /// A required object member; when absent, `missing_as` names what is missing (the
    /// required member inside it).
    fn required_object<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        name: &str,
        missing_as: &str,
    ) -> Option<&'a Map<String, Value>> {
        match member(object, name) {
            None => {
                self.missing.push(missing_as.to_owned());
                None
            }
            Some(Value::Object(inner)) => Some(inner),
            Some(_) => {
                self.invalid(format!("{name} must be an object"));
                None
            }
        }
    }

    fn required_string<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        name: &str,
        parent: &str,
    ) -> Option<&'a str> {
        let path = path_of(parent, name);
        match member(object, name) {
            None => {
                self.missing.push(path);
                None
            }
            Some(Value::String(text)) if !text.trim().is_empty() => Some(text),
            Some(_) => {
                self.invalid(format!("{path} must be a non-empty string"));
                None
            }
        }
    }

    fn optional_object<'a>(
        &mut self,
        object: &'a Map<String, Value>,
        name: &str,
        parent: &str,
    ) -> Option<&'a Map<String, Value>> {
        match member(object, name) {
            None => None,
            Some(Value::Object(inner)) => Some(inner),
            Some(_) => {
                self.invalid(format!("{} must be an object", path_of(parent, name)));
                None
            }
        }
    }

    fn optional_string(&mut self, object: &Map<String, Value>, name: &str, parent: &str) {
        if member(object, name).is_some_and(|value| !value.is_string()) {
            self.invalid(format!("{} must be a string", path_of(parent, name)));
        }
    }

    fn optional_bool(&mut self, object: &Map<String, Value>, name: &str, parent: &str) {
        if member(object, name).is_some_and(|value| !value.is_boolean()) {
            self.invalid(format!("{} must be true or false", path_of(parent, name)));
        }
    }

    fn optional_integer(&mut self, object: &Map<String, Value>, name: &str, parent: &str) {
        if member(object, name).is_some_and(|value| !(value.is_i64() || value.is_u64())) {
            self.invalid(format!("{} must be an integer", path_of(parent, name)));
        }
    }

    fn optional_timestamp(&mut self, object: &Map<String, Value>, name: &str, parent: &str) {
        if let Some(value) = member(object, name)
            && !value.as_str().is_some_and(is_rfc3339)
        {
            self.invalid(format!(
                "{} must be an RFC 3339 timestamp such as 2018-01-01T00:00:00Z",
                path_of(parent, name)
            ));
        }
    }

    /// `filter.segments`: an array of `{segmentId (required), segmentNs, status}`.
    fn segments(&mut self, filter: &Map<String, Value>) {
        let Some(segments) = member(filter, "segments") else {
            return;
        };
        let Some(segments) = segments.as_array() else {
            self.invalid("filter.segments must be an array".into());
            return;
        };
        for (index, segment) in segments.iter().enumerate() {
            let at = format!("filter.segments[{index}]");
            let Some(segment) = segment.as_object() else {
                self.invalid(format!("{at} must be an object"));
                continue;
            };
            self.required_string(segment, "segmentId", &at);
            self.optional_string(segment, "segmentNs", &at);
            let status_ok = match member(segment, "status") {
                None | Some(Value::String(_)) => true,
                Some(Value::Array(items)) => items.iter().all(Value::is_string),
                Some(_) => false,
            };
            if !status_ok {
                self.invalid(format!("{at}.status must be an array of strings"));
            }
        }
    }

    fn finish(self) -> Result<(), ApiError> {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "missing required members: {}",
                self.missing.join(", ")
            ));
        }
        if !self.invalid.is_empty() {
            parts.push(format!("invalid members: {}", self.invalid.join("; ")));
        }
        if parts.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(parts.join("; ")))
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` with fields in range.
fn is_rfc3339(text: &str) -> bool {
    let bytes = text.as_bytes();
    let number = |from: usize, len: usize| -> Option<u32> {
        let digits = bytes.get(from..from + len)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        digits
            .iter()
            .try_fold(0_u32, |acc, d| Some(acc * 10 + u32::from(d - b'0')))
    };
    let at = |i: usize, options: &[u8]| bytes.get(i).is_some_and(|b| options.contains(b));
    let date_time = (|| {
        let (_, month, day) = (number(0, 4)?, number(5, 2)?, number(8, 2)?);
        let (hour, minute, second) = (number(11, 2)?, number(14, 2)?, number(17, 2)?);
        let separators =
            at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":");
        Some(
            separators
                && (1..=12).contains(&month)
                && (1..=31).contains(&day)
                && hour <= 23
                && minute <= 59
                && second <= 60,
        )
    })();
    if date_time != Some(true) {
        return false;
    }
    let mut i = 19;
    if at(i, b".") {
        i += 1;
        let start = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match bytes.get(i) {
        Some(b'Z' | b'z') => i + 1 == bytes.len(),
        Some(b'+' | b'-') => {
            i + 6 == bytes.len()
                && number(i + 1, 2).is_some_and(|h| h <= 23)
                && at(i + 3, b":")
                && number(i + 4, 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

/// An export job as the vendor renders it (create, GET one, list records).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportJob {
    /// The native id.
    id: i64,
    job_type: &'static str,
    /// The request's members, `destination` with its generated batch ids.
    #[serde(flatten)]
    request: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ims_org_id: Option<String>,
    status: ExportStatus,
    profile_instance_id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<ExportError>,
    metrics: Metrics,
    compute_gateway_job_id: ComputeGatewayJobId,
    creation_time: i64,
    update_time: i64,
    request_id: String,
}

/// One entry of `errors`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ExportError {
    code: &'static str,
    msg: String,
    call_stack: String,
}

/// `metrics`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    /// From creation to the end.
    total_time: Span,
    /// From the start of the (last) attempt to the end; once a worker started it.
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_export_time: Option<Span>,
    /// From the worker's progress, once reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    total_exported_profile_counter: Option<u64>,
    /// From the worker's progress, once reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    exported_profile_by_namespace_counter: Option<Map<String, Value>>,
}

/// A time span in epoch milliseconds; the end and length once it ended.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Span {
    start_time_in_ms: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time_in_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    total_time_in_ms: Option<i64>,
}

impl Span {
    fn new(start: i64, end: Option<i64>) -> Span {
        Span {
            start_time_in_ms: start,
            end_time_in_ms: end,
            total_time_in_ms: end.map(|end| end.saturating_sub(start).max(0)),
        }
    }
}

/// `computeGatewayJobId`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ComputeGatewayJobId {
    /// Empty until a worker started the job.
    export_job: String,
}

impl From<&Job> for ExportJob {
    fn from(job: &Job) -> ExportJob {
        let mut request = match &job.payload {
            Value::Object(members) => members.clone(),
            _ => Map::new(),
        };
        let text = |value: Option<Value>| match value {
            Some(Value::String(text)) => Some(text),
            _ => None,
        };
        let ims_org_id = text(request.remove("imsOrgId"));
        let profile_instance_id = text(request.remove("profileInstanceId"))
            .unwrap_or_else(|| DEFAULT_PROFILE_INSTANCE.to_owned());
        for name in READ_ONLY_MEMBERS {
            request.remove(name);
        }
        let segments = request
            .get("filter")
            .and_then(|filter| filter.get("segments"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Object(destination)) = request.get_mut("destination") {
            destination.insert(
                "batchId".into(),
                Value::String(hex(&digest(job, "batch", 0))[..32].to_owned()),
            );
            if destination.get("segmentPerBatch") == Some(&Value::Bool(true)) {
                let batches = segments
                    .into_iter()
                    .enumerate()
                    .filter_map(|(index, segment)| {
                        let mut batch = segment.as_object()?.clone();
                        let batch_id = hex(&digest(job, "segment-batch", index))[..32].to_owned();
                        batch.insert("batchId".into(), Value::String(batch_id));
                        Some(Value::Object(batch))
                    })
                    .collect();
                destination.insert("batches".into(), Value::Array(batches));
            }
        }
        let status = ExportStatus::from(job.state);
        let errors = match (status, &job.error) {
            (ExportStatus::Failed, error) => vec![ExportError {
                code: "unknown",
                msg: error
                    .clone()
                    .unwrap_or_else(|| "Export job failed".to_owned()),
                call_stack: String::new(),
            }],
            _ => Vec::new(),
        };
        let counter = job
            .progress
            .get("totalExportedProfileCounter")
            .and_then(Value::as_u64);
        let by_namespace = job
            .progress
            .get("exportedProfileByNamespaceCounter")
            .and_then(Value::as_object)
            .map(|counts| {
                counts
                    .iter()
                    .filter(|(_, count)| count.is_u64())
                    .map(|(namespace, count)| (namespace.clone(), count.clone()))
                    .collect::<Map<String, Value>>()
            });
        ExportJob {
            id: job.id,
            job_type: "BATCH",
            request,
            ims_org_id,
            status,
            profile_instance_id,
            errors,
            metrics: Metrics {
                total_time: Span::new(job.created_at, job.finished_at),
                profile_export_time: job
                    .started_at
                    .map(|start| Span::new(start, job.finished_at)),
                total_exported_profile_counter: counter,
                exported_profile_by_namespace_counter: by_namespace,
            },
            compute_gateway_job_id: ComputeGatewayJobId {
                export_job: if job.started_at.is_some() {
                    uuid(&digest(job, "export", 0))
                } else {
                    String::new()
                },
            },
            creation_time: job.created_at,
            update_time: job.updated_at,
            request_id: uuid(&digest(job, "request", 0)),
        }
    }
}

/// A stable hash naming one generated id of a job: never reused, since job ids are not.
fn digest(job: &Job, what: &str, index: usize) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"jobstore-aep\0");
    hasher.update(what.as_bytes());
    hasher.update(b"\0");
    hasher.update(job.tenant.as_bytes());
    hasher.update(b"\0");
    hasher.update(job.id.to_be_bytes());
    hasher.update(job.created_at.to_be_bytes());
    hasher.update(u64::try_from(index).unwrap_or(u64::MAX).to_be_bytes());
    hasher.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// A version-4-shaped UUID from hash bytes.
fn uuid(bytes: &[u8; 32]) -> String {
    let mut b = [0_u8; 16];
    b.copy_from_slice(&bytes[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// A page of the list.
#[derive(Debug, Serialize)]
struct ExportJobPage {
    records: Vec<ExportJob>,
    page: PageInfo,
    link: Link,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    sort_field: &'static str,
    sort: &'static str,
    /// The offset this page was asked for (`""`: the first page).
    page_offset: String,
    /// Records on this page.
    page_size: usize,
}

#[derive(Debug, Serialize)]
struct Link {
    /// The next page (relative to the Segmentation API's base path), `""` on the last page.
    next: String,
}

impl ExportJobPage {
    fn new(params: &ListParams, page: &JobPage) -> ExportJobPage {
        let next = match (page.has_more, page.jobs.last()) {
            (true, Some(last)) => params.next_link(Offset::of(last)),
            _ => String::new(),
        };
        ExportJobPage {
            records: page.jobs.iter().map(ExportJob::from).collect(),
            page: PageInfo {
                sort_field: "createdTime",
                sort: "desc",
                page_offset: params.offset.map(|o| o.to_string()).unwrap_or_default(),
                page_size: page.jobs.len(),
            },
            link: Link { next },
        }
    }
}

/// A fault in the dialect's shape **(ours)**: `{"type", "status", "title", "detail"}`.
#[derive(Debug)]
struct Fault {
    error: ApiError,
    /// The `Allow` header of a 405.
    allow: Option<&'static str>,
}

impl From<ApiError> for Fault {
    fn from(error: ApiError) -> Fault {
        Fault { error, allow: None }
    }
}

/// The fault document.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    status: u16,
    title: &'a str,
    detail: &'a str,
}

impl Fault {
    fn render(&self) -> Response<ResponseBody> {
        let status = self.error.status;
        let problem = Problem {
            kind: self.error.kind.as_str(),
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            detail: &self.error.message,
        };
        let mut response = body::json(status, &problem);
        if let Some(seconds) = self.error.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_with_and_without_trailing_slash() {
        let job = |id: &str| Some(Resource::Job(id.to_owned()));
        for (path, resource) in [
            (BASE, Some(Resource::Collection)),
            ("/data/core/ups/export/jobs/", Some(Resource::Collection)),
            ("/data/core/ups/export/jobs/42", job("42")),
            ("/data/core/ups/export/jobs/42/", job("42")),
            ("/data/core/ups/export/jobs/%34%32", job("42")),
            ("/data/core/ups/export/jobs/abc", job("abc")),
            ("/data/core/ups/export/jobs/1/x", None),
            ("/data/core/ups/export/jobs//", None),
            ("/data/core/ups/export/jobs/%zz", None),
        ] {
            assert!(matches(path), "{path}");
            assert_eq!(Resource::of(path), resource, "{path}");
        }
        assert_eq!(job_id("42").ok(), Some(42));
        for bad in ["abc", "0", "-1", "{EXPORT_JOB_ID}"] {
            assert_eq!(
                job_id(bad).err().map(|e| e.status),
                Some(StatusCode::NOT_FOUND)
            );
        }
        assert!(!matches("/data/core/ups/export/jobsx"));
        assert!(!matches("/data/core/ups/export"));
    }

    #[test]
    fn statuses_round_trip_and_cover_every_state() {
        for state in State::ALL {
            let status = ExportStatus::from(state);
            assert_eq!(status.as_str().parse::<ExportStatus>().ok(), Some(status));
        }
        assert_eq!("new".parse::<ExportStatus>().ok(), Some(ExportStatus::New));
        assert!("DONE".parse::<ExportStatus>().is_err());
    }

    #[test]
    fn limits_clamp_and_refuse() {
        assert_eq!(parse_limit("10", 1000).ok(), Some(10));
        assert_eq!(parse_limit("5000", 1000).ok(), Some(1000));
        assert_eq!(
            parse_limit("99999999999999999999999", 1000).ok(),
            Some(1000)
        );
        for bad in ["0", "-1", "1.5", "abc", "+3"] {
            assert!(parse_limit(bad, 1000).is_err(), "{bad}");
        }
    }

    #[test]
    fn offsets_parse_strictly() {
        let offset: Offset = "1540974701302_96".parse().unwrap();
        assert_eq!(offset.to_string(), "1540974701302_96");
        for bad in ["", "_", "1_", "_1", "1-2", "a_1", "1_2_3", "-1_2"] {
            assert!(bad.parse::<Offset>().is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339() {
        for good in [
            "2018-01-01T00:00:00Z",
            "2018-01-01T00:00:00.123Z",
            "2018-01-01t23:59:60+02:00",
        ] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "2018-01-01",
            "2018-13-01T00:00:00Z",
            "2018-01-01T24:00:00Z",
            "2018-01-01T00:00:00",
            "2018-01-01T00:00:00.Z",
            "2018-01-01T00:00:00+0200",
            "2018-01-01T00:00:00Zjunk",
            "ü018-01-01T00:00:00Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn every_missing_member_is_named() {
        let err = ExportRequest::try_from(json!({})).err().unwrap();
        assert!(
            err.message.contains("destination.datasetId"),
            "{}",
            err.message
        );
        assert!(err.message.contains("schema.name"), "{}", err.message);
        let err = ExportRequest::try_from(json!({"destination": 3, "schema": {}}))
            .err()
            .unwrap();
        assert!(
            err.message.contains("destination must be an object"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .contains("missing required members: schema.name"),
            "{}",
            err.message
        );
        let ok = ExportRequest::try_from(json!({
            "destination": {"datasetId": "d", "batchId": "mine"},
            "schema": {"name": "_xdm.context.profile"},
            "status": "SUCCEEDED",
        }))
        .unwrap();
        assert_eq!(ok.dataset_id, "d");
        assert_eq!(
            Value::Object(ok.members),
            json!({"destination": {"datasetId": "d"}, "schema": {"name": "_xdm.context.profile"}})
        );
    }
}
