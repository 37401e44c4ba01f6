//! A small HTTP/1.1 client for the daemon's native worker API: one connection per request,
//! `http://` or `https://` (rustls with the *ring* provider, trusting the system's roots and an
//! optional CA file), bearer token, JSON in and out, and a streamed body for job data.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

/// What went wrong with a call to the daemon.
#[derive(Debug)]
pub(super) enum CallError {
    /// The daemon could not be reached or the exchange broke: retry later.
    Unreachable(anyhow::Error),
    /// The daemon answered with an error document.
    Refused {
        /// The HTTP status.
        status: StatusCode,
        /// The error type (`stale_lease`, ...).
        kind: String,
        /// The message.
        message: String,
    },
}

impl CallError {
    /// Whether the same call may succeed later: the daemon was out of reach, or answered 503
    /// (its database out of reach, shutting down, overloaded). Retried, a call whose first
    /// try did commit meets the state it made and is refused.
    pub(super) fn is_transient(&self) -> bool {
        match self {
            CallError::Unreachable(_) => true,
            CallError::Refused { status, .. } => *status == StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether the lease is gone: the job was rescued, re-claimed or finished meanwhile.
    pub(super) fn lease_lost(&self) -> bool {
        matches!(self, CallError::Refused { kind, .. }
            if kind == "stale_lease" || kind == "job_not_found")
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(err) => write!(f, "daemon unreachable: {err:#}"),
            CallError::Refused {
                status,
                kind,
                message,
            } => write!(f, "{} {kind}: {message}", status.as_u16()),
        }
    }
}

/// The daemon's address and credentials.
#[derive(Debug, Clone)]
pub(super) struct Client {
    /// `HOST[:PORT]` as given, the `Host` header.
    authority: String,
    /// The host to connect to (an IPv6 address without its brackets).
    host: String,
    /// The port to connect to (the scheme's default when the URL names none).
    port: u16,
    base_path: String,
    url: String,
    token: Option<String>,
    timeout: Duration,
    /// `None`: plain HTTP.
    tls: Option<Tls>,
}

/// What an `https://` client needs for each handshake.
#[derive(Clone)]
struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish()
    }
}

impl Client {
    /// A client for `url` (`http://HOST[:PORT][/prefix]` or `https://...`). Over HTTPS the
    /// daemon's certificate must chain to the system's roots or to a certificate in
    /// `ca_file` (PEM; a self-signed certificate is its own authority).
    ///
    /// # Errors
    /// A URL that is neither `http://` nor `https://`, names no host or has a query; a CA
    /// file that cannot be read or holds no certificate; no certificate to trust at all.
    pub(super) fn new(url: &str, token: Option<String>, ca_file: Option<&Path>) -> Result<Client> {
        let (secure, rest) = if let Some(rest) = strip_scheme(url, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_scheme(url, "http://") {
            (false, rest)
        } else {
            bail!("the daemon URL must start with http:// or https:// (got `{url}`)");
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            bail!("the daemon URL `{url}` names no host");
        }
        if path.contains(['?', '#']) {
            bail!("the daemon URL `{url}` has a query or fragment");
        }
        if authority.contains('@') {
            bail!("the daemon URL `{url}` has user information: give the token with --token-file");
        }
        let parsed: http::uri::Authority = authority
            .parse()
            .with_context(|| format!("the daemon URL `{url}` has an invalid host or port"))?;
        let port = match authority
            .get(parsed.host().len()..)
            .map(|rest| rest.strip_prefix(':'))
        {
            Some(None) => {
                if secure {
                    443
                } else {
                    80
                }
            }
            Some(Some(digits)) => digits
                .parse()
                .with_context(|| format!("the daemon URL `{url}` has an invalid port"))?,
            None => bail!("the daemon URL `{url}` has an invalid host"),
        };
        let host = parsed
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = if secure {
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("`{host}` is not a DNS name or an IP address"))?;
            Some(Tls {
                connector: TlsConnector::from(tls_config(ca_file)?),
                name,
            })
        } else {
            if let Some(path) = ca_file {
                log::warn!(
                    "the CA file {} is not used: the daemon URL {url} is plain http://",
                    path.display()
                );
            }
            None
        };
        Ok(Client {
            authority: authority.to_owned(),
            host,
            port,
            base_path: format!("/{}", path.trim_end_matches('/'))
                .trim_end_matches('/')
                .to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            token,
            timeout: Duration::from_secs(90),
            tls,
        })
    }

    /// The daemon URL, as given.
    pub(super) fn url(&self) -> &str {
        &self.url
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, CallError> {
        let unreachable = |err: anyhow::Error| CallError::Unreachable(err);
        let exchange = async {
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base_path))
                .header(header::HOST, &self.authority);
            if let Some(token) = &self.token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = match body {
                Some((content_type, bytes)) => request
                    .header(header::CONTENT_TYPE, content_type)
                    .body(Full::new(Bytes::from(bytes)))?,
                None => request.body(Full::new(Bytes::new()))?,
            };
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .with_context(|| format!("connect to {}", self.authority))?;
            stream.set_nodelay(true)?;
            match &self.tls {
                None => exchange(stream, request).await,
                Some(tls) => {
                    let stream = tls
                        .connector
                        .connect(tls.name.clone(), stream)
                        .await
                        .with_context(|| format!("TLS handshake with {}", self.authority))?;
                    exchange(stream, request).await
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(unreachable),
            Err(_) => Err(unreachable(anyhow!("no answer within {timeout:?}"))),
        }
    }

    /// Sends JSON and decodes the JSON answer; a non-2xx answer is [`CallError::Refused`].
    pub(super) async fn json<T: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &T,
        timeout: Option<Duration>,
    ) -> Result<Value, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|err| CallError::Unreachable(err.into()))?;
        let response = self
            .send(
                method,
                path,
                Some(("application/json", bytes)),
                timeout.unwrap_or(self.timeout),
            )
            .await?;
        answer(response).await
    }

    /// PUTs raw bytes and decodes the JSON answer; a non-2xx answer is [`CallError::Refused`].
    pub(super) async fn put_bytes(&self, path: &str, bytes: Vec<u8>) -> Result<Value, CallError> {
        let response = self
            .send(
                Method::PUT,
                path,
                Some(("application/octet-stream", bytes)),
                self.timeout,
            )
            .await?;
        answer(response).await
    }

    /// GETs a streamed body (job data).
    pub(super) async fn stream(&self, path: &str) -> Result<Incoming, CallError> {
        let response = self.send(Method::GET, path, None, self.timeout).await?;
        let status = response.status();
        if status.is_success() {
            Ok(response.into_body())
        } else {
            Err(CallError::Refused {
                status,
                kind: "download".into(),
                message: format!("GET {path} answered {status}"),
            })
        }
    }
}

/// The JSON answer of a call; a non-2xx answer is [`CallError::Refused`].
async fn answer(response: http::Response<Incoming>) -> Result<Value, CallError> {
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|err| CallError::Unreachable(err.into()))?
        .to_bytes();
    let value: Value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).map_err(|err| CallError::Unreachable(err.into()))?
    };
    if status.is_success() {
        Ok(value)
    } else {
        Err(CallError::Refused {
            status,
            kind: value["error"]["type"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            message: value["error"]["message"]
                .as_str()
                .unwrap_or("no message")
                .to_owned(),
        })
    }
}

/// `url` without `scheme`, the scheme matched in any case.
fn strip_scheme<'a>(url: &'a str, scheme: &str) -> Option<&'a str> {
    let head = url.get(..scheme.len())?;
    head.eq_ignore_ascii_case(scheme)
        .then(|| url.get(scheme.len()..))
        .flatten()
}

/// One request on a fresh connection (plain or TLS), its answer's head; the body streams on
/// while a task drives the connection.
async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> Result<http::Response<Incoming>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            log::debug!("connection closed: {err}");
        }
    });
    Ok(sender.send_request(request).await?)
}

/// The TLS client configuration: *ring*, TLS 1.2 and 1.3, HTTP/1.1 by ALPN, trusting the
/// system's roots and the certificates of `ca_file`.
///
/// # Errors
/// A CA file that cannot be read, holds no PEM certificate or one that cannot be a trust
/// anchor; no certificate to trust at all.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    for err in &system.errors {
        log::debug!("system certificates: {err}");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    log::debug!("trusting {added} system certificates ({ignored} unusable)");
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read the CA file {}", path.display()))?;
        if certs.is_empty() {
            bail!(
                "the CA file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            );
        }
        for cert in certs {
            roots.add(cert).with_context(|| {
                format!("a certificate in {} cannot be trusted", path.display())
            })?;
        }
    }
    if roots.is_empty() {
        bail!("no certificate to trust: the system has none; give the daemon's with --ca-file");
    }
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .context("the TLS provider")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// *ring*'s cryptography, as the daemon's: rustls 0.23.48 deprecates it for its lack of a
/// post-quantum key exchange, which the daemon does not offer either.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_and_prefix() {
        let plain = Client::new("http://127.0.0.1:8080/", None, None).unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("127.0.0.1", 8080));
        assert_eq!(plain.base_path, "");
        assert!(plain.tls.is_none());
        let prefixed = Client::new("HTTP://example.test/jobs/", None, None).unwrap();
        assert_eq!(
            (prefixed.host.as_str(), prefixed.port),
            ("example.test", 80)
        );
        assert_eq!(prefixed.base_path, "/jobs");
        assert_eq!(prefixed.authority, "example.test");
        let v6 = Client::new("http://[::1]:9000", None, None).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9000));
        assert_eq!(v6.authority, "[::1]:9000");
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "ftp://host",
            "host:8080",
            "http://",
            "http:///path",
            "http://host:port",
            "http://host:",
            "http://host:65536",
            "http://user:pw@host",
            "http://host/path?x=1",
        ] {
            assert!(Client::new(url, None, None).is_err(), "{url}");
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("jobstore-worker-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = Client::new("https://localhost:8443", None, Some(&empty)).unwrap_err();
        assert!(
            format!("{err:#}").contains("holds no PEM certificate"),
            "{err:#}"
        );
        let missing = dir.join("missing.pem");
        let err = Client::new("https://localhost:8443", None, Some(&missing)).unwrap_err();
        assert!(
            format!("{err:#}").contains("cannot read the CA file"),
            "{err:#}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
