//! The vendor's documents: the create request (checked against the members the vendor
//! documents) and the job it becomes, the export job document derived from a stored job, the
//! list page and the answer to a cancel.
//!
//! Everything the vendor generates is derived when a job is rendered: `destination.batchId`,
//! `requestId` and `computeGatewayJobId.exportJob` are hashes of the job's tenant, id and
//! creation time; `metrics` come from its times and from the worker's progress counters.

use jobstore::{Job, NewJob, State};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::list::page_offset;
use crate::dialects::{hex, payload_text};
use crate::fault::ApiError;
use crate::query;
use crate::time::{self, Form};

/// The kind of every export job.
const KIND: &str = "segment-export";
/// `profileInstanceId` when the request has no `x-profile-instance-id`.
const DEFAULT_PROFILE_INSTANCE: &str = "ups";
/// The longest `destination.datasetId` and `x-profile-instance-id` (they become the job's
/// target and source).
const MAX_ID_BYTES: usize = 1024;

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

/// An export job's `status`: the vendor's enumeration, no other value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Waiting for a worker.
    New,
    /// A worker runs it.
    Processing,
    /// Done.
    Succeeded,
    /// Failed, or cancelled.
    Failed,
}

/// Every vendor status with its name, in the vendor's order.
pub(super) const STATUSES: [(&str, Status); 4] = [
    ("NEW", Status::New),
    ("PROCESSING", Status::Processing),
    ("SUCCEEDED", Status::Succeeded),
    ("FAILED", Status::Failed),
];

impl Status {
    /// The vendor's status of a job in `state`.
    pub(super) fn of_state(state: State) -> Status {
        match state {
            // No export job is ever `open` (it has no upload phase); NEW is the nearest.
            State::Open | State::Queued => Status::New,
            State::Running => Status::Processing,
            State::Succeeded => Status::Succeeded,
            // Ours: the vendor has no state for a cancelled job; it did not succeed, and its
            // `errors` say it was cancelled.
            State::Failed | State::Cancelled => Status::Failed,
        }
    }

    /// The status's name.
    pub(super) fn as_str(self) -> &'static str {
        query::name_of(&STATUSES, &self)
    }
}

/// The identity headers of a create, echoed in the job and never used for access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    /// `x-gw-ims-org-id`.
    ims_org_id: Option<String>,
    /// `x-profile-instance-id`, default `ups`.
    profile_instance_id: String,
}

impl Identity {
    /// The identity headers of `headers`; 400 for one that is not visible ASCII, or a profile
    /// instance id past the limit.
    pub(super) fn from_headers(headers: &http::HeaderMap) -> Result<Identity, ApiError> {
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

/// A header's text, trimmed; `None` when absent or blank.
fn header_text(headers: &http::HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    let text = crate::app::header_text(headers, name).map_err(ApiError::bad_request)?;
    Ok(text
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned))
}

/// A checked create request: the vendor members as sent (read-only members dropped).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExportRequest {
    members: Map<String, Value>,
    dataset_id: String,
}

impl ExportRequest {
    /// The job: the request as its payload, with the identity it came with under the names the
    /// job document uses; the dataset as its target, the profile store as its source.
    pub(super) fn into_new_job(self, identity: Identity) -> NewJob {
        let mut payload = self.members;
        if let Some(org) = identity.ims_org_id {
            payload.insert("imsOrgId".into(), Value::String(org));
        }
        payload.insert(
            "profileInstanceId".into(),
            Value::String(identity.profile_instance_id.clone()),
        );
        NewJob::new(KIND)
            .source(identity.profile_instance_id)
            .target(self.dataset_id)
            .payload(Value::Object(payload))
    }
}

impl TryFrom<Value> for ExportRequest {
    type Error = ApiError;

    /// Checks the members the vendor documents. Every missing and every
    /// malformed member is named in one answer. Unknown members are kept.
    fn try_from(body: Value) -> Result<ExportRequest, ApiError> {
        let dataset_id = body
            .pointer("/destination/datasetId")
            .and_then(Value::as_str);
        let dataset_id = dataset_id.unwrap_or_default().to_owned();
        let mut members = crate::body::object(body, ApiError::bad_request)?;
        for name in READ_ONLY_MEMBERS {
            members.remove(name);
        }
        let mut check = Checker::default();
        check.members("", REQUEST, Some(&members));
        if dataset_id.len() > MAX_ID_BYTES {
            check.invalid.push(format!(
                "destination.datasetId is longer than {MAX_ID_BYTES} bytes"
            ));
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

/// What a member must be.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// A non-empty string, required: every required member of a request is one.
    Required,
    Text,
    Bool,
    Integer,
    /// An RFC 3339 date-time.
    Timestamp,
    /// An array of strings, or one string.
    Strings,
    /// An object with these members.
    Object(&'static [Member]),
    /// An array of objects, each with these members.
    Objects(&'static [Member]),
}

impl Want {
    fn fits(self, value: &Value) -> bool {
        match (self, value) {
            (Want::Required, Value::String(text)) => !text.trim().is_empty(),
            (Want::Text | Want::Strings, Value::String(_))
            | (Want::Bool, Value::Bool(_))
            | (Want::Object(_), Value::Object(_))
            | (Want::Objects(_), Value::Array(_)) => true,
            (Want::Integer, _) => value.is_i64() || value.is_u64(),
            (Want::Timestamp, Value::String(text)) => time::parse(text, Form::Strict).is_some(),
            (Want::Strings, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        }
    }

    fn described(self) -> &'static str {
        match self {
            Want::Required => "a non-empty string",
            Want::Text => "a string",
            Want::Bool => "true or false",
            Want::Integer => "an integer",
            Want::Timestamp => "an RFC 3339 timestamp such as 2018-01-01T00:00:00Z",
            Want::Strings => "an array of strings",
            Want::Object(_) => "an object",
            Want::Objects(_) => "an array",
        }
    }
}

/// A documented member: its name and what it must be.
type Member = (&'static str, Want);

/// The create request's members, as the vendor documents them.
const REQUEST: &[Member] = &[
    ("destination", Want::Object(DESTINATION)),
    ("schema", Want::Object(&[("name", Want::Required)])),
    ("fields", Want::Text),
    ("mergePolicy", Want::Object(MERGE_POLICY)),
    ("filter", Want::Object(FILTER)),
    ("additionalFields", Want::Object(ADDITIONAL_FIELDS)),
    (
        "evaluationInfo",
        Want::Object(&[("segmentation", Want::Bool)]),
    ),
];

const DESTINATION: &[Member] = &[
    ("datasetId", Want::Required),
    ("segmentPerBatch", Want::Bool),
];

const MERGE_POLICY: &[Member] = &[("id", Want::Text), ("version", Want::Integer)];

const FILTER: &[Member] = &[
    ("segments", Want::Objects(SEGMENT)),
    ("segmentQualificationTime", Want::Object(QUALIFICATION_TIME)),
    ("fromIngestTimestamp", Want::Timestamp),
    ("emptyProfiles", Want::Bool),
];

const SEGMENT: &[Member] = &[
    ("segmentId", Want::Required),
    ("segmentNs", Want::Text),
    ("status", Want::Strings),
];

const QUALIFICATION_TIME: &[Member] =
    &[("startTime", Want::Timestamp), ("endTime", Want::Timestamp)];

const ADDITIONAL_FIELDS: &[Member] = &[("eventList", Want::Object(EVENT_LIST))];

const EVENT_LIST: &[Member] = &[
    ("fields", Want::Text),
    ("filter", Want::Object(EVENT_FILTER)),
];

const EVENT_FILTER: &[Member] = &[
    ("fromIngestTimestamp", Want::Timestamp),
    ("toIngestTimestamp", Want::Timestamp),
];

/// Collects what is missing and what is malformed in a request.
#[derive(Debug, Default)]
struct Checker {
    missing: Vec<String>,
    invalid: Vec<String>,
}

impl Checker {
    /// Checks `members` of the object at path `at` (`""` at the top; `None`: absent). A
    /// member set to `null` is absent.
    fn members(&mut self, at: &str, members: &[Member], object: Option<&Map<String, Value>>) {
        for &(name, want) in members {
            let path = if at.is_empty() {
                name.to_owned()
            } else {
                format!("{at}.{name}")
            };
            let value = object.and_then(|o| o.get(name)).filter(|v| !v.is_null());
            self.member(path, want, value);
        }
    }

    /// Checks the member at `path` (`None`: absent).
    fn member(&mut self, path: String, want: Want, value: Option<&Value>) {
        match (want, value) {
            (Want::Required, None) => self.missing.push(path),
            // The required members of an absent object are missing.
            (Want::Object(inner), None) => self.members(&path, inner, None),
            (_, None) => {}
            (want, Some(value)) if !want.fits(value) => {
                self.invalid
                    .push(format!("{path} must be {}", want.described()));
            }
            (Want::Object(inner), Some(Value::Object(object))) => {
                self.members(&path, inner, Some(object));
            }
            (Want::Objects(inner), Some(Value::Array(items))) => {
                for (index, item) in items.iter().enumerate() {
                    self.member(format!("{path}[{index}]"), Want::Object(inner), Some(item));
                }
            }
            (_, Some(_)) => {}
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

/// An export job as the vendor renders it (create, GET one, list records).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ExportJob {
    /// The native id.
    id: i64,
    job_type: &'static str,
    /// The request's members, `destination` with its generated batch ids.
    #[serde(flatten)]
    request: Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ims_org_id: Option<String>,
    status: &'static str,
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
        let mut request = job.payload.as_object().cloned().unwrap_or_default();
        let text = |name| payload_text(job, name).map(str::to_owned);
        let ims_org_id = text("imsOrgId");
        let profile_instance_id =
            text("profileInstanceId").unwrap_or_else(|| DEFAULT_PROFILE_INSTANCE.to_owned());
        for name in READ_ONLY_MEMBERS {
            request.remove(name);
        }
        let segments = job.payload.pointer("/filter/segments");
        let segments = segments.and_then(Value::as_array).into_iter().flatten();
        if let Some(Value::Object(destination)) = request.get_mut("destination") {
            // The vendor's default when the request does not say.
            let per_batch = destination.get("segmentPerBatch") == Some(&Value::Bool(true));
            destination.insert("segmentPerBatch".into(), Value::Bool(per_batch));
            destination.insert("batchId".into(), batch_id(job, "batch", 0));
            if per_batch {
                let batches = segments.enumerate().filter_map(|(index, segment)| {
                    let mut batch = segment.as_object()?.clone();
                    batch.insert("batchId".into(), batch_id(job, "segment-batch", index));
                    Some(Value::Object(batch))
                });
                destination.insert("batches".into(), Value::Array(batches.collect()));
            }
        }
        let error = |code, msg: &str| {
            let call_stack = String::new();
            vec![ExportError {
                code,
                msg: msg.to_owned(),
                call_stack,
            }]
        };
        let errors = match job.state {
            State::Failed => error(
                "unknown",
                job.error.as_deref().unwrap_or("Export job failed"),
            ),
            State::Cancelled => error("cancelled", "Export job was cancelled"),
            _ => Vec::new(),
        };
        let progress = |name| job.progress.get(name);
        let by_namespace = progress("exportedProfileByNamespaceCounter")
            .and_then(Value::as_object)
            .map(|counts| {
                let counts = counts.iter().filter(|(_, count)| count.is_u64());
                counts
                    .map(|(name, count)| (name.clone(), count.clone()))
                    .collect()
            });
        ExportJob {
            id: job.id,
            job_type: "BATCH",
            request,
            ims_org_id,
            status: Status::of_state(job.state).as_str(),
            profile_instance_id,
            errors,
            metrics: Metrics {
                total_time: Span::new(job.created_at, job.finished_at),
                profile_export_time: job
                    .started_at
                    .map(|start| Span::new(start, job.finished_at)),
                total_exported_profile_counter: progress("totalExportedProfileCounter")
                    .and_then(Value::as_u64),
                exported_profile_by_namespace_counter: by_namespace,
            },
            compute_gateway_job_id: ComputeGatewayJobId {
                export_job: job
                    .started_at
                    .map(|_| uuid(&digest(job, "export", 0)))
                    .unwrap_or_default(),
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

/// A batch id: 32 hex digits.
fn batch_id(job: &Job, what: &str, index: usize) -> Value {
    Value::String(hex(&digest(job, what, index)[..16]))
}

/// A version-4-shaped UUID from hash bytes.
fn uuid(bytes: &[u8; 32]) -> String {
    let mut b = [0_u8; 16];
    b.copy_from_slice(&bytes[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut text = hex(&b);
    for at in [20, 16, 12, 8] {
        text.insert(at, '-');
    }
    text
}

/// A page of the list.
#[derive(Debug, Serialize)]
pub(super) struct ExportJobPage {
    records: Vec<ExportJob>,
    page: PageInfo,
    link: Link,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    sort_field: &'static str,
    sort: &'static str,
    /// The offset of the page's last record: `{creationTimeMs}_{id}`.
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
    /// The page of `jobs` in the order named by `sort_field` and `sort`, followed by `next`.
    /// Its `pageOffset` is the offset of its last record, which asks for the page after it
    /// (`""` when the page is empty).
    pub(super) fn new(
        jobs: &[Job],
        (sort_field, sort): (&'static str, &'static str),
        next: String,
    ) -> ExportJobPage {
        ExportJobPage {
            records: jobs.iter().map(ExportJob::from).collect(),
            page: PageInfo {
                sort_field,
                sort,
                page_offset: jobs.last().map(page_offset).unwrap_or_default(),
                page_size: jobs.len(),
            },
            link: Link { next },
        }
    }
}

/// The answer to a DELETE that cancels.
#[derive(Debug, Serialize)]
pub(super) struct CancelAnswer {
    status: bool,
    message: &'static str,
}

/// The one answer to a DELETE that cancels.
pub(super) const CANCELLING: CancelAnswer = CancelAnswer {
    status: true,
    message: "Export job has been marked for cancelling",
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::says;
    use serde_json::json;

    #[test]
    fn every_state_has_a_status_and_every_status_a_state() {
        let shown: Vec<Status> = State::ALL.into_iter().map(Status::of_state).collect();
        for (name, status) in STATUSES {
            assert!(shown.contains(&status), "{name}");
            assert_eq!(status.as_str(), name);
        }
        assert_eq!(Status::of_state(State::Cancelled), Status::Failed);
    }

    #[test]
    fn every_missing_member_is_named() {
        let err = ExportRequest::try_from(json!({})).unwrap_err();
        says(&err, "destination.datasetId");
        says(&err, "schema.name");
        let err = ExportRequest::try_from(json!({"destination": 3, "schema": {}})).unwrap_err();
        says(&err, "destination must be an object");
        says(&err, "missing required members: schema.name");
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

    #[test]
    fn timestamps_are_strict_rfc3339() {
        let request = |at: &str| {
            ExportRequest::try_from(json!({
                "destination": {"datasetId": "d"},
                "schema": {"name": "s"},
                "filter": {"segmentQualificationTime": {"startTime": at}},
            }))
        };
        for good in [
            "2018-01-01T00:00:00Z",
            "2018-01-01T00:00:00.123Z",
            "2018-01-01t23:59:60+02:00",
        ] {
            assert!(request(good).is_ok(), "{good}");
        }
        for bad in [
            "2018-01-01",
            "2018-13-01T00:00:00Z",
            "2018-02-30T00:00:00Z",
            "2018-01-01T00:00:00",
            "2018-01-01T00:00:00+0200",
            "2018-01-01T00:00:00Zjunk",
            "ü018-01-01T00:00:00Z",
        ] {
            let named = "filter.segmentQualificationTime.startTime must be an RFC 3339";
            says(&request(bad).unwrap_err(), named);
        }
    }
}
