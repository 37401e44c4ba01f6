//! The native JSON API under `/v1`: its request and response types and one thin handler per
//! route. A handler checks the caller's permission, decodes a bounded body, makes one store
//! call on a blocking thread and renders the answer. No SQL, no state logic.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use jobstore::{
    ClaimRequest, Cursor, Definition, DefinitionStep, Direction, Execution, Failure, Heartbeat,
    Job, Lease, ListQuery, LogLevel, NewJob, Pagination, SortField, State, Step, StepReport,
    StepStatus,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::App;
use crate::auth::{Permission, Principal};
use crate::body::{self, ResponseBody};
use crate::error::ApiError;
use crate::routes::{JobAction, Route};

type Answer = Result<Response<ResponseBody>, ApiError>;

/// A job as the native API renders it: every stored field, and on a single job its steps and
/// data counters.
#[derive(Debug, Serialize)]
pub struct JobDocument {
    #[serde(flatten)]
    job: Job,
    #[serde(skip_serializing_if = "Option::is_none")]
    steps: Option<Vec<Step>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_batches: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_bytes: Option<i64>,
}

impl From<Job> for JobDocument {
    fn from(job: Job) -> Self {
        JobDocument {
            job,
            steps: None,
            data_batches: None,
            data_bytes: None,
        }
    }
}

/// `POST /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJob {
    kind: String,
    queue: Option<String>,
    name: Option<String>,
    payload: Option<Value>,
    priority: Option<i64>,
    run_at: Option<i64>,
    max_attempts: Option<i64>,
    unique_key: Option<String>,
    source: Option<String>,
    target: Option<String>,
    upload: Option<bool>,
    restartable: Option<bool>,
    /// Admins only: the tenant to create the job in.
    tenant: Option<String>,
}

/// `POST /v1/claim`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    worker: String,
    queues: Vec<String>,
    max: Option<u32>,
    lease_ms: Option<i64>,
    wait_ms: Option<u64>,
}

/// The lease every worker call carries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeartbeatBody {
    worker: String,
    lease_token: i64,
    progress: Option<Value>,
    phase: Option<String>,
    lease_ms: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepBody {
    worker: String,
    lease_token: i64,
    status: String,
    exit_code: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteBody {
    worker: String,
    lease_token: i64,
    #[serde(default)]
    result: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailBody {
    worker: String,
    lease_token: i64,
    error: String,
    #[serde(default = "yes")]
    retryable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogBody {
    lines: Vec<LogLineBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLineBody {
    #[serde(default = "info")]
    level: String,
    message: String,
}

fn info() -> String {
    "info".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionBody {
    #[serde(default)]
    steps: Vec<DefinitionStepBody>,
    #[serde(default = "yes")]
    restartable: bool,
    queue: Option<String>,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "yes")]
    valid: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DefinitionStepBody {
    step_id: String,
    #[serde(default)]
    step_type_id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    execution_scope: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteBody {
    #[serde(default)]
    restart: bool,
    #[serde(default)]
    payload: Value,
}

/// Answers one native route.
pub(crate) async fn handle(
    app: &App,
    principal: &Principal,
    route: Route,
    request: Request<Incoming>,
) -> Answer {
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    match (route, method) {
        (Route::Stats, Method::GET) => {
            principal.require(Permission::Read)?;
            let stats = app.call(principal, |store| store.stats()).await?;
            Ok(body::json(
                StatusCode::OK,
                &serde_json::json!({ "stats": stats }),
            ))
        }
        (Route::Jobs, Method::POST) => {
            principal.require(Permission::Write)?;
            let idempotency =
                crate::idempotency_key(request.headers()).map_err(ApiError::bad_request)?;
            let create: CreateJob = app.json_body(request).await?;
            let new = new_job(create, principal, idempotency)?;
            let job = app
                .write(principal, move |store| store.enqueue_call(new))
                .await?;
            Ok(body::json(StatusCode::CREATED, &JobDocument::from(job)))
        }
        (Route::Jobs, Method::GET) => {
            principal.require(Permission::Read)?;
            let query = list_query(query.as_deref(), app.limits.max_page)?;
            let page = app.call(principal, move |store| store.list(&query)).await?;
            let jobs: Vec<JobDocument> = page.jobs.into_iter().map(JobDocument::from).collect();
            Ok(body::json(
                StatusCode::OK,
                &serde_json::json!({
                    "jobs": jobs,
                    "next_cursor": page.next_cursor.map(|c| c.encode()),
                }),
            ))
        }
        (Route::Job(id), Method::GET) => {
            principal.require(Permission::Read)?;
            let document = app
                .call(principal, move |store| {
                    let job = store.get(id)?;
                    let steps = store.steps(id)?;
                    let batches = store.data_batches(id)?;
                    Ok(JobDocument {
                        job,
                        steps: Some(steps),
                        data_batches: Some(batches.len()),
                        data_bytes: Some(batches.iter().map(|b| b.bytes).sum()),
                    })
                })
                .await?;
            Ok(body::json(StatusCode::OK, &document))
        }
        (Route::Job(id), Method::DELETE) => {
            principal.require(Permission::Write)?;
            app.call(principal, move |store| store.delete(id)).await?;
            Ok(body::empty(StatusCode::NO_CONTENT))
        }
        (Route::JobAction(id, action), Method::POST) => {
            job_action(app, principal, id, action, request).await
        }
        (Route::JobData(id), Method::PUT) => {
            principal.require(Permission::Write)?;
            upload(app, principal, id, request).await
        }
        (Route::JobData(id), Method::GET) => {
            // A worker reads the data of the job it runs with its `work` scope.
            if !principal.may(Permission::Work) {
                principal.require(Permission::Read)?;
            }
            download(app, principal, id).await
        }
        (Route::JobLogs(id), Method::GET) => {
            principal.require(Permission::Read)?;
            let lines = app
                .call(principal, move |store| {
                    let mut all = Vec::new();
                    let mut after = 0;
                    loop {
                        let page = store.log(id, after, 10_000)?;
                        let Some(last) = page.last() else { break };
                        after = last.seq;
                        all.extend(page);
                    }
                    Ok(all)
                })
                .await?;
            let mut text = String::new();
            for line in lines {
                text.push_str(&format!(
                    "{} {:<5} {}\n",
                    crate::time::rfc3339_millis(line.at),
                    line.level.as_str().to_uppercase(),
                    line.message
                ));
            }
            Ok(body::text(
                StatusCode::OK,
                "text/plain; charset=utf-8",
                text,
            ))
        }
        (Route::JobLogs(id), Method::POST) => {
            // Workers append logs with their `work` scope; clients with `write`.
            if !principal.may(Permission::Work) {
                principal.require(Permission::Write)?;
            }
            let plain = request
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/plain"));
            let lines: Vec<(LogLevel, String)> = if plain {
                let bytes = app.raw_body(request).await?;
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|line| (LogLevel::Info, line.to_owned()))
                    .collect()
            } else {
                let log: LogBody = app.json_body(request).await?;
                log.lines
                    .into_iter()
                    .map(|l| Ok((l.level.parse()?, l.message)))
                    .collect::<jobstore::Result<_>>()?
            };
            let appended = app
                .call(principal, move |store| store.append_log(id, lines))
                .await?;
            Ok(body::json(
                StatusCode::OK,
                &serde_json::json!({ "appended": appended }),
            ))
        }
        (Route::JobEvents(id), Method::GET) => {
            principal.require(Permission::Read)?;
            let events = app.call(principal, move |store| store.events(id)).await?;
            Ok(body::json(
                StatusCode::OK,
                &serde_json::json!({ "events": events }),
            ))
        }
        (Route::JobStep(id, step), Method::POST) => {
            principal.require(Permission::Work)?;
            let report: StepBody = app.json_body(request).await?;
            let lease = Lease {
                worker: report.worker,
                token: report.lease_token,
            };
            let status: StepStatus = report.status.parse()?;
            if status == StepStatus::Pending {
                return Err(ApiError::bad_request("status must be running, ok or error"));
            }
            let report = StepReport {
                status,
                exit_code: report.exit_code,
                message: report.message,
            };
            app.call(principal, move |store| {
                store.report_step(id, &lease, &step, report)
            })
            .await?;
            let steps = app.call(principal, move |store| store.steps(id)).await?;
            Ok(body::json(
                StatusCode::OK,
                &serde_json::json!({ "steps": steps }),
            ))
        }
        (Route::Definitions, Method::GET) => {
            principal.require(Permission::Read)?;
            let definitions = app.call(principal, |store| store.definitions()).await?;
            Ok(body::json(
                StatusCode::OK,
                &serde_json::json!({ "definitions": definitions }),
            ))
        }
        (Route::Definition(id), Method::GET) => {
            principal.require(Permission::Read)?;
            let definition = app
                .call(principal, move |store| store.definition(&id))
                .await?;
            Ok(body::json(StatusCode::OK, &definition))
        }
        (Route::Definition(id), Method::PUT) => {
            principal.require(Permission::Write)?;
            let body: DefinitionBody = app.json_body(request).await?;
            let definition = Definition {
                id,
                description: body.description,
                queue: body
                    .queue
                    .unwrap_or_else(|| app.dialects().ocapi_queue.clone()),
                restartable: body.restartable,
                enabled: body.enabled,
                valid: body.valid,
                steps: body
                    .steps
                    .into_iter()
                    .map(|s| DefinitionStep {
                        step_id: s.step_id,
                        step_type_id: s.step_type_id,
                        description: s.description,
                        execution_scope: s.execution_scope,
                    })
                    .collect(),
                created_at: 0,
                updated_at: 0,
            };
            let stored = app
                .call(principal, move |store| store.put_definition(definition))
                .await?;
            Ok(body::json(StatusCode::OK, &stored))
        }
        (Route::Executions(id), Method::POST) => {
            principal.require(Permission::Write)?;
            let body: ExecuteBody = app.json_body(request).await?;
            let execution = Execution {
                restart: body.restart,
                payload: body.payload,
                created_by: principal.name.clone(),
                dialect: None,
            };
            let job = app
                .call(principal, move |store| store.execute(&id, execution))
                .await?;
            Ok(body::json(StatusCode::CREATED, &JobDocument::from(job)))
        }
        (Route::Claim, Method::POST) => {
            principal.require(Permission::Work)?;
            let claim: ClaimBody = app.json_body(request).await?;
            let wait = Duration::from_millis(claim.wait_ms.unwrap_or(0)).min(app.limits.max_wait);
            let request = ClaimRequest {
                worker: claim.worker,
                queues: claim.queues,
                max: claim.max.unwrap_or(1),
                lease_ms: claim.lease_ms.unwrap_or(30_000),
            };
            let jobs = app.claim_waiting(principal, request, wait).await?;
            let jobs: Vec<JobDocument> = jobs.into_iter().map(JobDocument::from).collect();
            Ok(body::json(
                StatusCode::OK,
                &serde_json::json!({ "jobs": jobs }),
            ))
        }
        (route, method) => Err(ApiError::method_not_allowed(&method, &format!("{route:?}"))),
    }
}

async fn job_action(
    app: &App,
    principal: &Principal,
    id: i64,
    action: JobAction,
    request: Request<Incoming>,
) -> Answer {
    let actor = principal.name.clone();
    let job = match action {
        JobAction::Cancel => {
            principal.require(Permission::Write)?;
            app.drain_body(request).await?;
            app.call(principal, move |store| store.cancel(id, &actor))
                .await?
        }
        JobAction::Restart => {
            principal.require(Permission::Write)?;
            app.drain_body(request).await?;
            app.call(principal, move |store| store.restart(id, &actor))
                .await?
        }
        JobAction::Close => {
            principal.require(Permission::Write)?;
            app.drain_body(request).await?;
            app.call(principal, move |store| store.close_upload(id, &actor))
                .await?
        }
        JobAction::Heartbeat => {
            principal.require(Permission::Work)?;
            let beat: HeartbeatBody = app.json_body(request).await?;
            let lease = Lease {
                worker: beat.worker,
                token: beat.lease_token,
            };
            let heartbeat = Heartbeat {
                progress: beat.progress,
                phase: beat.phase,
                lease_ms: beat.lease_ms,
            };
            let answer = app
                .call(principal, move |store| {
                    store.heartbeat(id, &lease, heartbeat)
                })
                .await?;
            return Ok(body::json(StatusCode::OK, &answer));
        }
        JobAction::Complete => {
            principal.require(Permission::Work)?;
            let done: CompleteBody = app.json_body(request).await?;
            let lease = Lease {
                worker: done.worker,
                token: done.lease_token,
            };
            app.write(principal, move |store| {
                store.complete_call(id, &lease, done.result)
            })
            .await?
        }
        JobAction::Fail => {
            principal.require(Permission::Work)?;
            let failed: FailBody = app.json_body(request).await?;
            let lease = Lease {
                worker: failed.worker,
                token: failed.lease_token,
            };
            let failure = Failure {
                error: failed.error,
                retryable: failed.retryable,
            };
            app.write(principal, move |store| store.fail_call(id, &lease, failure))
                .await?
        }
    };
    Ok(body::json(StatusCode::OK, &JobDocument::from(job)))
}

/// Appends the request body, streamed, as a new data batch (see [`App::append_body`]).
async fn upload(app: &App, principal: &Principal, id: i64, request: Request<Incoming>) -> Answer {
    let batch = app
        .append_body(principal, id, request, crate::data::AsIs)
        .await??;
    Ok(body::json(StatusCode::CREATED, &batch))
}

/// Streams every data batch of a job, in order, a chunk at a time.
async fn download(app: &App, principal: &Principal, id: i64) -> Answer {
    let reader = app
        .call(principal, move |store| store.read_data(id, None))
        .await?;
    let stream = crate::data::stream(id, reader);
    Ok(body::with_type(
        StatusCode::OK,
        "application/octet-stream",
        BodyExt::boxed(stream),
    ))
}

fn new_job(
    create: CreateJob,
    principal: &Principal,
    idempotency: Option<String>,
) -> Result<NewJob, ApiError> {
    let mut new = NewJob::new(create.kind).created_by(principal.name.clone());
    if let Some(queue) = create.queue {
        new = new.queue(queue);
    }
    if let Some(name) = create.name {
        new = new.name(name);
    }
    if let Some(payload) = create.payload {
        new = new.payload(payload);
    }
    if let Some(priority) = create.priority {
        new = new.priority(priority);
    }
    if let Some(run_at) = create.run_at {
        new = new.run_at(run_at);
    }
    if let Some(max) = create.max_attempts {
        new = new.max_attempts(max);
    }
    if let Some(key) = create.unique_key {
        new = new.unique_key(key);
    }
    if let Some(source) = create.source {
        new = new.source(source);
    }
    if let Some(target) = create.target {
        new = new.target(target);
    }
    if let Some(upload) = create.upload {
        new = new.upload(upload);
    }
    if let Some(restartable) = create.restartable {
        new = new.restartable(restartable);
    }
    if let Some(key) = idempotency {
        new = new.idempotency_key(key);
    }
    if let Some(tenant) = create.tenant {
        if !principal.is_admin() {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "only an admin token may name a tenant",
            ));
        }
        new = new.tenant(tenant);
    }
    Ok(new)
}

/// Parses the list query parameters; unknown parameters are refused.
fn list_query(query: Option<&str>, max_page: u32) -> Result<ListQuery, ApiError> {
    let pairs = crate::routes::query_pairs(query)
        .ok_or_else(|| ApiError::bad_request("malformed query string"))?;
    let mut list = ListQuery::default();
    let mut cursor = None;
    let int = |name: &str, value: &str| {
        value
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("{name} must be an integer, got `{value}`")))
    };
    for (key, value) in pairs {
        match key.as_str() {
            "state" => list.states.push(value.parse::<State>()?),
            "kind" => list.kinds.push(value),
            "queue" => list.queues.push(value),
            "source" => list.sources.push(value),
            "target" => list.targets.push(value),
            "created_by" => list.created_by.push(value),
            "definition" => list.definitions.push(value),
            "tenant" => list.tenant = Some(value),
            "created_after" => list.created_after = Some(int("created_after", &value)?),
            "created_before" => list.created_before = Some(int("created_before", &value)?),
            "sort" => list.sort = Some(value.parse::<SortField>()?),
            "order" => list.direction = value.parse::<Direction>()?,
            "limit" => {
                let limit = int("limit", &value)?;
                if limit < 1 || limit > i64::from(max_page) {
                    return Err(ApiError::bad_request(format!(
                        "limit must be 1 to {max_page}, got {limit}"
                    )));
                }
                list.limit = u32::try_from(limit).ok();
            }
            "cursor" => cursor = Some(Cursor::decode(&value)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter `{other}`; known: state, kind, queue, source, \
                     target, created_by, definition, tenant, created_after, created_before, \
                     sort, order, limit, cursor"
                )));
            }
        }
    }
    list.page = Pagination::Cursor(cursor);
    Ok(list)
}
