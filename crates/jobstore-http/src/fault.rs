//! The one fault seam: every refusal the daemon answers is an [`ApiError`] of a closed
//! [`ErrorKind`], made in one place — the core's errors by the exhaustive table in
//! [`ErrorKind::of`], the daemon's own (authentication, routing, bodies, load) by the code
//! that refuses. Each API then renders a kind in its vendor's body through [`Faults`], with an
//! exhaustive kind → code table of its own, so that a new kind cannot silently become a 500.
//!
//! The headers every answer of a kind carries (`Allow`, `Retry-After`,
//! `WWW-Authenticate: Bearer`) are added here, whichever API renders the body.

use http::{HeaderValue, Response, StatusCode, header};
use jobstore::Error;
use serde::Serialize;

use crate::body::{self, ResponseBody};

/// What went wrong, closed: each kind has one HTTP status and one stable native type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    // The core's refusals (see `ErrorKind::of`).
    /// No such job in the caller's tenant (and API).
    JobNotFound,
    /// No such job definition in the caller's tenant.
    DefinitionNotFound,
    /// The job has no such step.
    StepNotFound,
    /// A live job holds the unique key, or the definition is already running.
    JobAlreadyRunning,
    /// The state machine refuses the event in the job's state.
    InvalidTransition,
    /// The worker's lease is not the job's current one.
    StaleLease,
    /// The job or definition may not be restarted.
    NotRestartable,
    /// A definition has no failed or cancelled execution to restart.
    NothingToRestart,
    /// The definition cannot run as it is.
    DefinitionInvalid,
    /// The definition is disabled.
    DefinitionDisabled,
    /// A step report out of order.
    InvalidStepTransition,
    /// The job already holds the most data batches allowed.
    TooManyDataBatches,
    /// A data batch past the size limit.
    DataBatchTooLarge,
    /// A data batch whose content was refused or whose body broke off.
    InvalidData,
    /// A sort field not on the whitelist.
    UnknownSortField,
    /// A pagination cursor this store did not make.
    InvalidCursor,
    /// A value out of range or malformed in a body or path.
    InvalidRequest,
    /// A query parameter unknown, repeated, out of range or malformed.
    InvalidQuery,
    /// An idempotency key reused for a different request.
    IdempotencyKeyReused,
    /// The commit may or may not have happened (disk errors at commit).
    OutcomeUnknown,
    /// The database stayed locked by another process.
    Busy,
    /// The storage engine cannot be reached (its server down, restarting, or the connection
    /// lost); nothing was written.
    StorageUnavailable,
    /// The store is closing.
    ShuttingDown,
    /// Our fault; the reason is in the log, not the answer.
    Internal,
    // The daemon's own refusals.
    /// A body that is not the JSON asked for.
    InvalidJson,
    /// No token, or a token the daemon does not know.
    Unauthorized,
    /// The token lacks the scope the call needs.
    Forbidden,
    /// No such route.
    RouteNotFound,
    /// The route exists with other methods (the answer carries `Allow`).
    MethodNotAllowed,
    /// A request body slower than the minimum rate.
    BodyTimeout,
    /// A request body past its limit.
    BodyTooLarge,
    /// The token has too many requests in flight.
    TooManyRequests,
    /// Every connection slot is busy at a fair rate.
    Overloaded,
}

impl ErrorKind {
    /// Every kind, for the tests that check each API renders each one.
    pub const ALL: [ErrorKind; 33] = [
        ErrorKind::JobNotFound,
        ErrorKind::DefinitionNotFound,
        ErrorKind::StepNotFound,
        ErrorKind::JobAlreadyRunning,
        ErrorKind::InvalidTransition,
        ErrorKind::StaleLease,
        ErrorKind::NotRestartable,
        ErrorKind::NothingToRestart,
        ErrorKind::DefinitionInvalid,
        ErrorKind::DefinitionDisabled,
        ErrorKind::InvalidStepTransition,
        ErrorKind::TooManyDataBatches,
        ErrorKind::DataBatchTooLarge,
        ErrorKind::InvalidData,
        ErrorKind::UnknownSortField,
        ErrorKind::InvalidCursor,
        ErrorKind::InvalidRequest,
        ErrorKind::InvalidQuery,
        ErrorKind::IdempotencyKeyReused,
        ErrorKind::OutcomeUnknown,
        ErrorKind::Busy,
        ErrorKind::StorageUnavailable,
        ErrorKind::ShuttingDown,
        ErrorKind::Internal,
        ErrorKind::InvalidJson,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::RouteNotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::BodyTimeout,
        ErrorKind::BodyTooLarge,
        ErrorKind::TooManyRequests,
        ErrorKind::Overloaded,
    ];

    /// The one table from core errors to kinds. Exhaustive: a new core variant does not
    /// compile until it is given a kind here.
    pub fn of(err: &Error) -> ErrorKind {
        use ErrorKind as K;
        match err {
            Error::JobNotFound { .. } => K::JobNotFound,
            Error::DefinitionNotFound { .. } => K::DefinitionNotFound,
            Error::StepNotFound { .. } => K::StepNotFound,
            Error::JobAlreadyRunning { .. } => K::JobAlreadyRunning,
            Error::InvalidTransition { .. } => K::InvalidTransition,
            Error::StaleLease { .. } => K::StaleLease,
            Error::NotRestartable { .. } => K::NotRestartable,
            Error::NothingToRestart { .. } => K::NothingToRestart,
            Error::DefinitionInvalid { .. } => K::DefinitionInvalid,
            Error::DefinitionDisabled { .. } => K::DefinitionDisabled,
            Error::InvalidStepTransition { .. } => K::InvalidStepTransition,
            Error::TooManyDataBatches { .. } => K::TooManyDataBatches,
            Error::DataBatchTooLarge { .. } => K::DataBatchTooLarge,
            Error::DataRead(_) => K::InvalidData,
            Error::UnknownSortField { .. } => K::UnknownSortField,
            Error::InvalidCursor { .. } => K::InvalidCursor,
            Error::InvalidInput { .. } => K::InvalidRequest,
            Error::IdempotencyKeyReused { .. } => K::IdempotencyKeyReused,
            Error::OutcomeUnknown(_) => K::OutcomeUnknown,
            Error::Busy => K::Busy,
            Error::Unavailable(_) => K::StorageUnavailable,
            Error::Closed => K::ShuttingDown,
            // Every read connection stayed busy past the pool's wait.
            Error::Pool(_) => K::Overloaded,
            Error::SchemaTooNew { .. }
            | Error::SettingNotApplied { .. }
            | Error::Sqlite(_)
            | Error::Storage(_)
            | Error::Unsupported { .. }
            | Error::Io(_)
            | Error::Json(_) => K::Internal,
        }
    }

    /// The HTTP status of the kind (an API may answer another where its vendor does).
    pub fn status(self) -> StatusCode {
        use ErrorKind as K;
        use StatusCode as S;
        match self {
            K::JobNotFound | K::DefinitionNotFound | K::StepNotFound | K::RouteNotFound => {
                S::NOT_FOUND
            }
            K::JobAlreadyRunning
            | K::InvalidTransition
            | K::StaleLease
            | K::NotRestartable
            | K::NothingToRestart
            | K::DefinitionInvalid
            | K::DefinitionDisabled
            | K::InvalidStepTransition
            | K::TooManyDataBatches => S::CONFLICT,
            K::DataBatchTooLarge | K::BodyTooLarge => S::PAYLOAD_TOO_LARGE,
            K::InvalidData
            | K::UnknownSortField
            | K::InvalidCursor
            | K::InvalidRequest
            | K::InvalidQuery
            | K::InvalidJson => S::BAD_REQUEST,
            K::IdempotencyKeyReused => S::UNPROCESSABLE_ENTITY,
            K::OutcomeUnknown
            | K::Busy
            | K::StorageUnavailable
            | K::ShuttingDown
            | K::Overloaded => S::SERVICE_UNAVAILABLE,
            K::Internal => S::INTERNAL_SERVER_ERROR,
            K::Unauthorized => S::UNAUTHORIZED,
            K::Forbidden => S::FORBIDDEN,
            K::MethodNotAllowed => S::METHOD_NOT_ALLOWED,
            K::BodyTimeout => S::REQUEST_TIMEOUT,
            K::TooManyRequests => S::TOO_MANY_REQUESTS,
        }
    }

    /// The stable native type (`job_not_found`, `stale_lease`, ...).
    pub fn as_str(self) -> &'static str {
        use ErrorKind as K;
        match self {
            K::JobNotFound => "job_not_found",
            K::DefinitionNotFound => "definition_not_found",
            K::StepNotFound => "step_not_found",
            K::JobAlreadyRunning => "job_already_running",
            K::InvalidTransition => "invalid_transition",
            K::StaleLease => "stale_lease",
            K::NotRestartable => "not_restartable",
            K::NothingToRestart => "nothing_to_restart",
            K::DefinitionInvalid => "definition_invalid",
            K::DefinitionDisabled => "definition_disabled",
            K::InvalidStepTransition => "invalid_step_transition",
            K::TooManyDataBatches => "too_many_data_batches",
            K::DataBatchTooLarge => "data_batch_too_large",
            K::InvalidData => "invalid_data",
            K::UnknownSortField => "unknown_sort_field",
            K::InvalidCursor => "invalid_cursor",
            // The native API has always answered a bad query as a bad request.
            K::InvalidRequest | K::InvalidQuery => "invalid_request",
            K::IdempotencyKeyReused => "idempotency_key_reused",
            K::OutcomeUnknown => "outcome_unknown",
            K::Busy => "busy",
            K::StorageUnavailable => "storage_unavailable",
            K::ShuttingDown => "shutting_down",
            K::Internal => "internal",
            K::InvalidJson => "invalid_json",
            K::Unauthorized => "unauthorized",
            K::Forbidden => "forbidden",
            K::RouteNotFound => "route_not_found",
            K::MethodNotAllowed => "method_not_allowed",
            K::BodyTimeout => "body_timeout",
            K::BodyTooLarge => "body_too_large",
            K::TooManyRequests => "too_many_requests",
            K::Overloaded => "overloaded",
        }
    }
}

/// An error answered to a client: a kind, its status, a readable message, and the headers
/// the kind calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The HTTP status (the kind's unless an API chose its vendor's).
    pub status: StatusCode,
    /// A readable message.
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after: Option<u32>,
    /// The methods the route allows (`Allow`, on 405).
    pub allow: Option<String>,
    /// A vendor code the API chose itself for a fault it raised (rendered instead of the
    /// code its table gives the kind).
    pub vendor_code: Option<&'static str>,
}

impl ApiError {
    /// An error of `kind` with its status.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        let status = kind.status();
        ApiError {
            kind,
            status,
            message: message.into(),
            retry_after: matches!(status, StatusCode::SERVICE_UNAVAILABLE).then_some(1),
            allow: None,
            vendor_code: None,
        }
    }

    /// The same error answered with another status (a vendor's choice).
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// The same error with another message (a vendor's wording).
    pub fn says(mut self, message: impl Into<String>) -> ApiError {
        self.message = message.into();
        self
    }

    /// 400 `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidRequest, message)
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Forbidden, message)
    }

    /// 500 `internal`: the details go to the log, not the client.
    pub fn internal() -> ApiError {
        ApiError::new(
            ErrorKind::Internal,
            "internal error; the server log has the reason",
        )
    }

    /// 404 `route_not_found`.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(ErrorKind::RouteNotFound, format!("no route for {path}"))
    }

    /// 405 `method_not_allowed` with the `Allow` list.
    pub fn method_not_allowed(method: &http::Method, path: &str, allow: String) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                ErrorKind::MethodNotAllowed,
                format!("{method} is not allowed on {path}"),
            )
        }
    }

    /// The native error document, `{"error": {"type": "...", "message": "..."}}`.
    pub fn native_body(&self) -> NativeError<'_> {
        NativeError {
            error: NativeErrorInner {
                kind: self.kind.as_str(),
                message: &self.message,
            },
        }
    }
}

impl From<Error> for ApiError {
    /// A core error through the one table. Internal faults are logged with their real reason
    /// and answered without it.
    fn from(err: Error) -> ApiError {
        let kind = ErrorKind::of(&err);
        match kind.status() {
            StatusCode::INTERNAL_SERVER_ERROR => {
                log::error!("internal error: {err}");
                return ApiError::internal();
            }
            StatusCode::SERVICE_UNAVAILABLE => log::warn!("answering 503: {err}"),
            _ => {}
        }
        ApiError::new(kind, err.to_string())
    }
}

/// The native error document.
#[derive(Debug, Serialize)]
pub struct NativeError<'a> {
    error: NativeErrorInner<'a>,
}

#[derive(Debug, Serialize)]
struct NativeErrorInner<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

/// How an API renders a fault in its vendor's body. [`respond`] adds the status and headers.
pub(crate) trait Faults {
    /// The response for `err`: typically the vendor's document through [`respond`].
    fn render(&self, err: &ApiError) -> Response<ResponseBody>;
}

/// A fault's response with `document` as its JSON body: the error's status, and the headers
/// its kind calls for (`Allow`, `Retry-After`, `WWW-Authenticate: Bearer`).
pub(crate) fn respond<T: Serialize>(err: &ApiError, document: &T) -> Response<ResponseBody> {
    let mut response = body::json(err.status, document);
    decorate(err, &mut response);
    response
}

/// Adds the headers `err` calls for to `response`.
pub(crate) fn decorate(err: &ApiError, response: &mut Response<ResponseBody>) {
    *response.status_mut() = err.status;
    let headers = response.headers_mut();
    if let Some(seconds) = err.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if let Some(allow) = err
        .allow
        .as_deref()
        .and_then(|a| HeaderValue::from_str(a).ok())
    {
        headers.insert(header::ALLOW, allow);
    }
    if err.status == StatusCode::UNAUTHORIZED {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"jobstore\""),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the faults that are ours answer 500; every refusal of a caller's request is a
    /// 4xx, every refusal for load or storage a 503 with `Retry-After`.
    #[test]
    fn every_core_error_has_its_kind_and_status() {
        use jobstore::State;
        let cases: Vec<(Error, StatusCode)> = vec![
            (Error::JobNotFound { id: 1 }, StatusCode::NOT_FOUND),
            (
                Error::DefinitionNotFound { id: "d".into() },
                StatusCode::NOT_FOUND,
            ),
            (
                Error::StepNotFound {
                    job: 1,
                    step_id: "s".into(),
                },
                StatusCode::NOT_FOUND,
            ),
            (
                Error::JobAlreadyRunning {
                    unique_key: "k".into(),
                    job: 1,
                },
                StatusCode::CONFLICT,
            ),
            (
                Error::InvalidTransition {
                    job: 1,
                    from: Some(State::Succeeded),
                    event: "cancel",
                },
                StatusCode::CONFLICT,
            ),
            (
                Error::StaleLease {
                    job: 1,
                    worker: "w".into(),
                    lease_token: 2,
                },
                StatusCode::CONFLICT,
            ),
            (Error::NotRestartable { job: 1 }, StatusCode::CONFLICT),
            (
                Error::DataBatchTooLarge { limit: 1 },
                StatusCode::PAYLOAD_TOO_LARGE,
            ),
            (
                Error::DataRead(std::io::Error::other("x")),
                StatusCode::BAD_REQUEST,
            ),
            (
                Error::InvalidCursor { reason: "x".into() },
                StatusCode::BAD_REQUEST,
            ),
            (
                Error::IdempotencyKeyReused {
                    key: "k".into(),
                    job: 1,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            (Error::Busy, StatusCode::SERVICE_UNAVAILABLE),
            (Error::Closed, StatusCode::SERVICE_UNAVAILABLE),
            (
                Error::Unavailable("connection refused".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                Error::Io(std::io::Error::other("disk")),
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (err, status) in cases {
            let shown = err.to_string();
            let answer = ApiError::from(err);
            assert_eq!(answer.status, status, "{shown}");
            assert_eq!(
                answer.retry_after.is_some(),
                status == StatusCode::SERVICE_UNAVAILABLE,
                "{shown}"
            );
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                assert!(
                    !answer.message.contains("disk"),
                    "the reason stays in the log"
                );
            }
        }
    }

    #[test]
    fn native_types_are_snake_case_and_statuses_are_errors() {
        for kind in ErrorKind::ALL {
            let name = kind.as_str();
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            let status = kind.status();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn a_401_names_the_bearer_scheme_and_a_405_its_methods() {
        let mut response = body::empty(StatusCode::OK);
        decorate(&ApiError::new(ErrorKind::Unauthorized, "no"), &mut response);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenge = response.headers()[header::WWW_AUTHENTICATE].to_str().ok();
        assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
        let mut response = body::empty(StatusCode::OK);
        let refused = ApiError::method_not_allowed(&http::Method::PUT, "/x", "GET, HEAD".into());
        decorate(&refused, &mut response);
        assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
    }
}
