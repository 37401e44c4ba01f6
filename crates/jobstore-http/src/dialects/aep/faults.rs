//! The API's fault document **(ours)**, in the shape of the vendor's problem documents
//! (RFC 7807): `{"type", "status", "title", "detail"}`: the type is the daemon's stable error
//! type (the native API's), the title the reason phrase of the status answered. Rendered
//! through [`fault::respond`], which adds the headers the kind calls for.

use http::Response;
use serde::Serialize;

use super::Aep;
use crate::body::ResponseBody;
use crate::fault::{self, ApiError, Faults};

/// The fault document.
#[derive(Debug, Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    status: u16,
    title: &'static str,
    detail: &'a str,
}

/// Every fault of the API is a problem document.
impl Faults for Aep {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        let problem = Problem {
            kind: err.kind.as_str(),
            status: err.status.as_u16(),
            title: err.status.canonical_reason().unwrap_or("Error"),
            detail: &err.message,
        };
        fault::respond(err, &problem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::DialectConfig;
    use crate::fault::ErrorKind;

    /// Every kind is titled by its status; a database out of reach is a 503 problem typed
    /// `storage_unavailable`.
    #[test]
    fn every_kind_is_titled_by_its_status() {
        let api = Aep::new(&DialectConfig::default());
        crate::testing::renders_every_kind(|err| api.render(err), ErrorKind::status);
        for kind in ErrorKind::ALL {
            assert!(kind.status().canonical_reason().is_some(), "{kind:?}");
        }
        assert_eq!(
            ErrorKind::StorageUnavailable.as_str(),
            "storage_unavailable"
        );
    }
}
