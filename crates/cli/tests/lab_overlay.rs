//! Lab tests of the VXLAN overlay (issue 19), with static peers (no cluster): hosts
//! are namespaces each running its own daemon, joined by an underlay (a lab bridge,
//! 198.18.100.0/24, MTU 1600 so that a 1500-byte guest frame fits with VXLAN's 50
//! bytes); guests ("VMs") are namespaces whose NIC is a veth into one host. Real
//! programs do the talking: ping, iperf3 (TCP with the veths' default offloads),
//! scapy (broadcasts, spoofed VXLAN), tcpdump, and Linux's own `vxlan` device.
//! Configured guest ports are on the lab suite's backend (AF_XDP on its second
//! pass); the cluster test's guests are runtime ports (AF_PACKET).

mod common;

use common::*;
use portcullis_lab::{Capture, Guest, Lab};
use std::process::Command;
use std::time::{Duration, Instant};

/// The golden profile: `web` is VLAN 10 (VNI 10010), `db` VLAN 20 (VNI 10020).
const PROFILE: &str = r#"[switch]
name = "ovl"

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "db"
vlan = 20

[overlay]
vni = { 10 = 10010, 20 = 10020 }
"#;

/// The underlay's MTU: a 1500-byte inner frame plus VXLAN's 50 bytes.
const UNDERLAY_MTU: &str = "1600";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A guest VM: its namespace (a lab guest whose NIC was replaced by a veth into a
/// host), its MAC and address.
struct Vm {
    g: Guest,
    port: String,
    mac: String,
    addr: String,
}

/// One host on the underlay: its namespace, underlay address and daemon.
struct Host {
    g: Guest,
    addr: String,
    sw: Option<Switchd>,
    /// `[host.overlay] fragment = true`.
    fragment: bool,
}

struct Overlay {
    lab: Lab,
    hosts: Vec<Host>,
}

impl Overlay {
    /// `n` hosts (underlay 198.18.100.1…n) and the extra underlay members `others`
    /// (name, address), all on one lab bridge with the underlay MTU.
    fn new(tag: &str, n: usize, others: &[(&str, &str)]) -> (Overlay, Vec<Guest>) {
        let mut lab = lab(tag, &["ping", "iperf3", "tcpdump", "scapy"]);
        let mut members = Vec::new();
        let mut hosts = Vec::new();
        for i in 1..=n {
            let g = lab.add_guest(&format!("h{i}")).unwrap();
            hosts.push(Host {
                addr: format!("198.18.100.{i}"),
                g: g.clone(),
                sw: None,
                fragment: false,
            });
            members.push((g, format!("198.18.100.{i}")));
        }
        let mut extra = Vec::new();
        for (name, addr) in others {
            let g = lab.add_guest(name).unwrap();
            extra.push(g.clone());
            members.push((g, addr.to_string()));
        }
        let ifs: Vec<&str> = members.iter().map(|(g, _)| g.host_if.as_str()).collect();
        let br = lab.add_bridge(&ifs).unwrap();
        for (g, addr) in &members {
            g.disable_ipv6().unwrap();
            ip(&["link", "set", "dev", &g.host_if, "mtu", UNDERLAY_MTU]);
            ip(&[
                "-n",
                &g.netns,
                "link",
                "set",
                "dev",
                "eth0",
                "mtu",
                UNDERLAY_MTU,
            ]);
            g.set_addr(&format!("{addr}/24")).unwrap();
        }
        ip(&["link", "set", "dev", &br, "mtu", UNDERLAY_MTU]);
        (Overlay { lab, hosts }, extra)
    }

    /// A VM `name` on host `h` (0-based), port `port` in `group`, with `mac` and
    /// `addr` (/24).
    fn vm(&mut self, name: &str, h: usize, port: &str, mac: &str, addr: &str) -> Vm {
        let g = self.lab.add_guest(name).unwrap();
        g.disable_ipv6().unwrap();
        ip(&["link", "del", &g.host_if]);
        let vm = Vm {
            g,
            port: port.to_string(),
            mac: mac.to_string(),
            addr: addr.to_string(),
        };
        self.plug(&vm, h);
        vm
    }

    /// Plugs `vm`'s NIC into host `h` (`{port}p` there), as a hypervisor does when
    /// the VM starts or arrives: same MAC and address every time.
    fn plug(&self, vm: &Vm, h: usize) {
        let host = &self.hosts[h].g;
        let p = format!("{}p", vm.port);
        ip(&[
            "-n",
            &vm.g.netns,
            "link",
            "add",
            "eth0",
            "address",
            &vm.mac,
            "type",
            "veth",
            "peer",
            "name",
            &p,
            "netns",
            &host.netns,
        ]);
        ip(&["-n", &host.netns, "link", "set", &p, "up"]);
        ip(&["-n", &vm.g.netns, "link", "set", "eth0", "up"]);
        vm.g.set_addr(&format!("{}/24", vm.addr)).unwrap();
    }

    /// Unplugs `vm`'s NIC from host `h` (the VM left).
    fn unplug(&self, vm: &Vm, h: usize) {
        ip(&[
            "-n",
            &self.hosts[h].g.netns,
            "link",
            "del",
            &format!("{}p", vm.port),
        ]);
    }

    /// `port add` of `vm`'s port on host `h` in `group`, by MAC.
    fn port_add(&self, vm: &Vm, h: usize, group: &str) {
        let p = format!("{}p", vm.port);
        let args = [
            "port",
            "add",
            &vm.port,
            "--interface",
            &p,
            "--group",
            group,
            "--mac",
            &vm.mac,
        ];
        let out = self.sw(h).cli(&args);
        assert!(
            out.status.success(),
            "port add on h{}: {out:?}\n{}",
            h + 1,
            self.logs()
        );
    }

    fn port_remove(&self, vm: &Vm, h: usize) {
        let out = self.sw(h).cli(&["port", "remove", &vm.port]);
        assert!(out.status.success(), "port remove on h{}: {out:?}", h + 1);
    }

    /// Starts host `h`'s daemon: the profile, its VMs' ports `(vm, group)`, its
    /// endpoint and the static `peers` (address, [(vlan, mac)]).
    fn start(&mut self, h: usize, ports: &[(&Vm, &str)], peers: &[(&str, Vec<(u16, &str)>)]) {
        self.start_with(h, ports, peers, &[]);
    }

    /// Hosts 1 and 2 with one guest each in `web`, each the other's static peer.
    fn start_pair(&mut self, vm1: &Vm, vm2: &Vm) {
        self.start(
            0,
            &[(vm1, "web")],
            &[("198.18.100.2", vec![(10, &vm2.mac)])],
        );
        self.start(
            1,
            &[(vm2, "web")],
            &[("198.18.100.1", vec![(10, &vm1.mac)])],
        );
    }

    /// [`Overlay::start`] with `extra` daemon arguments (a cluster member's).
    fn start_with(
        &mut self,
        h: usize,
        ports: &[(&Vm, &str)],
        peers: &[(&str, Vec<(u16, &str)>)],
        extra: &[&str],
    ) {
        let mut cfg = PROFILE.to_string();
        let host = &self.hosts[h];
        cfg += &format!(
            "\n[host.overlay]\nlocal_ip = \"{}\"\ninterface = \"eth0\"\nfragment = {}\npeers = [\n",
            host.addr, host.fragment
        );
        for (addr, macs) in peers {
            let macs: Vec<String> = macs
                .iter()
                .map(|(v, m)| format!("{{ vlan = {v}, mac = \"{m}\" }}"))
                .collect();
            cfg += &format!(
                "  {{ address = \"{addr}\", macs = [{}] }},\n",
                macs.join(", ")
            );
        }
        cfg += "]\n";
        for (vm, group) in ports {
            cfg += &format!(
                "\n[[host.port]]\nname = \"{}\"\ninterface = \"{}p\"\nport_group = \"{group}\"\nmac = \"{}\"\nbackend = \"{}\"\n",
                vm.port,
                vm.port,
                vm.mac,
                lab_backend()
            );
        }
        let g = host.g.clone();
        let sw = start_daemon_in_with(&mut self.lab, &format!("h{}", h + 1), &cfg, Some(&g), extra);
        self.hosts[h].sw = Some(sw);
    }

    fn sw(&self, h: usize) -> &Switchd {
        self.hosts[h].sw.as_ref().expect("started")
    }

    fn logs(&self) -> String {
        self.hosts
            .iter()
            .filter_map(|h| h.sw.as_ref())
            .map(|s| s.log_text())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// Host `h`'s overlay view.
    fn overlay(&self, h: usize) -> serde_json::Value {
        self.sw(h).get("/v1/overlay")
    }

    /// Host `h`'s counters of its endpoint at `addr`.
    fn endpoint(&self, h: usize, addr: &str) -> serde_json::Value {
        let o = self.overlay(h);
        o["endpoints"]
            .as_array()
            .and_then(|es| es.iter().find(|e| e["address"] == addr))
            .cloned()
            .unwrap_or_else(|| panic!("no endpoint {addr} on h{}: {o}", h + 1))
    }

    fn tx_to(&self, h: usize, addr: &str) -> u64 {
        self.endpoint(h, addr)["counters"]["tx_frames"]
            .as_u64()
            .unwrap()
    }
}

/// `ping -c count` from `vm` to `dst`: the replies.
fn ping(vm: &Guest, dst: &str, count: u32) -> u32 {
    vm.ping(dst, count, 2).map_or(0, |r| r.received)
}

/// Pings until one reply comes back (the first ARP), at most 5 s.
fn wait_ping(o: &Overlay, vm: &Guest, dst: &str) {
    let t = Instant::now();
    while ping(vm, dst, 1) != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{} does not reach {dst}\n{}",
            vm.name,
            o.logs()
        );
    }
}

/// `count` broadcasts of EtherType `ethertype` from `vm` (scapy).
fn broadcasts(vm: &Vm, ethertype: u16, count: u32) {
    scapy(
        &vm.g,
        &format!(
            "sendp(Ether(dst='ff:ff:ff:ff:ff:ff', src='{}', type={ethertype})/Raw(b'overlay'*8), iface='eth0', count={count})",
            vm.mac
        ),
    );
}

/// The frames of EtherType `ethertype` from `src` a capture saw.
fn seen_from(c: &portcullis_lab::Captured, ethertype: u16, src: &str) -> usize {
    let et = ethertype.to_be_bytes();
    let src: Vec<u8> = src
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    c.frames
        .iter()
        .filter(|f| f.get(12..14) == Some(&et[..]) && f.get(6..12) == Some(&src[..]))
        .count()
}

/// The frames of EtherType `ethertype` a capture saw.
fn seen(c: &portcullis_lab::Captured, ethertype: u16) -> usize {
    let et = ethertype.to_be_bytes();
    c.frames
        .iter()
        .filter(|f| f.get(12..14) == Some(&et[..]))
        .count()
}

#[test]
fn guests_on_two_hosts_ping_and_run_tcp_with_offloads_over_the_overlay() {
    let (mut o, _) = Overlay::new("ovl2", 2, &[]);
    let vm1 = o.vm("vm1", 0, "vm1", "52:54:00:00:01:01", "198.18.10.11");
    let vm2 = o.vm("vm2", 1, "vm2", "52:54:00:00:01:02", "198.18.10.12");
    o.start_pair(&vm1, &vm2);

    wait_ping(&o, &vm1.g, &vm2.addr);
    assert_eq!(ping(&vm1.g, &vm2.addr, 5), 5, "{}", o.logs());
    assert_eq!(ping(&vm2.g, &vm1.addr, 5), 5, "{}", o.logs());

    // TCP with the veths' default offloads (TSO/GSO on): super-frames enter the
    // switch whole and are cut into segments before encapsulation.
    let mut server = vm2.g.command("iperf3");
    server
        .args(["-s", "-1", "-B", &vm2.addr])
        .stdout(std::process::Stdio::null());
    let spid = o.lab.spawn(server).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let out = vm1
        .g
        .run("iperf3", &["-c", &vm2.addr, "-t", "3", "-J"])
        .unwrap_or_else(|e| panic!("iperf3: {e}\n{}", o.logs()));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = j["end"]["sum_received"]["bytes"].as_u64().unwrap();
    let bps = j["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap();
    println!("TCP over the overlay: {:.0} Mbit/s", bps / 1e6);
    assert!(bytes > 1_000_000, "iperf3 moved {bytes} bytes");
    let _ = o.lab.wait_exit(spid, Duration::from_secs(5));
    // On AF_PACKET the guest's TCP arrives as GSO super-frames (AF_XDP takes no
    // offloads: its pass checks the same traffic segment by segment).
    let gso = o.sw(0).port("vm1")["io"]["rx_gso_frames"].as_u64().unwrap();
    if lab_backend() == "af_packet" {
        assert!(gso > 0, "the guest's TCP arrived as GSO super-frames");
    }
    assert!(o.tx_to(0, "198.18.100.2") > 1000);
    // Nothing was refused on either side.
    for h in 0..2 {
        for r in [
            "overlay_unknown_endpoint",
            "overlay_forged_source",
            "overlay_bad_header",
        ] {
            assert_eq!(o.sw(h).drops("overlay", r), 0, "h{}: {r}", h + 1);
        }
    }
}

#[test]
fn broadcast_reaches_each_member_once_and_forged_vxlan_is_dropped() {
    let (mut o, extra) = Overlay::new("ovl3", 3, &[("attacker", "198.18.100.9")]);
    let attacker = &extra[0];
    let vm1 = o.vm("vm1", 0, "vm1", "52:54:00:00:03:01", "198.18.10.21");
    let vm2 = o.vm("vm2", 1, "vm2", "52:54:00:00:03:02", "198.18.10.22");
    let vm3 = o.vm("vm3", 1, "vm3", "52:54:00:00:03:03", "198.18.20.23");
    let vm4 = o.vm("vm4", 2, "vm4", "52:54:00:00:03:04", "198.18.20.24");
    let h2 = vec![(10, vm2.mac.as_str()), (20, vm3.mac.as_str())];
    let h1 = vec![(10, vm1.mac.as_str())];
    let h3 = vec![(20, vm4.mac.as_str())];
    let peers = |me: usize| {
        [
            ("198.18.100.1", &h1),
            ("198.18.100.2", &h2),
            ("198.18.100.3", &h3),
        ]
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, (a, m))| (a, m.clone()))
        .collect::<Vec<_>>()
    };
    o.start(0, &[(&vm1, "web")], &peers(0));
    o.start(1, &[(&vm2, "web"), (&vm3, "db")], &peers(1));
    o.start(2, &[(&vm4, "db")], &peers(2));
    wait_ping(&o, &vm1.g, &vm2.addr);

    // VLAN 10's broadcast from vm1: vm2 gets each exactly once; h3 (only VLAN 20
    // members) gets no copy at all; the VLAN 20 guests see nothing.
    let caps: Vec<Capture> = [&vm2, &vm3, &vm4]
        .iter()
        .map(|v| Capture::start(&mut o.lab, &v.g, "eth0", &["ether", "proto", "0x88b5"]).unwrap())
        .collect();
    let to_h3 = o.tx_to(0, "198.18.100.3");
    broadcasts(&vm1, 0x88b5, 5);
    // And VLAN 20's from vm3 (h2): vm4 on h3 only.
    broadcasts(&vm3, 0x88b5, 3);
    let got: Vec<(usize, usize)> = caps
        .into_iter()
        .map(|c| {
            let c = c.stop(&mut o.lab).unwrap();
            (
                seen_from(&c, 0x88b5, &vm1.mac),
                seen_from(&c, 0x88b5, &vm3.mac),
            )
        })
        .collect();
    // (from vm1, from vm3) on vm2, vm3, vm4: vm1's 5 reach vm2 only (VLAN 10);
    // vm3's 3 reach vm4 only, on h3 (vm3's capture sees them leave, not return).
    assert_eq!(got, vec![(5, 0), (0, 3), (0, 3)], "{}", o.logs());
    assert_eq!(o.tx_to(0, "198.18.100.3"), to_h3, "h1 sent VLAN 10 to h3");

    // A VXLAN datagram from an address that is no endpoint, aimed at vm1.
    let cap = Capture::start(&mut o.lab, &vm1.g, "eth0", &["ether", "proto", "0x88b6"]).unwrap();
    let before = o.sw(0).drops("overlay", "overlay_unknown_endpoint");
    let inner = |src: &str| {
        format!(
            "Ether(dst='{}', src='{src}', type=0x88b6)/Raw(b'forged'*8)",
            vm1.mac
        )
    };
    scapy(
        attacker,
        &format!(
            "from scapy.layers.vxlan import VXLAN\nsend(IP(dst='198.18.100.1')/UDP(sport=4789, dport=4789)/VXLAN(vni=10010)/{}, count=5)",
            inner("52:54:00:00:03:99")
        ),
    );
    // One from h2's address (spoofed) whose inner source is vm4's MAC, which sits
    // behind h3: a forged source through the overlay.
    scapy(
        attacker,
        &format!(
            "from scapy.layers.vxlan import VXLAN\nsend(IP(src='198.18.100.2', dst='198.18.100.1')/UDP(sport=4789, dport=4789)/VXLAN(vni=10010)/{}, count=4)",
            inner(&vm4.mac)
        ),
    );
    let c = cap.stop(&mut o.lab).unwrap();
    assert_eq!(seen(&c, 0x88b6), 0, "a forged frame reached vm1");
    let sw = o.sw(0);
    assert_eq!(sw.drops("overlay", "overlay_unknown_endpoint") - before, 5);
    assert_eq!(sw.drops("overlay", "overlay_forged_source"), 4);
    assert_eq!(
        o.endpoint(0, "198.18.100.2")["counters"]["forged_source"],
        4
    );
    assert_eq!(o.overlay(0)["unknown_endpoint"], 5);
    // Traffic still flows.
    assert_eq!(ping(&vm1.g, &vm2.addr, 3), 3);
    // What an operator reads: `show overlay` lists both endpoints and the refusals.
    let out = o.sw(0).cli(&["show", "overlay"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for needle in ["198.18.100.2", "198.18.100.3", "10010", &vm2.mac] {
        assert!(
            text.contains(needle),
            "show overlay lacks {needle}:\n{text}"
        );
    }
}

#[test]
fn a_linux_vxlan_device_and_a_guest_behind_portcullis_talk_both_ways() {
    let (mut o, extra) = Overlay::new("ovlx", 1, &[("linux", "198.18.100.3")]);
    let linux = &extra[0];
    let vm1 = o.vm("vm1", 0, "vm1", "52:54:00:00:05:01", "198.18.10.41");
    let lmac = "02:00:00:00:05:30";
    // Linux's own VXLAN: VNI 10010 on port 4789, no learning, static FDB entries
    // (vm1 behind 198.18.100.1; broadcast to it too).
    let n = linux.netns.as_str();
    ip(&[
        "-n",
        n,
        "link",
        "add",
        "vx0",
        "address",
        lmac,
        "type",
        "vxlan",
        "id",
        "10010",
        "dstport",
        "4789",
        "local",
        "198.18.100.3",
        "dev",
        "eth0",
        "nolearning",
    ]);
    ip(&["-n", n, "link", "set", "vx0", "up"]);
    let bridge = |args: &[&str]| {
        let out = linux.command("bridge").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "bridge {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    bridge(&[
        "fdb",
        "append",
        "00:00:00:00:00:00",
        "dev",
        "vx0",
        "dst",
        "198.18.100.1",
    ]);
    bridge(&["fdb", "add", &vm1.mac, "dev", "vx0", "dst", "198.18.100.1"]);
    ip(&["-n", n, "addr", "add", "198.18.10.30/24", "dev", "vx0"]);
    o.start(0, &[(&vm1, "web")], &[("198.18.100.3", vec![(10, lmac)])]);

    // Linux → Portcullis's guest, then the guest → Linux.
    let t = Instant::now();
    while ping(linux, &vm1.addr, 1) != 1 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "linux cannot reach vm1\n{}",
            o.logs()
        );
    }
    assert_eq!(ping(linux, &vm1.addr, 5), 5);
    assert_eq!(ping(&vm1.g, "198.18.10.30", 5), 5, "{}", o.logs());
    let e = o.endpoint(0, "198.18.100.3");
    assert!(e["counters"]["rx_frames"].as_u64().unwrap() >= 10, "{e}");
    assert!(e["counters"]["tx_frames"].as_u64().unwrap() >= 10, "{e}");
    assert_eq!(e["counters"]["forged_source"], 0);
}

/// Starts etcd (Debian's etcd-server) in `g` at `url`, and waits until it answers.
fn start_etcd(lab: &mut Lab, g: &Guest, url: &str) {
    let dir = lab.scratch_dir().unwrap().join("etcd-data");
    let mut cmd = g.command("etcd");
    cmd.args(["--name", "e1", "--data-dir"])
        .arg(&dir)
        .args(["--listen-client-urls", url, "--advertise-client-urls", url])
        .args(["--listen-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-advertise-peer-urls", "http://127.0.0.1:2380"])
        .args(["--initial-cluster", "e1=http://127.0.0.1:2380"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    lab.spawn(cmd).unwrap();
    let t = Instant::now();
    loop {
        let out = g
            .command("etcdctl")
            .env("ETCDCTL_API", "3")
            .args([
                "--endpoints",
                url,
                "--dial-timeout",
                "1s",
                "endpoint",
                "health",
            ])
            .output()
            .unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "etcd does not answer: {out:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to `secs`) until `f` holds, showing `what()` if it never does.
fn wait_until(secs: u64, mut f: impl FnMut() -> bool, what: impl Fn() -> String) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "not within {secs} s: {}",
            what()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The endpoint host `h`'s overlay places `mac` behind, if any.
fn endpoint_of(o: &Overlay, h: usize, mac: &str) -> Option<String> {
    o.overlay(h)["remote_macs"]
        .as_array()?
        .iter()
        .find(|m| m["mac"] == mac)
        .and_then(|m| m["endpoint"].as_str().map(str::to_string))
}

#[test]
fn cluster_hosts_find_each_others_guests_in_etcd_and_a_migrated_guest_is_reached_at_its_new_host() {
    const URL: &str = "http://198.18.100.250:2379";
    let (mut o, extra) = Overlay::new("ovlc", 3, &[("etcd", "198.18.100.250")]);
    Lab::require_tools(&["etcd", "etcdctl"]).expect("scripts/test.sh installs etcd");
    start_etcd(&mut o.lab, &extra[0], URL);
    let vm1 = o.vm("vm1", 0, "vm1", "52:54:00:00:07:01", "198.18.10.71");
    let vm2 = o.vm("vm2", 1, "vm2", "52:54:00:00:07:02", "198.18.10.72");
    let vm3 = o.vm("vm3", 2, "vm3", "52:54:00:00:07:03", "198.18.20.73");
    for h in 0..3 {
        let id = format!("h{}", h + 1);
        let args = [
            "--cluster",
            URL,
            "--host-id",
            &id,
            "--cluster-lease-secs",
            "3",
        ];
        o.start_with(h, &[], &[], &args);
    }
    o.port_add(&vm1, 0, "web");
    o.port_add(&vm2, 1, "web");
    o.port_add(&vm3, 2, "db");

    // No peers configured: each host learns the others' endpoints and guests from
    // the cluster's host and port records.
    wait_until(
        10,
        || endpoint_of(&o, 0, &vm2.mac).as_deref() == Some("198.18.100.2"),
        || format!("h1 places vm2 behind h2: {}\n{}", o.overlay(0), o.logs()),
    );
    wait_until(
        10,
        || endpoint_of(&o, 1, &vm1.mac).as_deref() == Some("198.18.100.1"),
        || format!("h2 places vm1 behind h1: {}\n{}", o.overlay(1), o.logs()),
    );
    wait_ping(&o, &vm1.g, &vm2.addr);
    assert_eq!(ping(&vm1.g, &vm2.addr, 5), 5, "{}", o.logs());
    let e3 = o.endpoint(0, "198.18.100.3");
    assert_eq!(
        e3["vlans"],
        serde_json::json!([20]),
        "h3 has VLAN 20 guests only: {e3}"
    );
    assert_eq!(e3["source"], "cluster");

    // vm2 migrates from h2 to h3: its port goes from h2, it arrives on h3.
    o.port_remove(&vm2, 1);
    o.unplug(&vm2, 1);
    o.plug(&vm2, 2);
    let moved = Instant::now();
    o.port_add(&vm2, 2, "web");
    loop {
        // One echo request at a time, each given 100 ms.
        let mut echo = vm1.g.command("ping");
        echo.args(["-n", "-q", "-c", "1", "-W", "0.1", &vm2.addr]);
        if echo.output().is_ok_and(|out| out.status.success()) {
            break;
        }
        assert!(
            moved.elapsed() < Duration::from_secs(10),
            "vm2 unreachable at h3: {}\n{}",
            o.overlay(0),
            o.logs()
        );
    }
    println!(
        "vm2 reachable at its new host {:.0} ms after `port add` there began",
        moved.elapsed().as_secs_f64() * 1000.0
    );
    assert_eq!(
        endpoint_of(&o, 0, &vm2.mac).as_deref(),
        Some("198.18.100.3")
    );
    assert_eq!(ping(&vm1.g, &vm2.addr, 5), 5, "{}", o.logs());
    let e3 = o.endpoint(0, "198.18.100.3");
    assert_eq!(e3["vlans"], serde_json::json!([10, 20]), "{e3}");
    // And h2, which has no guest left, gets no VLAN 10 copy from h1 any more.
    let e2 = o.overlay(0)["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["address"] == "198.18.100.2")
        .cloned();
    assert!(e2.is_none_or(|e| e["macs"] == 0), "{}", o.overlay(0));
}

#[test]
fn a_datagram_above_the_underlay_mtu_is_refused_and_counted_unless_the_host_fragments() {
    let (mut o, _) = Overlay::new("ovlmtu", 2, &[]);
    let vm1 = o.vm("vm1", 0, "vm1", "52:54:00:00:09:01", "198.18.10.91");
    let vm2 = o.vm("vm2", 1, "vm2", "52:54:00:00:09:02", "198.18.10.92");
    // The underlay is back at 1500 on both hosts: a full-size guest frame (1514
    // bytes) needs 1550. h1 refuses (the default), h2 fragments.
    for h in &o.hosts {
        ip(&[
            "-n", &h.g.netns, "link", "set", "dev", "eth0", "mtu", "1500",
        ]);
    }
    o.hosts[1].fragment = true;
    o.start_pair(&vm1, &vm2);
    wait_ping(&o, &vm2.g, &vm1.addr);
    // Frames that fit go both ways.
    let big = |g: &Guest, dst: &str, size: &str| {
        let out = g
            .command("ping")
            .args([
                "-n", "-q", "-c", "3", "-W", "1", "-M", "do", "-s", size, dst,
            ])
            .output()
            .unwrap();
        portcullis_lab::parse_ping_summary(&String::from_utf8_lossy(&out.stdout))
            .map_or(0, |r| r.received)
    };
    assert_eq!(big(&vm2.g, &vm1.addr, "1400"), 3, "{}", o.logs());
    // 1472-byte echoes: h2 sends each request in fragments, h1 reassembles and
    // delivers it; h1 refuses each reply (above its path MTU) and counts it.
    let rx_before = o.endpoint(0, "198.18.100.2")["counters"]["rx_frames"]
        .as_u64()
        .unwrap();
    let refused_before = o.sw(0).port("overlay")["io"]["tx_too_big"]
        .as_u64()
        .unwrap();
    assert_eq!(big(&vm2.g, &vm1.addr, "1472"), 0);
    let rx = o.endpoint(0, "198.18.100.2")["counters"]["rx_frames"]
        .as_u64()
        .unwrap();
    assert!(
        rx >= rx_before + 3,
        "h1 got the fragmented requests: {rx_before} → {rx}"
    );
    let refused = o.sw(0).port("overlay")["io"]["tx_too_big"]
        .as_u64()
        .unwrap();
    assert!(
        refused >= refused_before + 3,
        "h1 refused the replies: {refused_before} → {refused}\n{}",
        o.sw(0).port("overlay")
    );
    assert_eq!(
        o.sw(1).port("overlay")["io"]["tx_too_big"],
        0,
        "h2 fragments"
    );
}
