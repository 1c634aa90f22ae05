//! The IPv6 header (RFC 8200 §3) and the walk of its whole extension-header chain
//! (RFC 8200 §4), as the IPv6 first-hop security stages (RA guard, DHCPv6 guard, ND
//! inspection, IPv6 source guard) read it: where the upper layer is, or why it
//! cannot be known from this packet.
//!
//! Invariant: [`Ipv6Facts::parse`] never panics, allocates or reads past its input.
//! Its [`Chain`] never says "this upper layer" unless the whole header chain, and the
//! upper-layer header itself (ICMPv6 4 bytes, UDP 8, TCP 20), lie inside the packet
//! (payload length) — so a stage can never mistake an unknown, hidden or cut-off
//! upper layer for "not ICMPv6" or "not UDP". Every other outcome is named:
//! - [`Chain::IncompleteChain`]: a first fragment (offset 0, M set) that does not
//!   hold the chain up to and including the upper-layer header (RFC 7112 §5; RA
//!   guard drops it, RFC 7113 §3).
//! - [`Chain::NonFirstFragment`]: offset ≠ 0 — the bytes after the Fragment header
//!   are data, never headers (RFC 8200 §4.5).
//! - [`Chain::Unknown`]: an extension header this module does not walk (Mobility 135,
//!   HIP 139, Shim6 140, experimental 253/254 — RFC 7045 §2, RFC 8200 §4.8); what
//!   follows it cannot be found.
//! - [`Chain::Esp`]: ESP (RFC 4303); the upper layer is encrypted.
//! - [`Chain::NoNextHeader`]: Next Header 59 (RFC 8200 §4.7).
//! - [`Chain::Malformed`]: a header past the payload, a payload length that disagrees
//!   with the bytes, Hop-by-Hop anywhere but first (RFC 8200 §4.1), a second Fragment
//!   header, an AH length that is not a multiple of 8 octets or
//!   too short for its fixed fields (RFC 4302 §2.2), more
//!   than [`MAX_EXTENSION_HEADERS`] extension headers (RFC 8504 §5.3 lets a node
//!   bound them).
//!
//! Decisions:
//! - Which numbers are extension headers is IANA's list (RFC 7045 §2): 0, 43, 44,
//!   50, 51, 60, 135, 139, 140, 253, 254. No Next Header (59) ends the chain. Every
//!   other Next Header value is an upper layer (TCP, UDP, ICMPv6, SCTP, GRE, a
//!   tunnelled IPv6 …): nothing can hide behind it from a first-hop node.
//! - An atomic fragment (offset 0, M clear; RFC 6946) is a whole packet: its chain is
//!   walked as in an unfragmented one, and a cut-off chain is `Malformed`, not
//!   `IncompleteChain`. [`FragmentFacts`] is reported for every Fragment header.
//! - Payload length 0 (a jumbogram, RFC 2675) is `Malformed`: no Ethernet link
//!   carries one. Bytes after `40 + payload length` are allowed only as Ethernet
//!   padding, i.e. when the L3 bytes are at most [`MAX_PADDED_L3`] long; a longer
//!   packet with trailing bytes is `Malformed` (a raw-socket reader might read them).
//! - Options inside Hop-by-Hop and Destination Options headers are skipped, not
//!   read (their length is the header's).
//!
//! The input is the L3 payload: the bytes after the EtherType (0x86DD).

#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::net::Ipv6Addr;

pub use crate::wire::WireError;

/// EtherType of IPv6.
pub const ETHERTYPE: u16 = 0x86dd;
/// Length of the fixed IPv6 header (RFC 8200 §3).
pub const HEADER_LEN: usize = 40;
/// Most extension headers the walk accepts before the upper layer. RFC 8200 §4.1's
/// recommended order has at most 7 (Destination Options twice); one more leaves
/// room for a Mobility-style header a real stack might add, which stops the walk
/// as `Unknown` anyway.
pub const MAX_EXTENSION_HEADERS: usize = 8;
/// The longest L3 payload (bytes after the EtherType) that Ethernet pads: a 60-byte
/// minimum frame less a 14-byte header. Up to this length, bytes after the IPv6
/// packet are padding.
pub const MAX_PADDED_L3: usize = 46;

/// Next Header values (IANA "Assigned Internet Protocol Numbers").
pub mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const NO_NEXT_HEADER: u8 = 59;
    pub const DESTINATION_OPTIONS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
    pub const EXPERIMENT_1: u8 = 253;
    pub const EXPERIMENT_2: u8 = 254;
}

/// Whether `n` is an IPv6 extension header (RFC 7045 §2), walked or not.
pub const fn is_extension_header(n: u8) -> bool {
    use next_header::*;
    matches!(
        n,
        HOP_BY_HOP
            | ROUTING
            | FRAGMENT
            | ESP
            | AH
            | DESTINATION_OPTIONS
            | MOBILITY
            | HIP
            | SHIM6
            | EXPERIMENT_1
            | EXPERIMENT_2
    )
}

/// The bytes an upper-layer header needs before the walk reports it: ICMPv6's type,
/// code and checksum (RFC 4443 §2.1), UDP's 8 (RFC 768), TCP's fixed 20 (RFC 9293);
/// 0 for any other protocol (its header is not read here).
pub const fn upper_header_len(protocol: u8) -> usize {
    match protocol {
        next_header::ICMPV6 => 4,
        next_header::UDP => 8,
        next_header::TCP => 20,
        _ => 0,
    }
}

/// The fixed IPv6 header, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv6Header {
    pub traffic_class: u8,
    pub flow_label: u32,
    /// Payload length as received (bytes after the fixed header).
    pub payload_len: u16,
    /// Next Header of the fixed header.
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

/// Reads the fixed header: [`WireError::Truncated`] under 40 bytes,
/// [`WireError::NotIpv6`] when the version is not 6. Lengths are not checked here.
pub fn header(l3: &[u8]) -> Result<Ipv6Header, WireError> {
    let h: &[u8; HEADER_LEN] = l3.first_chunk().ok_or(WireError::Truncated)?;
    let (first, rest) = h.split_first_chunk::<8>().ok_or(WireError::Truncated)?;
    if first[0] >> 4 != 6 {
        return Err(WireError::NotIpv6);
    }
    let (src, dst) = rest.split_first_chunk::<16>().ok_or(WireError::Truncated)?;
    let dst: [u8; 16] = dst.try_into().map_err(|_| WireError::Truncated)?;
    let word = u32::from_be_bytes([first[0], first[1], first[2], first[3]]);
    Ok(Ipv6Header {
        traffic_class: (word >> 20) as u8,
        flow_label: word & 0x000f_ffff,
        payload_len: u16::from_be_bytes([first[4], first[5]]),
        next_header: first[6],
        hop_limit: first[7],
        src: Ipv6Addr::from(*src),
        dst: Ipv6Addr::from(dst),
    })
}

/// What a Fragment header says (RFC 8200 §4.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct FragmentFacts {
    /// Fragment offset in 8-octet units.
    pub offset: u16,
    /// The M flag: more fragments follow.
    pub more: bool,
    pub id: u32,
    /// The Fragment header's Next Header: the first header of the fragmentable part.
    pub next_header: u8,
    /// Where the Fragment header sits in `l3`.
    pub header_offset: u32,
}

/// Which part of a fragmented packet this is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum FragmentKind {
    /// Offset 0 and M clear: the whole packet in one "fragment" (RFC 6946).
    Atomic,
    /// Offset 0 and M set.
    First,
    /// Offset ≠ 0.
    NonFirst,
}

impl FragmentFacts {
    pub const fn kind(&self) -> FragmentKind {
        match (self.offset, self.more) {
            (0, false) => FragmentKind::Atomic,
            (0, true) => FragmentKind::First,
            _ => FragmentKind::NonFirst,
        }
    }
}

/// Why a header chain is malformed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Malformation {
    /// Payload length 0 (jumbogram), past the bytes, or short of them by more than
    /// Ethernet padding.
    PayloadLength,
    /// An extension header, or the upper-layer header, runs past the payload of a
    /// packet that is not a first fragment.
    PastEnd,
    /// A Hop-by-Hop Options header not right after the fixed header.
    HopByHopNotFirst,
    /// A second Fragment header.
    RepeatedFragment,
    /// An AH whose length is not a multiple of 8 octets or below its 12 fixed octets.
    BadAhLength,
    /// More than [`MAX_EXTENSION_HEADERS`] extension headers.
    TooManyHeaders,
}

/// What the walk found (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Chain {
    /// The upper layer: its protocol number and the offset of its header in `l3`;
    /// at least [`upper_header_len`] bytes of it lie inside the payload.
    Upper {
        protocol: u8,
        offset: u32,
    },
    /// Next Header 59 at `offset`: nothing follows.
    NoNextHeader {
        offset: u32,
    },
    /// ESP at `offset`: the upper layer is opaque.
    Esp {
        offset: u32,
    },
    /// A non-first fragment: no headers follow the Fragment header.
    NonFirstFragment,
    /// A first fragment that does not hold the whole chain and upper-layer header.
    IncompleteChain,
    /// An extension header this module does not walk.
    Unknown(u8),
    Malformed(Malformation),
}

/// One IPv6 packet as the stages read it, parsed once per frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ipv6Facts {
    pub header: Ipv6Header,
    /// The Fragment header, when there is one before the walk stopped.
    pub fragment: Option<FragmentFacts>,
    /// Extension headers walked (the one that stopped the walk not counted).
    pub extension_headers: u8,
    /// End of the packet in `l3`: `40 + payload length` (or `l3.len()` when that
    /// would be past it).
    pub end: u32,
    pub chain: Chain,
}

impl Ipv6Facts {
    /// Parses the fixed header ([`header`]'s errors) and walks the chain.
    pub fn parse(l3: &[u8]) -> Result<Ipv6Facts, WireError> {
        let header = header(l3)?;
        let declared = HEADER_LEN + usize::from(header.payload_len);
        let mut facts = Ipv6Facts {
            header,
            fragment: None,
            extension_headers: 0,
            end: declared.min(l3.len()) as u32,
            chain: Chain::Malformed(Malformation::PayloadLength),
        };
        if header.payload_len == 0
            || declared > l3.len()
            || (declared < l3.len() && l3.len() > MAX_PADDED_L3)
        {
            return Ok(facts);
        }
        let packet = l3.get(..declared).unwrap_or_default();
        facts.chain = walk(packet, header.next_header, &mut facts);
        Ok(facts)
    }

    /// The upper layer's protocol and header offset, when the walk found it.
    pub const fn upper(&self) -> Option<(u8, usize)> {
        match self.chain {
            Chain::Upper { protocol, offset } => Some((protocol, offset as usize)),
            _ => None,
        }
    }

    /// The Fragment header's kind, if any.
    pub fn fragment_kind(&self) -> Option<FragmentKind> {
        self.fragment.map(|f| f.kind())
    }
}

/// The common case, read without the walk: a whole packet whose fixed header is
/// followed at once by TCP, UDP or ICMPv6 — its protocol and source address.
/// `Some` exactly when [`Ipv6Facts::parse`] would give `Chain::Upper { protocol,
/// offset: 40 }` with no fragment and no extension header (`tests/ipv6_wire.rs`
/// checks it); `None` for everything else, which the full walk then reads.
#[inline]
pub fn simple_upper(l3: &[u8]) -> Option<(u8, Ipv6Addr)> {
    // The fields `header` would read, and only those.
    let h: &[u8; HEADER_LEN] = l3.first_chunk()?;
    let payload_len = u16::from_be_bytes([h[4], h[5]]);
    let declared = HEADER_LEN + usize::from(payload_len);
    if h[0] >> 4 != 6
        || payload_len == 0
        || declared > l3.len()
        || (declared < l3.len() && l3.len() > MAX_PADDED_L3)
    {
        return None;
    }
    let p = h[6];
    let src: &[u8; 16] = h[8..24].try_into().ok()?;
    (matches!(p, next_header::TCP | next_header::UDP | next_header::ICMPV6)
        && declared - HEADER_LEN >= upper_header_len(p))
    .then(|| (p, Ipv6Addr::from(*src)))
}

fn walk(packet: &[u8], first: u8, facts: &mut Ipv6Facts) -> Chain {
    use next_header::*;
    let mut next = first;
    let mut at = HEADER_LEN;
    // A chain cut off inside a first fragment is incomplete, not malformed.
    let cut = |facts: &Ipv6Facts| match facts.fragment_kind() {
        Some(FragmentKind::First) => Chain::IncompleteChain,
        _ => Chain::Malformed(Malformation::PastEnd),
    };
    loop {
        if next == NO_NEXT_HEADER {
            return Chain::NoNextHeader { offset: at as u32 };
        }
        if !is_extension_header(next) {
            return if packet.len().saturating_sub(at) >= upper_header_len(next) {
                Chain::Upper {
                    protocol: next,
                    offset: at as u32,
                }
            } else {
                cut(facts)
            };
        }
        match next {
            ESP => return Chain::Esp { offset: at as u32 },
            HOP_BY_HOP | ROUTING | FRAGMENT | AH | DESTINATION_OPTIONS => {}
            other => return Chain::Unknown(other),
        }
        if usize::from(facts.extension_headers) >= MAX_EXTENSION_HEADERS {
            return Chain::Malformed(Malformation::TooManyHeaders);
        }
        if next == HOP_BY_HOP && at != HEADER_LEN {
            return Chain::Malformed(Malformation::HopByHopNotFirst);
        }
        let Some(h) = packet.get(at..).and_then(|b| b.first_chunk::<8>()) else {
            return cut(facts);
        };
        let len = match next {
            FRAGMENT => {
                if facts.fragment.is_some() {
                    return Chain::Malformed(Malformation::RepeatedFragment);
                }
                let off_flags = u16::from_be_bytes([h[2], h[3]]);
                facts.fragment = Some(FragmentFacts {
                    offset: off_flags >> 3,
                    more: off_flags & 1 == 1,
                    id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                    next_header: h[0],
                    header_offset: at as u32,
                });
                8
            }
            // RFC 4302 §2.2: Payload Len is the AH length in 4-octet units minus 2;
            // for IPv6 the header must be a multiple of 8 octets, and hold the
            // 12 octets of fixed fields (so at least 16).
            AH => {
                let len = (usize::from(h[1]) + 2) * 4;
                if len < 12 || !len.is_multiple_of(8) {
                    return Chain::Malformed(Malformation::BadAhLength);
                }
                len
            }
            // RFC 8200 §4.3, §4.4, §4.6: Hdr Ext Len in 8-octet units, not counting
            // the first 8.
            _ => (usize::from(h[1]) + 1) * 8,
        };
        facts.extension_headers += 1;
        if packet.len() < at + len {
            return cut(facts);
        }
        next = h[0];
        at += len;
        if let Some(f) = facts.fragment
            && f.kind() == FragmentKind::NonFirst
        {
            return Chain::NonFirstFragment;
        }
    }
}

/// Adds `data` to a ones'-complement sum as big-endian 16-bit words (an odd last
/// byte padded with zero), RFC 1071.
pub fn sum_words(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        if let [a, b] = w {
            acc += u32::from(u16::from_be_bytes([*a, *b]));
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [a] = chunks.remainder() {
        acc += u32::from(u16::from_be_bytes([*a, 0]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

/// Folds a sum from [`sum_words`] to 16 bits.
pub const fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The ones'-complement sum of the IPv6 pseudo-header (RFC 8200 §8.1): source,
/// destination, upper-layer length (32 bits), three zero bytes and the Next Header.
pub fn pseudo_header_sum(src: &Ipv6Addr, dst: &Ipv6Addr, upper_len: u32, protocol: u8) -> u32 {
    let acc = sum_words(0, &src.octets());
    let acc = sum_words(acc, &dst.octets());
    let acc = sum_words(acc, &upper_len.to_be_bytes());
    sum_words(acc, &[0, 0, 0, protocol])
}

/// The checksum to store for `upper` (checksum field zeroed) carried over IPv6 with
/// `protocol` (RFC 8200 §8.1). A UDP checksum computed as 0 is sent as 0xffff.
pub fn upper_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, protocol: u8, upper: &[u8]) -> u16 {
    let acc = pseudo_header_sum(src, dst, upper.len() as u32, protocol);
    let c = !fold(sum_words(acc, upper));
    if c == 0 && protocol == next_header::UDP {
        0xffff
    } else {
        c
    }
}

/// Whether `upper` (checksum field as received) verifies over the pseudo-header.
pub fn checksum_ok(src: &Ipv6Addr, dst: &Ipv6Addr, protocol: u8, upper: &[u8]) -> bool {
    let acc = pseudo_header_sum(src, dst, upper.len() as u32, protocol);
    fold(sum_words(acc, upper)) == 0xffff
}

/// Writes a 40-byte IPv6 header at the start of `buf` (traffic class and flow
/// label 0). [`WireError::NoRoom`] for a shorter buffer.
pub fn emit_header(
    buf: &mut [u8],
    payload_len: u16,
    next_header: u8,
    hop_limit: u8,
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
) -> Result<usize, WireError> {
    let h: &mut [u8; HEADER_LEN] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
    let (first, rest) = h.split_at_mut(8);
    first.copy_from_slice(&[0x60, 0, 0, 0, 0, 0, next_header, hop_limit]);
    if let Some(p) = first.get_mut(4..6) {
        p.copy_from_slice(&payload_len.to_be_bytes());
    }
    let (s, d) = rest.split_at_mut(16);
    s.copy_from_slice(&src.octets());
    d.copy_from_slice(&dst.octets());
    Ok(HEADER_LEN)
}
