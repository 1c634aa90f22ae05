//! The compiled configuration ([`CompiledConfig`]: the spec and, per port, its
//! interface, TAP, backend, group and key), and restoring into it the sticky
//! secure MACs the daemon persisted: which still fit, and why the others do not.
//!
//! Invariant: a spec that passed [`portcullis_dataplane::SwitchSpec::check`] still
//! passes it after [`CompiledConfig::restore_sticky`]; a MAC is restored to one
//! port only, never past `max_macs` or the MAC table; the per-port vectors have
//! one entry per `spec.ports` entry, in its order.

use super::features::Backend;
use portcullis_dataplane::{MacAddr, PortRole, SwitchSpec};
use std::collections::{HashMap, HashSet};

/// What the runtime needs: the data-plane spec, and for each of its ports (same
/// order as `spec.ports`) the Linux interface, the port group and the key that
/// names the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompiledConfig {
    /// Ports: the uplinks in `uplink_policy.uplinks` order, then the guest ports in
    /// `[[host.port]]` order.
    pub spec: SwitchSpec,
    /// The interface each port attaches to.
    pub interfaces: Vec<String>,
    /// For each port: create the interface as a persistent TAP if it is missing.
    pub create_tap: Vec<bool>,
    /// For each port: the I/O backend asked for (`backend`, `[host.uplink_backend]`).
    pub backends: Vec<Backend>,
    /// The port group of each port; `None` for uplinks.
    pub groups: Vec<Option<String>>,
    /// The dotted key that names each interface (`host.uplinks.uplink1`,
    /// `host.port[3].interface`), for [`Config::error_at`] when the daemon finds
    /// that an interface does not exist.
    pub interface_keys: Vec<String>,
    /// For each port: its vhost-user socket (`vhost_user`), instead of an interface
    /// (`interfaces` holds "" for it).
    pub vhost_user: Vec<Option<super::features::VhostUser>>,
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
    /// [`SwitchSpec::check`](portcullis_dataplane::SwitchSpec::check) still passes it afterwards.
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
