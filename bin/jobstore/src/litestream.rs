//! Where Litestream keeps its state beside a database, and the WAL it follows.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Litestream's local metadata directory for `db`: `.NAME-litestream` beside it. Its presence
/// says that Litestream replicates (or replicated) the file.
pub(crate) fn meta_dir(db: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(db.file_name().unwrap_or(db.as_os_str()));
    name.push("-litestream");
    db.with_file_name(name)
}

/// A file beside `db` named by a suffix of its name (`-wal`, `-shm`).
pub(crate) fn sibling(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The WAL of `db`.
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    sibling(db, "-wal")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_beside_the_database() {
        let db = Path::new("/var/lib/jobstore/jobstore.db");
        assert_eq!(
            meta_dir(db),
            Path::new("/var/lib/jobstore/.jobstore.db-litestream")
        );
        assert_eq!(wal_path(db), Path::new("/var/lib/jobstore/jobstore.db-wal"));
        assert_eq!(meta_dir(Path::new("j.db")), Path::new(".j.db-litestream"));
    }
}
