//! The long-running commands: the HTTP daemon and the worker. Each resolves its configuration
//! from its config file, the environment and its flags, then runs until it is stopped.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use super::env_path;
use crate::cli::{ServeArgs, WorkerArgs};
use crate::{config, serve, worker};

/// `jobstore serve`: runs the HTTP daemon on the database file `db` (the `--db` flag).
pub(crate) fn serve(db: Option<PathBuf>, args: ServeArgs) -> Result<ExitCode> {
    let ServeArgs {
        listen,
        tokens,
        tls_cert,
        tls_key,
        config,
    } = args;
    let env = config::Overrides {
        db: env_path("JOBSTORE_DB"),
        listen: std::env::var("JOBSTORE_LISTEN")
            .ok()
            .filter(|v| !v.is_empty()),
        tokens: env_path("JOBSTORE_TOKENS"),
        tls_cert: env_path("JOBSTORE_TLS_CERT"),
        tls_key: env_path("JOBSTORE_TLS_KEY"),
        credentials: env_path("CREDENTIALS_DIRECTORY"),
    };
    let flags = config::Overrides {
        db,
        listen,
        tokens,
        tls_cert,
        tls_key,
        credentials: None,
    };
    let config = config::ServeConfig::resolve(config.as_deref(), env, flags)?;
    serve::run(config)?;
    Ok(ExitCode::SUCCESS)
}

/// `jobstore worker`: claims jobs from a daemon and runs their commands.
pub(crate) fn worker(args: WorkerArgs) -> Result<ExitCode> {
    let WorkerArgs {
        url,
        token_file,
        ca_file,
        queues,
        concurrency,
        exec,
        config,
        stdin,
        timeout_ms,
        name,
        lease_ms,
        grace_ms,
    } = args;
    let flags = worker::config::Flags {
        url,
        token_file,
        ca_file: ca_file.or_else(|| env_path("JOBSTORE_CA_FILE")),
        queues,
        concurrency,
        exec,
        timeout_ms,
        stdin: stdin.map(|s| s.parse()).transpose()?,
        name,
        lease_ms,
        grace_ms,
    };
    let config = worker::config::WorkerConfig::resolve(config.as_deref(), flags)?;
    worker::run(config)?;
    Ok(ExitCode::SUCCESS)
}
