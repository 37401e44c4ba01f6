//! Job lifecycle calls made by clients: create, read, list, cancel, restart, delete, and the
//! job's history, steps and log.

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use super::rows::{
    EventRow, JOB_COLUMNS, check_document, insert_event, job_from_row, load_job, next_state,
    unique_conflict,
};
use super::{Store, WriteCall};
use crate::list::{Cursor, JobPage, ListQuery};
use crate::model::{DEFAULT_TENANT, Job, JobEvent, LogLevel, LogLine, NewJob, Scope, Step};
use crate::state::{Event, State, transition};
use crate::{Error, Result};

/// The longest log line kept; longer ones are cut (at a character boundary).
pub const MAX_LOG_LINE_BYTES: usize = 64 * 1024;

/// The most log lines appended in one call.
pub const MAX_LOG_LINES_PER_CALL: usize = 10_000;

/// Inserts a job and answers its id; [`JobInsert::job`] builds the rest of the row.
const INSERT_JOB: &str = "INSERT INTO jobs (tenant, kind, queue, name, source, target, \
     created_by, dialect, state, priority, run_at, max_attempts, unique_key, definition_id, \
     restart_of, restartable, payload, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18) \
     RETURNING id";

/// A validated job ready to insert.
pub(crate) struct JobInsert {
    pub tenant: String,
    pub new: NewJob,
    pub payload_text: String,
    pub definition_id: Option<String>,
    pub restart_of: Option<i64>,
    pub fingerprint: String,
}

impl JobInsert {
    /// The job row this insert writes, given its id: the request's fields and the schema's
    /// defaults for the rest (`schema.sql`; `enqueue_answers_the_row_as_stored` holds them
    /// together).
    fn job(&self, id: i64, state: State, now: i64) -> Job {
        let new = &self.new;
        Job {
            id,
            tenant: self.tenant.clone(),
            kind: new.kind.clone(),
            queue: new.queue.clone(),
            name: new.name.clone(),
            source: new.source.clone(),
            target: new.target.clone(),
            created_by: new.created_by.clone(),
            dialect: new.dialect.clone(),
            state,
            priority: new.priority,
            run_at: new.run_at.unwrap_or(now),
            attempt: 0,
            max_attempts: new.max_attempts,
            lease_owner: None,
            lease_token: None,
            lease_expires_at: None,
            heartbeat_at: None,
            cancel_requested_at: None,
            unique_key: new.unique_key.clone(),
            definition_id: self.definition_id.clone(),
            restart_of: self.restart_of,
            restartable: new.restartable,
            payload: new.payload.clone(),
            result: None,
            error: None,
            progress: serde_json::Value::Object(serde_json::Map::new()),
            phase: None,
            created_at: now,
            updated_at: now,
            started_at: None,
            finished_at: None,
        }
    }
}

impl Store {
    fn prepare_insert(&self, new: NewJob) -> Result<JobInsert> {
        let tenant = match &self.scope {
            Scope::Tenant(tenant) => tenant.clone(),
            Scope::All => new
                .tenant
                .clone()
                .unwrap_or_else(|| DEFAULT_TENANT.to_owned()),
        };
        validate_new_job(&new)?;
        let payload_text = serde_json::to_string(&new.payload)?;
        check_document("payload", &payload_text, self.options().max_document_bytes)?;
        // Only a create that may be retried needs its request remembered.
        let fingerprint = match new.idempotency_key {
            Some(_) => fingerprint(&serde_json::to_string(&new)?),
            None => String::new(),
        };
        Ok(JobInsert {
            tenant,
            new,
            payload_text,
            definition_id: None,
            restart_of: None,
            fingerprint,
        })
    }

    /// Creates a job: `queued`, or `open` when it has an upload phase.
    ///
    /// With an idempotency key that was used before, answers the job created then (and
    /// creates nothing); the same key with a different request is an error.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad field, [`Error::JobAlreadyRunning`] when a live job
    /// holds the unique key, [`Error::IdempotencyKeyReused`], and the writer's errors.
    pub fn enqueue(&self, new: NewJob) -> Result<Job> {
        self.enqueue_call(new).wait()
    }

    /// [`Store::enqueue`] as a [`WriteCall`], for callers that must not block.
    pub fn enqueue_call(&self, new: NewJob) -> WriteCall<Job> {
        let insert = match self.prepare_insert(new) {
            Ok(insert) => insert,
            Err(err) => return WriteCall::refused(self, err),
        };
        let now = self.now();
        WriteCall::new(
            self,
            move |conn| insert_job(conn, now, &insert),
            |job| job.state == State::Queued,
        )
    }

    /// Creates several jobs at once, all or none, in one transaction.
    ///
    /// # Errors
    /// As [`Store::enqueue`]; on any error no job of the batch is created.
    pub fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Job>> {
        let inserts = jobs
            .into_iter()
            .map(|new| self.prepare_insert(new))
            .collect::<Result<Vec<_>>>()?;
        let now = self.now();
        let jobs = self.write(move |conn| {
            inserts
                .iter()
                .map(|insert| insert_job(conn, now, insert))
                .collect::<Result<Vec<_>>>()
        })?;
        if jobs.iter().any(|job| job.state == State::Queued) {
            self.signal().notify();
        }
        Ok(jobs)
    }

    /// One job.
    ///
    /// # Errors
    /// [`Error::JobNotFound`] when it does not exist or belongs to another tenant.
    pub fn get(&self, id: i64) -> Result<Job> {
        let tenant = self.tenant_filter();
        self.read(|conn| load_job(conn, tenant.as_deref(), id))
    }

    /// The job, if it carries `label` (its `dialect`, the API that created it): to an API, a
    /// job of another API is not found, exactly like an unknown id or another tenant's job.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn get_labelled(&self, id: i64, label: &str) -> Result<Job> {
        let job = self.get(id)?;
        if job.dialect == label {
            Ok(job)
        } else {
            Err(Error::JobNotFound { id })
        }
    }

    /// One page of jobs matching `query`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a page size out of range, [`Error::InvalidCursor`] for a
    /// cursor of another sort.
    pub fn list(&self, query: &ListQuery) -> Result<JobPage> {
        let tenant = self.tenant_filter();
        let sql = query.to_sql(tenant.as_deref(), JOB_COLUMNS)?;
        self.read(|conn| {
            let mut jobs = conn
                .prepare_cached(&sql.select)?
                .query_map(params_from_iter(sql.params.iter()), job_from_row)?
                .collect::<rusqlite::Result<Vec<Job>>>()?;
            let limit = usize::try_from(sql.limit).unwrap_or(usize::MAX);
            let has_more = jobs.len() > limit;
            jobs.truncate(limit);
            let total = match &sql.count {
                Some(count) => Some(
                    conn.prepare_cached(count)?
                        .query_row(params_from_iter(sql.count_params.iter()), |row| {
                            row.get::<_, i64>(0)
                        })?,
                ),
                None => None,
            };
            let next_cursor = if has_more {
                jobs.last()
                    .map(|job| Cursor::after(job, sql.sort, sql.direction))
            } else {
                None
            };
            Ok(JobPage {
                jobs,
                next_cursor,
                has_more,
                total: total.map(|t| u64::try_from(t).unwrap_or(0)),
            })
        })
    }

    /// Cancels a job. An `open` or `queued` job is `cancelled` at once (its uploaded data is
    /// deleted in the same transaction); a `running` job gets a cancel request that its worker
    /// sees on the next heartbeat and acknowledges by failing it. Cancelling a running job a
    /// second time changes nothing.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidTransition`] for a finished job.
    pub fn cancel(&self, id: i64, actor: &str) -> Result<Job> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let actor = actor.to_owned();
        self.write(move |conn| {
            let job = load_job(conn, tenant.as_deref(), id)?;
            let to = next_state(&job, Event::Cancel)?;
            if job.state == State::Running && job.cancel_requested_at.is_some() {
                return Ok(job);
            }
            let finished_at = to.is_terminal().then_some(now);
            let updated = conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = ?1, cancel_requested_at = ?2, finished_at = ?3, \
                     updated_at = ?2 WHERE id = ?4 AND state = ?5 RETURNING {JOB_COLUMNS}"
                ))?
                .query_row(
                    params![to.as_str(), now, finished_at, id, job.state.as_str()],
                    job_from_row,
                )?;
            if to.is_terminal() {
                conn.prepare_cached("DELETE FROM job_data_batches WHERE job_id = ?1")?
                    .execute(params![id])?;
            }
            let detail = (to == State::Running).then_some("cancel requested");
            insert_event(
                conn,
                &EventRow {
                    job: id,
                    at: now,
                    event: Event::Cancel.name(),
                    from: Some(job.state),
                    to,
                    actor: &actor,
                    detail,
                },
            )?;
            Ok(updated)
        })
    }

    /// Restarts a failed or cancelled job: back to `queued` with its attempts, error, result,
    /// progress and phase cleared (the history keeps them).
    ///
    /// # Errors
    /// [`Error::NotRestartable`] when the job forbids it; [`Error::InvalidTransition`] from
    /// any other state; [`Error::JobAlreadyRunning`] when its unique key is now held by
    /// another live job.
    pub fn restart(&self, id: i64, actor: &str) -> Result<Job> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let actor = actor.to_owned();
        let job = self.write(move |conn| {
            let job = load_job(conn, tenant.as_deref(), id)?;
            let to = next_state(&job, Event::Restart)?;
            if !job.restartable {
                return Err(Error::NotRestartable { job: id });
            }
            let updated = conn
                .prepare_cached(&format!(
                    "UPDATE jobs SET state = ?1, attempt = 0, run_at = ?2, updated_at = ?2, \
                     finished_at = NULL, started_at = NULL, cancel_requested_at = NULL, \
                     heartbeat_at = NULL, error = NULL, result = NULL, progress = '{{}}', \
                     phase = NULL WHERE id = ?3 AND state = ?4 RETURNING {JOB_COLUMNS}"
                ))?
                .query_row(
                    params![to.as_str(), now, id, job.state.as_str()],
                    job_from_row,
                )
                .map_err(|err| {
                    unique_conflict(conn, err, &job.tenant, job.unique_key.as_deref())
                })?;
            conn.prepare_cached(
                "UPDATE job_steps SET status = 'pending', exit_code = NULL, message = NULL, \
                 started_at = NULL, finished_at = NULL, updated_at = ?2 WHERE job_id = ?1",
            )?
            .execute(params![id, now])?;
            insert_event(
                conn,
                &EventRow {
                    job: id,
                    at: now,
                    event: Event::Restart.name(),
                    from: Some(job.state),
                    to,
                    actor: &actor,
                    detail: None,
                },
            )?;
            Ok(updated)
        })?;
        self.signal().notify();
        Ok(job)
    }

    /// Deletes a finished job with its history, steps, data and log.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidTransition`] for a job that is not finished.
    pub fn delete(&self, id: i64) -> Result<()> {
        let tenant = self.tenant_filter();
        self.write(move |conn| {
            let job = load_job(conn, tenant.as_deref(), id)?;
            next_state(&job, Event::Delete)?;
            let deleted = conn
                .prepare_cached("DELETE FROM jobs WHERE id = ?1 AND state = ?2")?
                .execute(params![id, job.state.as_str()])?;
            if deleted == 1 {
                log::info!("deleted job {id} ({})", job.state);
                Ok(())
            } else {
                Err(Error::JobNotFound { id })
            }
        })
    }

    /// Deletes a job that is in one of the `only_in` states, in one transaction: a job that is
    /// not finished is cancelled first (both moves are asked of the state machine), so a
    /// worker claiming it meanwhile cannot slip in between. A running job is never discarded.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidTransition`] (event `delete`) when the job is
    /// in another state or running.
    pub fn discard(&self, id: i64, only_in: &[State]) -> Result<()> {
        let tenant = self.tenant_filter();
        let only_in = only_in.to_vec();
        self.write(move |conn| {
            let job = load_job(conn, tenant.as_deref(), id)?;
            let refuse = || Error::InvalidTransition {
                job: id,
                from: Some(job.state),
                event: Event::Delete.name(),
            };
            if !only_in.contains(&job.state) {
                return Err(refuse());
            }
            let finished = if job.state.is_terminal() {
                job.state
            } else {
                match next_state(&job, Event::Cancel)? {
                    State::Cancelled => State::Cancelled,
                    // Running: a cancel would only be a request.
                    _ => return Err(refuse()),
                }
            };
            transition(Some(finished), Event::Delete)?;
            let deleted = conn
                .prepare_cached("DELETE FROM jobs WHERE id = ?1 AND state = ?2")?
                .execute(params![id, job.state.as_str()])?;
            if deleted == 1 {
                log::info!("discarded job {id} ({})", job.state);
                Ok(())
            } else {
                Err(Error::JobNotFound { id })
            }
        })
    }

    /// The job's transition history, oldest first.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn events(&self, id: i64) -> Result<Vec<JobEvent>> {
        let tenant = self.tenant_filter();
        self.read(|conn| {
            load_job(conn, tenant.as_deref(), id)?;
            let mut stmt = conn.prepare_cached(
                "SELECT id, at, event, from_state, to_state, actor, detail FROM job_events \
                 WHERE job_id = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![id], |row| {
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
        })
    }

    /// The job's steps, in order.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn steps(&self, id: i64) -> Result<Vec<Step>> {
        let tenant = self.tenant_filter();
        self.read(|conn| {
            load_job(conn, tenant.as_deref(), id)?;
            read_steps(conn, id)
        })
    }

    /// Appends log lines to a job (any state). Lines longer than [`MAX_LOG_LINE_BYTES`] are
    /// cut.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidInput`] for more than
    /// [`MAX_LOG_LINES_PER_CALL`] lines.
    pub fn append_log(&self, id: i64, lines: Vec<(LogLevel, String)>) -> Result<usize> {
        if lines.len() > MAX_LOG_LINES_PER_CALL {
            return Err(Error::invalid(
                "log",
                format!("at most {MAX_LOG_LINES_PER_CALL} lines per call"),
            ));
        }
        let tenant = self.tenant_filter();
        let now = self.now();
        self.write(move |conn| {
            load_job(conn, tenant.as_deref(), id)?;
            let mut insert = conn.prepare_cached(
                "INSERT INTO job_logs (job_id, at, level, message) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (level, message) in &lines {
                insert.execute(params![id, now, level.as_str(), truncate(message)])?;
            }
            Ok(lines.len())
        })
    }

    /// Log lines of a job after line `after_seq` (0: from the start), at most `limit`.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn log(&self, id: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        let tenant = self.tenant_filter();
        self.read(|conn| {
            load_job(conn, tenant.as_deref(), id)?;
            let mut stmt = conn.prepare_cached(
                "SELECT id, at, level, message FROM job_logs WHERE job_id = ?1 AND id > ?2 \
                 ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id, after_seq, limit], |row| {
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
        })
    }
}

/// Inserts one job with its `create` event and idempotency key.
pub(crate) fn insert_job(conn: &Connection, now: i64, insert: &JobInsert) -> Result<Job> {
    let new = &insert.new;
    if let Some(key) = &new.idempotency_key {
        let seen: Option<(i64, String)> = conn
            .prepare_cached(
                "SELECT job_id, fingerprint FROM idempotency_keys WHERE tenant = ?1 AND key = ?2",
            )?
            .query_row(params![insert.tenant, key], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?;
        if let Some((job, fingerprint)) = seen {
            if fingerprint != insert.fingerprint {
                return Err(Error::IdempotencyKeyReused {
                    key: key.clone(),
                    job,
                });
            }
            return load_job(conn, Some(&insert.tenant), job);
        }
    }
    let state = transition(None, Event::Create { upload: new.upload })?;
    let id: i64 = conn
        .prepare_cached(INSERT_JOB)?
        .query_row(
            params![
                insert.tenant,
                new.kind,
                new.queue,
                new.name,
                new.source,
                new.target,
                new.created_by,
                new.dialect,
                state.as_str(),
                new.priority,
                new.run_at.unwrap_or(now),
                new.max_attempts,
                new.unique_key,
                insert.definition_id,
                insert.restart_of,
                new.restartable,
                insert.payload_text,
                now,
            ],
            |row| row.get(0),
        )
        .map_err(|err| unique_conflict(conn, err, &insert.tenant, new.unique_key.as_deref()))?;
    // The row as inserted, built here rather than read back: decoding it again (its payload
    // included) was a tenth of an enqueue's cost. A test compares it with a fresh read.
    let job = insert.job(id, state, now);
    insert_event(
        conn,
        &EventRow {
            job: job.id,
            at: now,
            event: Event::Create { upload: new.upload }.name(),
            from: None,
            to: state,
            actor: &new.created_by,
            detail: None,
        },
    )?;
    if let Some(key) = &new.idempotency_key {
        conn.prepare_cached(
            "INSERT INTO idempotency_keys (tenant, key, job_id, fingerprint, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![insert.tenant, key, job.id, insert.fingerprint, now])?;
    }
    Ok(job)
}

pub(crate) fn read_steps(conn: &Connection, id: i64) -> Result<Vec<Step>> {
    let mut stmt = conn.prepare_cached(
        "SELECT position, step_id, step_type_id, description, execution_scope, status, \
         exit_code, message, started_at, finished_at, updated_at FROM job_steps \
         WHERE job_id = ?1 ORDER BY position",
    )?;
    let rows = stmt.query_map(params![id], |row| {
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

/// The longest kind, queue, name, key or other short text field.
const MAX_FIELD_BYTES: usize = 1024;

fn validate_new_job(new: &NewJob) -> Result<()> {
    if new.kind.trim().is_empty() {
        return Err(Error::invalid("kind", "must not be empty"));
    }
    if new.queue.trim().is_empty() {
        return Err(Error::invalid("queue", "must not be empty"));
    }
    if new.max_attempts < 1 || new.max_attempts > 1000 {
        return Err(Error::invalid(
            "max_attempts",
            format!("must be 1 to 1000, got {}", new.max_attempts),
        ));
    }
    let fields: [(&str, Option<&str>); 9] = [
        ("kind", Some(&new.kind)),
        ("queue", Some(&new.queue)),
        ("name", Some(&new.name)),
        ("source", Some(&new.source)),
        ("target", Some(&new.target)),
        ("created_by", Some(&new.created_by)),
        ("dialect", Some(&new.dialect)),
        ("unique_key", new.unique_key.as_deref()),
        ("idempotency_key", new.idempotency_key.as_deref()),
    ];
    for (field, value) in fields {
        if value.is_some_and(|v| v.len() > MAX_FIELD_BYTES) {
            return Err(Error::invalid(
                field,
                format!("longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
    }
    if new.idempotency_key.as_deref() == Some("") {
        return Err(Error::invalid("idempotency_key", "must not be empty"));
    }
    Ok(())
}

fn truncate(message: &str) -> &str {
    if message.len() <= MAX_LOG_LINE_BYTES {
        return message;
    }
    let mut end = MAX_LOG_LINE_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// A stable 64-bit FNV-1a hash of a request, hex: tells a retried create from a different one
/// under the same idempotency key.
fn fingerprint(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}
