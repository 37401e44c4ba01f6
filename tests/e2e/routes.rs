//! Every route of every API reaches a handler: the route tables the daemon serves (read from
//! the library, as the daemon builds them) walked method by method against the real binary.

use crate::support::{Body, Daemon};

/// A concrete path for a template: ids name no job, versions are served, other parameters
/// are plain names.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            "{version}" => "v19_5",
            "{id}" | "{jobId}" => "999999",
            other if other.starts_with('{') => "walk",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn every_route_of_every_api_reaches_a_handler() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let apis = jobstore_http::apis(&jobstore_http::DialectConfig::default());
    let mut walked = Vec::new();
    for served in &apis {
        for (template, methods) in served.routes() {
            let path = concrete(template);
            let mut all: Vec<&str> = methods.iter().map(http::Method::as_str).collect();
            if all.contains(&"GET") {
                all.push("HEAD");
            }
            for method in all {
                let body = match method {
                    "GET" | "HEAD" | "DELETE" => Body::None,
                    _ => Body::from("{}"),
                };
                let headers = [("Content-Type", "application/json")];
                let answer = api.request(method, &path, &headers, body);
                assert!(
                    answer.status != 405 && answer.status < 500,
                    "{} {method} {path}: {} {}",
                    served.name(),
                    answer.status,
                    answer.text()
                );
                walked.push((template, method));
            }
        }
    }
    // Each request was counted under its route's template: none fell through to no route.
    let metrics = api.get("/metrics").text();
    for (template, method) in &walked {
        let label = format!("route=\"{template}\",method=\"{method}\"");
        assert!(metrics.contains(&label), "not counted: {label}");
    }
    assert!(walked.len() >= 30, "only {} routes walked", walked.len());
}
