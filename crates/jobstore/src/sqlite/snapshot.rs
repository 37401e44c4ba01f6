//! A consistent, read-only view of a store's file, row by row: what copies the store to
//! another engine read ([`crate::tables`]).
//!
//! [`Snapshot::open`] opens the file query-only (it never creates, migrates or writes it),
//! refuses a schema other than this build's, and begins one read transaction: every read
//! after it sees the file as it was at that moment, whatever other processes (a daemon still
//! running) commit meanwhile. Rows are handed out one at a time, straight from SQLite's
//! cursor, so a file of any size is read in bounded memory; each value is checked against its
//! column's [`Kind`] (an integer where an integer belongs, UTF-8 text, a flag of 0 or 1,
//! well-formed JSON, a blob), and a row that does not fit is an error that names it.
//!
//! While the snapshot is open the file's WAL cannot be reset: it grows with what other
//! processes write. Keep it for the copy only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::db::SCHEMA_VERSION;
use crate::tables::{Column, Kind, Table, Value};
use crate::{Error, Result};

/// A read transaction on a store's file, open until dropped.
pub struct Snapshot {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Snapshot {
    /// Opens the store's file at `path` query-only (`PRAGMA query_only`: no statement can
    /// change it) and begins the read transaction every later read sees.
    ///
    /// # Errors
    /// [`Error::Io`] when there is no file at `path`; [`Error::Sqlite`] when it is not a
    /// database; [`Error::SchemaTooNew`] when a newer build wrote it; [`Error::InvalidInput`]
    /// when its schema is older than this build's (bring it to the current schema first:
    /// opening it with [`crate::Store::open`] does, as does `jobstore migrate`).
    pub fn open(path: impl AsRef<Path>) -> Result<Snapshot> {
        let path = path.as_ref().to_path_buf();
        // SQLite would answer a missing file with a bare "unable to open database file".
        std::fs::metadata(&path)?;
        // Read-write without CREATE, but query-only: no statement of this connection can
        // change the file. A read-only connection would leave the `-wal` and `-shm` files it
        // creates beside a file whose daemon stopped, owned by whoever ran the copy (root),
        // and a daemon of another user could then no longer open its file; a read-write
        // connection, like every other, checkpoints and removes them when it is the last
        // to close.
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.pragma_update(None, "query_only", true)?;
        let query_only: bool = conn.query_row("PRAGMA query_only", [], |row| row.get(0))?;
        if !query_only {
            return Err(Error::SettingNotApplied {
                setting: "query_only",
                wanted: "1".into(),
                got: "0".into(),
            });
        }
        conn.busy_timeout(Duration::from_secs(10))?;
        // The first read after BEGIN fixes the snapshot: user_version and every row after it
        // are of one moment.
        conn.execute_batch("BEGIN DEFERRED")?;
        let found: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .and_then(|()| conn.query_row("PRAGMA user_version", [], |row| row.get(0)))?;
        if found > SCHEMA_VERSION {
            return Err(Error::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            return Err(Error::invalid(
                "schema version",
                format!(
                    "{} is at schema version {found}, older than this build's \
                     {SCHEMA_VERSION}; it is only read, never migrated here: bring it to the \
                     current schema first (`jobstore migrate --db FILE`, or opening it with \
                     Store::open)",
                    path.display()
                ),
            ));
        }
        Ok(Snapshot { path, conn })
    }

    /// The file this snapshot reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many rows `table` holds.
    ///
    /// # Errors
    /// [`Error::Sqlite`].
    pub fn count(&self, table: &Table) -> Result<u64> {
        let sql = format!("SELECT count(*) FROM {}", table.name);
        let count: i64 = self.conn.query_row(&sql, [], |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The highest id `table` (one whose first column is an identity, [`Table::identity`])
    /// has ever handed out: its highest id, or higher when the rows that held the last ids
    /// were deleted (SQLite's `sqlite_sequence` remembers them). Answers 0 for a table that
    /// never held a row.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a table without an identity; [`Error::Sqlite`].
    pub fn id_floor(&self, table: &Table) -> Result<i64> {
        if !table.identity {
            return Err(Error::invalid(
                "table",
                format!("{} has no identity column", table.name),
            ));
        }
        let highest: i64 = self.conn.query_row(
            &format!("SELECT ifnull(max(id), 0) FROM {}", table.name),
            [],
            |row| row.get(0),
        )?;
        let remembered: i64 = self.conn.query_row(
            "SELECT ifnull(max(seq), 0) FROM sqlite_sequence WHERE name = ?1",
            [table.name],
            |row| row.get(0),
        )?;
        Ok(highest.max(remembered))
    }

    /// Hands every row of `table` to `each`, in the order of its key, as one value per column
    /// ([`Table::columns`]), and answers how many there were. Each row's values borrow from
    /// SQLite's cursor: nothing but the current row is held.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a value that does not fit its column (naming the table, the
    /// row's key and the column); [`Error::Sqlite`]; whatever `each` answers, which ends the
    /// read.
    pub fn rows<E>(
        &self,
        table: &Table,
        mut each: impl FnMut(&[Value<'_>]) -> Result<(), E>,
    ) -> Result<u64, E>
    where
        E: From<Error>,
    {
        let names: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            names.join(", "),
            table.name,
            table.key.join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(Error::from)?;
        let mut rows = stmt.query([]).map_err(Error::from)?;
        let mut count = 0u64;
        while let Some(row) = rows.next().map_err(Error::from)? {
            let mut values: Vec<Value<'_>> = Vec::with_capacity(table.columns.len());
            for (index, column) in table.columns.iter().enumerate() {
                let raw = row.get_ref(index).map_err(Error::from)?;
                let value =
                    convert(column, raw).map_err(|reason| bad_row(table, row, column, &reason))?;
                values.push(value);
            }
            each(&values)?;
            count += 1;
        }
        Ok(count)
    }
}

/// A stored value as its column's [`Kind`] says, or why it is not one.
fn convert<'a>(column: &Column, raw: ValueRef<'a>) -> std::result::Result<Value<'a>, String> {
    let text = |bytes: &'a [u8]| {
        std::str::from_utf8(bytes).map_err(|err| format!("text that is not UTF-8 ({err})"))
    };
    match (column.kind, raw) {
        (_, ValueRef::Null) if column.nullable => Ok(Value::Null),
        (_, ValueRef::Null) => Err("NULL in a column that may not be NULL".to_owned()),
        (Kind::Integer, ValueRef::Integer(v)) => Ok(Value::Integer(v)),
        (Kind::Text, ValueRef::Text(bytes)) => Ok(Value::Text(text(bytes)?)),
        (Kind::Flag, ValueRef::Integer(0)) => Ok(Value::Flag(false)),
        (Kind::Flag, ValueRef::Integer(1)) => Ok(Value::Flag(true)),
        (Kind::Flag, ValueRef::Integer(v)) => Err(format!("{v} where a flag (0 or 1) belongs")),
        (Kind::Json, ValueRef::Text(bytes)) => {
            let json = text(bytes)?;
            serde_json::from_str::<serde::de::IgnoredAny>(json)
                .map_err(|err| format!("malformed JSON ({err})"))?;
            Ok(Value::Json(json))
        }
        (Kind::Bytes, ValueRef::Blob(bytes)) => Ok(Value::Bytes(bytes)),
        (kind, other) => Err(format!(
            "{} where {} belongs",
            match other {
                ValueRef::Null => "NULL",
                ValueRef::Integer(_) => "an integer",
                ValueRef::Real(_) => "a real number",
                ValueRef::Text(_) => "text",
                ValueRef::Blob(_) => "a blob",
            },
            match kind {
                Kind::Integer | Kind::Flag => "an integer",
                Kind::Text | Kind::Json => "text",
                Kind::Bytes => "a blob",
            }
        )),
    }
}

/// The error for a value of `row` that does not fit `column`: it names the row by its key.
fn bad_row(table: &Table, row: &rusqlite::Row<'_>, column: &Column, reason: &str) -> Error {
    let key: Vec<String> = table
        .key
        .iter()
        .map(|name| {
            let shown = table
                .column(name)
                .and_then(|index| row.get_ref(index).ok())
                .map_or_else(
                    || "?".to_owned(),
                    |value| match value {
                        ValueRef::Integer(v) => v.to_string(),
                        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                        _ => "?".to_owned(),
                    },
                );
            format!("{name} = {shown}")
        })
        .collect();
    Error::invalid(
        &format!("{} row ({})", table.name, key.join(", ")),
        format!("column `{}` holds {reason}", column.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tables::TABLES;

    fn store_file(dir: &tempfile::TempDir) -> PathBuf {
        let path = dir.path().join("jobs.db");
        drop(crate::Store::open(&path).expect("open"));
        path
    }

    #[test]
    fn the_tables_name_every_table_and_column_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let snapshot = Snapshot::open(store_file(&dir)).expect("snapshot");
        let mut stmt = snapshot
            .conn
            .prepare(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT IN ('sqlite_sequence', 'job_counts') ORDER BY name",
            )
            .expect("prepare");
        let mut tables: Vec<String> = stmt
            .query_map([], |row| row.get(0))
            .expect("tables")
            .collect::<rusqlite::Result<_>>()
            .expect("tables");
        let mut described: Vec<String> = TABLES.iter().map(|t| t.name.to_owned()).collect();
        tables.sort();
        described.sort();
        assert_eq!(tables, described);
        for table in TABLES {
            let mut stmt = snapshot
                .conn
                .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1)")
                .expect("prepare");
            let columns: Vec<(String, String, bool)> = stmt
                .query_map([table.name], |row| {
                    let pk: i64 = row.get(3)?;
                    let notnull: bool = row.get(2)?;
                    // A primary key of a rowid table may hold NULL as far as SQLite says.
                    Ok((row.get(0)?, row.get(1)?, !(notnull || pk > 0)))
                })
                .expect("columns")
                .collect::<rusqlite::Result<_>>()
                .expect("columns");
            let expected: Vec<(String, String, bool)> = table
                .columns
                .iter()
                .map(|c| {
                    let declared = match c.kind {
                        Kind::Integer | Kind::Flag => "INTEGER",
                        Kind::Text | Kind::Json => "TEXT",
                        Kind::Bytes => "BLOB",
                    };
                    (c.name.to_owned(), declared.to_owned(), c.nullable)
                })
                .collect();
            assert_eq!(columns, expected, "{}", table.name);
        }
    }

    #[test]
    fn a_missing_file_an_older_or_a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.db");
        assert!(matches!(Snapshot::open(&missing), Err(Error::Io(_))));
        assert!(!missing.exists(), "a snapshot created the file");

        let older = dir.path().join("older.db");
        let conn = Connection::open(&older).expect("open");
        crate::migrate_to(&conn, SCHEMA_VERSION - 1).expect("migrate");
        drop(conn);
        let err = Snapshot::open(&older).expect_err("older");
        assert!(err.to_string().contains("jobstore migrate"), "{err}");
        let conn = Connection::open(&older).expect("open");
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .expect("version");
        assert_eq!(
            version,
            SCHEMA_VERSION - 1,
            "the snapshot migrated the file"
        );
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(conn);
        assert!(matches!(
            Snapshot::open(&older),
            Err(Error::SchemaTooNew { found, .. }) if found == SCHEMA_VERSION + 1
        ));
    }

    #[test]
    fn a_snapshot_cannot_write_and_leaves_no_wal_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = store_file(&dir);
        let wal = dir.path().join("jobs.db-wal");
        let shm = dir.path().join("jobs.db-shm");
        assert!(!wal.exists() && !shm.exists());
        let snapshot = Snapshot::open(&path).expect("snapshot");
        let refused = snapshot.conn.execute("DELETE FROM jobs", []);
        assert!(refused.is_err(), "{refused:?}");
        drop(snapshot);
        assert!(!wal.exists(), "-wal left behind");
        assert!(!shm.exists(), "-shm left behind");
    }

    #[test]
    fn a_snapshot_sees_the_file_as_it_was_when_it_began() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jobs.db");
        let store = crate::Store::open(&path).expect("open");
        store.enqueue(crate::NewJob::new("a")).expect("enqueue");
        let snapshot = Snapshot::open(&path).expect("snapshot");
        let deleted = store.enqueue(crate::NewJob::new("b")).expect("enqueue");
        assert_eq!(snapshot.count(&crate::tables::JOBS).expect("count"), 1);
        let mut kinds = Vec::new();
        snapshot
            .rows(&crate::tables::JOBS, |row| {
                if let Value::Text(kind) = row[2] {
                    kinds.push(kind.to_owned());
                }
                Ok::<_, Error>(())
            })
            .expect("rows");
        assert_eq!(kinds, ["a"]);
        drop(snapshot);
        store.cancel(deleted.id, "test").expect("cancel");
        store.delete(deleted.id).expect("delete");
        let snapshot = Snapshot::open(&path).expect("snapshot");
        assert_eq!(snapshot.count(&crate::tables::JOBS).expect("count"), 1);
        assert_eq!(
            snapshot.id_floor(&crate::tables::JOBS).expect("floor"),
            deleted.id,
            "the id of a deleted job is never handed out again"
        );
    }
}
