//! The calls the two Salesforce bulk ingest APIs (Data Cloud, Bulk API 2.0) make on their
//! jobs, the same in both: the fetch of one of the API's jobs before a store call, and a state
//! change the core refuses worded for the request ([`BulkJobs::change`]); close or abort
//! (`PATCH`), delete, and a CSV upload streamed through the check within the API's limits,
//! after its `Content-Type` was checked ([`check_csv_type`]). Which move a job's state allows,
//! and how many batches it may hold, is the store's answer.

use http::{HeaderMap, Request, StatusCode, header};
use hyper::body::{Body as _, Incoming};
use jobstore::{Error, Job, State, Store, UploadLimits};

use super::bulk::{self, Action};
use super::{own, unreadable};
use crate::api::Answer;
use crate::app::App;
use crate::auth::Principal;
use crate::body;
use crate::dialects::csv::{CsvCheck, CsvRules};
use crate::fault::{ApiError, ErrorKind};

/// The jobs of one API that a request may touch, and the words the API refuses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BulkJobs {
    /// The API's label: its jobs are those labelled so ([`Store::get_labelled`]).
    pub(crate) label: &'static str,
    /// The core kind of the jobs, where the API has several (Bulk API 2.0's ingest and query
    /// jobs, each on routes of their own); a job of another kind is not found, like an
    /// unknown id.
    pub(crate) kind: Option<&'static str>,
    /// What the API calls the data a job is uploaded in (`batches`, `data`), in the refusal
    /// of an upload.
    pub(crate) uploads: &'static str,
}

impl BulkJobs {
    /// `err` met while doing `action` to `read` (the job as read before): a state change the
    /// core refused names the job's state (the state the core found, if the job moved on since
    /// it was read) and what the request needs; any other error is its kind's.
    pub(crate) fn refuse(&self, action: Action, err: Error, read: &Job) -> ApiError {
        let Error::InvalidTransition { job, from, .. } = err else {
            return err.into();
        };
        let state = match from {
            Some(from) if from == read.state => bulk::state_of(read),
            from => from.map_or("(new)", bulk::state_name),
        };
        let upload;
        let needs = match action {
            Action::Upload => {
                upload = format!("{} may be uploaded only while it is Open", self.uploads);
                upload.as_str()
            }
            Action::Close => "only an Open job can be set to UploadComplete",
            Action::Abort => "a finished job cannot be aborted",
            Action::Delete => {
                "only jobs in UploadComplete, JobComplete, Aborted or Failed can be deleted"
            }
        };
        ApiError::new(
            ErrorKind::InvalidTransition,
            format!("job {job} is {state}: {needs}"),
        )
    }

    /// Runs a blocking store call on the API's job `id` in the principal's scope: `f` gets the
    /// job as read first. A job of another API, tenant or kind is not found.
    pub(crate) async fn read<T, F>(
        self,
        app: &App,
        principal: &Principal,
        id: i64,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store, &Job) -> jobstore::Result<T> + Send + 'static,
    {
        self.call(app, principal, id, None, f).await
    }

    /// [`BulkJobs::read`] for a state change: one the core refuses is worded for `action`
    /// ([`BulkJobs::refuse`]).
    pub(crate) async fn change<T, F>(
        self,
        app: &App,
        principal: &Principal,
        id: i64,
        action: Action,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store, &Job) -> jobstore::Result<T> + Send + 'static,
    {
        self.call(app, principal, id, Some(action), f).await
    }

    async fn call<T, F>(
        self,
        app: &App,
        principal: &Principal,
        id: i64,
        action: Option<Action>,
        f: F,
    ) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Store, &Job) -> jobstore::Result<T> + Send + 'static,
    {
        app.call(principal, move |store| {
            let job = store.get_labelled(id, self.label)?;
            if self.kind.is_some_and(|kind| job.kind != kind) {
                return Err(Error::JobNotFound { id });
            }
            Ok(f(&store, &job).map_err(|err| match action {
                Some(action) => self.refuse(action, err, &job),
                None => err.into(),
            }))
        })
        .await?
    }

    /// `PATCH` of the job `id` to UploadComplete (close: `open → queued`) or Aborted (the
    /// core's cancel); the job as it is after. An abort of an Open or UploadComplete job
    /// deletes its data in the same transaction; of an InProgress job, it asks the worker to
    /// stop (it sees the request on its next heartbeat) and the job is still InProgress.
    pub(crate) async fn patch(
        self,
        app: &App,
        principal: &Principal,
        id: i64,
        action: Action,
    ) -> Result<Job, ApiError> {
        let actor = principal.name.clone();
        self.change(app, principal, id, action, move |store, _| {
            if action == Action::Abort {
                store.cancel(id, &actor)
            } else {
                store.close_upload(id, &actor)
            }
        })
        .await
    }

    /// `DELETE` of the job `id`: UploadComplete (a queued job never claimed) or finished,
    /// answered 204. The store aborts and deletes in one transaction ([`Store::discard`]), so
    /// a worker cannot claim the job in between; a queued job waiting for a retry is
    /// InProgress and refused.
    pub(crate) async fn delete(self, app: &App, principal: &Principal, id: i64) -> Answer {
        let deletable = [
            State::Queued,
            State::Succeeded,
            State::Cancelled,
            State::Failed,
        ];
        self.change(app, principal, id, Action::Delete, move |store, job| {
            if bulk::state_of(job) != bulk::state_name(job.state) {
                return Err(Error::InvalidTransition {
                    job: id,
                    from: Some(job.state),
                    event: "delete",
                });
            }
            store.discard(id, &deletable)
        })
        .await?;
        Ok(body::empty(StatusCode::NO_CONTENT))
    }

    /// The body of `request` streamed into a new data batch of the job `id` through the CSV
    /// check with the `rules` of the job, within `limits` (see [`App::append_body`]). A batch
    /// announced past its size limit is refused before a byte of it is read; a refused batch
    /// names its line, and nothing of it is kept.
    pub(crate) async fn upload(
        self,
        app: &App,
        principal: &Principal,
        id: i64,
        request: Request<Incoming>,
        limits: UploadLimits,
        rules: impl FnOnce(&Job) -> CsvRules,
    ) -> Result<(), ApiError> {
        let job = self
            .read(app, principal, id, |_, job| Ok(job.clone()))
            .await?;
        if let Some(limit) = limits.max_batch_bytes
            && request.body().size_hint().lower() > limit
        {
            return Err(Error::DataBatchTooLarge { limit }.into());
        }
        let check = CsvCheck::new(rules(&job));
        match app
            .append_body(principal, id, request, check, limits)
            .await?
        {
            Ok(_) => Ok(()),
            Err(Error::DataRead(err)) => Err(unreadable(&err)),
            Err(err) => Err(self.refuse(Action::Upload, err, &job)),
        }
    }
}

/// What an upload's `Content-Type` may say besides `text/csv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// Any parameters (Bulk API 2.0).
    Any,
    /// A `charset`, if given, of UTF-8 (Data Cloud, which takes UTF-8 CSV only).
    Utf8,
}

/// Uploads are `text/csv` under `charset`; a request without a Content-Type is taken as CSV.
/// Any other is a 415 `INVALID_CONTENT_TYPE` saying `expected`, then what was sent.
pub(crate) fn check_csv_type(
    headers: &HeaderMap,
    charset: Charset,
    expected: &str,
) -> Result<(), ApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("");
    let csv = body::media_type(headers).as_deref() == Some("text/csv");
    let utf8 = text
        .split(';')
        .skip(1)
        .all(|param| match param.split_once('=') {
            Some((name, value)) if name.trim().eq_ignore_ascii_case("charset") => {
                let value = value.trim().trim_matches('"');
                value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")
            }
            _ => true,
        });
    if csv && (utf8 || charset == Charset::Any) {
        return Ok(());
    }
    let message = format!("{expected}, not `{text}`");
    Err(own("INVALID_CONTENT_TYPE", message).with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;
    use crate::dialects::salesforce::code;

    #[test]
    fn a_refused_state_change_names_the_state_and_what_the_request_needs() {
        let mut job = crate::testing::job("bulk-jobs", jobstore::NewJob::new("ingest"));
        let jobs = BulkJobs {
            label: "datacloud",
            kind: None,
            uploads: "batches",
        };
        let refused = || Error::InvalidTransition {
            job: 7,
            from: Some(State::Queued),
            event: "upload",
        };
        let fault = jobs.refuse(Action::Upload, refused(), &job);
        assert_eq!(fault.status, StatusCode::CONFLICT);
        assert_eq!(code(fault.kind, &bulk::CODES), "INVALIDJOBSTATE");
        assert_eq!(
            fault.message,
            "job 7 is UploadComplete: batches may be uploaded only while it is Open"
        );
        // A job claimed before, waiting for its retry, is InProgress.
        job.started_at = Some(job.created_at);
        let fault = jobs.refuse(Action::Upload, refused(), &job);
        assert!(
            fault.message.starts_with("job 7 is InProgress:"),
            "{}",
            fault.message
        );
        // A job that moved on since it was read is named by the state the core found.
        job.state = State::Running;
        let fault = jobs.refuse(Action::Upload, refused(), &job);
        assert!(
            fault.message.starts_with("job 7 is UploadComplete:"),
            "{}",
            fault.message
        );
        let gone = jobs.refuse(Action::Delete, Error::JobNotFound { id: 7 }, &job);
        assert_eq!(code(gone.kind, &bulk::CODES), "NOT_FOUND");
    }

    #[test]
    fn uploads_are_csv_with_the_charset_each_api_takes() {
        let check = |value: Option<&'static str>, charset| {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            }
            check_csv_type(&headers, charset, "CSV").map_err(|f| (f.status, f.message))
        };
        for charset in [Charset::Any, Charset::Utf8] {
            for good in [None, Some("text/csv"), Some("Text/CSV; charset=\"UTF-8\"")] {
                assert_eq!(check(good, charset), Ok(()), "{good:?}");
            }
            let refused = check(Some("application/json"), charset);
            let message = "CSV, not `application/json`".to_owned();
            assert_eq!(refused, Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, message)));
        }
        let latin = Some("text/csv; charset=ISO-8859-1");
        assert_eq!(check(latin, Charset::Any), Ok(()));
        assert!(check(latin, Charset::Utf8).is_err());
    }
}
