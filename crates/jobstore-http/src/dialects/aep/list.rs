//! The list of export jobs: its query parameters, read through [`crate::query`]: the
//! Segmentation API's `limit`, `offset` and `status`, and the Profile API's `start`, `page` and
//! `sort` on the same path; the store query they make; the page's `pageOffset` and the
//! `link.next` that follows it.
//!
//! A page is chosen one of three ways: `offset`, a keyset cursor `{creationTimeMs}_{id}` on
//! the creation time (the vendor's `link.next`); `start`, a number of records to skip; `page`,
//! a page number counted from 0. `sort` orders by one field; the `offset` cursor only pages
//! an order by creation time.

use std::fmt::Write as _;

use jobstore::{
    Cursor, CursorValue, Direction, Job, JobPage, ListQuery, Pagination, SortField, State,
};

use super::NAME;
use super::wire::{STATUSES, Status};
use crate::fault::ApiError;
use crate::query::{self, OverMax, Query};

/// Records per page when `limit` is not given **(ours)**.
const DEFAULT_LIMIT: u32 = 20;
/// Larger `limit`s are clamped to this (the `aepp` client asks for 1000).
const MAX_LIMIT: u32 = 1000;

/// The `sort` fields: the job document's members (`creationTime` also by the name `page`
/// gives it, `createdTime`, the first: the name `page.sortField` renders) and the field each
/// sorts by.
const SORT_FIELDS: [(&str, SortField); 4] = [
    ("createdTime", SortField::CreatedAt),
    ("creationTime", SortField::CreatedAt),
    ("updateTime", SortField::UpdatedAt),
    ("id", SortField::Id),
];

/// Which page of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paging {
    /// After this record (its creation time and id); `None`: the first page.
    After(Option<(i64, i64)>),
    /// Skip this many records.
    Start(u64),
    /// This page, counted from 0.
    Page(u64),
}

/// The list query parameters, checked.
#[derive(Debug)]
pub(super) struct ListParams {
    /// Records per page.
    limit: u32,
    paging: Paging,
    /// The sort field and direction; `None`: not given (creation time, descending).
    sort: Option<(SortField, Direction)>,
    /// Any of these statuses (empty: all).
    statuses: Vec<Status>,
}

impl ListParams {
    /// Reads `limit` (larger than the maximum is clamped), one of `offset`, `start` and
    /// `page`, `sort` (`field:asc|desc`) and `status` (repeated, or a comma list;
    /// case-insensitive). An empty value means "not given"; any other parameter is refused
    /// **(ours)**, and so are the combinations that choose a page twice or page a sort the
    /// `offset` cursor does not follow.
    ///
    /// # Errors
    /// An [`crate::ErrorKind::InvalidQuery`] naming the parameter.
    pub(super) fn parse(raw: Option<&str>, max_page: u32) -> Result<ListParams, ApiError> {
        let mut query = Query::parse(raw)?.blank_is_absent();
        let max = MAX_LIMIT.min(max_page).max(1);
        let limit = query.page_size("limit", DEFAULT_LIMIT.min(max), max, OverMax::Clamp)?;
        let offset = query.one("offset")?.map(|text| offset(&text)).transpose()?;
        let start = query.int("start", 0, i64::MAX)?;
        let page = query.int("page", 0, i64::MAX)?;
        let sort = query.one("sort")?.map(|text| sort(&text)).transpose()?;
        let status = |text: &String| query::choose("status", &text.to_ascii_uppercase(), &STATUSES);
        let statuses = query::distinct(query.list("status").iter().map(status))?;
        query.finish()?;
        let paging = match (offset, start, page) {
            (offset, None, None) => Paging::After(offset),
            (None, Some(start), None) => Paging::Start(start.unsigned_abs()),
            (None, None, Some(page)) => Paging::Page(page.unsigned_abs()),
            _ => {
                return Err(query::invalid(
                    "offset, start and page each choose the page: give at most one of them",
                ));
            }
        };
        if let (Paging::After(Some(_)), Some((field, _))) = (paging, sort)
            && field != SortField::CreatedAt
        {
            return Err(query::invalid(
                "offset is a cursor on the creation time: it pages a sort by createdTime \
                 only; page another sort with start or page",
            ));
        }
        Ok(ListParams {
            limit,
            paging,
            sort,
            statuses,
        })
    }

    /// The order: the sort asked for, else creation time, newest first.
    fn order(&self) -> (SortField, Direction) {
        self.sort.unwrap_or((SortField::CreatedAt, Direction::Desc))
    }

    /// The store query: export jobs only, in the order asked for; keyset-paged on (creation
    /// time, id) after an `offset`, else offset-paged.
    pub(super) fn query(&self) -> ListQuery {
        let states = State::ALL
            .into_iter()
            .filter(|state| self.statuses.contains(&Status::of_state(*state)))
            .collect();
        let (sort, direction) = self.order();
        let page = match self.paging {
            Paging::After(after) => Pagination::Cursor(after.map(|(created_ms, id)| Cursor {
                sort,
                direction,
                value: CursorValue::Integer(created_ms),
                id,
            })),
            Paging::Start(start) => Pagination::Offset(start),
            Paging::Page(page) => Pagination::Offset(page.saturating_mul(u64::from(self.limit))),
        };
        ListQuery {
            states,
            dialects: vec![NAME.to_owned()],
            sort: Some(sort),
            direction,
            limit: Some(self.limit),
            page,
            ..ListQuery::default()
        }
    }

    /// `page.sortField` and `page.sort`.
    pub(super) fn sort_names(&self) -> (&'static str, &'static str) {
        let (sort, direction) = self.order();
        (
            query::name_of(&SORT_FIELDS, &sort),
            query::name_of(&query::DIRECTIONS, &direction),
        )
    }

    /// `link.next` of `page`: the same query for the page after it, `""` on the last page.
    /// An order by creation time continues after the page's last record (`offset`), however
    /// this page was chosen; another order continues with `start` or `page`, as asked.
    pub(super) fn next(&self, page: &JobPage) -> String {
        let Some(last) = page.jobs.last().filter(|_| page.has_more) else {
            return String::new();
        };
        let mut link = format!("/export/jobs/?limit={}", self.limit);
        let seen = u64::try_from(page.jobs.len()).unwrap_or(u64::MAX);
        let _ = match (self.order().0, self.paging) {
            (SortField::CreatedAt, _) => write!(link, "&offset={}", page_offset(last)),
            (_, Paging::Page(page)) => write!(link, "&page={}", page.saturating_add(1)),
            (_, Paging::Start(start)) => write!(link, "&start={}", start.saturating_add(seen)),
            // Another order is never paged by `offset`: this was its first page.
            (_, Paging::After(_)) => write!(link, "&start={seen}"),
        };
        if self.sort.is_some() {
            let (field, direction) = self.sort_names();
            let _ = write!(link, "&sort={field}:{direction}");
        }
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

/// A `sort`: one field, optionally `:asc` or `:desc` (descending when not given **(ours)**).
fn sort(text: &str) -> Result<(SortField, Direction), ApiError> {
    let (field, direction) = match text.trim().split_once(':') {
        Some((field, direction)) => (field, Some(direction)),
        None => (text.trim(), None),
    };
    if field.contains(',') || direction.is_some_and(|d| d.contains(',')) {
        return Err(query::invalid(format!(
            "sort: one field as `field:asc` or `field:desc`, got `{text}`"
        )));
    }
    query::sort("sort", field, direction, &SORT_FIELDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::says;

    fn parse(raw: &str) -> Result<ListParams, ApiError> {
        ListParams::parse(Some(raw), 5000)
    }

    #[test]
    fn limit_defaults_to_20_and_clamps_to_1000_and_blanks_are_absent() {
        let limit = |raw: &str| parse(raw).map(|params| params.limit).ok();
        assert_eq!(limit(""), Some(20));
        assert_eq!(limit("limit=&offset=&status=&start=&page=&sort="), Some(20));
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
        says(&err, "NEW, PROCESSING, SUCCEEDED, FAILED");
        says(&parse("orderBy=id").unwrap_err(), "`orderBy`");
    }

    #[test]
    fn offsets_parse_strictly() {
        assert_eq!(offset("1540974701302_96"), Ok((1_540_974_701_302, 96)));
        for bad in ["", "_", "1_", "_1", "1-2", "a_1", "1_2_3", "-1_2", "+1_2"] {
            assert!(offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn start_page_and_sort_choose_offset_pages_in_any_order() {
        let query = |raw: &str| parse(raw).map(|p| p.query());
        let started = query("start=4&limit=10").unwrap();
        assert_eq!(started.page, Pagination::Offset(4));
        let paged = query("page=2&limit=10&sort=updateTime:asc").unwrap();
        assert_eq!(paged.page, Pagination::Offset(20));
        assert_eq!(
            (paged.sort, paged.direction),
            (Some(SortField::UpdatedAt), Direction::Asc)
        );
        assert_eq!(parse("sort=id").map(|p| p.sort_names()), Ok(("id", "desc")));
        let after = query("offset=5_6&sort=creationTime:asc").unwrap();
        let Pagination::Cursor(Some(cursor)) = after.page else {
            panic!("a cursor: {after:?}");
        };
        assert_eq!((cursor.direction, cursor.id), (Direction::Asc, 6));
        for bad in [
            "offset=5_6&start=1",
            "offset=5_6&page=1",
            "start=1&page=1",
            "offset=5_6&sort=updateTime:asc",
            "sort=name:asc",
            "sort=updateTime:up",
            "sort=updateTime:asc,id:desc",
            "start=-1",
            "page=x",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
