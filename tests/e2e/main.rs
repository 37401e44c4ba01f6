//! End-to-end tests: the real `jobstore` binary, started in its own temporary directory on a
//! free port of 127.0.0.1, driven over HTTP/1.1 with a small blocking client (see
//! [`support`]). Every test starts its own daemon, so they run in parallel.
//!
//! Run: `cargo test -p jobstore-bin --test e2e`; with `JOBSTORE_E2E_POSTGRES=1`, every daemon
//! keeps its jobs in PostgreSQL instead (a throwaway cluster of the test binary's own, or the
//! server `JOBSTORE_TEST_POSTGRES` names), and the tests about the SQLite file say they are
//! not run (see [`support`]).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod support;

/// The PostgreSQL test server, a fresh database per daemon directory.
#[path = "../../crates/jobstore-postgres/tests/support/mod.rs"]
mod cluster;

mod auth;
mod bad_input;
mod claims;
mod cli;
mod copy;
mod crash;
mod dashboard;
mod data;
mod definitions;
mod exact_json;
mod idempotency;
mod lifecycle;
mod list;
mod logs;
mod maintenance;
mod observability;
mod postgres;
mod postgres_crash;
mod reliability;
mod replication;
mod routes;
mod systemd;
mod timeouts;
mod tls;
mod worker;

mod dialect_aep;
mod dialect_bulk2;
mod dialect_c360;
mod dialect_datacloud;
mod dialect_ocapi;
