//! The management plane of a real daemon, end to end: the API over TCP+TLS with a
//! bearer token (`portcullis --api … --ca … show`, `whoami`), refused with another
//! CA, without a token and with an operator's token for an admin's call; every
//! audit record copied to syslog (a Unix datagram socket the test listens on);
//! Prometheus metrics scraped after a known exchange (exact drop counters);
//! roles from Unix users through the socket (setpriv); a live trace. The control
//! socket's mode and group, used by a real non-root user (made for the test) whose
//! role an apply alone revokes, on a connection already open too; both API
//! listeners answering while thousands of idle connections are held, under a
//! service manager's soft limit of 1024 open files.

mod common;

use common::tls::{free_port, make_ca, make_server_cert, token};
use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

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
socket_mode = "0666"

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
    // The auditor through the socket (socket_mode 0666: any local user may
    // connect) reads the audit log; nobody else unmapped may.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sw.socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666, "socket_mode is applied");
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

/// A system user made for one test, in a system group made for it too (unique
/// names); both removed when dropped, also when the test fails.
struct TestUser {
    user: String,
    group: String,
}

impl TestUser {
    /// `pclu<tag><pid>` (with its own primary group) in the supplementary group
    /// `pclg<tag><pid>`.
    fn create(tag: &str) -> TestUser {
        let id = format!("{tag}{}", std::process::id());
        let t = TestUser {
            user: format!("pclu{id}"),
            group: format!("pclg{id}"),
        };
        run_ok(Command::new("groupadd").args(["--system", &t.group]));
        run_ok(Command::new("useradd").args([
            "--system",
            "--no-create-home",
            "--user-group",
            "--groups",
            &t.group,
            "--shell",
            "/usr/sbin/nologin",
            &t.user,
        ]));
        t
    }

    /// `program` as this user, with its groups from the user database.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("setpriv");
        c.args([
            &format!("--reuid={}", self.user),
            &format!("--regid={}", self.user),
            "--init-groups",
            program,
        ]);
        c
    }

    /// The CLI as this user against `sw`.
    fn cli(&self, sw: &Switchd, args: &[&str]) -> std::process::Output {
        self.command(EXE)
            .args(args)
            .env("PORTCULLIS_SOCKET", &sw.socket)
            .output()
            .unwrap()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        // userdel also removes the user's own group.
        let _ = Command::new("userdel").arg(&self.user).output();
        let _ = Command::new("groupdel").arg(&self.group).output();
    }
}

fn run_ok(c: &mut Command) {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The gid of group `name` (from `getent group`).
fn gid_of(name: &str) -> u32 {
    let out = Command::new("getent")
        .args(["group", name])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    line.split(':')
        .nth(2)
        .and_then(|g| g.trim().parse().ok())
        .unwrap_or_else(|| panic!("no group {name}: {line}"))
}

/// A child process ended (by its pid, through `Child`) when dropped.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two requests on one HTTP/1.1 connection to the socket: one at once, the other
/// after a line on stdin; prints each status and whether the connection is still
/// the first one.
const KEEP_ALIVE: &str = r#"
import http.client, socket, sys
class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("portcullis", timeout=10)
        self.path = path
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(self.path)
c = Unix(sys.argv[1])
c.request("POST", "/v1/counters/clear")
r = c.getresponse(); r.read()
first = c.sock
print(r.status, flush=True)
sys.stdin.readline()
c.request("POST", "/v1/counters/clear")
r = c.getresponse(); r.read()
print(r.status, "same" if c.sock is first else "new", flush=True)
"#;

#[test]
fn a_real_user_uses_its_role_through_the_socket_and_loses_it_by_apply_alone() {
    use std::io::BufRead;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let mut lab = lab(
        "sockrole",
        &[
            "setpriv", "useradd", "groupadd", "userdel", "groupdel", "getent",
        ],
    );
    let a = lab.add_guest("a").unwrap();
    let dir = lab.scratch_dir().unwrap();
    let u = TestUser::create("r");
    let cfg = |roles: &str| {
        format!(
            "[switch]\nname = \"sockrole\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n{}\n[host.management]\nsocket_group = \"{}\"\n\n[host.management.roles]\n{roles}\n",
            port("a", &a, "web"),
            u.group
        )
    };
    let granted = cfg(&format!("operator = {{ groups = [\"{}\"] }}", u.group));
    let sw = start_daemon(&mut lab, "sw", &granted);

    // The socket: 0660, of the configured group.
    let meta = std::fs::metadata(&sw.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), gid_of(&u.group));
    // A user outside the group cannot even connect.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            EXE,
            "whoami",
        ])
        .env("PORTCULLIS_SOCKET", &sw.socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ermission denied"), "{err}");

    // The member of the group has the group's role.
    let out = u.cli(&sw, &["whoami"]);
    let who = String::from_utf8_lossy(&out.stdout);
    assert!(
        who.contains(&format!("{} (operator)", u.user)),
        "{who}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ok(&u.cli(&sw, &["port", "shutdown", "a"]));
    ok(&u.cli(&sw, &["port", "enable", "a"]));
    let out = u.cli(&sw, &["apply", dir.join("sw.toml").to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("forbidden"));

    // A connection the user opened before the revocation.
    let mut py = u.command("/usr/bin/python3");
    py.args(["-c", KEEP_ALIVE])
        .arg(&sw.socket)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = Reaped(py.spawn().unwrap());
    let mut stdin = child.0.stdin.take().unwrap();
    let mut lines = std::io::BufReader::new(child.0.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first answer").unwrap();
    assert_eq!(first.trim(), "204", "the operator may clear counters");

    // Revoked by apply alone: the group loses its role.
    let revoked = dir.join("revoked.toml");
    std::fs::write(&revoked, cfg("")).unwrap();
    let out = sw.cli(&["apply", revoked.to_str().unwrap()]);
    ok(&out);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(
        shown.contains(&format!(
            "management.roles.operator.groups: [{}] → []",
            u.group
        )),
        "{shown}"
    );
    assert!(!shown.contains("no changes"), "{shown}");

    // The open connection's next request is refused, on the same connection.
    stdin.write_all(b"\n").unwrap();
    stdin.flush().unwrap();
    let second = lines.next().expect("a second answer").unwrap();
    assert_eq!(second.trim(), "403 same");
    // And every new one.
    let out = u.cli(&sw, &["port", "shutdown", "a"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no role"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(child);
    drop(u);
}

/// `Max open files` of process `pid`: (soft, hard).
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_string();
    let mut words = line["Max open files".len()..].split_whitespace();
    (
        words.next().unwrap().to_string(),
        words.next().unwrap().to_string(),
    )
}

#[test]
fn full_listeners_keep_answering_under_a_soft_limit_of_1024() {
    const UNIX_HELD: usize = 5000;
    const TCP_HELD: usize = 1500;
    let mut lab = lab("connflood", &["prlimit"]);
    let a = lab.add_guest("a").unwrap();
    let dir = lab.scratch_dir().unwrap();
    let (ca, issuer) = make_ca(&dir, "flood");
    let (cert, key) = make_server_cert(&dir, &issuer);
    let (tok, hash) = token("flood-bot", "auditor");
    let api_port = free_port();
    let cfg = format!(
        "[switch]\nname = \"flood\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n{}\n[host.management]\ntcp_listen = \"127.0.0.1:{api_port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n[[host.management.token]]\nname = \"flood-bot\"\nrole = \"auditor\"\nhash = \"{hash}\"\n",
        port("a", &a, "web"),
        cert.display(),
        key.display()
    );
    // As a service manager starts it: a soft limit of 1024 under a higher hard one.
    let sw = start_daemon_wrapped(
        &mut lab,
        "sw",
        &cfg,
        &["prlimit", "--nofile=1024:8192", "--"],
    );
    assert_eq!(
        open_files_limit(sw.pid),
        ("8192".to_string(), "8192".to_string()),
        "the daemon raised its soft limit to the hard one"
    );
    // This test holds more connections than the daemon's caps.
    let (_, hard) = open_files_limit(std::process::id());
    run_ok(Command::new("prlimit").args([
        "--pid",
        &std::process::id().to_string(),
        &format!("--nofile={hard}:{hard}"),
    ]));

    let mut held_unix = Vec::with_capacity(UNIX_HELD);
    for i in 0..UNIX_HELD {
        let s = std::os::unix::net::UnixStream::connect(&sw.socket)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        held_unix.push(s);
    }
    let mut held_tcp = Vec::with_capacity(TCP_HELD);
    for i in 0..TCP_HELD {
        let s = std::net::TcpStream::connect(("127.0.0.1", api_port))
            .unwrap_or_else(|e| panic!("TCP connection {i}: {e}"));
        held_tcp.push(s);
    }

    // The Unix socket answers at once.
    let t = std::time::Instant::now();
    let out = sw.cli(&["show", "ports", "--json"]);
    let unix_took = t.elapsed();
    ok(&out);
    let ports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ports.as_array().unwrap().len(), 1);
    // So does TLS.
    let tokfile = dir.join("flood.token");
    std::fs::write(&tokfile, &tok).unwrap();
    let t = std::time::Instant::now();
    let out = Command::new(EXE)
        .args(["whoami", "--api", &format!("127.0.0.1:{api_port}")])
        .args([
            "--ca",
            ca.to_str().unwrap(),
            "--token-file",
            tokfile.to_str().unwrap(),
        ])
        .env_remove("PORTCULLIS_TOKEN")
        .output()
        .unwrap();
    let tls_took = t.elapsed();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("token:flood-bot (auditor)"));
    eprintln!(
        "with {UNIX_HELD} Unix and {TCP_HELD} TCP connections held: show ports {unix_took:?}, whoami over TLS {tls_took:?}"
    );
    assert!(
        unix_took < Duration::from_secs(1),
        "show ports took {unix_took:?}"
    );
    assert!(
        tls_took < Duration::from_secs(1),
        "whoami over TLS took {tls_took:?}"
    );

    // The connections idle the longest made room: the first ones are closed.
    for s in [&held_unix[0], &held_unix[1]] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = (&*s).read(&mut [0u8; 16]).expect("closed, not timed out");
        assert_eq!(n, 0, "an evicted connection reads EOF");
    }
    held_tcp[0]
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = (&held_tcp[0])
        .read(&mut [0u8; 16])
        .expect("closed, not timed out");
    assert_eq!(n, 0);
    // The daemon is alive and its file descriptors within its limit.
    let fds = std::fs::read_dir(format!("/proc/{}/fd", sw.pid))
        .unwrap()
        .count();
    assert!(fds < 8192, "{fds} descriptors open");
    eprintln!("the daemon has {fds} descriptors open");
    drop(held_unix);
    drop(held_tcp);
}
