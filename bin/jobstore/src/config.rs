//! The daemon's configuration: defaults < config file < environment < flags, resolved into a
//! raw struct and then validated into [`ServeConfig`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use jobstore::Durability;
use serde::Deserialize;

/// The config file (TOML). Every key is optional; unknown keys are refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The database file.
    pub db: Option<PathBuf>,
    /// The address to listen on.
    pub listen: Option<String>,
    /// The tokens file.
    pub tokens: Option<PathBuf>,
    /// The TLS certificate chain (PEM); with `tls_key`, the daemon serves HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP beyond loopback with tokens (behind a TLS-terminating proxy).
    pub allow_plaintext: Option<bool>,
    /// `full` or `normal`.
    pub durability: Option<String>,
    /// `none` or `litestream`.
    pub replication: Option<String>,
    /// Request limits.
    #[serde(default)]
    pub limits: FileLimits,
    /// Background maintenance.
    #[serde(default)]
    pub maintenance: FileMaintenance,
    /// Connections to a PostgreSQL database.
    #[serde(default)]
    pub postgres: FilePostgres,
    /// The vendor dialects.
    #[serde(default)]
    pub dialects: jobstore_http::DialectConfig,
}

/// `[limits]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileLimits {
    /// Largest JSON body.
    pub max_json_bytes: Option<usize>,
    /// Largest data batch.
    pub max_batch_bytes: Option<u64>,
    /// Most data batches per job.
    pub max_batches_per_job: Option<u32>,
    /// The window over which the minimum transfer rate is measured.
    pub body_timeout_ms: Option<u64>,
    /// The slowest request body or response kept, in bytes per second.
    pub min_transfer_rate: Option<u64>,
    /// Time allowed for a request head.
    pub header_timeout_ms: Option<u64>,
    /// Connections served at once.
    pub max_connections: Option<usize>,
    /// Requests one token may have in flight.
    pub max_requests_per_token: Option<usize>,
    /// Longest claim wait.
    pub max_wait_ms: Option<u64>,
    /// How often a waiting claim looks again for jobs no wake-up announced.
    pub claim_poll_ms: Option<u64>,
}

/// `[maintenance]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileMaintenance {
    /// How often to rescue expired leases.
    pub rescue_interval_ms: Option<u64>,
    /// How often to purge.
    pub purge_interval_ms: Option<u64>,
    /// Finished jobs older than this are deleted.
    pub retention_ms: Option<i64>,
    /// Uploads still open after this long are deleted.
    pub stale_upload_ms: Option<i64>,
    /// How often to checkpoint the WAL (with Litestream: how often to check its size).
    pub checkpoint_interval_ms: Option<u64>,
}

/// `[postgres]` of the config file: only for a `postgres://` database.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilePostgres {
    /// Writer connections, each running one write at a time.
    pub writers: Option<usize>,
    /// Read connections in the pool.
    pub read_connections: Option<u32>,
}

/// The most writer connections a daemon opens.
const MAX_WRITERS: usize = 64;

/// The most read connections a daemon's pool holds.
const MAX_READ_CONNECTIONS: u32 = 256;

impl FilePostgres {
    /// The driver's options: the defaults, with the keys given. Refused for a SQLite `db`
    /// (the keys would do nothing), and out of range.
    fn resolve(&self, db: &Path) -> Result<jobstore_postgres::PostgresOptions> {
        let defaults = jobstore_postgres::PostgresOptions::default();
        if self.writers.is_none() && self.read_connections.is_none() {
            return Ok(defaults);
        }
        if crate::location::Location::of(db).file().is_some() {
            bail!(
                "[postgres] is for a postgres:// database; db is the SQLite file {}",
                db.display()
            );
        }
        let writers = self.writers.unwrap_or(defaults.writers);
        if !(1..=MAX_WRITERS).contains(&writers) {
            bail!("[postgres] writers must be 1 to {MAX_WRITERS}, got {writers}");
        }
        let read_connections = self.read_connections.unwrap_or(defaults.read_connections);
        if !(1..=MAX_READ_CONNECTIONS).contains(&read_connections) {
            bail!(
                "[postgres] read_connections must be 1 to {MAX_READ_CONNECTIONS}, got \
                 {read_connections}"
            );
        }
        Ok(jobstore_postgres::PostgresOptions {
            writers,
            read_connections,
            ..defaults
        })
    }
}

/// What `jobstore serve` runs with.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    /// The database file.
    pub db: PathBuf,
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The tokens file, if any.
    pub tokens: Option<PathBuf>,
    /// The TLS certificate and key, when the daemon serves HTTPS.
    pub tls: Option<TlsFiles>,
    /// Plain HTTP beyond loopback with tokens is allowed.
    pub allow_plaintext: bool,
    /// The durability level.
    pub durability: Durability,
    /// Who else follows the WAL.
    pub replication: Replication,
    /// Request limits.
    pub limits: jobstore_http::Limits,
    /// Largest data batch.
    pub max_batch_bytes: u64,
    /// Most data batches per job.
    pub max_batches_per_job: u32,
    /// Background maintenance.
    pub maintenance: Maintenance,
    /// Connections to a PostgreSQL `db` (the defaults for a SQLite file).
    pub postgres: jobstore_postgres::PostgresOptions,
    /// The vendor dialects.
    pub dialects: jobstore_http::DialectConfig,
}

/// The PEM files of the daemon's TLS certificate chain and private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The certificate chain, the server's certificate first.
    pub cert: PathBuf,
    /// The private key.
    pub key: PathBuf,
}

/// Intervals and ages of the background maintenance.
#[derive(Debug, Clone)]
pub(crate) struct Maintenance {
    /// How often to rescue expired leases.
    pub rescue_interval: Duration,
    /// How often to purge.
    pub purge_interval: Duration,
    /// Finished jobs older than this are deleted.
    pub retention_ms: i64,
    /// Uploads still open after this long are deleted.
    pub stale_upload_ms: i64,
    /// How often to checkpoint the WAL (with Litestream: how often to check its size).
    pub checkpoint_interval: Duration,
}

/// Who else follows the database's WAL, and so who checkpoints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Replication {
    /// Nobody: the daemon checkpoints the WAL every `checkpoint_interval` and when it stops.
    #[default]
    None,
    /// Litestream replicates the file and alone checkpoints it: the daemon never does (no
    /// periodic or final checkpoint, no automatic checkpoint, none when it closes).
    Litestream,
}

impl Replication {
    /// The name used in the config file.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Replication::None => "none",
            Replication::Litestream => "litestream",
        }
    }

    /// Who checkpoints the store's WAL under this replication.
    pub(crate) fn checkpoints(self) -> jobstore::Checkpoints {
        match self {
            Replication::None => jobstore::Checkpoints::Store,
            Replication::Litestream => jobstore::Checkpoints::External,
        }
    }
}

impl std::str::FromStr for Replication {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Replication::None),
            "litestream" => Ok(Replication::Litestream),
            other => bail!("unknown replication `{other}`; valid: none, litestream"),
        }
    }
}

/// The flags and environment of `jobstore serve`.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    /// `--db` or `JOBSTORE_DB`.
    pub db: Option<PathBuf>,
    /// `--listen` or `JOBSTORE_LISTEN`.
    pub listen: Option<String>,
    /// `--tokens` or `JOBSTORE_TOKENS`.
    pub tokens: Option<PathBuf>,
    /// `--tls-cert` or `JOBSTORE_TLS_CERT`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key` or `JOBSTORE_TLS_KEY`.
    pub tls_key: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (environment only): systemd's directory of the service's
    /// credentials, which a path may start with (`$CREDENTIALS_DIRECTORY/tls.key`).
    pub credentials: Option<PathBuf>,
}

/// The name a path may start with to stand for systemd's credentials directory.
const CREDENTIALS: &str = "CREDENTIALS_DIRECTORY";

/// `path`, its leading `$CREDENTIALS_DIRECTORY` or `${CREDENTIALS_DIRECTORY}` replaced by
/// `credentials` (the service's credentials directory under systemd).
///
/// # Errors
/// A path that names the directory when there is none.
pub(crate) fn expand_credentials(path: PathBuf, credentials: Option<&Path>) -> Result<PathBuf> {
    let text = path.to_string_lossy();
    let rest = [format!("${CREDENTIALS}"), format!("${{{CREDENTIALS}}}")]
        .iter()
        .find_map(|name| {
            let rest = text.strip_prefix(name.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then(|| rest.trim_start_matches('/'))
        })
        .map(str::to_owned);
    let Some(rest) = rest else {
        return Ok(path);
    };
    let Some(dir) = credentials else {
        bail!(
            "{} names ${CREDENTIALS}, which is not set: systemd sets it for a service with \
             LoadCredential= (e.g. LoadCredential=tls.key:/etc/jobstore/tls/key.pem)",
            path.display()
        );
    };
    Ok(if rest.is_empty() {
        dir.to_owned()
    } else {
        dir.join(rest)
    })
}

const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

impl ServeConfig {
    /// Resolves defaults < `file` < `env` < `flags` and validates.
    ///
    /// # Errors
    /// A config file that cannot be read or parsed, an address that does not parse, an
    /// unknown durability level, a zero limit.
    pub(crate) fn resolve(
        file: Option<&Path>,
        env: Overrides,
        flags: Overrides,
    ) -> Result<ServeConfig> {
        let file: FileConfig = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("config file {} is invalid", path.display()))?
            }
            None => FileConfig::default(),
        };
        let db = flags
            .db
            .or(env.db)
            .or(file.db)
            .unwrap_or_else(|| PathBuf::from("jobstore.db"));
        let listen_text = flags
            .listen
            .or(env.listen)
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen: SocketAddr = listen_text
            .parse()
            .with_context(|| format!("listen address `{listen_text}` is not IP:PORT"))?;
        let credentials = env.credentials.as_deref();
        let expand = |path: Option<PathBuf>| {
            path.map(|path| expand_credentials(path, credentials))
                .transpose()
        };
        let tokens = expand(flags.tokens.or(env.tokens).or(file.tokens))?;
        let tls = match (
            expand(flags.tls_cert.or(env.tls_cert).or(file.tls_cert))?,
            expand(flags.tls_key.or(env.tls_key).or(file.tls_key))?,
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => bail!("tls_cert is set but tls_key is not: HTTPS needs both"),
            (None, Some(_)) => bail!("tls_key is set but tls_cert is not: HTTPS needs both"),
        };
        let durability: Durability = file
            .durability
            .as_deref()
            .unwrap_or("full")
            .parse()
            .map_err(|err: jobstore::Error| anyhow::anyhow!("{err}"))?;
        let replication: Replication = file.replication.as_deref().unwrap_or("none").parse()?;
        let defaults = jobstore_http::Limits::default();
        let ms = Duration::from_millis;
        let limits = jobstore_http::Limits {
            max_json_bytes: file
                .limits
                .max_json_bytes
                .unwrap_or(defaults.max_json_bytes),
            body_timeout: file
                .limits
                .body_timeout_ms
                .map_or(defaults.body_timeout, ms),
            header_timeout: file
                .limits
                .header_timeout_ms
                .map_or(defaults.header_timeout, ms),
            min_transfer_rate: file
                .limits
                .min_transfer_rate
                .unwrap_or(defaults.min_transfer_rate),
            max_connections: file
                .limits
                .max_connections
                .unwrap_or(defaults.max_connections),
            max_requests_per_token: file
                .limits
                .max_requests_per_token
                .unwrap_or(defaults.max_requests_per_token),
            max_wait: file.limits.max_wait_ms.map_or(defaults.max_wait, ms),
            claim_poll_interval: file
                .limits
                .claim_poll_ms
                .map_or(defaults.claim_poll_interval, ms),
            ..defaults
        };
        if limits.max_json_bytes == 0
            || limits.max_connections == 0
            || limits.min_transfer_rate == 0
            || limits.max_requests_per_token == 0
        {
            bail!("limits must be greater than zero");
        }
        if limits.header_timeout.is_zero()
            || limits.body_timeout.is_zero()
            || limits.claim_poll_interval.is_zero()
        {
            bail!("timeouts must be greater than zero");
        }
        let store_defaults = jobstore::StoreOptions::default();
        let postgres = file.postgres.resolve(&db)?;
        let dialects = file.dialects;
        let m = file.maintenance;
        Ok(ServeConfig {
            db,
            listen,
            tokens,
            tls,
            allow_plaintext: file.allow_plaintext.unwrap_or(false),
            durability,
            replication,
            limits,
            max_batch_bytes: file
                .limits
                .max_batch_bytes
                .unwrap_or(store_defaults.max_batch_bytes),
            max_batches_per_job: file
                .limits
                .max_batches_per_job
                .unwrap_or(store_defaults.max_batches_per_job),
            maintenance: Maintenance {
                rescue_interval: ms(m.rescue_interval_ms.unwrap_or(5_000).max(10)),
                purge_interval: ms(m.purge_interval_ms.unwrap_or(60_000).max(10)),
                retention_ms: m.retention_ms.unwrap_or(WEEK_MS),
                stale_upload_ms: m.stale_upload_ms.unwrap_or(WEEK_MS),
                checkpoint_interval: ms(m.checkpoint_interval_ms.unwrap_or(30_000).max(10)),
            },
            postgres,
            dialects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_environment_beat_file_beat_defaults() {
        let dir = tempfile_dir();
        let file = dir.join("jobstore.toml");
        std::fs::write(
            &file,
            "db = \"file.db\"\nlisten = \"127.0.0.1:1\"\n[limits]\nmax_json_bytes = 10\n",
        )
        .unwrap();
        let config = ServeConfig::resolve(
            Some(&file),
            Overrides {
                listen: Some("127.0.0.1:2".into()),
                ..Overrides::default()
            },
            Overrides {
                db: Some("flag.db".into()),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(config.db, PathBuf::from("flag.db"));
        assert_eq!(config.listen.port(), 2);
        assert_eq!(config.limits.max_json_bytes, 10);
        let defaults =
            ServeConfig::resolve(None, Overrides::default(), Overrides::default()).unwrap();
        assert_eq!(defaults.db, PathBuf::from("jobstore.db"));
        assert_eq!(defaults.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(defaults.durability, Durability::Full);
        assert_eq!(defaults.replication, Replication::None);
        assert_eq!(
            defaults.replication.checkpoints(),
            jobstore::Checkpoints::Store
        );
    }

    #[test]
    fn postgres_settings_size_the_driver_and_are_refused_for_a_file() {
        let dir = tempfile_dir();
        let file = dir.join("pg.toml");
        let url = Overrides {
            db: Some("postgres://jobstore@db.internal/jobs".into()),
            ..Overrides::default()
        };
        std::fs::write(&file, "[postgres]\nwriters = 2\nread_connections = 16\n").unwrap();
        let config = ServeConfig::resolve(Some(&file), Overrides::default(), url).unwrap();
        assert_eq!(
            (config.postgres.writers, config.postgres.read_connections),
            (2, 16)
        );
        let on_file = ServeConfig::resolve(Some(&file), Overrides::default(), Overrides::default());
        let refusal = format!("{:#}", on_file.unwrap_err());
        assert!(refusal.contains("SQLite file jobstore.db"), "{refusal}");
        for (keys, named) in [
            ("writers = 0", "writers"),
            ("writers = 65", "writers"),
            ("read_connections = 0", "read_connections"),
        ] {
            std::fs::write(&file, format!("[postgres]\n{keys}\n")).unwrap();
            let url = Overrides {
                db: Some("postgres://jobstore@db.internal/jobs".into()),
                ..Overrides::default()
            };
            let refusal = ServeConfig::resolve(Some(&file), Overrides::default(), url);
            let refusal = format!("{:#}", refusal.unwrap_err());
            assert!(refusal.contains(named), "{keys}: {refusal}");
        }
    }

    #[test]
    fn litestream_replication_hands_checkpoints_over() {
        let dir = tempfile_dir();
        let file = dir.join("litestream.toml");
        std::fs::write(&file, "replication = \"litestream\"\n").unwrap();
        let config =
            ServeConfig::resolve(Some(&file), Overrides::default(), Overrides::default()).unwrap();
        assert_eq!(config.replication, Replication::Litestream);
        assert_eq!(
            config.replication.checkpoints(),
            jobstore::Checkpoints::External
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile_dir();
        for text in [
            "lissten = \"x\"",
            "durability = \"fast\"",
            "replication = \"rsync\"",
            "[limits]\nmax_connections = 0",
        ] {
            let file = dir.join("bad.toml");
            std::fs::write(&file, text).unwrap();
            assert!(
                ServeConfig::resolve(Some(&file), Overrides::default(), Overrides::default())
                    .is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn tls_files_come_in_pairs_and_may_name_the_credentials_directory() {
        let dir = tempfile_dir();
        let file = dir.join("tls.toml");
        std::fs::write(
            &file,
            "tls_cert = \"/etc/jobstore/tls/cert.pem\"\n\
             tls_key = \"$CREDENTIALS_DIRECTORY/tls.key\"\nallow_plaintext = true\n",
        )
        .unwrap();
        let env = || Overrides {
            credentials: Some("/run/credentials/jobstore.service".into()),
            ..Overrides::default()
        };
        let config = ServeConfig::resolve(Some(&file), env(), Overrides::default()).unwrap();
        assert_eq!(
            config.tls,
            Some(TlsFiles {
                cert: "/etc/jobstore/tls/cert.pem".into(),
                key: "/run/credentials/jobstore.service/tls.key".into(),
            })
        );
        assert!(config.allow_plaintext);
        // A flag beats the file, and `${...}` reads the same.
        let flags = Overrides {
            tls_key: Some("${CREDENTIALS_DIRECTORY}/other.key".into()),
            ..Overrides::default()
        };
        let config = ServeConfig::resolve(Some(&file), env(), flags).unwrap();
        assert_eq!(
            config.tls.unwrap().key,
            PathBuf::from("/run/credentials/jobstore.service/other.key")
        );
        // Outside systemd the name cannot be expanded.
        let err = ServeConfig::resolve(Some(&file), Overrides::default(), Overrides::default())
            .unwrap_err();
        assert!(err.to_string().contains("LoadCredential="), "{err}");
        // One of the pair alone is refused.
        let flags = Overrides {
            tls_cert: Some("cert.pem".into()),
            ..Overrides::default()
        };
        let err = ServeConfig::resolve(None, Overrides::default(), flags).unwrap_err();
        assert!(err.to_string().contains("needs both"), "{err}");
        // Defaults: plain HTTP, no allowance beyond loopback.
        let defaults =
            ServeConfig::resolve(None, Overrides::default(), Overrides::default()).unwrap();
        assert_eq!(defaults.tls, None);
        assert!(!defaults.allow_plaintext);
        // Only a leading, whole name is expanded.
        for kept in ["/etc/$CREDENTIALS_DIRECTORY/x", "$CREDENTIALS_DIRECTORYX/y"] {
            assert_eq!(
                expand_credentials(kept.into(), Some(Path::new("/run/c"))).unwrap(),
                PathBuf::from(kept)
            );
        }
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "jobstore-config-{}-{}",
            std::process::id(),
            line!()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
