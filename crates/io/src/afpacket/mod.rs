//! AF_PACKET backend: one `SOCK_RAW` packet socket per interface with a TPACKET_V2 RX
//! ring and a TPACKET_V2 TX ring in one shared mapping (V2 rather than V3: a V3 RX ring
//! hands frames over per block, a millisecond late at low rates — see `rx.rs`).
//!
//! Works on any Ethernet-like interface (veth, tap netdev, physical NIC). The socket is
//! bound to the interface index with `ETH_P_ALL` and set up so that
//! - our own transmissions (and anything else the host sends on the interface) are
//!   never received back (`PACKET_IGNORE_OUTGOING`);
//! - the interface is promiscuous for as long as the socket lives
//!   (`PACKET_MR_PROMISC` membership, dropped by the kernel on close);
//! - a malformed TX slot is skipped by the kernel instead of stalling the ring
//!   (`PACKET_LOSS`);
//! - with [`AfPacketOptions::vnet_hdr`] (the default, when the kernel accepts it),
//!   every frame carries a `struct virtio_net_hdr` (`PACKET_VNET_HDR`): on RX it
//!   precedes the frame in its ring slot, on TX it precedes the frame in the TX slot.
//!   GSO super-frames (up to 64 KiB of TCP from a guest with TSO) then cross the
//!   switch whole. RX slots stay small (2 KiB): a frame that does not fit one arrives
//!   by the kernel's copy path (`PACKET_COPY_THRESH`: a truncated copy in the slot
//!   marked `TP_STATUS_COPY`, the whole frame read by `recv(2)` from the socket's
//!   receive queue, kept in order); one the receive queue had no room for arrives
//!   truncated and is counted.
//!   A super-frame goes out whole only if the interface does TSO (read when the port
//!   opens and again at most once a second while super-frames flow: a VM's TAP gets
//!   its offloads when QEMU attaches); else the switch segments it in software.
//!   TX slots stay small (2 KiB): a super-frame that does not fit one is sent by
//!   `sendmsg(2)` on a second, send-only packet socket of the same interface (a
//!   socket with a TX ring sends only from its ring), after the ring's queued frames
//!   are flushed, so the order of frames is kept.
//!
//! Layout of the mapping: `[ RX ring: rx_block_count blocks | TX ring ]`.
//!
//! Ownership invariants (the kernel/user hand-over protocol):
//! - RX: a slot belongs to user space while its `tp_status` has `TP_STATUS_USER`.
//!   [`AfPacketRx`] holds only the slots behind the last [`RxBatch`](crate::RxBatch),
//!   and gives them back (`TP_STATUS_KERNEL`, release store) at the start of the next
//!   `recv`, after the batch's borrow has ended. Slots are consumed strictly in ring
//!   order, as the kernel fills them.
//! - TX: a slot belongs to user space while its `tp_status` is `TP_STATUS_AVAILABLE`.
//!   [`AfPacketTx`] fills slots strictly in ring order (so it stays in step with the
//!   kernel's TX head), publishes each with a release store of
//!   `TP_STATUS_SEND_REQUEST`, and never writes a slot the kernel owns.
//! - The socket and the mapping are shared by the RX and TX halves through one `Arc`;
//!   they touch disjoint parts of the mapping. The mapping is unmapped before the
//!   socket is closed.

mod rx;
mod tx;

use std::mem::size_of;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::Arc;

pub use rx::AfPacketRx;
pub use tx::AfPacketTx;

pub use crate::netdev::{
    interface_exists, interface_index, interface_mac, interface_mtu, is_link_up, set_link_down,
    set_link_up, set_tcp_segmentation_offload, set_tx_checksum_offload, tcp_segmentation_offload,
    tx_checksum_offload,
};
use crate::{IoError, netdev};

/// Sizes of the rings and socket behaviour for [`open_af_packet`].
///
/// Construct with struct-update syntax: `AfPacketOptions { rx_block_count: 32,
/// ..AfPacketOptions::default() }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfPacketOptions {
    /// Size of one RX block in bytes (the unit the ring is allocated in); a multiple of
    /// the page size. Default 256 KiB.
    pub rx_block_size: u32,
    /// Number of RX blocks. Default 16 (4 MiB of ring with the default block size:
    /// 2048 slots).
    pub rx_block_count: u32,
    /// Size of one RX slot, its 32-byte header included; a multiple of 16. Frames
    /// that do not fit (with their virtio-net header, about 76 bytes of headroom in
    /// all) take the slower copy path. Default 2048: a 1500-byte MTU with two tags.
    pub rx_frame_size: u32,
    /// Size of one TX slot in bytes, including the 48-byte slot header; multiple of 16.
    /// Bounds the largest frame that can be sent. Default 2048.
    pub tx_frame_size: u32,
    /// Number of TX slots (rounded up to fill whole TX blocks). Default 256.
    pub tx_frame_count: u32,
    /// Put the interface into promiscuous mode while the socket is open. Default true.
    pub promiscuous: bool,
    /// Bypass the interface's qdisc on transmit (`PACKET_QDISC_BYPASS`): faster, but
    /// frames are dropped instead of queued when the driver queue is full. Default
    /// false.
    pub qdisc_bypass: bool,
    /// Receive and send virtio-net headers (`PACKET_VNET_HDR`), so that GSO
    /// super-frames and partially checksummed frames cross the switch whole (see the
    /// [module docs](self)). When the kernel refuses it the port opens without (a
    /// warning is logged; [`AfPacketRx::vnet_hdr`] tells). Default true.
    pub vnet_hdr: bool,
}

impl Default for AfPacketOptions {
    fn default() -> Self {
        AfPacketOptions {
            rx_block_size: 256 * 1024,
            rx_block_count: 16,
            rx_frame_size: 2048,
            tx_frame_size: 2048,
            tx_frame_count: 256,
            promiscuous: true,
            qdisc_bypass: false,
            vnet_hdr: true,
        }
    }
}

/// Size of the TX blocks the TX ring is allocated in (the kernel has no use for TX
/// blocks beyond allocation).
const TX_BLOCK_TARGET: usize = 64 * 1024;

/// Offset of the frame data inside a TX slot: the kernel reads the frame at
/// `tp_hdrlen - sizeof(sockaddr_ll)` = `TPACKET_ALIGN(sizeof(tpacket2_hdr))`.
pub(crate) const TX_DATA_OFFSET: usize = libc::TPACKET2_HDRLEN - size_of::<libc::sockaddr_ll>();

/// Where one ring (RX or TX) lies in the mapping and how it is cut into slots: the
/// kernel allocates a ring in blocks and never lets a slot straddle two.
#[derive(Clone, Copy, Debug)]
pub(super) struct RingGeometry {
    /// Where the ring starts in the mapping.
    pub(super) offset: usize,
    pub(super) block_size: usize,
    pub(super) frame_size: usize,
    pub(super) frames_per_block: usize,
    pub(super) frame_count: usize,
}

impl RingGeometry {
    /// Offset of slot `i` in the mapping.
    pub(super) fn slot_offset(&self, i: usize) -> usize {
        self.offset
            + (i / self.frames_per_block) * self.block_size
            + (i % self.frames_per_block) * self.frame_size
    }
}

/// The smallest RX slot: header, headroom and a minimal Ethernet frame.
const MIN_RX_FRAME: usize = 128;

/// The validated geometry of both rings.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    rx_block_size: usize,
    rx_block_count: usize,
    rx_frame_size: usize,
    tx_block_size: usize,
    tx_block_count: usize,
    tx_frame_size: usize,
    tx_frames_per_block: usize,
}

impl Geometry {
    fn new(opts: &AfPacketOptions, page: usize, iface: &str) -> Result<Geometry, IoError> {
        let bad = |reason: String| IoError::InvalidOptions {
            iface: iface.to_owned(),
            reason,
        };
        let rx_block_size = opts.rx_block_size as usize;
        let rx_frame_size = opts.rx_frame_size as usize;
        let tx_frame_size = opts.tx_frame_size as usize;
        if rx_block_size == 0 || !rx_block_size.is_multiple_of(page) {
            return Err(bad(format!(
                "rx_block_size {rx_block_size} is not a positive multiple of the page size {page}"
            )));
        }
        if opts.rx_block_count == 0 {
            return Err(bad("rx_block_count is 0".into()));
        }
        if rx_frame_size < MIN_RX_FRAME
            || !rx_frame_size.is_multiple_of(libc::TPACKET_ALIGNMENT)
            || rx_frame_size > rx_block_size
        {
            return Err(bad(format!(
                "rx_frame_size {rx_frame_size} must be a multiple of 16, at least {MIN_RX_FRAME} and at most rx_block_size"
            )));
        }
        let min_tx = TX_DATA_OFFSET + crate::frame::ETH_HLEN;
        if tx_frame_size < min_tx || !tx_frame_size.is_multiple_of(libc::TPACKET_ALIGNMENT) {
            return Err(bad(format!(
                "tx_frame_size {tx_frame_size} must be a multiple of 16 and at least {min_tx}"
            )));
        }
        if opts.tx_frame_count == 0 {
            return Err(bad("tx_frame_count is 0".into()));
        }
        let tx_block_size = TX_BLOCK_TARGET.max(tx_frame_size).next_multiple_of(page);
        let tx_frames_per_block = tx_block_size / tx_frame_size;
        let tx_block_count = (opts.tx_frame_count as usize).div_ceil(tx_frames_per_block);
        let g = Geometry {
            rx_block_size,
            rx_block_count: opts.rx_block_count as usize,
            rx_frame_size,
            tx_block_size,
            tx_block_count,
            tx_frame_size,
            tx_frames_per_block,
        };
        if u32::try_from(g.rx_len() + g.tx_len()).is_err() {
            return Err(bad("rings larger than 4 GiB".into()));
        }
        Ok(g)
    }

    fn rx_len(&self) -> usize {
        self.rx_block_size * self.rx_block_count
    }

    fn rx_frames_per_block(&self) -> usize {
        self.rx_block_size / self.rx_frame_size
    }

    fn rx_frame_count(&self) -> usize {
        self.rx_frames_per_block() * self.rx_block_count
    }

    fn tx_len(&self) -> usize {
        self.tx_block_size * self.tx_block_count
    }

    fn tx_frame_count(&self) -> usize {
        self.tx_frames_per_block * self.tx_block_count
    }
}

/// A shared `mmap(2)` of the socket's rings.
struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; which parts of it a
// thread may touch is governed by the ring protocol (RX half and TX half use disjoint
// ranges, and each half is used through `&mut self`), not by thread identity.
unsafe impl Send for Mmap {}
// SAFETY: as above; `Mmap` itself only exposes the base pointer and the length.
unsafe impl Sync for Mmap {}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping created by mmap(2) in `open_af_packet`
        // that nothing references any more (both ring halves are gone).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

impl std::fmt::Debug for Mmap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mmap")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .finish()
    }
}

/// What the RX and TX halves share. Field order matters: the mapping is dropped
/// (unmapped) before the socket is closed.
#[derive(Debug)]
struct Shared {
    map: Mmap,
    fd: OwnedFd,
    ifname: String,
    /// The socket carries virtio-net headers (`PACKET_VNET_HDR` accepted).
    vnet_hdr: bool,
}

impl Shared {
    fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
    iface: &str,
    op: &'static str,
) -> Result<(), IoError> {
    // SAFETY: `value` points to a live, initialised `T` of exactly the length passed;
    // the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(IoError::last_os(iface, op));
    }
    Ok(())
}

fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(p).ok().filter(|p| *p > 0).unwrap_or(4096)
}

/// Opens an AF_PACKET socket on `ifname` with TPACKET_V2 RX and TX rings and returns
/// its two halves (they share the socket).
///
/// Errors: [`IoError::NoSuchInterface`] when `ifname` does not exist,
/// [`IoError::InvalidOptions`] for bad ring sizes, [`IoError::Os`] for a failing system
/// call (e.g. `EPERM` without `CAP_NET_RAW`).
pub fn open_af_packet(
    ifname: &str,
    opts: &AfPacketOptions,
) -> Result<(AfPacketRx, AfPacketTx), IoError> {
    // The interface first: a missing one is reported as such before any ring work.
    netdev::interface_index(ifname)?;
    AfPacketRings::new(opts, ifname)?.bind(ifname)
}

/// An AF_PACKET socket with its rings made and mapped but bound to no interface:
/// the slow half of [`open_af_packet`] (each ring's setsockopt waits for an RCU
/// grace period in the kernel, ~15 ms), which can be done before the interface is
/// known; [`AfPacketRings::bind`] is the fast half. Unbound, it receives nothing.
pub struct AfPacketRings {
    fd: OwnedFd,
    map: Mmap,
    geo: Geometry,
    vnet_hdr: bool,
    opts: AfPacketOptions,
}

impl std::fmt::Debug for AfPacketRings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfPacketRings")
            .field("fd", &self.fd.as_raw_fd())
            .field("len", &self.map.len)
            .finish_non_exhaustive()
    }
}

impl AfPacketRings {
    /// The socket and its rings as `opts` asks; `label` names it in errors (the
    /// interface it is meant for, or any text).
    pub fn new(opts: &AfPacketOptions, label: &str) -> Result<AfPacketRings, IoError> {
        let ifname = label;
        let geo = Geometry::new(opts, page_size(), ifname)?;

        // Protocol 0: the socket receives nothing until it is bound below, after the rings
        // exist.
        let fd = netdev::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            0,
            ifname,
            "socket(AF_PACKET, SOCK_RAW)",
        )?;
        let version = libc::tpacket_versions::TPACKET_V2 as libc::c_int;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            ifname,
            "setsockopt(PACKET_VERSION=TPACKET_V2)",
        )?;
        let one: libc::c_int = 1;
        // Before the rings: the kernel refuses the option on a socket that has them.
        let vnet_hdr = opts.vnet_hdr
            && match setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                &one,
                ifname,
                "setsockopt(PACKET_VNET_HDR)",
            ) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(iface = ifname, error = %e, "no virtio-net headers: GSO super-frames will be dropped as too big");
                    false
                }
            };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_IGNORE_OUTGOING,
            &one,
            ifname,
            "setsockopt(PACKET_IGNORE_OUTGOING)",
        )?;
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_LOSS,
            &one,
            ifname,
            "setsockopt(PACKET_LOSS)",
        )?;
        if opts.qdisc_bypass {
            setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                &one,
                ifname,
                "setsockopt(PACKET_QDISC_BYPASS)",
            )?;
        }
        // Frames too big for a slot take the copy path (see the module docs), into a
        // receive buffer with room for a few dozen of them (best effort: without it,
        // bursts of super-frames arrive truncated sooner, and are counted).
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_COPY_THRESH,
            &one,
            ifname,
            "setsockopt(PACKET_COPY_THRESH)",
        )?;
        let _ = setsockopt(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &rx::COPY_RCVBUF,
            ifname,
            "setsockopt(SO_RCVBUFFORCE)",
        );
        let rx_req = libc::tpacket_req {
            tp_block_size: geo.rx_block_size as u32,
            tp_block_nr: geo.rx_block_count as u32,
            tp_frame_size: geo.rx_frame_size as u32,
            tp_frame_nr: geo.rx_frame_count() as u32,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &rx_req,
            ifname,
            "setsockopt(PACKET_RX_RING)",
        )?;
        let tx_req = libc::tpacket_req {
            tp_block_size: geo.tx_block_size as u32,
            tp_block_nr: geo.tx_block_count as u32,
            tp_frame_size: geo.tx_frame_size as u32,
            tp_frame_nr: geo.tx_frame_count() as u32,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_TX_RING,
            &tx_req,
            ifname,
            "setsockopt(PACKET_TX_RING)",
        )?;

        let len = geo.rx_len() + geo.tx_len();
        // SAFETY: a fresh shared mapping of the socket's rings (RX then TX, as the kernel
        // lays them out); no existing memory is affected.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(IoError::last_os(ifname, "mmap of the packet rings"));
        }
        let Some(ptr) = NonNull::new(ptr.cast::<u8>()) else {
            return Err(IoError::os(
                ifname,
                "mmap of the packet rings",
                std::io::Error::other("null mapping"),
            ));
        };
        let map = Mmap { ptr, len };
        Ok(AfPacketRings {
            fd,
            map,
            geo,
            vnet_hdr,
            opts: opts.clone(),
        })
    }

    /// Binds the socket to `ifname` (no grace period: it was never bound) and
    /// returns its two halves, as [`open_af_packet`] does.
    pub fn bind(self, ifname: &str) -> Result<(AfPacketRx, AfPacketTx), IoError> {
        let AfPacketRings {
            fd,
            map,
            geo,
            vnet_hdr,
            opts,
        } = self;
        let opts = &opts;
        let ifindex = netdev::interface_index(ifname)?;
        let mtu = netdev::interface_mtu(ifname)? as usize;

        // SAFETY: `sockaddr_ll` is a plain C struct; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as libc::c_ushort;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex as libc::c_int;
        // SAFETY: `sll` is a valid `sockaddr_ll` and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::ENODEV) {
                return Err(IoError::NoSuchInterface(ifname.to_owned()));
            }
            return Err(IoError::os(ifname, "bind(AF_PACKET)", err));
        }
        if opts.promiscuous {
            let mreq = libc::packet_mreq {
                mr_ifindex: ifindex as libc::c_int,
                mr_type: libc::PACKET_MR_PROMISC as libc::c_ushort,
                mr_alen: 0,
                mr_address: [0; 8],
            };
            setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mreq,
                ifname,
                "setsockopt(PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC)",
            )?;
        }

        let shared = Arc::new(Shared {
            map,
            fd,
            ifname: ifname.to_owned(),
            vnet_hdr,
        });
        // Super-frames go whole only to an interface that segments (or passes them on:
        // veth, TAP) — TSO on, re-read while super-frames flow. Elsewhere the switch
        // cuts them itself.
        let bulk = if vnet_hdr {
            match open_bulk_socket(ifname, ifindex, opts.qdisc_bypass) {
                Ok(fd) => Some(fd),
                Err(e) => {
                    tracing::warn!(iface = ifname, error = %e, "super-frames will be segmented in software");
                    None
                }
            }
        } else {
            None
        };
        tracing::debug!(
            iface = ifname,
            ifindex,
            mtu,
            rx_ring = geo.rx_len(),
            tx_slots = geo.tx_frame_count(),
            vnet_hdr,
            "opened AF_PACKET TPACKET_V2 rings"
        );
        let rx = AfPacketRx::new(
            Arc::clone(&shared),
            RingGeometry {
                offset: 0,
                block_size: geo.rx_block_size,
                frame_size: geo.rx_frame_size,
                frames_per_block: geo.rx_frames_per_block(),
                frame_count: geo.rx_frame_count(),
            },
        );

        let tx = AfPacketTx::new(
            shared,
            RingGeometry {
                offset: geo.rx_len(),
                block_size: geo.tx_block_size,
                frame_size: geo.tx_frame_size,
                frames_per_block: geo.tx_frames_per_block,
                frame_count: geo.tx_frame_count(),
            },
            mtu,
            bulk,
        );
        Ok((rx, tx))
    }
}

/// Socket-buffer size asked for on the send-only socket: room for a few dozen
/// super-frames in flight (`SO_SNDBUFFORCE`; the default is ~200 KiB).
const BULK_SNDBUF: libc::c_int = 4 << 20;

/// The send-only packet socket for super-frames: bound with protocol 0 (it receives
/// nothing), with virtio-net headers.
fn open_bulk_socket(ifname: &str, ifindex: u32, qdisc_bypass: bool) -> Result<OwnedFd, IoError> {
    let fd = netdev::socket(
        libc::AF_PACKET,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        0,
        ifname,
        "socket(AF_PACKET, SOCK_RAW) for super-frames",
    )?;
    let one: libc::c_int = 1;
    setsockopt(
        &fd,
        libc::SOL_PACKET,
        libc::PACKET_VNET_HDR,
        &one,
        ifname,
        "setsockopt(PACKET_VNET_HDR)",
    )?;
    if qdisc_bypass {
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            &one,
            ifname,
            "setsockopt(PACKET_QDISC_BYPASS)",
        )?;
    }
    // Best effort: without it, bursts of super-frames meet EAGAIN sooner.
    let _ = setsockopt(
        &fd,
        libc::SOL_SOCKET,
        libc::SO_SNDBUFFORCE,
        &BULK_SNDBUF,
        ifname,
        "setsockopt(SO_SNDBUFFORCE)",
    );
    // SAFETY: `sockaddr_ll` is a plain C struct; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as libc::c_ushort;
    sll.sll_protocol = 0;
    sll.sll_ifindex = ifindex as libc::c_int;
    // SAFETY: `sll` is a valid `sockaddr_ll` and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(IoError::last_os(ifname, "bind(AF_PACKET) for super-frames"));
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_never_straddle_blocks() {
        let g = RingGeometry {
            offset: 0,
            block_size: 8192,
            frame_size: 3072,
            frames_per_block: 2,
            frame_count: 8,
        };
        let offsets: Vec<usize> = (0..5).map(|i| g.slot_offset(i)).collect();
        assert_eq!(offsets, vec![0, 3072, 8192, 8192 + 3072, 16384]);
        let tx = RingGeometry {
            offset: 4 << 20,
            ..g
        };
        assert_eq!(
            tx.slot_offset(3),
            (4 << 20) + 8192 + 3072,
            "the TX ring follows RX"
        );
    }

    #[test]
    fn default_geometry() {
        let g = Geometry::new(&AfPacketOptions::default(), 4096, "x").unwrap();
        assert_eq!(g.rx_len(), 4 << 20);
        assert_eq!(g.tx_block_size, 64 * 1024);
        assert_eq!(g.tx_frames_per_block, 32);
        assert_eq!(g.tx_frame_count(), 256);
        assert_eq!(TX_DATA_OFFSET, 32);
        assert_eq!(g.rx_frame_count(), 2048);
    }

    #[test]
    fn tx_count_rounds_up_to_whole_blocks_and_big_slots_get_big_blocks() {
        let o = AfPacketOptions {
            tx_frame_count: 33,
            ..AfPacketOptions::default()
        };
        assert_eq!(Geometry::new(&o, 4096, "x").unwrap().tx_frame_count(), 64);
        let o = AfPacketOptions {
            tx_frame_size: 70_000,
            tx_frame_count: 3,
            ..AfPacketOptions::default()
        };
        let g = Geometry::new(&o, 4096, "x").unwrap();
        assert_eq!(g.tx_block_size, 73_728);
        assert_eq!(g.tx_frame_count(), 3);
    }

    #[test]
    fn bad_options_name_the_interface() {
        for o in [
            AfPacketOptions {
                rx_block_size: 5000,
                ..AfPacketOptions::default()
            },
            AfPacketOptions {
                rx_block_count: 0,
                ..AfPacketOptions::default()
            },
            AfPacketOptions {
                rx_frame_size: 100,
                ..AfPacketOptions::default()
            },
            AfPacketOptions {
                tx_frame_size: 32,
                ..AfPacketOptions::default()
            },
            AfPacketOptions {
                tx_frame_count: 0,
                ..AfPacketOptions::default()
            },
        ] {
            let err = Geometry::new(&o, 4096, "veth7").unwrap_err();
            assert!(matches!(err, IoError::InvalidOptions { .. }), "{err:?}");
            assert!(err.to_string().contains("veth7"), "{err}");
        }
    }
}
