//! Request and response bodies: bounded JSON in (413 past the limit, 408 when the client is
//! too slow), JSON and text out, and streaming in both directions for uploaded data.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Every response body: full or streamed.
pub type ResponseBody = BoxBody<Bytes, io::Error>;

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", full(bytes)),
        Err(err) => error(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot render the response: {err}"),
        )),
    }
}

/// A response with a body of a given content type.
pub fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A plain text response.
pub fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<ResponseBody> {
    with_type(status, content_type, full(body))
}

/// A response without a body.
pub fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The native error document.
pub fn error(err: &ApiError) -> Response<ResponseBody> {
    let mut response = with_type(err.status, "application/json", full(err.body()));
    if let Some(seconds) = err.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// Reads a whole request body of at most `limit` bytes, each frame within `timeout`.
///
/// # Errors
/// 413 `body_too_large`, 408 `body_timeout`, 400 `invalid_request` when the connection broke.
pub async fn read_limited<B>(
    mut body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let mut collected = Vec::new();
    loop {
        let frame = match tokio::time::timeout(timeout, body.frame()).await {
            Err(_) => return Err(body_timeout(timeout)),
            Ok(None) => break,
            Ok(Some(Err(err))) => {
                return Err(ApiError::bad_request(format!(
                    "reading the body failed: {err}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if collected.len() + data.len() > limit {
                return Err(too_large(limit));
            }
            collected.extend_from_slice(data.chunk());
        }
    }
    Ok(Bytes::from(collected))
}

/// Reads and decodes a JSON body; an empty body decodes as `{}`.
///
/// # Errors
/// As [`read_limited`], and 400 `invalid_json` naming what is wrong (unknown fields among it).
pub async fn read_json<T, B>(body: B, limit: usize, timeout: Duration) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let bytes = read_limited(body, limit, timeout).await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    crate::exact_json::check_numbers(bytes)
        .map_err(|message| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", message))?;
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("malformed request body: {err}"),
        )
    })
}

/// 413 for a body past its limit.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// 408 for a body that stopped arriving.
pub fn body_timeout(timeout: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "body_timeout",
        format!("no request body data within {} ms", timeout.as_millis()),
    )
}

/// How forwarding a request body to a blocking reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarded {
    /// The body ended, broke, or the reader stopped reading.
    Done,
    /// A frame did not arrive within the timeout.
    TimedOut,
}

/// Forwards a request body frame by frame to the sender of a [`ChannelReader`] until the body
/// ends, the reader stops reading (it refused the data), or a frame takes longer than
/// `timeout`. A broken or stalled body reaches the reader as an error, so whatever it was
/// storing is refused, never taken for a complete upload.
pub async fn forward<B>(
    mut incoming: B,
    sender: tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    timeout: Duration,
) -> Forwarded
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        let frame = match tokio::time::timeout(timeout, incoming.frame()).await {
            Err(_) => {
                let stalled =
                    io::Error::new(io::ErrorKind::TimedOut, "the request body stopped arriving");
                let _ = sender.send(Err(stalled)).await;
                return Forwarded::TimedOut;
            }
            Ok(None) => return Forwarded::Done,
            Ok(Some(Err(err))) => {
                let _ = sender
                    .send(Err(io::Error::other(format!("body: {err}"))))
                    .await;
                return Forwarded::Done;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data()
            && sender.send(Ok(data)).await.is_err()
        {
            // The reader stopped: the store refused the batch (not open, too large, invalid).
            return Forwarded::Done;
        }
    }
}

/// A blocking `Read` over body frames sent from the async side: the store streams an upload
/// from it on a blocking thread while the connection task forwards the frames.
pub struct ChannelReader {
    receiver: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl ChannelReader {
    /// A reader and the sender that feeds it (a few frames of buffer).
    pub fn new() -> (tokio::sync::mpsc::Sender<io::Result<Bytes>>, ChannelReader) {
        let (sender, receiver) = tokio::sync::mpsc::channel(8);
        (
            sender,
            ChannelReader {
                receiver,
                current: Bytes::new(),
            },
        )
    }
}

impl io::Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.receiver.blocking_recv() {
                None => return Ok(0),
                Some(Err(err)) => return Err(err),
                Some(Ok(bytes)) => self.current = bytes,
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// A streamed response body fed from a blocking thread.
pub struct ChannelBody {
    receiver: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
}

impl ChannelBody {
    /// A body and the sender that feeds it.
    pub fn new() -> (tokio::sync::mpsc::Sender<io::Result<Bytes>>, ChannelBody) {
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        (sender, ChannelBody { receiver })
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.receiver
            .poll_recv(cx)
            .map(|next| next.map(|chunk| chunk.map(Frame::data)))
    }
}
