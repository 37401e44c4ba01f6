//! Observability: the OpenAPI document lists every native route of the product contract (and
//! the router serves every route it lists, with statuses it documents), `/metrics` is Prometheus text with `jobstore_`
//! names, `/v1/stats` counts jobs, `/healthz` answers.

use serde_json::{Value, json};

use crate::support::{Body, Daemon, id_of};

/// The native route table of the product contract (`product.md`, "Native HTTP API"): every
/// path with its methods. Other tools rely on these; none may be missing.
const CONTRACT: &[(&str, &[&str])] = &[
    ("/v1/jobs", &["get", "post"]),
    ("/v1/jobs/{id}", &["get", "delete"]),
    ("/v1/jobs/{id}/cancel", &["post"]),
    ("/v1/jobs/{id}/restart", &["post"]),
    ("/v1/jobs/{id}/data", &["get", "put"]),
    ("/v1/jobs/{id}/outputs/{name}", &["get", "put"]),
    ("/v1/jobs/{id}/close", &["post"]),
    ("/v1/jobs/{id}/logs", &["get", "post"]),
    ("/v1/jobs/{id}/events", &["get"]),
    ("/v1/definitions", &["get"]),
    ("/v1/definitions/{id}", &["get", "put"]),
    ("/v1/definitions/{id}/executions", &["post"]),
    ("/v1/claim", &["post"]),
    ("/v1/jobs/{id}/heartbeat", &["post"]),
    ("/v1/jobs/{id}/steps/{step}", &["post"]),
    ("/v1/jobs/{id}/complete", &["post"]),
    ("/v1/jobs/{id}/fail", &["post"]),
    ("/v1/stats", &["get"]),
    ("/healthz", &["get"]),
    ("/metrics", &["get"]),
    ("/v1/openapi.json", &["get"]),
];

#[test]
fn openapi_lists_every_contract_route_and_the_router_serves_every_listed_one() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let doc = api.get("/v1/openapi.json").expect_json(200);
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths object");
    for (path, methods) in CONTRACT {
        let operations = paths
            .get(*path)
            .unwrap_or_else(|| panic!("the OpenAPI document lacks {path}"));
        for method in *methods {
            assert!(
                operations[*method].is_object(),
                "the OpenAPI document lacks {method} {path}"
            );
        }
    }

    // Every operation the document lists is routed (never 404 route_not_found or 405), and
    // what it answers is among the statuses the document gives it.
    for (path, operations) in paths {
        let concrete = path.replace("{id}", "999999").replace("{step}", "s1");
        for (method, operation) in operations.as_object().expect("operations object") {
            let method = method.to_ascii_uppercase();
            let body = if method == "GET" || method == "DELETE" {
                Body::None
            } else {
                Body::from("{}")
            };
            let answer = api.request(&method, &concrete, &[], body);
            let kind = answer
                .json_or_null()
                .pointer("/error/type")
                .cloned()
                .unwrap_or(Value::Null);
            assert!(
                answer.status != 405 && kind != "route_not_found",
                "{method} {path} is documented but not served: {} {}",
                answer.status,
                answer.text()
            );
            assert!(
                operation["responses"][answer.status.to_string()].is_object(),
                "{method} {path} answered {}, which the document does not list: {}",
                answer.status,
                answer.text()
            );
        }
    }
}

#[test]
fn metrics_stats_and_health() {
    let daemon = Daemon::start();
    let api = daemon.client();
    for _ in 0..3 {
        api.create(&json!({"kind": "k", "queue": "metered"}));
    }
    let claimed = api.claim("w", "metered", 1);
    assert_eq!(claimed.len(), 1);
    let _ = id_of(&claimed[0]);

    let health = api.get("/healthz");
    health.expect(200);

    let stats = api.get("/v1/stats").expect_json(200);
    let rows = stats["stats"].as_array().expect("stats array");
    let count = |state: &str| {
        rows.iter()
            .find(|r| r["queue"] == "metered" && r["state"] == state)
            .and_then(|r| r["jobs"].as_i64())
            .unwrap_or(0)
    };
    assert_eq!((count("queued"), count("running")), (2, 1), "{stats}");

    let metrics = api.get("/metrics");
    metrics.expect(200);
    let content_type = metrics.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = metrics.text();
    let samples: Vec<&str> = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(!samples.is_empty(), "{text}");
    for sample in &samples {
        assert!(
            sample.starts_with("jobstore_"),
            "metric not named jobstore_*: {sample}"
        );
        let value = sample.rsplit(' ').next().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok(),
            "sample without a value: {sample}"
        );
    }
    assert!(
        samples.contains(&r#"jobstore_jobs{queue="metered",state="queued"} 2"#),
        "{text}"
    );
    assert!(
        samples.contains(&r#"jobstore_jobs{queue="metered",state="running"} 1"#),
        "{text}"
    );
    assert!(
        samples
            .iter()
            .any(|s| s.starts_with("jobstore_http_requests_total")),
        "{text}"
    );
}
