//! The management plane of a real daemon, end to end: the API over TCP+TLS with a
//! bearer token (`portcullis --api … --ca … show`, `whoami`), refused with another
//! CA, without a token and with an operator's token for an admin's call; every
//! audit record copied to syslog (a Unix datagram socket the test listens on);
//! Prometheus metrics scraped after a known exchange (exact drop counters);
//! roles from Unix users through the socket (setpriv); a live trace.

mod common;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn make_ca(dir: &Path, name: &str) -> (PathBuf, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(DnType::CommonName, format!("lab CA {name}"));
    let cert = params.self_signed(&key).unwrap();
    let path = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&path, cert.pem()).unwrap();
    (path, Issuer::new(params, key))
}

fn make_server_cert(dir: &Path, ca: &Issuer<'_, KeyPair>) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    let (c, k) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `portcullis token new`: (token, hash).
fn token(name: &str, role: &str) -> (String, String) {
    let out = Command::new(EXE)
        .args(["token", "new", name, "--role", role])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let token = stdout.lines().next().unwrap().trim().to_string();
    let hash = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("hash = "))
        .expect("the snippet has the hash")
        .trim_matches('"')
        .to_string();
    (token, hash)
}

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

/// The value of one sample line `name{labels} value` (labels as written).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn tls_tokens_syslog_and_metrics_on_a_real_daemon() {
    let mut lab = lab("mgmt", &["setpriv"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let dir = lab.scratch_dir().unwrap();
    let (ca, issuer) = make_ca(&dir, "good");
    let (other_ca, _) = make_ca(&dir, "other");
    let (cert, key) = make_server_cert(&dir, &issuer);
    let (op_token, op_hash) = token("ops-bot", "operator");
    let (admin_token, admin_hash) = token("admin-bot", "admin");
    let syslog_path = dir.join("syslog.sock");
    let syslog = UnixDatagram::bind(&syslog_path).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (api_port, metrics_port) = (free_port(), free_port());
    let cfg = format!(
        r#"
[switch]
name = "mgmt"

[[port_group]]
name = "web"
vlan = 10
{}{}
[host.management]
tcp_listen = "127.0.0.1:{api_port}"
tls_cert = "{}"
tls_key = "{}"
metrics_listen = "127.0.0.1:{metrics_port}"
audit_syslog = "unix:{}"

[host.management.roles]
auditor = {{ users = ["nobody"] }}

[[host.management.token]]
name = "ops-bot"
role = "operator"
hash = "{op_hash}"

[[host.management.token]]
name = "admin-bot"
role = "admin"
hash = "{admin_hash}"
"#,
        port("a", &a, "web"),
        port("b", &b, "web"),
        cert.display(),
        key.display(),
        syslog_path.display(),
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let tokfile = |t: &str, name: &str| {
        let p = dir.join(name);
        std::fs::write(&p, t).unwrap();
        p
    };
    let (op_file, admin_file) = (
        tokfile(&op_token, "op.token"),
        tokfile(&admin_token, "admin.token"),
    );
    let api = format!("127.0.0.1:{api_port}");
    let remote = |ca: &Path, tok: Option<&Path>, args: &[&str]| {
        let mut c = Command::new(EXE);
        c.args(args)
            .args(["--api", &api, "--ca", ca.to_str().unwrap()]);
        if let Some(t) = tok {
            c.args(["--token-file", t.to_str().unwrap()]);
        }
        c.env_remove("PORTCULLIS_TOKEN").output().unwrap()
    };

    // Over TLS with the operator's token.
    let out = remote(&ca, Some(&op_file), &["whoami"]);
    let who = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && who.contains("token:ops-bot (operator) via tcp:127.0.0.1:"),
        "{who}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = remote(&ca, Some(&op_file), &["show", "ports", "--json"]);
    assert!(out.status.success());
    let ports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ports.as_array().unwrap().len(), 2);
    // Refused: another CA (handshake), no token (401), operator applying (403).
    let out = remote(&other_ca, Some(&op_file), &["whoami"]);
    assert!(!out.status.success());
    let out = remote(&ca, None, &["show", "ports"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthenticated"));
    let golden = dir.join("golden.toml");
    ok(&remote(
        &ca,
        Some(&admin_file),
        &["profile", "export", "-o", golden.to_str().unwrap()],
    ));
    let out = remote(
        &ca,
        Some(&op_file),
        &["apply", golden.to_str().unwrap(), "--dry-run"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    let out = remote(
        &ca,
        Some(&admin_file),
        &["apply", golden.to_str().unwrap(), "--dry-run"],
    );
    ok(&out);
    // The auditor through the socket reads the audit log; nobody else unmapped may.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sw.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    let as_user = |uid: &str, args: &[&str]| {
        Command::new("setpriv")
            .args([
                &format!("--reuid={uid}"),
                &format!("--regid={uid}"),
                "--clear-groups",
                EXE,
            ])
            .args(args)
            .env("PORTCULLIS_SOCKET", &sw.socket)
            .output()
            .unwrap()
    };
    let out = as_user("65534", &["whoami"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nobody (auditor)"));
    let out = as_user("65534", &["port", "shutdown", "a"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    // The auditor verifies and reads the log through the API (the file is root's).
    let out = as_user("65534", &["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("records, chain intact"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_user(
        "65534",
        &["audit", "show", "--user", "token:ops-bot", "--json"],
    );
    assert!(out.status.success());
    let shown: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        shown.iter().any(|r| r["action"] == "config.apply"
            && r["result"].as_str().unwrap().starts_with("refused:")),
        "the operator's refused apply: {shown:?}"
    );
    let out = as_user("65534", &["apply", golden.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));
    let out = as_user("1", &["show", "ports"]); // daemon: no role
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no role"));

    // Every record went to syslog too, in order, as RFC 5424 with the JSON record.
    let records = portcullis_control::audit::read_records(&dir.join("sw-state").join("audit.log"))
        .unwrap()
        .0;
    assert!(records.len() >= 6, "{records:#?}");
    let mut buf = vec![0u8; 16384];
    for r in &records {
        let n = syslog.recv(&mut buf).expect("a syslog copy of each record");
        let msg = String::from_utf8_lossy(&buf[..n]);
        assert!(msg.starts_with("<85>1 "), "{msg}");
        assert!(msg.contains(&format!("\"seq\":{},", r.seq)), "{msg}");
        assert!(msg.contains(&r.hash), "{msg}");
    }

    // A live trace explains a's forged frame without the switch counting it.
    let out = sw.cli(&[
        "trace",
        "--live",
        "--port",
        "a",
        "--frame",
        "src=02:00:00:00:00:99 dst=ff:ff:ff:ff:ff:ff type=arp sender-ip=198.18.0.9 target-ip=198.18.0.1",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("verdict: drop: forged_transmit"), "{text}");
    assert!(
        text.contains("(live, on a copy of the running switch)"),
        "{text}"
    );

    // Metrics after a known exchange: 4 forged frames from a, 3 honest ones to b.
    let before = scrape(metrics_port);
    let amac = a.mac().unwrap();
    let bmac = b.mac().unwrap();
    let forged = a
        .command(EXE)
        .args([
            "lab",
            "send-frame",
            "--src",
            "02:00:00:00:00:99",
            "--dst",
            &bmac,
            "--count",
            "4",
        ])
        .output()
        .unwrap();
    assert!(forged.status.success());
    let honest = a
        .command(EXE)
        .args([
            "lab",
            "send-frame",
            "--src",
            &amac,
            "--dst",
            &bmac,
            "--count",
            "3",
        ])
        .output()
        .unwrap();
    assert!(honest.status.success());
    std::thread::sleep(Duration::from_millis(300));
    let after = scrape(metrics_port);
    let drops = r#"portcullis_port_drops_total{port="a",direction="rx",reason="forged_transmit"}"#;
    assert_eq!(sample(&before, drops).unwrap_or(0.0), 0.0);
    assert_eq!(sample(&after, drops), Some(4.0), "{after}");
    let tx_b = r#"portcullis_port_frames_total{port="b",direction="tx"}"#;
    let delta = sample(&after, tx_b).unwrap() - sample(&before, tx_b).unwrap_or(0.0);
    assert!(
        delta >= 3.0,
        "the 3 honest frames reached b (and whatever else the guests sent)"
    );
    assert_eq!(
        sample(
            &after,
            r#"portcullis_drops_total{reason="forged_transmit"}"#
        ),
        Some(4.0)
    );
    assert!(sample(&after, "portcullis_audit_records_total").unwrap() >= records.len() as f64);
    assert!(
        after.contains("portcullis_config_applies_total{result=\"ok\"} 0"),
        "dry runs are not applies"
    );
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
