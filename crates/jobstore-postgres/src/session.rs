//! A connection's session: its client and the statements it prepared, which every statement
//! of the driver runs through ([`AsClient`]): each text is prepared once per session (a
//! `Parse`/`Describe` round trip) and then runs in one round trip (`Bind`/`Execute`), where
//! `postgres`' `query(&str, …)` prepares the text again on every call.
//!
//! **One session, its own statements.** A prepared statement exists only in the server session
//! that prepared it. A [`Session`] holds its client and its statements together, and a
//! writer's transaction ([`Tx`]) borrows both from one session, so a statement is only ever
//! run on the connection that prepared it. A session that is replaced (a writer connecting
//! again after a server restart, a pooled connection found broken and dropped by the pool)
//! takes its statements with it: the new one starts with none.
//!
//! **Rolled-back transactions keep their statements.** PostgreSQL's protocol documentation
//! (the extended query flow) gives a named prepared statement the life of its session, unless
//! it is closed; preparing and deallocating are not transactional (a `ROLLBACK`, or a
//! `ROLLBACK TO SAVEPOINT`, undoes neither). So a statement prepared inside a writer's
//! transaction, or inside a savepoint that is then rolled back (`ops::deadlock_retried`),
//! stays prepared and is kept. A test holds the server to this
//! (`tests/live.rs`, `a_statement_prepared_in_a_rolled_back_transaction_stays_prepared`).
//!
//! **A failed statement is forgotten** and prepared again at its next use: a statement the
//! server no longer knows (a pooler's `DISCARD ALL`, a `DEALLOCATE`), or whose result columns
//! a newer migration changed ("cached plan must not change result type") would otherwise fail
//! for the rest of the session. The cost is one prepare after a failed statement.
//!
//! **Plans.** The server plans a prepared statement for each run's values at first; after five
//! runs it may keep one plan for all values (a generic plan, `plan_cache_mode = auto`) when it
//! estimates that plan no costlier. That is PostgreSQL's ordinary trade for every client that
//! prepares its statements.
//!
//! **Bounded.** A session keeps at most [`MAX_STATEMENTS`]: the operations have a fixed set
//! of about sixty texts, but lists are built from their filters
//! ([`jobstore::driver::list_sql`]), so their texts are open-ended. When the cache is full,
//! the least recently used statement is dropped (dropping a `Statement` closes it on the
//! server).

use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement};

use crate::driver::Manager;

/// The most statements a session keeps prepared.
pub(crate) const MAX_STATEMENTS: usize = 256;

/// A bounded map from a statement's text to its value (a session's prepared statements), which
/// drops the least recently used entry to take a new one when full.
#[derive(Debug)]
pub(crate) struct Cache<V> {
    entries: HashMap<String, (V, u64)>,
    /// Counts the uses; an entry carries the count of its latest use.
    uses: u64,
    capacity: usize,
}

impl<V: Clone> Cache<V> {
    /// An empty cache of at most `capacity` entries (at least one).
    pub(crate) fn new(capacity: usize) -> Cache<V> {
        Cache {
            entries: HashMap::new(),
            uses: 0,
            capacity: capacity.max(1),
        }
    }

    /// The value of `key`, counted as its latest use.
    pub(crate) fn get(&mut self, key: &str) -> Option<V> {
        self.uses += 1;
        let uses = self.uses;
        self.entries.get_mut(key).map(|(value, used)| {
            *used = uses;
            value.clone()
        })
    }

    /// Keeps `value` for `key`; when full, first drops the least recently used entry. (A
    /// scan of at most `capacity` entries, and only for a text that was not kept: beside the
    /// round trip that prepared it, nothing.)
    pub(crate) fn insert(&mut self, key: &str, value: V) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(key) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.entries.remove(&oldest);
            }
        }
        self.uses += 1;
        self.entries.insert(key.to_owned(), (value, self.uses));
    }

    /// Forgets `key`.
    pub(crate) fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// How many entries are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The statements a session prepared, by their text; and whether the server refused a write
/// as read-only (a standby, or a primary fenced read-only): the session is then no use for
/// writes, and a writer opens another (which a URL's `target_session_attrs=read-write` sends
/// to the host taking writes now).
#[derive(Debug)]
pub(crate) struct Statements {
    kept: Cache<Statement>,
    refused_writes: bool,
}

impl Statements {
    fn new() -> Statements {
        Statements {
            kept: Cache::new(MAX_STATEMENTS),
            refused_writes: false,
        }
    }
}

/// Runs `run` with the statement of `sql` prepared on `client` (kept in `statements`, which
/// must be that client's session's), preparing it on a miss; forgets it when `run` fails.
fn prepared<C: GenericClient, T>(
    client: &mut C,
    statements: &mut Statements,
    sql: &str,
    run: impl FnOnce(&mut C, &Statement) -> Result<T, postgres::Error>,
) -> Result<T, postgres::Error> {
    let statement = match statements.kept.get(sql) {
        Some(statement) => statement,
        None => {
            let statement = client.prepare(sql)?;
            statements.kept.insert(sql, statement.clone());
            statement
        }
    };
    let answer = run(client, &statement);
    if let Err(err) = &answer {
        statements.kept.remove(sql);
        if err.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
            statements.refused_writes = true;
        }
    }
    answer
}

/// A connection the operations run on (a pooled reader's session, or a writer's transaction),
/// with the statements of its session: each method takes the SQL text, and prepares it only
/// the first time the session runs it.
pub(crate) trait AsClient {
    /// The client type.
    type Client: GenericClient;

    /// The client, and the statements its session prepared.
    fn parts(&mut self) -> (&mut Self::Client, &mut Statements);

    /// The rows `sql` answers.
    fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let (client, statements) = self.parts();
        prepared(client, statements, sql, |client, statement| {
            client.query(statement, params)
        })
    }

    /// The one row `sql` answers (an error for none or several).
    fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let (client, statements) = self.parts();
        prepared(client, statements, sql, |client, statement| {
            client.query_one(statement, params)
        })
    }

    /// The row `sql` answers, if any (an error for several).
    fn query_opt(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, postgres::Error> {
        let (client, statements) = self.parts();
        prepared(client, statements, sql, |client, statement| {
            client.query_opt(statement, params)
        })
    }

    /// Runs `sql`; answers how many rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let (client, statements) = self.parts();
        prepared(client, statements, sql, |client, statement| {
            client.execute(statement, params)
        })
    }
}

/// A connection to the server and the statements prepared on it.
pub(crate) struct Session {
    // Dropped first: a statement dropped after its client has nothing left to close.
    client: Client,
    statements: Statements,
}

impl Session {
    /// A session on `client`, with no statement prepared yet.
    pub(crate) fn new(client: Client) -> Session {
        Session {
            client,
            statements: Statements::new(),
        }
    }

    /// Whether the server refused a write of this session as read-only.
    pub(crate) fn refused_writes(&self) -> bool {
        self.statements.refused_writes
    }

    /// The client, for what runs outside the statements (a simple query).
    pub(crate) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Whether the connection has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Begins a transaction whose statements are this session's, at read committed whatever
    /// the database's default ([`BEGIN_WRITE`]).
    pub(crate) fn transaction(&mut self) -> Result<Tx<'_>, postgres::Error> {
        Ok(Tx {
            tx: self
                .client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::ReadCommitted)
                .start()?,
            statements: &mut self.statements,
            fresh: true,
        })
    }
}

impl AsClient for Session {
    type Client = Client;
    fn parts(&mut self) -> (&mut Client, &mut Statements) {
        (&mut self.client, &mut self.statements)
    }
}

impl AsClient for r2d2::PooledConnection<Manager> {
    type Client = Client;
    fn parts(&mut self) -> (&mut Client, &mut Statements) {
        let session: &mut Session = self;
        session.parts()
    }
}

/// How a write's transaction begins. Read committed, pinned: the driver's statements are
/// written for it (a claim's `FOR UPDATE SKIP LOCKED` passes over rows other writers hold, an
/// `UPDATE` re-checks its `WHERE` on the row it waited for), and a database whose default is
/// repeatable read or serializable would fail them with serialization errors instead.
const BEGIN_WRITE: &str = "START TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// A writer's transaction (or a savepoint of it) with the statements of its session.
pub(crate) struct Tx<'a> {
    tx: postgres::Transaction<'a>,
    statements: &'a mut Statements,
    /// Nothing has run in the transaction since its `BEGIN` (never so for a savepoint).
    fresh: bool,
}

impl Tx<'_> {
    /// Whether nothing has run in the transaction since its `BEGIN` (a savepoint never is
    /// fresh, nor is its transaction once it was taken).
    pub(crate) fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Takes a savepoint (`SAVEPOINT`): a transaction of its own within this one, which
    /// [`Tx::rollback`] undoes alone and [`Tx::commit`] releases.
    pub(crate) fn savepoint(&mut self, name: &str) -> Result<Tx<'_>, postgres::Error> {
        self.fresh = false;
        Ok(Tx {
            tx: self.tx.savepoint(name)?,
            statements: &mut *self.statements,
            fresh: false,
        })
    }

    /// Ends the transaction (`ROLLBACK`, which a transaction that a failed statement aborted
    /// accepts) and begins another in its place (`BEGIN`): one round trip. Only for a fresh
    /// transaction ([`Tx::is_fresh`]) whose first statement failed, so that nothing but that
    /// statement is undone. The statements the session prepared stay prepared (`ROLLBACK`
    /// does not deallocate them).
    pub(crate) fn begin_again(&mut self) -> Result<(), postgres::Error> {
        self.tx.batch_execute(&format!("ROLLBACK; {BEGIN_WRITE}"))?;
        self.fresh = true;
        Ok(())
    }

    /// `COMMIT` (`RELEASE` for a savepoint).
    pub(crate) fn commit(self) -> Result<(), postgres::Error> {
        self.tx.commit()
    }

    /// `ROLLBACK` (`ROLLBACK TO` the savepoint, for one).
    pub(crate) fn rollback(self) -> Result<(), postgres::Error> {
        self.tx.rollback()
    }
}

impl<'a> AsClient for Tx<'a> {
    type Client = postgres::Transaction<'a>;
    fn parts(&mut self) -> (&mut postgres::Transaction<'a>, &mut Statements) {
        // Whatever runs on the client from here on makes the transaction no longer fresh.
        self.fresh = false;
        (&mut self.tx, &mut *self.statements)
    }
}

#[cfg(test)]
mod tests {
    use super::Cache;

    #[test]
    fn a_full_cache_drops_its_least_recently_used_entry() {
        let mut cache = Cache::new(3);
        cache.insert("a", 1);
        cache.insert("b", 2);
        cache.insert("c", 3);
        // "a" is used again: "b" is now the least recently used.
        assert_eq!(cache.get("a"), Some(1));
        cache.insert("d", 4);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("b"), None);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("c"), Some(3));
        assert_eq!(cache.get("d"), Some(4));
        // Replacing a kept entry drops nothing else.
        cache.insert("c", 30);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("c"), Some(30));
        cache.remove("c");
        assert_eq!(cache.get("c"), None);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_cache_never_holds_more_than_its_capacity() {
        let mut cache = Cache::new(super::MAX_STATEMENTS);
        cache.insert("hot", 0);
        for n in 1..super::MAX_STATEMENTS * 3 {
            cache.insert(&format!("SELECT {n}"), n);
            assert!(cache.len() <= super::MAX_STATEMENTS);
            // An entry used between the others' inserts is never the one dropped.
            assert_eq!(cache.get("hot"), Some(0));
        }
        assert_eq!(cache.len(), super::MAX_STATEMENTS);
    }
}
