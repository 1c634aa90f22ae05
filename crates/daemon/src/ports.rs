//! Ports and what they are attached to: opening a port's I/O, probing its link,
//! reopening it when its interface comes back, creating (and undoing) TAPs, and
//! the backend actually in use per port.
//!
//! A port is attached to an [`Attachment`]: today an existing interface (opened
//! with AF_XDP or AF_PACKET), a persistent TAP the daemon creates, or an in-memory
//! queue pair (tests). The opened queues ([`PortIo`]) carry the backend they were
//! opened with ([`BackendInUse`]), so that the port view reports what runs rather
//! than what was asked for.
//!
//! Invariant: this module holds no process-wide state. What is open belongs to
//! the [`PortIo`] that the data-plane thread owns; a TAP created here is removed
//! again unless its [`CreatedTaps`] is told to keep it.

use portcullis_control::config::Backend;
use portcullis_control::{CompiledConfig, ConfigError, ConfigErrors};
use portcullis_dataplane::{PortId, PortRole, Switch, Timestamp};
use portcullis_io::{RxQueue, TxQueue};

/// One port's queues, and the backend they were opened with.
pub struct PortIo {
    pub rx: Box<dyn RxQueue>,
    pub tx: Box<dyn TxQueue>,
    /// `None` for queues that are not on an interface (in-memory ports).
    pub in_use: Option<BackendInUse>,
}

impl PortIo {
    /// Queues that are not on an interface (in-memory, tests).
    pub fn new(rx: Box<dyn RxQueue>, tx: Box<dyn TxQueue>) -> Self {
        Self {
            rx,
            tx,
            in_use: None,
        }
    }

    /// A fresh in-memory queue pair, whose handle is dropped: a placeholder for a
    /// port that waits for its interface.
    pub fn placeholder() -> Self {
        let (rx, tx, _) = portcullis_io::memory_port();
        Self::new(Box::new(rx), Box::new(tx))
    }
}

impl std::fmt::Debug for PortIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PortIo").field("fd", &self.rx.fd()).finish()
    }
}

/// The backend a port's interface was opened with: AF_XDP may have fallen back to
/// AF_PACKET. For AF_XDP, how the kernel runs the socket: "native, copy" (veth),
/// "native, zero-copy" (a NIC whose driver supports it) or "skb, copy".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendInUse {
    /// For a port on an interface; AF_PACKET (unused) on a vhost-user port.
    pub backend: Backend,
    pub xdp_mode: Option<&'static str>,
    /// A vhost-user port: no interface, the guest's rings served from a socket.
    pub vhost_user: bool,
}

impl BackendInUse {
    /// A vhost-user port's.
    pub const VHOST_USER: BackendInUse = BackendInUse {
        backend: Backend::AfPacket,
        xdp_mode: None,
        vhost_user: true,
    };

    /// The name the port view shows: the backend's, or "vhost_user".
    pub fn name(&self) -> &'static str {
        if self.vhost_user {
            "vhost_user"
        } else {
            self.backend.name()
        }
    }
}

/// What the runtime can learn about, and do with, a port's interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    Up,
    Down,
    /// The interface no longer exists (a VM stopped, a container went away).
    Gone,
}

/// The interfaces behind the ports: probed when poll(2) flags an error, and reopened
/// when an interface that went away comes back.
pub trait PortLinks: Send {
    fn state(&self, port: usize) -> LinkState;
    fn reopen(&self, port: usize) -> Result<PortIo, String>;
}

/// What a port is attached to. A cluster-owned remote port would be a further
/// variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// An existing network interface, opened with `backend` (AF_XDP falls back to
    /// AF_PACKET).
    Netdev { ifname: String, backend: Backend },
    /// A persistent TAP the daemon creates if it is missing, then opens like a
    /// netdev.
    Tap { ifname: String, backend: Backend },
    /// An in-memory queue pair (tests, `start_in_memory`); `ifname` only labels it.
    Memory { ifname: String },
    /// The overlay's tunnel port: a UDP socket on the underlay (`ifname`: the
    /// underlay interface, or empty for any).
    Overlay {
        ifname: String,
        options: portcullis_io::VxlanOptions,
    },
    /// A vhost-user socket (`vhost_user`): a QEMU guest's virtio-net rings served
    /// by the switch. No interface (`interface()` is ""): always up for the
    /// runtime; the frontend connects, disconnects and reconnects inside the port.
    VhostUser {
        options: portcullis_io::VhostUserOptions,
    },
}

impl Attachment {
    /// Each port's attachment, in port order: memory queues for an in-memory
    /// daemon, else as the configuration binds the port.
    pub fn of(compiled: &CompiledConfig, in_memory: bool) -> Vec<Attachment> {
        compiled
            .interfaces
            .iter()
            .zip(&compiled.create_tap)
            .zip(&compiled.backends)
            .zip(&compiled.spec.ports)
            .zip(&compiled.vhost_user)
            .map(|((((ifname, tap), backend), port), vhost_user)| {
                let (ifname, backend) = (ifname.clone(), *backend);
                if let (false, Some(v)) = (in_memory, vhost_user) {
                    return Attachment::VhostUser {
                        options: vhost_user_options(v),
                    };
                }
                if let (false, PortRole::Overlay, Some(o)) =
                    (in_memory, port.role, &compiled.spec.overlay)
                {
                    return Attachment::Overlay {
                        ifname: o.interface.clone().unwrap_or_default(),
                        options: portcullis_io::VxlanOptions {
                            local: std::net::SocketAddr::new(o.local_ip, o.udp_port),
                            interface: o.interface.clone(),
                            fragment: o.fragment,
                        },
                    };
                }
                match (in_memory, tap) {
                    (true, _) => Attachment::Memory { ifname },
                    (false, true) => Attachment::Tap { ifname, backend },
                    (false, false) => Attachment::Netdev { ifname, backend },
                }
            })
            .collect()
    }

    /// The interface name (the label, for memory queues).
    pub fn interface(&self) -> &str {
        match self {
            Attachment::Netdev { ifname, .. }
            | Attachment::Tap { ifname, .. }
            | Attachment::Memory { ifname }
            | Attachment::Overlay { ifname, .. } => ifname,
            Attachment::VhostUser { .. } => "",
        }
    }

    /// Whether a port attached to `self` can keep the I/O it has on `other`: the
    /// same interface (a change of backend alone takes effect when the interface
    /// is next reopened).
    pub fn keeps_io_of(&self, other: &Attachment) -> bool {
        match (self, other) {
            (Attachment::Overlay { .. } | Attachment::VhostUser { .. }, _)
            | (_, Attachment::Overlay { .. } | Attachment::VhostUser { .. }) => self == other,
            _ => self.interface() == other.interface(),
        }
    }

    /// Opens the port `port` on this attachment (creating its TAP if configured and
    /// missing; `created` removes it again unless the start or apply completes).
    /// Memory queues come with the handle that injects and collects their frames.
    pub fn open(
        &self,
        port: &str,
        created: &mut CreatedTaps,
    ) -> Result<(PortIo, Option<portcullis_io::MemoryHandle>), PortError> {
        let (ifname, backend) = match self {
            Attachment::Memory { .. } => {
                let (rx, tx, h) = portcullis_io::memory_port();
                return Ok((PortIo::new(Box::new(rx), Box::new(tx)), Some(h)));
            }
            Attachment::Overlay { ifname, options } => {
                let (rx, tx) = portcullis_io::open_vxlan(options).map_err(|source| PortError {
                    port: port.to_string(),
                    interface: ifname.clone(),
                    source,
                })?;
                tracing::info!(port, local = %options.local, "overlay tunnel endpoint open");
                return Ok((PortIo::new(Box::new(rx), Box::new(tx)), None));
            }
            Attachment::VhostUser { options } => {
                let (rx, tx) =
                    portcullis_io::open_vhost_user(port, options).map_err(|source| PortError {
                        port: port.to_string(),
                        interface: options.socket.display().to_string(),
                        source,
                    })?;
                tracing::info!(port, socket = %options.socket.display(), mode = ?options.mode, "vhost-user port open");
                let io = PortIo {
                    rx: Box::new(rx),
                    tx: Box::new(tx),
                    in_use: Some(BackendInUse::VHOST_USER),
                };
                return Ok((io, None));
            }
            Attachment::Netdev { ifname, backend } | Attachment::Tap { ifname, backend } => {
                (ifname.as_str(), *backend)
            }
        };
        let port_err = |source| PortError {
            port: port.to_string(),
            interface: ifname.to_string(),
            source,
        };
        if matches!(self, Attachment::Tap { .. }) && !portcullis_io::interface_exists(ifname) {
            portcullis_io::create_persistent_tap(ifname, None).map_err(port_err)?;
            created.0.push(ifname.to_string());
            tracing::info!(port, interface = %ifname, "created persistent TAP");
        }
        portcullis_io::set_link_up(ifname).map_err(port_err)?;
        let io = open_io(port, ifname, backend).map_err(port_err)?;
        Ok((io, None))
    }
}

/// The I/O backend's options for a configured vhost-user socket.
fn vhost_user_options(
    v: &portcullis_control::config::VhostUser,
) -> portcullis_io::VhostUserOptions {
    use portcullis_control::config::VhostUserMode as M;
    portcullis_io::VhostUserOptions {
        socket: v.socket.clone().into(),
        mode: match v.mode {
            M::Server => portcullis_io::VhostUserMode::Server,
            M::Client => portcullis_io::VhostUserMode::Client,
        },
    }
}

/// A port that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open port {port:?} on interface {interface:?}: {source}")]
pub struct PortError {
    pub port: String,
    pub interface: String,
    pub source: portcullis_io::IoError,
}

/// What each port is attached to, as its views show it (`interface`): its
/// interface, or a vhost-user port's socket path.
pub fn port_labels(compiled: &CompiledConfig) -> Vec<String> {
    compiled
        .interfaces
        .iter()
        .zip(&compiled.vhost_user)
        .map(|(ifname, v)| match v {
            Some(v) => v.socket.clone(),
            None => ifname.clone(),
        })
        .collect()
}

/// Every interface must exist (or be a TAP the daemon may create), each missing one
/// a located error.
pub(crate) fn check_interfaces(
    config: &portcullis_control::Config,
    compiled: &CompiledConfig,
) -> Result<(), ConfigErrors> {
    let missing: Vec<ConfigError> = compiled
        .interfaces
        .iter()
        .zip(&compiled.interface_keys)
        .zip(&compiled.create_tap)
        .filter(|((ifname, _), tap)| {
            // "": the overlay's endpoint on any interface.
            !**tap && !ifname.is_empty() && !portcullis_io::interface_exists(ifname)
        })
        .map(|((ifname, key), _)| {
            config.error_at(
                key,
                format!("interface {ifname:?} does not exist on this host"),
            )
        })
        .collect();
    match ConfigErrors::from_vec(missing) {
        Some(errors) => Err(errors),
        None => Ok(()),
    }
}

/// How an AF_XDP socket runs, for the port view.
fn xdp_mode_name(mode: portcullis_io::XdpMode, bind: portcullis_io::XdpBindMode) -> &'static str {
    use portcullis_io::{XdpBindMode, XdpMode};
    match (mode, bind) {
        (XdpMode::Skb, XdpBindMode::ZeroCopy) => "skb, zero-copy",
        (XdpMode::Skb, XdpBindMode::Copy) => "skb, copy",
        (_, XdpBindMode::ZeroCopy) => "native, zero-copy",
        (_, XdpBindMode::Copy) => "native, copy",
    }
}

/// Opens `ifname` with `backend`. AF_XDP that cannot be opened (old kernel, no
/// permission, a driver that refuses, another XDP program on the interface) falls
/// back to AF_PACKET with a warning; the backend used goes with the queues.
fn open_io(port: &str, ifname: &str, backend: Backend) -> Result<PortIo, portcullis_io::IoError> {
    if backend == Backend::AfXdp {
        match portcullis_io::open_af_xdp(ifname, &portcullis_io::AfXdpOptions::default()) {
            Ok((rx, tx)) => {
                let xdp = xdp_mode_name(rx.mode(), rx.xdp_bind_mode());
                tracing::info!(port, interface = %ifname, mode = xdp, "port on AF_XDP");
                return Ok(PortIo {
                    rx: Box::new(rx),
                    tx: Box::new(tx),
                    in_use: Some(BackendInUse {
                        backend: Backend::AfXdp,
                        xdp_mode: Some(xdp),
                        vhost_user: false,
                    }),
                });
            }
            Err(e) => tracing::warn!(
                port,
                interface = %ifname,
                error = %e,
                "AF_XDP cannot be opened; falling back to AF_PACKET"
            ),
        }
    }
    // The interface first: a missing one is reported as such, and costs no rings.
    portcullis_io::interface_index(ifname)?;
    let rings = match spare_rings::take() {
        Some(r) => r,
        None => portcullis_io::AfPacketRings::new(&Default::default(), ifname)?,
    };
    let (rx, tx) = rings.bind(ifname)?;
    Ok(PortIo {
        rx: Box::new(rx),
        tx: Box::new(tx),
        in_use: Some(BackendInUse {
            backend: Backend::AfPacket,
            xdp_mode: None,
            vhost_user: false,
        }),
    })
}

/// AF_PACKET sockets with their rings made ahead of time: the slow half of opening a
/// port (each ring's setup waits for a kernel RCU grace period, ~30 ms for the two),
/// so that a port added at run time — a VM's TAP, a container's veth — opens in the
/// fast half (a bind). One is kept (4.5 MiB of ring), made when the first port opens
/// and again in the background after each one is taken.
///
/// Invariant: a spare is never bound before it is taken, and each is taken once.
mod spare_rings {
    use portcullis_io::AfPacketRings;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Spares kept ready.
    const KEEP: usize = 1;

    static SPARES: Mutex<Vec<AfPacketRings>> = Mutex::new(Vec::new());
    static REFILLING: AtomicBool = AtomicBool::new(false);

    /// A spare, if one is ready; a new one is made in the background either way.
    pub(super) fn take() -> Option<AfPacketRings> {
        let spare = SPARES.lock().ok().and_then(|mut s| s.pop());
        refill();
        spare
    }

    fn refill() {
        if REFILLING.swap(true, Ordering::AcqRel) {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("portcullis-rings".into())
            .spawn(|| {
                loop {
                    let have = SPARES.lock().map(|s| s.len()).unwrap_or(KEEP);
                    if have >= KEEP {
                        break;
                    }
                    match AfPacketRings::new(&Default::default(), "(spare)") {
                        Ok(r) => {
                            if let Ok(mut s) = SPARES.lock() {
                                s.push(r);
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "no spare AF_PACKET rings");
                            break;
                        }
                    }
                }
                REFILLING.store(false, Ordering::Release);
            });
        if spawned.is_err() {
            REFILLING.store(false, Ordering::Release);
        }
    }
}

/// Ports on an interface without carrier start link-down: an uplink (teaming uses
/// the others), a guest's TAP that no VM holds yet, a veth whose peer is down.
pub(crate) fn initial_carrier(
    switch: &mut Switch,
    attachments: &[Attachment],
    ports: impl Iterator<Item = usize>,
) {
    for i in ports {
        let Some(a) = attachments.get(i).filter(|_| i < switch.ports().len()) else {
            continue;
        };
        if !matches!(a, Attachment::Memory { .. } | Attachment::VhostUser { .. })
            && !portcullis_io::is_link_running(a.interface()).unwrap_or(true)
        {
            let _ = switch.set_link_up(PortId(i as u16), false, Timestamp(0));
        }
    }
}

/// The carrier monitor for the ports on interfaces (uplink failover, guest link
/// state): `None`, with a warning, if the kernel refuses the subscription.
pub(crate) fn link_monitor(
    c: &CompiledConfig,
    attachments: &[Attachment],
    present: Option<&std::collections::HashMap<String, u32>>,
) -> Option<(portcullis_io::LinkMonitor, Vec<(u32, PortId)>)> {
    let index_of = |ifname: &str| match present {
        Some(m) => m.get(ifname).copied(),
        None => portcullis_io::interface_index(ifname).ok(),
    };
    let watched: Vec<(u32, PortId)> = c
        .spec
        .ports
        .iter()
        .zip(attachments)
        .enumerate()
        .filter(|(_, (_, a))| {
            !matches!(a, Attachment::Memory { .. } | Attachment::VhostUser { .. })
        })
        .filter_map(|(i, (_, a))| Some((index_of(a.interface())?, PortId(i as u16))))
        .collect();
    // Opened for any port on an interface, even one that does not exist yet: its
    // appearance is what attaches a waiting port.
    if attachments
        .iter()
        .all(|a| matches!(a, Attachment::Memory { .. } | Attachment::VhostUser { .. }))
    {
        return None;
    }
    match portcullis_io::LinkMonitor::open() {
        Ok(m) => Some((m, watched)),
        Err(e) => {
            tracing::warn!(error = %e, "no link-state notifications: link changes seen only on socket errors and rechecks");
            None
        }
    }
}

/// The links of `c`'s ports on `attachments`.
pub(crate) fn links(c: &CompiledConfig, attachments: &[Attachment]) -> Box<dyn PortLinks> {
    Box::new(AttachedLinks {
        attachments: attachments.to_vec(),
        names: c.spec.ports.iter().map(|p| p.name.clone()).collect(),
    })
}

/// Ports probed and reopened through their attachment: interfaces by name, with
/// the backend the configuration asks for; memory queues are always up and never
/// go away.
struct AttachedLinks {
    attachments: Vec<Attachment>,
    /// Port names, for the logs.
    names: Vec<String>,
}

impl PortLinks for AttachedLinks {
    fn state(&self, port: usize) -> LinkState {
        let a = &self.attachments[port];
        if matches!(a, Attachment::Memory { .. } | Attachment::VhostUser { .. })
            || a.interface().is_empty()
        {
            return LinkState::Up;
        }
        // Up only with carrier, whatever the role: a pulled cable fails an uplink
        // over; a TAP no VM holds, or a veth whose peer is down, carries nothing.
        let name = a.interface();
        match portcullis_io::is_link_running(name) {
            Ok(true) => LinkState::Up,
            Ok(false) => LinkState::Down,
            Err(_) if !portcullis_io::interface_exists(name) => LinkState::Gone,
            Err(_) => LinkState::Down,
        }
    }

    fn reopen(&self, port: usize) -> Result<PortIo, String> {
        let (name, backend) = match &self.attachments[port] {
            Attachment::Memory { .. } => return Err("memory ports do not go away".into()),
            Attachment::Overlay { options, .. } => {
                let (rx, tx) = portcullis_io::open_vxlan(options).map_err(|e| e.to_string())?;
                return Ok(PortIo::new(Box::new(rx), Box::new(tx)));
            }
            Attachment::VhostUser { options } => {
                let port_name = self.names.get(port).map_or("", String::as_str);
                let (rx, tx) = portcullis_io::open_vhost_user(port_name, options)
                    .map_err(|e| e.to_string())?;
                return Ok(PortIo {
                    rx: Box::new(rx),
                    tx: Box::new(tx),
                    in_use: Some(BackendInUse::VHOST_USER),
                });
            }
            Attachment::Netdev { ifname, backend } | Attachment::Tap { ifname, backend } => {
                (ifname, *backend)
            }
        };
        portcullis_io::set_link_up(name).map_err(|e| e.to_string())?;
        let port_name = self.names.get(port).map_or("", String::as_str);
        open_io(port_name, name, backend).map_err(|e| e.to_string())
    }
}

/// TAPs created by a start (or apply) that has not finished: removed if it fails,
/// so that nothing is left half-started.
#[derive(Debug, Default)]
pub struct CreatedTaps(Vec<String>);

impl CreatedTaps {
    /// The start or apply completed: the TAPs stay.
    pub fn keep(&mut self) {
        self.0.clear();
    }

    /// The TAPs created so far.
    #[cfg(test)]
    pub(crate) fn names(&self) -> &[String] {
        &self.0
    }
}

impl Drop for CreatedTaps {
    fn drop(&mut self) {
        for t in &self.0 {
            if let Err(e) = portcullis_io::delete_persistent_tap(t) {
                tracing::warn!(interface = %t, error = %e, "cannot remove a TAP of a failed start");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled() -> CompiledConfig {
        let text = "[switch]\nname = \"p\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n[[host.port]]\nname = \"vm1\"\ninterface = \"if1\"\nport_group = \"web\"\n\n[[host.port]]\nname = \"vm2\"\ninterface = \"tap2\"\nport_group = \"web\"\ntap = true\nbackend = \"af_xdp\"\n";
        portcullis_control::parse_str(text, "p.toml", None)
            .expect("valid")
            .compile()
            .expect("compiles")
    }

    #[test]
    fn attachments_follow_the_configuration_or_are_memory_queues() {
        let c = compiled();
        assert_eq!(
            Attachment::of(&c, false),
            vec![
                Attachment::Netdev {
                    ifname: "if1".into(),
                    backend: Backend::AfPacket
                },
                Attachment::Tap {
                    ifname: "tap2".into(),
                    backend: Backend::AfXdp
                },
            ]
        );
        assert_eq!(
            Attachment::of(&c, true),
            vec![
                Attachment::Memory {
                    ifname: "if1".into()
                },
                Attachment::Memory {
                    ifname: "tap2".into()
                },
            ]
        );
    }

    #[test]
    fn a_vhost_user_port_is_attached_to_its_socket_and_always_up() {
        let text = "[switch]\nname = \"p\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n[[host.port]]\nname = \"vm9\"\nvhost_user = { socket = \"/tmp/pcl-vu-unit.sock\" }\nport_group = \"web\"\n";
        let c = portcullis_control::parse_str(text, "p.toml", None)
            .expect("valid")
            .compile()
            .expect("compiles");
        let a = Attachment::of(&c, false);
        let options = portcullis_io::VhostUserOptions {
            socket: "/tmp/pcl-vu-unit.sock".into(),
            mode: portcullis_io::VhostUserMode::Server,
        };
        assert_eq!(a, vec![Attachment::VhostUser { options }]);
        assert!(matches!(
            Attachment::of(&c, true)[0],
            Attachment::Memory { .. }
        ));
        assert_eq!(links(&c, &a).state(0), LinkState::Up);
        let other = Attachment::VhostUser {
            options: portcullis_io::VhostUserOptions {
                socket: "/tmp/other.sock".into(),
                mode: portcullis_io::VhostUserMode::Server,
            },
        };
        assert!(a[0].keeps_io_of(&a[0].clone()));
        assert!(!a[0].keeps_io_of(&other));
        let mut created = CreatedTaps::default();
        let (io, handle) = a[0].open("vm9", &mut created).expect("socket bound");
        assert!(handle.is_none() && io.rx.fd().is_some());
        assert_eq!(io.in_use.map(|u| u.name()), Some("vhost_user"));
        assert!(std::path::Path::new("/tmp/pcl-vu-unit.sock").exists());
        drop(io);
        assert!(
            !std::path::Path::new("/tmp/pcl-vu-unit.sock").exists(),
            "removed"
        );
    }

    #[test]
    fn io_is_kept_on_the_same_interface_whatever_the_backend() {
        let a = Attachment::Netdev {
            ifname: "if1".into(),
            backend: Backend::AfPacket,
        };
        let b = Attachment::Tap {
            ifname: "if1".into(),
            backend: Backend::AfXdp,
        };
        let c = Attachment::Netdev {
            ifname: "if2".into(),
            backend: Backend::AfPacket,
        };
        assert!(a.keeps_io_of(&b));
        assert!(!a.keeps_io_of(&c));
    }

    #[test]
    fn memory_ports_are_always_up_never_reopened_and_have_no_backend() {
        let c = compiled();
        let attachments = Attachment::of(&c, true);
        let links = links(&c, &attachments);
        assert_eq!(links.state(0), LinkState::Up);
        assert!(links.reopen(1).is_err());
        let mut created = CreatedTaps::default();
        let (io, handle) = attachments[0].open("vm1", &mut created).expect("memory");
        assert!(io.in_use.is_none(), "reported as memory");
        assert!(handle.is_some());
        assert!(created.names().is_empty());
    }
}
