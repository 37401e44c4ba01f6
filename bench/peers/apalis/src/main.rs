//! The apalis-sqlite 1.0 peer of the jobstore benchmark: scenarios 1 (enqueue), 2 (drain) and
//! 3 (drain with finished jobs already in the table) against apalis' own SQLite store, on
//! database files in the given directory. Prints one JSON line:
//! `{"store": "apalis-sqlite", "journal_mode": …, "synchronous": …, "results": [ … ]}`.
//!
//! apalis-sqlite can be configured to match jobstore: its pool is ours, so every pooled
//! connection gets WAL and the durability asked for. Its `SqliteStorage::setup` sets
//! `synchronous = OFF` on whichever pooled connection runs it, so setup runs on a separate
//! one-connection pool that is closed before the measured pool opens. The levels are read back
//! on the measured pool's connections after the run.
//!
//! ```text
//! bench-peer-apalis --dir D --jobs N --drain-jobs N --workers 1,2,4,8 --workers-1m 1,8 --prefill M --cap S \
//!     --durability full,normal
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_sqlite::SqliteStorage;
use serde_json::{Value, json};
use sqlx::Connection as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Jobs the handler has run (the drain waits for them, then for their acks to commit).
static HANDLED: AtomicU64 = AtomicU64::new(0);

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
    levels: Vec<String>,
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
        levels: map
            .get("durability")
            .map_or("full", String::as_str)
            .split(',')
            .map(str::to_owned)
            .collect(),
    })
}

/// One figure, as the jobstore benchmark's records.
fn record(
    scenario: &str,
    case: &str,
    level: &str,
    n: u64,
    elapsed: Duration,
    extra: Value,
) -> Value {
    let secs = elapsed.as_secs_f64();
    let mut value = json!({
        "scenario": scenario,
        "store": "apalis-sqlite",
        "case": case,
        "durability": level,
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

fn connect_options(path: &Path, level: &str) -> Result<SqliteConnectOptions> {
    Ok(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match level {
                "normal" => SqliteSynchronous::Normal,
                _ => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(60)),
    )
}

/// Creates apalis' schema (on a pool of its own), then opens the measured pool.
async fn open(path: &Path, level: &str, create: bool) -> Result<SqlitePool> {
    if create {
        let setup = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect_options(path, level)?)
            .await?;
        SqliteStorage::setup(&setup).await?;
        setup.close().await;
    }
    Ok(SqlitePoolOptions::new()
        .connect_with(connect_options(path, level)?)
        .await?)
}

/// `PRAGMA journal_mode` and `PRAGMA synchronous` of each connection the pool holds.
async fn pool_settings(pool: &SqlitePool) -> Result<(String, Vec<i64>)> {
    let mut connections = Vec::new();
    let mut levels = Vec::new();
    let mut journal = String::new();
    for _ in 0..pool.size().max(1) {
        let Ok(conn) = tokio::time::timeout(Duration::from_millis(200), pool.acquire()).await
        else {
            break;
        };
        let mut conn = conn?;
        journal = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        levels.push(
            sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await?,
        );
        connections.push(conn);
    }
    Ok((journal, levels))
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = parse()?;
    std::fs::create_dir_all(&options.dir)?;
    let mut results = Vec::new();
    let mut settings = Vec::new();
    for level in options.levels.clone() {
        run_level(&options, &level, &mut results, &mut settings).await?;
    }
    let last = settings.last().cloned().unwrap_or(Value::Null);
    println!(
        "{}",
        json!({
            "store": "apalis-sqlite",
            "journal_mode": last.get("journal_mode"),
            "synchronous_new_connection": last.get("synchronous_new_connection"),
            "synchronous_as_run": settings.iter().map(|s| s.get("synchronous_as_run").cloned().unwrap_or(Value::Null)).collect::<Vec<_>>(),
            "matches": true,
            "note": "configured to match: WAL and the benchmark's synchronous level on every pooled connection (apalis' own setup sets synchronous=OFF on one connection, so it ran on a separate pool). Defaults otherwise: fetch batch_size 10, acks batched by apalis.",
            "settings": settings,
            "results": results,
        })
    );
    Ok(())
}

async fn run_level(
    options: &Options,
    level: &str,
    results: &mut Vec<Value>,
    settings: &mut Vec<Value>,
) -> Result<()> {
    // Scenario 1: enqueue, one per call from 1 and 8 tasks, and in batches.
    for tasks in [1_u64, 8] {
        let path = fresh(&options.dir, "apalis-enqueue");
        let pool = open(&path, level, true).await?;
        let start = Instant::now();
        let deadline = start + options.cap;
        let mut handles = Vec::new();
        for t in 0..tasks {
            let mut storage = SqliteStorage::<u64>::new(&pool);
            let count = options.jobs / tasks;
            handles.push(tokio::spawn(async move {
                let mut done = 0_u64;
                for i in 0..count {
                    if Instant::now() >= deadline {
                        break;
                    }
                    storage
                        .push(t * 1_000_000_000 + i)
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                    done += 1;
                }
                Ok::<_, String>(done)
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
            level,
            n,
            start.elapsed(),
            json!({ "threads": tasks }),
        ));
        pool.close().await;
    }
    {
        let path = fresh(&options.dir, "apalis-enqueue");
        let pool = open(&path, level, true).await?;
        let mut storage = SqliteStorage::<u64>::new(&pool);
        let start = Instant::now();
        let mut n = 0;
        while n < options.jobs && start.elapsed() < options.cap {
            let size = options.batch.min(options.jobs - n);
            storage
                .push_bulk((n..n + size).collect())
                .await
                .map_err(|e| format!("{e:?}"))?;
            n += size;
        }
        let case = format!("1 task, batches of {}", options.batch);
        results.push(record(
            "enqueue",
            &case,
            level,
            n,
            start.elapsed(),
            json!({ "threads": 1, "batch": options.batch }),
        ));
        pool.close().await;
    }

    // Scenario 2: drain with N job slots.
    for &workers in &options.workers {
        let path = fresh(&options.dir, "apalis-drain");
        let pool = open(&path, level, true).await?;
        results.push(drain(&pool, workers, options, level, "drain", 0).await?);
        pool.close().await;
    }

    // Scenario 3: the same drain with finished jobs already in the table.
    if options.prefill > 0 {
        let path = fresh(&options.dir, "apalis-drain-1m");
        let pool = open(&path, level, true).await?;
        prefill(&pool, options.prefill).await?;
        for &workers in &options.workers_1m {
            let finished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM Jobs WHERE status = 'Done'")
                    .fetch_one(&pool)
                    .await?;
            results.push(
                drain(
                    &pool,
                    workers,
                    options,
                    level,
                    "drain_1m",
                    u64::try_from(finished)?,
                )
                .await?,
            );
        }
        let (journal, levels) = pool_settings(&pool).await?;
        pool.close().await;
        let mut plain =
            sqlx::SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
                .await?;
        let fresh_level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut plain)
            .await?;
        settings.push(json!({
            "durability": level,
            "journal_mode": journal,
            "synchronous_as_run": format!("{} (read back on {} pooled connections: {:?})", synchronous_name(levels.first().copied().unwrap_or(-1)), levels.len(), levels),
            "synchronous_new_connection": synchronous_name(fresh_level),
        }));
    }
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

/// `jobs` finished jobs in apalis' own table, as its ack leaves them.
async fn prefill(pool: &SqlitePool, jobs: u64) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) \
         INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, \
             last_result, lock_at, lock_by, done_at, priority, metadata) \
         SELECT CAST(i AS BLOB), printf('01PREFILL%017d', i), 'u64', 'Done', 1, 25, \
             1700000000 + i / 20, 'null', 1700000000 + i / 20, NULL, 1700000001 + i / 20, 0, '{}' \
         FROM n",
    )
    .bind(i64::try_from(jobs)?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn handle(_item: u64) -> std::result::Result<(), BoxDynError> {
    HANDLED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Enqueues `drain_jobs` jobs (not timed), then times one worker with `workers` concurrent
/// job slots running them until every ack has committed.
async fn drain(
    pool: &SqlitePool,
    workers: u64,
    options: &Options,
    level: &str,
    scenario: &str,
    finished_before: u64,
) -> Result<Value> {
    let mut storage = SqliteStorage::<u64>::new(pool);
    let mut seeded = 0;
    while seeded < options.drain_jobs {
        let size = 1000.min(options.drain_jobs - seeded);
        storage
            .push_bulk((seeded..seeded + size).collect())
            .await
            .map_err(|e| format!("{e:?}"))?;
        seeded += size;
    }
    HANDLED.store(0, Ordering::Relaxed);
    let start = Instant::now();
    let deadline = start + options.cap;
    let worker = WorkerBuilder::new(format!("bench-{workers}-{finished_before}"))
        .backend(SqliteStorage::<u64>::new(pool))
        .concurrency(usize::try_from(workers)?)
        .build(handle);
    let running = tokio::spawn(async move { worker.run().await });
    while HANDLED.load(Ordering::Relaxed) < options.drain_jobs && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Every job has run; wait for the acks to commit.
    let mut open_jobs = i64::MAX;
    while open_jobs > 0 && Instant::now() < deadline {
        open_jobs = sqlx::query_scalar(
            "SELECT count(*) FROM Jobs WHERE status IN ('Pending', 'Queued', 'Running')",
        )
        .fetch_one(pool)
        .await?;
        if open_jobs > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let elapsed = start.elapsed();
    running.abort();
    let _ = running.await;
    let n = if open_jobs == 0 {
        options.drain_jobs
    } else {
        let acked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM Jobs WHERE status = 'Done' AND lock_by = ?1")
                .bind(format!("bench-{workers}-{finished_before}"))
                .fetch_one(pool)
                .await?;
        u64::try_from(acked)?
    };
    Ok(record(
        scenario,
        "apalis Worker, concurrency N",
        level,
        n,
        elapsed,
        json!({ "workers": workers, "finished_before": finished_before, "capped": n < options.drain_jobs }),
    ))
}
