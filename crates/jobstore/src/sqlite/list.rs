//! The list query in SQLite's SQL: [`ListQuery::to_sql`] assembles the statement of a checked
//! query ([`ListQuery::check`]) from constant fragments chosen by which filters are present and
//! from [`SortField::expr`], a whitelisted enum; every value is a bound parameter, except
//! [`NOT_NATIVE`], a constant (SQLite needs the literal to use the labelled jobs' partial
//! indexes).
//!
//! **Speed:** a page is chosen on ids and sort keys from one index, then its rows are fetched
//! by id. A keyset page seeks its position (two range seeks when the sort value has ties); an
//! offset page still steps over every skipped index entry (SQLite's B-trees do not count), so
//! it costs what its offset is deep, reading no job row when the index answers the filters.

use std::collections::BTreeMap;

use rusqlite::types::Value as SqlValue;
use serde::Serialize;

use crate::Result;
use crate::list::{CursorValue, Direction, ListQuery, Pagination, SortField};

impl SortField {
    /// The SQL expression sorted on; identical to the indexed expression in the schema.
    pub(crate) fn expr(self) -> &'static str {
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
            SortField::DefinitionId => "ifnull(definition_id, '')",
            SortField::StartedAt => "ifnull(started_at, -1)",
            SortField::FinishedAt => "ifnull(finished_at, -1)",
        }
    }
}

/// The statement for one query, with its parameters.
pub(crate) struct ListSql {
    pub select: String,
    pub count: Option<String>,
    pub params: Vec<SqlValue>,
    pub count_params: Vec<SqlValue>,
    pub limit: u32,
    pub sort: SortField,
    pub direction: Direction,
    /// The filters alone as one condition (`1` without filters), bound with `count_params`.
    pub condition: String,
}

/// [`ListQuery::running_unreported`], [`ListQuery::running_in_phases`] and
/// [`ListQuery::running_outside_phases`]: the two flags and two JSON lists are bound in that
/// order (unreported flag, in-phases, outside flag, outside-phases).
const RUNNING_STAGES: &str = "(state <> 'running' \
     OR (? AND heartbeat_at IS NULL) \
     OR (heartbeat_at IS NOT NULL AND phase IN (SELECT value FROM json_each(?))) \
     OR (? AND heartbeat_at IS NOT NULL \
         AND (phase IS NULL OR phase NOT IN (SELECT value FROM json_each(?)))))";

/// [`ListQuery::sort_rank`]: the rank of the sort expression (`SORT`) in a JSON object of
/// value → rank bound as a parameter; unlisted values rank last.
/// (No text sort expression is named like a `json_each` column, so `SORT` is the job's.)
const RANKED: &str =
    "ifnull((SELECT r.value FROM json_each(?) AS r WHERE r.key = SORT), 9223372036854775807)";

/// Added to a filter on labels that does not ask for native jobs: the partial list indexes of
/// the other APIs' jobs (migration 5) hold `dialect <> 'native'`, and SQLite uses a partial
/// index only when the query's WHERE implies the index's, which a bound label does not.
const NOT_NATIVE: &str = "dialect <> 'native'";

fn json_list<T: Serialize>(items: &[T]) -> SqlValue {
    SqlValue::Text(serde_json::to_string(items).unwrap_or_else(|_| "[]".into()))
}

impl ListQuery {
    /// Builds the statement of a checked query ([`ListQuery::check`]). `tenant` is the
    /// caller's scope (`None`: every tenant).
    pub(crate) fn to_sql(&self, scope_tenant: Option<&str>, columns: &str) -> Result<ListSql> {
        let sort = self.sort.unwrap_or(SortField::CreatedAt);
        let direction = self.direction;
        let limit = self.limit.unwrap_or(100);
        let nested = self.nested_sql()?;
        let mut clauses: Vec<&str> = Vec::new();
        let mut params: Vec<SqlValue> = Vec::new();

        let tenant = match (scope_tenant, &self.tenant) {
            (Some(scope), Some(asked)) if scope != asked => {
                // Another tenant's jobs are invisible, not forbidden: an empty page.
                Some("\u{0}no-such-tenant".to_owned())
            }
            (Some(scope), _) => Some(scope.to_owned()),
            (None, asked) => asked.clone(),
        };
        if let Some(tenant) = tenant {
            clauses.push("tenant = ?");
            params.push(SqlValue::Text(tenant));
        }
        // One value is an equality, which the planner matches to an index's column like any
        // other (`queue = ?` seeks `jobs_by_tenant_queue`); several are a list.
        let text_filters: [(&'static str, &'static str, &Vec<String>); 6] = [
            (
                "kind = ?",
                "kind IN (SELECT value FROM json_each(?))",
                &self.kinds,
            ),
            (
                "queue = ?",
                "queue IN (SELECT value FROM json_each(?))",
                &self.queues,
            ),
            (
                "source = ?",
                "source IN (SELECT value FROM json_each(?))",
                &self.sources,
            ),
            (
                "target = ?",
                "target IN (SELECT value FROM json_each(?))",
                &self.targets,
            ),
            (
                "created_by = ?",
                "created_by IN (SELECT value FROM json_each(?))",
                &self.created_by,
            ),
            (
                "definition_id = ?",
                "definition_id IN (SELECT value FROM json_each(?))",
                &self.definitions,
            ),
        ];
        match self.states.as_slice() {
            [] => {}
            [one] => {
                clauses.push("state = ?");
                params.push(SqlValue::Text(one.as_str().to_owned()));
            }
            many => {
                clauses.push("state IN (SELECT value FROM json_each(?))");
                params.push(json_list(many));
            }
        }
        for (one, many, values) in text_filters {
            match values.as_slice() {
                [] => {}
                [value] => {
                    clauses.push(one);
                    params.push(SqlValue::Text(value.clone()));
                }
                _ => {
                    clauses.push(many);
                    params.push(json_list(values));
                }
            }
        }
        match self.dialects.as_slice() {
            [] => {}
            [one] => {
                clauses.push("dialect = ?");
                params.push(SqlValue::Text(one.clone()));
            }
            many => {
                clauses.push("dialect IN (SELECT value FROM json_each(?))");
                params.push(json_list(many));
            }
        }
        if !self.dialects.is_empty() && !self.dialects.iter().any(|d| d == crate::NATIVE) {
            clauses.push(NOT_NATIVE);
        }
        if !self.ids.is_empty() {
            clauses.push("id IN (SELECT value FROM json_each(?))");
            params.push(json_list(&self.ids));
        }
        if self.running_unreported
            || !self.running_in_phases.is_empty()
            || self.running_outside_phases.is_some()
        {
            clauses.push(RUNNING_STAGES);
            params.push(SqlValue::Integer(i64::from(self.running_unreported)));
            params.push(json_list(&self.running_in_phases));
            params.push(SqlValue::Integer(i64::from(
                self.running_outside_phases.is_some(),
            )));
            params.push(json_list(
                self.running_outside_phases.as_deref().unwrap_or_default(),
            ));
        }
        if let Some(after) = self.created_after {
            clauses.push("created_at >= ?");
            params.push(SqlValue::Integer(after));
        }
        let time_ranges: [(&'static str, Option<i64>); 5] = [
            ("created_at < ?", self.created_before),
            ("started_at >= ?", self.started_after),
            ("started_at < ?", self.started_before),
            ("finished_at >= ?", self.finished_after),
            ("finished_at < ?", self.finished_before),
        ];
        for (clause, bound) in time_ranges {
            if let Some(bound) = bound {
                clauses.push(clause);
                params.push(SqlValue::Integer(bound));
            }
        }
        if self.with_definition {
            clauses.push("definition_id IS NOT NULL");
        }
        if let Some((clause, values)) = &nested {
            clauses.push(clause);
            params.extend(values.iter().cloned());
        }
        let count_clauses = clauses.clone();
        let count_params = params.clone();
        let condition = if count_clauses.is_empty() {
            "1".to_owned()
        } else {
            format!("({})", count_clauses.join(" AND "))
        };

        let where_sql = |clauses: &[&str]| {
            if clauses.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", clauses.join(" AND ")).replace("SORT", sort.expr())
            }
        };
        let (dir, beyond) = match direction {
            Direction::Asc => ("ASC", ">"),
            Direction::Desc => ("DESC", "<"),
        };
        let key = if !self.sort_rank.is_empty() {
            RANKED.replace("SORT", sort.expr())
        } else {
            sort.expr().to_owned()
        };
        let page_size = SqlValue::Integer(i64::from(limit) + 1);
        let cursor = match &self.page {
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
                    CursorValue::Integer(v) => SqlValue::Integer(*v),
                    CursorValue::Text(t) => SqlValue::Text(t.clone()),
                };
                let filter_params = params.clone();
                let tie_clause = format!("SORT = ? AND id {beyond} ?");
                let rest_clause = format!("SORT {beyond} ?");
                let mut tie = clauses.clone();
                tie.push(&tie_clause);
                let mut rest = clauses.clone();
                rest.push(&rest_clause);
                params.extend([
                    value.clone(),
                    SqlValue::Integer(cursor.id),
                    page_size.clone(),
                ]);
                params.extend(filter_params);
                params.extend([value, page_size]);
                (
                    format!(
                        "WITH tie AS (SELECT id AS page_id, {key} AS page_key FROM jobs{} \
                         ORDER BY page_id {dir} LIMIT ?) ",
                        where_sql(&tie)
                    ),
                    format!(
                        "SELECT page_id, page_key FROM tie UNION ALL \
                         SELECT page_id, page_key FROM (SELECT id AS page_id, {key} AS page_key \
                         FROM jobs{} ORDER BY page_key {dir}, page_id {dir} \
                         LIMIT (SELECT max(0, ? - count(*)) FROM tie))",
                        where_sql(&rest)
                    ),
                )
            }
            _ => {
                let mut offset = 0;
                let mut page_clauses = clauses.clone();
                let id_clause = format!("id {beyond} ?");
                match (cursor, &self.page) {
                    (Some(cursor), _) => {
                        page_clauses.push(&id_clause);
                        params.push(SqlValue::Integer(cursor.id));
                    }
                    (None, Pagination::Offset(n)) => offset = *n,
                    (None, Pagination::Cursor(_)) => {}
                }
                if !self.sort_rank.is_empty() {
                    // The ranked key stands in the select list, before every placeholder of
                    // the WHERE.
                    params.insert(
                        0,
                        SqlValue::Text(
                            serde_json::to_string(&self.sort_rank).unwrap_or_else(|_| "{}".into()),
                        ),
                    );
                }
                params.push(page_size);
                params.push(SqlValue::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
                (
                    String::new(),
                    format!(
                        "SELECT id AS page_id, {key} AS page_key FROM jobs{} \
                         ORDER BY page_key {dir}, page_id {dir} LIMIT ? OFFSET ?",
                        where_sql(&page_clauses)
                    ),
                )
            }
        };
        let select = format!(
            "{with}SELECT {columns} FROM ({page}) AS page \
             CROSS JOIN jobs ON jobs.id = page.page_id \
             ORDER BY page.page_key {dir}, page.page_id {dir}"
        );
        let count = self
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
    fn nested_sql(&self) -> Result<Option<(String, Vec<SqlValue>)>> {
        if self.all_of.is_empty() && self.any_of.is_empty() && self.none_of.is_empty() {
            return Ok(None);
        }
        let mut parts = Vec::new();
        let mut params = Vec::new();
        let mut render = |queries: &[ListQuery], parts: &mut Vec<String>| -> Result<()> {
            for query in queries {
                let (condition, values) = query.filter_condition()?;
                parts.push(condition);
                params.extend(values);
            }
            Ok(())
        };
        let mut all = Vec::new();
        render(&self.all_of, &mut all)?;
        let mut any = Vec::new();
        render(&self.any_of, &mut any)?;
        let mut none = Vec::new();
        render(&self.none_of, &mut none)?;
        parts.extend(all);
        if !any.is_empty() {
            parts.push(format!("({})", any.join(" OR ")));
        }
        if !none.is_empty() {
            // A comparison with NULL is NULL, and NOT NULL is NULL: counted as "no match"
            // first, so the negation holds.
            parts.push(format!("NOT ifnull(({}), 0)", none.join(" OR ")));
        }
        Ok(Some((format!("({})", parts.join(" AND ")), params)))
    }

    /// This query's filters (nested ones included) as one condition, with its parameters.
    fn filter_condition(&self) -> Result<(String, Vec<SqlValue>)> {
        let filters_only = ListQuery {
            tenant: None,
            sort: None,
            sort_rank: BTreeMap::new(),
            direction: Direction::default(),
            limit: None,
            page: Pagination::default(),
            count_total: false,
            ..self.clone()
        };
        let sql = filters_only.to_sql(None, "id")?;
        Ok((sql.condition, sql.count_params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::list::{Cursor, SortType};
    use crate::sqlite::db::{SCHEMA_VERSION, migrate_to};
    use crate::state::State;

    #[test]
    fn ranked_sorts_bind_their_ranks_and_page_by_offset_only() {
        let ranked = ListQuery {
            sort: Some(SortField::Kind),
            sort_rank: [("x' --".to_owned(), 1)].into_iter().collect(),
            page: Pagination::Offset(0),
            running_outside_phases: Some(vec!["update".into()]),
            ..ListQuery::default()
        };
        let sql = ranked.to_sql(Some("default"), "id").ok();
        let select = sql.as_ref().map(|s| s.select.clone()).unwrap_or_default();
        assert!(!select.contains("x' --"), "{select}");
        assert!(
            select.contains("WHERE r.key = kind), 9223372036854775807) AS page_key"),
            "{select}"
        );
        assert!(
            select.contains("ORDER BY page_key DESC, page_id DESC"),
            "{select}"
        );
        assert!(select.contains("phase NOT IN"), "{select}");
        for refused in [
            ListQuery {
                page: Pagination::Cursor(None),
                ..ranked.clone()
            },
            ListQuery {
                sort: Some(SortField::CreatedAt),
                ..ranked.clone()
            },
        ] {
            assert!(matches!(
                refused.check().err(),
                Some(Error::InvalidInput { .. })
            ));
        }
    }

    /// Nested conditions select what they say, against a real table: AND, OR and NOT, with a
    /// time the job does not have yet counted as "no match" (so its negation matches).
    #[test]
    fn nested_conditions_combine_with_and_or_and_not() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE jobs (id INTEGER PRIMARY KEY, tenant TEXT, state TEXT, \
             definition_id TEXT, started_at INTEGER, finished_at INTEGER, created_at INTEGER);
             INSERT INTO jobs VALUES (1, 't', 'succeeded', 'a', 10, 20, 1),
                                     (2, 't', 'running', 'a', 30, NULL, 2),
                                     (3, 't', 'queued', 'b', NULL, NULL, 3),
                                     (4, 't', 'queued', NULL, NULL, NULL, 4),
                                     (5, 'u', 'queued', 'b', NULL, NULL, 5);",
        )
        .unwrap();
        let ids = |query: ListQuery| -> Vec<i64> {
            let sql = ListQuery {
                sort: Some(SortField::Id),
                direction: Direction::Asc,
                ..query
            }
            .to_sql(Some("t"), "id")
            .unwrap();
            let mut stmt = conn.prepare(&sql.select).unwrap();
            stmt.query_map(rusqlite::params_from_iter(sql.params.iter()), |row| {
                row.get(0)
            })
            .unwrap()
            .collect::<rusqlite::Result<Vec<i64>>>()
            .unwrap()
        };
        let not_started = ListQuery {
            started_after: Some(i64::MIN),
            ..ListQuery::default()
        };
        let of = |definition: &str| ListQuery {
            definitions: vec![definition.into()],
            ..ListQuery::default()
        };
        assert_eq!(
            ids(ListQuery {
                with_definition: true,
                ..ListQuery::default()
            }),
            [1, 2, 3]
        );
        assert_eq!(
            ids(ListQuery {
                with_definition: true,
                none_of: vec![not_started.clone()],
                ..ListQuery::default()
            }),
            [3]
        );
        assert_eq!(
            ids(ListQuery {
                any_of: vec![
                    ListQuery {
                        states: vec![State::Running],
                        ..ListQuery::default()
                    },
                    of("b"),
                ],
                ..ListQuery::default()
            }),
            [2, 3]
        );
        assert_eq!(
            ids(ListQuery {
                all_of: vec![of("a")],
                none_of: vec![ListQuery {
                    finished_before: Some(100),
                    ..ListQuery::default()
                }],
                ..ListQuery::default()
            }),
            [2]
        );
        // NOT (NOT started): started; nested conditions hold their own nested conditions.
        assert_eq!(
            ids(ListQuery {
                none_of: vec![ListQuery {
                    none_of: vec![not_started],
                    ..ListQuery::default()
                }],
                ..ListQuery::default()
            }),
            [1, 2]
        );
        // A nested query's tenant does not widen the caller's scope.
        assert_eq!(
            ids(ListQuery {
                any_of: vec![ListQuery {
                    tenant: Some("u".into()),
                    ..of("b")
                }],
                ..ListQuery::default()
            }),
            [3]
        );
    }

    /// `EXPLAIN QUERY PLAN` of a query's page statement (the count's with `count`), as one
    /// line per step, on a database migrated to the current schema.
    fn plan_of(conn: &rusqlite::Connection, query: &ListQuery, count: bool) -> Vec<String> {
        let sql = query.to_sql(Some("default"), "id").unwrap();
        let (text, params) = if count {
            (sql.count.unwrap(), sql.count_params)
        } else {
            (sql.select, sql.params)
        };
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {text}")).unwrap();
        stmt.query_map(rusqlite::params_from_iter(params.iter()), |row| {
            row.get::<_, String>(3)
        })
        .unwrap()
        .collect::<rusqlite::Result<Vec<_>>>()
        .unwrap()
    }

    fn migrated() -> rusqlite::Connection {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate_to(&conn, SCHEMA_VERSION).unwrap();
        conn
    }

    fn after(sort: SortField, direction: Direction) -> Pagination {
        let value = match sort.sort_type() {
            SortType::Integer => CursorValue::Integer(5),
            SortType::Text => CursorValue::Text("m".into()),
        };
        Pagination::Cursor(Some(Cursor {
            sort,
            direction,
            value,
            id: 7,
        }))
    }

    /// A keyset page after (v, id) is two index range seeks: the rest of v's tie group
    /// (`SORT = v AND id < id`) and the values past v, never a walk through the tie group.
    #[test]
    fn keyset_pages_seek_the_tie_group_and_the_rest_separately() {
        let conn = migrated();
        for sort in SortField::ALL {
            for direction in [Direction::Asc, Direction::Desc] {
                let query = ListQuery {
                    sort: Some(sort),
                    direction,
                    page: after(sort, direction),
                    ..ListQuery::default()
                };
                let plan = plan_of(&conn, &query, false);
                let seeks: Vec<&String> = plan
                    .iter()
                    .filter(|l| l.starts_with("SEARCH jobs"))
                    .collect();
                let beyond = if direction == Direction::Asc {
                    '>'
                } else {
                    '<'
                };
                if sort == SortField::Id {
                    assert!(
                        seeks.iter().any(|l| l.contains(&format!("id{beyond}?"))),
                        "{sort:?} {direction:?}: {plan:?}"
                    );
                    continue;
                }
                let tie = format!("=? AND id{beyond}?)");
                let rest = format!("{beyond}?)");
                assert!(
                    seeks.iter().any(|l| l.ends_with(&tie)),
                    "{sort:?} {direction:?}: {plan:?}"
                );
                assert!(
                    seeks
                        .iter()
                        .any(|l| l.ends_with(&rest) && !l.ends_with(&tie)),
                    "{sort:?} {direction:?}: {plan:?}"
                );
                assert!(
                    !plan.iter().any(|l| l.starts_with("SCAN jobs")),
                    "{sort:?} {direction:?}: {plan:?}"
                );
            }
        }
    }

    /// The pages (first, after a cursor, at an offset) and the count of one API's jobs are
    /// answered from the partial indexes of labelled jobs (or, for executions of a definition,
    /// from theirs), never by the general sort indexes that hold every job; a filter on
    /// kinds or states is answered in the index too (covering: no job row is read before the
    /// page's own).
    #[test]
    fn labelled_lists_use_the_partial_indexes() {
        let conn = migrated();
        let labelled = |sort| ListQuery {
            dialects: vec!["acme".into()],
            kinds: vec!["import".into(), "export".into()],
            states: vec![State::Failed, State::Cancelled],
            sort: Some(sort),
            count_total: true,
            ..ListQuery::default()
        };
        // An execution search as an API sends it (an empty nested condition included).
        let executions = |sort| ListQuery {
            with_definition: true,
            states: vec![State::Running, State::Queued],
            all_of: vec![ListQuery::default()],
            sort: Some(sort),
            count_total: true,
            ..ListQuery::default()
        };
        let mut cases = Vec::new();
        for sort in [
            SortField::Id,
            SortField::CreatedAt,
            SortField::UpdatedAt,
            SortField::State,
            SortField::Name,
            SortField::Source,
            SortField::Target,
            SortField::CreatedBy,
        ] {
            cases.push(("jobs_labelled_by_", labelled(sort)));
        }
        for sort in [
            SortField::Id,
            SortField::DefinitionId,
            SortField::StartedAt,
            SortField::FinishedAt,
        ] {
            cases.push(("jobs_executions_by_", executions(sort)));
        }
        for (index, query) in cases {
            let sort = query.sort.unwrap_or(SortField::CreatedAt);
            for direction in [Direction::Asc, Direction::Desc] {
                for page in [
                    Pagination::Cursor(None),
                    after(sort, direction),
                    Pagination::Offset(1000),
                ] {
                    let query = ListQuery {
                        direction,
                        page,
                        ..query.clone()
                    };
                    let plan = plan_of(&conn, &query, false);
                    let page_steps: Vec<&String> = plan
                        .iter()
                        .filter(|l| l.starts_with("SEARCH jobs") || l.starts_with("SCAN jobs"))
                        .filter(|l| !l.contains("INTEGER PRIMARY KEY"))
                        .collect();
                    assert!(!page_steps.is_empty(), "{query:?}: {plan:?}");
                    for step in page_steps {
                        assert!(
                            step.starts_with(&format!("SEARCH jobs USING COVERING INDEX {index}")),
                            "{query:?}: {plan:?}"
                        );
                    }
                }
            }
            if query.count_total {
                let plan = plan_of(&conn, &query, true);
                assert!(
                    plan.iter().any(
                        |l| l.starts_with(&format!("SEARCH jobs USING COVERING INDEX {index}"))
                    ),
                    "count {query:?}: {plan:?}"
                );
            }
        }
    }

    /// A list of one queue in the default order (creation), first page, after a cursor and
    /// at an offset, walks that queue's jobs in `jobs_by_tenant_queue`: no scan of the
    /// creation order filtering every job, no sort of all the queue's jobs.
    #[test]
    fn a_list_of_one_queue_walks_its_index() {
        let conn = migrated();
        for direction in [Direction::Asc, Direction::Desc] {
            for page in [
                Pagination::Cursor(None),
                after(SortField::CreatedAt, direction),
                Pagination::Offset(1000),
            ] {
                let query = ListQuery {
                    queues: vec!["imports".into()],
                    direction,
                    page,
                    ..ListQuery::default()
                };
                let plan = plan_of(&conn, &query, false);
                assert!(
                    plan.iter().any(|l| l.starts_with("SEARCH jobs USING")
                        && l.contains("INDEX jobs_by_tenant_queue (tenant=? AND queue=?")),
                    "{query:?}: {plan:?}"
                );
                // (A keyset page sorts its two bounded parts, the tie group and the rest.)
                if !matches!(query.page, Pagination::Cursor(Some(_))) {
                    assert!(
                        !plan.iter().any(|l| l.contains("TEMP B-TREE")),
                        "{query:?}: {plan:?}"
                    );
                }
            }
        }
    }

    /// Labels are bound parameters, never SQL text; only the fixed `native` literal is
    /// written into a query, and only when native jobs are not asked for.
    #[test]
    fn labels_are_bound_never_text() {
        let sql = |dialects: &[&str]| {
            ListQuery {
                dialects: dialects.iter().map(|d| (*d).to_owned()).collect(),
                ..ListQuery::default()
            }
            .to_sql(None, "id")
            .map(|s| s.select)
            .unwrap_or_default()
        };
        for labels in [&["acme'; --"][..], &["acme", "globex"], &["x' OR 1=1"]] {
            let text = sql(labels);
            assert!(!text.contains("acme") && !text.contains("OR 1=1"), "{text}");
            assert!(text.contains("dialect <> 'native'"), "{text}");
        }
        assert!(!sql(&["native"]).contains("<> 'native'"));
        assert!(!sql(&["native", "acme"]).contains("<> 'native'"));
    }

    #[test]
    fn filters_become_placeholders_never_text() {
        let query = ListQuery {
            kinds: vec!["x' OR 1=1 --".into()],
            sort: Some(SortField::Kind),
            ..ListQuery::default()
        };
        let sql = query.to_sql(Some("default"), "id").map(|s| s.select);
        let sql = sql.unwrap_or_default();
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(sql.contains("kind AS page_key"), "{sql}");
        assert!(
            sql.contains("ORDER BY page_key DESC, page_id DESC"),
            "{sql}"
        );
    }
}
