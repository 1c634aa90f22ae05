//! The Portcullis runtime: loads and checks the configuration, opens every port's
//! interface, runs the data-plane thread and serves the control API on a Unix
//! socket. `portcullis daemon` and `portcullis demo` both start it through
//! [`start`].
//!
//! Invariant: nothing is half-started. Every check (configuration, interfaces,
//! socket) happens before the first port is opened, a failure while opening ports
//! closes the ones already opened (RAII), and [`RunningDaemon::shutdown`] stops the
//! data-plane thread, the API and removes the socket.

pub mod api;
pub mod bindings_store;
pub mod client;
pub mod conns;
pub mod held;
pub mod metrics;
pub mod runtime;
pub mod snapshot;
pub mod store;
pub mod tls;
pub mod unix_users;

use api::{ApiState, EVENT_HISTORY, EventRecord};
use portcullis_control::CompiledConfig;
use portcullis_control::audit::{AuditError, AuditLog};
use portcullis_control::config::Backend;
use portcullis_control::rbac::Authorizer;
use portcullis_control::{ConfigError, ConfigErrors};
use portcullis_dataplane::{Event, Instant, PortId, Switch};
use runtime::{Command, DataPlane, LinkState, PortIo, PortLinks, ToControl};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::SystemTime;

/// Default control socket.
pub const DEFAULT_SOCKET: &str = "/run/portcullis/portcullis.sock";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/portcullis";

/// The audit log's file name in the state directory.
pub const AUDIT_LOG: &str = "audit.log";

/// How to start the daemon.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// The profile (and host binding, unless `host` is given).
    pub config: PathBuf,
    pub host: Option<PathBuf>,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
}

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

/// Why the daemon did not start.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(ConfigErrors),
    #[error("cannot open port {port:?} on interface {interface:?}: {source}")]
    Port {
        port: String,
        interface: String,
        source: portcullis_io::IoError,
    },
    #[error("another daemon is already serving {0}")]
    AlreadyRunning(PathBuf),
    #[error("cannot prepare {path}: {source}")]
    Fs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the data plane refused the configuration: {0}")]
    Spec(#[from] portcullis_dataplane::SpecError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Audit(#[from] AuditError),
    #[error("binding store: {0}")]
    Bindings(String),
    #[error("TLS for the API: {0}")]
    Tls(String),
    #[error("the control socket {path}: {message}")]
    SocketAccess { path: PathBuf, message: String },
    #[error(
        "the state directory {0} is world-writable: anyone could replace the audit log or the binding database; make it 0700 (chmod 0700 {0}) or choose another"
    )]
    InsecureStateDir(PathBuf),
}

/// A started daemon.
#[derive(Debug)]
pub struct RunningDaemon {
    stop: Arc<AtomicBool>,
    dataplane: Option<std::thread::JoinHandle<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    shutdown_api: Option<tokio::sync::watch::Sender<bool>>,
    socket: PathBuf,
    /// Port names in port-id order.
    pub port_names: Vec<String>,
}

fn fs_err(path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError + '_ {
    move |source| DaemonError::Fs {
        path: path.to_path_buf(),
        source,
    }
}

/// Loads the configuration, checks every interface, opens the ports and starts the
/// data plane and the API.
pub fn start(opts: &DaemonOptions) -> Result<RunningDaemon, DaemonError> {
    // First: a service manager's soft limit (1024) is too low to serve from.
    conns::raise_fd_limit();
    let (config, compiled) = portcullis_control::load_compiled(&opts.config, opts.host.as_deref())
        .map_err(DaemonError::Config)?;
    check_interfaces(&config, &compiled).map_err(DaemonError::Config)?;
    if let Some(dir) = opts.socket.parent() {
        std::fs::create_dir_all(dir).map_err(fs_err(dir))?;
    }
    if opts.socket.exists() {
        if std::os::unix::net::UnixStream::connect(&opts.socket).is_ok() {
            return Err(DaemonError::AlreadyRunning(opts.socket.clone()));
        }
        std::fs::remove_file(&opts.socket).map_err(fs_err(&opts.socket))?;
    }
    let tls = match (
        &config.host.management.tcp_listen,
        &config.host.management.tls,
    ) {
        (Some(addr), Some(files)) => Some((
            *addr,
            tls::server_config(&files.cert, &files.key).map_err(DaemonError::Tls)?,
        )),
        _ => None,
    };

    let mut created_taps = CreatedTaps::default();
    let mut ports = Vec::with_capacity(compiled.interfaces.len());
    for (((spec, ifname), tap), backend) in compiled
        .spec
        .ports
        .iter()
        .zip(&compiled.interfaces)
        .zip(&compiled.create_tap)
        .zip(&compiled.backends)
    {
        ports.push(open_port(spec, ifname, *tap, *backend, &mut created_taps)?);
    }
    let links = af_packet_links(&compiled);
    let monitor = uplink_monitor(&compiled);
    let runtime = control_runtime()?;
    let listener = {
        let _guard = runtime.enter();
        tokio::net::UnixListener::bind(&opts.socket).map_err(fs_err(&opts.socket))?
    };
    if let Err(message) = socket_access(&opts.socket, &config.host.management) {
        let _ = std::fs::remove_file(&opts.socket);
        return Err(DaemonError::SocketAccess {
            path: opts.socket.clone(),
            message,
        });
    }
    let tcp = match tls {
        Some((addr, cfg)) => {
            let _guard = runtime.enter();
            Some((bind_tcp(addr).map_err(DaemonError::Runtime)?, cfg))
        }
        None => None,
    };
    let metrics = match config.host.management.metrics_listen {
        Some(addr) => {
            let _guard = runtime.enter();
            Some(bind_tcp(addr).map_err(DaemonError::Runtime)?)
        }
        None => None,
    };
    let switch_name = compiled.spec.name.clone();
    let launched = launch(
        config,
        compiled,
        ports,
        links,
        monitor,
        &opts.state_dir,
        Some(&opts.socket),
        &runtime,
        true,
    )?;
    let app = api::router(launched.state.clone());
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    // The caps, from the descriptors left now that the ports and stores are open.
    let fd_limit = conns::raise_fd_limit();
    let caps = conns::caps(fd_limit, conns::open_fds());
    tracing::info!(
        fd_limit,
        unix = caps.unix,
        tls = caps.tls,
        "API connection caps"
    );
    {
        let mut rx = shutdown_rx.clone();
        runtime.spawn(conns::serve(
            conns::Listener::Unix(listener),
            app.clone(),
            conns::Limits::with_cap(caps.unix),
            async move {
                let _ = rx.changed().await;
            },
        ));
    }
    let st = launched.state.clone();
    let control: Arc<dyn Fn() -> metrics::ControlStats + Send + Sync> = Arc::new(move || {
        use std::sync::atomic::Ordering::Relaxed;
        let (audit_records, audit_forward_failures) = st
            .audit
            .lock()
            .map(|l| (l.last_seq(), l.forward_failures()))
            .unwrap_or_default();
        metrics::ControlStats {
            applies_ok: st.applies.ok.load(Relaxed),
            applies_failed: st.applies.failed.load(Relaxed),
            audit_records,
            audit_forward_failures,
        }
    });
    let mut tcp_listeners = TcpListeners {
        app,
        tls_cap: caps.tls,
        commands: launched.state.commands.clone(),
        control,
        daemon_stop: shutdown_rx.clone(),
        tls: None,
        metrics: None,
    };
    {
        let _guard = runtime.enter();
        if let Some((tcp, cfg)) = tcp {
            tcp_listeners.serve_tls(tcp, cfg);
        }
        if let Some(listener) = metrics {
            tcp_listeners.serve_metrics(listener);
        }
    }
    runtime.block_on(async {
        launched.state.running.lock().await.listeners = Some(tcp_listeners);
    });
    // Started: the TAPs stay (a VM keeps its NIC across switch restarts).
    created_taps.keep();
    tracing::info!(switch = %switch_name, ports = launched.port_names.len(), socket = %opts.socket.display(), "portcullis is switching");
    Ok(RunningDaemon {
        stop: launched.stop,
        dataplane: Some(launched.dataplane),
        runtime: Some(runtime),
        shutdown_api: Some(shutdown_tx),
        socket: opts.socket.clone(),
        port_names: launched.port_names,
    })
}

fn control_runtime() -> Result<tokio::runtime::Runtime, DaemonError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-ctl")
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)
}

/// A started data plane and the API state that drives it.
struct Launched {
    state: ApiState,
    stop: Arc<AtomicBool>,
    dataplane: std::thread::JoinHandle<()>,
    port_names: Vec<String>,
}

/// Opens the state (sticky MACs, bindings, audit log), builds the switch, starts the
/// data-plane thread on `ports` and the event task; returns the API's state.
#[allow(clippy::too_many_arguments)]
fn launch(
    config: portcullis_control::Config,
    mut compiled: CompiledConfig,
    ports: Vec<PortIo>,
    links: Box<dyn PortLinks>,
    link_monitor: Option<(portcullis_io::LinkMonitor, Vec<(u32, PortId)>)>,
    state_dir: &Path,
    socket: Option<&Path>,
    runtime: &tokio::runtime::Runtime,
    probe_carrier: bool,
) -> Result<Launched, DaemonError> {
    prepare_state_dir(state_dir)?;
    let store = Arc::new(store::StateStore::open(state_dir)?);
    let mut audit_log = AuditLog::open(&state_dir.join(AUDIT_LOG))?;
    audit_log.set_forward(syslog_forwarder(&config.host.management));
    let audit = Arc::new(Mutex::new(audit_log));
    restore_sticky(&store, &mut compiled)?;
    let epoch = std::time::Instant::now();
    let mut switch = Switch::new(&compiled.spec, Instant(0))?;
    if probe_carrier {
        initial_carrier(&mut switch, &compiled);
    }
    let _ = switch.drain_events().count();
    let bstore = bindings_store::BindingStore::open(state_dir)
        .map_err(|e| DaemonError::Bindings(e.to_string()))?;
    let loaded = bstore
        .load_live(held::unix_now())
        .map_err(|e| DaemonError::Bindings(e.to_string()))?;
    let refused = restore_bindings(&mut switch, &loaded);
    if !refused.is_empty() {
        // Records the switch refuses (a stored binding that would shadow a configured
        // static one, or one no binding may be) are deleted, so that they do not
        // come back if the configuration changes.
        bstore
            .apply(&refused)
            .map_err(|e| DaemonError::Bindings(e.to_string()))?;
    }
    secure_state_files(state_dir)?;
    let (committer, commit_results) = bindings_store::Committer::start(bstore);
    let port_names: Vec<String> = compiled.spec.ports.iter().map(|p| p.name.clone()).collect();

    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel::<ToControl>(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let dp = DataPlane {
        switch,
        ports,
        interfaces: compiled.interfaces.clone(),
        groups: group_names(&compiled),
        commands: cmd_rx,
        events: ev_tx,
        stop: stop.clone(),
        epoch,
        link_monitor,
        event_buf: Vec::with_capacity(portcullis_dataplane::switch::EVENT_RING_CAPACITY),
        circuit_ids: circuit_ids(&compiled),
        scratch: runtime::RewriteScratch::default(),
        held: held::Held::new(Some((committer, commit_results)), port_names.clone()),
        links,
    };
    let dataplane = std::thread::Builder::new()
        .name("portcullis-dp".into())
        .spawn(move || dp.run())
        .map_err(DaemonError::Runtime)?;

    let history: Arc<Mutex<VecDeque<EventRecord>>> =
        Arc::new(Mutex::new(VecDeque::with_capacity(EVENT_HISTORY)));
    let names = Arc::new(port_names.clone());
    {
        let history = history.clone();
        let mut names = names.clone();
        let store = store.clone();
        runtime.spawn(async move {
            while let Some(msg) = ev_rx.recv().await {
                let ev = match msg {
                    ToControl::Event(ev) => ev,
                    ToControl::PortNames(n) => {
                        names = n;
                        continue;
                    }
                };
                persist(&store, &ev, &names);
                let rec = event_record(&ev, &names);
                tracing::info!(target: "portcullis::event", port = %rec.port, event = %rec.event, detail = %rec.detail, "switch event");
                record_event(&history, rec);
            }
        });
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let owner_uid = unsafe { libc::geteuid() };
    let auth = Authorizer::new(&config.host.management, owner_uid);
    let state = ApiState {
        commands: cmd_tx,
        port_names: Arc::new(tokio::sync::RwLock::new(names)),
        events: history,
        auth: Arc::new(std::sync::RwLock::new(Arc::new(auth))),
        audit,
        applies: Arc::default(),
        refusals: Arc::default(),
        running: Arc::new(tokio::sync::Mutex::new(Running {
            config,
            compiled,
            store,
            epoch,
            owner_uid,
            in_memory: !probe_carrier,
            socket: socket.map(Path::to_path_buf),
            listeners: None,
        })),
    };
    runtime.spawn(summarize_refusals(state.clone()));
    Ok(Launched {
        state,
        stop,
        dataplane,
        port_names,
    })
}

/// Every [`api::refusals::SUMMARY_INTERVAL`], one audit record
/// (`audit.refusals_suppressed`, by the daemon itself) for the refusals left out of
/// the audit log since the previous one, if any were.
async fn summarize_refusals(st: ApiState) {
    let mut tick = tokio::time::interval(api::refusals::SUMMARY_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let summary = st
            .refusals
            .lock()
            .ok()
            .and_then(|mut l| l.take_summary(std::time::Instant::now()));
        let Some(summary) = summary else { continue };
        let args = serde_json::to_value(&summary).unwrap_or_default();
        let log = st.audit.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut log = log.lock().map_err(|_| "lock".to_string())?;
            log.append(
                "portcullis",
                "none",
                "daemon",
                "audit.refusals_suppressed",
                args,
                "ok",
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        })
        .await;
        if !matches!(written, Ok(Ok(()))) {
            tracing::error!(
                suppressed = summary.suppressed,
                "cannot write the summary of suppressed refusals"
            );
        }
    }
}

/// The files of the state directory, each made 0600 once open (redb creates its
/// files with the umask's mode; the audit log is created 0600).
const STATE_FILES: [&str; 3] = ["state.redb", bindings_store::BINDINGS_FILE, AUDIT_LOG];

/// Creates the state directory 0700 (and any missing parent, likewise); refuses
/// an existing one that is world-writable. An existing directory others may read
/// is used with a warning (its mode is the operator's choice).
fn prepare_state_dir(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::metadata(dir) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(DaemonError::Fs {
                    path: dir.to_path_buf(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotADirectory,
                        "not a directory",
                    ),
                });
            }
            let mode = meta.permissions().mode();
            if mode & 0o002 != 0 {
                return Err(DaemonError::InsecureStateDir(dir.to_path_buf()));
            }
            if mode & 0o077 != 0 {
                tracing::warn!(dir = %dir.display(), mode = format!("{:04o}", mode & 0o7777), "the state directory is open to other users; 0700 is recommended");
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(fs_err(dir))?;
            // The umask may have taken bits away, never added them; set exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                .map_err(fs_err(dir))?;
        }
        Err(e) => return Err(fs_err(dir)(e)),
    }
    Ok(())
}

/// Makes the state directory's files 0600 (see [`STATE_FILES`]).
fn secure_state_files(dir: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::PermissionsExt;
    for name in STATE_FILES {
        let path = dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(fs_err(&path))?;
        }
    }
    Ok(())
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

/// A daemon on in-memory ports, without sockets or privileges: the API's state for
/// tests that drive the router directly (`tower::ServiceExt::oneshot`), and the
/// memory ports' handles to inject and collect frames.
#[doc(hidden)]
pub struct MemoryDaemon {
    pub state: ApiState,
    pub handles: Vec<portcullis_io::MemoryHandle>,
    pub runtime: tokio::runtime::Runtime,
    stop: Arc<AtomicBool>,
    dataplane: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for MemoryDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDaemon").finish_non_exhaustive()
    }
}

impl Drop for MemoryDaemon {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.dataplane.take() {
            let _ = t.join();
        }
    }
}

struct MemoryLinks;
impl PortLinks for MemoryLinks {
    fn state(&self, _: usize) -> LinkState {
        LinkState::Up
    }
    fn reopen(&self, _: usize) -> Result<PortIo, String> {
        Err("memory ports do not go away".into())
    }
}

#[doc(hidden)]
pub fn start_in_memory(
    config: portcullis_control::Config,
    state_dir: &Path,
) -> Result<MemoryDaemon, DaemonError> {
    let compiled = config.compile().map_err(DaemonError::Config)?;
    let mut handles = Vec::new();
    let ports = compiled
        .spec
        .ports
        .iter()
        .map(|_| {
            let (rx, tx, h) = portcullis_io::memory_port();
            handles.push(h);
            PortIo {
                rx: Box::new(rx),
                tx: Box::new(tx),
            }
        })
        .collect();
    let runtime = control_runtime()?;
    let l = launch(
        config,
        compiled,
        ports,
        Box::new(MemoryLinks),
        None,
        state_dir,
        None,
        &runtime,
        false,
    )?;
    Ok(MemoryDaemon {
        state: l.state,
        handles,
        runtime,
        stop: l.stop,
        dataplane: Some(l.dataplane),
    })
}

/// Appends an event to the bounded history, numbering it (the oldest goes when full).
pub(crate) fn record_event(history: &Mutex<VecDeque<EventRecord>>, mut rec: EventRecord) {
    if let Ok(mut q) = history.lock() {
        if q.len() == EVENT_HISTORY {
            q.pop_front();
        }
        rec.seq = q.back().map_or(0, |e| e.seq) + 1;
        q.push_back(rec);
    }
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
        .filter(|((ifname, _), tap)| !**tap && !portcullis_io::interface_exists(ifname))
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

/// The I/O backend each interface was last opened with, by interface name, for the
/// port view (`GET /v1/ports`): AF_XDP may have fallen back to AF_PACKET. One
/// daemon per process opens real interfaces, so the name is key enough.
/// With it, for AF_XDP, how the kernel runs the socket: "native, copy" (veth),
/// "native, zero-copy" (a NIC whose driver supports it) or "skb, copy".
static BACKENDS_IN_USE: Mutex<BTreeMap<String, (Backend, Option<&'static str>)>> =
    Mutex::new(BTreeMap::new());

/// The backend `ifname` was last opened with and, for AF_XDP, its XDP and bind
/// modes; `None` for a port that never opened one (in-memory ports).
pub(crate) fn backend_in_use(ifname: &str) -> Option<(Backend, Option<&'static str>)> {
    BACKENDS_IN_USE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(ifname)
        .copied()
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
/// back to AF_PACKET with a warning; the backend used is recorded for the port view.
fn open_io(port: &str, ifname: &str, backend: Backend) -> Result<PortIo, portcullis_io::IoError> {
    let record = |b: Backend, xdp: Option<&'static str>| {
        BACKENDS_IN_USE
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ifname.to_owned(), (b, xdp));
    };
    if backend == Backend::AfXdp {
        match portcullis_io::open_af_xdp(ifname, &portcullis_io::AfXdpOptions::default()) {
            Ok((rx, tx)) => {
                let xdp = xdp_mode_name(rx.mode(), rx.xdp_bind_mode());
                tracing::info!(port, interface = %ifname, mode = xdp, "port on AF_XDP");
                record(Backend::AfXdp, Some(xdp));
                return Ok(PortIo {
                    rx: Box::new(rx),
                    tx: Box::new(tx),
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
    let (rx, tx) = portcullis_io::open_af_packet(ifname, &Default::default())?;
    record(Backend::AfPacket, None);
    Ok(PortIo {
        rx: Box::new(rx),
        tx: Box::new(tx),
    })
}

/// Opens one port's interface with `backend` (creating it as a persistent TAP if so
/// configured and missing; `created` removes it again unless the start or apply
/// completes).
pub(crate) fn open_port(
    spec: &portcullis_dataplane::PortSpec,
    ifname: &str,
    tap: bool,
    backend: Backend,
    created: &mut CreatedTaps,
) -> Result<PortIo, DaemonError> {
    let port_err = |source| DaemonError::Port {
        port: spec.name.clone(),
        interface: ifname.to_string(),
        source,
    };
    if tap && !portcullis_io::interface_exists(ifname) {
        portcullis_io::create_persistent_tap(ifname, None).map_err(port_err)?;
        created.0.push(ifname.to_string());
        tracing::info!(port = %spec.name, interface = %ifname, "created persistent TAP");
    }
    portcullis_io::set_link_up(ifname).map_err(port_err)?;
    open_io(&spec.name, ifname, backend).map_err(port_err)
}

/// Uplinks without carrier start down (teaming uses the others).
pub(crate) fn initial_carrier(switch: &mut Switch, compiled: &CompiledConfig) {
    for (i, (p, ifname)) in compiled
        .spec
        .ports
        .iter()
        .zip(&compiled.interfaces)
        .enumerate()
    {
        if p.role == portcullis_dataplane::PortRole::Uplink
            && !portcullis_io::is_link_running(ifname).unwrap_or(true)
        {
            let _ = switch.set_link_up(PortId(i as u16), false, Instant(0));
        }
    }
}

/// The port group of each port ("" for uplinks), for snapshots.
pub(crate) fn group_names(c: &CompiledConfig) -> Vec<String> {
    c.groups
        .iter()
        .map(|g| g.clone().unwrap_or_default())
        .collect()
}

/// Option 82 circuit-id of each port: "switch/port".
pub(crate) fn circuit_ids(c: &CompiledConfig) -> Vec<String> {
    c.spec
        .ports
        .iter()
        .map(|p| format!("{}/{}", c.spec.name, p.name))
        .collect()
}

pub(crate) fn af_packet_links(c: &CompiledConfig) -> Box<dyn PortLinks> {
    Box::new(AfPacketLinks {
        interfaces: c.interfaces.clone(),
        names: c.spec.ports.iter().map(|p| p.name.clone()).collect(),
        backends: c.backends.clone(),
        uplink: c
            .spec
            .ports
            .iter()
            .map(|p| p.role == portcullis_dataplane::PortRole::Uplink)
            .collect(),
    })
}

/// The carrier monitor for the uplinks (teaming failover): `None`, with a warning,
/// if the kernel refuses the subscription.
pub(crate) fn uplink_monitor(
    c: &portcullis_control::CompiledConfig,
) -> Option<(portcullis_io::LinkMonitor, Vec<(u32, PortId)>)> {
    let uplinks: Vec<(u32, PortId)> = c
        .spec
        .ports
        .iter()
        .zip(&c.interfaces)
        .enumerate()
        .filter(|(_, (p, _))| p.role == portcullis_dataplane::PortRole::Uplink)
        .filter_map(|(i, (_, ifname))| {
            Some((
                portcullis_io::interface_index(ifname).ok()?,
                PortId(i as u16),
            ))
        })
        .collect();
    if uplinks.is_empty() {
        return None;
    }
    match portcullis_io::LinkMonitor::open() {
        Ok(m) => Some((m, uplinks)),
        Err(e) => {
            tracing::warn!(error = %e, "no link-state notifications: uplink failover only on socket errors");
            None
        }
    }
}

/// Ports on real interfaces (AF_PACKET or AF_XDP): probed and reopened by interface
/// name, with the backend the configuration asks for.
struct AfPacketLinks {
    interfaces: Vec<String>,
    /// Port names, for the logs.
    names: Vec<String>,
    backends: Vec<Backend>,
    /// Uplinks are up only with carrier (a pulled cable fails them over); guest
    /// ports only need to be administratively up (a TAP has no carrier until its VM
    /// attaches).
    uplink: Vec<bool>,
}

impl PortLinks for AfPacketLinks {
    fn state(&self, port: usize) -> LinkState {
        let name = &self.interfaces[port];
        let up = if self.uplink[port] {
            portcullis_io::is_link_running(name)
        } else {
            portcullis_io::is_link_up(name)
        };
        match up {
            Ok(true) => LinkState::Up,
            Ok(false) => LinkState::Down,
            Err(_) if !portcullis_io::interface_exists(name) => LinkState::Gone,
            Err(_) => LinkState::Down,
        }
    }

    fn reopen(&self, port: usize) -> Result<PortIo, String> {
        let name = &self.interfaces[port];
        portcullis_io::set_link_up(name).map_err(|e| e.to_string())?;
        let backend = self.backends.get(port).copied().unwrap_or_default();
        let port_name = self.names.get(port).map_or("", String::as_str);
        open_io(port_name, name, backend).map_err(|e| e.to_string())
    }
}

/// TAPs created by a start (or apply) that has not finished: removed if it fails,
/// so that nothing is left half-started.
#[derive(Debug, Default)]
pub(crate) struct CreatedTaps(Vec<String>);

impl CreatedTaps {
    /// The start or apply completed: the TAPs stay.
    pub(crate) fn keep(&mut self) {
        self.0.clear();
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

/// Puts the bindings the store holds back into the switch's index, with the lease
/// time they have left; ones whose port or VLAN no longer exists are logged and
/// skipped (they stay on disk until they expire). The switch's binding rule applies
/// as at run time: a stored binding never shadows a configured static one, and one
/// the configuration would not accept (a group MAC, say) is refused. The refused
/// ones are returned, as removals for the store.
fn restore_bindings(
    switch: &mut Switch,
    records: &[bindings_store::BindingRecord],
) -> Vec<bindings_store::BindingOp> {
    let now = held::unix_now();
    let mut restored = 0usize;
    let mut refused = Vec::new();
    for r in records {
        let port = switch.port_id(&r.port);
        let vid = portcullis_dataplane::Vid::new(r.vlan);
        let (Some(port), Some(vid)) = (port, vid) else {
            tracing::warn!(port = %r.port, vlan = r.vlan, ip = %r.ip, "stored binding for a port or VLAN that no longer exists; not restored");
            continue;
        };
        let left = r
            .lease_end_unix
            .map(|end| u32::try_from(end.saturating_sub(now)).unwrap_or(u32::MAX));
        let new = portcullis_dataplane::bindings::NewBinding {
            vid,
            ip: r.ip,
            mac: r.mac,
            port,
            lease_secs: left,
            source: r.source,
        };
        match switch.install_binding(new, Instant(0)) {
            Ok(()) => restored += 1,
            Err(portcullis_dataplane::ControlError::BindingTableFull) => {
                tracing::warn!(ip = %r.ip, "stored binding not restored: the binding table is full");
            }
            Err(e) => {
                tracing::warn!(ip = %r.ip, vlan = r.vlan, mac = %r.mac, port = %r.port, source = r.source.name(), error = %e, "stored binding refused; removed from the store");
                refused.push(bindings_store::BindingOp::Remove {
                    vlan: r.vlan,
                    ip: r.ip,
                });
            }
        }
    }
    // Loading is not news: keep the event ring for what happens next.
    let _ = switch.drain_events().count();
    tracing::info!(restored, stored = records.len(), "bindings loaded");
    refused
}

/// Puts the sticky MACs the store remembers back into the spec; the ones that no
/// longer fit the configuration are logged and left out.
pub(crate) fn restore_sticky(
    store: &store::StateStore,
    compiled: &mut portcullis_control::CompiledConfig,
) -> Result<(), DaemonError> {
    let sticky_ports: Vec<String> = compiled
        .spec
        .ports
        .iter()
        .filter(|p| {
            p.features
                .port_security
                .as_ref()
                .is_some_and(|ps| ps.sticky)
        })
        .map(|p| p.name.clone())
        .collect();
    for port in sticky_ports {
        let macs = store.sticky(&port)?;
        for (mac, why) in compiled.restore_sticky(&port, &macs) {
            tracing::warn!(%port, %mac, reason = %why, "stored sticky MAC not restored");
        }
    }
    Ok(())
}

/// Writes what an event means for the state store (sticky MACs).
fn persist(store: &store::StateStore, ev: &Event, names: &[String]) {
    if let portcullis_dataplane::EventKind::SecureMacLearned {
        port,
        mac,
        sticky: true,
        ..
    } = ev.kind
    {
        let name = names.get(port.index()).map(String::as_str).unwrap_or("");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Err(e) = store.add_sticky(name, mac, now) {
            tracing::error!(error = %e, port = name, %mac, "cannot persist a sticky MAC");
        }
    }
}

fn event_record(ev: &Event, names: &[String]) -> EventRecord {
    let mut detail = serde_json::to_value(ev).unwrap_or_default();
    let mut port = String::new();
    let mut event = String::new();
    if let Some(obj) = detail.as_object_mut() {
        obj.remove("at_ns");
        event = obj
            .remove("event")
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        for key in ["port", "owner"] {
            if let Some(id) = obj.get(key).and_then(|v| v.as_u64()) {
                let name = names
                    .get(id as usize)
                    .cloned()
                    .unwrap_or_else(|| id.to_string());
                if key == "port" {
                    port = name.clone();
                }
                obj.insert(key.into(), serde_json::Value::String(name));
            }
        }
    }
    let time_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    EventRecord {
        seq: 0, // numbered when it enters the history
        time_ms,
        port,
        event,
        detail,
    }
}

impl RunningDaemon {
    /// The control socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Blocks until SIGINT or SIGTERM.
    pub fn wait_for_signal(&self) {
        let Some(rt) = &self.runtime else { return };
        rt.block_on(async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
                _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            }
        });
    }

    /// Stops the data plane and the API, and removes the socket.
    pub fn shutdown(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(tx) = self.shutdown_api.take() {
            let _ = tx.send(true);
        }
        if let Some(h) = self.dataplane.take() {
            let _ = h.join();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        self.stop_all();
    }
}
