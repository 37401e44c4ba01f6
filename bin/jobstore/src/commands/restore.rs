//! `jobstore restore`: brings a lost database back from its Litestream replica.
//!
//! `litestream restore` writes the replica's newest state (or the state at `--timestamp`) into
//! a temporary file beside the database; the file is opened with the store (migrated like any
//! other) and checked (`jobstore check`); the store then writes it out as one self-contained
//! file (`VACUUM INTO`, no WAL beside it), which alone is renamed into place. Nothing that
//! exists is overwritten.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use jobstore::{Direction, ListQuery, Scope, SortField, Store};

use super::db_path;
use crate::cli::RestoreArgs;
use crate::litestream;
use crate::location::Location;

/// Litestream's config file in the package.
const PACKAGED_CONFIG: &str = "/etc/jobstore/litestream.yml";

/// `jobstore restore`: restores, checks, and moves the file into place; exit 1 when the check
/// finds a problem (the restored file is kept for inspection).
pub(crate) fn restore(db: Option<PathBuf>, args: &RestoreArgs) -> Result<ExitCode> {
    let named = db_path(db);
    if Location::of(&named).file().is_none() {
        bail!(
            "{} is a PostgreSQL database: restore it with the server's own tools \
             (pg_restore, a base backup or the service's snapshots); jobstore restore \
             brings back a SQLite file from its Litestream replica",
            Location::of(&named).describe()
        );
    }
    let db = std::path::absolute(named).context("the database path")?;
    for path in [
        db.clone(),
        litestream::wal_path(&db),
        litestream::sibling(&db, "-shm"),
    ] {
        if path.exists() {
            bail!(
                "{} exists: restore never overwrites a database; move the database and its \
                 -wal and -shm files away first",
                path.display()
            );
        }
    }
    let meta = litestream::meta_dir(&db);
    if meta.exists() {
        bail!(
            "{} holds Litestream's state of the lost database: stop Litestream and delete that \
             directory first (Litestream does not notice that a database was replaced)",
            meta.display()
        );
    }
    let restoring = restoring_path(&db);
    remove_leftovers(&db, &restoring)?;

    let source = run_litestream(&db, &restoring, args)?;

    let store = Store::open(&restoring)
        .with_context(|| format!("cannot open the restored file {}", restoring.display()))?
        .with_scope(Scope::All);
    let report = store.check()?;
    if !report.is_ok() {
        for problem in &report.problems {
            println!("{problem}");
        }
        drop(store);
        println!(
            "the restored file failed its check; it is kept at {} and {} was not created",
            restoring.display(),
            db.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    let jobs: i64 = store.stats()?.iter().map(|row| row.jobs).sum();
    let newest = store
        .list(&ListQuery {
            sort: Some(SortField::UpdatedAt),
            direction: Direction::Desc,
            limit: Some(1),
            ..ListQuery::default()
        })?
        .jobs
        .into_iter()
        .next();
    let now = store.now();
    // One self-contained file, written whole by the store (`VACUUM INTO`) from the checked
    // one: no WAL to carry along, whatever the store's close writes into the checked file's.
    let assembled = assembled_path(&db);
    store.backup_to(&assembled)?;
    drop(store);
    remove_files(&restoring)?;
    std::fs::rename(&assembled, &db)
        .with_context(|| format!("cannot move {} to {}", assembled.display(), db.display()))?;
    give_to_directory_owner(&db);
    if let Some(dir) = db.parent() {
        std::fs::File::open(dir)
            .and_then(|dir| dir.sync_all())
            .with_context(|| format!("cannot sync {}", dir.display()))?;
    }
    println!("restored {} from {source}", db.display());
    println!("check: ok");
    match newest {
        Some(job) => println!(
            "{jobs} jobs; newest change: job {} at {} ms since the epoch, {:.1} s ago",
            job.id,
            job.updated_at,
            (now - job.updated_at) as f64 / 1000.0
        ),
        None => println!("0 jobs"),
    }
    if args.timestamp.is_some() {
        println!(
            "an earlier state was restored: point Litestream's replica at a new path before it \
             starts again (the replica's later history must not be continued from this file)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The temporary file the replica is restored into: `.NAME.restoring` beside the database.
fn restoring_path(db: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(db.file_name().unwrap_or(db.as_os_str()));
    name.push(".restoring");
    db.with_file_name(name)
}

/// The self-contained copy of the checked file that is moved into place: `.NAME.restored`.
fn assembled_path(db: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(db.file_name().unwrap_or(db.as_os_str()));
    name.push(".restored");
    db.with_file_name(name)
}

/// Deletes what an earlier restore left at `restoring` (a file that failed its check, or a
/// copy not moved into place).
fn remove_leftovers(db: &Path, restoring: &Path) -> Result<()> {
    for path in [
        assembled_path(db),
        restoring.to_path_buf(),
        litestream::wal_path(restoring),
        litestream::sibling(restoring, "-shm"),
        litestream::sibling(restoring, ".tmp"),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => println!("deleted {} left by an earlier restore", path.display()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot delete {}", path.display()));
            }
        }
    }
    Ok(())
}

/// Runs `litestream restore` into `restoring`; answers the replica it restored from.
fn run_litestream(db: &Path, restoring: &Path, args: &RestoreArgs) -> Result<String> {
    let mut command = Command::new(&args.litestream);
    command.arg("restore").arg("-o").arg(restoring);
    if let Some(timestamp) = &args.timestamp {
        command.arg("-timestamp").arg(timestamp);
    }
    let source = match &args.replica {
        Some(url) => {
            command.arg(url);
            url.clone()
        }
        None => {
            let config = args
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from(PACKAGED_CONFIG));
            command.arg("-config").arg(&config).arg(db);
            format!("the replica {} names", config.display())
        }
    };
    let status = command.status().with_context(|| {
        format!(
            "cannot run {}: install Litestream or name it with --litestream",
            args.litestream.display()
        )
    })?;
    if !status.success() {
        bail!("litestream restore failed ({status}); nothing was created");
    }
    if !restoring.is_file() {
        bail!(
            "litestream restore succeeded but wrote no {}",
            restoring.display()
        );
    }
    Ok(source)
}

/// Gives the restored file to the owner of the directory it was restored into, when the two
/// differ: a restore run as root into the daemon's state directory leaves a file the daemon's
/// user can write (systemd does not hand over a file made inside a directory it already owns).
/// Only reported when it cannot be done.
fn give_to_directory_owner(db: &Path) {
    use std::os::unix::fs::MetadataExt;
    let dir = match db.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let (Ok(dir_meta), Ok(file_meta)) = (std::fs::metadata(dir), std::fs::metadata(db)) else {
        return;
    };
    if (dir_meta.uid(), dir_meta.gid()) == (file_meta.uid(), file_meta.gid()) {
        return;
    }
    if let Err(err) = std::os::unix::fs::chown(db, Some(dir_meta.uid()), Some(dir_meta.gid())) {
        println!(
            "{} is owned by uid {}, its directory by uid {}: give it to the daemon's user \
             before starting it ({err})",
            db.display(),
            file_meta.uid(),
            dir_meta.uid()
        );
    }
}

/// Deletes the checked file and its WAL and shared-memory files once the assembled copy is
/// written.
fn remove_files(restoring: &Path) -> Result<()> {
    for path in [
        restoring.to_path_buf(),
        litestream::wal_path(restoring),
        litestream::sibling(restoring, "-shm"),
    ] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => {
                return Err(err).with_context(|| format!("cannot delete {}", path.display()));
            }
        }
    }
    Ok(())
}
