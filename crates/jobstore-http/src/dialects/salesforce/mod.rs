//! The fault document of Salesforce's REST APIs, `[{"errorCode": "...", "message": "..."}]`,
//! shared by the APIs modelled on them. Each API has an exhaustive table from the daemon's
//! error kinds to its codes; a refusal an API makes itself may carry a code of its own
//! ([`own`]).
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

/// The fault document of `err`: its own code if the API gave it one, else the kind's in
/// `codes`; a job not found says `not_found` (an unknown id, another tenant's job and another
/// API's job are answered alike). The status and headers are the error's.
pub(crate) fn render(
    err: &ApiError,
    codes: fn(ErrorKind) -> &'static str,
    not_found: &str,
) -> Response<ResponseBody> {
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
        error_code: err.vendor_code.unwrap_or_else(|| codes(err.kind)),
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
