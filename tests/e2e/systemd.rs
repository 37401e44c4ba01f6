//! systemd notifications: with `NOTIFY_SOCKET` pointing at a datagram socket of the test, the
//! daemon sends `READY=1` once serving, `WATCHDOG=1` while healthy, `STOPPING=1` on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::{Daemon, Options, temp_dir};

/// Reads datagrams until one holds `line`, for at most `timeout`.
fn expect_message(socket: &UnixDatagram, line: &str, timeout: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + timeout;
    let mut buffer = [0_u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no `{line}` within {timeout:?}; got {seen:?}"
        );
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buffer) {
            Ok(n) => {
                let message = String::from_utf8_lossy(&buffer[..n]).into_owned();
                let found = message.lines().any(|l| l == line);
                seen.push(message);
                if found {
                    return;
                }
            }
            Err(err) => panic!("no `{line}` within {timeout:?} ({err}); got {seen:?}"),
        }
    }
}

#[test]
fn ready_watchdog_and_stopping_are_notified() {
    let dir = temp_dir();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut daemon = Daemon::start_with(
        dir,
        Options {
            env: vec![
                ("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned()),
                ("WATCHDOG_USEC".into(), "400000".into()),
            ],
            ..Options::default()
        },
    );
    let mut seen = Vec::new();
    expect_message(&socket, "READY=1", Duration::from_secs(10), &mut seen);
    daemon.client().get("/healthz").expect(200);
    expect_message(&socket, "WATCHDOG=1", Duration::from_secs(10), &mut seen);
    daemon.signal("TERM");
    expect_message(&socket, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
}

#[test]
fn sigint_stops_cleanly_too() {
    let mut daemon = Daemon::start();
    daemon.client().get("/healthz").expect(200);
    daemon.signal("INT");
    let status = daemon.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", daemon.stderr());
}
