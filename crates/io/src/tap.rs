//! TAP backend: the switch holds the character-device side (`/dev/net/tun`) of a TAP
//! interface, so the TAP netdev becomes a kernel interface wired to a switch port.
//!
//! Direction: a frame the switch writes ([`TapTx`]) is *received* by the kernel on the
//! TAP netdev; a frame the kernel *transmits* on the TAP netdev is read by the switch
//! ([`TapRx`]). VLAN tags are always in-band here (`RxFrame::tag` is `None`).
//!
//! Two ways to connect a QEMU guest, and which one this module is for:
//! - The guest's tap is owned by QEMU (QEMU opened `/dev/net/tun` itself, or libvirt
//!   passed it an fd). A non-multi-queue TAP has exactly one fd, so the switch cannot
//!   also attach to it: use [`crate::afpacket`] on the TAP netdev instead, like a veth.
//!   For QEMU to open a TAP the switch created (`-netdev
//!   tap,id=n0,ifname=NAME,script=no,downscript=no`), the TAP must exist and be free:
//!   create it with [`create_persistent_tap`] (owner = QEMU's uid when QEMU does not
//!   run as root) *before* QEMU starts, and do not hold its fd.
//! - The switch itself is the peer of the TAP netdev ([`create_tap`], [`open_tap`]):
//!   e.g. a host-internal port (the host's stack on the switch), or a test peer.
//!   While the switch holds the fd nobody else (QEMU) can attach to that TAP.
//!
//! Invariants: the fd is non-blocking (`recv` and `flush` never block); TAPs are
//! created with `IFF_TAP | IFF_NO_PI` (no packet-information prefix), single-queue.
//! Without a virtio-net header (the default) a TAP takes no offloads: GSO
//! super-frames pushed to [`TapTx`] are segmented and partial checksums completed in
//! software ([`crate::gso`]). With [`TapOptions::vnet_hdr`] (`IFF_VNET_HDR` plus
//! `TUNSETOFFLOAD` for checksums, TSO and USO, as QEMU's vhost-less virtio-net does)
//! every frame read or written is preceded by its 10-byte `struct virtio_net_hdr`:
//! super-frames and partial checksums cross whole both ways, and the header written
//! is derived from the frame ([`crate::gso::prepare_offload`]). A TAP made by [`create_tap`] is not persistent: it disappears when
//! both halves are dropped.

use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use crate::frame::{
    ETH_HLEN, FrameDesc, TxOptions, VnetHdr, complete_l4_checksum, frame_len, write_frame,
};
use crate::gso::{MAX_GSO_FRAME, Segmenter, SoftwareOffload, prepare_offload};
use crate::netdev::{self, ifreq_for};
use crate::{IoError, RxBatch, RxQueue, RxStats, TxError, TxQueue, TxStats, VlanTag};

/// Largest frame [`TapTx::push`] accepts and [`TapRx`] is sure to read whole.
pub const TAP_MAX_FRAME: usize = 65_535;
/// Most frames one `recv` returns.
const RX_BATCH: usize = 64;
/// RX buffer: room for a full batch of 1518-byte frames plus one maximal frame.
const RX_BUF: usize = 256 * 1024;
/// Most frames queued between flushes.
const TX_FRAMES: usize = 256;
/// Most bytes queued between flushes.
const TX_BYTES: usize = 1024 * 1024;

/// How to attach to a TAP ([`create_tap_with`], [`open_tap_with`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TapOptions {
    /// Frames carry a virtio-net header both ways (`IFF_VNET_HDR`), and the kernel is
    /// told the switch takes checksum, TSO and USO offloads (`TUNSETOFFLOAD`), so the
    /// TAP netdev hands over GSO super-frames and takes them. Default false.
    pub vnet_hdr: bool,
}

#[derive(Debug)]
struct TapShared {
    fd: OwnedFd,
    name: String,
    vnet_hdr: bool,
}

/// Offloads the switch takes from the TAP when it reads virtio-net headers.
const TAP_OFFLOADS: libc::c_uint =
    libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6 | libc::TUN_F_TSO_ECN;

/// Turns virtio-net headers' offloads on for an fd attached with `IFF_VNET_HDR`
/// (USO too where the kernel knows it).
fn tun_set_offloads(fd: &OwnedFd, name: &str) -> Result<(), IoError> {
    let with_uso = TAP_OFFLOADS | libc::TUN_F_USO4 | libc::TUN_F_USO6;
    tun_ioctl_int(
        fd,
        libc::TUNSETOFFLOAD as libc::c_ulong,
        libc::c_ulong::from(with_uso),
        name,
        "ioctl(TUNSETOFFLOAD)",
    )
    .or_else(|_| {
        tun_ioctl_int(
            fd,
            libc::TUNSETOFFLOAD as libc::c_ulong,
            libc::c_ulong::from(TAP_OFFLOADS),
            name,
            "ioctl(TUNSETOFFLOAD)",
        )
    })
}

fn tun_attach(name: &str, flags: libc::c_int) -> Result<OwnedFd, IoError> {
    let mut ifr = ifreq_for(name)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")
        .map_err(|e| IoError::os(name, "open(/dev/net/tun)", e))?;
    let fd = OwnedFd::from(file);
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `ifr` is a valid,
    // exclusively borrowed one.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETIFF,
            &mut ifr as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        let err = std::io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::EBUSY) if flags & libc::IFF_TUN_EXCL != 0 => {
                IoError::InterfaceExists(name.to_owned())
            }
            Some(libc::EBUSY) => IoError::os(
                name,
                "ioctl(TUNSETIFF) (the TAP is attached to another process)",
                err,
            ),
            Some(libc::EINVAL) => IoError::os(
                name,
                "ioctl(TUNSETIFF) (the interface exists and is not a TAP)",
                err,
            ),
            _ => IoError::os(name, "ioctl(TUNSETIFF)", err),
        });
    }
    Ok(fd)
}

fn tun_ioctl_int(
    fd: &OwnedFd,
    request: libc::c_ulong,
    value: libc::c_ulong,
    name: &str,
    op: &'static str,
) -> Result<(), IoError> {
    // SAFETY: TUNSETPERSIST, TUNSETOWNER and TUNSETOFFLOAD take their argument by
    // value (no pointer).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, value) };
    if rc < 0 {
        return Err(IoError::last_os(name, op));
    }
    Ok(())
}

fn halves(fd: OwnedFd, name: &str, vnet_hdr: bool) -> (TapRx, TapTx) {
    let shared = Arc::new(TapShared {
        fd,
        name: name.to_owned(),
        vnet_hdr,
    });
    tracing::debug!(iface = name, "attached to TAP");
    (
        TapRx {
            shared: Arc::clone(&shared),
            buf: vec![0; RX_BUF],
            descs: Vec::with_capacity(RX_BATCH),
            stats: RxStats::default(),
        },
        TapTx {
            shared,
            buf: Vec::with_capacity(64 * 1024),
            frames: Vec::with_capacity(TX_FRAMES),
            segmenter: Segmenter::new(),
            stats: TxStats::default(),
        },
    )
}

/// Creates the TAP interface `name` (`IFF_TAP | IFF_NO_PI`, not persistent) and returns
/// the two halves of its character-device side. Fails with
/// [`IoError::InterfaceExists`] if an interface of that name exists. The interface
/// starts administratively down (see [`crate::set_link_up`]).
pub fn create_tap(name: &str) -> Result<(TapRx, TapTx), IoError> {
    create_tap_with(name, &TapOptions::default())
}

/// [`create_tap`] with options (virtio-net headers).
pub fn create_tap_with(name: &str, opts: &TapOptions) -> Result<(TapRx, TapTx), IoError> {
    let fd = tun_attach(
        name,
        libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL | vnet_flag(opts),
    )?;
    if opts.vnet_hdr {
        tun_set_offloads(&fd, name)?;
    }
    Ok(halves(fd, name, opts.vnet_hdr))
}

fn vnet_flag(opts: &TapOptions) -> libc::c_int {
    if opts.vnet_hdr { libc::IFF_VNET_HDR } else { 0 }
}

/// Attaches to the existing, currently unattached (persistent) TAP `name`. Fails with
/// [`IoError::NoSuchInterface`] if it does not exist, and with `EBUSY` if another
/// process holds it (one that holds it for a moment, a child between fork and exec,
/// is waited for, up to [`ATTACHED_ELSEWHERE_WAIT`]).
pub fn open_tap(name: &str) -> Result<(TapRx, TapTx), IoError> {
    open_tap_with(name, &TapOptions::default())
}

/// [`open_tap`] with options (virtio-net headers).
pub fn open_tap_with(name: &str, opts: &TapOptions) -> Result<(TapRx, TapTx), IoError> {
    netdev::validate_name(name)?;
    if !netdev::interface_exists(name) {
        return Err(IoError::NoSuchInterface(name.to_owned()));
    }
    let fd = tun_attach_waiting(name, libc::IFF_TAP | libc::IFF_NO_PI | vnet_flag(opts))?;
    if opts.vnet_hdr {
        tun_set_offloads(&fd, name)?;
    }
    Ok(halves(fd, name, opts.vnet_hdr))
}

/// Creates the persistent TAP `name` (`IFF_TAP | IFF_NO_PI`) without keeping it
/// attached, so another process may attach to it later (QEMU `-netdev
/// tap,ifname=NAME,script=no`, or [`open_tap`]). `owner` lets that uid attach without
/// `CAP_NET_ADMIN`. Remove it with [`delete_persistent_tap`].
pub fn create_persistent_tap(name: &str, owner: Option<u32>) -> Result<(), IoError> {
    let fd = tun_attach(name, libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL)?;
    if let Some(uid) = owner {
        tun_ioctl_int(
            &fd,
            libc::TUNSETOWNER as libc::c_ulong,
            libc::c_ulong::from(uid),
            name,
            "ioctl(TUNSETOWNER)",
        )?;
    }
    tun_ioctl_int(
        &fd,
        libc::TUNSETPERSIST as libc::c_ulong,
        1,
        name,
        "ioctl(TUNSETPERSIST)",
    )
}

/// How long [`delete_persistent_tap`] waits for a TAP that is attached elsewhere
/// for a moment: a child process between `fork` and `exec` holds a copy of every
/// descriptor of its parent, the TAP's included, until it execs (`O_CLOEXEC` closes
/// it only then). Any thread of ours that spawns a program opens that window.
const ATTACHED_ELSEWHERE_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// [`tun_attach`] to a TAP that may be attached elsewhere for a moment: `EBUSY` is
/// retried every 5 ms for up to [`ATTACHED_ELSEWHERE_WAIT`].
fn tun_attach_waiting(name: &str, flags: libc::c_int) -> Result<OwnedFd, IoError> {
    let start = std::time::Instant::now();
    loop {
        match tun_attach(name, flags) {
            Err(e)
                if e.raw_os_error() == Some(libc::EBUSY)
                    && start.elapsed() < ATTACHED_ELSEWHERE_WAIT =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// Removes the persistent TAP `name` (it must not be attached to another process;
/// one attached for a moment, by a child between fork and exec, is waited for).
pub fn delete_persistent_tap(name: &str) -> Result<(), IoError> {
    netdev::validate_name(name)?;
    if !netdev::interface_exists(name) {
        return Err(IoError::NoSuchInterface(name.to_owned()));
    }
    let fd = tun_attach_waiting(name, libc::IFF_TAP | libc::IFF_NO_PI)?;
    tun_ioctl_int(
        &fd,
        libc::TUNSETPERSIST as libc::c_ulong,
        0,
        name,
        "ioctl(TUNSETPERSIST)",
    )
}

/// Receiving half of a TAP port: reads the frames the kernel transmitted on the TAP.
#[derive(Debug)]
pub struct TapRx {
    shared: Arc<TapShared>,
    buf: Vec<u8>,
    descs: Vec<FrameDesc>,
    stats: RxStats,
}

impl TapRx {
    /// The TAP interface name.
    pub fn ifname(&self) -> &str {
        &self.shared.name
    }

    /// Counters of this queue.
    pub fn stats(&self) -> RxStats {
        self.stats
    }
}

impl RxQueue for TapRx {
    fn fd(&self) -> Option<RawFd> {
        Some(self.shared.fd.as_raw_fd())
    }

    /// Reads frames until the fd has none left, 64 frames were read or the buffer is
    /// too full to be sure the next frame fits.
    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        self.descs.clear();
        let vnet = self.shared.vnet_hdr;
        let max_read = if vnet {
            VnetHdr::LEN + MAX_GSO_FRAME
        } else {
            TAP_MAX_FRAME
        };
        let mut off = 0usize;
        while self.descs.len() < RX_BATCH && self.buf.len() - off > max_read {
            let dst = &mut self.buf[off..];
            // SAFETY: `dst` is a valid, exclusively borrowed buffer of `dst.len()` bytes.
            let n = unsafe {
                libc::read(
                    self.shared.fd.as_raw_fd(),
                    dst.as_mut_ptr().cast(),
                    dst.len(),
                )
            };
            if n > 0 {
                let len = n as usize;
                let (hdr, skip) = if vnet {
                    (VnetHdr::from_bytes(&self.buf[off..off + len]), VnetHdr::LEN)
                } else {
                    (None, 0)
                };
                if len >= skip + ETH_HLEN {
                    self.descs.push(FrameDesc {
                        offset: (off + skip) as u32,
                        len: (len - skip) as u32,
                        tag: None,
                        csum_partial: hdr.is_some_and(VnetHdr::needs_csum),
                        vnet: hdr,
                        peer: None,
                    });
                    if hdr.is_some_and(VnetHdr::is_gso) {
                        self.stats.gso_frames += 1;
                    }
                } else {
                    self.stats.truncated += 1;
                }
                off += len;
                continue;
            }
            if n == 0 {
                break;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => break,
                Some(libc::EINTR) => continue,
                // Report the error with the next call; hand over what was read.
                _ if !self.descs.is_empty() => break,
                _ => return Err(IoError::os(&self.shared.name, "read(TAP)", err)),
            }
        }
        if !self.descs.is_empty() {
            self.stats.batches += 1;
            self.stats.frames += self.descs.len() as u64;
        }
        Ok(RxBatch::new(&self.buf[..off], &self.descs))
    }
}

/// Sending half of a TAP port: frames written here are received by the kernel on the
/// TAP interface.
#[derive(Debug)]
pub struct TapTx {
    shared: Arc<TapShared>,
    buf: Vec<u8>,
    frames: Vec<(usize, usize)>,
    segmenter: Segmenter,
    stats: TxStats,
}

impl TapTx {
    /// The TAP interface name.
    pub fn ifname(&self) -> &str {
        &self.shared.name
    }

    /// Counters of this queue.
    pub fn stats(&self) -> TxStats {
        self.stats
    }
}

impl TxQueue for TapTx {
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        if self.shared.vnet_hdr {
            let req = opts
                .offload
                .filter(|v| v.needs_work())
                .or(opts.complete_checksum.then_some(VnetHdr {
                    flags: VnetHdr::F_NEEDS_CSUM,
                    ..VnetHdr::default()
                }));
            return self.push_vnet(head, tag, body, req);
        }
        self.push_offloaded(head, tag, body, opts)
    }

    fn tx_stats(&self) -> TxStats {
        self.stats
    }
    /// Writes every queued frame. Frames the kernel refuses (link down, no buffers)
    /// are counted in `send_errors` and dropped; an error that means the TAP is gone
    /// (e.g. `EBADFD` after the interface was deleted) is returned, after dropping the
    /// queued frames.
    fn flush(&mut self) -> Result<(), IoError> {
        let mut result = Ok(());
        for &(start, len) in &self.frames {
            let frame = &self.buf[start..start + len];
            // SAFETY: `frame` is a valid buffer of `frame.len()` bytes; write(2) only
            // reads it.
            let n = unsafe {
                libc::write(
                    self.shared.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                )
            };
            if n >= 0 {
                self.stats.sent += 1;
                continue;
            }
            let err = std::io::Error::last_os_error();
            self.stats.send_errors += 1;
            match err.raw_os_error() {
                Some(
                    libc::EAGAIN
                    | libc::EINTR
                    | libc::ENOBUFS
                    | libc::ENOMEM
                    | libc::EIO
                    | libc::EINVAL,
                ) => {}
                _ => {
                    result = Err(IoError::os(&self.shared.name, "write(TAP)", err));
                    break;
                }
            }
        }
        self.frames.clear();
        self.buf.clear();
        result
    }
}

impl TapTx {
    /// Queues `[virtio-net header][frame]` (a TAP with `IFF_VNET_HDR`): the header
    /// derived from the frame for `req`, all zero without a request.
    fn push_vnet(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        req: Option<VnetHdr>,
    ) -> Result<(), TxError> {
        let len = frame_len(head, tag, body);
        let max = if req.is_some_and(VnetHdr::is_gso) {
            MAX_GSO_FRAME
        } else {
            TAP_MAX_FRAME
        };
        if !(ETH_HLEN..=max).contains(&len) || head.len() != 12 {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        let total = VnetHdr::LEN + len;
        if self.frames.len() >= TX_FRAMES || self.buf.len() + total > TX_BYTES {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        }
        let start = self.buf.len();
        self.buf.resize(start + total, 0);
        let (hdr_bytes, frame) = self.buf[start..start + total].split_at_mut(VnetHdr::LEN);
        if write_frame(frame, head, tag, body).is_none() {
            // Cannot happen: the buffer was sized for the frame.
            self.buf.truncate(start);
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        let hdr = match req.map(|r| (r, prepare_offload(frame, len, r))) {
            None => VnetHdr::default(),
            Some((_, Ok(h))) => h,
            Some((r, Err(e))) if r.is_gso() => {
                self.buf.truncate(start);
                self.stats.bad_offload += 1;
                return Err(TxError::BadOffload(e));
            }
            // A checksum the kernel could not finish: sent as it is.
            Some((_, Err(_))) => VnetHdr::default(),
        };
        hdr_bytes.copy_from_slice(&hdr.to_bytes());
        if hdr.is_gso() {
            self.stats.gso_whole += 1;
        }
        self.frames.push((start, total));
        Ok(())
    }
}

impl SoftwareOffload for TapTx {
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
        if !(ETH_HLEN..=TAP_MAX_FRAME).contains(&len) {
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if self.frames.len() >= TX_FRAMES || self.buf.len() + len > TX_BYTES {
            self.stats.ring_full += 1;
            return Err(TxError::RingFull);
        }
        let start = self.buf.len();
        self.buf.resize(start + len, 0);
        if write_frame(&mut self.buf[start..], head, tag, body).is_none() {
            // Cannot happen: the buffer was sized for the frame.
            self.buf.truncate(start);
            self.stats.too_big += 1;
            return Err(TxError::TooBig);
        }
        if complete_checksum {
            complete_l4_checksum(&mut self.buf[start..start + len]);
        }
        self.frames.push((start, len));
        Ok(())
    }
}
