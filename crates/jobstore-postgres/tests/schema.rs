//! The PostgreSQL schema: migrations build exactly `schema.sql`, run safely from several
//! daemons at once, refuse a newer database, upgrade an older one, and the schema holds the
//! store's invariants.

mod support;

use jobstore::driver::Driver;
use jobstore_postgres::{
    Error, PostgresDriver, PostgresOptions, SCHEMA_VERSION, migrate, migrate_to, schema_version,
};
use postgres::Client;

use support::{connect, fresh_database};

const SCHEMA_SQL: &str = include_str!("../schema.sql");

/// The catalog of a database, as sorted lines: columns, constraints, indexes, triggers,
/// views and functions of the public schema (the migrations' own table left out).
fn catalog(client: &mut Client) -> Vec<String> {
    let queries = [
        "SELECT format('column %s.%s %s null=%s default=%s', table_name, column_name, \
             data_type, is_nullable, coalesce(column_default, '-')) \
         FROM information_schema.columns WHERE table_schema = 'public' \
           AND table_name <> 'jobstore_migrations'",
        "SELECT format('constraint %s %s', conrelid::regclass, pg_get_constraintdef(oid)) \
         FROM pg_constraint WHERE connamespace = 'public'::regnamespace \
           AND conrelid <> 'jobstore_migrations'::regclass",
        "SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = 'public' \
           AND tablename <> 'jobstore_migrations'",
        "SELECT format('trigger %s', pg_get_triggerdef(oid)) FROM pg_trigger \
         WHERE NOT tgisinternal",
        "SELECT format('view %s %s', viewname, definition) FROM pg_views \
         WHERE schemaname = 'public'",
        "SELECT format('function %s', pg_get_functiondef(p.oid)) FROM pg_proc p \
         WHERE p.pronamespace = 'public'::regnamespace",
    ];
    let mut lines: Vec<String> = Vec::new();
    for query in queries {
        for row in client.query(query, &[]).expect(query) {
            lines.push(row.get(0));
        }
    }
    lines.sort();
    lines
}

#[test]
fn a_migrated_database_has_exactly_the_schema_of_schema_sql() {
    let mut migrated = connect(&fresh_database());
    assert_eq!(migrate(&mut migrated).unwrap(), 0);
    assert_eq!(schema_version(&mut migrated).unwrap(), SCHEMA_VERSION);

    let mut reference = connect(&fresh_database());
    reference.batch_execute(SCHEMA_SQL).unwrap();
    // (The reference has no jobstore_migrations; make one so the catalog query can name it.)
    reference
        .batch_execute("CREATE TABLE jobstore_migrations (version BIGINT PRIMARY KEY)")
        .unwrap();
    let (got, want) = (catalog(&mut migrated), catalog(&mut reference));
    assert!(got.len() > 100, "{got:?}");
    for line in &want {
        assert!(
            got.contains(line),
            "schema.sql has what the migrations lack: {line}"
        );
    }
    for line in &got {
        assert!(
            want.contains(line),
            "the migrations have what schema.sql lacks: {line}"
        );
    }
}

#[test]
fn migrating_again_or_from_several_daemons_at_once_applies_each_migration_once() {
    let url = fresh_database();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || migrate(&mut connect(&url)).unwrap())
        })
        .collect();
    let mut found: Vec<i64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    found.sort_unstable();
    let v = SCHEMA_VERSION;
    assert_eq!(
        found,
        [0, v, v, v],
        "one migrated, the others found it done"
    );
    let mut client = connect(&url);
    assert_eq!(migrate(&mut client).unwrap(), SCHEMA_VERSION);
    let applied: i64 = client
        .query_one("SELECT count(*) FROM jobstore_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, SCHEMA_VERSION);
}

#[test]
fn a_database_of_a_newer_build_is_refused_and_left_alone() {
    let mut client = connect(&fresh_database());
    migrate(&mut client).unwrap();
    client
        .execute("INSERT INTO jobstore_migrations (version) VALUES (99)", &[])
        .unwrap();
    let before = catalog(&mut client);
    match migrate(&mut client) {
        Err(Error::NewerSchema { found, supported }) => {
            assert_eq!((found, supported), (99, SCHEMA_VERSION));
        }
        other => panic!("a newer database was taken: {other:?}"),
    }
    assert_eq!(catalog(&mut client), before);
}

/// Inserts a job row with `columns` set as given (SQL text) beside the required ones.
fn insert(client: &mut Client, columns: &str, values: &str) -> Result<i64, postgres::Error> {
    let sql = format!(
        "INSERT INTO jobs (kind, run_at, created_at, updated_at{columns}) \
         VALUES ('k', 1, 1, 1{values}) RETURNING id"
    );
    client.query_one(&sql, &[]).map(|row| row.get(0))
}

#[test]
fn the_schema_refuses_what_the_state_machine_forbids() {
    let mut client = connect(&fresh_database());
    migrate(&mut client).unwrap();
    assert!(insert(&mut client, ", state", ", 'queued'").is_ok());
    for (columns, values, why) in [
        (", state", ", 'paused'", "an unknown state"),
        (", state", ", 'running'", "a running job without a lease"),
        (
            ", state",
            ", 'succeeded'",
            "a finished job without a finish time",
        ),
        (
            ", state, finished_at",
            ", 'queued', 5",
            "a finish time on a live job",
        ),
        (", state, queue", ", 'queued', ''", "an empty queue"),
        (
            ", state, progress",
            ", 'queued', '[1]'",
            "progress that is not an object",
        ),
        (
            ", state, payload",
            ", 'queued', '{oops'",
            "a payload that is not JSON",
        ),
        (
            ", state, cancel_requested_at",
            ", 'queued', 5",
            "a cancel request on a queued job",
        ),
        (
            ", state, attempt, leases",
            ", 'queued', 2, 1",
            "more attempts than leases",
        ),
    ] {
        assert!(
            insert(&mut client, columns, values).is_err(),
            "the schema took {why}"
        );
    }
    let empty_kind = client.query_one(
        "INSERT INTO jobs (kind, state, run_at, created_at, updated_at) \
         VALUES ('', 'queued', 1, 1, 1) RETURNING id",
        &[],
    );
    assert!(empty_kind.is_err(), "the schema took an empty kind");
    // One live job per unique key and tenant; a finished one frees the key.
    insert(&mut client, ", state, unique_key", ", 'queued', 'u'").unwrap();
    assert!(insert(&mut client, ", state, unique_key", ", 'open', 'u'").is_err());
    insert(
        &mut client,
        ", state, unique_key, tenant",
        ", 'open', 'u', 't2'",
    )
    .unwrap();
    insert(
        &mut client,
        ", state, unique_key, finished_at",
        ", 'failed', 'u', 9",
    )
    .unwrap();
}

#[test]
fn json_columns_keep_the_text_as_written() {
    let mut client = connect(&fresh_database());
    migrate(&mut client).unwrap();
    let text = r#"{"b": 1, "a": 1.50, "a": 2, "n": 12345678901234567890}"#;
    let id: i64 = client
        .query_one(
            "INSERT INTO jobs (kind, state, run_at, created_at, updated_at, payload) \
             VALUES ('k', 'queued', 1, 1, 1, $1::text::json) RETURNING id",
            &[&text],
        )
        .unwrap()
        .get(0);
    let back: String = client
        .query_one("SELECT payload::text FROM jobs WHERE id = $1", &[&id])
        .unwrap()
        .get(0);
    assert_eq!(back, text);
}

/// How many (tenant, queue, state) have a kept count (the sum of `job_counts`) other than
/// their number of jobs.
fn count_differences(client: &mut Client) -> i64 {
    client
        .query_one(
            "WITH counted AS (SELECT tenant, queue, state, count(*) AS jobs FROM jobs \
                              GROUP BY 1, 2, 3), \
                  kept AS (SELECT tenant, queue, state, sum(jobs)::bigint AS jobs \
                           FROM job_counts GROUP BY 1, 2, 3 HAVING sum(jobs) <> 0) \
             SELECT (SELECT count(*) FROM (SELECT * FROM counted EXCEPT SELECT * FROM kept) a) \
                  + (SELECT count(*) FROM (SELECT * FROM kept EXCEPT SELECT * FROM counted) b)",
            &[],
        )
        .expect("the counts")
        .get(0)
}

/// 100 queued jobs over two tenants and three queues; then a quarter cancelled, a fifth moved
/// to another queue, a seventh deleted.
const SOME_WRITES: &str =
    "INSERT INTO jobs (tenant, kind, queue, state, run_at, created_at, updated_at) \
     SELECT 't' || (i % 2), 'k', 'q' || (i % 3), 'queued', i, i, i \
     FROM generate_series(1, 100) AS i;
     UPDATE jobs SET state = 'cancelled', finished_at = 5 WHERE id % 4 = 0;
     UPDATE jobs SET queue = 'moved' WHERE id % 5 = 0;
     DELETE FROM jobs WHERE id % 7 = 0;";

#[test]
fn job_counts_follow_every_write_and_fold_into_one_row_a_count() {
    let url = fresh_database();
    let mut client = connect(&url);
    migrate(&mut client).unwrap();
    client.batch_execute(SOME_WRITES).unwrap();
    assert_eq!(count_differences(&mut client), 0);
    let rows = |client: &mut Client| -> i64 {
        client
            .query_one("SELECT count(*) FROM job_counts", &[])
            .unwrap()
            .get(0)
    };
    // An update that moves no job between counts (a heartbeat's, a rename) adds no row.
    let before = rows(&mut client);
    client
        .batch_execute("UPDATE jobs SET name = 'renamed', updated_at = 9")
        .unwrap();
    assert_eq!(rows(&mut client), before);

    let driver = PostgresDriver::connect(&url, &PostgresOptions::default()).unwrap();
    assert!(driver.checkpoint().unwrap());
    assert_eq!(count_differences(&mut client), 0);
    let counts: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT DISTINCT tenant, queue, state FROM jobs) AS c",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows(&mut client), counts, "one row a count once folded");
}

#[test]
fn writes_to_the_same_counts_never_wait_for_each_other() {
    let url = fresh_database();
    let mut setup = connect(&url);
    migrate(&mut setup).unwrap();
    setup
        .batch_execute(
            "INSERT INTO jobs (kind, queue, state, run_at, created_at, updated_at) \
             SELECT 'k', 'q', 'queued', 1, 1, 1 FROM generate_series(1, 2)",
        )
        .unwrap();
    let cancel = |tx: &mut postgres::Transaction<'_>, id: i64| {
        tx.execute(
            "UPDATE jobs SET state = 'cancelled', finished_at = 2 WHERE id = $1",
            &[&id],
        )
    };
    let (mut first, mut second) = (connect(&url), connect(&url));
    let mut one = first.transaction().unwrap();
    assert_eq!(cancel(&mut one, 1).unwrap(), 1);
    // Both move a job from (q, queued) to (q, cancelled) while the first is still open: had
    // the second to wait for a lock the first holds, its lock timeout would end it.
    let mut two = second.transaction().unwrap();
    two.batch_execute("SET LOCAL lock_timeout = '200ms'")
        .unwrap();
    assert_eq!(cancel(&mut two, 2).unwrap(), 1);
    two.commit().unwrap();
    one.commit().unwrap();
    assert_eq!(count_differences(&mut setup), 0);
}

#[test]
fn an_upgrade_from_version_1_keeps_the_counts() {
    let mut client = connect(&fresh_database());
    assert_eq!(migrate_to(&mut client, 1).unwrap(), 0);
    client.batch_execute(SOME_WRITES).unwrap();
    assert_eq!(migrate(&mut client).unwrap(), 1);
    assert_eq!(schema_version(&mut client).unwrap(), SCHEMA_VERSION);
    assert_eq!(count_differences(&mut client), 0);
    client
        .batch_execute("UPDATE jobs SET state = 'cancelled', finished_at = 5 WHERE id % 3 = 0")
        .unwrap();
    assert_eq!(count_differences(&mut client), 0);
}
