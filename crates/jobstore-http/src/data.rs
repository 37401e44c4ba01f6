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

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use jobstore::{BatchUpload, DataBatch, DataReader, Error, Lease, Store, UploadLimits, WriteCall};

use crate::body::{self, BodyStop, ChannelBody, Pace};
use crate::{ApiError, App, Principal};

/// What an upload checks as its bytes arrive. A fault refuses the batch: nothing is kept and
/// the client gets the fault as [`Error::DataRead`], which its dialect renders.
pub(crate) trait UploadCheck: Send {
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
pub(crate) struct AsIs;

impl UploadCheck for AsIs {
    fn feed(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl App {
    /// Streams a request body into a new data batch of job `id`, through `check`, within
    /// `limits` (and the store's own). Memory stays at one chunk and a frame; no thread is
    /// held while the client sends.
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
        check: impl UploadCheck,
        limits: UploadLimits,
    ) -> Result<jobstore::Result<DataBatch>, ApiError> {
        self.stream_body(
            principal,
            move |store| store.begin_upload_call(id, limits),
            request,
            check,
        )
        .await
    }

    /// Streams a request body, as it is, into a new batch of the output `name` of job `id`,
    /// uploaded under `lease` (see [`jobstore::Store::begin_output_call`]).
    ///
    /// # Errors
    /// As [`App::append_body`]; the inner error is also [`Error::StaleLease`] when `lease` is
    /// not (or no longer) the job's current one.
    pub(crate) async fn append_output_body(
        &self,
        principal: &Principal,
        id: i64,
        lease: Lease,
        name: String,
        request: Request<Incoming>,
    ) -> Result<jobstore::Result<DataBatch>, ApiError> {
        self.stream_body(
            principal,
            move |store| store.begin_output_call(id, &lease, &name, UploadLimits::default()),
            request,
            AsIs,
        )
        .await
    }

    /// Streams a request body through `check` into the batch `begin` starts.
    async fn stream_body(
        &self,
        principal: &Principal,
        begin: impl FnOnce(Store) -> WriteCall<BatchUpload>,
        request: Request<Incoming>,
        mut check: impl UploadCheck,
    ) -> Result<jobstore::Result<DataBatch>, ApiError> {
        let mut pace = self.pace(&request);
        let mut body = request.into_body();
        let mut upload = match self.write_typed(principal, begin).await? {
            Ok(upload) => upload,
            Err(err) => return Ok(Err(err)),
        };
        let failure = match self
            .fill(&mut upload, &mut body, &mut pace, &mut check)
            .await
        {
            Ok(Ok(())) => return self.settle(upload.finish_call()).await,
            Ok(Err(err)) => Ok(Err(err)),
            Err(err) => Err(err),
        };
        // Answered only once the batch is gone. (A request dropped half way, its client gone,
        // deletes it in the background.)
        let (deleted, gone) = tokio::sync::oneshot::channel();
        upload.abandon_then(move || {
            let _ = deleted.send(());
        });
        let _ = gone.await;
        failure
    }

    /// Pushes the whole body through `check` into `upload`, writing each chunk as it fills.
    async fn fill(
        &self,
        upload: &mut BatchUpload,
        body: &mut Incoming,
        pace: &mut Pace,
        check: &mut impl UploadCheck,
    ) -> Result<jobstore::Result<()>, ApiError> {
        loop {
            let data = match body::next_data(body, pace).await {
                Ok(Some(data)) => data,
                Ok(None) => return Ok(check.finish().map_err(Error::DataRead)),
                Err(BodyStop::Stalled(rate)) => return Err(body::body_timeout(rate)),
                Err(BodyStop::Broken(reason)) => {
                    let broken = io::Error::new(io::ErrorKind::UnexpectedEof, reason);
                    return Ok(Err(Error::DataRead(broken)));
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
    }
}

/// A response body streaming what `reader` reads (job `id`'s complete batches, in order).
pub(crate) fn stream(id: i64, reader: DataReader) -> ChannelBody {
    stream_after(id, Bytes::new(), reader)
}

/// A response body of `first`, then what `reader` reads.
pub(crate) fn stream_after(id: i64, first: Bytes, mut reader: DataReader) -> ChannelBody {
    body::blocking_stream(
        format!("job {id}: streaming data"),
        first,
        move || match reader.next_chunk() {
            Ok(chunk) => Ok(chunk.map(Bytes::from)),
            Err(err) => Err(err.to_string()),
        },
    )
}
