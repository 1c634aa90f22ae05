//! Lab test of RA guard with real programs: radvd on a trusted router port gives
//! the guests SLAAC addresses and a default route through the switch; scapy rogue
//! Router Advertisements from an untrusted guest — plain, behind Hop-by-Hop and
//! Destination Options headers, and fragmented with the ICMPv6 header in the second
//! fragment — are dropped, each counted under its reason, and the victim's routes
//! and addresses are unchanged. Rogue ICMPv6 Redirects (plain and behind a
//! Hop-by-Hop header) are dropped too: the victim keeps routing through the router
//! and its neighbour cache never maps the router to the rogue's MAC. The victim
//! pings the router over IPv6 with 0 drops before and after every attack. IPv6
//! only from fd00:198:18::/48 and link-local.

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
/// The router's global address (static, in [`PREFIX`]).
const ROUTER: &str = "fd00:198:18:10::1";
/// An off-link destination, reached through the default route.
const FAR: &str = "fd00:198:18:99::1";
/// Another, for the Redirect that names the router at the rogue's MAC.
const FAR2: &str = "fd00:198:18:98::1";

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

/// The victim's SLAAC address (past DAD) and default route, waited for (radvd's
/// first RAs).
fn wait_for_slaac(g: &Guest, sw: &Switchd) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Past duplicate address detection (a tentative address receives nothing).
        let addrs = text(
            g,
            &[
                "-6",
                "addr",
                "show",
                "dev",
                "eth0",
                "scope",
                "global",
                "-tentative",
            ],
        );
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

/// The lab: the router `r` (radvd, trusted) and the guests `a` (the attacker) and
/// `v` (the victim), untrusted, both with their SLAAC address and default route.
fn setup(tag: &str) -> (Lab, Vec<Guest>, Switchd) {
    let mut lab = lab(tag, &["radvd", "scapy", "ping"]);
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
    g[0].run(
        "ip",
        &[
            "-6",
            "addr",
            "add",
            &format!("{ROUTER}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    )
    .unwrap();
    (lab, g, sw)
}

/// The link-local address of `g`'s eth0.
fn link_local(g: &Guest) -> String {
    let out = text(
        g,
        &["-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"],
    );
    let addr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .unwrap_or_else(|| panic!("{}: no link-local address: {out}", g.name));
    addr.split('/').next().unwrap().to_string()
}

/// `ping -6 -c 3` from `g` to `dst`, asserting every reply came back.
fn ping6_all(g: &Guest, dst: &str, when: &str) {
    assert!(dst.starts_with("fd00:198:18:"), "{dst} is outside the lab");
    let out = g
        .command("ping")
        .args(["-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", dst])
        .output()
        .expect("run ping");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r = portcullis_lab::parse_ping_summary(&stdout).unwrap_or_else(|| {
        panic!(
            "ping -6 {dst} {when}: no summary
{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        (r.sent, r.received),
        (3, 3),
        "ping -6 {dst} {when}: {stdout}"
    );
}

#[test]
fn radvd_serves_the_guests_and_rogue_ras_are_dropped_with_their_reasons() {
    let (_lab, g, sw) = setup("raguard");
    ping6_all(&g[2], ROUTER, "before the rogue RAs");
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
    ping6_all(&g[2], ROUTER, "after the rogue RAs");
    // The router's RAs still reach everyone: nothing dropped on its port.
    let r = &sw.port("r")["counters"]["rx_drops"];
    assert!(
        r.as_object().is_none_or(|m| m.values().all(|v| v == 0)),
        "{r}"
    );
}

#[test]
fn rogue_redirects_are_dropped_and_the_victim_keeps_routing_through_the_router() {
    let (_lab, g, sw) = setup("raredir");
    let (router, rogue, victim) = (&g[0], &g[1], &g[2]);
    let router_ll = link_local(router);
    let rogue_ll = link_local(rogue);
    let rogue_mac = rogue.mac().unwrap();
    let via = |when: &str| {
        let out = text(victim, &["-6", "route", "get", FAR]);
        assert!(
            out.contains(&format!("via {router_ll} ")) && !out.contains(&rogue_ll),
            "{when}: {FAR} not routed via the router {router_ll} (rogue {rogue_ll}): {out}"
        );
    };
    ping6_all(victim, ROUTER, "before the redirects");
    via("before the redirects");
    // The victim's global SLAAC address, the redirects' destination.
    let addrs = text(
        victim,
        &["-6", "-o", "addr", "show", "dev", "eth0", "scope", "global"],
    );
    let victim_ip = addrs
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("victim: no global address: {addrs}"))
        .to_string();
    let victim_mac = victim.mac().unwrap();
    let drops = sw.drops("a", "ra_guard_router_message");

    // A Redirect that seems to come from the router (as the kernel requires): send
    // traffic for FAR to the rogue's link-local, at the rogue's MAC; plain and
    // behind a Hop-by-Hop header.
    let redirect = format!(
        "ICMPv6ND_Redirect(tgt='{rogue_ll}', dst='{FAR}')/ICMPv6NDOptDstLLAddr(lladdr='{rogue_mac}')/ICMPv6NDOptRedirectedHdr(pkt=IPv6(src='{victim_ip}', dst='{FAR}')/ICMPv6EchoRequest())"
    );
    // And one naming the router itself as the better hop, at the rogue's MAC (its
    // target link-layer option would overwrite the victim's entry for the router).
    let poison = format!(
        "ICMPv6ND_Redirect(tgt='{router_ll}', dst='{FAR2}')/ICMPv6NDOptDstLLAddr(lladdr='{rogue_mac}')"
    );
    let sends: String = [
        redirect.clone(),
        format!("IPv6ExtHdrHopByHop()/{redirect}"),
        poison,
    ]
    .iter()
    .map(|icmp| format!("sendp(e/ip/{icmp}, iface='eth0')\n"))
    .collect();
    let script = format!(
        "e = Ether(src='{rogue_mac}', dst='{victim_mac}')\nip = IPv6(src='{router_ll}', dst='{victim_ip}', hlim=255)\n{sends}"
    );
    scapy(rogue, &script);
    std::thread::sleep(Duration::from_secs(2));

    // The victim still routes FAR through the router, and its neighbour cache
    // maps none of the router's addresses to the rogue's MAC.
    via("after the redirects");
    let neigh = text(victim, &["-6", "neigh", "show"]);
    for l in neigh.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let poisoned = (w.first() == Some(&router_ll.as_str()) || w.first() == Some(&ROUTER))
            && l.to_ascii_lowercase()
                .contains(&rogue_mac.to_ascii_lowercase());
        assert!(
            !poisoned,
            "the router's address maps to the rogue's MAC: {neigh}"
        );
    }
    assert_eq!(
        sw.drops("a", "ra_guard_router_message") - drops,
        3,
        "ports: {}",
        sw.get("/v1/ports")
    );
    ping6_all(victim, ROUTER, "after the redirects");
    let r = &sw.port("r")["counters"]["rx_drops"];
    assert!(
        r.as_object().is_none_or(|m| m.values().all(|v| v == 0)),
        "{r}"
    );
}
