//! The vSwitch forwarding model (DESIGN.md §2): where a classified, admitted frame
//! goes.
//!
//! From a guest: known local unicast → that port; broadcast/multicast → the other
//! guest ports of the VLAN and exactly one uplink; unknown unicast → one uplink.
//! From an uplink: local unicast → that port; broadcast/multicast → the VLAN's guest
//! ports; unknown unicast → nobody (promiscuous ports still get their copy).
//! The overlay (`overlay.rs`), in a VLAN it carries: from a guest, a remote guest's
//! MAC → the overlay, tunneled to its endpoint; broadcast/multicast/unknown unicast
//! → also the overlay, replicated to every endpoint with members in the VLAN. From
//! the overlay: like an uplink, but a flood reaches every guest of the VLAN. Split
//! horizon: nothing goes uplink ↔ overlay or overlay → overlay.
//! Promiscuous (accept) ports of the VLAN get a copy of every frame.
//!
//! Invariants: the output set never contains the ingress port, never an uplink when
//! the frame came from an uplink, and only ports that carry the frame's VLAN and are
//! up; MAC-change-blocked ports are skipped and counted.

use crate::frame::FrameView;
use crate::overlay::Tunnel;
use crate::spec::AclAction;
use crate::spec::PortRole;
use crate::stages::mac_acl::acl_key;
use crate::stages::storm_control::{self, StormClass};
use crate::switch::{Switch, VlanState};
use crate::types::{PortId, PortSet, Timestamp, Vid};
use crate::verdict::{DropReason, DropSide};

/// The uplink a frame from guest `ingress` leaves by (teaming, see `teaming.rs`).
#[inline]
pub(crate) fn uplink_for(
    sw: &Switch,
    vlan: &VlanState,
    ingress: PortId,
    view: &FrameView,
    l3: &[u8],
) -> Option<PortId> {
    match vlan.pin.get(ingress.index()) {
        Some(&pin) if pin != crate::teaming::NO_PIN => Some(PortId(pin)),
        _ => {
            let policy = sw.ports[ingress.index()].team.as_ref()?.policy;
            crate::teaming::per_frame_uplink(policy, vlan.sets.get(ingress.index())?, view, l3)
        }
    }
}

/// Decides where the frame goes: fills `out` with its output ports (whatever `out`
/// held before is replaced). The set is built in place: a port set is 136 bytes,
/// and moving it through `Result`s cost several copies per frame.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn forward(
    sw: &mut Switch,
    now: Timestamp,
    ingress: PortId,
    role: PortRole,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    out: &mut PortSet,
    tunnel: &mut Tunnel,
) -> Result<(), (DropReason, DropSide)> {
    output_ports(sw, now, ingress, role, vid, view, l3, out, tunnel)?;
    acl_out(sw, out, vid, view)
}

/// Outbound MAC ACLs: each output port with an ACL keeps the frame only if its ACL
/// permits it (evaluated once per distinct ACL); a refusal is counted on that port.
#[inline]
fn acl_out(
    sw: &mut Switch,
    out: &mut PortSet,
    vid: Vid,
    view: &FrameView,
) -> Result<(), (DropReason, DropSide)> {
    if !sw.any_acl_out {
        return Ok(());
    }
    let filtered = out.intersect(&sw.acl_out_ports);
    if filtered.is_empty() {
        return Ok(());
    }
    let key = acl_key(view, vid);
    let mut last: Option<(u16, bool)> = None;
    for p in filtered.iter() {
        let Some(a) = sw.ports[p.index()].acl_out else {
            continue;
        };
        let permit = match last {
            Some((id, permit)) if id == a => permit,
            _ => {
                let permit = sw.acls[a as usize].decide(&key).action == AclAction::Permit;
                last = Some((a, permit));
                permit
            }
        };
        if !permit {
            out.remove(p);
            sw.counters[p.index()].tx_drop(DropReason::MacAclDeny);
        }
    }
    if out.is_empty() {
        return Err((DropReason::MacAclDeny, DropSide::Counted));
    }
    Ok(())
}

/// The ports a frame goes to by the forwarding model, before outbound ACLs, into `out`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_ports(
    sw: &mut Switch,
    now: Timestamp,
    ingress: PortId,
    role: PortRole,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    out: &mut PortSet,
    tunnel: &mut Tunnel,
) -> Result<(), (DropReason, DropSide)> {
    let Some(vlan) = sw.vlan(vid) else {
        return Err((DropReason::NoDestination, DropSide::Ingress));
    };
    let from_guest = role == PortRole::Guest;
    let overlay = vlan.overlay;

    if view.dst.is_group() {
        if from_guest {
            out.assign(&vlan.guests);
            out.remove(ingress);
            if let Some(up) = uplink_for(sw, vlan, ingress, view, l3) {
                out.insert(up);
            }
            if let Some(o) = overlay {
                // Head-end replication to the endpoints with members in the VLAN.
                out.insert(o);
                *tunnel = Tunnel::Flood;
            }
        } else if role == PortRole::Overlay {
            // From a remote guest: every local guest of the VLAN (teaming pins
            // concern the uplinks only).
            out.assign(&vlan.guests);
        } else {
            // From the network, a guest accepts broadcasts only on its pinned uplink.
            match vlan.uplinks.iter().position(|u| *u == ingress) {
                Some(k) => out.assign_intersection(&vlan.guests, &vlan.flood_from[k]),
                None => out.assign(&PortSet::EMPTY),
            }
        }
        if vlan.any_blocked {
            let blocked = vlan.blocked;
            for p in blocked.iter().filter(|p| *p != ingress) {
                sw.counters[p.index()].tx_drop(DropReason::MacChangeBlocked);
            }
        }
        return if out.is_empty() {
            Err((DropReason::NoDestination, DropSide::Ingress))
        } else {
            Ok(())
        };
    }

    out.assign(&vlan.promiscuous);
    out.remove(ingress);
    let uplink = if from_guest {
        uplink_for(sw, vlan, ingress, view, l3)
    } else {
        None
    };
    match sw.macs.lookup(vid, view.dst, now) {
        Some(e) if e.kind.is_local() => {
            if e.port == ingress {
                return Err((DropReason::Hairpin, DropSide::Ingress));
            }
            let dst = &sw.ports[e.port.index()];
            if let Some(r) = dst.down_reason() {
                return Err((r, DropSide::Egress(e.port)));
            }
            if dst.mac_change_blocked() {
                return Err((DropReason::MacChangeBlocked, DropSide::Egress(e.port)));
            }
            out.insert(e.port);
            Ok(())
        }
        _ => {
            if from_guest
                && let Some(o) = overlay
                && let Some(e) = sw.overlay.as_ref().and_then(|ov| ov.remote(vid, view.dst))
            {
                // A remote guest: straight to the endpoint it sits behind.
                out.insert(o);
                *tunnel = Tunnel::Endpoint(e);
                return Ok(());
            }
            storm_control::check(sw, ingress, StormClass::UnknownUnicast, now)
                .map_err(|r| (r, DropSide::Ingress))?;
            if from_guest && let Some(o) = overlay {
                out.insert(o);
                *tunnel = Tunnel::Flood;
            }
            unknown_unicast(from_guest, uplink, out)
        }
    }
}

/// Where unknown unicast goes: one uplink from a guest, and the promiscuous copies
/// already in `copies`.
#[inline]
fn unknown_unicast(
    from_guest: bool,
    uplink: Option<PortId>,
    copies: &mut PortSet,
) -> Result<(), (DropReason, DropSide)> {
    match uplink {
        Some(up) => {
            copies.insert(up);
            Ok(())
        }
        None if !copies.is_empty() => Ok(()),
        None if from_guest => Err((DropReason::NoUplink, DropSide::Ingress)),
        None => Err((DropReason::UnknownUnicast, DropSide::Ingress)),
    }
}
