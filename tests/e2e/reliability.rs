//! A few slow or silent clients must not stop the daemon: each attack of `docs/reliability.md`,
//! scaled to fit a test, while a well-behaved client keeps getting answers. The tests assert
//! answers (a request that is never answered fails on the client's 30 s socket timeout, which
//! is what the attacks did to the daemon before), never how fast they came.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Body, Client, Daemon, Options, add_token, assert_error, connect, eventually, id_of, jobstore,
    read_response, temp_dir, try_connect,
};

/// Opens `n` connections and sends each `head` and the start of its body.
fn open_slow(addr: SocketAddr, n: usize, head: &str, start: &[u8]) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut stream = connect(addr);
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(start).unwrap();
            stream
        })
        .collect()
}

/// Writes one byte a second to every stream, from a thread, until each was closed by the
/// server or `limit` passed; answers the streams when it stops.
fn drip(streams: Vec<TcpStream>, limit: Duration) -> thread::JoinHandle<Vec<TcpStream>> {
    thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut open = vec![true; streams.len()];
        while Instant::now() < deadline && open.contains(&true) {
            thread::sleep(Duration::from_secs(1));
            for (stream, open) in streams.iter().zip(open.iter_mut()) {
                if *open && (&*stream).write_all(b" ").is_err() {
                    *open = false;
                }
            }
        }
        streams
    })
}

/// The well-behaved client: a store-backed read, `/healthz` and a store-backed write per turn,
/// each answered. It notes how long the answers took, for `docs/reliability.md` only: the
/// tests assert answers, not times.
#[derive(Default)]
struct Meanwhile {
    answered: usize,
    slowest: Duration,
}

impl Meanwhile {
    fn turn(&mut self, api: &Client, read: i64) {
        let mut timed = |call: &dyn Fn()| {
            let started = Instant::now();
            call();
            self.slowest = self.slowest.max(started.elapsed());
            self.answered += 1;
        };
        timed(&|| {
            api.get(&format!("/v1/jobs/{read}")).expect(200);
        });
        timed(&|| {
            api.get("/healthz").expect(200);
        });
        timed(&|| {
            api.create(&json!({"kind": "meanwhile"}));
        });
    }

    fn report(&self) -> String {
        format!(
            "{} requests of a well-behaved client all answered, the slowest in {} ms",
            self.answered,
            self.slowest.as_millis()
        )
    }
}

/// The daemon's resident memory in MiB, from `/proc`.
fn rss_mib(daemon: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"));
    kib / 1024
}

#[test]
fn slow_uploads_hold_no_thread_and_are_cut_off_below_the_minimum_rate() {
    // 530 uploads announcing 1 MB and sending a byte a second: each once held a blocking
    // thread, and past 512 of them no store-backed request was answered.
    const UPLOADS: usize = 530;
    let daemon =
        Daemon::with_config("[limits]\nbody_timeout_ms = 4000\nmax_batches_per_job = 1000\n");
    let api = daemon.client();
    let read = id_of(&api.create(&json!({"kind": "read-me"})));
    let mut meanwhile = Meanwhile::default();
    let upload = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    let head = format!(
        "PUT /v1/jobs/{upload}/data HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000000\r\n\r\n",
        daemon.addr()
    );
    let slow = open_slow(daemon.addr(), UPLOADS, &head, b"x");
    let dripping = drip(slow, Duration::from_secs(40));
    for _ in 0..5 {
        meanwhile.turn(&api, read);
    }
    let slow = dripping.join().unwrap();
    let mut timed_out = 0;
    for mut stream in slow {
        let answer = read_response(&mut stream).expect("an answer to a slow upload");
        assert_error(&answer, 408, "body_timeout");
        timed_out += 1;
    }
    assert_eq!(timed_out, UPLOADS);
    eprintln!(
        "{UPLOADS} slow uploads, every one answered 408; {}",
        meanwhile.report()
    );
    // Nothing of them is kept, not even invisibly.
    let job = api.get(&format!("/v1/jobs/{upload}")).expect_json(200);
    assert_eq!(job["data_batches"], 0, "{job}");
    eventually(
        "the refused batches are deleted",
        Duration::from_secs(10),
        || daemon.sql("SELECT count(*) FROM job_data_batches") == "0",
    );
}

/// Connections in state ESTABLISHED whose local end is `addr` (an IPv4 loopback address), as
/// the kernel lists them in `/proc/net/tcp`.
fn established_at(addr: SocketAddr) -> usize {
    let local = format!("0100007F:{:04X}", addr.port());
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"01")
        })
        .count()
}

#[test]
fn stalled_downloads_hold_no_thread_and_are_cut_off_below_the_minimum_rate() {
    // 530 clients that ask for 16 MiB and read none of it.
    const DOWNLOADS: usize = 530;
    const SIZE: usize = 16 * 1024 * 1024;
    let daemon = Daemon::with_config("[limits]\nbody_timeout_ms = 4000\n");
    let api = daemon.client();
    let read = id_of(&api.create(&json!({"kind": "read-me"})));
    let mut meanwhile = Meanwhile::default();
    let id = id_of(&api.create(&json!({"kind": "export", "upload": true})));
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    api.request("PUT", &format!("/v1/jobs/{id}/data"), &[], data)
        .expect(201);
    let before = rss_mib(&daemon);
    let head = format!(
        "GET /v1/jobs/{id}/data HTTP/1.1\r\nHost: {}\r\n\r\n",
        daemon.addr()
    );
    let stalled = open_slow(daemon.addr(), DOWNLOADS, &head, b"");
    thread::sleep(Duration::from_secs(1));
    for _ in 0..5 {
        meanwhile.turn(&api, read);
    }
    let during = rss_mib(&daemon);
    // Each is cut off one window after the daemon could no longer write to it: once it filled
    // the socket's buffers, which takes longer where the chunks come from a busy database
    // server. The daemon's side of a cut-off connection leaves ESTABLISHED.
    eventually(
        "the stalled downloads are cut off",
        Duration::from_secs(90),
        || established_at(daemon.addr()) <= 2,
    );
    meanwhile.turn(&api, read);
    let after = rss_mib(&daemon);
    eprintln!(
        "{DOWNLOADS} stalled 16 MiB downloads: RSS {before} MiB before, {during} MiB while \
         stalled, {after} MiB once cut off; {}",
        meanwhile.report()
    );
    // Each is cut off after a window below the minimum rate: the client finds its response
    // broken off short of the whole.
    for mut stream in stalled.into_iter().take(5) {
        let mut received = 0;
        let mut buffer = vec![0_u8; 1 << 20];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => received += n,
                Err(err) if err.kind() == ErrorKind::ConnectionReset => break,
                Err(err) => panic!("a stalled download was not cut off: {err}"),
            }
        }
        assert!(
            received < SIZE,
            "a stalled download got all {received} bytes"
        );
    }
    meanwhile.turn(&api, read);
}

#[test]
fn silent_connections_past_the_limit_do_not_lock_anyone_out() {
    // Four hundred connections that send nothing, re-opened as the server closes them, against
    // a limit of 64: they wait outside the limit until their header timeout closes them.
    const SILENT: usize = 400;
    let daemon = Daemon::with_config("[limits]\nmax_connections = 64\n");
    let api = daemon.client();
    let read = id_of(&api.create(&json!({"kind": "read-me"})));
    let mut meanwhile = Meanwhile::default();
    let addr = daemon.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (stop, opened) = (Arc::clone(&stop), Arc::clone(&opened));
        thread::spawn(move || {
            let mut pool: Vec<TcpStream> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                pool.retain(|stream| {
                    let mut byte = [0_u8; 1];
                    stream.set_nonblocking(true).unwrap();
                    // Kept while the server has not closed it.
                    matches!((&*stream).read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
                });
                while pool.len() < SILENT {
                    match try_connect(addr) {
                        Ok(stream) => {
                            pool.push(stream);
                            opened.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => break,
                    }
                }
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    eventually("the flood is open", Duration::from_secs(20), || {
        opened.load(Ordering::Relaxed) >= SILENT
    });
    for _ in 0..20 {
        meanwhile.turn(&api, read);
    }
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let opened = opened.load(Ordering::Relaxed);
    eprintln!(
        "{opened} silent connections against 64 slots ({SILENT} open at a time); {}",
        meanwhile.report()
    );
}

#[test]
fn slow_request_bodies_are_shed_to_admit_a_new_client() {
    // As many JSON bodies dripping a byte a second as there are slots.
    let daemon = Daemon::with_config("[limits]\nmax_connections = 64\nbody_timeout_ms = 4000\n");
    let api = daemon.client();
    let read = id_of(&api.create(&json!({"kind": "read-me"})));
    let mut meanwhile = Meanwhile::default();
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000\r\n\r\n",
        daemon.addr()
    );
    let slow = open_slow(daemon.addr(), 64, &head, b"{");
    // Each body is judged after a second of it.
    let dripping = drip(slow, Duration::from_secs(40));
    thread::sleep(Duration::from_millis(1500));
    for _ in 0..5 {
        meanwhile.turn(&api, read);
    }
    let slow = dripping.join().unwrap();
    // The shed ones were closed without an answer; the rest were answered 408 after their
    // window. None created a job.
    let mut shed = 0;
    for mut stream in slow {
        match read_response(&mut stream) {
            Ok(answer) => {
                assert_error(&answer, 408, "body_timeout");
            }
            Err(_) => shed += 1,
        }
    }
    // The well-behaved client's first connection took the place of a slow one.
    assert!(shed >= 1, "no slow body was shed");
    eprintln!(
        "64 slow JSON bodies against 64 slots, {shed} shed, the rest answered 408; {}",
        meanwhile.report()
    );
    let jobs = api.all_jobs();
    assert_eq!(
        jobs.len(),
        1 + 5,
        "only the well-behaved creates made jobs: {jobs:?}"
    );
}

#[test]
fn a_full_server_of_fair_connections_answers_503_with_retry_after() {
    let daemon = Daemon::with_config("[limits]\nmax_connections = 4\n");
    let api = daemon.client();
    // Four long polls: busy, at no fault of their own.
    let polls: Vec<_> = (0..4)
        .map(|_| {
            let api = api.clone();
            thread::spawn(move || {
                // A poll that came while the probes below held a slot was refused, or shed
                // before its request arrived (a connection that has not spoken yet is the first
                // to go): it tries again, as a client does.
                for _ in 0..100 {
                    let body =
                        json!({"worker": "w", "queues": ["none"], "max": 1, "wait_ms": 6000});
                    match api.try_request("POST", "/v1/claim", &[], &body) {
                        Ok(answer) if answer.status == 503 => {}
                        Ok(answer) => {
                            answer.expect(200);
                            return;
                        }
                        Err(_) => {}
                    }
                    thread::sleep(Duration::from_millis(20));
                }
                panic!("a long poll was never admitted");
            })
        })
        .collect();
    eventually("a newcomer is refused", Duration::from_secs(10), || {
        let answer = api.try_request("GET", "/healthz", &[], Body::None);
        match answer {
            Ok(answer) if answer.status == 503 => {
                assert_error(&answer, 503, "overloaded");
                assert_eq!(answer.header("retry-after"), Some("1"));
                true
            }
            _ => false,
        }
    });
    for poll in polls {
        poll.join().unwrap();
    }
    api.get("/healthz").expect(200);
}

#[test]
fn a_token_past_its_requests_in_flight_gets_429_and_others_are_served() {
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    let busy = add_token(&tokens, "busy", "acme", "read,write");
    let other = add_token(&tokens, "other", "acme", "read,write");
    let daemon =
        Daemon::with_config_in(dir, "[limits]\nmax_requests_per_token = 3\n", Some(tokens));
    let busy_api = daemon.client_with(&busy);
    let other_api = daemon.client_with(&other);
    // Three creates of `busy` whose bodies have not finished: in flight.
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {busy}\r\n\
         Content-Type: application/json\r\nContent-Length: 16\r\n\r\n",
        daemon.addr()
    );
    let mut slow = open_slow(daemon.addr(), 3, &head, b"{\"kind\":");
    // A probe may take a slot just before a slow request, which is then the one refused: such
    // a slow request is sent again until all three are in flight and the probe is refused.
    eventually(
        "three slow requests in flight and the fourth refused",
        Duration::from_secs(10),
        || {
            for stream in &mut slow {
                stream.set_nonblocking(true).unwrap();
                let mut byte = [0_u8; 1];
                let answered = !matches!(
                    stream.peek(&mut byte),
                    Err(err) if err.kind() == ErrorKind::WouldBlock
                );
                stream.set_nonblocking(false).unwrap();
                if answered {
                    *stream = open_slow(daemon.addr(), 1, &head, b"{\"kind\":").remove(0);
                }
            }
            busy_api.get("/v1/jobs").status == 429
        },
    );
    let refused = busy_api.get("/v1/jobs");
    assert_error(&refused, 429, "too_many_requests");
    assert_eq!(refused.header("retry-after"), Some("1"));
    // A vendor API answers it too, in its own shape.
    let vendor = busy_api.get("/api/v1/ingest/jobs");
    assert_eq!(vendor.status, 429, "{}", vendor.text());
    assert_eq!(vendor.header("retry-after"), Some("1"));
    // Another token of the same tenant is served meanwhile.
    other_api.get("/v1/jobs").expect(200);
    other_api.create(&json!({"kind": "other"}));
    // The slow ones finish; the token is served again.
    for stream in &mut slow {
        stream.write_all(b" \"slow\"}").unwrap();
        read_response(stream).unwrap().expect(201);
    }
    busy_api.get("/v1/jobs").expect(200);
}

#[test]
fn a_killed_upload_leaves_no_batch_after_the_next_start() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    let head = format!(
        "PUT /v1/jobs/{id}/data HTTP/1.1\r\nHost: {}\r\nContent-Length: 16777216\r\n\r\n",
        daemon.addr()
    );
    let uploads = open_slow(daemon.addr(), 3, &head, &vec![b'x'; 2 * 1024 * 1024]);
    eventually(
        "three batches are half written",
        Duration::from_secs(20),
        || daemon.sql("SELECT count(DISTINCT batch) FROM job_data_chunks") == "3",
    );
    // SIGKILL, and a new daemon on the same file.
    let daemon = daemon.restart(Options::default());
    drop(uploads);
    assert_eq!(daemon.sql("SELECT count(*) FROM job_data_batches"), "0");
    assert_eq!(daemon.sql("SELECT count(*) FROM job_data_chunks"), "0");
    let api = daemon.client();
    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(job["data_batches"], 0, "{job}");
    let batch = api
        .request(
            "PUT",
            &format!("/v1/jobs/{id}/data"),
            &[],
            b"a,b\n".to_vec(),
        )
        .expect_json(201);
    assert_eq!(batch["batch"], 1, "{batch}");
    let mut daemon = daemon;
    daemon.stop();
    jobstore(["check".as_ref(), "--db".as_ref(), daemon.database()]).success();
}

#[test]
fn a_worker_with_the_work_scope_reads_its_jobs_data() {
    let (daemon, [client, worker]) =
        Daemon::with_tokens([("client", "acme", "read,write"), ("worker", "acme", "work")]);
    let id = id_of(&client.create(&json!({"kind": "ingest", "queue": "q", "upload": true})));
    client
        .request(
            "PUT",
            &format!("/v1/jobs/{id}/data"),
            &[],
            b"id\n1\n".to_vec(),
        )
        .expect(201);
    client
        .post(&format!("/v1/jobs/{id}/close"), &json!({}))
        .expect(200);
    let claimed = worker.claim("w1", "q", 1);
    assert_eq!(claimed.len(), 1);
    let data = worker
        .get(&format!("/v1/jobs/{id}/data"))
        .expect(200)
        .clone();
    assert_eq!(data.body, b"id\n1\n");
    drop(daemon);
}

/// A tmpfs mounted over a directory for the length of a test, unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB over `dir`, or answers why it cannot.
    fn mount(dir: &Path, mib: u32) -> Result<Tmpfs, String> {
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|err| format!("cannot run mount: {err}"))?;
        if output.status.success() {
            Ok(Tmpfs(dir.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_loses_nothing_acknowledged_and_keeps_no_refused_batch() {
    crate::support::sqlite_only!("fills a small tmpfs holding the database file");
    let dir = temp_dir();
    let disk = match Tmpfs::mount(dir.path(), 24) {
        Ok(disk) => disk,
        Err(reason) => {
            eprintln!("SKIPPED: no tmpfs to fill ({reason}); run as root to test a full disk");
            return;
        }
    };
    let mut daemon = Daemon::with_config_in(dir, "[maintenance]\nrescue_interval_ms = 200\n", None);
    let api = daemon.client();
    let mut acknowledged = Vec::new();
    for _ in 0..20 {
        acknowledged.push(id_of(&api.create(&json!({"kind": "before"}))));
    }
    let upload = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    acknowledged.push(upload);
    // Fill the disk but for about a megabyte.
    let filler = daemon.dir().join("filler");
    let free = {
        let output = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(daemon.dir())
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap()
    };
    let keep = 1024 * 1024;
    std::fs::write(&filler, vec![0_u8; usize::try_from(free - keep).unwrap()]).unwrap();

    // An upload larger than what is left: refused with 503, nothing of it visible.
    let refused = api.request(
        "PUT",
        &format!("/v1/jobs/{upload}/data"),
        &[],
        vec![b'x'; 4 * 1024 * 1024],
    );
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.header("retry-after"), Some("1"));
    // Creates until the disk refuses them too; each answered one is kept.
    let mut full = false;
    for i in 0..5000 {
        let answer = api.post(
            "/v1/jobs",
            &json!({"kind": "during", "payload": {"i": i, "pad": "x".repeat(512)}}),
        );
        match answer.status {
            201 => acknowledged.push(id_of(&answer.json())),
            503 => {
                full = true;
                break;
            }
            other => panic!(
                "a create on a full disk answered {other}: {}",
                answer.text()
            ),
        }
    }
    assert!(full, "the disk never filled");
    // Room again: no part of the refused upload is left (its delete ran when it gave up; a
    // delete that fails too is retried on every maintenance tick), and the daemon serves.
    std::fs::remove_file(&filler).unwrap();
    eventually(
        "the refused upload's batch is deleted",
        Duration::from_secs(20),
        || daemon.sql("SELECT count(*) FROM job_data_batches WHERE complete = 0") == "0",
    );
    acknowledged.push(id_of(&api.create(&json!({"kind": "after"}))));
    api.request(
        "PUT",
        &format!("/v1/jobs/{upload}/data"),
        &[],
        b"a\n".to_vec(),
    )
    .expect(201);
    let kept: Vec<i64> = api.all_jobs().iter().map(|(id, _)| *id).collect();
    for id in &acknowledged {
        assert!(kept.contains(id), "acknowledged job {id} is gone");
    }
    eprintln!(
        "full disk: {} acknowledged jobs all kept",
        acknowledged.len()
    );
    daemon.stop();
    jobstore(["check", "--db", daemon.db().to_str().unwrap()]).success();
    drop(daemon);
    drop(disk);
}

/// Every connection is an open file. The daemon raises its soft limit of open files to the
/// hard one (the soft default, often 1,024, is below the 1,024 connections and 4,096 silent
/// ones its limits hold: past it `accept` fails for every client alike), and says so when
/// even the hard limit is short of what its connection limits need.
#[test]
fn the_daemon_raises_its_open_file_limit_and_warns_when_it_is_short() {
    let open_files = |daemon: &Daemon| {
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", daemon.pid()))
            .expect("the daemon's limits");
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .expect("a line of open files")
            .to_owned();
        let numbers: Vec<u64> = line
            .split_whitespace()
            .filter_map(|word| word.parse().ok())
            .collect();
        (numbers[0], numbers[1])
    };
    let short = "the open-file limit is 2048";

    // The defaults need about 1,024 + 4,096 + 256 files: 2,048 is short.
    let defaults = Daemon::start_with(
        temp_dir(),
        Options {
            open_files: Some((256, 2048)),
            ..Options::default()
        },
    );
    assert_eq!(open_files(&defaults), (2048, 2048));
    assert!(defaults.stderr().contains(short), "{}", defaults.stderr());
    defaults.client().get("/healthz").expect(200);

    // 100 connections and the 1,024 silent ones of the lobby fit in 2,048.
    let dir = temp_dir();
    let config = dir.path().join("jobstore.toml");
    std::fs::write(&config, "[limits]\nmax_connections = 100\n").expect("write the config");
    let fitting = Daemon::start_with(
        dir,
        Options {
            open_files: Some((256, 2048)),
            args: vec!["--config".into(), config.into_os_string()],
            ..Options::default()
        },
    );
    assert_eq!(open_files(&fitting), (2048, 2048));
    assert!(!fitting.stderr().contains(short), "{}", fitting.stderr());
}

/// A burst of new clients past `max_connections`, each sending one whole request at once:
/// every one gets an answer, served (200) or refused (503 with `Retry-After`). None is shed
/// with its request unread in its socket, and no refusal is a reset that destroys its 503:
/// either would leave a client that sent a request without knowing what became of it.
#[test]
fn a_burst_past_the_connection_limit_gets_an_answer_for_every_request() {
    const CLIENTS: usize = 40;
    let daemon = Daemon::with_config("[limits]\nmax_connections = 4\n");
    let addr = daemon.addr();
    let start = Arc::new(std::sync::Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                crate::support::send(addr, "GET", "/healthz", &[], Body::None)
            })
        })
        .collect();
    let (mut served, mut refused) = (0, 0);
    for client in clients {
        let answer = client
            .join()
            .expect("a client thread")
            .expect("an answer to every request, never a reset");
        match answer.status {
            200 => served += 1,
            503 => {
                assert_error(&answer, 503, "overloaded");
                assert_eq!(answer.header("retry-after"), Some("1"));
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", answer.text()),
        }
    }
    assert!(served >= 4, "{served} served, {refused} refused");
    daemon.client().get("/healthz").expect(200);
}
