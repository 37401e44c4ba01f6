//! Group commit: concurrent writes share transactions, and a failing write in a group is
//! rolled back alone.

use std::sync::{Arc, Barrier};

use jobstore::{Error, NewJob, Scope};

use crate::support::Fixture;

#[test]
fn concurrent_writers_share_commits_and_every_acknowledged_job_is_there() {
    let f = Fixture::new();
    let threads = 8;
    let per_thread = 150;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = f.store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                (0..per_thread)
                    .map(|i| {
                        store
                            .enqueue(NewJob::new("e").name(format!("{t}-{i}")))
                            .unwrap()
                            .id
                    })
                    .collect::<Vec<i64>>()
            })
        })
        .collect();
    let ids: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(ids.len(), threads * per_thread);
    let stored: i64 = f
        .sql()
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as usize, ids.len());
    let stats = f.store.writer_stats();
    assert!(stats.writes >= ids.len() as u64);
    assert!(
        stats.commits < stats.writes,
        "no two writes shared a commit: {stats:?}"
    );
}

#[test]
fn a_failing_write_is_rolled_back_alone() {
    let f = Fixture::new();
    f.store
        .enqueue(NewJob::new("e").unique_key("taken"))
        .unwrap();
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = f.store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                (0..50)
                    .map(|i| {
                        let new = if (t + i) % 2 == 0 {
                            NewJob::new("e").unique_key("taken")
                        } else {
                            NewJob::new("e").name(format!("{t}-{i}"))
                        };
                        store.enqueue(new)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<_> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let created = outcomes.iter().filter(|o| o.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|o| matches!(o, Err(Error::JobAlreadyRunning { .. })))
        .count();
    assert_eq!(created + refused, outcomes.len());
    assert_eq!(created, 200);
    let all = f
        .store
        .with_scope(Scope::All)
        .list(&jobstore::ListQuery {
            limit: Some(1000),
            ..jobstore::ListQuery::default()
        })
        .unwrap();
    // The 200 acknowledged jobs and the key holder; none of the refused ones.
    assert_eq!(all.jobs.len(), 201);
    assert!(f.store.check().unwrap().is_ok());
}
