//! A job's data over HTTP: uploads pushed from the request body into a new batch, and
//! downloads pulled from the store a chunk at a time, neither holding a thread while it waits
//! for its client.
//!
//! An upload is a loop on the connection's task: the next piece of the body (held to the
//! minimum rate), a check of it (a dialect's validator, or none), a push into the
//! [`jobstore::BatchUpload`], and, every 256 KiB, one chunk written through the store's writer as an
//! async write. The batch becomes visible in the write that seals it; an upload that stops for
//! any reason (refused content, a stalled or vanished client, a shed connection) drops its
//! [`jobstore::BatchUpload`], which deletes the batch.
//!
//! A download is a task that reads the next chunk on a blocking thread (one short read), hands
//! it to the response body, and waits for the client to take it: a client that stops reading
//! holds one chunk and no thread, and the connection's write pacing cuts it off.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use jobstore::{DataBatch, DataReader, Error, WriteCall};

use crate::body::{self, BodyStop, ChannelBody, Pace};
use crate::conn::Conn;
use crate::{ApiError, App, Principal};

/// What an upload checks as its bytes arrive. A fault refuses the batch: nothing is kept and
/// the client gets the fault as [`Error::DataRead`], which its dialect renders.
pub trait UploadCheck: Send {
    /// Checks the next bytes of the batch.
    ///
    /// # Errors
    /// The content is refused.
    fn feed(&mut self, bytes: &[u8]) -> io::Result<()>;

    /// Checks the end of the batch.
    ///
    /// # Errors
    /// The content is refused.
    fn finish(&mut self) -> io::Result<()>;
}

/// Takes the bytes as they come: the native API's uploads.
#[derive(Debug, Default, Clone, Copy)]
pub struct AsIs;

impl UploadCheck for AsIs {
    fn feed(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl App {
    /// Streams a request body into a new data batch of job `id`, through `check`. Memory stays
    /// at one chunk and a frame; no thread is held while the client sends.
    ///
    /// # Errors
    /// The outer error: 408 when the body fell below the minimum rate, 500 when the store's
    /// writer dropped an answer. The inner one: the store's answer, [`Error::DataRead`] when
    /// the body broke off or `check` refused it. Nothing of the batch is kept on any error.
    pub(crate) async fn append_body(
        &self,
        principal: &Principal,
        id: i64,
        request: Request<Incoming>,
        mut check: impl UploadCheck,
    ) -> Result<jobstore::Result<DataBatch>, ApiError> {
        let mut pace = self.pace(&request);
        let mut body = request.into_body();
        let mut upload = match self
            .write_typed(principal, move |store| store.begin_upload_call(id))
            .await?
        {
            Ok(upload) => upload,
            Err(err) => return Ok(Err(err)),
        };
        loop {
            let data = match body::next_data(&mut body, &mut pace).await {
                Ok(Some(data)) => data,
                Ok(None) => break,
                Err(BodyStop::Stalled(rate)) => return Err(body::body_timeout(rate)),
                Err(BodyStop::Broken(reason)) => {
                    return Ok(Err(Error::DataRead(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        reason,
                    ))));
                }
            };
            if let Err(err) = check.feed(&data) {
                return Ok(Err(Error::DataRead(err)));
            }
            if let Err(err) = upload.push(&data) {
                return Ok(Err(err));
            }
            while let Some(chunk) = upload.chunk_call() {
                if let Err(err) = self.settle(chunk).await? {
                    return Ok(Err(err));
                }
            }
        }
        if let Err(err) = check.finish() {
            return Ok(Err(Error::DataRead(err)));
        }
        self.settle(upload.finish_call()).await
    }

    /// The pace a request body is held to, reported to its connection (whose slowest body is
    /// the first shed when the server is full).
    pub(crate) fn pace(&self, request: &Request<Incoming>) -> Pace {
        let rate = self.limits.body_rate();
        match request.extensions().get::<Arc<Conn>>() {
            Some(conn) => Pace::metered(rate, Arc::clone(conn)),
            None => Pace::start(rate),
        }
    }

    /// Waits for a write made outside a principal's scope (the scope was fixed when the call
    /// was made).
    async fn settle<T: Send + 'static>(
        &self,
        call: WriteCall<T>,
    ) -> Result<jobstore::Result<T>, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        call.then(move |result| {
            let _ = reply.send(result);
        });
        answer.await.map_err(|_| {
            log::error!("the store's writer dropped an answer");
            ApiError::internal()
        })
    }
}

/// A response body streaming what `reader` reads (job `id`'s complete batches, in order).
pub(crate) fn stream(id: i64, reader: DataReader) -> ChannelBody {
    let (sender, stream) = ChannelBody::new();
    tokio::spawn(async move {
        let mut reader = Some(reader);
        // The next chunk is read only once the client took the previous one.
        while let Ok(room) = sender.reserve().await {
            let Some(mut current) = reader.take() else {
                break;
            };
            let next = tokio::task::spawn_blocking(move || {
                let chunk = current.next_chunk();
                (current, chunk)
            })
            .await;
            let chunk = match next {
                Ok((current, chunk)) => {
                    reader = Some(current);
                    chunk
                }
                Err(err) => Err(Error::DataRead(io::Error::other(format!(
                    "the read task failed: {err}"
                )))),
            };
            match chunk {
                Ok(Some(chunk)) => room.send(Ok(Bytes::from(chunk))),
                Ok(None) => break,
                Err(err) => {
                    // The client sees the response break off rather than end: it must not take
                    // a part for the whole.
                    log::error!("job {id}: streaming data failed: {err}");
                    room.send(Err(io::Error::other(err.to_string())));
                    break;
                }
            }
        }
    });
    stream
}
