//! What each command does once the command line is parsed. The maintenance and job commands
//! work straight on the database (a SQLite file or a PostgreSQL database), through the core
//! store. Beside a file that Litestream replicates (its `.NAME-litestream` directory is there)
//! they never checkpoint the WAL: Litestream owns checkpoints.

pub(crate) mod copy;
pub(crate) mod daemons;
pub(crate) mod human;
pub(crate) mod jobs;
pub(crate) mod maintenance;
pub(crate) mod restore;
pub(crate) mod tls;
pub(crate) mod tokens;

use std::path::PathBuf;

use anyhow::Result;
use jobstore::{Checkpoints, Scope, Store, StoreOptions};

use crate::litestream;
use crate::location::Location;

/// The database, opened for a command that works on it directly.
pub(crate) struct Database {
    /// Where it is, as resolved from `--db`, `JOBSTORE_DB` or the default.
    pub location: Location,
    /// The store on it, seeing every tenant.
    pub store: Store,
}

impl Database {
    /// Opens (creating or migrating) the database named by `--db`, else `JOBSTORE_DB`, else
    /// `./jobstore.db`: a SQLite file, or a PostgreSQL database by its `postgres://` URL.
    pub(crate) fn open(flag: Option<PathBuf>) -> Result<Self> {
        let location = Location::of(&db_path(flag));
        let checkpoints = match location.file() {
            Some(path) if litestream::meta_dir(path).is_dir() => Checkpoints::External,
            _ => Checkpoints::Store,
        };
        let options = StoreOptions {
            checkpoints,
            ..StoreOptions::default()
        };
        // One command's calls, one at a time: a writer and a couple of read connections do.
        let postgres = jobstore_postgres::PostgresOptions {
            writers: 1,
            read_connections: 2,
            ..jobstore_postgres::PostgresOptions::default()
        };
        // The operator at the database sees every tenant.
        let store = location.open(options, &postgres)?.with_scope(Scope::All);
        Ok(Self { location, store })
    }
}

/// The database file named by `--db`, else `JOBSTORE_DB`, else `./jobstore.db`.
pub(crate) fn db_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| env_path("JOBSTORE_DB"))
        .unwrap_or_else(|| PathBuf::from("jobstore.db"))
}

/// A path from the environment variable `name`, unless it is unset or empty.
pub(crate) fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}
