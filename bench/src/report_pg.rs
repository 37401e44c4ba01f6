//! The PostgreSQL part of the report: the server's settings and each contestant's
//! `synchronous_commit`, the enqueue and drain tables (jobstore through its PostgreSQL driver,
//! raw PostgreSQL, pg-boss, graphile-worker, procrastinate), one daemon against two, and the
//! targets' rows.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use crate::report::{Run, num, rate_cell, ratio, ratio_cell, str_of, thousands, us, verdict};

/// The peers' drain stores: each library's documented ways of draining, as run.
const PEER_DRAINS: [&str; 5] = [
    "pg-boss (work)",
    "pg-boss (fetch + complete)",
    "graphile-worker",
    "graphile-worker (batched)",
    "procrastinate",
];

/// The peers' enqueue stores.
const PEER_ENQUEUES: [&str; 3] = ["pg-boss", "graphile-worker", "procrastinate"];

/// The enqueue cases: (threads, batch, label).
const ENQUEUE_CASES: [(u64, Option<u64>, &str); 4] = [
    (1, None, "1 thread, one job per call"),
    (8, None, "8 threads, one job per call"),
    (1, Some(100), "batches of 100"),
    (1, Some(1000), "batches of 1000"),
];

fn rate(record: Option<&Value>) -> Option<f64> {
    record.and_then(|r| num(r, "rate"))
}

fn figure(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), thousands)
}

fn enqueue_pick<'a>(
    run: &'a Run,
    store: &str,
    threads: u64,
    batch: Option<u64>,
) -> Option<&'a Value> {
    run.find("pg_enqueue", &[("store", store.into())])
        .into_iter()
        .find(|r| {
            r.get("threads").and_then(Value::as_u64) == Some(threads)
                && r.get("batch").and_then(Value::as_u64) == batch
        })
}

fn drain_pick<'a>(run: &'a Run, store: &str, workers: u64) -> Option<&'a Value> {
    run.one(
        "pg_drain",
        &[("store", store.into()), ("workers", workers.into())],
    )
}

/// The fastest of `stores` (name and rate), among those measured.
fn best<'a>(stores: &[&'a str], rate_of: impl Fn(&str) -> Option<f64>) -> Option<(&'a str, f64)> {
    stores
        .iter()
        .filter_map(|store| rate_of(store).map(|r| (*store, r)))
        .fold(None, |acc: Option<(&str, f64)>, (store, r)| match acc {
            Some((_, best)) if best >= r => acc,
            _ => Some((store, r)),
        })
}

fn best_cell(best: Option<(&str, f64)>) -> String {
    best.map_or_else(
        || "–".into(),
        |(store, r)| format!("{} ({store})", thousands(r)),
    )
}

fn worker_counts(run: &Run) -> Vec<u64> {
    let set: BTreeSet<u64> = run
        .find("pg_drain", &[])
        .iter()
        .filter_map(|r| r.get("workers").and_then(Value::as_u64))
        .collect();
    set.into_iter().collect()
}

/// The PostgreSQL rows of the targets table.
pub fn targets(md: &mut String, run: &Run) {
    if run.find("pg_drain", &[]).is_empty() && run.find("pg_enqueue", &[]).is_empty() {
        return;
    }
    let plural = |w: u64| if w == 1 { "" } else { "s" };
    // jobstore ≥ 0.5× raw PostgreSQL, each case the two run alike.
    for w in [1_u64, 8] {
        for (mine, raw, api) in [
            (
                "jobstore (complete_many)",
                "raw (complete_many)",
                "claim + complete_many",
            ),
            ("jobstore", "raw", "claim + complete per job"),
        ] {
            let js = rate(drain_pick(run, mine, w));
            let theirs = rate(drain_pick(run, raw, w));
            let r = ratio(js, theirs);
            let _ = writeln!(
                md,
                "| PostgreSQL drain, {w} worker{}, {api}: jobstore ≥ 0.5× raw PostgreSQL, same statements | {} vs {} | {} | {} |",
                plural(w),
                figure(js),
                figure(theirs),
                ratio_cell(r),
                verdict(r.map(|r| r >= 0.5)),
            );
        }
    }
    // A ratio above holds on any scale: say how each drain scales from 1 worker to 8.
    for (store, api) in [
        (
            "jobstore (complete_many)",
            "jobstore, claim + complete_many",
        ),
        ("raw (complete_many)", "raw, claim + complete_many"),
        ("jobstore", "jobstore, claim + complete per job"),
        ("raw", "raw, claim + complete per job"),
    ] {
        let one = rate(drain_pick(run, store, 1));
        let eight = rate(drain_pick(run, store, 8));
        if one.is_none() && eight.is_none() {
            continue;
        }
        let _ = writeln!(
            md,
            "| (information) PostgreSQL drain, {api}: 8 workers ÷ 1 worker | {} vs {} | {} | – |",
            figure(eight),
            figure(one),
            ratio_cell(ratio(eight, one)),
        );
    }
    for (threads, batch, label) in ENQUEUE_CASES {
        let js = rate(enqueue_pick(run, "jobstore", threads, batch));
        let theirs = rate(enqueue_pick(run, "raw", threads, batch));
        let r = ratio(js, theirs);
        let _ = writeln!(
            md,
            "| PostgreSQL enqueue, {label}: jobstore ≥ 0.5× raw PostgreSQL, same statements | {} vs {} | {} | {} |",
            figure(js),
            figure(theirs),
            ratio_cell(r),
            verdict(r.map(|r| r >= 0.5)),
        );
    }
    // jobstore ≥ 2× the best peer.
    for w in [1_u64, 8] {
        let js = rate(drain_pick(run, "jobstore (complete_many)", w));
        let top = best(&PEER_DRAINS, |store| rate(drain_pick(run, store, w)));
        let r = ratio(js, top.map(|(_, r)| r));
        let _ = writeln!(
            md,
            "| PostgreSQL drain, {w} worker{}: jobstore (claim + complete_many) ≥ 2× the best peer | {} vs {} | {} | {} |",
            plural(w),
            figure(js),
            best_cell(top),
            ratio_cell(r),
            verdict(r.map(|r| r >= 2.0)),
        );
        let worker = rate(drain_pick(run, "jobstore Worker", w));
        let _ = writeln!(
            md,
            "| (information) PostgreSQL drain, {w} worker{}: jobstore `Worker` ÷ the best peer | {} vs {} | {} | – |",
            plural(w),
            figure(worker),
            best_cell(top),
            ratio_cell(ratio(worker, top.map(|(_, r)| r))),
        );
    }
    for (threads, batch, label) in ENQUEUE_CASES {
        let js = rate(enqueue_pick(run, "jobstore", threads, batch));
        let top = best(&PEER_ENQUEUES, |store| {
            rate(enqueue_pick(run, store, threads, batch))
        });
        let r = ratio(js, top.map(|(_, r)| r));
        let _ = writeln!(
            md,
            "| PostgreSQL enqueue, {label}: jobstore ≥ 2× the best peer | {} vs {} | {} | {} |",
            figure(js),
            best_cell(top),
            ratio_cell(r),
            verdict(r.map(|r| r >= 2.0)),
        );
    }
    // Two daemons on one database faster than one.
    for (clients, workload, what) in daemon_cases(run) {
        let one = rate(daemon_pick(run, workload, clients, 1));
        let two = rate(daemon_pick(run, workload, clients, 2));
        let r = ratio(two, one);
        let _ = writeln!(
            md,
            "| PostgreSQL, HTTP {what}, {clients} clients: two daemons on one database faster than one | {} vs {} req/s | {} | {} |",
            figure(two),
            figure(one),
            ratio_cell(r),
            verdict(r.map(|r| r > 1.0)),
        );
    }
}

fn daemon_cases(run: &Run) -> Vec<(u64, &'static str, &'static str)> {
    let clients: BTreeSet<u64> = run
        .find("pg_http", &[])
        .iter()
        .filter_map(|r| r.get("clients").and_then(Value::as_u64))
        .collect();
    let mut cases = Vec::new();
    for c in clients {
        cases.push((c, "create", "create"));
        cases.push((c, "claim_complete", "claim + complete pairs"));
    }
    cases
}

fn daemon_pick<'a>(run: &'a Run, workload: &str, clients: u64, daemons: u64) -> Option<&'a Value> {
    run.one(
        "pg_http",
        &[
            ("workload", workload.into()),
            ("clients", clients.into()),
            ("daemons", daemons.into()),
        ],
    )
}

/// The PostgreSQL section.
pub fn write(md: &mut String, run: &Run) {
    if run.find("pg_settings", &[]).is_empty() {
        return;
    }
    md.push_str("## 7. PostgreSQL\n\n");
    md.push_str(
        "jobstore through its PostgreSQL driver (`PostgresDriver::connect` with its default \
         options: 4 writer connections, a transaction per write, 8 read connections; then \
         `Store::with_driver`), raw PostgreSQL running the driver's own statements with the \
         `postgres` crate (prepared once per connection, no savepoints, one transaction per \
         call, a connection per thread), and the PostgreSQL job queues pg-boss, \
         graphile-worker (Node) and procrastinate (Python), all on one throwaway PostgreSQL \
         cluster that `bench/run` starts for the run on 127.0.0.1, in the same run. Every case \
         runs in a fresh database after a `CHECKPOINT`; drains start from N queued jobs \
         written before the clock starts (raw and jobstore: one `INSERT … SELECT`; the peers: \
         their own batch API) and vacuumed. The server, the clients and the daemons share the \
         machine's 2 cores.\n\n",
    );
    if let Some(server) = run.one("pg_settings", &[("store", "server".into())]) {
        md.push_str("**The server** (read back with `SHOW`; the same for every contestant):\n\n");
        md.push_str("| setting | value |\n|---|---|\n");
        for key in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "wal_sync_method",
            "wal_level",
            "commit_delay",
            "shared_buffers",
            "max_wal_size",
            "checkpoint_timeout",
            "max_connections",
            "data_checksums",
        ] {
            let _ = writeln!(md, "| `{key}` | {} |", str_of(server, key));
        }
        let _ = writeln!(
            md,
            "| per-database or per-role overrides (`pg_db_role_setting`) | {} |\n",
            server
                .get("db_role_overrides")
                .map_or_else(|| "–".into(), ToString::to_string)
        );
        md.push_str(
            "PostgreSQL's defaults, with fsync and `synchronous_commit` on stated: every commit \
             is on disk before it is answered, as jobstore answers after its commit. None of \
             the libraries changes that: their sources set no `synchronous_commit`, and each \
             one's own connection says so below.\n\n",
        );
    }
    md.push_str("| contestant | version | `synchronous_commit` as run | how it was read |\n|---|---|---|---|\n");
    let mut seen = BTreeSet::new();
    for record in run.find("pg_settings", &[]) {
        let store = str_of(record, "store");
        if store == "server" || !seen.insert(store.to_owned()) {
            continue;
        }
        let _ = writeln!(
            md,
            "| {store} | {} | {} | {} |",
            match str_of(record, "version") {
                "" => "this tree",
                v => v,
            },
            str_of(record, "synchronous_commit"),
            str_of(record, "how"),
        );
    }
    md.push('\n');
    enqueue(md, run);
    drain(md, run);
    daemons(md, run);
}

fn enqueue(md: &mut String, run: &Run) {
    if run.find("pg_enqueue", &[]).is_empty() {
        return;
    }
    md.push_str("### 7.1 Enqueue on PostgreSQL\n\n");
    md.push_str(
        "N jobs one per call from 1 and 8 threads (Node and Python peers: concurrent async \
         clients on their library's pool), and in batches. jobstore: `Store::enqueue` \
         (each call one transaction on one of the driver's writer connections: no group \
         commit), `Store::enqueue_many`; raw: the driver's insert of the job and of its \
         `create` event, one transaction per call, a connection per thread. pg-boss \
         `send` / `insert`, graphile-worker `addJob` / `addJobs`, procrastinate \
         `defer_async` / `batch_defer_async`. None of the peers writes a history row.\n\n",
    );
    md.push_str("| case | jobstore | raw PostgreSQL | pg-boss | graphile-worker | procrastinate | jobstore ÷ raw | jobstore ÷ best peer |\n|---|---|---|---|---|---|---|---|\n");
    for (threads, batch, label) in ENQUEUE_CASES {
        let js = enqueue_pick(run, "jobstore", threads, batch);
        if js.is_none() {
            continue;
        }
        let raw = enqueue_pick(run, "raw", threads, batch);
        let top = best(&PEER_ENQUEUES, |store| {
            rate(enqueue_pick(run, store, threads, batch))
        });
        let cells: Vec<String> = PEER_ENQUEUES
            .iter()
            .map(|store| rate_cell(enqueue_pick(run, store, threads, batch)))
            .collect();
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {} | {} | {} |",
            rate_cell(js),
            rate_cell(raw),
            cells.join(" | "),
            ratio_cell(ratio(rate(js), rate(raw))),
            ratio_cell(ratio(rate(js), top.map(|(_, r)| r))),
        );
    }
    md.push('\n');
}

fn drain(md: &mut String, run: &Run) {
    if run.find("pg_drain", &[]).is_empty() {
        return;
    }
    md.push_str("### 7.2 Drain on PostgreSQL\n\n");
    md.push_str(
        "N queued jobs claimed and completed by 1, 2, 4, 8 workers, a handler that returns at \
         once. jobstore from N threads: `Store::claim` (`max` 32, one `UPDATE … FOR UPDATE \
         SKIP LOCKED … RETURNING` and a `claim` event per job) and `Store::complete_many` once \
         per claim or `Store::complete` per job; its embedded `Worker` (concurrency N, \
         prefetch 32; its completer thread acknowledges every success waiting in one \
         `complete_many` while the last commits). Raw: the same statements, one transaction per claim and per complete \
         (or per claim's completes), a connection per worker. pg-boss: N `work()` workers \
         (`batchSize` 32; `pollingIntervalSeconds` 0.5, the least it allows: a worker fetches \
         once per interval) and N loops of `fetch` (`batchSize` 32) + `complete(ids)`. \
         graphile-worker: `run()` with concurrency N, at its defaults (a job per fetch, a \
         transaction per completion) and batched as its performance guide describes \
         (`localQueue.size` 32, `completeJobBatchDelay` 0). procrastinate: \
         `run_worker_async(concurrency=N, wait=False)`. The peers write no history row per \
         transition; graphile-worker deletes a job once it succeeded.\n\n",
    );
    md.push_str("| workers | jobstore, complete_many | raw, complete_many | jobstore, complete per job | raw, complete per job | jobstore Worker | pg-boss work() | pg-boss fetch + complete | graphile-worker | graphile-worker, batched | procrastinate | complete_many ÷ raw | per job ÷ raw | complete_many ÷ best peer |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for w in worker_counts(run) {
        let pick = |store: &str| drain_pick(run, store, w);
        let many = pick("jobstore (complete_many)");
        let js = pick("jobstore");
        let top = best(&PEER_DRAINS, |store| rate(pick(store)));
        let peers: Vec<String> = PEER_DRAINS.iter().map(|s| rate_cell(pick(s))).collect();
        let _ = writeln!(
            md,
            "| {w} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            rate_cell(many),
            rate_cell(pick("raw (complete_many)")),
            rate_cell(js),
            rate_cell(pick("raw")),
            rate_cell(pick("jobstore Worker")),
            peers.join(" | "),
            ratio_cell(ratio(rate(many), rate(pick("raw (complete_many)")))),
            ratio_cell(ratio(rate(js), rate(pick("raw")))),
            ratio_cell(ratio(rate(many), top.map(|(_, r)| r))),
        );
    }
    for (store, raw, call) in [
        ("jobstore", "raw", "`complete` (one job)"),
        (
            "jobstore (complete_many)",
            "raw (complete_many)",
            "`complete_many` (a whole claim)",
        ),
    ] {
        let line = |who: &str| -> Vec<String> {
            run.find("pg_drain", &[("store", who.into())])
                .iter()
                .filter_map(|r| {
                    Some(format!(
                        "{} workers p50 {} / p99 {} µs",
                        r.get("workers")?.as_u64()?,
                        thousands(num(r, "complete_p50_us")?),
                        thousands(num(r, "complete_p99_us")?)
                    ))
                })
                .collect()
        };
        let (mine, theirs) = (line(store), line(raw));
        if !mine.is_empty() {
            let _ = writeln!(
                md,
                "\nLatency of {call}: jobstore {}; raw {}.",
                mine.join(", "),
                if theirs.is_empty() {
                    "–".into()
                } else {
                    theirs.join(", ")
                }
            );
        }
    }
    if let Some(plan) = run.one("pg_plan", &[]) {
        let _ = writeln!(
            md,
            "\nThe driver's claim as PostgreSQL plans it on {} queued jobs (`EXPLAIN`, the values \
             a claim binds; each operator before its inputs): `{}`.",
            thousands(num(plan, "queued").unwrap_or(0.0)),
            str_of(plan, "plan"),
        );
    }
    let deadlocked: Vec<String> = run
        .find("pg_drain", &[])
        .iter()
        .filter(|r| num(r, "deadlocks_retried").unwrap_or(0.0) > 0.0)
        .filter_map(|r| {
            Some(format!(
                "{}, {} workers: {} in {:.1} s",
                str_of(r, "store"),
                r.get("workers")?.as_u64()?,
                thousands(num(r, "deadlocks_retried")?),
                num(r, "secs")?
            ))
        })
        .collect();
    if !deadlocked.is_empty() {
        let _ = writeln!(
            md,
            "\n**Deadlocks.** PostgreSQL chose a write as a deadlock's victim (\"deadlock \
             detected\", after `deadlock_timeout`, 1 s) and rolled it back; the benchmark ran \
             it again (a write of jobstore answers that error to its caller: the driver \
             retries its claims itself, uncounted here, each retry after its own \
             `deadlock_timeout`; not a `complete` or `complete_many`) and, once past the time \
             cap, let that worker stop. Counts: {}.",
            deadlocked.join("; ")
        );
    }
    md.push('\n');
}

fn daemons(md: &mut String, run: &Run) {
    if run.find("pg_http", &[]).is_empty() {
        return;
    }
    md.push_str("### 7.3 One daemon against two on one database\n\n");
    md.push_str(
        "The real `jobstore serve --db postgres://…` (release build), one daemon and then two \
         on the same fresh database, each on its own port; the clients (one keep-alive \
         connection each, spread evenly over the daemons) create jobs (`POST /v1/jobs`), then \
         drain them in claim + complete pairs (`POST /v1/claim` with `max` 1, `POST \
         /v1/jobs/{id}/complete`). On this 2-core machine the two daemons, the PostgreSQL \
         server and the client share the same 2 cores: a second daemon adds writer \
         connections (4 each) and request handling, not CPU.\n\n",
    );
    md.push_str("| workload | clients | 1 daemon | 2 daemons | 2 ÷ 1 |\n|---|---|---|---|---|\n");
    for (clients, workload, what) in daemon_cases(run) {
        let one = daemon_pick(run, workload, clients, 1);
        let two = daemon_pick(run, workload, clients, 2);
        let cell = |r: Option<&Value>| match r {
            Some(r) => format!(
                "{}/s (p50 {} / p99 {} µs)",
                thousands(num(r, "rate").unwrap_or(0.0)),
                us(Some(r), "p50_us"),
                us(Some(r), "p99_us")
            ),
            None => "–".into(),
        };
        let _ = writeln!(
            md,
            "| {what} | {clients} | {} | {} | {} |",
            cell(one),
            cell(two),
            ratio_cell(ratio(rate(two), rate(one))),
        );
    }
    md.push('\n');
}
