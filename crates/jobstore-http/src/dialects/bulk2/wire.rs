//! The Bulk API 2.0 wire: the API version in the path, the operations, the create bodies
//! (checked member by member, each refusal naming the member) and the job documents. The state
//! names and the PATCH body are those of every Salesforce bulk job
//! (`dialects::salesforce::bulk`).

use jobstore::{Job, NewJob};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::NAME;
use crate::auth::Principal;
use crate::dialects::csv::{CsvRules, LineEnding};
use crate::dialects::payload_text;
use crate::dialects::salesforce::bulk::{self, Counters, create_members, invalid_job, text_member};
use crate::fault::ApiError;
use crate::time::millis_offset;

/// The oldest API version that has Bulk API 2.0 jobs at these paths.
const FIRST_VERSION: u32 = 41;

/// The API version a path segment names (`v58.0`), as its number; `None` for anything else or
/// a version before 41.0.
pub(crate) fn version(segment: &str) -> Option<f64> {
    let (major, minor) = crate::router::version(segment, '.', 3, 1)?;
    (major >= FIRST_VERSION).then(|| f64::from(major) + f64::from(minor) / 10.0)
}

/// The operations of ingest jobs.
const OPERATIONS: [&str; 5] = ["insert", "update", "upsert", "delete", "hardDelete"];

/// The column delimiters: their names and bytes.
const DELIMITERS: [(&str, u8); 6] = [
    ("COMMA", b','),
    ("SEMICOLON", b';'),
    ("PIPE", b'|'),
    ("TAB", b'\t'),
    ("CARET", b'^'),
    ("BACKQUOTE", b'`'),
];

/// `name`, one of `allowed` (case-sensitive, as the vendor's enumerations), or `default`.
fn choice(
    members: &Map<String, Value>,
    name: &str,
    allowed: &[&'static str],
    default: &'static str,
) -> Result<&'static str, ApiError> {
    let Some(given) = text_member(members, name)? else {
        return Ok(default);
    };
    allowed
        .iter()
        .find(|choice| **choice == given)
        .copied()
        .ok_or_else(|| {
            invalid_job(format!(
                "`{name}` must be {}, got `{given}`",
                allowed.join(", ")
            ))
        })
}

/// The members shared by ingest and query jobs: `contentType`, `columnDelimiter`,
/// `lineEnding`, answered as the payload members of the same names.
fn format_members(members: &Map<String, Value>) -> Result<Map<String, Value>, ApiError> {
    let names = DELIMITERS.map(|(name, _)| name);
    let mut out = Map::new();
    choice(members, "contentType", &["CSV"], "CSV")?;
    out.insert(
        "columnDelimiter".into(),
        json!(choice(members, "columnDelimiter", &names, "COMMA")?),
    );
    out.insert(
        "lineEnding".into(),
        json!(choice(members, "lineEnding", &["LF", "CRLF"], "LF")?),
    );
    Ok(out)
}

fn refuse_unknown(members: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match members.keys().find(|name| !known.contains(&name.as_str())) {
        Some(other) => Err(invalid_job(format!(
            "unknown member `{other}`; a job has {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The job a `POST …/jobs/ingest` body asks for: kind `ingest` on `queue`, open for uploads,
/// its `object` the target, every member in the payload with the API version.
pub(crate) fn new_ingest(
    body: Value,
    principal: &Principal,
    queue: &str,
    version: f64,
) -> Result<NewJob, ApiError> {
    let members = create_members(body)?;
    refuse_unknown(
        &members,
        &[
            "object",
            "operation",
            "externalIdFieldName",
            "columnDelimiter",
            "lineEnding",
            "contentType",
            "assignmentRuleId",
        ],
    )?;
    let object = text_member(&members, "object")?
        .ok_or_else(|| invalid_job("`object` is required: the sObject the records go to"))?;
    let operation = text_member(&members, "operation")?.ok_or_else(|| {
        invalid_job("`operation` is required: insert, update, upsert, delete or hardDelete")
    })?;
    let operation = OPERATIONS
        .iter()
        .find(|op| **op == operation)
        .ok_or_else(|| {
            invalid_job(format!(
                "`operation` must be {}, got `{operation}`",
                OPERATIONS.join(", ")
            ))
        })?;
    let external = text_member(&members, "externalIdFieldName")?;
    if *operation == "upsert" && external.is_none() {
        return Err(invalid_job(
            "`externalIdFieldName` is required for an upsert: the field that matches records",
        ));
    }
    let mut payload = format_members(&members)?;
    payload.insert("object".into(), json!(object));
    payload.insert("operation".into(), json!(operation));
    payload.insert("apiVersion".into(), json!(version));
    if let Some(external) = external {
        payload.insert("externalIdFieldName".into(), json!(external));
    }
    if let Some(rule) = text_member(&members, "assignmentRuleId")? {
        payload.insert("assignmentRuleId".into(), json!(rule));
    }
    Ok(NewJob::new("ingest")
        .queue(queue)
        .dialect(NAME)
        .upload(true)
        .name(format!("{operation} {object}"))
        .target(object)
        .created_by(principal.name.clone())
        .payload(Value::Object(payload)))
}

/// The job a `POST …/jobs/query` body asks for: kind `query` on `queue`, queued for a worker
/// at once (it has no uploads), its SOQL `query` in the payload for the worker to run, its
/// target the object the query reads (the word after `FROM`).
pub(crate) fn new_query(
    body: Value,
    principal: &Principal,
    queue: &str,
    version: f64,
) -> Result<NewJob, ApiError> {
    let members = create_members(body)?;
    refuse_unknown(
        &members,
        &[
            "operation",
            "query",
            "columnDelimiter",
            "lineEnding",
            "contentType",
        ],
    )?;
    let operation = choice(&members, "operation", &["query", "queryAll"], "query")?;
    let query = text_member(&members, "query")?
        .ok_or_else(|| invalid_job("`query` is required: the SOQL query the job runs"))?;
    let object = soql_object(&query).ok_or_else(|| {
        invalid_job(format!(
            "`query` must be a SOQL SELECT … FROM <object> query, got `{query}`"
        ))
    })?;
    let mut payload = format_members(&members)?;
    payload.insert("object".into(), json!(object));
    payload.insert("operation".into(), json!(operation));
    payload.insert("query".into(), json!(query));
    payload.insert("apiVersion".into(), json!(version));
    Ok(NewJob::new("query")
        .queue(queue)
        .dialect(NAME)
        .name(format!("{operation} {object}"))
        .target(object)
        .created_by(principal.name.clone())
        .payload(Value::Object(payload)))
}

/// The object a SOQL query reads: the word after its first `FROM`, if it starts with SELECT.
fn soql_object(query: &str) -> Option<String> {
    let mut words = query.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("select") {
        return None;
    }
    words.find(|word| word.eq_ignore_ascii_case("from"))?;
    let object = words.next()?;
    let valid = object
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    valid.then(|| object.to_owned())
}

/// The rules a batch of `job` is checked by: a header row, the job's delimiter and line end.
pub(crate) fn csv_rules(job: &Job) -> CsvRules {
    let delimiter = payload_text(job, "columnDelimiter");
    let delimiter = DELIMITERS
        .iter()
        .find(|(name, _)| Some(*name) == delimiter)
        .map_or(b',', |(_, byte)| *byte);
    let line_ending = match payload_text(job, "lineEnding") {
        Some("CRLF") => LineEnding::Crlf,
        _ => LineEnding::Lf,
    };
    CsvRules {
        header: true,
        delimiter,
        line_ending,
    }
}

/// The API version a job was created with (as its payload holds it).
fn api_version(job: &Job) -> f64 {
    job.payload
        .get("apiVersion")
        .and_then(Value::as_f64)
        .unwrap_or(f64::from(FIRST_VERSION))
}

/// The string member `name` of the job's payload, or `default`.
fn payload_or(job: &Job, name: &str, default: &str) -> String {
    payload_text(job, name).unwrap_or(default).to_owned()
}

/// An ingest job as create, PATCH and list answer it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobInfo {
    id: String,
    operation: String,
    object: String,
    created_by_id: String,
    created_date: String,
    system_modstamp: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_id_field_name: Option<String>,
    concurrency_mode: &'static str,
    content_type: &'static str,
    api_version: f64,
    job_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_url: Option<String>,
    line_ending: String,
    column_delimiter: String,
}

impl From<&Job> for JobInfo {
    fn from(job: &Job) -> JobInfo {
        let version = api_version(job);
        let ingest = job.kind == "ingest";
        JobInfo {
            id: job.id.to_string(),
            operation: payload_or(job, "operation", "insert"),
            object: job.target.clone(),
            created_by_id: job.created_by.clone(),
            created_date: millis_offset(job.created_at),
            system_modstamp: millis_offset(job.updated_at),
            state: bulk::state_of(job),
            external_id_field_name: payload_text(job, "externalIdFieldName").map(str::to_owned),
            concurrency_mode: "Parallel",
            content_type: "CSV",
            api_version: version,
            job_type: super::list::job_type(&job.kind),
            content_url: ingest
                .then(|| format!("services/data/v{version:.1}/jobs/ingest/{}/batches", job.id)),
            line_ending: payload_or(job, "lineEnding", "LF"),
            column_delimiter: payload_or(job, "columnDelimiter", "COMMA"),
        }
    }
}

/// `GET …/jobs/ingest/{id}`: the job with its counters ([`Counters`]), every one always
/// present.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobDetail {
    #[serde(flatten)]
    info: JobInfo,
    retries: i64,
    total_processing_time: i64,
    /// The total processing time again.
    api_active_processing_time: i64,
    /// 0: no Apex runs here.
    apex_processing_time: i64,
    number_records_processed: i64,
    number_records_failed: i64,
    /// `null` but on a Failed job.
    error_message: Option<String>,
}

impl JobDetail {
    /// The document of `job` at `now`.
    pub(crate) fn new(job: &Job, now: i64) -> JobDetail {
        let counters = Counters::of(job, now);
        JobDetail {
            info: JobInfo::from(job),
            retries: counters.retries,
            total_processing_time: counters.processing_time,
            api_active_processing_time: counters.processing_time,
            apex_processing_time: 0,
            number_records_processed: counters.records_processed,
            number_records_failed: counters.records_failed,
            error_message: counters.error_message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_41_on() {
        assert_eq!(version("v58.0"), Some(58.0));
        assert_eq!(version("v41.0"), Some(41.0));
        for bad in ["v40.0", "58.0", "v58", "v58.00", "vx.0", "v58.", "walk"] {
            assert_eq!(version(bad), None, "{bad}");
        }
    }

    #[test]
    fn bodies_are_checked_member_by_member() {
        let principal = Principal::anonymous_local();
        let create = |body: Value| new_ingest(body, &principal, "q", 58.0);
        let job = create(json!({"object": "Account", "operation": "upsert",
            "externalIdFieldName": "Ext__c", "columnDelimiter": "PIPE", "lineEnding": "CRLF"}));
        let payload = job.ok().map(|job| job.payload);
        assert_eq!(
            payload,
            Some(
                json!({"object": "Account", "operation": "upsert", "apiVersion": 58.0,
                "externalIdFieldName": "Ext__c", "columnDelimiter": "PIPE", "lineEnding": "CRLF"})
            )
        );
        for bad in [
            json!([]),
            json!({"operation": "insert"}),
            json!({"object": "A", "operation": "merge"}),
            json!({"object": "A", "operation": "upsert"}),
            json!({"object": "A", "operation": "insert", "columnDelimiter": "COLON"}),
            json!({"object": "A", "operation": "insert", "lineEnding": "CR"}),
            json!({"object": "A", "operation": "insert", "contentType": "JSON"}),
            json!({"object": "A", "operation": "insert", "x": 1}),
        ] {
            let code = create(bad.clone()).err().map(|f| f.vendor_code);
            assert_eq!(code, Some(Some("INVALIDJOB")), "{bad}");
        }
    }

    #[test]
    fn query_jobs_name_their_object() {
        let principal = Principal::anonymous_local();
        let create = |body: Value| new_query(body, &principal, "q", 58.0);
        let job = create(json!({"operation": "queryAll",
            "query": "SELECT Id, Name FROM Account WHERE Name != 'x'"}));
        let job = job
            .ok()
            .map(|job| (job.target, job.kind, job.payload["operation"].clone()));
        assert_eq!(
            job,
            Some(("Account".to_owned(), "query".to_owned(), json!("queryAll")))
        );
        for bad in [
            json!({"operation": "query"}),
            json!({"operation": "select", "query": "SELECT Id FROM A"}),
            json!({"query": "DELETE FROM A"}),
            json!({"query": "SELECT Id"}),
            json!({"query": "SELECT Id FROM A", "object": "A"}),
        ] {
            let code = create(bad.clone()).err().map(|f| f.vendor_code);
            assert_eq!(code, Some(Some("INVALIDJOB")), "{bad}");
        }
    }
}
