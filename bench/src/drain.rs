//! Scenarios 2 and 3: drain N queued jobs (claim + complete, each transition with its event
//! row) with 1, 2, 4, 8 workers — through jobstore's `Store::claim`/`Store::complete` from N
//! threads, through its embedded `Worker`, and through raw SQLite doing the same statements.
//!
//! Raw SQLite runs twice: with one transaction per call from N threads (each its own
//! connection, as a program without a writer thread would), and on one connection with the
//! calls grouped into transactions of the size jobstore's writer achieved in its own run of
//! the same case (`writes / commits`): the same statements, the same commits, no framework.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jobstore::{ClaimRequest, Completion, Store, Worker};
use serde_json::json;

use crate::common::{
    Level, Record, Result, emit_settings, fail, micros_since, open_store, percentiles,
};
use crate::raw;

/// How a drain scenario runs.
#[derive(Debug, Clone)]
pub struct DrainConfig {
    /// `drain` (empty table) or `drain_1m` (finished jobs already in the table).
    pub scenario: &'static str,
    /// Jobs enqueued and drained per case.
    pub jobs: u64,
    /// `max` of each claim of the claim-API cases.
    pub claim_batch: u32,
    /// The worker counts.
    pub workers: Vec<u64>,
    /// A case stops after this long and reports how many jobs it finished.
    pub cap: Duration,
    /// Run the raw one-transaction-per-call case (slow: one fsync per call under FULL).
    pub raw_per_call: bool,
    /// Run the embedded `Worker` case.
    pub worker: bool,
}

/// How one case ended.
struct Outcome {
    done: u64,
    elapsed: Duration,
    writes: u64,
    commits: u64,
    latencies: Vec<u64>,
}

/// How the claim-API cases acknowledge the jobs they claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    /// `Store::complete` per job (raw: one `complete` call per job).
    PerJob,
    /// `Store::complete_many` for the whole claim (raw: every job of the claim in one call).
    PerClaim,
}

impl Ack {
    fn jobstore_store(self) -> &'static str {
        match self {
            Ack::PerJob => "jobstore",
            Ack::PerClaim => "jobstore (complete_many)",
        }
    }

    fn jobstore_case(self) -> &'static str {
        match self {
            Ack::PerJob => "Store::claim + Store::complete per job",
            Ack::PerClaim => "Store::claim + Store::complete_many per claim",
        }
    }

    fn raw_store(self) -> &'static str {
        match self {
            Ack::PerJob => "raw (grouped as jobstore)",
            Ack::PerClaim => "raw (grouped as jobstore, complete_many)",
        }
    }
}

/// Runs every case at `level` on databases made by `make_db` (a fresh file, or a copy of a
/// prefilled one): it answers the path of a database holding the core's schema and no queued
/// job.
pub fn run(
    level: Level,
    config: &DrainConfig,
    make_db: &dyn Fn(&str) -> Result<std::path::PathBuf>,
) -> Result<()> {
    for &workers in &config.workers {
        for ack in [Ack::PerJob, Ack::PerClaim] {
            // jobstore, claim API from N threads.
            let path = make_db("drain-jobstore")?;
            let (finished_before, _) = seed(&path, config.jobs)?;
            let store = open_store(&path, level)?;
            let outcome = drain_claim_api(&store, workers, config, ack)?;
            let group = outcome.writes as f64 / outcome.commits.max(1) as f64;
            emit(
                config,
                level,
                ack.jobstore_store(),
                ack.jobstore_case(),
                workers,
                finished_before,
                outcome,
            );
            drop(store);
            emit_settings(
                "jobstore",
                &path,
                level.as_str(),
                "set and read back by the store at open",
            )?;
            crate::common::remove_db(&path);

            // raw, the same statements in transactions of the size jobstore's writer made.
            let path = make_db("drain-raw")?;
            let (finished_before, _) = seed(&path, config.jobs)?;
            let outcome = drain_raw_grouped(&path, level, workers, group, config, ack)?;
            emit(
                config,
                level,
                ack.raw_store(),
                &format!(
                    "same calls, {group:.1} per transaction (jobstore's writes per commit), 1 connection"
                ),
                workers,
                finished_before,
                outcome,
            );
            crate::common::remove_db(&path);
        }

        // raw, one transaction per call from N threads.
        if config.raw_per_call {
            let path = make_db("drain-raw")?;
            let (finished_before, _) = seed(&path, config.jobs)?;
            let outcome = drain_raw_per_call(&path, level, workers, config)?;
            emit(
                config,
                level,
                "raw (one transaction per call)",
                "same calls, one transaction each, a connection per worker",
                workers,
                finished_before,
                outcome,
            );
            emit_settings(
                "raw",
                &path,
                level.as_str(),
                "set and read back on each connection",
            )?;
            crate::common::remove_db(&path);
        }

        // jobstore's embedded Worker.
        if config.worker {
            let path = make_db("drain-worker")?;
            let (finished_before, watermark) = seed(&path, config.jobs)?;
            let store = open_store(&path, level)?;
            let outcome = drain_worker(&store, workers, watermark, config)?;
            emit(
                config,
                level,
                "jobstore Worker",
                "embedded Worker, concurrency N, prefetch = the claim batch",
                workers,
                finished_before,
                outcome,
            );
            drop(store);
            crate::common::remove_db(&path);
        }
    }
    Ok(())
}

fn emit(
    config: &DrainConfig,
    level: Level,
    store: &str,
    case: &str,
    workers: u64,
    finished_before: u64,
    mut outcome: Outcome,
) {
    let mut record = Record::new(config.scenario, store, case)
        .set("durability", level.as_str())
        .set("workers", workers)
        .set("claim_batch", config.claim_batch)
        .set("finished_before", finished_before)
        .timed(outcome.done, outcome.elapsed)
        .set("capped", outcome.done < config.jobs);
    if outcome.commits > 0 {
        record = record.set("commits", outcome.commits).set(
            "writes_per_commit",
            (outcome.writes as f64 / outcome.commits as f64 * 10.0).round() / 10.0,
        );
    }
    if !outcome.latencies.is_empty() {
        let (p50, p99) = percentiles(&mut outcome.latencies);
        record = record
            .set("complete_p50_us", p50)
            .set("complete_p99_us", p99);
    }
    record.emit();
}

/// Enqueues `n` jobs (not timed) with one `INSERT … SELECT` for the jobs and one for their
/// `create` events: the rows `Store::enqueue` writes, at C speed, so that seeding does not eat
/// the time budget. Creates the schema through the store first when the file is new. Answers
/// how many finished jobs the table already held and the highest job id before the seed.
fn seed(path: &Path, n: u64) -> Result<(u64, i64)> {
    if !path.exists() {
        drop(open_store(path, Level::Normal)?);
    }
    let conn = raw::open(path, Level::Normal)?;
    let (finished, watermark): (i64, i64) = conn.query_row(
        "SELECT (SELECT count(*) FROM jobs WHERE finished_at IS NOT NULL), \
         (SELECT ifnull(max(id), 0) FROM jobs)",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let now = raw::now_ms();
    raw::in_transaction(&conn, |c| {
        c.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
             INSERT INTO jobs (tenant, kind, queue, name, source, target, created_by, dialect, \
                 state, priority, run_at, max_attempts, unique_key, definition_id, restart_of, \
                 restartable, payload, created_at, updated_at) \
             SELECT 'default', 'bench', 'default', '', '', '', '', 'native', 'queued', 0, ?2, 3, \
                 NULL, NULL, NULL, 1, json_object('n', i), ?2, ?2 FROM n",
            rusqlite::params![i64::try_from(n)?, now],
        )?;
        c.execute(
            "INSERT INTO job_events (job_id, at, event, from_state, to_state, actor, detail) \
             SELECT id, ?2, 'create', NULL, 'queued', '', NULL FROM jobs WHERE id > ?1",
            rusqlite::params![watermark, now],
        )?;
        Ok(())
    })?;
    Ok((u64::try_from(finished)?, watermark))
}

/// Sets `stop` after `cap` unless `done` is set first.
fn cap_timer(
    cap: Duration,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + cap;
        while !done.load(Ordering::Relaxed) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    })
}

/// Runs `work(w, stop)` on `workers` threads until each returns or `cap` sets `stop`;
/// answers the jobs they finished, their latencies (µs) and the time it took.
pub(crate) fn on_workers<F>(
    workers: u64,
    cap: Duration,
    work: F,
) -> Result<(u64, Vec<u64>, Duration)>
where
    F: Fn(u64, &AtomicBool) -> Result<(u64, Vec<u64>)> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let timer = cap_timer(cap, Arc::clone(&stop), Arc::clone(&finished));
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let work = Arc::clone(&work);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || work(w, &stop))
        })
        .collect();
    let mut done = 0;
    let mut latencies = Vec::new();
    for handle in handles {
        let (n, mut l) = handle
            .join()
            .map_err(|_| fail("worker thread panicked"))??;
        done += n;
        latencies.append(&mut l);
    }
    let elapsed = start.elapsed();
    finished.store(true, Ordering::Relaxed);
    let _ = timer.join();
    Ok((done, latencies, elapsed))
}

fn drain_claim_api(store: &Store, workers: u64, config: &DrainConfig, ack: Ack) -> Result<Outcome> {
    let before = store.writer_stats();
    let shared = store.clone();
    let max = config.claim_batch;
    let (done, latencies, elapsed) = on_workers(workers, config.cap, move |w, stop| {
        let store = &shared;
        let request = ClaimRequest {
            worker: format!("bench-{w}"),
            queues: vec!["default".into()],
            max,
            lease_ms: 600_000,
        };
        let mut done = 0;
        let mut latencies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let jobs = store.claim(&request)?;
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
                for answer in store.complete_many(completions)? {
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
                store.complete(job.id, &lease, json!({ "ok": true }))?;
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
        writes: after.writes - before.writes,
        commits: after.commits - before.commits,
        latencies,
    })
}

fn drain_worker(
    store: &Store,
    workers: u64,
    watermark: i64,
    config: &DrainConfig,
) -> Result<Outcome> {
    let before = store.writer_stats();
    let handled = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&handled);
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
    let conn = rusqlite::Connection::open(store.path())?;
    let mut open_jobs = i64::MAX;
    while open_jobs > 0 && Instant::now() < deadline {
        open_jobs = conn.query_row(
            "SELECT (SELECT count(*) FROM jobs WHERE state = 'queued' AND id > ?1) \
             + (SELECT count(*) FROM jobs WHERE state = 'running' AND id > ?1)",
            [watermark],
            |row| row.get(0),
        )?;
        if open_jobs > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let elapsed = start.elapsed();
    worker.shutdown();
    let after = store.writer_stats();
    let done = if open_jobs == 0 {
        config.jobs
    } else {
        let completed: i64 = conn.query_row(
            "SELECT count(*) FROM jobs WHERE tenant = 'default' AND state = 'succeeded' AND id > ?1",
            [watermark],
            |row| row.get(0),
        )?;
        u64::try_from(completed).unwrap_or(0)
    };
    Ok(Outcome {
        done: done.min(config.jobs),
        elapsed,
        writes: after.writes - before.writes,
        commits: after.commits - before.commits,
        latencies: Vec::new(),
    })
}

fn drain_raw_per_call(
    path: &Path,
    level: Level,
    workers: u64,
    config: &DrainConfig,
) -> Result<Outcome> {
    let path = path.to_path_buf();
    let max = config.claim_batch;
    let (done, latencies, elapsed) = on_workers(workers, config.cap, move |w, stop| {
        let conn = raw::open(&path, level)?;
        let worker = format!("bench-{w}");
        let mut done = 0;
        let mut latencies = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let jobs = raw::in_transaction(&conn, |c| raw::claim(c, &worker, raw::now_ms(), max))?;
            if jobs.is_empty() {
                break;
            }
            for (id, token) in jobs {
                let t = Instant::now();
                raw::in_transaction(&conn, |c| {
                    raw::complete(c, &worker, raw::now_ms(), id, token)
                })?;
                latencies.push(micros_since(t));
                done += 1;
            }
        }
        Ok((done, latencies))
    })?;
    let calls = done + done.div_ceil(u64::from(config.claim_batch));
    Ok(Outcome {
        done,
        elapsed,
        writes: calls,
        commits: calls,
        latencies,
    })
}

/// One connection plays `workers` workers in turn (each claims `claim_batch`, then completes
/// its jobs one call at a time, or all in one call with [`Ack::PerClaim`]) and commits every
/// `group` calls.
fn drain_raw_grouped(
    path: &Path,
    level: Level,
    workers: u64,
    group: f64,
    config: &DrainConfig,
    ack: Ack,
) -> Result<Outcome> {
    let conn = raw::open(path, level)?;
    let names: Vec<String> = (0..workers).map(|w| format!("bench-{w}")).collect();
    let mut held: Vec<VecDeque<(i64, i64)>> = vec![VecDeque::new(); names.len()];
    let mut exhausted = vec![false; names.len()];
    let group = group.max(1.0);
    let start = Instant::now();
    let deadline = start + config.cap;
    let (mut done, mut calls, mut commits) = (0_u64, 0_u64, 0_u64);
    // Calls owed to the current transaction: the average group size, carried over so that
    // the number of commits matches jobstore's.
    let mut budget = 0.0;
    let mut in_transaction = false;
    let mut turn = 0;
    loop {
        let live = (0..names.len()).any(|w| !exhausted[w] || !held[w].is_empty());
        if !live || Instant::now() >= deadline {
            break;
        }
        let w = turn % names.len();
        turn += 1;
        if exhausted[w] && held[w].is_empty() {
            continue;
        }
        if !in_transaction {
            conn.execute_batch("BEGIN IMMEDIATE")?;
            in_transaction = true;
            budget += group;
        }
        let now = raw::now_ms();
        if ack == Ack::PerClaim && !held[w].is_empty() {
            for (id, token) in held[w].drain(..) {
                raw::complete(&conn, &names[w], now, id, token)?;
                done += 1;
            }
        } else if let Some((id, token)) = held[w].pop_front() {
            raw::complete(&conn, &names[w], now, id, token)?;
            done += 1;
        } else {
            let jobs = raw::claim(&conn, &names[w], now, config.claim_batch)?;
            if jobs.is_empty() {
                exhausted[w] = true;
            }
            held[w].extend(jobs);
        }
        calls += 1;
        budget -= 1.0;
        if budget < 0.5 {
            conn.execute_batch("COMMIT")?;
            commits += 1;
            in_transaction = false;
        }
    }
    if in_transaction {
        conn.execute_batch("COMMIT")?;
        commits += 1;
    }
    Ok(Outcome {
        done,
        elapsed: start.elapsed(),
        writes: calls,
        commits,
        latencies: Vec::new(),
    })
}
