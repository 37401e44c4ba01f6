//! The fault document of Salesforce's REST APIs, `[{"errorCode": "...", "message": "..."}]`,
//! shared by the APIs modelled on them. One exhaustive table gives the daemon's error kinds
//! their codes ([`code`]), with the codes each API names its own way ([`Codes`]); a refusal an
//! API makes itself may carry a code of its own ([`own`]).
//!
//! The two bulk ingest APIs among them, Data Cloud's and Bulk API 2.0, share more: a bulk
//! job's states, changes, counters and fault codes (`bulk`), and the calls they make on their
//! jobs (`jobs`).

pub(crate) mod bulk;
pub(crate) mod jobs;

use std::io;

use http::{HeaderValue, Response, header};
use serde::Serialize;

use crate::body::ResponseBody;
use crate::dialects::csv::CsvFault;
use crate::fault::{self, ApiError, ErrorKind};

/// A 400 that the API answers with a code of its own (`REQUIRED_FIELD_MISSING`, `INVALIDJOB`).
pub(crate) fn own(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        vendor_code: Some(code),
        ..ApiError::bad_request(message)
    }
}

/// The `errorCode`s an API names its own way; every other kind has the code all of
/// Salesforce's REST APIs give it ([`code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Codes {
    /// A move the job's (or definition's) state does not allow, a stale lease.
    pub(crate) conflict: &'static str,
    /// A job that already holds the most data batches allowed.
    pub(crate) too_many_batches: &'static str,
    /// A value out of range or malformed in a body or path.
    pub(crate) invalid_request: &'static str,
    /// A data batch whose content was refused.
    pub(crate) invalid_data: &'static str,
    /// A refused query parameter, sort field or cursor.
    pub(crate) invalid_query: &'static str,
    /// An idempotency key reused for another request.
    pub(crate) key_reused: &'static str,
}

/// The `errorCode` of `kind` in an API naming some kinds as `codes` says. Exhaustive: a new
/// kind does not compile until it is given a code, here or in [`Codes`].
pub(crate) fn code(kind: ErrorKind, codes: &Codes) -> &'static str {
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
        | K::InvalidStepTransition => codes.conflict,
        K::TooManyDataBatches => codes.too_many_batches,
        K::DataBatchTooLarge | K::BodyTooLarge => "REQUEST_TOO_LARGE",
        K::InvalidData => codes.invalid_data,
        K::UnknownSortField | K::InvalidCursor | K::InvalidQuery => codes.invalid_query,
        K::InvalidRequest => codes.invalid_request,
        K::InvalidJson => "JSON_PARSER_ERROR",
        K::IdempotencyKeyReused => codes.key_reused,
        K::OutcomeUnknown | K::Busy | K::StorageUnavailable | K::ShuttingDown | K::Overloaded => {
            "SERVER_UNAVAILABLE"
        }
        K::Internal => "UNKNOWN_EXCEPTION",
        K::Unauthorized => "INVALID_SESSION_ID",
        K::Forbidden => "INSUFFICIENT_ACCESS",
        K::MethodNotAllowed => "METHOD_NOT_ALLOWED",
        K::BodyTimeout => "REQUEST_TIMEOUT",
        K::TooManyRequests => "REQUEST_LIMIT_EXCEEDED",
    }
}

/// Asserts that `codes` gives every kind an upper-case code, and every kind answered 503 (a
/// database out of reach like a busy store) `SERVER_UNAVAILABLE`.
#[cfg(test)]
pub(crate) fn assert_codes(codes: &Codes) {
    let upper = |b: u8| b.is_ascii_uppercase() || b == b'_';
    for kind in ErrorKind::ALL {
        assert!(code(kind, codes).bytes().all(upper), "{kind:?}");
        if kind.status() == http::StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(code(kind, codes), "SERVER_UNAVAILABLE", "{kind:?}");
        }
    }
}

/// The fault document of `err`: its own code if the API gave it one, else the kind's under
/// `codes`; a job not found says `not_found` (an unknown id, another tenant's job and another
/// API's job are answered alike). The status and headers are the error's.
pub(crate) fn render(err: &ApiError, codes: &Codes, not_found: &str) -> Response<ResponseBody> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Item<'a> {
        error_code: &'a str,
        message: &'a str,
    }
    let message = match err.kind {
        ErrorKind::JobNotFound => not_found,
        _ => &err.message,
    };
    let item = Item {
        error_code: err.vendor_code.unwrap_or_else(|| code(err.kind, codes)),
        message,
    };
    fault::respond(err, &[item])
}

/// A CSV batch whose reading failed: a CSV fault names its line; otherwise the body broke off.
pub(crate) fn unreadable(err: &io::Error) -> ApiError {
    match CsvFault::of(err) {
        Some(fault) => ApiError::new(
            ErrorKind::InvalidData,
            format!("the batch is not valid CSV and was not kept: {fault}"),
        ),
        None => own(
            "CLIENTINPUTERROR",
            format!("the request body broke off; the batch was not kept: {err}"),
        ),
    }
}

/// JSON answers name their charset, as Salesforce's do: `application/json;charset=UTF-8`.
pub(crate) fn with_charset(response: &mut Response<ResponseBody>) {
    let headers = response.headers_mut();
    if headers.get(header::CONTENT_TYPE) == Some(&HeaderValue::from_static("application/json")) {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json;charset=UTF-8"),
        );
    }
}
