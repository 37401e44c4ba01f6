//! C360 faults: `[{"errorCode": "...", "message": "..."}]`, the Salesforce REST convention,
//! with the status of the fault's kind.

use http::Response;

use super::C360;
use crate::body::ResponseBody;
use crate::dialects::salesforce;
use crate::fault::{ApiError, ErrorKind, Faults};

/// The `errorCode` of each kind of fault (Salesforce REST names).
fn code(kind: ErrorKind) -> &'static str {
    use ErrorKind as K;
    match kind {
        K::InvalidJson => "JSON_PARSER_ERROR",
        K::InvalidQuery | K::UnknownSortField | K::InvalidCursor => "INVALID_QUERY_PARAMETER",
        K::InvalidRequest | K::InvalidData => "INVALID_FIELD",
        K::Unauthorized => "INVALID_SESSION_ID",
        K::Forbidden => "INSUFFICIENT_ACCESS",
        K::JobNotFound | K::DefinitionNotFound | K::StepNotFound | K::RouteNotFound => "NOT_FOUND",
        K::MethodNotAllowed => "METHOD_NOT_ALLOWED",
        K::BodyTimeout => "REQUEST_TIMEOUT",
        K::BodyTooLarge | K::DataBatchTooLarge => "REQUEST_TOO_LARGE",
        K::JobAlreadyRunning
        | K::InvalidTransition
        | K::StaleLease
        | K::NotRestartable
        | K::NothingToRestart
        | K::DefinitionInvalid
        | K::DefinitionDisabled
        | K::InvalidStepTransition
        | K::TooManyDataBatches => "CONFLICT",
        K::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
        K::TooManyRequests => "REQUEST_LIMIT_EXCEEDED",
        K::OutcomeUnknown | K::Busy | K::StorageUnavailable | K::ShuttingDown | K::Overloaded => {
            "SERVER_UNAVAILABLE"
        }
        K::Internal => "UNKNOWN_EXCEPTION",
    }
}

/// Renders every fault of this API.
impl Faults for C360 {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        salesforce::render(err, code, "The requested job does not exist")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::DialectConfig;

    #[test]
    fn every_kind_renders_with_its_status() {
        let api = C360::new(&DialectConfig::default());
        crate::testing::renders_every_kind(&api, ErrorKind::status);
        let own = salesforce::own("REQUIRED_FIELD_MISSING", "jobType");
        assert_eq!(api.render(&own).status(), http::StatusCode::BAD_REQUEST);
        // A database out of reach is the vendor's 503, like a busy store.
        assert_eq!(code(ErrorKind::StorageUnavailable), code(ErrorKind::Busy));
        assert_eq!(code(ErrorKind::StorageUnavailable), "SERVER_UNAVAILABLE");
    }
}
