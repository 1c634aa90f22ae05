//! Lab test of IPv6 first-hop security with real programs (issue 15, "Done when"):
//! dnsmasq on a trusted router port sends Router Advertisements (A and M flags) and
//! serves stateful DHCPv6; the guests are IPv6 hosts as current systems are — the
//! kernel's SLAAC with privacy addresses and random link-locals, and ISC dhclient
//! as DHCPv6 client. With RA guard, DHCPv6 guard, ND inspection and IPv6 source
//! guard (`ip-mac`) all on, every guest gets its SLAAC, privacy and DHCPv6
//! addresses and pings the router and the other guest from each of them with 0
//! drops on every port. Then scapy attacks from an untrusted guest — rogue DHCPv6
//! ADVERTISE/REPLY (plain, from an odd source port, fragmented), NA spoofing of the
//! router and of another guest, DAD stealing, spoofed source addresses — are each
//! dropped and counted under their own reason, and the victim's `ip -6 addr`,
//! `ip -6 route` and `ip -6 neigh` are unchanged. (Rogue RAs and Redirects:
//! lab_ra_guard.rs.) IPv6 only from fd00:198:18::/48 and link-local.
//!
//! Why the router is on a trusted guest port and not behind the uplink: the kernels
//! here have no 802.1Q devices, so a router behind the trunk needs a second
//! Portcullis to terminate it (`portcullis_lab::trunk_router`), and a trusted guest
//! port exercises the per-port `trusted = true` of all three features, which the
//! uplink (trusted by default through `[uplink_policy]`) would not.

mod common;

use common::*;
use portcullis_lab::{Addr6, Guest, Ipv6State, Lab, Router6};
use std::net::Ipv6Addr;
use std::time::Duration;

/// The switch's configuration: one VLAN, the router's port group trusted for all
/// three IPv6 features, the guests' untrusted with every feature on.
const CONFIG: &str = r#"
[switch]
name = "ipv6"

[[port_group]]
name = "routers"
vlan = 10
ra_guard = { trusted = true }
dhcpv6_guard = { trusted = true }
nd_inspection = { trusted = true }
ipv6_source_guard = "ip-mac"

[[port_group]]
name = "guests"
vlan = 10
ra_guard = {}
dhcpv6_guard = { rate_limit_pps = 50 }
nd_inspection = { max_addresses = 8, rate_limit_pps = 100 }
ipv6_source_guard = "ip-mac"
"#;

const PREFIX: &str = "fd00:198:18:10::/64";
/// An address of the prefix no one has.
const ROGUE_ADDR: &str = "fd00:198:18:10::666";

struct Lab6 {
    lab: Lab,
    /// The DHCPv6 clients' pids: of `a`, `v`, `w`.
    dhclients: Vec<u32>,
    sw: Switchd,
    router: Router6,
    /// The router (dnsmasq), the attacker, the victim and a bystander.
    r: Guest,
    a: Guest,
    v: Guest,
    w: Guest,
}

fn ready(s: &Ipv6State) -> bool {
    s.find(Addr6::is_slaac).is_some()
        && s.find(Addr6::is_temporary).is_some()
        && s.find(Addr6::is_dhcpv6).is_some()
        && s.link_local().is_some()
        && s.default_route().is_some_and(|r| r.contains("via fe80::"))
}

/// The lab: the switch on four guests, each guest an IPv6 host with privacy
/// addresses; the router's dnsmasq; a DHCPv6 client in every other guest; waits
/// until every guest has its SLAAC, privacy and DHCPv6 addresses and a default
/// route.
fn setup(tag: &str) -> Lab6 {
    let mut lab = lab(tag, &["dnsmasq", "dhclient", "scapy", "ping"]);
    let names = [
        ("r", "routers"),
        ("a", "guests"),
        ("v", "guests"),
        ("w", "guests"),
    ];
    let g: Vec<Guest> = names
        .iter()
        .map(|(n, _)| lab.add_guest(n).unwrap())
        .collect();
    let mut cfg = CONFIG.to_string();
    for ((n, group), guest) in names.iter().zip(&g) {
        cfg.push_str(&port(n, guest, group));
    }
    let sw = start_daemon(&mut lab, "sw", &cfg);
    // The hosts' link-locals (random identifiers) are made with the switch up, so
    // their DAD goes through it.
    for guest in &g {
        guest.ipv6_host(guest.name != "r").unwrap();
    }
    let router = portcullis_lab::start_router6(&mut lab, &g[0], PREFIX).unwrap();
    let dhclients = g[1..]
        .iter()
        .map(|guest| portcullis_lab::start_dhcp6_client(&mut lab, guest).unwrap())
        .collect();
    let dir = lab.scratch_dir().unwrap();
    for guest in &g[1..] {
        if let Err(e) = guest.wait_ipv6(Duration::from_secs(45), "not configured", ready) {
            let log = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            panic!(
                "{e}\n--- dhclient ---\n{}\n--- dnsmasq ---\n{}\n--- ports ---\n{}\n--- switch ---\n{}",
                log(&format!("{}-dhclient6.log", guest.name)),
                log("r-dnsmasq.log"),
                sw.get("/v1/ports"),
                sw.log_text()
            );
        }
    }
    let [r, a, v, w] = <[Guest; 4]>::try_from(g).unwrap();
    Lab6 {
        lab,
        dhclients,
        sw,
        router,
        r,
        a,
        v,
        w,
    }
}

fn state(g: &Guest) -> Ipv6State {
    g.ipv6_state().unwrap()
}

/// `ping -6 -c 3` from `g`, from source `src`, to `dst` (lab range or link-local),
/// asserting every reply came back.
fn ping6(g: &Guest, src: Ipv6Addr, dst: Ipv6Addr, when: &str) {
    let dst_text = if portcullis_lab::is_link_local6(dst) {
        format!("{dst}%eth0")
    } else {
        portcullis_lab::check_addr6(&dst.to_string()).unwrap();
        dst.to_string()
    };
    let src_text = if portcullis_lab::is_link_local6(src) {
        "eth0".to_string()
    } else {
        src.to_string()
    };
    let out = g
        .command("ping")
        .args(["-6", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-I"])
        .args([&src_text, &dst_text])
        .output()
        .expect("run ping");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r = portcullis_lab::parse_ping_summary(&stdout).unwrap_or_else(|| {
        panic!(
            "{}: ping -6 -I {src_text} {dst_text} {when}: no summary\n{stdout}{}",
            g.name,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(
        (r.sent, r.received),
        (3, 3),
        "{}: ping -6 -I {src_text} {dst_text} {when}: {stdout}",
        g.name
    );
}

/// Every drop counter of `port` (both directions) is zero.
fn assert_no_drops(sw: &Switchd, port: &str, when: &str) {
    let c = &sw.port(port)["counters"];
    for dir in ["rx_drops", "tx_drops"] {
        let d = &c[dir];
        assert!(
            d.as_object().is_none_or(|m| m.values().all(|v| v == 0)),
            "{when}: port {port} {dir}: {d}"
        );
    }
}

/// Each guest pings the router (global and link-local) from each of its own
/// addresses — link-local, SLAAC, privacy, DHCPv6 — and the other guest's
/// addresses of each kind.
fn ping_everyone(l: &Lab6, when: &str) {
    let router_ll = state(&l.r).link_local().unwrap();
    for (g, other) in [(&l.v, &l.w), (&l.w, &l.v)] {
        let s = state(g);
        let o = state(other);
        let mine = [
            s.link_local().unwrap(),
            s.find(Addr6::is_slaac).unwrap(),
            s.find(Addr6::is_temporary).unwrap(),
            s.find(Addr6::is_dhcpv6).unwrap(),
        ];
        for src in mine {
            let dst = if portcullis_lab::is_link_local6(src) {
                router_ll
            } else {
                l.router.addr
            };
            ping6(g, src, dst, when);
        }
        ping6(g, mine[0], o.link_local().unwrap(), when);
        for pick in [Addr6::is_slaac, Addr6::is_temporary, Addr6::is_dhcpv6] {
            ping6(g, mine[2], o.find(pick).unwrap(), when);
        }
    }
}

#[test]
fn guests_get_slaac_privacy_and_dhcpv6_addresses_and_ping_with_no_drops() {
    let l = setup("ip6benign");
    // The DHCPv6 addresses are dnsmasq's leases.
    let leases = std::fs::read_to_string(&l.router.leases).unwrap_or_default();
    for g in [&l.v, &l.w, &l.a] {
        let s = state(g);
        let d = s.find(Addr6::is_dhcpv6).unwrap();
        assert!(
            leases.contains(&d.to_string()),
            "{}: {d} is not in dnsmasq's leases: {leases}",
            g.name
        );
        // Random link-local identifiers: not EUI-64 (ff:fe in the middle).
        let ll = s.link_local().unwrap().segments();
        assert!(
            ll[5] & 0x00ff != 0x00ff || ll[6] & 0xff00 != 0xfe00,
            "{}: EUI-64 link-local {:?}",
            g.name,
            s.link_local()
        );
    }
    ping_everyone(&l, "benign");
    // Every address a guest uses is bound to its port and MAC: the DHCPv6 one by
    // DHCPv6 snooping, the link-local, SLAAC and privacy ones by ND inspection.
    let bindings = l.sw.get("/v1/bindings");
    for (port, g) in [("a", &l.a), ("v", &l.v), ("w", &l.w)] {
        let s = state(g);
        let mac = g.mac().unwrap();
        let expect = [
            (s.find(Addr6::is_dhcpv6).unwrap(), "dhcpv6"),
            (s.link_local().unwrap(), "nd"),
            (s.find(Addr6::is_slaac).unwrap(), "nd"),
            (s.find(Addr6::is_temporary).unwrap(), "nd"),
        ];
        for (ip, source) in expect {
            let found = bindings["bindings"].as_array().and_then(|v| {
                v.iter()
                    .find(|b| b["ip"].as_str() == Some(ip.to_string().as_str()))
            });
            if source == "dhcpv6" {
                // Keyed by the client's DUID as well as its MAC.
                let duid = found.and_then(|b| b["duid"].as_str()).unwrap_or_default();
                assert!(duid.len() > 8, "{ip}: no DUID: {bindings}");
            }
            let got = found.map(|b| (b["source"].clone(), b["port"].clone(), b["mac"].clone()));
            assert_eq!(
                got,
                Some((source.into(), port.into(), mac.clone().into())),
                "the binding of {ip} ({}): {bindings}",
                g.name
            );
        }
    }
    for p in ["r", "a", "v", "w"] {
        assert_no_drops(&l.sw, p, "benign traffic");
    }
}

/// The victim's state to compare before and after an attack: its addresses (without
/// flags that change on their own), routes, and the MAC its neighbour cache has for
/// each address (entries may come and go; none may change its MAC, and none but the
/// attacker's own addresses may map to the attacker's MAC).
fn assert_unchanged(before: &Ipv6State, after: &Ipv6State, attacker: &Guest, when: &str) {
    let attacker_mac = attacker.mac().unwrap();
    let own: Vec<Ipv6Addr> = state(attacker).addrs.iter().map(|a| a.addr).collect();
    assert_eq!(before.addr_set(), after.addr_set(), "{when}: addresses");
    assert_eq!(before.routes, after.routes, "{when}: routes");
    for n in after.neighbors.iter().filter(|n| !own.contains(&n.addr)) {
        assert_ne!(
            n.lladdr.as_deref(),
            Some(attacker_mac.as_str()),
            "{when}: the victim's neighbour cache maps {} to the attacker",
            n.addr
        );
        if let (Some(b), Some(m)) = (
            before.neighbor(n.addr).and_then(|b| b.lladdr.as_ref()),
            &n.lladdr,
        ) {
            assert_eq!(b, m, "{when}: the neighbour entry of {} changed", n.addr);
        }
    }
}

/// Runs `script` with scapy in `g` after binding the names the attacks use.
fn attack(l: &Lab6, script: &str) {
    let vs = state(&l.v);
    let ws = state(&l.w);
    let rs = state(&l.r);
    let prelude = format!(
        "amac = '{}'\nvmac = '{}'\nwmac = '{}'\nrmac = '{}'\n\
         a_ll = '{}'\nv_ll = '{}'\nw_ll = '{}'\nr_ll = '{}'\n\
         v_slaac = '{}'\nv_temp = '{}'\nv_dhcp = '{}'\nw_slaac = '{}'\nrogue = '{ROGUE_ADDR}'\n",
        l.a.mac().unwrap(),
        l.v.mac().unwrap(),
        l.w.mac().unwrap(),
        l.r.mac().unwrap(),
        state(&l.a).link_local().unwrap(),
        vs.link_local().unwrap(),
        ws.link_local().unwrap(),
        rs.link_local().unwrap(),
        vs.find(Addr6::is_slaac).unwrap(),
        vs.find(Addr6::is_temporary).unwrap(),
        vs.find(Addr6::is_dhcpv6).unwrap(),
        ws.find(Addr6::is_slaac).unwrap(),
    );
    scapy(&l.a, &format!("{prelude}{script}"));
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn rogue_dhcpv6_server_messages_are_dropped_and_the_victim_keeps_its_state() {
    let mut l = setup("ip6dhcp");
    ping6(
        &l.v,
        state(&l.v).link_local().unwrap(),
        state(&l.r).link_local().unwrap(),
        "before",
    );
    let before = state(&l.v);
    // A rogue server's ADVERTISE and REPLY to the victim's client, offering an
    // address and a DNS server of its own: plain, from an odd source port (a client
    // at 546 receives it whatever the source port), a RECONFIGURE, a RELAY-REPL
    // carrying a REPLY, and a REPLY in two fragments (the UDP header in the first).
    attack(
        &l,
        r#"
e = Ether(src=amac, dst=vmac)
ip = IPv6(src=a_ll, dst=v_ll)
opts = DHCP6OptServerId(duid=DUID_LL(lladdr=amac))/DHCP6OptClientId(duid=DUID_LL(lladdr=vmac))/DHCP6OptIA_NA(iaid=1, T1=0, T2=0, ianaopts=[DHCP6OptIAAddress(addr=rogue, preflft=3600, validlft=3600)])/DHCP6OptDNSServers(dnsservers=[a_ll])
sendp(e/ip/UDP(sport=547, dport=546)/DHCP6_Advertise(trid=7)/opts, iface='eth0')
sendp(e/ip/UDP(sport=547, dport=546)/DHCP6_Reply(trid=7)/opts, iface='eth0')
sendp(e/ip/UDP(sport=40000, dport=546)/DHCP6_Reply(trid=8)/opts, iface='eth0')
sendp(e/ip/UDP(sport=547, dport=546)/DHCP6_Reconf(trid=0)/DHCP6OptServerId(duid=DUID_LL(lladdr=amac))/DHCP6OptClientId(duid=DUID_LL(lladdr=vmac))/DHCP6OptReconfMsg(msgtype=5), iface='eth0')
sendp(e/ip/UDP(sport=547, dport=547)/DHCP6_RelayReply(hopcount=0, linkaddr=rogue, peeraddr=v_ll)/DHCP6OptRelayMsg(message=DHCP6_Reply(trid=10)/opts), iface='eth0')
whole = bytes(ip/UDP(sport=547, dport=546)/DHCP6_Reply(trid=9)/opts)
part = whole[40:]
f1 = IPv6(src=a_ll, dst=v_ll, nh=44)/IPv6ExtHdrFragment(nh=17, m=1, offset=0, id=99)/Raw(part[:16])
f2 = IPv6(src=a_ll, dst=v_ll, nh=44)/IPv6ExtHdrFragment(nh=17, m=0, offset=2, id=99)/Raw(part[16:])
sendp(e/f1, iface='eth0')
sendp(e/f2, iface='eth0')
"#,
    );
    let drops = |r: &str| l.sw.drops("a", r);
    assert_eq!(
        (drops("dhcpv6_server_untrusted"), drops("dhcpv6_fragment")),
        (5, 1),
        "ports: {}",
        l.sw.get("/v1/ports")
    );
    let after = state(&l.v);
    assert_unchanged(&before, &after, &l.a, "after the rogue DHCPv6 server");
    assert!(
        !after.addrs.iter().any(|a| a.addr.to_string() == ROGUE_ADDR),
        "the victim took the rogue's address"
    );
    // The rogue never sees the victim's client messages, so it cannot race the
    // real server: they go to trusted ports only. The victim's client is restarted
    // (it asks again for its lease, to ff02::1:2) while the rogue listens.
    let victim_client = l.dhclients[1];
    l.lab.kill(victim_client);
    let seen = std::thread::scope(|s| {
        let sniffer = s.spawn(|| {
            scapy_output(
                &l.a,
                &format!(
                    "p = sniff(iface='eth0', timeout=8, lfilter=lambda p: UDP in p and p[UDP].dport == 547 and p[Ether].src == '{}')\nprint(len(p))",
                    l.v.mac().unwrap()
                ),
            )
        });
        std::thread::sleep(Duration::from_secs(3));
        let restarted = portcullis_lab::start_dhcp6_client(&mut l.lab, &l.v).unwrap();
        let seen = sniffer.join().unwrap();
        (seen, restarted)
    });
    assert_eq!(
        seen.0.trim(),
        "0",
        "the rogue saw the victim's DHCPv6 client messages"
    );
    let leases = std::fs::read_to_string(&l.router.leases).unwrap_or_default();
    assert!(
        leases.contains(&state(&l.v).find(Addr6::is_dhcpv6).unwrap().to_string()),
        "{leases}"
    );
    ping_everyone(&l, "after the rogue DHCPv6 server");
    for p in ["r", "v", "w"] {
        assert_no_drops(&l.sw, p, "after the rogue DHCPv6 server");
    }
}

#[test]
fn nd_spoofing_dad_stealing_and_spoofed_sources_are_dropped_and_the_victim_keeps_its_state() {
    let l = setup("ip6nd");
    let vs = state(&l.v);
    let (v_ll, r_ll) = (vs.link_local().unwrap(), state(&l.r).link_local().unwrap());
    let w_slaac = state(&l.w).find(Addr6::is_slaac).unwrap();
    // The victim's neighbour cache holds the router and the bystander.
    ping6(&l.v, v_ll, r_ll, "before");
    ping6(
        &l.v,
        vs.find(Addr6::is_temporary).unwrap(),
        w_slaac,
        "before",
    );
    let before = state(&l.v);
    assert!(before.neighbor(r_ll).is_some_and(|n| n.lladdr.is_some()));
    assert!(before.neighbor(w_slaac).is_some_and(|n| n.lladdr.is_some()));

    // NA spoofing: the attacker tells the victim that the router's link-local, and
    // then the bystander's SLAAC address, are at its MAC (unsolicited, Override);
    // and overrides everyone's entry for an address no one holds.
    attack(
        &l,
        r#"
e = Ether(src=amac, dst=vmac)
sendp(e/IPv6(src=a_ll, dst=v_ll, hlim=255)/ICMPv6ND_NA(tgt=r_ll, R=1, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=amac), iface='eth0')
sendp(e/IPv6(src=a_ll, dst=v_ll, hlim=255)/ICMPv6ND_NA(tgt=w_slaac, R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=amac), iface='eth0')
sendp(Ether(src=amac, dst='33:33:00:00:00:01')/IPv6(src=a_ll, dst='ff02::1', hlim=255)/ICMPv6ND_NA(tgt=rogue, R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=amac), iface='eth0')
"#,
    );
    let drops = |r: &str| l.sw.drops("a", r);
    assert_eq!(
        (drops("nd_address_owned"), drops("nd_unsolicited_override")),
        (2, 1),
        "NA spoofing of the router and of the bystander, an unsolicited override; ports: {}",
        l.sw.get("/v1/ports")
    );
    assert_unchanged(&before, &state(&l.v), &l.a, "after the spoofed NAs");

    // DAD stealing: a DAD NS (from ::) claiming the victim's SLAAC address, then
    // the attacker answers the victim's DAD for a new address with an NA claiming
    // it, so that the victim would give the address up (dadfailed).
    let owned = drops("nd_address_owned");
    attack(
        &l,
        r#"
t = inet_pton(socket.AF_INET6, v_slaac)
sendp(Ether(src=amac, dst=in6_getnsmac(in6_getnsma(t)))/IPv6(src='::', dst=inet_ntop(socket.AF_INET6, in6_getnsma(t)), hlim=255)/ICMPv6ND_NS(tgt=v_slaac), iface='eth0')
"#,
    );
    let new_addr = "fd00:198:18:10::bee";
    let script = format!(
        r#"
def steal(p):
    if ICMPv6ND_NS in p and p[IPv6].src == '::' and p[ICMPv6ND_NS].tgt == '{new_addr}':
        sendp(Ether(src=amac, dst='33:33:00:00:00:01')/IPv6(src=a_ll, dst='ff02::1', hlim=255)/ICMPv6ND_NA(tgt='{new_addr}', R=0, S=0, O=1)/ICMPv6NDOptDstLLAddr(lladdr=amac), iface='eth0')
        return True
    return False
sniff(iface='eth0', stop_filter=steal, timeout=8)
"#
    );
    let stealer = {
        let l = &l;
        let script = script.clone();
        std::thread::scope(|s| {
            let h = s.spawn(move || attack(l, &script));
            std::thread::sleep(Duration::from_secs(3));
            l.v.add_addr6(&format!("{new_addr}/64"), false).unwrap();
            h.join()
        })
    };
    stealer.expect("the DAD stealer");
    let taken =
        l.v.wait_ipv6(Duration::from_secs(5), "the new address past DAD", |s| {
            s.addrs
                .iter()
                .any(|a| a.addr.to_string() == new_addr && a.usable())
        });
    assert!(
        taken.is_ok(),
        "DAD stealing: {taken:?}; ports: {}",
        l.sw.get("/v1/ports")
    );
    assert_eq!(
        drops("nd_address_owned") - owned,
        2,
        "the DAD NS claiming the victim's address and the stolen DAD; ports: {}",
        l.sw.get("/v1/ports")
    );
    l.v.run(
        "ip",
        &[
            "-6",
            "addr",
            "del",
            &format!("{new_addr}/64"),
            "dev",
            "eth0",
        ],
    )
    .unwrap();

    // Spoofed sources: echo requests to the bystander from each of the victim's
    // addresses and UDP from its link-local (addresses bound to the victim: ND
    // inspection refuses the claim), then UDP and an echo request from `::`, which
    // only DAD, MLD and DHCPv6 clients may use (IPv6 source guard).
    let owned = drops("nd_address_owned");
    attack(
        &l,
        r#"
e = Ether(src=amac, dst=wmac)
for s in (v_slaac, v_temp, v_dhcp):
    sendp(e/IPv6(src=s, dst=w_slaac)/ICMPv6EchoRequest(), iface='eth0')
sendp(e/IPv6(src=v_ll, dst=w_ll)/UDP(sport=5000, dport=5000)/Raw(b'spoofed'), iface='eth0')
sendp(e/IPv6(src='::', dst=w_slaac)/UDP(sport=5000, dport=5000)/Raw(b'spoofed'), iface='eth0')
sendp(e/IPv6(src='::', dst=w_slaac)/ICMPv6EchoRequest(), iface='eth0')
"#,
    );
    assert_eq!(
        (
            drops("nd_address_owned") - owned,
            drops("ipv6_source_guard")
        ),
        (4, 2),
        "spoofed sources; ports: {}",
        l.sw.get("/v1/ports")
    );
    assert_unchanged(&before, &state(&l.v), &l.a, "after every attack");
    ping_everyone(&l, "after the ND attacks");
    for p in ["r", "v", "w"] {
        assert_no_drops(&l.sw, p, "after the ND attacks");
    }
}
