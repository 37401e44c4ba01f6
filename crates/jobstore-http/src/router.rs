//! Route tables: every API declares its routes as a table of path templates with their
//! methods, and [`resolve`] matches a request against it. The 404, the 405 with its `Allow`
//! list, HEAD on every GET route (RFC 9110 §9.1), one trailing slash, percent-decoding and
//! the rule for ids come from here, the same for every API.

use http::Method;

use crate::fault::{ApiError, ErrorKind};

/// One route: a path template (`/v1/jobs/{id}/data`), the methods it serves and the name the
/// API dispatches on.
#[derive(Debug)]
pub(crate) struct Route<R: 'static> {
    /// The template: literal segments and `{name}` parameters, each one whole segment.
    pub path: &'static str,
    /// The methods served (HEAD is implied by GET).
    pub methods: &'static [Method],
    /// What the API calls the route.
    pub name: R,
}

impl<R> Route<R> {
    /// A route serving `methods` on `path`, called `name` by its API.
    pub(crate) const fn new(path: &'static str, methods: &'static [Method], name: R) -> Route<R> {
        Route {
            path,
            methods,
            name,
        }
    }
}

/// The route names of an API serving a collection of jobs and each job in it, and nothing
/// else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobRoutes {
    /// The collection.
    Jobs,
    /// One job.
    Job,
}

/// A request matched to a route.
#[derive(Debug)]
pub(crate) struct Matched<R: 'static> {
    /// The route.
    pub route: &'static Route<R>,
    /// Its parameters, decoded.
    pub params: Params,
    /// Whether the request was a HEAD served as its GET (the body is not sent).
    pub head: bool,
}

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No template matches the path.
    NotFound,
    /// A template matches, with other methods: the `Allow` value.
    MethodNotAllowed(String),
}

impl Miss {
    /// The refusal in the native wording (`no route for …`, `… is not allowed on …` with the
    /// `Allow` list); an API that words it otherwise replaces the message.
    pub(crate) fn error(self, method: &Method, path: &str) -> ApiError {
        match self {
            Miss::NotFound => ApiError::no_route(path),
            Miss::MethodNotAllowed(allow) => ApiError::method_not_allowed(method, path, allow),
        }
    }
}

/// Whether `path` is `prefix` or below it, in whole segments: an API owns a whole prefix
/// (`/a/b` owns `/a/b` and `/a/b/c`, not `/a/bc`).
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The decoded path parameters of a match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The parameter's text (empty when the template has no such parameter).
    pub(crate) fn text(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    /// The parameter as a job id: digits only, 1 or more. `None` names no job: an API answers
    /// it as it answers an unknown id.
    pub(crate) fn id(&self, name: &str) -> Option<i64> {
        parse_id(self.text(name))
    }

    /// The parameter as a job id, or the 404 of a job not found: text that cannot be an id
    /// names no job, and is answered as an unknown id is.
    pub(crate) fn job_id(&self, name: &str) -> Result<i64, ApiError> {
        self.id(name).ok_or_else(|| {
            let text = self.text(name);
            ApiError::new(ErrorKind::JobNotFound, format!("job {text} not found"))
        })
    }
}

/// A job id as it appears in a path or a query: a positive `i64` in canonical decimal (ASCII
/// digits, no sign, no leading zero), so that one job has exactly one id text in every API.
pub(crate) fn parse_id(text: &str) -> Option<i64> {
    if text.starts_with('0') || text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok().filter(|id| *id > 0)
}

/// The `(major, minor)` of an API version path segment `v{major}{separator}{minor}` (`v19_5`,
/// `v58.0`), each ASCII digits only, 1 to `major_digits` and 1 to `minor_digits` of them.
pub(crate) fn version(
    segment: &str,
    separator: char,
    major_digits: usize,
    minor_digits: usize,
) -> Option<(u32, u32)> {
    let (major, minor) = segment.strip_prefix('v')?.split_once(separator)?;
    let number = |text: &str, most: usize| {
        let digits = (1..=most).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
        digits.then(|| text.parse().ok()).flatten()
    };
    Some((number(major, major_digits)?, number(minor, minor_digits)?))
}

/// Matches `path` and `method` against `table`. A HEAD is matched as a GET.
///
/// # Errors
/// [`Miss::NotFound`] when no template matches (a malformed escape included),
/// [`Miss::MethodNotAllowed`] with the `Allow` list when one does with other methods.
pub(crate) fn resolve<R>(
    table: &'static [Route<R>],
    method: &Method,
    path: &str,
) -> Result<Matched<R>, Miss> {
    let segments = split(path).ok_or(Miss::NotFound)?;
    let mut allowed: Option<&'static [Method]> = None;
    for route in table {
        let Some(params) = match_template(route.path, &segments) else {
            continue;
        };
        let head = *method == Method::HEAD && route.methods.contains(&Method::GET);
        if head || route.methods.contains(method) {
            return Ok(Matched {
                route,
                params,
                head,
            });
        }
        allowed.get_or_insert(route.methods);
    }
    match allowed {
        Some(methods) => Err(Miss::MethodNotAllowed(allow_header(methods))),
        None => Err(Miss::NotFound),
    }
}

/// [`resolve`] for a request: a HEAD that matches a GET route becomes that GET (hyper sends
/// no body in answer to a HEAD, keeping the GET's `Content-Length`), so that handlers only
/// ever see the methods of their table.
///
/// # Errors
/// As [`resolve`].
pub(crate) fn route<R, B>(
    table: &'static [Route<R>],
    request: &mut http::Request<B>,
) -> Result<Matched<R>, Miss> {
    let matched = resolve(table, request.method(), request.uri().path())?;
    if matched.head {
        *request.method_mut() = Method::GET;
    }
    Ok(matched)
}

/// The `Allow` value for `methods`: HEAD follows GET.
pub(crate) fn allow_header(methods: &[Method]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for method in methods {
        names.push(method.as_str());
        if *method == Method::GET {
            names.push("HEAD");
        }
    }
    names.join(", ")
}

/// The templates and methods of `table` (what [`crate::Api::routes`] answers).
pub(crate) fn listing<R>(table: &'static [Route<R>]) -> Vec<(&'static str, &'static [Method])> {
    table
        .iter()
        .map(|route| (route.path, route.methods))
        .collect()
}

/// The template of the route `path` would match, whatever the method: a metrics label.
pub(crate) fn template_of<R>(table: &'static [Route<R>], path: &str) -> Option<&'static str> {
    let segments = split(path)?;
    table
        .iter()
        .find(|route| match_template(route.path, &segments).is_some())
        .map(|route| route.path)
}

/// The decoded segments of a path without one trailing slash; `None` for a malformed escape.
fn split(path: &str) -> Option<Vec<String>> {
    let trimmed = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    trimmed.split('/').skip(1).map(percent_decode).collect()
}

fn match_template(template: &'static str, segments: &[String]) -> Option<Params> {
    let mut params = Vec::new();
    let mut parts = template.split('/').skip(1);
    for segment in segments {
        let part = parts.next()?;
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => params.push((name, segment.clone())),
            Some(_) => return None,
            None if part == segment => {}
            None => return None,
        }
    }
    parts.next().is_none().then_some(Params(params))
}

/// Decodes `%XX` escapes; `None` for a malformed escape or text that is not UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Name {
        Jobs,
        Job,
        Data,
    }

    static TABLE: [Route<Name>; 3] = [
        Route {
            path: "/v1/jobs",
            methods: &[Method::GET, Method::POST],
            name: Name::Jobs,
        },
        Route {
            path: "/v1/jobs/{id}",
            methods: &[Method::GET, Method::DELETE],
            name: Name::Job,
        },
        Route {
            path: "/v1/jobs/{id}/data",
            methods: &[Method::PUT],
            name: Name::Data,
        },
    ];

    fn name(method: &Method, path: &str) -> Result<Name, Miss> {
        resolve(&TABLE, method, path).map(|m| m.route.name)
    }

    #[test]
    fn templates_match_with_or_without_one_trailing_slash() {
        assert_eq!(name(&Method::GET, "/v1/jobs"), Ok(Name::Jobs));
        assert_eq!(name(&Method::GET, "/v1/jobs/"), Ok(Name::Jobs));
        assert_eq!(name(&Method::PUT, "/v1/jobs/7/data/"), Ok(Name::Data));
        assert_eq!(name(&Method::GET, "/v1/jobs//"), Err(Miss::NotFound));
        assert_eq!(name(&Method::GET, "/v1/jobs/7/x"), Err(Miss::NotFound));
        assert_eq!(name(&Method::GET, "/v1"), Err(Miss::NotFound));
        assert_eq!(name(&Method::GET, "/v1/jobs/%zz"), Err(Miss::NotFound));
    }

    #[test]
    fn head_is_get_and_405_lists_the_methods() {
        let matched = resolve(&TABLE, &Method::HEAD, "/v1/jobs/3").unwrap();
        assert!(matched.head);
        assert_eq!(matched.params.id("id"), Some(3));
        assert_eq!(
            name(&Method::PATCH, "/v1/jobs/3"),
            Err(Miss::MethodNotAllowed("GET, HEAD, DELETE".into()))
        );
        assert_eq!(
            name(&Method::HEAD, "/v1/jobs/3/data"),
            Err(Miss::MethodNotAllowed("PUT".into()))
        );
    }

    #[test]
    fn ids_are_positive_digits_only() {
        for (text, id) in [
            ("1", Some(1)),
            ("0042", None),
            ("0", None),
            ("-1", None),
            ("+1", None),
            ("1e3", None),
            ("99999999999999999999", None),
            ("", None),
        ] {
            assert_eq!(parse_id(text), id, "{text}");
        }
        let matched = resolve(&TABLE, &Method::GET, "/v1/jobs/a%20b").unwrap();
        assert_eq!(matched.params.text("id"), "a b");
        assert_eq!(matched.params.id("id"), None);
        assert_eq!(version("v19_5", '_', 4, 4), Some((19, 5)));
        assert_eq!(version("v58.0", '.', 3, 1), Some((58, 0)));
        for bad in [
            "19_5", "v19", "v_5", "v19_", "v19_5a", "v+1_2", "v12345_1", "v1_2_3",
        ] {
            assert_eq!(version(bad, '_', 4, 4), None, "{bad}");
        }
        let refused = matched.params.job_id("id").unwrap_err();
        assert_eq!(
            (refused.kind, refused.message.as_str()),
            (ErrorKind::JobNotFound, "job a b not found")
        );
    }
}
