//! The Portcullis runtime: loads and checks the configuration, opens every port's
//! interface, runs the data-plane thread and serves the control API on a Unix
//! socket. `portcullis daemon` and `portcullis demo` both start it through
//! [`start`].
//!
//! The switch and its ports come from `plan::prepare`, against nothing running (an
//! apply prepares against the running ports, `api/config.rs`).
//!
//! Invariant: nothing is half-started. Every check (configuration, interfaces,
//! socket, TLS files, TCP addresses) happens before the first port is opened, a
//! failure while opening ports closes the ones already opened (RAII) and removes
//! the TAPs created, and [`RunningDaemon::shutdown`] stops the data-plane thread,
//! the API and removes the socket.

pub mod api;
pub mod binding_log;
pub mod bindings_store;
pub mod cluster;
/// The API client (moved to `portcullis-api`; kept here for the daemon's users).
pub use portcullis_api::client;
pub mod conns;
pub mod held;
pub mod metrics;
pub(crate) mod plan;
pub mod ports;
pub mod running;
pub mod running_config;
pub mod runtime;
pub mod runtime_ports;
pub mod service;
pub mod snapshot;
pub mod sticky_store;
pub mod tls;
pub mod unix_users;

use api::{ApiState, EVENT_HISTORY, EventRecord, record_event};
use binding_log::BindingLog;
use portcullis_control::ConfigErrors;
use portcullis_control::audit::{AuditError, AuditLog};
use portcullis_control::rbac::Authorizer;
use portcullis_dataplane::{Event, Switch, Timestamp};
pub use running::Running;
use running::{ListenerError, ListenerPlan, TcpListeners, socket_access, syslog_forwarder};
use runtime::{Command, DataThread, ToControl};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::SystemTime;

/// Default control socket.
pub use portcullis_api::DEFAULT_SOCKET;
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
    /// A cluster member (`--cluster`); `None`: a single host.
    pub cluster: Option<cluster::ClusterOptions>,
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
    Store(#[from] sticky_store::StickyStoreError),
    #[error("{0}")]
    Audit(#[from] AuditError),
    #[error("binding store: {0}")]
    Bindings(String),
    #[error("cluster: {0}")]
    Cluster(String),
    #[error("runtime ports: {0}")]
    RuntimePorts(String),
    #[error("TLS for the API: {0}")]
    Tls(String),
    #[error("the control socket {path}: {message}")]
    SocketAccess { path: PathBuf, message: String },
    #[error("cannot make the bridge netdev {name:?} ([host] bridge_netdev): {source}")]
    BridgeNetdev {
        name: String,
        source: portcullis_io::IoError,
    },
    #[error(
        "the state directory {0} is world-writable: anyone could replace the audit log or the binding database; make it 0700 (chmod 0700 {0}) or choose another"
    )]
    InsecureStateDir(PathBuf),
}

impl From<plan::PrepareError> for DaemonError {
    fn from(e: plan::PrepareError) -> Self {
        match e {
            plan::PrepareError::Store(e) => DaemonError::Store(e),
            plan::PrepareError::Spec(e) => DaemonError::Spec(e),
            plan::PrepareError::Port(ports::PortError {
                port,
                interface,
                source,
            }) => DaemonError::Port {
                port,
                interface,
                source,
            },
        }
    }
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
    /// The API, for a reload (SIGHUP) to apply through.
    app: axum::Router,
    /// The startup files, which a reload applies.
    opts: DaemonOptions,
    /// A cluster member's agent state: the host leaves the cluster on stop.
    cluster: Option<Arc<portcullis_cluster::Shared>>,
    /// SIGTERM and SIGHUP, listened for from before the socket existed.
    signals: std::sync::Mutex<Option<Signals>>,
}

/// The signals the daemon answers, listened for from its start.
#[derive(Debug)]
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
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
    let startup = portcullis_control::load_compiled(&opts.config, opts.host.as_deref())
        .map_err(DaemonError::Config)?;
    // The running configuration saved by the last apply, if the startup files are
    // the ones it derives from (running_config.rs).
    let ((config, compiled), persist, from_saved) =
        running_config::choose(&opts.state_dir, startup);
    ports::check_interfaces(&config, &compiled).map_err(DaemonError::Config)?;
    bridge_netdev(&config)?;
    // The runtime ports (host state) after the configured ones; their interfaces
    // may not exist yet (they wait).
    let runtime_ports =
        runtime_ports::RuntimePorts::load(&opts.state_dir).map_err(DaemonError::RuntimePorts)?;
    let (compiled, runtime_ports) = with_runtime_ports(&config, compiled, runtime_ports);
    if let Some(dir) = opts.socket.parent() {
        std::fs::create_dir_all(dir).map_err(fs_err(dir))?;
    }
    if opts.socket.exists() {
        if std::os::unix::net::UnixStream::connect(&opts.socket).is_ok() {
            return Err(DaemonError::AlreadyRunning(opts.socket.clone()));
        }
        std::fs::remove_file(&opts.socket).map_err(fs_err(&opts.socket))?;
    }
    // The TCP listeners, from none running: TLS files read and addresses bound.
    let listeners = ListenerPlan::new(None, &config.host.management).map_err(|e| match e {
        ListenerError::Tls(m) => DaemonError::Tls(m),
        ListenerError::Bind { source, .. } => DaemonError::Runtime(source),
    })?;

    let store = open_state(&opts.state_dir)?;
    let plan = plan::prepare(compiled, &plan::Current::nothing(store.clone(), false))?;
    let runtime = control_runtime()?;
    // The signals first: once the socket exists a client (a service manager, a
    // test) may send SIGHUP or SIGTERM, whose default action would end the daemon
    // without a reload or a clean stop.
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        let _rt = runtime.enter();
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(t), Ok(h), Ok(i)) => Some(Signals {
                term: t,
                hup: h,
                int: i,
            }),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM, SIGHUP and SIGINT");
                None
            }
        }
    };
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
    let switch_name = plan.compiled.spec.name.clone();
    // A cluster member registers first: a host id that is live elsewhere is
    // refused before anything is opened; an etcd that does not answer is not (the
    // host starts on its local state, fail static).
    let cluster = match &opts.cluster {
        None => None,
        Some(c) => {
            // The overlay endpoint: the one the switch is built with.
            let endpoint = plan.compiled.spec.overlay.as_ref().map(|o| o.local_ip);
            let record = host_record(c, &config, endpoint);
            let lease = runtime
                .block_on(portcullis_cluster::register_at_start(&c.agent, &record))
                .map_err(|e| DaemonError::Cluster(e.to_string()))?;
            Some((
                c.clone(),
                record,
                lease,
                Arc::new(portcullis_cluster::Shared::default()),
            ))
        }
    };
    let mut launched = launch(
        config,
        plan,
        store,
        &opts.state_dir,
        Some(&opts.socket),
        &runtime,
        LaunchState {
            in_memory: false,
            saving: persist,
            from_saved,
            runtime_ports,
            cluster: cluster
                .as_ref()
                .map(|(c, _, _, shared)| (c.clone(), shared.clone())),
        },
    )?;
    let app = api::router(launched.state.clone());
    let cluster_shared = cluster.as_ref().map(|(_, _, _, shared)| shared.clone());
    if let Some((c, record, lease, shared)) = cluster {
        let local = Arc::new(cluster::DaemonLocal::new(
            launched.state.clone(),
            app.clone(),
        ));
        let agent = portcullis_cluster::Agent::new(c.agent, record, local, shared.clone(), lease);
        runtime.spawn(agent.run());
        let changed = launched.state.ports_changed.clone();
        runtime.spawn(async move {
            loop {
                changed.notified().await;
                shared.wake.notify_one();
            }
        });
    }
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
    let cluster_stats = cluster_shared.clone();
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
            cluster: cluster_stats.as_ref().map(|s| s.stats()),
        }
    });
    let mut tcp_listeners = TcpListeners::new(
        app.clone(),
        caps.tls,
        launched.state.commands.clone(),
        control,
        shutdown_rx.clone(),
    );
    runtime.block_on(async {
        // Nothing was running: every listener is bound already, none is rebound.
        let mut notes = Vec::new();
        tcp_listeners.change(listeners, &mut notes).await;
        for note in notes {
            tracing::error!("{note}");
        }
        launched.state.running.lock().await.listeners = Some(tcp_listeners);
    });
    // Started: the TAPs stay (a VM keeps its NIC across switch restarts).
    launched.created_taps.keep();
    tracing::info!(switch = %switch_name, ports = launched.port_names.len(), socket = %opts.socket.display(), "portcullis is switching");
    // Every port is open and the API serves: ready (systemd `Type=notify`).
    service::notify("READY=1");
    Ok(RunningDaemon {
        stop: launched.stop,
        dataplane: Some(launched.dataplane),
        runtime: Some(runtime),
        shutdown_api: Some(shutdown_tx),
        socket: opts.socket.clone(),
        port_names: launched.port_names,
        app,
        opts: opts.clone(),
        cluster: cluster_shared,
        signals: std::sync::Mutex::new(signals),
    })
}

/// `[host] bridge_netdev = true`: the dummy netdev named after the switch, made
/// unless an interface of that name exists (a persistent TAP where the kernel has
/// no dummy driver). Left in place when the daemon stops, like
/// the TAPs: a hypervisor may read its MTU at any time.
pub(crate) fn bridge_netdev(config: &portcullis_control::Config) -> Result<(), DaemonError> {
    if !config.host.bridge_netdev {
        return Ok(());
    }
    let name = &config.profile.switch.name;
    match portcullis_io::ensure_dummy(name) {
        Ok(portcullis_io::DummyOutcome::Created) => {
            tracing::info!(netdev = %name, "made the bridge netdev (dummy)");
            Ok(())
        }
        Ok(portcullis_io::DummyOutcome::Existed) => {
            tracing::info!(netdev = %name, "the bridge netdev exists: left as it is");
            Ok(())
        }
        // A kernel without the dummy driver (CONFIG_DUMMY): a persistent TAP that
        // nothing attaches to serves the same purpose (an MTU to read, no bridge).
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
            portcullis_io::create_persistent_tap(name, None)
                .and_then(|()| portcullis_io::set_link_up(name))
                .map_err(|source| DaemonError::BridgeNetdev {
                    name: name.clone(),
                    source,
                })?;
            tracing::info!(netdev = %name, "made the bridge netdev as a persistent TAP (this kernel has no dummy driver)");
            Ok(())
        }
        Err(source) => Err(DaemonError::BridgeNetdev {
            name: name.clone(),
            source,
        }),
    }
}

fn control_runtime() -> Result<tokio::runtime::Runtime, DaemonError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("portcullis-ctl")
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)
}

/// This host as the cluster lists it; `overlay_endpoint`: its switch's overlay
/// endpoint (`[host.overlay] local_ip`), unless the options name one.
fn host_record(
    c: &cluster::ClusterOptions,
    config: &portcullis_control::Config,
    overlay_endpoint: Option<std::net::IpAddr>,
) -> portcullis_cluster::HostRecord {
    portcullis_cluster::HostRecord {
        api: config.host.management.tcp_listen.map(|a| a.to_string()),
        format: portcullis_cluster::schema::FORMAT,
        host: c.agent.host.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        pid: std::process::id(),
        started_unix: held::unix_now(),
        overlay_endpoint: c.agent.overlay_endpoint.or(overlay_endpoint),
    }
}

/// A started data plane and the API state that drives it.
struct Launched {
    state: ApiState,
    stop: Arc<AtomicBool>,
    dataplane: std::thread::JoinHandle<()>,
    port_names: Vec<String>,
    /// The TAPs the start created: removed unless the start completes.
    created_taps: ports::CreatedTaps,
}

/// The state directory, made safe, and the sticky-MAC store in it.
fn open_state(state_dir: &Path) -> Result<Arc<sticky_store::StickyMacStore>, DaemonError> {
    prepare_state_dir(state_dir)?;
    Ok(Arc::new(sticky_store::StickyMacStore::open(state_dir)?))
}

/// What a launch starts from besides the plan: memory queues or interfaces, where
/// applies are saved (and whether the configuration came from that save), and the
/// runtime ports.
struct LaunchState {
    in_memory: bool,
    saving: running_config::Persist,
    from_saved: bool,
    runtime_ports: runtime_ports::RuntimePorts,
    /// A cluster member's options and the agent's shared state: the binding log
    /// is replicated.
    cluster: Option<(cluster::ClusterOptions, Arc<portcullis_cluster::Shared>)>,
}

/// Opens the rest of the state (bindings, audit log), starts the data-plane thread
/// on `plan` (prepared against nothing running: every port opened) and the event
/// task; returns the API's state.
fn launch(
    config: portcullis_control::Config,
    plan: plan::Plan,
    store: Arc<sticky_store::StickyMacStore>,
    state_dir: &Path,
    socket: Option<&Path>,
    runtime: &tokio::runtime::Runtime,
    LaunchState {
        in_memory,
        saving,
        from_saved,
        runtime_ports,
        cluster,
    }: LaunchState,
) -> Result<Launched, DaemonError> {
    if !from_saved {
        // What the daemon starts on is the running configuration from now on.
        saving
            .save(&config, "startup")
            .map_err(fs_err(&saving.path))?;
    }
    let plan::Plan {
        compiled,
        mut switch,
        opened,
        links,
        link_monitor,
        undo: created_taps,
        waiting,
        ..
    } = plan;
    // Every port is opened but those waiting for their interface (placeholders,
    // `gone` until the runtime attaches them).
    let mut by_index: Vec<Option<ports::PortIo>> =
        (0..compiled.spec.ports.len()).map(|_| None).collect();
    for (i, io) in opened {
        by_index[i] = Some(io);
    }
    let ports: Vec<_> = by_index
        .into_iter()
        .map(|io| io.unwrap_or_else(ports::PortIo::placeholder))
        .collect();
    let mut audit_log = AuditLog::open(&state_dir.join(AUDIT_LOG))?;
    audit_log.set_forward(syslog_forwarder(&config.host.management));
    let audit = Arc::new(Mutex::new(audit_log));
    let clock = runtime::SwitchClock::start();
    let local_log = bindings_store::BindingStore::open(state_dir)
        .map_err(|e| DaemonError::Bindings(e.to_string()))?;
    let sticky_dirty = cluster.as_ref().map(|(_, shared)| shared.clone());
    let bstore: Box<dyn BindingLog> = match cluster {
        None => Box::new(local_log),
        Some((c, shared)) => Box::new(cluster::ReplicatedLog {
            local: local_log,
            shared,
            runtime: runtime.handle().clone(),
            options: c.agent,
        }),
    };
    let loaded = bstore
        .load_live(held::unix_now())
        .map_err(|e| DaemonError::Bindings(e.to_string()))?;
    let (refused, orphans) = restore_bindings(&mut switch, &loaded);
    // Stored bindings of ports that are not here (a runtime port removed before the
    // restart, say) wait for their port, as if it had just been removed.
    let mut parked = runtime_ports::ParkedBindings::default();
    let _ = parked.park(orphans, held::unix_now());
    if !refused.is_empty() {
        // Records the switch refuses (a stored binding that would shadow a configured
        // static one, or one no binding may be) are deleted, so that they do not
        // come back if the configuration changes.
        bstore
            .apply(&refused)
            .map_err(|e| DaemonError::Bindings(e.to_string()))?;
    }
    secure_state_files(state_dir)?;
    let (committer, commit_results) = bstore.start_commits();
    let port_names: Vec<String> = compiled.spec.ports.iter().map(|p| p.name.clone()).collect();

    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
    let wake = runtime::command_wake().map_err(DaemonError::Runtime)?;
    let cmd_tx = runtime::CommandSender::new(cmd_tx, Some(wake.clone()));
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::channel::<ToControl>(4096);
    let stop = Arc::new(AtomicBool::new(false));
    let dp = DataThread {
        switch,
        ports: {
            let mut slots = runtime::port_slots(
                ports,
                crate::ports::port_labels(&compiled),
                plan::group_names(&compiled),
            );
            for i in waiting {
                slots[i].gone = true;
            }
            slots
        },
        commands: cmd_rx,
        events: ev_tx,
        stop: stop.clone(),
        clock,
        link_monitor,
        event_buf: Vec::with_capacity(portcullis_dataplane::switch::EVENT_RING_CAPACITY),
        attach_now: false,
        wake: Some(wake),
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
                // A sticky MAC learned: the cluster's copy of the port follows.
                if let (
                    Some(shared),
                    portcullis_dataplane::EventKind::SecureMacLearned {
                        port, sticky: true, ..
                    },
                ) = (&sticky_dirty, &ev.kind)
                    && let Some(name) = names.get(port.index())
                {
                    shared.mark_dirty(name);
                }
                let rec = event_record(&ev, &names);
                log_event(&rec);
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
        owners: Arc::new(std::sync::RwLock::new(Arc::new(runtime_ports.owners()))),
        audit,
        applies: Arc::default(),
        refusals: Arc::default(),
        web_view: Arc::new(AtomicBool::new(config.host.management.web_view)),
        ports_changed: Arc::default(),
        running: Arc::new(tokio::sync::Mutex::new(Running {
            config,
            compiled,
            store,
            clock,
            owner_uid,
            in_memory,
            socket: socket.map(Path::to_path_buf),
            listeners: None,
            persist: saving,
            runtime_ports,
            parked,
        })),
    };
    runtime.spawn(summarize_refusals(state.clone()));
    Ok(Launched {
        state,
        stop,
        dataplane,
        port_names,
        created_taps,
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
const STATE_FILES: [&str; 4] = [
    "state.redb",
    bindings_store::BINDINGS_FILE,
    AUDIT_LOG,
    running_config::FILE,
];

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

#[doc(hidden)]
pub fn start_in_memory(
    config: portcullis_control::Config,
    state_dir: &Path,
) -> Result<MemoryDaemon, DaemonError> {
    let compiled = config.compile().map_err(DaemonError::Config)?;
    let ((config, compiled), persist, from_saved) =
        running_config::choose(state_dir, (config, compiled));
    let runtime_ports =
        runtime_ports::RuntimePorts::load(state_dir).map_err(DaemonError::RuntimePorts)?;
    let (compiled, runtime_ports) = with_runtime_ports(&config, compiled, runtime_ports);
    let store = open_state(state_dir)?;
    let mut plan = plan::prepare(compiled, &plan::Current::nothing(store.clone(), true))?;
    let handles = std::mem::take(&mut plan.handles)
        .into_iter()
        .map(|(_, h)| h)
        .collect();
    let runtime = control_runtime()?;
    let l = launch(
        config,
        plan,
        store,
        state_dir,
        None,
        &runtime,
        LaunchState {
            in_memory: true,
            saving: persist,
            from_saved,
            runtime_ports,
            cluster: None,
        },
    )?;
    Ok(MemoryDaemon {
        state: l.state,
        handles,
        runtime,
        stop: l.stop,
        dataplane: Some(l.dataplane),
    })
}

/// `compiled` with the runtime ports that fit `config` appended. One that no
/// longer does (its group was removed from the files, its interface is now a
/// configured port's) is left out with an error in the log; it leaves the file at
/// the next port change.
fn with_runtime_ports(
    config: &portcullis_control::Config,
    compiled: portcullis_control::CompiledConfig,
    mut rp: runtime_ports::RuntimePorts,
) -> (
    portcullis_control::CompiledConfig,
    runtime_ports::RuntimePorts,
) {
    if rp.ports.is_empty() {
        return (compiled, rp);
    }
    let mut fit: Vec<runtime_ports::RuntimePort> = Vec::new();
    let mut last = None;
    for p in std::mem::take(&mut rp.ports) {
        fit.push(p);
        match runtime_ports::compile(config, &fit) {
            Ok(c) => last = Some(c),
            Err(e) => {
                let p = fit.pop().expect("just pushed");
                tracing::error!(port = %p.name, interface = %p.interface, group = %p.group, error = %e, "runtime port not started: it no longer fits the configuration");
            }
        }
    }
    rp.ports = fit;
    (last.unwrap_or(compiled), rp)
}

/// Puts the bindings the store holds back into the switch's index, with the lease
/// time they have left; ones whose port is not here are returned (second), to be
/// parked until it comes back (`runtime_ports::ParkedBindings`). The switch's binding rule applies
/// as at run time: a stored binding never shadows a configured static one, and one
/// the configuration would not accept (a group MAC, say) is refused. The refused
/// ones are returned, as removals for the store.
fn restore_bindings(
    switch: &mut Switch,
    records: &[bindings_store::BindingRecord],
) -> (
    Vec<bindings_store::BindingOp>,
    Vec<bindings_store::BindingRecord>,
) {
    let now = held::unix_now();
    let mut restored = 0usize;
    let mut refused = Vec::new();
    let mut orphans = Vec::new();
    for r in records {
        let port = switch.port_id(&r.port);
        let vid = portcullis_dataplane::Vid::new(r.vlan);
        let (Some(port), Some(vid)) = (port, vid) else {
            tracing::info!(port = %r.port, vlan = r.vlan, ip = %r.ip, "stored binding of a port or VLAN that is not here; parked until its port returns");
            orphans.push(r.clone());
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
            duid: r.duid,
        };
        match switch.install_binding(new, Timestamp(0)) {
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
    switch.discard_events();
    tracing::info!(restored, stored = records.len(), "bindings loaded");
    (refused, orphans)
}

/// Writes what an event means for the state store (sticky MACs).
fn persist(store: &sticky_store::StickyMacStore, ev: &Event, names: &[String]) {
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

/// Logs a switch event with its detail as fields of their own (a JSON log gets
/// numbers, booleans and strings, not JSON escaped inside a string). A field the
/// event does not have is left out; a key this list does not know yet goes into
/// `other` as `key=value` pairs.
fn log_event(rec: &EventRecord) {
    let empty = serde_json::Map::new();
    let d = rec.detail.as_object().unwrap_or(&empty);
    let s = |k: &str| d.get(k).and_then(serde_json::Value::as_str);
    let n = |k: &str| d.get(k).and_then(serde_json::Value::as_u64);
    let b = |k: &str| d.get(k).and_then(serde_json::Value::as_bool);
    const KNOWN: [&str; 24] = [
        "port",
        "mac",
        "vid",
        "ip",
        "old",
        "new",
        "source",
        "blocked",
        "owner",
        "up",
        "sticky",
        "kind",
        "action",
        "cause",
        "by_timer",
        "lease_secs",
        "from",
        "to",
        "why",
        "claim",
        "owner_mac",
        "owner_by",
        "owner_source",
        "user",
    ];
    let other: Vec<String> = d
        .iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()) && k.as_str() != "changes")
        .map(|(k, v)| match v.as_str() {
            Some(s) => format!("{k}={s}"),
            None => format!("{k}={v}"),
        })
        .collect();
    let other = (!other.is_empty()).then(|| other.join(" "));
    let port = (!rec.port.is_empty()).then_some(rec.port.as_str());
    tracing::info!(
        target: "portcullis::event",
        event = %rec.event,
        port,
        mac = s("mac"),
        vid = n("vid"),
        ip = s("ip"),
        old = s("old"),
        new = s("new"),
        source = s("source"),
        blocked = b("blocked"),
        owner = s("owner"),
        up = b("up"),
        sticky = b("sticky"),
        kind = s("kind"),
        action = s("action"),
        cause = s("cause"),
        by_timer = b("by_timer"),
        lease_secs = n("lease_secs"),
        from = s("from"),
        to = s("to"),
        why = s("why"),
        claim = s("claim"),
        owner_mac = s("owner_mac"),
        owner_by = s("owner_by"),
        owner_source = s("owner_source"),
        user = s("user"),
        changes = n("changes"),
        other,
        "switch event"
    );
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
        for key in ["port", "owner", "from", "to"] {
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
    EventRecord {
        seq: 0, // numbered when it enters the history
        time: portcullis_control::audit::format_rfc3339(SystemTime::now()),
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

    /// Blocks until SIGINT or SIGTERM; on SIGHUP applies the startup files
    /// (`systemctl reload`, [`service::reload`]) and goes on.
    pub fn wait_for_signal(&self) {
        let Some(rt) = &self.runtime else { return };
        let signals = self.signals.lock().ok().and_then(|mut s| s.take());
        rt.block_on(async {
            let Some(Signals {
                mut term,
                mut hup,
                mut int,
            }) = signals
            else {
                let _ = tokio::signal::ctrl_c().await;
                return;
            };
            loop {
                tokio::select! {
                    _ = int.recv() => {
                        tracing::info!("SIGINT: stopping");
                        break;
                    }
                    _ = term.recv() => {
                        tracing::info!("SIGTERM: stopping");
                        break;
                    }
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP: applying the configuration files");
                        service::reload(self.app.clone(), &self.opts).await;
                    }
                }
            }
        });
        service::notify("STOPPING=1");
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
        if let (Some(shared), Some(rt)) = (self.cluster.take(), self.runtime.as_ref()) {
            rt.block_on(shared.leave(std::time::Duration::from_secs(1)));
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
