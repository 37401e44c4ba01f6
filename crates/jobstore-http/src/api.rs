//! The seam through which the server finds the APIs: each API (the native one and every
//! vendor's) is a value of a type implementing [`Api`], holding its own settings. The server
//! offers a request's path to each in turn; the one that owns it answers every request under
//! it, faults included, in its own shape.

use std::future::Future;
use std::pin::Pin;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use jobstore::Store;

use crate::app::App;
use crate::body::ResponseBody;

/// An answer being computed (a boxed future, so that APIs can sit behind `dyn Api`).
pub(crate) type Answering<'a> = Pin<Box<dyn Future<Output = Response<ResponseBody>> + Send + 'a>>;

/// One job API served by the daemon.
pub trait Api: Send + Sync + 'static {
    /// The API's name: the label stored on the jobs it creates (`jobs.dialect`) and the
    /// metrics label of its unmatched paths.
    fn name(&self) -> &'static str;

    /// Whether `path` is this API's. An API owns a whole prefix, so that a path under it
    /// that names no resource is answered in the API's fault shape.
    fn owns(&self, path: &str) -> bool;

    /// The route template `path` matches (a metrics label), if any.
    fn template(&self, path: &str) -> Option<&'static str>;

    /// Every route of the API: its path template and methods (HEAD implied by GET).
    fn routes(&self) -> Vec<(&'static str, &'static [Method])>;

    /// Answers one request under the API's prefix.
    fn handle<'a>(&'a self, app: &'a App, request: Request<Incoming>) -> Answering<'a>;

    /// Periodic maintenance the API's jobs need (run on a blocking thread from the server's
    /// maintenance tick); the number of jobs it changed.
    ///
    /// # Errors
    /// A store error; the next tick tries again.
    fn maintain(&self, store: &Store) -> jobstore::Result<u64> {
        let _ = store;
        Ok(0)
    }
}
