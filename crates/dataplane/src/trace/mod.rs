//! Tracing one frame through the pipeline (`portcullis trace`; OVS's
//! `ofproto/trace` in network-engineer words): which stages the frame passed, what
//! each decided, and what decided it — the port's policy values, the ACL rule, the
//! binding looked up, the MAC-table entry found, the uplink teaming chose.
//!
//! The pipeline and its stages are generic over an [`Observer`] and report what they
//! see and decide at the points where they already have it. [`Switch::process`]
//! runs them with [`NoTrace`], whose `ACTIVE` is `false`: every hook is a closure
//! that is never called, so the fast path compiles to what it was (no allocation,
//! no extra work). [`Switch::process_traced`] runs them with a [`Trace`], a
//! fixed-capacity list of [`Step`]s (no allocation either).
//!
//! Invariants: a trace is a record of the real pipeline's decisions, not a second
//! implementation: `process_traced` returns exactly the verdict `process` returns
//! for the same switch state, frame and time, and changes the switch exactly as
//! `process` does — a traced frame *is* processed (counted, learned, rate-limited,
//! …). To trace without touching a running switch's state, trace on a copy of it.
//! Steps are recorded in pipeline order; a trace never holds more than
//! [`TRACE_CAPACITY`] steps (the rest are counted in [`Trace::lost`]).
//!
//! The explanations ([`Trace::explain`]) read the switch only for names and the
//! configuration (port names, policy values, ACL rules); the decisions and the state
//! they looked at come from the steps.
//!
//! The explanations, the human-readable rendering of steps and verdicts, live in
//! `explain.rs`; this module holds what the stages import.
//!
//! [`Switch::process`]: crate::Switch::process
//! [`Switch::process_traced`]: crate::Switch::process_traced

use crate::arp::ArpView;
use crate::bindings::Binding;
use crate::bindings::BindingUpdate;
use crate::dhcp::DhcpMessageType;
use crate::events::{BindingRemoval, ViolationKind};
use crate::frame::{FrameView, OuterTag};
use crate::mac_table::{MacEntry, MacKind};
use crate::spec::{AclAction, EnforceMode, PortRole, SourceGuard, TeamingPolicy, Violation};
use crate::stages::storm_control::StormClass;
use crate::switch::ErrDisabled;
use crate::types::{MacAddr, PortId, Timestamp, Vid};
use crate::verdict::{DropReason, Rewrite, Verdict};
use crate::wire::ipv6::{Chain, FragmentKind};
use crate::wire::nd::NdViolation;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod explain;

pub use explain::{Explained, describe_verdict, ethertype_name, rule_text};

/// The most steps one trace keeps.
pub const TRACE_CAPACITY: usize = 48;

/// Ports with an outbound ACL whose refusals one trace can attribute.
pub(crate) const ACL_OUT_WATCH: usize = 64;

/// What the pipeline reports to. Implemented by [`NoTrace`] (the fast path) and
/// [`Trace`].
pub trait Observer {
    /// Whether steps are kept. `false` makes every hook dead code.
    const ACTIVE: bool;

    /// Keeps one step.
    fn push(&mut self, step: Step);

    /// Keeps the step `f` builds — `f` runs only when tracing.
    #[inline(always)]
    fn note(&mut self, f: impl FnOnce() -> Step) {
        if Self::ACTIVE {
            self.push(f());
        }
    }

    /// The outbound-ACL watch list of a [`Trace`]; `None` for observers without one.
    #[inline(always)]
    fn acl_out_watch(&mut self) -> Option<&mut AclOutWatch> {
        None
    }
}

/// The observer of the fast path: keeps nothing, costs nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTrace;

impl Observer for NoTrace {
    const ACTIVE: bool = false;
    #[inline(always)]
    fn push(&mut self, _: Step) {}
}

/// A pipeline stage, in pipeline order (see `pipeline.rs`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The ingress port is admin up, link up, not error-disabled.
    Port,
    /// The Ethernet header and outer VLAN tag parse.
    Parse,
    /// The destination is not an IEEE 802.1D reserved link-local group.
    LinkLocal,
    /// The source MAC is a unicast address.
    SourceMac,
    /// 802.1Q ingress classification.
    Vlan,
    /// Broadcast/multicast storm control on ingress.
    StormControl,
    /// Port security's source check (before the vSwitch policy).
    PortSecurity,
    /// The vSwitch security policy: forged transmits, MAC changes.
    VswitchPolicy,
    /// The ingress port's inbound MAC ACL.
    MacAclIn,
    /// Port security's admission (after the vSwitch policy): learns or refreshes.
    PortSecurityAdmit,
    /// From an uplink: learning the source, refusing a local guest's MAC.
    ReflectionFilter,
    /// DHCP snooping.
    DhcpSnooping,
    /// IP Source Guard.
    IpSourceGuard,
    /// Dynamic ARP inspection.
    ArpInspection,
    /// IPv6 RA guard.
    RaGuard,
    /// IPv6 ND inspection and FCFS-SAVI.
    NdInspection,
    /// IPv6 Source Guard.
    Ipv6SourceGuard,
    /// DHCPv6 guard and snooping.
    Dhcpv6Guard,
    /// The forwarding model: MAC table, flood set, teaming, egress filters.
    Forwarding,
    /// The overlay's encapsulation: the endpoint(s) a copy is tunneled to.
    Overlay,
    /// The overlay's ARP proxy answered the request.
    ArpProxy,
    /// The outbound MAC ACL of one output port.
    MacAclOut,
    /// A DHCP client message, or an ACK for a client the switch does not know,
    /// reaches trusted ports and uplinks only.
    DhcpTrustedDelivery,
}

impl Stage {
    /// A short, stable snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Stage::Port => "port",
            Stage::Parse => "parse",
            Stage::LinkLocal => "link_local",
            Stage::SourceMac => "source_mac",
            Stage::Vlan => "vlan",
            Stage::StormControl => "storm_control",
            Stage::PortSecurity => "port_security",
            Stage::VswitchPolicy => "vswitch_policy",
            Stage::MacAclIn => "mac_acl_in",
            Stage::PortSecurityAdmit => "port_security_admit",
            Stage::ReflectionFilter => "reflection_filter",
            Stage::DhcpSnooping => "dhcp_snooping",
            Stage::IpSourceGuard => "ip_source_guard",
            Stage::ArpInspection => "arp_inspection",
            Stage::RaGuard => "ra_guard",
            Stage::NdInspection => "nd_inspection",
            Stage::Ipv6SourceGuard => "ipv6_source_guard",
            Stage::Dhcpv6Guard => "dhcpv6_guard",
            Stage::Forwarding => "forwarding",
            Stage::Overlay => "overlay",
            Stage::ArpProxy => "arp_proxy",
            Stage::MacAclOut => "mac_acl_out",
            Stage::DhcpTrustedDelivery => "dhcp_trusted_delivery",
        }
    }

    /// The stage in words, for a trace's left column.
    pub const fn title(self) -> &'static str {
        match self {
            Stage::Port => "ingress port",
            Stage::Parse => "frame",
            Stage::LinkLocal => "link-local filter",
            Stage::SourceMac => "source MAC",
            Stage::Vlan => "VLAN",
            Stage::StormControl => "storm control",
            Stage::PortSecurity => "port security",
            Stage::VswitchPolicy => "vSwitch policy",
            Stage::MacAclIn => "MAC ACL in",
            Stage::PortSecurityAdmit => "port security",
            Stage::ReflectionFilter => "reflection filter",
            Stage::DhcpSnooping => "DHCP snooping",
            Stage::IpSourceGuard => "IP Source Guard",
            Stage::ArpInspection => "ARP inspection",
            Stage::RaGuard => "RA guard",
            Stage::NdInspection => "ND inspection",
            Stage::Ipv6SourceGuard => "IPv6 Source Guard",
            Stage::Dhcpv6Guard => "DHCPv6 guard",
            Stage::Forwarding => "forwarding",
            Stage::Overlay => "VXLAN overlay",
            Stage::ArpProxy => "ARP proxy",
            Stage::MacAclOut => "MAC ACL out",
            Stage::DhcpTrustedDelivery => "DHCP delivery to trusted ports",
        }
    }
}

/// What one stage decided.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Outcome {
    /// The frame goes on.
    Pass,
    /// The stage does not apply (not configured, trusted port, other EtherType).
    Skip,
    /// The frame is dropped here.
    Drop(DropReason),
    /// Observe mode: the stage would have dropped the frame for this reason (counted
    /// as observed), and lets it pass.
    Observe(DropReason),
}

impl Outcome {
    /// "pass", "skip", "drop" or "observe".
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Skip => "skip",
            Outcome::Drop(_) => "drop",
            Outcome::Observe(_) => "observe",
        }
    }
    /// The drop reason of a drop or an observed drop.
    pub const fn reason(self) -> Option<DropReason> {
        match self {
            Outcome::Drop(r) | Outcome::Observe(r) => Some(r),
            Outcome::Pass | Outcome::Skip => None,
        }
    }
}

/// Port security's view of one source MAC.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SecureCheck {
    /// Port security is off on the port.
    Off,
    /// The source is the port's effective MAC.
    EffectiveMac,
    /// The source is already a secure MAC of this port (refreshed on admission).
    KnownSecure(MacKind),
    /// A new source MAC, and the port has room for it (`count` of `max` in use).
    Room { count: u16, max: u16 },
    /// Admission learned the source as a secure MAC.
    Learned { sticky: bool, count: u16, max: u16 },
    /// A violation: a MAC local to `owner`, or one MAC too many.
    Violation {
        kind: ViolationKind,
        owner: Option<PortId>,
        count: u16,
        max: u16,
        action: Violation,
    },
    /// The MAC table had no room for the new secure MAC.
    TableFull,
}

/// The vSwitch policy's view of one source MAC.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PolicyCheck {
    /// The source is the port's effective MAC.
    EffectiveMac,
    /// mac_changes = accept (or the port had no MAC yet): the effective MAC moves
    /// from `from` to the source; `owner` holds it when that failed.
    MacChange {
        from: Option<MacAddr>,
        owner: Option<PortId>,
    },
    /// forged_transmits = accept: a source other than `effective` passes (not learned).
    ForgedAccepted { effective: MacAddr },
    /// forged_transmits = accept, but the source is local to `owner`.
    ForgedConflict { owner: PortId },
    /// forged_transmits = reject and the source is not `effective`.
    Forged { effective: MacAddr },
}

/// A DHCP message as snooping read it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct DhcpSummary {
    pub op: u8,
    pub message_type: Option<DhcpMessageType>,
    pub chaddr: MacAddr,
    pub ciaddr: Ipv4Addr,
    pub yiaddr: Ipv4Addr,
}

/// What DHCP snooping did with a message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DhcpNote {
    /// Over the port's DHCP rate.
    RateLimit { pps: u32 },
    /// The message does not parse, or its UDP length is wrong.
    Malformed,
    /// A fragment of UDP to 67/68 (or a first fragment too short to show its ports).
    Fragment,
    /// An IPv4 header that does not parse.
    Ipv4Malformed,
    /// A BOOTREQUEST of a type no client sends.
    UnexpectedMessage,
    /// A server message from an untrusted port.
    ServerUntrusted,
    /// chaddr is not the Ethernet source.
    ChaddrMismatch,
    /// A client message from an untrusted port already carries option 82.
    Option82Untrusted,
    /// RELEASE/DECLINE of an address bound to another port.
    ReleaseForeign { ip: Ipv4Addr, holder: PortId },
    /// A RELEASE/DECLINE from the binding's port: the binding goes once the message
    /// is delivered.
    Releases { ip: Ipv4Addr, why: BindingRemoval },
    /// RELEASE/DECLINE/NAK removed the client's binding.
    BindingRemoved { ip: IpAddr, why: BindingRemoval },
    /// A message that passes, with the change made to the copies.
    Forward { rewrite: Rewrite },
    /// An ACK for a client the switch does not know: trusted ports only.
    AckUnknownClient,
    /// An ACK for a client on a trusted port: no binding.
    AckClientTrusted { port: PortId },
    /// An ACK creating or renewing this binding: held until it is committed.
    Hold(BindingUpdate),
    /// The binding table is full: the ACK is dropped.
    TableFull,
    /// An ACK for an address another binding holds: dropped, the holder stays.
    BindingConflict {
        ip: Ipv4Addr,
        holder: crate::bindings::BindingHolder,
    },
    /// An ACK for an address the client already holds by configuration or the
    /// API: it passes, that binding stays as it is (no lease replaces it).
    AckCovered {
        ip: Ipv4Addr,
        source: crate::bindings::BindingSource,
    },
    /// A NAK whose client has no DHCP binding on the port it is on: nothing is
    /// removed (static and API bindings leave only by configuration or the API).
    NakNoLearnedBinding,
}

/// What ARP inspection concluded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArpNote {
    /// Inspection is off on the port.
    Off,
    /// The port is trusted for ARP.
    Trusted,
    /// Over the port's ARP rate.
    RateLimit { pps: u32 },
    /// The ARP message does not parse.
    Malformed,
    /// A `validate` check failed.
    Invalid { check: ArpCheck },
    /// An ARP probe (sender 0.0.0.0) claims nothing.
    Probe,
    /// An ARP ACL rule (0-based) permitted or denied the sender.
    Acl {
        acl: u16,
        rule: Option<u16>,
        permit: bool,
    },
    /// The binding of the sender IP (if any) and whether it names the sender MAC.
    Binding(Option<Binding>),
}

/// The `validate` check of ARP inspection that failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArpCheck {
    SrcMac,
    DstMac,
    Ip,
}

/// What IP Source Guard concluded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IpsgNote {
    Off,
    /// Trusted for DHCP: exempt.
    Trusted,
    /// A client without an address getting its lease (0.0.0.0 → UDP 67) is exempt.
    DhcpExempt,
    /// The source address and the binding found for it, if any.
    Lookup {
        src: Option<Ipv4Addr>,
        binding: Option<Binding>,
        check: SourceGuard,
    },
}

/// What RA guard concluded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum RaGuardNote {
    Off,
    /// A trusted (router) port: not checked.
    Trusted,
    /// The fixed IPv6 header does not parse (short, or not version 6).
    BadHeader,
    /// What the walk of the header chain found, and the ICMPv6 type and code when
    /// the chain ends in ICMPv6 in this packet (whole or first fragment).
    Chain {
        chain: Chain,
        fragment: Option<FragmentKind>,
        icmp: Option<(u8, u8)>,
    },
}

/// What ND inspection concluded (`stages/nd_inspection.rs` has the rules).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NdNote {
    Off,
    /// A trusted port: not inspected. The address it gleaned (its binding held
    /// with this frame), and the address whose Nd binding on another port it
    /// defended (removed), if any.
    Trusted {
        gleaned: Option<Ipv6Addr>,
        defended: Option<Ipv6Addr>,
    },
    /// The fixed IPv6 header does not parse: nothing to bind (RA guard's drop).
    BadHeader,
    /// Over the port's ND rate.
    RateLimit {
        pps: u32,
    },
    /// An NS or NA that is not valid (RFC 4861 §7.1): the rule, or `None` when
    /// the message or its options do not parse.
    Malformed(Option<NdViolation>),
    /// A link-layer address option that is not the frame's source MAC.
    LinkLayer {
        option: MacAddr,
    },
    /// A claim of `addr`, which another port or MAC holds.
    Owned {
        addr: Ipv6Addr,
        holder: Binding,
    },
    /// An unsolicited NA with the Override flag for `target`, which the sender
    /// does not hold.
    UnsolicitedOverride {
        target: Ipv6Addr,
    },
    /// A new binding of `addr` beyond the port's maximum.
    MaxAddresses {
        addr: Ipv6Addr,
        max: u16,
    },
    /// The first claim of `addr` (by DAD or by use): bound to the port and MAC,
    /// the frame held until the binding is durable.
    Claim {
        addr: Ipv6Addr,
        dad: bool,
    },
    /// The sender's own address (or `::`, nothing to bind); `refreshed`: its Nd
    /// binding's lease end was moved.
    Own {
        addr: Option<Ipv6Addr>,
        refreshed: bool,
    },
}

/// Why IPv6 Source Guard let a packet from `::` pass.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UnspecifiedUse {
    /// Duplicate Address Detection (an NS).
    Dad,
    /// An MLD message with the Router Alert option.
    Mld,
    /// A DHCPv6 client message (UDP to 547).
    Dhcpv6Client,
}

/// What IPv6 Source Guard concluded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ipv6SgNote {
    Off,
    /// ND inspection trusts the port: exempt.
    Trusted,
    /// The fixed IPv6 header does not parse.
    BadHeader,
    /// From `::`, one of the uses that need it.
    Unspecified(UnspecifiedUse),
    /// From `::`, none of them.
    UnspecifiedRefused,
    /// The binding ND inspection holds this frame for (its first packet).
    Pending {
        src: Ipv6Addr,
    },
    /// The source address and the binding found for it, if any.
    Lookup {
        src: Ipv6Addr,
        binding: Option<Binding>,
        check: SourceGuard,
    },
}

/// What a trace shows of a DHCPv6 message: the outer message type, the innermost
/// one (the same without relays) and how many relay layers lie between.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Dhcpv6Summary {
    pub outer: crate::wire::dhcpv6::MessageType,
    pub inner: crate::wire::dhcpv6::MessageType,
    pub relays: u8,
    pub transaction_id: u32,
    /// The UDP ports (source, destination).
    pub ports: (u16, u16),
}

/// What DHCPv6 guard and snooping did with a packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dhcpv6Note {
    /// Over the port's DHCPv6 rate.
    RateLimit { pps: u32 },
    /// A fragment of UDP to 546/547, or a first fragment without its UDP header.
    Fragment,
    /// A candidate that does not parse (IPv6 header, UDP length, options, relays).
    Malformed,
    /// The upper layer is hidden behind an extension header the switch does not
    /// walk, or a chain that does not parse.
    Hidden,
    /// ESP: the upper layer is encrypted (passes, as for RA guard).
    Encrypted,
    /// A server message (or anything to the client port 546) from an untrusted port.
    ServerUntrusted,
    /// RELEASE/DECLINE of an address bound on another port, MAC or DUID.
    ReleaseForeign {
        ip: Ipv6Addr,
        holder: crate::bindings::BindingHolder,
    },
    /// RELEASE/DECLINE from the binding's port, MAC and DUID: its bindings go once
    /// the message is delivered.
    Releases { why: BindingRemoval },
    /// A client message: delivered to trusted ports and uplinks only.
    ClientMessage,
    /// A message that passes.
    Forward,
    /// A REPLY with addresses for a client the switch does not know: trusted ports only.
    ReplyUnknownClient,
    /// A REPLY for a client on a trusted port: no binding.
    ReplyClientTrusted { port: PortId },
    /// A REPLY creating or renewing this binding: held until it is committed.
    Hold(BindingUpdate),
    /// The binding table is full: the REPLY is dropped.
    TableFull,
    /// A REPLY for an address another binding holds.
    BindingConflict {
        ip: Ipv6Addr,
        holder: crate::bindings::BindingHolder,
    },
    /// A REPLY for addresses the client already holds by configuration or the API.
    Covered { ip: Ipv6Addr },
    /// A REPLY with valid lifetime 0 removed the client's binding of this address.
    BindingRemoved { ip: Ipv6Addr },
}

/// What forwarding looked at: the MAC-table entry of the destination, the uplink
/// teaming picked (from a guest), and how.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ForwardingCheck {
    pub vid: Vid,
    /// Broadcast or multicast: flooded.
    pub group: bool,
    /// The destination's entry (unicast), as forwarding found it.
    pub entry: Option<MacEntry>,
    /// The uplink a frame from a guest leaves by, if it needs one.
    pub uplink: Option<PortId>,
    /// The ingress port's teaming policy (guests).
    pub policy: TeamingPolicy,
    /// The port is pinned to `uplink` (else the policy chose per frame).
    pub pinned: bool,
}

/// The facts a stage decided on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Detail {
    None,
    /// Not a port of this switch.
    NoSuchPort,
    Port {
        role: PortRole,
        admin_up: bool,
        link_up: bool,
        err_disabled: Option<ErrDisabled>,
    },
    Frame(FrameView),
    Mac(MacAddr),
    Vlan {
        tag: Option<OuterTag>,
        vid: Option<Vid>,
    },
    Storm {
        class: StormClass,
        limit_pps: Option<u32>,
        shutdown: bool,
    },
    Secure {
        mac: MacAddr,
        vid: Vid,
        check: SecureCheck,
    },
    Policy {
        mac: MacAddr,
        check: PolicyCheck,
    },
    /// A MAC ACL's decision: `rule` is the 0-based index of the first matching rule
    /// (`None`: the implicit deny).
    Acl {
        port: PortId,
        acl: u16,
        rule: Option<u32>,
        action: AclAction,
    },
    /// From an uplink: the source MAC's local entry, when it is a guest's.
    Reflection {
        mac: MacAddr,
        owner: Option<MacEntry>,
    },
    Dhcp {
        trusted: bool,
        mode: EnforceMode,
        msg: Option<DhcpSummary>,
        note: DhcpNote,
    },
    Arp {
        mode: EnforceMode,
        arp: Option<ArpView>,
        note: ArpNote,
    },
    Ipsg {
        mode: EnforceMode,
        note: IpsgNote,
    },
    RaGuard {
        mode: EnforceMode,
        note: RaGuardNote,
    },
    Nd {
        mode: EnforceMode,
        note: NdNote,
    },
    Ipv6Sg {
        mode: EnforceMode,
        note: Ipv6SgNote,
    },
    Dhcpv6 {
        trusted: bool,
        mode: EnforceMode,
        msg: Option<Dhcpv6Summary>,
        note: Dhcpv6Note,
    },
    Forwarding(ForwardingCheck),
    /// The ARP proxy answered for `ip` with `mac`.
    ArpProxy {
        ip: std::net::Ipv4Addr,
        mac: crate::types::MacAddr,
    },
    /// The overlay's encapsulation of the copy to the overlay port.
    Tunnel {
        vid: Vid,
        vni: Option<crate::wire::vxlan::Vni>,
        /// Unicast: the remote guest's endpoint.
        endpoint: Option<std::net::IpAddr>,
        /// The copies made (1 for unicast; head-end replication: one per endpoint).
        copies: u16,
    },
}

/// One record of a trace.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Step {
    pub stage: Stage,
    pub outcome: Outcome,
    pub detail: Detail,
}

impl Step {
    const EMPTY: Step = Step {
        stage: Stage::Port,
        outcome: Outcome::Skip,
        detail: Detail::None,
    };
    #[inline(always)]
    pub fn new(stage: Stage, outcome: Outcome, detail: Detail) -> Step {
        Step {
            stage,
            outcome,
            detail,
        }
    }
    /// `Pass` if `result` is `Ok`, else `Drop` with its reason.
    #[inline(always)]
    pub fn of<T>(stage: Stage, result: &Result<T, DropReason>, detail: Detail) -> Step {
        let outcome = match result {
            Ok(_) => Outcome::Pass,
            Err(r) => Outcome::Drop(*r),
        };
        Step::new(stage, outcome, detail)
    }
}

/// Before forwarding, the outbound-ACL drop counters of the ports that have an
/// outbound ACL; after it, the ports whose counter moved are the ones an outbound ACL
/// took out of the output set.
#[derive(Clone, Copy, Debug)]
pub struct AclOutWatch {
    pub(crate) ports: [(PortId, u64); ACL_OUT_WATCH],
    pub(crate) len: usize,
}

/// The steps of one traced frame (fixed capacity: tracing allocates nothing).
#[derive(Clone, Debug)]
pub struct Trace {
    steps: [Step; TRACE_CAPACITY],
    len: usize,
    lost: usize,
    /// The ingress port and time of the traced frame.
    pub ingress: PortId,
    pub now: Timestamp,
    /// What `process_traced` returned.
    pub verdict: Option<Verdict>,
    pub(crate) watch: AclOutWatch,
}

impl Default for Trace {
    fn default() -> Self {
        Trace::new()
    }
}

impl Observer for Trace {
    const ACTIVE: bool = true;
    fn push(&mut self, step: Step) {
        match self.steps.get_mut(self.len) {
            Some(slot) => {
                *slot = step;
                self.len += 1;
            }
            None => self.lost += 1,
        }
    }
    fn acl_out_watch(&mut self) -> Option<&mut AclOutWatch> {
        Some(&mut self.watch)
    }
}

impl Trace {
    pub fn new() -> Trace {
        Trace {
            steps: [Step::EMPTY; TRACE_CAPACITY],
            len: 0,
            lost: 0,
            ingress: PortId(0),
            now: Timestamp(0),
            verdict: None,
            watch: AclOutWatch {
                ports: [(PortId(0), 0); ACL_OUT_WATCH],
                len: 0,
            },
        }
    }

    /// Forgets the previous frame.
    pub fn clear(&mut self) {
        self.len = 0;
        self.lost = 0;
        self.verdict = None;
        self.watch.len = 0;
    }

    /// The steps, in pipeline order.
    pub fn steps(&self) -> &[Step] {
        &self.steps[..self.len]
    }

    /// Steps that did not fit.
    pub fn lost(&self) -> usize {
        self.lost
    }
}
