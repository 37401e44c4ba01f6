//! `jobstore worker` end to end: the real daemon and the real worker binary, every job's command
//! a small shell script in the test's temporary directory (the daemon's, which is also the
//! worker's working directory). Success with result, progress and logs; failure and retry;
//! fatal; timeout; cancel (no orphans); a worker killed mid-job; a chatty command; uploaded data
//! on stdin; SIGTERM to the worker; a daemon restart under a running job; a kind without a
//! command; a daemon that serves HTTPS with a self-signed certificate.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    Client, Daemon, Options, Process, add_token, binary, id_of, jobstore, temp_dir,
};

/// How long a job may take to reach the state a test waits for (a hung worker fails the test).
const JOB_WAIT: Duration = Duration::from_secs(30);

/// How long a process may take to go away after it was stopped.
const PROCESS_WAIT: Duration = Duration::from_secs(10);

/// The real `jobstore worker`, its stderr kept for failure messages. Dropped while it runs:
/// SIGTERM (so it stops its commands), then SIGKILL if it is still there after a while.
struct Worker {
    process: Process,
}

impl Worker {
    /// `jobstore worker` running `command` from queue `q` as `w1` with a 1200 ms lease and a
    /// 300 ms grace; each `(flag, value)` of `settings` replaces that default or adds a flag.
    fn exec(addr: SocketAddr, dir: &Path, command: &str, settings: &[(&str, &str)]) -> Worker {
        Worker::exec_with_env(addr, dir, command, settings, &[])
    }

    /// As [`Worker::exec`], with these environment variables set for the worker.
    fn exec_with_env(
        addr: SocketAddr,
        dir: &Path,
        command: &str,
        settings: &[(&str, &str)],
        env: &[(&str, &str)],
    ) -> Worker {
        let mut flags = vec![
            ("--queue", "q"),
            ("--name", "w1"),
            ("--lease-ms", "1200"),
            ("--grace-ms", "300"),
        ];
        for &(flag, value) in settings {
            match flags.iter_mut().find(|(known, _)| *known == flag) {
                Some(known) => known.1 = value,
                None => flags.push((flag, value)),
            }
        }
        let mut args: Vec<&str> = flags
            .iter()
            .flat_map(|&(flag, value)| [flag, value])
            .collect();
        args.extend(["--exec", command]);
        Worker::start_with_env(addr, dir, &args, env)
    }

    /// `jobstore worker --url http://ADDR ARGS...`, run in `dir`.
    fn start(addr: SocketAddr, dir: &Path, args: &[&str]) -> Worker {
        Worker::start_with_env(addr, dir, args, &[])
    }

    /// As [`Worker::start`], with these environment variables set for the worker.
    fn start_with_env(addr: SocketAddr, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Worker {
        Worker::start_at(&format!("http://{addr}"), dir, args, env)
    }

    /// `jobstore worker --url URL ARGS...` with these environment variables, run in `dir`.
    fn start_at(url: &str, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Worker {
        let mut command = binary();
        command
            .arg("worker")
            .arg("--url")
            .arg(url)
            .args(args)
            .envs(env.iter().copied());
        Worker {
            process: Process::spawn(command, dir, "the worker", None),
        }
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Everything the worker wrote to stderr so far.
    fn stderr(&self) -> String {
        self.process.stderr()
    }

    /// Sends a signal by name (`TERM`, `KILL`) to the worker (not to its commands).
    fn signal(&self, name: &str) {
        self.process.signal(name);
    }

    /// Whether the worker still runs.
    fn running(&mut self) -> bool {
        self.process.running()
    }

    /// Waits (bounded) for the worker to exit; one still running then is killed and the test
    /// fails.
    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        self.process.wait_exit(timeout)
    }

    /// The worker's peak resident memory in bytes (`VmHWM`), while it runs.
    fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status of the worker");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .unwrap_or_else(|| panic!("no VmHWM in {status}"));
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unparsable {line:?}"));
        kib * 1024
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // SIGTERM first, so that it stops its commands; the process is killed after a while
        // (and on its own drop) if it is still there.
        if self.running()
            && Command::new("kill")
                .args(["-TERM".to_owned(), self.pid().to_string()])
                .status()
                .is_ok()
        {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.running() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Kills the process groups of the commands a test started, when the test ends however it
/// ends, so that a failed test leaves no `sleep 300` behind. The groups are the commands'
/// own (the worker starts each command as a process group leader).
#[derive(Default)]
struct Leftovers(Mutex<Vec<u32>>);

impl Leftovers {
    fn group(&self, leader: u32) {
        self.0.lock().expect("leftovers lock").push(leader);
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for leader in self.0.lock().expect("leftovers lock").iter() {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{leader}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Writes a shell script into `dir` and answers the command that runs it (`sh /abs/path`).
fn script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    format!("sh {}", path.display())
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The job as the daemon has it now.
#[track_caller]
fn job(api: &Client, id: i64) -> Value {
    api.get(&format!("/v1/jobs/{id}")).expect_json(200)
}

/// Waits (bounded) until the job is in `state`; a job that ends in another final state, or
/// never gets there, fails the test with the job and the worker's stderr.
#[track_caller]
fn wait_state(api: &Client, id: i64, state: &str, worker: &Worker) -> Value {
    let deadline = Instant::now() + JOB_WAIT;
    loop {
        let now = job(api, id);
        if now["state"] == state {
            return now;
        }
        let terminal = ["succeeded", "failed", "cancelled"]
            .iter()
            .any(|s| now["state"] == *s);
        assert!(
            !terminal && Instant::now() < deadline,
            "job {id} is not {state} (within {JOB_WAIT:?}): {now}\nworker stderr:\n{}",
            worker.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until `check` holds for the job.
#[track_caller]
fn wait_job(
    api: &Client,
    id: i64,
    what: &str,
    worker: &Worker,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + JOB_WAIT;
    loop {
        let now = job(api, id);
        if check(&now) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "job {id}: {what}: not within {JOB_WAIT:?}: {now}\nworker stderr:\n{}",
            worker.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits (bounded) until a command wrote a whole line to `path`; answers the contents.
#[track_caller]
fn wait_file(path: &Path, worker: &Worker) -> String {
    let deadline = Instant::now() + JOB_WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} was not written within {JOB_WAIT:?}; worker stderr:\n{}",
            path.display(),
            worker.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The PID a command wrote to `path` (waiting for it).
#[track_caller]
fn pid_in(path: &Path, worker: &Worker) -> u32 {
    let text = wait_file(path, worker);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("{} holds {text:?}, not a PID", path.display()))
}

/// Whether the process is gone. A zombie counts as gone: it runs nothing, and reaping an
/// orphan is its new parent's business (init, or whatever reaps orphans in this container).
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.split_whitespace().next() == Some("Z")),
    }
}

/// Waits (bounded) until the process is gone.
#[track_caller]
fn wait_gone(pid: u32, what: &str, worker: &Worker) {
    let deadline = Instant::now() + PROCESS_WAIT;
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still runs after {PROCESS_WAIT:?}; worker stderr:\n{}",
            worker.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The job's history.
#[track_caller]
fn events(api: &Client, id: i64) -> Vec<Value> {
    api.get(&format!("/v1/jobs/{id}/events")).expect_json(200)["events"]
        .as_array()
        .expect("events array")
        .clone()
}

/// The actors of the job's events of this name, in order.
fn actors(events: &[Value], name: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["event"] == name)
        .map(|e| e["actor"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The job's log as (level, message) pairs; each line is `TIME LEVEL MESSAGE` with the level
/// padded to five characters.
#[track_caller]
fn log_lines(api: &Client, id: i64) -> Vec<(String, String)> {
    let log = api.get(&format!("/v1/jobs/{id}/logs"));
    log.expect(200);
    log.text()
        .lines()
        .map(|line| {
            let (_time, rest) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("log line without a time: {line:?}"));
            let level = rest.get(..5).unwrap_or(rest).trim().to_owned();
            let message = rest.get(6..).unwrap_or_default().to_owned();
            (level, message)
        })
        .collect()
}

/// The messages of one level, in order.
fn messages(lines: &[(String, String)], level: &str) -> Vec<String> {
    lines
        .iter()
        .filter(|(l, _)| l == level)
        .map(|(_, m)| m.clone())
        .collect()
}

#[test]
fn a_command_reports_result_progress_phase_and_logs() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let command = script(
        &dir,
        "report.sh",
        r###"cat > payload.json
printf '%s\n' "$JOBSTORE_JOB_ID" "$JOBSTORE_JOB_KIND" "$JOBSTORE_ATTEMPT" "$JOBSTORE_URL" > env.txt
echo "out 1"
echo "err 1" >&2
echo '##jobstore progress {"rows": 1, "errors": 0}'
echo '##jobstore phase extract'
echo "out 2"
echo '##jobstore explode now'
while [ ! -e release ]; do sleep 0.05; done
echo "err 2" >&2
echo '##jobstore progress {"rows": 3}'
echo '##jobstore phase load'
echo "out 3"
echo '##jobstore result {"rows": 3, "file": "out.csv"}'
"###,
    );
    let worker = Worker::exec(daemon.addr(), &dir, &command, &[]);
    let payload = json!({"month": "2024-05", "tables": ["a", "b"], "note": "ünïcode"});
    let id = id_of(&api.create(&json!({"kind": "export", "queue": "q", "payload": payload})));

    // Progress and phase travel with the heartbeats while the command runs.
    let running = wait_job(&api, id, "progress while running", &worker, |job| {
        job["progress"] == json!({"rows": 1, "errors": 0}) && job["phase"] == "extract"
    });
    assert_eq!(running["state"], "running", "{running}");
    assert_eq!(running["lease_owner"], "w1", "{running}");
    std::fs::write(dir.join("release"), "").unwrap();

    let done = wait_state(&api, id, "succeeded", &worker);
    assert_eq!(
        done["result"],
        json!({"rows": 3, "file": "out.csv"}),
        "{done}"
    );
    assert_eq!(done["progress"], json!({"rows": 3, "errors": 0}), "{done}");
    assert_eq!(done["phase"], "load", "{done}");
    assert_eq!(done["attempt"], 1, "{done}");

    // What the command got: the payload on stdin, the job in its environment.
    let got: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("payload.json")).unwrap())
            .expect("the payload on stdin is JSON");
    assert_eq!(got, payload);
    let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
    let env: Vec<&str> = env.lines().collect();
    let url = format!("http://{}", daemon.addr());
    assert_eq!(env, [id.to_string().as_str(), "export", "1", url.as_str()]);

    // The log: stdout at info, stderr at error, each stream in order; reports are not logged,
    // a malformed one is, with a warning.
    let lines = log_lines(&api, id);
    assert_eq!(
        messages(&lines, "INFO"),
        ["out 1", "out 2", "out 3"],
        "{lines:?}"
    );
    assert_eq!(messages(&lines, "ERROR"), ["err 1", "err 2"], "{lines:?}");
    let warnings = messages(&lines, "WARN");
    assert_eq!(warnings.len(), 1, "{lines:?}");
    assert!(
        warnings[0].contains("##jobstore explode now") && warnings[0].contains("ignored report"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 6, "{lines:?}");
}

#[test]
fn a_failed_attempt_is_retried_and_then_succeeds() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let command = script(
        &dir,
        "flaky.sh",
        r###"if [ "$JOBSTORE_ATTEMPT" = 1 ]; then
    echo "connecting"
    echo "the upstream said 503" >&2
    exit 3
fi
echo "##jobstore result {\"attempt\": $JOBSTORE_ATTEMPT}"
"###,
    );
    let worker = Worker::exec(daemon.addr(), &dir, &command, &[]);
    let id = id_of(&api.create(&json!({"kind": "sync", "queue": "q", "max_attempts": 3})));

    // The daemon's retry backoff (about a second) passes; the worker's long poll picks it up.
    let done = wait_state(&api, id, "succeeded", &worker);
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(done["result"], json!({"attempt": 2}), "{done}");

    let history = events(&api, id);
    let fails: Vec<&Value> = history.iter().filter(|e| e["event"] == "fail").collect();
    assert_eq!(fails.len(), 1, "{history:?}");
    assert_eq!(
        fails[0]["detail"], "the upstream said 503",
        "the error is the last stderr line, nothing added: {history:?}"
    );
    let lines = log_lines(&api, id);
    assert_eq!(
        messages(&lines, "WARN"),
        ["the command exited with status 3"],
        "the exit status is in the log: {lines:?}"
    );
    assert_eq!(actors(&history, "claim"), ["w1", "w1"]);
    assert_eq!(actors(&history, "complete"), ["w1"]);
}

#[test]
fn a_fatal_report_fails_the_job_without_retry() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let command = script(
        &dir,
        "fatal.sh",
        r###"echo "reading input"
if [ "$JOBSTORE_JOB_KIND" = silent ]; then
    echo '##jobstore fatal'
    exit 5
fi
echo '##jobstore fatal the input file is corrupt'
echo "some noise" >&2
exit 1
"###,
    );
    let worker = Worker::exec(daemon.addr(), &dir, &command, &[]);
    let id = id_of(&api.create(&json!({"kind": "import", "queue": "q", "max_attempts": 3})));
    let failed = wait_state(&api, id, "failed", &worker);
    assert_eq!(failed["attempt"], 1, "{failed}");
    assert_eq!(failed["max_attempts"], 3, "{failed}");
    assert_eq!(failed["error"], "the input file is corrupt", "{failed}");
    assert_eq!(actors(&events(&api, id), "claim"), ["w1"]);
    let lines = log_lines(&api, id);
    assert_eq!(
        messages(&lines, "WARN"),
        ["the command exited with status 1"],
        "{lines:?}"
    );

    // Without a message of its own, the error says how the command ended.
    let id = id_of(&api.create(&json!({"kind": "silent", "queue": "q", "max_attempts": 3})));
    let failed = wait_state(&api, id, "failed", &worker);
    assert_eq!(failed["attempt"], 1, "{failed}");
    assert_eq!(
        failed["error"], "the command exited with status 5",
        "{failed}"
    );
}

#[test]
fn a_kind_timeout_kills_the_command_and_fails_the_attempt() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let leftovers = Leftovers::default();
    let command = script(
        &dir,
        "slow.sh",
        r###"echo $$ > slow.pid
sleep 300 &
echo $! > sleep.pid
wait
echo "##jobstore result {}"
"###,
    );
    let config = dir.join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "queues = [\"q\"]\nname = \"w1\"\nlease_ms = 1200\ngrace_ms = 300\n\n\
             [kinds.slow]\ncommand = {}\ntimeout_ms = 500\n",
            toml_string(&command)
        ),
    )
    .unwrap();
    let worker = Worker::start(daemon.addr(), &dir, &["--config", config.to_str().unwrap()]);
    let id = id_of(&api.create(&json!({"kind": "slow", "queue": "q", "max_attempts": 1})));
    let child = pid_in(&dir.join("slow.pid"), &worker);
    leftovers.group(child);
    let grandchild = pid_in(&dir.join("sleep.pid"), &worker);

    let failed = wait_state(&api, id, "failed", &worker);
    assert_eq!(failed["attempt"], 1, "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("timed out"), "{failed}");
    assert_eq!(failed["result"], Value::Null, "{failed}");
    wait_gone(child, "the timed-out command", &worker);
    wait_gone(grandchild, "the timed-out command's child", &worker);
}

#[test]
fn cancel_stops_the_command_and_everything_it_started() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let leftovers = Leftovers::default();
    let command = script(
        &dir,
        "long.sh",
        r###"echo $$ > child.pid
sleep 300 &
echo $! > grandchild.pid
echo "working"
sleep 300
"###,
    );
    let worker = Worker::exec(daemon.addr(), &dir, &command, &[]);
    let id = id_of(&api.create(&json!({"kind": "export", "queue": "q", "max_attempts": 3})));
    let child = pid_in(&dir.join("child.pid"), &worker);
    leftovers.group(child);
    let grandchild = pid_in(&dir.join("grandchild.pid"), &worker);
    assert!(!gone(child) && !gone(grandchild));

    let asked = api
        .post(&format!("/v1/jobs/{id}/cancel"), &json!({}))
        .expect_json(200);
    assert_eq!(asked["state"], "running", "{asked}");
    let cancelled = wait_state(&api, id, "cancelled", &worker);
    assert_eq!(cancelled["attempt"], 1, "{cancelled}");
    wait_gone(child, "the cancelled command", &worker);
    wait_gone(
        grandchild,
        "the cancelled command's background child",
        &worker,
    );

    // The worker goes on: the next job runs.
    std::fs::remove_file(dir.join("child.pid")).unwrap();
    let next = id_of(&api.create(&json!({"kind": "export", "queue": "q"})));
    let child = pid_in(&dir.join("child.pid"), &worker);
    leftovers.group(child);
    api.post(&format!("/v1/jobs/{next}/cancel"), &json!({}))
        .expect(200);
    wait_state(&api, next, "cancelled", &worker);
}

#[test]
fn a_killed_workers_job_is_rescued_and_run_by_another_worker() {
    let daemon = Daemon::with_config("[maintenance]\nrescue_interval_ms = 200\n");
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let leftovers = Leftovers::default();
    let blocked = script(
        &dir,
        "blocked.sh",
        r###"echo $$ > a.pid
while [ ! -e release ]; do sleep 0.1; done
echo '##jobstore result {"by": "A"}'
"###,
    );
    let finishes = script(
        &dir,
        "finishes.sh",
        "echo '##jobstore result {\"by\": \"B\"}'\n",
    );
    let mut a = Worker::exec(
        daemon.addr(),
        &dir,
        &blocked,
        &[("--name", "A"), ("--lease-ms", "1000")],
    );
    let id = id_of(&api.create(&json!({"kind": "export", "queue": "q", "max_attempts": 3})));
    let a_child = pid_in(&dir.join("a.pid"), &a);
    leftovers.group(a_child);
    let running = job(&api, id);
    assert_eq!(running["state"], "running", "{running}");
    assert_eq!(running["lease_owner"], "A", "{running}");

    a.signal("KILL");
    a.wait_exit(PROCESS_WAIT);
    // A SIGKILLed worker cannot stop its command: the orphan would go on (the worker does
    // not promise otherwise). Stop it here, the way systemd stops a unit's whole cgroup.
    drop(leftovers);

    let b = Worker::exec(
        daemon.addr(),
        &dir,
        &finishes,
        &[("--name", "B"), ("--lease-ms", "1000")],
    );
    let done = wait_state(&api, id, "succeeded", &b);
    assert_eq!(done["attempt"], 2, "{done}");
    assert_eq!(done["result"], json!({"by": "B"}), "{done}");
    let history = events(&api, id);
    assert!(
        history.iter().any(|e| e["event"] == "lease_expired"),
        "{history:?}"
    );
    assert_eq!(actors(&history, "claim"), ["A", "B"], "{history:?}");
    assert_eq!(actors(&history, "complete"), ["B"], "{history:?}");
}

#[test]
fn a_chatty_command_is_logged_completely_in_bounded_memory() {
    const LINES: usize = 200_000;
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let command = format!("seq 1 {LINES}");
    // What is tested is the log, not the lease: a lease long enough that a machine busy with
    // other builds never expires it while 200,000 lines are shipped through the one writer
    // (the other tests keep the short one). A second attempt would log every line twice.
    let worker = Worker::exec(
        daemon.addr(),
        &dir,
        &command,
        &[("--stdin", "none"), ("--lease-ms", "120000")],
    );
    let id = id_of(&api.create(&json!({"kind": "chatty", "queue": "q"})));
    let done = wait_state(&api, id, "succeeded", &worker);
    assert_eq!(done["attempt"], 1, "the lease expired under load: {done}");
    let peak = worker.peak_memory();

    // Bounded memory whatever happens to the lines (checked first).
    assert!(
        peak < 100 * 1024 * 1024,
        "the worker's peak memory is {} MiB",
        peak / 1024 / 1024
    );

    let lines = log_lines(&api, id);
    let info = messages(&lines, "INFO");
    let others: Vec<&(String, String)> = lines.iter().filter(|(l, _)| l != "INFO").collect();
    assert!(
        others.is_empty(),
        "lines besides the command's: {:?}",
        &others[..others.len().min(5)]
    );
    assert_eq!(info.len(), LINES, "every line is logged");
    assert_eq!(info.first().map(String::as_str), Some("1"));
    assert_eq!(
        info.last().map(String::as_str),
        Some(LINES.to_string().as_str())
    );
    let in_order = info
        .iter()
        .enumerate()
        .all(|(i, line)| *line == (i + 1).to_string());
    assert!(in_order, "the lines are logged in order");
}

/// Runs a worker on `queue` whose command copies its stdin (the job's data) to a file, waits
/// for job `id` to succeed, and checks the file holds the batches byte for byte.
fn run_cat_and_expect_the_batches(
    daemon: &Daemon,
    api: &Client,
    queue: &str,
    id: i64,
    batches: &[Vec<u8>],
) {
    let dir = daemon.dir().to_path_buf();
    let worker = Worker::exec(
        daemon.addr(),
        &dir,
        "sh -c 'cat > out.csv'",
        &[("--queue", queue), ("--stdin", "data")],
    );
    wait_state(api, id, "succeeded", &worker);
    let got = std::fs::read(dir.join("out.csv")).unwrap();
    let expected = batches.concat();
    assert_eq!(got.len(), expected.len(), "bytes on stdin");
    assert!(
        got == expected,
        "the command's stdin differs from the batches"
    );
}

#[test]
fn uploaded_data_reaches_the_command_on_stdin_byte_for_byte() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "ingest", "queue": "q", "upload": true})));
    let mut large = String::new();
    let mut n = 0;
    while large.len() <= 300 * 1024 {
        n += 1;
        large.push_str(&format!("{n},customer-{n},{}.{:02}\n", n * 7, n % 100));
    }
    let batches: Vec<Vec<u8>> = vec![
        b"id,name,amount\n".to_vec(),
        large.into_bytes(),
        "0,\"Zoë, \"\"quoted\"\"\",1.00\r\n".as_bytes().to_vec(),
        b"-1,last line without newline,0.00".to_vec(),
    ];
    for (i, batch) in batches.iter().enumerate() {
        let stored = api
            .request(
                "PUT",
                &format!("/v1/jobs/{id}/data"),
                &[("Content-Type", "text/csv")],
                batch.clone(),
            )
            .expect_json(201);
        assert_eq!(stored["batch"], i + 1);
    }
    api.post(&format!("/v1/jobs/{id}/close"), &json!({}))
        .expect(200);

    run_cat_and_expect_the_batches(&daemon, &api, "q", id, &batches);
}

#[test]
fn a_data_cloud_ingest_jobs_csv_reaches_the_command_byte_for_byte() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let created = api
        .post(
            "/api/v1/ingest/jobs",
            &json!({"object": "Contact", "sourceName": "crm", "operation": "upsert"}),
        )
        .expect_json(201);
    let id: i64 = created["id"].as_str().unwrap().parse().unwrap();
    // Each upsert batch is a CSV file of its own, with its header row.
    let mut large = String::from("Id,Name,Amount\r\n");
    let mut n = 0;
    while large.len() <= 400 * 1024 {
        n += 1;
        large.push_str(&format!(
            "{n},\"Contact, {n}\",{}.{:02}\r\n",
            n * 3,
            n % 100
        ));
    }
    let batches: Vec<Vec<u8>> = vec![
        "Id,Name,Amount\n1,Zoë,1.00\n".as_bytes().to_vec(),
        large.into_bytes(),
        b"Id,Name,Amount\n2,\"He said \"\"hi\"\"\",2.50".to_vec(),
    ];
    for batch in &batches {
        api.request(
            "PUT",
            &format!("/api/v1/ingest/jobs/{id}/batches"),
            &[("Content-Type", "text/csv")],
            batch.clone(),
        )
        .expect(202);
    }
    let closed = api
        .request(
            "PATCH",
            &format!("/api/v1/ingest/jobs/{id}"),
            &[("Content-Type", "application/json")],
            br#"{"state": "UploadComplete"}"#.to_vec(),
        )
        .expect_json(200);
    assert_eq!(closed["state"], "UploadComplete");

    run_cat_and_expect_the_batches(&daemon, &api, "datacloud", id, &batches);
    let job = api
        .get(&format!("/api/v1/ingest/jobs/{id}"))
        .expect_json(200);
    assert_eq!(job["state"], "JobComplete");
}

#[test]
fn a_broken_data_stream_is_not_taken_for_the_end_of_the_data() {
    a_broken_data_stream_fails_the_attempt(&[]);
}

#[test]
fn a_broken_data_stream_fails_the_attempt_even_when_the_commands_exit_is_heard_first() {
    // The worker's test hook (debug builds): the job hears how feeding stdin ended only after
    // the command exited, the order a busy machine may pick, where a command that read to
    // the end of its stdin and exited 0 was once taken for a success on half of its data.
    a_broken_data_stream_fails_the_attempt(&[("JOBSTORE_WORKER_TEST_LATE_FEEDER", "1")]);
}

/// A command that reads its stdin to the end and exits 0; the daemon dies (SIGKILL) in the
/// middle of the download of attempt 1, so that command sees the end of its stdin early and
/// exits 0. That attempt fails as retryable, naming the broken input; attempt 2 gets all of
/// the data from the restarted daemon and succeeds.
fn a_broken_data_stream_fails_the_attempt(env: &[(&str, &str)]) {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let id = id_of(
        &api.create(&json!({"kind": "ingest", "queue": "q", "upload": true, "max_attempts": 3})),
    );
    // More than the pipe and the sockets hold, so the stream is still going when the daemon
    // dies.
    let mut data = Vec::with_capacity(20 * 1024 * 1024);
    let mut n: u64 = 0;
    while data.len() < 20 * 1024 * 1024 {
        n += 1;
        data.extend_from_slice(format!("{n},row-{n}\n").as_bytes());
    }
    api.request("PUT", &format!("/v1/jobs/{id}/data"), &[], data.clone())
        .expect(201);
    api.post(&format!("/v1/jobs/{id}/close"), &json!({}))
        .expect(200);
    // The command takes one byte (so the download is under way), says so, and reads nothing
    // more until `go` exists, so the download stalls; then it copies the rest to the end of
    // its stdin and exits 0.
    let command = script(
        &dir,
        "ingest.sh",
        r###"out="out-$JOBSTORE_ATTEMPT.bin"
dd bs=1 count=1 of="$out" 2>/dev/null
echo $$ > "reading-$JOBSTORE_ATTEMPT"
while [ ! -e go ]; do sleep 0.05; done
cat >> "$out"
"###,
    );
    let worker = Worker::exec_with_env(
        daemon.addr(),
        &dir,
        &command,
        // A lease that outlasts a slow daemon restart.
        &[("--lease-ms", "10000"), ("--stdin", "data")],
        env,
    );
    wait_file(&dir.join("reading-1"), &worker);
    // SIGKILL: the download breaks in the middle.
    let daemon = daemon.restart_on_same_address(Options::default());
    let api = daemon.client();
    std::fs::write(dir.join("go"), "").unwrap();

    let done = wait_state(&api, id, "succeeded", &worker);
    let first = std::fs::read(dir.join("out-1.bin")).unwrap();
    assert!(
        done["attempt"] == 2 && first.len() < data.len(),
        "the job succeeded (attempt {}) with {} of {} bytes on stdin in attempt 1\nworker stderr:\n{}",
        done["attempt"],
        first.len(),
        data.len(),
        worker.stderr()
    );
    let history = events(&api, id);
    let fails: Vec<&Value> = history.iter().filter(|e| e["event"] == "fail").collect();
    assert_eq!(fails.len(), 1, "{history:?}");
    let detail = fails[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("reading the job's data failed"),
        "the error names the broken input: {detail:?}"
    );
    let second = std::fs::read(dir.join("out-2.bin")).unwrap();
    assert!(
        second == data,
        "attempt 2 had {} of {} bytes on stdin",
        second.len(),
        data.len()
    );
}

#[test]
fn sigterm_lets_a_running_command_finish_within_the_grace() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let command = script(
        &dir,
        "short.sh",
        r###"echo started > started
sleep 1
echo '##jobstore result {"finished": true}'
"###,
    );
    let mut worker = Worker::exec(daemon.addr(), &dir, &command, &[("--grace-ms", "10000")]);
    let id = id_of(&api.create(&json!({"kind": "export", "queue": "q"})));
    wait_file(&dir.join("started"), &worker);
    // Waits behind the running one (concurrency 1), and is never claimed: a stopping worker
    // claims nothing more.
    let waiting = id_of(&api.create(&json!({"kind": "export", "queue": "q"})));
    worker.signal("TERM");

    let status = worker.wait_exit(JOB_WAIT);
    assert!(
        status.success(),
        "the worker exited with {status}; stderr:\n{}",
        worker.stderr()
    );
    let done = job(&api, id);
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["result"], json!({"finished": true}), "{done}");
    let left = job(&api, waiting);
    assert_eq!(left["state"], "queued", "{left}");
    assert_eq!(left["attempt"], 0, "{left}");
}

#[test]
fn sigterm_stops_a_command_that_outlasts_the_grace_and_fails_it_retryable() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let leftovers = Leftovers::default();
    let command = script(
        &dir,
        "endless.sh",
        r###"echo $$ > child.pid
echo "working"
sleep 300
"###,
    );
    let mut worker = Worker::exec(daemon.addr(), &dir, &command, &[]);
    let id = id_of(&api.create(&json!({"kind": "export", "queue": "q", "max_attempts": 3})));
    let child = pid_in(&dir.join("child.pid"), &worker);
    leftovers.group(child);
    worker.signal("TERM");

    let status = worker.wait_exit(JOB_WAIT);
    assert!(
        status.success(),
        "the worker exited with {status}; stderr:\n{}",
        worker.stderr()
    );
    wait_gone(child, "the stopped command", &worker);
    let requeued = job(&api, id);
    assert_eq!(requeued["state"], "queued", "{requeued}");
    assert_eq!(requeued["attempt"], 1, "{requeued}");
    let error = requeued["error"].as_str().unwrap_or_default();
    assert!(error.contains("worker stopped"), "{requeued}");
}

#[test]
fn the_worker_rides_out_a_daemon_restart() {
    let mut daemon = Daemon::start();
    let dir = daemon.dir().to_path_buf();
    let command = script(
        &dir,
        "two-seconds.sh",
        r###"echo "$JOBSTORE_JOB_ID" > "started-$JOBSTORE_JOB_ID"
sleep 2
echo "##jobstore result {\"job\": $JOBSTORE_JOB_ID}"
"###,
    );
    // A lease longer than the daemon's downtime: the restarted daemon rescues expired leases
    // at once, and this test is about the worker reconnecting, not about a rescue.
    let mut worker = Worker::exec(daemon.addr(), &dir, &command, &[("--lease-ms", "5000")]);
    let id = id_of(
        &daemon
            .client()
            .create(&json!({"kind": "export", "queue": "q"})),
    );
    wait_file(&dir.join(format!("started-{id}")), &worker);

    daemon.stop();
    let daemon = daemon.restart_on_same_address(Options::default());
    let api = daemon.client();

    let done = wait_state(&api, id, "succeeded", &worker);
    assert_eq!(done["attempt"], 1, "the same attempt finished: {done}");
    assert_eq!(done["result"], json!({"job": id}), "{done}");
    assert_eq!(actors(&events(&api, id), "claim"), ["w1"]);

    // The worker claims again from the restarted daemon.
    let next = id_of(&api.create(&json!({"kind": "export", "queue": "q"})));
    let done = wait_state(&api, next, "succeeded", &worker);
    assert_eq!(done["result"], json!({"job": next}), "{done}");
    assert!(worker.running(), "stderr:\n{}", worker.stderr());
}

#[test]
fn a_kind_without_a_command_fails_fatally() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let known = script(&dir, "known.sh", "echo '##jobstore result \"known\"'\n");
    let config = dir.join("worker.toml");
    std::fs::write(
        &config,
        format!("[kinds.known]\ncommand = {}\n", toml_string(&known)),
    )
    .unwrap();
    let worker = Worker::start(
        daemon.addr(),
        &dir,
        &[
            "--config",
            config.to_str().unwrap(),
            "--queue",
            "q",
            "--name",
            "w1",
            "--lease-ms",
            "1200",
            "--grace-ms",
            "300",
        ],
    );
    let mystery = id_of(&api.create(&json!({"kind": "mystery", "queue": "q", "max_attempts": 3})));
    let failed = wait_state(&api, mystery, "failed", &worker);
    assert_eq!(failed["attempt"], 1, "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("mystery"), "{failed}");

    let id = id_of(&api.create(&json!({"kind": "known", "queue": "q"})));
    let done = wait_state(&api, id, "succeeded", &worker);
    assert_eq!(done["result"], "known", "{done}");
}

#[test]
fn a_worker_runs_jobs_over_https_trusting_the_daemons_self_signed_certificate() {
    let dir = temp_dir();
    let tls = dir.path().join("tls");
    jobstore([
        std::ffi::OsString::from("tls"),
        "self-signed".into(),
        "--out".into(),
        tls.clone().into(),
    ])
    .success();
    let cert = tls.join("cert.pem");
    let tokens = dir.path().join("tokens");
    let token = add_token(&tokens, "ci", "acme", "read,write,work");
    let token_file = dir.path().join("worker.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let daemon = Daemon::start_with(
        dir,
        Options {
            tokens: Some(tokens),
            args: vec![
                "--tls-cert".into(),
                cert.clone().into(),
                "--tls-key".into(),
                tls.join("key.pem").into(),
            ],
            trust: vec![cert.clone()],
            ..Options::default()
        },
    );
    let api = daemon.client_with(&token);
    let work = daemon.dir().to_path_buf();
    let url = format!("https://localhost:{}", daemon.addr().port());
    let command = script(
        &work,
        "by-input.sh",
        r###"input=$(cat)
printf '%s\n' "$JOBSTORE_URL" "$JOBSTORE_CA_FILE" > "env-$JOBSTORE_JOB_ID.txt"
case "$input" in
    *'"fail"'*) echo "the input asked to fail" >&2; exit 4 ;;
esac
echo '##jobstore result {"over": "https"}'
"###,
    );
    let token_arg = token_file.to_str().unwrap();
    let cert_arg = cert.to_str().unwrap();
    let flags = [
        "--token-file",
        token_arg,
        "--queue",
        "q",
        "--name",
        "w1",
        "--lease-ms",
        "1200",
        "--exec",
        command.as_str(),
    ];

    // Without the certificate the daemon cannot be trusted: nothing is claimed, the worker
    // retries and says why.
    let ok = id_of(&api.create(&json!({"kind": "k", "queue": "q", "payload": {"outcome": "ok"}})));
    let mut untrusting = Worker::start_at(&url, &work, &flags, &[]);
    eventually_stderr(&untrusting, "a certificate error", |stderr| {
        stderr.contains("claim failed") && stderr.contains("certificate")
    });
    assert_eq!(job(&api, ok)["state"], "queued");
    untrusting.signal("TERM");
    assert!(
        untrusting.wait_exit(PROCESS_WAIT).success(),
        "{}",
        untrusting.stderr()
    );

    // --ca-file: one job to success, one to failure, each command told the URL and the CA file.
    let mut args = flags.to_vec();
    args.extend(["--ca-file", cert_arg]);
    let worker = Worker::start_at(&url, &work, &args, &[]);
    let done = wait_state(&api, ok, "succeeded", &worker);
    assert_eq!(done["result"], json!({"over": "https"}), "{done}");
    let env = std::fs::read_to_string(work.join(format!("env-{ok}.txt"))).unwrap();
    assert_eq!(env, format!("{url}\n{cert_arg}\n"));
    let fail = id_of(&api.create(
        &json!({"kind": "k", "queue": "q", "max_attempts": 1, "payload": {"outcome": "fail"}}),
    ));
    let failed = wait_state(&api, fail, "failed", &worker);
    assert_eq!(failed["error"], "the input asked to fail", "{failed}");
    drop(worker);

    // JOBSTORE_CA_FILE does the same as the flag.
    let worker = Worker::start_at(&url, &work, &flags, &[("JOBSTORE_CA_FILE", cert_arg)]);
    let again = id_of(&api.create(&json!({"kind": "k", "queue": "q", "payload": {}})));
    let done = wait_state(&api, again, "succeeded", &worker);
    assert_eq!(done["result"], json!({"over": "https"}), "{done}");
    assert!(
        worker.stderr().contains(&format!("on {url}")),
        "{}",
        worker.stderr()
    );
}

/// Waits (bounded) until the worker's stderr satisfies `check`.
#[track_caller]
fn eventually_stderr(worker: &Worker, what: &str, check: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + JOB_WAIT;
    loop {
        let stderr = worker.stderr();
        if check(&stderr) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the worker's stderr shows no {what} within {JOB_WAIT:?}:\n{stderr}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn files_the_command_writes_to_its_output_directory_become_the_jobs_outputs() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let command = script(
        &dir,
        "outputs.sh",
        r###"echo "$JOBSTORE_OUTPUT_DIR" > "outdir-$JOBSTORE_ATTEMPT"
mkdir -p "$JOBSTORE_OUTPUT_DIR/results" "$JOBSTORE_OUTPUT_DIR/query"
echo "attempt $JOBSTORE_ATTEMPT" > "$JOBSTORE_OUTPUT_DIR/query/results"
if [ "$JOBSTORE_ATTEMPT" = 1 ]; then
    echo "a first try that fails" >&2
    exit 3
fi
printf 'sf__Id,sf__Created,Name\n001,true,Acme\n' > "$JOBSTORE_OUTPUT_DIR/results/successful"
: > "$JOBSTORE_OUTPUT_DIR/results/unprocessed"
yes 0123456789abcdef | head -c 9437185 > "$JOBSTORE_OUTPUT_DIR/big"
"###,
    );
    let worker = Worker::exec(daemon.addr(), &dir, &command, &[]);
    let id = id_of(&api.create(&json!({"kind": "sync", "queue": "q", "max_attempts": 3})));
    let done = wait_state(&api, id, "succeeded", &worker);
    assert_eq!(done["attempt"], 2, "{done}");

    let output = |name: &str| {
        let answer = api.get(&format!(
            "/v1/jobs/{id}/outputs/{}",
            name.replace('/', "%2F")
        ));
        answer.expect(200);
        answer.body
    };
    // The second attempt's file replaced the first's.
    assert_eq!(output("query/results"), b"attempt 2\n");
    assert_eq!(
        output("results/successful"),
        b"sf__Id,sf__Created,Name\n001,true,Acme\n"
    );
    assert!(output("results/unprocessed").is_empty());
    // Larger than one request's piece: several batches that read back as one file.
    let big = output("big");
    let expected: Vec<u8> = b"0123456789abcdef\n"
        .iter()
        .copied()
        .cycle()
        .take(9_437_185)
        .collect();
    assert!(big == expected, "the large output changed");
    // The input is not touched, and each attempt's directory is gone.
    assert_eq!(job(&api, id)["data_batches"], 0);
    for attempt in [1, 2] {
        let used = std::fs::read_to_string(dir.join(format!("outdir-{attempt}"))).unwrap();
        assert!(
            !Path::new(used.trim()).exists(),
            "{used} is still there\n{}",
            worker.stderr()
        );
    }
}

/// A command that ends while the daemon's PostgreSQL server is down: the worker's report is
/// answered 503 `storage_unavailable`, and the worker sends it again until the server is back
/// (the lease still holds), so the job succeeds in its first attempt instead of running again.
#[test]
fn an_outcome_refused_while_postgres_is_down_is_reported_once_it_is_back() {
    let cluster = crate::cluster::PrivateCluster::start();
    let daemon = Daemon::start_with(
        temp_dir(),
        Options {
            db: Some(cluster.fresh_database().into()),
            ..Options::default()
        },
    );
    let api = daemon.client();
    let dir = daemon.dir().to_path_buf();
    let command = script(
        &dir,
        "wait.sh",
        "while [ ! -e release ]; do sleep 0.05; done\n\
         echo '##jobstore result {\"done\": true}'\n",
    );
    // A lease far longer than the outage: only the report waits for the server.
    let worker = Worker::exec(daemon.addr(), &dir, &command, &[("--lease-ms", "60000")]);
    let id = id_of(&api.create(&json!({"kind": "export", "queue": "q"})));
    wait_state(&api, id, "running", &worker);

    cluster.stop();
    std::fs::write(dir.join("release"), "").unwrap();
    let deadline = Instant::now() + JOB_WAIT;
    while !worker.stderr().contains("storage_unavailable") {
        assert!(
            Instant::now() < deadline,
            "the worker never met the outage; its stderr:\n{}",
            worker.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
    cluster.start_again();

    // Reads too may be refused for a moment after the start (the daemon's next try to
    // reconnect); the job must end succeeded all the same.
    let deadline = Instant::now() + JOB_WAIT;
    let done = loop {
        let response = api.get(&format!("/v1/jobs/{id}"));
        if response.status == 200 && response.json()["state"] == "succeeded" {
            break response.json();
        }
        assert!(
            response.status == 200 || response.status == 503,
            "{}",
            response.text()
        );
        assert!(
            Instant::now() < deadline,
            "job {id} did not succeed: {}\nworker stderr:\n{}",
            response.text(),
            worker.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(done["result"], json!({"done": true}), "{done}");
    assert_eq!(done["attempt"], 1, "{done}");
    let claims = events(&api, id)
        .iter()
        .filter(|event| event["event"] == "claim")
        .count();
    assert_eq!(claims, 1, "the job ran again: {:?}", events(&api, id));
}
