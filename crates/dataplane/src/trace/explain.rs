//! The explanations of a trace: its steps ([`Trace::explain`]) and a verdict
//! ([`describe_verdict`]) in network-engineer words, with the switch's port names and
//! configuration (policy values, ACL rules, bindings). Rendering only: every decision
//! and the state it looked at come from the steps the pipeline recorded
//! ([`super`]); the switch is read for names and configuration, never changed.

use super::{
    ArpCheck, ArpNote, Detail, DhcpNote, DhcpSummary, ForwardingCheck, IpsgNote, Ipv6SgNote,
    NdNote, Outcome, PolicyCheck, RaGuardNote, SecureCheck, Stage, Step, Trace, UnspecifiedUse,
};
use crate::arp::ArpOp;
use crate::bindings::Binding;
use crate::dhcp::DhcpMessageType;
use crate::events::ViolationKind;
use crate::frame::{FrameView, OuterTag};
use crate::spec::{
    AclAction, EnforceMode, MacAclRule, Policy, PortRole, SourceGuard, TeamingPolicy, Violation,
    VlanMode,
};
use crate::stages::storm_control::StormClass;
use crate::switch::Switch;
use crate::types::{PortId, Vid};
use crate::verdict::{DropReason, Rewrite, Verdict};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

impl Trace {
    /// The steps in words. `sw` is the switch the frame was traced on (for names
    /// and configuration only).
    pub fn explain(&self, sw: &Switch) -> Vec<Explained> {
        let frame = self.steps().iter().find_map(|s| match s.detail {
            Detail::Frame(v) => Some(v),
            _ => None,
        });
        let names = Names {
            sw,
            out: self
                .verdict
                .map_or(crate::types::PortSet::EMPTY, |v| v.out_ports()),
        };
        let mut out: Vec<Explained> = self
            .steps()
            .iter()
            .map(|s| Explained {
                stage: s.stage.name(),
                title: s.stage.title(),
                decision: s.outcome.name(),
                reason: s.outcome.reason().map(DropReason::name),
                text: names.explain(self.ingress, frame.as_ref(), s),
            })
            .collect();
        if self.lost > 0 {
            out.push(Explained {
                stage: "trace",
                title: "trace",
                decision: "skip",
                reason: None,
                text: format!("{} more steps did not fit in the trace", self.lost),
            });
        }
        out
    }
}

/// One step in words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explained {
    /// [`Stage::name`].
    pub stage: &'static str,
    /// [`Stage::title`].
    #[serde(skip)]
    pub title: &'static str,
    /// [`Outcome::name`].
    pub decision: &'static str,
    /// The drop reason of a drop or an observed drop.
    pub reason: Option<&'static str>,
    pub text: String,
}

/// A verdict in words: `forward → vm2,uplink1 (VLAN 10)`, `drop: forged_transmit`,
/// `hold (DHCP ACK until its binding is committed) → vm1 (VLAN 10)`.
pub fn describe_verdict(sw: &Switch, v: &Verdict) -> String {
    let names = Names {
        sw,
        out: v.out_ports(),
    };
    let out = |f: &crate::verdict::Forward| {
        let ports: Vec<&str> = f.out.iter().map(|p| names.port(p)).collect();
        let mut s = format!("{} (VLAN {})", ports.join(","), f.vid);
        match f.rewrite {
            Rewrite::None => {}
            Rewrite::InsertOption82 => s.push_str(", option 82 inserted"),
            Rewrite::StripOption82 => s.push_str(", option 82 stripped"),
        }
        s
    };
    match v {
        Verdict::Forward(f) => format!("forward → {}", out(f)),
        Verdict::Drop(r) => format!("drop: {}", r.name()),
        Verdict::Hold(f, b) if b.source == crate::bindings::BindingSource::Nd => format!(
            "hold (first claim of {} until its ND binding is committed) → {}",
            b.ip,
            out(f)
        ),
        Verdict::Hold(f, _) => format!(
            "hold (DHCP ACK until its binding is committed) → {}",
            out(f)
        ),
    }
}

/// Renders steps with the switch's names and configuration.
struct Names<'a> {
    sw: &'a Switch,
    /// The verdict's output ports.
    out: crate::types::PortSet,
}

fn on_off(b: bool) -> &'static str {
    if b { "up" } else { "down" }
}

fn policy(p: Policy) -> &'static str {
    match p {
        Policy::Accept => "accept",
        Policy::Reject => "reject",
    }
}

fn violation_action(v: Violation) -> &'static str {
    match v {
        Violation::Protect => "protect: drop",
        Violation::Restrict => "restrict: drop and report",
        Violation::Shutdown => "shutdown: error-disable the port",
    }
}

/// RA guard's decision in words (`stages/ra_guard.rs` has the rules).
fn ra_guard_text(note: RaGuardNote) -> String {
    use crate::wire::icmpv6::msg_type;
    use crate::wire::ipv6::{Chain, FragmentKind};
    match note {
        RaGuardNote::Off => "RA guard is off on this port".into(),
        RaGuardNote::Trusted => "a trusted router port: not checked".into(),
        RaGuardNote::BadHeader => "the IPv6 header does not parse".into(),
        RaGuardNote::Chain {
            chain,
            fragment,
            icmp,
        } => {
            let first = if fragment == Some(FragmentKind::First) {
                " in a first fragment"
            } else {
                ""
            };
            match (chain, icmp) {
                (Chain::Upper { .. }, Some((msg_type::ROUTER_ADVERTISEMENT, _))) => {
                    format!("a Router Advertisement{first} from an untrusted port")
                }
                (Chain::Upper { .. }, Some((msg_type::REDIRECT, _))) => {
                    format!("a Redirect{first} from an untrusted port")
                }
                (Chain::Upper { .. }, Some((ty, code))) => {
                    format!("ICMPv6 type {ty} code {code}{first}: not a router message")
                }
                (Chain::Upper { protocol, .. }, None) => {
                    format!("upper layer {protocol}{first}: not ICMPv6")
                }
                (Chain::NoNextHeader { .. }, _) => "no next header: nothing follows".into(),
                (Chain::Esp { .. }, _) => {
                    "ESP: the upper layer is encrypted; only a peer with a security association can read it".into()
                }
                (Chain::NonFirstFragment, _) => {
                    "a non-first fragment: its first fragment is the one judged (RFC 7113 §3)".into()
                }
                (Chain::IncompleteChain, _) => {
                    "a first fragment without the whole header chain (RFC 7112)".into()
                }
                (Chain::Unknown(n), _) => {
                    format!("extension header {n} is not walked: what follows it is unknown")
                }
                (Chain::Malformed(m), _) => format!("malformed header chain ({m:?})"),
            }
        }
    }
}

/// "bound to MAC on port N (source)".
fn holder_text(h: crate::bindings::BindingHolder) -> String {
    format!(
        "bound to {} on port {} ({})",
        h.mac,
        h.port.0,
        h.source.name()
    )
}

/// A DHCPv6 guard step in words.
fn dhcpv6_text(
    trusted: bool,
    msg: Option<super::Dhcpv6Summary>,
    note: super::Dhcpv6Note,
) -> String {
    use super::Dhcpv6Note as N;
    let mut t = String::new();
    if let Some(m) = msg {
        let _ = write!(t, "{:?}", m.outer);
        if m.relays > 0 {
            let _ = write!(t, " ({} relay layer(s), inner {:?})", m.relays, m.inner);
        }
        let _ = write!(
            t,
            " xid {:#08x}, UDP {} → {}: ",
            m.transaction_id, m.ports.0, m.ports.1
        );
    }
    let from = if trusted { "trusted" } else { "untrusted" };
    match note {
        N::RateLimit { pps } => {
            let _ = write!(t, "over the port's DHCPv6 rate ({pps} pps)");
        }
        N::Fragment => t.push_str(
            "a fragment of UDP to 546/547: a fragmented DHCPv6 message cannot be checked",
        ),
        N::Malformed => t.push_str("does not parse as DHCPv6"),
        N::Hidden => t.push_str(
            "the upper layer is hidden (an extension header not walked, or a malformed chain)",
        ),
        N::Encrypted => t.push_str("ESP: the upper layer is encrypted"),
        N::ServerUntrusted => {
            let _ = write!(
                t,
                "a server message (or UDP to the client port 546) from an {from} port"
            );
        }
        N::ReleaseForeign { ip, holder } => {
            let _ = write!(
                t,
                "releases {ip}, {}: not this client's",
                holder_text(holder)
            );
        }
        N::Releases { why } => {
            let _ = write!(
                t,
                "{why:?} of the client's own bindings: removed once delivered"
            );
        }
        N::ClientMessage => t.push_str("a client message: trusted ports and uplinks only"),
        N::Forward => t.push_str("passes"),
        N::ReplyUnknownClient => {
            t.push_str("a REPLY for a client the switch does not know: trusted ports only")
        }
        N::ReplyClientTrusted { port } => {
            let _ = write!(
                t,
                "a REPLY for a client on trusted port {}: no binding",
                port.0
            );
        }
        N::Hold(b) => {
            let _ = write!(
                t,
                "binds {} to {} on port {}; the REPLY is held until the binding is durable",
                b.ip, b.mac, b.port.0
            );
        }
        N::TableFull => t.push_str("the binding table is full"),
        N::BindingConflict { ip, holder } => {
            let _ = write!(t, "{ip} is {}", holder_text(holder));
        }
        N::Covered { ip } => {
            let _ = write!(
                t,
                "{ip}: the client already holds it by configuration or the API"
            );
        }
        N::BindingRemoved { ip } => {
            let _ = write!(t, "valid lifetime 0: the binding of {ip} is removed");
        }
    }
    t
}

fn mode_suffix(mode: EnforceMode) -> &'static str {
    match mode {
        EnforceMode::Enforce => "",
        EnforceMode::Observe => " (observe mode: counted, not dropped)",
    }
}

fn class(c: StormClass) -> &'static str {
    match c {
        StormClass::Broadcast => "broadcast",
        StormClass::Multicast => "multicast",
        StormClass::UnknownUnicast => "unknown unicast",
    }
}

/// The name of a well-known EtherType.
pub fn ethertype_name(t: u16) -> Option<&'static str> {
    Some(match t {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x86dd => "IPv6",
        0x8035 => "RARP",
        0x8100 => "802.1Q",
        0x88a8 => "802.1ad",
        0x88cc => "LLDP",
        0x888e => "EAPoL",
        0x8809 => "slow protocols",
        0x88f7 => "PTP",
        0x8847 => "MPLS",
        0x8863 => "PPPoE discovery",
        0x8864 => "PPPoE session",
        t if t <= 1500 => "802.3 length",
        _ => return None,
    })
}

/// A MAC ACL rule in words, fields in configuration order ("deny ethertype
/// 0x86dd", "permit any").
pub fn rule_text(r: &MacAclRule) -> String {
    r.to_string()
}

/// VLAN IDs as ranges: "10,20,100-103", or "none".
fn vid_list(vids: impl Iterator<Item = Vid>) -> String {
    let list = crate::vid_list(vids, ",");
    if list.is_empty() { "none".into() } else { list }
}

fn vlan_mode(m: &VlanMode) -> String {
    match m {
        VlanMode::Access(v) => format!("access VLAN {v}"),
        VlanMode::Trunk { allowed, native } => {
            let mut s = format!("trunk, allowed {}", vid_list(allowed.iter()));
            match native {
                Some(n) => {
                    let _ = write!(s, ", native VLAN {n}");
                }
                None => s.push_str(", no native VLAN"),
            }
            s
        }
    }
}

fn tag_text(tag: Option<OuterTag>) -> String {
    match tag {
        None => "untagged".into(),
        Some(t) if t.tpid == 0x8100 && t.vid == 0 => {
            format!("priority-tagged (PCP {})", t.pcp_dei >> 1)
        }
        Some(t) if t.tpid == 0x8100 => format!("802.1Q tag VID {} PCP {}", t.vid, t.pcp_dei >> 1),
        Some(t) => format!("tag TPID 0x{:04x} VID {}", t.tpid, t.vid),
    }
}

fn dhcp_type(m: &DhcpSummary) -> String {
    match m.message_type {
        Some(t) => format!("DHCP{}", dhcp_type_name(t)),
        None if m.op == crate::dhcp::BOOTREPLY => "BOOTREPLY".into(),
        None => "BOOTREQUEST".into(),
    }
}

fn dhcp_type_name(t: DhcpMessageType) -> String {
    match t {
        DhcpMessageType::Discover => "DISCOVER".into(),
        DhcpMessageType::Offer => "OFFER".into(),
        DhcpMessageType::Request => "REQUEST".into(),
        DhcpMessageType::Decline => "DECLINE".into(),
        DhcpMessageType::Ack => "ACK".into(),
        DhcpMessageType::Nak => "NAK".into(),
        DhcpMessageType::Release => "RELEASE".into(),
        DhcpMessageType::Inform => "INFORM".into(),
        other => format!(" message type {}", other.code()),
    }
}

fn binding_text(ip: impl std::fmt::Display, b: &Binding, names: &Names<'_>) -> String {
    format!(
        "{ip} → {} on {} ({})",
        b.mac,
        names.port(b.port),
        match b.source {
            crate::bindings::BindingSource::Dhcp => "DHCP",
            crate::bindings::BindingSource::Static => "static",
            crate::bindings::BindingSource::Api => "API",
            crate::bindings::BindingSource::Dhcpv6 => "DHCPv6",
            crate::bindings::BindingSource::Nd => "ND",
        }
    )
}

impl Names<'_> {
    /// ND inspection's decision in words (`stages/nd_inspection.rs` has the rules).
    fn nd_text(&self, note: NdNote, src: Option<crate::types::MacAddr>) -> String {
        let src = src.map_or("?".into(), |m| m.to_string());
        match note {
            NdNote::Off => "ND inspection is off on this port".into(),
            NdNote::Trusted { gleaned, defended } => {
                let mut t = String::from("a trusted port: not inspected");
                if let Some(a) = defended {
                    let _ = write!(t, "; it defended {a}: another port's ND binding removed");
                }
                if let Some(a) = gleaned {
                    let _ = write!(
                        t,
                        "; its router's {a} gleaned (held until the binding is committed)"
                    );
                }
                t
            }
            NdNote::BadHeader => "the IPv6 header does not parse: nothing to bind".into(),
            NdNote::RateLimit { pps } => {
                format!("over the port's ND rate of {pps} messages/s")
            }
            NdNote::Malformed(Some(v)) => format!("an invalid NS/NA (RFC 4861 §7.1: {v:?})"),
            NdNote::Malformed(None) => "an NS/NA that does not parse".into(),
            NdNote::LinkLayer { option } => {
                format!("the link-layer address option says {option}, the frame comes from {src}")
            }
            NdNote::Owned { addr, holder } => format!(
                "claims {}: another port's or MAC's address",
                binding_text(addr, &holder, self)
            ),
            NdNote::UnsolicitedOverride { target } => format!(
                "an unsolicited NA with the Override flag for {target}, which the sender does not hold"
            ),
            NdNote::MaxAddresses { addr, max } => {
                format!("a new address {addr}: the port already holds its {max} ND bindings")
            }
            NdNote::Claim { addr, dad } => format!(
                "first claim of {addr} ({}): bound to {src} on this port, held until the binding is committed",
                if dad { "DAD" } else { "by use" }
            ),
            NdNote::Own {
                addr: Some(a),
                refreshed,
            } => format!(
                "{a} is the sender's own address{}",
                if refreshed {
                    "; its binding refreshed"
                } else {
                    ""
                }
            ),
            NdNote::Own { addr: None, .. } => "nothing to bind".into(),
        }
    }

    /// IPv6 Source Guard's decision in words.
    fn ipv6sg_text(
        &self,
        note: Ipv6SgNote,
        ingress: PortId,
        fmac: Option<crate::types::MacAddr>,
    ) -> String {
        match note {
            Ipv6SgNote::Off => "IPv6 Source Guard is off on this port".into(),
            Ipv6SgNote::Trusted => "the port is trusted for ND inspection: not checked".into(),
            Ipv6SgNote::BadHeader => "the IPv6 header does not parse".into(),
            Ipv6SgNote::Unspecified(u) => format!(
                "from :: — {}: allowed",
                match u {
                    UnspecifiedUse::Dad => "Duplicate Address Detection",
                    UnspecifiedUse::Mld => "MLD with Router Alert",
                    UnspecifiedUse::Dhcpv6Client => "a DHCPv6 client message",
                }
            ),
            Ipv6SgNote::UnspecifiedRefused => {
                "from :: but not DAD, MLD or a DHCPv6 client message".into()
            }
            Ipv6SgNote::Pending { src } => {
                format!("{src}: the binding ND inspection holds this frame for")
            }
            Ipv6SgNote::Lookup {
                src,
                binding,
                check,
            } => self.source_lookup(check, src, binding, ingress, fmac),
        }
    }

    /// A source guard's look-up (IPv4's or IPv6's): the binding of the source, and
    /// whether it is this port's (and, `ip-mac`, this MAC's).
    fn source_lookup(
        &self,
        check: SourceGuard,
        src: impl std::fmt::Display,
        binding: Option<Binding>,
        ingress: PortId,
        fmac: Option<crate::types::MacAddr>,
    ) -> String {
        let what = match check {
            SourceGuard::Ip => "ip",
            SourceGuard::IpMac => "ip-mac",
        };
        let Some(b) = binding else {
            return format!("check {what}: no binding for source {src} in this VLAN");
        };
        let mut t = format!("check {what}: binding {}", binding_text(src, &b, self));
        if b.port != ingress {
            t.push_str(": another port's address");
        } else if check == SourceGuard::IpMac && Some(b.mac) != fmac {
            let _ = write!(
                t,
                ": the frame's source MAC is {}",
                fmac.map_or("?".into(), |m| m.to_string())
            );
        } else {
            t.push_str(": matches");
        }
        t
    }

    fn port(&self, p: PortId) -> &str {
        self.sw.port(p).map_or("?", |p| p.name.as_str())
    }

    fn acl(&self, acl: u16, rule: Option<u32>, action: AclAction) -> String {
        let Some(a) = self.sw.mac_acls().get(acl as usize) else {
            return format!("ACL #{acl}: {}", action);
        };
        match rule.and_then(|r| a.spec.rules.get(r as usize).map(|x| (r, x))) {
            Some((r, rule)) => format!(
                "ACL \"{}\" rule {} ({}) → {}",
                a.spec.name,
                r + 1,
                rule_text(rule),
                action
            ),
            None => format!(
                "ACL \"{}\": no rule matched ({} rules) → implicit deny",
                a.spec.name,
                a.spec.rules.len()
            ),
        }
    }

    fn explain(&self, ingress: PortId, frame: Option<&FrameView>, s: &Step) -> String {
        let sw = self.sw;
        let port = sw.port(ingress);
        match (s.stage, s.detail) {
            (_, Detail::NoSuchPort) => format!("port #{} is not a port of this switch", ingress.0),
            (
                _,
                Detail::Port {
                    role,
                    admin_up,
                    link_up,
                    err_disabled,
                },
            ) => {
                let role = match role {
                    PortRole::Guest => "guest",
                    PortRole::Uplink => "uplink",
                    PortRole::Overlay => "overlay",
                };
                let mut t = format!(
                    "{} ({role}): admin {}, link {}",
                    self.port(ingress),
                    on_off(admin_up),
                    on_off(link_up)
                );
                if let Some(e) = err_disabled {
                    let _ = write!(
                        t,
                        ", error-disabled by {} at {:.3} s",
                        e.cause.words(),
                        e.since.0 as f64 / 1e9
                    );
                }
                t
            }
            (_, Detail::Frame(v)) => {
                let et = match ethertype_name(v.ethertype) {
                    Some(n) => format!("EtherType 0x{:04x} ({n})", v.ethertype),
                    None => format!("EtherType 0x{:04x}", v.ethertype),
                };
                format!(
                    "{} → {}, {}, {et}, {} bytes",
                    v.src,
                    v.dst,
                    tag_text(v.outer),
                    v.wire_len
                )
            }
            (Stage::Parse, _) => match s.outcome {
                Outcome::Drop(DropReason::BadEthertype) => {
                    "the EtherType/length field is in the undefined range 1501..=1535".into()
                }
                _ => "shorter than its Ethernet (14 bytes) or 802.1Q (18 bytes) header".into(),
            },
            (Stage::LinkLocal, Detail::Mac(dst)) => match s.outcome {
                Outcome::Drop(_) => format!(
                    "{dst} is an IEEE 802.1D reserved link-local group (STP, LACP, 802.1X, LLDP …): a bridge never forwards it"
                ),
                _ => format!("{dst} is not a reserved link-local group"),
            },
            (Stage::SourceMac, Detail::Mac(src)) => match s.outcome {
                Outcome::Drop(_) => {
                    format!("{src} is a group address or all zeros: no frame comes from it")
                }
                _ => format!("{src} is a unicast address"),
            },
            (_, Detail::Vlan { tag, vid }) => {
                let mode = port.map_or(String::new(), |p| vlan_mode(&p.vlan));
                match (s.outcome, vid) {
                    (Outcome::Drop(DropReason::TaggedOnAccessPort), _) => {
                        format!("{} on an {mode}: refused", tag_text(tag))
                    }
                    (Outcome::Drop(_), _) => {
                        format!("{}: not a VLAN of this port ({mode})", tag_text(tag))
                    }
                    (_, Some(v)) => format!("{} → VLAN {v} (port: {mode})", tag_text(tag)),
                    (_, None) => tag_text(tag),
                }
            }
            (
                _,
                Detail::Storm {
                    class: c,
                    limit_pps,
                    shutdown,
                },
            ) => match (s.outcome, limit_pps) {
                (Outcome::Drop(_), Some(l)) => format!(
                    "{} over the port's limit of {l} frames/s: dropped{}",
                    class(c),
                    if shutdown {
                        ", and the port error-disabled"
                    } else {
                        ""
                    }
                ),
                (_, Some(l)) => format!("{} within the port's limit of {l} frames/s", class(c)),
                (_, None) => format!("{}: no limit on this port", class(c)),
            },
            (_, Detail::Secure { mac, vid, check }) => match check {
                SecureCheck::Off => "port security is off on this port".into(),
                SecureCheck::EffectiveMac => format!("{mac} is the port's effective MAC"),
                SecureCheck::KnownSecure(k) => {
                    format!("{mac} is a secure MAC of this port ({})", k.name())
                }
                SecureCheck::Room { count, max } => format!(
                    "{mac} is a new source MAC; {count} of {max} secure MACs in use: room for it"
                ),
                SecureCheck::Learned { sticky, count, max } => format!(
                    "{mac} learned as a {} secure MAC ({count} of {max})",
                    if sticky { "sticky" } else { "dynamic" }
                ),
                SecureCheck::TableFull => {
                    format!("the MAC table is full: {mac} cannot be recorded")
                }
                SecureCheck::Violation {
                    kind,
                    owner,
                    count,
                    max,
                    action,
                } => match kind {
                    ViolationKind::MacMove => format!(
                        "{mac} is local to port {} in VLAN {vid}: MAC-move violation ({})",
                        owner.map_or("?", |o| self.port(o)),
                        violation_action(action)
                    ),
                    ViolationKind::TooMany => format!(
                        "{mac} would be secure MAC {} of at most {max} ({count} in use): violation ({})",
                        count + 1,
                        violation_action(action)
                    ),
                },
            },
            (_, Detail::Policy { mac, check }) => {
                let mut t = port.map_or(String::new(), |p| {
                    format!(
                        "promiscuous={} mac_changes={} forged_transmits={}: ",
                        policy(p.security.promiscuous),
                        policy(p.security.mac_changes),
                        policy(p.security.forged_transmits)
                    )
                });
                match check {
                    PolicyCheck::EffectiveMac => {
                        let _ = write!(t, "source {mac} is the port's effective MAC");
                    }
                    PolicyCheck::MacChange { from: None, owner } => {
                        let _ = write!(t, "first frame: {mac} becomes the port's initial MAC");
                        if let Some(o) = owner {
                            let _ = write!(t, ", but port {} holds it", self.port(o));
                        }
                    }
                    PolicyCheck::MacChange {
                        from: Some(f),
                        owner,
                    } => {
                        let _ = write!(t, "MAC change {f} → {mac}");
                        if let Some(o) = owner {
                            let _ = write!(t, ", but port {} holds {mac}", self.port(o));
                        }
                    }
                    PolicyCheck::ForgedAccepted { effective } => {
                        let _ = write!(
                            t,
                            "source {mac} is not the effective MAC {effective}; forged transmits accepted (not learned)"
                        );
                    }
                    PolicyCheck::ForgedConflict { owner } => {
                        let _ = write!(
                            t,
                            "source {mac} is local to port {}: never usable by another port",
                            self.port(owner)
                        );
                    }
                    PolicyCheck::Forged { effective } => {
                        let _ = write!(
                            t,
                            "source {mac} is not the port's effective MAC {effective}: forged transmit"
                        );
                    }
                }
                t
            }
            (
                _,
                Detail::Acl {
                    port: p,
                    acl,
                    rule,
                    action,
                },
            ) => match s.stage {
                Stage::MacAclOut => {
                    let mut t = format!("{}: {}", self.port(p), self.acl(acl, rule, action));
                    if action == AclAction::Deny {
                        t.push_str(" (this copy is not sent)");
                    }
                    t
                }
                _ => self.acl(acl, rule, action),
            },
            (Stage::MacAclIn, Detail::None) => "no inbound MAC ACL on this port".into(),
            (_, Detail::Reflection { mac, owner }) => match owner {
                Some(e) => format!(
                    "{mac} is local to port {} ({}): a frame from the network cannot come from it (a loop or a spoof)",
                    self.port(e.port),
                    e.kind.name()
                ),
                None => format!("{mac} learned on this uplink"),
            },
            (
                _,
                Detail::Dhcp {
                    trusted,
                    mode,
                    msg,
                    note,
                },
            ) => {
                let mut t = String::new();
                if let Some(m) = &msg {
                    let _ = write!(t, "{} chaddr {}", dhcp_type(m), m.chaddr);
                    if m.yiaddr != Ipv4Addr::UNSPECIFIED {
                        let _ = write!(t, ", yiaddr {}", m.yiaddr);
                    }
                    if m.ciaddr != Ipv4Addr::UNSPECIFIED {
                        let _ = write!(t, ", ciaddr {}", m.ciaddr);
                    }
                    t.push_str("; ");
                }
                t.push_str(if trusted {
                    "trusted port: "
                } else {
                    "untrusted port: "
                });
                let body = match note {
                    DhcpNote::RateLimit { pps } => format!(
                        "over the port's DHCP rate of {pps} messages/s{}",
                        if mode == EnforceMode::Enforce {
                            ", the port is error-disabled"
                        } else {
                            ""
                        }
                    ),
                    DhcpNote::Malformed => "the DHCP message does not parse".into(),
                    DhcpNote::Fragment => {
                        "a fragment of UDP to port 67/68: a fragmented DHCP message cannot be checked".into()
                    }
                    DhcpNote::Ipv4Malformed => {
                        "the IPv4 header does not parse: it could be read as anything, DHCP included".into()
                    }
                    DhcpNote::UnexpectedMessage => {
                        "a BOOTREQUEST of a type no client sends".into()
                    }
                    DhcpNote::ServerUntrusted => {
                        "a server message from an untrusted port (a rogue DHCP server?)".into()
                    }
                    DhcpNote::ChaddrMismatch => {
                        let src = frame.map_or(String::from("?"), |f| f.src.to_string());
                        format!("chaddr is not the Ethernet source {src}")
                    }
                    DhcpNote::Option82Untrusted => {
                        "a client message that already carries option 82".into()
                    }
                    DhcpNote::ReleaseForeign { ip, holder } => {
                        format!("{ip} is bound to port {}, not this one", self.port(holder))
                    }
                    DhcpNote::Releases { ip, why } => {
                        format!("the binding of {ip} is removed ({why:?}) once this is delivered")
                            .to_lowercase()
                    }
                    DhcpNote::BindingRemoved { ip, why } => {
                        format!("binding of {ip} removed ({why:?})").to_lowercase()
                    }
                    DhcpNote::Forward { rewrite } => match rewrite {
                        Rewrite::None => "passes".into(),
                        Rewrite::InsertOption82 => "passes; option 82 inserted".into(),
                        Rewrite::StripOption82 => "passes; option 82 stripped".into(),
                    },
                    DhcpNote::AckUnknownClient => {
                        "ACK for a client the switch does not know: trusted ports and uplinks only"
                            .into()
                    }
                    DhcpNote::AckClientTrusted { port } => format!(
                        "ACK for a client on trusted port {}: no binding",
                        self.port(port)
                    ),
                    DhcpNote::Hold(b) => format!(
                        "ACK binds {} → {} on {} in VLAN {} ({}): held until the binding is committed",
                        b.ip,
                        b.mac,
                        self.port(b.port),
                        b.vid,
                        b.lease_secs
                            .map_or("infinite lease".into(), |l| format!("lease {l} s"))
                    ),
                    DhcpNote::TableFull => "the binding table is full".into(),
                    DhcpNote::BindingConflict { ip, holder } => format!(
                        "{ip} is bound to {} on {} ({}): the ACK is refused, that binding stays",
                        holder.mac,
                        self.port(holder.port),
                        holder.source.name()
                    ),
                    DhcpNote::AckCovered { ip, source } => format!(
                        "{ip} is already bound to this client ({}): passes, no lease replaces that binding",
                        source.name()
                    ),
                    DhcpNote::NakNoLearnedBinding => {
                        "NAK: the client has no DHCP binding on its port; nothing removed".into()
                    }
                };
                t.push_str(&body);
                t.push_str(mode_suffix(mode));
                t
            }
            (_, Detail::Arp { mode, arp, note }) => {
                let mut t = String::new();
                if let Some(a) = &arp {
                    let op = match a.oper {
                        ArpOp::Request => "request".to_string(),
                        ArpOp::Reply => "reply".to_string(),
                        ArpOp::Other(n) => format!("op {n}"),
                    };
                    let _ = write!(
                        t,
                        "ARP {op} sender {} {} → target {}: ",
                        a.sender_ip, a.sender_mac, a.target_ip
                    );
                }
                let body = match note {
                    ArpNote::Off => "ARP inspection is off on this port".into(),
                    ArpNote::Trusted => "trusted port: not inspected".into(),
                    ArpNote::RateLimit { pps } => format!(
                        "over the port's ARP rate of {pps} messages/s{}",
                        if mode == EnforceMode::Enforce {
                            ", the port is error-disabled"
                        } else {
                            ""
                        }
                    ),
                    ArpNote::Malformed => "not an Ethernet/IPv4 ARP message".into(),
                    ArpNote::Invalid { check } => match check {
                        ArpCheck::SrcMac => "validate src-mac: the Ethernet source is not the sender MAC".into(),
                        ArpCheck::DstMac => "validate dst-mac: the Ethernet destination of the reply is not the target MAC".into(),
                        ArpCheck::Ip => "validate ip: a 0.0.0.0, broadcast or multicast address".into(),
                    },
                    ArpNote::Probe => "an ARP probe (sender 0.0.0.0) claims no address".into(),
                    ArpNote::Acl { acl, rule, permit } => {
                        let name = sw
                            .arp_acls
                            .get(acl as usize)
                            .map_or("?", |a| a.name.as_str());
                        match rule {
                            Some(r) => format!(
                                "ARP ACL \"{name}\" rule {} → {}",
                                r + 1,
                                if permit { "permit" } else { "deny" }
                            ),
                            None => format!(
                                "ARP ACL \"{name}\" is static: no rule matched → deny"
                            ),
                        }
                    }
                    ArpNote::Binding(b) => {
                        let sender = arp.map(|a| (a.sender_ip, a.sender_mac));
                        match (b, sender) {
                            (Some(b), Some((ip, mac))) if b.mac == mac => {
                                format!("binding {}: matches", binding_text(ip, &b, self))
                            }
                            (Some(b), Some((ip, mac))) => format!(
                                "binding {}: the sender claims {mac}",
                                binding_text(ip, &b, self)
                            ),
                            (_, Some((ip, _))) => format!("no binding for {ip} in this VLAN"),
                            _ => "no binding".into(),
                        }
                    }
                };
                t.push_str(&body);
                t.push_str(mode_suffix(mode));
                t
            }
            (_, Detail::Ipsg { mode, note }) => {
                let mut t = match note {
                    IpsgNote::Off => "IP Source Guard is off on this port".into(),
                    IpsgNote::Trusted => "the port is trusted for DHCP: not checked".into(),
                    IpsgNote::DhcpExempt => {
                        "a DHCP client without an address (0.0.0.0 → UDP 67) is exempt".into()
                    }
                    IpsgNote::Lookup {
                        src: None, check, ..
                    } => {
                        let what = match check {
                            SourceGuard::Ip => "ip",
                            SourceGuard::IpMac => "ip-mac",
                        };
                        format!("check {what}: no valid IPv4 header")
                    }
                    IpsgNote::Lookup {
                        src: Some(ip),
                        binding,
                        check,
                    } => self.source_lookup(check, ip, binding, ingress, frame.map(|f| f.src)),
                };
                t.push_str(mode_suffix(mode));
                t
            }
            (_, Detail::RaGuard { mode, note }) => {
                let mut t = ra_guard_text(note);
                t.push_str(mode_suffix(mode));
                t
            }
            (_, Detail::Nd { mode, note }) => {
                let mut t = self.nd_text(note, frame.map(|f| f.src));
                t.push_str(mode_suffix(mode));
                t
            }
            (_, Detail::Ipv6Sg { mode, note }) => {
                let mut t = self.ipv6sg_text(note, ingress, frame.map(|f| f.src));
                t.push_str(mode_suffix(mode));
                t
            }
            (
                _,
                Detail::Dhcpv6 {
                    trusted,
                    mode,
                    msg,
                    note,
                },
            ) => {
                let mut t = dhcpv6_text(trusted, msg, note);
                t.push_str(mode_suffix(mode));
                t
            }
            (_, Detail::Forwarding(f)) => self.forwarding(ingress, frame, s.outcome, &f),
            (_, Detail::ArpProxy { ip, mac }) => format!(
                "ARP proxy: {ip} is at {mac} (binding table); the switch answered, the request is not flooded"
            ),
            (
                _,
                Detail::Tunnel {
                    vid,
                    vni,
                    endpoint,
                    copies,
                },
            ) => {
                let vni = vni.map_or("?".to_string(), |v| v.to_string());
                match endpoint {
                    Some(e) => format!(
                        "VLAN {vid} is VNI {vni}: the destination is a remote guest behind endpoint {e}; encapsulated in VXLAN to {e}"
                    ),
                    None => format!(
                        "VLAN {vid} is VNI {vni}: head-end replication, one VXLAN copy to each of {copies} endpoint(s) with members in VLAN {vid}"
                    ),
                }
            }
            (Stage::DhcpTrustedDelivery, _) => match s.outcome {
                Outcome::Drop(_) => {
                    "every output port is untrusted for DHCP/DHCPv6: nowhere to deliver it".into()
                }
                _ => "untrusted ports left out".into(),
            },
            _ => String::new(),
        }
    }

    fn forwarding(
        &self,
        ingress: PortId,
        frame: Option<&FrameView>,
        outcome: Outcome,
        f: &ForwardingCheck,
    ) -> String {
        let dst = frame.map_or(String::from("?"), |v| v.dst.to_string());
        let from_guest = self
            .sw
            .port(ingress)
            .is_some_and(|p| p.role == PortRole::Guest);
        let mut t = if f.group {
            let what = if frame.is_some_and(|v| v.dst.is_broadcast()) {
                "broadcast"
            } else {
                "multicast"
            };
            if from_guest {
                format!("{what}: flooded to the guests of VLAN {}", f.vid)
            } else {
                format!(
                    "{what} from the network: to the guests of VLAN {} that accept broadcasts on this uplink",
                    f.vid
                )
            }
        } else {
            match &f.entry {
                Some(e) if e.kind.is_local() => format!(
                    "MAC table: {dst} in VLAN {} is on {} ({})",
                    f.vid,
                    self.port(e.port),
                    e.kind.name()
                ),
                Some(e) => format!(
                    "MAC table: {dst} in VLAN {} was learned on {} (not local: unknown unicast)",
                    f.vid,
                    self.port(e.port)
                ),
                None => format!("MAC table: {dst} unknown in VLAN {}", f.vid),
            }
        };
        if from_guest && (f.group || !f.entry.is_some_and(|e| e.kind.is_local())) {
            let policy = match f.policy {
                TeamingPolicy::OriginatingPort => "originating-port",
                TeamingPolicy::SourceMacHash => "source-mac-hash",
                TeamingPolicy::IpHash => "ip-hash",
                TeamingPolicy::ExplicitFailover => "explicit-failover",
            };
            let team = self.sw.port(ingress).and_then(|p| p.team.as_ref());
            let list = |l: &[PortId]| -> String {
                let names: Vec<&str> = l.iter().map(|u| self.port(*u)).collect();
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(",")
                }
            };
            let policy = match team {
                Some(tm) => format!(
                    "{policy} (active {}; standby {})",
                    list(&tm.active),
                    list(&tm.standby)
                ),
                None => policy.to_string(),
            };
            match f.uplink {
                Some(u) => {
                    let _ = write!(
                        t,
                        "; teaming {policy}: uplink {} ({})",
                        self.port(u),
                        if f.pinned {
                            "the port's pinned uplink in this VLAN"
                        } else {
                            "chosen for this frame"
                        }
                    );
                }
                None => {
                    let _ = write!(t, "; teaming {policy}: no usable uplink in this VLAN");
                }
            }
        }
        match outcome {
            Outcome::Drop(r) => {
                let why = match r {
                    DropReason::Hairpin => "the destination is the port the frame came from",
                    DropReason::NoDestination => "no other port of the VLAN to deliver to",
                    DropReason::UnknownUnicast => {
                        "unknown unicast from the network goes nowhere (no promiscuous port)"
                    }
                    DropReason::NoUplink => {
                        "it needs an uplink and none that carries the VLAN is up"
                    }
                    DropReason::MacChangeBlocked => {
                        "the destination port is blocked (mac_changes = reject, its MAC changed)"
                    }
                    DropReason::PortDown | DropReason::ErrDisabled => {
                        "the destination port is down or error-disabled"
                    }
                    DropReason::StormControl => {
                        "unknown unicast over the port's storm-control limit"
                    }
                    DropReason::MacAclDeny => "every copy refused by an outbound MAC ACL",
                    _ => "",
                };
                if !why.is_empty() {
                    let _ = write!(t, ": {why}");
                }
            }
            _ => {
                // Ports in the output only because they are promiscuous.
                let copies: Vec<&str> = self
                    .out
                    .iter()
                    .filter(|p| {
                        Some(*p) != f.uplink
                            && f.entry.is_none_or(|e| e.port != *p)
                            && self.sw.port(*p).is_some_and(|x| {
                                x.role == PortRole::Guest
                                    && x.security.promiscuous == Policy::Accept
                            })
                    })
                    .map(|p| self.port(p))
                    .collect();
                if !f.group && !copies.is_empty() {
                    let _ = write!(t, "; promiscuous copies: {}", copies.join(","));
                }
            }
        }
        t
    }
}
