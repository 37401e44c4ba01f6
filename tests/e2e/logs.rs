//! Job logs: lines appended as JSON and as plain text, read back as one text file in order;
//! the last lines (`tail`) and the lines after one (`after`), as a live viewer reads.

use serde_json::json;

use std::ops::RangeInclusive;

use crate::support::{Client, Daemon, Response, assert_error, id_of};

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

/// The messages of a text log answer, in order.
fn messages(text: &str) -> Vec<String> {
    text.lines()
        .map(|line| line.splitn(3, ' ').nth(2).unwrap_or("").trim().to_owned())
        .collect()
}

/// Appends `line N` to job `id`'s log for each N of `numbers`, then a line to job `other`'s:
/// another job's lines interleave in the log table and never show in `id`'s log.
fn append_numbered(api: &Client, id: i64, numbers: RangeInclusive<u64>, other: i64) {
    let lines: Vec<_> = numbers
        .map(|n| json!({"message": format!("line {n}")}))
        .collect();
    api.post(&format!("/v1/jobs/{id}/logs"), &json!({ "lines": lines }))
        .expect_json(200);
    api.post(
        &format!("/v1/jobs/{other}/logs"),
        &json!({"lines": [{"message": "other job"}]}),
    )
    .expect_json(200);
}

/// Where a reader of the log goes on from (`Jobstore-Log-Seq`).
fn log_seq(response: &Response) -> i64 {
    response
        .header("jobstore-log-seq")
        .and_then(|seq| seq.parse().ok())
        .expect("Jobstore-Log-Seq")
}

#[test]
fn a_viewer_reads_the_tail_then_only_the_new_lines() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "export"})));
    let other = id_of(&api.create(&json!({"kind": "export"})));
    let path = format!("/v1/jobs/{id}/logs");
    append_numbered(&api, id, 1..=30, other);

    let tail = api.get(&format!("{path}?tail=5"));
    tail.expect(200);
    assert_eq!(
        messages(&tail.text()),
        ["line 26", "line 27", "line 28", "line 29", "line 30"]
    );
    let seq = log_seq(&tail);

    // Nothing new: no lines, and the same place to read on from.
    let none = api.get(&format!("{path}?after={seq}"));
    assert!(none.text().is_empty(), "{}", none.text());
    assert_eq!(
        none.header("jobstore-log-seq"),
        Some(seq.to_string().as_str())
    );

    api.post(
        &path,
        &json!({"lines": [{"message": "line 31"}, {"message": "line 32"}, {"message": "line 33"}]}),
    )
    .expect_json(200);
    let page = api.get(&format!("{path}?after={seq}"));
    assert_eq!(messages(&page.text()), ["line 31", "line 32", "line 33"]);
    let next = log_seq(&page);
    assert!(next > seq);
    // A viewer that fell behind catches up with the tail of what it missed.
    let caught_up = api.get(&format!("{path}?after={seq}&tail=1"));
    assert_eq!(messages(&caught_up.text()), ["line 33"]);
    assert_eq!(
        caught_up.header("jobstore-log-seq"),
        Some(next.to_string().as_str())
    );

    // A tail longer than the log is the whole log; the whole log is still the default.
    assert_eq!(
        messages(&api.get(&format!("{path}?tail=1000")).text()).len(),
        33
    );
    assert_eq!(messages(&api.get(&path).text()).len(), 33);

    for bad in [
        "tail=0",
        "tail=10001",
        "after=-1",
        "after=x",
        "tail=1&tail=2",
        "limit=5",
    ] {
        assert_error(&api.get(&format!("{path}?{bad}")), 400, "invalid_request");
    }
    assert_error(
        &api.get("/v1/jobs/999999/logs?tail=5"),
        404,
        "job_not_found",
    );
}

/// The whole log of a job is answered however long it is, in pages read as the client takes
/// them: 20,500 lines (more than two of the daemon's pages of 10,000), each once, in order,
/// with another job's lines interleaved in the table and lines appended while it streams left
/// for `?after=` from the answer's `Jobstore-Log-Seq`.
#[test]
fn a_log_longer_than_a_page_is_answered_whole_and_in_order() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "export"})));
    let other = id_of(&api.create(&json!({"kind": "export"})));
    let path = format!("/v1/jobs/{id}/logs");
    let mut sent = 0;
    for size in [10_000, 10_000, 500] {
        append_numbered(&api, id, sent + 1..=sent + size, other);
        sent += size;
    }
    let whole = api.get(&path);
    whole.expect(200);
    let expected: Vec<String> = (1..=sent).map(|n| format!("line {n}")).collect();
    assert_eq!(messages(&whole.text()), expected);
    let seq = log_seq(&whole);
    api.post(&path, &json!({"lines": [{"message": "later"}]}))
        .expect_json(200);
    assert_eq!(
        messages(&api.get(&format!("{path}?after={seq}")).text()),
        ["later"]
    );
}
