//! The common case of IPv6 first-hop security, decided at once: a guest's
//! ordinary packet — whole, no extension header, TCP, UDP not to the DHCPv6 ports,
//! or ICMPv6 other than the router and neighbour messages — from an address bound
//! to its port and MAC. RA guard (RFC 6105), DHCPv6 guard (RFC 7610), ND inspection
//! (RFC 6620) and IPv6 Source Guard would each pass such a packet without reading
//! more of it or changing anything; this stage says so with one read of the fixed
//! header and one binding look-up, instead of four stages each walking the chain.
//!
//! Invariant: [`passes`] is `true` only for a packet every IPv6 stage of the port
//! would pass, untouched — no claim, no refresh, no rate-limit token, no count
//! (`tests/ipv6_common.rs` checks the verdicts, counters and whole switch state
//! against the full stages over random frames). Anything else (`false`) goes
//! through the stages. Traced frames always do (`portcullis trace` shows each
//! stage's decision).

use crate::bindings::BindingSource;
use crate::frame::FrameView;
use crate::switch::Switch;
use crate::types::{PortId, Timestamp, Vid};
use crate::wire::icmpv6::msg_type;
use crate::wire::ipv6::{self, next_header};
use std::net::IpAddr;

/// Whether the IPv6 stages would all pass `l3` (the bytes after the EtherType,
/// received on `port` in `vid` from `view.src`) and leave the switch as it is.
#[inline]
pub fn passes(
    sw: &Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    now: Timestamp,
) -> bool {
    let Some((protocol, src)) = ipv6::simple_upper(l3) else {
        return false;
    };
    let upper = &l3[ipv6::HEADER_LEN..];
    let plain = match protocol {
        next_header::TCP => true,
        // Anything to 546 or 547 is DHCPv6 guard's.
        next_header::UDP => !matches!(
            upper.get(2..4).map(|d| u16::from_be_bytes([d[0], d[1]])),
            Some(crate::wire::dhcpv6::CLIENT_PORT | crate::wire::dhcpv6::SERVER_PORT) | None
        ),
        // RS, RA, NS, NA and Redirect are RA guard's and ND inspection's.
        next_header::ICMPV6 => upper
            .first()
            .is_some_and(|t| !(msg_type::ROUTER_SOLICITATION..=msg_type::REDIRECT).contains(t)),
        _ => false,
    };
    if !plain {
        return false;
    }
    let p = &sw.ports[port.index()];
    // A trusted ND port gleans and defends: its own rules.
    if p.nd.is_some_and(|n| n.spec.trusted) {
        return false;
    }
    if p.nd.is_none() && p.ipv6sg.is_none() {
        // RA guard and DHCPv6 guard read no more of it.
        return true;
    }
    // ND inspection sees its owner use it (no claim), IPv6 Source Guard finds it
    // bound to this port and MAC; an Nd binding due for a refresh goes the long way.
    let Some(b) = sw.bindings.lookup(vid, IpAddr::V6(src)) else {
        return false;
    };
    let live = b.lease_end.is_none_or(|end| end > now);
    let refresh_due = p.nd.is_some_and(|n| {
        b.source == BindingSource::Nd
            && b.lease_end.is_some_and(|end| {
                let full = u64::from(n.spec.binding_lifetime_secs) * 1_000_000_000;
                end.saturating_since(now) < full / 2
            })
    });
    live && !refresh_due && b.port == port && b.mac == view.src && !src.is_unspecified()
}
