//! RA guard: the `ra_guard` table on groups and ports (defaults, merging port over
//! group, observe mode), the uplinks' trust (`ra_trusted`), the flat keys diff and
//! compliance read, and located errors.

use super::features::{compile, features, web_group};
use super::*;
use portcullis_dataplane::RaGuardSpec;

fn ra(trusted: bool, mode: EnforceMode) -> Option<RaGuardSpec> {
    Some(RaGuardSpec { trusted, mode })
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
fn table_alone_enables_untrusted_enforcing_guard_and_trusted_uplinks() {
    let c = compile(&web_group("ra_guard = {}"));
    assert_eq!(
        features(&c, "vm1").ra_guard,
        ra(false, EnforceMode::Enforce)
    );
    assert_eq!(
        features(&c, "uplink1").ra_guard,
        ra(true, EnforceMode::Enforce)
    );
    // Nothing else is turned on by it.
    assert_eq!(
        features(&c, "vm1"),
        &PortFeatures {
            ra_guard: ra(false, EnforceMode::Enforce),
            ..PortFeatures::default()
        }
    );
    // Without the table: off everywhere, the uplinks included.
    let c = compile(BASE);
    assert_eq!(features(&c, "vm1").ra_guard, None);
    assert_eq!(features(&c, "uplink1").ra_guard, None);
}

#[test]
fn port_overrides_group_field_by_field() {
    // A router guest in a guarded group: trusted, the group's mode kept.
    let c = compile(&src(
        "",
        "ra_guard = { mode = \"observe\" }",
        "ra_guard = { trusted = true }\n",
    ));
    assert_eq!(features(&c, "vm1").ra_guard, ra(true, EnforceMode::Observe));
    // A port may opt out, and may enable the guard alone.
    let c = compile(&src("", "ra_guard = {}", "ra_guard.enabled = false\n"));
    assert_eq!(features(&c, "vm1").ra_guard, None);
    let c = compile(&src("", "", "ra_guard = { mode = \"observe\" }\n"));
    assert_eq!(
        features(&c, "vm1").ra_guard,
        ra(false, EnforceMode::Observe)
    );
}

#[test]
fn uplinks_trust_and_mode() {
    let up = |policy: &str, group: &str, port: &str| {
        features(&compile(&src(policy, group, port)), "uplink1").ra_guard
    };
    assert_eq!(
        up("ra_trusted = false", "ra_guard = {}", ""),
        ra(false, EnforceMode::Enforce)
    );
    // All in observe mode: the uplinks observe; one enforcing port suffices.
    assert_eq!(
        up(
            "ra_trusted = false",
            "ra_guard = { mode = \"observe\" }",
            ""
        ),
        ra(false, EnforceMode::Observe)
    );
    assert_eq!(
        up(
            "",
            "ra_guard = { mode = \"observe\" }",
            "ra_guard.mode = \"enforce\"\n"
        ),
        ra(true, EnforceMode::Enforce)
    );
    // `ra_trusted` alone turns nothing on.
    assert_eq!(up("ra_trusted = false", "", ""), None);
    let config = parse_str(BASE, P, None).unwrap();
    assert!(config.profile.uplink_policy.unwrap().ra_trusted);
}

#[test]
fn flat_keys_for_diff_and_compliance() {
    let flat = |s: &str| crate::diff::flatten_profile(&parse_str(s, P, None).unwrap().profile);
    let on = flat(&src("ra_trusted = false", "ra_guard = {}", ""));
    assert_eq!(
        on.get("port_group.web.ra_guard.trusted")
            .map(String::as_str),
        Some("false")
    );
    assert_eq!(
        on.get("port_group.web.ra_guard.mode").map(String::as_str),
        Some("enforce")
    );
    assert_eq!(
        on.get("uplink_policy.ra_trusted").map(String::as_str),
        Some("false")
    );
    let off = flat(BASE);
    assert_eq!(
        off.get("port_group.web.ra_guard").map(String::as_str),
        Some("off")
    );
    assert_eq!(
        off.get("uplink_policy.ra_trusted").map(String::as_str),
        Some("true")
    );
}

#[test]
fn errors_are_located() {
    let s = web_group("ra_guard = { mode = \"watch\" }");
    expect(&s, "ra_guard", "port_group[0].ra_guard.mode", "watch");
    let s = web_group("ra_guard = { router = true }");
    expect(
        &s,
        "ra_guard",
        "port_group[0].ra_guard.router",
        "unknown field",
    );
    let s = web_group("ra_guard = { trusted = \"yes\" }");
    expect(
        &s,
        "ra_guard",
        "port_group[0].ra_guard.trusted",
        "expected a boolean",
    );
    let s = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nra_guard = {}",
    );
    expect(
        &s,
        "ra_guard",
        "uplink_policy.ra_guard",
        "`ra_trusted = true`",
    );
    let s = BASE.replace(
        "allowed_vlans = [10, 20]",
        "allowed_vlans = [10, 20]\nra_trusted = 1",
    );
    expect(
        &s,
        "ra_trusted",
        "uplink_policy.ra_trusted",
        "expected a boolean",
    );
}
