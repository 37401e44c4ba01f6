//! Faults as Bulk API 2.0 renders them, `[{"errorCode": "...", "message": "..."}]`, 401 and
//! 403 included. Every kind has its code ([`code`]: the codes of every Salesforce bulk job
//! API, `dialects::salesforce::bulk`); a state change the core refuses is worded for what the
//! request asked (`BulkJobs::refuse`).

use http::Response;

use super::Bulk2;
use crate::body::ResponseBody;
use crate::dialects::salesforce::{self, bulk};
use crate::fault::{ApiError, ErrorKind, Faults};

/// The `errorCode` of each kind; a refused list parameter is `INVALID_QUERY_FILTER_OPERATOR`.
pub(crate) fn code(kind: ErrorKind) -> &'static str {
    bulk::code(kind, "INVALID_QUERY_FILTER_OPERATOR")
}

impl Faults for Bulk2 {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        salesforce::render(err, code, bulk::NOT_FOUND)
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

    /// A database out of reach is the vendor's 503, with `Retry-After`, like a busy store.
    #[test]
    fn storage_out_of_reach_is_server_unavailable() {
        let api = Bulk2::new(&crate::DialectConfig::default());
        let err = ApiError::from(jobstore::Error::Unavailable("refused".into()));
        let response = api.render(&err);
        assert_eq!(response.status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(http::header::RETRY_AFTER));
        assert_eq!(code(err.kind), "SERVER_UNAVAILABLE");
    }
}
