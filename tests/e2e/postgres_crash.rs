//! Two daemons on one PostgreSQL database while one of them is killed again and again: daemon A
//! stays up; daemon B is SIGKILLed and restarted, over and over, while clients create jobs
//! through both (each create under an idempotency key, retried through the other daemon until
//! it is answered) and workers claim and complete them through both, on short leases. Right
//! before each kill a job is claimed through B and never completed: it dies with B.
//!
//! Afterwards (B stays dead after its last kill; A's maintenance rescues expired leases):
//! every acknowledged create is there, once, and succeeded; every job's history holds exactly
//! one completion, by the holder of its last lease (none under a stale one); every
//! acknowledged completion is that one; every job that died with B was rescued (its lease
//! expired) and completed by another worker, the last kill's by a worker of A.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Body, Daemon, Options, Response, eventually, id_of, send, temp_dir};

/// How many times B is killed.
const KILLS: usize = 15;
/// Client threads creating jobs (even ones through A first, odd ones through B first).
const CREATORS: usize = 2;
/// Worker threads per daemon.
const WORKERS: usize = 2;
/// The workers' lease.
const LEASE_MS: u64 = 1_500;
/// Every job's queue.
const QUEUE: &str = "pg-crash";
/// Both daemons rescue expired leases often.
const CONFIG: &str = "[maintenance]\nrescue_interval_ms = 200\n";

/// Which daemon a call goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    A,
    B,
}

impl Via {
    fn other(self) -> Via {
        match self {
            Via::A => Via::B,
            Via::B => Via::A,
        }
    }

    /// The prefix of the worker names of its workers.
    fn prefix(self) -> &'static str {
        match self {
            Via::A => "a",
            Via::B => "b",
        }
    }
}

/// What the threads share: where the daemons are, when to stop, and what was acknowledged.
struct Shared {
    a: SocketAddr,
    /// B's current address (a restarted B listens on a new port).
    b: Mutex<SocketAddr>,
    stop_creating: AtomicBool,
    stop_b_workers: AtomicBool,
    stop_a_workers: AtomicBool,
    /// Idempotency key → the job id its create was answered with.
    created: Mutex<BTreeMap<String, i64>>,
    /// Creates answered only after a retry.
    retried: AtomicUsize,
    /// Job id → the worker (one name per lease) whose completion was answered 200.
    completed: Mutex<BTreeMap<i64, String>>,
    /// Jobs a worker of B held when B died under its completion (outcome unknown): id, worker.
    abandoned: Mutex<Vec<(i64, String)>>,
    /// Completions answered through each daemon.
    completed_via_a: AtomicUsize,
    completed_via_b: AtomicUsize,
    /// Completions refused as stale (the lease expired first on a busy machine).
    stale: AtomicUsize,
}

impl Shared {
    fn addr(&self, via: Via) -> SocketAddr {
        match via {
            Via::A => self.a,
            Via::B => *self.b.lock().unwrap(),
        }
    }
}

fn try_post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> std::io::Result<Response> {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    send(addr, "POST", path, &all, Body::from(body))
}

/// Creates jobs under keys of its own until told to stop; a create not answered is retried
/// under the same key through the other daemon until it is.
fn creator(shared: &Shared, creator: usize) {
    let mut n = 0_u64;
    while !shared.stop_creating.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("c{creator}-{n}");
        let body = json!({"kind": "pg-crash", "queue": QUEUE, "max_attempts": 100,
                          "payload": {"creator": creator, "n": n}});
        let mut via = if creator.is_multiple_of(2) {
            Via::A
        } else {
            Via::B
        };
        let mut attempts = 0;
        let id = loop {
            attempts += 1;
            let answer = try_post(
                shared.addr(via),
                "/v1/jobs",
                &[("Idempotency-Key", key.as_str())],
                &body,
            );
            match (via, answer) {
                (_, Ok(response)) if response.status == 201 => break id_of(&response.json()),
                (Via::A, Ok(response)) => panic!(
                    "A answered a create {}: {}",
                    response.status,
                    response.text()
                ),
                (Via::A, Err(err)) => panic!("A failed a create: {err}"),
                // B died under it, or is not back yet: not answered, so retried.
                (Via::B, Ok(response)) => assert!(
                    response.status >= 500,
                    "B answered a create {}: {}",
                    response.status,
                    response.text()
                ),
                (Via::B, Err(_)) => {}
            }
            via = via.other();
            thread::sleep(Duration::from_millis(10));
        };
        if attempts > 1 {
            shared.retried.fetch_add(1, Ordering::Relaxed);
        }
        let earlier = shared.created.lock().unwrap().insert(key.clone(), id);
        assert_eq!(earlier, None, "key {key} answered twice");
        thread::sleep(Duration::from_millis(25));
    }
}

/// Claims and completes jobs through one daemon until told to stop, a new worker name per
/// claim (so each lease has its own name in the job's history). A worker of B whose daemon
/// dies under a completion walks away from the job.
fn worker(shared: &Shared, via: Via, thread: usize) {
    let stop = match via {
        Via::A => &shared.stop_a_workers,
        Via::B => &shared.stop_b_workers,
    };
    let mut n = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let name = format!("{}{thread}-{n}", via.prefix());
        let addr = shared.addr(via);
        let claim = json!({"worker": name, "queues": [QUEUE], "max": 2,
                           "lease_ms": LEASE_MS, "wait_ms": 300});
        let jobs = match (via, try_post(addr, "/v1/claim", &[], &claim)) {
            (_, Ok(response)) if response.status == 200 => {
                response.json()["jobs"].as_array().expect("jobs").clone()
            }
            (Via::A, answer) => panic!("A failed a claim: {answer:?}"),
            (Via::B, _) => {
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        for job in jobs {
            let id = id_of(&job);
            let token = job["lease_token"].clone();
            thread::sleep(Duration::from_millis(5));
            let report = json!({"worker": name, "lease_token": token, "result": {"by": name}});
            let answer = try_post(addr, &format!("/v1/jobs/{id}/complete"), &[], &report);
            match (via, answer) {
                (_, Ok(response)) if response.status == 200 => {
                    let earlier = shared.completed.lock().unwrap().insert(id, name.clone());
                    assert_eq!(earlier, None, "job {id} completed twice: by {name}");
                    match via {
                        Via::A => &shared.completed_via_a,
                        Via::B => &shared.completed_via_b,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                }
                (_, Ok(response)) if response.status == 409 => {
                    crate::support::assert_error(&response, 409, "stale_lease");
                    shared.stale.fetch_add(1, Ordering::Relaxed);
                }
                (Via::A, answer) => panic!("A failed a completion of job {id}: {answer:?}"),
                (Via::B, _) => shared.abandoned.lock().unwrap().push((id, name.clone())),
            }
        }
    }
}

/// Claims one job through B as `name` and never completes it: answers its id.
fn claim_victim(shared: &Shared, name: &str) -> i64 {
    let mut victim = None;
    eventually("a job to claim through B", Duration::from_secs(30), || {
        let claim = json!({"worker": name, "queues": [QUEUE], "max": 1,
                           "lease_ms": LEASE_MS, "wait_ms": 1_000});
        let Ok(answer) = try_post(shared.addr(Via::B), "/v1/claim", &[], &claim) else {
            return false;
        };
        victim = answer.json_or_null()["jobs"]
            .as_array()
            .and_then(|jobs| jobs.first())
            .map(id_of);
        victim.is_some()
    });
    victim.expect("a victim")
}

/// The job's history, in order.
fn events(a: SocketAddr, id: i64) -> Vec<Value> {
    let answer = send(a, "GET", &format!("/v1/jobs/{id}/events"), &[], Body::None)
        .unwrap_or_else(|err| panic!("events of job {id}: {err}"));
    let mut events = answer.expect_json(200)["events"]
        .as_array()
        .expect("events")
        .clone();
    events.sort_by_key(|event| event["seq"].as_i64().expect("seq"));
    events
}

fn named<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    (event["event"] == name).then(|| event["actor"].as_str().expect("actor"))
}

#[test]
fn acknowledged_work_survives_one_of_two_daemons_killed_again_and_again() {
    let url = crate::cluster::fresh_database();
    let options = |dir: &std::path::Path| {
        let config = dir.join("jobstore.toml");
        std::fs::write(&config, CONFIG).unwrap();
        Options {
            db: Some(url.clone().into()),
            args: vec!["--config".into(), config.into_os_string()],
            ..Options::default()
        }
    };
    let (a_dir, b_dir) = (temp_dir(), temp_dir());
    let (a_options, b_options) = (options(a_dir.path()), options(b_dir.path()));
    let a = Daemon::start_with(a_dir, a_options);
    let mut b = Daemon::start_with(b_dir, b_options.clone());
    let shared = Arc::new(Shared {
        a: a.addr(),
        b: Mutex::new(b.addr()),
        stop_creating: AtomicBool::new(false),
        stop_b_workers: AtomicBool::new(false),
        stop_a_workers: AtomicBool::new(false),
        created: Mutex::new(BTreeMap::new()),
        retried: AtomicUsize::new(0),
        completed: Mutex::new(BTreeMap::new()),
        abandoned: Mutex::new(Vec::new()),
        completed_via_a: AtomicUsize::new(0),
        completed_via_b: AtomicUsize::new(0),
        stale: AtomicUsize::new(0),
    });
    let spawn = |work: Box<dyn FnOnce(&Shared) + Send>| {
        let shared = Arc::clone(&shared);
        thread::spawn(move || work(&shared))
    };
    let creators: Vec<_> = (0..CREATORS)
        .map(|c| spawn(Box::new(move |s| creator(s, c))))
        .collect();
    let a_workers: Vec<_> = (0..WORKERS)
        .map(|t| spawn(Box::new(move |s| worker(s, Via::A, t))))
        .collect();
    let b_workers: Vec<_> = (0..WORKERS)
        .map(|t| spawn(Box::new(move |s| worker(s, Via::B, t))))
        .collect();

    // Kill B again and again, each time after it served completions and with a job leased
    // through it; after the last kill it stays dead.
    let mut victims = Vec::new();
    for kill in 0..KILLS {
        let before = shared.completed_via_b.load(Ordering::Relaxed);
        eventually("B completes jobs", Duration::from_secs(30), || {
            shared.completed_via_b.load(Ordering::Relaxed) > before
        });
        let name = format!("victim-{kill}");
        victims.push((claim_victim(&shared, &name), name));
        thread::sleep(Duration::from_millis(20 + (kill as u64 * 37) % 150));
        b.signal("KILL");
        let status = b.wait_exit(Duration::from_secs(10));
        assert!(!status.success(), "SIGKILL ended with {status}");
        if kill + 1 < KILLS {
            b = b.restart(b_options.clone());
            *shared.b.lock().unwrap() = b.addr();
        }
    }
    shared.stop_creating.store(true, Ordering::Relaxed);
    shared.stop_b_workers.store(true, Ordering::Relaxed);
    for thread in creators.into_iter().chain(b_workers) {
        // A's log says why it refused, if it did.
        assert!(
            thread.join().is_ok(),
            "a creator or a worker of B failed; A's log:\n{}",
            a.stderr()
        );
    }

    // A alone rescues what B's last life held and finishes every job.
    let created = shared.created.lock().unwrap().clone();
    let acknowledged: BTreeSet<i64> = created.values().copied().collect();
    let api = a.client();
    let mut jobs = BTreeSet::new();
    eventually(
        "every job succeeds through A",
        Duration::from_secs(180),
        || {
            jobs = api.all_jobs();
            jobs.iter().all(|(_, state)| state == "succeeded")
        },
    );
    shared.stop_a_workers.store(true, Ordering::Relaxed);
    for thread in a_workers {
        assert!(
            thread.join().is_ok(),
            "a worker of A failed; A's log:\n{}",
            a.stderr()
        );
    }

    // Every acknowledged create is there, and nothing else: a retried create made no second
    // job, whichever daemon answered it.
    let ids: BTreeSet<i64> = jobs.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        acknowledged.len(),
        created.len(),
        "two keys answered one job"
    );
    let lost: Vec<&i64> = acknowledged.difference(&ids).collect();
    assert!(lost.is_empty(), "acknowledged jobs lost: {lost:?}");
    let unasked: Vec<&i64> = ids.difference(&acknowledged).collect();
    assert!(
        unasked.is_empty(),
        "jobs no create was answered with: {unasked:?}"
    );

    // Each job: one completion, by the holder of its last lease, acknowledged or not.
    let completed = shared.completed.lock().unwrap().clone();
    let mut histories = BTreeMap::new();
    let mut rescued = 0;
    for &id in &ids {
        let history = events(a.addr(), id);
        let completions: Vec<&str> = history
            .iter()
            .filter_map(|e| named(e, "complete"))
            .collect();
        assert_eq!(completions.len(), 1, "job {id}: {history:?}");
        let done = history
            .iter()
            .position(|e| e["event"] == "complete")
            .expect("the completion");
        let last_claim = history[..done]
            .iter()
            .rposition(|e| e["event"] == "claim")
            .unwrap_or_else(|| panic!("job {id} completed unclaimed: {history:?}"));
        assert_eq!(
            named(&history[last_claim], "claim"),
            Some(completions[0]),
            "job {id} completed under a stale lease: {history:?}"
        );
        assert!(
            history[last_claim..done]
                .iter()
                .all(|e| e["event"] != "lease_expired"),
            "job {id} completed after its lease expired: {history:?}"
        );
        if let Some(worker) = completed.get(&id) {
            assert_eq!(worker, completions[0], "job {id}: {history:?}");
        }
        if history.iter().any(|e| e["event"] == "lease_expired") {
            rescued += 1;
        }
        histories.insert(id, history);
    }

    // Each job that died with B was rescued and completed by another worker; the last
    // kill's by a worker of A, the only daemon left.
    for (kill, (id, name)) in victims.iter().enumerate() {
        let history = &histories[id];
        let claimed = history
            .iter()
            .position(|e| named(e, "claim") == Some(name))
            .unwrap_or_else(|| panic!("job {id}: no claim by {name}: {history:?}"));
        assert!(
            history[claimed..]
                .iter()
                .any(|e| e["event"] == "lease_expired"),
            "job {id}, leased through B as it died, was not rescued: {history:?}"
        );
        let by = history
            .iter()
            .find_map(|e| named(e, "complete"))
            .expect("the completion");
        assert_ne!(by, name, "job {id}: {history:?}");
        if kill + 1 == KILLS {
            assert!(
                by.starts_with(Via::A.prefix()),
                "job {id}, leased through B at its last death, completed by {by}"
            );
        }
    }
    let abandoned = shared.abandoned.lock().unwrap().clone();
    let abandoned_rescued = abandoned
        .iter()
        .filter(|(id, name)| {
            histories[id]
                .iter()
                .find_map(|e| named(e, "complete"))
                .is_some_and(|by| by != name)
        })
        .count();
    assert!(
        acknowledged.len() > KILLS,
        "too few creates to mean anything"
    );
    let died_with_b: BTreeSet<i64> = victims.iter().map(|(id, _)| *id).collect();
    eprintln!(
        "{KILLS} kills of B; {} jobs created ({} answered after a retry), all succeeded; completions acknowledged: {} \
         through A, {} through B, {} refused as stale; {} jobs rescued after an expired lease, \
         among them the {} claimed through B just before a kill and {} of the {} a worker of B \
         left when B died under its completion",
        acknowledged.len(),
        shared.retried.load(Ordering::Relaxed),
        shared.completed_via_a.load(Ordering::Relaxed),
        shared.completed_via_b.load(Ordering::Relaxed),
        shared.stale.load(Ordering::Relaxed),
        rescued,
        died_with_b.len(),
        abandoned_rescued,
        abandoned.len(),
    );
}
