//! The switch specification the data plane runs: a validated, compiled form of the
//! profile and host binding (the control crate builds it from TOML). Nothing here
//! refers to files or interfaces' kernel state; ports are named and numbered.
//!
//! Invariant: a [`SwitchSpec`] accepted by [`SwitchSpec::check`] can be loaded into a
//! [`crate::Switch`] without further errors.

use crate::types::{MAX_PORTS, MacAddr, Vid, VlanSet};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One vSwitch security policy setting (VMware's vSwitch security policy).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Allow. Never the default.
    Accept,
    /// Refuse: the hardened default.
    #[default]
    Reject,
}

/// The three vSwitch security policies of DESIGN.md §3.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Default, Hash)]
pub struct SecurityPolicy {
    /// reject: a port receives only frames to its effective MAC, broadcast and
    /// multicast; accept: also a copy of every frame of its VLAN.
    pub promiscuous: Policy,
    /// reject: while the effective MAC differs from the initial MAC, frames to the
    /// port are dropped; accept: a new source MAC is taken as a MAC change.
    pub mac_changes: Policy,
    /// reject: frames whose source MAC differs from the effective MAC are dropped.
    pub forged_transmits: Policy,
}

/// How a port carries VLANs (IEEE 802.1Q).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum VlanMode {
    /// Untagged frames of one VLAN. A tagged frame in is dropped (priority-tagged
    /// frames, VID 0, are taken as untagged).
    Access(Vid),
    /// Tagged frames of the allowed VLANs; untagged frames belong to the native
    /// VLAN if there is one and are dropped otherwise. Frames of the native VLAN
    /// leave untagged.
    Trunk {
        allowed: VlanSet,
        native: Option<Vid>,
    },
}

impl VlanMode {
    /// Whether the port carries frames of `vid`.
    #[inline]
    pub fn carries(&self, vid: Vid) -> bool {
        match self {
            VlanMode::Access(v) => *v == vid,
            VlanMode::Trunk { allowed, native } => allowed.contains(vid) || *native == Some(vid),
        }
    }
    /// The VLAN whose frames leave this port untagged, if any.
    #[inline]
    pub fn untagged_vid(&self) -> Option<Vid> {
        match self {
            VlanMode::Access(v) => Some(*v),
            VlanMode::Trunk { native, .. } => *native,
        }
    }
    /// The VLANs the port carries, ascending, without allocating.
    pub fn iter_vids(&self) -> impl Iterator<Item = Vid> + Clone + '_ {
        let (access, allowed, native) = match self {
            VlanMode::Access(v) => (Some(*v), None, None),
            VlanMode::Trunk { allowed, native } => (
                None,
                Some(allowed),
                native.filter(|n| !allowed.contains(*n)),
            ),
        };
        let mut native = native;
        let mut allowed = allowed.into_iter().flat_map(|a| a.iter()).peekable();
        let mut access = access;
        std::iter::from_fn(move || {
            if let Some(v) = access.take() {
                return Some(v);
            }
            // Merge the native VLAN into the ascending allowed list.
            match (native, allowed.peek()) {
                (Some(n), Some(a)) if n < *a => native.take(),
                (Some(_), None) => native.take(),
                _ => allowed.next(),
            }
        })
    }

    /// The VLANs the port carries, ascending (allocates: control path).
    pub fn vids(&self) -> Vec<Vid> {
        self.iter_vids().collect()
    }
}

/// Whether a port faces a guest or the physical network.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PortRole {
    /// A guest NIC (TAP, veth). Its MACs are known, not learned from the network.
    Guest,
    /// A logical uplink bound to a host NIC: always an 802.1Q trunk.
    Uplink,
}

/// One port of the switch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortSpec {
    pub name: String,
    pub role: PortRole,
    pub vlan: VlanMode,
    /// The security policy in force (group policy with the port's overrides applied).
    /// Ignored on uplinks.
    pub security: SecurityPolicy,
    /// The guest's initial MAC from the VM configuration; `None` → learned from the
    /// first valid frame the guest sends.
    pub initial_mac: Option<MacAddr>,
}

/// The whole switch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SwitchSpec {
    pub name: String,
    /// Capacity of the MAC table (entries).
    pub mac_table_size: usize,
    /// Idle time after which a learned (uplink-side) MAC table entry expires.
    pub mac_aging_secs: u64,
    pub ports: Vec<PortSpec>,
}

/// Why a switch specification cannot run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SpecError {
    TooManyPorts(usize),
    EmptyMacTable,
    DuplicatePortName(String),
    /// Two guest ports claim one initial MAC in one VLAN.
    DuplicateMac {
        mac: MacAddr,
        first: String,
        second: String,
    },
    /// An uplink configured as an access port.
    UplinkNotTrunk(String),
    /// More configured MACs than the MAC table holds.
    MacTableTooSmall {
        needed: usize,
        size: usize,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::TooManyPorts(n) => write!(
                f,
                "{n} ports configured; the switch holds at most {MAX_PORTS}"
            ),
            SpecError::EmptyMacTable => f.write_str("mac_table_size must be at least 1"),
            SpecError::DuplicatePortName(n) => write!(f, "port name {n:?} is used twice"),
            SpecError::DuplicateMac { mac, first, second } => {
                write!(
                    f,
                    "ports {first:?} and {second:?} both claim MAC {mac} in one VLAN"
                )
            }
            SpecError::UplinkNotTrunk(n) => write!(f, "uplink {n:?} must be an 802.1Q trunk"),
            SpecError::MacTableTooSmall { needed, size } => {
                write!(
                    f,
                    "{needed} configured MACs do not fit a MAC table of {size} entries"
                )
            }
        }
    }
}

impl std::error::Error for SpecError {}

impl SwitchSpec {
    /// Checks the invariants the data plane relies on.
    pub fn check(&self) -> Result<(), SpecError> {
        if self.ports.len() > MAX_PORTS {
            return Err(SpecError::TooManyPorts(self.ports.len()));
        }
        if self.mac_table_size == 0 {
            return Err(SpecError::EmptyMacTable);
        }
        let mut names = std::collections::HashSet::new();
        let mut macs: std::collections::HashMap<(u16, MacAddr), &str> = Default::default();
        for p in &self.ports {
            if !names.insert(p.name.as_str()) {
                return Err(SpecError::DuplicatePortName(p.name.clone()));
            }
            if p.role == PortRole::Uplink && matches!(p.vlan, VlanMode::Access(_)) {
                return Err(SpecError::UplinkNotTrunk(p.name.clone()));
            }
            if let (PortRole::Guest, Some(mac)) = (p.role, p.initial_mac) {
                for vid in p.vlan.vids() {
                    if let Some(first) = macs.insert((vid.get(), mac), &p.name) {
                        return Err(SpecError::DuplicateMac {
                            mac,
                            first: first.to_string(),
                            second: p.name.clone(),
                        });
                    }
                }
            }
        }
        if macs.len() > self.mac_table_size {
            return Err(SpecError::MacTableTooSmall {
                needed: macs.len(),
                size: self.mac_table_size,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }

    #[test]
    fn vids_merge_the_native_vlan_in_order() {
        let t = VlanMode::Trunk {
            allowed: VlanSet::from_vids([vid(10), vid(4094), vid(64)]),
            native: Some(vid(20)),
        };
        assert_eq!(t.vids(), vec![vid(10), vid(20), vid(64), vid(4094)]);
        let t = VlanMode::Trunk {
            allowed: VlanSet::from_vids([vid(10)]),
            native: Some(vid(10)),
        };
        assert_eq!(t.vids(), vec![vid(10)], "native already allowed: once");
        let t = VlanMode::Trunk {
            allowed: VlanSet::default(),
            native: Some(vid(1)),
        };
        assert_eq!(t.vids(), vec![vid(1)]);
        let t = VlanMode::Trunk {
            allowed: VlanSet::from_vids([vid(1), vid(2)]),
            native: Some(vid(3)),
        };
        assert_eq!(t.vids(), vec![vid(1), vid(2), vid(3)]);
        assert_eq!(VlanMode::Access(vid(7)).vids(), vec![vid(7)]);
    }
}
