//! The pipeline: the ordered stages one frame goes through, and the batch entry
//! point. A pure function of (switch state, now, ingress port, frame) → verdict.
//!
//! Order, from a guest port: port up (admin, link, err-disable) → parse → reserved
//! link-local → source MAC valid → VLAN classification → storm control (broadcast,
//! multicast) → port security source check (MAC move, limit) → vSwitch policy (forged transmits / MAC
//! changes) → inbound MAC ACL → port security admission (secure MACs, maximum) →
//! DHCP snooping and IP Source Guard (IPv4) or ARP inspection, then duplicate-IP
//! detection and the IP-seen table (ARP; detection only, not traced), or RA guard
//! (IPv6), then DHCPv6 guard (IPv6, in a VLAN where it is on) → ND inspection (may
//! hold the frame with a first claim's binding) → IPv6 Source Guard (IPv6; the
//! chain walked once for the four) →
//! forwarding (unknown-unicast storm control; egress filters: down ports, MAC-change
//! block, promiscuous copies; outbound MAC ACLs).
//! From an uplink: port up → parse → reserved link-local → source MAC valid → VLAN
//! classification → storm control → reflection filter (learns the source) → inbound
//! MAC ACL → RA guard, ND inspection (IPv6; while the uplinks are trusted: skipped,
//! ND inspection gleans their routers' addresses) → forwarding.
//!
//! Every stage reports what it saw and decided to an observer (`trace.rs`): nothing
//! on the fast path ([`crate::trace::NoTrace`]), the steps of `portcullis trace`
//! with [`Switch::process_traced`].
//!
//! Invariants: every frame is counted as received on its ingress port, and its
//! outcome is counted exactly once (forwarded copies per output port, or one drop
//! under one reason on the port where it was decided). No allocation per frame.

use crate::bindings::BindingUpdate;
use crate::forwarding;
use crate::frame::{FrameView, IngressFrame, is_reserved_link_local};
use crate::spec::AclAction;
use crate::spec::PortRole;
use crate::stages::dhcp_snooping::DhcpAction;
use crate::stages::dhcpv6_guard::{self, Dhcpv6Action};
use crate::stages::mac_acl::acl_key;
use crate::stages::storm_control::{self, StormClass};
use crate::stages::{
    arp_inspection, arp_proxy, dhcp_snooping, ip_conflict, ip_source_guard, ipv6_common,
    ipv6_source_guard, nd_inspection, port_security, ra_guard, vswitch_policy,
};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = crate::wire::ipv6::ETHERTYPE;
use crate::switch::Switch;
use crate::trace::{Detail, ForwardingCheck, NoTrace, Observer, Outcome, Stage, Step, Trace};
use crate::types::{PortId, PortSet, Timestamp};
use crate::verdict::{DropReason, Forward, Rewrite, Verdict};

// Re-exported: the public API has named it `pipeline::DropSide`.
pub use crate::verdict::DropSide;
use crate::vlan;

/// A forwarded frame's verdict but its output ports, as `decide` returns it.
struct Decided {
    vid: crate::types::Vid,
    pcp_dei: u8,
    body_offset: u16,
    rewrite: Rewrite,
    hold: Option<BindingUpdate>,
    tunnel: crate::overlay::Tunnel,
}

/// What DHCP snooping (or DHCPv6 guard) asks of a frame's copies once forwarding
/// has chosen them: deliver to ports trusted for that family only (dropped as
/// `none_left` if none is left), and bindings to release once the message is
/// delivered.
#[derive(Clone, Copy)]
struct TrustedDelivery {
    none_left: DropReason,
    release: Release,
}

/// The bindings a delivered RELEASE/DECLINE removes.
#[derive(Clone, Copy)]
enum Release {
    None,
    /// DHCP: this address.
    Dhcp(std::net::Ipv4Addr, crate::events::BindingRemoval),
    /// DHCPv6 (trusted ports for DHCPv6): the sender's bindings of the message's
    /// addresses (`dhcpv6_guard::release_delivered`). `v6` alone: a DHCPv6 message
    /// that releases nothing.
    Dhcpv6(Option<crate::events::BindingRemoval>),
}

/// The inbound MAC ACL of `port`, if it has one.
#[inline]
fn acl_in(
    sw: &mut Switch,
    port: PortId,
    vid: crate::types::Vid,
    view: &FrameView,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let Some(a) = sw.ports[port.index()].acl_in else {
        t.note(|| Step::new(Stage::MacAclIn, Outcome::Skip, Detail::None));
        return Ok(());
    };
    let d = sw.acls[a as usize].decide(&acl_key(view, vid));
    let r = match d.action {
        AclAction::Permit => Ok(()),
        AclAction::Deny => Err(DropReason::MacAclDeny),
    };
    t.note(|| {
        let (acl, rule, action) = (a, d.rule, d.action);
        Step::of(
            Stage::MacAclIn,
            &r,
            Detail::Acl {
                port,
                acl,
                rule,
                action,
            },
        )
    });
    r
}

/// [`storm_control::check`], reported to `t` with the port's limit for `class`.
#[inline(always)]
fn storm_control_observed(
    sw: &mut Switch,
    port: PortId,
    class: StormClass,
    now: Timestamp,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let r = storm_control::check(sw, port, class, now);
    t.note(|| {
        let spec = sw.ports[port.index()].features.storm_control;
        let limit_pps = spec.and_then(|s| match class {
            StormClass::Broadcast => s.broadcast_pps,
            StormClass::Multicast => s.multicast_pps,
            StormClass::UnknownUnicast => s.unknown_unicast_pps,
        });
        let shutdown = spec.is_some_and(|s| s.shutdown);
        let detail = Detail::Storm {
            class,
            limit_pps,
            shutdown,
        };
        match (r, limit_pps) {
            (Ok(()), None) => Step::new(Stage::StormControl, Outcome::Skip, detail),
            _ => Step::of(Stage::StormControl, &r, detail),
        }
    });
    r
}

impl Switch {
    /// Decides one frame received on `ingress` at `now`, and counts it.
    #[inline(always)]
    pub fn process(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &IngressFrame<'_>,
    ) -> Verdict {
        self.process_observed(now, ingress, frame, &mut NoTrace)
    }

    /// [`Switch::process`], recording every stage's decision in `trace` (cleared
    /// first). Returns the same verdict and changes the switch exactly as `process`
    /// does: the frame is processed, not simulated (see `trace.rs`). To trace without
    /// changing a running switch, trace on a copy of it.
    pub fn process_traced(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &IngressFrame<'_>,
        trace: &mut Trace,
    ) -> Verdict {
        trace.clear();
        trace.ingress = ingress;
        trace.now = now;
        let v = self.process_observed(now, ingress, frame, trace);
        trace.verdict = Some(v);
        v
    }

    #[inline(always)]
    fn process_observed<O: Observer>(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &IngressFrame<'_>,
        t: &mut O,
    ) -> Verdict {
        let Some(counters) = self.counters.get_mut(ingress.index()) else {
            // Not a port of this switch: the runtime's bug, but never a panic.
            t.note(|| {
                let r = DropReason::PortDown;
                Step::new(Stage::Port, Outcome::Drop(r), Detail::NoSuchPort)
            });
            return Verdict::Drop(DropReason::PortDown);
        };
        counters.rx_frames += 1;
        counters.rx_bytes += frame.data.len() as u64 + if frame.tag.is_some() { 4 } else { 0 };
        let mut out = PortSet::EMPTY;
        match self.decide(now, ingress, frame, &mut out, t) {
            Ok(d) => {
                let fwd = Forward {
                    vid: d.vid,
                    pcp_dei: d.pcp_dei,
                    body_offset: d.body_offset,
                    out,
                    rewrite: d.rewrite,
                    tunnel: d.tunnel,
                };
                if let Some(binding) = d.hold {
                    return Verdict::Hold(fwd, binding);
                }
                let body = (frame.data.len() - fwd.body_offset as usize) as u64 + 12;
                for out in fwd.out.iter() {
                    let tag = self.ports[out.index()].egress_tag_len(fwd.vid) as u64;
                    let c = &mut self.counters[out.index()];
                    c.tx_frames += 1;
                    c.tx_bytes += body + tag;
                }
                if fwd.tunnel != crate::overlay::Tunnel::None {
                    self.count_tunneled(fwd.tunnel, fwd.vid, body);
                }
                Verdict::Forward(fwd)
            }
            Err((reason, DropSide::Ingress)) => {
                self.counters[ingress.index()].rx_drop(reason);
                Verdict::Drop(reason)
            }
            Err((reason, DropSide::Egress(port))) => {
                self.counters[port.index()].tx_drop(reason);
                Verdict::Drop(reason)
            }
            Err((reason, DropSide::Counted)) => Verdict::Drop(reason),
        }
    }

    /// What leaves for a frame the pipeline forwarded from `ingress` (a
    /// `Verdict::Forward`, or a held ACK [`Switch::release_held`] released): the
    /// bytes, rewritten in the switch's own buffer if `fwd.rewrite` asks
    /// (`csum_partial`: the frame's L4 checksum was left to offload), and each copy's
    /// port and tag (`egress.rs`). `data` is the frame as received (from the
    /// destination MAC; an in-band tag, if any, is cut out by `fwd.body_offset`).
    /// No allocation.
    #[inline]
    pub fn output<'a>(
        &'a mut self,
        ingress: PortId,
        fwd: &Forward,
        data: &'a [u8],
        csum_partial: bool,
    ) -> crate::egress::Output<'a> {
        self.egress
            .output(self.overlay.as_ref(), ingress, fwd, data, csum_partial)
    }

    /// Decides a batch of frames received on one port. `verdicts` is cleared and
    /// filled with one verdict per frame, in order (reuse it: no allocation once it
    /// has grown to the batch size).
    pub fn process_batch<'a>(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frames: impl Iterator<Item = IngressFrame<'a>>,
        verdicts: &mut Vec<Verdict>,
    ) {
        verdicts.clear();
        for f in frames {
            let v = self.process(now, ingress, &f);
            verdicts.push(v);
        }
    }

    /// Decides one frame: its output ports into `out`, the rest of its verdict
    /// returned (small, so that nothing large moves through the `Result`s).
    #[inline(always)]
    fn decide<O: Observer>(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        frame: &IngressFrame<'_>,
        out: &mut PortSet,
        t: &mut O,
    ) -> Result<Decided, (DropReason, DropSide)> {
        let ing = |r| (r, DropSide::Ingress);
        let port = &self.ports[ingress.index()];
        let r = port.down_reason().map_or(Ok(()), Err);
        t.note(|| {
            let (role, admin_up, link_up) = (port.role, port.admin_up, port.link_up);
            let err_disabled = port.err_disabled;
            let detail = Detail::Port {
                role,
                admin_up,
                link_up,
                err_disabled,
            };
            Step::of(Stage::Port, &r, detail)
        });
        r.map_err(ing)?;
        let role = port.role;
        let view = FrameView::parse(frame);
        t.note(|| match view {
            Ok(v) => Step::new(Stage::Parse, Outcome::Pass, Detail::Frame(v)),
            Err(r) => Step::new(Stage::Parse, Outcome::Drop(r), Detail::None),
        });
        let view = view.map_err(ing)?;
        let reserved = is_reserved_link_local(view.dst);
        t.note(|| {
            let r = if reserved {
                Err(DropReason::LinkLocalReserved)
            } else {
                Ok(())
            };
            Step::of(Stage::LinkLocal, &r, Detail::Mac(view.dst))
        });
        if reserved {
            return Err(ing(DropReason::LinkLocalReserved));
        }
        let valid_src = view.src.is_valid_source();
        t.note(|| {
            let r = if valid_src {
                Ok(())
            } else {
                Err(DropReason::InvalidSourceMac)
            };
            Step::of(Stage::SourceMac, &r, Detail::Mac(view.src))
        });
        if !valid_src {
            return Err(ing(DropReason::InvalidSourceMac));
        }
        let vid = vlan::classify(&port.vlan, &view);
        t.note(|| {
            let detail = Detail::Vlan {
                tag: view.outer,
                vid: vid.ok(),
            };
            Step::of(Stage::Vlan, &vid, detail)
        });
        let vid = vid.map_err(ing)?;
        if view.dst.is_group() {
            let class = if view.dst.is_broadcast() {
                StormClass::Broadcast
            } else {
                StormClass::Multicast
            };
            storm_control_observed(self, ingress, class, now, t).map_err(ing)?;
        }
        match role {
            PortRole::Guest => {
                port_security::check_source(self, ingress, vid, view.src, now, t).map_err(ing)?;
                vswitch_policy::check_source(self, ingress, vid, view.src, now, t).map_err(ing)?;
                acl_in(self, ingress, vid, &view, t).map_err(ing)?;
                port_security::admit(self, ingress, vid, view.src, now, t).map_err(ing)?;
            }
            PortRole::Uplink | PortRole::Overlay => {
                let owner = self.macs.learn(vid, view.src, ingress, now);
                t.note(|| {
                    let r = owner.map_or(Ok(()), |_| Err(DropReason::Reflection));
                    let mac = view.src;
                    Step::of(
                        Stage::ReflectionFilter,
                        &r,
                        Detail::Reflection { mac, owner },
                    )
                });
                if owner.is_some() {
                    return Err(ing(DropReason::Reflection));
                }
                acl_in(self, ingress, vid, &view, t).map_err(ing)?;
            }
        }
        let l3 = frame
            .data
            .get(view.body_offset as usize + 2..)
            .unwrap_or(&[]);
        let mut hold = None;
        let mut rewrite = Rewrite::None;
        let mut trusted_only = None;
        match view.ethertype {
            ETHERTYPE_IPV4 => {
                // Parsed once, for both stages, and only when one of them is on.
                let snooping = self.vlan(vid).is_some_and(|v| v.dhcp_snooping);
                let ip = if snooping || self.ports[ingress.index()].ipsg.is_some() {
                    crate::dhcp::Ipv4Facts::parse(l3)
                } else {
                    crate::dhcp::Ipv4Facts::default()
                };
                if snooping && dhcp_snooping::concerns(&ip) {
                    match dhcp_snooping::inspect(self, ingress, vid, &view, l3, &ip, now, t)
                        .map_err(ing)?
                    {
                        DhcpAction::Forward(r) => rewrite = r,
                        DhcpAction::ForwardTrustedOnly(r, none_left) => {
                            rewrite = r;
                            trusted_only = Some(TrustedDelivery {
                                none_left,
                                release: Release::None,
                            });
                        }
                        DhcpAction::Release(r, ip, why) => {
                            rewrite = r;
                            trusted_only = Some(TrustedDelivery {
                                none_left: DropReason::DhcpNoTrustedPort,
                                release: Release::Dhcp(ip, why),
                            });
                        }
                        DhcpAction::Hold(b, r) => {
                            hold = Some(b);
                            rewrite = r;
                        }
                    }
                }
                ip_source_guard::check(self, ingress, vid, &view, &ip, t).map_err(ing)?;
            }
            ETHERTYPE_ARP => {
                arp_inspection::inspect(self, ingress, vid, &view, l3, now, t).map_err(ing)?;
                if role == PortRole::Guest {
                    // Detection only: never changes the verdict.
                    ip_conflict::arp_claim(self, ingress, vid, l3, now);
                    arp_proxy::answer(self, ingress, vid, &view, l3, t).map_err(ing)?;
                }
            }
            ETHERTYPE_IPV6
                if {
                    // A guest's ordinary packet from its own bound address passes
                    // every IPv6 stage untouched: said at once (stages/ipv6_common.rs).
                    // Traced frames go through the stages, which show their decisions.
                    let p = &self.ports[ingress.index()];
                    let guarded = p.ra_guard.is_some()
                        || p.nd.is_some()
                        || p.ipv6sg.is_some()
                        || self.vlan(vid).is_some_and(|v| v.dhcpv6_guard);
                    !O::ACTIVE && guarded && ipv6_common::passes(self, ingress, vid, &view, l3, now)
                } => {}
            ETHERTYPE_IPV6 => {
                // The chain is walked once, for every IPv6 stage, and only when one
                // of them is on for the port (DHCPv6 guard: for its VLAN).
                let p = &self.ports[ingress.index()];
                let dhcpv6 = self.vlan(vid).is_some_and(|v| v.dhcpv6_guard);
                let facts =
                    if dhcpv6 || p.ra_guard.is_some() || p.nd.is_some() || p.ipv6sg.is_some() {
                        crate::wire::ipv6::Ipv6Facts::parse(l3)
                    } else {
                        Err(crate::wire::WireError::NotIpv6)
                    };
                ra_guard::check(self, ingress, l3, &facts, t).map_err(ing)?;
                if dhcpv6 {
                    match dhcpv6_guard::inspect(self, ingress, vid, &view, l3, &facts, now, t)
                        .map_err(ing)?
                    {
                        Dhcpv6Action::Forward => {}
                        Dhcpv6Action::ForwardTrustedOnly(none_left) => {
                            trusted_only = Some(TrustedDelivery {
                                none_left,
                                release: Release::Dhcpv6(None),
                            });
                        }
                        Dhcpv6Action::Release(why) => {
                            trusted_only = Some(TrustedDelivery {
                                none_left: DropReason::Dhcpv6NoTrustedPort,
                                release: Release::Dhcpv6(Some(why)),
                            });
                        }
                        Dhcpv6Action::Hold(b) => hold = Some(b),
                    }
                }
                // One hold per frame: a REPLY's binding (DHCPv6 snooping) wins over
                // an ND claim the same frame would make; the claim is made by the
                // sender's next packet.
                if let Some(b) = nd_inspection::check(self, ingress, vid, &view, l3, &facts, now, t)
                    .map_err(ing)?
                    && hold.is_none()
                {
                    hold = Some(b);
                }
                ipv6_source_guard::check(self, ingress, vid, &view, l3, &facts, hold.as_ref(), t)
                    .map_err(ing)?;
            }
            _ => {}
        }
        let check =
            O::ACTIVE.then(|| self.before_forwarding(now, ingress, role, vid, &view, l3, t));
        let mut tunnel = crate::overlay::Tunnel::None;
        let f = forwarding::forward(self, now, ingress, role, vid, &view, l3, out, &mut tunnel);
        if let Some(check) = check {
            self.after_forwarding(check, vid, &view, &f, out, t);
        }
        f?;
        if let Some(d) = trusted_only {
            self.deliver_to_trusted(now, ingress, vid, &view, l3, d, out, t)
                .map_err(ing)?;
        }
        if tunnel != crate::overlay::Tunnel::None {
            // The overlay's copy may have been taken out (outbound ACL, trust).
            if self.overlay.as_ref().is_none_or(|o| !out.contains(o.port)) {
                tunnel = crate::overlay::Tunnel::None;
            }
            t.note(|| self.tunnel_step(tunnel, vid));
        }
        Ok(Decided {
            vid,
            pcp_dei: view.outer.map_or(0, |t| t.pcp_dei),
            body_offset: view.body_offset,
            rewrite,
            hold,
            tunnel,
        })
    }

    /// DHCP and DHCPv6 messages only (rare): leaves the ports untrusted for the
    /// message's family out of `out`, and releases bindings once a RELEASE/DECLINE
    /// is on its way. Out of line, so that it costs the other frames nothing.
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn deliver_to_trusted<O: Observer>(
        &mut self,
        now: Timestamp,
        ingress: PortId,
        vid: crate::types::Vid,
        view: &FrameView,
        l3: &[u8],
        d: TrustedDelivery,
        out: &mut PortSet,
        t: &mut O,
    ) -> Result<(), DropReason> {
        if let Some(v) = self.vlan(vid) {
            match d.release {
                Release::Dhcpv6(_) => out.remove_all(&v.dhcpv6_untrusted),
                Release::None | Release::Dhcp(..) => out.remove_all(&v.dhcp_untrusted),
            }
        }
        let r = if out.is_empty() {
            Err(d.none_left)
        } else {
            Ok(())
        };
        t.note(|| Step::of(Stage::DhcpTrustedDelivery, &r, Detail::None));
        r?;
        match d.release {
            Release::Dhcp(ip, why) => {
                self.remove_binding(vid, std::net::IpAddr::V4(ip), why, now);
            }
            Release::Dhcpv6(Some(why)) => {
                dhcpv6_guard::release_delivered(self, ingress, vid, view.src, l3, why, now);
            }
            Release::None | Release::Dhcpv6(None) => {}
        }
        Ok(())
    }

    /// Tracing only: what forwarding is about to look at — the destination's
    /// MAC-table entry and the uplink teaming gives a frame from a guest — read with
    /// forwarding's own functions on the state it is about to read; and the outbound
    /// ACL drop counters, to tell afterwards which copies an outbound ACL refused.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    fn before_forwarding<O: Observer>(
        &self,
        now: Timestamp,
        ingress: PortId,
        role: PortRole,
        vid: crate::types::Vid,
        view: &FrameView,
        l3: &[u8],
        t: &mut O,
    ) -> ForwardingCheck {
        let group = view.dst.is_group();
        let entry = if group {
            None
        } else {
            self.macs.lookup(vid, view.dst, now)
        };
        let vlan = self.vlan(vid);
        let (uplink, pinned) = match vlan {
            Some(v) if role == PortRole::Guest => (
                forwarding::uplink_for(self, v, ingress, view, l3),
                v.pin
                    .get(ingress.index())
                    .is_some_and(|p| *p != crate::teaming::NO_PIN),
            ),
            _ => (None, false),
        };
        let policy = self.ports[ingress.index()]
            .team
            .as_ref()
            .map_or(crate::spec::TeamingPolicy::OriginatingPort, |t| t.policy);
        if let Some(w) = t.acl_out_watch() {
            w.len = 0;
            for p in self.acl_out_ports.iter() {
                let Some(slot) = w.ports.get_mut(w.len) else {
                    break;
                };
                let c = self.counters[p.index()].tx_drops[DropReason::MacAclDeny as usize];
                *slot = (p, c);
                w.len += 1;
            }
        }
        ForwardingCheck {
            vid,
            group,
            entry,
            uplink,
            policy,
            pinned,
        }
    }

    /// Tracing only: forwarding's outcome with what `before_forwarding` saw, and
    /// each outbound ACL's decision on the copies.
    #[cold]
    fn after_forwarding<O: Observer>(
        &self,
        check: ForwardingCheck,
        vid: crate::types::Vid,
        view: &FrameView,
        result: &Result<(), (DropReason, DropSide)>,
        out: &crate::types::PortSet,
        t: &mut O,
    ) {
        let outcome = match result {
            Ok(_) | Err((DropReason::MacAclDeny, DropSide::Counted)) => Outcome::Pass,
            Err((r, _)) => Outcome::Drop(*r),
        };
        t.note(|| Step::new(Stage::Forwarding, outcome, Detail::Forwarding(check)));
        let out = if result.is_ok() {
            *out
        } else {
            crate::types::PortSet::EMPTY
        };
        let key = acl_key(view, vid);
        let Some(w) = t.acl_out_watch() else {
            return;
        };
        let watch = *w;
        for &(p, before) in &watch.ports[..watch.len] {
            let Some(a) = self.ports[p.index()].acl_out else {
                continue;
            };
            let now_count = self.counters[p.index()].tx_drops[DropReason::MacAclDeny as usize];
            let refused = now_count != before;
            if !refused && !out.contains(p) {
                continue;
            }
            // The compiled classifier the ACL's decision cache sits in front of.
            let d = self.acls[a as usize].acl.evaluate(&key);
            let r = if refused {
                Err(DropReason::MacAclDeny)
            } else {
                Ok(())
            };
            let (acl, rule, action) = (a, d.rule, d.action);
            t.note(|| {
                Step::of(
                    Stage::MacAclOut,
                    &r,
                    Detail::Acl {
                        port: p,
                        acl,
                        rule,
                        action,
                    },
                )
            });
        }
    }
}
