//! The `jobstore` command: maintenance and job commands that work straight on the database
//! file (also while no daemon runs). Every command opens the file with the core store, so the
//! same migrations, settings and state machine apply as everywhere else.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use jobstore::{Direction, Job, ListQuery, Scope, SortField, State, Store};

/// An embedded, SQLite-backed job store.
#[derive(Parser, Debug)]
#[command(name = "jobstore", version, about)]
struct Cli {
    /// The database file.
    #[arg(
        long,
        global = true,
        env = "JOBSTORE_DB",
        default_value = "jobstore.db"
    )]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the database or bring it to the current schema, then exit.
    Migrate,
    /// Check the file's integrity and the store's invariants; exit 1 on any problem.
    Check,
    /// Write a consistent copy of the database to DEST while it is in use.
    Backup {
        /// Where to write the copy (must not exist).
        dest: PathBuf,
    },
    /// Job counts by queue and state.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and change jobs (every tenant's).
    #[command(subcommand)]
    Jobs(JobsCommand),
}

#[derive(Subcommand, Debug)]
enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in these states (repeatable).
        #[arg(long)]
        state: Vec<String>,
        /// Only jobs of these kinds (repeatable).
        #[arg(long)]
        kind: Vec<String>,
        /// Only jobs in these queues (repeatable).
        #[arg(long)]
        queue: Vec<String>,
        /// Sort field.
        #[arg(long, default_value = "created_at")]
        sort: String,
        /// Sort direction: asc or desc.
        #[arg(long, default_value = "desc")]
        order: String,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its steps and history.
    Show {
        /// The job id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job (cooperatively when it runs).
    Cancel {
        /// The job id.
        id: i64,
    },
    /// Restart a failed or cancelled job.
    Restart {
        /// The job id.
        id: i64,
    },
    /// Delete a finished job with its history, data and log.
    Delete {
        /// The job id.
        id: i64,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jobstore: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn open(cli: &Cli) -> Result<Store> {
    let store =
        Store::open(&cli.db).with_context(|| format!("cannot open {}", cli.db.display()))?;
    // The operator at the file sees every tenant.
    Ok(store.with_scope(Scope::All))
}

fn run(cli: Cli) -> Result<ExitCode> {
    let store = open(&cli)?;
    match cli.command {
        Command::Migrate => {
            println!(
                "{}: schema version {}",
                cli.db.display(),
                jobstore::SCHEMA_VERSION
            );
        }
        Command::Check => {
            let report = store.check()?;
            if report.is_ok() {
                println!("ok");
            } else {
                for problem in &report.problems {
                    println!("{problem}");
                }
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Backup { dest } => {
            store.backup_to(&dest)?;
            println!("backed up {} to {}", cli.db.display(), dest.display());
        }
        Command::Stats { json } => {
            let stats = store.stats()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                println!("{:<20} {:<10} {:>8}", "QUEUE", "STATE", "JOBS");
                for row in stats {
                    println!("{:<20} {:<10} {:>8}", row.queue, row.state, row.jobs);
                }
            }
        }
        Command::Jobs(command) => return jobs(&store, command),
    }
    Ok(ExitCode::SUCCESS)
}

fn jobs(store: &Store, command: JobsCommand) -> Result<ExitCode> {
    match command {
        JobsCommand::List {
            state,
            kind,
            queue,
            sort,
            order,
            limit,
            json,
        } => {
            let query = ListQuery {
                states: state
                    .iter()
                    .map(|s| s.parse::<State>())
                    .collect::<jobstore::Result<_>>()?,
                kinds: kind,
                queues: queue,
                sort: Some(sort.parse::<SortField>()?),
                direction: order.parse::<Direction>()?,
                limit: Some(limit),
                ..ListQuery::default()
            };
            let page = store.list(&query)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page.jobs)?);
            } else {
                print_table(&page.jobs);
            }
        }
        JobsCommand::Show { id, json } => {
            let job = store.get(id)?;
            let steps = store.steps(id)?;
            let events = store.events(id)?;
            if json {
                let doc = serde_json::json!({"job": job, "steps": steps, "events": events});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&job)?);
                for step in steps {
                    println!(
                        "step {:<24} {:<8} {}",
                        step.step_id,
                        step.status.as_str(),
                        step.exit_code.unwrap_or_default()
                    );
                }
                for event in events {
                    println!(
                        "{} {:<14} {:>9} -> {:<9} {} {}",
                        event.at,
                        event.event,
                        event.from.map_or("", State::as_str),
                        event.to,
                        event.actor,
                        event.detail.unwrap_or_default()
                    );
                }
            }
        }
        JobsCommand::Cancel { id } => {
            let job = store.cancel(id, "cli")?;
            println!("job {id}: {}", describe(&job));
        }
        JobsCommand::Restart { id } => {
            let job = store.restart(id, "cli")?;
            println!("job {id}: {}", describe(&job));
        }
        JobsCommand::Delete { id } => {
            store.delete(id)?;
            println!("job {id}: deleted");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(job: &Job) -> String {
    if job.state == State::Running && job.cancel_requested_at.is_some() {
        "running, cancel requested".into()
    } else {
        job.state.to_string()
    }
}

fn print_table(jobs: &[Job]) {
    println!(
        "{:>8} {:<10} {:<16} {:<12} {:<10} {:>7}",
        "ID", "TENANT", "KIND", "QUEUE", "STATE", "ATTEMPT"
    );
    for job in jobs {
        println!(
            "{:>8} {:<10} {:<16} {:<12} {:<10} {:>3}/{:<3}",
            job.id, job.tenant, job.kind, job.queue, job.state, job.attempt, job.max_attempts
        );
    }
}
