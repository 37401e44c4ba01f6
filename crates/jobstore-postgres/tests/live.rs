//! The driver alive across daemons and outages: a job created through one driver instance
//! wakes a claim waiting on another at once (`LISTEN`/`NOTIFY`, not the re-poll); sessions the
//! server ends are replaced without a refusal; a server restart is answered with
//! `Error::Unavailable` promptly while it is down and survived by the same driver once it is
//! back; writes a read-only server refuses (a standby not yet promoted) are
//! `Error::Unavailable` too; a session that replaces an ended one prepares its statements
//! anew, and a statement outlives the rolled-back transaction that prepared it; a dropped
//! driver leaves no thread and no session behind.

mod support;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jobstore::{ClaimRequest, Error, ListQuery, NewJob, State, Store, StoreOptions, Worker};
use jobstore_postgres::{PostgresDriver, PostgresOptions};
use serde_json::json;

/// A store on its own driver instance (the production defaults: 4 writers) over `url`.
fn store_on(url: &str) -> (Store, String) {
    let driver = PostgresDriver::connect(url, &PostgresOptions::default()).expect("connect");
    let name = driver.instance_name().to_owned();
    (
        Store::with_driver(Arc::new(driver), StoreOptions::default()),
        name,
    )
}

/// Waits up to `timeout` for `check`.
#[track_caller]
fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How many sessions of the server at `url` carry `name` as their application name (and, if
/// given, last ran a statement beginning with `query`).
fn sessions(url: &str, name: &str, query: Option<&str>) -> i64 {
    let mut admin = support::connect(url);
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND ($2::text IS NULL OR starts_with(query, $2))",
            &[&name, &query],
        )
        .and_then(|row| row.try_get(0))
        .expect("count the sessions")
}

/// The listener of driver instance `name` is connected and listening.
fn listening(url: &str, name: &str) -> bool {
    sessions(url, name, Some("LISTEN")) == 1
}

/// The fallback re-poll of the waiting claims in these tests: far longer than any test waits,
/// so only a wake-up can find a job in time.
const NO_REPOLL: Duration = Duration::from_secs(60);

/// How long a wake-up may take here (it takes milliseconds; the bound only keeps a busy
/// machine from failing the test, and stays far below [`NO_REPOLL`]).
const WAKE_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_claim_waiting_on_one_store_is_woken_by_a_create_on_another() {
    let url = support::fresh_database();
    let (one, one_name) = store_on(&url);
    let (two, _) = store_on(&url);
    // Once listening, the listener wakes the store once (for what it may have missed while
    // connecting): let that pass, so that only the create below can wake it.
    eventually("the listener", WAKE_WITHIN, || listening(&url, &one_name));
    std::thread::sleep(Duration::from_millis(300));
    let (woken, wakes) = mpsc::channel();
    one.on_jobs_available(move || {
        let _ = woken.send(());
    });
    let (ran, runs) = mpsc::channel();
    let worker = Worker::new(one.clone(), ["wake"])
        .poll_interval(NO_REPOLL)
        .rescue_interval(None)
        .start(move |job| {
            let _ = ran.send(job.job().id);
            Ok(json!({"ran": true}))
        })
        .expect("start the worker");
    // The worker's first claim committed (it found nothing) and it now waits: its only other
    // way to the job is the re-poll a minute later.
    eventually("the worker's first claim", WAKE_WITHIN, || {
        one.writer_stats().commits >= 1
    });

    let started = Instant::now();
    let job = two
        .enqueue(NewJob::new("export").queue("wake"))
        .expect("create through the other store");
    let ran = runs
        .recv_timeout(WAKE_WITHIN)
        .expect("the waiting worker was woken and ran the job");
    assert_eq!(ran, job.id);
    assert!(
        wakes.recv_timeout(WAKE_WITHIN).is_ok(),
        "the listener was told"
    );
    eprintln!("woken across stores in {:?}", started.elapsed());
    worker.shutdown();
    assert_eq!(two.get(job.id).expect("get").state, State::Succeeded);
}

#[test]
fn sessions_the_server_ends_are_replaced_without_a_refusal() {
    let url = support::fresh_database();
    let (store, name) = store_on(&url);
    let (_other, other_name) = store_on(&url);
    let jobs: Vec<i64> = (0..8)
        .map(|_| store.enqueue(NewJob::new("k")).expect("enqueue").id)
        .collect();
    eventually("the listeners", WAKE_WITHIN, || {
        listening(&url, &name) && listening(&url, &other_name)
    });
    let (woken, wakes) = mpsc::channel();
    store.on_jobs_available(move || {
        let _ = woken.send(());
    });

    // Every session of this driver instance ends, as a server restart ends them.
    let mut admin = support::connect(&url);
    let ended: i64 = admin
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1) AS ended",
            &[&name],
        )
        .and_then(|row| row.try_get(0))
        .expect("end the sessions");
    assert!(
        ended >= 5,
        "the writers, a pooled reader and the listener: {ended}"
    );

    // Each writer finds its connection ended at BEGIN and runs the write on a new one; the
    // pool drops what it finds closed; nothing is refused.
    for id in &jobs {
        store
            .cancel(*id, "test")
            .expect("a write after the sessions ended");
    }
    store
        .enqueue(NewJob::new("k"))
        .expect("a create after the sessions ended");
    for id in &jobs {
        assert_eq!(store.get(*id).expect("a read").state, State::Cancelled);
    }
    // The listener connected again and woke the store once (notifications may have been
    // lost meanwhile), and listens again.
    assert!(wakes.recv_timeout(WAKE_WITHIN).is_ok());
    eventually("the listener again", WAKE_WITHIN, || listening(&url, &name));
    assert!(
        listening(&url, &other_name),
        "another instance was left alone"
    );
}

/// What the driver's statements count on (`src/session.rs`): a statement prepared inside a
/// transaction, or inside a savepoint, stays prepared once that is rolled back, also after a
/// statement failed in it; preparing is not transactional.
#[test]
fn a_statement_prepared_in_a_rolled_back_transaction_stays_prepared() {
    let url = support::fresh_database();
    let mut client = support::connect(&url);
    let kept = |client: &mut postgres::Client, text: &str| -> i64 {
        client
            .query_one(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                &[&text],
            )
            .and_then(|row| row.try_get(0))
            .expect("the session's prepared statements")
    };
    let mut tx = client.transaction().expect("begin");
    let in_transaction = tx.prepare("SELECT $1::bigint + 1").expect("prepare");
    let mut savepoint = tx.savepoint("nested").expect("savepoint");
    let in_savepoint = savepoint.prepare("SELECT $1::bigint + 2").expect("prepare");
    assert!(savepoint.execute("SELECT 1 / 0", &[]).is_err());
    savepoint.rollback().expect("rollback to the savepoint");
    let row = tx.query_one(&in_savepoint, &[&1_i64]).expect("run it");
    assert_eq!(row.get::<_, i64>(0), 3);
    assert!(tx.execute("SELECT 1 / 0", &[]).is_err());
    tx.rollback().expect("rollback");

    for (statement, text, answer) in [
        (&in_transaction, "SELECT $1::bigint + 1", 2_i64),
        (&in_savepoint, "SELECT $1::bigint + 2", 3),
    ] {
        assert_eq!(kept(&mut client, text), 1, "{text}");
        let row = client.query_one(statement, &[&1_i64]).expect("run it");
        assert_eq!(row.get::<_, i64>(0), answer);
    }
}

/// A statement exists only in the session that prepared it: a session that replaces an ended
/// one (a writer's, a pooled reader's) must prepare its statements anew, never run the ones the
/// ended session prepared. One writer and one pooled connection, so that each replacement
/// takes the place of a session that had prepared the very statements run next.
#[test]
fn replaced_sessions_prepare_their_statements_anew() {
    let url = support::fresh_database();
    let options = PostgresOptions {
        writers: 1,
        read_connections: 1,
        ..PostgresOptions::default()
    };
    let driver = PostgresDriver::connect(&url, &options).expect("connect");
    let name = driver.instance_name().to_owned();
    let store = Store::with_driver(Arc::new(driver), StoreOptions::default());
    // Every statement of a create, a read, a list and a cancel, prepared once on each session.
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let job = store.enqueue(NewJob::new("k")).expect("enqueue");
        assert_eq!(store.get(job.id).expect("get").state, State::Queued);
        assert!(
            !store
                .list(&ListQuery::default())
                .expect("list")
                .jobs
                .is_empty()
        );
        jobs.push(job.id);
    }
    store.cancel(jobs[0], "test").expect("cancel");

    for round in 0..2 {
        // Every session of the instance ends, as a server restart ends them.
        let mut admin = support::connect(&url);
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = $1",
                &[&name],
            )
            .expect("end the sessions");
        // The same statements again, on the sessions that replaced them: none is refused.
        let job = store
            .enqueue(NewJob::new("k"))
            .unwrap_or_else(|err| panic!("a create after the sessions ended ({round}): {err}"));
        assert_eq!(
            store
                .get(job.id)
                .expect("a read after the sessions ended")
                .state,
            State::Queued
        );
        assert!(
            !store
                .list(&ListQuery::default())
                .expect("a list after the sessions ended")
                .jobs
                .is_empty()
        );
        store
            .cancel(job.id, "test")
            .expect("a cancel after the sessions ended");
    }
    assert_eq!(store.get(jobs[0]).expect("get").state, State::Cancelled);
}

#[test]
fn a_dropped_driver_ends_its_threads_and_sessions_promptly() {
    let url = support::fresh_database();
    let (store, name) = store_on(&url);
    store.enqueue(NewJob::new("k")).expect("enqueue");
    eventually("the listener", WAKE_WITHIN, || listening(&url, &name));
    let started = Instant::now();
    // The last handle: the driver is dropped with it, and joins its writers, its notifier
    // and its listener before the drop returns.
    drop(store);
    let took = started.elapsed();
    eprintln!("the driver dropped in {took:?}");
    assert!(took < Duration::from_secs(3), "dropping took {took:?}");
    eventually("every session of the instance ended", WAKE_WITHIN, || {
        sessions(&url, &name, None) == 0
    });
}

/// An embedding program may drop its last store handle in an async task: the driver's
/// connections (each with a runtime of its own inside `postgres`) must not be closed on the
/// task's runtime thread, where dropping a runtime panics.
#[test]
fn the_last_handle_may_be_dropped_inside_an_async_runtime() {
    let url = support::fresh_database();
    let (store, _) = store_on(&url);
    store.enqueue(NewJob::new("k")).expect("enqueue");
    // A read leaves its connection in the pool, open.
    assert_eq!(
        store.list(&ListQuery::default()).expect("list").jobs.len(),
        1
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a runtime");
    let dropped = runtime.block_on(async move { tokio::spawn(async move { drop(store) }).await });
    assert!(dropped.is_ok(), "dropping the store panicked: {dropped:?}");
}

/// How long a refusal may take while the server is down. The driver refuses at once (no
/// connection attempt waits on a port that refuses); the bound keeps a loaded machine from
/// failing the test, and stays far below the 10 s pool timeout a read once waited.
const REFUSED_WITHIN: Duration = Duration::from_secs(3);

/// Runs `call` and answers its error, asserting it is `Error::Unavailable` and came within
/// [`REFUSED_WITHIN`]; answers how long it took.
#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, call: impl FnOnce() -> jobstore::Result<T>) -> Duration {
    let started = Instant::now();
    let answer = call();
    let took = started.elapsed();
    assert!(
        matches!(answer, Err(Error::Unavailable(_))),
        "{what}: {answer:?}"
    );
    assert!(took < REFUSED_WITHIN, "{what} took {took:?}");
    took
}

#[test]
fn a_server_restart_is_refused_while_down_and_survived_by_the_same_driver() {
    let cluster = support::PrivateCluster::start();
    let url = cluster.fresh_database();
    let (one, one_name) = store_on(&url);
    let (two, _) = store_on(&url);
    let before: Vec<i64> = (0..6)
        .map(|n| {
            one.enqueue(NewJob::new("k").queue("before").payload(json!({"n": n})))
                .expect("enqueue")
                .id
        })
        .collect();
    eventually("the listener", WAKE_WITHIN, || listening(&url, &one_name));

    cluster.stop();
    // A read first, before any write told the driver that the server is gone: the pool finds
    // its connections closed and cannot open one.
    let first_read = refused("a read first", || two.get(before[0]));
    eprintln!("while down, the first read was refused in {first_read:?}");
    let mut slowest = Duration::ZERO;
    // Writes on every writer (jobs of different ids), creates, claims, reads, lists, pings:
    // each refused as out of reach, promptly, again and again.
    for round in 0..3 {
        for id in &before {
            slowest = slowest.max(refused("a cancel", || one.cancel(*id, "test")));
        }
        slowest = slowest.max(refused("a create", || one.enqueue(NewJob::new("k"))));
        slowest = slowest.max(refused("a claim", || {
            two.claim(&ClaimRequest::new("w", "before"))
        }));
        slowest = slowest.max(refused("a read", || one.get(before[0])));
        slowest = slowest.max(refused("a list", || {
            two.list(&jobstore::ListQuery::default())
        }));
        slowest = slowest.max(refused("a ping", || one.ping()));
        if round == 0 {
            // Past the writers' first pauses: they try to connect again and are refused.
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    eprintln!("while down, the slowest refusal took {slowest:?}");

    cluster.start_again();
    let up = Instant::now();
    // The same drivers serve again by themselves: creates, reads, claims, completes.
    let mut created = None;
    eventually(
        "a create after the restart",
        Duration::from_secs(20),
        || {
            created = one.enqueue(NewJob::new("k").queue("after")).ok();
            created.is_some()
        },
    );
    let first_write = up.elapsed();
    eventually("a read after the restart", Duration::from_secs(20), || {
        two.get(before[0]).is_ok()
    });
    eprintln!(
        "after the restart: the first create in {first_write:?}, reads on the other store \
         in {:?}",
        up.elapsed()
    );
    let claimed = two
        .claim(&ClaimRequest {
            max: 10,
            ..ClaimRequest::new("w", "before")
        })
        .expect("claim after the restart");
    assert_eq!(
        claimed.len(),
        before.len(),
        "every job made before the stop"
    );
    for job in &claimed {
        let lease = job.lease().expect("a lease");
        one.complete(job.id, &lease, json!({"ok": true}))
            .expect("complete through the other store");
    }
    for id in &before {
        assert_eq!(two.get(*id).expect("get").state, State::Succeeded);
    }

    // Wake-ups work again: the listener connected anew, and a create on the other store
    // wakes this one.
    eventually("the listener again", Duration::from_secs(20), || {
        listening(&url, &one_name)
    });
    let (woken, wakes) = mpsc::channel();
    one.on_jobs_available(move || {
        let _ = woken.send(());
    });
    let (ran, runs) = mpsc::channel();
    // Counted before the worker starts: its first claim may commit before `start` returns.
    let commits = one.writer_stats().commits;
    let worker = Worker::new(one.clone(), ["wake"])
        .poll_interval(NO_REPOLL)
        .rescue_interval(None)
        .start(move |job| {
            let _ = ran.send(job.job().id);
            Ok(json!({}))
        })
        .expect("start the worker");
    eventually("the worker's first claim", WAKE_WITHIN, || {
        one.writer_stats().commits > commits
    });
    while wakes.try_recv().is_ok() {}
    let job = two
        .enqueue(NewJob::new("k").queue("wake"))
        .expect("create on the other store");
    assert!(
        wakes.recv_timeout(WAKE_WITHIN).is_ok(),
        "woken after the restart"
    );
    assert_eq!(runs.recv_timeout(WAKE_WITHIN).ok(), Some(job.id));
    worker.shutdown();
}

/// A server that takes no writes answers each with SQLSTATE 25006, as a standby does until it
/// is promoted (a multi-host URL without `target_session_attrs=read-write` may reach one):
/// the driver refuses those writes as `Error::Unavailable` (503 `storage_unavailable`), not
/// as a storage error (500), keeps serving reads, and writes again on the same sessions once
/// the server takes writes. Made read-only here by `default_transaction_read_only`, which
/// every open session takes at its next transaction: a private cluster, as it changes the
/// whole server.
#[test]
fn writes_a_read_only_server_refuses_are_unavailable_until_it_takes_writes_again() {
    let cluster = support::PrivateCluster::start();
    let url = cluster.fresh_database();
    let (store, _) = store_on(&url);
    let queued: Vec<i64> = (0..4)
        .map(|_| store.enqueue(NewJob::new("k")).expect("enqueue").id)
        .collect();
    let mut admin = support::connect(&url);
    // The admin's own session stays writable whatever the server's default.
    // (One statement a call: ALTER SYSTEM refuses to run inside the implicit transaction of
    // several.)
    for statement in [
        "SET default_transaction_read_only = off",
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        admin
            .batch_execute(statement)
            .expect("make the server read-only");
    }

    // Each open session takes the setting when it next begins a transaction.
    eventually(
        "a create refused by the read-only server",
        Duration::from_secs(10),
        || match store.enqueue(NewJob::new("k")) {
            Ok(_) => false,
            Err(Error::Unavailable(err)) => {
                assert!(err.to_string().contains("read-only"), "{err}");
                true
            }
            Err(err) => panic!("a create on a read-only server: {err:?}"),
        },
    );
    // Creates, claims and writes of jobs on every writer: each refused as unavailable.
    for _ in 0..3 {
        refused("a create", || store.enqueue(NewJob::new("k")));
        refused("a claim", || {
            store.claim(&ClaimRequest::new("w", "default"))
        });
        for id in &queued {
            refused("a cancel", || store.cancel(*id, "test"));
        }
    }
    // Reads are served meanwhile, and nothing was written.
    for id in &queued {
        assert_eq!(store.get(*id).expect("a read").state, State::Queued);
    }

    for statement in [
        "ALTER SYSTEM RESET default_transaction_read_only",
        "SELECT pg_reload_conf()",
    ] {
        admin
            .batch_execute(statement)
            .expect("make the server writable again");
    }
    // The same driver writes again, on the sessions it held.
    eventually("a create once writable", Duration::from_secs(10), || {
        store.enqueue(NewJob::new("k")).is_ok()
    });
    for id in &queued {
        assert_eq!(
            store
                .cancel(*id, "test")
                .expect("a cancel once writable")
                .state,
            State::Cancelled
        );
    }
    let report = store.check().expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// A primary fenced read-only while the driver holds sessions on it, with a second host in
/// the URL taking writes (`target_session_attrs=read-write`): the writers leave the fenced
/// server's sessions after its first refusal and write to the other host, without a restart.
#[test]
fn writers_leave_a_server_fenced_read_only_for_the_host_taking_writes() {
    let (fenced, promoted) = (
        support::PrivateCluster::start(),
        support::PrivateCluster::start(),
    );
    let (old, new) = (fenced.fresh_database(), promoted.fresh_database());
    let database = old.rsplit('/').next().unwrap_or_default().to_owned();
    assert_eq!(new.rsplit('/').next(), Some(database.as_str()));
    // The other host's schema, as a promoted standby would have it.
    drop(PostgresDriver::connect(&new, &PostgresOptions::default()).expect("migrate"));
    let port = |base: String| base.rsplit(':').next().unwrap_or_default().to_owned();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}?target_session_attrs=read-write",
        port(fenced.base()),
        port(promoted.base())
    );
    let (store, _) = store_on(&url);
    for _ in 0..4 {
        store
            .enqueue(NewJob::new("before"))
            .expect("a create on the first host");
    }
    let mut admin = support::connect(&old);
    for statement in [
        "SET default_transaction_read_only = off",
        "ALTER SYSTEM SET default_transaction_read_only = on",
        "SELECT pg_reload_conf()",
    ] {
        admin
            .batch_execute(statement)
            .expect("fence the first host");
    }
    let on = |url: &str, id: i64| -> bool {
        support::connect(url)
            .query_one(
                "SELECT count(*) FROM jobs WHERE id = $1 AND kind = 'after'",
                &[&id],
            )
            .expect("count")
            .get::<_, i64>(0)
            == 1
    };
    // The fencing reaches each session a moment after the reload: a create may still land on
    // the first host until then, and one is refused once it did. Then the writers move.
    eventually(
        "a create on the host taking writes",
        Duration::from_secs(20),
        || match store.enqueue(NewJob::new("after")) {
            Ok(job) => on(&new, job.id),
            Err(Error::Unavailable(_)) => false,
            Err(err) => panic!("a create after the fencing: {err:?}"),
        },
    );
    let before: i64 = support::connect(&old)
        .query_one("SELECT count(*) FROM jobs WHERE kind = 'before'", &[])
        .expect("count")
        .get(0);
    assert_eq!(before, 4);
}

/// How many times `index` was scanned, and how many entries the scans read, as the server's
/// statistics say.
fn index_reads(admin: &mut postgres::Client, index: &str) -> (i64, i64) {
    admin
        .query_one(
            "SELECT idx_scan, idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = $1",
            &[&index],
        )
        .and_then(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .expect("the index's statistics")
}

/// Claims up to `max` jobs of the default queue as worker `w`.
fn claim_up_to(store: &Store, max: u32) -> Vec<jobstore::Job> {
    store
        .claim(&ClaimRequest {
            max,
            ..ClaimRequest::new("w", "default")
        })
        .expect("claim")
}

/// The completions of claimed `jobs` under their leases, each with its `result`.
fn completions_of(
    jobs: &[jobstore::Job],
    result: impl Fn(&jobstore::Job) -> serde_json::Value,
) -> Vec<jobstore::Completion> {
    jobs.iter()
        .map(|job| jobstore::Completion {
            id: job.id,
            lease: job.lease().expect("a claimed job's lease"),
            result: result(job),
        })
        .collect()
}

/// A list of the few jobs of one state, sorted by another field, is planned for that state on
/// every call, never by one plan for every state. The reader's sessions keep each list's
/// statement prepared, and PostgreSQL may keep one generic plan for a prepared statement after
/// five runs; a generic plan assumes the state matches its average share of the jobs, and so
/// lists the few running jobs by walking the whole name index (about 22,000 entries a list,
/// where the plan for `running` reads their 10 entries in the state index). It never looks
/// the cheaper while the page size is bound too (an unknown `LIMIT` is costed as a tenth of
/// the rows); this holds the driver to the outcome, in the case most likely to tempt the
/// planner: half the jobs queued and half succeeded when the statistics were gathered, none
/// running (the few running jobs of a busy store come and go between two `ANALYZE`s), and
/// lists of queued jobs first. The server's index statistics tell what the lists read.
#[test]
fn a_list_of_a_rare_state_keeps_the_plan_for_that_state() {
    const JOBS: usize = 20_000;
    const RUNNING: u32 = 10;
    const LISTS: i64 = 8;
    let url = support::fresh_database();
    // One read session: every list's reads are reported together when it ends.
    let options = PostgresOptions {
        read_connections: 1,
        ..PostgresOptions::default()
    };
    let driver = PostgresDriver::connect(&url, &options).expect("connect");
    let store = Store::with_driver(Arc::new(driver), StoreOptions::default());
    for _ in 0..JOBS / 1000 {
        store
            .enqueue_many((0..1000).map(|_| NewJob::new("k")).collect())
            .expect("enqueue");
    }
    for _ in 0..JOBS / 2 / 1000 {
        let completions = completions_of(&claim_up_to(&store, 1000), |_| json!({}));
        for answer in store.complete_many(completions).expect("complete") {
            answer.expect("completed");
        }
    }
    let mut admin = support::connect(&url);
    admin.batch_execute("ANALYZE jobs").expect("analyze");
    assert_eq!(claim_up_to(&store, RUNNING).len(), RUNNING as usize);
    let name_index = "jobs_by_tenant_name";
    let before = index_reads(&mut admin, name_index);

    let by_name = |state: State| ListQuery {
        states: vec![state],
        sort: Some(jobstore::SortField::Name),
        ..ListQuery::default()
    };
    for call in 0..LISTS {
        let page = store.list(&by_name(State::Queued)).expect("list");
        assert_eq!(page.jobs.len(), 100, "list of queued jobs {call}");
    }
    for call in 0..LISTS {
        let page = store.list(&by_name(State::Running)).expect("list");
        assert_eq!(
            page.jobs.len(),
            RUNNING as usize,
            "list of running jobs {call}"
        );
    }
    // A session reports its statistics when it ends, if not before; the lists of queued jobs
    // scan the name index whatever their plan.
    drop(store);
    let mut after = before;
    eventually("the lists' reads reported", Duration::from_secs(30), || {
        after = index_reads(&mut admin, name_index);
        after.0 - before.0 >= LISTS
    });
    // A page of queued jobs reads about a page of the name index; a walk of the whole index,
    // looking for running jobs, reads every job's entry.
    let read = after.1 - before.1;
    assert!(
        read < (JOBS / 2) as i64,
        "the lists read {read} entries of the name index: a list of running jobs walked it"
    );
}

/// How many rows of `jobs` the server counts as updated, by every session that reported.
fn jobs_updated(admin: &mut postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'jobs'",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .expect("the table's statistics")
}

/// Waits until the sessions reported `n` more updated job rows than `before` (a session
/// reports all its statistics at once: its index reads up to then are counted too).
fn wait_updates_reported(admin: &mut postgres::Client, before: i64, n: i64) {
    eventually(
        "the writers' statistics reported",
        Duration::from_secs(30),
        || jobs_updated(admin) - before >= n,
    );
}

/// `complete_many` finds its jobs by their ids, whatever the statistics say of the running
/// jobs. Gathered while every job was queued, they put the running jobs at none; a statement
/// that tested `state = 'running'` was then planned from the state index, every running job
/// read for the completions (a nested loop: seconds for 1,000 completions beside 12,000
/// running jobs, as the embedded worker's completer made them). Autovacuum is off for the
/// table, so the statistics stay those of the queued jobs.
#[test]
fn completing_many_jobs_reads_them_by_id_whatever_the_statistics_say() {
    const BATCHES: usize = 3;
    const BATCH: u32 = 1000;
    let url = support::fresh_database();
    let (store, _) = store_on(&url);
    let mut admin = support::connect(&url);
    admin
        .batch_execute("ALTER TABLE jobs SET (autovacuum_enabled = off)")
        .expect("autovacuum off");
    for _ in 0..BATCHES {
        store
            .enqueue_many((0..BATCH).map(|_| NewJob::new("k")).collect())
            .expect("enqueue");
    }
    admin.batch_execute("ANALYZE jobs").expect("analyze");
    let updated = jobs_updated(&mut admin);
    let claimed: Vec<Vec<jobstore::Job>> =
        (0..BATCHES).map(|_| claim_up_to(&store, BATCH)).collect();
    let claims = i64::from(BATCH) * BATCHES as i64;
    wait_updates_reported(&mut admin, updated, claims);
    let state_index = "jobs_by_tenant_state";
    let before = index_reads(&mut admin, state_index);

    let completions = completions_of(&claimed[BATCHES - 1], |job| json!({ "n": job.id }));
    for answer in store.complete_many(completions).expect("complete") {
        assert_eq!(answer.expect("completed").state, State::Succeeded);
    }
    drop(store);
    wait_updates_reported(&mut admin, updated, claims + i64::from(BATCH));
    let read = index_reads(&mut admin, state_index).1 - before.1;
    assert_eq!(
        read, 0,
        "completing {BATCH} jobs read {read} entries of {state_index}: it walked the running jobs"
    );
}

/// The embedded worker drains a PostgreSQL store with several runners, each claiming several
/// jobs at once, its completer acknowledging the successes that wait together (one
/// `complete_many` on the writers' shared queue): every job runs once and succeeds with its
/// own result, and its history is a create, one claim and one complete.
#[test]
fn the_embedded_worker_drains_a_postgres_store_each_job_once_with_its_result() {
    const JOBS: usize = 400;
    let url = support::fresh_database();
    let (store, _) = store_on(&url);
    let jobs = store
        .enqueue_many(
            (0..JOBS)
                .map(|n| NewJob::new("k").payload(json!({ "n": n })))
                .collect(),
        )
        .expect("enqueue");
    let worker = Worker::new(store.clone(), ["default"])
        .concurrency(4)
        .prefetch(16)
        .rescue_interval(None)
        .start(|job| Ok(json!({ "n": job.payload()["n"] })))
        .expect("start the worker");
    let succeeded = || {
        store
            .stats()
            .expect("stats")
            .iter()
            .filter(|count| count.state == State::Succeeded)
            .map(|count| count.jobs)
            .sum::<i64>()
    };
    eventually("every job succeeded", Duration::from_secs(60), || {
        succeeded() == JOBS as i64
    });
    worker.shutdown();
    for job in &jobs {
        let now = store.get(job.id).expect("get");
        assert_eq!(now.state, State::Succeeded, "job {}", job.id);
        assert_eq!(now.attempt, 1, "job {} ran once", job.id);
        assert_eq!(
            now.result,
            Some(json!({ "n": job.payload["n"] })),
            "job {}",
            job.id
        );
        let history: Vec<String> = store
            .events(job.id)
            .expect("events")
            .into_iter()
            .map(|event| event.event)
            .collect();
        assert_eq!(history, ["create", "claim", "complete"], "job {}", job.id);
    }
}

/// How many sessions of driver instance `name` wait for a lock another session holds.
fn waiting_for_a_lock(url: &str, name: &str) -> i64 {
    let mut admin = support::connect(url);
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
             AND wait_event_type = 'Lock'",
            &[&name],
        )
        .and_then(|row| row.try_get(0))
        .expect("count the waiting sessions")
}

/// A write decides from the job as it is when it runs, not as it was before another writer
/// changed it: the job is read locked (`FOR UPDATE`). Here a worker's retryable failure meets
/// a cancel request that another daemon (a session of its own) has written but not yet
/// committed. The failure waits for it, then sees the request and ends the job `cancelled`,
/// as on SQLite's single writer. Read without the lock, it saw no request, chose `queued`,
/// and its update broke the table's CHECK (a cancel request only on a live job): a storage
/// error (HTTP 500), the report lost, the job left running until its lease ran out.
///
/// The same on a database whose default isolation is serializable: the driver's writes run
/// at read committed whatever the default, where a serializable one fails its read of a row
/// another session changed meanwhile ("could not serialize access").
#[test]
fn a_failure_meeting_a_cancel_from_another_daemon_ends_the_job_cancelled() {
    let url = support::fresh_database();
    failure_meets_cancel(&url);

    let url = support::fresh_database();
    let mut admin = support::connect(&url);
    admin
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_isolation \
             = serializable', current_database()); END $$",
        )
        .expect("make serializable the database's default");
    failure_meets_cancel(&url);
}

/// [`a_failure_meeting_a_cancel_from_another_daemon_ends_the_job_cancelled`] on `url`.
fn failure_meets_cancel(url: &str) {
    let (store, name) = store_on(url);
    let job = store.enqueue(NewJob::new("export")).expect("enqueue");
    let claimed = claim_up_to(&store, 1);
    let lease = claimed[0].lease().expect("a claimed job's lease");

    let mut other = support::connect(url);
    let mut cancel = other.transaction().expect("begin");
    cancel
        .execute(
            "UPDATE jobs SET cancel_requested_at = updated_at WHERE id = $1",
            &[&job.id],
        )
        .expect("request the cancel");
    let failing = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.fail(
                job.id,
                &lease,
                jobstore::Failure::retryable("the source went away"),
            )
        })
    };
    eventually("the failure waits for the cancel", WAKE_WITHIN, || {
        waiting_for_a_lock(url, &name) == 1
    });
    cancel.commit().expect("commit the cancel request");

    let failed = failing.join().expect("the failing thread");
    let failed = failed.expect("the failure is recorded");
    assert_eq!(failed.state, State::Cancelled);
    assert_eq!(store.get(job.id).expect("get").state, State::Cancelled);
}

/// A write that loses to other sessions' locks is [`Error::Busy`] (HTTP 503, retry), as on
/// SQLite when another process holds the file: here an operator's `lock_timeout` ends the wait
/// of a cancel for a job another session holds. Nothing was written; once the other session
/// ended, the same cancel passes.
#[test]
fn a_write_past_a_lock_timeout_is_busy_and_writes_nothing() {
    let url = support::fresh_database();
    let mut admin = support::connect(&url);
    admin
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET lock_timeout = 200', \
             current_database()); END $$",
        )
        .expect("set the database's lock timeout");
    let (store, _) = store_on(&url);
    let job = store.enqueue(NewJob::new("export")).expect("enqueue");

    let mut other = support::connect(&url);
    let mut holding = other.transaction().expect("begin");
    holding
        .execute("SELECT 1 FROM jobs WHERE id = $1 FOR UPDATE", &[&job.id])
        .expect("hold the job");
    match store.cancel(job.id, "test") {
        Err(Error::Busy) => {}
        other => panic!("a cancel past the lock timeout: {other:?}"),
    }
    holding.rollback().expect("let the job go");
    assert_eq!(store.get(job.id).expect("get").state, State::Queued);
    assert_eq!(
        store
            .cancel(job.id, "test")
            .expect("the cancel again")
            .state,
        State::Cancelled
    );
}
