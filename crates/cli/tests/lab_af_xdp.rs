//! Lab tests of what is particular to the AF_XDP backend (the whole lab suite,
//! `lab_switch.rs` and the rest, also runs with every guest port on AF_XDP: see
//! `PORTCULLIS_LAB_BACKEND` in `scripts/test.sh`): floods confined to their VLAN,
//! an uplink on AF_XDP carrying 802.1Q tags, the fallback to AF_PACKET, TCP with
//! the guests' default offloads, an interface that vanishes — each checking that
//! the API reports AF_XDP (no silent fallback) and that no XDP program is left on
//! any interface once the daemon exits (SIGTERM, and SIGKILL).

mod common;

use common::*;
use portcullis_lab::{Capture, Guest, Lab};
use std::time::Duration;

const GROUPS: &str = r#"
[switch]
name = "lab"

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "db"
vlan = 20
"#;

const BACKEND: &str = "af_xdp";

/// `[[host.port]]` for a guest, on the backend under test.
fn xdp_port(name: &str, g: &Guest, group: &str) -> String {
    port_on(name, g, group, BACKEND)
}

/// Whether `ip link show` reports an XDP program on the host side of `g`.
fn xdp_attached(ifname: &str) -> bool {
    let out = std::process::Command::new("ip")
        .args(["link", "show", "dev", ifname])
        .output()
        .expect("ip link show");
    assert!(out.status.success(), "ip link show {ifname}");
    String::from_utf8_lossy(&out.stdout).contains("xdp")
}

/// Every port is on the backend under test (the API reports the backend actually
/// used: a fallback to AF_PACKET fails here), and its interface has the program.
fn assert_on_xdp(sw: &Switchd, ports: &[(&str, &str)]) {
    for (name, ifname) in ports {
        let view = sw.port(name);
        assert_eq!(
            view["backend"],
            BACKEND,
            "port {name} is not on AF_XDP (fallback?): {view}\n--- daemon log ---\n{}",
            sw.log_text()
        );
        assert!(xdp_attached(ifname), "{ifname} has no XDP program");
        // veth: the program runs in the driver, and veth has no zero-copy.
        assert_eq!(view["xdp_mode"], "native, copy", "port {name}: {view}");
    }
}

/// Stops the daemon (SIGTERM, or SIGKILL: the kernel releases the BPF links either
/// way) and checks that no interface keeps an XDP program.
fn stop_and_check_detached(lab: &mut Lab, sw: &Switchd, ifnames: &[&str], signal: i32) {
    lab.kill_with(sw.pid, signal, Duration::from_secs(5))
        .expect("daemon was running");
    for ifname in ifnames {
        // The link is released when the last fd closes, at process exit.
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while xdp_attached(ifname) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !xdp_attached(ifname),
            "{ifname} keeps an XDP program after the daemon exited"
        );
    }
}

#[test]
fn af_xdp_broadcasts_flood_their_vlan_and_unknown_unicast_does_not() {
    let mut lab = lab("xflood", &["tcpdump", "scapy"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let b2 = lab.add_guest("b2").unwrap();
    let c = lab.add_guest("c").unwrap();
    let cfg = format!(
        "{GROUPS}{}{}{}{}",
        xdp_port("a", &a, "web"),
        xdp_port("b", &b, "web"),
        xdp_port("b2", &b2, "web"),
        xdp_port("c", &c, "db")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert_on_xdp(
        &sw,
        &[
            ("a", &a.host_if),
            ("b", &b.host_if),
            ("b2", &b2.host_if),
            ("c", &c.host_if),
        ],
    );
    let a_mac = a.mac().unwrap();
    let filter = ["udp", "port", "7"];
    let cb = Capture::start(&mut lab, &b, "eth0", &filter).unwrap();
    let cb2 = Capture::start(&mut lab, &b2, "eth0", &filter).unwrap();
    let cc = Capture::start(&mut lab, &c, "eth0", &filter).unwrap();
    let ca = Capture::start(
        &mut lab,
        &a,
        "eth0",
        &["inbound", "and", "udp", "port", "7"],
    );
    // A broadcast, and a unicast to a MAC nobody has (from a guest it goes to an
    // uplink only, and this switch has none: dropped and counted).
    scapy(
        &a,
        &format!(
            "sendp(Ether(src='{a_mac}', dst='ff:ff:ff:ff:ff:ff')/IP(src='198.18.10.1', dst='198.18.255.255')/UDP(dport=7)/b'bcast', iface='eth0', count=3)\n\
         sendp(Ether(src='{a_mac}', dst='52:54:00:00:00:99')/IP(src='198.18.10.1', dst='198.18.10.99')/UDP(dport=7)/b'unknown', iface='eth0', count=2)"
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    let (sb, sb2, sc) = (
        cb.stop(&mut lab).unwrap(),
        cb2.stop(&mut lab).unwrap(),
        cc.stop(&mut lab).unwrap(),
    );
    for (name, seen) in [("b", &sb), ("b2", &sb2)] {
        assert_eq!(
            seen.lines_containing("198.18.255.255").len(),
            3,
            "{name} gets every broadcast once: {:#?}",
            seen.lines
        );
        assert_eq!(
            seen.lines_containing("198.18.10.99").len(),
            0,
            "unknown unicast from a guest goes to an uplink only, never to guests: {:#?}",
            seen.lines
        );
    }
    assert_eq!(
        sc.lines_containing("UDP").len() + sc.lines_containing("udp").len(),
        0,
        "nothing floods into VLAN 20: {:#?}",
        sc.lines
    );
    if let Ok(ca) = ca {
        let sa = ca.stop(&mut lab).unwrap();
        assert_eq!(
            sa.lines_containing("198.18.").len(),
            0,
            "no flood back to the sender: {:#?}",
            sa.lines
        );
    }
    assert_eq!(sw.counter("c", "tx_frames"), 0);
    assert!(sw.counter("b", "tx_frames") >= 3);
    assert_eq!(sw.drops("a", "no_uplink"), 2, "counted as no_uplink");

    let ifs = [
        a.host_if.as_str(),
        b.host_if.as_str(),
        b2.host_if.as_str(),
        c.host_if.as_str(),
    ];
    stop_and_check_detached(&mut lab, &sw, &ifs, libc::SIGTERM);
}

#[test]
fn af_xdp_uplink_carries_the_guest_with_the_right_802_1q_tag() {
    let mut lab = lab("xuplink", &["ping", "tcpdump"]);
    let up = lab.add_guest("upstream").unwrap();
    let a = lab.add_guest("a").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    let up_cfg = portcullis_lab::trunk_router(&up, 10, "198.18.10.254/16").unwrap();
    let _upstream = start_daemon_in(&mut lab, "upstream", &up_cfg, Some(&up));
    let cfg = format!(
        "{GROUPS}\n[uplink_policy]\nuplinks = [\"uplink1\"]\nallowed_vlans = [10, 20]\n\n[host.uplinks]\nuplink1 = \"{}\"\n\n[host.uplink_backend]\nuplink1 = \"{BACKEND}\"\n{}",
        up.host_if,
        xdp_port("a", &a, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert_on_xdp(&sw, &[("uplink1", &up.host_if), ("a", &a.host_if)]);

    let cap = Capture::start(
        &mut lab,
        &up,
        "eth0",
        &["icmp", "or", "(vlan", "and", "icmp)"],
    )
    .unwrap();
    let p = a.ping("198.18.10.254", 3, 1).unwrap();
    let seen = cap.stop(&mut lab).unwrap();
    assert_eq!(
        p.received,
        3,
        "guest → upstream router over the AF_XDP uplink; switch log:\n{}",
        sw.log_text()
    );
    let icmp = seen.lines_containing("ICMP");
    assert!(icmp.len() >= 6, "requests and replies: {:#?}", seen.lines);
    for l in &icmp {
        assert!(l.contains("vlan 10"), "tagged 10 on the trunk: {l}");
    }
    assert!(sw.counter("uplink1", "tx_frames") >= 3);
    assert!(
        sw.counter("uplink1", "rx_frames") >= 3,
        "tagged replies came in"
    );

    let ifs = [up.host_if.as_str(), a.host_if.as_str()];
    stop_and_check_detached(&mut lab, &sw, &ifs, libc::SIGTERM);
}

#[test]
fn an_unavailable_af_xdp_falls_back_to_af_packet_and_says_so() {
    // An interface that already has an XDP program refuses a second one: the daemon
    // warns, uses AF_PACKET, and the API shows it.
    let mut lab = lab("xfallbk", &["ping"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let squatter = portcullis_io::open_af_xdp(&b.host_if, &portcullis_io::AfXdpOptions::default())
        .expect("an AF_XDP socket holding b's interface");
    let cfg = format!(
        "{GROUPS}{}{}{FALLBACK_EXPECTED}",
        xdp_port("a", &a, "web"),
        xdp_port("b", &b, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert_eq!(sw.port("a")["backend"], "af_xdp");
    assert_eq!(sw.port("b")["backend"], "af_packet", "fell back");
    assert!(
        sw.port("b").get("xdp_mode").is_none(),
        "no XDP mode on AF_PACKET"
    );
    assert!(
        sw.log_text().contains("falling back to AF_PACKET"),
        "warned: {}",
        sw.log_text()
    );
    drop(squatter);
    assert_eq!(
        a.ping("198.18.10.2", 3, 1).unwrap().received,
        3,
        "AF_XDP ↔ AF_PACKET ports switch together"
    );
    let ifs = [a.host_if.as_str(), b.host_if.as_str()];
    stop_and_check_detached(&mut lab, &sw, &ifs, libc::SIGTERM);
}

/// `iperf3 -c <b_ip> -t 3 --json` from `a` to a one-shot server in `b`: bytes received.
fn iperf3_bytes(lab: &mut Lab, a: &Guest, b: &Guest, b_ip: &str) -> u64 {
    let mut server = b.command("iperf3");
    server
        .args(["-s", "-1", "-B", b_ip])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let pid = lab.spawn(server).expect("start iperf3 -s");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = a
            .run_status("iperf3", &["-c", b_ip, "-t", "3", "--json"])
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !text.contains("Connection refused") {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "iperf3 server never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = lab.wait_exit(pid, Duration::from_secs(5));
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("iperf3 JSON ({e}): {out}"));
    assert!(v.get("error").is_none(), "iperf3 failed: {}", v["error"]);
    v["end"]["sum_received"]["bytes"].as_u64().unwrap_or(0)
}

#[test]
fn af_xdp_tcp_with_the_guests_default_offloads() {
    let mut lab = lab("xtcp", &["iperf3"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let cfg = format!(
        "{GROUPS}{}{}",
        xdp_port("a", &a, "web"),
        xdp_port("b", &b, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert_on_xdp(&sw, &[("a", &a.host_if), ("b", &b.host_if)]);
    let bytes = iperf3_bytes(&mut lab, &a, &b, "198.18.10.2");
    println!("{bytes} bytes\na: {}\nb: {}", sw.port("a"), sw.port("b"));
    assert!(
        bytes > 20_000_000,
        "TCP through AF_XDP ports: {bytes} bytes\n{}",
        sw.log_text()
    );
    assert_eq!(
        sw.port("a")["io"]["rx_gso_frames"],
        0,
        "AF_XDP never delivers super-frames"
    );
    let ifs = [a.host_if.as_str(), b.host_if.as_str()];
    stop_and_check_detached(&mut lab, &sw, &ifs, libc::SIGTERM);
}

#[test]
fn an_af_xdp_port_whose_interface_vanishes_goes_link_down() {
    let mut lab = lab("xvanish", &["ping"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let cfg = format!(
        "{GROUPS}{}{}",
        xdp_port("a", &a, "web"),
        xdp_port("b", &b, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert_on_xdp(&sw, &[("a", &a.host_if), ("b", &b.host_if)]);
    assert_eq!(a.ping("198.18.10.2", 2, 1).unwrap().received, 2);
    // b's VM stops: its host-side interface disappears (poll(2) says nothing for
    // AF_XDP; the once-a-second error check notices).
    let out = std::process::Command::new("ip")
        .args(["link", "del", &b.host_if])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sw.port("b")["state"] != "no-interface" {
        assert!(
            std::time::Instant::now() < deadline,
            "b never went without its interface: {}",
            sw.port("b")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        sw.get("/v1/events")
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "link_state_changed" && e["port"] == "b"),
        "link change reported"
    );
    assert_eq!(sw.port("a")["state"], "up", "the other port is untouched");
    // Killed outright: the kernel still releases the XDP program with the link.
    stop_and_check_detached(&mut lab, &sw, &[a.host_if.as_str()], libc::SIGKILL);
}
