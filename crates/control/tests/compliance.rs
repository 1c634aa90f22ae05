//! Flat views and diffs, golden-profile compliance, hardening templates and profile
//! export, on the documented example configuration and small variants of it.

use portcullis_control::compliance::{
    ComplianceReport, Expect, FindingKind, Template, check_golden, check_profile, check_template,
};
use portcullis_control::diff::{
    Change, Flat, diff, flatten_config, flatten_host, flatten_profile, render,
};
use portcullis_control::export::{export_host, export_profile};
use portcullis_control::{Config, example_profile, parse_str};
use proptest::prelude::*;
use std::path::PathBuf;

fn load(text: &str) -> Config {
    match parse_str(text, "test.toml", None) {
        Ok(c) => c,
        Err(e) => panic!("test configuration does not load:\n{e}\n---\n{text}"),
    }
}

/// `text` with `from` replaced by `to`; `from` must occur.
fn edit(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in the text");
    text.replacen(from, to, 1)
}

fn example() -> Config {
    load(example_profile())
}

/// The example without its deliberate exceptions to the vSwitch policy (the
/// `router` group's MAC changes, the `nested` group's and `lb1`'s forged transmits).
fn hardened_example_text() -> String {
    let t = edit(
        example_profile(),
        "security = { mac_changes = \"accept\" }   # the rest stays \"reject\"\n",
        "",
    );
    let t = edit(
        &t,
        "security = { forged_transmits = \"accept\" }   # any source MAC may send ...\n",
        "",
    );
    edit(
        &t,
        "security = { forged_transmits = \"accept\" }   # this port only; merged over the group's\n",
        "",
    )
}

fn keys(report: &ComplianceReport) -> Vec<&str> {
    report.findings.iter().map(|f| f.key.as_str()).collect()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "portcullis-compliance-{tag}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- flatten -------------------------------------------------------------------

#[test]
fn the_example_flattens_with_the_documented_keys() {
    let flat = flatten_config(&example());
    let expected = [
        ("switch.name", "prod"),
        ("switch.mac_table_size", "65536"),
        ("switch.max_bindings", "262144"),
        ("uplink_policy.uplinks", "[uplink1, uplink2]"),
        ("uplink_policy.allowed_vlans", "[10, 20, 100-103]"),
        ("uplink_policy.native_vlan", "1"),
        ("uplink_policy.storm_control.broadcast_pps", "20000"),
        ("uplink_policy.storm_control.unknown_unicast_pps", "none"),
        ("uplink_policy.dhcp_trusted", "true"),
        ("port_group.web.vlan", "10"),
        ("port_group.web.security.promiscuous", "reject"),
        ("port_group.web.port_security.max_macs", "1"),
        ("port_group.web.port_security.violation", "shutdown"),
        ("port_group.web.port_security.recovery_secs", "300"),
        ("port_group.web.storm_control.unknown_unicast_pps", "100"),
        ("port_group.web.mac_acl_in", "guests-in"),
        ("port_group.web.mac_acl_out", "none"),
        ("port_group.web.dhcp_snooping.rate_limit_pps", "20"),
        ("port_group.web.dhcp_snooping.option82", "insert"),
        ("port_group.web.arp_inspection.validate", "[src-mac, ip]"),
        ("port_group.web.arp_inspection.rate_limit_pps", "15"),
        ("port_group.web.arp_inspection.acl", "web-arp"),
        ("port_group.web.ip_source_guard.check", "ip-mac"),
        ("port_group.web.teaming.policy", "originating-port"),
        ("port_group.web.teaming.active", "[uplink1, uplink2]"),
        ("port_group.db.security.forged_transmits", "reject"),
        ("port_group.db.port_security", "off"),
        ("port_group.db.dhcp_snooping.mode", "observe"),
        ("port_group.db.ip_source_guard.check", "ip"),
        ("port_group.db.teaming.policy", "explicit-failover"),
        ("port_group.db.teaming.active", "[uplink2]"),
        ("port_group.db.teaming.standby", "[uplink1]"),
        ("port_group.db.teaming.failback", "false"),
        ("port_group.router.vlans", "[10, 20, 100-103]"),
        ("port_group.router.native_vlan", "1"),
        ("port_group.router.security.mac_changes", "accept"),
        ("port_group.router.dhcp_snooping", "off"),
        ("port_group.router.arp_inspection", "off"),
        ("port_group.router.ip_source_guard", "off"),
        ("port_group.router.storm_control", "off"),
        ("port_group.nested.port_security.aging", "inactivity"),
        ("port_group.nested.port_security.aging_secs", "300"),
        (
            "mac_acl.guests-in.rule[0]",
            "{ action = deny, dst = 01:80:c2:00:00:00/44 }",
        ),
        (
            "mac_acl.guests-in.rule[1]",
            "{ action = permit, ethertype = ipv4 }",
        ),
        ("mac_acl.guests-in.rule[4]", "{ action = deny }"),
        ("arp_acl.web-arp.static", "false"),
        (
            "arp_acl.web-arp.rule[0]",
            "{ action = permit, ip = 198.18.10.2, mac = 52:54:00:12:34:59 }",
        ),
        (
            "arp_acl.web-arp.rule[1]",
            "{ action = deny, ip = 198.18.10.0/28 }",
        ),
        ("host.uplinks.uplink1", "eth0"),
        (
            "host.static_binding.vm1",
            "[{ mac = 52:54:00:12:34:56, ip = 198.18.10.20, vlan = 10 }]",
        ),
        // Ports: the group's settings with the port's overrides.
        ("port.vm1.port_group", "web"),
        ("port.vm1.vlan", "10"),
        ("port.vm1.mac", "52:54:00:12:34:56"),
        ("port.vm1.security.promiscuous", "reject"),
        ("port.vm1.port_security.max_macs", "1"),
        ("port.vm1.dhcp_snooping.trusted", "false"),
        ("port.vm1.arp_inspection.mode", "enforce"),
        ("port.vm1.ip_source_guard.check", "ip-mac"),
        ("port.vm1.mac_acl_in", "guests-in"),
        ("port.vm1.teaming.policy", "originating-port"),
        ("port.dhcp1.dhcp_snooping.trusted", "true"),
        ("port.dhcp1.dhcp_snooping.rate_limit_pps", "20"),
        ("port.lb1.mac", "none"),
        ("port.lb1.vlans", "[10, 20, 100-103]"),
        ("port.lb1.security.mac_changes", "accept"),
        ("port.lb1.security.forged_transmits", "accept"),
        ("port.kvm1.port_security.max_macs", "16"),
        ("port.kvm1.port_security.violation", "restrict"),
        ("port.kvm1.storm_control.broadcast_pps", "500"),
        ("port.kvm1.secure_macs", "[52:54:00:aa:00:01]"),
        ("port.vm2.teaming.policy", "explicit-failover"),
    ];
    for (k, v) in expected {
        assert_eq!(flat.get(k).map(String::as_str), Some(v), "key {k}");
    }
    // A disabled feature is one key, not one per setting.
    assert!(
        !flat
            .keys()
            .any(|k| k.starts_with("port_group.db.port_security."))
    );
    // Every port has the same set of setting names as its group.
    let group_fields: Vec<&str> = flat
        .keys()
        .filter_map(|k| k.strip_prefix("port_group.web."))
        .collect();
    let port_fields: Vec<&str> = flat
        .keys()
        .filter_map(|k| k.strip_prefix("port.vm1."))
        .filter(|k| !["port_group", "interface", "mac", "tap", "secure_macs"].contains(k))
        .collect();
    assert_eq!(group_fields, port_fields);
}

const MINIMAL: &str = r#"
[switch]
name = "s"

[uplink_policy]
uplinks = ["u1"]
allowed_vlans = [10, 11, 12]

[[port_group]]
name = "g"
vlan = 10
port_security = {}
dhcp_snooping = {}
arp_inspection = {}
ip_source_guard = "ip-mac"

[[port_group]]
name = "h"
vlans = [12, 11]
port_security = { enabled = false, max_macs = 4 }

[host.uplinks]
u1 = "eth0"

[[host.port]]
name = "p"
interface = "tap-p"
port_group = "g"
"#;

const MINIMAL_EXPLICIT: &str = r#"
[switch]
name = "s"
mac_table_size = 65536
mac_aging_secs = 300
max_bindings = 1048576

[uplink_policy]
uplinks = ["u1"]
allowed_vlans = ["10-12"]
dhcp_trusted = true
arp_trusted = true

[[port_group]]
name = "g"
vlan = 10
security = { promiscuous = "reject", mac_changes = "reject", forged_transmits = "reject" }
port_security = { enabled = true, max_macs = 1, violation = "shutdown", sticky = false, aging = "none" }
dhcp_snooping = { enabled = true, trusted = false, option82 = "keep", drop_untrusted_option82 = true, mode = "enforce" }
arp_inspection = { enabled = true, trusted = false, validate = [], rate_limit_pps = 15, mode = "enforce" }
ip_source_guard = { check = "ip-mac", mode = "enforce" }
teaming = { policy = "originating-port", failback = true }
mac_acl_in = "none"

[[port_group]]
name = "h"
vlans = ["11-12"]
security = {}
storm_control = { enabled = false, broadcast_pps = 10 }
teaming = {}

[host.uplinks]
u1 = "eth0"

[[host.port]]
name = "p"
interface = "tap-p"
port_group = "g"
security = { promiscuous = "reject" }
tap = false
dhcp_snooping = { trusted = false }
"#;

#[test]
fn defaults_written_or_omitted_flatten_the_same() {
    let a = load(MINIMAL);
    let b = load(MINIMAL_EXPLICIT);
    assert_ne!(a.profile, b.profile, "the two texts differ in the model");
    assert_eq!(flatten_profile(&a.profile), flatten_profile(&b.profile));
    assert_eq!(
        flatten_host(&a.profile, &a.host),
        flatten_host(&b.profile, &b.host)
    );
    assert_eq!(
        render(&diff(&flatten_config(&a), &flatten_config(&b))),
        "no changes\n"
    );
}

const TWO_GROUPS_AB: &str = r#"
[switch]
name = "s"
[[port_group]]
name = "a"
vlan = 10
[[port_group]]
name = "b"
vlan = 20
security = { promiscuous = "accept" }
[[mac_acl]]
name = "m1"
rules = [{ action = "permit", ethertype = "arp" }, { action = "deny", src = "52:54:00:00:00:00/24" }]
[[mac_acl]]
name = "m2"
rules = []
"#;

const TWO_GROUPS_BA: &str = r#"
[switch]
name = "s"
[[mac_acl]]
name = "m2"
rules = []
[[port_group]]
name = "b"
vlan = 20
security = { promiscuous = "accept" }
[[port_group]]
name = "a"
vlan = 10
[[mac_acl]]
name = "m1"
rules = [{ action = "permit", ethertype = 0x0806 }, { action = "deny", src = "52:54:00:ab:cd:ef/ff:ff:ff:00:00:00" }]
"#;

#[test]
fn reordering_groups_and_acls_is_not_a_change() {
    let a = flatten_profile(&load(TWO_GROUPS_AB).profile);
    let b = flatten_profile(&load(TWO_GROUPS_BA).profile);
    assert_eq!(diff(&a, &b), vec![]);
    assert_eq!(a.get("mac_acl.m2.rules").map(String::as_str), Some("[]"));
}

#[test]
fn reordering_acl_rules_is_a_change() {
    let a = flatten_profile(&load(TWO_GROUPS_AB).profile);
    let swapped = edit(
        TWO_GROUPS_AB,
        r#"rules = [{ action = "permit", ethertype = "arp" }, { action = "deny", src = "52:54:00:00:00:00/24" }]"#,
        r#"rules = [{ action = "deny", src = "52:54:00:00:00:00/24" }, { action = "permit", ethertype = "arp" }]"#,
    );
    let b = flatten_profile(&load(&swapped).profile);
    assert_eq!(
        render(&diff(&a, &b)),
        "~ mac_acl.m1.rule[0]: { action = permit, ethertype = arp } → { action = deny, src = 52:54:00:00:00:00/24 }\n\
         ~ mac_acl.m1.rule[1]: { action = deny, src = 52:54:00:00:00:00/24 } → { action = permit, ethertype = arp }\n"
    );
}

// ---- diff and render --------------------------------------------------------------

#[test]
fn diff_of_a_changed_policy_an_added_group_and_a_removed_rule() {
    let before = load(TWO_GROUPS_AB);
    let after = edit(
        TWO_GROUPS_AB,
        "security = { promiscuous = \"accept\" }",
        "security = { promiscuous = \"reject\" }",
    );
    let after = edit(
        &after,
        r#"rules = [{ action = "permit", ethertype = "arp" }, { action = "deny", src = "52:54:00:00:00:00/24" }]"#,
        r#"rules = [{ action = "deny", src = "52:54:00:00:00:00/24" }]"#,
    );
    let after = format!("{after}[[port_group]]\nname = \"c\"\nvlan = 30\n");
    let after = load(&after);
    let changes = diff(
        &flatten_profile(&before.profile),
        &flatten_profile(&after.profile),
    );

    let ch = |key: &str, b: Option<&str>, a: Option<&str>| Change {
        key: key.into(),
        before: b.map(Into::into),
        after: a.map(Into::into),
    };
    let added = |key: &str, a: &str| ch(key, None, Some(a));
    assert_eq!(
        changes,
        vec![
            ch(
                "mac_acl.m1.rule[0]",
                Some("{ action = permit, ethertype = arp }"),
                Some("{ action = deny, src = 52:54:00:00:00:00/24 }")
            ),
            ch(
                "mac_acl.m1.rule[1]",
                Some("{ action = deny, src = 52:54:00:00:00:00/24 }"),
                None
            ),
            ch(
                "port_group.b.security.promiscuous",
                Some("accept"),
                Some("reject")
            ),
            added("port_group.c.arp_inspection", "off"),
            added("port_group.c.dhcp_snooping", "off"),
            added("port_group.c.dhcpv6_guard", "off"),
            added("port_group.c.ip_source_guard", "off"),
            added("port_group.c.ipv6_source_guard", "off"),
            added("port_group.c.mac_acl_in", "none"),
            added("port_group.c.mac_acl_out", "none"),
            added("port_group.c.nd_inspection", "off"),
            added("port_group.c.port_security", "off"),
            added("port_group.c.ra_guard", "off"),
            added("port_group.c.security.forged_transmits", "reject"),
            added("port_group.c.security.mac_changes", "reject"),
            added("port_group.c.security.promiscuous", "reject"),
            added("port_group.c.storm_control", "off"),
            added("port_group.c.teaming.active", "[]"),
            added("port_group.c.teaming.failback", "true"),
            added("port_group.c.teaming.policy", "originating-port"),
            added("port_group.c.teaming.standby", "[]"),
            added("port_group.c.vlan", "30"),
        ]
    );
    assert_eq!(
        render(&changes),
        "~ mac_acl.m1.rule[0]: { action = permit, ethertype = arp } → { action = deny, src = 52:54:00:00:00:00/24 }
- mac_acl.m1.rule[1] = { action = deny, src = 52:54:00:00:00:00/24 }
~ port_group.b.security.promiscuous: accept → reject
+ port_group.c.arp_inspection = off
+ port_group.c.dhcp_snooping = off
+ port_group.c.dhcpv6_guard = off
+ port_group.c.ip_source_guard = off
+ port_group.c.ipv6_source_guard = off
+ port_group.c.mac_acl_in = none
+ port_group.c.mac_acl_out = none
+ port_group.c.nd_inspection = off
+ port_group.c.port_security = off
+ port_group.c.ra_guard = off
+ port_group.c.security.forged_transmits = reject
+ port_group.c.security.mac_changes = reject
+ port_group.c.security.promiscuous = reject
+ port_group.c.storm_control = off
+ port_group.c.teaming.active = []
+ port_group.c.teaming.failback = true
+ port_group.c.teaming.policy = originating-port
+ port_group.c.teaming.standby = []
+ port_group.c.vlan = 30
"
    );
    // And back: every change reversed.
    let back = diff(
        &flatten_profile(&after.profile),
        &flatten_profile(&before.profile),
    );
    assert_eq!(back.len(), changes.len());
    assert!(
        back.iter()
            .zip(&changes)
            .all(|(b, c)| b.before == c.after && b.after == c.before)
    );
}

// ---- golden profile ----------------------------------------------------------------

#[test]
fn an_identical_profile_is_compliant() {
    let c = example();
    let report = check_profile(&c.profile, &c.profile, Some(&c.host));
    assert!(report.compliant);
    assert_eq!(report.findings, vec![]);
    assert_eq!(
        report.render(),
        "compliant with golden profile: no findings\n"
    );
}

#[test]
fn a_changed_group_policy_is_one_finding_listing_its_ports() {
    let golden = example();
    let running = load(&edit(
        example_profile(),
        r#"security = { promiscuous = "reject", mac_changes = "reject", forged_transmits = "reject" }"#,
        r#"security = { promiscuous = "accept", mac_changes = "reject", forged_transmits = "reject" }"#,
    ));
    let report = check_profile(&golden.profile, &running.profile, Some(&running.host));
    assert!(!report.compliant);
    assert_eq!(report.findings.len(), 1, "{}", report.render());
    let f = &report.findings[0];
    assert_eq!(f.key, "port_group.web.security.promiscuous");
    assert_eq!(f.kind, FindingKind::Changed);
    assert_eq!(f.expected.as_deref(), Some("reject"));
    assert_eq!(f.actual.as_deref(), Some("accept"));
    assert_eq!(f.ports, ["vm1", "dhcp1"]);
    assert_eq!(f.rule, None);
    assert_eq!(
        report.render(),
        "not compliant with golden profile: 1 finding

port group web
  changed port_group.web.security.promiscuous: expected reject, found accept
          ports: vm1, dhcp1
          fix: set port_group.web.security.promiscuous = reject, as in the golden profile
"
    );
    // Without the host binding, the same finding, without ports.
    let report = check_profile(&golden.profile, &running.profile, None);
    assert_eq!(keys(&report), ["port_group.web.security.promiscuous"]);
    assert!(report.findings[0].ports.is_empty());
}

#[test]
fn a_port_that_overrides_the_setting_is_not_listed() {
    let golden = example();
    // forged_transmits of `router`: lb1 states its own, so the group's does not reach it.
    let running = load(&edit(
        example_profile(),
        r#"security = { mac_changes = "accept" }   # the rest stays "reject""#,
        r#"security = { mac_changes = "accept", forged_transmits = "accept" }"#,
    ));
    let report = check_profile(&golden.profile, &running.profile, Some(&running.host));
    assert_eq!(
        keys(&report),
        ["port_group.router.security.forged_transmits"]
    );
    assert!(report.findings[0].ports.is_empty());
}

#[test]
fn a_feature_turned_off_is_one_finding_on_the_feature() {
    let golden = example();
    let running = load(&edit(
        example_profile(),
        "port_security = { max_macs = 1, violation = \"shutdown\", recovery_secs = 300 }   # the guest's own MAC only\n",
        "",
    ));
    let report = check_profile(&golden.profile, &running.profile, Some(&running.host));
    assert_eq!(keys(&report), ["port_group.web.port_security"]);
    let f = &report.findings[0];
    assert_eq!(f.kind, FindingKind::Changed);
    assert_eq!(
        f.expected.as_deref(),
        Some(
            "{ aging = none, max_macs = 1, recovery_secs = 300, sticky = false, violation = shutdown }"
        )
    );
    assert_eq!(f.actual.as_deref(), Some("off"));
    assert_eq!(f.ports, ["vm1", "dhcp1"]);
    assert!(
        f.fix
            .starts_with("turn port_group.web.port_security on with {")
    );
}

#[test]
fn missing_and_extra_groups_are_one_finding_each() {
    let golden = example();
    // `nested` gone (with its port), `test` added.
    let text = edit(
        example_profile(),
        "[[port_group]]\nname = \"nested\"",
        "[[port_group]]\nname = \"test\"",
    );
    let text = edit(&text, "port_group = \"nested\"", "port_group = \"test\"");
    let running = load(&text);
    let report = check_profile(&golden.profile, &running.profile, None);
    assert_eq!(
        keys(&report),
        ["port_group.nested", "port_group.test"],
        "{}",
        report.render()
    );
    assert_eq!(report.findings[0].kind, FindingKind::Missing);
    assert_eq!(report.findings[0].expected.as_deref(), Some("defined"));
    assert_eq!(report.findings[1].kind, FindingKind::Extra);
    assert_eq!(report.findings[1].actual.as_deref(), Some("defined"));
    assert!(report.findings[0].fix.contains("\"nested\""));
    let rendered = report.render();
    assert!(
        rendered.contains("port group nested\n  missing port_group.nested"),
        "{rendered}"
    );
    assert!(
        rendered.contains("port group test\n  extra   port_group.test"),
        "{rendered}"
    );
}

#[test]
fn a_port_moved_to_a_group_outside_the_golden_profile_is_a_port_finding() {
    let golden = example();
    let text = format!(
        "{}\n[[port_group]]\nname = \"web2\"\nvlan = 10\nsecurity = {{ promiscuous = \"accept\" }}\n",
        example_profile()
            .split("# ---- the host binding")
            .next()
            .unwrap()
    );
    // The first port of group web in the host part is vm1.
    let host = edit(
        &example_profile()[example_profile().find("[host.uplinks]").unwrap()..],
        "port_group = \"web\"\n",
        "port_group = \"web2\"\n",
    );
    let running = load(&format!("{text}\n{host}"));
    let report = check_profile(&golden.profile, &running.profile, Some(&running.host));
    assert_eq!(
        keys(&report),
        ["port.vm1.port_group", "port_group.web2"],
        "{}",
        report.render()
    );
    let port = &report.findings[0];
    assert_eq!(port.kind, FindingKind::Extra);
    assert_eq!(port.actual.as_deref(), Some("web2"));
    assert!(
        port.fix.contains("not in the golden profile"),
        "{}",
        port.fix
    );
    assert!(report.render().contains("port vm1\n"));

    // A port moved between two golden groups: host data, not drift.
    let moved = load(&edit(
        example_profile(),
        "interface = \"tap-dhcp1\"\nport_group = \"web\"",
        "interface = \"tap-dhcp1\"\nport_group = \"db\"",
    ));
    let report = check_profile(&golden.profile, &moved.profile, Some(&moved.host));
    assert!(report.compliant, "{}", report.render());
}

// ---- templates ----------------------------------------------------------------------

#[test]
fn both_builtin_templates_parse() {
    assert_eq!(Template::builtin_names(), ["baseline", "strict"]);
    let baseline = Template::builtin("baseline").expect("baseline parses");
    let strict = Template::builtin("strict").expect("strict parses");
    assert_eq!(baseline.name, "baseline");
    assert_eq!(baseline.rules.len(), 3);
    for r in &baseline.rules {
        assert_eq!(r.keys.len(), 2, "{}: groups and ports", r.id);
        assert_eq!(r.expect, Expect::Equals("reject".into()));
        assert!(r.why.contains("vSphere"), "{}: cites its source", r.id);
    }
    // strict = baseline's rules first, then its own.
    assert_eq!(strict.rules[..3], baseline.rules[..]);
    assert!(strict.rules.len() > 3);
    assert!(
        strict.rules[3..]
            .iter()
            .all(|r| r.id.starts_with("strict-"))
    );
    assert!(Template::builtin("nope").is_none());
    assert_eq!(Template::named_or_file("strict").unwrap(), strict);
}

#[test]
fn the_docs_list_every_builtin_rule() {
    let docs = include_str!("../../../docs/compliance.md");
    for name in Template::builtin_names() {
        for r in Template::builtin(name).unwrap().rules {
            assert!(
                docs.contains(&format!("| `{}` |", r.id)),
                "docs/compliance.md does not list rule {} of template {name}",
                r.id
            );
        }
    }
}

#[test]
fn the_docs_template_example_and_its_errors_are_real() {
    let docs = include_str!("../../../docs/compliance.md");
    let start = docs.find("```toml\n# site.toml\n").unwrap() + "```toml\n".len();
    let example = &docs[start..start + docs[start..].find("```").unwrap()];
    let dir = temp_dir("docs");
    let path = dir.join("site.toml");
    std::fs::write(&path, example).unwrap();
    let t = Template::load(&path).unwrap();
    assert_eq!(t.rules.last().unwrap().id, "site-storm-control");

    let broken = edit(example, "why = ", "because = ");
    let broken = edit(&broken, "[\"baseline\"]", "[\"baseline\", \"nist\"]");
    std::fs::write(&path, broken).unwrap();
    let e = Template::load(&path).unwrap_err();
    let origin = path.display().to_string();
    let documented: Vec<&str> = docs
        .lines()
        .filter(|l| l.starts_with("site.toml:"))
        .collect();
    assert_eq!(documented.len(), 2);
    for line in documented {
        let line = line.replacen("site.toml", &origin, 1);
        assert!(e.contains(&line), "{line:?} not in:\n{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn baseline_flags_the_examples_deliberate_exceptions() {
    let t = Template::builtin("baseline").unwrap();
    let report = check_template(&t, &flatten_config(&example()));
    assert_eq!(
        keys(&report),
        [
            "port.kvm1.security.forged_transmits",
            "port.lb1.security.forged_transmits",
            "port.lb1.security.mac_changes",
            "port_group.nested.security.forged_transmits",
            "port_group.router.security.mac_changes",
        ]
    );
}

#[test]
fn baseline_on_the_hardened_example_is_compliant() {
    let t = Template::builtin("baseline").unwrap();
    let report = check_template(&t, &flatten_config(&load(&hardened_example_text())));
    assert!(report.compliant, "{}", report.render());
    assert_eq!(report.against, "template baseline");
    assert_eq!(
        report.render(),
        "compliant with template baseline: no findings\n"
    );
}

#[test]
fn one_group_accepting_forged_transmits_is_found_on_the_group_and_its_ports() {
    let text = edit(
        &hardened_example_text(),
        r#"mac_changes = "reject", forged_transmits = "reject" }"#,
        r#"mac_changes = "reject", forged_transmits = "accept" }"#,
    );
    let t = Template::builtin("baseline").unwrap();
    let report = check_template(&t, &flatten_config(&load(&text)));
    assert_eq!(
        keys(&report),
        [
            "port.dhcp1.security.forged_transmits",
            "port.vm1.security.forged_transmits",
            "port_group.web.security.forged_transmits",
        ]
    );
    for f in &report.findings {
        assert_eq!(f.kind, FindingKind::Changed);
        assert_eq!(f.expected.as_deref(), Some("reject"));
        assert_eq!(f.actual.as_deref(), Some("accept"));
        assert_eq!(f.rule.as_deref(), Some("baseline-forged-transmits-reject"));
    }
    assert!(
        report.findings[2]
            .fix
            .starts_with("set security.forged_transmits = \"reject\" on web (it is accept)"),
        "{}",
        report.findings[2].fix
    );
    assert!(report.findings[1].fix.contains(" on vm1 "));
    let rendered = report.render();
    assert!(rendered.starts_with("not compliant with template baseline: 3 findings\n"));
    assert!(rendered.contains("\nport group web\n  changed port_group.web.security.forged_transmits: expected reject, found accept [baseline-forged-transmits-reject]\n"), "{rendered}");
    assert!(rendered.contains("\nport vm1\n"));
}

#[test]
fn strict_without_management_facts_finds_them_missing() {
    let t = Template::builtin("strict").unwrap();
    let mut flat = flatten_config(&load(&hardened_example_text()));
    let report = check_template(&t, &flat);
    let missing: Vec<(&str, Option<&str>)> = report
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::Missing)
        .map(|f| (f.key.as_str(), f.rule.as_deref()))
        .collect();
    assert_eq!(
        missing,
        [
            (
                "management.audit_syslog",
                Some("strict-audit-forwarding-known")
            ),
            ("management.tls", Some("strict-management-tls-known")),
        ]
    );
    // The example's groups without first-hop security are found too.
    let k = keys(&report);
    for key in [
        "port_group.router.dhcp_snooping",
        "port_group.router.port_security",
        "port_group.db.port_security",
        "port_group.db.dhcp_snooping.mode",
        "port.vm2.ip_source_guard.mode",
        "port.lb1.arp_inspection",
    ] {
        assert!(k.contains(&key), "{key} not in {k:?}");
    }
    assert!(!k.iter().any(|k| k.starts_with("port_group.web.")), "{k:?}");

    // Facts given: on → no management findings; off → a Changed finding each.
    flat.insert("management.tls".into(), "on".into());
    flat.insert("management.audit_syslog".into(), "off".into());
    let report = check_template(&t, &flat);
    let mgmt: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.key.starts_with("management."))
        .collect();
    assert_eq!(mgmt.len(), 1);
    assert_eq!(mgmt[0].key, "management.audit_syslog");
    assert_eq!(mgmt[0].kind, FindingKind::Changed);
    assert_eq!(mgmt[0].rule.as_deref(), Some("strict-audit-forwarding"));
    assert!(mgmt[0].fix.contains("(it is off)"));
}

#[test]
fn strict_on_a_fully_hardened_configuration_is_compliant() {
    let text = r#"
[switch]
name = "s"
[[port_group]]
name = "g"
vlan = 10
port_security = {}
dhcp_snooping = {}
arp_inspection = {}
ip_source_guard = "ip-mac"
ra_guard = {}
nd_inspection = {}
ipv6_source_guard = "ip-mac"
dhcpv6_guard = {}
[[host.port]]
name = "p"
interface = "tap-p"
port_group = "g"
"#;
    let mut flat = flatten_config(&load(text));
    flat.insert("management.tls".into(), "on".into());
    flat.insert("management.audit_syslog".into(), "on".into());
    let report = check_template(&Template::builtin("strict").unwrap(), &flat);
    assert!(report.compliant, "{}", report.render());
}

/// The strict template requires ND inspection and IPv6 Source Guard, enforcing:
/// each missing or observing one is a finding on the group and on its port.
#[test]
fn strict_finds_missing_or_observing_nd_inspection_and_ipv6_source_guard() {
    let text = |nd: &str, sg: &str| {
        format!(
            r#"
[switch]
name = "s"
[[port_group]]
name = "g"
vlan = 10
port_security = {{}}
dhcp_snooping = {{}}
arp_inspection = {{}}
ip_source_guard = "ip-mac"
ra_guard = {{}}
dhcpv6_guard = {{}}
{nd}
{sg}
[[host.port]]
name = "p"
interface = "tap-p"
port_group = "g"
"#
        )
    };
    let rules = |nd: &str, sg: &str| {
        let mut flat = flatten_config(&load(&text(nd, sg)));
        flat.insert("management.tls".into(), "on".into());
        flat.insert("management.audit_syslog".into(), "on".into());
        let report = check_template(&Template::builtin("strict").unwrap(), &flat);
        report
            .findings
            .iter()
            .map(|f| (f.key.clone(), f.rule.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let k = |key: &str, rule: &str| (key.to_owned(), rule.to_owned());
    let on = |key: &str| format!("{key}.ipv6_source_guard");
    let nd = |key: &str| format!("{key}.nd_inspection");
    let mut want = vec![];
    for key in ["port.p", "port_group.g"] {
        want.push(k(&on(key), "strict-ipv6-source-guard-on"));
        want.push(k(&nd(key), "strict-nd-inspection-on"));
    }
    assert_eq!(rules("", ""), want);
    let mut want = vec![];
    for key in ["port.p", "port_group.g"] {
        want.push(k(&(on(key) + ".mode"), "strict-ipv6-source-guard-enforce"));
        want.push(k(&(nd(key) + ".mode"), "strict-nd-inspection-enforce"));
    }
    assert_eq!(
        rules(
            "nd_inspection = { mode = \"observe\" }",
            "ipv6_source_guard = { mode = \"observe\" }"
        ),
        want
    );
    assert!(rules("nd_inspection = {}", "ipv6_source_guard = \"ip\"").is_empty());
}

const USER_TEMPLATE: &str = r#"
name = "site"
description = "baseline plus our storm control"
include = ["baseline"]

[[rule]]
id = "site-storm-control"
keys = ["port_group.*.storm_control"]
expect_not = "off"
why = "site policy 4.2"
fix = "add storm_control to {name}"
"#;

#[test]
fn a_user_template_includes_baseline_and_adds_a_rule() {
    let t = Template::parse(USER_TEMPLATE, "site.toml").unwrap();
    assert_eq!(t.name, "site");
    assert_eq!(t.rules.len(), 4);
    assert_eq!(t.rules[3].id, "site-storm-control");
    assert_eq!(t.rules[3].expect, Expect::NotEquals("off".into()));
    let report = check_template(&t, &flatten_config(&load(&hardened_example_text())));
    assert_eq!(
        keys(&report),
        [
            "port_group.db.storm_control",
            "port_group.nested.storm_control",
            "port_group.router.storm_control",
        ]
    );
    assert_eq!(report.findings[0].fix, "add storm_control to db");
    assert_eq!(report.findings[0].expected.as_deref(), Some("not off"));

    // From a file, including a file beside it, which includes the builtin.
    let dir = temp_dir("include");
    std::fs::write(dir.join("site.toml"), USER_TEMPLATE).unwrap();
    std::fs::write(
        dir.join("top.toml"),
        r#"
name = "top"
description = "site plus a present check"
include = ["site"]
[[rule]]
id = "top-uplinks"
keys = ["uplink_policy.uplinks"]
expect_present = true
why = "we need uplinks"
fix = "add [uplink_policy]"
"#,
    )
    .unwrap();
    let t = Template::load(&dir.join("top.toml")).unwrap();
    let ids: Vec<&str> = t.rules.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "baseline-promiscuous-reject",
            "baseline-mac-changes-reject",
            "baseline-forged-transmits-reject",
            "site-storm-control",
            "top-uplinks",
        ]
    );
    assert_eq!(
        Template::named_or_file(dir.join("top.toml").to_str().unwrap()).unwrap(),
        t
    );
    // expect_present on a key that is absent.
    let no_uplinks = load("[switch]\nname = \"s\"\n");
    let report = check_template(&t, &flatten_config(&no_uplinks));
    assert_eq!(keys(&report), ["uplink_policy.uplinks"]);
    assert_eq!(report.findings[0].kind, FindingKind::Missing);
    let _ = std::fs::remove_dir_all(&dir);
}

fn parse_err(text: &str) -> String {
    match Template::parse(text, "my.toml") {
        Ok(t) => panic!("parsed: {t:?}"),
        Err(e) => e,
    }
}

#[test]
fn malformed_templates_are_refused_with_origin_line_and_key() {
    // Unknown key, at the top and in a rule.
    let e = parse_err("name = \"x\"\ndescription = \"d\"\nrules = []\n");
    assert_eq!(
        e,
        "my.toml:3: rules: unknown key; a template has name, description, include and [[rule]]"
    );
    let e = parse_err(&edit(USER_TEMPLATE, "why = ", "because = "));
    assert!(
        e.contains("my.toml:10: rule[0].because: unknown key"),
        "{e}"
    );
    assert!(e.contains("rule[0].why: missing"), "{e}");

    // Bad expectations.
    let e = parse_err(&edit(
        USER_TEMPLATE,
        "expect_not = \"off\"",
        "expect = [\"off\"]",
    ));
    assert!(
        e.starts_with("my.toml:9: rule[0].expect: expected a value"),
        "{e}"
    );
    let e = parse_err(&edit(
        USER_TEMPLATE,
        "expect_not = \"off\"",
        "expect_not = \"off\"\nexpect = \"on\"",
    ));
    assert!(
        e.contains("my.toml:6: rule[0]: state one expectation, not expect_not and expect"),
        "{e}"
    );
    let e = parse_err(&edit(USER_TEMPLATE, "expect_not = \"off\"\n", ""));
    assert!(e.contains("my.toml:6: rule[0]: missing expectation"), "{e}");
    let e = parse_err(&edit(
        USER_TEMPLATE,
        "expect_not = \"off\"",
        "expect_present = false",
    ));
    assert!(e.contains("my.toml:9: rule[0].expect_present:"), "{e}");

    // Unknown include.
    let e = parse_err(&edit(
        USER_TEMPLATE,
        "[\"baseline\"]",
        "[\"baseline\", \"nist\"]",
    ));
    assert_eq!(
        e,
        "my.toml:4: include[1]: unknown template \"nist\": not a built-in template (baseline, strict)"
    );

    // Bad patterns, placeholders, duplicate ids, syntax.
    let e = parse_err(&edit(
        USER_TEMPLATE,
        "port_group.*.storm_control",
        "port_group.we*.x",
    ));
    assert!(e.contains("my.toml:8: rule[0].keys[0]:"), "{e}");
    let e = parse_err(&edit(USER_TEMPLATE, "{name}", "{group}"));
    assert!(
        e.contains("my.toml:11: rule[0].fix: unknown placeholder {group}"),
        "{e}"
    );
    let e = parse_err(&edit(
        USER_TEMPLATE,
        "site-storm-control",
        "baseline-promiscuous-reject",
    ));
    assert!(
        e.contains("rule[0].id: rule id \"baseline-promiscuous-reject\" is already used by the included template \"baseline\""),
        "{e}"
    );
    let e = parse_err("name = \"x\"\ndescription = \n");
    assert!(e.starts_with("my.toml:2: TOML syntax error"), "{e}");
    let e = parse_err("description = \"d\"\n");
    assert_eq!(e, "my.toml: name: missing: every template has a name");
}

#[test]
fn include_cycles_and_missing_files_are_refused() {
    let dir = temp_dir("cycle");
    let t = |name: &str, inc: &str| {
        format!(
            "name = \"{name}\"\ndescription = \"d\"\ninclude = [\"{inc}\"]\n[[rule]]\nid = \"{name}-r\"\nkeys = [\"x\"]\nexpect_present = true\nwhy = \"w\"\nfix = \"f\"\n"
        )
    };
    std::fs::write(dir.join("a.toml"), t("a", "b")).unwrap();
    std::fs::write(dir.join("b.toml"), t("b", "a")).unwrap();
    let e = Template::load(&dir.join("a.toml")).unwrap_err();
    assert!(e.contains("include cycle"), "{e}");
    assert!(e.contains("a.toml:3: include[0]"), "{e}");
    let e = Template::load(&dir.join("nothing.toml")).unwrap_err();
    assert!(e.contains("cannot read the template"), "{e}");
    std::fs::write(dir.join("c.toml"), t("c", "../a")).unwrap();
    let e = Template::load(&dir.join("c.toml")).unwrap_err();
    assert!(e.contains("unknown template \"../a\""), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

proptest! {
    #[test]
    fn template_parse_never_panics(text in "\\PC{0,400}") {
        let _ = Template::parse(&text, "fuzz.toml");
    }

    #[test]
    fn mutated_templates_never_panic(
        cuts in proptest::collection::vec((0usize..2000, 0usize..40, "[\\[\\]{}=\"\\n*.a-z0-9 ]{0,8}"), 1..6)
    ) {
        let mut text = USER_TEMPLATE.to_owned();
        for (at, len, with) in cuts {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, &with);
        }
        if let Ok(t) = Template::parse(&text, "fuzz.toml") {
            let _ = check_template(&t, &Flat::new());
        }
    }
}

// ---- export -----------------------------------------------------------------------

#[test]
fn the_exported_profile_has_no_host_keeps_comments_and_reloads() {
    let config = example();
    let profile = export_profile(&config);
    let doc: toml_edit::DocumentMut = profile.parse().unwrap();
    assert!(doc.get("host").is_none());
    assert!(!profile.contains("[host.uplinks]"));
    assert!(!profile.contains("[[host.port]]"));
    assert!(!profile.contains("[[host.static_binding]]"));
    assert!(profile.contains("# ---- the profile ----"));
    assert!(profile.contains("# IEEE link-local groups (STP, LACP, 802.1X)"));
    assert!(profile.contains("mac_table_size = 65536          # MAC table capacity"));

    let host = export_host(&config);
    let hdoc: toml_edit::DocumentMut = host.parse().unwrap();
    let top: Vec<&str> = hdoc.as_table().iter().map(|(k, _)| k).collect();
    assert_eq!(top, ["host"]);
    assert!(host.contains("# the TAP or veth the guest's NIC is"));
    assert!(!host.contains("[switch]"));

    let again = parse_str(&profile, "profile.toml", Some((&host, "host.toml"))).unwrap();
    assert_eq!(again.profile, config.profile);
    assert_eq!(again.host, config.host);
    // Exporting the split configuration gives the same two files.
    assert_eq!(export_profile(&again), profile);
    assert_eq!(export_host(&again), host);
}

// ---- check --profile against a running host --------------------------------------

/// The running configuration as `GET /v1/config` gives it: the profile without its
/// host binding, and the host binding alone.
fn running_parts(c: &Config) -> (String, String) {
    (export_profile(c), export_host(c))
}

#[test]
fn a_golden_profile_with_uplinks_teaming_and_every_feature_checks_against_the_running_host() {
    // The example has two uplinks, VLAN lists, teaming, port security, DHCP
    // snooping, ARP inspection, IP Source Guard, MAC ACLs and per-port overrides;
    // its golden export has no [host], so its uplinks have no NIC of their own.
    let running = example();
    let (profile, host) = running_parts(&running);
    let table = profile.parse::<toml::Table>().unwrap();
    assert!(!table.contains_key("host") && profile.contains("uplinks = ["));
    assert!(
        parse_str(&profile, "golden.toml", None).is_err(),
        "alone, a golden profile with uplinks does not load: the bug this fixes"
    );
    let report = check_golden(
        &profile,
        "golden.toml",
        (&profile, "running.toml"),
        (&host, "host.toml"),
    )
    .unwrap();
    assert!(report.compliant, "{}", report.render());
    assert!(report.findings.is_empty());

    // The same host drifted by hand: the finding names the key and its ports.
    let drifted = load(&edit(
        example_profile(),
        "port_security = { max_macs = 1,",
        "port_security = { max_macs = 7,",
    ));
    let (drifted_profile, drifted_host) = running_parts(&drifted);
    let report = check_golden(
        &profile,
        "golden.toml",
        (&drifted_profile, "running.toml"),
        (&drifted_host, "host.toml"),
    )
    .unwrap();
    assert!(!report.compliant);
    assert!(
        keys(&report)
            .iter()
            .any(|k| k.ends_with("port_security.max_macs")),
        "{}",
        report.render()
    );

    // A golden file that carries its own [host] (a whole configuration) is used as
    // written, not given the running host a second time.
    let report = check_golden(
        example_profile(),
        "whole.toml",
        (&profile, "running.toml"),
        (&host, "host.toml"),
    )
    .unwrap();
    assert!(report.compliant, "{}", report.render());

    // A golden profile that does not load is an error (exit 2), located.
    let err = check_golden(
        &edit(&profile, "vlan = 20", "vlan = 5000"),
        "golden.toml",
        (&profile, "running.toml"),
        (&host, "host.toml"),
    )
    .unwrap_err();
    assert!(err.contains("golden.toml"), "{err}");
}

#[test]
fn an_overlay_on_one_side_only_is_drift_not_an_error() {
    // The endpoint is host data: a golden profile with [overlay] checks against a
    // running host without one, and the other way round, as drift on `overlay`.
    let plain = example();
    let (plain_profile, plain_host) = running_parts(&plain);
    let overlay = "\n[overlay]\nvni = { 10 = 10010, 20 = 10020 }\n";
    let golden = format!("{plain_profile}{overlay}");
    let report = check_golden(
        &golden,
        "golden.toml",
        (&plain_profile, "running.toml"),
        (&plain_host, "host.toml"),
    )
    .unwrap();
    assert_eq!(keys(&report), ["overlay"], "{}", report.render());

    // A running host with an overlay (peers in a VLAN the golden map lacks).
    let running_host = format!(
        "{plain_host}\n[host.overlay]\nlocal_ip = \"198.18.100.1\"\npeers = [ {{ address = \"198.18.100.2\", macs = [ {{ vlan = 20, mac = \"52:54:00:00:00:02\" }} ] }} ]\n"
    );
    let running_profile = golden.clone();
    parse_str(
        &running_profile,
        "running.toml",
        Some((&running_host, "host.toml")),
    )
    .unwrap();
    let report = check_golden(
        &plain_profile,
        "golden.toml",
        (&running_profile, "running.toml"),
        (&running_host, "host.toml"),
    )
    .unwrap();
    assert_eq!(keys(&report), ["overlay"], "{}", report.render());
    let narrower = golden.replace(", 20 = 10020", "");
    let report = check_golden(
        &narrower,
        "golden.toml",
        (&running_profile, "running.toml"),
        (&running_host, "host.toml"),
    )
    .unwrap();
    assert_eq!(keys(&report), ["overlay.vni.20"], "{}", report.render());
    // Same overlay on both sides: compliant.
    let report = check_golden(
        &golden,
        "golden.toml",
        (&running_profile, "running.toml"),
        (&running_host, "host.toml"),
    )
    .unwrap();
    assert!(report.compliant, "{}", report.render());
}
