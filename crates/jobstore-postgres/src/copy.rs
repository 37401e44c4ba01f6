//! A SQLite store copied into a PostgreSQL database: what moves a single node to PostgreSQL
//! (`jobstore copy`).
//!
//! [`copy_from_sqlite`] reads a [`Snapshot`] of the file (one read transaction: the file as
//! it was at one moment) and writes every table of [`jobstore::tables::TABLES`] into a
//! migrated, empty target in **one** transaction: either everything is there, with the same
//! ids, or nothing is. Rows stream through `COPY … FROM STDIN (FORMAT binary)`, one at a time
//! from SQLite's cursor into the connection's send buffer, so memory stays bounded whatever
//! the file holds (a data chunk is at most 1 MiB).
//!
//! What differs between the schemas, and what the copy does about it:
//! - integers (ids, times in milliseconds, counters) are 64-bit on both: copied as they are;
//! - flags (SQLite `INTEGER` 0 or 1) become `BOOLEAN`; any other number is refused;
//! - JSON (SQLite `TEXT` under `json_valid`) becomes `json`, byte for byte the same text
//!   (member order and number spelling kept, as both stores answer a document as written);
//! - blobs become `bytea`;
//! - text is UTF-8 on both, but PostgreSQL's cannot hold a NUL character: a row with one is
//!   refused, naming the row and column;
//! - the uploader of an incomplete data batch (an upload cut off, invisible, awaiting deletion)
//!   names a SQLite process (`pid:start-time`), which means nothing to PostgreSQL: it is
//!   copied as NULL (unknown), so the idle purge of incomplete batches reclaims the batch;
//! - `job_counts` is PostgreSQL's own (rows of changes to the counts, summed): its insert
//!   trigger is disabled for the copy (it would add count rows for every batch of jobs
//!   copied) and the counts are written from the copied jobs in one statement, one row per
//!   tenant, queue and state, in the same transaction;
//! - the identities (`jobs.id`, `job_events.id`, `job_logs.id`, the log's sequence numbers)
//!   restart past the highest id the file ever handed out (`sqlite_sequence` remembers those
//!   of deleted rows), so no id is ever handed out twice.
//!
//! The target must hold no row of any of the store's tables: a copy never merges. It is
//! locked (`ACCESS EXCLUSIVE`) for the copy, so a daemon already started on it waits, and a
//! second copy waits and then finds it no longer empty.

use std::io::Write;
use std::time::{Duration, Instant};

use jobstore::sqlite::Snapshot;
use jobstore::tables::{JOB_DATA_BATCHES, JOB_DATA_CHUNKS, TABLES, Table, Value};
use postgres::{Client, Config, CopyInWriter, NoTls, Transaction};

/// How often (in rows) [`copy_from_sqlite`] reports [`Progress::Rows`].
const PROGRESS_EVERY: u64 = 10_000;

/// The signature and empty header of PostgreSQL's binary `COPY` format.
const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// What a copy is doing, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// The target is migrated, locked and found empty; the copy begins.
    Started {
        /// The target's schema version before the copy migrated it (0: a new database).
        migrated_from: i64,
    },
    /// A table's copy begins.
    Table {
        /// The table.
        table: &'static str,
        /// How many rows the source holds.
        rows: u64,
    },
    /// Rows of the table are copied so far (every 10,000).
    Rows {
        /// The table.
        table: &'static str,
        /// Rows written so far.
        rows: u64,
    },
    /// A table is copied.
    Copied(&'a Copied),
    /// Every table is copied; the job counts and identities are being set and the
    /// transaction committed.
    Committing,
}

/// One table's copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// The table.
    pub table: &'static str,
    /// Rows copied.
    pub rows: u64,
    /// Bytes of uploaded data and outputs (the chunks' bytes; 0 for other tables).
    pub data_bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// What a finished copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The target's schema version before the copy migrated it (0: a new database).
    pub migrated_from: i64,
    /// Each table's copy, in the order they were copied.
    pub tables: Vec<Copied>,
    /// Incomplete data batches copied with their uploader cleared.
    pub incomplete_batches: u64,
    /// Where each identity of the target (`table`, its next id) restarts.
    pub next_ids: Vec<(&'static str, i64)>,
    /// The whole copy, from connecting to the commit.
    pub elapsed: Duration,
}

impl Summary {
    /// Rows copied, every table's.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Bytes of uploaded data and outputs copied.
    pub fn data_bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.data_bytes).sum()
    }

    /// Rows copied of `table`.
    pub fn rows_of(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .filter(|t| t.table == table)
            .map(|t| t.rows)
            .sum()
    }
}

/// Why a copy failed. In every case nothing was committed: the target holds what it held
/// before (its migration to the current schema aside).
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The target already holds rows of the store's tables; a copy never merges.
    #[error(
        "the target database is not empty ({}): a copy goes only into a database without jobs \
         or definitions",
        tables.join(", ")
    )]
    NotEmpty {
        /// The tables that hold rows.
        tables: Vec<&'static str>,
    },
    /// Reading the source failed, or a value in it does not fit its column.
    #[error("source: {0}")]
    Source(#[from] jobstore::Error),
    /// A value PostgreSQL cannot store.
    #[error("{table} row ({key}): column `{column}` {reason}")]
    Unstorable {
        /// The table.
        table: &'static str,
        /// The row's key, as `column = value` pairs.
        key: String,
        /// The column.
        column: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// Migrating the target failed, or a newer build migrated it.
    #[error("target: {0}")]
    Migrate(#[from] crate::Error),
    /// The target refused a statement or was lost.
    #[error("target: {0}")]
    Target(#[from] postgres::Error),
    /// Sending rows to the target failed (the connection was lost, or the server ended the
    /// `COPY`).
    #[error("target: {0}")]
    Send(#[from] std::io::Error),
}

/// The `application_name` of a copy's connection (`pg_stat_activity` shows it).
pub const APPLICATION_NAME: &str = "jobstore copy";

/// Connects to the database at `url` (`postgres://user@host:port/db`, several hosts and
/// `target_session_attrs` as the driver takes them) for [`copy_from_sqlite`], as
/// [`APPLICATION_NAME`].
///
/// # Errors
/// [`CopyError::Target`]: the URL does not parse, or the server cannot be reached or refuses.
pub fn connect(url: &str) -> Result<Client, CopyError> {
    let mut config: Config = url.parse()?;
    config.application_name(APPLICATION_NAME);
    Ok(config.connect(NoTls)?)
}

/// Copies the store `source` holds into the database `client` is connected to: migrates it
/// ([`crate::migrate`], committed on its own), then in one transaction locks the store's
/// tables, refuses unless they are all empty, copies every table, rebuilds the job counts,
/// sets the identities past the copied ids and commits. `progress` hears what happens.
///
/// # Errors
/// [`CopyError`]; nothing of the copy is committed.
pub fn copy_from_sqlite(
    source: &Snapshot,
    client: &mut Client,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary, CopyError> {
    let started = Instant::now();
    let migrated_from = crate::migrate(client)?;
    let mut tx = client.transaction()?;
    // A copy is one long transaction: no server default may end it half way. A daemon's
    // session stuck in a transaction on these tables must not hold the copy forever either.
    tx.batch_execute(
        "SET LOCAL statement_timeout = 0; \
         SET LOCAL idle_in_transaction_session_timeout = 0; \
         SET LOCAL lock_timeout = '60s'",
    )?;
    let names: Vec<&str> = TABLES.iter().map(|t| t.name).collect();
    tx.batch_execute(&format!(
        "LOCK TABLE {}, job_counts IN ACCESS EXCLUSIVE MODE",
        names.join(", ")
    ))?;
    let mut held = Vec::new();
    for table in TABLES {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {})", table.name);
        if tx.query_one(&sql, &[])?.try_get::<_, bool>(0)? {
            held.push(table.name);
        }
    }
    if !held.is_empty() {
        return Err(CopyError::NotEmpty { tables: held });
    }
    progress(Progress::Started { migrated_from });

    // No count rows per batch of jobs copied: the counts are written once from the copied
    // jobs below, in this transaction (a DDL statement, undone with it).
    tx.batch_execute("ALTER TABLE jobs DISABLE TRIGGER job_counts_on_insert")?;
    let mut tables = Vec::with_capacity(TABLES.len());
    let mut incomplete_batches = 0;
    for table in TABLES {
        let copied = copy_table(source, &mut tx, table, &mut incomplete_batches, progress)?;
        progress(Progress::Copied(&copied));
        tables.push(copied);
    }

    progress(Progress::Committing);
    tx.batch_execute(
        "DELETE FROM job_counts; \
         INSERT INTO job_counts (tenant, queue, state, jobs) \
         SELECT tenant, queue, state, count(*) FROM jobs GROUP BY tenant, queue, state; \
         ALTER TABLE jobs ENABLE TRIGGER job_counts_on_insert",
    )?;
    let mut next_ids = Vec::new();
    for table in TABLES.iter().filter(|t| t.identity) {
        // Past the highest id the file ever handed out, and never back below what the
        // target's own counter reached (a database whose jobs were all deleted).
        let current: i64 = tx
            .query_one(
                "SELECT coalesce(pg_sequence_last_value(\
                 pg_get_serial_sequence($1, 'id')::regclass), 0)",
                &[&table.name],
            )?
            .try_get(0)?;
        let next = source.id_floor(table)?.max(current).saturating_add(1);
        // ALTER TABLE is undone with the transaction (setval would not be); its value
        // cannot be a parameter, and is a number.
        tx.batch_execute(&format!(
            "ALTER TABLE {} ALTER COLUMN id RESTART WITH {next}",
            table.name
        ))?;
        next_ids.push((table.name, next));
    }
    tx.commit()?;
    Ok(Summary {
        migrated_from,
        tables,
        incomplete_batches,
        next_ids,
        elapsed: started.elapsed(),
    })
}

/// Copies one table with a binary `COPY`, row by row.
fn copy_table(
    source: &Snapshot,
    tx: &mut Transaction<'_>,
    table: &'static Table,
    incomplete_batches: &mut u64,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Copied, CopyError> {
    let started = Instant::now();
    progress(Progress::Table {
        table: table.name,
        rows: source.count(table)?,
    });
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let sql = format!(
        "COPY {} ({}) FROM STDIN (FORMAT binary)",
        table.name,
        columns.join(", ")
    );
    let mut writer = tx.copy_in(sql.as_str())?;
    writer.write_all(COPY_HEADER)?;
    let uploader = (table.name == JOB_DATA_BATCHES.name)
        .then(|| table.column("uploader"))
        .flatten();
    let complete = table.column("complete");
    let mut data_bytes = 0u64;
    let mut rows = 0u64;
    source.rows(table, |row| {
        let incomplete =
            uploader.is_some() && complete.is_some_and(|c| matches!(row[c], Value::Flag(false)));
        if incomplete {
            *incomplete_batches += 1;
        }
        write_row(&mut writer, table, row, |index| {
            incomplete && Some(index) == uploader
        })?;
        if table.name == JOB_DATA_CHUNKS.name {
            data_bytes += row
                .iter()
                .map(|v| match v {
                    Value::Bytes(b) => b.len() as u64,
                    _ => 0,
                })
                .sum::<u64>();
        }
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            progress(Progress::Rows {
                table: table.name,
                rows,
            });
        }
        Ok::<(), CopyError>(())
    })?;
    writer.write_all(&(-1i16).to_be_bytes())?;
    let written = writer.finish()?;
    debug_assert_eq!(written, rows);
    Ok(Copied {
        table: table.name,
        rows,
        data_bytes,
        elapsed: started.elapsed(),
    })
}

/// One row in the binary `COPY` format: the number of fields, then each field's length (-1
/// for NULL) and bytes, in the column's PostgreSQL type: `int8`, `text`, `bool`, `json` (its
/// binary form is its text) or `bytea`. `cleared` columns are written as NULL.
fn write_row(
    writer: &mut CopyInWriter<'_>,
    table: &Table,
    row: &[Value<'_>],
    cleared: impl Fn(usize) -> bool,
) -> Result<(), CopyError> {
    let fields = i16::try_from(row.len()).unwrap_or(i16::MAX);
    writer.write_all(&fields.to_be_bytes())?;
    for (index, value) in row.iter().enumerate() {
        if cleared(index) {
            writer.write_all(&(-1i32).to_be_bytes())?;
            continue;
        }
        let unstorable = |reason| CopyError::Unstorable {
            table: table.name,
            key: key_of(table, row),
            column: table.columns.get(index).map_or("?", |c| c.name),
            reason,
        };
        let bytes: &[u8] = match value {
            Value::Null => {
                writer.write_all(&(-1i32).to_be_bytes())?;
                continue;
            }
            Value::Integer(v) => {
                writer.write_all(&8i32.to_be_bytes())?;
                writer.write_all(&v.to_be_bytes())?;
                continue;
            }
            Value::Flag(v) => {
                writer.write_all(&1i32.to_be_bytes())?;
                writer.write_all(&[u8::from(*v)])?;
                continue;
            }
            Value::Text(text) | Value::Json(text) => {
                if text.contains('\0') {
                    return Err(unstorable(
                        "holds a NUL character, which PostgreSQL text cannot store",
                    ));
                }
                text.as_bytes()
            }
            Value::Bytes(bytes) => bytes,
        };
        let length = i32::try_from(bytes.len())
            .map_err(|_| unstorable("holds more than 2 GiB, more than a field of COPY takes"))?;
        writer.write_all(&length.to_be_bytes())?;
        writer.write_all(bytes)?;
    }
    Ok(())
}

/// A row's key as `column = value` pairs, to name it in an error.
fn key_of(table: &Table, row: &[Value<'_>]) -> String {
    table
        .key
        .iter()
        .map(|name| {
            let value = table.column(name).and_then(|i| row.get(i));
            match value {
                Some(Value::Integer(v)) => format!("{name} = {v}"),
                Some(Value::Text(t)) => format!("{name} = {t:?}"),
                _ => format!("{name} = ?"),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_the_binary_copy_signature_with_no_flags_and_no_extension() {
        assert_eq!(&COPY_HEADER[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(COPY_HEADER.len(), 11 + 4 + 4);
    }

    #[test]
    fn a_row_is_named_by_its_key() {
        let row = [Value::Text("acme"), Value::Text("k1"), Value::Integer(7)];
        assert_eq!(
            key_of(&jobstore::tables::IDEMPOTENCY_KEYS, &row),
            "tenant = \"acme\", key = \"k1\""
        );
    }
}
