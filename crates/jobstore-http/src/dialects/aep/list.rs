//! The list of export jobs: its query parameters (`limit`, `offset`, `status`), read through
//! [`crate::query`]; the store query they make; and the `offset` of the page that follows,
//! a keyset cursor on (creation time, id) that `link.next` carries.

use std::fmt::Write as _;

use jobstore::{
    Cursor, CursorValue, Direction, Job, JobPage, ListQuery, Pagination, SortField, State,
};

use super::NAME;
use super::wire::{STATUSES, Status};
use crate::fault::ApiError;
use crate::query::{self, OverMax, PageSize, Query};

/// Records per page when `limit` is not given **(ours)**.
const DEFAULT_LIMIT: u32 = 20;
/// Larger `limit`s are clamped to this (the `aepp` client asks for 1000).
const MAX_LIMIT: u32 = 1000;

/// The list query parameters, checked.
#[derive(Debug)]
pub(super) struct ListParams {
    /// Records per page.
    limit: u32,
    /// Start after this record: its creation time and id.
    offset: Option<(i64, i64)>,
    /// Any of these statuses (empty: all).
    statuses: Vec<Status>,
}

impl ListParams {
    /// Reads `limit` (larger than the maximum is clamped), `offset` and `status` (repeated,
    /// or a comma list; case-insensitive). An empty value means "not given"; any other
    /// parameter is refused **(ours)**.
    ///
    /// # Errors
    /// An [`crate::ErrorKind::InvalidQuery`] naming the parameter.
    pub(super) fn parse(raw: Option<&str>, max_page: u32) -> Result<ListParams, ApiError> {
        let mut query = Query::parse(raw)?.blank_is_absent();
        let max = MAX_LIMIT.min(max_page).max(1);
        let policy = PageSize {
            default: DEFAULT_LIMIT.min(max),
            max,
            over_max: OverMax::Clamp,
        };
        let limit = query.page_size("limit", policy)?;
        let offset = query.one("offset")?.map(|text| offset(&text)).transpose()?;
        let mut statuses = Vec::new();
        for text in query.list("status") {
            let status = query::choose("status", &text.to_ascii_uppercase(), &STATUSES)?;
            if !statuses.contains(&status) {
                statuses.push(status);
            }
        }
        query.finish()?;
        Ok(ListParams {
            limit,
            offset,
            statuses,
        })
    }

    /// The store query: export jobs only, newest first, keyset-paged on (creation time, id).
    pub(super) fn query(&self) -> ListQuery {
        let states = State::ALL
            .into_iter()
            .filter(|state| self.statuses.contains(&Status::of_state(*state)))
            .collect();
        ListQuery {
            states,
            dialects: vec![NAME.to_owned()],
            sort: Some(SortField::CreatedAt),
            direction: Direction::Desc,
            limit: Some(self.limit),
            page: Pagination::Cursor(self.offset.map(|(created_ms, id)| Cursor {
                sort: SortField::CreatedAt,
                direction: Direction::Desc,
                value: CursorValue::Integer(created_ms),
                id,
            })),
            ..ListQuery::default()
        }
    }

    /// `link.next` of `page`: the same query after its last record, `""` on the last page.
    pub(super) fn next(&self, page: &JobPage) -> String {
        let Some(last) = page.jobs.last().filter(|_| page.has_more) else {
            return String::new();
        };
        let mut link = format!(
            "/export/jobs/?limit={}&offset={}",
            self.limit,
            page_offset(last)
        );
        for status in &self.statuses {
            let _ = write!(link, "&status={}", status.as_str());
        }
        link
    }
}

/// The `offset` naming the place just after `job`: `{creationTimeMs}_{id}`, the vendor's
/// `pageOffset` of a page whose last record it is.
pub(super) fn page_offset(job: &Job) -> String {
    format!("{}_{}", job.created_at, job.id)
}

/// An `offset`: `{creationTimeMs}_{id}` of the last record of the previous page, as
/// `link.next` and `page.pageOffset` give it.
fn offset(text: &str) -> Result<(i64, i64), ApiError> {
    let number = |s: &str| {
        let digits = s.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| s.parse().ok()).flatten()
    };
    text.trim()
        .split_once('_')
        .and_then(|(ms, id)| Some((number(ms)?, number(id)?)))
        .ok_or_else(|| {
            query::invalid(format!(
                "offset must be `{{creationTimeMs}}_{{id}}` as given in link.next, got `{text}`"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<ListParams, ApiError> {
        ListParams::parse(Some(raw), 5000)
    }

    #[test]
    fn limit_defaults_to_20_and_clamps_to_1000_and_blanks_are_absent() {
        let limit = |raw: &str| parse(raw).map(|params| params.limit).ok();
        assert_eq!(limit(""), Some(20));
        assert_eq!(limit("limit=&offset=&status="), Some(20));
        assert_eq!(limit("limit=5000"), Some(1000));
        assert_eq!(
            ListParams::parse(Some("limit=50"), 30).map(|p| p.limit),
            Ok(30)
        );
        assert!(parse("limit=0").is_err());
    }

    #[test]
    fn statuses_are_case_insensitive_and_unknown_parameters_refused() {
        let params = parse("status=new,Failed&status=NEW").unwrap();
        assert_eq!(params.statuses, [Status::New, Status::Failed]);
        let err = parse("status=CANCELLED").unwrap_err();
        assert!(
            err.message.contains("NEW, PROCESSING, SUCCEEDED, FAILED"),
            "{}",
            err.message
        );
        let err = parse("start=0").unwrap_err();
        assert!(err.message.contains("`start`"), "{}", err.message);
    }

    #[test]
    fn offsets_parse_strictly() {
        assert_eq!(offset("1540974701302_96"), Ok((1_540_974_701_302, 96)));
        for bad in ["", "_", "1_", "_1", "1-2", "a_1", "1_2_3", "-1_2", "+1_2"] {
            assert!(offset(bad).is_err(), "{bad}");
        }
    }
}
