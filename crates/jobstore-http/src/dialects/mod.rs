//! The four vendor job APIs, each a view of the canonical jobs: one module per dialect with
//! its request/response types, status mapping, fault renderer and conversions to and from core
//! types. No SQL, no state logic, no table of their own: a job created in a dialect is an
//! ordinary job (tagged with its dialect) that the native API, workers, `jobstore jobs` and
//! `sqlite3` all see.
//!
//! Each module exposes `matches(path)` (its own paths, with and without a trailing slash) and
//! `handle(app, request)`, which authenticates with the daemon's tokens exactly like the
//! native API and renders every answer, faults included, in its vendor's shape.

pub mod aep;
pub mod c360;
pub mod datacloud;
pub mod ocapi;

use http::{Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::App;
use crate::body::ResponseBody;

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
        }
    }
}

/// Which dialect a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Salesforce Customer 360 Data Manager, Data Jobs API v1.0.
    C360,
    /// B2C Commerce OCAPI Data API job executions (17.4 and later versions).
    Ocapi,
    /// Adobe Experience Platform segment export jobs.
    Aep,
    /// Salesforce Data Cloud Ingest API bulk jobs.
    DataCloud,
}

impl Dialect {
    /// The dialect of a path, if it is one of a vendor API's.
    pub fn recognise(path: &str) -> Option<Dialect> {
        if c360::matches(path) {
            Some(Dialect::C360)
        } else if ocapi::matches(path) {
            Some(Dialect::Ocapi)
        } else if aep::matches(path) {
            Some(Dialect::Aep)
        } else if datacloud::matches(path) {
            Some(Dialect::DataCloud)
        } else {
            None
        }
    }

    /// The name stored in `jobs.dialect` and used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::C360 => "c360",
            Dialect::Ocapi => "ocapi",
            Dialect::Aep => "aep",
            Dialect::DataCloud => "datacloud",
        }
    }
}

/// Answers a request of a vendor API.
pub(crate) async fn handle(
    app: &App,
    dialect: Dialect,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    match dialect {
        Dialect::C360 => c360::handle(app, request).await,
        Dialect::Ocapi => ocapi::handle(app, request).await,
        Dialect::Aep => aep::handle(app, request).await,
        Dialect::DataCloud => datacloud::handle(app, request).await,
    }
}
