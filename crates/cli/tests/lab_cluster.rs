//! Lab tests of one switch over many hosts (issue 18): a real etcd (Debian's
//! `etcd-server`) in a namespace of the lab, three hosts that are three namespaces
//! each running its own daemon as a cluster member, a "fabric" namespace (a Linux
//! bridge, the router address 198.18.10.1 and dnsmasq behind every host's uplink),
//! and guests ("VMs") that are namespaces whose NIC is a veth into one host.
//!
//! The stories: a profile applied on three hosts, drift and a profile one host
//! refuses; a guest moved between hosts that keeps its DHCP identity with no DHCP
//! on the new host; the overlap of a live migration and concurrent claims; etcd
//! killed and restarted under traffic; a host killed with kill -9.

mod common;

use common::*;
use portcullis_lab::{Capture, Guest, Lab};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ETCD_IP: &str = "198.18.200.1";
const URL: &str = "http://198.18.200.1:2379";
const ROUTER: &str = "198.18.10.1";
const LEASE_SECS: &str = "3";
const PREFIX: &str = "/portcullis/v1/";

/// The golden profile every host runs: one port group `web` (VLAN 10, untagged on
/// the uplink), DHCP snooping, ARP inspection and IP Source Guard enforcing.
const PROFILE: &str = r#"[switch]
name = "dvs"

[uplink_policy]
uplinks = ["uplink1"]
allowed_vlans = []
native_vlan = 10

[[port_group]]
name = "web"
vlan = 10
dhcp_snooping = { rate_limit_pps = 20 }
arp_inspection = { validate = ["src-mac"] }
ip_source_guard = "ip-mac"
"#;

/// Every host's binding: its uplink is its veth into the fabric (DHCP-trusted by
/// default).
const HOST: &str = "\n[host.uplinks]\nuplink1 = \"up0\"\n";

/// A udhcpc script that only sets the leased address (never /etc/resolv.conf).
const UDHCPC_SCRIPT: &str = "#!/bin/sh\ncase \"$1\" in\n  bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/${mask:-24}\" dev \"$interface\" ;;\n  deconfig) ip addr flush dev \"$interface\" ;;\nesac\nexit 0\n";

/// `ip` with `args`, which must succeed.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `sysctl -w` inside a namespace.
fn sysctl(ns: &str, kv: &str) {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "sysctl", "-q", "-w", kv])
        .output()
        .expect("run sysctl");
    assert!(
        out.status.success(),
        "sysctl {kv} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Polls `f` every 50 ms until it is true, for at most `within`; panics with
/// `what()` (the state to show) otherwise.
fn wait_until(within: Duration, mut f: impl FnMut() -> bool, what: impl Fn() -> String) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < within,
            "not within {within:?}: {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A host of the cluster: its namespace and its daemon.
struct Host {
    id: String,
    g: Guest,
    sw: Switchd,
}

/// A guest VM: a namespace whose `eth0` is a veth into one host (`vmNp` there).
struct Vm {
    name: String,
    ns: String,
    mac: String,
}

/// The lab: etcd, the fabric, the hosts.
struct Cluster {
    lab: Lab,
    etcd: Guest,
    etcd_pid: u32,
    etcd_dir: PathBuf,
    fabric: Guest,
    hosts: Vec<Host>,
}

impl Cluster {
    /// etcd, the fabric with dnsmasq, and `n` hosts, each a cluster member
    /// (`h1`…) with the golden profile in its configuration.
    fn new(tag: &str, n: usize) -> Cluster {
        let mut lab = lab(
            tag,
            &["etcd", "etcdctl", "dnsmasq", "udhcpc", "ping", "tcpdump"],
        );
        let etcd = lab.add_guest("etcd").unwrap();
        let fabric = lab.add_guest("fabric").unwrap();
        let hgs: Vec<Guest> = (1..=n)
            .map(|i| lab.add_guest(&format!("h{i}")).unwrap())
            .collect();
        for g in std::iter::once(&etcd).chain(&hgs).chain([&fabric]) {
            g.disable_ipv6().unwrap();
        }
        // The management network: etcd and the hosts on a lab bridge.
        let mut mgmt: Vec<&str> = vec![&etcd.host_if];
        mgmt.extend(hgs.iter().map(|g| g.host_if.as_str()));
        lab.add_bridge(&mgmt).unwrap();
        etcd.set_addr(&format!("{ETCD_IP}/24")).unwrap();
        for (i, g) in hgs.iter().enumerate() {
            g.set_addr(&format!("198.18.200.{}/24", 11 + i)).unwrap();
        }
        // The fabric: a bridge, the router's address and the DHCP server.
        ip(&[
            "-n",
            &fabric.netns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        ip(&["-n", &fabric.netns, "link", "set", "br0", "up"]);
        ip(&["-n", &fabric.netns, "addr", "add", "198.18.10.1/24", "dev", "br0"]);
        for (i, g) in hgs.iter().enumerate() {
            let f = format!("f{}", i + 1);
            ip(&[
                "-n", &g.netns, "link", "add", "up0", "type", "veth", "peer", "name", &f,
                "netns", &fabric.netns,
            ]);
            ip(&["-n", &g.netns, "link", "set", "up0", "up"]);
            ip(&["-n", &fabric.netns, "link", "set", &f, "master", "br0"]);
            ip(&["-n", &fabric.netns, "link", "set", &f, "up"]);
        }
        let dir = lab.scratch_dir().unwrap();
        let mut dhcpd = fabric.command("dnsmasq");
        dhcpd
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--port=0",
                "--user=root",
                "--interface=br0",
                "--bind-interfaces",
                "--no-ping",
                "--dhcp-authoritative",
                "--dhcp-range=198.18.10.100,198.18.10.150,255.255.255.0,1h",
            ])
            .arg(format!(
                "--dhcp-leasefile={}",
                dir.join("fabric.leases").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        lab.spawn(dhcpd).unwrap();

        let etcd_dir = dir.join("etcd-data");
        let mut c = Cluster {
            lab,
            etcd,
            etcd_pid: 0,
            etcd_dir,
            fabric,
            hosts: Vec::new(),
        };
        c.start_etcd();
        for (i, g) in hgs.into_iter().enumerate() {
            let id = format!("h{}", i + 1);
            let sw = c.start_member(&g, &id, &id);
            c.hosts.push(Host { id, g, sw });
        }
        c
    }

    /// Starts etcd (on its data dir, kept across restarts) and waits until it
    /// answers.
    fn start_etcd(&mut self) {
        let log = self.lab.scratch_dir().unwrap().join("etcd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = self.etcd.command("etcd");
        cmd.args(["--name", "e1", "--data-dir"])
            .arg(&self.etcd_dir)
            .args([
                "--listen-client-urls",
                URL,
                "--advertise-client-urls",
                URL,
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-cluster",
                "e1=http://127.0.0.1:2380",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.etcd_pid = self.lab.spawn(cmd).unwrap();
        let t = Instant::now();
        loop {
            let out = self.etcdctl(&["endpoint", "health"]);
            if out.status.success() {
                break;
            }
            if let Ok(Some(st)) = self.lab.wait_exit(self.etcd_pid, Duration::ZERO) {
                panic!("etcd exited ({st}):\n{}", self.etcd_log());
            }
            assert!(
                t.elapsed() < Duration::from_secs(15),
                "etcd does not answer: {}\n{}",
                text(&out),
                self.etcd_log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn etcd_log(&mut self) -> String {
        std::fs::read_to_string(self.lab.scratch_dir().unwrap().join("etcd.log"))
            .unwrap_or_default()
    }

    /// Kills etcd with SIGKILL (by its PID).
    fn kill_etcd(&mut self) {
        self.lab
            .kill_with(self.etcd_pid, libc::SIGKILL, Duration::ZERO)
            .expect("etcd was running");
    }

    /// Starts a daemon in `g` as cluster member `id` (`name`: its files).
    fn start_member(&mut self, g: &Guest, name: &str, id: &str) -> Switchd {
        let config = format!("{PROFILE}{HOST}");
        start_daemon_in_with(
            &mut self.lab,
            name,
            &config,
            Some(g),
            &[
                "--cluster",
                URL,
                "--host-id",
                id,
                "--cluster-lease-secs",
                LEASE_SECS,
            ],
        )
    }

    fn host(&self, id: &str) -> &Host {
        self.hosts.iter().find(|h| h.id == id).expect("a host")
    }

    /// `etcdctl` against the lab's etcd (run in etcd's namespace).
    fn etcdctl(&self, args: &[&str]) -> Output {
        self.etcd
            .command("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--endpoints", URL, "--dial-timeout", "1s", "--command-timeout", "2s"])
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    /// The value of `key` (under the prefix), if any.
    fn get(&self, key: &str) -> Option<String> {
        let out = self.etcdctl(&["get", "--print-value-only", &format!("{PREFIX}{key}")]);
        assert!(out.status.success(), "etcdctl get {key}: {}", text(&out));
        let v = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        (!v.is_empty()).then_some(v)
    }

    fn get_json(&self, key: &str) -> Option<serde_json::Value> {
        self.get(key)
            .map(|v| serde_json::from_str(&v).unwrap_or_else(|e| panic!("{key}: {e}: {v}")))
    }

    /// The keys under `prefix` (under the cluster's prefix).
    fn keys(&self, prefix: &str) -> Vec<String> {
        let out = self.etcdctl(&["get", "--prefix", "--keys-only", &format!("{PREFIX}{prefix}")]);
        assert!(out.status.success(), "etcdctl get {prefix}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The portcullis CLI run in the first host's namespace (where etcd answers).
    fn cli(&self, args: &[&str]) -> Output {
        self.hosts[0]
            .g
            .command(EXE)
            .args(args)
            .output()
            .expect("run portcullis")
    }

    fn status(&self) -> serde_json::Value {
        let out = self.cli(&["cluster", "status", "--cluster", URL, "--json"]);
        assert!(out.status.success(), "cluster status: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// One host's entry of `cluster status`.
    fn host_status(&self, id: &str) -> serde_json::Value {
        self.status()["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["host"] == id)
            .cloned()
            .unwrap_or_default()
    }

    /// Every daemon's log, for failures.
    fn logs(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("--- {} ---\n{}", h.id, h.sw.log_text()))
            .collect()
    }

    /// Writes `text` to a file of the scratch dir; answers its path.
    fn file(&mut self, name: &str, text: &str) -> String {
        let p = self.lab.scratch_dir().unwrap().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    }

    /// A guest VM namespace `name` with its NIC's MAC `mac` (not plugged yet).
    fn vm(&mut self, name: &str, mac: &str) -> Vm {
        let g = self.lab.add_guest(name).unwrap();
        g.disable_ipv6().unwrap();
        // Its NIC is a veth into a host, not the lab's link to the root namespace.
        ip(&["link", "del", &g.host_if]);
        Vm {
            name: name.to_string(),
            ns: g.netns,
            mac: mac.to_string(),
        }
    }

    /// Plugs `vm`'s NIC into host `id` (`{vm}p` there), as a hypervisor does
    /// when the VM starts or arrives: same MAC every time.
    fn plug(&self, vm: &Vm, id: &str) {
        let h = self.host(id);
        let p = format!("{}p", vm.name);
        ip(&[
            "-n", &vm.ns, "link", "add", "eth0", "address", &vm.mac, "type", "veth", "peer",
            "name", &p, "netns", &h.g.netns,
        ]);
        ip(&["-n", &h.g.netns, "link", "set", &p, "up"]);
        ip(&["-n", &vm.ns, "link", "set", "eth0", "up"]);
    }

    /// Unplugs `vm`'s NIC from host `id` (the VM stopped or left).
    fn unplug(&self, vm: &Vm, id: &str) {
        ip(&["-n", &self.host(id).g.netns, "link", "del", &format!("{}p", vm.name)]);
    }

    /// `port add` of `vm`'s port on host `id`, by MAC.
    fn port_add(&self, vm: &Vm, id: &str) {
        let h = self.host(id);
        let out = h.sw.cli(&[
            "port",
            "add",
            &vm.name,
            "--interface",
            &format!("{}p", vm.name),
            "--group",
            "web",
            "--mac",
            &vm.mac,
        ]);
        assert!(
            out.status.success(),
            "port add {} on {id}: {}\n{}",
            vm.name,
            text(&out),
            h.sw.log_text()
        );
    }

    fn port_remove(&self, vm: &Vm, id: &str) {
        let h = self.host(id);
        let out = h.sw.cli(&["port", "remove", &vm.name]);
        assert!(
            out.status.success(),
            "port remove {} on {id}: {}",
            vm.name,
            text(&out)
        );
    }

    /// The logical port's record in etcd.
    fn logical(&self, port: &str) -> Option<serde_json::Value> {
        self.get_json(&format!("ports/{port}"))
    }

    fn owner(&self, port: &str) -> Option<String> {
        self.logical(port)
            .and_then(|p| p["owner"].as_str().map(str::to_string))
    }

    /// Waits until the logical port's owner is `id`, active.
    fn wait_owner(&self, port: &str, id: &str) {
        wait_until(
            Duration::from_secs(5),
            || {
                self.logical(port)
                    .is_some_and(|p| p["owner"] == id && p["state"] == "active")
            },
            || format!("{port} owned by {id}: {:?}\n{}", self.logical(port), self.logs()),
        );
    }

    /// Runs udhcpc once in `vm`; answers the leased address.
    fn dhcp(&mut self, vm: &Vm) -> String {
        let script = self.file("udhcpc.sh", UDHCPC_SCRIPT);
        Command::new("chmod").arg("+x").arg(&script).status().unwrap();
        let out = Command::new("ip")
            .args(["netns", "exec", &vm.ns, "udhcpc", "-i", "eth0", "-f", "-q", "-n"])
            .args(["-t", "5", "-T", "1", "-s", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} gets a lease: {}\n{}",
            vm.name,
            text(&out),
            self.logs()
        );
        vm_addr(vm).unwrap_or_else(|| panic!("{} has no address after its lease", vm.name))
    }
}

/// The IPv4 address on `vm`'s eth0.
fn vm_addr(vm: &Vm) -> Option<String> {
    let out = Command::new("ip")
        .args(["-n", &vm.ns, "-4", "-o", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .map(|a| a.split('/').next().unwrap_or("").to_string())
}

/// `ping -c count -W 1 dst` from `vm`: answers how many replies came back.
fn ping(vm: &Vm, dst: &str, count: u32) -> u32 {
    vm_ping(vm, &[], dst, count)
}

fn vm_ping(vm: &Vm, extra: &[&str], dst: &str, count: u32) -> u32 {
    let out = Command::new("ip")
        .args(["netns", "exec", &vm.ns, "ping", "-n", "-q", "-i", "0.2", "-W", "1"])
        .args(["-c", &count.to_string()])
        .args(extra)
        .arg(dst)
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    t.lines()
        .find(|l| l.contains("packets transmitted"))
        .and_then(|l| l.split(',').nth(1))
        .and_then(|p| p.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Pings until one reply comes back (ARP caches settle after a move).
fn wait_ping(c: &Cluster, vm: &Vm, dst: &str) {
    wait_until(
        Duration::from_secs(8),
        || ping(vm, dst, 1) == 1,
        || format!("{} reaches {dst}\n{}", vm.name, c.logs()),
    );
}

fn port_state(sw: &Switchd, port: &str) -> String {
    sw.port(port)["state"].as_str().unwrap_or_default().to_string()
}

/// The bindings of `port` on a daemon.
fn bindings(sw: &Switchd, port: &str) -> Vec<serde_json::Value> {
    sw.get("/v1/bindings")["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["port"] == port)
        .cloned()
        .collect()
}

#[test]
fn a_profile_is_applied_on_three_hosts_drift_is_found_and_a_refusal_keeps_the_last_good_one() {
    let mut c = Cluster::new("clprofile", 3);

    // The golden profile, stored once: every host applies it.
    let golden = c.file("golden.toml", PROFILE);
    let out = c.cli(&["apply", "--cluster", URL, &golden, "--wait-secs", "10"]);
    assert!(out.status.success(), "apply --cluster: {}\n{}", text(&out), c.logs());
    let st = c.status();
    let generation = st["generation"].as_i64().unwrap();
    assert!(generation > 0, "{st}");
    let hosts = st["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 3, "{st}");
    for h in hosts {
        assert_eq!(h["generation"], generation, "{st}");
        assert_eq!(h["health"], "ok", "{st}");
    }
    let out = c.cli(&["check", "--cluster", URL]);
    assert!(out.status.success(), "check --cluster: {}", text(&out));

    // Someone changes h2 by hand: check --cluster names the host and the field.
    let local = c.file(
        "local.toml",
        &PROFILE.replace("rate_limit_pps = 20", "rate_limit_pps = 50"),
    );
    let out = c.host("h2").sw.cli(&["apply", &local]);
    assert!(out.status.success(), "local apply on h2: {}", text(&out));
    let t = Instant::now();
    let report = loop {
        let out = c.cli(&["check", "--cluster", URL]);
        if out.status.code() == Some(1) {
            break text(&out);
        }
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "check --cluster sees no drift: {}",
            text(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let drifted = report
        .split("== ")
        .find(|s| s.starts_with("h2:"))
        .unwrap_or_else(|| panic!("no section for h2: {report}"));
    assert!(drifted.contains("DRIFT") && drifted.contains("rate_limit_pps"), "{report}");
    for other in ["h1:", "h3:"] {
        let s = report.split("== ").find(|s| s.starts_with(other)).unwrap();
        assert!(s.contains("compliant"), "{report}");
    }
    // Storing the golden profile again brings h2 back.
    let out = c.cli(&["apply", "--cluster", URL, &golden, "--wait-secs", "10"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = c.cli(&["check", "--cluster", URL]);
    assert!(out.status.success(), "check after re-apply: {}", text(&out));
    let good = c.status()["generation"].as_i64().unwrap();

    // A profile h1 cannot apply: its guest's port is in `web`, which the new
    // profile renames. h1 refuses and says why; h2 and h3 apply it.
    let vm = c.vm("vm1", "02:00:00:00:01:01");
    c.plug(&vm, "h1");
    c.port_add(&vm, "h1");
    let renamed = c.file("renamed.toml", &PROFILE.replace("\"web\"", "\"app\""));
    let out = c.cli(&["apply", "--cluster", URL, &renamed, "--wait-secs", "10"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}\n{}", c.logs());
    let h1_line = said
        .lines()
        .find(|l| l.trim_start().starts_with("h1"))
        .unwrap_or_else(|| panic!("{said}"));
    assert!(h1_line.contains("NOT applied") && h1_line.contains("web"), "{said}");
    let bad = c.status()["generation"].as_i64().unwrap();
    assert!(bad > good);
    let h1 = c.host_status("h1");
    assert_eq!(h1["generation"], good, "h1 keeps its last good generation: {h1}");
    assert_eq!(h1["health"], "degraded", "{h1}");
    assert!(h1["error"].as_str().unwrap_or("").contains("web"), "{h1}");
    for id in ["h2", "h3"] {
        assert_eq!(c.host_status(id)["generation"], bad, "{}", c.status());
    }
    // h1 still runs the old profile: its guest's port is still in `web`.
    assert_eq!(c.host("h1").sw.port("vm1")["port_group"], "web");

    // A second daemon with a live host id is refused at start, naming it.
    let dir = c.lab.scratch_dir().unwrap();
    let cfg = c.file("dup.toml", &format!("{PROFILE}{HOST}"));
    let h2g = c.host("h2").g.clone();
    let mut dup = h2g.command(EXE);
    dup.args(["daemon", "--config", &cfg, "--socket"])
        .arg(dir.join("dup.sock"))
        .arg("--state-dir")
        .arg(dir.join("dup-state"))
        .args(["--cluster", URL, "--host-id", "h1", "--cluster-lease-secs", LEASE_SECS])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dup.log")).unwrap());
    let pid = c.lab.spawn(dup).unwrap();
    let st = c.lab.wait_exit(pid, Duration::from_secs(10)).unwrap();
    let log = std::fs::read_to_string(dir.join("dup.log")).unwrap_or_default();
    let st = st.unwrap_or_else(|| panic!("a second h1 keeps running:\n{log}"));
    assert!(!st.success(), "{log}");
    assert!(log.contains("already live") && log.contains("h1"), "{log}");
    assert_eq!(c.hosts.len(), 3);
    assert_eq!(c.status()["hosts"].as_array().unwrap().len(), 3);

    // The golden profile again: every host applies it, h1 is healthy again.
    let out = c.cli(&["apply", "--cluster", URL, &golden, "--wait-secs", "10"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.logs());
    assert_eq!(c.host_status("h1")["health"], "ok", "{}", c.status());

    // A value written by hand in an unknown format: no daemon crashes, none
    // overwrites it, not even one that has a port of that name.
    let key = format!("{PREFIX}ports/x");
    let out = c.etcdctl(&["put", &key, "written by hand"]);
    assert!(out.status.success(), "{}", text(&out));
    let x = c.vm("x", "02:00:00:00:0a:01");
    c.plug(&x, "h3");
    c.port_add(&x, "h3");
    wait_until(
        Duration::from_secs(5),
        || {
            c.host_status("h3")["error"]
                .as_str()
                .is_some_and(|e| e.contains("ports/x"))
        },
        || format!("h3 reports the unreadable key: {}", c.status()),
    );
    // Every daemon still answers (a dead one panics here with its log).
    for h in &c.hosts {
        let _ = h.sw.get("/v1/ports");
    }
    assert_eq!(c.get("ports/x").as_deref(), Some("written by hand"));
}
