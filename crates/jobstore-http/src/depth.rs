//! Queue depth over time: the daemon samples every tenant's live jobs per queue every
//! [`SAMPLE_INTERVAL`] into a bounded ring ([`SAMPLES_KEPT`] samples: the last hour), kept in
//! memory since the daemon started. The tables keep no history of depth: rebuilding it from
//! `job_events` would read every transition of the window (no index on their time), so the
//! daemon samples instead, at the cost of one read of the per-queue counts the triggers keep
//! (`job_counts`) per sample (docs/dashboard.md has the measurements).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use jobstore::{LiveCount, Scope};

/// How often the daemon samples queue depth.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(10);

/// How many samples are kept: one hour at [`SAMPLE_INTERVAL`].
pub(crate) const SAMPLES_KEPT: usize = 360;

/// One sample: every tenant's live jobs per queue at one time.
#[derive(Debug, Clone)]
struct Sample {
    at: i64,
    counts: Vec<LiveCount>,
}

/// The samples since the daemon started, oldest first, at most [`SAMPLES_KEPT`].
#[derive(Debug)]
pub(crate) struct DepthHistory {
    /// When the daemon started (ms since the Unix epoch).
    pub(crate) since: i64,
    samples: Mutex<VecDeque<Sample>>,
}

/// One queue's live jobs at one sample, as a scope sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QueueAt {
    /// When.
    pub(crate) at: i64,
    /// The queue.
    pub(crate) queue: String,
    /// Jobs queued.
    pub(crate) queued: i64,
    /// Jobs running.
    pub(crate) running: i64,
}

impl DepthHistory {
    /// An empty history starting at `since`.
    pub(crate) fn new(since: i64) -> DepthHistory {
        DepthHistory {
            since,
            samples: Mutex::new(VecDeque::with_capacity(SAMPLES_KEPT)),
        }
    }

    /// Adds a sample taken at `at`, dropping the oldest past [`SAMPLES_KEPT`].
    pub(crate) fn record(&self, at: i64, counts: Vec<LiveCount>) {
        if let Ok(mut samples) = self.samples.lock() {
            if samples.len() >= SAMPLES_KEPT {
                samples.pop_front();
            }
            samples.push_back(Sample { at, counts });
        }
    }

    /// The samples as `scope` sees them: one tenant's queues, or (every tenant) the
    /// tenants' queues of one name summed. Oldest first, by queue within a sample.
    pub(crate) fn view(&self, scope: &Scope) -> Vec<QueueAt> {
        let Ok(samples) = self.samples.lock() else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        for sample in samples.iter() {
            let mut queues: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
            for count in &sample.counts {
                if scope.tenant().is_some_and(|tenant| tenant != count.tenant) {
                    continue;
                }
                let entry = queues.entry(count.queue.as_str()).or_default();
                entry.0 += count.queued;
                entry.1 += count.running;
            }
            rows.extend(
                queues
                    .into_iter()
                    .map(|(queue, (queued, running))| QueueAt {
                        at: sample.at,
                        queue: queue.to_owned(),
                        queued,
                        running,
                    }),
            );
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(tenant: &str, queue: &str, queued: i64) -> LiveCount {
        LiveCount {
            tenant: tenant.into(),
            queue: queue.into(),
            queued,
            running: 1,
        }
    }

    #[test]
    fn the_ring_keeps_the_last_samples_and_each_scope_sees_its_own() {
        let history = DepthHistory::new(0);
        for at in 0..(SAMPLES_KEPT as i64 + 5) {
            history.record(at, vec![count("a", "q", at), count("b", "q", 1)]);
        }
        let all = history.view(&Scope::All);
        assert_eq!(all.len(), SAMPLES_KEPT);
        assert_eq!(all[0].at, 5);
        assert_eq!((all[0].queued, all[0].running), (6, 2));
        let b = history.view(&Scope::Tenant("b".into()));
        assert!(b.iter().all(|row| row.queued == 1 && row.running == 1));
        assert!(history.view(&Scope::Tenant("c".into())).is_empty());
    }
}
