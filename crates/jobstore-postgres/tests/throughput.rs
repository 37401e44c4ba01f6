//! How many creates and drains (a claim of one job, then its completion) a second the driver
//! sustains on the test server, one caller at a time and several at once. Not a pass/fail
//! test (`#[ignore]`d): a measurement to compare builds on one machine, best in a release
//! build:
//!
//! ```text
//! cargo test --release -p jobstore-postgres --test throughput -- --ignored --nocapture
//! ```
//!
//! `JOBSTORE_THROUGHPUT_JOBS` sets the jobs of each round (2,000 by default). The test
//! server runs with `fsync = off` (`support`): the figures are of round trips and the
//! server's work, not of a disk.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobstore::{ClaimRequest, NewJob, Store, StoreOptions};
use jobstore_postgres::{PostgresDriver, PostgresOptions};
use serde_json::json;

fn jobs() -> usize {
    std::env::var("JOBSTORE_THROUGHPUT_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

/// Creates `jobs` jobs in queue `queue` from `clients` threads at once; answers how long.
fn create(store: &Store, queue: &str, jobs: usize, clients: usize) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for client in 0..clients {
            let share = jobs / clients + usize::from(client < jobs % clients);
            scope.spawn(move || {
                for n in 0..share {
                    store
                        .enqueue(NewJob::new("k").queue(queue).payload(json!({"n": n})))
                        .expect("create");
                }
            });
        }
    });
    started.elapsed()
}

/// Drains queue `queue` with `workers` threads at once, each claiming one job at a time and
/// completing it; answers how long and how many jobs ran.
fn drain(store: &Store, queue: &str, workers: usize) -> (Duration, usize) {
    let started = Instant::now();
    let ran: usize = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    let name = format!("w{worker}");
                    let mut ran = 0;
                    loop {
                        let claimed = store
                            .claim(&ClaimRequest::new(&name, queue))
                            .expect("claim");
                        if claimed.is_empty() {
                            return ran;
                        }
                        for job in claimed {
                            let lease = job.lease().expect("a lease");
                            store
                                .complete(job.id, &lease, json!({"ok": true}))
                                .expect("complete");
                            ran += 1;
                        }
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("a worker"))
            .sum()
    });
    (started.elapsed(), ran)
}

fn per_second(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

#[test]
#[ignore = "a measurement, not a check: run it with --ignored --nocapture"]
fn creates_and_drains_a_second() {
    let url = support::fresh_database();
    let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("connect");
    let store = Store::with_driver(Arc::new(driver), StoreOptions::default());
    let jobs = jobs();
    for (clients, workers) in [(1, 1), (8, 4)] {
        let queue = format!("q{clients}");
        let took = create(&store, &queue, jobs, clients);
        println!(
            "creates, {clients} client(s): {:.0}/s ({jobs} in {took:.2?})",
            per_second(jobs, took)
        );
        let (took, ran) = drain(&store, &queue, workers);
        assert_eq!(ran, jobs, "every job ran once");
        println!(
            "drains (claim + complete), {workers} worker(s): {:.0}/s ({ran} in {took:.2?})",
            per_second(ran, took)
        );
    }
}
