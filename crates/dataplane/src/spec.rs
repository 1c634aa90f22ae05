//! The switch specification the data plane runs: a validated, compiled form of the
//! profile and host binding (the control crate builds it from TOML). Nothing here
//! refers to files or interfaces' kernel state; ports are named and numbered.
//!
//! Invariant: a [`SwitchSpec`] accepted by [`SwitchSpec::check`] can be loaded into a
//! [`crate::Switch`] without further errors.

pub use crate::overlay::{OverlayPeer, OverlaySpec};
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
    /// The VXLAN overlay to the other hosts (`overlay.rs`): a trunk of the VLANs
    /// mapped to VNIs; at most one per switch.
    Overlay,
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
    /// The Layer-2 security features in force on the port (group settings with the
    /// port's overrides applied). Later features add fields here, with defaults.
    pub features: PortFeatures,
}

/// Per-port security features beyond the vSwitch policy (Nexus-1000V class).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct PortFeatures {
    pub port_security: Option<PortSecuritySpec>,
    pub storm_control: Option<StormControlSpec>,
    /// Name of the MAC ACL applied to frames the port receives (from its guest or
    /// the network).
    pub mac_acl_in: Option<String>,
    /// Name of the MAC ACL applied to frames the port sends.
    pub mac_acl_out: Option<String>,
    /// An error-disabled port recovers by itself after this long; `None`: only by
    /// command (`portcullis port recover`).
    pub errdisable_recovery_secs: Option<u64>,
    /// DHCP snooping on this port (`None`: snooping is not enabled on it).
    pub dhcp_snooping: Option<DhcpSnoopingSpec>,
    /// Dynamic ARP inspection on this port.
    pub arp_inspection: Option<ArpInspectionSpec>,
    /// IP Source Guard on this port.
    pub ip_source_guard: Option<IpSourceGuardSpec>,
    /// IPv6 RA guard on this port (`None`: off).
    pub ra_guard: Option<RaGuardSpec>,
    /// ND inspection and FCFS-SAVI on this port (`None`: off).
    pub nd_inspection: Option<NdInspectionSpec>,
    /// IPv6 Source Guard on this port (`None`: off).
    pub ipv6_source_guard: Option<Ipv6SourceGuardSpec>,
    /// DHCPv6 guard and snooping on this port (`None`: not enabled on it).
    pub dhcpv6_guard: Option<Dhcpv6GuardSpec>,
    /// NIC teaming: which uplink the port's traffic leaves by (`None`:
    /// originating-port over every uplink, failback on).
    pub teaming: Option<TeamingSpec>,
}

/// How a guest port's traffic is spread over the uplinks (vSphere teaming policies).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "kebab-case")]
pub enum TeamingPolicy {
    /// By port: each port is pinned to one uplink (port id modulo the uplinks up).
    #[default]
    OriginatingPort,
    /// By the frame's source MAC.
    SourceMacHash,
    /// By source and destination IP (IPv4/IPv6); other frames by source MAC. Needs
    /// a static EtherChannel upstream: broadcasts are accepted on every uplink.
    IpHash,
    /// The first uplink that is up in `active` order, else in `standby` order.
    ExplicitFailover,
}

/// A port group's teaming.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TeamingSpec {
    pub policy: TeamingPolicy,
    /// Uplinks (by name) the traffic uses while they are up.
    pub active: Vec<String>,
    /// Uplinks used only when no active one is up.
    pub standby: Vec<String>,
    /// When a failed active uplink returns, move the traffic back to it.
    pub failback: bool,
}

/// Enforce a feature, or only count and report what it would drop (DESIGN.md §3).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum EnforceMode {
    #[default]
    Enforce,
    Observe,
}

/// DHCP option 82 (relay agent information, RFC 3046) handling.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Option82 {
    /// Leave messages as they are.
    #[default]
    Keep,
    /// Insert circuit-id (switch/port) and remote-id (switch) into client messages
    /// from untrusted ports; strip it from server messages to them.
    Insert,
}

/// DHCP snooping on a port (Cisco `ip dhcp snooping`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DhcpSnoopingSpec {
    /// Trusted ports may carry server messages and are not policed.
    pub trusted: bool,
    /// DHCP messages per second an untrusted port may send; above it the port is
    /// error-disabled. `None`: no limit.
    pub rate_limit_pps: Option<u32>,
    pub option82: Option82,
    /// Drop client messages from untrusted ports that already carry option 82.
    pub drop_untrusted_option82: bool,
    pub mode: EnforceMode,
}

/// Dynamic ARP inspection on a port (Cisco `ip arp inspection`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ArpInspectionSpec {
    pub trusted: bool,
    /// Ethernet source = ARP sender MAC.
    pub validate_src_mac: bool,
    /// Replies: Ethernet destination = ARP target MAC.
    pub validate_dst_mac: bool,
    /// No 0.0.0.0 / broadcast / multicast sender (or reply target).
    pub validate_ip: bool,
    /// ARP messages per second (1 s burst); above it the port is error-disabled.
    pub rate_limit_pps: Option<u32>,
    /// An ARP ACL checked before the bindings.
    pub acl: Option<String>,
    pub mode: EnforceMode,
}

/// What IP Source Guard checks on an untrusted port.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum SourceGuard {
    /// The source IPv4 address must be bound to the port.
    Ip,
    /// Source IPv4 address and source MAC must match a binding of the port.
    IpMac,
}

/// IP Source Guard on a port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IpSourceGuardSpec {
    pub check: SourceGuard,
    pub mode: EnforceMode,
}

/// IPv6 RA guard on a port (Cisco `ipv6 nd raguard`, RFC 6105 with RFC 7113).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RaGuardSpec {
    /// A router port: its Router Advertisements and Redirects pass, unchecked.
    pub trusted: bool,
    pub mode: EnforceMode,
}

/// ND inspection and SAVI for SLAAC on a port (RFC 6620 FCFS-SAVI, RFC 4861;
/// `stages/nd_inspection.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NdInspectionSpec {
    /// A router (or uplink) port: not inspected; its ND sources are gleaned.
    pub trusted: bool,
    /// Nd bindings the port may hold at once; a new one beyond is refused.
    pub max_addresses: u16,
    /// ND messages (RS, NS, NA) per second an untrusted port may send; above it
    /// the port is error-disabled (enforce mode). `None`: no limit.
    pub rate_limit_pps: Option<u32>,
    pub mode: EnforceMode,
    /// An Nd binding ends this long after it was made or last refreshed.
    pub binding_lifetime_secs: u32,
}

/// IPv6 Source Guard on a port (`stages/ipv6_source_guard.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ipv6SourceGuardSpec {
    pub check: SourceGuard,
    pub mode: EnforceMode,
}

/// DHCPv6 guard and snooping on a port (RFC 7610 DHCPv6-Shield; Cisco `ipv6 dhcp
/// guard`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Dhcpv6GuardSpec {
    /// A DHCPv6 server or relay port: its server messages pass, its REPLYs bind.
    pub trusted: bool,
    /// DHCPv6 messages per second an untrusted port may send; above it the port is
    /// error-disabled (enforce mode). `None`: no limit.
    pub rate_limit_pps: Option<u32>,
    pub mode: EnforceMode,
}

/// A binding from the configuration: this MAC uses this IP in this VLAN on this port.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct StaticBindingSpec {
    pub mac: MacAddr,
    pub ip: std::net::IpAddr,
    pub vid: Vid,
    /// Index of the port in `SwitchSpec::ports`.
    pub port: usize,
}

/// One rule of an ARP ACL: the sender IP (in a prefix) and, optionally, the sender MAC.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct ArpAclRule {
    pub action: AclAction,
    pub ip: std::net::Ipv4Addr,
    pub prefix_len: u8,
    pub mac: Option<MacMatch>,
}

/// An ARP ACL (Cisco `arp access-list`). With `static_only`, a sender no rule
/// permits is dropped without looking at the bindings.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ArpAclSpec {
    pub name: String,
    pub static_only: bool,
    pub rules: Vec<ArpAclRule>,
}

/// What a port-security violation does (Cisco's violation modes).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Violation {
    /// Drop the frame (counted).
    Protect,
    /// Drop the frame, count it and report an event.
    Restrict,
    /// Error-disable the port: nothing in or out until it recovers.
    #[default]
    Shutdown,
}

/// How dynamic secure MACs age.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecureAging {
    /// Never: a dynamic secure MAC stays until the port is recovered or reconfigured.
    #[default]
    None,
    /// `aging_secs` after it was learned.
    Absolute,
    /// `aging_secs` after it was last seen as a source.
    Inactivity,
}

/// Port security: the MACs a port may use as sources (its secure MACs).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PortSecuritySpec {
    /// Most secure MACs the port may have, its effective MAC included (≥ 1).
    pub max_macs: u16,
    pub violation: Violation,
    /// Learned secure MACs are sticky (kept for good, persisted by the daemon)
    /// instead of dynamic.
    pub sticky: bool,
    pub aging: SecureAging,
    pub aging_secs: u64,
    /// Secure MACs from the configuration.
    pub static_macs: Vec<MacAddr>,
    /// Sticky MACs learned earlier (restored from the daemon's state store).
    pub sticky_macs: Vec<MacAddr>,
}

/// Storm control: frames per second a port may receive of each kind.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct StormControlSpec {
    pub broadcast_pps: Option<u32>,
    pub multicast_pps: Option<u32>,
    pub unknown_unicast_pps: Option<u32>,
    /// Error-disable the port when a limit is exceeded (else drop the excess).
    pub shutdown: bool,
}

/// Permit or deny.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    Permit,
    Deny,
}

/// A MAC address with a mask: the bits set in `mask` must equal those of `mac`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct MacMatch {
    pub mac: MacAddr,
    pub mask: MacAddr,
}

impl MacMatch {
    #[inline]
    pub fn matches(&self, m: MacAddr) -> bool {
        (m.to_u64() & self.mask.to_u64()) == (self.mac.to_u64() & self.mask.to_u64())
    }
}

/// One rule of a MAC ACL; every field that is set must match.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct MacAclRule {
    pub action: AclAction,
    pub src: Option<MacMatch>,
    pub dst: Option<MacMatch>,
    /// The EtherType after the VLAN tag (or the 802.3 length for LLC frames).
    pub ethertype: Option<u16>,
    pub vlan: Option<Vid>,
    /// 802.1p priority (PCP); untagged frames have CoS 0.
    pub cos: Option<u8>,
}

/// A named, ordered MAC ACL. The first matching rule decides; a frame no rule
/// matches is denied (the implicit deny at the end of a bound ACL).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct MacAclSpec {
    pub name: String,
    pub rules: Vec<MacAclRule>,
}

/// The most rules one MAC ACL may hold.
pub const MAX_ACL_RULES: usize = 4096;

/// The whole switch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SwitchSpec {
    pub name: String,
    /// Capacity of the MAC table (entries).
    pub mac_table_size: usize,
    /// Idle time after which a learned (uplink-side) MAC table entry expires.
    pub mac_aging_secs: u64,
    pub ports: Vec<PortSpec>,
    /// The MAC ACLs ports refer to by name.
    pub mac_acls: Vec<MacAclSpec>,
    /// The most bindings (DHCP snooping, static) the switch holds.
    pub max_bindings: usize,
    pub static_bindings: Vec<StaticBindingSpec>,
    /// The ARP ACLs ports refer to by name.
    pub arp_acls: Vec<ArpAclSpec>,
    /// Capacity of the IP-seen table (`crate::hosts`): addresses seen on guest
    /// ports, least recently seen evicted first; 0 tracks none. Values above
    /// [`MAX_HOST_TABLE_SIZE`] are taken as that.
    pub host_table_size: usize,
    /// The VXLAN overlay (with exactly one port of role `Overlay`), if any.
    pub overlay: Option<OverlaySpec>,
}

/// Default of `SwitchSpec::max_bindings`.
pub const DEFAULT_MAX_BINDINGS: usize = 1 << 20;
/// Default of `SwitchSpec::host_table_size`.
pub const DEFAULT_HOST_TABLE_SIZE: usize = 16_384;
/// The largest IP-seen table (its slots are allocated up front).
pub const MAX_HOST_TABLE_SIZE: usize = 1 << 22;

/// Why a switch specification cannot run.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SpecError {
    TooManyPorts(usize),
    /// The overlay and its port disagree (a second overlay port, a VNI mapped twice …).
    BadOverlay(String),
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
    /// A port's port-security settings cannot work.
    PortSecurity {
        port: String,
        reason: String,
    },
    /// A port names a MAC ACL that does not exist.
    UnknownAcl {
        port: String,
        acl: String,
    },
    /// A MAC ACL is malformed (duplicate name, too many rules, CoS above 7).
    BadAcl {
        acl: String,
        reason: String,
    },
    /// Static bindings that cannot be held.
    BadBinding {
        reason: String,
    },
    /// A port's teaming names no usable uplink.
    BadTeam {
        port: String,
        reason: String,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::BadOverlay(r) => write!(f, "overlay: {r}"),
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
            SpecError::PortSecurity { port, reason } => {
                write!(f, "port {port:?}: port security: {reason}")
            }
            SpecError::UnknownAcl { port, acl } => {
                write!(
                    f,
                    "port {port:?} names MAC ACL {acl:?}, which does not exist"
                )
            }
            SpecError::BadAcl { acl, reason } => write!(f, "MAC ACL {acl:?}: {reason}"),
            SpecError::BadBinding { reason } => write!(f, "static bindings: {reason}"),
            SpecError::BadTeam { port, reason } => write!(f, "port {port:?}: teaming: {reason}"),
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
    /// The overlay and its port agree (see [`OverlaySpec`]).
    fn check_overlay(&self) -> Result<(), SpecError> {
        let bad = |r: String| Err(SpecError::BadOverlay(r));
        let ports: Vec<&PortSpec> = self
            .ports
            .iter()
            .filter(|p| p.role == PortRole::Overlay)
            .collect();
        let Some(o) = &self.overlay else {
            return match ports.first() {
                Some(p) => bad(format!(
                    "port {} is an overlay port, and there is no overlay",
                    p.name
                )),
                None => Ok(()),
            };
        };
        let [port] = ports[..] else {
            return bad(format!(
                "an overlay needs exactly one overlay port, not {}",
                ports.len()
            ));
        };
        if matches!(port.vlan, VlanMode::Access(_)) {
            return bad("the overlay port must be a trunk".into());
        }
        let (mut vlans, mut vnis) = (
            std::collections::HashSet::new(),
            std::collections::HashSet::new(),
        );
        for (vid, vni) in &o.vnis {
            if !vlans.insert(*vid) || !vnis.insert(*vni) {
                return bad(format!("VLAN {vid} or VNI {vni} is mapped twice"));
            }
            if !port.vlan.carries(*vid) {
                return bad(format!("the overlay port does not carry VLAN {vid}"));
            }
        }
        if o.peers.len() > crate::overlay::MAX_ENDPOINTS {
            return bad(format!("more than {} peers", crate::overlay::MAX_ENDPOINTS));
        }
        Ok(())
    }

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
            let own = p.configured_macs();
            for vid in p.vlan.vids() {
                for mac in &own {
                    if let Some(first) = macs.insert((vid.get(), *mac), &p.name) {
                        return Err(SpecError::DuplicateMac {
                            mac: *mac,
                            first: first.to_string(),
                            second: p.name.clone(),
                        });
                    }
                }
            }
            self.check_features(p, own.len())?;
        }
        self.check_overlay()?;
        let mut acl_names = std::collections::HashSet::new();
        for acl in &self.mac_acls {
            let bad = |reason: &str| SpecError::BadAcl {
                acl: acl.name.clone(),
                reason: reason.into(),
            };
            if !acl_names.insert(acl.name.as_str()) {
                return Err(bad("the name is used twice"));
            }
            if acl.rules.len() > MAX_ACL_RULES {
                return Err(bad(&format!(
                    "{} rules; at most {MAX_ACL_RULES}",
                    acl.rules.len()
                )));
            }
            if acl.rules.iter().any(|r| r.cos.is_some_and(|c| c > 7)) {
                return Err(bad("CoS is 0..=7"));
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

impl PortSpec {
    /// The guest MACs the configuration gives this port: its initial MAC, and its
    /// static and sticky secure MACs, each once. Empty for an uplink.
    pub fn configured_macs(&self) -> Vec<MacAddr> {
        if self.role != PortRole::Guest {
            return Vec::new();
        }
        let mut v: Vec<MacAddr> = self.initial_mac.into_iter().collect();
        if let Some(ps) = &self.features.port_security {
            for m in ps.static_macs.iter().chain(&ps.sticky_macs) {
                if !v.contains(m) {
                    v.push(*m);
                }
            }
        }
        v
    }
}

impl SwitchSpec {
    fn check_features(&self, p: &PortSpec, configured: usize) -> Result<(), SpecError> {
        let f = &p.features;
        if let Some(ps) = &f.port_security {
            let err = |reason: String| SpecError::PortSecurity {
                port: p.name.clone(),
                reason,
            };
            if p.role != PortRole::Guest {
                return Err(err("applies to guest ports only".into()));
            }
            if ps.max_macs == 0 {
                return Err(err("max_macs must be at least 1".into()));
            }
            if configured > ps.max_macs as usize {
                return Err(err(format!(
                    "{configured} MACs configured (initial, static, sticky) but max_macs is {}",
                    ps.max_macs
                )));
            }
            if ps.aging != SecureAging::None && ps.aging_secs == 0 {
                return Err(err("aging_secs must be at least 1".into()));
            }
        }
        if let Some(t) = &f.teaming {
            let err = |reason: String| SpecError::BadTeam {
                port: p.name.clone(),
                reason,
            };
            if t.active.is_empty() {
                return Err(err("the active list is empty".into()));
            }
            let mut seen = std::collections::HashSet::new();
            for u in t.active.iter().chain(&t.standby) {
                if !self
                    .ports
                    .iter()
                    .any(|q| q.role == PortRole::Uplink && &q.name == u)
                {
                    return Err(err(format!("{u:?} is not an uplink")));
                }
                if !seen.insert(u) {
                    return Err(err(format!("{u:?} is listed twice")));
                }
            }
        }
        for acl in [&f.mac_acl_in, &f.mac_acl_out].into_iter().flatten() {
            if !self.mac_acls.iter().any(|a| &a.name == acl) {
                return Err(SpecError::UnknownAcl {
                    port: p.name.clone(),
                    acl: acl.clone(),
                });
            }
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
