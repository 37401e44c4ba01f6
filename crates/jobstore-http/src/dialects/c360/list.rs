//! The C360 list's query parameters and the core query they make.

use std::collections::BTreeMap;

use jobstore::{Direction, ListQuery, Pagination, SortField, State};

use super::NAME;
use super::wire::{EXTERNAL, JobType, Status, UPDATE_PHASE};
use crate::fault::ApiError;
use crate::query::{self, OverMax, PageSize, Query};

/// `resultsPerPage`: 10 when absent, at most 100 (more is refused).
const PAGE_SIZE: PageSize = PageSize {
    default: 10,
    max: 100,
    over_max: OverMax::Refuse,
};

/// The `sortBy` values and the core fields they sort by.
const SORTS: [(&str, SortField); 8] = [
    ("id", SortField::Id),
    ("name", SortField::Name),
    ("status", SortField::State),
    ("type", SortField::Kind),
    ("source", SortField::Source),
    ("target", SortField::Target),
    ("createdBy", SortField::CreatedBy),
    ("createdTime", SortField::CreatedAt),
];

/// The list's query parameters, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ListParams {
    pub(super) results_per_page: u32,
    pub(super) page: u64,
    statuses: Vec<Status>,
    sort: SortField,
    direction: Direction,
    sources: Vec<String>,
    targets: Vec<String>,
}

impl ListParams {
    /// Parses a query string. Unknown parameters, unknown values and a single-valued
    /// parameter given twice are refused.
    pub(super) fn parse(raw: Option<&str>) -> Result<ListParams, ApiError> {
        let mut query = Query::parse(raw)?;
        let results_per_page = query.page_size("resultsPerPage", PAGE_SIZE)?;
        let page = query.int("page", 1, i64::MAX)?.unwrap_or(1);
        let mut statuses = Vec::new();
        for value in query.all("status") {
            for name in value.split(',') {
                let status = query::choose("status", name, &Status::NAMES)?;
                if !statuses.contains(&status) {
                    statuses.push(status);
                }
            }
        }
        let sort = query
            .choice("sortBy", &SORTS)?
            .unwrap_or(SortField::CreatedAt);
        let direction = query
            .choice("sortDirection", &query::DIRECTIONS)?
            .unwrap_or(Direction::Desc);
        let sources = data_sources("source", query.all("source"))?;
        let targets = data_sources("target", query.all("target"))?;
        query.finish()?;
        Ok(ListParams {
            results_per_page,
            page: u64::try_from(page).unwrap_or(1),
            statuses,
            sort,
            direction,
            sources,
            targets,
        })
    }

    /// The core query: this API's jobs, the statuses as states (the running ones split by
    /// the worker's progress when only some are asked for), ranked sorts for the fields whose
    /// C360 value is derived, page-number paging with the total.
    pub(super) fn to_query(&self) -> ListQuery {
        let mut query = ListQuery {
            dialects: vec![NAME.to_owned()],
            kinds: JobType::ALL.map(|t| t.as_str().to_owned()).to_vec(),
            sources: self.sources.clone(),
            targets: self.targets.clone(),
            sort: Some(self.sort),
            sort_rank: rank(self.sort),
            direction: self.direction,
            limit: Some(self.results_per_page),
            page: Pagination::Offset(
                (self.page - 1).saturating_mul(u64::from(self.results_per_page)),
            ),
            count_total: true,
            ..ListQuery::default()
        };
        for state in self.statuses.iter().flat_map(|s| s.states()) {
            if !query.states.contains(state) {
                query.states.push(*state);
            }
        }
        let running = [Status::Start, Status::Running, Status::Update];
        let asked: Vec<Status> = running
            .into_iter()
            .filter(|s| self.statuses.contains(s))
            .collect();
        // Some but not all of the running statuses: split the running state.
        if !asked.is_empty() && asked.len() < running.len() {
            for status in asked {
                match status {
                    Status::Start => query.running_unreported = true,
                    Status::Update => query.running_in_phases = vec![UPDATE_PHASE.to_owned()],
                    _ => query.running_outside_phases = Some(vec![UPDATE_PHASE.to_owned()]),
                }
            }
        }
        query
    }
}

/// Data source names, with or without the `external://` prefix (both are matched, as the
/// vendor's list does).
fn data_sources(name: &str, values: Vec<String>) -> Result<Vec<String>, ApiError> {
    let mut names = Vec::new();
    for value in values {
        let bare = value.strip_prefix(EXTERNAL).unwrap_or(&value);
        if bare.is_empty() {
            return Err(query::invalid(format!("{name}: must name a data source")));
        }
        names.extend([bare.to_owned(), format!("{EXTERNAL}{bare}")]);
    }
    Ok(names)
}

/// For a field whose C360 value is derived from the core's: the core values ranked in the
/// C360 order (statuses and types alphabetically).
fn rank(sort: SortField) -> BTreeMap<String, i64> {
    match sort {
        SortField::State => query::ranks(State::ALL.map(|s| (s.as_str(), Status::of_state(s)))),
        SortField::Kind => query::ranks(JobType::ALL.map(|t| (t.as_str(), t.category()))),
        _ => BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_ranks_follow_the_alphabet_of_categories() {
        let rank = rank(SortField::Kind);
        assert!(rank["Analytics"] < rank["B2CtoFS"]);
        assert_eq!(rank["B2CtoFS"], rank["GPtoFS"]);
        assert!(rank["GPtoFS"] < rank["Flush"]);
        assert!(rank["Flush"] < rank["FStoGP"]);
        assert!(rank["FStoGP"] < rank["FStoB2C"]);
    }

    #[test]
    fn only_some_running_statuses_split_the_running_state() {
        let parse = |raw| ListParams::parse(Some(raw)).map(|p| p.to_query());
        let start = parse("status=START,QUEUED").unwrap_or_default();
        assert!(start.running_unreported && start.running_in_phases.is_empty());
        assert_eq!(start.states, [State::Running, State::Queued, State::Open]);
        let all = parse("status=START&status=RUNNING,UPDATE").unwrap_or_default();
        assert!(!all.running_unreported && all.running_outside_phases.is_none());
        assert!(parse("status=QUEUED,").is_err());
    }
}
