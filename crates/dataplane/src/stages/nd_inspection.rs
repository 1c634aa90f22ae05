//! ND inspection and SAVI for SLAAC (RFC 6620 FCFS-SAVI, RFC 4861; Cisco `ipv6 nd
//! inspection` and `ipv6 snooping`): on an untrusted port with the feature on, an
//! IPv6 address belongs to the first port and MAC that claims it — by Duplicate
//! Address Detection (an NS from `::` with the address as its target, RFC 4862
//! §5.4) or by using it (the first packet with it as source, or an NA for it) — and
//! no one else may claim it while that binding lives. Link-local addresses are bound
//! the same way: nothing assumes EUI-64, so privacy (RFC 8981) and random
//! link-locals work.
//!
//! On an untrusted port, in this order, an IPv6 packet is dropped:
//! - an RS, NS or NA above `rate_limit_pps`: `nd_rate_limit` (and the port is
//!   error-disabled in enforce mode);
//! - an NS or NA that fails RFC 4861 §7.1.1/§7.1.2 validity or does not parse
//!   (`wire::nd`): `nd_malformed`;
//! - an RS or NS whose Source, or an NA whose Target, Link-Layer Address option is
//!   not the frame's source MAC: `nd_link_layer_mismatch` (a receiver's neighbour
//!   cache would take the option; the binding is per MAC, so "contradicts the
//!   binding" is this same check);
//! - a source address, a DAD target or an NA target bound to another port or MAC
//!   (DAD stealing, NA spoofing, a spoofed source): `nd_address_owned` — the owner
//!   keeps it ([`crate::bindings::claim`] decides; the same MAC on another port is a
//!   moved guest and re-claims);
//! - an unsolicited NA (S = 0) with the Override flag for a target the sender does
//!   not hold: `nd_unsolicited_override` (RFC 4861 §7.2.5: it would overwrite every
//!   cache entry; a host announces an address it holds, never one it does not);
//! - a first claim that would take the port past `max_addresses` Nd bindings:
//!   `nd_max_addresses`.
//!
//! A first claim is held (`Verdict::Hold`, source Nd, lease `binding_lifetime_secs`)
//! until its binding is durable, as a DHCPACK is; one claim per frame — the source
//! first, else the DAD or NA target (a frame with two new addresses binds the
//! other one with its next packet). A data-triggered claim is bound without the NS
//! probe RFC 6620 §3.2.3 sends (the switch originates no ND; docs/decisions.md).
//!
//! Aging: an Nd binding ends `binding_lifetime_secs` after it was made or last
//! refreshed. Its owner using it (a packet from it, its DAD or NA for it) when less
//! than half the lifetime is left refreshes it: the lease end moves in place
//! ([`crate::bindings::BindingTable::refresh`], no allocation) and a
//! `BindingRefreshed` event makes the runtime write the record again — at most one
//! write per binding per half lifetime, nothing held.
//!
//! Trusted ports (router guests; uplinks unless `nd_trusted = false`) are not
//! inspected. They protect the router's addresses instead: the source of an RA
//! (any trusted port) or of an NS/NA (a trusted guest port) is gleaned as an Nd
//! binding of that port (held like any claim; within its `max_addresses`), so no
//! guest can claim it; and an NA for — or an ND message from — an address Nd-bound
//! on another port removes that binding (`BindingRemoval::Defended`): the owner
//! behind the trusted side defended it (RFC 6620's tentative-binding rule,
//! simplified: the trusted side wins).
//!
//! Observe mode counts what it would drop and forwards it; claims are still bound
//! (learning is not enforcing), so a switch to enforce finds the table ready.
//!
//! Invariant: on a guarded untrusted port, no packet passes in enforce mode whose
//! source, DAD target or NA target is bound to another port or MAC, nor an invalid
//! NS/NA, nor a link-layer option naming another MAC; and every address it passes
//! from is bound to it, or its binding is held with the frame. Other EtherTypes,
//! and IPv6 whose fixed header does not parse, are not this stage's.

use crate::bindings::{Binding, BindingClaim, BindingSource, BindingUpdate};
use crate::errdisable::ErrDisableCause;
use crate::events::{BindingRemoval, EventKind};
use crate::frame::FrameView;
use crate::spec::{EnforceMode, PortRole};
use crate::stages::refuse;
use crate::switch::Switch;
use crate::trace::{Detail, NdNote, Observer, Outcome, Stage, Step};
use crate::types::{MacAddr, PortId, Timestamp, Vid};
use crate::verdict::DropReason;
use crate::wire::WireError;
use crate::wire::icmpv6::{self, msg_type};
use crate::wire::ipv6::Ipv6Facts;
use crate::wire::nd::{self, NdMessage, NdView};
use std::net::{IpAddr, Ipv6Addr};

/// The ND message of `l3`, if its chain ends in one in a whole packet: `None` for
/// anything else (fragments included: hosts ignore fragmented ND, RFC 6980 §5),
/// `Some(Err)` for an ND type that does not parse.
pub fn nd_message<'a>(
    l3: &'a [u8],
    facts: &Ipv6Facts,
) -> Option<(u8, Result<NdView<'a>, WireError>)> {
    let (ty, _) = icmpv6::type_code(l3, facts)?;
    NdMessage::fixed_len(ty)?;
    let icmp = icmpv6::parse(l3, facts).ok()?;
    Some((ty, nd::parse(&icmp)))
}

/// Who holds an address a frame claims.
enum Holder {
    /// Nobody (or an ended lease, or the same MAC on another port: a move).
    Free,
    /// The claimant itself, by this binding.
    Own(Binding),
    /// Another port or MAC.
    Other(Binding),
}

fn holder(
    sw: &Switch,
    vid: Vid,
    a: Ipv6Addr,
    mac: MacAddr,
    port: PortId,
    now: Timestamp,
) -> Holder {
    let ip = IpAddr::V6(a);
    let existing = sw.bindings.lookup(vid, ip);
    match (
        crate::bindings::claim(existing, mac, port, BindingSource::Nd, now),
        existing,
    ) {
        (BindingClaim::Covered, Some(b)) => Holder::Own(*b),
        (BindingClaim::Held(_), Some(b)) => Holder::Other(*b),
        _ => Holder::Free,
    }
}

/// Whether `a` can be bound at all (a unicast host address).
fn bindable(a: Ipv6Addr) -> bool {
    crate::bindings::check_binding_ip(IpAddr::V6(a)).is_ok()
}

/// Refreshes `b` (the binding of `a`, owned by the sender) when less than half its
/// lifetime is left; whether it did.
fn refresh(
    sw: &mut Switch,
    vid: Vid,
    a: Ipv6Addr,
    b: &Binding,
    lifetime: u32,
    now: Timestamp,
) -> bool {
    let Some(end) = b.lease_end else {
        return false;
    };
    if b.source != BindingSource::Nd {
        return false;
    }
    let full = u64::from(lifetime) * 1_000_000_000;
    if end.saturating_since(now) >= full / 2 {
        return false;
    }
    let new_end = Timestamp(now.0.saturating_add(full));
    if !sw.bindings.refresh(vid, IpAddr::V6(a), new_end) {
        return false;
    }
    sw.events.push(
        now,
        EventKind::BindingRefreshed {
            vid: vid.get(),
            ip: IpAddr::V6(a),
            mac: b.mac,
            port: b.port,
            lease_secs: lifetime,
        },
    );
    true
}

/// Checks an IPv6 frame from `port` in `vid` (`l3`: its bytes after the EtherType;
/// `facts`: its chain, walked once by the pipeline). `Ok(Some(b))`: forward the
/// frame once `b` is durable (a first claim, or a trusted port's gleaned address).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn check(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    facts: &Result<Ipv6Facts, WireError>,
    now: Timestamp,
    t: &mut impl Observer,
) -> Result<Option<BindingUpdate>, DropReason> {
    let Some(st) = sw.ports[port.index()].nd else {
        t.note(|| nd_step(Outcome::Skip, EnforceMode::Enforce, NdNote::Off));
        return Ok(None);
    };
    let mode = st.spec.mode;
    let Ok(facts) = facts else {
        t.note(|| nd_step(Outcome::Skip, mode, NdNote::BadHeader));
        return Ok(None);
    };
    let nd = nd_message(l3, facts);
    if st.spec.trusted {
        return Ok(trusted(sw, port, vid, view, facts, nd.as_ref(), now, t));
    }
    untrusted(sw, port, vid, view, facts, nd.as_ref(), now, t)
}

fn nd_step(outcome: Outcome, mode: EnforceMode, note: NdNote) -> Step {
    Step::new(Stage::NdInspection, outcome, Detail::Nd { mode, note })
}

#[allow(clippy::too_many_arguments)]
fn untrusted(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    facts: &Ipv6Facts,
    nd: Option<&(u8, Result<NdView<'_>, WireError>)>,
    now: Timestamp,
    t: &mut impl Observer,
) -> Result<Option<BindingUpdate>, DropReason> {
    let Some(st) = sw.ports[port.index()].nd else {
        return Ok(None);
    };
    let (mode, spec) = (st.spec.mode, st.spec);
    let no = |sw: &mut Switch, t: &mut _, reason, note| {
        refuse(sw, port, mode, reason, t, |o| nd_step(o, mode, note))
    };
    let ty = nd.map(|(ty, _)| *ty);
    if matches!(
        ty,
        Some(
            msg_type::ROUTER_SOLICITATION
                | msg_type::NEIGHBOR_SOLICITATION
                | msg_type::NEIGHBOR_ADVERTISEMENT
        )
    ) && let Some(b) = sw.ports[port.index()]
        .nd
        .as_mut()
        .and_then(|s| s.bucket.as_mut())
        && !b.admit(now)
    {
        if mode == EnforceMode::Enforce {
            sw.err_disable(port, ErrDisableCause::NdRateLimit, now);
        }
        let pps = spec.rate_limit_pps.unwrap_or(0);
        no(sw, t, DropReason::NdRateLimit, NdNote::RateLimit { pps })?;
        return Ok(None);
    }
    let header = &facts.header;
    let mac = view.src;
    // The ND message, when it is one this stage reads (RS, NS, NA).
    let mut msg = None;
    if let Some((ty, parsed)) = nd {
        let neighbor = matches!(
            *ty,
            msg_type::NEIGHBOR_SOLICITATION | msg_type::NEIGHBOR_ADVERTISEMENT
        );
        match parsed {
            Err(_) if neighbor => {
                no(sw, t, DropReason::NdMalformed, NdNote::Malformed(None))?;
                return Ok(None);
            }
            Ok(v) if neighbor && v.violation(header).is_some() => {
                let why = v.violation(header);
                no(sw, t, DropReason::NdMalformed, NdNote::Malformed(why))?;
                return Ok(None);
            }
            Ok(v) => msg = Some(*v),
            Err(_) => {}
        }
    }
    if let Some(v) = &msg {
        let option = match v.message {
            NdMessage::RouterSolicitation | NdMessage::NeighborSolicitation { .. } => v.source_ll,
            NdMessage::NeighborAdvertisement { .. } => v.target_ll,
            _ => None,
        };
        if let Some(option) = option.filter(|o| *o != mac) {
            no(
                sw,
                t,
                DropReason::NdLinkLayerMismatch,
                NdNote::LinkLayer { option },
            )?;
        }
    }
    let lifetime = spec.binding_lifetime_secs;
    let mut claim: Option<(Ipv6Addr, bool)> = None;
    let mut own: Option<Ipv6Addr> = None;
    let mut refreshed = false;
    // The source: a packet from an address is a claim of it.
    let src = header.src;
    if !src.is_unspecified() && bindable(src) {
        match holder(sw, vid, src, mac, port, now) {
            Holder::Other(b) => {
                let note = NdNote::Owned {
                    addr: src,
                    holder: b,
                };
                no(sw, t, DropReason::NdAddressOwned, note)?;
            }
            Holder::Own(b) => {
                own = Some(src);
                refreshed |= refresh(sw, vid, src, &b, lifetime, now);
            }
            Holder::Free => claim = Some((src, false)),
        }
    }
    // The target of a DAD NS or of an NA: a claim of it.
    let target = msg.and_then(|v| match v.message {
        NdMessage::NeighborSolicitation { target } if v.is_dad(header) => {
            Some((target, true, false))
        }
        NdMessage::NeighborAdvertisement {
            target,
            solicited,
            override_flag,
            ..
        } => Some((target, false, !solicited && override_flag)),
        _ => None,
    });
    if let Some((target, dad, unsolicited_override)) = target
        && bindable(target)
    {
        match holder(sw, vid, target, mac, port, now) {
            Holder::Other(b) => {
                let note = NdNote::Owned {
                    addr: target,
                    holder: b,
                };
                no(sw, t, DropReason::NdAddressOwned, note)?;
            }
            Holder::Own(b) => {
                own = own.or(Some(target));
                if target != src {
                    refreshed |= refresh(sw, vid, target, &b, lifetime, now);
                }
            }
            Holder::Free if unsolicited_override => {
                let note = NdNote::UnsolicitedOverride { target };
                no(sw, t, DropReason::NdUnsolicitedOverride, note)?;
            }
            Holder::Free => {
                if claim.is_none() {
                    claim = Some((target, dad));
                }
            }
        }
    }
    let Some((addr, dad)) = claim else {
        t.note(|| {
            nd_step(
                Outcome::Pass,
                mode,
                NdNote::Own {
                    addr: own,
                    refreshed,
                },
            )
        });
        return Ok(None);
    };
    let max = spec.max_addresses;
    if sw.bindings.nd_count(port) >= u32::from(max) {
        no(
            sw,
            t,
            DropReason::NdMaxAddresses,
            NdNote::MaxAddresses { addr, max },
        )?;
        return Ok(None);
    }
    t.note(|| nd_step(Outcome::Pass, mode, NdNote::Claim { addr, dad }));
    Ok(Some(nd_binding(vid, addr, mac, port, lifetime)))
}

fn nd_binding(vid: Vid, a: Ipv6Addr, mac: MacAddr, port: PortId, lifetime: u32) -> BindingUpdate {
    BindingUpdate {
        vid,
        ip: IpAddr::V6(a),
        mac,
        port,
        lease_secs: Some(lifetime),
        source: BindingSource::Nd,
        duid: None,
    }
}

/// A trusted port: never dropped. Defends the addresses its side uses and gleans
/// its router's (see the module documentation).
#[allow(clippy::too_many_arguments)]
fn trusted(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    facts: &Ipv6Facts,
    nd: Option<&(u8, Result<NdView<'_>, WireError>)>,
    now: Timestamp,
    t: &mut impl Observer,
) -> Option<BindingUpdate> {
    let st = sw.ports[port.index()].nd?;
    let mode = st.spec.mode;
    let Some((ty, Ok(v))) = nd else {
        t.note(|| {
            let note = NdNote::Trusted {
                gleaned: None,
                defended: None,
            };
            nd_step(Outcome::Skip, mode, note)
        });
        return None;
    };
    let src = facts.header.src;
    let mut defended = None;
    let sources = [
        (!src.is_unspecified()).then_some(src),
        match v.message {
            NdMessage::NeighborAdvertisement { target, .. } => Some(target),
            _ => None,
        },
    ];
    for a in sources.into_iter().flatten() {
        if sw
            .bindings
            .lookup(vid, IpAddr::V6(a))
            .is_some_and(|b| b.source == BindingSource::Nd && b.port != port)
            && sw.remove_binding(vid, IpAddr::V6(a), BindingRemoval::Defended, now)
        {
            defended = Some(a);
        }
    }
    let uplink = sw.ports[port.index()].role == PortRole::Uplink;
    let gleans = *ty == msg_type::ROUTER_ADVERTISEMENT
        || (!uplink
            && matches!(
                *ty,
                msg_type::NEIGHBOR_SOLICITATION | msg_type::NEIGHBOR_ADVERTISEMENT
            ));
    let mut gleaned = None;
    if gleans && !src.is_unspecified() && bindable(src) {
        match holder(sw, vid, src, view.src, port, now) {
            Holder::Own(b) => {
                refresh(sw, vid, src, &b, st.spec.binding_lifetime_secs, now);
            }
            Holder::Free if sw.bindings.nd_count(port) < u32::from(st.spec.max_addresses) => {
                gleaned = Some(src);
            }
            // Another binding (DHCPv6, static, API) holds it, or the cap is
            // reached: a trusted port is never refused; nothing gleaned.
            _ => {}
        }
    }
    t.note(|| nd_step(Outcome::Skip, mode, NdNote::Trusted { gleaned, defended }));
    gleaned.map(|a| nd_binding(vid, a, view.src, port, st.spec.binding_lifetime_secs))
}
