//! Integration tests of the embedded API, each on its own database file on disk.
//!
//! The driver-agnostic modules (activity, bad_input, data, definitions, lifecycle, listing,
//! model, outputs, write_calls) run on PostgreSQL too, from `crates/jobstore-postgres/tests/core`;
//! the others test SQLite itself.

// Test helpers outside #[test] functions unwrap too: a panic is the test failing.
#![allow(clippy::unwrap_used)]

mod activity;
mod bad_input;
mod checkpoints;
mod data;
mod definitions;
mod group_commit;
mod lifecycle;
mod listing;
mod model;
mod outputs;
mod schema;
mod sqlite_only;
mod support;
mod worker;
mod write_calls;
