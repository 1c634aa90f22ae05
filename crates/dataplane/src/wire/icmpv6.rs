//! ICMPv6 (RFC 4443) as the IPv6 first-hop stages read it: the message's type,
//! code and body, and its checksum verified over the IPv6 pseudo-header
//! (RFC 4443 §2.3, RFC 8200 §8.1).
//!
//! Invariant: [`parse`] never panics, allocates or reads past its input; it returns
//! a view only for ICMPv6 that the header-chain walk ([`Ipv6Facts`]) found whole in
//! one packet — unfragmented or an atomic fragment (RFC 6946) — and whose message
//! lies inside the IPv6 payload. A first fragment's ICMPv6 is refused
//! ([`WireError::NotIpv6Upper`]): its checksum and body cannot be checked.
//!
//! The checksum is verified against the IPv6 header's destination. RFC 8200 §8.1
//! would use the last address of a Routing header instead; no message these stages
//! read (ND, MLD) may carry one, so such a packet reports `checksum_ok: false`
//! (fail closed).

#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use crate::wire::ipv6::{self, FragmentKind, Ipv6Facts, next_header};

pub use crate::wire::WireError;

/// Length of the ICMPv6 header: type, code, checksum (RFC 4443 §2.1).
pub const HEADER_LEN: usize = 4;

/// ICMPv6 message types this crate names (RFC 4443, RFC 4861, RFC 2710, RFC 3810).
pub mod msg_type {
    pub const DESTINATION_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAMETER_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const MLD_QUERY: u8 = 130;
    pub const MLD_REPORT: u8 = 131;
    pub const MLD_DONE: u8 = 132;
    pub const ROUTER_SOLICITATION: u8 = 133;
    pub const ROUTER_ADVERTISEMENT: u8 = 134;
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
    pub const REDIRECT: u8 = 137;
    pub const MLDV2_REPORT: u8 = 143;
}

/// One ICMPv6 message, viewed in the bytes it came in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Icmpv6View<'a> {
    pub msg_type: u8,
    pub code: u8,
    /// The checksum field as received.
    pub checksum: u16,
    /// Whether the checksum verifies over the pseudo-header and the whole message.
    pub checksum_ok: bool,
    /// The IPv6 hop limit it arrived with (ND requires 255, RFC 4861 §6.1).
    pub hop_limit: u8,
    /// The whole message, from the type byte to the end of the IPv6 payload.
    pub message: &'a [u8],
    /// The message after the 4-byte header.
    pub body: &'a [u8],
    /// Offset of the message in `l3`.
    pub offset: usize,
}

/// Reads the ICMPv6 message of `l3`, whose chain `facts` describes
/// ([`Ipv6Facts::parse`] of the same bytes). [`WireError::NotIpv6Upper`] unless the
/// chain ends in ICMPv6 in a whole packet.
pub fn parse<'a>(l3: &'a [u8], facts: &Ipv6Facts) -> Result<Icmpv6View<'a>, WireError> {
    let Some((next_header::ICMPV6, offset)) = facts.upper() else {
        return Err(WireError::NotIpv6Upper);
    };
    if matches!(
        facts.fragment_kind(),
        Some(FragmentKind::First | FragmentKind::NonFirst)
    ) {
        return Err(WireError::NotIpv6Upper);
    }
    let message = l3
        .get(offset..facts.end as usize)
        .ok_or(WireError::Truncated)?;
    let (h, body) = message
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(WireError::Truncated)?;
    let hdr = &facts.header;
    Ok(Icmpv6View {
        msg_type: h[0],
        code: h[1],
        checksum: u16::from_be_bytes([h[2], h[3]]),
        checksum_ok: ipv6::checksum_ok(&hdr.src, &hdr.dst, next_header::ICMPV6, message),
        hop_limit: hdr.hop_limit,
        message,
        body,
        offset,
    })
}

/// The ICMPv6 type and code wherever the chain walk found an ICMPv6 header — in a
/// whole packet or in a first fragment, which [`parse`] refuses. RA guard reads it to
/// drop an RA-carrying first fragment (RFC 7113 §3). `None` when the chain does not
/// end in ICMPv6 in this packet.
pub fn type_code(l3: &[u8], facts: &Ipv6Facts) -> Option<(u8, u8)> {
    let Some((next_header::ICMPV6, offset)) = facts.upper() else {
        return None;
    };
    match l3.get(offset..facts.end as usize)? {
        [t, c, ..] => Some((*t, *c)),
        _ => None,
    }
}

/// Parses the IPv6 header and chain, then the ICMPv6 message.
pub fn parse_l3(l3: &[u8]) -> Result<(Ipv6Facts, Icmpv6View<'_>), WireError> {
    let facts = Ipv6Facts::parse(l3)?;
    let view = parse(l3, &facts)?;
    Ok((facts, view))
}

/// Stores the ICMPv6 checksum of `message` (type onwards, checksum field
/// overwritten) for the given addresses. [`WireError::Truncated`] under 4 bytes.
pub fn fill_checksum(
    message: &mut [u8],
    src: &std::net::Ipv6Addr,
    dst: &std::net::Ipv6Addr,
) -> Result<(), WireError> {
    let h: &mut [u8; HEADER_LEN] = message.first_chunk_mut().ok_or(WireError::Truncated)?;
    h[2] = 0;
    h[3] = 0;
    let c = ipv6::upper_checksum(src, dst, next_header::ICMPV6, message);
    if let Some(f) = message.get_mut(2..4) {
        f.copy_from_slice(&c.to_be_bytes());
    }
    Ok(())
}
