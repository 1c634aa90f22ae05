//! The pipeline: the ordered stages one frame goes through, and the batch entry
//! point. A pure function of (switch state, now, ingress port, frame) → verdict.
//!
//! Order, from a guest port: port up (admin, link, err-disable) → parse → reserved
//! link-local → source MAC valid → VLAN classification → storm control (broadcast,
//! multicast) → port security source check (MAC move, limit) → vSwitch policy (forged transmits / MAC
//! changes) → inbound MAC ACL → port security admission (secure MACs, maximum) →
//! forwarding (unknown-unicast storm control; egress filters: down ports, MAC-change
//! block, promiscuous copies; outbound MAC ACLs).
//! From an uplink: port up → parse → reserved link-local → source MAC valid → VLAN
//! classification → storm control → reflection filter (learns the source) → inbound
//! MAC ACL → forwarding.
//!
//! Invariants: every frame is counted as received on its ingress port, and its
//! outcome is counted exactly once (forwarded copies per output port, or one drop
//! under one reason on the port where it was decided). No allocation per frame.

use crate::forwarding;
use crate::frame::{FrameView, RxFrame, is_reserved_link_local};
use crate::spec::AclAction;
use crate::spec::PortRole;
use crate::stages::dhcp_snooping::{BindingUpdate, DhcpAction};
use crate::stages::mac_acl::AclKey;
use crate::stages::storm_control::StormClass;
use crate::stages::{
    arp_inspection, dhcp_snooping, ip_source_guard, port_security, vswitch_policy,
};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
use crate::switch::ErrDisableCause;
use crate::switch::Switch;
use crate::types::{Instant, PortId};
use crate::verdict::{DropReason, Forward, Rewrite, Verdict};
use crate::vlan;

/// Where a drop was decided: on the way in (ingress port) or at an output port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DropSide {
    Ingress,
    Egress(PortId),
    /// Already counted on the ports concerned (outbound ACLs refusing every copy).
    Counted,
}

/// The fields a MAC ACL looks at.
#[inline]
pub(crate) fn acl_key(view: &FrameView, vid: crate::types::Vid) -> AclKey {
    AclKey {
        src: view.src,
        dst: view.dst,
        ethertype: view.ethertype,
        vid,
        cos: view.outer.map_or(0, |t| t.pcp_dei >> 1),
    }
}

/// The inbound MAC ACL of `port`, if it has one.
#[inline]
fn acl_in(
    sw: &mut Switch,
    port: PortId,
    vid: crate::types::Vid,
    view: &FrameView,
) -> Result<(), DropReason> {
    let Some(a) = sw.ports[port.index()].acl_in else {
        return Ok(());
    };
    match sw.acls[a as usize].decide(&acl_key(view, vid)).action {
        AclAction::Permit => Ok(()),
        AclAction::Deny => Err(DropReason::MacAclDeny),
    }
}

/// Storm control: a frame of `class` over the port's rate is dropped (and, with
/// action shutdown, the port error-disabled).
#[inline]
pub(crate) fn storm_control(
    sw: &mut Switch,
    port: PortId,
    class: StormClass,
    now: Instant,
) -> Result<(), DropReason> {
    let p = &mut sw.ports[port.index()];
    if p.storm.admit(class, now) {
        return Ok(());
    }
    if p.storm.shutdown {
        sw.err_disable(port, ErrDisableCause::StormControl, now);
    }
    Err(DropReason::StormControl)
}

impl Switch {
    /// Decides one frame received on `ingress` at `now`, and counts it.
    #[inline(always)]
    pub fn process(&mut self, now: Instant, ingress: PortId, frame: &RxFrame<'_>) -> Verdict {
        let Some(counters) = self.counters.get_mut(ingress.index()) else {
            // Not a port of this switch: the runtime's bug, but never a panic.
            return Verdict::Drop(DropReason::PortDown);
        };
        counters.rx_frames += 1;
        counters.rx_bytes += frame.data.len() as u64 + if frame.tag.is_some() { 4 } else { 0 };
        match self.decide(now, ingress, frame) {
            Ok((fwd, Some(binding))) => Verdict::Hold(fwd, binding),
            Ok((fwd, None)) => {
                let body = (frame.data.len() - fwd.body_offset as usize) as u64 + 12;
                for out in fwd.out.iter() {
                    let tag = self.ports[out.index()].egress_tag_len(fwd.vid) as u64;
                    let c = &mut self.counters[out.index()];
                    c.tx_frames += 1;
                    c.tx_bytes += body + tag;
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

    /// Decides a batch of frames received on one port. `verdicts` is cleared and
    /// filled with one verdict per frame, in order (reuse it: no allocation once it
    /// has grown to the batch size).
    pub fn process_batch<'a>(
        &mut self,
        now: Instant,
        ingress: PortId,
        frames: impl Iterator<Item = RxFrame<'a>>,
        verdicts: &mut Vec<Verdict>,
    ) {
        verdicts.clear();
        for f in frames {
            let v = self.process(now, ingress, &f);
            verdicts.push(v);
        }
    }

    #[inline(always)]
    fn decide(
        &mut self,
        now: Instant,
        ingress: PortId,
        frame: &RxFrame<'_>,
    ) -> Result<(Forward, Option<BindingUpdate>), (DropReason, DropSide)> {
        let ing = |r| (r, DropSide::Ingress);
        let port = &self.ports[ingress.index()];
        if let Some(r) = port.down_reason() {
            return Err(ing(r));
        }
        let role = port.role;
        let view = FrameView::parse(frame).map_err(ing)?;
        if is_reserved_link_local(view.dst) {
            return Err(ing(DropReason::LinkLocalReserved));
        }
        if !view.src.is_valid_source() {
            return Err(ing(DropReason::InvalidSourceMac));
        }
        let vid = vlan::classify(&port.vlan, &view).map_err(ing)?;
        if view.dst.is_group() {
            let class = if view.dst.is_broadcast() {
                StormClass::Broadcast
            } else {
                StormClass::Multicast
            };
            storm_control(self, ingress, class, now).map_err(ing)?;
        }
        match role {
            PortRole::Guest => {
                port_security::check_source(self, ingress, vid, view.src, now).map_err(ing)?;
                vswitch_policy::check_source(self, ingress, vid, view.src, now).map_err(ing)?;
                acl_in(self, ingress, vid, &view).map_err(ing)?;
                port_security::admit(self, ingress, vid, view.src, now).map_err(ing)?;
            }
            PortRole::Uplink => {
                if self.macs.learn(vid, view.src, ingress, now).is_some() {
                    return Err(ing(DropReason::Reflection));
                }
                acl_in(self, ingress, vid, &view).map_err(ing)?;
            }
        }
        let l3 = frame
            .data
            .get(view.body_offset as usize + 2..)
            .unwrap_or(&[]);
        let mut hold = None;
        let mut rewrite = Rewrite::None;
        let mut trusted_only = false;
        match view.ethertype {
            ETHERTYPE_IPV4 => {
                if self.vlan(vid).is_some_and(|v| v.dhcp_snooping)
                    && let Some(payload) = dhcp_snooping::is_dhcp(l3)
                {
                    match dhcp_snooping::inspect(self, ingress, vid, &view, l3, payload, now)
                        .map_err(ing)?
                    {
                        DhcpAction::Forward(r) => rewrite = r,
                        DhcpAction::ForwardTrustedOnly(r) => {
                            rewrite = r;
                            trusted_only = true;
                        }
                        DhcpAction::Hold(b, r) => {
                            hold = Some(b);
                            rewrite = r;
                        }
                    }
                }
                ip_source_guard::check(self, ingress, vid, &view, l3).map_err(ing)?;
            }
            ETHERTYPE_ARP => {
                arp_inspection::inspect(self, ingress, vid, &view, l3, now).map_err(ing)?
            }
            _ => {}
        }
        let mut f = forwarding::forward(self, now, ingress, role, vid, &view, l3)?;
        f.rewrite = rewrite;
        if trusted_only && let Some(v) = self.vlan(vid) {
            f.out = f.out.minus(&v.dhcp_untrusted);
            if f.out.is_empty() {
                return Err(ing(DropReason::DhcpAckUnknownClient));
            }
        }
        Ok((f, hold))
    }
}
