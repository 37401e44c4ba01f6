//! The beginning of the conformance suite: the same behaviour checks run on the SQLite driver
//! and on the PostgreSQL driver (a throwaway cluster, `support`), through the one `Store` API.
//! What the PostgreSQL driver does not do yet must answer `Error::Unsupported`.

mod support;

use std::sync::Arc;

use jobstore::{
    ClaimRequest, Error, Failure, Heartbeat, ManualClock, NewJob, State, Store, StoreOptions,
};
use jobstore_postgres::{PostgresDriver, PostgresOptions};
use serde_json::json;

const START: i64 = 1_700_000_000_000;

fn options(clock: &Arc<ManualClock>) -> StoreOptions {
    StoreOptions {
        clock: Arc::clone(clock) as Arc<dyn jobstore::Clock>,
        ..StoreOptions::default()
    }
}

/// Runs `check` on a fresh SQLite store and on a fresh PostgreSQL store, each with its own
/// manual clock.
fn on_both(check: impl Fn(&Store, &ManualClock)) {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(START));
    let sqlite = Store::open_with(dir.path().join("jobs.db"), options(&clock)).expect("sqlite");
    check(&sqlite, &clock);

    let clock = Arc::new(ManualClock::new(START));
    let url = support::fresh_database();
    let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("postgres");
    let postgres = Store::with_driver(Arc::new(driver), options(&clock));
    check(&postgres, &clock);
}

#[test]
fn a_job_lives_through_claim_heartbeat_and_completion() {
    on_both(|store, _| {
        let job = store
            .enqueue(
                NewJob::new("export")
                    .queue("q")
                    .payload(json!({"rows": 10, "x": 0.1})),
            )
            .expect("enqueue");
        assert_eq!(store.get(job.id).expect("get"), job);
        let claimed = store.claim(&ClaimRequest::new("w1", "q")).expect("claim");
        assert_eq!(claimed.len(), 1);
        let lease = claimed[0].lease().expect("lease");
        assert!(
            store
                .claim(&ClaimRequest::new("w2", "q"))
                .expect("claim")
                .is_empty()
        );
        for progress in [
            json!({"a": {"x": 1}, "b": 1}),
            json!({"a": {"y": 2}, "b": null}),
        ] {
            let beat = Heartbeat {
                progress: Some(progress),
                ..Heartbeat::default()
            };
            store.heartbeat(job.id, &lease, beat).expect("heartbeat");
        }
        assert_eq!(
            store.get(job.id).expect("get").progress,
            json!({"a": {"x": 1, "y": 2}})
        );
        let done = store
            .complete(job.id, &lease, json!({"exported": 10}))
            .expect("complete");
        assert_eq!(done.state, State::Succeeded);
        assert!(matches!(
            store.complete(job.id, &lease, json!({})),
            Err(Error::StaleLease { .. })
        ));
        let events: Vec<String> = store
            .events(job.id)
            .expect("events")
            .into_iter()
            .map(|e| e.event)
            .collect();
        assert_eq!(events, ["create", "claim", "complete"]);
        store.delete(job.id).expect("delete");
        assert!(matches!(store.get(job.id), Err(Error::JobNotFound { .. })));
    });
}

#[test]
fn failures_retry_with_backoff_then_fail_and_expired_leases_are_rescued() {
    on_both(|store, clock| {
        let job = store
            .enqueue(NewJob::new("k").queue("q").max_attempts(2))
            .expect("enqueue");
        let claimed = store.claim(&ClaimRequest::new("w", "q")).expect("claim");
        let lease = claimed[0].lease().expect("lease");
        let failed = store
            .fail(job.id, &lease, Failure::retryable("boom"))
            .expect("fail");
        assert_eq!(failed.state, State::Queued);
        assert!(failed.run_at > START, "backoff");
        assert!(
            store
                .claim(&ClaimRequest::new("w", "q"))
                .expect("claim")
                .is_empty()
        );
        clock.advance(10_000);
        let claimed = store.claim(&ClaimRequest::new("w", "q")).expect("claim");
        assert_eq!(claimed[0].attempt, 2);
        clock.advance(60_000);
        assert_eq!(store.rescue_expired_leases().expect("rescue"), [job.id]);
        let rescued = store.get(job.id).expect("get");
        assert_eq!(rescued.state, State::Failed);
        clock.advance(1);
        assert_eq!(store.purge_finished(0).expect("purge"), 1);
    });
}

#[test]
fn unique_and_idempotency_keys_cancel_and_restart() {
    on_both(|store, _| {
        let first = store
            .enqueue(NewJob::new("k").unique_key("nightly"))
            .expect("enqueue");
        match store.enqueue(NewJob::new("k").unique_key("nightly")) {
            Err(Error::JobAlreadyRunning { job, .. }) => assert_eq!(job, first.id),
            other => panic!("expected a unique key conflict, got {other:?}"),
        }
        let keyed = store
            .enqueue(NewJob::new("k").idempotency_key("req-1"))
            .expect("enqueue");
        let again = store
            .enqueue(NewJob::new("k").idempotency_key("req-1"))
            .expect("enqueue again");
        assert_eq!(again.id, keyed.id);
        assert!(matches!(
            store.enqueue(NewJob::new("other").idempotency_key("req-1")),
            Err(Error::IdempotencyKeyReused { .. })
        ));
        let cancelled = store.cancel(first.id, "op").expect("cancel");
        assert_eq!(cancelled.state, State::Cancelled);
        let second = store
            .enqueue(NewJob::new("k").unique_key("nightly"))
            .expect("the key is free again");
        assert!(matches!(
            store.restart(first.id, "op"),
            Err(Error::JobAlreadyRunning { .. })
        ));
        store.cancel(second.id, "op").expect("cancel");
        assert_eq!(
            store.restart(first.id, "op").expect("restart").state,
            State::Queued
        );
        let stats = store.stats().expect("stats");
        let queued: i64 = stats
            .iter()
            .filter(|c| c.state == State::Queued)
            .map(|c| c.jobs)
            .sum();
        assert_eq!(queued, 2);
    });
}

#[test]
fn what_the_postgres_driver_does_not_do_yet_is_refused_not_faked() {
    let url = support::fresh_database();
    let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("postgres");
    let store = Store::with_driver(Arc::new(driver), StoreOptions::default());
    let job = store
        .enqueue(NewJob::new("k").upload(true))
        .expect("enqueue");
    let unsupported = |result: Result<(), Error>| {
        assert!(
            matches!(result, Err(Error::Unsupported { .. })),
            "{result:?}"
        );
    };
    unsupported(store.list(&jobstore::ListQuery::default()).map(|_| ()));
    unsupported(store.append_data(job.id, &b"abc"[..]).map(|_| ()));
    unsupported(store.definitions().map(|_| ()));
    unsupported(store.throughput(store.now() - 60_000, 60_000).map(|_| ()));
    unsupported(store.check().map(|_| ()));
    // Nothing was written by the refused upload.
    assert_eq!(store.events(job.id).expect("events").len(), 1);
}

#[test]
fn two_stores_on_one_database_never_lease_one_job_twice() {
    let url = support::fresh_database();
    let open = || {
        let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("postgres");
        Store::with_driver(Arc::new(driver), StoreOptions::default())
    };
    let (a, b) = (open(), open());
    let jobs: Vec<NewJob> = (0..200).map(|_| NewJob::new("k").queue("q")).collect();
    a.enqueue_many(jobs).expect("enqueue");
    let claim_all = |store: Store, worker: &'static str| {
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            loop {
                let mut request = ClaimRequest::new(worker, "q");
                request.max = 7;
                let claimed = store.claim(&request).expect("claim");
                if claimed.is_empty() {
                    return ids;
                }
                ids.extend(claimed.iter().map(|job| job.id));
            }
        })
    };
    let (from_a, from_b) = (claim_all(a.clone(), "a"), claim_all(b, "b"));
    let mut ids = from_a.join().expect("a");
    ids.extend(from_b.join().expect("b"));
    let claimed = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((claimed, ids.len()), (200, 200));
}
