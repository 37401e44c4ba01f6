//! Scenarios 5 and 6: the real `jobstore serve` daemon on loopback against a bare hyper server
//! answering a fixed body (the HTTP limit on this machine), with N concurrent keep-alive
//! clients of our own (tokio, one connection each, 127.0.0.1 only, bounded request counts);
//! and the daemon's memory (VmRSS/VmHWM) idle, while a 150 MB CSV batch streams into
//! `PUT /v1/jobs/{id}/data`, and under load.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};

use crate::common::{Level, Record, Result, emit_settings, fail, micros_since};

/// How scenarios 5 and 6 run.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// The `jobstore` binary.
    pub daemon: PathBuf,
    /// This benchmark's own binary (it serves the bare hyper server).
    pub bench: PathBuf,
    /// Concurrent clients of each measurement.
    pub clients: Vec<u64>,
    /// Requests per measurement (claim/complete: pairs).
    pub requests: u64,
    /// A measurement stops after this long.
    pub cap: Duration,
    /// Bytes of the streamed CSV batch.
    pub upload_bytes: u64,
}

/// The fixed answer of the bare server: about the size of a created job's document.
const FIXED_BODY: &str = concat!(
    "{\"id\":1,\"tenant\":\"default\",\"kind\":\"bench\",\"queue\":\"default\",\"name\":\"\",",
    "\"source\":\"\",\"target\":\"\",\"created_by\":\"\",\"dialect\":\"native\",\"state\":\"queued\",",
    "\"priority\":0,\"run_at\":1700000000000,\"attempt\":0,\"max_attempts\":3,\"lease_owner\":null,",
    "\"lease_token\":null,\"lease_expires_at\":null,\"heartbeat_at\":null,",
    "\"cancel_requested_at\":null,\"unique_key\":null,\"definition_id\":null,\"restart_of\":null,",
    "\"restartable\":true,\"payload\":{\"n\":1},\"result\":null,\"error\":null,\"progress\":{},",
    "\"phase\":null,\"created_at\":1700000000000,\"updated_at\":1700000000000,",
    "\"started_at\":null,\"finished_at\":null}"
);

/// The body every create sends.
const CREATE_BODY: &str = "{\"kind\":\"bench\",\"payload\":{\"n\":1}}";

/// `jobstore-bench bare-server`: a bare hyper 1 server on 127.0.0.1 that reads each request
/// and answers `201` with a fixed JSON body. Prints `listening on http://ADDR` on stderr and
/// serves until killed.
pub fn bare_server() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        eprintln!("listening on http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|request: Request<Incoming>| async move {
                    let _ = request.into_body().collect().await;
                    let mut response =
                        Response::new(Full::new(Bytes::from_static(FIXED_BODY.as_bytes())));
                    *response.status_mut() = StatusCode::CREATED;
                    response.headers_mut().insert(
                        "content-type",
                        hyper::header::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// A server process of ours; killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts `command` and waits for its `listening on http://ADDR` line on stderr; the rest
    /// of its stderr is passed through.
    fn start(mut command: Command) -> Result<Server> {
        let mut child = command
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let stderr = child.stderr.take().ok_or_else(|| fail("no stderr"))?;
        let mut lines = BufReader::new(stderr).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let Some(line) = lines.next() else {
                return Err(fail("server exited before listening"));
            };
            let line = line?;
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.trim().parse::<SocketAddr>()?;
            }
            if Instant::now() > deadline {
                return Err(fail("server did not listen within 30 s"));
            }
        };
        std::thread::spawn(move || {
            for line in lines.map_while(std::result::Result::ok) {
                if !line.contains(" INFO ") {
                    eprintln!("    [server] {line}");
                }
            }
        });
        Ok(Server { child, addr })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident and peak resident memory of a process, in MB (from `/proc/PID/status`).
fn memory(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

/// Samples a process's VmRSS every 5 ms until stopped; answers the highest.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<f64>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peak: f64 = 0.0;
            while !flag.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = memory(pid) {
                    peak = peak.max(rss);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        });
        Sampler { stop, handle }
    }

    fn peak(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0.0)
    }
}

fn mb(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Runs scenarios 5 and 6 for each durability level.
pub fn run(dir: &Path, levels: &[Level], config: &HttpConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bare = Server::start({
        let mut command = Command::new(&config.bench);
        command.arg("bare-server");
        command
    })?;
    let mut bare_done = false;
    for &level in levels {
        let db = crate::common::fresh_db(dir, &format!("http-{}", level.as_str()))?;
        let conf = dir.join(format!("http-{}.toml", level.as_str()));
        std::fs::write(&conf, format!("durability = \"{}\"\n", level.as_str()))?;
        let daemon = Server::start({
            let mut command = Command::new(&config.daemon);
            command
                .arg("serve")
                .arg("--db")
                .arg(&db)
                .arg("--listen")
                .arg("127.0.0.1:0")
                .arg("--config")
                .arg(&conf);
            command
        })?;
        if level == Level::Full {
            runtime.block_on(memory_scenario(&daemon, config))?;
        }
        for &clients in &config.clients {
            if !bare_done {
                let (n, elapsed, mut latencies) = runtime.block_on(load(
                    &[bare.addr],
                    clients,
                    config.requests,
                    config.cap,
                    Workload::Create,
                ))?;
                Record::new("http", "bare hyper", "POST, fixed 201 body")
                    .set("clients", clients)
                    .timed(n, elapsed)
                    .latencies(&mut latencies)
                    .emit();
            }
            let sampler = Sampler::start(daemon.pid());
            let (writes_before, commits_before) = runtime.block_on(writer_counts(daemon.addr))?;
            let (n, elapsed, mut latencies) = runtime.block_on(load(
                &[daemon.addr],
                clients,
                config.requests,
                config.cap,
                Workload::Create,
            ))?;
            let peak = sampler.peak();
            let (writes, commits) = runtime.block_on(writer_counts(daemon.addr))?;
            let per_commit = (writes - writes_before) / (commits - commits_before).max(1.0);
            Record::new("http", "jobstore", "POST /v1/jobs (create)")
                .set("durability", level.as_str())
                .set("clients", clients)
                .timed(n, elapsed)
                .latencies(&mut latencies)
                .set("rss_peak_mb", mb(peak))
                .set("writes_per_commit", (per_commit * 10.0).round() / 10.0)
                .emit();
            let (n, elapsed, mut latencies) = runtime.block_on(load(
                &[daemon.addr],
                clients,
                n,
                config.cap,
                Workload::ClaimComplete,
            ))?;
            Record::new(
                "http",
                "jobstore",
                "POST /v1/claim + POST /v1/jobs/{id}/complete",
            )
            .set("durability", level.as_str())
            .set("clients", clients)
            .timed(n, elapsed)
            .latencies(&mut latencies)
            .emit();
        }
        bare_done = true;
        if level == Level::Full {
            let (rss, hwm) = memory(daemon.pid())?;
            Record::new("memory", "jobstore", "after the HTTP load")
                .set("rss_mb", mb(rss))
                .set("hwm_mb", mb(hwm))
                .emit();
        }
        drop(daemon);
        emit_settings(
            "jobstore daemon",
            &db,
            level.as_str(),
            "the store's own setting (config file)",
        )?;
        crate::common::remove_db(&db);
    }
    Ok(())
}

/// How scenario 9 (one daemon against two on one PostgreSQL database) runs.
#[derive(Debug, Clone)]
pub struct PgHttpConfig {
    /// The `jobstore` binary.
    pub daemon: PathBuf,
    /// The server, `postgres://user@host:port` (no database).
    pub base: String,
    /// Concurrent clients of each measurement, spread evenly over the daemons.
    pub clients: Vec<u64>,
    /// Requests per measurement (claim/complete: pairs).
    pub requests: u64,
    /// A measurement stops after this long.
    pub cap: Duration,
}

/// Scenario 9: the real `jobstore serve --db postgres://…`, one daemon and then two on the
/// same (fresh) database, each on its own port; the clients are spread over the daemons.
/// Creates, then claim + complete pairs draining what was created.
pub fn run_pg(config: &PgHttpConfig) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let name = "bench_http";
    for &clients in &config.clients {
        for daemons in [1_u64, 2] {
            let url = crate::pg::fresh_database(&config.base, name)?;
            let mut servers = Vec::new();
            for _ in 0..daemons {
                servers.push(Server::start({
                    let mut command = Command::new(&config.daemon);
                    command
                        .arg("serve")
                        .arg("--db")
                        .arg(&url)
                        .arg("--listen")
                        .arg("127.0.0.1:0");
                    command
                })?);
            }
            crate::pg::checkpoint(&config.base)?;
            let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.addr).collect();
            let case = |what: &str| {
                if daemons == 1 {
                    format!("{what}, 1 daemon")
                } else {
                    format!("{what}, {daemons} daemons")
                }
            };
            let (n, elapsed, mut latencies) = runtime.block_on(load(
                &addrs,
                clients,
                config.requests,
                config.cap,
                Workload::Create,
            ))?;
            Record::new("pg_http", "jobstore", &case("POST /v1/jobs (create)"))
                .set("workload", "create")
                .set("daemons", daemons)
                .set("clients", clients)
                .timed(n, elapsed)
                .latencies(&mut latencies)
                .emit();
            let (n, elapsed, mut latencies) = runtime.block_on(load(
                &addrs,
                clients,
                n,
                config.cap,
                Workload::ClaimComplete,
            ))?;
            Record::new(
                "pg_http",
                "jobstore",
                &case("POST /v1/claim + POST /v1/jobs/{id}/complete"),
            )
            .set("workload", "claim_complete")
            .set("daemons", daemons)
            .set("clients", clients)
            .timed(n, elapsed)
            .latencies(&mut latencies)
            .emit();
            drop(servers);
            crate::pg::drop_database(&config.base, name)?;
        }
    }
    Ok(())
}

/// Scenario 6: idle, then a streamed upload of `config.upload_bytes`.
async fn memory_scenario(daemon: &Server, config: &HttpConfig) -> Result<()> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, idle_hwm) = memory(daemon.pid())?;
    Record::new("memory", "jobstore", "idle (1 s after start)")
        .set("rss_mb", mb(idle_rss))
        .set("hwm_mb", mb(idle_hwm))
        .emit();

    let mut sender = connect(daemon.addr).await?;
    let created = send(
        &mut sender,
        "POST",
        "/v1/jobs",
        "{\"kind\":\"x\",\"upload\":true}",
    )
    .await?;
    let id = created
        .get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| fail(format!("create answered {created}")))?;

    let (mut body_tx, body) = http_body_util::channel::Channel::<Bytes, Infallible>::new(4);
    let stream = tokio::net::TcpStream::connect(daemon.addr).await?;
    let (mut upload, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = Request::put(format!("/v1/jobs/{id}/data"))
        .header("host", "127.0.0.1")
        .header("content-type", "text/csv")
        .body(body)?;
    let sampler = Sampler::start(daemon.pid());
    let start = Instant::now();
    let total = config.upload_bytes;
    let feeder = tokio::spawn(async move {
        let chunk = csv_chunk(64 * 1024);
        let mut sent = 0_u64;
        while sent < total {
            let size = usize::try_from((total - sent).min(chunk.len() as u64)).unwrap_or(0);
            if body_tx.send_data(chunk.slice(..size)).await.is_err() {
                break;
            }
            sent += size as u64;
        }
        sent
    });
    let response = upload.send_request(request).await?;
    let status = response.status();
    let answer = response.into_body().collect().await?.to_bytes();
    let sent = feeder.await?;
    let elapsed = start.elapsed();
    let peak = sampler.peak();
    let (rss_after, hwm_after) = memory(daemon.pid())?;
    if status != StatusCode::CREATED {
        return Err(fail(format!(
            "upload answered {status}: {}",
            String::from_utf8_lossy(&answer)
        )));
    }
    Record::new(
        "memory",
        "jobstore",
        "while a 150 MB CSV batch streams into PUT /v1/jobs/{id}/data",
    )
    .set("upload_mb", mb(sent as f64 / 1e6))
    .set(
        "upload_mb_per_s",
        mb(sent as f64 / 1e6 / elapsed.as_secs_f64()),
    )
    .set("rss_before_mb", mb(idle_rss))
    .set("rss_peak_mb", mb(peak))
    .set("rss_after_mb", mb(rss_after))
    .set("hwm_after_mb", mb(hwm_after))
    .set("growth_mb", mb(peak.max(hwm_after) - idle_rss))
    .emit();
    Ok(())
}

/// CSV rows filling about `bytes`.
fn csv_chunk(bytes: usize) -> Bytes {
    let mut text = String::with_capacity(bytes + 128);
    let mut row = 0_u64;
    while text.len() < bytes {
        text.push_str(&format!(
            "{row},customer-{},{}@example.com,{}.{:02},2026-01-{:02}\n",
            row % 9973,
            row % 7919,
            row % 100_000,
            row % 100,
            row % 28 + 1
        ));
        row += 1;
    }
    text.truncate(bytes);
    Bytes::from(text)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// The daemon's writer counters from its `/metrics`: (writes, commits).
async fn writer_counts(addr: SocketAddr) -> Result<(f64, f64)> {
    let mut sender = connect(addr).await?;
    let body = exchange(&mut sender, "GET", "/metrics", "").await?;
    let text = String::from_utf8(body.to_vec())?;
    let counter = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
            .ok_or_else(|| fail(format!("/metrics has no {name}")))
    };
    Ok((
        counter("jobstore_writer_writes_total ")?,
        counter("jobstore_writer_commits_total ")?,
    ))
}

/// Sends one JSON request and answers the JSON answer (or an error for a non-2xx status).
async fn send(sender: &mut Sender, method: &str, path: &str, body: &str) -> Result<Value> {
    let bytes = exchange(sender, method, path, body).await?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// Sends one request with a JSON body (empty for a GET) and answers the answer's body (or an
/// error for a non-2xx status).
async fn exchange(sender: &mut Sender, method: &str, path: &str, body: &str) -> Result<Bytes> {
    sender.ready().await?;
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(fail(format!(
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )));
    }
    Ok(bytes)
}

#[derive(Debug, Clone, Copy)]
enum Workload {
    /// `POST /v1/jobs`; one count per request.
    Create,
    /// `POST /v1/claim` then `POST /v1/jobs/{id}/complete`; one count per pair.
    ClaimComplete,
}

/// `clients` connections (client i to `addrs[i % addrs.len()]`) send requests one after
/// another until `total` are done or `cap` passed. Answers the count, the time, and each
/// request's latency (µs).
async fn load(
    addrs: &[SocketAddr],
    clients: u64,
    total: u64,
    cap: Duration,
    workload: Workload,
) -> Result<(u64, Duration, Vec<u64>)> {
    let issued = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for client in 0..clients {
        let addr = addrs[usize::try_from(client)? % addrs.len().max(1)];
        senders.push(connect(addr).await?);
    }
    let start = Instant::now();
    let deadline = start + cap;
    let mut tasks = Vec::new();
    for (client, mut sender) in senders.into_iter().enumerate() {
        let issued = Arc::clone(&issued);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut done = 0_u64;
            let worker = format!("client-{client}");
            let claim = json!({ "worker": worker, "queues": ["default"], "max": 1 }).to_string();
            while Instant::now() < deadline && issued.fetch_add(1, Ordering::Relaxed) < total {
                match workload {
                    Workload::Create => {
                        let t = Instant::now();
                        send(&mut sender, "POST", "/v1/jobs", CREATE_BODY).await?;
                        latencies.push(micros_since(t));
                    }
                    Workload::ClaimComplete => {
                        let t = Instant::now();
                        let answer = send(&mut sender, "POST", "/v1/claim", &claim).await?;
                        latencies.push(micros_since(t));
                        let Some(job) = answer.get("jobs").and_then(|j| j.get(0)) else {
                            break;
                        };
                        let id = job.get("id").and_then(Value::as_i64).ok_or_else(|| fail("claimed job without id"))?;
                        let token = job
                            .get("lease_token")
                            .and_then(Value::as_i64)
                            .ok_or_else(|| fail("claimed job without lease_token"))?;
                        let body = json!({ "worker": worker, "lease_token": token, "result": {"ok": true} }).to_string();
                        let t = Instant::now();
                        send(&mut sender, "POST", &format!("/v1/jobs/{id}/complete"), &body).await?;
                        latencies.push(micros_since(t));
                    }
                }
                done += 1;
            }
            Ok::<_, crate::common::BoxError>((done, latencies))
        }));
    }
    let mut done = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (n, mut l) = task.await??;
        done += n;
        latencies.append(&mut l);
    }
    Ok((done, start.elapsed(), latencies))
}
