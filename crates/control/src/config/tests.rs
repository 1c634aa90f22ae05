//! Tests of loading, validation and compilation. Every error test checks the
//! file, the line and the key of the error, through its displayed form.

use super::*;
use portcullis_dataplane::{
    AclAction, ArpAclRule, ArpAclSpec, ArpInspectionSpec, DhcpSnoopingSpec, Dhcpv6GuardSpec,
    EnforceMode, IpSourceGuardSpec, Ipv6SourceGuardSpec, MAX_ACL_RULES, MAX_PORTS, MacAclRule,
    MacAddr, MacMatch, NdInspectionSpec, Option82, Policy, PortFeatures, PortRole,
    PortSecuritySpec, RaGuardSpec, SecureAging, SecurityPolicy, SourceGuard, SpecError,
    StaticBindingSpec, StormControlSpec, SwitchSpec, TeamingPolicy, TeamingSpec, Vid, Violation,
    VlanMode, VlanSet,
};
use proptest::prelude::*;

/// The I/O backend of ports and uplinks (`backend`, `[host.uplink_backend]`).
mod backend;
/// DHCPv6 guard: its table, the uplinks' trust, its flat keys and errors.
mod dhcpv6_guard;
/// Port security, storm control and MAC ACLs.
mod features;
/// ND inspection and IPv6 Source Guard: their tables, the uplinks' trust, flat keys
/// and errors.
mod nd_inspection;
/// The VXLAN overlay: `[overlay]`, `[host.overlay]`, the overlay port.
mod overlay;
/// RA guard: its table, the uplinks' trust, its flat keys and errors.
mod ra_guard;
/// DHCP snooping, ARP inspection, IP Source Guard, static bindings and ARP ACLs.
mod snooping;
/// NIC teaming: policies, active and standby uplinks, the VLANs the team carries.
mod teaming;
mod vhost_user;

const P: &str = "profile.toml";

/// A small valid configuration; tests append to it or replace parts of it.
const BASE: &str = r#"[switch]
name = "t"

[uplink_policy]
uplinks = ["uplink1"]
allowed_vlans = [10, 20]

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "db"
vlan = 20

[host.uplinks]
uplink1 = "eth0"

[[host.port]]
name = "vm1"
interface = "tap1"
port_group = "web"
"#;

fn vid(v: u16) -> Vid {
    Vid::new(v).unwrap()
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn errors_of(src: &str) -> Vec<ConfigError> {
    match parse_str(src, P, None) {
        Ok(_) => panic!("accepted:\n{src}"),
        Err(e) => e.into_vec(),
    }
}

/// The 1-based line of the first line of `src` containing `marker`.
fn line_of(src: &str, marker: &str) -> usize {
    src.lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("{marker:?} not in source"))
        + 1
}

/// The 1-based line of the last line of `src` satisfying `f`.
fn last_line_where(src: &str, f: impl Fn(&str) -> bool) -> usize {
    let lines: Vec<&str> = src.lines().collect();
    lines.iter().rposition(|l| f(l)).expect("no such line") + 1
}

/// Asserts that `src` is refused with an error in `file` at the line holding
/// `marker`, about `key`, whose message contains `needle`.
#[track_caller]
fn expect_in(
    errors: &[ConfigError],
    file: &str,
    line: usize,
    key: &str,
    needle: &str,
) -> ConfigError {
    let prefix = format!("{file}:{line}:");
    let infix = format!(": {key}: ");
    errors
        .iter()
        .find(|e| {
            let shown = e.to_string();
            shown.starts_with(&prefix) && shown.contains(&infix) && e.message.contains(needle)
        })
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "expected `{prefix}..{infix}..{needle}`; got:\n{}",
                errors
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
}

#[track_caller]
fn expect(src: &str, marker: &str, key: &str, needle: &str) -> ConfigError {
    expect_in(&errors_of(src), P, line_of(src, marker), key, needle)
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

#[test]
fn parsing_returns_the_compilation_it_checked() {
    let example = example_profile();
    for src in [BASE, example] {
        let (config, compiled) = parse_str_compiled(src, P, None).unwrap();
        assert_eq!(compiled, config.compile().unwrap());
        assert_eq!(parse_str(src, P, None).unwrap().profile, config.profile);
    }
    let bad = with("[[port_group]]\nname = \"web\"\nvlan = 30\n");
    assert_eq!(
        parse_str_compiled(&bad, P, None).unwrap_err(),
        parse_str(&bad, P, None).unwrap_err()
    );
}

#[test]
fn base_is_valid() {
    let c = parse_str(BASE, P, None).unwrap().compile().unwrap();
    assert_eq!(c.interfaces, ["eth0", "tap1"]);
}

// ---- the documented example ---------------------------------------------------

#[test]
fn example_parses_and_compiles_to_the_expected_spec() {
    let config = parse_str(example_profile(), "example.toml", None).unwrap();
    let c = config.compile().unwrap();
    let spec = &c.spec;
    assert_eq!(spec.name, "prod");
    assert_eq!(spec.mac_table_size, 65536);
    assert_eq!(spec.mac_aging_secs, 300);
    assert_eq!(spec.max_bindings, 262_144);

    let names: Vec<&str> = spec.ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["uplink1", "uplink2", "vm1", "vm2", "lb1", "kvm1", "dhcp1"]
    );
    assert_eq!(
        c.interfaces,
        [
            "eth0",
            "eth1",
            "tap-vm1",
            "tap-vm2",
            "veth-lb1",
            "tap-kvm1",
            "tap-dhcp1"
        ]
    );
    assert_eq!(
        c.groups,
        [
            None,
            None,
            Some("web".into()),
            Some("db".into()),
            Some("router".into()),
            Some("nested".into()),
            Some("web".into())
        ]
    );
    assert_eq!(
        c.interface_keys,
        [
            "host.uplinks.uplink1",
            "host.uplinks.uplink2",
            "host.port[0].interface",
            "host.port[1].interface",
            "host.port[2].interface",
            "host.port[3].interface",
            "host.port[4].interface"
        ]
    );

    let trunk_vids = VlanSet::from_vids([10, 20, 100, 101, 102, 103].map(vid));
    let uplink_mode = VlanMode::Trunk {
        allowed: trunk_vids.clone(),
        native: Some(vid(1)),
    };
    for p in &spec.ports[..2] {
        assert_eq!(p.role, PortRole::Uplink);
        assert_eq!(p.vlan, uplink_mode);
        assert_eq!(p.initial_mac, None);
    }
    let hardened = SecurityPolicy::default();
    let vm1 = &spec.ports[2];
    assert_eq!(vm1.role, PortRole::Guest);
    assert_eq!(vm1.vlan, VlanMode::Access(vid(10)));
    assert_eq!(vm1.security, hardened);
    assert_eq!(vm1.initial_mac, Some("52:54:00:12:34:56".parse().unwrap()));
    let vm2 = &spec.ports[3];
    assert_eq!(vm2.vlan, VlanMode::Access(vid(20)));
    assert_eq!(vm2.initial_mac, Some("52:54:00:12:34:57".parse().unwrap()));
    // The group says mac_changes = accept, the port adds forged_transmits = accept.
    let lb1 = &spec.ports[4];
    assert_eq!(lb1.role, PortRole::Guest);
    assert_eq!(
        lb1.vlan,
        VlanMode::Trunk {
            allowed: trunk_vids,
            native: Some(vid(1))
        }
    );
    assert_eq!(
        lb1.security,
        SecurityPolicy {
            promiscuous: Policy::Reject,
            mac_changes: Policy::Accept,
            forged_transmits: Policy::Accept,
        }
    );
    assert_eq!(lb1.initial_mac, None);
    assert_eq!(lb1.features, PortFeatures::default());
    // vm2: the db group rolls DHCP snooping, ARP inspection and IP Source Guard out
    // in observe mode, ARP without a rate limit, and pins its traffic to uplink2
    // (explicit failover to uplink1, no failback).
    assert_eq!(
        spec.ports[3].features,
        PortFeatures {
            dhcp_snooping: Some(DhcpSnoopingSpec {
                trusted: false,
                rate_limit_pps: None,
                option82: Option82::Keep,
                drop_untrusted_option82: true,
                mode: EnforceMode::Observe,
            }),
            arp_inspection: Some(ArpInspectionSpec {
                trusted: false,
                validate_src_mac: false,
                validate_dst_mac: false,
                validate_ip: false,
                rate_limit_pps: None,
                acl: None,
                mode: EnforceMode::Observe,
            }),
            ip_source_guard: Some(IpSourceGuardSpec {
                check: SourceGuard::Ip,
                mode: EnforceMode::Observe,
            }),
            teaming: Some(TeamingSpec {
                policy: TeamingPolicy::ExplicitFailover,
                active: vec!["uplink2".into()],
                standby: vec!["uplink1".into()],
                failback: false,
            }),
            ..PortFeatures::default()
        },
    );

    // Storm control on every uplink; no ACL there. Trusted for DHCP snooping, ARP
    // inspection and RA guard, which groups enable (web enforcing, so the uplinks
    // enforce).
    for p in &spec.ports[..2] {
        assert_eq!(
            p.features,
            PortFeatures {
                storm_control: Some(StormControlSpec {
                    broadcast_pps: Some(20000),
                    multicast_pps: Some(50000),
                    unknown_unicast_pps: None,
                    shutdown: false,
                }),
                dhcp_snooping: Some(DhcpSnoopingSpec {
                    trusted: true,
                    rate_limit_pps: None,
                    option82: Option82::Keep,
                    drop_untrusted_option82: false,
                    mode: EnforceMode::Enforce,
                }),
                arp_inspection: Some(ArpInspectionSpec {
                    trusted: true,
                    validate_src_mac: false,
                    validate_dst_mac: false,
                    validate_ip: false,
                    rate_limit_pps: None,
                    acl: None,
                    mode: EnforceMode::Enforce,
                }),
                ra_guard: Some(RaGuardSpec {
                    trusted: true,
                    mode: EnforceMode::Enforce,
                }),
                nd_inspection: Some(NdInspectionSpec {
                    trusted: true,
                    max_addresses: 64,
                    rate_limit_pps: None,
                    mode: EnforceMode::Enforce,
                    binding_lifetime_secs: 3600,
                }),
                dhcpv6_guard: Some(Dhcpv6GuardSpec {
                    trusted: true,
                    rate_limit_pps: None,
                    mode: EnforceMode::Enforce,
                }),
                ..PortFeatures::default()
            }
        );
    }
    // vm1: the web group's port security, storm control, ingress ACL, DHCP
    // snooping, ARP inspection (default 15 pps), IP Source Guard and RA guard.
    let web_dhcp = DhcpSnoopingSpec {
        trusted: false,
        rate_limit_pps: Some(20),
        option82: Option82::Insert,
        drop_untrusted_option82: true,
        mode: EnforceMode::Enforce,
    };
    let web_features = PortFeatures {
        port_security: Some(PortSecuritySpec {
            max_macs: 1,
            violation: Violation::Shutdown,
            sticky: false,
            aging: SecureAging::None,
            aging_secs: 0,
            static_macs: vec![],
            sticky_macs: vec![],
        }),
        storm_control: Some(StormControlSpec {
            broadcast_pps: Some(100),
            multicast_pps: Some(1000),
            unknown_unicast_pps: Some(100),
            shutdown: false,
        }),
        mac_acl_in: Some("guests-in".into()),
        mac_acl_out: None,
        errdisable_recovery_secs: Some(300),
        dhcp_snooping: Some(web_dhcp),
        arp_inspection: Some(ArpInspectionSpec {
            trusted: false,
            validate_src_mac: true,
            validate_dst_mac: false,
            validate_ip: true,
            rate_limit_pps: Some(15),
            acl: Some("web-arp".into()),
            mode: EnforceMode::Enforce,
        }),
        ip_source_guard: Some(IpSourceGuardSpec {
            check: SourceGuard::IpMac,
            mode: EnforceMode::Enforce,
        }),
        ra_guard: Some(RaGuardSpec {
            trusted: false,
            mode: EnforceMode::Enforce,
        }),
        nd_inspection: Some(NdInspectionSpec {
            trusted: false,
            max_addresses: 8,
            rate_limit_pps: Some(30),
            mode: EnforceMode::Enforce,
            binding_lifetime_secs: 3600,
        }),
        ipv6_source_guard: Some(Ipv6SourceGuardSpec {
            check: SourceGuard::IpMac,
            mode: EnforceMode::Enforce,
        }),
        dhcpv6_guard: Some(Dhcpv6GuardSpec {
            trusted: false,
            rate_limit_pps: Some(20),
            mode: EnforceMode::Enforce,
        }),
        teaming: None,
    };
    assert_eq!(vm1.features, web_features);
    // dhcp1: the same, trusted for DHCP snooping (its own override; the rest of
    // the table comes from the group).
    let dhcp1 = &spec.ports[6];
    assert_eq!(dhcp1.initial_mac, Some(mac("52:54:00:12:34:59")));
    assert_eq!(
        dhcp1.features,
        PortFeatures {
            dhcp_snooping: Some(DhcpSnoopingSpec {
                trusted: true,
                ..web_dhcp
            }),
            ..web_features.clone()
        }
    );
    // kvm1: capped learning from the nested group, max_macs and storm control
    // from the port.
    let kvm1 = &spec.ports[5];
    assert_eq!(kvm1.vlan, VlanMode::Access(vid(100)));
    assert_eq!(
        kvm1.security,
        SecurityPolicy {
            forged_transmits: Policy::Accept,
            ..SecurityPolicy::default()
        }
    );
    assert_eq!(
        kvm1.features,
        PortFeatures {
            port_security: Some(PortSecuritySpec {
                max_macs: 16,
                violation: Violation::Restrict,
                sticky: false,
                aging: SecureAging::Inactivity,
                aging_secs: 300,
                static_macs: vec![mac("52:54:00:aa:00:01")],
                sticky_macs: vec![],
            }),
            storm_control: Some(StormControlSpec {
                broadcast_pps: Some(500),
                ..StormControlSpec::default()
            }),
            ..PortFeatures::default()
        }
    );
    // The ACL, rules in file order.
    assert_eq!(spec.mac_acls.len(), 1);
    let acl = &spec.mac_acls[0];
    assert_eq!(acl.name, "guests-in");
    let rule = |action, ethertype| MacAclRule {
        action,
        src: None,
        dst: None,
        ethertype,
        vlan: None,
        cos: None,
    };
    assert_eq!(
        acl.rules,
        [
            MacAclRule {
                dst: Some(MacMatch {
                    mac: mac("01:80:c2:00:00:00"),
                    mask: mac("ff:ff:ff:ff:ff:f0"),
                }),
                ..rule(AclAction::Deny, None)
            },
            rule(AclAction::Permit, Some(0x0800)),
            rule(AclAction::Permit, Some(0x0806)),
            rule(AclAction::Permit, Some(0x86dd)),
            rule(AclAction::Deny, None),
        ]
    );
    // The ARP ACL, and vm1's static binding (port index 2: after the two uplinks).
    assert_eq!(
        spec.arp_acls,
        [ArpAclSpec {
            name: "web-arp".into(),
            static_only: false,
            rules: vec![
                ArpAclRule {
                    action: AclAction::Permit,
                    ip: "198.18.10.2".parse().unwrap(),
                    prefix_len: 32,
                    mac: Some(MacMatch {
                        mac: mac("52:54:00:12:34:59"),
                        mask: MacAddr::BROADCAST,
                    }),
                },
                ArpAclRule {
                    action: AclAction::Deny,
                    ip: "198.18.10.0".parse().unwrap(),
                    prefix_len: 28,
                    mac: None,
                },
            ],
        }]
    );
    assert_eq!(
        spec.static_bindings,
        [StaticBindingSpec {
            mac: mac("52:54:00:12:34:56"),
            ip: "198.18.10.20".parse().unwrap(),
            vid: vid(10),
            port: 2,
        }]
    );
    spec.check().unwrap();
    check_new_invariants(spec);

    // The model keeps what was written.
    let router = &config.profile.port_groups[2];
    assert_eq!(
        router.vlan,
        GroupVlan::Trunk {
            vlans: vec![
                VlanRange::single(vid(10)),
                VlanRange::single(vid(20)),
                VlanRange {
                    first: vid(100),
                    last: vid(103)
                }
            ],
            native_vlan: Some(vid(1)),
        }
    );
    assert_eq!(config.host.uplinks[1].interface, "eth1");
    assert_eq!(
        config.host.ports[4].dhcp_snooping,
        Some(DhcpSnoopingOverride {
            trusted: Some(true),
            ..Default::default()
        })
    );
    assert_eq!(
        config.host.static_bindings,
        [StaticBinding {
            mac: mac("52:54:00:12:34:56"),
            ip: "198.18.10.20".parse().unwrap(),
            vlan: Some(vid(10)),
            port: "vm1".into(),
        }]
    );
    assert_eq!(
        config.profile.port_groups[1].ip_source_guard,
        Some(IpSourceGuardOverride {
            enabled: None,
            check: Some(SourceGuard::Ip),
            mode: Some(EnforceMode::Observe),
        })
    );
    assert_eq!(
        config.profile.port_groups[1]
            .arp_inspection
            .as_ref()
            .unwrap()
            .rate_limit_pps,
        Some(RateLimit::Unlimited)
    );
    assert_eq!(
        config.profile.port_groups[1].teaming,
        Some(TeamingOverride {
            policy: Some(TeamingPolicy::ExplicitFailover),
            active: Some(vec!["uplink2".into()]),
            standby: Some(vec!["uplink1".into()]),
            failback: Some(false),
        })
    );
    // The other groups state no teaming: originating-port over both uplinks,
    // failback on (the data plane's default).
    assert_eq!(config.profile.port_groups[0].teaming, None);
}

/// What the data plane will need of the parts of a spec that
/// [`SwitchSpec::check`] does not (yet) check: static bindings on existing ports
/// and VLANs they carry, one per (VLAN, IP), within `max_bindings`; ARP ACLs bound
/// by name exist, with prefixes of at most 32 bits.
fn check_new_invariants(spec: &SwitchSpec) {
    assert!(spec.max_bindings >= 1);
    assert!(spec.static_bindings.len() <= spec.max_bindings);
    let mut seen = std::collections::HashSet::new();
    for b in &spec.static_bindings {
        let p = &spec.ports[b.port];
        assert!(p.vlan.carries(b.vid), "{b:?} on {}", p.name);
        assert!(seen.insert((b.vid, b.ip)), "{b:?} twice");
        assert!(b.mac.is_valid_source(), "{b:?}");
    }
    for p in &spec.ports {
        if let Some(acl) = p
            .features
            .arp_inspection
            .as_ref()
            .and_then(|a| a.acl.as_ref())
        {
            assert!(spec.arp_acls.iter().any(|a| &a.name == acl), "{acl}");
        }
        if p.role == PortRole::Uplink {
            assert_eq!(p.features.ip_source_guard, None);
            assert_eq!(p.features.teaming, None);
        }
    }
    for a in &spec.arp_acls {
        assert!(a.rules.iter().all(|r| r.prefix_len <= 32));
    }
}

#[test]
fn docs_contain_the_example_verbatim() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let docs = std::fs::read_to_string(path).expect("docs/config.md");
    assert!(
        docs.contains(example_profile()),
        "docs/config.md must contain src/config/example.toml verbatim"
    );
}

#[test]
fn defaults_apply() {
    let src = "[switch]\nname = \"s\"\n";
    let c = parse_str(src, P, None).unwrap().compile().unwrap();
    assert_eq!(c.spec.mac_table_size, 65536);
    assert_eq!(c.spec.mac_aging_secs, 300);
    assert!(c.spec.ports.is_empty());
}

#[test]
fn security_overrides_merge_field_by_field() {
    let src = with(
        r#"
[[port_group]]
name = "open"
vlan = 30
security = { promiscuous = "accept", forged_transmits = "accept" }

[[host.port]]
name = "vm2"
interface = "tap2"
port_group = "open"
security = { promiscuous = "reject", mac_changes = "accept" }

[[host.port]]
name = "vm3"
interface = "tap3"
port_group = "web"
security.mac_changes = "accept"
"#,
    );
    let c = parse_str(&src, P, None).unwrap().compile().unwrap();
    let by_name = |n: &str| c.spec.ports.iter().find(|p| p.name == n).unwrap().security;
    use Policy::{Accept, Reject};
    let sp = |promiscuous, mac_changes, forged_transmits| SecurityPolicy {
        promiscuous,
        mac_changes,
        forged_transmits,
    };
    assert_eq!(by_name("vm1"), sp(Reject, Reject, Reject));
    assert_eq!(by_name("vm2"), sp(Reject, Accept, Accept));
    assert_eq!(by_name("vm3"), sp(Reject, Accept, Reject));
}

#[test]
fn vlan_ranges_and_native_vlan_compile() {
    let src = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [\"1-3\", 3, \"7\"]\nnative_vlan = 99",
    ) + "\n[[port_group]]\nname = \"vgt\"\nvlans = [\"5-6\"]\n";
    let c = parse_str(&src, P, None).unwrap().compile().unwrap();
    assert_eq!(
        c.spec.ports[0].vlan,
        VlanMode::Trunk {
            allowed: VlanSet::from_vids([1, 2, 3, 7].map(vid)),
            native: Some(vid(99))
        }
    );
}

// ---- syntax and shape errors --------------------------------------------------

#[test]
fn syntax_error_names_file_line_and_key() {
    let src = "[switch]\nname = \"t\"\n[[port_group]]\nname = \"web\nvlan = 10\n";
    let errs = errors_of(src);
    assert_eq!(errs.len(), 1);
    let e = expect_in(&errs, P, 4, "port_group[0].name", "syntax");
    assert!(e.column.is_some());
}

#[test]
fn duplicate_toml_key_is_a_syntax_error() {
    let src = "[switch]\nname = \"t\"\nname = \"u\"\n";
    expect_in(&errors_of(src), P, 3, "switch.name", "duplicate key");
}

#[test]
fn unknown_key_names_the_key() {
    let src = BASE.replace("name = \"t\"", "name = \"t\"\nmac_tabel_size = 10");
    let e = expect(
        &src,
        "mac_tabel_size",
        "switch.mac_tabel_size",
        "unknown field",
    );
    assert!(e.message.contains("mac_table_size"), "{e}");
    assert_eq!(e.column, Some(1));
}

#[test]
fn unknown_key_in_inline_table_and_unknown_table() {
    let src = BASE.replace(
        "vlan = 10",
        "vlan = 10\nsecurity = { promiscuous = \"accept\", arp = \"x\" }",
    );
    expect(&src, "arp =", "port_group[0].security.arp", "unknown field");
    let src = with("\n[[ip_acl]]\nname = \"x\"\n");
    expect(&src, "[[ip_acl]]", "ip_acl", "unknown field `ip_acl`");
    let src = with("frobnicate = true\n");
    expect(
        &src,
        "frobnicate",
        "host.port[0].frobnicate",
        "unknown field",
    );
}

#[test]
fn wrong_type_names_the_key() {
    let src = BASE.replace("vlan = 10", "vlan = \"10\"");
    expect(
        &src,
        "vlan = \"10\"",
        "port_group[0].vlan",
        "expected an integer",
    );
    let src = BASE.replace("allowed_vlans = [10, 20]", "allowed_vlans = [10, 2.5]");
    expect(
        &src,
        "allowed_vlans",
        "uplink_policy.allowed_vlans[1]",
        "VLAN ID",
    );
    let src = BASE.replace("uplink1 = \"eth0\"", "uplink1 = 3");
    expect(
        &src,
        "uplink1 = 3",
        "host.uplinks.uplink1",
        "expected a string",
    );
    let src = BASE.replace(
        "[[port_group]]\nname = \"db\"",
        "[port_group2]\nname = \"db\"",
    );
    expect(&src, "[port_group2]", "port_group2", "unknown field");
}

#[test]
fn missing_required_key_names_the_key() {
    let src = with("\n[[host.port]]\nname = \"vm2\"\nport_group = \"web\"\n");
    let errs = errors_of(&src);
    // At the header of the second [[host.port]].
    let line = last_line_where(&src, |l| l == "[[host.port]]");
    expect_in(
        &errs,
        P,
        line,
        "host.port[1].interface",
        "missing field `interface`",
    );

    let errs = errors_of("");
    expect_in(&errs, P, 1, "switch", "missing field `switch`");
    let src = "[switch]\nmac_aging_secs = 30\n";
    expect(src, "[switch]", "switch.name", "missing field `name`");
}

// ---- values -------------------------------------------------------------------

#[test]
fn vlan_out_of_range() {
    let src = BASE.replace("vlan = 10", "vlan = 4095");
    expect(&src, "vlan = 4095", "port_group[0].vlan", "reserved");
    let src = BASE.replace("vlan = 10", "vlan = 0");
    expect(&src, "vlan = 0", "port_group[0].vlan", "outside 1..=4094");
    let src = BASE.replace("vlan = 10", "vlan = -70000");
    expect(
        &src,
        "vlan = -70000",
        "port_group[0].vlan",
        "outside 1..=4094",
    );
    let src = BASE.replace("[10, 20]", "[10, 0, \"4000-5000\"]\nnative_vlan = 5000");
    let errs = errors_of(&src);
    let line = line_of(&src, "allowed_vlans");
    expect_in(&errs, P, line, "uplink_policy.allowed_vlans[1]", "VLAN 0");
    expect_in(
        &errs,
        P,
        line,
        "uplink_policy.allowed_vlans[2]",
        "VLAN 5000",
    );
    expect_in(&errs, P, line + 1, "uplink_policy.native_vlan", "VLAN 5000");
}

#[test]
fn malformed_vlan_ranges() {
    let src = BASE.replace("[10, 20]", "[\"10-\", \"abc\", \"20-10\", \"5 6\"]");
    let errs = errors_of(&src);
    let line = line_of(&src, "allowed_vlans");
    expect_in(
        &errs,
        P,
        line,
        "uplink_policy.allowed_vlans[0]",
        "not a VLAN ID or range",
    );
    expect_in(
        &errs,
        P,
        line,
        "uplink_policy.allowed_vlans[1]",
        "not a VLAN ID or range",
    );
    let e = expect_in(&errs, P, line, "uplink_policy.allowed_vlans[2]", "reversed");
    assert!(e.message.contains("\"10-20\""), "{e}");
    expect_in(
        &errs,
        P,
        line,
        "uplink_policy.allowed_vlans[3]",
        "not a VLAN ID or range",
    );
    assert_eq!(errs.len(), 4);
}

#[test]
fn vlan_and_vlans_exactly_one() {
    let src = BASE.replace("vlan = 10", "vlan = 10\nvlans = [10]");
    expect(&src, "vlans = [10]", "port_group[0].vlans", "not both");
    let src = BASE.replace("vlan = 10\n", "");
    let e = expect(&src, "[[port_group]]", "port_group[0]", "needs `vlan");
    assert!(e.message.contains("\"web\""));
    // The port in the broken group is not reported as in an unknown group.
    assert_eq!(errors_of(&src).len(), 1);
    let src = BASE.replace("vlan = 10", "vlan = 10\nnative_vlan = 1");
    expect(
        &src,
        "native_vlan",
        "port_group[0].native_vlan",
        "only to a guest-tagging trunk",
    );
    let src = BASE.replace("vlan = 10", "vlans = []");
    expect(&src, "vlans = []", "port_group[0].vlans", "empty");
}

#[test]
fn invalid_macs() {
    let src = with("mac = \"52:54:00:12:34\"\n");
    expect(&src, "mac =", "host.port[0].mac", "not a MAC address");
    let src = with("mac = \"01:00:5e:00:00:01\"\n");
    expect(&src, "mac =", "host.port[0].mac", "multicast");
    let src = with("mac = \"ff:ff:ff:ff:ff:ff\"\n");
    expect(&src, "mac =", "host.port[0].mac", "multicast");
    let src = with("mac = \"00:00:00:00:00:00\"\n");
    expect(&src, "mac =", "host.port[0].mac", "not a usable MAC");
}

#[test]
fn duplicate_mac_in_one_vlan() {
    let port = |name: &str, ifname: &str, group: &str| {
        format!(
            "\n[[host.port]]\nname = \"{name}\"\ninterface = \"{ifname}\"\nport_group = \"{group}\"\nmac = \"52:54:00:00:00:01\"\n"
        )
    };
    let src = with(&format!(
        "mac = \"52:54:00:00:00:01\"\n{}",
        port("vm2", "tap2", "web")
    ));
    let errs = errors_of(&src);
    let line = last_line_where(&src, |l| l.starts_with("mac ="));
    let e = expect_in(&errs, P, line, "host.port[1].mac", "VLAN 10");
    assert!(e.message.contains("\"vm1\""), "{e}");
    // One MAC in two VLANs is fine.
    let src = with(&format!(
        "mac = \"52:54:00:00:00:01\"\n{}",
        port("vm2", "tap2", "db")
    ));
    parse_str(&src, P, None).unwrap();
    // A trunk overlaps an access VLAN.
    let src = with(&format!(
        "mac = \"52:54:00:00:00:01\"\n[[port_group]]\nname = \"vgt\"\nvlans = [\"5-15\"]\n{}",
        port("vm2", "tap2", "vgt")
    ));
    let line = last_line_where(&src, |l| l.starts_with("mac ="));
    expect_in(&errors_of(&src), P, line, "host.port[1].mac", "VLAN 10");
}

#[test]
fn bad_policy_words() {
    let src = BASE.replace(
        "vlan = 10",
        "vlan = 10\nsecurity = { promiscuous = \"Accept\" }",
    );
    let e = expect(
        &src,
        "security",
        "port_group[0].security.promiscuous",
        "not a policy",
    );
    assert!(e.message.contains("\"accept\" or \"reject\""));
    let src = with("security = { forged_transmits = \"allow\", mac_changes = \"deny\" }\n");
    let errs = errors_of(&src);
    let line = line_of(&src, "forged_transmits");
    expect_in(
        &errs,
        P,
        line,
        "host.port[0].security.forged_transmits",
        "\"allow\"",
    );
    expect_in(
        &errs,
        P,
        line,
        "host.port[0].security.mac_changes",
        "\"deny\"",
    );
}

#[test]
fn numeric_bounds() {
    for (v, needle) in [
        ("0", "0 is out of range"),
        ("2000000", "2000000"),
        ("-1", "-1"),
    ] {
        let src = BASE.replace(
            "name = \"t\"",
            &format!("name = \"t\"\nmac_table_size = {v}"),
        );
        expect(&src, "mac_table_size", "switch.mac_table_size", needle);
    }
    let src = BASE.replace("name = \"t\"", "name = \"t\"\nmac_aging_secs = 5");
    let e = expect(
        &src,
        "mac_aging_secs",
        "switch.mac_aging_secs",
        "10..=1000000",
    );
    assert!(e.message.contains('5'));
}

#[test]
fn interface_names() {
    let src = BASE.replace("\"tap1\"", "\"tap-with-a-long-name\"");
    expect(&src, "interface", "host.port[0].interface", "at most 15");
    let src = BASE.replace("\"tap1\"", "\"tap/1\"");
    expect(&src, "interface", "host.port[0].interface", "'/'");
    let src = BASE.replace("\"tap1\"", "\"tap 1\"");
    expect(&src, "interface", "host.port[0].interface", "whitespace");
    let src = BASE.replace("\"eth0\"", "\"eth0:1\"");
    expect(&src, "uplink1 =", "host.uplinks.uplink1", "':'");
    let src = BASE.replace("\"tap1\"", "\"\"");
    expect(&src, "interface", "host.port[0].interface", "empty");
    // 15 bytes is fine.
    let src = BASE.replace("\"tap1\"", "\"tap-0123456789a\"");
    parse_str(&src, P, None).unwrap();
}

// ---- cross-references ----------------------------------------------------------

#[test]
fn duplicate_port_group_names() {
    let src = BASE.replace("name = \"db\"", "name = \"web\"");
    let errs = errors_of(&src);
    let e = expect_in(
        &errs,
        P,
        13,
        "port_group[1].name",
        "already defined by port_group[0]",
    );
    let first = line_of(&src, "[[port_group]]");
    assert!(e.message.contains(&format!("at line {first}")), "{e}");
}

#[test]
fn duplicate_port_names() {
    let src = with("\n[[host.port]]\nname = \"vm1\"\ninterface = \"tap2\"\nport_group = \"db\"\n");
    let line = last_line_where(&src, |l| l == "name = \"vm1\"");
    expect_in(
        &errors_of(&src),
        P,
        line,
        "host.port[1].name",
        "already used by host.port[0]",
    );
}

#[test]
fn port_name_colliding_with_uplink() {
    let src = BASE.replace("name = \"vm1\"", "name = \"uplink1\"");
    expect(
        &src,
        "name = \"uplink1\"",
        "host.port[0].name",
        "logical uplink",
    );
}

#[test]
fn unknown_port_group_lists_known_groups() {
    let src = BASE.replace("port_group = \"web\"", "port_group = \"wbe\"");
    let e = expect(
        &src,
        "port_group = \"wbe\"",
        "host.port[0].port_group",
        "unknown port group \"wbe\"",
    );
    assert!(e.message.contains("\"web\", \"db\""), "{e}");
}

#[test]
fn duplicate_interfaces() {
    let src = with("\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap1\"\nport_group = \"db\"\n");
    let line = last_line_where(&src, |l| l.contains("\"tap1\""));
    expect_in(
        &errors_of(&src),
        P,
        line,
        "host.port[1].interface",
        "already used by host.port[0].interface",
    );
    let src = BASE.replace("\"tap1\"", "\"eth0\"");
    expect(
        &src,
        "interface",
        "host.port[0].interface",
        "already used by host.uplinks.uplink1",
    );
}

#[test]
fn uplinks_and_their_nics_match() {
    let src = BASE.replace("[\"uplink1\"]", "[\"uplink1\", \"uplink2\"]");
    expect(
        &src,
        "uplinks = [",
        "uplink_policy.uplinks[1]",
        "no NIC on this host",
    );
    let src = BASE.replace(
        "uplink1 = \"eth0\"",
        "uplink1 = \"eth0\"\nuplink3 = \"eth1\"",
    );
    expect(
        &src,
        "uplink3",
        "host.uplinks.uplink3",
        "not a logical uplink",
    );
    let src = BASE.replace("[\"uplink1\"]", "[\"uplink1\", \"uplink1\"]");
    expect(
        &src,
        "uplinks = [",
        "uplink_policy.uplinks[1]",
        "listed twice",
    );
    // No [uplink_policy] at all.
    let src = BASE.replace(
        "[uplink_policy]\nuplinks = [\"uplink1\"]\nallowed_vlans = [10, 20]\n",
        "",
    );
    expect(
        &src,
        "uplink1 =",
        "host.uplinks.uplink1",
        "no [uplink_policy]",
    );
}

#[test]
fn too_many_ports() {
    let mut src = BASE.to_owned();
    for i in 1..MAX_PORTS {
        src.push_str(&format!(
            "[[host.port]]\nname = \"p{i}\"\ninterface = \"t{i}\"\nport_group = \"web\"\n"
        ));
    }
    // 1 uplink + 1024 guests.
    let errs = errors_of(&src);
    let line = line_of(&src, "name = \"p1023\"") - 1;
    let e = expect_in(&errs, P, line, "host.port[1023]", "at most 1024");
    assert!(e.message.contains("1025 ports"), "{e}");
}

#[test]
fn spec_check_errors_are_located() {
    let src = BASE.replace("name = \"t\"", "name = \"t\"\nmac_table_size = 1")
        + "mac = \"52:54:00:00:00:01\"\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap2\"\nport_group = \"db\"\nmac = \"52:54:00:00:00:02\"\n";
    expect(
        &src,
        "mac_table_size",
        "switch.mac_table_size",
        "do not fit a MAC table of 1",
    );
}

#[test]
fn all_semantic_errors_are_reported_in_file_order() {
    let src = r#"[switch]
name = "t"
mac_aging_secs = 1

[[port_group]]
name = "web"
vlan = 5000

[[host.port]]
name = "vm1"
interface = "tap1"
port_group = "nope"
mac = "xx"
security = { promiscuous = "maybe" }
"#;
    let errs = errors_of(src);
    let lines: Vec<usize> = errs.iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(lines, [3, 7, 12, 13, 14], "{errs:#?}");
    let shown = ConfigErrors::from_vec(errs).unwrap().to_string();
    assert_eq!(shown.lines().count(), 5);
}

#[test]
fn display_format() {
    let src = BASE.replace("port_group = \"web\"", "port_group = \"x\"");
    let e = expect(
        &src,
        "port_group = \"x\"",
        "host.port[0].port_group",
        "unknown",
    );
    assert_eq!(
        e.to_string(),
        "profile.toml:22:1: host.port[0].port_group: unknown port group \"x\"; known groups: \"web\", \"db\""
    );
}

#[test]
fn config_built_in_code_is_checked_by_compile() {
    let mut config = parse_str(BASE, P, None).unwrap();
    config.host.ports[0].port_group = "gone".into();
    let errs = config.compile().unwrap_err();
    // Still located: the key exists in the file.
    expect_in(errs.errors(), P, 22, "host.port[0].port_group", "\"gone\"");

    let bare = Config::new(config.profile.clone(), HostBinding::default());
    let errs = bare.compile().unwrap_err();
    let e = &errs.errors()[0];
    assert_eq!(e.key, "uplink_policy.uplinks[0]");
    assert_eq!(e.line, None);
    assert!(
        e.to_string()
            .starts_with("<memory>: uplink_policy.uplinks[0]: ")
    );
}

#[test]
fn error_at_locates_keys_for_the_daemon() {
    let config = parse_str(BASE, P, None).unwrap();
    let c = config.compile().unwrap();
    let e = config.error_at(&c.interface_keys[1], "no such interface");
    assert_eq!(
        e.to_string(),
        "profile.toml:21:1: host.port[0].interface: no such interface"
    );
}

// ---- two files -----------------------------------------------------------------

struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> TempFile {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "portcullis-control-{}-{}-{tag}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const SPLIT_PROFILE: &str = r#"[switch]
name = "t"

[uplink_policy]
uplinks = ["uplink1"]
allowed_vlans = [10]

[[port_group]]
name = "web"
vlan = 10
"#;

const SPLIT_HOST: &str = r#"[host.uplinks]
uplink1 = "eth3"

[[host.port]]
name = "vm1"
interface = "tap1"
port_group = "web"
"#;

#[test]
fn two_file_loading() {
    let profile = TempFile::new("profile", SPLIT_PROFILE);
    let host = TempFile::new("host", SPLIT_HOST);
    let config = load(&profile.0, Some(&host.0)).unwrap();
    let c = config.compile().unwrap();
    assert_eq!(c.interfaces, ["eth3", "tap1"]);
    assert_eq!(config.sources.host.as_ref().unwrap().name, host.0);
    // A host-side error names the host file and its line.
    let e = config.error_at("host.port[0].interface", "x");
    assert_eq!(e.file, host.0);
    assert_eq!(e.line, Some(6));

    let bad_host = TempFile::new("badhost", &SPLIT_HOST.replace("\"web\"", "\"db\""));
    let errs = load(&profile.0, Some(&bad_host.0)).unwrap_err();
    let file = bad_host.0.display().to_string();
    expect_in(
        errs.errors(),
        &file,
        7,
        "host.port[0].port_group",
        "unknown port group \"db\"",
    );

    // The profile's uplinks are checked against the host file's NICs.
    let bad_host = TempFile::new("nonic", &SPLIT_HOST.replace("uplink1 = \"eth3\"", ""));
    let errs = load(&profile.0, Some(&bad_host.0)).unwrap_err();
    let file = profile.0.display().to_string();
    expect_in(
        errs.errors(),
        &file,
        5,
        "uplink_policy.uplinks[0]",
        "no NIC",
    );
}

#[test]
fn two_file_shape_errors() {
    // The host file holds only [host].
    let errs = parse_str(
        SPLIT_PROFILE,
        "p.toml",
        Some((&format!("{SPLIT_HOST}[switch]\nname = \"x\"\n"), "h.toml")),
    )
    .unwrap_err();
    expect_in(
        errs.errors(),
        "h.toml",
        8,
        "switch",
        "unknown field `switch`",
    );
    // A host file without [host].
    let errs = parse_str(SPLIT_PROFILE, "p.toml", Some(("", "h.toml"))).unwrap_err();
    expect_in(errs.errors(), "h.toml", 1, "host", "missing field `host`");
    // Both files bind the host.
    let errs = parse_str(
        &format!("{SPLIT_PROFILE}{SPLIT_HOST}"),
        "p.toml",
        Some((SPLIT_HOST, "h.toml")),
    )
    .unwrap_err();
    expect_in(errs.errors(), "p.toml", 11, "host", "given twice");
    // Syntax errors in both files are both reported.
    let errs = parse_str("[switch\n", "p.toml", Some(("[host\n", "h.toml"))).unwrap_err();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs.errors()[0].file.as_os_str(), "p.toml");
    expect_in(errs.errors(), "p.toml", 1, "switch", "syntax");
    expect_in(errs.errors(), "h.toml", 1, "host", "syntax");
}

#[test]
fn unreadable_file_is_named() {
    let missing = std::env::temp_dir().join(format!(
        "portcullis-control-{}-missing.toml",
        std::process::id()
    ));
    let errs = load(&missing, None).unwrap_err();
    let e = &errs.errors()[0];
    assert_eq!(e.file, missing);
    assert!(e.message.contains("cannot read"), "{e}");
}

// ---- robustness ----------------------------------------------------------------

/// One edit of a text: replace a span, or delete, duplicate or swap lines.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(usize, usize, String),
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("[[host.port]]\n".to_owned()),
        Just("[[port_group]]\n".to_owned()),
        Just("[host]\n".to_owned()),
        Just("=".to_owned()),
        Just("\"".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("\n".to_owned()),
        Just("-".to_owned()),
        Just(".".to_owned()),
        Just("vlan = 5000\n".to_owned()),
        Just("vlans = [\"1-4094\"]\n".to_owned()),
        Just("mac = \"01:00:5e:00:00:01\"\n".to_owned()),
        Just("name = \"vm1\"\n".to_owned()),
        Just("security = { promiscuous = \"accept\" }\n".to_owned()),
        Just("[[mac_acl]]\n".to_owned()),
        Just("port_security = { max_macs = 0 }\n".to_owned()),
        Just("port_security = { aging = \"inactivity\", recovery_secs = 7 }\n".to_owned()),
        Just("port_security.enabled = false\n".to_owned()),
        Just("secure_macs = [\"52:54:00:12:34:56\", \"52:54:00:aa:00:01\"]\n".to_owned()),
        Just("storm_control = { action = \"shutdown\", recovery_secs = 9 }\n".to_owned()),
        Just("mac_acl_in = \"nope\"\n".to_owned()),
        Just("mac_acl_out = \"none\"\n".to_owned()),
        Just("rules = [{ action = \"deny\", cos = 9, ethertype = 0x0042 }]\n".to_owned()),
        Just("[[arp_acl]]\n".to_owned()),
        Just("[[host.static_binding]]\n".to_owned()),
        Just("max_bindings = 1\n".to_owned()),
        Just("dhcp_trusted = false\n".to_owned()),
        Just("arp_trusted = false\n".to_owned()),
        Just("dhcp_snooping = { trusted = true, rate_limit_pps = 0 }\n".to_owned()),
        Just("dhcp_snooping = { option82 = \"strip\", mode = \"observe\", recovery_secs = 9 }\n".to_owned()),
        Just("dhcp_snooping.enabled = false\n".to_owned()),
        Just("arp_inspection = { validate = [\"ip\", \"ip\", \"mac\"], acl = \"nope\" }\n".to_owned()),
        Just("arp_inspection = { rate_limit_pps = \"none\", acl = \"web-arp\", recovery_secs = 7 }\n".to_owned()),
        Just("ip_source_guard = \"ip-mac\"\n".to_owned()),
        Just("ip_source_guard = { check = \"off\", mode = \"observe\" }\n".to_owned()),
        Just("mac = \"52:54:00:12:34:57\"\nip = \"198.18.10.20\"\nport = \"vm2\"\n".to_owned()),
        Just("ip = \"::ffff:198.18.10.2\"\n".to_owned()),
        Just("vlan = 20\n".to_owned()),
        Just("port = \"uplink1\"\n".to_owned()),
        Just("{ action = \"permit\", ip = \"198.18.10.5/24\", mac = \"52:54:00:00:00:00/24\" }".to_owned()),
        Just("static = true\n".to_owned()),
        Just("teaming = { policy = \"ip-hash\", active = [\"uplink2\", \"uplink3\"] }\n".to_owned()),
        Just("teaming = { policy = \"explicit-failover\", standby = [\"uplink1\", \"uplink2\"], failback = true }\n".to_owned()),
        Just("teaming = { active = [\"uplink1\"], standby = [\"uplink1\"], mode = \"lacp\" }\n".to_owned()),
        Just("teaming.active = []\n".to_owned()),
        Just("teaming = {}\n".to_owned()),
        Just("uplinks = []\n".to_owned()),
        Just("allowed_vlans = [10]\n".to_owned()),
        Just("é".to_owned()),
        "[ -~\n]{0,12}",
        any::<String>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), 0usize..40, token()).prop_map(|(a, n, t)| Mutation::Replace(a, n, t)),
        1 => any::<usize>().prop_map(Mutation::DeleteLine),
        1 => any::<usize>().prop_map(Mutation::DuplicateLine),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    match m {
        Mutation::Replace(at, len, with) => {
            let chars: Vec<char> = text.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            let mut s: String = chars[..at].iter().collect();
            s.push_str(with);
            s.extend(&chars[end..]);
            s
        }
        Mutation::DeleteLine(i) | Mutation::DuplicateLine(i) | Mutation::SwapLines(i, _) => {
            let mut lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                return text.to_owned();
            }
            let i = i % lines.len();
            match m {
                Mutation::DeleteLine(_) => {
                    lines.remove(i);
                }
                Mutation::DuplicateLine(_) => lines.insert(i, lines[i]),
                Mutation::SwapLines(_, j) => {
                    let j = j % lines.len();
                    lines.swap(i, j);
                }
                Mutation::Replace(..) => {}
            }
            lines.join("\n")
        }
    }
}

/// Whatever the input, parsing returns; if it fails, every error names the file.
fn never_panics(profile: &str, host: Option<&str>) {
    match parse_str(profile, P, host.map(|h| (h, "host.toml"))) {
        Ok(config) => {
            let c = config.compile().expect("a loaded config compiles");
            assert_eq!(c.spec.ports.len(), c.interfaces.len());
            c.spec
                .check()
                .expect("a loaded config passes SwitchSpec::check");
            check_new_invariants(&c.spec);
        }
        Err(errs) => {
            assert!(!errs.is_empty());
            for e in errs.iter() {
                assert!(e.file.as_os_str() == P || e.file.as_os_str() == "host.toml");
                assert!(!e.to_string().contains('\n'), "{e}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_strings_never_panic(s in any::<String>(), t in "[ -~\n]{0,200}") {
        never_panics(&s, None);
        never_panics(&t, None);
        never_panics(example_profile(), Some(&t));
    }

    #[test]
    fn mutated_example_never_panics(ms in proptest::collection::vec(mutation(), 1..5)) {
        let mut text = example_profile().to_owned();
        for m in &ms {
            text = apply(&text, m);
        }
        never_panics(&text, None);
        // The same edits applied to a separate host file.
        let split = example_profile().find("[host.uplinks]").unwrap();
        let (profile, host) = example_profile().split_at(split);
        let mut host = host.to_owned();
        for m in &ms {
            host = apply(&host, m);
        }
        never_panics(profile, Some(&host));
    }
}

/// The error example of docs/config.md §9 is real output.
#[test]
fn docs_error_example_is_real() {
    const PROD: &str = r#"[switch]
name = "prod"
mac_aging_secs = 1

[uplink_policy]
uplinks = ["uplink1"]
allowed_vlans = [10, 20]

[[port_group]]
name = "web"
vlan = 10

[[port_group]]
name = "db"
vlan = 4095
"#;
    const HOST: &str = r#"[host.uplinks]
uplink1 = "eth0"

[[host.port]]
name = "vm1"
interface = "tap-vm1"
port_group = "web"
mac = "52:54:00:12:34:56"

[[host.port]]
name = "vm2"
interface = "tap-vm2"
port_group = "web"
mac = "52:54:00:12:34:56"

[[host.port]]
name = "vm3"
interface = "tap-customer-0042"
port_group = "wbe"
"#;
    let shown = parse_str(PROD, "prod.toml", Some((HOST, "host-a.toml")))
        .unwrap_err()
        .to_string();
    println!("{shown}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let docs = std::fs::read_to_string(path).expect("docs/config.md");
    assert!(
        docs.contains(&format!("```text\n{shown}\n```")),
        "docs/config.md §9 must show:\n{shown}"
    );
}

/// The shape-error examples of docs/config.md §9 are real output.
#[test]
fn docs_shape_error_examples_are_real() {
    let src = "[switch]\nname = \"prod\"\nmac_tabel_size = 1\n";
    let shown = parse_str(src, "prod.toml", None).unwrap_err().to_string();
    assert_eq!(
        shown,
        "prod.toml:3:1: switch.mac_tabel_size: unknown field `mac_tabel_size`, expected one of `name`, `mac_table_size`, `mac_aging_secs`, `max_bindings`"
    );
    let src = "[switch]\nname = \"prod\"\n\n[uplink_policy]\nuplinks = []\nallowed_vlans = []\n\n\n[[port_group]]\nname = \"web\"\nvlan = \"10\"\n";
    let shown = parse_str(src, "prod.toml", None).unwrap_err().to_string();
    assert_eq!(
        shown,
        "prod.toml:11:8: port_group[0].vlan: invalid type: string \"10\", expected an integer"
    );
}

#[test]
fn tap_ports_compile_to_create_tap_and_a_wrong_type_is_located() {
    let src = format!("{BASE}tap = true\n");
    let c = parse_str(&src, P, None).unwrap().compile().unwrap();
    assert_eq!(c.create_tap, vec![false, true], "the uplink never, vm1 yes");
    let c = parse_str(BASE, P, None).unwrap().compile().unwrap();
    assert_eq!(c.create_tap, vec![false, false]);
    let bad = format!("{BASE}tap = \"yes\"\n");
    let e = errors_of(&bad);
    let text = e[0].to_string();
    assert!(
        text.starts_with(&format!("{P}:{}:", line_of(&bad, "tap = \"yes\""))),
        "{text}"
    );
    assert!(text.contains("host.port[0].tap"), "{text}");
}

// ---- [host.management] ---------------------------------------------------------

/// A token and its hash, made by `portcullis token new` for these tests only.
const MGMT_TOKEN: &str =
    "pcl_ci-bot_00e39a7c9a89daf3cbecbafd96821557cfd292d5e4531aa1069aa39cf594fcca";
const MGMT_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$BJoUot0jaZOGtf8NFi+dNg$SC2Qmwnaf0ZgZNdHKjFw6jZZfJJgm8s+5Mbw+RzG4aw";

/// BASE with a complete `[host.management]`.
fn with_management() -> String {
    with(&format!(
        r#"
[host.management]
tcp_listen = "127.0.0.1:8443"
tls_cert = "/etc/portcullis/tls/cert.pem"
tls_key = "/etc/portcullis/tls/key.pem"
metrics_listen = "[::1]:9477"
audit_syslog = "unix:/dev/log"

[host.management.roles]
admin = {{ users = ["alice"], groups = ["portcullis-admin"] }}
operator = {{ users = [], groups = ["portcullis-operator", "netops"] }}
auditor = {{ groups = ["portcullis-auditor"] }}

[[host.management.token]]
name = "ci-bot"
role = "operator"
hash = "{MGMT_HASH}"
expires = 2027-01-01T00:00:00Z

[[host.management.token]]
name = "audit-export"
role = "auditor"
hash = "{MGMT_HASH}"
"#
    ))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn management_round_trips_into_the_model() {
    use crate::rbac::Role;
    let config = parse_str(&with_management(), P, None).unwrap();
    let m = &config.host.management;
    assert_eq!(m.tcp_listen, Some("127.0.0.1:8443".parse().unwrap()));
    assert_eq!(
        m.tls,
        Some(TlsFiles {
            cert: "/etc/portcullis/tls/cert.pem".into(),
            key: "/etc/portcullis/tls/key.pem".into(),
        })
    );
    assert_eq!(m.metrics_listen, Some("[::1]:9477".parse().unwrap()));
    assert_eq!(m.audit_syslog, Some(SyslogTarget::Unix("/dev/log".into())));
    assert_eq!(
        m.roles,
        RoleMembers {
            admin: Members {
                users: strings(&["alice"]),
                groups: strings(&["portcullis-admin"]),
            },
            operator: Members {
                users: vec![],
                groups: strings(&["portcullis-operator", "netops"]),
            },
            auditor: Members {
                users: vec![],
                groups: strings(&["portcullis-auditor"]),
            },
        }
    );
    assert_eq!(
        m.tokens,
        [
            TokenSpec {
                name: "ci-bot".into(),
                role: Role::Operator,
                hash: MGMT_HASH.into(),
                expires_unix: Some(1_798_761_600),
            },
            TokenSpec {
                name: "audit-export".into(),
                role: Role::Auditor,
                hash: MGMT_HASH.into(),
                expires_unix: None,
            },
        ]
    );
    // Management does not change the switch.
    let plain = parse_str(BASE, P, None).unwrap();
    assert_eq!(plain.host.management, Management::default());
    assert_eq!(config.compile().unwrap(), plain.compile().unwrap());
    // The hash printed with a token verifies it, with the configured role.
    let a = crate::rbac::Authorizer::new(m, 990);
    assert_eq!(
        a.verify_token(MGMT_TOKEN, 1_798_761_599),
        Ok(("ci-bot".into(), Role::Operator))
    );
    assert_eq!(
        a.verify_token(MGMT_TOKEN, 1_798_761_600),
        Err(crate::rbac::TokenError::Expired("ci-bot".into()))
    );
    assert_eq!(
        a.role_of_local(1000, "bob", &strings(&["users", "netops"])),
        Some(Role::Operator)
    );
}

#[test]
fn management_in_a_host_file() {
    let host = format!(
        "{SPLIT_HOST}\n[host.management]\naudit_syslog = \"udp:198.18.0.1:514\"\n[host.management.roles]\nauditor = {{ users = [\"carol\"] }}\n"
    );
    let config = parse_str(SPLIT_PROFILE, "p.toml", Some((&host, "h.toml"))).unwrap();
    let m = &config.host.management;
    assert_eq!(
        m.audit_syslog,
        Some(SyslogTarget::Udp("198.18.0.1:514".parse().unwrap()))
    );
    assert_eq!(m.roles.auditor.users, ["carol"]);
    assert_eq!(m.tcp_listen, None);

    // Errors are located in the host file.
    let bad = host.replace("udp:198.18.0.1:514", "udp:syslog.example:514");
    let errs = parse_str(SPLIT_PROFILE, "p.toml", Some((&bad, "h.toml"))).unwrap_err();
    expect_in(
        errs.errors(),
        "h.toml",
        line_of(&bad, "audit_syslog"),
        "host.management.audit_syslog",
        "not an IP address and port",
    );
}

#[test]
fn management_in_the_profile_is_refused() {
    let src = BASE.replace(
        "[uplink_policy]",
        "[management]\ntcp_listen = \"127.0.0.1:8443\"\n\n[uplink_policy]",
    );
    expect(&src, "[management]", "management", "[host.management]");
}

#[test]
fn management_tcp_needs_tls_and_tls_needs_tcp() {
    let src = with("\n[host.management]\ntcp_listen = \"127.0.0.1:8443\"\n");
    expect(
        &src,
        "tcp_listen",
        "host.management.tcp_listen",
        "TLS only: set tls_cert and tls_key",
    );
    let src = with(
        "\n[host.management]\ntls_cert = \"/etc/pc/cert.pem\"\ntls_key = \"/etc/pc/key.pem\"\n",
    );
    expect(
        &src,
        "tls_cert",
        "host.management.tls_cert",
        "set tcp_listen too",
    );
    // One TLS file without the other: that error alone, not also "TLS only".
    let src = with(
        "\n[host.management]\ntcp_listen = \"127.0.0.1:8443\"\ntls_key = \"/etc/pc/key.pem\"\n",
    );
    let errs = errors_of(&src);
    expect_in(
        &errs,
        P,
        line_of(&src, "tls_key"),
        "host.management.tls_key",
        "tls_key without tls_cert",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    let src = with("\n[host.management]\ntls_cert = \"/etc/pc/cert.pem\"\n");
    expect(
        &src,
        "tls_cert",
        "host.management.tls_cert",
        "tls_cert without tls_key",
    );
    // Relative paths.
    let src = with_management().replace("/etc/portcullis/tls/key.pem", "tls/key.pem");
    expect(
        &src,
        "tls_key",
        "host.management.tls_key",
        "not an absolute path",
    );
}

#[test]
fn management_addresses() {
    let m = with_management();
    for (from, to, marker, key, needle) in [
        (
            "127.0.0.1:8443",
            "localhost:8443",
            "tcp_listen",
            "host.management.tcp_listen",
            "not an IP address and port",
        ),
        (
            "127.0.0.1:8443",
            "127.0.0.1",
            "tcp_listen",
            "host.management.tcp_listen",
            "not an IP address and port",
        ),
        (
            "[::1]:9477",
            "::1:9477",
            "metrics_listen",
            "host.management.metrics_listen",
            "[::1]:8443",
        ),
        (
            "127.0.0.1:8443",
            "127.0.0.1:0",
            "tcp_listen",
            "host.management.tcp_listen",
            "port 0",
        ),
        (
            "[::1]:9477",
            "127.0.0.1:8443",
            "metrics_listen",
            "host.management.metrics_listen",
            "also tcp_listen",
        ),
    ] {
        let src = m.replace(from, to);
        let errs = errors_of(&src);
        expect_in(&errs, P, line_of(&src, marker), key, needle);
        assert_eq!(errs.len(), 1, "{to}: {errs:?}");
    }
}

/// `web_view` is a bool, off by default, and only with the TCP listener: the page
/// is served there and nowhere else.
#[test]
fn management_web_view_needs_the_tcp_listener() {
    let m = with_management();
    assert!(!parse_str(&m, P, None).unwrap().host.management.web_view);
    let on = m.replace(
        "[host.management]\n",
        "[host.management]\nweb_view = true\n",
    );
    assert!(parse_str(&on, P, None).unwrap().host.management.web_view);
    let flat = crate::config::management::flatten_management(
        &parse_str(&on, P, None).unwrap().host.management,
    );
    assert_eq!(
        flat.get("management.web_view").map(String::as_str),
        Some("true")
    );

    let alone = with("\n[host.management]\nweb_view = true\n");
    let errs = errors_of(&alone);
    expect_in(
        &errs,
        P,
        line_of(&alone, "web_view"),
        "host.management.web_view",
        "set tcp_listen, tls_cert and tls_key too",
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    // Off needs nothing; a word is not a bool.
    assert!(parse_str(&with("\n[host.management]\nweb_view = false\n"), P, None).is_ok());
    assert!(parse_str(&with("\n[host.management]\nweb_view = \"yes\"\n"), P, None).is_err());
}

#[test]
fn management_syslog_targets() {
    let m = with_management();
    for (target, needle) in [
        ("tcp:198.18.0.1:514", "not a syslog target"),
        ("/dev/log", "not a syslog target"),
        ("udp:198.18.0.1", "not an IP address and port"),
        ("udp:198.18.0.1:0", "port 0"),
        ("unix:dev/log", "must be absolute"),
        ("unix:", "must be absolute"),
    ] {
        let src = m.replace("unix:/dev/log", target);
        expect(&src, "audit_syslog", "host.management.audit_syslog", needle);
    }
    let src = m.replace("unix:/dev/log", "udp:[2001:db8::1]:514");
    let c = parse_str(&src, P, None).unwrap();
    assert_eq!(
        c.host.management.audit_syslog.unwrap().to_string(),
        "udp:[2001:db8::1]:514"
    );
}

#[test]
fn management_roles() {
    let m = with_management();
    // An unknown role, as a key of [host.management.roles] or of a token.
    let src = m.replace("auditor = {", "superuser = {");
    expect(
        &src,
        "superuser",
        "host.management.roles.superuser",
        "not a role: expected \"admin\", \"operator\" or \"auditor\"",
    );
    let src = m.replace("role = \"operator\"", "role = \"root\"");
    expect(
        &src,
        "role = \"root\"",
        "host.management.token[0].role",
        "\"root\" is not a role",
    );
    // A user under two roles: reported at the later one.
    let src = m.replace(
        "operator = { users = []",
        "operator = { users = [\"alice\"]",
    );
    let e = expect(
        &src,
        "operator = {",
        "host.management.roles.operator.users[0]",
        "user \"alice\" already has role admin (host.management.roles.admin.users[0] at line",
    );
    assert!(e.message.contains("a user has one role"), "{e}");
    // A group under two roles.
    let src = m.replace(
        "groups = [\"portcullis-auditor\"]",
        "groups = [\"portcullis-auditor\", \"netops\"]",
    );
    expect(
        &src,
        "auditor = {",
        "host.management.roles.auditor.groups[1]",
        "group \"netops\" already has role operator",
    );
    // Twice under one role.
    let src = m.replace("users = [\"alice\"]", "users = [\"alice\", \"alice\"]");
    expect(
        &src,
        "admin = {",
        "host.management.roles.admin.users[1]",
        "listed twice under admin",
    );
    // A user and a group of the same name are different things.
    let src = m.replace("users = [\"alice\"]", "users = [\"netops\"]");
    parse_str(&src, P, None).unwrap();
    // Names.
    for bad in ["uid:1000", "", "al ice"] {
        let src = m.replace("users = [\"alice\"]", &format!("users = [{bad:?}]"));
        expect(
            &src,
            "admin = {",
            "host.management.roles.admin.users[0]",
            "user ",
        );
    }
    // Unknown keys in a role's table.
    let src = m.replace("auditor = { groups", "auditor = { group");
    expect(
        &src,
        "auditor = {",
        "host.management.roles.auditor.group",
        "unknown field `group`",
    );
}

#[test]
fn management_tokens() {
    let m = with_management();
    // Names.
    for bad in ["ci_bot", "", "ci bot", &"x".repeat(33)] {
        let src = m.replacen("name = \"ci-bot\"", &format!("name = {bad:?}"), 1);
        expect(
            &src,
            &format!("name = {bad:?}"),
            "host.management.token[0].name",
            "token name",
        );
    }
    // Duplicates.
    let src = m.replace("name = \"audit-export\"", "name = \"ci-bot\"");
    let errs = errors_of(&src);
    let second = last_line_where(&src, |l| l == "name = \"ci-bot\"");
    let e = expect_in(
        &errs,
        P,
        second,
        "host.management.token[1].name",
        "token name \"ci-bot\" is already used by host.management.token[0] at line",
    );
    assert_eq!(errs.len(), 1, "{e}");
    // Hashes.
    for (bad, needle) in [
        ("hunter2", "not an argon2 PHC string"),
        (
            "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "not an argon2 PHC string",
        ),
        (
            "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG",
            "not \"argon2id\"",
        ),
        ("$argon2id$v=19$m=19456,t=2,p=1", "lacks its salt or hash"),
    ] {
        let src = m.replacen(MGMT_HASH, bad, 1);
        expect(&src, "hash = ", "host.management.token[0].hash", needle);
    }
    // Expiry: an offset date-time only.
    for (bad, needle) in [
        ("2027-01-01T00:00:00", "no UTC offset"),
        ("2027-01-01", "no UTC offset"),
        ("1969-07-20T20:17:00Z", "before 1970"),
    ] {
        let src = m.replace("2027-01-01T00:00:00Z", bad);
        expect(&src, "expires", "host.management.token[0].expires", needle);
    }
    let src = m.replace("2027-01-01T00:00:00Z", "\"2027-01-01T00:00:00Z\"");
    expect(
        &src,
        "expires",
        "host.management.token[0].expires",
        "invalid type",
    );
    let src = m.replace(
        "expires = 2027-01-01T00:00:00Z",
        "expires = 2027-01-01T01:00:00+01:00",
    );
    let c = parse_str(&src, P, None).unwrap();
    assert_eq!(
        c.host.management.tokens[0].expires_unix,
        Some(1_798_761_600)
    );
    // Required keys and unknown keys.
    let src = m.replacen("role = \"operator\"\n", "", 1);
    expect(
        &src,
        "[[host.management.token]]",
        "host.management.token[0].role",
        "missing field `role`",
    );
    let src = m.replacen(
        "role = \"operator\"",
        "role = \"operator\"\nsecret = \"x\"",
        1,
    );
    expect(
        &src,
        "secret",
        "host.management.token[0].secret",
        "unknown field `secret`",
    );
}

#[test]
fn management_unknown_keys() {
    let src = with_management().replace("tls_cert =", "tls_certificate =");
    let e = expect(
        &src,
        "tls_certificate",
        "host.management.tls_certificate",
        "unknown field `tls_certificate`",
    );
    assert!(e.message.contains("`tls_cert`"), "{e}");
}

#[test]
fn management_built_in_code_is_checked_by_compile() {
    use crate::rbac::Role;
    let mut config = parse_str(BASE, P, None).unwrap();
    config.host.management = Management {
        tcp_listen: Some("127.0.0.1:8443".parse().unwrap()),
        tokens: vec![TokenSpec {
            name: "a_b".into(),
            role: Role::Admin,
            hash: "x".into(),
            expires_unix: None,
        }],
        ..Management::default()
    };
    let shown = config.compile().unwrap_err().to_string();
    for needle in [
        "host.management.tcp_listen: the API over TCP is served with TLS only",
        "host.management.token[0].name: token name \"a_b\" contains '_'",
        "host.management.token[0].hash: not an argon2 PHC string",
    ] {
        assert!(shown.contains(needle), "{needle}\n{shown}");
    }
}

/// The `[host.management]` example of docs/config.md is valid.
#[test]
fn docs_management_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let docs = std::fs::read_to_string(path).expect("docs/config.md");
    let start = docs
        .find("```toml\n[host.management]\n")
        .expect("docs/config.md shows a [host.management] example");
    let block = &docs[start + "```toml\n".len()..];
    let block = &block[..block.find("```").expect("closed block")];
    let config = parse_str(&format!("{BASE}{block}"), P, None).unwrap();
    let m = &config.host.management;
    assert!(m.tcp_listen.is_some() && m.tls.is_some() && m.audit_syslog.is_some());
    assert!(m.web_view);
    assert!(!m.roles.admin.groups.is_empty());
    assert_eq!(m.tokens.len(), 1);
}

proptest! {
    /// Arbitrary values in [host.management] never panic the loader.
    #[test]
    fn management_values_never_panic(
        field in prop::sample::select(vec![
            "tcp_listen", "metrics_listen", "audit_syslog", "tls_cert", "tls_key",
        ]),
        value in "[ -~]{0,40}",
        name in "[ -~]{0,40}",
        hash in "[ -~]{0,120}",
    ) {
        let src = with(&format!(
            "\n[host.management]\n{field} = {value:?}\n[[host.management.token]]\nname = {name:?}\nrole = \"admin\"\nhash = {hash:?}\n"
        ));
        let _ = parse_str(&src, P, None);
    }
}

#[test]
fn bridge_netdev_is_the_switch_name_as_an_interface_no_port_uses() {
    let on = "\n[host]\nbridge_netdev = true\n";
    let c = parse_str(&with(on), P, None).unwrap();
    assert!(c.host.bridge_netdev);
    let flat = crate::diff::flatten_config(&c);
    assert_eq!(
        flat.get("host.bridge_netdev").map(String::as_str),
        Some("on")
    );
    let off = parse_str(BASE, P, None).unwrap();
    assert!(!off.host.bridge_netdev);
    assert!(!crate::diff::flatten_config(&off).contains_key("host.bridge_netdev"));

    // A switch name that cannot be an interface's, and one a port's interface has.
    let long = with(on).replace("name = \"t\"", "name = \"a-very-long-switch\"");
    let e = errors_of(&long);
    assert!(
        e.iter()
            .any(|e| e.key == "host.bridge_netdev" && e.message.contains("IFNAMSIZ")),
        "{e:?}"
    );
    let taken = with(on).replace("name = \"t\"", "name = \"tap1\"");
    let e = errors_of(&taken);
    assert!(
        e.iter()
            .any(|e| e.key == "host.bridge_netdev" && e.message.contains("host.port")),
        "{e:?}"
    );
}
