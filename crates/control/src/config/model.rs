//! The validated configuration model: the profile and the host binding, in the
//! shape the user wrote them (so they can be shown and diffed), with every value
//! in its domain type.

use portcullis_dataplane::{MacAddr, Policy, SecurityPolicy, Vid, VlanSet};
use std::fmt;

/// Default of `switch.mac_table_size`.
pub const DEFAULT_MAC_TABLE_SIZE: u64 = 65_536;
/// Bounds of `switch.mac_table_size`.
pub const MAC_TABLE_SIZE_RANGE: std::ops::RangeInclusive<u64> = 1..=1_048_576;
/// Default of `switch.mac_aging_secs`.
pub const DEFAULT_MAC_AGING_SECS: u64 = 300;
/// Bounds of `switch.mac_aging_secs`.
pub const MAC_AGING_SECS_RANGE: std::ops::RangeInclusive<u64> = 10..=1_000_000;
/// The longest switch, uplink, port group or port name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The longest Linux interface name, in bytes (IFNAMSIZ 16 less the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// The golden, host-independent part: `[switch]`, `[uplink_policy]`, `[[port_group]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub switch: SwitchSettings,
    /// `None` when the profile has no `[uplink_policy]` (a host-only switch).
    pub uplink_policy: Option<UplinkPolicy>,
    /// In file order.
    pub port_groups: Vec<PortGroup>,
}

/// `[switch]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchSettings {
    pub name: String,
    pub mac_table_size: u64,
    pub mac_aging_secs: u64,
}

/// `[uplink_policy]`: every logical uplink is an 802.1Q trunk with this policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkPolicy {
    /// Logical uplink names, in order; the spec's uplink ports follow this order.
    pub uplinks: Vec<String>,
    pub allowed_vlans: Vec<VlanRange>,
    pub native_vlan: Option<Vid>,
}

/// `[[port_group]]`: where policy lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGroup {
    pub name: String,
    pub vlan: GroupVlan,
    /// The group's security policy; unset settings are `reject`.
    pub security: SecurityOverride,
}

/// How a port group's ports carry VLANs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GroupVlan {
    /// `vlan = N`: untagged frames of one VLAN.
    Access(Vid),
    /// `vlans = [...]` (+ `native_vlan`): a guest-tagging trunk (VGT).
    Trunk {
        vlans: Vec<VlanRange>,
        native_vlan: Option<Vid>,
    },
}

/// An inclusive VLAN range as written: `10` is `10-10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanRange {
    pub first: Vid,
    pub last: Vid,
}

impl VlanRange {
    pub fn single(v: Vid) -> VlanRange {
        VlanRange { first: v, last: v }
    }
    /// The VLANs of the range; empty if `first > last`.
    pub fn vids(&self) -> impl Iterator<Item = Vid> + use<> {
        (self.first.get()..=self.last.get()).filter_map(Vid::new)
    }
}

impl fmt::Display for VlanRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The set of VLANs in `ranges`.
pub fn vlan_set(ranges: &[VlanRange]) -> VlanSet {
    VlanSet::from_vids(ranges.iter().flat_map(VlanRange::vids))
}

/// A partial security policy: the settings a group or port states. Unstated
/// settings come from the level above (port ← group ← `reject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct SecurityOverride {
    pub promiscuous: Option<Policy>,
    pub mac_changes: Option<Policy>,
    pub forged_transmits: Option<Policy>,
}

impl SecurityOverride {
    /// `base` with the stated settings replaced.
    pub fn apply(&self, base: SecurityPolicy) -> SecurityPolicy {
        SecurityPolicy {
            promiscuous: self.promiscuous.unwrap_or(base.promiscuous),
            mac_changes: self.mac_changes.unwrap_or(base.mac_changes),
            forged_transmits: self.forged_transmits.unwrap_or(base.forged_transmits),
        }
    }
    pub fn is_empty(&self) -> bool {
        *self == SecurityOverride::default()
    }
}

/// The host-specific part: `[host.uplinks]` and `[[host.port]]`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HostBinding {
    /// In file order.
    pub uplinks: Vec<UplinkBinding>,
    /// In file order; the spec's guest ports follow this order.
    pub ports: Vec<HostPort>,
}

/// One `[host.uplinks]` entry: `uplink = "interface"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkBinding {
    pub uplink: String,
    pub interface: String,
}

/// One `[[host.port]]`: a guest NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub name: String,
    /// The Linux interface (TAP, veth) the port attaches to.
    pub interface: String,
    pub port_group: String,
    /// The guest's initial MAC; `None` → learned from its first frame.
    pub mac: Option<MacAddr>,
    /// Per-port overrides of the group's security policy.
    pub security: SecurityOverride,
    /// The switch creates `interface` as a persistent TAP device when it does not
    /// exist (for QEMU's `-netdev tap,ifname=…,script=no`).
    pub tap: bool,
}
