//! Scenarios 7 and 8 on PostgreSQL: enqueue and drain through jobstore's PostgreSQL driver
//! (`Store::with_driver`), and through raw PostgreSQL running the driver's statements with one
//! transaction per call from the same number of threads (a connection each). Every case runs
//! in a fresh database of the run's own server, after a `CHECKPOINT`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobstore::{ClaimRequest, Completion, NewJob, Worker};
use serde_json::json;

use crate::common::{Record, Result, fail, micros_since, percentiles};
use crate::drain::on_workers;
use crate::enqueue::on_threads;
use crate::pg::{self, Raw};

/// How the PostgreSQL scenarios run.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// The server, `postgres://user@host:port` (no database).
    pub base: String,
    /// Jobs per case.
    pub jobs: u64,
    /// Batch sizes of the batched enqueue cases.
    pub batches: Vec<u64>,
    /// Worker counts of the drain.
    pub workers: Vec<u64>,
    /// `max` of each claim.
    pub claim_batch: u32,
    /// A case stops after this long and reports how far it got.
    pub cap: Duration,
    /// Run the embedded `Worker` drain too.
    pub worker: bool,
}

fn job(i: u64) -> NewJob {
    NewJob::new("bench").payload(json!({ "n": i }))
}

fn case_single(threads: u64) -> String {
    if threads == 1 {
        "1 thread, one job per call".into()
    } else {
        format!("{threads} threads, one job per call")
    }
}

/// A fresh database for one case, its schema made by the driver's migration, checkpointed.
fn fresh(config: &PgConfig, name: &str) -> Result<String> {
    let url = pg::fresh_database(&config.base, name)?;
    pg::create_schema(&url)?;
    pg::checkpoint(&config.base)?;
    Ok(url)
}

/// Scenario 7: enqueue, one job per call from 1 and 8 threads, and in batches.
pub fn enqueue(config: &PgConfig) -> Result<()> {
    for threads in [1_u64, 8] {
        jobstore_single(config, threads)?;
        raw_single(config, threads)?;
    }
    for &batch in &config.batches {
        jobstore_batched(config, batch)?;
        raw_batched(config, batch)?;
    }
    Ok(())
}

fn jobstore_single(config: &PgConfig, threads: u64) -> Result<()> {
    let url = fresh(config, "bench_jobstore")?;
    let store = pg::open_store(&url)?;
    let before = store.writer_stats();
    let shared = store.clone();
    let (n, elapsed) = on_threads(threads, config.jobs, config.cap, move |t, count, stop| {
        let mut done = 0;
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            shared.enqueue(job(t * 1_000_000_000 + i))?;
            done += 1;
        }
        Ok(done)
    })?;
    let after = store.writer_stats();
    let commits = after.commits - before.commits;
    Record::new("pg_enqueue", "jobstore", &case_single(threads))
        .set("threads", threads)
        .timed(n, elapsed)
        .set("capped", n < config.jobs)
        .set("commits", commits)
        .set(
            "writes_per_commit",
            ((after.writes - before.writes) as f64 / commits.max(1) as f64 * 10.0).round() / 10.0,
        )
        .emit();
    drop(store);
    pg::emit_store_settings(
        "jobstore",
        &url,
        "SHOW on a connection to its database (the driver sets none on its connections)",
    )?;
    pg::drop_database(&config.base, "bench_jobstore")
}

fn raw_single(config: &PgConfig, threads: u64) -> Result<()> {
    let url = fresh(config, "bench_raw")?;
    let shared = url.clone();
    let (n, elapsed) = on_threads(threads, config.jobs, config.cap, move |t, count, stop| {
        let mut raw = Raw::connect(&shared)?;
        let mut done = 0;
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let payload = json!({ "n": t * 1_000_000_000 + i }).to_string();
            raw.in_transaction(|tx, s| pg::insert_job(tx, s, crate::raw::now_ms(), &payload))?;
            done += 1;
        }
        Ok(done)
    })?;
    let case = if threads == 1 {
        "1 thread, one transaction per job".to_owned()
    } else {
        format!("{threads} threads (a connection each), one transaction per job")
    };
    Record::new("pg_enqueue", "raw", &case)
        .set("threads", threads)
        .timed(n, elapsed)
        .set("capped", n < config.jobs)
        .set("commits", n)
        .emit();
    pg::emit_store_settings("raw", &url, "SHOW on its own connection")?;
    pg::drop_database(&config.base, "bench_raw")
}

fn jobstore_batched(config: &PgConfig, batch: u64) -> Result<()> {
    let url = fresh(config, "bench_jobstore")?;
    let store = pg::open_store(&url)?;
    let start = Instant::now();
    let mut n = 0;
    while n < config.jobs && start.elapsed() < config.cap {
        let size = batch.min(config.jobs - n);
        store.enqueue_many((n..n + size).map(job).collect())?;
        n += size;
    }
    let elapsed = start.elapsed();
    Record::new(
        "pg_enqueue",
        "jobstore",
        &format!("1 thread, batches of {batch}"),
    )
    .set("threads", 1)
    .set("batch", batch)
    .timed(n, elapsed)
    .set("capped", n < config.jobs)
    .emit();
    drop(store);
    pg::drop_database(&config.base, "bench_jobstore")
}

fn raw_batched(config: &PgConfig, batch: u64) -> Result<()> {
    let url = fresh(config, "bench_raw")?;
    let mut raw = Raw::connect(&url)?;
    let start = Instant::now();
    let mut n = 0;
    while n < config.jobs && start.elapsed() < config.cap {
        let size = batch.min(config.jobs - n);
        let payloads: Vec<String> = (n..n + size)
            .map(|i| json!({ "n": i }).to_string())
            .collect();
        raw.in_transaction(|tx, s| pg::insert_jobs(tx, s, crate::raw::now_ms(), &payloads))?;
        n += size;
    }
    let elapsed = start.elapsed();
    Record::new(
        "pg_enqueue",
        "raw",
        &format!("1 thread, batches of {batch}"),
    )
    .set("threads", 1)
    .set("batch", batch)
    .timed(n, elapsed)
    .set("capped", n < config.jobs)
    .emit();
    drop(raw);
    pg::drop_database(&config.base, "bench_raw")
}

/// How the claim-API cases acknowledge what they claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// One complete per job (one transaction each).
    PerJob,
    /// The whole claim in one call (one transaction).
    PerClaim,
}

/// How one drain case ended.
struct Outcome {
    done: u64,
    elapsed: Duration,
    commits: Option<(u64, u64)>,
    latencies: Vec<u64>,
    /// Calls (jobstore) or transactions (raw) run again after losing a deadlock.
    deadlocks: u64,
}

/// Calls `call` again whenever it answers PostgreSQL's "deadlock detected" (a write of the
/// store that was rolled back), counting each in `deadlocks`, until `stop` is set: then it
/// answers `None` and the worker ends. The driver retries its claims itself; any other write
/// that lost a deadlock is answered to its caller.
fn retried<T>(
    deadlocks: &AtomicU64,
    stop: &AtomicBool,
    mut call: impl FnMut() -> jobstore::Result<T>,
) -> Result<Option<T>> {
    loop {
        match call() {
            Ok(value) => return Ok(Some(value)),
            Err(err) if pg::is_deadlock(&err) => {
                deadlocks.fetch_add(1, Ordering::Relaxed);
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
}

fn emit_drain(config: &PgConfig, store: &str, case: &str, workers: u64, mut outcome: Outcome) {
    let mut record = Record::new("pg_drain", store, case)
        .set("workers", workers)
        .set("claim_batch", config.claim_batch)
        .timed(outcome.done, outcome.elapsed)
        .set("capped", outcome.done < config.jobs);
    if let Some((writes, commits)) = outcome.commits {
        record = record.set("commits", commits).set(
            "writes_per_commit",
            (writes as f64 / commits.max(1) as f64 * 10.0).round() / 10.0,
        );
    }
    if !outcome.latencies.is_empty() {
        let (p50, p99) = percentiles(&mut outcome.latencies);
        record = record
            .set("complete_p50_us", p50)
            .set("complete_p99_us", p99);
    }
    record.set("deadlocks_retried", outcome.deadlocks).emit();
}

/// Scenario 8: drain N queued jobs with 1, 2, 4, 8 workers.
pub fn drain(config: &PgConfig) -> Result<()> {
    let url = fresh(config, "bench_plan")?;
    pg::seed(&url, config.jobs)?;
    pg::emit_claim_plan(&url, config.jobs, config.claim_batch)?;
    pg::drop_database(&config.base, "bench_plan")?;
    for &workers in &config.workers {
        for ack in [Ack::PerJob, Ack::PerClaim] {
            let url = fresh(config, "bench_jobstore")?;
            pg::seed(&url, config.jobs)?;
            pg::checkpoint(&config.base)?;
            let store = pg::open_store(&url)?;
            let outcome = drain_jobstore(&store, workers, config, ack)?;
            let (name, case) = match ack {
                Ack::PerJob => ("jobstore", "Store::claim + Store::complete per job"),
                Ack::PerClaim => (
                    "jobstore (complete_many)",
                    "Store::claim + Store::complete_many per claim",
                ),
            };
            emit_drain(config, name, case, workers, outcome);
            drop(store);
            pg::drop_database(&config.base, "bench_jobstore")?;

            let url = fresh(config, "bench_raw")?;
            pg::seed(&url, config.jobs)?;
            pg::checkpoint(&config.base)?;
            let outcome = drain_raw(&url, workers, config, ack)?;
            let (name, case) = match ack {
                Ack::PerJob => (
                    "raw",
                    "same statements, one transaction per claim and per complete, a connection per worker",
                ),
                Ack::PerClaim => (
                    "raw (complete_many)",
                    "same statements, one transaction per claim and per claim's completes, a connection per worker",
                ),
            };
            emit_drain(config, name, case, workers, outcome);
            pg::drop_database(&config.base, "bench_raw")?;
        }
        if config.worker {
            let url = fresh(config, "bench_worker")?;
            let watermark = pg::seed(&url, config.jobs)?;
            pg::checkpoint(&config.base)?;
            let store = pg::open_store(&url)?;
            let outcome = drain_worker(&store, &url, watermark, workers, config)?;
            emit_drain(
                config,
                "jobstore Worker",
                "embedded Worker, concurrency N, prefetch = the claim batch",
                workers,
                outcome,
            );
            drop(store);
            pg::drop_database(&config.base, "bench_worker")?;
        }
    }
    Ok(())
}

fn drain_jobstore(
    store: &jobstore::Store,
    workers: u64,
    config: &PgConfig,
    ack: Ack,
) -> Result<Outcome> {
    let before = store.writer_stats();
    let shared = store.clone();
    let max = config.claim_batch;
    let deadlocks = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&deadlocks);
    let (done, latencies, elapsed) = on_workers(workers, config.cap, move |w, stop| {
        let deadlocks = &*counter;
        let request = ClaimRequest {
            worker: format!("bench-{w}"),
            queues: vec!["default".into()],
            max,
            lease_ms: 600_000,
        };
        let mut done = 0;
        let mut latencies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let Some(jobs) = retried(deadlocks, stop, || shared.claim(&request))? else {
                break;
            };
            if jobs.is_empty() {
                break;
            }
            if ack == Ack::PerClaim {
                let completions = jobs
                    .iter()
                    .map(|job| {
                        Ok(Completion {
                            id: job.id,
                            lease: job
                                .lease()
                                .ok_or_else(|| fail("claimed job without lease"))?,
                            result: json!({ "ok": true }),
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                let t = Instant::now();
                let Some(answers) = retried(deadlocks, stop, || {
                    shared.complete_many(completions.clone())
                })?
                else {
                    break;
                };
                for answer in answers {
                    answer?;
                    done += 1;
                }
                latencies.push(micros_since(t));
                continue;
            }
            for job in jobs {
                let lease = job
                    .lease()
                    .ok_or_else(|| fail("claimed job without lease"))?;
                let t = Instant::now();
                if retried(deadlocks, stop, || {
                    shared.complete(job.id, &lease, json!({ "ok": true }))
                })?
                .is_none()
                {
                    break;
                }
                latencies.push(micros_since(t));
                done += 1;
            }
        }
        Ok((done, latencies))
    })?;
    let after = store.writer_stats();
    Ok(Outcome {
        done,
        elapsed,
        commits: Some((after.writes - before.writes, after.commits - before.commits)),
        latencies,
        deadlocks: deadlocks.load(Ordering::Relaxed),
    })
}

fn drain_raw(url: &str, workers: u64, config: &PgConfig, ack: Ack) -> Result<Outcome> {
    let url = url.to_owned();
    let max = config.claim_batch;
    let deadlocks = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&deadlocks);
    let (done, latencies, elapsed) = on_workers(workers, config.cap, move |w, stop| {
        let mut raw = Raw::connect(&url)?;
        let worker = format!("bench-{w}");
        let mut done = 0;
        let mut latencies = Vec::new();
        let mut lost = 0;
        while !stop.load(Ordering::Relaxed) {
            let Some(jobs) = raw.in_transaction_retried(&mut lost, stop, |tx, s| {
                pg::claim(tx, s, &worker, crate::raw::now_ms(), max)
            })?
            else {
                break;
            };
            if jobs.is_empty() {
                break;
            }
            if ack == Ack::PerClaim {
                let t = Instant::now();
                let count = jobs.len() as u64;
                let finished = raw.in_transaction_retried(&mut lost, stop, |tx, s| {
                    pg::complete_many(tx, s, &worker, crate::raw::now_ms(), &jobs)
                })?;
                if finished.is_none() {
                    break;
                }
                latencies.push(micros_since(t));
                done += count;
                continue;
            }
            for (id, token) in jobs {
                let t = Instant::now();
                let finished = raw.in_transaction_retried(&mut lost, stop, |tx, s| {
                    pg::complete(tx, s, &worker, crate::raw::now_ms(), id, token)
                })?;
                if finished.is_none() {
                    break;
                }
                latencies.push(micros_since(t));
                done += 1;
            }
        }
        counter.fetch_add(lost, Ordering::Relaxed);
        Ok((done, latencies))
    })?;
    Ok(Outcome {
        done,
        elapsed,
        commits: None,
        latencies,
        deadlocks: deadlocks.load(Ordering::Relaxed),
    })
}

fn drain_worker(
    store: &jobstore::Store,
    url: &str,
    watermark: i64,
    workers: u64,
    config: &PgConfig,
) -> Result<Outcome> {
    let before = store.writer_stats();
    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    let start = Instant::now();
    let worker = Worker::new(store.clone(), ["default"])
        .concurrency(usize::try_from(workers).unwrap_or(1))
        .prefetch(config.claim_batch)
        .lease(Duration::from_secs(600))
        .rescue_interval(None)
        .start(move |_job| {
            counter.fetch_add(1, Ordering::Relaxed);
            Ok(json!({ "ok": true }))
        })?;
    let deadline = start + config.cap;
    while handled.load(Ordering::Relaxed) < config.jobs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // The handler has run for every job; wait until the last completes have committed.
    let mut open = i64::MAX;
    while open > 0 && Instant::now() < deadline {
        open = pg::open_jobs(&mut client, watermark)?;
        if open > 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let elapsed = start.elapsed();
    let done = if open == 0 {
        config.jobs
    } else {
        let finished: i64 = client
            .query_one(
                "SELECT count(*) FROM jobs WHERE id > $1 AND state = 'succeeded'",
                &[&watermark],
            )?
            .get(0);
        u64::try_from(finished).unwrap_or(0)
    };
    worker.shutdown();
    let after = store.writer_stats();
    Ok(Outcome {
        done: done.min(config.jobs),
        elapsed,
        commits: Some((after.writes - before.writes, after.commits - before.commits)),
        latencies: Vec::new(),
        deadlocks: 0,
    })
}
