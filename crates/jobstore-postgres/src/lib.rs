//! The PostgreSQL storage of jobstore, for several daemons sharing one database: its schema,
//! the migrations that build it, and its driver ([`PostgresDriver`], for
//! `jobstore::Store::with_driver`): the whole storage seam with the SQLite driver's meaning
//! (jobs, lists, uploaded data and outputs, definitions, the activity summaries, check),
//! safe for several daemons at once. Backup is the engine's own (`pg_dump`,
//! `pg_basebackup`, a managed service's snapshots): [`PostgresDriver`] answers
//! `Error::Unsupported` for it, and leaves checkpoints to the server.
//!
//! **Uploaders.** Each driver instance names itself `jobstore-<64 random bits>`, sets that as
//! the `application_name` of every connection it opens, and writes it as the uploader of the
//! data batches it reserves. An uploader is gone once no session of the server carries its
//! name (`pg_stat_activity`): the server tells, across machines, with no clock to trust. A
//! daemon killed mid-upload loses its sessions at once; a vanished machine's last until the
//! server's TCP keepalive gives up, and its batches are left alone until then. Behind a
//! pooler that keeps server sessions open (PgBouncer) a name can outlive its daemon: there the
//! idle purge of incomplete batches (`Store::purge_incomplete_batches`) reclaims them.
//!
//! **Outages and wake-ups.** A server that restarts or goes away is ridden out: while it is
//! out of reach every call is refused at once with `Error::Unavailable` (the daemon's 503
//! `storage_unavailable`), and the same driver serves again once it is back, its connections
//! opened anew. A job one daemon makes claimable wakes the waiting claims of the others at once
//! (`LISTEN`/`NOTIFY`); their periodic re-poll is the fallback. The driver's module says how.
//!
//! The schema keeps the meaning of the SQLite store's (`crates/jobstore/migrations`): the
//! same tables, states, `CHECK`s, partial unique index of live unique keys, events written in
//! the transaction of their change, data in bounded chunks, idempotency keys and tenants.
//! `migrations/0001_initial.sql` says what differs and why, `0002_job_count_changes.sql` how
//! the job counts are kept without writers waiting for each other, `0003_filters_in_sort_indexes.sql`
//! which filters the list indexes carry, `0004_failed_or_cancelled_sort_indexes.sql` why
//! failed and cancelled jobs have text-sort indexes of their own. `schema.sql` beside them is the current schema for
//! people; a test holds the migrations to it.
//!
//! [`migrate`] is safe to run from every daemon at once: the migrations run in one
//! transaction under an advisory lock, and each is recorded in `jobstore_migrations`.

mod connect;
pub mod copy;
mod driver;
mod ops;
mod session;
mod wake;
mod writers;

pub use driver::{PostgresDriver, PostgresOptions};

use postgres::{Client, GenericClient};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 4;

/// The key of the advisory lock that migrations hold (the bytes of "jobstore").
const MIGRATION_LOCK: i64 = 0x6a6f_6273_746f_7265;

/// One migration: the version it makes and its SQL.
struct Migration {
    version: i64,
    sql: &'static str,
}

/// Every migration, in order. Migration `n` turns version `n - 1` into version `n`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/0002_job_count_changes.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/0003_filters_in_sort_indexes.sql"),
    },
    Migration {
        version: 4,
        sql: include_str!("../migrations/0004_failed_or_cancelled_sort_indexes.sql"),
    },
];

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database answered with an error, or could not be reached.
    #[error("postgres: {0}")]
    Postgres(#[from] postgres::Error),
    /// The database was migrated by a newer build.
    #[error("the database has schema version {found}, newer than this build's {supported}")]
    NewerSchema {
        /// The database's version.
        found: i64,
        /// This build's.
        supported: i64,
    },
}

/// The schema version of the database: 0 before any migration.
///
/// # Errors
/// [`Error::Postgres`].
pub fn schema_version(client: &mut impl GenericClient) -> Result<i64, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('jobstore_migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(0);
    }
    Ok(client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM jobstore_migrations",
            &[],
        )?
        .get(0))
}

/// Brings the database to [`SCHEMA_VERSION`] and answers the version it found. All the
/// missing migrations run in one transaction; concurrent callers wait for each other on an
/// advisory lock, and the later ones find nothing left to do.
///
/// # Errors
/// [`Error::NewerSchema`] (nothing is changed); [`Error::Postgres`] (nothing is changed
/// either: the transaction rolls back).
pub fn migrate(client: &mut Client) -> Result<i64, Error> {
    migrate_to(client, SCHEMA_VERSION)
}

/// Brings the database to `target` (at most [`SCHEMA_VERSION`]), as [`migrate`] does; for
/// tests of upgrades from an older version.
///
/// # Errors
/// As [`migrate`].
pub fn migrate_to(client: &mut Client, target: i64) -> Result<i64, Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS jobstore_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let found = schema_version(&mut tx)?;
    if found > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for migration in MIGRATIONS
        .iter()
        .filter(|m| m.version > found && m.version <= target)
    {
        log::info!("applying PostgreSQL migration {}", migration.version);
        tx.batch_execute(migration.sql)?;
        tx.execute(
            "INSERT INTO jobstore_migrations (version) VALUES ($1)",
            &[&migration.version],
        )?;
    }
    tx.commit()?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_migrations_are_numbered_in_order_up_to_the_schema_version() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i64 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(SCHEMA_VERSION));
    }
}
