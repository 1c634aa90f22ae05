//! IPv6 RA guard (RFC 6105, with RFC 7113's rules; Cisco `ipv6 nd raguard`): on an
//! untrusted port with the guard on, an IPv6 packet passes only if the walk of its
//! whole extension-header chain ([`Ipv6Facts`]) shows an upper layer that is not a
//! router message, or shows that none can follow. Dropped, each under its reason:
//! - an ICMPv6 Router Advertisement (134) or Redirect (137), wherever the chain puts
//!   it, in a whole packet or a first fragment (`icmpv6::type_code`):
//!   `ra_guard_router_message`;
//! - a first fragment whose chain does not reach the upper-layer header (RFC 7112,
//!   RFC 7113 §3): `ipv6_incomplete_chain`;
//! - an extension header the walk does not know (Mobility, HIP, Shim6,
//!   experimental): `ipv6_unknown_header` — never "not ICMPv6";
//! - a chain that does not parse, or a fixed header that does not: `ipv6_malformed`.
//!
//! Passed on purpose:
//! - non-first fragments: RFC 7113 §3 judges the first fragment, which carries the
//!   whole chain and the ICMPv6 header (or is dropped as an incomplete chain);
//!   without an accepted first fragment the receiver cannot reassemble an RA.
//! - ESP: the upper layer is encrypted under a security association the receiver
//!   must share with the sender; a rogue guest cannot make a victim accept an RA
//!   it has no SA for, and dropping ESP would break IPsec between guests.
//! - No Next Header (59): nothing follows.
//!
//! Invariant: from a guarded untrusted port, no IPv6 packet carrying an RA or a
//! Redirect — nor one whose upper layer cannot be known from its first fragment —
//! leaves the switch (observe mode aside). Trusted ports (routers; uplinks by
//! default, `ra_trusted`) are not checked. Other EtherTypes are not this stage's.

use crate::spec::EnforceMode;
use crate::stages::refuse;
use crate::switch::Switch;
use crate::trace::{Detail, Observer, Outcome, RaGuardNote, Stage, Step};
use crate::types::PortId;
use crate::verdict::DropReason;
use crate::wire::WireError;
use crate::wire::icmpv6::{self, msg_type};
use crate::wire::ipv6::{Chain, Ipv6Facts};

/// What the guard decides for an IPv6 packet from an untrusted port (`l3`: the bytes
/// after the EtherType): `None` to pass, else the reason to drop. Pure, for the
/// stage and its tests.
pub fn judge(l3: &[u8]) -> (Option<DropReason>, RaGuardNote) {
    judge_facts(l3, &Ipv6Facts::parse(l3))
}

/// [`judge`] with the packet's chain already walked (`facts`: [`Ipv6Facts::parse`]
/// of `l3`, as the pipeline does once for every IPv6 stage).
pub fn judge_facts(
    l3: &[u8],
    facts: &Result<Ipv6Facts, WireError>,
) -> (Option<DropReason>, RaGuardNote) {
    let Ok(facts) = facts else {
        return (Some(DropReason::Ipv6Malformed), RaGuardNote::BadHeader);
    };
    let icmp = icmpv6::type_code(l3, facts);
    let note = RaGuardNote::Chain {
        chain: facts.chain,
        fragment: facts.fragment_kind(),
        icmp,
    };
    let reason = match facts.chain {
        Chain::Upper { protocol, .. } if protocol == crate::wire::ipv6::next_header::ICMPV6 => {
            match icmp {
                Some((msg_type::ROUTER_ADVERTISEMENT | msg_type::REDIRECT, _)) => {
                    Some(DropReason::RaGuardRouterMessage)
                }
                Some(_) => None,
                // The walk guarantees the 4 header bytes; fail closed all the same.
                None => Some(DropReason::Ipv6Malformed),
            }
        }
        Chain::Upper { .. }
        | Chain::NoNextHeader { .. }
        | Chain::Esp { .. }
        | Chain::NonFirstFragment => None,
        Chain::IncompleteChain => Some(DropReason::Ipv6IncompleteChain),
        Chain::Unknown(_) => Some(DropReason::Ipv6UnknownHeader),
        Chain::Malformed(_) => Some(DropReason::Ipv6Malformed),
    };
    (reason, note)
}

/// Checks an IPv6 frame from `port` (`l3`: its bytes after the EtherType; `facts`:
/// its chain, walked once by the pipeline).
#[inline]
pub fn check(
    sw: &mut Switch,
    port: PortId,
    l3: &[u8],
    facts: &Result<Ipv6Facts, WireError>,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let step =
        |outcome, mode, note| Step::new(Stage::RaGuard, outcome, Detail::RaGuard { mode, note });
    let Some(g) = sw.ports[port.index()].ra_guard else {
        t.note(|| step(Outcome::Skip, EnforceMode::Enforce, RaGuardNote::Off));
        return Ok(());
    };
    if g.trusted {
        t.note(|| step(Outcome::Skip, g.mode, RaGuardNote::Trusted));
        return Ok(());
    }
    match judge_facts(l3, facts) {
        (None, note) => {
            t.note(|| step(Outcome::Pass, g.mode, note));
            Ok(())
        }
        (Some(reason), note) => refuse(sw, port, g.mode, reason, t, |o| step(o, g.mode, note)),
    }
}
