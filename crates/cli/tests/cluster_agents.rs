//! The cluster's agents against a real etcd (Debian's etcd-server, started by the
//! test in a lab namespace), each host's switch an in-memory stand-in: what the
//! cluster decides — host ids, profile roll-out and refusal, the canary, drift,
//! port claims (new, overlap with activation on the guest's first frame, a dead
//! owner, concurrent claims), bindings that follow the guest, revisions against a
//! partitioned host, an etcd outage reconciled, a value in an unknown format — is
//! asserted on etcd's keys and on each host's switch after every step. The real
//! daemons in namespaces are `lab_cluster.rs`.
//!
//! The test thread enters the lab namespace (network namespaces are per thread),
//! so the agents and the CLI reach etcd on the namespace's loopback only.

mod common;

use portcullis_cluster::schema::{self, BindingValue, FORMAT, HostRecord, LogicalPort, PortState};
use portcullis_cluster::{
    Agent, AgentOptions, EtcdOptions, Local, LocalBinding, LocalPort, Shared, Store,
};
use portcullis_dataplane::MacAddr;
use portcullis_dataplane::bindings::BindingSource;
use portcullis_lab::{Guest, Lab};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ENDPOINT: &str = "http://127.0.0.1:23791";
const TLS_ENDPOINT: &str = "https://127.0.0.1:23791";

/// One host's switch, in memory: what the agent did to it.
#[derive(Debug, Default)]
struct FakeSwitch {
    /// The profile text applied (refused when it contains `refuse`).
    profile: String,
    refuse: Option<String>,
    ports: Vec<LocalPort>,
    bindings: Vec<LocalBinding>,
    blocked: HashSet<String>,
    rx: BTreeMap<String, u64>,
    announced: Vec<String>,
    forgotten: Vec<String>,
    /// Sticky secure MACs by port (learned here, or restored from the cluster).
    secure: BTreeMap<String, Vec<MacAddr>>,
    /// The overlay's peers the agent gave last (`None`: none yet).
    overlay_peers: Option<portcullis_cluster::OverlayPeers>,
}

#[derive(Debug, Default)]
struct Fake(Mutex<FakeSwitch>);

impl Fake {
    fn with<T>(&self, f: impl FnOnce(&mut FakeSwitch) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }
}

impl Local for Fake {
    async fn apply_profile(&self, _name: String, text: String) -> Result<(), String> {
        self.with(|s| match &s.refuse {
            Some(m) if text.contains(m.as_str()) => Err(format!("this host refuses {m:?}")),
            _ => {
                s.profile = text;
                Ok(())
            }
        })
    }
    async fn running(&self) -> Result<(String, String), String> {
        Ok((self.with(|s| s.profile.clone()), "[host]\n".to_string()))
    }
    async fn ports(&self) -> Result<Vec<LocalPort>, String> {
        Ok(self.with(|s| s.ports.clone()))
    }
    async fn bindings(&self) -> Result<Vec<LocalBinding>, String> {
        Ok(self.with(|s| s.bindings.clone()))
    }
    async fn binding_count(&self) -> usize {
        self.with(|s| s.bindings.len())
    }
    async fn secure_macs(&self, port: String) -> Vec<MacAddr> {
        self.with(|s| s.secure.get(&port).cloned().unwrap_or_default())
    }
    async fn restore_secure_macs(&self, port: String, macs: Vec<MacAddr>) -> usize {
        self.with(|s| {
            let n = macs.len();
            s.secure.entry(port).or_default().extend(macs);
            n
        })
    }
    async fn restore(&self, port: String, bindings: Vec<LocalBinding>) -> usize {
        self.with(|s| {
            let n = bindings.len();
            s.bindings.retain(|b| b.port != port);
            s.bindings.extend(bindings);
            n
        })
    }
    async fn set_active(&self, port: String, active: bool) {
        self.with(|s| {
            if active {
                s.blocked.remove(&port);
            } else {
                s.blocked.insert(port);
            }
        });
    }
    async fn forget(&self, port: String) {
        self.with(|s| {
            s.bindings.retain(|b| b.port != port);
            s.forgotten.push(port);
        });
    }
    async fn announce(&self, port: String) {
        self.with(|s| s.announced.push(port));
    }
    async fn rx_frames(&self, port: String) -> u64 {
        self.with(|s| s.rx.get(&port).copied().unwrap_or(0))
    }
    async fn set_overlay_peers(&self, peers: portcullis_cluster::OverlayPeers) {
        self.with(|s| s.overlay_peers = Some(peers));
    }
}

/// A host: its switch, the agent's shared state, the agent task.
struct Host {
    name: String,
    fake: Arc<Fake>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

fn options(host: &str) -> AgentOptions {
    let mut etcd = EtcdOptions::new(vec![ENDPOINT.into()]);
    etcd.timeout = Duration::from_secs(1);
    AgentOptions {
        etcd,
        host: host.into(),
        lease_ttl: Duration::from_secs(2),
        commit_wait: Duration::from_millis(250),
        overlay_endpoint: None,
    }
}

fn record(host: &str, hostname: &str, pid: u32) -> HostRecord {
    HostRecord {
        format: FORMAT,
        host: host.into(),
        version: "test".into(),
        hostname: hostname.into(),
        pid,
        started_unix: schema::unix_now(),
        api: None,
        overlay_endpoint: None,
    }
}

fn this_machine() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

async fn start_host(name: &str, refuse: Option<&str>) -> Host {
    start_host_at(name, refuse, None).await
}

/// A host whose record publishes `overlay_endpoint`.
async fn start_host_at(name: &str, refuse: Option<&str>, overlay_endpoint: Option<IpAddr>) -> Host {
    let fake = Arc::new(Fake::default());
    fake.with(|s| s.refuse = refuse.map(str::to_string));
    let shared = Arc::new(Shared::default());
    let opts = options(name);
    // Each host a PID of its own: the stand-ins share this process.
    let mut rec = record(
        name,
        &this_machine(),
        std::process::id() + 1 + name.len() as u32 * 7919,
    );
    rec.overlay_endpoint = overlay_endpoint;
    let lease = portcullis_cluster::register_at_start(&opts, &rec)
        .await
        .expect("registers");
    assert!(lease.is_some(), "etcd answers: registered at start");
    let agent = Agent::new(opts, rec, fake.clone(), shared.clone(), lease);
    let task = tokio::spawn(agent.run());
    Host {
        name: name.into(),
        fake,
        shared,
        task,
    }
}

fn mac(last: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, last])
}

fn guest_port(name: &str, last: u8) -> LocalPort {
    LocalPort {
        name: name.into(),
        macs: vec![mac(last)],
        group: "web".into(),
        metadata: BTreeMap::new(),
    }
}

fn binding(port: &str, last: u8, written_by: &str) -> LocalBinding {
    LocalBinding {
        port: port.into(),
        vlan: 10,
        ip: IpAddr::from([198, 18, 10, last]),
        value: BindingValue {
            format: FORMAT,
            mac: mac(last),
            source: BindingSource::Dhcp,
            lease_end_unix: Some(schema::unix_now() + 3600),
            updated_unix: schema::unix_now(),
            duid: None,
            written_by: written_by.into(),
        },
    }
}

/// A port appears on `h` (a VM started there); the agent is woken as the daemon
/// wakes it after a port change.
fn plug(h: &Host, port: LocalPort) {
    h.fake.with(|s| s.ports.push(port));
    h.shared.wake.notify_one();
}

fn unplug(h: &Host, port: &str) {
    h.fake.with(|s| s.ports.retain(|p| p.name != port));
    h.shared.wake.notify_one();
}

/// `h` commits a binding locally (its switch holds it), then the replicator runs
/// on the committer's thread, as in the daemon.
async fn commit(h: &Host, b: LocalBinding) -> Duration {
    h.fake.with(|s| s.bindings.push(b.clone()));
    let shared = h.shared.clone();
    let rt = tokio::runtime::Handle::current();
    let wait = Duration::from_millis(250);
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        shared.replicate(&rt, wait, vec![(b.port, b.vlan, b.ip, Some(b.value))]);
        t.elapsed()
    })
    .await
    .unwrap()
}

async fn store() -> Store {
    let mut o = EtcdOptions::new(vec![ENDPOINT.into()]);
    o.timeout = Duration::from_secs(1);
    Store::connect(&o).await.unwrap()
}

async fn owner(st: &Store, port: &str) -> Option<(String, PortState)> {
    st.port(port)
        .await
        .unwrap()
        .map(|r| (r.value.owner, r.value.state))
}

/// Polls `cond` every 50 ms for up to `secs`.
async fn until<F: std::future::Future<Output = bool>>(
    what: &str,
    secs: u64,
    mut cond: impl FnMut() -> F,
) {
    let t = Instant::now();
    while !cond().await {
        assert!(
            t.elapsed() < Duration::from_secs(secs),
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lab: a namespace with etcd on its loopback.
struct Etcd {
    lab: Lab,
    ns: Guest,
    data: PathBuf,
    pid: Option<u32>,
    /// With TLS: etcd's (certificate, key) and the CA clients must be signed by.
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl Etcd {
    fn start(lab: Lab, ns: Guest, data: PathBuf, tls: Option<(PathBuf, PathBuf, PathBuf)>) -> Etcd {
        let mut e = Etcd {
            lab,
            ns,
            data,
            pid: None,
            tls,
        };
        e.restart();
        e
    }
    fn endpoint(&self) -> &'static str {
        if self.tls.is_some() {
            TLS_ENDPOINT
        } else {
            ENDPOINT
        }
    }
    fn restart(&mut self) {
        let endpoint = self.endpoint();
        let mut cmd = self.ns.command("etcd");
        if let Some((cert, key, ca)) = &self.tls {
            cmd.arg("--cert-file").arg(cert).arg("--key-file").arg(key);
            cmd.arg("--client-cert-auth")
                .arg("--trusted-ca-file")
                .arg(ca);
        }
        cmd.args([
            "--name",
            "t1",
            "--data-dir",
            self.data.to_str().unwrap(),
            "--listen-client-urls",
            endpoint,
            "--advertise-client-urls",
            endpoint,
            "--listen-peer-urls",
            "http://127.0.0.1:23792",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:23792",
            "--initial-cluster",
            "t1=http://127.0.0.1:23792",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let pid = self.lab.spawn(cmd).expect("start etcd");
        self.pid = Some(pid);
        let t = Instant::now();
        loop {
            let mut probe = self.ns.command("etcdctl");
            probe.args(["--endpoints", endpoint, "endpoint", "health"]);
            if let Some((cert, key, ca)) = &self.tls {
                // etcd's own pair is signed by the same CA: a client it accepts.
                probe
                    .arg("--cacert")
                    .arg(ca)
                    .arg("--cert")
                    .arg(cert)
                    .arg("--key")
                    .arg(key);
            }
            let ok = probe.output().is_ok_and(|o| o.status.success());
            if ok {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "etcd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            self.lab
                .kill_with(pid, libc::SIGKILL, Duration::from_secs(1));
        }
    }
    /// Runs the `portcullis` CLI in the namespace.
    fn cli(&self, args: &[&str]) -> Output {
        self.ns
            .command(common::EXE)
            .args(args)
            .output()
            .expect("run portcullis")
    }
}

/// Runs the future `f` makes on a thread of its own inside `ns`'s network
/// namespace (namespaces are per thread), on a runtime whose threads start there.
fn in_netns<F, Fut>(ns: &Guest, f: F) -> std::thread::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let netns = format!("/run/netns/{}", ns.netns);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&netns).expect("open the namespace");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the namespace");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(f());
        rt.shutdown_timeout(Duration::from_secs(2));
    })
    .join()
}

/// Runs `body` on a thread inside the lab namespace with etcd up.
fn in_cluster<F, Fut>(tag: &str, body: F)
where
    F: FnOnce(Arc<Mutex<Etcd>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    in_cluster_with(tag, false, body);
}

/// [`in_cluster`], with etcd on TLS requiring client certificates when `tls`.
fn in_cluster_with<F, Fut>(tag: &str, tls: bool, body: F)
where
    F: FnOnce(Arc<Mutex<Etcd>>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    // The agents' log, with RUST_LOG=portcullis_cluster=debug.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut lab = common::lab(tag, &["etcd", "etcdctl"]);
    let ns = lab.add_guest("etcd").expect("namespace");
    let dir = lab.scratch_dir().unwrap();
    let data = dir.join("etcd-data");
    let files = tls.then(|| {
        let (ca, issuer) = common::tls::make_ca(&dir, "etcd");
        let (cert, key) = common::tls::make_server_cert(&dir, &issuer);
        (cert, key, ca)
    });
    let etcd = Arc::new(Mutex::new(Etcd::start(lab, ns.clone(), data, files)));
    let e = etcd.clone();
    let r = in_netns(&ns, move || body(e));
    // The lab (etcd, the namespace) goes whatever happened.
    drop(etcd);
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

fn profile_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const WEB: &str = "[switch]\nname = \"cl\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n";

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn host_ids_profiles_a_refusing_host_drift_and_the_canary() {
    in_cluster("clprof", |etcd| async move {
        let dir = etcd.lock().unwrap().lab.scratch_dir().unwrap();
        let st = store().await;
        // h3 cannot serve a profile with a `db` group (say its NIC for it is missing).
        let h1 = start_host("h1", None).await;
        let h2 = start_host("h2", None).await;
        let h3 = start_host("h3", Some("name = \"db\"")).await;

        // A second daemon with a live host id, from another machine: refused, naming it.
        let e =
            portcullis_cluster::register_at_start(&options("h1"), &record("h1", "elsewhere", 4242))
                .await
                .unwrap_err();
        assert!(e.to_string().contains("\"h1\" is already live"), "{e}");
        // This machine's own previous daemon (its PID gone): taken over.
        let stale = record("h9", &this_machine(), 0x7fff_fff0);
        st.register(&stale, Duration::from_secs(60)).await.unwrap();
        let again = record("h9", &this_machine(), std::process::id());
        st.register(&again, Duration::from_secs(2))
            .await
            .expect("predecessor taken over");
        let (hosts, _) = st.list::<HostRecord>(&st.keys().hosts()).await.unwrap();
        let h9 = hosts.iter().find(|(k, _)| k.ends_with("/h9")).unwrap();
        assert_eq!(h9.1.as_ref().unwrap().value.pid, std::process::id());

        // Profile 1 on every host.
        let p1 = profile_file(&dir, "p1.toml", WEB);
        let o =
            etcd.lock()
                .unwrap()
                .cli(&["apply", "--cluster", ENDPOINT, &p1, "--wait-secs", "10"]);
        assert!(o.status.success(), "{}", out(&o));
        let g1 = st.profile().await.unwrap().unwrap().mod_revision;
        for h in [&h1, &h2, &h3] {
            assert!(
                h.fake.with(|s| s.profile.contains("name = \"web\"")),
                "{} applied it",
                h.name
            );
        }
        assert!(out(&o).contains("3 of 3 host(s) applied"), "{}", out(&o));
        let o = etcd.lock().unwrap().cli(&["check", "--cluster", ENDPOINT]);
        assert_eq!(o.status.code(), Some(0), "compliant: {}", out(&o));

        // Profile 2 adds `db`: h3 refuses, keeps generation g1, says why; the others apply.
        let p2 = profile_file(
            &dir,
            "p2.toml",
            &format!("{WEB}\n[[port_group]]\nname = \"db\"\nvlan = 20\n"),
        );
        let o =
            etcd.lock()
                .unwrap()
                .cli(&["apply", "--cluster", ENDPOINT, &p2, "--wait-secs", "10"]);
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        assert!(
            out(&o).contains("h3")
                && out(&o).contains("NOT applied")
                && out(&o).contains("refuses"),
            "{}",
            out(&o)
        );
        let g2 = st.profile().await.unwrap().unwrap().mod_revision;
        assert!(
            h3.fake.with(|s| !s.profile.contains("db")),
            "h3 keeps its last good profile"
        );
        let status =
            etcd.lock()
                .unwrap()
                .cli(&["cluster", "status", "--cluster", ENDPOINT, "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let by = |h: &str| {
            v["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["host"] == h)
                .unwrap()
                .clone()
        };
        assert_eq!(by("h1")["generation"], g2);
        assert_eq!(by("h3")["generation"], g1);
        assert_eq!(by("h3")["health"], "degraded");
        // Drift: h3, on the `db` group, field by field; h1 and h2 compliant.
        let o = etcd.lock().unwrap().cli(&["check", "--cluster", ENDPOINT]);
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        let text = out(&o);
        assert!(
            text.contains("== h1: compliant") && text.contains("== h2: compliant"),
            "{text}"
        );
        assert!(
            text.contains("== h3: DRIFT") && text.contains("db"),
            "{text}"
        );

        // Back to profile 1 everywhere, then a canary on h3 of a profile it refuses:
        // withdrawn, nothing else changes.
        let o =
            etcd.lock()
                .unwrap()
                .cli(&["apply", "--cluster", ENDPOINT, &p1, "--wait-secs", "10"]);
        assert!(o.status.success(), "{}", out(&o));
        let g3 = st.profile().await.unwrap().unwrap().mod_revision;
        let o = etcd.lock().unwrap().cli(&[
            "apply",
            "--cluster",
            ENDPOINT,
            "--canary",
            "h3",
            &p2,
            "--wait-secs",
            "10",
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        assert!(out(&o).contains("withdrawn"), "{}", out(&o));
        assert_eq!(
            st.profile().await.unwrap().unwrap().mod_revision,
            g3,
            "the profile is unchanged"
        );
        assert!(st.canary().await.unwrap().is_none());
        for h in [&h1, &h2, &h3] {
            assert!(
                h.fake.with(|s| !s.profile.contains("db")),
                "{} never saw it",
                h.name
            );
        }
        // A canary that works on h2: applied there first, then everywhere.
        let p3 = profile_file(
            &dir,
            "p3.toml",
            &WEB.replace("vlan = 10", "vlan = 10\nip_source_guard = \"ip-mac\""),
        );
        let o = etcd.lock().unwrap().cli(&[
            "apply",
            "--cluster",
            ENDPOINT,
            "--canary",
            "h2",
            &p3,
            "--wait-secs",
            "10",
        ]);
        assert!(o.status.success(), "{}", out(&o));
        assert!(
            out(&o).contains("canary: h2 applied it and is compliant"),
            "{}",
            out(&o)
        );
        for h in [&h1, &h2, &h3] {
            assert!(
                h.fake.with(|s| s.profile.contains("ip_source_guard")),
                "{} applied the rolled-out canary",
                h.name
            );
        }
        // A file that does not validate: refused before anything is stored.
        let bad = profile_file(&dir, "bad.toml", "[switch]\nname = 7\n");
        let before = st.profile().await.unwrap().unwrap().mod_revision;
        let o = etcd
            .lock()
            .unwrap()
            .cli(&["apply", "--cluster", ENDPOINT, &bad]);
        assert_eq!(o.status.code(), Some(2), "{}", out(&o));
        assert_eq!(st.profile().await.unwrap().unwrap().mod_revision, before);
        for h in [h1, h2, h3] {
            h.task.abort();
        }
    });
}

#[test]
fn ports_follow_their_guest_and_revisions_decide() {
    in_cluster("clport", |etcd| async move {
        let st = store().await;
        let a = start_host("a", None).await;
        let b = start_host("b", None).await;
        let c = start_host("c", None).await;

        // vm1 starts on a: a new logical port, owned by a; its lease goes to etcd.
        plug(&a, guest_port("vm1", 1));
        until("a owns vm1", 5, || async {
            owner(&st, "vm1").await == Some(("a".into(), PortState::Active))
        })
        .await;
        commit(&a, binding("vm1", 1, "a")).await;
        // Port security learns a sticky MAC behind vm1 on a (the daemon marks the
        // port for the agent): it reaches etcd.
        a.fake
            .with(|s| s.secure.insert("vm1".into(), vec![mac(0x21)]));
        a.shared.mark_dirty("vm1");
        until("the sticky MAC in etcd", 5, || async {
            st.port_secure_macs("vm1")
                .await
                .is_ok_and(|m| m == vec![mac(0x21)])
        })
        .await;
        let in_etcd = st.port_bindings("vm1").await.unwrap();
        assert_eq!(in_etcd.len(), 1);
        assert_eq!(
            (in_etcd[0].2.mac, in_etcd[0].2.written_by.as_str()),
            (mac(1), "a")
        );

        // Live migration to b: while a still serves vm1, b's port is blocked.
        plug(&b, guest_port("vm1", 1));
        until("b blocks its vm1", 5, || async {
            b.fake.with(|s| s.blocked.contains("vm1"))
        })
        .await;
        assert_eq!(
            owner(&st, "vm1").await,
            Some(("a".into(), PortState::Active))
        );
        assert!(b.fake.with(|s| s.bindings.is_empty()));
        // The guest resumes on b and speaks (QEMU's RARP): b claims, gets the
        // binding with no DHCP, announces; a blocks its copy and forgets the binding.
        let old_rev = st.port("vm1").await.unwrap().unwrap().mod_revision;
        b.fake.with(|s| *s.rx.entry("vm1".into()).or_default() += 1);
        until("b owns vm1", 5, || async {
            owner(&st, "vm1").await == Some(("b".into(), PortState::Active))
        })
        .await;
        until("b active with the binding, announced", 5, || async {
            b.fake.with(|s| {
                !s.blocked.contains("vm1")
                    && !s.announced.is_empty()
                    && s.bindings
                        .iter()
                        .any(|x| x.ip == IpAddr::from([198, 18, 10, 1]) && x.value.mac == mac(1))
            })
        })
        .await;
        assert_eq!(
            b.fake.with(|s| s.announced.clone()),
            vec!["vm1".to_string()]
        );
        until("a forgot vm1", 5, || async {
            a.fake
                .with(|s| s.forgotten.contains(&"vm1".to_string()) && s.blocked.contains("vm1"))
        })
        .await;
        assert!(a.fake.with(|s| s.bindings.iter().all(|x| x.port != "vm1")));
        // a, as a partitioned host would, writes with its old claim: refused, etcd unchanged.
        let stale = vec![(
            10,
            IpAddr::from([198, 18, 10, 99]),
            Some(binding("vm1", 99, "a").value),
        )];
        assert!(!st.write_bindings("vm1", old_rev, &stale).await.unwrap());
        assert_eq!(st.port_bindings("vm1").await.unwrap().len(), 1);

        // Stop on b, start on c: b marks it away, c claims at once (no first frame).
        unplug(&b, "vm1");
        until("vm1 away", 5, || async {
            owner(&st, "vm1").await == Some(("b".into(), PortState::Away))
        })
        .await;
        plug(&c, guest_port("vm1", 1));
        until("c owns vm1", 5, || async {
            owner(&st, "vm1").await == Some(("c".into(), PortState::Active))
        })
        .await;
        until("c serves vm1 with its binding", 5, || async {
            c.fake
                .with(|s| !s.blocked.contains("vm1") && s.bindings.len() == 1)
        })
        .await;

        // Two hosts claim one free port at the same moment: one wins, the other
        // stays blocked.
        let lp = LogicalPort {
            format: FORMAT,
            owner: "gone".into(),
            macs: vec![mac(2)],
            group: "web".into(),
            metadata: BTreeMap::new(),
            claimed_unix: 0,
            state: PortState::Away,
        };
        st.claim_port("vm2", &lp, true).await.unwrap();
        plug(&a, guest_port("vm2", 2));
        plug(&b, guest_port("vm2", 2));
        until("vm2 claimed", 5, || async {
            owner(&st, "vm2").await.is_some_and(|(o, _)| o != "gone")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (won, _) = owner(&st, "vm2").await.unwrap();
        let (winner, loser) = if won == "a" { (&a, &b) } else { (&b, &a) };
        assert!(
            winner.fake.with(|s| !s.blocked.contains("vm2")),
            "the winner serves vm2"
        );
        assert!(
            loser.fake.with(|s| s.blocked.contains("vm2")),
            "the loser blocks vm2"
        );
        let claims = a
            .shared
            .claims_lost
            .load(std::sync::atomic::Ordering::Relaxed)
            + b.shared
                .claims_lost
                .load(std::sync::atomic::Ordering::Relaxed);
        let blocked_by_live = won == "a" || won == "b";
        assert!(
            blocked_by_live && claims <= 1,
            "one claim lost at most ({claims})"
        );

        // A value written by hand in an unknown format: no host overwrites it or stops.
        let mut cl = st.client();
        cl.put(
            st.keys().port("vm3"),
            r#"{"format":9,"owner":"someone"}"#,
            None,
        )
        .await
        .unwrap();
        plug(&c, guest_port("vm3", 3));
        tokio::time::sleep(Duration::from_millis(800)).await;
        let raw = cl.get(st.keys().port("vm3"), None).await.unwrap();
        assert_eq!(
            raw.kvs()[0].value_str().unwrap(),
            r#"{"format":9,"owner":"someone"}"#
        );
        assert!(!c.task.is_finished());

        // etcd dies mid-traffic: a lease made meanwhile is released on the local
        // commit alone (within the bound), kept, and in etcd once it is back.
        plug(&a, guest_port("vm4", 4));
        until("a owns vm4", 5, || async {
            owner(&st, "vm4").await.is_some()
        })
        .await;
        etcd.lock().unwrap().kill();
        let waited = commit(&a, binding("vm4", 4, "a")).await;
        assert!(
            waited <= Duration::from_millis(600),
            "the ACK waited {waited:?}"
        );
        assert!(a.shared.dirty_ports() >= 1 || !a.shared.connected());
        etcd.lock().unwrap().restart();
        let st = store().await;
        until("the outage's binding reconciled", 15, || async {
            st.port_bindings("vm4")
                .await
                .is_ok_and(|b| b.len() == 1 && b[0].2.written_by == "a")
        })
        .await;
        assert_eq!(
            st.port_bindings("vm1").await.unwrap().len(),
            1,
            "nothing lost"
        );

        // A host dies without leaving (kill -9): its key goes with its lease, and
        // its guest is claimed elsewhere without waiting for a first frame.
        a.task.abort();
        until("a's key gone", 10, || async {
            !st.host_live("a").await.unwrap_or(true)
        })
        .await;
        plug(&b, guest_port("vm4", 4));
        until("b owns vm4", 5, || async {
            owner(&st, "vm4").await == Some(("b".into(), PortState::Active))
        })
        .await;
        until("b serves vm4 with its binding", 5, || async {
            b.fake
                .with(|s| !s.blocked.contains("vm4") && s.bindings.iter().any(|x| x.port == "vm4"))
        })
        .await;
        for h in [b, c] {
            h.task.abort();
        }
    });
}

/// The overlay's peers follow the port records: every host's switch gets the
/// guests of the other hosts that publish an overlay endpoint, behind that
/// endpoint; a guest that moves from a to b moves to b's endpoint on every other
/// host (pushed on the port record's change, not polled); a host that dies takes
/// its guests away with its lease.
#[test]
fn overlay_peers_follow_the_port_records() {
    in_cluster("clovl", |_etcd| async move {
        let st = store().await;
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        let (ip_a, ip_b, ip_c) = (ip("198.18.100.1"), ip("198.18.100.2"), ip("198.18.100.3"));
        let a = start_host_at("a", None, Some(ip_a)).await;
        let b = start_host_at("b", None, Some(ip_b)).await;
        let c = start_host_at("c", None, Some(ip_c)).await;
        // d has no endpoint (no overlay): it sees the others', and its own guests
        // are no one's peers.
        let d = start_host("d", None).await;
        let peers = |h: &Host| h.fake.with(|s| s.overlay_peers.clone());
        let web = |m: u8| ("web".to_string(), mac(m));

        plug(&a, guest_port("vm1", 1));
        plug(&d, guest_port("vm9", 9));
        until("vm1 on a, vm9 on d", 5, || async {
            owner(&st, "vm1").await == Some(("a".into(), PortState::Active))
                && owner(&st, "vm9").await == Some(("d".into(), PortState::Active))
        })
        .await;
        let want = |at: IpAddr| -> Vec<(IpAddr, Vec<(String, MacAddr)>)> {
            [ip_a, ip_b, ip_c]
                .into_iter()
                .map(|e| (e, if e == at { vec![web(1)] } else { vec![] }))
                .collect()
        };
        let without = |me: IpAddr, mut v: Vec<(IpAddr, Vec<(String, MacAddr)>)>| {
            v.retain(|(e, _)| *e != me);
            Some(v)
        };
        until("every host has vm1 behind a", 5, || async {
            peers(&b) == without(ip_b, want(ip_a))
                && peers(&c) == without(ip_c, want(ip_a))
                && peers(&d) == Some(want(ip_a))
                && peers(&a) == without(ip_a, want(ip_a))
        })
        .await;
        // a's own guest is not its peer; d's guest is no one's.
        assert_eq!(peers(&a), Some(vec![(ip_b, vec![]), (ip_c, vec![])]));

        // vm1 migrates to b: blocked there until it speaks, then b claims it.
        plug(&b, guest_port("vm1", 1));
        until("b blocks its vm1", 5, || async {
            b.fake.with(|s| s.blocked.contains("vm1"))
        })
        .await;
        assert_eq!(peers(&c), without(ip_c, want(ip_a)), "still at a");
        b.fake.with(|s| *s.rx.entry("vm1".into()).or_default() += 1);
        until("b owns vm1", 5, || async {
            owner(&st, "vm1").await == Some(("b".into(), PortState::Active))
        })
        .await;
        until("every host has vm1 behind b", 5, || async {
            peers(&a) == without(ip_a, want(ip_b))
                && peers(&c) == without(ip_c, want(ip_b))
                && peers(&d) == Some(want(ip_b))
                && peers(&b) == without(ip_b, want(ip_b))
        })
        .await;

        // b dies without leaving: its record goes with its lease, and vm1 with it.
        b.task.abort();
        until("b's guests gone from the overlay", 10, || async {
            peers(&c) == Some(vec![(ip_a, vec![])]) && peers(&a) == Some(vec![(ip_c, vec![])])
        })
        .await;
        for h in [a, c, d] {
            h.task.abort();
        }
    });
}

#[test]
fn etcd_over_tls_takes_a_host_with_a_client_certificate_only() {
    in_cluster_with("cltls", true, |etcd| async move {
        let (cert, key, ca) = etcd.lock().unwrap().tls.clone().unwrap();
        let mut etcd_opts = EtcdOptions::new(vec![TLS_ENDPOINT.into()]);
        etcd_opts.timeout = Duration::from_secs(2);
        etcd_opts.ca = Some(ca.clone());
        // Without a client certificate: refused (no host key written).
        let mut opts = AgentOptions {
            etcd: etcd_opts.clone(),
            ..options("t1")
        };
        let rec = record("t1", &this_machine(), std::process::id() + 11);
        let without = portcullis_cluster::register_at_start(&opts, &rec)
            .await
            .unwrap();
        assert_eq!(
            without, None,
            "no client certificate: etcd does not answer this host"
        );
        // With one signed by etcd's CA: registered, and the CLI reads the cluster.
        opts.etcd.cert = Some(cert.clone());
        opts.etcd.key = Some(key.clone());
        let lease = portcullis_cluster::register_at_start(&opts, &rec)
            .await
            .unwrap();
        assert!(lease.is_some());
        let st = Store::connect(&opts.etcd).await.unwrap();
        assert!(st.host_live("t1").await.unwrap());
        let o = etcd.lock().unwrap().cli(&[
            "cluster",
            "status",
            "--cluster",
            TLS_ENDPOINT,
            "--etcd-ca",
            ca.to_str().unwrap(),
            "--etcd-cert",
            cert.to_str().unwrap(),
            "--etcd-key",
            key.to_str().unwrap(),
            "--json",
        ]);
        assert!(o.status.success(), "{}", out(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["hosts"][0]["host"], "t1");
        // A key file without its certificate is a usage error, not a silent downgrade.
        let o = etcd.lock().unwrap().cli(&[
            "cluster",
            "status",
            "--cluster",
            TLS_ENDPOINT,
            "--etcd-key",
            key.to_str().unwrap(),
        ]);
        assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    });
}

/// Three etcd members in one lab namespace (client URL 127.0.0.1:2400N).
struct Members {
    lab: Lab,
    ns: Guest,
    dir: PathBuf,
    pids: BTreeMap<String, u32>,
}

fn client_url(n: u8) -> String {
    format!("http://127.0.0.1:{}", 24000 + u16::from(n))
}

fn peer_url(n: u8) -> String {
    format!("http://127.0.0.1:{}", 24100 + u16::from(n))
}

impl Members {
    /// Starts member `n` of the cluster `initial` (`existing`: joining one that runs).
    fn start(&mut self, n: u8, initial: &[u8], existing: bool) {
        let cluster: Vec<String> = initial
            .iter()
            .map(|m| format!("m{m}={}", peer_url(*m)))
            .collect();
        let mut cmd = self.ns.command("etcd");
        cmd.args(["--name", &format!("m{n}")])
            .arg("--data-dir")
            .arg(self.dir.join(format!("m{n}")))
            .args(["--listen-client-urls", &client_url(n)])
            .args(["--advertise-client-urls", &client_url(n)])
            .args(["--listen-peer-urls", &peer_url(n)])
            .args(["--initial-advertise-peer-urls", &peer_url(n)])
            .args(["--initial-cluster", &cluster.join(",")])
            .args([
                "--initial-cluster-state",
                if existing { "existing" } else { "new" },
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = self.lab.spawn(cmd).expect("start an etcd member");
        self.pids.insert(format!("m{n}"), pid);
    }
    fn kill(&mut self, n: u8) {
        if let Some(pid) = self.pids.remove(&format!("m{n}")) {
            self.lab
                .kill_with(pid, libc::SIGKILL, Duration::from_secs(1));
        }
    }
    /// `etcdctl` against `endpoints`.
    fn ctl(&self, endpoints: &[u8], args: &[&str]) -> Output {
        let eps: Vec<String> = endpoints.iter().map(|n| client_url(*n)).collect();
        self.ns
            .command("etcdctl")
            .args(["--endpoints", &eps.join(",")])
            .args(args)
            .output()
            .expect("run etcdctl")
    }
    fn wait_healthy(&self, n: u8) {
        let t = Instant::now();
        while !self.ctl(&[n], &["endpoint", "health"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "member m{n} is not healthy"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn an_etcd_member_killed_and_replaced_changes_nothing_for_the_guests() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut lab = common::lab("clmember", &["etcd", "etcdctl"]);
    let ns = lab.add_guest("etcd").expect("namespace");
    let dir = lab.scratch_dir().unwrap();
    let mut m = Members {
        lab,
        ns: ns.clone(),
        dir,
        pids: BTreeMap::new(),
    };
    for n in 1..=3 {
        m.start(n, &[1, 2, 3], false);
    }
    for n in 1..=3 {
        m.wait_healthy(n);
    }
    let m = Arc::new(Mutex::new(m));
    let mm = m.clone();
    let r = in_netns(&ns, move || {
        async move {
            let endpoints: Vec<String> = (1..=3).map(client_url).collect();
            let host = |name: &str| {
                let mut o = options(name);
                o.etcd.endpoints = endpoints.clone();
                o.lease_ttl = Duration::from_secs(5);
                o
            };
            let mut hosts = Vec::new();
            for name in ["a", "b"] {
                let fake = Arc::new(Fake::default());
                let shared = Arc::new(Shared::default());
                let rec = record(
                    name,
                    &this_machine(),
                    std::process::id() + 7 + name.len() as u32,
                );
                let lease = portcullis_cluster::register_at_start(&host(name), &rec)
                    .await
                    .unwrap();
                assert!(lease.is_some());
                let task = tokio::spawn(
                    Agent::new(host(name), rec, fake.clone(), shared.clone(), lease).run(),
                );
                hosts.push(Host {
                    name: name.into(),
                    fake,
                    shared,
                    task,
                });
            }
            let (a, b) = (&hosts[0], &hosts[1]);
            let mut eo = EtcdOptions::new(endpoints.clone());
            eo.timeout = Duration::from_secs(1);
            let st = Store::connect(&eo).await.unwrap();
            plug(a, guest_port("vm1", 1));
            plug(b, guest_port("vm2", 2));
            until("both ports owned", 10, || async {
                owner(&st, "vm1").await.is_some_and(|o| o.0 == "a")
                    && owner(&st, "vm2").await.is_some_and(|o| o.0 == "b")
            })
            .await;
            commit(a, binding("vm1", 1, "a")).await;

            // Member m1 dies: the hosts go on; a lease made now reaches etcd.
            mm.lock().unwrap().kill(1);
            commit(b, binding("vm2", 2, "b")).await;
            let st = {
                let mut eo = EtcdOptions::new(vec![client_url(2), client_url(3)]);
                eo.timeout = Duration::from_secs(2);
                Store::connect(&eo).await.unwrap()
            };
            until("vm2's binding in etcd without m1", 20, || async {
                st.port_bindings("vm2").await.is_ok_and(|v| v.len() == 1)
            })
            .await;

            // m1 is replaced by m4 (remove, add, start), then m2 dies too: the
            // quorum now needs the new member.
            let list = mm.lock().unwrap().ctl(&[2, 3], &["member", "list"]);
            let text = String::from_utf8_lossy(&list.stdout).into_owned();
            let id = text
                .lines()
                .find(|l| l.contains(", m1,"))
                .and_then(|l| l.split(',').next())
                .expect("m1 listed")
                .to_string();
            assert!(
                mm.lock()
                    .unwrap()
                    .ctl(&[2, 3], &["member", "remove", &id])
                    .status
                    .success()
            );
            // etcd refuses a reconfiguration until its members have been
            // connected for a while ("unhealthy cluster"): retry.
            let t = Instant::now();
            loop {
                let add = mm.lock().unwrap().ctl(
                    &[2, 3],
                    &[
                        "member",
                        "add",
                        "m4",
                        &format!("--peer-urls={}", peer_url(4)),
                    ],
                );
                if add.status.success() {
                    break;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "member add: {}",
                    String::from_utf8_lossy(&add.stderr)
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            {
                let mut g = mm.lock().unwrap();
                g.start(4, &[2, 3, 4], true);
                g.wait_healthy(4);
                g.kill(2);
            }
            commit(a, binding("vm1", 11, "a")).await;
            let st = {
                let mut eo = EtcdOptions::new(vec![client_url(3), client_url(4)]);
                eo.timeout = Duration::from_secs(2);
                Store::connect(&eo).await.unwrap()
            };
            until("a's new binding in etcd (m3 + m4)", 30, || async {
                st.port_bindings("vm1").await.is_ok_and(|v| v.len() == 2)
            })
            .await;
            // Nothing changed for the guests: owners, hosts, nothing blocked or forgotten.
            assert_eq!(
                owner(&st, "vm1").await,
                Some(("a".into(), PortState::Active))
            );
            assert_eq!(
                owner(&st, "vm2").await,
                Some(("b".into(), PortState::Active))
            );
            assert!(st.host_live("a").await.unwrap() && st.host_live("b").await.unwrap());
            for h in &hosts {
                assert!(
                    h.fake
                        .with(|s| s.blocked.is_empty() && s.forgotten.is_empty()),
                    "{} unchanged",
                    h.name
                );
            }
            for h in hosts {
                h.task.abort();
            }
        }
    });
    drop(m);
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}
