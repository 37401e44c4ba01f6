//! Uploaded data: batches streamed in from a `Read` and out through a `Read`, a chunk at a
//! time, never whole in memory.
//!
//! An append is several short writes, so a slow upload never holds the write lock: the batch
//! row is made (`complete = 0`, invisible to readers), each chunk is written in its own
//! group commit, and a last write checks the job is still `open` and marks the batch complete.
//! If reading the source fails, the batch grows past its limit or the job leaves `open`, the
//! batch is deleted and the caller gets the error: nothing of it is kept. A process killed
//! half way leaves an incomplete batch that readers never see and maintenance purges.

use std::io::{self, Read};

use rusqlite::{OptionalExtension, params};

use super::rows::{EventRow, insert_event, load_job, next_state};
use super::{CHUNK_BYTES, Store};
use crate::model::DataBatch;
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
    pub fn append_data(&self, id: i64, mut source: impl Read) -> Result<DataBatch> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let limit_batches = self.options().max_batches_per_job;
        let limit_bytes = self.options().max_batch_bytes;
        let batch = self.write(move |conn| {
            let job = load_job(conn, tenant.as_deref(), id)?;
            next_state(&job, Event::Upload)?;
            let (count, last): (u32, i64) = conn
                .prepare_cached(
                    "SELECT count(*), ifnull(max(batch), 0) FROM job_data_batches \
                     WHERE job_id = ?1",
                )?
                .query_row(params![id], |row| Ok((row.get(0)?, row.get(1)?)))?;
            if count >= limit_batches {
                return Err(Error::TooManyDataBatches {
                    job: id,
                    limit: limit_batches,
                });
            }
            conn.prepare_cached(
                "INSERT INTO job_data_batches (job_id, batch, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?3)",
            )?
            .execute(params![id, last + 1, now])?;
            Ok(last + 1)
        })?;
        match self.stream_chunks(id, batch, &mut source, limit_bytes) {
            Ok(bytes) => self.seal_batch(id, batch, bytes).inspect_err(|_| {
                self.discard_batch(id, batch);
            }),
            Err(err) => {
                self.discard_batch(id, batch);
                Err(err)
            }
        }
    }

    fn stream_chunks(
        &self,
        id: i64,
        batch: i64,
        source: &mut impl Read,
        limit: u64,
    ) -> Result<u64> {
        let mut total: u64 = 0;
        let mut chunk: i64 = 0;
        loop {
            let buffer = read_chunk(source).map_err(Error::DataRead)?;
            if buffer.is_empty() {
                return Ok(total);
            }
            total += buffer.len() as u64;
            if total > limit {
                return Err(Error::DataBatchTooLarge { limit });
            }
            let now = self.now();
            let index = chunk;
            self.write(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO job_data_chunks (job_id, batch, chunk, data) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, batch, index, buffer])
                .map_err(|err| {
                    // The batch row is gone: the job was aborted or deleted meanwhile.
                    match load_job(conn, None, id) {
                        Ok(job) => next_state(&job, Event::Upload).err().unwrap_or(err.into()),
                        Err(gone) => gone,
                    }
                })?;
                conn.prepare_cached(
                    "UPDATE job_data_batches SET bytes = bytes + ?1, updated_at = ?2 \
                     WHERE job_id = ?3 AND batch = ?4",
                )?
                .execute(params![
                    i64::try_from(buffer.len()).unwrap_or(i64::MAX),
                    now,
                    id,
                    batch
                ])?;
                Ok(())
            })?;
            chunk += 1;
        }
    }

    fn seal_batch(&self, id: i64, batch: i64, bytes: u64) -> Result<DataBatch> {
        let now = self.now();
        self.write(move |conn| {
            let job = load_job(conn, None, id)?;
            let to = next_state(&job, Event::Upload)?;
            let (stored, created_at): (i64, i64) = conn
                .prepare_cached(
                    "UPDATE job_data_batches SET complete = 1, updated_at = ?1 \
                     WHERE job_id = ?2 AND batch = ?3 RETURNING bytes, created_at",
                )?
                .query_row(params![now, id, batch], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?;
            debug_assert_eq!(u64::try_from(stored).ok(), Some(bytes));
            conn.prepare_cached("UPDATE jobs SET updated_at = ?1 WHERE id = ?2 AND state = ?3")?
                .execute(params![now, id, to.as_str()])?;
            let detail = format!("batch {batch}, {stored} bytes");
            insert_event(
                conn,
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
        })
    }

    /// Deletes a batch that did not make it; if even that fails, maintenance purges it later.
    fn discard_batch(&self, id: i64, batch: i64) {
        let outcome = self.write(move |conn| {
            conn.prepare_cached("DELETE FROM job_data_batches WHERE job_id = ?1 AND batch = ?2")?
                .execute(params![id, batch])?;
            Ok(())
        });
        if let Err(err) = outcome {
            log::warn!("job {id}: could not discard incomplete batch {batch}: {err}");
        }
    }

    /// Closes the upload phase: `open` → `queued`.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::InvalidTransition`] when the job is not `open`.
    pub fn close_upload(&self, id: i64, actor: &str) -> Result<crate::Job> {
        let tenant = self.tenant_filter();
        let now = self.now();
        let actor = actor.to_owned();
        let job = self.write(move |conn| {
            let job = load_job(conn, tenant.as_deref(), id)?;
            let to = next_state(&job, Event::Close)?;
            let changed = conn
                .prepare_cached(
                    "UPDATE jobs SET state = ?1, run_at = max(run_at, ?2), updated_at = ?2 \
                     WHERE id = ?3 AND state = ?4",
                )?
                .execute(params![to.as_str(), now, id, job.state.as_str()])?;
            if changed != 1 {
                return Err(Error::JobNotFound { id });
            }
            insert_event(
                conn,
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
            load_job(conn, None, id)
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
        self.read(|conn| {
            load_job(conn, tenant.as_deref(), id)?;
            let mut stmt = conn.prepare_cached(
                "SELECT batch, bytes, created_at FROM job_data_batches \
                 WHERE job_id = ?1 AND complete = 1 ORDER BY batch",
            )?;
            let rows = stmt.query_map(params![id], |row| {
                Ok(DataBatch {
                    batch: row.get(0)?,
                    bytes: row.get(1)?,
                    created_at: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Reads the job's data: every complete batch in order (`batch` `None`) or one batch, as a
    /// stream that fetches one chunk at a time.
    ///
    /// # Errors
    /// [`Error::JobNotFound`].
    pub fn read_data(&self, id: i64, batch: Option<i64>) -> Result<DataReader> {
        let tenant = self.tenant_filter();
        self.read(|conn| load_job(conn, tenant.as_deref(), id))?;
        Ok(DataReader {
            store: self.clone(),
            job: id,
            only_batch: batch,
            position: (batch.map_or(0, |b| b - 1), i64::MAX),
            buffer: Vec::new(),
            offset: 0,
            done: false,
        })
    }
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
pub struct DataReader {
    store: Store,
    job: i64,
    only_batch: Option<i64>,
    /// The (batch, chunk) read last; `(b, i64::MAX)` means "after every chunk of batch b".
    position: (i64, i64),
    buffer: Vec<u8>,
    offset: usize,
    done: bool,
}

const NEXT_CHUNK: &str = "SELECT c.batch, c.chunk, c.data FROM job_data_chunks c \
     JOIN job_data_batches b ON b.job_id = c.job_id AND b.batch = c.batch \
     WHERE c.job_id = ?1 AND b.complete = 1 AND (?2 IS NULL OR c.batch = ?2) \
     AND (c.batch > ?3 OR (c.batch = ?3 AND c.chunk > ?4)) \
     ORDER BY c.batch, c.chunk LIMIT 1";

impl DataReader {
    fn fetch(&mut self) -> Result<()> {
        let (batch, chunk) = self.position;
        let next: Option<(i64, i64, Vec<u8>)> = self.store.read(|conn| {
            Ok(conn
                .prepare_cached(NEXT_CHUNK)?
                .query_row(params![self.job, self.only_batch, batch, chunk], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?)
        })?;
        match next {
            Some((batch, chunk, data)) => {
                self.position = (batch, chunk);
                self.buffer = data;
                self.offset = 0;
            }
            None => self.done = true,
        }
        Ok(())
    }
}

impl Read for DataReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.offset >= self.buffer.len() {
            if self.done {
                return Ok(0);
            }
            self.fetch().map_err(io::Error::other)?;
        }
        let n = out.len().min(self.buffer.len() - self.offset);
        out[..n].copy_from_slice(&self.buffer[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}
