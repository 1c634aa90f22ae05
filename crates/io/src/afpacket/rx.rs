//! RX half of the AF_PACKET backend: walks the TPACKET_V3 RX ring one retired block per
//! `recv`.
//!
//! Invariant: at most one block is held by user space (`held`); it is returned to the
//! kernel at the start of the next `recv`, before the next block is looked at. Blocks
//! are visited in ring order (`next`), which is the order the kernel retires them in.
//! With virtio-net headers on, each frame's header is the 10 bytes before the frame
//! (`tp_mac - 10`), inside the block.

use std::cell::Cell;
use std::mem::{offset_of, size_of};
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use super::Shared;
use crate::frame::FrameDesc;
use crate::{IoError, RxBatch, RxQueue, RxStats, VlanTag, VnetHdr};

const BLOCK_HDR: usize = offset_of!(libc::tpacket_block_desc, hdr);
const BLOCK_STATUS: usize = BLOCK_HDR + offset_of!(libc::tpacket_hdr_v1, block_status);
const BLOCK_NUM_PKTS: usize = BLOCK_HDR + offset_of!(libc::tpacket_hdr_v1, num_pkts);
const BLOCK_FIRST_PKT: usize = BLOCK_HDR + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);

const PKT_NEXT: usize = offset_of!(libc::tpacket3_hdr, tp_next_offset);
const PKT_SNAPLEN: usize = offset_of!(libc::tpacket3_hdr, tp_snaplen);
const PKT_LEN: usize = offset_of!(libc::tpacket3_hdr, tp_len);
const PKT_STATUS: usize = offset_of!(libc::tpacket3_hdr, tp_status);
const PKT_MAC: usize = offset_of!(libc::tpacket3_hdr, tp_mac);
const PKT_HV1: usize = offset_of!(libc::tpacket3_hdr, hv1);
const PKT_VLAN_TCI: usize = PKT_HV1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tci);
const PKT_VLAN_TPID: usize = PKT_HV1 + offset_of!(libc::tpacket_hdr_variant1, tp_vlan_tpid);

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_ne_bytes(bytes))
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    let bytes: [u8; 2] = b.get(at..at.checked_add(2)?)?.try_into().ok()?;
    Some(u16::from_ne_bytes(bytes))
}

/// Appends a descriptor for every complete frame of a retired TPACKET_V3 block and
/// returns the number of truncated frames skipped. Stops at the first header that does
/// not fit the block (never happens with a sane kernel). `vnet`: a virtio-net header
/// precedes each frame.
pub(crate) fn parse_block(block: &[u8], descs: &mut Vec<FrameDesc>, vnet: bool) -> u64 {
    let mut truncated = 0;
    let (Some(num), Some(first)) = (
        read_u32(block, BLOCK_NUM_PKTS),
        read_u32(block, BLOCK_FIRST_PKT),
    ) else {
        return 0;
    };
    let mut at = first as usize;
    for i in 0..num {
        let hdr = (
            read_u32(block, at + PKT_SNAPLEN),
            read_u32(block, at + PKT_LEN),
            read_u32(block, at + PKT_STATUS),
            read_u16(block, at + PKT_MAC),
            read_u32(block, at + PKT_VLAN_TCI),
            read_u16(block, at + PKT_VLAN_TPID),
            read_u32(block, at + PKT_NEXT),
        );
        let (Some(snaplen), Some(len), Some(status), Some(mac), Some(tci), Some(tpid), Some(next)) =
            hdr
        else {
            break;
        };
        let start = at + mac as usize;
        let end = start + snaplen as usize;
        if end > block.len() {
            break;
        }
        if snaplen < len {
            truncated += 1;
        } else {
            let tag = (status & libc::TP_STATUS_VLAN_VALID != 0).then_some(VlanTag {
                tpid: if status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                    tpid
                } else {
                    VlanTag::TPID_8021Q
                },
                tci: tci as u16,
            });
            let vnet = if vnet {
                start
                    .checked_sub(VnetHdr::LEN)
                    .filter(|h| *h >= at)
                    .and_then(|h| VnetHdr::from_bytes(&block[h..start]))
            } else {
                None
            };
            descs.push(FrameDesc {
                offset: start as u32,
                len: snaplen,
                tag,
                csum_partial: status & libc::TP_STATUS_CSUMNOTREADY != 0,
                vnet,
            });
        }
        if i + 1 < num {
            if next == 0 {
                break;
            }
            at += next as usize;
        }
    }
    truncated
}

/// The receiving half of an AF_PACKET port (see the [module docs](super)).
///
/// `recv` hands over one retired block per call. `poll(2)` on [`RxQueue::fd`] may
/// report readability once more after a batch while that block is still held; the
/// `recv` that follows returns the block to the kernel and an empty batch.
#[derive(Debug)]
pub struct AfPacketRx {
    shared: Arc<Shared>,
    block_size: usize,
    block_count: usize,
    /// The next block to look at.
    next: usize,
    /// The block behind the last batch, still owned by user space.
    held: Option<usize>,
    descs: Vec<FrameDesc>,
    frames: u64,
    blocks: u64,
    truncated: u64,
    gso_frames: u64,
    kernel_drops: Cell<u64>,
}

impl AfPacketRx {
    pub(super) fn new(shared: Arc<Shared>, block_size: usize, block_count: usize) -> AfPacketRx {
        AfPacketRx {
            shared,
            block_size,
            block_count,
            next: 0,
            held: None,
            descs: Vec::with_capacity(256),
            frames: 0,
            blocks: 0,
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

    fn block_ptr(&self, idx: usize) -> *mut u8 {
        debug_assert!(idx < self.block_count);
        self.shared
            .map
            .ptr
            .as_ptr()
            .wrapping_add(idx * self.block_size)
    }

    fn block_status(&self, idx: usize) -> &AtomicU32 {
        // SAFETY: the status word of block `idx` lies inside the mapping (the RX ring
        // starts at offset 0 and `idx < block_count`), is 4-byte aligned (blocks are
        // page-aligned, the field is at offset 8), stays mapped while `self.shared`
        // lives (which outlives the returned borrow of `self`), and is only accessed
        // atomically: by us through this `AtomicU32`, by the kernel with
        // READ_ONCE/WRITE_ONCE-style accesses.
        unsafe { AtomicU32::from_ptr(self.block_ptr(idx).wrapping_add(BLOCK_STATUS).cast()) }
    }

    /// Frames dropped by the kernel because the ring was full, since the socket was
    /// opened (`PACKET_STATISTICS`, accumulated across reads).
    pub fn kernel_drops(&self) -> u64 {
        // SAFETY: `tpacket_stats_v3` is a plain C struct of integers; all-zero is valid.
        let mut st: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes and `len` holds the size of `st`;
        // the kernel writes at most `len` bytes. The call resets the kernel's counters,
        // hence the accumulation below.
        let rc = unsafe {
            libc::getsockopt(
                self.shared.raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats_v3).cast(),
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
            batches: self.blocks,
            truncated: self.truncated,
            kernel_drops: self.kernel_drops(),
            gso_frames: self.gso_frames,
        }
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

    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        if let Some(idx) = self.held.take() {
            // The previous batch borrowed `self`, so nothing reads the block any more.
            self.block_status(idx)
                .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        }
        self.descs.clear();
        let idx = self.next;
        if self.block_status(idx).load(Ordering::Acquire) & libc::TP_STATUS_USER == 0 {
            return Ok(RxBatch::empty());
        }
        self.held = Some(idx);
        self.next = (idx + 1) % self.block_count;
        self.blocks += 1;
        // SAFETY: block `idx` lies inside the mapping and is owned by user space: we
        // observed TP_STATUS_USER with acquire ordering, so the kernel's writes to it are
        // visible, and the kernel does not write it again until we store
        // TP_STATUS_KERNEL, which happens only in a later `recv` (it takes `&mut self`,
        // so the batch returned here, which borrows `self`, is gone by then).
        let block = unsafe { std::slice::from_raw_parts(self.block_ptr(idx), self.block_size) };
        self.truncated += parse_block(block, &mut self.descs, self.shared.vnet_hdr);
        self.frames += self.descs.len() as u64;
        if self.shared.vnet_hdr {
            self.gso_frames += self
                .descs
                .iter()
                .filter(|d| d.vnet.is_some_and(VnetHdr::is_gso))
                .count() as u64;
        }
        Ok(RxBatch::new(block, &self.descs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a TPACKET_V3 packet header at `at` and the frame after it.
    fn put_pkt(block: &mut [u8], at: usize, next: u32, data: &[u8], tag: Option<(u16, u16, bool)>) {
        let mac = 80usize;
        block[at + PKT_NEXT..at + PKT_NEXT + 4].copy_from_slice(&next.to_ne_bytes());
        let n = data.len() as u32;
        block[at + PKT_SNAPLEN..at + PKT_SNAPLEN + 4].copy_from_slice(&n.to_ne_bytes());
        block[at + PKT_LEN..at + PKT_LEN + 4].copy_from_slice(&n.to_ne_bytes());
        let mut status = libc::TP_STATUS_USER;
        if let Some((tpid, tci, tpid_valid)) = tag {
            status |= libc::TP_STATUS_VLAN_VALID;
            if tpid_valid {
                status |= libc::TP_STATUS_VLAN_TPID_VALID;
            }
            block[at + PKT_VLAN_TCI..at + PKT_VLAN_TCI + 4]
                .copy_from_slice(&u32::from(tci).to_ne_bytes());
            block[at + PKT_VLAN_TPID..at + PKT_VLAN_TPID + 2].copy_from_slice(&tpid.to_ne_bytes());
        }
        block[at + PKT_STATUS..at + PKT_STATUS + 4].copy_from_slice(&status.to_ne_bytes());
        block[at + PKT_MAC..at + PKT_MAC + 2].copy_from_slice(&(mac as u16).to_ne_bytes());
        block[at + mac..at + mac + data.len()].copy_from_slice(data);
    }

    fn block_with(num: u32) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[BLOCK_NUM_PKTS..BLOCK_NUM_PKTS + 4].copy_from_slice(&num.to_ne_bytes());
        b[BLOCK_FIRST_PKT..BLOCK_FIRST_PKT + 4].copy_from_slice(&48u32.to_ne_bytes());
        b
    }

    #[test]
    fn walks_frames_and_recovers_tags() {
        let mut b = block_with(3);
        put_pkt(&mut b, 48, 256, &[1; 60], None);
        put_pkt(&mut b, 304, 256, &[2; 64], Some((0x88a8, 0x2005, true)));
        put_pkt(&mut b, 560, 0, &[3; 70], Some((0, 10, false)));
        let mut descs = Vec::new();
        assert_eq!(parse_block(&b, &mut descs, false), 0);
        let batch = RxBatch::new(&b, &descs);
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.get(0).data, &[1; 60][..]);
        assert_eq!(batch.get(0).tag, None);
        assert_eq!(batch.get(1).data, &[2; 64][..]);
        assert_eq!(
            batch.get(1).tag,
            Some(VlanTag {
                tpid: 0x88a8,
                tci: 0x2005
            })
        );
        assert_eq!(
            batch.get(2).tag,
            Some(VlanTag {
                tpid: 0x8100,
                tci: 10
            }),
            "TPID defaults to 0x8100 when the kernel does not report it"
        );
    }

    #[test]
    fn truncated_frames_are_skipped_and_counted() {
        let mut b = block_with(2);
        put_pkt(&mut b, 48, 256, &[1; 60], None);
        b[48 + PKT_LEN..48 + PKT_LEN + 4].copy_from_slice(&9000u32.to_ne_bytes());
        put_pkt(&mut b, 304, 0, &[2; 60], None);
        let mut descs = Vec::new();
        assert_eq!(parse_block(&b, &mut descs, false), 1);
        assert_eq!(descs.len(), 1);
        assert_eq!(descs[0].offset, 304 + 80);
    }

    #[test]
    fn corrupt_offsets_stop_the_walk_without_panicking() {
        let mut b = block_with(5);
        put_pkt(&mut b, 48, 100_000, &[1; 60], None);
        let mut descs = Vec::new();
        parse_block(&b, &mut descs, false);
        assert_eq!(descs.len(), 1);

        let mut b = block_with(2);
        put_pkt(&mut b, 48, 0, &[1; 60], None);
        b[48 + PKT_SNAPLEN..48 + PKT_SNAPLEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        b[48 + PKT_LEN..48 + PKT_LEN + 4].copy_from_slice(&u32::MAX.to_ne_bytes());
        descs.clear();
        parse_block(&b, &mut descs, false);
        assert!(descs.is_empty());

        descs.clear();
        assert_eq!(parse_block(&[0u8; 8], &mut descs, false), 0);
        assert!(descs.is_empty());
    }

    #[test]
    fn vnet_headers_are_read_before_each_frame() {
        let mut b = block_with(2);
        put_pkt(&mut b, 48, 256, &[1; 60], None);
        put_pkt(&mut b, 304, 0, &[2; 60], None);
        let h = VnetHdr {
            flags: VnetHdr::F_NEEDS_CSUM,
            gso_type: VnetHdr::GSO_TCPV4,
            hdr_len: 66,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
        };
        b[304 + 80 - VnetHdr::LEN..304 + 80].copy_from_slice(&h.to_bytes());
        let mut descs = Vec::new();
        assert_eq!(parse_block(&b, &mut descs, true), 0);
        let batch = RxBatch::new(&b, &descs);
        assert_eq!(batch.get(0).vnet, Some(VnetHdr::default()));
        assert!(!batch.get(0).is_gso());
        assert_eq!(batch.get(1).vnet, Some(h));
        assert!(batch.get(1).is_gso());
        assert_eq!(batch.get(1).data, &[2; 60][..]);
        descs.clear();
        parse_block(&b, &mut descs, false);
        assert_eq!(descs[1].vnet, None);
    }
}
