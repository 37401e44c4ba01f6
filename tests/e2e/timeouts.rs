//! Slow clients: a request head that stops arriving is cut off by the header read timeout; a
//! body that stops arriving is answered 408; a body that keeps arriving, slowly, is served.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use serde_json::json;

use crate::support::{Body, Daemon, assert_error, connect, id_of, read_response};

/// A daemon with 500 ms header and body timeouts, set in a config file.
fn impatient_daemon() -> Daemon {
    Daemon::with_config("[limits]\nheader_timeout_ms = 500\nbody_timeout_ms = 500\n")
}

#[test]
fn a_stalled_request_head_is_cut_off() {
    let daemon = impatient_daemon();
    let mut stream = connect(daemon.addr());
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(format!("GET /v1/jobs HTTP/1.1\r\nHost: {}\r\n", daemon.addr()).as_bytes())
        .unwrap();
    // Nothing more is sent. The server must close the connection (possibly after a 408).
    let mut received = Vec::new();
    match stream.read_to_end(&mut received) {
        Ok(_) => {}
        Err(err) => assert!(
            !matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the connection stayed open with half a request head: {err}"
        ),
    }
    if !received.is_empty() {
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    }

    // The daemon still serves.
    daemon.client().get("/healthz").expect(200);
    daemon.client().get("/v1/jobs").expect(200);
}

#[test]
fn a_stalled_body_is_408() {
    let daemon = impatient_daemon();
    let api = daemon.client();

    // 10 of 100 announced bytes of JSON, then nothing.
    let mut stream = connect(daemon.addr());
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"kind\": \"",
        daemon.addr()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_response(&mut stream).expect("an answer to a stalled body");
    assert_error(&answer, 408, "body_timeout");
    assert!(api.all_jobs().is_empty(), "a stalled create created a job");

    // The same for a streamed data upload: 408 and no batch.
    let id = id_of(&api.create(&json!({"kind": "ingest", "upload": true})));
    let mut stream = connect(daemon.addr());
    let head = format!(
        "PUT /v1/jobs/{id}/data HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         Content-Length: 100\r\n\r\n0123456789",
        daemon.addr()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let answer = read_response(&mut stream).expect("an answer to a stalled upload");
    assert_error(&answer, 408, "body_timeout");
    let job = api.get(&format!("/v1/jobs/{id}")).expect_json(200);
    assert_eq!(job["state"], "open");
    assert_eq!(job["data_batches"], 0, "{job}");

    // A body that keeps arriving (pauses well under the timeout) is served: the timeout is
    // between pieces, not for the whole body.
    let pieces: Vec<Vec<u8>> = (0..8).map(|i| vec![b'a' + i; 1000]).collect();
    let expected: Vec<u8> = pieces.concat();
    let batch = api
        .request(
            "PUT",
            &format!("/v1/jobs/{id}/data"),
            &[],
            Body::Paced {
                pieces,
                pause: Duration::from_millis(100),
            },
        )
        .expect_json(201);
    assert_eq!(batch["bytes"], 8000);
    assert_eq!(api.get(&format!("/v1/jobs/{id}/data")).body, expected);
}
