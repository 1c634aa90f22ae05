//! The running daemon's state that an apply changes besides the switch: the
//! configuration it runs ([`Running`]), the TCP listeners (API over TLS, metrics)
//! it opens, moves and closes, the control socket's mode and group, and the audit
//! log's syslog copy.
//!
//! Invariant: one `Running` per daemon, behind the API's `running` lock: whoever
//! holds the lock is the only one changing the configuration or the listeners.

use crate::{conns, metrics, sticky_store, tls, unix_users};
use portcullis_control::CompiledConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The running configuration, as the API's apply and export see it.
#[derive(Debug)]
pub struct Running {
    pub config: portcullis_control::Config,
    pub compiled: CompiledConfig,
    /// Sticky MACs (restored into every configuration applied).
    pub store: Arc<sticky_store::StickyMacStore>,
    /// The data plane's clock.
    pub clock: crate::runtime::SwitchClock,
    /// The daemon's own user (always admin, like root).
    pub owner_uid: u32,
    /// Ports are in-memory queues (tests): no interfaces to check or open.
    pub in_memory: bool,
    /// The control socket (its mode and group follow `[host.management]`); `None`
    /// without one (in-memory daemons).
    pub socket: Option<PathBuf>,
    /// The TCP listeners an apply opens, moves and closes; `None` in-memory.
    pub(crate) listeners: Option<TcpListeners>,
    /// Where an apply saves the configuration it applied (`running_config.rs`).
    pub persist: crate::running_config::Persist,
    /// The runtime ports that run, after the configured ones (`runtime_ports.rs`):
    /// `compiled` is `config` with them.
    pub runtime_ports: crate::runtime_ports::RuntimePorts,
    /// Bindings of removed runtime ports, waiting for them to come back.
    pub parked: crate::runtime_ports::ParkedBindings,
}

/// The TCP listeners — the API over TLS and the metrics endpoint — as an apply
/// changes them: each runs until its stop sender is dropped or the daemon stops.
pub(crate) struct TcpListeners {
    app: axum::Router,
    tls_cap: usize,
    commands: crate::runtime::CommandSender,
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
        commands: crate::runtime::CommandSender,
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
        let address = listener.local_addr().ok().map(tracing::field::display);
        tracing::info!(address, "control API on TCP+TLS");
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
        let address = listener.local_addr().ok().map(tracing::field::display);
        tracing::info!(address, "Prometheus metrics on /metrics");
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
    tokio::net::TcpListener::from_std(bind_std(addr)?)
}

/// A non-blocking TCP listener on `addr`, to hand to the control runtime later.
fn bind_std(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What a start or an apply does to one TCP listener.
enum Move<T> {
    Keep,
    Stop,
    /// Serve on `addr`: on `listener`, bound already, or — when the address is the
    /// running listener's — bound once that one is closed.
    Start {
        addr: std::net::SocketAddr,
        listener: Option<std::net::TcpListener>,
        with: T,
    },
}

/// What a start or an apply does to the TCP listeners.
pub(crate) struct ListenerPlan {
    tls: Move<Arc<rustls::ServerConfig>>,
    metrics: Move<()>,
}

/// Why the listeners cannot change as configured.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ListenerError {
    /// The TLS files cannot be read or used.
    #[error("{0}")]
    Tls(String),
    #[error("cannot listen on {addr} for {what}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
}

impl ListenerPlan {
    /// The listener changes from `old` (`None`: none running, at start) to `new`:
    /// TLS files read and new addresses bound now, so that a failure refuses the
    /// start or apply before anything changes. Blocks (file reads).
    pub(crate) fn new(
        old: Option<&portcullis_control::config::Management>,
        new: &portcullis_control::config::Management,
    ) -> Result<ListenerPlan, ListenerError> {
        let (old_tcp, old_tls, old_metrics) = old.map_or((None, None, None), |o| {
            (o.tcp_listen, o.tls.as_ref(), o.metrics_listen)
        });
        let bind = |addr, running: Option<std::net::SocketAddr>, what| {
            if running == Some(addr) {
                return Ok(None);
            }
            bind_std(addr)
                .map(Some)
                .map_err(|source| ListenerError::Bind { addr, what, source })
        };
        let tls = if old_tcp == new.tcp_listen && old_tls == new.tls.as_ref() {
            Move::Keep
        } else {
            match (new.tcp_listen, &new.tls) {
                (Some(addr), Some(files)) => {
                    let with =
                        tls::server_config(&files.cert, &files.key).map_err(ListenerError::Tls)?;
                    let listener = bind(addr, old_tcp, "the API over TLS")?;
                    Move::Start {
                        addr,
                        listener,
                        with,
                    }
                }
                _ => Move::Stop,
            }
        };
        let metrics = match new.metrics_listen {
            m if m == old_metrics => Move::Keep,
            None => Move::Stop,
            Some(addr) => Move::Start {
                addr,
                listener: bind(addr, old_metrics, "the metrics")?,
                with: (),
            },
        };
        Ok(ListenerPlan { tls, metrics })
    }
}

impl TcpListeners {
    /// Stops, moves and starts the TCP listeners as planned. A listener that keeps its
    /// address but changes otherwise (new TLS files) is rebound once the old one has
    /// closed; if that fails the listener stays off, and `notes` say so. Must run
    /// inside the control runtime.
    pub(crate) async fn change(&mut self, plan: ListenerPlan, notes: &mut Vec<String>) {
        match plan.tls {
            Move::Keep => {}
            Move::Stop => self.stop_tls(),
            Move::Start {
                addr,
                listener,
                with,
            } => {
                self.stop_tls();
                match rebound(addr, listener).await {
                    Ok(l) => self.serve_tls(l, with),
                    Err(e) => notes.push(format!(
                        "the API over TLS is off: cannot listen on {addr}: {e}"
                    )),
                }
            }
        }
        match plan.metrics {
            Move::Keep => {}
            Move::Stop => self.stop_metrics(),
            Move::Start { addr, listener, .. } => {
                self.stop_metrics();
                match rebound(addr, listener).await {
                    Ok(l) => self.serve_metrics(l),
                    Err(e) => notes.push(format!(
                        "the metrics endpoint is off: cannot listen on {addr}: {e}"
                    )),
                }
            }
        }
    }
}

/// `listener`, or a new one on `addr` once the listener that held it has closed
/// (its task closes it as soon as it runs: within a second).
async fn rebound(
    addr: std::net::SocketAddr,
    listener: Option<std::net::TcpListener>,
) -> std::io::Result<tokio::net::TcpListener> {
    if let Some(l) = listener {
        return tokio::net::TcpListener::from_std(l);
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match bind_tcp(addr) {
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            r => return r,
        }
    }
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
            let dest = match &dest {
                SyslogDest::Unix(p) => p.display().to_string(),
                SyslogDest::Udp(a) => format!("udp://{a}"),
            };
            tracing::error!(error = %e, dest, "cannot forward audit records to syslog");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_control::config::Management;

    fn metrics_on(addr: Option<std::net::SocketAddr>) -> Management {
        Management {
            metrics_listen: addr,
            ..Management::default()
        }
    }

    #[test]
    fn from_nothing_running_a_configured_listener_is_bound_now() {
        let plan = ListenerPlan::new(None, &metrics_on(Some("127.0.0.1:0".parse().unwrap())))
            .expect("binds");
        assert!(matches!(plan.tls, Move::Keep), "no TLS configured");
        assert!(matches!(
            plan.metrics,
            Move::Start {
                listener: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn an_unchanged_listener_is_kept_a_removed_one_stopped_a_moved_one_rebound_later() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let old = metrics_on(Some(addr));
        let kept = ListenerPlan::new(Some(&old), &old).expect("nothing to bind");
        assert!(matches!(kept.metrics, Move::Keep));
        let stopped = ListenerPlan::new(Some(&old), &metrics_on(None)).expect("nothing to bind");
        assert!(matches!(stopped.metrics, Move::Stop));
        // A new address that is taken refuses the plan, before anything changes.
        let e = ListenerPlan::new(None, &old).err().expect("address in use");
        assert!(
            matches!(
                e,
                ListenerError::Bind {
                    what: "the metrics",
                    ..
                }
            ),
            "{e}"
        );
    }
}
