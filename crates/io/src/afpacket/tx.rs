//! TX half of the AF_PACKET backend: copies frames into TPACKET_V2 TX slots and hands
//! them to the kernel with one `send(fd, NULL, 0, MSG_DONTWAIT)` per flush.
//!
//! Invariant: slots are filled strictly in ring order starting at `next`, and a slot is
//! written only while its status shows it user-owned (neither `SEND_REQUEST` nor
//! `SENDING`). The kernel walks the ring in the same order from its own head, so the
//! two never disagree about which slot comes next. Frames the kernel could not take
//! (e.g. `ENOBUFS`) stay `SEND_REQUEST` and go out with the next flush.
//!
//! Offloads ([`TxOptions::offload`]): with virtio-net headers on the socket, every slot
//! starts with one (all zero for a plain frame). A partially checksummed frame keeps
//! its partial checksum (`NEEDS_CSUM`). A GSO super-frame goes whole when the
//! interface does TSO ([`AfPacketTx::takes_gso`]): in a slot if it fits, else by
//! `sendmsg(2)` on the send-only socket after the ring is flushed (order kept);
//! otherwise it is cut into segments here ([`Segmenter`], one reused buffer).

use std::mem::offset_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{RingGeometry, Shared, TX_DATA_OFFSET, tcp_segmentation_offload};
use crate::frame::{
    ETH_HLEN, VLAN_HLEN, complete_l4_checksum, frame_len, outer_is_tagged, write_frame,
};
use crate::gso::{
    MAX_GSO_FRAME, MAX_HEADERS, Segmenter, SoftwareOffload, frame_prefix, prepare_offload,
};
use crate::{IoError, TxError, TxOptions, TxQueue, TxStats, VlanTag, VnetHdr};

const SLOT_LEN: usize = offset_of!(libc::tpacket2_hdr, tp_len);
const SLOT_SNAPLEN: usize = offset_of!(libc::tpacket2_hdr, tp_snaplen);
const SLOT_STATUS: usize = offset_of!(libc::tpacket2_hdr, tp_status);

/// How often, at most, the interface's TSO is read again while super-frames flow.
const TSO_RECHECK: Duration = Duration::from_secs(1);

/// Status bits meaning the kernel owns the slot.
const KERNEL_OWNED: u32 = libc::TP_STATUS_SEND_REQUEST | libc::TP_STATUS_SENDING;

/// The sending half of an AF_PACKET port (see the [module docs](super)).
#[derive(Debug)]
pub struct AfPacketTx {
    shared: Arc<Shared>,
    geo: RingGeometry,
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
    /// Bytes before the frame in a slot's data area: the virtio-net header, if on.
    vnet_len: usize,
    /// The send-only socket for super-frames (`Some` with virtio-net headers).
    bulk: Option<OwnedFd>,
    /// Super-frames go whole: `bulk` exists and the interface did TSO when last read.
    gso_whole: bool,
    /// When the interface's TSO was last read.
    tso_read: Instant,
    segmenter: Segmenter,
    stats: TxStats,
}

impl AfPacketTx {
    pub(super) fn new(
        shared: Arc<Shared>,
        geo: RingGeometry,
        mtu: usize,
        bulk: Option<OwnedFd>,
    ) -> AfPacketTx {
        let vnet_len = if shared.vnet_hdr { VnetHdr::LEN } else { 0 };
        let slot_max = geo.frame_size - TX_DATA_OFFSET - vnet_len;
        let gso_whole = bulk.is_some() && tcp_segmentation_offload(&shared.ifname).unwrap_or(false);
        AfPacketTx {
            shared,
            geo,
            next: 0,
            pending: 0,
            max_untagged: (mtu + ETH_HLEN).min(slot_max),
            max_tagged: (mtu + ETH_HLEN + VLAN_HLEN).min(slot_max),
            vnet_len,
            bulk,
            gso_whole,
            tso_read: Instant::now(),
            segmenter: Segmenter::new(),
            stats: TxStats::default(),
        }
    }

    /// Whether GSO super-frames are handed to the kernel whole (virtio-net headers on
    /// and the interface did TSO when last read: at open, then at most once a second
    /// while super-frames flow); else they are segmented in software.
    pub fn takes_gso(&self) -> bool {
        self.gso_whole
    }

    /// Reads the interface's TSO again if the last read is older than
    /// [`TSO_RECHECK`].
    fn recheck_tso(&mut self) {
        if self.bulk.is_none() || self.tso_read.elapsed() < TSO_RECHECK {
            return;
        }
        self.tso_read = Instant::now();
        let tso = tcp_segmentation_offload(&self.shared.ifname).unwrap_or(self.gso_whole);
        if tso != self.gso_whole {
            tracing::info!(
                iface = %self.shared.ifname,
                tso,
                "interface TSO changed: super-frames go whole only with TSO on"
            );
            self.gso_whole = tso;
        }
    }

    /// Whether frames are sent with a virtio-net header.
    pub fn vnet_hdr(&self) -> bool {
        self.vnet_len != 0
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
        self.shared
            .map
            .ptr
            .as_ptr()
            .wrapping_add(self.geo.slot_offset(idx))
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

impl AfPacketTx {
    /// Queues one frame in the next slot. `limit`: the largest frame allowed (MTU
    /// bound, or a super-frame's). `offload`: the request to turn into the slot's
    /// virtio-net header (or, without headers, the checksum to complete).
    fn push_slot(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        limit: usize,
        offload: Option<VnetHdr>,
    ) -> Result<(), TxError> {
        let len = frame_len(head, tag, body);
        if len < ETH_HLEN || len > limit {
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
        let area = unsafe {
            std::slice::from_raw_parts_mut(
                slot.wrapping_add(TX_DATA_OFFSET),
                self.geo.frame_size - TX_DATA_OFFSET,
            )
        };
        let (vnet_area, data) = area.split_at_mut(self.vnet_len);
        if write_frame(data, head, tag, body).is_none() {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        let frame = &mut data[..len];
        if let Some(req) = offload {
            if self.vnet_len == 0 {
                complete_l4_checksum(frame);
            } else {
                match prepare_offload(frame, len, req) {
                    Ok(h) => vnet_area.copy_from_slice(&h.to_bytes()),
                    // Nothing the kernel could finish: a plain frame (as sent).
                    Err(_) if !req.is_gso() => {
                        complete_l4_checksum(frame);
                        vnet_area.fill(0);
                    }
                    Err(e) => {
                        self.stats.bad_offload += 1;
                        return Err(TxError::BadOffload(e));
                    }
                }
            }
        } else {
            vnet_area.fill(0);
        }
        let tp_len = (self.vnet_len + len) as u32;
        // SAFETY: as above the slot header is user-owned; the two fields are 4-byte
        // aligned `u32`s inside it, disjoint from the status word and the data area.
        unsafe {
            slot.wrapping_add(SLOT_LEN).cast::<u32>().write(tp_len);
            slot.wrapping_add(SLOT_SNAPLEN).cast::<u32>().write(tp_len);
        }
        // Release: the frame and header writes above are visible before the kernel
        // can see the slot as a send request.
        self.slot_status(idx)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.next = (idx + 1) % self.geo.frame_count;
        self.pending += 1;
        Ok(())
    }

    /// Sends a super-frame too big for a slot on the send-only socket, after
    /// flushing the ring (so it does not overtake frames queued before it).
    fn send_bulk(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        req: VnetHdr,
    ) -> Result<(), TxError> {
        let Some(bulk) = self.bulk.as_ref().map(AsRawFd::as_raw_fd) else {
            return Err(TxError::TooBig);
        };
        let len = frame_len(head, tag, body);
        if head.len() != 12 || len > MAX_GSO_FRAME {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        let mut hdrs = [0u8; MAX_HEADERS];
        let n = frame_prefix(&mut hdrs, head, tag, body);
        let vnet = match prepare_offload(&mut hdrs[..n], len, req) {
            Ok(h) => h.to_bytes(),
            Err(e) => {
                self.stats.bad_offload += 1;
                return Err(TxError::BadOffload(e));
            }
        };
        let rest = &body[n - head.len() - if tag.is_some() { VLAN_HLEN } else { 0 }..];
        if self.pending != 0 {
            let _ = self.flush();
        }
        let mut iov = [
            libc::iovec {
                iov_base: vnet.as_ptr() as *mut libc::c_void,
                iov_len: vnet.len(),
            },
            libc::iovec {
                iov_base: hdrs.as_ptr() as *mut libc::c_void,
                iov_len: n,
            },
            libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            },
        ];
        // SAFETY: `msghdr` is a plain C struct; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = iov.len() as _;
        // SAFETY: `msg` points to three iovecs describing live, initialised buffers
        // (`vnet`, `hdrs`, `rest`) that outlive the call; the kernel only reads them
        // (the `*mut` is the C prototype's, nothing is written through it).
        let rc = unsafe { libc::sendmsg(bulk, &msg, libc::MSG_DONTWAIT) };
        if rc >= 0 {
            self.stats.sent += 1;
            self.stats.gso_whole += 1;
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN | libc::ENOBUFS | libc::EINTR) => {
                self.stats.ring_full += 1;
                Err(TxError::RingFull)
            }
            Some(libc::EMSGSIZE) => {
                self.stats.too_big += 1;
                Err(TxError::TooBig)
            }
            _ => {
                // Link down, or the kernel refused the header: dropped, counted.
                tracing::debug!(iface = %self.shared.ifname, error = %err, "super-frame not sent");
                self.stats.send_errors += 1;
                Ok(())
            }
        }
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
        let max = if outer_is_tagged(tag, body) {
            self.max_tagged
        } else {
            self.max_untagged
        };
        let req = opts.offload.filter(|v| v.needs_work());
        match req {
            Some(v) if v.is_gso() => {
                self.recheck_tso();
                if self.gso_whole {
                    let slot_max = self.geo.frame_size - TX_DATA_OFFSET - self.vnet_len;
                    if frame_len(head, tag, body) <= slot_max {
                        return self.push_slot(head, tag, body, slot_max, Some(v));
                    }
                    return self.send_bulk(head, tag, body, v);
                }
                // One super-frame makes up to ~45 segments: `push_plain_frame`
                // hands a full ring to the kernel and goes on rather than drop the rest.
                self.push_in_segments(head, tag, body, v)
            }
            Some(v) => self.push_or_flush(head, tag, body, max, Some(v)),
            None if opts.complete_checksum => self.push_or_flush(
                head,
                tag,
                body,
                max,
                Some(VnetHdr {
                    flags: VnetHdr::F_NEEDS_CSUM,
                    ..VnetHdr::default()
                }),
            ),
            None => self.push_or_flush(head, tag, body, max, None),
        }
    }

    fn tx_stats(&self) -> TxStats {
        self.stats
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
    /// [`Self::push_slot`]; when the ring is full of frames not yet handed to the
    /// kernel, hands them over (one flush) and tries once more, rather than dropping
    /// the frame: a batch larger than the ring (several RX blocks forwarded to one
    /// port) then costs an extra send(2) instead of losses.
    fn push_or_flush(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        limit: usize,
        offload: Option<VnetHdr>,
    ) -> Result<(), TxError> {
        match self.push_slot(head, tag, body, limit, offload) {
            Err(TxError::RingFull) if self.pending != 0 => {
                self.stats.ring_full -= 1;
                self.flush().map_err(|_| TxError::RingFull)?;
                self.push_slot(head, tag, body, limit, offload)
            }
            r => r,
        }
    }

    /// The socket fd (shared with the RX half).
    pub fn fd(&self) -> RawFd {
        self.shared.raw_fd()
    }
}

impl SoftwareOffload for AfPacketTx {
    fn segmenter(&mut self) -> &mut Segmenter {
        &mut self.segmenter
    }
    fn tx_counters(&mut self) -> &mut TxStats {
        &mut self.stats
    }
    fn push_plain_frame(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        complete_checksum: bool,
    ) -> Result<(), TxError> {
        let max = if outer_is_tagged(tag, body) {
            self.max_tagged
        } else {
            self.max_untagged
        };
        let csum = complete_checksum.then_some(VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            ..VnetHdr::default()
        });
        self.push_or_flush(head, tag, body, max, csum)
    }
}
