//! Job logs: lines appended as JSON and as plain text, read back as one text file in order.

use serde_json::json;

use crate::support::{Daemon, assert_error, id_of};

#[test]
fn log_lines_append_and_read_back_in_order() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "export"})));
    let path = format!("/v1/jobs/{id}/logs");

    let empty = api.get(&path);
    empty.expect(200);
    assert!(empty.text().is_empty(), "{}", empty.text());

    let appended = api
        .post(
            &path,
            &json!({"lines": [
                {"level": "info", "message": "starting export"},
                {"level": "warn", "message": "row 7 has no email"},
                {"message": "level defaults to info"}
            ]}),
        )
        .expect_json(200);
    assert_eq!(appended["appended"], 3);

    let appended = api
        .request(
            "POST",
            &path,
            &[("Content-Type", "text/plain; charset=utf-8")],
            "plain line one\nplain line two\n",
        )
        .expect_json(200);
    assert_eq!(appended["appended"], 2);

    api.post(
        &path,
        &json!({"lines": [{"level": "error", "message": "done with errors"}]}),
    )
    .expect(200);

    let log = api.get(&path);
    log.expect(200);
    let content_type = log.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = log.text();
    let lines: Vec<&str> = text.lines().collect();
    let expected = [
        ("INFO", "starting export"),
        ("WARN", "row 7 has no email"),
        ("INFO", "level defaults to info"),
        ("INFO", "plain line one"),
        ("INFO", "plain line two"),
        ("ERROR", "done with errors"),
    ];
    assert_eq!(lines.len(), expected.len(), "{text}");
    for (line, (level, message)) in lines.iter().zip(expected) {
        assert!(
            line.ends_with(message),
            "{line:?} should end with {message:?}"
        );
        assert!(
            line.split_whitespace().any(|word| word == level),
            "{line:?} should name level {level}"
        );
    }

    // Faults.
    assert_error(
        &api.post(
            &path,
            &json!({"lines": [{"level": "loud", "message": "x"}]}),
        ),
        400,
        "invalid_request",
    );
    assert_error(
        &api.post(&path, &json!({"lines": [{"msg": "x"}]})),
        400,
        "invalid_json",
    );
    assert_error(&api.get("/v1/jobs/999999/logs"), 404, "job_not_found");
    assert_error(
        &api.post(
            "/v1/jobs/999999/logs",
            &json!({"lines": [{"message": "x"}]}),
        ),
        404,
        "job_not_found",
    );
    assert_eq!(
        api.get(&path).text(),
        text,
        "a refused append changed the log"
    );
}
