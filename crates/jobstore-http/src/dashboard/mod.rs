//! The web dashboard at `/ui/` (`/` redirects there): one page, its script and its styles,
//! embedded in the binary (`assets/`), with no build step and nothing fetched from elsewhere.
//! It is an [`Api`] like the others: a route table, a handler, the native fault shape.
//!
//! The files are public (they hold no data); the page reads and acts through the native API
//! (`/v1/...`) with the token the operator types in, kept in the tab's `sessionStorage` and
//! sent as `Authorization: Bearer` by the script. No cookie: a request another site makes a
//! browser send carries no credential. Every answer here carries a Content-Security-Policy
//! that allows only this origin's scripts, styles and connections (no inline script, no
//! framing), and `X-Content-Type-Options: nosniff`; the script writes job data into the page
//! as text only (`textContent`), never as HTML.

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;

use crate::api::{Answering, Api};
use crate::app::App;
use crate::body::{self, ResponseBody};
use crate::fault::ApiError;
use crate::router::{self, Route};

/// Where the dashboard lives.
pub(crate) const HOME: &str = "/ui/";

/// The dashboard's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    /// `/`: a redirect to [`HOME`].
    Root,
    /// The page.
    Page,
    /// A script, a style sheet or an icon.
    Asset,
}

const GET: &[Method] = &[Method::GET];

/// Every dashboard route.
static ROUTES: [Route<Name>; 3] = [
    Route::new("/", GET, Name::Root),
    Route::new("/ui", GET, Name::Page),
    Route::new("/ui/{asset}", GET, Name::Asset),
];

/// One embedded file.
struct Asset {
    /// Its name under `/ui/`.
    name: &'static str,
    /// Its content type.
    content_type: &'static str,
    /// Its bytes.
    bytes: &'static [u8],
}

/// The page.
const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("assets/index.html"),
};

/// The files the page loads, by name.
static ASSETS: [Asset; 4] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "charts.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("assets/charts.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("assets/style.css"),
    },
    Asset {
        name: "icon.svg",
        content_type: "image/svg+xml",
        bytes: include_bytes!("assets/icon.svg"),
    },
];

/// The policy of every dashboard answer: this origin's scripts, styles, images and
/// connections only; no inline script or style, no plugin, no framing, no `<base>`, forms
/// posting nowhere.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// The web dashboard.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dashboard;

impl Api for Dashboard {
    fn name(&self) -> &'static str {
        "dashboard"
    }

    fn owns(&self, path: &str) -> bool {
        path == "/" || router::under(path, "/ui")
    }

    fn template(&self, path: &str) -> Option<&'static str> {
        router::template_of(&ROUTES, path)
    }

    fn routes(&self) -> Vec<(&'static str, &'static [Method])> {
        router::listing(&ROUTES)
    }

    fn handle<'a>(&'a self, _app: &'a App, request: Request<Incoming>) -> Answering<'a> {
        Box::pin(async move { secured(answer(request)) })
    }
}

/// The answer to one request (the files need no token: they hold no data).
fn answer(mut request: Request<Incoming>) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let matched = match router::route(&ROUTES, &mut request) {
        Ok(matched) => matched,
        Err(miss) => return crate::native::error(&miss.error(&method, &path)),
    };
    match matched.route.name {
        Name::Root => {
            let mut response = body::empty(StatusCode::FOUND);
            response
                .headers_mut()
                .insert(header::LOCATION, HeaderValue::from_static(HOME));
            response
        }
        Name::Page => file(&PAGE),
        Name::Asset => {
            let name = matched.params.text("asset");
            match ASSETS.iter().find(|asset| asset.name == name) {
                Some(asset) => file(asset),
                None => crate::native::error(&ApiError::no_route(&path)),
            }
        }
    }
}

/// An embedded file, revalidated on every load (a new binary may serve new files).
fn file(asset: &'static Asset) -> Response<ResponseBody> {
    let mut response = body::with_type(StatusCode::OK, asset.content_type, body::full(asset.bytes));
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Adds the security headers to every dashboard answer, refusals included.
fn secured(mut response: Response<ResponseBody>) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_owns_its_paths_only() {
        let dashboard = Dashboard;
        for path in ["/", "/ui", "/ui/", "/ui/app.js"] {
            assert!(dashboard.owns(path), "{path}");
        }
        for path in ["/v1/jobs", "/uix", "/healthz", "//"] {
            assert!(!dashboard.owns(path), "{path}");
        }
        assert_eq!(dashboard.template("/ui/"), Some("/ui"));
        assert_eq!(dashboard.template("/ui/app.js"), Some("/ui/{asset}"));
    }

    #[test]
    fn the_page_loads_only_embedded_files_and_no_inline_script() {
        let page = std::str::from_utf8(PAGE.bytes).expect("utf-8");
        for asset in &ASSETS {
            assert!(!asset.bytes.is_empty(), "{}", asset.name);
        }
        for (at, _) in page
            .match_indices("src=\"")
            .chain(page.match_indices("href=\""))
        {
            let rest = &page[at..];
            let start = rest.find('"').map_or(0, |i| i + 1);
            let url = &rest[start..start + rest[start..].find('"').unwrap_or(0)];
            if url.starts_with('#') {
                continue;
            }
            let name = url.strip_prefix(HOME).unwrap_or(url);
            assert!(
                ASSETS.iter().any(|asset| asset.name == name),
                "the page loads {url}, which is not embedded"
            );
        }
        assert!(!page.contains("<script>"), "an inline script");
        assert!(!page.contains("style=\""), "an inline style");
        let script = std::str::from_utf8(ASSETS[0].bytes).expect("utf-8");
        assert!(!script.contains("innerHTML"), "job data written as HTML");
    }
}
