//! A small HTTP/1.1 client for the daemon's native worker API: one connection per request,
//! `http://` only, bearer token, JSON in and out, and a streamed body for job data.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;

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
    authority: String,
    base_path: String,
    url: String,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A client for `url` (`http://HOST:PORT[/prefix]`).
    ///
    /// # Errors
    /// A URL that is not `http://`.
    pub(super) fn new(url: &str, token: Option<String>) -> Result<Client> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("the daemon URL must start with http:// (got `{url}`)"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            bail!("the daemon URL `{url}` names no host");
        }
        Ok(Client {
            authority: authority.to_owned(),
            base_path: format!("/{}", path.trim_end_matches('/'))
                .trim_end_matches('/')
                .to_owned(),
            url: url.trim_end_matches('/').to_owned(),
            token,
            timeout: Duration::from_secs(90),
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
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Incoming>, CallError> {
        let unreachable = |err: anyhow::Error| CallError::Unreachable(err);
        let exchange = async {
            let stream = tokio::net::TcpStream::connect(&self.authority)
                .await
                .with_context(|| format!("connect to {}", self.authority))?;
            stream.set_nodelay(true)?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                if let Err(err) = connection.await {
                    log::debug!("connection closed: {err}");
                }
            });
            let mut request = Request::builder()
                .method(method)
                .uri(format!("{}{path}", self.base_path))
                .header(header::HOST, &self.authority);
            if let Some(token) = &self.token {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = match body {
                Some(bytes) => request
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Full::new(Bytes::from(bytes)))?,
                None => request.body(Full::new(Bytes::new()))?,
            };
            Ok::<_, anyhow::Error>(sender.send_request(request).await?)
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
            .send(method, path, Some(bytes), timeout.unwrap_or(self.timeout))
            .await?;
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
