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

    /// Every kind is answered with a Salesforce code and its status, a database out of reach
    /// with the vendor's 503.
    #[test]
    fn every_kind_has_a_code_and_its_status() {
        let api = Bulk2::new(&crate::DialectConfig::default());
        crate::testing::renders_every_kind(&api, ErrorKind::status);
        let upper = |b: u8| b.is_ascii_uppercase() || b == b'_';
        for kind in ErrorKind::ALL {
            assert!(code(kind).bytes().all(upper), "{kind:?}");
        }
        assert_eq!(code(ErrorKind::StorageUnavailable), "SERVER_UNAVAILABLE");
    }
}
