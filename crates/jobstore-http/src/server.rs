//! The server above every API: the accept loop with its admission control, one hyper
//! connection per client, and the dispatch of each request to the API that owns its path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, Response, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::app::App;
use crate::body::ResponseBody;
use crate::conn;
use crate::tls::Tls;

/// Answers one request: the API that owns its path answers it (routing, authentication and
/// the handler are the API's); then logging and counting.
pub async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let Some(api) = app.apis().iter().find(|api| api.owns(&path)).cloned() else {
        // `apis()` always ends with the native API, which owns every path.
        return crate::native::error(&crate::fault::ApiError::no_route(&path));
    };
    let response = api.handle(&app, request).await;
    let status = response.status();
    let template = api.template(&path).unwrap_or("(unknown)");
    app.metrics.count_request(template, &method, status);
    log::debug!(
        "{peer} {method} {path} {} {}µs",
        status.as_u16(),
        started.elapsed().as_micros()
    );
    response
}

/// Serves `listener` until `shutdown` turns true, then stops accepting, lets in-flight
/// requests finish (up to the drain timeout) and returns. With `tls`, every connection speaks
/// HTTPS (HTTP/1.1 over TLS) with the pair `tls` holds at its handshake.
///
/// Every connection is accepted at once and admitted (see the `conn` module): past
/// `max_connections` it sheds an idle or too slow connection to make room, or answers the
/// newcomer 503. Responses are written through a paced socket, so a client that stops
/// reading is cut off after one window below the minimum rate. A TLS handshake is bounded like
/// a request head: it must end within the header timeout (the first request head then has
/// its own), and an admitted connection still in its handshake is idle (the first to be shed).
///
/// # Errors
/// Only a failure of the listener itself.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<Arc<Tls>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let rate = app.limits.body_rate();
    let connections = Arc::new(conn::Connections::new(
        app.limits.max_connections,
        app.limits.max_silent_connections(),
        rate,
    ));
    // When accept last failed and was logged: a process out of open files fails every try,
    // and one line a second says so well enough.
    let mut accept_failure_logged: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    if accept_failure_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                        log::warn!(
                            "accept failed: {err} (the open-file limit must hold {} sockets \
                             beside the store's files)",
                            app.limits.max_sockets()
                        );
                        accept_failure_logged = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let accepted = Accepted {
            app: Arc::clone(&app),
            connections: Arc::clone(&connections),
            tls: tls.clone(),
            shutdown: shutdown.clone(),
            stream,
            peer,
        };
        match accepted.sent() {
            conn::Sent::Nothing => {
                // Silent so far: wait for its first bytes outside the limit.
                let Some(place) = connections.enter_lobby() else {
                    continue;
                };
                tokio::spawn(async move {
                    let timeout = accepted.app.limits.header_timeout;
                    let spoke = tokio::time::timeout(timeout, accepted.stream.readable());
                    if matches!(spoke.await, Ok(Ok(()))) {
                        drop(place);
                        let sent = accepted.sent();
                        accepted.admit(sent);
                    }
                });
            }
            sent => accepted.admit(sent),
        }
        // Let the new connection read its request before the next one may shed it.
        tokio::task::yield_now().await;
    }
    drop(listener);
    let drain = app.limits.drain_timeout;
    tokio::select! {
        () = connections.all_closed() => log::info!("all connections drained"),
        () = tokio::time::sleep(drain) => {
            log::warn!("connections still open after {drain:?}; closing them");
        }
    }
    Ok(())
}

/// A connection just accepted, with what serving it needs.
struct Accepted {
    app: Arc<App>,
    connections: Arc<conn::Connections>,
    tls: Option<Arc<Tls>>,
    shutdown: watch::Receiver<bool>,
    stream: TcpStream,
    peer: SocketAddr,
}

impl Accepted {
    /// What its client has sent so far.
    fn sent(&self) -> conn::Sent {
        conn::sent(&self.stream, self.tls.is_some())
    }

    /// Admits a connection that has spoken, `sent` so far (shedding another if the server is
    /// full), and serves it, or answers it 503.
    fn admit(self, sent: conn::Sent) {
        let Some(conn) = self.connections.admit(sent == conn::Sent::Request) else {
            self.refuse();
            return;
        };
        let _ = self.stream.set_nodelay(true);
        tokio::spawn(self.serve(conn));
    }

    /// Answers 503 and closes. The answer is written in a lobby place (no slot) within the
    /// header timeout, and what the client sent meanwhile is read and dropped before the close
    /// ([`linger`]): closed with its request unread, the socket would answer a reset that can
    /// destroy the 503 before the client reads it. Over TLS the answer needs a handshake
    /// first. With the lobby full, a plain connection gets the 503 written at once and closed;
    /// a TLS one is closed without an answer.
    fn refuse(self) {
        self.connections.log_refusal(self.peer);
        let Some(place) = self.connections.enter_lobby() else {
            if self.tls.is_none() {
                // A fresh socket's send buffer takes this whole; if not, the client gets a
                // close.
                let _ = self.stream.try_write(conn::refusal().as_bytes());
            }
            return;
        };
        let acceptor = self.tls.as_ref().map(|tls| tls.acceptor());
        let limits = &self.app.limits;
        let (timeout, rate, peer) = (limits.header_timeout, limits.body_rate(), self.peer);
        let mut io = conn::PacedIo::new(self.stream, rate);
        tokio::spawn(async move {
            let answer = async {
                match acceptor {
                    Some(acceptor) => {
                        if let Some(mut stream) = handshake(acceptor, io, peer).await {
                            refuse_on(&mut stream).await;
                        }
                    }
                    None => refuse_on(&mut io).await,
                }
            };
            let _ = tokio::time::timeout(timeout, answer).await;
            drop(place);
        });
    }

    /// Serves an admitted connection until it ends, is shed, or the shutdown has drained it.
    async fn serve(self, conn: Arc<conn::Conn>) {
        let Accepted {
            app,
            connections,
            tls,
            mut shutdown,
            stream,
            peer,
        } = self;
        let io = conn::PacedIo::new(stream, app.limits.body_rate()).noting_reads(&conn);
        match tls {
            None => serve_http(&app, &connections, &conn, io, peer, &mut shutdown).await,
            Some(tls) => {
                let timeout = app.limits.header_timeout;
                let handshake = tokio::time::timeout(timeout, handshake(tls.acceptor(), io, peer));
                let accepted = tokio::select! {
                    accepted = handshake => accepted.unwrap_or_else(|_| {
                        log::debug!("TLS handshake with {peer} not done within {timeout:?}");
                        None
                    }),
                    () = conn.shed() => {
                        log::debug!("shed the connection from {peer} in its TLS handshake");
                        None
                    }
                    () = async { drop(shutdown.wait_for(|stop| *stop).await) } => None,
                };
                if let Some(stream) = accepted {
                    serve_http(&app, &connections, &conn, stream, peer, &mut shutdown).await;
                }
            }
        }
        connections.release(&conn);
    }
}

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The TLS handshake of a new connection. `None` when it failed (logged), the client closed,
/// or the client spoke plain HTTP (answered 400 and closed).
async fn handshake(
    acceptor: TlsAcceptor,
    io: conn::PacedIo,
    peer: SocketAddr,
) -> Option<TlsStream<conn::PacedIo>> {
    let mut first = [0_u8; 1];
    match io.peek(&mut first).await {
        Ok(1..) if first[0] == TLS_HANDSHAKE_RECORD => {}
        Ok(1..) => {
            log::debug!("{peer} sent plain HTTP to the HTTPS port");
            answer_plain_http(io).await;
            return None;
        }
        Ok(0) | Err(_) => return None,
    }
    match acceptor.accept(io).await {
        Ok(stream) => Some(stream),
        Err(err) => {
            log::debug!("TLS handshake with {peer} failed: {err}");
            None
        }
    }
}

/// Answers a request sent in plain HTTP to the HTTPS port: 400 with the native error document,
/// then the connection closes.
async fn answer_plain_http(mut io: conn::PacedIo) {
    let error = crate::fault::ApiError::bad_request(
        "this port serves HTTPS only: send the request over TLS (https://)",
    );
    let body = serde_json::to_string(&error.native_body()).unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    if io.write_all(answer.as_bytes()).await.is_ok() {
        let _ = io.shutdown().await;
        linger(&mut io).await;
    }
}

/// Writes the 503 of a refused connection, ends the writing side and lingers.
async fn refuse_on(stream: &mut (impl AsyncRead + AsyncWrite + Unpin)) {
    let _ = stream.write_all(conn::refusal().as_bytes()).await;
    let _ = stream.shutdown().await;
    linger(stream).await;
}

/// After the last answer: reads and drops what the client still sends until it closes (at
/// most 64 KiB), so that the close is a FIN and not a reset that could destroy the answer in
/// flight. The caller bounds the time.
async fn linger(io: &mut (impl AsyncRead + Unpin)) {
    let mut sink = [0_u8; 4096];
    let mut left = 64 * 1024_usize;
    while left > 0 {
        match io.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// Serves HTTP/1.1 on an admitted connection (plain or TLS) until it ends, is shed, or the
/// shutdown has drained it.
async fn serve_http<I>(
    app: &Arc<App>,
    connections: &Arc<conn::Connections>,
    conn: &Arc<conn::Conn>,
    io: I,
    peer: SocketAddr,
    shutdown: &mut watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = app.limits.header_timeout;
    let service = {
        let app = Arc::clone(app);
        let connections = Arc::clone(connections);
        let conn = Arc::clone(conn);
        service_fn(move |mut request: Request<Incoming>| {
            let app = Arc::clone(&app);
            let in_flight = connections.request_started(&conn);
            let slot = conn::RequestSlot::default();
            request.extensions_mut().insert(Arc::clone(&conn));
            request.extensions_mut().insert(slot.clone());
            let body = (!request.body().is_end_stream()).then(|| {
                let read = conn::BodyRead::default();
                request.extensions_mut().insert(read.clone());
                read
            });
            async move {
                let mut response = handle(app, peer, request).await;
                if body.is_some_and(|read| !read.is_done()) {
                    // Answered before its body was read (a refused upload, a body too large):
                    // hyper reads no more of it and closes the connection after the answer,
                    // which says so, or a keep-alive client sends its next request into the
                    // close.
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                // The request counts as in flight (for its connection and its token) until its
                // response body has been sent or dropped.
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Guarded {
                        body,
                        _guards: (in_flight, slot),
                    }
                    .boxed()
                }))
            }
        })
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => Some(ended),
        () = conn.shed() => None,
        () = async { drop(shutdown.wait_for(|stop| *stop).await) } => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                ended = connection.as_mut() => Some(ended),
                () = conn.shed() => None,
            }
        }
    };
    match ended {
        Some(Err(err)) => log::debug!("connection from {peer} ended: {err}"),
        None => log::debug!("shed the connection from {peer} to make room"),
        Some(Ok(())) => {}
    }
}

/// A response body that holds its request's guards until it has been sent or dropped. Frames,
/// the size and the end pass through unchanged, so a body of known length keeps its
/// `Content-Length` (a HEAD's included).
struct Guarded<G> {
    body: ResponseBody,
    _guards: G,
}

impl<G: Unpin> http_body::Body for Guarded<G> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
