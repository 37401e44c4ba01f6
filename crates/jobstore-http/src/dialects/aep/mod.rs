//! Adobe Experience Platform segment export jobs (`/data/core/ups/export/jobs`): the route
//! table and the dispatch. The vendor's documents and their conversions are in `wire`, its
//! fault document in `faults`, the list's parameters in `list`. See `docs/dialect-aep.md`.
//!
//! An export job is an ordinary job of kind `segment-export` on the configured AEP queue,
//! labelled `aep`, whose payload is the vendor request (plus the identity headers it came
//! with). Everything the vendor generates is derived from the stored job when it is rendered.
//!
//! **Boundary:** no SQL and no state logic. A DELETE chooses between the core's `cancel` and
//! `delete` by [`jobstore::State::is_terminal`]; the core decides everything else.

mod faults;
mod list;
mod wire;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use self::list::ListParams;
use self::wire::{CANCELLING, ExportJob, ExportJobPage, ExportRequest, Identity};
use crate::api::{Answer, Routed};
use crate::app::{self, App};
use crate::auth::Principal;
use crate::body;
use crate::dialects::DialectConfig;
use crate::fault::ApiError;
use crate::router::{JobRoutes, Matched, Route};

/// The API's name, and the label of its jobs (`jobs.dialect`).
const NAME: &str = "aep";
/// The header of a create's answer that names the job.
const X_LOCATION: &str = "x-location";

/// The AEP export jobs API, with the queue its jobs are put on.
#[derive(Debug, Clone)]
pub(crate) struct Aep {
    queue: String,
}

impl Aep {
    /// The API with the `[dialects]` settings.
    pub(crate) fn new(config: &DialectConfig) -> Aep {
        Aep {
            queue: config.aep_queue.clone(),
        }
    }

    /// `POST /data/core/ups/export/jobs`.
    async fn create(&self, app: &App, principal: &Principal, request: Request<Incoming>) -> Answer {
        let identity = Identity::from_headers(request.headers())?;
        let idempotency = app::idempotency_key(request.headers()).map_err(ApiError::bad_request)?;
        let body: Value = app.json_body(request).await?;
        let new = ExportRequest::try_from(body)?
            .into_new_job(identity)
            .queue(self.queue.clone())
            .dialect(NAME)
            .created_by(principal.name.clone());
        let job = app.enqueue(principal, new, idempotency).await?;
        let mut response = body::json(StatusCode::OK, &ExportJob::from(&job));
        // The vendor's create answer names the job's href in `X-Location`.
        let location = format!("{}/{}", Self::PREFIX, job.id);
        body::set_header(&mut response, X_LOCATION, &location);
        Ok(response)
    }
}

/// The API owns anything under the collection: a path below it that names nothing is
/// answered 404 in this API's fault shape.
impl Routed for Aep {
    type Name = JobRoutes;
    const NAME: &'static str = NAME;
    const PREFIX: &'static str = "/data/core/ups/export/jobs";
    const ROUTES: &'static [Route<JobRoutes>] = &[
        Route::new(Self::PREFIX, &[Method::GET, Method::POST], JobRoutes::Jobs),
        Route::new(
            "/data/core/ups/export/jobs/{id}",
            &[Method::GET, Method::DELETE],
            JobRoutes::Job,
        ),
    ];

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
            (JobRoutes::Job, &Method::DELETE) => {
                let id = matched.params.job_id("id")?;
                app.drain_body(request).await?;
                delete(app, principal, id).await
            }
            (JobRoutes::Job, _) => {
                let id = matched.params.job_id("id")?;
                let job = app.labelled_job(principal, id, NAME).await?;
                Ok(body::json(StatusCode::OK, &ExportJob::from(&job)))
            }
        }
    }
}

/// `GET /data/core/ups/export/jobs`: export jobs only, newest first unless sorted otherwise.
async fn list(app: &App, principal: &Principal, query: Option<&str>) -> Answer {
    let params = ListParams::parse(query, app.limits.max_page)?;
    let page = app.list(principal, params.query()).await?;
    let document = ExportJobPage::new(&page.jobs, params.sort_names(), params.next(&page));
    Ok(body::json(StatusCode::OK, &document))
}

/// `DELETE /data/core/ups/export/jobs/{id}`: a job still to finish is cancelled (at once when
/// queued, cooperatively when running), a finished one is deleted. Each is the core's one
/// call, which refuses (409) a job that changed state since it was read.
async fn delete(app: &App, principal: &Principal, id: i64) -> Answer {
    let actor = principal.name.clone();
    let cancelling = app
        .call(principal, move |store| {
            if store.get_labelled(id, NAME)?.state.is_terminal() {
                store.delete(id).map(|()| false)
            } else {
                store.cancel(id, &actor).map(|_| true)
            }
        })
        .await?;
    Ok(if cancelling {
        body::json(StatusCode::OK, &CANCELLING)
    } else {
        body::empty(StatusCode::NO_CONTENT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owns_everything_under_the_collection_and_routes_two_templates() {
        let job = Some(Aep::ROUTES[1].path);
        let owned = [
            (Aep::PREFIX, Some(Aep::PREFIX)),
            ("/data/core/ups/export/jobs/", Some(Aep::PREFIX)),
            ("/data/core/ups/export/jobs/42/", job),
            ("/data/core/ups/export/jobs/{EXPORT_JOB_ID}", job),
            ("/data/core/ups/export/jobs/1/x", None),
            ("/data/core/ups/export/jobs//", None),
            ("/data/core/ups/export/jobs/%zz", None),
        ];
        let foreign = ["/data/core/ups/export/jobsx", "/data/core/ups/export"];
        crate::testing::routes(&Aep::new(&DialectConfig::default()), &owned, &foreign);
    }
}
