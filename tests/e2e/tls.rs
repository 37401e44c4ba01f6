//! HTTPS: the daemon serving a certificate and key made by `jobstore tls self-signed`, reached
//! by a rustls client that trusts that certificate. The limits of plain HTTP hold over TLS (a
//! silent or stalled handshake holds no slot past the header timeout; a full server answers
//! 503), SIGHUP rotates the pair for new connections while open ones continue, a pair that
//! cannot be used keeps the old one, and plain HTTP beyond loopback with tokens is refused at
//! startup. No test opens a socket beyond loopback: the refusals are checked on an address no
//! interface of this machine has, and serving on `0.0.0.0` runs in a private network namespace.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{
    Body, Daemon, Options, Process, TLS_NAME, add_token, assert_error, connect, control_env,
    database_in, eventually, id_of, jobstore, listening, peer_certificate, pem_certificate,
    read_response, send, temp_dir, tls_config, tls_connect, try_connect,
};

/// A certificate and key made by `jobstore tls self-signed --out DIR`.
struct Pair {
    cert: PathBuf,
    key: PathBuf,
}

/// Runs `jobstore tls self-signed --out dir` (default names) and answers the files it wrote.
fn self_signed(dir: &Path) -> Pair {
    jobstore([
        OsString::from("tls"),
        "self-signed".into(),
        "--out".into(),
        dir.into(),
    ])
    .success();
    Pair {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    }
}

/// `--tls-cert CERT --tls-key KEY`.
fn tls_args(pair: &Pair) -> Vec<OsString> {
    vec![
        "--tls-cert".into(),
        pair.cert.clone().into(),
        "--tls-key".into(),
        pair.key.clone().into(),
    ]
}

/// The config lines that name `pair`.
fn tls_config_lines(pair: &Pair) -> String {
    format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
        pair.cert.display(),
        pair.key.display()
    )
}

/// Reads from `stream` until the server closes it (EOF or reset) and answers what came and
/// when it closed; panics if it is still open after `limit`.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, Instant) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0_u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return (received, Instant::now()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {
                return (received, Instant::now());
            }
            Err(err) => panic!("the server did not close the connection within {limit:?}: {err}"),
        }
    }
}

#[test]
fn a_self_signed_pair_serves_https_and_the_port_refuses_plain_http() {
    let dir = temp_dir();
    let pair = self_signed(&dir.path().join("tls"));
    let mode = std::fs::metadata(&pair.key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "key.pem mode {mode:o}");
    let pem = std::fs::read_to_string(&pair.cert).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    // Existing files are not replaced.
    let again = jobstore([
        OsString::from("tls"),
        "self-signed".into(),
        "--out".into(),
        dir.path().join("tls").into(),
    ]);
    assert!(!again.status.success(), "{again:?}");
    assert!(again.stderr.contains("exists"), "{}", again.stderr);
    assert_eq!(std::fs::read_to_string(&pair.cert).unwrap(), pem);

    let daemon = Daemon::start_with(
        dir,
        Options {
            args: tls_args(&pair),
            trust: vec![pair.cert.clone()],
            ..Options::default()
        },
    );
    assert!(
        daemon.stderr().contains("listening on https://127.0.0.1:"),
        "{}",
        daemon.stderr()
    );
    let api = daemon.client();
    assert_eq!(api.get("/healthz").expect(200).text().trim(), "ok");
    let id = id_of(&api.create(&json!({"kind": "over-tls", "payload": {"n": 1}})));
    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(job["payload"], json!({"n": 1}), "{job}");
    // The server presented the certificate made.
    let stream = tls_connect(daemon.addr(), &daemon.tls().unwrap()).unwrap();
    assert_eq!(peer_certificate(&stream), pem_certificate(&pair.cert));
    drop(stream);

    // Plain HTTP on the same port: answered 400 in plain text, then closed.
    let refused = send(daemon.addr(), "GET", "/healthz", &[], Body::None).unwrap();
    let message = assert_error(&refused, 400, "invalid_request");
    assert!(message.contains("HTTPS"), "{message}");
    let mut plain = connect(daemon.addr());
    plain
        .write_all(b"POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .unwrap();
    let (answer, _) = read_until_closed(&mut plain, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert_eq!(api.all_jobs().len(), 1, "the plain request made no job");

    // A client with its own TLS stack, when the machine has one.
    if Command::new("curl").arg("--version").output().is_ok() {
        let url = format!("https://{TLS_NAME}:{}/healthz", daemon.addr().port());
        let curl = Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert"])
            .arg(&pair.cert)
            .arg(&url)
            .output()
            .unwrap();
        assert!(curl.status.success(), "curl {url}: {curl:?}");
        assert_eq!(String::from_utf8_lossy(&curl.stdout).trim(), "ok");
    }
}

/// Opens `n` connections stalled in their TLS handshake: half sent the first five bytes of a
/// handshake record announcing 512 more, half sent a real ClientHello and then neither read
/// the server's answer nor went on.
fn stalled_handshakes(
    addr: SocketAddr,
    tls: &Arc<rustls::ClientConfig>,
    n: usize,
) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut stream = connect(addr);
            if i % 2 == 0 {
                stream.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00]).unwrap();
            } else {
                let name = rustls::pki_types::ServerName::try_from(TLS_NAME).unwrap();
                let mut client = rustls::ClientConnection::new(Arc::clone(tls), name).unwrap();
                client.write_tls(&mut stream).unwrap();
            }
            stream
        })
        .collect()
}

/// Asserts that the server closes every stream within `limit` of `opened`.
#[track_caller]
fn all_closed(streams: Vec<TcpStream>, opened: Instant, limit: Duration) {
    for mut stream in streams {
        let left = limit
            .saturating_sub(opened.elapsed())
            .max(Duration::from_millis(1));
        let (_, closed) = read_until_closed(&mut stream, left);
        let after = closed.duration_since(opened);
        assert!(after < limit, "closed after {after:?}");
    }
}

#[test]
fn a_pair_made_with_the_documented_openssl_command_serves_https() {
    // The README's openssl command, word for word but for the folder.
    let dir = temp_dir();
    let tls = dir.path().join("tls");
    std::fs::create_dir_all(&tls).unwrap();
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "365", "-subj", "/CN=localhost"])
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-keyout", "tls/key.pem", "-out", "tls/cert.pem"])
        .current_dir(dir.path())
        .output();
    match made {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!("openssl: {}", String::from_utf8_lossy(&output.stderr)),
        Err(err) => {
            eprintln!("SKIPPED: no openssl command here ({err})");
            return;
        }
    }
    let pair = Pair {
        cert: tls.join("cert.pem"),
        key: tls.join("key.pem"),
    };
    let daemon = Daemon::start_with(
        dir,
        Options {
            args: tls_args(&pair),
            trust: vec![pair.cert.clone()],
            ..Options::default()
        },
    );
    assert_eq!(
        daemon.client().get("/healthz").expect(200).text().trim(),
        "ok"
    );
}

#[test]
fn silent_and_stalled_handshakes_hold_no_slot_past_the_header_timeout() {
    let dir = temp_dir();
    let pair = self_signed(&dir.path().join("tls"));
    let config = format!(
        "{}[limits]\nheader_timeout_ms = 1000\nmax_connections = 8\n",
        tls_config_lines(&pair)
    );
    let trust = vec![pair.cert.clone()];
    let path = dir.path().join("jobstore.toml");
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start_with(
        dir,
        Options {
            args: vec!["--config".into(), path.into_os_string()],
            trust,
            ..Options::default()
        },
    );
    let api = daemon.client();
    let tls = daemon.tls().unwrap();
    // Twenty silent connections (nothing sent: they wait in the lobby) and eight stalled
    // handshakes taking every slot, and no newcomer that would shed one: each is closed by
    // its header timeout (1 s), well within the ten seconds a busy machine is given here.
    let opened = Instant::now();
    let silent: Vec<TcpStream> = (0..20).map(|_| connect(daemon.addr())).collect();
    let stalled = stalled_handshakes(daemon.addr(), &tls, 8);
    all_closed(
        silent.into_iter().chain(stalled).collect(),
        opened,
        Duration::from_secs(10),
    );
    // The slots are free again; and with eight stalled handshakes holding them all, a
    // well-behaved client is served meanwhile (a handshake in progress is idle: the first shed).
    api.get("/healthz").expect(200);
    let opened = Instant::now();
    let stalled = stalled_handshakes(daemon.addr(), &tls, 8);
    for _ in 0..5 {
        api.get("/healthz").expect(200);
    }
    all_closed(stalled, opened, Duration::from_secs(10));
    api.get("/healthz").expect(200);
}

#[test]
fn a_stalled_https_download_is_cut_off_below_the_minimum_rate() {
    const SIZE: usize = 16 * 1024 * 1024;
    let dir = temp_dir();
    let pair = self_signed(&dir.path().join("tls"));
    let path = dir.path().join("jobstore.toml");
    let config = format!(
        "{}[limits]\nbody_timeout_ms = 2000\n",
        tls_config_lines(&pair)
    );
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start_with(
        dir,
        Options {
            args: vec!["--config".into(), path.into_os_string()],
            trust: vec![pair.cert.clone()],
            ..Options::default()
        },
    );
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "export", "upload": true})));
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    api.request("PUT", &format!("/v1/jobs/{id}/data"), &[], data)
        .expect(201);
    // Asks for the data and reads none of it for three windows.
    let mut stream = tls_connect(daemon.addr(), &daemon.tls().unwrap()).unwrap();
    let request = format!("GET /v1/jobs/{id}/data HTTP/1.1\r\nHost: {TLS_NAME}\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    thread::sleep(Duration::from_secs(6));
    let mut received = 0;
    let mut buffer = vec![0_u8; 1 << 20];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("a stalled download over TLS was not cut off: {err}")
            }
            // Closed without a close_notify, or reset: cut off.
            Err(_) => break,
        }
    }
    assert!(
        received < SIZE,
        "a stalled download got all {received} bytes"
    );
    api.get("/healthz").expect(200);
}

#[test]
fn sighup_rotates_the_pair_for_new_connections_and_open_ones_continue() {
    let dir = temp_dir();
    let first = self_signed(&dir.path().join("first"));
    let second = self_signed(&dir.path().join("second"));
    let live = Pair {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let daemon = Daemon::start_with(
        dir,
        Options {
            args: tls_args(&live),
            trust: vec![first.cert.clone(), second.cert.clone()],
            ..Options::default()
        },
    );
    let tls = daemon.tls().unwrap();
    let seen = || {
        let stream = tls_connect(daemon.addr(), &tls).unwrap();
        peer_certificate(&stream)
    };
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {TLS_NAME}:{}\r\n\r\n",
        daemon.addr().port()
    );
    // A keep-alive connection opened before the rotation.
    let mut open = tls_connect(daemon.addr(), &tls).unwrap();
    assert_eq!(peer_certificate(&open), pem_certificate(&first.cert));
    open.write_all(request.as_bytes()).unwrap();
    read_response(&mut open).unwrap().expect(200);

    std::fs::copy(&second.cert, &live.cert).unwrap();
    std::fs::copy(&second.key, &live.key).unwrap();
    daemon.signal("HUP");
    eventually(
        "the daemon reloads the pair",
        Duration::from_secs(10),
        || daemon.stderr().contains("reloaded the TLS certificate"),
    );
    assert_eq!(seen(), pem_certificate(&second.cert));
    daemon.client().get("/healthz").expect(200);
    // The connection opened before goes on, with the pair it began with.
    open.write_all(request.as_bytes()).unwrap();
    read_response(&mut open).unwrap().expect(200);
    assert_eq!(peer_certificate(&open), pem_certificate(&first.cert));

    // A key that does not match the certificate, then one that is no key: the pair in use
    // stays, and the log says why.
    std::fs::copy(&first.key, &live.key).unwrap();
    daemon.signal("HUP");
    eventually(
        "the daemon refuses the mismatch",
        Duration::from_secs(10),
        || daemon.stderr().contains("does not match the certificate"),
    );
    assert_eq!(seen(), pem_certificate(&second.cert));
    std::fs::write(&live.key, "not a key\n").unwrap();
    daemon.signal("HUP");
    eventually(
        "the daemon refuses the broken key",
        Duration::from_secs(10),
        || {
            daemon
                .stderr()
                .matches("keeping the TLS certificate and key in use")
                .count()
                == 2
        },
    );
    assert_eq!(seen(), pem_certificate(&second.cert));
    daemon.client().get("/healthz").expect(200);
    open.write_all(request.as_bytes()).unwrap();
    read_response(&mut open).unwrap().expect(200);
}

#[test]
fn a_full_https_server_answers_503_over_tls() {
    let dir = temp_dir();
    let pair = self_signed(&dir.path().join("tls"));
    let path = dir.path().join("jobstore.toml");
    let config = format!("{}[limits]\nmax_connections = 1\n", tls_config_lines(&pair));
    std::fs::write(&path, config).unwrap();
    let daemon = Daemon::start_with(
        dir,
        Options {
            args: vec!["--config".into(), path.into_os_string()],
            trust: vec![pair.cert.clone()],
            ..Options::default()
        },
    );
    let api = daemon.client();
    // A long poll holds the only slot, busy at no fault of its own. One refused or shed
    // before its request arrived tries again, as a client does.
    let poll = {
        let api = api.clone();
        thread::spawn(move || {
            for _ in 0..100 {
                let body = json!({"worker": "w", "queues": ["none"], "max": 1, "wait_ms": 5000});
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
            panic!("the long poll was never admitted");
        })
    };
    eventually(
        "a newcomer is refused",
        Duration::from_secs(10),
        || match api.try_request("GET", "/healthz", &[], Body::None) {
            Ok(answer) if answer.status == 503 => {
                assert_error(&answer, 503, "overloaded");
                assert_eq!(answer.header("retry-after"), Some("1"));
                true
            }
            _ => false,
        },
    );
    poll.join().unwrap();
    api.get("/healthz").expect(200);
}

#[test]
fn socket_activation_serves_https() {
    if Command::new("systemd-socket-activate")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: no systemd-socket-activate on this machine");
        return;
    }
    let dir = temp_dir();
    let pair = self_signed(&dir.path().join("tls"));
    // A free port of loopback, for systemd-socket-activate to listen on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut command = Command::new("systemd-socket-activate");
    control_env(&mut command);
    command
        .args([
            "-l",
            &addr.to_string(),
            "-E",
            "RUST_LOG=info",
            crate::support::BIN,
        ])
        .arg("serve")
        .arg("--db")
        .arg(database_in(dir.path()))
        .args(tls_args(&pair));
    let process = Process::spawn(command, dir.path(), "the activated daemon", None);
    let tls = tls_config(std::slice::from_ref(&pair.cert));
    // The first connection starts the daemon on the passed socket.
    let mut stream = None;
    eventually(
        "systemd-socket-activate listens",
        Duration::from_secs(10),
        || try_connect(addr).is_ok(),
    );
    eventually(
        "the activated daemon answers",
        Duration::from_secs(20),
        || {
            stream = tls_connect(addr, &tls).ok();
            stream.is_some()
        },
    );
    let mut stream = stream.unwrap();
    assert_eq!(peer_certificate(&stream), pem_certificate(&pair.cert));
    stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {TLS_NAME}\r\n\r\n").as_bytes())
        .unwrap();
    read_response(&mut stream).unwrap().expect(200);
    // The daemon's stderr reaches the test through a pipe a thread reads: wait for it.
    let listening = format!("listening on https://{addr}");
    eventually("the startup lines", Duration::from_secs(10), || {
        process.stderr().contains(&listening)
    });
    let log = process.stderr();
    assert!(log.contains("using the socket passed by systemd"), "{log}");
}

#[test]
fn plain_http_beyond_loopback_with_tokens_is_refused_at_startup() {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: had the check come after the bind, the
    // bind would fail with another message, and no socket beyond loopback could open.
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    add_token(&tokens, "ci", "acme", "read");
    let pair = self_signed(&dir.path().join("tls"));
    let serve = |config: &str, extra: Vec<OsString>| {
        let path = dir.path().join("jobstore.toml");
        std::fs::write(&path, config).unwrap();
        let mut args: Vec<OsString> = vec![
            "serve".into(),
            "--db".into(),
            database_in(dir.path()),
            "--listen".into(),
            "192.0.2.1:0".into(),
            "--config".into(),
            path.into(),
        ];
        args.extend(extra);
        let output = jobstore(args);
        assert!(!output.status.success(), "{output:?}");
        assert!(!output.stderr.contains("listening on"), "{}", output.stderr);
        output.stderr
    };
    let with_tokens = || vec![OsString::from("--tokens"), tokens.clone().into()];

    let plain = serve("", with_tokens());
    assert!(
        plain.contains("refusing to serve plain HTTP on 192.0.2.1:0")
            && plain.contains("allow_plaintext = true")
            && plain.contains("tls_cert"),
        "{plain}"
    );
    // With the allowance, or with TLS, the policy lets it through to the bind, which fails
    // here for want of the address.
    let allowed = serve("allow_plaintext = true\n", with_tokens());
    assert!(
        allowed.contains("cannot listen on 192.0.2.1:0") && !allowed.contains("refusing"),
        "{allowed}"
    );
    let mut https = with_tokens();
    https.extend(tls_args(&pair));
    let https = serve("", https);
    assert!(
        https.contains("cannot listen on 192.0.2.1:0") && !https.contains("refusing"),
        "{https}"
    );
    // TLS does not replace tokens: without them anyone could use the API.
    let open = serve("allow_plaintext = true\n", tls_args(&pair));
    assert!(open.contains("without a tokens file"), "{open}");
}

#[test]
fn beyond_loopback_is_served_over_https_or_with_the_plaintext_allowance() {
    crate::support::sqlite_only!(
        "the daemon runs in a network namespace of its own, which cannot reach the database server"
    );
    // `0.0.0.0` in a network namespace of its own, which has only a loopback interface (down):
    // the daemon binds every address of a network that reaches nothing.
    let dir = temp_dir();
    let tokens = dir.path().join("tokens");
    add_token(&tokens, "ci", "acme", "read");
    let pair = self_signed(&dir.path().join("tls"));
    let config = dir.path().join("plain.toml");
    std::fs::write(&config, "allow_plaintext = true\n").unwrap();
    let cases: [(Vec<OsString>, &str); 2] = [
        (tls_args(&pair), "https"),
        (vec!["--config".into(), config.into()], "http"),
    ];
    for (extra, scheme) in cases {
        let mut command = Command::new("unshare");
        control_env(&mut command);
        command
            .args([
                "--net",
                "--",
                crate::support::BIN,
                "serve",
                "--listen",
                "0.0.0.0:0",
            ])
            .arg("--db")
            .arg(dir.path().join("jobstore.db"))
            .arg("--tokens")
            .arg(&tokens)
            .args(extra);
        let (lines, startup) = mpsc::channel();
        let mut process = Process::spawn(command, dir.path(), "the daemon", Some(lines));
        let deadline = Instant::now() + Duration::from_secs(20);
        let served = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match startup.recv_timeout(left) {
                Ok(line) => {
                    if let Some((https, addr)) = listening(&line) {
                        break Some((https, addr));
                    }
                }
                Err(_) => break None,
            }
        };
        let Some((https, addr)) = served else {
            let log = process.stderr();
            if log.contains("unshare") {
                eprintln!("SKIPPED: no network namespace here (run as root): {log}");
                return;
            }
            panic!("the daemon did not listen on 0.0.0.0: {log}");
        };
        assert_eq!(https, scheme == "https", "{}", process.stderr());
        assert!(addr.ip().is_unspecified(), "{addr}");
        process.signal("TERM");
        let status = process.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "{status}: {}", process.stderr());
    }
}
