//! `jobstore token`: API tokens. A new token comes from the kernel's random source, is
//! printed once, and only its hash is kept in the tokens file.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::TokenCommand;

/// Runs one `jobstore token …` command.
pub(crate) fn run(command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::Add {
            tokens,
            name,
            tenant,
            scopes,
        } => add(&tokens, &name, &tenant, &scopes)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends a new token's line to the tokens file and prints the token once.
fn add(path: &Path, name: &str, tenant: &str, scopes: &str) -> Result<()> {
    let scopes = jobstore_http::auth::parse_scopes(scopes).map_err(anyhow::Error::msg)?;
    for (field, value) in [("name", name), ("tenant", tenant)] {
        if value.is_empty() || value.contains(char::is_whitespace) || value.starts_with('#') {
            anyhow::bail!("{field} must be one word, not starting with #");
        }
    }
    let token = generate()?;
    let line = jobstore_http::auth::token_line(name, tenant, &scopes, &token);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{line}").with_context(|| format!("cannot write {}", path.display()))?;
    println!("{token}");
    eprintln!(
        "added token `{name}` (tenant {tenant}) to {}; it is shown only this once",
        path.display()
    );
    Ok(())
}

/// A new random token, in hex.
fn generate() -> Result<String> {
    // 32 bytes from the kernel's random source: the token is a secret.
    let mut random = [0_u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .context("cannot read /dev/urandom")?;
    Ok(random.iter().map(|b| format!("{b:02x}")).collect())
}
