//! DHCPv6 guard: the `dhcpv6_guard` table on groups and ports (defaults, merging
//! port over group, rate limit, observe mode), the uplinks' trust
//! (`dhcpv6_trusted`), the flat keys diff reads, and located errors.

use super::features::{compile, features, web_group};
use super::*;
use portcullis_dataplane::Dhcpv6GuardSpec;

fn g(trusted: bool, rate: Option<u32>, mode: EnforceMode) -> Option<Dhcpv6GuardSpec> {
    Some(Dhcpv6GuardSpec {
        trusted,
        rate_limit_pps: rate,
        mode,
    })
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
fn table_alone_enables_an_untrusted_enforcing_guard_and_trusted_uplinks() {
    let c = compile(&web_group("dhcpv6_guard = {}"));
    assert_eq!(
        features(&c, "vm1").dhcpv6_guard,
        g(false, None, EnforceMode::Enforce)
    );
    assert_eq!(
        features(&c, "uplink1").dhcpv6_guard,
        g(true, None, EnforceMode::Enforce)
    );
    // Nothing else is turned on by it.
    assert_eq!(
        features(&c, "vm1"),
        &PortFeatures {
            dhcpv6_guard: g(false, None, EnforceMode::Enforce),
            ..PortFeatures::default()
        }
    );
    // Without the table: off everywhere, the uplinks included.
    let c = compile(BASE);
    assert_eq!(features(&c, "vm1").dhcpv6_guard, None);
    assert_eq!(features(&c, "uplink1").dhcpv6_guard, None);
}

#[test]
fn the_contract_table_compiles_as_written() {
    let c = compile(&web_group(
        "dhcpv6_guard = { enabled = true, rate_limit_pps = 20, trusted = false, mode = \"enforce\" }",
    ));
    assert_eq!(
        features(&c, "vm1").dhcpv6_guard,
        g(false, Some(20), EnforceMode::Enforce)
    );
    // The uplinks are never rate-limited.
    assert_eq!(
        features(&c, "uplink1").dhcpv6_guard,
        g(true, None, EnforceMode::Enforce)
    );
}

#[test]
fn port_overrides_group_field_by_field() {
    // A server guest in a guarded group: trusted, the group's rate and mode kept.
    let c = compile(&src(
        "",
        "dhcpv6_guard = { rate_limit_pps = 20, mode = \"observe\" }",
        "dhcpv6_guard = { trusted = true }\n",
    ));
    assert_eq!(
        features(&c, "vm1").dhcpv6_guard,
        g(true, Some(20), EnforceMode::Observe)
    );
    // "none" lifts the group's limit; a port may opt out, or enable it alone.
    let c = compile(&src(
        "",
        "dhcpv6_guard = { rate_limit_pps = 20 }",
        "dhcpv6_guard.rate_limit_pps = \"none\"\n",
    ));
    assert_eq!(
        features(&c, "vm1").dhcpv6_guard,
        g(false, None, EnforceMode::Enforce)
    );
    let c = compile(&src(
        "",
        "dhcpv6_guard = {}",
        "dhcpv6_guard.enabled = false\n",
    ));
    assert_eq!(features(&c, "vm1").dhcpv6_guard, None);
    let c = compile(&src("", "", "dhcpv6_guard = { mode = \"observe\" }\n"));
    assert_eq!(
        features(&c, "vm1").dhcpv6_guard,
        g(false, None, EnforceMode::Observe)
    );
}

#[test]
fn uplinks_trust_and_mode() {
    let up = |policy: &str, group: &str, port: &str| {
        features(&compile(&src(policy, group, port)), "uplink1").dhcpv6_guard
    };
    assert_eq!(
        up("dhcpv6_trusted = false", "dhcpv6_guard = {}", ""),
        g(false, None, EnforceMode::Enforce)
    );
    assert_eq!(
        up(
            "dhcpv6_trusted = false",
            "dhcpv6_guard = { mode = \"observe\" }",
            ""
        ),
        g(false, None, EnforceMode::Observe)
    );
    assert_eq!(
        up(
            "",
            "dhcpv6_guard = { mode = \"observe\" }",
            "dhcpv6_guard.mode = \"enforce\"\n"
        ),
        g(true, None, EnforceMode::Enforce)
    );
    // `dhcpv6_trusted` alone turns nothing on.
    assert_eq!(up("dhcpv6_trusted = false", "", ""), None);
    let config = parse_str(BASE, P, None).unwrap();
    assert!(config.profile.uplink_policy.unwrap().dhcpv6_trusted);
}

#[test]
fn flat_keys_for_diff() {
    let flat = |s: &str| crate::diff::flatten_profile(&parse_str(s, P, None).unwrap().profile);
    let on = flat(&src(
        "dhcpv6_trusted = false",
        "dhcpv6_guard = { rate_limit_pps = 20 }",
        "",
    ));
    let get = |k: &str| on.get(k).map(String::as_str);
    assert_eq!(get("port_group.web.dhcpv6_guard.trusted"), Some("false"));
    assert_eq!(
        get("port_group.web.dhcpv6_guard.rate_limit_pps"),
        Some("20")
    );
    assert_eq!(get("port_group.web.dhcpv6_guard.mode"), Some("enforce"));
    assert_eq!(get("uplink_policy.dhcpv6_trusted"), Some("false"));
    let off = flat(BASE);
    assert_eq!(
        off.get("port_group.web.dhcpv6_guard").map(String::as_str),
        Some("off")
    );
    assert_eq!(
        off.get("uplink_policy.dhcpv6_trusted").map(String::as_str),
        Some("true")
    );
}

#[test]
fn errors_are_located() {
    let s = web_group("dhcpv6_guard = { mode = \"watch\" }");
    expect(
        &s,
        "dhcpv6_guard",
        "port_group[0].dhcpv6_guard.mode",
        "watch",
    );
    let s = web_group("dhcpv6_guard = { server = true }");
    expect(
        &s,
        "dhcpv6_guard",
        "port_group[0].dhcpv6_guard.server",
        "unknown field",
    );
    let s = web_group("dhcpv6_guard = { rate_limit_pps = 0 }");
    expect(
        &s,
        "dhcpv6_guard",
        "port_group[0].dhcpv6_guard.rate_limit_pps",
        "\"none\"",
    );
    let s = web_group("dhcpv6_guard = { rate_limit_pps = \"lots\" }");
    expect(
        &s,
        "dhcpv6_guard",
        "port_group[0].dhcpv6_guard.rate_limit_pps",
        "\"none\"",
    );
    let s = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\ndhcpv6_guard = {}",
    );
    expect(
        &s,
        "dhcpv6_guard",
        "uplink_policy.dhcpv6_guard",
        "`dhcpv6_trusted = true`",
    );
    let s = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\ndhcpv6_trusted = 1",
    );
    expect(
        &s,
        "dhcpv6_trusted",
        "uplink_policy.dhcpv6_trusted",
        "expected a boolean",
    );
}
