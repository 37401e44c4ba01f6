//! Runs one claimed job as a child process: feeds its stdin, turns its output into log lines
//! and reports, heartbeats while it runs, stops it on cancel, timeout, lost lease or worker
//! shutdown, and reports the outcome.

use std::collections::VecDeque;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use http_body_util::BodyExt;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinError;

use super::client::{CallError, Client};
use super::config::{CommandSpec, StdinSource, WorkerConfig};
use super::protocol::{self, Line, Report};

/// The longest log line kept; the rest of a longer line is dropped.
const MAX_LINE_BYTES: usize = 64 * 1024;
/// Log bytes held for the daemon at most; lines past it are counted and dropped, never
/// blocking the child. A sender drains the buffer continuously, so this is reached only when
/// the daemon cannot keep up.
const MAX_BUFFERED_BYTES: usize = 32 * 1024 * 1024;
/// Log lines sent in one request at most.
const LINES_PER_POST: usize = 5_000;
/// Log bytes sent in one request at most (within the daemon's JSON body limit).
const BYTES_PER_POST: usize = 512 * 1024;

/// The job as claimed.
pub(super) struct Claimed {
    pub id: i64,
    pub kind: String,
    pub attempt: i64,
    pub lease_token: i64,
    pub payload: Value,
}

impl Claimed {
    /// Reads the fields the worker needs from a claimed job document.
    pub(super) fn from_json(job: &Value) -> Option<Claimed> {
        Some(Claimed {
            id: job["id"].as_i64()?,
            kind: job["kind"].as_str()?.to_owned(),
            attempt: job["attempt"].as_i64()?,
            lease_token: job["lease_token"].as_i64()?,
            payload: job["payload"].clone(),
        })
    }
}

/// Why the child stopped, besides exiting by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancelled,
    TimedOut,
    LeaseLost,
    Interrupted,
    /// The job's data could not be read to its end: the command must not finish on a part.
    InputBroken,
}

/// What the command reported on stdout so far.
#[derive(Default)]
struct Reported {
    /// Counters not yet sent with a heartbeat.
    progress: Map<String, Value>,
    /// A phase not yet sent with a heartbeat.
    phase: Option<String>,
    result: Option<Value>,
    /// `Some` once the command said its failure is final (with its message, if any).
    fatal: Option<Option<String>>,
}

impl Reported {
    /// Takes in one report; step reports go to the daemon at once.
    async fn apply(&mut self, shared: &Shared, job: &Claimed, lease: &Value, report: Report) {
        match report {
            Report::Progress(Value::Object(members)) => self.progress.extend(members),
            Report::Progress(_) => {}
            Report::Phase(text) => self.phase = Some(text),
            Report::Result(value) => self.result = Some(value),
            Report::Fatal(message) => self.fatal = Some(message),
            Report::StepStart(step) => {
                step_report(shared, job, lease, &step, json!({"status": "running"})).await;
            }
            Report::StepEnd {
                step,
                ok,
                code,
                message,
            } => {
                let body = json!({
                    "status": if ok { "ok" } else { "error" },
                    "exit_code": code,
                    "message": message,
                });
                step_report(shared, job, lease, &step, body).await;
            }
        }
    }
}

/// Log lines waiting to be sent.
#[derive(Default)]
struct LogBuffer {
    lines: VecDeque<(&'static str, String)>,
    bytes: usize,
    dropped: u64,
    /// The command's pipes are closed: send what is left, then stop.
    closed: bool,
}

impl LogBuffer {
    fn push(&mut self, level: &'static str, line: String) {
        if self.bytes + line.len() > MAX_BUFFERED_BYTES {
            self.dropped += 1;
        } else {
            self.bytes += line.len();
            self.lines.push_back((level, line));
        }
    }

    /// Takes the next request's worth of lines.
    fn take_batch(&mut self) -> Vec<Value> {
        let mut batch = Vec::new();
        let mut size = 0;
        while batch.len() < LINES_PER_POST && size < BYTES_PER_POST {
            let Some((level, message)) = self.lines.pop_front() else {
                break;
            };
            self.bytes -= message.len();
            size += message.len() + 32;
            batch.push(json!({"level": level, "message": message}));
        }
        batch
    }
}

/// The log buffer and the signal that wakes its sender.
struct LogShip {
    buffer: Mutex<LogBuffer>,
    ready: tokio::sync::Notify,
}

impl LogShip {
    fn push(&self, level: &'static str, line: String) {
        lock(&self.buffer).push(level, line);
        self.ready.notify_one();
    }
}

/// What the worker shares with every job task.
pub(super) struct Shared {
    pub client: Client,
    pub config: WorkerConfig,
    /// Turns true when running jobs must stop (the worker's shutdown grace ran out).
    pub interrupt: watch::Receiver<bool>,
}

/// Runs one job to its end and reports the outcome.
pub(super) async fn run(shared: Arc<Shared>, job: Claimed) {
    let lease = json!({"worker": shared.config.name, "lease_token": job.lease_token});
    let Some(spec) = shared.config.command_for(&job.kind).cloned() else {
        let failure = json!({
            "worker": shared.config.name,
            "lease_token": job.lease_token,
            "error": format!("no command configured for job kind `{}`", job.kind),
            "retryable": false,
        });
        report_final(&shared, job.id, "fail", &failure).await;
        return;
    };
    let logs = Arc::new(LogShip {
        buffer: Mutex::new(LogBuffer::default()),
        ready: tokio::sync::Notify::new(),
    });
    let outputs = match OutputDir::create(&job) {
        Ok(outputs) => outputs,
        Err(err) => {
            let failure = json!({
                "worker": shared.config.name,
                "lease_token": job.lease_token,
                "error": format!("cannot make the output directory: {err}"),
                "retryable": true,
            });
            report_final(&shared, job.id, "fail", &failure).await;
            return;
        }
    };
    let mut child = match spawn(&shared, &job, &spec, &outputs) {
        Ok(child) => child,
        Err(err) => {
            let failure = json!({
                "worker": shared.config.name,
                "lease_token": job.lease_token,
                "error": format!("cannot start `{}`: {err}", spec.argv.join(" ")),
                "retryable": false,
            });
            report_final(&shared, job.id, "fail", &failure).await;
            return;
        }
    };
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    log::info!("job {} ({}): started pid {pid:?}", job.id, job.kind);

    // stdin, fed by a task of its own that always says how feeding ended. Input that breaks
    // off stops the command; the command closing its stdin early is its own business. The
    // command's exit counts only together with the feeder's answer (see after the loop).
    let (gone_tx, gone) = watch::channel(false);
    let mut feeder = tokio::spawn(feed(
        shared.client.clone(),
        job.id,
        spec.stdin,
        job.payload.clone(),
        child.stdin.take(),
        gone,
    ));
    // How feeding ended, once the loop below heard it.
    let mut fed: Option<Result<(), Feed>> = None;
    let feeder_heard_late = feeder_heard_late();

    // stdout (reports and log lines) and stderr (log lines)
    let (reports_tx, mut reports) = mpsc::unbounded_channel::<Report>();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let logs = Arc::clone(&logs);
        readers.push(tokio::spawn(read_lines(
            stdout,
            move |line| match protocol::parse(&line) {
                Line::Report(report) => {
                    let _ = reports_tx.send(report);
                }
                Line::Log(text) => logs.push("info", text),
                Line::Malformed { line, reason } => {
                    logs.push("warn", format!("{line}  [ignored report: {reason}]"));
                }
            },
        )));
    }
    let last_stderr = Arc::new(Mutex::new(String::new()));
    if let Some(stderr) = child.stderr.take() {
        let logs = Arc::clone(&logs);
        let last = Arc::clone(&last_stderr);
        readers.push(tokio::spawn(read_lines(stderr, move |line| {
            if !line.trim().is_empty() {
                *lock(&last) = line.clone();
            }
            logs.push("error", line);
        })));
    }

    let heartbeat_every = (shared.config.lease / 3).max(Duration::from_millis(100));
    let mut heartbeat = tokio::time::interval(heartbeat_every);
    heartbeat.reset();
    let shipper = tokio::spawn(ship_logs(Arc::clone(&shared), job.id, Arc::clone(&logs)));
    let deadline = spec.timeout.map(|t| tokio::time::Instant::now() + t);
    let mut interrupt = shared.interrupt.clone();
    let mut reported = Reported::default();
    let mut stop: Option<Stop> = None;
    let mut kill_at: Option<tokio::time::Instant> = None;

    let status: Option<ExitStatus> = loop {
        let timeout = async {
            match deadline {
                Some(at) if stop.is_none() => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        let escalate = async {
            match kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            exited = child.wait() => break exited.ok(),
            Some(report) = reports.recv() => reported.apply(&shared, &job, &lease, report).await,
            _ = heartbeat.tick() => {
                let beat = heartbeat_body(&shared, &job, &mut reported.progress, &mut reported.phase);
                match shared.client.json(Method::POST, &format!("/v1/jobs/{}/heartbeat", job.id), &beat, Some(heartbeat_every)).await {
                    Ok(answer) => {
                        if answer["cancel_requested"].as_bool() == Some(true) && stop.is_none() {
                            log::info!("job {}: cancel requested; stopping pid {pid:?}", job.id);
                            stop = Some(Stop::Cancelled);
                            kill_at = Some(terminate(pid, shared.config.grace));
                        }
                    }
                    Err(err) if err.lease_lost() => {
                        log::warn!("job {}: lease lost ({err}); killing pid {pid:?}", job.id);
                        stop = Some(Stop::LeaseLost);
                        signal_group(pid, Signal::SIGKILL);
                    }
                    Err(err) => log::warn!("job {}: heartbeat failed, the child keeps running: {err}", job.id),
                }
            }
            () = timeout => {
                log::warn!("job {}: timed out; stopping pid {pid:?}", job.id);
                stop = Some(Stop::TimedOut);
                kill_at = Some(terminate(pid, shared.config.grace));
            }
            () = escalate => {
                signal_group(pid, Signal::SIGKILL);
                kill_at = None;
            }
            // A join handle may be polled only until it answers once.
            outcome = &mut feeder, if fed.is_none() && !feeder_heard_late => {
                let outcome = joined(outcome);
                if matches!(outcome, Err(Feed::Broken(_))) && stop.is_none() {
                    stop = Some(Stop::InputBroken);
                    kill_at = Some(terminate(pid, shared.config.grace));
                }
                fed = Some(outcome);
            }
            _ = interrupt.changed(), if stop.is_none() => {
                if *interrupt.borrow() {
                    stop = Some(Stop::Interrupted);
                    kill_at = Some(terminate(pid, Duration::from_millis(500)));
                }
            }
        }
    };
    // Whatever the command left in its process group goes with it.
    signal_group(pid, Signal::SIGKILL);
    // The outcome waits for the feeder's answer, whichever came first: the command's exit or
    // its input breaking off. A command that saw the end of its stdin because the download
    // broke must not succeed on the part it got. A feeder still at work stops now (nobody
    // reads any more): the command left before the end of its input, its own business.
    let _ = gone_tx.send(true);
    let fed = match fed {
        Some(fed) => fed,
        None => joined(feeder.await),
    };
    let input_error = match fed {
        Err(Feed::Broken(reason)) => Some(reason),
        Ok(()) | Err(Feed::Left(_)) => None,
    };
    if input_error.is_some() && stop.is_none() {
        stop = Some(Stop::InputBroken);
    }
    for reader in readers {
        let _ = reader.await;
    }
    while let Ok(report) = reports.try_recv() {
        reported.apply(&shared, &job, &lease, report).await;
    }
    if stop == Some(Stop::LeaseLost) {
        log::warn!("job {}: lease lost; nothing more is reported", job.id);
        return;
    }
    lock(&logs.buffer).closed = true;
    logs.ready.notify_one();
    let _ = shipper.await;
    let dropped = lock(&logs.buffer).dropped;
    if dropped > 0 {
        note(
            &shared,
            job.id,
            format!(
                "{dropped} log lines were dropped: the command wrote faster than they could be sent"
            ),
        )
        .await;
    }
    if !reported.progress.is_empty() || reported.phase.is_some() {
        let beat = heartbeat_body(&shared, &job, &mut reported.progress, &mut reported.phase);
        if let Err(err) = shared
            .client
            .json(
                Method::POST,
                &format!("/v1/jobs/{}/heartbeat", job.id),
                &beat,
                None,
            )
            .await
            && err.lease_lost()
        {
            log::warn!(
                "job {}: lease lost before the outcome; nothing reported",
                job.id
            );
            return;
        }
    }
    // Output files are sent only by a command that ran to its end: a stopped one left a part.
    let mut upload_error = None;
    if stop.is_none() {
        match upload_outputs(&shared, &job, &outputs).await {
            Ok(()) => {}
            Err(Upload::LeaseLost(err)) => {
                log::warn!(
                    "job {}: lease lost while uploading outputs ({err}); nothing more is reported",
                    job.id
                );
                return;
            }
            Err(Upload::Failed(message)) => upload_error = Some(message),
        }
    }
    drop(outputs);
    let worker = shared.config.name.clone();
    let code = status.and_then(|s| s.code());
    let (action, body) = match (stop, status) {
        (Some(Stop::Cancelled), _) => (
            "fail",
            json!({"error": "cancelled on request", "retryable": true}),
        ),
        (Some(Stop::TimedOut), _) => {
            let limit = spec.timeout.map_or(0, |t| t.as_millis());
            (
                "fail",
                json!({"error": format!("timed out after {limit} ms"), "retryable": true}),
            )
        }
        (Some(Stop::InputBroken), _) => (
            "fail",
            json!({
                "error": input_error.unwrap_or_else(|| "the command's input broke off".to_owned()),
                "retryable": true,
            }),
        ),
        (Some(Stop::Interrupted), _) => (
            "fail",
            json!({"error": "the worker stopped before the command finished", "retryable": true}),
        ),
        (_, Some(status)) if status.success() => (
            "complete",
            json!({"result": reported.result.unwrap_or(Value::Null)}),
        ),
        (_, status) => {
            let how = match (code, status) {
                (Some(code), _) => format!("the command exited with status {code}"),
                (None, Some(_)) => "the command was killed by a signal".to_owned(),
                (None, None) => "the command could not be waited for".to_owned(),
            };
            // The error is the command's own message; how it ended goes to the log.
            let last = lock(&last_stderr).clone();
            let error = match &reported.fatal {
                Some(Some(message)) => message.clone(),
                _ if !last.is_empty() => last,
                _ => how.clone(),
            };
            note(&shared, job.id, how).await;
            (
                "fail",
                json!({"error": error, "retryable": reported.fatal.is_none()}),
            )
        }
    };
    let (action, mut body) = match upload_error {
        Some(error) if action == "complete" => {
            note(&shared, job.id, error.clone()).await;
            ("fail", json!({"error": error, "retryable": true}))
        }
        _ => (action, body),
    };
    body["worker"] = json!(worker);
    body["lease_token"] = json!(job.lease_token);
    report_final(&shared, job.id, action, &body).await;
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spawn(
    shared: &Shared,
    job: &Claimed,
    spec: &CommandSpec,
    outputs: &OutputDir,
) -> std::io::Result<Child> {
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(&spec.env)
        .env("JOBSTORE_JOB_ID", job.id.to_string())
        .env("JOBSTORE_JOB_KIND", &job.kind)
        .env("JOBSTORE_ATTEMPT", job.attempt.to_string())
        .env("JOBSTORE_URL", shared.client.url())
        .env("JOBSTORE_OUTPUT_DIR", &outputs.0)
        .envs(
            shared
                .config
                .ca_file
                .as_deref()
                .map(|path| ("JOBSTORE_CA_FILE", path)),
        )
        .stdin(if spec.stdin == StdinSource::None {
            Stdio::null()
        } else {
            Stdio::piped()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a cancel stops everything it started.
        .process_group(0)
        .kill_on_drop(true);
    command.spawn()
}

/// SIGTERM to the child's process group; answers when to send SIGKILL.
fn terminate(pid: Option<i32>, grace: Duration) -> tokio::time::Instant {
    signal_group(pid, Signal::SIGTERM);
    tokio::time::Instant::now() + grace
}

fn signal_group(pid: Option<i32>, signal: Signal) {
    if let Some(pid) = pid {
        // ESRCH: the group is gone already.
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

fn heartbeat_body(
    shared: &Shared,
    job: &Claimed,
    progress: &mut Map<String, Value>,
    phase: &mut Option<String>,
) -> Value {
    let mut beat = json!({
        "worker": shared.config.name,
        "lease_token": job.lease_token,
        "lease_ms": u64::try_from(shared.config.lease.as_millis()).unwrap_or(u64::MAX),
    });
    if !progress.is_empty() {
        beat["progress"] = Value::Object(std::mem::take(progress));
    }
    if let Some(text) = phase.take() {
        beat["phase"] = json!(text);
    }
    beat
}

async fn step_report(shared: &Shared, job: &Claimed, lease: &Value, step: &str, mut body: Value) {
    body["worker"] = lease["worker"].clone();
    body["lease_token"] = lease["lease_token"].clone();
    let path = format!("/v1/jobs/{}/steps/{}", job.id, encode_segment(step));
    if let Err(err) = shared.client.json(Method::POST, &path, &body, None).await {
        log::warn!("job {}: step report for `{step}` refused: {err}", job.id);
        note(
            shared,
            job.id,
            format!("step report for `{step}` refused: {err}"),
        )
        .await;
    }
}

/// Adds a warning of the worker's own to the job's log (best effort).
async fn note(shared: &Shared, id: i64, message: String) {
    let line = json!({"lines": [{"level": "warn", "message": message}]});
    let _ = shared
        .client
        .json(Method::POST, &format!("/v1/jobs/{id}/logs"), &line, None)
        .await;
}

/// The largest piece of an output file sent in one request; a larger file is sent as several
/// batches of its output, which read back as one.
const OUTPUT_PIECE: usize = 8 * 1024 * 1024;

/// A directory of the attempt's own for the command's output files (`JOBSTORE_OUTPUT_DIR`),
/// readable by this user only and removed with everything in it when dropped.
struct OutputDir(std::path::PathBuf);

impl OutputDir {
    fn create(job: &Claimed) -> std::io::Result<OutputDir> {
        use std::os::unix::fs::DirBuilderExt;
        let path = std::env::temp_dir().join(format!(
            "jobstore-outputs-{}-{}-{}",
            std::process::id(),
            job.id,
            job.lease_token
        ));
        match std::fs::remove_dir_all(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(OutputDir(path))
    }

    /// The regular files under the directory, as (output name, path), by name. A name is the
    /// file's path below the directory with `/` between its parts; symbolic links and other
    /// special files are skipped.
    fn files(&self) -> std::io::Result<Vec<(String, std::path::PathBuf)>> {
        let mut found = Vec::new();
        let mut pending = vec![(String::new(), self.0.clone())];
        while let Some((prefix, dir)) = pending.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    pending.push((format!("{name}/"), entry.path()));
                } else if kind.is_file() {
                    found.push((name, entry.path()));
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.0) {
            log::warn!("cannot remove {}: {err}", self.0.display());
        }
    }
}

/// Why the output files were not all sent.
enum Upload {
    /// The lease is gone: nothing more may be reported.
    LeaseLost(CallError),
    /// The attempt fails with this error.
    Failed(String),
}

/// Sends every file of the output directory as the output of its name, a piece of at most
/// [`OUTPUT_PIECE`] bytes per request, retrying a daemon that cannot be reached.
async fn upload_outputs(shared: &Shared, job: &Claimed, outputs: &OutputDir) -> Result<(), Upload> {
    let files = outputs
        .files()
        .map_err(|err| Upload::Failed(format!("cannot read the output directory: {err}")))?;
    for (name, path) in files {
        if !jobstore::valid_output_name(&name) {
            return Err(Upload::Failed(format!(
                "output file `{name}` has no valid output name (`/`-separated parts of letters, \
                 digits, '.', '_' and '-', at most {} bytes)",
                jobstore::MAX_OUTPUT_NAME_BYTES
            )));
        }
        let target = format!(
            "/v1/jobs/{}/outputs/{}?worker={}&lease_token={}",
            job.id,
            encode_segment(&name),
            encode_segment(&shared.config.name),
            job.lease_token
        );
        let unreadable = |err: std::io::Error| {
            Upload::Failed(format!("cannot read output file `{name}`: {err}"))
        };
        let mut file = std::fs::File::open(&path).map_err(unreadable)?;
        let mut first = true;
        loop {
            let read = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut piece = Vec::new();
                let read = (&mut file)
                    .take(OUTPUT_PIECE as u64)
                    .read_to_end(&mut piece);
                (file, read.map(|_| piece))
            })
            .await
            .map_err(|err| Upload::Failed(format!("reading output file `{name}` failed: {err}")))?;
            file = read.0;
            let piece = read.1.map_err(unreadable)?;
            if piece.is_empty() && !first {
                break;
            }
            first = false;
            let full = piece.len() == OUTPUT_PIECE;
            put_piece(shared, &target, &name, piece).await?;
            if !full {
                break;
            }
        }
        log::info!("job {}: output `{name}` sent", job.id);
    }
    Ok(())
}

/// Sends one piece of an output, retrying while the daemon cannot be reached or answers 503.
async fn put_piece(
    shared: &Shared,
    target: &str,
    name: &str,
    piece: Vec<u8>,
) -> Result<(), Upload> {
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        match shared.client.put_bytes(target, piece.clone()).await {
            Ok(_) => return Ok(()),
            Err(err) if err.lease_lost() => return Err(Upload::LeaseLost(err)),
            Err(err) if !err.is_transient() => {
                return Err(Upload::Failed(format!(
                    "output `{name}` was refused: {err}"
                )));
            }
            Err(err) if tries >= 20 => {
                return Err(Upload::Failed(format!(
                    "output `{name}` could not be sent: {err}"
                )));
            }
            Err(err) => {
                log::warn!("output `{name}`: sending failed, retrying: {err}");
                tries += 1;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn encode_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Sends the job's log lines as they come, a batch per request, until the command's pipes
/// closed and everything was sent.
async fn ship_logs(shared: Arc<Shared>, id: i64, logs: Arc<LogShip>) {
    loop {
        let (batch, closed) = {
            let mut buffer = lock(&logs.buffer);
            (buffer.take_batch(), buffer.closed)
        };
        if batch.is_empty() {
            if closed {
                return;
            }
            logs.ready.notified().await;
            continue;
        }
        let count = batch.len();
        if let Err(err) = shared
            .client
            .json(
                Method::POST,
                &format!("/v1/jobs/{id}/logs"),
                &json!({"lines": batch}),
                None,
            )
            .await
        {
            log::warn!("job {id}: {count} log lines lost: {err}");
            lock(&logs.buffer).dropped += count as u64;
        }
    }
}

/// Reports the outcome, retrying while the daemon is unreachable or answers 503 (the lease may
/// still hold: a daemon whose database restarts answers 503 until it is back).
async fn report_final(shared: &Shared, id: i64, action: &str, body: &Value) {
    let mut delay = Duration::from_millis(100);
    for _ in 0..40 {
        match shared
            .client
            .json(Method::POST, &format!("/v1/jobs/{id}/{action}"), body, None)
            .await
        {
            Ok(job) => {
                log::info!(
                    "job {id}: {action} → {}",
                    job["state"].as_str().unwrap_or("?")
                );
                return;
            }
            Err(err) if !err.is_transient() => {
                log::warn!("job {id}: {action} refused: {err}");
                return;
            }
            Err(err) => {
                log::warn!("job {id}: {action} failed, retrying: {err}");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    log::error!(
        "job {id}: could not report `{action}`; its lease will expire and it will run again"
    );
}

/// Why feeding stdin stopped before all of the input was delivered.
enum Feed {
    /// The command closed its stdin or exited before reading all of it: its own business,
    /// not an error of the job.
    Left(String),
    /// The input could not be delivered whole (the data download broke, ...): the command
    /// must not succeed on a part of it. The text is the attempt's error.
    Broken(String),
}

/// Test hook, debug builds only: with `JOBSTORE_WORKER_TEST_LATE_FEEDER` set, a job hears how
/// feeding its stdin ended only after the command exited, as when the exit wins the race
/// against a broken download on a busy machine. The outcome must not depend on that order.
fn feeder_heard_late() -> bool {
    cfg!(debug_assertions) && std::env::var_os("JOBSTORE_WORKER_TEST_LATE_FEEDER").is_some()
}

/// The feeder's answer; a feeder that panicked may have delivered only a part.
fn joined(outcome: Result<Result<(), Feed>, JoinError>) -> Result<(), Feed> {
    outcome.unwrap_or_else(|err| {
        Err(Feed::Broken(format!(
            "feeding the command's stdin failed: {err}"
        )))
    })
}

/// Feeds the command's stdin from `source`, closes it, and answers how that ended: `Ok` only
/// when all of the input was delivered. Gives up once `gone` turns true (the command exited),
/// rather than wait on a download nobody reads any more.
async fn feed(
    client: Client,
    id: i64,
    source: StdinSource,
    payload: Value,
    stdin: Option<ChildStdin>,
    mut gone: watch::Receiver<bool>,
) -> Result<(), Feed> {
    let Some(mut stdin) = stdin else {
        return Ok(());
    };
    let delivery = async {
        match source {
            StdinSource::Payload => {
                let bytes = serde_json::to_vec(&payload).map_err(|err| {
                    Feed::Broken(format!("encoding the job's payload failed: {err}"))
                })?;
                stdin.write_all(&bytes).await.map_err(write_failed)
            }
            StdinSource::Data => feed_data(&client, id, &mut stdin).await,
            StdinSource::None => Ok(()),
        }
    };
    let fed = tokio::select! {
        // How the delivery ended, when it has, goes before the command's exit.
        biased;
        fed = delivery => fed,
        _ = gone.wait_for(|gone| *gone) => Err(Feed::Left(
            "the command exited before reading all of its input".to_owned(),
        )),
    };
    match &fed {
        Ok(()) => {}
        Err(Feed::Left(why)) => log::debug!("job {id}: {why}"),
        Err(Feed::Broken(why)) => log::warn!("job {id}: {why}"),
    }
    // The command sees the end of its stdin only now, with the answer settled.
    drop(stdin);
    fed
}

/// A failed write to the command's stdin: a closed pipe is the command's own doing.
fn write_failed(err: std::io::Error) -> Feed {
    if err.kind() == std::io::ErrorKind::BrokenPipe {
        Feed::Left(format!("the command closed its stdin: {err}"))
    } else {
        Feed::Broken(format!("writing the command's stdin failed: {err}"))
    }
}

/// Streams the job's uploaded data into the child's stdin.
async fn feed_data(client: &Client, id: i64, stdin: &mut ChildStdin) -> Result<(), Feed> {
    let broken =
        |err: &dyn std::fmt::Display| Feed::Broken(format!("reading the job's data failed: {err}"));
    let mut body = client
        .stream(&format!("/v1/jobs/{id}/data"))
        .await
        .map_err(|err| broken(&err))?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| broken(&err))?;
        if let Ok(data) = frame.into_data() {
            stdin.write_all(&data).await.map_err(write_failed)?;
        }
    }
    Ok(())
}

/// Reads lines (without their newline) from a pipe, cutting lines longer than
/// [`MAX_LINE_BYTES`], until the pipe closes. Reading never waits for the daemon.
async fn read_lines(mut pipe: impl AsyncRead + Unpin, mut on_line: impl FnMut(String)) {
    let mut buffer = vec![0_u8; 16 * 1024];
    let mut line: Vec<u8> = Vec::new();
    let mut overflow = false;
    loop {
        let n = match pipe.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &byte in &buffer[..n] {
            if byte == b'\n' {
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_owned();
                on_line(text);
                line.clear();
                overflow = false;
            } else if line.len() < MAX_LINE_BYTES {
                line.push(byte);
            } else if !overflow {
                overflow = true;
            }
        }
    }
    if !line.is_empty() {
        on_line(String::from_utf8_lossy(&line).into_owned());
    }
}
