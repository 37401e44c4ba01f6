//! Integration tests of the embedded API, each on its own database file on disk.

mod bad_input;
mod data;
mod definitions;
mod lifecycle;
mod listing;
mod model;
mod schema;
mod support;
mod worker;
