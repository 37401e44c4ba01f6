//! Job lifecycle calls made by clients: create, read, list, cancel, restart, delete, and the
//! job's history, steps and log.

use super::rows::{
    check_document, insert_event, load_job, lock_job, next_state, readable, refuse_nul,
};
use super::{Store, WriteCall};
use crate::driver::{EventRow, JobRow, WriteTx};
use crate::list::{JobPage, ListQuery};
use crate::model::{DEFAULT_TENANT, Job, JobEvent, LogLevel, LogLine, NewJob, Scope, Step};
use crate::state::{Event, State, transition};
use crate::{Error, Result};

/// The longest log line kept; longer ones are cut (at a character boundary).
pub const MAX_LOG_LINE_BYTES: usize = 64 * 1024;

/// The most log lines appended in one call.
pub const MAX_LOG_LINES_PER_CALL: usize = 10_000;

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
    /// The row to insert, in the state a new job starts in.
    fn row(&self, now: i64) -> Result<JobRow<'_>> {
        Ok(JobRow {
            tenant: &self.tenant,
            new: &self.new,
            payload: &self.payload_text,
            state: transition(
                None,
                Event::Create {
                    upload: self.new.upload,
                },
            )?,
            definition_id: self.definition_id.as_deref(),
            restart_of: self.restart_of,
            now,
        })
    }

    /// The `create` event of the job inserted as `id`.
    fn created(&self, id: i64, state: State, now: i64) -> EventRow<'_> {
        EventRow {
            job: id,
            at: now,
            event: Event::Create {
                upload: self.new.upload,
            }
            .name(),
            from: None,
            to: state,
            actor: &self.new.created_by,
            detail: None,
        }
    }

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
            move |tx| insert_job(tx, now, &insert),
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
        let jobs = self.write(move |tx| insert_jobs(tx, now, &inserts))?;
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
        self.read(|tx| load_job(tx, tenant.as_deref(), id))
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
        query.check()?;
        let tenant = self.tenant_filter();
        self.read(|tx| tx.list_jobs(tenant.as_deref(), query))
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
        self.write_on(Some(id), move |tx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
            let to = next_state(&job, Event::Cancel)?;
            if job.state == State::Running && job.cancel_requested_at.is_some() {
                return Ok(job);
            }
            let updated = tx.cancel_job(&job, to, now)?;
            if to.is_terminal() {
                tx.delete_job_data(id)?;
            }
            let detail = (to == State::Running).then_some("cancel requested");
            insert_event(
                tx,
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
        let job = self.write_on(Some(id), move |tx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
            let to = next_state(&job, Event::Restart)?;
            if !job.restartable {
                return Err(Error::NotRestartable { job: id });
            }
            let updated = tx.restart_job(&job, to, now)?;
            insert_event(
                tx,
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
        self.write_on(Some(id), move |tx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
            next_state(&job, Event::Delete)?;
            if tx.delete_job(id, job.state)? {
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
        self.write_on(Some(id), move |tx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
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
            if tx.delete_job(id, job.state)? {
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
        self.read(|tx| {
            load_job(tx, tenant.as_deref(), id)?;
            tx.events(id)
        })
    }

    /// The job's steps, in order.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn steps(&self, id: i64) -> Result<Vec<Step>> {
        let tenant = self.tenant_filter();
        self.read(|tx| {
            load_job(tx, tenant.as_deref(), id)?;
            tx.steps(id)
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
        let lines: Vec<(LogLevel, String)> = lines
            .into_iter()
            .map(|(level, message)| (level, readable(message)))
            .collect();
        self.write_on(Some(id), move |tx| {
            lock_job(tx, tenant.as_deref(), id)?;
            let cut: Vec<(LogLevel, &str)> = lines
                .iter()
                .map(|(level, message)| (*level, truncate(message)))
                .collect();
            tx.insert_log(id, now, &cut)?;
            Ok(lines.len())
        })
    }

    /// Log lines of a job after line `after_seq` (0: from the start), at most `limit`.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn log(&self, id: i64, after_seq: i64, limit: u32) -> Result<Vec<LogLine>> {
        let tenant = self.tenant_filter();
        self.read(|tx| {
            load_job(tx, tenant.as_deref(), id)?;
            tx.log(id, after_seq, limit)
        })
    }

    /// The last `lines` log lines of a job after line `after_seq` (0: of the whole log),
    /// oldest first: the tail a viewer starts from (or catches up with) before it reads on
    /// with [`Store::log`] after the last one's `seq`.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn log_tail(&self, id: i64, after_seq: i64, lines: u32) -> Result<Vec<LogLine>> {
        let tenant = self.tenant_filter();
        self.read(|tx| {
            load_job(tx, tenant.as_deref(), id)?;
            tx.log_tail(id, after_seq, lines)
        })
    }
}

/// Inserts one job with its `create` event and idempotency key.
pub(crate) fn insert_job(tx: &mut dyn WriteTx, now: i64, insert: &JobInsert) -> Result<Job> {
    let new = &insert.new;
    if let Some(key) = &new.idempotency_key
        && let Some((job, fingerprint)) = tx.idempotency_key(&insert.tenant, key)?
    {
        if fingerprint != insert.fingerprint {
            return Err(Error::IdempotencyKeyReused {
                key: key.clone(),
                job,
            });
        }
        return load_job(tx, Some(&insert.tenant), job);
    }
    let row = insert.row(now)?;
    let id = tx.insert_job(&row)?;
    // The row as inserted, built here rather than read back: decoding it again (its payload
    // included) was a tenth of an enqueue's cost. A test compares it with a fresh read.
    let job = insert.job(id, row.state, now);
    insert_event(tx, &insert.created(id, row.state, now))?;
    if let Some(key) = &new.idempotency_key {
        tx.insert_idempotency_key(&insert.tenant, key, job.id, &insert.fingerprint, now)?;
    }
    Ok(job)
}

/// Inserts the jobs of one `enqueue_many`, all or none: with one [`WriteTx::insert_jobs`] and
/// one insert of their events when none carries an idempotency key, else one after the other
/// (a key is looked up first, and may answer the job it made before).
fn insert_jobs(tx: &mut dyn WriteTx, now: i64, inserts: &[JobInsert]) -> Result<Vec<Job>> {
    if inserts.iter().any(|i| i.new.idempotency_key.is_some()) {
        // Two batches taking the same keys in another order must not each hold a key the
        // other waits for.
        let mut keys: Vec<(&str, &str)> = inserts
            .iter()
            .filter_map(|i| Some((i.tenant.as_str(), i.new.idempotency_key.as_deref()?)))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        tx.lock_idempotency_keys(&keys)?;
        return inserts
            .iter()
            .map(|insert| insert_job(tx, now, insert))
            .collect();
    }
    let rows = inserts
        .iter()
        .map(|insert| insert.row(now))
        .collect::<Result<Vec<_>>>()?;
    let ids = tx.insert_jobs(&rows)?;
    if ids.len() != rows.len() {
        return Err(Error::Storage(
            "the driver answered fewer ids than jobs it was given".into(),
        ));
    }
    let events: Vec<EventRow<'_>> = inserts
        .iter()
        .zip(&rows)
        .zip(&ids)
        .map(|((insert, row), &id)| insert.created(id, row.state, now))
        .collect();
    tx.insert_events(&events)?;
    Ok(inserts
        .iter()
        .zip(&rows)
        .zip(ids)
        .map(|((insert, row), id)| insert.job(id, row.state, now))
        .collect())
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
        if let Some(value) = value {
            refuse_nul(field, value)?;
        }
    }
    if new
        .unique_key
        .as_deref()
        .is_some_and(|key| key.starts_with(super::definitions::EXECUTION_KEY_PREFIX))
    {
        return Err(Error::invalid(
            "unique_key",
            format!(
                "keys beginning with `{}` are the executions' of definitions",
                super::definitions::EXECUTION_KEY_PREFIX
            ),
        ));
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
