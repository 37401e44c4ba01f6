//! The OCAPI fault document, `{"_v", "fault": {"arguments", "type", "message"}}`, for every
//! error of this API, 401 and 403 included. Each [`ErrorKind`] has the vendor's fault type
//! (and its status, where the vendor answers another) in one exhaustive table; a handler
//! that knows more gives the vendor's message, a more precise type and the arguments. The
//! status and the headers (`Allow`, `Retry-After`, `WWW-Authenticate`) come from
//! [`fault::respond`].

use http::{Response, StatusCode};
use jobstore::Error;
use serde_json::{Map, Value, json};

use crate::body::ResponseBody;
use crate::fault::{self, ApiError, ErrorKind};

/// An OCAPI fault: an error of the daemon's one fault seam, its vendor type and arguments
/// (strings, in the order given).
#[derive(Debug)]
pub(crate) struct Fault {
    error: ApiError,
    kind: &'static str,
    arguments: Vec<(&'static str, String)>,
}

impl From<ApiError> for Fault {
    /// The error with its kind's vendor type and status.
    fn from(error: ApiError) -> Fault {
        let (kind, status) = vendor(error.kind);
        Fault {
            error: error.with_status(status),
            kind,
            arguments: Vec::new(),
        }
    }
}

/// The vendor's fault type and status of each kind. Exhaustive: a new kind does not compile
/// until it is given one here. Types the vendor does not document are listed as ours in
/// `docs/dialect-ocapi.md`.
fn vendor(kind: ErrorKind) -> (&'static str, StatusCode) {
    use ErrorKind as K;
    let own = kind.status();
    let bad = StatusCode::BAD_REQUEST;
    match kind {
        // The jobs this API names are executions; its "jobs" are definitions.
        K::JobNotFound => ("JobExecutionNotFoundException", own),
        K::DefinitionNotFound => ("JobNotFoundException", own),
        K::JobAlreadyRunning => ("JobAlreadyRunningException", bad),
        K::DefinitionInvalid => ("JobInvalidException", bad),
        K::DefinitionDisabled => ("JobExecutionException", own),
        K::NotRestartable => ("JobNotRestartableException", bad),
        K::NothingToRestart => ("JobRestartException", bad),
        // The one transition this API asks for is a DELETE, refused while the job is live.
        K::InvalidTransition => ("JobExecutionNotFinishedException", StatusCode::FORBIDDEN),
        K::StepNotFound | K::RouteNotFound => ("NotFoundException", own),
        K::StaleLease | K::InvalidStepTransition | K::TooManyDataBatches => {
            ("ConflictException", own)
        }
        K::IdempotencyKeyReused => ("IdempotencyKeyReusedException", own),
        K::DataBatchTooLarge | K::BodyTooLarge => ("RequestEntityTooLargeException", own),
        K::InvalidData | K::InvalidCursor | K::InvalidRequest => {
            ("ValueConstraintViolationException", own)
        }
        K::UnknownSortField => ("FieldNotSortableException", own),
        K::InvalidQuery => ("MalformedParameterException", own),
        K::InvalidJson => ("BodyDecodingException", own),
        K::OutcomeUnknown | K::Busy | K::StorageUnavailable | K::ShuttingDown | K::Overloaded => {
            ("ServiceUnavailableException", own)
        }
        K::Internal => ("InternalServerErrorException", own),
        K::Unauthorized => ("UnauthorizedException", own),
        K::Forbidden => ("ClientAccessForbiddenException", own),
        K::MethodNotAllowed => ("MethodNotAllowedException", own),
        K::BodyTimeout => ("RequestTimeoutException", own),
        K::TooManyRequests => ("TooManyRequestsException", own),
    }
}

impl Fault {
    /// A fault of `kind`.
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Fault {
        Fault::from(ApiError::new(kind, message))
    }

    /// The vendor's type, more precise than the kind's.
    pub(crate) fn typed(mut self, kind: &'static str) -> Fault {
        self.kind = kind;
        self
    }

    /// The vendor's message.
    pub(crate) fn says(mut self, message: impl Into<String>) -> Fault {
        self.error.message = message.into();
        self
    }

    /// The status the vendor answers this fault with, where it is not its kind's.
    fn status(mut self, status: StatusCode) -> Fault {
        self.error = self.error.with_status(status);
        self
    }

    /// An argument of the fault.
    pub(crate) fn arg(mut self, name: &'static str, value: impl Into<String>) -> Fault {
        self.arguments.push((name, value.into()));
        self
    }

    /// The fault document answering version `v`, with the status and headers of its error.
    pub(crate) fn render(&self, v: &str) -> Response<ResponseBody> {
        fault::respond(&self.error, &self.document(v))
    }

    /// `{"_v", "fault": {"arguments", "type", "message"}}`, members in the vendor's order.
    fn document(&self, v: &str) -> Value {
        let arguments = self.arguments.iter();
        let arguments: Map<String, Value> = arguments
            .map(|(name, value)| ((*name).to_owned(), Value::from(value.as_str())))
            .collect();
        let (kind, message) = (self.kind, &self.error.message);
        json!({"_v": v, "fault": {"arguments": arguments, "type": kind, "message": message}})
    }
}

/// `BodyDecodingException`: a body that is not the document asked for.
pub(crate) fn body(message: impl Into<String>) -> Fault {
    let message = message.into();
    Fault::new(
        ErrorKind::InvalidJson,
        format!("The request document could not be decoded: {message}"),
    )
}

/// `ValueConstraintViolationException`: a value out of bounds.
pub(crate) fn constraint(message: impl Into<String>) -> Fault {
    Fault::new(ErrorKind::InvalidRequest, message)
}

/// `IllegalHttpMethodOverrideException`: a method override the vendor does not take.
pub(crate) fn illegal_override(method: &str) -> Fault {
    Fault::new(
        ErrorKind::InvalidRequest,
        format!(
            "The HTTP method '{method}' cannot override POST: PUT, PATCH, DELETE, HEAD and \
             OPTIONS can."
        ),
    )
    .typed("IllegalHttpMethodOverrideException")
    .arg("method", method)
}

/// 415 `UnsupportedMediaTypeException`: a format other than JSON (`media`: the media type
/// or `format` value asked for).
pub(crate) fn unsupported_format(media: &str) -> Fault {
    Fault::new(
        ErrorKind::InvalidRequest,
        format!(
            "The media type '{media}' is not supported: this server reads and answers JSON \
             (application/json) only."
        ),
    )
    .typed("UnsupportedMediaTypeException")
    .arg("mediaType", media)
    .status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
}

/// A path under the Data API that names no resource.
pub(crate) fn unknown_resource(path: &str) -> Fault {
    Fault::new(
        ErrorKind::RouteNotFound,
        format!("Unknown resource '{path}'. Please provide a valid resource."),
    )
    .arg("path", path)
}

/// A version segment that is missing, malformed or before 17.4.
pub(crate) fn invalid_version(segment: &str) -> Fault {
    Fault::new(
        ErrorKind::InvalidRequest,
        format!(
            "Version '{segment}' is missing, malformed or not served: this server serves \
             v17_4 and every later version (v{{major}}_{{minor}})."
        ),
    )
    .typed("InvalidVersionException")
    .arg("version", segment)
}

/// `JobExecutionNotFoundException` for the execution `id` as the client sent it.
pub(crate) fn execution_not_found(id: &str) -> Fault {
    Fault::new(
        ErrorKind::JobNotFound,
        format!("No Job execution with ID '{id}' was found."),
    )
    .arg("executionId", id)
}

/// `ResourceStateConflictException`: a DELETE of the execution `id` naming a resource state
/// the execution is not in.
pub(crate) fn resource_state_conflict(id: &str) -> Fault {
    Fault::new(
        ErrorKind::InvalidTransition,
        format!(
            "The resource state given in the 'x-dw-resource-state' header is not the current \
             state of the Job execution with ID '{id}'."
        ),
    )
    .typed("ResourceStateConflictException")
    .status(StatusCode::CONFLICT)
}

/// A refused read or delete of the execution `id`: not found, or not finished.
pub(crate) fn about_execution(id: &str, err: ApiError) -> Fault {
    match err.kind {
        ErrorKind::JobNotFound => execution_not_found(id),
        ErrorKind::InvalidTransition => Fault::from(err)
            .says(format!(
                "The Job execution with ID '{id}' is not finished and cannot be deleted."
            ))
            .arg("executionId", id),
        _ => Fault::from(err),
    }
}

/// The core's refusal of an execution of the job (definition) `job_id`.
pub(crate) fn about_job(job_id: &str, err: Error) -> Fault {
    let the_job = |says: &str| format!("The job with ID '{job_id}' {says}");
    let (message, cause) = match &err {
        Error::DefinitionNotFound { .. } => (format!("No job with ID '{job_id}' was found."), None),
        Error::JobAlreadyRunning { job, .. } => (
            the_job(&format!("is already running (execution '{job}').")),
            None,
        ),
        Error::DefinitionInvalid { cause, .. } => (
            the_job(&format!("is invalid and cannot be executed: {cause}.")),
            Some(cause.clone()),
        ),
        Error::DefinitionDisabled { .. } => (the_job("could not be executed."), None),
        Error::NotRestartable { .. } => (the_job("does not support restarting."), None),
        Error::NothingToRestart { .. } => (
            the_job(
                "could not be restarted: its latest execution did not end in an error and was \
                 not aborted.",
            ),
            None,
        ),
        _ => return Fault::from(ApiError::from(err)),
    };
    let fault = Fault::from(ApiError::from(err)).says(message);
    let fault = fault.arg("jobId", job_id);
    match cause {
        Some(cause) => fault.arg("cause", cause),
        None => fault,
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    #[test]
    fn every_kind_has_a_vendor_type_and_an_error_status() {
        let render = |err: &ApiError| Fault::from(err.clone()).render("19.5");
        crate::testing::renders_every_kind(render, |kind| vendor(kind).1);
        for kind in ErrorKind::ALL {
            assert!(
                Fault::new(kind, "m").kind.ends_with("Exception"),
                "{kind:?}"
            );
            let status = vendor(kind).1;
            let error = status.is_client_error() || status.is_server_error();
            assert!(error, "{kind:?}");
        }
    }

    #[test]
    fn the_document_carries_version_type_message_and_arguments() {
        let fault = about_job(
            "Nightly",
            Error::DefinitionInvalid {
                definition: "Nightly".into(),
                cause: "it has no steps".into(),
            },
        );
        assert_eq!(fault.render("19.5").status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            fault.document("19.5"),
            json!({"_v": "19.5", "fault": {
                "arguments": {"jobId": "Nightly", "cause": "it has no steps"},
                "type": "JobInvalidException",
                "message": "The job with ID 'Nightly' is invalid and cannot be executed: \
                            it has no steps."}})
        );
        let busy = about_execution("7", ApiError::from(Error::Busy));
        assert_eq!(busy.kind, "ServiceUnavailableException");
        assert!(busy.arguments.is_empty());
        let down = about_job("Nightly", Error::Unavailable("refused".into()));
        assert_eq!(down.kind, "ServiceUnavailableException");
        let response = down.render("19.5");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));
    }
}
