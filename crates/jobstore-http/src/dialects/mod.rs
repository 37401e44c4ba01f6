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

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::Deserialize;

use crate::api::{Answering, Api};
use crate::app::App;
use crate::fault::ApiError;

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

/// The vendors' APIs, each with its settings, in the order a path is offered to them.
/// Registering an API is one line here.
pub fn registered(config: &DialectConfig) -> Vec<Arc<dyn Api>> {
    vec![
        Arc::new(Legacy::new("c360", config, c360::matches)),
        Arc::new(Legacy::new("ocapi", config, ocapi::matches)),
        Arc::new(Legacy::new("aep", config, aep::matches)),
        Arc::new(datacloud::DataCloud::new(config)),
    ]
}

/// A vendor API served through its module's own router.
struct Legacy {
    name: &'static str,
    config: DialectConfig,
    owns: fn(&str) -> bool,
}

impl Legacy {
    fn new(name: &'static str, config: &DialectConfig, owns: fn(&str) -> bool) -> Legacy {
        Legacy {
            name,
            config: config.clone(),
            owns,
        }
    }
}

impl Api for Legacy {
    fn name(&self) -> &'static str {
        self.name
    }

    fn owns(&self, path: &str) -> bool {
        (self.owns)(path)
    }

    fn template(&self, _path: &str) -> Option<&'static str> {
        Some(self.name)
    }

    fn handle<'a>(&'a self, app: &'a App, request: Request<Incoming>) -> Answering<'a> {
        Box::pin(async move {
            match self.name {
                "c360" => c360::handle(app, &self.config, request).await,
                "ocapi" => ocapi::handle(app, &self.config, request).await,
                "aep" => aep::handle(app, &self.config, request).await,
                _ => crate::native::error(&ApiError::no_route(request.uri().path())),
            }
        })
    }
}

/// The query string as decoded pairs (`+` is a space).
pub(crate) fn query_pairs(query: Option<&str>) -> Option<Vec<(String, String)>> {
    let Some(query) = query else {
        return Some(Vec::new());
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                crate::router::percent_decode(&key.replace('+', " "))?,
                crate::router::percent_decode(&value.replace('+', " "))?,
            ))
        })
        .collect()
}
