//! The jobstore daemon library: a hyper 1 server over the core [`jobstore`] store, serving
//! the native API and the vendors' job APIs.
//!
//! Layers, each using only those below it:
//! - the server (`server`): accepting, admission, one hyper connection per client, and the
//!   dispatch of each request to the [`Api`] that owns its path, over plain HTTP or TLS
//!   ([`Tls`]);
//! - the APIs: the native one (`native`) and each vendor's (`dialects`), each a route table,
//!   its wire types, its faults and its handlers; and the web dashboard (`dashboard`), its
//!   embedded page served the same way, reading and acting through the native API;
//! - the skeleton every API is built on: the [`App`] (store calls, authentication, bounded
//!   bodies), `router`, `query`, `fault`, `time`, `body`, `data`, `auth`, `conn`, `metrics`.
//!
//! **Boundary:** this crate owns the wire formats and converts them to and from core types; it
//! owns no SQL and no state logic.

mod api;
mod app;
pub mod auth;
mod body;
mod conn;
mod dashboard;
mod data;
mod depth;
mod dialects;
mod fault;
mod metrics;
mod native;
mod query;
mod router;
mod server;
#[cfg(test)]
mod testing;
mod time;
pub mod tls;

use std::sync::Arc;

pub use api::Api;
pub use app::{App, Limits};
pub use auth::{Principal, Tokens};
pub use dashboard::Dashboard;
pub use depth::SAMPLE_INTERVAL as DEPTH_SAMPLE_INTERVAL;
pub use dialects::DialectConfig;
pub use fault::{ApiError, ErrorKind};
pub use native::Native;
/// The native API's documents, also what `jobstore jobs … --json` prints.
pub use native::wire::{Job as JobDocument, JobEvent as EventDocument, Step as StepDocument};
pub use server::{handle, serve};
pub use tls::Tls;

/// Every API the daemon serves, in the order a path is offered to them: the vendors' (see
/// `dialects::registered`), the dashboard (`/` and `/ui/`), then the native API, which owns
/// every other path.
pub fn apis(config: &DialectConfig) -> Vec<Arc<dyn Api>> {
    let mut apis = dialects::registered(config);
    apis.push(Arc::new(Dashboard));
    apis.push(Arc::new(Native {
        definition_queue: config.ocapi_queue.clone(),
    }));
    apis
}
