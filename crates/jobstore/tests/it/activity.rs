//! The operator's summaries: throughput per interval, queue activity, live counts and the
//! running jobs, counted on a manual clock and within a tenant's scope.

use jobstore::{ClaimRequest, Failure, NewJob, Scope};
use serde_json::json;

use crate::support::{Fixture, T0};

const MINUTE: i64 = 60_000;

#[test]
fn throughput_counts_creations_and_endings_per_interval() {
    let fx = Fixture::new();
    let store = &fx.store;
    for _ in 0..3 {
        store.enqueue(NewJob::new("export").queue("a")).unwrap();
    }
    fx.clock.advance(MINUTE);
    let ok = store
        .claim(&ClaimRequest::new("w1", "a"))
        .unwrap()
        .remove(0);
    store
        .complete(ok.id, &ok.lease().unwrap(), json!(1))
        .unwrap();
    let bad = store
        .claim(&ClaimRequest::new("w1", "a"))
        .unwrap()
        .remove(0);
    store
        .fail(bad.id, &bad.lease().unwrap(), Failure::fatal("no"))
        .unwrap();
    // A retryable failure with attempts left is not an ending.
    let retried = store
        .claim(&ClaimRequest::new("w1", "a"))
        .unwrap()
        .remove(0);
    store
        .fail(
            retried.id,
            &retried.lease().unwrap(),
            Failure::retryable("later"),
        )
        .unwrap();
    fx.clock.advance(MINUTE);
    store.enqueue(NewJob::new("export").queue("b")).unwrap();

    let buckets = store.throughput(T0, MINUTE).unwrap();
    let rows: Vec<_> = buckets
        .iter()
        .map(|b| (b.start - T0, b.created, b.succeeded, b.failed))
        .collect();
    assert_eq!(
        rows,
        [(0, 3, 0, 0), (MINUTE, 0, 1, 1), (2 * MINUTE, 1, 0, 0)]
    );

    // Another tenant sees none of it.
    let other = store.with_scope(Scope::Tenant("other".into()));
    assert!(
        other
            .throughput(T0, MINUTE)
            .unwrap()
            .iter()
            .all(|b| b.created + b.succeeded + b.failed == 0)
    );
    assert!(store.throughput(T0, 10).is_err());
    assert!(store.throughput(T0 - 100_000 * MINUTE, MINUTE).is_err());
}

#[test]
fn queue_activity_counts_waiting_running_failed_and_the_longest_wait() {
    let fx = Fixture::new();
    let store = &fx.store;
    let first = store.enqueue(NewJob::new("k").queue("a")).unwrap();
    fx.clock.advance(1000);
    let second = store.enqueue(NewJob::new("k").queue("a")).unwrap();
    store
        .enqueue(NewJob::new("k").queue("a").run_at(T0 + 10 * MINUTE))
        .unwrap();
    let running = store.enqueue(NewJob::new("k").queue("b")).unwrap();
    let failing = store.enqueue(NewJob::new("k").queue("b")).unwrap();
    let claimed = store
        .claim(&ClaimRequest {
            max: 2,
            ..ClaimRequest::new("w1", "b")
        })
        .unwrap();
    assert_eq!(claimed.len(), 2);
    let failed = claimed.iter().find(|j| j.id == failing.id).unwrap();
    store
        .fail(failed.id, &failed.lease().unwrap(), Failure::fatal("no"))
        .unwrap();
    store
        .with_scope(Scope::Tenant("other".into()))
        .enqueue(NewJob::new("k").queue("a"))
        .unwrap();

    let queues = store.queue_activity(T0).unwrap();
    assert_eq!(queues.len(), 2, "{queues:?}");
    let a = &queues[0];
    assert_eq!(
        (a.queue.as_str(), a.queued, a.due, a.running),
        ("a", 3, 2, 0)
    );
    assert_eq!(
        (a.oldest_due_id, a.oldest_due_since),
        (Some(first.id), Some(T0))
    );
    let b = &queues[1];
    assert_eq!(
        (b.queue.as_str(), b.queued, b.running, b.failed_since),
        ("b", 0, 1, 1)
    );
    assert_ne!(second.id, first.id);

    // Every tenant: the other tenant's job in `a` adds to it.
    let all = store.with_scope(Scope::All).queue_activity(T0).unwrap();
    assert_eq!(all[0].queued, 4);
    let counts = store.with_scope(Scope::All).live_counts().unwrap();
    let rows: Vec<_> = counts
        .iter()
        .map(|c| (c.tenant.as_str(), c.queue.as_str(), c.queued, c.running))
        .collect();
    assert_eq!(
        rows,
        [
            ("default", "a", 3, 0),
            ("default", "b", 0, 1),
            ("other", "a", 1, 0)
        ]
    );

    let jobs = store.running_jobs(10).unwrap();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [running.id]);
    assert_eq!(jobs[0].lease_owner.as_deref(), Some("w1"));
    assert!(
        store
            .with_scope(Scope::Tenant("other".into()))
            .running_jobs(10)
            .unwrap()
            .is_empty()
    );
    assert!(store.running_jobs(0).is_err());
}
