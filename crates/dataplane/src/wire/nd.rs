//! Neighbor Discovery (RFC 4861 §4): Router Solicitation and Advertisement,
//! Neighbor Solicitation and Advertisement, Redirect, and their options (RFC 4861
//! §4.6: link-layer addresses, Prefix Information, Redirected Header, MTU; RFC 8106
//! §5.1: RDNSS), as RA guard and ND inspection read them; and the `emit` side for
//! the NS, NA and RA the tests (and later the switch) build.
//!
//! Invariant: [`parse`] never panics, allocates or reads past its input. A view it
//! returns has a fixed part of the length its type needs and an option area whose
//! every option has a non-zero length and lies inside the message (RFC 4861 §4.6:
//! a zero-length option makes the whole message invalid) and, for the options read
//! here, the length its RFC gives (link-layer address on Ethernet: 1, Prefix
//! Information: 4, MTU: 1, RDNSS: 3 + 2n, Redirected Header: ≥ 1). So iterating
//! [`NdView::options`] of a parsed view never meets an error.
//!
//! The RFC 4861 validity checks that depend on the IPv6 header (hop limit 255, code
//! 0, checksum, RA/Redirect from a link-local source, DAD rules) are reported by
//! [`NdView::violation`], not enforced: the stage decides (RA guard drops an RA
//! whatever its validity; ND inspection drops an invalid NS/NA).
//!
//! A link-layer address option repeated with a different address is
//! [`WireError::ConflictingOption`]: which one a host would take is not defined.
//!
//! Fragments: hosts ignore ND messages that arrive in fragments (RFC 6980 §5), and
//! [`parse`] reads only whole packets (its [`Icmpv6View`] comes from
//! `icmpv6::parse`, which refuses fragments). A stage learns the ICMPv6 type of a
//! first fragment from `icmpv6::type_code` (RA guard drops an RA-carrying one).

#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use crate::types::MacAddr;
use crate::wire::icmpv6::{self, Icmpv6View, msg_type};
use crate::wire::ipv6::{self, Ipv6Facts, Ipv6Header, next_header};
use std::net::Ipv6Addr;

pub use crate::wire::WireError;

/// The hop limit every ND message must arrive with (RFC 4861 §6.1, §7.1, §8.1).
pub const ND_HOP_LIMIT: u8 = 255;

/// ND option types (RFC 4861 §4.6, RFC 8106 §5.1).
pub mod option {
    pub const SOURCE_LINK_LAYER: u8 = 1;
    pub const TARGET_LINK_LAYER: u8 = 2;
    pub const PREFIX_INFORMATION: u8 = 3;
    pub const REDIRECTED_HEADER: u8 = 4;
    pub const MTU: u8 = 5;
    pub const RDNSS: u8 = 25;
}

/// The fixed part of an ND message, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NdMessage {
    RouterSolicitation,
    RouterAdvertisement(RouterAdvertisement),
    NeighborSolicitation {
        target: Ipv6Addr,
    },
    NeighborAdvertisement {
        /// R: the sender is a router.
        router: bool,
        /// S: sent in response to an NS.
        solicited: bool,
        /// O: override an existing cache entry.
        override_flag: bool,
        target: Ipv6Addr,
    },
    Redirect {
        /// The better first hop.
        target: Ipv6Addr,
        /// The destination being redirected.
        destination: Ipv6Addr,
    },
}

/// A Router Advertisement's fixed fields (RFC 4861 §4.2, RFC 4191 §2.2, RFC 5175).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RouterAdvertisement {
    pub cur_hop_limit: u8,
    /// The whole flags byte: M 0x80, O 0x40, H 0x20, Prf 0x18, …
    pub flags: u8,
    pub router_lifetime: u16,
    pub reachable_time: u32,
    pub retrans_timer: u32,
}

impl RouterAdvertisement {
    /// M: addresses from DHCPv6.
    pub const fn managed(&self) -> bool {
        self.flags & 0x80 != 0
    }
    /// O: other configuration from DHCPv6.
    pub const fn other(&self) -> bool {
        self.flags & 0x40 != 0
    }
}

impl NdMessage {
    /// The ICMPv6 type of this message.
    pub const fn msg_type(&self) -> u8 {
        match self {
            NdMessage::RouterSolicitation => msg_type::ROUTER_SOLICITATION,
            NdMessage::RouterAdvertisement(_) => msg_type::ROUTER_ADVERTISEMENT,
            NdMessage::NeighborSolicitation { .. } => msg_type::NEIGHBOR_SOLICITATION,
            NdMessage::NeighborAdvertisement { .. } => msg_type::NEIGHBOR_ADVERTISEMENT,
            NdMessage::Redirect { .. } => msg_type::REDIRECT,
        }
    }

    /// Bytes of the message before its options (ICMPv6 header included).
    pub const fn fixed_len(msg_type: u8) -> Option<usize> {
        match msg_type {
            msg_type::ROUTER_SOLICITATION => Some(8),
            msg_type::ROUTER_ADVERTISEMENT => Some(16),
            msg_type::NEIGHBOR_SOLICITATION | msg_type::NEIGHBOR_ADVERTISEMENT => Some(24),
            msg_type::REDIRECT => Some(40),
            _ => None,
        }
    }

    /// The target address of an NS, NA or Redirect.
    pub const fn target(&self) -> Option<Ipv6Addr> {
        match *self {
            NdMessage::NeighborSolicitation { target }
            | NdMessage::NeighborAdvertisement { target, .. }
            | NdMessage::Redirect { target, .. } => Some(target),
            _ => None,
        }
    }
}

/// A Prefix Information option (RFC 4861 §4.6.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    /// L: on-link.
    pub on_link: bool,
    /// A: usable for SLAAC.
    pub autonomous: bool,
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

/// One ND option.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NdOption<'a> {
    SourceLinkLayer(MacAddr),
    TargetLinkLayer(MacAddr),
    PrefixInformation(PrefixInfo),
    Mtu(u32),
    /// RFC 8106 §5.1: lifetime and the addresses (16 bytes each).
    Rdnss {
        lifetime: u32,
        addresses: &'a [u8],
    },
    /// The bytes after the 8-byte option header: the start of the redirected packet.
    RedirectedHeader(&'a [u8]),
    /// Any other option: its type and the bytes after type and length.
    Other {
        kind: u8,
        data: &'a [u8],
    },
}

impl NdOption<'_> {
    /// Bytes this option takes on the wire (a multiple of 8).
    pub fn wire_len(&self) -> usize {
        match self {
            NdOption::SourceLinkLayer(_) | NdOption::TargetLinkLayer(_) | NdOption::Mtu(_) => 8,
            NdOption::PrefixInformation(_) => 32,
            NdOption::Rdnss { addresses, .. } => 8 + addresses.len().div_ceil(8) * 8,
            NdOption::RedirectedHeader(d) => 8 + d.len().div_ceil(8) * 8,
            NdOption::Other { data, .. } => (2 + data.len()).div_ceil(8) * 8,
        }
    }

    /// Writes the option (zero-padded to 8 octets) at the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let len = self.wire_len();
        if len / 8 > 255 || len == 0 {
            return Err(WireError::BadOptionLength);
        }
        let out = buf.get_mut(..len).ok_or(WireError::NoRoom)?;
        out.fill(0);
        let (head, rest) = out.split_at_mut(2);
        head.copy_from_slice(&[self.kind(), (len / 8) as u8]);
        let mut put = |at: usize, bytes: &[u8]| -> Result<(), WireError> {
            rest.get_mut(at..at + bytes.len())
                .ok_or(WireError::NoRoom)?
                .copy_from_slice(bytes);
            Ok(())
        };
        match self {
            NdOption::SourceLinkLayer(m) | NdOption::TargetLinkLayer(m) => put(0, &m.0)?,
            NdOption::PrefixInformation(p) => {
                let flags = (u8::from(p.on_link) << 7) | (u8::from(p.autonomous) << 6);
                put(0, &[p.prefix_len, flags])?;
                put(2, &p.valid_lifetime.to_be_bytes())?;
                put(6, &p.preferred_lifetime.to_be_bytes())?;
                put(14, &p.prefix.octets())?;
            }
            NdOption::Mtu(m) => put(2, &m.to_be_bytes())?,
            NdOption::Rdnss {
                lifetime,
                addresses,
            } => {
                put(2, &lifetime.to_be_bytes())?;
                put(6, addresses)?;
            }
            NdOption::RedirectedHeader(d) => put(6, d)?,
            NdOption::Other { data, .. } => put(0, data)?,
        }
        Ok(len)
    }

    /// The option's type number.
    pub const fn kind(&self) -> u8 {
        match self {
            NdOption::SourceLinkLayer(_) => option::SOURCE_LINK_LAYER,
            NdOption::TargetLinkLayer(_) => option::TARGET_LINK_LAYER,
            NdOption::PrefixInformation(_) => option::PREFIX_INFORMATION,
            NdOption::Mtu(_) => option::MTU,
            NdOption::Rdnss { .. } => option::RDNSS,
            NdOption::RedirectedHeader(_) => option::REDIRECTED_HEADER,
            NdOption::Other { kind, .. } => *kind,
        }
    }
}

/// The option area of an ND message; iterating yields each option, or one error and
/// then nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NdOptions<'a> {
    rest: &'a [u8],
}

impl<'a> NdOptions<'a> {
    pub const fn new(bytes: &'a [u8]) -> NdOptions<'a> {
        NdOptions { rest: bytes }
    }
}

fn addr(b: &[u8]) -> Result<Ipv6Addr, WireError> {
    <[u8; 16]>::try_from(b)
        .map(Ipv6Addr::from)
        .map_err(|_| WireError::Truncated)
}

fn be32(b: &[u8]) -> Result<u32, WireError> {
    <[u8; 4]>::try_from(b)
        .map(u32::from_be_bytes)
        .map_err(|_| WireError::Truncated)
}

fn read_option(kind: u8, units: usize, data: &[u8]) -> Result<NdOption<'_>, WireError> {
    let get = |r: std::ops::Range<usize>| data.get(r).ok_or(WireError::BadOptionLength);
    Ok(match kind {
        option::SOURCE_LINK_LAYER | option::TARGET_LINK_LAYER => {
            if units != 1 {
                return Err(WireError::BadOptionLength);
            }
            let mac = MacAddr(<[u8; 6]>::try_from(get(0..6)?).map_err(|_| WireError::Truncated)?);
            if kind == option::SOURCE_LINK_LAYER {
                NdOption::SourceLinkLayer(mac)
            } else {
                NdOption::TargetLinkLayer(mac)
            }
        }
        option::PREFIX_INFORMATION => {
            if units != 4 {
                return Err(WireError::BadOptionLength);
            }
            let flags = *get(1..2)?.first().ok_or(WireError::Truncated)?;
            NdOption::PrefixInformation(PrefixInfo {
                prefix_len: *get(0..1)?.first().ok_or(WireError::Truncated)?,
                on_link: flags & 0x80 != 0,
                autonomous: flags & 0x40 != 0,
                valid_lifetime: be32(get(2..6)?)?,
                preferred_lifetime: be32(get(6..10)?)?,
                prefix: addr(get(14..30)?)?,
            })
        }
        option::MTU => {
            if units != 1 {
                return Err(WireError::BadOptionLength);
            }
            NdOption::Mtu(be32(get(2..6)?)?)
        }
        option::RDNSS => {
            if units < 3 || units.is_multiple_of(2) {
                return Err(WireError::BadOptionLength);
            }
            NdOption::Rdnss {
                lifetime: be32(get(2..6)?)?,
                addresses: get(6..data.len())?,
            }
        }
        option::REDIRECTED_HEADER => NdOption::RedirectedHeader(get(6..data.len())?),
        kind => NdOption::Other { kind, data },
    })
}

impl<'a> Iterator for NdOptions<'a> {
    type Item = Result<NdOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let [kind, units, ..] = *self.rest else {
            if self.rest.is_empty() {
                return None;
            }
            self.rest = &[];
            return Some(Err(WireError::OptionTruncated));
        };
        let len = usize::from(units) * 8;
        let item = if units == 0 {
            Err(WireError::BadOption)
        } else {
            match self.rest.get(2..len) {
                None => Err(WireError::OptionTruncated),
                Some(data) => read_option(kind, usize::from(units), data),
            }
        };
        self.rest = match item {
            Ok(_) => self.rest.get(len..).unwrap_or_default(),
            Err(_) => &[],
        };
        Some(item)
    }
}

/// A parsed ND message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NdView<'a> {
    pub icmp: Icmpv6View<'a>,
    pub message: NdMessage,
    /// The option area (every option already checked, see the module invariant).
    pub options: NdOptions<'a>,
    /// The Source Link-Layer Address option, if present.
    pub source_ll: Option<MacAddr>,
    /// The Target Link-Layer Address option, if present.
    pub target_ll: Option<MacAddr>,
}

/// An RFC 4861 validity rule a message breaks (§6.1.1, §6.1.2, §7.1.1, §7.1.2, §8.1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NdViolation {
    /// IPv6 hop limit not 255: the message may come from off-link.
    HopLimit,
    /// ICMPv6 code not 0.
    Code,
    /// The ICMPv6 checksum does not verify.
    Checksum,
    /// An RA or Redirect whose source is not link-local.
    SourceNotLinkLocal,
    /// An RS or NS from `::` carrying a Source Link-Layer Address option.
    UnspecifiedWithSllao,
    /// An NS from `::` (DAD) not sent to a solicited-node multicast address.
    DadNotToSolicitedNode,
    /// An NS, NA or Redirect whose target is multicast.
    TargetMulticast,
    /// An NA to a multicast destination with the Solicited flag set.
    SolicitedToMulticast,
    /// A Redirect whose destination is multicast.
    RedirectToMulticast,
    /// A Redirect whose target is neither link-local nor its destination (§8.1).
    RedirectTarget,
    /// An NA from `::`: only DAD's NS and an RS may use it (RFC 4861 §4.3, §4.1).
    UnspecifiedSource,
}

/// Whether `a` is a solicited-node multicast address, ff02::1:ffXX:XXXX (RFC 4291 §2.7.1).
pub fn is_solicited_node(a: &Ipv6Addr) -> bool {
    let s = a.segments();
    s[0] == 0xff02 && s[1..5] == [0, 0, 0, 0] && s[5] == 1 && s[6] >> 8 == 0xff
}

/// The solicited-node multicast address of `a`.
pub fn solicited_node(a: &Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

impl NdView<'_> {
    /// The first RFC 4861 validity rule this message, carried by `header`, breaks.
    pub fn violation(&self, header: &Ipv6Header) -> Option<NdViolation> {
        if self.icmp.hop_limit != ND_HOP_LIMIT {
            return Some(NdViolation::HopLimit);
        }
        if self.icmp.code != 0 {
            return Some(NdViolation::Code);
        }
        if !self.icmp.checksum_ok {
            return Some(NdViolation::Checksum);
        }
        let unspecified = header.src.is_unspecified();
        match self.message {
            NdMessage::RouterSolicitation if unspecified && self.source_ll.is_some() => {
                Some(NdViolation::UnspecifiedWithSllao)
            }
            NdMessage::RouterAdvertisement(_) if !header.src.is_unicast_link_local() => {
                Some(NdViolation::SourceNotLinkLocal)
            }
            NdMessage::NeighborSolicitation { target } => {
                if target.is_multicast() {
                    Some(NdViolation::TargetMulticast)
                } else if unspecified && !is_solicited_node(&header.dst) {
                    Some(NdViolation::DadNotToSolicitedNode)
                } else if unspecified && self.source_ll.is_some() {
                    Some(NdViolation::UnspecifiedWithSllao)
                } else {
                    None
                }
            }
            NdMessage::NeighborAdvertisement {
                target, solicited, ..
            } => {
                if unspecified {
                    Some(NdViolation::UnspecifiedSource)
                } else if target.is_multicast() {
                    Some(NdViolation::TargetMulticast)
                } else if solicited && header.dst.is_multicast() {
                    Some(NdViolation::SolicitedToMulticast)
                } else {
                    None
                }
            }
            NdMessage::Redirect {
                target,
                destination,
            } => {
                if !header.src.is_unicast_link_local() {
                    Some(NdViolation::SourceNotLinkLocal)
                } else if target.is_multicast() {
                    Some(NdViolation::TargetMulticast)
                } else if destination.is_multicast() {
                    Some(NdViolation::RedirectToMulticast)
                } else if !target.is_unicast_link_local() && target != destination {
                    Some(NdViolation::RedirectTarget)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Duplicate Address Detection (RFC 4862 §5.4.2): an NS from `::`. What it
    /// claims is the target address.
    pub fn is_dad(&self, header: &Ipv6Header) -> bool {
        header.src.is_unspecified()
            && matches!(self.message, NdMessage::NeighborSolicitation { .. })
    }

    /// The Prefix Information options.
    pub fn prefixes(&self) -> impl Iterator<Item = PrefixInfo> + '_ {
        self.options.filter_map(|o| match o {
            Ok(NdOption::PrefixInformation(p)) => Some(p),
            _ => None,
        })
    }
}

/// Reads an ND message from its ICMPv6 view. [`WireError::NotNd`] for another
/// ICMPv6 type, [`WireError::Truncated`] when the message is shorter than its fixed
/// part, option errors ([`WireError::BadOption`] for a zero length,
/// [`WireError::OptionTruncated`], [`WireError::BadOptionLength`],
/// [`WireError::ConflictingOption`]) as the module documentation says.
pub fn parse<'a>(icmp: &Icmpv6View<'a>) -> Result<NdView<'a>, WireError> {
    let fixed = NdMessage::fixed_len(icmp.msg_type).ok_or(WireError::NotNd)?;
    let m = icmp.message;
    let opts = m.get(fixed..).ok_or(WireError::Truncated)?;
    let get = |r: std::ops::Range<usize>| m.get(r).ok_or(WireError::Truncated);
    let message = match icmp.msg_type {
        msg_type::ROUTER_SOLICITATION => NdMessage::RouterSolicitation,
        msg_type::ROUTER_ADVERTISEMENT => {
            let b = get(4..16)?;
            let [hl, flags, l0, l1, ..] = *b else {
                return Err(WireError::Truncated);
            };
            NdMessage::RouterAdvertisement(RouterAdvertisement {
                cur_hop_limit: hl,
                flags,
                router_lifetime: u16::from_be_bytes([l0, l1]),
                reachable_time: be32(get(8..12)?)?,
                retrans_timer: be32(get(12..16)?)?,
            })
        }
        msg_type::NEIGHBOR_SOLICITATION => NdMessage::NeighborSolicitation {
            target: addr(get(8..24)?)?,
        },
        msg_type::NEIGHBOR_ADVERTISEMENT => {
            let flags = *get(4..5)?.first().ok_or(WireError::Truncated)?;
            NdMessage::NeighborAdvertisement {
                router: flags & 0x80 != 0,
                solicited: flags & 0x40 != 0,
                override_flag: flags & 0x20 != 0,
                target: addr(get(8..24)?)?,
            }
        }
        _ => NdMessage::Redirect {
            target: addr(get(8..24)?)?,
            destination: addr(get(24..40)?)?,
        },
    };
    let options = NdOptions::new(opts);
    let mut source_ll = None;
    let mut target_ll = None;
    for o in options {
        let (slot, mac) = match o? {
            NdOption::SourceLinkLayer(mac) => (&mut source_ll, mac),
            NdOption::TargetLinkLayer(mac) => (&mut target_ll, mac),
            _ => continue,
        };
        if slot.is_some_and(|m| m != mac) {
            return Err(WireError::ConflictingOption);
        }
        *slot = Some(mac);
    }
    Ok(NdView {
        icmp: *icmp,
        message,
        options,
        source_ll,
        target_ll,
    })
}

/// Parses the IPv6 header and chain, the ICMPv6 message and the ND message of `l3`.
pub fn parse_l3(l3: &[u8]) -> Result<(Ipv6Facts, NdView<'_>), WireError> {
    let (facts, icmp) = icmpv6::parse_l3(l3)?;
    Ok((facts, parse(&icmp)?))
}

/// An ND packet to build: IPv6 header (hop limit 255) and the ICMPv6 message with
/// its checksum, for [`NdEmit::emit`].
#[derive(Clone, Copy, Debug)]
pub struct NdEmit<'a> {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub message: NdMessage,
    pub options: &'a [NdOption<'a>],
}

impl NdEmit<'_> {
    /// Length of the ICMPv6 message.
    pub fn message_len(&self) -> usize {
        let fixed = NdMessage::fixed_len(self.message.msg_type()).unwrap_or(8);
        fixed + self.options.iter().map(NdOption::wire_len).sum::<usize>()
    }

    /// Bytes [`NdEmit::emit`] writes: the IPv6 header and the message.
    pub fn buffer_len(&self) -> usize {
        ipv6::HEADER_LEN + self.message_len()
    }

    /// Writes the IPv6 packet (the L3 payload of a frame, EtherType 0x86DD) at the
    /// start of `buf`; returns its length. [`WireError::NoRoom`] for a short buffer
    /// or a message over 65535 bytes. [`parse_l3`] reads back what it writes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let mlen = self.message_len();
        let plen = u16::try_from(mlen).map_err(|_| WireError::NoRoom)?;
        let total = ipv6::HEADER_LEN + mlen;
        let out = buf.get_mut(..total).ok_or(WireError::NoRoom)?;
        let (hdr, msg) = out.split_at_mut(ipv6::HEADER_LEN);
        ipv6::emit_header(
            hdr,
            plen,
            next_header::ICMPV6,
            ND_HOP_LIMIT,
            &self.src,
            &self.dst,
        )?;
        msg.fill(0);
        let mut put = |at: usize, bytes: &[u8]| -> Result<(), WireError> {
            msg.get_mut(at..at + bytes.len())
                .ok_or(WireError::NoRoom)?
                .copy_from_slice(bytes);
            Ok(())
        };
        put(0, &[self.message.msg_type()])?;
        match self.message {
            NdMessage::RouterSolicitation => {}
            NdMessage::RouterAdvertisement(ra) => {
                put(4, &[ra.cur_hop_limit, ra.flags])?;
                put(6, &ra.router_lifetime.to_be_bytes())?;
                put(8, &ra.reachable_time.to_be_bytes())?;
                put(12, &ra.retrans_timer.to_be_bytes())?;
            }
            NdMessage::NeighborSolicitation { target } => put(8, &target.octets())?,
            NdMessage::NeighborAdvertisement {
                router,
                solicited,
                override_flag,
                target,
            } => {
                let flags = (u8::from(router) << 7)
                    | (u8::from(solicited) << 6)
                    | (u8::from(override_flag) << 5);
                put(4, &[flags])?;
                put(8, &target.octets())?;
            }
            NdMessage::Redirect {
                target,
                destination,
            } => {
                put(8, &target.octets())?;
                put(24, &destination.octets())?;
            }
        }
        let mut at = NdMessage::fixed_len(self.message.msg_type()).unwrap_or(8);
        for o in self.options {
            at += o.emit(msg.get_mut(at..).ok_or(WireError::NoRoom)?)?;
        }
        icmpv6::fill_checksum(msg, &self.src, &self.dst)?;
        Ok(total)
    }
}
