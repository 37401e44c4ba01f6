//! The `jobstore` command: the daemon (`serve`), token management, and maintenance and job
//! commands that work straight on the database file (also while no daemon runs). Every
//! command opens the file with the core store, so the same migrations, settings and state
//! machine apply as everywhere else.

mod cli;
mod commands;
mod config;
mod litestream;
mod location;
mod serve;
mod systemd;
mod worker;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use cli::{Cli, Command};
use commands::{Database, copy, daemons, jobs, maintenance, restore, tls, tokens};

/// Sets up logging, parses the command line and runs the command; errors go to stderr.
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

/// Hands the parsed command to the module that carries it out.
fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve(args) => daemons::serve(cli.db, args),
        Command::Worker(args) => daemons::worker(args),
        Command::Token(command) => tokens::run(command),
        Command::Tls(command) => tls::run(command),
        Command::Migrate => maintenance::migrate(&Database::open(cli.db)?),
        Command::Check => maintenance::check(&Database::open(cli.db)?),
        Command::Backup { dest } => maintenance::backup(&Database::open(cli.db)?, &dest),
        Command::Restore(args) => restore::restore(cli.db, &args),
        Command::Stats { json } => maintenance::stats(&Database::open(cli.db)?, json),
        Command::Jobs(command) => jobs::run(&Database::open(cli.db)?.store, command),
        Command::Copy(args) => copy::run(cli.db.as_deref(), &args),
    }
}
