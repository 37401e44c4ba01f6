//! The worker's configuration: which queues, how many jobs at once, and which command runs
//! each job kind. From a TOML file, with flags on top.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// What a job's command reads on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StdinSource {
    /// The job's payload as JSON (the default).
    Payload,
    /// The job's uploaded data, every batch in order, streamed from the daemon.
    Data,
    /// Nothing (stdin is closed).
    None,
}

impl std::str::FromStr for StdinSource {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "payload" => Ok(StdinSource::Payload),
            "data" => Ok(StdinSource::Data),
            "none" => Ok(StdinSource::None),
            other => bail!("unknown stdin source `{other}`; valid: payload, data, none"),
        }
    }
}

/// A config file (TOML); unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The daemon, `http://HOST:PORT` or `https://HOST:PORT`.
    pub url: Option<String>,
    /// A file holding the bearer token.
    pub token_file: Option<PathBuf>,
    /// PEM certificates to trust for an `https://` daemon, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// The queues to claim from.
    #[serde(default)]
    pub queues: Vec<String>,
    /// Jobs run at once.
    pub concurrency: Option<usize>,
    /// The worker's name (lease owner).
    pub name: Option<String>,
    /// Lease length.
    pub lease_ms: Option<u64>,
    /// How long a cancelled or timed-out command gets between SIGTERM and SIGKILL, and how
    /// long running commands get to finish when the worker is stopped.
    pub grace_ms: Option<u64>,
    /// Default stdin source.
    pub stdin: Option<StdinSource>,
    /// Commands by job kind; `"*"` runs every other kind.
    #[serde(default)]
    pub kinds: BTreeMap<String, KindConfig>,
}

/// How one job kind runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KindConfig {
    /// The command line (split like a shell would, but run without one).
    pub command: String,
    /// Kill the command and fail the attempt after this long.
    pub timeout_ms: Option<u64>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// What the command reads on stdin (default: the worker's).
    pub stdin: Option<StdinSource>,
}

/// A command ready to run.
#[derive(Debug, Clone)]
pub(crate) struct CommandSpec {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Kill after this long.
    pub timeout: Option<Duration>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// What goes to stdin.
    pub stdin: StdinSource,
}

/// The resolved worker configuration.
#[derive(Debug, Clone)]
pub(crate) struct WorkerConfig {
    /// The daemon URL.
    pub url: String,
    /// The bearer token.
    pub token: Option<String>,
    /// PEM certificates trusted for an `https://` daemon, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Queues to claim from.
    pub queues: Vec<String>,
    /// Jobs at once.
    pub concurrency: usize,
    /// Lease owner name.
    pub name: String,
    /// Lease length.
    pub lease: Duration,
    /// SIGTERM → SIGKILL grace, and the shutdown grace.
    pub grace: Duration,
    /// Commands by kind (`*`: any other).
    pub kinds: BTreeMap<String, CommandSpec>,
}

/// The worker's flags.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    /// `--url`.
    pub url: Option<String>,
    /// `--token-file`.
    pub token_file: Option<PathBuf>,
    /// `--ca-file`, else `JOBSTORE_CA_FILE`.
    pub ca_file: Option<PathBuf>,
    /// `--queue`, repeated.
    pub queues: Vec<String>,
    /// `--concurrency`.
    pub concurrency: Option<usize>,
    /// `--exec`: one command for every kind.
    pub exec: Option<String>,
    /// `--timeout-ms` for `--exec`.
    pub timeout_ms: Option<u64>,
    /// `--stdin`.
    pub stdin: Option<StdinSource>,
    /// `--name`.
    pub name: Option<String>,
    /// `--lease-ms`.
    pub lease_ms: Option<u64>,
    /// `--grace-ms`.
    pub grace_ms: Option<u64>,
}

impl WorkerConfig {
    /// Resolves the config file and the flags (flags win; for the CA file, the flag, then
    /// `JOBSTORE_CA_FILE` as the caller put it in [`Flags::ca_file`], then the file).
    ///
    /// # Errors
    /// An unreadable or invalid file, no queue, no command, a command that does not split.
    pub(crate) fn resolve(file: Option<&Path>, flags: Flags) -> Result<WorkerConfig> {
        let file: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?
            }
            None => FileConfig::default(),
        };
        let url = flags
            .url
            .or(file.url)
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let token = match flags.token_file.or(file.token_file) {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read token file {}", path.display()))?;
                let token = text.lines().next().unwrap_or("").trim().to_owned();
                if token.is_empty() {
                    bail!("token file {} is empty", path.display());
                }
                Some(token)
            }
            None => None,
        };
        let ca_file = flags.ca_file.or(file.ca_file);
        let queues = if flags.queues.is_empty() {
            file.queues
        } else {
            flags.queues
        };
        if queues.is_empty() {
            bail!("name at least one queue (--queue Q)");
        }
        let default_stdin = flags.stdin.or(file.stdin).unwrap_or(StdinSource::Payload);
        let mut kinds = BTreeMap::new();
        for (kind, config) in file.kinds {
            kinds.insert(
                kind.clone(),
                CommandSpec {
                    argv: split(&config.command)
                        .with_context(|| format!("command of kind `{kind}`"))?,
                    timeout: config.timeout_ms.map(Duration::from_millis),
                    env: config.env,
                    stdin: config.stdin.unwrap_or(default_stdin),
                },
            );
        }
        if let Some(exec) = flags.exec {
            kinds.insert(
                "*".into(),
                CommandSpec {
                    argv: split(&exec).context("--exec")?,
                    timeout: flags.timeout_ms.map(Duration::from_millis),
                    env: BTreeMap::new(),
                    stdin: default_stdin,
                },
            );
        }
        if kinds.is_empty() {
            bail!("give a command: --exec 'COMMAND', or [kinds.NAME] in --config FILE");
        }
        let concurrency = flags.concurrency.or(file.concurrency).unwrap_or(1);
        if concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        let name = flags.name.or(file.name).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "host".into());
            format!("{host}-{}", std::process::id())
        });
        Ok(WorkerConfig {
            url,
            token,
            ca_file,
            queues,
            concurrency,
            name,
            lease: Duration::from_millis(
                flags.lease_ms.or(file.lease_ms).unwrap_or(30_000).max(300),
            ),
            grace: Duration::from_millis(flags.grace_ms.or(file.grace_ms).unwrap_or(10_000)),
            kinds,
        })
    }

    /// The command for a job kind.
    pub(crate) fn command_for(&self, kind: &str) -> Option<&CommandSpec> {
        self.kinds.get(kind).or_else(|| self.kinds.get("*"))
    }
}

fn split(command: &str) -> Result<Vec<String>> {
    let argv = shell_words::split(command).context("unbalanced quotes")?;
    if argv.is_empty() {
        bail!("the command is empty");
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_file_and_exec_is_the_fallback() {
        let dir =
            std::env::temp_dir().join(format!("jobstore-worker-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("worker.toml");
        std::fs::write(
            &file,
            "queues = [\"a\"]\nca_file = \"/etc/jobstore/ca.pem\"\n[kinds.export]\ncommand = \"sh -c 'echo \\\"hi there\\\"'\"\ntimeout_ms = 5000\nstdin = \"data\"\nenv = { A = \"1\" }\n",
        )
        .unwrap();
        let config = WorkerConfig::resolve(
            Some(&file),
            Flags {
                exec: Some("cat".into()),
                ..Flags::default()
            },
        )
        .unwrap();
        let export = config.command_for("export").unwrap();
        assert_eq!(export.argv, vec!["sh", "-c", "echo \"hi there\""]);
        assert_eq!(export.timeout, Some(Duration::from_secs(5)));
        assert_eq!(export.stdin, StdinSource::Data);
        assert_eq!(export.env.get("A").map(String::as_str), Some("1"));
        assert_eq!(config.command_for("other").unwrap().argv, vec!["cat"]);
        assert_eq!(config.queues, vec!["a"]);
        assert_eq!(config.ca_file, Some(PathBuf::from("/etc/jobstore/ca.pem")));
        let flagged = WorkerConfig::resolve(
            Some(&file),
            Flags {
                exec: Some("cat".into()),
                ca_file: Some("tls/cert.pem".into()),
                ..Flags::default()
            },
        )
        .unwrap();
        assert_eq!(flagged.ca_file, Some(PathBuf::from("tls/cert.pem")));
    }

    #[test]
    fn missing_queue_or_command_is_refused() {
        assert!(
            WorkerConfig::resolve(
                None,
                Flags {
                    exec: Some("cat".into()),
                    ..Flags::default()
                }
            )
            .is_err()
        );
        assert!(
            WorkerConfig::resolve(
                None,
                Flags {
                    queues: vec!["q".into()],
                    ..Flags::default()
                }
            )
            .is_err()
        );
        assert!(
            WorkerConfig::resolve(
                None,
                Flags {
                    queues: vec!["q".into()],
                    exec: Some("sh -c 'oops".into()),
                    ..Flags::default()
                }
            )
            .is_err()
        );
    }
}
