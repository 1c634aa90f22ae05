//! RX half of the AF_PACKET backend: walks the TPACKET_V2 RX ring, one run of
//! user-owned slots per `recv`.
//!
//! TPACKET_V2, not V3: a V3 ring hands frames over a block at a time, and a block
//! that does not fill is handed over only when its retire timer fires (1 ms at the
//! least) — every frame of a quiet flow, and every TCP ACK, waited for it (ping through
//! the switch: 1.6 ms, against 0.13 ms through a Linux bridge; TCP with offloads fell
//! from 15 to 5.6 Gbit/s when the timer was 4 ms instead of 1: docs/performance.md). A
//! V2 slot belongs to user space as soon as the kernel has written it, and `poll(2)`
//! wakes per frame.
//!
//! Slots are `rx_frame_size` bytes: a frame that does not fit one — a GSO super-frame
//! of up to 64 KiB, or a jumbo frame — is handed over by the kernel's copy path
//! (`PACKET_COPY_THRESH`): its slot holds a truncated copy marked `TP_STATUS_COPY`, and
//! the whole frame waits in the socket's receive queue, in ring order, for
//! `recvmsg(2)` into a buffer of this half. Such a frame is a batch of its own.
//!
//! Invariant: user space owns exactly the slots of the last batch (`held` slots from
//! `held_from`, consecutive, never wrapping the ring end); they are given back
//! (`TP_STATUS_KERNEL`, release store) at the start of the next `recv`, before any
//! other slot is looked at. Slots are visited in ring order (`next`), the order the
//! kernel fills them in. With virtio-net headers on, each frame's header is the 10
//! bytes before the frame (`tp_mac - 10`) inside its slot, or the first 10 bytes
//! `recvmsg` returns for a copied frame.

use std::cell::Cell;
use std::mem::{offset_of, size_of};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{RingGeometry, Shared};
use crate::frame::FrameDesc;
use crate::gso::MAX_GSO_FRAME;
use crate::{IoError, RxBatch, RxQueue, RxStats, VlanTag, VnetHdr};

const SLOT_STATUS: usize = offset_of!(libc::tpacket2_hdr, tp_status);
const SLOT_LEN: usize = offset_of!(libc::tpacket2_hdr, tp_len);
const SLOT_SNAPLEN: usize = offset_of!(libc::tpacket2_hdr, tp_snaplen);
const SLOT_MAC: usize = offset_of!(libc::tpacket2_hdr, tp_mac);
const SLOT_VLAN_TCI: usize = offset_of!(libc::tpacket2_hdr, tp_vlan_tci);
const SLOT_VLAN_TPID: usize = offset_of!(libc::tpacket2_hdr, tp_vlan_tpid);

/// Slots handed over per `recv` at most.
const RX_BATCH: usize = 1024;

/// The receive buffer asked for (`SO_RCVBUFFORCE`) for frames on the copy path: room
/// for a few dozen super-frames waiting for `recvmsg` (the default, ~200 KiB, holds
/// two or three; a frame the queue has no room for arrives truncated and is counted).
pub(super) const COPY_RCVBUF: libc::c_int = 8 << 20;

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_ne_bytes(bytes))
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_ne_bytes(bytes))
}

/// What one user-owned slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A whole frame, at `desc.offset` within the slot.
    Frame(FrameDesc),
    /// A frame too big for the slot, whole in the socket's receive queue
    /// (`TP_STATUS_COPY`); the slot tells its tag and checksum state.
    Copied {
        tag: Option<VlanTag>,
        csum_partial: bool,
    },
    /// A frame the kernel cut short (no room on the copy path), or a header that does
    /// not fit the slot (never with a sane kernel): skipped and counted.
    Truncated,
}

/// Reads a user-owned TPACKET_V2 slot. `vnet`: a virtio-net header precedes each
/// frame.
pub(crate) fn parse_slot(slot: &[u8], vnet: bool) -> Slot {
    let hdr = (
        read_u32(slot, SLOT_STATUS),
        read_u32(slot, SLOT_LEN),
        read_u32(slot, SLOT_SNAPLEN),
        read_u16(slot, SLOT_MAC),
        read_u16(slot, SLOT_VLAN_TCI),
        read_u16(slot, SLOT_VLAN_TPID),
    );
    let (Some(status), Some(len), Some(snaplen), Some(mac), Some(tci), Some(tpid)) = hdr else {
        return Slot::Truncated;
    };
    let tag = (status & libc::TP_STATUS_VLAN_VALID != 0).then_some(VlanTag {
        tpid: if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
            tpid
        } else {
            VlanTag::TPID_8021Q
        },
        tci,
    });
    let csum_partial = status & libc::TP_STATUS_CSUMNOTREADY != 0;
    if status & libc::TP_STATUS_COPY != 0 {
        return Slot::Copied { tag, csum_partial };
    }
    let start = usize::from(mac);
    let end = start.saturating_add(snaplen as usize);
    if snaplen < len || end > slot.len() {
        return Slot::Truncated;
    }
    let vnet = if vnet {
        start
            .checked_sub(VnetHdr::LEN)
            .filter(|h| *h >= size_of::<libc::tpacket2_hdr>())
            .and_then(|h| VnetHdr::from_bytes(&slot[h..start]))
    } else {
        None
    };
    Slot::Frame(FrameDesc {
        offset: start as u32,
        len: snaplen,
        tag,
        csum_partial,
        vnet,
        peer: None,
    })
}

/// The receiving half of an AF_PACKET port (see the [module docs](super)).
///
/// `recv` hands over the slots the kernel has filled since the last call (at most
/// 1024, not across the ring's end). `poll(2)` on [`RxQueue::fd`] may report
/// readability once more after a batch while its slots are still held; the `recv`
/// that follows gives them back and returns what is new, maybe nothing.
#[derive(Debug)]
pub struct AfPacketRx {
    shared: Arc<Shared>,
    geo: RingGeometry,
    /// The next slot to look at.
    next: usize,
    /// The slots behind the last batch, still owned by user space.
    held_from: usize,
    held: usize,
    descs: Vec<FrameDesc>,
    /// Where a frame on the copy path is read to: virtio-net header and frame.
    copied: Vec<u8>,
    frames: u64,
    batches: u64,
    truncated: u64,
    gso_frames: u64,
    kernel_drops: Cell<u64>,
}

impl AfPacketRx {
    pub(super) fn new(shared: Arc<Shared>, geo: RingGeometry) -> AfPacketRx {
        AfPacketRx {
            shared,
            geo,
            next: 0,
            held_from: 0,
            held: 0,
            descs: Vec::with_capacity(RX_BATCH),
            copied: vec![0; VnetHdr::LEN + MAX_GSO_FRAME],
            frames: 0,
            batches: 0,
            truncated: 0,
            gso_frames: 0,
            kernel_drops: Cell::new(0),
        }
    }

    /// The interface this queue receives from.
    pub fn ifname(&self) -> &str {
        &self.shared.ifname
    }

    /// Whether frames come with their virtio-net header ([`crate::RxFrame::vnet`]).
    pub fn vnet_hdr(&self) -> bool {
        self.shared.vnet_hdr
    }

    /// The slot at offset `off` of the mapping (a [`RingGeometry::slot_offset`]).
    fn slot_ptr(&self, off: usize) -> *mut u8 {
        debug_assert!(off + self.geo.frame_size <= self.shared.map.len);
        self.shared.map.ptr.as_ptr().wrapping_add(off)
    }

    /// The status word of the slot at offset `off` of the mapping.
    fn slot_status(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is the offset of a slot of the RX ring (callers pass
        // `geo.slot_offset(i)` with `i < frame_count`), so its status word lies inside
        // the mapping; it is 4-byte aligned (slots are 16-byte aligned, the field is at
        // offset 0), stays mapped while `self.shared` lives (which outlives the
        // returned borrow of `self`), and is only accessed atomically: by us through
        // this `AtomicU32`, by the kernel with READ_ONCE/WRITE_ONCE-style accesses.
        unsafe { AtomicU32::from_ptr(self.slot_ptr(off).wrapping_add(SLOT_STATUS).cast()) }
    }

    /// Frames dropped by the kernel because the ring was full, since the socket was
    /// opened (`PACKET_STATISTICS`, accumulated across reads).
    pub fn kernel_drops(&self) -> u64 {
        // SAFETY: `tpacket_stats` is a plain C struct of integers; all-zero is valid.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes and `len` holds the size of `st`;
        // the kernel writes at most `len` bytes. The call resets the kernel's counters,
        // hence the accumulation below.
        let rc = unsafe {
            libc::getsockopt(
                self.shared.raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            self.kernel_drops
                .set(self.kernel_drops.get() + u64::from(st.tp_drops));
        }
        self.kernel_drops.get()
    }

    /// Counters of this queue (reads the kernel's drop counter too).
    pub fn stats(&self) -> RxStats {
        RxStats {
            frames: self.frames,
            batches: self.batches,
            truncated: self.truncated,
            kernel_drops: self.kernel_drops(),
            gso_frames: self.gso_frames,
        }
    }

    /// Reads the frame of a `TP_STATUS_COPY` slot from the socket's receive queue into
    /// `copied`: its descriptor there, or `None` (counted as truncated) if the queue
    /// did not have it whole.
    fn read_copied(&mut self, tag: Option<VlanTag>, csum_partial: bool) -> Option<FrameDesc> {
        // SAFETY: `copied` is valid for writes of its whole length; MSG_TRUNC makes the
        // kernel return the frame's real length without writing past the buffer.
        let n = unsafe {
            libc::recv(
                self.shared.raw_fd(),
                self.copied.as_mut_ptr().cast(),
                self.copied.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        let n = usize::try_from(n).ok()?;
        let head = if self.shared.vnet_hdr {
            VnetHdr::LEN
        } else {
            0
        };
        if n > self.copied.len() || n <= head {
            return None;
        }
        let vnet = if self.shared.vnet_hdr {
            VnetHdr::from_bytes(&self.copied[..head])
        } else {
            None
        };
        Some(FrameDesc {
            offset: head as u32,
            len: (n - head) as u32,
            tag,
            csum_partial,
            vnet,
            peer: None,
        })
    }
}

impl RxQueue for AfPacketRx {
    fn fd(&self) -> Option<RawFd> {
        Some(self.shared.raw_fd())
    }

    fn take_error(&mut self) -> Option<std::io::Error> {
        let mut err: libc::c_int = 0;
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid for writes and describe an int-sized
        // buffer, as SO_ERROR expects; the fd is owned by `shared` and open.
        let rc = unsafe {
            libc::getsockopt(
                self.shared.raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        match (rc, err) {
            (0, 0) => None,
            (0, e) => Some(std::io::Error::from_raw_os_error(e)),
            _ => Some(std::io::Error::last_os_error()),
        }
    }

    fn losses(&self) -> crate::RxLosses {
        crate::RxLosses {
            kernel_drops: self.kernel_drops(),
            truncated: self.truncated,
        }
    }

    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        // The previous batch borrowed `self`, so nothing reads its slots any more.
        for i in self.held_from..self.held_from + self.held {
            self.slot_status(self.geo.slot_offset(i))
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.held = 0;
        self.descs.clear();
        let start = self.next;
        let base = self.geo.slot_offset(start);
        let frame_size = self.geo.frame_size;
        let vnet = self.shared.vnet_hdr;
        let mut n = 0;
        let mut copied = None;
        while n < RX_BATCH && start + n < self.geo.frame_count {
            let off = self.geo.slot_offset(start + n);
            if self.slot_status(off).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
                break;
            }
            // SAFETY: the slot at `off` lies inside the mapping and is owned by user space: we
            // observed TP_STATUS_USER with acquire ordering, so the kernel's writes to
            // it are visible, and the kernel does not write it again until we store
            // TP_STATUS_KERNEL, which happens only in a later `recv` (it takes
            // `&mut self`, so the batch returned here, which borrows `self`, is gone
            // by then).
            let slot = unsafe { std::slice::from_raw_parts(self.slot_ptr(off), frame_size) };
            match parse_slot(slot, vnet) {
                Slot::Frame(mut d) => {
                    d.offset += (off - base) as u32;
                    self.descs.push(d);
                }
                Slot::Truncated => self.truncated += 1,
                // A frame on the copy path is a batch of its own.
                Slot::Copied { .. } if n > 0 => break,
                Slot::Copied { tag, csum_partial } => {
                    copied = Some((tag, csum_partial));
                    n = 1;
                    break;
                }
            }
            n += 1;
        }
        self.held_from = start;
        self.held = n;
        self.next = (start + n) % self.geo.frame_count;
        if n == 0 {
            return Ok(RxBatch::empty());
        }
        self.batches += 1;
        if let Some((tag, csum_partial)) = copied {
            match self.read_copied(tag, csum_partial) {
                Some(d) => self.descs.push(d),
                None => self.truncated += 1,
            }
        }
        self.frames += self.descs.len() as u64;
        if vnet {
            self.gso_frames += self
                .descs
                .iter()
                .filter(|d| d.vnet.is_some_and(VnetHdr::is_gso))
                .count() as u64;
        }
        if copied.is_some() {
            return Ok(RxBatch::new(&self.copied, &self.descs));
        }
        let len = self.geo.slot_offset(start + n - 1) + frame_size - base;
        // SAFETY: slots `start..start + n` are consecutive in ring order without
        // wrapping, so they and the slack between blocks (which the kernel never
        // writes) form one range of the mapping; every slot in it is user-owned, as
        // established above, until the next `recv`, which the returned borrow of
        // `self` precludes.
        let ring = unsafe {
            std::slice::from_raw_parts(self.shared.map.ptr.as_ptr().wrapping_add(base), len)
        };
        Ok(RxBatch::new(ring, &self.descs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2048-byte TPACKET_V2 slot holding `data` at offset 80.
    fn slot_with(data: &[u8], status: u32, tag: Option<(u16, u16)>) -> Vec<u8> {
        let mac = 80usize;
        let mut s = vec![0u8; 2048];
        let n = data.len() as u32;
        s[SLOT_LEN..SLOT_LEN + 4].copy_from_slice(&n.to_ne_bytes());
        s[SLOT_SNAPLEN..SLOT_SNAPLEN + 4].copy_from_slice(&n.to_ne_bytes());
        s[SLOT_MAC..SLOT_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
        if let Some((tpid, tci)) = tag {
            s[SLOT_VLAN_TCI..SLOT_VLAN_TCI + 2].copy_from_slice(&tci.to_ne_bytes());
            s[SLOT_VLAN_TPID..SLOT_VLAN_TPID + 2].copy_from_slice(&tpid.to_ne_bytes());
        }
        s[SLOT_STATUS..SLOT_STATUS + 4].copy_from_slice(&status.to_ne_bytes());
        s[mac..mac + data.len()].copy_from_slice(data);
        s
    }

    fn frame(slot: &[u8], vnet: bool) -> (FrameDesc, Vec<u8>) {
        match parse_slot(slot, vnet) {
            Slot::Frame(d) => (d, slot[d.offset as usize..][..d.len as usize].to_vec()),
            other => panic!("not a frame: {other:?}"),
        }
    }

    #[test]
    fn reads_frames_and_recovers_tags() {
        let user = libc::TP_STATUS_USER;
        let (d, data) = frame(&slot_with(&[1; 60], user, None), false);
        assert_eq!((data, d.tag, d.csum_partial), (vec![1; 60], None, false));

        let s = slot_with(
            &[2; 64],
            user | libc::TP_STATUS_VLAN_VALID | libc::TP_STATUS_VLAN_TPID_VALID,
            Some((0x88a8, 0x2005)),
        );
        let (d, _) = frame(&s, false);
        let want = VlanTag {
            tpid: 0x88a8,
            tci: 0x2005,
        };
        assert_eq!(d.tag, Some(want));

        let s = slot_with(&[3; 70], user | libc::TP_STATUS_VLAN_VALID, Some((0, 10)));
        let (d, _) = frame(&s, false);
        let want = VlanTag {
            tpid: 0x8100,
            tci: 10,
        };
        assert_eq!(
            d.tag,
            Some(want),
            "TPID defaults to 0x8100 when the kernel does not report it"
        );

        let s = slot_with(&[4; 60], user | libc::TP_STATUS_CSUMNOTREADY, None);
        assert!(frame(&s, false).0.csum_partial);
    }

    #[test]
    fn truncated_and_corrupt_slots_are_counted_not_read() {
        let mut s = slot_with(&[1; 60], libc::TP_STATUS_USER, None);
        s[SLOT_LEN..SLOT_LEN + 4].copy_from_slice(&9000u32.to_ne_bytes());
        assert_eq!(parse_slot(&s, false), Slot::Truncated, "cut short");

        let mut s = slot_with(&[1; 60], libc::TP_STATUS_USER, None);
        s[SLOT_SNAPLEN..SLOT_SNAPLEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        s[SLOT_LEN..SLOT_LEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(parse_slot(&s, false), Slot::Truncated, "beyond the slot");

        let mut s = slot_with(&[1; 60], libc::TP_STATUS_USER, None);
        s[SLOT_MAC..SLOT_MAC + 2].copy_from_slice(&2040u16.to_ne_bytes());
        assert_eq!(
            parse_slot(&s, false),
            Slot::Truncated,
            "offset beyond the slot"
        );

        assert_eq!(parse_slot(&[0u8; 8], false), Slot::Truncated, "short slot");
    }

    #[test]
    fn a_frame_on_the_copy_path_keeps_its_tag_and_checksum_state() {
        let s = slot_with(
            &[5; 60],
            libc::TP_STATUS_USER
                | libc::TP_STATUS_COPY
                | libc::TP_STATUS_VLAN_VALID
                | libc::TP_STATUS_CSUMNOTREADY,
            Some((0x8100, 20)),
        );
        assert_eq!(
            parse_slot(&s, true),
            Slot::Copied {
                tag: Some(VlanTag {
                    tpid: 0x8100,
                    tci: 20
                }),
                csum_partial: true
            }
        );
    }

    #[test]
    fn vnet_headers_are_read_before_the_frame() {
        let mut s = slot_with(&[2; 60], libc::TP_STATUS_USER, None);
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        s[80 - VnetHdr::LEN..80].copy_from_slice(&h.to_bytes());
        let (d, data) = frame(&s, true);
        assert_eq!(d.vnet, Some(h));
        assert_eq!(data, vec![2; 60]);
        assert_eq!(frame(&s, false).0.vnet, None);
    }

    proptest::proptest! {
        /// Any slot contents — a confused or hostile writer of the ring — give a
        /// frame that lies inside the slot, after the slot header, or a counted skip;
        /// never a panic.
        #[test]
        fn any_slot_parses_to_a_frame_inside_it_or_a_skip(
            mut bytes in proptest::collection::vec(proptest::arbitrary::any::<u8>(), 0..2200),
            status in proptest::arbitrary::any::<u32>(),
            len in 0u32..2200,
            snaplen in 0u32..2200,
            mac in 0u16..2200,
            vnet in proptest::arbitrary::any::<bool>(),
        ) {
            // Plausible header fields half the time, so that frames are found too.
            if bytes.len() >= 32 && status % 2 == 0 {
                bytes[SLOT_STATUS..SLOT_STATUS + 4].copy_from_slice(&(status >> 1).to_ne_bytes());
                bytes[SLOT_LEN..SLOT_LEN + 4].copy_from_slice(&len.to_ne_bytes());
                bytes[SLOT_SNAPLEN..SLOT_SNAPLEN + 4].copy_from_slice(&snaplen.to_ne_bytes());
                bytes[SLOT_MAC..SLOT_MAC + 2].copy_from_slice(&mac.to_ne_bytes());
            }
            match parse_slot(&bytes, vnet) {
                Slot::Frame(d) => {
                    let end = d.offset as usize + d.len as usize;
                    proptest::prop_assert!(end <= bytes.len());
                    if d.vnet.is_some() {
                        proptest::prop_assert!(
                            d.offset as usize >= size_of::<libc::tpacket2_hdr>() + VnetHdr::LEN
                        );
                    }
                }
                Slot::Copied { .. } | Slot::Truncated => {}
            }
        }
    }
}
