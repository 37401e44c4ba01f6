//! `POST .../job_execution_search`: the vendor's `SearchRequest` becomes one [`ListQuery`]
//! of nested conditions (`all_of`, `any_of`, `none_of`) over the executions of the caller's
//! tenant, which the core evaluates, pages by offset and counts.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use jobstore::{Direction, Error, ListQuery, Pagination, SortField, State};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::{Value, json};

use super::faults::{self, Fault};
use super::wire;
use crate::app::App;
use crate::auth::Principal;
use crate::body::{self, ResponseBody};
use crate::fault::ErrorKind;
use crate::query::{self, choose};
use crate::time::{self, Form};

/// `count` of a search when the request names none.
const DEFAULT_COUNT: i64 = 25;

/// The largest `count` of a search.
const MAX_COUNT: i64 = 200;

/// How many `bool_query` levels a query may nest: the terms of the innermost of 32 nested
/// bool queries are accepted, those of a 33rd are not. Counted here, on the vendor's
/// document: its translation takes more levels of the core's conditions (a negated term is
/// two), which the core allows.
const MAX_LEVELS: usize = 32;

/// The `SearchRequest` document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchRequest {
    query: Option<Value>,
    count: Option<i64>,
    start: Option<i64>,
    select: Option<String>,
    #[serde(default)]
    sorts: Vec<SortClause>,
    /// Accepted and ignored: executions have no expansions.
    #[serde(rename = "expand")]
    _expand: Option<IgnoredAny>,
    /// Accepted and ignored (a vendor paging hint).
    #[serde(rename = "db_start_record_")]
    _db_start_record: Option<IgnoredAny>,
}

/// One `Sort` clause.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SortClause {
    field: String,
    #[serde(default)]
    sort_order: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TermQuery {
    fields: Vec<String>,
    operator: String,
    #[serde(default)]
    values: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoolQuery {
    #[serde(default)]
    must: Vec<Value>,
    #[serde(default)]
    must_not: Vec<Value>,
    #[serde(default)]
    should: Vec<Value>,
}

/// The searchable (and sortable) attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    JobId,
    StartTime,
    EndTime,
    Status,
}

const FIELDS: [(&str, Field); 5] = [
    ("id", Field::Id),
    ("job_id", Field::JobId),
    ("start_time", Field::StartTime),
    ("end_time", Field::EndTime),
    ("status", Field::Status),
];

impl Field {
    /// The field `name`, or the vendor's fault `refusal` (which names the field).
    fn parse(name: &str, refusal: &'static str) -> Result<Field, Fault> {
        choose("field", name, &FIELDS)
            .map_err(|err| Fault::from(err).typed(refusal).arg("field", name))
    }

    fn name(self) -> &'static str {
        query::name_of(&FIELDS, &self)
    }

    fn is_time(self) -> bool {
        matches!(self, Field::StartTime | Field::EndTime)
    }

    /// The vendor's type name of the field (faults).
    fn type_name(self) -> &'static str {
        if self.is_time() { "Date" } else { "String" }
    }

    fn sort(self) -> SortField {
        match self {
            Field::Id => SortField::Id,
            Field::JobId => SortField::DefinitionId,
            Field::StartTime => SortField::StartedAt,
            Field::EndTime => SortField::FinishedAt,
            Field::Status => SortField::State,
        }
    }
}

/// What the term query operators do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    IsNull,
    IsNotNull,
    Less,
    Greater,
}

/// The operators. The vendor's own search sample sends `is` with two values: `is` and `neq`
/// take one or more values, as `one_of` and `not_in` do.
const OPERATORS: [(&str, Operator); 8] = [
    ("is", Operator::In),
    ("one_of", Operator::In),
    ("is_null", Operator::IsNull),
    ("is_not_null", Operator::IsNotNull),
    ("less", Operator::Less),
    ("greater", Operator::Greater),
    ("not_in", Operator::NotIn),
    ("neq", Operator::NotIn),
];

/// `value` of `name` among `choices`, or the vendor's `EnumConstraintViolationException` for
/// `document`.
fn enumerated<T: Copy>(
    document: &'static str,
    name: &str,
    value: &str,
    choices: &[(&str, T)],
) -> Result<T, Fault> {
    choose(name, value, choices).map_err(|err| {
        Fault::from(err)
            .typed("EnumConstraintViolationException")
            .arg("document", document)
            .arg("enumValue", value)
    })
}

/// `POST .../job_execution_search`.
pub(crate) async fn search(
    app: &App,
    principal: &Principal,
    v: &str,
    request: Request<Incoming>,
) -> Result<Response<ResponseBody>, Fault> {
    let search: SearchRequest = app.json_document(request).await?;
    let query = search
        .query
        .ok_or_else(|| faults::body("the search request needs a `query`"))?;
    let condition = condition(&query, 0)?;
    let count = search.count.unwrap_or(DEFAULT_COUNT);
    if !(1..=MAX_COUNT).contains(&count) {
        return Err(faults::constraint(format!(
            "The count must be 1 to {MAX_COUNT}, got {count}."
        )));
    }
    let start = search.start.unwrap_or(0);
    let offset = u64::try_from(start)
        .map_err(|_| faults::constraint(format!("The start must be 0 or more, got {start}.")))?;
    let mut list = ListQuery {
        with_definition: true,
        all_of: vec![condition],
        limit: u32::try_from(count).ok(),
        page: Pagination::Offset(offset),
        count_total: true,
        sort: Some(SortField::Id),
        direction: Direction::Desc,
        ..ListQuery::default()
    };
    // Every clause is checked and echoed; the first orders the hits (the core sorts by one
    // field, ties broken by id in its direction).
    let mut sorts = Vec::with_capacity(search.sorts.len());
    for (n, clause) in search.sorts.iter().enumerate() {
        let field = Field::parse(&clause.field, "FieldNotSortableException")?;
        let order = clause.sort_order.as_deref().unwrap_or("asc");
        let direction = enumerated("sort", "sort_order", order, &query::DIRECTIONS)?;
        if n == 0 {
            list.direction = direction;
            list.sort = Some(field.sort());
            if field == Field::Status {
                // The states in the order of the vendor's status strings.
                list.sort_rank = query::ranks(State::ALL.map(|s| (s.as_str(), wire::status(s))));
            }
        }
        sorts.push(json!({"field": clause.field, "sort_order": order}));
    }
    let sorts = (!sorts.is_empty()).then_some(sorts);
    let (hits, total) = app
        .call(principal, move |store| {
            let page = store.list(&list)?;
            let views = page.jobs.into_iter().map(|job| wire::view(&store, job));
            // An execution deleted since the page was read is left out.
            let hits = views
                .filter(|view| !matches!(view, Err(Error::JobNotFound { .. })))
                .map(|view| view.map(|view| wire::job_execution(&view, None)))
                .collect::<jobstore::Result<Vec<Value>>>()?;
            Ok((hits, page.total.unwrap_or(0)))
        })
        .await?;
    let (next, previous) = neighbours(offset, count.unsigned_abs(), total);
    Ok(body::json(
        StatusCode::OK,
        &wire::present(json!({
            "_v": v,
            "_type": "job_execution_search_result",
            "count": hits.len(),
            "hits": hits,
            "next": next,
            "previous": previous,
            "query": query,
            "select": search.select.as_deref().unwrap_or("(**)"),
            "sorts": sorts,
            "start": start,
            "total": total,
        })),
    ))
}

/// The vendor's `next` and `previous` result pages of the page of `count` hits from `start`
/// among `total`: the `start` and `count` to search with for the page after this one (when
/// some hits follow it) and for the one before it (when it does not start at 0; it ends where
/// this page starts).
fn neighbours(start: u64, count: u64, total: u64) -> (Option<Value>, Option<Value>) {
    let page =
        |start: u64, count: u64| json!({"_type": "result_page", "count": count, "start": start});
    let after = start.saturating_add(count);
    let next = (after < total).then(|| page(after, count));
    let before = start.saturating_sub(count);
    let previous = (start > 0).then(|| page(before, start - before));
    (next, previous)
}

/// A query document as a condition on jobs (a filters-only [`ListQuery`]), inside `levels`
/// bool queries.
fn condition(query: &Value, levels: usize) -> Result<ListQuery, Fault> {
    let Some(members) = query.as_object() else {
        return Err(faults::body("a query must be a JSON object"));
    };
    let mut kinds = members.iter();
    let (Some((kind, body)), None) = (kinds.next(), kinds.next()) else {
        return Err(faults::body(
            "a query holds exactly one of term_query, bool_query, match_all_query",
        ));
    };
    match kind.as_str() {
        "match_all_query" => match body.as_object() {
            Some(members) if members.is_empty() => Ok(ListQuery::default()),
            _ => Err(faults::body("`match_all_query` must be an empty object")),
        },
        "bool_query" => {
            let levels = levels + 1;
            if levels > MAX_LEVELS {
                return Err(faults::constraint(format!(
                    "The query nests bool queries deeper than {MAX_LEVELS} levels."
                )));
            }
            let bool_query: BoolQuery = member("bool_query", body)?;
            let all = |queries: &[Value]| -> Result<Vec<ListQuery>, Fault> {
                queries
                    .iter()
                    .map(|query| condition(query, levels))
                    .collect()
            };
            let (must, should) = (all(&bool_query.must)?, all(&bool_query.should)?);
            let must_not = all(&bool_query.must_not)?;
            Ok(only(|q| {
                (q.all_of, q.any_of, q.none_of) = (must, should, must_not)
            }))
        }
        "term_query" => term_condition(&member("term_query", body)?),
        "text_query" | "filtered_query" | "nested_query" => Err(unsupported(format!(
            "The query type '{kind}' is not supported for job executions; use term_query, \
             bool_query or match_all_query."
        ))
        .arg("query", kind.as_str())),
        other => Err(faults::body(format!(
            "unknown query type `{other}`; expected term_query, bool_query or match_all_query"
        ))),
    }
}

/// The query `name` as its type.
fn member<T: DeserializeOwned>(name: &str, body: &Value) -> Result<T, Fault> {
    serde_json::from_value(body.clone()).map_err(|err| faults::body(format!("`{name}`: {err}")))
}

fn unsupported(message: String) -> Fault {
    Fault::new(ErrorKind::InvalidRequest, message).typed("UnsupportedQueryException")
}

/// A term query: the operator applied to each field, the fields combined with OR.
fn term_condition(term: &TermQuery) -> Result<ListQuery, Fault> {
    let operator = enumerated("term_query", "operator", &term.operator, &OPERATORS)?;
    let arity_ok = match operator {
        Operator::Less | Operator::Greater => term.values.len() == 1,
        Operator::In | Operator::NotIn => !term.values.is_empty(),
        Operator::IsNull | Operator::IsNotNull => term.values.is_empty(),
    };
    if !arity_ok {
        return Err(faults::constraint(format!(
            "The operator '{}' does not take {} value(s): less and greater take one, is, neq, \
             one_of and not_in one or more, is_null and is_not_null none.",
            term.operator,
            term.values.len()
        )));
    }
    if term.fields.is_empty() {
        return Err(faults::constraint("A term query needs at least one field."));
    }
    let mut per_field = term
        .fields
        .iter()
        .map(|name| {
            let field = Field::parse(name, "FieldNotSearchableException")?;
            field_condition(field, operator, &term.values)
        })
        .collect::<Result<Vec<_>, Fault>>()?;
    Ok(if per_field.len() == 1 {
        per_field.swap_remove(0)
    } else {
        only(|q| q.any_of = per_field)
    })
}

/// A condition of the filters `set` sets, and no other.
fn only(set: impl FnOnce(&mut ListQuery)) -> ListQuery {
    let mut query = ListQuery::default();
    set(&mut query);
    query
}

/// A condition that no job meets.
fn nothing() -> ListQuery {
    not(ListQuery::default())
}

fn not(query: ListQuery) -> ListQuery {
    only(|q| q.none_of = vec![query])
}

/// Jobs whose `field` (a time) is after `after` and before `before`, when given.
fn between(field: Field, after: Option<i64>, before: Option<i64>) -> ListQuery {
    only(|q| match field {
        Field::StartTime => (q.started_after, q.started_before) = (after, before),
        _ => (q.finished_after, q.finished_before) = (after, before),
    })
}

fn field_condition(field: Field, operator: Operator, values: &[Value]) -> Result<ListQuery, Fault> {
    Ok(match operator {
        Operator::In => equals(field, values)?,
        Operator::NotIn => not(equals(field, values)?),
        Operator::IsNull => is_null(field),
        Operator::IsNotNull => not(is_null(field)),
        Operator::Less | Operator::Greater => {
            if !field.is_time() {
                return Err(unsupported(format!(
                    "The operators less and greater apply to start_time and end_time only, \
                     not to '{}'.",
                    field.name()
                ))
                .arg("field", field.name()));
            }
            let bound = time_value(field, values.first().unwrap_or(&Value::Null))?;
            if operator == Operator::Less {
                between(field, None, Some(bound))
            } else {
                between(field, Some(bound.saturating_add(1)), None)
            }
        }
    })
}

/// `field` equals one of `values`.
fn equals(field: Field, values: &[Value]) -> Result<ListQuery, Fault> {
    let texts = || {
        values
            .iter()
            .map(|value| match value {
                Value::String(text) => Ok(text.clone()),
                other => Err(field_type(field, other)),
            })
            .collect::<Result<Vec<String>, Fault>>()
    };
    let query = match field {
        Field::Id => {
            let mut ids = Vec::new();
            for value in values {
                match value {
                    // Ids are strings to the vendor: one that is not an id names nothing.
                    Value::String(text) => ids.extend(crate::router::parse_id(text)),
                    Value::Number(number) => ids.extend(number.as_i64()),
                    other => return Err(field_type(field, other)),
                }
            }
            only(|q| q.ids = ids)
        }
        Field::JobId => {
            let definitions = texts()?;
            only(|q| q.definitions = definitions)
        }
        Field::Status => {
            let statuses = texts()?;
            let shows = |state: &State| statuses.iter().any(|s| s == wire::status(*state));
            only(|q| q.states = State::ALL.into_iter().filter(shows).collect())
        }
        Field::StartTime | Field::EndTime => {
            let instants = values
                .iter()
                .map(|value| {
                    let at = time_value(field, value)?;
                    Ok(between(field, Some(at), Some(at.saturating_add(1))))
                })
                .collect::<Result<_, Fault>>()?;
            only(|q| q.any_of = instants)
        }
    };
    // An empty filter list would mean "no filter": no usable value matches nothing.
    Ok(if query == ListQuery::default() {
        nothing()
    } else {
        query
    })
}

/// `field` has no value: only a time can be missing (not started, not finished).
fn is_null(field: Field) -> ListQuery {
    if field.is_time() {
        not(between(field, Some(i64::MIN), None))
    } else {
        nothing()
    }
}

/// The instant of a value of a time field: an ISO 8601 date or time, UTC when it names no
/// zone.
fn time_value(field: Field, value: &Value) -> Result<i64, Fault> {
    value
        .as_str()
        .and_then(|text| time::parse(text, Form::Lenient))
        .ok_or_else(|| field_type(field, value))
}

fn field_type(field: Field, value: &Value) -> Fault {
    let shown = match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let expected = if field.is_time() {
        " (expected an ISO 8601 date or time such as 2024-05-01T12:00:00.000Z)"
    } else {
        ""
    };
    Fault::new(
        ErrorKind::InvalidRequest,
        format!(
            "The value '{shown}' does not match the type {} of field '{}'{expected}.",
            field.type_name(),
            field.name(),
        ),
    )
    .typed("InvalidSearchFieldTypeException")
    .arg("field", field.name())
    .arg("value", shown)
    .arg("type", field.type_name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_link_their_neighbours() {
        let page = |start: u64, count: u64| json!({"_type": "result_page", "count": count, "start": start});
        assert_eq!(neighbours(0, 2, 5), (Some(page(2, 2)), None));
        assert_eq!(neighbours(2, 2, 5), (Some(page(4, 2)), Some(page(0, 2))));
        assert_eq!(neighbours(4, 2, 5), (None, Some(page(2, 2))));
        assert_eq!(neighbours(1, 2, 5), (Some(page(3, 2)), Some(page(0, 1))));
        assert_eq!(neighbours(0, 25, 5), (None, None));
        assert_eq!(neighbours(9, 2, 5), (None, Some(page(7, 2))));
        assert_eq!(neighbours(u64::MAX, 200, 1).0, None);
    }
}
