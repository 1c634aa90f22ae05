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

[[port_group]]
name = "nested"
vlan = 10
security = { forged_transmits = "accept" }
port_security = { max_macs = 2, sticky = true, violation = "restrict" }
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
        assert!(t.elapsed() < within, "not within {within:?}: {}", what());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A host of the cluster: its namespace and its daemon.
struct Host {
    id: String,
    g: Guest,
    sw: Switchd,
}

/// A guest VM: a namespace whose `eth0` is a veth into one host (`{port}p`
/// there), served by the logical port `port`.
struct Vm {
    port: String,
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
        ip(&[
            "-n",
            &fabric.netns,
            "addr",
            "add",
            "198.18.10.1/24",
            "dev",
            "br0",
        ]);
        for (i, g) in hgs.iter().enumerate() {
            let f = format!("f{}", i + 1);
            ip(&[
                "-n",
                &g.netns,
                "link",
                "add",
                "up0",
                "type",
                "veth",
                "peer",
                "name",
                &f,
                "netns",
                &fabric.netns,
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
            .args([
                "--endpoints",
                URL,
                "--dial-timeout",
                "1s",
                "--command-timeout",
                "2s",
            ])
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
        let out = self.etcdctl(&[
            "get",
            "--prefix",
            "--keys-only",
            &format!("{PREFIX}{prefix}"),
        ]);
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

    /// A guest VM namespace `name` for logical port `port`, its NIC's MAC `mac`
    /// (not plugged yet). Two VMs of one port are the two ends of a migration.
    fn vm(&mut self, name: &str, port: &str, mac: &str) -> Vm {
        let g = self.lab.add_guest(name).unwrap();
        g.disable_ipv6().unwrap();
        // Its NIC is a veth into a host, not the lab's link to the root namespace.
        ip(&["link", "del", &g.host_if]);
        Vm {
            port: port.to_string(),
            ns: g.netns,
            mac: mac.to_string(),
        }
    }

    /// Plugs `vm`'s NIC into host `id` (`{port}p` there), as a hypervisor does
    /// when the VM starts or arrives: same MAC every time.
    fn plug(&self, vm: &Vm, id: &str) {
        let h = self.host(id);
        let p = format!("{}p", vm.port);
        ip(&[
            "-n", &vm.ns, "link", "add", "eth0", "address", &vm.mac, "type", "veth", "peer",
            "name", &p, "netns", &h.g.netns,
        ]);
        ip(&["-n", &h.g.netns, "link", "set", &p, "up"]);
        ip(&["-n", &vm.ns, "link", "set", "eth0", "up"]);
    }

    /// Unplugs `vm`'s NIC from host `id` (the VM stopped or left).
    fn unplug(&self, vm: &Vm, id: &str) {
        ip(&[
            "-n",
            &self.host(id).g.netns,
            "link",
            "del",
            &format!("{}p", vm.port),
        ]);
    }

    /// `port add` of `vm`'s port on host `id`, by MAC, in group `web`.
    fn port_add(&self, vm: &Vm, id: &str) {
        self.port_add_in(vm, id, "web");
    }

    /// `port add` of `vm`'s port on host `id`, by MAC, in `group`.
    fn port_add_in(&self, vm: &Vm, id: &str, group: &str) {
        let h = self.host(id);
        let out = h.sw.cli(&[
            "port",
            "add",
            &vm.port,
            "--interface",
            &format!("{}p", vm.port),
            "--group",
            group,
            "--mac",
            &vm.mac,
        ]);
        assert!(
            out.status.success(),
            "port add {} on {id}: {}\n{}",
            vm.port,
            text(&out),
            h.sw.log_text()
        );
    }

    fn port_remove(&self, vm: &Vm, id: &str) {
        let h = self.host(id);
        let out = h.sw.cli(&["port", "remove", &vm.port]);
        assert!(
            out.status.success(),
            "port remove {} on {id}: {}",
            vm.port,
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
            || {
                format!(
                    "{port} owned by {id}: {:?}\n{}",
                    self.logical(port),
                    self.logs()
                )
            },
        );
    }

    /// Runs udhcpc once in `vm`; answers the leased address.
    fn dhcp(&mut self, vm: &Vm) -> String {
        let script = self.file("udhcpc.sh", UDHCPC_SCRIPT);
        Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap();
        let out = Command::new("ip")
            .args([
                "netns", "exec", &vm.ns, "udhcpc", "-i", "eth0", "-f", "-q", "-n",
            ])
            .args(["-t", "5", "-T", "1", "-s", &script])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} gets a lease: {}\n{}",
            vm.ns,
            text(&out),
            self.logs()
        );
        vm_addr(vm).unwrap_or_else(|| panic!("{} has no address after its lease", vm.ns))
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
        .args([
            "netns", "exec", &vm.ns, "ping", "-n", "-q", "-i", "0.2", "-W", "1",
        ])
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
        || format!("{} reaches {dst}\n{}", vm.ns, c.logs()),
    );
}

/// Waits (up to 5 s) until `sw` holds a binding of `addr` on `port`.
fn wait_binding(c: &Cluster, sw: &Switchd, port: &str, addr: &str) {
    wait_until(
        Duration::from_secs(5),
        || bindings(sw, port).iter().any(|b| b["ip"] == addr),
        || {
            format!(
                "{port}'s binding of {addr}: {}\n{}",
                sw.get("/v1/bindings"),
                c.logs()
            )
        },
    );
}

fn port_state(sw: &Switchd, port: &str) -> String {
    sw.port(port)["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
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
    assert!(
        out.status.success(),
        "apply --cluster: {}\n{}",
        text(&out),
        c.logs()
    );
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
    assert!(
        drifted.contains("DRIFT") && drifted.contains("rate_limit_pps"),
        "{report}"
    );
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
    let vm = c.vm("vm1", "vm1", "02:00:00:00:01:01");
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
    assert!(
        h1_line.contains("NOT applied") && h1_line.contains("web"),
        "{said}"
    );
    let bad = c.status()["generation"].as_i64().unwrap();
    assert!(bad > good);
    let h1 = c.host_status("h1");
    assert_eq!(
        h1["generation"], good,
        "h1 keeps its last good generation: {h1}"
    );
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
        .args([
            "--cluster",
            URL,
            "--host-id",
            "h1",
            "--cluster-lease-secs",
            LEASE_SECS,
        ])
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
    let x = c.vm("x", "x", "02:00:00:00:0a:01");
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

/// Sets `addr` (/24) on `vm`'s NIC: a VM keeps its address configuration when it
/// moves (its NIC here is a new veth).
fn set_vm_addr(vm: &Vm, addr: &str) {
    ip(&[
        "-n",
        &vm.ns,
        "addr",
        "replace",
        &format!("{addr}/24"),
        "dev",
        "eth0",
    ]);
}

/// Every drop a daemon counted on `port`, both directions, all reasons.
fn all_drops(sw: &Switchd, port: &str) -> u64 {
    let c = &sw.port(port)["counters"];
    ["rx_drops", "tx_drops"]
        .iter()
        .flat_map(|d| c[*d].as_object().into_iter().flatten())
        .map(|(_, v)| v.as_u64().unwrap_or(0))
        .sum()
}

/// A guest (with a lease) on `vm`'s port on host `id`, pinging the router.
fn guest_with_lease(c: &mut Cluster, vm: &Vm, id: &str) -> String {
    c.plug(vm, id);
    c.port_add(vm, id);
    c.wait_owner(&vm.port, id);
    let addr = c.dhcp(vm);
    assert!(addr.starts_with("198.18.10."), "{addr}");
    wait_ping(c, vm, ROUTER);
    assert_eq!(ping(vm, ROUTER, 3), 3, "{}", c.logs());
    // The binding is on the host, and in etcd under the logical port.
    let b = bindings(&c.host(id).sw, &vm.port);
    assert!(
        b.iter()
            .any(|b| b["ip"] == addr.as_str() && b["source"] == "dhcp"),
        "{b:?}"
    );
    let key = format!("bindings/{}/10/{addr}", vm.port);
    wait_until(
        Duration::from_secs(5),
        || c.get_json(&key).is_some(),
        || format!("{key} in etcd: {:?}\n{}", c.keys("bindings/"), c.logs()),
    );
    let v = c.get_json(&key).unwrap();
    assert_eq!(v["mac"], vm.mac.as_str(), "{v}");
    assert_eq!(v["source"], "dhcp", "{v}");
    assert_eq!(v["written_by"], id, "{v}");
    addr
}

#[test]
fn a_guest_moved_to_another_host_keeps_its_identity_with_no_dhcp_there() {
    let mut c = Cluster::new("clmove", 2);
    let vm = c.vm("vm1", "vm1", "02:00:00:00:01:01");
    let addr = guest_with_lease(&mut c, &vm, "h1");

    // The VM stops on h1: its port is removed there, marked away in etcd.
    c.port_remove(&vm, "h1");
    c.unplug(&vm, "h1");
    wait_until(
        Duration::from_secs(5),
        || c.logical("vm1").is_some_and(|p| p["state"] == "away"),
        || format!("vm1 away: {:?}\n{}", c.logical("vm1"), c.logs()),
    );

    // It starts on h2 with the same MAC and address. Any DHCP frame on the fabric
    // or on h2's port would show.
    let fabric = Capture::start(
        &mut c.lab,
        &c.fabric,
        "br0",
        &["udp", "port", "67", "or", "udp", "port", "68"],
    )
    .unwrap();
    let rarp = Capture::start(&mut c.lab, &c.fabric, "br0", &["rarp", "or", "arp"]).unwrap();
    c.plug(&vm, "h2");
    let h2g = c.host("h2").g.clone();
    let on_port = Capture::start(
        &mut c.lab,
        &h2g,
        "vm1p",
        &["udp", "port", "67", "or", "udp", "port", "68"],
    )
    .unwrap();
    set_vm_addr(&vm, &addr);
    c.port_add(&vm, "h2");
    c.wait_owner("vm1", "h2");
    let h2 = &c.host("h2").sw;
    wait_until(
        Duration::from_secs(5),
        || {
            bindings(h2, "vm1")
                .iter()
                .any(|b| b["ip"] == addr.as_str() && b["source"] == "dhcp")
        },
        || {
            format!(
                "h2 has vm1's binding: {}\n{}",
                h2.get("/v1/bindings"),
                c.logs()
            )
        },
    );
    assert_eq!(port_state(h2, "vm1"), "up", "{}", h2.port("vm1"));
    // The guest passes ARP inspection and IP Source Guard on h2 at once.
    let before = all_drops(h2, "vm1");
    wait_ping(&c, &vm, ROUTER);
    assert_eq!(ping(&vm, ROUTER, 5), 5, "{}", c.logs());
    assert_eq!(all_drops(h2, "vm1"), before, "{}", h2.port("vm1"));
    let fabric = fabric.stop(&mut c.lab).unwrap();
    let on_port = on_port.stop(&mut c.lab).unwrap();
    assert!(
        fabric.lines.is_empty(),
        "DHCP on the fabric: {:#?}",
        fabric.lines
    );
    assert!(
        on_port.lines.is_empty(),
        "DHCP on h2's port: {:#?}",
        on_port.lines
    );
    // h2 told the network the guest is behind it now: a RARP for its MAC, and a
    // gratuitous ARP of its address (neighbours' caches follow).
    let rarp = rarp.stop(&mut c.lab).unwrap();
    assert!(
        rarp.lines
            .iter()
            .any(|l| l.contains("Reverse Request who-is"))
            && !rarp.lines_containing(&vm.mac).is_empty(),
        "a RARP for {} on the fabric: {:#?}",
        vm.mac,
        rarp.lines
    );
    let garp = |l: &&String| {
        l.contains(&format!("Announcement, {addr}"))
            || (l.contains(&format!("who-has {addr}")) && l.contains(&format!("tell {addr}")))
    };
    assert!(
        rarp.lines.iter().any(|l| garp(&l)),
        "a gratuitous ARP of {addr} on the fabric: {:#?}",
        rarp.lines
    );

    // Enforcement is on: a forged source address from the guest is dropped.
    let h2 = &c.host("h2").sw;
    let (ipsg, dai) = (
        h2.drops("vm1", "ip_source_guard"),
        h2.drops("vm1", "arp_inspection"),
    );
    ip(&[
        "-n",
        &vm.ns,
        "addr",
        "add",
        "198.18.10.77/24",
        "dev",
        "eth0",
    ]);
    assert_eq!(vm_ping(&vm, &["-I", "198.18.10.77"], ROUTER, 3), 0);
    assert!(
        h2.drops("vm1", "ip_source_guard") > ipsg,
        "IP Source Guard dropped the forged source (arp_inspection {} → {}): {}",
        dai,
        h2.drops("vm1", "arp_inspection"),
        h2.port("vm1")
    );
}

#[test]
fn during_a_migration_the_copies_wait_for_the_guest_and_concurrent_claims_have_one_winner() {
    let mut c = Cluster::new("clclaim", 3);
    let mac = "02:00:00:00:01:01";
    let src = c.vm("vm1", "vm1", mac);
    let addr = guest_with_lease(&mut c, &src, "h1");

    // Live migration's overlap: the port appears on h2 and h3 (the destination
    // and a stale copy) while h1 still serves the guest. Both are blocked.
    let dst = c.vm("vm1b", "vm1", mac);
    let stale = c.vm("vm1c", "vm1", mac);
    c.plug(&dst, "h2");
    c.plug(&stale, "h3");
    c.port_add(&dst, "h2");
    c.port_add(&stale, "h3");
    for id in ["h2", "h3"] {
        let sw = &c.host(id).sw;
        wait_until(
            Duration::from_secs(5),
            || port_state(sw, "vm1") == "down",
            || {
                format!(
                    "vm1 blocked (admin down) on {id}: {}\n{}",
                    sw.port("vm1"),
                    c.logs()
                )
            },
        );
    }
    assert_eq!(
        c.owner("vm1").as_deref(),
        Some("h1"),
        "{:?}\n{}",
        c.logical("vm1"),
        c.logs()
    );
    assert_eq!(ping(&src, ROUTER, 3), 3, "h1 still serves the guest");

    // The guest resumes on h2: its first frame there takes the port.
    set_vm_addr(&dst, &addr);
    let _ = ping(&dst, ROUTER, 1);
    c.wait_owner("vm1", "h2");
    let (h1, h2) = (&c.host("h1").sw, &c.host("h2").sw);
    wait_until(
        Duration::from_secs(5),
        || port_state(h1, "vm1") == "down" && bindings(h1, "vm1").is_empty(),
        || {
            format!(
                "h1 blocks and forgets vm1: {}\n{}",
                h1.port("vm1"),
                c.logs()
            )
        },
    );
    wait_binding(&c, h2, "vm1", &addr);
    wait_ping(&c, &dst, ROUTER);
    assert_eq!(ping(&dst, ROUTER, 3), 3, "{}", c.logs());
    // The stale copy on h3 never saw the guest: still blocked.
    assert_eq!(port_state(&c.host("h3").sw, "vm1"), "down", "{}", c.logs());
    assert_eq!(
        c.owner("vm1").as_deref(),
        Some("h2"),
        "{:?}\n{}",
        c.logical("vm1"),
        c.logs()
    );

    // Two hosts claim a new port at the same moment: one wins, the other blocks.
    let a = c.vm("vm3a", "vm3", "02:00:00:00:03:01");
    let b = c.vm("vm3b", "vm3", "02:00:00:00:03:01");
    c.plug(&a, "h2");
    c.plug(&b, "h3");
    std::thread::scope(|s| {
        s.spawn(|| c.port_add(&a, "h2"));
        s.spawn(|| c.port_add(&b, "h3"));
    });
    wait_until(
        Duration::from_secs(5),
        || {
            c.owner("vm3").is_some()
                && ["h2", "h3"]
                    .iter()
                    .filter(|id| port_state(&c.host(id).sw, "vm3") == "up")
                    .count()
                    == 1
        },
        || format!("one owner of vm3: {:?}\n{}", c.logical("vm3"), c.logs()),
    );
    let winner = c.owner("vm3").unwrap();
    let loser = if winner == "h2" { "h3" } else { "h2" };
    assert_eq!(port_state(&c.host(&winner).sw, "vm3"), "up");
    // And it stays so.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        c.owner("vm3").as_deref(),
        Some(winner.as_str()),
        "{:?}\n{}",
        c.logical("vm3"),
        c.logs()
    );
    assert_eq!(port_state(&c.host(loser).sw, "vm3"), "down", "{}", c.logs());
}

#[test]
fn etcd_killed_and_restarted_under_traffic_loses_no_frame_and_no_binding() {
    let mut c = Cluster::new("cletcd", 2);
    let vm1 = c.vm("vm1", "vm1", "02:00:00:00:01:01");
    let addr1 = guest_with_lease(&mut c, &vm1, "h1");
    let vm2 = c.vm("vm2", "vm2", "02:00:00:00:02:01");
    c.plug(&vm2, "h2");
    c.port_add(&vm2, "h2");
    c.wait_owner("vm2", "h2");
    let drops1 = all_drops(&c.host("h1").sw, "vm1");
    let drops2 = all_drops(&c.host("h2").sw, "vm2");

    // vm1 pings the router every 10 ms across the whole outage.
    let pinger = Command::new("ip")
        .args([
            "netns", "exec", &vm1.ns, "ping", "-n", "-q", "-i", "0.01", "-W", "1",
        ])
        .args(["-c", "600", ROUTER])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    c.kill_etcd();
    // A new lease during the outage: committed on h2 alone, ACK released.
    let t = Instant::now();
    let addr2 = c.dhcp(&vm2);
    let lease_time = t.elapsed();
    assert!(
        !c.etcdctl(&["endpoint", "health"]).status.success(),
        "etcd was down during the lease"
    );
    assert!(
        bindings(&c.host("h2").sw, "vm2")
            .iter()
            .any(|b| b["ip"] == addr2.as_str()),
        "{}",
        c.host("h2").sw.get("/v1/bindings")
    );
    c.start_etcd();
    let (sent, lost) = ping_lost(pinger);
    assert!(sent >= 600, "{sent}");
    assert_eq!(lost, 0, "pings lost across the etcd outage\n{}", c.logs());
    assert_eq!(all_drops(&c.host("h1").sw, "vm1"), drops1);
    assert_eq!(all_drops(&c.host("h2").sw, "vm2"), drops2);

    // etcd is back: the outage's lease is reconciled into it, nothing is lost.
    let key2 = format!("bindings/vm2/10/{addr2}");
    wait_until(
        Duration::from_secs(10),
        || c.get_json(&key2).is_some(),
        || format!("{key2} in etcd: {:?}\n{}", c.keys("bindings/"), c.logs()),
    );
    assert_eq!(c.get_json(&key2).unwrap()["written_by"], "h2");
    assert!(c.get_json(&format!("bindings/vm1/10/{addr1}")).is_some());
    assert_eq!(
        c.owner("vm1").as_deref(),
        Some("h1"),
        "{:?}\n{}",
        c.logical("vm1"),
        c.logs()
    );
    assert_eq!(
        c.owner("vm2").as_deref(),
        Some("h2"),
        "{:?}\n{}",
        c.logical("vm2"),
        c.logs()
    );
    assert_eq!(ping(&vm2, ROUTER, 3), 3, "{}", c.logs());
    eprintln!("lease during the etcd outage took {lease_time:?}");
}

#[test]
fn a_host_killed_with_kill_9_lets_its_guest_be_claimed_elsewhere() {
    let mut c = Cluster::new("clkill", 2);
    let vm = c.vm("vm1", "vm1", "02:00:00:00:01:01");
    let addr = guest_with_lease(&mut c, &vm, "h1");

    let pid = c.host("h1").sw.pid;
    c.lab
        .kill_with(pid, libc::SIGKILL, Duration::ZERO)
        .expect("h1 was running");
    // Its lease ends within its TTL: the host key goes.
    let t = Instant::now();
    wait_until(
        Duration::from_secs(8),
        || c.get("hosts/h1").is_none(),
        || format!("hosts/h1 still there\n{}", c.logs()),
    );
    eprintln!("h1's key went {:?} after kill -9", t.elapsed());
    assert_eq!(
        c.owner("vm1").as_deref(),
        Some("h1"),
        "{:?}\n{}",
        c.logical("vm1"),
        c.logs()
    );

    // The guest restarts on h2: its port is claimed at once, no first frame
    // needed, with its binding.
    c.unplug(&vm, "h1");
    c.plug(&vm, "h2");
    set_vm_addr(&vm, &addr);
    c.port_add(&vm, "h2");
    c.wait_owner("vm1", "h2");
    let h2 = &c.host("h2").sw;
    assert_eq!(
        h2.port("vm1")["counters"]["rx_frames"],
        0,
        "{}",
        h2.port("vm1")
    );
    assert_eq!(port_state(h2, "vm1"), "up", "{}", h2.port("vm1"));
    wait_binding(&c, h2, "vm1", &addr);
    wait_ping(&c, &vm, ROUTER);
    assert_eq!(ping(&vm, ROUTER, 3), 3, "{}", c.logs());
}

/// The sticky secure MACs port security learned on `port` of `sw`.
fn sticky_macs(sw: &Switchd, port: &str) -> Vec<String> {
    sw.get("/v1/port-security")
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["port"] == port)
        .flat_map(|p| p["secure_macs"].as_array().cloned().unwrap_or_default())
        .filter(|m| m["kind"] == "sticky")
        .map(|m| m["mac"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_sticky_mac_learned_on_one_host_follows_its_guest_to_another() {
    let mut c = Cluster::new("clsticky", 2);
    let vm = c.vm("n1", "n1", "02:00:00:00:02:01");
    c.plug(&vm, "h1");
    c.port_add_in(&vm, "h1", "nested");
    // A nested guest speaks from a second MAC: port security learns it, sticky.
    let nested_mac = "02:00:00:00:02:02";
    let out = Command::new("ip")
        .args(["netns", "exec", &vm.ns, "/usr/bin/python3", "-c"])
        .arg(format!(
            "from scapy.all import *\nconf.verb = 0\nsendp(Ether(src='{nested_mac}', dst='ff:ff:ff:ff:ff:ff')/ARP(hwsrc='{nested_mac}', psrc='198.18.10.222', pdst='198.18.10.1'), iface='eth0', count=3, inter=0.05)"
        ))
        .output()
        .expect("run scapy");
    assert!(out.status.success(), "scapy: {}", text(&out));
    let h1 = &c.host("h1").sw;
    wait_until(
        Duration::from_secs(5),
        || sticky_macs(h1, "n1") == [nested_mac],
        || format!("h1 learns the sticky MAC: {}", h1.get("/v1/port-security")),
    );
    // The cluster has it under the logical port.
    wait_until(
        Duration::from_secs(5),
        || {
            c.keys("secure-macs/n1/")
                .iter()
                .any(|k| k.ends_with(nested_mac))
        },
        || {
            format!(
                "secure-macs/n1/ in etcd: {:?}\n{}",
                c.keys("secure-macs/"),
                c.logs()
            )
        },
    );
    // The VM stops on h1 and starts on h2: its sticky MAC is in force there.
    c.port_remove(&vm, "h1");
    c.unplug(&vm, "h1");
    c.plug(&vm, "h2");
    c.port_add_in(&vm, "h2", "nested");
    c.wait_owner("n1", "h2");
    let h2 = &c.host("h2").sw;
    wait_until(
        Duration::from_secs(5),
        || sticky_macs(h2, "n1") == [nested_mac],
        || {
            format!(
                "h2 has n1's sticky MAC: {}\n{}",
                h2.get("/v1/port-security"),
                c.logs()
            )
        },
    );
}
