//! Portcullis data plane: a pure function of (switch state, now, ingress port, frame)
//! → verdict. No I/O, no clock reads, no locks, and no allocation per frame.
//!
//! The runtime (daemon crate) owns a [`Switch`], feeds it batches of received frames
//! with the current time, and applies the returned verdicts with an I/O backend.
//! `pipeline.rs` lists the stages in order; each security concern is a module under
//! `stages/`.

pub mod binding_path;
pub mod bindings;
mod carry_over;
pub mod counters;
pub mod dump;
pub mod egress;
pub mod errdisable;
pub mod events;
pub mod forwarding;
pub mod hosts;
pub mod mac_table;
pub mod overlay;
pub mod pipeline;
pub mod port_state;
mod render;
pub mod spec;
pub mod stages;
pub mod switch;
pub mod teaming;
pub mod trace;
pub mod types;
pub mod verdict;
pub mod vlan;
pub mod wire;

// The wire modules keep their old paths (`portcullis_dataplane::dhcp` …).
pub use wire::{arp, dhcp, frame};

pub use carry_over::CarryOver;
pub use counters::PortCounters;
pub use egress::{Emitted, Output, TunnelDst, TxCopy};
pub use errdisable::ErrDisableCause;
pub use events::{Event, EventKind, IpClaimSource, MacChangeSource, ViolationKind};
pub use frame::{FrameView, IngressFrame, VlanTag};
pub use hosts::{HostEntry, HostSeen, HostStats, HostTable};
pub use mac_table::{MacEntry, MacKind, MacTable, SecureKind};
pub use overlay::{Overlay, OverlayPeer, OverlaySpec, Tunnel};
pub use render::vid_list;
pub use spec::{
    AclAction, ArpAclRule, ArpAclSpec, ArpInspectionSpec, DEFAULT_HOST_TABLE_SIZE,
    DEFAULT_MAX_BINDINGS, DhcpSnoopingSpec, Dhcpv6GuardSpec, EnforceMode, IpSourceGuardSpec,
    Ipv6SourceGuardSpec, MAX_ACL_RULES, MAX_HOST_TABLE_SIZE, MacAclRule, MacAclSpec, MacMatch,
    NdInspectionSpec, Option82, Policy, PortFeatures, PortRole, PortSecuritySpec, PortSpec,
    RaGuardSpec, SecureAging, SecurityPolicy, SourceGuard, SpecError, StaticBindingSpec,
    StormControlSpec, SwitchSpec, TeamingPolicy, TeamingSpec, Violation, VlanMode,
};
pub use switch::{ControlError, ErrDisabled, Port, Switch};
pub use types::{MAX_PORTS, MacAddr, PortId, PortSet, Timestamp, Vid, VlanSet};
pub use verdict::{DropReason, Forward, Rewrite, Verdict};
pub use wire::vxlan::Vni;
