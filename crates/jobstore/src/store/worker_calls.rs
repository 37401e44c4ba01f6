//! The calls a worker makes: claim, heartbeat, step reports, complete, fail. Every call after
//! the claim carries the lease (worker and fencing token) and is refused with
//! [`Error::StaleLease`] once that lease is no longer the job's current one.

use super::rows::{
    backoff_ms, check_document, check_lease, insert_event, load_job, lock_job, next_state,
    readable, refuse_nul,
};
use super::{Store, WriteCall};
use crate::driver::{ClaimJobs, CompleteRow, EventRow, HeartbeatRow, ReleaseRow, StepRow, WriteTx};
use crate::model::{
    ClaimRequest, Completion, Failure, Heartbeat, HeartbeatAnswer, Job, Lease, StepReport,
};
use crate::state::{Event, State, transition};
use crate::{Error, Result};

/// The most jobs one claim may lease.
pub const MAX_CLAIM: u32 = 1000;

impl Store {
    /// Leases up to `request.max` runnable jobs of the given queues, in priority, then
    /// `run_at`, then id order. Each comes back `running` with a fresh fencing token
    /// (`lease_token`) and its attempt counted.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty worker name or queue list, a `max` of 0 or above
    /// [`MAX_CLAIM`], or a lease shorter than 1 ms.
    pub fn claim(&self, request: &ClaimRequest) -> Result<Vec<Job>> {
        self.claim_call(request).wait()
    }

    /// [`Store::claim`] as a [`WriteCall`], for callers that must not block.
    pub fn claim_call(&self, request: &ClaimRequest) -> WriteCall<Vec<Job>> {
        match self.claim_write(request) {
            Ok(call) => call,
            Err(err) => WriteCall::refused(self, err),
        }
    }

    fn claim_write(&self, request: &ClaimRequest) -> Result<WriteCall<Vec<Job>>> {
        if request.worker.is_empty() {
            return Err(Error::invalid("worker", "must not be empty"));
        }
        refuse_nul("worker", &request.worker)?;
        if request.queues.is_empty() {
            return Err(Error::invalid("queues", "name at least one queue"));
        }
        if request.max == 0 || request.max > MAX_CLAIM {
            return Err(Error::invalid(
                "max",
                format!("must be 1 to {MAX_CLAIM}, got {}", request.max),
            ));
        }
        if request.lease_ms < 1 {
            return Err(Error::invalid("lease_ms", "must be at least 1"));
        }
        let to = transition(Some(State::Queued), Event::Claim)?;
        let tenant = self.tenant_filter();
        let now = self.now();
        let queues = request.queues.clone();
        let worker = request.worker.clone();
        let expires = now.saturating_add(request.lease_ms);
        let max = request.max;
        let write = move |tx: &mut dyn WriteTx| {
            let mut jobs = tx.claim(&ClaimJobs {
                queues: &queues,
                tenant: tenant.as_deref(),
                worker: &worker,
                to,
                now,
                expires,
                max,
            })?;
            jobs.sort_by_key(|job| (job.priority, job.run_at, job.id));
            let details: Vec<String> = jobs
                .iter()
                .map(|job| {
                    format!(
                        "attempt {}, lease {}",
                        job.attempt,
                        job.lease_token.unwrap_or_default()
                    )
                })
                .collect();
            let events: Vec<EventRow<'_>> = jobs
                .iter()
                .zip(&details)
                .map(|(job, detail)| EventRow {
                    job: job.id,
                    at: now,
                    event: Event::Claim.name(),
                    from: Some(State::Queued),
                    to,
                    actor: &worker,
                    detail: Some(detail),
                })
                .collect();
            tx.insert_events(&events)?;
            Ok(jobs)
        };
        Ok(WriteCall::new(self, write, |_| false))
    }

    /// Extends the lease, merges progress counters into the job's progress document and sets
    /// its phase. Answers whether a cancel was requested.
    ///
    /// # Errors
    /// [`Error::StaleLease`] when the lease is not the current one; [`Error::InvalidInput`]
    /// when progress is not a JSON object.
    pub fn heartbeat(&self, id: i64, lease: &Lease, beat: Heartbeat) -> Result<HeartbeatAnswer> {
        let progress = match &beat.progress {
            Some(value) if !value.is_object() => {
                return Err(Error::invalid("progress", "must be a JSON object"));
            }
            Some(value) => {
                let text = serde_json::to_string(value)?;
                check_document("progress", &text, self.options().max_document_bytes)?;
                Some(text)
            }
            None => None,
        };
        let asked_ms = match beat.lease_ms {
            Some(ms) if ms < 1 => return Err(Error::invalid("lease_ms", "must be at least 1")),
            asked => asked,
        };
        let default_ms =
            i64::try_from(self.options().default_lease.as_millis()).unwrap_or(i64::MAX);
        let tenant = self.tenant_filter();
        let now = self.now();
        let lease = lease.clone();
        let phase = beat.phase.map(readable);
        self.write_on(Some(id), move |tx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
            check_lease(&job, &lease)?;
            let to = next_state(&job, Event::Heartbeat)?;
            let lease_ms = asked_ms
                .or_else(|| held_lease_ms(&job))
                .unwrap_or(default_ms);
            let expires = now.saturating_add(lease_ms);
            let changed = tx.heartbeat(&HeartbeatRow {
                id,
                lease_token: lease.token,
                to,
                expires,
                now,
                progress: progress.as_deref(),
                phase: phase.as_deref(),
            })?;
            if !changed {
                return Err(stale(&job, &lease));
            }
            Ok(HeartbeatAnswer {
                cancel_requested: job.cancel_requested_at.is_some(),
                lease_expires_at: expires,
            })
        })
    }

    /// Records the start (`running`) or the end (`ok`, `error`) of one of the job's steps.
    /// Steps go pending → running → ok | error; a step may also finish straight from pending.
    ///
    /// # Errors
    /// [`Error::StaleLease`], [`Error::StepNotFound`], [`Error::InvalidStepTransition`].
    pub fn report_step(
        &self,
        id: i64,
        lease: &Lease,
        step_id: &str,
        report: StepReport,
    ) -> Result<()> {
        use crate::model::StepStatus;
        let tenant = self.tenant_filter();
        let now = self.now();
        let lease = lease.clone();
        let step_id = step_id.to_owned();
        let message = report.message.map(readable);
        let exit_code = report.exit_code.map(readable);
        self.write_on(Some(id), move |tx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
            check_lease(&job, &lease)?;
            let Some(from) = tx.step_status(id, &step_id)? else {
                return Err(Error::StepNotFound { job: id, step_id });
            };
            let allowed = matches!(
                (from, report.status),
                (StepStatus::Pending, StepStatus::Running)
                    | (StepStatus::Pending | StepStatus::Running, StepStatus::Ok)
                    | (StepStatus::Pending | StepStatus::Running, StepStatus::Error)
            );
            if !allowed {
                return Err(Error::InvalidStepTransition {
                    job: id,
                    step_id,
                    from: from.as_str().into(),
                    to: report.status.as_str().into(),
                });
            }
            let finished = report.status.is_finished().then_some(now);
            tx.update_step(&StepRow {
                job: id,
                step_id: &step_id,
                status: report.status,
                exit_code: exit_code.as_deref(),
                message: message.as_deref(),
                now,
                finished_at: finished,
            })?;
            let detail = format!("step {step_id}: {}", report.status.as_str());
            insert_event(
                tx,
                &EventRow {
                    job: id,
                    at: now,
                    event: "step",
                    from: Some(job.state),
                    to: job.state,
                    actor: &lease.worker,
                    detail: Some(&detail),
                },
            )?;
            Ok(())
        })
    }

    /// Finishes the job as `succeeded` with its result document. Also when a cancel was
    /// requested: the work is done.
    ///
    /// # Errors
    /// [`Error::StaleLease`]; [`Error::InvalidInput`] for a result over the size limit.
    pub fn complete(&self, id: i64, lease: &Lease, result: serde_json::Value) -> Result<Job> {
        self.complete_call(id, lease, result).wait()
    }

    /// [`Store::complete`] as a [`WriteCall`], for callers that must not block.
    pub fn complete_call(
        &self,
        id: i64,
        lease: &Lease,
        result: serde_json::Value,
    ) -> WriteCall<Job> {
        let prepared = self.prepare_completion(Completion {
            id,
            lease: lease.clone(),
            result,
        });
        let finish = match prepared {
            Ok(finish) => finish,
            Err(err) => return WriteCall::refused(self, err),
        };
        let (tenant, now) = (self.tenant_filter(), self.now());
        WriteCall::on_job(
            self,
            id,
            move |tx| {
                let mut answers = complete_all(tx, &[finish], tenant.as_deref(), now)?;
                answers.pop().unwrap_or_else(|| Err(missing_answer()))
            },
            |_| false,
        )
    }

    /// Completes several jobs in one transaction: one commit (one fsync under FULL) for the
    /// lot, as a worker acknowledging a whole claim needs. Each job is judged alone: the
    /// answer holds one result per completion, in order, and a stale lease or a bad result
    /// refuses that job only.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for more than [`MAX_CLAIM`] completions; the writer's errors
    /// (then none of them is kept).
    pub fn complete_many(&self, completions: Vec<Completion>) -> Result<Vec<Result<Job>>> {
        self.complete_many_call(completions).wait()
    }

    /// [`Store::complete_many`] as a [`WriteCall`], for callers that must not block.
    pub fn complete_many_call(&self, completions: Vec<Completion>) -> WriteCall<Vec<Result<Job>>> {
        if completions.len() > MAX_CLAIM as usize {
            let err = Error::invalid(
                "completions",
                format!("at most {MAX_CLAIM} at once, got {}", completions.len()),
            );
            return WriteCall::refused(self, err);
        }
        // Each completion refused before the writer keeps its place among the answers.
        let mut answers: Vec<Option<Result<Job>>> = Vec::with_capacity(completions.len());
        let mut ready = Vec::with_capacity(completions.len());
        for completion in completions {
            match self.prepare_completion(completion) {
                Ok(finish) => {
                    ready.push(finish);
                    answers.push(None);
                }
                Err(err) => answers.push(Some(Err(err))),
            }
        }
        let (tenant, now) = (self.tenant_filter(), self.now());
        WriteCall::new(
            self,
            move |tx| {
                let mut finished = complete_all(tx, &ready, tenant.as_deref(), now)?.into_iter();
                Ok(answers
                    .into_iter()
                    .map(|refused| {
                        refused.unwrap_or_else(|| {
                            finished.next().unwrap_or_else(|| Err(missing_answer()))
                        })
                    })
                    .collect())
            },
            |_| false,
        )
    }

    fn prepare_completion(&self, completion: Completion) -> Result<PreparedCompletion> {
        let result = serde_json::to_string(&completion.result)?;
        check_document("result", &result, self.options().max_document_bytes)?;
        Ok(PreparedCompletion {
            id: completion.id,
            lease: completion.lease,
            result,
        })
    }

    /// Reports a failed attempt. A retryable failure goes back to `queued` after an
    /// exponential backoff while attempts remain, else `failed`; a fatal one is `failed` at
    /// once; any failure after a cancel request is the acknowledgement: `cancelled`.
    ///
    /// # Errors
    /// [`Error::StaleLease`].
    pub fn fail(&self, id: i64, lease: &Lease, failure: Failure) -> Result<Job> {
        self.fail_call(id, lease, failure).wait()
    }

    /// [`Store::fail`] as a [`WriteCall`], for callers that must not block.
    pub fn fail_call(&self, id: i64, lease: &Lease, failure: Failure) -> WriteCall<Job> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let lease = lease.clone();
        let (base, max) = self.retry_bounds();
        let failure = Failure {
            error: readable(failure.error),
            ..failure
        };
        let write = move |tx: &mut dyn WriteTx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
            check_lease(&job, &lease)?;
            let event = Event::Fail {
                fatal: !failure.retryable,
                attempts_left: job.attempt < job.max_attempts,
                cancel_requested: job.cancel_requested_at.is_some(),
            };
            let to = next_state(&job, event)?;
            let updated = release_lease(
                tx,
                &job,
                to,
                now,
                backoff_ms(job.attempt, base, max),
                &failure.error,
            )?;
            insert_event(
                tx,
                &EventRow {
                    job: id,
                    at: now,
                    event: event.name(),
                    from: Some(job.state),
                    to,
                    actor: &lease.worker,
                    detail: Some(&failure.error),
                },
            )?;
            Ok(updated)
        };
        WriteCall::on_job(self, id, write, |job| job.state == State::Queued)
    }

    pub(crate) fn retry_bounds(&self) -> (i64, i64) {
        let options = self.options();
        (
            i64::try_from(options.retry_base.as_millis()).unwrap_or(i64::MAX),
            i64::try_from(options.retry_max.as_millis()).unwrap_or(i64::MAX),
        )
    }
}

/// Ends a lease after a failure or an expiry: back to `queued` after `delay_ms`, or finished.
pub(crate) fn release_lease(
    tx: &mut dyn WriteTx,
    job: &Job,
    to: State,
    now: i64,
    delay_ms: i64,
    error: &str,
) -> Result<Job> {
    let (run_at, finished_at) = if to == State::Queued {
        (now.saturating_add(delay_ms), None)
    } else {
        (job.run_at, Some(now))
    };
    tx.release_lease(&ReleaseRow {
        job,
        to,
        run_at,
        finished_at,
        error,
        now,
    })
}

/// The length of the lease `job` holds: what its claim asked for, or the last heartbeat that
/// named one (each sets the expiry from the moment it recorded, `started_at` for a claim and
/// `heartbeat_at` for a heartbeat). A heartbeat that names none keeps it, so a worker that
/// claimed a long lease is not cut back to the store's default by its first progress report.
fn held_lease_ms(job: &Job) -> Option<i64> {
    let granted_at = job.heartbeat_at.or(job.started_at)?;
    let held = job.lease_expires_at?.checked_sub(granted_at)?;
    (held > 0).then_some(held)
}

fn stale(job: &Job, lease: &Lease) -> Error {
    Error::StaleLease {
        job: job.id,
        worker: lease.worker.clone(),
        lease_token: lease.token,
    }
}

/// A completion checked outside the writer, ready to run on it.
struct PreparedCompletion {
    id: i64,
    lease: Lease,
    result: String,
}

/// Finishes jobs under their leases with one compare-and-set `UPDATE` for them all
/// ([`WriteTx::complete_jobs`]), as if one after the other in their order; reads a job only
/// when its completion matched nothing, to say why; writes the events of those finished in
/// one insert. The outer error is the database's (the whole write fails), an inner one that
/// completion's refusal (nothing of it was written). One answer per completion, in order.
fn complete_all(
    tx: &mut dyn WriteTx,
    completions: &[PreparedCompletion],
    tenant: Option<&str>,
    now: i64,
) -> Result<Vec<Result<Job>>> {
    let to = transition(Some(State::Running), Event::Complete)?;
    let rows: Vec<CompleteRow<'_>> = completions
        .iter()
        .map(|completion| CompleteRow {
            id: completion.id,
            lease_token: completion.lease.token,
            worker: &completion.lease.worker,
            tenant,
            to,
            result: &completion.result,
            now,
        })
        .collect();
    let finished = tx.complete_jobs(&rows)?;
    if finished.len() != completions.len() {
        return Err(missing_answer());
    }
    let mut answers = Vec::with_capacity(completions.len());
    let mut events = Vec::new();
    for (completion, finished) in completions.iter().zip(finished) {
        match finished {
            Some(job) => {
                events.push(EventRow {
                    job: completion.id,
                    at: now,
                    event: Event::Complete.name(),
                    from: Some(State::Running),
                    to,
                    actor: &completion.lease.worker,
                    detail: None,
                });
                answers.push(Ok(job));
            }
            // Not found (or another tenant's), or not under this lease.
            None => answers.push(match load_job(tx, tenant, completion.id) {
                Ok(job) => Err(stale(&job, &completion.lease)),
                Err(err @ Error::JobNotFound { .. }) => Err(err),
                Err(err) => return Err(err),
            }),
        }
    }
    tx.insert_events(&events)?;
    Ok(answers)
}

/// A driver answered fewer completions than it was given: a defect, never a job's fault.
fn missing_answer() -> Error {
    Error::Storage("the driver answered fewer completions than it was given".into())
}
