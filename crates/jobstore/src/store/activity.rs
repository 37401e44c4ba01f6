//! Summaries of what the jobs are doing, for an operator's overview: jobs created and finished
//! per interval, what waits and runs in each queue, the running jobs (with their workers).
//!
//! Each statement reads only the rows it counts, sought one tenant at a time
//! (`scope_tenants!`) in a `(tenant, …)` index the lists and maintenance already keep: the
//! cost follows the jobs in the time window, or the live jobs, never the size of the table.
//! A unit test reads each plan. Statements are constants; every value is bound.

use std::collections::BTreeMap;

use rusqlite::params;

use super::Store;
use super::rows::{JOB_COLUMNS, job_from_row};
use crate::model::{Job, LiveCount, QueueActivity, ThroughputBucket};
use crate::{Error, Result};

/// Jobs of `?2`'s scope created at or after `?1`, counted per `?3` ms from `?1`.
const CREATED_SINCE: &str = concat!(
    scope_tenants!(),
    "SELECT (jobs.created_at - ?1) / ?3, count(*) \
     FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_created \
     WHERE jobs.tenant = tenants.name AND jobs.created_at >= ?1 GROUP BY 1"
);

/// Jobs of `?2`'s scope that finished at or after `?1`, counted per `?3` ms from `?1`, by
/// state and queue (only the jobs finished in the window are read).
const FINISHED_SINCE: &str = concat!(
    scope_tenants!(),
    "SELECT (ifnull(jobs.finished_at, -1) - ?1) / ?3, jobs.state, jobs.queue, count(*) \
     FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_finished \
     WHERE jobs.tenant = tenants.name AND ifnull(jobs.finished_at, -1) >= ?1 \
     GROUP BY 1, 2, 3"
);

/// The live jobs of `?2`'s scope by tenant, queue and state; with the number due at `?1`
/// (which `job_counts` cannot tell).
const LIVE: &str = concat!(
    scope_tenants!(),
    "SELECT jobs.tenant, jobs.queue, jobs.state, count(*), sum(jobs.run_at <= ?1) \
     FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_state \
     WHERE jobs.tenant = tenants.name AND jobs.state IN ('queued', 'running') \
     GROUP BY 1, 2, 3"
);

/// Per tenant and queue of `?2`'s scope, the due queued job (`run_at <= ?1`) with the smallest
/// `run_at` (SQLite takes a bare column from the row of the one `min()`).
const OLDEST_DUE: &str = concat!(
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
const RUNNING_IDS: &str = concat!(
    scope_tenants!(),
    "SELECT jobs.id FROM tenants CROSS JOIN jobs INDEXED BY jobs_by_tenant_state \
     WHERE jobs.tenant = tenants.name AND jobs.state = 'running' LIMIT ?1"
);

/// The most intervals [`Store::throughput`] answers.
pub const MAX_THROUGHPUT_BUCKETS: i64 = 10_000;

impl Store {
    /// Jobs created, succeeded and failed in each interval of `bucket_ms` from `since` up to
    /// now, oldest first (intervals without jobs included). A job counts where it is now: a
    /// deleted or purged job no longer counts, a restarted one counts only once it ends
    /// again, and a retried attempt is not a failure until the last one.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for `bucket_ms` below one second or more than
    /// [`MAX_THROUGHPUT_BUCKETS`] intervals; storage errors.
    pub fn throughput(&self, since: i64, bucket_ms: i64) -> Result<Vec<ThroughputBucket>> {
        let now = self.now();
        if bucket_ms < 1000 {
            return Err(Error::InvalidInput {
                field: "bucket_ms".into(),
                reason: "at least 1000".into(),
            });
        }
        let count = if now < since {
            0
        } else {
            (now - since) / bucket_ms + 1
        };
        if count > MAX_THROUGHPUT_BUCKETS {
            return Err(Error::InvalidInput {
                field: "since".into(),
                reason: format!("at most {MAX_THROUGHPUT_BUCKETS} intervals"),
            });
        }
        let mut buckets: Vec<ThroughputBucket> = (0..count)
            .map(|i| ThroughputBucket {
                start: since + i * bucket_ms,
                created: 0,
                succeeded: 0,
                failed: 0,
            })
            .collect();
        let tenant = self.tenant_filter();
        self.read(|conn| {
            let mut created = conn.prepare_cached(CREATED_SINCE)?;
            let rows = created.query_map(params![since, tenant, bucket_ms], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (index, jobs) = row?;
                if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
                    bucket.created += jobs;
                }
            }
            let mut finished = conn.prepare_cached(FINISHED_SINCE)?;
            let rows = finished.query_map(params![since, tenant, bucket_ms], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (index, state, jobs) = row?;
                if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
                    match state.as_str() {
                        "succeeded" => bucket.succeeded += jobs,
                        "failed" => bucket.failed += jobs,
                        _ => {}
                    }
                }
            }
            Ok(())
        })?;
        Ok(buckets)
    }

    /// Every queue with live jobs or with jobs failed since `failed_since`: how many are
    /// queued (and of those due), running and failed, and the due job that has waited
    /// longest; by queue name. Under [`Scope::All`](crate::Scope::All) the tenants' queues of
    /// one name are summed.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn queue_activity(&self, failed_since: i64) -> Result<Vec<QueueActivity>> {
        let now = self.now();
        let tenant = self.tenant_filter();
        let mut queues: BTreeMap<String, QueueActivity> = BTreeMap::new();
        let entry = |queues: &mut BTreeMap<String, QueueActivity>, queue: String| {
            queues
                .entry(queue.clone())
                .or_insert_with(|| QueueActivity {
                    queue,
                    queued: 0,
                    due: 0,
                    running: 0,
                    failed_since: 0,
                    oldest_due_id: None,
                    oldest_due_since: None,
                })
                .clone()
        };
        self.read(|conn| {
            for live in live_rows(conn, now, tenant.as_deref())? {
                let mut activity = entry(&mut queues, live.queue.clone());
                match live.state.as_str() {
                    "queued" => {
                        activity.queued += live.jobs;
                        activity.due += live.due;
                    }
                    _ => activity.running += live.jobs,
                }
                queues.insert(live.queue, activity);
            }
            let mut oldest = conn.prepare_cached(OLDEST_DUE)?;
            let rows = oldest.query_map(params![now, tenant], |row| {
                Ok((
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (queue, since, id) = row?;
                let mut activity = entry(&mut queues, queue.clone());
                if activity.oldest_due_since.is_none_or(|known| since < known) {
                    activity.oldest_due_since = Some(since);
                    activity.oldest_due_id = Some(id);
                }
                queues.insert(queue, activity);
            }
            let mut finished = conn.prepare_cached(FINISHED_SINCE)?;
            let rows = finished.query_map(params![failed_since, tenant, i64::MAX], |row| {
                Ok((
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (state, queue, jobs) = row?;
                if state == "failed" {
                    let mut activity = entry(&mut queues, queue.clone());
                    activity.failed_since += jobs;
                    queues.insert(queue, activity);
                }
            }
            Ok(())
        })?;
        Ok(queues.into_values().collect())
    }

    /// The jobs queued and running in each tenant's queue, by tenant and queue (what the
    /// daemon samples to draw queue depth over time). Read from `job_counts`, which the
    /// triggers keep: its cost follows the tenants, queues and states, not the jobs.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn live_counts(&self) -> Result<Vec<LiveCount>> {
        let tenant = self.tenant_filter();
        let mut counts: BTreeMap<(String, String), LiveCount> = BTreeMap::new();
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(LIVE_COUNTS)?;
            let rows = stmt.query_map(params![tenant], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            })?;
            for row in rows {
                let (tenant, queue, state, jobs) = row?;
                let count = counts
                    .entry((tenant.clone(), queue.clone()))
                    .or_insert_with(|| LiveCount {
                        tenant,
                        queue,
                        queued: 0,
                        running: 0,
                    });
                match state.as_str() {
                    "queued" => count.queued += jobs,
                    _ => count.running += jobs,
                }
            }
            Ok(())
        })?;
        Ok(counts.into_values().collect())
    }

    /// Up to `limit` running jobs, by worker (`lease_owner`) then id.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a `limit` of 0 or above [`crate::MAX_PAGE_SIZE`]; storage
    /// errors.
    pub fn running_jobs(&self, limit: u32) -> Result<Vec<Job>> {
        if limit == 0 || limit > crate::MAX_PAGE_SIZE {
            return Err(Error::InvalidInput {
                field: "limit".into(),
                reason: format!("1 to {}", crate::MAX_PAGE_SIZE),
            });
        }
        let tenant = self.tenant_filter();
        // Built from constants only.
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE id IN ({RUNNING_IDS}) ORDER BY lease_owner, id"
        );
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let jobs = stmt
                .query_map(params![limit, tenant], job_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(jobs)
        })
    }
}

/// One row of [`LIVE`].
struct LiveRow {
    queue: String,
    state: String,
    jobs: i64,
    due: i64,
}

fn live_rows(conn: &rusqlite::Connection, now: i64, tenant: Option<&str>) -> Result<Vec<LiveRow>> {
    let mut stmt = conn.prepare_cached(LIVE)?;
    let rows = stmt
        .query_map(params![now, tenant], |row| {
            Ok(LiveRow {
                queue: row.get(1)?,
                state: row.get(2)?,
                jobs: row.get(3)?,
                due: row.get::<_, Option<i64>>(4)?.unwrap_or(0),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::{CREATED_SINCE, FINISHED_SINCE, LIVE, OLDEST_DUE, RUNNING_IDS};
    use crate::Store;

    /// The query plan of `sql` (every detail line) with `params`.
    fn plan(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        stmt.query_map(params, |row| row.get::<_, String>(3))
            .expect("plan")
            .collect::<rusqlite::Result<Vec<_>>>()
            .expect("plan rows")
    }

    #[test]
    fn each_summary_seeks_each_tenant_in_an_index_and_never_scans_the_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.db");
        drop(Store::open(&path).expect("open"));
        let conn = rusqlite::Connection::open(&path).expect("connection");
        // Enough rows in several tenants and states, with statistics, for the planner to
        // choose freely.
        conn.execute_batch(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) \
             INSERT INTO jobs (tenant, kind, queue, state, run_at, created_at, updated_at, \
                               finished_at) \
             SELECT 't' || (i % 5), 'k', 'q' || (i % 3), \
                    CASE WHEN i % 10 = 0 THEN 'queued' ELSE 'succeeded' END, \
                    i, i, i, CASE WHEN i % 10 = 0 THEN NULL ELSE i END FROM n; ANALYZE;",
        )
        .expect("rows");
        for tenant in [None, Some("t1")] {
            for (sql, index, plan) in [
                (
                    "created",
                    "jobs_by_tenant_created (tenant=? AND created_at>?)",
                    plan(&conn, CREATED_SINCE, rusqlite::params![0, tenant, 60_000]),
                ),
                (
                    "finished",
                    "jobs_by_tenant_finished (tenant=? AND <expr>>?)",
                    plan(&conn, FINISHED_SINCE, rusqlite::params![0, tenant, 60_000]),
                ),
                (
                    "live",
                    "jobs_by_tenant_state (tenant=? AND state=?)",
                    plan(&conn, LIVE, rusqlite::params![0, tenant]),
                ),
                (
                    "oldest",
                    "jobs_by_tenant_state (tenant=? AND state=?)",
                    plan(&conn, OLDEST_DUE, rusqlite::params![0, tenant]),
                ),
                (
                    "running",
                    "jobs_by_tenant_state (tenant=? AND state=?)",
                    plan(&conn, RUNNING_IDS, rusqlite::params![10, tenant]),
                ),
            ] {
                assert!(
                    plan.iter().any(|line| line.contains(index)),
                    "{sql} ({tenant:?}): {index} unused: {plan:?}"
                );
                assert!(
                    !plan
                        .iter()
                        .any(|line| line.starts_with("SCAN jobs") || line.contains("AUTOMATIC")),
                    "{sql} ({tenant:?}): a scan of the jobs: {plan:?}"
                );
            }
        }
    }
}
