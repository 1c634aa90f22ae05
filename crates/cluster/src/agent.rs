//! A host's cluster agent: keeps this host registered (its key under a lease),
//! applies the cluster's profile (or a canary meant for it) through the host's own
//! apply path, claims the logical ports it serves, replicates its bindings, gives
//! up a port another host claimed, and gives the switch's overlay the guests
//! behind the other hosts' tunnel endpoints (`overlay.rs`) as their port records
//! change. It acts on the switch only through [`Local`] — the daemon's API, the
//! one reconfiguration path.
//!
//! Invariants:
//! - **Fail static.** Losing etcd changes nothing on the switch: the agent only
//!   stops writing, marks what it could not write, and retries; forwarding and
//!   enforcement go on with the last state.
//! - **Nothing lost.** The host's own binding store (redb) is the durable truth
//!   for the ports it owns; after any failed write the port is marked dirty and
//!   reconciled (etcd made equal to the host) when etcd answers again.
//! - **The overlay follows the records.** The overlay's peers are recomputed from
//!   the watched host and port records and pushed to the switch in the same turn
//!   as the watch event that changed them (no polling); losing etcd keeps the
//!   last ones (fail static).
//! - **Revisions decide.** Every write about a port is guarded by the revision of
//!   this host's claim (`store.rs`), so a host that comes back from a partition
//!   after its port moved writes nothing about it, and forgets it instead.

use crate::overlay::{ClusterView, OverlayPeers, overlay_peers};
use crate::schema::{
    self, BindingValue, CanaryRecord, FORMAT, HostRecord, HostStatus, KeyKind, LogicalPort,
    PortState, ProfileRecord,
};
use crate::store::{Claim, ClusterError, EtcdOptions, Read, Store};
use etcd_client::{EventType, WatchOptions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A guest port of this host, as the agent needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalPort {
    pub name: String,
    pub macs: Vec<portcullis_dataplane::MacAddr>,
    pub group: String,
    pub metadata: BTreeMap<String, String>,
}

/// One binding held on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBinding {
    pub port: String,
    pub vlan: u16,
    pub ip: IpAddr,
    pub value: BindingValue,
}

/// The switch of this host, as the agent drives it (the daemon implements it on
/// its API).
pub trait Local: Send + Sync + 'static {
    /// Applies `text` (a profile without `[host]`; the host keeps its binding).
    /// `Err`: why it was refused (nothing changed).
    fn apply_profile(
        &self,
        name: String,
        text: String,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// The running profile and host binding, as TOML.
    fn running(&self) -> impl Future<Output = Result<(String, String), String>> + Send;
    /// The guest ports (uplinks are not logical ports).
    fn ports(&self) -> impl Future<Output = Result<Vec<LocalPort>, String>> + Send;
    /// Every binding held here (static ones excluded: they are configuration).
    fn bindings(&self) -> impl Future<Output = Result<Vec<LocalBinding>, String>> + Send;
    /// How many bindings the switch holds (for the status).
    fn binding_count(&self) -> impl Future<Output = usize> + Send;
    /// The sticky secure MACs port security learned on `port` (this host's store).
    fn secure_macs(
        &self,
        port: String,
    ) -> impl Future<Output = Vec<portcullis_dataplane::MacAddr>> + Send;
    /// Gives `port` the sticky secure MACs its guest had on another host (stored
    /// here, then in force on the port); answers how many it took.
    fn restore_secure_macs(
        &self,
        port: String,
        macs: Vec<portcullis_dataplane::MacAddr>,
    ) -> impl Future<Output = usize> + Send;
    /// Gives `port` exactly a moved guest's bindings (the cluster's), in place of
    /// any it holds here; answers how many were taken.
    fn restore(
        &self,
        port: String,
        bindings: Vec<LocalBinding>,
    ) -> impl Future<Output = usize> + Send;
    /// Blocks (`false`) or unblocks `port` while another host owns it.
    fn set_active(&self, port: String, active: bool) -> impl Future<Output = ()> + Send;
    /// `port` was claimed by another host: forget its bindings here (not in the
    /// cluster: they are the new owner's now).
    fn forget(&self, port: String) -> impl Future<Output = ()> + Send;
    /// A claim of `port` from another host succeeded: tell the network the guest
    /// is here now (RARP on its uplinks).
    fn announce(&self, port: String) -> impl Future<Output = ()> + Send;
    /// The frames received on `port` so far (a blocked port counts what it drops):
    /// the guest's first frame activates a port another host still owns.
    fn rx_frames(&self, port: String) -> impl Future<Output = u64> + Send;
    /// The overlay's peers from the cluster (each other host's tunnel endpoint with
    /// the (port group, MAC) of the guests it serves), in place of the last ones;
    /// the switch maps each group to its VLAN. Called on every change of the
    /// records, after a profile apply and when the agent is woken: the same peers
    /// may come again.
    fn set_overlay_peers(&self, peers: OverlayPeers) -> impl Future<Output = ()> + Send;
}

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentOptions {
    pub etcd: EtcdOptions,
    pub host: String,
    /// The host's lease: its key goes this long after it stops renewing it.
    pub lease_ttl: Duration,
    /// The longest a binding commit waits for etcd before the ACK goes on the local
    /// commit alone (the binding is then written by the next reconcile).
    pub commit_wait: Duration,
    pub overlay_endpoint: Option<IpAddr>,
}

/// What the agent and the binding replicator share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The store while etcd answers (`None`: disconnected).
    store: Mutex<Option<Store>>,
    connected: AtomicBool,
    /// Ports this host owns, with its claim's revision.
    owned: Mutex<HashMap<String, i64>>,
    /// Ports whose bindings etcd may not have as this host does.
    dirty: Mutex<HashSet<String>>,
    /// The host's lease (0: none yet).
    lease: std::sync::atomic::AtomicI64,
    /// Wakes the agent (a port changed here, a write failed).
    pub wake: tokio::sync::Notify,
    /// Counters (`cluster status`, metrics).
    pub writes: AtomicU64,
    pub write_failures: AtomicU64,
    pub reconciles: AtomicU64,
    pub claims: AtomicU64,
    pub claims_lost: AtomicU64,
}

impl Shared {
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
    /// Marks `port`'s state (bindings, secure MACs) for the next reconcile: the
    /// daemon calls it when port security learns a sticky MAC.
    pub fn mark_dirty(&self, port: &str) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(port.to_string());
        }
        self.wake.notify_one();
    }
    fn owned_revision(&self, port: &str) -> Option<i64> {
        self.owned.lock().ok()?.get(port).copied()
    }
    /// Leaves the cluster (a daemon stopping): ends the host's lease, so that its
    /// key and status go at once and its ports can be claimed without waiting for
    /// the TTL. Waits at most `wait`.
    pub async fn leave(&self, wait: Duration) {
        let store = self.store.lock().ok().and_then(|s| s.clone());
        let lease = self.lease.load(Ordering::Relaxed);
        if let Some(store) = store
            && lease != 0
        {
            let _ = tokio::time::timeout(wait, crate::store::revoke(&store, lease)).await;
        }
    }

    pub fn owned_ports(&self) -> usize {
        self.owned.lock().map_or(0, |o| o.len())
    }
    pub fn dirty_ports(&self) -> usize {
        self.dirty.lock().map_or(0, |d| d.len())
    }

    /// Writes committed binding changes of this host to etcd, waiting at most
    /// `wait` (called on the binding committer's thread after the local commit,
    /// before the held ACKs are released). A port not written (etcd away, slow,
    /// or the port not yet claimed) is marked dirty for the agent's reconcile.
    pub fn replicate(
        &self,
        rt: &tokio::runtime::Handle,
        wait: Duration,
        changes: Vec<(String, u16, IpAddr, Option<BindingValue>)>,
    ) {
        let mut by_port: BTreeMap<String, Vec<(u16, IpAddr, Option<BindingValue>)>> =
            BTreeMap::new();
        for (port, vlan, ip, v) in changes {
            by_port.entry(port).or_default().push((vlan, ip, v));
        }
        let store = match self.store.lock() {
            Ok(s) if self.connected() => s.clone(),
            _ => None,
        };
        let Some(store) = store else {
            for port in by_port.keys() {
                self.mark_dirty(port);
            }
            return;
        };
        let deadline = std::time::Instant::now() + wait;
        for (port, changes) in by_port {
            let Some(rev) = self.owned_revision(&port) else {
                self.mark_dirty(&port);
                continue;
            };
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let r = rt.block_on(async {
                tokio::time::timeout(left, store.write_bindings(&port, rev, &changes)).await
            });
            match r {
                Ok(Ok(true)) => {
                    self.writes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(Ok(false)) => {
                    // Not ours any more: the agent's watch forgets it.
                    self.wake.notify_one();
                }
                Ok(Err(_)) | Err(_) => {
                    self.write_failures.fetch_add(1, Ordering::Relaxed);
                    // Stop waiting on etcd until the agent sees it answer again.
                    self.connected.store(false, Ordering::Relaxed);
                    self.mark_dirty(&port);
                }
            }
        }
    }
}

/// Registers the host at daemon start: refuses a host id that is live
/// ([`ClusterError::HostLive`]); answers `Ok(None)` when etcd does not answer (the
/// daemon starts on its local state and the agent registers later).
pub async fn register_at_start(
    opts: &AgentOptions,
    record: &HostRecord,
) -> Result<Option<i64>, ClusterError> {
    let attempt = async {
        let store = Store::connect(&opts.etcd).await?;
        store.register(record, opts.lease_ttl).await
    };
    match attempt.await {
        Ok(lease) => Ok(Some(lease)),
        Err(e @ ClusterError::HostLive { .. }) => Err(e),
        Err(e @ (ClusterError::Invalid(_) | ClusterError::File { .. })) => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "etcd does not answer; starting on local state (the agent keeps trying)");
            Ok(None)
        }
    }
}

/// The agent's counters, for the daemon's metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterStats {
    pub connected: bool,
    pub owned_ports: usize,
    pub dirty_ports: usize,
    pub writes: u64,
    pub write_failures: u64,
    pub reconciles: u64,
    pub claims: u64,
    pub claims_lost: u64,
}

impl Shared {
    pub fn stats(&self) -> ClusterStats {
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ClusterStats {
            connected: self.connected(),
            owned_ports: self.owned_ports(),
            dirty_ports: self.dirty_ports(),
            writes: n(&self.writes),
            write_failures: n(&self.write_failures),
            reconciles: n(&self.reconciles),
            claims: n(&self.claims),
            claims_lost: n(&self.claims_lost),
        }
    }
}

/// A port this host serves, as the agent tracks it.
#[derive(Clone, Debug)]
struct Served {
    port: LocalPort,
    /// Blocked, waiting for its guest's first frame (another live host owns it),
    /// with the frames seen when it was blocked.
    standby: Option<u64>,
}

/// The agent of one host.
#[derive(Debug)]
pub struct Agent<L: Local> {
    opts: AgentOptions,
    record: HostRecord,
    local: Arc<L>,
    shared: Arc<Shared>,
    lease: Option<i64>,
    served: BTreeMap<String, Served>,
    /// Last profile generation applied (0: none), canary generation applied.
    generation: i64,
    canary_generation: Option<i64>,
    error: Option<String>,
    last_status: Option<HostStatus>,
    /// A profile was applied or refused: publish the status at once.
    publish_now: bool,
    /// The host and port records as the watch delivered them (the overlay's
    /// source).
    view: ClusterView,
    /// The view changed (or a profile was applied): push the overlay's peers.
    peers_stale: bool,
}

impl<L: Local> Agent<L> {
    /// `lease`: the one [`register_at_start`] got, if etcd answered then.
    pub fn new(
        opts: AgentOptions,
        record: HostRecord,
        local: Arc<L>,
        shared: Arc<Shared>,
        lease: Option<i64>,
    ) -> Self {
        Agent {
            opts,
            record,
            local,
            shared,
            lease,
            served: BTreeMap::new(),
            generation: 0,
            canary_generation: None,
            error: None,
            last_status: None,
            publish_now: false,
            view: ClusterView::default(),
            peers_stale: false,
        }
    }

    /// Runs until the task is aborted: sessions with etcd, retried after failures.
    pub async fn run(mut self) {
        loop {
            let r = self.session().await;
            self.shared.connected.store(false, Ordering::Relaxed);
            if let Ok(mut s) = self.shared.store.lock() {
                *s = None;
            }
            if let Err(e) = r {
                tracing::warn!(error = %e, "cluster: lost etcd; forwarding on the last state, retrying");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn session(&mut self) -> Result<(), ClusterError> {
        let store = Store::connect(&self.opts.etcd).await?;
        let lease = self.ensure_lease(&store).await?;
        self.shared.lease.store(lease, Ordering::Relaxed);
        let mut client = store.client();
        let (mut keeper, mut keep_stream) = client.lease_keep_alive(lease).await?;
        // The snapshot the watch continues from: the live hosts, then the ports
        // (read later: the watch replays what changed in between, and the view
        // ends where etcd is).
        let (hosts, revision) = store.list::<HostRecord>(&store.keys().hosts()).await?;
        let (ports, _) = store.list::<LogicalPort>(&store.keys().ports()).await?;
        self.view = ClusterView::default();
        for (key, h) in hosts {
            if let (Some(Ok(KeyKind::Host(name))), Ok(h)) = (store.keys().kind(&key), h) {
                self.view.hosts.insert(name, h.value.overlay_endpoint);
            }
        }
        for (key, p) in ports {
            if let (Some(Ok(KeyKind::Port(name))), Ok(p)) = (store.keys().kind(&key), p) {
                self.view.ports.insert(name, p.value);
            }
        }
        if let Ok(mut s) = self.shared.store.lock() {
            *s = Some(store.clone());
        }
        self.shared.connected.store(true, Ordering::Relaxed);
        tracing::info!(host = %self.opts.host, lease, "cluster: connected to etcd");

        self.sync_profile(&store).await?;
        // Every port served is claimed again (and reconciled) on (re)connect; a
        // blocked one still waits for its guest's first frame.
        let names: Vec<String> = self
            .served
            .iter()
            .filter(|(_, s)| s.standby.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.claim(&store, &name, false).await?;
        }
        self.sync_ports(&store).await?;
        self.reconcile_all(&store).await?;
        self.publish(&store, lease, true).await?;
        self.push_overlay_peers().await;

        // One watch on the keys a host acts on — `canary`, `hosts/`, `ports/`,
        // `profile`, which sort together — and not on `bindings/`,
        // `secure-macs/` or `status/`: a host reads another port's bindings only
        // when it claims it, so the cluster's lease traffic is not sent to every
        // host (docs/cluster.md, scaling).
        let (from, to) = store.keys().watched_range();
        let mut events = client
            .watch(
                from,
                Some(
                    WatchOptions::new()
                        .with_range(to)
                        .with_start_revision(revision + 1),
                ),
            )
            .await?;
        let keep_every = (self.opts.lease_ttl / 3).max(Duration::from_millis(300));
        let mut keep_tick = tokio::time::interval(keep_every);
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut publish_tick = tokio::time::interval(Duration::from_secs(2));
        let mut last_keep = tokio::time::Instant::now();
        loop {
            tokio::select! {
                msg = events.message() => {
                    let Some(resp) = msg? else {
                        return Err(ClusterError::Invalid("the watch ended".into()));
                    };
                    if resp.canceled() {
                        return Err(ClusterError::Invalid(format!("the watch was cancelled (compacted at {})", resp.compact_revision())));
                    }
                    for ev in resp.events() {
                        let Some(kv) = ev.kv() else { continue };
                        let key = String::from_utf8_lossy(kv.key()).into_owned();
                        self.on_event(&store, &key, ev.event_type(), kv.value(), kv.mod_revision()).await?;
                    }
                    if std::mem::take(&mut self.peers_stale) {
                        self.push_overlay_peers().await;
                    }
                    if std::mem::take(&mut self.publish_now) {
                        self.publish(&store, lease, false).await?;
                    }
                }
                _ = keep_tick.tick() => {
                    keeper.keep_alive().await?;
                }
                m = keep_stream.message() => {
                    match m? {
                        Some(r) if r.ttl() > 0 => last_keep = tokio::time::Instant::now(),
                        Some(_) => {
                            // Our lease ended (etcd was away longer than the TTL):
                            // register again.
                            self.lease = None;
                            return Err(ClusterError::Invalid("the host's lease ended".into()));
                        }
                        None => return Err(ClusterError::Invalid("the lease stream ended".into())),
                    }
                }
                _ = self.shared.wake.notified() => {
                    self.sync_ports(&store).await?;
                    self.reconcile_dirty(&store).await?;
                    self.publish(&store, lease, false).await?;
                    // The daemon wakes the agent after its own applies too: the
                    // groups' VLANs may have changed (the switch skips peers it
                    // already has).
                    self.push_overlay_peers().await;
                }
                _ = tick.tick() => {
                    if last_keep.elapsed() > self.opts.lease_ttl {
                        return Err(ClusterError::Invalid("no lease renewal within the TTL".into()));
                    }
                    if !self.shared.connected() {
                        // A replicated write failed: check that etcd answers, then
                        // write again what it missed.
                        store.host_live(&self.opts.host).await?;
                        self.shared.connected.store(true, Ordering::Relaxed);
                    }
                    self.check_standby(&store).await?;
                    self.reconcile_dirty(&store).await?;
                }
                _ = publish_tick.tick() => {
                    // Port changes wake the agent at once; this is the fallback
                    // (reading the ports builds a view of the whole switch: not
                    // four times a second).
                    self.sync_ports(&store).await?;
                    self.publish(&store, lease, false).await?;
                }
            }
        }
    }

    /// The host's lease: the one it has if etcd says it is still alive (an etcd
    /// restart keeps leases), else a new registration. An etcd that does not
    /// answer is an error (the session is retried), never a reason to register
    /// again.
    async fn ensure_lease(&mut self, store: &Store) -> Result<i64, ClusterError> {
        if let Some(l) = self.lease {
            let mut c = store.client();
            let ttl = c.lease_time_to_live(l, None).await?.ttl();
            if ttl > 0 {
                return Ok(l);
            }
        }
        let l = store.register(&self.record, self.opts.lease_ttl).await?;
        self.lease = Some(l);
        Ok(l)
    }

    async fn on_event(
        &mut self,
        store: &Store,
        key: &str,
        kind: EventType,
        value: &[u8],
        rev: i64,
    ) -> Result<(), ClusterError> {
        match store.keys().kind(key) {
            Some(Ok(KeyKind::Profile | KeyKind::Canary)) => self.sync_profile(store).await,
            Some(Ok(KeyKind::Host(name))) => {
                // A host joined, left, or its lease ended: its guests come or go
                // from the overlay.
                if kind == EventType::Delete {
                    self.view.hosts.remove(&name);
                } else if let Ok(h) = schema::decode::<HostRecord>(key, value) {
                    self.view.hosts.insert(name, h.overlay_endpoint);
                } else {
                    tracing::warn!(key, "cluster: a host key in an unknown format; ignored");
                    return Ok(());
                }
                self.peers_stale = true;
                Ok(())
            }
            Some(Ok(KeyKind::Port(name))) => {
                if kind == EventType::Delete {
                    self.peers_stale |= self.view.ports.remove(&name).is_some();
                    return Ok(());
                }
                let Ok(p) = schema::decode::<LogicalPort>(key, value) else {
                    tracing::warn!(key, "cluster: a port key in an unknown format; ignored");
                    return Ok(());
                };
                self.view.ports.insert(name.clone(), p.clone());
                self.peers_stale = true;
                let ours = self.shared.owned_revision(&name);
                // Only a write after our claim says anything about it: the watch
                // may still be delivering what happened before (the claim we took
                // the port from, say).
                if p.owner != self.opts.host && ours.is_some_and(|r| rev > r) {
                    // Claimed elsewhere: the guest is there now.
                    if let Ok(mut o) = self.shared.owned.lock() {
                        o.remove(&name);
                    }
                    tracing::info!(port = %name, to = %p.owner, "cluster: port claimed by another host; forgetting it here");
                    self.local.forget(name.clone()).await;
                    if self.served.contains_key(&name) {
                        self.local.set_active(name.clone(), false).await;
                        let seen = self.local.rx_frames(name.clone()).await;
                        if let Some(s) = self.served.get_mut(&name) {
                            s.standby = Some(seen);
                        }
                    }
                } else if p.owner == self.opts.host
                    && let Some(r) = ours
                    && rev > r
                    && let Ok(mut o) = self.shared.owned.lock()
                {
                    o.insert(name, rev);
                }
                Ok(())
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cluster: a key outside the layout; ignored");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Applies the canary meant for this host, else the profile, when its
    /// generation is not the one applied. A refusal keeps the last good profile
    /// and is reported in the status.
    async fn sync_profile(&mut self, store: &Store) -> Result<(), ClusterError> {
        let canary: Option<Read<CanaryRecord>> = match store.canary().await {
            Ok(c) => c.filter(|c| c.value.host == self.opts.host),
            Err(ClusterError::Schema(e)) => {
                self.error = Some(e.to_string());
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(c) = canary {
            if self.canary_generation != Some(c.mod_revision) {
                let r = self
                    .local
                    .apply_profile(c.value.name.clone(), c.value.text.clone())
                    .await;
                self.canary_generation = Some(c.mod_revision);
                self.peers_stale |= r.is_ok();
                self.error = r.err();
                self.publish_now = true;
            }
            return Ok(());
        }
        let profile: Option<Read<ProfileRecord>> = match store.profile().await {
            Ok(p) => p,
            Err(ClusterError::Schema(e)) => {
                tracing::error!(error = %e, "cluster: the stored profile cannot be read; keeping the running one");
                self.error = Some(e.to_string());
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let was_canary = self.canary_generation.take().is_some();
        let Some(p) = profile else { return Ok(()) };
        if p.mod_revision == self.generation && !was_canary {
            return Ok(());
        }
        self.publish_now = true;
        match self
            .local
            .apply_profile(p.value.name.clone(), p.value.text.clone())
            .await
        {
            Ok(()) => {
                self.generation = p.mod_revision;
                self.error = None;
                self.peers_stale = true;
                tracing::info!(generation = p.mod_revision, "cluster: profile applied");
            }
            Err(e) => {
                tracing::error!(generation = p.mod_revision, error = %e, "cluster: profile refused on this host; keeping the last good one");
                self.error = Some(format!("generation {}: {e}", p.mod_revision));
            }
        }
        Ok(())
    }

    /// Gives the switch the overlay's peers the records give now.
    async fn push_overlay_peers(&mut self) {
        self.peers_stale = false;
        let peers = overlay_peers(&self.opts.host, &self.view);
        self.local.set_overlay_peers(peers).await;
    }

    fn logical(&self, p: &LocalPort, state: PortState) -> LogicalPort {
        LogicalPort {
            format: FORMAT,
            owner: self.opts.host.clone(),
            macs: p.macs.clone(),
            group: p.group.clone(),
            metadata: p.metadata.clone(),
            claimed_unix: schema::unix_now(),
            state,
        }
    }

    /// Follows the host's ports: claims the new ones, releases the ones gone,
    /// re-writes the ones whose MACs or group changed.
    async fn sync_ports(&mut self, store: &Store) -> Result<(), ClusterError> {
        let Ok(now) = self.local.ports().await else {
            return Ok(());
        };
        let now: BTreeMap<String, LocalPort> =
            now.into_iter().map(|p| (p.name.clone(), p)).collect();
        let gone: Vec<String> = self
            .served
            .keys()
            .filter(|n| !now.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            let s = self.served.remove(&name).expect("listed");
            let rev = self
                .shared
                .owned
                .lock()
                .ok()
                .and_then(|mut o| o.remove(&name));
            if let Some(rev) = rev {
                let away = self.logical(&s.port, PortState::Away);
                store.release_port(&name, rev, &away).await?;
            }
        }
        for (name, p) in now {
            let changed = match self.served.get(&name) {
                None => true,
                Some(s) => s.port != p && s.standby.is_none(),
            };
            if changed {
                self.served.insert(
                    name.clone(),
                    Served {
                        port: p,
                        standby: None,
                    },
                );
                self.claim(store, &name, false).await?;
            }
        }
        Ok(())
    }

    /// Claims `name`; a port another live host owns is blocked until its guest's
    /// first frame here (`check_standby`) or until that host lets it go.
    async fn claim(&mut self, store: &Store, name: &str, force: bool) -> Result<(), ClusterError> {
        let Some(s) = self.served.get(name) else {
            return Ok(());
        };
        let logical = self.logical(&s.port, PortState::Active);
        let was_standby = s.standby.is_some();
        self.shared.claims.fetch_add(1, Ordering::Relaxed);
        match store.claim_port(name, &logical, force).await {
            Err(ClusterError::Schema(e)) => {
                tracing::error!(error = %e, port = name, "cluster: the port's key cannot be read; not claimed");
                self.error = Some(e.to_string());
                Ok(())
            }
            Err(e) => Err(e),
            Ok(Claim::Owned { revision, from }) => {
                if let Ok(mut o) = self.shared.owned.lock() {
                    o.insert(name.to_string(), revision);
                }
                if let Some(s) = self.served.get_mut(name) {
                    s.standby = None;
                }
                if was_standby {
                    self.local.set_active(name.to_string(), true).await;
                }
                // A guest that comes from another host: its bindings as the cluster
                // has them. (A port that was already ours keeps this host's own,
                // which the reconcile writes to etcd.)
                if from.is_some() {
                    let remote: Vec<LocalBinding> = store
                        .port_bindings(name)
                        .await?
                        .into_iter()
                        .map(|(vlan, ip, value)| LocalBinding {
                            port: name.to_string(),
                            vlan,
                            ip,
                            value,
                        })
                        .collect();
                    let n = remote.len();
                    let taken = self.local.restore(name.to_string(), remote).await;
                    let macs = store.port_secure_macs(name).await?;
                    let secure = if macs.is_empty() {
                        0
                    } else {
                        self.local.restore_secure_macs(name.to_string(), macs).await
                    };
                    tracing::info!(port = name, from = ?from, bindings = n, taken, secure_macs = secure, "cluster: port claimed");
                }
                if from.is_some() {
                    self.local.announce(name.to_string()).await;
                }
                self.shared.mark_dirty(name);
                Ok(())
            }
            Ok(Claim::OwnedByLive { owner }) => {
                if !was_standby {
                    tracing::info!(port = name, owner = %owner, "cluster: port owned by a live host; blocked until its guest speaks here");
                    self.local.set_active(name.to_string(), false).await;
                    let seen = self.local.rx_frames(name.to_string()).await;
                    if let Some(s) = self.served.get_mut(name) {
                        s.standby = Some(seen);
                    }
                }
                Ok(())
            }
            Ok(Claim::Lost) => {
                self.shared.claims_lost.fetch_add(1, Ordering::Relaxed);
                tracing::info!(port = name, "cluster: claim lost to a concurrent one");
                if !was_standby {
                    self.local.set_active(name.to_string(), false).await;
                    let seen = self.local.rx_frames(name.to_string()).await;
                    if let Some(s) = self.served.get_mut(name) {
                        s.standby = Some(seen);
                    }
                }
                Ok(())
            }
        }
    }

    /// Activation on the guest's first frame (as OVN's `activation-strategy=rarp`):
    /// a blocked port that received a frame since it was blocked takes the port.
    async fn check_standby(&mut self, store: &Store) -> Result<(), ClusterError> {
        let waiting: Vec<(String, u64)> = self
            .served
            .iter()
            .filter_map(|(n, s)| s.standby.map(|seen| (n.clone(), seen)))
            .collect();
        for (name, seen) in waiting {
            if self.local.rx_frames(name.clone()).await > seen {
                tracing::info!(port = %name, "cluster: the guest spoke here; claiming its port");
                self.claim(store, &name, true).await?;
            }
        }
        Ok(())
    }

    async fn reconcile_dirty(&mut self, store: &Store) -> Result<(), ClusterError> {
        let dirty: Vec<String> = match self.shared.dirty.lock() {
            Ok(mut d) => d.drain().collect(),
            Err(_) => return Ok(()),
        };
        if dirty.is_empty() {
            return Ok(());
        }
        let local = match self.local.bindings().await {
            Ok(b) => b,
            Err(_) => {
                for p in &dirty {
                    self.shared.mark_dirty(p);
                }
                return Ok(());
            }
        };
        for port in dirty {
            let mine: Vec<&LocalBinding> = local.iter().filter(|b| b.port == port).collect();
            let r = self.reconcile_port(store, &port, &mine).await;
            if r.is_err() {
                self.shared.mark_dirty(&port);
            }
            r?;
        }
        Ok(())
    }

    async fn reconcile_all(&mut self, store: &Store) -> Result<(), ClusterError> {
        if let Ok(mut d) = self.shared.dirty.lock() {
            let owned: Vec<String> = self
                .shared
                .owned
                .lock()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            d.extend(owned);
        }
        self.reconcile_dirty(store).await
    }

    /// Makes etcd hold exactly this host's bindings of `port`, if it owns it.
    async fn reconcile_port(
        &mut self,
        store: &Store,
        port: &str,
        local: &[&LocalBinding],
    ) -> Result<(), ClusterError> {
        let Some(rev) = self.shared.owned_revision(port) else {
            return Ok(());
        };
        let remote: HashMap<(u16, IpAddr), BindingValue> = store
            .port_bindings(port)
            .await?
            .into_iter()
            .map(|(v, ip, b)| ((v, ip), b))
            .collect();
        let mut changes = Vec::new();
        let mut here = HashSet::new();
        for b in local {
            here.insert((b.vlan, b.ip));
            // Lease ends are recomputed from the switch's clock on every read: a
            // second either way is the same lease.
            let same = remote.get(&(b.vlan, b.ip)).is_some_and(|r| {
                r.mac == b.value.mac
                    && r.source == b.value.source
                    && match (r.lease_end_unix, b.value.lease_end_unix) {
                        (Some(x), Some(y)) => x.abs_diff(y) <= 2,
                        (x, y) => x == y,
                    }
            });
            if !same {
                let mut v = b.value.clone();
                v.written_by.clone_from(&self.opts.host);
                changes.push((b.vlan, b.ip, Some(v)));
            }
        }
        for k in remote.keys() {
            if !here.contains(k) {
                changes.push((k.0, k.1, None));
            }
        }
        // Sticky secure MACs: added, never taken away here (port security's own
        // rules age or clear them).
        let secure = self.local.secure_macs(port.to_string()).await;
        if !secure.is_empty() {
            let known: HashSet<portcullis_dataplane::MacAddr> =
                store.port_secure_macs(port).await?.into_iter().collect();
            let new: Vec<_> = secure
                .into_iter()
                .filter(|m| !known.contains(m))
                .map(|m| {
                    (
                        m,
                        schema::SecureMacValue {
                            format: FORMAT,
                            learned_unix: schema::unix_now(),
                            written_by: self.opts.host.clone(),
                        },
                    )
                })
                .collect();
            if !new.is_empty() {
                store.add_secure_macs(port, rev, &new).await?;
            }
        }
        if changes.is_empty() {
            return Ok(());
        }
        self.shared.reconciles.fetch_add(1, Ordering::Relaxed);
        if !store.write_bindings(port, rev, &changes).await? {
            // Claimed elsewhere meanwhile: the watch forgets it.
            tracing::info!(
                port,
                "cluster: reconcile skipped, the port is not ours any more"
            );
        }
        Ok(())
    }

    async fn publish(
        &mut self,
        store: &Store,
        lease: i64,
        force: bool,
    ) -> Result<(), ClusterError> {
        let (profile_text, host_text) = self.local.running().await.unwrap_or_default();
        let bindings = self.local.binding_count().await;
        let status = HostStatus {
            format: FORMAT,
            host: self.opts.host.clone(),
            version: self.record.version.clone(),
            health: if self.error.is_some() {
                "degraded".into()
            } else {
                "ok".into()
            },
            generation: self.generation,
            canary_generation: self.canary_generation,
            error: self.error.clone(),
            ports: self.served.len(),
            bindings,
            profile_text,
            host_text,
            updated_unix: 0,
        };
        if !force && self.last_status.as_ref() == Some(&status) {
            return Ok(());
        }
        let mut written = status.clone();
        written.updated_unix = schema::unix_now();
        store.put_status(&written, lease).await?;
        self.last_status = Some(status);
        Ok(())
    }
}
