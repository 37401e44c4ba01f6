//! Conformance tests of the c360 dialect: being written.
