//! Checks of the PostgreSQL driver beside the core's behaviour tests (`tests/core`): a few
//! behaviours run on the SQLite driver and on the PostgreSQL driver side by side (a throwaway
//! cluster, `support`), and what only PostgreSQL has: several stores on one database, the
//! uploaders of daemons that are gone, backup and checkpoints left to the server, a claim that
//! loses a deadlock run again.

mod support;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobstore::driver::{ClaimJobs, Driver, PendingReply, WriteOp, WriteTx};
use jobstore::{
    ClaimRequest, Error, Failure, Heartbeat, Job, ManualClock, NewJob, State, Store, StoreOptions,
    UploadLimits,
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
fn backup_is_the_engines_own_and_checkpoints_are_the_servers() {
    let url = support::fresh_database();
    let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("postgres");
    let store = Store::with_driver(Arc::new(driver), StoreOptions::default());
    let dir = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        store.backup_to(dir.path().join("copy")),
        Err(Error::Unsupported { .. })
    ));
    assert!(store.checkpoint().expect("checkpoint"));
    assert!(store.check().expect("check").is_ok());
}

/// A daemon's uploads are named by its instance; once no session of the server carries that
/// name (the daemon is gone), another daemon reclaims its incomplete batches, and never a
/// live daemon's or one of an uploader it cannot judge.
#[test]
fn batches_of_a_gone_daemon_are_reclaimed_and_a_live_ones_are_kept() {
    let url = support::fresh_database();
    let open = || {
        let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("postgres");
        Store::with_driver(Arc::new(driver), StoreOptions::default())
    };
    let (live, survivor) = (open(), open());
    let job = survivor
        .enqueue(NewJob::new("ingest").upload(true))
        .expect("enqueue");
    let mut upload = live
        .begin_upload_call(job.id, UploadLimits::default())
        .wait()
        .expect("begin upload");
    upload.push(&[7_u8; 300_000]).expect("push");
    if let Some(chunk) = upload.chunk_call() {
        chunk.wait().expect("chunk");
    }
    let mut client = support::connect(&url);
    let name: String = client
        .query_one(
            "SELECT uploader FROM job_data_batches WHERE job_id = $1",
            &[&job.id],
        )
        .expect("uploader")
        .get(0);
    assert!(name.starts_with("jobstore-"), "{name}");
    let sessions: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .expect("sessions")
        .get(0);
    assert!(
        sessions >= 1,
        "the live daemon's connections carry its name"
    );
    // What a killed daemon leaves (a batch and a chunk under a name no session carries), one
    // under a name of no jobstore daemon, and one whose uploader is unknown.
    for (batch, uploader) in [
        (7_i64, Some("jobstore-00000000dead0000")),
        (8, Some("4194305:1")),
        (9, None),
    ] {
        client
            .execute(
                "INSERT INTO job_data_batches (job_id, batch, created_at, updated_at, uploader) \
                 VALUES ($1, $2, 0, 0, $3)",
                &[&job.id, &batch, &uploader],
            )
            .expect("batch");
        client
            .execute(
                "INSERT INTO job_data_chunks (job_id, batch, chunk, data) \
                 VALUES ($1, $2, 0, '\\x00')",
                &[&job.id, &batch],
            )
            .expect("chunk");
    }
    assert_eq!(survivor.reclaim_abandoned_batches().expect("reclaim"), 1);
    let batches = |client: &mut postgres::Client| -> Vec<i64> {
        client
            .query(
                "SELECT batch FROM job_data_batches WHERE job_id = $1 ORDER BY batch",
                &[&job.id],
            )
            .expect("batches")
            .iter()
            .map(|row| row.get(0))
            .collect()
    };
    assert_eq!(
        batches(&mut client),
        [1, 8, 9],
        "the live upload and the unknown ones stay"
    );
    // The live upload still finishes, whole, and reads back through the other daemon.
    let done = upload.finish_call().wait().expect("finish");
    assert_eq!(done.bytes, 300_000);
    assert_eq!(survivor.reclaim_abandoned_batches().expect("reclaim"), 0);
    let mut read = Vec::new();
    std::io::Read::read_to_end(
        &mut survivor.read_data(job.id, None).expect("read data"),
        &mut read,
    )
    .expect("read");
    assert_eq!(read, vec![7_u8; 300_000]);
    client
        .execute("DELETE FROM job_data_batches WHERE batch IN (8, 9)", &[])
        .expect("tidy");
    assert!(survivor.check().expect("check").is_ok());
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

/// Uploads begun at once through two stores on one database (each with several writers):
/// exactly as many begin as the batch limit leaves room for.
#[test]
fn a_batch_limit_holds_across_daemons() {
    let url = support::fresh_database();
    let open = || {
        let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("postgres");
        Store::with_driver(Arc::new(driver), StoreOptions::default())
    };
    let (a, b) = (open(), open());
    let job = a
        .enqueue(NewJob::new("ingest").upload(true))
        .expect("enqueue");
    let limits = UploadLimits {
        max_batches: Some(2),
        max_batch_bytes: None,
    };
    let begun: Vec<_> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|n| {
                let store = if n % 2 == 0 { &a } else { &b };
                scope.spawn(move || store.begin_upload_call(job.id, limits).wait())
            })
            .collect();
        racers
            .into_iter()
            .map(|r| r.join().expect("racer"))
            .collect()
    });
    assert_eq!(begun.iter().filter(|b| b.is_ok()).count(), 2, "{begun:?}");
    assert!(
        begun
            .iter()
            .filter_map(|b| b.as_ref().err())
            .all(|err| matches!(err, Error::TooManyDataBatches { limit: 2, .. })),
        "{begun:?}"
    );
    for upload in begun.into_iter().flatten() {
        upload.finish_call().wait().expect("finish");
    }
    assert_eq!(b.data_batches(job.id).expect("batches").len(), 2);
}

/// A create under an idempotency key that another daemon's driver is still writing (a client
/// retrying through a second daemon while the first still runs its create) waits for that
/// write and then answers by the key, never a storage error from the key's primary key. The
/// other daemon's create is held open inside its transaction, through the driver's seam.
#[test]
fn a_create_waits_for_another_daemons_create_under_the_same_key() {
    use jobstore::driver::{Driver, JobRow, PendingReply, WriteOp, WriteTx};
    use std::sync::mpsc;

    /// A create of job `held` under key `k` that stays in its transaction until released.
    struct HeldCreate {
        inside: mpsc::Sender<jobstore::Result<i64>>,
        release: mpsc::Receiver<()>,
        committed: mpsc::Sender<jobstore::Result<i64>>,
    }
    struct Held(i64, mpsc::Sender<jobstore::Result<i64>>);
    impl PendingReply for Held {
        fn succeeded(&self) -> bool {
            true
        }
        fn finish(self: Box<Self>, commit: jobstore::Result<()>) {
            let _ = self.1.send(commit.map(|()| self.0));
        }
    }
    impl WriteOp for HeldCreate {
        fn run(self: Box<Self>, tx: &mut dyn WriteTx) -> Box<dyn PendingReply> {
            let new = NewJob::new("held");
            let created = tx.idempotency_key("default", "k").and_then(|found| {
                assert!(found.is_none(), "the key is free before the held create");
                let id = tx.insert_job(&JobRow {
                    tenant: "default",
                    new: &new,
                    payload: "null",
                    state: State::Queued,
                    definition_id: None,
                    restart_of: None,
                    now: START,
                })?;
                tx.insert_idempotency_key("default", "k", id, "another-request", START)?;
                Ok(id)
            });
            let id = created.as_ref().map_or(0, |id| *id);
            let _ = self.inside.send(created);
            let _ = self.release.recv();
            Box::new(Held(id, self.committed))
        }
        fn refuse(self: Box<Self>, err: Error) {
            let _ = self.inside.send(Err(err));
        }
    }

    let url = support::fresh_database();
    let other = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("connect");
    let store = Store::with_driver(
        Arc::new(PostgresDriver::connect(&url, &PostgresOptions::default()).expect("connect")),
        StoreOptions::default(),
    );
    let (inside, inside_rx) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let (committed, committed_rx) = mpsc::channel();
    other.submit(Box::new(HeldCreate {
        inside,
        release: release_rx,
        committed,
    }));
    let held = inside_rx
        .recv()
        .expect("the held create ran")
        .expect("held create");

    let (answer_tx, answer_rx) = mpsc::channel();
    let creating = store.clone();
    std::thread::spawn(move || {
        let _ = answer_tx.send(creating.enqueue(NewJob::new("mine").idempotency_key("k")));
    });
    // The create waits for the held one's transaction: no answer while it is open.
    assert!(
        answer_rx
            .recv_timeout(std::time::Duration::from_millis(500))
            .is_err(),
        "the create did not wait for the other daemon's create under its key"
    );
    release.send(()).expect("release");
    assert_eq!(
        committed_rx.recv().expect("committed").expect("commit"),
        held
    );
    match answer_rx.recv().expect("the create's answer") {
        Err(Error::IdempotencyKeyReused { key, job }) => {
            assert_eq!((key.as_str(), job), ("k", held))
        }
        other => panic!("expected the key's reuse by job {held}, got {other:?}"),
    }
    assert_eq!(
        store
            .list(&jobstore::ListQuery::default())
            .expect("list")
            .jobs
            .len(),
        1
    );
}

/// Waits until a session of the driver instance `name` waits for a lock.
fn until_waiting(url: &str, name: &str) {
    let mut admin = support::connect(url);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&name],
            )
            .and_then(|row| row.try_get(0))
            .expect("the sessions");
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never waited");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Two daemons take batches under the same idempotency keys in opposite orders (two clients
/// retrying the same batch, one of them reordered). Another session holds back inserts into
/// `jobs` until both batches are under way, so that each has looked up its first key before
/// either writes a job: had each locked its keys in its own order, each would now hold a key
/// the other waits for. Both batches go through, and each key names one job.
#[test]
fn batches_with_the_same_keys_in_opposite_orders_never_deadlock_across_daemons() {
    let url = support::fresh_database();
    let connect = || PostgresDriver::connect(&url, &PostgresOptions::default()).expect("connect");
    let (a, b) = (connect(), connect());
    let names = [a.instance_name().to_owned(), b.instance_name().to_owned()];
    let a = Store::with_driver(Arc::new(a), StoreOptions::default());
    let b = Store::with_driver(Arc::new(b), StoreOptions::default());
    let batch = |keys: [&str; 2]| -> Vec<NewJob> {
        keys.iter()
            .map(|key| {
                NewJob::new("x")
                    .payload(json!({"key": key}))
                    .idempotency_key(*key)
            })
            .collect()
    };
    let mut gate = support::connect(&url);
    let mut held = gate.transaction().expect("begin");
    held.batch_execute("LOCK TABLE jobs IN SHARE MODE")
        .expect("hold back inserts");
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| a.enqueue_many(batch(["k1", "k2"])));
        until_waiting(&url, &names[0]);
        let second = scope.spawn(|| b.enqueue_many(batch(["k2", "k1"])));
        until_waiting(&url, &names[1]);
        held.commit().expect("let the inserts go");
        (
            first.join().expect("first batch"),
            second.join().expect("second batch"),
        )
    });
    let first: Vec<i64> = first.expect("first batch").iter().map(|j| j.id).collect();
    let second: Vec<i64> = second.expect("second batch").iter().map(|j| j.id).collect();
    assert_eq!(first, [second[1], second[0]], "each key names one job");
    assert_eq!(
        a.list(&jobstore::ListQuery::default())
            .expect("list")
            .jobs
            .len(),
        2
    );
}

/// Makes the claim that `claim` runs (of `job` alone, on the driver instance `name`) lose a
/// deadlock, and answers what it answered. Another session locks `job_counts` against
/// writes, so the claim, once it holds the job's row, waits to add its count rows; then that
/// session asks for the job's row: each waits for the other. The claim's session, waiting the
/// longer, finds the deadlock and is its victim (the other's `deadlock_timeout` is a minute);
/// once the claim is undone the other gets the row and commits, and the claim, run again,
/// goes through.
fn lose_a_deadlock<T: Send>(
    url: &str,
    name: &str,
    job: &Job,
    claim: impl FnOnce() -> T + Send,
) -> T {
    let mut other = support::connect(url);
    other
        .batch_execute("SET deadlock_timeout = '60s'")
        .expect("set");
    let mut tx = other.transaction().expect("begin");
    tx.batch_execute("LOCK TABLE job_counts IN EXCLUSIVE MODE")
        .expect("lock the counts");
    std::thread::scope(|scope| {
        let claiming = scope.spawn(claim);
        until_waiting(url, name);
        // Granted once the claim, the deadlock's victim, is undone.
        let rows = tx
            .execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", &[&job.id])
            .expect("lock the job's row");
        assert_eq!(rows, 1);
        tx.commit().expect("commit");
        claiming.join().expect("the claim")
    })
}

#[test]
fn a_claim_that_loses_a_deadlock_is_run_again() {
    let url = support::fresh_database();
    let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).expect("connect");
    let name = driver.instance_name().to_owned();
    let store = Store::with_driver(Arc::new(driver), StoreOptions::default());
    let job = store
        .enqueue(NewJob::new("k").queue("contended"))
        .expect("enqueue");
    let claimed = lose_a_deadlock(&url, &name, &job, || {
        store.claim(&ClaimRequest::new("w", "contended"))
    })
    .expect("the claim, run again after the deadlock");
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
    let job = store.get(job.id).expect("get");
    assert_eq!((job.state, job.attempt), (State::Running, 1));
    let report = store.check().expect("check");
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// A write that changes a job (`touch`), then claims: its claim is not the transaction's first
/// statement.
struct TouchThenClaim {
    touch: i64,
    now: i64,
    answer: mpsc::Sender<jobstore::Result<Vec<Job>>>,
}

struct Answer(
    jobstore::Result<Vec<Job>>,
    mpsc::Sender<jobstore::Result<Vec<Job>>>,
);

impl WriteOp for TouchThenClaim {
    fn run(self: Box<Self>, tx: &mut dyn WriteTx) -> Box<dyn PendingReply> {
        let queues = ["contended".to_owned()];
        let claimed = tx.touch_job(self.touch, None, self.now).and_then(|()| {
            tx.claim(&ClaimJobs {
                queues: &queues,
                tenant: None,
                worker: "w",
                to: State::Running,
                now: self.now,
                expires: self.now + 60_000,
                max: 1,
            })
        });
        Box::new(Answer(claimed, self.answer))
    }

    fn refuse(self: Box<Self>, err: Error) {
        let _ = self.answer.send(Err(err));
    }
}

impl PendingReply for Answer {
    fn succeeded(&self) -> bool {
        self.0.is_ok()
    }

    fn finish(self: Box<Self>, commit: jobstore::Result<()>) {
        let _ = self.1.send(commit.and(self.0));
    }
}

/// The same deadlock, with a statement before the claim in its transaction: the claim alone is
/// undone and run again (on a savepoint), the statement before it is kept.
#[test]
fn a_claim_after_other_statements_that_loses_a_deadlock_is_run_again_alone() {
    let url = support::fresh_database();
    let driver =
        Arc::new(PostgresDriver::connect(&url, &PostgresOptions::default()).expect("connect"));
    let name = driver.instance_name().to_owned();
    let store = Store::with_driver(
        Arc::clone(&driver) as Arc<dyn Driver>,
        StoreOptions::default(),
    );
    let touched = store.enqueue(NewJob::new("k")).expect("enqueue");
    let job = store
        .enqueue(NewJob::new("k").queue("contended"))
        .expect("enqueue");
    let now = job.created_at + 1_000;
    let (answer, answers) = mpsc::channel();
    let claimed = lose_a_deadlock(&url, &name, &job, move || {
        driver.submit(Box::new(TouchThenClaim {
            touch: touched.id,
            now,
            answer,
        }));
        answers.recv().expect("an answer")
    })
    .expect("the claim, run again after the deadlock");
    assert_eq!(claimed.iter().map(|j| j.id).collect::<Vec<_>>(), [job.id]);
    assert_eq!(store.get(touched.id).expect("get").updated_at, now);
}
