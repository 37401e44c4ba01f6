//! A PostgreSQL server for the tests: the one `JOBSTORE_TEST_POSTGRES` names (a URL without a
//! database, e.g. `postgres://postgres@127.0.0.1:5433`), or else a throwaway cluster of this
//! test process's own, made with the PostgreSQL 15 server binaries on a free port on
//! 127.0.0.1 (as the `postgres` user when the tests run as root: initdb refuses root) and
//! stopped and removed by a watcher once the process is gone. Each test gets a database of its
//! own.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use postgres::{Client, NoTls};

/// Where the server binaries are.
const BIN: &str = "/usr/lib/postgresql/15/bin";

struct Server {
    /// `postgres://user@host:port`, without a database.
    base: String,
    /// The cluster's directory, kept until the process ends.
    _dir: Option<tempfile::TempDir>,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| match std::env::var("JOBSTORE_TEST_POSTGRES") {
        Ok(base) if !base.is_empty() => Server {
            base: base.trim_end_matches('/').to_owned(),
            _dir: None,
        },
        _ => start_cluster(),
    })
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A command of the server binaries, as the `postgres` user when we are root.
fn as_owner(root: bool, program: &str) -> Command {
    let path = PathBuf::from(BIN).join(program);
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(path);
        command
    } else {
        Command::new(path)
    }
}

/// A new cluster's directory (owned by `postgres` when we are root), its data directory made
/// by `initdb`, a free port of 127.0.0.1 for it, and whether we are root.
fn init_cluster(prefix: &str) -> (tempfile::TempDir, PathBuf, u16, bool) {
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    if root {
        run(Command::new("chown").arg("postgres").arg(dir.path()));
    }
    let data = dir.path().join("data");
    run(as_owner(root, "initdb")
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .stdout(Stdio::null()));
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    (dir, data, port, root)
}

fn start_cluster() -> Server {
    assert!(
        PathBuf::from(BIN).join("initdb").exists(),
        "the PostgreSQL tests need a server: set JOBSTORE_TEST_POSTGRES, or install the \
         PostgreSQL 15 server packages ({BIN})"
    );
    let (dir, data, port, root) = init_cluster("jobstore-pg-");
    let options = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
        dir.path().display()
    );
    run(as_owner(root, "pg_ctl")
        .arg("-D")
        .arg(&data)
        .args(["-o", &options, "-l"])
        .arg(dir.path().join("pg.log"))
        .args(["-w", "start"])
        .stdout(Stdio::null()));
    // Stops the cluster once this process is gone, however it ends.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {prefix}{BIN}/pg_ctl -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        prefix = if root { "runuser -u postgres -- " } else { "" },
        data = data.display(),
        dir = dir.path().display(),
    );
    // The watcher outlives this process on purpose: it is never waited for.
    #[allow(clippy::zombie_processes)]
    let _watcher = Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the cluster's watcher");
    Server {
        base: format!("postgres://postgres@127.0.0.1:{port}"),
        _dir: Some(dir),
    }
}

/// A URL of a new, empty database of this test's own.
pub(crate) fn fresh_database() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = server();
    let name = format!(
        "jobstore_test_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = Client::connect(&format!("{}/postgres", server.base), NoTls)
        .expect("connect to the test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create the test database");
    format!("{}/{name}", server.base)
}

/// A connection to `url`.
pub(crate) fn connect(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|err| panic!("connect to {url}: {err}"))
}

/// A PostgreSQL cluster of one test's own, which the test may stop and start again (a server
/// restart, an outage) without disturbing the other tests' shared server. Made like the
/// shared one (the server binaries, a free port of 127.0.0.1, as the `postgres` user when
/// root) and stopped and removed when dropped, or by a watcher once the process is gone.
pub(crate) struct PrivateCluster {
    dir: tempfile::TempDir,
    data: PathBuf,
    port: u16,
    root: bool,
    next_database: AtomicU32,
}

impl PrivateCluster {
    /// A new cluster, started.
    pub(crate) fn start() -> PrivateCluster {
        assert!(
            PathBuf::from(BIN).join("initdb").exists(),
            "this test stops and starts a server of its own: install the PostgreSQL 15 server \
             packages ({BIN})"
        );
        let (dir, data, port, root) = init_cluster("jobstore-pg-own-");
        let cluster = PrivateCluster {
            dir,
            data,
            port,
            root,
            next_database: AtomicU32::new(0),
        };
        cluster.start_again();
        // Stops the cluster once this process is gone, however it ends.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {prefix}{BIN}/pg_ctl -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{dir}'",
            pid = std::process::id(),
            prefix = if root { "runuser -u postgres -- " } else { "" },
            data = cluster.data.display(),
            dir = cluster.dir.path().display(),
        );
        // The watcher outlives this process on purpose: it is never waited for.
        #[allow(clippy::zombie_processes)]
        let _watcher = Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the cluster's watcher");
        cluster
    }

    /// `postgres://postgres@127.0.0.1:PORT`, without a database.
    pub(crate) fn base(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// A URL of a new, empty database of the cluster.
    pub(crate) fn fresh_database(&self) -> String {
        let name = format!(
            "jobstore_own_{}",
            self.next_database.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = connect(&format!("{}/postgres", self.base()));
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create the test database");
        format!("{}/{name}", self.base())
    }

    /// Stops the server as an operator's restart does (`pg_ctl stop -m fast`: every session
    /// is ended, open transactions roll back, a checkpoint is written), waiting until it is
    /// down.
    pub(crate) fn stop(&self) {
        run(as_owner(self.root, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null()));
    }

    /// Starts the server (again) on the same port and data, waiting until it takes
    /// connections.
    pub(crate) fn start_again(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        run(as_owner(self.root, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("pg.log"))
            .args(["-w", "start"])
            .stdout(Stdio::null()));
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = as_owner(self.root, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
