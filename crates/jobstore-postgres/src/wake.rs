//! Wake-ups across daemons: a job one daemon made claimable wakes the waiting claims of every
//! daemon on the database at once, through PostgreSQL's `LISTEN`/`NOTIFY` on the channel
//! [`CHANNEL`].
//!
//! - The **notifier** thread sends `NOTIFY` when the store tells the driver that a commit of
//!   this process may have made jobs claimable ([`Wakes::jobs_available`], called on the
//!   writer that answered the write: it only sets a flag). Tellings that arrive while one
//!   `NOTIFY` is under way are merged into the next one, so a burst of creates costs a few
//!   notifications, never one per job, and no write waits for any. Its connection commits
//!   asynchronously (`synchronous_commit = off`): a notification is worth no disk flush.
//! - The **listener** thread holds a connection that `LISTEN`s, waits for notifications and
//!   wakes the store's waiting claims ([`jobstore::driver::Waker`]) once per batch of them; it
//!   skips the notifications of its own driver's notifier (the store woke its claims itself).
//!   When its connection ends (a server restart) it connects again, with the writers'
//!   backoff, and wakes the claims once more: notifications sent meanwhile were lost.
//!
//! Both stop when the driver is dropped: the notifier at once, the listener within
//! [`TICK`] (it waits for notifications that long at a time), each within the connect
//! timeout when it is connecting.
//!
//! Why not a trigger calling `pg_notify` when a job row becomes claimable: PostgreSQL
//! serialises the commits of every transaction that notified, cluster-wide (a lock held from
//! the notification queue's insert to the end of the commit, its WAL flush included), so every
//! create would commit one at a time behind the others. Out of band, one notification stands
//! for many commits, and none of them waits. Measured on a 2-core machine (pgbench, 8
//! clients, one-row inserts, `fsync` on): about 6,000 inserts/s alone; 1,500–2,000/s with a
//! `pg_notify` in each insert's transaction; 5,400–5,600/s beside a separate connection that
//! notified 200 times a second with asynchronous commit. What this gives up: a job written
//! by anything but a jobstore store (by hand, with `psql`) notifies no one; the re-poll finds
//! it.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use jobstore::driver::Waker;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config};

use crate::connect::{self, Backoff, Detailed, Health};

/// The channel of the notifications.
pub(crate) const CHANNEL: &str = "jobstore_jobs_available";

/// How long the listener waits for notifications at a time (then it checks whether the
/// driver is being dropped).
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// How long the listener's connection may stay silent before it asks the server whether it is
/// still there (a connection can break without a word: a network partition).
const PROBE_AFTER: Duration = Duration::from_secs(30);

/// What the notifier, the listener and the driver share.
pub(crate) struct Wakes {
    config: Config,
    health: Arc<Health>,
    state: Mutex<WakeState>,
    changed: Condvar,
    /// The backend process id of the notifier's connection (0 without one): the listener skips
    /// what it sent.
    notifier_pid: AtomicI32,
}

#[derive(Default)]
struct WakeState {
    /// A commit of this process may have made jobs claimable since the last `NOTIFY`.
    pending: bool,
    /// The driver is being dropped.
    stopping: bool,
    /// The stores to wake.
    wakers: Vec<Waker>,
}

impl Wakes {
    /// For connections of `config`.
    pub(crate) fn new(config: Config, health: Arc<Health>) -> Wakes {
        Wakes {
            config,
            health,
            state: Mutex::default(),
            changed: Condvar::new(),
            notifier_pid: AtomicI32::new(0),
        }
    }

    /// Tells the notifier that a commit may have made jobs claimable (returns at once).
    pub(crate) fn jobs_available(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.pending = true;
        }
        self.changed.notify_all();
    }

    /// Adds a store to wake.
    pub(crate) fn add_waker(&self, waker: Waker) {
        if let Ok(mut state) = self.state.lock() {
            state.wakers.push(waker);
        }
    }

    /// Asks both threads to end.
    pub(crate) fn stop(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.stopping = true;
        }
        self.changed.notify_all();
    }

    fn stopping(&self) -> bool {
        self.state.lock().map_or(true, |state| state.stopping)
    }

    /// Waits for `pause` unless the driver is being dropped meanwhile; answers whether it is.
    fn pause(&self, pause: Duration) -> bool {
        let Ok(state) = self.state.lock() else {
            return true;
        };
        self.changed
            .wait_timeout_while(state, pause, |state| !state.stopping)
            .map_or(true, |(state, _)| state.stopping)
    }

    /// Wakes every store still there (outside the lock: a store's listeners run meanwhile)
    /// and forgets those that are gone. Only the listener thread wakes, and stores are only
    /// ever added at the end meanwhile, so the first ones stay where they were.
    fn wake(&self) {
        let wakers = match self.state.lock() {
            Ok(state) => state.wakers.clone(),
            Err(_) => return,
        };
        let alive: Vec<bool> = wakers.iter().map(Waker::wake).collect();
        if alive.contains(&false)
            && let Ok(mut state) = self.state.lock()
        {
            let mut index = 0;
            state.wakers.retain(|_| {
                let keep = alive.get(index).copied().unwrap_or(true);
                index += 1;
                keep
            });
        }
    }
}

/// The notifier thread's loop: a `NOTIFY` after each telling (merged while one is under way).
pub(crate) fn notifier(wakes: &Wakes) {
    // Connected at once, so that the first notification does not wait for a connection.
    let mut client: Option<Client> = notifier_connection(wakes).ok();
    let mut backoff = Backoff::default();
    loop {
        {
            let Ok(state) = wakes.state.lock() else {
                return;
            };
            let Ok(mut state) = wakes
                .changed
                .wait_while(state, |state| !state.pending && !state.stopping)
            else {
                return;
            };
            if state.stopping {
                return;
            }
            state.pending = false;
        }
        let sent = match client.as_mut() {
            Some(open) if !open.is_closed() => open.batch_execute(&format!("NOTIFY {CHANNEL}")),
            _ => match notifier_connection(wakes) {
                Ok(mut open) => {
                    backoff.reset();
                    let sent = open.batch_execute(&format!("NOTIFY {CHANNEL}"));
                    client = Some(open);
                    sent
                }
                Err(err) => Err(err),
            },
        };
        if let Err(err) = sent {
            let err = Detailed(err);
            // Told again once connected: the other daemons re-poll meanwhile.
            log::debug!("a wake-up notification failed: {err}");
            client = None;
            wakes.notifier_pid.store(0, Ordering::Relaxed);
            backoff.failed(&err);
            if let Ok(mut state) = wakes.state.lock() {
                state.pending = true;
            }
            if wakes.pause(backoff.remaining()) {
                return;
            }
        }
    }
}

/// The notifier's connection: asynchronous commits, its process id told to the listener.
fn notifier_connection(wakes: &Wakes) -> Result<Client, postgres::Error> {
    let mut client = connect::open(&wakes.config, &wakes.health)?;
    client.batch_execute("SET synchronous_commit = off")?;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])?
        .try_get(0)?;
    wakes.notifier_pid.store(pid, Ordering::Release);
    Ok(client)
}

/// The listener thread's loop: `LISTEN`, then wake the stores for every batch of
/// notifications of other processes, connecting again whenever the connection ends.
pub(crate) fn listener(wakes: &Wakes) {
    let mut backoff = Backoff::default();
    while !wakes.stopping() {
        let listening = connect::open(&wakes.config, &wakes.health).and_then(|mut client| {
            client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
            Ok(client)
        });
        let mut client = match listening {
            Ok(client) => client,
            Err(err) => {
                let err = Detailed(err);
                log::debug!("the wake-up listener cannot connect: {err}");
                backoff.failed(&err);
                if wakes.pause(backoff.remaining()) {
                    return;
                }
                continue;
            }
        };
        backoff.reset();
        // Whatever was notified while there was no listener is lost: the claims look now.
        wakes.wake();
        if let Err(err) = listen(wakes, &mut client) {
            log::info!("the wake-up listener's connection ended ({err}); connecting again");
        }
    }
}

/// Waits for notifications on `client` until the driver is dropped (`Ok`) or the connection
/// ends (`Err`, why).
fn listen(wakes: &Wakes, client: &mut Client) -> Result<(), String> {
    let mut silent = Duration::ZERO;
    while !wakes.stopping() {
        // The senders of what arrived: the first within a tick, then those already here,
        // without waiting again (one wake-up for the lot).
        let mut senders = Vec::new();
        {
            let mut notifications = client.notifications();
            let mut waiting = notifications.timeout_iter(TICK);
            if let Some(first) = waiting.next().map_err(|err| Detailed::message(&err))? {
                senders.push(first.process_id());
            }
            drop(waiting);
            let mut here = notifications.iter();
            while let Some(next) = here.next().map_err(|err| Detailed::message(&err))? {
                senders.push(next.process_id());
            }
        }
        // Read once they arrived: the notifier tells its process id before it sends, so a
        // notifier that connected during the wait is known by now.
        let own = wakes.notifier_pid.load(Ordering::Acquire);
        if senders.iter().any(|&pid| pid != own) {
            wakes.wake();
        }
        let any = !senders.is_empty();
        if client.is_closed() {
            return Err("the connection closed".into());
        }
        silent = if any { Duration::ZERO } else { silent + TICK };
        if silent >= PROBE_AFTER {
            client
                .simple_query("")
                .map_err(|err| Detailed::message(&err))?;
            silent = Duration::ZERO;
        }
    }
    Ok(())
}
