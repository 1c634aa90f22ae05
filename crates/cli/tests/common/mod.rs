//! Test support for lab tests of the `portcullis` binary: start the real daemon as
//! a lab-tracked process (ended by PID when the lab is dropped), wait for its API,
//! and query it.

#![allow(dead_code)]

pub mod crash;
pub mod libvirt;
pub mod tls;

use portcullis_lab::{Guest, Lab};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

pub const EXE: &str = env!("CARGO_BIN_EXE_portcullis");

/// A running daemon started by a test.
#[derive(Debug)]
pub struct Switchd {
    pub pid: u32,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Switchd {
    /// GET a path of the API and parse the JSON.
    pub fn get(&self, path: &str) -> serde_json::Value {
        portcullis_api::client::call_blocking(&self.socket, portcullis_api::Method::GET, path, None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n--- daemon log ---\n{}", self.log_text()))
    }

    /// The counters of one port.
    pub fn port(&self, name: &str) -> serde_json::Value {
        self.get(&format!("/v1/ports/{name}"))
    }

    /// Drops of one port for one reason, both directions.
    pub fn drops(&self, port: &str, reason: &str) -> u64 {
        let c = &self.port(port)["counters"];
        c["rx_drops"][reason].as_u64().unwrap_or(0) + c["tx_drops"][reason].as_u64().unwrap_or(0)
    }

    pub fn counter(&self, port: &str, key: &str) -> u64 {
        self.port(port)["counters"][key]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {key}"))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(EXE)
            .args(args)
            .env("PORTCULLIS_SOCKET", &self.socket)
            .output()
            .expect("run portcullis")
    }
}

/// Creates a lab, failing loudly (never skipping) without root or tools.
pub fn lab(tag: &str, tools: &[&str]) -> Lab {
    Lab::require_root().expect("lab tests need root: run the suite as root (scripts/test.sh)");
    Lab::require_tools(tools)
        .expect("the lab tests need these tools (scripts/test.sh installs them)");
    Lab::new(tag).expect("create lab")
}

/// Starts `portcullis daemon` on `config` (in `guest`'s namespace if given).
pub fn start_daemon_in(lab: &mut Lab, name: &str, config: &str, guest: Option<&Guest>) -> Switchd {
    let cmd = match guest {
        Some(g) => g.command(EXE),
        None => Command::new(EXE),
    };
    start_daemon_cmd(lab, name, config, cmd, &[])
}

/// Like [`start_daemon_in`], with `extra` daemon arguments after the usual ones
/// (e.g. `--cluster URL --host-id h1`).
pub fn start_daemon_in_with(
    lab: &mut Lab,
    name: &str,
    config: &str,
    guest: Option<&Guest>,
    extra: &[&str],
) -> Switchd {
    let cmd = match guest {
        Some(g) => g.command(EXE),
        None => Command::new(EXE),
    };
    start_daemon_cmd(lab, name, config, cmd, extra)
}

/// Starts `portcullis daemon` on `config` through the program `wrapper` (with its
/// arguments, ending with the daemon's path), e.g. `prlimit --nofile=1024:8192 --`:
/// it must exec the daemon, so that the lab's pid is the daemon's.
pub fn start_daemon_wrapped(lab: &mut Lab, name: &str, config: &str, wrapper: &[&str]) -> Switchd {
    let mut cmd = Command::new(wrapper[0]);
    cmd.args(&wrapper[1..]).arg(EXE);
    start_daemon_cmd(lab, name, config, cmd, &[])
}

/// Starts the daemon with `cmd` (the daemon's program, or a wrapper that execs it).
fn start_daemon_cmd(
    lab: &mut Lab,
    name: &str,
    config: &str,
    mut cmd: Command,
    extra: &[&str],
) -> Switchd {
    let dir = lab.scratch_dir().expect("scratch dir");
    let cfg = dir.join(format!("{name}.toml"));
    std::fs::write(&cfg, config).expect("write config");
    let socket = dir.join(format!("{name}.sock"));
    let log = dir.join(format!("{name}.log"));
    cmd.arg("daemon")
        .arg("--config")
        .arg(&cfg)
        .arg("--socket")
        .arg(&socket)
        .arg("--state-dir")
        .arg(dir.join(format!("{name}-state")))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let pid = lab.spawn(cmd).expect("spawn daemon");
    let d = Switchd { pid, socket, log };
    if let Err(e) = lab.wait_for_socket(pid, &d.socket, Duration::from_secs(10)) {
        panic!("daemon {name} did not start: {e}\n{}", d.log_text());
    }
    // On the AF_XDP pass of the suite every AF_XDP port must really be on AF_XDP
    // (a silent fallback would run the test on AF_PACKET again).
    if config.contains("backend = \"af_xdp\"") && !config.contains(FALLBACK_EXPECTED) {
        assert!(
            !d.log_text().contains("falling back to AF_PACKET"),
            "an AF_XDP port fell back to AF_PACKET:\n{}",
            d.log_text()
        );
    }
    // Let the RX rings settle before traffic.
    std::thread::sleep(Duration::from_millis(100));
    d
}

pub fn start_daemon(lab: &mut Lab, name: &str, config: &str) -> Switchd {
    start_daemon_in(lab, name, config, None)
}

/// A comment a test puts in its configuration when it expects an AF_XDP port to
/// fall back to AF_PACKET (otherwise a fallback fails the test).
pub const FALLBACK_EXPECTED: &str = "\n# lab: an AF_XDP fallback is expected\n";

/// The port backend the lab suite runs on: `PORTCULLIS_LAB_BACKEND` (`af_packet`,
/// the default, or `af_xdp`; `scripts/test.sh` runs the lab tests once per backend).
pub fn lab_backend() -> String {
    std::env::var("PORTCULLIS_LAB_BACKEND").unwrap_or_else(|_| "af_packet".into())
}

/// `[[host.port]]` for a guest, on the lab suite's backend.
pub fn port(name: &str, g: &Guest, group: &str) -> String {
    port_on(name, g, group, &lab_backend())
}

/// `[[host.port]]` for a guest on `backend`.
pub fn port_on(name: &str, g: &Guest, group: &str, backend: &str) -> String {
    let mac = g.mac().expect("guest mac");
    format!(
        "\n[[host.port]]\nname = \"{name}\"\ninterface = \"{}\"\nport_group = \"{group}\"\nmac = \"{mac}\"\nbackend = \"{backend}\"\n",
        g.host_if,
    )
}

/// Runs a scapy script with Debian's /usr/bin/python3 inside `g` and returns what
/// it printed.
pub fn scapy_output(g: &Guest, script: &str) -> String {
    let out = g
        .command("/usr/bin/python3")
        .args([
            "-c",
            &format!("from scapy.all import *\nconf.verb = 0\n{script}"),
        ])
        .output()
        .expect("run scapy");
    assert!(
        out.status.success(),
        "scapy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a scapy script with Debian's /usr/bin/python3 inside `g`.
pub fn scapy(g: &Guest, script: &str) {
    let out = g
        .command("/usr/bin/python3")
        .args([
            "-c",
            &format!("from scapy.all import *\nconf.verb = 0\n{script}"),
        ])
        .output()
        .expect("run scapy");
    assert!(
        out.status.success(),
        "scapy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts dnsmasq as the DHCP server in `g` (foreground, tracked by PID), at
/// `addr` (CIDR), leasing `range` (`first,last`) in a /16 for 1 h, authoritative, no
/// ping before an offer, its lease file in the lab's scratch directory.
pub fn dnsmasq(lab: &mut Lab, g: &Guest, addr: &str, range: &str) {
    g.set_addr(addr).unwrap();
    let dir = lab.scratch_dir().unwrap();
    let leases = dir.join(format!("{}.leases", g.name));
    let mut cmd = g.command("dnsmasq");
    cmd.args([
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--user=root",
        "--interface=eth0",
        "--bind-interfaces",
        "--no-ping",
    ])
    .arg(format!("--dhcp-range={range},255.255.0.0,1h"))
    .arg(format!("--dhcp-leasefile={}", leases.display()))
    .arg("--dhcp-authoritative")
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    lab.spawn(cmd).unwrap();
    std::thread::sleep(Duration::from_millis(300));
}

/// Starts `ping -i 0.01 -c COUNT DST` in `g` (every 10 ms, quiet), to be read with
/// [`ping_lost`] when it ends.
pub fn start_fast_ping(g: &Guest, dst: &str, count: u32) -> std::process::Child {
    g.command("ping")
        .args([
            "-n",
            "-q",
            "-i",
            "0.01",
            "-W",
            "1",
            "-c",
            &count.to_string(),
            dst,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ping")
}

/// Waits for a ping started by [`start_fast_ping`]: (transmitted, lost).
pub fn ping_lost(child: std::process::Child) -> (u32, u32) {
    let out = child.wait_with_output().expect("ping ends");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary: {text}"));
    let n = |word: &str| -> u32 {
        line.split(',')
            .find(|p| p.contains(word))
            .and_then(|p| p.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{word} in {line}"))
    };
    let sent = n("transmitted");
    (sent, sent - n("received"))
}
