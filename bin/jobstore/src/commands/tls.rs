//! `jobstore tls`: certificates for the daemon's HTTPS. `self-signed` makes a certificate
//! for local use that clients trust by its own file (there is no authority above it).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crate::cli::TlsCommand;

/// Runs one `jobstore tls …` command.
pub(crate) fn run(command: TlsCommand) -> Result<ExitCode> {
    match command {
        TlsCommand::SelfSigned { out, names, days } => self_signed(&out, names, days)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `out/cert.pem` (a self-signed certificate for `names`, valid `days` from now) and
/// `out/key.pem` (its ECDSA P-256 key, PKCS#8, mode 0600). Existing files are not replaced.
fn self_signed(out: &Path, names: Vec<String>, days: u32) -> Result<()> {
    let names = if names.is_empty() {
        vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ]
    } else {
        names
    };
    if days == 0 {
        bail!("--days must be at least 1");
    }
    let cert_path = out.join("cert.pem");
    let key_path = out.join("key.pem");
    for path in [&cert_path, &key_path] {
        if path.exists() {
            bail!("{} exists; not replacing it", path.display());
        }
    }
    let key = rcgen::KeyPair::generate().context("cannot generate a key")?;
    let mut params = rcgen::CertificateParams::new(names.clone())
        .with_context(|| format!("not a DNS name or IP address among {names:?}"))?;
    let mut subject = rcgen::DistinguishedName::new();
    subject.push(rcgen::DnType::CommonName, names[0].as_str());
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::now_utc();
    // A day of slack for clocks behind this one.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    let cert = params
        .self_signed(&key)
        .context("cannot sign the certificate")?;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    write_new(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&cert_path, cert.pem().as_bytes(), 0o644)?;
    let expires = params.not_after.date();
    eprintln!(
        "wrote {} (self-signed for {}, valid until {expires}) and {} (mode 0600)",
        cert_path.display(),
        names.join(", "),
        key_path.display()
    );
    eprintln!(
        "serve with: jobstore serve --tls-cert {} --tls-key {}",
        cert_path.display(),
        key_path.display()
    );
    eprintln!(
        "clients trust the certificate itself, e.g. curl --cacert {} https://localhost:8080/healthz",
        cert_path.display()
    );
    Ok(())
}

/// Writes `bytes` to a new file of `mode` (refusing an existing one).
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
