//! TLS for lab tests of the API over TCP: a test CA, a server certificate for
//! 127.0.0.1 signed by it, bearer tokens made by `portcullis token new`, and a free
//! loopback port.

use super::EXE;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A self-signed CA named `name`: its PEM file in `dir`, and the issuer.
pub fn make_ca(dir: &Path, name: &str) -> (PathBuf, Issuer<'static, KeyPair>) {
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

/// A certificate for 127.0.0.1 signed by `ca`: (chain, key) PEM files in `dir`.
pub fn make_server_cert(dir: &Path, ca: &Issuer<'_, KeyPair>) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    let (c, k) = (dir.join("server.pem"), dir.join("server-key.pem"));
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `portcullis token new`: (token, hash).
pub fn token(name: &str, role: &str) -> (String, String) {
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
