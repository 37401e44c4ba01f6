//! Faults as Salesforce REST APIs render them, `[{"errorCode": "...", "message": "..."}]`,
//! 401 and 403 included. Every kind has its code ([`code`]); the dialect's own checks of a
//! request body or its Content-Type answer with the codes Salesforce gives them, and a state
//! change the core refuses is worded for what the request asked ([`Action::refuse`]).

use http::{Response, StatusCode};
use jobstore::{Error, Job};

use super::DataCloud;
use super::wire::{self, Action};
use crate::body::ResponseBody;
use crate::dialects::salesforce;
use crate::fault::{ApiError, ErrorKind, Faults};

/// The message of every 404, as Salesforce words it: an unknown id, another tenant's job and
/// a job of another API are answered alike.
pub(crate) const NOT_FOUND_MESSAGE: &str = "The requested resource does not exist";

/// The `errorCode` of each kind.
pub(crate) fn code(kind: ErrorKind) -> &'static str {
    use ErrorKind as K;
    match kind {
        K::JobNotFound | K::DefinitionNotFound | K::StepNotFound | K::RouteNotFound => "NOT_FOUND",
        K::JobAlreadyRunning
        | K::InvalidTransition
        | K::StaleLease
        | K::NotRestartable
        | K::NothingToRestart
        | K::DefinitionInvalid
        | K::DefinitionDisabled
        | K::InvalidStepTransition => "INVALIDJOBSTATE",
        K::TooManyDataBatches => "LIMIT_EXCEEDED",
        K::DataBatchTooLarge | K::BodyTooLarge => "REQUEST_TOO_LARGE",
        K::InvalidData => "INVALID_CSV",
        K::UnknownSortField | K::InvalidCursor | K::InvalidQuery => "INVALID_QUERY_PARAMETER",
        K::InvalidRequest => "INVALID_INPUT",
        K::InvalidJson => "JSON_PARSER_ERROR",
        K::IdempotencyKeyReused => "DUPLICATE_VALUE",
        K::OutcomeUnknown | K::Busy | K::ShuttingDown | K::Overloaded => "SERVER_UNAVAILABLE",
        K::Internal => "UNKNOWN_EXCEPTION",
        K::Unauthorized => "INVALID_SESSION_ID",
        K::Forbidden => "INSUFFICIENT_ACCESS",
        K::MethodNotAllowed => "METHOD_NOT_ALLOWED",
        K::BodyTimeout => "REQUEST_TIMEOUT",
        K::TooManyRequests => "REQUEST_LIMIT_EXCEEDED",
    }
}

impl Faults for DataCloud {
    /// The Salesforce document; the batch limit is a bad request here, not a conflict.
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        if err.kind == ErrorKind::TooManyDataBatches && err.status == StatusCode::CONFLICT {
            let err = err.clone().with_status(StatusCode::BAD_REQUEST);
            return salesforce::render(&err, code, NOT_FOUND_MESSAGE);
        }
        salesforce::render(err, code, NOT_FOUND_MESSAGE)
    }
}

impl Action {
    /// `err` met while doing this to `job` (as read before): a state change the core refused
    /// names the job's Data Cloud state and what the request needs; any other error is its
    /// kind's.
    pub(crate) fn refuse(self, err: Error, read: &Job) -> ApiError {
        let Error::InvalidTransition { job, from, .. } = err else {
            return err.into();
        };
        let state = match from {
            Some(from) if from == read.state => wire::state_of(read),
            from => from.map_or("(new)", wire::state_name),
        };
        let needs = match self {
            Action::Upload => "batches may be uploaded only while it is Open",
            Action::Close => "only an Open job can be set to UploadComplete",
            Action::Abort => "a finished job cannot be aborted",
            Action::Delete => {
                "only jobs in UploadComplete, JobComplete, Aborted or Failed can be deleted"
            }
        };
        ApiError::new(
            ErrorKind::InvalidTransition,
            format!("job {job} is {state}: {needs}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind is answered with a Salesforce code and its status (the batch limit as 400).
    #[test]
    fn every_kind_has_a_code_and_a_status() {
        let api = DataCloud::new(&crate::DialectConfig::default());
        for kind in ErrorKind::ALL {
            let code = code(kind);
            assert!(
                code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{code}"
            );
            let answer = api.render(&ApiError::new(kind, "x"));
            let status = if kind == ErrorKind::TooManyDataBatches {
                StatusCode::BAD_REQUEST
            } else {
                kind.status()
            };
            assert_eq!(answer.status(), status, "{kind:?}");
        }
    }

    #[test]
    fn a_refused_state_change_names_the_state_and_what_the_request_needs() {
        let dir = std::env::temp_dir().join(format!("jobstore-dc-faults-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = jobstore::Store::open(dir.join("jobs.db")).unwrap();
        let mut job = store.enqueue(jobstore::NewJob::new("ingest")).unwrap();
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
        let refused = || Error::InvalidTransition {
            job: 7,
            from: Some(jobstore::State::Queued),
            event: "upload",
        };
        let fault = Action::Upload.refuse(refused(), &job);
        assert_eq!(fault.status, StatusCode::CONFLICT);
        assert_eq!(code(fault.kind), "INVALIDJOBSTATE");
        assert_eq!(
            fault.message,
            "job 7 is UploadComplete: batches may be uploaded only while it is Open"
        );
        // A job claimed before, waiting for its retry, is InProgress.
        job.started_at = Some(job.created_at);
        let fault = Action::Upload.refuse(refused(), &job);
        assert!(
            fault.message.starts_with("job 7 is InProgress:"),
            "{}",
            fault.message
        );
        // A job that moved on since it was read is named by the state the core found.
        job.state = jobstore::State::Running;
        let fault = Action::Upload.refuse(refused(), &job);
        assert!(
            fault.message.starts_with("job 7 is UploadComplete:"),
            "{}",
            fault.message
        );
        let gone = Action::Delete.refuse(Error::JobNotFound { id: 7 }, &job);
        assert_eq!(code(gone.kind), "NOT_FOUND");
    }
}
