//! The `af_xdp` module of a build without the `af-xdp` cargo feature: no AF_XDP, and
//! none of the EUPL-1.2 code (`xdpilone`) it needs (docs/licences.md).
//!
//! It keeps the port-facing names of the real module (`af_xdp.rs`) — options and
//! modes (`af_xdp_options.rs`, shared), the two halves, [`open_af_xdp`] — so that callers compile unchanged under both
//! builds. Invariant: [`open_af_xdp`] always fails, with an error saying why, so a
//! caller that falls back to AF_PACKET when AF_XDP cannot be opened does so here too;
//! [`AfXdpRx`] and [`AfXdpTx`] have no values (their methods cannot be reached).
//! The types mirror the real module's; `scripts/test.sh` checks this build, so a name
//! a caller uses that is missing here fails there.

use std::convert::Infallible;
use std::os::fd::RawFd;

use crate::{IoError, RxBatch, RxQueue, RxStats, TxError, TxOptions, TxQueue, TxStats, VlanTag};

/// What [`open_af_xdp`] answers in this build.
pub const UNAVAILABLE: &str = "this build has no AF_XDP support (built without the af-xdp feature)";

pub use crate::af_xdp_options::{AfXdpOptions, FRAME_SIZE, XdpBindMode, XdpMode};

/// Always fails in this build: [`UNAVAILABLE`], as an [`IoError::Os`] about `ifname`
/// (no OS error number; nothing is touched).
pub fn open_af_xdp(ifname: &str, _opts: &AfXdpOptions) -> Result<(AfXdpRx, AfXdpTx), IoError> {
    Err(IoError::os(
        ifname,
        "AF_XDP",
        std::io::Error::new(std::io::ErrorKind::Unsupported, UNAVAILABLE),
    ))
}

/// The receiving half of an AF_XDP port; never exists in this build.
#[derive(Debug)]
pub struct AfXdpRx {
    never: Infallible,
}

impl AfXdpRx {
    /// The interface this queue receives from.
    pub fn ifname(&self) -> &str {
        match self.never {}
    }

    /// The mode the XDP program was attached in.
    pub fn mode(&self) -> XdpMode {
        match self.never {}
    }

    /// Whether the socket is in zero-copy or copy mode.
    pub fn xdp_bind_mode(&self) -> XdpBindMode {
        match self.never {}
    }

    /// Counters of this queue.
    pub fn stats(&self) -> RxStats {
        match self.never {}
    }
}

impl RxQueue for AfXdpRx {
    fn fd(&self) -> Option<RawFd> {
        match self.never {}
    }

    fn recv(&mut self) -> Result<RxBatch<'_>, IoError> {
        match self.never {}
    }
}

/// The sending half of an AF_XDP port; never exists in this build.
#[derive(Debug)]
pub struct AfXdpTx {
    never: Infallible,
}

impl AfXdpTx {
    /// The interface this queue sends on.
    pub fn ifname(&self) -> &str {
        match self.never {}
    }

    /// Counters of this queue.
    pub fn stats(&self) -> TxStats {
        match self.never {}
    }

    /// Whether the socket is in zero-copy or copy mode.
    pub fn xdp_bind_mode(&self) -> XdpBindMode {
        match self.never {}
    }

    /// The largest frame `push` accepts: (outer ethertype not 802.1Q, 802.1Q).
    pub fn max_frame_len(&self) -> (usize, usize) {
        match self.never {}
    }
}

impl TxQueue for AfXdpTx {
    fn push_with(
        &mut self,
        _head: &[u8],
        _tag: Option<VlanTag>,
        _body: &[u8],
        _opts: TxOptions,
    ) -> Result<(), TxError> {
        match self.never {}
    }

    fn flush(&mut self) -> Result<(), IoError> {
        match self.never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_says_the_build_has_no_af_xdp() {
        for mode in [XdpMode::Auto, XdpMode::Native, XdpMode::Skb] {
            let opts = AfXdpOptions {
                mode,
                ..AfXdpOptions::default()
            };
            let e = open_af_xdp("veth0", &opts).unwrap_err();
            let text = e.to_string();
            assert!(text.contains(UNAVAILABLE), "{text}");
            assert!(text.contains("veth0"), "names the interface: {text}");
            assert_eq!(e.raw_os_error(), None);
        }
    }
}
