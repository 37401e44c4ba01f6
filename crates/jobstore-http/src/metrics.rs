//! Prometheus metrics: jobs by queue and state, requests by route and status, claim latency,
//! and the writer's group commits. Names start with `jobstore_`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use jobstore::{QueueCount, WriterStats};

/// Upper bounds of the claim latency histogram, in seconds.
const CLAIM_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Default)]
struct Histogram {
    /// Observations at or below each bucket bound (not cumulative; summed when rendered).
    buckets: [u64; CLAIM_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The daemon's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
    claim: Mutex<Histogram>,
    claims_waiting: AtomicU64,
    claim_wakeups: AtomicU64,
}

/// Counts a claim as waiting for jobs until dropped.
pub(crate) struct Waiting<'a>(&'a AtomicU64);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn count_request(&self, route: &'static str, method: &Method, status: StatusCode) {
        if let Ok(mut requests) = self.requests.lock() {
            *requests
                .entry((route, method_label(method), status.as_u16()))
                .or_default() += 1;
        }
    }

    /// Counts a claim as waiting (long-polling for jobs) while the guard lives.
    pub(crate) fn claim_waiting(&self) -> Waiting<'_> {
        self.claims_waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(&self.claims_waiting)
    }

    /// Counts a waiting claim that a wake-up answered with jobs.
    pub(crate) fn count_claim_wakeup(&self) {
        self.claim_wakeups.fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one claim took in the store.
    pub(crate) fn observe_claim(&self, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Ok(mut histogram) = self.claim.lock() {
            if let Some(index) = CLAIM_BUCKETS.iter().position(|bound| seconds <= *bound) {
                histogram.buckets[index] += 1;
            }
            histogram.count += 1;
            histogram.sum += seconds;
        }
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self, jobs: &[QueueCount], writer: WriterStats) -> String {
        let mut out = String::new();
        out.push_str("# HELP jobstore_jobs Jobs by queue and state.\n# TYPE jobstore_jobs gauge\n");
        for row in jobs {
            let _ = writeln!(
                out,
                "jobstore_jobs{{queue=\"{}\",state=\"{}\"}} {}",
                escape(&row.queue),
                row.state,
                row.jobs
            );
        }
        out.push_str(
            "# HELP jobstore_http_requests_total HTTP requests answered, by route, method and status.\n\
             # TYPE jobstore_http_requests_total counter\n",
        );
        if let Ok(requests) = self.requests.lock() {
            for ((route, method, status), count) in requests.iter() {
                let _ = writeln!(
                    out,
                    "jobstore_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                    escape(route)
                );
            }
        }
        out.push_str(
            "# HELP jobstore_claim_duration_seconds Time one claim took in the store.\n\
             # TYPE jobstore_claim_duration_seconds histogram\n",
        );
        if let Ok(histogram) = self.claim.lock() {
            let mut cumulative = 0;
            for (bound, count) in CLAIM_BUCKETS.iter().zip(histogram.buckets.iter()) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "jobstore_claim_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "jobstore_claim_duration_seconds_bucket{{le=\"+Inf\"}} {}\n\
                 jobstore_claim_duration_seconds_sum {}\n\
                 jobstore_claim_duration_seconds_count {}",
                histogram.count, histogram.sum, histogram.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP jobstore_claims_waiting Claims long-polling for jobs now.\n\
             # TYPE jobstore_claims_waiting gauge\n\
             jobstore_claims_waiting {}\n\
             # HELP jobstore_claim_wakeups_total Waiting claims that a wake-up answered with jobs.\n\
             # TYPE jobstore_claim_wakeups_total counter\n\
             jobstore_claim_wakeups_total {}",
            self.claims_waiting.load(Ordering::Relaxed),
            self.claim_wakeups.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                "jobstore_writer_writes_total",
                "Writes committed by the writer thread.",
                writer.writes,
            ),
            (
                "jobstore_writer_commits_total",
                "Transactions committed by the writer thread (each a group of writes).",
                writer.commits,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out
    }
}

/// A request's method as a label: one of the standard methods, or `other`. Any token is a
/// method to HTTP, and a refused request is counted too: a label per method sent would let
/// any client, without a token, grow the counters (and every scrape) without bound.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.count_request("/v1/jobs", &Method::POST, StatusCode::CREATED);
        metrics.count_request("/v1/jobs", &Method::POST, StatusCode::CREATED);
        metrics.observe_claim(Duration::from_micros(300));
        metrics.observe_claim(Duration::from_millis(20));
        let text = metrics.render(
            &[QueueCount {
                queue: "a\"b".into(),
                state: jobstore::State::Queued,
                jobs: 3,
            }],
            WriterStats {
                writes: 5,
                commits: 2,
            },
        );
        assert!(
            text.contains(r#"jobstore_jobs{queue="a\"b",state="queued"} 3"#),
            "{text}"
        );
        assert!(text.contains(
            r#"jobstore_http_requests_total{route="/v1/jobs",method="POST",status="201"} 2"#
        ));
        assert!(text.contains(r#"jobstore_claim_duration_seconds_bucket{le="0.0005"} 1"#));
        assert!(text.contains(r#"jobstore_claim_duration_seconds_bucket{le="0.025"} 2"#));
        assert!(text.contains(r#"jobstore_claim_duration_seconds_bucket{le="+Inf"} 2"#));
        assert!(text.contains("jobstore_writer_commits_total 2"));
    }

    /// Methods outside the standard ones share one label, however many a client invents.
    #[test]
    fn invented_methods_share_one_label() {
        let metrics = Metrics::default();
        for n in 0..1000 {
            let method = Method::from_bytes(format!("M{n}{}", "X".repeat(100)).as_bytes())
                .expect("a method token");
            metrics.count_request("/healthz", &method, StatusCode::METHOD_NOT_ALLOWED);
        }
        metrics.count_request("/healthz", &Method::GET, StatusCode::OK);
        let text = metrics.render(&[], WriterStats::default());
        let series: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("jobstore_http_requests_total{"))
            .collect();
        assert_eq!(
            series,
            [
                r#"jobstore_http_requests_total{route="/healthz",method="GET",status="200"} 1"#,
                r#"jobstore_http_requests_total{route="/healthz",method="other",status="405"} 1000"#,
            ]
        );
    }
}
