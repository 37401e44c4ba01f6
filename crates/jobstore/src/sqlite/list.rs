//! The list query in SQLite's SQL: the shared builder ([`crate::driver::list_sql`]) in its
//! SQLite dialect, with its values bound as SQLite's (lists and ranks as JSON text read with
//! `json_each`, flags as 0 or 1). The plan tests below hold its statements to their indexes.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, params};

use crate::Result;
use crate::driver::list_sql::{self, Dialect, PageWalk, SqlParam};
use crate::list::{ListQuery, Pagination, SortField};

/// The statement for one query, with its parameters as SQLite's values.
pub(crate) struct ListSql {
    pub select: String,
    pub count: Option<String>,
    pub params: Vec<SqlValue>,
    pub count_params: Vec<SqlValue>,
    /// The statements as the builder answered them (for the page it makes of the rows).
    pub shared: list_sql::ListSql,
}

/// A builder's value as SQLite binds it.
pub(crate) fn sqlite_value(param: &SqlParam) -> SqlValue {
    match param {
        SqlParam::Integer(value) => SqlValue::Integer(*value),
        SqlParam::Text(text) => SqlValue::Text(text.clone()),
        SqlParam::Bool(flag) => SqlValue::Integer(i64::from(*flag)),
        SqlParam::Texts(_) | SqlParam::Integers(_) | SqlParam::Ranks(_) => {
            SqlValue::Text(param.json().unwrap_or_default())
        }
    }
}

impl ListQuery {
    /// Builds the statement of a checked query ([`ListQuery::check`]) in SQLite's dialect.
    /// `tenant` is the caller's scope (`None`: every tenant).
    pub(crate) fn to_sql(
        &self,
        scope_tenant: Option<&str>,
        columns: &str,
        walk: PageWalk,
    ) -> Result<ListSql> {
        let shared = list_sql::list_sql(self, Dialect::Sqlite, scope_tenant, columns, walk)?;
        Ok(ListSql {
            select: shared.select.clone(),
            count: shared.count.clone(),
            params: shared.params.iter().map(sqlite_value).collect(),
            count_params: shared.count_params.iter().map(sqlite_value).collect(),
            shared,
        })
    }
}

/// The jobs of a tenant (every tenant: `?1` NULL) in the queues asked for (any: `?2` NULL),
/// and those of them in the states asked for (`?3`), from the job counts.
const SCOPE_AND_MATCHES: &str = "SELECT ifnull(sum(jobs), 0), \
     ifnull(sum(jobs) FILTER (WHERE state IN (SELECT value FROM json_each(?3))), 0) \
     FROM job_counts WHERE (?1 IS NULL OR tenant = ?1) \
     AND (?2 IS NULL OR queue IN (SELECT value FROM json_each(?2)))";

/// How many index entries read in order cost about one job row read by id: one API's 200,000
/// entries were walked in 20 ms, and 40,000 rows read in 30 ms, in the benchmark's file of a
/// million jobs.
const ENTRIES_PER_ROW_READ: i64 = 8;

/// How a page of `query` finds its jobs, chosen from the job counts (a few rows per tenant,
/// queue and state, exact in every transaction). SQLite's planner has no statistics of each
/// state: sorted by anything but the state, it walks the sort's index and reads each job's
/// row to test the state, which for the few running jobs among a million finished ones is a
/// walk through all of them (seconds). With `m` matches among the `n` jobs in scope, a page
/// of `p` rows costs about `p * n / m` row reads by the sort's index and `m` by the state's;
/// the cheaper wins. One API's jobs and executions of definitions are walked in partial
/// indexes that carry the state, testing it on the entry without reading the row, so their
/// walk counts [`ENTRIES_PER_ROW_READ`] entries as one row (the few running jobs of one
/// API among its 200,000 were still a walk of every entry, 20 ms). Pages of failed or
/// cancelled jobs sorted by a text column walk their own partial indexes (matches only),
/// and a ranked sort sorts every match anyway.
pub(crate) fn page_walk(
    conn: &Connection,
    scope_tenant: Option<&str>,
    query: &ListQuery,
) -> Result<PageWalk> {
    let sort = query.sort_field();
    let own_index = query.only_failed_or_cancelled() && sort.is_free_text();
    if query.states.is_empty()
        || sort == SortField::State
        || !query.sort_rank.is_empty()
        || own_index
    {
        return Ok(PageWalk::SortIndex);
    }
    let state_in_entries = query.labelled_only() || query.with_definition;
    let tenant = scope_tenant.or(query.tenant.as_deref());
    let queues = (!query.queues.is_empty())
        .then(|| SqlParam::Texts(query.queues.clone()).json())
        .flatten();
    let states = SqlParam::Texts(query.states.iter().map(|s| s.as_str().to_owned()).collect())
        .json()
        .unwrap_or_default();
    let (scope, matches): (i64, i64) = conn
        .prepare_cached(SCOPE_AND_MATCHES)?
        .query_row(params![tenant, queues, states], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
    let offset = match query.page {
        Pagination::Offset(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Pagination::Cursor(_) => 0,
    };
    let needed = offset.saturating_add(i64::from(query.page_size()) + 1);
    let by_state = matches.saturating_mul(matches);
    let by_sort = needed.saturating_mul(scope)
        / if state_in_entries {
            ENTRIES_PER_ROW_READ
        } else {
            1
        };
    Ok(if by_state <= by_sort {
        PageWalk::FilterIndex
    } else {
        PageWalk::SortIndex
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::list::{Cursor, CursorValue, Direction, SortType};
    use crate::sqlite::db::{SCHEMA_VERSION, migrate_to};
    use crate::sqlite::ops::{JOB_COLUMNS, job_from_row};
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
        let sql = ranked
            .to_sql(Some("default"), "id", PageWalk::SortIndex)
            .ok();
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
            .to_sql(Some("t"), "id", PageWalk::SortIndex)
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
        walk_plan(conn, query, count, PageWalk::SortIndex)
    }

    /// [`plan_of`] for a page found by `walk`.
    fn walk_plan(
        conn: &rusqlite::Connection,
        query: &ListQuery,
        count: bool,
        walk: PageWalk,
    ) -> Vec<String> {
        let sql = query.to_sql(Some("default"), "id", walk).unwrap();
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
        let labelled = |sort, states| ListQuery {
            dialects: vec!["acme".into()],
            kinds: vec!["import".into(), "export".into()],
            states,
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
            SortField::DefinitionId,
        ] {
            cases.push((
                "jobs_labelled_",
                "jobs_labelled_by_",
                labelled(sort, vec![State::Succeeded, State::Failed]),
            ));
            // Failed and cancelled jobs sorted by text have indexes of their own.
            cases.push((
                "jobs_labelled_",
                if sort.is_free_text() {
                    "jobs_labelled_failed_or_cancelled_by_"
                } else {
                    "jobs_labelled_by_"
                },
                labelled(sort, vec![State::Failed, State::Cancelled]),
            ));
        }
        for sort in [
            SortField::Id,
            SortField::DefinitionId,
            SortField::StartedAt,
            SortField::FinishedAt,
        ] {
            cases.push(("jobs_executions_", "jobs_executions_by_", executions(sort)));
        }
        // (the family of indexes, the page's index, the query): the count may use any index
        // of the family.
        for (family, index, query) in cases {
            let sort = query.sort_field();
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
                    plan.iter()
                        .any(|l| l
                            .starts_with(&format!("SEARCH jobs USING COVERING INDEX {family}"))),
                    "count {query:?}: {plan:?}"
                );
            }
        }
    }

    /// A page of failed or cancelled jobs (either or both) sorted by a text column walks the
    /// partial index of those jobs in that order, first page, after a cursor and at an
    /// offset, with every filter but the state's tested in the index; a state filter that
    /// takes in another state walks the full sort index, which holds every job.
    #[test]
    fn failed_or_cancelled_jobs_by_text_walk_their_own_indexes() {
        let conn = migrated();
        for sort in SortField::ALL.into_iter().filter(|s| s.is_free_text()) {
            for (states, own) in [
                (vec![State::Failed], true),
                (vec![State::Cancelled], true),
                (vec![State::Failed, State::Cancelled], true),
                (vec![State::Failed, State::Succeeded], false),
            ] {
                for direction in [Direction::Asc, Direction::Desc] {
                    for page in [
                        Pagination::Cursor(None),
                        after(sort, direction),
                        Pagination::Offset(1000),
                    ] {
                        let query = ListQuery {
                            states: states.clone(),
                            kinds: vec!["import".into()],
                            sort: Some(sort),
                            direction,
                            page,
                            ..ListQuery::default()
                        };
                        let plan = plan_of(&conn, &query, false);
                        let walks_own = plan.iter().any(|l| {
                            l.starts_with(
                                "SEARCH jobs USING COVERING INDEX jobs_failed_or_cancelled_by_",
                            )
                        });
                        assert_eq!(walks_own, own, "{query:?}: {plan:?}");
                        assert!(
                            !plan.iter().any(|l| l.starts_with("SCAN jobs")),
                            "{query:?}: {plan:?}"
                        );
                    }
                }
            }
        }
    }

    /// Jobs of every state, sort value and label, as the tests of the two walks need them:
    /// `n` jobs, one in 50 open (awaiting data), one in 7 queued, the rest finished.
    fn with_jobs(n: i64) -> rusqlite::Connection {
        let conn = migrated();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO jobs (kind, queue, name, source, target, created_by, dialect, state, \
                 definition_id, run_at, created_at, updated_at, started_at, finished_at) \
             SELECT printf('k%d', i % 3), printf('q%d', i % 2), printf('n%03d', (i * 37) % 101), \
                 printf('s%d', i % 5), printf('t%d', (i * 7) % 11), printf('u%d', i % 4), \
                 CASE i % 4 WHEN 0 THEN 'native' ELSE 'c360' END, \
                 CASE WHEN i % 50 = 0 THEN 'open' WHEN i % 7 = 0 THEN 'queued' \
                     WHEN i % 5 = 0 THEN 'failed' ELSE 'succeeded' END, \
                 CASE WHEN i % 3 = 0 THEN printf('d%d', i % 6) END, \
                 i, i % 97, (i * 13) % 89, \
                 CASE WHEN i % 50 <> 0 AND i % 7 <> 0 THEN i % 83 END, \
                 CASE WHEN i % 50 <> 0 AND i % 7 <> 0 THEN i % 79 END \
             FROM n",
            [n],
        )
        .unwrap();
        conn
    }

    /// Every page of `query` (cursor pages until the last, or the offset page asked for),
    /// as ids, found by `walk`.
    fn pages(conn: &rusqlite::Connection, query: &ListQuery, walk: PageWalk) -> Vec<Vec<i64>> {
        let mut query = query.clone();
        let mut pages = Vec::new();
        loop {
            let sql = query.to_sql(Some("default"), JOB_COLUMNS, walk).unwrap();
            let jobs = conn
                .prepare(&sql.select)
                .unwrap()
                .query_map(rusqlite::params_from_iter(sql.params.iter()), job_from_row)
                .unwrap()
                .collect::<rusqlite::Result<Vec<_>>>()
                .unwrap();
            let page = sql.shared.page(jobs, None);
            pages.push(page.jobs.iter().map(|job| job.id).collect());
            match (page.next_cursor, &query.page) {
                (Some(cursor), Pagination::Cursor(_)) => {
                    query.page = Pagination::Cursor(Some(cursor));
                }
                _ => return pages,
            }
        }
    }

    /// Seeking the matches in the state's index answers exactly the pages the walk of the
    /// sort's index answers: every sort but the ranked ones, both directions, cursor pages
    /// to the end and an offset page, with state filters alone and among others.
    #[test]
    fn both_walks_answer_the_same_pages() {
        let conn = with_jobs(600);
        let filters = [
            ListQuery {
                states: vec![State::Open],
                ..ListQuery::default()
            },
            ListQuery {
                states: vec![State::Queued, State::Open],
                queues: vec!["q1".into()],
                ..ListQuery::default()
            },
            ListQuery {
                states: vec![State::Succeeded, State::Failed],
                dialects: vec!["c360".into()],
                kinds: vec!["k1".into()],
                ..ListQuery::default()
            },
            ListQuery {
                states: vec![State::Queued],
                with_definition: true,
                ..ListQuery::default()
            },
        ];
        for filter in &filters {
            for sort in SortField::ALL {
                for direction in [Direction::Asc, Direction::Desc] {
                    for page in [Pagination::Cursor(None), Pagination::Offset(9)] {
                        let query = ListQuery {
                            sort: Some(sort),
                            direction,
                            limit: Some(4),
                            page,
                            ..filter.clone()
                        };
                        let by_sort = pages(&conn, &query, PageWalk::SortIndex);
                        let by_state = pages(&conn, &query, PageWalk::FilterIndex);
                        assert!(by_sort.iter().flatten().count() > 0, "{query:?}");
                        assert_eq!(by_sort, by_state, "{query:?}");
                    }
                }
            }
        }
    }

    /// A page found by the state's index seeks the matches there, first page, after a
    /// cursor and at an offset, and walks no sort index (nor the ids'): the few running jobs
    /// among many finished ones are read, not searched for. So do one API's lists and the
    /// executions of definitions, whose partial indexes are not walked instead.
    #[test]
    fn a_walk_of_the_state_index_seeks_the_matches() {
        let conn = migrated();
        let scopes = [
            ListQuery::default(),
            ListQuery {
                dialects: vec!["c360".into()],
                ..ListQuery::default()
            },
            ListQuery {
                dialects: vec!["c360".into(), "datacloud".into()],
                ..ListQuery::default()
            },
            ListQuery {
                with_definition: true,
                ..ListQuery::default()
            },
        ];
        for scope in &scopes {
            for sort in SortField::ALL {
                if sort == SortField::State {
                    continue;
                }
                for direction in [Direction::Asc, Direction::Desc] {
                    for page in [
                        Pagination::Cursor(None),
                        after(sort, direction),
                        Pagination::Offset(1000),
                    ] {
                        let query = ListQuery {
                            states: vec![State::Running, State::Queued],
                            sort: Some(sort),
                            direction,
                            page,
                            ..scope.clone()
                        };
                        let plan = walk_plan(&conn, &query, false, PageWalk::FilterIndex);
                        let index = "jobs_by_tenant_state (tenant=? AND state=?";
                        let steps: Vec<&String> = plan
                            .iter()
                            .filter(|l| l.starts_with("SEARCH jobs") || l.starts_with("SCAN jobs"))
                            .filter(|l| !l.contains("INTEGER PRIMARY KEY (rowid=?)"))
                            .collect();
                        assert!(!steps.is_empty(), "{query:?}: {plan:?}");
                        for step in steps {
                            assert!(step.contains(index), "{query:?}: {plan:?}");
                        }
                    }
                }
            }
        }
    }

    /// The walk is chosen from the job counts: the few jobs of a state are sought in the
    /// state's index, the many walked in the sort's order; a query without a state filter,
    /// sorted by state, or of failed and cancelled jobs sorted by text (their own indexes)
    /// walks the sort's index.
    #[test]
    fn the_walk_follows_the_counts() {
        let conn = with_jobs(5000);
        let walk = |states: Vec<State>, sort: SortField| {
            let query = ListQuery {
                states,
                sort: Some(sort),
                ..ListQuery::default()
            };
            page_walk(&conn, Some("default"), &query).unwrap()
        };
        // 100 open jobs of 5,000: 100^2 <= 101 * 5,000.
        assert_eq!(
            walk(vec![State::Open], SortField::Name),
            PageWalk::FilterIndex
        );
        assert_eq!(
            walk(vec![State::Running, State::Open], SortField::CreatedAt),
            PageWalk::FilterIndex
        );
        // No running job at all: nothing to walk for.
        assert_eq!(
            walk(vec![State::Running], SortField::Id),
            PageWalk::FilterIndex
        );
        // Most jobs succeeded: their order is dense with them.
        assert_eq!(
            walk(vec![State::Succeeded], SortField::Name),
            PageWalk::SortIndex
        );
        assert_eq!(walk(Vec::new(), SortField::Name), PageWalk::SortIndex);
        assert_eq!(
            walk(vec![State::Open], SortField::State),
            PageWalk::SortIndex
        );
        assert_eq!(
            walk(vec![State::Failed], SortField::Target),
            PageWalk::SortIndex
        );
        // One API's jobs, and executions of definitions: their partial indexes carry the
        // state, so a walk of them reads entries, not rows. The 100 open jobs are still
        // sought (100^2 <= 101 * 5,000 / 8), the 700 queued walked. With native jobs among
        // them (the last case), rows are read: the 700 queued are sought (700^2 <= 101 * 5,000).
        for (state, dialects, with_definition, expected) in [
            (State::Open, &["c360"][..], false, PageWalk::FilterIndex),
            (State::Open, &[][..], true, PageWalk::FilterIndex),
            (State::Queued, &["c360"][..], false, PageWalk::SortIndex),
            (State::Queued, &[][..], true, PageWalk::SortIndex),
            (
                State::Queued,
                &["c360", "native"][..],
                false,
                PageWalk::FilterIndex,
            ),
        ] {
            let query = ListQuery {
                states: vec![state],
                dialects: dialects.iter().map(|d| (*d).to_owned()).collect(),
                with_definition,
                ..ListQuery::default()
            };
            assert_eq!(
                page_walk(&conn, Some("default"), &query).unwrap(),
                expected,
                "{state:?} of {dialects:?}, executions only: {with_definition}"
            );
        }
        // Another tenant has no job: its pages are sought in the state's index.
        let query = ListQuery {
            states: vec![State::Succeeded],
            ..ListQuery::default()
        };
        assert_eq!(
            page_walk(&conn, Some("other"), &query).unwrap(),
            PageWalk::FilterIndex
        );
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
            .to_sql(None, "id", PageWalk::SortIndex)
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
        let sql = query
            .to_sql(Some("default"), "id", PageWalk::SortIndex)
            .map(|s| s.select);
        let sql = sql.unwrap_or_default();
        assert!(!sql.contains("OR 1=1"), "{sql}");
        assert!(sql.contains("kind AS page_key"), "{sql}");
        assert!(
            sql.contains("ORDER BY page_key DESC, page_id DESC"),
            "{sql}"
        );
    }
}
