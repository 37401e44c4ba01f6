//! The C360 list's query parameters and the core query they make.

use std::collections::BTreeMap;

use jobstore::{Direction, ListQuery, Pagination, SortField, State};

use super::NAME;
use super::wire::{EXTERNAL, JobType, Status, UPDATE_PHASE};
use crate::fault::ApiError;
use crate::query::{self, OverMax, Query};

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

/// A list request: the core query and the page it asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Listing {
    pub(super) query: ListQuery,
    pub(super) page: u64,
    pub(super) results_per_page: u32,
}

/// The list request of a query string. Unknown parameters, unknown values and a single-valued
/// parameter given twice are refused. The core query: this API's jobs, the statuses as states
/// (the running ones split by the worker's progress when only some are asked for), ranked
/// sorts for the fields whose C360 value is derived, page-number paging with the total.
pub(super) fn listing(raw: Option<&str>) -> Result<Listing, ApiError> {
    let mut query = Query::parse(raw)?;
    let results_per_page = query.page_size("resultsPerPage", 10, 100, OverMax::Refuse)?;
    let page = query.int("page", 1, i64::MAX)?.unwrap_or(1).unsigned_abs();
    let names = query.all("status");
    let names = names.iter().flat_map(|value| value.split(','));
    let statuses =
        query::distinct(names.map(|name| query::choose("status", name, &Status::NAMES)))?;
    let sort = query
        .choice("sortBy", &SORTS)?
        .unwrap_or(SortField::CreatedAt);
    let direction = query
        .choice("sortDirection", &query::DIRECTIONS)?
        .unwrap_or(Direction::Desc);
    let sources = data_sources("source", query.all("source"))?;
    let targets = data_sources("target", query.all("target"))?;
    query.finish()?;
    let states = statuses.iter().flat_map(|s| s.states());
    let mut query = ListQuery {
        dialects: vec![NAME.to_owned()],
        kinds: JobType::ALL.map(|t| t.as_str().to_owned()).to_vec(),
        states: query::distinct(states.map(|state| Ok(*state)))?,
        sources,
        targets,
        sort: Some(sort),
        sort_rank: rank(sort),
        direction,
        limit: Some(results_per_page),
        page: Pagination::Offset((page - 1).saturating_mul(u64::from(results_per_page))),
        count_total: true,
        ..ListQuery::default()
    };
    let running = [Status::Start, Status::Running, Status::Update];
    let asked: Vec<Status> = running
        .into_iter()
        .filter(|s| statuses.contains(s))
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
    Ok(Listing {
        query,
        page,
        results_per_page,
    })
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
        let parse = |raw| listing(Some(raw)).map(|listing| listing.query);
        let start = parse("status=START,QUEUED").unwrap_or_default();
        assert!(start.running_unreported && start.running_in_phases.is_empty());
        assert_eq!(start.states, [State::Running, State::Queued, State::Open]);
        let all = parse("status=START&status=RUNNING,UPDATE").unwrap_or_default();
        assert!(!all.running_unreported && all.running_outside_phases.is_none());
        assert!(parse("status=QUEUED,").is_err());
    }
}
