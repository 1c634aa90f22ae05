//! Port security, storm control and MAC ACLs: compilation, merging of group and
//! port settings, and one located error per rule of docs/config.md.

use super::*;

/// BASE with an ACL named "a" and one named "b".
fn with_acls(extra: &str) -> String {
    format!(
        "{BASE}{extra}\n[[mac_acl]]\nname = \"a\"\nrules = [{{ action = \"permit\" }}]\n\n[[mac_acl]]\nname = \"b\"\nrules = []\n"
    )
}

/// BASE with `line` added to the "web" port group.
pub(super) fn web_group(line: &str) -> String {
    BASE.replacen("vlan = 10\n", &format!("vlan = 10\n{line}\n"), 1)
}

pub(super) fn compile(src: &str) -> CompiledConfig {
    match parse_str(src, P, None) {
        Ok(c) => c.compile().unwrap(),
        Err(e) => panic!("refused:\n{e}\n---\n{src}"),
    }
}

pub(super) fn features<'a>(c: &'a CompiledConfig, port: &str) -> &'a PortFeatures {
    &c.spec
        .ports
        .iter()
        .find(|p| p.name == port)
        .unwrap()
        .features
}

fn rule(src: &str) -> MacAclRule {
    let text = format!("{BASE}\n[[mac_acl]]\nname = \"x\"\nrules = [{src}]\n");
    compile(&text).spec.mac_acls[0].rules[0]
}

// ---- compilation ---------------------------------------------------------------

#[test]
fn port_security_table_alone_enables_it_with_the_defaults() {
    let c = compile(&web_group("port_security = {}"));
    assert_eq!(
        features(&c, "vm1").port_security,
        Some(PortSecuritySpec {
            max_macs: 1,
            violation: Violation::Shutdown,
            sticky: false,
            aging: SecureAging::None,
            aging_secs: 0,
            static_macs: vec![],
            sticky_macs: vec![],
        })
    );
    assert_eq!(features(&c, "vm1").errdisable_recovery_secs, None);
    assert_eq!(features(&c, "uplink1"), &PortFeatures::default());
    let c = compile(BASE);
    assert_eq!(features(&c, "vm1"), &PortFeatures::default());
    assert!(c.spec.mac_acls.is_empty());
}

#[test]
fn feature_overrides_merge_field_by_field() {
    let src = with_acls(
        r#"
[[port_group]]
name = "sec"
vlan = 30
port_security = { max_macs = 2, violation = "restrict", aging = "inactivity", aging_secs = 600, recovery_secs = 300 }
storm_control = { broadcast_pps = 100, multicast_pps = 1000, action = "shutdown", recovery_secs = 300 }
mac_acl_in = "a"
mac_acl_out = "b"

[[host.port]]
name = "inherits"
interface = "tap2"
port_group = "sec"

[[host.port]]
name = "overrides"
interface = "tap3"
port_group = "sec"
secure_macs = ["52:54:00:00:00:03"]
port_security = { max_macs = 4, sticky = true }
storm_control = { broadcast_pps = 50 }
mac_acl_in = "none"
mac_acl_out = "a"

[[host.port]]
name = "opts-out"
interface = "tap4"
port_group = "sec"
port_security = { enabled = false }
storm_control.enabled = false

[[host.port]]
name = "opts-in"
interface = "tap5"
port_group = "db"
mac = "52:54:00:00:00:05"
port_security = { aging = "absolute", aging_secs = 60 }
storm_control = { unknown_unicast_pps = 0 }
mac_acl_out = "b"
"#,
    );
    let c = compile(&src);
    let group_ps = PortSecuritySpec {
        max_macs: 2,
        violation: Violation::Restrict,
        sticky: false,
        aging: SecureAging::Inactivity,
        aging_secs: 600,
        static_macs: vec![],
        sticky_macs: vec![],
    };
    let group_storm = StormControlSpec {
        broadcast_pps: Some(100),
        multicast_pps: Some(1000),
        unknown_unicast_pps: None,
        shutdown: true,
    };
    assert_eq!(
        features(&c, "inherits"),
        &PortFeatures {
            port_security: Some(group_ps.clone()),
            storm_control: Some(group_storm),
            mac_acl_in: Some("a".into()),
            mac_acl_out: Some("b".into()),
            errdisable_recovery_secs: Some(300),
            ..Default::default()
        }
    );
    assert_eq!(
        features(&c, "overrides"),
        &PortFeatures {
            port_security: Some(PortSecuritySpec {
                max_macs: 4,
                sticky: true,
                static_macs: vec![mac("52:54:00:00:00:03")],
                ..group_ps
            }),
            storm_control: Some(StormControlSpec {
                broadcast_pps: Some(50),
                ..group_storm
            }),
            mac_acl_in: None,
            mac_acl_out: Some("a".into()),
            errdisable_recovery_secs: Some(300),
            ..Default::default()
        }
    );
    assert_eq!(
        features(&c, "opts-out"),
        &PortFeatures {
            mac_acl_in: Some("a".into()),
            mac_acl_out: Some("b".into()),
            ..PortFeatures::default()
        },
        "disabled features take their recovery interval with them"
    );
    assert_eq!(
        features(&c, "opts-in"),
        &PortFeatures {
            port_security: Some(PortSecuritySpec {
                max_macs: 1,
                violation: Violation::Shutdown,
                sticky: false,
                aging: SecureAging::Absolute,
                aging_secs: 60,
                static_macs: vec![],
                sticky_macs: vec![],
            }),
            storm_control: Some(StormControlSpec {
                unknown_unicast_pps: Some(0),
                ..StormControlSpec::default()
            }),
            mac_acl_in: None,
            mac_acl_out: Some("b".into()),
            errdisable_recovery_secs: None,
            ..Default::default()
        }
    );
    // The model keeps what was written.
    let config = parse_str(&src, P, None).unwrap();
    assert_eq!(
        config.host.ports[2].port_security,
        Some(PortSecurityOverride {
            max_macs: Some(4),
            sticky: Some(true),
            ..Default::default()
        })
    );
    assert_eq!(config.host.ports[2].mac_acl_in, Some(AclRef::None));
}

#[test]
fn storm_control_recovery_applies_without_port_security() {
    let c = compile(&web_group(
        "storm_control = { broadcast_pps = 10, action = \"shutdown\", recovery_secs = 30 }",
    ));
    assert_eq!(features(&c, "vm1").errdisable_recovery_secs, Some(30));
    // The same interval in both tables is fine.
    let c = compile(&web_group(
        "storm_control = { broadcast_pps = 10, recovery_secs = 30 }\nport_security = { recovery_secs = 30 }",
    ));
    assert_eq!(features(&c, "vm1").errdisable_recovery_secs, Some(30));
}

#[test]
fn uplink_policy_features_apply_to_every_uplink() {
    let src = with_acls("").replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nstorm_control = { multicast_pps = 5000, action = \"shutdown\", recovery_secs = 60 }\nmac_acl_in = \"a\"\nmac_acl_out = \"b\"",
    );
    let c = compile(&src);
    assert_eq!(
        features(&c, "uplink1"),
        &PortFeatures {
            port_security: None,
            storm_control: Some(StormControlSpec {
                multicast_pps: Some(5000),
                shutdown: true,
                ..StormControlSpec::default()
            }),
            mac_acl_in: Some("a".into()),
            mac_acl_out: Some("b".into()),
            errdisable_recovery_secs: Some(60),
            ..Default::default()
        }
    );
    assert_eq!(features(&c, "vm1"), &PortFeatures::default());
}

#[test]
fn mac_acl_rules_compile_in_file_order() {
    let src = with(
        r#"
[[mac_acl]]
name = "second"
rules = [{ action = "deny" }]

[[mac_acl]]
name = "first"

[[mac_acl.rules]]
action = "permit"
src = "52:54:00:00:00:00/ff:ff:ff:00:00:00"
dst = "ff:ff:ff:ff:ff:ff"
ethertype = 0x88cc
vlan = 10
cos = 5

[[mac_acl.rules]]
action = "deny"
src = "02:00:00:00:00:00/7"
ethertype = "0x86DD"
"#,
    );
    let c = compile(&src);
    let names: Vec<&str> = c.spec.mac_acls.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["second", "first"]);
    assert_eq!(
        c.spec.mac_acls[1].rules,
        [
            MacAclRule {
                action: AclAction::Permit,
                src: Some(MacMatch {
                    mac: mac("52:54:00:00:00:00"),
                    mask: mac("ff:ff:ff:00:00:00"),
                }),
                dst: Some(MacMatch {
                    mac: MacAddr::BROADCAST,
                    mask: MacAddr::BROADCAST,
                }),
                ethertype: Some(0x88cc),
                vlan: Some(vid(10)),
                cos: Some(5),
            },
            MacAclRule {
                action: AclAction::Deny,
                src: Some(MacMatch {
                    mac: mac("02:00:00:00:00:00"),
                    mask: mac("fe:00:00:00:00:00"),
                }),
                dst: None,
                ethertype: Some(0x86dd),
                vlan: None,
                cos: None,
            },
        ]
    );
    // Every documented name, and both ends of the range.
    for (name, value) in ETHERTYPE_NAMES {
        assert_eq!(
            rule(&format!(
                "{{ action = \"permit\", ethertype = \"{name}\" }}"
            ))
            .ethertype,
            Some(*value)
        );
    }
    assert_eq!(
        rule("{ action = \"permit\", ethertype = 0x0600 }").ethertype,
        Some(0x0600)
    );
    assert_eq!(
        rule("{ action = \"permit\", ethertype = 65535 }").ethertype,
        Some(0xffff)
    );
    // An empty ACL is allowed: bound, it denies everything.
    let c = compile(&with_acls("mac_acl_in = \"b\"\n"));
    assert!(c.spec.mac_acls[1].rules.is_empty());
    assert_eq!(features(&c, "vm1").mac_acl_in.as_deref(), Some("b"));
}

// ---- MAC ACL errors ---------------------------------------------------------------

#[test]
fn unknown_acl_names_list_the_known_acls() {
    let src = with_acls("mac_acl_in = \"c\"\n");
    let e = expect(
        &src,
        "mac_acl_in",
        "host.port[0].mac_acl_in",
        "unknown MAC ACL \"c\"",
    );
    assert!(e.message.contains("known ACLs: \"a\", \"b\""), "{e}");
    let src = with_acls("").replace("vlan = 20", "vlan = 20\nmac_acl_out = \"x\"");
    expect(&src, "mac_acl_out", "port_group[1].mac_acl_out", "\"x\"");
    let src = with_acls("").replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nmac_acl_in = \"y\"",
    );
    expect(&src, "mac_acl_in", "uplink_policy.mac_acl_in", "\"y\"");
    let src = with("mac_acl_out = \"x\"\n");
    expect(
        &src,
        "mac_acl_out",
        "host.port[0].mac_acl_out",
        "the profile defines no [[mac_acl]]",
    );
    // "none" is not an ACL name but the way to bind none.
    compile(&with("mac_acl_in = \"none\"\n"));
}

#[test]
fn duplicate_empty_and_reserved_acl_names() {
    let src = with_acls("").replace("name = \"b\"", "name = \"a\"");
    let line = last_line_where(&src, |l| l == "name = \"a\"");
    let e = expect_in(
        &errors_of(&src),
        P,
        line,
        "mac_acl[1].name",
        "MAC ACL \"a\" is already defined by mac_acl[0]",
    );
    let first = line_of(&src, "[[mac_acl]]");
    assert!(e.message.contains(&format!("at line {first}")), "{e}");

    let src = with_acls("").replace("name = \"b\"", "name = \"\"");
    expect(
        &src,
        "name = \"\"",
        "mac_acl[1].name",
        "MAC ACL name must not be empty",
    );
    let src = with_acls("").replace("name = \"b\"", "name = \"none\"");
    expect(&src, "name = \"none\"", "mac_acl[1].name", "reserved");
    let src = with_acls("").replace("name = \"b\"", "name = \"b c\"");
    expect(&src, "name = \"b c\"", "mac_acl[1].name", "whitespace");
}

#[test]
fn too_many_acl_rules() {
    let rules = vec!["{ action = \"deny\" }"; MAX_ACL_RULES + 1].join(",\n");
    let src = format!("{BASE}\n[[mac_acl]]\nname = \"big\"\nrules = [\n{rules}\n]\n");
    let e = expect(&src, "rules = [", "mac_acl[0].rules", "4097 rules");
    assert!(e.message.contains("at most 4096"), "{e}");
    // Exactly the limit is fine.
    let rules = vec!["{ action = \"deny\" }"; MAX_ACL_RULES].join(",\n");
    compile(&format!(
        "{BASE}\n[[mac_acl]]\nname = \"big\"\nrules = [\n{rules}\n]\n"
    ));
}

/// `rules` with one rule per line: errors are at the rule's line.
fn acl_with_rules(rules: &[&str]) -> String {
    format!(
        "{BASE}\n[[mac_acl]]\nname = \"x\"\nrules = [\n{}\n]\n",
        rules.join(",\n")
    )
}

#[test]
fn bad_acl_rule_values_are_all_located() {
    let src = acl_with_rules(&[
        "  { action = \"allow\" }",
        "  { action = \"deny\", src = \"52:54:00:00:00\" }",
        "  { action = \"deny\", dst = \"52:54:00:00:00:00/ff:ff:ff\" }",
        "  { action = \"deny\", src = \"52:54:00:00:00:00/49\" }",
        "  { action = \"deny\", cos = 8 }",
        "  { action = \"deny\", cos = -1 }",
        "  { action = \"deny\", vlan = 4095 }",
        "  { action = \"deny\", vlan = 0 }",
        "  { action = \"deny\", ethertype = \"ip\" }",
        "  { action = \"deny\", ethertype = 0x05dc }",
        "  { action = \"deny\", ethertype = \"0x0042\" }",
        "  { action = \"deny\", ethertype = 0x10000 }",
        "  { action = \"deny\", ethertype = \"0xzz\" }",
    ]);
    let errs = errors_of(&src);
    let at = |n: usize| line_of(&src, "rules = [") + 1 + n;
    let r = |n: usize, field: &str| format!("mac_acl[0].rules[{n}].{field}");
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
        &r(1, "src"),
        "not a MAC address or MAC/mask",
    );
    expect_in(
        &errs,
        P,
        at(2),
        &r(2, "dst"),
        "not a MAC address or MAC/mask",
    );
    expect_in(&errs, P, at(3), &r(3, "src"), "prefix length 49");
    expect_in(
        &errs,
        P,
        at(4),
        &r(4, "cos"),
        "CoS 8 is out of range: allowed 0..=7",
    );
    expect_in(&errs, P, at(5), &r(5, "cos"), "CoS -1");
    expect_in(
        &errs,
        P,
        at(6),
        &r(6, "vlan"),
        "VLAN 4095 is outside 1..=4094",
    );
    expect_in(&errs, P, at(7), &r(7, "vlan"), "VLAN 0");
    let e = expect_in(
        &errs,
        P,
        at(8),
        &r(8, "ethertype"),
        "unknown EtherType name \"ip\"",
    );
    for name in ["ipv4", "arp", "ipv6", "vlan", "qinq", "lldp", "eapol"] {
        assert!(e.message.contains(name), "{e}");
    }
    let e = expect_in(
        &errs,
        P,
        at(9),
        &r(9, "ethertype"),
        "0x05dc is not an EtherType",
    );
    assert!(e.message.contains("802.3 length"), "{e}");
    expect_in(
        &errs,
        P,
        at(10),
        &r(10, "ethertype"),
        "0x0042 is not an EtherType",
    );
    expect_in(
        &errs,
        P,
        at(11),
        &r(11, "ethertype"),
        "65536 is not an EtherType",
    );
    expect_in(
        &errs,
        P,
        at(12),
        &r(12, "ethertype"),
        "\"0xzz\" is not an EtherType",
    );
    assert_eq!(errs.len(), 13, "{errs:#?}");
}

#[test]
fn acl_rule_shape_errors() {
    let src = acl_with_rules(&["  { action = \"deny\", port = 80 }"]);
    expect(
        &src,
        "port = 80",
        "mac_acl[0].rules[0].port",
        "unknown field `port`",
    );
    let src = acl_with_rules(&["  { src = \"52:54:00:00:00:01\" }"]);
    expect(
        &src,
        "{ src",
        "mac_acl[0].rules[0].action",
        "missing field `action`",
    );
    let src = format!("{BASE}\n[[mac_acl]]\nname = \"x\"\n");
    expect(
        &src,
        "[[mac_acl]]",
        "mac_acl[0].rules",
        "missing field `rules`",
    );
    let src = acl_with_rules(&["  { action = \"deny\", ethertype = 1.5 }"]);
    expect(&src, "1.5", "mac_acl[0].rules[0].ethertype", "EtherType");
}

// ---- port security errors -----------------------------------------------------------

#[test]
fn max_macs_bounds() {
    for (v, needle) in [
        ("0", "0 is out of range: allowed 1..=4096"),
        ("4097", "4097 is out of range"),
        ("70000", "70000 is out of range"),
        ("-1", "-1 is out of range"),
    ] {
        let src = web_group(&format!("port_security = {{ max_macs = {v} }}"));
        expect(
            &src,
            "max_macs",
            "port_group[0].port_security.max_macs",
            needle,
        );
        let src = with(&format!("port_security.max_macs = {v}\n"));
        expect(
            &src,
            "max_macs",
            "host.port[0].port_security.max_macs",
            needle,
        );
    }
    compile(&web_group("port_security = { max_macs = 4096 }"));
}

#[test]
fn aging_needs_aging_secs() {
    let src = web_group("port_security = { aging = \"inactivity\" }");
    let e = expect(
        &src,
        "aging",
        "port_group[0].port_security.aging",
        "needs aging_secs",
    );
    assert!(e.message.contains("1..=1000000"), "{e}");
    // Stated by the port, with the group giving no interval.
    let src = with("port_security = { aging = \"absolute\" }\n");
    expect(
        &src,
        "aging",
        "host.port[0].port_security.aging",
        "aging = \"absolute\" needs",
    );
    // The group's interval serves the port's aging.
    compile(
        &(web_group("port_security = { aging_secs = 60 }")
            + "port_security.aging = \"absolute\"\n"),
    );
    // `none` needs nothing, and aging_secs alone is fine.
    compile(&web_group("port_security = { aging = \"none\" }"));
    for v in ["0", "1000001", "-5"] {
        let src = web_group(&format!(
            "port_security = {{ aging = \"inactivity\", aging_secs = {v} }}"
        ));
        let errs = errors_of(&src);
        expect_in(
            &errs,
            P,
            line_of(&src, "aging_secs"),
            "port_group[0].port_security.aging_secs",
            "out of range: allowed 1..=1000000",
        );
        assert_eq!(errs.len(), 1, "no follow-up error: {errs:#?}");
    }
}

#[test]
fn port_security_words_and_recovery() {
    let src = web_group(
        "port_security = { violation = \"drop\", aging = \"forever\", recovery_secs = 0 }",
    );
    let errs = errors_of(&src);
    let line = line_of(&src, "port_security");
    let e = expect_in(
        &errs,
        P,
        line,
        "port_group[0].port_security.violation",
        "\"drop\" is not a violation action",
    );
    assert!(
        e.message
            .contains("\"protect\", \"restrict\" or \"shutdown\""),
        "{e}"
    );
    let e = expect_in(
        &errs,
        P,
        line,
        "port_group[0].port_security.aging",
        "\"forever\" is not a secure-MAC aging",
    );
    assert!(
        e.message
            .contains("\"none\", \"absolute\" or \"inactivity\""),
        "{e}"
    );
    expect_in(
        &errs,
        P,
        line,
        "port_group[0].port_security.recovery_secs",
        "0 is out of range: allowed 1..=86400",
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");
    let src = with("port_security = { recovery_secs = 86401 }\n");
    expect(
        &src,
        "recovery_secs",
        "host.port[0].port_security.recovery_secs",
        "86401",
    );
}

#[test]
fn port_security_shape_errors() {
    let src = web_group("port_security = { max_mac = 2 }");
    expect(
        &src,
        "max_mac",
        "port_group[0].port_security.max_mac",
        "unknown field `max_mac`",
    );
    let src = web_group("port_security = { max_macs = \"2\" }");
    expect(
        &src,
        "max_macs",
        "port_group[0].port_security.max_macs",
        "expected an integer",
    );
    let src = with("port_security = { sticky = \"yes\" }\n");
    expect(
        &src,
        "sticky",
        "host.port[0].port_security.sticky",
        "expected a boolean",
    );
    let src = with("secure_macs = \"52:54:00:00:00:01\"\n");
    expect(
        &src,
        "secure_macs",
        "host.port[0].secure_macs",
        "expected an array",
    );
}

#[test]
fn port_security_on_an_uplink_is_refused() {
    let src = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nport_security = { max_macs = 1 }",
    );
    let e = expect(
        &src,
        "port_security",
        "uplink_policy.port_security",
        "port security applies to guest ports only",
    );
    assert_eq!(e.column, Some(1));
    assert_eq!(errors_of(&src).len(), 1);
}

#[test]
fn secure_macs_need_port_security() {
    let src = with("secure_macs = [\"52:54:00:00:00:01\"]\n");
    let e = expect(
        &src,
        "secure_macs",
        "host.port[0].secure_macs",
        "need port security",
    );
    assert!(e.message.contains("group \"web\""), "{e}");
    let src = web_group("port_security = { enabled = false }")
        + "secure_macs = [\"52:54:00:00:00:01\"]\n";
    expect(
        &src,
        "secure_macs",
        "host.port[0].secure_macs",
        "disabled here",
    );
    // Enabled by the port itself.
    let src = with("secure_macs = [\"52:54:00:00:00:01\"]\nport_security = { max_macs = 2 }\n");
    let c = compile(&src);
    let ps = features(&c, "vm1").port_security.as_ref().unwrap();
    assert_eq!(ps.static_macs, [mac("52:54:00:00:00:01")]);
}

#[test]
fn static_secure_macs_beyond_max_macs() {
    // The initial MAC and two secure MACs: 3 > 2 (the group's max_macs).
    let src = web_group("port_security = { max_macs = 2 }")
        + "mac = \"52:54:00:00:00:01\"\nsecure_macs = [\"52:54:00:00:00:02\", \"52:54:00:00:00:03\"]\n";
    let e = expect(
        &src,
        "secure_macs",
        "host.port[0].secure_macs",
        "3 static secure MACs",
    );
    let group_line = line_of(&src, "port_security");
    assert!(
        e.message.contains(&format!(
            "max_macs is 2 (port_group[0].port_security.max_macs at line {group_line})"
        )),
        "{e}"
    );
    // The default of 1.
    let src = web_group("port_security = {}")
        + "secure_macs = [\"52:54:00:00:00:02\", \"52:54:00:00:00:03\"]\n";
    let e = expect(
        &src,
        "secure_macs",
        "host.port[0].secure_macs",
        "2 static secure MACs",
    );
    assert!(e.message.contains("max_macs is 1 (the default)"), "{e}");
    // Listing the initial MAC again counts it once.
    compile(
        &(web_group("port_security = { max_macs = 2 }")
            + "mac = \"52:54:00:00:00:01\"\nsecure_macs = [\"52:54:00:00:00:01\", \"52:54:00:00:00:02\"]\n"),
    );
}

#[test]
fn bad_secure_macs() {
    let src = web_group("port_security = { max_macs = 8 }")
        + "secure_macs = [\"01:00:5e:00:00:01\", \"00:00:00:00:00:00\", \"52:54:00\", \"52:54:00:00:00:01\", \"52-54-00-00-00-01\"]\n";
    let errs = errors_of(&src);
    let line = line_of(&src, "secure_macs");
    let k = |j: usize| format!("host.port[0].secure_macs[{j}]");
    expect_in(&errs, P, line, &k(0), "multicast");
    expect_in(&errs, P, line, &k(1), "not a usable MAC");
    expect_in(&errs, P, line, &k(2), "not a MAC address");
    expect_in(
        &errs,
        P,
        line,
        &k(4),
        "listed twice (first as host.port[0].secure_macs[3])",
    );
    assert_eq!(errs.len(), 4, "{errs:#?}");
}

#[test]
fn a_secure_mac_of_two_ports_in_one_vlan() {
    let port = |name: &str, ifname: &str, group: &str, macs: &str| {
        format!(
            "\n[[host.port]]\nname = \"{name}\"\ninterface = \"{ifname}\"\nport_group = \"{group}\"\nsecure_macs = [{macs}]\n"
        )
    };
    let base = web_group("port_security = { max_macs = 4 }").replace(
        "vlan = 20\n",
        "vlan = 20\nport_security = { max_macs = 4 }\n",
    );
    // Secure MAC of vm1 and of vm2, both VLAN 10: both ports are named.
    let src = format!(
        "{base}secure_macs = [\"52:54:00:00:00:09\"]\n{}",
        port(
            "vm2",
            "tap2",
            "web",
            "\"52:54:00:00:00:08\", \"52:54:00:00:00:09\""
        )
    );
    let line = last_line_where(&src, |l| l.starts_with("secure_macs"));
    let e = expect_in(
        &errors_of(&src),
        P,
        line,
        "host.port[1].secure_macs[1]",
        "secure MAC 52:54:00:00:00:09 of port \"vm2\" is already a secure MAC of port \"vm1\"",
    );
    let first = line_of(&src, "secure_macs");
    assert!(
        e.message.contains(&format!(
            "(host.port[0].secure_macs[0] at line {first}) in VLAN 10"
        )),
        "{e}"
    );
    // A secure MAC that is another port's initial MAC, and the reverse.
    let src = format!(
        "{base}mac = \"52:54:00:00:00:09\"\n{}",
        port("vm2", "tap2", "web", "\"52:54:00:00:00:09\"")
    );
    let line = last_line_where(&src, |l| l.starts_with("secure_macs"));
    expect_in(
        &errors_of(&src),
        P,
        line,
        "host.port[1].secure_macs[0]",
        "is already the initial MAC of port \"vm1\"",
    );
    let src = format!(
        "{base}secure_macs = [\"52:54:00:00:00:09\"]\n{}mac = \"52:54:00:00:00:09\"\n",
        port("vm2", "tap2", "web", "")
    );
    let line = last_line_where(&src, |l| l.starts_with("mac ="));
    expect_in(
        &errors_of(&src),
        P,
        line,
        "host.port[1].mac",
        "MAC 52:54:00:00:00:09 is already a secure MAC of port \"vm1\"",
    );
    // Different VLANs: fine.
    compile(&format!(
        "{base}secure_macs = [\"52:54:00:00:00:09\"]\n{}",
        port("vm2", "tap2", "db", "\"52:54:00:00:00:09\"")
    ));
}

#[test]
fn recovery_intervals_must_agree() {
    let src = web_group(
        "port_security = { recovery_secs = 300 }\nstorm_control = { broadcast_pps = 10, recovery_secs = 60 }",
    );
    let e = expect(
        &src,
        "storm_control",
        "port_group[0].storm_control.recovery_secs",
        "one err-disable recovery interval",
    );
    assert!(e.message.contains("300") && e.message.contains("60"), "{e}");
    // A port whose own table makes them disagree.
    let src = web_group("port_security = { recovery_secs = 300 }")
        + "storm_control = { broadcast_pps = 10, recovery_secs = 60 }\n";
    expect(
        &src,
        "storm_control",
        "host.port[0].storm_control.recovery_secs",
        "one err-disable recovery interval",
    );
    // A disabled feature's interval does not count.
    compile(&web_group(
        "port_security = { recovery_secs = 300, enabled = false }\nstorm_control = { broadcast_pps = 10, recovery_secs = 60 }",
    ));
}

// ---- storm control errors ---------------------------------------------------------

#[test]
fn storm_control_values() {
    let src = web_group(
        "storm_control = { broadcast_pps = -1, multicast_pps = 10000001, unknown_unicast_pps = 5000000000, action = \"police\" }",
    );
    let errs = errors_of(&src);
    let line = line_of(&src, "storm_control");
    let k = |f: &str| format!("port_group[0].storm_control.{f}");
    expect_in(
        &errs,
        P,
        line,
        &k("broadcast_pps"),
        "-1 is out of range: allowed 0..=10000000",
    );
    expect_in(
        &errs,
        P,
        line,
        &k("multicast_pps"),
        "10000001 is out of range",
    );
    expect_in(
        &errs,
        P,
        line,
        &k("unknown_unicast_pps"),
        "5000000000 is out of range",
    );
    let e = expect_in(
        &errs,
        P,
        line,
        &k("action"),
        "\"police\" is not a storm-control action",
    );
    assert!(e.message.contains("\"drop\" or \"shutdown\""), "{e}");
    assert_eq!(errs.len(), 4, "no follow-up error: {errs:#?}");

    let src = with("storm_control = { action = \"shutdown\" }\n");
    expect(
        &src,
        "storm_control",
        "host.port[0].storm_control",
        "sets no limit",
    );
    let src = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nstorm_control = {}",
    );
    expect(
        &src,
        "storm_control",
        "uplink_policy.storm_control",
        "sets no limit",
    );
    // The group's limits serve the port's table; `enabled = false` needs none.
    compile(
        &(web_group("storm_control = { broadcast_pps = 1 }")
            + "storm_control.action = \"shutdown\"\n"),
    );
    compile(&web_group("storm_control = { enabled = false }"));
}

// ---- all at once ---------------------------------------------------------------------

#[test]
fn feature_errors_are_all_reported_in_file_order() {
    let src = r#"[switch]
name = "t"

[[port_group]]
name = "web"
vlan = 10
port_security = { max_macs = 0 }
mac_acl_in = "nope"

[[mac_acl]]
name = "a"
rules = [{ action = "deny", cos = 9 }]

[[host.port]]
name = "vm1"
interface = "tap1"
port_group = "web"
secure_macs = ["ff:ff:ff:ff:ff:ff"]
storm_control = { broadcast_pps = -3 }
"#;
    let errs = errors_of(src);
    let lines: Vec<usize> = errs.iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(lines, [7, 8, 12, 18, 19], "{errs:#?}");
}

// ---- configurations changed in code, and the data plane's own check --------------------

#[test]
fn config_changed_in_code_is_checked_again() {
    let src = with_acls("mac_acl_in = \"a\"\n");
    let mut config = parse_str(&src, P, None).unwrap();
    config.profile.mac_acls[0].rules[0].cos = Some(9);
    config.profile.mac_acls[0].rules[0].ethertype = Some(0x0100);
    config.host.ports[0].mac_acl_out = Some(AclRef::Named("zz".into()));
    config.host.ports[0].port_security = Some(PortSecurityOverride {
        max_macs: Some(0),
        ..Default::default()
    });
    let errs = config.compile().unwrap_err();
    let line = line_of(&src, "rules = [{");
    expect_in(errs.errors(), P, line, "mac_acl[0].rules[0].cos", "CoS 9");
    expect_in(
        errs.errors(),
        P,
        line,
        "mac_acl[0].rules[0].ethertype",
        "0x0100",
    );
    // Keys the file does not have are located at their nearest ancestor.
    let port = line_of(&src, "[[host.port]]");
    expect_in(errs.errors(), P, port, "host.port[0].mac_acl_out", "\"zz\"");
    expect_in(
        errs.errors(),
        P,
        port,
        "host.port[0].port_security.max_macs",
        "0 is out of range",
    );
}

#[test]
fn spec_check_errors_of_features_are_located() {
    let src = with_acls(
        r#"secure_macs = ["52:54:00:00:00:02"]
port_security = { max_macs = 2 }
mac_acl_in = "a"

[[host.port]]
name = "vm2"
interface = "tap2"
port_group = "web"
port_security = { max_macs = 3 }
secure_macs = ["52:54:00:00:00:03"]
mac_acl_out = "b"
"#,
    )
    .replace(
        "vlan = 10\n",
        "vlan = 10\nport_security = { aging_secs = 30 }\n",
    );
    let config = parse_str(&src, P, None).unwrap();
    let c = config.compile().unwrap();
    let located = |e: SpecError| {
        let err = spec_error::spec_error(&e, &c, &config.profile, &config.host, &config.sources);
        (err.key.clone(), err.line.unwrap())
    };
    let ps = |port: &str| SpecError::PortSecurity {
        port: port.into(),
        reason: "x".into(),
    };
    // What check() finds wrong decides the key.
    let mut c2 = c.clone();
    c2.spec.ports[1]
        .features
        .port_security
        .as_mut()
        .unwrap()
        .max_macs = 0;
    c2.spec.ports[2]
        .features
        .port_security
        .as_mut()
        .unwrap()
        .aging = SecureAging::Absolute;
    c2.spec.ports[2]
        .features
        .port_security
        .as_mut()
        .unwrap()
        .aging_secs = 0;
    let located2 = |e: SpecError| {
        let err = spec_error::spec_error(&e, &c2, &config.profile, &config.host, &config.sources);
        (err.key.clone(), err.line.unwrap())
    };
    assert_eq!(
        located2(ps("vm1")),
        (
            "host.port[0].port_security.max_macs".into(),
            line_of(&src, "port_security = { max_macs = 2 }")
        )
    );
    assert_eq!(
        located2(ps("vm2")),
        (
            "port_group[0].port_security.aging_secs".into(),
            line_of(&src, "aging_secs = 30")
        )
    );
    c2.spec.ports[1]
        .features
        .port_security
        .as_mut()
        .unwrap()
        .max_macs = 1;
    // vm1: its static MAC and a sticky one, over max_macs 1.
    c2.spec.ports[1]
        .features
        .port_security
        .as_mut()
        .unwrap()
        .sticky_macs
        .push(mac("52:54:00:00:00:0a"));
    let located3 = |e: SpecError| {
        spec_error::spec_error(&e, &c2, &config.profile, &config.host, &config.sources).key
    };
    assert_eq!(located3(ps("vm1")), "host.port[0].secure_macs");
    let acl = |port: &str, acl: &str| SpecError::UnknownAcl {
        port: port.into(),
        acl: acl.into(),
    };
    assert_eq!(
        located(acl("vm1", "a")),
        (
            "host.port[0].mac_acl_in".into(),
            line_of(&src, "mac_acl_in = \"a\"")
        )
    );
    assert_eq!(
        located(acl("vm2", "b")),
        (
            "host.port[1].mac_acl_out".into(),
            line_of(&src, "mac_acl_out = \"b\"")
        )
    );
    let bad = |acl: &str| SpecError::BadAcl {
        acl: acl.into(),
        reason: "x".into(),
    };
    let acl_line = last_line_where(&src, |l| l == "name = \"b\"") - 1;
    assert_eq!(located(bad("b")), ("mac_acl[1]".into(), acl_line));
    let mut c3 = c.clone();
    c3.spec.mac_acls[0].rules[0].cos = Some(8);
    let err = spec_error::spec_error(
        &bad("a"),
        &c3,
        &config.profile,
        &config.host,
        &config.sources,
    );
    assert_eq!(err.key, "mac_acl[0].rules[0].cos");
    c3.spec.mac_acls[1].name = "a".into();
    let err = spec_error::spec_error(
        &bad("a"),
        &c3,
        &config.profile,
        &config.host,
        &config.sources,
    );
    assert_eq!(err.key, "mac_acl[1].name");
    // Static secure MACs of two ports counted by the data plane's own check.
    let mut c4 = c.clone();
    c4.spec.ports[2]
        .features
        .port_security
        .as_mut()
        .unwrap()
        .static_macs = vec![mac("52:54:00:00:00:02")];
    let e = c4.spec.check().unwrap_err();
    assert!(matches!(e, SpecError::DuplicateMac { .. }), "{e:?}");
    let err = spec_error::spec_error(&e, &c4, &config.profile, &config.host, &config.sources);
    assert_eq!(err.key, "host.port[1].secure_macs[0]");
}

// ---- sticky MACs from the daemon's store ---------------------------------------------

#[test]
fn restore_sticky_keeps_the_spec_valid() {
    let src = web_group("port_security = { max_macs = 3, sticky = true }")
        + "mac = \"52:54:00:00:00:01\"\nsecure_macs = [\"52:54:00:00:00:02\"]\n"
        + "\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap2\"\nport_group = \"web\"\nmac = \"52:54:00:00:00:07\"\n"
        + "\n[[host.port]]\nname = \"vm3\"\ninterface = \"tap3\"\nport_group = \"db\"\n";
    let mut c = compile(&src);
    let refused = c.restore_sticky(
        "vm1",
        &[
            mac("52:54:00:00:00:02"), // already static: skipped silently
            mac("01:00:5e:00:00:01"),
            mac("52:54:00:00:00:07"), // vm2's, in VLAN 10
            mac("52:54:00:00:00:05"),
            mac("52:54:00:00:00:06"), // a fourth MAC
        ],
    );
    assert_eq!(
        refused,
        [
            (mac("01:00:5e:00:00:01"), StickyRefused::NotUnicast),
            (mac("52:54:00:00:00:07"), StickyRefused::InUse("vm2".into())),
            (mac("52:54:00:00:00:06"), StickyRefused::MaxMacs(3)),
        ]
    );
    let ps = features(&c, "vm1").port_security.as_ref().unwrap();
    assert_eq!(ps.sticky_macs, [mac("52:54:00:00:00:05")]);
    c.spec.check().unwrap();
    // Restoring again changes nothing.
    assert!(
        c.restore_sticky("vm1", &[mac("52:54:00:00:00:05")])
            .is_empty()
    );
    assert_eq!(
        features(&c, "vm1")
            .port_security
            .as_ref()
            .unwrap()
            .sticky_macs
            .len(),
        1
    );
    let m = [mac("52:54:00:00:00:09")];
    assert_eq!(
        c.restore_sticky("vm3", &m),
        [(m[0], StickyRefused::NotSticky)]
    );
    assert_eq!(
        c.restore_sticky("uplink1", &m),
        [(m[0], StickyRefused::UnknownPort)]
    );
    assert_eq!(
        c.restore_sticky("gone", &m)[0].1,
        StickyRefused::UnknownPort
    );

    // A full MAC table refuses.
    let small = src.replace("name = \"t\"", "name = \"t\"\nmac_table_size = 3");
    let mut c = compile(&small);
    assert_eq!(
        c.restore_sticky("vm1", &m),
        [(m[0], StickyRefused::TableFull)]
    );
    c.spec.check().unwrap();
}

// ---- robustness ----------------------------------------------------------------

/// A value near or beyond the bounds of an integer key.
fn edgy_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(-1i64),
        Just(0),
        Just(1),
        Just(7),
        Just(8),
        Just(0x05ff),
        Just(0x0600),
        Just(4096),
        Just(4097),
        Just(86_400),
        Just(10_000_001),
        Just(i64::MAX),
        0i64..70_000,
    ]
}

/// Mostly a value of `valid`, sometimes an edgy one.
fn int_in(valid: std::ops::RangeInclusive<i64>) -> impl Strategy<Value = String> {
    prop_oneof![12 => valid, 1 => edgy_int()].prop_map(|v| v.to_string())
}

/// Mostly one of `good`, sometimes `bad`.
fn word_of(good: &'static [&'static str], bad: &'static str) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => proptest::sample::select(good).prop_map(|w| format!("{w:?}")),
        1 => Just(format!("{bad:?}")),
    ]
}

pub(super) fn opt_kv(
    key: &'static str,
    v: impl Strategy<Value = String>,
) -> impl Strategy<Value = String> {
    proptest::option::of(v).prop_map(move |v| v.map_or(String::new(), |v| format!("{key} = {v}, ")))
}

fn port_security_table() -> impl Strategy<Value = String> {
    (
        opt_kv("enabled", any::<bool>().prop_map(|b| b.to_string())),
        opt_kv("max_macs", int_in(1..=6)),
        opt_kv(
            "violation",
            word_of(&["protect", "restrict", "shutdown"], "x"),
        ),
        opt_kv("sticky", any::<bool>().prop_map(|b| b.to_string())),
        opt_kv("aging", word_of(&["none", "absolute", "inactivity"], "y")),
        opt_kv("aging_secs", int_in(1..=1_000_000)),
        opt_kv("recovery_secs", int_in(30..=31)),
    )
        .prop_map(|(a, b, c, d, e, f, g)| format!("port_security = {{ {a}{b}{c}{d}{e}{f}{g}}}"))
}

fn storm_table() -> impl Strategy<Value = String> {
    (
        opt_kv("enabled", any::<bool>().prop_map(|b| b.to_string())),
        opt_kv("broadcast_pps", int_in(0..=10_000_000)),
        opt_kv("unknown_unicast_pps", int_in(0..=10_000_000)),
        opt_kv("action", word_of(&["drop", "shutdown"], "z")),
        opt_kv("recovery_secs", int_in(30..=31)),
    )
        .prop_map(|(a, b, c, d, e)| format!("storm_control = {{ {a}{b}{c}{d}{e}}}"))
}

fn acl_rule() -> impl Strategy<Value = String> {
    (
        word_of(&["permit", "deny"], "allow"),
        opt_kv(
            "src",
            word_of(
                &[
                    "52:54:00:00:00:00/24",
                    "52:54:00:00:00:00/ff:00:ff:00:00:01",
                    "02:00:00:00:00:01",
                ],
                "52:54:00",
            ),
        ),
        opt_kv(
            "ethertype",
            prop_oneof![
                4 => int_in(0x0600..=0xffff),
                4 => word_of(&["lldp", "ipv6", "0x0800"], "ip"),
            ],
        ),
        opt_kv("vlan", int_in(1..=4094)),
        opt_kv("cos", int_in(0..=7)),
    )
        .prop_map(|(a, b, c, d, e)| format!("{{ {b}{c}{d}{e}action = {a} }}"))
}

fn secure_macs() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        word_of(
            &[
                "52:54:00:00:00:01",
                "52:54:00:00:00:02",
                "52:54:00:00:00:03",
            ],
            "01:00:5e:00:00:01",
        ),
        0..4,
    )
    .prop_map(|v| format!("secure_macs = [{}]", v.join(", ")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any mix of feature settings on a group and two ports of one VLAN: either it
    /// loads and the data plane accepts its spec, or every error is located.
    #[test]
    fn feature_settings_load_or_are_located(
        group in proptest::collection::vec(prop_oneof![3 => port_security_table(), 3 => storm_table(), 1 => Just("mac_acl_in = \"a\"".to_owned()), 1 => Just("mac_acl_out = \"zz\"".to_owned())], 0..3),
        p1 in proptest::collection::vec(prop_oneof![port_security_table(), storm_table(), secure_macs(), Just("mac = \"52:54:00:00:00:01\"".to_owned()), Just("mac_acl_in = \"none\"".to_owned())], 0..4),
        p2 in proptest::collection::vec(prop_oneof![port_security_table(), storm_table(), secure_macs(), Just("mac_acl_out = \"a\"".to_owned())], 0..4),
        rules in proptest::collection::vec(acl_rule(), 0..3),
    ) {
        let dedup = |v: Vec<String>| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|l| seen.insert(l.split(" =").next().unwrap().to_owned()))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let src = format!(
            "{}\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap2\"\nport_group = \"web\"\n{}\n\n[[mac_acl]]\nname = \"a\"\nrules = [{}]\n",
            web_group(&dedup(group)) + &dedup(p1),
            dedup(p2),
            rules.join(", ")
        );
        match parse_str(&src, P, None) {
            Ok(config) => {
                let c = config.compile().expect("a loaded config compiles");
                c.spec.check().expect("a loaded config passes SwitchSpec::check");
            }
            Err(errs) => {
                for e in errs.iter() {
                    prop_assert!(e.line.is_some(), "{e}");
                    prop_assert!(!e.key.is_empty(), "{e}");
                }
            }
        }
    }
}

/// The error example of docs/config.md §4 is real output.
#[test]
fn docs_feature_error_example_is_real() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/config.md");
    let docs = std::fs::read_to_string(path).expect("docs/config.md");
    let section = &docs[docs.find("### Errors these features add").unwrap()..];
    let toml_start = section.find("```toml\n").unwrap() + "```toml\n".len();
    let toml_len = section[toml_start..].find("```").unwrap();
    let src = &section[toml_start..toml_start + toml_len];
    let shown = parse_str(src, "prod.toml", None).unwrap_err().to_string();
    println!("{shown}");
    assert!(
        section.contains(&format!("```text\n{shown}\n```")),
        "docs/config.md §4 must show:\n{shown}"
    );
}
