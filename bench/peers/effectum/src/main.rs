//! The effectum 0.7 peer of the jobstore benchmark: scenarios 1 (enqueue), 2 (drain) and 3
//! (drain with finished jobs already in the table) against effectum's own store, on database
//! files in the given directory. Prints one JSON line:
//! `{"store": "effectum", "journal_mode": …, "synchronous": …, "results": [ … ]}`.
//!
//! effectum cannot be configured to match jobstore's settings: it asks for WAL with a
//! misspelled pragma (`PRAGMA journal = wal`, which SQLite ignores), so its file stays in
//! rollback-journal (`delete`) mode, and it sets `synchronous = NORMAL` on its writer
//! connection. Both are read back and reported as they are.
//!
//! ```text
//! bench-peer-effectum --dir D --jobs N --drain-jobs N --workers 1,2,4,8 --workers-1m 1,8 --prefill M --cap S
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use effectum::{Job, JobRunner, Queue, RunningJob, Worker};
use serde_json::{json, Value};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The options of one run.
struct Options {
    dir: PathBuf,
    jobs: u64,
    drain_jobs: u64,
    workers: Vec<u64>,
    workers_1m: Vec<u64>,
    prefill: u64,
    batch: u64,
    cap: Duration,
}

fn parse() -> Result<Options> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut map = HashMap::new();
    for pair in args.chunks(2) {
        let key = pair[0].trim_start_matches("--").to_owned();
        let value = pair
            .get(1)
            .cloned()
            .ok_or(format!("--{key} needs a value"))?;
        map.insert(key, value);
    }
    let number = |key: &str, default: u64| -> Result<u64> {
        Ok(map
            .get(key)
            .map(|v| v.parse())
            .transpose()?
            .unwrap_or(default))
    };
    Ok(Options {
        dir: PathBuf::from(map.get("dir").ok_or("missing --dir")?),
        jobs: number("jobs", 10_000)?,
        drain_jobs: number("drain-jobs", 10_000)?,
        workers: map
            .get("workers")
            .map_or("1,2,4,8", String::as_str)
            .split(',')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?,
        workers_1m: map
            .get("workers-1m")
            .map_or("1,8", String::as_str)
            .split(',')
            .map(str::parse)
            .collect::<std::result::Result<_, _>>()?,
        prefill: number("prefill", 1_000_000)?,
        batch: number("batch", 100)?,
        cap: Duration::from_secs(number("cap", 60)?),
    })
}

/// One figure, as the jobstore benchmark's records.
fn record(scenario: &str, case: &str, n: u64, elapsed: Duration, extra: Value) -> Value {
    let secs = elapsed.as_secs_f64();
    let mut value = json!({
        "scenario": scenario,
        "store": "effectum",
        "case": case,
        "durability": "store default",
        "n": n,
        "secs": (secs * 1000.0).round() / 1000.0,
        "rate": (n as f64 / secs).round(),
    });
    if let (Some(map), Value::Object(extra)) = (value.as_object_mut(), extra) {
        map.extend(extra);
    }
    eprintln!("  {value}");
    value
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.db"));
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

fn job(i: u64) -> Result<Job> {
    Ok(Job::builder("bench")
        .json_payload(&json!({ "n": i }))?
        .build())
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = parse()?;
    std::fs::create_dir_all(&options.dir)?;
    let mut results = Vec::new();

    // Scenario 1: enqueue, one per call from 1 and 8 tasks, and in batches.
    for tasks in [1_u64, 8] {
        let path = fresh(&options.dir, "effectum-enqueue");
        let queue = Arc::new(Queue::new(&path).await?);
        let start = Instant::now();
        let deadline = start + options.cap;
        let mut handles = Vec::new();
        for t in 0..tasks {
            let queue = Arc::clone(&queue);
            let count = options.jobs / tasks;
            handles.push(tokio::spawn(async move {
                let mut done = 0_u64;
                for i in 0..count {
                    if Instant::now() >= deadline {
                        break;
                    }
                    queue.add_job(job(t * 1_000_000_000 + i)?).await?;
                    done += 1;
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(done)
            }));
        }
        let mut n = 0;
        for handle in handles {
            n += handle.await??;
        }
        let case = if tasks == 1 {
            "1 task, one job per call".to_owned()
        } else {
            format!("{tasks} tasks, one job per call")
        };
        results.push(record(
            "enqueue",
            &case,
            n,
            start.elapsed(),
            json!({ "threads": tasks }),
        ));
        queue.close(Duration::from_secs(10)).await?;
    }
    let mut last_file = {
        let path = fresh(&options.dir, "effectum-enqueue");
        let queue = Queue::new(&path).await?;
        let start = Instant::now();
        let mut n = 0;
        while n < options.jobs && start.elapsed() < options.cap {
            let size = options.batch.min(options.jobs - n);
            queue
                .add_jobs((n..n + size).map(job).collect::<Result<Vec<_>>>()?)
                .await?;
            n += size;
        }
        let case = format!("1 task, batches of {}", options.batch);
        results.push(record(
            "enqueue",
            &case,
            n,
            start.elapsed(),
            json!({ "threads": 1, "batch": options.batch }),
        ));
        queue.close(Duration::from_secs(10)).await?;
        path
    };

    // Scenario 2: drain with N workers.
    for &workers in &options.workers {
        let path = fresh(&options.dir, "effectum-drain");
        let value = drain(&path, workers, &options, "drain", 0).await?;
        results.push(value);
    }

    // Scenario 3: the same drain with finished jobs already in the table.
    if options.prefill > 0 {
        let path = fresh(&options.dir, "effectum-drain-1m");
        drop(
            Queue::new(&path)
                .await?
                .close(Duration::from_secs(10))
                .await,
        );
        prefill(&path, options.prefill)?;
        for &workers in &options.workers_1m {
            let finished = count_finished(&path)?;
            let value = drain(&path, workers, &options, "drain_1m", finished).await?;
            results.push(value);
        }
        last_file = path;
    }

    let conn = rusqlite::Connection::open(&last_file)?;
    let journal: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
    let synchronous: i64 = conn.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
    println!(
        "{}",
        json!({
            "store": "effectum",
            "journal_mode": journal,
            "synchronous_new_connection": synchronous_name(synchronous),
            "synchronous_as_run": "normal (effectum sets it on its writer connection; not configurable)",
            "matches": false,
            "note": "effectum cannot be configured to match: its `PRAGMA journal = wal` is a misspelling SQLite ignores, so the file stays in rollback-journal mode; it sets synchronous=NORMAL on its writer connection. In rollback-journal mode NORMAL still syncs the journal and the database on every commit.",
            "results": results,
        })
    );
    Ok(())
}

fn synchronous_name(level: i64) -> &'static str {
    match level {
        0 => "off",
        1 => "normal",
        2 => "full",
        3 => "extra",
        _ => "unknown",
    }
}

fn count_finished(path: &Path) -> Result<u64> {
    let conn = rusqlite::Connection::open(path)?;
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM jobs WHERE status = 'succeeded'",
        [],
        |row| row.get(0),
    )?;
    Ok(u64::try_from(n)?)
}

/// `jobs` finished jobs in effectum's own table, as its `complete` leaves them.
fn prefill(path: &Path, jobs: u64) -> Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch("BEGIN IMMEDIATE")?;
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO jobs (external_id, job_type, name, status, priority, weight, orig_run_at, \
             payload, current_try, max_retries, backoff_multiplier, backoff_randomization, \
             backoff_initial_interval, added_at, default_timeout, heartbeat_increment, \
             started_at, finished_at, run_info) \
         SELECT randomblob(16), 'bench', NULL, 'succeeded', 0, 1, 1700000000 + i / 20, \
             CAST(json_object('n', i) AS BLOB), 1, 3, 2.0, 0.2, 20, 1700000000 + i / 20, 300, \
             120, 1700000000 + i / 20, 1700000001 + i / 20, '[]' \
         FROM n",
        [i64::try_from(jobs)?],
    )?;
    conn.execute_batch("COMMIT")?;
    Ok(())
}

/// Enqueues `drain_jobs` jobs (not timed), then times `workers` concurrent job slots
/// completing them.
async fn drain(
    path: &Path,
    workers: u64,
    options: &Options,
    scenario: &str,
    finished_before: u64,
) -> Result<Value> {
    let queue = Queue::new(path).await?;
    let mut seeded = 0;
    while seeded < options.drain_jobs {
        let size = 1000.min(options.drain_jobs - seeded);
        queue
            .add_jobs(
                (seeded..seeded + size)
                    .map(job)
                    .collect::<Result<Vec<_>>>()?,
            )
            .await?;
        seeded += size;
    }
    let completed = Arc::new(AtomicU64::new(0));
    let runner = JobRunner::builder(
        "bench",
        |job: RunningJob, done: Arc<AtomicU64>| async move {
            job.complete(json!({ "ok": true })).await?;
            done.fetch_add(1, Ordering::Relaxed);
            Ok::<_, effectum::Error>(())
        },
    )
    .build();
    let start = Instant::now();
    let worker: Worker = Worker::builder(&queue, Arc::clone(&completed))
        .max_concurrency(u16::try_from(workers)?)
        .jobs([runner])
        .build()
        .await?;
    while completed.load(Ordering::Relaxed) < options.drain_jobs && start.elapsed() < options.cap {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = start.elapsed();
    let n = completed.load(Ordering::Relaxed);
    worker.unregister(Some(Duration::from_secs(10))).await?;
    queue.close(Duration::from_secs(10)).await?;
    Ok(record(
        scenario,
        "effectum Worker, max_concurrency N",
        n,
        elapsed,
        json!({ "workers": workers, "finished_before": finished_before, "capped": n < options.drain_jobs }),
    ))
}
