//! The native API's one error shape, `{"error": {"type": "...", "message": "..."}}`, and the
//! one table that maps every core error to an HTTP status and a stable type.

use http::StatusCode;
use jobstore::Error;
use serde::Serialize;

/// An error answered to a client: a status, a stable machine-readable type and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable type (`job_not_found`, `stale_lease`, ...).
    pub kind: &'static str,
    /// A readable message.
    pub message: String,
    /// Seconds after which a retry may succeed (503 answers).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// An error with a status, a type and a message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with type `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 500 `internal`: something on our side failed; the details go to the log, not the client.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// 404 for a route that does not exist.
    pub fn no_route(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            format!("no route for {path}"),
        )
    }

    /// 405 for a route that exists with other methods.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> ApiError {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )
    }

    /// The JSON body of the error.
    pub fn body(&self) -> String {
        #[derive(Serialize)]
        struct Inner<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            message: &'a str,
        }
        #[derive(Serialize)]
        struct Outer<'a> {
            error: Inner<'a>,
        }
        serde_json::to_string(&Outer {
            error: Inner {
                kind: self.kind,
                message: &self.message,
            },
        })
        .unwrap_or_else(|_| {
            r#"{"error":{"type":"internal","message":"unrenderable error"}}"#.into()
        })
    }
}

impl From<Error> for ApiError {
    /// The one table from core errors to (status, type). Internal faults are logged with their
    /// real reason and answered without it.
    fn from(err: Error) -> ApiError {
        use StatusCode as S;
        let (status, kind) = match &err {
            Error::JobNotFound { .. } => (S::NOT_FOUND, "job_not_found"),
            Error::DefinitionNotFound { .. } => (S::NOT_FOUND, "definition_not_found"),
            Error::StepNotFound { .. } => (S::NOT_FOUND, "step_not_found"),
            Error::JobAlreadyRunning { .. } => (S::CONFLICT, "job_already_running"),
            Error::InvalidTransition { .. } => (S::CONFLICT, "invalid_transition"),
            Error::StaleLease { .. } => (S::CONFLICT, "stale_lease"),
            Error::NotRestartable { .. } => (S::CONFLICT, "not_restartable"),
            Error::NothingToRestart { .. } => (S::CONFLICT, "nothing_to_restart"),
            Error::DefinitionInvalid { .. } => (S::CONFLICT, "definition_invalid"),
            Error::DefinitionDisabled { .. } => (S::CONFLICT, "definition_disabled"),
            Error::InvalidStepTransition { .. } => (S::CONFLICT, "invalid_step_transition"),
            Error::TooManyDataBatches { .. } => (S::CONFLICT, "too_many_data_batches"),
            Error::DataBatchTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "data_batch_too_large"),
            Error::DataRead(_) => (S::BAD_REQUEST, "invalid_data"),
            Error::UnknownSortField { .. } => (S::BAD_REQUEST, "unknown_sort_field"),
            Error::InvalidCursor { .. } => (S::BAD_REQUEST, "invalid_cursor"),
            Error::InvalidInput { .. } => (S::BAD_REQUEST, "invalid_request"),
            Error::IdempotencyKeyReused { .. } => {
                (S::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            Error::OutcomeUnknown(_) => (S::SERVICE_UNAVAILABLE, "outcome_unknown"),
            Error::Busy => (S::SERVICE_UNAVAILABLE, "busy"),
            Error::Closed => (S::SERVICE_UNAVAILABLE, "shutting_down"),
            Error::SchemaTooNew { .. }
            | Error::SettingNotApplied { .. }
            | Error::Sqlite(_)
            | Error::Pool(_)
            | Error::Io(_)
            | Error::Json(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        let message = if status == S::INTERNAL_SERVER_ERROR {
            log::error!("internal error: {err}");
            "internal error; the server log has the reason".to_owned()
        } else {
            if status == S::SERVICE_UNAVAILABLE {
                log::warn!("answering 503: {err}");
            }
            err.to_string()
        };
        let retry_after = (status == S::SERVICE_UNAVAILABLE).then_some(1);
        ApiError {
            status,
            kind,
            message,
            retry_after,
        }
    }
}
