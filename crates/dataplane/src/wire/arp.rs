//! ARP for Ethernet and IPv4 (RFC 826), as Dynamic ARP Inspection reads it.
//!
//! Invariant: [`parse`] never panics, never allocates and never reads past
//! its input. It accepts only the Ethernet/IPv4 form of ARP — hardware type 1,
//! protocol type 0x0800, hardware length 6, protocol length 4 — and at least the
//! 28 bytes that form needs; anything else is a [`WireError`]. Bytes after the 28th
//! (Ethernet padding) are ignored.
//!
//! The input is the L3 payload: the bytes after the EtherType, i.e.
//! `&data[body_offset + 2..]` for a frame whose EtherType sits at `body_offset`.

#![deny(
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use crate::types::MacAddr;
use etherparse::{ArpHardwareId, ArpPacketSlice, EtherType};
use std::net::Ipv4Addr;

pub use crate::wire::WireError;

/// Length of an Ethernet/IPv4 ARP packet (RFC 826): 8 bytes of header, two MACs and
/// two IPv4 addresses.
pub const ARP_ETH_IPV4_LEN: usize = 28;

/// The ARP operation (`ar$op`, RFC 826). Conversion from the wire never fails.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ArpOp {
    /// `ares_op$REQUEST` (1).
    Request,
    /// `ares_op$REPLY` (2).
    Reply,
    /// Any other operation (RARP 3/4, InARP 8/9, …), carried raw.
    Other(u16),
}

impl ArpOp {
    /// The operation's number on the wire.
    #[inline]
    pub const fn code(self) -> u16 {
        match self {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
            ArpOp::Other(n) => n,
        }
    }
}

impl From<u16> for ArpOp {
    #[inline]
    fn from(n: u16) -> ArpOp {
        match n {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            n => ArpOp::Other(n),
        }
    }
}

/// The fields of an Ethernet/IPv4 ARP packet, decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ArpView {
    /// `ar$op`.
    pub oper: ArpOp,
    /// `ar$sha`: sender hardware address.
    pub sender_mac: MacAddr,
    /// `ar$spa`: sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// `ar$tha`: target hardware address (zero or ignored in requests).
    pub target_mac: MacAddr,
    /// `ar$tpa`: target protocol address.
    pub target_ip: Ipv4Addr,
}

/// Parses an ARP packet from the L3 payload of a frame (after the EtherType).
///
/// Errors: [`WireError::Truncated`] when fewer than 8 bytes, or fewer than the
/// 28 bytes an Ethernet/IPv4 packet needs; [`WireError::Unsupported`] when the
/// hardware type is not Ethernet (1), the protocol type not IPv4 (0x0800), or
/// the address lengths not 6 and 4.
pub fn parse(l3: &[u8]) -> Result<ArpView, WireError> {
    // etherparse checks the 8-byte header and `8 + 2*hlen + 2*plen` bytes.
    let arp = ArpPacketSlice::from_slice(l3).map_err(|_| WireError::Truncated)?;
    if arp.hw_addr_type() != ArpHardwareId::ETHERNET
        || arp.proto_addr_type() != EtherType::IPV4
        || arp.hw_addr_size() != 6
        || arp.proto_addr_size() != 4
    {
        return Err(WireError::Unsupported);
    }
    // With hlen 6 and plen 4 etherparse has checked 28 bytes; convert the
    // address slices without indexing.
    let mac = |s: &[u8]| -> Result<MacAddr, WireError> {
        <[u8; 6]>::try_from(s)
            .map(MacAddr)
            .map_err(|_| WireError::Truncated)
    };
    let ip = |s: &[u8]| -> Result<Ipv4Addr, WireError> {
        <[u8; 4]>::try_from(s)
            .map(Ipv4Addr::from)
            .map_err(|_| WireError::Truncated)
    };
    Ok(ArpView {
        oper: ArpOp::from(arp.operation().0),
        sender_mac: mac(arp.sender_hw_addr())?,
        sender_ip: ip(arp.sender_protocol_addr())?,
        target_mac: mac(arp.target_hw_addr())?,
        target_ip: ip(arp.target_protocol_addr())?,
    })
}

impl ArpView {
    /// Bytes [`ArpView::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        ARP_ETH_IPV4_LEN
    }

    /// Writes the Ethernet/IPv4 ARP packet (the L3 payload: hardware type 1,
    /// protocol type 0x0800, lengths 6 and 4, then the fields) into the start of
    /// `buf`; returns its length. [`WireError::NoRoom`] for a buffer shorter than
    /// [`ARP_ETH_IPV4_LEN`]. [`parse`] reads back what it writes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let p: &mut [u8; ARP_ETH_IPV4_LEN] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
        p[..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        p[6..8].copy_from_slice(&self.oper.code().to_be_bytes());
        p[8..14].copy_from_slice(&self.sender_mac.0);
        p[14..18].copy_from_slice(&self.sender_ip.octets());
        p[18..24].copy_from_slice(&self.target_mac.0);
        p[24..28].copy_from_slice(&self.target_ip.octets());
        Ok(ARP_ETH_IPV4_LEN)
    }

    /// An ARP Probe (RFC 5227 §2.1.1): a request whose sender IP is 0.0.0.0 — a
    /// host checking that an address is free before it uses it. Only requests
    /// count: a reply from 0.0.0.0 is no probe.
    #[inline]
    pub fn is_probe(&self) -> bool {
        self.oper == ArpOp::Request && self.sender_ip.is_unspecified()
    }

    /// A gratuitous ARP / ARP Announcement (RFC 5227 §2.3): sender IP equals
    /// target IP, request or reply. 0.0.0.0 never counts (that is a probe).
    #[inline]
    pub fn is_gratuitous(&self) -> bool {
        self.sender_ip == self.target_ip && !self.sender_ip.is_unspecified()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A broadcast who-has 192.168.1.1 from 52:54:00:12:34:56 / 192.168.1.10,
    /// as the L3 payload (after the EtherType), with 18 bytes of Ethernet padding.
    const REQUEST: [u8; 46] = [
        0x00, 0x01, // htype Ethernet
        0x08, 0x00, // ptype IPv4
        6, 4, // hlen, plen
        0x00, 0x01, // oper request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // sha
        192, 168, 1, 10, // spa
        0, 0, 0, 0, 0, 0, // tha
        192, 168, 1, 1, // tpa
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
    ];

    /// is-at reply from 192.168.1.1 (02:00:00:00:00:01) to the requester.
    const REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x02, // header, oper reply
        0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 168, 1, 1, // sender
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 192, 168, 1, 10, // target
    ];

    #[test]
    fn parses_a_request() {
        let v = parse(&REQUEST).unwrap();
        assert_eq!(v.oper, ArpOp::Request);
        assert_eq!(v.sender_mac, MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(v.sender_ip, Ipv4Addr::new(192, 168, 1, 10));
        assert_eq!(v.target_mac, MacAddr::ZERO);
        assert_eq!(v.target_ip, Ipv4Addr::new(192, 168, 1, 1));
        assert!(!v.is_probe());
        assert!(!v.is_gratuitous());
    }

    #[test]
    fn parses_a_reply() {
        let v = parse(&REPLY).unwrap();
        assert_eq!(v.oper, ArpOp::Reply);
        assert_eq!(v.sender_mac, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(v.sender_ip, Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(v.target_mac, MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
        assert_eq!(v.target_ip, Ipv4Addr::new(192, 168, 1, 10));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for len in 0..ARP_ETH_IPV4_LEN {
            assert_eq!(parse(&REPLY[..len]), Err(WireError::Truncated), "len {len}");
        }
        assert!(parse(&REPLY[..ARP_ETH_IPV4_LEN]).is_ok());
    }

    #[test]
    fn rejects_other_hardware_and_protocols() {
        let cases: [(usize, u8); 5] = [
            (1, 6),    // htype 6 (IEEE 802)
            (0, 1),    // htype 0x0101
            (2, 0x86), // ptype 0x8600
            (4, 8),    // hlen 8
            (5, 16),   // plen 16 (IPv6-sized)
        ];
        for (at, value) in cases {
            let mut p = [0u8; 64];
            p[..28].copy_from_slice(&REPLY);
            p[at] = value;
            assert_eq!(
                parse(&p),
                Err(WireError::Unsupported),
                "byte {at} = {value}"
            );
        }
    }

    #[test]
    fn large_address_lengths_are_truncated_not_overread() {
        // hlen 255, plen 255 claims 8 + 1020 bytes.
        let mut p = REPLY;
        p[4] = 255;
        p[5] = 255;
        assert_eq!(parse(&p), Err(WireError::Truncated));
    }

    #[test]
    fn other_operations_are_carried_raw() {
        let mut p = REPLY;
        p[6] = 0x01;
        p[7] = 0x03;
        let v = parse(&p).unwrap();
        assert_eq!(v.oper, ArpOp::Other(0x0103));
        assert_eq!(v.oper.code(), 0x0103);
        assert_eq!(ArpOp::from(1).code(), 1);
        assert_eq!(ArpOp::from(2), ArpOp::Reply);
    }

    /// What `emit` writes, `parse` reads back; a short buffer is refused.
    #[test]
    fn emit_then_parse_round_trips() {
        let v = ArpView {
            oper: ArpOp::Other(3),
            sender_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            sender_ip: Ipv4Addr::new(198, 18, 0, 1),
            target_mac: MacAddr([2, 0, 0, 0, 0, 2]),
            target_ip: Ipv4Addr::new(198, 18, 0, 2),
        };
        let mut buf = [0xee; 30];
        assert_eq!(v.emit(&mut buf), Ok(v.buffer_len()));
        assert_eq!(parse(&buf), Ok(v));
        assert_eq!(buf[28..], [0xee; 2], "nothing past the packet");
        assert_eq!(v.emit(&mut [0; 27]), Err(WireError::NoRoom));
    }

    #[test]
    fn probe_and_announcement() {
        // RFC 5227 probe: request, sender IP 0.0.0.0, target the address wanted.
        let mut probe = REQUEST;
        probe[14..18].copy_from_slice(&[0, 0, 0, 0]);
        let v = parse(&probe).unwrap();
        assert!(v.is_probe());
        assert!(!v.is_gratuitous());

        // A reply from 0.0.0.0 is not a probe.
        let mut reply0 = REPLY;
        reply0[14..18].copy_from_slice(&[0, 0, 0, 0]);
        assert!(!parse(&reply0).unwrap().is_probe());

        // Announcement: sender IP == target IP.
        let mut ann = REQUEST;
        ann[24..28].copy_from_slice(&[192, 168, 1, 10]);
        let v = parse(&ann).unwrap();
        assert!(v.is_gratuitous());
        assert!(!v.is_probe());

        // Probe with target 0.0.0.0 too: still a probe, not an announcement.
        let mut both0 = probe;
        both0[24..28].copy_from_slice(&[0, 0, 0, 0]);
        let v = parse(&both0).unwrap();
        assert!(v.is_probe());
        assert!(!v.is_gratuitous());
    }
}
