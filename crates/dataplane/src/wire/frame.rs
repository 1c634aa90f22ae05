//! A parsed view of one received Ethernet frame: addresses, the outer VLAN tag
//! (in-band, or recovered from packet metadata by the I/O backend), and the
//! EtherType behind it. Parsing uses etherparse's per-header slices (no allocation).
//!
//! Invariant: [`FrameView::parse`] never panics on any input; a frame it accepts has
//! at least a full Ethernet header and, when tagged in-band, a full 802.1Q tag
//! (IEEE 802.1Q-2018 §9). Anything else is a [`DropReason`].

use crate::types::MacAddr;
use crate::verdict::DropReason;
use etherparse::{EtherType, Ethernet2HeaderSlice, SingleVlanHeaderSlice};

/// TPIDs that introduce a VLAN tag: 802.1Q C-tag, 802.1ad S-tag, and the legacy 0x9100.
#[inline]
pub fn is_vlan_tpid(ethertype: u16) -> bool {
    ethertype == EtherType::VLAN_TAGGED_FRAME.0
        || ethertype == EtherType::PROVIDER_BRIDGING.0
        || ethertype == EtherType::VLAN_DOUBLE_TAGGED_FRAME.0
}

/// A VLAN tag as the I/O backend hands it over from packet metadata (the kernel
/// strips the outer tag on veth; DESIGN.md §9).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct VlanTag {
    pub tpid: u16,
    pub tci: u16,
}

/// One received frame: its bytes from the destination MAC on, and the outer tag if
/// the backend took it out of the bytes.
#[derive(Clone, Copy, Debug)]
pub struct IngressFrame<'a> {
    pub data: &'a [u8],
    pub tag: Option<VlanTag>,
}

/// The outer VLAN tag of a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OuterTag {
    pub tpid: u16,
    /// 0 means a priority tag only (IEEE 802.1Q §9.6).
    pub vid: u16,
    /// PCP (3 bits) and DEI (1 bit), in the top nibble's order: `pcp << 1 | dei`.
    pub pcp_dei: u8,
}

impl OuterTag {
    fn from_tci(tpid: u16, tci: u16) -> OuterTag {
        OuterTag {
            tpid,
            vid: tci & 0x0fff,
            pcp_dei: (tci >> 12) as u8,
        }
    }
}

/// Parsed view of one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FrameView {
    pub dst: MacAddr,
    pub src: MacAddr,
    pub outer: Option<OuterTag>,
    /// EtherType (or 802.3 length) after the outer tag.
    pub ethertype: u16,
    /// Offset of that EtherType in the received bytes.
    pub body_offset: u16,
    /// Wire length: the received bytes plus a tag the backend took out.
    pub wire_len: u32,
}

impl FrameView {
    /// Parses the Ethernet header and the outer VLAN tag.
    #[inline]
    pub fn parse(frame: &IngressFrame<'_>) -> Result<FrameView, DropReason> {
        let eth =
            Ethernet2HeaderSlice::from_slice(frame.data).map_err(|_| DropReason::Truncated)?;
        let dst = MacAddr(eth.destination());
        let src = MacAddr(eth.source());
        let mut ethertype = eth.ether_type().0;
        let mut body_offset = 12u16;
        let mut wire_len = frame.data.len() as u32;
        let outer = if let Some(meta) = frame.tag {
            wire_len += 4;
            Some(OuterTag::from_tci(meta.tpid, meta.tci))
        } else if is_vlan_tpid(ethertype) {
            let vlan = SingleVlanHeaderSlice::from_slice(&frame.data[14..])
                .map_err(|_| DropReason::Truncated)?;
            let tag = OuterTag {
                tpid: ethertype,
                vid: vlan.vlan_identifier().value(),
                pcp_dei: (vlan.priority_code_point().value() << 1)
                    | vlan.drop_eligible_indicator() as u8,
            };
            ethertype = vlan.ether_type().0;
            body_offset = 16;
            Some(tag)
        } else {
            None
        };
        if (1501..1536).contains(&ethertype) {
            return Err(DropReason::BadEthertype);
        }
        // A tagged frame must still hold the EtherType that follows the tag.
        if frame.data.len() < body_offset as usize + 2 {
            return Err(DropReason::Truncated);
        }
        Ok(FrameView {
            dst,
            src,
            outer,
            ethertype,
            body_offset,
            wire_len,
        })
    }

    /// Whether another VLAN tag follows the outer one (802.1ad / Q-in-Q).
    #[inline]
    pub fn is_double_tagged(&self) -> bool {
        self.outer.is_some() && is_vlan_tpid(self.ethertype)
    }

    /// Bytes of the payload behind the consumed tag (EtherType on), as forwarded.
    #[inline]
    pub fn body_len(&self, data_len: usize) -> u32 {
        (data_len - self.body_offset as usize) as u32
    }
}

/// IEEE 802.1D-2004 Table 7-10: 01-80-C2-00-00-00 … 0F are filtered by every bridge.
#[inline]
pub fn is_reserved_link_local(dst: MacAddr) -> bool {
    let d = dst.0;
    d[0] == 0x01 && d[1] == 0x80 && d[2] == 0xc2 && d[3] == 0 && d[4] == 0 && d[5] <= 0x0f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(bytes: &[u8]) -> Result<FrameView, DropReason> {
        FrameView::parse(&IngressFrame {
            data: bytes,
            tag: None,
        })
    }

    const UNTAGGED: [u8; 14] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0, 0, 0, 1, 0x08, 0x06,
    ];

    #[test]
    fn untagged_frame() {
        let v = frame(&UNTAGGED).unwrap();
        assert!(v.dst.is_broadcast());
        assert_eq!(v.src.to_string(), "52:54:00:00:00:01");
        assert_eq!(v.ethertype, 0x0806);
        assert_eq!(v.outer, None);
        assert_eq!(v.body_offset, 12);
    }

    #[test]
    fn in_band_tag() {
        let mut b = UNTAGGED[..12].to_vec();
        b.extend_from_slice(&[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00]);
        let v = frame(&b).unwrap();
        assert_eq!(
            v.outer,
            Some(OuterTag {
                tpid: 0x8100,
                vid: 10,
                pcp_dei: 5 << 1
            })
        );
        assert_eq!(v.ethertype, 0x0800);
        assert_eq!(v.body_offset, 16);
        assert!(!v.is_double_tagged());
    }

    #[test]
    fn metadata_tag() {
        let v = FrameView::parse(&IngressFrame {
            data: &UNTAGGED,
            tag: Some(VlanTag {
                tpid: 0x8100,
                tci: 20,
            }),
        })
        .unwrap();
        assert_eq!(v.outer.unwrap().vid, 20);
        assert_eq!(v.body_offset, 12);
        assert_eq!(v.wire_len, 18);
    }

    #[test]
    fn double_tag() {
        let mut b = UNTAGGED[..12].to_vec();
        b.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
        let v = frame(&b).unwrap();
        assert!(v.is_double_tagged());
    }

    #[test]
    fn runts_and_bad_ethertypes() {
        assert_eq!(frame(&[]), Err(DropReason::Truncated));
        assert_eq!(frame(&UNTAGGED[..13]), Err(DropReason::Truncated));
        let mut b = UNTAGGED[..12].to_vec();
        b.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert_eq!(frame(&b), Err(DropReason::Truncated));
        let mut b = UNTAGGED.to_vec();
        b[12] = 0x05;
        b[13] = 0xF0;
        assert_eq!(frame(&b), Err(DropReason::BadEthertype));
        b[13] = 0xDC; // 1500: an 802.3 length, fine
        assert!(frame(&b).is_ok());
    }

    #[test]
    fn link_local() {
        assert!(is_reserved_link_local("01:80:c2:00:00:00".parse().unwrap()));
        assert!(is_reserved_link_local("01:80:c2:00:00:0e".parse().unwrap()));
        assert!(!is_reserved_link_local(
            "01:80:c2:00:00:10".parse().unwrap()
        ));
        assert!(!is_reserved_link_local(
            "01:00:5e:00:00:01".parse().unwrap()
        ));
    }
}
