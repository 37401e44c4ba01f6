//! C360's wire types: job types and statuses, the create request, the job document and the
//! list envelope, with their conversions to and from core types.

use jobstore::{Job, NewJob, State};
use serde::Serialize;
use serde_json::{Map, Value};

use super::NAME;
use crate::dialects::{self, salesforce::own};
use crate::fault::ApiError;
use crate::query;
use crate::time::millis_offset;

/// The prefix a data source that is not connected must carry in GPtoFS and FStoGP bodies.
pub(super) const EXTERNAL: &str = "external://";

/// The worker phase that makes a running job UPDATE.
pub(super) const UPDATE_PHASE: &str = "update";

/// A C360 `jobType` (the job's kind in the core) and the `type` it is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct JobType(&'static str, Category);

impl JobType {
    /// Every job type: B2C Commerce to file staging, global profile hub to file staging,
    /// file staging to B2C Commerce, file staging to global profile hub, global profile hub
    /// to analytics, delete all profiles.
    pub(super) const ALL: [JobType; 6] = [
        JobType("B2CtoFS", Category::Export),
        JobType("GPtoFS", Category::Export),
        JobType("FStoB2C", Category::Load),
        JobType("FStoGP", Category::Import),
        JobType("Analytics", Category::Analytics),
        JobType("Flush", Category::Flush),
    ];

    pub(super) fn as_str(self) -> &'static str {
        self.0
    }

    fn parse(text: &str) -> Option<JobType> {
        JobType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// The job's `type`.
    pub(super) fn category(self) -> Category {
        self.1
    }

    /// Whether a data source that is not connected must carry the `external://` prefix.
    fn checks_source(self) -> bool {
        matches!(self.0, "GPtoFS" | "FStoGP")
    }
}

/// A job's `type`. Declared in alphabetical order: the order `sortBy=type` sorts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Category {
    Analytics,
    Export,
    Flush,
    Import,
    Load,
}

/// A C360 job status. Declared in alphabetical order: the order `sortBy=status` sorts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(super) enum Status {
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
    /// Every status with its name, in the order the vendor lists them.
    pub(super) const NAMES: [(&'static str, Status); 6] = [
        ("QUEUED", Status::Queued),
        ("START", Status::Start),
        ("RUNNING", Status::Running),
        ("UPDATE", Status::Update),
        ("SUCCESS", Status::Success),
        ("FAIL", Status::Fail),
    ];

    /// The status of a job in `state`, a running job taken as RUNNING (the state alone does
    /// not tell START and UPDATE apart).
    pub(super) fn of_state(state: State) -> Status {
        match state {
            // C360 jobs have no upload phase; an open job is waiting like a queued one.
            State::Open | State::Queued => Status::Queued,
            State::Running => Status::Running,
            State::Succeeded => Status::Success,
            State::Failed | State::Cancelled => Status::Fail,
        }
    }

    /// The core states a status covers.
    pub(super) fn states(self) -> &'static [State] {
        match self {
            Status::Queued => &[State::Queued, State::Open],
            Status::Start | Status::Running | Status::Update => &[State::Running],
            Status::Success => &[State::Succeeded],
            Status::Fail => &[State::Failed, State::Cancelled],
        }
    }

    fn of(job: &Job) -> Status {
        match Status::of_state(job.state) {
            Status::Running if job.heartbeat_at.is_none() => Status::Start,
            Status::Running if job.phase.as_deref() == Some(UPDATE_PHASE) => Status::Update,
            status => status,
        }
    }
}

/// A POST body: `jobType` and the members this API understands; the whole body is kept as
/// the job's payload.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CreateJobRequest {
    job_type: JobType,
    name: Option<String>,
    source: Option<String>,
    target: Option<String>,
    object: Option<String>,
    file_type: Option<String>,
    body: Map<String, Value>,
}

impl TryFrom<Value> for CreateJobRequest {
    type Error = ApiError;

    fn try_from(body: Value) -> Result<Self, ApiError> {
        let body = crate::body::object(body, |message| own("JSON_PARSER_ERROR", message))?;
        let text = |member: &str| -> Result<Option<String>, ApiError> {
            match body.get(member) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) if text.is_empty() => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(own("INVALID_FIELD", format!("{member} must be a string"))),
            }
        };
        let types = JobType::ALL.map(|t| (t.as_str(), t));
        let job_type = text("jobType")?.ok_or_else(|| {
            let valid = types.map(|(name, _)| name).join(", ");
            let message =
                format!("Required fields are missing: [jobType]; valid job types: {valid}");
            own("REQUIRED_FIELD_MISSING", message)
        })?;
        let job_type = query::choose("jobType", &job_type, &types)
            .map_err(|err| own("INVALID_FIELD", err.message))?;
        Ok(CreateJobRequest {
            job_type,
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
    pub(super) fn check_data_source(&self, connected: &[String]) -> Result<(), ApiError> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let checked = self.job_type.checks_source();
        let refusal = match source.strip_prefix(EXTERNAL) {
            Some("") => {
                format!("source `{source}`: {EXTERNAL} must be followed by a data source name")
            }
            Some(_) => return Ok(()),
            None if !checked || connected.iter().any(|c| c == source) => return Ok(()),
            None => format!(
                "source `{source}` is not a connected data source: {} jobs must name a data \
                 source that is not connected as `{EXTERNAL}{source}`",
                self.job_type.as_str()
            ),
        };
        Err(own("INVALID_DATA_SOURCE", refusal))
    }

    /// The name when the body gives none: jobType, object and file type, e.g.
    /// `GPtoFS-Account-CSV`.
    fn derived_name(&self) -> String {
        let (object, file_type) = (self.object.as_deref(), self.file_type.as_deref());
        let parts = [Some(self.job_type.as_str()), object, file_type];
        parts.into_iter().flatten().collect::<Vec<_>>().join("-")
    }
}

impl From<CreateJobRequest> for NewJob {
    /// The job without its queue and creator, which the handler adds.
    fn from(request: CreateJobRequest) -> NewJob {
        let name = request
            .name
            .clone()
            .unwrap_or_else(|| request.derived_name());
        NewJob::new(request.job_type.as_str())
            .dialect(NAME)
            .name(name)
            .source(request.source.unwrap_or_default())
            .target(request.target.unwrap_or_default())
            .payload(Value::Object(request.body))
    }
}

/// A C360 job document. The vendor answers a job's category in `jobType` (`IMPORT` for an
/// FStoGP job); `type`, the list's sort field of the same categories, carries it too. The
/// request's jobType is the job's kind, and the start of a derived name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobDocument {
    id: String,
    name: String,
    status: Status,
    #[serde(rename = "type")]
    category: Category,
    job_type: Category,
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
    type Error = ApiError;

    /// Fails for a job whose kind is not a C360 job type (a job of another API).
    fn try_from(job: &Job) -> Result<Self, ApiError> {
        let job_type = JobType::parse(&job.kind).ok_or_else(|| {
            log::error!("job {} of kind `{}` is not a C360 job", job.id, job.kind);
            ApiError::internal()
        })?;
        let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        let payload_text = |member| dialects::payload_text(job, member).and_then(non_empty);
        let status = Status::of(job);
        Ok(JobDocument {
            id: job.id.to_string(),
            name: job.name.clone(),
            status,
            category: job_type.category(),
            job_type: job_type.category(),
            source: non_empty(&job.source),
            target: non_empty(&job.target),
            object: payload_text("object"),
            file_type: payload_text("fileType"),
            created_by: job.created_by.clone(),
            created_time: millis_offset(job.created_at),
            last_modified_time: millis_offset(job.updated_at),
            start_time: job.started_at.map(millis_offset),
            end_time: job.finished_at.map(millis_offset),
            error_message: (status == Status::Fail)
                .then(|| job.error.clone())
                .flatten(),
        })
    }
}

/// The list envelope **(ours)**.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListEnvelope {
    pub(super) jobs: Vec<JobDocument>,
    pub(super) page: u64,
    pub(super) results_per_page: u32,
    pub(super) total_results: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn statuses_are_declared_in_the_order_they_sort() {
        let mut by_name = Status::NAMES;
        by_name.sort_unstable_by_key(|(name, _)| *name);
        let mut by_rank = Status::NAMES;
        by_rank.sort_unstable_by_key(|(_, status)| *status);
        assert_eq!(by_name, by_rank);
    }
}
