//! Faults as Salesforce REST APIs render them, `[{"errorCode": "...", "message": "..."}]`,
//! 401 and 403 included. Every kind has its code (those of every Salesforce bulk job API,
//! `dialects::salesforce::bulk::CODES`); the dialect's own checks of a request body or its
//! Content-Type answer with the codes Salesforce gives them, and a state change the core
//! refuses is worded for what the request asked (`BulkJobs::refuse`).

use http::{Response, StatusCode};

use super::DataCloud;
use crate::body::ResponseBody;
use crate::dialects::salesforce::{self, bulk};
use crate::fault::{ApiError, ErrorKind, Faults};

impl Faults for DataCloud {
    /// The Salesforce document; the batch limit is a bad request here, not a conflict.
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        let mut err = err.clone();
        if err.kind == ErrorKind::TooManyDataBatches && err.status == StatusCode::CONFLICT {
            err.status = StatusCode::BAD_REQUEST;
        }
        salesforce::render(&err, &bulk::CODES, bulk::NOT_FOUND)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind is answered with a Salesforce code and its status (the batch limit as 400), a
    /// database out of reach with the vendor's 503.
    #[test]
    fn every_kind_has_a_code_and_a_status() {
        let api = DataCloud::new(&crate::DialectConfig::default());
        crate::testing::renders_every_kind(
            |err| api.render(err),
            |kind| match kind {
                ErrorKind::TooManyDataBatches => StatusCode::BAD_REQUEST,
                kind => kind.status(),
            },
        );
        salesforce::assert_codes(&bulk::CODES);
    }
}
