//! The Data Cloud wire: the state names, the operations, the create and PATCH bodies (checked
//! member by member, each refusal naming the member) and the job documents.

use http::{HeaderMap, StatusCode, header};
use jobstore::{Job, NewJob, State};
use serde::Serialize;
use serde_json::{Value, json};

use super::NAME;
use crate::auth::Principal;
use crate::dialects::salesforce;
use crate::fault::ApiError;
use crate::time::rfc3339_millis;

/// The Data Cloud name of a core state: each core state is named by one Data Cloud state
/// (a queued job that waits for a retry shows InProgress: see [`state_of`]).
pub(crate) fn state_name(state: State) -> &'static str {
    match state {
        // Accepting batches.
        State::Open => "Open",
        // Closed, waiting for its first worker.
        State::Queued => "UploadComplete",
        State::Running => "InProgress",
        State::Succeeded => "JobComplete",
        State::Failed => "Failed",
        // Aborted, its data deleted.
        State::Cancelled => "Aborted",
    }
}

/// The Data Cloud state of `job`. The vendor's states only move forward, so a job a worker
/// has claimed before (it has a `started_at`) stays InProgress while it waits, queued, for
/// the retry of a retryable failure; a job never claimed (or restarted, which clears
/// `started_at`) and queued is UploadComplete.
pub(crate) fn state_of(job: &Job) -> &'static str {
    if job.state == State::Queued && job.started_at.is_some() {
        state_name(State::Running)
    } else {
        state_name(job.state)
    }
}

/// The core state of the Data Cloud state named `text` (case-insensitive).
pub(crate) fn state_named(text: &str) -> Option<State> {
    State::ALL
        .into_iter()
        .find(|state| state_name(*state).eq_ignore_ascii_case(text))
}

/// The operation of a bulk job, which decides the layout of its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// Upsert records: every batch starts with a header row.
    Upsert,
    /// Delete records: batches have no header, the primary key first.
    Delete,
}

impl Operation {
    fn as_str(self) -> &'static str {
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

    /// The operation recorded in a job's payload (upsert when it names none).
    pub(crate) fn of(job: &Job) -> Operation {
        job.payload
            .get("operation")
            .and_then(Value::as_str)
            .and_then(Operation::parse)
            .unwrap_or(Operation::Upsert)
    }
}

/// The job a `POST /api/v1/ingest/jobs` body asks for: kind `ingest` on `queue`, open for
/// uploads, `sourceName` its source, `object` its target, all three members and `operation`
/// in its payload. The three are required; Bulk API 2.0 clients may add `contentType` (`CSV`),
/// `columnDelimiter` (`COMMA`) and `lineEnding` (`LF` or `CRLF`, both accepted anyway); any
/// other member is refused.
pub(crate) fn new_job(body: Value, principal: &Principal, queue: &str) -> Result<NewJob, ApiError> {
    let Value::Object(members) = body else {
        return Err(salesforce::own(
            "INVALIDJOB",
            "the request body must be a JSON object",
        ));
    };
    for (name, value) in &members {
        let allowed: &[&str] = match name.as_str() {
            "object" | "sourceName" | "operation" => continue,
            "contentType" => &["CSV"],
            "columnDelimiter" => &["COMMA"],
            "lineEnding" => &["LF", "CRLF"],
            other => {
                return Err(salesforce::own(
                    "INVALIDJOB",
                    format!("unknown member `{other}`; a job has object, sourceName and operation"),
                ));
            }
        };
        if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
            let allowed = allowed.join(" or ");
            return Err(salesforce::own(
                "INVALIDJOB",
                format!("`{name}` must be {allowed}, got {value}"),
            ));
        }
    }
    let text = |name: &str| match members.get(name) {
        None | Some(Value::Null) => Err(salesforce::own(
            "INVALIDJOB",
            format!("`{name}` is required: a job has object, sourceName and operation"),
        )),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(other) => Err(salesforce::own(
            "INVALIDJOB",
            format!("`{name}` must be a non-empty string, got {other}"),
        )),
    };
    let (object, source) = (text("object")?, text("sourceName")?);
    let operation = text("operation")?;
    let operation = Operation::parse(&operation).ok_or_else(|| {
        salesforce::own(
            "INVALIDJOB",
            format!("`operation` must be upsert or delete, got `{operation}`"),
        )
    })?;
    let payload = json!({"object": object, "sourceName": source, "operation": operation.as_str()});
    Ok(NewJob::new("ingest")
        .queue(queue)
        .dialect(NAME)
        .upload(true)
        .name(format!("{} {object}", operation.as_str()))
        .source(source)
        .target(object)
        .created_by(principal.name.clone())
        .payload(payload))
}

/// A change a request asks of a job: its words when the job's state refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `PUT .../batches`.
    Upload,
    /// `PATCH` to `UploadComplete`.
    Close,
    /// `PATCH` to `Aborted`.
    Abort,
    /// `DELETE`.
    Delete,
}

impl TryFrom<Value> for Action {
    type Error = ApiError;

    /// A `PATCH` body: exactly `{"state": "UploadComplete"}` (close) or
    /// `{"state": "Aborted"}` (abort), the state matched case-insensitively.
    fn try_from(body: Value) -> Result<Action, ApiError> {
        let state = match &body {
            Value::Object(members) if members.len() == 1 => members.get("state"),
            _ => None,
        };
        match state.and_then(Value::as_str).and_then(state_named) {
            Some(State::Queued) => Ok(Action::Close),
            Some(State::Cancelled) => Ok(Action::Abort),
            _ => {
                let message = format!(
                    "a job can only be set to UploadComplete or Aborted, with the body \
                     {{\"state\": \"UploadComplete\" | \"Aborted\"}}; got {body}"
                );
                Err(salesforce::own("INVALIDJOBSTATE", message))
            }
        }
    }
}

/// Batches are `text/csv` (a `charset`, if any, must be UTF-8); a request without a
/// Content-Type is taken as CSV.
pub(crate) fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let mut parts = text.split(';').map(str::trim);
    let csv = parts
        .next()
        .is_some_and(|media| media.eq_ignore_ascii_case("text/csv"));
    let utf8 = parts.all(|param| match param.split_once('=') {
        Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
            let value = value.trim().trim_matches('"');
            value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    });
    if csv && utf8 {
        return Ok(());
    }
    let message = format!("batches are uploaded as `Content-Type: text/csv` (UTF-8), not `{text}`");
    Err(salesforce::own("INVALID_CONTENT_TYPE", message)
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
}

/// A bulk job as every answer renders it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobInfo {
    id: String,
    operation: &'static str,
    object: String,
    source_name: String,
    created_by_id: String,
    created_date: String,
    system_modstamp: String,
    state: &'static str,
    content_type: &'static str,
    api_version: &'static str,
    content_url: String,
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
            state: state_of(job),
            content_type: "CSV",
            api_version: "v1",
            content_url: format!("api/v1/ingest/jobs/{}/batches", job.id),
        }
    }
}

/// `GET /api/v1/ingest/jobs/{id}`: the job with its counters.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobDetail {
    #[serde(flatten)]
    info: JobInfo,
    /// Attempts after the first.
    retries: i64,
    /// Milliseconds the latest attempt ran (so far, while it runs).
    total_processing_time: i64,
    /// The worker's progress members of the same names (0 when not numbers).
    number_records_processed: i64,
    number_records_failed: i64,
    /// Why a failed job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

impl JobDetail {
    /// The document of `job` at `now`.
    pub(crate) fn new(job: &Job, now: i64) -> JobDetail {
        let counter = |name: &str| {
            let value = job.progress.get(name);
            let count = value.and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
            count.unwrap_or(0).max(0)
        };
        let ran = |started: i64| job.finished_at.unwrap_or(now).saturating_sub(started);
        JobDetail {
            info: JobInfo::from(job),
            retries: job.attempt.saturating_sub(1).max(0),
            total_processing_time: job.started_at.map_or(0, ran).max(0),
            number_records_processed: counter("numberRecordsProcessed"),
            number_records_failed: counter("numberRecordsFailed"),
            error_message: job.error.clone().filter(|_| job.state == State::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_one_name_and_back() {
        for state in State::ALL {
            assert_eq!(state_named(state_name(state)), Some(state));
            assert_eq!(state_named(&state_name(state).to_lowercase()), Some(state));
        }
    }

    #[test]
    fn bodies_are_checked_member_by_member() {
        let principal = Principal::anonymous_local();
        let create = |body: Value| new_job(body, &principal, "q");
        let good = create(json!({"object": "C", "sourceName": "s", "operation": "Upsert"}));
        let good = good
            .ok()
            .map(|job| (job.payload["operation"].clone(), job.target));
        assert_eq!(good, Some((json!("upsert"), "C".to_owned())));
        for bad in [
            json!([]),
            json!({"sourceName": "ecomm", "operation": "upsert"}),
            json!({"object": "", "sourceName": "ecomm", "operation": "upsert"}),
            json!({"object": "C", "sourceName": 3, "operation": "upsert"}),
            json!({"object": "C", "sourceName": "s", "operation": "insert"}),
            json!({"object": "C", "sourceName": "s", "operation": "delete", "x": 1}),
            json!({"object": "C", "sourceName": "s", "operation": "delete", "contentType": "JSON"}),
        ] {
            let fault = create(bad.clone()).err();
            assert_eq!(
                fault.map(|f| f.vendor_code),
                Some(Some("INVALIDJOB")),
                "{bad}"
            );
        }
        let patch = |body: Value| Action::try_from(body).map_err(|f| f.vendor_code);
        assert_eq!(patch(json!({"state": "uploadcomplete"})), Ok(Action::Close));
        assert_eq!(patch(json!({"state": "Aborted"})), Ok(Action::Abort));
        for bad in [json!({"state": "Open"}), json!({"state": 3}), json!({})] {
            assert_eq!(patch(bad.clone()), Err(Some("INVALIDJOBSTATE")), "{bad}");
        }
    }
}
