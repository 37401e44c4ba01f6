//! The single writer: one thread owns the only write connection and commits the writes of
//! concurrent callers together (group commit).
//!
//! The store hands over each write as a [`WriteOp`] (a closure over the typed operations of
//! [`crate::driver::WriteTx`], with where its answer goes: a waiting caller, or a callback for
//! callers that must not block, such as an async server). The writer takes every write
//! waiting in its queue (up to [`MAX_GROUP`]), opens one `BEGIN IMMEDIATE`, runs each write in
//! its own `SAVEPOINT` (a failing write rolls back to its savepoint alone), commits once and
//! then answers each caller. One fsync serves the whole group; a lone caller waits for one
//! commit, no longer.
//!
//! **Invariant:** a caller is told `Ok` only after the COMMIT that holds its write returned.
//! **Invariant:** when COMMIT fails, callers whose writes were in it get
//! [`Error::OutcomeUnknown`], never an error that claims the write did not happen.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode};

use super::ops::Conn;
use crate::driver::{PendingReply, WriteOp, WriterStats};
use crate::{Error, Result};

/// The most writes committed in one transaction. Bounds the time a write waits behind others
/// and the size of one WAL append.
pub(crate) const MAX_GROUP: usize = 512;

/// The handle callers use to reach the writer thread. Dropping it stops the thread after it
/// has answered every write already queued.
pub(crate) struct Writer {
    queue: Option<Sender<Box<dyn WriteOp>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    commits: AtomicU64,
}

impl Writer {
    /// Starts the writer thread over `conn` (already initialised and migrated). With
    /// `checkpoint_on_close` it checkpoints (passively) once its queue is closed; without, it
    /// leaves the WAL to the process that owns checkpoints (a replicator).
    pub(crate) fn start(
        conn: Connection,
        lock_wait: Duration,
        checkpoint_on_close: bool,
    ) -> Result<Writer> {
        let (queue, rx) = mpsc::channel::<Box<dyn WriteOp>>();
        let counters = Arc::new(Counters::default());
        let shared = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("jobstore-writer".into())
            .spawn(move || writer_loop(&conn, &rx, lock_wait, &shared, checkpoint_on_close))?;
        Ok(Writer {
            queue: Some(queue),
            thread: Some(thread),
            counters,
        })
    }

    /// Writes and commits so far.
    pub(crate) fn stats(&self) -> WriterStats {
        WriterStats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            commits: self.counters.commits.load(Ordering::Relaxed),
        }
    }

    /// Queues `op` for the writer's next transaction and returns at once; the op is
    /// answered on the writer thread after the commit (or at once with [`Error::Closed`] when
    /// the writer is gone). Its answer must be quick: the writer answers the rest of the group
    /// after it.
    pub(crate) fn submit(&self, op: Box<dyn WriteOp>) {
        let Some(queue) = self.queue.as_ref() else {
            op.refuse(Error::Closed);
            return;
        };
        if let Err(mpsc::SendError(op)) = queue.send(op) {
            op.refuse(Error::Closed);
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // The last handle of a store can be dropped on the writer thread itself (a value
            // holding the store, answered to a caller that went away, is dropped there): the
            // thread ends on its own once the queue is closed, and must not wait for itself.
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

/// The longest the writer waits for more callers before it commits a group.
const MAX_GATHER_WAIT: Duration = Duration::from_millis(1);

fn writer_loop(
    conn: &Connection,
    queue: &Receiver<Box<dyn WriteOp>>,
    lock_wait: Duration,
    counters: &Counters,
    checkpoint_on_close: bool,
) {
    // Callers answered by the last commit come back with their next write a moment later;
    // waiting for them (at most half of what a commit costs) turns many small groups, one
    // fsync each, into fewer large ones. A lone caller sees no wait: it was the whole group.
    let mut expected = 1;
    let mut commit_cost = Duration::ZERO;
    while let Ok(first) = queue.recv() {
        let mut group = Vec::with_capacity(expected.max(16));
        group.push(first);
        let budget = (commit_cost / 2).min(MAX_GATHER_WAIT);
        let deadline = Instant::now() + budget;
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(op) => {
                    group.push(op);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {}
            }
            let now = Instant::now();
            if group.len() >= expected || now >= deadline {
                break;
            }
            match queue.recv_timeout(deadline - now) {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        expected = group.len();
        counters
            .writes
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let started = Instant::now();
        commit_group(conn, group, lock_wait, &counters.commits);
        commit_cost = started.elapsed();
    }
    // Failures here lose nothing. `optimize` writes its statistics through the WAL, which a
    // replicator follows like any other write.
    let _ = conn.execute_batch("PRAGMA optimize");
    if checkpoint_on_close {
        // Leave the WAL small for the next opener.
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
    }
}

/// Runs one group of writes in one transaction and answers every caller; counts the commit
/// in `commits` when there was one.
fn commit_group(
    conn: &Connection,
    group: Vec<Box<dyn WriteOp>>,
    lock_wait: Duration,
    commits: &AtomicU64,
) {
    let mut ops = group.into_iter();
    // Writes that ran in the current transaction, waiting for its commit.
    let mut pending: Vec<Box<dyn PendingReply>> = Vec::new();
    let mut in_transaction = false;
    while let Some(op) = ops.next() {
        if !in_transaction {
            if let Err(err) = begin_immediate(conn, lock_wait) {
                op.refuse(err);
                for rest in ops {
                    rest.refuse(Error::Busy);
                }
                return;
            }
            in_transaction = true;
        }
        if let Err(err) = control(conn, "SAVEPOINT write") {
            op.refuse(Error::Sqlite(err));
            continue;
        }
        let ran = catch_unwind(AssertUnwindSafe(|| op.run(&mut Conn(conn))));
        let reply = match ran {
            Ok(reply) => Some(reply),
            Err(_) => {
                log::error!("a write panicked; it was rolled back");
                None
            }
        };
        let keep = reply.as_ref().is_some_and(|r| r.succeeded());
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (a severe error such as a full disk):
            // the writes before this one are gone too, and nothing of them was committed.
            for earlier in pending.drain(..) {
                earlier.finish(Err(rolled_back()));
            }
            if let Some(reply) = reply {
                // A failed write answers its own error; one that "succeeded" was lost all the same.
                reply.finish(if keep { Err(rolled_back()) } else { Ok(()) });
            }
            in_transaction = false;
            continue;
        }
        let end = if keep {
            control(conn, "RELEASE write")
        } else {
            control(conn, "ROLLBACK TO write").and_then(|()| control(conn, "RELEASE write"))
        };
        match (reply, end) {
            (Some(reply), Ok(())) if keep => pending.push(reply),
            (Some(reply), Ok(())) => reply.finish(Ok(())),
            (Some(reply), Err(err)) => reply.finish(Err(Error::Sqlite(err))),
            (None, _) => {}
        }
    }
    if !in_transaction {
        return;
    }
    match control(conn, "COMMIT") {
        Ok(()) => {
            // Counted before anyone is answered, so that a caller reading the stats after
            // its answer sees its own commit.
            commits.fetch_add(1, Ordering::Relaxed);
            for reply in pending {
                reply.finish(Ok(()));
            }
        }
        Err(err) => {
            log::error!(
                "commit failed, outcome of {} writes unknown: {err}",
                pending.len()
            );
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            for reply in pending {
                reply.finish(Err(Error::OutcomeUnknown(Box::new(copy_sqlite_error(
                    &err,
                )))));
            }
        }
    }
}

/// Runs a transaction-control statement from the connection's statement cache: they run
/// several times per group, and parsing each anew was a visible share of the writer's time.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// `BEGIN IMMEDIATE`, retried while another process holds the write lock, up to `lock_wait`.
/// Each attempt already waits the connection's busy timeout.
fn begin_immediate(conn: &Connection, lock_wait: Duration) -> Result<()> {
    let deadline = Instant::now() + lock_wait;
    loop {
        match control(conn, "BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(err) if is_busy(&err) => {
                if Instant::now() >= deadline {
                    log::warn!("write lock not obtained within {lock_wait:?}: {err}");
                    return Err(Error::Busy);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(err) => return Err(Error::Sqlite(err)),
        }
    }
}

pub(crate) fn is_busy(err: &rusqlite::Error) -> bool {
    matches!(
        err.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn rolled_back() -> Error {
    Error::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("rolled back with a failing write in the same transaction".into()),
    ))
}

/// rusqlite errors are not `Clone`; one failed COMMIT answers many callers.
fn copy_sqlite_error(err: &rusqlite::Error) -> rusqlite::Error {
    match err {
        rusqlite::Error::SqliteFailure(code, message) => {
            rusqlite::Error::SqliteFailure(*code, message.clone())
        }
        other => rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some(other.to_string()),
        ),
    }
}
