//! The seam through which the server finds the APIs: each API (the native one and every
//! vendor's) is a value of a type implementing [`Api`], holding its own settings. The server
//! offers a request's path to each in turn; the one that owns it answers every request under
//! it, faults included, in its own shape.
//!
//! Most APIs are [`Routed`]: they declare their route table, their prefix and their faults,
//! and the skeleton does the rest of [`Api`] for them: matching, 404 and 405, HEAD,
//! authentication and the rendering of every fault.

use std::future::Future;
use std::pin::Pin;

use http::{Method, Request, Response};
use hyper::body::Incoming;
use jobstore::Store;

use crate::app::App;
use crate::auth::{Permission, Principal};
use crate::body::ResponseBody;
use crate::fault::{ApiError, Faults};
use crate::router::{self, Matched, Miss, Route};

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

/// A handler's answer: the response, or the fault its API renders.
pub(crate) type Answer = Result<Response<ResponseBody>, ApiError>;

/// An API the skeleton serves from its route table. For every request under its prefix the
/// skeleton matches the route (404, 405 with `Allow`, HEAD as GET), lets the API
/// [`admit`](Routed::admit) the match, authenticates the caller (401, 429), checks the scope
/// the method needs ([`Permission::of_method`], 403), hands the matched request to
/// [`Routed::answer`], renders a fault through the API's [`Faults`] and lets the API
/// [`finish`](Routed::finish) the response.
pub(crate) trait Routed: Faults + Send + Sync + 'static {
    /// What the API calls its routes.
    type Name: Send + Sync + 'static;

    /// The API's name ([`Api::name`]).
    const NAME: &'static str;

    /// The prefix every path of the API starts with: the API owns it, with everything below
    /// it ([`router::under`]), unless it owns less ([`Routed::owns_path`]).
    const PREFIX: &'static str;

    /// The route table.
    const ROUTES: &'static [Route<Self::Name>];

    /// Whether `path` is the API's ([`Api::owns`]): [`Routed::PREFIX`] and everything below
    /// it unless the API owns only some of the paths under its prefix.
    fn owns_path(&self, path: &str) -> bool {
        router::under(path, Self::PREFIX)
    }

    /// The refusal of a request that matched no route: the native wording unless the API
    /// words it as its vendor does.
    fn miss(&self, miss: Miss, method: &Method, path: &str) -> ApiError {
        miss.error(method, path)
    }

    /// Refuses a matched request before its caller is authenticated, as a path that matches
    /// no route is refused: a path parameter the API does not serve (an API version it does
    /// not have). Every match passes by default.
    fn admit(&self, matched: &Matched<Self::Name>) -> Result<(), ApiError> {
        let _ = matched;
        Ok(())
    }

    /// Answers a request matched to a route, from an authenticated caller with the scope its
    /// method needs.
    fn answer(
        &self,
        app: &App,
        principal: &Principal,
        matched: Matched<Self::Name>,
        request: Request<Incoming>,
    ) -> impl Future<Output = Answer> + Send;

    /// What the API adds to every response, faults included (nothing by default).
    fn finish(&self, response: &mut Response<ResponseBody>) {
        let _ = response;
    }

    /// The API's periodic maintenance ([`Api::maintain`]; none by default).
    ///
    /// # Errors
    /// A store error; the next tick tries again.
    fn maintain(&self, store: &Store) -> jobstore::Result<u64> {
        let _ = store;
        Ok(0)
    }
}

impl<T: Routed> Api for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn owns(&self, path: &str) -> bool {
        self.owns_path(path)
    }

    fn template(&self, path: &str) -> Option<&'static str> {
        router::template_of(Self::ROUTES, path)
    }

    fn routes(&self) -> Vec<(&'static str, &'static [Method])> {
        router::listing(Self::ROUTES)
    }

    fn handle<'a>(&'a self, app: &'a App, mut request: Request<Incoming>) -> Answering<'a> {
        Box::pin(async move {
            let answered = async {
                let matched = router::route(Self::ROUTES, &mut request)
                    .map_err(|miss| self.miss(miss, request.method(), request.uri().path()))?;
                self.admit(&matched)?;
                let principal = app.authenticate(&request)?;
                principal.require(Permission::of_method(request.method()))?;
                self.answer(app, &principal, matched, request).await
            };
            let mut response = answered.await.unwrap_or_else(|err| self.render(&err));
            self.finish(&mut response);
            response
        })
    }

    fn maintain(&self, store: &Store) -> jobstore::Result<u64> {
        Routed::maintain(self, store)
    }
}
