//! The scaffolding the daemon's integration tests share, so each test file holds only
//! its configuration, its frames and its assertions. Two harnesses, both on in-memory
//! ports (no root needed):
//!
//! - [`ApiHarness`]: a whole daemon (`start_in_memory`) in a temporary state
//!   directory, with its API router called in-process as a given [`Peer`] (the
//!   `ConnectInfo` the Unix-socket and TCP listeners attach), answers read as JSON,
//!   and its audit log read back.
//! - [`Running`]: a bare data-plane thread ([`DataThread`]) built from a
//!   [`SwitchSpec`], driven through its memory-port handles and command channel;
//!   [`three_port_switch`] is the spec most tests start from.
//!
//! Invariant: a harness owns what it creates: dropping an [`ApiHarness`] removes its
//! state directory, dropping a [`Running`] stops and joins its data-plane thread.

#![allow(dead_code)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use portcullis_control::audit::AuditRecord;
use portcullis_daemon::api::{self, Peer};
use portcullis_daemon::runtime::{Command, DataThread, LinkState, PortIo, PortLinks, port_slots};
use portcullis_daemon::snapshot::{BindingsView, Snapshot};
use portcullis_daemon::{MemoryDaemon, start_in_memory};
use portcullis_dataplane::{
    DEFAULT_HOST_TABLE_SIZE, DEFAULT_MAX_BINDINGS, MacAddr, PortRole, PortSpec, SecurityPolicy,
    Switch, SwitchSpec, Timestamp, Vid, VlanMode, VlanSet,
};
use portcullis_io::{MemoryHandle, RxQueue, memory_port};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant as WallClock};
use tower::ServiceExt;

// ---- a daemon on in-memory ports, called through its API router ------------------

/// A local caller on the Unix socket with this uid (and the same gid).
pub const fn local_peer(uid: u32) -> Peer {
    Peer {
        uid: Some(uid),
        gid: Some(uid),
        pid: Some(4242),
        tcp: None,
    }
}

/// Root on the Unix socket: the admin role.
pub const ROOT: Peer = local_peer(0);

/// The most bytes of an answer read back; larger than any answer the tests provoke
/// (a capture of 1000 frames is the largest).
const ANSWER_LIMIT: usize = 1 << 26;

/// A daemon on in-memory ports in its own state directory, and its API router.
pub struct ApiHarness {
    pub daemon: MemoryDaemon,
    pub dir: PathBuf,
    pub app: axum::Router,
}

impl Drop for ApiHarness {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl ApiHarness {
    /// Starts a daemon on the configuration `text` (errors located in `label`) with
    /// the fresh state directory `pcl-{name}-{pid}` under the temporary directory.
    pub fn start(name: &str, text: &str, label: &str) -> ApiHarness {
        let dir = std::env::temp_dir().join(format!("pcl-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        ApiHarness::start_in(dir, text, label)
    }

    fn start_in(dir: PathBuf, text: &str, label: &str) -> ApiHarness {
        let config = portcullis_control::parse_str(text, label, None).expect("valid config");
        let daemon = start_in_memory(config, &dir).expect("in-memory daemon");
        let app = api::router(daemon.state.clone());
        ApiHarness { daemon, dir, app }
    }

    /// Stops the daemon (its data plane joined, its stores closed), runs `between`
    /// on the state directory, and starts a daemon on `text` there: a restart.
    pub fn restart(
        mut self,
        text: &str,
        label: &str,
        between: impl FnOnce(&std::path::Path),
    ) -> ApiHarness {
        let dir = std::mem::take(&mut self.dir);
        drop(self);
        // The directory is ours again: removed if `between` or the start fails.
        let guard = DirGuard(dir);
        between(&guard.0);
        let config = portcullis_control::parse_str(text, label, None).expect("valid config");
        let daemon = start_in_memory(config, &guard.0).expect("in-memory daemon");
        let app = api::router(daemon.state.clone());
        ApiHarness {
            daemon,
            dir: guard.keep(),
            app,
        }
    }
}

/// Removes a state directory between two daemons unless kept.
struct DirGuard(PathBuf);

impl DirGuard {
    fn keep(mut self) -> PathBuf {
        std::mem::take(&mut self.0)
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl ApiHarness {
    /// `method path` as `peer`, with `body` as JSON and the extra `headers`; the
    /// answer's status and JSON (`Null` when empty).
    pub fn call(
        &self,
        peer: Peer,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        self.raw(peer, json_request(method, path, body, headers))
    }

    /// Sends the request `req` as `peer`; the answer's status and JSON.
    pub fn raw(&self, peer: Peer, req: Request<Body>) -> (StatusCode, Value) {
        self.daemon
            .runtime
            .block_on(send(self.app.clone(), peer, req))
    }

    /// [`ApiHarness::call`] without headers, in the background on the daemon's runtime
    /// (for calls that wait, such as a capture).
    pub fn spawn_call(
        &self,
        peer: Peer,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let req = json_request(method, path, body, &[]);
        self.daemon.runtime.spawn(send(self.app.clone(), peer, req))
    }

    /// The daemon's audit log file.
    pub fn audit_log(&self) -> PathBuf {
        self.dir.join(portcullis_daemon::AUDIT_LOG)
    }

    /// Every record of the audit log, oldest first.
    pub fn audit(&self) -> Vec<AuditRecord> {
        portcullis_control::audit::read_records(&self.audit_log())
            .unwrap()
            .0
    }
}

/// A request with `body` as JSON (and its content type) and the extra `headers`.
fn json_request(
    method: Method,
    path: &str,
    body: Option<Value>,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut req = Request::builder().method(method).uri(path);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    req.body(Body::from(bytes)).unwrap()
}

/// Calls the router `app` with `req` as `peer`; the status and the answer as JSON
/// (`Null` when empty; a panic when it is not JSON).
async fn send(app: axum::Router, peer: Peer, mut req: Request<Body>) -> (StatusCode, Value) {
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), ANSWER_LIMIT)
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, v)
}

// ---- a bare data-plane thread on in-memory ports --------------------------------

/// Memory ports never lose their link.
struct AlwaysUp;

impl PortLinks for AlwaysUp {
    fn state(&self, _: usize) -> LinkState {
        LinkState::Up
    }
    fn reopen(&self, _: usize) -> Result<PortIo, String> {
        Err("memory ports do not go away".into())
    }
}

/// The MAC `52:54:00:00:00:i`: guest `i`'s in these tests' configurations.
pub const fn guest_mac(i: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, 0, i]
}

/// The configured MAC of the guest `g1` of [`three_port_switch`].
pub const G1: [u8; 6] = guest_mac(1);
/// The configured MAC of the guest `g2` of [`three_port_switch`].
pub const G2: [u8; 6] = guest_mac(2);

/// An Ethernet frame: `dst`, `src`, the 802.1Q tag (TPID and TCI) if any,
/// `ethertype`, then `payload` as given (not padded).
pub fn eth(
    dst: [u8; 6],
    src: [u8; 6],
    tag: Option<[u8; 4]>,
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    if let Some(t) = tag {
        f.extend_from_slice(&t);
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The VLAN ID `v` (a valid one: 1 to 4094).
pub fn vid(v: u16) -> Vid {
    Vid::new(v).unwrap()
}

/// A guest port on access VLAN 10 with the configured MAC `mac`, default security.
pub fn guest_port(name: &str, mac: [u8; 6]) -> PortSpec {
    PortSpec {
        name: name.into(),
        role: PortRole::Guest,
        vlan: VlanMode::Access(vid(10)),
        security: SecurityPolicy::default(),
        initial_mac: Some(MacAddr(mac)),
        features: Default::default(),
    }
}

/// The switch `mem`: ports 0 `uplink` (trunk allowing 10, native 1), 1 `g1` and
/// 2 `g2` (guests on access VLAN 10 with the MACs [`G1`], [`G2`]); a MAC table of
/// 16; no ACLs, no static bindings, the default table sizes otherwise.
pub fn three_port_switch() -> SwitchSpec {
    SwitchSpec {
        name: "mem".into(),
        mac_table_size: 16,
        mac_aging_secs: 300,
        ports: vec![
            PortSpec {
                name: "uplink".into(),
                role: PortRole::Uplink,
                vlan: VlanMode::Trunk {
                    allowed: VlanSet::from_vids([vid(10)]),
                    native: Some(vid(1)),
                },
                security: SecurityPolicy::default(),
                initial_mac: None,
                features: Default::default(),
            },
            guest_port("g1", G1),
            guest_port("g2", G2),
        ],
        mac_acls: Vec::new(),
        max_bindings: DEFAULT_MAX_BINDINGS,
        host_table_size: DEFAULT_HOST_TABLE_SIZE,
        overlay: None,
        static_bindings: vec![],
        arp_acls: vec![],
    }
}

/// A data-plane thread, its ports' memory handles (by port index) and its command
/// channel.
pub struct Running {
    pub handles: Vec<MemoryHandle>,
    pub commands: std::sync::mpsc::Sender<Command>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts the data plane of `spec` on one memory port per port of the spec: port
/// `i` on interface `mem{i}` with the circuit ID `mem/{name}`; guests in the port
/// group `web`, uplinks in none.
pub fn start_data_plane(spec: &SwitchSpec) -> Running {
    start_data_plane_wrapped(spec, |_, rx| rx)
}

/// [`start_data_plane`] with each port's receive queue passed through `wrap`
/// (port index, memory queue): a test backend around the memory queue.
pub fn start_data_plane_wrapped(
    spec: &SwitchSpec,
    mut wrap: impl FnMut(usize, Box<dyn RxQueue>) -> Box<dyn RxQueue>,
) -> Running {
    let mut ports = Vec::new();
    let mut handles = Vec::new();
    for i in 0..spec.ports.len() {
        let (rx, tx, h) = memory_port();
        ports.push(PortIo::new(wrap(i, Box::new(rx)), Box::new(tx)));
        handles.push(h);
    }
    let names: Vec<String> = spec.ports.iter().map(|p| p.name.clone()).collect();
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel();
    let (ev_tx, _ev_rx) = tokio::sync::mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let dp = DataThread {
        switch: Switch::new(spec, Timestamp(0)).unwrap(),
        ports: port_slots(
            ports,
            (0..names.len()).map(|i| format!("mem{i}")).collect(),
            spec.ports
                .iter()
                .map(|p| match p.role {
                    PortRole::Uplink | PortRole::Overlay => String::new(),
                    PortRole::Guest => "web".into(),
                })
                .collect(),
        ),
        commands: cmd_rx,
        events: ev_tx,
        stop: stop.clone(),
        clock: portcullis_daemon::runtime::SwitchClock::start(),
        links: Box::new(AlwaysUp),
        link_monitor: None,
        event_buf: Vec::new(),
        attach_now: false,
        wake: None,
        held: portcullis_daemon::held::Held::new(None, names),
    };
    let thread = std::thread::spawn(move || dp.run());
    Running {
        handles,
        commands: cmd_tx,
        stop,
        thread: Some(thread),
    }
}

impl Running {
    /// Waits for the next frame transmitted on port `i`.
    pub fn next_tx(&self, i: usize) -> Vec<u8> {
        let deadline = WallClock::now() + Duration::from_secs(5);
        loop {
            let mut tx = self.handles[i].take_transmitted();
            if !tx.is_empty() {
                assert_eq!(tx.len(), 1, "exactly one copy on port {i}: {tx:?}");
                return tx.remove(0);
            }
            assert!(
                WallClock::now() < deadline,
                "nothing transmitted on port {i}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Asserts that no port has a frame transmitted and not yet taken.
    pub fn assert_no_stray_copies(&self) {
        for (i, port) in self.handles.iter().enumerate() {
            assert!(
                port.take_transmitted().is_empty(),
                "no stray copies on port {i}"
            );
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(Command::Snapshot(tx)).unwrap();
        rx.blocking_recv().unwrap()
    }

    pub fn bindings(&self) -> BindingsView {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands.send(Command::Bindings(tx)).unwrap();
        rx.blocking_recv().unwrap()
    }

    /// The first snapshot that satisfies `done` (frames are counted between batches).
    pub fn snapshot_when(&self, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = WallClock::now() + Duration::from_secs(5);
        loop {
            let s = self.snapshot();
            if done(&s) {
                return s;
            }
            assert!(WallClock::now() < deadline, "never reached: {s:#?}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
