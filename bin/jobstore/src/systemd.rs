//! systemd integration: readiness, stopping and watchdog notifications. Every call is a no-op
//! without `NOTIFY_SOCKET`, so the daemon runs the same by hand.

use jobstore::Store;
use sd_notify::NotifyState;
use tokio::sync::watch;

/// `READY=1`: migrated, bound, serving.
pub(crate) fn notify_ready() {
    if let Err(err) = sd_notify::notify(&[NotifyState::Ready]) {
        log::warn!("sd_notify READY failed: {err}");
    }
}

/// `STOPPING=1`: draining.
pub(crate) fn notify_stopping() {
    if let Err(err) = sd_notify::notify(&[NotifyState::Stopping]) {
        log::warn!("sd_notify STOPPING failed: {err}");
    }
}

/// Sends `WATCHDOG=1` at half of `WATCHDOG_USEC` for as long as the store answers a ping (a
/// read and an empty write): a daemon whose writer hangs stops pinging and systemd restarts it.
/// A PostgreSQL server out of reach is answered at once (`Error::Unavailable`): the daemon is
/// alive, answers 503 meanwhile and reconnects by itself, while a restarted daemon could not
/// even start until the server is back; so that answer keeps the watchdog fed too.
pub(crate) async fn watchdog(store: Store, mut stopped: watch::Receiver<bool>) {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut every = tokio::time::interval(timeout / 2);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.changed() => return,
        }
        let store = store.clone();
        match tokio::task::spawn_blocking(move || store.ping()).await {
            Ok(Ok(())) => {
                if let Err(err) = sd_notify::notify(&[NotifyState::Watchdog]) {
                    log::warn!("sd_notify WATCHDOG failed: {err}");
                }
            }
            Ok(Err(err @ jobstore::Error::Unavailable(_))) => {
                log::warn!("watchdog: the database is out of reach, the daemon is alive: {err}");
                if let Err(err) = sd_notify::notify(&[NotifyState::Watchdog]) {
                    log::warn!("sd_notify WATCHDOG failed: {err}");
                }
            }
            Ok(Err(err)) => log::error!("watchdog: the store does not answer: {err}"),
            Err(err) => log::error!("watchdog: ping panicked: {err}"),
        }
    }
}
