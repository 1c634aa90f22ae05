//! Port I/O backends of Portcullis: how the switch runtime receives and sends raw
//! Ethernet frames.
//!
//! Every port is a pair of queues behind two traits:
//! - [`RxQueue`]: `recv` returns an [`RxBatch`] of the frames that arrived since the
//!   previous call, borrowed from the backend's buffer (for AF_PACKET, straight from the
//!   kernel's ring) until the next `recv`. It never blocks; poll [`RxQueue::fd`] for
//!   readability.
//! - [`TxQueue`]: `push` copies one frame (addresses, optional VLAN tag, rest) into the
//!   backend's ring or buffer, so the received batch can be released afterwards;
//!   `flush` hands every queued frame to the kernel. Per-frame failures are
//!   [`TxError`]s the caller counts; [`IoError`] is reserved for set-up and for a queue
//!   that stopped working.
//!
//! Frames start at the destination MAC and carry no FCS. A VLAN tag travels outside
//! the bytes when the kernel delivers it as metadata ([`RxFrame::tag`]) and is written
//! in-band on transmit when given to `push`.
//!
//! Offloads travel beside the frame too: a port that receives virtio-net headers
//! (AF_PACKET with `PACKET_VNET_HDR`) hands over GSO super-frames (up to 64 KiB of TCP
//! as one frame) and partially checksummed frames with their [`VnetHdr`]
//! ([`RxFrame::vnet`]); given back to `push_with` ([`TxOptions::offload`]), the
//! sending port either passes the work on whole (its own virtio-net header) or does
//! it in software ([`gso`]: segmentation, checksums).
//!
//! Modules:
//! - [`afpacket`]: AF_PACKET with TPACKET_V2 RX and TX rings and virtio-net headers
//!   (veth, tap netdev, physical NIC); also interface helpers (index, MAC, MTU, link
//!   up, TX checksum offload and TSO — see [`set_tx_checksum_offload`] and
//!   [`tcp_segmentation_offload`] for why they matter).
//! - [`af_xdp`]: AF_XDP (zero-copy where the driver has it, else copy mode) with a
//!   tiny XDP redirect program attached through a BPF link, detached when the port
//!   closes; no offloads (frames are segmented/checksummed in software on transmit).
//!   Cargo feature `af-xdp` (default); without it, opening always fails.
//! - [`tap`]: the character-device side of a TAP interface (`/dev/net/tun`), with or
//!   without virtio-net headers ([`TapOptions`]).
//! - [`memory`]: an in-memory port for tests.
//! - [`vxlan`]: the overlay's tunnel port, a UDP socket on the underlay (frames
//!   are UDP payloads with their sender; copies go to their tunnel's endpoint).
//! - [`gso`]: software segmentation and checksum completion for ports that cannot
//!   take a frame's offloads along.
//!
//! The main entry points are re-exported at the crate root (`open_af_packet`,
//! `create_tap`, `memory_port`, the interface helpers).
//!
//! Each queue is `Send` and used by one data-plane thread at a time (`&mut self`).
//! The halves of one port share their kernel object (socket or tun fd) through an
//! `Arc`; it is closed when both halves are dropped.

#[cfg(feature = "af-xdp")]
pub mod af_xdp;
#[cfg(not(feature = "af-xdp"))]
#[path = "af_xdp_unavailable.rs"]
pub mod af_xdp;
mod af_xdp_options;
pub mod afpacket;
pub mod dummy;
mod error;
mod frame;
pub mod gso;
pub mod linkmon;
pub mod memory;
mod netdev;
pub mod pcap;
pub mod tap;
pub mod vhost_user;
pub mod vxlan;

use std::os::fd::RawFd;

pub use af_xdp::{AfXdpOptions, AfXdpRx, AfXdpTx, XdpBindMode, XdpMode, open_af_xdp};
pub use afpacket::{AfPacketOptions, AfPacketRings, AfPacketRx, AfPacketTx, open_af_packet};
pub use dummy::{DummyOutcome, ensure_dummy};
pub use error::{IoError, TxError};
pub use frame::{
    ETH_HLEN, RxBatch, RxBatchIter, RxFrame, Tunnel, TxOptions, VLAN_HLEN, VlanTag, VnetHdr,
    complete_l4_checksum,
};
pub use gso::{OffloadError, Segmenter};
pub use linkmon::{LinkChange, LinkMonitor};
pub use memory::{MemoryHandle, MemoryLimits, MemoryRx, MemoryTx, memory_port, memory_port_with};
pub use netdev::{
    bridge_add_port, bridge_remove_port, interface_exists, interface_index, interface_indexes,
    interface_mac, interface_mtu, is_link_running, is_link_up, set_link_down, set_link_up,
    set_tcp_segmentation_offload, set_tx_checksum_offload, tcp_segmentation_offload,
    tx_checksum_offload,
};
pub use tap::{
    TapOptions, TapRx, TapTx, create_persistent_tap, create_tap, create_tap_with,
    delete_persistent_tap, open_tap, open_tap_with,
};
pub use vhost_user::{
    VhostUserMode, VhostUserOptions, VhostUserRx, VhostUserStats, VhostUserTx, open_vhost_user,
};
pub use vxlan::{VxlanOptions, VxlanRx, VxlanTx, open_vxlan};

/// The receiving side of a port.
pub trait RxQueue: Send {
    /// The fd to poll(2) for readability, if any.
    fn fd(&self) -> Option<RawFd>;

    /// Releases the frames of the previous call back to the kernel/buffer and returns
    /// the frames that arrived since (possibly none). Never blocks.
    fn recv(&mut self) -> Result<RxBatch<'_>, IoError>;

    /// The worker is done with this queue for this turn of its loop (it calls this
    /// after the last `recv` of the turn, with the frames of that call handled). A
    /// backend that owes its peer a notification for the frames taken sends it now,
    /// once per turn rather than once per `recv`, and makes its fd wake the worker
    /// again if frames remain.
    fn end_turn(&mut self) {}

    /// Takes (and clears) the error the kernel flagged on the port — poll(2) reports
    /// it as POLLERR, e.g. ENETDOWN when the interface went down or away. `None` when
    /// there is none or the backend has no such notion.
    fn take_error(&mut self) -> Option<std::io::Error> {
        None
    }

    /// The port's link as the backend itself knows it, for a port without a
    /// network interface to ask: a vhost-user port is up while a frontend is
    /// connected and its rings run. `None`: the backend has no such notion (the
    /// interface's carrier tells).
    fn link_up(&self) -> Option<bool> {
        None
    }

    /// Frames this queue lost before the switch saw them, since it was opened: for a
    /// status view, not the frame path (it may ask the kernel). Backends without
    /// such counters report none.
    fn losses(&self) -> RxLosses {
        RxLosses::default()
    }
}

/// Frames a receive queue lost before the pipeline saw them (see
/// [`RxQueue::losses`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxLosses {
    /// Dropped by the kernel for want of room in the receive ring.
    pub kernel_drops: u64,
    /// Arrived cut short (larger than the queue could take whole) and skipped.
    pub truncated: u64,
}

/// The sending side of a port.
pub trait TxQueue: Send {
    /// Queues one frame for sending: the bytes are `head` (destination and source MAC,
    /// 12 bytes), then the 4-byte tag `tpid, tci` if `tag` is `Some`, then `body` (from
    /// the ethertype on). Copies the bytes, so borrowed frames may be released
    /// afterwards. A full ring or a frame outside the port's size limits is an error
    /// the caller counts; never panics.
    fn push(&mut self, head: &[u8], tag: Option<VlanTag>, body: &[u8]) -> Result<(), TxError> {
        self.push_with(head, tag, body, TxOptions::default())
    }

    /// [`TxQueue::push`], with options for the copy (see [`TxOptions`]).
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError>;

    /// Hands every queued frame to the kernel (one syscall per flush on AF_PACKET).
    fn flush(&mut self) -> Result<(), IoError>;

    /// The queue's counters (all zero for a backend that keeps none).
    fn tx_stats(&self) -> TxStats {
        TxStats::default()
    }
}

impl<T: RxQueue + ?Sized> RxQueue for Box<T> {
    fn fd(&self) -> Option<RawFd> {
        (**self).fd()
    }
    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        (**self).recv()
    }
    fn end_turn(&mut self) {
        (**self).end_turn()
    }
    fn take_error(&mut self) -> Option<std::io::Error> {
        (**self).take_error()
    }
    fn link_up(&self) -> Option<bool> {
        (**self).link_up()
    }
    fn losses(&self) -> RxLosses {
        (**self).losses()
    }
}

impl<T: TxQueue + ?Sized> TxQueue for Box<T> {
    fn push_with(
        &mut self,
        head: &[u8],
        tag: Option<VlanTag>,
        body: &[u8],
        opts: TxOptions,
    ) -> Result<(), TxError> {
        (**self).push_with(head, tag, body, opts)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        (**self).flush()
    }
    fn tx_stats(&self) -> TxStats {
        (**self).tx_stats()
    }
}

/// Counters of a transmit queue, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Frames handed to the kernel by successful flushes.
    pub sent: u64,
    /// `push` calls refused with [`TxError::RingFull`].
    pub ring_full: u64,
    /// `push` calls refused with [`TxError::TooBig`].
    pub too_big: u64,
    /// Failed send system calls (a failed AF_PACKET flush counts once; its frames are
    /// retried by the next flush) or frames the kernel refused (TAP).
    pub send_errors: u64,
    /// GSO super-frames handed to the kernel whole, with a virtio-net header.
    pub gso_whole: u64,
    /// Segments cut from GSO super-frames in software (each also counts in `sent`
    /// once flushed).
    pub gso_segments: u64,
    /// `push` calls refused with [`TxError::BadOffload`].
    pub bad_offload: u64,
}

/// Counters of a receive queue, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxStats {
    /// Frames returned by `recv`.
    pub frames: u64,
    /// Non-empty batches returned by `recv` (AF_PACKET: retired blocks).
    pub batches: u64,
    /// Frames skipped because they arrived truncated.
    pub truncated: u64,
    /// Frames the kernel dropped because the ring was full (AF_PACKET only).
    pub kernel_drops: u64,
    /// GSO super-frames among `frames`.
    pub gso_frames: u64,
}

#[cfg(test)]
mod box_tests {
    use super::*;

    /// A queue that knows its link and its losses.
    struct Knows;

    impl RxQueue for Knows {
        fn fd(&self) -> Option<RawFd> {
            None
        }
        fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
            Ok(RxBatch::empty())
        }
        fn link_up(&self) -> Option<bool> {
            Some(false)
        }
        fn losses(&self) -> RxLosses {
            RxLosses {
                kernel_drops: 3,
                truncated: 1,
            }
        }
    }

    #[test]
    fn a_boxed_queue_answers_as_the_queue_inside() {
        // The runtime holds `Box<dyn RxQueue>`: method calls resolve to the Box's
        // impl, which must not fall back to the trait's defaults.
        let b: Box<dyn RxQueue> = Box::new(Knows);
        assert_eq!(RxQueue::link_up(&b), Some(false));
        assert_eq!(
            RxQueue::losses(&b),
            RxLosses {
                kernel_drops: 3,
                truncated: 1
            }
        );
    }
}
