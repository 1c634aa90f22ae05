//! The overlay's ARP proxy (`[overlay] arp_proxy = true`): a guest's ARP request
//! (RFC 826) for an address the switch knows — bound in the binding table (DHCP
//! snooping, static, API, a moved guest's bindings) or a remote guest's address the
//! control plane gave the overlay — is answered by the switch on the guest's port,
//! from the address's MAC, instead of being flooded to the VLAN and replicated to
//! every endpoint (the flood containment of a VXLAN control plane, RFC 7348 §4.2).
//!
//! Invariants: only requests from guest ports in a VLAN the overlay carries, only
//! ordinary requests (not probes, not gratuitous), and only for an address with a
//! binding or a remote address: anything else is flooded as before. The answer is
//! what the requester would have got from the bound guest (ARP inspection has
//! already checked the requester). The request is counted on its port under
//! `arp_proxy_answered`, and the answer is originated through the egress queue.

use crate::arp::{self, ArpOp};
use crate::egress::{Originated, TxCopy};
use crate::frame::FrameView;
use crate::switch::Switch;
use crate::trace::{Detail, Observer, Outcome, Stage, Step};
use crate::types::{PortId, Vid};
use crate::verdict::DropReason;
use crate::wire::announce::ProxyReply;
use std::net::IpAddr;

/// Answers `l3` (an ARP message from guest port `port` in `vid`) if the proxy can:
/// `Err(ArpProxyAnswered)` then, `Ok` when the request goes on as usual.
#[inline]
pub fn answer<O: Observer>(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    t: &mut O,
) -> Result<(), DropReason> {
    let Some(o) = sw.overlay.as_ref() else {
        return Ok(());
    };
    if !o.arp_proxy() || o.vni(vid).is_none() || !view.dst.is_broadcast() {
        return Ok(());
    }
    let Ok(req) = arp::parse(l3) else {
        return Ok(());
    };
    if req.oper != ArpOp::Request || req.is_probe() || req.is_gratuitous() {
        return Ok(());
    }
    let target = req.target_ip;
    let mac = match sw.bindings.lookup(vid, IpAddr::V4(target)) {
        Some(b) => Some(b.mac),
        None => o.remote_address(vid, target),
    };
    let Some(mac) = mac else {
        return Ok(());
    };
    let tci = sw.ports[port.index()].egress_tci(vid, 0);
    let reply = Originated::ArpReply(ProxyReply { request: req, mac });
    sw.egress.originate(TxCopy::to(port, tci), reply, port);
    t.note(|| {
        Step::new(
            Stage::ArpProxy,
            Outcome::Drop(DropReason::ArpProxyAnswered),
            Detail::ArpProxy { ip: target, mac },
        )
    });
    Err(DropReason::ArpProxyAnswered)
}
