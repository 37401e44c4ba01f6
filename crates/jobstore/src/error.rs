//! The one error type of the store. Every fault a caller can meet is a variant with typed
//! fields, so the daemon maps each to an HTTP status and a stable type in one table, and each
//! other API to its own fault document. Messages are lowercase without a final period.

use crate::state::State;

/// The result type of every fallible store call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No job with this id is visible in the caller's tenant.
    #[error("job {id} not found")]
    JobNotFound {
        /// The id that was asked for.
        id: i64,
    },
    /// No job definition with this id is visible in the caller's tenant.
    #[error("job definition `{id}` not found")]
    DefinitionNotFound {
        /// The definition id that was asked for.
        id: String,
    },
    /// A live job (open, queued or running) already holds this unique key; for a definition,
    /// an execution of it is still running.
    #[error("a live job ({job}) already holds unique key `{unique_key}`")]
    JobAlreadyRunning {
        /// The unique key that is taken.
        unique_key: String,
        /// The live job that holds it.
        job: i64,
    },
    /// The event is not allowed in the job's current state.
    #[error("job {job}: `{event}` is not allowed in state {}", from.map_or("(new)", State::as_str))]
    InvalidTransition {
        /// The job (0 when the store had not yet named one).
        job: i64,
        /// The state the job was in (`None` before it existed).
        from: Option<State>,
        /// The event that was refused.
        event: &'static str,
    },
    /// A worker call carried a lease that is not the job's current one: the lease expired and
    /// was rescued or re-claimed, or the job is no longer running. Nothing was changed.
    #[error("job {job}: lease {lease_token} held by `{worker}` is not the current lease")]
    StaleLease {
        /// The job.
        job: i64,
        /// The worker that made the call.
        worker: String,
        /// The fencing token it sent.
        lease_token: i64,
    },
    /// The job (or definition) does not allow restarts.
    #[error("job {job} may not be restarted")]
    NotRestartable {
        /// The job that was asked to restart (0 for a definition without executions).
        job: i64,
    },
    /// A restart of a definition found no failed or cancelled execution to restart.
    #[error("job definition `{definition}` has no failed or cancelled execution to restart")]
    NothingToRestart {
        /// The definition id.
        definition: String,
    },
    /// The definition cannot be executed as it is (marked invalid, or without steps).
    #[error("job definition `{definition}` is invalid: {cause}")]
    DefinitionInvalid {
        /// The definition id.
        definition: String,
        /// Why it cannot run.
        cause: String,
    },
    /// The definition is disabled.
    #[error("job definition `{definition}` is disabled")]
    DefinitionDisabled {
        /// The definition id.
        definition: String,
    },
    /// A step id that the job does not have.
    #[error("job {job} has no step `{step_id}`")]
    StepNotFound {
        /// The job.
        job: i64,
        /// The unknown step id.
        step_id: String,
    },
    /// A step report that does not follow pending → running → ok | error.
    #[error("job {job}: step `{step_id}` cannot go from {from} to {to}")]
    InvalidStepTransition {
        /// The job.
        job: i64,
        /// The step.
        step_id: String,
        /// The step's current status.
        from: String,
        /// The status reported.
        to: String,
    },
    /// A data batch grew past the configured size limit; nothing of it was kept.
    #[error("data batch exceeds the limit of {limit} bytes")]
    DataBatchTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The job already has the configured maximum number of data batches.
    #[error("job {job} already has the maximum of {limit} data batches")]
    TooManyDataBatches {
        /// The job.
        job: i64,
        /// The maximum.
        limit: u32,
    },
    /// Reading a data batch from its source failed (or the source refused its content);
    /// nothing of the batch was kept.
    #[error("reading the data batch failed: {0}")]
    DataRead(#[source] std::io::Error),
    /// A sort field that is not on the whitelist.
    #[error("unknown sort field `{given}`; valid fields: {valid}")]
    UnknownSortField {
        /// What the caller asked for.
        given: String,
        /// The fields that may be used.
        valid: String,
    },
    /// A pagination cursor that this store did not produce, or produced for another sort.
    #[error("invalid cursor: {reason}")]
    InvalidCursor {
        /// What is wrong with it.
        reason: String,
    },
    /// A request value that is out of range or malformed.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field at fault.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An idempotency key was reused with a different request.
    #[error("idempotency key `{key}` was already used for a different request (job {job})")]
    IdempotencyKeyReused {
        /// The key.
        key: String,
        /// The job created under it first.
        job: i64,
    },
    /// The database was written by a newer version of jobstore; it is left untouched.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A connection setting did not take when read back; the store refuses to open.
    #[error("sqlite setting `{setting}` did not take: wanted {wanted}, got {got}")]
    SettingNotApplied {
        /// The pragma.
        setting: &'static str,
        /// The value set.
        wanted: String,
        /// The value read back.
        got: String,
    },
    /// The commit of a write failed in a way that may still have committed it (an I/O error
    /// during COMMIT). Read back, or retry with an idempotency key; never assume "not done".
    #[error("outcome of the write is unknown: {0}")]
    OutcomeUnknown(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The write met another writer's locks and was not done: on SQLite another process held
    /// the file's write lock past the busy timeout; on PostgreSQL the write lost a deadlock or
    /// a serialization check, or waited past a lock timeout. Nothing was written; the same
    /// write may pass once the other ended.
    #[error("database busy: another writer held the locks this write needed; nothing was written")]
    Busy,
    /// The store is shutting down; the write was not attempted.
    #[error("the store is closed")]
    Closed,
    /// The storage engine cannot be reached: its server refused or lost the connection, is
    /// shutting down or starting up. Nothing was written (a commit whose answer was lost is
    /// [`Error::OutcomeUnknown`] instead); the same call may succeed once the server is back.
    #[error("the storage engine cannot be reached: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// An error from SQLite; the write it belonged to was rolled back.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// An error from a storage engine other than SQLite, in its driver's words; the write it
    /// belonged to was rolled back.
    #[error("storage: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The storage driver does not implement this operation (yet); nothing was done.
    #[error("the storage driver does not support `{operation}`")]
    Unsupported {
        /// The operation asked for.
        operation: &'static str,
    },
    /// No pooled read connection could be had.
    #[error("connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    /// A file operation (backup, open) failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// A stored JSON document could not be read (the database was edited by hand).
    #[error("stored json is malformed: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// Whether the same call may succeed if repeated unchanged (a lock, a storage engine out
    /// of reach, or an unknown outcome retried with an idempotency key).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Busy | Error::OutcomeUnknown(_) | Error::Unavailable(_)
        )
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Error {
        Error::InvalidInput {
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}
