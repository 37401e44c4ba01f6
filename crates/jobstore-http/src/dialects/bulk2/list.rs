//! `GET …/jobs/ingest` and `GET …/jobs/query`: the vendor's filters (`isPkChunkingEnabled`,
//! `jobType`, `concurrencyMode`) and its paging (`queryLocator`, the offset of the page),
//! read through [`crate::query`] as the core's list query.

use jobstore::{Direction, ListQuery, Pagination, SortField};

use super::NAME;
use crate::fault::ApiError;
use crate::query::{self, Query};

/// Jobs per page, as the vendor pages them.
pub(crate) const PAGE: u32 = 1000;

/// A list request: the core query, and whether its filters leave no job at all.
#[derive(Debug)]
pub(crate) struct Listing {
    /// This API's jobs of the kind, oldest first, one page.
    pub(crate) query: ListQuery,
    /// The offset the page starts at.
    pub(crate) offset: u64,
    /// The filters name jobs this API never has (PK chunking, Classic or big object jobs,
    /// serial mode).
    pub(crate) none: bool,
}

/// The vendor's `jobType` of this API's jobs of `kind` (an ingest job, or a query job).
pub(crate) fn job_type(kind: &str) -> &'static str {
    if kind == "ingest" {
        "V2Ingest"
    } else {
        "V2Query"
    }
}

/// The list query of the parameters in `raw` for jobs of `kind`, `page` of them at a time.
///
/// # Errors
/// `InvalidQuery` naming the parameter: an unknown one, a bad value.
pub(crate) fn listing(raw: Option<&str>, kind: &str, page: u32) -> Result<Listing, ApiError> {
    let mut query = Query::parse(raw)?.blank_is_absent();
    let chunking = query.one("isPkChunkingEnabled")?;
    let asked_type = query.one("jobType")?;
    let mode = query.one("concurrencyMode")?;
    let offset = match query.one("queryLocator")? {
        Some(locator) => locator
            .parse::<u64>()
            .map_err(|_| query::invalid(format!("unknown queryLocator `{locator}`")))?,
        None => 0,
    };
    query.finish()?;
    let none = match chunking.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(query::invalid(format!(
                "isPkChunkingEnabled is true or false, got `{other}`"
            )));
        }
    } | match asked_type.as_deref() {
        // This list's own type; the vendor's other types name no job of it.
        None => false,
        Some(asked @ ("V2Ingest" | "V2Query" | "Classic" | "BigObjectIngest")) => {
            asked != job_type(kind)
        }
        Some(other) => {
            return Err(query::invalid(format!(
                "jobType is BigObjectIngest, Classic, V2Ingest or V2Query, got `{other}`"
            )));
        }
    } | match mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("parallel") => false,
        Some("serial") => true,
        Some(other) => {
            return Err(query::invalid(format!(
                "concurrencyMode is parallel or serial, got `{other}`"
            )));
        }
    };
    Ok(Listing {
        query: ListQuery {
            dialects: vec![NAME.to_owned()],
            kinds: vec![kind.to_owned()],
            sort: Some(SortField::Id),
            direction: Direction::Asc,
            limit: Some(page),
            page: Pagination::Offset(offset),
            ..ListQuery::default()
        },
        offset,
        none,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::ErrorKind;

    #[test]
    fn filters_and_locators() {
        let listed = listing(Some("queryLocator=2000&jobType=V2Ingest"), "ingest", PAGE).unwrap();
        assert_eq!(listed.query.page, Pagination::Offset(2000));
        assert_eq!(listed.query.kinds, ["ingest"]);
        assert!(!listed.none);
        for none in [
            "isPkChunkingEnabled=true",
            "jobType=Classic",
            "jobType=V2Query",
            "concurrencyMode=serial",
        ] {
            assert!(listing(Some(none), "ingest", PAGE).unwrap().none, "{none}");
        }
        // The query jobs' list takes its own type, and names none of the ingest jobs'.
        assert!(
            !listing(Some("jobType=V2Query"), "query", PAGE)
                .unwrap()
                .none
        );
        assert!(
            listing(Some("jobType=V2Ingest"), "query", PAGE)
                .unwrap()
                .none
        );
        for bad in [
            "queryLocator=x",
            "jobType=V1",
            "isPkChunkingEnabled=yes",
            "limit=3",
        ] {
            let kind = listing(Some(bad), "ingest", PAGE).err().map(|err| err.kind);
            assert_eq!(kind, Some(ErrorKind::InvalidQuery), "{bad}");
        }
    }
}
