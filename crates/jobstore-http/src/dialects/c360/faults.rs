//! C360 faults: `[{"errorCode": "...", "message": "..."}]`, the Salesforce REST convention,
//! with the status of the fault's kind.

use http::Response;

use super::C360;
use crate::body::ResponseBody;
use crate::dialects::salesforce::{self, Codes};
use crate::fault::{ApiError, Faults};

/// The codes of the kinds C360 names its own way (Salesforce REST names).
const CODES: Codes = Codes {
    conflict: "CONFLICT",
    too_many_batches: "CONFLICT",
    invalid_request: "INVALID_FIELD",
    invalid_data: "INVALID_FIELD",
    invalid_query: "INVALID_QUERY_PARAMETER",
    key_reused: "IDEMPOTENCY_KEY_REUSED",
};

/// Renders every fault of this API.
impl Faults for C360 {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        salesforce::render(err, &CODES, "The requested job does not exist")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::DialectConfig;
    use crate::fault::ErrorKind;

    #[test]
    fn every_kind_renders_with_its_status() {
        let api = C360::new(&DialectConfig::default());
        crate::testing::renders_every_kind(|err| api.render(err), ErrorKind::status);
        let own = salesforce::own("REQUIRED_FIELD_MISSING", "jobType");
        assert_eq!(api.render(&own).status(), http::StatusCode::BAD_REQUEST);
        salesforce::assert_codes(&CODES);
    }
}
