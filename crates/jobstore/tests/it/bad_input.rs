//! Bad input gets a typed error and leaves the database exactly as it was.

use std::io::{self, Read};

use jobstore::{
    ClaimRequest, Cursor, Direction, Error, Failure, Heartbeat, ListQuery, LogLevel, NewJob,
    Pagination, SortField, State,
};
use serde_json::json;

use crate::support::Fixture;

/// Runs `call`, expects an error matching `expected`, and checks nothing changed on disk.
fn refused<T: std::fmt::Debug>(
    f: &Fixture,
    call: impl FnOnce() -> jobstore::Result<T>,
    expected: impl Fn(&Error) -> bool,
) {
    let before = f.snapshot();
    match call() {
        Err(err) if expected(&err) => {
            let message = err.to_string();
            assert!(!message.is_empty());
            assert!(
                !message.ends_with('.'),
                "messages end without a period: {message}"
            );
        }
        other => panic!("unexpected outcome {other:?}"),
    }
    assert_eq!(f.snapshot(), before, "the database changed");
}

#[test]
fn malformed_or_oversized_documents_are_refused() {
    let f = Fixture::with(|o| o.max_document_bytes = 1024);
    f.store.enqueue(NewJob::new("seed")).unwrap();
    match NewJob::new("a").payload_json("{\"rows\": 10,") {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "payload"),
        other => panic!("expected invalid payload, got {other:?}"),
    }
    // A number that would come back changed is refused, never altered.
    match NewJob::new("a").payload_json("{\"n\": 123456789012345678901234567890}") {
        Err(Error::InvalidInput { field, reason }) => {
            assert_eq!(field, "payload");
            assert!(
                reason.contains("123456789012345678901234567890"),
                "{reason}"
            );
        }
        other => panic!("expected invalid payload, got {other:?}"),
    }
    let kept = NewJob::new("a")
        .payload_json("{\"n\": 18446744073709551615, \"f\": 0.1}")
        .unwrap();
    let job = f.store.enqueue(kept).unwrap();
    assert_eq!(job.payload, json!({"n": u64::MAX, "f": 0.1}));
    let big = json!({"data": "x".repeat(2000)});
    refused(
        &f,
        || f.store.enqueue(NewJob::new("a").payload(big.clone())),
        |e| matches!(e, Error::InvalidInput { field, .. } if field == "payload"),
    );
    let job = f.store.enqueue(NewJob::new("b")).unwrap();
    let lease = f.store.claim(&ClaimRequest::new("w", "default")).unwrap()[0]
        .lease()
        .unwrap();
    let _ = job;
    refused(
        &f,
        || f.store.complete(1, &lease, big.clone()),
        |e| matches!(e, Error::InvalidInput { field, .. } if field == "result"),
    );
    refused(
        &f,
        || {
            f.store.heartbeat(
                1,
                &lease,
                Heartbeat {
                    progress: Some(json!([1, 2, 3])),
                    ..Heartbeat::default()
                },
            )
        },
        |e| matches!(e, Error::InvalidInput { field, .. } if field == "progress"),
    );
}

#[test]
fn invalid_new_jobs_are_refused() {
    let f = Fixture::new();
    for (new, field) in [
        (NewJob::new(""), "kind"),
        (NewJob::new("a").queue(""), "queue"),
        (NewJob::new("a").max_attempts(0), "max_attempts"),
        (NewJob::new("a").name("n".repeat(5000)), "name"),
        (NewJob::new("a").idempotency_key(""), "idempotency_key"),
        // PostgreSQL's text cannot hold U+0000: every engine refuses it alike.
        (NewJob::new("a\0b"), "kind"),
        (NewJob::new("a").name("x\0"), "name"),
        (NewJob::new("a").unique_key("\0"), "unique_key"),
        // The executions of definitions hold keys of their own.
        (
            NewJob::new("a").unique_key("definition:nightly"),
            "unique_key",
        ),
    ] {
        refused(
            &f,
            || f.store.enqueue(new.clone()),
            |e| matches!(e, Error::InvalidInput { field: got, .. } if got == field),
        );
    }
    // A batch with one bad job creates none of them.
    refused(
        &f,
        || {
            f.store
                .enqueue_many(vec![NewJob::new("ok"), NewJob::new("")])
        },
        |e| matches!(e, Error::InvalidInput { .. }),
    );
    f.store.enqueue(NewJob::new("a").unique_key("k")).unwrap();
    refused(
        &f,
        || {
            f.store
                .enqueue_many(vec![NewJob::new("ok"), NewJob::new("a").unique_key("k")])
        },
        |e| matches!(e, Error::JobAlreadyRunning { .. }),
    );
    // Nor one whose jobs hold the same unique key.
    refused(
        &f,
        || {
            f.store.enqueue_many(vec![
                NewJob::new("a").unique_key("twice"),
                NewJob::new("b"),
                NewJob::new("a").unique_key("twice"),
            ])
        },
        |e| matches!(e, Error::JobAlreadyRunning { unique_key, .. } if unique_key == "twice"),
    );
}

#[test]
fn illegal_transitions_and_unknown_jobs_are_refused() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("a")).unwrap();
    refused(
        &f,
        || f.store.close_upload(job.id, ""),
        |e| {
            matches!(
                e,
                Error::InvalidTransition {
                    from: Some(State::Queued),
                    event: "close",
                    ..
                }
            )
        },
    );
    refused(
        &f,
        || f.store.restart(job.id, ""),
        |e| {
            matches!(
                e,
                Error::InvalidTransition {
                    event: "restart",
                    ..
                }
            )
        },
    );
    refused(
        &f,
        || f.store.delete(job.id),
        |e| {
            matches!(
                e,
                Error::InvalidTransition {
                    event: "delete",
                    ..
                }
            )
        },
    );
    refused(
        &f,
        || f.store.cancel(job.id + 100, ""),
        |e| matches!(e, Error::JobNotFound { .. }),
    );
    let lease = jobstore::Lease {
        worker: "w".into(),
        token: 1,
    };
    refused(
        &f,
        || f.store.complete(job.id, &lease, json!(null)),
        |e| matches!(e, Error::StaleLease { .. }),
    );
    refused(
        &f,
        || f.store.fail(job.id, &lease, Failure::fatal("x")),
        |e| matches!(e, Error::StaleLease { .. }),
    );
}

#[test]
fn bad_list_and_claim_requests_are_refused() {
    let f = Fixture::new();
    f.store.enqueue(NewJob::new("a")).unwrap();
    assert!(matches!(
        "createdTime".parse::<SortField>(),
        Err(Error::UnknownSortField { .. })
    ));
    for limit in [0, jobstore::MAX_PAGE_SIZE + 1] {
        let query = ListQuery {
            limit: Some(limit),
            ..ListQuery::default()
        };
        assert!(matches!(
            f.store.list(&query),
            Err(Error::InvalidInput { field, .. }) if field == "limit"
        ));
    }
    let job = f.store.get(1).unwrap();
    let cursor = Cursor::after(&job, SortField::Name, Direction::Asc);
    let query = ListQuery {
        sort: Some(SortField::CreatedAt),
        page: Pagination::Cursor(Some(cursor)),
        ..ListQuery::default()
    };
    assert!(matches!(
        f.store.list(&query),
        Err(Error::InvalidCursor { .. })
    ));
    assert!(matches!(
        Cursor::decode("not-hex"),
        Err(Error::InvalidCursor { .. })
    ));

    for request in [
        ClaimRequest {
            max: 0,
            ..ClaimRequest::new("w", "default")
        },
        ClaimRequest {
            queues: vec![],
            ..ClaimRequest::new("w", "default")
        },
        ClaimRequest::new("", "default"),
        ClaimRequest {
            lease_ms: 0,
            ..ClaimRequest::new("w", "default")
        },
    ] {
        refused(
            &f,
            || f.store.claim(&request),
            |e| matches!(e, Error::InvalidInput { .. }),
        );
    }
}

/// A source that fails after some bytes, as a broken upload or a refusing validator would.
struct FailingReader {
    left: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "line 3: bad quote",
            ));
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(b'x');
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn oversized_too_many_or_broken_data_batches_keep_nothing() {
    let f = Fixture::with(|o| {
        o.max_batch_bytes = 600 * 1024;
        o.max_batches_per_job = 2;
    });
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    refused(
        &f,
        || {
            f.store
                .append_data(job.id, io::repeat(b'a').take(700 * 1024))
        },
        |e| matches!(e, Error::DataBatchTooLarge { limit } if *limit == 600 * 1024),
    );
    refused(
        &f,
        || {
            f.store
                .append_data(job.id, FailingReader { left: 300 * 1024 })
        },
        |e| matches!(e, Error::DataRead(inner) if inner.to_string().contains("line 3")),
    );
    f.store.append_data(job.id, &b"a,b\n1,2\n"[..]).unwrap();
    f.store.append_data(job.id, &b"a,b\n3,4\n"[..]).unwrap();
    refused(
        &f,
        || f.store.append_data(job.id, &b"a,b\n5,6\n"[..]),
        |e| matches!(e, Error::TooManyDataBatches { limit: 2, .. }),
    );
    f.store.close_upload(job.id, "").unwrap();
    let other = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    f.store.close_upload(other.id, "").unwrap();
    refused(
        &f,
        || f.store.append_data(other.id, &b"late"[..]),
        |e| {
            matches!(
                e,
                Error::InvalidTransition {
                    event: "upload",
                    ..
                }
            )
        },
    );
}

/// A command's output may carry U+0000, which PostgreSQL's text cannot hold: its log line is
/// kept, the NUL as U+FFFD, on every engine.
#[test]
fn a_nul_in_a_log_line_is_kept_as_a_replacement_character() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("a")).unwrap();
    f.store
        .append_log(job.id, vec![(LogLevel::Info, "a\0b".into())])
        .unwrap();
    let lines = f.store.log(job.id, 0, 10).unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].message, "a\u{fffd}b");
}

/// A worker's own words may carry U+0000 too (the error it reports is its command's last
/// line): an error and a phase are kept, the NUL as U+FFFD, on every engine; a worker's name,
/// repeated on every call about its jobs, is refused with it.
#[test]
fn a_nul_in_what_a_worker_reports_is_kept_as_a_replacement_character() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("a").max_attempts(2)).unwrap();
    refused(
        &f,
        || f.store.claim(&ClaimRequest::new("w\0", "default")),
        |err| matches!(err, Error::InvalidInput { field, .. } if field == "worker"),
    );
    let lease = f
        .store
        .claim(&ClaimRequest::new("w", "default"))
        .unwrap()
        .remove(0)
        .lease()
        .unwrap();
    f.store
        .heartbeat(
            job.id,
            &lease,
            Heartbeat {
                phase: Some("copy\0ing".into()),
                ..Heartbeat::default()
            },
        )
        .unwrap();
    assert_eq!(
        f.store.get(job.id).unwrap().phase.as_deref(),
        Some("copy\u{fffd}ing")
    );
    let failed = f
        .store
        .fail(job.id, &lease, Failure::retryable("exit 1: \0garbled"))
        .unwrap();
    assert_eq!(failed.state, State::Queued);
    assert_eq!(failed.error.as_deref(), Some("exit 1: \u{fffd}garbled"));
}
