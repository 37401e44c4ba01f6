//! Reaching the server: opening connections (bounded by the connect timeout), telling an
//! error of reach (the server down, restarting, the connection lost) from any other, and what
//! the driver knows of the server's reach ([`Health`]), shared by its writers, its read pool
//! and its wake-up threads.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use jobstore::Error;
use postgres::config::TargetSessionAttrs;
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};

/// The first pause after a failed try to connect; it doubles up to [`MAX_BACKOFF`].
pub(crate) const MIN_BACKOFF: Duration = Duration::from_millis(100);

/// The longest pause between tries to connect to a server out of reach: once it is back, the
/// driver is whole again within about this.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// How long a failure to connect counts as "the server is out of reach" without a newer try.
/// Every part of the driver tries again at least every [`MAX_BACKOFF`] while it needs the
/// server (the wake-up listener always does), so this only ends a stale verdict.
const DOWN_FRESH: Duration = Duration::from_secs(5);

/// Whether `err` says the server cannot be reached: the connection closed or broke (an I/O
/// error), a connection exception (SQLSTATE class 08), the server shutting down (57P01
/// `admin_shutdown`, 57P02 `crash_shutdown`), starting up or recovering (57P03
/// `cannot_connect_now`), or refusing new sessions (53300 `too_many_connections`). Such an
/// error ends the session: nothing of its open transaction was kept.
pub(crate) fn out_of_reach(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        let code = code.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300");
    }
    // An I/O error of the socket (reset, broken pipe, refused, timed out).
    std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>())
}

/// Whether `err` says the server takes no writes now: SQLSTATE 25006
/// `read_only_sql_transaction`, the answer of a standby still in recovery (a multi-host URL
/// without `target_session_attrs=read-write` may connect to one) or of a server made
/// read-only (`default_transaction_read_only`). Its transaction wrote nothing and the session
/// stays open; a standby once promoted takes writes on the same sessions.
fn read_only(err: &postgres::Error) -> bool {
    err.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION)
}

/// Whether `err` says the write met other sessions' locks and was undone: a deadlock
/// (40P01) whose victim it was, a serialization failure (40001), a lock not obtained in time
/// (55P03, under an operator's `lock_timeout`). Nothing of it was kept; the same write may
/// pass once the others ended.
fn contended(err: &postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(
            &SqlState::T_R_DEADLOCK_DETECTED
                | &SqlState::T_R_SERIALIZATION_FAILURE
                | &SqlState::LOCK_NOT_AVAILABLE
        )
    )
}

/// The store's error for `err`: [`Error::Unavailable`] when the server cannot be reached or
/// takes no writes now, [`Error::Busy`] when the write lost to other sessions' locks (as
/// SQLite's is when another process holds the file's), else [`Error::Storage`] (the
/// statement failed; its write is rolled back).
pub(crate) fn classify(err: postgres::Error) -> Error {
    if out_of_reach(&err) || read_only(&err) {
        Error::Unavailable(Box::new(Detailed(err)))
    } else if contended(&err) {
        log::warn!("a write was undone by a lock conflict: {}", Detailed(err));
        Error::Busy
    } else {
        Error::Storage(Box::new(Detailed(err)))
    }
}

/// A PostgreSQL error shown with its cause: the library's own words (`db error`, `error
/// connecting to server`) say little without the server's message or the socket's error.
#[derive(Debug)]
pub(crate) struct Detailed(pub(crate) postgres::Error);

impl std::fmt::Display for Detailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&Detailed::message(&self.0))
    }
}

impl Detailed {
    /// `err` with its cause, as text.
    pub(crate) fn message(err: &postgres::Error) -> String {
        let mut text = err.to_string();
        if let Some(cause) = std::error::Error::source(err) {
            text.push_str(": ");
            text.push_str(&cause.to_string());
        }
        text
    }
}

impl std::error::Error for Detailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// What the driver knows of the server's reach: the last failure to open a connection, until
/// a connection opens or answers again. Transitions are logged once each (a server down for
/// a minute is two log lines, not a line per try).
#[derive(Debug, Default)]
pub(crate) struct Health {
    down: Mutex<Option<Down>>,
}

#[derive(Debug)]
struct Down {
    /// When the server was first found out of reach.
    since: Instant,
    /// The newest failure.
    last: Instant,
    /// Its message.
    reason: String,
}

impl Health {
    /// A connection could not be opened (or was refused by a server shutting down).
    pub(crate) fn failed(&self, err: &postgres::Error) {
        let Ok(mut down) = self.down.lock() else {
            return;
        };
        let now = Instant::now();
        let reason = Detailed::message(err);
        match down.as_mut() {
            Some(down) => {
                down.last = now;
                down.reason = reason;
            }
            None => {
                log::warn!("the PostgreSQL server is out of reach: {reason}");
                *down = Some(Down {
                    since: now,
                    last: now,
                    reason,
                });
            }
        }
    }

    /// A connection opened or answered: the server is reachable.
    pub(crate) fn reached(&self) {
        let Ok(mut down) = self.down.lock() else {
            return;
        };
        if let Some(was) = down.take() {
            log::info!(
                "the PostgreSQL server is reachable again (out of reach for {:.1} s)",
                was.since.elapsed().as_secs_f64()
            );
        }
    }

    /// Why the server is out of reach, when a try to connect failed lately and none has
    /// succeeded since.
    pub(crate) fn down(&self) -> Option<String> {
        let down = self.down.lock().ok()?;
        down.as_ref()
            .filter(|down| down.last.elapsed() < DOWN_FRESH)
            .map(|down| down.reason.clone())
    }
}

/// Warns when `config` names several hosts and takes whichever answers first: after a
/// failover the first reachable host may be a standby (or an old primary brought back as
/// one), whose sessions refuse every write until it is promoted.
/// `target_session_attrs=read-write` makes each connection go on to the host that takes
/// writes.
pub(crate) fn warn_any_of_several_hosts(config: &Config) {
    let hosts = config.get_hosts().len().max(config.get_hostaddrs().len());
    if hosts > 1 && config.get_target_session_attrs() == TargetSessionAttrs::Any {
        log::warn!(
            "the database URL names {hosts} hosts without target_session_attrs=read-write: \
             connections go to the first that answers, a standby included, and its writes \
             are refused (503) until it is promoted"
        );
    }
}

/// Opens a connection (TCP connect bounded by the configuration's connect timeout) and tells
/// `health` how it went.
pub(crate) fn open(config: &Config, health: &Health) -> Result<Client, postgres::Error> {
    match config.connect(NoTls) {
        Ok(client) => {
            health.reached();
            Ok(client)
        }
        Err(err) => {
            health.failed(&err);
            Err(err)
        }
    }
}

/// Tries to connect again after failures, with a pause that doubles from [`MIN_BACKOFF`] to
/// [`MAX_BACKOFF`]: a part of the driver that needs a connection asks [`Backoff::ready`]
/// first, and refuses its work at once (with the last failure) while the pause runs.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Option<Instant>,
    pause: Duration,
    last: String,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next: None,
            pause: MIN_BACKOFF,
            last: String::new(),
        }
    }
}

impl Backoff {
    /// `Ok` when a try may be made now; else the error to answer meanwhile.
    pub(crate) fn ready(&self) -> Result<(), Error> {
        match self.next {
            Some(next) if Instant::now() < next => Err(Error::Unavailable(
                format!("{} (trying again shortly)", self.last).into(),
            )),
            _ => Ok(()),
        }
    }

    /// How long until the next try may be made.
    pub(crate) fn remaining(&self) -> Duration {
        self.next.map_or(Duration::ZERO, |next| {
            next.saturating_duration_since(Instant::now())
        })
    }

    /// A try failed with `err`: the next waits for the pause, which doubles.
    pub(crate) fn failed(&mut self, err: &dyn std::fmt::Display) {
        self.next = Some(Instant::now() + self.pause);
        self.pause = (self.pause * 2).min(MAX_BACKOFF);
        self.last = err.to_string();
    }

    /// A try succeeded: the next failure waits the shortest pause.
    pub(crate) fn reset(&mut self) {
        *self = Backoff::default();
    }

    /// The next try may be made at once (the session was ended by a server restart, which
    /// says nothing of the server being down now).
    pub(crate) fn now(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backoff_doubles_to_its_cap_and_refuses_meanwhile() {
        let mut backoff = Backoff::default();
        assert!(backoff.ready().is_ok());
        backoff.failed(&"connection refused");
        assert!(matches!(backoff.ready(), Err(Error::Unavailable(_))));
        assert!(backoff.remaining() <= MIN_BACKOFF);
        for _ in 0..10 {
            backoff.failed(&"connection refused");
        }
        assert!(backoff.remaining() <= MAX_BACKOFF);
        assert!(backoff.remaining() > MAX_BACKOFF / 2);
        backoff.now();
        assert!(backoff.ready().is_ok());
        backoff.reset();
        backoff.failed(&"refused");
        assert!(backoff.remaining() <= MIN_BACKOFF);
    }

    #[test]
    fn a_refused_connection_is_out_of_reach() {
        // Nothing listens on port 1 of the loopback.
        let mut config: Config = "postgres://postgres@127.0.0.1:1/none".parse().expect("url");
        config.connect_timeout(Duration::from_secs(2));
        let health = Health::default();
        let Err(err) = open(&config, &health) else {
            panic!("nothing listens there");
        };
        assert!(out_of_reach(&err), "{err}");
        assert!(matches!(classify(err), Error::Unavailable(_)));
        assert!(health.down().is_some());
        health.reached();
        assert!(health.down().is_none());
    }
}
