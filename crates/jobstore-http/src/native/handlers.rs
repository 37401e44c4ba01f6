//! The native handlers: each checks the caller's permission, decodes a bounded body, makes
//! one store call (a read on a blocking thread, or a write answered by the writer after its
//! commit) and renders the answer. No SQL, no state logic.

use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use jobstore::{
    ClaimRequest, Cursor, Definition, DefinitionStep, Direction, Execution, Failure, Heartbeat,
    Lease, ListQuery, LogLevel, NewJob, Pagination, SortField, StepReport, StepStatus,
    UploadLimits,
};

use super::wire::{
    self, Appended, ClaimBody, Claimed, CompleteBody, CreateJob, DefinitionBody, Definitions,
    Events, ExecuteBody, FailBody, HeartbeatBody, JobList, LogBody, StepBody, Steps,
};
use super::{Name, Native};
use crate::app::App;
use crate::auth::{Permission, Principal};
use crate::body::{self, ResponseBody};
use crate::fault::{ApiError, ErrorKind};
use crate::query::{OverMax, Query};
use crate::router::Matched;

/// The most log lines one `GET …/logs?tail=` or `?after=` answers (read on from its
/// `Jobstore-Log-Seq` for more).
const LOG_PAGE: i64 = 10_000;

/// The header of `GET …/logs` naming the `seq` to read on from (`?after=`).
const LOG_SEQ: &str = "jobstore-log-seq";

type Answer = Result<Response<ResponseBody>, ApiError>;

/// One minute, the interval of `GET /v1/throughput` (ms).
const MINUTE: i64 = 60_000;

/// One hour, the window of a queue's recent failures (ms).
const HOUR: i64 = 3_600_000;

/// The job id of a matched route; a path segment that is not an id names no job.
fn job_id(matched: &Matched<Name>) -> Result<i64, ApiError> {
    matched.params.id("id").ok_or_else(|| {
        ApiError::new(
            ErrorKind::JobNotFound,
            format!("job `{}` not found", matched.params.text("id")),
        )
    })
}

/// The output name of a matched route, checked.
fn output_name(matched: &Matched<Name>) -> Result<String, ApiError> {
    let name = matched.params.text("name");
    if jobstore::valid_output_name(name) {
        Ok(name.to_owned())
    } else {
        Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "`{name}` is not an output name: 1 to {} bytes of letters, digits, '.', '_' \
                 and '-' in '/'-separated parts, none empty, '.' or '..'",
                jobstore::MAX_OUTPUT_NAME_BYTES
            ),
        ))
    }
}

/// Answers one native route.
pub(super) async fn handle(
    native: &Native,
    app: &App,
    principal: &Principal,
    matched: &Matched<Name>,
    request: Request<Incoming>,
) -> Answer {
    let method = request.method().clone();
    let query = request.uri().query().map(str::to_owned);
    let id = || job_id(matched);
    match (matched.route.name, method) {
        (Name::Stats, Method::GET) => {
            principal.require(Permission::Read)?;
            let stats = app.call(principal, |store| store.stats()).await?;
            Ok(body::json(StatusCode::OK, &wire::Stats::from(stats)))
        }
        (Name::Jobs, Method::POST) => {
            principal.require(Permission::Write)?;
            let idempotency =
                crate::app::idempotency_key(request.headers()).map_err(ApiError::bad_request)?;
            let create: CreateJob = app.json_document(request).await?;
            let new = new_job(create, principal)?;
            let job = app.enqueue(principal, new, idempotency).await?;
            Ok(body::json(StatusCode::CREATED, &wire::Job::from(job)))
        }
        (Name::Jobs, Method::GET) => {
            principal.require(Permission::Read)?;
            let query = list_query(query.as_deref(), app.limits.max_page)?;
            let page = app.list(principal, query).await?;
            Ok(body::json(StatusCode::OK, &JobList::from(page)))
        }
        (Name::Job, Method::GET) => {
            let id = id()?;
            principal.require(Permission::Read)?;
            let document = app
                .call(principal, move |store| {
                    let job = store.get(id)?;
                    let steps = store.steps(id)?;
                    let batches = store.data_batches(id)?;
                    Ok(wire::Job::detailed(job, steps, &batches))
                })
                .await?;
            Ok(body::json(StatusCode::OK, &document))
        }
        (Name::Job, Method::DELETE) => {
            let id = id()?;
            principal.require(Permission::Write)?;
            app.call(principal, move |store| store.delete(id)).await?;
            Ok(body::empty(StatusCode::NO_CONTENT))
        }
        (
            action @ (Name::Cancel
            | Name::Restart
            | Name::Close
            | Name::Heartbeat
            | Name::Complete
            | Name::Fail),
            Method::POST,
        ) => job_action(app, principal, id()?, action, request).await,
        (Name::Data, Method::PUT) => {
            let id = id()?;
            principal.require(Permission::Write)?;
            upload(app, principal, id, request).await
        }
        (Name::Data, _) => {
            let id = id()?;
            // A worker reads the data of the job it runs with its `work` scope.
            if !principal.may(Permission::Work) {
                principal.require(Permission::Read)?;
            }
            download(app, principal, id).await
        }
        (Name::Output, Method::PUT) => {
            let id = id()?;
            principal.require(Permission::Work)?;
            let name = output_name(matched)?;
            let mut query = Query::parse(query.as_deref())?;
            let worker = query
                .one("worker")?
                .ok_or_else(|| ApiError::new(ErrorKind::InvalidQuery, "worker: required"))?;
            let token = query
                .int("lease_token", i64::MIN, i64::MAX)?
                .ok_or_else(|| ApiError::new(ErrorKind::InvalidQuery, "lease_token: required"))?;
            query.finish()?;
            let lease = Lease { worker, token };
            let batch = app
                .append_output_body(principal, id, lease, name, request)
                .await??;
            Ok(body::json(
                StatusCode::CREATED,
                &wire::DataBatch::from(batch),
            ))
        }
        (Name::Output, _) => {
            let id = id()?;
            if !principal.may(Permission::Work) {
                principal.require(Permission::Read)?;
            }
            let name = output_name(matched)?;
            let reader = app
                .call(principal, move |store| store.read_output(id, &name))
                .await?;
            let stream = match reader {
                Some(reader) => BodyExt::boxed(crate::data::stream(id, reader)),
                None => body::full(bytes::Bytes::new()),
            };
            Ok(body::with_type(
                StatusCode::OK,
                "application/octet-stream",
                stream,
            ))
        }
        (Name::Logs, Method::GET) => {
            let id = id()?;
            principal.require(Permission::Read)?;
            let mut query = Query::parse(query.as_deref())?;
            let tail = query.int("tail", 1, LOG_PAGE)?;
            let after = query.int("after", 0, i64::MAX)?;
            query.finish()?;
            let lines_of = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
            // The whole log is streamed; its last line now is where the answer ends.
            let whole = tail.is_none() && after.is_none();
            let lines = app
                .call(principal, move |store| match (tail, after) {
                    (Some(tail), after) => store.log_tail(id, after.unwrap_or(0), lines_of(tail)),
                    (None, Some(after)) => store.log(id, after, lines_of(LOG_PAGE)),
                    (None, None) => store.log_tail(id, 0, 1),
                })
                .await?;
            // Where a viewer reads on from (`?after=`): the last line's, or where it asked.
            let seq = lines.last().map_or(after.unwrap_or(0), |line| line.seq);
            let text = if whole {
                BodyExt::boxed(log_stream(app.store_for(principal), id, seq))
            } else {
                body::full(bytes::Bytes::from(log_text(&lines)))
            };
            let mut response = body::with_type(StatusCode::OK, "text/plain; charset=utf-8", text);
            response.headers_mut().insert(LOG_SEQ, seq.into());
            Ok(response)
        }
        (Name::Logs, _) => {
            let id = id()?;
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
                let log: LogBody = app.json_document(request).await?;
                log.lines
                    .into_iter()
                    .map(|l| Ok((l.level.parse()?, l.message)))
                    .collect::<jobstore::Result<_>>()?
            };
            let appended = app
                .call(principal, move |store| store.append_log(id, lines))
                .await?;
            Ok(body::json(StatusCode::OK, &Appended::from(appended)))
        }
        (Name::Events, _) => {
            let id = id()?;
            principal.require(Permission::Read)?;
            let events = app.call(principal, move |store| store.events(id)).await?;
            Ok(body::json(StatusCode::OK, &Events::from(events)))
        }
        (Name::Step, _) => {
            let id = id()?;
            let step = matched.params.text("step").to_owned();
            principal.require(Permission::Work)?;
            let report: StepBody = app.json_document(request).await?;
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
            Ok(body::json(StatusCode::OK, &Steps::from(steps)))
        }
        (Name::Definitions, _) => {
            principal.require(Permission::Read)?;
            let definitions = app.call(principal, |store| store.definitions()).await?;
            Ok(body::json(StatusCode::OK, &Definitions::from(definitions)))
        }
        (Name::Definition, Method::GET) => {
            let id = matched.params.text("id").to_owned();
            principal.require(Permission::Read)?;
            let definition = app
                .call(principal, move |store| store.definition(&id))
                .await?;
            Ok(body::json(
                StatusCode::OK,
                &wire::Definition::from(definition),
            ))
        }
        (Name::Definition, _) => {
            let id = matched.params.text("id").to_owned();
            principal.require(Permission::Write)?;
            let body: DefinitionBody = app.json_document(request).await?;
            let definition = Definition {
                id,
                description: body.description,
                queue: body
                    .queue
                    .unwrap_or_else(|| native.definition_queue.clone()),
                restartable: body.restartable,
                enabled: body.enabled,
                valid: body.valid,
                steps: body.steps.into_iter().map(DefinitionStep::from).collect(),
                created_at: 0,
                updated_at: 0,
            };
            let stored = app
                .call(principal, move |store| store.put_definition(definition))
                .await?;
            Ok(body::json(StatusCode::OK, &wire::Definition::from(stored)))
        }
        (Name::Executions, _) => {
            let id = matched.params.text("id").to_owned();
            principal.require(Permission::Write)?;
            let body: ExecuteBody = app.json_document(request).await?;
            let execution = Execution {
                restart: body.restart,
                payload: body.payload,
                created_by: principal.name.clone(),
                dialect: None,
            };
            let job = app
                .call(principal, move |store| store.execute(&id, execution))
                .await?;
            Ok(body::json(StatusCode::CREATED, &wire::Job::from(job)))
        }
        (Name::Claim, _) => {
            principal.require(Permission::Work)?;
            let claim: ClaimBody = app.json_document(request).await?;
            let wait = Duration::from_millis(claim.wait_ms.unwrap_or(0)).min(app.limits.max_wait);
            let request = ClaimRequest {
                worker: claim.worker,
                queues: claim.queues,
                max: claim.max.unwrap_or(1),
                lease_ms: claim.lease_ms.unwrap_or(30_000),
            };
            let jobs = app.claim_waiting(principal, request, wait).await?;
            Ok(body::json(StatusCode::OK, &Claimed::from(jobs)))
        }
        (Name::Throughput, _) => {
            principal.require(Permission::Read)?;
            let mut query = Query::parse(query.as_deref())?;
            let minutes = query.int("minutes", 1, 1440)?.unwrap_or(60);
            query.finish()?;
            let answer = app
                .call(principal, move |store| {
                    let current = store.now().div_euclid(MINUTE) * MINUTE;
                    let since = current - (minutes - 1) * MINUTE;
                    store.throughput(since, MINUTE)
                })
                .await?;
            Ok(body::json(
                StatusCode::OK,
                &wire::Throughput::new(MINUTE, answer),
            ))
        }
        (Name::Queues, _) => {
            principal.require(Permission::Read)?;
            let queues = app
                .call(principal, |store| {
                    store.queue_activity(store.now().saturating_sub(HOUR))
                })
                .await?;
            Ok(body::json(StatusCode::OK, &wire::Queues::from(queues)))
        }
        (Name::QueueDepth, _) => {
            principal.require(Permission::Read)?;
            let samples = app
                .depth
                .view(&principal.scope())
                .into_iter()
                .map(|row| wire::DepthSample {
                    at: row.at,
                    queue: row.queue,
                    queued: row.queued,
                    running: row.running,
                })
                .collect();
            let depth = wire::QueueDepth {
                interval_ms: i64::try_from(crate::depth::SAMPLE_INTERVAL.as_millis())
                    .unwrap_or(i64::MAX),
                since: app.depth.since,
                samples,
            };
            Ok(body::json(StatusCode::OK, &depth))
        }
        (Name::Workers, _) => {
            principal.require(Permission::Read)?;
            let jobs = app
                .call(principal, |store| {
                    store.running_jobs(jobstore::MAX_PAGE_SIZE)
                })
                .await?;
            Ok(body::json(StatusCode::OK, &wire::Workers::from(jobs)))
        }
        // The router admits only a route's own methods; health, metrics and the document are
        // answered before the handlers.
        _ => Err(ApiError::internal()),
    }
}

async fn job_action(
    app: &App,
    principal: &Principal,
    id: i64,
    action: Name,
    request: Request<Incoming>,
) -> Answer {
    let actor = principal.name.clone();
    let job = match action {
        Name::Cancel => {
            principal.require(Permission::Write)?;
            app.drain_body(request).await?;
            app.call(principal, move |store| store.cancel(id, &actor))
                .await?
        }
        Name::Restart => {
            principal.require(Permission::Write)?;
            app.drain_body(request).await?;
            app.call(principal, move |store| store.restart(id, &actor))
                .await?
        }
        Name::Close => {
            principal.require(Permission::Write)?;
            app.drain_body(request).await?;
            app.call(principal, move |store| store.close_upload(id, &actor))
                .await?
        }
        Name::Heartbeat => {
            principal.require(Permission::Work)?;
            let beat: HeartbeatBody = app.json_document(request).await?;
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
            return Ok(body::json(
                StatusCode::OK,
                &wire::HeartbeatAnswer::from(answer),
            ));
        }
        Name::Complete => {
            principal.require(Permission::Work)?;
            let done: CompleteBody = app.json_document(request).await?;
            let lease = Lease {
                worker: done.worker,
                token: done.lease_token,
            };
            app.write(principal, move |store| {
                store.complete_call(id, &lease, done.result)
            })
            .await?
        }
        Name::Fail => {
            principal.require(Permission::Work)?;
            let failed: FailBody = app.json_document(request).await?;
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
        // The dispatch passes only the six actions.
        _ => return Err(ApiError::internal()),
    };
    Ok(body::json(StatusCode::OK, &wire::Job::from(job)))
}

/// Appends the request body, streamed, as a new data batch (see [`App::append_body`]).
async fn upload(app: &App, principal: &Principal, id: i64, request: Request<Incoming>) -> Answer {
    let batch = app
        .append_body(
            principal,
            id,
            request,
            crate::data::AsIs,
            UploadLimits::default(),
        )
        .await??;
    Ok(body::json(
        StatusCode::CREATED,
        &wire::DataBatch::from(batch),
    ))
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

fn new_job(create: CreateJob, principal: &Principal) -> Result<NewJob, ApiError> {
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
    if let Some(tenant) = create.tenant {
        if !principal.is_admin() {
            return Err(ApiError::forbidden("only an admin token may name a tenant"));
        }
        new = new.tenant(tenant);
    }
    Ok(new)
}

/// Parses the list query parameters; unknown parameters are refused.
fn list_query(raw: Option<&str>, max_page: u32) -> Result<ListQuery, ApiError> {
    let mut query = Query::parse(raw)?;
    let time = |query: &mut Query, name| query.int(name, i64::MIN, i64::MAX);
    let mut list = ListQuery {
        states: parse_all(query.all("state"))?,
        kinds: query.all("kind"),
        queues: query.all("queue"),
        sources: query.all("source"),
        targets: query.all("target"),
        created_by: query.all("created_by"),
        definitions: query.all("definition"),
        dialects: query.all("dialect"),
        tenant: query.one("tenant")?,
        created_after: time(&mut query, "created_after")?,
        created_before: time(&mut query, "created_before")?,
        sort: query
            .one("sort")?
            .map(|s| s.parse::<SortField>())
            .transpose()?,
        ..ListQuery::default()
    };
    if let Some(order) = query.one("order")? {
        list.direction = order.parse::<Direction>()?;
    }
    let default = 100.min(max_page);
    list.limit = Some(query.page_size("limit", default, max_page, OverMax::Refuse)?);
    let cursor = query
        .one("cursor")?
        .map(|c| Cursor::decode(&c))
        .transpose()?;
    list.page = Pagination::Cursor(cursor);
    query.finish()?;
    Ok(list)
}

fn parse_all<T: std::str::FromStr<Err = jobstore::Error>>(
    values: Vec<String>,
) -> Result<Vec<T>, ApiError> {
    values
        .iter()
        .map(|value| value.parse::<T>().map_err(ApiError::from))
        .collect()
}

/// Log lines as the text `GET …/logs` answers: a line each, time, level, message.
fn log_text(lines: &[jobstore::LogLine]) -> String {
    let mut text = String::new();
    for line in lines {
        text.push_str(&format!(
            "{} {:<5} {}\n",
            crate::time::rfc3339_millis(line.at),
            line.level.as_str().to_uppercase(),
            line.message
        ));
    }
    text
}

/// A response body of job `id`'s log up to line `until`, read a page at a time, the next
/// page only once the client took the last: a log of millions of lines is never held whole.
fn log_stream(store: jobstore::Store, id: i64, until: i64) -> crate::body::ChannelBody {
    let mut after = 0;
    let what = format!("job {id}: streaming the log");
    body::blocking_stream(what, bytes::Bytes::new(), move || {
        if after >= until {
            return Ok(None);
        }
        let page = u32::try_from(LOG_PAGE).unwrap_or(u32::MAX);
        let mut lines = store.log(id, after, page).map_err(|err| err.to_string())?;
        if lines.is_empty() {
            // Deleted meanwhile: the log ends where it was cut.
            return Err("the log ended before its last line was read".to_owned());
        }
        lines.retain(|line| line.seq <= until);
        after = lines.last().map_or(until, |line| line.seq);
        Ok(Some(bytes::Bytes::from(log_text(&lines))))
    })
}
