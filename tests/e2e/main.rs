//! End-to-end tests: the real binary over HTTP on 127.0.0.1.
