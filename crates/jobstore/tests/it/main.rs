//! Integration tests of the embedded API, each on its own database file on disk.

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
mod support;
mod worker;
mod write_calls;
