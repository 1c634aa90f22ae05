//! Lab test of RA guard with real programs: radvd on a trusted router port gives
//! the guests SLAAC addresses and a default route through the switch; scapy rogue
//! Router Advertisements from an untrusted guest — plain, behind Hop-by-Hop and
//! Destination Options headers, and fragmented with the ICMPv6 header in the second
//! fragment — are dropped, each counted under its reason, and the victim's routes
//! and addresses are unchanged. IPv6 only from fd00:198:18::/48 and link-local.

mod common;

use common::*;
use portcullis_lab::{Guest, Lab};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[switch]
name = "raguard"

[[port_group]]
name = "routers"
vlan = 10
ra_guard = { trusted = true }

[[port_group]]
name = "guests"
vlan = 10
ra_guard = {}
"#;

const PREFIX: &str = "fd00:198:18:10::/64";
const ROGUE_PREFIX: &str = "fd00:198:18:66::";

/// Starts radvd in `g` advertising [`PREFIX`] and a default route (tracked by PID).
fn radvd(lab: &mut Lab, g: &Guest) {
    g.run("sysctl", &["-q", "-w", "net.ipv6.conf.all.forwarding=1"])
        .unwrap();
    let dir = lab.scratch_dir().unwrap();
    let conf = dir.join(format!("{}-radvd.conf", g.name));
    std::fs::write(
        &conf,
        format!(
            "interface eth0 {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n  AdvDefaultLifetime 1800;\n  prefix {PREFIX} {{ AdvOnLink on; AdvAutonomous on; }};\n}};\n"
        ),
    )
    .unwrap();
    let pid = dir.join(format!("{}-radvd.pid", g.name));
    let mut cmd = g.command("radvd");
    cmd.arg("-n")
        .arg("-C")
        .arg(&conf)
        .arg("-p")
        .arg(&pid)
        .args(["-m", "stderr"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    lab.spawn(cmd).unwrap();
}

fn text(g: &Guest, args: &[&str]) -> String {
    String::from_utf8_lossy(&g.run("ip", args).unwrap().stdout).to_string()
}

/// `ip -6 route` without the lifetimes that count down.
fn routes(g: &Guest) -> Vec<String> {
    text(g, &["-6", "route", "show"])
        .lines()
        .map(|l| {
            let mut out = Vec::new();
            let mut skip = false;
            for w in l.split_whitespace() {
                if skip {
                    skip = false;
                } else if w == "expires" {
                    skip = true;
                } else {
                    out.push(w);
                }
            }
            out.join(" ")
        })
        .collect()
}

/// The victim's SLAAC address and default route, waited for (radvd's first RAs).
fn wait_for_slaac(g: &Guest, sw: &Switchd) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let addrs = text(g, &["-6", "addr", "show", "dev", "eth0", "scope", "global"]);
        let default = text(g, &["-6", "route", "show", "default"]);
        if addrs.contains("fd00:198:18:10:") && default.contains("via fe80::") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: no SLAAC address and default route\naddr: {addrs}\nroute: {default}\nports: {}\nlog: {}",
            g.name,
            sw.get("/v1/ports"),
            sw.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn radvd_serves_the_guests_and_rogue_ras_are_dropped_with_their_reasons() {
    let mut lab = lab("raguard", &["radvd", "scapy", "ping"]);
    let names = [("r", "routers"), ("a", "guests"), ("v", "guests")];
    let g: Vec<Guest> = names
        .iter()
        .map(|(n, _)| lab.add_guest(n).unwrap())
        .collect();
    let mut cfg = CONFIG.to_string();
    for ((n, group), guest) in names.iter().zip(&g) {
        cfg.push_str(&port(n, guest, group));
    }
    let sw = start_daemon(&mut lab, "sw", &cfg);
    radvd(&mut lab, &g[0]);
    wait_for_slaac(&g[2], &sw);
    wait_for_slaac(&g[1], &sw);
    let before = routes(&g[2]);
    let attacker_mac = g[1].mac().unwrap();

    // The rogue RA: a default route and a prefix of its own, sent three ways.
    let ra = format!(
        "ICMPv6ND_RA(routerlifetime=1800)/ICMPv6NDOptPrefixInfo(prefix='{ROGUE_PREFIX}', prefixlen=64)/ICMPv6NDOptSrcLLAddr(lladdr='{attacker_mac}')"
    );
    let script = format!(
        r#"
e = Ether(src='{attacker_mac}', dst='33:33:00:00:00:01')
ip = IPv6(src='fe80::bad', dst='ff02::1', hlim=255)
sendp(e/ip/{ra}, iface='eth0')
sendp(e/ip/IPv6ExtHdrHopByHop()/IPv6ExtHdrDestOpt()/{ra}, iface='eth0')
# Fragmented: Destination Options in the first fragment, the RA in the second.
whole = bytes(ip/IPv6ExtHdrDestOpt()/{ra})
part = whole[40:]
f1 = IPv6(src='fe80::bad', dst='ff02::1', hlim=255, nh=44)/IPv6ExtHdrFragment(nh=60, m=1, offset=0, id=77)/Raw(part[:8])
f2 = IPv6(src='fe80::bad', dst='ff02::1', hlim=255, nh=44)/IPv6ExtHdrFragment(nh=60, m=0, offset=1, id=77)/Raw(part[8:])
sendp(e/f1, iface='eth0')
sendp(e/f2, iface='eth0')
"#
    );
    scapy(&g[1], &script);
    std::thread::sleep(Duration::from_secs(2));

    let reasons = |r: &str| sw.drops("a", r);
    assert_eq!(
        (
            reasons("ra_guard_router_message"),
            reasons("ipv6_incomplete_chain")
        ),
        (2, 1),
        "ports: {}",
        sw.get("/v1/ports")
    );
    // The victim kept its routes and took no address from the rogue prefix.
    assert_eq!(routes(&g[2]), before);
    let addrs = text(&g[2], &["-6", "addr", "show", "dev", "eth0"]);
    assert!(!addrs.contains("fd00:198:18:66:"), "{addrs}");
    assert!(
        !text(&g[2], &["-6", "route", "show"]).contains("fe80::bad"),
        "rogue default route installed"
    );
    // The router's RAs still reach everyone: nothing dropped on its port.
    let r = &sw.port("r")["counters"]["rx_drops"];
    assert!(
        r.as_object().is_none_or(|m| m.values().all(|v| v == 0)),
        "{r}"
    );
}
