//! A job's life through the store: create, claim, heartbeat, complete, fail and retry,
//! cancel, restart, delete, rescue; fencing tokens; unique and idempotency keys.

use jobstore::{ClaimRequest, Error, Failure, Heartbeat, NewJob, State};
use serde_json::json;

use crate::support::{Fixture, T0};

fn claim_one(f: &Fixture, worker: &str) -> jobstore::Job {
    let mut jobs = f
        .store
        .claim(&ClaimRequest::new(worker, "default"))
        .expect("claim");
    assert_eq!(jobs.len(), 1, "expected one job to claim");
    jobs.remove(0)
}

/// A heartbeat that names no lease length keeps the one the job holds: the claim's, then the
/// last one a heartbeat named. It never falls back to the store's default (30 s), which would
/// cut a long lease short and let rescue run the job a second time while its worker works.
#[test]
fn a_heartbeat_naming_no_lease_keeps_the_length_the_job_holds() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("export")).unwrap();
    let claimed = f
        .store
        .claim(&ClaimRequest {
            lease_ms: 600_000,
            ..ClaimRequest::new("w1", "default")
        })
        .unwrap()
        .remove(0);
    let lease = claimed.lease().unwrap();
    let beat = |progress: serde_json::Value, lease_ms: Option<i64>| {
        f.store
            .heartbeat(
                job.id,
                &lease,
                Heartbeat {
                    progress: Some(progress),
                    lease_ms,
                    ..Heartbeat::default()
                },
            )
            .unwrap()
            .lease_expires_at
    };

    f.clock.advance(200_000);
    assert_eq!(beat(json!({"rows": 1}), None), T0 + 200_000 + 600_000);
    f.clock.advance(1_000);
    assert_eq!(beat(json!({"rows": 2}), Some(5_000)), T0 + 201_000 + 5_000);
    f.clock.advance(1_000);
    assert_eq!(beat(json!({"rows": 3}), None), T0 + 202_000 + 5_000);

    // Past the claim's 30 s default and well inside its own lease, rescue leaves it running.
    f.clock.advance(4_000);
    assert!(f.store.rescue_expired_leases().unwrap().is_empty());
    assert_eq!(f.store.get(job.id).unwrap().state, State::Running);
}

#[test]
fn a_job_runs_from_queued_to_succeeded_with_its_history() {
    let f = Fixture::new();
    let job = f
        .store
        .enqueue(NewJob::new("export").payload(json!({"table": "accounts"})))
        .unwrap();
    assert_eq!(job.state, State::Queued);
    assert_eq!(job.created_at, T0);
    assert_eq!(job.tenant, "default");

    f.clock.advance(5);
    let claimed = claim_one(&f, "w1");
    assert_eq!(claimed.id, job.id);
    assert_eq!(claimed.state, State::Running);
    assert_eq!(claimed.attempt, 1);
    assert_eq!(claimed.lease_owner.as_deref(), Some("w1"));
    assert_eq!(claimed.lease_expires_at, Some(T0 + 5 + 30_000));
    let lease = claimed.lease().unwrap();

    let answer = f
        .store
        .heartbeat(
            job.id,
            &lease,
            Heartbeat {
                progress: Some(json!({"numberRecordsProcessed": 10})),
                phase: Some("update".into()),
                lease_ms: Some(60_000),
            },
        )
        .unwrap();
    assert!(!answer.cancel_requested);
    assert_eq!(answer.lease_expires_at, T0 + 5 + 60_000);
    f.store
        .heartbeat(
            job.id,
            &lease,
            Heartbeat {
                progress: Some(json!({"numberRecordsFailed": 1})),
                ..Heartbeat::default()
            },
        )
        .unwrap();
    let running = f.store.get(job.id).unwrap();
    assert_eq!(
        running.progress,
        json!({"numberRecordsProcessed": 10, "numberRecordsFailed": 1})
    );
    assert_eq!(running.phase.as_deref(), Some("update"));

    f.clock.advance(10);
    let done = f
        .store
        .complete(job.id, &lease, json!({"rows": 10}))
        .unwrap();
    assert_eq!(done.state, State::Succeeded);
    assert_eq!(done.result, Some(json!({"rows": 10})));
    assert_eq!(done.finished_at, Some(T0 + 15));
    assert_eq!(done.lease_owner, None);

    let events: Vec<_> = f
        .store
        .events(job.id)
        .unwrap()
        .into_iter()
        .map(|e| (e.event, e.from, e.to))
        .collect();
    assert_eq!(
        events,
        vec![
            ("create".to_owned(), None, State::Queued),
            ("claim".to_owned(), Some(State::Queued), State::Running),
            (
                "complete".to_owned(),
                Some(State::Running),
                State::Succeeded
            ),
        ]
    );
}

#[test]
fn retryable_failures_back_off_then_fail_when_attempts_run_out() {
    let f = Fixture::new();
    let job = f
        .store
        .enqueue(NewJob::new("import").max_attempts(2))
        .unwrap();

    let lease = claim_one(&f, "w").lease().unwrap();
    let retried = f
        .store
        .fail(job.id, &lease, Failure::retryable("timeout"))
        .unwrap();
    assert_eq!(retried.state, State::Queued);
    assert_eq!(retried.error.as_deref(), Some("timeout"));
    // First retry: 1 s base plus at most a quarter of jitter.
    assert!(
        retried.run_at >= T0 + 1000 && retried.run_at <= T0 + 1250,
        "{}",
        retried.run_at
    );

    // Not claimable before its run_at.
    assert!(
        f.store
            .claim(&ClaimRequest::new("w", "default"))
            .unwrap()
            .is_empty()
    );
    f.clock.set(retried.run_at);
    let second = claim_one(&f, "w");
    assert_eq!(second.attempt, 2);
    assert!(second.lease_token > lease.token.into());
    let failed = f
        .store
        .fail(
            job.id,
            &second.lease().unwrap(),
            Failure::retryable("timeout again"),
        )
        .unwrap();
    assert_eq!(failed.state, State::Failed);
    assert!(failed.finished_at.is_some());
}

#[test]
fn a_fatal_failure_ends_the_job_at_once() {
    let f = Fixture::new();
    let job = f
        .store
        .enqueue(NewJob::new("import").max_attempts(5))
        .unwrap();
    let lease = claim_one(&f, "w").lease().unwrap();
    let failed = f
        .store
        .fail(job.id, &lease, Failure::fatal("bad file"))
        .unwrap();
    assert_eq!(failed.state, State::Failed);
    assert_eq!(failed.attempt, 1);
}

#[test]
fn a_stale_lease_is_refused_and_changes_nothing() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("export")).unwrap();
    let first = claim_one(&f, "w1").lease().unwrap();
    // The lease runs out; rescue puts the job back and another worker claims it.
    f.clock.advance(30_001);
    assert_eq!(f.store.rescue_expired_leases().unwrap(), vec![job.id]);
    let rescued = f.store.get(job.id).unwrap();
    assert_eq!(rescued.state, State::Queued);
    f.clock.set(rescued.run_at);
    let second = claim_one(&f, "w2").lease().unwrap();
    assert!(second.token > first.token);

    let before = f.snapshot();
    for result in [
        f.store
            .heartbeat(job.id, &first, Heartbeat::default())
            .map(|_| ()),
        f.store.complete(job.id, &first, json!(null)).map(|_| ()),
        f.store
            .fail(job.id, &first, Failure::fatal("late"))
            .map(|_| ()),
    ] {
        match result {
            Err(Error::StaleLease {
                job: j,
                lease_token,
                ..
            }) => {
                assert_eq!(j, job.id);
                assert_eq!(lease_token, first.token);
            }
            other => panic!("expected a stale lease, got {other:?}"),
        }
    }
    // The same token with another worker's name is refused as well.
    let forged = jobstore::Lease {
        worker: "w1".into(),
        token: second.token,
    };
    assert!(matches!(
        f.store.complete(job.id, &forged, json!(null)),
        Err(Error::StaleLease { .. })
    ));
    assert_eq!(f.snapshot(), before);
    f.store.complete(job.id, &second, json!(1)).unwrap();
}

#[test]
fn cancelling_a_queued_job_is_immediate_and_a_running_one_cooperative() {
    let f = Fixture::new();
    let queued = f.store.enqueue(NewJob::new("a")).unwrap();
    let cancelled = f.store.cancel(queued.id, "alice").unwrap();
    assert_eq!(cancelled.state, State::Cancelled);
    assert!(cancelled.finished_at.is_some());

    let running = f.store.enqueue(NewJob::new("b")).unwrap();
    let lease = claim_one(&f, "w").lease().unwrap();
    let asked = f.store.cancel(running.id, "alice").unwrap();
    assert_eq!(asked.state, State::Running);
    assert!(asked.cancel_requested_at.is_some());
    // Asking twice changes nothing.
    assert_eq!(f.store.cancel(running.id, "alice").unwrap(), asked);
    let answer = f
        .store
        .heartbeat(running.id, &lease, Heartbeat::default())
        .unwrap();
    assert!(answer.cancel_requested);
    // The worker acknowledges by failing, even with a retryable failure.
    let acknowledged = f
        .store
        .fail(running.id, &lease, Failure::retryable("stopped"))
        .unwrap();
    assert_eq!(acknowledged.state, State::Cancelled);

    // A finished job cannot be cancelled.
    match f.store.cancel(running.id, "alice") {
        Err(Error::InvalidTransition { job, from, event }) => {
            assert_eq!(job, running.id);
            assert_eq!(from, Some(State::Cancelled));
            assert_eq!(event, "cancel");
        }
        other => panic!("expected an invalid transition, got {other:?}"),
    }
}

#[test]
fn completing_after_a_cancel_request_succeeds_because_the_work_is_done() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("a")).unwrap();
    let lease = claim_one(&f, "w").lease().unwrap();
    f.store.cancel(job.id, "").unwrap();
    let done = f.store.complete(job.id, &lease, json!("ok")).unwrap();
    assert_eq!(done.state, State::Succeeded);
}

#[test]
fn an_expired_lease_with_a_cancel_request_ends_cancelled() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("a")).unwrap();
    claim_one(&f, "w");
    f.store.cancel(job.id, "").unwrap();
    f.clock.advance(60_000);
    f.store.rescue_expired_leases().unwrap();
    assert_eq!(f.store.get(job.id).unwrap().state, State::Cancelled);
}

#[test]
fn restart_requeues_failed_jobs_unless_they_forbid_it() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("a")).unwrap();
    let lease = claim_one(&f, "w").lease().unwrap();
    f.store.fail(job.id, &lease, Failure::fatal("x")).unwrap();
    let restarted = f.store.restart(job.id, "ops").unwrap();
    assert_eq!(restarted.state, State::Queued);
    assert_eq!(restarted.attempt, 0);
    assert_eq!(restarted.error, None);
    assert_eq!(restarted.finished_at, None);
    // A queued job cannot be restarted.
    assert!(matches!(
        f.store.restart(job.id, "ops"),
        Err(Error::InvalidTransition { .. })
    ));

    let fixed = f
        .store
        .enqueue(NewJob::new("b").restartable(false))
        .unwrap();
    f.store.cancel(fixed.id, "").unwrap();
    assert!(matches!(
        f.store.restart(fixed.id, "ops"),
        Err(Error::NotRestartable { job }) if job == fixed.id
    ));
}

#[test]
fn only_finished_jobs_can_be_deleted_and_deletion_takes_everything() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("a")).unwrap();
    assert!(matches!(
        f.store.delete(job.id),
        Err(Error::InvalidTransition {
            from: Some(State::Queued),
            ..
        })
    ));
    f.store
        .append_log(job.id, vec![(jobstore::LogLevel::Info, "hello".into())])
        .unwrap();
    f.store.cancel(job.id, "").unwrap();
    f.store.delete(job.id).unwrap();
    assert!(matches!(f.store.get(job.id), Err(Error::JobNotFound { id }) if id == job.id));
    for table in ["job_events", "job_logs"] {
        let n = f.count(
            &format!("SELECT count(*) FROM {table} WHERE job_id = $1"),
            &[job.id],
        );
        assert_eq!(n, 0, "{table}");
    }
    // Ids are never reused.
    let next = f.store.enqueue(NewJob::new("a")).unwrap();
    assert!(next.id > job.id);
}

#[test]
fn a_unique_key_admits_one_live_job_at_a_time() {
    let f = Fixture::new();
    let first = f
        .store
        .enqueue(NewJob::new("sync").unique_key("account-7"))
        .unwrap();
    match f.store.enqueue(NewJob::new("sync").unique_key("account-7")) {
        Err(Error::JobAlreadyRunning { unique_key, job }) => {
            assert_eq!(unique_key, "account-7");
            assert_eq!(job, first.id);
        }
        other => panic!("expected JobAlreadyRunning, got {other:?}"),
    }
    f.store.cancel(first.id, "").unwrap();
    // Once the holder finished, the key is free again.
    f.store
        .enqueue(NewJob::new("sync").unique_key("account-7"))
        .unwrap();
    // Keys are per tenant.
    f.store
        .with_scope(jobstore::Scope::Tenant("acme".into()))
        .enqueue(NewJob::new("sync").unique_key("account-7"))
        .unwrap();
}

#[test]
fn an_idempotency_key_returns_the_first_job() {
    let f = Fixture::new();
    let new = NewJob::new("export")
        .idempotency_key("req-1")
        .payload(json!({"a": 1}));
    let first = f.store.enqueue(new.clone()).unwrap();
    let again = f.store.enqueue(new).unwrap();
    assert_eq!(first, again);
    assert_eq!(f.count("SELECT count(*) FROM jobs", &[]), 1);
    match f.store.enqueue(
        NewJob::new("export")
            .idempotency_key("req-1")
            .payload(json!({"a": 2})),
    ) {
        Err(Error::IdempotencyKeyReused { key, job }) => {
            assert_eq!(key, "req-1");
            assert_eq!(job, first.id);
        }
        other => panic!("expected IdempotencyKeyReused, got {other:?}"),
    }
}

#[test]
fn claims_follow_priority_then_run_at_then_id_and_respect_queues() {
    let f = Fixture::new();
    let low = f.store.enqueue(NewJob::new("a").priority(5)).unwrap();
    let late = f.store.enqueue(NewJob::new("a").run_at(T0 - 10)).unwrap();
    let early = f.store.enqueue(NewJob::new("a").run_at(T0 - 20)).unwrap();
    let urgent = f.store.enqueue(NewJob::new("a").priority(-1)).unwrap();
    let other_queue = f.store.enqueue(NewJob::new("a").queue("other")).unwrap();
    let future = f.store.enqueue(NewJob::new("a").run_at(T0 + 1000)).unwrap();
    let request = ClaimRequest {
        max: 10,
        ..ClaimRequest::new("w", "default")
    };
    let ids: Vec<i64> = f
        .store
        .claim(&request)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, vec![urgent.id, early.id, late.id, low.id]);
    assert!(f.store.claim(&request).unwrap().is_empty());
    f.clock.advance(1000);
    let request = ClaimRequest {
        queues: vec!["default".into(), "other".into()],
        ..request
    };
    let ids: Vec<i64> = f
        .store
        .claim(&request)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(ids, vec![other_queue.id, future.id]);
}

#[test]
fn tenants_see_only_their_own_jobs_and_admins_see_all() {
    let f = Fixture::new();
    let acme = f.store.with_scope(jobstore::Scope::Tenant("acme".into()));
    let globex = f.store.with_scope(jobstore::Scope::Tenant("globex".into()));
    let job = acme.enqueue(NewJob::new("a")).unwrap();
    assert_eq!(job.tenant, "acme");
    assert!(matches!(globex.get(job.id), Err(Error::JobNotFound { .. })));
    assert!(matches!(
        globex.cancel(job.id, ""),
        Err(Error::JobNotFound { .. })
    ));
    assert!(
        globex
            .claim(&ClaimRequest::new("w", "default"))
            .unwrap()
            .is_empty()
    );
    let admin = f.store.with_scope(jobstore::Scope::All);
    assert_eq!(admin.get(job.id).unwrap().tenant, "acme");
    let page = globex.list(&jobstore::ListQuery::default()).unwrap();
    assert!(page.jobs.is_empty());
    assert_eq!(
        admin
            .list(&jobstore::ListQuery::default())
            .unwrap()
            .jobs
            .len(),
        1
    );
}

#[test]
fn purge_removes_old_finished_jobs_only() {
    let f = Fixture::new();
    let old = f.store.enqueue(NewJob::new("a")).unwrap();
    f.store.cancel(old.id, "").unwrap();
    let live = f.store.enqueue(NewJob::new("a")).unwrap();
    f.clock.advance(10_000);
    let recent = f.store.enqueue(NewJob::new("a")).unwrap();
    f.store.cancel(recent.id, "").unwrap();
    assert_eq!(f.store.purge_finished(5_000).unwrap(), 1);
    assert!(f.store.get(old.id).is_err());
    assert!(f.store.get(live.id).is_ok());
    assert!(f.store.get(recent.id).is_ok());
    assert!(f.store.check().unwrap().is_ok());
}

#[test]
fn stats_count_jobs_by_queue_and_state() {
    let f = Fixture::new();
    f.store.enqueue(NewJob::new("a")).unwrap();
    f.store.enqueue(NewJob::new("a")).unwrap();
    f.store
        .enqueue(NewJob::new("a").queue("q2").upload(true))
        .unwrap();
    let stats = f.store.stats().unwrap();
    assert_eq!(
        stats,
        vec![
            jobstore::QueueCount {
                queue: "default".into(),
                state: State::Queued,
                jobs: 2
            },
            jobstore::QueueCount {
                queue: "q2".into(),
                state: State::Open,
                jobs: 1
            },
        ]
    );
}

#[test]
fn discard_takes_a_waiting_job_in_one_step_but_never_a_running_one() {
    let f = Fixture::new();
    let upload = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    f.store.append_data(upload.id, &b"a,b\n"[..]).unwrap();
    f.store.close_upload(upload.id, "").unwrap();
    f.store
        .discard(upload.id, &[State::Queued, State::Succeeded])
        .unwrap();
    assert!(matches!(
        f.store.get(upload.id),
        Err(Error::JobNotFound { .. })
    ));
    assert_eq!(f.count("SELECT count(*) FROM job_data_chunks", &[]), 0);

    let running = f.store.enqueue(NewJob::new("a")).unwrap();
    claim_one(&f, "w");
    let before = f.snapshot();
    for allowed in [&[State::Running][..], &[State::Queued][..]] {
        assert!(matches!(
            f.store.discard(running.id, allowed),
            Err(Error::InvalidTransition {
                from: Some(State::Running),
                event: "delete",
                ..
            })
        ));
    }
    assert_eq!(f.snapshot(), before);
}

#[test]
fn enqueue_answers_the_row_as_stored() {
    // enqueue builds its answer instead of reading the row back: it must be that row.
    let f = Fixture::new();
    let admin = f.store.with_scope(jobstore::Scope::All);
    let cases = vec![
        (f.store.clone(), NewJob::new("export")),
        (
            f.store.clone(),
            NewJob::new("import")
                .queue("bulk")
                .name("nightly")
                .source("s3://in")
                .target("Account")
                .created_by("alice")
                .dialect("datacloud")
                .priority(-3)
                .run_at(T0 + 5_000)
                .max_attempts(7)
                .unique_key("nightly-import")
                .idempotency_key("k-1")
                .payload(json!({"a": [1, 2.5, "x"], "b": {"c": null}, "z": true}))
                .upload(true)
                .restartable(false),
        ),
        (admin, NewJob::new("export").tenant("acme")),
    ];
    for (store, new) in cases {
        let answered = store.enqueue(new).unwrap();
        let stored = f
            .store
            .with_scope(jobstore::Scope::All)
            .get(answered.id)
            .unwrap();
        assert_eq!(answered, stored);
    }
}

#[test]
fn enqueue_many_answers_the_rows_as_stored_in_their_order() {
    // A batch without idempotency keys is inserted at once: each answer must still be its
    // row, in the order asked, with one create event each.
    let f = Fixture::new();
    let admin = f.store.with_scope(jobstore::Scope::All);
    let batch = vec![
        NewJob::new("import")
            .queue("bulk")
            .name("nightly")
            .source("s3://in")
            .target("Account")
            .created_by("alice")
            .dialect("datacloud")
            .priority(-3)
            .run_at(T0 + 5_000)
            .max_attempts(7)
            .unique_key("nightly-import")
            .payload(json!({"a": [1, 2.5, "x"], "b": {"c": null}, "z": true}))
            .upload(true)
            .restartable(false),
        NewJob::new("export").tenant("acme"),
        NewJob::new("export").payload(json!(3)),
    ];
    let answered = admin.enqueue_many(batch).unwrap();
    assert_eq!(answered.len(), 3);
    assert_eq!(
        answered.iter().map(|j| j.kind.as_str()).collect::<Vec<_>>(),
        ["import", "export", "export"]
    );
    assert!(
        answered.windows(2).all(|w| w[0].id < w[1].id),
        "ids in order"
    );
    assert_eq!(answered[1].tenant, "acme");
    for job in &answered {
        assert_eq!(job, &admin.get(job.id).unwrap());
        let events = admin.events(job.id).unwrap();
        assert_eq!(
            events.iter().map(|e| e.event.as_str()).collect::<Vec<_>>(),
            ["create"]
        );
    }
}

#[test]
fn rescue_and_purge_cover_every_tenant_of_their_scope() {
    let f = Fixture::new();
    let tenants = ["acme", "default", "globex", "zeta"];
    let scoped = |t: &str| f.store.with_scope(jobstore::Scope::Tenant(t.into()));
    let admin = f.store.with_scope(jobstore::Scope::All);
    let mut running = Vec::new();
    let mut finished = Vec::new();
    for t in tenants {
        let store = scoped(t);
        running.push(store.enqueue(NewJob::new("run")).unwrap().id);
        let done = store.enqueue(NewJob::new("done")).unwrap();
        store.cancel(done.id, "").unwrap();
        finished.push(done.id);
        // Leased in that tenant's scope, then abandoned.
        let claimed = store.claim(&ClaimRequest::new("w", "default")).unwrap();
        assert_eq!(claimed.len(), 1);
    }
    f.clock.advance(30_001);
    // A tenant's rescue touches that tenant only; the admin scope the rest, every tenant.
    assert_eq!(
        scoped("globex").rescue_expired_leases().unwrap(),
        vec![running[2]]
    );
    let mut rescued = admin.rescue_expired_leases().unwrap();
    rescued.sort_unstable();
    assert_eq!(rescued, vec![running[0], running[1], running[3]]);
    for id in &running {
        assert_eq!(admin.get(*id).unwrap().state, State::Queued);
    }
    // The same for the retention purge.
    assert_eq!(scoped("zeta").purge_finished(10_000).unwrap(), 1);
    assert_eq!(admin.purge_finished(10_000).unwrap(), 3);
    for id in &finished {
        assert!(matches!(admin.get(*id), Err(Error::JobNotFound { .. })));
    }
    for id in &running {
        assert!(admin.get(*id).is_ok(), "a live job was purged");
    }
    assert!(f.store.check().unwrap().is_ok());
}

/// The tail of a job's log, oldest first, and reading on from its last line.
#[test]
fn a_log_tail_then_the_lines_after_it() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("k")).unwrap();
    let other = f.store.enqueue(NewJob::new("k")).unwrap();
    for n in 1..=20 {
        f.store
            .append_log(
                job.id,
                vec![(jobstore::LogLevel::Info, format!("line {n}"))],
            )
            .unwrap();
        f.store
            .append_log(
                other.id,
                vec![(jobstore::LogLevel::Info, format!("other {n}"))],
            )
            .unwrap();
    }
    let text = |lines: &[jobstore::LogLine]| -> Vec<String> {
        lines.iter().map(|l| l.message.clone()).collect()
    };
    let tail = f.store.log_tail(job.id, 0, 3).unwrap();
    assert_eq!(text(&tail), ["line 18", "line 19", "line 20"]);
    assert_eq!(f.store.log_tail(job.id, 0, 100).unwrap().len(), 20);
    // The tail of what came after a line: a viewer that fell behind catches up.
    let early = f.store.log(job.id, 0, 5).unwrap();
    let after_five = early.last().map(|l| l.seq).unwrap();
    assert_eq!(
        text(&f.store.log_tail(job.id, after_five, 2).unwrap()),
        ["line 19", "line 20"]
    );
    assert_eq!(f.store.log_tail(job.id, after_five, 100).unwrap().len(), 15);
    let last = tail.last().map(|l| l.seq).unwrap();
    assert!(f.store.log(job.id, last, 10).unwrap().is_empty());
    f.store
        .append_log(
            job.id,
            vec![(jobstore::LogLevel::Warn, "line 21".to_owned())],
        )
        .unwrap();
    assert_eq!(text(&f.store.log(job.id, last, 10).unwrap()), ["line 21"]);
    assert!(matches!(
        f.store.log_tail(999_999, 0, 3),
        Err(jobstore::Error::JobNotFound { id: 999_999 })
    ));
}
