//! An embedded, SQLite-backed job store.
//!
//! Jobs (imports, exports, bulk ingests, scheduled runs) live durably in one SQLite file with
//! their state machine, leases, steps, logs and uploaded data. The same store serves an
//! embedding program directly and the `jobstore` daemon over HTTP.
//!
//! ```
//! use jobstore::{ClaimRequest, NewJob, Store};
//! use serde_json::json;
//!
//! # fn main() -> jobstore::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("jobs.db"))?; // creates or migrates the file
//! let job = store.enqueue(NewJob::new("export").queue("default").payload(json!({"rows": 10})))?;
//!
//! // A worker leases the job, reports progress and completes it.
//! let claimed = store.claim(&ClaimRequest::new("worker-1", "default"))?;
//! let lease = claimed[0].lease().expect("a claimed job carries its lease");
//! store.heartbeat(job.id, &lease, jobstore::Heartbeat {
//!     progress: Some(json!({"records": 10})),
//!     ..Default::default()
//! })?;
//! let done = store.complete(job.id, &lease, json!({"exported": 10}))?;
//! assert_eq!(done.state, jobstore::State::Succeeded);
//! # Ok(())
//! # }
//! ```
//!
//! Or let the embedded [`Worker`] run handlers on threads:
//!
//! ```
//! use jobstore::{NewJob, Store, Worker, State};
//! use serde_json::json;
//!
//! # fn main() -> jobstore::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("jobs.db"))?;
//! let worker = Worker::new(store.clone(), ["default"]).concurrency(2).start(|job| {
//!     job.log(jobstore::LogLevel::Info, "exporting")?;
//!     job.progress(json!({"records": 10}))?;
//!     Ok(json!({"rows": 10}))
//! })?;
//! let id = store.enqueue(NewJob::new("export"))?.id;
//! # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
//! # while store.get(id)?.state != State::Succeeded && std::time::Instant::now() < deadline {
//! #     std::thread::sleep(std::time::Duration::from_millis(10));
//! # }
//! worker.shutdown();
//! assert_eq!(store.get(id)?.state, State::Succeeded);
//! # Ok(())
//! # }
//! ```
//!
//! # Storage
//! The store's logic is one code path over a storage [`driver`]: [`Store::open`] uses the
//! [`sqlite`] driver (one file, a single writer thread with group commit); another engine's
//! driver, in a crate of its own, is given to [`Store::with_driver`].
//!
//! # Durability
//! Every call that answers `Ok` has committed. With [`Durability::Full`] (the default) the
//! commit was fsynced and survives power loss; with [`Durability::Normal`] it survives a crash
//! of the process but the last commits may be lost with the machine. An error that says the
//! outcome is unknown ([`Error::OutcomeUnknown`]) may still have committed: read back, or
//! retry with an idempotency key.

mod clock;
pub mod driver;
mod error;
pub mod exact_json;
mod list;
mod model;
pub mod sqlite;
pub mod state;
mod store;
pub mod tables;
mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use driver::WriterStats;
pub use error::{Error, Result};
pub use list::{
    Cursor, CursorValue, DEFAULT_PAGE_SIZE, Direction, JobPage, ListQuery, MAX_PAGE_SIZE,
    Pagination, SortField,
};
pub use model::{
    CheckReport, ClaimRequest, Completion, DEFAULT_TENANT, DataBatch, Definition, DefinitionStep,
    Execution, Failure, Heartbeat, HeartbeatAnswer, Job, JobEvent, Lease, LiveCount, LogLevel,
    LogLine, NATIVE, NewJob, Output, QueueActivity, QueueCount, Scope, Step, StepReport,
    StepStatus, ThroughputBucket,
};
pub use sqlite::{AUTOCHECKPOINT_PAGES, Checkpoints, Durability, SCHEMA_VERSION, migrate_to};
pub use state::{Event, State, transition};
pub use store::{
    BatchUpload, DataPosition, DataReader, MAX_CLAIM, MAX_LOG_LINE_BYTES, MAX_LOG_LINES_PER_CALL,
    MAX_OUTPUT_NAME_BYTES, MAX_THROUGHPUT_BUCKETS, Store, StoreOptions, UploadLimits, WriteCall,
    valid_output_name,
};
pub use worker::{HandlerResult, JobContext, JobError, Worker, WorkerHandle};
