//! A flat, canonical view of a configuration (dotted key → value text) and the
//! diff of two such views.
//!
//! Invariant: the view holds every *effective* setting, defaults included, in one
//! canonical text per value, so two configurations that behave the same flatten to
//! the same map however they were written (a default stated or omitted, VLAN lists
//! in any order or range notation, `ip_source_guard = "ip-mac"` or its table form,
//! port groups and ACLs in any order). Order-significant lists (ACL rules,
//! `uplink_policy.uplinks`, teaming's `active`/`standby`) keep their order.
//!
//! Keys: `switch.…`, `uplink_policy.…`, `port_group.<name>.…`, `mac_acl.<name>.…`,
//! `arp_acl.<name>.…` (from the profile); `host.uplinks.<uplink>`,
//! `host.static_binding.<port>` and `port.<name>.…` (a guest port's effective
//! settings: its group's, with its overrides applied). A name that is not a TOML
//! bare key is quoted (`port_group."a.b".vlan`). A feature that is off is one key
//! with the value `off` (`port_group.web.port_security = off`); a feature that is
//! on is one key per setting (`port_group.web.port_security.max_macs = 1`).
//!
//! Values are written as in TOML, without quotes: `reject`, `10`, `true`, `none`
//! (an optional setting that is not set), `[10, 20, 100-103]`,
//! `{ action = permit, ethertype = ipv4 }`.
//!
//! RA guard: `<prefix>.ra_guard = off`, or `<prefix>.ra_guard.trusted` and
//! `<prefix>.ra_guard.mode`; the uplinks' trust is `uplink_policy.ra_trusted`.
//!
//! ND inspection: `<prefix>.nd_inspection = off`, or `<prefix>.nd_inspection.trusted`,
//! `.max_addresses`, `.rate_limit_pps`, `.mode`, `.binding_lifetime_secs`; the
//! uplinks' trust is `uplink_policy.nd_trusted`. IPv6 Source Guard:
//! `<prefix>.ipv6_source_guard = off`, or `<prefix>.ipv6_source_guard.check` and
//! `.mode`.
//! DHCPv6 guard likewise: `<prefix>.dhcpv6_guard = off`, or its `trusted`,
//! `rate_limit_pps` and `mode`; `uplink_policy.dhcpv6_trusted`.
//!
//! Overlay: `overlay = off`, or `overlay.vni.<vlan>` (one key per mapped VLAN),
//! `overlay.udp_port`, `overlay.arp_proxy`, `overlay.max_remote_macs`; the host's
//! `host.overlay.local_ip`, `host.overlay.interface`, `host.overlay.fragment` and one
//! `host.overlay.peer."<address>"` per static peer (`[VLAN MAC, …]`, sorted).

use crate::config::features::acls::acl_name;
pub use crate::config::features::acls::{arp_acl_rule, mac_acl_rule};
use crate::config::features::vlans::vlan_list;
use crate::config::features::{
    acls, arp_inspection, dhcp_snooping, dhcpv6_guard, ip_source_guard, ipv6_source_guard,
    nd_inspection, overlay, port_security, ra_guard, static_bindings, storm_control,
    switch_identity, teaming, vlans, vswitch_policy,
};
pub use crate::config::flat::{Flat, NONE, OFF};
use crate::config::flat::{list, opt, put};
pub use crate::config::keys::{key_segment, split_key, unquote_segment};
pub use crate::config::management::flatten_management;
use crate::config::{
    AclRef, ArpInspectionOverride, Config, DhcpSnoopingOverride, Dhcpv6GuardOverride, GroupVlan,
    HostBinding, HostPort, IpSourceGuardOverride, NdInspectionOverride, Override, PortGroup,
    PortSecurityOverride, Profile, RaGuardOverride, StormControlOverride, TeamingOverride,
    UplinkPolicy,
};
use portcullis_dataplane::MacAddr;
use std::fmt::Write as _;

/// The profile's settings: `switch.…`, `uplink_policy.…`, `port_group.<name>.…`,
/// `mac_acl.<name>.…`, `arp_acl.<name>.…`, `overlay.…`.
pub fn flatten_profile(p: &Profile) -> Flat {
    let mut f = Flat::new();
    switch_identity::flatten(&mut f, &p.switch);
    match &p.uplink_policy {
        None => put(&mut f, "uplink_policy", OFF),
        Some(up) => uplink_policy(&mut f, up),
    }
    let uplinks = uplinks_of(p);
    for g in &p.port_groups {
        let prefix = format!("port_group.{}", key_segment(&g.name));
        vlans::flatten(&mut f, &prefix, &g.vlan);
        features(&mut f, &prefix, g, None, uplinks);
    }
    for a in &p.mac_acls {
        acls::flatten_mac_acl(&mut f, a);
    }
    for a in &p.arp_acls {
        acls::flatten_arp_acl(&mut f, a);
    }
    overlay::flatten(&mut f, p.overlay.as_ref());
    f
}

/// Effective per-port settings: for each `[[host.port]]`, the group's settings with
/// the port's overrides applied, under `port.<name>.…` (e.g. `port.vm1.port_group`,
/// `port.vm1.vlan`, `port.vm1.security.promiscuous`,
/// `port.vm1.port_security.max_macs`, `port.vm1.dhcp_snooping.mode`,
/// `port.vm1.arp_inspection = off`, `port.vm1.ip_source_guard.check`,
/// `port.vm1.mac_acl_in`, `port.vm1.teaming.policy`), plus `host.uplinks.<uplink>`
/// and `host.static_binding.<port>`. A port whose group `p` does not define gets
/// only its own keys (`port_group`, `interface`, `mac`, `tap`, `secure_macs`).
pub fn flatten_host(p: &Profile, h: &HostBinding) -> Flat {
    let mut f = Flat::new();
    for b in &h.uplinks {
        put(
            &mut f,
            &format!("host.uplinks.{}", key_segment(&b.uplink)),
            &b.interface,
        );
    }
    for port in &h.ports {
        flatten_port(&mut f, p, port);
    }
    if h.bridge_netdev {
        put(&mut f, "host.bridge_netdev", "on");
    }
    overlay::flatten_host(&mut f, h.overlay.as_ref());
    // A binding without `vlan` on an access port is in the port's VLAN.
    let access_vlan = |port: &str| {
        let port = h.ports.iter().find(|x| x.name == port)?;
        let group = p.port_groups.iter().find(|g| g.name == port.port_group)?;
        match group.vlan {
            GroupVlan::Access(v) => Some(v),
            GroupVlan::Trunk { .. } => None,
        }
    };
    static_bindings::flatten(&mut f, &h.static_bindings, access_vlan);
    f
}

/// [`flatten_profile`] and [`flatten_host`] of a loaded configuration, in one map.
pub fn flatten_config(config: &Config) -> Flat {
    let mut f = flatten_profile(&config.profile);
    f.extend(flatten_host(&config.profile, &config.host));
    f
}

/// One difference between two flat views (an API type: `before` is `None` for an
/// added key, `after` for a removed one).
pub use portcullis_api::Change;

/// The keys added, removed or changed from `before` to `after`, sorted by key.
pub fn diff(before: &Flat, after: &Flat) -> Vec<Change> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (b, a) = (before.get(k), after.get(k));
            (b != a).then(|| Change {
                key: k.clone(),
                before: b.cloned(),
                after: a.cloned(),
            })
        })
        .collect()
}

/// `+ key = after`, `- key = before`, `~ key: before → after`, one per line (each
/// ending with a newline); `no changes` when there are none.
pub fn render(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes\n".to_owned();
    }
    let mut out = String::new();
    for c in changes {
        let _ = match (&c.before, &c.after) {
            (None, Some(a)) => writeln!(out, "+ {} = {a}", c.key),
            (Some(b), None) => writeln!(out, "- {} = {b}", c.key),
            (Some(b), Some(a)) => writeln!(out, "~ {}: {b} → {a}", c.key),
            (None, None) => writeln!(out, "~ {}", c.key),
        };
    }
    out
}

/// The guest port's effective settings under `port.<name>.…`.
pub(crate) fn flatten_port(f: &mut Flat, p: &Profile, port: &HostPort) {
    let prefix = format!("port.{}", key_segment(&port.name));
    put(f, &format!("{prefix}.port_group"), &port.port_group);
    put(f, &format!("{prefix}.interface"), &port.interface);
    if let Some(v) = &port.vhost_user {
        put(
            f,
            &format!("{prefix}.vhost_user"),
            format!("{} ({})", v.socket, v.mode.name()),
        );
    }
    put(f, &format!("{prefix}.mac"), opt(port.mac));
    put(f, &format!("{prefix}.tap"), port.tap);
    let mut secure: Vec<String> = port.secure_macs.iter().map(MacAddr::to_string).collect();
    secure.sort();
    secure.dedup();
    put(f, &format!("{prefix}.secure_macs"), list(&secure));
    let Some(g) = p.port_groups.iter().find(|g| g.name == port.port_group) else {
        return;
    };
    vlans::flatten(f, &prefix, &g.vlan);
    features(f, &prefix, g, Some(port), uplinks_of(p));
}

// ---- the parts -------------------------------------------------------------------

fn uplinks_of(p: &Profile) -> &[String] {
    p.uplink_policy
        .as_ref()
        .map_or(&[], |u| u.uplinks.as_slice())
}

fn uplink_policy(f: &mut Flat, up: &UplinkPolicy) {
    put(f, "uplink_policy.uplinks", list(&up.uplinks));
    put(
        f,
        "uplink_policy.allowed_vlans",
        vlan_list(&up.allowed_vlans),
    );
    put(
        f,
        "uplink_policy.native_vlan",
        opt(up.native_vlan.map(|v| v.get())),
    );
    storm_control::flatten(f, "uplink_policy", up.storm_control);
    put(
        f,
        "uplink_policy.mac_acl_in",
        acl_name(up.mac_acl_in.as_ref()),
    );
    put(
        f,
        "uplink_policy.mac_acl_out",
        acl_name(up.mac_acl_out.as_ref()),
    );
    put(f, "uplink_policy.dhcp_trusted", up.dhcp_trusted);
    put(f, "uplink_policy.arp_trusted", up.arp_trusted);
    put(f, "uplink_policy.ra_trusted", up.ra_trusted);
    put(f, "uplink_policy.nd_trusted", up.nd_trusted);
    put(f, "uplink_policy.dhcpv6_trusted", up.dhcpv6_trusted);
}

/// The features of group `g`, with `port`'s overrides applied when given.
fn features(
    f: &mut Flat,
    prefix: &str,
    g: &PortGroup,
    port: Option<&HostPort>,
    uplinks: &[String],
) {
    let k = |field: &str| format!("{prefix}.{field}");

    let sec = vswitch_policy::spec(&g.security, port.map(|p| &p.security));
    vswitch_policy::flatten(f, prefix, sec);

    let ps = PortSecurityOverride::merge(
        g.port_security.as_ref(),
        port.and_then(|p| p.port_security.as_ref()),
    );
    port_security::flatten(f, prefix, ps);

    let sc = StormControlOverride::merge(
        g.storm_control.as_ref(),
        port.and_then(|p| p.storm_control.as_ref()),
    );
    storm_control::flatten(f, prefix, sc);

    let acl_in = AclRef::merge(
        g.mac_acl_in.as_ref(),
        port.and_then(|p| p.mac_acl_in.as_ref()),
    );
    let acl_out = AclRef::merge(
        g.mac_acl_out.as_ref(),
        port.and_then(|p| p.mac_acl_out.as_ref()),
    );
    put(f, &k("mac_acl_in"), acl_in.unwrap_or(NONE));
    put(f, &k("mac_acl_out"), acl_out.unwrap_or(NONE));

    let dhcp = DhcpSnoopingOverride::merge(
        g.dhcp_snooping.as_ref(),
        port.and_then(|p| p.dhcp_snooping.as_ref()),
    );
    dhcp_snooping::flatten(f, prefix, dhcp);

    let arp = ArpInspectionOverride::merge(
        g.arp_inspection.as_ref(),
        port.and_then(|p| p.arp_inspection.as_ref()),
    );
    arp_inspection::flatten(f, prefix, arp);

    let ipsg = IpSourceGuardOverride::merge(
        g.ip_source_guard.as_ref(),
        port.and_then(|p| p.ip_source_guard.as_ref()),
    );
    ip_source_guard::flatten(f, prefix, ipsg);

    let ra = RaGuardOverride::merge(g.ra_guard.as_ref(), port.and_then(|p| p.ra_guard.as_ref()));
    ra_guard::flatten(f, prefix, ra);

    let nd = NdInspectionOverride::merge(
        g.nd_inspection.as_ref(),
        port.and_then(|p| p.nd_inspection.as_ref()),
    );
    nd_inspection::flatten(f, prefix, nd);
    let ipsg6 = IpSourceGuardOverride::merge(
        g.ipv6_source_guard.as_ref(),
        port.and_then(|p| p.ipv6_source_guard.as_ref()),
    );
    ipv6_source_guard::flatten(f, prefix, ipsg6);
    let v6 = Dhcpv6GuardOverride::merge(
        g.dhcpv6_guard.as_ref(),
        port.and_then(|p| p.dhcpv6_guard.as_ref()),
    );
    dhcpv6_guard::flatten(f, prefix, v6);

    let team = TeamingOverride::merge(g.teaming.as_ref(), port.and_then(|p| p.teaming.as_ref()));
    teaming::flatten(f, prefix, team, uplinks);
}

// ---- value texts ---------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(pairs: &[(&str, &str)]) -> Flat {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn diff_lists_added_removed_and_changed_keys_in_key_order() {
        let a = flat(&[("a", "1"), ("b", "2"), ("d", "4")]);
        let b = flat(&[("b", "3"), ("c", "5"), ("d", "4")]);
        let d = diff(&a, &b);
        assert_eq!(
            d,
            vec![
                Change {
                    key: "a".into(),
                    before: Some("1".into()),
                    after: None
                },
                Change {
                    key: "b".into(),
                    before: Some("2".into()),
                    after: Some("3".into())
                },
                Change {
                    key: "c".into(),
                    before: None,
                    after: Some("5".into())
                },
            ]
        );
        assert_eq!(render(&d), "- a = 1\n~ b: 2 → 3\n+ c = 5\n");
        assert!(diff(&a, &a).is_empty());
        assert_eq!(render(&[]), "no changes\n");
    }
}
