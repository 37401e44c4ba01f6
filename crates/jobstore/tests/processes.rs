//! Child-process tests: crash (SIGKILL) and several processes on one file.
//!
//! This binary has its own `main` (`harness = false`). Run without `JOBSTORE_TEST_CHILD` it is
//! the parent: it runs the tests below and prints libtest-style lines. To get a child process it
//! re-executes itself (`std::env::current_exe()`, never `fork()`) with `JOBSTORE_TEST_CHILD` set
//! to the child's role:
//!
//! - `crash`: several threads enqueue, claim, complete and fail jobs on the file until the
//!   parent kills the process with SIGKILL. Each call is printed (`ENQ`, `CLAIM`, `DONE`,
//!   `FAIL`) only after it answered `Ok`, so every printed line is a promise the file must keep.
//! - `worker`: several threads claim and complete jobs until the queue stays empty, printing
//!   `DONE <id> <worker>` for every completion that answered `Ok`.
//!
//! Any error a child meets is printed as `ERR <message>` and fails the test.
//!
//! Environment: `JOBSTORE_CRASH_ITERATIONS` (default 50) sets the number of kills;
//! `JOBSTORE_TEST_SEED` fixes the parent's random choices (the seed is printed on failure).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobstore::{ClaimRequest, Failure, NewJob, Scope, State, Store, StoreOptions};
use serde_json::json;

/// Selects the child role; unset in the parent.
const CHILD_ENV: &str = "JOBSTORE_TEST_CHILD";
/// The database file a child works on.
const DB_ENV: &str = "JOBSTORE_TEST_DB";
/// The crash iteration a crash child belongs to (makes its payloads unique).
const RUN_ENV: &str = "JOBSTORE_TEST_RUN";
/// A worker child's name.
const WORKER_ENV: &str = "JOBSTORE_TEST_WORKER";
/// How many threads a worker child runs.
const THREADS_ENV: &str = "JOBSTORE_TEST_THREADS";
/// How many times the crash test kills its child.
const ITERATIONS_ENV: &str = "JOBSTORE_CRASH_ITERATIONS";
/// Fixes the parent's random choices.
const SEED_ENV: &str = "JOBSTORE_TEST_SEED";

/// The lease a crash child takes, short so that the parent need not wait long to rescue.
const CRASH_LEASE_MS: i64 = 300;
/// Threads of a crash child.
const CRASH_THREADS: u64 = 4;
/// A crash child stops on its own after this long, should its parent be gone.
const CRASH_CHILD_LIFETIME: Duration = Duration::from_secs(60);
/// Jobs the two-process test creates.
const WORKER_JOBS: i64 = 2000;
/// A hung child is killed and the test failed after this long.
const CHILD_TIMEOUT: Duration = Duration::from_secs(120);

type TestResult = Result<(), String>;

/// A test answers a summary of what it did (printed after its result line), or its failure.
type TestOutcome = Result<String, String>;

struct Test {
    name: &'static str,
    run: fn() -> TestOutcome,
}

const TESTS: &[Test] = &[
    Test {
        name: "crash_kill_9",
        run: crash_kill_9,
    },
    Test {
        name: "two_processes_and_a_sqlite3_reader",
        run: two_processes_and_a_sqlite3_reader,
    },
];

fn main() {
    match std::env::var(CHILD_ENV) {
        Ok(role) if role == "crash" => child_crash(),
        Ok(role) if role == "worker" => child_worker(),
        Ok(role) => {
            eprintln!("unknown child role `{role}`");
            std::process::exit(2);
        }
        Err(_) => std::process::exit(run_tests()),
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: filters, libtest-style output.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Args {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    list: bool,
    ignored_only: bool,
}

impl Args {
    fn parse() -> Args {
        let mut parsed = Args::default();
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--exact" => parsed.exact = true,
                "--list" => parsed.list = true,
                "--ignored" => parsed.ignored_only = true,
                "--skip" => parsed.skips.extend(args.next()),
                // Options of libtest that take a value in the next argument.
                "--test-threads" | "--color" | "--format" | "--logfile" | "--shuffle-seed"
                | "-Z" => {
                    args.next();
                }
                other if other.starts_with('-') => {}
                _ => parsed.filters.push(arg),
            }
        }
        parsed
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            pattern == name
        } else {
            name.contains(pattern)
        }
    }

    fn selects(&self, name: &str) -> bool {
        !self.ignored_only
            && (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(f, name)))
            && !self.skips.iter().any(|s| self.matches(s, name))
    }
}

fn run_tests() -> i32 {
    let args = Args::parse();
    let selected: Vec<&Test> = TESTS.iter().filter(|t| args.selects(t.name)).collect();
    let filtered_out = TESTS.len() - selected.len();
    if args.list {
        for test in &selected {
            println!("{}: test", test.name);
        }
        println!();
        println!("{} tests, 0 benchmarks", selected.len());
        return 0;
    }
    println!();
    println!(
        "running {} test{}",
        selected.len(),
        if selected.len() == 1 { "" } else { "s" }
    );
    let mut passed = 0;
    let mut failures: Vec<(&str, String)> = Vec::new();
    for test in selected {
        print!("test {} ... ", test.name);
        let _ = std::io::stdout().flush();
        let started = Instant::now();
        let outcome = match catch_unwind(AssertUnwindSafe(test.run)) {
            Ok(outcome) => outcome,
            Err(panic) => Err(panic_message(panic.as_ref())),
        };
        let took = started.elapsed();
        match outcome {
            Ok(summary) => {
                println!("ok");
                println!("    {summary} ({:.1} s)", took.as_secs_f64());
                passed += 1;
            }
            Err(message) => {
                println!("FAILED");
                failures.push((test.name, message));
            }
        }
        let _ = std::io::stdout().flush();
    }
    let failed = failures.len();
    if !failures.is_empty() {
        println!();
        println!("failures:");
        for (name, message) in &failures {
            println!();
            println!("---- {name} ----");
            println!("{message}");
        }
        println!();
        println!("failures:");
        for (name, _) in &failures {
            println!("    {name}");
        }
    }
    println!();
    println!(
        "test result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; \
         {filtered_out} filtered out",
        if failed == 0 { "ok" } else { "FAILED" }
    );
    println!();
    let _ = std::io::stdout().flush();
    i32::from(failed != 0)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        format!("panicked: {text}")
    } else if let Some(text) = panic.downcast_ref::<String>() {
        format!("panicked: {text}")
    } else {
        "panicked".to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Small tools: a PRNG, child processes, line reading, sqlite3.
// ---------------------------------------------------------------------------------------------

/// xorshift64: enough to pick delays and actions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 once, so that close seeds give unrelated streams; never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A number in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

fn time_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Truncation is fine: any bits make a seed.
    (nanos as u64) ^ (u64::from(std::process::id()) << 32)
}

fn parent_seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(time_seed)
}

/// Writes one line to stdout at once: the stdout lock keeps threads' lines whole, and each
/// line is flushed before the call returns.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

fn env_var(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) => value,
        Err(_) => {
            say(&format!("ERR missing environment variable {name}"));
            std::process::exit(3);
        }
    }
}

/// A child process of this binary, killed (SIGKILL) when dropped while still running.
struct ChildProc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

impl ChildProc {
    fn spawn(name: &str, role: &str, db: &Path, env: &[(&str, String)]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut command = Command::new(exe);
        command
            .env(CHILD_ENV, role)
            .env(DB_ENV, db)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("spawning child {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("child without stdout")?;
        let stderr = child.stderr.take().ok_or("child without stderr")?;
        Ok(ChildProc {
            name: name.to_owned(),
            child,
            lines: read_lines(stdout),
            stderr: Some(thread::spawn(move || read_all(stderr))),
        })
    }

    /// Whether it has exited, and how.
    fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child
            .try_wait()
            .map_err(|e| format!("waiting for {}: {e}", self.name))
    }

    /// SIGKILL (std's `Child::kill` on Unix), then reap.
    fn kill(&mut self) -> Result<ExitStatus, String> {
        self.child
            .kill()
            .map_err(|e| format!("killing {}: {e}", self.name))?;
        self.child
            .wait()
            .map_err(|e| format!("waiting for {}: {e}", self.name))
    }

    /// Waits for the end of its stdout and stderr (the process must be gone): every complete
    /// line not yet received, and everything it wrote to stderr.
    fn drain(&mut self) -> (Vec<String>, String) {
        let lines = self.lines.iter().collect();
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (lines, stderr)
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads complete lines on a thread; a last line cut off by a kill (no newline) is dropped.
fn read_lines(source: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(source);
        let mut line = String::new();
        loop {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) if line.ends_with('\n') => {
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });
    rx
}

fn read_all(mut source: impl Read) -> String {
    let mut bytes = Vec::new();
    let _ = source.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

fn fail<T>(message: impl Into<String>) -> Result<T, String> {
    Err(message.into())
}

fn ensure(condition: bool, message: impl FnOnce() -> String) -> TestResult {
    if condition { Ok(()) } else { Err(message()) }
}

fn store_err(what: &str) -> impl FnOnce(jobstore::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

fn sql_err(what: &str) -> impl FnOnce(rusqlite::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// `PRAGMA integrity_check` on a plain connection of its own.
fn integrity_check(db: &Path) -> TestResult {
    let conn = rusqlite::Connection::open(db).map_err(sql_err("opening a raw connection"))?;
    let rows = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(sql_err("PRAGMA integrity_check"))?;
    ensure(rows == ["ok"], || format!("integrity_check: {rows:?}"))
}

fn check_store(store: &Store, when: &str) -> TestResult {
    let report = store.check().map_err(store_err("store.check()"))?;
    ensure(report.is_ok(), || {
        format!("store.check() {when}: {:?}", report.problems)
    })
}

/// Runs the `sqlite3` command-line tool on the file; any failure, output on stderr, or a
/// "locked"/"busy" anywhere is an error.
fn sqlite3(db: &Path, sql: &str) -> Result<String, String> {
    let out = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running sqlite3: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = format!("{stdout}\n{stderr}").to_ascii_lowercase();
    if !out.status.success()
        || !stderr.trim().is_empty()
        || text.contains("locked")
        || text.contains("busy")
    {
        return fail(format!(
            "sqlite3 {sql:?} as a concurrent reader failed ({}): stdout {stdout:?}, stderr \
             {stderr:?}",
            out.status
        ));
    }
    Ok(stdout)
}

fn require_sqlite3() -> TestResult {
    match Command::new("sqlite3").arg("-version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => fail(format!(
            "`sqlite3 -version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
        Err(err) => fail(format!(
            "this test needs the `sqlite3` command-line tool on PATH as a concurrent reader, \
             and it could not be run ({err}); install it (Debian/Ubuntu: `apt-get install \
             sqlite3`)"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// crash_kill_9
// ---------------------------------------------------------------------------------------------

/// What one killed child promised: each line was printed after its call answered `Ok`.
#[derive(Default)]
struct Promises {
    /// Job id → the payload tag it was created with.
    enqueued: Vec<(i64, String)>,
    /// (job id, fencing token) of every claim.
    claimed: Vec<(i64, i64)>,
    /// Jobs completed.
    done: Vec<i64>,
    /// (job id, token) of every failed attempt.
    failed: Vec<(i64, i64)>,
    /// Errors the child met.
    errors: Vec<String>,
    /// Lines no one understands.
    garbage: Vec<String>,
}

impl Promises {
    fn parse(lines: &[String]) -> Promises {
        let mut promises = Promises::default();
        for line in lines {
            let words: Vec<&str> = line.split(' ').collect();
            let id = words.get(1).and_then(|w| w.parse::<i64>().ok());
            let token = words.get(2).and_then(|w| w.parse::<i64>().ok());
            match (words.first().copied(), id, token) {
                (Some("READY"), _, _) => {}
                (Some("ENQ"), Some(id), _) if words.len() == 3 => {
                    promises.enqueued.push((id, words[2].to_owned()));
                }
                (Some("CLAIM"), Some(id), Some(token)) => promises.claimed.push((id, token)),
                (Some("DONE"), Some(id), _) => promises.done.push(id),
                (Some("FAIL"), Some(id), Some(token)) => promises.failed.push((id, token)),
                (Some("ERR"), _, _) => promises.errors.push(line.clone()),
                _ => promises.garbage.push(line.clone()),
            }
        }
        promises
    }
}

/// Totals over all iterations, for the summary.
#[derive(Default)]
struct CrashTotals {
    enqueued: usize,
    claimed: usize,
    done: usize,
    failed: usize,
    rescued: usize,
    early_kills: usize,
}

fn crash_kill_9() -> TestOutcome {
    let iterations: u64 = match std::env::var(ITERATIONS_ENV) {
        Ok(text) => text
            .parse()
            .map_err(|e| format!("{ITERATIONS_ENV}={text:?}: {e}"))?,
        Err(_) => 50,
    };
    let seed = parent_seed();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let db = dir.path().join("jobs.db");
    let mut totals = CrashTotals::default();
    let mut max_id = 0_i64;
    for run in 1..=iterations {
        max_id = crash_iteration(&db, run, max_id, &mut rng, &mut totals)
            .map_err(|e| format!("iteration {run} of {iterations} (seed {seed}): {e}"))?;
    }
    let store = Store::open(&db)
        .map_err(store_err("final reopen"))?
        .with_scope(Scope::All);
    let stats = store.stats().map_err(store_err("stats"))?;
    let counts: Vec<String> = stats
        .iter()
        .map(|c| format!("{} {}", c.state, c.jobs))
        .collect();
    ensure(totals.enqueued > 0, || {
        "no child ever enqueued a job before it was killed".to_owned()
    })?;
    Ok(format!(
        "{iterations} kills ({} before READY), {} enqueues, {} claims, {} completions, {} \
         failures, {} leases rescued; final jobs: {} (seed {seed})",
        totals.early_kills,
        totals.enqueued,
        totals.claimed,
        totals.done,
        totals.failed,
        totals.rescued,
        counts.join(", ")
    ))
}

/// One spawn, kill and check on the file. Answers the highest job id now in the file.
fn crash_iteration(
    db: &Path,
    run: u64,
    max_id_before: i64,
    rng: &mut Rng,
    totals: &mut CrashTotals,
) -> Result<i64, String> {
    let mut child = ChildProc::spawn(
        &format!("crash child {run}"),
        "crash",
        db,
        &[(RUN_ENV, run.to_string())],
    )?;
    // Most kills land while the threads work; some while the child is still opening the file
    // (recovering the WAL, migrating the schema on the first run).
    let early = rng.below(8) == 0;
    let mut lines = Vec::new();
    if early {
        totals.early_kills += 1;
    } else {
        let deadline = Instant::now() + CHILD_TIMEOUT;
        loop {
            match child
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let ready = line == "READY";
                    lines.push(line);
                    if ready {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    child.kill()?;
                    let (_, stderr) = child.drain();
                    return fail(format!(
                        "the child did not open the store within {CHILD_TIMEOUT:?}: {lines:?}, \
                         stderr: {stderr}"
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = child.try_wait()?;
                    let (rest, stderr) = child.drain();
                    lines.extend(rest);
                    return fail(format!(
                        "the child ended before it was ready ({status:?}): {lines:?}, stderr: \
                         {stderr}"
                    ));
                }
            }
        }
    }
    let delay = if early {
        rng.between(0, 30)
    } else {
        rng.between(20, 300)
    };
    thread::sleep(Duration::from_millis(delay));
    if let Some(status) = child.try_wait()? {
        let (rest, stderr) = child.drain();
        lines.extend(rest);
        let errors: Vec<&String> = lines.iter().filter(|l| l.starts_with("ERR")).collect();
        return fail(format!(
            "the child exited on its own ({status}) before the kill; errors: {errors:?}, \
             stderr: {stderr}"
        ));
    }
    child.kill()?;
    let (rest, stderr) = child.drain();
    lines.extend(rest);
    let promises = Promises::parse(&lines);
    ensure(promises.errors.is_empty(), || {
        format!(
            "the child met {} errors before the kill, first ones: {:?}, stderr: {stderr}",
            promises.errors.len(),
            promises.errors.iter().take(10).collect::<Vec<_>>()
        )
    })?;
    ensure(promises.garbage.is_empty(), || {
        format!(
            "the child printed {} lines that are not whole, first ones: {:?}",
            promises.garbage.len(),
            promises.garbage.iter().take(10).collect::<Vec<_>>()
        )
    })?;
    totals.enqueued += promises.enqueued.len();
    totals.claimed += promises.claimed.len();
    totals.done += promises.done.len();
    totals.failed += promises.failed.len();

    let store = Store::open(db)
        .map_err(store_err("reopening after the kill"))?
        .with_scope(Scope::All);
    integrity_check(db)?;
    check_store(&store, "after the kill")?;
    check_promises(db, &store, &promises, max_id_before)?;
    totals.rescued += check_rescue(db, &store)?;
    check_store(&store, "after the rescue")?;
    integrity_check(db)?;
    let conn = rusqlite::Connection::open(db).map_err(sql_err("raw connection"))?;
    let max_id: i64 = conn
        .query_row("SELECT ifnull(max(id), 0) FROM jobs", [], |row| row.get(0))
        .map_err(sql_err("max(id)"))?;
    Ok(max_id)
}

/// Every call the child saw answer `Ok` is in the file.
fn check_promises(db: &Path, store: &Store, promises: &Promises, max_id_before: i64) -> TestResult {
    let conn = rusqlite::Connection::open(db).map_err(sql_err("raw connection"))?;
    for (id, tag) in &promises.enqueued {
        let job = store
            .get(*id)
            .map_err(|e| format!("job {id} was enqueued (ENQ printed) but is lost: {e}"))?;
        ensure(job.payload["tag"] == json!(tag), || {
            format!(
                "job {id} was enqueued with tag {tag}, the file holds payload {}",
                job.payload
            )
        })?;
        ensure(*id > max_id_before, || {
            format!("job id {id} reused: the file held ids up to {max_id_before} before this run")
        })?;
    }
    for (id, token) in &promises.claimed {
        let leases: i64 = conn
            .query_row("SELECT leases FROM jobs WHERE id = ?1", [id], |row| {
                row.get(0)
            })
            .map_err(|e| format!("claimed job {id}: {e}"))?;
        ensure(leases >= *token, || {
            format!("job {id} was claimed with token {token}, the file counts {leases} leases")
        })?;
    }
    for id in &promises.done {
        let job = store
            .get(*id)
            .map_err(|e| format!("completed job {id} is lost: {e}"))?;
        ensure(job.state == State::Succeeded, || {
            format!(
                "job {id} was completed (DONE printed) but is {} in the file",
                job.state
            )
        })?;
    }
    for (id, token) in &promises.failed {
        let job = store
            .get(*id)
            .map_err(|e| format!("failed job {id} is lost: {e}"))?;
        ensure(job.lease_token != Some(*token), || {
            format!("job {id}: the failure of lease {token} answered Ok but the lease is current")
        })?;
    }
    Ok(())
}

/// Waits until every lease in the file ran out, rescues them and checks the outcome. Answers
/// how many were rescued.
fn check_rescue(db: &Path, store: &Store) -> Result<usize, String> {
    let conn = rusqlite::Connection::open(db).map_err(sql_err("raw connection"))?;
    let running: BTreeMap<i64, i64> = conn
        .prepare("SELECT id, lease_expires_at FROM jobs WHERE state = 'running'")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .map_err(sql_err("running jobs"))?;
    // Leases are short (the child's dead; nobody renews them); wait past the last one.
    if let Some(&last) = running.values().max() {
        let give_up = Instant::now() + Duration::from_secs(10);
        while store.now() <= last {
            ensure(Instant::now() < give_up, || {
                format!("a lease runs until {last}, more than 10 s from now")
            })?;
            let left = u64::try_from(last - store.now()).unwrap_or(0);
            thread::sleep(Duration::from_millis(left.clamp(1, 500) + 1));
        }
    }
    let rescued: BTreeSet<i64> = store
        .rescue_expired_leases()
        .map_err(store_err("rescue_expired_leases"))?
        .into_iter()
        .collect();
    let expected: BTreeSet<i64> = running.keys().copied().collect();
    ensure(rescued == expected, || {
        format!("expired leases: {expected:?}, rescued: {rescued:?}")
    })?;
    for id in &rescued {
        let job = store
            .get(*id)
            .map_err(|e| format!("rescued job {id}: {e}"))?;
        let wanted = if job.attempt < job.max_attempts {
            State::Queued
        } else {
            State::Failed
        };
        ensure(job.state == wanted && job.lease().is_none(), || {
            format!(
                "rescued job {id} (attempt {}/{}) is {} with lease {:?}, wanted {wanted}",
                job.attempt,
                job.max_attempts,
                job.state,
                job.lease()
            )
        })?;
    }
    let still_running: i64 = conn
        .query_row(
            "SELECT count(*) FROM jobs WHERE state = 'running'",
            [],
            |row| row.get(0),
        )
        .map_err(sql_err("count running"))?;
    ensure(still_running == 0, || {
        format!("{still_running} jobs still running after the rescue, with no process alive")
    })?;
    Ok(rescued.len())
}

/// The crash child: works until it is killed (or, orphaned, for a minute).
fn child_crash() {
    let db = PathBuf::from(env_var(DB_ENV));
    let run: u64 = env_var(RUN_ENV).parse().unwrap_or_default();
    let store = match Store::open_with(&db, StoreOptions::default()) {
        Ok(store) => store,
        Err(err) => {
            say(&format!("ERR open: {err}"));
            std::process::exit(3);
        }
    };
    say("READY");
    let deadline = Instant::now() + CRASH_CHILD_LIFETIME;
    let threads: Vec<JoinHandle<()>> = (0..CRASH_THREADS)
        .map(|t| {
            let store = store.clone();
            thread::spawn(move || crash_loop(&store, run, t, deadline))
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }
    // Only reached when the parent never killed us.
    std::process::exit(4);
}

fn crash_loop(store: &Store, run: u64, thread_no: u64, deadline: Instant) {
    let mut rng = Rng::new(time_seed() ^ (run << 8) ^ thread_no);
    let worker = format!("crash-{run}-{thread_no}");
    let mut seq = 0_u64;
    while Instant::now() < deadline {
        seq += 1;
        let tag = format!("{run}-{thread_no}-{seq}");
        let new = NewJob::new("crash-test").payload(json!({ "tag": tag }));
        match store.enqueue(new) {
            Ok(job) => say(&format!("ENQ {} {tag}", job.id)),
            Err(err) => say(&format!("ERR enqueue {tag}: {err}")),
        }
        if rng.below(2) == 0 {
            continue;
        }
        let request = ClaimRequest {
            worker: worker.clone(),
            queues: vec!["default".into()],
            max: u32::try_from(rng.between(1, 3)).unwrap_or(1),
            lease_ms: CRASH_LEASE_MS,
        };
        let jobs = match store.claim(&request) {
            Ok(jobs) => jobs,
            Err(err) => {
                say(&format!("ERR claim: {err}"));
                continue;
            }
        };
        for job in jobs {
            let Some(lease) = job.lease() else {
                say(&format!("ERR claimed job {} came without a lease", job.id));
                continue;
            };
            say(&format!("CLAIM {} {}", job.id, lease.token));
            match rng.below(10) {
                0..=5 => match store.complete(job.id, &lease, json!({ "by": worker })) {
                    Ok(done) if done.state == State::Succeeded => {
                        say(&format!("DONE {}", job.id));
                    }
                    Ok(done) => say(&format!("ERR complete {} answered {}", job.id, done.state)),
                    Err(err) => say(&format!("ERR complete {}: {err}", job.id)),
                },
                6 => match store.fail(job.id, &lease, Failure::retryable("crash test failure")) {
                    Ok(_) => say(&format!("FAIL {} {}", job.id, lease.token)),
                    Err(err) => say(&format!("ERR fail {}: {err}", job.id)),
                },
                // Left running: the lease runs out and the parent rescues the job.
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// two_processes_and_a_sqlite3_reader
// ---------------------------------------------------------------------------------------------

fn two_processes_and_a_sqlite3_reader() -> TestOutcome {
    require_sqlite3()?;
    let mut rng = Rng::new(parent_seed());
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let db = dir.path().join("jobs.db");
    // The parent keeps its store open throughout, like a daemon beside its workers.
    let store = Store::open(&db)
        .map_err(store_err("open"))?
        .with_scope(Scope::All);
    let mut expected = BTreeSet::new();
    for chunk in 0..WORKER_JOBS / 500 {
        let batch = (0..500)
            .map(|i| NewJob::new("two-processes").payload(json!({ "n": chunk * 500 + i })))
            .collect();
        let jobs = store
            .enqueue_many(batch)
            .map_err(store_err("enqueue_many"))?;
        expected.extend(jobs.iter().map(|job| job.id));
    }
    ensure(
        expected.len() == usize::try_from(WORKER_JOBS).unwrap_or(0),
        || format!("{} distinct ids for {WORKER_JOBS} jobs", expected.len()),
    )?;

    let mut children = Vec::new();
    for name in ["w1", "w2"] {
        let threads = rng.between(2, 4);
        children.push(ChildProc::spawn(
            name,
            "worker",
            &db,
            &[
                (WORKER_ENV, name.to_owned()),
                (THREADS_ENV, threads.to_string()),
            ],
        )?);
    }

    // The concurrent reader: sqlite3 again and again until both children are done.
    let started = Instant::now();
    let mut reads = 0_u32;
    let mut last_succeeded = 0_i64;
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    loop {
        let out = sqlite3(&db, "SELECT count(*) FROM jobs WHERE state = 'succeeded'")?;
        let succeeded: i64 = out
            .trim()
            .parse()
            .map_err(|e| format!("sqlite3 answered {out:?}: {e}"))?;
        ensure((last_succeeded..=WORKER_JOBS).contains(&succeeded), || {
            format!("succeeded went from {last_succeeded} to {succeeded}")
        })?;
        last_succeeded = succeeded;
        check_queue_stats(&sqlite3(&db, "SELECT * FROM queue_stats")?)?;
        reads += 1;

        for (child, status) in children.iter_mut().zip(statuses.iter_mut()) {
            if status.is_none() {
                *status = child.try_wait()?;
            }
        }
        if statuses.iter().all(Option::is_some) {
            break;
        }
        if started.elapsed() > CHILD_TIMEOUT {
            let mut report = Vec::new();
            for child in &mut children {
                if child.try_wait()?.is_none() {
                    child.kill()?;
                    report.push(child.name.clone());
                }
            }
            return fail(format!(
                "workers {report:?} not done within {CHILD_TIMEOUT:?} ({last_succeeded} of \
                 {WORKER_JOBS} jobs succeeded); killed"
            ));
        }
    }

    // Every completion, by job.
    let mut done: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut per_worker = Vec::new();
    for (child, status) in children.iter_mut().zip(&statuses) {
        let (lines, stderr) = child.drain();
        let mut count = 0;
        for line in &lines {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["READY"] => {}
                ["DONE", id, worker] => {
                    let id: i64 = id.parse().map_err(|e| format!("line {line:?}: {e}"))?;
                    done.entry(id).or_default().push((*worker).to_owned());
                    count += 1;
                }
                _ => errors.push(format!("{}: {line}", child.name)),
            }
        }
        per_worker.push(format!("{} {count}", child.name));
        let success = status.is_some_and(|s| s.success());
        ensure(success, || {
            format!(
                "worker {} exited with {status:?}; stderr: {stderr}",
                child.name
            )
        })?;
    }
    let contention: Vec<&String> = errors
        .iter()
        .filter(|e| {
            let e = e.to_ascii_lowercase();
            e.contains("locked") || e.contains("busy")
        })
        .collect();
    ensure(contention.is_empty(), || {
        format!(
            "workers met lock contention errors ({} of {} errors): {:?}",
            contention.len(),
            errors.len(),
            contention.iter().take(10).collect::<Vec<_>>()
        )
    })?;
    ensure(errors.is_empty(), || {
        format!(
            "workers met {} errors: {:?}",
            errors.len(),
            errors.iter().take(10).collect::<Vec<_>>()
        )
    })?;
    let duplicates: Vec<(&i64, &Vec<String>)> = done.iter().filter(|(_, w)| w.len() > 1).collect();
    ensure(duplicates.is_empty(), || {
        format!(
            "{} jobs were completed more than once: {:?}",
            duplicates.len(),
            duplicates.iter().take(10).collect::<Vec<_>>()
        )
    })?;
    let completed: BTreeSet<i64> = done.keys().copied().collect();
    let missing: Vec<&i64> = expected.difference(&completed).take(10).collect();
    let unknown: Vec<&i64> = completed.difference(&expected).take(10).collect();
    ensure(missing.is_empty() && unknown.is_empty(), || {
        format!(
            "{} jobs completed; never completed: {missing:?}…; not ours: {unknown:?}",
            completed.len()
        )
    })?;

    for id in &expected {
        let job = store.get(*id).map_err(|e| format!("job {id}: {e}"))?;
        ensure(job.state == State::Succeeded, || {
            format!("job {id} is {} at the end", job.state)
        })?;
    }
    check_store(&store, "after both workers")?;
    integrity_check(&db)?;
    Ok(format!(
        "{reads} sqlite3 reads (2 queries each) during the run; completions by worker: {}",
        per_worker.join(", ")
    ))
}

/// One `SELECT * FROM queue_stats` as sqlite3 prints it (`tenant|queue|state|jobs|oldest`):
/// a consistent snapshot holds all the jobs, in live or succeeded states only.
fn check_queue_stats(out: &str) -> TestResult {
    let mut total = 0;
    for row in out.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = row.split('|').collect();
        let [tenant, queue, state, jobs, _oldest] = fields.as_slice() else {
            return fail(format!("queue_stats row {row:?}"));
        };
        ensure(
            *tenant == "default"
                && *queue == "default"
                && ["queued", "running", "succeeded"].contains(state),
            || format!("queue_stats row {row:?}"),
        )?;
        total += jobs
            .parse::<i64>()
            .map_err(|e| format!("queue_stats row {row:?}: {e}"))?;
    }
    ensure(total == WORKER_JOBS, || {
        format!("queue_stats counts {total} jobs, not {WORKER_JOBS}: {out:?}")
    })
}

/// The worker child: claims and completes until the queue stays empty.
fn child_worker() {
    let db = PathBuf::from(env_var(DB_ENV));
    let name = env_var(WORKER_ENV);
    let threads: u64 = env_var(THREADS_ENV).parse().unwrap_or(2);
    let store = match Store::open(&db) {
        Ok(store) => store,
        Err(err) => {
            say(&format!("ERR open: {err}"));
            std::process::exit(3);
        }
    };
    say("READY");
    let handles: Vec<JoinHandle<()>> = (0..threads)
        .map(|t| {
            let store = store.clone();
            let name = name.clone();
            thread::spawn(move || worker_loop(&store, &name, t))
        })
        .collect();
    for handle in handles {
        if handle.join().is_err() {
            say(&format!("ERR {name}: a worker thread panicked"));
        }
    }
}

fn worker_loop(store: &Store, name: &str, thread_no: u64) {
    let mut rng = Rng::new(time_seed() ^ thread_no);
    let worker = format!("{name}-{thread_no}");
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let mut empty_in_a_row = 0;
    let mut errors = 0;
    while empty_in_a_row < 5 && errors < 50 && Instant::now() < deadline {
        let request = ClaimRequest {
            worker: worker.clone(),
            queues: vec!["default".into()],
            max: u32::try_from(rng.between(1, 10)).unwrap_or(1),
            lease_ms: 60_000,
        };
        let jobs = match store.claim(&request) {
            Ok(jobs) => jobs,
            Err(err) => {
                errors += 1;
                say(&format!("ERR {worker} claim: {err}"));
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        if jobs.is_empty() {
            empty_in_a_row += 1;
            thread::sleep(Duration::from_millis(20));
            continue;
        }
        empty_in_a_row = 0;
        for job in jobs {
            let Some(lease) = job.lease() else {
                errors += 1;
                say(&format!(
                    "ERR {worker}: job {} came without a lease",
                    job.id
                ));
                continue;
            };
            match store.complete(job.id, &lease, json!({ "worker": name })) {
                Ok(_) => say(&format!("DONE {} {name}", job.id)),
                Err(err) => {
                    errors += 1;
                    say(&format!("ERR {worker} complete {}: {err}", job.id));
                }
            }
        }
    }
}
