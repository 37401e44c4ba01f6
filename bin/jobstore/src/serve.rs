//! `jobstore serve`: opens the store, binds, serves, maintains, and stops cleanly on signals.
//!
//! SIGTERM/SIGINT stop accepting, end long polls at once, let in-flight requests finish,
//! checkpoint (unless Litestream owns checkpoints, `replication = "litestream"`) and exit 0.
//! SIGHUP reloads the tokens file and the TLS certificate and key (new connections get the new
//! pair; open ones keep theirs). Under systemd (`NOTIFY_SOCKET`): `READY=1` after migrate and
//! bind, `STOPPING=1` on drain, `WATCHDOG=1` at half of `WATCHDOG_USEC` while the store answers.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result, bail};
use jobstore::{Store, StoreOptions};
use jobstore_http::tls::Reloaded;
use jobstore_http::{App, Limits, Tls, Tokens};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::{Replication, ServeConfig};
use crate::location::Location;
use crate::{litestream, systemd};

/// Runs the daemon until a shutdown signal.
///
/// # Errors
/// A store that cannot open, an address that cannot be bound, a TLS certificate or key that
/// cannot be used, a refused configuration (see [`refusal`]).
pub(crate) fn run(config: ServeConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("jobstore-http")
        .build()
        .context("cannot start the runtime")?;
    // The store's last handle goes here, after the runtime and every task that held one: the
    // PostgreSQL driver closes its connections by blocking on a runtime of their own, which a
    // thread of this runtime may not do (a connection task that drops the last handle at the
    // end of a drain panicked, and the daemon aborted instead of exiting 0).
    let kept = OnceLock::new();
    let served = runtime.block_on(serve(config, &kept));
    drop(runtime);
    drop(kept);
    served
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

/// Whether `ip` reaches only this machine: 127.0.0.0/8, `::1`, or 127.0.0.0/8 mapped into
/// IPv6 (`::ffff:127.0.0.1`). Everything else, the unspecified `0.0.0.0` and `::` included,
/// is beyond loopback.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Why serving on `address` is refused, if it is. Beyond loopback: without tokens anyone could
/// use the API; with tokens over plain HTTP they would cross the network in the clear, which
/// takes `allow_plaintext` (a TLS-terminating proxy in front, say). Loopback is always served.
pub(crate) fn refusal(
    address: SocketAddr,
    tokens: bool,
    tls: bool,
    allow_plaintext: bool,
) -> Option<String> {
    if is_loopback(address.ip()) {
        return None;
    }
    if !tokens {
        return Some(format!(
            "refusing to listen on {address} without a tokens file: anyone could reach the API \
             (pass --tokens FILE, or listen on 127.0.0.1)"
        ));
    }
    if !tls && !allow_plaintext {
        return Some(format!(
            "refusing to serve plain HTTP on {address}: bearer tokens would cross the network \
             in the clear (set tls_cert and tls_key to serve HTTPS, or allow_plaintext = true \
             in the config when a TLS proxy in front of the daemon encrypts the traffic)"
        ));
    }
    None
}

/// The TLS certificate and key, when configured.
fn load_tls(config: &ServeConfig) -> Result<Option<Arc<Tls>>> {
    let Some(files) = &config.tls else {
        return Ok(None);
    };
    let tls = Tls::load(&files.cert, &files.key).context("cannot serve HTTPS")?;
    log::info!(
        "TLS certificate {}, key {}",
        files.cert.display(),
        files.key.display()
    );
    Ok(Some(Arc::new(tls)))
}

/// Open files the daemon keeps besides its sockets: the database and its WAL and shared
/// memory for each pooled reader, the PostgreSQL connections, the listener, the log, TLS files.
const FILES_BESIDE_SOCKETS: u64 = 256;

/// Raises the process's soft limit of open files to its hard limit (as Go's runtime does):
/// each connection is one, and the soft default (often 1,024) is below what the connection
/// limits hold (`Limits::max_sockets`); past it `accept` fails for every client alike. Warns
/// when even the hard limit is short (under systemd: `LimitNOFILE=`, which the packaged unit
/// sets).
fn raise_open_files_limit(limits: &Limits) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let mut now = soft;
    if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => now = hard,
            Err(err) => log::debug!("open-file limit left at {soft}: {err}"),
        }
    }
    let needed = u64::try_from(limits.max_sockets())
        .unwrap_or(u64::MAX)
        .saturating_add(FILES_BESIDE_SOCKETS);
    if now < needed {
        log::warn!(
            "the open-file limit is {now}; {} connections and {} silent ones need about {needed} \
             (raise it: LimitNOFILE= under systemd, ulimit -n in a shell; or lower \
             [limits] max_connections)",
            limits.max_connections,
            limits.max_silent_connections()
        );
    }
}

/// Serves until a shutdown signal; `kept` gets a handle of the store as soon as it opens.
async fn serve(config: ServeConfig, kept: &OnceLock<Store>) -> Result<()> {
    raise_open_files_limit(&config.limits);
    let tokens = load_tokens(&config)?;
    let tls = load_tls(&config)?;
    let refused = |address| {
        refusal(
            address,
            tokens.is_some(),
            tls.is_some(),
            config.allow_plaintext,
        )
    };
    let activated = std::env::var_os("LISTEN_FDS").is_some();
    if !activated && let Some(refused) = refused(config.listen) {
        bail!(refused);
    }
    let options = StoreOptions {
        durability: config.durability,
        max_batch_bytes: config.max_batch_bytes,
        max_batches_per_job: config.max_batches_per_job,
        checkpoints: config.replication.checkpoints(),
        ..StoreOptions::default()
    };
    let location = Location::of(&config.db);
    match location.file() {
        Some(file)
            if config.replication == Replication::None && litestream::meta_dir(file).is_dir() =>
        {
            log::warn!(
                "{} is there: Litestream replicates this database, but replication is not set \
                 to \"litestream\" and the daemon's own checkpoints will make it take full \
                 snapshots",
                litestream::meta_dir(file).display()
            );
        }
        None if config.replication != Replication::None => bail!(
            "replication = \"{}\" is for a SQLite file; {} is a PostgreSQL database, which the \
             server replicates (streaming replicas, a managed service)",
            config.replication.as_str(),
            location.describe()
        ),
        _ => {}
    }
    let opening = location.clone();
    let postgres = config.postgres.clone();
    let store = tokio::task::spawn_blocking(move || opening.open(options, &postgres))
        .await
        .context("opening the store panicked")??;
    let _ = kept.set(store.clone());
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
    if let Some(refused) = refused(address) {
        bail!(refused);
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
    // The handlers are installed here, before the daemon says it listens: a signal sent as
    // soon as it does must reach them, not the default action (which would end the process).
    let watched = Signals {
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
        hangup: signal(SignalKind::hangup())?,
    };
    let signals = tokio::spawn(handle_signals(
        watched,
        Arc::clone(&app),
        tls.clone(),
        config.clone(),
        stop,
    ));

    log::info!(
        "database {} (durability {}, replication {})",
        location.describe(),
        config.durability.as_str(),
        config.replication.as_str()
    );
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("listening on {scheme}://{address}");
    systemd::notify_ready();

    jobstore_http::serve(listener, Arc::clone(&app), tls, stopped).await?;

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

/// The signals the daemon acts on, registered before it starts serving.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

async fn handle_signals(
    mut signals: Signals,
    app: Arc<App>,
    tls: Option<Arc<Tls>>,
    config: ServeConfig,
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
                if let Some(tls) = &tls {
                    reload_tls(tls);
                }
            }
        }
    }
    log::info!("shutting down: draining in-flight requests");
    systemd::notify_stopping();
    let _ = stop.send(true);
    Ok(())
}

/// Reads the TLS certificate and key again (SIGHUP): new connections get the new pair, open
/// ones keep theirs; a pair that cannot be used leaves the one in use.
fn reload_tls(tls: &Tls) {
    let (cert, key) = (tls.cert_path().display(), tls.key_path().display());
    match tls.reload() {
        Ok(Reloaded::Changed) => {
            log::info!(
                "reloaded the TLS certificate {cert} and key {key}: new connections use them"
            );
        }
        Ok(Reloaded::Unchanged) => {
            let copied = std::env::var_os("CREDENTIALS_DIRECTORY").is_some_and(|dir| {
                tls.key_path().starts_with(&dir) || tls.cert_path().starts_with(&dir)
            });
            let hint = if copied {
                " (systemd copies credentials when the service starts: a restart loads new files)"
            } else {
                ""
            };
            log::info!("the TLS certificate {cert} and key {key} are unchanged{hint}");
        }
        Err(err) => log::error!("SIGHUP: keeping the TLS certificate and key in use: {err}"),
    }
}

/// A WAL this large under Litestream means Litestream is not checkpointing it (not running,
/// or held back): its emergency checkpoint is at about 500 MB.
const UNCHECKPOINTED_WAL_WARNING: u64 = 1 << 30;

/// Rescues expired leases, purges by retention, checkpoints the WAL (under Litestream:
/// watches its size instead) and samples queue depth (for `GET /v1/queues/depth`), each on
/// its interval.
async fn maintain(app: Arc<App>, config: ServeConfig, mut stopped: watch::Receiver<bool>) {
    let store = app.store().clone();
    let m = config.maintenance;
    let mut rescue = tokio::time::interval(m.rescue_interval);
    let mut purge = tokio::time::interval(m.purge_interval);
    let mut checkpoint = tokio::time::interval(m.checkpoint_interval);
    let mut depth = tokio::time::interval(jobstore_http::DEPTH_SAMPLE_INTERVAL);
    for timer in [&mut rescue, &mut purge, &mut checkpoint, &mut depth] {
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
            _ = depth.tick() => {
                let app = Arc::clone(&app);
                Box::new(move || {
                    app.sample_queue_depth()?;
                    Ok("sampled queue depth".to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn loopback_is_127_8_and_ipv6_one_mapped_or_not() {
        for text in [
            "127.0.0.1:1",
            "127.0.0.2:1",
            "127.255.255.254:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(addr(text).ip()), "{text}");
        }
        for text in [
            "0.0.0.0:1",
            "[::]:1",
            "192.0.2.1:1",
            "10.0.0.1:1",
            "[2001:db8::1]:1",
            "[::ffff:192.0.2.1]:1",
            "128.0.0.1:1",
        ] {
            assert!(!is_loopback(addr(text).ip()), "{text}");
        }
    }

    #[test]
    fn beyond_loopback_takes_tokens_and_tls_or_the_plaintext_allowance() {
        let beyond = addr("0.0.0.0:8080");
        // (tokens, tls, allow_plaintext) → refused?
        let cases = [
            ((false, false, false), true),
            ((false, true, false), true),
            ((false, false, true), true),
            ((true, false, false), true),
            ((true, true, false), false),
            ((true, false, true), false),
            ((true, true, true), false),
        ];
        for ((tokens, tls, plain), refused) in cases {
            assert_eq!(
                refusal(beyond, tokens, tls, plain).is_some(),
                refused,
                "tokens {tokens}, tls {tls}, allow_plaintext {plain}"
            );
        }
        let plain = refusal(beyond, true, false, false).unwrap();
        assert!(
            plain.contains("plain HTTP") && plain.contains("allow_plaintext"),
            "{plain}"
        );
        let open = refusal(beyond, false, true, false).unwrap();
        assert!(open.contains("without a tokens file"), "{open}");
        for loopback in ["127.0.0.1:8080", "[::1]:8080"] {
            for tokens in [false, true] {
                assert_eq!(refusal(addr(loopback), tokens, false, false), None);
            }
        }
    }
}
