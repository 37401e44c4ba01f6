//! Where the jobs live, as `--db`, `JOBSTORE_DB` or the config's `db` names it: a SQLite file
//! (any path, the default `./jobstore.db`), or a PostgreSQL database (a `postgres://` or
//! `postgresql://` URL), which several daemons may share. The rest of the binary opens a
//! [`Store`] through [`Location::open`] and asks [`Location::file`] for what only a file has
//! (Litestream replication, `restore`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use jobstore::{Store, StoreOptions};
use jobstore_postgres::{PostgresDriver, PostgresOptions};

/// A SQLite file or a PostgreSQL database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL.
    Postgres(String),
}

impl Location {
    /// The location `db` names: a PostgreSQL URL by its scheme, anything else a file path.
    pub(crate) fn of(db: &Path) -> Location {
        match db.to_str() {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Location::Postgres(url.to_owned())
            }
            _ => Location::Sqlite(db.to_owned()),
        }
    }

    /// The file, for a SQLite location.
    pub(crate) fn file(&self) -> Option<&Path> {
        match self {
            Location::Sqlite(path) => Some(path),
            Location::Postgres(_) => None,
        }
    }

    /// Opens the store there, creating or migrating its schema. `options` are the store's;
    /// those that only a SQLite file has (durability, checkpoints, the busy timeout) do not
    /// apply to PostgreSQL, whose server decides them; `postgres` are the connections to a
    /// PostgreSQL database.
    ///
    /// # Errors
    /// The file or the server cannot be opened, or its schema is newer than this build's.
    pub(crate) fn open(&self, options: StoreOptions, postgres: &PostgresOptions) -> Result<Store> {
        match self {
            Location::Sqlite(path) => Store::open_with(path, options)
                .with_context(|| format!("cannot open {}", path.display())),
            Location::Postgres(url) => {
                let driver = PostgresDriver::connect(url, postgres)
                    .with_context(|| format!("cannot open {}", self.describe()))?;
                Ok(Store::with_driver(Arc::new(driver), options))
            }
        }
    }

    /// The location for logs and messages: a URL's password is never shown.
    pub(crate) fn describe(&self) -> String {
        match self {
            Location::Sqlite(path) => path.display().to_string(),
            Location::Postgres(url) => redact(url),
        }
    }
}

/// `url` with the password of its user information (`user:password@`) replaced by `***`,
/// and a `password=` query parameter likewise.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(end) => rest.split_at(end),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_a_postgres_scheme_is_a_database_anything_else_a_file() {
        for (db, postgres) in [
            ("postgres://u@h/db", true),
            ("postgresql://h:5432/db", true),
            ("jobstore.db", false),
            ("/var/lib/jobstore/jobstore.db", false),
            ("./postgres:/x.db", false),
        ] {
            let location = Location::of(Path::new(db));
            assert_eq!(location.file().is_none(), postgres, "{db}");
        }
    }

    #[test]
    fn passwords_are_never_shown() {
        for (url, shown) in [
            (
                "postgres://app:s3cret@db.example:5432/jobs",
                "postgres://app:***@db.example:5432/jobs",
            ),
            ("postgres://app@db/jobs", "postgres://app@db/jobs"),
            (
                "postgresql://db/jobs?user=app&password=s3cret&sslmode=require",
                "postgresql://db/jobs?user=app&password=***&sslmode=require",
            ),
            ("postgres://a:b:c@h", "postgres://a:***@h"),
        ] {
            assert_eq!(redact(url), shown);
            assert!(!redact(url).contains("s3cret"));
        }
    }
}
