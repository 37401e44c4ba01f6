//! The daemon's shared state below every API: the store and how a request calls it (a
//! blocking read in the caller's scope, or a write answered by the writer after its commit),
//! authentication, bounded bodies, the long-poll claim and the registered APIs.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, header};
use hyper::body::Incoming;
use jobstore::{ClaimRequest, Job, JobPage, ListQuery, NewJob, Store, WriteCall};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

use crate::api::Api;
use crate::auth::{Principal, Tokens};
use crate::depth::DepthHistory;
use crate::fault::{ApiError, ErrorKind};
use crate::{body, conn, metrics};

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
    /// How often a waiting claim looks again for jobs that no wake-up announced (enqueued by
    /// another process, or scheduled jobs coming due); an enqueue in this daemon wakes it at
    /// once.
    pub claim_poll_interval: Duration,
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
            claim_poll_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(8),
        }
    }
}

impl Limits {
    /// The most connections held before their first byte (the lobby), outside
    /// `max_connections`: four times it, at least 1,024.
    pub fn max_silent_connections(&self) -> usize {
        self.max_connections.saturating_mul(4).max(1024)
    }

    /// The most sockets these limits hold open at once, speaking or silent: each an open
    /// file of the process.
    pub fn max_sockets(&self) -> usize {
        self.max_connections
            .max(1)
            .saturating_add(self.max_silent_connections())
    }

    /// The minimum rate request bodies and responses are held to.
    pub fn body_rate(&self) -> body::MinRate {
        body::MinRate {
            window: self.body_timeout,
            bytes_per_sec: self.min_transfer_rate,
        }
    }
}

/// The daemon's shared state: the store, the tokens, the limits, the APIs.
pub struct App {
    store: Store,
    tokens: RwLock<Option<Arc<Tokens>>>,
    pub(crate) limits: Limits,
    apis: Vec<Arc<dyn Api>>,
    jobs_ready: Arc<Notify>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) metrics: metrics::Metrics,
    token_slots: Arc<conn::TokenSlots>,
    /// Queue depth sampled since the daemon started.
    pub(crate) depth: DepthHistory,
}

impl App {
    /// The daemon state over `store`, serving `apis` (a path goes to the first that owns it;
    /// the native API takes every other). `tokens` `None`: no authentication (loopback only;
    /// the binary enforces that). `shutdown` turning true ends long polls at once.
    pub fn new(
        store: Store,
        tokens: Option<Tokens>,
        limits: Limits,
        apis: Vec<Arc<dyn Api>>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<App> {
        let jobs_ready = Arc::new(Notify::new());
        let wake = Arc::clone(&jobs_ready);
        store.on_jobs_available(move || wake.notify_waiters());
        let depth = DepthHistory::new(store.now());
        Arc::new(App {
            store: store.with_scope(jobstore::Scope::All),
            tokens: RwLock::new(tokens.map(Arc::new)),
            limits,
            apis,
            jobs_ready,
            shutdown,
            metrics: metrics::Metrics::default(),
            token_slots: Arc::default(),
            depth,
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

    /// The APIs served besides the native one, in the order paths are offered to them.
    pub fn apis(&self) -> &[Arc<dyn Api>] {
        &self.apis
    }

    /// Runs every API's periodic maintenance (the server's maintenance tick calls it on a
    /// blocking thread); the number of jobs each touched, by API name.
    pub fn maintain(&self) -> Vec<(&'static str, jobstore::Result<u64>)> {
        self.apis
            .iter()
            .map(|api| (api.name(), api.maintain(&self.store)))
            .collect()
    }

    /// Samples every tenant's queue depth into the history `GET /v1/queues/depth` answers
    /// (the server calls it on a blocking thread every [`crate::DEPTH_SAMPLE_INTERVAL`]).
    ///
    /// # Errors
    /// A store error; the sample is skipped.
    pub fn sample_queue_depth(&self) -> jobstore::Result<()> {
        let at = self.store.now();
        let counts = self.store.live_counts()?;
        self.depth.record(at, counts);
        Ok(())
    }

    /// The store in the principal's scope (for a task that outlives the request's handler).
    pub(crate) fn store_for(&self, principal: &Principal) -> Store {
        self.store.with_scope(principal.scope())
    }

    /// Runs a blocking store call in the principal's scope.
    pub(crate) async fn call<T, F>(&self, principal: &Principal, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> jobstore::Result<T> + Send + 'static,
    {
        let store = self.store_for(principal);
        tokio::task::spawn_blocking(move || f(store))
            .await
            .map_err(|err| {
                log::error!("a store call panicked: {err}");
                ApiError::internal()
            })?
            .map_err(ApiError::from)
    }

    /// One page of the jobs `query` asks for, in the principal's scope.
    pub(crate) async fn list(
        &self,
        principal: &Principal,
        query: ListQuery,
    ) -> Result<JobPage, ApiError> {
        self.call(principal, move |store| store.list(&query)).await
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

    /// Enqueues `new` in the principal's scope, under the `Idempotency-Key` the request sent
    /// ([`idempotency_key`]), if any.
    pub(crate) async fn enqueue(
        &self,
        principal: &Principal,
        new: NewJob,
        idempotency: Option<String>,
    ) -> Result<Job, ApiError> {
        let new = match idempotency {
            Some(key) => new.idempotency_key(key),
            None => new,
        };
        self.write(principal, move |store| store.enqueue_call(new))
            .await
    }

    /// The job `id` of the API labelled `label` in the principal's scope
    /// ([`Store::get_labelled`]): another API's job is not found, like an unknown id.
    pub(crate) async fn labelled_job(
        &self,
        principal: &Principal,
        id: i64,
        label: &'static str,
    ) -> Result<Job, ApiError> {
        self.call(principal, move |store| store.get_labelled(id, label))
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
    /// the first shed when the server is full) and to the server (which closes the
    /// connection after a body not read to its end).
    pub(crate) fn pace(&self, request: &Request<Incoming>) -> body::Pace {
        let rate = self.limits.body_rate();
        let pace = match request.extensions().get::<Arc<conn::Conn>>() {
            Some(conn) => body::Pace::metered(rate, Arc::clone(conn)),
            None => body::Pace::start(rate),
        };
        match request.extensions().get::<conn::BodyRead>() {
            Some(read) => pace.telling(read.clone()),
            None => pace,
        }
    }

    /// The request's JSON body as any value, for an API that checks its shape in its own words.
    pub(crate) async fn json_body<T: DeserializeOwned>(
        &self,
        request: Request<Incoming>,
    ) -> Result<T, ApiError> {
        self.read_json(request, body::Top::Value).await
    }

    /// The request's JSON body as a typed document, read from an object only.
    pub(crate) async fn json_document<T: DeserializeOwned>(
        &self,
        request: Request<Incoming>,
    ) -> Result<T, ApiError> {
        self.read_json(request, body::Top::Document).await
    }

    async fn read_json<T: DeserializeOwned>(
        &self,
        request: Request<Incoming>,
        top: body::Top,
    ) -> Result<T, ApiError> {
        let pace = self.pace(&request);
        body::read_json(request.into_body(), self.limits.max_json_bytes, pace, top).await
    }

    pub(crate) async fn raw_body(&self, request: Request<Incoming>) -> Result<Bytes, ApiError> {
        let pace = self.pace(&request);
        body::read_limited(request.into_body(), self.limits.max_json_bytes, pace).await
    }

    pub(crate) async fn drain_body(&self, request: Request<Incoming>) -> Result<(), ApiError> {
        self.raw_body(request).await.map(|_| ())
    }

    /// Claims jobs, waiting up to `wait` for some to arrive. An enqueue in this daemon wakes
    /// the wait at once, and so does one in another daemon whose driver tells (PostgreSQL's
    /// `NOTIFY`); what no wake-up announces (scheduled jobs, another process on a SQLite
    /// file) is found by polling every `claim_poll_interval`. A shutdown answers at once with
    /// what there is. A claim that a wake-up answered with jobs is counted once: a driver
    /// also wakes the claims to look when it may have missed notifications (PostgreSQL's
    /// listener, on each connection), and such a look that finds nothing is no wake-up by
    /// an enqueue.
    pub(crate) async fn claim_waiting(
        &self,
        principal: &Principal,
        request: ClaimRequest,
        wait: Duration,
    ) -> Result<Vec<Job>, ApiError> {
        let deadline = Instant::now() + wait;
        let mut shutdown = self.shutdown.clone();
        let mut woken = false;
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
                if woken && !jobs.is_empty() {
                    self.metrics.count_claim_wakeup();
                }
                return Ok(jobs);
            }
            let poll = (deadline - now).min(self.limits.claim_poll_interval);
            let _waiting = self.metrics.claim_waiting();
            woken = tokio::select! {
                () = &mut notified => true,
                () = tokio::time::sleep(poll) => false,
                _ = shutdown.changed() => false,
            };
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
                    ErrorKind::TooManyRequests,
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
        let unauthorized = |message: &str| ApiError::new(ErrorKind::Unauthorized, message);
        let header = request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("missing bearer token"))?
            .to_str()
            .map_err(|_| unauthorized("malformed authorization header"))?;
        // The scheme's name is case-insensitive (RFC 9110, 11.1), spaces may follow it.
        let token = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token)
            .ok_or_else(|| unauthorized("expected `Authorization: Bearer <token>`"))?;
        tokens
            .authenticate(token.trim())
            .ok_or_else(|| unauthorized("unknown token"))
    }
}

/// The text of the request header `name`, if it was sent; `Err` with the message every API
/// answers (each in its own fault shape) when it is not visible ASCII.
pub(crate) fn header_text<'h>(
    headers: &'h http::HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, String> {
    let value = headers.get(name).map(http::HeaderValue::to_str).transpose();
    value.map_err(|_| format!("{name} must be visible ASCII"))
}

/// The request's `Idempotency-Key` header, if it sent one ([`header_text`]).
pub(crate) fn idempotency_key(headers: &http::HeaderMap) -> Result<Option<String>, String> {
    Ok(header_text(headers, "Idempotency-Key")?.map(str::to_owned))
}
