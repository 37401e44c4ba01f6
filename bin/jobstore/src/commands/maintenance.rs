//! The maintenance commands on the database: `migrate`, `check`, `backup` (a SQLite file's)
//! and `stats`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::Database;
use crate::location::Location;

/// `jobstore migrate`: opening the database already brought it to the current schema.
pub(crate) fn migrate(db: &Database) -> Result<ExitCode> {
    let version = match db.location {
        Location::Sqlite(_) => jobstore::SCHEMA_VERSION,
        Location::Postgres(_) => jobstore_postgres::SCHEMA_VERSION,
    };
    println!("{}: schema version {version}", db.location.describe());
    Ok(ExitCode::SUCCESS)
}

/// `jobstore check`: prints `ok`, or every problem found and exits 1.
pub(crate) fn check(db: &Database) -> Result<ExitCode> {
    let report = db.store.check()?;
    if report.is_ok() {
        println!("ok");
        Ok(ExitCode::SUCCESS)
    } else {
        for problem in &report.problems {
            println!("{problem}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// `jobstore backup DEST`: writes a consistent copy of the file to `dest`.
pub(crate) fn backup(db: &Database, dest: &Path) -> Result<ExitCode> {
    db.store.backup_to(dest)?;
    println!("backed up {} to {}", db.location.describe(), dest.display());
    Ok(ExitCode::SUCCESS)
}

/// `jobstore stats`: job counts by queue and state, as a table or JSON.
pub(crate) fn stats(db: &Database, json: bool) -> Result<ExitCode> {
    let stats = db.store.stats()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
    } else {
        println!("{:<20} {:<10} {:>8}", "QUEUE", "STATE", "JOBS");
        for row in stats {
            println!("{:<20} {:<10} {:>8}", row.queue, row.state, row.jobs);
        }
    }
    Ok(ExitCode::SUCCESS)
}
