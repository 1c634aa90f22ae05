//! The daemon as a cluster member (`--cluster`, docs/cluster.md): the binding log
//! replicated to etcd after each local commit ([`ReplicatedLog`]), and the
//! switch as the cluster agent sees it ([`DaemonLocal`], on the API's own
//! handlers and commands: the agent reconfigures through the one apply path).
//!
//! Invariant (durability rule, DESIGN §3, decisions.md): a DHCP ACK that creates
//! a binding leaves only after the binding is committed to this host's redb and
//! then written to etcd — or after `commit_wait` has passed, or at once while
//! etcd is known to be away. The local commit alone makes it durable; etcd
//! catches up through the agent's reconcile, so an unreachable etcd delays a
//! lease by at most `commit_wait`, once per outage.

use crate::api::ApiState;
use crate::binding_log::{BindingCommits, BindingLog};
use crate::bindings_store::{
    BindingOp, BindingRecord, BindingStore, BindingStoreError, CommitResult, Committer,
    CommitterOptions,
};
use crate::runtime::Command;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use portcullis_cluster::{AgentOptions, BindingValue, Local, LocalBinding, LocalPort, Shared};
use portcullis_dataplane::{OverlayPeer, PortId, Vid};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// What `--cluster` starts.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub agent: AgentOptions,
}

/// The record of a binding as the cluster stores it, written by `host`.
pub fn value_of(r: &BindingRecord, host: &str) -> BindingValue {
    BindingValue {
        format: portcullis_cluster::schema::FORMAT,
        mac: r.mac,
        source: r.source,
        lease_end_unix: r.lease_end_unix,
        updated_unix: r.updated_unix,
        duid: r.duid,
        written_by: host.to_string(),
    }
}

/// The store record of a cluster binding of `port`.
pub fn record_of(b: &LocalBinding) -> BindingRecord {
    BindingRecord {
        ip: b.ip,
        mac: b.value.mac,
        vlan: b.vlan,
        port: b.port.clone(),
        lease_end_unix: b.value.lease_end_unix,
        source: b.value.source,
        updated_unix: b.value.updated_unix,
        duid: b.value.duid,
    }
}

/// This host's redb log, replicated to etcd after each commit.
#[derive(Debug)]
pub struct ReplicatedLog {
    pub local: BindingStore,
    pub shared: Arc<Shared>,
    pub runtime: tokio::runtime::Handle,
    pub options: AgentOptions,
}

impl BindingLog for ReplicatedLog {
    fn load_live(&self, now_unix: u64) -> Result<Vec<BindingRecord>, BindingStoreError> {
        self.local.load_live(now_unix)
    }
    fn apply(&self, ops: &[BindingOp]) -> Result<(), BindingStoreError> {
        self.local.apply(ops)
    }
    fn start_commits(self: Box<Self>) -> (Box<dyn BindingCommits>, Receiver<CommitResult>) {
        // A removal names only (VLAN, address): the port it was of, from the
        // records seen (bounded by the binding table).
        let seed: HashMap<(u16, IpAddr), String> = self
            .local
            .load_live(crate::held::unix_now())
            .unwrap_or_default()
            .into_iter()
            .map(|r| ((r.vlan, r.ip), r.port))
            .collect();
        let ports = Mutex::new(seed);
        let shared = self.shared.clone();
        let rt = self.runtime.clone();
        let host = self.options.host.clone();
        let wait = self.options.commit_wait;
        let after = move |ops: &[BindingOp]| {
            let Ok(mut ports) = ports.lock() else { return };
            let changes = ops
                .iter()
                .filter_map(|op| match op {
                    BindingOp::Upsert(r) => {
                        ports.insert((r.vlan, r.ip), r.port.clone());
                        Some((r.port.clone(), r.vlan, r.ip, Some(value_of(r, &host))))
                    }
                    BindingOp::Remove { vlan, ip } => ports
                        .remove(&(*vlan, *ip))
                        .map(|port| (port, *vlan, *ip, None)),
                })
                .collect();
            drop(ports);
            shared.replicate(&rt, wait, changes);
        };
        let (committer, results) = Committer::start_with(
            self.local,
            CommitterOptions {
                after_commit: Some(Arc::new(after)),
                ..CommitterOptions::default()
            },
        );
        (Box::new(committer), results)
    }
}

/// The switch as the cluster agent drives it.
#[derive(Clone)]
pub struct DaemonLocal {
    pub state: ApiState,
    pub app: axum::Router,
    /// The overlay peers last installed, with the count of applies then: the same
    /// peers again change nothing unless an apply rebuilt the switch since.
    overlay_peers: Arc<Mutex<Option<Installed>>>,
}

/// Overlay peers installed, and the count of applies when they were.
type Installed = (u64, Vec<OverlayPeer>);

impl DaemonLocal {
    pub fn new(state: ApiState, app: axum::Router) -> DaemonLocal {
        DaemonLocal {
            state,
            app,
            overlay_peers: Arc::default(),
        }
    }
}

/// The cluster's overlay peers with each port group named by its VLAN in
/// `profile` (an access group's; a trunk group's guests, and a group this host
/// does not know, are left out: their frames carry no one VLAN the overlay could
/// place them in).
pub fn overlay_peers_in(
    profile: &portcullis_control::Profile,
    peers: portcullis_cluster::OverlayPeers,
) -> Vec<OverlayPeer> {
    let vlan: HashMap<&str, Vid> = profile
        .port_groups
        .iter()
        .filter_map(|g| match g.vlan {
            portcullis_control::config::GroupVlan::Access(v) => Some((g.name.as_str(), v)),
            portcullis_control::config::GroupVlan::Trunk { .. } => None,
        })
        .collect();
    peers
        .into_iter()
        .map(|(address, macs)| OverlayPeer {
            address,
            macs: macs
                .into_iter()
                .filter_map(|(group, mac)| Some((*vlan.get(group.as_str())?, mac)))
                .collect(),
            addresses: Vec::new(),
        })
        .collect()
}

impl std::fmt::Debug for DaemonLocal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaemonLocal").finish_non_exhaustive()
    }
}

/// Calls the API as the daemon's own user (from the process itself), as the
/// reload does: role-checked and audited like any caller.
pub(crate) async fn call_as_daemon(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<serde_json::Value>,
) -> Result<(StatusCode, serde_json::Value), String> {
    let peer = crate::service::daemon_peer();
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .map_err(|e| e.to_string())?;
    req.extensions_mut().insert(ConnectInfo(peer));
    let resp = app.clone().oneshot(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 26)
        .await
        .map_err(|e| e.to_string())?;
    let v = serde_json::from_slice(&bytes).unwrap_or_default();
    Ok((status, v))
}

impl DaemonLocal {
    /// Sends the data plane the command `make` builds around a reply channel and
    /// waits for the answer (`None`: the data plane is gone).
    async fn ask<T>(
        &self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Command,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.state.commands.send(make(tx)).ok()?;
        rx.await.ok()
    }

    async fn port_id(&self, name: &str) -> Option<PortId> {
        let names = self.state.port_names.read().await;
        names
            .iter()
            .position(|n| n == name)
            .map(|i| PortId(i as u16))
    }

    async fn port_view(&self, name: &str) -> Option<serde_json::Value> {
        let (status, v) =
            call_as_daemon(&self.app, Method::GET, &format!("/v1/ports/{name}"), None)
                .await
                .ok()?;
        status.is_success().then_some(v)
    }
}

impl Local for DaemonLocal {
    async fn apply_profile(&self, name: String, text: String) -> Result<(), String> {
        let body =
            serde_json::json!({ "profile": { "name": format!("cluster:{name}"), "text": text } });
        let (status, v) =
            call_as_daemon(&self.app, Method::POST, "/v1/config/apply", Some(body)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(v["error"]["message"]
                .as_str()
                .map_or_else(|| format!("refused ({status})"), str::to_string))
        }
    }

    async fn running(&self) -> Result<(String, String), String> {
        let (status, v) = call_as_daemon(&self.app, Method::GET, "/v1/config", None).await?;
        if !status.is_success() {
            return Err(format!("GET /v1/config: {status}"));
        }
        Ok((
            v["profile"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            v["host"]["text"].as_str().unwrap_or_default().to_string(),
        ))
    }

    async fn ports(&self) -> Result<Vec<LocalPort>, String> {
        let (status, v) = call_as_daemon(&self.app, Method::GET, "/v1/ports", None).await?;
        if !status.is_success() {
            return Err(format!("GET /v1/ports: {status}"));
        }
        let views: Vec<portcullis_api::PortView> =
            serde_json::from_value(v).map_err(|e| e.to_string())?;
        // The logical ports are the runtime ports (what the hypervisors and
        // container runtimes add, and what moves); the host binding's own ports
        // are this host's, like its uplinks.
        let runtime: std::collections::HashSet<String> = {
            let running = self.state.running.lock().await;
            running
                .runtime_ports
                .ports
                .iter()
                .map(|p| p.name.clone())
                .collect()
        };
        let owners = self
            .state
            .owners
            .read()
            .map(|o| o.clone())
            .unwrap_or_default();
        Ok(views
            .into_iter()
            .filter(|p| p.role != "uplink" && runtime.contains(&p.name))
            .map(|p| {
                let macs = p
                    .initial_mac
                    .iter()
                    .chain(p.effective_mac.iter())
                    .filter_map(|m| crate::runtime_ports::parse_mac(m).ok())
                    .fold(Vec::new(), |mut acc, m| {
                        if !acc.contains(&m) {
                            acc.push(m);
                        }
                        acc
                    });
                LocalPort {
                    metadata: owners.get(&p.name).cloned().unwrap_or_default(),
                    name: p.name,
                    macs,
                    group: p.port_group.unwrap_or_default(),
                }
            })
            .collect())
    }

    async fn bindings(&self) -> Result<Vec<LocalBinding>, String> {
        let records = self
            .ask(|reply| Command::PortBindings { port: None, reply })
            .await
            .ok_or("the data plane is gone")?;
        Ok(records
            .into_iter()
            .map(|r| LocalBinding {
                vlan: r.vlan,
                ip: r.ip,
                value: value_of(&r, ""),
                port: r.port,
            })
            .collect())
    }

    async fn binding_count(&self) -> usize {
        self.ask(Command::BindingCount).await.unwrap_or(0)
    }

    async fn secure_macs(&self, port: String) -> Vec<portcullis_dataplane::MacAddr> {
        let store = self.state.running.lock().await.store.clone();
        tokio::task::spawn_blocking(move || store.sticky(&port).unwrap_or_default())
            .await
            .unwrap_or_default()
    }

    async fn restore_secure_macs(
        &self,
        port: String,
        macs: Vec<portcullis_dataplane::MacAddr>,
    ) -> usize {
        let mut running = self.state.running.lock().await;
        let store = running.store.clone();
        let p = port.clone();
        let stored = tokio::task::spawn_blocking(move || {
            let now = crate::held::unix_now();
            macs.iter()
                .filter(|m| store.add_sticky(&p, **m, now).is_ok())
                .count()
        })
        .await
        .unwrap_or(0);
        // In force on the port: the port change path compiles the runtime ports
        // again, which restores every stored sticky MAC (hitless: the swap keeps
        // everything still valid).
        let ports = running.runtime_ports.ports.clone();
        if let Err(e) = crate::api::port_changes::change(&self.state, &mut running, ports).await {
            tracing::error!(port, error = %e.message, "cluster: the moved guest's secure MACs are stored but not yet in force");
        }
        stored
    }

    async fn restore(&self, port: String, bindings: Vec<LocalBinding>) -> usize {
        let Some(id) = self.port_id(&port).await else {
            return 0;
        };
        // In place of what the port holds here: bindings parked when the guest
        // left this host earlier may be stale (an address it released elsewhere,
        // leased to another guest since), and must not stay usable.
        let keep: std::collections::HashSet<(u16, IpAddr)> =
            bindings.iter().map(|b| (b.vlan, b.ip)).collect();
        let held = self
            .ask(|reply| Command::PortBindings {
                port: Some(id),
                reply,
            })
            .await
            .unwrap_or_default();
        for r in held.into_iter().filter(|r| !keep.contains(&(r.vlan, r.ip))) {
            let Some(vid) = Vid::new(r.vlan) else {
                continue;
            };
            let _ = self
                .ask(|reply| Command::RemoveBinding {
                    vid,
                    ip: r.ip,
                    reply,
                })
                .await;
        }
        let records = bindings.iter().map(record_of).collect();
        self.ask(|reply| Command::RestoreBindings {
            port: id,
            records,
            reply,
        })
        .await
        .unwrap_or(0)
    }

    async fn set_active(&self, port: String, active: bool) {
        let Some(id) = self.port_id(&port).await else {
            return;
        };
        let _ = self
            .ask(|reply| Command::SetAdminUp {
                port: id,
                up: active,
                reply,
            })
            .await;
    }

    async fn forget(&self, port: String) {
        let Ok(all) = self.bindings().await else {
            return;
        };
        for b in all.into_iter().filter(|b| b.port == port) {
            let Some(vid) = Vid::new(b.vlan) else {
                continue;
            };
            let _ = self
                .ask(|reply| Command::RemoveBinding {
                    vid,
                    ip: b.ip,
                    reply,
                })
                .await;
        }
    }

    async fn announce(&self, port: String) {
        let Some(id) = self.port_id(&port).await else {
            return;
        };
        let n = self
            .ask(|reply| Command::AnnounceGuest { port: id, reply })
            .await
            .unwrap_or(0);
        tracing::info!(port, announcements = n, "cluster: moved guest announced");
    }

    async fn set_overlay_peers(&self, peers: portcullis_cluster::OverlayPeers) {
        let (peers, applies) = {
            let running = self.state.running.lock().await;
            let applies = self
                .state
                .applies
                .ok
                .load(std::sync::atomic::Ordering::Relaxed);
            (overlay_peers_in(&running.config.profile, peers), applies)
        };
        let last = self.overlay_peers.lock().ok().and_then(|l| l.clone());
        if last.is_some_and(|(a, p)| a == applies && p == peers) {
            return;
        }
        let sent = peers.clone();
        let answer = self
            .ask(|reply| Command::SetOverlayPeers { peers: sent, reply })
            .await;
        // No overlay (not remembered: an apply may add one), or the data plane is
        // gone: nothing installed.
        if let Some(Some(installed)) = answer {
            tracing::info!(
                endpoints = installed.endpoints,
                macs = installed.macs,
                refused_macs = installed.refused_macs,
                refused_endpoints = installed.refused_endpoints,
                "cluster: overlay peers installed"
            );
            if let Ok(mut l) = self.overlay_peers.lock() {
                *l = Some((applies, peers));
            }
        }
    }

    async fn rx_frames(&self, port: String) -> u64 {
        self.port_view(&port).await.map_or(0, |v| {
            v["counters"]["rx_frames"].as_u64().unwrap_or(0)
                + v["counters"]["rx_dropped"].as_u64().unwrap_or(0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_dataplane::MacAddr;

    #[test]
    fn the_clusters_groups_become_this_hosts_vlans_and_trunk_or_unknown_groups_are_left_out() {
        let profile = portcullis_control::parse_str(
            "[switch]\nname = \"cl\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\n\n\
             [[port_group]]\nname = \"db\"\nvlan = 20\n\n\
             [[port_group]]\nname = \"vgt\"\nvlans = [\"5-6\"]\n",
            "p.toml",
            None,
        )
        .unwrap()
        .profile;
        let mac = |last: u8| MacAddr([0x52, 0x54, 0, 0, 0, last]);
        let a: IpAddr = "198.18.100.2".parse().unwrap();
        let b: IpAddr = "198.18.100.3".parse().unwrap();
        let peers = overlay_peers_in(
            &profile,
            vec![
                (
                    a,
                    vec![
                        ("db".into(), mac(1)),
                        ("vgt".into(), mac(2)),
                        ("web".into(), mac(3)),
                        ("gone".into(), mac(4)),
                    ],
                ),
                (b, vec![]),
            ],
        );
        let vid = |v| Vid::new(v).unwrap();
        assert_eq!(
            peers,
            vec![
                OverlayPeer {
                    address: a,
                    macs: vec![(vid(20), mac(1)), (vid(10), mac(3))],
                    addresses: Vec::new(),
                },
                OverlayPeer {
                    address: b,
                    macs: vec![],
                    addresses: Vec::new(),
                },
            ]
        );
    }
}
