//! Uploaded data: batches streamed in from a `Read` (or pushed, [`BatchUpload`]) and out
//! through a `Read` (or a chunk at a time), never whole in memory.
//!
//! An append is several short writes, so a slow upload never holds the write lock: the batch
//! row is made (`complete = 0`, invisible to readers), each chunk is written in its own
//! group commit, and a last write checks the job is still `open` and marks the batch complete.
//! If reading the source fails, the batch grows past its limit or the job leaves `open`, the
//! batch is deleted and the caller gets the error: nothing of it is kept. A process killed
//! half way leaves an incomplete batch that readers never see; its row names the uploading
//! process, so [`Store::reclaim_abandoned_batches`] deletes it once that process is gone (the
//! driver tells which uploaders are gone).

use std::io::{self, BufRead, Read};

use super::rows::{check_lease, insert_event, load_job, lock_job, next_state};
use super::{CHUNK_BYTES, Store, WriteCall};
use crate::driver::{ChunkQuery, EventRow, WriteTx};
use crate::model::{DataBatch, Lease, Output};
use crate::state::{Event, State};
use crate::{Error, Result};

impl Store {
    /// Appends one data batch to an `open` job, reading `source` to its end.
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] when the job is not `open` (before or during the upload);
    /// [`Error::TooManyDataBatches`]; [`Error::DataBatchTooLarge`]; [`Error::DataRead`] when
    /// `source` fails (a validating reader refuses content this way). In every case nothing
    /// of the batch is kept.
    pub fn append_data(&self, id: i64, source: impl Read) -> Result<DataBatch> {
        let upload = self.begin_upload_call(id, UploadLimits::default()).wait()?;
        upload.fill_from(source)
    }

    /// Starts a new data batch of an `open` job, to be filled through the [`BatchUpload`] it
    /// answers. An async server drives an upload this way without holding a thread for it:
    /// every step is a [`WriteCall`].
    ///
    /// The batch counts against the job's batch limit from here on, while it uploads: the
    /// state and the limit (the stricter of `limits` and the store's options) are checked in
    /// the same write that reserves the batch, so uploads started at the same moment cannot
    /// pass the limit together.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidTransition`] when the job is not `open`;
    /// [`Error::TooManyDataBatches`].
    pub fn begin_upload_call(&self, id: i64, limits: UploadLimits) -> WriteCall<BatchUpload> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let limit_batches = stricter(self.options().max_batches_per_job, limits.max_batches);
        let limit_bytes = stricter(self.options().max_batch_bytes, limits.max_batch_bytes);
        let store = self.clone();
        WriteCall::on_job(
            self,
            id,
            move |tx| {
                let job = lock_job(tx, tenant.as_deref(), id)?;
                next_state(&job, Event::Upload)?;
                let (count, last) = tx.batch_count(id, false)?;
                if count >= limit_batches {
                    return Err(Error::TooManyDataBatches {
                        job: id,
                        limit: limit_batches,
                    });
                }
                tx.insert_batch(id, last + 1, now, None)?;
                Ok(BatchUpload::started(store, id, last + 1, limit_bytes, None))
            },
            |_| false,
        )
    }

    /// Uploads one batch of the named output `name` of a running job under its `lease`,
    /// reading `source` to its end ([`Store::begin_output_call`] for the rules).
    ///
    /// # Errors
    /// As [`Store::begin_output_call`] and [`BatchUpload::finish_call`];
    /// [`Error::DataRead`] when `source` fails. Nothing of the batch is kept then.
    pub fn append_output(
        &self,
        id: i64,
        lease: &Lease,
        name: &str,
        source: impl Read,
    ) -> Result<DataBatch> {
        self.begin_output_call(id, lease, name, UploadLimits::default())
            .wait()?
            .fill_from(source)
    }

    /// Starts a batch of the named output `name` of a `running` job, uploaded by the worker
    /// that holds its `lease`, to be filled through the [`BatchUpload`] it answers like an
    /// input batch. Outputs are what a job produced (`results/failed`, `query/results`, ...):
    /// they are never part of its input data ([`Store::read_data`],
    /// [`Store::data_batches`]), are read by name with [`Store::read_output`] and go with the
    /// job's data (a delete, a purge, a cancel).
    ///
    /// Batches of one name read as one stream, in upload order. The first batch of a name
    /// under a new lease replaces what earlier attempts left under that name. A job holds at
    /// most as many output batches as input batches (the stricter of `limits` and the store's
    /// options), and an output batch is as large as an input batch at most. The lease is
    /// checked when the batch starts and again in the write that completes it.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::StaleLease`] when `lease` is not the job's current
    /// one; [`Error::InvalidInput`] for a name that is not [a valid output name](valid_output_name);
    /// [`Error::TooManyDataBatches`].
    pub fn begin_output_call(
        &self,
        id: i64,
        lease: &Lease,
        name: &str,
        limits: UploadLimits,
    ) -> WriteCall<BatchUpload> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let limit_batches = stricter(self.options().max_batches_per_job, limits.max_batches);
        let limit_bytes = stricter(self.options().max_batch_bytes, limits.max_batch_bytes);
        let store = self.clone();
        let lease = lease.clone();
        let name = name.to_owned();
        WriteCall::on_job(
            self,
            id,
            move |tx| {
                check_output_name(&name)?;
                let job = lock_job(tx, tenant.as_deref(), id)?;
                check_lease(&job, &lease)?;
                tx.delete_replaced_output(id, &name, lease.token)?;
                let (count, last) = tx.batch_count(id, true)?;
                if count >= limit_batches {
                    return Err(Error::TooManyDataBatches {
                        job: id,
                        limit: limit_batches,
                    });
                }
                tx.insert_batch(id, last + 1, now, Some((&name, lease.token)))?;
                Ok(BatchUpload::started(
                    store,
                    id,
                    last + 1,
                    limit_bytes,
                    Some(lease),
                ))
            },
            |_| false,
        )
    }

    /// The job's named outputs with their complete batches and bytes, by name.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn outputs(&self, id: i64) -> Result<Vec<Output>> {
        let tenant = self.tenant_filter();
        self.read(|tx| {
            load_job(tx, tenant.as_deref(), id)?;
            tx.outputs(id)
        })
    }

    /// Reads the named output `name` of the job: its complete batches in order, as a stream
    /// that fetches one chunk at a time; `None` when the job has no output of that name.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidInput`] for an invalid name.
    pub fn read_output(&self, id: i64, name: &str) -> Result<Option<DataReader>> {
        self.read_output_at(id, name, DataPosition::START)
    }

    /// Reads the named output `name` of the job from `from`, a position an earlier reader of
    /// the same output stood at ([`DataReader::position`]): a page after a page, each
    /// starting without reading what came before.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidInput`] for an invalid name, or a position
    /// that is not in this output (another job's, or of an output since replaced).
    pub fn read_output_at(
        &self,
        id: i64,
        name: &str,
        from: DataPosition,
    ) -> Result<Option<DataReader>> {
        check_output_name(name)?;
        let tenant = self.tenant_filter();
        let exists = self.read(|tx| {
            load_job(tx, tenant.as_deref(), id)?;
            let exists = tx.output_exists(id, name)?;
            if exists && from != DataPosition::START {
                let length = tx.output_chunk_len(id, name, from.batch, from.chunk)?;
                if length.is_none_or(|length| length < from.offset) {
                    return Err(Error::invalid(
                        "position",
                        format!("`{from}` is not a position in output `{name}` of job {id}"),
                    ));
                }
            }
            Ok(exists)
        })?;
        let (position, resume) = if from == DataPosition::START {
            ((0, i64::MAX), None)
        } else {
            ((from.batch, from.chunk - 1), Some(from))
        };
        Ok(exists.then(|| DataReader {
            store: self.clone(),
            job: id,
            only_batch: None,
            name: Some(name.to_owned()),
            position,
            buffer: Vec::new(),
            offset: 0,
            chunk_len: 0,
            resume,
            remaining: None,
            done: false,
        }))
    }

    /// Deletes the incomplete batches that can never be completed: those of uploads that
    /// gave up in this process but whose delete failed (a full disk), and those whose
    /// uploading process is no longer running (killed mid-upload). Another live process's
    /// upload is never touched. The daemon calls it at start-up, before it takes requests, and
    /// then on every maintenance tick. Answers how many batches went.
    ///
    /// # Errors
    /// Storage errors; what could not be deleted is tried again on the next call.
    pub fn reclaim_abandoned_batches(&self) -> Result<u64> {
        let gone = self.inner.driver.gone_uploaders()?;
        let abandoned = std::mem::take(&mut *self.abandoned_batches());
        if abandoned.is_empty() && gone.is_empty() {
            return Ok(0);
        }
        let retry = abandoned.clone();
        let outcome = self.write(move |tx| {
            let mut deleted = 0;
            for (job, batch) in &retry {
                deleted += tx.delete_batch(*job, *batch, true)?;
            }
            for tag in &gone {
                deleted += tx.delete_uploader_batches(tag)?;
            }
            Ok(deleted as u64)
        });
        if outcome.is_err() {
            self.abandoned_batches().extend(abandoned);
        }
        outcome
    }

    /// Closes the upload phase: `open` → `queued`.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidTransition`] when the job is not `open`.
    pub fn close_upload(&self, id: i64, actor: &str) -> Result<crate::Job> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let actor = actor.to_owned();
        let job = self.write_on(Some(id), move |tx| {
            let job = lock_job(tx, tenant.as_deref(), id)?;
            let to = next_state(&job, Event::Close)?;
            if !tx.close_upload(id, job.state, to, now)? {
                return Err(Error::JobNotFound { id });
            }
            insert_event(
                tx,
                &EventRow {
                    job: id,
                    at: now,
                    event: Event::Close.name(),
                    from: Some(job.state),
                    to,
                    actor: &actor,
                    detail: None,
                },
            )?;
            load_job(tx, None, id)
        })?;
        if job.state == State::Queued {
            self.signal().notify();
        }
        Ok(job)
    }

    /// The job's complete data batches, in order.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn data_batches(&self, id: i64) -> Result<Vec<DataBatch>> {
        let tenant = self.tenant_filter();
        self.read(|tx| {
            load_job(tx, tenant.as_deref(), id)?;
            tx.data_batches(id)
        })
    }

    /// Reads the job's data: every complete batch in order (`batch` `None`) or one batch, as a
    /// stream that fetches one chunk at a time.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn read_data(&self, id: i64, batch: Option<i64>) -> Result<DataReader> {
        let tenant = self.tenant_filter();
        self.read(|tx| load_job(tx, tenant.as_deref(), id))?;
        Ok(DataReader {
            store: self.clone(),
            job: id,
            only_batch: batch,
            name: None,
            position: (batch.map_or(0, |b| b - 1), i64::MAX),
            buffer: Vec::new(),
            offset: 0,
            chunk_len: 0,
            resume: None,
            remaining: None,
            done: false,
        })
    }
}

/// Limits a caller holds one upload to besides the store's own
/// ([`StoreOptions`](crate::StoreOptions)); for each, the stricter applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadLimits {
    /// The most batches the job may hold, uploads under way included.
    pub max_batches: Option<u32>,
    /// The largest batch, in bytes.
    pub max_batch_bytes: Option<u64>,
}

/// The longest output name, in bytes.
pub const MAX_OUTPUT_NAME_BYTES: usize = 100;

/// Whether `name` may name an output: 1 to [`MAX_OUTPUT_NAME_BYTES`] bytes of ASCII letters,
/// digits, `.`, `_` and `-`, in `/`-separated parts that are neither empty nor `.` or `..`
/// (`results/failed`, `query/results`), so that it is safe as a file name and in a URL path.
#[must_use]
pub fn valid_output_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_OUTPUT_NAME_BYTES
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

fn check_output_name(name: &str) -> Result<()> {
    if valid_output_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!(
                "an output name is 1 to {MAX_OUTPUT_NAME_BYTES} bytes of letters, digits, \
                 '.', '_' and '-' in '/'-separated parts, none empty, '.' or '..'"
            ),
        ))
    }
}

fn stricter<T: Ord + Copy>(store: T, caller: Option<T>) -> T {
    caller.map_or(store, |caller| caller.min(store))
}

/// A data batch being uploaded: the bytes are pushed in as they arrive and written a chunk at
/// a time, each chunk its own short write, so that an upload holds neither the write lock nor
/// a thread while it waits for its client. Made by [`Store::begin_upload_call`].
///
/// The batch stays invisible until [`BatchUpload::finish_call`] committed. An upload dropped
/// before that (refused content, a client gone, an error) deletes its batch in the background;
/// if even that fails (a full disk), [`Store::reclaim_abandoned_batches`] tries again.
#[derive(Debug)]
pub struct BatchUpload {
    claim: BatchClaim,
    limit: u64,
    total: u64,
    next_chunk: i64,
    pending: Vec<u8>,
    /// The lease an output batch is uploaded under; `None` for input data.
    output: Option<Lease>,
}

impl BatchUpload {
    /// The upload of batch `batch` of job `id`, just reserved; `output` is the lease of an
    /// output batch, `None` for input data.
    fn started(store: Store, id: i64, batch: i64, limit: u64, output: Option<Lease>) -> Self {
        BatchUpload {
            claim: BatchClaim {
                store,
                job: id,
                batch,
                live: true,
            },
            limit,
            total: 0,
            next_chunk: 0,
            pending: Vec::new(),
            output,
        }
    }

    /// Reads `source` to its end into the batch, chunk by chunk, and completes it; on any
    /// failure the batch is abandoned (nothing of it is kept).
    fn fill_from(mut self, mut source: impl Read) -> Result<DataBatch> {
        let streamed = loop {
            let buffer = match read_chunk(&mut source) {
                Ok(buffer) => buffer,
                Err(err) => break Err(Error::DataRead(err)),
            };
            if buffer.is_empty() {
                break Ok(());
            }
            if let Err(err) = self.push(&buffer) {
                break Err(err);
            }
            if let Err(err) = self.write_chunks() {
                break Err(err);
            }
        };
        match streamed {
            Ok(()) => self.finish_call().wait(),
            Err(err) => {
                self.abandon();
                Err(err)
            }
        }
    }
    /// Adds the next bytes of the batch. Then write every whole chunk buffered with
    /// [`BatchUpload::chunk_call`] (until it answers `None`) before pushing more.
    ///
    /// # Errors
    /// [`Error::DataBatchTooLarge`] past the batch's size limit (drop the upload then).
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        self.total += bytes.len() as u64;
        if self.total > self.limit {
            return Err(Error::DataBatchTooLarge { limit: self.limit });
        }
        self.pending.extend_from_slice(bytes);
        Ok(())
    }

    /// The write of the next whole chunk, once one is buffered; `None` until then.
    pub fn chunk_call(&mut self) -> Option<WriteCall<()>> {
        if self.pending.len() < CHUNK_BYTES {
            return None;
        }
        let rest = self.pending.split_off(CHUNK_BYTES);
        let chunk = std::mem::replace(&mut self.pending, rest);
        let index = self.next_chunk;
        self.next_chunk += 1;
        let (id, batch) = (self.claim.job, self.claim.batch);
        let now = self.claim.store.now();
        let output = self.output.clone();
        Some(WriteCall::on_job(
            &self.claim.store,
            id,
            move |tx| write_chunk(tx, id, batch, index, &chunk, now, output.as_ref()),
            |_| false,
        ))
    }

    /// Writes every whole chunk buffered, waiting for each ([`BatchUpload::chunk_call`] for a
    /// caller that must not block).
    ///
    /// # Errors
    /// As the chunk writes.
    fn write_chunks(&mut self) -> Result<()> {
        while let Some(chunk) = self.chunk_call() {
            chunk.wait()?;
        }
        Ok(())
    }

    /// Writes what is still buffered and makes the batch visible, in one write that first
    /// checks the job is still `open` (an output: that its lease is still the current one).
    ///
    /// # Errors
    /// [`Error::InvalidTransition`] when the job left `open` meanwhile (an output:
    /// [`Error::StaleLease`] when its lease is no longer current), [`Error::JobNotFound`]
    /// when it was deleted; storage errors. Nothing of the batch is kept then.
    pub fn finish_call(self) -> WriteCall<DataBatch> {
        let BatchUpload {
            mut claim,
            total,
            next_chunk,
            pending,
            output,
            ..
        } = self;
        let store = claim.store.clone();
        let now = store.now();
        let job = claim.job;
        WriteCall::on_job(
            &store,
            job,
            move |tx| {
                let (id, batch) = (claim.job, claim.batch);
                for (index, chunk) in (next_chunk..).zip(pending.chunks(CHUNK_BYTES)) {
                    write_chunk(tx, id, batch, index, chunk, now, output.as_ref())?;
                }
                let sealed = match &output {
                    None => seal(tx, id, batch, total, now)?,
                    Some(lease) => seal_output(tx, id, batch, lease, now)?,
                };
                claim.settle();
                Ok(sealed)
            },
            |_| false,
        )
    }

    /// Gives the upload up and deletes its batch before returning.
    pub fn abandon(self) {
        let (deleted, wait) = std::sync::mpsc::channel();
        self.abandon_then(move || {
            let _ = deleted.send(());
        });
        let _ = wait.recv();
    }

    /// Gives the upload up: deletes its batch and then calls `done`, on the writer thread
    /// (quick, like [`WriteCall::then`]), so that a server answers "nothing kept" only once
    /// nothing is.
    pub fn abandon_then(mut self, done: impl FnOnce() + Send + 'static) {
        self.claim.discard(Some(Box::new(done)));
    }
}

/// An incomplete batch that someone must delete unless it is sealed: dropping a live claim
/// deletes the batch without waiting.
#[derive(Debug)]
struct BatchClaim {
    store: Store,
    job: i64,
    batch: i64,
    live: bool,
}

impl BatchClaim {
    /// The batch was sealed: nothing to delete.
    fn settle(&mut self) {
        self.live = false;
    }

    /// Deletes the batch unless it was sealed, then calls `done` (if any); a delete that fails
    /// is left to [`Store::reclaim_abandoned_batches`].
    fn discard(&mut self, done: Option<Box<dyn FnOnce() + Send>>) {
        if !std::mem::take(&mut self.live) {
            if let Some(done) = done {
                done();
            }
            return;
        }
        let (store, id, batch) = (self.store.clone(), self.job, self.batch);
        WriteCall::on_job(
            &self.store,
            id,
            move |tx| {
                tx.delete_batch(id, batch, false)?;
                Ok(())
            },
            |_| false,
        )
        .then(move |outcome| {
            if let Err(err) = outcome {
                log::warn!(
                    "job {id}: could not discard incomplete batch {batch} (retried later): {err}"
                );
                store.abandoned_batches().push((id, batch));
            }
            if let Some(done) = done {
                done();
            }
        });
    }
}

impl Drop for BatchClaim {
    fn drop(&mut self) {
        self.discard(None);
    }
}

/// Writes chunk `index` of a batch and adds its size to the batch.
fn write_chunk(
    tx: &mut dyn WriteTx,
    id: i64,
    batch: i64,
    index: i64,
    data: &[u8],
    now: i64,
    output: Option<&Lease>,
) -> Result<()> {
    tx.insert_chunk(id, batch, index, data, now).map_err(|err| {
        // The batch row is gone: the job was aborted or deleted meanwhile (an output's
        // lease was lost and a later attempt replaced it).
        match (load_job(tx, None, id), output) {
            (Ok(job), None) => next_state(&job, Event::Upload).err().unwrap_or(err),
            (Ok(job), Some(lease)) => check_lease(&job, lease).err().unwrap_or(err),
            (Err(gone), _) => gone,
        }
    })
}

/// Marks a batch complete once the job is still `open`, with the upload's event row.
fn seal(tx: &mut dyn WriteTx, id: i64, batch: i64, bytes: u64, now: i64) -> Result<DataBatch> {
    let job = lock_job(tx, None, id)?;
    let to = next_state(&job, Event::Upload)?;
    let (stored, created_at) = tx.seal_batch(id, batch, now)?;
    debug_assert_eq!(u64::try_from(stored).ok(), Some(bytes));
    tx.touch_job(id, Some(to), now)?;
    let detail = format!("batch {batch}, {stored} bytes");
    insert_event(
        tx,
        &EventRow {
            job: id,
            at: now,
            event: Event::Upload.name(),
            from: Some(job.state),
            to,
            actor: "",
            detail: Some(&detail),
        },
    )?;
    Ok(DataBatch {
        batch,
        bytes: stored,
        created_at,
    })
}

/// Marks an output batch complete while its lease is still the job's current one.
fn seal_output(
    tx: &mut dyn WriteTx,
    id: i64,
    batch: i64,
    lease: &Lease,
    now: i64,
) -> Result<DataBatch> {
    let job = lock_job(tx, None, id)?;
    check_lease(&job, lease)?;
    let (bytes, created_at) = tx.seal_batch(id, batch, now)?;
    Ok(DataBatch {
        batch,
        bytes,
        created_at,
    })
}

/// Reads up to one chunk, filling it unless the source ends first.
fn read_chunk(source: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0_u8; CHUNK_BYTES];
    let mut filled = 0;
    while filled < CHUNK_BYTES {
        match source.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

/// The data of a job as a byte stream: complete batches in order, one chunk in memory at a
/// time. Each chunk is one short read, so a slow reader never holds a read transaction open.
/// It reads through `Read`, `BufRead` or [`DataReader::next_chunk`]; [`DataReader::position`]
/// says where it stands, for a later reader to go on from there
/// ([`Store::read_output_at`]).
pub struct DataReader {
    store: Store,
    job: i64,
    only_batch: Option<i64>,
    /// The output read; `None` for the input data.
    name: Option<String>,
    /// The (batch, chunk) read last; `(b, i64::MAX)` means "after every chunk of batch b".
    position: (i64, i64),
    buffer: Vec<u8>,
    offset: usize,
    /// The length of the chunk read last, of which `buffer[offset..]` is what is left.
    chunk_len: usize,
    /// The position a reader made by [`Store::read_output_at`] starts from, until its first
    /// chunk is fetched (and that many bytes of it passed over).
    resume: Option<DataPosition>,
    /// Bytes still to give before the reader ends early ([`DataReader::limit`]).
    remaining: Option<u64>,
    done: bool,
}

/// Where a [`DataReader`] stands in a job's data or output: a stored chunk and how far into
/// it. Its text form (`batch-chunk-offset`, digits and dashes, safe in a URL) round-trips
/// through `Display` and `FromStr`, for an API that hands it to a client as an opaque
/// locator of the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataPosition {
    batch: i64,
    chunk: i64,
    offset: usize,
}

impl DataPosition {
    /// Before the first byte.
    pub const START: DataPosition = DataPosition {
        batch: 0,
        chunk: i64::MAX,
        offset: 0,
    };
}

impl std::fmt::Display for DataPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.batch, self.chunk, self.offset)
    }
}

impl std::str::FromStr for DataPosition {
    type Err = Error;

    fn from_str(text: &str) -> Result<DataPosition> {
        let invalid = || Error::invalid("position", format!("`{text}` is not a data position"));
        let mut parts = text.split('-');
        let mut next = || parts.next().ok_or_else(invalid);
        let (batch, chunk, offset) = (next()?, next()?, next()?);
        if parts.next().is_some() {
            return Err(invalid());
        }
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !(digits(batch) && digits(chunk) && digits(offset)) {
            return Err(invalid());
        }
        Ok(DataPosition {
            batch: batch.parse().map_err(|_| invalid())?,
            chunk: chunk.parse().map_err(|_| invalid())?,
            offset: offset.parse().map_err(|_| invalid())?,
        })
    }
}

impl DataReader {
    /// The next stored chunk whole (at most 256 KiB), or `None` at the end: one short read,
    /// for a server that streams the data without holding a thread between chunks.
    ///
    /// # Errors
    /// Storage errors.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        if self.offset >= self.buffer.len() && !self.done {
            self.fetch()?;
        }
        let available = self.available();
        if available == 0 {
            return Ok(None);
        }
        // The chunk leaves whole (no copy, no buffer kept behind) unless `read` took part of
        // it or the limit ends inside it.
        let rest = if self.offset == 0 && available == self.buffer.len() {
            std::mem::take(&mut self.buffer)
        } else {
            let rest = self.buffer[self.offset..self.offset + available].to_vec();
            self.offset += available;
            self.spend(available);
            return Ok(Some(rest));
        };
        self.offset = 0;
        self.spend(available);
        Ok(Some(rest))
    }

    /// Ends the reader after `bytes` more bytes (or at the end of the data, if sooner).
    #[must_use]
    pub fn limit(mut self, bytes: u64) -> DataReader {
        self.remaining = Some(bytes);
        self
    }

    /// Where the reader stands: the next byte it gives is the first byte a reader made with
    /// [`Store::read_output_at`] at this position gives.
    pub fn position(&self) -> DataPosition {
        if let Some(resume) = self.resume {
            return resume;
        }
        let (batch, chunk) = self.position;
        let left = self.buffer.len().saturating_sub(self.offset);
        DataPosition {
            batch,
            chunk,
            offset: self.chunk_len - left,
        }
    }

    /// Bytes of the current chunk that may be given now.
    fn available(&self) -> usize {
        let left = self.buffer.len().saturating_sub(self.offset);
        match self.remaining {
            Some(remaining) => left.min(usize::try_from(remaining).unwrap_or(usize::MAX)),
            None => left,
        }
    }

    fn spend(&mut self, given: usize) {
        if let Some(remaining) = &mut self.remaining {
            *remaining = remaining.saturating_sub(given as u64);
        }
    }

    fn fetch(&mut self) -> Result<()> {
        let (batch, chunk) = self.position;
        let query = ChunkQuery {
            job: self.job,
            only_batch: self.only_batch,
            name: self.name.as_deref(),
            after_batch: batch,
            after_chunk: chunk,
        };
        let next = self
            .store
            .read(|tx| tx.next_chunk(&query))?
            .map(|c| (c.batch, c.chunk, c.data));
        match next {
            Some((batch, chunk, _))
                if self
                    .resume
                    .is_some_and(|resume| (resume.batch, resume.chunk) != (batch, chunk)) =>
            {
                return Err(Error::invalid(
                    "position",
                    "the output was replaced since the position was taken",
                ));
            }
            Some((batch, chunk, data)) => {
                self.position = (batch, chunk);
                self.chunk_len = data.len();
                self.offset = self
                    .resume
                    .take()
                    .map_or(0, |resume| resume.offset.min(data.len()));
                self.buffer = data;
            }
            None if self.resume.is_some() => {
                return Err(Error::invalid(
                    "position",
                    "the output was replaced since the position was taken",
                ));
            }
            None => self.done = true,
        }
        Ok(())
    }
}

impl Read for DataReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = out.len().min(available.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for DataReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.offset >= self.buffer.len() && self.remaining != Some(0) && !self.done {
            self.fetch().map_err(io::Error::other)?;
        }
        let available = self.available();
        Ok(&self.buffer[self.offset..self.offset + available])
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.available());
        self.offset += amount;
        self.spend(amount);
    }
}
