//! The fixtures every end-to-end test uses: a [`Daemon`] (the real `jobstore serve` in its own
//! temporary directory on `127.0.0.1:0`), a tiny blocking HTTP/1.1 [`Client`] over
//! `std::net::TcpStream` (or over rustls for a daemon serving HTTPS), raw-socket helpers for
//! the timeout tests, and runners for the binary's other commands (`token add`, `jobs`,
//! `check`, `backup`, `tls self-signed`).
//!
//! The engine: with `JOBSTORE_E2E_POSTGRES=1` in the environment, every daemon started
//! without [`Options::db`] keeps its jobs in a fresh database of the PostgreSQL test cluster
//! (`crate::cluster`) instead of the file `DIR/jobstore.db` ([`database_in`]); a test about
//! the SQLite file itself says so with [`sqlite_only!`] and does not run then.

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_jobstore");

/// How long a daemon may take to print its `listening on` line.
const STARTUP_WAIT: Duration = Duration::from_secs(20);

/// Read and write timeout of every test socket: a hung daemon fails the test instead of
/// hanging it.
pub(crate) const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a one-shot command (`token add`, `jobs list`, ...) may run.
const COMMAND_WAIT: Duration = Duration::from_secs(30);

/// The environment variable that puts the daemons of the suite on PostgreSQL (`1`; unset,
/// empty or `0`: SQLite files).
pub(crate) const ON_POSTGRES: &str = "JOBSTORE_E2E_POSTGRES";

/// Whether this run's daemons keep their jobs in PostgreSQL ([`ON_POSTGRES`]).
pub(crate) fn on_postgres() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os(ON_POSTGRES).is_some_and(|v| !v.is_empty() && v != "0"))
}

/// Whether a test about the SQLite file must not run: on PostgreSQL it says so, with `reason`,
/// on stderr and answers `true`. Called through [`sqlite_only!`].
pub(crate) fn skipped_on_postgres(reason: &str) -> bool {
    if on_postgres() {
        let test = thread::current().name().unwrap_or("this test").to_owned();
        eprintln!("{test}: SQLite only, not run on PostgreSQL: {reason}");
    }
    on_postgres()
}

/// Marks a test as one about the SQLite file (`reason` says how): on PostgreSQL
/// ([`ON_POSTGRES`]) the test returns at once, saying why.
macro_rules! sqlite_only {
    ($reason:expr) => {
        if $crate::support::skipped_on_postgres($reason) {
            return;
        }
    };
}
pub(crate) use sqlite_only;

/// The file holding the URL of the PostgreSQL database of a test directory's daemons.
const POSTGRES_URL_FILE: &str = "postgres-url";

/// The database of the daemons started in `dir` without [`Options::db`]: the file
/// `DIR/jobstore.db`, or on PostgreSQL a fresh database of the test cluster, the same one for
/// the directory's whole life (its URL is kept in `DIR/postgres-url`), so a daemon restarted on
/// the directory finds its jobs.
pub(crate) fn database_in(dir: &Path) -> OsString {
    if !on_postgres() {
        return dir.join("jobstore.db").into_os_string();
    }
    let kept = dir.join(POSTGRES_URL_FILE);
    match std::fs::read_to_string(&kept) {
        Ok(url) => url.into(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let url = crate::cluster::fresh_database();
            std::fs::write(&kept, &url).unwrap_or_else(|err| panic!("write {kept:?}: {err}"));
            url.into()
        }
        Err(err) => panic!("read {kept:?}: {err}"),
    }
}

/// What to start a daemon with, beyond `serve --db DB --listen 127.0.0.1:0` (`DB`: see
/// [`database_in`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Options {
    /// `--tokens FILE`.
    pub tokens: Option<PathBuf>,
    /// More arguments after the fixed ones (e.g. `--config FILE`).
    pub args: Vec<OsString>,
    /// Environment variables for the daemon.
    pub env: Vec<(String, String)>,
    /// The certificates clients trust (PEM files), for a daemon that serves HTTPS.
    pub trust: Vec<PathBuf>,
    /// `--db`: the database, when not the test directory's own ([`database_in`]).
    pub db: Option<OsString>,
    /// The daemon's soft and hard limits of open files (set by `prlimit`), when not the
    /// test's own.
    pub open_files: Option<(u64, u64)>,
}

/// The binary under test with the environment a test controls: no `JOBSTORE_*` settings or
/// `NOTIFY_SOCKET` inherited from the machine, `RUST_LOG=info`.
pub(crate) fn binary() -> Command {
    let mut command = Command::new(BIN);
    control_env(&mut command);
    command
}

/// Clears the `JOBSTORE_*`, credentials and `NOTIFY_SOCKET` settings a command would inherit
/// from the machine, and sets `RUST_LOG=info`.
pub(crate) fn control_env(command: &mut Command) {
    for name in [
        "JOBSTORE_DB",
        "JOBSTORE_LISTEN",
        "JOBSTORE_TOKENS",
        "JOBSTORE_TLS_CERT",
        "JOBSTORE_TLS_KEY",
        "JOBSTORE_CA_FILE",
        "CREDENTIALS_DIRECTORY",
        "NOTIFY_SOCKET",
    ] {
        command.env_remove(name);
    }
    command.env("RUST_LOG", "info");
}

/// A running child process of the binary under test. Its stderr is drained for the
/// process's whole life (the pipe never fills) and kept for failure messages; each line also
/// goes to `lines` when given. Killed (SIGKILL) on drop unless it already exited.
pub(crate) struct Process {
    child: Child,
    exited: Option<ExitStatus>,
    log: Arc<Mutex<Vec<String>>>,
    /// What it is, for failure messages ("the daemon", "the worker").
    what: &'static str,
}

impl Process {
    /// Spawns `command` in `dir` with stdin and stdout null and stderr captured.
    pub(crate) fn spawn(
        mut command: Command,
        dir: &Path,
        what: &'static str,
        lines: Option<mpsc::Sender<String>>,
    ) -> Process {
        let mut child = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {what}: {err}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&log);
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                match reader.read_until(b'\n', &mut raw) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
                        kept.lock().expect("log lock").push(line.clone());
                        if let Some(lines) = &lines {
                            let _ = lines.send(line);
                        }
                    }
                }
            }
        });
        Process {
            child,
            exited: None,
            log,
            what,
        }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`, ...) with the `kill` command.
    pub(crate) fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Whether the process still runs.
    pub(crate) fn running(&mut self) -> bool {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited.is_none()
    }

    /// Waits up to `timeout` for the process to exit and answers its exit status. One still
    /// running then is killed and the test fails.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        while self.running() {
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not exit within {timeout:?}; stderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.exited.expect("exit status")
    }

    /// SIGKILL and reap, unless it already exited.
    pub(crate) fn kill(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The real daemon, in its own temporary directory, listening on a free port of 127.0.0.1.
/// Killed (SIGKILL) on drop unless the test stopped it and waited for its exit.
pub(crate) struct Daemon {
    /// Always `Some` until [`Daemon::restart`] hands it to the next daemon.
    dir: Option<TempDir>,
    process: Process,
    addr: SocketAddr,
    /// How clients reach a daemon that serves HTTPS.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// What `--db` named.
    database: OsString,
}

impl Daemon {
    /// A daemon without tokens (every request acts as tenant `default` with every scope).
    pub(crate) fn start() -> Daemon {
        Daemon::start_with(temp_dir(), Options::default())
    }

    /// A daemon with a tokens file holding one token per `(name, tenant, scopes)`, and a
    /// client for each token, in the same order.
    pub(crate) fn with_tokens<const N: usize>(
        tokens: [(&str, &str, &str); N],
    ) -> (Daemon, [Client; N]) {
        let dir = temp_dir();
        let file = dir.path().join("tokens");
        let secrets = tokens.map(|(name, tenant, scopes)| add_token(&file, name, tenant, scopes));
        let daemon = Daemon::start_with(
            dir,
            Options {
                tokens: Some(file),
                ..Options::default()
            },
        );
        let clients = secrets.map(|secret| daemon.client_with(&secret));
        (daemon, clients)
    }

    /// A daemon whose config file (`--config`) holds `config`.
    pub(crate) fn with_config(config: &str) -> Daemon {
        Daemon::with_config_in(temp_dir(), config, None)
    }

    /// A daemon in `dir` whose config file holds `config`, with a tokens file if given.
    pub(crate) fn with_config_in(dir: TempDir, config: &str, tokens: Option<PathBuf>) -> Daemon {
        let path = dir.path().join("jobstore.toml");
        std::fs::write(&path, config).unwrap();
        Daemon::start_with(
            dir,
            Options {
                tokens,
                args: vec!["--config".into(), path.into_os_string()],
                ..Options::default()
            },
        )
    }

    /// A daemon in `dir` (which the test may have prepared: a tokens file, a config file).
    pub(crate) fn start_with(dir: TempDir, options: Options) -> Daemon {
        Daemon::start_listening(dir, options, "127.0.0.1:0")
    }

    /// A daemon in `dir` listening on `listen` (`127.0.0.1:0`: a free port).
    fn start_listening(dir: TempDir, options: Options, listen: &str) -> Daemon {
        let db = options
            .db
            .clone()
            .unwrap_or_else(|| database_in(dir.path()));
        let mut command = match options.open_files {
            Some((soft, hard)) => {
                // prlimit sets the limits, then runs the daemon in its own place (same pid).
                let mut command = Command::new("prlimit");
                command
                    .arg(format!("--nofile={soft}:{hard}"))
                    .arg("--")
                    .arg(BIN);
                control_env(&mut command);
                command
            }
            None => binary(),
        };
        command
            .arg("serve")
            .arg("--db")
            .arg(&db)
            .arg("--listen")
            .arg(listen);
        if let Some(tokens) = &options.tokens {
            command.arg("--tokens").arg(tokens);
        }
        command.args(&options.args);
        for (name, value) in &options.env {
            command.env(name, value);
        }
        // Every stderr line also goes to the startup wait below.
        let (lines, startup) = mpsc::channel::<String>();
        let mut process = Process::spawn(command, dir.path(), "the daemon", Some(lines));

        let deadline = Instant::now() + STARTUP_WAIT;
        let (https, addr) = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match startup.recv_timeout(left) {
                Ok(line) => {
                    if let Some((https, addr)) = listening(&line) {
                        break (https, addr);
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = process.wait_exit(STARTUP_WAIT);
                    panic!(
                        "the daemon exited before listening ({status}); stderr:\n{}",
                        process.stderr()
                    );
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    process.kill();
                    panic!(
                        "the daemon did not print `listening on` within {STARTUP_WAIT:?}; stderr:\n{}",
                        process.stderr()
                    );
                }
            }
        };
        assert!(addr.ip().is_loopback(), "listening beyond loopback: {addr}");
        let tls = https.then(|| {
            assert!(
                !options.trust.is_empty(),
                "the daemon serves HTTPS: give Options::trust its certificate"
            );
            tls_config(&options.trust)
        });
        Daemon {
            dir: Some(dir),
            process,
            addr,
            tls,
            database: db,
        }
    }

    /// The daemon's address.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The daemon's temporary directory.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the directory").path()
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The database file (SQLite only: a test that needs it is [`sqlite_only!`]).
    #[track_caller]
    pub(crate) fn db(&self) -> PathBuf {
        assert!(
            !on_postgres(),
            "the daemon's database is not a file on PostgreSQL: mark the test sqlite_only!"
        );
        self.dir().join("jobstore.db")
    }

    /// The database, as `--db` named it: a file or a PostgreSQL URL (for the commands run on
    /// the daemon's database).
    pub(crate) fn database(&self) -> &OsStr {
        &self.database
    }

    /// A SQL query on the daemon's database by a second client, as an operator reads it: the
    /// `sqlite3` command-line tool on a file, a connection of its own on PostgreSQL. Answers
    /// the rows, a line each, columns joined by `|`, trimmed. Write `query` for both engines.
    #[track_caller]
    pub(crate) fn sql(&self, query: &str) -> String {
        if let Some(url) = self
            .database
            .to_str()
            .filter(|db| db.starts_with("postgres"))
        {
            let rows = crate::cluster::connect(url)
                .simple_query(query)
                .unwrap_or_else(|err| panic!("{query}: {err}"));
            let lines: Vec<String> = rows
                .iter()
                .filter_map(|message| match message {
                    postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join("|"),
                    ),
                    _ => None,
                })
                .collect();
            return lines.join("\n").trim().to_owned();
        }
        let output = Command::new("sqlite3")
            .arg(&self.database)
            .arg(query)
            .output()
            .expect("run sqlite3 (the command-line tool)");
        assert!(
            output.status.success(),
            "sqlite3 {query}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Starts a new daemon on the same directory and database (killing this one first if it
    /// still runs).
    pub(crate) fn restart(mut self, options: Options) -> Daemon {
        self.process.kill();
        let dir = self.dir.take().expect("the directory");
        Daemon::start_with(dir, options)
    }

    /// As [`Daemon::restart`], but on the same address as this daemon, so that clients
    /// holding the URL (a running `jobstore worker`) reach the new daemon.
    pub(crate) fn restart_on_same_address(mut self, options: Options) -> Daemon {
        self.process.kill();
        let addr = self.addr;
        let dir = self.dir.take().expect("the directory");
        let daemon = Daemon::start_listening(dir, options, &addr.to_string());
        assert_eq!(daemon.addr(), addr, "the restarted daemon moved");
        daemon
    }

    /// A client without a token (over HTTPS when the daemon serves it).
    pub(crate) fn client(&self) -> Client {
        Client {
            addr: self.addr,
            token: None,
            tls: self.tls.clone(),
        }
    }

    /// A client that sends `Authorization: Bearer TOKEN`.
    pub(crate) fn client_with(&self, token: &str) -> Client {
        Client {
            token: Some(token.to_owned()),
            ..self.client()
        }
    }

    /// How clients reach the daemon over HTTPS (`None`: it serves plain HTTP).
    pub(crate) fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.tls.clone()
    }

    /// Everything the daemon wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Sends a signal by name (`TERM`, `HUP`, `KILL`, ...) with the `kill` command.
    pub(crate) fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    /// Waits up to `timeout` for the daemon to exit and answers its exit status. A daemon
    /// still running then is killed and the test fails.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process.wait_exit(timeout)
    }

    /// SIGTERM, then waits (bounded) for a clean exit with status 0.
    pub(crate) fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(15));
        assert!(
            status.success(),
            "the daemon exited with {status}; stderr:\n{}",
            self.stderr()
        );
    }
}

/// Whether `line` is the daemon's `listening on http(s)://ADDR` line: HTTPS or not, and the
/// address.
pub(crate) fn listening(line: &str) -> Option<(bool, SocketAddr)> {
    let rest = line.split("listening on ").nth(1)?;
    let (https, rest) = match rest.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, rest.strip_prefix("http://")?),
    };
    let text = rest.split_whitespace().next().unwrap_or_default();
    let addr = text
        .parse::<SocketAddr>()
        .unwrap_or_else(|_| panic!("unparsable address in `{line}`"));
    Some((https, addr))
}

/// A fresh temporary directory.
pub(crate) fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("jobstore-e2e-")
        .tempdir()
        .expect("temp dir")
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// No body (no `Content-Length`).
    None,
    /// One piece, with `Content-Length`.
    Full(Vec<u8>),
    /// `Transfer-Encoding: chunked`, one chunk per piece.
    Chunked(Vec<Vec<u8>>),
    /// `Content-Length` of all pieces, written one piece at a time with `pause` before each
    /// piece after the first.
    Paced {
        /// The pieces.
        pieces: Vec<Vec<u8>>,
        /// The pause between pieces.
        pause: Duration,
    },
}

impl From<&Value> for Body {
    fn from(value: &Value) -> Body {
        Body::Full(value.to_string().into_bytes())
    }
}

impl From<Value> for Body {
    fn from(value: Value) -> Body {
        Body::from(&value)
    }
}

impl From<&str> for Body {
    fn from(text: &str) -> Body {
        Body::Full(text.as_bytes().to_vec())
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Body {
        Body::Full(bytes)
    }
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics with the body when it is not.
    pub(crate) fn json(&self) -> Value {
        json(&self.body)
    }

    /// The body as JSON, or `null` when it is not JSON.
    pub(crate) fn json_or_null(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The body as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, with the body in the message.
    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> &Response {
        assert_eq!(
            self.status,
            status,
            "expected {status}, got {}: {}",
            self.status,
            self.text()
        );
        self
    }

    /// Asserts the status and answers the JSON body.
    #[track_caller]
    pub(crate) fn expect_json(&self, status: u16) -> Value {
        self.expect(status);
        self.json()
    }

    /// Asserts a JSON content type, with the body in the message.
    #[track_caller]
    pub(crate) fn expect_json_type(&self) -> &Response {
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "content type {content_type}: {}",
            self.text()
        );
        self
    }

    /// Asserts an error answer: this status (`what` names the error expected, for the
    /// message) and a JSON body, which it answers.
    #[track_caller]
    pub(crate) fn expect_error_document(&self, status: u16, what: &str) -> Value {
        assert_eq!(
            self.status,
            status,
            "expected {status} {what}, got {}: {}",
            self.status,
            self.text()
        );
        self.expect_json_type().json()
    }
}

/// Parses JSON bytes; panics with the text when they are not JSON.
#[track_caller]
pub(crate) fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|err| {
        panic!(
            "not JSON ({err}): {:?}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(2000)])
        )
    })
}

/// Asserts that `response` is the native error document with this status and type:
/// `{"error": {"type": ..., "message": ...}}` and nothing else, with a non-empty message.
/// Answers the message.
#[track_caller]
pub(crate) fn assert_error(response: &Response, status: u16, kind: &str) -> String {
    let doc = response.expect_error_document(status, kind);
    let outer = doc.as_object().expect("error document is an object");
    assert_eq!(outer.len(), 1, "only `error` at the top: {doc}");
    let error = doc["error"].as_object().expect("`error` is an object");
    assert_eq!(error.len(), 2, "only `type` and `message`: {doc}");
    assert_eq!(doc["error"]["type"], kind, "error type in {doc}");
    let message = doc["error"]["message"]
        .as_str()
        .expect("`message` is a string");
    assert!(!message.is_empty(), "empty error message: {doc}");
    message.to_owned()
}

/// A blocking HTTP/1.1 client for one daemon, one connection per request, over TLS when the
/// daemon serves HTTPS.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    addr: SocketAddr,
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// The bearer token this client sends, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends one request; panics when the exchange fails at the socket level.
    #[track_caller]
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Response {
        self.try_request(method, path, headers, body)
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"))
    }

    /// Sends one request; answers the socket error, if any.
    pub(crate) fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> io::Result<Response> {
        let bearer = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let mut all: Vec<(&str, &str)> = Vec::new();
        if let Some(bearer) = &bearer {
            all.push(("Authorization", bearer));
        }
        all.extend_from_slice(headers);
        match &self.tls {
            None => send(self.addr, method, path, &all, body.into()),
            Some(tls) => send_tls(self.addr, tls, method, path, &all, body.into()),
        }
    }

    /// `GET path`.
    #[track_caller]
    pub(crate) fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], Body::None)
    }

    /// `POST path` with a JSON body.
    #[track_caller]
    pub(crate) fn post(&self, path: &str, body: &Value) -> Response {
        self.request("POST", path, &[("Content-Type", "application/json")], body)
    }

    /// `PUT path` with a JSON body.
    #[track_caller]
    pub(crate) fn put(&self, path: &str, body: &Value) -> Response {
        self.request("PUT", path, &[("Content-Type", "application/json")], body)
    }

    /// `DELETE path`.
    #[track_caller]
    pub(crate) fn delete(&self, path: &str) -> Response {
        self.request("DELETE", path, &[], Body::None)
    }

    /// `POST /v1/jobs` with `body`, asserting 201; answers the job.
    #[track_caller]
    pub(crate) fn create(&self, body: &Value) -> Value {
        self.post("/v1/jobs", body).expect_json(201)
    }

    /// `POST /v1/claim` of up to `max` jobs of `queue` for `worker` (no wait); answers the jobs.
    #[track_caller]
    pub(crate) fn claim(&self, worker: &str, queue: &str, max: u32) -> Vec<Value> {
        let answer = self
            .post(
                "/v1/claim",
                &serde_json::json!({
                    "worker": worker, "queues": [queue], "max": max, "lease_ms": 30_000
                }),
            )
            .expect_json(200);
        answer["jobs"].as_array().expect("jobs array").clone()
    }

    /// Every job id `GET /v1/jobs` lists (following cursors), with its state.
    #[track_caller]
    pub(crate) fn all_jobs(&self) -> BTreeSet<(i64, String)> {
        let mut seen = BTreeSet::new();
        let mut path = "/v1/jobs?sort=id&order=asc&limit=100".to_owned();
        loop {
            let page = self.get(&path).expect_json(200);
            for job in page["jobs"].as_array().expect("jobs array") {
                let state = job["state"].as_str().expect("state").to_owned();
                seen.insert((job["id"].as_i64().expect("id"), state));
            }
            match page["next_cursor"].as_str() {
                Some(cursor) => {
                    path = format!(
                        "/v1/jobs?sort=id&order=asc&limit=100&cursor={}",
                        encode(cursor)
                    );
                }
                None => return seen,
            }
        }
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A TCP connection to `addr` (127.0.0.1 only) with read and write timeouts.
pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    try_connect(addr).unwrap_or_else(|err| panic!("connect {addr}: {err}"))
}

/// As [`connect`], answering the error.
pub(crate) fn try_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    assert!(addr.ip().is_loopback(), "tests talk to 127.0.0.1 only");
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_write_timeout(Some(SOCKET_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends one request on a fresh connection with `Connection: close` and reads the answer.
/// The request is written on a second thread while this one reads, so an early answer (413,
/// 408) is seen even when the server stops reading the body.
pub(crate) fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> io::Result<Response> {
    let stream = try_connect(addr)?;
    let head = request_head(addr, method, path, "close", headers, &body);
    let mut writer = stream.try_clone()?;
    thread::scope(|scope| {
        let written = scope.spawn(move || write_request(&mut writer, &head, body));
        let answer = read_response_to(&mut &stream, method);
        // Unblocks a writer the server stopped reading from.
        let _ = stream.shutdown(std::net::Shutdown::Both);
        let written = written
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer panicked")));
        match (answer, written) {
            (Ok(response), _) => Ok(response),
            (Err(read), Err(write)) => Err(io::Error::new(
                read.kind(),
                format!("reading: {read}; writing: {write}"),
            )),
            (Err(read), Ok(())) => Err(read),
        }
    })
}

/// A request head with `Connection: connection`, `headers` and the framing of `body`.
fn request_head(
    addr: SocketAddr,
    method: &str,
    path: &str,
    connection: &str,
    headers: &[(&str, &str)],
    body: &Body,
) -> String {
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: {connection}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match body {
        Body::None => {}
        Body::Full(bytes) => head.push_str(&format!("Content-Length: {}\r\n", bytes.len())),
        Body::Paced { pieces, .. } => {
            let total: usize = pieces.iter().map(Vec::len).sum();
            head.push_str(&format!("Content-Length: {total}\r\n"));
        }
        Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    head.push_str("\r\n");
    head
}

/// Writes `head`, then `body` in its framing.
fn write_request(writer: &mut TcpStream, head: &str, body: Body) -> io::Result<()> {
    writer.write_all(head.as_bytes())?;
    match body {
        Body::None => {}
        Body::Full(bytes) => writer.write_all(&bytes)?,
        Body::Paced { pieces, pause } => {
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    thread::sleep(pause);
                }
                writer.write_all(piece)?;
                writer.flush()?;
            }
        }
        Body::Chunked(pieces) => {
            for piece in pieces.iter().filter(|p| !p.is_empty()) {
                writer.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                writer.write_all(piece)?;
                writer.write_all(b"\r\n")?;
            }
            writer.write_all(b"0\r\n\r\n")?;
        }
    }
    writer.flush()
}

/// Sends a request the server may answer before reading its body (a refused upload) on a
/// keep-alive connection, reading the answer while the body is written, as a pooling client
/// (Node's agent under jsforce) does; answers the answer. Then the connection must still be
/// good for the client:
/// - an answer saying `Connection: close` must be followed by the close (the end of the
///   stream or a reset) and by nothing else; `None` is answered;
/// - otherwise the whole body must have been taken, and `GET next` sent on the same
///   connection must be answered: its answer is answered.
#[track_caller]
pub(crate) fn on_keep_alive(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
    next: &str,
) -> (Response, Option<Response>) {
    let what = format!("{method} {path}");
    let mut stream = connect(addr);
    let head = request_head(addr, method, path, "keep-alive", headers, &body);
    let mut writer = stream
        .try_clone()
        .unwrap_or_else(|err| panic!("{what}: {err}"));
    thread::scope(|scope| {
        let written = scope.spawn(move || write_request(&mut writer, &head, body));
        let first = read_response_to(&mut &stream, method)
            .unwrap_or_else(|err| panic!("{what}: no answer: {err}"));
        let closes = first
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if closes {
            let mut rest = Vec::new();
            match stream.read_to_end(&mut rest) {
                Ok(_) => assert!(
                    rest.is_empty(),
                    "{what}: bytes after an answer that closes: {:?}",
                    String::from_utf8_lossy(&rest)
                ),
                Err(err) => assert_eq!(
                    err.kind(),
                    io::ErrorKind::ConnectionReset,
                    "{what}: the close did not come: {err}"
                ),
            }
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = written.join();
            return (first, None);
        }
        let written = written
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("writer panicked")));
        if let Err(err) = written {
            panic!(
                "{what}: answered {} without `Connection: close`, but the body could not be \
                 sent whole: {err}",
                first.status
            );
        }
        let second = request_head(addr, "GET", next, "keep-alive", &[], &Body::None);
        let answer = stream
            .write_all(second.as_bytes())
            .and_then(|()| read_response(&mut stream))
            .unwrap_or_else(|err| {
                panic!(
                    "{what}: answered {} without `Connection: close`, then GET {next} on the \
                     same connection failed: {err}",
                    first.status
                )
            });
        (first, Some(answer))
    })
}

/// The name the test clients expect in the daemon's certificate.
pub(crate) const TLS_NAME: &str = "localhost";

/// A TLS stream over a test socket.
pub(crate) type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS client configuration (*ring*, TLS 1.2 and 1.3, HTTP/1.1 by ALPN) that trusts the
/// certificates in the PEM files `trust` (self-signed ones are their own authority).
pub(crate) fn tls_config(trust: &[PathBuf]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for path in trust {
        for cert in CertificateDer::pem_file_iter(path)
            .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
        {
            roots
                .add(cert.expect("a PEM certificate"))
                .expect("a usable root");
        }
    }
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr` (127.0.0.1 only) for [`TLS_NAME`], its handshake done.
pub(crate) fn tls_connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
) -> io::Result<TlsStream> {
    let mut socket = try_connect(addr)?;
    let name = rustls::pki_types::ServerName::try_from(TLS_NAME).expect("a DNS name");
    let mut connection =
        rustls::ClientConnection::new(Arc::clone(config), name).map_err(io::Error::other)?;
    while connection.is_handshaking() {
        connection.complete_io(&mut socket)?;
    }
    Ok(rustls::StreamOwned::new(connection, socket))
}

/// The certificate the server presented on `stream` (DER).
pub(crate) fn peer_certificate(stream: &TlsStream) -> Vec<u8> {
    stream
        .conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("the server's certificate")
        .to_vec()
}

/// The certificate in a PEM file (DER), to compare with [`peer_certificate`].
pub(crate) fn pem_certificate(path: &Path) -> Vec<u8> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path)
        .unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
        .to_vec()
}

/// [`send`] over TLS: the request is written whole, then the answer is read (no early
/// answers while a body is still being written).
pub(crate) fn send_tls(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> io::Result<Response> {
    let mut stream = tls_connect(addr, config)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let pieces = match body {
        Body::None => Vec::new(),
        Body::Full(bytes) => {
            head.push_str(&format!("Content-Length: {}\r\n", bytes.len()));
            vec![bytes]
        }
        Body::Paced { pieces, .. } | Body::Chunked(pieces) => {
            let total: usize = pieces.iter().map(Vec::len).sum();
            head.push_str(&format!("Content-Length: {total}\r\n"));
            pieces
        }
    };
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    for piece in pieces {
        stream.write_all(&piece)?;
    }
    stream.flush()?;
    read_response_to(&mut stream, method)
}

/// Reads one HTTP/1.1 response: the status line, the headers, and a body framed by
/// `Content-Length`, `Transfer-Encoding: chunked` or the end of the stream.
pub(crate) fn read_response(stream: &mut impl Read) -> io::Result<Response> {
    read_response_to(stream, "GET")
}

/// [`read_response`] for a request of `method`: the answer to a HEAD has no body, whatever its
/// `Content-Length` says.
pub(crate) fn read_response_to(stream: &mut impl Read, method: &str) -> io::Result<Response> {
    let mut reader = BufReader::new(stream);
    let status_line = read_line(&mut reader)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not an HTTP response: {status_line:?}"),
        ));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad status line"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad header line"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        // No body.
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let line = read_line(&mut reader)?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {line:?}"),
                )
            })?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !read_line(&mut reader)?.is_empty() {}
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            reader.read_exact(&mut body[start..])?;
            if !read_line(&mut reader)?.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk not followed by CRLF",
                ));
            }
        }
    } else if let Some(length) = find("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// One CRLF-terminated line without its terminator; EOF before it is an error.
fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut raw = Vec::new();
    reader.read_until(b'\n', &mut raw)?;
    if !raw.ends_with(b"\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed inside the response head",
        ));
    }
    raw.pop();
    if raw.ends_with(b"\r") {
        raw.pop();
    }
    String::from_utf8(raw).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
}

/// The outcome of a one-shot command.
#[derive(Debug)]
pub(crate) struct Output {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Asserts success, with both streams in the message; answers stdout.
    #[track_caller]
    pub(crate) fn success(&self) -> &str {
        assert!(
            self.status.success(),
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }
}

/// Runs the binary with `args` (bounded wait; a command still running after it is killed and
/// the test fails).
pub(crate) fn jobstore<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let mut command = binary();
    command.args(&args);
    let mut child = command
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn jobstore");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + COMMAND_WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`jobstore {args:?}` still ran after {COMMAND_WAIT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// `jobstore token add`: appends a new token to `tokens` and answers the token it printed.
pub(crate) fn add_token(tokens: &Path, name: &str, tenant: &str, scopes: &str) -> String {
    let output = jobstore([
        OsString::from("token"),
        "add".into(),
        "--tokens".into(),
        tokens.into(),
        "--name".into(),
        name.into(),
        "--tenant".into(),
        tenant.into(),
        "--scopes".into(),
        scopes.into(),
    ]);
    let token = output.success().trim().to_owned();
    assert!(
        token.len() >= 32 && !token.contains(char::is_whitespace),
        "token add printed {token:?}"
    );
    token
}

/// Waits (bounded) until `check` holds, polling; panics with `what` when it never does.
#[track_caller]
pub(crate) fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// A job's id from its document.
#[track_caller]
pub(crate) fn id_of(job: &Value) -> i64 {
    job["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no id in {job}"))
}
