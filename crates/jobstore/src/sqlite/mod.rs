//! The SQLite driver: the store in one file, the embedded default.
//!
//! Everything that is SQLite's lives here: the connection settings and migrations (`db`), the
//! single writer thread with group commit and one `SAVEPOINT` per write (`writer`), the r2d2
//! read pool, every statement (`ops`, and `list` for the list query), WAL checkpoints
//! ([`Checkpoints`]), `VACUUM INTO` backups, `PRAGMA integrity_check`, and the uploader's
//! `"pid:start-time"` name that tells a dead uploading process's batches (`uploader`), and
//! [`Snapshot`], a read-only view of a file, row by row, for a copy to another engine.
//!
//! Several processes may open one file: each has its own writer, and the busy timeout plus a
//! retried `BEGIN IMMEDIATE` covers the other's write lock. Claims are one `UPDATE … WHERE id
//! IN (SELECT … LIMIT ?) RETURNING …`, so two processes never lease the same job.

pub(crate) mod db;
mod list;
pub(crate) mod ops;
mod snapshot;
mod uploader;
mod writer;

#[cfg(test)]
mod plans;

use std::path::{Path, PathBuf};

use rusqlite::params;

pub use db::{AUTOCHECKPOINT_PAGES, Checkpoints, Durability, SCHEMA_VERSION, migrate_to};
pub use snapshot::Snapshot;

use self::db::{ConnectionSettings, ReadPool};
use self::ops::Conn;
use self::writer::Writer;
use crate::driver::{Driver, Reader, WriteOp, WriterStats};
use crate::{Error, Result, StoreOptions};

/// The SQLite driver over one file: its writer thread and its read pool.
pub struct SqliteDriver {
    path: PathBuf,
    writer: Writer,
    pool: ReadPool,
    checkpoints: Checkpoints,
}

impl std::fmt::Debug for SqliteDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDriver")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteDriver {
    /// Opens (creating or migrating) the file at `path` with the SQLite settings of
    /// `options` (durability, busy timeout, checkpoints, lock wait, read connections).
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] for a file written by a newer build,
    /// [`Error::SettingNotApplied`] when SQLite refused a setting, [`Error::Sqlite`] for a
    /// file that is not a database.
    pub fn open(path: impl AsRef<Path>, options: &StoreOptions) -> Result<SqliteDriver> {
        let path = path.as_ref().to_path_buf();
        let settings = ConnectionSettings {
            durability: options.durability,
            busy_timeout: options.busy_timeout,
            checkpoints: options.checkpoints,
        };
        let conn = db::open_writer(&path, settings)?;
        let pool = db::open_read_pool(&path, settings, options.read_connections)?;
        let writer = Writer::start(
            conn,
            options.lock_wait,
            options.checkpoints == Checkpoints::Store,
        )?;
        Ok(SqliteDriver {
            path,
            writer,
            pool,
            checkpoints: options.checkpoints,
        })
    }

    fn pooled(&self) -> Result<db::ReadConnection> {
        self.pool.get()
    }
}

impl Driver for SqliteDriver {
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }

    fn path(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn submit(&self, write: Box<dyn WriteOp>) {
        self.writer.submit(write);
    }

    fn reader(&self) -> Result<Box<dyn Reader + '_>> {
        Ok(Box::new(Conn(self.pooled()?)))
    }

    fn writer_stats(&self) -> WriterStats {
        self.writer.stats()
    }

    fn gone_uploaders(&self) -> Result<Vec<String>> {
        let conn = self.pooled()?;
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT uploader FROM job_data_batches \
             WHERE complete = 0 AND uploader IS NOT NULL",
        )?;
        let uploaders = stmt
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        Ok(uploaders
            .into_iter()
            .filter(|tag| !uploader::is_running(tag))
            .collect())
    }

    fn backup_to(&self, dest: &Path) -> Result<()> {
        let dest = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup destination", "path is not valid utf-8"))?
            .to_owned();
        self.pooled()?.execute("VACUUM INTO ?1", params![dest])?;
        Ok(())
    }

    fn checkpoint(&self) -> Result<bool> {
        if self.checkpoints == Checkpoints::External {
            return Err(Error::invalid(
                "checkpoint",
                "checkpoints are left to the replicator (Checkpoints::External)",
            ));
        }
        let busy: i64 = self
            .pooled()?
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))?;
        Ok(busy == 0)
    }

    fn check(&self) -> Result<Vec<String>> {
        let conn = self.pooled()?;
        ops::check(&conn)
    }
}
