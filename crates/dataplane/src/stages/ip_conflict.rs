//! Duplicate IP detection (the "ghost adapter" conflict: two MACs claiming one IP
//! address in one VLAN) and the feed of the IP-seen table (`crate::hosts`).
//!
//! A *claim* is the sender (MAC, IP) of an ARP request or reply received on a guest
//! port — gratuitous ARP included; ARP probes (sender 0.0.0.0, RFC 5227) claim
//! nothing — or a binding entering the index (a DHCP ACK once committed, a static
//! or API binding). A claim conflicts when the address is bound in the VLAN to
//! another MAC, or, failing that, was seen within the MAC aging time from another
//! MAC. Each conflicting claim is counted in the claimant port's `observed`
//! counters (`ip_conflict`); it is reported as an [`EventKind::IpConflict`] naming
//! both MACs and ports unless its (VLAN, IP) was reported less than
//! [`crate::hosts::IP_CONFLICT_HOLD_DOWN_SECS`] ago.
//!
//! This is detection, not enforcement: no frame is dropped for a conflict. ARP
//! claims are read after dynamic ARP inspection, so a frame DAI drops (enforce
//! mode) neither reaches this stage nor feeds the IP-seen table — DAI's own drop
//! reason reports it. After a conflicting ARP claim the IP-seen table holds the
//! latest claimant (what the other hosts' ARP caches now hold). A binding takes an
//! address another MAC's binding holds only when the API replaces it explicitly
//! (`bindings::claim` refuses it otherwise): that replacement is the conflict
//! reported here.
//!
//! Invariants: no allocation (fixed-size tables, the preallocated event ring); the
//! verdict of the frame is never changed here; ARP from uplinks is not read (the
//! physical network's hosts are not the switch's to track).

use crate::arp;
use crate::bindings::Binding;
use crate::events::{EventKind, IpClaimSource};
use crate::switch::Switch;
use crate::types::{MacAddr, PortId, Timestamp, Vid};
use crate::verdict::DropReason;
use std::net::IpAddr;

/// Reads the sender of an ARP message (`l3`) received on guest port `port` in
/// `vid`: reports a conflict if it claims another host's address, and records the
/// sighting. Malformed messages and probes are ignored (DAI, when on, has judged
/// them already).
#[inline]
pub(crate) fn arp_claim(sw: &mut Switch, port: PortId, vid: Vid, l3: &[u8], now: Timestamp) {
    let Ok(a) = arp::parse(l3) else {
        return;
    };
    let ip = a.sender_ip;
    if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() {
        return;
    }
    if !a.sender_mac.is_valid_source() {
        return;
    }
    let ip = IpAddr::V4(ip);
    let owner = match sw.bindings.lookup(vid, ip) {
        Some(b) if b.mac != a.sender_mac => Some((b.mac, b.port, IpClaimSource::Binding)),
        _ => sw
            .hosts
            .lookup(vid, ip, now)
            .filter(|h| h.mac != a.sender_mac)
            .map(|h| (h.mac, h.port, IpClaimSource::Arp)),
    };
    if let Some(owner) = owner {
        conflict(
            sw,
            vid,
            ip,
            a.sender_mac,
            port,
            IpClaimSource::Arp,
            owner,
            now,
        );
    }
    sw.hosts.saw(vid, ip, a.sender_mac, port, now);
}

/// A binding of `ip` to `mac` on `port` has just entered the index, replacing
/// `replaced` if there was one: reports a conflict if another MAC held the address
/// (bound, or seen within the aging time). Control path (the binding is committed).
pub(crate) fn binding_claim(
    sw: &mut Switch,
    vid: Vid,
    ip: IpAddr,
    mac: MacAddr,
    port: PortId,
    replaced: Option<Binding>,
    now: Timestamp,
) {
    let owner = match replaced {
        Some(b) if b.mac != mac => Some((b.mac, b.port, IpClaimSource::Binding)),
        _ => sw
            .hosts
            .lookup(vid, ip, now)
            .filter(|h| h.mac != mac)
            .map(|h| (h.mac, h.port, IpClaimSource::Arp)),
    };
    if let Some(owner) = owner {
        conflict(sw, vid, ip, mac, port, IpClaimSource::Binding, owner, now);
    }
}

/// Counts a conflicting claim on the claimant's port and reports it unless its
/// address is in hold-down.
#[allow(clippy::too_many_arguments)]
#[cold]
fn conflict(
    sw: &mut Switch,
    vid: Vid,
    ip: IpAddr,
    mac: MacAddr,
    port: PortId,
    claim: IpClaimSource,
    (owner_mac, owner, owner_by): (MacAddr, PortId, IpClaimSource),
    now: Timestamp,
) {
    if let Some(c) = sw.counters.get_mut(port.index()) {
        c.observed[DropReason::IpConflict as usize] += 1;
    }
    if sw.hosts.may_report_conflict(vid, ip, now) {
        sw.events.push(
            now,
            EventKind::IpConflict {
                vid: vid.get(),
                ip,
                port,
                mac,
                claim,
                owner,
                owner_mac,
                owner_by,
            },
        );
    }
}
