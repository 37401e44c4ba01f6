//! The PostgreSQL driver of the store's seam ([`jobstore::driver`]), begun: the job lifecycle
//! (create with idempotency keys and unique keys, get, events, steps, log, claim, heartbeat,
//! complete, fail, cancel, restart, delete, rescue, purge) and the job counts. What it does
//! not do yet (lists, uploaded data and outputs, definitions, the activity summaries, backup,
//! checks) answers [`Error::Unsupported`] and changes nothing.
//!
//! Writes run on a few writer threads, each with its own connection: one transaction per
//! write (so a failing write is undone alone), answered after its `COMMIT`; a `COMMIT` that
//! failed is [`Error::OutcomeUnknown`]. Reads take a connection of a bounded r2d2 pool. A
//! claim is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`: two
//! daemons never lease one job, and neither waits for the other's rows.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jobstore::driver::{
    Chunk, ChunkQuery, ClaimJobs, CompleteRow, Driver, EventRow, FinishedCount, HeartbeatRow,
    JobRow, OldestDue, Reader, ReleaseRow, StateCount, StepRow, WriteOp, WriteTx, WriterStats,
};
use jobstore::{
    DataBatch, Definition, DefinitionStep, Error, Job, JobEvent, JobPage, ListQuery, LogLevel,
    LogLine, Output, QueueCount, Result, State, Step, StepStatus,
};
use postgres::error::SqlState;
use postgres::{Client, Config, GenericClient, NoTls, Row};

/// Settings of the PostgreSQL driver.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Writer threads, each with a connection of its own.
    pub writers: usize,
    /// Read connections in the pool.
    pub read_connections: u32,
    /// How long a read waits for a pooled connection.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            writers: 4,
            read_connections: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections for the r2d2 pool.
#[derive(Debug)]
struct Manager {
    config: Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Client;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Client, postgres::Error> {
        self.config.connect(NoTls)
    }

    fn is_valid(&self, conn: &mut Client) -> std::result::Result<(), postgres::Error> {
        conn.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Client) -> bool {
        conn.is_closed()
    }
}

/// A storage error of this driver, as the store's error.
fn storage(err: postgres::Error) -> Error {
    Error::Storage(Box::new(err))
}

fn unsupported(operation: &'static str) -> Error {
    Error::Unsupported { operation }
}

/// The store on a PostgreSQL database (migrated when opened), shared by every daemon that
/// opens it.
pub struct PostgresDriver {
    url_shown: String,
    queue: Option<Sender<Box<dyn WriteOp>>>,
    writers: Vec<JoinHandle<()>>,
    pool: r2d2::Pool<Manager>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

impl std::fmt::Debug for PostgresDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDriver")
            .field("database", &self.url_shown)
            .finish_non_exhaustive()
    }
}

impl PostgresDriver {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), migrates it
    /// ([`crate::migrate`]) and starts the writers.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database cannot be reached, refuses, or was migrated by a
    /// newer build.
    pub fn connect(url: &str, options: &PostgresOptions) -> Result<PostgresDriver> {
        let config: Config = url.parse().map_err(storage)?;
        let mut client = config.connect(NoTls).map_err(storage)?;
        crate::migrate(&mut client).map_err(|err| Error::Storage(Box::new(err)))?;
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(options.read_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            .build(Manager {
                config: config.clone(),
            })?;
        let (queue, rx) = mpsc::channel::<Box<dyn WriteOp>>();
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        let mut writers = Vec::new();
        for index in 0..options.writers.max(1) {
            let client = config.connect(NoTls).map_err(storage)?;
            let (rx, counters) = (Arc::clone(&rx), Arc::clone(&counters));
            writers.push(
                std::thread::Builder::new()
                    .name(format!("jobstore-pg-writer-{index}"))
                    .spawn(move || writer_loop(client, &rx, &counters))?,
            );
        }
        let host = config
            .get_hosts()
            .first()
            .map(|host| format!("{host:?}"))
            .unwrap_or_default();
        Ok(PostgresDriver {
            url_shown: format!("{host}/{}", config.get_dbname().unwrap_or_default()),
            queue: Some(queue),
            writers,
            pool,
            counters,
        })
    }
}

impl Drop for PostgresDriver {
    fn drop(&mut self) {
        drop(self.queue.take());
        let current = std::thread::current().id();
        for writer in self.writers.drain(..) {
            if writer.thread().id() != current {
                let _ = writer.join();
            }
        }
    }
}

/// Takes one write at a time: `BEGIN`, the write, `COMMIT` (or `ROLLBACK` when it failed),
/// then its answer.
fn writer_loop(mut client: Client, queue: &Mutex<Receiver<Box<dyn WriteOp>>>, counters: &Counters) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(op) = next else {
            return;
        };
        counters.writes.fetch_add(1, Ordering::Relaxed);
        let tx = match client.transaction() {
            Ok(tx) => tx,
            Err(err) => {
                op.refuse(storage(err));
                continue;
            }
        };
        let mut conn = Conn(tx);
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.run(&mut conn)));
        let Conn(tx) = conn;
        let reply = match ran {
            Ok(reply) => reply,
            Err(_) => {
                log::error!("a write panicked; it was rolled back");
                let _ = tx.rollback();
                continue;
            }
        };
        if !reply.succeeded() {
            let rolled = tx.rollback().map_err(storage);
            reply.finish(rolled);
            continue;
        }
        match tx.commit() {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                reply.finish(Ok(()));
            }
            Err(err) => {
                log::error!("commit failed, outcome of a write unknown: {err}");
                reply.finish(Err(Error::OutcomeUnknown(Box::new(err))));
            }
        }
    }
}

impl Driver for PostgresDriver {
    fn describe(&self) -> String {
        format!("postgres {}", self.url_shown)
    }

    fn path(&self) -> Option<&Path> {
        None
    }

    fn submit(&self, write: Box<dyn WriteOp>) {
        let Some(queue) = self.queue.as_ref() else {
            write.refuse(Error::Closed);
            return;
        };
        if let Err(mpsc::SendError(write)) = queue.send(write) {
            write.refuse(Error::Closed);
        }
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(Conn(self.pool.get()?)))
    }

    fn writer_stats(&self) -> WriterStats {
        WriterStats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    fn gone_uploaders(&self) -> Result<Vec<String>> {
        Err(unsupported("uploaded data"))
    }

    fn backup_to(&self, _dest: &Path) -> Result<()> {
        Err(unsupported(
            "backup (use pg_dump or the server's own backups)",
        ))
    }

    fn checkpoint(&self) -> Result<bool> {
        Err(unsupported(
            "checkpoint (the server checkpoints its own WAL)",
        ))
    }

    fn check(&self) -> Result<Vec<String>> {
        Err(unsupported("check"))
    }
}

/// A connection (a pooled reader, or a writer's transaction) seen through the seam.
struct Conn<C>(C);

const JOB_COLUMNS: &str = "id, tenant, kind, queue, name, source, target, created_by, \
     dialect, state, priority, run_at, attempt, max_attempts, lease_owner, lease_token, \
     lease_expires_at, heartbeat_at, cancel_requested_at, unique_key, definition_id, restart_of, \
     restartable, payload::text, result::text, error, progress::text, phase, created_at, \
     updated_at, started_at, finished_at";

fn parse_state(text: &str) -> Result<State> {
    text.parse()
}

fn json(text: &str) -> Result<serde_json::Value> {
    Ok(serde_json::from_str(text)?)
}

fn job_from_row(row: &Row) -> Result<Job> {
    let result: Option<String> = row.try_get(24).map_err(storage)?;
    let get = |e: postgres::Error| storage(e);
    Ok(Job {
        id: row.try_get(0).map_err(get)?,
        tenant: row.try_get(1).map_err(get)?,
        kind: row.try_get(2).map_err(get)?,
        queue: row.try_get(3).map_err(get)?,
        name: row.try_get(4).map_err(get)?,
        source: row.try_get(5).map_err(get)?,
        target: row.try_get(6).map_err(get)?,
        created_by: row.try_get(7).map_err(get)?,
        dialect: row.try_get(8).map_err(get)?,
        state: parse_state(row.try_get(9).map_err(get)?)?,
        priority: row.try_get(10).map_err(get)?,
        run_at: row.try_get(11).map_err(get)?,
        attempt: row.try_get(12).map_err(get)?,
        max_attempts: row.try_get(13).map_err(get)?,
        lease_owner: row.try_get(14).map_err(get)?,
        lease_token: row.try_get(15).map_err(get)?,
        lease_expires_at: row.try_get(16).map_err(get)?,
        heartbeat_at: row.try_get(17).map_err(get)?,
        cancel_requested_at: row.try_get(18).map_err(get)?,
        unique_key: row.try_get(19).map_err(get)?,
        definition_id: row.try_get(20).map_err(get)?,
        restart_of: row.try_get(21).map_err(get)?,
        restartable: row.try_get(22).map_err(get)?,
        payload: json(row.try_get(23).map_err(get)?)?,
        result: result.as_deref().map(json).transpose()?,
        error: row.try_get(25).map_err(get)?,
        progress: json(row.try_get(26).map_err(get)?)?,
        phase: row.try_get(27).map_err(get)?,
        created_at: row.try_get(28).map_err(get)?,
        updated_at: row.try_get(29).map_err(get)?,
        started_at: row.try_get(30).map_err(get)?,
        finished_at: row.try_get(31).map_err(get)?,
    })
}

fn jobs_from_rows(rows: &[Row]) -> Result<Vec<Job>> {
    rows.iter().map(job_from_row).collect()
}

/// RFC 7386: merges `patch` into `target` (what SQLite's `json_patch` does).
fn merge_patch(target: &mut serde_json::Value, patch: serde_json::Value) {
    let serde_json::Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(map) = target {
        for (key, value) in patch {
            if value.is_null() {
                map.remove(&key);
            } else {
                merge_patch(map.entry(key).or_insert(serde_json::Value::Null), value);
            }
        }
    }
}

fn unique_key_holder<C: GenericClient>(client: &mut C, tenant: &str, key: &str) -> Option<i64> {
    client
        .query_opt(
            "SELECT id FROM jobs WHERE tenant = $1 AND unique_key = $2 \
             AND state IN ('open', 'queued', 'running')",
            &[&tenant, &key],
        )
        .ok()
        .flatten()
        .map(|row| row.get(0))
}

/// Maps a violation of `jobs_unique_live` to the job that holds the key. The statement's
/// error aborts the transaction, so the holder is looked up on a savepoint taken before it.
fn is_unique_violation(err: &postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

impl Reader for Conn<r2d2::PooledConnection<Manager>> {
    fn ping(&mut self) -> Result<()> {
        read_ping(&mut *self.0)
    }
    fn load_job(&mut self, tenant: Option<&str>, id: i64) -> Result<Option<Job>> {
        read_job(&mut *self.0, tenant, id)
    }
    fn list_jobs(&mut self, _tenant: Option<&str>, _query: &ListQuery) -> Result<JobPage> {
        Err(unsupported("list"))
    }
    fn events(&mut self, job: i64) -> Result<Vec<JobEvent>> {
        read_events(&mut *self.0, job)
    }
    fn steps(&mut self, job: i64) -> Result<Vec<Step>> {
        read_steps(&mut *self.0, job)
    }
    fn log(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        read_log(&mut *self.0, job, after_seq, limit)
    }
    fn log_tail(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        read_log_tail(&mut *self.0, job, after_seq, limit)
    }
    fn data_batches(&mut self, _job: i64) -> Result<Vec<DataBatch>> {
        Err(unsupported("uploaded data"))
    }
    fn outputs(&mut self, _job: i64) -> Result<Vec<Output>> {
        Err(unsupported("outputs"))
    }
    fn output_exists(&mut self, _job: i64, _name: &str) -> Result<bool> {
        Err(unsupported("outputs"))
    }
    fn output_chunk_len(&mut self, _: i64, _: &str, _: i64, _: i64) -> Result<Option<usize>> {
        Err(unsupported("outputs"))
    }
    fn next_chunk(&mut self, _query: &ChunkQuery<'_>) -> Result<Option<Chunk>> {
        Err(unsupported("uploaded data"))
    }
    fn definition(&mut self, _tenant: &str, _id: &str) -> Result<Option<Definition>> {
        Err(unsupported("definitions"))
    }
    fn definition_ids(&mut self, _tenant: &str) -> Result<Vec<String>> {
        Err(unsupported("definitions"))
    }
    fn queue_counts(&mut self, tenant: Option<&str>) -> Result<Vec<QueueCount>> {
        read_queue_counts(&mut *self.0, tenant)
    }
    fn live_counts(&mut self, _tenant: Option<&str>) -> Result<Vec<StateCount>> {
        Err(unsupported("live counts"))
    }
    fn live_jobs(&mut self, _tenant: Option<&str>, _now: i64) -> Result<Vec<StateCount>> {
        Err(unsupported("queue activity"))
    }
    fn oldest_due(&mut self, _tenant: Option<&str>, _now: i64) -> Result<Vec<OldestDue>> {
        Err(unsupported("queue activity"))
    }
    fn created_since(&mut self, _: Option<&str>, _: i64, _: i64) -> Result<Vec<(i64, i64)>> {
        Err(unsupported("throughput"))
    }
    fn finished_since(&mut self, _: Option<&str>, _: i64, _: i64) -> Result<Vec<FinishedCount>> {
        Err(unsupported("throughput"))
    }
    fn running_jobs(&mut self, _tenant: Option<&str>, _limit: u32) -> Result<Vec<Job>> {
        Err(unsupported("running jobs"))
    }
}

fn read_ping<C: GenericClient>(client: &mut C) -> Result<()> {
    client.query_one("SELECT 1", &[]).map_err(storage)?;
    Ok(())
}

fn read_job<C: GenericClient>(
    client: &mut C,
    tenant: Option<&str>,
    id: i64,
) -> Result<Option<Job>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 \
                 AND ($2::text IS NULL OR tenant = $2)"
            ),
            &[&id, &tenant],
        )
        .map_err(storage)?;
    row.as_ref().map(job_from_row).transpose()
}

fn read_events<C: GenericClient>(client: &mut C, job: i64) -> Result<Vec<JobEvent>> {
    let rows = client
        .query(
            "SELECT id, at, event, from_state, to_state, actor, detail FROM job_events \
             WHERE job_id = $1 ORDER BY id",
            &[&job],
        )
        .map_err(storage)?;
    rows.iter()
        .map(|row| {
            let from: Option<String> = row.get(3);
            let to: String = row.get(4);
            Ok(JobEvent {
                seq: row.get(0),
                at: row.get(1),
                event: row.get(2),
                from: from.as_deref().map(parse_state).transpose()?,
                to: parse_state(&to)?,
                actor: row.get(5),
                detail: row.get(6),
            })
        })
        .collect()
}

fn read_steps<C: GenericClient>(client: &mut C, job: i64) -> Result<Vec<Step>> {
    let rows = client
        .query(
            "SELECT position, step_id, step_type_id, description, execution_scope, status, \
             exit_code, message, started_at, finished_at, updated_at FROM job_steps \
             WHERE job_id = $1 ORDER BY position",
            &[&job],
        )
        .map_err(storage)?;
    rows.iter()
        .map(|row| {
            let status: String = row.get(5);
            Ok(Step {
                position: row.get(0),
                step_id: row.get(1),
                step_type_id: row.get(2),
                description: row.get(3),
                execution_scope: row.get(4),
                status: status.parse()?,
                exit_code: row.get(6),
                message: row.get(7),
                started_at: row.get(8),
                finished_at: row.get(9),
                updated_at: row.get(10),
            })
        })
        .collect()
}

fn read_log<C: GenericClient>(
    client: &mut C,
    job: i64,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<LogLine>> {
    let rows = client
        .query(
            "SELECT id, at, level, message FROM job_logs WHERE job_id = $1 AND id > $2 \
             ORDER BY id LIMIT $3",
            &[&job, &after_seq, &i64::from(limit)],
        )
        .map_err(storage)?;
    log_lines(&rows)
}

/// The job's last `limit` log lines after line `after_seq`, oldest first.
fn read_log_tail<C: GenericClient>(
    client: &mut C,
    job: i64,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<LogLine>> {
    let rows = client
        .query(
            "SELECT id, at, level, message FROM job_logs WHERE job_id = $1 AND id > $2 \
             ORDER BY id DESC LIMIT $3",
            &[&job, &after_seq, &i64::from(limit)],
        )
        .map_err(storage)?;
    let mut lines = log_lines(&rows)?;
    lines.reverse();
    Ok(lines)
}

/// Log lines from rows of `id, at, level, message`.
fn log_lines(rows: &[postgres::Row]) -> Result<Vec<LogLine>> {
    rows.iter()
        .map(|row| {
            let level: String = row.get(2);
            Ok(LogLine {
                seq: row.get(0),
                at: row.get(1),
                level: level.parse()?,
                message: row.get(3),
            })
        })
        .collect()
}

fn read_queue_counts<C: GenericClient>(
    client: &mut C,
    tenant: Option<&str>,
) -> Result<Vec<QueueCount>> {
    let rows = client
        .query(
            "SELECT queue, state, sum(jobs)::bigint FROM job_counts \
             WHERE ($1::text IS NULL OR tenant = $1) \
             GROUP BY queue, state HAVING sum(jobs) > 0 ORDER BY queue, state",
            &[&tenant],
        )
        .map_err(storage)?;
    rows.iter()
        .map(|row| {
            let state: String = row.get(1);
            Ok(QueueCount {
                queue: row.get(0),
                state: parse_state(&state)?,
                jobs: row.get(2),
            })
        })
        .collect()
}

impl Reader for Conn<postgres::Transaction<'_>> {
    fn ping(&mut self) -> Result<()> {
        read_ping(&mut self.0)
    }
    fn load_job(&mut self, tenant: Option<&str>, id: i64) -> Result<Option<Job>> {
        read_job(&mut self.0, tenant, id)
    }
    fn list_jobs(&mut self, _tenant: Option<&str>, _query: &ListQuery) -> Result<JobPage> {
        Err(unsupported("list"))
    }
    fn events(&mut self, job: i64) -> Result<Vec<JobEvent>> {
        read_events(&mut self.0, job)
    }
    fn steps(&mut self, job: i64) -> Result<Vec<Step>> {
        read_steps(&mut self.0, job)
    }
    fn log(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        read_log(&mut self.0, job, after_seq, limit)
    }
    fn log_tail(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        read_log_tail(&mut self.0, job, after_seq, limit)
    }
    fn data_batches(&mut self, _job: i64) -> Result<Vec<DataBatch>> {
        Err(unsupported("uploaded data"))
    }
    fn outputs(&mut self, _job: i64) -> Result<Vec<Output>> {
        Err(unsupported("outputs"))
    }
    fn output_exists(&mut self, _job: i64, _name: &str) -> Result<bool> {
        Err(unsupported("outputs"))
    }
    fn output_chunk_len(&mut self, _: i64, _: &str, _: i64, _: i64) -> Result<Option<usize>> {
        Err(unsupported("outputs"))
    }
    fn next_chunk(&mut self, _query: &ChunkQuery<'_>) -> Result<Option<Chunk>> {
        Err(unsupported("uploaded data"))
    }
    fn definition(&mut self, _tenant: &str, _id: &str) -> Result<Option<Definition>> {
        Err(unsupported("definitions"))
    }
    fn definition_ids(&mut self, _tenant: &str) -> Result<Vec<String>> {
        Err(unsupported("definitions"))
    }
    fn queue_counts(&mut self, tenant: Option<&str>) -> Result<Vec<QueueCount>> {
        read_queue_counts(&mut self.0, tenant)
    }
    fn live_counts(&mut self, _tenant: Option<&str>) -> Result<Vec<StateCount>> {
        Err(unsupported("live counts"))
    }
    fn live_jobs(&mut self, _tenant: Option<&str>, _now: i64) -> Result<Vec<StateCount>> {
        Err(unsupported("queue activity"))
    }
    fn oldest_due(&mut self, _tenant: Option<&str>, _now: i64) -> Result<Vec<OldestDue>> {
        Err(unsupported("queue activity"))
    }
    fn created_since(&mut self, _: Option<&str>, _: i64, _: i64) -> Result<Vec<(i64, i64)>> {
        Err(unsupported("throughput"))
    }
    fn finished_since(&mut self, _: Option<&str>, _: i64, _: i64) -> Result<Vec<FinishedCount>> {
        Err(unsupported("throughput"))
    }
    fn running_jobs(&mut self, _tenant: Option<&str>, _limit: u32) -> Result<Vec<Job>> {
        Err(unsupported("running jobs"))
    }
}

impl WriteTx for Conn<postgres::Transaction<'_>> {
    fn idempotency_key(&mut self, tenant: &str, key: &str) -> Result<Option<(i64, String)>> {
        let row = self
            .0
            .query_opt(
                "SELECT job_id, fingerprint FROM idempotency_keys WHERE tenant = $1 AND key = $2",
                &[&tenant, &key],
            )
            .map_err(storage)?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    fn insert_idempotency_key(
        &mut self,
        tenant: &str,
        key: &str,
        job: i64,
        fingerprint: &str,
        now: i64,
    ) -> Result<()> {
        self.0
            .execute(
                "INSERT INTO idempotency_keys (tenant, key, job_id, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[&tenant, &key, &job, &fingerprint, &now],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn insert_job(&mut self, row: &JobRow<'_>) -> Result<i64> {
        let new = row.new;
        let mut savepoint = self.0.savepoint("insert_job").map_err(storage)?;
        let inserted = savepoint.query_one(
            "INSERT INTO jobs (tenant, kind, queue, name, source, target, created_by, dialect, \
             state, priority, run_at, max_attempts, unique_key, definition_id, restart_of, \
             restartable, payload, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, \
             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::text::json, $18, $18) RETURNING id",
            &[
                &row.tenant,
                &new.kind,
                &new.queue,
                &new.name,
                &new.source,
                &new.target,
                &new.created_by,
                &new.dialect,
                &row.state.as_str(),
                &new.priority,
                &new.run_at.unwrap_or(row.now),
                &new.max_attempts,
                &new.unique_key,
                &row.definition_id,
                &row.restart_of,
                &new.restartable,
                &row.payload,
                &row.now,
            ],
        );
        match inserted {
            Ok(inserted) => {
                savepoint.commit().map_err(storage)?;
                Ok(inserted.get(0))
            }
            Err(err) if is_unique_violation(&err) && new.unique_key.is_some() => {
                savepoint.rollback().map_err(storage)?;
                let key = new.unique_key.clone().unwrap_or_default();
                match unique_key_holder(&mut self.0, row.tenant, &key) {
                    Some(job) => Err(Error::JobAlreadyRunning {
                        unique_key: key,
                        job,
                    }),
                    None => Err(storage(err)),
                }
            }
            Err(err) => Err(storage(err)),
        }
    }

    fn insert_events(&mut self, events: &[EventRow<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let statement = self
            .0
            .prepare(
                "INSERT INTO job_events (job_id, at, event, from_state, to_state, actor, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .map_err(storage)?;
        for event in events {
            self.0
                .execute(
                    &statement,
                    &[
                        &event.job,
                        &event.at,
                        &event.event,
                        &event.from.map(State::as_str),
                        &event.to.as_str(),
                        &event.actor,
                        &event.detail,
                    ],
                )
                .map_err(storage)?;
        }
        Ok(())
    }

    fn cancel_job(&mut self, job: &Job, to: State, now: i64) -> Result<Job> {
        let finished_at = to.is_terminal().then_some(now);
        let row = self
            .0
            .query_one(
                &format!(
                    "UPDATE jobs SET state = $1, cancel_requested_at = $2, finished_at = $3, \
                     updated_at = $2 WHERE id = $4 AND state = $5 RETURNING {JOB_COLUMNS}"
                ),
                &[
                    &to.as_str(),
                    &now,
                    &finished_at,
                    &job.id,
                    &job.state.as_str(),
                ],
            )
            .map_err(storage)?;
        job_from_row(&row)
    }

    fn restart_job(&mut self, job: &Job, to: State, now: i64) -> Result<Job> {
        let mut savepoint = self.0.savepoint("restart_job").map_err(storage)?;
        let updated = savepoint.query_one(
            &format!(
                "UPDATE jobs SET state = $1, attempt = 0, run_at = $2, updated_at = $2, \
                 finished_at = NULL, started_at = NULL, cancel_requested_at = NULL, \
                 heartbeat_at = NULL, error = NULL, result = NULL, progress = '{{}}', \
                 phase = NULL WHERE id = $3 AND state = $4 RETURNING {JOB_COLUMNS}"
            ),
            &[&to.as_str(), &now, &job.id, &job.state.as_str()],
        );
        let updated = match updated {
            Ok(row) => {
                savepoint.commit().map_err(storage)?;
                row
            }
            Err(err) if is_unique_violation(&err) && job.unique_key.is_some() => {
                savepoint.rollback().map_err(storage)?;
                let key = job.unique_key.clone().unwrap_or_default();
                return match unique_key_holder(&mut self.0, &job.tenant, &key) {
                    Some(holder) => Err(Error::JobAlreadyRunning {
                        unique_key: key,
                        job: holder,
                    }),
                    None => Err(storage(err)),
                };
            }
            Err(err) => return Err(storage(err)),
        };
        self.0
            .execute(
                "UPDATE job_steps SET status = 'pending', exit_code = NULL, message = NULL, \
                 started_at = NULL, finished_at = NULL, updated_at = $2 WHERE job_id = $1",
                &[&job.id, &now],
            )
            .map_err(storage)?;
        job_from_row(&updated)
    }

    fn delete_job(&mut self, id: i64, state: State) -> Result<bool> {
        let deleted = self
            .0
            .execute(
                "DELETE FROM jobs WHERE id = $1 AND state = $2",
                &[&id, &state.as_str()],
            )
            .map_err(storage)?;
        Ok(deleted == 1)
    }

    fn delete_job_data(&mut self, job: i64) -> Result<()> {
        self.0
            .execute("DELETE FROM job_data_batches WHERE job_id = $1", &[&job])
            .map_err(storage)?;
        Ok(())
    }

    fn insert_log(&mut self, job: i64, now: i64, lines: &[(LogLevel, &str)]) -> Result<()> {
        let statement = self
            .0
            .prepare("INSERT INTO job_logs (job_id, at, level, message) VALUES ($1, $2, $3, $4)")
            .map_err(storage)?;
        for (level, message) in lines {
            self.0
                .execute(&statement, &[&job, &now, &level.as_str(), message])
                .map_err(storage)?;
        }
        Ok(())
    }

    fn claim(&mut self, claim: &ClaimJobs<'_>) -> Result<Vec<Job>> {
        let rows = self
            .0
            .query(
                &format!(
                    "UPDATE jobs SET state = $1, attempt = attempt + 1, leases = leases + 1, \
                     lease_token = leases + 1, lease_owner = $2, lease_expires_at = $3, \
                     heartbeat_at = NULL, started_at = $4, updated_at = $4 \
                     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' \
                         AND queue = ANY($5) AND run_at <= $4 \
                         AND ($6::text IS NULL OR tenant = $6) \
                         ORDER BY priority, run_at, id LIMIT $7 FOR UPDATE SKIP LOCKED) \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[
                    &claim.to.as_str(),
                    &claim.worker,
                    &claim.expires,
                    &claim.now,
                    &claim.queues,
                    &claim.tenant,
                    &i64::from(claim.max),
                ],
            )
            .map_err(storage)?;
        jobs_from_rows(&rows)
    }

    fn heartbeat(&mut self, row: &HeartbeatRow<'_>) -> Result<bool> {
        // The progress document is merged here (RFC 7386, as SQLite's json_patch) under the
        // row's lock: PostgreSQL's `||` on jsonb merges one level only.
        let current = self
            .0
            .query_opt(
                "SELECT progress::text FROM jobs \
                 WHERE id = $1 AND state = 'running' AND lease_token = $2 FOR UPDATE",
                &[&row.id, &row.lease_token],
            )
            .map_err(storage)?;
        let Some(current) = current else {
            return Ok(false);
        };
        let progress = match row.progress {
            Some(patch) => {
                let mut merged = json(current.get(0))?;
                merge_patch(&mut merged, json(patch)?);
                Some(serde_json::to_string(&merged)?)
            }
            None => None,
        };
        let changed = self
            .0
            .execute(
                "UPDATE jobs SET state = $1, lease_expires_at = $2, heartbeat_at = $3, \
                 updated_at = $3, progress = coalesce($4::text::json, progress), \
                 phase = coalesce($5, phase) \
                 WHERE id = $6 AND state = 'running' AND lease_token = $7",
                &[
                    &row.to.as_str(),
                    &row.expires,
                    &row.now,
                    &progress,
                    &row.phase,
                    &row.id,
                    &row.lease_token,
                ],
            )
            .map_err(storage)?;
        Ok(changed == 1)
    }

    fn complete_job(&mut self, row: &CompleteRow<'_>) -> Result<Option<Job>> {
        let updated = self
            .0
            .query_opt(
                &format!(
                    "UPDATE jobs SET state = $1, result = $2::text::json, finished_at = $3, \
                     updated_at = $3, lease_owner = NULL, lease_token = NULL, \
                     lease_expires_at = NULL \
                     WHERE id = $4 AND state = 'running' AND lease_token = $5 \
                         AND lease_owner = $6 AND ($7::text IS NULL OR tenant = $7) \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[
                    &row.to.as_str(),
                    &row.result,
                    &row.now,
                    &row.id,
                    &row.lease_token,
                    &row.worker,
                    &row.tenant,
                ],
            )
            .map_err(storage)?;
        updated.as_ref().map(job_from_row).transpose()
    }

    fn release_lease(&mut self, row: &ReleaseRow<'_>) -> Result<Job> {
        let updated = self
            .0
            .query_one(
                &format!(
                    "UPDATE jobs SET state = $1, run_at = $2, finished_at = $3, error = $4, \
                     updated_at = $5, lease_owner = NULL, lease_token = NULL, \
                     lease_expires_at = NULL \
                     WHERE id = $6 AND state = 'running' AND lease_token = $7 \
                     RETURNING {JOB_COLUMNS}"
                ),
                &[
                    &row.to.as_str(),
                    &row.run_at,
                    &row.finished_at,
                    &row.error,
                    &row.now,
                    &row.job.id,
                    &row.job.lease_token,
                ],
            )
            .map_err(storage)?;
        if row.to == State::Cancelled {
            // A cancelled job keeps no uploaded data, however it got there.
            self.delete_job_data(row.job.id)?;
        }
        job_from_row(&updated)
    }

    fn step_status(&mut self, job: i64, step_id: &str) -> Result<Option<StepStatus>> {
        let row = self
            .0
            .query_opt(
                "SELECT status FROM job_steps WHERE job_id = $1 AND step_id = $2",
                &[&job, &step_id],
            )
            .map_err(storage)?;
        row.map(|row| row.get::<_, String>(0).parse()).transpose()
    }

    fn update_step(&mut self, row: &StepRow<'_>) -> Result<()> {
        self.0
            .execute(
                "UPDATE job_steps SET status = $1, exit_code = coalesce($2, exit_code), \
                 message = coalesce($3, message), started_at = coalesce(started_at, $4), \
                 finished_at = $5, updated_at = $4 WHERE job_id = $6 AND step_id = $7",
                &[
                    &row.status.as_str(),
                    &row.exit_code,
                    &row.message,
                    &row.now,
                    &row.finished_at,
                    &row.job,
                    &row.step_id,
                ],
            )
            .map_err(storage)?;
        self.touch_job(row.job, None, row.now)
    }

    fn close_upload(&mut self, id: i64, from: State, to: State, now: i64) -> Result<bool> {
        let changed = self
            .0
            .execute(
                "UPDATE jobs SET state = $1, run_at = greatest(run_at, $2), updated_at = $2 \
                 WHERE id = $3 AND state = $4",
                &[&to.as_str(), &now, &id, &from.as_str()],
            )
            .map_err(storage)?;
        Ok(changed == 1)
    }

    fn batch_count(&mut self, _job: i64, _outputs: bool) -> Result<(u32, i64)> {
        Err(unsupported("uploaded data"))
    }

    fn delete_replaced_output(&mut self, _: i64, _: &str, _: i64) -> Result<()> {
        Err(unsupported("outputs"))
    }

    fn insert_batch(&mut self, _: i64, _: i64, _: i64, _: Option<(&str, i64)>) -> Result<()> {
        Err(unsupported("uploaded data"))
    }

    fn insert_chunk(&mut self, _: i64, _: i64, _: i64, _: &[u8], _: i64) -> Result<()> {
        Err(unsupported("uploaded data"))
    }

    fn seal_batch(&mut self, _job: i64, _batch: i64, _now: i64) -> Result<(i64, i64)> {
        Err(unsupported("uploaded data"))
    }

    fn touch_job(&mut self, id: i64, state: Option<State>, now: i64) -> Result<()> {
        self.0
            .execute(
                "UPDATE jobs SET updated_at = $1 WHERE id = $2 \
                 AND ($3::text IS NULL OR state = $3)",
                &[&now, &id, &state.map(State::as_str)],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn delete_batch(&mut self, _job: i64, _batch: i64, _incomplete_only: bool) -> Result<usize> {
        Err(unsupported("uploaded data"))
    }

    fn delete_uploader_batches(&mut self, _uploader: &str) -> Result<usize> {
        Err(unsupported("uploaded data"))
    }

    fn put_definition(&mut self, _: &str, _: &Definition, _: i64) -> Result<()> {
        Err(unsupported("definitions"))
    }

    fn latest_execution(&mut self, _: &str, _: &str) -> Result<Option<(i64, State)>> {
        Err(unsupported("definitions"))
    }

    fn insert_steps(
        &mut self,
        _job: i64,
        _steps: &[DefinitionStep],
        _restart_of: Option<i64>,
        _now: i64,
    ) -> Result<()> {
        Err(unsupported("definitions"))
    }

    fn expired_leases(&mut self, tenant: Option<&str>, now: i64, limit: i64) -> Result<Vec<i64>> {
        // Locked and skipped when another daemon rescues them at the same moment.
        let rows = self
            .0
            .query(
                "SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < $1 \
                 AND ($2::text IS NULL OR tenant = $2) \
                 ORDER BY lease_expires_at LIMIT $3 FOR UPDATE SKIP LOCKED",
                &[&now, &tenant, &limit],
            )
            .map_err(storage)?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn purge_finished(&mut self, tenant: Option<&str>, before: i64, limit: i64) -> Result<usize> {
        let deleted = self
            .0
            .execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
                 WHERE coalesce(finished_at, -1) >= 0 AND coalesce(finished_at, -1) < $1 \
                 AND ($2::text IS NULL OR tenant = $2) LIMIT $3 FOR UPDATE SKIP LOCKED)",
                &[&before, &tenant, &limit],
            )
            .map_err(storage)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    fn purge_open(&mut self, tenant: Option<&str>, before: i64, limit: i64) -> Result<usize> {
        let deleted = self
            .0
            .execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'open' \
                 AND created_at < $1 AND ($2::text IS NULL OR tenant = $2) \
                 LIMIT $3 FOR UPDATE SKIP LOCKED)",
                &[&before, &tenant, &limit],
            )
            .map_err(storage)?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    fn purge_incomplete_batches(&mut self, _before: i64, _limit: i64) -> Result<usize> {
        Err(unsupported("uploaded data"))
    }
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn progress_merges_as_rfc_7386_says() {
        let mut doc = json!({"a": 1, "nested": {"x": 1, "y": 2}, "gone": true});
        merge_patch(
            &mut doc,
            json!({"nested": {"y": 3, "z": 4}, "gone": null, "b": 2.5}),
        );
        assert_eq!(
            doc,
            json!({"a": 1, "nested": {"x": 1, "y": 3, "z": 4}, "b": 2.5})
        );
    }
}
