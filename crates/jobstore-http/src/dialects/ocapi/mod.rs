//! B2C Commerce OCAPI Data API job executions, 17.4 and every later version: the vendor's
//! paths (`/dw/data/v{major}_{minor}/...`, also under `/s/-`), its `job_execution` and
//! `job_step_execution` documents (`wire`), its `job_execution_search` (`search`), and its
//! fault document `{"_v", "fault": {"arguments", "type", "message"}}` for every error, 401 and
//! 403 included (`faults`).
//!
//! A job is an execution of a job definition (native `PUT /v1/definitions/{id}`): executing
//! creates an ordinary job through [`jobstore::Store::execute`], labelled `ocapi`, which
//! workers claim and report on with the native worker calls. This API parses the vendor's
//! requests, makes the store calls and renders the vendor's shapes; it owns no SQL, no table
//! and no state logic. `docs/dialect-ocapi.md` lists what is supported and every choice made.

mod faults;
mod search;
mod wire;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use jobstore::Execution;

use self::faults::Fault;
use crate::api::{Answering, Api};
use crate::app::App;
use crate::auth::{Permission, Principal};
use crate::body::{self, ResponseBody};
use crate::fault::{ApiError, ErrorKind};
use crate::query::{Query, choose};
use crate::router::{self, Matched, Miss, Route};

/// The API's name, and the label of the jobs it creates.
const NAME: &str = "ocapi";

/// The first version served, `(major, minor)`; also the `_v` of faults about a version that
/// is not served.
const FIRST: (u32, u32) = (17, 4);

/// The OCAPI job executions API. It has no settings of its own: an execution runs on the
/// queue its definition was stored with.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ocapi;

/// The routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Executions,
    Execution,
    Search,
}

/// Every route, below the optional `/s/-` prefix. The version is validated before routing.
static ROUTES: [Route<Name>; 3] = [
    Route::new(
        "/dw/data/{version}/jobs/{job_id}/executions",
        &[Method::POST],
        Name::Executions,
    ),
    Route::new(
        "/dw/data/{version}/jobs/{job_id}/executions/{id}",
        &[Method::GET, Method::DELETE],
        Name::Execution,
    ),
    Route::new(
        "/dw/data/{version}/job_execution_search",
        &[Method::POST],
        Name::Search,
    ),
];

/// `path` without the `/s/-` prefix real hosts use.
fn without_site(path: &str) -> &str {
    path.strip_prefix("/s/-").unwrap_or(path)
}

/// The vendor's resource template of a route (fault messages): the part after the version.
fn resource(template: &str) -> &str {
    template
        .strip_prefix("/dw/data/{version}")
        .unwrap_or(template)
}

impl Api for Ocapi {
    fn name(&self) -> &'static str {
        NAME
    }

    fn owns(&self, path: &str) -> bool {
        router::under(without_site(path), "/dw/data")
    }

    fn template(&self, path: &str) -> Option<&'static str> {
        router::template_of(&ROUTES, without_site(path))
    }

    fn routes(&self) -> Vec<(&'static str, &'static [Method])> {
        router::listing(&ROUTES)
    }

    fn handle<'a>(&'a self, app: &'a App, request: Request<Incoming>) -> Answering<'a> {
        Box::pin(async move {
            let mut response = match version(without_site(request.uri().path())) {
                Ok(v) => answer(app, &v, request)
                    .await
                    .unwrap_or_else(|fault| fault.render(&v)),
                Err(fault) => fault.render(&format!("{}.{}", FIRST.0, FIRST.1)),
            };
            wire::vendor_headers(&mut response);
            response
        })
    }
}

/// The `_v` (`19.5`) of a Data API path (`/dw/data/v19_5/...`): digits only, from 17.4 on.
fn version(path: &str) -> Result<String, Fault> {
    let segment = path.split('/').nth(3).unwrap_or_default();
    let segment = router::percent_decode(segment).unwrap_or_default();
    match router::version(&segment, '_', 4, 4) {
        Some((major, minor)) if (major, minor) >= FIRST => Ok(format!("{major}.{minor}")),
        _ => Err(faults::invalid_version(&segment)),
    }
}

type Answer = Result<Response<ResponseBody>, Fault>;

async fn answer(app: &App, v: &str, request: Request<Incoming>) -> Answer {
    let path = request.uri().path();
    // Before routing: a caller without a valid token learns nothing about the routes.
    let principal = authenticate(app, &request)?;
    let tunnelled = overridden(&request)?;
    let head_by_post = tunnelled == Some(Method::HEAD);
    let method = tunnelled.unwrap_or_else(|| request.method().clone());
    let matched = router::resolve(&ROUTES, &method, without_site(path)).map_err(|miss| {
        let Miss::MethodNotAllowed(allow) = miss else {
            return faults::unknown_resource(path);
        };
        let template = router::template_of(&ROUTES, without_site(path)).unwrap_or_default();
        Fault::from(ApiError::method_not_allowed(&method, path, allow))
            .says(format!(
                "Method '{method}' is not allowed for resource '{}'.",
                resource(template)
            ))
            .arg("method", method.as_str())
    })?;
    // A search is a POST that only reads.
    let permission = match matched.route.name {
        Name::Search => Permission::Read,
        _ => Permission::of_method(&method),
    };
    principal.require(permission).map_err(|err| {
        let template = resource(matched.route.path);
        let message = format!(
            "Access to resource '{method} {template}' is not allowed for the current client \
             ({}).",
            err.message
        );
        Fault::from(err)
            .says(message)
            .arg("method", method.as_str())
            .arg("path", template)
    })?;
    json_only(&request)?;
    let answered = match matched.route.name {
        Name::Executions => execute(app, &principal, v, &matched, request).await,
        Name::Execution => {
            // A DELETE names the resource state it expects, if any (a value that is not text
            // names no state an execution has).
            let asked = if method == Method::DELETE {
                let expected = request.headers().get(RESOURCE_STATE);
                Asked::Delete(expected.map(|v| String::from_utf8_lossy(v.as_bytes()).into()))
            } else {
                Asked::Read { head: matched.head }
            };
            execution(app, &principal, v, &matched, asked).await
        }
        Name::Search => search::search(app, &principal, v, request).await,
    }?;
    // A HEAD asked by a POST: hyper sends the body of an answer to a POST.
    Ok(if head_by_post {
        let (parts, _) = answered.into_parts();
        Response::from_parts(parts, body::empty(StatusCode::OK).into_body())
    } else {
        answered
    })
}

/// Refuses a request for the vendor's XML format (documented as a format, never shown):
/// an XML body (`application/xml`, `text/xml`), or, unless a POST sends JSON (the content
/// type has precedence), a `format` other than `json`.
fn json_only(request: &Request<Incoming>) -> Result<(), Fault> {
    match body::media_type(request.headers()).as_deref() {
        Some(xml @ ("application/xml" | "text/xml")) => {
            return Err(faults::unsupported_format(xml));
        }
        Some("application/json") if request.method() == Method::POST => return Ok(()),
        _ => {}
    }
    match Query::parse(request.uri().query())?.all("format").pop() {
        Some(format) if !format.is_empty() && !format.eq_ignore_ascii_case("json") => {
            Err(faults::unsupported_format(&format))
        }
        _ => Ok(()),
    }
}

/// The vendor's method override header.
const METHOD_OVERRIDE: &str = "x-dw-http-method-override";

/// The methods the vendor takes as an override.
const OVERRIDES: [Method; 5] = [
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

/// The method a POST asks for with [`METHOD_OVERRIDE`], or else with the `method` query
/// parameter; `None` when it asks for none (other methods are never overridden).
fn overridden(request: &Request<Incoming>) -> Result<Option<Method>, Fault> {
    if request.method() != Method::POST {
        return Ok(None);
    }
    let asked = match request.headers().get(METHOD_OVERRIDE) {
        Some(value) => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        None => match Query::parse(request.uri().query())?.all("method").pop() {
            Some(value) => value,
            None => return Ok(None),
        },
    };
    OVERRIDES
        .iter()
        .find(|method| method.as_str().eq_ignore_ascii_case(asked.trim()))
        .cloned()
        .map(Some)
        .ok_or_else(|| faults::illegal_override(&asked))
}

/// The caller, or the vendor's 401 (which says whether the token was missing or unknown).
fn authenticate(app: &App, request: &Request<Incoming>) -> Result<Principal, Fault> {
    app.authenticate(request).map_err(|err| {
        let unauthorized = err.kind == ErrorKind::Unauthorized;
        let fault = Fault::from(err);
        if !unauthorized {
            fault
        } else if request.headers().contains_key(header::AUTHORIZATION) {
            fault
                .typed("InvalidAccessTokenException")
                .says("The request is unauthorized, the access token is invalid.")
        } else {
            fault.says(
                "The request is unauthorized: the 'Authorization: Bearer <token>' header is \
                 missing.",
            )
        }
    })
}

/// `POST .../jobs/{job_id}/executions[?restart=true]`.
async fn execute(
    app: &App,
    principal: &Principal,
    v: &str,
    matched: &Matched<Name>,
    request: Request<Incoming>,
) -> Answer {
    let restart = restart_flag(request.uri().query())?;
    let execution = Execution {
        restart,
        payload: wire::execution_payload(app.json_body(request).await?)?,
        created_by: principal.name.clone(),
        dialect: Some(NAME.to_owned()),
    };
    let job_id = matched.params.text("job_id").to_owned();
    let definition = job_id.clone();
    let outcome = app
        .call(principal, move |store| {
            Ok(store
                .execute(&definition, execution)
                .and_then(|job| wire::view(&store, job)))
        })
        .await?;
    let view = outcome.map_err(|err| faults::about_job(&job_id, err))?;
    Ok(body::json(
        StatusCode::OK,
        &wire::job_execution(&view, Some(v)),
    ))
}

/// `restart` of the query: `true` or `false`, the last one given; other parameters are
/// ignored, as the vendor ignores what it does not know (`client_id`, `format`).
fn restart_flag(raw: Option<&str>) -> Result<bool, Fault> {
    let Some(value) = Query::parse(raw)?.all("restart").pop() else {
        return Ok(false);
    };
    choose("restart", &value, &[("true", true), ("false", false)]).map_err(|err| {
        Fault::from(err)
            .arg("parameter", "restart")
            .arg("value", value)
    })
}

/// The request header naming the resource state a client expects (optimistic locking).
const RESOURCE_STATE: &str = "x-dw-resource-state";

/// What a request asks of one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Asked {
    /// Its document; a HEAD also answers its resource state in [`RESOURCE_STATE`].
    Read { head: bool },
    /// Its deletion, if its resource state is the one given (when one is).
    Delete(Option<String>),
}

/// What became of the execution asked for.
enum Outcome {
    Read(Box<wire::ExecutionView>),
    Deleted,
    /// Not deleted: its resource state is not the one the client named.
    Stale,
}

/// `GET`, `HEAD` and `DELETE .../jobs/{job_id}/executions/{id}`. Only a finished (or
/// aborted) execution is deleted; the core refuses the others, and nothing changes. A DELETE
/// naming a resource state deletes only the execution in that state (the `_resource_state`
/// a read answers): a terminal execution no longer changes, so the state read is the state
/// deleted.
async fn execution(
    app: &App,
    principal: &Principal,
    v: &str,
    matched: &Matched<Name>,
    asked: Asked,
) -> Answer {
    let text = matched.params.text("id");
    let id = crate::router::parse_id(text).ok_or_else(|| faults::execution_not_found(text))?;
    let job_id = matched.params.text("job_id").to_owned();
    let head = asked == Asked::Read { head: true };
    let outcome = app
        .call(principal, move |store| {
            let job = wire::execution(&store, &job_id, id)?;
            match asked {
                Asked::Read { .. } => {
                    wire::view(&store, job).map(|view| Outcome::Read(Box::new(view)))
                }
                Asked::Delete(Some(expected))
                    if wire::view(&store, job)?.resource_state() != expected =>
                {
                    Ok(Outcome::Stale)
                }
                Asked::Delete(_) => store.delete(id).map(|()| Outcome::Deleted),
            }
        })
        .await
        .map_err(|err| faults::about_execution(text, err))?;
    match outcome {
        Outcome::Read(view) => {
            let mut response = body::json(StatusCode::OK, &wire::job_execution(&view, Some(v)));
            if head {
                body::set_header(&mut response, RESOURCE_STATE, &view.resource_state());
            }
            Ok(response)
        }
        Outcome::Deleted => Ok(body::empty(StatusCode::NO_CONTENT)),
        Outcome::Stale => Err(faults::resource_state_conflict(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_served_from_17_4_on_and_answered_with_a_dot() {
        for (path, v) in [
            ("/dw/data/v17_4/jobs", "17.4"),
            ("/dw/data/v19_5", "19.5"),
            ("/dw/data/v17_10/", "17.10"),
            ("/dw/data/v25_6/job_execution_search", "25.6"),
        ] {
            assert_eq!(version(path).ok().as_deref(), Some(v), "{path}");
        }
        for bad in [
            "19_5", "v19", "v19_", "v_5", "v19_5a", "v+1_2", "v12345_1", "v17_3", "v16_9", "",
        ] {
            assert!(version(&format!("/dw/data/{bad}/jobs")).is_err(), "{bad}");
        }
        assert!(version("/dw/data").is_err());
    }

    #[test]
    fn paths_are_owned_with_prefix_and_trailing_slash() {
        let path = "/s/-/dw/data/v19_5/jobs/My%20Job/executions/12/";
        let owned = [
            ("/dw/data/v17_4/jobs/a/executions", Some(ROUTES[0].path)),
            ("/dw/data/v17_4/jobs/a/executions/", Some(ROUTES[0].path)),
            (
                "/s/-/dw/data/v19_5/jobs/a/executions/7",
                Some(ROUTES[1].path),
            ),
            (
                "/s/-/dw/data/v19_5/job_execution_search/",
                Some(ROUTES[2].path),
            ),
            ("/dw/data", None),
            ("/dw/data/", None),
            (
                path,
                Some("/dw/data/{version}/jobs/{job_id}/executions/{id}"),
            ),
        ];
        let foreign = [
            "/dw/database",
            "/s/site/dw/data/v19_5/jobs",
            "/v1/jobs",
            "/data/core",
        ];
        crate::testing::routes(&Ocapi, &owned, &foreign);
        let matched = router::resolve(&ROUTES, &Method::GET, without_site(path)).ok();
        assert!(matched.is_some_and(|m| m.route.name == Name::Execution
            && m.params.text("job_id") == "My Job"
            && m.params.id("id") == Some(12)));
    }

    #[test]
    fn restart_is_true_or_false_and_other_parameters_are_ignored() {
        let flag = |raw| restart_flag(Some(raw)).ok();
        assert_eq!(restart_flag(None).ok(), Some(false));
        assert_eq!(flag("restart=true&format=json"), Some(true));
        assert_eq!(flag("restart=true&restart=false"), Some(false));
        for bad in ["restart=maybe", "restart=", "restart=%zz"] {
            assert_eq!(flag(bad), None, "{bad}");
        }
    }
}
