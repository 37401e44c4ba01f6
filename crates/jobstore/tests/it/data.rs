//! Uploaded data: batches stream in and out byte for byte and in order, an abort deletes them
//! in the same transaction, half-written batches are never visible.

use std::io::Read;

use jobstore::{BatchUpload, ClaimRequest, Error, NewJob, State, UploadLimits};

use crate::support::Fixture;

/// Bytes that differ at every position, so a misplaced chunk shows.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

pub(crate) fn count(f: &Fixture, sql: &str, id: i64) -> i64 {
    f.count(sql, &[id])
}

/// The batch rows and chunk rows of a job, complete or not.
fn data_rows(f: &Fixture, id: i64) -> (i64, i64) {
    (
        count(
            f,
            "SELECT count(*) FROM job_data_batches WHERE job_id = $1",
            id,
        ),
        count(
            f,
            "SELECT count(*) FROM job_data_chunks WHERE job_id = $1",
            id,
        ),
    )
}

#[test]
fn batches_round_trip_in_order_across_chunk_boundaries() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    assert_eq!(job.state, State::Open);
    // Larger than one 256 KiB chunk, not a multiple of it, and an empty batch.
    let batches = [
        pattern(700_001, 1),
        pattern(10, 2),
        Vec::new(),
        pattern(262_144, 3),
    ];
    for (index, bytes) in batches.iter().enumerate() {
        let batch = f.store.append_data(job.id, &bytes[..]).unwrap();
        assert_eq!(batch.batch, index as i64 + 1);
        assert_eq!(batch.bytes, bytes.len() as i64);
    }
    let listed: Vec<i64> = f
        .store
        .data_batches(job.id)
        .unwrap()
        .iter()
        .map(|b| b.bytes)
        .collect();
    assert_eq!(listed, vec![700_001, 10, 0, 262_144]);

    let mut all = Vec::new();
    f.store
        .read_data(job.id, None)
        .unwrap()
        .read_to_end(&mut all)
        .unwrap();
    assert_eq!(all, batches.concat());
    let mut second = Vec::new();
    f.store
        .read_data(job.id, Some(4))
        .unwrap()
        .read_to_end(&mut second)
        .unwrap();
    assert_eq!(second, batches[3]);

    // Each chunk is bounded: the 700,001-byte batch is three chunks.
    assert_eq!(
        count(
            &f,
            "SELECT count(*) FROM job_data_chunks WHERE job_id = $1 AND batch = 1",
            job.id
        ),
        3
    );
    let events: Vec<String> = f
        .store
        .events(job.id)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.detail)
        .collect();
    assert!(
        events.contains(&"batch 1, 700001 bytes".to_owned()),
        "{events:?}"
    );

    let closed = f.store.close_upload(job.id, "client").unwrap();
    assert_eq!(closed.state, State::Queued);
    // A worker reads the same bytes after claiming.
    let claimed = f.store.claim(&ClaimRequest::new("w", "default")).unwrap();
    assert_eq!(claimed[0].id, job.id);
}

#[test]
fn abort_deletes_the_data_in_the_same_transaction() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    f.store
        .append_data(job.id, &pattern(300_000, 9)[..])
        .unwrap();
    f.store.append_data(job.id, &b"id\n1\n"[..]).unwrap();
    let keep = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    f.store.append_data(keep.id, &b"id\n2\n"[..]).unwrap();

    let aborted = f.store.cancel(job.id, "client").unwrap();
    assert_eq!(aborted.state, State::Cancelled);
    for table in ["job_data_batches", "job_data_chunks"] {
        assert_eq!(
            count(
                &f,
                &format!("SELECT count(*) FROM {table} WHERE job_id = $1"),
                job.id
            ),
            0,
            "{table}"
        );
        assert_eq!(
            count(
                &f,
                &format!("SELECT count(*) FROM {table} WHERE job_id = $1"),
                keep.id
            ),
            1,
            "{table}"
        );
    }
    assert!(matches!(
        f.store.append_data(job.id, &b"x"[..]),
        Err(Error::InvalidTransition {
            from: Some(State::Cancelled),
            ..
        })
    ));
}

/// A source that pauses half way so the test can look at the database meanwhile.
struct Gate {
    first: Vec<u8>,
    rest: Vec<u8>,
    reached: std::sync::mpsc::Sender<()>,
    proceed: std::sync::mpsc::Receiver<()>,
    stage: u8,
}

impl Read for Gate {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.stage {
            0 => {
                self.stage = 1;
                let mut cursor = &self.first[..];
                let n = cursor.read(buf)?;
                self.first.drain(..n);
                if !self.first.is_empty() {
                    self.stage = 0;
                }
                Ok(n)
            }
            1 => {
                let _ = self.reached.send(());
                let _ = self.proceed.recv();
                self.stage = 2;
                let mut cursor = &self.rest[..];
                let n = cursor.read(buf)?;
                self.rest.drain(..n);
                if !self.rest.is_empty() {
                    self.stage = 1;
                }
                Ok(n)
            }
            _ => Ok(0),
        }
    }
}

#[test]
fn a_batch_is_invisible_until_complete_and_an_abort_mid_upload_refuses_it() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    let (reached_tx, reached) = std::sync::mpsc::channel();
    let (proceed, proceed_rx) = std::sync::mpsc::channel();
    let gate = Gate {
        first: pattern(600_000, 4),
        rest: pattern(1000, 5),
        reached: reached_tx,
        proceed: proceed_rx,
        stage: 0,
    };
    let store = f.store.clone();
    let upload = std::thread::spawn(move || store.append_data(job.id, gate));
    reached.recv().unwrap();
    // Two chunks are written by now, yet no batch is visible.
    assert!(f.store.data_batches(job.id).unwrap().is_empty());
    let mut seen = Vec::new();
    f.store
        .read_data(job.id, None)
        .unwrap()
        .read_to_end(&mut seen)
        .unwrap();
    assert!(seen.is_empty());
    f.store.cancel(job.id, "client").unwrap();
    proceed.send(()).unwrap();
    let outcome = upload.join().unwrap();
    assert!(
        matches!(
            outcome,
            Err(Error::InvalidTransition {
                from: Some(State::Cancelled),
                ..
            })
        ),
        "{outcome:?}"
    );
    assert_eq!(
        count(
            &f,
            "SELECT count(*) FROM job_data_chunks WHERE job_id = $1",
            job.id
        ),
        0
    );
}

#[test]
fn open_uploads_past_their_age_are_purged() {
    let f = Fixture::new();
    let stale = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    f.store.append_data(stale.id, &b"a\n"[..]).unwrap();
    f.clock.advance(8 * 24 * 3600 * 1000);
    let fresh = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    assert_eq!(
        f.store.purge_stale_uploads(7 * 24 * 3600 * 1000).unwrap(),
        1
    );
    assert!(f.store.get(stale.id).is_err());
    assert!(f.store.get(fresh.id).is_ok());
    assert!(f.store.check().unwrap().is_ok());
}

/// An upload into job `job` of `len` bytes of [`pattern`] `seed`, its first chunk written, left
/// open (its batch incomplete).
pub(crate) fn upload_under_way(f: &Fixture, job: i64, len: usize, seed: u8) -> BatchUpload {
    let mut upload = f
        .store
        .begin_upload_call(job, UploadLimits::default())
        .wait()
        .unwrap();
    upload.push(&pattern(len, seed)).unwrap();
    if let Some(chunk) = upload.chunk_call() {
        chunk.wait().unwrap();
    }
    upload
}

#[test]
fn a_dropped_upload_deletes_its_batch() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    let upload = upload_under_way(&f, job.id, 600_000, 5);
    drop(upload);
    // The delete was queued without waiting; the job's next write commits after it (a
    // driver runs one job's writes in order; another job's may go first).
    f.store
        .append_log(job.id, vec![(jobstore::LogLevel::Info, "after".into())])
        .unwrap();
    assert_eq!(data_rows(&f, job.id), (0, 0));
}

#[test]
fn a_pushed_upload_round_trips_whatever_the_size_of_its_pieces() {
    let f = Fixture::new();
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    let bytes = pattern(5 * 262_144 + 17, 6);
    let mut upload = f
        .store
        .begin_upload_call(job.id, UploadLimits::default())
        .wait()
        .unwrap();
    // One piece of two and a half chunks, then small ones; the rest is written on finish,
    // which must split it into chunks the schema accepts.
    for piece in [&bytes[..655_360], &bytes[655_360..655_400]] {
        upload.push(piece).unwrap();
        while let Some(chunk) = upload.chunk_call() {
            chunk.wait().unwrap();
        }
    }
    upload.push(&bytes[655_400..]).unwrap();
    let batch = upload.finish_call().wait().unwrap();
    assert_eq!(batch.bytes, bytes.len() as i64);
    let mut back = Vec::new();
    f.store
        .read_data(job.id, None)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, bytes);
    assert!(f.store.check().unwrap().is_ok());
}

#[test]
fn a_callers_batch_limit_holds_against_uploads_under_way() {
    let f = Fixture::with(|options| options.max_batches_per_job = 5);
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    let limits = UploadLimits {
        max_batches: Some(2),
        max_batch_bytes: Some(10),
    };
    let begin = |limits| f.store.begin_upload_call(job.id, limits).wait();
    // Three uploads begun before any finishes: the third is refused, the two under way count.
    let mut first = begin(limits).unwrap();
    let second = begin(limits).unwrap();
    assert!(matches!(
        begin(limits),
        Err(Error::TooManyDataBatches { limit: 2, .. })
    ));
    // The caller's byte limit, stricter than the store's, holds as the bytes arrive.
    assert!(matches!(
        first.push(&pattern(11, 7)),
        Err(Error::DataBatchTooLarge { limit: 10 })
    ));
    drop(first);
    second.finish_call().wait().unwrap();
    // The refused batch went; its slot is free again.
    begin(limits).unwrap().finish_call().wait().unwrap();
    assert!(begin(limits).is_err());
    assert_eq!(f.store.data_batches(job.id).unwrap().len(), 2);

    // Uploads racing from several threads: exactly as many begin as the limit leaves room for.
    let raced = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    let begun: Vec<_> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| f.store.begin_upload_call(raced.id, limits).wait()))
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    assert_eq!(begun.iter().filter(|b| b.is_ok()).count(), 2);
    for upload in begun.into_iter().flatten() {
        upload.finish_call().wait().unwrap();
    }
    assert_eq!(f.store.data_batches(raced.id).unwrap().len(), 2);

    // The store's own limit, when it is the stricter, wins over the caller's.
    let loose = UploadLimits {
        max_batches: Some(50),
        max_batch_bytes: None,
    };
    let third = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    let open: Vec<_> = (0..5)
        .map(|_| f.store.begin_upload_call(third.id, loose).wait().unwrap())
        .collect();
    assert!(matches!(
        f.store.begin_upload_call(third.id, loose).wait(),
        Err(Error::TooManyDataBatches { limit: 5, .. })
    ));
    drop(open);
}
