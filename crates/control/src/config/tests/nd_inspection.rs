//! ND inspection and IPv6 Source Guard: the `nd_inspection` table on groups and
//! ports (defaults, merging port over group, ranges, observe mode), the uplinks'
//! trust (`nd_trusted`), `ipv6_source_guard`'s words and tables, the flat keys diff
//! and compliance read, and located errors.

use super::features::{compile, features, web_group};
use super::*;
use portcullis_dataplane::{Ipv6SourceGuardSpec, NdInspectionSpec};

fn nd(
    trusted: bool,
    max: u16,
    rate: Option<u32>,
    mode: EnforceMode,
    life: u32,
) -> NdInspectionSpec {
    NdInspectionSpec {
        trusted,
        max_addresses: max,
        rate_limit_pps: rate,
        mode,
        binding_lifetime_secs: life,
    }
}

/// BASE with `policy` in `[uplink_policy]`, `group` in the web group, and `port`
/// appended to vm1.
fn src(policy: &str, group: &str, port: &str) -> String {
    web_group(group).replace(
        "allowed_vlans = [10, 20]",
        &format!("allowed_vlans = [10, 20]\n{policy}"),
    ) + port
}

#[test]
fn table_alone_enables_untrusted_enforcing_inspection_and_trusted_uplinks() {
    use EnforceMode::Enforce;
    let c = compile(&web_group("nd_inspection = {}"));
    assert_eq!(
        features(&c, "vm1").nd_inspection,
        Some(nd(false, 8, Some(30), Enforce, 3600))
    );
    assert_eq!(
        features(&c, "uplink1").nd_inspection,
        Some(nd(true, 64, None, Enforce, 3600))
    );
    // Nothing else is turned on by it.
    assert_eq!(
        features(&c, "vm1"),
        &PortFeatures {
            nd_inspection: Some(nd(false, 8, Some(30), Enforce, 3600)),
            ..PortFeatures::default()
        }
    );
    // Without the table: off everywhere, the uplinks included.
    let c = compile(BASE);
    assert_eq!(features(&c, "vm1").nd_inspection, None);
    assert_eq!(features(&c, "uplink1").nd_inspection, None);
    assert_eq!(features(&c, "vm1").ipv6_source_guard, None);
}

#[test]
fn every_value_and_port_overrides_group_field_by_field() {
    use EnforceMode::{Enforce, Observe};
    let c = compile(&web_group(
        "nd_inspection = { max_addresses = 3, rate_limit_pps = 10, mode = \"observe\", binding_lifetime_secs = 600 }",
    ));
    assert_eq!(
        features(&c, "vm1").nd_inspection,
        Some(nd(false, 3, Some(10), Observe, 600))
    );
    // A router guest in an inspected group: trusted, the rest from the group.
    let c = compile(&src(
        "",
        "nd_inspection = { max_addresses = 3 }",
        "nd_inspection = { trusted = true, rate_limit_pps = \"none\" }\n",
    ));
    assert_eq!(
        features(&c, "vm1").nd_inspection,
        Some(nd(true, 3, None, Enforce, 3600))
    );
    // A port may opt out, and may enable it alone.
    let c = compile(&src(
        "",
        "nd_inspection = {}",
        "nd_inspection.enabled = false\n",
    ));
    assert_eq!(features(&c, "vm1").nd_inspection, None);
    let c = compile(&src("", "", "nd_inspection = { mode = \"observe\" }\n"));
    assert_eq!(
        features(&c, "vm1").nd_inspection,
        Some(nd(false, 8, Some(30), Observe, 3600))
    );
}

#[test]
fn uplinks_trust_and_mode() {
    use EnforceMode::{Enforce, Observe};
    let up = |policy: &str, group: &str, port: &str| {
        features(&compile(&src(policy, group, port)), "uplink1").nd_inspection
    };
    assert_eq!(
        up("nd_trusted = false", "nd_inspection = {}", ""),
        Some(nd(false, 64, None, Enforce, 3600))
    );
    assert_eq!(
        up("", "nd_inspection = { mode = \"observe\" }", ""),
        Some(nd(true, 64, None, Observe, 3600))
    );
    assert_eq!(
        up(
            "",
            "nd_inspection = { mode = \"observe\" }",
            "nd_inspection.mode = \"enforce\"\n"
        ),
        Some(nd(true, 64, None, Enforce, 3600))
    );
    // `nd_trusted` alone turns nothing on.
    assert_eq!(up("nd_trusted = false", "", ""), None);
    let config = parse_str(BASE, P, None).unwrap();
    assert!(config.profile.uplink_policy.unwrap().nd_trusted);
}

#[test]
fn ipv6_source_guard_words_and_tables() {
    use EnforceMode::{Enforce, Observe};
    use SourceGuard::{Ip, IpMac};
    let g = |check, mode| Some(Ipv6SourceGuardSpec { check, mode });
    let guard = |setting: &str| {
        let c = compile(&web_group(&format!("ipv6_source_guard = {setting}")));
        features(&c, "vm1").ipv6_source_guard
    };
    assert_eq!(guard("\"off\""), None);
    assert_eq!(guard("\"ip\""), g(Ip, Enforce));
    assert_eq!(guard("\"ip-mac\""), g(IpMac, Enforce));
    assert_eq!(guard("{}"), g(IpMac, Enforce));
    assert_eq!(
        guard("{ check = \"ip-mac\", mode = \"observe\" }"),
        g(IpMac, Observe)
    );
    assert_eq!(guard("{ enabled = false }"), None);
    // The IPv4 guard is not touched by it, nor it by the IPv4 guard.
    let c = compile(&web_group("ipv6_source_guard = \"ip\""));
    assert_eq!(features(&c, "vm1").ip_source_guard, None);
    let c = compile(&web_group("ip_source_guard = \"ip\""));
    assert_eq!(features(&c, "vm1").ipv6_source_guard, None);
    // A port's word keeps the group's mode; the uplinks never guard.
    let c = compile(&src(
        "",
        "ipv6_source_guard = { mode = \"observe\" }",
        "ipv6_source_guard = \"ip\"\n",
    ));
    assert_eq!(features(&c, "vm1").ipv6_source_guard, g(Ip, Observe));
    assert_eq!(features(&c, "uplink1").ipv6_source_guard, None);
}

#[test]
fn flat_keys_for_diff_and_compliance() {
    let flat = |s: &str| crate::diff::flatten_profile(&parse_str(s, P, None).unwrap().profile);
    let get = |f: &crate::diff::Flat, k: &str| f.get(k).map(String::as_str).map(str::to_owned);
    let on = flat(&src(
        "nd_trusted = false",
        "nd_inspection = { max_addresses = 4 }\nipv6_source_guard = { mode = \"observe\" }",
        "",
    ));
    for (k, v) in [
        ("port_group.web.nd_inspection.trusted", "false"),
        ("port_group.web.nd_inspection.max_addresses", "4"),
        ("port_group.web.nd_inspection.rate_limit_pps", "30"),
        ("port_group.web.nd_inspection.mode", "enforce"),
        ("port_group.web.nd_inspection.binding_lifetime_secs", "3600"),
        ("port_group.web.ipv6_source_guard.check", "ip-mac"),
        ("port_group.web.ipv6_source_guard.mode", "observe"),
        ("uplink_policy.nd_trusted", "false"),
    ] {
        assert_eq!(get(&on, k).as_deref(), Some(v), "{k}");
    }
    let off = flat(BASE);
    assert_eq!(
        get(&off, "port_group.web.nd_inspection").as_deref(),
        Some("off")
    );
    assert_eq!(
        get(&off, "port_group.web.ipv6_source_guard").as_deref(),
        Some("off")
    );
    assert_eq!(
        get(&off, "uplink_policy.nd_trusted").as_deref(),
        Some("true")
    );
}

#[test]
fn errors_are_located() {
    let s = web_group("nd_inspection = { mode = \"watch\" }");
    expect(
        &s,
        "nd_inspection",
        "port_group[0].nd_inspection.mode",
        "watch",
    );
    let s = web_group("nd_inspection = { max_addresses = 0 }");
    expect(
        &s,
        "nd_inspection",
        "port_group[0].nd_inspection.max_addresses",
        "1",
    );
    let s = web_group("nd_inspection = { max_addresses = 65 }");
    expect(
        &s,
        "nd_inspection",
        "port_group[0].nd_inspection.max_addresses",
        "64",
    );
    let s = web_group("nd_inspection = { binding_lifetime_secs = 10 }");
    expect(
        &s,
        "nd_inspection",
        "port_group[0].nd_inspection.binding_lifetime_secs",
        "60",
    );
    let s = web_group("nd_inspection = { rate_limit_pps = 0 }");
    expect(
        &s,
        "nd_inspection",
        "port_group[0].nd_inspection.rate_limit_pps",
        "\"none\"",
    );
    let s = web_group("nd_inspection = { lifetime = 60 }");
    expect(
        &s,
        "nd_inspection",
        "port_group[0].nd_inspection.lifetime",
        "unknown field",
    );
    let s = web_group("ipv6_source_guard = \"mac\"");
    expect(
        &s,
        "ipv6_source_guard",
        "port_group[0].ipv6_source_guard",
        "\"ip-mac\"",
    );
    for table in ["nd_inspection = {}", "ipv6_source_guard = \"ip\""] {
        let s = BASE.replace(
            "allowed_vlans = [10, 20]",
            &format!("allowed_vlans = [10, 20]\n{table}"),
        );
        let key = table.split(' ').next().unwrap();
        expect(&s, key, &format!("uplink_policy.{key}"), "[[port_group]]");
    }
    let s = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nnd_trusted = 1",
    );
    expect(
        &s,
        "nd_trusted",
        "uplink_policy.nd_trusted",
        "expected a boolean",
    );
}
