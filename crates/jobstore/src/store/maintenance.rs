//! Maintenance: rescuing jobs whose worker died, purging old finished jobs and abandoned
//! uploads, online backup, integrity check and statistics. Every call works on the database,
//! so it rescues jobs leased by any process, not only this one.

use std::path::Path;

use super::Store;
use super::rows::{backoff_ms, insert_event, lock_job, next_state};
use super::worker_calls::release_lease;
use crate::driver::{EventRow, WriteTx};
use crate::model::{CheckReport, QueueCount};
use crate::state::{Event, State};
use crate::{Error, Result};

/// How many rows one maintenance transaction touches at most, so it never holds the write
/// lock for long.
const MAINTENANCE_BATCH: i64 = 500;

impl Store {
    /// Ends every lease that expired before now, as a retryable failure of its attempt (back
    /// to `queued` with backoff while attempts remain, else `failed`), or as the
    /// acknowledgement of a cancel request (`cancelled`). Answers the ids rescued.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn rescue_expired_leases(&self) -> Result<Vec<i64>> {
        let tenant = self.tenant_filter();
        let (base, max) = self.retry_bounds();
        let mut rescued = Vec::new();
        loop {
            let now = self.now();
            let tenant = tenant.clone();
            let batch = self.write(move |tx| {
                let ids = tx.expired_leases(tenant.as_deref(), now, MAINTENANCE_BATCH)?;
                for id in &ids {
                    let job = lock_job(tx, None, *id)?;
                    let event = Event::LeaseExpired {
                        attempts_left: job.attempt < job.max_attempts,
                        cancel_requested: job.cancel_requested_at.is_some(),
                    };
                    let to = next_state(&job, event)?;
                    let owner = job.lease_owner.clone().unwrap_or_default();
                    let error = format!("lease of worker `{owner}` expired");
                    release_lease(
                        tx,
                        &job,
                        to,
                        now,
                        backoff_ms(job.attempt, base, max),
                        &error,
                    )?;
                    insert_event(
                        tx,
                        &EventRow {
                            job: job.id,
                            at: now,
                            event: event.name(),
                            from: Some(State::Running),
                            to,
                            actor: "",
                            detail: Some(&error),
                        },
                    )?;
                }
                Ok(ids)
            })?;
            let done = batch.len() < usize::try_from(MAINTENANCE_BATCH).unwrap_or(usize::MAX);
            rescued.extend(batch);
            if done {
                break;
            }
        }
        if !rescued.is_empty() {
            log::info!("rescued {} jobs with expired leases", rescued.len());
            self.signal().notify();
        }
        Ok(rescued)
    }

    /// Deletes finished jobs (with their history, steps, data and log) that finished more
    /// than `retention_ms` ago. Answers how many.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn purge_finished(&self, retention_ms: i64) -> Result<u64> {
        let cutoff = self.now().saturating_sub(retention_ms);
        let tenant = self.tenant_filter();
        self.purge_in_batches(move |tx| {
            tx.purge_finished(tenant.as_deref(), cutoff, MAINTENANCE_BATCH)
        })
    }

    /// Deletes jobs still `open` that were created more than `age_ms` ago, with their data
    /// (an upload that was never closed). Answers how many.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn purge_stale_uploads(&self, age_ms: i64) -> Result<u64> {
        let cutoff = self.now().saturating_sub(age_ms);
        let tenant = self.tenant_filter();
        self.purge_in_batches(move |tx| tx.purge_open(tenant.as_deref(), cutoff, MAINTENANCE_BATCH))
    }

    /// Deletes data batches whose upload stopped half way (the uploading process died) and
    /// that have not grown for `idle_ms`. Answers how many.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn purge_incomplete_batches(&self, idle_ms: i64) -> Result<u64> {
        let cutoff = self.now().saturating_sub(idle_ms);
        self.purge_in_batches(move |tx| tx.purge_incomplete_batches(cutoff, MAINTENANCE_BATCH))
    }

    fn purge_in_batches<F>(&self, delete: F) -> Result<u64>
    where
        F: Fn(&mut dyn WriteTx) -> Result<usize> + Send + Sync + Clone + 'static,
    {
        let mut total = 0_u64;
        loop {
            let delete = delete.clone();
            let n = self.write(move |tx| delete(tx))?;
            total += n as u64;
            if (n as i64) < MAINTENANCE_BATCH {
                return Ok(total);
            }
        }
    }

    /// Writes a consistent copy of the database to `dest` (which must not exist) while the
    /// store keeps working (`VACUUM INTO`).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `dest` exists; storage errors.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref();
        if dest.exists() {
            return Err(Error::invalid(
                "backup destination",
                format!("{} already exists", dest.display()),
            ));
        }
        self.inner.driver.backup_to(dest)
    }

    /// Checks the storage (SQLite: `PRAGMA integrity_check`, `foreign_key_check`) and the
    /// store's own invariants across tables.
    ///
    /// # Errors
    /// Storage errors only; problems found are in the report.
    pub fn check(&self) -> Result<CheckReport> {
        Ok(CheckReport {
            problems: self.inner.driver.check()?,
        })
    }

    /// Bounds the engine's log: on SQLite, copies the WAL into the database file and truncates
    /// it, so the WAL stays bounded; on a driver whose server bounds its own, what the driver
    /// logs itself ([`Driver::checkpoint`](crate::driver::Driver::checkpoint)). Answers
    /// whether the checkpoint completed (a long reader can hold it back).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the store was opened with
    /// [`Checkpoints::External`](crate::Checkpoints::External): the replicator owns
    /// checkpoints. Storage errors.
    pub fn checkpoint(&self) -> Result<bool> {
        self.inner.driver.checkpoint()
    }

    /// Proves the store answers: a read on the pool and an empty write through the writer
    /// (the daemon's watchdog pings with it).
    ///
    /// # Errors
    /// Whatever keeps the store from answering.
    pub fn ping(&self) -> Result<()> {
        self.read(|tx| tx.ping())?;
        self.write(|_| Ok(()))
    }

    /// Job counts by queue and state, within the scope: read from `job_counts`, which the
    /// schema's triggers keep in every write, so the cost is the number of tenants, queues
    /// and states, not of jobs.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn stats(&self) -> Result<Vec<QueueCount>> {
        let tenant = self.tenant_filter();
        self.read(|tx| tx.queue_counts(tenant.as_deref()))
    }
}
