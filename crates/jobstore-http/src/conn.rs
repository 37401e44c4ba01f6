//! Connections and what each may hold: admission when the server is full, requests in flight
//! per connection and per token, and the minimum rate of response writes.
//!
//! A connection that has not sent a byte waits in a lobby, outside the limit, until it does
//! (or its header timeout closes it): a flood of silent connections takes no slot, and a
//! client is never shed in the instant between its connect and its request. A full server
//! makes room before it refuses anyone: it sheds the connection that has been idle longest (a
//! keep-alive connection between requests, or one that has not finished its request head),
//! but not one admitted with a whole request still unread in its socket; else the one sending
//! a request body slowest, if that one is below the minimum rate. Otherwise a new connection
//! is answered 503 and closed once what it sent is read (never a reset that could destroy the
//! answer). A response that the client stops reading is cut off once it falls below the
//! minimum rate for a window ([`PacedIo`]).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::body::MinRate;
use crate::fault::{ApiError, ErrorKind};

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps below stay consistent whatever a panicking holder did half way.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The connections being served, up to a limit.
#[derive(Debug)]
pub(crate) struct Connections {
    max: usize,
    /// The most connections waiting in the lobby.
    lobby_cap: usize,
    rate: MinRate,
    epoch: Instant,
    next_id: AtomicU64,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Connections accepted that have not sent a byte yet: they wait outside the limit.
    lobby: AtomicUsize,
    /// Signalled whenever the last connection closed.
    emptied: Notify,
    /// When a refusal was last logged (ms since `epoch`), so a flood logs once a few seconds.
    last_refusal_log: AtomicU64,
}

/// One served connection, as the admission sees it.
#[derive(Debug)]
pub(crate) struct Conn {
    id: u64,
    /// The admission's clock (times below are milliseconds since it).
    epoch: Instant,
    /// Requests in flight: a request ends when its response body has been sent or dropped.
    busy: AtomicUsize,
    /// Admitted with a whole request (or TLS record) waiting in its socket, which the server
    /// has not read yet ([`PacedIo::noting_reads`] clears it): not idle until then.
    request_waiting: AtomicBool,
    /// Since when the connection has had no request in flight.
    idle_since: AtomicU64,
    /// When the request body being read started, plus one (0: none is being read).
    body_started: AtomicU64,
    /// Bytes of that body so far.
    body_bytes: AtomicU64,
    shed: Notify,
}

impl Connections {
    /// Room for `max` connections and `lobby` silent ones; bodies below `rate` are the first
    /// busy ones shed.
    pub(crate) fn new(max: usize, lobby: usize, rate: MinRate) -> Connections {
        Connections {
            max: max.max(1),
            lobby_cap: lobby.max(1),
            rate,
            epoch: Instant::now(),
            next_id: AtomicU64::new(1),
            live: Mutex::new(HashMap::new()),
            lobby: AtomicUsize::new(0),
            emptied: Notify::new(),
            last_refusal_log: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        millis_since(self.epoch)
    }

    /// Admits a new connection, shedding another one if the server is full; `None` when
    /// nothing could be shed (the caller refuses the connection). Only a connection that has
    /// spoken is admitted (see the lobby).
    pub(crate) fn admit(&self, request_waiting: bool) -> Option<Arc<Conn>> {
        let now = self.now_ms();
        let mut live = lock(&self.live);
        if live.len() >= self.max {
            let victim = self.pick_victim(&live, now)?;
            if let Some(shed) = live.remove(&victim) {
                log::debug!("shedding connection {victim} to admit a new one");
                shed.shed.notify_one();
            }
        }
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            epoch: self.epoch,
            busy: AtomicUsize::new(0),
            request_waiting: AtomicBool::new(request_waiting),
            idle_since: AtomicU64::new(now),
            body_started: AtomicU64::new(0),
            body_bytes: AtomicU64::new(0),
            shed: Notify::new(),
        });
        live.insert(conn.id, Arc::clone(&conn));
        Some(conn)
    }

    /// The connection idle longest (between requests, or slow to finish its request head),
    /// else the one whose request body is slowest and below the minimum rate. A connection
    /// admitted with a whole request waiting in its socket is not idle until the server read
    /// it (in a burst of new connections, shedding it would leave a client that sent a whole
    /// request with neither an answer nor a 503); one admitted with part of a head is.
    fn pick_victim(&self, live: &HashMap<u64, Arc<Conn>>, now: u64) -> Option<u64> {
        let idle = live
            .values()
            .filter(|c| {
                c.busy.load(Ordering::Acquire) == 0 && !c.request_waiting.load(Ordering::Acquire)
            })
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed));
        if let Some(conn) = idle {
            return Some(conn.id);
        }
        let floor = self.rate.bytes_per_sec as f64;
        live.values()
            .filter_map(|c| {
                let started = c.body_started.load(Ordering::Relaxed).checked_sub(1)?;
                // A body gets a second before its rate is judged.
                let seconds = now.saturating_sub(started) as f64 / 1000.0;
                if seconds < 1.0 {
                    return None;
                }
                let rate = c.body_bytes.load(Ordering::Relaxed) as f64 / seconds;
                (rate < floor).then_some((c.id, rate))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(id, _)| id)
    }

    /// Takes a place in the lobby for a connection that has not spoken yet (it takes no slot
    /// until it does); `None` when the lobby is full.
    pub(crate) fn enter_lobby(self: &Arc<Self>) -> Option<LobbyPlace> {
        let cap = self.lobby_cap;
        self.lobby
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        Some(LobbyPlace(Arc::clone(self)))
    }

    /// Forgets a connection that closed.
    pub(crate) fn release(&self, conn: &Conn) {
        let mut live = lock(&self.live);
        live.remove(&conn.id);
        if live.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Waits until no connection is left.
    pub(crate) async fn all_closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            tokio::pin!(emptied);
            emptied.as_mut().enable();
            if lock(&self.live).is_empty() {
                return;
            }
            emptied.await;
        }
    }

    /// Logs a refused connection, at most once every five seconds (a flood logs once).
    pub(crate) fn log_refusal(&self, peer: std::net::SocketAddr) {
        let now = self.now_ms();
        let last = self.last_refusal_log.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= 5_000)
            && self
                .last_refusal_log
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(
                "refused a connection from {peer}: all {} connections are busy at a fair rate",
                self.max
            );
        }
    }

    /// Marks a request in flight on `conn` until the returned guard drops.
    pub(crate) fn request_started(self: &Arc<Self>, conn: &Arc<Conn>) -> RequestGuard {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            connections: Arc::clone(self),
            conn: Arc::clone(conn),
        }
    }
}

/// The answer to a connection that could not be admitted: 503, `Retry-After: 1`, closed.
pub(crate) fn refusal() -> String {
    let body = ApiError::new(
        ErrorKind::Overloaded,
        "every connection is busy; try again shortly",
    );
    let body = serde_json::to_string(&body.native_body()).unwrap_or_default();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// A connection's place in the lobby, given up on drop.
#[derive(Debug)]
pub(crate) struct LobbyPlace(Arc<Connections>);

impl Drop for LobbyPlace {
    fn drop(&mut self) {
        self.0.lobby.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the client of a just-accepted connection has sent so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Nothing yet: the connection waits in the lobby.
    Nothing,
    /// Part of a request head (over TLS, of a record): a slow or stalled client, idle.
    Part,
    /// A whole request head (over TLS, a whole record such as a ClientHello): not idle until
    /// the server has read it.
    Request,
}

/// What the client of a just-accepted `stream` has sent (`tls`: as TLS records), by one look
/// at the socket that takes nothing from it and never waits. A head past 16 KiB counts as
/// part of one.
pub(crate) fn sent(stream: &TcpStream, tls: bool) -> Sent {
    let mut context = Context::from_waker(std::task::Waker::noop());
    let mut bytes = [std::mem::MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut buf = ReadBuf::uninit(&mut bytes);
    if !matches!(stream.poll_peek(&mut context, &mut buf), Poll::Ready(Ok(n)) if n > 0) {
        return Sent::Nothing;
    }
    let sent = buf.filled();
    let whole = if tls {
        // A record: type, version (2 bytes), length (2 bytes), then that many bytes.
        match sent {
            [_, _, _, high, low, rest @ ..] => {
                rest.len() >= usize::from(u16::from_be_bytes([*high, *low]))
            }
            _ => false,
        }
    } else {
        sent.windows(4).any(|w| w == b"\r\n\r\n")
    };
    if whole { Sent::Request } else { Sent::Part }
}

impl Conn {
    /// Notes that a request body started arriving.
    pub(crate) fn body_started(&self) {
        self.body_bytes.store(0, Ordering::Relaxed);
        self.body_started.store(
            millis_since(self.epoch).saturating_add(1),
            Ordering::Relaxed,
        );
    }

    /// Resolves when the server shed this connection to make room.
    pub(crate) async fn shed(&self) {
        self.shed.notified().await;
    }

    /// Counts bytes of the request body being read.
    pub(crate) fn body_progress(&self, n: usize) {
        self.body_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The request body was read to its end (or given up).
    pub(crate) fn body_done(&self) {
        self.body_started.store(0, Ordering::Relaxed);
    }
}

fn millis_since(epoch: Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight on a connection; dropping it (when the response body ended) makes the
/// connection idle again once nothing else is in flight.
#[derive(Debug)]
pub(crate) struct RequestGuard {
    connections: Arc<Connections>,
    conn: Arc<Conn>,
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        if self.conn.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.conn
                .idle_since
                .store(self.connections.now_ms(), Ordering::Relaxed);
        }
    }
}

/// Requests in flight per token, up to a cap.
#[derive(Debug, Default)]
pub(crate) struct TokenSlots {
    in_flight: Mutex<HashMap<String, usize>>,
}

impl TokenSlots {
    /// A slot for a request of `token`, or `None` when it already has `cap` in flight.
    pub(crate) fn take(self: &Arc<Self>, token: &str, cap: usize) -> Option<TokenSlot> {
        let mut in_flight = lock(&self.in_flight);
        let count = in_flight.entry(token.to_owned()).or_insert(0);
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(TokenSlot {
            slots: Arc::clone(self),
            token: token.to_owned(),
        })
    }
}

/// One request's place among its token's requests in flight.
#[derive(Debug)]
pub(crate) struct TokenSlot {
    slots: Arc<TokenSlots>,
    token: String,
}

impl Drop for TokenSlot {
    fn drop(&mut self) {
        let mut in_flight = lock(&self.slots.in_flight);
        if let Some(count) = in_flight.get_mut(&self.token) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.token);
            }
        }
    }
}

/// The token slot a request holds once its caller is known (shared between the request's
/// extensions, where authentication fills it, and its response body, which holds it).
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestSlot(Arc<Mutex<Option<TokenSlot>>>);

impl RequestSlot {
    /// Fills the slot with `take` unless it is held already; false when `take` found none.
    pub(crate) fn fill(&self, take: impl FnOnce() -> Option<TokenSlot>) -> bool {
        let mut held = lock(&self.0);
        if held.is_some() {
            return true;
        }
        match take() {
            Some(slot) => {
                *held = Some(slot);
                true
            }
            None => false,
        }
    }
}

/// Whether a request's body was read to its end: set by the body's reader (through its
/// [`crate::body::Pace`]), looked at by the server once the request is answered. A body left
/// unread is not read any further: hyper closes the connection after the answer, which must
/// then say `Connection: close`.
#[derive(Debug, Clone, Default)]
pub(crate) struct BodyRead(Arc<AtomicBool>);

impl BodyRead {
    /// The body was read to its end.
    pub(crate) fn done(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether the body was read to its end.
    pub(crate) fn is_done(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A socket whose writes must keep a minimum rate: once a write has to wait for the client,
/// the client must take `rate.bytes_per_window()` within `rate.window` (or take everything
/// the server had to send), or the write fails with `TimedOut` and the connection ends.
#[derive(Debug)]
pub(crate) struct PacedIo {
    inner: TcpStream,
    rate: MinRate,
    waiting: Option<WriteWindow>,
    /// The admitted connection told of the first read, if any.
    reads_of: Option<Arc<Conn>>,
}

#[derive(Debug)]
struct WriteWindow {
    timer: Pin<Box<tokio::time::Sleep>>,
    moved: u64,
}

impl PacedIo {
    /// `inner`, with writes held to `rate`.
    pub(crate) fn new(inner: TcpStream, rate: MinRate) -> PacedIo {
        PacedIo {
            inner,
            rate,
            waiting: None,
            reads_of: None,
        }
    }

    /// Tells `conn` when bytes are first read from the socket (until then the connection is
    /// not idle: see [`Connections::admit`]'s choice of whom to shed).
    pub(crate) fn noting_reads(mut self, conn: &Arc<Conn>) -> PacedIo {
        self.reads_of = Some(Arc::clone(conn));
        self
    }

    /// Copies the first bytes the client sent into `buf` without taking them from the socket,
    /// waiting until there are some (0: the client closed).
    pub(crate) async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.peek(buf).await
    }

    /// A write had to wait: starts the window if none runs, and fails once it ran out.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let rate = self.rate;
        let window = self.waiting.get_or_insert_with(|| WriteWindow {
            timer: Box::pin(tokio::time::sleep(rate.window)),
            moved: 0,
        });
        ready!(window.timer.as_mut().poll(cx));
        Poll::Ready(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the client took fewer than {} bytes of the response in {} ms",
                rate.bytes_per_window(),
                rate.window.as_millis()
            ),
        ))
    }

    /// A write's outcome held to the rate: bytes written count toward the window; a write that
    /// has to wait starts one, or fails once it ran out.
    fn paced(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if let Some(window) = &mut self.waiting {
                    window.moved += n as u64;
                    if window.moved >= self.rate.bytes_per_window() {
                        self.waiting = None;
                    }
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.stalled(cx).map(Err),
            failed => failed,
        }
    }
}

impl AsyncRead for PacedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && let Some(conn) = self.reads_of.take()
        {
            conn.request_waiting.store(false, Ordering::Release);
        }
        read
    }
}

impl AsyncWrite for PacedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.paced(cx, written)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.paced(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // hyper flushes the socket once its own buffer went out whole: the client keeps up.
        let flushed = ready!(Pin::new(&mut self.inner).poll_flush(cx));
        if flushed.is_ok() {
            self.waiting = None;
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
