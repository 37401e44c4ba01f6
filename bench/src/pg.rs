//! PostgreSQL for the benchmark: databases on the run's own server (a fresh one per case),
//! jobstore through its PostgreSQL driver, and the limit: the `postgres` crate running the
//! driver's own statements with no framework.
//!
//! The statements are copied from the driver (`crates/jobstore-postgres/src/ops.rs`), where
//! they are private; the schema is the driver's own migration (`jobstore_postgres::migrate`).
//! Raw prepares each statement once per connection and runs no savepoints; it decodes only
//! the columns it needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use postgres::{Client, GenericClient, NoTls, Statement};

use crate::common::{Record, Result, fail};

/// The tenant of a store's default scope (the driver binds it in claims and completes).
pub const TENANT: &str = "default";

/// `ops.rs`: the columns every job statement returns.
pub const JOB_COLUMNS: &str = "id, tenant, kind, queue, name, source, target, created_by, \
     dialect, state, priority, run_at, attempt, max_attempts, lease_owner, lease_token, \
     lease_expires_at, heartbeat_at, cancel_requested_at, unique_key, definition_id, restart_of, \
     restartable, payload::text, result::text, error, progress::text, phase, created_at, \
     updated_at, started_at, finished_at";

/// `ops.rs` `insert_job`: one job, answering its id (no row when a live job holds its unique
/// key).
pub const INSERT_JOB: &str = "INSERT INTO jobs (tenant, kind, queue, name, source, target, \
     created_by, dialect, state, priority, run_at, max_attempts, unique_key, definition_id, \
     restart_of, restartable, payload, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, \
     $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::text::json, $18, $18) \
     ON CONFLICT (tenant, unique_key) WHERE unique_key IS NOT NULL \
         AND state IN ('open', 'queued', 'running') DO NOTHING \
     RETURNING id";

/// `ops.rs` `insert_jobs` (`Store::enqueue_many` without idempotency keys): the jobs of a
/// batch in one statement, in their order.
pub const INSERT_JOBS: &str = "INSERT INTO jobs (tenant, kind, queue, name, source, target, \
     created_by, dialect, state, priority, run_at, max_attempts, unique_key, definition_id, \
     restart_of, restartable, payload, created_at, updated_at) \
     SELECT j.tenant, j.kind, j.queue, j.name, j.source, j.target, j.created_by, j.dialect, \
         j.state, j.priority, j.run_at, j.max_attempts, j.unique_key, j.definition_id, \
         j.restart_of, j.restartable, j.payload::json, j.at, j.at \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::bigint[], \
         $13::text[], $14::text[], $15::bigint[], $16::boolean[], $17::text[], \
         $18::bigint[]) WITH ORDINALITY \
         AS j (tenant, kind, queue, name, source, target, created_by, dialect, state, \
             priority, run_at, max_attempts, unique_key, definition_id, restart_of, \
             restartable, payload, at, n) \
     ORDER BY j.n \
     ON CONFLICT (tenant, unique_key) WHERE unique_key IS NOT NULL \
         AND state IN ('open', 'queued', 'running') DO NOTHING \
     RETURNING id, tenant, unique_key";

/// `ops.rs` `insert_events`: a write's history rows, in one statement, in their order.
pub const INSERT_EVENT: &str = "INSERT INTO job_events (job_id, at, event, from_state, \
     to_state, actor, detail) \
     SELECT e.job_id, e.at, e.event, e.from_state, e.to_state, e.actor, e.detail \
     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
         $6::text[], $7::text[]) WITH ORDINALITY \
         AS e (job_id, at, event, from_state, to_state, actor, detail, n) \
     ORDER BY e.n";

/// `ops.rs` `claim` of one queue, followed by [`JOB_COLUMNS`].
pub const CLAIM: &str = "UPDATE jobs SET state = $1, attempt = attempt + 1, \
     leases = leases + 1, lease_token = leases + 1, lease_owner = $2, lease_expires_at = $3, \
     heartbeat_at = NULL, started_at = $4, updated_at = $4 \
     WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE state = 'queued' \
         AND queue = $5 AND run_at <= $4 \
         AND ($6::text IS NULL OR tenant = $6) \
         ORDER BY priority, run_at, id LIMIT $7 FOR UPDATE SKIP LOCKED)) \
     RETURNING ";

/// `ops.rs` `complete_job`, followed by [`JOB_COLUMNS`].
pub const COMPLETE: &str = "UPDATE jobs SET state = $1, result = $2::text::json, \
     finished_at = $3, updated_at = $3, lease_owner = NULL, lease_token = NULL, \
     lease_expires_at = NULL \
     WHERE id = $4 AND state = 'running' AND lease_token = $5 \
         AND lease_owner = $6 AND ($7::text IS NULL OR tenant = $7) \
     RETURNING ";

/// The driver's completion of several jobs (`Store::complete_many`): one `UPDATE … FROM
/// unnest(…)`, each row's place among the completions first in what it returns.
pub const COMPLETE_MANY: &str = "UPDATE jobs SET state = c.to_state, \
     result = c.result_text::json, finished_at = c.at, updated_at = c.at, lease_owner = NULL, \
     lease_token = NULL, lease_expires_at = NULL \
     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $7::bigint[]) WITH ORDINALITY \
         AS c (job, token, worker, only_tenant, to_state, result_text, at, n) \
     WHERE id = c.job AND state = 'running' AND lease_token = c.token \
         AND lease_owner = c.worker AND (c.only_tenant IS NULL OR tenant = c.only_tenant) \
     RETURNING c.n, ";

/// The server's settings the report shows (and that must be the same for every contestant).
const SETTINGS: [&str; 12] = [
    "server_version",
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "wal_level",
    "commit_delay",
    "shared_buffers",
    "max_wal_size",
    "checkpoint_timeout",
    "max_connections",
    "data_checksums",
];

/// A connection to the server's `postgres` database, for creating and dropping databases.
fn admin(base: &str) -> Result<Client> {
    Ok(Client::connect(&format!("{base}/postgres"), NoTls)?)
}

/// Drops `name` if it exists (closing its connections) and creates it empty; answers its URL.
pub fn fresh_database(base: &str, name: &str) -> Result<String> {
    let mut admin = admin(base)?;
    // Two statements: a multi-statement query would run as one transaction, which neither
    // may run in.
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
    Ok(format!("{base}/{name}"))
}

/// Drops `name` (closing its connections).
pub fn drop_database(base: &str, name: &str) -> Result<()> {
    admin(base)?.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))?;
    Ok(())
}

/// Runs a `CHECKPOINT`, so that no contestant's timed case pays for the one before's pages.
pub fn checkpoint(base: &str) -> Result<()> {
    admin(base)?.batch_execute("CHECKPOINT")?;
    Ok(())
}

/// Emits the server's settings, as read back with `SHOW` on a plain connection, and whether
/// any database or role overrides them (`pg_db_role_setting`).
pub fn emit_server_settings(base: &str) -> Result<()> {
    let mut client = admin(base)?;
    let mut record = Record::new("pg_settings", "server", "settings read back with SHOW");
    for name in SETTINGS {
        let value: String = client.query_one(&format!("SHOW {name}"), &[])?.get(0);
        record = record.set(name, value);
    }
    let overrides: i64 = client
        .query_one("SELECT count(*) FROM pg_db_role_setting", &[])?
        .get(0);
    record.set("db_role_overrides", overrides).emit();
    Ok(())
}

/// Emits what `synchronous_commit` a store's connection runs with, read back with `SHOW` on a
/// connection to its database (the driver sets no setting of its own on its connections).
pub fn emit_store_settings(store: &str, url: &str, how: &str) -> Result<()> {
    let mut client = Client::connect(url, NoTls)?;
    let level: String = client.query_one("SHOW synchronous_commit", &[])?.get(0);
    Record::new("pg_settings", store, "synchronous_commit as run")
        .set("synchronous_commit", level)
        .set("how", how)
        .emit();
    Ok(())
}

/// jobstore on the database at `url` through its PostgreSQL driver, default options.
pub fn open_store(url: &str) -> Result<jobstore::Store> {
    let driver = jobstore_postgres::PostgresDriver::connect(
        url,
        &jobstore_postgres::PostgresOptions::default(),
    )?;
    Ok(jobstore::Store::with_driver(
        Arc::new(driver),
        jobstore::StoreOptions::default(),
    ))
}

/// Creates the driver's schema in the database at `url` (its own migration).
pub fn create_schema(url: &str) -> Result<()> {
    let mut client = Client::connect(url, NoTls)?;
    jobstore_postgres::migrate(&mut client).map_err(|err| fail(err.to_string()))?;
    Ok(())
}

/// Enqueues `n` jobs (not timed) with one `INSERT … SELECT` for the jobs and one for their
/// `create` events: the rows `Store::enqueue` writes. Answers the highest job id before.
pub fn seed(url: &str, n: u64) -> Result<i64> {
    let mut client = Client::connect(url, NoTls)?;
    let watermark: i64 = client
        .query_one("SELECT coalesce(max(id), 0) FROM jobs", &[])?
        .get(0);
    let now = crate::raw::now_ms();
    let mut tx = client.transaction()?;
    tx.execute(
        "INSERT INTO jobs (tenant, kind, queue, name, source, target, created_by, dialect, \
             state, priority, run_at, max_attempts, unique_key, definition_id, restart_of, \
             restartable, payload, created_at, updated_at) \
         SELECT 'default', 'bench', 'default', '', '', '', '', 'native', 'queued', 0, $2, 3, \
             NULL, NULL, NULL, TRUE, json_build_object('n', i), $2, $2 \
         FROM generate_series(1, $1::bigint) AS i",
        &[&i64::try_from(n)?, &now],
    )?;
    tx.execute(
        "INSERT INTO job_events (job_id, at, event, from_state, to_state, actor, detail) \
         SELECT id, $2, 'create', NULL, 'queued', '', NULL FROM jobs WHERE id > $1 ORDER BY id",
        &[&watermark, &now],
    )?;
    tx.commit()?;
    client.batch_execute("VACUUM ANALYZE jobs")?;
    client.batch_execute("VACUUM ANALYZE job_events")?;
    Ok(watermark)
}

/// Emits the plan PostgreSQL makes for the driver's claim (`EXPLAIN`, with the values a claim
/// binds) on the database at `url`, as it stands (`jobs` queued jobs): how a claim finds its
/// jobs, and in which order it updates them.
pub fn emit_claim_plan(url: &str, jobs: u64, max: u32) -> Result<()> {
    let mut client = Client::connect(url, NoTls)?;
    let now = crate::raw::now_ms();
    let queue = "default";
    let rows = client.query(
        &format!("EXPLAIN {CLAIM}id"),
        &[
            &"running",
            &"bench-plan",
            &(now + 600_000),
            &now,
            &queue,
            &Some(TENANT),
            &i64::from(max),
        ],
    )?;
    let plan: Vec<String> = rows
        .iter()
        .map(|row| {
            let line: String = row.get(0);
            // The operators, without costs or arrows.
            let operator = line.split("  (cost=").next().unwrap_or("");
            operator.trim().trim_start_matches("->").trim().to_owned()
        })
        .filter(|line| !line.is_empty())
        .collect();
    Record::new("pg_plan", "raw", "the driver's claim statement")
        .set("queued", jobs)
        .set("max", max)
        .set("plan", plan.join(" / "))
        .emit();
    Ok(())
}

/// Jobs of the seed (ids above `watermark`) not finished yet.
pub fn open_jobs(client: &mut Client, watermark: i64) -> Result<i64> {
    Ok(client
        .query_one(
            "SELECT count(*) FROM jobs WHERE id > $1 AND state IN ('queued', 'running')",
            &[&watermark],
        )?
        .get(0))
}

/// The driver's statements, prepared once on one connection.
pub struct Statements {
    insert_job: Statement,
    insert_jobs: Statement,
    insert_event: Statement,
    claim: Statement,
    complete: Statement,
    complete_many: Statement,
}

/// One raw connection with its prepared statements.
pub struct Raw {
    /// The connection.
    pub client: Client,
    /// Its prepared statements.
    pub statements: Statements,
}

impl Raw {
    /// Connects to `url` and prepares the statements.
    pub fn connect(url: &str) -> Result<Raw> {
        let mut client = Client::connect(url, NoTls)?;
        let statements = Statements {
            insert_job: client.prepare(INSERT_JOB)?,
            insert_jobs: client.prepare(INSERT_JOBS)?,
            insert_event: client.prepare(INSERT_EVENT)?,
            claim: client.prepare(&format!("{CLAIM}{JOB_COLUMNS}"))?,
            complete: client.prepare(&format!("{COMPLETE}{JOB_COLUMNS}"))?,
            complete_many: client.prepare(&format!("{COMPLETE_MANY}{JOB_COLUMNS}"))?,
        };
        Ok(Raw { client, statements })
    }

    /// Runs `body` in one transaction (`BEGIN` … `COMMIT`, rolled back on error).
    pub fn in_transaction<T>(
        &mut self,
        body: impl FnOnce(&mut postgres::Transaction<'_>, &Statements) -> Result<T>,
    ) -> Result<T> {
        let mut tx = self.client.transaction()?;
        let value = body(&mut tx, &self.statements)?;
        tx.commit()?;
        Ok(value)
    }

    /// [`Raw::in_transaction`], run again whenever PostgreSQL chose it as a deadlock's
    /// victim (each counted in `deadlocks`) until `stop` is set: then it answers `None`.
    pub fn in_transaction_retried<T>(
        &mut self,
        deadlocks: &mut u64,
        stop: &AtomicBool,
        mut body: impl FnMut(&mut postgres::Transaction<'_>, &Statements) -> Result<T>,
    ) -> Result<Option<T>> {
        loop {
            let mut tx = self.client.transaction()?;
            let ran = body(&mut tx, &self.statements).and_then(|value| {
                tx.commit()?;
                Ok(value)
            });
            match ran {
                Ok(value) => return Ok(Some(value)),
                Err(err) if is_deadlock(&*err) => {
                    *deadlocks += 1;
                    if stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// Whether `err`, or an error that caused it, is PostgreSQL's "deadlock detected".
pub fn is_deadlock(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(pg) = err.downcast_ref::<postgres::Error>()
            && pg.code() == Some(&postgres::error::SqlState::T_R_DEADLOCK_DETECTED)
        {
            return true;
        }
        next = err.source();
    }
    false
}

/// One history row, as `insert_events` writes it.
#[allow(clippy::too_many_arguments)]
fn insert_event(
    tx: &mut impl GenericClient,
    statements: &Statements,
    job: i64,
    at: i64,
    event: &str,
    from: Option<&str>,
    to: &str,
    actor: &str,
    detail: Option<&str>,
) -> Result<()> {
    tx.execute(
        &statements.insert_event,
        &[
            &[job].as_slice(),
            &[at].as_slice(),
            &[event].as_slice(),
            &[from].as_slice(),
            &[to].as_slice(),
            &[actor].as_slice(),
            &[detail].as_slice(),
        ],
    )?;
    Ok(())
}

/// The statements of `Store::enqueue` for one plain job: insert the job (answering its id) and
/// its `create` event.
pub fn insert_job(
    tx: &mut impl GenericClient,
    statements: &Statements,
    now: i64,
    payload: &str,
) -> Result<i64> {
    let id: i64 = tx
        .query_one(
            &statements.insert_job,
            &[
                &TENANT,
                &"bench",
                &"default",
                &"",
                &"",
                &"",
                &"",
                &"native",
                &"queued",
                &0_i64,
                &now,
                &3_i64,
                &Option::<&str>::None,
                &Option::<&str>::None,
                &Option::<i64>::None,
                &true,
                &payload,
                &now,
            ],
        )?
        .get(0);
    insert_event(tx, statements, id, now, "create", None, "queued", "", None)?;
    Ok(id)
}

/// The statements of `Store::enqueue_many` for jobs without idempotency keys: the jobs in
/// one statement, then their `create` events in one.
pub fn insert_jobs(
    tx: &mut impl GenericClient,
    statements: &Statements,
    now: i64,
    payloads: &[String],
) -> Result<()> {
    let n = payloads.len();
    let rows = tx.query(
        &statements.insert_jobs,
        &[
            &vec![TENANT; n],
            &vec!["bench"; n],
            &vec!["default"; n],
            &vec![""; n],
            &vec![""; n],
            &vec![""; n],
            &vec![""; n],
            &vec!["native"; n],
            &vec!["queued"; n],
            &vec![0_i64; n],
            &vec![now; n],
            &vec![3_i64; n],
            &vec![None::<&str>; n],
            &vec![None::<&str>; n],
            &vec![None::<i64>; n],
            &vec![true; n],
            &payloads,
            &vec![now; n],
        ],
    )?;
    let mut ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    ids.sort_unstable();
    tx.execute(
        &statements.insert_event,
        &[
            &ids,
            &vec![now; n],
            &vec!["create"; n],
            &vec![None::<&str>; n],
            &vec!["queued"; n],
            &vec![""; n],
            &vec![None::<&str>; n],
        ],
    )?;
    Ok(())
}

/// The claim of `Store::claim` for one queue: leases up to `max` jobs with one
/// `UPDATE … FOR UPDATE SKIP LOCKED … RETURNING` and writes a `claim` event for each, in the
/// order the store sorts them. Answers (id, lease token) of each.
pub fn claim(
    tx: &mut impl GenericClient,
    statements: &Statements,
    worker: &str,
    now: i64,
    max: u32,
) -> Result<Vec<(i64, i64)>> {
    let queue = "default";
    let rows = tx.query(
        &statements.claim,
        &[
            &"running",
            &worker,
            &(now + 600_000),
            &now,
            &queue,
            &Some(TENANT),
            &i64::from(max),
        ],
    )?;
    let mut jobs: Vec<(i64, i64, i64)> = rows
        .iter()
        .map(|row| (row.get(0), row.get(15), row.get(12)))
        .collect();
    jobs.sort_unstable();
    // The `claim` events of every job leased, in one statement, as the driver writes them.
    let leased: Vec<(i64, i64)> = jobs.iter().map(|&(id, token, _)| (id, token)).collect();
    let ids: Vec<i64> = jobs.iter().map(|job| job.0).collect();
    let details: Vec<Option<String>> = jobs
        .iter()
        .map(|(_, token, attempt)| Some(format!("attempt {attempt}, lease {token}")))
        .collect();
    let n = jobs.len();
    tx.execute(
        &statements.insert_event,
        &[
            &ids,
            &vec![now; n],
            &vec!["claim"; n],
            &vec![Some("queued"); n],
            &vec!["running"; n],
            &vec![worker; n],
            &details,
        ],
    )?;
    Ok(leased)
}

/// The statements of `Store::complete`: finish the job under its lease with one
/// `UPDATE … RETURNING`, and write the `complete` event.
pub fn complete(
    tx: &mut impl GenericClient,
    statements: &Statements,
    worker: &str,
    now: i64,
    id: i64,
    token: i64,
) -> Result<()> {
    let row = tx.query_opt(
        &statements.complete,
        &[
            &"succeeded",
            &"{\"ok\":true}",
            &now,
            &id,
            &token,
            &worker,
            &Some(TENANT),
        ],
    )?;
    if row.is_none() {
        return Err(fail(format!(
            "job {id} was not running under lease {token}"
        )));
    }
    insert_event(
        tx,
        statements,
        id,
        now,
        "complete",
        Some("running"),
        "succeeded",
        worker,
        None,
    )?;
    Ok(())
}

/// The statements of `Store::complete_many` for the jobs of one claim, `(id, lease token)`
/// each: finish them all under their leases with one `UPDATE … FROM unnest(…) RETURNING`, and
/// write their `complete` events in one statement.
pub fn complete_many(
    tx: &mut impl GenericClient,
    statements: &Statements,
    worker: &str,
    now: i64,
    jobs: &[(i64, i64)],
) -> Result<()> {
    let n = jobs.len();
    let ids: Vec<i64> = jobs.iter().map(|job| job.0).collect();
    let tokens: Vec<i64> = jobs.iter().map(|job| job.1).collect();
    let rows = tx.query(
        &statements.complete_many,
        &[
            &ids,
            &tokens,
            &vec![worker; n],
            &vec![Some(TENANT); n],
            &vec!["succeeded"; n],
            &vec!["{\"ok\":true}"; n],
            &vec![now; n],
        ],
    )?;
    if rows.len() != n {
        return Err(fail(format!(
            "{} of {n} jobs were not running under their leases",
            n - rows.len()
        )));
    }
    tx.execute(
        &statements.insert_event,
        &[
            &ids,
            &vec![now; n],
            &vec!["complete"; n],
            &vec![Some("running"); n],
            &vec!["succeeded"; n],
            &vec![worker; n],
            &vec![None::<String>; n],
        ],
    )?;
    Ok(())
}
