//! The validated configuration model: the profile and the host binding, in the
//! shape the user wrote them (so they can be shown and diffed), with every value
//! in its domain type. This is the assembly of the model (profile, uplink policy,
//! port groups, host binding, ports); each feature's own types live in its module
//! under `features/` and are re-exported from `config`.

use super::features::*;
use super::management::Management;
use super::value::{AclRef, VlanRange};
use portcullis_dataplane::{MacAddr, Vid};

/// The longest Linux interface name, in bytes (IFNAMSIZ 16 less the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// The golden, host-independent part: `[switch]`, `[uplink_policy]`, `[[port_group]]`,
/// the ACLs and `[overlay]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub switch: SwitchSettings,
    /// `None` when the profile has no `[uplink_policy]` (a host-only switch).
    pub uplink_policy: Option<UplinkPolicy>,
    /// In file order.
    pub port_groups: Vec<PortGroup>,
    /// `[[mac_acl]]`, in file order.
    pub mac_acls: Vec<MacAcl>,
    /// `[[arp_acl]]`, in file order.
    pub arp_acls: Vec<ArpAcl>,
    /// `[overlay]`: `None` when the profile has none (no VXLAN overlay).
    pub overlay: Option<OverlaySettings>,
}

/// `[uplink_policy]`: every logical uplink is an 802.1Q trunk with this policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkPolicy {
    /// Logical uplink names, in order; the spec's uplink ports follow this order.
    pub uplinks: Vec<String>,
    pub allowed_vlans: Vec<VlanRange>,
    pub native_vlan: Option<Vid>,
    /// Storm control on every uplink (frames the uplinks receive).
    pub storm_control: Option<StormControlOverride>,
    /// MAC ACL for frames every uplink receives from the network.
    pub mac_acl_in: Option<AclRef>,
    /// MAC ACL for frames every uplink sends to the network.
    pub mac_acl_out: Option<AclRef>,
    /// The uplinks are trusted DHCP-snooping ports (default `true`). Takes effect
    /// when a port group or port enables DHCP snooping.
    pub dhcp_trusted: bool,
    /// The uplinks are trusted ARP-inspection ports (default `true`). Takes effect
    /// when a port group or port enables ARP inspection.
    pub arp_trusted: bool,
    /// The uplinks are trusted RA-guard ports (default `true`: routers are
    /// upstream). Takes effect when a port group or port enables RA guard.
    pub ra_trusted: bool,
    /// The uplinks are trusted ND-inspection ports (default `true`: routers are
    /// upstream; their RA sources are gleaned). Takes effect when a port group or
    /// port enables ND inspection.
    pub nd_trusted: bool,
    /// The uplinks are trusted DHCPv6-guard ports (default `true`: servers are
    /// upstream). Takes effect when a port group or port enables DHCPv6 guard.
    pub dhcpv6_trusted: bool,
}

/// `[[port_group]]`: where policy lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortGroup {
    pub name: String,
    pub vlan: GroupVlan,
    /// The group's security policy; unset settings are `reject`.
    pub security: SecurityOverride,
    /// `port_security = {...}`: `None` when the group has no such table.
    pub port_security: Option<PortSecurityOverride>,
    /// `storm_control = {...}`: `None` when the group has no such table.
    pub storm_control: Option<StormControlOverride>,
    /// MAC ACL for frames the group's ports receive from their guests.
    pub mac_acl_in: Option<AclRef>,
    /// MAC ACL for frames the group's ports send to their guests.
    pub mac_acl_out: Option<AclRef>,
    /// `dhcp_snooping = {...}`: `None` when the group has no such table.
    pub dhcp_snooping: Option<DhcpSnoopingOverride>,
    /// `arp_inspection = {...}`: `None` when the group has no such table.
    pub arp_inspection: Option<ArpInspectionOverride>,
    /// `ip_source_guard = "..."` or `{...}`: `None` when the group does not state it.
    pub ip_source_guard: Option<IpSourceGuardOverride>,
    /// `ra_guard = {...}`: `None` when the group has no such table.
    pub ra_guard: Option<RaGuardOverride>,
    /// `nd_inspection = {...}`: `None` when the group has no such table.
    pub nd_inspection: Option<NdInspectionOverride>,
    /// `ipv6_source_guard = "..."` or `{...}`: `None` when the group does not state it.
    pub ipv6_source_guard: Option<IpSourceGuardOverride>,
    /// `dhcpv6_guard = {...}`: `None` when the group has no such table.
    pub dhcpv6_guard: Option<Dhcpv6GuardOverride>,
    /// `teaming = {...}`: `None` when the group does not state it (the data plane's
    /// default: originating-port over every uplink, failback on).
    pub teaming: Option<TeamingOverride>,
}

/// The host-specific part: `[host.uplinks]`, `[[host.port]]`,
/// `[[host.static_binding]]`, `[host.management]` and `[host.overlay]`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HostBinding {
    /// In file order.
    pub uplinks: Vec<UplinkBinding>,
    /// In file order; the spec's guest ports follow this order.
    pub ports: Vec<HostPort>,
    /// `[[host.static_binding]]`, in file order.
    pub static_bindings: Vec<StaticBinding>,
    /// `[host.management]`: who may use the API, and how it is reached. Never part
    /// of a profile: identities and keys are this host's.
    pub management: Management,
    /// `bridge_netdev = true`: the daemon makes a dummy netdev named after the
    /// switch (`[switch] name`) at start, so that tools which look the bridge up in
    /// `/sys/class/net` (Proxmox, through the ovs-vsctl front) find it. Not a Linux
    /// bridge: it carries nothing.
    pub bridge_netdev: bool,
    /// `[host.overlay]`: this host's tunnel endpoint and static peers; needed when
    /// the profile has an `[overlay]`.
    pub overlay: Option<HostOverlay>,
}

/// One `[host.uplinks]` entry: `uplink = "interface"`, with its backend from
/// `[host.uplink_backend]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UplinkBinding {
    pub uplink: String,
    pub interface: String,
    /// `[host.uplink_backend] <uplink> = "..."`; AF_PACKET when not given.
    pub backend: Backend,
}

/// One `[[host.port]]`: a guest NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub name: String,
    /// The Linux interface (TAP, veth) the port attaches to; empty for a vhost-user
    /// port.
    pub interface: String,
    /// A vhost-user port (`vhost_user`): its socket, instead of an interface.
    pub vhost_user: Option<VhostUser>,
    pub port_group: String,
    /// The guest's initial MAC; `None` → learned from its first frame.
    pub mac: Option<MacAddr>,
    /// Per-port overrides of the group's security policy.
    pub security: SecurityOverride,
    /// The switch creates `interface` as a persistent TAP device when it does not
    /// exist (for QEMU's `-netdev tap,ifname=…,script=no`).
    pub tap: bool,
    /// The I/O backend (`backend`); AF_PACKET when not given.
    pub backend: Backend,
    /// Static secure MACs of the port, in file order (they need port security).
    pub secure_macs: Vec<MacAddr>,
    /// Per-port overrides of the group's port security, field by field.
    pub port_security: Option<PortSecurityOverride>,
    /// Per-port overrides of the group's storm control, field by field.
    pub storm_control: Option<StormControlOverride>,
    /// Replaces the group's `mac_acl_in` (`AclRef::None` unbinds it).
    pub mac_acl_in: Option<AclRef>,
    /// Replaces the group's `mac_acl_out` (`AclRef::None` unbinds it).
    pub mac_acl_out: Option<AclRef>,
    /// Per-port overrides of the group's DHCP snooping, field by field.
    pub dhcp_snooping: Option<DhcpSnoopingOverride>,
    /// Per-port overrides of the group's ARP inspection, field by field.
    pub arp_inspection: Option<ArpInspectionOverride>,
    /// Per-port overrides of the group's IP Source Guard, field by field.
    pub ip_source_guard: Option<IpSourceGuardOverride>,
    /// Per-port overrides of the group's RA guard, field by field.
    pub ra_guard: Option<RaGuardOverride>,
    /// Per-port overrides of the group's ND inspection, field by field.
    pub nd_inspection: Option<NdInspectionOverride>,
    /// Per-port overrides of the group's IPv6 Source Guard, field by field.
    pub ipv6_source_guard: Option<IpSourceGuardOverride>,
    /// Per-port overrides of the group's DHCPv6 guard, field by field.
    pub dhcpv6_guard: Option<Dhcpv6GuardOverride>,
    /// Per-port overrides of the group's teaming, field by field (`active` and
    /// `standby` replaced whole).
    pub teaming: Option<TeamingOverride>,
}

impl HostPort {
    /// A guest port with its group's settings and no per-port overrides: what a
    /// runtime port (`port add`) is.
    pub fn plain(
        name: impl Into<String>,
        interface: impl Into<String>,
        port_group: impl Into<String>,
        mac: Option<MacAddr>,
        tap: bool,
    ) -> HostPort {
        HostPort {
            name: name.into(),
            interface: interface.into(),
            port_group: port_group.into(),
            mac,
            security: SecurityOverride::default(),
            tap,
            vhost_user: None,
            backend: Backend::default(),
            secure_macs: Vec::new(),
            port_security: None,
            storm_control: None,
            mac_acl_in: None,
            mac_acl_out: None,
            dhcp_snooping: None,
            arp_inspection: None,
            ip_source_guard: None,
            ra_guard: None,
            nd_inspection: None,
            ipv6_source_guard: None,
            dhcpv6_guard: None,
            teaming: None,
        }
    }
}
