//! The `jobstore` command: the daemon (`serve`), token management, and maintenance and job
//! commands that work straight on the database file (also while no daemon runs). Every
//! command opens the file with the core store, so the same migrations, settings and state
//! machine apply as everywhere else.

mod config;
mod serve;
mod systemd;
mod worker;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use jobstore::{Direction, Job, ListQuery, Scope, SortField, State, Store};

/// An embedded, SQLite-backed job store.
#[derive(Parser, Debug)]
#[command(name = "jobstore", version, about)]
struct Cli {
    /// The database file [env: JOBSTORE_DB] [default: ./jobstore.db].
    #[arg(long, global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP daemon (default: ./jobstore.db on 127.0.0.1:8080).
    Serve {
        /// The address to listen on [env: JOBSTORE_LISTEN].
        #[arg(long)]
        listen: Option<String>,
        /// The tokens file; required to listen beyond loopback [env: JOBSTORE_TOKENS].
        #[arg(long)]
        tokens: Option<PathBuf>,
        /// A TOML config file (flags and environment override it).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Claim jobs from a daemon and run a command for each.
    Worker {
        /// The daemon [default: http://127.0.0.1:8080].
        #[arg(long)]
        url: Option<String>,
        /// A file whose first line is the bearer token.
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// A queue to claim from (repeatable).
        #[arg(long = "queue")]
        queues: Vec<String>,
        /// Jobs run at once [default: 1].
        #[arg(long)]
        concurrency: Option<usize>,
        /// The command for every job kind, split like a shell would (no shell runs unless
        /// you name one: `sh -c '...'`).
        #[arg(long, conflicts_with = "config")]
        exec: Option<String>,
        /// A TOML file with a command per job kind.
        #[arg(long)]
        config: Option<PathBuf>,
        /// What the command reads on stdin: payload, data or none [default: payload].
        #[arg(long)]
        stdin: Option<String>,
        /// Kill an `--exec` command after this many ms and fail the attempt.
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// The worker's name (the lease owner) [default: HOST-PID].
        #[arg(long)]
        name: Option<String>,
        /// Lease length in ms [default: 30000]; heartbeats come every third of it.
        #[arg(long)]
        lease_ms: Option<u64>,
        /// SIGTERM → SIGKILL grace, and the shutdown grace, in ms [default: 10000].
        #[arg(long)]
        grace_ms: Option<u64>,
    },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
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
enum TokenCommand {
    /// Create a random token, print it once, and append its hash to the tokens file.
    Add {
        /// The tokens file (created when missing, mode 0600).
        #[arg(long)]
        tokens: PathBuf,
        /// The token's name (recorded as the creator of its jobs).
        #[arg(long)]
        name: String,
        /// The tenant the token acts in.
        #[arg(long)]
        tenant: String,
        /// A comma list of read, write, work, admin.
        #[arg(long)]
        scopes: String,
    },
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
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    // Under systemd the journal stamps every line itself.
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        logger.format_timestamp(None);
    }
    logger.init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("jobstore: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            listen,
            tokens,
            config,
        } => {
            let env = config::Overrides {
                db: env_path("JOBSTORE_DB"),
                listen: std::env::var("JOBSTORE_LISTEN")
                    .ok()
                    .filter(|v| !v.is_empty()),
                tokens: env_path("JOBSTORE_TOKENS"),
            };
            let flags = config::Overrides {
                db: cli.db,
                listen,
                tokens,
            };
            let config = config::ServeConfig::resolve(config.as_deref(), env, flags)?;
            serve::run(config)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Token(TokenCommand::Add {
            tokens,
            name,
            tenant,
            scopes,
        }) => {
            add_token(&tokens, &name, &tenant, &scopes)?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Worker {
            url,
            token_file,
            queues,
            concurrency,
            exec,
            config,
            stdin,
            timeout_ms,
            name,
            lease_ms,
            grace_ms,
        } => {
            let flags = worker::config::Flags {
                url,
                token_file,
                queues,
                concurrency,
                exec,
                timeout_ms,
                stdin: stdin.map(|s| s.parse()).transpose()?,
                name,
                lease_ms,
                grace_ms,
            };
            let config = worker::config::WorkerConfig::resolve(config.as_deref(), flags)?;
            worker::run(config)?;
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let db = cli
        .db
        .or_else(|| env_path("JOBSTORE_DB"))
        .unwrap_or_else(|| PathBuf::from("jobstore.db"));
    let store = Store::open(&db).with_context(|| format!("cannot open {}", db.display()))?;
    // The operator at the file sees every tenant.
    let store = store.with_scope(Scope::All);
    match cli.command {
        Command::Serve { .. } | Command::Token(_) | Command::Worker { .. } => {}
        Command::Migrate => {
            println!(
                "{}: schema version {}",
                db.display(),
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
            println!("backed up {} to {}", db.display(), dest.display());
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

/// Appends a new token's line to the tokens file and prints the token once.
fn add_token(path: &std::path::Path, name: &str, tenant: &str, scopes: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let scopes = jobstore_http::auth::parse_scopes(scopes).map_err(anyhow::Error::msg)?;
    for (field, value) in [("name", name), ("tenant", tenant)] {
        if value.is_empty() || value.contains(char::is_whitespace) || value.starts_with('#') {
            anyhow::bail!("{field} must be one word, not starting with #");
        }
    }
    // 32 bytes from the kernel's random source: the token is a secret.
    let mut random = [0_u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .context("cannot read /dev/urandom")?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let line = jobstore_http::auth::token_line(name, tenant, &scopes, &token);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{line}").with_context(|| format!("cannot write {}", path.display()))?;
    println!("{token}");
    eprintln!(
        "added token `{name}` (tenant {tenant}) to {}; it is shown only this once",
        path.display()
    );
    Ok(())
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
            "{:>8} {:<10} {:<16} {:<12} {:<10} {:>7}",
            job.id,
            job.tenant,
            job.kind,
            job.queue,
            job.state.as_str(),
            format!("{}/{}", job.attempt, job.max_attempts)
        );
    }
}
