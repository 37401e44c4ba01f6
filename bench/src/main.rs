//! `jobstore-bench`: the benchmark of jobstore against raw SQLite and raw PostgreSQL doing the
//! same SQL, and the report that puts those figures beside the peers'. Each subcommand runs one scenario and
//! prints one JSON line per figure on stdout (a human summary goes to stderr); `bench/run`
//! runs them all and then `report` writes `BENCHMARKS.md` and `bench/drain.svg`.
//!
//! ```text
//! jobstore-bench enqueue  --dir D --jobs N --durability full,normal --batches 100,1000 --cap S
//! jobstore-bench drain    --dir D --jobs N --workers 1,2,4,8 --claim-batch B --durability full --cap S
//! jobstore-bench drain-1m --dir D --prefill M --jobs N --workers 1,2,4,8 --durability full --cap S
//! jobstore-bench list     --dir D --prefill M --keyset-samples K --offset-samples O [--sorts id,kind] [--filters none,states,kind,dialect,route]
//! jobstore-bench http     --dir D --daemon PATH --clients 1,16,64 --requests N --cap S --upload-mb 150
//! jobstore-bench bare-server
//! jobstore-bench pg-settings --pg postgres://postgres@127.0.0.1:PORT
//! jobstore-bench pg-enqueue  --pg URL --jobs N --batches 100,1000 --cap S
//! jobstore-bench pg-drain    --pg URL --jobs N --workers 1,2,4,8 --claim-batch B --cap S [--worker yes]
//! jobstore-bench pg-http     --pg URL --daemon PATH --clients 16,64 --requests N --cap S
//! jobstore-bench report   --results FILE --out BENCHMARKS.md --svg drain.svg --command CMD
//! ```

mod common;
mod drain;
mod enqueue;
mod http;
mod list;
mod pg;
mod pg_cases;
mod prefill;
mod raw;
mod report;
mod report_pg;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use common::{Level, Result, fail};

/// `--key value` arguments after the subcommand.
struct Args {
    values: HashMap<String, String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args> {
        let mut values = HashMap::new();
        let mut iter = args.iter();
        while let Some(key) = iter.next() {
            let name = key
                .strip_prefix("--")
                .ok_or_else(|| fail(format!("expected --option, got `{key}`")))?;
            let value = iter
                .next()
                .ok_or_else(|| fail(format!("--{name} needs a value")))?;
            values.insert(name.to_owned(), value.clone());
        }
        Ok(Args { values })
    }

    fn text(&self, name: &str) -> Result<String> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| fail(format!("missing --{name}")))
    }

    fn text_or(&self, name: &str, default: &str) -> String {
        self.values
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.values.get(name) {
            Some(v) => v
                .replace('_', "")
                .parse()
                .map_err(|_| fail(format!("--{name}: `{v}` is not a number"))),
            None => Ok(default),
        }
    }

    fn numbers(&self, name: &str, default: &str) -> Result<Vec<u64>> {
        self.text_or(name, default)
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .map_err(|_| fail(format!("--{name}: `{s}` is not a number")))
            })
            .collect()
    }

    /// A comma list of names out of `all` (each named by `name`); every one when not given.
    fn names<T: Copy>(
        &self,
        option: &str,
        all: &[T],
        name: fn(T) -> &'static str,
    ) -> Result<Vec<T>> {
        let Some(given) = self.values.get(option) else {
            return Ok(all.to_vec());
        };
        given
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                all.iter()
                    .copied()
                    .find(|item| name(*item) == s.trim())
                    .ok_or_else(|| {
                        let valid: Vec<&str> = all.iter().map(|item| name(*item)).collect();
                        fail(format!(
                            "--{option}: unknown `{s}`; valid: {}",
                            valid.join(",")
                        ))
                    })
            })
            .collect()
    }

    fn levels(&self) -> Result<Vec<Level>> {
        self.text_or("durability", "full")
            .split(',')
            .map(Level::parse)
            .collect()
    }

    fn dir(&self) -> Result<PathBuf> {
        let dir = PathBuf::from(self.text("dir")?);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// `--pg`: the PostgreSQL server, `postgres://user@host:port` (no database).
    fn pg(&self) -> Result<String> {
        Ok(self.text("pg")?.trim_end_matches('/').to_owned())
    }

    fn cap(&self) -> Result<Duration> {
        Ok(Duration::from_secs(self.number("cap", 60)?))
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Err(err) = run(&argv) {
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&*err);
        while let Some(cause) = source {
            message.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        eprintln!("jobstore-bench: {message}");
        std::process::exit(1);
    }
}

fn run(argv: &[String]) -> Result<()> {
    let Some((command, rest)) = argv.split_first() else {
        return Err(fail(
            "usage: jobstore-bench enqueue|profile-enqueue|drain|drain-1m|list|http|bare-server|pg-settings|pg-enqueue|pg-drain|pg-http|report [--option value]...",
        ));
    };
    let args = Args::parse(rest)?;
    match command.as_str() {
        "enqueue" => {
            let config = enqueue::EnqueueConfig {
                jobs: args.number("jobs", 100_000)?,
                batches: args.numbers("batches", "100,1000")?,
                cap: args.cap()?,
            };
            let dir = args.dir()?;
            for level in args.levels()? {
                enqueue::run(&dir, level, &config)?;
            }
        }
        "profile-enqueue" => {
            let config = enqueue::EnqueueConfig {
                jobs: args.number("jobs", 100_000)?,
                batches: Vec::new(),
                cap: args.cap()?,
            };
            enqueue::profiled(&args.dir()?, &config)?;
        }
        "drain" | "drain-1m" => {
            let dir = args.dir()?;
            let one_m = command == "drain-1m";
            let config = drain::DrainConfig {
                scenario: if one_m { "drain_1m" } else { "drain" },
                jobs: args.number("jobs", 100_000)?,
                claim_batch: u32::try_from(args.number("claim-batch", 32)?)?,
                workers: args.numbers("workers", "1,2,4,8")?,
                cap: args.cap()?,
                raw_per_call: args.text_or("raw-per-call", "yes") == "yes",
                worker: args.text_or("worker", "yes") == "yes",
            };
            let template = if one_m {
                Some(prefill::template(&dir, args.number("prefill", 1_000_000)?)?)
            } else {
                None
            };
            let make_db = |name: &str| match &template {
                Some(template) => prefill::copy_of(template, &dir, name),
                None => common::fresh_db(&dir, name),
            };
            for level in args.levels()? {
                drain::run(level, &config, &make_db)?;
            }
        }
        "list" => {
            let dir = args.dir()?;
            let template = prefill::template(&dir, args.number("prefill", 1_000_000)?)?;
            let path = prefill::copy_of(&template, &dir, "list")?;
            let config = list::ListConfig {
                keyset_samples: usize::try_from(args.number("keyset-samples", 30)?)?,
                offset_samples: usize::try_from(args.number("offset-samples", 10)?)?,
                limit: 100,
                deep_pages: 10_000,
                budget: Duration::from_millis(args.number("budget-ms", 1000)?),
                sorts: args.names("sorts", &jobstore::SortField::ALL, |s| s.as_str())?,
                filters: args.names("filters", &list::Filter::ALL, |f| f.key())?,
            };
            list::run(&path, &config)?;
            common::remove_db(&path);
        }
        "http" => {
            let config = http::HttpConfig {
                daemon: PathBuf::from(args.text("daemon")?),
                bench: std::env::current_exe()?,
                clients: args.numbers("clients", "1,16,64")?,
                requests: args.number("requests", 20_000)?,
                cap: args.cap()?,
                upload_bytes: args.number("upload-mb", 150)? * 1_000_000,
            };
            http::run(&args.dir()?, &args.levels()?, &config)?;
        }
        "bare-server" => http::bare_server()?,
        "pg-settings" => pg::emit_server_settings(&args.pg()?)?,
        "pg-enqueue" | "pg-drain" => {
            let config = pg_cases::PgConfig {
                base: args.pg()?,
                jobs: args.number("jobs", 20_000)?,
                batches: args.numbers("batches", "100,1000")?,
                workers: args.numbers("workers", "1,2,4,8")?,
                claim_batch: u32::try_from(args.number("claim-batch", 32)?)?,
                cap: args.cap()?,
                worker: args.text_or("worker", "yes") == "yes",
            };
            if command == "pg-enqueue" {
                pg_cases::enqueue(&config)?;
            } else {
                pg_cases::drain(&config)?;
            }
        }
        "pg-http" => http::run_pg(&http::PgHttpConfig {
            daemon: PathBuf::from(args.text("daemon")?),
            base: args.pg()?,
            clients: args.numbers("clients", "16,64")?,
            requests: args.number("requests", 20_000)?,
            cap: args.cap()?,
        })?,
        "report" => report::write(&report::ReportConfig {
            results: PathBuf::from(args.text("results")?),
            out: PathBuf::from(args.text("out")?),
            svg: PathBuf::from(args.text("svg")?),
            command: args.text("command")?,
            quick: args.text_or("quick", "no") == "yes",
            build_secs: args.number("build-secs", 0)?,
            run_secs: args.number("run-secs", 0)?,
            load: args
                .values
                .get("load-start")
                .zip(args.values.get("load-end"))
                .map(|(start, end)| (start.clone(), end.clone())),
            profile: args.values.get("profile").map(PathBuf::from),
        })?,
        other => return Err(fail(format!("unknown subcommand `{other}`"))),
    }
    Ok(())
}
