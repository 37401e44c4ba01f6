//! The vendors' job APIs, each a view of the canonical jobs in a folder of its own: `mod.rs`
//! (the API's settings, route table, its `Api` — through [`crate::api::Routed`] where the
//! skeleton's flow fits — and handlers), `wire.rs` (its documents and their conversions to and
//! from core types), `faults.rs` (its fault document and the exhaustive table from the
//! daemon's error kinds to its codes), and `list.rs` or `search.rs` (its list parameters). No
//! SQL, no state logic, no table of their own: a job created through an API is an ordinary job
//! labelled with the API's name, which the native API, workers, `jobstore jobs` and `sqlite3`
//! all see.
//!
//! Beside the folders, what several APIs share: `salesforce/` (the fault document of the
//! Salesforce-style APIs, and the bulk job and its calls that Data Cloud and Bulk API 2.0
//! share), `csv.rs` (the streaming CSV check of the two bulk ingest APIs), and here what their
//! documents read from a job ([`payload_text`], [`hex`]).
//!
//! Adding an API is its folder, a `mod` line and a line in [`registered`].

pub(crate) mod aep;
pub(crate) mod bulk2;
pub(crate) mod c360;
mod csv;
pub(crate) mod datacloud;
pub(crate) mod ocapi;
mod salesforce;

use std::sync::Arc;

use jobstore::Job;
use serde::Deserialize;
use serde_json::Value;

use crate::api::Api;

/// Dialect settings (the `[dialects]` table of the daemon's config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialectConfig {
    /// Queue of C360 Data Manager jobs.
    pub c360_queue: String,
    /// C360 data sources that are connected: any other source of a GPtoFS or FStoGP job must
    /// carry the `external://` prefix.
    pub c360_connected_sources: Vec<String>,
    /// Queue of OCAPI job definitions that name none.
    pub ocapi_queue: String,
    /// Queue of AEP export jobs.
    pub aep_queue: String,
    /// Queue of Data Cloud ingest jobs.
    pub datacloud_queue: String,
    /// The largest Data Cloud batch, in bytes.
    pub datacloud_max_batch_bytes: u64,
    /// The most batches one Data Cloud job may hold.
    pub datacloud_max_batches: u32,
    /// Data Cloud jobs still Open or UploadComplete after this long are deleted.
    pub datacloud_retention_ms: i64,
    /// Queue of Bulk API 2.0 jobs.
    pub bulk2_queue: String,
    /// The largest Bulk API 2.0 upload, in bytes.
    pub bulk2_max_batch_bytes: u64,
    /// The most uploads one Bulk API 2.0 ingest job may hold.
    pub bulk2_max_batches: u32,
}

impl Default for DialectConfig {
    fn default() -> Self {
        DialectConfig {
            c360_queue: "c360".into(),
            c360_connected_sources: Vec::new(),
            ocapi_queue: "ocapi".into(),
            aep_queue: "aep".into(),
            datacloud_queue: "datacloud".into(),
            datacloud_max_batch_bytes: 150 * 1024 * 1024,
            datacloud_max_batches: 100,
            datacloud_retention_ms: 7 * 24 * 3600 * 1000,
            bulk2_queue: "bulk2".into(),
            bulk2_max_batch_bytes: 150 * 1024 * 1024,
            bulk2_max_batches: 100,
        }
    }
}

/// The string member `name` of a job's payload, where an API keeps what its documents show.
pub(crate) fn payload_text<'j>(job: &'j Job, name: &str) -> Option<&'j str> {
    job.payload.get(name).and_then(Value::as_str)
}

/// `bytes` in lowercase hexadecimal: the ids and states an API derives from a hash.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The vendors' APIs, each with its settings, in the order a path is offered to them.
/// Registering an API is one line here.
pub(crate) fn registered(config: &DialectConfig) -> Vec<Arc<dyn Api>> {
    vec![
        Arc::new(c360::C360::new(config)),
        Arc::new(ocapi::Ocapi),
        Arc::new(aep::Aep::new(config)),
        Arc::new(datacloud::DataCloud::new(config)),
        Arc::new(bulk2::Bulk2::new(config)),
    ]
}
