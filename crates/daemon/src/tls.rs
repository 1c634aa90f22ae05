//! The control API over TCP with TLS (rustls with the ring provider, HTTP/1.1):
//! loading the certificate chain and key from `[host.management]`'s PEM files,
//! and serving an axum [`Router`] on a TCP listener.
//!
//! Invariants: nothing is ever served without TLS; every request carries
//! `ConnectInfo(Peer { tcp: Some(remote), .. })`, so handlers and the
//! authorization guard see TCP callers the way they see Unix-socket callers (with
//! no uid: a TCP caller is only who its bearer token says). A failed handshake, a
//! slow client or a failed accept costs one connection, never the server; at
//! most [`MAX_CONNECTIONS`] connections are served at once, and handshakes and
//! request headers have deadlines.

use crate::api::Peer;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// The most TCP connections served at once; more are closed on accept.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish their requests after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The ALPN protocol the listener speaks.
const HTTP_1_1: &[u8] = b"http/1.1";

/// The ring crypto provider (the only one compiled in).
pub(crate) fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A server configuration from a PEM certificate chain (leaf first) and a PEM
/// private key (PKCS#8, PKCS#1 or SEC1); TLS 1.2 and 1.3, HTTP/1.1 by ALPN. The
/// errors name the file at fault.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| {
            format!(
                "cannot read the TLS certificate chain {}: {e}",
                cert.display()
            )
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            format!(
                "cannot read the TLS certificate chain {}: {e}",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "no certificate (-----BEGIN CERTIFICATE-----) in the TLS certificate chain {}",
            cert.display()
        ));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "cannot read a private key (PKCS#8, PKCS#1 or SEC1 PEM) from the TLS key {}: {e}",
            key.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| {
            format!(
                "the TLS key {} does not fit the certificate chain {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![HTTP_1_1.to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` with TLS until `shutdown` resolves, then stops
/// accepting and gives open connections [`SHUTDOWN_GRACE`] to finish. Each request
/// gets the extension `axum::extract::ConnectInfo(crate::api::Peer { tcp:
/// Some(remote_addr), ..Default::default() })`, so handlers and the guard see the
/// TCP peer exactly as Unix callers' `ConnectInfo<Peer>`. A failed handshake is
/// logged (`tracing::warn`) and the connection dropped; it never stops the server.
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                        tracing::warn!(%remote, limit = MAX_CONNECTIONS, "API over TLS: too many connections; closing a new one");
                        continue;
                    };
                    let acceptor = acceptor.clone();
                    let app = app.clone();
                    let stop = stop_rx.clone();
                    connections.spawn(async move {
                        serve_connection(acceptor, stream, remote, app, stop).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait, then go on.
                    tracing::warn!(error = %e, "API over TLS: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "API over TLS: connections still open after the shutdown grace; closing them"
        );
    }
    // Dropping the set aborts what is left.
}

/// One connection: the handshake (bounded by [`HANDSHAKE_TIMEOUT`]), then HTTP/1.1
/// until the client closes or `stop` turns true (graceful: the request in
/// progress finishes).
async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::warn!(%remote, error = %e, "API over TLS: handshake failed");
            return;
        }
        Err(_) => {
            tracing::warn!(%remote, "API over TLS: handshake timed out");
            return;
        }
    };
    let peer = Peer {
        tcp: Some(remote),
        ..Peer::default()
    };
    let service = app.map_request(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let conn = http.serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            conn.as_mut().await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "API over TLS: connection ended with an error");
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any other await.
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn config_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let empty = temp_file(dir.path(), "empty.pem", "");
        let junk = temp_file(
            dir.path(),
            "junk.pem",
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        );

        let e = server_config(&missing, &missing).unwrap_err();
        assert!(
            e.contains("certificate chain") && e.contains("missing.pem"),
            "{e}"
        );
        let e = server_config(&empty, &missing).unwrap_err();
        assert!(
            e.contains("no certificate") && e.contains("empty.pem"),
            "{e}"
        );
        let e = server_config(&junk, &missing).unwrap_err();
        assert!(e.contains("junk.pem"), "{e}");

        let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let cert = temp_file(dir.path(), "cert.pem", &pair.cert.pem());
        let key = temp_file(dir.path(), "key.pem", &pair.signing_key.serialize_pem());
        assert!(server_config(&cert, &key).is_ok());

        // A key file with only a certificate in it.
        let e = server_config(&cert, &cert).unwrap_err();
        assert!(e.contains("TLS key") && e.contains("cert.pem"), "{e}");
        // A key of another certificate.
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let other_key = temp_file(
            dir.path(),
            "other-key.pem",
            &other.signing_key.serialize_pem(),
        );
        let e = server_config(&cert, &other_key).unwrap_err();
        assert!(
            e.contains("does not fit") && e.contains("other-key.pem") && e.contains("cert.pem"),
            "{e}"
        );
    }
}
