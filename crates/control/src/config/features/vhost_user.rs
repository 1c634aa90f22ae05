//! A vhost-user port, whole: `vhost_user = { socket = PATH, mode = "server" |
//! "client" }` on a `[[host.port]]` instead of `interface` — its raw shape, model and
//! conversion. The socket is served by the daemon's vhost-user backend
//! (`portcullis_io::vhost_user`, docs/vhost-user.md).
//!
//! Invariant: a configuration that converts without errors has absolute socket
//! paths; every mode name
//! [`VhostUserMode::name`] gives is one [`VhostUserMode::from_name`] accepts.

use crate::config::value::Converter;
use serde::Deserialize;

// ---- raw ----------------------------------------------------------------------------

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVhostUser {
    pub socket: String,
    pub mode: Option<String>,
}

// ---- model --------------------------------------------------------------------------

/// Who connects to whom on a vhost-user socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum VhostUserMode {
    /// The switch listens, QEMU connects (`-chardev socket,path=…`).
    #[default]
    Server,
    /// QEMU listens (`-chardev socket,path=…,server=on`), the switch connects.
    Client,
}

impl VhostUserMode {
    /// Every mode, in documentation order.
    pub const ALL: [VhostUserMode; 2] = [VhostUserMode::Server, VhostUserMode::Client];

    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            VhostUserMode::Server => "server",
            VhostUserMode::Client => "client",
        }
    }

    /// The mode of a configuration name.
    pub fn from_name(name: &str) -> Option<VhostUserMode> {
        VhostUserMode::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// A port's vhost-user socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VhostUser {
    /// The Unix socket's absolute path.
    pub socket: String,
    /// Server (default) or client.
    pub mode: VhostUserMode,
}

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `vhost_user` at `key` (`host.port[i].vhost_user`).
    pub(crate) fn vhost_user(&mut self, key: &str, raw: RawVhostUser) -> VhostUser {
        let mode = match raw.mode.as_deref() {
            None => Some(VhostUserMode::Server),
            Some(m) => {
                let mode = VhostUserMode::from_name(m);
                if mode.is_none() {
                    self.error(
                        &format!("{key}.mode"),
                        format!("unknown vhost-user mode {m:?}; modes: server, client"),
                    );
                }
                mode
            }
        };
        let socket_ok = raw.socket.starts_with('/') && !raw.socket.contains('\0');
        if !socket_ok {
            self.error(
                &format!("{key}.socket"),
                format!(
                    "the vhost-user socket must be an absolute path, not {:?}",
                    raw.socket
                ),
            );
        }
        // Made even when refused (the errors are reported): the port still has no
        // interface to check.
        VhostUser {
            socket: raw.socket,
            mode: mode.unwrap_or_default(),
        }
    }
}
