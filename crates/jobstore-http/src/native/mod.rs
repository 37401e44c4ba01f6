//! The native JSON API under `/v1`, with `/healthz` and `/metrics`: its route table, its
//! fault shape (`{"error": {"type", "message"}}`), its wire types (`wire`), its handlers
//! (`handlers`) and the OpenAPI document generated from the same types (`openapi`). It owns
//! every path no other API owns.

mod handlers;
pub(crate) mod openapi;
pub(crate) mod wire;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::api::{Answering, Api};
use crate::app::App;
use crate::auth::Permission;
use crate::body::{self, ResponseBody};
use crate::fault::{self, ApiError, Faults};
use crate::router::{self, Route};

/// The native API, with the default queue of job definitions that name none.
#[derive(Debug, Clone)]
pub struct Native {
    /// The queue of a definition stored without one.
    pub definition_queue: String,
}

/// The native routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    Health,
    Metrics,
    OpenApi,
    Stats,
    Jobs,
    Job,
    Cancel,
    Restart,
    Close,
    Heartbeat,
    Complete,
    Fail,
    Data,
    Output,
    Logs,
    Events,
    Step,
    Definitions,
    Definition,
    Executions,
    Claim,
    Throughput,
    Queues,
    QueueDepth,
    Workers,
}

const GET: &[Method] = &[Method::GET];
const POST: &[Method] = &[Method::POST];

/// Every native route. The OpenAPI document describes exactly these (a test checks it).
pub(crate) static ROUTES: [Route<Name>; 25] = [
    Route::new("/healthz", GET, Name::Health),
    Route::new("/metrics", GET, Name::Metrics),
    Route::new("/v1/openapi.json", GET, Name::OpenApi),
    Route::new("/v1/stats", GET, Name::Stats),
    Route::new("/v1/jobs", &[Method::GET, Method::POST], Name::Jobs),
    Route::new("/v1/jobs/{id}", &[Method::GET, Method::DELETE], Name::Job),
    Route::new("/v1/jobs/{id}/cancel", POST, Name::Cancel),
    Route::new("/v1/jobs/{id}/restart", POST, Name::Restart),
    Route::new("/v1/jobs/{id}/close", POST, Name::Close),
    Route::new("/v1/jobs/{id}/heartbeat", POST, Name::Heartbeat),
    Route::new("/v1/jobs/{id}/complete", POST, Name::Complete),
    Route::new("/v1/jobs/{id}/fail", POST, Name::Fail),
    Route::new(
        "/v1/jobs/{id}/data",
        &[Method::GET, Method::PUT],
        Name::Data,
    ),
    Route::new(
        "/v1/jobs/{id}/outputs/{name}",
        &[Method::GET, Method::PUT],
        Name::Output,
    ),
    Route::new(
        "/v1/jobs/{id}/logs",
        &[Method::GET, Method::POST],
        Name::Logs,
    ),
    Route::new("/v1/jobs/{id}/events", GET, Name::Events),
    Route::new("/v1/jobs/{id}/steps/{step}", POST, Name::Step),
    Route::new("/v1/definitions", GET, Name::Definitions),
    Route::new(
        "/v1/definitions/{id}",
        &[Method::GET, Method::PUT],
        Name::Definition,
    ),
    Route::new("/v1/definitions/{id}/executions", POST, Name::Executions),
    Route::new("/v1/claim", POST, Name::Claim),
    Route::new("/v1/throughput", GET, Name::Throughput),
    Route::new("/v1/queues", GET, Name::Queues),
    Route::new("/v1/queues/depth", GET, Name::QueueDepth),
    Route::new("/v1/workers", GET, Name::Workers),
];

/// The native fault document.
struct NativeFaults;

impl Faults for NativeFaults {
    fn render(&self, err: &ApiError) -> Response<ResponseBody> {
        fault::respond(err, &wire::ErrorDocument::from(err))
    }
}

/// A native error answer (also the daemon's answer before any API is chosen).
pub(crate) fn error(err: &ApiError) -> Response<ResponseBody> {
    NativeFaults.render(err)
}

impl Api for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn owns(&self, _path: &str) -> bool {
        true
    }

    fn template(&self, path: &str) -> Option<&'static str> {
        router::template_of(&ROUTES, path)
    }

    fn routes(&self) -> Vec<(&'static str, &'static [Method])> {
        router::listing(&ROUTES)
    }

    fn handle<'a>(&'a self, app: &'a App, request: Request<Incoming>) -> Answering<'a> {
        Box::pin(async move {
            self.answer(app, request)
                .await
                .unwrap_or_else(|err| error(&err))
        })
    }
}

impl Native {
    async fn answer(
        &self,
        app: &App,
        mut request: Request<Incoming>,
    ) -> Result<Response<ResponseBody>, ApiError> {
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let matched =
            router::route(&ROUTES, &mut request).map_err(|miss| miss.error(&method, &path))?;
        match matched.route.name {
            Name::Health => return Ok(body::text(StatusCode::OK, "text/plain", "ok\n".into())),
            Name::OpenApi => return Ok(body::json(StatusCode::OK, openapi::document())),
            _ => {}
        }
        let principal = app.authenticate(&request)?;
        if matched.route.name == Name::Metrics {
            principal.require(Permission::Read)?;
            let stats = app.call(&principal, |store| store.stats()).await?;
            let text = app.metrics.render(&stats, app.store().writer_stats());
            return Ok(body::text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                text,
            ));
        }
        handlers::handle(self, app, &principal, &matched, request).await
    }
}
