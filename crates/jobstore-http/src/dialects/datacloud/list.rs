//! `GET /api/v1/ingest/jobs`: its parameters, read through [`crate::query`], as the core's list
//! query. `limit` (default 20, clamped to 100), `offset` (rows), `orderBy` (a field and an
//! optional `ASC` or `DESC`, descending by default) and `states` (a comma list); the older
//! spellings `orderby` and `state` too. An empty value means "not given".

use jobstore::{Direction, ListQuery, Pagination, SortField, State};

use super::NAME;
use crate::dialects::salesforce::bulk;
use crate::fault::ApiError;
use crate::query::{self, OverMax, Query};

/// The `orderBy` fields, matched case-insensitively.
const FIELDS: [(&str, SortField); 5] = [
    ("systemmodstamp", SortField::UpdatedAt),
    ("createddate", SortField::CreatedAt),
    ("id", SortField::Id),
    ("object", SortField::Target),
    ("state", SortField::State),
];

/// The list query of the parameters in `raw`: this API's jobs, latest change first.
///
/// # Errors
/// `InvalidQuery` naming the parameter: an unknown one, a bad value.
pub(crate) fn list_query(raw: Option<&str>) -> Result<ListQuery, ApiError> {
    let mut query = Query::parse(raw)?.blank_is_absent();
    let limit = query.page_size("limit", 20, 100, OverMax::Clamp)?;
    let offset = query.int("offset", 0, i64::MAX)?.unwrap_or(0);
    let order = query.one("orderBy")?.or(query.one("orderby")?);
    let (sort, direction) = match order {
        Some(order) => order_by(&order)?,
        None => (SortField::UpdatedAt, Direction::Desc),
    };
    let names = query.list("states").into_iter().chain(query.list("state"));
    let states = query::distinct(names.map(|name| {
        bulk::state_named(&name).ok_or_else(|| {
            let valid = State::ALL.map(bulk::state_name).join(", ");
            query::invalid(format!("unknown state `{name}`; valid states: {valid}"))
        })
    }))?;
    query.finish()?;
    Ok(ListQuery {
        dialects: vec![NAME.to_owned()],
        any_of: states.into_iter().flat_map(shown_as).collect(),
        sort: Some(sort),
        direction,
        limit: Some(limit),
        page: Pagination::Offset(offset.unsigned_abs()),
        ..ListQuery::default()
    })
}

/// Jobs started at least once (`started_at` set; cleared only by a restart).
pub(crate) fn started() -> ListQuery {
    ListQuery {
        started_after: Some(i64::MIN),
        ..ListQuery::default()
    }
}

/// The conditions of the jobs shown in the Data Cloud state named by `state` (see
/// [`bulk::state_of`]): UploadComplete is a queued job never claimed; InProgress is a running
/// job or a queued one claimed before (waiting for a retry).
fn shown_as(state: State) -> Vec<ListQuery> {
    let only = |state| ListQuery {
        states: vec![state],
        ..ListQuery::default()
    };
    match state {
        State::Queued => vec![ListQuery {
            none_of: vec![started()],
            ..only(State::Queued)
        }],
        State::Running => vec![
            only(State::Running),
            ListQuery {
                all_of: vec![started()],
                ..only(State::Queued)
            },
        ],
        state => vec![only(state)],
    }
}

/// `orderBy`: a field, optionally followed by `ASC` or `DESC` (default descending).
fn order_by(value: &str) -> Result<(SortField, Direction), ApiError> {
    let lower = value.to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    let field = words.next().unwrap_or("");
    let sorted = query::sort("orderBy", field, words.next(), &FIELDS)?;
    if words.next().is_some() {
        return Err(query::invalid(format!(
            "orderBy is a field and an optional ASC or DESC, got `{value}`"
        )));
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::ErrorKind;

    #[test]
    fn list_parameters_in_both_spellings_and_empty_values() {
        let query = list_query(Some("orderby=&states=&limit=&offset=")).unwrap();
        assert_eq!(query.sort, Some(SortField::UpdatedAt));
        assert_eq!(query.direction, Direction::Desc);
        assert_eq!(query.limit, Some(20));
        assert!(query.states.is_empty() && query.any_of.is_empty());
        assert_eq!(query.dialects, [NAME]);
        let query = list_query(Some(
            "state=Open,Aborted&states=open&orderBy=object%20ASC&limit=500&offset=3",
        ))
        .unwrap();
        assert_eq!(
            query.any_of,
            [shown_as(State::Open), shown_as(State::Cancelled)].concat()
        );
        let in_progress = list_query(Some("states=InProgress")).unwrap();
        assert_eq!(in_progress.any_of.len(), 2);
        assert_eq!(in_progress.any_of[1].states, [State::Queued]);
        assert_eq!(in_progress.any_of[1].all_of, [started()]);
        assert_eq!(query.sort, Some(SortField::Target));
        assert_eq!(query.direction, Direction::Asc);
        assert_eq!(query.limit, Some(100));
        assert_eq!(query.page, Pagination::Offset(3));
        for bad in [
            "states=Done",
            "orderBy=name",
            "orderBy=id%20UP",
            "orderBy=id%20asc%20x",
            "limit=0",
            "offset=-1",
            "page=2",
        ] {
            let kind = list_query(Some(bad)).err().map(|err| err.kind);
            assert_eq!(kind, Some(ErrorKind::InvalidQuery), "{bad}");
        }
    }
}
