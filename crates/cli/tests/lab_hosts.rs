//! Lab test of `portcullis hosts` and duplicate IP detection with real programs: six
//! guests on two subnets in two VLANs behind the switch, an upstream router reaching
//! both VLANs over the 802.1Q trunk; what the switch lists per subnet must be exactly
//! what `nmap -sn` finds from the router's side. Then one guest takes another's
//! address and announces it (gratuitous ARP): one `ip_conflict` event naming both
//! MACs, which `portcullis show events --follow --json` prints too.

mod common;

use common::*;
use portcullis_lab::{Guest, Lab};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

const SUBNETS: [(u16, &str); 2] = [(10, "198.18.10"), (20, "198.18.20")];
const GUESTS_PER_SUBNET: u8 = 3;
/// The router's address in each subnet (host part).
const ROUTER: u8 = 254;

/// The upstream "physical switch" (a second Portcullis in the upstream namespace,
/// as in `portcullis_lab::trunk_router`: these kernels have no 802.1Q devices) with
/// one router port per VLAN: r0 (VLAN 10) ↔ r1 198.18.10.254/24, r2 (VLAN 20) ↔ r3
/// 198.18.20.254/24, both in the upstream namespace, trunked over its eth0.
fn upstream_router(lab: &mut Lab, up: &Guest) -> Switchd {
    let mut cfg = String::from(
        "[switch]\nname = \"upstream\"\n\n[uplink_policy]\nuplinks = [\"trunk\"]\nallowed_vlans = [10, 20]\n\n[host.uplinks]\ntrunk = \"eth0\"\n",
    );
    for (i, (vid, net)) in SUBNETS.iter().enumerate() {
        let (a, b) = (format!("r{}", 2 * i), format!("r{}", 2 * i + 1));
        up.run(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        )
        .unwrap();
        up.run("ip", &["link", "set", &a, "up"]).unwrap();
        up.run("ip", &["link", "set", &b, "up"]).unwrap();
        up.add_addr(&b, &format!("{net}.{ROUTER}/24")).unwrap();
        cfg.push_str(&format!(
            "\n[[port_group]]\nname = \"r{vid}\"\nvlan = {vid}\n\n[[host.port]]\nname = \"r{vid}\"\ninterface = \"{a}\"\nport_group = \"r{vid}\"\n"
        ));
    }
    start_daemon_in(lab, "upstream", &cfg, Some(up))
}

/// IPv4 addresses (and MACs) `nmap -sn` finds up, per /24, without the scanner's own.
fn nmap_hosts(up: &Guest) -> BTreeMap<String, BTreeMap<String, String>> {
    let targets: Vec<String> = SUBNETS.iter().map(|(_, n)| format!("{n}.0/24")).collect();
    let mut args = vec!["-sn", "-n"];
    args.extend(targets.iter().map(String::as_str));
    let out = up.run("nmap", &args).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut found: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(ip) = line.strip_prefix("Nmap scan report for ") {
            current = Some(ip.trim().to_string());
        } else if let (Some(ip), Some(rest)) = (&current, line.strip_prefix("MAC Address: ")) {
            // The scanner's own address has no "MAC Address" line: it is left out.
            let mac = rest.split_whitespace().next().unwrap_or("").to_lowercase();
            let subnet = format!("{}.0/24", ip.rsplit_once('.').unwrap().0);
            found.entry(subnet).or_default().insert(ip.clone(), mac);
        }
    }
    assert!(!found.is_empty(), "nmap found nothing:\n{text}");
    found
}

/// `portcullis hosts --json`: per subnet, address → MAC.
fn switch_hosts(
    sw: &Switchd,
) -> (
    serde_json::Value,
    BTreeMap<String, BTreeMap<String, String>>,
) {
    let out = sw.cli(&["hosts", "--json"]);
    assert!(
        out.status.success(),
        "portcullis hosts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut by_subnet: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for vlan in v["vlans"].as_array().unwrap() {
        for s in vlan["subnets"].as_array().unwrap() {
            let hosts = s["hosts"].as_array().unwrap();
            assert_eq!(s["count"].as_u64().unwrap() as usize, hosts.len(), "{s}");
            let m = by_subnet
                .entry(s["subnet"].as_str().unwrap().into())
                .or_default();
            for h in hosts {
                m.insert(
                    h["ip"].as_str().unwrap().into(),
                    h["mac"].as_str().unwrap().into(),
                );
            }
        }
    }
    (v, by_subnet)
}

/// Polls `GET /v1/events` until an event satisfies `ok`.
fn wait_for_event(sw: &Switchd, ok: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let t0 = Instant::now();
    loop {
        let events = sw.get("/v1/events");
        if let Some(e) = events.as_array().unwrap().iter().find(|e| ok(e)) {
            return e.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no such event: {events:#}\n--- daemon log ---\n{}",
            sw.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hosts_per_subnet_match_nmap_and_a_duplicate_ip_is_reported_once_with_both_macs() {
    let mut lab = lab("hosts", &["ping", "nmap"]);
    let up = lab.add_guest("upstream").unwrap();
    up.disable_ipv6().unwrap();
    let _upstream = upstream_router(&mut lab, &up);

    let mut cfg = format!(
        "[switch]\nname = \"hosts\"\n\n[uplink_policy]\nuplinks = [\"uplink1\"]\nallowed_vlans = [10, 20]\n\n[[port_group]]\nname = \"v10\"\nvlan = 10\n\n[[port_group]]\nname = \"v20\"\nvlan = 20\n\n[host.uplinks]\nuplink1 = \"{}\"\n",
        up.host_if
    );
    let mut guests: Vec<(Guest, String, String)> = Vec::new(); // guest, ip, mac
    for (vid, net) in SUBNETS {
        for k in 1..=GUESTS_PER_SUBNET {
            let name = format!("g{vid}x{k}");
            let g = lab.add_guest(&name).unwrap();
            g.disable_ipv6().unwrap();
            let ip = format!("{net}.{k}");
            g.set_addr(&format!("{ip}/24")).unwrap();
            cfg.push_str(&port(&name, &g, &format!("v{vid}")));
            let mac = g.mac().unwrap();
            guests.push((g, ip, mac));
        }
    }
    let sw = start_daemon(&mut lab, "sw", &cfg);

    // Every guest ARPs for its router (and reaches it through both switches).
    for (g, ip, _) in &guests {
        let router = format!("{}.{ROUTER}", ip.rsplit_once('.').unwrap().0);
        let p = g.ping(&router, 1, 2).unwrap();
        assert_eq!(
            p.received,
            1,
            "{ip} → {router}\n--- switch log ---\n{}",
            sw.log_text()
        );
    }

    let scanned = nmap_hosts(&up);
    let (view, listed) = switch_hosts(&sw);
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        scanned.keys().collect::<Vec<_>>(),
        "the same subnets: switch {view:#}"
    );
    for (subnet, found) in &scanned {
        assert_eq!(
            listed[subnet].len(),
            found.len(),
            "{subnet}: hosts listed vs found by nmap"
        );
        assert_eq!(
            &listed[subnet], found,
            "{subnet}: the same addresses and MACs"
        );
    }
    let expected: BTreeSet<String> = guests.iter().map(|(_, ip, _)| ip.clone()).collect();
    let all: BTreeSet<String> = listed.values().flat_map(|m| m.keys().cloned()).collect();
    assert_eq!(all, expected, "every guest, nothing else");
    for vlan in view["vlans"].as_array().unwrap() {
        assert_eq!(
            vlan["count"].as_u64().unwrap(),
            u64::from(GUESTS_PER_SUBNET),
            "{vlan:#}"
        );
        assert_eq!(vlan["mac_only"], serde_json::json!([]), "{vlan:#}");
    }
    assert_eq!(view["table"]["entries"].as_u64().unwrap(), 6);
    let text = String::from_utf8(sw.cli(&["hosts", "--vlan", "20"]).stdout).unwrap();
    assert!(
        text.starts_with("VLAN 20: 3 hosts\n  198.18.20.0/24: 3 hosts\n"),
        "{text}"
    );
    assert!(!text.contains("VLAN 10"), "{text}");

    // g10x2 takes g10x1's address and announces it.
    let (g1, ip1, mac1) = &guests[0];
    let (g2, _, mac2) = &guests[1];
    let _ = g1;
    g2.run("ip", &["addr", "add", &format!("{ip1}/24"), "dev", "eth0"])
        .unwrap();
    scapy(
        g2,
        &format!(
            "sendp(Ether(src='{mac2}', dst='ff:ff:ff:ff:ff:ff')/ARP(op=1, hwsrc='{mac2}', psrc='{ip1}', hwdst='00:00:00:00:00:00', pdst='{ip1}'), iface='eth0', count=3, inter=0.1)"
        ),
    );
    let conflict = wait_for_event(&sw, |e| e["event"] == "ip_conflict");
    let d = &conflict["detail"];
    assert_eq!(conflict["port"], "g10x2", "{conflict}");
    assert_eq!(d["ip"], ip1.as_str(), "{conflict}");
    assert_eq!(d["vid"], 10);
    assert_eq!(d["mac"], mac2.as_str(), "the claimant: {conflict}");
    assert_eq!(d["owner"], "g10x1", "{conflict}");
    assert_eq!(d["owner_mac"], mac1.as_str(), "the holder: {conflict}");
    let conflicts = sw.get("/v1/events");
    let n = conflicts
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "ip_conflict")
        .count();
    assert_eq!(n, 1, "three announcements, one event: {conflicts:#}");
    assert!(
        sw.port("g10x2")["counters"]["observed"]["ip_conflict"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(sw.drops("g10x2", "ip_conflict"), 0, "detection, not a drop");

    // `show events --follow --json` for a second prints it, one JSON object per line.
    let mut follow = std::process::Command::new(EXE)
        .args(["show", "events", "--follow", "--json"])
        .env("PORTCULLIS_SOCKET", &sw.socket)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    follow.kill().unwrap();
    let out = follow.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let printed: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|e| e["event"] == "ip_conflict")
        .collect();
    assert_eq!(
        printed.len(),
        1,
        "followed:\n{text}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(printed[0]["detail"]["mac"], mac2.as_str());
    assert_eq!(printed[0]["detail"]["owner_mac"], mac1.as_str());
    // Its time is RFC 3339 in UTC, as the audit log writes it.
    let time = printed[0]["time"].as_str().unwrap();
    assert!(
        portcullis_control::audit::parse_rfc3339(time).is_some() && time.ends_with('Z'),
        "{time}"
    );
    let seqs: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "each event once, in order: {seqs:?}"
    );
}
