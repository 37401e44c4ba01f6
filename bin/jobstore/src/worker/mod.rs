//! `jobstore worker`: claims jobs from a daemon over HTTP or HTTPS and runs a command for each.
//!
//! It long-polls `POST /v1/claim` for as many jobs as it has free slots, so an idle worker
//! costs nothing and a new job starts within milliseconds. Each job runs as a child process in
//! its own process group (see [`job`]). SIGTERM or SIGINT stop claiming; running commands get
//! the grace period to finish, then are stopped and their attempts failed as retryable; the
//! worker exits 0. A daemon that cannot be reached is retried with backoff while the running
//! commands keep running.

mod client;
pub(crate) mod config;
mod job;
pub(crate) mod protocol;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use http::Method;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use self::client::Client;
use self::config::WorkerConfig;
use self::job::{Claimed, Shared};

/// How long one claim waits on the daemon for jobs.
const CLAIM_WAIT_MS: u64 = 30_000;

/// Runs the worker until SIGTERM or SIGINT.
///
/// # Errors
/// A runtime that cannot start, a bad URL, or a CA file that cannot be used.
pub(crate) fn run(config: WorkerConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("jobstore-worker")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(work(config))
}

async fn work(config: WorkerConfig) -> Result<()> {
    let client = Client::new(&config.url, config.token.clone(), config.ca_file.as_deref())?;
    let (interrupt_tx, interrupt) = watch::channel(false);
    let (stop_tx, mut stopping) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let shared = Arc::new(Shared {
        client,
        config,
        interrupt,
    });
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt_signal = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt_signal.recv() => {}
        }
        log::info!("stopping: no more claims; running commands get the grace period");
        let _ = stop_tx.send(true);
    });
    eprintln!(
        "worker {} claiming from {} on {} (up to {} at once)",
        shared.config.name,
        shared.config.queues.join(", "),
        shared.client.url(),
        shared.config.concurrency
    );

    let mut running = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    while !*stopping.borrow() {
        // Wait for a free slot, then take every free slot for one claim.
        let first = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit?,
            _ = stopping.changed() => break,
        };
        let mut permits = vec![first];
        while let Ok(permit) = Arc::clone(&slots).try_acquire_owned() {
            permits.push(permit);
        }
        while running.try_join_next().is_some() {}
        let claim = json!({
            "worker": shared.config.name,
            "queues": shared.config.queues,
            "max": permits.len(),
            "lease_ms": u64::try_from(shared.config.lease.as_millis()).unwrap_or(u64::MAX),
            "wait_ms": CLAIM_WAIT_MS,
        });
        let answer = tokio::select! {
            answer = shared.client.json(Method::POST, "/v1/claim", &claim, Some(Duration::from_millis(CLAIM_WAIT_MS + 10_000))) => answer,
            _ = stopping.changed() => break,
        };
        let jobs = match answer {
            Ok(answer) => {
                backoff = Duration::from_millis(100);
                answer["jobs"].as_array().cloned().unwrap_or_default()
            }
            Err(err) => {
                if err.is_transient() {
                    log::warn!("claim failed, retrying in {backoff:?}: {err}");
                } else {
                    log::error!("claim refused, retrying in {backoff:?}: {err}");
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stopping.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        for document in jobs {
            let Some(job) = Claimed::from_json(&document) else {
                log::error!("the daemon sent a job without id, kind or lease: {document}");
                continue;
            };
            let Some(permit) = permits.pop() else {
                log::error!(
                    "the daemon sent more jobs than asked for; job {} runs anyway",
                    job.id
                );
                running.spawn(job::run(Arc::clone(&shared), job));
                continue;
            };
            let shared = Arc::clone(&shared);
            running.spawn(async move {
                job::run(shared, job).await;
                drop(permit);
            });
        }
    }

    // Stopping: running commands get the grace period, then are interrupted.
    if !running.is_empty() {
        log::info!(
            "waiting up to {:?} for {} running commands",
            shared.config.grace,
            running.len()
        );
        let finished = tokio::time::timeout(shared.config.grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if finished.is_err() {
            log::warn!("grace period over: stopping {} commands", running.len());
            let _ = interrupt_tx.send(true);
            while running.join_next().await.is_some() {}
        }
    }
    log::info!("worker stopped");
    Ok(())
}
