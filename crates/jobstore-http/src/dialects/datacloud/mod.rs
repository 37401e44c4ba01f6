//! Salesforce Data Cloud Ingest API bulk jobs (`/api/v1/ingest/jobs`), a view of the canonical
//! jobs mapped as `docs/dialect-datacloud.md` describes: a bulk job is an `ingest` job labelled
//! `datacloud`, created `open`; its batches are data batches checked as CSV while they stream
//! (`dialects::csv`). Here: the settings, the routes, the handlers and the retention; the wire
//! types are in `wire`, the fault documents in `faults`, the list parameters in `list`. Which
//! move a job's state allows, and how many batches it may hold, is the store's answer. The state
//! names, the PATCH body, the calls on a job and the words of their refusals are those of
//! Bulk API 2.0 too (`dialects::salesforce::{bulk, jobs}`). This API sees only the jobs it
//! created (`Store::get_labelled`).

mod faults;
mod list;
mod wire;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use jobstore::{Direction, Error, Job, ListQuery, Scope, SortField, State, Store, UploadLimits};
use serde_json::json;

use self::wire::{JobDetail, JobInfo, Operation};
use crate::api::{Answer, Routed};
use crate::app::App;
use crate::auth::Principal;
use crate::body::{self, ResponseBody};
use crate::dialects::csv::CsvRules;
use crate::dialects::salesforce::bulk::{self, Action, PatchBody};
use crate::dialects::salesforce::jobs::{self, BulkJobs, Charset};
use crate::dialects::{DialectConfig, salesforce};
use crate::fault::ApiError;
use crate::router::{Matched, Miss, Route};

/// The API's name: the label of its jobs.
const NAME: &str = "datacloud";

/// The jobs of this API (all of kind `ingest`), and how its refusals name their uploads.
const JOBS: BulkJobs = BulkJobs {
    label: NAME,
    kind: None,
    uploads: "batches",
};

/// The Data Cloud Ingest API, with its settings (the `datacloud_*` of [`DialectConfig`]).
#[derive(Debug, Clone)]
pub(crate) struct DataCloud {
    queue: String,
    /// The batch count and batch size limits of an upload.
    limits: UploadLimits,
    retention_ms: i64,
}

/// The routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    Jobs,
    Job,
    Batches,
}

impl DataCloud {
    /// The API with the settings of `config`.
    pub(crate) fn new(config: &DialectConfig) -> DataCloud {
        DataCloud {
            queue: config.datacloud_queue.clone(),
            limits: UploadLimits {
                max_batches: Some(config.datacloud_max_batches),
                max_batch_bytes: Some(config.datacloud_max_batch_bytes),
            },
            retention_ms: config.datacloud_retention_ms,
        }
    }

    /// `POST /api/v1/ingest/jobs`.
    async fn create(&self, app: &App, principal: &Principal, request: Request<Incoming>) -> Answer {
        let idempotency = crate::app::idempotency_key(request.headers())
            .map_err(|message| salesforce::own("INVALIDJOB", message))?;
        let new = wire::new_job(app.json_body(request).await?, principal, &self.queue)?;
        let job = app.enqueue(principal, new, idempotency).await?;
        Ok(body::json(StatusCode::CREATED, &JobInfo::from(&job)))
    }

    /// `PUT /api/v1/ingest/jobs/{id}/batches`: the body streamed into a new data batch through
    /// the CSV check, within this API's batch limits ([`BulkJobs::upload`]).
    async fn upload(
        &self,
        app: &App,
        principal: &Principal,
        id: i64,
        request: Request<Incoming>,
    ) -> Answer {
        let expected = "batches are uploaded as `Content-Type: text/csv` (UTF-8)";
        jobs::check_csv_type(request.headers(), Charset::Utf8, expected)?;
        let rules = |job: &Job| CsvRules::comma(Operation::of(job) == Operation::Upsert);
        JOBS.upload(app, principal, id, request, self.limits, rules)
            .await?;
        Ok(body::empty(StatusCode::ACCEPTED))
    }
}

/// `GET /api/v1/ingest/jobs`.
async fn list(app: &App, principal: &Principal, query: Option<&str>) -> Answer {
    let page = app.list(principal, list::list_query(query)?).await?;
    let data: Vec<JobInfo> = page.jobs.iter().map(JobInfo::from).collect();
    Ok(body::json(StatusCode::OK, &json!({ "data": data })))
}

/// `GET /api/v1/ingest/jobs/{id}`.
async fn get(app: &App, principal: &Principal, id: i64) -> Answer {
    let job = app.labelled_job(principal, id, NAME).await?;
    let detail = JobDetail::new(&job, app.store().now());
    Ok(body::json(StatusCode::OK, &detail))
}

/// `PATCH /api/v1/ingest/jobs/{id}`: close or abort ([`BulkJobs::patch`]).
async fn patch(app: &App, principal: &Principal, id: i64, request: Request<Incoming>) -> Answer {
    let action = Action::patched(app.json_body(request).await?, PatchBody::OnlyStateAnyCase)?;
    let job = JOBS.patch(app, principal, id, action).await?;
    Ok(body::json(StatusCode::OK, &JobInfo::from(&job)))
}

impl Routed for DataCloud {
    type Name = Name;
    const NAME: &'static str = NAME;
    const PREFIX: &'static str = "/api/v1/ingest/jobs";
    const ROUTES: &'static [Route<Name>] = &[
        Route::new(Self::PREFIX, &[Method::GET, Method::POST], Name::Jobs),
        Route::new(
            "/api/v1/ingest/jobs/{id}",
            &[Method::GET, Method::PATCH, Method::DELETE],
            Name::Job,
        ),
        Route::new(
            "/api/v1/ingest/jobs/{id}/batches",
            &[Method::PUT],
            Name::Batches,
        ),
    ];

    fn miss(&self, miss: Miss, method: &Method, path: &str) -> ApiError {
        bulk::miss(miss, method, path)
    }

    async fn answer(
        &self,
        app: &App,
        principal: &Principal,
        matched: Matched<Name>,
        request: Request<Incoming>,
    ) -> Answer {
        let id = || matched.params.job_id("id");
        match (matched.route.name, request.method().clone()) {
            (Name::Jobs, Method::POST) => self.create(app, principal, request).await,
            (Name::Jobs, _) => list(app, principal, request.uri().query()).await,
            (Name::Job, Method::GET) => get(app, principal, id()?).await,
            (Name::Job, Method::PATCH) => patch(app, principal, id()?, request).await,
            (Name::Job, _) => JOBS.delete(app, principal, id()?).await,
            (Name::Batches, _) => self.upload(app, principal, id()?, request).await,
        }
    }

    /// JSON answers name their charset, as the vendor's do.
    fn finish(&self, response: &mut Response<ResponseBody>) {
        salesforce::with_charset(response);
    }

    /// Deletes the Data Cloud jobs still Open or UploadComplete `datacloud_retention_ms` after
    /// they were created, with their data, in every tenant; answers how many. Each is aborted
    /// and deleted in one transaction ([`Store::discard`]); a job a worker claimed meanwhile
    /// is left to run.
    fn maintain(&self, store: &Store) -> jobstore::Result<u64> {
        let store = store.with_scope(Scope::All);
        let expired = ListQuery {
            dialects: vec![NAME.to_owned()],
            states: vec![State::Open, State::Queued],
            // Never claimed: a queued job waiting for a retry is InProgress.
            none_of: vec![list::started()],
            created_before: Some(store.now().saturating_sub(self.retention_ms)),
            sort: Some(SortField::Id),
            direction: Direction::Asc,
            limit: Some(500),
            ..ListQuery::default()
        };
        let mut purged = 0;
        loop {
            // Each job handled leaves the filter (deleted, or claimed meanwhile), so the next
            // page starts at the top again.
            let page = store.list(&expired)?;
            for job in &page.jobs {
                match store.discard(job.id, &expired.states) {
                    Ok(()) => purged += 1,
                    Err(Error::JobNotFound { .. } | Error::InvalidTransition { .. }) => {}
                    Err(err) => return Err(err),
                }
            }
            if !page.has_more || page.jobs.is_empty() {
                break;
            }
        }
        if purged > 0 {
            log::info!(
                "purged {purged} Data Cloud jobs left Open or UploadComplete past retention"
            );
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jobstore::{ClaimRequest, Failure, ManualClock, NewJob, StoreOptions};

    use super::*;
    use crate::api::Api;
    use crate::auth::Principal;
    use crate::testing::TempStore;

    #[test]
    fn the_api_owns_its_prefix_and_names_its_routes() {
        let owned = [
            ("/api/v1/ingest/jobs/", Some(DataCloud::PREFIX)),
            (
                "/api/v1/ingest/jobs/42/batches/",
                Some(DataCloud::ROUTES[2].path),
            ),
            ("/api/v1/ingest/jobs/42/results", None),
        ];
        let foreign = ["/api/v1/ingest", "/api/v1/ingest/jobsx", "/v1/jobs"];
        let api = DataCloud::new(&DialectConfig::default());
        crate::testing::routes(&api, &owned, &foreign);
    }

    #[test]
    fn maintenance_deletes_only_old_open_and_closed_data_cloud_jobs() {
        let clock = Arc::new(ManualClock::new(1_700_000_000_123));
        let options = StoreOptions {
            clock: clock.clone(),
            ..StoreOptions::default()
        };
        let temp = TempStore::open("datacloud", options);
        let store = temp.store.with_scope(Scope::All);
        let config = DialectConfig::default();
        let api = DataCloud::new(&config);
        let principal = Principal::anonymous_local();
        let new = |operation: &str| {
            let body =
                serde_json::json!({"object": "C", "sourceName": "s", "operation": operation});
            wire::new_job(body, &principal, "datacloud").unwrap()
        };
        let enqueue = |job: NewJob| store.enqueue(job).unwrap().id;
        let open = enqueue(new("upsert"));
        // Claimed once and waiting for its retry: InProgress, never purged.
        let retried = enqueue(new("delete"));
        store.close_upload(retried, "t").unwrap();
        let claimed = store.claim(&ClaimRequest::new("w", "datacloud")).unwrap();
        assert_eq!(claimed.first().map(|job| job.id), Some(retried));
        let lease = claimed[0].lease().unwrap();
        let waiting = store
            .fail(retried, &lease, Failure::retryable("flaky"))
            .unwrap();
        assert_eq!(
            (waiting.state, bulk::state_of(&waiting)),
            (State::Queued, "InProgress")
        );
        let closed = enqueue(new("delete"));
        store.append_data(closed, &b"k1\n"[..]).unwrap();
        store.close_upload(closed, "t").unwrap();
        let native_open = enqueue(NewJob::new("x").upload(true));
        let aborted = enqueue(new("upsert"));
        store.cancel(aborted, "t").unwrap();
        clock.advance(config.datacloud_retention_ms - 1);
        let young = enqueue(new("upsert"));
        assert_eq!(Api::maintain(&api, &store).ok(), Some(0));
        clock.advance(2);
        assert_eq!(Api::maintain(&api, &store).ok(), Some(2));
        for id in [open, closed] {
            let gone = store.get(id);
            assert!(matches!(gone, Err(Error::JobNotFound { .. })), "{id}");
        }
        for id in [native_open, aborted, young, retried] {
            assert!(store.get(id).is_ok(), "{id}");
        }
    }
}
