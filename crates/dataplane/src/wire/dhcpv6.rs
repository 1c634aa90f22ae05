//! DHCPv6 (RFC 8415) as the DHCPv6 guard and snooping stages read it: which IPv6
//! packets could be DHCPv6 at all ([`Dhcpv6Candidate`]), the message (type,
//! transaction id, relay header), its options (Client and Server Identifier DUIDs,
//! IA_NA with IA Address, IA_PD with IA Prefix, Status Code, Rapid Commit, Relay
//! Message) and the message nested in relays; and an `emit` for the client and
//! server messages tests build.
//!
//! Invariant: nothing here panics, allocates or reads past its input. A view that
//! [`parse`] returns has an option area that was walked whole: every option header
//! and value lies inside its container, at every level the readers here descend
//! (message → IA_NA/IA_PD → IA Address/IA Prefix → their options), and every
//! option read here has the length RFC 8415 §21 gives it. So the iterators of a
//! parsed view never meet an error.
//!
//! Decisions (fail closed, as for DHCPv4 in `dhcp.rs`):
//! - What is DHCPv6 is decided by where it could go: any UDP datagram to port 546
//!   (clients) or 547 (servers and relay agents), whatever its source port
//!   ([`Dhcpv6Candidate::Message`]). A rogue server answering from port 1547 is
//!   still a server.
//! - A fragment of UDP to 546/547 — a first fragment, or a non-first fragment whose
//!   bytes after the Fragment header read as UDP to 546/547 — is
//!   [`Dhcpv6Candidate::Fragment`]; a first fragment that does not hold the UDP
//!   header is [`Dhcpv6Candidate::IncompleteChain`]; a packet whose upper layer is
//!   hidden (an extension header not walked, ESP, a malformed chain) is
//!   [`Dhcpv6Candidate::Opaque`]. The stage decides; none of them is "not DHCPv6".
//! - A DUID is 3 to 130 bytes: a 2-byte type and 1 to 128 bytes (RFC 8415 §11.1).
//! - Client Identifier, Server Identifier and Relay Message may be repeated only
//!   with identical contents ([`WireError::ConflictingOption`]).
//! - Relay messages nest at most [`MAX_RELAY_DEPTH`] deep; an option area holds at
//!   most [`MAX_OPTIONS`] options ([`WireError::TooDeep`]).

#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use crate::wire::ipv6::{self, Chain, FragmentKind, Ipv6Facts, next_header};
use std::net::Ipv6Addr;
use std::ops::Range;

pub use crate::wire::WireError;

/// UDP port of DHCPv6 clients.
pub const CLIENT_PORT: u16 = 546;
/// UDP port of DHCPv6 servers and relay agents.
pub const SERVER_PORT: u16 = 547;
/// Relay layers [`innermost`] follows: HOP_COUNT_LIMIT (8, RFC 8415 §7.6) relays
/// after the first.
pub const MAX_RELAY_DEPTH: usize = 9;
/// Options one option area may hold.
pub const MAX_OPTIONS: usize = 256;
/// Shortest and longest DUID, type included (RFC 8415 §11.1).
pub const DUID_LEN: std::ops::RangeInclusive<usize> = 3..=130;
/// Length of a client/server message header: type and transaction id.
pub const HEADER_LEN: usize = 4;
/// Length of a relay message header: type, hop count, link and peer address.
pub const RELAY_HEADER_LEN: usize = 34;

/// Option codes (RFC 8415 §21).
pub mod option {
    pub const CLIENT_ID: u16 = 1;
    pub const SERVER_ID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IA_ADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const PREFERENCE: u16 = 7;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RELAY_MSG: u16 = 9;
    pub const STATUS_CODE: u16 = 13;
    pub const RAPID_COMMIT: u16 = 14;
    pub const INTERFACE_ID: u16 = 18;
    pub const IA_PD: u16 = 25;
    pub const IA_PREFIX: u16 = 26;
}

/// The message type (RFC 8415 §7.3). Conversion from the wire never fails.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum MessageType {
    Solicit,
    Advertise,
    Request,
    Confirm,
    Renew,
    Rebind,
    Reply,
    Release,
    Decline,
    Reconfigure,
    InformationRequest,
    RelayForw,
    RelayRepl,
    Other(u8),
}

impl MessageType {
    pub const fn code(self) -> u8 {
        use MessageType::*;
        match self {
            Solicit => 1,
            Advertise => 2,
            Request => 3,
            Confirm => 4,
            Renew => 5,
            Rebind => 6,
            Reply => 7,
            Release => 8,
            Decline => 9,
            Reconfigure => 10,
            InformationRequest => 11,
            RelayForw => 12,
            RelayRepl => 13,
            Other(n) => n,
        }
    }

    /// A message only servers and relay agents send toward clients (RFC 7610 §5):
    /// ADVERTISE, REPLY, RECONFIGURE, RELAY-REPL.
    pub const fn is_server_message(self) -> bool {
        matches!(
            self,
            MessageType::Advertise
                | MessageType::Reply
                | MessageType::Reconfigure
                | MessageType::RelayRepl
        )
    }

    /// RELAY-FORW or RELAY-REPL.
    pub const fn is_relay(self) -> bool {
        matches!(self, MessageType::RelayForw | MessageType::RelayRepl)
    }
}

impl From<u8> for MessageType {
    fn from(n: u8) -> MessageType {
        use MessageType::*;
        match n {
            1 => Solicit,
            2 => Advertise,
            3 => Request,
            4 => Confirm,
            5 => Renew,
            6 => Rebind,
            7 => Reply,
            8 => Release,
            9 => Decline,
            10 => Reconfigure,
            11 => InformationRequest,
            12 => RelayForw,
            13 => RelayRepl,
            n => Other(n),
        }
    }
}

// ---------------------------------------------------------------------------------
// UDP over IPv6 and the candidate classification.
// ---------------------------------------------------------------------------------

/// A UDP header found by the chain walk. Offsets are within `l3`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Udp6 {
    pub sport: u16,
    pub dport: u16,
    /// The UDP length field.
    pub length: u16,
    pub checksum: u16,
    /// Where the UDP header starts.
    pub offset: usize,
    /// The UDP payload within `l3`: `payload_start..payload_end`.
    pub payload_start: u32,
    pub payload_end: u32,
}

impl Udp6 {
    /// The UDP payload's range within `l3`.
    pub fn payload(&self) -> Range<usize> {
        self.payload_start as usize..self.payload_end as usize
    }
}

/// Whether an IPv6 packet could be a DHCPv6 message (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Dhcpv6Candidate {
    /// Not UDP to 546/547, with the upper layer known.
    #[default]
    No,
    /// A whole UDP datagram to 546/547 (unfragmented or an atomic fragment) whose
    /// UDP length is the rest of the IPv6 payload: [`Dhcpv6Facts::udp`]'s payload is
    /// the message.
    Message,
    /// UDP to 546/547 whose UDP length is below 8 or disagrees with the payload.
    BadUdp,
    /// A fragment of UDP to 546/547.
    Fragment,
    /// A first fragment without the whole chain and UDP header (RFC 7112).
    IncompleteChain,
    /// The upper layer cannot be seen: an extension header not walked, ESP, or a
    /// malformed chain.
    Opaque,
}

/// What the DHCPv6 stages read of one IPv6 packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Dhcpv6Facts {
    /// For [`Dhcpv6Candidate::Message`] (and any whole UDP datagram): its header.
    pub udp: Option<Udp6>,
    pub candidate: Dhcpv6Candidate,
}

fn is_dhcpv6_port(p: u16) -> bool {
    p == CLIENT_PORT || p == SERVER_PORT
}

fn ports_at(l3: &[u8], at: usize) -> Option<(u16, u16)> {
    let p = l3.get(at..)?.first_chunk::<4>()?;
    Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ))
}

impl Dhcpv6Facts {
    /// Classifies `l3`, whose chain `facts` describes.
    pub fn classify(l3: &[u8], facts: &Ipv6Facts) -> Dhcpv6Facts {
        let candidate = |c| Dhcpv6Facts {
            udp: None,
            candidate: c,
        };
        match facts.chain {
            Chain::Upper {
                protocol: next_header::UDP,
                offset,
            } => {
                let at = offset as usize;
                let to_dhcp = ports_at(l3, at).is_some_and(|(_, d)| is_dhcpv6_port(d));
                if facts.fragment_kind() == Some(FragmentKind::First) {
                    return candidate(if to_dhcp {
                        Dhcpv6Candidate::Fragment
                    } else {
                        Dhcpv6Candidate::No
                    });
                }
                let end = facts.end as usize;
                let udp = l3.get(at..end).and_then(|d| {
                    let u = d.first_chunk::<8>()?;
                    let length = u16::from_be_bytes([u[4], u[5]]);
                    (usize::from(length) == d.len()).then(|| Udp6 {
                        sport: u16::from_be_bytes([u[0], u[1]]),
                        dport: u16::from_be_bytes([u[2], u[3]]),
                        length,
                        checksum: u16::from_be_bytes([u[6], u[7]]),
                        offset: at,
                        payload_start: (at + 8) as u32,
                        payload_end: end as u32,
                    })
                });
                let c = match (to_dhcp, udp) {
                    (true, Some(_)) => Dhcpv6Candidate::Message,
                    (true, None) => Dhcpv6Candidate::BadUdp,
                    (false, _) => Dhcpv6Candidate::No,
                };
                Dhcpv6Facts { udp, candidate: c }
            }
            Chain::Upper { .. } | Chain::NoNextHeader { .. } => candidate(Dhcpv6Candidate::No),
            Chain::NonFirstFragment => {
                let reads_as_dhcp = facts.fragment.is_some_and(|f| {
                    f.next_header == next_header::UDP
                        && ports_at(l3, f.header_offset as usize + 8)
                            .is_some_and(|(_, d)| is_dhcpv6_port(d))
                });
                candidate(if reads_as_dhcp {
                    Dhcpv6Candidate::Fragment
                } else {
                    Dhcpv6Candidate::No
                })
            }
            Chain::IncompleteChain => candidate(Dhcpv6Candidate::IncompleteChain),
            Chain::Unknown(_) | Chain::Esp { .. } | Chain::Malformed(_) => {
                candidate(Dhcpv6Candidate::Opaque)
            }
        }
    }

    /// Parses the IPv6 header and chain of `l3` and classifies it.
    pub fn parse(l3: &[u8]) -> Result<(Ipv6Facts, Dhcpv6Facts), WireError> {
        let facts = Ipv6Facts::parse(l3)?;
        Ok((facts, Dhcpv6Facts::classify(l3, &facts)))
    }
}

/// Whether the UDP checksum of `udp` in `l3` verifies (RFC 8200 §8.1: a zero
/// checksum is invalid over IPv6). Verified against the IPv6 header's destination,
/// as `icmpv6` does: a packet with a Routing header (whose final destination is
/// elsewhere) does not verify — fail closed. A guest that offloads checksums sends
/// partial ones (DESIGN.md §9); the stage decides what a failure means.
pub fn udp_checksum_ok(l3: &[u8], facts: &Ipv6Facts, udp: &Udp6) -> bool {
    let Some(datagram) = l3.get(udp.offset..udp.payload().end) else {
        return false;
    };
    udp.checksum != 0
        && ipv6::checksum_ok(
            &facts.header.src,
            &facts.header.dst,
            next_header::UDP,
            datagram,
        )
}

// ---------------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------------

/// An option area: yields `(code, value)` for each option, or one error and then
/// nothing. At most [`MAX_OPTIONS`] options.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RawOptions<'a> {
    rest: &'a [u8],
    seen: usize,
}

impl<'a> RawOptions<'a> {
    pub const fn new(bytes: &'a [u8]) -> RawOptions<'a> {
        RawOptions {
            rest: bytes,
            seen: 0,
        }
    }
}

impl<'a> Iterator for RawOptions<'a> {
    type Item = Result<(u16, &'a [u8]), WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        self.seen += 1;
        if self.seen > MAX_OPTIONS {
            return Some(Err(WireError::TooDeep));
        }
        let Some((h, tail)) = rest.split_first_chunk::<4>() else {
            return Some(Err(WireError::OptionTruncated));
        };
        let code = u16::from_be_bytes([h[0], h[1]]);
        let len = usize::from(u16::from_be_bytes([h[2], h[3]]));
        let (Some(value), Some(after)) = (tail.get(..len), tail.get(len..)) else {
            return Some(Err(WireError::OptionTruncated));
        };
        self.rest = after;
        Some(Ok((code, value)))
    }
}

/// A DUID (RFC 8415 §11): 3 to 130 bytes, viewed in place.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Duid<'a>(&'a [u8]);

impl<'a> Duid<'a> {
    /// [`WireError::BadOptionLength`] outside [`DUID_LEN`].
    pub fn new(bytes: &'a [u8]) -> Result<Duid<'a>, WireError> {
        if DUID_LEN.contains(&bytes.len()) {
            Ok(Duid(bytes))
        } else {
            Err(WireError::BadOptionLength)
        }
    }
    pub const fn bytes(&self) -> &'a [u8] {
        self.0
    }
    /// The DUID type (1 LLT, 2 EN, 3 LL, 4 UUID).
    pub fn duid_type(&self) -> u16 {
        match *self.0 {
            [a, b, ..] => u16::from_be_bytes([a, b]),
            _ => 0,
        }
    }
}

/// A Status Code option (RFC 8415 §21.13).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct StatusCode<'a> {
    pub code: u16,
    pub message: &'a [u8],
}

impl<'a> StatusCode<'a> {
    fn read(v: &'a [u8]) -> Result<StatusCode<'a>, WireError> {
        let (c, message) = v
            .split_first_chunk::<2>()
            .ok_or(WireError::BadOptionLength)?;
        Ok(StatusCode {
            code: u16::from_be_bytes(*c),
            message,
        })
    }
}

/// An IA Address option (RFC 8415 §21.6).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IaAddress<'a> {
    pub address: Ipv6Addr,
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    /// Its own options (a Status Code, …).
    pub options: &'a [u8],
}

/// An IA Prefix option (RFC 8415 §21.22).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct IaPrefix<'a> {
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    pub prefix_len: u8,
    pub prefix: Ipv6Addr,
    pub options: &'a [u8],
}

/// An IA_NA or IA_PD option (RFC 8415 §21.4, §21.21): IAID, T1, T2, options.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Ia<'a> {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub options: &'a [u8],
}

fn split16(v: &[u8]) -> Option<(Ipv6Addr, &[u8])> {
    let (a, rest) = v.split_first_chunk::<16>()?;
    Some((Ipv6Addr::from(*a), rest))
}

fn be32(v: &[u8], at: usize) -> Option<u32> {
    v.get(at..)?
        .first_chunk::<4>()
        .map(|b| u32::from_be_bytes(*b))
}

impl<'a> Ia<'a> {
    fn read(v: &'a [u8]) -> Result<Ia<'a>, WireError> {
        let (h, options) = v
            .split_first_chunk::<12>()
            .ok_or(WireError::BadOptionLength)?;
        let w = |i: usize| be32(h, i).unwrap_or(0);
        Ok(Ia {
            iaid: w(0),
            t1: w(4),
            t2: w(8),
            options,
        })
    }

    /// The IA Address options of an IA_NA.
    pub fn addresses(&self) -> impl Iterator<Item = IaAddress<'a>> + 'a {
        RawOptions::new(self.options).filter_map(|o| match o {
            Ok((option::IA_ADDR, v)) => read_ia_address(v).ok(),
            _ => None,
        })
    }

    /// [`Ia::addresses`], by value (for `flat_map` over a message's IA_NAs).
    pub fn into_addresses(self) -> impl Iterator<Item = IaAddress<'a>> + 'a {
        RawOptions::new(self.options).filter_map(|o| match o {
            Ok((option::IA_ADDR, v)) => read_ia_address(v).ok(),
            _ => None,
        })
    }

    /// The IA Prefix options of an IA_PD.
    pub fn prefixes(&self) -> impl Iterator<Item = IaPrefix<'a>> + 'a {
        RawOptions::new(self.options).filter_map(|o| match o {
            Ok((option::IA_PREFIX, v)) => read_ia_prefix(v).ok(),
            _ => None,
        })
    }

    /// The IA's Status Code option, if any.
    pub fn status(&self) -> Option<StatusCode<'a>> {
        status_of(self.options)
    }
}

fn status_of(options: &[u8]) -> Option<StatusCode<'_>> {
    RawOptions::new(options).find_map(|o| match o {
        Ok((option::STATUS_CODE, v)) => StatusCode::read(v).ok(),
        _ => None,
    })
}

fn read_ia_address(v: &[u8]) -> Result<IaAddress<'_>, WireError> {
    let (address, rest) = split16(v).ok_or(WireError::BadOptionLength)?;
    let (l, options) = rest
        .split_first_chunk::<8>()
        .ok_or(WireError::BadOptionLength)?;
    Ok(IaAddress {
        address,
        preferred_lifetime: be32(l, 0).unwrap_or(0),
        valid_lifetime: be32(l, 4).unwrap_or(0),
        options,
    })
}

fn read_ia_prefix(v: &[u8]) -> Result<IaPrefix<'_>, WireError> {
    let (l, rest) = v
        .split_first_chunk::<9>()
        .ok_or(WireError::BadOptionLength)?;
    let (prefix, options) = split16(rest).ok_or(WireError::BadOptionLength)?;
    Ok(IaPrefix {
        preferred_lifetime: be32(l, 0).unwrap_or(0),
        valid_lifetime: be32(l, 4).unwrap_or(0),
        prefix_len: l[8],
        prefix,
        options,
    })
}

impl IaAddress<'_> {
    pub fn status(&self) -> Option<StatusCode<'_>> {
        status_of(self.options)
    }
}

/// Walks an option area whole, checking the lengths of the options read here and
/// descending into IA_NA/IA_PD and their addresses and prefixes (`depth` levels).
fn check_area(area: &[u8], depth: u8) -> Result<(), WireError> {
    for o in RawOptions::new(area) {
        let (code, v) = o?;
        match code {
            option::STATUS_CODE => {
                StatusCode::read(v)?;
            }
            option::IA_NA | option::IA_PD if depth > 0 => {
                check_area(Ia::read(v)?.options, depth - 1)?;
            }
            option::IA_ADDR if depth > 0 => check_area(read_ia_address(v)?.options, 0)?,
            option::IA_PREFIX if depth > 0 => check_area(read_ia_prefix(v)?.options, 0)?,
            _ => {}
        }
    }
    Ok(())
}

/// A relay message's header (RFC 8415 §9).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RelayHeader {
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
}

/// One DHCPv6 message, client/server or relay.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Dhcpv6View<'a> {
    pub msg_type: MessageType,
    /// The 24-bit transaction id (0 for a relay message).
    pub transaction_id: u32,
    /// The relay header of RELAY-FORW/RELAY-REPL.
    pub relay: Option<RelayHeader>,
    /// The option area (walked whole, see the module invariant).
    pub options: &'a [u8],
    pub client_id: Option<Duid<'a>>,
    pub server_id: Option<Duid<'a>>,
    /// The Relay Message option's value (the nested message).
    pub relay_message: Option<&'a [u8]>,
    pub rapid_commit: bool,
    /// The message-level Status Code.
    pub status: Option<StatusCode<'a>>,
    /// How many IA_NA and IA_PD options.
    pub ia_na_count: u16,
    pub ia_pd_count: u16,
}

fn same<'a>(slot: &mut Option<&'a [u8]>, v: &'a [u8]) -> Result<(), WireError> {
    if slot.is_some_and(|old| old != v) {
        return Err(WireError::ConflictingOption);
    }
    *slot = Some(v);
    Ok(())
}

/// Parses one DHCPv6 message (the UDP payload, or a Relay Message option's value).
/// Errors: [`WireError::Truncated`] under its header; the option errors of the
/// module documentation. A relay message without a Relay Message option parses
/// (`relay_message: None`); [`innermost`] refuses it.
pub fn parse(payload: &[u8]) -> Result<Dhcpv6View<'_>, WireError> {
    let (&t, rest) = payload.split_first().ok_or(WireError::Truncated)?;
    let msg_type = MessageType::from(t);
    let (transaction_id, relay, options) = if msg_type.is_relay() {
        let (&hop_count, rest) = rest.split_first().ok_or(WireError::Truncated)?;
        let (link_address, rest) = split16(rest).ok_or(WireError::Truncated)?;
        let (peer_address, options) = split16(rest).ok_or(WireError::Truncated)?;
        let relay = RelayHeader {
            hop_count,
            link_address,
            peer_address,
        };
        (0, Some(relay), options)
    } else {
        let (x, options) = rest.split_first_chunk::<3>().ok_or(WireError::Truncated)?;
        (u32::from_be_bytes([0, x[0], x[1], x[2]]), None, options)
    };
    check_area(options, 2)?;
    let mut v = Dhcpv6View {
        msg_type,
        transaction_id,
        relay,
        options,
        client_id: None,
        server_id: None,
        relay_message: None,
        rapid_commit: false,
        status: None,
        ia_na_count: 0,
        ia_pd_count: 0,
    };
    let (mut client, mut server) = (None, None);
    for o in RawOptions::new(options) {
        let (code, value) = o?;
        match code {
            option::CLIENT_ID => same(&mut client, Duid::new(value)?.bytes())?,
            option::SERVER_ID => same(&mut server, Duid::new(value)?.bytes())?,
            option::RELAY_MSG => same(&mut v.relay_message, value)?,
            option::RAPID_COMMIT if value.is_empty() => v.rapid_commit = true,
            option::RAPID_COMMIT => return Err(WireError::BadOptionLength),
            option::STATUS_CODE => v.status = Some(StatusCode::read(value)?),
            option::IA_NA => v.ia_na_count = v.ia_na_count.saturating_add(1),
            option::IA_PD => v.ia_pd_count = v.ia_pd_count.saturating_add(1),
            _ => {}
        }
    }
    v.client_id = client.map(Duid);
    v.server_id = server.map(Duid);
    Ok(v)
}

impl<'a> Dhcpv6View<'a> {
    /// The IA_NA options.
    pub fn ia_nas(&self) -> impl Iterator<Item = Ia<'a>> + 'a {
        self.ias(option::IA_NA)
    }

    /// The IA_PD options.
    pub fn ia_pds(&self) -> impl Iterator<Item = Ia<'a>> + 'a {
        self.ias(option::IA_PD)
    }

    fn ias(&self, want: u16) -> impl Iterator<Item = Ia<'a>> + 'a {
        RawOptions::new(self.options).filter_map(move |o| match o {
            Ok((code, v)) if code == want => Ia::read(v).ok(),
            _ => None,
        })
    }

    /// Every option, raw.
    pub fn raw_options(&self) -> RawOptions<'a> {
        RawOptions::new(self.options)
    }
}

/// Follows Relay Message options from `payload` down to the client/server message.
/// Returns the outermost message, the innermost one and how many relay layers were
/// crossed. [`WireError::TooDeep`] past [`MAX_RELAY_DEPTH`] layers,
/// [`WireError::BadOption`] for a relay message without a Relay Message option.
pub fn innermost(payload: &[u8]) -> Result<(Dhcpv6View<'_>, Dhcpv6View<'_>, usize), WireError> {
    let outer = parse(payload)?;
    let mut inner = outer;
    let mut depth = 0;
    while inner.msg_type.is_relay() {
        if depth >= MAX_RELAY_DEPTH {
            return Err(WireError::TooDeep);
        }
        inner = parse(inner.relay_message.ok_or(WireError::BadOption)?)?;
        depth += 1;
    }
    Ok((outer, inner, depth))
}

// ---------------------------------------------------------------------------------
// Emit.
// ---------------------------------------------------------------------------------

/// An option to emit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Dhcpv6OptionOut<'a> {
    ClientId(&'a [u8]),
    ServerId(&'a [u8]),
    /// An IA_NA with one IA Address per entry of `addresses`
    /// (address, preferred, valid).
    IaNa {
        iaid: u32,
        t1: u32,
        t2: u32,
        addresses: &'a [(Ipv6Addr, u32, u32)],
    },
    StatusCode {
        code: u16,
        message: &'a [u8],
    },
    RapidCommit,
    ElapsedTime(u16),
    RelayMessage(&'a [u8]),
    Other {
        code: u16,
        data: &'a [u8],
    },
}

impl Dhcpv6OptionOut<'_> {
    fn value_len(&self) -> usize {
        match self {
            Dhcpv6OptionOut::ClientId(d)
            | Dhcpv6OptionOut::ServerId(d)
            | Dhcpv6OptionOut::RelayMessage(d)
            | Dhcpv6OptionOut::Other { data: d, .. } => d.len(),
            Dhcpv6OptionOut::IaNa { addresses, .. } => 12 + addresses.len() * 28,
            Dhcpv6OptionOut::StatusCode { message, .. } => 2 + message.len(),
            Dhcpv6OptionOut::RapidCommit => 0,
            Dhcpv6OptionOut::ElapsedTime(_) => 2,
        }
    }

    /// Bytes on the wire.
    pub fn wire_len(&self) -> usize {
        4 + self.value_len()
    }

    fn code(&self) -> u16 {
        match self {
            Dhcpv6OptionOut::ClientId(_) => option::CLIENT_ID,
            Dhcpv6OptionOut::ServerId(_) => option::SERVER_ID,
            Dhcpv6OptionOut::IaNa { .. } => option::IA_NA,
            Dhcpv6OptionOut::StatusCode { .. } => option::STATUS_CODE,
            Dhcpv6OptionOut::RapidCommit => option::RAPID_COMMIT,
            Dhcpv6OptionOut::ElapsedTime(_) => option::ELAPSED_TIME,
            Dhcpv6OptionOut::RelayMessage(_) => option::RELAY_MSG,
            Dhcpv6OptionOut::Other { code, .. } => *code,
        }
    }

    fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let vlen = u16::try_from(self.value_len()).map_err(|_| WireError::NoRoom)?;
        let out = buf.get_mut(..self.wire_len()).ok_or(WireError::NoRoom)?;
        let mut at = 0;
        let mut put = |bytes: &[u8]| -> Result<(), WireError> {
            out.get_mut(at..at + bytes.len())
                .ok_or(WireError::NoRoom)?
                .copy_from_slice(bytes);
            at += bytes.len();
            Ok(())
        };
        put(&self.code().to_be_bytes())?;
        put(&vlen.to_be_bytes())?;
        match self {
            Dhcpv6OptionOut::ClientId(d)
            | Dhcpv6OptionOut::ServerId(d)
            | Dhcpv6OptionOut::RelayMessage(d)
            | Dhcpv6OptionOut::Other { data: d, .. } => put(d)?,
            Dhcpv6OptionOut::IaNa {
                iaid,
                t1,
                t2,
                addresses,
            } => {
                put(&iaid.to_be_bytes())?;
                put(&t1.to_be_bytes())?;
                put(&t2.to_be_bytes())?;
                for (a, preferred, valid) in *addresses {
                    put(&option::IA_ADDR.to_be_bytes())?;
                    put(&24u16.to_be_bytes())?;
                    put(&a.octets())?;
                    put(&preferred.to_be_bytes())?;
                    put(&valid.to_be_bytes())?;
                }
            }
            Dhcpv6OptionOut::StatusCode { code, message } => {
                put(&code.to_be_bytes())?;
                put(message)?;
            }
            Dhcpv6OptionOut::RapidCommit => {}
            Dhcpv6OptionOut::ElapsedTime(t) => put(&t.to_be_bytes())?,
        }
        Ok(at)
    }
}

/// A client/server message to build (SOLICIT, ADVERTISE, REQUEST, REPLY, …): the
/// UDP payload.
#[derive(Clone, Copy, Debug)]
pub struct Dhcpv6Emit<'a> {
    pub msg_type: MessageType,
    /// The low 24 bits are sent.
    pub transaction_id: u32,
    pub options: &'a [Dhcpv6OptionOut<'a>],
}

impl Dhcpv6Emit<'_> {
    /// Bytes [`Dhcpv6Emit::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + self
                .options
                .iter()
                .map(Dhcpv6OptionOut::wire_len)
                .sum::<usize>()
    }

    /// Writes the message at the start of `buf`; returns its length.
    /// [`WireError::NoRoom`] for a short buffer or an option value over 65535 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let h: &mut [u8; HEADER_LEN] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
        let x = self.transaction_id.to_be_bytes();
        *h = [self.msg_type.code(), x[1], x[2], x[3]];
        let mut at = HEADER_LEN;
        for o in self.options {
            at += o.emit(buf.get_mut(at..).ok_or(WireError::NoRoom)?)?;
        }
        Ok(at)
    }
}

/// Writes a relay message header (RFC 8415 §9) and a Relay Message option holding
/// `inner` at the start of `buf`; returns its length.
pub fn emit_relay(
    buf: &mut [u8],
    msg_type: MessageType,
    relay: &RelayHeader,
    inner: &[u8],
) -> Result<usize, WireError> {
    let h: &mut [u8; RELAY_HEADER_LEN] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
    let (a, rest) = h.split_at_mut(2);
    a.copy_from_slice(&[msg_type.code(), relay.hop_count]);
    let (l, p) = rest.split_at_mut(16);
    l.copy_from_slice(&relay.link_address.octets());
    p.copy_from_slice(&relay.peer_address.octets());
    let o = Dhcpv6OptionOut::RelayMessage(inner);
    let n = o.emit(buf.get_mut(RELAY_HEADER_LEN..).ok_or(WireError::NoRoom)?)?;
    Ok(RELAY_HEADER_LEN + n)
}

/// Writes an IPv6/UDP datagram (hop limit 1 when `dst` is multicast, else 64)
/// carrying `payload` at the start of `buf`, UDP checksum computed; returns its
/// length.
pub fn emit_udp(
    buf: &mut [u8],
    src: &Ipv6Addr,
    dst: &Ipv6Addr,
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Result<usize, WireError> {
    let ulen = 8 + payload.len();
    let ulen16 = u16::try_from(ulen).map_err(|_| WireError::NoRoom)?;
    let out = buf
        .get_mut(..ipv6::HEADER_LEN + ulen)
        .ok_or(WireError::NoRoom)?;
    let hop = if dst.is_multicast() { 1 } else { 64 };
    let (hdr, udp) = out.split_at_mut(ipv6::HEADER_LEN);
    ipv6::emit_header(hdr, ulen16, next_header::UDP, hop, src, dst)?;
    let (uh, body) = udp.split_at_mut(8);
    body.copy_from_slice(payload);
    let p = sport.to_be_bytes();
    let d = dport.to_be_bytes();
    let l = ulen16.to_be_bytes();
    uh.copy_from_slice(&[p[0], p[1], d[0], d[1], l[0], l[1], 0, 0]);
    let c = ipv6::upper_checksum(src, dst, next_header::UDP, udp).to_be_bytes();
    if let Some(f) = udp.get_mut(6..8) {
        f.copy_from_slice(&c);
    }
    Ok(ipv6::HEADER_LEN + ulen)
}
