//! IPv6 Source Guard (Cisco `ipv6 source-guard`; RFC 7039 source address
//! validation, over the bindings ND inspection, DHCPv6 snooping, the configuration
//! and the API make): on an untrusted port with the guard on, an IPv6 packet passes
//! only if its source address is bound to this port in the frame's VLAN (`ip`), and
//! in `ip-mac` mode also to the frame's source MAC — or is the address whose binding
//! ND inspection holds this very frame for (its first packet, bound once durable).
//!
//! The unspecified source `::` passes only for the three uses that need it, each
//! found by walking the whole extension-header chain ([`Ipv6Facts`]) in a whole
//! (unfragmented or atomic) packet, so nothing hides behind extension headers:
//! - Duplicate Address Detection: an ICMPv6 Neighbor Solicitation (RFC 4862 §5.4.2);
//! - MLD: ICMPv6 130, 131, 132 or 143 with a Hop-by-Hop Router Alert option
//!   (RFC 2710 §3, RFC 3810 §5: a host reports from `::` while its link-local
//!   address is tentative);
//! - a DHCPv6 client message: UDP to port 547 (RFC 8415 §7.1; a client without a
//!   link-local address yet).
//!
//! Non-first fragments are checked like any packet: their source is in the fixed
//! header, which every fragment carries. A `::` packet in fragments never passes
//! (none of the three uses fragments).
//!
//! Invariant: from a guarded untrusted port, no IPv6 packet leaves the switch in
//! enforce mode whose source is not bound to the port (and MAC, `ip-mac`), apart
//! from a held first claim and the three uses of `::`. Ports ND inspection trusts
//! are skipped (as IPv4's guard skips DHCP-trusted ports); other EtherTypes are not
//! this stage's.

use crate::bindings::BindingUpdate;
use crate::frame::FrameView;
use crate::spec::{EnforceMode, SourceGuard};
use crate::stages::refuse;
use crate::switch::Switch;
use crate::trace::{Detail, Ipv6SgNote, Observer, Outcome, Stage, Step, UnspecifiedUse};
use crate::types::{PortId, Vid};
use crate::verdict::DropReason;
use crate::wire::WireError;
use crate::wire::icmpv6::msg_type;
use crate::wire::ipv6::{FragmentKind, HEADER_LEN, Ipv6Facts, next_header};
use std::net::IpAddr;

/// The DHCPv6 server and relay port (RFC 8415 §7.2).
const DHCPV6_SERVER_PORT: u16 = 547;
/// The Router Alert option in a Hop-by-Hop header (RFC 2711), value 0 (MLD).
const ROUTER_ALERT: u8 = 5;

/// Whether the Hop-by-Hop Options header of `l3` (if it has one) carries a Router
/// Alert option. Reads only inside the header (the walk checked its length).
pub fn has_router_alert(l3: &[u8], facts: &Ipv6Facts) -> bool {
    if facts.header.next_header != next_header::HOP_BY_HOP {
        return false;
    }
    let Some(len) = l3.get(HEADER_LEN + 1) else {
        return false;
    };
    let end = HEADER_LEN + (usize::from(*len) + 1) * 8;
    let Some(opts) = l3.get(HEADER_LEN + 2..end) else {
        return false;
    };
    let mut i = 0;
    while let Some(&kind) = opts.get(i) {
        if kind == 0 {
            i += 1; // Pad1
            continue;
        }
        let Some(&olen) = opts.get(i + 1) else {
            return false;
        };
        if kind == ROUTER_ALERT && olen == 2 {
            return true;
        }
        i += 2 + usize::from(olen);
    }
    false
}

/// Which use of `::` a packet is, if any (see the module documentation).
pub fn unspecified_use(l3: &[u8], facts: &Ipv6Facts) -> Option<UnspecifiedUse> {
    if matches!(
        facts.fragment_kind(),
        Some(FragmentKind::First | FragmentKind::NonFirst)
    ) {
        return None;
    }
    let (protocol, offset) = facts.upper()?;
    let upper = l3.get(offset..facts.end as usize)?;
    match protocol {
        next_header::ICMPV6 => match *upper.first()? {
            msg_type::NEIGHBOR_SOLICITATION => Some(UnspecifiedUse::Dad),
            msg_type::MLD_QUERY
            | msg_type::MLD_REPORT
            | msg_type::MLD_DONE
            | msg_type::MLDV2_REPORT
                if has_router_alert(l3, facts) =>
            {
                Some(UnspecifiedUse::Mld)
            }
            _ => None,
        },
        next_header::UDP => {
            let dport = u16::from_be_bytes([*upper.get(2)?, *upper.get(3)?]);
            (dport == DHCPV6_SERVER_PORT).then_some(UnspecifiedUse::Dhcpv6Client)
        }
        _ => None,
    }
}

/// Checks an IPv6 frame from `port` in `vid`. `pending`: the binding ND inspection
/// holds this frame for, if any.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn check(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    facts: &Result<Ipv6Facts, WireError>,
    pending: Option<&BindingUpdate>,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let step = |outcome, mode, note| {
        Step::new(
            Stage::Ipv6SourceGuard,
            outcome,
            Detail::Ipv6Sg { mode, note },
        )
    };
    let p = &sw.ports[port.index()];
    let Some(g) = p.ipv6sg else {
        t.note(|| step(Outcome::Skip, EnforceMode::Enforce, Ipv6SgNote::Off));
        return Ok(());
    };
    if p.nd.is_some_and(|n| n.spec.trusted) {
        t.note(|| step(Outcome::Skip, g.mode, Ipv6SgNote::Trusted));
        return Ok(());
    }
    let mode = g.mode;
    let Ok(facts) = facts else {
        return refuse(sw, port, mode, DropReason::Ipv6SourceGuard, t, |o| {
            step(o, mode, Ipv6SgNote::BadHeader)
        });
    };
    let src = facts.header.src;
    if src.is_unspecified() {
        return match unspecified_use(l3, facts) {
            Some(u) => {
                t.note(|| step(Outcome::Pass, mode, Ipv6SgNote::Unspecified(u)));
                Ok(())
            }
            None => refuse(sw, port, mode, DropReason::Ipv6SourceGuard, t, |o| {
                step(o, mode, Ipv6SgNote::UnspecifiedRefused)
            }),
        };
    }
    if pending.is_some_and(|b| b.ip == IpAddr::V6(src) && b.port == port && b.mac == view.src) {
        t.note(|| step(Outcome::Pass, mode, Ipv6SgNote::Pending { src }));
        return Ok(());
    }
    let binding = sw.bindings.lookup(vid, IpAddr::V6(src)).copied();
    let ok = binding
        .is_some_and(|b| b.port == port && (g.check == SourceGuard::Ip || b.mac == view.src));
    let note = Ipv6SgNote::Lookup {
        src,
        binding,
        check: g.check,
    };
    if ok {
        t.note(|| step(Outcome::Pass, mode, note));
        Ok(())
    } else {
        refuse(sw, port, mode, DropReason::Ipv6SourceGuard, t, |o| {
            step(o, mode, note)
        })
    }
}
