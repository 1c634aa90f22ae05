//! AF_XDP backend: one XDP socket per interface queue (zero-copy where the driver has
//! it, copy mode otherwise), its UMEM, and the tiny XDP program that steers the
//! queue's frames into the socket.
//!
//! Set-up ([`open_af_xdp`]):
//! 1. an `XSKMAP` (`bpf(BPF_MAP_CREATE)`) is created and a six-instruction XDP
//!    program written here as raw BPF
//!    (`return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS)`, see
//!    `redirect_program`) is loaded (`BPF_PROG_LOAD`) and attached to the interface
//!    with a BPF link (`BPF_LINK_CREATE`, attach type `BPF_XDP`, `XDP_FLAGS_DRV_MODE` or
//!    `XDP_FLAGS_SKB_MODE`). Until step 4 the map is empty and every frame goes to the
//!    kernel stack (`XDP_PASS`), as do frames of other queues (a multi-queue NIC);
//! 2. an anonymous, page-aligned mapping of `frames` chunks of [`FRAME_SIZE`] bytes is
//!    registered as the socket's UMEM (`xdpilone`); the first half of the chunks is for
//!    RX (all of them handed to the kernel through the fill ring), the second half for
//!    TX (a free list in user space);
//! 3. the socket is bound to `(ifindex, queue)`. With the program attached in native
//!    (driver) mode the bind asks for `XDP_ZEROCOPY` first: the driver then DMAs
//!    frames straight into and out of the UMEM. A driver without zero-copy refuses
//!    (`EOPNOTSUPP`, or `EINVAL` when it dislikes the UMEM — veth always refuses), and
//!    the socket is bound again with `XDP_COPY`: the kernel copies frames into and out
//!    of the UMEM, which works on any driver in both XDP modes. In skb (generic) mode
//!    the bind is `XDP_COPY` directly (generic XDP has an skb already; zero-copy would
//!    gain nothing). What the socket got is read back from the kernel
//!    (`XDP_OPTIONS_ZEROCOPY`), logged once, and kept ([`AfXdpRx::xdp_bind_mode`]);
//! 4. the socket goes into the map at key `queue`.
//!
//! UMEM layout and zero-copy drivers: the UMEM is in aligned-chunk mode (no
//! `XDP_UMEM_UNALIGNED_CHUNK_FLAG`), with 2048-byte chunks (a power of two, the
//! kernel's minimum `XDP_UMEM_MIN_CHUNK_SIZE`, and e.g. mlx5's minimum too) and no
//! user headroom, in page-aligned memory: the kernel accepts it for zero-copy and
//! zero-copy drivers take it as long as a frame fits a chunk after the kernel's
//! `XDP_PACKET_HEADROOM` (256): 1792 bytes of frame. That covers a 1500-byte MTU with
//! two VLAN tags. A larger MTU needs 4096-byte chunks: mlx5, which counts MTU + 22
//! bytes of L2 + 256 of headroom against the chunk, refuses the zero-copy bind above
//! MTU 1770 (`EINVAL`, so the socket falls back to copy mode); other drivers bind and
//! drop the longer frames. Copy mode drops frames over 1792 bytes too: jumbo frames
//! need another UMEM layout in any mode. Zero-copy has not been exercised on this
//! project's machines (veth has none); its only code differences are the bind flag,
//! and one wake-up `sendto` per flush instead of the copy-mode loop (the driver sends
//! from its NAPI context, not inside the call).
//!
//! Detaching: the attachment lives exactly as long as the link's fd. It is closed when
//! both halves of the port are dropped, and the kernel closes it when the process
//! exits in any way (even SIGKILL): nothing stays attached to the interface.
//!
//! Frames and tags: XDP sees the frame as it is on the wire, so an outer 802.1Q or
//! 802.1ad tag is in the bytes. To keep the switch's view identical to AF_PACKET
//! (where the kernel moves the outer tag to packet metadata), `recv` takes it out of
//! the bytes into [`RxFrame::tag`](crate::RxFrame::tag). There is no virtio-net header
//! on AF_XDP: `vnet` is always `None`, and no GSO super-frame is ever delivered. In
//! native mode on veth the kernel takes GSO away from the peer while the (non-frags)
//! program is attached, so senders segment before the wire; in skb (generic) mode a
//! GSO or GRO skb reaches the program linearised, as one frame larger than a UMEM
//! chunk, and the kernel drops it (counted in `kernel_drops`; io test
//! `gso_super_frames_per_mode`) — hence a warning when a port ends up in skb mode.
//! On transmit, GSO super-frames are segmented in software and partial checksums
//! completed ([`crate::gso`]).
//!
//! Checksums: a sender with checksum offload leaves TCP/UDP checksums partial, and XDP
//! hands such frames over without AF_PACKET's `TP_STATUS_CSUMNOTREADY`; `recv`
//! recognises them (`l4_checksum_is_partial`) and sets
//! [`RxFrame::csum_partial`](crate::RxFrame::csum_partial) so that the egress port
//! completes them.
//!
//! Ownership invariants (the UMEM hand-over protocol):
//! - every RX chunk is in exactly one place: the fill ring, the kernel, the RX ring,
//!   or (for the duration of one `recv`) our hands; `recv` copies the frames it reads
//!   into its own batch buffer and gives every chunk back to the fill ring before it
//!   returns, so no Rust reference to UMEM memory the kernel may write ever exists
//!   (one copy per frame, into a buffer allocated once);
//! - every TX chunk is either on the free list (ours: written only by `push`), on the
//!   TX ring or in the kernel; it returns to the free list through the completion
//!   ring;
//! - the rings (and their mappings) are dropped before the UMEM mapping is unmapped,
//!   and the mapping outlives the socket (the `Shared` `Arc` is dropped last).
//!
//! This module is built with the `af-xdp` cargo feature (on by default), the only user
//! of the EUPL-1.2 crate `xdpilone`. Without it, `af_xdp_unavailable.rs` stands in with
//! the same public names and an [`open_af_xdp`] that always fails, so callers fall back
//! to AF_PACKET (docs/licences.md).

use std::ffi::CString;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;

use xdpilone::xdp::XdpDesc;
use xdpilone::{
    CompletionQueue, FillQueue, IfInfo, RingRx, RingTx, Socket, SocketConfig, Umem, UmemConfig,
    User,
};

use crate::frame::{
    ETH_HLEN, FrameDesc, VLAN_HLEN, complete_l4_checksum, frame_len, outer_is_tagged, write_frame,
};
use crate::gso::{Segmenter, SoftwareOffload};
use crate::{
    IoError, RxBatch, RxQueue, RxStats, TxError, TxOptions, TxQueue, TxStats, VlanTag, netdev,
};

/// `bind` attempts while the queue is still busy (10 ms apart).
const BIND_TRIES: u32 = 100;

/// Frames read from the RX ring per `recv` at most.
const RX_BATCH: u32 = 64;

/// `sendto` kicks per flush at most: in copy mode the kernel sends at most 32 frames
/// per kick and answers `EAGAIN` when more wait. In zero-copy mode one kick wakes the
/// driver, which sends from its own context.
const MAX_KICKS: usize = 64;

pub use crate::af_xdp_options::{AfXdpOptions, FRAME_SIZE, XdpBindMode, XdpMode};

// ---------------------------------------------------------------------------------
// bpf(2): the XSKMAP, the program, the link.

const BPF_MAP_CREATE: libc::c_int = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_LINK_CREATE: libc::c_int = 28;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
const XDP_PASS: i32 = 2;
const BPF_FUNC_REDIRECT_MAP: i32 = 51;
const BPF_PSEUDO_MAP_FD: u8 = 1;
/// `offsetof(struct xdp_md, rx_queue_index)`.
const XDP_MD_RX_QUEUE_INDEX: i16 = 16;

/// One eBPF instruction (`struct bpf_insn`): opcode, `dst | src << 4`, offset,
/// immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BpfInsn {
    /// Opcode (class | size/op | mode/source).
    pub code: u8,
    /// Destination register (low nibble) and source register (high nibble).
    pub regs: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl BpfInsn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        BpfInsn {
            code,
            regs: (dst & 0xf) | (src << 4),
            off,
            imm,
        }
    }

    /// The instruction as the kernel reads it (little-endian host).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_ne_bytes());
        b[4..8].copy_from_slice(&self.imm.to_ne_bytes());
        b
    }
}

/// The XDP program, `map_fd` being the XSKMAP:
/// ```text
/// r2 = *(u32 *)(r1 + 16)      ; ctx->rx_queue_index
/// r1 = map_fd ll              ; two instructions, src = BPF_PSEUDO_MAP_FD
/// r3 = XDP_PASS               ; what to do when the queue has no socket
/// call bpf_redirect_map
/// exit
/// ```
pub fn redirect_program(map_fd: RawFd) -> [BpfInsn; 6] {
    [
        // BPF_LDX | BPF_MEM | BPF_W
        BpfInsn::new(0x61, 2, 1, XDP_MD_RX_QUEUE_INDEX, 0),
        // BPF_LD | BPF_IMM | BPF_DW, then the upper half of the immediate.
        BpfInsn::new(0x18, 1, BPF_PSEUDO_MAP_FD, 0, map_fd),
        BpfInsn::new(0, 0, 0, 0, 0),
        // BPF_ALU64 | BPF_MOV | BPF_K
        BpfInsn::new(0xb7, 3, 0, 0, XDP_PASS),
        // BPF_JMP | BPF_CALL
        BpfInsn::new(0x85, 0, 0, 0, BPF_FUNC_REDIRECT_MAP),
        // BPF_JMP | BPF_EXIT
        BpfInsn::new(0x95, 0, 0, 0, 0),
    ]
}

#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
    inner_map_fd: u32,
    numa_node: u32,
    map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

/// Calls bpf(2) with `attr`; returns the new fd (or 0 for non-creating commands).
fn sys_bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` prefix of `union bpf_attr`
    // for `cmd` (the kernel zero-extends shorter attributes), its size is passed with
    // it, and every pointer inside it points to memory that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            (attr as *mut T).cast::<libc::c_void>(),
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned_fd(rc: libc::c_long) -> OwnedFd {
    // SAFETY: `rc` is a new fd a creating bpf(2) command just returned; nothing else
    // owns it.
    unsafe { OwnedFd::from_raw_fd(rc as RawFd) }
}

/// An `XSKMAP`: queue index → XDP socket.
#[derive(Debug)]
pub struct XskMap {
    fd: OwnedFd,
    entries: u32,
}

impl XskMap {
    /// Creates a map with `entries` slots (queue indices `0..entries`).
    pub fn new(iface: &str, entries: u32) -> Result<XskMap, IoError> {
        let mut attr = MapCreateAttr {
            map_type: BPF_MAP_TYPE_XSKMAP,
            key_size: 4,
            value_size: 4,
            max_entries: entries,
            ..MapCreateAttr::default()
        };
        attr.map_name[..9].copy_from_slice(b"pcls_xsks");
        let rc = sys_bpf(BPF_MAP_CREATE, &mut attr)
            .map_err(|e| IoError::os(iface, "bpf(BPF_MAP_CREATE, XSKMAP)", e))?;
        Ok(XskMap {
            fd: owned_fd(rc),
            entries,
        })
    }

    /// Puts the XDP socket `xsk` at `queue`.
    pub fn insert(&self, iface: &str, queue: u32, xsk: RawFd) -> Result<(), IoError> {
        if queue >= self.entries {
            return Err(IoError::InvalidOptions {
                iface: iface.to_owned(),
                reason: format!("queue {queue} outside the XSKMAP's {} slots", self.entries),
            });
        }
        let key = queue;
        let value = xsk as u32;
        let mut attr = MapElemAttr {
            map_fd: self.fd.as_raw_fd() as u32,
            key: &key as *const u32 as u64,
            value: &value as *const u32 as u64,
            ..MapElemAttr::default()
        };
        sys_bpf(BPF_MAP_UPDATE_ELEM, &mut attr)
            .map_err(|e| IoError::os(iface, "bpf(BPF_MAP_UPDATE_ELEM, XSKMAP)", e))?;
        Ok(())
    }

    /// The map's fd.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Loads [`redirect_program`] for `map`; returns the program fd. A verifier refusal
/// carries the verifier's log in the error.
fn load_program(iface: &str, map: &XskMap) -> Result<OwnedFd, IoError> {
    let insns = redirect_program(map.fd());
    let license = c"GPL";
    let mut log = vec![0u8; 4096];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        expected_attach_type: BPF_XDP,
        ..ProgLoadAttr::default()
    };
    attr.prog_name[..9].copy_from_slice(b"pcls_xsks");
    match sys_bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(rc) => Ok(owned_fd(rc)),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            let text = text.trim();
            let e = if text.is_empty() {
                e
            } else {
                std::io::Error::new(e.kind(), format!("{e}; verifier: {text}"))
            };
            Err(IoError::os(iface, "bpf(BPF_PROG_LOAD, XDP)", e))
        }
    }
}

/// Attaches `prog` to `ifindex` in `mode` (not `Auto`); the returned link detaches it
/// when closed.
fn attach(iface: &str, ifindex: u32, prog: &OwnedFd, mode: XdpMode) -> Result<OwnedFd, IoError> {
    let flags = match mode {
        XdpMode::Native => XDP_FLAGS_DRV_MODE,
        XdpMode::Skb | XdpMode::Auto => XDP_FLAGS_SKB_MODE,
    };
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags,
    };
    let rc = sys_bpf(BPF_LINK_CREATE, &mut attr)
        .map_err(|e| IoError::os(iface, "bpf(BPF_LINK_CREATE, XDP)", e))?;
    Ok(owned_fd(rc))
}

/// The XDP program attached to the interface. Field order is drop order: the link
/// (detaching the program) first.
#[derive(Debug)]
struct Attachment {
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: XskMap,
    mode: XdpMode,
}

// ---------------------------------------------------------------------------------
// UMEM and the shared state of both halves.

/// An anonymous mapping holding the UMEM.
#[derive(Debug)]
struct Area {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory; which thread touches which chunk is governed by
// the ownership protocol in the module docs, not by thread identity.
unsafe impl Send for Area {}
// SAFETY: as above; shared references only hand out raw pointers.
unsafe impl Sync for Area {}

impl Area {
    fn new(iface: &str, len: usize) -> Result<Area, IoError> {
        // SAFETY: an anonymous private mapping with no address hint; the kernel picks a
        // page-aligned range that aliases nothing else in the process.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(IoError::last_os(iface, "mmap(UMEM)"));
        }
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| IoError::last_os(iface, "mmap(UMEM)"))?;
        Ok(Area { ptr, len })
    }

    /// The chunk-relative byte range `[addr, addr + len)` as a pointer, if it lies
    /// inside the mapping.
    fn range(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let start = usize::try_from(addr).ok()?;
        (start.checked_add(len)? <= self.len).then(|| self.ptr.as_ptr().wrapping_add(start))
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping made in `new`, unmapped only here;
        // every ring and socket using it is dropped before (module invariant).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// What both halves share. The socket is owned by the rings (each half drops its
/// rings before its `Arc<Shared>`), so when the last half goes the socket closes
/// first, then the XDP program is detached (the link closes), then the memory goes.
struct Shared {
    ifname: String,
    attachment: Attachment,
    bind_mode: XdpBindMode,
    area: Area,
    fd: RawFd,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("ifname", &self.ifname)
            .field("attachment", &self.attachment)
            .field("bind_mode", &self.bind_mode)
            .field("area", &self.area)
            .field("fd", &self.fd)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn xdp_statistics(&self) -> Option<XdpStats> {
        let mut st = XdpStats::default();
        let mut len = std::mem::size_of::<XdpStats>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid for writes and `len` holds the size of `st`;
        // the kernel writes at most `len` bytes (fewer on older kernels, which leaves
        // the rest zero).
        let rc = unsafe {
            libc::getsockopt(
                self.fd,
                SOL_XDP,
                XDP_STATISTICS,
                (&mut st as *mut XdpStats).cast(),
                &mut len,
            )
        };
        (rc == 0).then_some(st)
    }
}

const SOL_XDP: libc::c_int = 283;
const XDP_STATISTICS: libc::c_int = 7;

/// `struct xdp_statistics` (Linux ≥ 5.9).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
struct XdpStats {
    rx_dropped: u64,
    rx_invalid_descs: u64,
    tx_invalid_descs: u64,
    rx_ring_full: u64,
    rx_fill_ring_empty_descs: u64,
    tx_ring_empty_descs: u64,
}

fn check_options(iface: &str, opts: &AfXdpOptions) -> Result<(), IoError> {
    if !opts.frames.is_power_of_two() || !(16..=65536).contains(&opts.frames) {
        return Err(IoError::InvalidOptions {
            iface: iface.to_owned(),
            reason: format!(
                "frames {} must be a power of two between 16 and 65536",
                opts.frames
            ),
        });
    }
    if opts.queue >= 1024 {
        return Err(IoError::InvalidOptions {
            iface: iface.to_owned(),
            reason: format!("queue {} out of range (at most 1023)", opts.queue),
        });
    }
    Ok(())
}

fn xsk_err(iface: &str, op: &'static str, e: xdpilone::Errno) -> IoError {
    IoError::os(
        iface,
        op,
        std::io::Error::from_raw_os_error(e.get_raw().abs()),
    )
}

const XDP_OPTIONS: libc::c_int = 8;
const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

/// Whether the bound XDP socket `fd` is in zero-copy mode (`XDP_OPTIONS`, Linux ≥ 5.3);
/// `None` if the kernel cannot say.
fn socket_is_zero_copy(fd: RawFd) -> Option<bool> {
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `flags` and `len` are valid for writes and describe the 4-byte
    // `struct xdp_options` the kernel writes; `fd` is an open XDP socket.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            SOL_XDP,
            XDP_OPTIONS,
            (&mut flags as *mut u32).cast(),
            &mut len,
        )
    };
    (rc == 0).then_some(flags & XDP_OPTIONS_ZEROCOPY != 0)
}

/// Binds the socket of `user` (the flags are `user`'s), retrying while its queue is
/// still busy: a queue's previous socket is released by the kernel asynchronously (a
/// deferred work item), so right after a port closed, binding its queue again is
/// `EBUSY` for a moment.
fn bind_retrying(umem: &Umem, user: &User) -> Result<(), xdpilone::Errno> {
    let mut tries = 0;
    loop {
        match umem.bind(user) {
            Ok(()) => return Ok(()),
            Err(e) if e.get_raw().abs() == libc::EBUSY && tries + 1 < BIND_TRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a refused `XDP_ZEROCOPY` bind means "this driver (or this UMEM) cannot do
/// zero-copy" — try copy mode — rather than a failure copy mode would share.
fn zero_copy_unsupported(errno: i32) -> bool {
    matches!(errno, libc::EOPNOTSUPP | libc::EINVAL)
}

/// Binds the socket whose rings `user` holds, with `user`'s bind flags; if those ask
/// for zero-copy and the driver refuses it, binds again in copy mode (a failed bind
/// leaves the socket unbound, its rings in place, ready for another).
fn bind_socket(
    ifname: &str,
    umem: &Umem,
    sock: &Socket,
    user: &User,
    zero_copy: bool,
) -> Result<XdpBindMode, IoError> {
    if !zero_copy {
        bind_retrying(umem, user).map_err(|e| xsk_err(ifname, "bind(AF_XDP, XDP_COPY)", e))?;
        return Ok(XdpBindMode::Copy);
    }
    match bind_retrying(umem, user) {
        Ok(()) => return Ok(XdpBindMode::ZeroCopy),
        Err(e) if zero_copy_unsupported(e.get_raw().abs()) => {
            let e = xsk_err(ifname, "bind(AF_XDP, XDP_ZEROCOPY)", e);
            tracing::debug!(iface = ifname, error = %e, "zero-copy refused; binding in copy mode");
        }
        Err(e) => return Err(xsk_err(ifname, "bind(AF_XDP, XDP_ZEROCOPY)", e)),
    }
    // The same socket with other bind flags: no ring sizes, so nothing is set up again
    // (the rings made for `user` are the socket's); only the flags are recorded.
    let copy = umem
        .rx_tx(
            sock,
            &SocketConfig {
                rx_size: None,
                tx_size: None,
                bind_flags: SocketConfig::XDP_BIND_COPY,
            },
        )
        .map_err(|e| xsk_err(ifname, "getsockopt(XDP_MMAP_OFFSETS)", e))?;
    bind_retrying(umem, &copy).map_err(|e| xsk_err(ifname, "bind(AF_XDP, XDP_COPY)", e))?;
    Ok(XdpBindMode::Copy)
}

/// Opens an AF_XDP port on queue `opts.queue` of `ifname` (see the
/// [module docs](self)): zero-copy if the program is attached in native mode and the
/// driver has it, copy mode otherwise ([`AfXdpRx::xdp_bind_mode`] says which). Needs
/// `CAP_NET_ADMIN` and `CAP_BPF`/`CAP_SYS_ADMIN` (root). Fails when the interface
/// already has an XDP program, when the driver refuses the mode, or when the kernel
/// lacks AF_XDP: callers fall back to AF_PACKET.
pub fn open_af_xdp(ifname: &str, opts: &AfXdpOptions) -> Result<(AfXdpRx, AfXdpTx), IoError> {
    netdev::validate_name(ifname)?;
    check_options(ifname, opts)?;
    let ifindex = netdev::interface_index(ifname)?;
    let mtu = netdev::interface_mtu(ifname)? as usize;

    // The program first: its attach mode decides the bind flags. Until the socket is in
    // the map, the program passes every frame to the kernel stack. Any error below
    // drops the link, which detaches it again.
    let map = XskMap::new(ifname, opts.queue + 1)?;
    let prog = load_program(ifname, &map)?;
    let (link, mode) = match opts.mode {
        XdpMode::Auto => match attach(ifname, ifindex, &prog, XdpMode::Native) {
            Ok(l) => (l, XdpMode::Native),
            Err(native) => {
                tracing::debug!(iface = ifname, error = %native, "native XDP refused; trying skb mode");
                (attach(ifname, ifindex, &prog, XdpMode::Skb)?, XdpMode::Skb)
            }
        },
        m => (attach(ifname, ifindex, &prog, m)?, m),
    };

    // Zero-copy only pays (and only exists) in the driver's receive path.
    let zero_copy = mode == XdpMode::Native;
    let half = opts.frames / 2;
    let area = Area::new(ifname, opts.frames as usize * FRAME_SIZE as usize)?;
    let config = UmemConfig {
        fill_size: half,
        complete_size: half,
        frame_size: FRAME_SIZE,
        headroom: 0,
        flags: 0,
    };
    let slice = NonNull::slice_from_raw_parts(area.ptr, area.len);
    // SAFETY: `slice` is the whole of a page-aligned mapping of `frames * FRAME_SIZE`
    // bytes that lives in `Shared` next to the `Umem`, and is unmapped only after the
    // UMEM's socket and every ring are gone (drop order, module invariant).
    let umem = unsafe { Umem::new(config, slice) }
        .map_err(|e| xsk_err(ifname, "setsockopt(XDP_UMEM_REG)", e))?;

    let name = CString::new(ifname).map_err(|_| IoError::InvalidName(ifname.to_owned()))?;
    let mut info = IfInfo::invalid();
    info.from_name(&name)
        .map_err(|e| xsk_err(ifname, "if_nametoindex", e))?;
    info.set_queue(opts.queue);
    let sock =
        Socket::with_shared(&info, &umem).map_err(|e| xsk_err(ifname, "socket(AF_XDP)", e))?;
    let device = umem
        .fq_cq(&sock)
        .map_err(|e| xsk_err(ifname, "setsockopt(XDP_UMEM_FILL/COMPLETION_RING)", e))?;
    let user = umem
        .rx_tx(
            &sock,
            &SocketConfig {
                rx_size: NonZeroU32::new(half),
                tx_size: NonZeroU32::new(half),
                bind_flags: if zero_copy {
                    SocketConfig::XDP_BIND_ZEROCOPY
                } else {
                    SocketConfig::XDP_BIND_COPY
                },
            },
        )
        .map_err(|e| xsk_err(ifname, "setsockopt(XDP_RX/TX_RING)", e))?;
    let rx_ring = user
        .map_rx()
        .map_err(|e| xsk_err(ifname, "mmap(XDP RX ring)", e))?;
    let tx_ring = user
        .map_tx()
        .map_err(|e| xsk_err(ifname, "mmap(XDP TX ring)", e))?;
    let bound = bind_socket(ifname, &umem, &sock, &user, zero_copy)?;
    let fd = user.as_raw_fd();
    // What the kernel says wins over what the bind asked for.
    let bind_mode = match socket_is_zero_copy(fd) {
        Some(true) => XdpBindMode::ZeroCopy,
        Some(false) => XdpBindMode::Copy,
        None => bound,
    };
    let (mut fill, comp) = device.into_parts();

    // Every RX chunk to the kernel.
    {
        let mut w = fill.fill(half);
        let n = w.insert((0..u64::from(half)).map(|i| i * u64::from(FRAME_SIZE)));
        w.commit();
        if n != half {
            return Err(IoError::InvalidOptions {
                iface: ifname.to_owned(),
                reason: format!("fill ring took {n} of {half} chunks"),
            });
        }
    }
    map.insert(ifname, opts.queue, fd)?;

    tracing::info!(
        iface = ifname,
        queue = opts.queue,
        ?mode,
        ?bind_mode,
        "AF_XDP port open"
    );
    if mode == XdpMode::Skb {
        tracing::warn!(
            iface = ifname,
            "AF_XDP in generic (skb) mode: GRO/GSO super-frames arriving on this interface \
             reach XDP as single frames larger than a UMEM chunk and are dropped by the \
             kernel; turn GRO off on it (ethtool -K IFACE gro off) or use AF_PACKET"
        );
    }

    let shared = Arc::new(Shared {
        ifname: ifname.to_owned(),
        attachment: Attachment {
            _link: link,
            _prog: prog,
            _map: map,
            mode,
        },
        bind_mode,
        area,
        fd,
    });
    // The socket stays open through the rings' references to it; the `Umem` handle
    // itself is needed only for set-up.
    drop(umem);
    let tx_free = (u64::from(half)..u64::from(opts.frames))
        .map(|i| i * u64::from(FRAME_SIZE))
        .collect();
    let max_chunk = FRAME_SIZE as usize;
    let rx = AfXdpRx {
        ring: rx_ring,
        fill,
        refill: Vec::with_capacity(half as usize),
        buf: vec![0u8; RX_BATCH as usize * max_chunk].into_boxed_slice(),
        descs: Vec::with_capacity(RX_BATCH as usize),
        frames: 0,
        batches: 0,
        invalid: 0,
        shared: Arc::clone(&shared),
    };
    let tx = AfXdpTx {
        ring: tx_ring,
        comp,
        free: tx_free,
        queued: Vec::with_capacity(half as usize),
        max_untagged: (mtu + ETH_HLEN).min(max_chunk),
        max_tagged: (mtu + ETH_HLEN + VLAN_HLEN).min(max_chunk),
        segmenter: Segmenter::new(),
        stats: TxStats::default(),
        shared,
    };
    Ok((rx, tx))
}

// ---------------------------------------------------------------------------------
// RX

/// Copies the frame `src` into `dst`, moving an outer 802.1Q/802.1ad tag out of the
/// bytes (as the kernel does for AF_PACKET); returns the length written and the tag.
/// `dst` must be at least `src.len()` long.
pub(crate) fn copy_untagged(dst: &mut [u8], src: &[u8]) -> (usize, Option<VlanTag>) {
    let tpid = match src {
        [_, _, _, _, _, _, _, _, _, _, _, _, a, b, ..] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    };
    if (tpid == VlanTag::TPID_8021Q || tpid == VlanTag::TPID_8021AD)
        && src.len() >= ETH_HLEN + VLAN_HLEN
    {
        let tci = u16::from_be_bytes([src[14], src[15]]);
        let n = src.len() - VLAN_HLEN;
        dst[..12].copy_from_slice(&src[..12]);
        dst[12..n].copy_from_slice(&src[16..]);
        (n, Some(VlanTag { tpid, tci }))
    } else {
        dst[..src.len()].copy_from_slice(src);
        (src.len(), None)
    }
}

/// Whether the TCP/UDP checksum field of `frame` (IPv4 or IPv6 without extension
/// headers, at most one VLAN tag left in the bytes) holds only the folded
/// pseudo-header sum: what a sender with checksum offload leaves for the NIC
/// (`CHECKSUM_PARTIAL`). XDP hands such frames over without the kernel's
/// `TP_STATUS_CSUMNOTREADY`, so this is how `recv` tells the switch to complete the
/// checksum on the way out. A complete checksum that happens to equal the partial one
/// (1 in 65536) is recomputed to the same value: harmless.
pub(crate) fn l4_checksum_is_partial(frame: &[u8]) -> bool {
    let be16 = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
    };
    let sum_of = |b: &[u8]| -> u32 {
        b.chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    };
    let Some(mut ethertype) = be16(12) else {
        return false;
    };
    let mut l3 = ETH_HLEN;
    if ethertype == VlanTag::TPID_8021Q || ethertype == VlanTag::TPID_8021AD {
        let Some(inner) = be16(16) else {
            return false;
        };
        ethertype = inner;
        l3 += VLAN_HLEN;
    }
    let (proto, l4, pseudo) = match ethertype {
        0x0800 => {
            let (Some(&vihl), Some(total), Some(frag), Some(&proto), Some(addrs)) = (
                frame.get(l3),
                be16(l3 + 2),
                be16(l3 + 6),
                frame.get(l3 + 9),
                frame.get(l3 + 12..l3 + 20),
            ) else {
                return false;
            };
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 || frag & 0x3fff != 0 || usize::from(total) < ihl {
                return false;
            }
            let l4_len = (usize::from(total) - ihl) as u32;
            (proto, l3 + ihl, sum_of(addrs) + u32::from(proto) + l4_len)
        }
        0x86dd => {
            let (Some(plen), Some(&proto), Some(addrs)) =
                (be16(l3 + 4), frame.get(l3 + 6), frame.get(l3 + 8..l3 + 40))
            else {
                return false;
            };
            (
                proto,
                l3 + 40,
                sum_of(addrs) + u32::from(proto) + u32::from(plen),
            )
        }
        _ => return false,
    };
    let field = match proto {
        6 => l4 + 16,
        17 => l4 + 6,
        _ => return false,
    };
    let Some(check) = be16(field) else {
        return false;
    };
    let mut folded = pseudo;
    while folded > 0xffff {
        folded = (folded & 0xffff) + (folded >> 16);
    }
    check == folded as u16
}

/// The receiving half of an AF_XDP port (see the [module docs](self)).
pub struct AfXdpRx {
    ring: RingRx,
    fill: FillQueue,
    /// Chunks read from the RX ring, not yet back on the fill ring.
    refill: Vec<u64>,
    /// The frames of the last batch, copied out of the UMEM.
    buf: Box<[u8]>,
    descs: Vec<FrameDesc>,
    frames: u64,
    batches: u64,
    invalid: u64,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AfXdpRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpRx")
            .field("shared", &self.shared)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl AfXdpRx {
    /// The interface this queue receives from.
    pub fn ifname(&self) -> &str {
        &self.shared.ifname
    }

    /// The mode the XDP program was attached in (never `Auto`).
    pub fn mode(&self) -> XdpMode {
        self.shared.attachment.mode
    }

    /// Whether the socket is in zero-copy or copy mode (as the kernel reports it).
    pub fn xdp_bind_mode(&self) -> XdpBindMode {
        self.shared.bind_mode
    }

    /// Counters of this queue. `kernel_drops` is what the kernel dropped for want of
    /// room (`rx_dropped`, `rx_ring_full`, `rx_fill_ring_empty_descs` of
    /// `XDP_STATISTICS`); `truncated` counts descriptors outside the UMEM (never with a
    /// sane kernel).
    pub fn stats(&self) -> RxStats {
        let k = self.shared.xdp_statistics().unwrap_or_default();
        RxStats {
            frames: self.frames,
            batches: self.batches,
            truncated: self.invalid,
            kernel_drops: k.rx_dropped + k.rx_ring_full + k.rx_fill_ring_empty_descs,
            gso_frames: 0,
        }
    }

    fn give_back(&mut self) {
        if self.refill.is_empty() {
            return;
        }
        let mut w = self.fill.fill(self.refill.len() as u32);
        let n = w.insert(self.refill.iter().copied()) as usize;
        w.commit();
        drop(w);
        self.refill.drain(..n);
    }
}

impl RxQueue for AfXdpRx {
    fn fd(&self) -> Option<RawFd> {
        Some(self.shared.fd)
    }

    fn losses(&self) -> crate::RxLosses {
        let s = self.stats();
        crate::RxLosses {
            kernel_drops: s.kernel_drops,
            truncated: s.truncated,
        }
    }

    fn take_error(&mut self) -> Option<std::io::Error> {
        let mut err: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `len` are valid for writes and describe an int-sized
        // buffer, as SO_ERROR expects; the fd is owned by the UMEM in `shared`.
        let rc = unsafe {
            libc::getsockopt(
                self.shared.fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&mut err as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        match (rc, err) {
            (0, 0) => None,
            (0, e) => Some(std::io::Error::from_raw_os_error(e)),
            _ => None,
        }
    }

    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        self.descs.clear();
        let mut at = 0usize;
        let mut reader = self.ring.receive(RX_BATCH);
        while let Some(XdpDesc { addr, len, .. }) = reader.read() {
            self.refill.push(addr & !u64::from(FRAME_SIZE - 1));
            let len = len as usize;
            let Some(src) = self
                .shared
                .area
                .range(addr, len)
                .filter(|_| len <= FRAME_SIZE as usize)
            else {
                self.invalid += 1;
                continue;
            };
            // SAFETY: the chunk was handed to us by the RX ring (the reader's acquire
            // load of the producer orders the kernel's writes before this read) and the
            // kernel does not write it again until it is back on the fill ring, which
            // happens only below, after this copy. The range is inside the mapping
            // (checked by `range`), which lives as long as `shared`.
            let src = unsafe { std::slice::from_raw_parts(src, len) };
            let (n, tag) = copy_untagged(&mut self.buf[at..at + len], src);
            let csum_partial = l4_checksum_is_partial(&self.buf[at..at + n]);
            self.descs.push(FrameDesc {
                offset: at as u32,
                len: n as u32,
                tag,
                csum_partial,
                vnet: None,
                peer: None,
            });
            at += n;
        }
        reader.release();
        drop(reader);
        self.give_back();
        if !self.descs.is_empty() {
            self.frames += self.descs.len() as u64;
            self.batches += 1;
        }
        Ok(RxBatch::new(&self.buf, &self.descs))
    }
}

// ---------------------------------------------------------------------------------
// TX

/// The sending half of an AF_XDP port (see the [module docs](self)).
pub struct AfXdpTx {
    ring: RingTx,
    comp: CompletionQueue,
    /// TX chunks we own.
    free: Vec<u64>,
    /// Frames written by `push`, to go on the TX ring at the next flush.
    queued: Vec<XdpDesc>,
    max_untagged: usize,
    max_tagged: usize,
    segmenter: Segmenter,
    stats: TxStats,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for AfXdpTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdpTx")
            .field("shared", &self.shared)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl AfXdpTx {
    /// The interface this queue sends on.
    pub fn ifname(&self) -> &str {
        &self.shared.ifname
    }

    /// Counters of this queue.
    pub fn stats(&self) -> TxStats {
        self.stats
    }

    /// Whether the socket is in zero-copy or copy mode (the same for both halves).
    pub fn xdp_bind_mode(&self) -> XdpBindMode {
        self.shared.bind_mode
    }

    /// The largest frame `push` accepts: (outer ethertype not 802.1Q, 802.1Q).
    pub fn max_frame_len(&self) -> (usize, usize) {
        (self.max_untagged, self.max_tagged)
    }

    /// Takes the chunks the kernel has sent back onto the free list.
    fn reclaim(&mut self) {
        let mut r = self.comp.complete(u32::MAX);
        while let Some(addr) = r.read() {
            self.free.push(addr & !u64::from(FRAME_SIZE - 1));
        }
        r.release();
    }

    fn push_plain(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        limit: usize,
        complete: bool,
    ) -> Result<(), TxError> {
        let len = frame_len(head, tag, body);
        if len < ETH_HLEN || len > limit {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if self.free.is_empty() {
            self.reclaim();
        }
        let Some(addr) = self.free.pop() else {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        };
        let Some(ptr) = self.shared.area.range(addr, FRAME_SIZE as usize) else {
            self.stats.send_errors += 1;
            return Err(TxError::RingFull);
        };
        // SAFETY: `addr` came off our free list, so the chunk is neither on the TX ring
        // nor in the kernel, and only this half writes TX chunks; it lies inside the
        // mapping (checked by `range`), which lives as long as `shared`.
        let chunk = unsafe { std::slice::from_raw_parts_mut(ptr, FRAME_SIZE as usize) };
        if write_frame(chunk, head, tag, body).is_none() {
            self.free.push(addr);
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if complete {
            complete_l4_checksum(&mut chunk[..len]);
        }
        self.queued.push(XdpDesc {
            addr,
            len: len as u32,
            options: 0,
        });
        Ok(())
    }

    /// Wakes the kernel until it has taken every descriptor on the TX ring (copy mode
    /// sends at most 32 per call), or it stops making progress. In zero-copy mode one
    /// successful wake-up is all: the driver takes the descriptors asynchronously.
    fn kick(&mut self) -> Result<(), IoError> {
        for _ in 0..MAX_KICKS {
            let before = self.ring.pending();
            if before == 0 {
                return Ok(());
            }
            // SAFETY: sendto(2) with a null buffer of length 0 and no address is how an
            // AF_XDP socket's TX ring is kicked; the kernel reads only the rings.
            let rc = unsafe {
                libc::sendto(
                    self.shared.fd,
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc >= 0 {
                if self.shared.bind_mode == XdpBindMode::ZeroCopy {
                    // The driver sends from its own context; the ring drains later.
                    return Ok(());
                }
                continue;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) if self.ring.pending() < before => {}
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS | libc::EINTR) => {
                    self.reclaim();
                    if self.ring.pending() >= before {
                        return Ok(());
                    }
                }
                Some(libc::ENETDOWN | libc::ENXIO) => {
                    self.stats.send_errors += 1;
                    return Ok(());
                }
                _ => {
                    self.stats.send_errors += 1;
                    return Err(IoError::os(&self.shared.ifname, "sendto(AF_XDP kick)", err));
                }
            }
        }
        Ok(())
    }
}

impl TxQueue for AfXdpTx {
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        self.push_offloaded(head, tag, body, opts)
    }

    fn flush(&mut self) -> Result<(), IoError> {
        self.reclaim();
        if !self.queued.is_empty() {
            let mut w = self.ring.transmit(self.queued.len() as u32);
            let n = w.insert(self.queued.iter().copied()) as usize;
            w.commit();
            drop(w);
            self.queued.drain(..n);
            self.stats.sent += n as u64;
        }
        self.kick()?;
        self.reclaim();
        Ok(())
    }

    fn tx_stats(&self) -> TxStats {
        self.stats
    }
}

impl SoftwareOffload for AfXdpTx {
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
        self.push_plain(head, tag, body, max, complete_checksum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_bytes_are_the_expected_instructions() {
        let prog = redirect_program(7);
        let bytes: Vec<u8> = prog.iter().flat_map(|i| i.to_bytes()).collect();
        #[rustfmt::skip]
        let expected: [u8; 48] = [
            0x61, 0x12, 16, 0, 0, 0, 0, 0,      // r2 = *(u32 *)(r1 + 16)
            0x18, 0x11, 0, 0, 7, 0, 0, 0,       // r1 = map fd 7 (pseudo map fd)
            0, 0, 0, 0, 0, 0, 0, 0,             // (upper 32 bits)
            0xb7, 0x03, 0, 0, 2, 0, 0, 0,       // r3 = XDP_PASS
            0x85, 0x00, 0, 0, 51, 0, 0, 0,      // call bpf_redirect_map
            0x95, 0x00, 0, 0, 0, 0, 0, 0,       // exit
        ];
        assert_eq!(bytes, expected);
        assert_eq!(std::mem::size_of::<BpfInsn>(), 8);
    }

    #[test]
    fn in_band_tags_are_moved_out_like_af_packet() {
        let mut f = vec![1u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x00, 0xee]);
        let mut dst = [0u8; 64];
        let (n, tag) = copy_untagged(&mut dst, &f);
        assert_eq!(tag, Some(VlanTag::dot1q(10, 5)));
        assert_eq!(
            &dst[..n],
            &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0x08, 0x00, 0xee]
        );

        let mut q = vec![2u8; 12];
        q.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a, 0x08, 0x00]);
        let (n, tag) = copy_untagged(&mut dst, &q);
        assert_eq!(
            tag,
            Some(VlanTag {
                tpid: 0x88a8,
                tci: 100
            })
        );
        assert_eq!(
            &dst[12..n],
            &[0x81, 0x00, 0x00, 0x0a, 0x08, 0x00],
            "inner tag stays"
        );

        let plain = [3u8; 20];
        let (n, tag) = copy_untagged(&mut dst, &plain);
        assert_eq!((n, tag), (20, None));

        // A tag TPID without room for the tag: left as it is.
        let mut short = vec![4u8; 12];
        short.extend_from_slice(&[0x81, 0x00, 0x01]);
        let (n, tag) = copy_untagged(&mut dst, &short);
        assert_eq!((n, tag), (15, None));
        let (n, tag) = copy_untagged(&mut dst, &[5u8; 3]);
        assert_eq!((n, tag), (3, None));
    }

    /// A UDP/IPv4 frame (optionally 802.1Q-tagged) whose checksum field holds what a
    /// sender with checksum offload leaves: the folded pseudo-header sum.
    fn partial_udp(tagged: bool) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        if tagged {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
        }
        let l3 = f.len() + 2;
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0, 0, 39, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[198, 18, 0, 1, 198, 18, 0, 2]);
        f.extend_from_slice(&[0x30, 0x39, 0, 9, 0, 19, 0, 0]);
        f.extend_from_slice(b"portcullis!");
        // 198.18 + 0.1 + 198.18 + 0.2 + proto 17 + UDP length 19
        let pseudo: u32 = 0xc612 + 0x0001 + 0xc612 + 0x0002 + 17 + 19;
        let folded = ((pseudo & 0xffff) + (pseudo >> 16)) as u16;
        let at = l3 + 20 + 6;
        f[at..at + 2].copy_from_slice(&folded.to_be_bytes());
        f
    }

    #[test]
    fn partial_checksums_are_recognised_and_complete_ones_are_not() {
        for tagged in [false, true] {
            let mut f = partial_udp(tagged);
            assert!(l4_checksum_is_partial(&f), "tagged {tagged}");
            assert!(crate::complete_l4_checksum(&mut f));
            assert!(
                !l4_checksum_is_partial(&f),
                "complete now (tagged {tagged})"
            );
        }
        // Not TCP/UDP, truncated, or not IP: never partial, never a panic.
        let f = partial_udp(false);
        let mut icmp = f.clone();
        icmp[23] = 1;
        assert!(!l4_checksum_is_partial(&icmp));
        for n in 0..f.len() {
            let _ = l4_checksum_is_partial(&f[..n]);
        }
        assert!(!l4_checksum_is_partial(&f[..40]));
        assert!(!l4_checksum_is_partial(&[0u8; 60]));
    }

    proptest::proptest! {
        #[test]
        fn partial_check_and_untagging_never_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = l4_checksum_is_partial(&data);
            let mut dst = vec![0u8; data.len()];
            let (n, tag) = copy_untagged(&mut dst, &data);
            proptest::prop_assert_eq!(n + if tag.is_some() { VLAN_HLEN } else { 0 }, data.len());
        }
    }

    #[test]
    fn bad_options_are_refused_before_any_syscall() {
        for frames in [0, 15, 100, 1 << 17] {
            let e = open_af_xdp(
                "lo",
                &AfXdpOptions {
                    frames,
                    ..AfXdpOptions::default()
                },
            )
            .unwrap_err();
            assert!(matches!(e, IoError::InvalidOptions { .. }), "{frames}: {e}");
        }
        let e = open_af_xdp("bad/name", &AfXdpOptions::default()).unwrap_err();
        assert!(matches!(e, IoError::InvalidName(_)), "{e}");
        let e = open_af_xdp("pcls-nosuch0", &AfXdpOptions::default()).unwrap_err();
        assert!(matches!(e, IoError::NoSuchInterface(_)), "{e}");
    }

    #[test]
    fn only_a_driver_without_zero_copy_leads_to_copy_mode() {
        // veth answers EOPNOTSUPP; a driver that dislikes the UMEM, EINVAL.
        assert!(zero_copy_unsupported(libc::EOPNOTSUPP));
        assert!(zero_copy_unsupported(libc::EINVAL));
        // A busy queue, missing privileges or a vanished interface are not about
        // zero-copy: copy mode would fail the same way, so the error is reported.
        for errno in [libc::EBUSY, libc::EPERM, libc::ENODEV, libc::ENOMEM] {
            assert!(!zero_copy_unsupported(errno), "{errno}");
        }
    }

    #[test]
    fn map_setup_errors_are_clear() {
        // A map without slots is refused by the kernel.
        let e = XskMap::new("veth0", 0).unwrap_err();
        assert!(e.to_string().contains("BPF_MAP_CREATE"), "{e}");
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));

        let map = XskMap::new("veth0", 2).expect("XSKMAP (tests run as root)");
        // A queue outside the map.
        let e = map.insert("veth0", 2, 0).unwrap_err();
        assert!(matches!(e, IoError::InvalidOptions { .. }), "{e}");
        // Something that is not an XDP socket.
        let f = std::fs::File::open("/dev/null").unwrap();
        let e = map.insert("veth0", 0, f.as_raw_fd()).unwrap_err();
        assert!(e.to_string().contains("BPF_MAP_UPDATE_ELEM"), "{e}");
        assert!(e.raw_os_error().is_some());
    }

    #[test]
    fn the_program_passes_the_verifier() {
        let map = XskMap::new("lo", 1).expect("XSKMAP (tests run as root)");
        let prog = load_program("lo", &map).expect("verifier accepts the program");
        assert!(prog.as_raw_fd() >= 0);
    }
}
