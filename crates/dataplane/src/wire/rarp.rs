//! RARP (RFC 903) as the switch emits it: the "request reverse" a switch sends from
//! a guest's MAC when the guest moved to another uplink, so that the physical
//! network relearns where the MAC is (vSphere's "notify switches").
//!
//! Invariant: [`emit`] writes exactly [`ANNOUNCEMENT_LEN`] bytes (the Ethernet
//! minimum, no tag: the egress tag goes beside the bytes) or refuses a short buffer
//! with [`WireError::NoRoom`]; it never panics.

use crate::types::MacAddr;
use crate::wire::WireError;
use crate::wire::arp::{ArpOp, ArpView};
use std::net::Ipv4Addr;

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
}
