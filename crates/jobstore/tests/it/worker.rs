//! The embedded worker: runs handlers per kind, heartbeats, sees cancellation, turns panics
//! into failed attempts, wakes on enqueue, and finds jobs enqueued by another store handle
//! (as another process would) by polling.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use jobstore::{
    Definition, DefinitionStep, Execution, JobError, LogLevel, NewJob, State, Store, StoreOptions,
    Worker,
};
use serde_json::json;

/// Waits (bounded) until the job reaches a terminal state; panics if it never does.
fn wait_finished(store: &Store, id: i64) -> jobstore::Job {
    for _ in 0..2000 {
        let job = store.get(id).unwrap();
        if job.state.is_terminal() {
            return job;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("job {id} did not finish: {:?}", store.get(id));
}

/// Waits (bounded) until `counter` reaches `n`; panics if it never does.
fn wait_count(counter: &AtomicUsize, n: usize) {
    for _ in 0..20_000 {
        if counter.load(Ordering::SeqCst) == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!(
        "the count is {} after 20,000 waits, not {n}",
        counter.load(Ordering::SeqCst)
    );
}

fn open(dir: &tempfile::TempDir) -> Store {
    let options = StoreOptions {
        retry_base: Duration::from_millis(1),
        ..StoreOptions::default()
    };
    Store::open_with(dir.path().join("jobs.db"), options).unwrap()
}

/// Enqueues `n` jobs of `kind`, each with its number as payload `n`; their ids, in order.
fn enqueue_numbered(store: &Store, kind: &str, n: usize) -> Vec<i64> {
    (0..n)
        .map(|n| {
            store
                .enqueue(NewJob::new(kind).payload(json!({ "n": n })))
                .unwrap()
                .id
        })
        .collect()
}

/// Where a handler stops until the test lets it go on ([`gate`]).
struct Gate {
    held: mpsc::Sender<()>,
    opened: std::sync::Mutex<mpsc::Receiver<()>>,
}

impl Gate {
    /// Tells the test the handler is held here, then waits (bounded) until it is let go.
    fn hold(&self) {
        self.held.send(()).unwrap();
        self.opened
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(20))
            .unwrap();
    }
}

/// The test's side of a [`Gate`]: waits until a handler is held, and lets it go.
struct GateKeeper {
    held: mpsc::Receiver<()>,
    open: mpsc::Sender<()>,
}

impl GateKeeper {
    fn wait_held(&self) {
        self.held.recv_timeout(Duration::from_secs(20)).unwrap();
    }

    fn open(&self) {
        self.open.send(()).unwrap();
    }
}

fn gate() -> (Gate, GateKeeper) {
    let (held, held_rx) = mpsc::channel();
    let (open, opened) = mpsc::channel();
    (
        Gate {
            held,
            opened: std::sync::Mutex::new(opened),
        },
        GateKeeper {
            held: held_rx,
            open,
        },
    )
}

#[test]
fn handlers_run_per_kind_with_progress_logs_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let worker = Worker::new(store.clone(), ["default"])
        .concurrency(2)
        .poll_interval(Duration::from_secs(60))
        .handle("export", |job| {
            job.log(LogLevel::Info, "exporting")?;
            job.progress(json!({"totalExportedProfileCounter": 3}))?;
            job.phase("update")?;
            Ok(json!({"exported": job.payload()["n"]}))
        })
        .start(|job| Err(JobError::fatal(format!("no such kind {}", job.job().kind))))
        .unwrap();
    // The long poll interval proves the enqueue woke the idle worker.
    let export = store
        .enqueue(NewJob::new("export").payload(json!({"n": 3})))
        .unwrap();
    let unknown = store.enqueue(NewJob::new("mystery")).unwrap();
    let export = wait_finished(&store, export.id);
    let unknown = wait_finished(&store, unknown.id);
    worker.shutdown();
    assert_eq!(export.state, State::Succeeded);
    assert_eq!(export.result, Some(json!({"exported": 3})));
    assert_eq!(export.progress, json!({"totalExportedProfileCounter": 3}));
    assert_eq!(export.phase.as_deref(), Some("update"));
    let log = store.log(export.id, 0, 100).unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].message, "exporting");
    assert_eq!(unknown.state, State::Failed);
    assert_eq!(unknown.error.as_deref(), Some("no such kind mystery"));
}

#[test]
fn a_panicking_handler_fails_the_attempt_and_the_job_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let worker = Worker::new(store.clone(), ["default"])
        .poll_interval(Duration::from_millis(5))
        .start(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("boom");
            }
            Ok(json!("second time lucky"))
        })
        .unwrap();
    let job = store.enqueue(NewJob::new("flaky")).unwrap();
    let job = wait_finished(&store, job.id);
    worker.shutdown();
    assert_eq!(job.state, State::Succeeded);
    assert_eq!(job.attempt, 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let failure = store
        .events(job.id)
        .unwrap()
        .into_iter()
        .find(|e| e.event == "fail")
        .unwrap();
    assert_eq!(failure.detail.as_deref(), Some("handler panicked: boom"));
    assert_eq!(failure.to, State::Queued);
}

#[test]
fn a_cancel_request_reaches_the_running_handler() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let (started_tx, started) = mpsc::channel();
    let worker = Worker::new(store.clone(), ["default"])
        .lease(Duration::from_millis(150))
        .start(move |job| {
            let _ = started_tx.send(());
            for _ in 0..1000 {
                if job.is_cancelled() {
                    return Err(JobError::retryable("stopped on request"));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(json!("never cancelled"))
        })
        .unwrap();
    let job = store.enqueue(NewJob::new("long")).unwrap();
    started.recv_timeout(Duration::from_secs(20)).unwrap();
    store.cancel(job.id, "operator").unwrap();
    let job = wait_finished(&store, job.id);
    worker.shutdown();
    assert_eq!(job.state, State::Cancelled);
    assert_eq!(job.error.as_deref(), Some("stopped on request"));
}

#[test]
fn heartbeats_keep_a_long_job_leased_past_its_lease_length() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let worker = Worker::new(store.clone(), ["default"])
        .lease(Duration::from_millis(90))
        .rescue_interval(Some(Duration::from_millis(20)))
        .start(|_| {
            std::thread::sleep(Duration::from_millis(600));
            Ok(json!("done"))
        })
        .unwrap();
    let job = store.enqueue(NewJob::new("slow")).unwrap();
    let job = wait_finished(&store, job.id);
    worker.shutdown();
    // Rescue ran many times meanwhile, yet the job was never taken away from its worker.
    assert_eq!(job.state, State::Succeeded);
    assert_eq!(job.attempt, 1);
}

#[test]
fn jobs_enqueued_by_another_process_are_found_by_polling() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let worker = Worker::new(store.clone(), ["default"])
        .poll_interval(Duration::from_millis(20))
        .start(|_| Ok(json!(null)))
        .unwrap();
    // A second store on the same file has its own writer and signal, like another process.
    let other = open(&dir);
    let job = other.enqueue(NewJob::new("remote")).unwrap();
    let job = wait_finished(&other, job.id);
    worker.shutdown();
    assert_eq!(job.state, State::Succeeded);
}

#[test]
fn a_definition_execution_reports_its_steps_through_the_context() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .put_definition(Definition::new(
            "nightly",
            "batch",
            vec![
                DefinitionStep::new("one", "A"),
                DefinitionStep::new("two", "B"),
            ],
        ))
        .unwrap();
    let worker = Worker::new(store.clone(), ["batch"])
        .start(|job| {
            for step in ["one", "two"] {
                job.step_started(step)?;
                job.step_finished(step, true, "OK", None)?;
            }
            Ok(json!(null))
        })
        .unwrap();
    let job = store.execute("nightly", Execution::default()).unwrap();
    let job = wait_finished(&store, job.id);
    worker.shutdown();
    assert_eq!(job.state, State::Succeeded);
    let steps = store.steps(job.id).unwrap();
    assert!(steps.iter().all(|s| s.status == jobstore::StepStatus::Ok));
}

#[test]
fn shutdown_returns_only_after_every_outcome_is_committed() {
    // Outcomes are reported without waiting for their commit; shutdown must still wait for
    // them. Shutdown is asked while the handlers run, so each runner reports and exits.
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for n in 0..3 {
        store
            .enqueue(NewJob::new("count").payload(json!({ "n": n })))
            .unwrap();
    }
    let started = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&started);
    let worker = Worker::new(store.clone(), ["default"])
        .concurrency(3)
        .start(move |job| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(100));
            Ok(json!({ "n": job.payload()["n"] }))
        })
        .unwrap();
    wait_count(&started, 3);
    // Another process holds the write lock for a while: the reports cannot commit until it
    // lets go, and shutdown must not return before they did.
    let blocker = rusqlite::Connection::open(dir.path().join("jobs.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        blocker.execute_batch("COMMIT").unwrap();
    });
    worker.shutdown();
    release.join().unwrap();
    // Read on a fresh connection right after shutdown: no waiting, every job finished.
    let conn = rusqlite::Connection::open(dir.path().join("jobs.db")).unwrap();
    let succeeded: i64 = conn
        .query_row(
            "SELECT count(*) FROM jobs WHERE state = 'succeeded'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(succeeded, 3);
}

#[test]
fn prefetched_jobs_keep_their_leases_and_a_cancelled_one_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ids = enqueue_numbered(&store, "step", 5);
    let (gate, keeper) = gate();
    let ran = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&ran);
    let first = ids[0];
    // One thread claims all five at once; leases are short, and expired ones are rescued
    // often, so a waiting job whose lease were not kept alive would be taken away.
    let worker = Worker::new(store.clone(), ["default"])
        .concurrency(1)
        .prefetch(5)
        .lease(Duration::from_millis(300))
        .rescue_interval(Some(Duration::from_millis(50)))
        .start(move |job| {
            log.lock().unwrap().push(job.job().id);
            if job.job().id == first {
                gate.hold();
            }
            Ok(json!({ "n": job.payload()["n"] }))
        })
        .unwrap();
    keeper.wait_held();
    for &id in &ids {
        assert_eq!(store.get(id).unwrap().state, State::Running, "job {id}");
    }
    store.cancel(ids[2], "test").unwrap();
    // Several lease lengths pass while the jobs wait their turn.
    std::thread::sleep(Duration::from_millis(1000));
    keeper.open();
    for (i, &id) in ids.iter().enumerate() {
        let job = wait_finished(&store, id);
        if i == 2 {
            assert_eq!(job.state, State::Cancelled);
        } else {
            assert_eq!(job.state, State::Succeeded, "job {id}");
            assert_eq!(job.attempt, 1, "job {id} ran once, never rescued");
        }
    }
    worker.shutdown();
    let ran = ran.lock().unwrap().clone();
    assert_eq!(ran, vec![ids[0], ids[1], ids[3], ids[4]]);
}

#[test]
fn successes_waiting_while_an_acknowledgement_commits_share_one_write() {
    // One runner claims 20 jobs at once. The first job's success is sent alone and cannot
    // commit while another process holds the write lock; the other 19 succeed meanwhile and
    // must go to the store together once it lets go, not as a write each.
    const JOBS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let ids = enqueue_numbered(&store, "quick", JOBS);
    let (gate, keeper) = gate();
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handled);
    let first = ids[0];
    let worker = Worker::new(store.clone(), ["default"])
        .concurrency(1)
        .prefetch(JOBS as u32)
        .poll_interval(Duration::from_secs(600))
        .start(move |job| {
            if job.job().id == first {
                gate.hold();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(json!({ "n": job.payload()["n"] }))
        })
        .unwrap();
    keeper.wait_held();
    let before = store.writer_stats();
    let blocker = rusqlite::Connection::open(dir.path().join("jobs.db")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    keeper.open();
    // The runner hands over each success before it runs the next job: once the last handler
    // ran, the successes of the 19 jobs before it wait behind the first one's.
    wait_count(&handled, JOBS);
    blocker.execute_batch("COMMIT").unwrap();
    for &id in &ids {
        let job = wait_finished(&store, id);
        assert_eq!(job.state, State::Succeeded, "job {id}");
        assert_eq!(
            job.result,
            Some(json!({ "n": job.payload["n"] })),
            "job {id}"
        );
    }
    worker.shutdown();
    // The first success, the 19 that waited (the last perhaps on its own), and the runner's
    // claim that found nothing after its 20 jobs; a write per success would be 21.
    let writes = store.writer_stats().writes - before.writes;
    assert!(
        writes <= 4,
        "{writes} writes acknowledged {JOBS} successes and one empty claim"
    );
}
