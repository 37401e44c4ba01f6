//! Conformance tests of the ocapi dialect: being written.
