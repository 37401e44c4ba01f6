//! [`WriteCall`]: a checked store write that the caller either waits for or is called back
//! about, so that an async server or a worker that must not block can use the same calls.

use std::sync::Arc;

use super::Store;
use crate::driver::WriteTx;
use crate::{Error, Result};

type WriteFn<T> = Box<dyn FnOnce(&mut dyn WriteTx) -> Result<T> + Send>;

/// A store write, its input already checked, not yet queued. Run it with
/// [`WriteCall::wait`] (block until it committed) or [`WriteCall::then`] (queue it and return
/// at once; the answer arrives in a callback after the commit), with every driver.
///
/// Both give the same answer: `Ok` only once the transaction holding the write committed.
/// Input refused before the write gets its error through the same path.
#[must_use = "a WriteCall does nothing until it is waited on or sent with `then`"]
pub struct WriteCall<T> {
    store: Store,
    /// The job the write concerns (the driver keeps the writes of one job in order).
    job: Option<i64>,
    body: Result<WriteFn<T>>,
    /// Whether a successful answer may have made jobs claimable (wakes waiting workers).
    wakes_workers: fn(&T) -> bool,
}

impl<T: Send + 'static> WriteCall<T> {
    /// A write that concerns no one job (a create, a claim).
    pub(super) fn new(
        store: &Store,
        write: impl FnOnce(&mut dyn WriteTx) -> Result<T> + Send + 'static,
        wakes_workers: fn(&T) -> bool,
    ) -> WriteCall<T> {
        WriteCall {
            store: store.clone(),
            job: None,
            body: Ok(Box::new(write)),
            wakes_workers,
        }
    }

    /// A write of job `job`.
    pub(super) fn on_job(
        store: &Store,
        job: i64,
        write: impl FnOnce(&mut dyn WriteTx) -> Result<T> + Send + 'static,
        wakes_workers: fn(&T) -> bool,
    ) -> WriteCall<T> {
        WriteCall {
            job: Some(job),
            ..WriteCall::new(store, write, wakes_workers)
        }
    }

    pub(super) fn refused(store: &Store, err: Error) -> WriteCall<T> {
        WriteCall {
            store: store.clone(),
            job: None,
            body: Err(err),
            wakes_workers: |_| false,
        }
    }

    /// Queues the write and blocks until its transaction committed; answers the call's result.
    ///
    /// # Errors
    /// The call's own errors, and the writer's: [`Error::OutcomeUnknown`], [`Error::Busy`],
    /// [`Error::Closed`].
    pub fn wait(self) -> Result<T> {
        let WriteCall {
            store,
            job,
            body,
            wakes_workers,
        } = self;
        let answer = store.write_on(job, body?)?;
        if wakes_workers(&answer) {
            store.signal().notify();
        }
        Ok(answer)
    }

    /// Queues the write and returns at once. `done` gets what [`WriteCall::wait`] would have
    /// answered, after the commit, on the driver's thread (SQLite: the writer thread; or at once, on this thread,
    /// for input refused before the write). `done` must be quick and must not call the store
    /// and wait: the writer answers the rest of its group after it. Sending the answer down a
    /// channel is the intended use.
    pub fn then(self, done: impl FnOnce(Result<T>) + Send + 'static) {
        let WriteCall {
            store,
            job,
            body,
            wakes_workers,
        } = self;
        let write = match body {
            Ok(write) => write,
            Err(err) => return done(Err(err)),
        };
        // The callback holds the signal, not the store: it is dropped on the writer thread.
        let signal = Arc::clone(store.signal());
        store.submit(job, write, move |answer: Result<T>| {
            if answer.as_ref().is_ok_and(wakes_workers) {
                signal.notify();
            }
            done(answer);
        });
    }
}

impl<T> std::fmt::Debug for WriteCall<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteCall")
            .field("store", &self.store)
            .field("job", &self.job)
            .field("refused", &self.body.as_ref().err())
            .finish()
    }
}
