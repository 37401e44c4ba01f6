//! Scenario 1: enqueue N jobs one per call from 1 and from 8 threads, and in batches — through
//! jobstore (whose writer group-commits concurrent calls) and through raw SQLite doing the same
//! statements with one transaction per call (or per batch).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jobstore::NewJob;
use serde_json::json;

use crate::common::{Level, Record, Result, emit_settings, fresh_db, open_store, remove_db};
use crate::raw;

/// How scenario 1 runs.
#[derive(Debug, Clone)]
pub struct EnqueueConfig {
    /// Jobs per case.
    pub jobs: u64,
    /// The batch sizes of the batched cases.
    pub batches: Vec<u64>,
    /// A case stops early after this long (and reports how many it did).
    pub cap: Duration,
}

/// Runs every case of scenario 1 at `level`.
pub fn run(dir: &Path, level: Level, config: &EnqueueConfig) -> Result<()> {
    for threads in [1_u64, 8] {
        jobstore_single(dir, level, config, threads)?;
        raw_single(dir, level, config, threads)?;
    }
    for &batch in &config.batches {
        jobstore_batched(dir, level, config, batch)?;
        raw_batched(dir, level, config, batch)?;
    }
    Ok(())
}

/// The case the run profiles (`perf record` around it, its figures not reported): jobstore
/// from 8 threads, one job per call, at FULL, where the cost per write shows.
pub fn profiled(dir: &Path, config: &EnqueueConfig) -> Result<()> {
    jobstore_single(dir, Level::Full, config, 8)
}

fn job(i: u64) -> NewJob {
    NewJob::new("bench").payload(json!({ "n": i }))
}

/// Splits `total` over `threads` and runs `work(thread, count, stop)` on each; answers how
/// many calls were made in all and how long it took. `work` answers its own count.
pub(crate) fn on_threads<F>(
    threads: u64,
    total: u64,
    cap: Duration,
    work: F,
) -> Result<(u64, Duration)>
where
    F: Fn(u64, u64, &AtomicBool) -> Result<u64> + Send + Sync + 'static,
{
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let work = Arc::clone(&work);
            let stop = Arc::clone(&stop);
            let count = total / threads + u64::from(t < total % threads);
            std::thread::spawn(move || work(t, count, &stop))
        })
        .collect();
    let timer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let deadline = Instant::now() + cap;
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut done = 0;
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(n)) => done += n,
            Ok(Err(err)) => first_error = first_error.or(Some(err)),
            Err(_) => first_error = first_error.or(Some("a thread panicked".into())),
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = timer.join();
    match first_error {
        Some(err) => Err(err),
        None => Ok((done, elapsed)),
    }
}

fn case_single(threads: u64) -> String {
    if threads == 1 {
        "1 thread, one job per call".into()
    } else {
        format!("{threads} threads, one job per call")
    }
}

fn jobstore_single(dir: &Path, level: Level, config: &EnqueueConfig, threads: u64) -> Result<()> {
    let path = fresh_db(dir, "enqueue-jobstore")?;
    let store = open_store(&path, level)?;
    let before = store.writer_stats();
    let worker_store = store.clone();
    let (n, elapsed) = on_threads(threads, config.jobs, config.cap, move |t, count, stop| {
        let mut done = 0;
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            worker_store.enqueue(job(t * 1_000_000_000 + i))?;
            done += 1;
        }
        Ok(done)
    })?;
    let after = store.writer_stats();
    let commits = after.commits - before.commits;
    Record::new("enqueue", "jobstore", &case_single(threads))
        .set("durability", level.as_str())
        .set("threads", threads)
        .timed(n, elapsed)
        .set("commits", commits)
        .set(
            "writes_per_commit",
            ((after.writes - before.writes) as f64 / commits.max(1) as f64 * 10.0).round() / 10.0,
        )
        .emit();
    drop(store);
    emit_settings(
        "jobstore",
        &path,
        level.as_str(),
        "set and read back by the store at open",
    )?;
    remove_db(&path);
    Ok(())
}

fn raw_single(dir: &Path, level: Level, config: &EnqueueConfig, threads: u64) -> Result<()> {
    let path = fresh_db(dir, "enqueue-raw")?;
    drop(raw::create(&path, level)?);
    let shared = path.clone();
    let (n, elapsed) = on_threads(threads, config.jobs, config.cap, move |t, count, stop| {
        let conn = raw::open(&shared, level)?;
        let mut done = 0;
        for i in 0..count {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let payload = json!({ "n": t * 1_000_000_000 + i }).to_string();
            raw::in_transaction(&conn, |conn| raw::insert_job(conn, raw::now_ms(), &payload))?;
            done += 1;
        }
        Ok(done)
    })?;
    let case = if threads == 1 {
        "1 thread, one transaction per job".to_owned()
    } else {
        format!("{threads} threads (a connection each), one transaction per job")
    };
    Record::new("enqueue", "raw", &case)
        .set("durability", level.as_str())
        .set("threads", threads)
        .timed(n, elapsed)
        .set("commits", n)
        .emit();
    emit_settings(
        "raw",
        &path,
        level.as_str(),
        "set and read back on each connection",
    )?;
    remove_db(&path);
    Ok(())
}

fn jobstore_batched(dir: &Path, level: Level, config: &EnqueueConfig, batch: u64) -> Result<()> {
    let path = fresh_db(dir, "enqueue-jobstore")?;
    let store = open_store(&path, level)?;
    let start = Instant::now();
    let mut n = 0;
    while n < config.jobs && start.elapsed() < config.cap {
        let size = batch.min(config.jobs - n);
        store.enqueue_many((n..n + size).map(job).collect())?;
        n += size;
    }
    let elapsed = start.elapsed();
    Record::new(
        "enqueue",
        "jobstore",
        &format!("1 thread, batches of {batch}"),
    )
    .set("durability", level.as_str())
    .set("threads", 1)
    .set("batch", batch)
    .timed(n, elapsed)
    .emit();
    drop(store);
    remove_db(&path);
    Ok(())
}

fn raw_batched(dir: &Path, level: Level, config: &EnqueueConfig, batch: u64) -> Result<()> {
    let path = fresh_db(dir, "enqueue-raw")?;
    let conn = raw::create(&path, level)?;
    let start = Instant::now();
    let mut n = 0;
    while n < config.jobs && start.elapsed() < config.cap {
        let size = batch.min(config.jobs - n);
        raw::in_transaction(&conn, |conn| {
            let now = raw::now_ms();
            for i in n..n + size {
                raw::insert_job(conn, now, &json!({ "n": i }).to_string())?;
            }
            Ok(())
        })?;
        n += size;
    }
    let elapsed = start.elapsed();
    Record::new("enqueue", "raw", &format!("1 thread, batches of {batch}"))
        .set("durability", level.as_str())
        .set("threads", 1)
        .set("batch", batch)
        .timed(n, elapsed)
        .emit();
    drop(conn);
    remove_db(&path);
    Ok(())
}
