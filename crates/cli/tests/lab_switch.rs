//! Lab tests: the real `portcullis` daemon switching between network namespaces,
//! checked with real programs (ping, tcpdump, scapy) and the daemon's own API.

mod common;

use common::*;
use portcullis_lab::{Capture, Lab};
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

[[port_group]]
name = "monitor"
vlan = 10
security = { promiscuous = "accept" }
"#;

#[test]
fn guests_of_one_vlan_talk_and_other_vlans_stay_isolated() {
    let mut lab = lab("vlans", &["ping"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let c = lab.add_guest("c").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    c.set_addr("198.18.10.3/16").unwrap();
    let cfg = format!(
        "{GROUPS}{}{}{}",
        port("a", &a, "web"),
        port("b", &b, "web"),
        port("c", &c, "db")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);

    let p = a.ping("198.18.10.2", 3, 1).unwrap();
    assert_eq!(p.received, 3, "a → b in VLAN 10");
    let p = a.ping("198.18.10.3", 2, 1).unwrap();
    assert_eq!(p.received, 0, "a → c crosses VLANs");

    // The switch's view: a and b exchanged frames; c (VLAN 20, alone) was never sent one.
    assert!(sw.counter("a", "rx_frames") >= 5);
    assert!(sw.counter("b", "tx_frames") >= 4);
    assert_eq!(
        sw.counter("c", "tx_frames"),
        0,
        "nothing from VLAN 10 reached VLAN 20"
    );
    let macs = sw.get("/v1/mac");
    let entries = macs["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "three guest MACs: {macs}");
    assert!(entries.iter().all(|e| e["kind"] == "guest"));

    // The CLI is a client of the same API: tables and JSON.
    let text = |args: &[&str]| {
        let out = sw.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let mac_table = text(&["show", "mac"]);
    assert!(mac_table.starts_with("VLAN"), "{mac_table}");
    for (g, v) in [(&a, "10"), (&b, "10"), (&c, "20")] {
        let m = g.mac().unwrap();
        assert!(
            mac_table
                .lines()
                .any(|l| l.starts_with(v) && l.contains(&m) && l.contains("guest")),
            "{mac_table}"
        );
    }
    let counters = text(&["show", "counters"]);
    assert!(counters.lines().any(|l| l.starts_with("a ")), "{counters}");
    assert!(counters.contains("drops by reason:"), "{counters}");
    let ports: serde_json::Value =
        serde_json::from_str(&text(&["show", "ports", "--json"])).unwrap();
    assert_eq!(ports.as_array().unwrap().len(), 3);
    assert_eq!(
        ports[2]["vlan"],
        serde_json::json!({"mode": "access", "vid": 20}),
        "structured, for clients"
    );
    assert_eq!(ports[2]["port_group"], "db");
}

/// The upstream "physical switch" is a second Portcullis in the upstream namespace
/// (these kernels have no 802.1Q devices): its uplink is the namespace's eth0, its one
/// guest port a veth whose peer holds the router address.
fn upstream_router(lab: &mut Lab, up: &portcullis_lab::Guest) -> Switchd {
    let cfg = portcullis_lab::trunk_router(up, 10, "198.18.10.254/16").unwrap();
    start_daemon_in(lab, "upstream", &cfg, Some(up))
}

#[test]
fn a_guest_reaches_the_upstream_router_with_the_right_802_1q_tag() {
    let mut lab = lab("uplink", &["ping", "tcpdump"]);
    let up = lab.add_guest("upstream").unwrap();
    let a = lab.add_guest("a").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    let _upstream = upstream_router(&mut lab, &up);
    let cfg = format!(
        "{GROUPS}\n[uplink_policy]\nuplinks = [\"uplink1\"]\nallowed_vlans = [10, 20]\n\n[host.uplinks]\nuplink1 = \"{}\"\n{}",
        up.host_if,
        port("a", &a, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);

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
        "guest → upstream router; switch log:\n{}",
        sw.log_text()
    );
    let icmp = seen.lines_containing("ICMP");
    assert!(
        icmp.len() >= 6,
        "requests and replies on the trunk: {:#?}",
        seen.lines
    );
    for l in &icmp {
        assert!(
            l.contains("vlan 10"),
            "every frame on the trunk is tagged 10: {l}"
        );
    }
    assert!(sw.counter("uplink1", "tx_frames") >= 3);
    assert_eq!(sw.port("a")["uplink"], "uplink1");
}

#[test]
fn a_forged_source_mac_is_dropped_and_counted_and_never_reaches_the_victim() {
    let mut lab = lab("forged", &["tcpdump", "scapy"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let cfg = format!("{GROUPS}{}{}", port("a", &a, "web"), port("b", &b, "web"));
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let (a_mac, b_mac) = (a.mac().unwrap(), b.mac().unwrap());

    let cap = Capture::start(&mut lab, &b, "eth0", &["udp", "port", "9"]).unwrap();
    // Five frames from a forged source, then one honest frame (proves the capture works).
    scapy(
        &a,
        &format!(
            "sendp(Ether(src='52:54:00:de:ad:01', dst='{b_mac}')/IP(src='198.18.10.1', dst='198.18.10.2')/UDP(dport=9)/b'forged', iface='eth0', count=5)\n\
         sendp(Ether(src='{a_mac}', dst='{b_mac}')/IP(src='198.18.10.1', dst='198.18.10.2')/UDP(dport=9)/b'honest', iface='eth0')"
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    let seen = cap.stop(&mut lab).unwrap();
    assert_eq!(
        seen.lines_containing("52:54:00:de:ad:01").len(),
        0,
        "forged frames reached b: {:#?}",
        seen.lines
    );
    assert_eq!(
        seen.lines_containing(&a_mac).len(),
        1,
        "the honest frame arrives: {:#?}",
        seen.lines
    );
    assert_eq!(sw.drops("a", "forged_transmit"), 5);
    assert_eq!(sw.get("/v1/counters")["drops"]["forged_transmit"], 5);
}

#[test]
fn promiscuous_reject_hides_other_guests_unicast_and_accept_shows_it() {
    let mut lab = lab("promisc", &["ping", "tcpdump"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    let nosy = lab.add_guest("nosy").unwrap();
    let tap = lab.add_guest("tap").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let cfg = format!(
        "{GROUPS}{}{}{}{}",
        port("a", &a, "web"),
        port("b", &b, "web"),
        port("nosy", &nosy, "web"),
        port("tap", &tap, "monitor")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    // tcpdump puts both interfaces in promiscuous mode: only the switch decides.
    let c_nosy = Capture::start(&mut lab, &nosy, "eth0", &["icmp"]).unwrap();
    let c_tap = Capture::start(&mut lab, &tap, "eth0", &["icmp"]).unwrap();
    assert_eq!(a.ping("198.18.10.2", 3, 1).unwrap().received, 3);
    let (seen_nosy, seen_tap) = (
        c_nosy.stop(&mut lab).unwrap(),
        c_tap.stop(&mut lab).unwrap(),
    );
    assert_eq!(
        seen_nosy.lines_containing("ICMP").len(),
        0,
        "reject: {:#?}",
        seen_nosy.lines
    );
    assert_eq!(
        seen_tap.lines_containing("ICMP echo request").len(),
        3,
        "accept: {:#?}",
        seen_tap.lines
    );
    assert_eq!(
        seen_tap.lines_containing("ICMP echo reply").len(),
        3,
        "accept: {:#?}",
        seen_tap.lines
    );
    assert_eq!(sw.port("tap")["security"]["promiscuous"], "accept");
}

#[test]
fn a_reported_mac_change_under_reject_blocks_frames_to_the_guest() {
    let mut lab = lab("macchg", &["ping"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let cfg = format!("{GROUPS}{}{}", port("a", &a, "web"), port("b", &b, "web"));
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert_eq!(
        a.ping("198.18.10.2", 2, 1).unwrap().received,
        2,
        "before the change"
    );

    b.set_mac("52:54:00:66:66:66").unwrap();
    let out = sw.cli(&["port", "report-mac", "b", "52:54:00:66:66:66"]);
    assert!(
        out.status.success(),
        "report-mac: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let before = sw.drops("b", "mac_change_blocked");
    assert_eq!(
        a.ping("198.18.10.2", 3, 1).unwrap().received,
        0,
        "after the change nothing reaches b"
    );
    assert!(sw.drops("b", "mac_change_blocked") > before);
    let b_view = sw.port("b");
    assert_eq!(b_view["mac_change_blocked"], true);
    assert_eq!(b_view["effective_mac"], "52:54:00:66:66:66");
    let events = sw.get("/v1/events");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "effective_mac_changed" && e["port"] == "b"),
        "event recorded: {events}"
    );
    // The CLI's table shows it too.
    let out = sw.cli(&["show", "ports"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("blocked:mac-change"), "{text}");
}

/// Removes a TAP the daemon created for the test, even when the test fails.
struct TapGuard(String);
impl Drop for TapGuard {
    fn drop(&mut self) {
        let _ = portcullis_io::delete_persistent_tap(&self.0);
    }
}

/// Plays QEMU on `tap`: attaches as `-netdev tap,ifname=…,script=no` does, sends an
/// ARP request (RFC 826) for 198.18.10.2 from `vm` (again every 250 ms), and returns the (destination,
/// source) MACs of the ARP reply that comes back through the switch, if any.
fn arp_through_tap(tap: &str, vm: portcullis_dataplane::MacAddr) -> Option<([u8; 6], [u8; 6])> {
    use portcullis_io::{RxQueue, TxQueue};
    let (mut rx, mut tx) = portcullis_io::open_tap(tap).expect("attach like QEMU");
    let mut arp = vec![0xff; 6];
    arp.extend_from_slice(&vm.0);
    arp.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    arp.extend_from_slice(&vm.0);
    arp.extend_from_slice(&[198, 18, 10, 1, 0, 0, 0, 0, 0, 0, 198, 18, 10, 2]);
    arp.resize(60, 0);
    // Resent every 250 ms, as a guest's ARP does: the kernel may drop the first
    // reply while it brings the TAP's queue up (the carrier change of the attach).
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut next_send = std::time::Instant::now();
    while std::time::Instant::now() < deadline {
        if std::time::Instant::now() >= next_send {
            tx.push(&arp[..12], None, &arp[12..]).unwrap();
            tx.flush().unwrap();
            next_send += Duration::from_millis(250);
        }
        for f in rx.recv().unwrap().iter() {
            if f.data.len() >= 42 && f.data[12..14] == [0x08, 0x06] && f.data[20..22] == [0, 2] {
                let mut dst = [0; 6];
                let mut src = [0; 6];
                dst.copy_from_slice(&f.data[..6]);
                src.copy_from_slice(&f.data[6..12]);
                return Some((dst, src));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Waits until the API shows `port` in `state`.
fn wait_state(sw: &Switchd, port: &str, state: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sw.port(port)["state"] != state {
        assert!(
            std::time::Instant::now() < deadline,
            "{port} never became {state}: {}",
            sw.port(port)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const VM_MAC: &str = "52:54:00:12:34:56";

fn tap_lab(tag: &str) -> (Lab, Switchd, String, TapGuard, portcullis_lab::Guest) {
    let mut lab = lab(tag, &[]);
    let b = lab.add_guest("b").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let tap = format!("{}t0", lab.id());
    let guard = TapGuard(tap.clone());
    assert!(!portcullis_io::interface_exists(&tap));
    let cfg = format!(
        "{GROUPS}\n[[host.port]]\nname = \"vm\"\ninterface = \"{tap}\"\nport_group = \"web\"\nmac = \"{VM_MAC}\"\ntap = true\n{}",
        port("b", &b, "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    (lab, sw, tap, guard, b)
}

#[test]
fn a_qemu_style_tap_port_is_created_and_switched() {
    let (_lab, sw, tap, _guard, b) = tap_lab("tap");
    assert!(
        portcullis_io::interface_exists(&tap),
        "the daemon created the TAP"
    );
    // No VM holds the TAP yet: no carrier, so the port is link-down (out of the
    // floods; `portcullis_port_up` is 0, as it follows the state).
    wait_state(&sw, "vm", "link-down");
    let vm: portcullis_dataplane::MacAddr = VM_MAC.parse().unwrap();
    let b_mac: portcullis_dataplane::MacAddr = b.mac().unwrap().parse().unwrap();
    let (dst, src) = arp_through_tap(&tap, vm).unwrap_or_else(|| {
        panic!(
            "b's kernel answered the VM's ARP request\n{}\n{}",
            sw.port("vm"),
            sw.log_text()
        )
    });
    assert_eq!((dst, src), (vm.0, b_mac.0));
    assert!(sw.counter("vm", "rx_frames") >= 1);
    assert!(sw.counter("vm", "tx_frames") >= 1);
    assert_eq!(sw.port("vm")["interface"], tap.as_str());
    // The VM went away (QEMU closed the TAP): link-down again, and an event says so.
    wait_state(&sw, "vm", "link-down");
    let changes: Vec<serde_json::Value> = sw
        .get("/v1/events")
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "link_state_changed" && e["port"] == "vm")
        .cloned()
        .collect();
    assert!(
        changes.iter().any(|e| e["detail"]["up"] == true)
            && changes.last().is_some_and(|e| e["detail"]["up"] == false),
        "{changes:?}"
    );
}

#[test]
fn a_guest_whose_veth_peer_is_down_is_link_down_until_it_comes_back() {
    let mut lab = lab("carrier", &["ping"]);
    let a = lab.add_guest("a").unwrap();
    let b = lab.add_guest("b").unwrap();
    a.set_addr("198.18.10.1/16").unwrap();
    b.set_addr("198.18.10.2/16").unwrap();
    let cfg = format!("{GROUPS}{}{}", port("a", &a, "web"), port("b", &b, "web"));
    let sw = start_daemon(&mut lab, "sw", &cfg);
    wait_state(&sw, "b", "up");
    assert_eq!(a.ping("198.18.10.2", 3, 1).unwrap().received, 3);

    // The guest's side goes down: the host end loses carrier, and the port with it.
    b.run("ip", &["link", "set", "dev", &b.guest_if, "down"])
        .unwrap();
    wait_state(&sw, "b", "link-down");
    let changes = |sw: &Switchd| -> Vec<bool> {
        sw.get("/v1/events")
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == "link_state_changed" && e["port"] == "b")
            .map(|e| e["detail"]["up"].as_bool().unwrap())
            .collect()
    };
    assert_eq!(changes(&sw).last(), Some(&false), "an event says so");
    // Out of the floods: a's ARP for b reaches no one, and nothing is sent to b.
    let tx_before = sw.counter("b", "tx_frames");
    assert_eq!(a.ping("198.18.10.2", 1, 1).unwrap().received, 0);
    assert_eq!(sw.counter("b", "tx_frames"), tx_before);

    // Back up: the port follows, and traffic flows again.
    b.run("ip", &["link", "set", "dev", &b.guest_if, "up"])
        .unwrap();
    wait_state(&sw, "b", "up");
    assert_eq!(changes(&sw).last(), Some(&true));
    assert!(a.ping("198.18.10.2", 5, 1).unwrap().received >= 3);
}

#[test]
fn a_port_whose_interface_vanishes_goes_link_down_and_is_reattached_when_it_returns() {
    let (_lab, sw, tap, _guard, b) = tap_lab("vanish");
    Lab::require_tools(&["ping"]).unwrap();
    let vm: portcullis_dataplane::MacAddr = VM_MAC.parse().unwrap();
    // The VM stops: its TAP disappears, and the port waits for it (no link, no
    // interface).
    portcullis_io::delete_persistent_tap(&tap).unwrap();
    wait_state(&sw, "vm", "no-interface");
    assert!(
        sw.get("/v1/events")
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "link_state_changed" && e["port"] == "vm"),
        "link change reported"
    );
    // While it is away it is out of VLAN 10's floods: b's ARP for it goes nowhere.
    let tx_before = sw.counter("vm", "tx_frames");
    let out = b
        .run_status("ping", &["-c", "1", "-W", "1", "198.18.10.1"])
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(sw.counter("vm", "tx_frames"), tx_before);
    // The VM starts again: same TAP name; the switch reattaches within its recheck
    // (still link-down until QEMU holds the TAP), and switching resumes at once.
    portcullis_io::create_persistent_tap(&tap, None).unwrap();
    let b_mac: portcullis_dataplane::MacAddr = b.mac().unwrap().parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let reply = loop {
        // Attached on each try, as QEMU does once: the switch may not have
        // reopened the interface yet.
        if let Some(r) = arp_through_tap(&tap, vm) {
            break Some(r);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
    };
    let (dst, src) = reply.expect("switching resumes after reattach");
    assert_eq!((dst, src), (vm.0, b_mac.0));
}
