//! DHCP over UDP/IPv4 (RFC 2131, RFC 2132) as DHCP snooping and IP Source Guard
//! read it, and the Relay Agent Information option (option 82, RFC 3046) rewriter.
//!
//! Invariant: nothing here panics, allocates or reads past its input, whatever the
//! bytes. Every function returns a [`WireError`] (or `None`) instead. A parse that
//! succeeds returns ranges that lie inside the buffer it was given; a rewrite that
//! succeeds leaves a frame whose IPv4 total length, IPv4 header checksum, UDP length
//! and UDP checksum are right for the new bytes.
//!
//! Inputs. The pipeline holds `data` (the received frame) and `body_offset` (the
//! offset of the EtherType after any consumed VLAN tag). The L3 parsers take
//! `l3 = &data[body_offset + 2..]`; the rewriters take `data` and `body_offset`.
//!
//! Decisions (each is fail-closed: a message we cannot read unambiguously is an
//! error, and the snooping stage drops what it cannot read):
//! - What is DHCP is decided by where it could go, not by where it says it comes
//!   from: any UDP datagram to port 67 (servers, relay agents) or 68 (clients),
//!   whatever its source port ([`DhcpCandidate`]). A client listening on 68 — with a
//!   kernel socket or a raw one (udhcpc, dhclient) — reads a reply from any source
//!   port, so recognising only the pairs 67 → 68 and 68 → 67 let a rogue server
//!   answer from port 1067 unseen.
//! - IPv4 fragments of such datagrams are never DHCP to us, and never let through
//!   from untrusted ports: a DHCP message is never fragmented in practice, a
//!   fragment's options cannot be checked, and a raw-socket client that checks only
//!   the fragment offset (ISC dhclient's filter) takes a "first fragment" with MF set
//!   that holds the whole message. Every fragment whose bytes after the IPv4 header
//!   read as UDP to 67/68 is a [`DhcpCandidate::Fragment`] — non-first fragments
//!   too, since a raw-socket client that ignores the fragment fields altogether
//!   would read them the same way — and so is a first fragment too short to show its
//!   UDP ports (RFC 1858's tiny fragment). A non-first fragment that does not read as
//!   UDP to 67/68 cannot complete a datagram to 67/68: the ports are in the first 8
//!   bytes, which only an offset-0 fragment carries, and every offset-0 fragment is
//!   classified.
//! - Option overload (option 52, RFC 2132 §9.3) is refused ([`WireError::OptionOverload`]):
//!   options hidden in `sname`/`file` could carry a second option 53 or 82 that a
//!   server would read and the switch would not see. Real clients and servers do not
//!   use it for the messages snooping handles.
//! - An option that the snooper reads (50, 51, 53, 54, 61) may be repeated only with
//!   identical contents; a different value is [`WireError::ConflictingOption`] (RFC 3396
//!   would concatenate the parts — we refuse rather than guess). Option 82 may appear
//!   once, since stripping removes exactly one.
//! - The option walk stops after [`MAX_OPTION_WALK`] steps (each PAD counts).
//! - The rewriters refuse a datagram whose IPv4 header checksum, or non-zero UDP
//!   checksum, does not verify ([`WireError::BadChecksum`]): they recompute both, and
//!   must never turn a corrupt datagram into one that looks valid. (Partially
//!   checksummed frames from offloading guests are completed first,
//!   [`complete_udp_checksum`]; DESIGN.md §9.) A zero UDP checksum ("none", RFC 768) stays zero.
//! - The rewritten frame ends where the UDP datagram ends: Ethernet padding after the
//!   IPv4 datagram, and IPv4 payload bytes after the UDP datagram, are dropped (the
//!   IPv4 total length is set to header + UDP length). A DHCP frame is always longer
//!   than the 60-byte Ethernet minimum (14 + 20 + 8 + 241), so nothing needs
//!   re-padding. PAD bytes after END inside the UDP payload are kept.
//! - The rewriters check that the frame is a well-formed DHCP message ([`parse`])
//!   but not its ports or message type: classifying it as DHCP, and deciding to insert
//!   (client messages from untrusted ports) or strip (server messages to them), is
//!   the snooping stage's job. `giaddr` and `hops` are left alone (a snooping switch
//!   is not a relay agent).

#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use crate::types::MacAddr;
use core::ops::Range;
use etherparse::checksum::Sum16BitWords;
use etherparse::err::ipv4::HeaderSliceError;
use etherparse::{IpNumber, Ipv4HeaderSlice, UdpHeaderSlice};
use std::net::Ipv4Addr;

pub use crate::wire::WireError;

/// UDP port of DHCP servers (and relay agents).
pub const SERVER_PORT: u16 = 67;
/// UDP port of DHCP clients.
pub const CLIENT_PORT: u16 = 68;
/// The four octets that start the options field (RFC 2131 §3, RFC 1497).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Length of the fixed BOOTP/DHCP header, `op` through `file` (RFC 2131 §2).
pub const FIXED_HEADER_LEN: usize = 236;
/// Offset of the first option: the fixed header and the magic cookie.
pub const OPTIONS_OFFSET: usize = FIXED_HEADER_LEN + 4;
/// Most steps (options, PAD bytes included) the option walk takes before it gives up.
pub const MAX_OPTION_WALK: usize = 1024;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const UDP_HEADER_LEN: usize = 8;

/// DHCP option codes this module reads or writes (RFC 2132, RFC 3046).
pub mod option {
    pub const PAD: u8 = 0;
    /// Requested IP Address (RFC 2132 §9.1).
    pub const REQUESTED_IP: u8 = 50;
    /// IP Address Lease Time (RFC 2132 §9.2).
    pub const LEASE_TIME: u8 = 51;
    /// Option Overload (RFC 2132 §9.3).
    pub const OVERLOAD: u8 = 52;
    /// DHCP Message Type (RFC 2132 §9.6).
    pub const MESSAGE_TYPE: u8 = 53;
    /// Server Identifier (RFC 2132 §9.7).
    pub const SERVER_ID: u8 = 54;
    /// Client-identifier (RFC 2132 §9.14).
    pub const CLIENT_ID: u8 = 61;
    /// Relay Agent Information (RFC 3046).
    pub const RELAY_AGENT_INFO: u8 = 82;
    pub const END: u8 = 255;
    /// Option 82 sub-option: Agent Circuit ID (RFC 3046 §3.1).
    pub const AGENT_CIRCUIT_ID: u8 = 1;
    /// Option 82 sub-option: Agent Remote ID (RFC 3046 §3.2).
    pub const AGENT_REMOTE_ID: u8 = 2;
}

// ---------------------------------------------------------------------------------
// IPv4 and UDP (RFC 791, RFC 768), with etherparse's per-header slices.
// ---------------------------------------------------------------------------------

/// A UDP datagram in an unfragmented IPv4 packet. Offsets are within the `l3` slice
/// it was parsed from.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Ipv4Udp {
    /// IPv4 source address.
    pub src: Ipv4Addr,
    /// IPv4 destination address.
    pub dst: Ipv4Addr,
    /// UDP source port.
    pub sport: u16,
    /// UDP destination port.
    pub dport: u16,
    /// IPv4 header length (IHL × 4): the offset of the UDP header.
    pub ip_header_len: usize,
    /// UDP checksum field as received (0: none).
    pub udp_checksum: u16,
    /// The UDP payload: from after the UDP header to the UDP length.
    pub payload: Range<usize>,
}

/// Validates an IPv4 header: version 4, IHL ≥ 5, the header and the total length
/// inside `l3`, total length ≥ header length. Returns the header and total length.
fn ipv4_header(l3: &[u8]) -> Result<(Ipv4HeaderSlice<'_>, usize), WireError> {
    let ip = Ipv4HeaderSlice::from_slice(l3).map_err(|e| match e {
        HeaderSliceError::Len(_) => WireError::Truncated,
        HeaderSliceError::Content(_) => WireError::NotIpv4,
    })?;
    let total = usize::from(ip.total_len());
    if total < ip.slice().len() {
        return Err(WireError::BadLength);
    }
    if total > l3.len() {
        return Err(WireError::Truncated);
    }
    Ok((ip, total))
}

/// Parses the IPv4 and UDP headers at the start of `l3`: IPv4 (header length
/// honoured, total length inside `l3`), not a fragment, protocol UDP, UDP length at
/// least 8 and inside the IPv4 payload. Checksums are not verified.
pub fn ipv4_udp(l3: &[u8]) -> Result<Ipv4Udp, WireError> {
    let (ip, total) = ipv4_header(l3)?;
    if ip.more_fragments() || ip.fragments_offset().value() != 0 {
        return Err(WireError::Fragmented);
    }
    if ip.protocol() != IpNumber::UDP {
        return Err(WireError::NotUdp);
    }
    let ihl = ip.slice().len();
    let datagram = l3.get(ihl..total).ok_or(WireError::Truncated)?;
    let udp = UdpHeaderSlice::from_slice(datagram).map_err(|_| WireError::Truncated)?;
    let udp_len = usize::from(udp.length());
    if udp_len < UDP_HEADER_LEN || udp_len > datagram.len() {
        return Err(WireError::BadLength);
    }
    Ok(Ipv4Udp {
        src: ip.source_addr(),
        dst: ip.destination_addr(),
        sport: udp.source_port(),
        dport: udp.destination_port(),
        ip_header_len: ihl,
        udp_checksum: udp.checksum(),
        payload: ihl + UDP_HEADER_LEN..ihl + udp_len,
    })
}

/// What the IPv4 stages (DHCP snooping, IP Source Guard) read of one datagram, parsed
/// once per frame by [`Ipv4Facts::parse`] and handed to each stage.
///
/// Invariant: `src` is [`ipv4_source`]`(l3)` and `udp` is what [`ipv4_udp`]`(l3)`
/// gives (ports and payload) — the same answers as the separate parsers
/// (`tests/wire_props.rs` checks it on random bytes); `dhcp` is
/// [`DhcpCandidate::Message`] exactly when `udp` is a datagram to port 67 or 68.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Ipv4Facts {
    /// The source address of a valid IPv4 header, fragments included.
    pub src: Option<Ipv4Addr>,
    /// For an unfragmented, well-formed UDP datagram: its ports and payload.
    pub udp: Option<UdpFacts>,
    /// Whether the datagram could be a DHCP message to a client or a server.
    pub dhcp: DhcpCandidate,
}

/// Whether an IPv4 datagram could be a DHCP message to a client or a server — UDP to
/// port 67 or 68, whatever its source port — read from the bytes where its UDP
/// header is or would be (see the module documentation).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum DhcpCandidate {
    /// Not IPv4 with a valid header, or not UDP, or UDP to another port.
    #[default]
    No,
    /// An unfragmented, well-formed UDP datagram to port 67 or 68: its payload
    /// ([`Ipv4Facts::udp`]) is the DHCP message to inspect.
    Message,
    /// An unfragmented datagram whose bytes read as UDP to 67/68 but whose UDP
    /// length is below 8 or past the IPv4 payload.
    BadUdp,
    /// A fragment (MF set or a non-zero offset) whose bytes after the IPv4 header
    /// read as UDP to 67/68, or a first fragment of UDP too short to show its ports.
    Fragment,
}

/// The UDP ports and the payload's place of an IPv4/UDP datagram (see [`Ipv4Facts`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UdpFacts {
    pub sport: u16,
    pub dport: u16,
    /// The UDP payload within `l3`: `payload_start..payload_end`.
    pub payload_start: u32,
    pub payload_end: u32,
}

impl UdpFacts {
    /// The UDP payload's range within `l3`.
    pub fn payload(&self) -> Range<usize> {
        self.payload_start as usize..self.payload_end as usize
    }
}

impl Ipv4Facts {
    /// Parses the IPv4 header (and the UDP header, when there is one) of `l3` once.
    ///
    /// Read by hand on the frame path (this is every IPv4 frame of a guarded port):
    /// the same checks as `ipv4_header` and [`ipv4_udp`], which use etherparse —
    /// version 4, IHL ≥ 5 (RFC 791 §3.1), header and total length inside `l3`, total
    /// length ≥ header length; for UDP, not a fragment, protocol 17, UDP length ≥ 8
    /// and inside the IPv4 payload (RFC 768). `tests/wire_props.rs` checks that the
    /// answers are etherparse's on random datagrams.
    #[inline]
    pub fn parse(l3: &[u8]) -> Ipv4Facts {
        let none = Ipv4Facts::default();
        let Some(h) = l3.first_chunk::<20>() else {
            return none;
        };
        let ihl = usize::from(h[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
        if h[0] >> 4 != 4 || ihl < 20 || ihl > l3.len() || total < ihl || total > l3.len() {
            return none;
        }
        let src = Some(Ipv4Addr::new(h[12], h[13], h[14], h[15]));
        if h[9] != 17 {
            return Ipv4Facts {
                src,
                udp: None,
                dhcp: DhcpCandidate::No,
            };
        }
        let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
        // The destination port where a UDP header would carry it: read past the
        // IPv4 total length too (fail closed: a raw-socket reader might).
        let to_dhcp = l3
            .get(ihl..)
            .and_then(|d| d.first_chunk::<4>())
            .map(|p| matches!(u16::from_be_bytes([p[2], p[3]]), SERVER_PORT | CLIENT_PORT));
        if frag != 0 {
            // A first fragment (offset 0) without a whole UDP header hides it
            // (RFC 1858 §3.1: a tiny fragment).
            let first_too_short = frag & 0x1fff == 0 && total < ihl + UDP_HEADER_LEN;
            let dhcp = if first_too_short || to_dhcp == Some(true) {
                DhcpCandidate::Fragment
            } else {
                DhcpCandidate::No
            };
            return Ipv4Facts {
                src,
                udp: None,
                dhcp,
            };
        }
        let udp = l3.get(ihl..total).and_then(|d| {
            let u = d.first_chunk::<UDP_HEADER_LEN>()?;
            let len = usize::from(u16::from_be_bytes([u[4], u[5]]));
            (UDP_HEADER_LEN..=d.len()).contains(&len).then(|| UdpFacts {
                sport: u16::from_be_bytes([u[0], u[1]]),
                dport: u16::from_be_bytes([u[2], u[3]]),
                payload_start: (ihl + UDP_HEADER_LEN) as u32,
                payload_end: (ihl + len) as u32,
            })
        });
        let dhcp = match (to_dhcp, udp) {
            (Some(true), Some(_)) => DhcpCandidate::Message,
            (Some(true), None) => DhcpCandidate::BadUdp,
            _ => DhcpCandidate::No,
        };
        Ipv4Facts { src, udp, dhcp }
    }
}

/// Source and destination address, source and destination port, and the offset of
/// the UDP payload within `l3`, for an unfragmented IPv4/UDP packet (see
/// [`ipv4_udp`], which also gives where the payload ends).
pub fn udp_ports(l3: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, u16, u16, usize)> {
    let u = ipv4_udp(l3).ok()?;
    Some((u.src, u.dst, u.sport, u.dport, u.payload.start))
}

/// The source address of a valid IPv4 header (version 4, IHL ≥ 5, header and total
/// length inside `l3`), fragments included, for IP Source Guard. The header
/// checksum is not verified: a receiver drops a bad one anyway.
pub fn ipv4_source(l3: &[u8]) -> Option<Ipv4Addr> {
    ipv4_header(l3).ok().map(|(ip, _)| ip.source_addr())
}

// ---------------------------------------------------------------------------------
// DHCP message (RFC 2131 §2, RFC 2132).
// ---------------------------------------------------------------------------------

/// BOOTP `op` BOOTREQUEST: client to server (RFC 951, RFC 2131 §2).
pub const BOOTREQUEST: u8 = 1;
/// BOOTP `op` BOOTREPLY: server to client.
pub const BOOTREPLY: u8 = 2;

/// DHCP Message Type, option 53 (RFC 2132 §9.6, RFC 3203, RFC 4388, RFC 6926,
/// RFC 7724). Conversion from the wire never fails.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DhcpMessageType {
    /// DHCPDISCOVER (1).
    Discover,
    /// DHCPOFFER (2).
    Offer,
    /// DHCPREQUEST (3).
    Request,
    /// DHCPDECLINE (4).
    Decline,
    /// DHCPACK (5).
    Ack,
    /// DHCPNAK (6).
    Nak,
    /// DHCPRELEASE (7).
    Release,
    /// DHCPINFORM (8).
    Inform,
    /// DHCPFORCERENEW (9, RFC 3203).
    ForceRenew,
    /// DHCPLEASEQUERY (10, RFC 4388).
    LeaseQuery,
    /// DHCPLEASEUNASSIGNED (11, RFC 4388).
    LeaseUnassigned,
    /// DHCPLEASEUNKNOWN (12, RFC 4388).
    LeaseUnknown,
    /// DHCPLEASEACTIVE (13, RFC 4388).
    LeaseActive,
    /// DHCPBULKLEASEQUERY (14, RFC 6926).
    BulkLeaseQuery,
    /// DHCPLEASEQUERYDONE (15, RFC 6926).
    LeaseQueryDone,
    /// DHCPACTIVELEASEQUERY (16, RFC 7724).
    ActiveLeaseQuery,
    /// DHCPLEASEQUERYSTATUS (17, RFC 7724).
    LeaseQueryStatus,
    /// DHCPTLS (18, RFC 7724).
    Tls,
    /// Any other value, carried raw.
    Unknown(u8),
}

impl DhcpMessageType {
    /// The type's number on the wire.
    pub const fn code(self) -> u8 {
        match self {
            DhcpMessageType::Discover => 1,
            DhcpMessageType::Offer => 2,
            DhcpMessageType::Request => 3,
            DhcpMessageType::Decline => 4,
            DhcpMessageType::Ack => 5,
            DhcpMessageType::Nak => 6,
            DhcpMessageType::Release => 7,
            DhcpMessageType::Inform => 8,
            DhcpMessageType::ForceRenew => 9,
            DhcpMessageType::LeaseQuery => 10,
            DhcpMessageType::LeaseUnassigned => 11,
            DhcpMessageType::LeaseUnknown => 12,
            DhcpMessageType::LeaseActive => 13,
            DhcpMessageType::BulkLeaseQuery => 14,
            DhcpMessageType::LeaseQueryDone => 15,
            DhcpMessageType::ActiveLeaseQuery => 16,
            DhcpMessageType::LeaseQueryStatus => 17,
            DhcpMessageType::Tls => 18,
            DhcpMessageType::Unknown(n) => n,
        }
    }

    /// Sent only by a DHCP server: OFFER, ACK, NAK, FORCERENEW, and the leasequery
    /// replies LEASEUNASSIGNED, LEASEUNKNOWN, LEASEACTIVE, LEASEQUERYDONE,
    /// LEASEQUERYSTATUS — and DHCPTLS, which a server sends too. Snooping drops
    /// these from untrusted ports.
    pub const fn is_server_message(self) -> bool {
        matches!(
            self,
            DhcpMessageType::Offer
                | DhcpMessageType::Ack
                | DhcpMessageType::Nak
                | DhcpMessageType::ForceRenew
                | DhcpMessageType::LeaseUnassigned
                | DhcpMessageType::LeaseUnknown
                | DhcpMessageType::LeaseActive
                | DhcpMessageType::LeaseQueryDone
                | DhcpMessageType::LeaseQueryStatus
                | DhcpMessageType::Tls
        )
    }

    /// Sent by a DHCP client (RFC 2131 §3): DISCOVER, REQUEST, DECLINE, RELEASE,
    /// INFORM. The leasequery requests (LEASEQUERY, BULKLEASEQUERY,
    /// ACTIVELEASEQUERY) come from relay agents and access concentrators, not
    /// clients, and `Unknown` from nobody we know: those are neither client nor
    /// server messages, and the snooping stage decides (fail closed: drop them from
    /// untrusted ports).
    pub const fn is_client_message(self) -> bool {
        matches!(
            self,
            DhcpMessageType::Discover
                | DhcpMessageType::Request
                | DhcpMessageType::Decline
                | DhcpMessageType::Release
                | DhcpMessageType::Inform
        )
    }
}

impl From<u8> for DhcpMessageType {
    fn from(n: u8) -> DhcpMessageType {
        match n {
            1 => DhcpMessageType::Discover,
            2 => DhcpMessageType::Offer,
            3 => DhcpMessageType::Request,
            4 => DhcpMessageType::Decline,
            5 => DhcpMessageType::Ack,
            6 => DhcpMessageType::Nak,
            7 => DhcpMessageType::Release,
            8 => DhcpMessageType::Inform,
            9 => DhcpMessageType::ForceRenew,
            10 => DhcpMessageType::LeaseQuery,
            11 => DhcpMessageType::LeaseUnassigned,
            12 => DhcpMessageType::LeaseUnknown,
            13 => DhcpMessageType::LeaseActive,
            14 => DhcpMessageType::BulkLeaseQuery,
            15 => DhcpMessageType::LeaseQueryDone,
            16 => DhcpMessageType::ActiveLeaseQuery,
            17 => DhcpMessageType::LeaseQueryStatus,
            18 => DhcpMessageType::Tls,
            n => DhcpMessageType::Unknown(n),
        }
    }
}

/// The fields of a DHCP message that snooping needs. Ranges are offsets within the
/// UDP payload the view was parsed from, and always lie inside it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct DhcpView {
    /// `op`: [`BOOTREQUEST`] or [`BOOTREPLY`] in a view that parsed.
    pub op: u8,
    /// `htype`: always 1 (Ethernet) in a view that parsed.
    pub htype: u8,
    /// `hlen`: always 6 in a view that parsed.
    pub hlen: u8,
    /// `hops`.
    pub hops: u8,
    /// `xid`.
    pub xid: u32,
    /// `flags` (bit 15: BROADCAST).
    pub flags: u16,
    /// `ciaddr`: the client's address, when it has one.
    pub ciaddr: Ipv4Addr,
    /// `yiaddr`: "your" address, the one a server offers or acknowledges.
    pub yiaddr: Ipv4Addr,
    /// `siaddr`: next server.
    pub siaddr: Ipv4Addr,
    /// `giaddr`: relay agent address.
    pub giaddr: Ipv4Addr,
    /// The first 6 octets of `chaddr`.
    pub chaddr: MacAddr,
    /// Option 53. `None`: a BOOTP message.
    pub message_type: Option<DhcpMessageType>,
    /// Option 50.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 51, in seconds (0xffffffff: infinite).
    pub lease_secs: Option<u32>,
    /// Option 54.
    pub server_id: Option<Ipv4Addr>,
    /// Option 61's value (type octet and identifier), without code and length.
    pub client_id: Option<Range<usize>>,
    /// Option 82 as a whole — code, length and sub-options — for stripping.
    pub relay_agent_info: Option<Range<usize>>,
    /// Offset of the END option.
    pub options_end: usize,
}

/// Walks option 82's sub-options; `Ok` when they are well-formed (each has its code
/// and length octets and fits) and there is at least one.
fn check_relay_sub_options(value: &[u8]) -> Result<(), WireError> {
    if value.is_empty() {
        return Err(WireError::BadOptionLength);
    }
    let mut rest = value;
    while let [_code, len, tail @ ..] = rest {
        rest = tail
            .get(usize::from(*len)..)
            .ok_or(WireError::BadOptionLength)?;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(WireError::BadOptionLength)
    }
}

/// Records a fixed-size option's value; a repeat must be identical.
fn set_once<T: PartialEq>(slot: &mut Option<T>, value: T) -> Result<(), WireError> {
    match slot {
        Some(prev) if *prev != value => Err(WireError::ConflictingOption),
        Some(_) => Ok(()),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

fn ipv4_value(value: &[u8]) -> Result<Ipv4Addr, WireError> {
    <[u8; 4]>::try_from(value)
        .map(Ipv4Addr::from)
        .map_err(|_| WireError::BadOptionLength)
}

/// Parses a DHCP message: the UDP payload of a datagram to or from port 67/68.
///
/// Requires the 236-byte fixed header, `op` 1 or 2, Ethernet hardware (htype
/// 1, hlen 6), the magic cookie, and options that walk cleanly to an END: PAD (0)
/// is one octet, every other option has a length octet and fits. Bytes after END
/// are ignored. See the module documentation for repeated options and overload.
///
/// Pass exactly the UDP payload (`&l3[ipv4_udp(l3)?.payload]`): given the rest of
/// the frame, an END that only appears in Ethernet padding would be accepted, and
/// the rewriters (which parse the exact payload) would then refuse the message.
pub fn parse(udp_payload: &[u8]) -> Result<DhcpView, WireError> {
    let h: &[u8; OPTIONS_OFFSET] = udp_payload.first_chunk().ok_or(WireError::Truncated)?;
    if h[236..240] != MAGIC_COOKIE {
        return Err(WireError::BadMagicCookie);
    }
    let op = h[0];
    if op != BOOTREQUEST && op != BOOTREPLY {
        return Err(WireError::BadOp);
    }
    let (htype, hlen) = (h[1], h[2]);
    if htype != 1 || hlen != 6 {
        return Err(WireError::Unsupported);
    }
    let mut view = DhcpView {
        op,
        htype,
        hlen,
        hops: h[3],
        xid: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        flags: u16::from_be_bytes([h[10], h[11]]),
        ciaddr: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        yiaddr: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        siaddr: Ipv4Addr::new(h[20], h[21], h[22], h[23]),
        giaddr: Ipv4Addr::new(h[24], h[25], h[26], h[27]),
        chaddr: MacAddr([h[28], h[29], h[30], h[31], h[32], h[33]]),
        message_type: None,
        requested_ip: None,
        lease_secs: None,
        server_id: None,
        client_id: None,
        relay_agent_info: None,
        options_end: 0,
    };

    let mut at = OPTIONS_OFFSET;
    let mut steps = 0usize;
    loop {
        steps += 1;
        if steps > MAX_OPTION_WALK {
            return Err(WireError::TooManyOptions);
        }
        let code = *udp_payload.get(at).ok_or(WireError::MissingEnd)?;
        match code {
            option::PAD => {
                at += 1;
                continue;
            }
            option::END => {
                view.options_end = at;
                return Ok(view);
            }
            _ => {}
        }
        let len = usize::from(*udp_payload.get(at + 1).ok_or(WireError::OptionTruncated)?);
        let value_range = at + 2..at + 2 + len;
        let value = udp_payload
            .get(value_range.clone())
            .ok_or(WireError::OptionTruncated)?;
        match code {
            option::MESSAGE_TYPE => match value {
                [t] => set_once(&mut view.message_type, DhcpMessageType::from(*t))?,
                _ => return Err(WireError::BadOptionLength),
            },
            option::REQUESTED_IP => set_once(&mut view.requested_ip, ipv4_value(value)?)?,
            option::SERVER_ID => set_once(&mut view.server_id, ipv4_value(value)?)?,
            option::LEASE_TIME => {
                let secs = <[u8; 4]>::try_from(value)
                    .map(u32::from_be_bytes)
                    .map_err(|_| WireError::BadOptionLength)?;
                set_once(&mut view.lease_secs, secs)?;
            }
            option::CLIENT_ID => {
                if value.len() < 2 {
                    return Err(WireError::BadOptionLength);
                }
                match &view.client_id {
                    Some(prev) if udp_payload.get(prev.clone()) != Some(value) => {
                        return Err(WireError::ConflictingOption);
                    }
                    Some(_) => {}
                    None => view.client_id = Some(value_range.clone()),
                }
            }
            option::RELAY_AGENT_INFO => {
                if view.relay_agent_info.is_some() {
                    return Err(WireError::ConflictingOption);
                }
                check_relay_sub_options(value)?;
                view.relay_agent_info = Some(at..value_range.end);
            }
            option::OVERLOAD => return Err(WireError::OptionOverload),
            _ => {}
        }
        at = value_range.end;
    }
}

impl DhcpView {
    /// The value of option 82's sub-option `code` (e.g.
    /// [`option::AGENT_CIRCUIT_ID`]) in `udp_payload`, the buffer this view was
    /// parsed from. The first one wins if a code repeats.
    pub fn relay_sub_option<'a>(&self, udp_payload: &'a [u8], code: u8) -> Option<&'a [u8]> {
        let whole = udp_payload.get(self.relay_agent_info.clone()?)?;
        let mut rest = whole.get(2..)?;
        while let [c, len, tail @ ..] = rest {
            let len = usize::from(*len);
            if *c == code {
                return tail.get(..len);
            }
            rest = tail.get(len..)?;
        }
        None
    }

    /// Option 61's value (type and identifier) in `udp_payload`, the buffer this
    /// view was parsed from.
    pub fn client_id<'a>(&self, udp_payload: &'a [u8]) -> Option<&'a [u8]> {
        udp_payload.get(self.client_id.clone()?)
    }
}

// ---------------------------------------------------------------------------------
// Option 82 insertion and removal (RFC 3046).
// ---------------------------------------------------------------------------------

/// Where the parts of a DHCP frame are, as offsets within the frame.
struct Located {
    /// Offset of the IPv4 header.
    l3: usize,
    /// IPv4 header length.
    ihl: usize,
    /// UDP length field.
    udp_len: usize,
    /// UDP checksum field as received.
    udp_checksum: u16,
    /// Offset of the DHCP message (UDP payload).
    dhcp: usize,
    view: DhcpView,
}

impl Located {
    /// Offset just past the UDP datagram.
    fn udp_end(&self) -> usize {
        self.l3 + self.ihl + self.udp_len
    }
}

fn locate(frame: &[u8], body_offset: usize) -> Result<Located, WireError> {
    let l3_off = body_offset.checked_add(2).ok_or(WireError::Truncated)?;
    if frame.get(body_offset..l3_off).ok_or(WireError::Truncated)? != ETHERTYPE_IPV4 {
        return Err(WireError::NotIpv4);
    }
    let l3 = frame.get(l3_off..).ok_or(WireError::Truncated)?;
    let udp = ipv4_udp(l3)?;
    let payload = l3.get(udp.payload.clone()).ok_or(WireError::Truncated)?;
    let view = parse(payload)?;
    Ok(Located {
        l3: l3_off,
        ihl: udp.ip_header_len,
        udp_len: udp.payload.end - udp.ip_header_len,
        udp_checksum: udp.udp_checksum,
        dhcp: l3_off + udp.payload.start,
        view,
    })
}

/// The UDP checksum's sum over the pseudo-header (RFC 768) and the datagram.
///
/// etherparse sums 16-bit words in native byte order (RFC 1071 §2(B)): a
/// checksum it returns is stored with `to_ne_bytes`, and a sum that includes its
/// checksum field verifies as 0 whatever the byte order.
fn udp_sum(src: [u8; 4], dst: [u8; 4], udp: &[u8]) -> Sum16BitWords {
    let len = u16::try_from(udp.len()).unwrap_or(u16::MAX);
    Sum16BitWords::new()
        .add_4bytes(src)
        .add_4bytes(dst)
        .add_2bytes([0, IpNumber::UDP.0])
        .add_2bytes(len.to_be_bytes())
        .add_slice(udp)
}

/// Completes the UDP checksum of a frame whose sender left it to offload
/// (CHECKSUM_PARTIAL: the field holds only the pseudo-header sum), so that the
/// rewriters, which verify checksums, can read it: the checksum over the
/// pseudo-header and the UDP datagram (its UDP length) is written in place, a
/// computed 0 as all ones (RFC 768). `body_offset` is the offset of the EtherType.
///
/// Errors: the frame is not unfragmented UDP over IPv4 (see [`ipv4_udp`]). Nothing
/// is changed then.
pub fn complete_udp_checksum(frame: &mut [u8], body_offset: usize) -> Result<(), WireError> {
    let l3_off = body_offset.checked_add(2).ok_or(WireError::Truncated)?;
    if frame.get(body_offset..l3_off).ok_or(WireError::Truncated)? != ETHERTYPE_IPV4 {
        return Err(WireError::NotIpv4);
    }
    let l3 = frame.get_mut(l3_off..).ok_or(WireError::Truncated)?;
    let udp = ipv4_udp(l3)?;
    let (src, dst) = (udp.src.octets(), udp.dst.octets());
    let datagram = l3
        .get_mut(udp.ip_header_len..udp.payload.end)
        .ok_or(WireError::Truncated)?;
    let u: &mut [u8; UDP_HEADER_LEN] = datagram.first_chunk_mut().ok_or(WireError::Truncated)?;
    [u[6], u[7]] = [0, 0];
    let sum = udp_sum(src, dst, datagram).to_ones_complement_with_no_zero();
    let u: &mut [u8; UDP_HEADER_LEN] = datagram.first_chunk_mut().ok_or(WireError::Truncated)?;
    [u[6], u[7]] = sum.to_ne_bytes();
    Ok(())
}

/// Checks the IPv4 header checksum and, unless it is zero, the UDP checksum.
fn verify_checksums(frame: &[u8], loc: &Located) -> Result<(), WireError> {
    let ip = frame
        .get(loc.l3..loc.l3 + loc.ihl)
        .ok_or(WireError::Truncated)?;
    if Sum16BitWords::new().add_slice(ip).ones_complement() != 0 {
        return Err(WireError::BadChecksum);
    }
    if loc.udp_checksum != 0 {
        let (src, dst) = ip_addrs(ip)?;
        let udp = frame
            .get(loc.l3 + loc.ihl..loc.udp_end())
            .ok_or(WireError::Truncated)?;
        if udp_sum(src, dst, udp).ones_complement() != 0 {
            return Err(WireError::BadChecksum);
        }
    }
    Ok(())
}

fn ip_addrs(ip_header: &[u8]) -> Result<([u8; 4], [u8; 4]), WireError> {
    let h: &[u8; 20] = ip_header.first_chunk().ok_or(WireError::Truncated)?;
    Ok(([h[12], h[13], h[14], h[15]], [h[16], h[17], h[18], h[19]]))
}

/// Sets the IPv4 total length and header checksum, the UDP length and (if the
/// datagram had one) the UDP checksum of the frame in `out`, whose UDP datagram
/// ends at `out.len()`.
fn fix_up(out: &mut [u8], l3: usize, ihl: usize, udp_checksum: bool) -> Result<(), WireError> {
    let udp_start = l3 + ihl;
    let udp_len = out.len().checked_sub(udp_start).ok_or(WireError::NoRoom)?;
    let total = u16::try_from(ihl + udp_len).map_err(|_| WireError::NoRoom)?;
    let udp_len16 = u16::try_from(udp_len).map_err(|_| WireError::NoRoom)?;

    let ip = out.get_mut(l3..udp_start).ok_or(WireError::Truncated)?;
    let (src, dst) = ip_addrs(ip)?;
    {
        let h: &mut [u8; 20] = ip.first_chunk_mut().ok_or(WireError::Truncated)?;
        [h[2], h[3]] = total.to_be_bytes();
        [h[10], h[11]] = [0, 0];
    }
    let sum = Sum16BitWords::new().add_slice(ip).ones_complement();
    {
        let h: &mut [u8; 20] = ip.first_chunk_mut().ok_or(WireError::Truncated)?;
        [h[10], h[11]] = sum.to_ne_bytes();
    }

    let udp = out.get_mut(udp_start..).ok_or(WireError::Truncated)?;
    let u: &mut [u8; UDP_HEADER_LEN] = udp.first_chunk_mut().ok_or(WireError::Truncated)?;
    [u[4], u[5]] = udp_len16.to_be_bytes();
    [u[6], u[7]] = [0, 0];
    if udp_checksum {
        let sum = udp_sum(src, dst, udp).to_ones_complement_with_no_zero();
        let u: &mut [u8; UDP_HEADER_LEN] = udp.first_chunk_mut().ok_or(WireError::Truncated)?;
        [u[6], u[7]] = sum.to_ne_bytes();
    }
    Ok(())
}

/// Copies `src` to the start of `dst` and returns the rest of `dst`.
fn put<'a>(dst: &'a mut [u8], src: &[u8]) -> Result<&'a mut [u8], WireError> {
    let (head, rest) = dst
        .split_at_mut_checked(src.len())
        .ok_or(WireError::NoRoom)?;
    head.copy_from_slice(src);
    Ok(rest)
}

/// Writes into `out` the frame `frame` with option 82 — sub-option 1 (Agent
/// Circuit ID) = `circuit_id`, sub-option 2 (Agent Remote ID) = `remote_id`, an
/// empty one left out — inserted just before the END option, with the IPv4 total
/// length and header checksum and the UDP length and checksum fixed (a zero UDP
/// checksum stays zero). Returns the new frame's length.
///
/// `body_offset` is the offset of the EtherType (0x0800) in `frame`. Errors: the
/// frame is not a well-formed DHCP message in unfragmented IPv4/UDP (see
/// [`ipv4_udp`], [`parse`]); [`WireError::BadChecksum`];
/// [`WireError::RelayInfoPresent`] when it already has option 82;
/// [`WireError::BadRelayInfo`] when both ids are empty or the option would exceed
/// 255 octets; [`WireError::NoRoom`] when `out` is too small or the IPv4 datagram
/// would exceed 65535 octets. On error `out` may hold partial output.
pub fn insert_option82(
    frame: &[u8],
    body_offset: usize,
    circuit_id: &[u8],
    remote_id: &[u8],
    out: &mut [u8],
) -> Result<usize, WireError> {
    let loc = locate(frame, body_offset)?;
    if loc.view.relay_agent_info.is_some() {
        return Err(WireError::RelayInfoPresent);
    }
    let sub_len = |id: &[u8]| if id.is_empty() { 0 } else { 2 + id.len() };
    let value_len = sub_len(circuit_id) + sub_len(remote_id);
    let value_len8 = u8::try_from(value_len).map_err(|_| WireError::BadRelayInfo)?;
    if value_len8 == 0 {
        return Err(WireError::BadRelayInfo);
    }
    verify_checksums(frame, &loc)?;

    let option_len = 2 + value_len;
    if loc.ihl + loc.udp_len + option_len > usize::from(u16::MAX) {
        return Err(WireError::NoRoom);
    }
    let end_at = loc.dhcp + loc.view.options_end;
    let new_len = loc.udp_end() + option_len;
    let out = out.get_mut(..new_len).ok_or(WireError::NoRoom)?;

    let mut rest = put(out, frame.get(..end_at).ok_or(WireError::Truncated)?)?;
    rest = put(rest, &[option::RELAY_AGENT_INFO, value_len8])?;
    for (code, id) in [
        (option::AGENT_CIRCUIT_ID, circuit_id),
        (option::AGENT_REMOTE_ID, remote_id),
    ] {
        if let Ok(len) = u8::try_from(id.len())
            && len > 0
        {
            rest = put(rest, &[code, len])?;
            rest = put(rest, id)?;
        }
    }
    rest = put(
        rest,
        frame
            .get(end_at..loc.udp_end())
            .ok_or(WireError::Truncated)?,
    )?;
    if !rest.is_empty() {
        return Err(WireError::NoRoom);
    }
    fix_up(out, loc.l3, loc.ihl, loc.udp_checksum != 0)?;
    Ok(new_len)
}

/// Writes into `out` the frame `frame` without its option 82, with the IPv4 total
/// length and header checksum and the UDP length and checksum fixed (a zero UDP
/// checksum stays zero). Returns the new frame's length. A message without option
/// 82 is copied unchanged, padding included, and its checksums are not checked.
///
/// Errors as for [`insert_option82`], but for the option 82 ones.
pub fn strip_option82(
    frame: &[u8],
    body_offset: usize,
    out: &mut [u8],
) -> Result<usize, WireError> {
    let loc = locate(frame, body_offset)?;
    let Some(relay) = loc.view.relay_agent_info.clone() else {
        let out = out.get_mut(..frame.len()).ok_or(WireError::NoRoom)?;
        out.copy_from_slice(frame);
        return Ok(frame.len());
    };
    verify_checksums(frame, &loc)?;

    let cut = loc.dhcp + relay.start..loc.dhcp + relay.end;
    let new_len = loc
        .udp_end()
        .checked_sub(cut.len())
        .ok_or(WireError::BadLength)?;
    let out = out.get_mut(..new_len).ok_or(WireError::NoRoom)?;
    let rest = put(out, frame.get(..cut.start).ok_or(WireError::Truncated)?)?;
    let rest = put(
        rest,
        frame
            .get(cut.end..loc.udp_end())
            .ok_or(WireError::Truncated)?,
    )?;
    if !rest.is_empty() {
        return Err(WireError::NoRoom);
    }
    fix_up(out, loc.l3, loc.ihl, loc.udp_checksum != 0)?;
    Ok(new_len)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    // ---- fixtures ------------------------------------------------------------

    const CHADDR: [u8; 6] = [0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42];
    const CLIENT_IP: [u8; 4] = [192, 168, 0, 10];
    const SERVER_IP: [u8; 4] = [192, 168, 0, 1];

    /// The options of a DHCPDISCOVER (after the cookie): message type 1, client id
    /// (type 1 + MAC), requested IP 0.0.0.0, parameter request list, END, one PAD.
    const DISCOVER_OPTIONS: [u8; 26] = [
        53, 1, 1, // DHCPDISCOVER
        61, 7, 1, 0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42, // client id
        50, 4, 0, 0, 0, 0, // requested IP
        55, 4, 1, 3, 6, 42, // parameter request list
        255, 0, // END, PAD
    ];

    /// A 240-byte fixed header and cookie: `op`, htype 1, hlen 6, hops 0, xid
    /// 0x00003d1d, flags 0x8000 (broadcast), ciaddr 0, yiaddr 192.168.0.10,
    /// siaddr 0, giaddr 10.0.0.1, chaddr CHADDR, empty sname and file.
    fn header(op: u8) -> [u8; 240] {
        let mut h = [0u8; 240];
        h[..4].copy_from_slice(&[op, 1, 6, 0]);
        h[4..8].copy_from_slice(&[0x00, 0x00, 0x3d, 0x1d]);
        h[10..12].copy_from_slice(&[0x80, 0x00]);
        h[16..20].copy_from_slice(&CLIENT_IP);
        h[24..28].copy_from_slice(&[10, 0, 0, 1]);
        h[28..34].copy_from_slice(&CHADDR);
        h[236..].copy_from_slice(&MAGIC_COOKIE);
        h
    }

    fn message(op: u8, options: &[u8]) -> Vec<u8> {
        let mut m = header(op).to_vec();
        m.extend_from_slice(options);
        m
    }

    /// RFC 1071 checksum over the concatenation of `parts`, written the slow,
    /// obvious way (independent of the code under test).
    fn naive_checksum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let hi = u32::from(pair[0]) << 8;
            let lo = pair.get(1).copied().map_or(0, u32::from);
            sum += hi | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    /// An Ethernet frame (optionally with an in-band 802.1Q tag) carrying `dhcp` in
    /// UDP 68 → 67 over IPv4 with `ip_options`, checksums computed naively.
    fn frame(dhcp: &[u8], tagged: bool, ip_options: &[u8], udp_checksum: bool) -> Vec<u8> {
        let mut f = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        f.extend_from_slice(&CHADDR);
        if tagged {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let ihl = 20 + ip_options.len();
        let udp_len = 8 + dhcp.len();
        let total = (ihl + udp_len) as u16;
        let mut ip = vec![0x40 | (ihl / 4) as u8, 0x10];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0x12, 0x34, 0, 0, 64, 17, 0, 0]);
        ip.extend_from_slice(&CLIENT_IP);
        ip.extend_from_slice(&[255, 255, 255, 255]);
        ip.extend_from_slice(ip_options);
        let c = naive_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        let mut udp = vec![0, 68, 0, 67];
        udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(dhcp);
        if udp_checksum {
            let pseudo = [&ip[12..20], &[0, 17], &(udp_len as u16).to_be_bytes()[..]].concat();
            let mut c = naive_checksum(&[&pseudo, &udp]);
            if c == 0 {
                c = 0xffff;
            }
            udp[6..8].copy_from_slice(&c.to_be_bytes());
        }
        f.extend_from_slice(&ip);
        f.extend_from_slice(&udp);
        f
    }

    fn discover_frame() -> Vec<u8> {
        frame(&message(BOOTREQUEST, &DISCOVER_OPTIONS), false, &[], true)
    }

    /// Checks a frame's IPv4 and UDP lengths and checksums independently of the
    /// code under test (naively, and with etherparse).
    fn assert_consistent(f: &[u8], body_offset: usize) {
        let l3 = &f[body_offset + 2..];
        let ihl = usize::from(l3[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
        assert_eq!(total, l3.len(), "IPv4 total length");
        assert_eq!(naive_checksum(&[&l3[..ihl]]), 0, "IPv4 header checksum");
        let ip = etherparse::Ipv4HeaderSlice::from_slice(l3)
            .unwrap()
            .to_header();
        assert_eq!(ip.calc_header_checksum(), ip.header_checksum);
        let udp = &l3[ihl..];
        assert_eq!(usize::from(u16::from_be_bytes([udp[4], udp[5]])), udp.len());
        let stored = u16::from_be_bytes([udp[6], udp[7]]);
        if stored != 0 {
            let pseudo = [&l3[12..20], &[0, 17], &udp[4..6]].concat();
            assert_eq!(naive_checksum(&[&pseudo, udp]), 0, "UDP checksum");
            let h = etherparse::UdpHeaderSlice::from_slice(udp)
                .unwrap()
                .to_header();
            assert_eq!(h.calc_checksum_ipv4(&ip, &udp[8..]).unwrap(), stored);
        }
    }

    // ---- DHCP message parsing ------------------------------------------------

    #[test]
    fn parses_a_discover() {
        let m = message(BOOTREQUEST, &DISCOVER_OPTIONS);
        let v = parse(&m).unwrap();
        assert_eq!(v.op, BOOTREQUEST);
        assert_eq!((v.htype, v.hlen, v.hops), (1, 6, 0));
        assert_eq!(v.xid, 0x3d1d);
        assert_eq!(v.flags, 0x8000);
        assert_eq!(v.ciaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(v.yiaddr, Ipv4Addr::from(CLIENT_IP));
        assert_eq!(v.siaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(v.giaddr, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(v.chaddr, MacAddr(CHADDR));
        assert_eq!(v.message_type, Some(DhcpMessageType::Discover));
        assert_eq!(v.requested_ip, Some(Ipv4Addr::UNSPECIFIED));
        assert_eq!(v.lease_secs, None);
        assert_eq!(v.server_id, None);
        assert_eq!(v.client_id, Some(245..252));
        assert_eq!(
            v.client_id(&m),
            Some(&[1, 0x00, 0x0b, 0x82, 0x01, 0xfc, 0x42][..])
        );
        assert_eq!(v.relay_agent_info, None);
        assert_eq!(v.options_end, 240 + 24);
        assert_eq!(m[v.options_end], option::END);
    }

    #[test]
    fn parses_an_ack_with_relay_info() {
        let opts = [
            53, 1, 5, // DHCPACK
            54, 4, 192, 168, 0, 1, // server id
            51, 4, 0, 0, 0x0e, 0x10, // lease 3600 s
            1, 4, 255, 255, 255, 0, // subnet mask
            82, 10, 1, 3, b'e', b't', b'h', 2, 3, b's', b'w', b'1', // relay info
            255,
        ];
        let m = message(BOOTREPLY, &opts);
        let v = parse(&m).unwrap();
        assert_eq!(v.op, BOOTREPLY);
        assert_eq!(v.message_type, Some(DhcpMessageType::Ack));
        assert_eq!(v.server_id, Some(Ipv4Addr::from(SERVER_IP)));
        assert_eq!(v.lease_secs, Some(3600));
        let r = v.relay_agent_info.clone().unwrap();
        assert_eq!(r, 240 + 21..240 + 33);
        assert_eq!(m[r.start], 82);
        assert_eq!(
            v.relay_sub_option(&m, option::AGENT_CIRCUIT_ID),
            Some(&b"eth"[..])
        );
        assert_eq!(
            v.relay_sub_option(&m, option::AGENT_REMOTE_ID),
            Some(&b"sw1"[..])
        );
        assert_eq!(v.relay_sub_option(&m, 5), None);
        assert_eq!(v.options_end, 240 + 33);
    }

    #[test]
    fn a_bootp_message_has_no_type() {
        let v = parse(&message(BOOTREQUEST, &[255])).unwrap();
        assert_eq!(v.message_type, None);
        assert_eq!(v.options_end, 240);
    }

    #[test]
    fn bytes_after_end_are_ignored() {
        let v = parse(&message(BOOTREQUEST, &[53, 1, 3, 255, 52, 99, 0xde, 0xad])).unwrap();
        assert_eq!(v.message_type, Some(DhcpMessageType::Request));
        assert_eq!(v.options_end, 243);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let m = message(BOOTREQUEST, &DISCOVER_OPTIONS);
        let end = 240 + 24;
        for len in 0..=end {
            let r = parse(&m[..len]);
            let want = if len < 240 {
                WireError::Truncated
            } else if [240, 243, 252, 258, 264].contains(&len) {
                // Cut at an option boundary: no END.
                WireError::MissingEnd
            } else {
                WireError::OptionTruncated
            };
            assert_eq!(r, Err(want), "len {len}");
        }
        assert!(parse(&m[..end + 1]).is_ok());
    }

    #[test]
    fn bad_cookie_op_and_hardware() {
        let mut m = message(BOOTREQUEST, &[255]);
        m[239] = 0x64;
        assert_eq!(parse(&m), Err(WireError::BadMagicCookie));

        for op in [0, 3, 255] {
            assert_eq!(
                parse(&message(op, &[255])),
                Err(WireError::BadOp),
                "op {op}"
            );
        }
        for (at, value) in [(1, 6), (1, 0), (2, 16), (2, 0)] {
            let mut m = message(BOOTREQUEST, &[255]);
            m[at] = value;
            assert_eq!(
                parse(&m),
                Err(WireError::Unsupported),
                "byte {at} = {value}"
            );
        }
    }

    #[test]
    fn option_length_errors() {
        let cases: [&[u8]; 11] = [
            &[53, 0, 255],
            &[53, 2, 1, 1, 255],
            &[50, 3, 1, 2, 3, 255],
            &[51, 5, 0, 0, 0, 0, 0, 255],
            &[54, 0, 255],
            &[61, 1, 1, 255],
            &[61, 0, 255],
            &[82, 0, 255],
            &[82, 1, 1, 255],                // sub-option without its length
            &[82, 3, 1, 2, 9, 255],          // sub-option longer than the option
            &[82, 5, 1, 1, b'a', 2, 5, 255], // second sub-option runs past
        ];
        for opts in cases {
            assert_eq!(
                parse(&message(BOOTREQUEST, opts)),
                Err(WireError::BadOptionLength),
                "{opts:?}"
            );
        }
        // Sub-option with an empty value is well-formed.
        assert!(parse(&message(BOOTREQUEST, &[82, 2, 1, 0, 255])).is_ok());
    }

    #[test]
    fn option_truncation_and_missing_end() {
        assert_eq!(
            parse(&message(BOOTREQUEST, &[12])),
            Err(WireError::OptionTruncated)
        );
        assert_eq!(
            parse(&message(
                BOOTREQUEST,
                &[12, 200, b'h', b'o', b's', b't', 255]
            )),
            Err(WireError::OptionTruncated)
        );
        assert_eq!(
            parse(&message(BOOTREQUEST, &[53, 1, 1, 12, 1, b'h'])),
            Err(WireError::MissingEnd)
        );
        assert_eq!(
            parse(&message(BOOTREQUEST, &[0; 40])),
            Err(WireError::MissingEnd)
        );
        assert_eq!(
            parse(&message(BOOTREQUEST, &[])),
            Err(WireError::MissingEnd)
        );
    }

    #[test]
    fn repeated_options() {
        // Same value twice: accepted.
        let v = parse(&message(BOOTREQUEST, &[53, 1, 3, 53, 1, 3, 255])).unwrap();
        assert_eq!(v.message_type, Some(DhcpMessageType::Request));
        let v = parse(&message(BOOTREQUEST, &[61, 2, 0, 7, 61, 2, 0, 7, 255])).unwrap();
        assert_eq!(v.client_id, Some(242..244));
        // Different values: refused.
        let conflicting: [&[u8]; 5] = [
            &[53, 1, 1, 53, 1, 3, 255],
            &[50, 4, 1, 2, 3, 4, 50, 4, 1, 2, 3, 5, 255],
            &[51, 4, 0, 0, 0, 1, 51, 4, 0, 0, 0, 2, 255],
            &[54, 4, 1, 2, 3, 4, 54, 4, 4, 3, 2, 1, 255],
            &[61, 2, 0, 7, 61, 3, 0, 7, 8, 255],
        ];
        for opts in conflicting {
            assert_eq!(
                parse(&message(BOOTREQUEST, opts)),
                Err(WireError::ConflictingOption),
                "{opts:?}"
            );
        }
        // Option 82 twice, even identical: refused.
        assert_eq!(
            parse(&message(
                BOOTREQUEST,
                &[82, 3, 1, 1, b'a', 82, 3, 1, 1, b'a', 255]
            )),
            Err(WireError::ConflictingOption)
        );
    }

    #[test]
    fn option_overload_is_refused() {
        for value in 1..=3 {
            assert_eq!(
                parse(&message(BOOTREQUEST, &[53, 1, 1, 52, 1, value, 255])),
                Err(WireError::OptionOverload)
            );
        }
    }

    #[test]
    fn the_walk_is_capped() {
        let mut opts = vec![0u8; MAX_OPTION_WALK - 1];
        opts.push(255);
        assert!(parse(&message(BOOTREQUEST, &opts)).is_ok());
        let mut opts = vec![0u8; MAX_OPTION_WALK];
        opts.push(255);
        assert_eq!(
            parse(&message(BOOTREQUEST, &opts)),
            Err(WireError::TooManyOptions)
        );
    }

    #[test]
    fn message_types() {
        for n in 0..=255u8 {
            let t = DhcpMessageType::from(n);
            assert_eq!(t.code(), n);
            assert!(!(t.is_client_message() && t.is_server_message()), "{t:?}");
            assert_eq!(matches!(t, DhcpMessageType::Unknown(_)), n == 0 || n > 18);
        }
        use DhcpMessageType as T;
        let clients = [T::Discover, T::Request, T::Decline, T::Release, T::Inform];
        let servers = [
            T::Offer,
            T::Ack,
            T::Nak,
            T::ForceRenew,
            T::LeaseUnassigned,
            T::LeaseUnknown,
            T::LeaseActive,
            T::LeaseQueryDone,
            T::LeaseQueryStatus,
            T::Tls,
        ];
        for t in clients {
            assert!(t.is_client_message() && !t.is_server_message(), "{t:?}");
        }
        for t in servers {
            assert!(t.is_server_message() && !t.is_client_message(), "{t:?}");
        }
        for t in [
            T::LeaseQuery,
            T::BulkLeaseQuery,
            T::ActiveLeaseQuery,
            T::Unknown(0),
        ] {
            assert!(!t.is_server_message() && !t.is_client_message(), "{t:?}");
        }
    }

    #[test]
    fn error_names_are_unique() {
        for (i, a) in WireError::ALL.iter().enumerate() {
            for b in &WireError::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    // ---- IPv4 / UDP ----------------------------------------------------------

    #[test]
    fn udp_ports_of_a_dhcp_frame() {
        let f = discover_frame();
        let l3 = &f[14..];
        let (src, dst, sport, dport, off) = udp_ports(l3).unwrap();
        assert_eq!(src, Ipv4Addr::from(CLIENT_IP));
        assert_eq!(dst, Ipv4Addr::BROADCAST);
        assert_eq!((sport, dport, off), (CLIENT_PORT, SERVER_PORT, 28));
        let u = ipv4_udp(l3).unwrap();
        assert_eq!(u.payload, 28..l3.len());
        assert_eq!(ipv4_source(l3), Some(Ipv4Addr::from(CLIENT_IP)));

        // IPv4 options are honoured.
        let f = frame(&message(1, &[255]), false, &[1, 1, 1, 0], true);
        let u = ipv4_udp(&f[14..]).unwrap();
        assert_eq!(u.ip_header_len, 24);
        assert_eq!(u.payload, 32..32 + 241);

        // Ethernet padding after the datagram is not payload.
        let mut f = frame(&message(1, &[255]), false, &[], true);
        let datagram = f.len() - 14;
        f.extend_from_slice(&[0; 30]);
        assert_eq!(ipv4_udp(&f[14..]).unwrap().payload, 28..datagram);
    }

    #[test]
    fn udp_ports_refusals() {
        let f = discover_frame();
        let l3 = f[14..].to_vec();
        let with = |at: usize, value: u8| {
            let mut l = l3.clone();
            l[at] = value;
            l
        };
        assert_eq!(ipv4_udp(&with(6, 0x20)), Err(WireError::Fragmented)); // MF
        assert_eq!(ipv4_udp(&with(7, 0x01)), Err(WireError::Fragmented)); // offset 1
        assert_eq!(ipv4_udp(&with(6, 0x40)).map(|u| u.sport), Ok(68)); // DF is fine
        assert_eq!(ipv4_udp(&with(9, 6)), Err(WireError::NotUdp));
        assert_eq!(ipv4_udp(&with(0, 0x65)), Err(WireError::NotIpv4));
        assert_eq!(ipv4_udp(&with(0, 0x44)), Err(WireError::NotIpv4)); // IHL 4
        assert_eq!(ipv4_udp(&with(0, 0x4f)), Err(WireError::BadLength)); // 60 > total? no
        // total length below the header / past the slice
        let mut l = l3.clone();
        l[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(ipv4_udp(&l), Err(WireError::BadLength));
        l[2..4].copy_from_slice(&(l3.len() as u16 + 1).to_be_bytes());
        assert_eq!(ipv4_udp(&l), Err(WireError::Truncated));
        // UDP length below 8 / past the IPv4 payload
        let mut l = l3.clone();
        l[24..26].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(ipv4_udp(&l), Err(WireError::BadLength));
        l[24..26].copy_from_slice(&(l3.len() as u16 - 19).to_be_bytes());
        assert_eq!(ipv4_udp(&l), Err(WireError::BadLength));
        // total length leaves no room for the UDP header
        let mut l = l3.clone();
        l[2..4].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(ipv4_udp(&l), Err(WireError::Truncated));

        // Fragments still have a source for IP Source Guard.
        assert_eq!(ipv4_source(&with(6, 0x20)), Some(Ipv4Addr::from(CLIENT_IP)));
        assert_eq!(udp_ports(&with(6, 0x20)), None);
        assert_eq!(ipv4_source(&with(0, 0x65)), None);
    }

    #[test]
    fn every_l3_truncation_is_refused() {
        let f = discover_frame();
        let l3 = &f[14..];
        for len in 0..l3.len() {
            assert_eq!(ipv4_udp(&l3[..len]), Err(WireError::Truncated), "len {len}");
            assert_eq!(ipv4_source(&l3[..len]), None, "len {len}");
        }
    }

    // ---- option 82 -----------------------------------------------------------

    /// A partial checksum (the pseudo-header sum only, as an offloading sender
    /// leaves it) is completed to the real one; what is not UDP/IPv4 is left alone.
    #[test]
    fn a_partial_udp_checksum_is_completed() {
        for tagged in [false, true] {
            let body = if tagged { 16 } else { 12 };
            let good = frame(&message(BOOTREQUEST, &DISCOVER_OPTIONS), tagged, &[], true);
            let mut partial = good.clone();
            let udp = body + 2 + 20;
            let len = (partial.len() - udp) as u16;
            let pseudo = [
                &good[body + 14..body + 22],
                &[0, 17],
                &len.to_be_bytes()[..],
            ]
            .concat();
            let folded = !naive_checksum(&[&pseudo]);
            partial[udp + 6..udp + 8].copy_from_slice(&folded.to_be_bytes());
            assert_ne!(partial, good);
            assert_eq!(complete_udp_checksum(&mut partial, body), Ok(()));
            assert_eq!(partial, good, "tagged {tagged}");
            assert_consistent(&partial, body);
        }
        let mut arp = vec![0u8; 60];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        let before = arp.clone();
        assert_eq!(complete_udp_checksum(&mut arp, 12), Err(WireError::NotIpv4));
        assert_eq!(arp, before);
        assert_eq!(
            complete_udp_checksum(&mut [0; 4], 12),
            Err(WireError::Truncated)
        );
    }

    #[test]
    fn insert_then_strip_round_trips() {
        for tagged in [false, true] {
            for ip_options in [&[][..], &[1, 1, 1, 0][..]] {
                for udp_checksum in [true, false] {
                    let f = frame(
                        &message(BOOTREQUEST, &DISCOVER_OPTIONS),
                        tagged,
                        ip_options,
                        udp_checksum,
                    );
                    let body = if tagged { 16 } else { 12 };
                    let mut padded = f.clone();
                    padded.extend_from_slice(&[0; 17]); // Ethernet padding, dropped
                    let mut out = [0u8; 2048];
                    let n = insert_option82(&padded, body, b"port7", b"sw-a", &mut out).unwrap();
                    let opt = [
                        82, 13, 1, 5, b'p', b'o', b'r', b't', b'7', 2, 4, b's', b'w', b'-', b'a',
                    ];
                    assert_eq!(n, f.len() + opt.len());
                    let ins = &out[..n];
                    assert_consistent(ins, body);

                    // Independently: the option sits just before END.
                    let end = f.len() - 2; // END, PAD
                    assert_eq!(&ins[..body + 2], &f[..body + 2]);
                    assert_eq!(&ins[end..end + opt.len()], &opt);
                    assert_eq!(&ins[end + opt.len()..], &f[end..]);
                    let l3 = &ins[body + 2..];
                    let u = ipv4_udp(l3).unwrap();
                    assert_eq!(u.udp_checksum == 0, !udp_checksum);
                    let v = parse(&l3[u.payload.clone()]).unwrap();
                    let dhcp = &l3[u.payload.clone()];
                    assert_eq!(v.relay_sub_option(dhcp, 1), Some(&b"port7"[..]));
                    assert_eq!(v.relay_sub_option(dhcp, 2), Some(&b"sw-a"[..]));

                    let mut back = [0u8; 2048];
                    let m = strip_option82(ins, body, &mut back).unwrap();
                    assert_eq!(&back[..m], &f[..]);
                }
            }
        }
    }

    #[test]
    fn insert_leaves_out_an_empty_sub_option() {
        let f = discover_frame();
        let mut out = [0u8; 1024];
        let n = insert_option82(&f, 12, b"", b"rid", &mut out).unwrap();
        let end = f.len() - 2;
        assert_eq!(&out[end..end + 7], &[82, 5, 2, 3, b'r', b'i', b'd']);
        assert_consistent(&out[..n], 12);
        let n = insert_option82(&f, 12, b"c", b"", &mut out).unwrap();
        assert_eq!(&out[end..end + 5], &[82, 3, 1, 1, b'c']);
        assert_consistent(&out[..n], 12);
    }

    #[test]
    fn insert_refusals() {
        let f = discover_frame();
        let mut out = [0u8; 2048];
        assert_eq!(
            insert_option82(&f, 12, b"", b"", &mut out),
            Err(WireError::BadRelayInfo)
        );
        // 2 + 254 > 255
        assert_eq!(
            insert_option82(&f, 12, &[7; 254], b"", &mut out),
            Err(WireError::BadRelayInfo)
        );
        assert_eq!(
            insert_option82(&f, 12, &[7; 300], b"", &mut out),
            Err(WireError::BadRelayInfo)
        );
        // 2 + 253 = 255: the longest option.
        let n = insert_option82(&f, 12, &[7; 253], b"", &mut out).unwrap();
        assert_eq!(n, f.len() + 257);
        assert_consistent(&out[..n], 12);
        // Already there.
        let with = insert_option82(&f, 12, b"a", b"b", &mut out).unwrap();
        let with = out[..with].to_vec();
        assert_eq!(
            insert_option82(&with, 12, b"a", b"b", &mut out),
            Err(WireError::RelayInfoPresent)
        );
        // No room: every output length short of the need.
        let need = f.len() + 2 + 3 + 3;
        for len in 0..need {
            let mut small = vec![0u8; len];
            assert_eq!(
                insert_option82(&f, 12, b"a", b"b", &mut small),
                Err(WireError::NoRoom),
                "len {len}"
            );
        }
        let mut exact = vec![0u8; need];
        assert_eq!(insert_option82(&f, 12, b"a", b"b", &mut exact), Ok(need));
    }

    #[test]
    fn rewriters_refuse_bad_checksums_and_non_dhcp() {
        let f = discover_frame();
        let mut out = [0u8; 2048];
        let mut bad = f.clone();
        bad[14 + 8] ^= 1; // TTL: IPv4 header checksum now wrong
        assert_eq!(
            insert_option82(&bad, 12, b"a", b"b", &mut out),
            Err(WireError::BadChecksum)
        );
        let mut bad = f.clone();
        bad[14 + 28 + 50] ^= 1; // sname: UDP checksum now wrong
        assert_eq!(
            insert_option82(&bad, 12, b"a", b"b", &mut out),
            Err(WireError::BadChecksum)
        );
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            insert_option82(&arp, 12, b"a", b"b", &mut out),
            Err(WireError::NotIpv4)
        );
        assert_eq!(strip_option82(&arp, 12, &mut out), Err(WireError::NotIpv4));
        for body in [f.len() - 1, f.len(), usize::MAX - 1, usize::MAX] {
            assert_eq!(
                insert_option82(&f, body, b"a", b"b", &mut out),
                Err(WireError::Truncated)
            );
            assert_eq!(
                strip_option82(&f, body, &mut out),
                Err(WireError::Truncated)
            );
        }
        let mut bad_cookie = f.clone();
        bad_cookie[14 + 28 + 236] = 0;
        assert_eq!(
            strip_option82(&bad_cookie, 12, &mut out),
            Err(WireError::BadMagicCookie)
        );
    }

    #[test]
    fn strip_without_option82_copies_verbatim() {
        let mut f = discover_frame();
        f.extend_from_slice(&[0xee; 9]);
        let mut out = [0u8; 2048];
        let n = strip_option82(&f, 12, &mut out).unwrap();
        assert_eq!(&out[..n], &f[..]);
        let mut small = vec![0u8; f.len() - 1];
        assert_eq!(strip_option82(&f, 12, &mut small), Err(WireError::NoRoom));
    }

    #[test]
    fn strip_removes_option82_wherever_it_is() {
        // Option 82 in the middle, then a PAD, then other options.
        let opts = [
            53, 1, 5, 82, 5, 1, 3, b'x', b'y', b'z', 0, 54, 4, 192, 168, 0, 1, 255,
        ];
        let stripped_opts = [53, 1, 5, 0, 54, 4, 192, 168, 0, 1, 255];
        let f = frame(&message(BOOTREPLY, &opts), false, &[], true);
        let want = frame(&message(BOOTREPLY, &stripped_opts), false, &[], true);
        let mut out = [0u8; 2048];
        let n = strip_option82(&f, 12, &mut out).unwrap();
        assert_eq!(&out[..n], &want[..]);
        assert_consistent(&out[..n], 12);
    }

    #[test]
    fn udp_checksum_that_sums_to_zero_is_sent_as_ffff() {
        // Find a circuit-id byte that makes the computed UDP checksum 0 (sent as
        // 0xffff, RFC 768), and check the frame still verifies.
        let f = discover_frame();
        let mut out = [0u8; 2048];
        let mut seen = false;
        for b in 0..=255u8 {
            for c in 0..=255u8 {
                let n = insert_option82(&f, 12, &[b, c], b"r", &mut out).unwrap();
                let udp = &out[14 + 20..n];
                if udp[6..8] == [0xff, 0xff] {
                    assert_consistent(&out[..n], 12);
                    seen = true;
                }
            }
        }
        assert!(seen, "no circuit id gave checksum 0xffff");
    }
}
