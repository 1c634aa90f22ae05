//! The VXLAN overlay: `[overlay]` and `[host.overlay]` compiled to the exact
//! `OverlaySpec` and overlay port (its place after the uplinks, its trust), the
//! profile checked alone, every refusal located at its key, the flat keys of diff
//! and compliance, and no panic on any overlay input.

use super::features::{compile, features};
use super::*;
use crate::diff::{OFF, split_key};
use portcullis_dataplane::overlay::DEFAULT_MAX_REMOTE_MACS;
use portcullis_dataplane::wire::vxlan::DEFAULT_UDP_PORT;
use portcullis_dataplane::{OverlayPeer, OverlaySpec, PortSpec, Vni};
use std::net::IpAddr;

/// BASE's profile tables, an `[overlay]` with `overlay`, then BASE's host tables
/// with a `[host.overlay]` holding `host` (none when `host` is `None`).
fn src(overlay: &str, host: Option<&str>) -> String {
    let split = BASE.find("[host.uplinks]").unwrap();
    let (profile, host_part) = BASE.split_at(split);
    let host_overlay = host.map_or(String::new(), |h| format!("\n[host.overlay]\n{h}\n"));
    format!("{profile}[overlay]\n{overlay}\n\n{host_part}{host_overlay}")
}

/// The usual valid pair: VLANs 10 and 20 mapped, one static peer with one MAC.
const OVERLAY: &str = "vni = { 10 = 10010, 20 = 10020 }";
const HOST: &str = r#"local_ip = "198.18.100.1"
interface = "eth1"
peers = [ { address = "198.18.100.2", macs = [ { vlan = 10, mac = "52:54:00:00:00:02" } ] } ]"#;

fn vni(n: u32) -> Vni {
    Vni::new(n).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn port<'a>(c: &'a CompiledConfig, name: &str) -> &'a PortSpec {
    c.spec.ports.iter().find(|p| p.name == name).unwrap()
}

// ---- compilation -----------------------------------------------------------------

#[test]
fn both_tables_compile_to_the_exact_overlay_and_port() {
    let c = compile(&src(OVERLAY, Some(HOST)));
    assert_eq!(
        c.spec.overlay,
        Some(OverlaySpec {
            vnis: vec![(vid(10), vni(10010)), (vid(20), vni(10020))],
            udp_port: DEFAULT_UDP_PORT,
            arp_proxy: false,
            local_ip: ip("198.18.100.1"),
            interface: Some("eth1".into()),
            fragment: false,
            peers: vec![OverlayPeer {
                address: ip("198.18.100.2"),
                macs: vec![(vid(10), mac("52:54:00:00:00:02"))],
                addresses: Vec::new(),
            }],
            max_remote_macs: DEFAULT_MAX_REMOTE_MACS,
        })
    );
    // Right after the uplinks, before the guests.
    let names: Vec<&str> = c.spec.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["uplink1", "overlay", "vm1"]);
    assert_eq!(
        c.spec.ports[1],
        PortSpec {
            name: "overlay".into(),
            role: PortRole::Overlay,
            vlan: VlanMode::Trunk {
                allowed: VlanSet::from_vids([vid(10), vid(20)]),
                native: None,
            },
            security: SecurityPolicy::default(),
            initial_mac: None,
            features: PortFeatures::default(),
        }
    );
    // One entry per port in every per-port vector.
    assert_eq!(c.interfaces, ["eth0", "eth1", "tap1"]);
    assert_eq!(c.create_tap, [false, false, false]);
    assert_eq!(c.groups, [None, None, Some("web".to_owned())]);
    assert_eq!(
        c.interface_keys,
        [
            "host.uplinks.uplink1",
            "host.overlay.interface",
            "host.port[0].interface"
        ]
    );
    c.spec.check().unwrap();
}

#[test]
fn stated_settings_and_ipv6_endpoints_compile() {
    let c = compile(&src(
        "vni = { 20 = 0, 10 = 16777215 }\nudp_port = 8472\narp_proxy = true\nmax_remote_macs = 1048576",
        Some(
            r#"local_ip = "2001:db8::1"
fragment = true
peers = [
  { address = "2001:db8::3", macs = [ { vlan = 20, mac = "52:54:00:00:00:03" }, { vlan = 10, mac = "52:54:00:00:00:04" } ] },
  { address = "2001:db8::2" },
]"#,
        ),
    ));
    let o = c.spec.overlay.as_ref().unwrap();
    // Sorted by VLAN, whatever the file's order; VNIs 0 and 2^24-1 are valid.
    assert_eq!(o.vnis, [(vid(10), vni(16_777_215)), (vid(20), vni(0))]);
    assert_eq!(o.udp_port, 8472);
    assert!(o.arp_proxy);
    assert_eq!(o.max_remote_macs, 1_048_576);
    assert_eq!(o.interface, None);
    assert!(o.fragment);
    // Peers and their MACs in file order; a peer may have no MAC yet.
    assert_eq!(
        o.peers,
        [
            OverlayPeer {
                address: ip("2001:db8::3"),
                macs: vec![
                    (vid(20), mac("52:54:00:00:00:03")),
                    (vid(10), mac("52:54:00:00:00:04"))
                ],
                addresses: Vec::new(),
            },
            OverlayPeer {
                address: ip("2001:db8::2"),
                macs: vec![],
                addresses: Vec::new(),
            },
        ]
    );
    // Without an underlay interface: no interface, keyed by the endpoint.
    assert_eq!(c.interfaces[1], "");
    assert_eq!(c.interface_keys[1], "host.overlay.local_ip");
}

#[test]
fn the_overlay_port_is_trusted_like_the_uplinks_without_their_storm_control_or_acls() {
    let guarded = "dhcp_snooping = {}\narp_inspection = {}\nra_guard = {}\nnd_inspection = {}\ndhcpv6_guard = { mode = \"observe\" }";
    let profile = src(OVERLAY, Some(HOST))
        .replacen("vlan = 10\n", &format!("vlan = 10\n{guarded}\n"), 1)
        .replace(
            "allowed_vlans = [10, 20]",
            "allowed_vlans = [10, 20]\nstorm_control = { broadcast_pps = 100 }\nmac_acl_in = \"in\"\n",
        )
        + "\n[[mac_acl]]\nname = \"in\"\nrules = [ { action = \"permit\" } ]\n";
    let c = compile(&profile);
    let up = features(&c, "uplink1");
    let ov = features(&c, "overlay");
    assert!(up.storm_control.is_some() && up.mac_acl_in.is_some());
    // The uplinks' features less their storm control and ACLs.
    assert_eq!(
        ov,
        &PortFeatures {
            storm_control: None,
            mac_acl_in: None,
            mac_acl_out: None,
            errdisable_recovery_secs: None,
            ..up.clone()
        }
    );
    assert!(ov.dhcp_snooping.unwrap().trusted);
    assert!(ov.arp_inspection.as_ref().unwrap().trusted);
    assert!(ov.ra_guard.unwrap().trusted);
    assert!(ov.nd_inspection.unwrap().trusted);
    let v6 = ov.dhcpv6_guard.unwrap();
    assert!(v6.trusted);
    assert_eq!(v6.mode, EnforceMode::Observe);

    // `*_trusted = false` in [uplink_policy] applies to the overlay port too.
    let untrusted = profile.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\ndhcp_trusted = false\narp_trusted = false\nra_trusted = false\nnd_trusted = false\ndhcpv6_trusted = false",
    );
    let c = compile(&untrusted);
    let ov = features(&c, "overlay");
    assert!(!ov.dhcp_snooping.unwrap().trusted);
    assert!(!ov.arp_inspection.as_ref().unwrap().trusted);
    assert!(!ov.ra_guard.unwrap().trusted);
    assert!(!ov.nd_inspection.unwrap().trusted);
    assert!(!ov.dhcpv6_guard.unwrap().trusted);
}

#[test]
fn without_uplink_policy_the_overlay_port_is_trusted_and_first() {
    let profile = r#"[switch]
name = "t"

[overlay]
vni = { 10 = 10010 }

[[port_group]]
name = "web"
vlan = 10
dhcp_snooping = {}
ra_guard = { mode = "observe" }

[[host.port]]
name = "vm1"
interface = "tap1"
port_group = "web"

[host.overlay]
local_ip = "198.18.100.1"
"#;
    let c = compile(profile);
    let names: Vec<&str> = c.spec.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["overlay", "vm1"]);
    let ov = features(&c, "overlay");
    assert_eq!(
        ov,
        &PortFeatures {
            dhcp_snooping: Some(DhcpSnoopingSpec {
                trusted: true,
                rate_limit_pps: None,
                option82: Option82::Keep,
                drop_untrusted_option82: false,
                mode: EnforceMode::Enforce,
            }),
            ra_guard: Some(RaGuardSpec {
                trusted: true,
                mode: EnforceMode::Observe,
            }),
            ..PortFeatures::default()
        }
    );
    // Only the mapped VLANs.
    assert_eq!(port(&c, "overlay").vlan.vids(), [vid(10)]);
}

#[test]
fn a_profile_alone_passes_and_compiles_without_an_overlay() {
    // No host binding given, none in the profile: the profile is checked alone.
    let profile = "[switch]\nname = \"t\"\n\n[overlay]\nvni = { 10 = 10010 }\n";
    let (config, c) = parse_str_compiled(profile, P, None).unwrap();
    assert!(config.profile.overlay.is_some());
    assert_eq!(c.spec.overlay, None);
    assert!(c.spec.ports.is_empty());
    // Its values are still checked.
    let bad = "[switch]\nname = \"t\"\n\n[overlay]\nvni = { 10 = 16777216 }\n";
    expect(bad, "16777216", "overlay.vni.10", "24 bits");
}

#[test]
fn parse_profile_alone_gives_stand_ins_for_uplinks_and_the_endpoint() {
    let split = BASE.find("[host.uplinks]").unwrap();
    let profile = format!("{}[overlay]\n{OVERLAY}\n", &BASE[..split]);
    // With a host binding that has no [host.overlay] it is refused …
    let errs = parse_str(
        &profile,
        P,
        Some(("[host.uplinks]\nuplink1 = \"eth0\"\n", "h.toml")),
    )
    .unwrap_err()
    .into_vec();
    expect_in(
        &errs,
        "h.toml",
        1,
        "host.overlay",
        "the profile has an [overlay]: this host needs [host.overlay] local_ip",
    );
    // … and alone it passes: what is judged is the profile's own content.
    let (config, c) = parse_profile_alone(&profile, P).unwrap();
    assert_eq!(config.profile.overlay.as_ref().unwrap().vnis.len(), 2);
    let o = c.spec.overlay.unwrap();
    assert_eq!(o.local_ip, ip(STAND_IN_LOCAL_IP));
    assert!(o.peers.is_empty());
    // The exported profile carries no stand-in.
    let exported = crate::export::export_profile(&config);
    assert_eq!(exported, profile);
    // Its errors are the profile's.
    let bad = profile.replace("10020", "10010");
    let errs = parse_profile_alone(&bad, P).unwrap_err().into_vec();
    expect_in(
        &errs,
        P,
        line_of(&bad, "vni ="),
        "overlay.vni.20",
        "VNI 10010 is already the VNI of VLAN 10",
    );
    // A whole configuration is validated as written.
    let whole = src(OVERLAY, Some(HOST));
    let (_, c) = parse_profile_alone(&whole, P).unwrap();
    assert_eq!(c.spec.overlay.unwrap().local_ip, ip("198.18.100.1"));
    // Without [overlay]: no [host.overlay] stand-in.
    let (config, _) = parse_profile_alone(&BASE[..split], P).unwrap();
    assert_eq!(config.host.overlay, None);
}

#[test]
fn a_separate_host_file_holds_the_endpoint() {
    let split = BASE.find("[host.uplinks]").unwrap();
    let profile = format!("{}[overlay]\n{OVERLAY}\n", &BASE[..split]);
    let host = format!("{}\n[host.overlay]\n{HOST}\n", &BASE[split..]);
    let c = parse_str(&profile, P, Some((&host, "h.toml")))
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(c.spec.overlay.unwrap().local_ip, ip("198.18.100.1"));
    let bad = host.replace("198.18.100.2", "198.18.100.1");
    let errs = parse_str(&profile, P, Some((&bad, "h.toml")))
        .unwrap_err()
        .into_vec();
    expect_in(
        &errs,
        "h.toml",
        line_of(&bad, "peers ="),
        "host.overlay.peers[0].address",
        "this host's own endpoint",
    );
}

// ---- refusals --------------------------------------------------------------------

#[test]
fn one_half_without_the_other_is_refused() {
    let host_only = with(&format!("\n[host.overlay]\n{HOST}\n"));
    expect(
        &host_only,
        "[host.overlay]",
        "host.overlay",
        "the profile has no [overlay]",
    );
    // [overlay] with a host binding lacking [host.overlay]: located at [host…].
    let profile_only = src(OVERLAY, None);
    expect(
        &profile_only,
        "[host.uplinks]",
        "host.overlay",
        "the profile has an [overlay]: this host needs [host.overlay] local_ip",
    );
}

#[test]
fn the_name_overlay_is_taken_while_the_overlay_is_on() {
    let port = src(OVERLAY, Some(HOST)).replace("name = \"vm1\"", "name = \"overlay\"");
    expect(
        &port,
        "name = \"overlay\"",
        "host.port[0].name",
        "the name of the overlay port",
    );
    let uplink = src(OVERLAY, Some(HOST))
        .replace("uplinks = [\"uplink1\"]", "uplinks = [\"overlay\"]")
        .replace("uplink1 = \"eth0\"", "overlay = \"eth0\"");
    expect(
        &uplink,
        "uplinks = [",
        "uplink_policy.uplinks[0]",
        "the name of the overlay port",
    );
    // Without an overlay the names are free.
    compile(&BASE.replace("name = \"vm1\"", "name = \"overlay\""));
}

#[test]
fn bad_vni_maps_are_refused_at_their_key() {
    let cases: &[(&str, &str, &str)] = &[
        ("vni = { 10 = 16777216 }", "overlay.vni.10", "24 bits"),
        ("vni = { 10 = -1 }", "overlay.vni.10", "24 bits"),
        ("vni = { 0 = 5 }", "overlay.vni.0", "VLAN"),
        ("vni = { 4095 = 5 }", "overlay.vni.4095", "VLAN"),
        ("vni = { web = 5 }", "overlay.vni.web", "not a VLAN ID"),
        (
            "vni = { 10 = 5, 20 = 5 }",
            "overlay.vni.20",
            "VNI 5 is already the VNI of VLAN 10",
        ),
        (
            "vni = { 10 = 5, 010 = 6 }",
            "overlay.vni.10",
            "mapped twice",
        ),
        ("vni = {}", "overlay.vni", "carries no VLAN"),
        (
            "vni = { 10 = 5 }\nudp_port = 0",
            "overlay.udp_port",
            "allowed 1..=65535",
        ),
        (
            "vni = { 10 = 5 }\nudp_port = 65536",
            "overlay.udp_port",
            "allowed 1..=65535",
        ),
        (
            "vni = { 10 = 5 }\nmax_remote_macs = 0",
            "overlay.max_remote_macs",
            "allowed 1..=1048576",
        ),
        (
            "vni = { 10 = 5 }\nmax_remote_macs = 1048577",
            "overlay.max_remote_macs",
            "allowed 1..=1048576",
        ),
        (
            "vni = { 10 = 5 }\nlocal_ip = \"198.18.100.1\"",
            "overlay.local_ip",
            "[host.overlay]",
        ),
        (
            "vni = { 10 = 5 }\npeers = []",
            "overlay.peers",
            "[host.overlay]",
        ),
    ];
    for (overlay, key, needle) in cases {
        let s = src(overlay, Some("local_ip = \"198.18.100.1\""));
        let last = overlay.lines().last().unwrap();
        let marker = last.split(" = ").next().unwrap();
        // `vni = {…}` errors point into the table; its line is the table's.
        let line = if key.starts_with("overlay.vni") {
            line_of(&s, "vni =")
        } else {
            line_of(&s, &format!("{marker} ="))
        };
        expect_in(&errors_of(&s), P, line, key, needle);
    }
    // A value of the wrong type is the shape's error, located.
    let s = src("vni = { 10 = \"x\" }", Some("local_ip = \"198.18.100.1\""));
    let errs = errors_of(&s);
    assert_eq!(errs[0].line, Some(line_of(&s, "vni =")), "{errs:?}");
    let s = src("vni = [10]", Some("local_ip = \"198.18.100.1\""));
    assert_eq!(errors_of(&s)[0].line, Some(line_of(&s, "vni =")));
}

#[test]
fn bad_endpoints_and_peers_are_refused_at_their_key() {
    let peer = |p: &str| format!("local_ip = \"198.18.100.1\"\npeers = [ {p} ]");
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "local_ip = \"198.18.100\"".into(),
            "host.overlay.local_ip",
            "not an IP address",
        ),
        (
            "local_ip = \"198.18.100.0/24\"".into(),
            "host.overlay.local_ip",
            "not a prefix",
        ),
        (
            "local_ip = \"0.0.0.0\"".into(),
            "host.overlay.local_ip",
            "unspecified",
        ),
        (
            "local_ip = \"239.1.1.1\"".into(),
            "host.overlay.local_ip",
            "multicast",
        ),
        (
            "local_ip = \"255.255.255.255\"".into(),
            "host.overlay.local_ip",
            "broadcast",
        ),
        (
            "local_ip = \"198.18.100.1\"\ninterface = \"an-interface-name-too-long\"".into(),
            "host.overlay.interface",
            "IFNAMSIZ",
        ),
        (
            "local_ip = \"198.18.100.1\"\ninterface = \"tap1\"".into(),
            "host.overlay.interface",
            "guest port interface",
        ),
        (
            "local_ip = \"198.18.100.1\"\nvni = { 10 = 5 }".into(),
            "host.overlay.vni",
            "the profile's",
        ),
        (
            peer("\"198.18.100.2\""),
            "host.overlay.peers[0]",
            "write { address = \"198.18.100.2\", macs = [ { vlan = 10, mac = ",
        ),
        (
            peer("{ address = \"198.18.100.1\" }"),
            "host.overlay.peers[0].address",
            "this host's own endpoint",
        ),
        (
            peer("{ address = \"2001:db8::2\" }"),
            "host.overlay.peers[0].address",
            "2001:db8::2 is IPv6, but local_ip 198.18.100.1 is IPv4",
        ),
        (
            peer("{ address = \"198.18.100.2\" }, { address = \"198.18.100.2\" }"),
            "host.overlay.peers[1].address",
            "peer 198.18.100.2 is listed twice (first as host.overlay.peers[0] at line",
        ),
        (
            peer("{ address = \"224.0.0.1\" }"),
            "host.overlay.peers[0].address",
            "multicast",
        ),
        (
            peer("{ address = \"x\" }"),
            "host.overlay.peers[0].address",
            "not an IP address",
        ),
        (
            peer(
                "{ address = \"198.18.100.2\", macs = [ { vlan = 30, mac = \"52:54:00:00:00:02\" } ] }",
            ),
            "host.overlay.peers[0].macs[0]",
            "VLAN 30 is not mapped to a VNI (overlay.vni maps 10, 20)",
        ),
        (
            peer(
                "{ address = \"198.18.100.2\", macs = [ { vlan = 10, mac = \"01:00:5e:00:00:01\" } ] }",
            ),
            "host.overlay.peers[0].macs[0]",
            "multicast",
        ),
        (
            peer(
                "{ address = \"198.18.100.2\", macs = [ { vlan = 10, mac = \"00:00:00:00:00:00\" } ] }",
            ),
            "host.overlay.peers[0].macs[0]",
            "not a usable MAC",
        ),
        (
            peer("{ address = \"198.18.100.2\", macs = [ { vlan = 10, mac = \"nope\" } ] }"),
            "host.overlay.peers[0].macs[0].mac",
            "not a MAC address",
        ),
        (
            peer(
                "{ address = \"198.18.100.2\", macs = [ { vlan = 4095, mac = \"52:54:00:00:00:02\" } ] }",
            ),
            "host.overlay.peers[0].macs[0].vlan",
            "VLAN",
        ),
        (
            peer(
                "{ address = \"198.18.100.2\", macs = [ { vlan = 10, mac = \"52:54:00:00:00:02\" } ] }, { address = \"198.18.100.3\", macs = [ { vlan = 10, mac = \"52:54:00:00:00:02\" } ] }",
            ),
            "host.overlay.peers[1].macs[0]",
            "already behind peer 198.18.100.2",
        ),
        (
            peer(
                "{ address = \"198.18.100.2\", macs = [ { vlan = 10, mac = \"52:54:00:12:34:56\" } ] }",
            ),
            "host.overlay.peers[0].macs[0]",
            "is a MAC of this host (host.port[0].mac at line",
        ),
    ];
    for (host, key, needle) in cases {
        let s = src(OVERLAY, Some(&host)).replace(
            "port_group = \"web\"\n",
            "port_group = \"web\"\nmac = \"52:54:00:12:34:56\"\n",
        );
        let field = split_key(key)
            .last()
            .unwrap()
            .split('[')
            .next()
            .unwrap()
            .to_owned();
        // Inline values sit on the line of their key.
        let marker = match field.as_str() {
            "address" | "macs" | "mac" | "vlan" => "peers =".to_owned(),
            f => format!("{f} ="),
        };
        let line = last_line_where(&s, |l| l.starts_with(&marker));
        expect_in(&errors_of(&s), P, line, key, needle);
    }
}

#[test]
fn more_than_max_endpoints_peers_are_refused() {
    let n = portcullis_dataplane::overlay::MAX_ENDPOINTS + 1;
    let peers: Vec<String> = (1..=n)
        .map(|i| format!("{{ address = \"10.0.{}.{}\" }}", i >> 8, i & 255))
        .collect();
    let host = format!(
        "local_ip = \"198.18.100.1\"\npeers = [\n{}\n]",
        peers.join(",\n")
    );
    let s = src(OVERLAY, Some(&host));
    let errs = errors_of(&s);
    let e = errs
        .iter()
        .find(|e| e.key == "host.overlay.peers[1024]")
        .unwrap_or_else(|| panic!("{errs:?}"));
    assert!(e.message.contains("1025 peers"), "{e}");
    assert!(e.line.is_some());
}

// ---- diff and compliance ---------------------------------------------------------

#[test]
fn the_overlay_flattens_to_its_keys() {
    let c = parse_str(&src(OVERLAY, Some(HOST)), P, None).unwrap();
    let flat = crate::diff::flatten_config(&c);
    let get = |k: &str| flat.get(k).map(String::as_str);
    assert_eq!(get("overlay.vni.10"), Some("10010"));
    assert_eq!(get("overlay.vni.20"), Some("10020"));
    assert_eq!(get("overlay.udp_port"), Some("4789"));
    assert_eq!(get("overlay.arp_proxy"), Some("false"));
    assert_eq!(get("overlay.max_remote_macs"), Some("65536"));
    assert_eq!(get("overlay"), None);
    assert_eq!(get("host.overlay.local_ip"), Some("198.18.100.1"));
    assert_eq!(get("host.overlay.interface"), Some("eth1"));
    assert_eq!(get("host.overlay.fragment"), Some("false"));
    assert_eq!(
        get("host.overlay.peer.\"198.18.100.2\""),
        Some("[10 52:54:00:00:00:02]")
    );
    let base = crate::diff::flatten_config(&parse_str(BASE, P, None).unwrap());
    assert_eq!(base.get("overlay").map(String::as_str), Some(OFF));
    assert!(!base.keys().any(|k| k.starts_with("host.overlay")));
    // Stated defaults flatten like omitted ones.
    let stated = src(
        &format!("{OVERLAY}\nudp_port = 4789\narp_proxy = false\nmax_remote_macs = 65536"),
        Some(HOST),
    );
    assert_eq!(
        crate::diff::flatten_config(&parse_str(&stated, P, None).unwrap()),
        flat
    );
}

#[test]
fn compliance_reports_overlay_drift_by_key() {
    let golden = parse_str(&src(OVERLAY, Some(HOST)), P, None).unwrap();
    let running = parse_str(
        &src(
            "vni = { 10 = 10010, 20 = 10021 }\narp_proxy = true",
            Some(HOST),
        ),
        P,
        None,
    )
    .unwrap();
    let report = crate::compliance::check_profile(&golden.profile, &running.profile, None);
    let keys: Vec<&str> = report.findings.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["overlay.arp_proxy", "overlay.vni.20"]);
    // No overlay where the golden profile has one: one finding on `overlay`.
    let none = parse_str(BASE, P, None).unwrap();
    let report = crate::compliance::check_profile(&golden.profile, &none.profile, None);
    let keys: Vec<&str> = report.findings.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["overlay"]);
    assert!(report.render().contains("overlay"));
}

// ---- no panic --------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary values in every overlay key never panic the loader, and whatever
    /// loads passes the data plane's check.
    #[test]
    fn overlay_values_never_panic(
        vlan in "[ -~]{0,6}",
        vni in any::<i64>(),
        udp in any::<i64>(),
        max in any::<i64>(),
        local in "[ -~]{0,20}",
        iface in "[ -~]{0,20}",
        peer in "[ -~]{0,20}",
        peer_vlan in any::<i64>(),
        peer_mac in "[ -~]{0,20}",
        bare in any::<bool>(),
    ) {
        let overlay = format!(
            "vni = {{ {} = {vni}, 20 = 10020 }}\nudp_port = {udp}\nmax_remote_macs = {max}",
            toml::Value::from(vlan.as_str())
        );
        let peers = if bare {
            format!("peers = [ {peer:?} ]")
        } else {
            format!(
                "peers = [ {{ address = {}, macs = [ {{ vlan = {peer_vlan}, mac = {} }} ] }} ]",
                toml::Value::from(peer.as_str()),
                toml::Value::from(peer_mac.as_str())
            )
        };
        let host = format!(
            "local_ip = {}\ninterface = {}\n{peers}",
            toml::Value::from(local.as_str()),
            toml::Value::from(iface.as_str())
        );
        never_panics(&src(&overlay, Some(&host)), None);
        never_panics(&src(&overlay, None), None);
        let _ = parse_profile_alone(&src(&overlay, None), P);
    }

    /// Valid-looking overlays in every shape compile to a spec the data plane
    /// accepts, with the overlay port right after the uplinks.
    #[test]
    fn valid_overlays_compile_and_pass_the_check(
        map in proptest::collection::btree_map(1u16..=4094, 0u32..=Vni::MAX, 1..8),
        peers in proptest::collection::vec((1u8..=254, 0u8..=255), 0..6),
    ) {
        let vni: Vec<String> = map.iter().map(|(v, n)| format!("{v} = {n}")).collect();
        // Unique VNIs only: a repeated one is a refusal, tested above.
        prop_assume!(map.values().collect::<std::collections::HashSet<_>>().len() == map.len());
        let first = *map.keys().next().unwrap();
        let mut seen = std::collections::HashSet::new();
        let peers: Vec<String> = peers
            .iter()
            .filter(|(a, _)| seen.insert(*a))
            .map(|(a, m)| {
                format!(
                    "{{ address = \"198.18.101.{a}\", macs = [ {{ vlan = {first}, mac = \"52:54:00:00:{a:02x}:{m:02x}\" }} ] }}"
                )
            })
            .collect();
        let s = src(
            &format!("vni = {{ {} }}", vni.join(", ")),
            Some(&format!("local_ip = \"198.18.100.1\"\npeers = [ {} ]", peers.join(", "))),
        );
        let (_, c) = parse_str_compiled(&s, P, None).unwrap();
        c.spec.check().unwrap();
        prop_assert_eq!(c.spec.ports[1].role, PortRole::Overlay);
        prop_assert_eq!(c.spec.overlay.unwrap().vnis.len(), map.len());
    }
}
