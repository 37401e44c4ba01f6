//! Maintenance: rescuing jobs whose worker died, purging old finished jobs and abandoned
//! uploads, online backup, integrity check and statistics. Every call works on the file, so
//! it rescues jobs leased by any process, not only this one.

use std::path::Path;

use rusqlite::params;

use super::Store;
use super::rows::{EventRow, backoff_ms, insert_event, load_job, next_state};
use super::worker_calls::release_lease;
use crate::Checkpoints;
use crate::model::{CheckReport, QueueCount};
use crate::state::{Event, State};
use crate::{Error, Result};

/// Running jobs whose lease expired before `?1`, in `?2`'s scope, oldest expiry first, `?3` at
/// most.
const EXPIRED_LEASES: &str = concat!(
    scope_tenants!(),
    "SELECT jobs.id FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_state \
     WHERE jobs.tenant = tenants.name AND jobs.state = 'running' AND jobs.lease_expires_at < ?1 \
     ORDER BY jobs.lease_expires_at LIMIT ?3"
);

/// Deletes up to `?3` jobs of `?2`'s scope that finished before `?1`.
const PURGE_FINISHED: &str = concat!(
    "DELETE FROM jobs WHERE id IN (",
    scope_tenants!(),
    "SELECT jobs.id FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_finished \
     WHERE jobs.tenant = tenants.name AND ifnull(jobs.finished_at, -1) >= 0 AND ifnull(jobs.finished_at, -1) < ?1 LIMIT ?3)"
);

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
            let batch = self.write(move |conn| {
                let ids = conn
                    .prepare_cached(EXPIRED_LEASES)?
                    .query_map(params![now, tenant, MAINTENANCE_BATCH], |row| row.get(0))?
                    .collect::<rusqlite::Result<Vec<i64>>>()?;
                for id in &ids {
                    let job = load_job(conn, None, *id)?;
                    let event = Event::LeaseExpired {
                        attempts_left: job.attempt < job.max_attempts,
                        cancel_requested: job.cancel_requested_at.is_some(),
                    };
                    let to = next_state(&job, event)?;
                    let owner = job.lease_owner.clone().unwrap_or_default();
                    let error = format!("lease of worker `{owner}` expired");
                    release_lease(
                        conn,
                        &job,
                        to,
                        now,
                        backoff_ms(job.attempt, base, max),
                        &error,
                    )?;
                    insert_event(
                        conn,
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
        self.purge_in_batches(move |conn| {
            Ok(conn.prepare_cached(PURGE_FINISHED)?.execute(params![
                cutoff,
                tenant,
                MAINTENANCE_BATCH
            ])?)
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
        let state = State::Open.as_str();
        self.purge_in_batches(move |conn| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = ?1 \
                     AND created_at < ?2 AND (?3 IS NULL OR tenant = ?3) LIMIT ?4)",
                )?
                .execute(params![state, cutoff, tenant, MAINTENANCE_BATCH])?)
        })
    }

    /// Deletes data batches whose upload stopped half way (the uploading process died) and
    /// that have not grown for `idle_ms`. Answers how many.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn purge_incomplete_batches(&self, idle_ms: i64) -> Result<u64> {
        let cutoff = self.now().saturating_sub(idle_ms);
        self.purge_in_batches(move |conn| {
            Ok(conn
                .prepare_cached(
                    "DELETE FROM job_data_batches WHERE rowid IN (SELECT rowid FROM \
                     job_data_batches WHERE complete = 0 AND updated_at < ?1 LIMIT ?2)",
                )?
                .execute(params![cutoff, MAINTENANCE_BATCH])?)
        })
    }

    fn purge_in_batches<F>(&self, delete: F) -> Result<u64>
    where
        F: Fn(&rusqlite::Connection) -> Result<usize> + Send + Sync + Clone + 'static,
    {
        let mut total = 0_u64;
        loop {
            let delete = delete.clone();
            let n = self.write(move |conn| delete(conn))?;
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
        let dest = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup destination", "path is not valid utf-8"))?
            .to_owned();
        self.read(|conn| {
            conn.execute("VACUUM INTO ?1", params![dest])?;
            Ok(())
        })
    }

    /// Checks the file (`PRAGMA integrity_check`, `foreign_key_check`) and the store's own
    /// invariants across tables.
    ///
    /// # Errors
    /// Storage errors only; problems found are in the report.
    pub fn check(&self) -> Result<CheckReport> {
        self.read(|conn| {
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
            Ok(CheckReport { problems })
        })
    }

    /// Copies the WAL into the database file and truncates it, so the WAL stays bounded.
    /// Answers whether the checkpoint completed (a long reader can hold it back).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the store was opened with [`Checkpoints::External`]: the
    /// replicator owns checkpoints. Storage errors.
    pub fn checkpoint(&self) -> Result<bool> {
        if self.options().checkpoints == Checkpoints::External {
            return Err(Error::invalid(
                "checkpoint",
                "checkpoints are left to the replicator (Checkpoints::External)",
            ));
        }
        self.read(|conn| {
            let busy: i64 =
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
            Ok(busy == 0)
        })
    }

    /// Proves the store answers: a read on the pool and an empty write through the writer
    /// (the daemon's watchdog pings with it).
    ///
    /// # Errors
    /// Whatever keeps the store from answering.
    pub fn ping(&self) -> Result<()> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))?;
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
        self.read(|conn| {
            let rows = conn
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
        })
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

#[cfg(test)]
mod tests {
    use super::{EXPIRED_LEASES, PURGE_FINISHED};
    use crate::Store;

    /// The query plan of `sql` (every detail line), on the store's current schema.
    fn plan(conn: &rusqlite::Connection, sql: &str, tenant: Option<&str>) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        stmt.query_map(rusqlite::params![0, tenant, 10], |row| {
            row.get::<_, String>(3)
        })
        .expect("plan")
        .collect::<rusqlite::Result<Vec<_>>>()
        .expect("plan rows")
    }

    #[test]
    fn rescue_and_purge_seek_each_tenant_and_never_scan_the_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.db");
        drop(Store::open(&path).expect("open"));
        let conn = rusqlite::Connection::open(&path).expect("connection");
        // Enough rows in several tenants, with statistics, for the planner to choose freely.
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
             INSERT INTO jobs (tenant, kind, state, run_at, created_at, updated_at, finished_at) \
             SELECT 't' || (i % 5), 'k', 'succeeded', i, i, i, i FROM n; ANALYZE;",
        )
        .expect("rows");
        for (sql, index) in [
            (
                EXPIRED_LEASES,
                "jobs_by_tenant_state (tenant=? AND state=?)",
            ),
            (PURGE_FINISHED, "jobs_by_tenant_finished (tenant=?"),
        ] {
            for tenant in [None, Some("t1")] {
                let plan = plan(&conn, sql, tenant);
                assert!(
                    plan.iter().any(|line| line.contains(index)),
                    "{index} unused: {plan:?}"
                );
                assert!(
                    !plan
                        .iter()
                        .any(|line| line.starts_with("SCAN jobs") || line.contains("AUTOMATIC")),
                    "a scan of the jobs: {plan:?}"
                );
            }
        }
    }
}
