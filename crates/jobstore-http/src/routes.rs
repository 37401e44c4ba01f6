//! The native route table and a plain `match` router over path segments. The same table
//! feeds the OpenAPI document, so the document lists exactly the routes that are served.

use http::Method;

/// A resolved route with its path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `GET /healthz`
    Health,
    /// `GET /metrics`
    Metrics,
    /// `GET /v1/openapi.json`
    OpenApi,
    /// `GET /v1/stats`
    Stats,
    /// `GET|POST /v1/jobs`
    Jobs,
    /// `GET|DELETE /v1/jobs/{id}`
    Job(i64),
    /// `POST /v1/jobs/{id}/{action}`
    JobAction(i64, JobAction),
    /// `GET|PUT /v1/jobs/{id}/data`
    JobData(i64),
    /// `GET|POST /v1/jobs/{id}/logs`
    JobLogs(i64),
    /// `GET /v1/jobs/{id}/events`
    JobEvents(i64),
    /// `POST /v1/jobs/{id}/steps/{step}`
    JobStep(i64, String),
    /// `GET /v1/definitions`
    Definitions,
    /// `GET|PUT /v1/definitions/{id}`
    Definition(String),
    /// `POST /v1/definitions/{id}/executions`
    Executions(String),
    /// `POST /v1/claim`
    Claim,
}

/// The `POST /v1/jobs/{id}/...` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobAction {
    /// Cancel (cooperative when running).
    Cancel,
    /// Restart a failed or cancelled job.
    Restart,
    /// Close the upload phase.
    Close,
    /// Worker heartbeat.
    Heartbeat,
    /// Worker completes.
    Complete,
    /// Worker fails.
    Fail,
}

/// Every route: its path template, its methods and a one-line summary per method.
pub const ROUTES: &[(&str, &[(&str, &str)])] = &[
    ("/healthz", &[("GET", "liveness (no authentication)")]),
    ("/metrics", &[("GET", "Prometheus metrics")]),
    ("/v1/openapi.json", &[("GET", "this document")]),
    ("/v1/stats", &[("GET", "job counts by queue and state")]),
    (
        "/v1/jobs",
        &[("GET", "list jobs"), ("POST", "create a job")],
    ),
    (
        "/v1/jobs/{id}",
        &[
            ("GET", "one job with its steps and counters"),
            ("DELETE", "delete a finished job"),
        ],
    ),
    (
        "/v1/jobs/{id}/cancel",
        &[("POST", "cancel (cooperative when running)")],
    ),
    (
        "/v1/jobs/{id}/restart",
        &[("POST", "restart a failed or cancelled job")],
    ),
    ("/v1/jobs/{id}/close", &[("POST", "close the upload phase")]),
    (
        "/v1/jobs/{id}/data",
        &[
            ("GET", "all data batches in order"),
            ("PUT", "append a data batch (streamed)"),
        ],
    ),
    (
        "/v1/jobs/{id}/logs",
        &[("GET", "the log as text"), ("POST", "append log lines")],
    ),
    ("/v1/jobs/{id}/events", &[("GET", "the transition history")]),
    ("/v1/jobs/{id}/heartbeat", &[("POST", "worker heartbeat")]),
    (
        "/v1/jobs/{id}/steps/{step}",
        &[("POST", "worker step start or finish")],
    ),
    (
        "/v1/jobs/{id}/complete",
        &[("POST", "worker completes the job")],
    ),
    (
        "/v1/jobs/{id}/fail",
        &[("POST", "worker fails the attempt")],
    ),
    ("/v1/definitions", &[("GET", "list job definitions")]),
    (
        "/v1/definitions/{id}",
        &[
            ("GET", "one job definition"),
            ("PUT", "create or replace a job definition"),
        ],
    ),
    (
        "/v1/definitions/{id}/executions",
        &[("POST", "execute a job definition")],
    ),
    ("/v1/claim", &[("POST", "lease jobs (long poll)")]),
];

/// A path resolved against the route table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The route with its parameters.
    pub route: Route,
    /// The route's path template (a metrics label).
    pub template: &'static str,
    /// The methods it allows, with their summaries.
    pub methods: &'static [(&'static str, &'static str)],
}

/// Resolves a path to a route and the methods it allows. `None`: no such route.
pub fn resolve(path: &str) -> Option<Resolved> {
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<String> = trimmed
        .split('/')
        .skip(1)
        .map(percent_decode)
        .collect::<Option<Vec<_>>>()?;
    let parts: Vec<&str> = segments.iter().map(String::as_str).collect();
    let id = |text: &str| text.parse::<i64>().ok();
    let (route, template) = match parts.as_slice() {
        ["healthz"] => (Route::Health, "/healthz"),
        ["metrics"] => (Route::Metrics, "/metrics"),
        ["v1", "openapi.json"] => (Route::OpenApi, "/v1/openapi.json"),
        ["v1", "stats"] => (Route::Stats, "/v1/stats"),
        ["v1", "jobs"] => (Route::Jobs, "/v1/jobs"),
        // A job id that is not a number names no job: the same 404 as an unknown id.
        ["v1", "jobs", job] => (Route::Job(id(job).unwrap_or(0)), "/v1/jobs/{id}"),
        ["v1", "jobs", job, action] => {
            let job = id(job).unwrap_or(0);
            match *action {
                "cancel" => (
                    Route::JobAction(job, JobAction::Cancel),
                    "/v1/jobs/{id}/cancel",
                ),
                "restart" => (
                    Route::JobAction(job, JobAction::Restart),
                    "/v1/jobs/{id}/restart",
                ),
                "close" => (
                    Route::JobAction(job, JobAction::Close),
                    "/v1/jobs/{id}/close",
                ),
                "heartbeat" => (
                    Route::JobAction(job, JobAction::Heartbeat),
                    "/v1/jobs/{id}/heartbeat",
                ),
                "complete" => (
                    Route::JobAction(job, JobAction::Complete),
                    "/v1/jobs/{id}/complete",
                ),
                "fail" => (Route::JobAction(job, JobAction::Fail), "/v1/jobs/{id}/fail"),
                "data" => (Route::JobData(job), "/v1/jobs/{id}/data"),
                "logs" => (Route::JobLogs(job), "/v1/jobs/{id}/logs"),
                "events" => (Route::JobEvents(job), "/v1/jobs/{id}/events"),
                _ => return None,
            }
        }
        ["v1", "jobs", job, "steps", step] => (
            Route::JobStep(id(job).unwrap_or(0), (*step).to_owned()),
            "/v1/jobs/{id}/steps/{step}",
        ),
        ["v1", "definitions"] => (Route::Definitions, "/v1/definitions"),
        ["v1", "definitions", def] => {
            (Route::Definition((*def).to_owned()), "/v1/definitions/{id}")
        }
        ["v1", "definitions", def, "executions"] => (
            Route::Executions((*def).to_owned()),
            "/v1/definitions/{id}/executions",
        ),
        ["v1", "claim"] => (Route::Claim, "/v1/claim"),
        _ => return None,
    };
    let methods = ROUTES
        .iter()
        .find(|(path, _)| *path == template)
        .map_or(&[][..], |(_, methods)| *methods);
    Some(Resolved {
        route,
        template,
        methods,
    })
}

/// Whether `method` is one of `allowed`.
pub fn allows(allowed: &[(&str, &str)], method: &Method) -> bool {
    allowed.iter().any(|(m, _)| *m == method.as_str())
}

/// Decodes `%XX` escapes; `None` for a malformed escape or text that is not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query string as decoded pairs (`+` is a space).
pub fn query_pairs(query: Option<&str>) -> Option<Vec<(String, String)>> {
    let Some(query) = query else {
        return Some(Vec::new());
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                percent_decode(&key.replace('+', " "))?,
                percent_decode(&value.replace('+', " "))?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the table resolves, with and without a trailing slash, and allows
    /// exactly the methods the table (and so the OpenAPI document) lists.
    #[test]
    fn every_route_in_the_table_is_served() {
        for (template, methods) in ROUTES {
            let path = template.replace("{id}", "7").replace("{step}", "s1");
            for candidate in [path.clone(), format!("{path}/")] {
                let resolved = resolve(&candidate).unwrap_or_else(|| panic!("{candidate}"));
                assert_eq!(resolved.methods, *methods, "{candidate}");
                assert_eq!(resolved.template, *template);
            }
        }
    }

    #[test]
    fn unknown_paths_and_bad_escapes_resolve_to_nothing() {
        for path in [
            "/",
            "/v2/jobs",
            "/v1/jobs/1/explode",
            "/v1/definitions/%zz",
            "/v1/jobs/1/steps",
        ] {
            assert!(resolve(path).is_none(), "{path}");
        }
        assert_eq!(
            resolve("/v1/definitions/a%20b").map(|r| r.route),
            Some(Route::Definition("a b".into()))
        );
    }

    #[test]
    fn queries_decode() {
        let pairs = query_pairs(Some("state=queued&state=failed&kind=a%2Bb&q=x+y&flag")).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("state".into(), "queued".into()),
                ("state".into(), "failed".into()),
                ("kind".into(), "a+b".into()),
                ("q".into(), "x y".into()),
                ("flag".into(), String::new()),
            ]
        );
    }
}
