//! Conformance tests of the aep dialect: being written.
