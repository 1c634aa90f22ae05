//! A minimal client of the control API (HTTP/1.1 via hyper), over its Unix socket
//! or over TCP with TLS ([`Endpoint`]). The CLI's client commands use it for every
//! call: they are pure clients of the API.
//!
//! Invariants: over TCP the client speaks TLS only and trusts only the CA file it
//! is given (no system roots); the bearer token is sent only inside TLS, marked
//! sensitive, and never appears in an error or in `Debug`.

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpStream, UnixStream};

/// How long connecting and the TLS handshake may take together.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a failed connection to the Unix socket means, by what the OS said: no
/// right to the socket is not a daemon that is not running.
fn connect_message(path: &Path, error: &std::io::Error) -> String {
    let p = path.display();
    match error.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            "permission denied on the daemon's socket {p}: connecting needs write access to it (run as root, or give your group access to the socket)"
        ),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
            "no daemon listens at {p} ({error}): is `portcullis daemon` running? Another socket: --socket or PORTCULLIS_SOCKET"
        ),
        _ => format!("cannot reach the daemon at {p}: {error}"),
    }
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{}", connect_message(path, error))]
    Connect {
        path: PathBuf,
        /// Not `#[source]`: the message already says what the OS said, once.
        error: std::io::Error,
    },
    #[error("HTTP error talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("the daemon answered {status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("the daemon's answer is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "{addr:?} is not a daemon address: {message} (expected host:port, e.g. 198.18.0.2:8443 or [::1]:8443)"
    )]
    Address { addr: String, message: String },
    #[error("cannot reach the daemon at {addr}: {source}")]
    TcpConnect {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot use the CA file {path}: {message}")]
    CaFile { path: PathBuf, message: String },
    #[error(
        "TLS handshake with {addr} failed: {source} (the server's certificate must be issued by the CA in {ca} for this host name or address)"
    )]
    Tls {
        addr: String,
        ca: PathBuf,
        source: std::io::Error,
    },
    #[error("the daemon at {addr} did not complete the connection within {CONNECT_TIMEOUT:?}")]
    Timeout { addr: String },
    #[error("the bearer token contains characters an HTTP header cannot carry")]
    BadToken,
    #[error("cannot start the client's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("--api needs --ca (the CA certificate that signed the daemon's)")]
    NoCa,
    #[error("cannot read the token file {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the daemon's API is.
#[derive(Clone)]
pub enum Endpoint {
    /// The local Unix socket; the kernel tells the daemon who is calling.
    Unix(PathBuf),
    /// TCP with TLS: `addr` is `host:port` (a name, an IPv4 address or a bracketed
    /// IPv6 address), `ca` the PEM file of the CA that issued the daemon's
    /// certificate, `token` the bearer token (`pcl_<name>_<secret>`).
    Tls {
        addr: String,
        ca: PathBuf,
        token: Option<String>,
    },
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => f.debug_tuple("Unix").field(path).finish(),
            Endpoint::Tls { addr, ca, token } => f
                .debug_struct("Tls")
                .field("addr", addr)
                .field("ca", ca)
                .field("token", &token.as_ref().map(|_| "<redacted>"))
                .finish(),
        }
    }
}

/// How to reach the daemon, as a client's options give it: the Unix socket, or
/// with `api` (`host:port`) TCP+TLS trusting `ca`, with the bearer token from
/// `token_file` or else the `PORTCULLIS_TOKEN` environment variable.
#[derive(Clone, Debug, Default)]
pub struct ApiOpts {
    pub socket: PathBuf,
    pub api: Option<String>,
    pub ca: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
}

impl ApiOpts {
    /// The endpoint these options name (reads the token file).
    pub fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let Some(addr) = &self.api else {
            return Ok(Endpoint::Unix(self.socket.clone()));
        };
        let ca = self.ca.clone().ok_or(ClientError::NoCa)?;
        let token = match (&self.token_file, std::env::var("PORTCULLIS_TOKEN")) {
            (Some(f), _) => Some(
                std::fs::read_to_string(f)
                    .map_err(|source| ClientError::TokenFile {
                        path: f.clone(),
                        source,
                    })?
                    .trim()
                    .to_string(),
            ),
            (None, Ok(t)) => Some(t.trim().to_string()),
            (None, Err(_)) => None,
        };
        Ok(Endpoint::Tls {
            addr: addr.clone(),
            ca,
            token,
        })
    }

    /// One blocking call at [`ApiOpts::endpoint`].
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        call_endpoint_blocking(&self.endpoint()?, method, path, body)
    }
}

/// Sends one request and returns the status and body. Non-2xx statuses with the
/// API's error shape become [`ClientError::Api`].
pub async fn call(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|error| ClientError::Connect {
            path: socket.to_path_buf(),
            error,
        })?;
    exchange(TokioIo::new(stream), "portcullis", None, method, path, body).await
}

/// [`call`] at `ep`: the Unix socket, or TCP with TLS (trusting only `ca`, with
/// `Authorization: Bearer <token>` when a token is set).
pub async fn call_endpoint(
    ep: &Endpoint,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    match ep {
        Endpoint::Unix(socket) => call(socket, method, path, body).await,
        Endpoint::Tls { addr, ca, token } => {
            let (host, _port) = split_host_port(addr)?;
            let server_name =
                ServerName::try_from(host.to_owned()).map_err(|e| ClientError::Address {
                    addr: addr.clone(),
                    message: e.to_string(),
                })?;
            let connector = tokio_rustls::TlsConnector::from(client_config(ca)?);
            let connect = async {
                let tcp = TcpStream::connect(addr.as_str()).await.map_err(|source| {
                    ClientError::TcpConnect {
                        addr: addr.clone(),
                        source,
                    }
                })?;
                connector
                    .connect(server_name, tcp)
                    .await
                    .map_err(|source| ClientError::Tls {
                        addr: addr.clone(),
                        ca: ca.clone(),
                        source,
                    })
            };
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, connect)
                .await
                .map_err(|_| ClientError::Timeout { addr: addr.clone() })??;
            exchange(
                TokioIo::new(tls),
                addr,
                token.as_deref(),
                method,
                path,
                body,
            )
            .await
        }
    }
}

/// Blocking [`call_endpoint`] (a private current-thread runtime).
pub fn call_endpoint_blocking(
    ep: &Endpoint,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    rt.block_on(call_endpoint(ep, method, path, body))
}

/// `host:port` → (`host`, port); brackets around an IPv6 address are removed.
fn split_host_port(addr: &str) -> Result<(&str, u16), ClientError> {
    let bad = |message: &str| ClientError::Address {
        addr: addr.to_owned(),
        message: message.to_owned(),
    };
    let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 address without its closing ']'"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| bad("no port after the IPv6 address"))?;
        (host, port)
    } else {
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.contains(':') {
            return Err(bad("an IPv6 address needs brackets"));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| bad("the port is not a number in 1..=65535"))?;
    Ok((host, port))
}

/// A TLS client configuration that trusts only the CA certificates in `ca`.
fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let ca_error = |message: String| ClientError::CaFile {
        path: ca.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| ca_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(ca_error(
            "no certificate (-----BEGIN CERTIFICATE-----) in it".into(),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| ca_error(format!("not a usable CA certificate: {e}")))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ca_error(format!("TLS setup: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// One HTTP/1.1 request over `io` and its decoded answer.
async fn exchange<IO>(
    io: IO,
    host: &str,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError>
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let bytes = body
        .map(|b| serde_json::to_vec(&b))
        .transpose()?
        .unwrap_or_default();
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("content-type", "application/json");
    if let Some(token) = token {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ClientError::BadToken)?;
        value.set_sensitive(true);
        req = req.header(AUTHORIZATION, value);
    }
    let req = req.body(Full::new(Bytes::from(bytes)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status();
    let body = resp.into_body().collect().await?.to_bytes();
    drop(sender);
    let _ = conn.await;
    if status.is_success() {
        if body.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        return Ok(serde_json::from_slice(&body)?);
    }
    let (code, message) = match serde_json::from_slice::<crate::ErrorBody>(&body) {
        Ok(e) => (e.error.code, e.error.message),
        Err(_) => ("http".into(), String::from_utf8_lossy(&body).into_owned()),
    };
    Err(ClientError::Api {
        status,
        code,
        message,
    })
}

/// Blocking convenience wrapper (a private current-thread runtime).
pub fn call_blocking(
    socket: &Path,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, ClientError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)?;
    rt.block_on(call(socket, method, path, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_error_says_what_it_means_and_the_os_error_once() {
        use std::error::Error as _;
        let path = Path::new("/run/portcullis/portcullis.sock");
        let connect = |error| ClientError::Connect {
            path: path.to_path_buf(),
            error,
        };
        let denied = connect(std::io::Error::from_raw_os_error(13)).to_string();
        assert!(
            denied.starts_with("permission denied on the daemon's socket /run/portcullis/")
                && denied.contains("write access")
                && !denied.contains("running"),
            "{denied}"
        );
        let gone = connect(std::io::Error::from_raw_os_error(2));
        let text = gone.to_string();
        assert!(
            text.contains("no daemon listens") && text.contains("running?"),
            "{text}"
        );
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
        assert!(
            gone.source().is_none(),
            "a chain would print the OS error twice"
        );
        let refused = connect(std::io::Error::from_raw_os_error(111)).to_string();
        assert!(refused.contains("no daemon listens"), "{refused}");
    }

    #[test]
    fn host_and_port() {
        assert_eq!(
            split_host_port("127.0.0.1:8443").unwrap(),
            ("127.0.0.1", 8443)
        );
        assert_eq!(split_host_port("[::1]:8443").unwrap(), ("::1", 8443));
        assert_eq!(
            split_host_port("switch.example:443").unwrap(),
            ("switch.example", 443)
        );
        for bad in [
            "",
            "127.0.0.1",
            ":8443",
            "::1:8443",
            "[::1]",
            "[::1:8443",
            "h:0",
            "h:70000",
            "h:x",
        ] {
            let e = split_host_port(bad).unwrap_err();
            assert!(matches!(e, ClientError::Address { .. }), "{bad:?}: {e}");
            assert!(e.to_string().contains("host:port"), "{e}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let ep = Endpoint::Tls {
            addr: "127.0.0.1:8443".into(),
            ca: "/etc/ca.pem".into(),
            token: Some("pcl_x_secret".into()),
        };
        let shown = format!("{ep:?}");
        assert!(
            !shown.contains("secret") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn options_name_the_socket_or_tls_with_its_ca_and_token() {
        let dir = std::env::temp_dir().join(format!("portcullis-api-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "pcl_ci_secret\n").unwrap();
        let unix = ApiOpts {
            socket: "/run/p.sock".into(),
            ..ApiOpts::default()
        };
        assert!(
            matches!(unix.endpoint().unwrap(), Endpoint::Unix(p) if p == Path::new("/run/p.sock"))
        );
        let no_ca = ApiOpts {
            api: Some("127.0.0.1:8443".into()),
            ..unix.clone()
        };
        assert!(matches!(no_ca.endpoint(), Err(ClientError::NoCa)));
        let tls = ApiOpts {
            ca: Some("/etc/ca.pem".into()),
            token_file: Some(token.clone()),
            ..no_ca.clone()
        };
        match tls.endpoint().unwrap() {
            Endpoint::Tls { addr, ca, token } => {
                assert_eq!(addr, "127.0.0.1:8443");
                assert_eq!(ca, Path::new("/etc/ca.pem"));
                assert_eq!(token.as_deref(), Some("pcl_ci_secret"));
            }
            e => panic!("{e:?}"),
        }
        let missing = ApiOpts {
            token_file: Some(dir.join("absent")),
            ..tls
        };
        let e = missing.endpoint().unwrap_err();
        assert!(matches!(e, ClientError::TokenFile { .. }), "{e}");
        assert!(e.to_string().contains("absent"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let ep = Endpoint::Tls {
            addr: "127.0.0.1:9".into(),
            ca: "/nonexistent/ca.pem".into(),
            token: None,
        };
        let e = call_endpoint_blocking(&ep, Method::GET, "/", None).unwrap_err();
        assert!(matches!(e, ClientError::CaFile { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
