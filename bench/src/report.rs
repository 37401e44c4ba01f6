//! The report: reads every JSON line of a run (the benchmark's records and the peers' one line
//! each), writes `BENCHMARKS.md` with the machine, the command, the settings each store ran
//! with, the figures and the ratios, and draws `bench/drain.svg` (drain throughput against
//! workers for every store) by hand.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::Value;

use crate::common::{Result, fail};

/// Where the report reads and writes.
#[derive(Debug)]
pub struct ReportConfig {
    /// The JSON lines of the run.
    pub results: PathBuf,
    /// `BENCHMARKS.md`.
    pub out: PathBuf,
    /// The chart.
    pub svg: PathBuf,
    /// The exact command that ran the benchmark.
    pub command: String,
    /// Whether this was a `--quick` run (scaled-down counts).
    pub quick: bool,
    /// Seconds the release builds took.
    pub build_secs: u64,
    /// Seconds the scenarios took.
    pub run_secs: u64,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages when the scenarios began and ended
    /// (others' work on a shared machine shows there).
    pub load: Option<(String, String)>,
    /// `perf report` of the profiled enqueue case (top symbols by self time), when the run
    /// could profile.
    pub profile: Option<PathBuf>,
}

/// The stores of the drain chart and tables, in order, with their colours.
const DRAIN_STORES: [(&str, &str); 8] = [
    ("jobstore (complete_many)", "#9467bd"),
    ("raw (grouped as jobstore, complete_many)", "#c5b0d5"),
    ("jobstore", "#1f77b4"),
    ("jobstore Worker", "#17becf"),
    ("raw (grouped as jobstore)", "#2ca02c"),
    ("raw (one transaction per call)", "#98df8a"),
    ("effectum", "#d62728"),
    ("apalis-sqlite", "#ff7f0e"),
];

/// One line of the chart: the store, its colour, and (workers, jobs/s) points.
type Series<'a> = (&'a str, &'a str, Vec<(u64, f64)>);

/// Every record of a run.
pub(crate) struct Run {
    records: Vec<Value>,
}

impl Run {
    fn load(path: &std::path::Path) -> Result<Run> {
        let text = std::fs::read_to_string(path)?;
        let mut records = Vec::new();
        for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
            let value: Value = serde_json::from_str(line)
                .map_err(|err| fail(format!("{}: {err}: {line}", path.display())))?;
            if let Some(results) = value.get("results").and_then(Value::as_array) {
                // A peer's line: its figures, and its settings.
                records.extend(results.iter().cloned());
                let mut settings = value.clone();
                if let Some(map) = settings.as_object_mut() {
                    map.remove("results");
                    map.insert("scenario".into(), "settings".into());
                }
                records.push(settings);
            } else {
                records.push(value);
            }
        }
        Ok(Run { records })
    }

    /// Records of `scenario` matching every `(key, value)` of `filter`.
    pub(crate) fn find(&self, scenario: &str, filter: &[(&str, Value)]) -> Vec<&Value> {
        self.records
            .iter()
            .filter(|r| str_of(r, "scenario") == scenario)
            .filter(|r| filter.iter().all(|(k, v)| r.get(*k) == Some(v)))
            .collect()
    }

    pub(crate) fn one(&self, scenario: &str, filter: &[(&str, Value)]) -> Option<&Value> {
        self.find(scenario, filter).into_iter().next()
    }

    /// The drain rate of `store` at `workers` (peers run at their own settings).
    fn drain_rate(&self, scenario: &str, store: &str, workers: u64, level: &str) -> Option<f64> {
        let mut filter = vec![
            ("store", Value::from(store)),
            ("workers", Value::from(workers)),
        ];
        if !store_is_effectum(store) {
            filter.push(("durability", Value::from(level)));
        }
        self.one(scenario, &filter).and_then(|r| num(r, "rate"))
    }
}

fn store_is_effectum(store: &str) -> bool {
    store == "effectum"
}

pub(crate) fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

pub(crate) fn num(value: &Value, key: &str) -> Option<f64> {
    value.get(key).and_then(Value::as_f64)
}

/// `12,345`.
pub(crate) fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.round());
    let (sign, digits) = digits
        .strip_prefix('-')
        .map_or(("", digits.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

pub(crate) fn rate_cell(record: Option<&Value>) -> String {
    match record.and_then(|r| num(r, "rate")) {
        Some(rate) => {
            let capped = record
                .and_then(|r| r.get("capped"))
                .and_then(Value::as_bool)
                == Some(true);
            let n = record.and_then(|r| num(r, "n")).unwrap_or(0.0);
            if capped {
                format!("{}/s (n={}, capped)", thousands(rate), thousands(n))
            } else {
                format!("{}/s", thousands(rate))
            }
        }
        None => "–".into(),
    }
}

pub(crate) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

pub(crate) fn ratio_cell(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.0}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

pub(crate) fn us(record: Option<&Value>, key: &str) -> String {
    record
        .and_then(|r| num(r, key))
        .map_or_else(|| "–".into(), thousands)
}

pub(crate) fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

/// The most any store could reach for a write target on this machine, measured in the same
/// run: raw SQLite running the same statements, with as many jobs in one commit as the callers
/// allow (a caller waits for its own answer, so N callers put at most N calls in a commit).
struct Ceiling {
    /// The target, as its row in the targets table names it.
    target: String,
    goal: f64,
    /// The ceiling's rate, and the rate the goal is a multiple of.
    rate: Option<f64>,
    against: Option<f64>,
    /// How the ceiling was measured.
    how: &'static str,
}

impl Ceiling {
    fn ratio(&self) -> Option<f64> {
        ratio(self.rate, self.against)
    }

    /// The verdict of the target with this ceiling: a miss whose ceiling falls short of the
    /// goal too is beyond this machine, whatever jobstore does.
    fn verdict(&self, r: Option<f64>) -> String {
        match (r.map(|r| r >= self.goal), self.ratio()) {
            (Some(false), Some(c)) if c < self.goal => {
                format!(
                    "**missed**: beyond this machine (ceiling {})",
                    ratio_cell(Some(c))
                )
            }
            (met, _) => verdict(met).to_owned(),
        }
    }
}

/// The enqueue record of `store` at FULL for `case`, its rate.
fn enqueue_rate(run: &Run, store: &str, case: &str) -> Option<f64> {
    run.one(
        "enqueue",
        &[
            ("store", store.into()),
            ("durability", "full".into()),
            ("case", case.into()),
        ],
    )
    .and_then(|r| num(r, "rate"))
}

/// Writes `BENCHMARKS.md` and the chart, and prints the report.
pub fn write(config: &ReportConfig) -> Result<()> {
    let run = Run::load(&config.results)?;
    let mut md = String::new();
    header(&mut md, config)?;
    settings(&mut md, &run);
    targets(&mut md, &run);
    enqueue(&mut md, &run);
    profile(&mut md, config.profile.as_deref());
    drain(
        &mut md,
        &run,
        "drain",
        "2. Drain: claim + complete with events",
    );
    drain(
        &mut md,
        &run,
        "drain_1m",
        "3. Drain with finished jobs already in the table",
    );
    list(&mut md, &run);
    http(&mut md, &run);
    memory(&mut md, &run);
    crate::report_pg::write(&mut md, &run);
    std::fs::write(&config.out, &md)?;
    std::fs::write(&config.svg, chart(&run, config.quick))?;
    println!("{md}");
    Ok(())
}

fn machine_line(key: &str, value: &str) -> String {
    format!("| {key} | {value} |\n")
}

fn header(md: &mut String, config: &ReportConfig) -> Result<()> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown".into(),
            |kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0),
        );
    let kernel = command_output("uname", &["-sr"]);
    let date = command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    md.push_str("# Benchmarks\n\n");
    if config.quick {
        md.push_str(
            "> **This is a `--quick` run: counts scaled down (see `n` in each table) for a smoke \
             test. Its figures are not the full run's.**\n\n",
        );
    }
    md.push_str(
        "jobstore against raw SQLite doing the same SQL (the limit) and against the peer job \
         queues effectum 0.7 and apalis-sqlite 1.0, all in one run on one machine, on database \
         files in one temporary directory on the same disk; then (section 7) jobstore's \
         PostgreSQL driver against raw PostgreSQL running the driver's statements and against \
         the PostgreSQL job queues pg-boss, graphile-worker and procrastinate, on one \
         throwaway PostgreSQL 15 cluster in the same run, and one daemon against two on one \
         database. Written by `bench/run`; `bench/README.md` says what each scenario \
         measures. Rates are operations per second (jobs, requests or claim+complete pairs); \
         latencies are µs. A case that hit its time cap says so and gives the count it \
         reached.\n\n",
    );
    md.push_str("| machine | |\n|---|---|\n");
    md.push_str(&machine_line("CPU", &cpu));
    md.push_str(&machine_line("cores (`nproc`)", &cores.to_string()));
    md.push_str(&machine_line("memory", &memory));
    md.push_str(&machine_line("kernel", &kernel));
    md.push_str(&machine_line("date", &date));
    md.push_str(&machine_line("command", &format!("`{}`", config.command)));
    md.push_str(&machine_line(
        "time",
        &format!(
            "builds {} s, scenarios {} s",
            config.build_secs, config.run_secs
        ),
    ));
    if let Some((start, end)) = &config.load {
        md.push_str(&machine_line(
            "load average (1, 5, 15 min)",
            &format!("{start} when the scenarios began, {end} when they ended"),
        ));
    }
    md.push_str(
        "\nThe machine has 2 cores shared with other work: clients, servers and stores share \
         them, and figures move ±10–15 % from run to run (more when the load average above \
         is over 2: others' builds were running).\n\n",
    );
    Ok(())
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn settings(md: &mut String, run: &Run) {
    md.push_str("## Settings each store ran with\n\n");
    md.push_str(
        "`journal_mode` is read back from the file after the run (it is kept in the file). \
         `synchronous` is a per-connection setting: a new plain connection on the file only \
         shows SQLite's default, so the level each store's own connections ran with is given \
         beside it, with how it was read.\n\n",
    );
    md.push_str("| store | durability | journal_mode (file) | synchronous as run | synchronous of a new connection | matches jobstore? |\n|---|---|---|---|---|---|\n");
    let mut seen = BTreeSet::new();
    for record in run.find("settings", &[]) {
        let store = str_of(record, "store");
        let as_run = match record.get("synchronous_as_run") {
            Some(Value::Array(levels)) => levels
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join("; "),
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let how = str_of(record, "how");
        let key = format!("{store}|{as_run}");
        if !seen.insert(key) {
            continue;
        }
        let matches = match record.get("matches").and_then(Value::as_bool) {
            Some(false) => "**no** (see below)",
            _ => "yes",
        };
        let durability = if store == "effectum" {
            "store default"
        } else {
            "as run"
        };
        let as_run = if how.is_empty() {
            as_run
        } else {
            format!("{as_run} ({how})")
        };
        let _ = writeln!(
            md,
            "| {store} | {durability} | {} | {as_run} | {} | {matches} |",
            str_of(record, "journal_mode"),
            str_of(record, "synchronous_new_connection"),
        );
    }
    for record in run.find("settings", &[]) {
        let note = str_of(record, "note");
        if !note.is_empty() {
            let _ = writeln!(md, "\n**{}**: {note}", str_of(record, "store"));
        }
    }
    md.push('\n');
}

/// The issue's targets, each with the figures it compares.
fn targets(md: &mut String, run: &Run) {
    md.push_str("## Targets and ratios (FULL durability unless said)\n\n");
    let mut ceilings: Vec<Ceiling> = Vec::new();
    md.push_str("| target | figures | ratio | verdict |\n|---|---|---|---|\n");
    let rate = |scenario: &str, store: &str, w: u64| run.drain_rate(scenario, store, w, "full");
    let plural = |w: u64| if w == 1 { "" } else { "s" };
    for w in [1_u64, 8] {
        // Against raw SQLite: each acknowledgement style against raw doing the same calls.
        for (mine, raw, api) in [
            (
                "jobstore (complete_many)",
                "raw (grouped as jobstore, complete_many)",
                "claim + complete_many",
            ),
            (
                "jobstore",
                "raw (grouped as jobstore)",
                "claim + complete per job",
            ),
        ] {
            let js = rate("drain", mine, w);
            let theirs = rate("drain", raw, w);
            let r = ratio(js, theirs);
            let _ = writeln!(
                md,
                "| drain, {w} worker{}, {api}: jobstore ≥ 0.5× raw SQLite, same calls and batching | {} vs {} | {} | {} |",
                plural(w),
                js.map_or("–".into(), thousands),
                theirs.map_or("–".into(), thousands),
                ratio_cell(r),
                verdict(r.map(|r| r >= 0.5)),
            );
        }
        // Against the peers: each store's own best way of acknowledging (apalis batches its
        // acks, effectum completes per job; jobstore completes a whole claim at once).
        let js = rate("drain", "jobstore (complete_many)", w);
        for (other, goal) in [("effectum", 10.0), ("apalis-sqlite", 10.0)] {
            let theirs = rate("drain", other, w);
            let r = ratio(js, theirs);
            let ceiling = Ceiling {
                target: format!(
                    "drain, {w} worker{}: jobstore (claim + complete_many) ≥ {goal}× {other}",
                    plural(w)
                ),
                goal,
                rate: rate("drain", "raw (grouped as jobstore, complete_many)", w),
                against: theirs,
                how: "raw SQLite, the same claims and completions grouped into commits as \
                      jobstore's writer grouped them (each worker has one call waiting at a time)",
            };
            let _ = writeln!(
                md,
                "| {} | {} vs {} | {} | {} |",
                ceiling.target,
                js.map_or("–".into(), thousands),
                theirs.map_or("–".into(), thousands),
                ratio_cell(r),
                ceiling.verdict(r),
            );
            ceilings.push(ceiling);
        }
        let per_job = rate("drain", "jobstore", w);
        for other in ["effectum", "apalis-sqlite"] {
            let theirs = rate("drain", other, w);
            let _ = writeln!(
                md,
                "| (information) drain, {w} worker{}: jobstore completing per job ÷ {other} | {} vs {} | {} | – |",
                plural(w),
                per_job.map_or("–".into(), thousands),
                theirs.map_or("–".into(), thousands),
                ratio_cell(ratio(per_job, theirs)),
            );
        }
    }
    let e8 = enqueue_rate(run, "jobstore", "8 threads, one job per call");
    let r1 = enqueue_rate(run, "raw", "1 thread, one transaction per job");
    let r = ratio(e8, r1);
    let ceiling = Ceiling {
        target: "enqueue: jobstore from 8 threads ≥ 5× one commit per job (raw, 1 thread)".into(),
        goal: 5.0,
        rate: enqueue_rate(run, "raw", "1 thread, batches of 8"),
        against: r1,
        how: "raw SQLite committing 8 jobs at a time from one thread, no hand-over: 8 \
              callers each waiting for their own job put at most 8 in a commit",
    };
    let _ = writeln!(
        md,
        "| {} | {} vs {} | {} | {} |",
        ceiling.target,
        e8.map_or("–".into(), thousands),
        r1.map_or("–".into(), thousands),
        ratio_cell(r),
        ceiling.verdict(r),
    );
    ceilings.push(ceiling);
    let j1 = enqueue_rate(run, "jobstore", "1 thread, one job per call");
    let _ = writeln!(
        md,
        "| (information) enqueue: jobstore from 8 threads ÷ jobstore from 1 thread (one commit per job) | {} vs {} | {} | – |",
        e8.map_or("–".into(), thousands),
        j1.map_or("–".into(), thousands),
        ratio_cell(ratio(e8, j1)),
    );
    // The goals of HTTP create: one client against one commit per job in raw SQLite (a lone
    // client waits for its own fsync, which is the limit), more clients against the bare
    // hyper server in the same run (the HTTP limit of this machine).
    for clients in clients_of(run) {
        let create = run
            .one(
                "http",
                &[
                    ("store", "jobstore".into()),
                    ("durability", "full".into()),
                    ("clients", clients.into()),
                    ("case", "POST /v1/jobs (create)".into()),
                ],
            )
            .and_then(|r| num(r, "rate"));
        let bare = run
            .one(
                "http",
                &[("store", "bare hyper".into()), ("clients", clients.into())],
            )
            .and_then(|r| num(r, "rate"));
        let (against, theirs, goal) = match clients {
            1 => ("raw SQLite, one commit per job (1 thread)", r1, 0.9),
            2..=16 => ("the bare hyper server", bare, 0.4),
            _ => ("the bare hyper server", bare, 0.5),
        };
        let r = ratio(create, theirs);
        // One client waits for a commit and a round trip in turn; N clients put at most N
        // creates in one commit.
        let (ceiling_rate, how) = if clients == 1 {
            (
                r1.zip(bare)
                    .map(|(raw, bare)| 1.0 / (1.0 / raw + 1.0 / bare)),
                "raw SQLite's commit of one job, then the bare hyper server's round trip \
                 for 1 client, one after the other (a lone client waits for both)",
            )
        } else {
            (
                enqueue_rate(run, "raw", &format!("1 thread, batches of {clients}")),
                "raw SQLite committing as many jobs at a time as there are clients, from \
                 one thread, no HTTP at all (each client waits for its own create)",
            )
        };
        let ceiling = Ceiling {
            target: format!(
                "HTTP create, {clients} client{}: ≥ {goal}× {against}",
                if clients == 1 { "" } else { "s" },
            ),
            goal,
            rate: ceiling_rate,
            against: theirs,
            how,
        };
        let _ = writeln!(
            md,
            "| {} | {} vs {} req/s | {} | {} |",
            ceiling.target,
            create.map_or("–".into(), thousands),
            theirs.map_or("–".into(), thousands),
            ratio_cell(r),
            ceiling.verdict(r),
        );
        ceilings.push(ceiling);
    }
    let lists = run.find("list", &[("store", "jobstore".into())]);
    if !lists.is_empty() {
        let worst = |page: &str| {
            lists
                .iter()
                .filter(|r| str_of(r, "page") == page)
                .filter_map(|r| num(r, "p99_us").map(|p| (p, str_of(r, "case").to_owned())))
                .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a })
        };
        // A first or keyset page within 5 ms; a page 10,000 pages deep by page number (the
        // vendor APIs' offsets) within 50 ms.
        let limit_us = |page: &str| {
            if page == "deep offset" {
                50_000.0
            } else {
                5_000.0
            }
        };
        let over = |page: &str| {
            lists
                .iter()
                .filter(|r| {
                    str_of(r, "page") == page && num(r, "p99_us").unwrap_or(0.0) > limit_us(page)
                })
                .count()
        };
        let count = |page: &str| lists.iter().filter(|r| str_of(r, "page") == page).count();
        let matches = lists.first().and_then(|r| num(r, "matches")).unwrap_or(0.0);
        for (page, what) in [
            ("first", "first page"),
            ("deep keyset", "deep keyset page"),
            (
                "deep offset",
                "page 10,000 pages deep by page number (vendor lists)",
            ),
        ] {
            let (p99, case) = worst(page);
            let limit = limit_us(page);
            let _ = writeln!(
                md,
                "| list at {} jobs, {what}: p99 ≤ {} ms | worst p99 {} µs ({case}); {} of {} cases over {} ms | – | {} |",
                thousands(matches),
                limit / 1000.0,
                thousands(p99),
                over(page),
                count(page),
                limit / 1000.0,
                verdict(Some(p99 <= limit)),
            );
        }
    }
    let queue_pages: Vec<&Value> = lists
        .iter()
        .copied()
        .filter(|r| str_of(r, "filter").starts_with("queue") && str_of(r, "page") != "deep offset")
        .collect();
    if !queue_pages.is_empty() {
        let (p99, case) = queue_pages
            .iter()
            .filter_map(|r| {
                num(r, "p99_us").map(|p| {
                    (
                        p,
                        format!("{}, {} page", str_of(r, "case"), str_of(r, "page")),
                    )
                })
            })
            .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a });
        let _ = writeln!(
            md,
            "| list with a queue filter, first and keyset pages: p99 ≤ 5 ms | worst p99 {} µs ({case}) | – | {} |",
            thousands(p99),
            verdict(Some(p99 <= 5000.0)),
        );
    }
    let stats = |store: &str| run.one("stats", &[("store", store.into())]);
    if let Some(kept) = stats("jobstore") {
        let p99 = num(kept, "p99_us").unwrap_or(f64::MAX);
        let _ = writeln!(
            md,
            "| stats at {} jobs: p99 ≤ 5 ms | p99 {} µs (counting the jobs instead: p99 {} µs) | – | {} |",
            thousands(num(kept, "jobs").unwrap_or(0.0)),
            thousands(p99),
            stats("raw count")
                .and_then(|r| num(r, "p99_us"))
                .map_or("–".into(), thousands),
            verdict(Some(p99 <= 5000.0)),
        );
    }
    if let Some(idle) = run.one("memory", &[("case", "idle (1 s after start)".into())]) {
        let rss = num(idle, "rss_mb").unwrap_or(0.0);
        let _ = writeln!(
            md,
            "| daemon RSS idle ≤ 30 MB | {rss:.1} MB | – | {} |",
            verdict(Some(rss <= 30.0))
        );
    }
    if let Some(upload) = run
        .find("memory", &[])
        .into_iter()
        .find(|r| num(r, "growth_mb").is_some())
    {
        let growth = num(upload, "growth_mb").unwrap_or(0.0);
        let _ = writeln!(
            md,
            "| the 150 MB upload grows RSS by < 20 MB | +{growth:.1} MB (peak {:.1} MB) | – | {} |",
            num(upload, "rss_peak_mb").unwrap_or(0.0),
            verdict(Some(growth < 20.0)),
        );
    }
    crate::report_pg::targets(md, run);
    md.push('\n');
    write_ceilings(md, &ceilings);
}

/// What the write targets can reach on this machine at most, beside their goals.
fn write_ceilings(md: &mut String, ceilings: &[Ceiling]) {
    if ceilings.is_empty() {
        return;
    }
    md.push_str(
        "### The most the write targets can reach here\n\n\
         Each write target against the ceiling measured in the same run: raw SQLite running \
         jobstore's statements on the same schema, with as many jobs in one commit as the \
         callers allow, and nothing else. A caller is answered only after the commit that \
         holds its write, so N callers waiting each for their own answer put at most N writes \
         in one commit; no store with that guarantee, these statements and this disk's fsync \
         can pass the ceiling. A target whose ceiling is short of its goal is marked beyond \
         this machine.\n\n\
         | target | goal | ceiling | ceiling's ratio | how the ceiling was measured |\n\
         |---|---|---|---|---|\n",
    );
    for c in ceilings {
        let _ = writeln!(
            md,
            "| {} | {}× | {} | {} | {} |",
            c.target,
            c.goal,
            c.rate.map_or("–".into(), |r| format!("{}/s", thousands(r))),
            ratio_cell(c.ratio()),
            c.how,
        );
    }
    md.push('\n');
}

fn clients_of(run: &Run) -> Vec<u64> {
    let set: BTreeSet<u64> = run
        .find("http", &[])
        .iter()
        .filter_map(|r| r.get("clients").and_then(Value::as_u64))
        .collect();
    set.into_iter().collect()
}

fn enqueue(md: &mut String, run: &Run) {
    let records = run.find("enqueue", &[]);
    if records.is_empty() {
        return;
    }
    md.push_str("## 1. Enqueue\n\n");
    md.push_str(
        "One job per call from 1 and 8 threads (effectum and apalis: tokio tasks), and in \
         batches. jobstore's writer commits the calls waiting together (group commit); raw \
         SQLite commits each call itself, each thread on its own connection.\n\n",
    );
    md.push_str("| case | durability | jobstore | raw SQLite | effectum | apalis-sqlite | jobstore ÷ raw | jobstore ÷ effectum | jobstore ÷ apalis |\n|---|---|---|---|---|---|---|---|---|\n");
    for level in ["full", "normal"] {
        let batches: BTreeSet<u64> = records
            .iter()
            .filter_map(|r| r.get("batch").and_then(Value::as_u64))
            .collect();
        let cases = [(1_u64, None), (8, None)]
            .into_iter()
            .chain(batches.iter().map(|&b| (1, Some(b))));
        for (threads, batch) in cases {
            let pick = |store: &str| {
                records.iter().copied().find(|r| {
                    str_of(r, "store") == store
                        && (store == "effectum" || str_of(r, "durability") == level)
                        && r.get("threads").and_then(Value::as_u64) == Some(threads)
                        && r.get("batch").and_then(Value::as_u64) == batch
                })
            };
            let js = pick("jobstore");
            if js.is_none() {
                continue;
            }
            let raw = pick("raw");
            let eff = pick("effectum");
            let apa = pick("apalis-sqlite");
            let case = match batch {
                Some(b) => format!("batches of {b}"),
                None if threads == 1 => "1 thread, one job per call".into(),
                None => format!("{threads} threads, one job per call"),
            };
            let extra = js
                .and_then(|r| num(r, "writes_per_commit"))
                .map_or(String::new(), |w| format!(" ({w} per commit)"));
            let rate = |r: Option<&Value>| r.and_then(|r| num(r, "rate"));
            let _ = writeln!(
                md,
                "| {case} | {level} | {}{extra} | {} | {} | {} | {} | {} | {} |",
                rate_cell(js),
                rate_cell(raw),
                rate_cell(eff),
                rate_cell(apa),
                ratio_cell(ratio(rate(js), rate(raw))),
                ratio_cell(ratio(rate(js), rate(eff))),
                ratio_cell(ratio(rate(js), rate(apa))),
            );
        }
    }
    md.push_str(
        "\neffectum runs at its own settings at both levels (it cannot be configured).\n\n",
    );
}

fn drain(md: &mut String, run: &Run, scenario: &str, title: &str) {
    let records = run.find(scenario, &[]);
    if records.is_empty() {
        return;
    }
    let _ = writeln!(md, "## {title}\n");
    if scenario == "drain" {
        md.push_str(
            "Each case enqueues N jobs (not timed) into a fresh file, then N workers claim and \
             complete them. jobstore runs from N threads through `Store::claim` (`max` = the \
             claim batch) and either `Store::complete_many` once per claim (one call \
             acknowledges the whole claim) or `Store::complete` once per job, and through its \
             embedded `Worker` (concurrency N, each thread claiming up to the claim batch at \
             once; its completer thread acknowledges every success waiting in one \
             `complete_many` while the last commits). Raw SQLite runs the same statements \
             (`UPDATE … RETURNING` claim, `UPDATE … RETURNING` complete under the lease, an \
             event row per transition) on one connection, grouped into transactions of the size \
             jobstore's writer reached in the same case (same statements, same number of \
             commits, no framework) — for each way of acknowledging — and, for the per-job \
             calls, once with one transaction per call from N threads. effectum and \
             apalis-sqlite run one worker each with N concurrent job slots, their default \
             settings otherwise (apalis batches its acknowledgements). Neither peer writes a \
             history row per transition.\n\n",
        );
    } else {
        md.push_str(
            "The same drain on a copy of the prefilled file: `finished before` finished jobs \
             already in the table (each case adds its own). Peers get the same number of \
             finished jobs written into their own tables.\n\n",
        );
    }
    let levels: Vec<&str> = ["full", "normal"]
        .into_iter()
        .filter(|level| records.iter().any(|r| str_of(r, "durability") == *level))
        .collect();
    for level in &levels {
        let _ = writeln!(
            md,
            "**durability {level}** (effectum always runs at its own settings, rollback journal; apalis-sqlite at full only)\n"
        );
        md.push_str("| workers | jobstore, complete_many | raw, grouped as it | jobstore, complete per job | raw, grouped as it | raw, one txn per call | jobstore Worker | effectum | apalis-sqlite | complete_many ÷ raw | per job ÷ raw | complete_many ÷ effectum | complete_many ÷ apalis |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let workers: BTreeSet<u64> = records
            .iter()
            .filter_map(|r| r.get("workers").and_then(Value::as_u64))
            .collect();
        for w in workers {
            let pick = |store: &str| {
                records.iter().copied().find(|r| {
                    str_of(r, "store") == store
                        && r.get("workers").and_then(Value::as_u64) == Some(w)
                        && (store == "effectum" || str_of(r, "durability") == *level)
                })
            };
            let js = pick("jobstore");
            let many = pick("jobstore (complete_many)");
            if js.is_none() && many.is_none() {
                continue;
            }
            let rate = |r: Option<&Value>| r.and_then(|r| num(r, "rate"));
            let per_commit = |r: Option<&Value>| {
                r.and_then(|r| num(r, "writes_per_commit"))
                    .map_or(String::new(), |x| format!(" ({x} per commit)"))
            };
            let finished = js
                .or(many)
                .and_then(|r| num(r, "finished_before"))
                .unwrap_or(0.0);
            let w_cell = if scenario == "drain" {
                w.to_string()
            } else {
                format!("{w} ({} finished before)", thousands(finished))
            };
            let (raw, raw_many, eff, apa) = (
                pick("raw (grouped as jobstore)"),
                pick("raw (grouped as jobstore, complete_many)"),
                pick("effectum"),
                pick("apalis-sqlite"),
            );
            let _ = writeln!(
                md,
                "| {w_cell} | {}{} | {} | {}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                rate_cell(many),
                per_commit(many),
                rate_cell(raw_many),
                rate_cell(js),
                per_commit(js),
                rate_cell(raw),
                rate_cell(pick("raw (one transaction per call)")),
                rate_cell(pick("jobstore Worker")),
                rate_cell(eff),
                rate_cell(apa),
                ratio_cell(ratio(rate(many), rate(raw_many))),
                ratio_cell(ratio(rate(js), rate(raw))),
                ratio_cell(ratio(rate(many), rate(eff))),
                ratio_cell(ratio(rate(many), rate(apa))),
            );
        }
        for (store, call) in [
            ("jobstore", "`complete` call latency (one job)"),
            (
                "jobstore (complete_many)",
                "`complete_many` call latency (a whole claim)",
            ),
        ] {
            let latency: Vec<String> = records
                .iter()
                .filter(|r| str_of(r, "store") == store && str_of(r, "durability") == *level)
                .filter_map(|r| {
                    Some(format!(
                        "{} workers p50 {} / p99 {} µs",
                        r.get("workers")?.as_u64()?,
                        thousands(num(r, "complete_p50_us")?),
                        thousands(num(r, "complete_p99_us")?)
                    ))
                })
                .collect();
            if !latency.is_empty() {
                let _ = writeln!(md, "\njobstore {call}: {}.", latency.join("; "));
            }
        }
        md.push('\n');
    }
    if scenario == "drain" {
        md.push_str("![drain throughput against workers](bench/drain.svg)\n\n");
    }
}

fn list(md: &mut String, run: &Run) {
    let records = run.find("list", &[]);
    if records.is_empty() {
        return;
    }
    md.push_str("## 4. List\n\n");
    let matches = records
        .first()
        .and_then(|r| num(r, "matches"))
        .unwrap_or(0.0);
    let _ = writeln!(
        md,
        "Pages of 100 on the prefilled file ({} jobs: the finished jobs of the prefill and, \
         made through the store, {} native jobs awaiting their data for the `state = open` \
         cases and, for the live-state cases, {} live jobs of each vendor route: C360's and \
         Data Cloud's awaiting their data, OCAPI's queued executions), \
         newest first, for every sort \
         field the dialects use and each filter: the first page, and the page 10,000 pages deep \
         (or the last full page when fewer jobs match) by keyset cursor and, for the lists a \
         vendor API pages by page number (its label, its route, its status filter), by offset; \
         the native API pages by cursor only. p50 / p99 µs through `Store::list` (which decodes \
         each row into a job) and through raw SQLite running the same statement (stepping the \
         rows only; its offset pages cost what the store's do, SQLite walks the skipped rows \
         either way, so they are not repeated).\n",
        thousands(matches),
        thousands(crate::list::OPEN_JOBS as f64),
        thousands(crate::list::LIVE_ROUTE_JOBS as f64),
    );
    md.push_str("| sort (desc) | filter | matches | depth | first | deep, keyset | deep, offset | raw first | raw deep keyset |\n|---|---|---|---|---|---|---|---|---|\n");
    let mut cases: Vec<(String, String)> = Vec::new();
    for r in &records {
        let key = (str_of(r, "sort").to_owned(), str_of(r, "filter").to_owned());
        if !cases.contains(&key) {
            cases.push(key);
        }
    }
    for (sort, filter) in cases {
        let pick = |store: &str, page: &str| {
            records.iter().copied().find(|r| {
                str_of(r, "store") == store
                    && str_of(r, "sort") == sort
                    && str_of(r, "filter") == filter
                    && str_of(r, "page") == page
            })
        };
        let cell_within = |r: Option<&Value>, limit_us: f64| {
            if r.is_none() {
                return "–".to_owned();
            }
            let p99 = r.and_then(|r| num(r, "p99_us")).unwrap_or(0.0);
            let text = format!("{} / {}", us(r, "p50_us"), us(r, "p99_us"));
            if p99 > limit_us {
                format!("**{text}**")
            } else {
                text
            }
        };
        let cell = |r: Option<&Value>| cell_within(r, 5000.0);
        let deep = pick("jobstore", "deep keyset");
        let _ = writeln!(
            md,
            "| {sort} | {filter} | {} | {} | {} | {} | {} | {} | {} |",
            us(deep, "matches"),
            us(deep, "depth"),
            cell(pick("jobstore", "first")),
            cell(deep),
            cell_within(pick("jobstore", "deep offset"), 50_000.0),
            cell(pick("raw", "first")),
            cell(pick("raw", "deep keyset")),
        );
    }
    md.push_str("\nBold: p99 over 5 ms (over 50 ms for a page by page number).\n\n");
    let plans: Vec<&Value> = records
        .iter()
        .copied()
        .filter(|r| {
            str_of(r, "store") == "raw"
                && num(r, "p99_us").unwrap_or(0.0) > 5000.0
                && str_of(r, "page") != "deep offset"
        })
        .collect();
    if !plans.is_empty() {
        md.push_str(
            "Query plans (SQLite's `EXPLAIN QUERY PLAN`) of the keyset pages over 5 ms:\n\n",
        );
        for r in plans {
            let _ = writeln!(
                md,
                "- {}, {} page: `{}`",
                str_of(r, "case"),
                str_of(r, "page"),
                str_of(r, "plan")
            );
        }
        md.push('\n');
    }
}

fn http(md: &mut String, run: &Run) {
    let records = run.find("http", &[]);
    if records.is_empty() {
        return;
    }
    md.push_str("## 5. HTTP on loopback\n\n");
    md.push_str(
        "The real `jobstore serve` (release build, a new file, `durability` from a config \
         file) and a bare hyper 1 server answering every POST with a fixed JSON body of a \
         job's size (the HTTP limit here), each its own process. Our client: tokio, one \
         keep-alive connection per client, 127.0.0.1 only, a bounded count of requests. \
         Client and servers share the 2 cores. Claim/complete: one `POST /v1/claim` (`max` 1) \
         and one `POST /v1/jobs/{id}/complete` per pair; its p50/p99 are per request.\n\n",
    );
    md.push_str("| clients | bare hyper | create, full | create ÷ bare | claim+complete pairs, full | create, normal | claim+complete pairs, normal |\n|---|---|---|---|---|---|---|\n");
    for clients in clients_of(run) {
        let pick = |store: &str, case: &str, level: &str| {
            records.iter().copied().find(|r| {
                str_of(r, "store") == store
                    && r.get("clients").and_then(Value::as_u64) == Some(clients)
                    && (case.is_empty() || str_of(r, "case") == case)
                    && (level.is_empty() || str_of(r, "durability") == level)
            })
        };
        // Creates also say how many writes the daemon's writer committed together.
        let cell = |r: Option<&Value>| match r {
            Some(r) => format!(
                "{}/s (p50 {} / p99 {} µs{})",
                thousands(num(r, "rate").unwrap_or(0.0)),
                us(Some(r), "p50_us"),
                us(Some(r), "p99_us"),
                num(r, "writes_per_commit").map_or(String::new(), |w| format!(", {w} per commit")),
            ),
            None => "–".into(),
        };
        let bare = pick("bare hyper", "", "");
        let create = pick("jobstore", "POST /v1/jobs (create)", "full");
        let claim = "POST /v1/claim + POST /v1/jobs/{id}/complete";
        let _ = writeln!(
            md,
            "| {clients} | {} | {} | {} | {} | {} | {} |",
            cell(bare),
            cell(create),
            ratio_cell(ratio(
                create.and_then(|r| num(r, "rate")),
                bare.and_then(|r| num(r, "rate"))
            )),
            cell(pick("jobstore", claim, "full")),
            cell(pick("jobstore", "POST /v1/jobs (create)", "normal")),
            cell(pick("jobstore", claim, "normal")),
        );
    }
    md.push('\n');
}

fn memory(md: &mut String, run: &Run) {
    let records = run.find("memory", &[]);
    if records.is_empty() {
        return;
    }
    md.push_str("## 6. Daemon memory\n\n");
    md.push_str("VmRSS and VmHWM of the `jobstore serve` process (`/proc/PID/status`), sampled every 5 ms during the upload and the load.\n\n");
    md.push_str("| when | RSS | peak |\n|---|---|---|\n");
    for r in records {
        let case = str_of(r, "case");
        if let Some(growth) = num(r, "growth_mb") {
            let _ = writeln!(
                md,
                "| {case} ({:.0} MB at {:.0} MB/s) | {:.1} MB before, {:.1} MB after | {:.1} MB (+{growth:.1} MB) |",
                num(r, "upload_mb").unwrap_or(0.0),
                num(r, "upload_mb_per_s").unwrap_or(0.0),
                num(r, "rss_before_mb").unwrap_or(0.0),
                num(r, "rss_after_mb").unwrap_or(0.0),
                num(r, "rss_peak_mb")
                    .unwrap_or(0.0)
                    .max(num(r, "hwm_after_mb").unwrap_or(0.0)),
            );
        } else {
            let _ = writeln!(
                md,
                "| {case} | {:.1} MB | {:.1} MB |",
                num(r, "rss_mb").unwrap_or(0.0),
                num(r, "hwm_mb").unwrap_or(0.0),
            );
        }
    }
    let peaks: Vec<String> = run
        .find("http", &[("store", "jobstore".into())])
        .iter()
        .filter_map(|r| {
            Some(format!(
                "{} {} client(s) {:.1} MB",
                str_of(r, "durability"),
                r.get("clients")?.as_u64()?,
                num(r, "rss_peak_mb")?
            ))
        })
        .collect();
    if !peaks.is_empty() {
        let _ = writeln!(
            md,
            "\nPeak RSS during the create loads: {}.",
            peaks.join(", ")
        );
    }
    md.push('\n');
}

/// Drain throughput (FULL) against workers for every store, as an SVG line chart.
fn chart(run: &Run, quick: bool) -> String {
    let (width, height) = (760.0, 440.0);
    let (left, right, top, bottom) = (80.0, 250.0, 50.0, 60.0);
    let plot_w = width - left - right;
    let plot_h = height - top - bottom;
    let workers = [1_u64, 2, 4, 8];
    let series: Vec<Series> = DRAIN_STORES
        .iter()
        .map(|(store, colour)| {
            let points = workers
                .iter()
                .filter_map(|&w| run.drain_rate("drain", store, w, "full").map(|r| (w, r)))
                .collect();
            (*store, *colour, points)
        })
        .filter(|(_, _, points): &Series| !points.is_empty())
        .collect();
    let max = series
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|(_, r)| *r))
        .fold(1.0_f64, f64::max);
    let step = nice_step(max / 5.0);
    let y_max = (max / step).ceil() * step;
    let x = |w: u64| left + plot_w * (f64::from(w.trailing_zeros()) / 3.0);
    let y = |r: f64| top + plot_h * (1.0 - r / y_max);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(
        svg,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>"
    );
    let title = if quick {
        "Drain (claim + complete), durability FULL — QUICK RUN"
    } else {
        "Drain (claim + complete), durability FULL"
    };
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"28\" font-size=\"16\" font-weight=\"bold\">{title}</text>",
        left
    );
    let mut tick = 0.0;
    while tick <= y_max + step / 2.0 {
        let ty = y(tick);
        let _ = writeln!(
            svg,
            "<line x1=\"{left}\" y1=\"{ty:.1}\" x2=\"{:.1}\" y2=\"{ty:.1}\" stroke=\"#ddd\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 8.0,
            ty + 4.0,
            thousands(tick)
        );
        tick += step;
    }
    for w in workers {
        let tx = x(w);
        let _ = writeln!(
            svg,
            "<line x1=\"{tx:.1}\" y1=\"{top}\" x2=\"{tx:.1}\" y2=\"{:.1}\" stroke=\"#eee\"/><text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{w}</text>",
            top + plot_h,
            top + plot_h + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{0:.1}\" stroke=\"black\"/><line x1=\"{left}\" y1=\"{0:.1}\" x2=\"{1:.1}\" y2=\"{0:.1}\" stroke=\"black\"/>",
        top + plot_h,
        left + plot_w
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">workers</text>",
        left + plot_w / 2.0,
        height - 18.0
    );
    let _ = writeln!(
        svg,
        "<text transform=\"translate(20 {:.1}) rotate(-90)\" text-anchor=\"middle\">jobs per second</text>",
        top + plot_h / 2.0
    );
    let mut legend_y = top + 10.0;
    for (store, colour, points) in &series {
        let path: Vec<String> = points
            .iter()
            .map(|(w, r)| format!("{:.1},{:.1}", x(*w), y(*r)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2.5\"/>",
            path.join(" ")
        );
        for (w, r) in points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{colour}\"><title>{store}, {w} workers: {}/s</title></circle>",
                x(*w),
                y(*r),
                thousands(*r)
            );
        }
        let lx = left + plot_w + 20.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{lx:.1}\" y1=\"{legend_y:.1}\" x2=\"{:.1}\" y2=\"{legend_y:.1}\" stroke=\"{colour}\" stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            lx + 24.0,
            lx + 30.0,
            legend_y + 4.0,
            legend_name(store)
        );
        legend_y += 22.0;
    }
    let note_y = legend_y + 40.0;
    let lx = left + plot_w + 20.0;
    for (i, line) in [
        "effectum: its own settings",
        "(rollback journal, cannot match);",
        "the others: WAL, synchronous FULL.",
    ]
    .iter()
    .enumerate()
    {
        let _ = writeln!(
            svg,
            "<text x=\"{lx:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#555\">{line}</text>",
            note_y + 15.0 * i as f64
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn legend_name(store: &str) -> &str {
    match store {
        "jobstore" => "jobstore, complete per job",
        "jobstore (complete_many)" => "jobstore, complete_many",
        "raw (grouped as jobstore, complete_many)" => "raw, as complete_many",
        "raw (grouped as jobstore)" => "raw, grouped as jobstore",
        "raw (one transaction per call)" => "raw, one txn per call",
        other => other,
    }
}

/// A round step (1, 2 or 5 × 10^k) near `raw`.
fn nice_step(raw: f64) -> f64 {
    let magnitude = 10_f64.powf(raw.max(1.0).log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Where an enqueue's time goes: the top symbols by self time of `perf record` around the
/// 8-thread enqueue, read from `perf report` as the run wrote it.
fn profile(md: &mut String, path: Option<&std::path::Path>) {
    md.push_str("\n### 1.1 Profile: enqueue from 8 threads, one job per call, FULL\n\n");
    let Some(text) = path.and_then(|path| std::fs::read_to_string(path).ok()) else {
        md.push_str("Not profiled in this run (`perf` was not available).\n");
        return;
    };
    md.push_str(
        "`perf record` (cpu-clock, 1999 Hz, every thread of the process) around a separate run of \
         the case, not the one reported above; the symbols with at least 1 % of the samples by self \
         time (`perf report --no-children --fields overhead,dso,sym`). The writer thread runs the SQL and \
         the commit for every client thread; the kernel's share is the WAL's `fsync` and the \
         threads' wake-ups.\n\n```\n",
    );
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        md.push_str(line.trim_end());
        md.push('\n');
    }
    md.push_str("```\n\n");
}
