//! The PostgreSQL driver of the store's seam ([`jobstore::driver`]): everything the SQLite
//! driver does, with the same meaning, for several daemons sharing one database.
//!
//! Writes run on a few writer threads, each with its own connection: one transaction per
//! write (so a failing write is undone alone), answered after its `COMMIT`; a `COMMIT` that
//! failed is [`Error::OutcomeUnknown`]. Reads take a connection of a bounded r2d2 pool. A
//! claim is one `UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING …`: two
//! daemons never lease one job, and neither waits for the other's rows. Rescue and the purges
//! lock what they take with `SKIP LOCKED` too, so every daemon may run them at once.
//!
//! Lists are the core's list builder ([`jobstore::driver::list_sql`]) in its PostgreSQL
//! dialect. Uploaded data and outputs are stored in chunks (`bytea`, at most 1 MiB each, the
//! store writes 256 KiB) of batches that stay invisible until sealed.
//!
//! **Uploaders.** Each driver instance names itself `jobstore-<64 random bits>` and sets that
//! as the `application_name` of every connection it opens; it writes the name as the
//! uploader of the data batches it reserves. An uploader is gone when no session of the
//! server carries its name any more (`pg_stat_activity`): the server itself tells, across
//! machines, with no clock to trust. A daemon killed mid-upload loses its sessions at once
//! (its sockets close); a machine that vanished keeps them until the server's TCP keepalive
//! gives up, and until then its batches are left alone (only a certainly gone uploader's
//! batches are deleted). Behind a connection pooler that keeps server sessions open (PgBouncer)
//! a name may outlive its daemon: then the idle purge of incomplete batches
//! ([`jobstore::Store::purge_incomplete_batches`]) is what reclaims them.
//!
//! **Not the driver's:** [`Driver::backup_to`] answers [`Error::Unsupported`]: use the
//! engine's own backup (`pg_dump`, `pg_basebackup`, a managed service's snapshots), which a
//! daemon cannot run for the server. [`Driver::checkpoint`] has nothing to do (the server
//! checkpoints and bounds its own WAL) and answers that it completed. [`Driver::check`] runs
//! the store's cross-table checks; the storage's own integrity is the server's (data
//! checksums, `amcheck`).
//!
//! **Several writers, one order per job.** Writes run on [`PostgresOptions::writers`] threads
//! (4 by default), each its own transaction on its own connection, so one slow write does not
//! hold up the rest. The store counts on one order only: the writes of one job
//! ([`WriteOp::job`]) run in the order they were submitted, as they do on SQLite's single
//! writer. A caller may queue a write of a job without waiting for it and count on the job's
//! next write finding it done: dropping an upload deletes its batch so, and the next upload of
//! the job must not count it; the embedded worker reports a failure so. The driver keeps that
//! order by giving each job to one writer (its id modulo the writers: `writers::Queues`);
//! creates, claims and maintenance, which name no one job, go to whichever writer is free.
//! Writes of different jobs run in any order, across writers as across daemons. A write that
//! decides from a job (the state machine's answer, a lease check) reads it locked
//! (`WriteTx::lock_job`, `FOR UPDATE`): a rescue, a `complete_many` or another daemon's write
//! of the job waits for it or is waited for, never slips between the read and the statements
//! that act on it. The core's
//! behaviour tests run on this default (`tests/core`); with a shared queue, two of them
//! failed now and then: one counted on two creates taking ids in the order submitted (an
//! assumption of the test, now gone), the other was the dropped upload above (a real order,
//! now kept).
//!
//! **Isolation and lock conflicts.** Every write's transaction runs at read committed,
//! whatever the database's default (`session::BEGIN_WRITE`): its statements are written for it.
//! A write undone by other sessions' locks (a deadlock it lost, a serialization failure, an
//! operator's `lock_timeout`) is [`jobstore::Error::Busy`], nothing written, as a SQLite write
//! is when another process holds the file; the daemon answers 503 with `Retry-After`.
//!
//! **Statements prepared once per connection** (`session`): each connection, a writer's or a
//! pooled reader's, keeps the statements it prepared by their text, so that a statement it
//! ran before is one round trip (`Bind`/`Execute`) instead of two (`Parse`/`Describe` first).
//! A connection that replaces an ended one starts with none; at most 256 are kept per
//! connection, the least recently used dropped first (lists' texts are built from their
//! filters, so there is no fixed set).
//!
//! **When the server goes away.** Every connection is opened with a bounded connect timeout
//! ([`PostgresOptions::connect_timeout`], 2 s; a URL's own `connect_timeout` wins). An error
//! that says the server cannot be reached (the connection closed or broke, SQLSTATE class 08,
//! 57P01 `admin_shutdown`, 57P02, 57P03 `cannot_connect_now` while it starts, 53300 when it
//! takes no more sessions) is [`Error::Unavailable`]: nothing was written, the daemon answers
//! 503 `storage_unavailable` with `Retry-After`. So is a write refused by a server that takes
//! no writes now (25006, a standby not yet promoted: `connect::classify`); a multi-host URL
//! should say `target_session_attrs=read-write`, so that each connection goes to the host that
//! takes writes (the driver warns at start when it does not). A `COMMIT` whose answer was lost
//! stays [`Error::OutcomeUnknown`] (it may have committed). A writer whose connection ended opens
//! another: at once when `BEGIN` finds it ended (every session ends when the server restarts;
//! the write had not started and runs on the new connection), else on its next write after a
//! pause that doubles from 100 ms to 1 s while the server stays out of reach; meanwhile each
//! write is refused at once, never queued behind tries to connect. So is every read once the
//! driver knows the server is out of reach (a try to connect failed lately and none
//! succeeded since): a read takes a pooled connection still open, or is refused at once,
//! instead of waiting [`PostgresOptions::pool_timeout`] (10 s) for a pool that cannot fill.
//! That wait is kept for a pool that is only busy, with the server there: shortening it would
//! refuse reads under load, not during outages. (A read that meets the outage first finds
//! the pool's connections closed and looks again every 250 ms whether a try to connect
//! failed meanwhile.) The pool tests a connection before handing it out, drops one found
//! closed, and refills itself in the background, trying again every second at most (half the
//! connect timeout when that is longer). Once the server is back, the driver is whole again
//! within about a second, with no restart of the daemon.
//!
//! **Wake-ups across daemons** (`wake`): a commit that may have made jobs claimable wakes the
//! waiting claims of every daemon on the database at once through `LISTEN`/`NOTIFY`; the
//! periodic re-poll of the waiting claims stays the fallback (a notification lost while a
//! listener reconnects, jobs that become due later).

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jobstore::driver::{Driver, Reader, Waker, WriteOp, WriterStats};
use jobstore::{Error, Result};
use postgres::{Config, NoTls};

use crate::connect::{self, Health};
use crate::ops::Conn;
use crate::session::{AsClient, Session};
use crate::wake::{self, Wakes};
use crate::writers::{self, Queues, Writer};

/// Settings of the PostgreSQL driver.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Writer threads, each with a connection of its own (the writes of one job all run on
    /// one of them, in order).
    pub writers: usize,
    /// Read connections in the pool.
    pub read_connections: u32,
    /// How long opening a connection may take before the server counts as out of reach (a
    /// `connect_timeout` in the URL wins).
    pub connect_timeout: Duration,
    /// How long a read waits for a pooled connection while every one is busy (a server known
    /// to be out of reach is answered at once instead).
    pub pool_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            writers: 4,
            read_connections: 8,
            connect_timeout: Duration::from_secs(2),
            pool_timeout: Duration::from_secs(10),
        }
    }
}

/// How long a read waits on the pool at a time before it looks again whether the server is
/// known to be out of reach.
const POOL_LOOK: Duration = Duration::from_millis(250);

/// Connections for the r2d2 pool.
#[derive(Debug)]
pub(crate) struct Manager {
    config: Config,
    health: Arc<Health>,
}

impl r2d2::ManageConnection for Manager {
    // A connection with the statements prepared on it: one found broken is dropped with them,
    // and its replacement prepares its own.
    type Connection = Session;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Session, postgres::Error> {
        connect::open(&self.config, &self.health).map(Session::new)
    }

    fn is_valid(&self, conn: &mut Session) -> std::result::Result<(), postgres::Error> {
        conn.client().simple_query("")?;
        self.health.reached();
        Ok(())
    }

    fn has_broken(&self, conn: &mut Session) -> bool {
        conn.is_closed()
    }
}

/// A storage error of this driver, as the store's error: [`Error::Unavailable`] when the
/// server cannot be reached, else [`Error::Storage`].
pub(crate) fn storage(err: postgres::Error) -> Error {
    connect::classify(err)
}

/// A name for this driver instance, unique across daemons and machines: 64 bits from the
/// process's randomly seeded hasher, the process id and the time.
fn instance_name() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    format!("{UPLOADER_PREFIX}{:016x}", hasher.finish())
}

/// How every driver instance's name begins.
const UPLOADER_PREFIX: &str = "jobstore-";

/// The store on a PostgreSQL database (migrated when opened), shared by every daemon that
/// opens it.
pub struct PostgresDriver {
    url_shown: String,
    shared: Arc<writers::Shared>,
    writers: Vec<JoinHandle<()>>,
    /// Taken by `drop`, which closes its connections on a thread of their own.
    pool: Option<r2d2::Pool<Manager>>,
    pool_timeout: Duration,
    wakes: Arc<Wakes>,
    notifier: Option<JoinHandle<()>>,
    /// Started when a store gives its waker.
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for PostgresDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDriver")
            .field("database", &self.url_shown)
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

impl PostgresDriver {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), migrates it
    /// ([`crate::migrate`]) and starts the writers.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the server cannot be reached; [`Error::Storage`] when it
    /// refuses, or the database was migrated by a newer build.
    pub fn connect(url: &str, options: &PostgresOptions) -> Result<PostgresDriver> {
        let mut config: Config = url.parse().map_err(storage)?;
        connect::warn_any_of_several_hosts(&config);
        let name: Arc<str> = instance_name().into();
        config.application_name(&name);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let health = Arc::new(Health::default());
        let mut client = config.connect(NoTls).map_err(storage)?;
        crate::migrate(&mut client).map_err(|err| match err {
            crate::Error::Postgres(err) => storage(err),
            newer @ crate::Error::NewerSchema { .. } => Error::Storage(Box::new(newer)),
        })?;
        drop(client);
        // r2d2 tries again to open a pooled connection after at most half this; the wait for
        // a connection is the driver's own (`PostgresDriver::checkout`).
        let refill = config
            .get_connect_timeout()
            .copied()
            .unwrap_or(options.connect_timeout)
            .max(2 * crate::connect::MAX_BACKOFF);
        let pool = r2d2::Pool::builder()
            .max_size(options.read_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(refill)
            // Health logs the server's comings and goings, once each.
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(Manager {
                config: config.clone(),
                health: Arc::clone(&health),
            })?;
        let writer_count = options.writers.max(1);
        let shared = Arc::new(writers::Shared {
            config: config.clone(),
            queues: Queues::new(writer_count),
            counters: writers::Counters::default(),
            health: Arc::clone(&health),
            name,
        });
        let mut writers = Vec::new();
        for index in 0..writer_count {
            let client = connect::open(&config, &health).map_err(storage)?;
            let writer = Writer::new(index, Session::new(client), Arc::clone(&shared));
            writers.push(
                std::thread::Builder::new()
                    .name(format!("jobstore-pg-writer-{index}"))
                    .spawn(move || writer.run())?,
            );
        }
        let wakes = Arc::new(Wakes::new(config.clone(), health));
        let notifying = Arc::clone(&wakes);
        let notifier = std::thread::Builder::new()
            .name("jobstore-pg-notifier".into())
            .spawn(move || wake::notifier(&notifying))?;
        let host = config
            .get_hosts()
            .first()
            .map(|host| format!("{host:?}"))
            .unwrap_or_default();
        Ok(PostgresDriver {
            url_shown: format!("{host}/{}", config.get_dbname().unwrap_or_default()),
            shared,
            writers,
            pool: Some(pool),
            pool_timeout: options.pool_timeout,
            wakes,
            notifier: Some(notifier),
            listener: Mutex::new(None),
        })
    }

    /// This instance's name, `jobstore-<16 hex digits>`: the `application_name` of each of its
    /// connections and the uploader of the data batches it reserves.
    pub fn instance_name(&self) -> &str {
        &self.shared.name
    }

    /// A pooled connection. While the server is known to be out of reach, one still open or
    /// [`Error::Unavailable`] at once; else the pool's, waiting up to the pool timeout (and
    /// looking again every [`POOL_LOOK`] whether the server went out of reach meanwhile).
    fn checkout(&self) -> Result<r2d2::PooledConnection<Manager>> {
        let pool = self.pool.as_ref().ok_or(Error::Closed)?;
        let deadline = Instant::now() + self.pool_timeout;
        loop {
            if let Some(reason) = self.shared.health.down() {
                return pool
                    .try_get()
                    .ok_or_else(|| Error::Unavailable(reason.into()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match pool.get_timeout(left.min(POOL_LOOK)) {
                Ok(conn) => return Ok(conn),
                Err(err) if left <= POOL_LOOK => return Err(Error::Pool(err)),
                Err(_) => {}
            }
        }
    }
}

impl Drop for PostgresDriver {
    fn drop(&mut self) {
        self.shared.queues.close();
        self.wakes.stop();
        let mut threads: Vec<JoinHandle<()>> = self.writers.drain(..).collect();
        threads.extend(self.notifier.take());
        if let Ok(mut listener) = self.listener.lock() {
            threads.extend(listener.take());
        }
        // The last handle of a store may be dropped on a writer thread (in a caller's
        // callback): that thread ends by itself once it returns to its loop.
        // A `postgres::Client` closes its session on a runtime of its own, which panics when
        // dropped inside another runtime: an embedding program may drop the last store handle
        // in an async task. The pooled connections are closed on a thread of their own.
        if let Some(pool) = self.pool.take() {
            threads.extend(
                std::thread::Builder::new()
                    .name("jobstore-pg-close".into())
                    .spawn(move || drop(pool))
                    .ok(),
            );
        }
        let current = std::thread::current().id();
        for thread in threads {
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
    }
}

impl Driver for PostgresDriver {
    fn describe(&self) -> String {
        format!("postgres {}", self.url_shown)
    }

    fn path(&self) -> Option<&Path> {
        None
    }

    fn submit(&self, write: Box<dyn WriteOp>) {
        if let Err(write) = self.shared.queues.push(write) {
            write.refuse(Error::Closed);
        }
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(Conn(
            self.checkout()?,
            Arc::clone(&self.shared.name),
        )))
    }

    fn writer_stats(&self) -> WriterStats {
        WriterStats {
            writes: self.shared.counters.writes.load(Ordering::Relaxed),
            commits: self.shared.counters.commits.load(Ordering::Relaxed),
        }
    }

    fn gone_uploaders(&self) -> Result<Vec<String>> {
        // Another instance's name that no session of the server carries any more.
        let rows = self
            .checkout()?
            .query(
                "SELECT DISTINCT uploader FROM job_data_batches \
                 WHERE NOT complete AND uploader IS NOT NULL \
                 AND starts_with(uploader, $1) AND uploader <> $2 \
                 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity \
                     WHERE application_name = job_data_batches.uploader)",
                &[&UPLOADER_PREFIX, &&*self.shared.name],
            )
            .map_err(storage)?;
        rows.iter()
            .map(|row| row.try_get(0).map_err(storage))
            .collect()
    }

    fn backup_to(&self, _dest: &Path) -> Result<()> {
        Err(Error::Unsupported {
            operation: "backup (use the engine's own backup: pg_dump, pg_basebackup or the \
                        service's snapshots)",
        })
    }

    fn checkpoint(&self) -> Result<bool> {
        // The server checkpoints and bounds its own WAL (max_wal_size), and a daemon forcing
        // CHECKPOINTs would only add I/O. What is left to bound is the store's own log of
        // changes: the job counts' rows, folded (the writers also fold them as they write).
        let mut conn = self.checkout()?;
        crate::ops::fold_job_counts(&mut *conn).map_err(storage)?;
        Ok(true)
    }

    fn check(&self) -> Result<Vec<String>> {
        let mut conn = self.checkout()?;
        let mut problems = Vec::new();
        for (what, sql) in crate::ops::CONSISTENCY_CHECKS {
            let count: i64 = conn
                .query_one(sql, &[])
                .and_then(|row| row.try_get(0))
                .map_err(storage)?;
            if count > 0 {
                problems.push(format!("{what}: {count}"));
            }
        }
        Ok(problems)
    }

    fn set_waker(&self, waker: Waker) {
        self.wakes.add_waker(waker);
        let Ok(mut listener) = self.listener.lock() else {
            return;
        };
        if listener.is_none() {
            let wakes = Arc::clone(&self.wakes);
            match std::thread::Builder::new()
                .name("jobstore-pg-listener".into())
                .spawn(move || wake::listener(&wakes))
            {
                Ok(thread) => *listener = Some(thread),
                // Without it, the waiting claims find other daemons' jobs by re-polling.
                Err(err) => log::error!("cannot start the wake-up listener: {err}"),
            }
        }
    }

    fn jobs_available(&self) {
        self.wakes.jobs_available();
    }
}
