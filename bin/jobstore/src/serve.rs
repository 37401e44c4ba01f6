//! `jobstore serve`: opens the store, binds, serves, maintains, and stops cleanly on signals.
//!
//! SIGTERM/SIGINT stop accepting, end long polls at once, let in-flight requests finish,
//! checkpoint (unless Litestream owns checkpoints, `replication = "litestream"`) and exit 0.
//! SIGHUP reloads the tokens file. Under systemd (`NOTIFY_SOCKET`): `READY=1` after migrate and
//! bind, `STOPPING=1` on drain, `WATCHDOG=1` at half of `WATCHDOG_USEC` while the store answers.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use jobstore::{Store, StoreOptions};
use jobstore_http::{App, Tokens};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

use crate::config::{Replication, ServeConfig};
use crate::{litestream, systemd};

/// Runs the daemon until a shutdown signal.
///
/// # Errors
/// A store that cannot open, an address that cannot be bound, a refused configuration.
pub fn run(config: ServeConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("jobstore-http")
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(serve(config))
}

/// The tokens file: the configured one, else systemd's credential `tokens`
/// (`LoadCredential=tokens:/etc/jobstore/tokens`) when there is one.
fn tokens_path(config: &ServeConfig) -> Option<std::path::PathBuf> {
    config.tokens.clone().or_else(|| {
        let credential =
            std::path::Path::new(&std::env::var_os("CREDENTIALS_DIRECTORY")?).join("tokens");
        credential.exists().then_some(credential)
    })
}

fn load_tokens(config: &ServeConfig) -> Result<Option<Tokens>> {
    let Some(path) = &tokens_path(config) else {
        return Ok(None);
    };
    let tokens = Tokens::load(path).with_context(|| format!("tokens file {}", path.display()))?;
    if tokens.is_empty() {
        log::warn!(
            "tokens file {} holds no token: every request will be refused",
            path.display()
        );
    }
    Ok(Some(tokens))
}

async fn serve(config: ServeConfig) -> Result<()> {
    let tokens = load_tokens(&config)?;
    let activated = std::env::var_os("LISTEN_FDS").is_some();
    if tokens.is_none() && !activated && !config.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {} without a tokens file: anyone could reach the API \
             (pass --tokens FILE, or listen on 127.0.0.1)",
            config.listen
        );
    }
    let options = StoreOptions {
        durability: config.durability,
        max_batch_bytes: config.max_batch_bytes,
        max_batches_per_job: config.max_batches_per_job,
        checkpoints: config.replication.checkpoints(),
        ..StoreOptions::default()
    };
    if config.replication == Replication::None && litestream::meta_dir(&config.db).is_dir() {
        log::warn!(
            "{} is there: Litestream replicates this database, but replication is not set to \
             \"litestream\" and the daemon's own checkpoints will make it take full snapshots",
            litestream::meta_dir(&config.db).display()
        );
    }
    let db = config.db.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_with(&db, options))
        .await
        .context("opening the store panicked")?
        .with_context(|| format!("cannot open {}", config.db.display()))?;
    // Batches of uploads that a killed process left behind go before the first request.
    let reclaiming = store.clone();
    match tokio::task::spawn_blocking(move || reclaiming.reclaim_abandoned_batches()).await {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => log::info!("deleted {n} incomplete data batches of uploads cut off"),
        Ok(Err(err)) => log::warn!("could not delete incomplete data batches (retried): {err}"),
        Err(err) => log::error!("reclaiming incomplete data batches panicked: {err}"),
    }
    let listener = listener(&config).await?;
    let address = listener.local_addr()?;
    if tokens.is_none() && !address.ip().is_loopback() {
        bail!(
            "refusing to listen on {address} without a tokens file: anyone could reach the API \
             (pass --tokens FILE, or listen on 127.0.0.1)"
        );
    }

    let (stop, stopped) = watch::channel(false);
    let app = App::new(
        store.clone(),
        tokens,
        config.limits.clone(),
        jobstore_http::apis(&config.dialects),
        stopped.clone(),
    );
    let maintenance = tokio::spawn(maintain(Arc::clone(&app), config.clone(), stopped.clone()));
    let watchdog = tokio::spawn(systemd::watchdog(store.clone(), stopped.clone()));
    // Registered here, before the daemon says it listens: a signal sent at once is handled,
    // rather than ending the process by its default action.
    let signals = Signals {
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
        hangup: signal(SignalKind::hangup())?,
    };
    let signals = tokio::spawn(handle_signals(
        Arc::clone(&app),
        config.clone(),
        signals,
        stop,
    ));

    log::info!(
        "database {} (durability {}, replication {})",
        config.db.display(),
        config.durability.as_str(),
        config.replication.as_str()
    );
    eprintln!("listening on http://{address}");
    systemd::notify_ready();

    jobstore_http::serve(listener, Arc::clone(&app), stopped).await?;

    maintenance.abort();
    watchdog.abort();
    signals.abort();
    drop(app);
    let replication = config.replication;
    let checkpointed = tokio::task::spawn_blocking(move || {
        // Under Litestream the WAL is left as it is: Litestream copies the last frames to the
        // replica and checkpoints them itself.
        let done = match replication {
            Replication::None => store.checkpoint().map(Some),
            Replication::Litestream => Ok(None),
        };
        drop(store);
        done
    })
    .await;
    match checkpointed {
        Ok(Ok(Some(_))) => log::info!("checkpointed; stopped"),
        Ok(Ok(None)) => log::info!("stopped; the WAL is left to Litestream"),
        Ok(Err(err)) => log::warn!("final checkpoint failed: {err}"),
        Err(err) => log::warn!("final checkpoint panicked: {err}"),
    }
    Ok(())
}

/// The socket systemd passed (`LISTEN_FDS`, socket activation), or a new one on the
/// configured address.
async fn listener(config: &ServeConfig) -> Result<tokio::net::TcpListener> {
    let mut passed = listenfd::ListenFd::from_env();
    if let Some(socket) = passed
        .take_tcp_listener(0)
        .context("the socket passed by systemd is not a TCP listener")?
    {
        socket.set_nonblocking(true)?;
        log::info!("using the socket passed by systemd");
        return Ok(tokio::net::TcpListener::from_std(socket)?);
    }
    tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))
}

/// The signals the daemon handles.
struct Signals {
    terminate: Signal,
    interrupt: Signal,
    hangup: Signal,
}

async fn handle_signals(
    app: Arc<App>,
    config: ServeConfig,
    mut signals: Signals,
    stop: watch::Sender<bool>,
) -> Result<()> {
    loop {
        tokio::select! {
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
            _ = signals.hangup.recv() => {
                match &tokens_path(&config) {
                    Some(path) => match Tokens::load(path) {
                        Ok(tokens) => {
                            log::info!("reloaded {} tokens from {}", tokens.len(), path.display());
                            app.reload_tokens(tokens);
                        }
                        Err(err) => log::error!("SIGHUP: keeping the old tokens: {err}"),
                    },
                    None => log::info!("SIGHUP: no tokens file to reload"),
                }
            }
        }
    }
    log::info!("shutting down: draining in-flight requests");
    systemd::notify_stopping();
    let _ = stop.send(true);
    Ok(())
}

/// A WAL this large under Litestream means Litestream is not checkpointing it (not running,
/// or held back): its emergency checkpoint is at about 500 MB.
const UNCHECKPOINTED_WAL_WARNING: u64 = 1 << 30;

/// Rescues expired leases, purges by retention and checkpoints the WAL (under Litestream:
/// watches its size instead), each on its interval.
async fn maintain(app: Arc<App>, config: ServeConfig, mut stopped: watch::Receiver<bool>) {
    let store = app.store().clone();
    let m = config.maintenance;
    let mut rescue = tokio::time::interval(m.rescue_interval);
    let mut purge = tokio::time::interval(m.purge_interval);
    let mut checkpoint = tokio::time::interval(m.checkpoint_interval);
    for timer in [&mut rescue, &mut purge, &mut checkpoint] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    loop {
        let store = store.clone();
        let task: Box<dyn FnOnce() -> jobstore::Result<String> + Send> = tokio::select! {
            _ = rescue.tick() => Box::new(move || {
                let ids = store.rescue_expired_leases()?;
                // Deletes that failed on a full disk are retried here once it has room.
                let batches = store.reclaim_abandoned_batches()?;
                Ok(format!("rescued {} jobs, reclaimed {batches} batches", ids.len()))
            }),
            _ = purge.tick() => {
                let app = Arc::clone(&app);
                Box::new(move || {
                    let finished = store.purge_finished(m.retention_ms)?;
                    let uploads = store.purge_stale_uploads(m.stale_upload_ms)?;
                    let batches = store.purge_incomplete_batches(3_600_000)?;
                    let mut done = format!(
                        "purged {finished} finished jobs, {uploads} stale uploads, \
                         {batches} broken batches"
                    );
                    // Each API's own upkeep (expired uploads of its jobs and the like).
                    for (api, changed) in app.maintain() {
                        done.push_str(&format!(", {api}: {} jobs", changed?));
                    }
                    Ok(done)
                })
            }
            _ = checkpoint.tick() => match config.replication {
                Replication::None => Box::new(move || {
                    let complete = store.checkpoint()?;
                    Ok(format!("checkpoint {}", if complete { "complete" } else { "partial" }))
                }),
                Replication::Litestream => Box::new(move || {
                    let wal = litestream::wal_path(store.path());
                    let bytes = std::fs::metadata(&wal).map_or(0, |m| m.len());
                    if bytes > UNCHECKPOINTED_WAL_WARNING {
                        log::warn!(
                            "{} holds {} MiB: is Litestream running? Under replication = \
                             \"litestream\" only Litestream checkpoints the WAL",
                            wal.display(),
                            bytes >> 20
                        );
                    }
                    Ok(format!("WAL {bytes} bytes, left to Litestream"))
                }),
            },
            _ = stopped.changed() => return,
        };
        match tokio::task::spawn_blocking(task).await {
            Ok(Ok(done)) => log::debug!("maintenance: {done}"),
            Ok(Err(err)) => log::warn!("maintenance failed: {err}"),
            Err(err) => log::error!("maintenance panicked: {err}"),
        }
    }
}
