//! The writer threads: their queues (the writes of one job in submission order on one writer,
//! the rest on whichever is free) and each writer's loop (a transaction per write, on a
//! connection it opens again when the server ended or lost it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use jobstore::Error;
use jobstore::driver::WriteOp;
use postgres::Config;

use crate::connect::{self, Backoff, Detailed, Health};
use crate::ops::Conn;
use crate::session::{Session, Tx};

/// How many writes a writer runs between two folds of the job counts.
const FOLD_EVERY: u32 = 128;

/// A queued write and its place in the order of submission.
type Queued = (u64, Box<dyn WriteOp>);

/// The writers' queues. A write of a job ([`WriteOp::job`]) goes to the queue of the writer
/// that owns the job (its id modulo the writers), so the writes of one job run one after
/// the other in the order they were submitted; every other write goes to the shared queue,
/// which any writer takes from. A writer takes the older of its own queue's head and the
/// shared queue's.
pub(crate) struct Queues {
    state: Mutex<State>,
    ready: Condvar,
}

struct State {
    shared: VecDeque<Queued>,
    own: Vec<VecDeque<Queued>>,
    next: u64,
    closed: bool,
}

impl Queues {
    /// Queues for `writers` writers (at least one).
    pub(crate) fn new(writers: usize) -> Queues {
        Queues {
            state: Mutex::new(State {
                shared: VecDeque::new(),
                own: (0..writers.max(1)).map(|_| VecDeque::new()).collect(),
                next: 0,
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    /// Queues `write`; hands it back once the queues are closed.
    pub(crate) fn push(&self, write: Box<dyn WriteOp>) -> Result<(), Box<dyn WriteOp>> {
        let Ok(mut state) = self.state.lock() else {
            return Err(write);
        };
        if state.closed {
            return Err(write);
        }
        let seq = state.next;
        state.next += 1;
        match write.job() {
            Some(job) => {
                let writers = state.own.len() as u64;
                // Both are non-negative and the remainder is below the count of writers.
                let owner = usize::try_from(job.unsigned_abs() % writers).unwrap_or(0);
                state.own[owner].push_back((seq, write));
            }
            None => state.shared.push_back((seq, write)),
        }
        drop(state);
        // Every writer wakes: the write may be one writer's own. Only idle writers wait.
        self.ready.notify_all();
        Ok(())
    }

    /// The next write for writer `index`, waiting for one; `None` once the queues are closed
    /// and nothing is left for it.
    fn take(&self, index: usize) -> Option<Box<dyn WriteOp>> {
        let mut state = self.state.lock().ok()?;
        loop {
            let own = state
                .own
                .get(index)
                .and_then(|q| q.front())
                .map(|(s, _)| *s);
            let shared = state.shared.front().map(|(s, _)| *s);
            let from_own = match (own, shared) {
                (Some(own), Some(shared)) => own < shared,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) if state.closed => return None,
                (None, None) => {
                    state = self.ready.wait(state).ok()?;
                    continue;
                }
            };
            let taken = if from_own {
                state.own.get_mut(index).and_then(VecDeque::pop_front)
            } else {
                state.shared.pop_front()
            };
            if let Some((_, write)) = taken {
                return Some(write);
            }
        }
    }

    /// Closes the queues: nothing more is taken in; the writers run what is queued, then end.
    pub(crate) fn close(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.closed = true;
        }
        self.ready.notify_all();
    }
}

/// What the writers count.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) writes: AtomicU64,
    pub(crate) commits: AtomicU64,
}

/// What every writer shares.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) queues: Queues,
    pub(crate) counters: Counters,
    pub(crate) health: Arc<Health>,
    /// The driver instance's name (its batches' uploader).
    pub(crate) name: Arc<str>,
}

/// One writer: its index among the writers, its connection with the statements prepared on it
/// (none while the server is out of reach), and when it may try to connect again.
pub(crate) struct Writer {
    index: usize,
    session: Option<Session>,
    backoff: Backoff,
    shared: Arc<Shared>,
}

impl Writer {
    /// Writer `index`, on `session` (opened by the driver at start).
    pub(crate) fn new(index: usize, session: Session, shared: Arc<Shared>) -> Writer {
        Writer {
            index,
            session: Some(session),
            backoff: Backoff::default(),
            shared,
        }
    }

    /// Runs the writes queued for this writer until the queues close; after every
    /// [`FOLD_EVERY`] of them, folds the job counts.
    pub(crate) fn run(mut self) {
        let mut since_fold = 0;
        while let Some(write) = self.shared.queues.take(self.index) {
            self.shared.counters.writes.fetch_add(1, Ordering::Relaxed);
            self.write(write);
            since_fold += 1;
            if since_fold == FOLD_EVERY {
                since_fold = 0;
                self.fold_job_counts();
            }
        }
    }

    /// Folds the rows the writes added to `job_counts` ([`crate::ops::fold_job_counts`]), so
    /// that they stay about as many as the writes of the last folds and reading the counts
    /// stays cheap. A failure is only logged: the counts are right unfolded, and the next
    /// fold takes them.
    fn fold_job_counts(&mut self) {
        let Some(session) = self.session.as_mut().filter(|s| !s.is_closed()) else {
            return;
        };
        match crate::ops::fold_job_counts(session) {
            Ok(rows) => log::trace!("folded {rows} job count rows"),
            Err(err) => log::debug!("folding the job counts failed: {}", Detailed(err)),
        }
    }

    /// Makes sure there is an open connection: the one held, or a new one unless the last try
    /// failed a moment ago. A new connection is a new session, with none of the statements
    /// the ended one prepared (the server forgot them with it).
    fn connect(&mut self) -> Result<(), Error> {
        if self
            .session
            .as_ref()
            .is_some_and(|session| !session.is_closed())
        {
            return Ok(());
        }
        self.session = None;
        self.backoff.ready()?;
        match connect::open(&self.shared.config, &self.shared.health) {
            Ok(client) => {
                self.backoff.reset();
                self.session = Some(Session::new(client));
                Ok(())
            }
            Err(err) => {
                let err = Detailed(err);
                self.backoff.failed(&err);
                Err(Error::Unavailable(Box::new(err)))
            }
        }
    }

    /// `BEGIN`, the write, `COMMIT` (or `ROLLBACK` when it failed), then its answer. A
    /// connection that `BEGIN` finds ended (every session ends when the server restarts) is
    /// replaced at once, and the write runs on the new one: it had not started.
    fn write(&mut self, write: Box<dyn WriteOp>) {
        let mut pending = Some(write);
        for again in [false, true] {
            let Some(write) = pending.take() else {
                return;
            };
            if let Err(err) = self.connect() {
                write.refuse(err);
                return;
            }
            let Some(session) = self.session.as_mut() else {
                write.refuse(Error::Unavailable("no connection".into()));
                return;
            };
            let failed = match session.transaction() {
                Ok(tx) => {
                    run(tx, write, &self.shared);
                    None
                }
                Err(err) => Some((write, err)),
            };
            let Some((write, err)) = failed else {
                if self.session.as_ref().is_some_and(Session::refused_writes) {
                    // Fenced read-only, or a standby: the next write opens a session anew, on
                    // the host that takes writes if the URL names several.
                    log::warn!("the server refused a write as read-only; connecting again");
                    self.session = None;
                }
                return;
            };
            if !connect::out_of_reach(&err) {
                write.refuse(connect::classify(err));
                return;
            }
            self.session = None;
            let err = Detailed(err);
            if again {
                write.refuse(Error::Unavailable(Box::new(err)));
                return;
            }
            log::info!("a writer's connection was ended ({err}); connecting again");
            self.backoff.now();
            pending = Some(write);
        }
    }
}

/// Runs `write` in `tx` and answers it after the `COMMIT` (or the `ROLLBACK`).
fn run(tx: Tx<'_>, write: Box<dyn WriteOp>, shared: &Shared) {
    let mut conn = Conn(tx, Arc::clone(&shared.name));
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| write.run(&mut conn)));
    let Conn(tx, _) = conn;
    let reply = match ran {
        Ok(reply) => reply,
        Err(_) => {
            log::error!("a write panicked; it was rolled back");
            let _ = tx.rollback();
            return;
        }
    };
    if !reply.succeeded() {
        // The write's own error is the answer; a failed ROLLBACK (the connection lost) undid
        // the transaction as well.
        let rolled = tx.rollback().map_err(connect::classify);
        reply.finish(rolled);
        return;
    }
    match tx.commit() {
        Ok(()) => {
            shared.counters.commits.fetch_add(1, Ordering::Relaxed);
            reply.finish(Ok(()));
        }
        Err(err) => {
            // The COMMIT may have been carried out before its answer was lost.
            let err = Detailed(err);
            log::error!("commit failed, outcome of a write unknown: {err}");
            reply.finish(Err(Error::OutcomeUnknown(Box::new(err))));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use jobstore::driver::{PendingReply, WriteTx};

    /// A write that tells its label when it is refused (the tests refuse what they take).
    struct Labelled(Option<i64>, &'static str, mpsc::Sender<&'static str>);

    impl WriteOp for Labelled {
        fn run(self: Box<Self>, _tx: &mut dyn WriteTx) -> Box<dyn PendingReply> {
            unreachable!("not run in these tests")
        }
        fn refuse(self: Box<Self>, _err: Error) {
            let _ = self.2.send(self.1);
        }
        fn job(&self) -> Option<i64> {
            self.0
        }
    }

    #[test]
    fn a_jobs_writes_stay_on_its_writer_in_order_and_the_rest_go_to_any() {
        let (told, labels) = mpsc::channel();
        let queues = Queues::new(2);
        for (job, label) in [
            (Some(4), "job 4, first"),
            (None, "a create"),
            (Some(3), "job 3"),
            (Some(4), "job 4, second"),
        ] {
            assert!(
                queues
                    .push(Box::new(Labelled(job, label, told.clone())))
                    .is_ok()
            );
        }
        let take = |index| {
            queues.take(index).map(|write| {
                write.refuse(Error::Closed);
                labels.recv().expect("a label")
            })
        };
        // Writer 0 owns even jobs: its own writes and the shared one, oldest first.
        assert_eq!(take(0), Some("job 4, first"));
        assert_eq!(take(0), Some("a create"));
        assert_eq!(take(0), Some("job 4, second"));
        assert_eq!(take(1), Some("job 3"));
        queues.close();
        assert!(queues.take(0).is_none());
        assert!(queues.take(1).is_none());
        assert!(
            queues
                .push(Box::new(Labelled(None, "late", told.clone())))
                .is_err()
        );
    }
}
