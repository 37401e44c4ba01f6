//! The API's fault document **(ours)**, in the shape of the vendor's problem documents
//! (RFC 7807): `{"type", "status", "title", "detail"}`, rendered through [`fault::respond`],
//! which adds the headers the kind calls for.

use http::Response;
use serde::Serialize;

use crate::body::ResponseBody;
use crate::fault::{self, ApiError, ErrorKind, Faults};

/// Renders every fault of the API as a problem document.
#[derive(Debug, Clone, Copy)]
pub(super) struct Problems;

/// The fault document.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    status: u16,
    title: &'static str,
    detail: &'a str,
}

impl Faults for Problems {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        let (kind, title) = code(err.kind);
        let problem = Problem {
            kind,
            status: err.status.as_u16(),
            title,
            detail: &err.message,
        };
        fault::respond(err, &problem)
    }
}

/// The problem's `type` and `title` for each kind: the daemon's stable type (the native
/// API's), and the reason phrase of the kind's status. Exhaustive, so that a new kind does not
/// compile until it is given its title here.
fn code(kind: ErrorKind) -> (&'static str, &'static str) {
    use ErrorKind as K;
    let title = match kind {
        K::JobNotFound | K::DefinitionNotFound | K::StepNotFound | K::RouteNotFound => "Not Found",
        K::JobAlreadyRunning
        | K::InvalidTransition
        | K::StaleLease
        | K::NotRestartable
        | K::NothingToRestart
        | K::DefinitionInvalid
        | K::DefinitionDisabled
        | K::InvalidStepTransition
        | K::TooManyDataBatches => "Conflict",
        K::InvalidData
        | K::UnknownSortField
        | K::InvalidCursor
        | K::InvalidRequest
        | K::InvalidQuery
        | K::InvalidJson => "Bad Request",
        K::DataBatchTooLarge | K::BodyTooLarge => "Payload Too Large",
        K::IdempotencyKeyReused => "Unprocessable Entity",
        K::OutcomeUnknown | K::Busy | K::ShuttingDown | K::Overloaded => "Service Unavailable",
        K::Internal => "Internal Server Error",
        K::Unauthorized => "Unauthorized",
        K::Forbidden => "Forbidden",
        K::MethodNotAllowed => "Method Not Allowed",
        K::BodyTimeout => "Request Timeout",
        K::TooManyRequests => "Too Many Requests",
    };
    (kind.as_str(), title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_titled_by_its_status() {
        for kind in ErrorKind::ALL {
            let (_, title) = code(kind);
            assert_eq!(Some(title), kind.status().canonical_reason(), "{kind:?}");
        }
    }
}
