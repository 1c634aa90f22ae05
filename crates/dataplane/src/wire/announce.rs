//! The announcements the switch sends for a guest that moved: RARP (RFC 903), the
//! "request reverse" from the guest's MAC when it moved to another uplink or host,
//! so that the physical network relearns where the MAC is (vSphere's "notify
//! switches"); and, for a guest that moved to this host from another, a gratuitous
//! ARP of each bound IPv4 address (RFC 5227 §2.3) and an unsolicited Neighbor
//! Advertisement of each bound IPv6 address (RFC 4861 §7.2.6), so that neighbours'
//! caches follow it.
//!
//! Invariant: every `emit` writes a whole untagged Ethernet frame (the egress tag
//! goes beside the bytes), padded to the Ethernet minimum, or refuses a short
//! buffer with [`WireError::NoRoom`]; it never panics.

use crate::types::MacAddr;
use crate::wire::WireError;
use crate::wire::arp::{ArpOp, ArpView};
use crate::wire::nd::{NdEmit, NdMessage, NdOption};
use std::net::{Ipv4Addr, Ipv6Addr};

/// EtherType of RARP.
pub const ETHERTYPE_RARP: u16 = 0x8035;
/// The operation "request reverse" (RFC 903).
pub const OP_REQUEST_REVERSE: u16 = 3;
/// Length of an announcement: an untagged minimum-size Ethernet frame.
pub const ANNOUNCEMENT_LEN: usize = 60;

/// A RARP request reverse from `mac` about `mac`, broadcast: an Ethernet/IPv4 ARP
/// body (htype 1, ptype 0x0800, hlen 6, plen 4) with both protocol addresses zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Announcement {
    pub mac: MacAddr,
}

impl Announcement {
    /// Bytes [`Announcement::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        ANNOUNCEMENT_LEN
    }

    /// Writes the frame (destination MAC on, padded to 60 bytes) into the start of
    /// `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let f: &mut [u8; ANNOUNCEMENT_LEN] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
        f.fill(0);
        f[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        f[6..12].copy_from_slice(&self.mac.0);
        f[12..14].copy_from_slice(&ETHERTYPE_RARP.to_be_bytes());
        // The ARP body of RFC 903: sender and target hardware address the guest's.
        ArpView {
            oper: ArpOp::Other(OP_REQUEST_REVERSE),
            sender_mac: self.mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: self.mac,
            target_ip: Ipv4Addr::UNSPECIFIED,
        }
        .emit(&mut f[14..])?;
        Ok(ANNOUNCEMENT_LEN)
    }
}

/// EtherType of ARP.
const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A gratuitous ARP: an ARP request from `mac` whose sender and target address are
/// both `ip`, broadcast.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Garp {
    pub mac: MacAddr,
    pub ip: Ipv4Addr,
}

impl Garp {
    /// Writes the frame (60 bytes, padded) into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let f: &mut [u8; ANNOUNCEMENT_LEN] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
        f.fill(0);
        f[..6].copy_from_slice(&MacAddr::BROADCAST.0);
        f[6..12].copy_from_slice(&self.mac.0);
        f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        ArpView {
            oper: ArpOp::Request,
            sender_mac: self.mac,
            sender_ip: self.ip,
            target_mac: MacAddr([0; 6]),
            target_ip: self.ip,
        }
        .emit(&mut f[14..])?;
        Ok(ANNOUNCEMENT_LEN)
    }
}

/// The ARP proxy's reply to `request`: `request.target_ip` is at `mac`, sent to the
/// requester from `mac` (RFC 826's reply, as the owner would send it).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ProxyReply {
    pub request: ArpView,
    pub mac: MacAddr,
}

impl ProxyReply {
    /// Writes the frame (60 bytes, padded) into the start of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let f: &mut [u8; ANNOUNCEMENT_LEN] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
        f.fill(0);
        f[..6].copy_from_slice(&self.request.sender_mac.0);
        f[6..12].copy_from_slice(&self.mac.0);
        f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        ArpView {
            oper: ArpOp::Reply,
            sender_mac: self.mac,
            sender_ip: self.request.target_ip,
            target_mac: self.request.sender_mac,
            target_ip: self.request.sender_ip,
        }
        .emit(&mut f[14..])?;
        Ok(ANNOUNCEMENT_LEN)
    }
}

/// An unsolicited Neighbor Advertisement of `ip` from `mac` to all nodes
/// (ff02::1), override flag set, with the target link-layer address option.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct UnsolicitedNa {
    pub mac: MacAddr,
    pub ip: Ipv6Addr,
}

/// All-nodes multicast and its MAC (RFC 2464 §7).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

impl UnsolicitedNa {
    /// Writes the frame (Ethernet, IPv6, ICMPv6 NA with its checksum: 86 bytes)
    /// into the start of `buf`; returns its length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        let head: &mut [u8; 14] = buf.first_chunk_mut().ok_or(WireError::NoRoom)?;
        head[..6].copy_from_slice(&ALL_NODES_MAC.0);
        head[6..12].copy_from_slice(&self.mac.0);
        head[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        let options = [NdOption::TargetLinkLayer(self.mac)];
        let n = NdEmit {
            src: self.ip,
            dst: ALL_NODES,
            message: NdMessage::NeighborAdvertisement {
                router: false,
                solicited: false,
                override_flag: true,
                target: self.ip,
            },
            options: &options,
        }
        .emit(buf.get_mut(14..).ok_or(WireError::NoRoom)?)?;
        Ok(14 + n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes the runtime used to poke by hand, byte for byte.
    #[test]
    fn emit_writes_the_request_reverse() {
        let mac = MacAddr([0x52, 0x54, 0, 0xab, 0xcd, 0xef]);
        let mut buf = [0xaa; 64];
        let a = Announcement { mac };
        assert_eq!(a.emit(&mut buf), Ok(a.buffer_len()));
        let mut want = [0u8; 60];
        want[..6].copy_from_slice(&[0xff; 6]);
        want[6..12].copy_from_slice(&mac.0);
        want[12..14].copy_from_slice(&[0x80, 0x35]);
        want[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 3]);
        want[22..28].copy_from_slice(&mac.0);
        want[32..38].copy_from_slice(&mac.0);
        assert_eq!(buf[..60], want);
        assert_eq!(buf[60..], [0xaa; 4], "nothing written past the frame");
        // It parses as ARP-shaped (htype/ptype/lengths) with op 3.
        let arp = crate::wire::arp::parse(&buf[14..60]).unwrap();
        assert_eq!(arp.sender_mac, mac);
    }

    #[test]
    fn a_short_buffer_is_refused() {
        let a = Announcement {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
        };
        assert_eq!(a.emit(&mut [0; 59]), Err(WireError::NoRoom));
    }

    /// The gratuitous ARP reads back as an announcement of its address from its MAC.
    #[test]
    fn a_gratuitous_arp_reads_back_as_an_announcement() {
        let g = Garp {
            mac: MacAddr([0x52, 0x54, 0, 0, 0, 7]),
            ip: Ipv4Addr::new(198, 18, 10, 5),
        };
        let mut buf = [0xaa; 64];
        assert_eq!(g.emit(&mut buf), Ok(ANNOUNCEMENT_LEN));
        assert_eq!(&buf[..6], &[0xff; 6]);
        assert_eq!(&buf[12..14], &[0x08, 0x06]);
        let arp = crate::wire::arp::parse(&buf[14..60]).unwrap();
        assert!(arp.is_gratuitous() && !arp.is_probe());
        assert_eq!((arp.sender_mac, arp.sender_ip), (g.mac, g.ip));
        assert_eq!(g.emit(&mut [0u8; 59]), Err(WireError::NoRoom));
    }

    /// The unsolicited NA parses back (checksum included) with its flags and
    /// target link-layer address.
    #[test]
    fn an_unsolicited_na_reads_back_with_override_and_its_mac() {
        let na = UnsolicitedNa {
            mac: MacAddr([0x52, 0x54, 0, 0, 0, 7]),
            ip: "fd00:198:18::7".parse().unwrap(),
        };
        let mut buf = [0u8; 128];
        let n = na.emit(&mut buf).unwrap();
        assert_eq!(n, 86);
        assert_eq!(&buf[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let (_, view) = crate::wire::nd::parse_l3(&buf[14..n]).unwrap();
        assert_eq!(
            view.message,
            NdMessage::NeighborAdvertisement {
                router: false,
                solicited: false,
                override_flag: true,
                target: na.ip
            }
        );
        assert_eq!(na.emit(&mut [0u8; 80]), Err(WireError::NoRoom));
    }
}
