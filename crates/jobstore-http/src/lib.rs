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
pub mod dialects;
pub mod error;
pub mod exact_json;
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
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use jobstore::{ClaimRequest, Job, Store, WriteCall};
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};

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
    /// How long a request body may pause between frames before the answer is 408.
    pub body_timeout: Duration,
    /// How long a client may take to send its request head before the connection is closed.
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
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
            header_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_page: jobstore::MAX_PAGE_SIZE,
            max_wait: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(8),
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
        let (reply, answer) = tokio::sync::oneshot::channel();
        f(self.store.with_scope(principal.scope())).then(move |result| {
            // The request may have gone away; the write is kept either way.
            let _ = reply.send(result);
        });
        answer.await.map_err(|_| {
            log::error!("the store's writer dropped an answer");
            ApiError::internal()
        })
    }

    pub(crate) async fn json_body<T: DeserializeOwned>(
        &self,
        request: Request<Incoming>,
    ) -> Result<T, ApiError> {
        body::read_json(
            request.into_body(),
            self.limits.max_json_bytes,
            self.limits.body_timeout,
        )
        .await
    }

    pub(crate) async fn raw_body(&self, request: Request<Incoming>) -> Result<Bytes, ApiError> {
        body::read_limited(
            request.into_body(),
            self.limits.max_json_bytes,
            self.limits.body_timeout,
        )
        .await
    }

    pub(crate) async fn drain_body(&self, request: Request<Incoming>) -> Result<(), ApiError> {
        self.raw_body(request).await.map(|_| ())
    }

    /// Streams a request body into a new data batch of job `id`: the body is forwarded frame
    /// by frame to a blocking thread that reads it through `wrap` (a validating reader, or the
    /// body as it is) and writes it a chunk at a time. Memory stays at a few frames.
    ///
    /// # Errors
    /// The outer error: 408 when the body stalled (the batch was refused), 500 when the
    /// blocking task failed. The inner one: the store's answer.
    pub(crate) async fn append_body<R>(
        &self,
        principal: &Principal,
        id: i64,
        request: Request<Incoming>,
        wrap: impl FnOnce(body::ChannelReader) -> R + Send + 'static,
    ) -> Result<jobstore::Result<jobstore::DataBatch>, ApiError>
    where
        R: std::io::Read + Send + 'static,
    {
        let (sender, reader) = body::ChannelReader::new();
        let store = self.store.with_scope(principal.scope());
        let writer = tokio::task::spawn_blocking(move || store.append_data(id, wrap(reader)));
        let timeout = self.limits.body_timeout;
        let forwarded = body::forward(request.into_body(), sender, timeout).await;
        let batch = writer.await.map_err(|err| {
            log::error!("an upload task failed: {err}");
            ApiError::internal()
        })?;
        match batch {
            Err(_) if forwarded == body::Forwarded::TimedOut => Err(body::body_timeout(timeout)),
            batch => Ok(batch),
        }
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

    pub(crate) fn authenticate(&self, request: &Request<Incoming>) -> Result<Principal, ApiError> {
        let tokens = self.tokens.read().ok().and_then(|t| t.clone());
        let Some(tokens) = tokens else {
            return Ok(Principal::anonymous_local());
        };
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
/// # Errors
/// Only a failure of the listener itself.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(app.limits.max_connections.max(1)));
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = shutdown.changed() => break,
        };
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
        let header_timeout = app.limits.header_timeout;
        let app = Arc::clone(&app);
        let service = service_fn(move |request| {
            let app = Arc::clone(&app);
            async move { Ok::<_, std::convert::Infallible>(handle(app, peer, request).await) }
        });
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let watched = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = watched.await {
                log::debug!("connection from {peer} ended: {err}");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => log::info!("all connections drained"),
        () = tokio::time::sleep(app.limits.drain_timeout) => {
            log::warn!("connections still open after {:?}; closing them", app.limits.drain_timeout);
        }
    }
    Ok(())
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
