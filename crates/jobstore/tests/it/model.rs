//! Model-based property test of the job lifecycle.
//!
//! Random sequences of client, worker and maintenance calls (create, upload, close, claim,
//! heartbeat, complete, fail, cancel, restart, rescue of expired leases, delete) and clock
//! moves are applied both to a real store on a file on disk and to a small in-memory model
//! that implements the state machine table of the product contract on its own (it never asks
//! `jobstore::transition`). After every step the outcome of the call (`Ok`, or the exact
//! fault) and every job's state, attempts, lease, cancel request, run time and finish time
//! must agree, and deleted jobs must be gone. After each sequence the store's own `check()`
//! and SQL checks across `jobs`, `job_events` and `job_data_batches` must hold.

use std::collections::BTreeMap;

use jobstore::{
    ClaimRequest, Error, Failure, Heartbeat, Job, Lease, ListQuery, NewJob, Scope, State,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::json;

use crate::support::{Fixture, T0};

/// The lease of every claim: short, so that clock moves let leases run out.
const LEASE_MS: i64 = 1000;
/// The lease a heartbeat names when it names one: unlike the claim's, so that a heartbeat
/// that names none shows which length it kept (the store's default, 30 s, is neither).
const HEARTBEAT_LEASE_MS: i64 = 2500;
/// The store's default first retry delay; it doubles with each attempt.
const RETRY_BASE_MS: i64 = 1000;
/// The store's default longest retry delay.
const RETRY_MAX_MS: i64 = 3_600_000;
const WORKERS: [&str; 3] = ["w1", "w2", "w3"];
const KEYS: [&str; 2] = ["k1", "k2"];
/// The id a job-addressing call uses before any job was created.
const MISSING_ID: i64 = 1_000_000_000;

/// Which lease a worker call presents.
#[derive(Debug, Clone, Copy)]
enum LeaseChoice {
    /// The job's current lease (or, when it has none, the last one it had).
    Current,
    /// The lease before that one (an older fencing token).
    Previous,
    /// The current token under another worker's name.
    OtherWorker,
    /// The current worker with a token never handed out.
    Forged,
}

/// Which job a call addresses: an index into the ids created so far (deleted ones
/// included), or, when `fitting`, into the live jobs in a state where the call is allowed
/// (falling back to every id when there is none).
#[derive(Debug, Clone, Copy)]
struct Target {
    index: usize,
    fitting: bool,
}

#[derive(Debug, Clone)]
enum Op {
    Create {
        upload: bool,
        max_attempts: i64,
        key: Option<usize>,
        restartable: bool,
    },
    Upload {
        job: Target,
    },
    Close {
        job: Target,
    },
    Claim {
        max: u32,
        worker: usize,
    },
    Heartbeat {
        job: Target,
        lease: LeaseChoice,
        default_lease: bool,
    },
    Complete {
        job: Target,
        lease: LeaseChoice,
    },
    Fail {
        job: Target,
        lease: LeaseChoice,
        retryable: bool,
    },
    Cancel {
        job: Target,
    },
    Restart {
        job: Target,
    },
    Rescue,
    Delete {
        job: Target,
    },
    Advance {
        ms: i64,
    },
}

/// A refusal, as the model predicts it and as read from the store's error.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    NotFound(i64),
    InvalidTransition {
        job: i64,
        from: Option<State>,
        event: &'static str,
    },
    StaleLease {
        job: i64,
        worker: String,
        token: i64,
    },
    AlreadyRunning {
        key: String,
        holder: i64,
    },
    NotRestartable(i64),
}

fn fault(err: Error) -> Result<Fault, TestCaseError> {
    Ok(match err {
        Error::JobNotFound { id } => Fault::NotFound(id),
        Error::InvalidTransition { job, from, event } => {
            Fault::InvalidTransition { job, from, event }
        }
        Error::StaleLease {
            job,
            worker,
            lease_token,
        } => Fault::StaleLease {
            job,
            worker,
            token: lease_token,
        },
        Error::JobAlreadyRunning { unique_key, job } => Fault::AlreadyRunning {
            key: unique_key,
            holder: job,
        },
        Error::NotRestartable { job } => Fault::NotRestartable(job),
        other => return Err(TestCaseError::fail(format!("unexpected error: {other:?}"))),
    })
}

/// Compares what the model predicts with what the store answered; on success of both,
/// returns both values.
fn outcome<R, T: std::fmt::Debug>(
    expected: Result<R, Fault>,
    got: jobstore::Result<T>,
) -> Result<Option<(R, T)>, TestCaseError> {
    match (expected, got) {
        (Ok(want), Ok(got)) => Ok(Some((want, got))),
        (Err(want), Err(err)) => {
            let got = fault(err)?;
            prop_assert_eq!(got, want);
            Ok(None)
        }
        (Ok(_), Err(err)) => Err(TestCaseError::fail(format!(
            "the model accepts the call, the store refused it: {err:?}"
        ))),
        (Err(want), Ok(got)) => Err(TestCaseError::fail(format!(
            "the model expects {want:?}, the store accepted the call: {got:?}"
        ))),
    }
}

/// What the model knows of `run_at`: exact, or the window of a retry backoff with jitter
/// (pinned to the store's value once it was checked to lie in the window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunAt {
    Exact(i64),
    Between(i64, i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelLease {
    worker: String,
    token: i64,
    expires_at: i64,
    /// What the claim, or the last heartbeat that named a length, asked for.
    length_ms: i64,
}

#[derive(Debug, Clone)]
struct ModelJob {
    state: State,
    attempt: i64,
    max_attempts: i64,
    /// Claims since creation (never reset): the last fencing token handed out.
    leases: i64,
    /// The worker of each lease handed out, by token - 1.
    owners: Vec<String>,
    lease: Option<ModelLease>,
    cancel_requested_at: Option<i64>,
    unique_key: Option<String>,
    restartable: bool,
    run_at: RunAt,
    started_at: Option<i64>,
    heartbeat_at: Option<i64>,
    finished_at: Option<i64>,
    has_error: bool,
    /// Complete data batches held.
    batches: i64,
    /// Expected `job_events` rows, by event name.
    events: BTreeMap<&'static str, i64>,
}

impl ModelJob {
    fn event(&mut self, name: &'static str) {
        *self.events.entry(name).or_default() += 1;
    }

    fn invalid(&self, id: i64, event: &'static str) -> Fault {
        Fault::InvalidTransition {
            job: id,
            from: Some(self.state),
            event,
        }
    }

    /// The end of an attempt by a failure (`fatal` or retryable) or by an expired lease
    /// (retryable): `cancelled` when a cancel was requested, else `queued` after a backoff
    /// while attempts remain, else `failed`.
    fn end_attempt(&mut self, now: i64, fatal: bool, event: &'static str) {
        let to = if self.cancel_requested_at.is_some() {
            State::Cancelled
        } else if fatal || self.attempt >= self.max_attempts {
            State::Failed
        } else {
            State::Queued
        };
        self.lease = None;
        self.has_error = true;
        if to == State::Queued {
            let delay = backoff(self.attempt);
            self.run_at = RunAt::Between(now + delay, now + delay + delay / 4);
        } else {
            self.finished_at = Some(now);
        }
        if to == State::Cancelled {
            self.batches = 0;
        }
        self.state = to;
        self.event(event);
    }
}

/// The retry delay after attempt `attempt` without its jitter.
fn backoff(attempt: i64) -> i64 {
    let exponent = u32::try_from((attempt - 1).clamp(0, 40)).unwrap_or(40);
    RETRY_BASE_MS
        .saturating_mul(2_i64.saturating_pow(exponent))
        .min(RETRY_MAX_MS)
}

struct Model {
    now: i64,
    jobs: BTreeMap<i64, ModelJob>,
    /// Every id ever created, deleted ones included.
    created: Vec<i64>,
}

impl Model {
    fn new(now: i64) -> Model {
        Model {
            now,
            jobs: BTreeMap::new(),
            created: Vec::new(),
        }
    }

    fn target(&self, target: Target, fits: impl Fn(State) -> bool) -> i64 {
        if target.fitting {
            let fitting: Vec<i64> = self
                .jobs
                .iter()
                .filter(|(_, job)| fits(job.state))
                .map(|(id, _)| *id)
                .collect();
            if !fitting.is_empty() {
                return fitting[target.index % fitting.len()];
            }
        }
        if self.created.is_empty() {
            MISSING_ID
        } else {
            self.created[target.index % self.created.len()]
        }
    }

    fn job(&mut self, id: i64) -> Result<&mut ModelJob, Fault> {
        self.jobs.get_mut(&id).ok_or(Fault::NotFound(id))
    }

    fn live_holder(&self, key: &str, except: i64) -> Option<i64> {
        self.jobs
            .iter()
            .find(|(id, job)| {
                **id != except && !job.state.is_terminal() && job.unique_key.as_deref() == Some(key)
            })
            .map(|(id, _)| *id)
    }

    fn create(
        &self,
        upload: bool,
        max_attempts: i64,
        key: Option<&str>,
        restartable: bool,
    ) -> Result<ModelJob, Fault> {
        if let Some(key) = key
            && let Some(holder) = self.live_holder(key, 0)
        {
            return Err(Fault::AlreadyRunning {
                key: key.to_owned(),
                holder,
            });
        }
        let mut job = ModelJob {
            state: if upload { State::Open } else { State::Queued },
            attempt: 0,
            max_attempts,
            leases: 0,
            owners: Vec::new(),
            lease: None,
            cancel_requested_at: None,
            unique_key: key.map(str::to_owned),
            restartable,
            run_at: RunAt::Exact(self.now),
            started_at: None,
            heartbeat_at: None,
            finished_at: None,
            has_error: false,
            batches: 0,
            events: BTreeMap::new(),
        };
        job.event("create");
        Ok(job)
    }

    fn upload(&mut self, id: i64) -> Result<(), Fault> {
        let job = self.job(id)?;
        if job.state != State::Open {
            return Err(job.invalid(id, "upload"));
        }
        job.batches += 1;
        job.event("upload");
        Ok(())
    }

    fn close(&mut self, id: i64) -> Result<(), Fault> {
        let now = self.now;
        let job = self.job(id)?;
        if job.state != State::Open {
            return Err(job.invalid(id, "close"));
        }
        job.state = State::Queued;
        if let RunAt::Exact(run_at) = job.run_at {
            job.run_at = RunAt::Exact(run_at.max(now));
        }
        job.event("close");
        Ok(())
    }

    /// Queued jobs due now, in priority (all 0 here), run_at, id order.
    fn claim(&mut self, worker: &str, max: u32) -> Vec<i64> {
        let now = self.now;
        let mut due: Vec<(i64, i64)> = self
            .jobs
            .iter()
            .filter(|(_, job)| job.state == State::Queued)
            .map(|(id, job)| match job.run_at {
                RunAt::Exact(run_at) => (run_at, *id),
                RunAt::Between(..) => unreachable!("run_at is pinned after every step"),
            })
            .filter(|(run_at, _)| *run_at <= now)
            .collect();
        due.sort_unstable();
        due.truncate(max as usize);
        let ids: Vec<i64> = due.into_iter().map(|(_, id)| id).collect();
        for id in &ids {
            let job = self.jobs.get_mut(id).expect("a due job exists");
            job.state = State::Running;
            job.attempt += 1;
            job.leases += 1;
            job.owners.push(worker.to_owned());
            job.lease = Some(ModelLease {
                worker: worker.to_owned(),
                token: job.leases,
                expires_at: now + LEASE_MS,
                length_ms: LEASE_MS,
            });
            job.started_at = Some(now);
            job.heartbeat_at = None;
            job.event("claim");
        }
        ids
    }

    /// The job, if `lease` is its current lease.
    fn leased(&mut self, id: i64, lease: &Lease) -> Result<&mut ModelJob, Fault> {
        let job = self.job(id)?;
        let current = job.state == State::Running
            && job
                .lease
                .as_ref()
                .is_some_and(|l| l.worker == lease.worker && l.token == lease.token);
        if current {
            Ok(job)
        } else {
            Err(Fault::StaleLease {
                job: id,
                worker: lease.worker.clone(),
                token: lease.token,
            })
        }
    }

    /// A heartbeat naming `lease_ms`, or keeping the length of the lease held (`None`).
    fn heartbeat(
        &mut self,
        id: i64,
        lease: &Lease,
        lease_ms: Option<i64>,
    ) -> Result<(bool, i64), Fault> {
        let now = self.now;
        let job = self.leased(id, lease)?;
        let mut expires_at = now;
        if let Some(l) = job.lease.as_mut() {
            l.length_ms = lease_ms.unwrap_or(l.length_ms);
            l.expires_at = now + l.length_ms;
            expires_at = l.expires_at;
        }
        job.heartbeat_at = Some(now);
        Ok((job.cancel_requested_at.is_some(), expires_at))
    }

    fn complete(&mut self, id: i64, lease: &Lease) -> Result<(), Fault> {
        let now = self.now;
        let job = self.leased(id, lease)?;
        job.state = State::Succeeded;
        job.lease = None;
        job.finished_at = Some(now);
        job.event("complete");
        Ok(())
    }

    fn fail(&mut self, id: i64, lease: &Lease, retryable: bool) -> Result<(), Fault> {
        let now = self.now;
        let job = self.leased(id, lease)?;
        job.end_attempt(now, !retryable, "fail");
        Ok(())
    }

    fn cancel(&mut self, id: i64) -> Result<(), Fault> {
        let now = self.now;
        let job = self.job(id)?;
        match job.state {
            State::Open | State::Queued => {
                job.state = State::Cancelled;
                job.cancel_requested_at = Some(now);
                job.finished_at = Some(now);
                job.batches = 0;
                job.event("cancel");
            }
            // A second request while running changes nothing.
            State::Running if job.cancel_requested_at.is_some() => {}
            State::Running => {
                job.cancel_requested_at = Some(now);
                job.event("cancel");
            }
            State::Succeeded | State::Failed | State::Cancelled => {
                return Err(job.invalid(id, "cancel"));
            }
        }
        Ok(())
    }

    fn restart(&mut self, id: i64) -> Result<(), Fault> {
        let now = self.now;
        let job = self.job(id)?;
        if !matches!(job.state, State::Failed | State::Cancelled) {
            return Err(job.invalid(id, "restart"));
        }
        if !job.restartable {
            return Err(Fault::NotRestartable(id));
        }
        if let Some(key) = job.unique_key.clone()
            && let Some(holder) = self.live_holder(&key, id)
        {
            return Err(Fault::AlreadyRunning { key, holder });
        }
        let job = self.job(id)?;
        job.state = State::Queued;
        job.attempt = 0;
        job.run_at = RunAt::Exact(now);
        job.finished_at = None;
        job.started_at = None;
        job.heartbeat_at = None;
        job.cancel_requested_at = None;
        job.has_error = false;
        job.event("restart");
        Ok(())
    }

    /// Running jobs whose lease ran out before now, as retryable failures.
    fn rescue(&mut self) -> Vec<i64> {
        let now = self.now;
        let mut rescued = Vec::new();
        for (id, job) in &mut self.jobs {
            let expired = job.state == State::Running
                && job.lease.as_ref().is_some_and(|l| l.expires_at < now);
            if expired {
                job.end_attempt(now, false, "lease_expired");
                rescued.push(*id);
            }
        }
        rescued
    }

    fn delete(&mut self, id: i64) -> Result<(), Fault> {
        let job = self.job(id)?;
        if !job.state.is_terminal() {
            return Err(job.invalid(id, "delete"));
        }
        self.jobs.remove(&id);
        Ok(())
    }

    /// The lease a worker call presents.
    fn lease_for(&self, id: i64, choice: LeaseChoice) -> Lease {
        let Some(job) = self.jobs.get(&id) else {
            return Lease {
                worker: WORKERS[0].to_owned(),
                token: 1,
            };
        };
        let (worker, token) = match &job.lease {
            Some(l) => (l.worker.clone(), l.token),
            None => (
                job.owners
                    .last()
                    .cloned()
                    .unwrap_or_else(|| WORKERS[0].to_owned()),
                job.leases.max(1),
            ),
        };
        match choice {
            LeaseChoice::Current => Lease { worker, token },
            LeaseChoice::Previous => {
                let token = token - 1;
                let worker = usize::try_from(token - 1)
                    .ok()
                    .and_then(|i| job.owners.get(i).cloned())
                    .unwrap_or(worker);
                Lease { worker, token }
            }
            LeaseChoice::OtherWorker => Lease {
                worker: WORKERS
                    .iter()
                    .find(|w| **w != worker)
                    .map(|w| (*w).to_owned())
                    .unwrap_or_default(),
                token,
            },
            LeaseChoice::Forged => Lease {
                worker,
                token: token + 1000,
            },
        }
    }
}

/// Compares one job read from the store with the model's, pinning a backoff window to the
/// store's `run_at` once it is checked.
fn compare_job(job: &Job, m: &mut ModelJob) -> Result<(), TestCaseError> {
    let id = job.id;
    prop_assert_eq!(job.state, m.state, "job {} state", id);
    prop_assert_eq!(job.attempt, m.attempt, "job {} attempt", id);
    prop_assert_eq!(job.max_attempts, m.max_attempts, "job {} max_attempts", id);
    prop_assert_eq!(
        job.lease_owner.as_deref(),
        m.lease.as_ref().map(|l| l.worker.as_str()),
        "job {} lease owner",
        id
    );
    prop_assert_eq!(
        job.lease_token,
        m.lease.as_ref().map(|l| l.token),
        "job {} lease token",
        id
    );
    prop_assert_eq!(
        job.lease_expires_at,
        m.lease.as_ref().map(|l| l.expires_at),
        "job {} lease expiry",
        id
    );
    prop_assert_eq!(
        job.cancel_requested_at,
        m.cancel_requested_at,
        "job {} cancel request",
        id
    );
    prop_assert_eq!(&job.unique_key, &m.unique_key, "job {} unique key", id);
    prop_assert_eq!(job.restartable, m.restartable, "job {} restartable", id);
    prop_assert_eq!(job.started_at, m.started_at, "job {} started_at", id);
    prop_assert_eq!(job.heartbeat_at, m.heartbeat_at, "job {} heartbeat_at", id);
    prop_assert_eq!(job.finished_at, m.finished_at, "job {} finished_at", id);
    prop_assert_eq!(
        job.finished_at.is_some(),
        job.state.is_terminal(),
        "job {} finished iff terminal",
        id
    );
    prop_assert_eq!(job.error.is_some(), m.has_error, "job {} error", id);
    prop_assert_eq!(
        job.result.is_some(),
        job.state == State::Succeeded,
        "job {} result",
        id
    );
    match m.run_at {
        RunAt::Exact(run_at) => prop_assert_eq!(job.run_at, run_at, "job {} run_at", id),
        RunAt::Between(lo, hi) => {
            prop_assert!(
                (lo..=hi).contains(&job.run_at),
                "job {} run_at {} outside the backoff window {}..={}",
                id,
                job.run_at,
                lo,
                hi
            );
            m.run_at = RunAt::Exact(job.run_at);
        }
    }
    Ok(())
}

/// Every job of the store against the model; deleted jobs are gone.
fn compare_all(f: &Fixture, m: &mut Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(f.store.now(), m.now);
    let page = f
        .store
        .with_scope(Scope::All)
        .list(&ListQuery {
            limit: Some(1000),
            ..ListQuery::default()
        })
        .map_err(|err| TestCaseError::fail(format!("list: {err:?}")))?;
    prop_assert!(!page.has_more);
    let mut jobs = page.jobs;
    jobs.sort_by_key(|job| job.id);
    let ids: Vec<i64> = jobs.iter().map(|job| job.id).collect();
    let want: Vec<i64> = m.jobs.keys().copied().collect();
    prop_assert_eq!(ids, want, "the jobs in the store");
    for job in &jobs {
        let model = m.jobs.get_mut(&job.id).expect("compared ids above");
        compare_job(job, model)?;
    }
    // The counts `stats` reads (kept by triggers) agree with the model's jobs.
    let mut want_counts: BTreeMap<State, i64> = BTreeMap::new();
    for job in m.jobs.values() {
        *want_counts.entry(job.state).or_default() += 1;
    }
    let stats = f
        .store
        .with_scope(Scope::All)
        .stats()
        .map_err(|err| TestCaseError::fail(format!("stats: {err:?}")))?;
    let got_counts: BTreeMap<State, i64> = stats
        .iter()
        .map(|count| (count.state, count.jobs))
        .collect();
    prop_assert!(
        stats.iter().all(|count| count.queue == "default"),
        "{:?}",
        stats
    );
    prop_assert_eq!(got_counts, want_counts, "stats");
    for id in &m.created {
        if !m.jobs.contains_key(id) {
            let got = f.store.get(*id);
            prop_assert!(
                matches!(got, Err(Error::JobNotFound { id: gone }) if gone == *id),
                "deleted job {} still answers {:?}",
                id,
                got
            );
        }
    }
    Ok(())
}

fn apply(f: &Fixture, m: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let store = &f.store;
    match *op {
        Op::Create {
            upload,
            max_attempts,
            key,
            restartable,
        } => {
            let key = key.map(|k| KEYS[k % KEYS.len()]);
            let mut new = NewJob::new("model")
                .upload(upload)
                .max_attempts(max_attempts)
                .restartable(restartable);
            if let Some(key) = key {
                new = new.unique_key(key);
            }
            let expected = m.create(upload, max_attempts, key, restartable);
            if let Some((mut job, got)) = outcome(expected, store.enqueue(new))? {
                prop_assert!(
                    m.created.iter().all(|id| *id < got.id),
                    "id {} reused or out of order",
                    got.id
                );
                compare_job(&got, &mut job)?;
                m.jobs.insert(got.id, job);
                m.created.push(got.id);
            }
        }
        Op::Upload { job } => {
            let id = m.target(job, |s| s == State::Open);
            let expected = m.upload(id);
            outcome(expected, store.append_data(id, &b"row1\nrow2\n"[..]))?;
        }
        Op::Close { job } => {
            let id = m.target(job, |s| s == State::Open);
            let expected = m.close(id);
            if let Some(((), got)) = outcome(expected, store.close_upload(id, "tester"))? {
                compare_job(&got, m.job(id).expect("closed"))?;
            }
        }
        Op::Claim { max, worker } => {
            let worker = WORKERS[worker % WORKERS.len()];
            let expected = m.claim(worker, max);
            let request = ClaimRequest {
                max,
                lease_ms: LEASE_MS,
                ..ClaimRequest::new(worker, "default")
            };
            if let Some((want, got)) = outcome(Ok(expected), store.claim(&request))? {
                let ids: Vec<i64> = got.iter().map(|job| job.id).collect();
                prop_assert_eq!(ids, want, "claimed jobs in claim order");
                for job in &got {
                    compare_job(job, m.job(job.id).expect("claimed"))?;
                }
            }
        }
        Op::Heartbeat {
            job,
            lease,
            default_lease,
        } => {
            let id = m.target(job, |s| s == State::Running);
            let lease = m.lease_for(id, lease);
            let lease_ms = (!default_lease).then_some(HEARTBEAT_LEASE_MS);
            let beat = Heartbeat {
                lease_ms,
                ..Heartbeat::default()
            };
            let expected = m.heartbeat(id, &lease, lease_ms);
            if let Some(((cancel, expires), answer)) =
                outcome(expected, store.heartbeat(id, &lease, beat))?
            {
                prop_assert_eq!(answer.cancel_requested, cancel, "heartbeat cancel flag");
                prop_assert_eq!(answer.lease_expires_at, expires, "heartbeat expiry");
            }
        }
        Op::Complete { job, lease } => {
            let id = m.target(job, |s| s == State::Running);
            let lease = m.lease_for(id, lease);
            let expected = m.complete(id, &lease);
            if let Some(((), got)) =
                outcome(expected, store.complete(id, &lease, json!({"ok": true})))?
            {
                compare_job(&got, m.job(id).expect("completed"))?;
            }
        }
        Op::Fail {
            job,
            lease,
            retryable,
        } => {
            let id = m.target(job, |s| s == State::Running);
            let lease = m.lease_for(id, lease);
            let expected = m.fail(id, &lease, retryable);
            let failure = if retryable {
                Failure::retryable("try again")
            } else {
                Failure::fatal("broken")
            };
            if let Some(((), got)) = outcome(expected, store.fail(id, &lease, failure))? {
                compare_job(&got, m.job(id).expect("failed"))?;
            }
        }
        Op::Cancel { job } => {
            let id = m.target(job, |s| !s.is_terminal());
            let expected = m.cancel(id);
            if let Some(((), got)) = outcome(expected, store.cancel(id, "tester"))? {
                compare_job(&got, m.job(id).expect("cancelled"))?;
            }
        }
        Op::Restart { job } => {
            let id = m.target(job, |s| matches!(s, State::Failed | State::Cancelled));
            let expected = m.restart(id);
            if let Some(((), got)) = outcome(expected, store.restart(id, "tester"))? {
                compare_job(&got, m.job(id).expect("restarted"))?;
            }
        }
        Op::Rescue => {
            let expected = m.rescue();
            if let Some((want, mut got)) = outcome(Ok(expected), store.rescue_expired_leases())? {
                got.sort_unstable();
                prop_assert_eq!(got, want, "rescued jobs");
            }
        }
        Op::Delete { job } => {
            let id = m.target(job, State::is_terminal);
            let expected = m.delete(id);
            outcome(expected, store.delete(id))?;
        }
        Op::Advance { ms } => {
            f.clock.advance(ms);
            m.now += ms;
        }
    }
    Ok(())
}

/// An integer column as the tables hold it.
fn int(cell: &Option<String>) -> Result<i64, TestCaseError> {
    cell.as_deref()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| TestCaseError::fail(format!("not an integer: {cell:?}")))
}

/// The store's own check, and the history and data of every job against its row and the
/// model, read with plain SQL as an operator would (SQL every engine takes).
fn check_tables(f: &Fixture, m: &Model) -> Result<(), TestCaseError> {
    let report = f
        .store
        .check()
        .map_err(|err| TestCaseError::fail(format!("check: {err:?}")))?;
    prop_assert!(report.is_ok(), "store.check(): {:?}", report.problems);

    for (&id, job) in &m.jobs {
        let rows = f.rows(
            "SELECT state, attempt, leases, lease_token FROM jobs WHERE id = $1",
            &[id],
        );
        let [row] = rows.as_slice() else {
            return Err(TestCaseError::fail(format!("job {id}: {rows:?}")));
        };
        let state = row[0].clone().unwrap_or_default();
        let (attempt, leases) = (int(&row[1])?, int(&row[2])?);
        let token = row[3].as_ref().map(|_| int(&row[3])).transpose()?;
        prop_assert_eq!(&state, job.state.as_str(), "job {} state column", id);
        prop_assert_eq!(leases, job.leases, "job {} leases column", id);
        prop_assert!(
            attempt <= leases,
            "job {}: attempt {} > leases",
            id,
            attempt
        );
        if job.state == State::Running {
            prop_assert_eq!(token, Some(leases), "job {}: token of the last claim", id);
        }

        let events = f
            .rows(
                "SELECT event, from_state, to_state, at FROM job_events WHERE job_id = $1 \
                 ORDER BY id",
                &[id],
            )
            .into_iter()
            .map(|row| {
                Ok((
                    row[0].clone().unwrap_or_default(),
                    row[1].clone(),
                    row[2].clone().unwrap_or_default(),
                    int(&row[3])?,
                ))
            })
            .collect::<Result<Vec<(String, Option<String>, String, i64)>, TestCaseError>>()?;
        let Some(((first, first_from, _, _), _)) = events.split_first() else {
            return Err(TestCaseError::fail(format!("job {id} has no events")));
        };
        prop_assert_eq!(first.as_str(), "create", "job {} first event", id);
        prop_assert_eq!(first_from, &None, "job {} create has no from state", id);
        for pair in events.windows(2) {
            let (_, _, prev_to, prev_at) = &pair[0];
            let (event, from, _, at) = &pair[1];
            prop_assert_eq!(
                from.as_deref(),
                Some(prev_to.as_str()),
                "job {}: `{}` does not start where the previous event ended",
                id,
                event
            );
            prop_assert!(at >= prev_at, "job {}: event times go back", id);
        }
        let last_to = events.last().map(|e| e.2.clone()).unwrap_or_default();
        prop_assert_eq!(&last_to, &state, "job {}: last event's to_state", id);
        let claims = events.iter().filter(|e| e.0 == "claim").count() as i64;
        prop_assert_eq!(claims, leases, "job {}: claim events vs leases", id);
        let mut by_name: BTreeMap<&str, i64> = BTreeMap::new();
        for (event, ..) in &events {
            *by_name.entry(event.as_str()).or_default() += 1;
        }
        let want: BTreeMap<&str, i64> = job.events.iter().map(|(k, v)| (*k, *v)).collect();
        prop_assert_eq!(by_name, want, "job {}: events by name", id);

        let batches = f.count(
            "SELECT count(*) FROM job_data_batches WHERE job_id = $1 AND complete",
            &[id],
        );
        prop_assert_eq!(batches, job.batches, "job {}: data batches", id);
        let incomplete = f.count(
            "SELECT count(*) FROM job_data_batches WHERE job_id = $1 AND NOT complete",
            &[id],
        );
        prop_assert_eq!(incomplete, 0, "job {}: incomplete batches", id);
    }

    for id in m.created.iter().filter(|id| !m.jobs.contains_key(id)) {
        for table in [
            "jobs",
            "job_events",
            "job_data_batches",
            "job_data_chunks",
            "job_logs",
            "job_steps",
            "idempotency_keys",
        ] {
            let column = if table == "jobs" { "id" } else { "job_id" };
            let left = f.count(
                &format!("SELECT count(*) FROM {table} WHERE {column} = $1"),
                &[*id],
            );
            prop_assert_eq!(left, 0, "deleted job {} left rows in {}", id, table);
        }
    }

    prop_assert_eq!(
        f.count(
            "SELECT count(*) FROM (SELECT tenant, unique_key FROM jobs \
             WHERE unique_key IS NOT NULL AND state IN ('open', 'queued', 'running') \
             GROUP BY tenant, unique_key HAVING count(*) > 1) AS shared",
            &[]
        ),
        0,
        "two live jobs share a unique key"
    );
    prop_assert_eq!(
        f.count(
            "SELECT count(*) FROM job_events WHERE job_id NOT IN (SELECT id FROM jobs)",
            &[]
        ),
        0,
        "events of missing jobs"
    );
    prop_assert_eq!(
        f.count("SELECT count(*) FROM jobs", &[]),
        m.jobs.len() as i64,
        "job rows"
    );
    if let Some(last) = m.created.last() {
        let seq = f.id_high_water();
        prop_assert!(seq >= *last, "id sequence {} behind id {}", seq, last);
    }
    Ok(())
}

/// Runs one sequence against a fresh store and the model; answers both for further looks.
fn run(ops: &[Op]) -> Result<(Fixture, Model), TestCaseError> {
    let f = Fixture::new();
    let mut m = Model::new(T0);
    for (step, op) in ops.iter().enumerate() {
        apply(&f, &mut m, op)
            .and_then(|()| compare_all(&f, &mut m))
            .map_err(|err| TestCaseError::fail(format!("step {step} {op:?}: {err}")))?;
    }
    check_tables(&f, &m)?;
    Ok((f, m))
}

fn lease_choice() -> impl Strategy<Value = LeaseChoice> {
    prop_oneof![
        6 => Just(LeaseChoice::Current),
        1 => Just(LeaseChoice::Previous),
        1 => Just(LeaseChoice::OtherWorker),
        1 => Just(LeaseChoice::Forged),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let job = (0..64_usize, prop::bool::weighted(0.75))
        .prop_map(|(index, fitting)| Target { index, fitting });
    prop_oneof![
        4 => (
            prop::bool::weighted(0.3),
            1..=4_i64,
            prop_oneof![3 => Just(None), 1 => Just(Some(0_usize)), 1 => Just(Some(1_usize))],
            prop::bool::weighted(0.8),
        )
            .prop_map(|(upload, max_attempts, key, restartable)| Op::Create {
                upload,
                max_attempts,
                key,
                restartable,
            }),
        1 => job.clone().prop_map(|job| Op::Upload { job }),
        2 => job.clone().prop_map(|job| Op::Close { job }),
        4 => (1..=3_u32, 0..WORKERS.len()).prop_map(|(max, worker)| Op::Claim { max, worker }),
        3 => (job.clone(), lease_choice(), prop::bool::weighted(0.2)).prop_map(
            |(job, lease, default_lease)| Op::Heartbeat {
                job,
                lease,
                default_lease,
            }
        ),
        2 => (job.clone(), lease_choice()).prop_map(|(job, lease)| Op::Complete { job, lease }),
        3 => (job.clone(), lease_choice(), prop::bool::weighted(0.7)).prop_map(
            |(job, lease, retryable)| Op::Fail {
                job,
                lease,
                retryable,
            }
        ),
        2 => job.clone().prop_map(|job| Op::Cancel { job }),
        2 => job.clone().prop_map(|job| Op::Restart { job }),
        2 => Just(Op::Rescue),
        1 => job.prop_map(|job| Op::Delete { job }),
        4 => prop_oneof![
            Just(0_i64),
            Just(1),
            Just(999),
            Just(LEASE_MS),
            Just(LEASE_MS + 1),
            Just(1250),
            Just(2000),
            1..5000_i64,
            Just(HEARTBEAT_LEASE_MS),
            Just(HEARTBEAT_LEASE_MS + 1),
        ]
        .prop_map(|ms| Op::Advance { ms }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        // A failure prints its shrunk sequence; it becomes a #[test] below, not a seed file.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_follows_the_model(ops in prop::collection::vec(op(), 1..60)) {
        run(&ops)?;
    }
}

/// Runs a fixed sequence; a failure names the step.
fn run_fixed(ops: &[Op]) -> (Fixture, Model) {
    run(ops).unwrap_or_else(|err| panic!("{err}"))
}

fn create(upload: bool, max_attempts: i64, key: Option<usize>) -> Op {
    Op::Create {
        upload,
        max_attempts,
        key,
        restartable: true,
    }
}

/// The `index`th job created (0-based).
fn nth(index: usize) -> Target {
    Target {
        index,
        fitting: false,
    }
}

fn claim(worker: usize) -> Op {
    Op::Claim { max: 1, worker }
}

fn advance(ms: i64) -> Op {
    Op::Advance { ms }
}

/// A heartbeat that names no lease: it keeps the claim's length ([`LEASE_MS`]).
fn heartbeat(index: usize, lease: LeaseChoice) -> Op {
    Op::Heartbeat {
        job: nth(index),
        lease,
        default_lease: true,
    }
}

/// A lease runs until `lease_expires_at` inclusive: rescue takes it only after, a heartbeat
/// of the holder that comes late but before any rescue still extends it, and once rescued
/// and claimed again every call with the first lease is refused as stale.
#[test]
fn a_late_heartbeat_before_rescue_keeps_the_lease_and_old_tokens_are_fenced_off() {
    let (f, m) = run_fixed(&[
        create(false, 3, None),
        claim(0),
        advance(LEASE_MS),
        Op::Rescue, // expiry == now: not yet expired
        advance(1),
        heartbeat(0, LeaseChoice::Current), // late, but nobody took the job: extended
        Op::Rescue,
        advance(LEASE_MS + 1),
        Op::Rescue, // now it runs out: back to queued with a 1 s (+ jitter) backoff
        heartbeat(0, LeaseChoice::Current),
        advance(999),
        claim(1), // not due yet
        advance(251),
        claim(1), // due: attempt 2, token 2
        heartbeat(0, LeaseChoice::Previous),
        heartbeat(0, LeaseChoice::OtherWorker),
        Op::Complete {
            job: nth(0),
            lease: LeaseChoice::Previous,
        },
        Op::Complete {
            job: nth(0),
            lease: LeaseChoice::Current,
        },
    ]);
    let id = m.created[0];
    let job = f.store.get(id).unwrap();
    assert_eq!(job.state, State::Succeeded);
    assert_eq!(job.attempt, 2);
    let events: Vec<String> = f
        .store
        .events(id)
        .unwrap()
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(
        events,
        ["create", "claim", "lease_expired", "claim", "complete"]
    );
}

/// A cancel requested on a running job with uploaded data is acknowledged by the lease
/// running out (`cancelled`, data gone, asked twice gives one event); restarting it waits
/// until no other live job holds its unique key.
#[test]
fn a_cancel_request_acknowledged_by_rescue_then_a_restart_blocked_by_the_unique_key() {
    let (f, m) = run_fixed(&[
        create(true, 2, Some(0)),
        Op::Upload { job: nth(0) },
        Op::Close { job: nth(0) },
        Op::Upload { job: nth(0) }, // the upload phase is over
        claim(2),
        Op::Cancel { job: nth(0) },
        Op::Cancel { job: nth(0) },         // changes nothing
        heartbeat(0, LeaseChoice::Current), // answers cancel_requested
        advance(LEASE_MS + 1),
        Op::Rescue,                  // cancelled, not retried, data deleted
        create(false, 1, Some(0)),   // the key is free again
        Op::Restart { job: nth(0) }, // JobAlreadyRunning: job 2 holds the key
        Op::Cancel { job: nth(1) },
        Op::Restart { job: nth(0) },
        Op::Delete { job: nth(0) }, // queued: refused
        Op::Delete { job: nth(1) },
        Op::Cancel { job: nth(1) }, // deleted: not found
    ]);
    let job = f.store.get(m.created[0]).unwrap();
    assert_eq!(job.state, State::Queued);
    assert_eq!(job.attempt, 0);
    assert_eq!(job.cancel_requested_at, None);
    assert!(f.store.data_batches(job.id).unwrap().is_empty());
    let cancels = f
        .store
        .events(job.id)
        .unwrap()
        .iter()
        .filter(|e| e.event == "cancel")
        .count();
    assert_eq!(cancels, 1);
}

/// Retryable failures back off 1 s, then 2 s (each + up to 25 %), the job that waits its
/// backoff is passed over by a later job that is due, and the last attempt's retryable
/// failure is final.
#[test]
fn retries_back_off_are_claimed_in_run_at_order_and_end_failed() {
    let fail = |retryable| Op::Fail {
        job: nth(0),
        lease: LeaseChoice::Current,
        retryable,
    };
    let (f, m) = run_fixed(&[
        create(false, 3, None),
        claim(0),
        fail(true), // run_at in now + 1000..=1250
        create(false, 3, None),
        Op::Claim { max: 3, worker: 1 }, // only the second job is due
        advance(1250),
        Op::Claim { max: 3, worker: 2 }, // the first, attempt 2
        fail(true),                      // run_at in now + 2000..=2500
        advance(2000),
        Op::Claim { max: 3, worker: 0 },
        advance(500),
        Op::Claim { max: 3, worker: 0 }, // attempt 3
        fail(true),                      // no attempts left: failed
        Op::Restart { job: nth(0) },
        claim(0),
        fail(false), // fatal
    ]);
    let job = f.store.get(m.created[0]).unwrap();
    assert_eq!(job.state, State::Failed);
    assert_eq!(job.attempt, 1);
    let claims = f
        .store
        .events(job.id)
        .unwrap()
        .iter()
        .filter(|e| e.event == "claim")
        .count();
    assert_eq!(claims, 4);
}
