//! Listing jobs: filters, whitelisted sort fields, keyset cursors and page/offset paging.
//!
//! What a query may ask is checked here, once, for every engine ([`ListQuery::check`]); each
//! driver builds the statement of a checked query with the shared builder
//! ([`crate::driver::list_sql`]) in its engine's dialect.
//!
//! **Invariant:** no SQL text is built from a caller's string: a driver assembles the
//! statement from constant fragments chosen by which filters are present and from the sort
//! field, a whitelisted enum; every value is a bound parameter.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::model::Job;
use crate::state::State;
use crate::{Error, Result};

/// A field jobs can be sorted by. Every sort a dialect offers maps to one of these, and each
/// has an index `(tenant, field, id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    /// The job id (creation order).
    Id,
    /// Creation time.
    CreatedAt,
    /// Last change.
    UpdatedAt,
    /// The state name.
    State,
    /// The kind.
    Kind,
    /// The name.
    Name,
    /// The source.
    Source,
    /// The target.
    Target,
    /// Who created it.
    CreatedBy,
    /// The definition id; jobs without one sort first.
    DefinitionId,
    /// Start of the latest attempt; jobs not started sort first.
    StartedAt,
    /// Finish time; jobs not finished sort first.
    FinishedAt,
}

/// Whether a sort value is an integer or a text (for cursors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SortType {
    Integer,
    Text,
}

impl SortField {
    /// Every sort field.
    pub const ALL: [SortField; 12] = [
        SortField::Id,
        SortField::CreatedAt,
        SortField::UpdatedAt,
        SortField::State,
        SortField::Kind,
        SortField::Name,
        SortField::Source,
        SortField::Target,
        SortField::CreatedBy,
        SortField::DefinitionId,
        SortField::StartedAt,
        SortField::FinishedAt,
    ];

    /// The name callers use.
    pub fn as_str(self) -> &'static str {
        match self {
            SortField::Id => "id",
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::State => "state",
            SortField::Kind => "kind",
            SortField::Name => "name",
            SortField::Source => "source",
            SortField::Target => "target",
            SortField::CreatedBy => "created_by",
            SortField::DefinitionId => "definition_id",
            SortField::StartedAt => "started_at",
            SortField::FinishedAt => "finished_at",
        }
    }

    /// Whether the sort is on a free text column (name, source, target, creator,
    /// definition): failed and cancelled jobs have indexes of their own in these orders.
    pub(crate) fn is_free_text(self) -> bool {
        matches!(
            self,
            SortField::Name
                | SortField::Source
                | SortField::Target
                | SortField::CreatedBy
                | SortField::DefinitionId
        )
    }

    pub(crate) fn sort_type(self) -> SortType {
        match self {
            SortField::Id
            | SortField::CreatedAt
            | SortField::UpdatedAt
            | SortField::StartedAt
            | SortField::FinishedAt => SortType::Integer,
            SortField::State
            | SortField::Kind
            | SortField::Name
            | SortField::Source
            | SortField::Target
            | SortField::CreatedBy
            | SortField::DefinitionId => SortType::Text,
        }
    }

    /// The value of this field in `job`, as the index sees it.
    fn value_of(self, job: &Job) -> CursorValue {
        match self {
            SortField::Id => CursorValue::Integer(job.id),
            SortField::CreatedAt => CursorValue::Integer(job.created_at),
            SortField::UpdatedAt => CursorValue::Integer(job.updated_at),
            SortField::StartedAt => CursorValue::Integer(job.started_at.unwrap_or(-1)),
            SortField::FinishedAt => CursorValue::Integer(job.finished_at.unwrap_or(-1)),
            SortField::State => CursorValue::Text(job.state.as_str().to_owned()),
            SortField::Kind => CursorValue::Text(job.kind.clone()),
            SortField::Name => CursorValue::Text(job.name.clone()),
            SortField::Source => CursorValue::Text(job.source.clone()),
            SortField::Target => CursorValue::Text(job.target.clone()),
            SortField::CreatedBy => CursorValue::Text(job.created_by.clone()),
            SortField::DefinitionId => {
                CursorValue::Text(job.definition_id.clone().unwrap_or_default())
            }
        }
    }
}

impl FromStr for SortField {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        SortField::ALL
            .into_iter()
            .find(|field| field.as_str() == s)
            .ok_or_else(|| Error::UnknownSortField {
                given: s.to_owned(),
                valid: SortField::ALL.map(SortField::as_str).join(", "),
            })
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Smallest first.
    Asc,
    /// Largest first (the default: newest first).
    #[default]
    Desc,
}

impl Direction {
    /// `asc` or `desc`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Asc => "asc",
            Direction::Desc => "desc",
        }
    }
}

impl FromStr for Direction {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "asc" => Ok(Direction::Asc),
            "desc" => Ok(Direction::Desc),
            other => Err(Error::invalid(
                "order",
                format!("unknown direction `{other}`; valid: asc, desc"),
            )),
        }
    }
}

/// A sort value inside a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorValue {
    /// An integer field (times, id).
    Integer(i64),
    /// A text field.
    Text(String),
}

/// A position in a sorted list: the sort value and id of the last job of a page. The next
/// page starts strictly after it, so jobs inserted meanwhile never make a page repeat or skip
/// one that existed when the first page was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The sort it belongs to.
    pub sort: SortField,
    /// The direction it belongs to.
    pub direction: Direction,
    /// The sort value of the last job seen.
    pub value: CursorValue,
    /// The id of the last job seen.
    pub id: i64,
}

impl Cursor {
    /// The cursor just after `job` in the given order.
    pub fn after(job: &Job, sort: SortField, direction: Direction) -> Cursor {
        Cursor {
            sort,
            direction,
            value: sort.value_of(job),
            id: job.id,
        }
    }

    /// The opaque text form handed to clients (URL-safe).
    pub fn encode(&self) -> String {
        let value = match &self.value {
            CursorValue::Integer(v) => format!("i{v}"),
            CursorValue::Text(t) => format!("t{t}"),
        };
        let plain = format!(
            "{}:{}:{}:{}",
            self.sort.as_str(),
            self.direction.as_str(),
            self.id,
            value
        );
        let mut out = String::with_capacity(plain.len() * 2);
        for byte in plain.bytes() {
            let _ = write!(out, "{byte:02x}");
        }
        out
    }

    /// Reads a cursor produced by [`Cursor::encode`].
    ///
    /// # Errors
    /// [`Error::InvalidCursor`] for anything else.
    pub fn decode(text: &str) -> Result<Cursor> {
        let bad = |reason: &str| Error::InvalidCursor {
            reason: reason.to_owned(),
        };
        if !text.len().is_multiple_of(2) || text.len() > 4096 {
            return Err(bad("not a cursor this store produced"));
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| bad("not a cursor this store produced"))?;
        let plain = String::from_utf8(bytes).map_err(|_| bad("not utf-8"))?;
        let mut parts = plain.splitn(4, ':');
        let (Some(sort), Some(direction), Some(id), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a cursor this store produced"));
        };
        let sort: SortField = sort.parse().map_err(|_| bad("unknown sort field"))?;
        let direction: Direction = direction.parse().map_err(|_| bad("unknown direction"))?;
        let id: i64 = id.parse().map_err(|_| bad("bad id"))?;
        let value = match (sort.sort_type(), value.split_at_checked(1)) {
            (SortType::Integer, Some(("i", v))) => {
                CursorValue::Integer(v.parse().map_err(|_| bad("bad value"))?)
            }
            (SortType::Text, Some(("t", v))) => CursorValue::Text(v.to_owned()),
            _ => return Err(bad("value does not fit the sort field")),
        };
        Ok(Cursor {
            sort,
            direction,
            value,
            id,
        })
    }
}

/// How to page through a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pagination {
    /// Keyset paging: start after this cursor (`None`: the first page).
    Cursor(Option<Cursor>),
    /// Skip this many jobs (page/offset paging; slower deep into a large list).
    Offset(u64),
}

impl Default for Pagination {
    fn default() -> Self {
        Pagination::Cursor(None)
    }
}

/// The most jobs one page may hold.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The jobs a page holds when the query does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Which jobs to list, in which order, which page. Every filter is optional; several values
/// in one filter match any of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Any of these states.
    pub states: Vec<State>,
    /// Any of these kinds.
    pub kinds: Vec<String>,
    /// Any of these queues.
    pub queues: Vec<String>,
    /// Any of these sources.
    pub sources: Vec<String>,
    /// Any of these targets.
    pub targets: Vec<String>,
    /// Any of these creators.
    pub created_by: Vec<String>,
    /// Any of these definitions.
    pub definitions: Vec<String>,
    /// Any of these labels (the API that created the job; see `Job::dialect`).
    pub dialects: Vec<String>,
    /// Only this tenant (meaningful under an admin scope; other scopes are limited anyway).
    pub tenant: Option<String>,
    /// Created at or after this time (ms).
    pub created_after: Option<i64>,
    /// Created before this time (ms).
    pub created_before: Option<i64>,
    /// Started (latest attempt) at or after this time (ms).
    pub started_after: Option<i64>,
    /// Started (latest attempt) before this time (ms).
    pub started_before: Option<i64>,
    /// Finished at or after this time (ms).
    pub finished_after: Option<i64>,
    /// Finished before this time (ms).
    pub finished_before: Option<i64>,
    /// Only these ids.
    pub ids: Vec<i64>,
    /// Running jobs only: keep those whose worker has sent no heartbeat yet in the current
    /// lease (`heartbeat_at IS NULL`). With [`ListQuery::running_in_phases`] and
    /// [`ListQuery::running_outside_phases`] this splits the `running` state by the worker's
    /// progress (not yet reported, in a named phase, in another): when any of the three is set, a running job
    /// is listed only if it matches one of those set; jobs in other states are not affected.
    pub running_unreported: bool,
    /// Running jobs only: keep those with a heartbeat in the current lease whose phase is one
    /// of these (see [`ListQuery::running_unreported`]).
    pub running_in_phases: Vec<String>,
    /// Running jobs only: keep those with a heartbeat in the current lease whose phase is none
    /// of these, a job without a phase included (see [`ListQuery::running_unreported`]).
    /// `None`: not this filter.
    pub running_outside_phases: Option<Vec<String>>,
    /// An explicit order of the sort field's values, for a sort by something several values
    /// share (an API's coarser category of several kinds, say): when not empty, jobs sort by the
    /// rank given to their value (values not listed rank after every listed one), then by id.
    /// Text sort fields and [`Pagination::Offset`] only.
    pub sort_rank: BTreeMap<String, i64>,
    /// The sort field; default `created_at`.
    pub sort: Option<SortField>,
    /// The direction; default descending.
    pub direction: Direction,
    /// Page size (1..=[`MAX_PAGE_SIZE`]); default [`DEFAULT_PAGE_SIZE`].
    pub limit: Option<u32>,
    /// Which page.
    pub page: Pagination,
    /// Also count every job that matches the filters (for "total results").
    pub count_total: bool,
    /// Only jobs that execute a job definition (`definition_id IS NOT NULL`: the executions
    /// of definitions).
    pub with_definition: bool,
    /// Nested conditions that must all match too (AND). Only a nested query's filters count
    /// (its own nested conditions among them); its tenant, sort and paging are ignored.
    pub all_of: Vec<ListQuery>,
    /// Nested conditions of which at least one must match (OR), when not empty; filters only,
    /// as in [`ListQuery::all_of`].
    pub any_of: Vec<ListQuery>,
    /// Nested conditions none of which may match (NOT (a OR b ...)); filters only, as in
    /// [`ListQuery::all_of`]. A time bound on a time the job does not have (`started_at` before
    /// its first claim, `finished_at` while it is live) does not match, so its negation does:
    /// `none_of: [started_after: i64::MIN]` is "not started".
    pub none_of: Vec<ListQuery>,
}

/// How deep [`ListQuery::all_of`], [`ListQuery::any_of`] and [`ListQuery::none_of`] may nest,
/// the query itself counted: deep enough for an API whose queries nest 32 levels and whose
/// leaves each take a few conditions (a negation, a choice of instants). SQLite parses and
/// runs a condition this deep (the listing tests run one).
const MAX_NESTING: usize = 64;

/// How many nested queries one query may hold in all.
const MAX_NESTED: usize = 1000;

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    /// The jobs, in the order asked for.
    pub jobs: Vec<Job>,
    /// Where the next page starts, or `None` on the last page (keyset paging only).
    pub next_cursor: Option<Cursor>,
    /// Whether more jobs follow this page.
    pub has_more: bool,
    /// The number of matching jobs, when asked for.
    pub total: Option<u64>,
}

impl ListQuery {
    /// The sort field (creation when the query does not say).
    pub(crate) fn sort_field(&self) -> SortField {
        self.sort.unwrap_or(SortField::CreatedAt)
    }

    /// The page size ([`DEFAULT_PAGE_SIZE`] when the query does not say).
    pub(crate) fn page_size(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE_SIZE)
    }

    /// Whether the query filters on states, all of them failed or cancelled: those jobs have
    /// partial indexes of their own (schema migration 9).
    pub(crate) fn only_failed_or_cancelled(&self) -> bool {
        !self.states.is_empty()
            && self
                .states
                .iter()
                .all(|s| matches!(s, State::Failed | State::Cancelled))
    }

    /// Whether the query lists the jobs of vendor APIs only (a dialect filter without
    /// `native`): those jobs have partial indexes of their own (`dialect <> 'native'`).
    pub(crate) fn labelled_only(&self) -> bool {
        !self.dialects.is_empty() && !self.dialects.iter().any(|d| d == crate::NATIVE)
    }

    /// Checks what a query may ask before any engine builds it: the page size, a ranked
    /// sort's field and paging, how deep and how many nested conditions, a cursor of this
    /// sort. The drivers build statements only for checked queries.
    ///
    /// # Errors
    /// [`Error::InvalidInput`]; [`Error::InvalidCursor`] for a cursor of another sort.
    pub(crate) fn check(&self) -> Result<()> {
        let sort = self.sort_field();
        let direction = self.direction;
        let limit = self.page_size();
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "limit",
                format!("page size must be 1 to {MAX_PAGE_SIZE}, got {limit}"),
            ));
        }
        if !self.sort_rank.is_empty() {
            if sort.sort_type() != SortType::Text {
                return Err(Error::invalid(
                    "sort_rank",
                    format!("ranks order a text sort field, not {}", sort.as_str()),
                ));
            }
            if !matches!(self.page, Pagination::Offset(_)) {
                return Err(Error::invalid(
                    "sort_rank",
                    "a ranked sort pages by offset, not by cursor",
                ));
            }
        }
        if self.nesting() > MAX_NESTING {
            return Err(Error::invalid(
                "filter",
                format!("conditions nest deeper than {MAX_NESTING} levels"),
            ));
        }
        if self.nested_count() > MAX_NESTED {
            return Err(Error::invalid(
                "filter",
                format!("more than {MAX_NESTED} nested conditions"),
            ));
        }
        if let Pagination::Cursor(Some(cursor)) = &self.page
            && (cursor.sort != sort || cursor.direction != direction)
        {
            return Err(Error::InvalidCursor {
                reason: format!(
                    "cursor was made for sort {} {}, not {} {}",
                    cursor.sort.as_str(),
                    cursor.direction.as_str(),
                    sort.as_str(),
                    direction.as_str()
                ),
            });
        }
        Ok(())
    }

    /// 1 + the depth of the deepest nested condition.
    fn nesting(&self) -> usize {
        1 + self
            .all_of
            .iter()
            .chain(&self.any_of)
            .chain(&self.none_of)
            .map(ListQuery::nesting)
            .max()
            .unwrap_or(0)
    }

    /// How many nested conditions there are in all.
    fn nested_count(&self) -> usize {
        self.all_of
            .iter()
            .chain(&self.any_of)
            .chain(&self.none_of)
            .map(|q| 1 + q.nested_count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sort_field_lists_the_valid_ones() {
        let err = "priority; DROP TABLE jobs".parse::<SortField>().err();
        match err {
            Some(Error::UnknownSortField { given, valid }) => {
                assert_eq!(given, "priority; DROP TABLE jobs");
                assert!(valid.contains("created_at"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = Cursor {
            sort: SortField::Name,
            direction: Direction::Asc,
            value: CursorValue::Text("a:b:c ü".into()),
            id: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).ok(), Some(cursor));
        for garbage in ["", "zz", "abc", "6964", &"00".repeat(3000)] {
            assert!(Cursor::decode(garbage).is_err(), "{garbage}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = ListQuery::default();
        for _ in 0..MAX_NESTING {
            deep = ListQuery {
                all_of: vec![deep],
                ..ListQuery::default()
            };
        }
        assert!(matches!(
            deep.check().err(),
            Some(Error::InvalidInput { .. })
        ));
        let wide = ListQuery {
            any_of: vec![ListQuery::default(); MAX_NESTED + 1],
            ..ListQuery::default()
        };
        assert!(matches!(
            wide.check().err(),
            Some(Error::InvalidInput { .. })
        ));
    }
}
