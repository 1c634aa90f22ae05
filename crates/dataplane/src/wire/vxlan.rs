//! The VXLAN header (RFC 7348 §5): the 8 bytes between the outer UDP header and the
//! inner Ethernet frame. The switch reads it on frames from the overlay and writes it
//! on frames it sends there; the outer IP and UDP headers are the underlay socket's.
//!
//! ```text
//!  0               1               2               3
//! |R|R|R|R|I|R|R|R|           Reserved (24)                       |
//! |           VXLAN Network Identifier (VNI, 24)  | Reserved (8)  |
//! ```
//!
//! Invariant: `parse` accepts exactly the headers RFC 7348 §5 says a VTEP accepts —
//! the I flag set; the reserved bits are ignored on receipt — and `emit` writes the
//! header that section says to send (I set, reserved zero).

use crate::wire::WireError;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// The I flag: the VNI is valid (RFC 7348 §5: MUST be 1).
pub const FLAG_I: u8 = 0x08;
/// The IANA-assigned VXLAN UDP port (RFC 7348 §5).
pub const DEFAULT_UDP_PORT: u16 = 4789;
/// The bytes VXLAN adds in front of the inner frame on an IPv4 underlay: outer
/// IPv4 (20), UDP (8), VXLAN (8) and the inner Ethernet header (14) — the inner
/// frame's IP MTU is the underlay's less this much.
pub const IPV4_OVERHEAD: usize = 20 + 8 + HEADER_LEN + 14;
/// The same on an IPv6 underlay (outer IPv6 is 40 bytes).
pub const IPV6_OVERHEAD: usize = 40 + 8 + HEADER_LEN + 14;

/// A VXLAN Network Identifier: 24 bits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize)]
#[serde(transparent)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI (2^24 - 1).
    pub const MAX: u32 = 0x00ff_ffff;

    /// `value` as a VNI, if it fits in 24 bits.
    pub const fn new(value: u32) -> Option<Vni> {
        if value <= Self::MAX {
            Some(Vni(value))
        } else {
            None
        }
    }

    /// The number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

impl std::fmt::Display for Vni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Reads the VXLAN header at the start of a UDP payload: the VNI and the inner
/// frame behind it.
pub fn parse(payload: &[u8]) -> Result<(Vni, &[u8]), WireError> {
    let Some((hdr, inner)) = payload.split_first_chunk::<HEADER_LEN>() else {
        return Err(WireError::Truncated);
    };
    if hdr[0] & FLAG_I == 0 {
        return Err(WireError::Unsupported);
    }
    let vni = u32::from_be_bytes([0, hdr[4], hdr[5], hdr[6]]);
    Ok((Vni(vni), inner))
}

/// The header to send a frame of `vni` with.
pub const fn header(vni: Vni) -> [u8; HEADER_LEN] {
    let v = vni.0.to_be_bytes();
    [FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_round_trips() {
        let vni = Vni::new(10_010).unwrap();
        let mut p = header(vni).to_vec();
        p.extend_from_slice(&[0xaa; 14]);
        assert_eq!(parse(&p), Ok((vni, &[0xaa; 14][..])));
        assert_eq!(&header(vni), &[0x08, 0, 0, 0, 0x00, 0x27, 0x1a, 0]);
    }

    #[test]
    fn the_i_flag_is_required_and_reserved_bits_are_ignored() {
        let mut p = header(Vni::new(1).unwrap()).to_vec();
        p[0] = 0;
        assert_eq!(parse(&p), Err(WireError::Unsupported));
        // Reserved bits set: accepted (RFC 7348 §5, "ignored on receipt").
        let p = [0xff, 0xff, 0xff, 0xff, 0, 0, 7, 0xff];
        assert_eq!(parse(&p).map(|(v, _)| v.get()), Ok(7));
        assert_eq!(parse(&p[..7]), Err(WireError::Truncated));
    }

    #[test]
    fn vnis_are_24_bits() {
        assert!(Vni::new(Vni::MAX).is_some());
        assert!(Vni::new(Vni::MAX + 1).is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok((_, inner)) = parse(&bytes) {
                prop_assert_eq!(inner.len(), bytes.len() - HEADER_LEN);
            }
        }
    }
}
