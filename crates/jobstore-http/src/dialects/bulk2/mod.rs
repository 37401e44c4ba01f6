//! Salesforce Bulk API 2.0 ingest and query jobs (`/services/data/v{NN}.{N}/jobs/ingest` and
//! `…/jobs/query`), a view of the canonical jobs mapped as `docs/dialect-bulk2.md` describes:
//! an ingest job is an `ingest` job labelled `bulk2`, created `open`; its uploads are data
//! batches checked as CSV with the job's column delimiter and line ending while they stream
//! ([`crate::dialects::csv`]). A query job is a `query` job labelled `bulk2`, queued at once
//! with its SOQL in the payload for a worker to run. Here: the settings, the routes and the handlers; the wire types
//! are in `wire`, the fault documents in `faults`, the list parameters in `list`. This API
//! sees only the jobs it created (`Store::get_labelled`).

mod faults;
mod list;
mod pages;
mod wire;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use jobstore::{Error, State, UploadLimits};
use serde_json::json;

use self::wire::{JobDetail, JobInfo};
use crate::api::{Answer, Routed};
use crate::app::App;
use crate::auth::Principal;
use crate::body::{self, ResponseBody};
use crate::dialects::salesforce::bulk::{self, Action, PatchBody};
use crate::dialects::salesforce::jobs::{self, BulkJobs, Charset};
use crate::dialects::{DialectConfig, salesforce};
use crate::fault::{ApiError, ErrorKind};
use crate::router::{Matched, Miss, Route};

/// The API's name: the label of its jobs.
const NAME: &str = "bulk2";

/// Bulk API 2.0, with its settings (the `bulk2_*` of [`DialectConfig`]).
#[derive(Debug, Clone)]
pub(crate) struct Bulk2 {
    queue: String,
    /// The upload count and upload size limits of an ingest job.
    limits: UploadLimits,
}

/// The routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    IngestJobs,
    IngestJob,
    Batches,
    QueryJobs,
    QueryJob,
    /// The result pages of a query job.
    QueryResults,
    /// A per-record result of an ingest job: the output it reads.
    Results(&'static str),
}

/// The output of the records a worker loaded, as `sf__Id,sf__Created,` and the record.
const SUCCESSFUL: &str = "results/successful";
/// The output of the records that failed, as `sf__Id,sf__Error,` and the record.
const FAILED: &str = "results/failed";
/// The output of the records never processed, as uploaded.
const UNPROCESSED: &str = "results/unprocessed";

/// The core kind of ingest jobs.
const INGEST: &str = "ingest";
/// The core kind of query jobs.
const QUERY: &str = "query";

/// The request a handler answers: who asks, the job id (a 404 where the route has none, or
/// its text is not an id), the API version of the path and the core kind of the jobs the
/// route is about.
struct Asked<'a> {
    app: &'a App,
    principal: &'a Principal,
    id: Result<i64, ApiError>,
    version: f64,
    kind: &'static str,
}

impl Asked<'_> {
    fn id(&self) -> Result<i64, ApiError> {
        self.id.clone()
    }

    /// This API's jobs of the route's kind.
    fn jobs(&self) -> BulkJobs {
        BulkJobs {
            label: NAME,
            kind: Some(self.kind),
            uploads: "data",
        }
    }
}

/// The API version of the path (`v58.0`); a version this API does not serve is an unknown
/// path.
fn version(matched: &Matched<Name>) -> Result<f64, ApiError> {
    wire::version(matched.params.text("version"))
        .ok_or_else(|| ApiError::new(ErrorKind::RouteNotFound, bulk::NOT_FOUND))
}

impl Bulk2 {
    /// The API with the settings of `config`.
    pub(crate) fn new(config: &DialectConfig) -> Bulk2 {
        Bulk2 {
            queue: config.bulk2_queue.clone(),
            limits: UploadLimits {
                max_batches: Some(config.bulk2_max_batches),
                max_batch_bytes: Some(config.bulk2_max_batch_bytes),
            },
        }
    }

    /// `POST …/jobs/ingest` and `POST …/jobs/query`.
    async fn create(&self, asked: &Asked<'_>, request: Request<Incoming>) -> Answer {
        let principal = asked.principal;
        let body = asked.app.json_body(request).await?;
        let new = if asked.kind == QUERY {
            wire::new_query(body, principal, &self.queue, asked.version)?
        } else {
            wire::new_ingest(body, principal, &self.queue, asked.version)?
        };
        let job = asked.app.enqueue(principal, new, None).await?;
        Ok(body::json(StatusCode::OK, &JobInfo::from(&job)))
    }

    /// `PUT …/jobs/ingest/{id}/batches`: the body streamed into a new data batch through the
    /// CSV check with the job's delimiter and line ending, within this API's limits
    /// ([`BulkJobs::upload`]).
    async fn upload(&self, asked: &Asked<'_>, request: Request<Incoming>) -> Answer {
        let id = asked.id()?;
        let expected = "data is uploaded as `Content-Type: text/csv`";
        jobs::check_csv_type(request.headers(), Charset::Any, expected)?;
        asked
            .jobs()
            .upload(
                asked.app,
                asked.principal,
                id,
                request,
                self.limits,
                wire::csv_rules,
            )
            .await?;
        Ok(body::empty(StatusCode::CREATED))
    }
}

/// `GET …/jobs/ingest` and `…/jobs/query`: a page of jobs of the route's kind, oldest
/// first, with the locator of the next.
async fn list(asked: &Asked<'_>, query: Option<&str>) -> Answer {
    let listing = list::listing(query, asked.kind, list::PAGE)?;
    let (jobs, more) = if listing.none {
        (Vec::new(), false)
    } else {
        let page = asked.app.list(asked.principal, listing.query).await?;
        (page.jobs, page.has_more)
    };
    let records: Vec<JobInfo> = jobs.iter().map(JobInfo::from).collect();
    let next = listing.offset + jobs.len() as u64;
    let next_url = more.then(|| {
        format!(
            "/services/data/v{:.1}/jobs/{}?queryLocator={next}",
            asked.version,
            if asked.kind == QUERY {
                "query"
            } else {
                "ingest"
            }
        )
    });
    Ok(body::json(
        StatusCode::OK,
        &json!({ "done": !more, "records": records, "nextRecordsUrl": next_url }),
    ))
}

/// `GET …/jobs/ingest/{id}/successfulResults`, `failedResults`, `unprocessedrecords`: the
/// CSV the job's worker uploaded as `output`, streamed; empty when it uploaded none.
async fn results(asked: &Asked<'_>, output: &'static str) -> Answer {
    let id = asked.id()?;
    let reader = asked
        .jobs()
        .read(asked.app, asked.principal, id, move |store, _| {
            store.read_output(id, output)
        })
        .await?;
    let stream = match reader {
        Some(reader) => http_body_util::BodyExt::boxed(crate::data::stream(id, reader)),
        None => body::full(bytes::Bytes::new()),
    };
    Ok(body::with_type(StatusCode::OK, "text/csv", stream))
}

/// `GET …/jobs/query/{id}/results`: a page of a JobComplete query job's result CSV
/// (`pages`), asked with the API version the job was created with.
async fn query_results(asked: &Asked<'_>, query: Option<&str>) -> Answer {
    let wanted = pages::request(query)?;
    let (id, version) = (asked.id()?, asked.version);
    let jobs = asked.jobs();
    let found = jobs
        .read(asked.app, asked.principal, id, move |store, job| {
            if job.state != State::Succeeded {
                return Ok(Err(ApiError::new(
                    ErrorKind::InvalidTransition,
                    format!(
                        "job {id} is {}: its results are read once it is JobComplete",
                        bulk::state_of(job)
                    ),
                )));
            }
            let created = job
                .payload
                .get("apiVersion")
                .and_then(serde_json::Value::as_f64);
            if created.is_some_and(|created| (created - version).abs() > 0.01) {
                return Ok(Err(ApiError::new(
                    ErrorKind::InvalidTransition,
                    format!(
                        "job {id} was created with API version {:.1}: its results are read with \
                     the same version, not {version:.1}",
                        created.unwrap_or_default()
                    ),
                )));
            }
            let page = match pages::find(store, id, wanted) {
                Ok(Some(page)) => page,
                Ok(None) => return Ok(Ok(None)),
                Err(Error::InvalidInput { field, .. }) if field == "position" => {
                    let locator = wanted.from.map(|from| from.to_string()).unwrap_or_default();
                    let message = format!("unknown locator `{locator}`");
                    return Ok(Err(crate::query::invalid(message)));
                }
                Err(err) => return Err(err),
            };
            let reader = page.reader(store, id)?;
            Ok(Ok(Some((page, reader))))
        })
        .await??;
    let (records, next, stream) = match found {
        None => (0, None, body::full(bytes::Bytes::new())),
        Some((page, reader)) => {
            let header = bytes::Bytes::from(page.header);
            let stream = match reader {
                Some(reader) if page.bytes > 0 => {
                    http_body_util::BodyExt::boxed(crate::data::stream_after(id, header, reader))
                }
                _ => body::full(header),
            };
            (page.records, page.next, stream)
        }
    };
    let mut response = body::with_type(StatusCode::OK, "text/csv", stream);
    let headers = response.headers_mut();
    headers.insert("Sforce-NumberOfRecords", records.into());
    let locator = next.map_or_else(|| "null".to_owned(), |next| next.to_string());
    body::set_header(&mut response, "Sforce-Locator", &locator);
    Ok(response)
}

/// `GET …/jobs/ingest/{id}`.
async fn get(asked: &Asked<'_>) -> Answer {
    let detail = asked
        .jobs()
        .read(asked.app, asked.principal, asked.id()?, |store, job| {
            Ok(JobDetail::new(job, store.now()))
        })
        .await?;
    Ok(body::json(StatusCode::OK, &detail))
}

/// `PATCH …/jobs/ingest/{id}`: close or abort ([`BulkJobs::patch`]); a query job is only
/// aborted.
async fn patch(asked: &Asked<'_>, request: Request<Incoming>) -> Answer {
    let body = asked.app.json_body(request).await?;
    let action = Action::patched(body, PatchBody::StateAsSpelled)?;
    if asked.kind == QUERY && action == Action::Close {
        let message = "a query job can only be set to Aborted";
        return Err(salesforce::own("INVALIDJOBSTATE", message));
    }
    let (app, principal) = (asked.app, asked.principal);
    let job = asked
        .jobs()
        .patch(app, principal, asked.id()?, action)
        .await?;
    Ok(body::json(StatusCode::OK, &JobInfo::from(&job)))
}

impl Routed for Bulk2 {
    type Name = Name;
    const NAME: &'static str = NAME;
    const PREFIX: &'static str = "/services/data/";
    const ROUTES: &'static [Route<Name>] = &[
        Route::new(
            "/services/data/{version}/jobs/ingest",
            &[Method::GET, Method::POST],
            Name::IngestJobs,
        ),
        Route::new(
            "/services/data/{version}/jobs/ingest/{id}",
            &[Method::GET, Method::PATCH, Method::DELETE],
            Name::IngestJob,
        ),
        Route::new(
            "/services/data/{version}/jobs/ingest/{id}/batches",
            &[Method::PUT],
            Name::Batches,
        ),
        Route::new(
            "/services/data/{version}/jobs/ingest/{id}/successfulResults",
            &[Method::GET],
            Name::Results(SUCCESSFUL),
        ),
        Route::new(
            "/services/data/{version}/jobs/ingest/{id}/failedResults",
            &[Method::GET],
            Name::Results(FAILED),
        ),
        Route::new(
            "/services/data/{version}/jobs/ingest/{id}/unprocessedrecords",
            &[Method::GET],
            Name::Results(UNPROCESSED),
        ),
        Route::new(
            "/services/data/{version}/jobs/ingest/{id}/unprocessedRecords",
            &[Method::GET],
            Name::Results(UNPROCESSED),
        ),
        Route::new(
            "/services/data/{version}/jobs/query",
            &[Method::GET, Method::POST],
            Name::QueryJobs,
        ),
        Route::new(
            "/services/data/{version}/jobs/query/{id}",
            &[Method::GET, Method::PATCH, Method::DELETE],
            Name::QueryJob,
        ),
        Route::new(
            "/services/data/{version}/jobs/query/{id}/results",
            &[Method::GET],
            Name::QueryResults,
        ),
    ];

    /// `/services/data/{version}/jobs/ingest`, `…/jobs/query` and everything under them.
    fn owns_path(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix(Self::PREFIX) else {
            return false;
        };
        let Some((_, rest)) = rest.split_once('/') else {
            return false;
        };
        ["jobs/ingest", "jobs/query"].into_iter().any(|jobs| {
            rest.strip_prefix(jobs)
                .is_some_and(|tail| tail.is_empty() || tail.starts_with('/'))
        })
    }

    fn miss(&self, miss: Miss, method: &Method, path: &str) -> ApiError {
        bulk::miss(miss, method, path)
    }

    /// A version this API does not serve (`latest`, `v40.0`) is an unknown path, refused
    /// before the caller is authenticated.
    fn admit(&self, matched: &Matched<Name>) -> Result<(), ApiError> {
        version(matched).map(|_| ())
    }

    async fn answer(
        &self,
        app: &App,
        principal: &Principal,
        matched: Matched<Name>,
        request: Request<Incoming>,
    ) -> Answer {
        let asked = Asked {
            app,
            principal,
            id: matched.params.job_id("id"),
            version: version(&matched)?,
            kind: match matched.route.name {
                Name::QueryJobs | Name::QueryJob | Name::QueryResults => QUERY,
                _ => INGEST,
            },
        };
        match (matched.route.name, request.method().clone()) {
            (Name::IngestJobs | Name::QueryJobs, Method::POST) => {
                self.create(&asked, request).await
            }
            (Name::IngestJobs | Name::QueryJobs, _) => list(&asked, request.uri().query()).await,
            (Name::IngestJob | Name::QueryJob, Method::GET) => get(&asked).await,
            (Name::IngestJob | Name::QueryJob, Method::PATCH) => patch(&asked, request).await,
            (Name::IngestJob | Name::QueryJob, _) => {
                asked.jobs().delete(app, principal, asked.id()?).await
            }
            (Name::Batches, _) => self.upload(&asked, request).await,
            (Name::Results(output), _) => results(&asked, output).await,
            (Name::QueryResults, _) => query_results(&asked, request.uri().query()).await,
        }
    }

    /// JSON answers name their charset, as the vendor's do.
    fn finish(&self, response: &mut Response<ResponseBody>) {
        salesforce::with_charset(response);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_owns_its_paths_and_names_its_routes() {
        let owned = [
            (
                "/services/data/v58.0/jobs/ingest/",
                Some("/services/data/{version}/jobs/ingest"),
            ),
            (
                "/services/data/v41.0/jobs/ingest/42/batches",
                Some("/services/data/{version}/jobs/ingest/{id}/batches"),
            ),
            ("/services/data/v58.0/jobs/ingest/42/other", None),
            (
                "/services/data/v58.0/jobs/query/42",
                Some("/services/data/{version}/jobs/query/{id}"),
            ),
        ];
        let foreign = [
            "/services/data/v58.0/sobjects",
            "/services/data/v58.0/jobs/ingestx",
            "/services/data/v58.0/jobs/queryx",
            "/services/data",
            "/api/v1/ingest/jobs",
        ];
        crate::testing::routes(&Bulk2::new(&DialectConfig::default()), &owned, &foreign);
    }
}
