//! The command line: what `clap` parses. The doc comments are the `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// An embedded, SQLite-backed job store.
#[derive(Parser, Debug)]
#[command(name = "jobstore", version, about)]
pub(crate) struct Cli {
    /// The database: a SQLite file, or a PostgreSQL database by its postgres:// URL, which
    /// several daemons may share [env: JOBSTORE_DB] [default: ./jobstore.db].
    #[arg(long, global = true)]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level commands.
#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Run the HTTP daemon (default: ./jobstore.db on 127.0.0.1:8080).
    Serve(ServeArgs),
    /// Claim jobs from a daemon and run a command for each.
    Worker(WorkerArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// TLS certificates for the daemon.
    #[command(subcommand)]
    Tls(TlsCommand),
    /// Create the database or bring it to the current schema, then exit.
    Migrate,
    /// Check the file's integrity and the store's invariants; exit 1 on any problem.
    Check,
    /// Write a consistent copy of the database to DEST while it is in use.
    Backup {
        /// Where to write the copy (must not exist).
        dest: PathBuf,
    },
    /// Bring the database back from its Litestream replica: restore into a temporary file
    /// beside it, check that file, and only then move it into place. Never overwrites.
    Restore(RestoreArgs),
    /// Job counts by queue and state.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and change jobs (every tenant's).
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Copy a SQLite file's store into a PostgreSQL database (moving a node to PostgreSQL).
    ///
    /// Everything the store keeps is copied with the same ids: every job (every state,
    /// leases, attempts, unique and idempotency keys, tenants), its events, steps, logs,
    /// uploaded data and outputs, and every definition.
    ///
    /// The file is read in one read transaction (it is never written or migrated):
    /// the copy is the file as it was when the command began, even while a daemon still
    /// writes to it, and what is written after that moment is not copied. Stop the daemon
    /// (or at least every writer) before copying, then start the daemons on the database.
    ///
    /// The database is migrated, then must hold no jobs or definitions (a copy never
    /// merges). The copy is one transaction: everything is there when the command succeeds,
    /// nothing when it fails. Check the result with `jobstore check --db URL` and
    /// `jobstore stats --db URL`.
    Copy(CopyArgs),
}

/// The flags of `jobstore copy`.
#[derive(Args, Debug)]
pub(crate) struct CopyArgs {
    /// The SQLite file to copy, at this build's schema version (`jobstore migrate --db FILE`
    /// brings an older one there).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The PostgreSQL database to copy into, by its URL: postgres://USER@HOST:PORT/DB (a
    /// password in it is never shown) [env: JOBSTORE_COPY_TO].
    #[arg(long, value_name = "URL", env = "JOBSTORE_COPY_TO", hide_env = true)]
    pub to: String,
}

/// The flags of `jobstore serve`.
#[derive(Args, Debug)]
pub(crate) struct ServeArgs {
    /// The address to listen on [env: JOBSTORE_LISTEN].
    #[arg(long)]
    pub listen: Option<String>,
    /// The tokens file; required to listen beyond loopback [env: JOBSTORE_TOKENS].
    #[arg(long)]
    pub tokens: Option<PathBuf>,
    /// The TLS certificate chain (PEM); with --tls-key the daemon serves HTTPS
    /// [env: JOBSTORE_TLS_CERT].
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM) [env: JOBSTORE_TLS_KEY].
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// A TOML config file (flags and environment override it).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// The flags of `jobstore restore`.
#[derive(Args, Debug)]
pub(crate) struct RestoreArgs {
    /// The replica's URL (`file:///backup/jobstore`, `s3://BUCKET/PATH`), instead of the
    /// replica that Litestream's config file names for the database.
    #[arg(long, conflicts_with = "config")]
    pub replica: Option<String>,
    /// Litestream's config file, whose `dbs` entry for the database names its replica
    /// [default: /etc/jobstore/litestream.yml].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Restore the state at this time (RFC 3339, e.g. 2026-01-31T12:00:00Z) instead of the
    /// newest the replica holds.
    #[arg(long)]
    pub timestamp: Option<String>,
    /// The Litestream binary.
    #[arg(long, default_value = "litestream")]
    pub litestream: PathBuf,
}

/// The flags of `jobstore worker`.
#[derive(Args, Debug)]
pub(crate) struct WorkerArgs {
    /// The daemon, http://HOST:PORT or https://HOST:PORT [default: http://127.0.0.1:8080].
    #[arg(long)]
    pub url: Option<String>,
    /// A file whose first line is the bearer token.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// PEM certificates to trust for an https:// daemon besides the system's, e.g. the
    /// cert.pem of `jobstore tls self-signed` [env: JOBSTORE_CA_FILE].
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// A queue to claim from (repeatable).
    #[arg(long = "queue")]
    pub queues: Vec<String>,
    /// Jobs run at once [default: 1].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// The command for every job kind, split like a shell would (no shell runs unless
    /// you name one: `sh -c '...'`).
    #[arg(long, conflicts_with = "config")]
    pub exec: Option<String>,
    /// A TOML file with a command per job kind.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// What the command reads on stdin: payload, data or none [default: payload].
    #[arg(long)]
    pub stdin: Option<String>,
    /// Kill an `--exec` command after this many ms and fail the attempt.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// The worker's name (the lease owner) [default: HOST-PID].
    #[arg(long)]
    pub name: Option<String>,
    /// Lease length in ms [default: 30000]; heartbeats come every third of it.
    #[arg(long)]
    pub lease_ms: Option<u64>,
    /// SIGTERM → SIGKILL grace, and the shutdown grace, in ms [default: 10000].
    #[arg(long)]
    pub grace_ms: Option<u64>,
}

/// The subcommands of `jobstore token`.
#[derive(Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Create a random token, print it once, and append its hash to the tokens file.
    Add {
        /// The tokens file (created when missing, mode 0600).
        #[arg(long)]
        tokens: PathBuf,
        /// The token's name (recorded as the creator of its jobs).
        #[arg(long)]
        name: String,
        /// The tenant the token acts in.
        #[arg(long)]
        tenant: String,
        /// A comma list of read, write, work, admin.
        #[arg(long)]
        scopes: String,
    },
}

/// The subcommands of `jobstore tls`.
#[derive(Subcommand, Debug)]
pub(crate) enum TlsCommand {
    /// Write a self-signed certificate and its key (DIR/cert.pem, DIR/key.pem mode 0600) for
    /// local use; clients trust cert.pem itself (curl --cacert DIR/cert.pem).
    SelfSigned {
        /// The folder to write into (created when missing; existing files are not replaced).
        #[arg(long)]
        out: PathBuf,
        /// A DNS name or IP address the certificate is for (repeatable)
        /// [default: localhost, 127.0.0.1, ::1].
        #[arg(long = "name")]
        names: Vec<String>,
        /// Days the certificate is valid from now.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
}

/// The subcommands of `jobstore jobs`.
#[derive(Subcommand, Debug)]
pub(crate) enum JobsCommand {
    /// List jobs, newest first.
    List {
        /// Only jobs in these states (repeatable).
        #[arg(long)]
        state: Vec<String>,
        /// Only jobs of these kinds (repeatable).
        #[arg(long)]
        kind: Vec<String>,
        /// Only jobs in these queues (repeatable).
        #[arg(long)]
        queue: Vec<String>,
        /// Sort field.
        #[arg(long, default_value = "created_at")]
        sort: String,
        /// Sort direction: asc or desc.
        #[arg(long, default_value = "desc")]
        order: String,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one job with its steps and history.
    Show {
        /// The job id.
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancel a job (cooperatively when it runs).
    Cancel {
        /// The job id.
        id: i64,
    },
    /// Restart a failed or cancelled job.
    Restart {
        /// The job id.
        id: i64,
    },
    /// Delete a finished job with its history, data and log.
    Delete {
        /// The job id.
        id: i64,
    },
    /// A job's named outputs (a worker's per-record results, say): without NAME their names
    /// and sizes, with NAME that output's bytes on standard output.
    Output {
        /// The job id.
        id: i64,
        /// The output to print whole.
        name: Option<String>,
    },
}
