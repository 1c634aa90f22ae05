//! The running daemon's state that an apply changes besides the switch: the
//! configuration it runs ([`Running`]), the TCP listeners (API over TLS, metrics)
//! it opens, moves and closes, the control socket's mode and group, and the audit
//! log's syslog copy.
//!
//! Invariant: one `Running` per daemon, behind the API's `running` lock: whoever
//! holds the lock is the only one changing the configuration or the listeners.

use crate::runtime::Command;
use crate::{conns, metrics, store, tls, unix_users};
use portcullis_control::CompiledConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

/// The running configuration, as the API's apply and export see it.
#[derive(Debug)]
pub struct Running {
    pub config: portcullis_control::Config,
    pub compiled: CompiledConfig,
    /// Sticky MACs (restored into every configuration applied).
    pub store: Arc<store::StateStore>,
    /// The data plane's clock origin.
    pub epoch: std::time::Instant,
    /// The daemon's own user (always admin, like root).
    pub owner_uid: u32,
    /// Ports are in-memory queues (tests): no interfaces to check or open.
    pub in_memory: bool,
    /// The control socket (its mode and group follow `[host.management]`); `None`
    /// without one (in-memory daemons).
    pub socket: Option<PathBuf>,
    /// The TCP listeners an apply opens, moves and closes; `None` in-memory.
    pub(crate) listeners: Option<TcpListeners>,
}

/// The TCP listeners — the API over TLS and the metrics endpoint — as an apply
/// changes them: each runs until its stop sender is dropped or the daemon stops.
pub(crate) struct TcpListeners {
    app: axum::Router,
    tls_cap: usize,
    commands: mpsc::Sender<Command>,
    control: Arc<dyn Fn() -> metrics::ControlStats + Send + Sync>,
    daemon_stop: tokio::sync::watch::Receiver<bool>,
    tls: Option<tokio::sync::watch::Sender<()>>,
    metrics: Option<tokio::sync::watch::Sender<()>>,
}

impl std::fmt::Debug for TcpListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListeners")
            .field("tls", &self.tls.is_some())
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl TcpListeners {
    /// None serving yet: `app` and the metrics of `commands` and `control`, with
    /// `tls_cap` connections over TLS, until `daemon_stop` changes.
    pub(crate) fn new(
        app: axum::Router,
        tls_cap: usize,
        commands: mpsc::Sender<Command>,
        control: Arc<dyn Fn() -> metrics::ControlStats + Send + Sync>,
        daemon_stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            app,
            tls_cap,
            commands,
            control,
            daemon_stop,
            tls: None,
            metrics: None,
        }
    }

    /// A stop sender and the future that resolves when it is dropped or the
    /// daemon stops.
    fn stop_signal(
        &self,
    ) -> (
        tokio::sync::watch::Sender<()>,
        impl Future<Output = ()> + Send + 'static,
    ) {
        let (tx, mut own) = tokio::sync::watch::channel(());
        let mut daemon = self.daemon_stop.clone();
        let stop = async move {
            tokio::select! {
                _ = own.changed() => {}
                _ = daemon.changed() => {}
            }
        };
        (tx, stop)
    }

    /// Serves the API with TLS on `listener` (the one served before stops).
    /// Must run inside the control runtime.
    pub(crate) fn serve_tls(
        &mut self,
        listener: tokio::net::TcpListener,
        cfg: Arc<rustls::ServerConfig>,
    ) {
        let (tx, stop) = self.stop_signal();
        tracing::info!(address = ?listener.local_addr().ok(), "control API on TCP+TLS");
        let limits = conns::Limits::with_cap(self.tls_cap);
        tokio::spawn(tls::serve_tls_with(
            listener,
            cfg,
            self.app.clone(),
            limits,
            stop,
        ));
        self.tls = Some(tx);
    }

    /// Serves the metrics on `listener` (the one served before stops). Must run
    /// inside the control runtime.
    pub(crate) fn serve_metrics(&mut self, listener: tokio::net::TcpListener) {
        let (tx, stop) = self.stop_signal();
        tracing::info!(address = ?listener.local_addr().ok(), "Prometheus metrics on /metrics");
        tokio::spawn(metrics::serve(
            listener,
            self.commands.clone(),
            self.control.clone(),
            stop,
        ));
        self.metrics = Some(tx);
    }

    /// Stops the API over TLS (its open connections get the shutdown grace).
    pub(crate) fn stop_tls(&mut self) {
        self.tls = None;
    }

    /// Stops the metrics endpoint.
    pub(crate) fn stop_metrics(&mut self) {
        self.metrics = None;
    }
}

/// A non-blocking TCP listener on `addr`, for the control runtime (call inside it).
pub(crate) fn bind_tcp(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(l)
}

/// Gives the control socket its configured mode and group (`socket_mode`,
/// `socket_group`). The default group, `portcullis`, is used only if it exists
/// (else the socket keeps the daemon's group, with a warning: only root and the
/// daemon's user can connect); a group named in the configuration must exist.
pub(crate) fn socket_access(
    socket: &Path,
    m: &portcullis_control::config::Management,
) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let group = m
        .socket_group
        .as_deref()
        .unwrap_or(portcullis_control::config::DEFAULT_SOCKET_GROUP);
    match unix_users::group_id(group) {
        Some(gid) => match std::os::unix::fs::chown(socket, None, Some(gid)) {
            Ok(()) => {}
            Err(e) if m.socket_group.is_some() => {
                return Err(format!("cannot give it to group {group:?}: {e}"));
            }
            Err(e) => tracing::warn!(
                socket = %socket.display(),
                group,
                error = %e,
                "cannot give the control socket to its default group: only root and the daemon's user can connect"
            ),
        },
        None if m.socket_group.is_some() => {
            return Err(format!(
                "socket_group {group:?} does not exist on this host (create it with `groupadd --system {group}`)"
            ));
        }
        None => tracing::warn!(
            socket = %socket.display(),
            group,
            "the control socket's default group does not exist: only root and the daemon's user can connect (create it with `groupadd --system portcullis`, or set socket_group)"
        ),
    }
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(m.socket_mode()))
        .map_err(|e| format!("cannot set its mode {:04o}: {e}", m.socket_mode()))
}

/// The audit log's syslog copy, if configured (a socket that cannot be created is
/// logged and forwarding stays off: the local log is the record of truth).
pub(crate) fn syslog_forwarder(
    m: &portcullis_control::config::Management,
) -> Option<portcullis_control::syslog::SyslogForwarder> {
    use portcullis_control::config::SyslogTarget;
    use portcullis_control::syslog::{SyslogDest, SyslogForwarder};
    let dest = match m.audit_syslog.as_ref()? {
        SyslogTarget::Unix(p) => SyslogDest::Unix(p.clone()),
        SyslogTarget::Udp(a) => SyslogDest::Udp(*a),
    };
    match SyslogForwarder::new(&dest) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(error = %e, ?dest, "cannot forward audit records to syslog");
            None
        }
    }
}
