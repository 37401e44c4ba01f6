//! Placeholder: this dialect's module is being written.

use http::{Request, Response};
use hyper::body::Incoming;

use crate::App;
use crate::body::ResponseBody;

/// Whether `path` is one of this dialect's paths.
pub fn matches(_path: &str) -> bool {
    false
}

/// Answers one request of this dialect.
pub(crate) async fn handle(_app: &App, _request: Request<Incoming>) -> Response<ResponseBody> {
    crate::body::error(&crate::ApiError::no_route("dialect"))
}
