//! Request and response bodies: bounded JSON in (413 past the limit, 408 when the client is
//! too slow), JSON and text out, and streaming in both directions for uploaded data.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::conn::{BodyRead, Conn};
use crate::fault::{ApiError, ErrorKind};

/// Every response body: full or streamed.
pub(crate) type ResponseBody = BoxBody<Bytes, io::Error>;

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A JSON response.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(bytes) => with_type(status, "application/json", full(bytes)),
        Err(err) => {
            log::error!("cannot render a response: {err}");
            let fallback = r#"{"error":{"type":"internal","message":"unrenderable response"}}"#;
            with_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                full(fallback),
            )
        }
    }
}

/// A response with a body of a given content type.
pub(crate) fn with_type(
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
pub(crate) fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<ResponseBody> {
    with_type(status, content_type, full(body))
}

/// A response without a body.
pub(crate) fn empty(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// The members of a request's JSON `body`, which must be an object; `refuse` words the
/// refusal of any other value in the API's shape.
pub(crate) fn object<E>(
    body: Value,
    refuse: impl FnOnce(&'static str) -> E,
) -> Result<Map<String, Value>, E> {
    match body {
        Value::Object(members) => Ok(members),
        _ => Err(refuse("the request body must be a JSON object")),
    }
}

/// The media type a request's `Content-Type` names, lowercased, without its parameters;
/// `None` when it sends none, or one that is not visible ASCII.
pub(crate) fn media_type(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next().unwrap_or_default();
    Some(media.trim().to_ascii_lowercase())
}

/// Sets the header `name` of `response` to `value`; left out if `value` cannot be a header
/// value (text that is not visible ASCII).
pub(crate) fn set_header(
    response: &mut Response<ResponseBody>,
    name: impl header::IntoHeaderName,
    value: &str,
) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// A minimum transfer rate, measured over windows rather than between frames: while a
/// transfer waits on its peer, at least `bytes_per_sec × window` bytes must move within each
/// `window`, or the transfer is given up. A client that sends (or reads) one byte now and then
/// is cut off after one window, however often it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// The span over which the rate is measured; also the longest a small body may take.
    pub window: Duration,
    /// The slowest rate kept, in bytes per second.
    pub bytes_per_sec: u64,
}

impl MinRate {
    /// The bytes that must move within one window.
    pub fn bytes_per_window(&self) -> u64 {
        let per_window = u128::from(self.bytes_per_sec) * self.window.as_millis() / 1000;
        u64::try_from(per_window).unwrap_or(u64::MAX).max(1)
    }
}

/// A request body's progress against a [`MinRate`]: the deadline by which the current
/// window's bytes must have moved. A metered pace also tells its connection how the body
/// goes, so that a full server can shed the slowest body first.
#[derive(Debug)]
pub(crate) struct Pace {
    rate: MinRate,
    deadline: tokio::time::Instant,
    moved: u64,
    meter: Option<Arc<Conn>>,
    /// Told when the body was read to its end.
    read: Option<BodyRead>,
}

impl Pace {
    /// A transfer starting now.
    pub(crate) fn start(rate: MinRate) -> Pace {
        Pace {
            rate,
            deadline: tokio::time::Instant::now() + rate.window,
            moved: 0,
            meter: None,
            read: None,
        }
    }

    /// A request body starting now on `conn`.
    pub(crate) fn metered(rate: MinRate, conn: Arc<Conn>) -> Pace {
        conn.body_started();
        let mut pace = Pace::start(rate);
        pace.meter = Some(conn);
        pace
    }

    /// This pace, telling `read` when the body was read to its end.
    pub(crate) fn telling(mut self, read: BodyRead) -> Pace {
        self.read = Some(read);
        self
    }

    /// When the transfer is given up unless the window's bytes move first.
    pub(crate) fn deadline(&self) -> tokio::time::Instant {
        self.deadline
    }

    /// Counts `n` bytes moved; a window whose bytes all moved opens the next one.
    pub(crate) fn moved(&mut self, n: usize) {
        if let Some(conn) = &self.meter {
            conn.body_progress(n);
        }
        self.moved += n as u64;
        if self.moved >= self.rate.bytes_per_window() {
            self.moved = 0;
            self.deadline = tokio::time::Instant::now() + self.rate.window;
        }
    }

    /// The rate this transfer is held to.
    pub(crate) fn rate(&self) -> MinRate {
        self.rate
    }
}

impl Drop for Pace {
    fn drop(&mut self) {
        if let Some(conn) = &self.meter {
            conn.body_done();
        }
    }
}

/// How reading the next piece of a request body ended short of data.
#[derive(Debug)]
pub enum BodyStop {
    /// The body fell below the minimum rate.
    Stalled(MinRate),
    /// The connection broke or the body was malformed.
    Broken(String),
}

impl From<BodyStop> for ApiError {
    fn from(stop: BodyStop) -> ApiError {
        match stop {
            BodyStop::Stalled(rate) => body_timeout(rate),
            BodyStop::Broken(reason) => {
                ApiError::bad_request(format!("reading the body failed: {reason}"))
            }
        }
    }
}

/// The next data of a request body, `None` at its end, held to `pace`.
///
/// # Errors
/// [`BodyStop`] when the body stalls or breaks.
pub(crate) async fn next_data<B>(body: &mut B, pace: &mut Pace) -> Result<Option<Bytes>, BodyStop>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    loop {
        match tokio::time::timeout_at(pace.deadline(), body.frame()).await {
            Err(_) => return Err(BodyStop::Stalled(pace.rate())),
            Ok(None) => {
                if let Some(read) = &pace.read {
                    read.done();
                }
                return Ok(None);
            }
            Ok(Some(Err(err))) => return Err(BodyStop::Broken(err.to_string())),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    pace.moved(data.len());
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Reads a whole request body of at most `limit` bytes, held to `pace`.
///
/// # Errors
/// 413 `body_too_large`, 408 `body_timeout`, 400 `invalid_request` when the connection broke.
pub(crate) async fn read_limited<B>(
    mut body: B,
    limit: usize,
    mut pace: Pace,
) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    // A declared length past the limit is refused before a byte is read: before hyper answers
    // `Expect: 100-continue` (it does on the body's first poll), and without waiting for
    // bytes the client may never send.
    if body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(too_large(limit));
    }
    let mut collected = Vec::new();
    while let Some(data) = next_data(&mut body, &mut pace).await? {
        if collected.len() + data.len() > limit {
            return Err(too_large(limit));
        }
        collected.extend_from_slice(data.chunk());
    }
    Ok(Bytes::from(collected))
}

/// What a JSON body may hold at its top.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Top {
    /// Any JSON value: the API checks its shape itself, in its own words.
    Value,
    /// A typed document (a struct) read from an object only: serde would also fill a struct's
    /// fields from an array, by position (`["x"]` a job of kind "x").
    Document,
}

/// Reads and decodes a JSON body; an empty body decodes as `{}`, one of whitespace alone is
/// malformed (it is no JSON, and no absent body either).
///
/// # Errors
/// As [`read_limited`], and 400 `invalid_json` naming what is wrong (unknown fields among it).
pub(crate) async fn read_json<T, B>(
    body: B,
    limit: usize,
    pace: Pace,
    top: Top,
) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let bytes = read_limited(body, limit, pace).await?;
    let bytes: &[u8] = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        None if bytes.is_empty() => b"{}",
        None => {
            return Err(ApiError::new(
                ErrorKind::InvalidJson,
                "the request body holds whitespace alone: send a JSON object, or no body",
            ));
        }
        Some(b'[') if top == Top::Document => {
            return Err(ApiError::new(
                ErrorKind::InvalidJson,
                "the request body must be a JSON object, not an array",
            ));
        }
        Some(_) => &bytes,
    };
    jobstore::exact_json::check_numbers(bytes)
        .map_err(|message| ApiError::new(ErrorKind::InvalidJson, message))?;
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::new(
            ErrorKind::InvalidJson,
            format!("malformed request body: {err}"),
        )
    })
}

/// 413 for a body past its limit.
pub(crate) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::BodyTooLarge,
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// 408 for a body that fell below the minimum rate.
pub(crate) fn body_timeout(rate: MinRate) -> ApiError {
    ApiError::new(
        ErrorKind::BodyTimeout,
        format!(
            "the request body arrived slower than {} bytes in {} ms",
            rate.bytes_per_window(),
            rate.window.as_millis()
        ),
    )
}

/// A streamed response body fed from a task.
pub(crate) struct ChannelBody {
    receiver: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
}

impl ChannelBody {
    /// A body and the sender that feeds it.
    pub(crate) fn new() -> (tokio::sync::mpsc::Sender<io::Result<Bytes>>, ChannelBody) {
        // One chunk waits for the client at most: a stalled reader costs little memory.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        (sender, ChannelBody { receiver })
    }
}

/// A response body of `first`, then the chunks `next` reads on a blocking thread, each read
/// only once the client took the last, until `next` answers `None`. A read that fails is
/// logged as `what` failing and breaks the body off: the client sees the answer end
/// abruptly, never a part it could take for the whole.
pub(crate) fn blocking_stream<F>(what: String, first: Bytes, mut next: F) -> ChannelBody
where
    F: FnMut() -> Result<Option<Bytes>, String> + Send + 'static,
{
    let (sender, stream) = ChannelBody::new();
    tokio::spawn(async move {
        if !first.is_empty() {
            match sender.reserve().await {
                Ok(room) => room.send(Ok(first)),
                Err(_) => return,
            }
        }
        while let Ok(room) = sender.reserve().await {
            let read = tokio::task::spawn_blocking(move || {
                let chunk = next();
                (next, chunk)
            })
            .await;
            let failure = match read {
                Ok((back, Ok(Some(chunk)))) => {
                    next = back;
                    room.send(Ok(chunk));
                    continue;
                }
                Ok((_, Ok(None))) => break,
                Ok((_, Err(err))) => err,
                Err(err) => format!("the read task failed: {err}"),
            };
            log::error!("{what} failed: {failure}");
            room.send(Err(io::Error::other(failure)));
            break;
        }
    });
    stream
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
