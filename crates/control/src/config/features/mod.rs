//! One module per configuration feature. Each holds the feature's raw shape
//! (serde), its model, its conversion (`impl Converter`), its checks
//! (`impl Checker`), its part of the spec and its flattening for diff; the
//! assembly (`config/mod.rs`, `raw.rs`, `model.rs`, `validate.rs`, `compile.rs`,
//! `crate::diff`) composes them in a fixed order.
//!
//! Invariant: a feature module depends only on the shared leaf (`value`, `check`,
//! `keys`, `flat`, `error`, `source`) and on the data plane's spec types, never on
//! the assembly or on another feature, except where a feature's meaning is
//! defined by another's (noted in its module comment).

pub(crate) mod acls;
pub(crate) mod arp_inspection;
pub(crate) mod backend;
pub(crate) mod dhcp_snooping;
pub(crate) mod dhcpv6_guard;
pub(crate) mod ip_source_guard;
pub(crate) mod ipv6_source_guard;
pub(crate) mod nd_inspection;
pub(crate) mod overlay;
pub(crate) mod port_security;
pub(crate) mod ra_guard;
pub(crate) mod static_bindings;
pub(crate) mod storm_control;
pub(crate) mod switch_identity;
pub(crate) mod teaming;
pub(crate) mod vhost_user;
pub(crate) mod vlans;
pub(crate) mod vswitch_policy;

pub(crate) use acls::{Acls, RawArpAcl, RawMacAcl};
pub use acls::{ArpAcl, ETHERTYPE_NAMES, MIN_ETHERTYPE, MacAcl, ethertype_by_name};
pub(crate) use arp_inspection::RawArpInspection;
pub use arp_inspection::{
    ARP_VALIDATE_WORDS, ArpInspectionOverride, ArpValidation, DEFAULT_ARP_RATE_LIMIT_PPS,
};
pub use backend::Backend;
pub use dhcp_snooping::DhcpSnoopingOverride;
pub(crate) use dhcp_snooping::RawDhcpSnooping;
pub use dhcpv6_guard::Dhcpv6GuardOverride;
pub(crate) use dhcpv6_guard::RawDhcpv6Guard;
pub use ip_source_guard::IpSourceGuardOverride;
pub(crate) use ip_source_guard::RawIpSourceGuard;
pub(crate) use nd_inspection::RawNdInspection;
pub use nd_inspection::{
    DEFAULT_ND_BINDING_LIFETIME_SECS, DEFAULT_ND_MAX_ADDRESSES, DEFAULT_ND_RATE_LIMIT_PPS,
    ND_BINDING_LIFETIME_SECS_RANGE, ND_MAX_ADDRESSES_RANGE, NdInspectionOverride,
    UPLINK_MAX_ADDRESSES,
};
pub use overlay::{
    HostOverlay, MAX_REMOTE_MACS_RANGE, OVERLAY_UDP_PORT_RANGE, OverlaySettings, StaticPeer,
    VNI_RANGE,
};
pub(crate) use overlay::{RawHostOverlay, RawOverlay};
pub(crate) use port_security::RawPortSecurity;
pub use port_security::{
    DEFAULT_MAX_MACS, MAX_MACS_RANGE, PortSecurityOverride, ResolvedPortSecurity,
    SECURE_AGING_SECS_RANGE,
};
pub use ra_guard::RaGuardOverride;
pub(crate) use ra_guard::RawRaGuard;
pub(crate) use static_bindings::RawStaticBinding;
pub use static_bindings::StaticBinding;
pub(crate) use storm_control::RawStormControl;
pub use storm_control::{STORM_PPS_RANGE, StormAction, StormControlOverride};
pub(crate) use switch_identity::RawSwitch;
pub use switch_identity::{
    DEFAULT_MAC_AGING_SECS, DEFAULT_MAC_TABLE_SIZE, DEFAULT_MAX_BINDINGS, MAC_AGING_SECS_RANGE,
    MAC_TABLE_SIZE_RANGE, MAX_BINDINGS_RANGE, SwitchSettings,
};
pub(crate) use teaming::RawTeaming;
pub use teaming::{TEAMING_POLICY_WORDS, TeamingOverride};
pub(crate) use vhost_user::RawVhostUser;
pub use vhost_user::{VhostUser, VhostUserMode};
pub use vlans::GroupVlan;
pub(crate) use vswitch_policy::RawSecurity;
pub use vswitch_policy::SecurityOverride;
