//! Writes that do not block their caller (`WriteCall::then`) and acknowledging a whole claim
//! at once (`Store::complete_many`): the same answers and the same guarantees as the blocking
//! calls, fewer commits.

use std::sync::mpsc;
use std::time::Duration;

use jobstore::{ClaimRequest, Completion, Error, Failure, Lease, NewJob, State};
use serde_json::json;

use crate::support::Fixture;

fn claim(f: &Fixture, worker: &str, max: u32) -> Vec<jobstore::Job> {
    let mut request = ClaimRequest::new(worker, "default");
    request.max = max;
    f.store.claim(&request).expect("claim")
}

/// Events of one name (a constant of these tests, written into the statement).
fn event_count(f: &Fixture, event: &str) -> i64 {
    assert!(event.chars().all(|c| c.is_ascii_alphabetic()), "{event}");
    f.count(
        &format!("SELECT count(*) FROM job_events WHERE event = '{event}'"),
        &[],
    )
}

#[test]
fn complete_many_finishes_a_whole_claim_in_one_commit_and_judges_each_job_alone() {
    let f = Fixture::new();
    for n in 0..4 {
        f.store
            .enqueue(NewJob::new("export").payload(json!({ "n": n })))
            .unwrap();
    }
    let jobs = claim(&f, "w1", 4);
    assert_eq!(jobs.len(), 4);
    let lease = |i: usize| jobs[i].lease().unwrap();
    let completions = vec![
        Completion {
            id: jobs[0].id,
            lease: lease(0),
            result: json!({ "rows": 1 }),
        },
        // Another worker's name with the right token.
        Completion {
            id: jobs[1].id,
            lease: Lease {
                worker: "w2".into(),
                token: lease(1).token,
            },
            result: json!(null),
        },
        // A job that does not exist.
        Completion {
            id: 9_999,
            lease: lease(2),
            result: json!(null),
        },
        // A result over the size limit, refused before the writer: its place is kept.
        Completion {
            id: jobs[2].id,
            lease: lease(2),
            result: json!("x".repeat(2 * 1024 * 1024)),
        },
        Completion {
            id: jobs[3].id,
            lease: lease(3),
            result: json!({ "rows": 4 }),
        },
    ];
    let before = f.store.writer_stats();
    let answers = f.store.complete_many(completions).unwrap();
    let after = f.store.writer_stats();
    assert_eq!(after.commits - before.commits, 1, "one commit for the lot");

    assert_eq!(answers.len(), 5);
    let first = answers[0].as_ref().unwrap();
    assert_eq!(first.state, State::Succeeded);
    assert_eq!(first.result, Some(json!({ "rows": 1 })));
    assert!(matches!(answers[1], Err(Error::StaleLease { job, .. }) if job == jobs[1].id));
    assert!(matches!(answers[2], Err(Error::JobNotFound { id: 9_999 })));
    assert!(matches!(&answers[3], Err(Error::InvalidInput { field, .. }) if field == "result"));
    let fourth = answers[4].as_ref().unwrap();
    assert_eq!(
        (fourth.state, fourth.result.clone()),
        (State::Succeeded, Some(json!({ "rows": 4 })))
    );

    // What was refused is untouched: still running under its lease, one complete event
    // per finished job.
    assert_eq!(f.store.get(jobs[1].id).unwrap().state, State::Running);
    assert_eq!(f.store.get(jobs[2].id).unwrap().state, State::Running);
    assert_eq!(event_count(&f, "complete"), 2);
    let finished = f.store.get(jobs[3].id).unwrap();
    assert_eq!(finished.lease_owner, None);
    assert!(finished.finished_at.is_some());
    assert!(f.store.check().unwrap().is_ok());
}

#[test]
fn complete_many_of_one_job_twice_answers_as_one_after_the_other() {
    let f = Fixture::new();
    f.store.enqueue(NewJob::new("export")).unwrap();
    let job = claim(&f, "w1", 1).remove(0);
    let completion = |rows: i64| Completion {
        id: job.id,
        lease: job.lease().unwrap(),
        result: json!({ "rows": rows }),
    };
    let answers = f
        .store
        .complete_many(vec![completion(1), completion(2)])
        .unwrap();
    assert_eq!(
        answers[0].as_ref().unwrap().result,
        Some(json!({ "rows": 1 }))
    );
    assert!(matches!(answers[1], Err(Error::StaleLease { job: id, .. }) if id == job.id));
    assert_eq!(
        f.store.get(job.id).unwrap().result,
        Some(json!({ "rows": 1 }))
    );
    assert_eq!(event_count(&f, "complete"), 1);
}

#[test]
fn complete_many_refuses_an_oversized_batch_and_writes_nothing() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("export")).unwrap();
    let lease = claim(&f, "w1", 1)[0].lease().unwrap();
    let before = f.snapshot();
    let completions = (0..=jobstore::MAX_CLAIM)
        .map(|_| Completion {
            id: job.id,
            lease: lease.clone(),
            result: json!(null),
        })
        .collect();
    match f.store.complete_many(completions) {
        Err(Error::InvalidInput { field, .. }) => assert_eq!(field, "completions"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    assert_eq!(f.snapshot(), before);
}

#[test]
fn a_write_call_answers_through_its_callback_after_the_commit() {
    let f = Fixture::new();
    let (sender, answers) = mpsc::channel();
    let reply = sender.clone();
    f.store
        .enqueue_call(NewJob::new("export").queue("q1"))
        .then(move |answer| reply.send(answer).unwrap());
    let job = answers
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    // Committed by the time the callback ran: a fresh connection sees it.
    let state = f.rows("SELECT state FROM jobs WHERE id = $1", &[job.id]);
    assert_eq!(state, [[Some("queued".to_owned())]]);

    // Refused input arrives through the same callback, and nothing is written.
    let before = f.snapshot();
    let reply = sender.clone();
    f.store
        .enqueue_call(NewJob::new(""))
        .then(move |answer| reply.send(answer).unwrap());
    assert!(matches!(
        answers.recv_timeout(Duration::from_secs(10)).unwrap(),
        Err(Error::InvalidInput { .. })
    ));
    assert_eq!(f.snapshot(), before);

    // A refusal decided on the writer (a stale lease) as well.
    let mut request = ClaimRequest::new("w1", "q1");
    request.max = 1;
    let (claims, claimed) = mpsc::channel();
    f.store
        .claim_call(&request)
        .then(move |answer| claims.send(answer).unwrap());
    let leased = claimed
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    let lease = leased[0].lease().unwrap();
    let stale = Lease {
        worker: lease.worker.clone(),
        token: lease.token + 1,
    };
    let reply = sender.clone();
    f.store
        .fail_call(job.id, &stale, Failure::fatal("late"))
        .then(move |answer| reply.send(answer).unwrap());
    assert!(matches!(
        answers.recv_timeout(Duration::from_secs(10)).unwrap(),
        Err(Error::StaleLease { .. })
    ));
    f.store
        .complete_call(job.id, &lease, json!({ "ok": true }))
        .then(move |answer| sender.send(answer).unwrap());
    let done = answers
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    assert_eq!(done.state, State::Succeeded);
}

#[test]
fn a_panicking_callback_does_not_take_the_writer_down() {
    let f = Fixture::new();
    f.store
        .enqueue_call(NewJob::new("export"))
        .then(|_| panic!("a careless callback"));
    // The write itself committed (a driver with several writers may run it after the next
    // create: ids 1 and 2 go to the two in either order)...
    let later = f.store.enqueue(NewJob::new("export")).unwrap();
    let first = 3 - later.id;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while f.store.get(first).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(f.store.get(first).unwrap().state, State::Queued);
    // ... and every writer still serves later calls (the writes of jobs 1 to 6 fall on each
    // of a driver's writers).
    for _ in 0..4 {
        f.store.enqueue(NewJob::new("export")).unwrap();
    }
    for id in 1..=6 {
        assert_eq!(f.store.cancel(id, "test").unwrap().state, State::Cancelled);
    }
}

/// The last handle of a store may be dropped on its writer thread: an answer that holds the
/// store (a caller's callback, an upload handed to a caller that went away) is dropped there.
/// The writer then closes on its own; it must not wait for itself.
#[test]
fn the_last_store_handle_dropped_on_the_writer_thread_closes_it() {
    let Fixture {
        dir: _dir, store, ..
    } = Fixture::new();
    let held = store.clone();
    let (go, wait) = mpsc::channel::<()>();
    let (done, finished) = mpsc::channel::<bool>();
    store
        .enqueue_call(NewJob::new("k"))
        .then(move |answer: jobstore::Result<jobstore::Job>| {
            // Wait until every other handle is gone, then drop the last one here.
            let _ = wait.recv_timeout(Duration::from_secs(10));
            drop(held);
            let _ = done.send(answer.is_ok());
        });
    drop(store);
    go.send(()).expect("the callback waits");
    assert_eq!(
        finished.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "dropping the last handle on the writer thread did not return"
    );
}
