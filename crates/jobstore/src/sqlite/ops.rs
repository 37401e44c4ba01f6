//! The typed operations of [`crate::driver`] in SQLite's SQL: every statement of the store.
//! Each runs from the connection's statement cache (`prepare_cached`).

use std::ops::Deref;

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use crate::driver::{
    Chunk, ChunkQuery, ClaimJobs, CompleteRow, EventRow, FinishedCount, HeartbeatRow, JobRow,
    OldestDue, Reader, ReleaseRow, StateCount, StepRow, WriteTx,
};
use crate::list::{JobPage, ListQuery};
use crate::model::{
    DataBatch, Definition, DefinitionStep, Job, JobEvent, LogLevel, LogLine, Output, QueueCount,
    Step, StepStatus,
};
use crate::state::State;
use crate::{Error, Result};

/// A SQLite connection seen through the driver's operations: the writer's (`&Connection`,
/// inside its transaction) or a pooled reader.
pub(crate) struct Conn<C>(pub(crate) C);

/// `scope_tenants!()`: the tenants a maintenance statement covers, as the common table
/// `tenants(name)`: the scope's tenant (`?2`), or with `?2` NULL every tenant, found by
/// hopping along `jobs_by_tenant_id` (one index seek per tenant, never a scan). Each tenant's
/// rows are then sought in a `(tenant, …)` index the transitions keep anyway. `CROSS JOIN`
/// keeps the tenants the outer loop and `INDEXED BY` names the index: left to itself SQLite
/// built a temporary index over the whole table, or walked the whole index. So rescue, purge
/// and the activity summaries need no index of their own for every claim and finish to pay
/// for.
macro_rules! scope_tenants {
    () => {
        "WITH RECURSIVE tenants(name) AS ( \
         SELECT CASE WHEN ?2 IS NULL THEN (SELECT min(tenant) FROM jobs) ELSE ?2 END \
         UNION ALL \
         SELECT (SELECT min(tenant) FROM jobs WHERE tenant > tenants.name) FROM tenants \
         WHERE ?2 IS NULL AND tenants.name IS NOT NULL) "
    };
}

/// The columns of `jobs` in the order [`job_from_row`] reads them.
pub(crate) const JOB_COLUMNS: &str = "id, tenant, kind, queue, name, source, target, created_by, \
     dialect, state, priority, run_at, attempt, max_attempts, lease_owner, lease_token, \
     lease_expires_at, heartbeat_at, cancel_requested_at, unique_key, definition_id, restart_of, \
     restartable, payload, result, error, progress, phase, created_at, updated_at, started_at, \
     finished_at";

fn json_column(row: &Row<'_>, index: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|err| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, err.into())
    })
}

fn state_column(row: &Row<'_>, index: usize) -> rusqlite::Result<State> {
    let text: String = row.get(index)?;
    text.parse().map_err(|err: Error| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, err.into())
    })
}

/// Reads a row selected with [`JOB_COLUMNS`].
pub(crate) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Job> {
    let result: Option<String> = row.get(24)?;
    let result = match result {
        Some(text) => Some(serde_json::from_str(&text).map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(24, rusqlite::types::Type::Text, err.into())
        })?),
        None => None,
    };
    Ok(Job {
        id: row.get(0)?,
        tenant: row.get(1)?,
        kind: row.get(2)?,
        queue: row.get(3)?,
        name: row.get(4)?,
        source: row.get(5)?,
        target: row.get(6)?,
        created_by: row.get(7)?,
        dialect: row.get(8)?,
        state: state_column(row, 9)?,
        priority: row.get(10)?,
        run_at: row.get(11)?,
        attempt: row.get(12)?,
        max_attempts: row.get(13)?,
        lease_owner: row.get(14)?,
        lease_token: row.get(15)?,
        lease_expires_at: row.get(16)?,
        heartbeat_at: row.get(17)?,
        cancel_requested_at: row.get(18)?,
        unique_key: row.get(19)?,
        definition_id: row.get(20)?,
        restart_of: row.get(21)?,
        restartable: row.get(22)?,
        payload: json_column(row, 23)?,
        result,
        error: row.get(25)?,
        progress: json_column(row, 26)?,
        phase: row.get(27)?,
        created_at: row.get(28)?,
        updated_at: row.get(29)?,
        started_at: row.get(30)?,
        finished_at: row.get(31)?,
    })
}

const SELECT_JOB: &str = "SELECT id, tenant, kind, queue, name, source, target, created_by, \
     dialect, state, priority, run_at, attempt, max_attempts, lease_owner, lease_token, \
     lease_expires_at, heartbeat_at, cancel_requested_at, unique_key, definition_id, restart_of, \
     restartable, payload, result, error, progress, phase, created_at, updated_at, started_at, \
     finished_at FROM jobs WHERE id = ?1 AND (?2 IS NULL OR tenant = ?2)";

const INSERT_EVENT: &str = "INSERT INTO job_events (job_id, at, event, from_state, to_state, \
     actor, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Inserts a job and answers its id.
const INSERT_JOB: &str = "INSERT INTO jobs (tenant, kind, queue, name, source, target, \
     created_by, dialect, state, priority, run_at, max_attempts, unique_key, definition_id, \
     restart_of, restartable, payload, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18) \
     RETURNING id";

/// One statement leases the jobs: no read-then-write window another worker could slip into.
/// `state = 'queued'` is literal so that the partial index `jobs_claim` serves it; the state
/// written (`?1`) is what `transition(Queued, Claim)` answered. With one queue the index
/// yields the jobs in claim order and the scan stops at the limit; with several, SQLite merges
/// their candidates in a sort.
const CLAIM_ONE_QUEUE: &str = "UPDATE jobs SET state = ?1, attempt = attempt + 1, \
     leases = leases + 1, lease_token = leases + 1, lease_owner = ?2, lease_expires_at = ?3, \
     heartbeat_at = NULL, started_at = ?4, updated_at = ?4 \
     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' AND queue = ?5 AND run_at <= ?4 \
         AND (?6 IS NULL OR tenant = ?6) ORDER BY priority, run_at, id LIMIT {max}) \
     RETURNING ";

/// [`CLAIM_ONE_QUEUE`] for several queues, given as a JSON array in `?5`.
const CLAIM_MANY_QUEUES: &str = "UPDATE jobs SET state = ?1, attempt = attempt + 1, \
     leases = leases + 1, lease_token = leases + 1, lease_owner = ?2, lease_expires_at = ?3, \
     heartbeat_at = NULL, started_at = ?4, updated_at = ?4 \
     WHERE id IN (SELECT id FROM jobs WHERE state = 'queued' \
         AND queue IN (SELECT value FROM json_each(?5)) AND run_at <= ?4 \
         AND (?6 IS NULL OR tenant = ?6) ORDER BY priority, run_at, id LIMIT {max}) \
     RETURNING ";

/// Running jobs whose lease expired before `?1`, in `?2`'s scope, oldest expiry first, `?3` at
/// most.
pub(crate) const EXPIRED_LEASES: &str = concat!(
    scope_tenants!(),
    "SELECT jobs.id FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_state \
     WHERE jobs.tenant = tenants.name AND jobs.state = 'running' AND jobs.lease_expires_at < ?1 \
     ORDER BY jobs.lease_expires_at LIMIT ?3"
);

/// Deletes up to `?3` jobs of `?2`'s scope that finished before `?1`.
pub(crate) const PURGE_FINISHED: &str = concat!(
    "DELETE FROM jobs WHERE id IN (",
    scope_tenants!(),
    "SELECT jobs.id FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_finished \
     WHERE jobs.tenant = tenants.name AND ifnull(jobs.finished_at, -1) >= 0 AND ifnull(jobs.finished_at, -1) < ?1 LIMIT ?3)"
);

/// Jobs of `?2`'s scope created at or after `?1`, counted per `?3` ms from `?1`.
pub(crate) const CREATED_SINCE: &str = concat!(
    scope_tenants!(),
    "SELECT (jobs.created_at - ?1) / ?3, count(*) \
     FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_created \
     WHERE jobs.tenant = tenants.name AND jobs.created_at >= ?1 GROUP BY 1"
);

/// Jobs of `?2`'s scope that finished at or after `?1`, counted per `?3` ms from `?1`, by
/// state and queue (only the jobs finished in the window are read).
pub(crate) const FINISHED_SINCE: &str = concat!(
    scope_tenants!(),
    "SELECT (ifnull(jobs.finished_at, -1) - ?1) / ?3, jobs.state, jobs.queue, count(*) \
     FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_finished \
     WHERE jobs.tenant = tenants.name AND ifnull(jobs.finished_at, -1) >= ?1 \
     GROUP BY 1, 2, 3"
);

/// The live jobs of `?2`'s scope by tenant, queue and state; with the number due at `?1`
/// (which `job_counts` cannot tell).
pub(crate) const LIVE: &str = concat!(
    scope_tenants!(),
    "SELECT jobs.tenant, jobs.queue, jobs.state, count(*), sum(jobs.run_at <= ?1) \
     FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_state \
     WHERE jobs.tenant = tenants.name AND jobs.state IN ('queued', 'running') \
     GROUP BY 1, 2, 3"
);

/// Per tenant and queue of `?2`'s scope, the due queued job (`run_at <= ?1`) with the smallest
/// `run_at` (SQLite takes a bare column from the row of the one `min()`).
pub(crate) const OLDEST_DUE: &str = concat!(
    scope_tenants!(),
    "SELECT jobs.tenant, jobs.queue, min(jobs.run_at), jobs.id \
     FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_state \
     WHERE jobs.tenant = tenants.name AND jobs.state = 'queued' AND jobs.run_at <= ?1 \
     GROUP BY 1, 2"
);

/// The live jobs of `?1`'s scope (every tenant when NULL) by tenant, queue and state, from the
/// counts the triggers keep.
const LIVE_COUNTS: &str = "SELECT tenant, queue, state, jobs FROM job_counts \
     WHERE (?1 IS NULL OR tenant = ?1) AND state IN ('queued', 'running') AND jobs > 0";

/// The ids of up to `?1` running jobs of `?2`'s scope.
pub(crate) const RUNNING_IDS: &str = concat!(
    scope_tenants!(),
    "SELECT jobs.id FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_state \
     WHERE jobs.tenant = tenants.name AND jobs.state = 'running' LIMIT ?1"
);

const NEXT_CHUNK: &str = "SELECT c.batch, c.chunk, c.data FROM job_data_chunks c \
     JOIN job_data_batches b ON b.job_id = c.job_id AND b.batch = c.batch \
     WHERE c.job_id = ?1 AND b.complete = 1 AND (?2 IS NULL OR c.batch = ?2) AND b.name IS ?5 \
     AND (c.batch > ?3 OR (c.batch = ?3 AND c.chunk > ?4)) \
     ORDER BY c.batch, c.chunk LIMIT 1";

/// Maps a unique-index violation on `jobs (tenant, unique_key)` to the job that holds the key.
fn unique_conflict(
    conn: &Connection,
    err: rusqlite::Error,
    tenant: &str,
    unique_key: Option<&str>,
) -> Error {
    let is_unique = matches!(
        &err,
        rusqlite::Error::SqliteFailure(code, _)
            if code.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    );
    let Some(key) = unique_key.filter(|_| is_unique) else {
        return Error::Sqlite(err);
    };
    let holder = conn
        .prepare_cached(
            "SELECT id FROM jobs WHERE tenant = ?1 AND unique_key = ?2 \
             AND state IN ('open', 'queued', 'running')",
        )
        .and_then(|mut stmt| stmt.query_row(params![tenant, key], |row| row.get(0)))
        .optional();
    match holder {
        Ok(Some(job)) => Error::JobAlreadyRunning {
            unique_key: key.to_owned(),
            job,
        },
        _ => Error::Sqlite(err),
    }
}

/// The state column's text as a [`State`].
fn parse_state(text: &str) -> Result<State> {
    text.parse()
}

impl<C: Deref<Target = Connection>> Reader for Conn<C> {
    fn ping(&mut self) -> Result<()> {
        self.0
            .query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?;
        Ok(())
    }

    fn load_job(&mut self, tenant: Option<&str>, id: i64) -> Result<Option<Job>> {
        Ok(self
            .0
            .prepare_cached(SELECT_JOB)?
            .query_row(params![id, tenant], job_from_row)
            .optional()?)
    }

    fn list_jobs(&mut self, tenant: Option<&str>, query: &ListQuery) -> Result<JobPage> {
        let conn = &*self.0;
        let walk = super::list::page_walk(conn, tenant, query)?;
        let sql = query.to_sql(tenant, JOB_COLUMNS, walk)?;
        let jobs = conn
            .prepare_cached(&sql.select)?
            .query_map(params_from_iter(sql.params.iter()), job_from_row)?
            .collect::<rusqlite::Result<Vec<Job>>>()?;
        let total = match &sql.count {
            Some(count) => Some(
                conn.prepare_cached(count)?
                    .query_row(params_from_iter(sql.count_params.iter()), |row| {
                        row.get::<_, i64>(0)
                    })?,
            ),
            None => None,
        };
        Ok(sql.shared.page(jobs, total))
    }

    fn events(&mut self, job: i64) -> Result<Vec<JobEvent>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT id, at, event, from_state, to_state, actor, detail FROM job_events \
             WHERE job_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![job], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<String>>(3)?,
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, Option<String>>(6)?,
            ))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (seq, at, event, from, to, actor, detail) = row?;
            events.push(JobEvent {
                seq,
                at,
                event,
                from: from.map(|f| f.parse()).transpose()?,
                to: to.parse()?,
                actor,
                detail,
            });
        }
        Ok(events)
    }

    fn steps(&mut self, job: i64) -> Result<Vec<Step>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT position, step_id, step_type_id, description, execution_scope, status, \
             exit_code, message, started_at, finished_at, updated_at FROM job_steps \
             WHERE job_id = ?1 ORDER BY position",
        )?;
        let rows = stmt.query_map(params![job], |row| {
            Ok((
                (
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                ),
                (
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, Option<String>>(7)?,
                    row.get::<_, Option<i64>>(8)?,
                    row.get::<_, Option<i64>>(9)?,
                    row.get::<_, i64>(10)?,
                ),
            ))
        })?;
        let mut steps = Vec::new();
        for row in rows {
            let (
                (position, step_id, step_type_id, description, execution_scope, status),
                (exit_code, message, started_at, finished_at, updated_at),
            ) = row?;
            steps.push(Step {
                position,
                step_id,
                step_type_id,
                description,
                execution_scope,
                status: status.parse()?,
                exit_code,
                message,
                started_at,
                finished_at,
                updated_at,
            });
        }
        Ok(steps)
    }

    fn log(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        log_lines(
            &self.0,
            "SELECT id, at, level, message FROM job_logs WHERE job_id = ?1 AND id > ?2 \
             ORDER BY id LIMIT ?3",
            params![job, after_seq, limit],
        )
    }

    fn log_tail(&mut self, job: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        let mut lines = log_lines(
            &self.0,
            "SELECT id, at, level, message FROM job_logs WHERE job_id = ?1 AND id > ?2 \
             ORDER BY id DESC LIMIT ?3",
            params![job, after_seq, limit],
        )?;
        lines.reverse();
        Ok(lines)
    }

    fn data_batches(&mut self, job: i64) -> Result<Vec<DataBatch>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT batch, bytes, created_at FROM job_data_batches \
             WHERE job_id = ?1 AND complete = 1 AND name IS NULL ORDER BY batch",
        )?;
        let rows = stmt.query_map(params![job], |row| {
            Ok(DataBatch {
                batch: row.get(0)?,
                bytes: row.get(1)?,
                created_at: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn outputs(&mut self, job: i64) -> Result<Vec<Output>> {
        let mut stmt = self.0.prepare_cached(
            "SELECT name, count(*), sum(bytes) FROM job_data_batches \
             WHERE job_id = ?1 AND complete = 1 AND name IS NOT NULL \
             GROUP BY name ORDER BY name",
        )?;
        let rows = stmt.query_map(params![job], |row| {
            Ok(Output {
                name: row.get(0)?,
                batches: row.get(1)?,
                bytes: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn output_exists(&mut self, job: i64, name: &str) -> Result<bool> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT 1 FROM job_data_batches WHERE job_id = ?1 AND name = ?2 \
                 AND complete = 1 LIMIT 1",
            )?
            .query_row(params![job, name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    fn output_chunk_len(
        &mut self,
        job: i64,
        name: &str,
        batch: i64,
        chunk: i64,
    ) -> Result<Option<usize>> {
        let length: Option<i64> = self
            .0
            .prepare_cached(
                "SELECT length(c.data) FROM job_data_chunks c \
                 JOIN job_data_batches b ON b.job_id = c.job_id AND b.batch = c.batch \
                 WHERE c.job_id = ?1 AND c.batch = ?2 AND c.chunk = ?3 \
                 AND b.complete = 1 AND b.name = ?4",
            )?
            .query_row(params![job, batch, chunk, name], |row| row.get(0))
            .optional()?;
        Ok(length.map(|length| usize::try_from(length).unwrap_or(0)))
    }

    fn next_chunk(&mut self, query: &ChunkQuery<'_>) -> Result<Option<Chunk>> {
        Ok(self
            .0
            .prepare_cached(NEXT_CHUNK)?
            .query_row(
                params![
                    query.job,
                    query.only_batch,
                    query.after_batch,
                    query.after_chunk,
                    query.name
                ],
                |row| {
                    Ok(Chunk {
                        batch: row.get(0)?,
                        chunk: row.get(1)?,
                        data: row.get(2)?,
                    })
                },
            )
            .optional()?)
    }

    fn definition(&mut self, tenant: &str, id: &str) -> Result<Option<Definition>> {
        let conn = &*self.0;
        let head = conn
            .prepare_cached(
                "SELECT description, queue, restartable, enabled, valid, created_at, updated_at \
                 FROM job_definitions WHERE tenant = ?1 AND id = ?2",
            )?
            .query_row(params![tenant, id], |row| {
                Ok(Definition {
                    id: id.to_owned(),
                    description: row.get(0)?,
                    queue: row.get(1)?,
                    restartable: row.get(2)?,
                    enabled: row.get(3)?,
                    valid: row.get(4)?,
                    steps: Vec::new(),
                    created_at: row.get(5)?,
                    updated_at: row.get(6)?,
                })
            })
            .optional()?;
        let Some(mut definition) = head else {
            return Ok(None);
        };
        definition.steps = conn
            .prepare_cached(
                "SELECT step_id, step_type_id, description, execution_scope \
                 FROM job_definition_steps WHERE tenant = ?1 AND definition_id = ?2 ORDER BY position",
            )?
            .query_map(params![tenant, id], |row| {
                Ok(DefinitionStep {
                    step_id: row.get(0)?,
                    step_type_id: row.get(1)?,
                    description: row.get(2)?,
                    execution_scope: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(definition))
    }

    fn definition_ids(&mut self, tenant: &str) -> Result<Vec<String>> {
        Ok(self
            .0
            .prepare_cached("SELECT id FROM job_definitions WHERE tenant = ?1 ORDER BY id")?
            .query_map(params![tenant], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn queue_counts(&mut self, tenant: Option<&str>) -> Result<Vec<QueueCount>> {
        let rows = self
            .0
            .prepare_cached(
                "SELECT queue, state, sum(jobs) FROM job_counts \
                 WHERE (?1 IS NULL OR tenant = ?1) \
                 GROUP BY queue, state HAVING sum(jobs) > 0 ORDER BY queue, state",
            )?
            .query_map(params![tenant], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(queue, state, jobs)| {
                Ok(QueueCount {
                    queue,
                    state: state.parse()?,
                    jobs,
                })
            })
            .collect()
    }

    fn live_counts(&mut self, tenant: Option<&str>) -> Result<Vec<StateCount>> {
        let mut stmt = self.0.prepare_cached(LIVE_COUNTS)?;
        let rows = stmt.query_map(params![tenant], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        let mut counts = Vec::new();
        for row in rows {
            let (tenant, queue, state, jobs) = row?;
            counts.push(StateCount {
                tenant,
                queue,
                state: parse_state(&state)?,
                jobs,
                due: 0,
            });
        }
        Ok(counts)
    }

    fn live_jobs(&mut self, tenant: Option<&str>, now: i64) -> Result<Vec<StateCount>> {
        let mut stmt = self.0.prepare_cached(LIVE)?;
        let rows = stmt.query_map(params![now, tenant], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<i64>>(4)?.unwrap_or(0),
            ))
        })?;
        let mut counts = Vec::new();
        for row in rows {
            let (tenant, queue, state, jobs, due) = row?;
            counts.push(StateCount {
                tenant,
                queue,
                state: parse_state(&state)?,
                jobs,
                due,
            });
        }
        Ok(counts)
    }

    fn oldest_due(&mut self, tenant: Option<&str>, now: i64) -> Result<Vec<OldestDue>> {
        let mut stmt = self.0.prepare_cached(OLDEST_DUE)?;
        let rows = stmt.query_map(params![now, tenant], |row| {
            Ok(OldestDue {
                tenant: row.get(0)?,
                queue: row.get(1)?,
                run_at: row.get(2)?,
                id: row.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn created_since(
        &mut self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<(i64, i64)>> {
        let mut stmt = self.0.prepare_cached(CREATED_SINCE)?;
        let rows = stmt.query_map(params![since, tenant, bucket_ms], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn finished_since(
        &mut self,
        tenant: Option<&str>,
        since: i64,
        bucket_ms: i64,
    ) -> Result<Vec<FinishedCount>> {
        let mut stmt = self.0.prepare_cached(FINISHED_SINCE)?;
        let rows = stmt.query_map(params![since, tenant, bucket_ms], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        let mut counts = Vec::new();
        for row in rows {
            let (bucket, state, queue, jobs) = row?;
            counts.push(FinishedCount {
                bucket,
                state: parse_state(&state)?,
                queue,
                jobs,
            });
        }
        Ok(counts)
    }

    fn running_jobs(&mut self, tenant: Option<&str>, limit: u32) -> Result<Vec<Job>> {
        // Built from constants only.
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({RUNNING_IDS}) ORDER BY lease_owner, id"
        );
        let mut stmt = self.0.prepare_cached(&sql)?;
        let jobs = stmt
            .query_map(params![limit, tenant], job_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(jobs)
    }
}

impl<C: Deref<Target = Connection>> WriteTx for Conn<C> {
    fn idempotency_key(&mut self, tenant: &str, key: &str) -> Result<Option<(i64, String)>> {
        Ok(self
            .0
            .prepare_cached(
                "SELECT job_id, fingerprint FROM idempotency_keys WHERE tenant = ?1 AND key = ?2",
            )?
            .query_row(params![tenant, key], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?)
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
            .prepare_cached(
                "INSERT INTO idempotency_keys (tenant, key, job_id, fingerprint, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![tenant, key, job, fingerprint, now])?;
        Ok(())
    }

    fn insert_job(&mut self, row: &JobRow<'_>) -> Result<i64> {
        let conn = &*self.0;
        let new = row.new;
        conn.prepare_cached(INSERT_JOB)?
            .query_row(
                params![
                    row.tenant,
                    new.kind,
                    new.queue,
                    new.name,
                    new.source,
                    new.target,
                    new.created_by,
                    new.dialect,
                    row.state.as_str(),
                    new.priority,
                    new.run_at.unwrap_or(row.now),
                    new.max_attempts,
                    new.unique_key,
                    row.definition_id,
                    row.restart_of,
                    new.restartable,
                    row.payload,
                    row.now,
                ],
                |r| r.get(0),
            )
            .map_err(|err| unique_conflict(conn, err, row.tenant, new.unique_key.as_deref()))
    }

    fn insert_events(&mut self, events: &[EventRow<'_>]) -> Result<()> {
        let mut insert = self.0.prepare_cached(INSERT_EVENT)?;
        for event in events {
            insert.execute(params![
                event.job,
                event.at,
                event.event,
                event.from.map(State::as_str),
                event.to.as_str(),
                event.actor,
                event.detail,
            ])?;
        }
        Ok(())
    }

    fn cancel_job(&mut self, job: &Job, to: State, now: i64) -> Result<Job> {
        let finished_at = to.is_terminal().then_some(now);
        let updated = self
            .0
            .prepare_cached(&format!(
                "UPDATE jobs SET state = ?1, cancel_requested_at = ?2, finished_at = ?3, \
                 updated_at = ?2 WHERE id = ?4 AND state = ?5 RETURNING {JOB_COLUMNS}"
            ))?
            .query_row(
                params![to.as_str(), now, finished_at, job.id, job.state.as_str()],
                job_from_row,
            )?;
        Ok(updated)
    }

    fn restart_job(&mut self, job: &Job, to: State, now: i64) -> Result<Job> {
        let conn = &*self.0;
        let updated = conn
            .prepare_cached(&format!(
                "UPDATE jobs SET state = ?1, attempt = 0, run_at = ?2, updated_at = ?2, \
                 finished_at = NULL, started_at = NULL, cancel_requested_at = NULL, \
                 heartbeat_at = NULL, error = NULL, result = NULL, progress = '{{}}', \
                 phase = NULL WHERE id = ?3 AND state = ?4 RETURNING {JOB_COLUMNS}"
            ))?
            .query_row(
                params![to.as_str(), now, job.id, job.state.as_str()],
                job_from_row,
            )
            .map_err(|err| unique_conflict(conn, err, &job.tenant, job.unique_key.as_deref()))?;
        conn.prepare_cached(
            "UPDATE job_steps SET status = 'pending', exit_code = NULL, message = NULL, \
             started_at = NULL, finished_at = NULL, updated_at = ?2 WHERE job_id = ?1",
        )?
        .execute(params![job.id, now])?;
        Ok(updated)
    }

    fn delete_job(&mut self, id: i64, state: State) -> Result<bool> {
        let deleted = self
            .0
            .prepare_cached("DELETE FROM jobs WHERE id = ?1 AND state = ?2")?
            .execute(params![id, state.as_str()])?;
        Ok(deleted == 1)
    }

    fn delete_job_data(&mut self, job: i64) -> Result<()> {
        self.0
            .prepare_cached("DELETE FROM job_data_batches WHERE job_id = ?1")?
            .execute(params![job])?;
        Ok(())
    }

    fn insert_log(&mut self, job: i64, now: i64, lines: &[(LogLevel, &str)]) -> Result<()> {
        let mut insert = self.0.prepare_cached(
            "INSERT INTO job_logs (job_id, at, level, message) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (level, message) in lines {
            insert.execute(params![job, now, level.as_str(), message])?;
        }
        Ok(())
    }

    fn claim(&mut self, claim: &ClaimJobs<'_>) -> Result<Vec<Job>> {
        let (statement, queues) = match claim.queues {
            [queue] => (CLAIM_ONE_QUEUE, queue.clone()),
            queues => (CLAIM_MANY_QUEUES, serde_json::to_string(queues)?),
        };
        let jobs = self
            .0
            // The limit is written into the text, not bound: a bound LIMIT inside the
            // subquery made SQLite re-prepare the statement on every call. `max` is an
            // integer, one cached statement per value.
            .prepare_cached(&format!(
                "{}{JOB_COLUMNS}",
                statement.replace("{max}", &claim.max.to_string())
            ))?
            .query_map(
                params![
                    claim.to.as_str(),
                    claim.worker,
                    claim.expires,
                    claim.now,
                    queues,
                    claim.tenant
                ],
                job_from_row,
            )?
            .collect::<rusqlite::Result<Vec<Job>>>()?;
        Ok(jobs)
    }

    fn heartbeat(&mut self, row: &HeartbeatRow<'_>) -> Result<bool> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE jobs SET state = ?1, lease_expires_at = ?2, heartbeat_at = ?3, \
                 updated_at = ?3, progress = CASE WHEN ?4 IS NULL THEN progress \
                     ELSE json_patch(progress, ?4) END, \
                 phase = ifnull(?5, phase) \
                 WHERE id = ?6 AND state = 'running' AND lease_token = ?7",
            )?
            .execute(params![
                row.to.as_str(),
                row.expires,
                row.now,
                row.progress,
                row.phase,
                row.id,
                row.lease_token
            ])?;
        Ok(changed == 1)
    }

    fn complete_job(&mut self, row: &CompleteRow<'_>) -> Result<Option<Job>> {
        Ok(self
            .0
            .prepare_cached(&format!(
                "UPDATE jobs SET state = ?1, result = ?2, finished_at = ?3, updated_at = ?3, \
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                 WHERE id = ?4 AND state = 'running' AND lease_token = ?5 AND lease_owner = ?6 \
                     AND (?7 IS NULL OR tenant = ?7) \
                 RETURNING {JOB_COLUMNS}"
            ))?
            .query_row(
                params![
                    row.to.as_str(),
                    row.result,
                    row.now,
                    row.id,
                    row.lease_token,
                    row.worker,
                    row.tenant
                ],
                job_from_row,
            )
            .optional()?)
    }

    fn release_lease(&mut self, row: &ReleaseRow<'_>) -> Result<Job> {
        let conn = &*self.0;
        let updated = conn
            .prepare_cached(&format!(
                "UPDATE jobs SET state = ?1, run_at = ?2, finished_at = ?3, error = ?4, \
                 updated_at = ?5, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL \
                 WHERE id = ?6 AND state = 'running' AND lease_token = ?7 RETURNING {JOB_COLUMNS}"
            ))?
            .query_row(
                params![
                    row.to.as_str(),
                    row.run_at,
                    row.finished_at,
                    row.error,
                    row.now,
                    row.job.id,
                    row.job.lease_token
                ],
                job_from_row,
            )?;
        if row.to == State::Cancelled {
            // A cancelled job keeps no uploaded data, however it got there.
            conn.prepare_cached("DELETE FROM job_data_batches WHERE job_id = ?1")?
                .execute(params![row.job.id])?;
        }
        Ok(updated)
    }

    fn step_status(&mut self, job: i64, step_id: &str) -> Result<Option<StepStatus>> {
        let current: Option<String> = self
            .0
            .prepare_cached("SELECT status FROM job_steps WHERE job_id = ?1 AND step_id = ?2")?
            .query_row(params![job, step_id], |row| row.get(0))
            .optional()?;
        current.map(|status| status.parse()).transpose()
    }

    fn update_step(&mut self, row: &StepRow<'_>) -> Result<()> {
        let conn = &*self.0;
        conn.prepare_cached(
            "UPDATE job_steps SET status = ?1, exit_code = ifnull(?2, exit_code), \
             message = ifnull(?3, message), started_at = ifnull(started_at, ?4), \
             finished_at = ?5, updated_at = ?4 WHERE job_id = ?6 AND step_id = ?7",
        )?
        .execute(params![
            row.status.as_str(),
            row.exit_code,
            row.message,
            row.now,
            row.finished_at,
            row.job,
            row.step_id
        ])?;
        conn.prepare_cached("UPDATE jobs SET updated_at = ?1 WHERE id = ?2")?
            .execute(params![row.now, row.job])?;
        Ok(())
    }

    fn close_upload(&mut self, id: i64, from: State, to: State, now: i64) -> Result<bool> {
        let changed = self
            .0
            .prepare_cached(
                "UPDATE jobs SET state = ?1, run_at = max(run_at, ?2), updated_at = ?2 \
                 WHERE id = ?3 AND state = ?4",
            )?
            .execute(params![to.as_str(), now, id, from.as_str()])?;
        Ok(changed == 1)
    }

    fn batch_count(&mut self, job: i64, outputs: bool) -> Result<(u32, i64)> {
        let sql = if outputs {
            "SELECT count(*) FILTER (WHERE name IS NOT NULL), \
             ifnull(max(batch), 0) FROM job_data_batches WHERE job_id = ?1"
        } else {
            "SELECT count(*) FILTER (WHERE name IS NULL), ifnull(max(batch), 0) \
             FROM job_data_batches WHERE job_id = ?1"
        };
        Ok(self
            .0
            .prepare_cached(sql)?
            .query_row(params![job], |row| Ok((row.get(0)?, row.get(1)?)))?)
    }

    fn delete_replaced_output(&mut self, job: i64, name: &str, lease_token: i64) -> Result<()> {
        self.0
            .prepare_cached(
                "DELETE FROM job_data_batches WHERE job_id = ?1 AND name = ?2 \
                 AND lease_token IS NOT ?3",
            )?
            .execute(params![job, name, lease_token])?;
        Ok(())
    }

    fn insert_batch(
        &mut self,
        job: i64,
        batch: i64,
        now: i64,
        output: Option<(&str, i64)>,
    ) -> Result<()> {
        let uploader = super::uploader::this_process();
        match output {
            None => self
                .0
                .prepare_cached(
                    "INSERT INTO job_data_batches (job_id, batch, created_at, updated_at, \
                     uploader) VALUES (?1, ?2, ?3, ?3, ?4)",
                )?
                .execute(params![job, batch, now, uploader])?,
            Some((name, lease_token)) => self
                .0
                .prepare_cached(
                    "INSERT INTO job_data_batches (job_id, batch, created_at, updated_at, \
                     uploader, name, lease_token) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![job, batch, now, uploader, name, lease_token])?,
        };
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
        let conn = &*self.0;
        conn.prepare_cached(
            "INSERT INTO job_data_chunks (job_id, batch, chunk, data) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![job, batch, chunk, data])?;
        conn.prepare_cached(
            "UPDATE job_data_batches SET bytes = bytes + ?1, updated_at = ?2 \
             WHERE job_id = ?3 AND batch = ?4",
        )?
        .execute(params![
            i64::try_from(data.len()).unwrap_or(i64::MAX),
            now,
            job,
            batch
        ])?;
        Ok(())
    }

    fn seal_batch(&mut self, job: i64, batch: i64, now: i64) -> Result<(i64, i64)> {
        Ok(self
            .0
            .prepare_cached(
                "UPDATE job_data_batches SET complete = 1, updated_at = ?1 \
                 WHERE job_id = ?2 AND batch = ?3 RETURNING bytes, created_at",
            )?
            .query_row(params![now, job, batch], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?)
    }

    fn touch_job(&mut self, id: i64, state: Option<State>, now: i64) -> Result<()> {
        match state {
            Some(state) => self
                .0
                .prepare_cached("UPDATE jobs SET updated_at = ?1 WHERE id = ?2 AND state = ?3")?
                .execute(params![now, id, state.as_str()])?,
            None => self
                .0
                .prepare_cached("UPDATE jobs SET updated_at = ?1 WHERE id = ?2")?
                .execute(params![now, id])?,
        };
        Ok(())
    }

    fn delete_batch(&mut self, job: i64, batch: i64, incomplete_only: bool) -> Result<usize> {
        let sql = if incomplete_only {
            "DELETE FROM job_data_batches WHERE job_id = ?1 AND batch = ?2 AND complete = 0"
        } else {
            "DELETE FROM job_data_batches WHERE job_id = ?1 AND batch = ?2"
        };
        Ok(self.0.prepare_cached(sql)?.execute(params![job, batch])?)
    }

    fn delete_uploader_batches(&mut self, uploader: &str) -> Result<usize> {
        Ok(self
            .0
            .prepare_cached("DELETE FROM job_data_batches WHERE complete = 0 AND uploader = ?1")?
            .execute(params![uploader])?)
    }

    fn put_definition(&mut self, tenant: &str, definition: &Definition, now: i64) -> Result<()> {
        let conn = &*self.0;
        conn.prepare_cached(
            "INSERT INTO job_definitions (tenant, id, description, queue, restartable, \
             enabled, valid, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8) \
             ON CONFLICT (tenant, id) DO UPDATE SET description = excluded.description, \
             queue = excluded.queue, restartable = excluded.restartable, \
             enabled = excluded.enabled, valid = excluded.valid, updated_at = excluded.updated_at",
        )?
        .execute(params![
            tenant,
            definition.id,
            definition.description,
            definition.queue,
            definition.restartable,
            definition.enabled,
            definition.valid,
            now
        ])?;
        conn.prepare_cached(
            "DELETE FROM job_definition_steps WHERE tenant = ?1 AND definition_id = ?2",
        )?
        .execute(params![tenant, definition.id])?;
        let mut insert = conn.prepare_cached(
            "INSERT INTO job_definition_steps (tenant, definition_id, position, step_id, \
             step_type_id, description, execution_scope) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (position, step) in definition.steps.iter().enumerate() {
            insert.execute(params![
                tenant,
                definition.id,
                position as i64,
                step.step_id,
                step.step_type_id,
                step.description,
                step.execution_scope
            ])?;
        }
        Ok(())
    }

    fn latest_execution(&mut self, tenant: &str, definition: &str) -> Result<Option<(i64, State)>> {
        let latest: Option<(i64, String)> = self
            .0
            .prepare_cached(
                "SELECT id, state FROM jobs WHERE tenant = ?1 AND definition_id = ?2 \
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row(params![tenant, definition], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        latest
            .map(|(id, state)| Ok((id, parse_state(&state)?)))
            .transpose()
    }

    fn insert_steps(
        &mut self,
        job: i64,
        steps: &[DefinitionStep],
        restart_of: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let conn = &*self.0;
        let mut insert = conn.prepare_cached(
            "INSERT INTO job_steps (job_id, position, step_id, step_type_id, description, \
             execution_scope, status, exit_code, message, started_at, finished_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', NULL, NULL, NULL, NULL, ?7)",
        )?;
        for (position, step) in steps.iter().enumerate() {
            insert.execute(params![
                job,
                position as i64,
                step.step_id,
                step.step_type_id,
                step.description,
                step.execution_scope,
                now
            ])?;
        }
        if let Some(previous) = restart_of {
            // Steps that finished well in the restarted execution are not run again.
            conn.prepare_cached(
                "UPDATE job_steps AS s SET status = 'ok', exit_code = p.exit_code, \
                 message = p.message, started_at = p.started_at, finished_at = p.finished_at \
                 FROM job_steps AS p WHERE s.job_id = ?1 AND p.job_id = ?2 \
                 AND p.step_id = s.step_id AND p.status = 'ok'",
            )?
            .execute(params![job, previous])?;
        }
        Ok(())
    }

    fn expired_leases(&mut self, tenant: Option<&str>, now: i64, limit: i64) -> Result<Vec<i64>> {
        Ok(self
            .0
            .prepare_cached(EXPIRED_LEASES)?
            .query_map(params![now, tenant, limit], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?)
    }

    fn purge_finished(&mut self, tenant: Option<&str>, before: i64, limit: i64) -> Result<usize> {
        Ok(self
            .0
            .prepare_cached(PURGE_FINISHED)?
            .execute(params![before, tenant, limit])?)
    }

    fn purge_open(&mut self, tenant: Option<&str>, before: i64, limit: i64) -> Result<usize> {
        Ok(self
            .0
            .prepare_cached(
                "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = ?1 \
                 AND created_at < ?2 AND (?3 IS NULL OR tenant = ?3) LIMIT ?4)",
            )?
            .execute(params![State::Open.as_str(), before, tenant, limit])?)
    }

    fn purge_incomplete_batches(&mut self, before: i64, limit: i64) -> Result<usize> {
        Ok(self
            .0
            .prepare_cached(
                "DELETE FROM job_data_batches WHERE rowid IN (SELECT rowid FROM \
                 job_data_batches WHERE complete = 0 AND updated_at < ?1 LIMIT ?2)",
            )?
            .execute(params![before, limit])?)
    }
}

/// Cross-table invariants the schema cannot state with a `CHECK`: each query counts rows
/// that break one.
const CONSISTENCY_CHECKS: &[(&str, &str)] = &[
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
        "SELECT count(*) FROM job_data_batches b WHERE complete = 1 AND bytes <> \
         (SELECT ifnull(sum(length(data)), 0) FROM job_data_chunks c \
          WHERE c.job_id = b.job_id AND c.batch = b.batch)",
    ),
    (
        "job counts (job_counts) that differ from the jobs",
        "WITH counted AS (SELECT tenant, queue, state, count(*) AS jobs FROM jobs \
                          GROUP BY tenant, queue, state), \
              kept AS (SELECT tenant, queue, state, jobs FROM job_counts WHERE jobs > 0) \
         SELECT (SELECT count(*) FROM (SELECT * FROM counted EXCEPT SELECT * FROM kept)) \
              + (SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM counted))",
    ),
    (
        "finished steps on jobs that never ran",
        "SELECT count(*) FROM job_steps s JOIN jobs j ON j.id = s.job_id \
         WHERE s.status IN ('running', 'ok', 'error') AND j.leases = 0 AND j.restart_of IS NULL",
    ),
];

/// `PRAGMA integrity_check`, `foreign_key_check` and [`CONSISTENCY_CHECKS`]: the problems
/// found, one line each.
pub(crate) fn check(conn: &Connection) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let integrity = conn
        .prepare("PRAGMA integrity_check")?
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if integrity != ["ok"] {
        problems.extend(integrity.into_iter().map(|p| format!("integrity: {p}")));
    }
    let foreign = conn
        .prepare("PRAGMA foreign_key_check")?
        .query_map([], |row| {
            Ok(format!(
                "foreign key: {} row {:?} refers to a missing {}",
                row.get::<_, String>(0)?,
                row.get::<_, Option<i64>>(1)?,
                row.get::<_, String>(2)?
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    problems.extend(foreign);
    for (what, sql) in CONSISTENCY_CHECKS {
        let count: i64 = conn.query_row(sql, [], |row| row.get(0))?;
        if count > 0 {
            problems.push(format!("{what}: {count}"));
        }
    }
    Ok(problems)
}

/// The log lines `sql` selects (`id, at, level, message`) with `params`, in its order.
fn log_lines(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<LogLine>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
        ))
    })?;
    let mut lines = Vec::new();
    for row in rows {
        let (seq, at, level, message) = row?;
        lines.push(LogLine {
            seq,
            at,
            level: level.parse()?,
            message,
        });
    }
    Ok(lines)
}
