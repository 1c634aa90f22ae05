//! The control API over TCP with TLS (rustls with the ring provider, HTTP/1.1):
//! loading the certificate chain and key from `[host.management]`'s PEM files,
//! and serving an axum [`Router`] on a TCP listener.
//!
//! Invariants: nothing is ever served without TLS; every request carries
//! `ConnectInfo(Peer { tcp: Some(remote), .. })`, so handlers and the
//! authorization guard see TCP callers the way they see Unix-socket callers (with
//! no uid: a TCP caller is only who its bearer token says). A failed handshake, a
//! slow client or a failed accept costs one connection, never the server; the
//! connections are capped, and handshakes, request headers and idle connections
//! have deadlines (`crate::conns`).

use axum::Router;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The most TCP connections [`serve_tls`] serves at once (the daemon sizes its
/// cap from its descriptor limit: `crate::conns::caps`).
pub const MAX_CONNECTIONS: usize = 256;
pub use crate::conns::{HANDSHAKE_TIMEOUT, HEADER_TIMEOUT, SHUTDOWN_GRACE};

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

/// Serves `app` on `listener` with TLS until `shutdown` resolves, at most
/// [`MAX_CONNECTIONS`] connections at once; see [`serve_tls_with`].
pub async fn serve_tls(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_tls_with(
        listener,
        config,
        app,
        crate::conns::Limits::with_cap(MAX_CONNECTIONS),
        shutdown,
    )
    .await;
}

/// Serves `app` on `listener` with TLS within `limits` until `shutdown` resolves,
/// then stops accepting and gives open connections [`SHUTDOWN_GRACE`] to finish.
/// Each request gets the extension `axum::extract::ConnectInfo(crate::api::Peer {
/// tcp: Some(remote_addr), ..Default::default() })`, so handlers and the guard see
/// the TCP peer exactly as Unix callers' `ConnectInfo<Peer>`. A failed handshake
/// is logged (`tracing::warn`) and the connection dropped; it never stops the
/// server (`crate::conns`).
pub async fn serve_tls_with(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    app: Router,
    limits: crate::conns::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    crate::conns::serve(
        crate::conns::Listener::Tls(listener, acceptor),
        app,
        limits,
        shutdown,
    )
    .await;
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
