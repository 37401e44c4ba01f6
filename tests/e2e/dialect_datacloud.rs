//! Conformance tests of the datacloud dialect: being written.
