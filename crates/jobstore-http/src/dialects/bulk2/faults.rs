//! Faults as Bulk API 2.0 renders them, `[{"errorCode": "...", "message": "..."}]`, 401 and
//! 403 included. Every kind has its code ([`CODES`]: the codes of every Salesforce bulk job
//! API, `dialects::salesforce::bulk`); a state change the core refuses is worded for what the
//! request asked (`BulkJobs::refuse`).

use http::Response;

use super::Bulk2;
use crate::body::ResponseBody;
use crate::dialects::salesforce::{self, Codes, bulk};
use crate::fault::{ApiError, Faults};

/// The codes of every Salesforce bulk job API; a refused list parameter is
/// `INVALID_QUERY_FILTER_OPERATOR`.
const CODES: Codes = Codes {
    invalid_query: "INVALID_QUERY_FILTER_OPERATOR",
    ..bulk::CODES
};

impl Faults for Bulk2 {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        salesforce::render(err, &CODES, bulk::NOT_FOUND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::ErrorKind;

    /// Every kind is answered with a Salesforce code and its status, a database out of reach
    /// with the vendor's 503.
    #[test]
    fn every_kind_has_a_code_and_its_status() {
        let api = Bulk2::new(&crate::DialectConfig::default());
        crate::testing::renders_every_kind(|err| api.render(err), ErrorKind::status);
        salesforce::assert_codes(&CODES);
    }
}
