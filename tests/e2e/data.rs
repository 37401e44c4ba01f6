//! Uploaded data: batches streamed in (with `Content-Length` and chunked), read back byte for
//! byte in order, the upload phase closed, and data refused after it; a refused upload leaves
//! its keep-alive connection good.

use std::io::Write;

use serde_json::json;

use crate::support::{Body, Daemon, assert_error, id_of, on_keep_alive};

/// Deterministic bytes covering every byte value (a small xorshift generator).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[3]
        })
        .collect()
}

#[test]
fn batches_round_trip_byte_for_byte() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let job = api.create(&json!({"kind": "ingest", "upload": true, "queue": "ingest"}));
    let id = id_of(&job);
    assert_eq!(job["state"], "open");
    // An open job is not runnable.
    assert!(api.claim("w", "ingest", 1).is_empty());

    let first = b"id,name\n1,alpha\n".to_vec();
    let large = pattern(1_536 * 1024 + 17, 7);
    let last = pattern(4096, 99);
    let octets = [("Content-Type", "application/octet-stream")];

    let batch = api
        .request(
            "PUT",
            &format!("/v1/jobs/{id}/data"),
            &octets,
            first.clone(),
        )
        .expect_json(201);
    assert_eq!(batch["batch"], 1);
    assert_eq!(batch["bytes"], first.len());

    // More than 1 MB, chunked in uneven pieces.
    let pieces: Vec<Vec<u8>> = large.chunks(61_440 + 3).map(<[u8]>::to_vec).collect();
    assert!(pieces.len() > 20);
    let batch = api
        .request(
            "PUT",
            &format!("/v1/jobs/{id}/data"),
            &octets,
            Body::Chunked(pieces),
        )
        .expect_json(201);
    assert_eq!(batch["batch"], 2);
    assert_eq!(batch["bytes"], large.len());

    let batch = api
        .request("PUT", &format!("/v1/jobs/{id}/data"), &octets, last.clone())
        .expect_json(201);
    assert_eq!(batch["batch"], 3);

    let mut expected = first.clone();
    expected.extend_from_slice(&large);
    expected.extend_from_slice(&last);

    let info = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(info["state"], "open");
    assert_eq!(info["data_batches"], 3);
    assert_eq!(info["data_bytes"], expected.len());

    let download = api.get(&format!("/v1/jobs/{id}/data"));
    download.expect(200);
    assert_eq!(
        download.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(download.body.len(), expected.len());
    assert!(download.body == expected, "downloaded bytes differ");

    let closed = api
        .post(&format!("/v1/jobs/{id}/close"), &json!({}))
        .expect_json(200);
    assert_eq!(closed["state"], "queued");

    // No data after the upload phase: 409, and the data is unchanged.
    let refused = api.request(
        "PUT",
        &format!("/v1/jobs/{id}/data"),
        &octets,
        b"late".to_vec(),
    );
    assert_error(&refused, 409, "invalid_transition");
    let refused = api.request(
        "PUT",
        &format!("/v1/jobs/{id}/data"),
        &octets,
        Body::Chunked(vec![pattern(100_000, 3)]),
    );
    assert_error(&refused, 409, "invalid_transition");
    assert_error(
        &api.post(&format!("/v1/jobs/{id}/close"), &json!({})),
        409,
        "invalid_transition",
    );
    let after = api.get(&format!("/v1/jobs/{id}/data"));
    after.expect(200);
    assert!(after.body == expected, "data changed after close");
    assert_eq!(
        api.get(&format!("/v1/jobs/{id}")).expect_json(200)["data_batches"],
        3
    );

    // Now it runs.
    let claimed = api.claim("w", "ingest", 1);
    assert_eq!(id_of(&claimed[0]), id);
}

#[test]
fn data_faults() {
    let daemon = Daemon::start();
    let api = daemon.client();

    // A job without an upload phase takes no data.
    let plain = id_of(&api.create(&json!({"kind": "ingest"})));
    assert_error(
        &api.request("PUT", &format!("/v1/jobs/{plain}/data"), &[], b"x".to_vec()),
        409,
        "invalid_transition",
    );
    assert_error(
        &api.request("PUT", "/v1/jobs/999999/data", &[], b"x".to_vec()),
        404,
        "job_not_found",
    );
    assert_error(&api.get("/v1/jobs/999999/data"), 404, "job_not_found");
    assert_error(
        &api.post("/v1/jobs/999999/close", &json!({})),
        404,
        "job_not_found",
    );

    // A client that goes away in the middle of a batch stores nothing of it.
    let broken = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    for head in [
        format!(
            "PUT /v1/jobs/{broken}/data HTTP/1.1\r\nHost: {}\r\nContent-Length: 100000\r\n\r\n",
            daemon.addr()
        ),
        format!(
            "PUT /v1/jobs/{broken}/data HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\n\r\nc350\r\n",
            daemon.addr()
        ),
    ] {
        let mut stream = crate::support::connect(daemon.addr());
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(&pattern(50_000, 11)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        drop(stream);
    }
    api.request(
        "PUT",
        &format!("/v1/jobs/{broken}/data"),
        &[],
        b"complete".to_vec(),
    )
    .expect(201);
    crate::support::eventually(
        "only the complete batch remains",
        std::time::Duration::from_secs(10),
        || {
            let info = api.get(&format!("/v1/jobs/{broken}")).expect_json(200);
            info["data_batches"] == 1 && info["data_bytes"] == 8
        },
    );
    assert_eq!(
        api.get(&format!("/v1/jobs/{broken}/data")).body,
        b"complete"
    );

    // Aborting an upload deletes its data.
    let aborted = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    api.request(
        "PUT",
        &format!("/v1/jobs/{aborted}/data"),
        &[],
        pattern(10_000, 5),
    )
    .expect(201);
    let cancelled = api
        .post(&format!("/v1/jobs/{aborted}/cancel"), &json!({}))
        .expect_json(200);
    assert_eq!(cancelled["state"], "cancelled");
    let info = api.get(&format!("/v1/jobs/{aborted}")).expect_json(200);
    assert_eq!(info["data_batches"], 0, "{info}");
    assert_error(
        &api.request(
            "PUT",
            &format!("/v1/jobs/{aborted}/data"),
            &[],
            b"x".to_vec(),
        ),
        409,
        "invalid_transition",
    );
}

#[test]
fn batch_size_and_count_are_bounded() {
    let dir = crate::support::temp_dir();
    let config = dir.path().join("jobstore.toml");
    std::fs::write(
        &config,
        "[limits]\nmax_batch_bytes = 100000\nmax_batches_per_job = 2\n",
    )
    .unwrap();
    let daemon = Daemon::start_with(
        dir,
        crate::support::Options {
            args: vec!["--config".into(), config.into_os_string()],
            ..crate::support::Options::default()
        },
    );
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    let path = format!("/v1/jobs/{id}/data");

    // Over the batch size, announced or chunked: 413 and nothing stored.
    assert_error(
        &api.request("PUT", &path, &[], pattern(100_001, 1)),
        413,
        "data_batch_too_large",
    );
    assert_error(
        &api.request(
            "PUT",
            &path,
            &[],
            Body::Chunked(vec![pattern(60_000, 2), pattern(60_000, 3)]),
        ),
        413,
        "data_batch_too_large",
    );
    let info = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(info["data_batches"], 0, "{info}");
    assert_eq!(info["data_bytes"], 0, "{info}");

    // At the size: fine. Past the count: 409.
    let first = pattern(100_000, 4);
    let second = pattern(10, 5);
    api.request("PUT", &path, &[], first.clone()).expect(201);
    api.request("PUT", &path, &[], second.clone()).expect(201);
    assert_error(
        &api.request("PUT", &path, &[], b"third".to_vec()),
        409,
        "too_many_data_batches",
    );
    let info = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(info["data_batches"], 2);
    assert_eq!(api.get(&path).body, [first, second].concat());
}

/// The bodies a refused upload is sent with: small, 8 MiB with `Content-Length`, 8 MiB chunked.
pub(crate) fn refused_bodies() -> Vec<(&'static str, Body)> {
    let large = 8 * 1024 * 1024;
    vec![
        ("64 KiB", Body::Full(pattern(64 * 1024, 3))),
        ("8 MiB", Body::Full(pattern(large, 5))),
        (
            "8 MiB chunked",
            Body::Chunked(
                pattern(large, 7)
                    .chunks(64 * 1024)
                    .map(<[u8]>::to_vec)
                    .collect(),
            ),
        ),
    ]
}

/// A keep-alive client (jsforce's pooled agent) whose upload is refused before its body is
/// read must be able to send its next request: on the same connection, or on a new one after
/// an answer that said `Connection: close`.
#[test]
fn a_refused_upload_leaves_its_keep_alive_connection_good() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let closed = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    api.post(&format!("/v1/jobs/{closed}/close"), &json!({}))
        .expect(200);
    let next = format!("/v1/jobs/{closed}");
    let refusals = [
        (format!("/v1/jobs/{closed}/data"), 409, "invalid_transition"),
        ("/v1/jobs/999999/data".to_owned(), 404, "job_not_found"),
        (format!("/v1/jobs/{closed}/datum"), 404, "route_not_found"),
    ];
    for (path, status, kind) in refusals {
        for (what, body) in refused_bodies() {
            let (refused, after) = on_keep_alive(daemon.addr(), "PUT", &path, &[], body, &next);
            let message = format!("PUT {path} with {what}");
            assert_eq!(refused.status, status, "{message}: {}", refused.text());
            assert_error(&refused, status, kind);
            if let Some(after) = after {
                after.expect(200);
            }
        }
    }
    let info = api.get(&next).expect_json(200);
    assert_eq!(info["data_batches"], 0, "{info}");
}

#[test]
fn outputs_are_uploaded_under_the_lease_and_read_back_by_name() {
    let daemon = Daemon::start();
    let api = daemon.client();
    let id = id_of(&api.create(&json!({"kind": "ingest", "upload": true, "queue": "out"})));
    let octets = [("Content-Type", "application/octet-stream")];
    let input = b"id\n1\n2\n".to_vec();
    api.request(
        "PUT",
        &format!("/v1/jobs/{id}/data"),
        &octets,
        input.clone(),
    )
    .expect(201);
    api.post(&format!("/v1/jobs/{id}/close"), &json!({}))
        .expect(200);
    // Not leased yet: no output.
    let failed = format!("/v1/jobs/{id}/outputs/results%2Ffailed");
    assert_error(
        &api.request(
            "PUT",
            &format!("{failed}?worker=w&lease_token=1"),
            &octets,
            b"x".to_vec(),
        ),
        409,
        "stale_lease",
    );
    let claimed = api.claim("w", "out", 1);
    let token = claimed[0]["lease_token"].as_i64().unwrap_or_default();
    let lease = format!("worker=w&lease_token={token}");

    let large = pattern(700_001, 5);
    let first = api
        .request("PUT", &format!("{failed}?{lease}"), &octets, large.clone())
        .expect_json(201);
    assert_eq!(first["bytes"], 700_001);
    api.request(
        "PUT",
        &format!("{failed}?{lease}"),
        &octets,
        Body::Chunked(vec![b"tail".to_vec()]),
    )
    .expect(201);
    let read = api.get(&failed);
    read.expect(200);
    assert_eq!(
        read.header("content-type"),
        Some("application/octet-stream")
    );
    assert!(
        read.body == [large, b"tail".to_vec()].concat(),
        "output changed"
    );
    // A name never written reads empty; the input is untouched.
    let none = api.get(&format!("/v1/jobs/{id}/outputs/query%2Fresults"));
    none.expect(200);
    assert!(none.body.is_empty());
    assert!(api.get(&format!("/v1/jobs/{id}/data")).body == input);
    let info = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(info["data_batches"], 1);

    // Another token, a missing lease, a bad name.
    assert_error(
        &api.request(
            "PUT",
            &format!("{failed}?worker=w&lease_token={}", token + 1),
            &octets,
            b"x".to_vec(),
        ),
        409,
        "stale_lease",
    );
    assert_error(
        &api.request("PUT", &failed, &octets, b"x".to_vec()),
        400,
        "invalid_request",
    );
    assert_error(
        &api.get(&format!("/v1/jobs/{id}/outputs/..")),
        400,
        "invalid_request",
    );
    assert_error(
        &api.get("/v1/jobs/999999/outputs/results"),
        404,
        "job_not_found",
    );

    // Outputs stay readable once the job is done, and go when it is deleted.
    api.post(
        &format!("/v1/jobs/{id}/complete"),
        &json!({"worker": "w", "lease_token": token}),
    )
    .expect(200);
    assert_eq!(api.get(&failed).body.len(), 700_005);
    api.request("DELETE", &format!("/v1/jobs/{id}"), &[], Body::None)
        .expect(204);
    assert_eq!(
        daemon.sql(&format!(
            "SELECT count(*) FROM job_data_chunks WHERE job_id = {id}"
        )),
        "0"
    );
}
