//! The core's behaviour tests on PostgreSQL: the driver-agnostic modules of
//! `crates/jobstore/tests/it` (lifecycle, listing, data, outputs, definitions, bad input,
//! write calls, the activity summaries and the model-based property test), compiled here
//! against a fixture of the same shape whose store runs on the PostgreSQL driver, each on a
//! fresh database of a throwaway cluster (`support`). The same files run on SQLite in the
//! core's own suite; what tests SQLite itself stays there.

// Test helpers outside #[test] functions unwrap too: a panic is the test failing.
#![allow(clippy::unwrap_used)]

#[path = "../support/mod.rs"]
mod cluster;
mod support;

#[path = "../../../jobstore/tests/it/activity.rs"]
mod activity;
#[path = "../../../jobstore/tests/it/bad_input.rs"]
mod bad_input;
#[path = "../../../jobstore/tests/it/data.rs"]
mod data;
#[path = "../../../jobstore/tests/it/definitions.rs"]
mod definitions;
#[path = "../../../jobstore/tests/it/lifecycle.rs"]
mod lifecycle;
#[path = "../../../jobstore/tests/it/listing.rs"]
mod listing;
#[path = "../../../jobstore/tests/it/model.rs"]
mod model;
#[path = "../../../jobstore/tests/it/outputs.rs"]
mod outputs;
#[path = "../../../jobstore/tests/it/write_calls.rs"]
mod write_calls;
