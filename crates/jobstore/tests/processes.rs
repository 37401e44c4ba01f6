//! Child-process tests: crash (SIGKILL) and several processes on one file.

fn main() {}
