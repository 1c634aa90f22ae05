//! Lab tests of port security and storm control with real programs: macof (dsniff)
//! floods, a guest stealing another's MAC with `ip link set address`, scapy frames,
//! tcpdump counting what arrives, and daemon restarts for sticky MACs.

mod common;

use common::*;
use portcullis_lab::{Capture, Guest, Lab};
use std::time::Duration;

/// Port groups: "web" (no port security), "guarded" (max 1, `violation`),
/// "nested" (forged transmits accepted, max 2, `learning`), "stormy" (broadcast
/// capped at 20 pps).
fn groups(violation: &str, learning: &str) -> String {
    format!(
        r#"
[switch]
name = "ps"
mac_table_size = 64

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "guarded"
vlan = 10
port_security = {{ max_macs = 1, violation = "{violation}" }}

[[port_group]]
name = "nested"
vlan = 10
security = {{ forged_transmits = "accept" }}
port_security = {{ max_macs = 2, violation = "restrict", {learning} }}

[[port_group]]
name = "stormy"
vlan = 10
storm_control = {{ broadcast_pps = 20 }}
"#
    )
}

fn guests(lab: &mut Lab, names: &[&str]) -> Vec<Guest> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let g = lab.add_guest(n).unwrap();
            g.set_addr(&format!("198.18.10.{}/16", i + 1)).unwrap();
            g
        })
        .collect()
}

fn port_security(sw: &Switchd, port: &str) -> serde_json::Value {
    sw.get("/v1/port-security")
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["port"] == port)
        .cloned()
        .unwrap_or_else(|| panic!("no port security on {port}"))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_macof_flood_error_disables_the_attacker_while_others_ping_without_loss() {
    let mut lab = lab("macof", &["ping", "macof"]);
    let g = guests(&mut lab, &["a", "b", "mallory"]);
    let cfg = format!(
        "{}{}{}{}",
        groups("shutdown", ""),
        port("a", &g[0], "web"),
        port("b", &g[1], "web"),
        port("mallory", &g[2], "guarded")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);

    // a pings b through the whole flood.
    let ping = g[0]
        .command("ping")
        .args(["-n", "-i", "0.05", "-c", "60", "-W", "1", "198.18.10.2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let flood = g[2]
        .run_status("macof", &["-i", "eth0", "-n", "20000"])
        .unwrap();
    assert!(
        flood.status.success(),
        "macof: {}",
        String::from_utf8_lossy(&flood.stderr)
    );
    let out = ping.wait_with_output().unwrap();
    let summary = portcullis_lab::parse_ping_summary(&String::from_utf8_lossy(&out.stdout))
        .expect("ping summary");
    assert_eq!(
        (summary.sent, summary.received),
        (60, 60),
        "0% loss during the flood"
    );

    let m = sw.port("mallory");
    assert_eq!(m["state"], "err-disabled");
    assert_eq!(m["err_disabled"], "port_security");
    assert!(
        m["counters"]["rx_drops"]["err_disabled"].as_u64().unwrap() > 1000,
        "{m}"
    );
    assert_eq!(
        m["counters"]["rx_drops"]["secure_mac_limit"], 1,
        "one violation, then the port is down"
    );
    let macs = sw.get("/v1/mac");
    assert_eq!(
        macs["entries"].as_array().unwrap().len(),
        3,
        "the table holds a, b, mallory only: {macs}"
    );
    let ps = port_security(&sw, "mallory");
    assert_eq!(ps["violations"], 1);
    assert!(
        ps["last_violation"]
            .as_str()
            .unwrap()
            .ends_with("in VLAN 10")
    );
    let events = sw.get("/v1/events");
    assert!(
        events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "err_disabled" && e["port"] == "mallory")
    );

    // The operator recovers the port; mallory, back on its own MAC, can talk again.
    let out = sw.cli(&["port", "recover", "mallory"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("recovered"),
        "{out:?}"
    );
    assert_eq!(sw.port("mallory")["state"], "up");
    assert_eq!(g[2].ping("198.18.10.1", 2, 1).unwrap().received, 2);
    let table = String::from_utf8(sw.cli(&["show", "port-security"]).stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("mallory") && l.contains("shutdown")),
        "{table}"
    );
}

#[test]
fn under_protect_a_flood_is_dropped_and_the_port_stays_up() {
    let mut lab = lab("protect", &["ping", "macof"]);
    let g = guests(&mut lab, &["a", "b", "mallory"]);
    let cfg = format!(
        "{}{}{}{}",
        groups("protect", ""),
        port("a", &g[0], "web"),
        port("b", &g[1], "web"),
        port("mallory", &g[2], "guarded")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let flood = g[2]
        .run_status("macof", &["-i", "eth0", "-n", "3000"])
        .unwrap();
    assert!(flood.status.success());
    // macof has sent them all; the switch may still have some in the port's ring
    // (and, with other lab tests on the machine, the kernel may have dropped some
    // when the ring was full: counted apart, `io.rx_kernel_drops`).
    let kernel_drops = |m: &serde_json::Value| m["io"]["rx_kernel_drops"].as_u64().unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = sw.port("mallory");
        if m["counters"]["rx_frames"].as_u64().unwrap_or(0) + kernel_drops(&m) >= 3000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the switch never received (nor the kernel dropped) all 3000 flood frames: {m}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = sw.port("mallory");
    assert_eq!(m["state"], "up");
    // macof draws random source MACs: about half are group addresses (refused as
    // invalid sources), the rest are new MACs over the limit.
    let drops = &m["counters"]["rx_drops"];
    let limit = drops["secure_mac_limit"].as_u64().unwrap_or(0);
    let invalid = drops["invalid_source_mac"].as_u64().unwrap_or(0);
    let lost = kernel_drops(&m);
    assert!(
        limit + invalid <= 3000 && limit + invalid + lost >= 3000 && lost < 1000,
        "every flood frame that reached the switch dropped: {m}"
    );
    assert!(
        limit > 1000,
        "most unicast flood frames are limit violations: {m}"
    );
    assert_eq!(sw.get("/v1/mac")["entries"].as_array().unwrap().len(), 3);
    assert_eq!(g[0].ping("198.18.10.2", 3, 1).unwrap().received, 3);
    assert_eq!(
        g[2].ping("198.18.10.1", 2, 1).unwrap().received,
        2,
        "mallory's own MAC still works"
    );
}

#[test]
fn a_guest_taking_anothers_mac_is_a_mac_move_and_the_owner_keeps_its_traffic() {
    let mut lab = lab("macmove", &["ping"]);
    let g = guests(&mut lab, &["a", "b", "c"]);
    let cfg = format!(
        "{}{}{}{}",
        groups("restrict", ""),
        port("a", &g[0], "guarded"),
        port("b", &g[1], "guarded"),
        port("c", &g[2], "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let a_mac = g[0].mac().unwrap();
    g[1].set_mac(&a_mac).unwrap();
    // b, now claiming a's MAC, tries to talk; every frame is a MAC move.
    let _ = g[1].ping("198.18.10.3", 2, 1);
    let moves = sw.drops("b", "secure_mac_move");
    assert!(moves > 0, "{}", sw.port("b"));
    assert!(
        sw.get("/v1/events")
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "port_security_violation"
                && e["port"] == "b"
                && e["detail"]["kind"] == "mac_move")
    );
    // a keeps its MAC and its traffic.
    assert_eq!(g[2].ping("198.18.10.1", 3, 1).unwrap().received, 3);
    let entry = sw.get("/v1/mac")["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["mac"] == a_mac.as_str())
        .cloned()
        .unwrap();
    assert_eq!(entry["port"], "a");
}

fn send_from(g: &Guest, src: &str, count: u32) {
    scapy(
        g,
        &format!(
            "sendp(Ether(src='{src}', dst='ff:ff:ff:ff:ff:ff')/IP(src='198.18.10.200', dst='198.18.10.1')/UDP(dport=9), iface='eth0', count={count})"
        ),
    );
}

#[test]
fn sticky_macs_survive_a_daemon_restart_and_a_new_mac_is_still_refused() {
    let mut lab = lab("sticky", &["scapy"]);
    let g = guests(&mut lab, &["vm", "peer"]);
    let cfg = format!(
        "{}{}{}",
        groups("restrict", "sticky = true"),
        port("vm", &g[0], "nested"),
        port("peer", &g[1], "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    send_from(&g[0], "52:54:00:aa:00:01", 1);
    wait_until("the sticky MAC", || port_security(&sw, "vm")["count"] == 2);
    let kinds = |sw: &Switchd| -> Vec<(String, String)> {
        port_security(sw, "vm")["secure_macs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["mac"].as_str().unwrap().to_string(),
                    m["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    assert!(
        kinds(&sw).contains(&("52:54:00:aa:00:01".into(), "sticky".into())),
        "{:?}",
        kinds(&sw)
    );

    // Restart the daemon on the same state directory.
    let status = lab
        .kill_with(sw.pid, libc::SIGTERM, Duration::from_secs(5))
        .unwrap();
    assert!(status.success());
    let sw = start_daemon(&mut lab, "sw", &cfg);
    assert!(
        kinds(&sw).contains(&("52:54:00:aa:00:01".into(), "sticky".into())),
        "restored: {:?}",
        kinds(&sw)
    );
    assert_eq!(port_security(&sw, "vm")["count"], 2);
    // The port is full: a new MAC is refused.
    send_from(&g[0], "52:54:00:aa:00:02", 3);
    wait_until("the refusal", || sw.drops("vm", "secure_mac_limit") == 3);
    // Frames to the sticky MAC are delivered to vm straight away.
    let cap = Capture::start(
        &mut lab,
        &g[0],
        "eth0",
        &["ether", "dst", "52:54:00:aa:00:01"],
    )
    .unwrap();
    scapy(
        &g[1],
        &format!(
            "sendp(Ether(src='{}', dst='52:54:00:aa:00:01')/IP(src='198.18.10.2', dst='198.18.10.200')/UDP(dport=9), iface='eth0', count=2)",
            g[1].mac().unwrap()
        ),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cap.stop(&mut lab).unwrap().frames.len(), 2);
}

#[test]
fn an_inactive_dynamic_secure_mac_is_released_after_its_aging_time() {
    let mut lab = lab("aging", &["scapy"]);
    let g = guests(&mut lab, &["vm"]);
    let cfg = format!(
        "{}{}",
        groups("restrict", "aging = \"inactivity\", aging_secs = 2"),
        port("vm", &g[0], "nested")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    send_from(&g[0], "52:54:00:aa:00:07", 1);
    wait_until("the secure MAC", || port_security(&sw, "vm")["count"] == 2);
    // Quiet for longer than 2 s: released by the once-a-second sweep.
    wait_until("aging", || port_security(&sw, "vm")["count"] == 1);
    assert!(
        sw.get("/v1/events")
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "secure_mac_aged" && e["detail"]["mac"] == "52:54:00:aa:00:07")
    );
}

#[test]
fn storm_control_caps_a_broadcast_flood_at_the_other_guests() {
    let mut lab = lab("storm", &["scapy", "tcpdump"]);
    let g = guests(&mut lab, &["storm", "victim"]);
    let cfg = format!(
        "{}{}{}",
        groups("restrict", ""),
        port("storm", &g[0], "stormy"),
        port("victim", &g[1], "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    let src = g[0].mac().unwrap();
    let cap = Capture::start(
        &mut lab,
        &g[1],
        "eth0",
        &["ether", "src", &src, "and", "udp"],
    )
    .unwrap();
    let started = std::time::Instant::now();
    send_from(&g[0], &src, 400);
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let seen = cap.stop(&mut lab).unwrap().frames.len() as f64;
    // One second of burst plus 20 per second of the flood, never the 400 sent.
    assert!(
        seen >= 20.0 && seen <= 20.0 * (secs + 1.0) + 2.0,
        "{seen} frames in {secs:.2} s"
    );
    let dropped = sw.drops("storm", "storm_control") as f64;
    assert_eq!(
        dropped + seen,
        400.0,
        "every frame either passed or was dropped as storm_control"
    );
}

#[test]
fn a_mac_acl_denying_ipv6_blocks_ping6_but_not_ipv4_and_counts_hits() {
    let mut lab = lab("macacl", &["ping"]);
    let g = guests(&mut lab, &["a", "b"]);
    let cfg = format!(
        r#"{}
[[port_group]]
name = "v4only"
vlan = 10
mac_acl_in = "no-ipv6"

[[mac_acl]]
name = "no-ipv6"
rules = [
  {{ action = "deny", ethertype = "ipv6" }},
  {{ action = "permit" }},
]
{}{}"#,
        groups("restrict", ""),
        port("a", &g[0], "v4only"),
        port("b", &g[1], "web")
    );
    let sw = start_daemon(&mut lab, "sw", &cfg);
    // b's IPv6 link-local address, once duplicate address detection is done.
    let mut b6 = String::new();
    wait_until("b's link-local address", || {
        let out = g[1]
            .run(
                "ip",
                &["-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"],
            )
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("tentative") {
            return false;
        }
        b6 = text
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .unwrap_or("")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        !b6.is_empty()
    });
    let v6 = g[0]
        .run_status(
            "ping",
            &["-6", "-n", "-c", "2", "-W", "1", &format!("{b6}%eth0")],
        )
        .unwrap();
    assert!(
        !v6.status.success(),
        "ping -6 must fail: {}",
        String::from_utf8_lossy(&v6.stdout)
    );
    assert_eq!(
        g[0].ping("198.18.10.2", 3, 1).unwrap().received,
        3,
        "IPv4 passes"
    );

    let acls = sw.get("/v1/mac-acls");
    let acl = &acls[0];
    assert_eq!(acl["name"], "no-ipv6");
    assert_eq!(acl["bound_in"][0], "a");
    assert!(
        acl["rules"][0]["hits"].as_u64().unwrap() >= 2,
        "the deny matched ND/echo: {acl}"
    );
    assert!(
        acl["rules"][1]["hits"].as_u64().unwrap() >= 4,
        "the permit matched a's ARP request and its echo requests: {acl}"
    );
    assert_eq!(
        sw.drops("a", "mac_acl_deny"),
        acl["rules"][0]["hits"].as_u64().unwrap()
    );
    let text = String::from_utf8(sw.cli(&["show", "mac-acl"]).stdout).unwrap();
    assert!(
        text.contains("mac acl no-ipv6 (in: a; out: -)") && text.contains("deny ethertype 0x86dd"),
        "{text}"
    );
}
