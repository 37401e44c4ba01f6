//! HTTPS: the daemon's certificate and key, read from PEM files, handed to every new connection's
//! handshake, and replaced in place on reload. A connection keeps the pair its handshake used;
//! the next handshake takes the new one, and no client resumes a session begun with the old
//! one. A reload that fails keeps the pair in use.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{InconsistentKeys, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The reason.
        source: io::Error,
    },
    /// A file holds no PEM section of the kind expected, or a broken one.
    #[error("{path} holds no PEM {what} ({reason})")]
    Pem {
        /// `certificate` (`-----BEGIN CERTIFICATE-----`) or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM reader found.
        reason: String,
    },
    /// The key does not belong to the first certificate of the chain.
    #[error("the key in {key} does not match the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The key or certificate was refused by the TLS library (an unsupported key type, say).
    #[error("cannot use the key in {key} with the certificate in {cert}: {reason}")]
    Refused {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The TLS library's reason.
        reason: rustls::Error,
    },
}

/// The daemon's TLS identity: a certificate chain and its key from two PEM files, served to
/// every new handshake, replaceable while serving ([`Tls::reload`]).
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// What new handshakes use.
    current: RwLock<Current>,
}

/// The pair in use and the configuration that serves it.
struct Current {
    pair: Arc<CertifiedKey>,
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What a reload found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reloaded {
    /// A new certificate chain or key: new handshakes use it.
    Changed,
    /// The files hold the pair already in use (kept, with its sessions).
    Unchanged,
}

impl Tls {
    /// Reads the certificate chain (`cert`: PEM, the server's certificate first, then any
    /// intermediates) and its private key (`key`: PEM, PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// A file that cannot be read, holds no PEM certificate or key, a key that does not match
    /// the certificate or is of a type the TLS library does not support.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Tls, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let provider = Arc::new(provider());
        let current = configure(&cert, &key, &provider)?;
        Ok(Tls {
            cert,
            key,
            provider,
            current: RwLock::new(current),
        })
    }

    /// Reads both files again. On success new handshakes use the pair read (connections
    /// already open keep theirs; sessions of the old pair are not resumed); on error the pair
    /// in use stays.
    ///
    /// # Errors
    /// As [`Tls::load`].
    pub fn reload(&self) -> Result<Reloaded, TlsError> {
        let new = configure(&self.cert, &self.key, &self.provider)?;
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let (old, pair) = (&current.pair, &new.pair);
        if old.cert == pair.cert
            && old.key.public_key().is_some()
            && old.key.public_key() == pair.key.public_key()
        {
            return Ok(Reloaded::Unchanged);
        }
        *current = new;
        Ok(Reloaded::Changed)
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
    }

    /// The key file.
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    /// An acceptor for one new connection's handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        TlsAcceptor::from(Arc::clone(&current.config))
    }
}

/// The cryptography of every handshake: *ring*'s. rustls 0.23.48 deprecates it because *ring*
/// has no post-quantum key exchange (X25519MLKEM768); aws-lc-rs has one at the cost of a C
/// library built with the daemon. Classical X25519, P-256 and P-384 exchanges are offered.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Reads the pair and configures handshakes with it: TLS 1.2 and 1.3, no client
/// certificates, HTTP/1.1 only (a client offering h2 as well is told to use HTTP/1.1), and a
/// session cache of its own.
fn configure(cert: &Path, key: &Path, provider: &Arc<CryptoProvider>) -> Result<Current, TlsError> {
    let pair = Arc::new(read_pair(cert, key, provider)?);
    let refused = |reason| TlsError::Refused {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason,
    };
    let mut config = ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_safe_default_protocol_versions()
        .map_err(refused)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(&pair))));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Current {
        pair,
        config: Arc::new(config),
    })
}

/// Reads and checks a certificate chain and its key.
fn read_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let pem_error = |what, path: &Path, reason: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&read("certificate", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| pem_error("certificate", cert, err.to_string()))?;
    if chain.is_empty() {
        return Err(pem_error(
            "certificate",
            cert,
            "no -----BEGIN CERTIFICATE----- section".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&read("key", key)?).map_err(|err| {
        let reason = match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no -----BEGIN PRIVATE KEY----- section (nor an RSA or EC one)".to_owned()
            }
            other => other.to_string(),
        };
        pem_error("private key", key, reason)
    })?;
    CertifiedKey::from_der(chain, private, provider).map_err(|reason| match reason {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        reason => TlsError::Refused {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A new self-signed pair for localhost: (certificate PEM, key PEM).
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn served(tls: &Tls) -> Vec<CertificateDer<'static>> {
        tls.current.read().unwrap().pair.cert.clone()
    }

    #[test]
    fn a_reload_swaps_the_pair_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (first_cert, first_key) = pair();
        std::fs::write(&cert, &first_cert).unwrap();
        std::fs::write(&key, &first_key).unwrap();
        let tls = Tls::load(&cert, &key).unwrap();
        let first = served(&tls);
        assert_eq!(tls.reload().unwrap(), Reloaded::Unchanged);

        let (second_cert, second_key) = pair();
        std::fs::write(&cert, &second_cert).unwrap();
        std::fs::write(&key, &second_key).unwrap();
        assert_eq!(tls.reload().unwrap(), Reloaded::Changed);
        let second = served(&tls);
        assert_ne!(first, second);

        // The first key with the second certificate: refused, the second pair stays.
        std::fs::write(&key, &first_key).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");
        assert_eq!(served(&tls), second);

        std::fs::write(&key, "not a key").unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
        assert!(err.to_string().contains("BEGIN PRIVATE KEY"), "{err}");
        std::fs::write(&cert, "").unwrap();
        assert!(matches!(tls.reload().unwrap_err(), TlsError::Pem { .. }));
        std::fs::remove_file(&cert).unwrap();
        let err = tls.reload().unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert_eq!(served(&tls), second);
    }
}
