//! Who checkpoints the WAL: the store by default, or a replicator (Litestream) with
//! `Checkpoints::External`, under which the store never checkpoints at all.

use std::path::{Path, PathBuf};

use jobstore::{Checkpoints, Error, NewJob, Store, StoreOptions};
use serde_json::json;

use crate::support::Fixture;

/// Enough 64 KiB payloads to pass SQLite's automatic checkpoint threshold (1,000 pages of
/// 4 KiB) twice over.
const BIG_JOBS: usize = 160;

fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The WAL header's checkpoint sequence number and salts (bytes 12..24): they change each
/// time a checkpoint lets the WAL restart.
fn wal_generation(db: &Path) -> Vec<u8> {
    let wal = std::fs::read(sibling(db, "-wal")).unwrap();
    wal[12..24].to_vec()
}

/// Frames a checkpoint copied into the database file since the WAL last restarted
/// (`nBackfill` in the wal-index, native byte order, at byte 96 of the `-shm` file).
fn backfilled(db: &Path) -> u32 {
    let shm = std::fs::read(sibling(db, "-shm")).unwrap();
    u32::from_ne_bytes(shm[96..100].try_into().unwrap())
}

fn wal_bytes(db: &Path) -> u64 {
    std::fs::metadata(sibling(db, "-wal")).map_or(0, |m| m.len())
}

fn enqueue_big_jobs(store: &Store) {
    let blob = "x".repeat(64 * 1024);
    for n in 0..BIG_JOBS {
        store
            .enqueue(NewJob::new("big").payload(json!({"n": n, "blob": blob})))
            .unwrap();
    }
}

#[test]
fn with_external_checkpoints_the_store_never_checkpoints() {
    let fx = Fixture::with(|options| options.checkpoints = Checkpoints::External);
    let db = fx.path();
    fx.store.enqueue(NewJob::new("first")).unwrap();
    let generation = wal_generation(&db);

    enqueue_big_jobs(&fx.store);
    assert_eq!(wal_generation(&db), generation, "the WAL restarted");
    assert_eq!(backfilled(&db), 0, "a checkpoint copied frames");
    let written = wal_bytes(&db);
    assert!(
        written > (BIG_JOBS as u64) * 64 * 1024,
        "WAL of {written} bytes"
    );
    assert!(
        matches!(fx.store.checkpoint(), Err(Error::InvalidInput { .. })),
        "Store::checkpoint must refuse"
    );

    // Closing checkpoints nothing either, not even as the file's last connection.
    let Fixture { dir, store, .. } = fx;
    drop(store);
    assert!(wal_bytes(&db) >= written, "the WAL shrank at close");
    assert_eq!(
        wal_generation(&db),
        generation,
        "the WAL restarted at close"
    );
    assert_eq!(backfilled(&db), 0, "a checkpoint at close copied frames");

    // Every write is there for the next opener, which reads it from the WAL.
    let store = Store::open_with(&db, StoreOptions::default()).unwrap();
    assert_eq!(
        store.stats().unwrap().iter().map(|r| r.jobs).sum::<i64>(),
        BIG_JOBS as i64 + 1
    );
    drop(store);
    drop(dir);
}

#[test]
fn by_default_the_store_checkpoints_automatically_and_when_it_closes() {
    let fx = Fixture::new();
    let db = fx.path();
    fx.store.enqueue(NewJob::new("first")).unwrap();
    let generation = wal_generation(&db);

    enqueue_big_jobs(&fx.store);
    assert_ne!(
        wal_generation(&db),
        generation,
        "the automatic checkpoint never let the WAL restart"
    );
    assert!(
        fx.store.checkpoint().unwrap(),
        "the checkpoint did not complete"
    );
    assert_eq!(wal_bytes(&db), 0, "TRUNCATE left the WAL");

    let Fixture { dir, store, .. } = fx;
    store.enqueue(NewJob::new("last")).unwrap();
    drop(store);
    assert!(
        !sibling(&db, "-wal").exists(),
        "the last connection's close left the WAL"
    );
    drop(dir);
}
