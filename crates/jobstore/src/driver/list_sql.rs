//! The list query's SQL for every engine: [`list_sql`] assembles the statement of a checked
//! query (`ListQuery::check`) from constant fragments chosen by which filters are present and
//! from the sort field, a whitelisted enum; every value is a bound parameter ([`SqlParam`],
//! which each driver converts to its engine's values), except two literals: `dialect <>
//! 'native'` and `state IN ('failed', 'cancelled')` (an engine uses a partial index only
//! when the query's `WHERE` implies the index's, which a bound value does not).
//!
//! What differs between the engines is a [`Dialect`]: placeholders (`?` in order for SQLite,
//! `$1, $2, …` for PostgreSQL), value lists (`IN (SELECT value FROM json_each(?))` of a JSON
//! array, or `= ANY(?)` of an array), `ifnull`/`coalesce`, `max`/`greatest`, `1`/`TRUE`, the
//! rank of a ranked sort (a JSON object read with `json_each` or `->>`), and the join and
//! subquery syntax each accepts. The SQLite statements are the ones the SQLite driver has
//! always run (its plan tests hold them to their indexes).
//!
//! **Speed:** a page is chosen on ids and sort keys from one index, then its rows are fetched
//! by id. A keyset page seeks its position (two range seeks when the sort value has ties); an
//! offset page still steps over every skipped index entry, so it costs what its offset is
//! deep, reading no job row when the index answers the filters.

use std::collections::BTreeMap;

use crate::Result;
use crate::list::{Cursor, CursorValue, Direction, JobPage, ListQuery, Pagination, SortField};
use crate::model::Job;

/// The condition of the partial indexes of failed and cancelled jobs (schema migration 9),
/// written as those indexes' `WHERE` is: an engine uses a partial index only when the
/// query's condition implies the index's.
const FAILED_OR_CANCELLED: &str = "state IN ('failed', 'cancelled')";

/// The SQL engine a list statement is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite: `?` placeholders, JSON lists read with `json_each`.
    Sqlite,
    /// PostgreSQL: `$n` placeholders, arrays compared with `= ANY`.
    Postgres,
}

/// A value bound to a list statement, engine-neutral; each driver converts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlParam {
    /// An integer.
    Integer(i64),
    /// A text.
    Text(String),
    /// A flag (SQLite binds 0 or 1).
    Bool(bool),
    /// A list of texts (SQLite: a JSON array; PostgreSQL: `text[]`).
    Texts(Vec<String>),
    /// A list of integers (SQLite: a JSON array; PostgreSQL: `bigint[]`).
    Integers(Vec<i64>),
    /// A ranked sort's value → rank (both engines: a JSON object as text).
    Ranks(BTreeMap<String, i64>),
}

impl SqlParam {
    /// A list as JSON text, as SQLite's `json_each` and PostgreSQL's `jsonb` read it; `None`
    /// for a single value.
    pub fn json(&self) -> Option<String> {
        let text = match self {
            SqlParam::Texts(values) => serde_json::to_string(values),
            SqlParam::Integers(values) => serde_json::to_string(values),
            SqlParam::Ranks(ranks) => serde_json::to_string(ranks),
            SqlParam::Integer(_) | SqlParam::Text(_) | SqlParam::Bool(_) => return None,
        };
        let empty = if matches!(self, SqlParam::Ranks(_)) {
            "{}"
        } else {
            "[]"
        };
        Some(text.unwrap_or_else(|_| empty.to_owned()))
    }
}

/// How a page finds its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageWalk {
    /// Walk the sort's index in its order, testing the filters, until the page is full:
    /// cheap when the matches lie dense in that order, and the only way without a state
    /// filter.
    #[default]
    SortIndex,
    /// Seek the matches in the state filter's index, read them all and sort them: cheap
    /// when they are few, wherever they lie in the sort order (a walk of the sort's index
    /// would test every job before it had a page of, say, the few running ones). The sort
    /// expression is written so that no index can serve it (SQLite's unary `+`); PostgreSQL
    /// chooses from its statistics of each state and is never asked for this walk.
    FilterIndex,
}

/// The statements of one list query, with their parameters.
#[derive(Debug, Clone)]
pub struct ListSql {
    /// The page: the job columns asked for, one row more than the page when more follow.
    pub select: String,
    /// The count of every match, when the query asked for it.
    pub count: Option<String>,
    /// The parameters of `select`, in placeholder order.
    pub params: Vec<SqlParam>,
    /// The parameters of `count` (the filters alone).
    pub count_params: Vec<SqlParam>,
    /// The page size.
    pub limit: u32,
    /// The sort the page follows.
    pub sort: SortField,
    /// Its direction.
    pub direction: Direction,
    /// The filters alone as one condition (true without filters), with `count_params` and
    /// `?` placeholders (nested conditions are built from it).
    condition: String,
}

impl ListSql {
    /// The page of the rows `select` answered (`total`: what `count` answered): at most
    /// `limit` jobs, whether more follow, and the cursor after the last.
    pub fn page(&self, mut jobs: Vec<Job>, total: Option<i64>) -> JobPage {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let has_more = jobs.len() > limit;
        jobs.truncate(limit);
        let next_cursor = if has_more {
            jobs.last()
                .map(|job| Cursor::after(job, self.sort, self.direction))
        } else {
            None
        };
        JobPage {
            jobs,
            next_cursor,
            has_more,
            total: total.map(|t| u64::try_from(t).unwrap_or(0)),
        }
    }
}

impl Dialect {
    /// The SQL expression sorted on; identical to the indexed expression in the schema.
    pub fn sort_expr(self, sort: SortField) -> &'static str {
        match (self, sort) {
            (_, SortField::Id) => "id",
            (_, SortField::CreatedAt) => "created_at",
            (_, SortField::UpdatedAt) => "updated_at",
            (_, SortField::State) => "state",
            (_, SortField::Kind) => "kind",
            (_, SortField::Name) => "name",
            (_, SortField::Source) => "source",
            (_, SortField::Target) => "target",
            (_, SortField::CreatedBy) => "created_by",
            (Dialect::Sqlite, SortField::DefinitionId) => "ifnull(definition_id, '')",
            (Dialect::Sqlite, SortField::StartedAt) => "ifnull(started_at, -1)",
            (Dialect::Sqlite, SortField::FinishedAt) => "ifnull(finished_at, -1)",
            (Dialect::Postgres, SortField::DefinitionId) => "coalesce(definition_id, '')",
            (Dialect::Postgres, SortField::StartedAt) => "coalesce(started_at, -1)",
            (Dialect::Postgres, SortField::FinishedAt) => "coalesce(finished_at, -1)",
        }
    }

    /// `expr` written so that no index serves it as a sort or a range
    /// ([`PageWalk::FilterIndex`]): SQLite's unary `+`, which keeps the value as it is.
    /// PostgreSQL is never asked.
    fn unindexed(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("+{expr}"),
            Dialect::Postgres => expr.to_owned(),
        }
    }

    /// `column` is one of a bound list.
    fn in_list(self, column: &'static str) -> &'static str {
        match (self, column) {
            (Dialect::Sqlite, "state") => "state IN (SELECT value FROM json_each(?))",
            (Dialect::Sqlite, "kind") => "kind IN (SELECT value FROM json_each(?))",
            (Dialect::Sqlite, "queue") => "queue IN (SELECT value FROM json_each(?))",
            (Dialect::Sqlite, "source") => "source IN (SELECT value FROM json_each(?))",
            (Dialect::Sqlite, "target") => "target IN (SELECT value FROM json_each(?))",
            (Dialect::Sqlite, "created_by") => "created_by IN (SELECT value FROM json_each(?))",
            (Dialect::Sqlite, "definition_id") => {
                "definition_id IN (SELECT value FROM json_each(?))"
            }
            (Dialect::Sqlite, "dialect") => "dialect IN (SELECT value FROM json_each(?))",
            (Dialect::Sqlite, _) => "id IN (SELECT value FROM json_each(?))",
            (Dialect::Postgres, "state") => "state = ANY(?)",
            (Dialect::Postgres, "kind") => "kind = ANY(?)",
            (Dialect::Postgres, "queue") => "queue = ANY(?)",
            (Dialect::Postgres, "source") => "source = ANY(?)",
            (Dialect::Postgres, "target") => "target = ANY(?)",
            (Dialect::Postgres, "created_by") => "created_by = ANY(?)",
            (Dialect::Postgres, "definition_id") => "definition_id = ANY(?)",
            (Dialect::Postgres, "dialect") => "dialect = ANY(?)",
            (Dialect::Postgres, _) => "id = ANY(?)",
        }
    }

    /// [`ListQuery::running_unreported`], [`ListQuery::running_in_phases`] and
    /// [`ListQuery::running_outside_phases`]: the two flags and two lists are bound in that
    /// order (unreported flag, in-phases, outside flag, outside-phases).
    fn running_stages(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "(state <> 'running' \
                 OR (? AND heartbeat_at IS NULL) \
                 OR (heartbeat_at IS NOT NULL AND phase IN (SELECT value FROM json_each(?))) \
                 OR (? AND heartbeat_at IS NOT NULL \
                     AND (phase IS NULL OR phase NOT IN (SELECT value FROM json_each(?)))))"
            }
            Dialect::Postgres => {
                "(state <> 'running' \
                 OR (? AND heartbeat_at IS NULL) \
                 OR (heartbeat_at IS NOT NULL AND phase = ANY(?)) \
                 OR (? AND heartbeat_at IS NOT NULL \
                     AND (phase IS NULL OR NOT (phase = ANY(?)))))"
            }
        }
    }

    /// [`ListQuery::sort_rank`]: the rank of the sort expression (`SORT`) in a JSON object
    /// of value → rank bound as a parameter; unlisted values rank last. (SQLite: no text sort
    /// expression is named like a `json_each` column, so `SORT` is the job's.)
    fn ranked(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "ifnull((SELECT r.value FROM json_each(?) AS r WHERE r.key = SORT), 9223372036854775807)"
            }
            // Bound as text (as SQLite's is): a parameter typed `jsonb` would refuse it.
            Dialect::Postgres => "coalesce((?::text::jsonb ->> SORT)::bigint, 9223372036854775807)",
        }
    }

    /// The condition that always holds.
    fn always(self) -> &'static str {
        match self {
            Dialect::Sqlite => "1",
            Dialect::Postgres => "TRUE",
        }
    }

    /// The negation of conditions that may be NULL, a NULL counted as "no match" first.
    fn none_of(self, any: &str) -> String {
        match self {
            Dialect::Sqlite => format!("NOT ifnull(({any}), 0)"),
            Dialect::Postgres => format!("NOT coalesce(({any}), FALSE)"),
        }
    }

    /// The larger of 0 and `expr`.
    fn at_least_zero(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("max(0, {expr})"),
            Dialect::Postgres => format!("greatest(0, {expr})"),
        }
    }

    /// How the page joins the jobs it names (SQLite: `CROSS JOIN` keeps the page the outer
    /// loop).
    fn page_join(self) -> &'static str {
        match self {
            Dialect::Sqlite => "CROSS JOIN",
            Dialect::Postgres => "JOIN",
        }
    }

    /// The alias a subquery in `FROM` needs (PostgreSQL before 16 requires one).
    fn subquery_alias(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " AS rest",
        }
    }

    /// The statement with its `?` placeholders as the engine writes them. Only placeholders
    /// are `?`: the text is built from constants, never from a value.
    fn placeholders(self, sql: String) -> String {
        match self {
            Dialect::Sqlite => sql,
            Dialect::Postgres => {
                let mut out = String::with_capacity(sql.len() + 16);
                let mut n = 0;
                for c in sql.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

/// Builds the statements of a checked query (`ListQuery::check`) for `dialect`, selecting
/// `columns` of `jobs`. `scope_tenant` is the caller's scope (`None`: every tenant).
///
/// # Errors
/// None today; kept for queries a later engine cannot express.
pub fn list_sql(
    query: &ListQuery,
    dialect: Dialect,
    scope_tenant: Option<&str>,
    columns: &str,
    walk: PageWalk,
) -> Result<ListSql> {
    let mut sql = build(query, dialect, scope_tenant, columns, walk)?;
    sql.select = dialect.placeholders(sql.select);
    sql.count = sql.count.map(|count| dialect.placeholders(count));
    Ok(sql)
}

/// [`list_sql`] with `?` placeholders (nested conditions are assembled from these).
fn build(
    query: &ListQuery,
    dialect: Dialect,
    scope_tenant: Option<&str>,
    columns: &str,
    walk: PageWalk,
) -> Result<ListSql> {
    let sort = query.sort_field();
    let direction = query.direction;
    let limit = query.page_size();
    let nested = nested_sql(query, dialect)?;
    // In a walk of the state's index neither the sort value nor the id (which breaks ties
    // and bounds a keyset page) may offer an index's order, and the executions' test may not
    // name their partial indexes (whose WHERE it is).
    let walked = |expr: &str| match walk {
        PageWalk::SortIndex => expr.to_owned(),
        PageWalk::FilterIndex => dialect.unindexed(expr),
    };
    let has_definition = query
        .with_definition
        .then(|| format!("{} IS NOT NULL", walked("definition_id")));
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<SqlParam> = Vec::new();

    let tenant = match (scope_tenant, &query.tenant) {
        (Some(scope), Some(asked)) if scope != asked => {
            // Another tenant's jobs are invisible, not forbidden: an empty page (SQLite: a
            // tenant no job has; PostgreSQL's text holds no NUL, so it says FALSE).
            match dialect {
                Dialect::Sqlite => Some("\u{0}no-such-tenant".to_owned()),
                Dialect::Postgres => {
                    clauses.push("FALSE");
                    Some(scope.to_owned())
                }
            }
        }
        (Some(scope), _) => Some(scope.to_owned()),
        (None, asked) => asked.clone(),
    };
    if let Some(tenant) = tenant {
        clauses.push("tenant = ?");
        params.push(SqlParam::Text(tenant));
    }
    // One value is an equality, which the planner matches to an index's column like any
    // other (`queue = ?` seeks `jobs_by_tenant_queue`); several are a list.
    let text_filters: [(&'static str, &'static str, &Vec<String>); 6] = [
        ("kind = ?", dialect.in_list("kind"), &query.kinds),
        ("queue = ?", dialect.in_list("queue"), &query.queues),
        ("source = ?", dialect.in_list("source"), &query.sources),
        ("target = ?", dialect.in_list("target"), &query.targets),
        (
            "created_by = ?",
            dialect.in_list("created_by"),
            &query.created_by,
        ),
        (
            "definition_id = ?",
            dialect.in_list("definition_id"),
            &query.definitions,
        ),
    ];
    match query.states.as_slice() {
        [] => {}
        [one] => {
            clauses.push("state = ?");
            params.push(SqlParam::Text(one.as_str().to_owned()));
        }
        many => {
            clauses.push(dialect.in_list("state"));
            params.push(SqlParam::Texts(
                many.iter().map(|s| s.as_str().to_owned()).collect(),
            ));
        }
    }
    for (one, many, values) in text_filters {
        match values.as_slice() {
            [] => {}
            [value] => {
                clauses.push(one);
                params.push(SqlParam::Text(value.clone()));
            }
            _ => {
                clauses.push(many);
                params.push(SqlParam::Texts(values.clone()));
            }
        }
    }
    match query.dialects.as_slice() {
        [] => {}
        [one] => {
            clauses.push("dialect = ?");
            params.push(SqlParam::Text(one.clone()));
        }
        many => {
            clauses.push(dialect.in_list("dialect"));
            params.push(SqlParam::Texts(many.to_vec()));
        }
    }
    // One API's jobs: the constant lets the planner use that API's partial indexes (a bound
    // value does not imply their WHERE). A walk of the state's index leaves it out, so that
    // none of them is walked instead.
    if query.labelled_only() && walk == PageWalk::SortIndex {
        clauses.push("dialect <> 'native'");
    }
    // Jobs that ended failed or cancelled have text-sort indexes of their own (partial, so
    // that the jobs that succeed, the bulk, never write them); a filter within those two
    // states says so literally for the planner to use them.
    if query.only_failed_or_cancelled() {
        clauses.push(FAILED_OR_CANCELLED);
    }
    if !query.ids.is_empty() {
        clauses.push(dialect.in_list("id"));
        params.push(SqlParam::Integers(query.ids.clone()));
    }
    if query.running_unreported
        || !query.running_in_phases.is_empty()
        || query.running_outside_phases.is_some()
    {
        clauses.push(dialect.running_stages());
        params.push(SqlParam::Bool(query.running_unreported));
        params.push(SqlParam::Texts(query.running_in_phases.clone()));
        params.push(SqlParam::Bool(query.running_outside_phases.is_some()));
        params.push(SqlParam::Texts(
            query.running_outside_phases.clone().unwrap_or_default(),
        ));
    }
    if let Some(after) = query.created_after {
        clauses.push("created_at >= ?");
        params.push(SqlParam::Integer(after));
    }
    let time_ranges: [(&'static str, Option<i64>); 5] = [
        ("created_at < ?", query.created_before),
        ("started_at >= ?", query.started_after),
        ("started_at < ?", query.started_before),
        ("finished_at >= ?", query.finished_after),
        ("finished_at < ?", query.finished_before),
    ];
    for (clause, bound) in time_ranges {
        if let Some(bound) = bound {
            clauses.push(clause);
            params.push(SqlParam::Integer(bound));
        }
    }
    if let Some(clause) = &has_definition {
        clauses.push(clause);
    }
    if let Some((clause, values)) = &nested {
        clauses.push(clause);
        params.extend(values.iter().cloned());
    }
    let count_clauses = clauses.clone();
    let count_params = params.clone();
    let condition = if count_clauses.is_empty() {
        dialect.always().to_owned()
    } else {
        format!("({})", count_clauses.join(" AND "))
    };

    let sort_expr = walked(dialect.sort_expr(sort));
    let sort_expr = sort_expr.as_str();
    let id_expr = walked("id");
    let where_sql = |clauses: &[&str]| {
        if clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", clauses.join(" AND ")).replace("SORT", sort_expr)
        }
    };
    let (dir, beyond) = match direction {
        Direction::Asc => ("ASC", ">"),
        Direction::Desc => ("DESC", "<"),
    };
    let key = if !query.sort_rank.is_empty() {
        dialect.ranked().replace("SORT", sort_expr)
    } else {
        sort_expr.to_owned()
    };
    let page_size = SqlParam::Integer(i64::from(limit) + 1);
    let cursor = match &query.page {
        Pagination::Cursor(Some(cursor)) => Some(cursor),
        Pagination::Cursor(None) | Pagination::Offset(_) => None,
    };
    // The page is chosen on ids and sort keys alone (an index covers them, so skipping
    // the rows before a deep offset reads no job rows when the filters are in the index
    // too), then its rows are fetched by id. One row more than the page tells whether
    // another page follows.
    let (with, page) = match cursor {
        Some(cursor) if sort != SortField::Id => {
            // After (v, i), descending: the rest of v's tie group (`SORT = v AND id < i`),
            // then the values past v (`SORT < v`). Each half is one range seek on the index
            // `(tenant, SORT, id)`; a single `(SORT, id) < (v, i)` would start at the top
            // of v's tie group and step over every job of it already listed.
            // The tie half (`tie`, ordered by id alone: SQLite does not see that an
            // expression such as `ifnull(started_at, -1)` held equal leaves the index in id
            // order, and would sort the whole group) runs first; the other half is limited
            // to what the page still needs, so when the tie group fills the page it reads
            // nothing (a merge of the two would fetch its first match, which can lie far
            // away when a filter is sparse there). The outer query orders the page.
            let value = match &cursor.value {
                CursorValue::Integer(v) => SqlParam::Integer(*v),
                CursorValue::Text(t) => SqlParam::Text(t.clone()),
            };
            let filter_params = params.clone();
            let tie_clause = format!("SORT = ? AND {id_expr} {beyond} ?");
            let rest_clause = format!("SORT {beyond} ?");
            let mut tie = clauses.clone();
            tie.push(&tie_clause);
            let mut rest = clauses.clone();
            rest.push(&rest_clause);
            params.extend([
                value.clone(),
                SqlParam::Integer(cursor.id),
                page_size.clone(),
            ]);
            params.extend(filter_params);
            params.extend([value, page_size]);
            (
                format!(
                    "WITH tie AS (SELECT {id_expr} AS page_id, {key} AS page_key FROM jobs{} \
                     ORDER BY page_id {dir} LIMIT ?) ",
                    where_sql(&tie)
                ),
                format!(
                    "SELECT page_id, page_key FROM tie UNION ALL \
                     SELECT page_id, page_key FROM (SELECT {id_expr} AS page_id, {key} AS page_key \
                     FROM jobs{} ORDER BY page_key {dir}, page_id {dir} \
                     LIMIT (SELECT {} FROM tie)){}",
                    where_sql(&rest),
                    dialect.at_least_zero("? - count(*)"),
                    dialect.subquery_alias(),
                ),
            )
        }
        _ => {
            let mut offset = 0;
            let mut page_clauses = clauses.clone();
            let id_clause = format!("{id_expr} {beyond} ?");
            match (cursor, &query.page) {
                (Some(cursor), _) => {
                    page_clauses.push(&id_clause);
                    params.push(SqlParam::Integer(cursor.id));
                }
                (None, Pagination::Offset(n)) => offset = *n,
                (None, Pagination::Cursor(_)) => {}
            }
            if !query.sort_rank.is_empty() {
                // The ranked key stands in the select list, before every placeholder of
                // the WHERE.
                params.insert(0, SqlParam::Ranks(query.sort_rank.clone()));
            }
            params.push(page_size);
            params.push(SqlParam::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
            (
                String::new(),
                format!(
                    "SELECT {id_expr} AS page_id, {key} AS page_key FROM jobs{} \
                     ORDER BY page_key {dir}, page_id {dir} LIMIT ? OFFSET ?",
                    where_sql(&page_clauses)
                ),
            )
        }
    };
    let select = format!(
        "{with}SELECT {columns} FROM ({page}) AS page \
         {} jobs ON jobs.id = page.page_id \
         ORDER BY page.page_key {dir}, page.page_id {dir}",
        dialect.page_join()
    );
    let count = query
        .count_total
        .then(|| format!("SELECT count(*) FROM jobs{}", where_sql(&count_clauses)));
    Ok(ListSql {
        select,
        count,
        params,
        count_params,
        limit,
        sort,
        direction,
        condition,
    })
}

/// [`ListQuery::all_of`], [`ListQuery::any_of`] and [`ListQuery::none_of`] as one
/// condition with its parameters, or `None` when there are none.
fn nested_sql(query: &ListQuery, dialect: Dialect) -> Result<Option<(String, Vec<SqlParam>)>> {
    if query.all_of.is_empty() && query.any_of.is_empty() && query.none_of.is_empty() {
        return Ok(None);
    }
    let mut parts = Vec::new();
    let mut params = Vec::new();
    let mut render = |queries: &[ListQuery], parts: &mut Vec<String>| -> Result<()> {
        for query in queries {
            let (condition, values) = filter_condition(query, dialect)?;
            parts.push(condition);
            params.extend(values);
        }
        Ok(())
    };
    let mut all = Vec::new();
    render(&query.all_of, &mut all)?;
    let mut any = Vec::new();
    render(&query.any_of, &mut any)?;
    let mut none = Vec::new();
    render(&query.none_of, &mut none)?;
    parts.extend(all);
    if !any.is_empty() {
        parts.push(format!("({})", any.join(" OR ")));
    }
    if !none.is_empty() {
        // A comparison with NULL is NULL, and NOT NULL is NULL: counted as "no match"
        // first, so the negation holds.
        parts.push(dialect.none_of(&none.join(" OR ")));
    }
    Ok(Some((format!("({})", parts.join(" AND ")), params)))
}

/// This query's filters (nested ones included) as one condition, with its parameters.
fn filter_condition(query: &ListQuery, dialect: Dialect) -> Result<(String, Vec<SqlParam>)> {
    let filters_only = ListQuery {
        tenant: None,
        sort: None,
        sort_rank: BTreeMap::new(),
        direction: Direction::default(),
        limit: None,
        page: Pagination::default(),
        count_total: false,
        ..query.clone()
    };
    let sql = build(&filters_only, dialect, None, "id", PageWalk::SortIndex)?;
    Ok((sql.condition, sql.count_params))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;

    #[test]
    fn postgres_statements_number_their_placeholders_and_bind_arrays() {
        let query = ListQuery {
            states: vec![State::Queued, State::Running],
            kinds: vec!["x' OR 1=1 --".into()],
            ids: vec![1, 2],
            none_of: vec![ListQuery {
                started_after: Some(5),
                ..ListQuery::default()
            }],
            count_total: true,
            ..ListQuery::default()
        };
        let sql = list_sql(
            &query,
            Dialect::Postgres,
            Some("t"),
            "id",
            PageWalk::SortIndex,
        )
        .ok();
        let select = sql.as_ref().map(|s| s.select.clone()).unwrap_or_default();
        assert!(
            !select.contains('?') && !select.contains("OR 1=1"),
            "{select}"
        );
        assert!(select.contains("state = ANY($2)"), "{select}");
        assert!(select.contains("id = ANY($4)"), "{select}");
        assert!(
            select.contains("NOT coalesce(((started_at >= $5)), FALSE)"),
            "{select}"
        );
        assert!(select.contains("LIMIT $6 OFFSET $7"), "{select}");
        assert!(
            select.contains(" JOIN jobs ON") && !select.contains("CROSS"),
            "{select}"
        );
        let count = sql
            .as_ref()
            .and_then(|s| s.count.clone())
            .unwrap_or_default();
        assert!(count.contains("(started_at >= $5)), FALSE)"), "{count}");
        assert_eq!(
            sql.map(|s| s.count_params.len()),
            Some(5),
            "tenant, states, kind, ids, started_after"
        );
    }

    #[test]
    fn lists_and_ranks_are_json_for_sqlite() {
        assert_eq!(
            SqlParam::Texts(vec!["a".into(), "b\"".into()]).json(),
            Some(r#"["a","b\""]"#.to_owned())
        );
        assert_eq!(SqlParam::Integers(vec![1, 2]).json(), Some("[1,2]".into()));
        assert_eq!(
            SqlParam::Ranks([("x".to_owned(), 3)].into_iter().collect()).json(),
            Some(r#"{"x":3}"#.into())
        );
        assert_eq!(SqlParam::Integer(1).json(), None);
    }
}
