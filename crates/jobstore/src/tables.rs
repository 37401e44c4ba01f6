//! The store's tables as every engine keeps them: their names, their columns and what each
//! column holds, engine-neutral. A store moved from one engine to another is copied table by
//! table in [`TABLES`]'s order (a table after those it refers to), each column converted by
//! its [`Kind`]: the SQLite snapshot reader ([`crate::sqlite::Snapshot`]) reads them, another
//! engine's crate writes them.
//!
//! What is not here is derived, and rebuilt by whoever writes a copy: the job counts
//! (`job_counts`, kept by triggers from `jobs`), SQLite's `sqlite_sequence` (read as
//! [`crate::sqlite::Snapshot::id_floor`]) and an engine's own bookkeeping (its migrations).
//! Tests on each engine hold this list to the engine's schema, column by column.

/// What a column holds, and so how each engine stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A 64-bit integer: ids, counters, times (milliseconds since the Unix epoch, UTC).
    /// SQLite `INTEGER`, PostgreSQL `BIGINT`.
    Integer,
    /// UTF-8 text. SQLite `TEXT`, PostgreSQL `TEXT` (which cannot hold a NUL character).
    Text,
    /// A flag. SQLite `INTEGER` 0 or 1, PostgreSQL `BOOLEAN`.
    Flag,
    /// A JSON document, kept as the text it was written as (member order, number spelling).
    /// SQLite `TEXT` (checked by `json_valid`), PostgreSQL `JSON`.
    Json,
    /// Bytes. SQLite `BLOB`, PostgreSQL `BYTEA`.
    Bytes,
}

/// One column of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name, the same in every engine.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Whether it may be NULL.
    pub nullable: bool,
}

/// One table of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    /// Its name, the same in every engine.
    pub name: &'static str,
    /// Every column, in the order a copy reads and writes them.
    pub columns: &'static [Column],
    /// The columns of its primary key: a copy reads the rows in this order, and names a row
    /// by them.
    pub key: &'static [&'static str],
    /// Whether its first column is an id drawn from a counter and never reused (SQLite
    /// `AUTOINCREMENT`, a PostgreSQL identity): a copy keeps the ids and sets the target's
    /// counter past them.
    pub identity: bool,
}

impl Table {
    /// The index of the column named `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

const fn col(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: false,
    }
}

const fn opt(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: true,
    }
}

use Kind::{Bytes, Flag, Integer, Json, Text};

/// `jobs`: one row per job.
pub const JOBS: Table = Table {
    name: "jobs",
    columns: &[
        col("id", Integer),
        col("tenant", Text),
        col("kind", Text),
        col("queue", Text),
        col("name", Text),
        col("source", Text),
        col("target", Text),
        col("created_by", Text),
        col("dialect", Text),
        col("state", Text),
        col("priority", Integer),
        col("run_at", Integer),
        col("attempt", Integer),
        col("max_attempts", Integer),
        col("leases", Integer),
        opt("lease_owner", Text),
        opt("lease_token", Integer),
        opt("lease_expires_at", Integer),
        opt("heartbeat_at", Integer),
        opt("cancel_requested_at", Integer),
        opt("unique_key", Text),
        opt("definition_id", Text),
        opt("restart_of", Integer),
        col("restartable", Flag),
        col("payload", Json),
        opt("result", Json),
        opt("error", Text),
        col("progress", Json),
        opt("phase", Text),
        col("created_at", Integer),
        col("updated_at", Integer),
        opt("started_at", Integer),
        opt("finished_at", Integer),
    ],
    key: &["id"],
    identity: true,
};

/// `job_events`: the transition history of every job.
pub const JOB_EVENTS: Table = Table {
    name: "job_events",
    columns: &[
        col("id", Integer),
        col("job_id", Integer),
        col("at", Integer),
        col("event", Text),
        opt("from_state", Text),
        col("to_state", Text),
        col("actor", Text),
        opt("detail", Text),
    ],
    key: &["id"],
    identity: true,
};

/// `job_steps`: the steps of each job executed from a definition.
pub const JOB_STEPS: Table = Table {
    name: "job_steps",
    columns: &[
        col("job_id", Integer),
        col("position", Integer),
        col("step_id", Text),
        col("step_type_id", Text),
        col("description", Text),
        col("execution_scope", Text),
        col("status", Text),
        opt("exit_code", Text),
        opt("message", Text),
        opt("started_at", Integer),
        opt("finished_at", Integer),
        col("updated_at", Integer),
    ],
    key: &["job_id", "position"],
    identity: false,
};

/// `job_logs`: log lines per job; the id is the line's sequence number.
pub const JOB_LOGS: Table = Table {
    name: "job_logs",
    columns: &[
        col("id", Integer),
        col("job_id", Integer),
        col("at", Integer),
        col("level", Text),
        col("message", Text),
    ],
    key: &["id"],
    identity: true,
};

/// `job_data_batches`: the uploaded data batches and outputs of each job.
pub const JOB_DATA_BATCHES: Table = Table {
    name: "job_data_batches",
    columns: &[
        col("job_id", Integer),
        col("batch", Integer),
        col("bytes", Integer),
        col("complete", Flag),
        col("created_at", Integer),
        col("updated_at", Integer),
        opt("uploader", Text),
        opt("name", Text),
        opt("lease_token", Integer),
    ],
    key: &["job_id", "batch"],
    identity: false,
};

/// `job_data_chunks`: the bytes of each batch, in bounded chunks.
pub const JOB_DATA_CHUNKS: Table = Table {
    name: "job_data_chunks",
    columns: &[
        col("job_id", Integer),
        col("batch", Integer),
        col("chunk", Integer),
        col("data", Bytes),
    ],
    key: &["job_id", "batch", "chunk"],
    identity: false,
};

/// `idempotency_keys`: the job each retried create answers.
pub const IDEMPOTENCY_KEYS: Table = Table {
    name: "idempotency_keys",
    columns: &[
        col("tenant", Text),
        col("key", Text),
        col("job_id", Integer),
        col("fingerprint", Text),
        col("created_at", Integer),
    ],
    key: &["tenant", "key"],
    identity: false,
};

/// `job_definitions`: named job definitions.
pub const JOB_DEFINITIONS: Table = Table {
    name: "job_definitions",
    columns: &[
        col("tenant", Text),
        col("id", Text),
        col("description", Text),
        col("queue", Text),
        col("restartable", Flag),
        col("enabled", Flag),
        col("valid", Flag),
        col("created_at", Integer),
        col("updated_at", Integer),
    ],
    key: &["tenant", "id"],
    identity: false,
};

/// `job_definition_steps`: the ordered steps of each definition.
pub const JOB_DEFINITION_STEPS: Table = Table {
    name: "job_definition_steps",
    columns: &[
        col("tenant", Text),
        col("definition_id", Text),
        col("position", Integer),
        col("step_id", Text),
        col("step_type_id", Text),
        col("description", Text),
        col("execution_scope", Text),
    ],
    key: &["tenant", "definition_id", "position"],
    identity: false,
};

/// Every table the store keeps, each after the tables it refers to.
pub const TABLES: &[Table] = &[
    JOBS,
    JOB_EVENTS,
    JOB_STEPS,
    JOB_LOGS,
    JOB_DATA_BATCHES,
    JOB_DATA_CHUNKS,
    IDEMPOTENCY_KEYS,
    JOB_DEFINITIONS,
    JOB_DEFINITION_STEPS,
];

/// One value of a row, borrowed from where it was read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// NULL, in a nullable column.
    Null,
    /// A [`Kind::Integer`] value.
    Integer(i64),
    /// A [`Kind::Text`] value.
    Text(&'a str),
    /// A [`Kind::Flag`] value.
    Flag(bool),
    /// A [`Kind::Json`] value: well-formed JSON text.
    Json(&'a str),
    /// A [`Kind::Bytes`] value.
    Bytes(&'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_column_is_a_column_and_identities_lead_with_an_integer_id() {
        for table in TABLES {
            for key in table.key {
                assert!(table.column(key).is_some(), "{}.{key}", table.name);
            }
            if table.identity {
                assert_eq!(table.columns[0], col("id", Integer), "{}", table.name);
                assert_eq!(table.key, &["id"], "{}", table.name);
            }
        }
    }
}
