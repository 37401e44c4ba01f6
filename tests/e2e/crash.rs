//! Crash safety: clients create jobs while the daemon is killed with SIGKILL and restarted,
//! again and again. Every job whose creation was answered 2xx is there afterwards, and the
//! database passes `jobstore check`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::json;

use crate::support::{Body, Daemon, Options, jobstore, send};

const KILLS: u64 = 20;
const CLIENTS: usize = 4;

#[test]
fn acknowledged_creates_survive_repeated_sigkill() {
    let mut daemon = Daemon::start();
    let address = Arc::new(Mutex::new(daemon.addr()));
    let acknowledged = Arc::new(Mutex::new(BTreeSet::new()));
    let answered = Arc::new(Mutex::new(0_usize));
    let stop = Arc::new(AtomicBool::new(false));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let address = Arc::clone(&address);
            let acknowledged = Arc::clone(&acknowledged);
            let answered = Arc::clone(&answered);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                let mut n = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let addr: SocketAddr = *address.lock().unwrap();
                    let body = json!({"kind": "crash", "name": format!("c{client}-{n}"),
                                      "payload": {"client": client, "n": n}});
                    let result = send(
                        addr,
                        "POST",
                        "/v1/jobs",
                        &[("Content-Type", "application/json")],
                        Body::from(&body),
                    );
                    match result {
                        Ok(response) if (200..300).contains(&response.status) => {
                            let job = response.json();
                            let id = job["id"].as_i64().expect("an id in a 2xx answer");
                            acknowledged.lock().unwrap().insert(id);
                            *answered.lock().unwrap() += 1;
                        }
                        // Refused while down, reset by the kill, 503 while busy: not promised.
                        Ok(response) => assert!(
                            response.status >= 500,
                            "a create answered {}: {}",
                            response.status,
                            response.text()
                        ),
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        })
        .collect();

    for kill in 0..KILLS {
        // Let some creates land (a varying while), then kill in the middle of them.
        let before = *answered.lock().unwrap();
        crate::support::eventually(
            "creates are answered after a restart",
            Duration::from_secs(20),
            || *answered.lock().unwrap() > before,
        );
        thread::sleep(Duration::from_millis(20 + (kill * 37) % 150));
        daemon.signal("KILL");
        let status = daemon.wait_exit(Duration::from_secs(10));
        assert!(!status.success(), "SIGKILL ended with {status}");
        daemon = daemon.restart(Options::default());
        *address.lock().unwrap() = daemon.addr();
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > KILLS as usize,
        "too few creates to mean anything"
    );
    let present: BTreeSet<i64> = daemon
        .client()
        .all_jobs()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let lost: Vec<&i64> = acknowledged.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged jobs lost: {lost:?}");

    daemon.stop();
    let check = jobstore(["--db".into(), daemon.database().to_owned(), "check".into()]);
    assert_eq!(check.success().trim(), "ok");
}
