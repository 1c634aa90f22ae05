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

/// Whether something accepts TCP connections on `addr` (polled for up to 2 s when
/// `want` is false: a stopped listener closes as soon as its task runs).
fn listening(addr: SocketAddr, want: bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let up = std::net::TcpStream::connect(addr).is_ok();
        if up == want || std::time::Instant::now() >= deadline {
            return up;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `GET /metrics` on `addr`: the status line.
fn scrape(addr: SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines().next().unwrap_or_default().to_string()
}

/// A daemon (no ports: no root needed) whose TLS listener and metrics endpoint an
/// apply opens, moves to other addresses and closes, each at once.
#[test]
fn an_apply_opens_moves_and_closes_the_tcp_listeners_at_once() {
    use portcullis_daemon::client::call_blocking;
    let dir = tempfile::tempdir().unwrap();
    let (ca, issuer) = make_ca(dir.path(), "right");
    let (cert, key) = make_server_cert(dir.path(), &issuer);
    let (token, hash) = portcullis_control::rbac::new_token("ci-bot").unwrap();
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    };
    let (api1, api2, metrics1, metrics2) = (free(), free(), free(), free());
    // A second certificate, of another CA, in files of other names.
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let (other_ca, other_issuer) = make_ca(&other_dir, "other");
    let (other_cert, other_key) = make_server_cert(&other_dir, &other_issuer);
    let tls_config = |api: Option<SocketAddr>, metrics: Option<SocketAddr>, other: bool| {
        let (cert, key) = if other {
            (&other_cert, &other_key)
        } else {
            (&cert, &key)
        };
        let mut m = String::new();
        if let Some(a) = api {
            m += &format!(
                "tcp_listen = \"{a}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            );
        }
        if let Some(a) = metrics {
            m += &format!("metrics_listen = \"{a}\"\n");
        }
        format!(
            "[switch]\nname = \"listeners\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n[host.management]\n{m}\n[[host.management.token]]\nname = \"ci-bot\"\nrole = \"auditor\"\nhash = \"{hash}\"\n"
        )
    };
    let config = |api, metrics| tls_config(api, metrics, false);
    let path = dir.path().join("listeners.toml");
    std::fs::write(&path, config(None, None)).unwrap();
    let socket = dir.path().join("api.sock");
    let daemon = portcullis_daemon::start(&portcullis_daemon::DaemonOptions {
        config: path,
        host: None,
        socket: socket.clone(),
        state_dir: dir.path().join("state"),
        cluster: None,
    })
    .expect("a daemon without ports starts");
    let apply = |text: String| {
        let v = call_blocking(
            &socket,
            Method::POST,
            "/v1/config/apply",
            Some(serde_json::json!({ "profile": { "name": "listeners.toml", "text": text } })),
        )
        .unwrap();
        assert_eq!(v["applied"], true, "{v}");
        assert_eq!(v["notes"], serde_json::json!([]), "{v}");
        v
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let whoami = |addr: SocketAddr| {
        rt.block_on(call_endpoint(
            &endpoint(addr, &ca, Some(&token)),
            Method::GET,
            "/v1/whoami",
            None,
        ))
    };

    // Opened by apply.
    let v = apply(config(Some(api1), Some(metrics1)));
    assert!(
        v["diff"]
            .as_str()
            .unwrap()
            .contains(&format!("~ management.tcp_listen: none → {api1}")),
        "{v}"
    );
    assert_eq!(whoami(api1).unwrap()["user"], "token:ci-bot");
    assert_eq!(scrape(metrics1), "HTTP/1.1 200 OK");

    // Moved by apply: the old addresses close, the new ones answer.
    apply(config(Some(api2), Some(metrics2)));
    assert!(!listening(api1, false), "the old API address is closed");
    assert!(
        !listening(metrics1, false),
        "the old metrics address is closed"
    );
    assert_eq!(whoami(api2).unwrap()["user"], "token:ci-bot");
    assert_eq!(scrape(metrics2), "HTTP/1.1 200 OK");

    // New TLS files on the same address: the listener is rebound with them.
    apply(tls_config(Some(api2), Some(metrics2), true));
    let answer = rt.block_on(call_endpoint(
        &endpoint(api2, &other_ca, Some(&token)),
        Method::GET,
        "/v1/whoami",
        None,
    ));
    assert_eq!(answer.unwrap()["user"], "token:ci-bot");
    assert!(whoami(api2).is_err(), "the old certificate is gone");

    // Closed by apply.
    apply(config(None, None));
    assert!(!listening(api2, false));
    assert!(!listening(metrics2, false));
    // The socket still answers.
    assert!(call_blocking(&socket, Method::GET, "/v1/status", None).is_ok());
    daemon.shutdown();
}
