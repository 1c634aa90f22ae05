//! vhost-user-net backend: a QEMU guest's virtio-net device served straight from the
//! switch, sharing the guest's rings (no TAP, no kernel on the path).
//!
//! Phase 1 scope, and what it is:
//! - **One queue pair** (queue 0: RX, to the guest; queue 1: TX, from the guest).
//!   Multiqueue (`VHOST_USER_PROTOCOL_F_MQ`) is not offered, so QEMU uses one pair.
//! - **Split rings** only; no indirect descriptors, no packed rings, no dirty-page
//!   logging (so no live migration yet).
//! - Features offered: `VIRTIO_F_VERSION_1`, `VIRTIO_NET_F_MRG_RXBUF`, `CSUM`,
//!   `GUEST_CSUM`, `HOST_TSO4/6`, `HOST_ECN`, `GUEST_TSO4/6`, `GUEST_ECN`,
//!   `VIRTIO_RING_F_EVENT_IDX`, and
//!   `VHOST_USER_F_PROTOCOL_FEATURES` with `REPLY_ACK`. A GSO super-frame from the guest
//!   reaches the switch whole with its [`VnetHdr`] (as on a TAP with virtio-net
//!   headers); one sent to a guest that took GUEST_TSO goes whole, else it is cut in
//!   software ([`crate::gso`]).
//! - **Server mode** ([`VhostUserMode::Server`]): the switch listens on the socket and
//!   QEMU connects (`-chardev socket,id=c0,path=SOCK`, optionally with
//!   `reconnect-ms=1000`). A QEMU that restarts connects again: the port drops the
//!   old connection's state (memory, rings) and serves the new one. A daemon restart
//!   while the guest runs reconnects when QEMU's chardev has `reconnect-ms`.
//!   **Client mode** ([`VhostUserMode::Client`]): QEMU listens (`server=on,wait=off`)
//!   and the switch connects, retrying every 500 ms while disconnected, so both a
//!   QEMU restart and a daemon restart reconnect.
//! - The protocol is implemented here on `libc` alone (the rust-vmm `vhost` 0.18 /
//!   `vhost-user-backend` 0.24 crates refuse QEMU's real message order, DESIGN §10):
//!   the message handling is tolerant of order (a `SET_VRING_ENABLE` before
//!   `SET_FEATURES` is simply remembered).
//!
//! Guest memory is untrusted input. Regions come from `SET_MEM_TABLE` (memfd fds,
//! mmap'd `MAP_SHARED`, unmapped when replaced or on disconnect); every access goes
//! through [`GuestMemory`], which checks the whole range lies in one region (checked
//! arithmetic) before touching it. Descriptor chains are walked by [`walk_chain`]:
//! an index out of the table, a chain longer than the queue (a loop), an indirect
//! descriptor, a buffer of the wrong direction or a total length above the limit
//! ends the chain with a [`ChainError`]; the frame is dropped and counted, the
//! descriptor returned to the guest with length 0. An avail index that runs more
//! than a queue ahead, or a head index outside the table, marks the ring broken
//! (counted; nothing more is read from it until the frontend sets it up again). A
//! guest that stops taking its RX buffers makes sends fail with
//! [`TxError::RingFull`] (counted by the caller); nothing waits for it.
//!
//! Threads: each port has a **control thread** that owns the socket, the connection
//! and the retry timer (client mode), and handles every message; the data path
//! (the daemon's worker calling `recv`/`push`) never reads the connection. The two
//! share the device state (features, guest memory, rings) under one lock, which the
//! control thread takes only to apply a message (no I/O under it). A message that
//! has started to arrive must arrive whole within 500 ms, a reply must be taken as
//! fast, else the frontend is dropped; either way only the control thread waits.
//!
//! Notifications: [`RxQueue::fd`] is an epoll fd holding the TX queue's kick eventfd
//! (edge-triggered: never read) and an internal eventfd that keeps it readable while
//! guest frames remain after a full batch or when a ring (re)starts. `recv` takes
//! the guest's frames straight from shared memory; only when it finds none does it
//! consume the wake-ups (one `epoll_wait`) and look once more. With
//! `VIRTIO_RING_F_EVENT_IDX` (virtio 1.1 §2.6.7–8), the backend writes `avail_event`
//! after each pass (the guest kicks only for the chain after the last one taken)
//! and signals the call eventfd only when the used index crosses the guest's
//! `used_event`; without it, `VRING_AVAIL_F_NO_INTERRUPT` is honoured. The guest's
//! TX buffers returned during a turn of the worker are signalled once, at
//! [`RxQueue::end_turn`].

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU16, Ordering, fence};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::frame::{
    ETH_HLEN, FrameDesc, TxOptions, VnetHdr, complete_l4_checksum, frame_len, write_frame,
};
use crate::gso::{MAX_GSO_FRAME, Segmenter, SoftwareOffload, prepare_offload};
use crate::{IoError, RxBatch, RxLosses, RxQueue, RxStats, TxError, TxQueue, TxStats, VlanTag};

/// Who connects to whom on the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VhostUserMode {
    /// The switch listens, QEMU connects.
    Server,
    /// QEMU listens, the switch connects (and reconnects).
    Client,
}

/// Where and how a vhost-user port is reached.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VhostUserOptions {
    /// The Unix socket's path.
    pub socket: PathBuf,
    /// Server (we listen) or client (we connect).
    pub mode: VhostUserMode,
}

/// Counters of a vhost-user port beyond [`RxStats`]/[`TxStats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostUserStats {
    /// Frontend connections accepted or made.
    pub connections: u64,
    /// Connections lost or dropped (EOF, protocol error).
    pub disconnects: u64,
    /// Descriptor chains refused (out of range, loop, wrong direction, too long,
    /// outside guest memory): each a dropped frame or a returned buffer.
    pub bad_chains: u64,
    /// Rings marked broken (avail index too far ahead, head outside the table).
    pub broken_rings: u64,
    /// Control messages refused (malformed or unsupported).
    pub bad_messages: u64,
}

// ---------------------------------------------------------------------------
// Features.

const VIRTIO_NET_F_CSUM: u64 = 1 << 0;
const VIRTIO_NET_F_GUEST_CSUM: u64 = 1 << 1;
const VIRTIO_NET_F_GUEST_TSO4: u64 = 1 << 7;
const VIRTIO_NET_F_GUEST_TSO6: u64 = 1 << 8;
const VIRTIO_NET_F_GUEST_ECN: u64 = 1 << 9;
const VIRTIO_NET_F_HOST_TSO4: u64 = 1 << 11;
const VIRTIO_NET_F_HOST_TSO6: u64 = 1 << 12;
const VIRTIO_NET_F_HOST_ECN: u64 = 1 << 13;
const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
const VHOST_USER_F_PROTOCOL_FEATURES: u64 = 1 << 30;
const VIRTIO_F_VERSION_1: u64 = 1 << 32;

/// The device features offered to the frontend.
const OFFERED_FEATURES: u64 = VIRTIO_NET_F_CSUM
    | VIRTIO_NET_F_GUEST_CSUM
    | VIRTIO_NET_F_GUEST_TSO4
    | VIRTIO_NET_F_GUEST_TSO6
    | VIRTIO_NET_F_GUEST_ECN
    | VIRTIO_NET_F_HOST_TSO4
    | VIRTIO_NET_F_HOST_TSO6
    | VIRTIO_NET_F_HOST_ECN
    | VIRTIO_NET_F_MRG_RXBUF
    | VIRTIO_RING_F_EVENT_IDX
    | VHOST_USER_F_PROTOCOL_FEATURES
    | VIRTIO_F_VERSION_1;

const PROTOCOL_F_REPLY_ACK: u64 = 1 << 3;
const OFFERED_PROTOCOL: u64 = PROTOCOL_F_REPLY_ACK;

// ---------------------------------------------------------------------------
// Messages (frontend → backend requests this backend handles).

const GET_FEATURES: u32 = 1;
const SET_FEATURES: u32 = 2;
const SET_OWNER: u32 = 3;
const RESET_OWNER: u32 = 4;
const SET_MEM_TABLE: u32 = 5;
const SET_VRING_NUM: u32 = 8;
const SET_VRING_ADDR: u32 = 9;
const SET_VRING_BASE: u32 = 10;
const GET_VRING_BASE: u32 = 11;
const SET_VRING_KICK: u32 = 12;
const SET_VRING_CALL: u32 = 13;
const SET_VRING_ERR: u32 = 14;
const GET_PROTOCOL_FEATURES: u32 = 15;
const SET_PROTOCOL_FEATURES: u32 = 16;
const SET_VRING_ENABLE: u32 = 18;

const FLAG_VERSION: u32 = 0x1;
const FLAG_REPLY: u32 = 0x4;
const FLAG_NEED_REPLY: u32 = 0x8;
const HDR_LEN: usize = 12;
/// Largest payload accepted (the biggest request handled is a memory table of 8
/// regions, 264 bytes).
const MAX_PAYLOAD: usize = 4096;
/// Most regions (and fds) in one memory table.
const MAX_REGIONS: usize = 8;

// ---------------------------------------------------------------------------
// Guest memory.

/// One region of guest memory: guest-physical `[gpa, gpa + len)`, at `uva` in the
/// frontend's address space, at `host` in ours.
#[derive(Debug)]
struct Region {
    gpa: u64,
    len: u64,
    uva: u64,
    host: *mut u8,
    _map: Mapping,
}

/// Who owns a region's bytes.
#[derive(Debug)]
enum Mapping {
    /// An mmap of the frontend's fd, unmapped on drop.
    Mmap { base: *mut libc::c_void, len: usize },
    /// Heap memory (tests).
    #[cfg(test)]
    Heap(*mut [u64]),
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match *self {
            Mapping::Mmap { base, len } => {
                // SAFETY: `base`/`len` are exactly what mmap(2) returned/was given, and
                // the mapping is unmapped once (this is its only owner). No reference
                // into it outlives the `GuestMemory` that owns this region.
                unsafe { libc::munmap(base, len) };
            }
            #[cfg(test)]
            Mapping::Heap(p) => {
                // SAFETY: `p` came from `Box::into_raw` and is freed once, here.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

/// The guest's memory as the frontend shared it: bounds-checked copies in and out.
#[derive(Debug, Default)]
pub(crate) struct GuestMemory {
    regions: Vec<Region>,
}

// SAFETY: the regions are mappings (or heap blocks) owned by this value alone; the raw
// pointers are only dereferenced through `&self`/`&mut self` methods, and the value
// is used by one thread at a time (behind the port's mutex).
unsafe impl Send for GuestMemory {}

impl GuestMemory {
    /// The host address of `[gpa, gpa + len)` if it lies whole inside one region.
    fn find(&self, gpa: u64, len: u64) -> Option<*mut u8> {
        let end = gpa.checked_add(len)?;
        self.regions.iter().find_map(|r| {
            // `r.gpa + r.len` was checked not to overflow when the region was made.
            (gpa >= r.gpa && end <= r.gpa + r.len).then(|| {
                // SAFETY: `gpa - r.gpa < r.len` (or == with len 0), and `host` points
                // to `r.len` mapped bytes: the offset stays inside the mapping.
                unsafe { r.host.add((gpa - r.gpa) as usize) }
            })
        })
    }

    /// Copies `dst.len()` bytes at `gpa` into `dst`; `None` (nothing read) if the
    /// range is not all guest memory.
    pub(crate) fn read(&self, gpa: u64, dst: &mut [u8]) -> Option<()> {
        let src = self.find(gpa, dst.len() as u64)?;
        // SAFETY: `find` checked that `dst.len()` bytes from `src` are mapped guest
        // memory; `dst` is our own buffer, so the two cannot overlap. The guest may
        // change the bytes meanwhile: we copy whatever is there and validate after.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.as_mut_ptr(), dst.len()) };
        Some(())
    }

    /// Copies `src` to `gpa`; `None` (nothing written) if the range is not all guest
    /// memory.
    pub(crate) fn write(&self, gpa: u64, src: &[u8]) -> Option<()> {
        let dst = self.find(gpa, src.len() as u64)?;
        // SAFETY: `find` checked that `src.len()` bytes from `dst` are mapped,
        // writable (PROT_WRITE) guest memory; `src` is our own buffer.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        Some(())
    }

    fn atomic_u16(&self, gpa: u64) -> Option<&AtomicU16> {
        if !gpa.is_multiple_of(2) {
            return None;
        }
        let p = self.find(gpa, 2)?;
        if !(p as usize).is_multiple_of(2) {
            return None;
        }
        // SAFETY: `p` is 2-byte aligned and points to 2 mapped bytes that live as
        // long as `&self` (regions are only dropped through `&mut self`); the guest
        // accesses the same field atomically (virtio ring indices).
        Some(unsafe { AtomicU16::from_ptr(p.cast()) })
    }

    fn load_u16(&self, gpa: u64) -> Option<u16> {
        Some(u16::from_le(self.atomic_u16(gpa)?.load(Ordering::Acquire)))
    }

    fn store_u16(&self, gpa: u64, v: u16) -> Option<()> {
        self.atomic_u16(gpa)?.store(v.to_le(), Ordering::Release);
        Some(())
    }

    /// The guest-physical address of the frontend's address `uva`.
    fn uva_to_gpa(&self, uva: u64) -> Option<u64> {
        self.regions
            .iter()
            .find(|r| uva >= r.uva && uva - r.uva < r.len)
            .map(|r| r.gpa + (uva - r.uva))
    }

    /// Maps one region of a memory table from the frontend's fd.
    fn map_region(fd: &OwnedFd, gpa: u64, len: u64, uva: u64, offset: u64) -> Option<Region> {
        gpa.checked_add(len)?;
        uva.checked_add(len)?;
        if len == 0 {
            return None;
        }
        let map_len = usize::try_from(offset.checked_add(len)?).ok()?;
        // A region beyond the file's end would fault (SIGBUS) on access: refuse it.
        let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
        // SAFETY: fstat(2) writes one `struct stat` into `st`.
        if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: fstat succeeded, so `st` is initialised.
        let st = unsafe { st.assume_init() };
        let file_len = u64::try_from(st.st_size).unwrap_or(0);
        if (st.st_mode & libc::S_IFMT) == libc::S_IFREG && file_len < offset + len {
            return None;
        }
        // SAFETY: a fresh shared mapping of the frontend's fd chosen by the kernel
        // (no address hint, no MAP_FIXED): it aliases nothing of ours.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_NORESERVE,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return None;
        }
        let map = Mapping::Mmap { base, len: map_len };
        Some(Region {
            gpa,
            len,
            uva,
            // SAFETY: `offset < map_len`, so the pointer stays inside the mapping.
            host: unsafe { base.cast::<u8>().add(offset as usize) },
            _map: map,
        })
    }

    /// Guest memory backed by heap blocks (tests): `(gpa, len)` each.
    #[cfg(test)]
    pub(crate) fn heap(regions: &[(u64, u64)]) -> GuestMemory {
        GuestMemory {
            regions: regions
                .iter()
                .map(|&(gpa, len)| {
                    let words = len.div_ceil(8) as usize;
                    let p = Box::into_raw(vec![0u64; words].into_boxed_slice());
                    Region {
                        gpa,
                        len,
                        uva: gpa,
                        host: p.cast::<u8>(),
                        _map: Mapping::Heap(p),
                    }
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// Descriptor chains.

const DESC_F_NEXT: u16 = 1;
const DESC_F_WRITE: u16 = 2;
const DESC_F_INDIRECT: u16 = 4;
/// The longest chain accepted, in bytes (a header and a 64 KiB super-frame, with room).
const MAX_CHAIN_BYTES: u64 = 1 << 20;

/// One split-ring descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Desc {
    pub(crate) addr: u64,
    pub(crate) len: u32,
    pub(crate) flags: u16,
    pub(crate) next: u16,
}

impl Desc {
    fn from_bytes(b: [u8; 16]) -> Desc {
        Desc {
            addr: u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            len: u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            flags: u16::from_le_bytes([b[12], b[13]]),
            next: u16::from_le_bytes([b[14], b[15]]),
        }
    }
}

/// Why a descriptor chain was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChainError {
    /// The head index is outside the descriptor table.
    Head,
    /// A `next` index is outside the table.
    Next,
    /// More descriptors than the queue has: a loop.
    Loop,
    /// An indirect descriptor (the feature is not offered).
    Indirect,
    /// A device-writable buffer where a readable one is due, or the reverse.
    Direction,
    /// The descriptor table is not in guest memory.
    Memory,
    /// The buffers add up to more than [`MAX_CHAIN_BYTES`].
    Length,
}

/// Walks the chain from `head` in a table of `size` descriptors read by `read`,
/// appending each non-empty buffer `(address, length)` to `out`; every buffer must be
/// device-writable (`writable`) or device-readable. Returns the chain's total length.
/// Visits at most `size` descriptors: any chain is finite.
pub(crate) fn walk_chain(
    size: u16,
    head: u16,
    writable: bool,
    mut read: impl FnMut(u16) -> Option<Desc>,
    out: &mut Vec<(u64, u32)>,
) -> Result<u64, ChainError> {
    if head >= size {
        return Err(ChainError::Head);
    }
    let mut i = head;
    let mut total = 0u64;
    for _ in 0..size {
        let d = read(i).ok_or(ChainError::Memory)?;
        if d.flags & DESC_F_INDIRECT != 0 {
            return Err(ChainError::Indirect);
        }
        if (d.flags & DESC_F_WRITE != 0) != writable {
            return Err(ChainError::Direction);
        }
        total += u64::from(d.len);
        if total > MAX_CHAIN_BYTES {
            return Err(ChainError::Length);
        }
        if d.len > 0 {
            out.push((d.addr, d.len));
        }
        if d.flags & DESC_F_NEXT == 0 {
            return Ok(total);
        }
        if d.next >= size {
            return Err(ChainError::Next);
        }
        i = d.next;
    }
    Err(ChainError::Loop)
}

/// Copies the chain's buffers `segs` into `dst`; `None` if they do not fit or are
/// not all guest memory. Returns the bytes copied.
fn gather(mem: &GuestMemory, segs: &[(u64, u32)], dst: &mut [u8]) -> Option<usize> {
    let mut off = 0usize;
    for &(addr, len) in segs {
        let len = len as usize;
        let end = off.checked_add(len)?;
        mem.read(addr, dst.get_mut(off..end)?)?;
        off = end;
    }
    Some(off)
}

/// Copies `src` across the buffers `segs` in order; `None` if a buffer is not guest
/// memory. Returns the bytes written (all of `src` if the buffers hold it).
fn scatter(mem: &GuestMemory, segs: &[(u64, u32)], src: &[u8]) -> Option<usize> {
    let mut off = 0usize;
    for &(addr, len) in segs {
        if off >= src.len() {
            break;
        }
        let n = (len as usize).min(src.len() - off);
        mem.write(addr, &src[off..off + n])?;
        off += n;
    }
    Some(off)
}

// ---------------------------------------------------------------------------
// Virtqueues.

/// One split virtqueue as the frontend set it up (addresses guest-physical).
#[derive(Debug, Default)]
struct Vring {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    addrs: bool,
    last_avail: u16,
    used_idx: u16,
    kick: Option<OwnedFd>,
    call: Option<OwnedFd>,
    /// `SET_VRING_ENABLE` (only consulted once PROTOCOL_FEATURES is acked).
    enabled: bool,
    /// Kicked off (`SET_VRING_KICK`) and not stopped (`GET_VRING_BASE`).
    started: bool,
    broken: bool,
    /// Used entries were published since the guest was last notified.
    to_notify: bool,
    /// The used index when the guest was last considered for a notification
    /// (`EVENT_IDX`); `None` until the first, which always signals.
    signalled_used: Option<u16>,
}

/// The ring is unusable: stop reading it.
#[derive(Debug)]
struct Broken;

impl Vring {
    fn read_desc(&self, mem: &GuestMemory, i: u16) -> Option<Desc> {
        let mut b = [0u8; 16];
        mem.read(self.desc.checked_add(16 * u64::from(i))?, &mut b)?;
        Some(Desc::from_bytes(b))
    }

    /// The head of the next available chain after `idx` (not consumed), if any.
    fn avail_at(&self, mem: &GuestMemory, idx: u16) -> Result<Option<u16>, Broken> {
        let avail_idx = mem.load_u16(self.avail + 2).ok_or(Broken)?;
        if avail_idx == idx {
            return Ok(None);
        }
        if avail_idx.wrapping_sub(self.last_avail) > self.size {
            return Err(Broken);
        }
        let slot = self.avail + 4 + 2 * u64::from(idx % self.size);
        let mut b = [0u8; 2];
        mem.read(slot, &mut b).ok_or(Broken)?;
        let head = u16::from_le_bytes(b);
        if head >= self.size {
            return Err(Broken);
        }
        Ok(Some(head))
    }

    /// Whether more chains are available than consumed.
    fn has_avail(&self, mem: &GuestMemory) -> bool {
        mem.load_u16(self.avail + 2)
            .is_some_and(|i| i != self.last_avail)
    }

    /// Writes a used element (not yet published).
    fn add_used(&mut self, mem: &GuestMemory, id: u16, len: u32) -> Result<(), Broken> {
        let slot = self.used + 4 + 8 * u64::from(self.used_idx % self.size);
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&u32::from(id).to_le_bytes());
        b[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(slot, &b).ok_or(Broken)?;
        self.used_idx = self.used_idx.wrapping_add(1);
        Ok(())
    }

    /// Publishes the used index (after the elements: release ordering).
    fn publish(&mut self, mem: &GuestMemory) -> Result<(), Broken> {
        mem.store_u16(self.used + 2, self.used_idx).ok_or(Broken)?;
        self.to_notify = true;
        Ok(())
    }

    /// Signals the call eventfd if used entries were published and the guest wants
    /// to hear of them: with `EVENT_IDX`, when the used index crossed the guest's
    /// `used_event` since the last signal (virtio 1.1 §2.6.7.2); without, unless the
    /// guest set `VRING_AVAIL_F_NO_INTERRUPT`.
    fn notify(&mut self, mem: &GuestMemory, event_idx: bool) {
        if !self.to_notify {
            return;
        }
        self.to_notify = false;
        // The used index is visible before the guest's suppression is read.
        fence(Ordering::SeqCst);
        let wanted = if event_idx {
            let used_event = mem.load_u16(self.avail + 4 + 2 * u64::from(self.size));
            let old = self.signalled_used.replace(self.used_idx);
            match (used_event, old) {
                (Some(e), Some(old)) => need_event(e, self.used_idx, old),
                _ => true,
            }
        } else {
            mem.load_u16(self.avail).is_none_or(|f| f & 1 == 0)
        };
        if let (true, Some(call)) = (wanted, &self.call) {
            eventfd_write(call);
        }
    }

    /// Tells the guest (`EVENT_IDX`) to kick when it makes the chain at `idx`
    /// available: the used ring's `avail_event`, after its last element.
    fn set_avail_event(&self, mem: &GuestMemory, idx: u16) {
        let _ = mem.store_u16(self.used + 4 + 8 * u64::from(self.size), idx);
    }

    /// Ready for frames: set up, kicked off, enabled (when that applies), not broken.
    fn ready(&self, protocol_acked: bool) -> bool {
        self.size > 0
            && self.addrs
            && self.started
            && !self.broken
            && (self.enabled || !protocol_acked)
    }
}

/// Whether moving an index from `old` to `new` crossed `event` (virtio's
/// `vring_need_event`, in wrapping 16-bit arithmetic).
fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

fn eventfd_write(fd: &OwnedFd) {
    let one = 1u64.to_ne_bytes();
    // SAFETY: writes the 8 bytes of `one` to an eventfd; a failure (counter full)
    // only loses a wake-up that is already pending.
    unsafe { libc::write(fd.as_raw_fd(), one.as_ptr().cast(), 8) };
}

fn eventfd_drain(fd: &OwnedFd) {
    let mut v = [0u8; 8];
    // SAFETY: reads at most 8 bytes into `v` from a non-blocking eventfd/timerfd.
    unsafe { libc::read(fd.as_raw_fd(), v.as_mut_ptr().cast(), 8) };
}

fn new_eventfd(what: &str) -> Result<OwnedFd, IoError> {
    // SAFETY: eventfd(2) takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(IoError::last_os(what, "eventfd"));
    }
    // SAFETY: `fd` was just returned by eventfd(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

// ---------------------------------------------------------------------------
// The connection to a frontend.

const RX_Q: usize = 0;
const TX_Q: usize = 1;

/// The device as the connected frontend set it up.
#[derive(Debug, Default)]
struct Conn {
    features: u64,
    protocol: u64,
    mem: GuestMemory,
    rings: [Vring; 2],
}

impl Conn {
    fn protocol_acked(&self) -> bool {
        self.features & VHOST_USER_F_PROTOCOL_FEATURES != 0
    }

    fn event_idx(&self) -> bool {
        self.features & VIRTIO_RING_F_EVENT_IDX != 0
    }

    /// Length of the virtio-net header on this connection's frames.
    fn hdr_len(&self) -> usize {
        if self.features & (VIRTIO_F_VERSION_1 | VIRTIO_NET_F_MRG_RXBUF) != 0 {
            12
        } else {
            VnetHdr::LEN
        }
    }

    /// Forgets ring `q`'s kick, taking it out of the data path's epoll first (the
    /// frontend keeps its end open, so closing ours would not).
    fn drop_kick(&mut self, q: usize, epoll: &OwnedFd) {
        if let Some(k) = self.rings[q].kick.take()
            && q == TX_Q
        {
            epoll_del(epoll, k.as_raw_fd());
        }
    }

    /// Handles one request; `true` if it was accepted (for REPLY_ACK). A request
    /// that answers puts its payload in `reply`. `epoll` is the data path's: the TX
    /// queue's kick is watched there, edge-triggered (nothing reads the eventfd).
    fn handle(
        &mut self,
        request: u32,
        payload: &[u8],
        fds: &mut Vec<OwnedFd>,
        epoll: &OwnedFd,
        reply: &mut Option<[u8; 8]>,
    ) -> bool {
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_le_bytes(payload.get(i..i + 4)?.try_into().ok()?))
        };
        let u64_at = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(payload.get(i..i + 8)?.try_into().ok()?))
        };
        let ring_of = |i: Option<u32>| i.filter(|&i| i < 2).map(|i| i as usize);
        match request {
            GET_FEATURES => *reply = Some(OFFERED_FEATURES.to_le_bytes()),
            SET_FEATURES => {
                let Some(f) = u64_at(0) else { return false };
                self.features = f & OFFERED_FEATURES;
            }
            GET_PROTOCOL_FEATURES => *reply = Some(OFFERED_PROTOCOL.to_le_bytes()),
            SET_PROTOCOL_FEATURES => {
                let Some(f) = u64_at(0) else { return false };
                self.protocol = f & OFFERED_PROTOCOL;
            }
            SET_OWNER => {}
            RESET_OWNER => {
                self.drop_kick(TX_Q, epoll);
                self.rings = Default::default();
            }
            SET_MEM_TABLE => {
                let Some(n) = u32_at(0).map(|n| n as usize) else {
                    return false;
                };
                if n == 0 || n > MAX_REGIONS || n != fds.len() {
                    return false;
                }
                let mut regions = Vec::with_capacity(n);
                for (k, fd) in fds.iter().enumerate() {
                    let base = 8 + 32 * k;
                    let (Some(gpa), Some(len), Some(uva), Some(off)) = (
                        u64_at(base),
                        u64_at(base + 8),
                        u64_at(base + 16),
                        u64_at(base + 24),
                    ) else {
                        return false;
                    };
                    let Some(r) = GuestMemory::map_region(fd, gpa, len, uva, off) else {
                        return false;
                    };
                    regions.push(r);
                }
                // Ring addresses are guest-physical and stay valid; the old mappings
                // go now.
                self.mem = GuestMemory { regions };
            }
            SET_VRING_NUM => {
                let (Some(q), Some(num)) = (ring_of(u32_at(0)), u32_at(4)) else {
                    return false;
                };
                if num == 0 || num > 32768 || !num.is_power_of_two() {
                    return false;
                }
                self.rings[q].size = num as u16;
            }
            SET_VRING_ADDR => {
                let (Some(q), Some(desc), Some(used), Some(avail)) =
                    (ring_of(u32_at(0)), u64_at(8), u64_at(16), u64_at(24))
                else {
                    return false;
                };
                let tr = |a| self.mem.uva_to_gpa(a);
                let (Some(desc), Some(used), Some(avail)) = (tr(desc), tr(used), tr(avail)) else {
                    return false;
                };
                let r = &mut self.rings[q];
                r.desc = desc;
                r.used = used;
                r.avail = avail;
                r.addrs = true;
                r.broken = false;
            }
            SET_VRING_BASE => {
                let (Some(q), Some(num)) = (ring_of(u32_at(0)), u32_at(4)) else {
                    return false;
                };
                let r = &mut self.rings[q];
                r.last_avail = num as u16;
                r.used_idx = num as u16;
                r.signalled_used = None;
            }
            GET_VRING_BASE => {
                let Some(q) = ring_of(u32_at(0)) else {
                    return false;
                };
                self.drop_kick(q, epoll);
                let r = &mut self.rings[q];
                r.started = false;
                let mut out = [0u8; 8];
                out[..4].copy_from_slice(&(q as u32).to_le_bytes());
                out[4..].copy_from_slice(&u32::from(r.last_avail).to_le_bytes());
                *reply = Some(out);
            }
            SET_VRING_KICK | SET_VRING_CALL | SET_VRING_ERR => {
                let Some(v) = u64_at(0) else { return false };
                let q = (v & 0xff) as usize;
                let no_fd = v & 0x100 != 0;
                if q >= 2 {
                    return false;
                }
                let fd = if no_fd { None } else { fds.pop() };
                if !no_fd && fd.is_none() {
                    return false;
                }
                match request {
                    SET_VRING_KICK => {
                        self.drop_kick(q, epoll);
                        let r = &mut self.rings[q];
                        r.kick = fd;
                        r.started = true;
                        r.broken = false;
                        if let (TX_Q, Some(k)) = (q, &r.kick) {
                            epoll_add(epoll, k.as_raw_fd(), TOKEN_KICK, true);
                        }
                    }
                    SET_VRING_CALL => self.rings[q].call = fd,
                    _ => {}
                }
            }
            SET_VRING_ENABLE => {
                let (Some(q), Some(num)) = (ring_of(u32_at(0)), u32_at(4)) else {
                    return false;
                };
                self.rings[q].enabled = num != 0;
            }
            _ => return false,
        }
        true
    }
}

// ---------------------------------------------------------------------------
// The port's shared state.

/// Data-path epoll tokens.
const TOKEN_KICK: u64 = 1;
const TOKEN_PENDING: u64 = 2;
/// Control-thread epoll tokens.
const TOKEN_LISTEN: u64 = 3;
const TOKEN_CONN: u64 = 4;
const TOKEN_TIMER: u64 = 5;
const TOKEN_STOP: u64 = 6;

fn epoll_add(epoll: &OwnedFd, fd: RawFd, token: u64, edge: bool) {
    let mut ev = libc::epoll_event {
        events: libc::EPOLLIN as u32 | if edge { libc::EPOLLET as u32 } else { 0 },
        u64: token,
    };
    // SAFETY: epoll_ctl reads one `epoll_event`; both fds are open.
    unsafe { libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
}

fn epoll_del(epoll: &OwnedFd, fd: RawFd) {
    // SAFETY: EPOLL_CTL_DEL ignores the event pointer (null allowed since 2.6.9).
    unsafe {
        libc::epoll_ctl(
            epoll.as_raw_fd(),
            libc::EPOLL_CTL_DEL,
            fd,
            std::ptr::null_mut(),
        )
    };
}

fn new_epoll(what: &str) -> Result<OwnedFd, IoError> {
    // SAFETY: epoll_create1 takes no pointers.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if ep < 0 {
        return Err(IoError::last_os(what, "epoll_create1"));
    }
    // SAFETY: `ep` was just returned by epoll_create1 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(ep) })
}

/// What the control thread sets up and the data path uses, under one lock.
#[derive(Debug)]
struct State {
    conn: Option<Conn>,
    stats: VhostUserStats,
}

#[derive(Debug)]
struct Shared {
    /// The port's name, for logs.
    name: String,
    state: Mutex<State>,
    /// The data path's epoll ([`RxQueue::fd`]): the TX queue's kick
    /// (edge-triggered) and `pending`.
    epoll: OwnedFd,
    /// Readable while guest frames remain after a full batch.
    pending: OwnedFd,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The port's control thread: it ends (and is joined) when the last of the two
/// queue halves holding this goes.
#[derive(Debug)]
struct ControlThread {
    stop: OwnedFd,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ControlThread {
    fn drop(&mut self) {
        eventfd_write(&self.stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// The control thread: the socket, the connection, the messages.

/// Owns the listening socket (server mode) or the retry timer (client mode) and
/// the connection; handles every message on its own thread, so that a frontend
/// that is slow, stalls or floods never holds the data path longer than one
/// message's handling under the lock (no I/O is done under it).
#[derive(Debug)]
struct Control {
    opts: VhostUserOptions,
    name: String,
    shared: Arc<Shared>,
    epoll: OwnedFd,
    timer: Option<OwnedFd>,
    listener: Option<UnixListener>,
    /// The socket file we bound (device, inode): removed at the end if still ours.
    bound: Option<(u64, u64)>,
    listening: bool,
    stream: Option<UnixStream>,
}

impl Drop for Control {
    fn drop(&mut self) {
        self.disconnect("port closed");
        if let Some((dev, ino)) = self.bound
            && let Ok(m) = std::fs::symlink_metadata(&self.opts.socket)
            && m.dev() == dev
            && m.ino() == ino
        {
            let _ = std::fs::remove_file(&self.opts.socket);
        }
    }
}

impl Control {
    fn run(mut self) {
        if self.opts.mode == VhostUserMode::Client {
            self.connect();
        }
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        loop {
            // SAFETY: epoll_wait writes at most `evs.len()` events into `evs`.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    evs.as_mut_ptr(),
                    evs.len() as i32,
                    -1,
                )
            };
            for ev in evs.iter().take(n.max(0) as usize) {
                match ev.u64 {
                    TOKEN_STOP => return,
                    TOKEN_LISTEN | TOKEN_TIMER => self.connect(),
                    TOKEN_CONN => self.message(),
                    _ => {}
                }
            }
        }
    }

    fn connected(&mut self, stream: UnixStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(MESSAGE_DEADLINE));
        let _ = stream.set_write_timeout(Some(MESSAGE_DEADLINE));
        epoll_add(&self.epoll, stream.as_raw_fd(), TOKEN_CONN, false);
        if let Some(l) = &self.listener
            && self.listening
        {
            epoll_del(&self.epoll, l.as_raw_fd());
            self.listening = false;
        }
        if let Some(t) = &self.timer {
            set_timer(t, None);
        }
        {
            let mut st = self.shared.lock();
            st.stats.connections += 1;
            st.conn = Some(Conn::default());
        }
        tracing::info!(port = %self.name, socket = %self.opts.socket.display(), "vhost-user frontend connected");
        self.stream = Some(stream);
    }

    fn disconnect(&mut self, why: &str) {
        let Some(s) = self.stream.take() else { return };
        epoll_del(&self.epoll, s.as_raw_fd());
        drop(s);
        let conn = {
            let mut st = self.shared.lock();
            st.stats.disconnects += 1;
            let mut c = st.conn.take();
            if let Some(c) = c.as_mut() {
                c.drop_kick(TX_Q, &self.shared.epoll);
            }
            c
        };
        // The guest's memory is unmapped here, outside the lock.
        drop(conn);
        tracing::info!(port = %self.name, reason = why, "vhost-user frontend disconnected");
        if let Some(l) = &self.listener {
            epoll_add(&self.epoll, l.as_raw_fd(), TOKEN_LISTEN, false);
            self.listening = true;
        }
        if let Some(t) = &self.timer {
            set_timer(t, Some(RECONNECT_EVERY));
        }
    }

    /// Accepts or makes a connection if there is none.
    fn connect(&mut self) {
        if let Some(t) = &self.timer {
            eventfd_drain(t);
        }
        if self.stream.is_some() {
            return;
        }
        let stream = match self.opts.mode {
            VhostUserMode::Server => self
                .listener
                .as_ref()
                .and_then(|l| l.accept().ok())
                .map(|(s, _)| s),
            VhostUserMode::Client => UnixStream::connect(&self.opts.socket).ok(),
        };
        if let Some(s) = stream {
            self.connected(s);
        }
    }

    /// Handles the message that has started to arrive on the connection.
    fn message(&mut self) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        let mut hdr = [0u8; HDR_LEN];
        let mut fds = Vec::new();
        match recv_with_fds(stream, &mut hdr, &mut fds) {
            Ok(0) => return self.disconnect("closed by the frontend"),
            Ok(n) if n < HDR_LEN => {
                if read_rest(stream, &mut hdr[n..]).is_none() {
                    return self.disconnect("short message");
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) =>
            {
                return;
            }
            Err(_) => return self.disconnect("socket error"),
        }
        let request = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]);
        let flags = u32::from_le_bytes([hdr[4], hdr[5], hdr[6], hdr[7]]);
        let size = u32::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11]]) as usize;
        if flags & 0x3 != FLAG_VERSION || size > MAX_PAYLOAD {
            self.shared.lock().stats.bad_messages += 1;
            return self.disconnect("malformed message header");
        }
        let mut payload = vec![0u8; size];
        if read_rest(stream, &mut payload).is_none() {
            return self.disconnect("short message");
        }
        let mut reply = None;
        let (ok, protocol) = {
            let mut st = self.shared.lock();
            let st = &mut *st;
            let Some(conn) = st.conn.as_mut() else { return };
            let ok = conn.handle(request, &payload, &mut fds, &self.shared.epoll, &mut reply);
            if !ok {
                st.stats.bad_messages += 1;
            }
            (ok, conn.protocol)
        };
        if !ok {
            tracing::warn!(port = %self.name, request, "vhost-user request refused");
        }
        if matches!(request, SET_VRING_KICK | SET_VRING_ENABLE) {
            // A ring (re)started may hold chains the guest kicked for while nobody
            // served it: the data path looks without waiting for the next kick.
            eventfd_write(&self.shared.pending);
        }
        let ack = (flags & FLAG_NEED_REPLY != 0
            && protocol & PROTOCOL_F_REPLY_ACK != 0
            && reply.is_none())
        .then(|| u64::from(!ok).to_le_bytes());
        if let Some(payload) = reply.or(ack) {
            let mut msg = [0u8; HDR_LEN + 8];
            msg[..4].copy_from_slice(&request.to_le_bytes());
            msg[4..8].copy_from_slice(&(FLAG_VERSION | FLAG_REPLY).to_le_bytes());
            msg[8..12].copy_from_slice(&8u32.to_le_bytes());
            msg[12..].copy_from_slice(&payload);
            if stream.write_all(&msg).is_err() {
                self.disconnect("reply failed");
            }
        }
    }
}

/// The most a message that has started to arrive may take to arrive whole, and a
/// reply to be taken: a frontend that trickles bytes or stops reading is dropped.
const MESSAGE_DEADLINE: Duration = Duration::from_millis(500);

/// How often a port in client mode tries to connect while it has no frontend.
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// Reads the rest of a message that has started to arrive, within
/// [`MESSAGE_DEADLINE`] (the stream's read timeout bounds each read); `None` on
/// EOF, error or a missed deadline.
fn read_rest(stream: &mut UnixStream, buf: &mut [u8]) -> Option<()> {
    let deadline = std::time::Instant::now() + MESSAGE_DEADLINE;
    let mut off = 0;
    while off < buf.len() {
        let left = deadline.checked_duration_since(std::time::Instant::now())?;
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .ok()?;
        match stream.read(&mut buf[off..]) {
            Ok(0) => return None,
            Ok(n) => off += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(())
}

fn set_timer(t: &OwnedFd, every: Option<Duration>) {
    let d = every.unwrap_or_default();
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    };
    let spec = libc::itimerspec {
        it_interval: ts,
        it_value: ts,
    };
    // SAFETY: timerfd_settime reads one `itimerspec`; the old value is not wanted.
    unsafe { libc::timerfd_settime(t.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
}

/// recvmsg(2) of up to `buf.len()` bytes without blocking, collecting passed fds.
fn recv_with_fds(s: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> std::io::Result<usize> {
    // Room for MAX_REGIONS fds (the largest set one message carries).
    let mut cmsg = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid (null name, no iov yet).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: `msg` points to `iov` (our `buf`) and `cmsg`, both valid for the sizes
    // given and exclusively borrowed for the call.
    let n = unsafe {
        libc::recvmsg(
            s.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled, within
    // `msg_controllen`; SCM_RIGHTS data is an array of ints, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize)
                    / size_of::<libc::c_int>();
                for k in 0..count {
                    let fd = data.add(k).read_unaligned();
                    if fd >= 0 {
                        fds.push(OwnedFd::from_raw_fd(fd));
                    }
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    // Kick/call carry one fd: `pop` takes it. A memory table takes them in order.
    Ok(n as usize)
}

// ---------------------------------------------------------------------------
// Opening.

/// Opens a vhost-user port: binds the socket (server mode; a stale socket file is
/// replaced) or starts connecting (client mode), and starts its control thread. No
/// frontend needs to be there yet.
pub fn open_vhost_user(
    name: &str,
    opts: &VhostUserOptions,
) -> Result<(VhostUserRx, VhostUserTx), IoError> {
    let path = opts.socket.display().to_string();
    let data_epoll = new_epoll(&path)?;
    let pending = new_eventfd(&path)?;
    epoll_add(&data_epoll, pending.as_raw_fd(), TOKEN_PENDING, false);
    let shared = Arc::new(Shared {
        name: name.to_owned(),
        state: Mutex::new(State {
            conn: None,
            stats: VhostUserStats::default(),
        }),
        epoll: data_epoll,
        pending,
    });
    let stop = new_eventfd(&path)?;
    let mut control = Control {
        opts: opts.clone(),
        name: name.to_owned(),
        shared: Arc::clone(&shared),
        epoll: new_epoll(&path)?,
        timer: None,
        listener: None,
        bound: None,
        listening: false,
        stream: None,
    };
    epoll_add(&control.epoll, stop.as_raw_fd(), TOKEN_STOP, false);
    match opts.mode {
        VhostUserMode::Server => {
            if let Ok(m) = std::fs::symlink_metadata(&opts.socket) {
                if !m.file_type().is_socket() {
                    return Err(IoError::os(
                        &path,
                        "bind (the path exists and is not a socket)",
                        std::io::Error::from_raw_os_error(libc::EEXIST),
                    ));
                }
                let _ = std::fs::remove_file(&opts.socket);
            }
            let l = UnixListener::bind(&opts.socket).map_err(|e| IoError::os(&path, "bind", e))?;
            l.set_nonblocking(true)
                .map_err(|e| IoError::os(&path, "fcntl(O_NONBLOCK)", e))?;
            control.bound = std::fs::symlink_metadata(&opts.socket)
                .ok()
                .map(|m| (m.dev(), m.ino()));
            epoll_add(&control.epoll, l.as_raw_fd(), TOKEN_LISTEN, false);
            control.listening = true;
            control.listener = Some(l);
        }
        VhostUserMode::Client => {
            // SAFETY: timerfd_create takes no pointers.
            let t = unsafe {
                libc::timerfd_create(
                    libc::CLOCK_MONOTONIC,
                    libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
                )
            };
            if t < 0 {
                return Err(IoError::last_os(&path, "timerfd_create"));
            }
            // SAFETY: `t` was just returned by timerfd_create, owned by nobody else.
            let t = unsafe { OwnedFd::from_raw_fd(t) };
            epoll_add(&control.epoll, t.as_raw_fd(), TOKEN_TIMER, false);
            set_timer(&t, Some(RECONNECT_EVERY));
            control.timer = Some(t);
        }
    }
    // `vhu:PORT` (what `top -H` shows), cut to the kernel's 15 bytes.
    let mut thread_name = format!("vhu:{name}").replace('\0', "");
    while thread_name.len() > 15 {
        thread_name.pop();
    }
    let thread = std::thread::Builder::new()
        .name(thread_name)
        .spawn(move || control.run())
        .map_err(|e| IoError::os(&path, "spawn the control thread", e))?;
    let control = Arc::new(ControlThread {
        stop,
        thread: Some(thread),
    });
    tracing::debug!(port = name, socket = %path, mode = ?opts.mode, "vhost-user port open");
    Ok((
        VhostUserRx {
            shared: Arc::clone(&shared),
            _control: Arc::clone(&control),
            buf: vec![0; RX_BUF],
            descs: Vec::with_capacity(RX_BATCH),
            segs: Vec::with_capacity(64),
            pending_set: false,
            stats: RxStats::default(),
        },
        VhostUserTx {
            shared,
            _control: control,
            scratch: Vec::with_capacity(MAX_GSO_FRAME + 12),
            segs: Vec::with_capacity(64),
            chains: Vec::with_capacity(64),
            segmenter: Segmenter::new(),
            stats: TxStats::default(),
        },
    ))
}

/// Most frames one `recv` returns.
const RX_BATCH: usize = 64;
/// RX buffer: a batch of ordinary frames plus room for one maximal chain.
const RX_BUF: usize = 512 * 1024;

/// Receiving half: the frames the guest transmits (its TX virtqueue).
#[derive(Debug)]
pub struct VhostUserRx {
    shared: Arc<Shared>,
    _control: Arc<ControlThread>,
    buf: Vec<u8>,
    descs: Vec<FrameDesc>,
    segs: Vec<(u64, u32)>,
    /// `pending` was written and not drained yet.
    pending_set: bool,
    stats: RxStats,
}

impl VhostUserRx {
    /// Counters of this queue.
    pub fn stats(&self) -> RxStats {
        self.stats
    }

    /// The port's vhost-user counters.
    pub fn vhost_stats(&self) -> VhostUserStats {
        self.shared.lock().stats
    }

    /// Whether a frontend is connected and both rings run.
    pub fn is_running(&self) -> bool {
        let g = self.shared.lock();
        g.conn.as_ref().is_some_and(|c| {
            c.rings[RX_Q].ready(c.protocol_acked()) && c.rings[TX_Q].ready(c.protocol_acked())
        })
    }

    /// Consumes what woke the data path: edge-triggered kicks need no reading, the
    /// `pending` eventfd is drained if it fired.
    fn consume_wakeups(&mut self) {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 4];
        // SAFETY: epoll_wait writes at most `evs.len()` events into `evs`.
        let n = unsafe {
            libc::epoll_wait(
                self.shared.epoll.as_raw_fd(),
                evs.as_mut_ptr(),
                evs.len() as i32,
                0,
            )
        };
        if evs
            .iter()
            .take(n.max(0) as usize)
            .any(|e| e.u64 == TOKEN_PENDING)
        {
            eventfd_drain(&self.shared.pending);
            self.pending_set = false;
        }
    }

    /// Takes up to a batch of the guest's frames into `buf`; the bytes used.
    fn take_frames(&mut self) -> usize {
        let mut g = self.shared.lock();
        let st = &mut *g;
        let Some(conn) = st.conn.as_mut() else {
            return 0;
        };
        let protocol = conn.protocol_acked();
        let event_idx = conn.event_idx();
        let hdr_len = conn.hdr_len();
        let (mem, ring) = (&conn.mem, &mut conn.rings[TX_Q]);
        if !ring.ready(protocol) {
            return 0;
        }
        let mut off = 0usize;
        let mut broken = false;
        let used_before = ring.used_idx;
        while self.descs.len() < RX_BATCH && self.buf.len() - off >= hdr_len + MAX_GSO_FRAME {
            let head = match ring.avail_at(mem, ring.last_avail) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(Broken) => {
                    broken = true;
                    break;
                }
            };
            ring.last_avail = ring.last_avail.wrapping_add(1);
            self.segs.clear();
            let room = &mut self.buf[off..off + hdr_len + MAX_GSO_FRAME];
            let got = walk_chain(
                ring.size,
                head,
                false,
                |i| ring.read_desc(mem, i),
                &mut self.segs,
            )
            .ok()
            .and_then(|_| gather(mem, &self.segs, room));
            if ring.add_used(mem, head, 0).is_err() {
                broken = true;
                break;
            }
            match got {
                Some(len) if len >= hdr_len + ETH_HLEN => {
                    let hdr = VnetHdr::from_bytes(&self.buf[off..off + len]);
                    self.descs.push(FrameDesc {
                        offset: (off + hdr_len) as u32,
                        len: (len - hdr_len) as u32,
                        tag: None,
                        csum_partial: hdr.is_some_and(VnetHdr::needs_csum),
                        vnet: hdr,
                        peer: None,
                    });
                    if hdr.is_some_and(VnetHdr::is_gso) {
                        self.stats.gso_frames += 1;
                    }
                    off += len;
                }
                _ => {
                    st.stats.bad_chains += 1;
                    self.stats.truncated += 1;
                }
            }
        }
        if ring.used_idx != used_before && ring.publish(mem).is_err() {
            broken = true;
        }
        if broken {
            ring.broken = true;
            st.stats.broken_rings += 1;
            tracing::warn!(port = %self.shared.name, "vhost-user TX ring broken by the guest; ignored until set up again");
        } else if event_idx {
            // Kick when the next chain comes; it may have come already (the guest
            // read the old value): `end_turn` looks, after a fence.
            ring.set_avail_event(mem, ring.last_avail);
        }
        off
    }
}

impl RxQueue for VhostUserRx {
    fn fd(&self) -> Option<RawFd> {
        Some(self.shared.epoll.as_raw_fd())
    }

    fn link_up(&self) -> Option<bool> {
        Some(self.is_running())
    }

    /// Signals the guest once for the buffers returned this turn (if it wants to
    /// hear), and keeps the fd readable if chains remain — a full batch, or one
    /// offered after the last look, whose kick the guest may have skipped.
    fn end_turn(&mut self) {
        let mut g = self.shared.lock();
        let Some(conn) = g.conn.as_mut() else {
            return;
        };
        let (protocol, event_idx) = (conn.protocol_acked(), conn.event_idx());
        let (mem, ring) = (&conn.mem, &mut conn.rings[TX_Q]);
        ring.notify(mem, event_idx);
        if !ring.ready(protocol) {
            return;
        }
        // `avail_event` (written by the last pass) is visible before the avail
        // index is read; the guest orders the other way round.
        fence(Ordering::SeqCst);
        if !self.pending_set && ring.has_avail(mem) {
            eventfd_write(&self.shared.pending);
            self.pending_set = true;
        }
    }

    /// Takes the guest's frames from shared memory without a system call; only when
    /// there are none are the wake-ups consumed (one `epoll_wait`), and the ring
    /// looked at once more, so that a chain made available meanwhile is not missed.
    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        self.descs.clear();
        let mut off = self.take_frames();
        if self.descs.is_empty() {
            self.consume_wakeups();
            off = self.take_frames();
        }
        if !self.descs.is_empty() {
            self.stats.batches += 1;
            self.stats.frames += self.descs.len() as u64;
        }
        Ok(RxBatch::new(&self.buf[..off], &self.descs))
    }

    fn losses(&self) -> RxLosses {
        RxLosses {
            kernel_drops: 0,
            truncated: self.stats.truncated,
        }
    }
}

/// Sending half: frames go straight into the guest's RX virtqueue.
#[derive(Debug)]
pub struct VhostUserTx {
    shared: Arc<Shared>,
    _control: Arc<ControlThread>,
    /// `[virtio-net header][frame]` being delivered.
    scratch: Vec<u8>,
    segs: Vec<(u64, u32)>,
    /// Chains taken for one frame: (head, end index in `segs`, capacity).
    chains: Vec<(u16, usize, u64)>,
    segmenter: Segmenter,
    stats: TxStats,
}

impl VhostUserTx {
    /// Counters of this queue.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// The offloads the connected guest takes, as (csum, tso4, tso6); `None` when no
    /// guest can take frames.
    fn guest_offloads(&self) -> Option<(bool, bool, bool)> {
        let g = self.shared.lock();
        let c = g.conn.as_ref()?;
        c.rings[RX_Q].ready(c.protocol_acked()).then_some((
            c.features & VIRTIO_NET_F_GUEST_CSUM != 0,
            c.features & VIRTIO_NET_F_GUEST_TSO4 != 0,
            c.features & VIRTIO_NET_F_GUEST_TSO6 != 0,
        ))
    }

    /// Delivers `self.scratch` (a 12-byte header slot, then the frame; the first
    /// 10 header bytes filled in) into the guest's RX ring.
    fn deliver(&mut self) -> Result<(), TxError> {
        let mut g = self.shared.lock();
        let inner = &mut *g;
        let Some(conn) = inner.conn.as_mut() else {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        };
        let protocol = conn.protocol_acked();
        let mrg = conn.features & VIRTIO_NET_F_MRG_RXBUF != 0;
        let hdr_len = conn.hdr_len();
        let (mem, ring) = (&conn.mem, &mut conn.rings[RX_Q]);
        if !ring.ready(protocol) {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        }
        // The 12-byte slot holds a 10-byte legacy header when that is what runs.
        let data_start = 12 - hdr_len;
        if hdr_len == 10 {
            self.scratch.copy_within(0..10, 2);
        }
        let need = (self.scratch.len() - data_start) as u64;
        self.segs.clear();
        self.chains.clear();
        let mut cap = 0u64;
        let mut idx = ring.last_avail;
        let mut bad = false;
        while cap < need && (mrg || self.chains.is_empty()) {
            let head = match ring.avail_at(mem, idx) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(Broken) => {
                    ring.broken = true;
                    inner.stats.broken_rings += 1;
                    self.stats.send_errors += 1;
                    return Err(TxError::RingFull);
                }
            };
            idx = idx.wrapping_add(1);
            match walk_chain(
                ring.size,
                head,
                true,
                |i| ring.read_desc(mem, i),
                &mut self.segs,
            ) {
                Ok(total) => {
                    self.chains.push((head, self.segs.len(), total));
                    cap += total;
                }
                Err(_) => {
                    // Returned unused; the frame goes with it.
                    self.chains.push((head, self.segs.len(), 0));
                    bad = true;
                    break;
                }
            }
        }
        if !bad && cap < need {
            // Not enough buffers: nothing is consumed.
            if !mrg && !self.chains.is_empty() {
                self.stats.too_big += 1;
                return Err(TxError::TooBig);
            }
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        }
        let nbufs = self.chains.len() as u16;
        if hdr_len == 12 {
            self.scratch[10..12].copy_from_slice(&(if mrg { nbufs } else { 1 }).to_le_bytes());
        }
        let data = &self.scratch[data_start..];
        let mut written = 0usize;
        let mut start = 0usize;
        let mut failed = bad;
        for &(head, end, chain_cap) in &self.chains {
            let mut len = 0u32;
            if !failed {
                let want = (data.len() - written).min(chain_cap as usize);
                match scatter(mem, &self.segs[start..end], &data[written..written + want]) {
                    Some(n) => {
                        written += n;
                        len = n as u32;
                    }
                    None => failed = true,
                }
            }
            start = end;
            if ring
                .add_used(mem, head, if failed { 0 } else { len })
                .is_err()
            {
                failed = true;
                ring.broken = true;
                inner.stats.broken_rings += 1;
                break;
            }
        }
        ring.last_avail = ring.last_avail.wrapping_add(self.chains.len() as u16);
        if ring.publish(mem).is_err() {
            ring.broken = true;
        }
        if failed {
            inner.stats.bad_chains += 1;
            self.stats.send_errors += 1;
            return Err(TxError::RingFull);
        }
        self.stats.sent += 1;
        Ok(())
    }
}

impl TxQueue for VhostUserTx {
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        let Some((csum, tso4, tso6)) = self.guest_offloads() else {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        };
        let req = opts
            .offload
            .filter(|v| v.needs_work())
            .or(opts.complete_checksum.then_some(VnetHdr {
                flags: VnetHdr::F_NEEDS_CSUM,
                ..VnetHdr::default()
            }));
        let whole = match req {
            None => true,
            Some(r) if r.is_gso() => match r.gso_kind() {
                VnetHdr::GSO_TCPV4 => tso4 && csum,
                VnetHdr::GSO_TCPV6 => tso6 && csum,
                _ => false,
            },
            Some(_) => csum,
        };
        if !whole {
            return self.push_offloaded(head, tag, body, opts);
        }
        let len = frame_len(head, tag, body);
        let max = if req.is_some_and(VnetHdr::is_gso) {
            MAX_GSO_FRAME
        } else {
            crate::tap::TAP_MAX_FRAME
        };
        if !(ETH_HLEN..=max).contains(&len) || head.len() != 12 {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        self.scratch.clear();
        self.scratch.resize(12 + len, 0);
        let (hdr_bytes, frame) = self.scratch.split_at_mut(12);
        if write_frame(frame, head, tag, body).is_none() {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        let hdr = match req.map(|r| (r, prepare_offload(frame, len, r))) {
            None => VnetHdr::default(),
            Some((_, Ok(h))) => h,
            Some((r, Err(e))) if r.is_gso() => {
                self.stats.bad_offload += 1;
                return Err(TxError::BadOffload(e));
            }
            Some((_, Err(_))) => VnetHdr::default(),
        };
        hdr_bytes[..VnetHdr::LEN].copy_from_slice(&hdr.to_bytes());
        self.deliver()?;
        if hdr.is_gso() {
            self.stats.gso_whole += 1;
        }
        Ok(())
    }

    /// Notifies the guest of the frames delivered since the last flush.
    fn flush(&mut self) -> Result<(), IoError> {
        let mut g = self.shared.lock();
        if let Some(c) = g.conn.as_mut() {
            let event_idx = c.event_idx();
            let (mem, ring) = (&c.mem, &mut c.rings[RX_Q]);
            ring.notify(mem, event_idx);
        }
        Ok(())
    }

    fn tx_stats(&self) -> TxStats {
        self.stats
    }
}

impl SoftwareOffload for VhostUserTx {
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
        let len = frame_len(head, tag, body);
        if !(ETH_HLEN..=crate::tap::TAP_MAX_FRAME).contains(&len) {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        self.scratch.clear();
        self.scratch.resize(12 + len, 0);
        if write_frame(&mut self.scratch[12..], head, tag, body).is_none() {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if complete_checksum {
            complete_l4_checksum(&mut self.scratch[12..]);
        }
        self.deliver()
    }
}

#[cfg(test)]
mod tests;
