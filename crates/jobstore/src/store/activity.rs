//! Summaries of what the jobs are doing, for an operator's overview: jobs created and finished
//! per interval, what waits and runs in each queue, the running jobs (with their workers).
//!
//! Each read counts only the rows it needs, sought one tenant at a time in a `(tenant, …)`
//! index the lists and maintenance already keep (SQLite: `scope_tenants!` in the driver, whose
//! unit test reads each plan): the cost follows the jobs in the time window, or the live jobs,
//! never the size of the table.

use std::collections::BTreeMap;

use super::Store;
use crate::model::{Job, LiveCount, QueueActivity, ThroughputBucket};
use crate::state::State;
use crate::{Error, Result};

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
        self.read(|tx| {
            for (index, jobs) in tx.created_since(tenant.as_deref(), since, bucket_ms)? {
                if let Some(bucket) = usize::try_from(index).ok().and_then(|i| buckets.get_mut(i)) {
                    bucket.created += jobs;
                }
            }
            for finished in tx.finished_since(tenant.as_deref(), since, bucket_ms)? {
                let index = usize::try_from(finished.bucket).ok();
                if let Some(bucket) = index.and_then(|i| buckets.get_mut(i)) {
                    match finished.state {
                        State::Succeeded => bucket.succeeded += finished.jobs,
                        State::Failed => bucket.failed += finished.jobs,
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
        self.read(|tx| {
            for live in tx.live_jobs(tenant.as_deref(), now)? {
                let mut activity = entry(&mut queues, live.queue.clone());
                match live.state {
                    State::Queued => {
                        activity.queued += live.jobs;
                        activity.due += live.due;
                    }
                    _ => activity.running += live.jobs,
                }
                queues.insert(live.queue, activity);
            }
            for oldest in tx.oldest_due(tenant.as_deref(), now)? {
                let (queue, since, id) = (oldest.queue, oldest.run_at, oldest.id);
                let mut activity = entry(&mut queues, queue.clone());
                if activity.oldest_due_since.is_none_or(|known| since < known) {
                    activity.oldest_due_since = Some(since);
                    activity.oldest_due_id = Some(id);
                }
                queues.insert(queue, activity);
            }
            for finished in tx.finished_since(tenant.as_deref(), failed_since, i64::MAX)? {
                if finished.state == State::Failed {
                    let mut activity = entry(&mut queues, finished.queue.clone());
                    activity.failed_since += finished.jobs;
                    queues.insert(finished.queue, activity);
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
        self.read(|tx| {
            for row in tx.live_counts(tenant.as_deref())? {
                let count = counts
                    .entry((row.tenant.clone(), row.queue.clone()))
                    .or_insert_with(|| LiveCount {
                        tenant: row.tenant,
                        queue: row.queue,
                        queued: 0,
                        running: 0,
                    });
                match row.state {
                    State::Queued => count.queued += row.jobs,
                    _ => count.running += row.jobs,
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
        self.read(|tx| tx.running_jobs(tenant.as_deref(), limit))
    }
}
