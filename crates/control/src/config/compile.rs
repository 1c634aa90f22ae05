//! Stage 2 of validation: names, cross-references and limits over the whole
//! configuration, then the compilation into a [`SwitchSpec`].

use super::CompiledConfig;
use super::error::ConfigError;
use super::model::*;
use super::source::{Sources, join_key};
use super::validate::{Poison, bad_cos, bad_ethertype, out_of_range};
use portcullis_dataplane::{
    MAX_ACL_RULES, MAX_PORTS, MacAclSpec, MacAddr, PortFeatures, PortRole, PortSecuritySpec,
    PortSpec, SecureAging, SecurityPolicy, SpecError, StormControlSpec, SwitchSpec, Vid, VlanMode,
};
use std::collections::{HashMap, HashSet};

pub(crate) fn compile(
    profile: &Profile,
    host: &HostBinding,
    sources: &Sources,
    poison: &Poison,
) -> Result<CompiledConfig, Vec<ConfigError>> {
    let mut c = Checker {
        sources,
        errors: Vec::new(),
    };
    c.check(profile, host, poison);
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let compiled = build(profile, host);
    // A feature value refused in stage 1 compiled to a placeholder: already an
    // error, which the data plane's check would only repeat.
    if poison.any_table() {
        return Ok(compiled);
    }
    if let Err(e) = compiled.spec.check() {
        return Err(vec![spec_error(&e, &compiled, profile, host, sources)]);
    }
    Ok(compiled)
}

struct Checker<'a> {
    sources: &'a Sources,
    errors: Vec<ConfigError>,
}

impl Checker<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(self.sources.error(key, message));
    }

    fn check(&mut self, profile: &Profile, host: &HostBinding, poison: &Poison) {
        let sw = &profile.switch;
        self.name("switch.name", "switch", &sw.name);
        if !MAC_TABLE_SIZE_RANGE.contains(&sw.mac_table_size) {
            self.error(
                "switch.mac_table_size",
                out_of_range(sw.mac_table_size, &MAC_TABLE_SIZE_RANGE),
            );
        }
        if !MAC_AGING_SECS_RANGE.contains(&sw.mac_aging_secs) {
            self.error(
                "switch.mac_aging_secs",
                out_of_range(sw.mac_aging_secs, &MAC_AGING_SECS_RANGE),
            );
        }

        // Port groups.
        let mut groups: HashMap<&str, usize> = HashMap::new();
        for (i, g) in profile.port_groups.iter().enumerate() {
            let key = format!("port_group[{i}]");
            self.name(&format!("{key}.name"), "port group", &g.name);
            if let Some(&first) = groups.get(g.name.as_str()) {
                let msg = format!(
                    "port group {:?} is already defined by {}",
                    g.name,
                    self.sources.describe(&format!("port_group[{first}]"))
                );
                self.error(&format!("{key}.name"), msg);
            } else {
                groups.insert(&g.name, i);
            }
            if let GroupVlan::Trunk { vlans, native_vlan } = &g.vlan
                && vlans.is_empty()
                && !poison.groups.contains(&g.name)
            {
                let msg = match native_vlan {
                    Some(n) => format!(
                        "`vlans` is empty: list the tagged VLANs, or use `vlan = {n}` for an access group"
                    ),
                    None => "`vlans` is empty: list at least one VLAN".to_owned(),
                };
                self.error(&format!("{key}.vlans"), msg);
            }
        }

        // MAC ACLs, then every binding of one and the features of groups and uplinks.
        let acls = self.mac_acls(profile);
        for (i, g) in profile.port_groups.iter().enumerate() {
            let key = format!("port_group[{i}]");
            self.group_features(&key, g, &acls, poison);
        }
        if let Some(up) = &profile.uplink_policy {
            let key = "uplink_policy.storm_control";
            if let Some(sc) = &up.storm_control {
                self.storm_table(key, sc);
                if sc.enabled != Some(false) && !sc.has_limit() && !poison.tables.contains(key) {
                    self.error(key, NO_LIMIT);
                }
            }
            self.acl_ref("uplink_policy.mac_acl_in", up.mac_acl_in.as_ref(), &acls);
            self.acl_ref("uplink_policy.mac_acl_out", up.mac_acl_out.as_ref(), &acls);
        }

        // Logical uplinks and their NICs.
        let listed: &[String] = profile
            .uplink_policy
            .as_ref()
            .map_or(&[], |u| u.uplinks.as_slice());
        let mut uplinks: HashMap<&str, usize> = HashMap::new();
        for (i, u) in listed.iter().enumerate() {
            let key = format!("uplink_policy.uplinks[{i}]");
            self.name(&key, "uplink", u);
            if let Some(&first) = uplinks.get(u.as_str()) {
                self.error(
                    &key,
                    format!(
                        "uplink {u:?} is listed twice (first at uplink_policy.uplinks[{first}])"
                    ),
                );
                continue;
            }
            uplinks.insert(u, i);
            if !host.uplinks.iter().any(|b| &b.uplink == u) {
                let msg = format!(
                    "uplink {u:?} has no NIC on this host: add `{} = \"<nic>\"` under [host.uplinks]",
                    join_key("", u)
                );
                self.error(&key, msg);
            }
        }
        for b in &host.uplinks {
            if !uplinks.contains_key(b.uplink.as_str()) {
                let msg = if profile.uplink_policy.is_none() {
                    format!(
                        "{:?} is not a logical uplink: the profile has no [uplink_policy] (add it to uplink_policy.uplinks)",
                        b.uplink
                    )
                } else {
                    format!(
                        "{:?} is not a logical uplink of this switch (uplink_policy.uplinks = {:?})",
                        b.uplink, listed
                    )
                };
                self.error(&join_key("host.uplinks", &b.uplink), msg);
            }
        }

        // Interfaces: valid Linux names, each used once.
        let mut interfaces: HashMap<&str, String> = HashMap::new();
        let uplink_ifs = host
            .uplinks
            .iter()
            .map(|b| (join_key("host.uplinks", &b.uplink), &b.interface));
        let port_ifs = host
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("host.port[{i}].interface"), &p.interface));
        for (key, ifname) in uplink_ifs.chain(port_ifs) {
            if let Err(m) = check_ifname(ifname) {
                self.error(&key, m);
                continue;
            }
            if let Some(first) = interfaces.get(ifname.as_str()) {
                let msg = format!(
                    "interface {ifname:?} is already used by {}",
                    self.sources.describe(first)
                );
                self.error(&key, msg);
            } else {
                interfaces.insert(ifname, key);
            }
        }

        // Guest ports.
        let mut ports: HashMap<&str, usize> = HashMap::new();
        let mut macs: HashMap<(Vid, MacAddr), MacClaim> = HashMap::new();
        for (i, p) in host.ports.iter().enumerate() {
            let key = format!("host.port[{i}]");
            self.name(&format!("{key}.name"), "port", &p.name);
            if let Some(&first) = ports.get(p.name.as_str()) {
                let msg = format!(
                    "port name {:?} is already used by {}",
                    p.name,
                    self.sources.describe(&format!("host.port[{first}]"))
                );
                self.error(&format!("{key}.name"), msg);
            } else {
                ports.insert(&p.name, i);
            }
            if uplinks.contains_key(p.name.as_str())
                || host.uplinks.iter().any(|b| b.uplink == p.name)
            {
                self.error(
                    &format!("{key}.name"),
                    format!(
                        "port name {:?} is the name of a logical uplink; ports and uplinks share one namespace",
                        p.name
                    ),
                );
            }
            let group = match groups.get(p.port_group.as_str()) {
                Some(&g) => Some((g, &profile.port_groups[g])),
                None => {
                    let known: Vec<&str> = profile
                        .port_groups
                        .iter()
                        .map(|g| g.name.as_str())
                        .collect();
                    let msg = if known.is_empty() {
                        format!(
                            "unknown port group {:?}: the profile defines no [[port_group]]",
                            p.port_group
                        )
                    } else {
                        format!(
                            "unknown port group {:?}; known groups: {}",
                            p.port_group,
                            quoted_list(&known)
                        )
                    };
                    self.error(&format!("{key}.port_group"), msg);
                    None
                }
            };

            // The MACs the port claims: its initial MAC and its static secure MACs.
            let mut claims: Vec<(String, MacAddr, MacKindWord)> = Vec::new();
            if let Some(mac) = p.mac {
                let mkey = format!("{key}.mac");
                if mac.is_group() {
                    self.error(
                        &mkey,
                        format!("{mac} is a multicast address; a guest's initial MAC must be unicast (low bit of the first octet clear)"),
                    );
                } else if mac == MacAddr::ZERO {
                    self.error(&mkey, "00:00:00:00:00:00 is not a usable MAC address");
                } else {
                    claims.push((mkey, mac, MacKindWord::Initial));
                }
            }
            let secure = self.port_features(&key, p, group, &acls, poison);
            let file_index = |j: usize| poison.secure_mac_file_index(i, j);
            for (j, &mac) in p.secure_macs.iter().enumerate() {
                let mkey = format!("{key}.secure_macs[{}]", file_index(j));
                if mac.is_group() {
                    self.error(
                        &mkey,
                        format!("{mac} is a multicast address; a secure MAC must be unicast (low bit of the first octet clear)"),
                    );
                } else if mac == MacAddr::ZERO {
                    self.error(&mkey, "00:00:00:00:00:00 is not a usable MAC address");
                } else if let Some(k) = p.secure_macs[..j].iter().position(|m| *m == mac) {
                    self.error(
                        &mkey,
                        format!(
                            "secure MAC {mac} is listed twice (first as {key}.secure_macs[{}])",
                            file_index(k)
                        ),
                    );
                } else if p.mac != Some(mac) && secure != SecureState::Off {
                    claims.push((mkey, mac, MacKindWord::Secure));
                }
            }
            if let SecureState::On { max_macs, from } = secure {
                let count = claims.len();
                if count > usize::from(max_macs) {
                    let msg = format!(
                        "{count} static secure MACs (the initial `mac` and `secure_macs`, each counted once) but max_macs is {max_macs} ({from}); raise max_macs or list fewer MACs"
                    );
                    self.error(&format!("{key}.secure_macs"), msg);
                }
            }

            let Some((_, g)) = group.filter(|(_, g)| !poison.groups.contains(&g.name)) else {
                continue;
            };
            for (mkey, mac, kind) in claims {
                for vid in group_vlan_mode(&g.vlan).vids() {
                    if let Some(first) = macs.get(&(vid, mac)) {
                        let what = match first.kind {
                            MacKindWord::Initial => "the initial MAC",
                            MacKindWord::Secure => "a secure MAC",
                        };
                        let lead = match kind {
                            MacKindWord::Initial => format!("MAC {mac}"),
                            MacKindWord::Secure => {
                                format!("secure MAC {mac} of port {:?}", p.name)
                            }
                        };
                        let msg = format!(
                            "{lead} is already {what} of port {:?} ({}) in VLAN {vid}",
                            host.ports[first.port].name,
                            self.sources.describe(&first.key)
                        );
                        self.error(&mkey, msg);
                        break;
                    }
                    macs.insert(
                        (vid, mac),
                        MacClaim {
                            port: i,
                            key: mkey.clone(),
                            kind,
                        },
                    );
                }
            }
        }

        let total = listed.len() + host.ports.len();
        if total > MAX_PORTS {
            self.error(
                &format!("host.port[{}]", MAX_PORTS.saturating_sub(listed.len())),
                format!(
                    "{total} ports ({} uplinks + {} guest ports): a switch holds at most {MAX_PORTS}",
                    listed.len(),
                    host.ports.len()
                ),
            );
        }
    }

    /// `[[mac_acl]]`: names, limits and rule values. Returns name → index.
    fn mac_acls<'p>(&mut self, profile: &'p Profile) -> HashMap<&'p str, usize> {
        let mut acls: HashMap<&str, usize> = HashMap::new();
        for (i, acl) in profile.mac_acls.iter().enumerate() {
            let key = format!("mac_acl[{i}]");
            self.name(&format!("{key}.name"), "MAC ACL", &acl.name);
            if acl.name == NO_ACL {
                self.error(
                    &format!("{key}.name"),
                    format!("{NO_ACL:?} is reserved (`mac_acl_in = \"{NO_ACL}\"` unbinds an ACL); choose another name"),
                );
            }
            if let Some(&first) = acls.get(acl.name.as_str()) {
                let msg = format!(
                    "MAC ACL {:?} is already defined by {}",
                    acl.name,
                    self.sources.describe(&format!("mac_acl[{first}]"))
                );
                self.error(&format!("{key}.name"), msg);
            } else {
                acls.insert(&acl.name, i);
            }
            if acl.rules.len() > MAX_ACL_RULES {
                self.error(
                    &format!("{key}.rules"),
                    format!(
                        "{} rules; a MAC ACL holds at most {MAX_ACL_RULES}",
                        acl.rules.len()
                    ),
                );
            }
            for (j, r) in acl.rules.iter().enumerate() {
                if let Some(cos) = r.cos.filter(|c| *c > 7) {
                    self.error(&format!("{key}.rules[{j}].cos"), bad_cos(cos));
                }
                if let Some(t) = r.ethertype.filter(|t| *t < MIN_ETHERTYPE) {
                    self.error(
                        &format!("{key}.rules[{j}].ethertype"),
                        bad_ethertype(format!("{t:#06x}")),
                    );
                }
            }
        }
        acls
    }

    /// `mac_acl_in` / `mac_acl_out` at `key` names a defined ACL (or is "none").
    fn acl_ref(&mut self, key: &str, r: Option<&AclRef>, acls: &HashMap<&str, usize>) {
        let Some(AclRef::Named(name)) = r else {
            return;
        };
        if acls.contains_key(name.as_str()) {
            return;
        }
        let mut known: Vec<(&str, usize)> = acls.iter().map(|(n, i)| (*n, *i)).collect();
        known.sort_by_key(|(_, i)| *i);
        let known: Vec<&str> = known.into_iter().map(|(n, _)| n).collect();
        let msg = if known.is_empty() {
            format!(
                "unknown MAC ACL {name:?}: the profile defines no [[mac_acl]] (or \"{NO_ACL}\" for no ACL)"
            )
        } else {
            format!(
                "unknown MAC ACL {name:?}; known ACLs: {} (or \"{NO_ACL}\" for no ACL)",
                quoted_list(&known)
            )
        };
        self.error(key, msg);
    }

    /// The values of one `port_security` table at `key` (ranges; stage 1 checked
    /// what did not fit the model's types).
    fn port_security_table(&mut self, key: &str, ps: &PortSecurityOverride) {
        if let Some(m) = ps
            .max_macs
            .filter(|m| !MAX_MACS_RANGE.contains(&u64::from(*m)))
        {
            self.error(&format!("{key}.max_macs"), out_of_range(m, &MAX_MACS_RANGE));
        }
        if let Some(a) = ps
            .aging_secs
            .filter(|a| !SECURE_AGING_SECS_RANGE.contains(a))
        {
            self.error(
                &format!("{key}.aging_secs"),
                out_of_range(a, &SECURE_AGING_SECS_RANGE),
            );
        }
        if let Some(r) = ps
            .recovery_secs
            .filter(|r| !RECOVERY_SECS_RANGE.contains(r))
        {
            self.error(
                &format!("{key}.recovery_secs"),
                out_of_range(r, &RECOVERY_SECS_RANGE),
            );
        }
    }

    /// `aging` stated in the table at `key` needs `aging_secs` in the merged table.
    fn aging_needs_secs(
        &mut self,
        key: &str,
        stated: &PortSecurityOverride,
        merged: &PortSecurityOverride,
    ) {
        let Some(aging) = stated.aging.filter(|a| *a != SecureAging::None) else {
            return;
        };
        if merged.aging_secs.is_none() {
            let word = match aging {
                SecureAging::Absolute => "absolute",
                _ => "inactivity",
            };
            self.error(
                &format!("{key}.aging"),
                format!(
                    "aging = \"{word}\" needs aging_secs ({}..={}): how long a dynamic secure MAC lives",
                    SECURE_AGING_SECS_RANGE.start(),
                    SECURE_AGING_SECS_RANGE.end()
                ),
            );
        }
    }

    /// The values of one `storm_control` table at `key`.
    fn storm_table(&mut self, key: &str, sc: &StormControlOverride) {
        for (field, v) in [
            ("broadcast_pps", sc.broadcast_pps),
            ("multicast_pps", sc.multicast_pps),
            ("unknown_unicast_pps", sc.unknown_unicast_pps),
        ] {
            if let Some(v) = v.filter(|v| !STORM_PPS_RANGE.contains(&u64::from(*v))) {
                self.error(&format!("{key}.{field}"), out_of_range(v, &STORM_PPS_RANGE));
            }
        }
        if let Some(r) = sc
            .recovery_secs
            .filter(|r| !RECOVERY_SECS_RANGE.contains(r))
        {
            self.error(
                &format!("{key}.recovery_secs"),
                out_of_range(r, &RECOVERY_SECS_RANGE),
            );
        }
    }

    /// A group's port security, storm control and ACL bindings, on their own.
    fn group_features(
        &mut self,
        key: &str,
        g: &PortGroup,
        acls: &HashMap<&str, usize>,
        poison: &Poison,
    ) {
        let ps_key = format!("{key}.port_security");
        if let Some(ps) = &g.port_security {
            self.port_security_table(&ps_key, ps);
            if !poison.tables.contains(&ps_key) {
                self.aging_needs_secs(&ps_key, ps, ps);
            }
        }
        let sc_key = format!("{key}.storm_control");
        if let Some(sc) = &g.storm_control {
            self.storm_table(&sc_key, sc);
            if sc.enabled != Some(false) && !sc.has_limit() && !poison.tables.contains(&sc_key) {
                self.error(&sc_key, NO_LIMIT);
            }
        }
        if let Some((a, b)) = recovery_conflict(g.port_security.as_ref(), g.storm_control.as_ref())
        {
            self.error(&format!("{sc_key}.recovery_secs"), recovery_message(a, b));
        }
        self.acl_ref(&format!("{key}.mac_acl_in"), g.mac_acl_in.as_ref(), acls);
        self.acl_ref(&format!("{key}.mac_acl_out"), g.mac_acl_out.as_ref(), acls);
    }

    /// A guest port's own feature tables, merged over its group's. Returns whether
    /// port security is on, and with which `max_macs`.
    fn port_features(
        &mut self,
        key: &str,
        p: &HostPort,
        group: Option<(usize, &PortGroup)>,
        acls: &HashMap<&str, usize>,
        poison: &Poison,
    ) -> SecureState {
        let ps_key = format!("{key}.port_security");
        let sc_key = format!("{key}.storm_control");
        let group_ps_key = group.map(|(g, _)| format!("port_group[{g}].port_security"));
        let group_sc_key = group.map(|(g, _)| format!("port_group[{g}].storm_control"));
        let gps = group.and_then(|(_, g)| g.port_security.as_ref());
        let gsc = group.and_then(|(_, g)| g.storm_control.as_ref());
        let poisoned = |k: &Option<String>| k.as_ref().is_some_and(|k| poison.tables.contains(k));
        let ps_poisoned = poison.tables.contains(&ps_key) || poisoned(&group_ps_key);
        let sc_poisoned = poison.tables.contains(&sc_key) || poisoned(&group_sc_key);

        let merged_ps = PortSecurityOverride::merge(gps, p.port_security.as_ref());
        if let Some(ps) = &p.port_security {
            self.port_security_table(&ps_key, ps);
            if !ps_poisoned && let Some(m) = &merged_ps {
                self.aging_needs_secs(&ps_key, ps, m);
            }
        }
        let merged_sc = StormControlOverride::merge(gsc, p.storm_control.as_ref());
        if let Some(sc) = &p.storm_control {
            self.storm_table(&sc_key, sc);
            let group_reported = gsc.is_some_and(|g| g.enabled != Some(false) && !g.has_limit());
            if let Some(m) = &merged_sc
                && m.enabled != Some(false)
                && !m.has_limit()
                && !group_reported
                && !sc_poisoned
            {
                self.error(&sc_key, NO_LIMIT);
            }
        }
        // The group's own conflict is reported at the group; a port that states a
        // table of its own is checked with the merged values.
        if (p.port_security.is_some() || p.storm_control.is_some())
            && let Some((a, b)) = recovery_conflict(merged_ps.as_ref(), merged_sc.as_ref())
        {
            let stated = |t: Option<&Option<u64>>| t.is_some_and(Option::is_some);
            let at = if stated(p.port_security.as_ref().map(|t| &t.recovery_secs)) {
                format!("{ps_key}.recovery_secs")
            } else if stated(p.storm_control.as_ref().map(|t| &t.recovery_secs)) {
                format!("{sc_key}.recovery_secs")
            } else if p.port_security.is_some() {
                ps_key.clone()
            } else {
                sc_key.clone()
            };
            self.error(&at, recovery_message(a, b));
        }
        self.acl_ref(&format!("{key}.mac_acl_in"), p.mac_acl_in.as_ref(), acls);
        self.acl_ref(&format!("{key}.mac_acl_out"), p.mac_acl_out.as_ref(), acls);

        // Port security in force: unknown when the group is.
        if group.is_none() && p.port_security.is_none() {
            return SecureState::Unknown;
        }
        let Some(resolved) = merged_ps.as_ref().and_then(PortSecurityOverride::resolve) else {
            if !p.secure_macs.is_empty() {
                let how = match (&merged_ps, group) {
                    (Some(_), _) => "port security is disabled here (enabled = false)".to_owned(),
                    (None, Some((_, g))) => format!(
                        "neither the port nor its group {:?} has port security",
                        g.name
                    ),
                    (None, None) => "the port has no port security".to_owned(),
                };
                self.error(
                    &format!("{key}.secure_macs"),
                    format!(
                        "secure MACs need port security, and {how}: add `port_security = {{ max_macs = N }}` to the port or its group"
                    ),
                );
            }
            return SecureState::Off;
        };
        if ps_poisoned {
            return SecureState::Unknown;
        }
        let from = if p.port_security.is_some_and(|t| t.max_macs.is_some()) {
            self.sources.describe(&format!("{ps_key}.max_macs"))
        } else if let Some(k) = group_ps_key.filter(|_| gps.is_some_and(|t| t.max_macs.is_some())) {
            self.sources.describe(&format!("{k}.max_macs"))
        } else {
            "the default".to_owned()
        };
        SecureState::On {
            max_macs: resolved.max_macs,
            from,
        }
    }

    /// Switch, uplink, port group, port and MAC ACL names: 1..=64 bytes, no
    /// whitespace or control characters.
    fn name(&mut self, key: &str, what: &str, name: &str) {
        let problem = if name.is_empty() {
            Some(format!("{what} name must not be empty"))
        } else if name.len() > MAX_NAME_LEN {
            Some(format!(
                "{what} name is {} bytes long; at most {MAX_NAME_LEN} allowed",
                name.len()
            ))
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some(format!(
                "{what} name {name:?} contains whitespace or control characters"
            ))
        } else {
            None
        };
        if let Some(m) = problem {
            self.error(key, m);
        }
    }
}

/// The kernel's rules for an interface name (`dev_valid_name`): 1..=15 bytes, not
/// `.` or `..`, no `/`, `:` or whitespace; control characters are refused too.
pub(crate) fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name must not be empty".into());
    }
    if name.len() > MAX_IFNAME_LEN {
        return Err(format!(
            "interface name {name:?} is {} bytes long; Linux allows at most {MAX_IFNAME_LEN} (IFNAMSIZ)",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name {name:?} contains {c:?}; Linux interface names may not contain '/', ':' or whitespace"
        ));
    }
    Ok(())
}

const NO_LIMIT: &str = "storm control sets no limit: state broadcast_pps, multicast_pps and/or unknown_unicast_pps (or `enabled = false`)";

/// Whether port security is on for a port, as far as stage 2 can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SecureState {
    Off,
    /// On, with `max_macs` from `from` (a key and line, or "the default").
    On {
        max_macs: u16,
        from: String,
    },
    /// Depends on a value that is already wrong.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MacKindWord {
    Initial,
    Secure,
}

/// Who first claimed a MAC in a VLAN.
struct MacClaim {
    port: usize,
    key: String,
    kind: MacKindWord,
}

/// `"a", "b", "c"`.
fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Port security and storm control (both in force) stating different err-disable
/// recovery intervals: (port security's, storm control's).
fn recovery_conflict(
    ps: Option<&PortSecurityOverride>,
    sc: Option<&StormControlOverride>,
) -> Option<(u64, u64)> {
    let a = ps.and_then(PortSecurityOverride::resolve)?.recovery_secs?;
    let b = sc.filter(|s| s.is_active())?.recovery_secs?;
    (a != b).then_some((a, b))
}

fn recovery_message(a: u64, b: u64) -> String {
    format!(
        "a port has one err-disable recovery interval, but port_security.recovery_secs is {a} and storm_control.recovery_secs is {b}: state it in one table, or the same in both"
    )
}

fn storm_spec(sc: &StormControlOverride) -> StormControlSpec {
    StormControlSpec {
        broadcast_pps: sc.broadcast_pps,
        multicast_pps: sc.multicast_pps,
        unknown_unicast_pps: sc.unknown_unicast_pps,
        shutdown: sc.action == Some(StormAction::Shutdown),
    }
}

/// The features in force on a guest port of group `g`.
fn guest_features(g: &PortGroup, p: &HostPort) -> PortFeatures {
    let ps = PortSecurityOverride::merge(g.port_security.as_ref(), p.port_security.as_ref())
        .and_then(|m| m.resolve());
    let sc = StormControlOverride::merge(g.storm_control.as_ref(), p.storm_control.as_ref())
        .filter(StormControlOverride::is_active);
    PortFeatures {
        port_security: ps.map(|r| PortSecuritySpec {
            max_macs: r.max_macs,
            violation: r.violation,
            sticky: r.sticky,
            aging: r.aging,
            aging_secs: r.aging_secs,
            static_macs: p.secure_macs.clone(),
            sticky_macs: Vec::new(),
        }),
        storm_control: sc.as_ref().map(storm_spec),
        mac_acl_in: AclRef::merge(g.mac_acl_in.as_ref(), p.mac_acl_in.as_ref()).map(str::to_owned),
        mac_acl_out: AclRef::merge(g.mac_acl_out.as_ref(), p.mac_acl_out.as_ref())
            .map(str::to_owned),
        errdisable_recovery_secs: ps
            .and_then(|r| r.recovery_secs)
            .or(sc.and_then(|s| s.recovery_secs)),
        ..Default::default()
    }
}

/// The features in force on every uplink.
fn uplink_features(up: &UplinkPolicy) -> PortFeatures {
    let sc = up.storm_control.filter(StormControlOverride::is_active);
    PortFeatures {
        port_security: None,
        storm_control: sc.as_ref().map(storm_spec),
        mac_acl_in: up
            .mac_acl_in
            .as_ref()
            .and_then(AclRef::name)
            .map(str::to_owned),
        mac_acl_out: up
            .mac_acl_out
            .as_ref()
            .and_then(AclRef::name)
            .map(str::to_owned),
        errdisable_recovery_secs: sc.and_then(|s| s.recovery_secs),
        ..Default::default()
    }
}

fn group_vlan_mode(v: &GroupVlan) -> VlanMode {
    match v {
        GroupVlan::Access(vid) => VlanMode::Access(*vid),
        GroupVlan::Trunk { vlans, native_vlan } => VlanMode::Trunk {
            allowed: vlan_set(vlans),
            native: *native_vlan,
        },
    }
}

/// The spec of a configuration that passed [`Checker::check`].
fn build(profile: &Profile, host: &HostBinding) -> CompiledConfig {
    let mut out = CompiledConfig {
        spec: SwitchSpec {
            name: profile.switch.name.clone(),
            mac_table_size: usize::try_from(profile.switch.mac_table_size).unwrap_or(usize::MAX),
            mac_aging_secs: profile.switch.mac_aging_secs,
            ports: Vec::new(),
            mac_acls: profile
                .mac_acls
                .iter()
                .map(|a| MacAclSpec {
                    name: a.name.clone(),
                    rules: a.rules.clone(),
                })
                .collect(),
            max_bindings: portcullis_dataplane::DEFAULT_MAX_BINDINGS,
            static_bindings: Vec::new(),
            arp_acls: Vec::new(),
        },
        interfaces: Vec::new(),
        create_tap: Vec::new(),
        groups: Vec::new(),
        interface_keys: Vec::new(),
    };
    if let Some(up) = &profile.uplink_policy {
        let allowed = vlan_set(&up.allowed_vlans);
        for u in &up.uplinks {
            let interface = host
                .uplinks
                .iter()
                .find(|b| &b.uplink == u)
                .map(|b| b.interface.clone())
                .unwrap_or_default();
            out.spec.ports.push(PortSpec {
                name: u.clone(),
                role: PortRole::Uplink,
                vlan: VlanMode::Trunk {
                    allowed: allowed.clone(),
                    native: up.native_vlan,
                },
                security: SecurityPolicy::default(),
                initial_mac: None,
                features: uplink_features(up),
            });
            out.interfaces.push(interface);
            out.create_tap.push(false);
            out.groups.push(None);
            out.interface_keys.push(join_key("host.uplinks", u));
        }
    }
    for (i, p) in host.ports.iter().enumerate() {
        let Some(g) = profile.port_groups.iter().find(|g| g.name == p.port_group) else {
            continue; // unreachable after check()
        };
        out.spec.ports.push(PortSpec {
            name: p.name.clone(),
            role: PortRole::Guest,
            vlan: group_vlan_mode(&g.vlan),
            security: p
                .security
                .apply(g.security.apply(SecurityPolicy::default())),
            initial_mac: p.mac,
            features: guest_features(g, p),
        });
        out.interfaces.push(p.interface.clone());
        out.create_tap.push(p.tap);
        out.groups.push(Some(g.name.clone()));
        out.interface_keys.push(format!("host.port[{i}].interface"));
    }
    out
}

/// [`SwitchSpec::check`]'s verdict, located at the key it is about.
pub(super) fn spec_error(
    e: &SpecError,
    c: &CompiledConfig,
    profile: &Profile,
    host: &HostBinding,
    sources: &Sources,
) -> ConfigError {
    let port_key = |name: &str| {
        c.spec
            .ports
            .iter()
            .rposition(|p| p.name == name)
            .map_or_else(
                || "host.port".to_owned(),
                |i| match c.interface_keys[i].strip_suffix(".interface") {
                    Some(port) => port.to_owned(),
                    None => c.interface_keys[i].clone(),
                },
            )
    };
    // A guest port's index in [[host.port]] and its group's in [[port_group]].
    let guest = |name: &str| {
        let i = host.ports.iter().rposition(|p| p.name == name)?;
        let g = profile
            .port_groups
            .iter()
            .position(|g| g.name == host.ports[i].port_group);
        Some((i, g))
    };
    let key = match e {
        SpecError::TooManyPorts(_) => "host.port".to_owned(),
        SpecError::EmptyMacTable | SpecError::MacTableTooSmall { .. } => {
            "switch.mac_table_size".to_owned()
        }
        SpecError::DuplicatePortName(n) | SpecError::UplinkNotTrunk(n) => port_key(n),
        SpecError::DuplicateMac { second, mac, .. } => {
            let spec = c.spec.ports.iter().rfind(|p| &p.name == second);
            let ps = spec.and_then(|p| p.features.port_security.as_ref());
            let initial = spec.is_some_and(|p| p.initial_mac == Some(*mac));
            let base = port_key(second);
            match ps {
                Some(ps) if !initial => match ps.static_macs.iter().position(|m| m == mac) {
                    Some(j) => format!("{base}.secure_macs[{j}]"),
                    // A restored sticky MAC: not in the files.
                    None => format!("{base}.port_security"),
                },
                _ => format!("{base}.mac"),
            }
        }
        SpecError::PortSecurity { port, .. } => {
            let spec = c.spec.ports.iter().rfind(|p| &p.name == port);
            let ps = spec.and_then(|p| p.features.port_security.as_ref());
            match (guest(port), spec, ps) {
                (Some((i, g)), Some(sp), Some(ps)) if sp.role == PortRole::Guest => {
                    let field = if ps.max_macs == 0 {
                        "max_macs"
                    } else if sp.configured_macs().len() > usize::from(ps.max_macs) {
                        "secure_macs"
                    } else if ps.aging != SecureAging::None && ps.aging_secs == 0 {
                        "aging_secs"
                    } else {
                        ""
                    };
                    let p = &host.ports[i];
                    let group = g.map(|g| (g, &profile.port_groups[g]));
                    let states = |t: Option<&PortSecurityOverride>| {
                        t.is_some_and(|t| match field {
                            "max_macs" => t.max_macs.is_some(),
                            "aging_secs" => t.aging_secs.is_some(),
                            _ => false,
                        })
                    };
                    if field == "secure_macs" {
                        format!("host.port[{i}].secure_macs")
                    } else if states(p.port_security.as_ref()) {
                        format!("host.port[{i}].port_security.{field}")
                    } else if let Some((g, _)) =
                        group.filter(|(_, gr)| states(gr.port_security.as_ref()))
                    {
                        format!("port_group[{g}].port_security.{field}")
                    } else if p.port_security.is_some() {
                        format!("host.port[{i}].port_security")
                    } else if let Some((g, _)) = group.filter(|(_, gr)| gr.port_security.is_some())
                    {
                        format!("port_group[{g}].port_security")
                    } else {
                        format!("host.port[{i}]")
                    }
                }
                _ => port_key(port),
            }
        }
        SpecError::UnknownAcl { port, acl } => {
            let names = |r: &Option<AclRef>| r.as_ref().and_then(AclRef::name) == Some(acl);
            match guest(port) {
                Some((i, g)) => {
                    let p = &host.ports[i];
                    let gr = g.map(|g| &profile.port_groups[g]);
                    if names(&p.mac_acl_in) {
                        format!("host.port[{i}].mac_acl_in")
                    } else if names(&p.mac_acl_out) {
                        format!("host.port[{i}].mac_acl_out")
                    } else if let (Some(g), Some(gr)) = (g, gr) {
                        if names(&gr.mac_acl_in) {
                            format!("port_group[{g}].mac_acl_in")
                        } else {
                            format!("port_group[{g}].mac_acl_out")
                        }
                    } else {
                        format!("host.port[{i}]")
                    }
                }
                None => match &profile.uplink_policy {
                    Some(up) if names(&up.mac_acl_out) && !names(&up.mac_acl_in) => {
                        "uplink_policy.mac_acl_out".to_owned()
                    }
                    Some(_) => "uplink_policy.mac_acl_in".to_owned(),
                    None => port_key(port),
                },
            }
        }
        SpecError::BadAcl { acl, .. } => {
            match c.spec.mac_acls.iter().rposition(|a| &a.name == acl) {
                Some(i) => {
                    let a = &c.spec.mac_acls[i];
                    if c.spec.mac_acls[..i].iter().any(|b| &b.name == acl) {
                        format!("mac_acl[{i}].name")
                    } else if a.rules.len() > MAX_ACL_RULES {
                        format!("mac_acl[{i}].rules")
                    } else if let Some(j) =
                        a.rules.iter().position(|r| r.cos.is_some_and(|c| c > 7))
                    {
                        format!("mac_acl[{i}].rules[{j}].cos")
                    } else {
                        format!("mac_acl[{i}]")
                    }
                }
                None => "mac_acl".to_owned(),
            }
        }
    };
    sources.error(&key, e.to_string())
}

/// Why [`CompiledConfig::restore_sticky`] did not restore a MAC.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StickyRefused {
    #[error("no guest port of that name")]
    UnknownPort,
    #[error("the port does not have port security with sticky = true")]
    NotSticky,
    #[error("not a unicast MAC address")]
    NotUnicast,
    #[error("the port already has max_macs ({0}) secure MACs")]
    MaxMacs(u16),
    #[error("port {0:?} has this MAC in a VLAN the port carries")]
    InUse(String),
    #[error("the MAC table cannot hold it")]
    TableFull,
}

impl CompiledConfig {
    /// Restores the sticky secure MACs that the daemon persisted for guest port
    /// `port` into `spec.ports[..].features.port_security.sticky_macs`, in order.
    ///
    /// A MAC the port already has (initial, static or sticky) is skipped. A MAC that
    /// no longer fits the configuration is not restored and is returned with the
    /// reason (the daemon logs it and drops it from its store). A spec that passed
    /// [`SwitchSpec::check`] still passes it afterwards.
    pub fn restore_sticky(
        &mut self,
        port: &str,
        macs: &[MacAddr],
    ) -> Vec<(MacAddr, StickyRefused)> {
        let spec = &mut self.spec;
        let refuse_all =
            |why: StickyRefused| macs.iter().map(|m| (*m, why.clone())).collect::<Vec<_>>();
        let Some(pi) = spec
            .ports
            .iter()
            .position(|p| p.name == port && p.role == PortRole::Guest)
        else {
            return refuse_all(StickyRefused::UnknownPort);
        };
        match &spec.ports[pi].features.port_security {
            Some(ps) if ps.sticky => {}
            _ => return refuse_all(StickyRefused::NotSticky),
        }
        // Who holds each (VLAN, MAC) now, as SwitchSpec::check counts them.
        let mut owners: HashMap<(u16, MacAddr), usize> = HashMap::new();
        for (i, p) in spec.ports.iter().enumerate() {
            for vid in p.vlan.vids() {
                for mac in p.configured_macs() {
                    owners.entry((vid.get(), mac)).or_insert(i);
                }
            }
        }
        let vids: Vec<u16> = spec.ports[pi].vlan.vids().iter().map(|v| v.get()).collect();
        let mut own: HashSet<MacAddr> = spec.ports[pi].configured_macs().into_iter().collect();
        let mut refused = Vec::new();
        for &mac in macs {
            if own.contains(&mac) {
                continue;
            }
            let max = spec.ports[pi]
                .features
                .port_security
                .as_ref()
                .map_or(0, |ps| ps.max_macs);
            let why = if !mac.is_valid_source() {
                Some(StickyRefused::NotUnicast)
            } else if let Some(&other) = vids
                .iter()
                .find_map(|v| owners.get(&(*v, mac)).filter(|o| **o != pi))
            {
                Some(StickyRefused::InUse(spec.ports[other].name.clone()))
            } else if own.len() >= usize::from(max) {
                Some(StickyRefused::MaxMacs(max))
            } else if owners.len() + vids.len() > spec.mac_table_size {
                Some(StickyRefused::TableFull)
            } else {
                None
            };
            if let Some(why) = why {
                refused.push((mac, why));
                continue;
            }
            for v in &vids {
                owners.insert((*v, mac), pi);
            }
            own.insert(mac);
            if let Some(ps) = spec.ports[pi].features.port_security.as_mut() {
                ps.sticky_macs.push(mac);
            }
        }
        refused
    }
}
