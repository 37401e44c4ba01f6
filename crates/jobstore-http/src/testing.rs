//! What the unit tests of several APIs share: the checks every API's faults and routes must
//! pass, and a store in a temporary directory.

use std::path::PathBuf;

use http::{Response, StatusCode, header};
use jobstore::{Job, NewJob, Store, StoreOptions};

use crate::api::Api;
use crate::body::ResponseBody;
use crate::fault::{ApiError, ErrorKind};

/// Asserts that an API's `render` answers every kind with the status `status` gives it, with
/// `WWW-Authenticate` on a 401 only and `Retry-After` on a 503 only, and a database out of
/// reach (`storage_unavailable`) as a 503, like a busy store.
pub(crate) fn renders_every_kind(
    render: impl Fn(&ApiError) -> Response<ResponseBody>,
    status: impl Fn(ErrorKind) -> StatusCode,
) {
    for kind in ErrorKind::ALL {
        let response = render(&ApiError::new(kind, "x"));
        assert_eq!(response.status(), status(kind), "{kind:?}");
        let has = |name| response.headers().contains_key(name);
        let unauthorized = kind == ErrorKind::Unauthorized;
        assert_eq!(has(header::WWW_AUTHENTICATE), unauthorized, "{kind:?}");
        let unavailable = response.status() == StatusCode::SERVICE_UNAVAILABLE;
        assert_eq!(has(header::RETRY_AFTER), unavailable, "{kind:?}");
    }
    let err = ApiError::from(jobstore::Error::Unavailable("refused".into()));
    assert_eq!(err.kind, ErrorKind::StorageUnavailable);
    let response = render(&err);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));
}

/// Asserts that `api` owns each path of `owned` and matches it to the template given (`None`:
/// to no route), and owns none of `foreign`.
pub(crate) fn routes(api: &dyn Api, owned: &[(&str, Option<&str>)], foreign: &[&str]) {
    for (path, template) in owned {
        assert!(api.owns(path), "{path}");
        assert_eq!(api.template(path), *template, "{path}");
    }
    for path in foreign {
        assert!(!api.owns(path), "{path}");
    }
}

/// Asserts that the message of `err` contains `text`.
pub(crate) fn says(err: &ApiError, text: &str) {
    assert!(err.message.contains(text), "`{text}` in: {}", err.message);
}

/// A store in a directory of its own, removed when it is dropped.
pub(crate) struct TempStore {
    /// The store.
    pub(crate) store: Store,
    dir: PathBuf,
}

impl TempStore {
    /// A store opened with `options` in a fresh directory named after `name` and the process.
    pub(crate) fn open(name: &str, options: StoreOptions) -> TempStore {
        let dir = std::env::temp_dir().join(format!("jobstore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open_with(dir.join("jobs.db"), options).unwrap();
        TempStore { store, dir }
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The job a store makes of `new`, from a store of its own that is gone once it is made.
pub(crate) fn job(name: &str, new: NewJob) -> Job {
    let temp = TempStore::open(name, StoreOptions::default());
    temp.store.enqueue(new).unwrap()
}
