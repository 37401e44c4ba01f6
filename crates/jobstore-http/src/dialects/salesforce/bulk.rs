//! A bulk job as the two Salesforce bulk ingest APIs show it, Data Cloud's Ingest API
//! (`datacloud`) and Bulk API 2.0 (`bulk2`): the vendor's state names of the core states, the
//! changes a request asks of a job ([`Action`]) and how a `PATCH` body names one
//! ([`PatchBody`]), the members of a create body ([`text_member`]), the counters of a job's
//! detail document ([`Counters`]), and the fault codes ([`CODES`]) and the wording of a path
//! that matches no route ([`miss`]) both answer with. Where the two differ, the difference is
//! a parameter named for what it is.

use http::Method;
use jobstore::{Job, State};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Codes, own};
use crate::fault::ApiError;
use crate::router::Miss;
use crate::time::elapsed;

/// The message of every 404, as Salesforce words it: an unknown path, an unknown id, another
/// tenant's job and a job of another API are answered alike.
pub(crate) const NOT_FOUND: &str = "The requested resource does not exist";

/// The refusal of a request that matched no route, worded as Salesforce words it: the 404 says
/// [`NOT_FOUND`], the 405 names the allowed methods.
pub(crate) fn miss(miss: Miss, method: &Method, path: &str) -> ApiError {
    let message = match &miss {
        Miss::NotFound => NOT_FOUND.to_owned(),
        Miss::MethodNotAllowed(allow) => {
            format!("HTTP Method '{method}' not allowed. Allowed are {allow}")
        }
    };
    miss.error(method, path).says(message)
}

/// The codes both APIs name their own way (the Salesforce and Bulk API 2.0 names); a refused
/// query parameter is `INVALID_QUERY_PARAMETER`, as Salesforce's REST APIs name it, unless the
/// API names it otherwise.
pub(crate) const CODES: Codes = Codes {
    conflict: "INVALIDJOBSTATE",
    too_many_batches: "LIMIT_EXCEEDED",
    invalid_request: "INVALID_INPUT",
    invalid_data: "INVALID_CSV",
    invalid_query: "INVALID_QUERY_PARAMETER",
    key_reused: "DUPLICATE_VALUE",
};

/// The vendor's name of a core state: each core state is named by one bulk job state (a
/// queued job that waits for a retry shows InProgress: see [`state_of`]).
pub(crate) fn state_name(state: State) -> &'static str {
    match state {
        // Accepting uploads.
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

/// The vendor's state of `job`. Its states only move forward, so a job a worker has claimed
/// before (it has a `started_at`) stays InProgress while it waits, queued, for the retry of a
/// retryable failure; a job never claimed (or restarted, which clears `started_at`) and queued
/// is UploadComplete.
pub(crate) fn state_of(job: &Job) -> &'static str {
    if job.state == State::Queued && job.started_at.is_some() {
        state_name(State::Running)
    } else {
        state_name(job.state)
    }
}

/// The core state of the bulk job state named `text`, in any case.
pub(crate) fn state_named(text: &str) -> Option<State> {
    State::ALL
        .into_iter()
        .find(|state| state_name(*state).eq_ignore_ascii_case(text))
}

/// A change a request asks of a job: what its refusal says when the job's state does not
/// allow it ([`super::jobs::BulkJobs::refuse`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// `PUT …/batches`.
    Upload,
    /// `PATCH` to `UploadComplete`.
    Close,
    /// `PATCH` to `Aborted`.
    Abort,
    /// `DELETE`.
    Delete,
}

/// How an API reads the state a `PATCH` body names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchBody {
    /// Exactly `{"state": ...}`, the state named in any case (Data Cloud).
    OnlyStateAnyCase,
    /// The body's `state` member, other members ignored, the state named exactly as the
    /// vendor spells it (Bulk API 2.0).
    StateAsSpelled,
}

impl Action {
    /// The change a `PATCH` body read as `reading` asks for: `{"state": "UploadComplete"}`
    /// (close) or `{"state": "Aborted"}` (abort). Any other body is a 400 `INVALIDJOBSTATE`.
    pub(crate) fn patched(body: Value, reading: PatchBody) -> Result<Action, ApiError> {
        let name = match &body {
            Value::Object(members)
                if reading == PatchBody::StateAsSpelled || members.len() == 1 =>
            {
                members.get("state").and_then(Value::as_str)
            }
            _ => None,
        };
        let state = name.and_then(|name| match reading {
            PatchBody::OnlyStateAnyCase => state_named(name),
            PatchBody::StateAsSpelled => State::ALL.into_iter().find(|s| state_name(*s) == name),
        });
        match state {
            Some(State::Queued) => Ok(Action::Close),
            Some(State::Cancelled) => Ok(Action::Abort),
            _ => {
                let message = format!(
                    "a job can only be set to UploadComplete or Aborted, with the body \
                     {{\"state\": \"UploadComplete\" | \"Aborted\"}}; got {body}"
                );
                Err(own("INVALIDJOBSTATE", message))
            }
        }
    }
}

/// A refused create body (`INVALIDJOB`), the message naming the member.
pub(crate) fn invalid_job(message: impl Into<String>) -> ApiError {
    own("INVALIDJOB", message)
}

/// The members of a create body: it must be a JSON object.
pub(crate) fn create_members(body: Value) -> Result<Map<String, Value>, ApiError> {
    crate::body::object(body, invalid_job)
}

/// The string member `name` of a create body, if present (`null` is absent); refused when it
/// is not a non-empty string.
pub(crate) fn text_member(
    members: &Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match members.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
        Some(other) => Err(invalid_job(format!(
            "`{name}` must be a non-empty string, got {other}"
        ))),
    }
}

/// What a job's detail document (`GET` of one job) counts, in both APIs; serialized as Data
/// Cloud shows it, `errorMessage` only on a Failed job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Counters {
    /// `retries`: attempts after the first.
    pub(crate) retries: i64,
    /// `totalProcessingTime`: milliseconds the latest attempt ran (so far, while it runs; 0
    /// before it starts).
    #[serde(rename = "totalProcessingTime")]
    pub(crate) processing_time: i64,
    /// `numberRecordsProcessed`: the worker's progress member of that name (0 when it is not
    /// a number).
    #[serde(rename = "numberRecordsProcessed")]
    pub(crate) records_processed: i64,
    /// `numberRecordsFailed`, likewise.
    #[serde(rename = "numberRecordsFailed")]
    pub(crate) records_failed: i64,
    /// `errorMessage`: why a Failed job failed (the worker's error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error_message: Option<String>,
}

impl Counters {
    /// The counters of `job` at `now`.
    pub(crate) fn of(job: &Job, now: i64) -> Counters {
        let counter = |name: &str| {
            let value = job.progress.get(name);
            let count = value.and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)));
            count.unwrap_or(0).max(0)
        };
        Counters {
            retries: job.attempt.saturating_sub(1).max(0),
            processing_time: elapsed(job.started_at, job.finished_at, now),
            records_processed: counter("numberRecordsProcessed"),
            records_failed: counter("numberRecordsFailed"),
            error_message: job.error.clone().filter(|_| job.state == State::Failed),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_state_has_one_name_and_back() {
        for state in State::ALL {
            assert_eq!(state_named(state_name(state)), Some(state));
            assert_eq!(state_named(&state_name(state).to_lowercase()), Some(state));
        }
    }

    #[test]
    fn patch_bodies_are_read_as_each_api_reads_them() {
        let patch =
            |body: Value, reading| Action::patched(body, reading).map_err(|f| f.vendor_code);
        let lenient = PatchBody::OnlyStateAnyCase;
        let exact = PatchBody::StateAsSpelled;
        assert_eq!(
            patch(json!({"state": "uploadcomplete"}), lenient),
            Ok(Action::Close)
        );
        assert_eq!(
            patch(json!({"state": "UploadComplete"}), exact),
            Ok(Action::Close)
        );
        for reading in [lenient, exact] {
            assert_eq!(
                patch(json!({"state": "Aborted"}), reading),
                Ok(Action::Abort)
            );
            for bad in [json!({"state": "Open"}), json!({"state": 3}), json!({})] {
                assert_eq!(
                    patch(bad.clone(), reading),
                    Err(Some("INVALIDJOBSTATE")),
                    "{bad}"
                );
            }
        }
        assert!(patch(json!({"state": "aborted"}), exact).is_err());
        let more = json!({"state": "Aborted", "object": "A"});
        assert_eq!(patch(more.clone(), exact), Ok(Action::Abort));
        assert!(patch(more, lenient).is_err());
    }

    #[test]
    fn counters_come_from_the_attempts_the_times_and_the_progress() {
        let mut job = crate::testing::job("bulk", jobstore::NewJob::new("ingest"));
        assert_eq!(Counters::of(&job, 0).processing_time, 0);
        job.attempt = 3;
        job.started_at = Some(1_000);
        job.progress = json!({"numberRecordsProcessed": 7.9, "numberRecordsFailed": "x"});
        job.error = Some("broke".into());
        let running = Counters::of(&job, 1_500);
        assert_eq!((running.retries, running.processing_time), (2, 500));
        assert_eq!((running.records_processed, running.records_failed), (7, 0));
        assert_eq!(running.error_message, None);
        (job.state, job.finished_at) = (State::Failed, Some(1_200));
        let failed = Counters::of(&job, 9_000);
        assert_eq!(failed.processing_time, 200);
        assert_eq!(failed.error_message.as_deref(), Some("broke"));
    }
}
