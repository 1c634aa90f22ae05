//! 802.1Q ingress classification: which VLAN a received frame belongs to, given the
//! port's VLAN mode (IEEE 802.1Q-2018 §6.9 and §8.6.1, simplified to the vSwitch
//! model: access ports take untagged and priority-tagged frames, trunks take tagged
//! frames of their allowed VLANs and untagged frames of their native VLAN).
//!
//! Invariant: a frame is classified into a VLAN the port carries, or dropped.
//! Only the 802.1Q C-tag TPID (0x8100) names a VLAN; an S-tag (0x88a8) or a second
//! tag on an access port is refused.

use crate::frame::FrameView;
use crate::spec::VlanMode;
use crate::types::Vid;
use crate::verdict::DropReason;

const TPID_CTAG: u16 = 0x8100;

/// The VLAN of a frame received on a port in `mode`.
#[inline]
pub fn classify(mode: &VlanMode, view: &FrameView) -> Result<Vid, DropReason> {
    match mode {
        VlanMode::Access(vid) => match view.outer {
            None => Ok(*vid),
            Some(t) if t.vid == 0 && t.tpid == TPID_CTAG && !view.is_double_tagged() => Ok(*vid),
            Some(_) => Err(DropReason::TaggedOnAccessPort),
        },
        VlanMode::Trunk { allowed, native } => {
            let vid = match view.outer {
                None => *native,
                Some(t) if t.tpid != TPID_CTAG => None,
                Some(t) if t.vid == 0 => *native,
                Some(t) => Vid::new(t.vid).filter(|v| allowed.contains(*v) || *native == Some(*v)),
            };
            vid.ok_or(DropReason::VlanNotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::OuterTag;
    use crate::types::{MacAddr, VlanSet};

    fn view(outer: Option<(u16, u16)>, ethertype: u16) -> FrameView {
        FrameView {
            dst: MacAddr::BROADCAST,
            src: MacAddr([2, 0, 0, 0, 0, 1]),
            outer: outer.map(|(tpid, vid)| OuterTag {
                tpid,
                vid,
                pcp_dei: 0,
            }),
            ethertype,
            body_offset: 12,
            wire_len: 60,
        }
    }
    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }

    #[test]
    fn access_port() {
        let m = VlanMode::Access(vid(10));
        assert_eq!(classify(&m, &view(None, 0x0800)), Ok(vid(10)));
        assert_eq!(
            classify(&m, &view(Some((0x8100, 0)), 0x0800)),
            Ok(vid(10)),
            "priority tag"
        );
        assert_eq!(
            classify(&m, &view(Some((0x8100, 10)), 0x0800)),
            Err(DropReason::TaggedOnAccessPort)
        );
        assert_eq!(
            classify(&m, &view(Some((0x8100, 0)), 0x8100)),
            Err(DropReason::TaggedOnAccessPort)
        );
        assert_eq!(
            classify(&m, &view(Some((0x88a8, 0)), 0x0800)),
            Err(DropReason::TaggedOnAccessPort)
        );
    }

    #[test]
    fn trunk_port() {
        let m = VlanMode::Trunk {
            allowed: VlanSet::from_vids([vid(10), vid(20)]),
            native: Some(vid(1)),
        };
        assert_eq!(classify(&m, &view(None, 0x0800)), Ok(vid(1)));
        assert_eq!(classify(&m, &view(Some((0x8100, 20)), 0x0800)), Ok(vid(20)));
        assert_eq!(classify(&m, &view(Some((0x8100, 1)), 0x0800)), Ok(vid(1)));
        assert_eq!(
            classify(&m, &view(Some((0x8100, 30)), 0x0800)),
            Err(DropReason::VlanNotAllowed)
        );
        assert_eq!(
            classify(&m, &view(Some((0x8100, 4095)), 0x0800)),
            Err(DropReason::VlanNotAllowed)
        );
        assert_eq!(
            classify(&m, &view(Some((0x88a8, 10)), 0x0800)),
            Err(DropReason::VlanNotAllowed)
        );
        let no_native = VlanMode::Trunk {
            allowed: VlanSet::from_vids([vid(10)]),
            native: None,
        };
        assert_eq!(
            classify(&no_native, &view(None, 0x0800)),
            Err(DropReason::VlanNotAllowed)
        );
    }
}
