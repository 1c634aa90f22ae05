//! TX half of the AF_PACKET backend: copies frames into TPACKET_V3 TX slots and hands
//! them to the kernel with one `send(fd, NULL, 0, MSG_DONTWAIT)` per flush.
//!
//! Invariant: slots are filled strictly in ring order starting at `next`, and a slot is
//! written only while its status shows it user-owned (neither `SEND_REQUEST` nor
//! `SENDING`). The kernel walks the ring in the same order from its own head, so the
//! two never disagree about which slot comes next. Frames the kernel could not take
//! (e.g. `ENOBUFS`) stay `SEND_REQUEST` and go out with the next flush.

use std::mem::offset_of;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Shared, TX_DATA_OFFSET};
use crate::frame::{
    ETH_HLEN, VLAN_HLEN, complete_l4_checksum, frame_len, outer_is_tagged, write_frame,
};
use crate::{IoError, TxError, TxOptions, TxQueue, TxStats, VlanTag};

const SLOT_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const SLOT_LEN: usize = offset_of!(libc::tpacket3_hdr, tp_len);
const SLOT_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const SLOT_STATUS: usize = offset_of!(libc::tpacket3_hdr, tp_status);

/// Status bits meaning the kernel owns the slot.
const KERNEL_OWNED: u32 = libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING;

/// Where the TX ring lies in the mapping and how it is cut into slots.
#[derive(Clone, Copy, Debug)]
pub(super) struct TxGeometry {
    pub(super) ring_offset: usize,
    pub(super) block_size: usize,
    pub(super) frame_size: usize,
    pub(super) frames_per_block: usize,
    pub(super) frame_count: usize,
}

/// The sending half of an AF_PACKET port (see the [module docs](super)).
#[derive(Debug)]
pub struct AfPacketTx {
    shared: Arc<Shared>,
    geo: TxGeometry,
    /// The next slot to fill.
    next: usize,
    /// Slots filled since the last successful flush.
    pending: usize,
    /// Largest untagged frame the kernel accepts: MTU + Ethernet header, capped by the
    /// slot size.
    max_untagged: usize,
    /// Largest frame whose outer ethertype is 802.1Q (one tag more; the kernel grants
    /// no extra room to 802.1ad-tagged frames).
    max_tagged: usize,
    stats: TxStats,
}

impl AfPacketTx {
    pub(super) fn new(shared: Arc<Shared>, geo: TxGeometry, mtu: usize) -> AfPacketTx {
        let slot_max = geo.frame_size - TX_DATA_OFFSET;
        AfPacketTx {
            shared,
            geo,
            next: 0,
            pending: 0,
            max_untagged: (mtu + ETH_HLEN).min(slot_max),
            max_tagged: (mtu + ETH_HLEN + VLAN_HLEN).min(slot_max),
            stats: TxStats::default(),
        }
    }

    /// The interface this queue sends on.
    pub fn ifname(&self) -> &str {
        &self.shared.ifname
    }

    /// Counters of this queue.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Number of TX slots.
    pub fn capacity(&self) -> usize {
        self.geo.frame_count
    }

    /// The largest frame `push` accepts, in bytes: (outer ethertype not 802.1Q, outer
    /// ethertype 802.1Q). Read from the MTU when the port was opened; if the MTU is
    /// lowered later, the kernel drops the frames that no longer fit.
    pub fn max_frame_len(&self) -> (usize, usize) {
        (self.max_untagged, self.max_tagged)
    }

    fn slot_ptr(&self, idx: usize) -> *mut u8 {
        debug_assert!(idx < self.geo.frame_count);
        let off = self.geo.ring_offset
            + (idx / self.geo.frames_per_block) * self.geo.block_size
            + (idx % self.geo.frames_per_block) * self.geo.frame_size;
        self.shared.map.ptr.as_ptr().wrapping_add(off)
    }

    fn slot_status(&self, idx: usize) -> &AtomicU32 {
        // SAFETY: slot `idx` lies inside the TX part of the mapping (`idx <
        // frame_count`), its status word is 4-byte aligned (slots start at multiples of
        // 16 from a page boundary) and stays mapped while `self.shared` lives; it is
        // only accessed atomically, by us here and by the kernel with
        // READ_ONCE/WRITE_ONCE-style accesses.
        unsafe { AtomicU32::from_ptr(self.slot_ptr(idx).wrapping_add(SLOT_STATUS).cast()) }
    }
}

impl TxQueue for AfPacketTx {
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        let len = frame_len(head, tag, body);
        let max = if outer_is_tagged(tag, body) {
            self.max_tagged
        } else {
            self.max_untagged
        };
        if len < ETH_HLEN || len > max {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        let idx = self.next;
        let status = self.slot_status(idx).load(Ordering::Acquire);
        if status & KERNEL_OWNED != 0 {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        }
        if status & libc::TP_STATUS_WRONG_FORMAT != 0 {
            // Not expected with PACKET_LOSS set; the slot is ours again either way.
            self.stats.send_errors += 1;
        }
        let slot = self.slot_ptr(idx);
        // SAFETY: the slot lies inside the mapping and is user-owned: its status (read
        // with acquire ordering, after the kernel's last use of the slot) shows neither
        // SEND_REQUEST nor SENDING, and the kernel does not touch it again until we
        // store SEND_REQUEST below. The data area is `frame_size - TX_DATA_OFFSET`
        // bytes starting `TX_DATA_OFFSET` into the slot, after the header fields that
        // are accessed through other pointers below.
        let data = unsafe {
            std::slice::from_raw_parts_mut(
                slot.wrapping_add(TX_DATA_OFFSET),
                self.geo.frame_size - TX_DATA_OFFSET,
            )
        };
        if write_frame(data, head, tag, body).is_none() {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if opts.complete_checksum {
            complete_l4_checksum(&mut data[..len]);
        }
        // SAFETY: as above the slot header is user-owned; the three fields are 4-byte
        // aligned `u32`s inside it, disjoint from the status word and the data area.
        unsafe {
            slot.wrapping_add(SLOT_LEN).cast::<u32>().write(len as u32);
            slot.wrapping_add(SLOT_SNAPLEN)
                .cast::<u32>()
                .write(len as u32);
            slot.wrapping_add(SLOT_NEXT).cast::<u32>().write(0);
        }
        // Release: the frame and header writes above are visible before the kernel
        // can see the slot as a send request.
        self.slot_status(idx)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.next = (idx + 1) % self.geo.frame_count;
        self.pending += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), IoError> {
        if self.pending == 0 {
            return Ok(());
        }
        // SAFETY: send(2) with a null buffer of length 0 is the documented way to kick
        // a PACKET_TX_RING socket; the kernel reads only the mapped ring.
        let rc = unsafe {
            libc::send(
                self.shared.raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
            )
        };
        if rc >= 0 {
            self.stats.sent += self.pending as u64;
            self.pending = 0;
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        self.stats.send_errors += 1;
        match err.raw_os_error() {
            // Congestion, an interrupted call or a link that is down: the frames stay
            // queued in the ring and go out with a later flush (or the ring fills and
            // `push` reports RingFull).
            Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR | libc::ENETDOWN) => Ok(()),
            _ => Err(IoError::os(
                &self.shared.ifname,
                "send(PACKET_TX_RING flush)",
                err,
            )),
        }
    }
}

impl AfPacketTx {
    /// The socket fd (shared with the RX half).
    pub fn fd(&self) -> RawFd {
        self.shared.raw_fd()
    }
}
