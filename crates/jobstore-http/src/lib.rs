//! The jobstore daemon library: the HTTP layer over the core [`jobstore`] crate.
//!
//! **Boundary:** this crate owns the wire formats (the native JSON API and the vendor
//! dialects) and converts them to and from core types; it owns no SQL and no state logic.
//! The router, authentication and dialect modules land here with the daemon; until then the
//! crate only re-exports the core so the layering is already in place.

pub use jobstore;
