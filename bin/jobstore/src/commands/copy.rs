//! `jobstore copy`: a SQLite file's store copied into a PostgreSQL database, in one
//! transaction, from one read snapshot of the file (`jobstore_postgres::copy`). Prints a line
//! per table as it goes (and every few seconds within a long one), then a summary.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use jobstore::sqlite::Snapshot;
use jobstore_postgres::copy::{self, Progress};

use crate::cli::CopyArgs;
use crate::location::Location;

/// How often a table's progress is printed while it is copied.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// `jobstore copy --from FILE --to URL`.
pub(crate) fn run(db: Option<&Path>, args: &CopyArgs) -> Result<ExitCode> {
    if db.is_some() {
        bail!("copy reads --from and writes --to; --db does not apply");
    }
    let source = Location::of(&args.from);
    if source.file().is_none() {
        bail!(
            "--from names the SQLite file to copy, not a database URL ({})",
            source.describe()
        );
    }
    let target = Location::of(Path::new(&args.to));
    let Location::Postgres(url) = &target else {
        bail!(
            "--to must be a PostgreSQL database, postgres://USER@HOST:PORT/DB (to copy a \
             SQLite file to another file, use `jobstore backup`)"
        );
    };
    let shown = target.describe();
    let snapshot = Snapshot::open(&args.from)
        .with_context(|| format!("cannot read {}", args.from.display()))?;
    println!(
        "copying {} (schema version {}) into {shown}",
        args.from.display(),
        jobstore::SCHEMA_VERSION
    );
    let mut client = copy::connect(url).with_context(|| format!("cannot connect to {shown}"))?;
    let mut out = std::io::stdout().lock();
    let mut last = Instant::now();
    let mut total = 0;
    let mut show = |progress: Progress<'_>| {
        // Progress is a courtesy: a closed stdout must not fail the copy.
        let _ = match progress {
            Progress::Started { migrated_from } => writeln!(
                out,
                "target at schema version {} (was {migrated_from}), locked and empty",
                jobstore_postgres::SCHEMA_VERSION
            ),
            Progress::Table { rows, .. } => {
                total = rows;
                last = Instant::now();
                Ok(())
            }
            Progress::Rows { table, rows } if last.elapsed() >= PROGRESS_EVERY => {
                last = Instant::now();
                writeln!(out, "  {table}: {rows} of {total} rows")
            }
            Progress::Rows { .. } => Ok(()),
            Progress::Copied(copied) => writeln!(
                out,
                "{:<22} {:>10} rows {:>12} {:>8.1} s",
                copied.table,
                copied.rows,
                if copied.data_bytes > 0 {
                    bytes(copied.data_bytes)
                } else {
                    String::new()
                },
                copied.elapsed.as_secs_f64()
            ),
            Progress::Committing => writeln!(
                out,
                "rebuilding the job counts, setting the ids, committing"
            ),
        };
        let _ = out.flush();
    };
    let summary = copy::copy_from_sqlite(&snapshot, &mut client, &mut show)
        .with_context(|| format!("copy into {shown} failed; nothing of it was committed"))?;
    drop(snapshot);
    let seconds = summary.elapsed.as_secs_f64();
    let jobs = summary.rows_of("jobs");
    println!(
        "copied {} rows ({jobs} jobs, {} of data) in {seconds:.1} s ({:.0} jobs/s)",
        summary.rows(),
        bytes(summary.data_bytes()),
        jobs as f64 / seconds.max(0.001)
    );
    if summary.incomplete_batches > 0 {
        println!(
            "{} incomplete data batches (uploads cut off, never visible) copied without \
             their uploader: the idle purge removes them",
            summary.incomplete_batches
        );
    }
    let next: Vec<String> = summary
        .next_ids
        .iter()
        .map(|(table, id)| format!("{table} {id}"))
        .collect();
    println!("next ids: {}", next.join(", "));
    println!(
        "the file is unchanged; check the copy with `jobstore check --db URL` and `jobstore \
         stats --db URL`, then start the daemons on it"
    );
    Ok(ExitCode::SUCCESS)
}

/// `n` bytes for people: B, KiB, MiB or GiB.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(300 * 1024), "300.0 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 + 512 * 1024), "5.5 MiB");
    }
}
