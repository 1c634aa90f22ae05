//! The API over TCP+TLS: `tls::serve_tls` with certificates made by rcgen, and
//! `client::call_endpoint` as its client. Checks that requests carry the TCP peer
//! and the bearer token, that a client trusting another CA is refused, and that
//! neither a refused handshake nor plain HTTP on the TLS port stops the server.

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use hyper::Method;
use portcullis_daemon::api::Peer;
use portcullis_daemon::client::{ClientError, Endpoint, call_endpoint};
use portcullis_daemon::tls::{serve_tls, server_config};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// A CA, written as `<name>-ca.pem`, and an issuer for server certificates.
fn make_ca(dir: &Path, name: &str) -> (PathBuf, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(DnType::CommonName, format!("portcullis test CA {name}"));
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    (path, Issuer::new(params, key))
}

/// A server certificate for 127.0.0.1 issued by `ca`: (chain, key) files.
fn make_server_cert(dir: &Path, ca: &Issuer<'_, KeyPair>) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "portcullis test server");
    let cert = params.signed_by(&key, ca).unwrap();
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server-key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// Answers with what the request carried: the peer's TCP address and the
/// Authorization header.
async fn whoami(
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "tcp": peer.tcp.map(|a| a.to_string()),
        "uid": peer.uid,
        "authorization": headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
    }))
}

struct Server {
    addr: SocketAddr,
    ca: PathBuf,
    other_ca: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let (ca, issuer) = make_ca(dir.path(), "right");
    let (other_ca, _) = make_ca(dir.path(), "other");
    let (cert, key) = make_server_cert(dir.path(), &issuer);
    let config = server_config(&cert, &key).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/whoami", get(whoami));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_tls(listener, config, app, async move {
        let _ = stopped.await;
    }));
    Server {
        addr,
        ca,
        other_ca,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

fn endpoint(addr: SocketAddr, ca: &Path, token: Option<&str>) -> Endpoint {
    Endpoint::Tls {
        addr: addr.to_string(),
        ca: ca.to_path_buf(),
        token: token.map(str::to_owned),
    }
}

const TOKEN: &str = "pcl_ci-bot_00e39a7c9a89daf3cbecbafd96821557cfd292d5e4531aa1069aa39cf594fcca";

/// One request with the right CA: 200, with the peer and the token.
async fn assert_served(s: &Server) {
    let ep = endpoint(s.addr, &s.ca, Some(TOKEN));
    let answer = call_endpoint(&ep, Method::GET, "/whoami", None)
        .await
        .expect("served with the right CA");
    assert_eq!(
        answer["authorization"],
        serde_json::json!(format!("Bearer {TOKEN}"))
    );
    let tcp: SocketAddr = answer["tcp"]
        .as_str()
        .expect("the peer's TCP address is set")
        .parse()
        .unwrap();
    assert_eq!(tcp.ip(), s.addr.ip());
    assert_ne!(
        tcp.port(),
        s.addr.port(),
        "the client's port, not the server's"
    );
    assert!(answer["uid"].is_null(), "a TCP caller has no uid: {answer}");
}

#[tokio::test]
async fn requests_carry_the_tcp_peer_and_the_token() {
    let s = start().await;
    assert_served(&s).await;
    // Without a token: no header.
    let ep = endpoint(s.addr, &s.ca, None);
    let answer = call_endpoint(&ep, Method::GET, "/whoami", None)
        .await
        .unwrap();
    assert!(answer["authorization"].is_null(), "{answer}");
    // Unknown routes are the router's 404, over TLS.
    let e = call_endpoint(&ep, Method::GET, "/nothing", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Api { status, .. } if status == 404),
        "{e}"
    );
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_and_the_server_goes_on() {
    let s = start().await;
    let ep = endpoint(s.addr, &s.other_ca, Some(TOKEN));
    let e = call_endpoint(&ep, Method::GET, "/whoami", None)
        .await
        .unwrap_err();
    match &e {
        ClientError::Tls { addr, ca, .. } => {
            assert_eq!(addr, &s.addr.to_string());
            assert_eq!(ca, &s.other_ca);
        }
        other => panic!("expected a TLS error, got {other}"),
    }
    let shown = e.to_string();
    assert!(shown.contains("other-ca.pem"), "{shown}");
    assert!(!shown.contains(TOKEN), "the token never shows: {shown}");
    // The server keeps serving.
    assert_served(&s).await;
}

#[tokio::test]
async fn a_wrong_server_name_is_refused() {
    let s = start().await;
    // The certificate is for 127.0.0.1, not for "localhost".
    let ep = Endpoint::Tls {
        addr: format!("localhost:{}", s.addr.port()),
        ca: s.ca.clone(),
        token: None,
    };
    let e = call_endpoint(&ep, Method::GET, "/whoami", None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, ClientError::Tls { .. } | ClientError::TcpConnect { .. }),
        "{e}"
    );
    assert_served(&s).await;
}

#[tokio::test]
async fn plain_http_on_the_tls_port_fails_without_stopping_the_server() {
    let s = start().await;
    let mut plain = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    plain
        .write_all(b"GET /whoami HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        plain.read_to_end(&mut got),
    )
    .await
    .expect("the server closes the connection");
    // Closed (possibly with a TLS alert or a reset), never an HTTP answer.
    if read.is_ok() {
        assert!(
            !got.starts_with(b"HTTP/"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
    assert_served(&s).await;
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let mut s = start().await;
    assert_served(&s).await;
    s.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), &mut s.task)
        .await
        .expect("serve_tls returns after shutdown")
        .unwrap();
    let e = call_endpoint(&endpoint(s.addr, &s.ca, None), Method::GET, "/whoami", None)
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::TcpConnect { .. }), "{e}");
}
