//! The options and modes of the AF_XDP backend, shared by the build with AF_XDP
//! (`af_xdp.rs`) and the one without (`af_xdp_unavailable.rs`, the `af-xdp` cargo
//! feature off): callers name the same types in both builds.
//!
//! Invariant: plain data; nothing here touches the kernel.

/// Size of one UMEM chunk. A received frame may be at most
/// `FRAME_SIZE - XDP_PACKET_HEADROOM` (256) = 1792 bytes, in copy and zero-copy mode:
/// enough for a 1500-byte MTU with two VLAN tags (for what
/// zero-copy drivers require of it: the `af_xdp` module docs).
pub const FRAME_SIZE: u32 = 2048;

/// The XDP attach mode of [`AfXdpOptions::mode`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum XdpMode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): works on every interface, after the kernel
    /// has built an skb.
    Skb,
    /// Driver XDP (`XDP_FLAGS_DRV_MODE`): in the driver's receive path; the driver must
    /// support it (veth does).
    Native,
    /// Native if the driver accepts it, else skb.
    #[default]
    Auto,
}

/// How an XDP socket moves frames between the driver and its UMEM (the bind mode the
/// kernel granted, read back with `XDP_OPTIONS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpBindMode {
    /// `XDP_ZEROCOPY`: the driver DMAs frames straight into and out of the UMEM. Only
    /// with the program in native mode, on drivers that support it (not veth).
    ZeroCopy,
    /// `XDP_COPY`: the kernel copies each frame between its own buffers and the UMEM.
    /// Works on every driver in both XDP modes.
    Copy,
}

/// Options of [`open_af_xdp`](crate::open_af_xdp).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AfXdpOptions {
    /// How the XDP program is attached. Default [`XdpMode::Auto`].
    pub mode: XdpMode,
    /// The interface's receive queue served (0 on a veth). Default 0.
    pub queue: u32,
    /// UMEM chunks of [`FRAME_SIZE`] bytes, half for RX and half for TX; a power of two,
    /// at least 16 and at most 65536. Default 2048 (4 MiB).
    pub frames: u32,
}

impl Default for AfXdpOptions {
    fn default() -> Self {
        AfXdpOptions {
            mode: XdpMode::Auto,
            queue: 0,
            frames: 2048,
        }
    }
}
