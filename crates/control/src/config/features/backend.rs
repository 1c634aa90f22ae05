//! The I/O backend of a port, whole: `backend = "af_packet" | "af_xdp"` on a
//! `[[host.port]]` and `[host.uplink_backend]` — its model, the names the
//! configuration and the API use, and its conversion. Which backend a port opens
//! with (and the fallback to AF_PACKET) is the daemon's.
//!
//! Invariant: every name [`Backend::name`] gives is one [`Backend::from_name`]
//! accepts, and the other way round.

use crate::config::value::Converter;

// ---- model --------------------------------------------------------------------------

/// How the switch receives and sends a port's frames (`backend = "af_packet" |
/// "af_xdp"` on a `[[host.port]]`, or under `[host.uplink_backend]`). The daemon falls
/// back to AF_PACKET, with a warning, when AF_XDP cannot be opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An AF_PACKET socket with TPACKET_V2 rings (offloads through virtio-net headers).
    #[default]
    AfPacket,
    /// An AF_XDP socket (copy mode) fed by an XDP program on the interface.
    AfXdp,
}

impl Backend {
    /// Every backend, in the order the documentation lists them.
    pub const ALL: [Backend; 2] = [Backend::AfPacket, Backend::AfXdp];

    /// The name used in the configuration and the API.
    pub fn name(self) -> &'static str {
        match self {
            Backend::AfPacket => "af_packet",
            Backend::AfXdp => "af_xdp",
        }
    }

    /// The backend of a configuration name.
    pub fn from_name(name: &str) -> Option<Backend> {
        Backend::ALL.into_iter().find(|b| b.name() == name)
    }
}

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// A `backend` name at `key`.
    pub(crate) fn backend(&mut self, key: &str, name: &str) -> Option<Backend> {
        let b = Backend::from_name(name);
        if b.is_none() {
            let names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
            self.error(
                key,
                format!(
                    "unknown I/O backend {name:?}; backends: {}",
                    names.join(", ")
                ),
            );
        }
        b
    }
}
