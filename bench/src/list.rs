//! Scenario 4: list pages on the prefilled database — for every sort field the dialects use
//! and each filter (none, a state set, a kind, a dialect, a queue): the first page, and the
//! page 10,000 pages deep (100 jobs a page) by keyset cursor and by offset; p50 and p99 in µs.
//! Raw SQLite runs the same statements (as the core builds them) and steps the rows without
//! decoding them into jobs. Then `Store::stats`, against raw SQLite counting the jobs by
//! queue and state.

use std::path::Path;
use std::time::{Duration, Instant};

use jobstore::{
    Cursor, CursorValue, Definition, DefinitionStep, Direction, Execution, ListQuery, NewJob,
    Pagination, SortField, State, Store,
};
use rusqlite::types::Value as SqlValue;

use crate::common::{Level, Record, Result, fail, micros_since, open_store};
use crate::raw;

/// How scenario 4 runs.
#[derive(Debug, Clone)]
pub struct ListConfig {
    /// Samples of each keyset page.
    pub keyset_samples: usize,
    /// Samples of each deep offset page (slow by nature).
    pub offset_samples: usize,
    /// Page size.
    pub limit: u32,
    /// How many pages deep the deep page is (capped by the matching jobs).
    pub deep_pages: u64,
    /// One measurement stops taking samples after this long (keyset pages: with at least 2
    /// taken; offset pages: 1).
    pub budget: Duration,
    /// The sort fields measured (default: every one).
    pub sorts: Vec<SortField>,
    /// The filters measured (default: every one).
    pub filters: Vec<Filter>,
}

/// The open jobs (awaiting their data) scenario 4 adds through the store to its copy of the
/// prefilled file, when [`Filter::Open`] is measured.
pub const OPEN_JOBS: u64 = 1_000;

/// The live jobs of each vendor route scenario 4 adds through the store to its copy, when
/// [`Filter::Live`] is measured: C360 and Data Cloud jobs awaiting their data, and queued
/// executions of as many definitions (one live execution each).
pub const LIVE_ROUTE_JOBS: u64 = 200;

/// A filter of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// No filter.
    None,
    /// `state in (failed, cancelled)`.
    States,
    /// `state = open`: the [`OPEN_JOBS`] jobs awaiting their data among the million
    /// finished ones (and the routes' jobs awaiting theirs, when [`Filter::Live`] is measured
    /// too), which the store seeks in the state's index (its counts tell it they are few)
    /// rather than walking the sort's order for them.
    Open,
    /// `kind = ingest`.
    Kind,
    /// `queue = imports` (a quarter of the jobs), with the native sorts a dashboard or an
    /// operator uses: creation (the default) and id.
    Queue,
    /// `dialect = c360`, whatever the sort (C360 itself offers id, created_at, name, source,
    /// target and created_by as plain sorts).
    Dialect,
    /// The filter of the vendor route that offers this sort when C360 does not: Data Cloud
    /// (`dialect = datacloud`) for updated_at and state, OCAPI's execution search
    /// (`definition_id IS NOT NULL`) for definition_id, started_at and finished_at. Not
    /// measured for the other sorts (C360's are the `Dialect` cases; no route sorts by kind
    /// plainly).
    Route,
    /// The vendor route of the sort (C360 for its sorts, Data Cloud or OCAPI's execution
    /// search for theirs) with a status filter, `state in (failed, cancelled)`: C360's
    /// `status`, Data Cloud's `states`, OCAPI's search by status.
    Status,
    /// The vendor route of the sort with the live states, `state in (open, queued,
    /// running)`: the [`LIVE_ROUTE_JOBS`] of the route among its 200,000 finished ones.
    Live,
}

impl Filter {
    /// Every filter, in the order of the report.
    pub const ALL: [Filter; 9] = [
        Filter::None,
        Filter::States,
        Filter::Open,
        Filter::Kind,
        Filter::Queue,
        Filter::Dialect,
        Filter::Route,
        Filter::Status,
        Filter::Live,
    ];

    /// The short name `--filters` takes.
    pub fn key(self) -> &'static str {
        match self {
            Filter::None => "none",
            Filter::States => "states",
            Filter::Open => "open",
            Filter::Kind => "kind",
            Filter::Queue => "queue",
            Filter::Dialect => "dialect",
            Filter::Route => "route",
            Filter::Status => "status",
            Filter::Live => "live",
        }
    }

    /// The route's dialect for `sort` (see [`Filter::Route`] and [`Filter::Status`]), or
    /// `None` when not measured.
    fn route(self, sort: SortField) -> Option<Route> {
        match (self, sort) {
            (
                Filter::Route | Filter::Status | Filter::Live,
                SortField::UpdatedAt | SortField::State,
            ) => Some(Route::DataCloud),
            (
                Filter::Route | Filter::Status | Filter::Live,
                SortField::DefinitionId | SortField::StartedAt | SortField::FinishedAt,
            ) => Some(Route::Executions),
            (Filter::Status | Filter::Live, sort) if c360_sorts(sort) => Some(Route::C360),
            _ => None,
        }
    }

    /// Whether a vendor API lists this way, filter and sort: those pages are asked by page
    /// number (C360's `page`, OCAPI's `start`, Data Cloud's `offset`), so their deep offset
    /// page is measured. The native API pages by cursor only.
    fn by_page_number(self, sort: SortField) -> bool {
        match self {
            Filter::Dialect => c360_sorts(sort),
            Filter::Route | Filter::Status | Filter::Live => self.route(sort).is_some(),
            _ => false,
        }
    }

    /// Whether this filter is measured with `sort`.
    fn applies_to(self, sort: SortField) -> bool {
        match self {
            Filter::Route | Filter::Status | Filter::Live => self.route(sort).is_some(),
            Filter::Queue => matches!(sort, SortField::CreatedAt | SortField::Id),
            _ => true,
        }
    }

    fn name(self, sort: SortField) -> &'static str {
        match (self, self.route(sort)) {
            (Filter::None, _) => "none",
            (Filter::States, _) => "state in (failed, cancelled)",
            (Filter::Open, _) => "state = open",
            (Filter::Kind, _) => "kind = ingest",
            (Filter::Queue, _) => "queue = imports",
            (Filter::Dialect, _) => "dialect = c360",
            (Filter::Route, Some(Route::DataCloud)) => "route: dialect = datacloud",
            (Filter::Route, _) => "route: definition_id is not null (ocapi)",
            (Filter::Status, Some(Route::C360)) => "c360, state in (failed, cancelled)",
            (Filter::Status, Some(Route::DataCloud)) => "datacloud, state in (failed, cancelled)",
            (Filter::Status, _) => "ocapi executions, state in (failed, cancelled)",
            (Filter::Live, Some(Route::C360)) => "c360, state in (open, queued, running)",
            (Filter::Live, Some(Route::DataCloud)) => "datacloud, state in (open, queued, running)",
            (Filter::Live, _) => "ocapi executions, state in (open, queued, running)",
        }
    }

    fn apply(self, sort: SortField, query: &mut ListQuery) {
        match (self, self.route(sort)) {
            (Filter::None, _) => {}
            (Filter::States, _) => query.states = vec![State::Failed, State::Cancelled],
            (Filter::Open, _) => query.states = vec![State::Open],
            (Filter::Kind, _) => query.kinds = vec!["ingest".into()],
            (Filter::Queue, _) => query.queues = vec!["imports".into()],
            (Filter::Dialect, _) => query.dialects = vec!["c360".into()],
            (Filter::Route | Filter::Status | Filter::Live, route) => {
                match self {
                    Filter::Status => query.states = vec![State::Failed, State::Cancelled],
                    Filter::Live => {
                        query.states = vec![State::Open, State::Queued, State::Running];
                    }
                    _ => {}
                }
                match route.and_then(Route::dialect) {
                    Some(dialect) => query.dialects = vec![dialect.into()],
                    None => query.with_definition = true,
                }
            }
        }
    }

    /// Whether the store seeks this filter's few jobs in the state's index
    /// (`PageWalk::FilterIndex`, chosen from the job counts; never for a sort by state):
    /// their sort value and id are written so that no index serves them, and no partial index
    /// of a route is named.
    fn by_state(self, sort: SortField) -> bool {
        matches!(self, Filter::Open | Filter::Live) && sort != SortField::State
    }

    /// The core's clause and bound value (if any) for this filter: a label is bound, with the
    /// literal `dialect <> 'native'` that lets SQLite use the partial indexes of labelled jobs;
    /// states within failed and cancelled with the literal that lets it use theirs.
    fn raw_clause(self, sort: SortField) -> Option<(&'static str, Option<&'static str>)> {
        match (self, self.route(sort)) {
            (Filter::None, _) => None,
            (Filter::States, _) => Some((
                "state IN (SELECT value FROM json_each(?)) AND state IN ('failed', 'cancelled')",
                Some("[\"failed\",\"cancelled\"]"),
            )),
            (Filter::Open, _) => Some(("state = ?", Some("open"))),
            (Filter::Kind, _) => Some(("kind = ?", Some("ingest"))),
            (Filter::Queue, _) => Some(("queue = ?", Some("imports"))),
            (Filter::Dialect, _) => Some(("dialect = ? AND dialect <> 'native'", Some("c360"))),
            (Filter::Route, Some(Route::Executions)) => Some(("definition_id IS NOT NULL", None)),
            (Filter::Route, route) => Some((
                "dialect = ? AND dialect <> 'native'",
                route.and_then(Route::dialect),
            )),
            (Filter::Status, Some(Route::Executions)) => Some((
                "state IN (SELECT value FROM json_each('[\"failed\",\"cancelled\"]')) \
                 AND definition_id IS NOT NULL AND state IN ('failed', 'cancelled')",
                None,
            )),
            (Filter::Status, route) => Some((
                "state IN (SELECT value FROM json_each('[\"failed\",\"cancelled\"]')) \
                 AND dialect = ? AND dialect <> 'native' AND state IN ('failed', 'cancelled')",
                route.and_then(Route::dialect),
            )),
            (Filter::Live, Some(Route::Executions)) => Some((
                "+definition_id IS NOT NULL AND state IN (SELECT value FROM \
                 json_each('[\"open\",\"queued\",\"running\"]'))",
                None,
            )),
            // The state's index is walked (see `by_state`) but for a sort by state.
            (Filter::Live, route) if sort == SortField::State => Some((
                "dialect = ? AND dialect <> 'native' AND state IN (SELECT value FROM \
                 json_each('[\"open\",\"queued\",\"running\"]'))",
                route.and_then(Route::dialect),
            )),
            (Filter::Live, route) => Some((
                "dialect = ? AND state IN (SELECT value FROM \
                 json_each('[\"open\",\"queued\",\"running\"]'))",
                route.and_then(Route::dialect),
            )),
        }
    }
}

/// The sorts C360 offers plainly (its `status` and `type` sorts rank the values instead).
fn c360_sorts(sort: SortField) -> bool {
    matches!(
        sort,
        SortField::Id
            | SortField::Name
            | SortField::Source
            | SortField::Target
            | SortField::CreatedBy
            | SortField::CreatedAt
    )
}

/// The vendor route a [`Filter::Route`] case stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    C360,
    DataCloud,
    Executions,
}

impl Route {
    /// The dialect whose jobs the route lists; `None` for OCAPI's executions, which are the
    /// jobs with a definition.
    fn dialect(self) -> Option<&'static str> {
        match self {
            Route::C360 => Some("c360"),
            Route::DataCloud => Some("datacloud"),
            Route::Executions => None,
        }
    }
}

/// The SQL expression the core sorts on (`SortField::expr`, private there).
fn sort_expr(sort: SortField) -> &'static str {
    match sort {
        SortField::DefinitionId => "ifnull(definition_id, '')",
        SortField::StartedAt => "ifnull(started_at, -1)",
        SortField::FinishedAt => "ifnull(finished_at, -1)",
        other => other.as_str(),
    }
}

/// `n` jobs of `kind` awaiting their data, named `{name} 0000` on, with sources and targets
/// spread over 200 and 150 values.
fn awaiting_data<'a>(kind: &'a str, name: &'a str, n: u64) -> impl Iterator<Item = NewJob> + 'a {
    (0..n).map(move |i| {
        NewJob::new(kind)
            .upload(true)
            .name(format!("{name} {i:04}"))
            .source(format!("src-{:03}", i % 200))
            .target(format!("tgt-{:03}", (i * 31) % 150))
    })
}

/// Runs scenario 4 on `path` (a copy of the prefilled database).
pub fn run(path: &Path, config: &ListConfig) -> Result<()> {
    let store = open_store(path, Level::Full)?;
    if config.filters.contains(&Filter::Open) {
        // Jobs awaiting their data, made as a user makes them.
        store.enqueue_many(awaiting_data("import", "upload", OPEN_JOBS).collect())?;
    }
    if config.filters.contains(&Filter::Live) {
        // Each route's live jobs, made as its API makes them.
        for dialect in ["c360", "datacloud"] {
            let jobs = awaiting_data("ingest", &format!("{dialect} upload"), LIVE_ROUTE_JOBS)
                .map(|job| job.dialect(dialect))
                .collect();
            store.enqueue_many(jobs)?;
        }
        for i in 0..LIVE_ROUTE_JOBS {
            let id = format!("live-definition-{i:03}");
            store.put_definition(Definition::new(
                &id,
                "ocapi",
                vec![DefinitionStep::new("export", "ExportCatalog")],
            ))?;
            store.execute(
                &id,
                Execution {
                    dialect: Some("ocapi".into()),
                    ..Execution::default()
                },
            )?;
        }
    }
    let conn = raw::open(path, Level::Full)?;
    for &sort in &config.sorts {
        for &filter in &config.filters {
            if filter.applies_to(sort) {
                one(&store, &conn, sort, filter, config)?;
            }
        }
    }
    stats(&store, &conn, config)
}

/// `Store::stats` (counts kept by the schema's triggers), and raw SQLite counting the jobs
/// by queue and state as `stats` did before them.
fn stats(store: &Store, conn: &rusqlite::Connection, config: &ListConfig) -> Result<()> {
    let sampling = Sampling {
        samples: config.keyset_samples,
        at_least: 2,
        budget: config.budget,
    };
    let jobs: i64 = store.stats()?.iter().map(|count| count.jobs).sum();
    let mut latencies = Vec::with_capacity(sampling.samples);
    let start = Instant::now();
    while sampling.more(latencies.len(), start) {
        let t = Instant::now();
        let counts = store.stats()?;
        latencies.push(micros_since(t));
        std::hint::black_box(counts);
    }
    let emit = |store_name: &str, latencies: &mut Vec<u64>| {
        Record::new("stats", store_name, "counts by queue and state")
            .set("jobs", jobs)
            .set("samples", latencies.len())
            .latencies(latencies)
            .emit();
    };
    emit("jobstore", &mut latencies);
    let mut latencies = Vec::with_capacity(sampling.samples);
    let start = Instant::now();
    while sampling.more(latencies.len(), start) {
        let t = Instant::now();
        let mut stmt = conn.prepare_cached(
            "SELECT queue, state, count(*) FROM jobs WHERE tenant = ? GROUP BY queue, state",
        )?;
        let mut rows = stmt.query([raw::TENANT])?;
        while let Some(row) = rows.next()? {
            std::hint::black_box(row.get_ref(2)?);
        }
        latencies.push(micros_since(t));
    }
    emit("raw count", &mut latencies);
    Ok(())
}

fn query(sort: SortField, filter: Filter, limit: u32, page: Pagination) -> ListQuery {
    let mut query = ListQuery {
        sort: Some(sort),
        direction: Direction::Desc,
        limit: Some(limit),
        page,
        ..ListQuery::default()
    };
    filter.apply(sort, &mut query);
    query
}

fn one(
    store: &Store,
    conn: &rusqlite::Connection,
    sort: SortField,
    filter: Filter,
    config: &ListConfig,
) -> Result<()> {
    let limit = config.limit;
    let counted = store.list(&ListQuery {
        count_total: true,
        ..query(sort, filter, 1, Pagination::Cursor(None))
    })?;
    let matches = counted.total.unwrap_or(0);
    let depth =
        (config.deep_pages * u64::from(limit)).min(matches.saturating_sub(u64::from(limit) + 1));
    let full = usize::try_from(limit).unwrap_or(0);
    let case = format!("sort {} desc, filter {}", sort.as_str(), filter.name(sort));
    let record = |store_name: &str, page: &str, latencies: &mut Vec<u64>, plan: &str| {
        Record::new("list", store_name, &case)
            .set("plan", plan)
            .set("sort", sort.as_str())
            .set("filter", filter.name(sort))
            .set("page", page)
            .set("depth", if page == "first" { 0 } else { depth })
            .set("matches", matches)
            .set("samples", latencies.len())
            .latencies(latencies)
            .emit();
    };
    let keyset = Sampling {
        samples: config.keyset_samples,
        at_least: 2,
        budget: config.budget,
    };
    let offsets = Sampling {
        samples: config.offset_samples,
        at_least: 1,
        budget: config.budget,
    };

    // Warm the statement caches and the page cache once.
    store.list(&query(sort, filter, limit, Pagination::Cursor(None)))?;

    let first = query(sort, filter, limit, Pagination::Cursor(None));
    record(
        "jobstore",
        "first",
        &mut time_store(store, &first, &keyset, full)?,
        "",
    );

    // The cursor of the job just before the deep page: its sort value and id only.
    let (sql, params) = raw_sql(
        sort,
        filter,
        &format!("{}, id", sort_expr(sort)),
        None,
        1,
        depth.saturating_sub(1),
    );
    let (value, id) = conn.query_row(&sql, rusqlite::params_from_iter(params.iter()), |row| {
        Ok((row.get::<_, SqlValue>(0)?, row.get::<_, i64>(1)?))
    })?;
    let cursor = Cursor {
        sort,
        direction: Direction::Desc,
        value: match &value {
            SqlValue::Integer(v) => CursorValue::Integer(*v),
            SqlValue::Text(t) => CursorValue::Text(t.clone()),
            other => return Err(fail(format!("unexpected sort value {other:?}"))),
        },
        id,
    };
    let deep = query(sort, filter, limit, Pagination::Cursor(Some(cursor)));
    record(
        "jobstore",
        "deep keyset",
        &mut time_store(store, &deep, &keyset, full)?,
        "",
    );

    if filter.by_page_number(sort) {
        let offset = query(sort, filter, limit, Pagination::Offset(depth));
        record(
            "jobstore",
            "deep offset",
            &mut time_store(store, &offset, &offsets, full)?,
            "",
        );
    }

    // Raw: the same statements (the offset page's cost is SQLite's own, measured above).
    for (page, after) in [("first", None), ("deep keyset", Some((value, id)))] {
        let (sql, params) = raw_sql(sort, filter, raw::JOB_COLUMNS, after, limit + 1, 0);
        let plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
            .query_map(rusqlite::params_from_iter(params.iter()), |row| {
                row.get::<_, String>(3)
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?
            .join("; ");
        let mut latencies = time_raw(conn, &sql, &params, &keyset, full)?;
        record("raw", page, &mut latencies, &plan);
    }
    Ok(())
}

/// How many samples one measurement takes: up to `samples`, but it stops once `budget` has
/// passed and it has `at_least`.
struct Sampling {
    samples: usize,
    at_least: usize,
    budget: Duration,
}

impl Sampling {
    fn more(&self, taken: usize, start: Instant) -> bool {
        taken < self.samples && (taken < self.at_least || start.elapsed() < self.budget)
    }
}

fn time_store(
    store: &Store,
    query: &ListQuery,
    sampling: &Sampling,
    expect: usize,
) -> Result<Vec<u64>> {
    let mut latencies = Vec::with_capacity(sampling.samples);
    let start = Instant::now();
    while sampling.more(latencies.len(), start) {
        let t = Instant::now();
        let page = store.list(query)?;
        latencies.push(micros_since(t));
        if page.jobs.len() != expect {
            return Err(fail(format!(
                "page of {} jobs, expected {expect}",
                page.jobs.len()
            )));
        }
    }
    Ok(latencies)
}

/// The statement the core builds for this sort and filter (`ListQuery::to_sql`), selecting
/// `columns`, after the position `after` (sort value, id) when given: the page's ids and sort
/// keys are chosen first (on an index), then its rows are fetched by id; a keyset page after
/// (v, id) seeks the rest of v's tie group first, then the values past v for what the page
/// still needs.
fn raw_sql(
    sort: SortField,
    filter: Filter,
    columns: &str,
    after: Option<(SqlValue, i64)>,
    limit: u32,
    offset: u64,
) -> (String, Vec<SqlValue>) {
    let (expr, id_expr) = if filter.by_state(sort) {
        (format!("+{}", sort_expr(sort)), "+id")
    } else {
        (sort_expr(sort).to_owned(), "id")
    };
    let mut clauses = vec!["tenant = ?".to_owned()];
    let mut params = vec![SqlValue::Text(raw::TENANT.into())];
    if let Some((clause, value)) = filter.raw_clause(sort) {
        clauses.push(clause.into());
        if let Some(value) = value {
            params.push(SqlValue::Text(value.into()));
        }
    }
    let filter_params = params.clone();
    let page_size = SqlValue::Integer(i64::from(limit));
    let (with, page) = match after {
        Some((value, id)) if sort != SortField::Id => {
            let tie = format!("{} AND {expr} = ? AND {id_expr} < ?", clauses.join(" AND "));
            let rest = format!("{} AND {expr} < ?", clauses.join(" AND "));
            params.extend([value.clone(), SqlValue::Integer(id), page_size.clone()]);
            params.extend(filter_params);
            params.extend([value, page_size]);
            (
                format!(
                    "WITH tie AS (SELECT {id_expr} AS page_id, {expr} AS page_key FROM jobs \
                     WHERE {tie} ORDER BY page_id DESC LIMIT ?) "
                ),
                format!(
                    "SELECT page_id, page_key FROM tie UNION ALL \
                     SELECT page_id, page_key FROM (SELECT {id_expr} AS page_id, {expr} AS page_key \
                     FROM jobs WHERE {rest} ORDER BY page_key DESC, page_id DESC \
                     LIMIT (SELECT max(0, ? - count(*)) FROM tie))"
                ),
            )
        }
        after => {
            if let Some((_, id)) = after {
                clauses.push(format!("{id_expr} < ?"));
                params.push(SqlValue::Integer(id));
            }
            params.push(page_size);
            params.push(SqlValue::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
            (
                String::new(),
                format!(
                    "SELECT {id_expr} AS page_id, {expr} AS page_key FROM jobs WHERE {} \
                     ORDER BY page_key DESC, page_id DESC LIMIT ? OFFSET ?",
                    clauses.join(" AND ")
                ),
            )
        }
    };
    let sql = format!(
        "{with}SELECT {columns} FROM ({page}) AS page CROSS JOIN jobs ON jobs.id = page.page_id \
         ORDER BY page.page_key DESC, page.page_id DESC"
    );
    (sql, params)
}

/// Runs a raw page, stepping every column of every row without decoding it.
fn time_raw(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[SqlValue],
    sampling: &Sampling,
    expect: usize,
) -> Result<Vec<u64>> {
    let mut latencies = Vec::with_capacity(sampling.samples);
    let start = Instant::now();
    while sampling.more(latencies.len(), start) {
        let t = Instant::now();
        let mut stmt = conn.prepare_cached(sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
        let mut n = 0;
        while let Some(row) = rows.next()? {
            for column in 0..32 {
                std::hint::black_box(row.get_ref(column)?);
            }
            n += 1;
        }
        latencies.push(micros_since(t));
        if n < expect {
            return Err(fail(format!("raw page of {n} rows, expected {expect}")));
        }
    }
    Ok(latencies)
}
