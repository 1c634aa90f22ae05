//! Stage 1 of validation: each value as written → its domain type (VLAN IDs and
//! ranges, MAC addresses, policy words, numeric bounds). Every bad value is an
//! error; all of them are collected. Cross-references are checked in
//! [`super::compile`]. This is the assembly of stage 1: it walks the profile and
//! the host binding and calls each feature's conversion (`impl Converter` in
//! `features/`, helpers in `value.rs`) in file order.

use super::features::*;
use super::keys::join_key;
use super::management::Management;
use super::model::*;
use super::raw::*;
use super::value::*;

impl<'a> Converter<'a> {
    pub fn profile(&mut self, raw: RawProfileFile) -> Profile {
        let switch = self.switch(raw.switch);
        if raw.static_binding.is_some() {
            self.error("static_binding", static_bindings::IN_PROFILE);
        }
        if raw.management.is_some() {
            self.error("management", super::management::IN_PROFILE);
        }
        let uplink_policy = raw.uplink_policy.map(|u| {
            // Per-port features that have no place on the uplinks, refused by name.
            let stated = [
                ("port_security", u.port_security.is_some()),
                ("dhcp_snooping", u.dhcp_snooping.is_some()),
                ("arp_inspection", u.arp_inspection.is_some()),
                ("ip_source_guard", u.ip_source_guard.is_some()),
                ("ra_guard", u.ra_guard.is_some()),
                ("nd_inspection", u.nd_inspection.is_some()),
                ("ipv6_source_guard", u.ipv6_source_guard.is_some()),
                ("dhcpv6_guard", u.dhcpv6_guard.is_some()),
                ("teaming", u.teaming.is_some()),
            ];
            let why = [
                port_security::ON_UPLINKS,
                dhcp_snooping::ON_UPLINKS,
                arp_inspection::ON_UPLINKS,
                ip_source_guard::ON_UPLINKS,
                ra_guard::ON_UPLINKS,
                nd_inspection::ON_UPLINKS,
                ipv6_source_guard::ON_UPLINKS,
                dhcpv6_guard::ON_UPLINKS,
                teaming::ON_UPLINKS,
            ];
            for ((table, _), message) in stated.into_iter().zip(why).filter(|((_, s), _)| *s) {
                self.error(&format!("uplink_policy.{table}"), message);
            }
            let vlans_before = self.errors.len();
            let allowed_vlans = self.vlan_list("uplink_policy.allowed_vlans", &u.allowed_vlans);
            let native_vlan = u
                .native_vlan
                .and_then(|v| self.vid("uplink_policy.native_vlan", v));
            if self.errors.len() != vlans_before {
                self.poison.uplink_vlans = true;
            }
            UplinkPolicy {
                uplinks: u.uplinks,
                allowed_vlans,
                native_vlan,
                storm_control: self
                    .storm_control("uplink_policy.storm_control", u.storm_control.as_ref()),
                mac_acl_in: u.mac_acl_in.map(acl_ref),
                mac_acl_out: u.mac_acl_out.map(acl_ref),
                dhcp_trusted: u.dhcp_trusted.unwrap_or(true),
                arp_trusted: u.arp_trusted.unwrap_or(true),
                ra_trusted: u.ra_trusted.unwrap_or(true),
                nd_trusted: u.nd_trusted.unwrap_or(true),
                dhcpv6_trusted: u.dhcpv6_trusted.unwrap_or(true),
            }
        });
        let port_groups = raw
            .port_group
            .into_iter()
            .enumerate()
            .map(|(i, g)| self.port_group(i, g))
            .collect();
        let mac_acls = raw
            .mac_acl
            .into_iter()
            .enumerate()
            .map(|(i, a)| self.mac_acl(i, a))
            .collect();
        let arp_acls = raw
            .arp_acl
            .into_iter()
            .enumerate()
            .map(|(i, a)| self.arp_acl(i, a))
            .collect();
        let overlay = raw.overlay.map(|o| self.overlay(o));
        Profile {
            switch,
            uplink_policy,
            port_groups,
            mac_acls,
            arp_acls,
            overlay,
        }
    }

    fn port_group(&mut self, i: usize, g: RawPortGroup) -> PortGroup {
        let key = format!("port_group[{i}]");
        let errors_before = self.errors.len();
        let vlan = self.group_vlan(&key, &g.name, g.vlan, g.vlans, g.native_vlan);
        if self.errors.len() != errors_before {
            self.poison.groups.insert(g.name.clone());
        }
        PortGroup {
            security: self.security(&format!("{key}.security"), &g.security),
            port_security: self
                .port_security(&format!("{key}.port_security"), g.port_security.as_ref()),
            storm_control: self
                .storm_control(&format!("{key}.storm_control"), g.storm_control.as_ref()),
            dhcp_snooping: self
                .dhcp_snooping(&format!("{key}.dhcp_snooping"), g.dhcp_snooping.as_ref()),
            arp_inspection: self
                .arp_inspection(&format!("{key}.arp_inspection"), g.arp_inspection.as_ref()),
            ip_source_guard: self.ip_source_guard(
                &format!("{key}.ip_source_guard"),
                g.ip_source_guard.as_ref(),
            ),
            ra_guard: self.ra_guard(&format!("{key}.ra_guard"), g.ra_guard.as_ref()),
            nd_inspection: self
                .nd_inspection(&format!("{key}.nd_inspection"), g.nd_inspection.as_ref()),
            ipv6_source_guard: self.ip_source_guard(
                &format!("{key}.ipv6_source_guard"),
                g.ipv6_source_guard.as_ref(),
            ),
            dhcpv6_guard: self
                .dhcpv6_guard(&format!("{key}.dhcpv6_guard"), g.dhcpv6_guard.as_ref()),
            teaming: self.teaming(&format!("{key}.teaming"), g.teaming.as_ref()),
            mac_acl_in: g.mac_acl_in.map(acl_ref),
            mac_acl_out: g.mac_acl_out.map(acl_ref),
            name: g.name,
            // Placeholder for an invalid setting; the group is poisoned.
            vlan: vlan.unwrap_or(GroupVlan::Trunk {
                vlans: Vec::new(),
                native_vlan: None,
            }),
        }
    }

    /// The host binding, `host.uplinks` in file order.
    pub fn host(&mut self, raw: RawHost) -> HostBinding {
        let mut uplinks: Vec<UplinkBinding> = raw
            .uplinks
            .0
            .into_iter()
            .map(|(uplink, interface)| UplinkBinding {
                uplink,
                interface,
                backend: Backend::default(),
            })
            .collect();
        // Serde hands table entries over sorted; restore the order of the file.
        let file = self.sources.file_of("host");
        uplinks.sort_by_key(|u| {
            file.offset_exact(&join_key("host.uplinks", &u.uplink))
                .unwrap_or(usize::MAX)
        });
        for (uplink, name) in raw.uplink_backend.0 {
            let key = join_key("host.uplink_backend", &uplink);
            let Some(backend) = self.backend(&key, &name) else {
                continue;
            };
            match uplinks.iter_mut().find(|u| u.uplink == uplink) {
                Some(u) => u.backend = backend,
                None => {
                    let known: Vec<&str> = uplinks.iter().map(|u| u.uplink.as_str()).collect();
                    self.error(
                        &key,
                        format!(
                            "{uplink:?} has no NIC under [host.uplinks] (uplinks there: {known:?}): a backend is set per bound uplink"
                        ),
                    );
                }
            }
        }
        let ports = raw
            .port
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let key = format!("host.port[{i}]");
                let vhost_user = match (p.interface.is_some(), p.vhost_user) {
                    (true, Some(_)) => {
                        self.error(
                            &format!("{key}.vhost_user"),
                            "a port has either `interface` or `vhost_user`, not both",
                        );
                        None
                    }
                    (false, None) => {
                        self.error(
                            &format!("{key}.interface"),
                            "missing field `interface` (a TAP, veth or NIC), or `vhost_user` (a socket)",
                        );
                        None
                    }
                    (_, Some(v)) => {
                        if p.tap {
                            self.error(
                                &format!("{key}.tap"),
                                "a vhost-user port has no TAP: `tap` takes an interface",
                            );
                        }
                        if p.backend.is_some() {
                            self.error(
                                &format!("{key}.backend"),
                                "a vhost-user port has no I/O backend to choose: `backend` takes an interface",
                            );
                        }
                        Some(self.vhost_user(&format!("{key}.vhost_user"), v))
                    }
                    (true, None) => None,
                };
                let backend = match &p.backend {
                    Some(b) => self
                        .backend(&format!("{key}.backend"), b)
                        .unwrap_or_default(),
                    None => Backend::default(),
                };
                let mut secure_macs = Vec::new();
                let mut index = Vec::new();
                for (j, m) in p.secure_macs.iter().enumerate() {
                    if let Some(m) = self.mac(&format!("{key}.secure_macs[{j}]"), m) {
                        secure_macs.push(m);
                        index.push(j);
                    }
                }
                if index.len() != p.secure_macs.len() {
                    self.poison.secure_mac_index.insert(i, index);
                }
                HostPort {
                    mac: p.mac.and_then(|m| self.mac(&format!("{key}.mac"), &m)),
                    security: self.security(&format!("{key}.security"), &p.security),
                    secure_macs,
                    port_security: self
                        .port_security(&format!("{key}.port_security"), p.port_security.as_ref()),
                    storm_control: self
                        .storm_control(&format!("{key}.storm_control"), p.storm_control.as_ref()),
                    dhcp_snooping: self
                        .dhcp_snooping(&format!("{key}.dhcp_snooping"), p.dhcp_snooping.as_ref()),
                    arp_inspection: self.arp_inspection(
                        &format!("{key}.arp_inspection"),
                        p.arp_inspection.as_ref(),
                    ),
                    ip_source_guard: self.ip_source_guard(
                        &format!("{key}.ip_source_guard"),
                        p.ip_source_guard.as_ref(),
                    ),
                    ra_guard: self.ra_guard(&format!("{key}.ra_guard"), p.ra_guard.as_ref()),
                    nd_inspection: self
                        .nd_inspection(&format!("{key}.nd_inspection"), p.nd_inspection.as_ref()),
                    ipv6_source_guard: self.ip_source_guard(
                        &format!("{key}.ipv6_source_guard"),
                        p.ipv6_source_guard.as_ref(),
                    ),
                    dhcpv6_guard: self
                        .dhcpv6_guard(&format!("{key}.dhcpv6_guard"), p.dhcpv6_guard.as_ref()),
                    teaming: self.teaming(&format!("{key}.teaming"), p.teaming.as_ref()),
                    mac_acl_in: p.mac_acl_in.map(acl_ref),
                    mac_acl_out: p.mac_acl_out.map(acl_ref),
                    name: p.name,
                    interface: p.interface.unwrap_or_default(),
                    vhost_user,
                    port_group: p.port_group,
                    tap: p.tap,
                    backend,
                }
            })
            .collect();
        let static_bindings = self.static_bindings(&raw.static_binding);
        let management = match raw.management {
            Some(m) => self.management(m),
            None => Management::default(),
        };
        let overlay = raw.overlay.map(|o| self.host_overlay(o));
        HostBinding {
            uplinks,
            ports,
            static_bindings,
            management,
            bridge_netdev: raw.bridge_netdev,
            overlay,
        }
    }
}

#[cfg(test)]
mod tests {}
