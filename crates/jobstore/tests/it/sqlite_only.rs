//! What only the SQLite driver has: its backup (`VACUUM INTO` a file), uploads named by
//! process, raw rows written into the file, and the upgrade of a file of the previous schema.
//! The behaviours around them run on every engine in the other modules.

use jobstore::{ClaimRequest, Error, NewJob, SCHEMA_VERSION, Store, migrate_to};

use crate::data::{count, upload_under_way};
use crate::outputs::{read_input, read_output};
use crate::support::Fixture;

#[test]
fn backup_writes_a_consistent_copy() {
    let f = Fixture::new();
    f.store.enqueue(NewJob::new("a")).unwrap();
    let dest = f.dir.path().join("backup.db");
    f.store.backup_to(&dest).unwrap();
    let copy = jobstore::Store::open(&dest).unwrap();
    let page = copy
        .with_scope(jobstore::Scope::All)
        .list(&jobstore::ListQuery::default())
        .unwrap();
    assert_eq!(page.jobs.len(), 1);
    assert!(matches!(
        f.store.backup_to(&dest),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn abandoned_incomplete_batches_are_purged() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    // An upload whose process died: a batch row left incomplete, written by hand.
    let conn = f.sql();
    conn.execute(
        "INSERT INTO job_data_batches (job_id, batch, bytes, complete, created_at, updated_at) \
         VALUES ($1, 1, 3, 0, 0, 0)",
        [job.id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO job_data_chunks (job_id, batch, chunk, data) VALUES ($1, 1, 0, x'616263')",
        [job.id],
    )
    .unwrap();
    assert!(f.store.data_batches(job.id).unwrap().is_empty());
    assert_eq!(f.store.purge_incomplete_batches(60_000).unwrap(), 1);
    assert_eq!(
        count(
            &f,
            "SELECT count(*) FROM job_data_chunks WHERE job_id = $1",
            job.id
        ),
        0
    );
    // The next batch takes number 1 again: numbering follows complete uploads.
    let batch = f.store.append_data(job.id, &b"x"[..]).unwrap();
    assert_eq!(batch.batch, 1);
}

#[test]
fn batches_of_a_dead_uploader_are_reclaimed_and_a_live_ones_are_kept() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    // An upload of this process, half way: its batch row names this process.
    let live = upload_under_way(&f, job.id, 300_000, 4);
    let me: String = f
        .sql()
        .query_row(
            "SELECT uploader FROM job_data_batches WHERE job_id = $1",
            [job.id],
            |r| r.get(0),
        )
        .unwrap();
    assert!(me.starts_with(&format!("{}:", std::process::id())), "{me}");
    // What a killed process leaves: a batch and a chunk under a process that is gone, and
    // one whose uploader is unknown (made before uploaders were recorded).
    let sql = f.sql();
    for (batch, uploader) in [(7, Some("4194305:1")), (8, None)] {
        sql.execute(
            "INSERT INTO job_data_batches (job_id, batch, created_at, updated_at, uploader) \
             VALUES ($1, ?2, 0, 0, ?3)",
            rusqlite::params![job.id, batch, uploader],
        )
        .unwrap();
        sql.execute(
            "INSERT INTO job_data_chunks (job_id, batch, chunk, data) VALUES ($1, ?2, 0, x'00')",
            rusqlite::params![job.id, batch],
        )
        .unwrap();
    }

    assert_eq!(f.store.reclaim_abandoned_batches().unwrap(), 1);
    let left: Vec<i64> = {
        let mut stmt = sql
            .prepare("SELECT batch FROM job_data_batches WHERE job_id = $1 ORDER BY batch")
            .unwrap();
        stmt.query_map([job.id], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    };
    assert_eq!(left, vec![1, 8], "the live upload and the unknown one stay");
    assert_eq!(
        count(
            &f,
            "SELECT count(*) FROM job_data_chunks WHERE job_id = $1 AND batch = 7",
            job.id
        ),
        0
    );
    // The live upload still finishes, whole.
    let done = live.finish_call().wait().unwrap();
    assert_eq!(done.bytes, 300_000);
    assert_eq!(f.store.reclaim_abandoned_batches().unwrap(), 0);
}

/// An upload that gives up deletes its incomplete batch; when that delete fails (a full disk,
/// here a trigger that refuses it), the batch is kept for `reclaim_abandoned_batches`, which
/// tries again on each call until the delete goes through.
#[test]
fn a_batch_whose_discard_failed_is_reclaimed_once_the_delete_goes_through() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    let upload = upload_under_way(&f, job.id, 300_000, 5);
    let sql = f.sql();
    sql.execute_batch(
        "CREATE TRIGGER refuse_batch_deletes BEFORE DELETE ON job_data_batches \
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
    )
    .unwrap();
    let batches = || {
        count(
            &f,
            "SELECT count(*) FROM job_data_batches WHERE job_id = $1",
            job.id,
        )
    };
    // The client goes away: the upload is dropped and its discard fails. The job's next write
    // is answered after the discard's outcome was handled (one job's writes run in order).
    drop(upload);
    f.store
        .append_log(job.id, vec![(jobstore::LogLevel::Info, "after".into())])
        .unwrap();
    assert_eq!(batches(), 1);
    // Still no room: the retry fails, and the batch stays in line for the next one.
    assert!(f.store.reclaim_abandoned_batches().is_err());
    assert_eq!(batches(), 1);
    // Room again.
    sql.execute_batch("DROP TRIGGER refuse_batch_deletes")
        .unwrap();
    assert_eq!(f.store.reclaim_abandoned_batches().unwrap(), 1);
    assert_eq!(batches(), 0);
    assert_eq!(
        count(
            &f,
            "SELECT count(*) FROM job_data_chunks WHERE job_id = $1",
            job.id
        ),
        0
    );
    assert_eq!(f.store.reclaim_abandoned_batches().unwrap(), 0);
}

#[test]
fn a_database_of_the_previous_version_takes_outputs_after_its_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        migrate_to(&conn, SCHEMA_VERSION - 1).unwrap();
        conn.execute_batch(
            "INSERT INTO jobs (kind, state, run_at, created_at, updated_at) \
             VALUES ('old', 'queued', 1, 1, 1);
             INSERT INTO job_data_batches (job_id, batch, bytes, complete, created_at, updated_at) \
             VALUES (1, 1, 3, 1, 1, 1);
             INSERT INTO job_data_chunks (job_id, batch, chunk, data) VALUES (1, 1, 0, x'616263');",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let claimed = store.claim(&ClaimRequest::new("w", "default")).unwrap();
    let lease = claimed[0].lease().unwrap();
    store
        .append_output(1, &lease, "results/successful", &b"ok"[..])
        .unwrap();
    assert_eq!(read_input(&store, 1), b"abc");
    assert_eq!(store.data_batches(1).unwrap().len(), 1);
    assert_eq!(read_output(&store, 1, "results/successful").unwrap(), b"ok");
}
