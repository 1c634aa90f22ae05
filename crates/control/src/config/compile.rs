//! Stage 2 of validation: names, cross-references and limits over the whole
//! configuration, then the compilation into a [`SwitchSpec`].

use super::CompiledConfig;
use super::error::ConfigError;
use super::model::*;
use super::source::{Sources, join_key};
use super::validate::{Poison, out_of_range};
use portcullis_dataplane::{
    MAX_PORTS, MacAddr, PortRole, PortSpec, SecurityPolicy, SpecError, SwitchSpec, Vid, VlanMode,
};
use std::collections::HashMap;

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
    if let Err(e) = compiled.spec.check() {
        return Err(vec![spec_error(&e, &compiled, sources)]);
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
        let mut macs: HashMap<(Vid, MacAddr), usize> = HashMap::new();
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
                Some(&g) => Some(&profile.port_groups[g]),
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
                            known
                                .iter()
                                .map(|k| format!("{k:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.error(&format!("{key}.port_group"), msg);
                    None
                }
            };
            if let Some(mac) = p.mac {
                let mkey = format!("{key}.mac");
                if mac.is_group() {
                    self.error(
                        &mkey,
                        format!("{mac} is a multicast address; a guest's initial MAC must be unicast (low bit of the first octet clear)"),
                    );
                    continue;
                }
                if mac == MacAddr::ZERO {
                    self.error(&mkey, "00:00:00:00:00:00 is not a usable MAC address");
                    continue;
                }
                let Some(g) = group.filter(|g| !poison.groups.contains(&g.name)) else {
                    continue;
                };
                for vid in group_vlan_mode(&g.vlan).vids() {
                    if let Some(&first) = macs.get(&(vid, mac)) {
                        let msg = format!(
                            "MAC {mac} is already the initial MAC of port {:?} ({}) in VLAN {vid}",
                            host.ports[first].name,
                            self.sources.describe(&format!("host.port[{first}].mac"))
                        );
                        self.error(&mkey, msg);
                        break;
                    }
                    macs.insert((vid, mac), i);
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

    /// Switch, uplink, port group and port names: 1..=64 bytes, no whitespace or
    /// control characters.
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
            mac_acls: Vec::new(),
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
                features: Default::default(),
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
            features: Default::default(),
        });
        out.interfaces.push(p.interface.clone());
        out.create_tap.push(p.tap);
        out.groups.push(Some(g.name.clone()));
        out.interface_keys.push(format!("host.port[{i}].interface"));
    }
    out
}

/// [`SwitchSpec::check`]'s verdict, located at the key it is about.
fn spec_error(e: &SpecError, c: &CompiledConfig, sources: &Sources) -> ConfigError {
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
    let key = match e {
        SpecError::TooManyPorts(_) => "host.port".to_owned(),
        SpecError::EmptyMacTable | SpecError::MacTableTooSmall { .. } => {
            "switch.mac_table_size".to_owned()
        }
        SpecError::DuplicatePortName(n) | SpecError::UplinkNotTrunk(n) => port_key(n),
        SpecError::DuplicateMac { second, .. } => format!("{}.mac", port_key(second)),
        SpecError::PortSecurity { port, .. } | SpecError::UnknownAcl { port, .. } => port_key(port),
        SpecError::BadAcl { .. } => "mac_acl".to_owned(),
    };
    sources.error(&key, e.to_string())
}
