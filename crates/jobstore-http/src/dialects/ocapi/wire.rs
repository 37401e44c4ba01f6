//! The vendor's documents: the execution payload read from a `POST .../executions` body, and
//! the `job_execution` and `job_step_execution` documents rendered from a job and its steps,
//! with the mapping of the job's state to the vendor's statuses.

use std::collections::BTreeSet;

use http::{HeaderValue, Response, StatusCode, header};
use jobstore::{Job, State, Step, StepStatus, Store};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::faults::{self, Fault};
use crate::body::ResponseBody;
use crate::dialects::{hex, salesforce};
use crate::time::{elapsed, rfc3339_millis};

/// A job with what its document shows besides the job row.
pub(crate) struct ExecutionView {
    job: Job,
    steps: Vec<Step>,
    has_log: bool,
    now: i64,
}

impl ExecutionView {
    /// The execution's `_resource_state`: a hash of everything the document shows that can
    /// change. It changes whenever the execution or one of its steps does (a heartbeat
    /// included), and only then.
    pub(crate) fn resource_state(&self) -> String {
        // Debug forms: every text quoted and escaped, so no two states read the same.
        let job = &self.job;
        let mut hasher = Sha256::new();
        let times = (job.updated_at, job.started_at, job.finished_at);
        let execution = (
            job.id,
            job.state,
            times,
            job.cancel_requested_at,
            &job.error,
        );
        hasher.update(format!("{execution:?}"));
        for step in &self.steps {
            let times = (step.updated_at, step.started_at, step.finished_at);
            let texts = (&step.step_id, &step.exit_code, &step.message);
            hasher.update(format!("{:?}", (texts, step.status, times)));
        }
        hex(&hasher.finalize())
    }
}

/// Reads what the document of `job` needs.
pub(crate) fn view(store: &Store, job: Job) -> jobstore::Result<ExecutionView> {
    let steps = store.steps(job.id)?;
    let has_log = !store.log(job.id, 0, 1)?.is_empty();
    Ok(ExecutionView {
        job,
        steps,
        has_log,
        now: store.now(),
    })
}

/// The execution `id` of definition `job_id` in the caller's tenant, whichever API started it
/// (as the search finds it), else [`jobstore::Error::JobNotFound`].
pub(crate) fn execution(store: &Store, job_id: &str, id: i64) -> jobstore::Result<Job> {
    let job = store.get(id)?;
    if job.definition_id.as_deref() == Some(job_id) {
        Ok(job)
    } else {
        Err(jobstore::Error::JobNotFound { id })
    }
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

/// The execution's payload from the request document (an empty body is `{}`, and so is
/// `null`, which `sfcc-ci`'s `job.run(instance, job, null, token)` sends): a JSON object whose
/// `parameters`, when present, must be the 19.x list of `{"name", "value"}`. Other members
/// (system jobs' request documents) are kept as they are.
pub(crate) fn execution_payload(document: Value) -> Result<Value, Fault> {
    let mut members = match document {
        Value::Object(members) => members,
        Value::Null => serde_json::Map::new(),
        _ => return Err(faults::body("the request document must be a JSON object")),
    };
    if let Some(parameters) = members.remove("parameters") {
        let parameters: Vec<ParameterIn> = serde_json::from_value(parameters)
            .map_err(|err| faults::body(format!("`parameters`: {err}")))?;
        let mut normalised = Vec::with_capacity(parameters.len());
        for ParameterIn { name, value, .. } in parameters {
            if name.is_empty() || name.chars().count() > 256 {
                return Err(faults::constraint(
                    "The name of a job execution parameter must be 1 to 256 characters long.",
                ));
            }
            if value
                .as_ref()
                .is_some_and(|value| value.chars().count() > 1000)
            {
                return Err(faults::constraint(format!(
                    "The value of job execution parameter '{name}' is longer than 1000 characters."
                )));
            }
            normalised.push(json!({"name": name, "value": value}));
        }
        members.insert("parameters".to_owned(), Value::Array(normalised));
    }
    Ok(Value::Object(members))
}

/// The `status` of an execution in `state`: RUNNING while live (waiting for a worker, running,
/// or waiting for a retry), the exit code once over (a search term, and a sort key). The
/// vendor's execution is RUNNING from its creation, and a client waiting synchronously
/// (`sfcc-ci job:run -s`) polls until the status is no longer RUNNING.
pub(crate) fn status(state: State) -> &'static str {
    match state {
        State::Open | State::Queued | State::Running => "RUNNING",
        State::Succeeded => "OK",
        State::Failed => "ERROR",
        State::Cancelled => "ABORTED",
    }
}

/// The `execution_status` of an execution: `running` while live, as [`status`] is.
fn execution_status(job: &Job) -> &'static str {
    match job.state {
        State::Running if job.cancel_requested_at.is_some() => "aborting",
        State::Open | State::Queued | State::Running => "running",
        State::Succeeded | State::Failed => "finished",
        State::Cancelled => "aborted",
    }
}

/// `{"_type": "status", "code", "message"?, "status": "ok"|"error"}`.
fn exit_status(code: &str, message: Option<&str>, ok: bool) -> Value {
    present(json!({
        "_type": "status",
        "code": code,
        "message": message,
        "status": if ok { "ok" } else { "error" },
    }))
}

/// `value` without its null members: the vendor leaves out what an execution does not have.
pub(crate) fn present(mut value: Value) -> Value {
    if let Value::Object(members) = &mut value {
        members.retain(|_, member| !member.is_null());
    }
    value
}

/// The `job_execution` document, members in the vendor's order; `v` is `None` inside a
/// search result.
pub(crate) fn job_execution(view: &ExecutionView, v: Option<&str>) -> Value {
    let job = &view.job;
    let status = status(job.state);
    let error = job.error.as_ref().filter(|e| !e.is_empty());
    let ok = job.state == State::Succeeded;
    let job_id = job.definition_id.as_deref().unwrap_or_default();
    let stamp: String = rfc3339_millis(job.created_at)
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let scopes: BTreeSet<&str> = view
        .steps
        .iter()
        .map(|step| step.execution_scope.as_str())
        .filter(|scope| !scope.is_empty())
        .collect();
    let steps: Vec<Value> = view
        .steps
        .iter()
        .map(|step| step_execution(job.id, step, view.now))
        .collect();
    let exit = job
        .state
        .is_terminal()
        .then(|| exit_status(status, error.filter(|_| !ok).map(String::as_str), ok));
    present(json!({
        "_v": v,
        "_type": "job_execution",
        "_resource_state": view.resource_state(),
        "client_id": job.created_by,
        "duration": elapsed(job.started_at, job.finished_at, view.now),
        "end_time": job.finished_at.map(rfc3339_millis),
        "execution_scopes": scopes,
        "execution_status": execution_status(job),
        "exit_status": exit,
        "id": job.id.to_string(),
        "is_log_file_existing": view.has_log,
        "is_restart": job.restart_of.is_some(),
        "job_id": job_id,
        "log_file_name": format!("Job-{job_id}-{stamp}.log"),
        "modification_time": rfc3339_millis(job.updated_at),
        "parameters": parameters(&job.payload),
        "start_time": job.started_at.map(rfc3339_millis),
        "status": status,
        "step_executions": steps,
    }))
}

/// The `id` of the step at `position` of `execution`: a number of its own, as the vendor's
/// step executions have (`"41265"`), the same at every read. The Cantor pairing of the two
/// numbers: no two steps of any executions share one, and an execution's steps count up.
fn step_id(execution: i64, position: i64) -> String {
    let (a, b) = (
        u128::from(execution.unsigned_abs()),
        u128::from(position.unsigned_abs()),
    );
    ((a + b) * (a + b + 1) / 2 + b).to_string()
}

/// The `job_step_execution` document: as the worker left the step, its exit code its status
/// once finished. A finished step's `exit_status` always has a `message`, `""` when the
/// worker reported none, as every step of the vendor's sample has; `step_type_info` is `""`:
/// a definition's step has a type and no further information about it. No step is included
/// from another job, so none has an `include_steps_from_job_id`, as the vendor's steps that
/// are not included have none.
fn step_execution(execution: i64, step: &Step, now: i64) -> Value {
    let (execution_status, status, exit) = match step.status {
        StepStatus::Pending => ("pending", "PENDING".to_owned(), None),
        StepStatus::Running => ("running", "RUNNING".to_owned(), None),
        StepStatus::Ok | StepStatus::Error => {
            let ok = step.status == StepStatus::Ok;
            let code = step
                .exit_code
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| if ok { "OK" } else { "ERROR" }.to_owned());
            let message = step.message.as_deref().unwrap_or_default();
            let exit = exit_status(&code, Some(message), ok);
            ("finished", code, Some(exit))
        }
    };
    present(json!({
        "_type": "job_step_execution",
        "duration": elapsed(step.started_at, step.finished_at, now),
        "end_time": step.finished_at.map(rfc3339_millis),
        "execution_scope": step.execution_scope,
        "execution_status": execution_status,
        "exit_status": exit,
        "id": step_id(execution, step.position),
        "modification_time": rfc3339_millis(step.updated_at),
        "start_time": step.started_at.map(rfc3339_millis),
        "status": status,
        "step_description": step.description,
        "step_id": step.step_id,
        "step_type_id": step.step_type_id,
        "step_type_info": "",
    }))
}

/// The 19.x parameters kept in the payload, if the execution was given any.
fn parameters(payload: &Value) -> Option<Vec<Value>> {
    let list = payload.get("parameters")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|p| {
                Some(json!({
                    "_type": "job_execution_parameter",
                    "name": p.get("name")?.as_str()?,
                    "value": p.get("value").unwrap_or(&Value::Null),
                }))
            })
            .collect(),
    )
}

/// The `Expires` of every answer with a body, as every sample of the vendor's prints it.
const EXPIRES: &str = "Thu, 01-Jan-1970 00:00:00 GMT";

/// The `Cache-Control` of the vendor's answers.
const CACHE_CONTROL: &str = "no-cache,no-store,must-revalidate";

/// The headers of the vendor's samples on an answer with a body, faults included:
/// `Content-Type: application/json;charset=UTF-8` (as every Salesforce API says it),
/// `Expires` in the past and `Cache-Control` forbidding any cache. A 204 keeps only its own
/// headers, as the vendor's DELETE sample.
pub(crate) fn vendor_headers(response: &mut Response<ResponseBody>) {
    if response.status() == StatusCode::NO_CONTENT {
        return;
    }
    salesforce::with_charset(response);
    let headers = response.headers_mut();
    headers.insert(header::EXPIRES, HeaderValue::from_static(EXPIRES));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_ids_are_numbers_of_their_own() {
        let mut seen = BTreeSet::new();
        for execution in 1..=60 {
            let ids: Vec<u128> = (0..40)
                .filter_map(|position| step_id(execution, position).parse().ok())
                .collect();
            assert_eq!(ids.len(), 40);
            assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
            for id in ids {
                assert!(seen.insert(id), "{id} twice");
            }
        }
        assert_eq!(
            step_id(i64::MAX, 0).parse::<u128>().ok().map(|_| ()),
            Some(())
        );
    }

    #[test]
    fn documents_become_payloads() {
        let payload = |text: &str| {
            let document = serde_json::from_str(text).ok()?;
            execution_payload(document).ok()
        };
        assert_eq!(payload("{}"), Some(json!({})));
        assert_eq!(payload("null"), Some(json!({})));
        assert_eq!(
            payload(r#"{"parameters": [{"name": "A", "value": null, "_type": "x"}], "x": 1}"#),
            Some(json!({"parameters": [{"name": "A", "value": null}], "x": 1}))
        );
        for bad in [
            r#"[]"#,
            r#"{"parameters": {}}"#,
            r#"{"parameters": [{"name": "A", "value": 1}]}"#,
            r#"{"parameters": [{"name": "", "value": "v"}]}"#,
            r#"{"parameters": [{"name": "A", "other": "v"}]}"#,
        ] {
            assert_eq!(payload(bad), None, "{bad}");
        }
    }
}
