//! Integration tests of the embedded API on real database files.
