//! Bad input: malformed and mistyped JSON, unknown fields, oversized bodies, unknown routes and
//! methods. Each is the documented 4xx in the native error shape, changes nothing, and the
//! daemon keeps serving.

use serde_json::{Value, json};

use crate::support::{Body, Daemon, assert_error, id_of};

#[test]
fn malformed_bodies_routes_and_methods() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "seed", "queue": "q"})));
    let before = api.all_jobs();
    let unchanged = |what: &str| {
        assert_eq!(api.all_jobs(), before, "{what} changed the job list");
        api.get("/healthz").expect(200);
    };
    let raw_post = |path: &str, body: &str| {
        api.request("POST", path, &[("Content-Type", "application/json")], body)
    };

    for (body, needle) in [
        (r#"{"kind": "#, ""),
        ("not json at all", ""),
        (r#"{"kind": "x",}"#, ""),
        (r#"{"kind": "x", "bogus": 1}"#, "bogus"),
        (r#"{"kind": 5}"#, ""),
        (r#"{"kind": "x", "priority": "high"}"#, ""),
        (r#"{"kind": "x", "upload": "yes"}"#, ""),
        (r#"["kind", "x"]"#, "array"),
        (r#" ["x"]"#, "array"),
        ("{}", "kind"),
        // No body at all is `{}`; whitespace alone is no JSON.
        ("\r\n ", "whitespace"),
    ] {
        let answer = raw_post("/v1/jobs", body);
        let message = assert_error(&answer, 400, "invalid_json");
        assert!(message.contains(needle), "{body}: {message}");
        unchanged(body);
    }
    // No body is an array, though a struct could be read from one by position (an execution
    // of a definition takes every member as optional: `[]` made one).
    api.put(
        "/v1/definitions/nightly",
        &json!({"queue": "q", "steps": [{"step_id": "s", "step_type_id": "t"}]}),
    )
    .expect(200);
    for body in ["[]", "[null]"] {
        let answer = raw_post("/v1/definitions/nightly/executions", body);
        let message = assert_error(&answer, 400, "invalid_json");
        assert!(message.contains("array"), "{body}: {message}");
        unchanged(body);
    }

    // Well-formed but invalid values.
    for body in [json!({"kind": ""}), json!({"kind": "x", "max_attempts": 0})] {
        assert_error(&api.post("/v1/jobs", &body), 400, "invalid_request");
        unchanged(&body.to_string());
    }

    // Worker calls with broken bodies change nothing.
    let token = api.claim("w", "q", 1)[0]["lease_token"].as_i64().unwrap();
    let before = api.all_jobs();
    let unchanged = |what: &str| {
        assert_eq!(api.all_jobs(), before, "{what} changed the job list");
    };
    for (path, body) in [
        ("heartbeat", r#"{"worker": "w", "lease_token": "#.to_owned()),
        (
            "heartbeat",
            r#"{"worker": "w", "lease_token": "one"}"#.to_owned(),
        ),
        (
            "complete",
            format!(r#"{{"worker": "w", "lease_token": {token}, "extra": 1}}"#),
        ),
        (
            "fail",
            format!(r#"{{"worker": "w", "lease_token": {token}}}"#),
        ),
    ] {
        assert_error(
            &raw_post(&format!("/v1/jobs/{id}/{path}"), &body),
            400,
            "invalid_json",
        );
        unchanged(&body);
    }
    for body in [
        r#"{"worker": "w", "queues": "q"}"#,
        r#"{"queues": ["q"]}"#,
        r#"{"worker": "w", "queues": ["q"], "max": -1}"#,
    ] {
        assert_error(&raw_post("/v1/claim", body), 400, "invalid_json");
        unchanged(body);
    }
    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(job["state"], "running");
    assert_eq!(job["lease_token"], token);

    // Bodies over the 1 MiB JSON limit: 413, just over and far over.
    for size in [1024 * 1024 + 1, 10 * 1024 * 1024] {
        let padding = "a".repeat(size);
        let body = format!(r#"{{"kind": "big", "payload": "{padding}"}}"#);
        let answer = api.request(
            "POST",
            "/v1/jobs",
            &[("Content-Type", "application/json")],
            body.into_bytes(),
        );
        assert_error(&answer, 413, "body_too_large");
        unchanged("an oversized body");
        // Sent chunked (no Content-Length to refuse it up front).
        let pieces: Vec<Vec<u8>> = std::iter::once(br#"{"kind": "big", "payload": ""#.to_vec())
            .chain(vec![vec![b'a'; 64 * 1024]; size / (64 * 1024) + 1])
            .chain(std::iter::once(br#""}"#.to_vec()))
            .collect();
        let answer = api.request(
            "POST",
            "/v1/jobs",
            &[("Content-Type", "application/json")],
            Body::Chunked(pieces),
        );
        assert_error(&answer, 413, "body_too_large");
        unchanged("an oversized chunked body");
    }

    // Unknown routes: 404 in the same shape (`/` is the dashboard's redirect).
    for path in [
        "/ui/missing.js",
        "/v2/jobs",
        "/v1/nope",
        "/v1/jobs/1/explode",
        "/v1/jobs/1/steps",
        "/v1/definitions/x/y/z",
    ] {
        let answer = api.get(path);
        let message = assert_error(&answer, 404, "route_not_found");
        assert!(message.contains(path), "{message}");
        unchanged(path);
    }
    assert_error(
        &api.post("/v1/jobz", &json!({"kind": "x"})),
        404,
        "route_not_found",
    );
    unchanged("unknown routes");

    // Known routes with the wrong method: 405 with an Allow header (HEAD comes with GET).
    for (method, path, allow) in [
        ("DELETE", "/v1/jobs".to_owned(), vec!["GET", "HEAD", "POST"]),
        ("PUT", "/v1/jobs".to_owned(), vec!["GET", "HEAD", "POST"]),
        (
            "PATCH",
            format!("/v1/jobs/{id}"),
            vec!["GET", "HEAD", "DELETE"],
        ),
        (
            "POST",
            format!("/v1/jobs/{id}"),
            vec!["GET", "HEAD", "DELETE"],
        ),
        ("GET", "/v1/claim".to_owned(), vec!["POST"]),
        ("GET", format!("/v1/jobs/{id}/cancel"), vec!["POST"]),
        (
            "DELETE",
            format!("/v1/jobs/{id}/data"),
            vec!["GET", "HEAD", "PUT"],
        ),
        ("POST", "/v1/definitions".to_owned(), vec!["GET", "HEAD"]),
        ("POST", "/healthz".to_owned(), vec!["GET", "HEAD"]),
    ] {
        let answer = api.request(method, &path, &[], Body::None);
        assert_error(&answer, 405, "method_not_allowed");
        let header = answer
            .header("allow")
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        let mut listed: Vec<&str> = header.split(',').map(str::trim).collect();
        listed.sort_unstable();
        let mut allow = allow;
        allow.sort_unstable();
        assert_eq!(listed, allow, "{method} {path}");
        unchanged(&format!("{method} {path}"));
    }
    unchanged("wrong methods");
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}")).expect_json(200)["state"],
        Value::from("running")
    );
}

/// HEAD is GET without the body (RFC 9110 §9.1), on every GET route of every API: the same
/// status and headers, `Content-Length` included, and no byte after the head.
#[test]
fn head_answers_as_get_without_a_body() {
    use std::io::{Read, Write};
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(
        &api.post("/v1/jobs", &json!({"kind": "head"}))
            .expect_json(201),
    );
    for path in [
        format!("/v1/jobs/{id}"),
        "/v1/jobs".to_owned(),
        "/v1/stats".to_owned(),
        "/healthz".to_owned(),
        "/datamanager/datatools/v1.0/jobs".to_owned(),
    ] {
        let get = api.get(&path);
        assert_eq!(get.status, 200, "GET {path}: {}", get.text());
        let mut stream = crate::support::connect(daemon.addr());
        let head = format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).expect("read");
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text.split_once("\r\n\r\n").expect("a response head");
        assert!(head.starts_with("HTTP/1.1 200"), "HEAD {path}: {head}");
        assert!(rest.is_empty(), "HEAD {path} sent a body: {rest}");
        let length = head.lines().find_map(|line| {
            line.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        });
        assert_eq!(
            length,
            Some(get.body.len().to_string()),
            "HEAD {path}: {head}"
        );
    }
}

/// JSON (and JSON Schema) counts `2.0` as the integer 2: integer fields take a number written
/// with a zero fraction or an exponent, and still refuse a fraction or a value out of range.
#[test]
fn integers_written_as_whole_floats_are_integers() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let raw_post = |path: &str, body: &str| {
        api.request("POST", path, &[("Content-Type", "application/json")], body)
    };
    let job = raw_post(
        "/v1/jobs",
        r#"{"kind": "k", "queue": "floats", "priority": 2.0, "max_attempts": 5e0, "run_at": 0.0}"#,
    )
    .expect_json(201);
    assert_eq!(
        (job["priority"].as_i64(), job["max_attempts"].as_i64()),
        (Some(2), Some(5))
    );
    let claimed = raw_post(
        "/v1/claim",
        r#"{"worker": "w", "queues": ["floats"], "max": 1.0, "lease_ms": 30000.0}"#,
    )
    .expect_json(200);
    let token = claimed["jobs"][0]["lease_token"]
        .as_i64()
        .expect("a claimed job");
    let id = id_of(&job);
    let beat = format!(r#"{{"worker": "w", "lease_token": {token}.0, "lease_ms": 1e4}}"#);
    raw_post(&format!("/v1/jobs/{id}/heartbeat"), &beat).expect(200);

    for body in [
        r#"{"kind": "k", "priority": 2.5}"#,
        r#"{"kind": "k", "priority": 1e19}"#,
        r#"{"kind": "k", "max_attempts": "2"}"#,
    ] {
        assert_error(&raw_post("/v1/jobs", body), 400, "invalid_json");
    }
    assert_error(
        &raw_post(
            "/v1/claim",
            r#"{"worker": "w", "queues": ["q"], "max": 4294967296.0}"#,
        ),
        400,
        "invalid_json",
    );
}

/// A body declared past the JSON limit is refused at once with 413, before the daemon reads
/// a byte of it or invites it with `100 Continue`: a client that sends the head alone (or
/// waits to be invited) is not kept until the body timeout, and nothing is written.
#[test]
fn a_declared_length_past_the_limit_is_refused_before_the_body() {
    use std::io::Write as _;

    let daemon = Daemon::start();
    let api = daemon.client();
    let before = api.all_jobs();
    for expect in ["", "Expect: 100-continue\r\n"] {
        let mut stream = crate::support::connect(daemon.addr());
        let head = format!(
            "POST /v1/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 100000000\r\n{expect}\r\n",
            daemon.addr()
        );
        stream.write_all(head.as_bytes()).expect("send the head");
        let answer = crate::support::read_response_to(&mut stream, "POST").expect("an answer");
        assert_error(&answer, 413, "body_too_large");
    }
    assert_eq!(api.all_jobs(), before);
    api.get("/healthz").expect(200);
}
