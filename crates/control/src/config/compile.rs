//! Stage 2 of validation: names, cross-references and limits over the whole
//! configuration, then the compilation into a [`SwitchSpec`]. Each feature checks
//! its own tables (`impl Checker` in `features/`); what stays here spans features
//! or the whole host binding (names and interfaces, port groups, claimed MACs, a
//! port's one recovery interval, the team's VLANs on the uplinks, static bindings
//! against ports), and the spec builder that calls each feature's `spec`.

use super::check::*;
use super::compiled::CompiledConfig;
use super::error::ConfigError;
use super::features::*;
use super::keys::join_key;
use super::model::*;
use super::source::Sources;
use super::spec_error::spec_error;
use super::value::*;
use portcullis_dataplane::{
    EnforceMode, MAX_PORTS, MacAddr, PortFeatures, PortRole, PortSpec, SecurityPolicy, SwitchSpec,
    TeamingSpec, Vid, VlanMode, VlanSet,
};
use std::collections::HashMap;
use std::net::IpAddr;

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
    // A profile checked on its own (no host binding given, none in the profile)
    // needs no `[host.overlay]`; a host binding does when the profile has `[overlay]`.
    let host_given = sources.host.is_some()
        || sources.profile.offset_exact("host").is_some()
        || *host != HostBinding::default();
    c.check(profile, host, host_given, poison);
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

impl Checker<'_> {
    fn check(&mut self, profile: &Profile, host: &HostBinding, host_given: bool, poison: &Poison) {
        self.switch(&profile.switch);
        if let Some(o) = &profile.overlay {
            self.overlay(o, poison.overlay_vnis);
        }
        let overlay_on = profile.overlay.is_some();

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
            if !poison.groups.contains(&g.name) {
                self.group_vlan(&key, &g.vlan);
            }
        }

        // ACLs, then every binding of one and the features of groups and uplinks.
        let mac_acls = self.mac_acls(&profile.mac_acls);
        let arp_acls = self.arp_acls(&profile.arp_acls);
        let acls = Acls {
            mac: mac_acls,
            arp: arp_acls,
        };
        for (i, g) in profile.port_groups.iter().enumerate() {
            let key = format!("port_group[{i}]");
            self.group_features(&key, g, &acls, poison);
        }
        if let Some(up) = &profile.uplink_policy {
            let key = "uplink_policy.storm_control";
            if let Some(sc) = &up.storm_control {
                self.storm_control_own(key, sc, poison.tables.contains(key));
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
            if overlay_on && u == overlay::PORT_NAME {
                self.error(&key, overlay::NAME_TAKEN);
            }
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
            .filter(|(_, p)| p.vhost_user.is_none())
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

        // vhost-user sockets: each used once.
        let mut sockets: HashMap<&str, String> = HashMap::new();
        for (i, p) in host.ports.iter().enumerate() {
            let Some(v) = &p.vhost_user else { continue };
            let key = format!("host.port[{i}].vhost_user.socket");
            if let Some(first) = sockets.get(v.socket.as_str()) {
                let msg = format!(
                    "vhost-user socket {:?} is already used by {}",
                    v.socket,
                    self.sources.describe(first)
                );
                self.error(&key, msg);
            } else {
                sockets.insert(&v.socket, key);
            }
        }

        // The bridge netdev: the switch's name, as an interface no port uses.
        if host.bridge_netdev {
            let name = &profile.switch.name;
            if let Err(m) = check_ifname(name) {
                self.error(
                    "host.bridge_netdev",
                    format!("the netdev is named after the switch (`[switch] name`): {m}"),
                );
            } else if let Some(first) = interfaces.get(name.as_str()) {
                let msg = format!(
                    "the netdev {name:?} (the switch's name) is the interface of {}",
                    self.sources.describe(first)
                );
                self.error("host.bridge_netdev", msg);
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
            if overlay_on && p.name == overlay::PORT_NAME {
                self.error(&format!("{key}.name"), overlay::NAME_TAKEN);
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
                for vid in vlans::mode(&g.vlan).vids() {
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

        self.static_bindings(profile, host, &ports, &uplinks, &macs, poison);
        self.teaming(profile, host, &groups, poison);
        self.management(&host.management, poison);

        // The overlay: both halves, or neither (a profile checked alone aside).
        match (&profile.overlay, &host.overlay) {
            (Some(o), Some(h)) => {
                if let Some(ifname) = &h.interface {
                    let key = "host.overlay.interface";
                    match check_ifname(ifname) {
                        Err(m) => self.error(key, m),
                        Ok(()) => {
                            if let Some(first) = interfaces
                                .get(ifname.as_str())
                                .filter(|k| k.starts_with("host.port"))
                            {
                                let msg = format!(
                                    "interface {ifname:?} is the guest port interface of {}; the underlay is a host NIC",
                                    self.sources.describe(first)
                                );
                                self.error(key, msg);
                            }
                        }
                    }
                }
                let poisoned = poison.overlay_vnis || poison.overlay_host;
                self.host_overlay(o, h, poisoned, |vid, mac| {
                    macs.get(&(vid, mac)).map(|c| c.key.clone())
                });
            }
            (None, Some(_)) => self.error("host.overlay", overlay::HOST_WITHOUT_PROFILE),
            (Some(_), None) if host_given => {
                self.error("host.overlay", overlay::PROFILE_WITHOUT_HOST)
            }
            _ => {}
        }
        let overlay_ports = usize::from(profile.overlay.is_some() && host.overlay.is_some());

        let total = listed.len() + overlay_ports + host.ports.len();
        if total > MAX_PORTS {
            let with_overlay = if overlay_ports == 1 {
                " + the overlay port"
            } else {
                ""
            };
            self.error(
                &format!(
                    "host.port[{}]",
                    MAX_PORTS.saturating_sub(listed.len() + overlay_ports)
                ),
                format!(
                    "{total} ports ({} uplinks{with_overlay} + {} guest ports): a switch holds at most {MAX_PORTS}",
                    listed.len(),
                    host.ports.len()
                ),
            );
        }
    }

    /// `teaming` of the port groups and guest ports: uplinks that exist, each listed
    /// once in one list, at least one active; and, for a group (or port) that
    /// states a team, the group's VLANs carried by the uplinks.
    fn teaming(
        &mut self,
        profile: &Profile,
        host: &HostBinding,
        groups: &HashMap<&str, usize>,
        poison: &Poison,
    ) {
        let uplinks: &[String] = profile
            .uplink_policy
            .as_ref()
            .map_or(&[], |u| u.uplinks.as_slice());
        for (i, g) in profile.port_groups.iter().enumerate() {
            let Some(t) = &g.teaming else {
                continue;
            };
            let key = format!("port_group[{i}].teaming");
            if !self.team_table(
                &key,
                t,
                profile.uplink_policy.as_ref().map(|u| u.uplinks.as_slice()),
            ) {
                continue;
            }
            self.team_lists(&key, t, None, uplinks);
            let who = format!("port group {:?}", g.name);
            self.team_vlans(&key, &who, g, &t.resolve(uplinks), profile, poison);
        }
        for (i, p) in host.ports.iter().enumerate() {
            let Some(t) = &p.teaming else {
                continue;
            };
            let key = format!("host.port[{i}].teaming");
            if !self.team_table(
                &key,
                t,
                profile.uplink_policy.as_ref().map(|u| u.uplinks.as_slice()),
            ) {
                continue;
            }
            let group = groups
                .get(p.port_group.as_str())
                .map(|&g| (g, &profile.port_groups[g]));
            let group_team = group.and_then(|(gi, g)| {
                let t = g.teaming.as_ref()?;
                Some((format!("port_group[{gi}].teaming"), t))
            });
            let base = group_team.as_ref().map(|(k, t)| (k.as_str(), *t));
            self.team_lists(&key, t, base, uplinks);
            // A group with a team of its own has had its VLANs checked.
            if let Some((_, g)) = group.filter(|(_, g)| g.teaming.is_none()) {
                let who = format!("port {:?} (port group {:?})", p.name, g.name);
                self.team_vlans(&key, &who, g, &t.resolve(uplinks), profile, poison);
            }
        }
    }

    /// The VLANs of group `g` are carried by the uplinks of `team` (all uplinks
    /// share `uplink_policy`'s allowed VLANs and native VLAN). `who` names the
    /// group or port in the message.
    fn team_vlans(
        &mut self,
        key: &str,
        who: &str,
        g: &PortGroup,
        team: &TeamingSpec,
        profile: &Profile,
        poison: &Poison,
    ) {
        let Some(up) = &profile.uplink_policy else {
            return;
        };
        if poison.groups.contains(&g.name) || poison.uplink_vlans {
            return;
        }
        let carried = uplink_vlan_mode(up);
        let missing: Vec<Vid> = vlans::mode(&g.vlan)
            .vids()
            .into_iter()
            .filter(|v| !carried.carries(*v))
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut names: Vec<&str> = Vec::new();
        for u in team.active.iter().chain(&team.standby) {
            if up.uplinks.contains(u) && !names.contains(&u.as_str()) {
                names.push(u);
            }
        }
        if names.is_empty() {
            names = up.uplinks.iter().map(String::as_str).collect();
        }
        let (vlans, them) = match missing.as_slice() {
            [one] => (format!("VLAN {one} of {who} is"), "it"),
            _ => (format!("VLANs {} of {who} are", vid_list(&missing)), "them"),
        };
        let carries = carried.vids();
        let carries = if carries.is_empty() {
            "no VLAN".to_owned()
        } else {
            vid_list(&carries)
        };
        let mut from = self.sources.describe("uplink_policy.allowed_vlans");
        if let Some(n) = up.native_vlan {
            from.push_str(&format!(", native_vlan {n}"));
        }
        let msg = format!(
            "{vlans} not allowed on the uplinks of its team ({}): the uplinks carry {carries} ({from}); add {them} to uplink_policy.allowed_vlans, or remove `teaming` to keep {them} host-local",
            quoted_list(&names)
        );
        self.error(key, msg);
    }

    /// `[[host.static_binding]]`: unicast MAC, a host address, a known port that
    /// carries the VLAN, no (VLAN, IP) twice, no MAC of another port, and no more
    /// than `max_bindings`.
    fn static_bindings(
        &mut self,
        profile: &Profile,
        host: &HostBinding,
        ports: &HashMap<&str, usize>,
        uplinks: &HashMap<&str, usize>,
        macs: &HashMap<(Vid, MacAddr), MacClaim>,
        poison: &Poison,
    ) {
        let mut seen: HashMap<(Vid, IpAddr), String> = HashMap::new();
        for (j, b) in host.static_bindings.iter().enumerate() {
            let key = format!(
                "host.static_binding[{}]",
                poison.static_binding_file_index(j)
            );
            if b.mac.is_group() {
                self.error(
                    &format!("{key}.mac"),
                    format!("{} is a multicast address; a binding's MAC must be unicast (low bit of the first octet clear)", b.mac),
                );
            } else if b.mac == MacAddr::ZERO {
                self.error(
                    &format!("{key}.mac"),
                    "00:00:00:00:00:00 is not a usable MAC address",
                );
            }
            if let Err(m) = static_bindings::check_binding_ip(b.ip) {
                self.error(&format!("{key}.ip"), m);
            }
            // The port and the VLANs it carries (None: unknown, already reported).
            let guest = ports.get(b.port.as_str()).copied();
            let vlan_mode: Option<VlanMode> = if let Some(i) = guest {
                profile
                    .port_groups
                    .iter()
                    .find(|g| g.name == host.ports[i].port_group)
                    .filter(|g| !poison.groups.contains(&g.name))
                    .map(|g| vlans::mode(&g.vlan))
            } else if uplinks.contains_key(b.port.as_str()) {
                profile.uplink_policy.as_ref().map(uplink_vlan_mode)
            } else {
                let mut known: Vec<&str> = host.ports.iter().map(|p| p.name.as_str()).collect();
                known.extend(names_in_order(uplinks));
                let msg = if known.is_empty() {
                    format!(
                        "unknown port {:?}: the switch has no ports ([[host.port]] or uplinks)",
                        b.port
                    )
                } else {
                    const SHOWN: usize = 12;
                    let more = if known.len() > SHOWN {
                        format!(" and {} more", known.len() - SHOWN)
                    } else {
                        String::new()
                    };
                    known.truncate(SHOWN);
                    format!(
                        "unknown port {:?}; a binding names a [[host.port]] or a logical uplink: {}{more}",
                        b.port,
                        quoted_list(&known)
                    )
                };
                self.error(&format!("{key}.port"), msg);
                None
            };
            let Some(mode) = vlan_mode else {
                continue;
            };
            let vids = mode.vids();
            let vid = match b.vlan {
                Some(v) if mode.carries(v) => v,
                Some(v) => {
                    let msg = if vids.is_empty() {
                        format!("port {:?} carries no VLAN", b.port)
                    } else {
                        format!(
                            "port {:?} does not carry VLAN {v}; it carries {}",
                            b.port,
                            vid_list(&vids)
                        )
                    };
                    self.error(&format!("{key}.vlan"), msg);
                    continue;
                }
                None => match vids.as_slice() {
                    [only] => *only,
                    [] => {
                        self.error(
                            &format!("{key}.vlan"),
                            format!("port {:?} carries no VLAN", b.port),
                        );
                        continue;
                    }
                    _ => {
                        self.error(
                            &format!("{key}.vlan"),
                            format!(
                                "port {:?} carries several VLANs ({}): state the binding's `vlan`",
                                b.port,
                                vid_list(&vids)
                            ),
                        );
                        continue;
                    }
                },
            };
            if let Some(first) = seen.get(&(vid, b.ip)) {
                let msg = format!(
                    "{} in VLAN {vid} is already bound by {}",
                    b.ip,
                    self.sources.describe(first)
                );
                self.error(&format!("{key}.ip"), msg);
            } else {
                seen.insert((vid, b.ip), key.clone());
            }
            if let Some(claim) = macs.get(&(vid, b.mac))
                && guest != Some(claim.port)
            {
                let what = match claim.kind {
                    MacKindWord::Initial => "the initial MAC",
                    MacKindWord::Secure => "a secure MAC",
                };
                let msg = format!(
                    "MAC {} is {what} of port {:?} ({}) in VLAN {vid}; a binding of port {:?} cannot use it",
                    b.mac,
                    host.ports[claim.port].name,
                    self.sources.describe(&claim.key),
                    b.port
                );
                self.error(&format!("{key}.mac"), msg);
            }
        }
        let max = profile.switch.max_bindings;
        let count = host.static_bindings.len() as u64;
        if MAX_BINDINGS_RANGE.contains(&max) && count > max {
            let first_over = usize::try_from(max).unwrap_or(usize::MAX);
            let key = format!(
                "host.static_binding[{}]",
                poison.static_binding_file_index(first_over)
            );
            let msg = format!(
                "{count} static bindings, but the switch holds at most {max} bindings ({}); raise max_bindings or bind fewer",
                self.sources.describe("switch.max_bindings")
            );
            self.error(&key, msg);
        }
    }

    /// A group's port security, storm control and ACL bindings, on their own.
    fn group_features(&mut self, key: &str, g: &PortGroup, acls: &Acls, poison: &Poison) {
        let ps_key = format!("{key}.port_security");
        if let Some(ps) = &g.port_security {
            self.port_security_over(&ps_key, ps, Some(ps), poison.tables.contains(&ps_key));
        }
        let sc_key = format!("{key}.storm_control");
        if let Some(sc) = &g.storm_control {
            self.storm_control_own(&sc_key, sc, poison.tables.contains(&sc_key));
        }
        if let Some(t) = &g.dhcp_snooping {
            self.dhcp_table(&format!("{key}.dhcp_snooping"), t);
        }
        if let Some(t) = &g.arp_inspection {
            self.arp_table(&format!("{key}.arp_inspection"), t, acls);
        }
        if let Some(t) = &g.nd_inspection {
            self.nd_table(&format!("{key}.nd_inspection"), t);
        }
        if let Some(t) = &g.dhcpv6_guard {
            self.dhcpv6_table(&format!("{key}.dhcpv6_guard"), t);
        }
        let tables = Tables {
            ps: g.port_security.as_ref(),
            sc: g.storm_control.as_ref(),
            dhcp: g.dhcp_snooping.as_ref(),
            arp: g.arp_inspection.as_ref(),
        };
        if let Some((a, b)) = tables.recovery_conflict() {
            self.error(
                &format!("{key}.{}.recovery_secs", b.0),
                recovery_message(a, b),
            );
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
        acls: &Acls,
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
            self.port_security_over(&ps_key, ps, merged_ps.as_ref(), ps_poisoned);
        }
        let merged_sc = StormControlOverride::merge(gsc, p.storm_control.as_ref());
        if let Some(sc) = &p.storm_control {
            self.storm_control_port(&sc_key, sc, gsc, sc_poisoned);
        }
        if let Some(t) = &p.dhcp_snooping {
            self.dhcp_table(&format!("{key}.dhcp_snooping"), t);
        }
        if let Some(t) = &p.arp_inspection {
            self.arp_table(&format!("{key}.arp_inspection"), t, acls);
        }
        if let Some(t) = &p.nd_inspection {
            self.nd_table(&format!("{key}.nd_inspection"), t);
        }
        if let Some(t) = &p.dhcpv6_guard {
            self.dhcpv6_table(&format!("{key}.dhcpv6_guard"), t);
        }
        // The group's own conflict is reported at the group; a port that states a
        // table of its own is checked with the merged values.
        let merged_dhcp = DhcpSnoopingOverride::merge(
            group.and_then(|(_, g)| g.dhcp_snooping.as_ref()),
            p.dhcp_snooping.as_ref(),
        );
        let merged_arp = ArpInspectionOverride::merge(
            group.and_then(|(_, g)| g.arp_inspection.as_ref()),
            p.arp_inspection.as_ref(),
        );
        let merged = Tables {
            ps: merged_ps.as_ref(),
            sc: merged_sc.as_ref(),
            dhcp: merged_dhcp.as_ref(),
            arp: merged_arp.as_ref(),
        };
        // The port's own tables, and whether each states recovery_secs.
        let own = [
            (
                "port_security",
                p.port_security.map(|t| t.recovery_secs.is_some()),
            ),
            (
                "storm_control",
                p.storm_control.map(|t| t.recovery_secs.is_some()),
            ),
            (
                "dhcp_snooping",
                p.dhcp_snooping.map(|t| t.recovery_secs.is_some()),
            ),
            (
                "arp_inspection",
                p.arp_inspection.as_ref().map(|t| t.recovery_secs.is_some()),
            ),
        ];
        if own.iter().any(|(_, t)| t.is_some())
            && let Some((a, b)) = merged.recovery_conflict()
        {
            let at = match own.iter().find(|(_, t)| *t == Some(true)) {
                Some((table, _)) => format!("{key}.{table}.recovery_secs"),
                None => {
                    let table = own.iter().find(|(_, t)| t.is_some()).map_or("", |t| t.0);
                    format!("{key}.{table}")
                }
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

/// A feature table that states an err-disable recovery interval: (table name,
/// seconds).
type Recovery = (&'static str, u64);

/// The feature tables that can error-disable a port (a group's, or a port's merged
/// over its group's).
#[derive(Clone, Copy, Default)]
struct Tables<'a> {
    ps: Option<&'a PortSecurityOverride>,
    sc: Option<&'a StormControlOverride>,
    dhcp: Option<&'a DhcpSnoopingOverride>,
    arp: Option<&'a ArpInspectionOverride>,
}

impl Tables<'_> {
    /// The err-disable recovery intervals the features in force state, as (table,
    /// seconds), in table order.
    fn recoveries(&self) -> Vec<Recovery> {
        let ps = self
            .ps
            .and_then(PortSecurityOverride::resolve)
            .and_then(|r| r.recovery_secs);
        let sc = self
            .sc
            .filter(|s| s.is_active())
            .and_then(|s| s.recovery_secs);
        let dhcp = self
            .dhcp
            .filter(|d| d.enabled != Some(false))
            .and_then(|d| d.recovery_secs);
        let arp = self
            .arp
            .filter(|a| a.enabled != Some(false))
            .and_then(|a| a.recovery_secs);
        [
            ("port_security", ps),
            ("storm_control", sc),
            ("dhcp_snooping", dhcp),
            ("arp_inspection", arp),
        ]
        .into_iter()
        .filter_map(|(t, r)| r.map(|r| (t, r)))
        .collect()
    }

    /// Two features in force stating different err-disable recovery intervals: the
    /// first one stated, and the first that differs from it.
    fn recovery_conflict(&self) -> Option<(Recovery, Recovery)> {
        let all = self.recoveries();
        let first = *all.first()?;
        all.iter().find(|r| r.1 != first.1).map(|r| (first, *r))
    }
}

fn recovery_message(a: Recovery, b: Recovery) -> String {
    format!(
        "a port has one err-disable recovery interval, but {}.recovery_secs is {} and {}.recovery_secs is {}: state it in one table, or the same in each",
        a.0, a.1, b.0, b.1
    )
}

/// The features in force on a guest port of group `g`, on a switch with these
/// logical `uplinks`.
fn guest_features(g: &PortGroup, p: &HostPort, uplinks: &[String]) -> PortFeatures {
    let ps_table = PortSecurityOverride::merge(g.port_security.as_ref(), p.port_security.as_ref());
    let ps = ps_table.and_then(|m| m.resolve());
    let sc = StormControlOverride::merge(g.storm_control.as_ref(), p.storm_control.as_ref())
        .filter(StormControlOverride::is_active);
    let dhcp = DhcpSnoopingOverride::merge(g.dhcp_snooping.as_ref(), p.dhcp_snooping.as_ref());
    let arp = ArpInspectionOverride::merge(g.arp_inspection.as_ref(), p.arp_inspection.as_ref());
    let ipsg = IpSourceGuardOverride::merge(g.ip_source_guard.as_ref(), p.ip_source_guard.as_ref());
    let ra = RaGuardOverride::merge(g.ra_guard.as_ref(), p.ra_guard.as_ref());
    let nd = NdInspectionOverride::merge(g.nd_inspection.as_ref(), p.nd_inspection.as_ref());
    let ipsg6 =
        IpSourceGuardOverride::merge(g.ipv6_source_guard.as_ref(), p.ipv6_source_guard.as_ref());
    let dhcpv6 = Dhcpv6GuardOverride::merge(g.dhcpv6_guard.as_ref(), p.dhcpv6_guard.as_ref());
    let tables = Tables {
        ps: ps_table.as_ref(),
        sc: sc.as_ref(),
        dhcp: dhcp.as_ref(),
        arp: arp.as_ref(),
    };
    PortFeatures {
        port_security: ps.map(|r| port_security::spec(r, &p.secure_macs)),
        storm_control: sc.as_ref().map(storm_control::spec),
        mac_acl_in: AclRef::merge(g.mac_acl_in.as_ref(), p.mac_acl_in.as_ref()).map(str::to_owned),
        mac_acl_out: AclRef::merge(g.mac_acl_out.as_ref(), p.mac_acl_out.as_ref())
            .map(str::to_owned),
        errdisable_recovery_secs: tables.recoveries().first().map(|r| r.1),
        dhcp_snooping: dhcp.and_then(|d| d.resolve()),
        arp_inspection: arp.and_then(|a| a.resolve()),
        ip_source_guard: ipsg.and_then(|i| i.resolve()),
        ra_guard: ra.and_then(|r| r.resolve()),
        nd_inspection: nd.and_then(|n| n.resolve()),
        ipv6_source_guard: ipv6_source_guard::spec(ipsg6),
        dhcpv6_guard: dhcpv6.and_then(|d| d.resolve()),
        teaming: TeamingOverride::merge(g.teaming.as_ref(), p.teaming.as_ref())
            .map(|t| t.resolve(uplinks)),
    }
}

/// The mode of each first-hop feature on the switch-facing ports (uplinks, the
/// overlay port): `None` when no port group or guest port enables it.
#[derive(Clone, Copy, Default)]
struct LinkModes {
    dhcp: Option<EnforceMode>,
    arp: Option<EnforceMode>,
    ra: Option<EnforceMode>,
    nd: Option<EnforceMode>,
    dhcpv6: Option<EnforceMode>,
}

/// The trust part of a switch-facing port's features: DHCP snooping, ARP
/// inspection, RA guard, ND inspection and DHCPv6 guard, each in its mode when a
/// group or port enables it, trusted as `[uplink_policy]` says (trusted when there
/// is no `[uplink_policy]`). The uplinks and the overlay port share it.
fn link_trust(up: Option<&UplinkPolicy>, m: LinkModes) -> PortFeatures {
    let trusted = |f: fn(&UplinkPolicy) -> bool| up.is_none_or(f);
    PortFeatures {
        dhcp_snooping: m
            .dhcp
            .map(|mode| dhcp_snooping::uplink_spec(trusted(|u| u.dhcp_trusted), mode)),
        arp_inspection: m
            .arp
            .map(|mode| arp_inspection::uplink_spec(trusted(|u| u.arp_trusted), mode)),
        ra_guard: m
            .ra
            .map(|mode| ra_guard::uplink_spec(trusted(|u| u.ra_trusted), mode)),
        nd_inspection: m
            .nd
            .map(|mode| nd_inspection::uplink_spec(trusted(|u| u.nd_trusted), mode)),
        dhcpv6_guard: m
            .dhcpv6
            .map(|mode| dhcpv6_guard::uplink_spec(trusted(|u| u.dhcpv6_trusted), mode)),
        ..PortFeatures::default()
    }
}

/// The features in force on every uplink: the shared trust ([`link_trust`]), and
/// the uplinks' own storm control and MAC ACLs.
fn uplink_features(up: &UplinkPolicy, m: LinkModes) -> PortFeatures {
    let sc = up.storm_control.filter(StormControlOverride::is_active);
    PortFeatures {
        storm_control: sc.as_ref().map(storm_control::spec),
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
        ..link_trust(Some(up), m)
    }
}

/// The uplinks' mode for a feature that these ports and groups (`modes`: the mode
/// of each that enables it) run: enforce if any enforces, observe if all observe,
/// `None` if none enables it.
fn uplink_mode(modes: impl IntoIterator<Item = EnforceMode>) -> Option<EnforceMode> {
    modes.into_iter().reduce(|a, b| {
        if a == EnforceMode::Enforce || b == EnforceMode::Enforce {
            EnforceMode::Enforce
        } else {
            EnforceMode::Observe
        }
    })
}

fn uplink_vlan_mode(up: &UplinkPolicy) -> VlanMode {
    VlanMode::Trunk {
        allowed: vlan_set(&up.allowed_vlans),
        native: up.native_vlan,
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
            mac_acls: acls::mac_acl_specs(&profile.mac_acls),
            max_bindings: usize::try_from(profile.switch.max_bindings).unwrap_or(usize::MAX),
            host_table_size: portcullis_dataplane::DEFAULT_HOST_TABLE_SIZE,
            overlay: None,
            static_bindings: Vec::new(),
            arp_acls: acls::arp_acl_specs(&profile.arp_acls),
        },
        interfaces: Vec::new(),
        create_tap: Vec::new(),
        backends: Vec::new(),
        groups: Vec::new(),
        interface_keys: Vec::new(),
        vhost_user: Vec::new(),
    };
    // Guest ports first (the uplinks' features depend on them), placed after the
    // uplinks and the overlay port.
    let uplinks: &[String] = profile
        .uplink_policy
        .as_ref()
        .map_or(&[], |u| u.uplinks.as_slice());
    let mut guests = Vec::new();
    for (i, p) in host.ports.iter().enumerate() {
        let Some(g) = profile.port_groups.iter().find(|g| g.name == p.port_group) else {
            continue; // unreachable after check()
        };
        let spec = PortSpec {
            name: p.name.clone(),
            role: PortRole::Guest,
            vlan: vlans::mode(&g.vlan),
            security: vswitch_policy::spec(&g.security, Some(&p.security)),
            initial_mac: p.mac,
            features: guest_features(g, p, uplinks),
        };
        guests.push((spec, p, g, i));
    }
    let groups_dhcp = profile
        .port_groups
        .iter()
        .filter_map(|g| g.dhcp_snooping.as_ref()?.resolve());
    let ports_dhcp = guests.iter().filter_map(|g| g.0.features.dhcp_snooping);
    let groups_arp = profile
        .port_groups
        .iter()
        .filter_map(|g| g.arp_inspection.as_ref()?.resolve());
    let ports_arp = guests
        .iter()
        .filter_map(|g| g.0.features.arp_inspection.clone());
    let groups_ra = profile
        .port_groups
        .iter()
        .filter_map(|g| g.ra_guard.as_ref()?.resolve());
    let ports_ra = guests.iter().filter_map(|g| g.0.features.ra_guard);
    let groups_nd = profile
        .port_groups
        .iter()
        .filter_map(|g| g.nd_inspection.as_ref()?.resolve());
    let ports_nd = guests.iter().filter_map(|g| g.0.features.nd_inspection);
    let groups_v6 = profile
        .port_groups
        .iter()
        .filter_map(|g| g.dhcpv6_guard.as_ref()?.resolve());
    let ports_v6 = guests.iter().filter_map(|g| g.0.features.dhcpv6_guard);
    let modes = LinkModes {
        dhcp: uplink_mode(groups_dhcp.chain(ports_dhcp).map(|d| d.mode)),
        arp: uplink_mode(groups_arp.chain(ports_arp).map(|a| a.mode)),
        ra: uplink_mode(groups_ra.chain(ports_ra).map(|r| r.mode)),
        nd: uplink_mode(groups_nd.chain(ports_nd).map(|n| n.mode)),
        dhcpv6: uplink_mode(groups_v6.chain(ports_v6).map(|d| d.mode)),
    };
    if let Some(up) = &profile.uplink_policy {
        for u in &up.uplinks {
            let binding = host.uplinks.iter().find(|b| &b.uplink == u);
            let interface = binding.map(|b| b.interface.clone()).unwrap_or_default();
            out.spec.ports.push(PortSpec {
                name: u.clone(),
                role: PortRole::Uplink,
                vlan: uplink_vlan_mode(up),
                security: SecurityPolicy::default(),
                initial_mac: None,
                features: uplink_features(up, modes),
            });
            out.interfaces.push(interface);
            out.create_tap.push(false);
            out.vhost_user.push(None);
            out.backends
                .push(binding.map(|b| b.backend).unwrap_or_default());
            out.groups.push(None);
            out.interface_keys.push(join_key("host.uplinks", u));
        }
    }
    // The overlay port, right after the uplinks: a trunk of the mapped VLANs,
    // trusted like the uplinks (a switch-to-switch link whose far end ran its
    // guests' checks under the same profile), without their storm control or ACLs.
    if let (Some(o), Some(h)) = (&profile.overlay, &host.overlay) {
        out.spec.overlay = Some(overlay::spec(o, h));
        out.spec.ports.push(PortSpec {
            name: overlay::PORT_NAME.to_owned(),
            role: PortRole::Overlay,
            vlan: VlanMode::Trunk {
                allowed: VlanSet::from_vids(o.vnis.iter().map(|(v, _)| *v)),
                native: None,
            },
            security: SecurityPolicy::default(),
            initial_mac: None,
            features: link_trust(profile.uplink_policy.as_ref(), modes),
        });
        // No NIC of its own: the underlay interface when one is named, for the
        // runtime to find (and to check that it exists).
        out.interfaces.push(h.interface.clone().unwrap_or_default());
        out.create_tap.push(false);
        out.vhost_user.push(None);
        out.backends.push(Backend::default());
        out.groups.push(None);
        out.interface_keys.push(
            if h.interface.is_some() {
                "host.overlay.interface"
            } else {
                "host.overlay.local_ip"
            }
            .to_owned(),
        );
    }
    for (spec, p, g, i) in guests {
        out.spec.ports.push(spec);
        out.interfaces.push(p.interface.clone());
        out.create_tap.push(p.tap);
        out.backends.push(p.backend);
        out.groups.push(Some(g.name.clone()));
        out.interface_keys.push(match p.vhost_user {
            Some(_) => format!("host.port[{i}].vhost_user.socket"),
            None => format!("host.port[{i}].interface"),
        });
        out.vhost_user.push(p.vhost_user.clone());
    }
    let vlans: Vec<(&str, &VlanMode)> = out
        .spec
        .ports
        .iter()
        .map(|p| (p.name.as_str(), &p.vlan))
        .collect();
    out.spec.static_bindings = static_bindings::spec(&host.static_bindings, &vlans);
    out
}
