//! Error types of the I/O backends.
//!
//! [`IoError`] is for set-up and for failures that make a queue unusable; every
//! message names the interface. [`TxError`] is the per-frame outcome of
//! [`crate::TxQueue::push`]: the caller counts it and moves on.

use std::io;

/// Setting up or running an I/O backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// No interface of that name exists (in the caller's network namespace).
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
    /// The name is not a valid Linux interface name (empty, 16 bytes or longer, or
    /// containing `/`, `:`, whitespace or NUL).
    #[error("{0:?} is not a valid interface name")]
    InvalidName(String),
    /// An interface of that name already exists (e.g. [`crate::tap::create_tap`]).
    #[error("interface {0:?} already exists")]
    InterfaceExists(String),
    /// The options passed to a backend are inconsistent.
    #[error("interface {iface:?}: invalid options: {reason}")]
    InvalidOptions {
        /// The interface the options were for.
        iface: String,
        /// What is wrong with them.
        reason: String,
    },
    /// A system call failed.
    #[error("interface {iface:?}: {op} failed: {source}")]
    Os {
        /// The interface the call was about.
        iface: String,
        /// The operation (system call and purpose), e.g. `"setsockopt(PACKET_RX_RING)"`.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl IoError {
    /// An [`IoError::Os`] from `errno` as left by the last failed call.
    pub(crate) fn last_os(iface: &str, op: &'static str) -> IoError {
        IoError::os(iface, op, io::Error::last_os_error())
    }

    pub(crate) fn os(iface: &str, op: &'static str, source: io::Error) -> IoError {
        IoError::Os {
            iface: iface.to_owned(),
            op,
            source,
        }
    }

    /// The OS error number, when this is an [`IoError::Os`].
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            IoError::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Why [`crate::TxQueue::push`] did not queue a frame. The frame is dropped; the
/// caller counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// No free slot/buffer space until the kernel has sent earlier frames (flush, then
    /// try again on a later batch).
    #[error("transmit ring full")]
    RingFull,
    /// The frame does not fit the port: longer than the slot or the interface MTU
    /// allows, or shorter than an Ethernet header (14 bytes).
    #[error("frame size outside the port's limits")]
    TooBig,
    /// The frame's offload request (GSO or a partial checksum, [`crate::VnetHdr`])
    /// does not fit its headers, so it can be neither segmented nor handed on.
    #[error("offload request refused: {0}")]
    BadOffload(crate::gso::OffloadError),
    /// A copy to a tunnel port without a tunnel destination (`TxOptions::tunnel`).
    #[error("no tunnel destination for a copy to a tunnel port")]
    NoTunnel,
}
