//! DHCP snooping, dynamic ARP inspection, IP Source Guard, static bindings and ARP
//! ACLs: compilation, merging of group and port settings, the uplinks' trust, and
//! one located error per rule of docs/config.md §5.

use super::features::{compile, features, web_group};
use super::*;

/// BASE with `fields` as one `[[host.static_binding]]` (after vm1).
fn with_binding(fields: &str) -> String {
    format!("{BASE}\n[[host.static_binding]]\n{fields}\n")
}

/// BASE with an ARP ACL named "arp-a" (and a MAC ACL named "mac-a"), and `extra`
/// added to vm1.
fn with_arp_acls(extra: &str) -> String {
    format!(
        "{BASE}{extra}\n[[arp_acl]]\nname = \"arp-a\"\nrules = [{{ action = \"permit\", ip = \"198.18.10.0/24\" }}]\n\n[[arp_acl]]\nname = \"arp-b\"\nstatic = true\nrules = []\n\n[[mac_acl]]\nname = \"mac-a\"\nrules = []\n"
    )
}

fn dhcp(trusted: bool, mode: EnforceMode) -> DhcpSnoopingSpec {
    DhcpSnoopingSpec {
        trusted,
        rate_limit_pps: None,
        option82: Option82::Keep,
        drop_untrusted_option82: true,
        mode,
    }
}

fn arp(trusted: bool, rate: Option<u32>) -> ArpInspectionSpec {
    ArpInspectionSpec {
        trusted,
        validate_src_mac: false,
        validate_dst_mac: false,
        validate_ip: false,
        rate_limit_pps: rate,
        acl: None,
        mode: EnforceMode::Enforce,
    }
}

/// What an uplink gets when a group or port enables DHCP snooping.
fn uplink_dhcp(trusted: bool, mode: EnforceMode) -> DhcpSnoopingSpec {
    DhcpSnoopingSpec {
        drop_untrusted_option82: false,
        ..dhcp(trusted, mode)
    }
}

fn ipsg(check: SourceGuard, mode: EnforceMode) -> IpSourceGuardSpec {
    IpSourceGuardSpec { check, mode }
}

// ---- compilation ---------------------------------------------------------------

#[test]
fn tables_alone_enable_the_features_with_the_defaults() {
    let c = compile(&web_group(
        "dhcp_snooping = {}\narp_inspection = {}\nip_source_guard = {}",
    ));
    assert_eq!(
        features(&c, "vm1"),
        &PortFeatures {
            dhcp_snooping: Some(dhcp(false, EnforceMode::Enforce)),
            arp_inspection: Some(arp(false, Some(15))),
            ip_source_guard: Some(ipsg(SourceGuard::IpMac, EnforceMode::Enforce)),
            ..PortFeatures::default()
        }
    );
    // The uplinks are trusted for both by default; IP Source Guard is not theirs.
    assert_eq!(
        features(&c, "uplink1"),
        &PortFeatures {
            dhcp_snooping: Some(uplink_dhcp(true, EnforceMode::Enforce)),
            arp_inspection: Some(arp(true, None)),
            ..PortFeatures::default()
        }
    );
    // Without any table, nothing anywhere.
    let c = compile(BASE);
    assert_eq!(features(&c, "uplink1"), &PortFeatures::default());
    assert_eq!(c.spec.max_bindings, 1 << 20);
    assert!(c.spec.static_bindings.is_empty() && c.spec.arp_acls.is_empty());
}

#[test]
fn ip_source_guard_words_and_tables() {
    let guard = |setting: &str| {
        let c = compile(&web_group(&format!("ip_source_guard = {setting}")));
        features(&c, "vm1").ip_source_guard
    };
    use EnforceMode::{Enforce, Observe};
    use SourceGuard::{Ip, IpMac};
    assert_eq!(guard("\"off\""), None);
    assert_eq!(guard("\"ip\""), Some(ipsg(Ip, Enforce)));
    assert_eq!(guard("\"ip-mac\""), Some(ipsg(IpMac, Enforce)));
    assert_eq!(guard("{}"), Some(ipsg(IpMac, Enforce)));
    assert_eq!(guard("{ check = \"ip\" }"), Some(ipsg(Ip, Enforce)));
    assert_eq!(guard("{ mode = \"observe\" }"), Some(ipsg(IpMac, Observe)));
    assert_eq!(guard("{ enabled = false, check = \"ip\" }"), None);
    // A port's word keeps the group's mode.
    let c = compile(
        &(web_group("ip_source_guard = { mode = \"observe\" }") + "ip_source_guard = \"ip\"\n"),
    );
    assert_eq!(features(&c, "vm1").ip_source_guard, Some(ipsg(Ip, Observe)));
    // Dotted keys make a table too.
    let c = compile(&(BASE.to_owned() + "ip_source_guard.mode = \"observe\"\n"));
    assert_eq!(
        features(&c, "vm1").ip_source_guard,
        Some(ipsg(IpMac, Observe))
    );
}

#[test]
fn snooping_overrides_merge_field_by_field() {
    let src = with_arp_acls(
        r#"
[[port_group]]
name = "sec"
vlan = 30
dhcp_snooping = { rate_limit_pps = 20, option82 = "insert", mode = "observe" }
arp_inspection = { validate = ["src-mac"], acl = "arp-a", rate_limit_pps = 30 }
ip_source_guard = "ip-mac"

[[host.port]]
name = "inherits"
interface = "tap2"
port_group = "sec"

[[host.port]]
name = "overrides"
interface = "tap3"
port_group = "sec"
dhcp_snooping = { trusted = true, drop_untrusted_option82 = false }
arp_inspection = { validate = ["dst-mac", "ip"], acl = "none", rate_limit_pps = "none", mode = "observe" }
ip_source_guard = { mode = "observe" }

[[host.port]]
name = "opts-out"
interface = "tap4"
port_group = "sec"
dhcp_snooping.enabled = false
arp_inspection = { enabled = false }
ip_source_guard = "off"

[[host.port]]
name = "opts-in"
interface = "tap5"
port_group = "db"
dhcp_snooping = {}
arp_inspection = { trusted = true, acl = "arp-b" }
ip_source_guard = { check = "ip" }

[[host.port]]
name = "cleared"
interface = "tap6"
port_group = "sec"
arp_inspection.validate = []
ip_source_guard = "ip"
"#,
    );
    let c = compile(&src);
    let group_dhcp = DhcpSnoopingSpec {
        trusted: false,
        rate_limit_pps: Some(20),
        option82: Option82::Insert,
        drop_untrusted_option82: true,
        mode: EnforceMode::Observe,
    };
    let group_arp = ArpInspectionSpec {
        trusted: false,
        validate_src_mac: true,
        validate_dst_mac: false,
        validate_ip: false,
        rate_limit_pps: Some(30),
        acl: Some("arp-a".into()),
        mode: EnforceMode::Enforce,
    };
    assert_eq!(
        features(&c, "inherits"),
        &PortFeatures {
            dhcp_snooping: Some(group_dhcp),
            arp_inspection: Some(group_arp.clone()),
            ip_source_guard: Some(ipsg(SourceGuard::IpMac, EnforceMode::Enforce)),
            ..PortFeatures::default()
        }
    );
    assert_eq!(
        features(&c, "overrides"),
        &PortFeatures {
            dhcp_snooping: Some(DhcpSnoopingSpec {
                trusted: true,
                drop_untrusted_option82: false,
                ..group_dhcp
            }),
            // `validate` and `acl` are replaced whole; "none" lifts the limit.
            arp_inspection: Some(ArpInspectionSpec {
                validate_src_mac: false,
                validate_dst_mac: true,
                validate_ip: true,
                rate_limit_pps: None,
                acl: None,
                mode: EnforceMode::Observe,
                ..group_arp.clone()
            }),
            ip_source_guard: Some(ipsg(SourceGuard::IpMac, EnforceMode::Observe)),
            ..PortFeatures::default()
        }
    );
    assert_eq!(features(&c, "opts-out"), &PortFeatures::default());
    assert_eq!(
        features(&c, "opts-in"),
        &PortFeatures {
            dhcp_snooping: Some(dhcp(false, EnforceMode::Enforce)),
            // Trusted: no default rate limit.
            arp_inspection: Some(ArpInspectionSpec {
                acl: Some("arp-b".into()),
                ..arp(true, None)
            }),
            ip_source_guard: Some(ipsg(SourceGuard::Ip, EnforceMode::Enforce)),
            ..PortFeatures::default()
        }
    );
    assert_eq!(
        features(&c, "cleared").arp_inspection,
        Some(ArpInspectionSpec {
            validate_src_mac: false,
            ..group_arp
        })
    );
    assert_eq!(
        features(&c, "cleared").ip_source_guard,
        Some(ipsg(SourceGuard::Ip, EnforceMode::Enforce))
    );
    // The model keeps what was written.
    let config = parse_str(&src, P, None).unwrap();
    let overrides = &config.host.ports[2];
    assert_eq!(
        overrides.arp_inspection,
        Some(ArpInspectionOverride {
            validate: Some(ArpValidation {
                src_mac: false,
                dst_mac: true,
                ip: true
            }),
            rate_limit_pps: Some(RateLimit::Unlimited),
            acl: Some(AclRef::None),
            mode: Some(EnforceMode::Observe),
            ..Default::default()
        })
    );
    assert_eq!(
        config.host.ports[3].ip_source_guard,
        Some(IpSourceGuardOverride {
            enabled: Some(false),
            ..Default::default()
        })
    );
    assert_eq!(
        config.profile.port_groups[2].ip_source_guard,
        Some(IpSourceGuardOverride {
            enabled: Some(true),
            check: Some(SourceGuard::IpMac),
            mode: None,
        })
    );
}

#[test]
fn arp_rate_limit_default_follows_trust() {
    let rate = |table: &str| {
        let c = compile(&web_group(&format!("arp_inspection = {table}")));
        features(&c, "vm1")
            .arp_inspection
            .clone()
            .unwrap()
            .rate_limit_pps
    };
    assert_eq!(rate("{}"), Some(DEFAULT_ARP_RATE_LIMIT_PPS));
    assert_eq!(rate("{ trusted = true }"), None);
    assert_eq!(rate("{ trusted = true, rate_limit_pps = 50 }"), Some(50));
    assert_eq!(rate("{ rate_limit_pps = \"none\" }"), None);
    assert_eq!(rate("{ rate_limit_pps = 10000 }"), Some(10_000));
    // DHCP snooping has no default limit; "none" lifts a group's.
    let c = compile(
        &(web_group("dhcp_snooping = { rate_limit_pps = 1 }")
            + "dhcp_snooping.rate_limit_pps = \"none\"\n"),
    );
    assert_eq!(
        features(&c, "vm1").dhcp_snooping.unwrap().rate_limit_pps,
        None
    );
}

#[test]
fn uplink_trust_and_mode() {
    let uplink = |policy: &str, group: &str, port: &str| {
        let src = web_group(group).replace(
            "allowed_vlans = [10, 20]",
            &format!("allowed_vlans = [10, 20]\n{policy}"),
        ) + port;
        let c = compile(&src);
        let f = features(&c, "uplink1");
        (f.dhcp_snooping, f.arp_inspection.clone())
    };
    // Untrusted uplinks: never policed, option 82 kept.
    assert_eq!(
        uplink(
            "dhcp_trusted = false\narp_trusted = false",
            "dhcp_snooping = { rate_limit_pps = 5, option82 = \"insert\" }\narp_inspection = { validate = [\"ip\"], rate_limit_pps = 5 }",
            ""
        ),
        (
            Some(uplink_dhcp(false, EnforceMode::Enforce)),
            Some(arp(false, None))
        )
    );
    // A port alone enabling a feature is enough.
    assert_eq!(
        uplink("", "", "arp_inspection = {}\n"),
        (None, Some(arp(true, None)))
    );
    // A group whose every port opts out still counts: the profile decides.
    assert_eq!(
        uplink("", "dhcp_snooping = {}", "dhcp_snooping.enabled = false\n"),
        (Some(uplink_dhcp(true, EnforceMode::Enforce)), None)
    );
    // A group that states the table but disables it does not.
    assert_eq!(
        uplink("", "dhcp_snooping = { enabled = false }", ""),
        (None, None)
    );
    // All in observe mode: the uplinks observe too; one enforcing port suffices.
    assert_eq!(
        uplink(
            "dhcp_trusted = false",
            "dhcp_snooping = { mode = \"observe\" }",
            ""
        )
        .0,
        Some(uplink_dhcp(false, EnforceMode::Observe))
    );
    assert_eq!(
        uplink(
            "",
            "dhcp_snooping = { mode = \"observe\" }",
            "dhcp_snooping.mode = \"enforce\"\n"
        )
        .0,
        Some(uplink_dhcp(true, EnforceMode::Enforce))
    );
    // IP Source Guard alone leaves the uplinks alone.
    assert_eq!(uplink("", "ip_source_guard = \"ip\"", ""), (None, None));
    // The model.
    let config = parse_str(BASE, P, None).unwrap();
    let up = config.profile.uplink_policy.unwrap();
    assert!(up.dhcp_trusted && up.arp_trusted);
}

#[test]
fn static_bindings_compile() {
    let src = BASE.replace("allowed_vlans = [10, 20]", "allowed_vlans = [10, 20]\nnative_vlan = 1")
        + "\n[[port_group]]\nname = \"vgt\"\nvlans = [30, 31]\n\n[[host.port]]\nname = \"r1\"\ninterface = \"tap2\"\nport_group = \"vgt\"\n"
        + "\n[[host.static_binding]]\nmac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"\n"
        + "\n[[host.static_binding]]\nmac = \"52:54:00:00:00:01\"\nip = \"2001:db8:10::5\"\nvlan = 10\nport = \"vm1\"\n"
        + "\n[[host.static_binding]]\nmac = \"00:1b:21:aa:bb:cc\"\nip = \"198.18.20.1\"\nvlan = 20\nport = \"uplink1\"\n"
        + "\n[[host.static_binding]]\nmac = \"52:54:00:00:00:02\"\nip = \"198.18.31.7\"\nvlan = 31\nport = \"r1\"\n"
        // One IP in two VLANs is two bindings.
        + "\n[[host.static_binding]]\nmac = \"00:1b:21:aa:bb:cc\"\nip = \"198.18.10.5\"\nvlan = 1\nport = \"uplink1\"\n";
    let c = compile(&src);
    let b = |mac_s: &str, ip: &str, v: u16, port: usize| StaticBindingSpec {
        mac: mac(mac_s),
        ip: ip.parse().unwrap(),
        vid: vid(v),
        port,
    };
    // Port indices: uplink1 is 0, vm1 1, r1 2.
    assert_eq!(
        c.spec.static_bindings,
        [
            b("52:54:00:00:00:01", "198.18.10.5", 10, 1),
            b("52:54:00:00:00:01", "2001:db8:10::5", 10, 1),
            b("00:1b:21:aa:bb:cc", "198.18.20.1", 20, 0),
            b("52:54:00:00:00:02", "198.18.31.7", 31, 2),
            b("00:1b:21:aa:bb:cc", "198.18.10.5", 1, 0),
        ]
    );
    check_new_invariants(&c.spec);
    let config = parse_str(&src, P, None).unwrap();
    assert_eq!(config.host.static_bindings[0].vlan, None, "as written");
    // The binding's MAC may be the port's own initial or secure MAC.
    compile(
        &with_binding("mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"").replace(
            "port_group = \"web\"\n",
            "port_group = \"web\"\nmac = \"52:54:00:00:00:01\"\n",
        ),
    );
}

#[test]
fn arp_acls_compile_in_file_order() {
    let src = format!(
        "{BASE}\n[[arp_acl]]\nname = \"second\"\nrules = [{{ action = \"deny\" }}]\n\n[[arp_acl]]\nname = \"first\"\nstatic = true\n\n[[arp_acl.rules]]\naction = \"permit\"\nip = \"198.18.10.254\"\nmac = \"00:1b:21:aa:bb:cc\"\n\n[[arp_acl.rules]]\naction = \"deny\"\nip = \"198.18.0.0/15\"\nmac = \"52:54:00:00:00:00/24\"\n\n[[arp_acl.rules]]\naction = \"permit\"\nip = \"0.0.0.0/0\"\n"
    );
    let c = compile(&src);
    let any = ArpAclRule {
        action: AclAction::Deny,
        ip: "0.0.0.0".parse().unwrap(),
        prefix_len: 0,
        mac: None,
    };
    assert_eq!(
        c.spec.arp_acls,
        [
            ArpAclSpec {
                name: "second".into(),
                static_only: false,
                rules: vec![any],
            },
            ArpAclSpec {
                name: "first".into(),
                static_only: true,
                rules: vec![
                    ArpAclRule {
                        action: AclAction::Permit,
                        ip: "198.18.10.254".parse().unwrap(),
                        prefix_len: 32,
                        mac: Some(MacMatch {
                            mac: mac("00:1b:21:aa:bb:cc"),
                            mask: MacAddr::BROADCAST,
                        }),
                    },
                    ArpAclRule {
                        action: AclAction::Deny,
                        ip: "198.18.0.0".parse().unwrap(),
                        prefix_len: 15,
                        mac: Some(MacMatch {
                            mac: mac("52:54:00:00:00:00"),
                            mask: mac("ff:ff:ff:00:00:00"),
                        }),
                    },
                    ArpAclRule {
                        action: AclAction::Permit,
                        ..any
                    },
                ],
            },
        ]
    );
    // An ARP ACL and a MAC ACL may share a name: separate namespaces.
    compile(&format!(
        "{BASE}arp_inspection = {{ acl = \"x\" }}\nmac_acl_in = \"x\"\n\n[[arp_acl]]\nname = \"x\"\nrules = []\n\n[[mac_acl]]\nname = \"x\"\nrules = []\n"
    ));
}

#[test]
fn snooping_tables_state_a_recovery_interval() {
    let c = compile(&web_group(
        "dhcp_snooping = { rate_limit_pps = 10, recovery_secs = 60 }",
    ));
    assert_eq!(features(&c, "vm1").errdisable_recovery_secs, Some(60));
    let c = compile(&web_group("arp_inspection = { recovery_secs = 45 }"));
    assert_eq!(features(&c, "vm1").errdisable_recovery_secs, Some(45));
    // Equal in every table: fine.
    compile(&web_group(
        "port_security = { recovery_secs = 30 }\ndhcp_snooping = { recovery_secs = 30 }\narp_inspection = { recovery_secs = 30 }",
    ));
    // Different: located at the second one stated.
    let src = web_group(
        "port_security = { recovery_secs = 300 }\narp_inspection = { recovery_secs = 60 }",
    );
    let e = expect(
        &src,
        "arp_inspection",
        "port_group[0].arp_inspection.recovery_secs",
        "one err-disable recovery interval",
    );
    assert!(
        e.message.contains("port_security.recovery_secs is 300")
            && e.message.contains("arp_inspection.recovery_secs is 60"),
        "{e}"
    );
    // A port whose own table makes them differ.
    let src = web_group("dhcp_snooping = { recovery_secs = 300 }")
        + "arp_inspection = { recovery_secs = 60 }\n";
    expect(
        &src,
        "arp_inspection",
        "host.port[0].arp_inspection.recovery_secs",
        "dhcp_snooping.recovery_secs is 300",
    );
    // A port that inherits both, and only disables nothing: the group's error.
    let src = web_group(
        "dhcp_snooping = { recovery_secs = 300 }\narp_inspection = { recovery_secs = 60 }",
    ) + "dhcp_snooping.trusted = true\n";
    let errs = errors_of(&src);
    expect_in(
        &errs,
        P,
        line_of(&src, "arp_inspection"),
        "port_group[0].arp_inspection.recovery_secs",
        "one err-disable",
    );
    expect_in(
        &errs,
        P,
        line_of(&src, "dhcp_snooping.trusted"),
        "host.port[0].dhcp_snooping",
        "one err-disable",
    );
    // A disabled table's interval does not count.
    let c = compile(&web_group(
        "dhcp_snooping = { recovery_secs = 300, enabled = false }\narp_inspection = { recovery_secs = 60 }",
    ));
    assert_eq!(features(&c, "vm1").errdisable_recovery_secs, Some(60));
    // Range.
    let src = web_group("dhcp_snooping = { recovery_secs = 0 }");
    expect(
        &src,
        "dhcp_snooping",
        "port_group[0].dhcp_snooping.recovery_secs",
        "0 is out of range: allowed 1..=86400",
    );
}

/// A decision of docs/config.md §5: inspection and source guard without DHCP
/// snooping are accepted (bindings come from `[[host.static_binding]]` and the API).
#[test]
fn inspection_and_source_guard_without_snooping_are_accepted() {
    let c = compile(&web_group(
        "arp_inspection = {}\nip_source_guard = \"ip-mac\"",
    ));
    let f = features(&c, "vm1");
    assert_eq!(f.dhcp_snooping, None);
    assert!(f.arp_inspection.is_some() && f.ip_source_guard.is_some());
}

// ---- values ------------------------------------------------------------------------

#[test]
fn max_bindings_bounds() {
    for (v, needle) in [
        ("0", "0 is out of range: allowed 1..=16777216"),
        ("16777217", "16777217 is out of range"),
        ("-1", "-1 is out of range"),
    ] {
        let src = BASE.replace("name = \"t\"", &format!("name = \"t\"\nmax_bindings = {v}"));
        expect(&src, "max_bindings", "switch.max_bindings", needle);
    }
    let src = BASE.replace("name = \"t\"", "name = \"t\"\nmax_bindings = 16777216");
    assert_eq!(compile(&src).spec.max_bindings, 16_777_216);
    let src = BASE.replace("name = \"t\"", "name = \"t\"\nmax_bindings = \"1M\"");
    expect(
        &src,
        "max_bindings",
        "switch.max_bindings",
        "expected an integer",
    );
}

#[test]
fn rate_limit_values() {
    for table in ["dhcp_snooping", "arp_inspection"] {
        for (v, needle) in [
            (
                "0",
                "0 is out of range: allowed 1..=10000; for no limit write rate_limit_pps = \"none\"",
            ),
            ("10001", "10001 is out of range: allowed 1..=10000"),
            ("-5", "-5 is out of range"),
            ("5000000000", "5000000000 is out of range"),
            (
                "\"unlimited\"",
                "\"unlimited\" is not a rate limit: expected packets per second (1..=10000) or \"none\"",
            ),
        ] {
            let src = web_group(&format!("{table} = {{ rate_limit_pps = {v} }}"));
            let errs = errors_of(&src);
            expect_in(
                &errs,
                P,
                line_of(&src, table),
                &format!("port_group[0].{table}.rate_limit_pps"),
                needle,
            );
            assert_eq!(errs.len(), 1, "{errs:#?}");
            let src = with(&format!("{table}.rate_limit_pps = {v}\n"));
            expect(
                &src,
                "rate_limit_pps",
                &format!("host.port[0].{table}.rate_limit_pps"),
                needle,
            );
        }
        let src = web_group(&format!("{table} = {{ rate_limit_pps = 1.5 }}"));
        expect(
            &src,
            table,
            &format!("port_group[0].{table}.rate_limit_pps"),
            "packets per second like 15, or \"none\"",
        );
    }
}

#[test]
fn snooping_words_list_the_choices() {
    let src =
        web_group("dhcp_snooping = { option82 = \"strip\", mode = \"audit\", trusted = \"yes\" }");
    expect(
        &src,
        "dhcp_snooping",
        "port_group[0].dhcp_snooping.trusted",
        "expected a boolean",
    );
    let src = web_group("dhcp_snooping = { option82 = \"strip\", mode = \"audit\" }");
    let errs = errors_of(&src);
    let line = line_of(&src, "dhcp_snooping");
    let e = expect_in(
        &errs,
        P,
        line,
        "port_group[0].dhcp_snooping.option82",
        "\"strip\" is not a policy for option 82",
    );
    assert!(e.message.contains("expected \"keep\" or \"insert\""), "{e}");
    let e = expect_in(
        &errs,
        P,
        line,
        "port_group[0].dhcp_snooping.mode",
        "\"audit\" is not a mode",
    );
    assert!(
        e.message.contains("expected \"enforce\" or \"observe\""),
        "{e}"
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");

    let src = web_group("ip_source_guard = \"on\"");
    let e = expect(
        &src,
        "ip_source_guard",
        "port_group[0].ip_source_guard",
        "\"on\" is not a source-guard setting",
    );
    assert!(
        e.message.contains("expected \"off\", \"ip\" or \"ip-mac\""),
        "{e}"
    );
    let src = with("ip_source_guard = { check = \"off\", mode = \"Observe\" }\n");
    let errs = errors_of(&src);
    let line = line_of(&src, "ip_source_guard");
    expect_in(
        &errs,
        P,
        line,
        "host.port[0].ip_source_guard.check",
        "turn the guard off with `enabled = false`",
    );
    expect_in(
        &errs,
        P,
        line,
        "host.port[0].ip_source_guard.mode",
        "\"Observe\" is not a mode",
    );
    let src = with("ip_source_guard = { check = \"mac\" }\n");
    expect(
        &src,
        "ip_source_guard",
        "host.port[0].ip_source_guard.check",
        "\"mac\" is not a source-guard check: expected \"ip\" or \"ip-mac\"",
    );
    // Shape: a number, or an unknown key in the table.
    let src = with("ip_source_guard = 1\n");
    let e = expect(
        &src,
        "ip_source_guard",
        "host.port[0].ip_source_guard",
        "invalid type",
    );
    assert!(e.message.contains("\"ip-mac\""), "{e}");
    let src = with("ip_source_guard = { check = \"ip\", strict = true }\n");
    expect(
        &src,
        "strict",
        "host.port[0].ip_source_guard.strict",
        "unknown field `strict`",
    );
    let src = web_group("dhcp_snooping = { option_82 = \"insert\" }");
    expect(
        &src,
        "option_82",
        "port_group[0].dhcp_snooping.option_82",
        "unknown field `option_82`",
    );
}

#[test]
fn arp_validate_words() {
    let src =
        web_group("arp_inspection = { validate = [\"src-mac\", \"mac\", \"src-mac\", \"IP\"] }");
    let errs = errors_of(&src);
    let line = line_of(&src, "arp_inspection");
    let e = expect_in(
        &errs,
        P,
        line,
        "port_group[0].arp_inspection.validate[1]",
        "\"mac\" is not an ARP validation check",
    );
    assert!(
        e.message
            .contains("known checks: \"src-mac\", \"dst-mac\", \"ip\""),
        "{e}"
    );
    expect_in(
        &errs,
        P,
        line,
        "port_group[0].arp_inspection.validate[2]",
        "\"src-mac\" is listed twice (first as port_group[0].arp_inspection.validate[0])",
    );
    expect_in(
        &errs,
        P,
        line,
        "port_group[0].arp_inspection.validate[3]",
        "\"IP\" is not an ARP validation check",
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    let src = web_group("arp_inspection = { validate = \"ip\" }");
    expect(
        &src,
        "arp_inspection",
        "port_group[0].arp_inspection.validate",
        "expected an array",
    );
}

// ---- ARP ACLs ----------------------------------------------------------------------

#[test]
fn unknown_arp_acl_names_list_the_known_ones() {
    let src = with_arp_acls("arp_inspection = { acl = \"arp-c\" }\n");
    let e = expect(
        &src,
        "arp_inspection",
        "host.port[0].arp_inspection.acl",
        "unknown ARP ACL \"arp-c\"",
    );
    assert!(
        e.message
            .contains("known ARP ACLs: \"arp-a\", \"arp-b\" (or \"none\" for no ACL)"),
        "{e}"
    );
    // A MAC ACL's name: the message says why it does not fit.
    let src = with_arp_acls("arp_inspection.acl = \"mac-a\"\n");
    let e = expect(
        &src,
        "arp_inspection",
        "host.port[0].arp_inspection.acl",
        "unknown ARP ACL \"mac-a\"",
    );
    assert!(e.message.contains("is a [[mac_acl]]"), "{e}");
    // And the reverse.
    let src = with_arp_acls("mac_acl_in = \"arp-a\"\n");
    let e = expect(
        &src,
        "mac_acl_in",
        "host.port[0].mac_acl_in",
        "unknown MAC ACL \"arp-a\"",
    );
    assert!(e.message.contains("is an [[arp_acl]]"), "{e}");
    let src = web_group("arp_inspection = { acl = \"x\" }");
    expect(
        &src,
        "arp_inspection",
        "port_group[0].arp_inspection.acl",
        "the profile defines no [[arp_acl]]",
    );
    // "none" binds none, even over a group's ACL.
    let src = with_arp_acls("arp_inspection = { acl = \"none\" }\n").replacen(
        "vlan = 10\n",
        "vlan = 10\narp_inspection = { acl = \"arp-a\" }\n",
        1,
    );
    let c = compile(&src);
    assert_eq!(
        features(&c, "vm1").arp_inspection.as_ref().unwrap().acl,
        None
    );
}

#[test]
fn arp_acl_names() {
    let acls = |a: &str, b: &str| {
        format!(
            "{BASE}\n[[arp_acl]]\nname = {a}\nrules = []\n\n[[arp_acl]]\nname = {b}\nrules = []\n"
        )
    };
    let src = acls("\"a\"", "\"a\"");
    let line = last_line_where(&src, |l| l == "name = \"a\"");
    let e = expect_in(
        &errors_of(&src),
        P,
        line,
        "arp_acl[1].name",
        "ARP ACL \"a\" is already defined by arp_acl[0]",
    );
    let first = line_of(&src, "[[arp_acl]]");
    assert!(e.message.contains(&format!("at line {first}")), "{e}");
    let src = acls("\"a\"", "\"\"");
    expect(
        &src,
        "name = \"\"",
        "arp_acl[1].name",
        "ARP ACL name must not be empty",
    );
    let src = acls("\"a\"", "\"none\"");
    expect(&src, "name = \"none\"", "arp_acl[1].name", "reserved");
    let src = acls("\"a b\"", "\"b\"");
    expect(&src, "name = \"a b\"", "arp_acl[0].name", "whitespace");
}

/// `rules` with one rule per line: errors are at the rule's line.
fn arp_acl_with_rules(rules: &[&str]) -> String {
    format!(
        "{BASE}\n[[arp_acl]]\nname = \"x\"\nrules = [\n{}\n]\n",
        rules.join(",\n")
    )
}

#[test]
fn bad_arp_acl_rules_are_all_located() {
    let src = arp_acl_with_rules(&[
        "  { action = \"allow\", ip = \"198.18.10.1\" }",
        "  { action = \"deny\", ip = \"198.18.10\" }",
        "  { action = \"deny\", ip = \"2001:db8::1\" }",
        "  { action = \"deny\", ip = \"198.18.0.0/33\" }",
        "  { action = \"deny\", ip = \"198.18.10.5/24\" }",
        "  { action = \"deny\", ip = \"198.18.0.0/x\" }",
        "  { action = \"deny\", mac = \"52:54:00\" }",
        "  { action = \"deny\", mac = \"52:54:00:00:00:00/49\" }",
        "  { action = \"deny\", ip = \"198.18.0.0/15\", mac = \"ff:ff:ff:ff:ff:ff\" }",
    ]);
    let errs = errors_of(&src);
    let at = |n: usize| line_of(&src, "rules = [") + 1 + n;
    let r = |n: usize, field: &str| format!("arp_acl[0].rules[{n}].{field}");
    let e = expect_in(
        &errs,
        P,
        at(0),
        &r(0, "action"),
        "\"allow\" is not a rule action",
    );
    assert!(e.message.contains("expected \"permit\" or \"deny\""), "{e}");
    expect_in(
        &errs,
        P,
        at(1),
        &r(1, "ip"),
        "\"198.18.10\" is not an IPv4 address or prefix",
    );
    expect_in(
        &errs,
        P,
        at(2),
        &r(2, "ip"),
        "\"2001:db8::1\" is IPv6; ARP carries IPv4 addresses only",
    );
    expect_in(
        &errs,
        P,
        at(3),
        &r(3, "ip"),
        "prefix length 33 is out of range: allowed 0..=32",
    );
    expect_in(
        &errs,
        P,
        at(4),
        &r(4, "ip"),
        "\"198.18.10.5/24\" has host bits set: write \"198.18.10.0/24\" for the network, or \"198.18.10.5\" for the one address",
    );
    expect_in(
        &errs,
        P,
        at(5),
        &r(5, "ip"),
        "not an IPv4 address or prefix",
    );
    expect_in(
        &errs,
        P,
        at(6),
        &r(6, "mac"),
        "not a MAC address or MAC/mask",
    );
    expect_in(&errs, P, at(7), &r(7, "mac"), "prefix length 49");
    assert_eq!(
        errs.len(),
        8,
        "the broadcast MAC is a valid match: {errs:#?}"
    );
}

#[test]
fn arp_acl_shape_and_size() {
    let src = arp_acl_with_rules(&["  { action = \"deny\", sender = \"x\" }"]);
    expect(
        &src,
        "sender",
        "arp_acl[0].rules[0].sender",
        "unknown field `sender`",
    );
    let src = arp_acl_with_rules(&["  { ip = \"198.18.10.1\" }"]);
    expect(
        &src,
        "{ ip",
        "arp_acl[0].rules[0].action",
        "missing field `action`",
    );
    let src = format!("{BASE}\n[[arp_acl]]\nname = \"x\"\n");
    expect(
        &src,
        "[[arp_acl]]",
        "arp_acl[0].rules",
        "missing field `rules`",
    );
    let src = format!("{BASE}\n[[arp_acl]]\nname = \"x\"\nstatic = \"yes\"\nrules = []\n");
    expect(&src, "static", "arp_acl[0].static", "expected a boolean");
    let rules = vec!["{ action = \"deny\" }"; MAX_ACL_RULES + 1].join(",\n");
    let src = format!("{BASE}\n[[arp_acl]]\nname = \"big\"\nrules = [\n{rules}\n]\n");
    let e = expect(&src, "rules = [", "arp_acl[0].rules", "4097 rules");
    assert!(e.message.contains("an ARP ACL holds at most 4096"), "{e}");
}

// ---- static bindings ------------------------------------------------------------------

#[test]
fn static_binding_ports_and_vlans() {
    let src = with_binding("mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm9\"");
    let e = expect(
        &src,
        "port = \"vm9\"",
        "host.static_binding[0].port",
        "unknown port \"vm9\"",
    );
    assert!(
        e.message
            .contains("names a [[host.port]] or a logical uplink: \"vm1\", \"uplink1\""),
        "{e}"
    );
    let src = with_binding(
        "mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nvlan = 20\nport = \"vm1\"",
    );
    expect_in(
        &errors_of(&src),
        P,
        last_line_where(&src, |l| l == "vlan = 20"),
        "host.static_binding[0].vlan",
        "port \"vm1\" does not carry VLAN 20; it carries 10",
    );
    // A trunk needs `vlan`; the message lists its VLANs as ranges.
    let src = with_binding("mac = \"00:1b:21:aa:bb:cc\"\nip = \"198.18.10.1\"\nport = \"uplink1\"")
        .replace(
            "allowed_vlans = [10, 20]",
            "allowed_vlans = [10, 20, \"100-103\"]",
        );
    expect(
        &src,
        "[[host.static_binding]]",
        "host.static_binding[0].vlan",
        "port \"uplink1\" carries several VLANs (10, 20, 100-103): state the binding's `vlan`",
    );
    let src = with_binding(
        "mac = \"00:1b:21:aa:bb:cc\"\nip = \"198.18.10.1\"\nvlan = 30\nport = \"uplink1\"",
    );
    expect(
        &src,
        "vlan = 30",
        "host.static_binding[0].vlan",
        "does not carry VLAN 30; it carries 10, 20",
    );
    let src = with_binding(
        "mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nvlan = 4095\nport = \"vm1\"",
    );
    expect(
        &src,
        "vlan = 4095",
        "host.static_binding[0].vlan",
        "reserved",
    );
    // A port in an unknown group, or a group with a bad VLAN: no follow-up error.
    let src = with_binding("mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"")
        .replace("port_group = \"web\"", "port_group = \"nope\"");
    assert_eq!(errors_of(&src).len(), 1);
    let src = with_binding("mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"")
        .replace("vlan = 10", "vlan = 0");
    assert_eq!(errors_of(&src).len(), 1);
}

#[test]
fn static_binding_addresses() {
    let bad_ips = [
        ("198.18.10", "\"198.18.10\" is not an IP address"),
        (
            "198.18.10.0/24",
            "a binding holds one address, not a prefix",
        ),
        (
            "0.0.0.0",
            "0.0.0.0 is the unspecified address; a binding's IP must be a unicast host address",
        ),
        ("255.255.255.255", "the broadcast address"),
        ("224.0.0.251", "a multicast address (224.0.0.0/4)"),
        ("127.0.0.1", "a loopback address"),
        ("::", ":: is the unspecified address"),
        ("ff02::1", "a multicast address (ff00::/8)"),
        ("::1", "the loopback address"),
        (
            "::ffff:198.18.10.5",
            "an IPv4-mapped IPv6 address: write the IPv4 address (198.18.10.5)",
        ),
    ];
    for (ip, needle) in bad_ips {
        let src = with_binding(&format!(
            "mac = \"52:54:00:00:00:01\"\nip = \"{ip}\"\nport = \"vm1\""
        ));
        let errs = errors_of(&src);
        expect_in(
            &errs,
            P,
            line_of(&src, "ip = "),
            "host.static_binding[0].ip",
            needle,
        );
        assert_eq!(errs.len(), 1, "{errs:#?}");
    }
    for (m, needle) in [
        (
            "01:00:5e:00:00:fb",
            "multicast address; a binding's MAC must be unicast",
        ),
        ("ff:ff:ff:ff:ff:ff", "multicast"),
        ("00:00:00:00:00:00", "not a usable MAC address"),
        ("52:54:00:00:01", "not a MAC address"),
    ] {
        let src = with_binding(&format!(
            "mac = \"{m}\"\nip = \"198.18.10.5\"\nport = \"vm1\""
        ));
        expect(&src, "mac = ", "host.static_binding[0].mac", needle);
    }
    // Link-local addresses are host addresses.
    compile(&with_binding(
        "mac = \"52:54:00:00:00:01\"\nip = \"fe80::5054:ff:fe00:1\"\nport = \"vm1\"",
    ));
    compile(&with_binding(
        "mac = \"52:54:00:00:00:01\"\nip = \"169.254.10.5\"\nport = \"vm1\"",
    ));
}

#[test]
fn duplicate_bindings_and_foreign_macs() {
    let src = with_binding("mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"")
        + "\n[[host.static_binding]]\nmac = \"52:54:00:00:00:02\"\nip = \"198.18.10.5\"\nvlan = 10\nport = \"uplink1\"\n";
    let line = last_line_where(&src, |l| l.starts_with("ip = "));
    let e = expect_in(
        &errors_of(&src),
        P,
        line,
        "host.static_binding[1].ip",
        "198.18.10.5 in VLAN 10 is already bound by host.static_binding[0]",
    );
    let first = line_of(&src, "[[host.static_binding]]");
    assert!(e.message.contains(&format!("at line {first}")), "{e}");
    // The MAC of another port in the VLAN.
    let src = format!(
        "{BASE}\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap2\"\nport_group = \"web\"\nmac = \"52:54:00:00:00:09\"\n\n[[host.static_binding]]\nmac = \"52:54:00:00:00:09\"\nip = \"198.18.10.5\"\nport = \"vm1\"\n"
    );
    let line = last_line_where(&src, |l| l.starts_with("mac = "));
    expect_in(
        &errors_of(&src),
        P,
        line,
        "host.static_binding[0].mac",
        "MAC 52:54:00:00:00:09 is the initial MAC of port \"vm2\" (host.port[1].mac at line",
    );
    // An uplink's binding may not use a guest's MAC either.
    let src = with_binding(
        "mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nvlan = 10\nport = \"uplink1\"",
    )
    .replace(
        "port_group = \"web\"\n",
        "port_group = \"web\"\nmac = \"52:54:00:00:00:01\"\n",
    );
    let line = last_line_where(&src, |l| l.starts_with("mac = "));
    expect_in(
        &errors_of(&src),
        P,
        line,
        "host.static_binding[0].mac",
        "a binding of port \"uplink1\" cannot use it",
    );
}

#[test]
fn too_many_static_bindings() {
    let mut src = BASE.replace("name = \"t\"", "name = \"t\"\nmax_bindings = 2");
    for i in 1..=3 {
        src.push_str(&format!(
            "\n[[host.static_binding]]\nmac = \"52:54:00:00:00:01\"\nip = \"198.18.10.{i}\"\nport = \"vm1\"\n"
        ));
    }
    let errs = errors_of(&src);
    let line = last_line_where(&src, |l| l == "[[host.static_binding]]");
    let e = expect_in(
        &errs,
        P,
        line,
        "host.static_binding[2]",
        "3 static bindings, but the switch holds at most 2 bindings (switch.max_bindings at line 3)",
    );
    assert_eq!(errs.len(), 1, "{e}");
}

#[test]
fn binding_keys_count_entries_as_written() {
    // The first entry cannot be converted; the second's error names index 1.
    let src = with_binding("mac = \"xx\"\nip = \"198.18.10.5\"\nport = \"vm1\"")
        + "\n[[host.static_binding]]\nmac = \"52:54:00:00:00:01\"\nip = \"198.18.10.6\"\nport = \"vm9\"\n";
    let errs = errors_of(&src);
    expect_in(
        &errs,
        P,
        line_of(&src, "mac = \"xx\""),
        "host.static_binding[0].mac",
        "not a MAC address",
    );
    expect_in(
        &errs,
        P,
        line_of(&src, "port = \"vm9\""),
        "host.static_binding[1].port",
        "unknown port",
    );
    assert_eq!(errs.len(), 2, "{errs:#?}");
    let src = with_binding("mac = \"52:54:00:00:00:01\"\nport = \"vm1\"");
    expect(
        &src,
        "[[host.static_binding]]",
        "host.static_binding[0].ip",
        "missing field `ip`",
    );
    let src = with_binding(
        "mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"\nlease = 0",
    );
    expect(
        &src,
        "lease",
        "host.static_binding[0].lease",
        "unknown field `lease`",
    );
}

#[test]
fn static_bindings_belong_to_the_host_binding() {
    let src = format!(
        "{}\n[[static_binding]]\nmac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"\n\n{}",
        SPLIT_PROFILE, "[host.uplinks]\nuplink1 = \"eth3\"\n"
    );
    let e = expect(
        &src,
        "[[static_binding]]",
        "static_binding",
        "write them as [[host.static_binding]] in the host binding",
    );
    assert_eq!(e.column, Some(3), "the name in the header");
    // In a separate host file, its errors name that file.
    let host = format!(
        "{SPLIT_HOST}\n[[host.static_binding]]\nmac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nvlan = 20\nport = \"vm1\"\n"
    );
    let errs = parse_str(SPLIT_PROFILE, "p.toml", Some((&host, "h.toml"))).unwrap_err();
    expect_in(
        errs.errors(),
        "h.toml",
        line_of(&host, "vlan = 20"),
        "host.static_binding[0].vlan",
        "does not carry VLAN 20",
    );
    let host = host.replace("vlan = 20", "vlan = 10");
    let c = parse_str(SPLIT_PROFILE, "p.toml", Some((&host, "h.toml")))
        .unwrap()
        .compile()
        .unwrap();
    assert_eq!(c.spec.static_bindings[0].port, 1);
}

#[test]
fn uplink_policy_refuses_guest_feature_tables() {
    for (table, needle) in [
        (
            "dhcp_snooping = { trusted = true }",
            "`dhcp_trusted = true`",
        ),
        ("arp_inspection = {}", "`arp_trusted = true`"),
        (
            "ip_source_guard = \"ip\"",
            "IP Source Guard applies to guest ports only",
        ),
    ] {
        let src = BASE.replace(
            "allowed_vlans = [10, 20]",
            &format!("allowed_vlans = [10, 20]\n{table}"),
        );
        let key = table.split(' ').next().unwrap();
        let errs = errors_of(&src);
        let e = expect_in(
            &errs,
            P,
            line_of(&src, key),
            &format!("uplink_policy.{key}"),
            needle,
        );
        assert_eq!(e.column, Some(1));
        assert_eq!(errs.len(), 1);
    }
    let src = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\ndhcp_trusted = \"no\"",
    );
    expect(
        &src,
        "dhcp_trusted",
        "uplink_policy.dhcp_trusted",
        "expected a boolean",
    );
}

// ---- all at once, and in code ------------------------------------------------------------

#[test]
fn snooping_errors_are_all_reported_in_file_order() {
    let src = r#"[switch]
name = "t"
max_bindings = 0

[[port_group]]
name = "web"
vlan = 10
dhcp_snooping = { rate_limit_pps = 0 }
arp_inspection = { acl = "nope", validate = ["mac"] }
ip_source_guard = "strict"

[[arp_acl]]
name = "a"
rules = [{ action = "permit", ip = "10.0.0.1/8" }]

[[host.port]]
name = "vm1"
interface = "tap1"
port_group = "web"

[[host.static_binding]]
mac = "52:54:00:00:00:01"
ip = "224.0.0.1"
port = "vm2"
"#;
    let errs = errors_of(src);
    let lines: Vec<usize> = errs.iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(lines, [3, 8, 9, 9, 10, 14, 23, 24], "{errs:#?}");
}

#[test]
fn config_changed_in_code_is_checked_again() {
    let src = with_arp_acls("arp_inspection = { acl = \"arp-a\" }\n")
        + "\n[[host.static_binding]]\nmac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"\n";
    let mut config = parse_str(&src, P, None).unwrap();
    config.profile.switch.max_bindings = 0;
    config.profile.arp_acls[0].rules[0].prefix_len = 33;
    config.profile.arp_acls[1].rules.push(ArpAclRule {
        action: AclAction::Deny,
        ip: "10.1.2.3".parse().unwrap(),
        prefix_len: 8,
        mac: None,
    });
    config.host.ports[0].arp_inspection = Some(ArpInspectionOverride {
        acl: Some(AclRef::Named("gone".into())),
        rate_limit_pps: Some(RateLimit::Pps(0)),
        ..Default::default()
    });
    config.host.ports[0].dhcp_snooping = Some(DhcpSnoopingOverride {
        rate_limit_pps: Some(RateLimit::Pps(20_000)),
        recovery_secs: Some(0),
        ..Default::default()
    });
    config.host.static_bindings[0].port = "vm7".into();
    let errs = config.compile().unwrap_err();
    let errs = errs.errors();
    expect_in(errs, P, 1, "switch.max_bindings", "0 is out of range");
    expect_in(
        errs,
        P,
        line_of(&src, "rules = [{"),
        "arp_acl[0].rules[0].ip",
        "prefix length 33",
    );
    expect_in(
        errs,
        P,
        line_of(&src, "name = \"arp-b\"") + 2,
        "arp_acl[1].rules[0].ip",
        "\"10.1.2.3/8\" has host bits set",
    );
    let port = line_of(&src, "arp_inspection = {");
    expect_in(
        errs,
        P,
        port,
        "host.port[0].arp_inspection.acl",
        "unknown ARP ACL \"gone\"",
    );
    expect_in(
        errs,
        P,
        port,
        "host.port[0].arp_inspection.rate_limit_pps",
        "0 is out of range",
    );
    let vm1 = line_of(&src, "[[host.port]]");
    expect_in(
        errs,
        P,
        vm1,
        "host.port[0].dhcp_snooping.rate_limit_pps",
        "20000 is out of range",
    );
    expect_in(
        errs,
        P,
        vm1,
        "host.port[0].dhcp_snooping.recovery_secs",
        "0 is out of range",
    );
    expect_in(
        errs,
        P,
        line_of(&src, "port = \"vm1\""),
        "host.static_binding[0].port",
        "unknown port \"vm7\"",
    );
}

#[test]
fn spec_check_binding_errors_are_located() {
    let src = with_binding("mac = \"52:54:00:00:00:01\"\nip = \"198.18.10.5\"\nport = \"vm1\"");
    let config = parse_str(&src, P, None).unwrap();
    let c = config.compile().unwrap();
    let e = SpecError::BadBinding { reason: "x".into() };
    let err = spec_error::spec_error(&e, &c, &config.profile, &config.host, &config.sources);
    assert_eq!(
        (err.key.as_str(), err.line),
        (
            "host.static_binding",
            Some(line_of(&src, "[[host.static_binding]]"))
        )
    );
    assert!(err.message.contains("static bindings: x"), "{err}");
    let config = parse_str(BASE, P, None).unwrap();
    let c = config.compile().unwrap();
    let err = spec_error::spec_error(&e, &c, &config.profile, &config.host, &config.sources);
    assert_eq!(err.key, "switch.max_bindings");
}

// ---- robustness ----------------------------------------------------------------

fn rate() -> impl Strategy<Value = String> {
    prop_oneof![
        40 => (1i64..=100).prop_map(|v| v.to_string()),
        10 => Just("\"none\"".to_owned()),
        1 => Just("0".to_owned()),
        1 => Just("\"fast\"".to_owned()),
        1 => Just("10001".to_owned()),
    ]
}

fn mode() -> impl Strategy<Value = String> {
    prop_oneof![
        30 => proptest::sample::select(&["\"enforce\"", "\"observe\""][..]).prop_map(str::to_owned),
        1 => Just("\"audit\"".to_owned()),
    ]
}

fn bool_s() -> impl Strategy<Value = String> {
    any::<bool>().prop_map(|b| b.to_string())
}

fn recovery() -> impl Strategy<Value = String> {
    prop_oneof![30 => Just("30".to_owned()), 3 => Just("31".to_owned()), 1 => Just("0".to_owned())]
}

fn dhcp_table() -> impl Strategy<Value = String> {
    (
        (
            super::features::opt_kv("enabled", bool_s()),
            super::features::opt_kv("trusted", bool_s()),
            super::features::opt_kv("rate_limit_pps", rate()),
        ),
        (
            super::features::opt_kv(
                "option82",
                prop_oneof![
                    6 => proptest::sample::select(&["\"keep\"", "\"insert\""][..]).prop_map(str::to_owned),
                    1 => Just("\"strip\"".to_owned()),
                    10 => Just("\"keep\"".to_owned()),
                ],
            ),
            super::features::opt_kv("drop_untrusted_option82", bool_s()),
            super::features::opt_kv("mode", mode()),
            super::features::opt_kv("recovery_secs", recovery()),
        ),
    )
        .prop_map(|((a, b, c), (d, e, f, g))| format!("dhcp_snooping = {{ {a}{b}{c}{d}{e}{f}{g}}}"))
}

fn arp_table() -> impl Strategy<Value = String> {
    let validate = proptest::collection::vec(
        prop_oneof![
            30 => proptest::sample::select(&["\"src-mac\"", "\"dst-mac\"", "\"ip\""][..]).prop_map(str::to_owned),
            1 => Just("\"mac\"".to_owned()),
        ],
        0..3,
    )
    .prop_map(|v| format!("[{}]", v.join(", ")));
    (
        (
            super::features::opt_kv("enabled", bool_s()),
            super::features::opt_kv("trusted", bool_s()),
            super::features::opt_kv("validate", validate),
        ),
        (
            super::features::opt_kv("rate_limit_pps", rate()),
            super::features::opt_kv(
                "acl",
                prop_oneof![
                    16 => Just("\"a\"".to_owned()),
                    8 => Just("\"none\"".to_owned()),
                    1 => Just("\"zz\"".to_owned()),
                ],
            ),
            super::features::opt_kv("mode", mode()),
            super::features::opt_kv("recovery_secs", recovery()),
        ),
    )
        .prop_map(|((a, b, c), (d, e, f, g))| {
            format!("arp_inspection = {{ {a}{b}{c}{d}{e}{f}{g}}}")
        })
}

fn ipsg_setting() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "\"off\"",
                "\"ip\"",
                "\"ip-mac\"",
                "\"ip\"",
                "\"ip-mac\"",
                "\"off\"",
                "\"on\""
            ][..]
        )
        .prop_map(|w| format!("ip_source_guard = {w}")),
        (
            super::features::opt_kv("enabled", bool_s()),
            super::features::opt_kv(
                "check",
                proptest::sample::select(
                    &["\"ip\"", "\"ip-mac\"", "\"ip\"", "\"ip-mac\"", "\"off\""][..]
                )
                .prop_map(str::to_owned)
            ),
            super::features::opt_kv("mode", mode()),
        )
            .prop_map(|(a, b, c)| format!("ip_source_guard = {{ {a}{b}{c}}}")),
    ]
}

fn binding() -> impl Strategy<Value = String> {
    // Mostly a port with a VLAN it carries (vm1: 10, vm2: 20, uplink1: both).
    let place = prop_oneof![
        20 => proptest::sample::select(
            &[
                ("vm1", None),
                ("vm1", Some(10)),
                ("vm2", None),
                ("vm2", Some(20)),
                ("uplink1", Some(10)),
                ("uplink1", Some(20)),
            ][..]
        ),
        1 => proptest::sample::select(
            &[
                ("vm1", Some(20)),
                ("uplink1", None),
                ("nope", None),
                ("vm2", Some(4095)),
            ][..]
        ),
    ];
    (
        prop_oneof![
            20 => proptest::sample::select(&["52:54:00:00:00:01", "52:54:00:00:00:02", "00:1b:21:aa:bb:cc"][..]),
            1 => Just("01:00:5e:00:00:01"),
        ],
        prop_oneof![
            20 => proptest::sample::select(&["198.18.10.5", "198.18.10.6", "198.18.20.5", "2001:db8::5", "2001:db8::6"][..]),
            1 => Just("224.0.0.1"),
        ],
        place,
    )
        .prop_map(|(m, ip, (port, v))| {
            let vlan = v.map_or(String::new(), |v: i64| format!("vlan = {v}\n"));
            format!("\n[[host.static_binding]]\nmac = \"{m}\"\nip = \"{ip}\"\n{vlan}port = \"{port}\"\n")
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any mix of snooping settings on a group and two ports, ARP ACL rules and
    /// static bindings: either it loads and the spec is sound, or every error is
    /// located.
    #[test]
    fn snooping_settings_load_or_are_located(
        group in proptest::collection::vec(prop_oneof![dhcp_table(), arp_table(), ipsg_setting(), Just("port_security = { recovery_secs = 30 }".to_owned())], 0..4),
        p1 in proptest::collection::vec(prop_oneof![dhcp_table(), arp_table(), ipsg_setting(), Just("mac = \"52:54:00:00:00:01\"".to_owned())], 0..4),
        p2 in proptest::collection::vec(prop_oneof![dhcp_table(), arp_table(), ipsg_setting()], 0..3),
        uplink in proptest::collection::vec(proptest::sample::select(&["dhcp_trusted = false", "arp_trusted = false", "dhcp_trusted = true"][..]), 0..2),
        arp_rules in proptest::collection::vec(
            (
                prop_oneof![
                    20 => proptest::sample::select(&["permit", "deny"][..]),
                    1 => Just("allow"),
                ],
                prop_oneof![
                    20 => proptest::sample::select(&["198.18.10.5", "198.18.0.0/15", "0.0.0.0/0"][..]),
                    1 => proptest::sample::select(&["198.18.10.5/24", "::1"][..]),
                ],
            ).prop_map(|(a, ip)| format!("{{ action = \"{a}\", ip = \"{ip}\" }}")),
            0..3,
        ),
        bindings in proptest::collection::vec(binding(), 0..4),
        max_bindings in prop_oneof![20 => Just(1_048_576i64), 2 => Just(2), 1 => Just(0)],
    ) {
        let dedup = |v: Vec<String>| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|l| seen.insert(l.split([' ', '.']).next().unwrap().to_owned()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let uplink: Vec<String> = uplink.into_iter().map(str::to_owned).collect();
        let head = web_group(&dedup(group))
            .replace("allowed_vlans = [10, 20]", &format!("allowed_vlans = [10, 20]\n{}", dedup(uplink)))
            .replace("name = \"t\"", &format!("name = \"t\"\nmax_bindings = {max_bindings}"));
        let src = format!(
            "{head}{}\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap2\"\nport_group = \"db\"\n{}\n{}\n[[arp_acl]]\nname = \"a\"\nrules = [{}]\n",
            dedup(p1),
            dedup(p2),
            bindings.concat(),
            arp_rules.join(", ")
        );
        match parse_str(&src, P, None) {
            Ok(config) => {
                let c = config.compile().expect("a loaded config compiles");
                c.spec.check().expect("a loaded config passes SwitchSpec::check");
                check_new_invariants(&c.spec);
            }
            Err(errs) => {
                for e in errs.iter() {
                    prop_assert!(e.line.is_some(), "{e}\n{src}");
                    prop_assert!(!e.key.is_empty(), "{e}");
                }
            }
        }
    }
}

/// The error example of docs/config.md §5 is real output.
#[test]
fn docs_snooping_error_example_is_real() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let docs = std::fs::read_to_string(path).expect("docs/config.md");
    let section = &docs[docs
        .find("### Errors of snooping, inspection and bindings")
        .unwrap()..];
    let toml_start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let toml_len = section[toml_start..].find("```").unwrap();
    let src = &section[toml_start..toml_start + toml_len];
    let shown = parse_str(src, "prod.toml", None).unwrap_err().to_string();
    println!("{shown}");
    assert!(
        section.contains(&format!("```text\n{shown}\n```")),
        "docs/config.md §5 must show:\n{shown}"
    );
}
