//! Named outputs: uploaded under the job's lease, read back by name byte for byte, never part
//! of the input data, gone with the job.

use std::io::{BufRead, Read};

use jobstore::{
    ClaimRequest, DataPosition, Error, Failure, Lease, NewJob, State, Store, valid_output_name,
};

use crate::support::Fixture;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ ((i >> 9) as u8))
        .collect()
}

pub(crate) fn read_output(store: &Store, id: i64, name: &str) -> Option<Vec<u8>> {
    let mut reader = store.read_output(id, name).unwrap()?;
    let mut out = Vec::new();
    reader.read_to_end(&mut out).unwrap();
    Some(out)
}

pub(crate) fn read_input(store: &Store, id: i64) -> Vec<u8> {
    let mut out = Vec::new();
    store
        .read_data(id, None)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// An upload job with `input` as its one batch, claimed: its id and lease.
fn running_with_input(f: &Fixture, input: &[u8]) -> (i64, Lease) {
    let job = f.store.enqueue(NewJob::new("ingest").upload(true)).unwrap();
    f.store.append_data(job.id, input).unwrap();
    f.store.close_upload(job.id, "test").unwrap();
    let claimed = f.store.claim(&ClaimRequest::new("w", "default")).unwrap();
    assert_eq!(claimed.len(), 1);
    (job.id, claimed[0].lease().unwrap())
}

fn row_count(f: &Fixture, table: &str, id: i64) -> i64 {
    f.count(
        &format!("SELECT count(*) FROM {table} WHERE job_id = $1"),
        &[id],
    )
}

#[test]
fn outputs_round_trip_by_name_and_leave_the_input_alone() {
    let f = Fixture::new();
    let input = pattern(300_000, 1);
    let (id, lease) = running_with_input(&f, &input);
    let before = f.store.data_batches(id).unwrap();

    let failed = [pattern(600_001, 2), pattern(5, 3)];
    for part in &failed {
        f.store
            .append_output(id, &lease, "results/failed", &part[..])
            .unwrap();
    }
    let successful = pattern(1000, 4);
    f.store
        .append_output(id, &lease, "results/successful", &successful[..])
        .unwrap();

    assert_eq!(
        read_output(&f.store, id, "results/failed").unwrap(),
        failed.concat()
    );
    assert_eq!(
        read_output(&f.store, id, "results/successful").unwrap(),
        successful
    );
    assert_eq!(read_output(&f.store, id, "results/unprocessed"), None);

    // The input reads, lists and counts as before.
    assert_eq!(read_input(&f.store, id), input);
    assert_eq!(f.store.data_batches(id).unwrap(), before);
    let overview = f.rows(
        "SELECT data_batches, data_bytes FROM jobs_overview WHERE id = $1",
        &[id],
    );
    let expected = vec![vec![Some("1".to_owned()), Some(input.len().to_string())]];
    assert_eq!(overview, expected);
    // One input batch number reads no output.
    let mut second = Vec::new();
    f.store
        .read_data(id, Some(2))
        .unwrap()
        .read_to_end(&mut second)
        .unwrap();
    assert!(second.is_empty());

    let listed = f.store.outputs(id).unwrap();
    let summary: Vec<(&str, i64, i64)> = listed
        .iter()
        .map(|o| (o.name.as_str(), o.batches, o.bytes))
        .collect();
    assert_eq!(
        summary,
        [
            ("results/failed", 2, 600_006),
            ("results/successful", 1, 1000)
        ]
    );

    // Still readable once the job finished.
    f.store.complete(id, &lease, serde_json::json!({})).unwrap();
    assert_eq!(
        read_output(&f.store, id, "results/successful").unwrap(),
        successful
    );
    assert!(f.store.check().unwrap().is_ok());
}

#[test]
fn a_stale_or_missing_lease_is_refused_and_keeps_nothing() {
    let f = Fixture::new();
    let (id, lease) = running_with_input(&f, b"a,b\n");
    let stale = Lease {
        worker: lease.worker.clone(),
        token: lease.token + 1,
    };
    let err = f
        .store
        .append_output(id, &stale, "results/failed", &b"x"[..])
        .unwrap_err();
    assert!(matches!(err, Error::StaleLease { .. }), "{err:?}");

    // The lease is lost while the batch uploads: the completing write refuses it.
    let mut upload = f
        .store
        .begin_output_call(id, &lease, "results/failed", Default::default())
        .wait()
        .unwrap();
    upload.push(b"partial").unwrap();
    f.store
        .fail(id, &lease, Failure::retryable("lost"))
        .unwrap();
    let err = upload.finish_call().wait().unwrap_err();
    assert!(matches!(err, Error::StaleLease { .. }), "{err:?}");
    assert_eq!(read_output(&f.store, id, "results/failed"), None);
    // The refused batch is deleted in the background.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while row_count(&f, "job_data_batches", id) != 1 {
        assert!(std::time::Instant::now() < deadline, "the batch stayed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    // A job nobody leased takes no output.
    let queued = f.store.enqueue(NewJob::new("q")).unwrap();
    let err = f
        .store
        .append_output(queued.id, &lease, "results/failed", &b"x"[..])
        .unwrap_err();
    assert!(matches!(err, Error::StaleLease { .. }), "{err:?}");
}

#[test]
fn a_later_attempt_replaces_the_outputs_of_an_earlier_one() {
    let f = Fixture::new();
    let (id, first) = running_with_input(&f, b"in\n");
    f.store
        .append_output(id, &first, "query/results", &b"first\n"[..])
        .unwrap();
    f.store
        .append_output(id, &first, "results/failed", &b"kept\n"[..])
        .unwrap();
    let retried = f
        .store
        .fail(id, &first, Failure::retryable("again"))
        .unwrap();
    assert_eq!(retried.state, State::Queued);
    f.clock.set(retried.run_at);
    let claimed = f.store.claim(&ClaimRequest::new("w", "default")).unwrap();
    let second = claimed[0].lease().unwrap();
    f.store
        .append_output(id, &second, "query/results", &b"second\n"[..])
        .unwrap();
    f.store
        .append_output(id, &second, "query/results", &b"more\n"[..])
        .unwrap();
    assert_eq!(
        read_output(&f.store, id, "query/results").unwrap(),
        b"second\nmore\n"
    );
    assert_eq!(
        read_output(&f.store, id, "results/failed").unwrap(),
        b"kept\n"
    );
}

#[test]
fn names_are_short_safe_text() {
    for good in ["results/failed", "query/results", "a", "x.csv", "a-b_c/d.e"] {
        assert!(valid_output_name(good), "{good}");
    }
    let long = "a".repeat(101);
    for bad in [
        "", "/a", "a/", "a//b", "..", "a/../b", ".", "a b", "a\\b", "é", "a?b", &long,
    ] {
        assert!(!valid_output_name(bad), "{bad:?}");
    }
    let f = Fixture::new();
    let (id, lease) = running_with_input(&f, b"x");
    let err = f
        .store
        .append_output(id, &lease, "../etc", &b"x"[..])
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(matches!(
        f.store.read_output(id, "a b"),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn outputs_are_bounded_like_input_batches() {
    let f = Fixture::with(|o| {
        o.max_batch_bytes = 10;
        o.max_batches_per_job = 2;
    });
    let (id, lease) = running_with_input(&f, b"in");
    let err = f
        .store
        .append_output(id, &lease, "big", &[0_u8; 11][..])
        .unwrap_err();
    assert!(matches!(err, Error::DataBatchTooLarge { .. }), "{err:?}");
    // The input batch does not count against the outputs.
    f.store.append_output(id, &lease, "a", &b"1"[..]).unwrap();
    f.store.append_output(id, &lease, "b", &b"2"[..]).unwrap();
    let err = f
        .store
        .append_output(id, &lease, "c", &b"3"[..])
        .unwrap_err();
    assert!(matches!(err, Error::TooManyDataBatches { .. }), "{err:?}");
}

#[test]
fn outputs_go_with_the_job() {
    let f = Fixture::with(|o| o.max_batches_per_job = 5);
    let (id, lease) = running_with_input(&f, b"in");
    f.store
        .append_output(id, &lease, "results/failed", &pattern(300_000, 9)[..])
        .unwrap();
    f.store.complete(id, &lease, serde_json::json!({})).unwrap();
    assert!(row_count(&f, "job_data_chunks", id) > 1);
    f.clock.advance(10_000);
    assert_eq!(f.store.purge_finished(1).unwrap(), 1);
    assert_eq!(row_count(&f, "job_data_batches", id), 0);
    assert_eq!(row_count(&f, "job_data_chunks", id), 0);

    let (id, lease) = running_with_input(&f, b"in");
    f.store
        .append_output(id, &lease, "query/results", &b"r"[..])
        .unwrap();
    f.store.complete(id, &lease, serde_json::json!({})).unwrap();
    f.store.delete(id).unwrap();
    assert_eq!(row_count(&f, "job_data_batches", id), 0);
    assert_eq!(row_count(&f, "job_data_chunks", id), 0);
}

/// A reader paged through an output: each page a new reader at the position where the last
/// one stopped (through its text form, as an API hands it to a client), bounded by a limit.
#[test]
fn an_output_reads_in_pages_from_the_positions_readers_stopped_at() {
    let f = Fixture::new();
    let (id, lease) = running_with_input(&f, b"in");
    // Two batches over several 256 KiB chunks, so pages start inside chunks, at chunk ends
    // and across batches.
    let parts = [pattern(600_001, 5), pattern(262_144, 6), pattern(7, 7)];
    for part in &parts {
        f.store
            .append_output(id, &lease, "query/results", &part[..])
            .unwrap();
    }
    let whole = parts.concat();

    for page in [4_096_usize, 262_144, 300_000, 2_000_000] {
        let mut read = Vec::new();
        let mut at = DataPosition::START;
        loop {
            let text = at.to_string();
            let from: DataPosition = text.parse().unwrap();
            assert_eq!(from, at, "{text}");
            let mut reader = f
                .store
                .read_output_at(id, "query/results", from)
                .unwrap()
                .unwrap()
                .limit(page as u64);
            let before = read.len();
            reader.read_to_end(&mut read).unwrap();
            assert!(read.len() - before <= page);
            if read.len() == before {
                break;
            }
            at = reader.position();
        }
        assert_eq!(read.len(), whole.len(), "pages of {page}");
        assert!(read == whole, "pages of {page}");
    }

    // Pages of one byte across the end of the first chunk and of the first batch, read
    // through `next_chunk` as the daemon streams.
    for start in [262_140_u64, 599_997] {
        let mut reader = f
            .store
            .read_output(id, "query/results")
            .unwrap()
            .unwrap()
            .limit(start);
        let mut read = Vec::new();
        reader.read_to_end(&mut read).unwrap();
        let mut at = reader.position();
        for _ in 0..8 {
            let mut reader = f
                .store
                .read_output_at(id, "query/results", at)
                .unwrap()
                .unwrap()
                .limit(1);
            let chunk = reader.next_chunk().unwrap().unwrap();
            assert_eq!(chunk.len(), 1);
            assert_eq!(reader.next_chunk().unwrap(), None);
            read.extend_from_slice(&chunk);
            at = reader.position();
        }
        f.store
            .read_output_at(id, "query/results", at)
            .unwrap()
            .unwrap()
            .read_to_end(&mut read)
            .unwrap();
        assert!(read == whole, "one-byte pages from {start}");
    }

    // `BufRead` stops where it was told: the position after consuming a prefix.
    let mut reader = f.store.read_output(id, "query/results").unwrap().unwrap();
    let first = reader.fill_buf().unwrap().len();
    assert!(first > 10);
    reader.consume(10);
    let rest = {
        let mut rest = Vec::new();
        f.store
            .read_output_at(id, "query/results", reader.position())
            .unwrap()
            .unwrap()
            .read_to_end(&mut rest)
            .unwrap();
        rest
    };
    assert!(rest == whole[10..]);
}

#[test]
fn a_position_that_is_not_in_the_output_is_refused() {
    let f = Fixture::new();
    let (id, lease) = running_with_input(&f, b"in");
    f.store
        .append_output(id, &lease, "query/results", &pattern(1000, 1)[..])
        .unwrap();
    f.store
        .append_output(id, &lease, "results/failed", &pattern(10, 2)[..])
        .unwrap();
    let mut reader = f.store.read_output(id, "results/failed").unwrap().unwrap();
    reader.read_to_end(&mut Vec::new()).unwrap();
    let failed_end = reader.position();

    let mut reader = f.store.read_output(id, "query/results").unwrap().unwrap();
    reader.read_to_end(&mut Vec::new()).unwrap();
    let end = reader.position().to_string();
    let parts: Vec<i64> = end.split('-').map(|part| part.parse().unwrap()).collect();
    let (batch, chunk, offset) = (parts[0], parts[1], parts[2]);
    assert_eq!(offset, 1000, "{end}");
    for text in [
        format!("{batch}-{chunk}-{}", offset + 1),
        format!("{batch}-{}-0", chunk + 1),
        format!("{}-0-0", batch + 5),
        // The input batch.
        "1-0-0".to_owned(),
    ] {
        let position: DataPosition = text.parse().unwrap();
        assert!(
            matches!(
                f.store.read_output_at(id, "query/results", position),
                Err(Error::InvalidInput { .. })
            ),
            "{text}"
        );
    }
    // The end of another output of the same job is not a place in this one.
    assert!(matches!(
        f.store.read_output_at(id, "query/results", failed_end),
        Err(Error::InvalidInput { .. })
    ));
    for text in [
        "",
        "1-0",
        "1-0-0-0",
        "a-0-0",
        "-1-0-0",
        "1--0",
        "1-0-99999999999999999999999",
    ] {
        assert!(
            matches!(
                text.parse::<DataPosition>(),
                Err(Error::InvalidInput { .. })
            ),
            "{text:?}"
        );
    }
    // A position at the very end reads nothing.
    let mut rest = Vec::new();
    f.store
        .read_output_at(id, "query/results", end.parse().unwrap())
        .unwrap()
        .unwrap()
        .read_to_end(&mut rest)
        .unwrap();
    assert!(rest.is_empty());
}
