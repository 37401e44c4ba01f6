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
use tokio::net::TcpListener;
use tokio::sync::watch;

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::app::App;
use crate::body::ResponseBody;
use crate::conn;

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
/// requests finish (up to the drain timeout) and returns.
///
/// Every connection is accepted at once and admitted (see the `conn` module): past
/// `max_connections` it sheds an idle or too slow connection to make room, or answers the
/// newcomer 503. Responses are written through a paced socket, so a client that stops
/// reading is cut off after one window below the minimum rate.
///
/// # Errors
/// Only a failure of the listener itself.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let rate = app.limits.body_rate();
    let connections = Arc::new(conn::Connections::new(app.limits.max_connections, rate));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little, keep serving.
                    log::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        if conn::has_sent(&stream) {
            admit(&app, &connections, stream, peer, &shutdown);
        } else {
            // Silent so far: wait for its first bytes outside the limit.
            let Some(place) = connections.enter_lobby() else {
                continue;
            };
            let app = Arc::clone(&app);
            let connections = Arc::clone(&connections);
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let spoke = tokio::time::timeout(app.limits.header_timeout, stream.readable());
                if matches!(spoke.await, Ok(Ok(()))) {
                    drop(place);
                    admit(&app, &connections, stream, peer, &shutdown);
                }
            });
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

/// Admits a connection that has spoken (shedding another if the server is full) and serves it,
/// or answers it 503.
fn admit(
    app: &Arc<App>,
    connections: &Arc<conn::Connections>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    shutdown: &watch::Receiver<bool>,
) {
    let Some(conn) = connections.admit() else {
        connections.refuse(&stream, peer);
        return;
    };
    let _ = stream.set_nodelay(true);
    tokio::spawn(serve_connection(
        Arc::clone(app),
        Arc::clone(connections),
        conn,
        stream,
        peer,
        shutdown.clone(),
    ));
}

/// Serves one admitted connection until it ends, is shed, or the shutdown has drained it.
async fn serve_connection(
    app: Arc<App>,
    connections: Arc<conn::Connections>,
    conn: Arc<conn::Conn>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let header_timeout = app.limits.header_timeout;
    let io = conn::PacedIo::new(stream, app.limits.body_rate());
    let service = {
        let connections = Arc::clone(&connections);
        let conn = Arc::clone(&conn);
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
    connections.release(&conn);
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
