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

use std::hash::{BuildHasher, Hasher};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use jobstore::driver::{Driver, Reader, WriteOp, WriterStats};
use jobstore::{Error, Result};
use postgres::{Client, Config, NoTls};

use crate::ops::Conn;

/// Settings of the PostgreSQL driver.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// Writer threads, each with a connection of its own.
    pub writers: usize,
    /// Read connections in the pool.
    pub read_connections: u32,
    /// How long a read waits for a pooled connection.
    pub connect_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            writers: 4,
            read_connections: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections for the r2d2 pool.
#[derive(Debug)]
pub(crate) struct Manager {
    config: Config,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Client;
    type Error = postgres::Error;

    fn connect(&self) -> std::result::Result<Client, postgres::Error> {
        self.config.connect(NoTls)
    }

    fn is_valid(&self, conn: &mut Client) -> std::result::Result<(), postgres::Error> {
        conn.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Client) -> bool {
        conn.is_closed()
    }
}

/// A storage error of this driver, as the store's error.
pub(crate) fn storage(err: postgres::Error) -> Error {
    Error::Storage(Box::new(err))
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
    queue: Option<Sender<Box<dyn WriteOp>>>,
    writers: Vec<JoinHandle<()>>,
    pool: r2d2::Pool<Manager>,
    counters: Arc<Counters>,
    /// This instance's name: its connections' `application_name`, its batches' uploader.
    name: Arc<str>,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

impl std::fmt::Debug for PostgresDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDriver")
            .field("database", &self.url_shown)
            .finish_non_exhaustive()
    }
}

impl PostgresDriver {
    /// Connects to the database at `url` (`postgres://user@host:port/db`), migrates it
    /// ([`crate::migrate`]) and starts the writers.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database cannot be reached, refuses, or was migrated by a
    /// newer build.
    pub fn connect(url: &str, options: &PostgresOptions) -> Result<PostgresDriver> {
        let mut config: Config = url.parse().map_err(storage)?;
        let name: Arc<str> = instance_name().into();
        config.application_name(&name);
        let mut client = config.connect(NoTls).map_err(storage)?;
        crate::migrate(&mut client).map_err(|err| Error::Storage(Box::new(err)))?;
        drop(client);
        let pool = r2d2::Pool::builder()
            .max_size(options.read_connections.max(1))
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            .build(Manager {
                config: config.clone(),
            })?;
        let (queue, rx) = mpsc::channel::<Box<dyn WriteOp>>();
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        let mut writers = Vec::new();
        for index in 0..options.writers.max(1) {
            let client = config.connect(NoTls).map_err(storage)?;
            let (rx, counters) = (Arc::clone(&rx), Arc::clone(&counters));
            let name = Arc::clone(&name);
            writers.push(
                std::thread::Builder::new()
                    .name(format!("jobstore-pg-writer-{index}"))
                    .spawn(move || writer_loop(client, &rx, &counters, &name))?,
            );
        }
        let host = config
            .get_hosts()
            .first()
            .map(|host| format!("{host:?}"))
            .unwrap_or_default();
        Ok(PostgresDriver {
            url_shown: format!("{host}/{}", config.get_dbname().unwrap_or_default()),
            queue: Some(queue),
            writers,
            pool,
            counters,
            name,
        })
    }
}

impl Drop for PostgresDriver {
    fn drop(&mut self) {
        drop(self.queue.take());
        let current = std::thread::current().id();
        for writer in self.writers.drain(..) {
            if writer.thread().id() != current {
                let _ = writer.join();
            }
        }
    }
}

/// Takes one write at a time: `BEGIN`, the write, `COMMIT` (or `ROLLBACK` when it failed),
/// then its answer.
fn writer_loop(
    mut client: Client,
    queue: &Mutex<Receiver<Box<dyn WriteOp>>>,
    counters: &Counters,
    name: &Arc<str>,
) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(op) = next else {
            return;
        };
        counters.writes.fetch_add(1, Ordering::Relaxed);
        let tx = match client.transaction() {
            Ok(tx) => tx,
            Err(err) => {
                op.refuse(storage(err));
                continue;
            }
        };
        let mut conn = Conn(tx, Arc::clone(name));
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| op.run(&mut conn)));
        let Conn(tx, _) = conn;
        let reply = match ran {
            Ok(reply) => reply,
            Err(_) => {
                log::error!("a write panicked; it was rolled back");
                let _ = tx.rollback();
                continue;
            }
        };
        if !reply.succeeded() {
            let rolled = tx.rollback().map_err(storage);
            reply.finish(rolled);
            continue;
        }
        match tx.commit() {
            Ok(()) => {
                counters.commits.fetch_add(1, Ordering::Relaxed);
                reply.finish(Ok(()));
            }
            Err(err) => {
                log::error!("commit failed, outcome of a write unknown: {err}");
                reply.finish(Err(Error::OutcomeUnknown(Box::new(err))));
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
        let Some(queue) = self.queue.as_ref() else {
            write.refuse(Error::Closed);
            return;
        };
        if let Err(mpsc::SendError(write)) = queue.send(write) {
            write.refuse(Error::Closed);
        }
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(Conn(self.pool.get()?, Arc::clone(&self.name))))
    }

    fn writer_stats(&self) -> WriterStats {
        WriterStats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    fn gone_uploaders(&self) -> Result<Vec<String>> {
        // Another instance's name that no session of the server carries any more.
        let rows = self
            .pool
            .get()?
            .query(
                "SELECT DISTINCT uploader FROM job_data_batches \
                 WHERE NOT complete AND uploader IS NOT NULL \
                 AND starts_with(uploader, $1) AND uploader <> $2 \
                 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity \
                     WHERE application_name = job_data_batches.uploader)",
                &[&UPLOADER_PREFIX, &&*self.name],
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
        // The server checkpoints and bounds its own WAL (max_wal_size): nothing is left to
        // do here, and a daemon forcing CHECKPOINTs would only add I/O.
        Ok(true)
    }

    fn check(&self) -> Result<Vec<String>> {
        let mut conn = self.pool.get()?;
        let mut problems = Vec::new();
        for (what, sql) in crate::ops::CONSISTENCY_CHECKS {
            let count: i64 = conn
                .query_one(*sql, &[])
                .and_then(|row| row.try_get(0))
                .map_err(storage)?;
            if count > 0 {
                problems.push(format!("{what}: {count}"));
            }
        }
        Ok(problems)
    }
}
