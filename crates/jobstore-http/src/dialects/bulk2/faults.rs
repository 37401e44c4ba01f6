//! Faults as Bulk API 2.0 renders them, `[{"errorCode": "...", "message": "..."}]`, 401 and
//! 403 included. Every kind has its code ([`code`]); a state change the core refuses is worded
//! for what the request asked ([`Action::refuse`]).

use http::Response;
use jobstore::{Error, Job};

use super::Bulk2;
use super::wire::{self, Action};
use crate::body::ResponseBody;
use crate::dialects::salesforce;
use crate::fault::{ApiError, ErrorKind, Faults};

/// The message of every 404: an unknown id, another tenant's job and a job of another API
/// are answered alike.
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
        K::UnknownSortField | K::InvalidCursor | K::InvalidQuery => "INVALID_QUERY_FILTER_OPERATOR",
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

impl Faults for Bulk2 {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        salesforce::render(err, code, NOT_FOUND_MESSAGE)
    }
}

impl Action {
    /// `err` met while doing this to `job` (as read before): a state change the core refused
    /// names the job's Bulk API 2.0 state and what the request needs; any other error is its
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
            Action::Upload => "data may be uploaded only while it is Open",
            Action::Close => "only an Open job can be set to UploadComplete",
            Action::Abort => "a finished job cannot be aborted",
            Action::Delete => {
                "only jobs in UploadComplete, JobComplete, Aborted or Failed can be deleted"
            }
            Action::Results => "its results are read once it is JobComplete",
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

    #[test]
    fn every_kind_has_a_code_and_its_status() {
        let api = Bulk2::new(&crate::DialectConfig::default());
        for kind in ErrorKind::ALL {
            let code = code(kind);
            assert!(
                code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{code}"
            );
            assert_eq!(
                api.render(&ApiError::new(kind, "x")).status(),
                kind.status()
            );
        }
    }
}
