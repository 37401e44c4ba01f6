//! The jobstore daemon library: a hyper 1 server over the core [`jobstore`] store.
//!
//! A request is authenticated (bearer token → tenant and scopes), routed by a plain `match`
//! over its path, and answered by a thin handler that decodes a bounded body, makes one store
//! call on a blocking thread and renders the result.
//!
//! **Boundary:** this crate owns the wire formats and converts them to and from core types; it
//! owns no SQL and no state logic.

pub mod auth;
pub mod body;
mod conn;
pub mod data;
pub mod dialects;
pub mod error;
mod metrics;
mod native;
mod openapi;
pub mod routes;
pub mod time;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use jobstore::{ClaimRequest, Job, Store, WriteCall};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

pub use auth::{Principal, Tokens};
pub use dialects::{Dialect, DialectConfig};
pub use error::ApiError;

use crate::body::ResponseBody;
use crate::routes::Route;

/// Bounds on what one request may cost.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest JSON request body.
    pub max_json_bytes: usize,
    /// The window over which the minimum transfer rate is measured: a request body or a
    /// response that moves fewer than `min_transfer_rate × body_timeout` bytes within one
    /// window is given up (408 for a body; the connection closed for a response).
    pub body_timeout: Duration,
    /// The slowest transfer kept, in bytes per second (request bodies and responses alike).
    pub min_transfer_rate: u64,
    /// How long a client may take to send its request head before the connection is closed.
    pub header_timeout: Duration,
    /// Connections served at once. A new connection past it sheds the one idle longest (or
    /// the slowest request body below the minimum rate); when none can go it is answered 503.
    pub max_connections: usize,
    /// Requests one token may have in flight at once (responses still streaming count); more
    /// are answered 429 with `Retry-After`. Applies only with a tokens file.
    pub max_requests_per_token: usize,
    /// The largest page a list may ask for.
    pub max_page: u32,
    /// The longest a claim may wait for jobs.
    pub max_wait: Duration,
    /// How long in-flight requests get to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_json_bytes: 1024 * 1024,
            body_timeout: Duration::from_secs(30),
            min_transfer_rate: 1024,
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_requests_per_token: 256,
            max_page: jobstore::MAX_PAGE_SIZE,
            max_wait: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(8),
        }
    }
}

impl Limits {
    /// The minimum rate request bodies and responses are held to.
    pub fn body_rate(&self) -> body::MinRate {
        body::MinRate {
            window: self.body_timeout,
            bytes_per_sec: self.min_transfer_rate,
        }
    }
}

/// The daemon's shared state: the store, the tokens, the limits.
pub struct App {
    store: Store,
    tokens: RwLock<Option<Arc<Tokens>>>,
    limits: Limits,
    dialects: DialectConfig,
    jobs_ready: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
    metrics: metrics::Metrics,
    token_slots: Arc<conn::TokenSlots>,
}

impl App {
    /// The daemon state over `store`. `tokens` `None`: no authentication (loopback only; the
    /// binary enforces that). `shutdown` turning true ends long polls at once.
    pub fn new(
        store: Store,
        tokens: Option<Tokens>,
        limits: Limits,
        dialects: DialectConfig,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<App> {
        let jobs_ready = Arc::new(Notify::new());
        let wake = Arc::clone(&jobs_ready);
        store.on_jobs_available(move || wake.notify_waiters());
        Arc::new(App {
            store: store.with_scope(jobstore::Scope::All),
            tokens: RwLock::new(tokens.map(Arc::new)),
            limits,
            dialects,
            jobs_ready,
            shutdown,
            metrics: metrics::Metrics::default(),
            token_slots: Arc::default(),
        })
    }

    /// Replaces the tokens (SIGHUP).
    pub fn reload_tokens(&self, tokens: Tokens) {
        if let Ok(mut current) = self.tokens.write() {
            *current = Some(Arc::new(tokens));
        }
    }

    /// The store (every tenant).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a blocking store call in the principal's scope.
    pub(crate) async fn call<T, F>(&self, principal: &Principal, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> jobstore::Result<T> + Send + 'static,
    {
        let store = self.store.with_scope(principal.scope());
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|err| {
                log::error!("a store call panicked: {err}");
                ApiError::internal()
            })?
            .map_err(ApiError::from)
    }

    /// Runs a store write in the principal's scope without holding a thread while it waits:
    /// the writer answers through a channel after the commit. Creates, claims and outcome
    /// reports take this path: a blocking thread per request held their throughput at about
    /// 60% of what it is now.
    pub(crate) async fn write<T, F>(&self, principal: &Principal, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> WriteCall<T>,
    {
        self.write_typed(principal, f)
            .await?
            .map_err(ApiError::from)
    }

    /// [`App::write`], keeping the core's typed error for a dialect that renders it itself.
    pub(crate) async fn write_typed<T, F>(
        &self,
        principal: &Principal,
        f: F,
    ) -> Result<jobstore::Result<T>, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> WriteCall<T>,
    {
        self.settle(f(self.store.with_scope(principal.scope())))
            .await
    }

    /// Waits for the answer of a write already made (its scope fixed when it was made),
    /// without holding a thread.
    pub(crate) async fn settle<T: Send + 'static>(
        &self,
        call: WriteCall<T>,
    ) -> Result<jobstore::Result<T>, ApiError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        call.then(move |result| {
            // The request may have gone away; the write is kept either way.
            let _ = reply.send(result);
        });
        answer.await.map_err(|_| {
            log::error!("the store's writer dropped an answer");
            ApiError::internal()
        })
    }

    /// The pace a request body is held to, reported to its connection (whose slowest body is
    /// the first shed when the server is full).
    pub(crate) fn pace(&self, request: &Request<Incoming>) -> body::Pace {
        let rate = self.limits.body_rate();
        match request.extensions().get::<Arc<conn::Conn>>() {
            Some(conn) => body::Pace::metered(rate, Arc::clone(conn)),
            None => body::Pace::start(rate),
        }
    }

    pub(crate) async fn json_body<T: DeserializeOwned>(
        &self,
        request: Request<Incoming>,
    ) -> Result<T, ApiError> {
        let pace = self.pace(&request);
        body::read_json(request.into_body(), self.limits.max_json_bytes, pace).await
    }

    pub(crate) async fn raw_body(&self, request: Request<Incoming>) -> Result<Bytes, ApiError> {
        let pace = self.pace(&request);
        body::read_limited(request.into_body(), self.limits.max_json_bytes, pace).await
    }

    pub(crate) async fn drain_body(&self, request: Request<Incoming>) -> Result<(), ApiError> {
        self.raw_body(request).await.map(|_| ())
    }

    /// Claims jobs, waiting up to `wait` for some to arrive. An enqueue in this daemon wakes
    /// the wait at once; jobs of other processes and scheduled jobs are found by polling
    /// every second. A shutdown answers at once with what there is.
    async fn claim_waiting(
        &self,
        principal: &Principal,
        request: ClaimRequest,
        wait: Duration,
    ) -> Result<Vec<Job>, ApiError> {
        let deadline = Instant::now() + wait;
        let mut shutdown = self.shutdown.clone();
        loop {
            let notified = self.jobs_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let claim = request.clone();
            let started = Instant::now();
            let jobs = self
                .write(principal, move |store| store.claim_call(&claim))
                .await?;
            self.metrics.observe_claim(started.elapsed());
            let now = Instant::now();
            if !jobs.is_empty() || now >= deadline || *shutdown.borrow() {
                return Ok(jobs);
            }
            let poll = (deadline - now).min(Duration::from_secs(1));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// The caller of `request`, by its bearer token, holding one of the token's request slots
    /// until the response has been sent.
    ///
    /// # Errors
    /// 401 `unauthorized`, 429 `too_many_requests` when the token
    /// already has `max_requests_per_token` requests in flight.
    pub(crate) fn authenticate(&self, request: &Request<Incoming>) -> Result<Principal, ApiError> {
        let tokens = self.tokens.read().ok().and_then(|t| t.clone());
        let Some(tokens) = tokens else {
            return Ok(Principal::anonymous_local());
        };
        let principal = Self::bearer(&tokens, request)?;
        if let Some(held) = request.extensions().get::<conn::RequestSlot>() {
            let key = format!("{}/{}", principal.tenant, principal.name);
            let cap = self.limits.max_requests_per_token;
            if !held.fill(|| self.token_slots.take(&key, cap)) {
                let mut err = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_requests",
                    format!(
                        "token `{}` already has {cap} requests in flight; retry when one has \
                         finished",
                        principal.name
                    ),
                );
                err.retry_after = Some(1);
                return Err(err);
            }
        }
        Ok(principal)
    }

    fn bearer(tokens: &Tokens, request: &Request<Incoming>) -> Result<Principal, ApiError> {
        let unauthorized = |message: &str| {
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message.to_owned())
        };
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing bearer token"))?
            .to_str()
            .map_err(|_| unauthorized("malformed authorization header"))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("expected `Authorization: Bearer <token>`"))?;
        tokens
            .authenticate(token.trim())
            .ok_or_else(|| unauthorized("unknown token"))
    }

    /// The dialect settings.
    pub fn dialects(&self) -> &DialectConfig {
        &self.dialects
    }

    async fn respond(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        let path = request.uri().path().to_owned();
        if let Some(dialect) = Dialect::recognise(&path) {
            return dialects::handle(self, dialect, request).await;
        }
        let method = request.method().clone();
        let Some(routes::Resolved {
            route,
            methods: allowed,
            ..
        }) = routes::resolve(&path)
        else {
            return body::error(&ApiError::no_route(&path));
        };
        if !routes::allows(allowed, &method) {
            let mut response = body::error(&ApiError::method_not_allowed(&method, &path));
            let allow: Vec<&str> = allowed.iter().map(|(m, _)| *m).collect();
            if let Ok(value) = http::HeaderValue::from_str(&allow.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
            return response;
        }
        match route {
            Route::Health => return body::text(StatusCode::OK, "text/plain", "ok\n".into()),
            Route::OpenApi => return body::json(StatusCode::OK, &openapi::document()),
            _ => {}
        }
        let principal = match self.authenticate(&request) {
            Ok(principal) => principal,
            Err(err) => return body::error(&err),
        };
        let answer = match route {
            Route::Metrics => self.metrics_text(&principal).await,
            route => native::handle(self, &principal, route, request).await,
        };
        answer.unwrap_or_else(|err| body::error(&err))
    }

    async fn metrics_text(
        &self,
        principal: &Principal,
    ) -> Result<Response<ResponseBody>, ApiError> {
        if !principal.may(auth::Permission::Read) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "metrics need the read scope",
            ));
        }
        let stats = self.call(principal, |store| store.stats()).await?;
        let text = self.metrics.render(&stats, self.store.writer_stats());
        Ok(body::text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            text,
        ))
    }
}

/// Answers one request: routing, authentication, the handler, logging and counting.
pub async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = app.respond(request).await;
    let status = response.status();
    let template = match Dialect::recognise(&path) {
        Some(dialect) => dialect.as_str(),
        None => routes::resolve(&path).map_or("(unknown)", |r| r.template),
    };
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
            async move {
                let response = handle(app, peer, request).await;
                // The request counts as in flight (for its connection and its token) until its
                // response body has been sent or dropped.
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    // The frames pass unchanged; the closure only keeps the guards alive.
                    let guards = (in_flight, slot);
                    body.map_frame(move |frame| {
                        let _ = &guards;
                        frame
                    })
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

/// The request's `Idempotency-Key` header, if it sent one; `Err` with the message every API
/// answers (each in its own fault shape) when the value is not visible ASCII.
pub(crate) fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<String>, &'static str> {
    headers
        .get("idempotency-key")
        .map(|value| value.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| "Idempotency-Key must be visible ASCII")
}
