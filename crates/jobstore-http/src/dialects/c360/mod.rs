//! Salesforce Customer 360 Data Manager, Data Jobs API v1.0: `GET|POST
//! /datamanager/datatools/v1.0/jobs` and `GET /datamanager/datatools/v1.0/jobs/{jobId}`.
//!
//! A C360 job is an ordinary job: kind = the `jobType`, queue = the configured C360 queue,
//! label `c360`, the request body kept whole as the payload. The finer running statuses
//! (START, RUNNING, UPDATE) come from the job's `heartbeat_at` and `phase`. Every other path
//! under `/datamanager/` is a 404 in this API's fault shape. `docs/dialect-c360.md` records
//! every choice made where the vendor is silent.

mod faults;
mod list;
mod wire;

use http::{Method, Request, StatusCode, header};
use hyper::body::Incoming;
use jobstore::{Error, NewJob};
use serde_json::Value;

use self::wire::{CreateJobRequest, JobDocument, ListEnvelope};
use crate::api::{Answer, Routed};
use crate::app::App;
use crate::auth::Principal;
use crate::body;
use crate::dialects::{DialectConfig, salesforce};
use crate::fault::ApiError;
use crate::router::{JobRoutes, Matched, Miss, Route};

/// The label of jobs created here.
const NAME: &str = "c360";

/// The Jobs resource.
const JOBS: &str = "/datamanager/datatools/v1.0/jobs";

/// The C360 Data Jobs API with its settings.
#[derive(Debug, Clone)]
pub(crate) struct C360 {
    queue: String,
    connected_sources: Vec<String>,
}

impl C360 {
    /// The API over the `c360_*` settings.
    pub(crate) fn new(config: &DialectConfig) -> C360 {
        C360 {
            queue: config.c360_queue.clone(),
            connected_sources: config.c360_connected_sources.clone(),
        }
    }

    /// `POST .../jobs`: runs a data job.
    async fn create(&self, app: &App, principal: &Principal, request: Request<Incoming>) -> Answer {
        let idempotency = crate::app::idempotency_key(request.headers())
            .map_err(|message| salesforce::own("INVALID_FIELD", message))?;
        let body: Value = app.json_body(request).await?;
        let create = CreateJobRequest::try_from(body)?;
        create.check_data_source(&self.connected_sources)?;
        let new = NewJob::from(create)
            .queue(self.queue.clone())
            .created_by(principal.name.clone());
        let job = app.enqueue(principal, new, idempotency).await?;
        let mut response = body::json(StatusCode::CREATED, &JobDocument::try_from(&job)?);
        let location = format!("{JOBS}/{}", job.id);
        body::set_header(&mut response, header::LOCATION, &location);
        Ok(response)
    }
}

impl Routed for C360 {
    type Name = JobRoutes;
    const NAME: &'static str = NAME;
    const PREFIX: &'static str = "/datamanager";
    const ROUTES: &'static [Route<JobRoutes>] = &[
        Route::new(JOBS, &[Method::GET, Method::POST], JobRoutes::Jobs),
        Route::new(
            "/datamanager/datatools/v1.0/jobs/{jobId}",
            &[Method::GET],
            JobRoutes::Job,
        ),
    ];

    fn miss(&self, miss: Miss, method: &Method, path: &str) -> ApiError {
        let message = match &miss {
            Miss::NotFound => format!("The requested resource does not exist: {path}"),
            Miss::MethodNotAllowed(allow) => {
                format!("HTTP method '{method}' not allowed on {path}. Allowed are [{allow}]")
            }
        };
        miss.error(method, path).says(message)
    }

    async fn answer(
        &self,
        app: &App,
        principal: &Principal,
        matched: Matched<JobRoutes>,
        request: Request<Incoming>,
    ) -> Answer {
        match (matched.route.name, request.method()) {
            (JobRoutes::Jobs, &Method::POST) => self.create(app, principal, request).await,
            (JobRoutes::Jobs, _) => list(app, principal, request.uri().query()).await,
            (JobRoutes::Job, _) => get(app, principal, &matched).await,
        }
    }
}

/// `GET .../jobs/{jobId}`: one C360 job of the caller's tenant.
async fn get(app: &App, principal: &Principal, matched: &Matched<JobRoutes>) -> Answer {
    let id = matched.params.job_id("jobId")?;
    let job = app.labelled_job(principal, id, NAME).await?;
    let document = JobDocument::try_from(&job).map_err(|_| Error::JobNotFound { id })?;
    Ok(body::json(StatusCode::OK, &document))
}

/// `GET .../jobs`: one page of the caller's C360 jobs.
async fn list(app: &App, principal: &Principal, query: Option<&str>) -> Answer {
    let listing = list::listing(query)?;
    let page = app.list(principal, listing.query).await?;
    let jobs = page.jobs.iter().map(JobDocument::try_from);
    let envelope = ListEnvelope {
        jobs: jobs.collect::<Result<_, _>>()?,
        page: listing.page,
        results_per_page: listing.results_per_page,
        total_results: page.total.unwrap_or(0),
    };
    Ok(body::json(StatusCode::OK, &envelope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_owns_its_domain_only() {
        let owned = [
            ("/datamanager/datatools/v1.0/data-sources", None),
            ("/datamanager", None),
            (&format!("{JOBS}/42/"), Some(C360::ROUTES[1].path)),
            (&format!("{JOBS}/4/files"), None),
        ];
        let api = C360::new(&DialectConfig::default());
        crate::testing::routes(&api, &owned, &["/datamanagers"]);
    }
}
