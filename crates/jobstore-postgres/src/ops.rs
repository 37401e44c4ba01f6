//! The typed operations of [`jobstore::driver`] in PostgreSQL's SQL: every statement of the
//! driver. Reads run on a pooled connection or inside a writer's transaction (one
//! implementation over [`AsClient`]); writes inside the writer's transaction. Each statement
//! is its SQL text, run through the statements its connection prepared (`session`): prepared
//! the first time the connection runs it, then one round trip a run.

use std::sync::Arc;

use jobstore::driver::list_sql::{Dialect, PageWalk, SqlParam, list_sql};
use jobstore::driver::{
    Chunk, ChunkQuery, ClaimJobs, CompleteRow, EventRow, FinishedCount, HeartbeatRow, JobRow,
    OldestDue, Reader, ReleaseRow, StateCount, StepRow, WriteTx,
};
use jobstore::{
    DataBatch, Definition, DefinitionStep, Error, Job, JobEvent, JobPage, ListQuery, LogLevel,
    LogLine, Output, QueueCount, Result, State, Step, StepStatus,
};
use postgres::Row;
use postgres::error::SqlState;
use postgres::types::{FromSql, ToSql};

use crate::driver::storage;
use crate::session::{AsClient, Tx};

/// A connection (a pooled reader, or a writer's transaction) seen through the seam, with the
/// name this driver instance writes as the uploader of its data batches.
pub(crate) struct Conn<C>(pub(crate) C, pub(crate) Arc<str>);

pub(crate) const JOB_COLUMNS: &str = "id, tenant, kind, queue, name, source, target, created_by, \
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
    job_from_row_at(row, 0)
}

/// The job whose [`JOB_COLUMNS`] start at column `first` of `row`.
fn job_from_row_at(row: &Row, first: usize) -> Result<Job> {
    let result: Option<String> = row.try_get(first + 24).map_err(storage)?;
    let get = |e: postgres::Error| storage(e);
    Ok(Job {
        id: row.try_get(first).map_err(get)?,
        tenant: row.try_get(first + 1).map_err(get)?,
        kind: row.try_get(first + 2).map_err(get)?,
        queue: row.try_get(first + 3).map_err(get)?,
        name: row.try_get(first + 4).map_err(get)?,
        source: row.try_get(first + 5).map_err(get)?,
        target: row.try_get(first + 6).map_err(get)?,
        created_by: row.try_get(first + 7).map_err(get)?,
        dialect: row.try_get(first + 8).map_err(get)?,
        state: parse_state(row.try_get(first + 9).map_err(get)?)?,
        priority: row.try_get(first + 10).map_err(get)?,
        run_at: row.try_get(first + 11).map_err(get)?,
        attempt: row.try_get(first + 12).map_err(get)?,
        max_attempts: row.try_get(first + 13).map_err(get)?,
        lease_owner: row.try_get(first + 14).map_err(get)?,
        lease_token: row.try_get(first + 15).map_err(get)?,
        lease_expires_at: row.try_get(first + 16).map_err(get)?,
        heartbeat_at: row.try_get(first + 17).map_err(get)?,
        cancel_requested_at: row.try_get(first + 18).map_err(get)?,
        unique_key: row.try_get(first + 19).map_err(get)?,
        definition_id: row.try_get(first + 20).map_err(get)?,
        restart_of: row.try_get(first + 21).map_err(get)?,
        restartable: row.try_get(first + 22).map_err(get)?,
        payload: json(row.try_get(first + 23).map_err(get)?)?,
        result: result.as_deref().map(json).transpose()?,
        error: row.try_get(first + 25).map_err(get)?,
        progress: json(row.try_get(first + 26).map_err(get)?)?,
        phase: row.try_get(first + 27).map_err(get)?,
        created_at: row.try_get(first + 28).map_err(get)?,
        updated_at: row.try_get(first + 29).map_err(get)?,
        started_at: row.try_get(first + 30).map_err(get)?,
        finished_at: row.try_get(first + 31).map_err(get)?,
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

/// The live job holding `key` in `tenant`, if one does.
fn unique_key_holder(client: &mut impl AsClient, tenant: &str, key: &str) -> Result<Option<i64>> {
    let row = client
        .query_opt(
            "SELECT id FROM jobs WHERE tenant = $1 AND unique_key = $2 \
             AND state IN ('open', 'queued', 'running')",
            &[&tenant, &key],
        )
        .map_err(storage)?;
    row.map(|row| row.try_get(0).map_err(storage)).transpose()
}

/// Maps a violation of `jobs_unique_live` to the job that holds the key. The statement's
/// error aborts the transaction, so the holder is looked up on a savepoint taken before it.
fn is_unique_violation(err: &postgres::Error) -> bool {
    err.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A column of a row, or a storage error (never a panic) when it does not convert.
fn col<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T> {
    row.try_get(index).map_err(storage)
}

/// The key of the advisory lock a fold of the job counts holds (the bytes of "jobcount").
const FOLD_LOCK: i64 = 0x6a6f_6263_6f75_6e74;

/// Folds the rows of `job_counts` (migration 2: each statement that changes jobs adds its
/// changes as rows) into one row per tenant, queue and state, for each of them that has
/// several: one statement, which deletes the rows it read and adds their sums, so every
/// reader sees the same totals before and after. Rows added meanwhile are left for the next
/// fold. Skipped (0) while another session folds: the two would only wait for each other.
/// Answers how many rows it folded.
pub(crate) fn fold_job_counts(
    conn: &mut impl AsClient,
) -> std::result::Result<u64, postgres::Error> {
    let folded = conn.query_one(
        "WITH folded AS ( \
             DELETE FROM job_counts \
             WHERE (SELECT pg_try_advisory_xact_lock($1)) \
               AND (tenant, queue, state) IN (SELECT tenant, queue, state FROM job_counts \
                                              GROUP BY tenant, queue, state \
                                              HAVING count(*) > 1) \
             RETURNING tenant, queue, state, jobs), \
         added AS ( \
             INSERT INTO job_counts (tenant, queue, state, jobs) \
             SELECT tenant, queue, state, sum(jobs) FROM folded \
             GROUP BY tenant, queue, state HAVING sum(jobs) <> 0) \
         SELECT count(*) FROM folded",
        &[&FOLD_LOCK],
    )?;
    let n: i64 = folded.try_get(0)?;
    Ok(n.unsigned_abs())
}

/// One text column of the rows to insert, as an array to bind.
fn column<'a>(rows: &[JobRow<'a>], field: impl Fn(&JobRow<'a>) -> &'a str) -> Vec<&'a str> {
    rows.iter().map(field).collect()
}

/// A count or a sum as the store's `usize`.
fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Takes the transaction-long advisory lock of idempotency key `key` of `tenant`.
fn lock_key(tx: &mut Tx<'_>, tenant: &str, key: &str) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))",
        &[&tenant, &key],
    )
    .map_err(storage)?;
    Ok(())
}

/// How often a statement that lost a deadlock is run again.
const DEADLOCK_RETRIES: u32 = 5;

/// Runs `statement` in `tx`, again when PostgreSQL chose it as a deadlock's victim. A
/// statement that changes many jobs at once (a claim, a purge) locks what it meets as it meets
/// it, so it can wait for another session that waits for it (a daemon's write holding a job
/// row, an operator's lock); undoing the victim releases what it locked, the other goes on,
/// and the rerun finds its own rows (`SKIP LOCKED`) without it.
///
/// Only the statement is undone, never what ran before it in the transaction. When it is the
/// transaction's first statement (a claim's, a purge's: [`Tx::is_fresh`]), there is nothing
/// before it: the victim's transaction is rolled back and begun again ([`Tx::begin_again`],
/// one round trip, and only after a deadlock), with no savepoint around every run (a
/// `SAVEPOINT` and a `RELEASE`: two round trips each time). Otherwise it runs on a savepoint,
/// rolled back to after a deadlock. Either way a statement first prepared in what was rolled
/// back stays prepared: a session's prepared statements are not transactional (`session`).
fn deadlock_retried<T>(
    tx: &mut Tx<'_>,
    mut statement: impl FnMut(&mut Tx<'_>) -> std::result::Result<T, postgres::Error>,
) -> Result<T> {
    let is_deadlock = |err: &postgres::Error| err.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED);
    let mut retries = 0;
    if tx.is_fresh() {
        loop {
            match statement(tx) {
                Ok(value) => return Ok(value),
                Err(err) if is_deadlock(&err) && retries < DEADLOCK_RETRIES => {
                    tx.begin_again().map_err(storage)?;
                    retries += 1;
                    log::debug!("a statement lost a deadlock; running it again ({retries})");
                }
                Err(err) => return Err(storage(err)),
            }
        }
    }
    loop {
        let mut savepoint = tx.savepoint("deadlock_retried").map_err(storage)?;
        match statement(&mut savepoint) {
            Ok(value) => {
                savepoint.commit().map_err(storage)?;
                return Ok(value);
            }
            Err(err) if is_deadlock(&err) && retries < DEADLOCK_RETRIES => {
                savepoint.rollback().map_err(storage)?;
                retries += 1;
                log::debug!("a statement lost a deadlock; running it again ({retries})");
            }
            Err(err) => {
                let _ = savepoint.rollback();
                return Err(storage(err));
            }
        }
    }
}

/// A list statement's value as PostgreSQL binds it.
fn pg_param(param: &SqlParam) -> Box<dyn ToSql + Sync> {
    match param {
        SqlParam::Integer(value) => Box::new(*value),
        SqlParam::Text(text) => Box::new(text.clone()),
        SqlParam::Bool(flag) => Box::new(*flag),
        SqlParam::Texts(texts) => Box::new(texts.clone()),
        SqlParam::Integers(values) => Box::new(values.clone()),
        SqlParam::Ranks(_) => Box::new(param.json().unwrap_or_default()),
    }
}

fn bound(params: &[Box<dyn ToSql + Sync>]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect()
}

/// `(tenant, queue, state, jobs, due)` rows as counts.
fn state_counts(rows: &[Row]) -> Result<Vec<StateCount>> {
    rows.iter()
        .map(|row| {
            let state: String = col(row, 2)?;
            Ok(StateCount {
                tenant: col(row, 0)?,
                queue: col(row, 1)?,
                state: parse_state(&state)?,
                jobs: col(row, 3)?,
                due: col(row, 4)?,
            })
        })
        .collect()
}

/// The job `id` visible in `tenant`'s scope (`None`: any tenant), read with `locking` (`""`,
/// or `" FOR UPDATE"` in a write that holds it).
fn job_by_id<X: AsClient>(
    conn: &mut X,
    tenant: Option<&str>,
    id: i64,
    locking: &'static str,
) -> Result<Option<Job>> {
    let row = conn
        .query_opt(
            &format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 \
                 AND ($2::text IS NULL OR tenant = $2){locking}"
            ),
            &[&id, &tenant],
        )
        .map_err(storage)?;
    row.as_ref().map(job_from_row).transpose()
}

impl<X: AsClient> Reader for Conn<X> {
    fn ping(&mut self) -> Result<()> {
        self.0.query_one("SELECT 1", &[]).map_err(storage)?;
        Ok(())
    }

    fn load_job(&mut self, tenant: Option<&str>, id: i64) -> Result<Option<Job>> {
        job_by_id(&mut self.0, tenant, id, "")
    }

    fn list_jobs(&mut self, tenant: Option<&str>, query: &ListQuery) -> Result<JobPage> {
        let sql = list_sql(
            query,
            Dialect::Postgres,
            tenant,
            JOB_COLUMNS,
            PageWalk::SortIndex,
        )?;
        let params: Vec<_> = sql.params.iter().map(pg_param).collect();
        let rows = self
            .0
            .query(&sql.select, &bound(&params))
            .map_err(storage)?;
        let jobs = jobs_from_rows(&rows)?;
        let total = match &sql.count {
            Some(count) => {
                let params: Vec<_> = sql.count_params.iter().map(pg_param).collect();
                let row = self.0.query_one(count, &bound(&params)).map_err(storage)?;
                Some(col::<i64>(&row, 0)?)
            }
            None => None,
        };
        Ok(sql.page(jobs, total))
    }

    fn events(&mut self, job: i64) -> Result<Vec<JobEvent>> {
        let rows = self
            .0
            .query(
                "SELECT id, at, event, from_state, to_state, actor, detail FROM job_events \
                 WHERE job_id = $1 ORDER BY id",
                &[&job],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let from: Option<String> = col(row, 3)?;
                let to: String = col(row, 4)?;
                Ok(JobEvent {
                    seq: col(row, 0)?,
                    at: col(row, 1)?,
                    event: col(row, 2)?,
                    from: from.as_deref().map(parse_state).transpose()?,
                    to: parse_state(&to)?,
                    actor: col(row, 5)?,
                    detail: col(row, 6)?,
                })
            })
            .collect()
    }

    fn steps(&mut self, job: i64) -> Result<Vec<Step>> {
        let rows = self
            .0
            .query(
                "SELECT position, step_id, step_type_id, description, execution_scope, status, \
                 exit_code, message, started_at, finished_at, updated_at FROM job_steps \
                 WHERE job_id = $1 ORDER BY position",
                &[&job],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let status: String = col(row, 5)?;
                Ok(Step {
                    position: col(row, 0)?,
                    step_id: col(row, 1)?,
                    step_type_id: col(row, 2)?,
                    description: col(row, 3)?,
                    execution_scope: col(row, 4)?,
                    status: status.parse()?,
                    exit_code: col(row, 6)?,
                    message: col(row, 7)?,
                    started_at: col(row, 8)?,
                    finished_at: col(row, 9)?,
                    updated_at: col(row, 10)?,
                })
            })
            .collect()
    }

    fn log(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        let rows = self
            .0
            .query(
                "SELECT id, at, level, message FROM job_logs WHERE job_id = $1 AND id > $2 \
                 ORDER BY id LIMIT $3",
                &[&job, &after_seq, &i64::from(limit)],
            )
            .map_err(storage)?;
        log_lines(&rows)
    }

    fn log_tail(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        let rows = self
            .0
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

    fn data_batches(&mut self, job: i64) -> Result<Vec<DataBatch>> {
        let rows = self
            .0
            .query(
                "SELECT batch, bytes, created_at FROM job_data_batches \
                 WHERE job_id = $1 AND complete AND name IS NULL ORDER BY batch",
                &[&job],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(DataBatch {
                    batch: col(row, 0)?,
                    bytes: col(row, 1)?,
                    created_at: col(row, 2)?,
                })
            })
            .collect()
    }

    fn outputs(&mut self, job: i64) -> Result<Vec<Output>> {
        let rows = self
            .0
            .query(
                "SELECT name, count(*), sum(bytes)::bigint FROM job_data_batches \
                 WHERE job_id = $1 AND complete AND name IS NOT NULL \
                 GROUP BY name ORDER BY name",
                &[&job],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(Output {
                    name: col(row, 0)?,
                    batches: col(row, 1)?,
                    bytes: col(row, 2)?,
                })
            })
            .collect()
    }

    fn output_exists(&mut self, job: i64, name: &str) -> Result<bool> {
        Ok(self
            .0
            .query_opt(
                "SELECT 1 FROM job_data_batches WHERE job_id = $1 AND name = $2 \
                 AND complete LIMIT 1",
                &[&job, &name],
            )
            .map_err(storage)?
            .is_some())
    }

    fn output_chunk_len(
        &mut self,
        job: i64,
        name: &str,
        batch: i64,
        chunk: i64,
    ) -> Result<Option<usize>> {
        let row = self
            .0
            .query_opt(
                "SELECT octet_length(c.data)::bigint FROM job_data_chunks c \
                 JOIN job_data_batches b ON b.job_id = c.job_id AND b.batch = c.batch \
                 WHERE c.job_id = $1 AND c.batch = $2 AND c.chunk = $3 \
                 AND b.complete AND b.name = $4",
                &[&job, &batch, &chunk, &name],
            )
            .map_err(storage)?;
        row.map(|row| Ok(usize::try_from(col::<i64>(&row, 0)?).unwrap_or(0)))
            .transpose()
    }

    fn next_chunk(&mut self, query: &ChunkQuery<'_>) -> Result<Option<Chunk>> {
        let row = self
            .0
            .query_opt(
                "SELECT c.batch, c.chunk, c.data FROM job_data_chunks c \
                 JOIN job_data_batches b ON b.job_id = c.job_id AND b.batch = c.batch \
                 WHERE c.job_id = $1 AND b.complete AND ($2::bigint IS NULL OR c.batch = $2) \
                 AND b.name IS NOT DISTINCT FROM $5::text \
                 AND (c.batch > $3 OR (c.batch = $3 AND c.chunk > $4)) \
                 ORDER BY c.batch, c.chunk LIMIT 1",
                &[
                    &query.job,
                    &query.only_batch,
                    &query.after_batch,
                    &query.after_chunk,
                    &query.name,
                ],
            )
            .map_err(storage)?;
        row.map(|row| {
            Ok(Chunk {
                batch: col(&row, 0)?,
                chunk: col(&row, 1)?,
                data: col(&row, 2)?,
            })
        })
        .transpose()
    }

    fn definition(&mut self, tenant: &str, id: &str) -> Result<Option<Definition>> {
        let Some(head) = self
            .0
            .query_opt(
                "SELECT description, queue, restartable, enabled, valid, created_at, updated_at \
                 FROM job_definitions WHERE tenant = $1 AND id = $2",
                &[&tenant, &id],
            )
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let steps = self
            .0
            .query(
                "SELECT step_id, step_type_id, description, execution_scope \
                 FROM job_definition_steps WHERE tenant = $1 AND definition_id = $2 \
                 ORDER BY position",
                &[&tenant, &id],
            )
            .map_err(storage)?
            .iter()
            .map(|row| {
                Ok(DefinitionStep {
                    step_id: col(row, 0)?,
                    step_type_id: col(row, 1)?,
                    description: col(row, 2)?,
                    execution_scope: col(row, 3)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Definition {
            id: id.to_owned(),
            description: col(&head, 0)?,
            queue: col(&head, 1)?,
            restartable: col(&head, 2)?,
            enabled: col(&head, 3)?,
            valid: col(&head, 4)?,
            steps,
            created_at: col(&head, 5)?,
            updated_at: col(&head, 6)?,
        }))
    }

    fn definition_ids(&mut self, tenant: &str) -> Result<Vec<String>> {
        self.0
            .query(
                "SELECT id FROM job_definitions WHERE tenant = $1 ORDER BY id",
                &[&tenant],
            )
            .map_err(storage)?
            .iter()
            .map(|row| col(row, 0))
            .collect()
    }

    fn queue_counts(&mut self, tenant: Option<&str>) -> Result<Vec<QueueCount>> {
        let rows = self
            .0
            .query(
                "SELECT queue, state, sum(jobs)::bigint FROM job_counts \
                 WHERE ($1::text IS NULL OR tenant = $1) \
                 GROUP BY queue, state HAVING sum(jobs) > 0 ORDER BY queue, state",
                &[&tenant],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let state: String = col(row, 1)?;
                Ok(QueueCount {
                    queue: col(row, 0)?,
                    state: parse_state(&state)?,
                    jobs: col(row, 2)?,
                })
            })
            .collect()
    }

    fn live_counts(&mut self, tenant: Option<&str>) -> Result<Vec<StateCount>> {
        // The counts the triggers keep: the sums of their rows.
        let rows = self
            .0
            .query(
                "SELECT tenant, queue, state, sum(jobs)::bigint, 0::bigint FROM job_counts \
                 WHERE ($1::text IS NULL OR tenant = $1) AND state IN ('queued', 'running') \
                 GROUP BY tenant, queue, state HAVING sum(jobs) > 0 \
                 ORDER BY tenant, queue, state",
                &[&tenant],
            )
            .map_err(storage)?;
        state_counts(&rows)
    }

    fn live_jobs(&mut self, tenant: Option<&str>, now: i64) -> Result<Vec<StateCount>> {
        let rows = self
            .0
            .query(
                "SELECT tenant, queue, state, count(*), count(*) FILTER (WHERE run_at <= $1) \
                 FROM jobs WHERE ($2::text IS NULL OR tenant = $2) \
                 AND state IN ('queued', 'running') \
                 GROUP BY tenant, queue, state ORDER BY tenant, queue, state",
                &[&now, &tenant],
            )
            .map_err(storage)?;
        state_counts(&rows)
    }

    fn oldest_due(&mut self, tenant: Option<&str>, now: i64) -> Result<Vec<OldestDue>> {
        let rows = self
            .0
            .query(
                "SELECT DISTINCT ON (tenant, queue) tenant, queue, run_at, id FROM jobs \
                 WHERE state = 'queued' AND run_at <= $1 \
                 AND ($2::text IS NULL OR tenant = $2) \
                 ORDER BY tenant, queue, run_at, id",
                &[&now, &tenant],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                Ok(OldestDue {
                    tenant: col(row, 0)?,
                    queue: col(row, 1)?,
                    run_at: col(row, 2)?,
                    id: col(row, 3)?,
                })
            })
            .collect()
    }

    fn created_since(
        &mut self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let rows = self
            .0
            .query(
                "SELECT (created_at - $1) / $3, count(*) FROM jobs \
                 WHERE created_at >= $1 AND ($2::text IS NULL OR tenant = $2) \
                 GROUP BY 1 ORDER BY 1",
                &[&since, &tenant, &bucket_ms],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| Ok((col(row, 0)?, col(row, 1)?)))
            .collect()
    }

    fn finished_since(
        &mut self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<FinishedCount>> {
        let rows = self
            .0
            .query(
                "SELECT (coalesce(finished_at, -1) - $1) / $3, state, queue, count(*) \
                 FROM jobs WHERE coalesce(finished_at, -1) >= $1 \
                 AND ($2::text IS NULL OR tenant = $2) \
                 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
                &[&since, &tenant, &bucket_ms],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| {
                let state: String = col(row, 1)?;
                Ok(FinishedCount {
                    bucket: col(row, 0)?,
                    state: parse_state(&state)?,
                    queue: col(row, 2)?,
                    jobs: col(row, 3)?,
                })
            })
            .collect()
    }

    fn running_jobs(&mut self, tenant: Option<&str>, limit: u32) -> Result<Vec<Job>> {
        let rows = self
            .0
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN (SELECT id FROM jobs \
                     WHERE state = 'running' AND ($2::text IS NULL OR tenant = $2) \
                     ORDER BY tenant, id LIMIT $1) ORDER BY lease_owner, id"
                ),
                &[&i64::from(limit), &tenant],
            )
            .map_err(storage)?;
        jobs_from_rows(&rows)
    }
}

/// How often a create runs its insert again when the job that held its unique key ended
/// before it could be named.
const UNIQUE_KEY_TRIES: u32 = 3;

impl WriteTx for Conn<Tx<'_>> {
    fn lock_job(&mut self, tenant: Option<&str>, id: i64) -> Result<Option<Job>> {
        // The row is locked as it is read (`FOR UPDATE`). A plain read would let another
        // writer (a rescue, a `complete_many`, another daemon's cancel) change the job between
        // this read and this write's statements: a statement without the state in its
        // `WHERE` (a step report, a seal) would then write to a job no longer in the state
        // checked, and one with it would match no row. Read committed: a job another write
        // holds is read once that write ended, as it committed it.
        job_by_id(&mut self.0, tenant, id, " FOR UPDATE")
    }

    fn idempotency_key(&mut self, tenant: &str, key: &str) -> Result<Option<(i64, String)>> {
        // Two creates under one key, through two daemons at once (a client retrying through
        // another daemon while the first still runs), must not both find it free: the second
        // would fail on the key's primary key and answer 500. A transaction-long advisory lock
        // on the key (the two-key space, apart from the migrations' one-key lock) makes the
        // second wait for the first's end; its lookup, a statement of its own, then sees the
        // first's key if it committed. (Taken again after `lock_idempotency_keys`, it is held
        // already and granted at once.)
        lock_key(&mut self.0, tenant, key)?;
        let row = self
            .0
            .query_opt(
                "SELECT job_id, fingerprint FROM idempotency_keys WHERE tenant = $1 AND key = $2",
                &[&tenant, &key],
            )
            .map_err(storage)?;
        Ok(row.map(|row| (row.get(0), row.get(1))))
    }

    fn lock_idempotency_keys(&mut self, keys: &[(&str, &str)]) -> Result<()> {
        for (tenant, key) in keys {
            lock_key(&mut self.0, tenant, key)?;
        }
        Ok(())
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
        // A live job holding the unique key leaves the insert undone (no savepoint, no
        // round trips for one): no row comes back, and the holder is named. A holder that
        // ended between the insert and its lookup freed the key: the insert runs again.
        for _ in 0..UNIQUE_KEY_TRIES {
            let inserted = self
                .0
                .query_opt(
                    "INSERT INTO jobs (tenant, kind, queue, name, source, target, created_by, \
                     dialect, state, priority, run_at, max_attempts, unique_key, definition_id, \
                     restart_of, restartable, payload, created_at, updated_at) VALUES ($1, $2, $3, \
                     $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::text::json, \
                     $18, $18) \
                     ON CONFLICT (tenant, unique_key) WHERE unique_key IS NOT NULL \
                         AND state IN ('open', 'queued', 'running') DO NOTHING \
                     RETURNING id",
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
                )
                .map_err(storage)?;
            if let Some(inserted) = inserted {
                return Ok(inserted.get(0));
            }
            let key = new.unique_key.clone().unwrap_or_default();
            if let Some(job) = unique_key_holder(&mut self.0, row.tenant, &key)? {
                return Err(Error::JobAlreadyRunning {
                    unique_key: key,
                    job,
                });
            }
        }
        // Holders came and went under every try: nothing was written, the create may pass
        // when sent again.
        Err(Error::Busy)
    }

    fn insert_jobs(&mut self, rows: &[JobRow<'_>]) -> Result<Vec<i64>> {
        if rows.len() < 2 {
            return rows.iter().map(|row| self.insert_job(row)).collect();
        }
        // One statement for them all, inserted in their order: the identity hands out their
        // ids in that order, so the ids sorted are the rows' ids in order. A live job holding
        // a unique key (one of this batch too) leaves its row out.
        let tenants = column(rows, |r| r.tenant);
        let kinds = column(rows, |r| r.new.kind.as_str());
        let queues = column(rows, |r| r.new.queue.as_str());
        let names = column(rows, |r| r.new.name.as_str());
        let sources = column(rows, |r| r.new.source.as_str());
        let targets = column(rows, |r| r.new.target.as_str());
        let creators = column(rows, |r| r.new.created_by.as_str());
        let dialects = column(rows, |r| r.new.dialect.as_str());
        let states = column(rows, |r| r.state.as_str());
        let payloads = column(rows, |r| r.payload);
        let priorities: Vec<i64> = rows.iter().map(|r| r.new.priority).collect();
        let run_ats: Vec<i64> = rows.iter().map(|r| r.new.run_at.unwrap_or(r.now)).collect();
        let attempts: Vec<i64> = rows.iter().map(|r| r.new.max_attempts).collect();
        let unique_keys: Vec<Option<&str>> =
            rows.iter().map(|r| r.new.unique_key.as_deref()).collect();
        let definitions: Vec<Option<&str>> = rows.iter().map(|r| r.definition_id).collect();
        let restarts: Vec<Option<i64>> = rows.iter().map(|r| r.restart_of).collect();
        let restartable: Vec<bool> = rows.iter().map(|r| r.new.restartable).collect();
        let nows: Vec<i64> = rows.iter().map(|r| r.now).collect();
        let inserted = self
            .0
            .query(
                "INSERT INTO jobs (tenant, kind, queue, name, source, target, created_by, \
                 dialect, state, priority, run_at, max_attempts, unique_key, definition_id, \
                 restart_of, restartable, payload, created_at, updated_at) \
                 SELECT j.tenant, j.kind, j.queue, j.name, j.source, j.target, j.created_by, \
                     j.dialect, j.state, j.priority, j.run_at, j.max_attempts, j.unique_key, \
                     j.definition_id, j.restart_of, j.restartable, j.payload::json, j.at, j.at \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                     $6::text[], $7::text[], $8::text[], $9::text[], $10::bigint[], \
                     $11::bigint[], $12::bigint[], $13::text[], $14::text[], $15::bigint[], \
                     $16::boolean[], $17::text[], $18::bigint[]) WITH ORDINALITY \
                     AS j (tenant, kind, queue, name, source, target, created_by, dialect, \
                         state, priority, run_at, max_attempts, unique_key, definition_id, \
                         restart_of, restartable, payload, at, n) \
                 ORDER BY j.n \
                 ON CONFLICT (tenant, unique_key) WHERE unique_key IS NOT NULL \
                     AND state IN ('open', 'queued', 'running') DO NOTHING \
                 RETURNING id, tenant, unique_key",
                &[
                    &tenants,
                    &kinds,
                    &queues,
                    &names,
                    &sources,
                    &targets,
                    &creators,
                    &dialects,
                    &states,
                    &priorities,
                    &run_ats,
                    &attempts,
                    &unique_keys,
                    &definitions,
                    &restarts,
                    &restartable,
                    &payloads,
                    &nows,
                ],
            )
            .map_err(storage)?;
        if inserted.len() == rows.len() {
            let mut ids = inserted
                .iter()
                .map(|row| col::<i64>(row, 0))
                .collect::<Result<Vec<_>>>()?;
            ids.sort_unstable();
            return Ok(ids);
        }
        // The first row left out names the job holding its key (maybe one inserted above it).
        let mut kept = std::collections::HashSet::new();
        for row in &inserted {
            let key: Option<String> = col(row, 2)?;
            if let Some(key) = key {
                kept.insert((col::<String>(row, 1)?, key));
            }
        }
        for row in rows {
            let Some(key) = &row.new.unique_key else {
                continue;
            };
            if !kept.remove(&(row.tenant.to_owned(), key.clone())) {
                let holder = unique_key_holder(&mut self.0, row.tenant, key)?;
                return Err(match holder {
                    Some(job) => Error::JobAlreadyRunning {
                        unique_key: key.clone(),
                        job,
                    },
                    // The holder ended between the insert and its lookup: the key is free
                    // now, but the rows of the batch are in; the whole write is undone and may
                    // pass when sent again.
                    None => Error::Busy,
                });
            }
        }
        Err(Error::Storage(
            "an insert left rows out that hold no unique key".into(),
        ))
    }

    fn insert_events(&mut self, events: &[EventRow<'_>]) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        // One statement for all of them (a claim or a complete_many writes one per job); their
        // ids follow their order.
        let jobs: Vec<i64> = events.iter().map(|e| e.job).collect();
        let ats: Vec<i64> = events.iter().map(|e| e.at).collect();
        let names: Vec<&str> = events.iter().map(|e| e.event).collect();
        let froms: Vec<Option<&str>> = events.iter().map(|e| e.from.map(State::as_str)).collect();
        let tos: Vec<&str> = events.iter().map(|e| e.to.as_str()).collect();
        let actors: Vec<&str> = events.iter().map(|e| e.actor).collect();
        let details: Vec<Option<&str>> = events.iter().map(|e| e.detail).collect();
        self.0
            .execute(
                "INSERT INTO job_events (job_id, at, event, from_state, to_state, actor, detail) \
                 SELECT e.job_id, e.at, e.event, e.from_state, e.to_state, e.actor, e.detail \
                 FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
                     $6::text[], $7::text[]) WITH ORDINALITY \
                     AS e (job_id, at, event, from_state, to_state, actor, detail, n) \
                 ORDER BY e.n",
                &[&jobs, &ats, &names, &froms, &tos, &actors, &details],
            )
            .map_err(storage)?;
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
                return match unique_key_holder(&mut self.0, &job.tenant, &key)? {
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
        if lines.is_empty() {
            return Ok(());
        }
        // One statement for all the lines (a round trip per line held a worker's chatty
        // command to about 1,500 lines a second); their ids follow their order.
        let levels: Vec<&str> = lines.iter().map(|(level, _)| level.as_str()).collect();
        let messages: Vec<&str> = lines.iter().map(|(_, message)| *message).collect();
        self.0
            .execute(
                "INSERT INTO job_logs (job_id, at, level, message) \
                 SELECT $1, $2, line.level, line.message \
                 FROM unnest($3::text[], $4::text[]) WITH ORDINALITY AS line (level, message, n) \
                 ORDER BY line.n",
                &[&job, &now, &levels, &messages],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn claim(&mut self, claim: &ClaimJobs<'_>) -> Result<Vec<Job>> {
        // One queue is an equality, which `jobs_claim` (queue, priority, run_at, id) serves in
        // claim order, the scan stopping at the limit; `queue = ANY(...)` cannot be read in
        // that order, and sorts every due job of the queues on each claim. The ids chosen are
        // an array the update finds by primary key: as `id IN (subquery)`, a generic plan of
        // the kept statement (the server may switch to one after five runs) joined the whole
        // table by hash.
        let (queue_is, queue): (&str, &(dyn ToSql + Sync)) = match claim.queues {
            [one] => ("queue = $5", one),
            _ => ("queue = ANY($5)", &claim.queues),
        };
        let sql = format!(
            "UPDATE jobs SET state = $1, attempt = attempt + 1, leases = leases + 1, \
             lease_token = leases + 1, lease_owner = $2, lease_expires_at = $3, \
             heartbeat_at = NULL, started_at = $4, updated_at = $4 \
             WHERE id = ANY(ARRAY(SELECT id FROM jobs WHERE state = 'queued' \
                 AND {queue_is} AND run_at <= $4 \
                 AND ($6::text IS NULL OR tenant = $6) \
                 ORDER BY priority, run_at, id LIMIT $7 FOR UPDATE SKIP LOCKED)) \
             RETURNING {JOB_COLUMNS}"
        );
        let rows = deadlock_retried(&mut self.0, |tx| {
            tx.query(
                &sql,
                &[
                    &claim.to.as_str(),
                    &claim.worker,
                    &claim.expires,
                    &claim.now,
                    queue,
                    &claim.tenant,
                    &i64::from(claim.max),
                ],
            )
        })?;
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

    fn complete_jobs(&mut self, rows: &[CompleteRow<'_>]) -> Result<Vec<Option<Job>>> {
        // One statement for them all, unless a job comes twice: one UPDATE changes a row once
        // whichever of its matches it takes, where one after the other the second would find
        // the job finished.
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        if rows.len() < 2 || !rows.iter().all(|row| seen.insert(row.id)) {
            return rows.iter().map(|row| self.complete_job(row)).collect();
        }
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let tokens: Vec<i64> = rows.iter().map(|r| r.lease_token).collect();
        let workers: Vec<&str> = rows.iter().map(|r| r.worker).collect();
        let tenants: Vec<Option<&str>> = rows.iter().map(|r| r.tenant).collect();
        let tos: Vec<&str> = rows.iter().map(|r| r.to.as_str()).collect();
        let results: Vec<&str> = rows.iter().map(|r| r.result).collect();
        let nows: Vec<i64> = rows.iter().map(|r| r.now).collect();
        // No `state = 'running'` here: a job holds a lease token if and only if it runs (the
        // table's CHECK), so the token test says it already. Written out, it let the planner
        // start from the running jobs by their state whenever its statistics put them at none
        // (analysed while all were queued): a nested loop over every running job for each
        // completion, seconds for a batch of 1,000 beside 12,000 running jobs. Without it the
        // jobs are found by their ids.
        let finished = self
            .0
            .query(
                &format!(
                    "UPDATE jobs SET state = c.to_state, result = c.result_text::json, \
                     finished_at = c.at, updated_at = c.at, lease_owner = NULL, \
                     lease_token = NULL, lease_expires_at = NULL \
                     FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
                         $5::text[], $6::text[], $7::bigint[]) WITH ORDINALITY \
                         AS c (job, token, worker, only_tenant, to_state, result_text, at, n) \
                     WHERE id = c.job AND lease_token = c.token AND lease_owner = c.worker \
                         AND (c.only_tenant IS NULL OR tenant = c.only_tenant) \
                     RETURNING c.n, {JOB_COLUMNS}"
                ),
                &[&ids, &tokens, &workers, &tenants, &tos, &results, &nows],
            )
            .map_err(storage)?;
        let mut answers: Vec<Option<Job>> = vec![None; rows.len()];
        for row in &finished {
            // Each row's place among the completions, from 1; the job's columns follow.
            let n: i64 = col(row, 0)?;
            let job = job_from_row_at(row, 1)?;
            let slot = usize::try_from(n - 1)
                .ok()
                .and_then(|i| answers.get_mut(i))
                .ok_or_else(|| Error::Storage(format!("no completion {n}").into()))?;
            *slot = Some(job);
        }
        Ok(answers)
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

    fn batch_count(&mut self, job: i64, outputs: bool) -> Result<(u32, i64)> {
        let sql = if outputs {
            "SELECT count(*) FILTER (WHERE name IS NOT NULL), coalesce(max(batch), 0) \
             FROM job_data_batches WHERE job_id = $1"
        } else {
            "SELECT count(*) FILTER (WHERE name IS NULL), coalesce(max(batch), 0) \
             FROM job_data_batches WHERE job_id = $1"
        };
        // The job's row is held already (`lock_job`): uploads begun at once on several writers
        // or daemons are counted one after the other, each seeing the batches the others
        // reserved, and cannot pass the limit together.
        let row = self.0.query_one(sql, &[&job]).map_err(storage)?;
        let batches: i64 = col(&row, 0)?;
        Ok((u32::try_from(batches).unwrap_or(u32::MAX), col(&row, 1)?))
    }

    fn delete_replaced_output(&mut self, job: i64, name: &str, lease_token: i64) -> Result<()> {
        self.0
            .execute(
                "DELETE FROM job_data_batches WHERE job_id = $1 AND name = $2 \
                 AND lease_token IS DISTINCT FROM $3",
                &[&job, &name, &lease_token],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn insert_batch(
        &mut self,
        job: i64,
        batch: i64,
        now: i64,
        output: Option<(&str, i64)>,
    ) -> Result<()> {
        let (name, lease_token) = match output {
            Some((name, token)) => (Some(name), Some(token)),
            None => (None, None),
        };
        let uploader: &str = &self.1;
        self.0
            .execute(
                "INSERT INTO job_data_batches (job_id, batch, created_at, updated_at, uploader, \
                 name, lease_token) VALUES ($1, $2, $3, $3, $4, $5, $6)",
                &[&job, &batch, &now, &uploader, &name, &lease_token],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn insert_chunk(
        &mut self,
        job: i64,
        batch: i64,
        chunk: i64,
        data: &[u8],
        now: i64,
    ) -> Result<()> {
        // The batch row first: it is locked for the chunk's foreign key, and a batch that is
        // gone (the job aborted meanwhile) is an answer here, not a failed statement (which
        // would abort the transaction the store goes on reading in).
        let grown = self
            .0
            .execute(
                "UPDATE job_data_batches SET bytes = bytes + $1, updated_at = $2 \
                 WHERE job_id = $3 AND batch = $4",
                &[
                    &i64::try_from(data.len()).unwrap_or(i64::MAX),
                    &now,
                    &job,
                    &batch,
                ],
            )
            .map_err(storage)?;
        if grown != 1 {
            return Err(Error::Storage(
                format!("data batch {batch} of job {job} is gone").into(),
            ));
        }
        self.0
            .execute(
                "INSERT INTO job_data_chunks (job_id, batch, chunk, data) VALUES ($1, $2, $3, $4)",
                &[&job, &batch, &chunk, &data],
            )
            .map_err(storage)?;
        Ok(())
    }

    fn seal_batch(&mut self, job: i64, batch: i64, now: i64) -> Result<(i64, i64)> {
        let row = self
            .0
            .query_opt(
                "UPDATE job_data_batches SET complete = TRUE, updated_at = $1 \
                 WHERE job_id = $2 AND batch = $3 RETURNING bytes, created_at",
                &[&now, &job, &batch],
            )
            .map_err(storage)?
            .ok_or_else(|| {
                Error::Storage(format!("data batch {batch} of job {job} is gone").into())
            })?;
        Ok((col(&row, 0)?, col(&row, 1)?))
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

    fn delete_batch(&mut self, job: i64, batch: i64, incomplete_only: bool) -> Result<usize> {
        let deleted = self
            .0
            .execute(
                "DELETE FROM job_data_batches WHERE job_id = $1 AND batch = $2 \
                 AND (NOT $3 OR NOT complete)",
                &[&job, &batch, &incomplete_only],
            )
            .map_err(storage)?;
        Ok(count(deleted))
    }

    fn delete_uploader_batches(&mut self, uploader: &str) -> Result<usize> {
        let deleted = self
            .0
            .execute(
                "DELETE FROM job_data_batches WHERE NOT complete AND uploader = $1",
                &[&uploader],
            )
            .map_err(storage)?;
        Ok(count(deleted))
    }

    fn put_definition(&mut self, tenant: &str, definition: &Definition, now: i64) -> Result<()> {
        self.0
            .execute(
                "INSERT INTO job_definitions (tenant, id, description, queue, restartable, \
                 enabled, valid, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (tenant, id) DO UPDATE SET description = excluded.description, \
                 queue = excluded.queue, restartable = excluded.restartable, \
                 enabled = excluded.enabled, valid = excluded.valid, \
                 updated_at = excluded.updated_at",
                &[
                    &tenant,
                    &definition.id,
                    &definition.description,
                    &definition.queue,
                    &definition.restartable,
                    &definition.enabled,
                    &definition.valid,
                    &now,
                ],
            )
            .map_err(storage)?;
        self.0
            .execute(
                "DELETE FROM job_definition_steps WHERE tenant = $1 AND definition_id = $2",
                &[&tenant, &definition.id],
            )
            .map_err(storage)?;
        for (position, step) in (0_i64..).zip(&definition.steps) {
            self.0
                .execute(
                    "INSERT INTO job_definition_steps (tenant, definition_id, position, \
                     step_id, step_type_id, description, execution_scope) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    &[
                        &tenant,
                        &definition.id,
                        &position,
                        &step.step_id,
                        &step.step_type_id,
                        &step.description,
                        &step.execution_scope,
                    ],
                )
                .map_err(storage)?;
        }
        Ok(())
    }

    fn latest_execution(&mut self, tenant: &str, definition: &str) -> Result<Option<(i64, State)>> {
        let row = self
            .0
            .query_opt(
                "SELECT id, state FROM jobs WHERE tenant = $1 AND definition_id = $2 \
                 ORDER BY id DESC LIMIT 1",
                &[&tenant, &definition],
            )
            .map_err(storage)?;
        row.map(|row| {
            let state: String = col(&row, 1)?;
            Ok((col(&row, 0)?, parse_state(&state)?))
        })
        .transpose()
    }

    fn insert_steps(
        &mut self,
        job: i64,
        steps: &[DefinitionStep],
        restart_of: Option<i64>,
        now: i64,
    ) -> Result<()> {
        for (position, step) in (0_i64..).zip(steps) {
            self.0
                .execute(
                    "INSERT INTO job_steps (job_id, position, step_id, step_type_id, \
                     description, execution_scope, status, exit_code, message, started_at, \
                     finished_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'pending', NULL, NULL, NULL, NULL, $7)",
                    &[
                        &job,
                        &position,
                        &step.step_id,
                        &step.step_type_id,
                        &step.description,
                        &step.execution_scope,
                        &now,
                    ],
                )
                .map_err(storage)?;
        }
        if let Some(previous) = restart_of {
            // Steps that finished well in the restarted execution are not run again.
            self.0
                .execute(
                    "UPDATE job_steps AS s SET status = 'ok', exit_code = p.exit_code, \
                     message = p.message, started_at = p.started_at, \
                     finished_at = p.finished_at \
                     FROM job_steps AS p WHERE s.job_id = $1 AND p.job_id = $2 \
                     AND p.step_id = s.step_id AND p.status = 'ok'",
                    &[&job, &previous],
                )
                .map_err(storage)?;
        }
        Ok(())
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
        let deleted = deadlock_retried(&mut self.0, |tx| {
            tx.execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs \
                 WHERE coalesce(finished_at, -1) >= 0 AND coalesce(finished_at, -1) < $1 \
                 AND ($2::text IS NULL OR tenant = $2) LIMIT $3 FOR UPDATE SKIP LOCKED)",
                &[&before, &tenant, &limit],
            )
        })?;
        Ok(count(deleted))
    }

    fn purge_open(&mut self, tenant: Option<&str>, before: i64, limit: i64) -> Result<usize> {
        let deleted = deadlock_retried(&mut self.0, |tx| {
            tx.execute(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'open' \
                 AND created_at < $1 AND ($2::text IS NULL OR tenant = $2) \
                 LIMIT $3 FOR UPDATE SKIP LOCKED)",
                &[&before, &tenant, &limit],
            )
        })?;
        Ok(count(deleted))
    }

    fn purge_incomplete_batches(&mut self, before: i64, limit: i64) -> Result<usize> {
        let deleted = self
            .0
            .execute(
                "DELETE FROM job_data_batches WHERE (job_id, batch) IN (SELECT job_id, batch \
                 FROM job_data_batches WHERE NOT complete AND updated_at < $1 \
                 LIMIT $2 FOR UPDATE SKIP LOCKED)",
                &[&before, &limit],
            )
            .map_err(storage)?;
        Ok(count(deleted))
    }
}

/// Cross-table invariants the schema cannot state with a `CHECK` (the SQLite driver's, in
/// PostgreSQL's SQL): each query counts rows that break one.
pub(crate) const CONSISTENCY_CHECKS: &[(&str, &str)] = &[
    (
        "jobs whose attempts exceed their leases",
        "SELECT count(*) FROM jobs WHERE attempt > leases",
    ),
    (
        "running jobs without a claim event",
        "SELECT count(*) FROM jobs j WHERE state = 'running' AND NOT EXISTS \
         (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.event = 'claim')",
    ),
    (
        "jobs whose last event does not end in their state",
        "SELECT count(*) FROM jobs j WHERE j.state <> (SELECT e.to_state FROM job_events e \
         WHERE e.job_id = j.id ORDER BY e.id DESC LIMIT 1)",
    ),
    (
        "jobs without a create event",
        "SELECT count(*) FROM jobs j WHERE NOT EXISTS \
         (SELECT 1 FROM job_events e WHERE e.job_id = j.id AND e.event = 'create')",
    ),
    (
        "data batches kept on cancelled jobs",
        "SELECT count(*) FROM job_data_batches b JOIN jobs j ON j.id = b.job_id \
         WHERE j.state = 'cancelled'",
    ),
    (
        "complete data batches whose chunks do not add up",
        "SELECT count(*) FROM job_data_batches b WHERE complete AND bytes <> \
         (SELECT coalesce(sum(octet_length(data)), 0) FROM job_data_chunks c \
          WHERE c.job_id = b.job_id AND c.batch = b.batch)",
    ),
    (
        "job counts (job_counts) that differ from the jobs",
        "WITH counted AS (SELECT tenant, queue, state, count(*) AS jobs FROM jobs \
                          GROUP BY tenant, queue, state), \
              kept AS (SELECT tenant, queue, state, sum(jobs)::bigint AS jobs FROM job_counts \
                       GROUP BY tenant, queue, state HAVING sum(jobs) > 0) \
         SELECT (SELECT count(*) FROM (SELECT * FROM counted EXCEPT SELECT * FROM kept) AS a) \
              + (SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM counted) AS b)",
    ),
    (
        "finished steps on jobs that never ran",
        "SELECT count(*) FROM job_steps s JOIN jobs j ON j.id = s.job_id \
         WHERE s.status IN ('running', 'ok', 'error') AND j.leases = 0 AND j.restart_of IS NULL",
    ),
];

/// Log lines from rows of `id, at, level, message`, in their order.
fn log_lines(rows: &[postgres::Row]) -> Result<Vec<LogLine>> {
    rows.iter()
        .map(|row| {
            let level: String = col(row, 2)?;
            Ok(LogLine {
                seq: col(row, 0)?,
                at: col(row, 1)?,
                level: level.parse()?,
                message: col(row, 3)?,
            })
        })
        .collect()
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
