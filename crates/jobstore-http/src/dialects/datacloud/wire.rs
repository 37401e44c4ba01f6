//! The Data Cloud wire: the operations, the create body (checked member by member, each refusal
//! naming the member) and the job documents. The state names and the PATCH body are those of
//! every Salesforce bulk job (`dialects::salesforce::bulk`).

use jobstore::{Job, NewJob};
use serde::Serialize;
use serde_json::{Value, json};

use super::NAME;
use crate::auth::Principal;
use crate::dialects::payload_text;
use crate::dialects::salesforce::bulk::{self, Counters, create_members, invalid_job, text_member};
use crate::fault::ApiError;
use crate::time::rfc3339_millis;

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
        let operation = payload_text(job, "operation").and_then(Operation::parse);
        operation.unwrap_or(Operation::Upsert)
    }
}

/// The job a `POST /api/v1/ingest/jobs` body asks for: kind `ingest` on `queue`, open for
/// uploads, `sourceName` its source, `object` its target, all three members and `operation`
/// in its payload. The three are required; Bulk API 2.0 clients may add `contentType` (`CSV`),
/// `columnDelimiter` (`COMMA`) and `lineEnding` (`LF` or `CRLF`, both accepted anyway); any
/// other member is refused.
pub(crate) fn new_job(body: Value, principal: &Principal, queue: &str) -> Result<NewJob, ApiError> {
    let members = create_members(body)?;
    for (name, value) in &members {
        let allowed: &[&str] = match name.as_str() {
            "object" | "sourceName" | "operation" => continue,
            "contentType" => &["CSV"],
            "columnDelimiter" => &["COMMA"],
            "lineEnding" => &["LF", "CRLF"],
            other => {
                return Err(invalid_job(format!(
                    "unknown member `{other}`; a job has object, sourceName and operation"
                )));
            }
        };
        if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
            let allowed = allowed.join(" or ");
            return Err(invalid_job(format!(
                "`{name}` must be {allowed}, got {value}"
            )));
        }
    }
    let text = |name: &str| {
        text_member(&members, name)?.ok_or_else(|| {
            invalid_job(format!(
                "`{name}` is required: a job has object, sourceName and operation"
            ))
        })
    };
    let (object, source) = (text("object")?, text("sourceName")?);
    let operation = text("operation")?;
    let operation = Operation::parse(&operation).ok_or_else(|| {
        invalid_job(format!(
            "`operation` must be upsert or delete, got `{operation}`"
        ))
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
            state: bulk::state_of(job),
            content_type: "CSV",
            api_version: "v1",
            content_url: format!("api/v1/ingest/jobs/{}/batches", job.id),
        }
    }
}

/// `GET /api/v1/ingest/jobs/{id}`: the job with its counters ([`Counters`]).
#[derive(Debug, Serialize)]
pub(crate) struct JobDetail {
    #[serde(flatten)]
    info: JobInfo,
    #[serde(flatten)]
    counters: Counters,
}

impl JobDetail {
    /// The document of `job` at `now`.
    pub(crate) fn new(job: &Job, now: i64) -> JobDetail {
        let (info, counters) = (JobInfo::from(job), Counters::of(job, now));
        JobDetail { info, counters }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
