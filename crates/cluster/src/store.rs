//! The cluster's operations on etcd: connect, register a host under a lease,
//! store and read the profile, claim a logical port, read and write a port's
//! bindings, list the cluster. Every operation is one etcd request or one
//! transaction; nothing here keeps state between calls but the client.
//!
//! Invariant: a write that depends on ownership is a transaction guarded by the
//! port key's `mod_revision` (the revision the writer's claim produced), so a host
//! that lost its port — moved elsewhere while it was partitioned — cannot
//! overwrite the newer owner's state: revisions decide, not clocks.

use crate::schema::{
    self, BindingValue, CanaryRecord, HostRecord, HostStatus, Keys, LogicalPort, ProfileRecord,
    SchemaError,
};
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How to reach etcd.
#[derive(Clone, Debug, Default)]
pub struct EtcdOptions {
    /// Client URLs (`http://…` or `https://…`).
    pub endpoints: Vec<String>,
    /// TLS: the CA that signed etcd's certificate, and this client's certificate
    /// and key (all PEM files).
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// The key prefix ([`schema::DEFAULT_PREFIX`] when `None`).
    pub prefix: Option<String>,
    /// How long one request may take (connect included).
    pub timeout: Duration,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> EtcdOptions {
        EtcdOptions {
            endpoints,
            timeout: Duration::from_secs(2),
            ..EtcdOptions::default()
        }
    }
    pub fn keys(&self) -> Keys {
        Keys::new(self.prefix.as_deref().unwrap_or(schema::DEFAULT_PREFIX))
    }
}

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error("cannot read {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "host id {host:?} is already live in the cluster (daemon pid {pid} on {hostname}, started at {started_unix}); stop it first or choose another --host-id"
    )]
    HostLive {
        host: String,
        hostname: String,
        pid: u32,
        started_unix: u64,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The cluster store: an etcd client and the key layout.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
    timeout: Duration,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("prefix", &self.keys.prefix())
            .finish_non_exhaustive()
    }
}

/// The outcome of a claim of a logical port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// This host owns the port at revision `revision`; `from` is the host that
    /// owned it before (`None`: a new port, or already ours).
    Owned { revision: i64, from: Option<String> },
    /// Another host that is live owns it; nothing changed.
    OwnedByLive { owner: String },
    /// The transaction lost to another write of the port key (a concurrent claim).
    Lost,
}

async fn within<T>(
    timeout: Duration,
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(timeout, f).await {
        Ok(r) => r.map_err(ClusterError::Etcd),
        Err(_) => Err(ClusterError::Timeout(timeout)),
    }
}

fn read_file(p: &PathBuf) -> Result<Vec<u8>, ClusterError> {
    std::fs::read(p).map_err(|source| ClusterError::File {
        path: p.clone(),
        source,
    })
}

/// A key and value read with its revisions.
#[derive(Clone, Debug)]
pub struct Read<T> {
    pub value: T,
    pub mod_revision: i64,
}

impl Store {
    /// Connects (lazily: the first request finds out whether etcd answers).
    pub async fn connect(opts: &EtcdOptions) -> Result<Store, ClusterError> {
        if opts.endpoints.is_empty() {
            return Err(ClusterError::Invalid("no etcd endpoint given".into()));
        }
        let mut co = ConnectOptions::new()
            .with_connect_timeout(opts.timeout)
            .with_timeout(opts.timeout)
            .with_keep_alive(Duration::from_secs(2), opts.timeout)
            .with_keep_alive_while_idle(true);
        if opts.ca.is_some() || opts.cert.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &opts.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read_file(ca)?));
            }
            match (&opts.cert, &opts.key) {
                (Some(c), Some(k)) => {
                    tls = tls.identity(Identity::from_pem(read_file(c)?, read_file(k)?));
                }
                (None, None) => {}
                _ => {
                    return Err(ClusterError::Invalid(
                        "give both --etcd-cert and --etcd-key, or neither".into(),
                    ));
                }
            }
            co = co.with_tls(tls);
        }
        // One member at a time, the first that answers: a client balanced over
        // every member keeps sending some requests to a dead one, and each of
        // those fails. A session on one member fails over by reconnecting (the
        // next call starts at the next member).
        let n = opts.endpoints.len();
        let start = NEXT_ENDPOINT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % n;
        let mut last = None;
        let mut client = None;
        for i in 0..n {
            let ep = &opts.endpoints[(start + i) % n];
            let attempt = async {
                let mut c = Client::connect([ep.as_str()], Some(co.clone())).await?;
                c.get("/", Some(GetOptions::new().with_count_only()))
                    .await?;
                Ok::<Client, etcd_client::Error>(c)
            };
            match within(opts.timeout, attempt).await {
                Ok(c) => {
                    client = Some(c);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let Some(client) = client else {
            return Err(last.unwrap_or_else(|| ClusterError::Invalid("no etcd endpoint".into())));
        };
        Ok(Store {
            client,
            keys: opts.keys(),
            timeout: opts.timeout,
        })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The etcd client (for watches and leases, which outlive one request).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    async fn get_one<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<Read<T>>, ClusterError> {
        let mut c = self.client.clone();
        let resp = within(self.timeout, c.get(key, None)).await?;
        match resp.kvs().first() {
            None => Ok(None),
            Some(kv) => Ok(Some(Read {
                value: schema::decode(key, kv.value())?,
                mod_revision: kv.mod_revision(),
            })),
        }
    }

    /// Every value under `prefix`, each decoded on its own: a value that does not
    /// decode is answered as its error, and does not hide the others. Read in
    /// pages of [`PAGE`] keys at one revision (a large prefix does not exceed the
    /// client's message limit, and the pages are one consistent snapshot).
    pub async fn list<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
    ) -> Result<(Vec<(String, Result<Read<T>, SchemaError>)>, i64), ClusterError> {
        let mut c = self.client.clone();
        let end = prefix_end(prefix.as_bytes());
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        let mut out = Vec::new();
        loop {
            let mut o = GetOptions::new().with_range(end.clone()).with_limit(PAGE);
            if revision != 0 {
                o = o.with_revision(revision);
            }
            let resp = within(self.timeout, c.get(from.clone(), Some(o))).await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            for kv in resp.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let v = schema::decode(&key, kv.value()).map(|value| Read {
                    value,
                    mod_revision: kv.mod_revision(),
                });
                out.push((key, v));
            }
            match resp.kvs().last() {
                Some(last) if resp.more() => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok((out, revision))
    }

    /// Registers `host` under a new lease of `ttl`: refused with
    /// [`ClusterError::HostLive`] while another daemon holds that host id — unless
    /// that record is this daemon's own (same machine and PID: a lease it lost
    /// track of) or its predecessor's on this machine (same machine name, its PID
    /// no longer running: a crash or a restart within the lease), which is taken
    /// over by a transaction on the record's revision.
    /// Answers the lease id.
    pub async fn register(&self, host: &HostRecord, ttl: Duration) -> Result<i64, ClusterError> {
        let mut c = self.client.clone();
        let ttl_s = ttl.as_secs().max(1) as i64;
        let lease = within(self.timeout, c.lease_grant(ttl_s, None)).await?.id();
        let key = self.keys.host(&host.host);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.clone(),
                schema::encode(host),
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.clone(), None)]);
        let resp = within(self.timeout, c.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(lease);
        }
        let _ = within(self.timeout, c.lease_revoke(lease)).await;
        let live = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
            _ => None,
        });
        let live_rev = resp.op_responses().into_iter().find_map(|r| match r {
            TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        let rec: Option<HostRecord> = live.and_then(|v| schema::decode(&key, &v).ok());
        if let (Some(r), Some(rev)) = (&rec, live_rev)
            && r.hostname == host.hostname
            && (r.pid == host.pid || !pid_running(r.pid))
        {
            let lease = within(self.timeout, c.lease_grant(ttl_s, None)).await?.id();
            let txn = Txn::new()
                .when([Compare::mod_revision(key.clone(), CompareOp::Equal, rev)])
                .and_then([TxnOp::put(
                    key.clone(),
                    schema::encode(host),
                    Some(PutOptions::new().with_lease(lease)),
                )]);
            if within(self.timeout, c.txn(txn)).await?.succeeded() {
                tracing::info!(host = %host.host, old_pid = r.pid, "cluster: took over the host id from this machine's previous daemon");
                return Ok(lease);
            }
            let _ = within(self.timeout, c.lease_revoke(lease)).await;
        }
        Err(ClusterError::HostLive {
            host: host.host.clone(),
            hostname: rec.as_ref().map_or("?".into(), |r| r.hostname.clone()),
            pid: rec.as_ref().map_or(0, |r| r.pid),
            started_unix: rec.as_ref().map_or(0, |r| r.started_unix),
        })
    }

    /// Writes this host's status under its lease.
    pub async fn put_status(&self, status: &HostStatus, lease: i64) -> Result<(), ClusterError> {
        let mut c = self.client.clone();
        within(
            self.timeout,
            c.put(
                self.keys.status(&status.host),
                schema::encode(status),
                Some(PutOptions::new().with_lease(lease)),
            ),
        )
        .await?;
        Ok(())
    }

    pub async fn profile(&self) -> Result<Option<Read<ProfileRecord>>, ClusterError> {
        self.get_one(&self.keys.profile()).await
    }

    /// Stores the profile; answers its generation.
    pub async fn store_profile(&self, p: &ProfileRecord) -> Result<i64, ClusterError> {
        let mut c = self.client.clone();
        let resp = within(
            self.timeout,
            c.put(self.keys.profile(), schema::encode(p), None),
        )
        .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    pub async fn canary(&self) -> Result<Option<Read<CanaryRecord>>, ClusterError> {
        self.get_one(&self.keys.canary()).await
    }

    pub async fn store_canary(&self, p: &CanaryRecord) -> Result<i64, ClusterError> {
        let mut c = self.client.clone();
        let resp = within(
            self.timeout,
            c.put(self.keys.canary(), schema::encode(p), None),
        )
        .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Ends a canary: stores `promote` as the profile in the same transaction, or
    /// (None) only removes the canary, so that its host goes back to the profile.
    pub async fn end_canary(&self, promote: Option<&ProfileRecord>) -> Result<i64, ClusterError> {
        let mut c = self.client.clone();
        let mut ops = vec![TxnOp::delete(self.keys.canary(), None)];
        if let Some(p) = promote {
            ops.push(TxnOp::put(self.keys.profile(), schema::encode(p), None));
        }
        let resp = within(self.timeout, c.txn(Txn::new().and_then(ops))).await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    pub async fn host_live(&self, host: &str) -> Result<bool, ClusterError> {
        let mut c = self.client.clone();
        let resp = within(
            self.timeout,
            c.get(
                self.keys.host(host),
                Some(GetOptions::new().with_count_only()),
            ),
        )
        .await?;
        Ok(resp.count() > 0)
    }

    pub async fn port(&self, name: &str) -> Result<Option<Read<LogicalPort>>, ClusterError> {
        self.get_one(&self.keys.port(name)).await
    }

    /// Claims logical port `name` for `port.owner`:
    /// - a new port is created;
    /// - one this host owns is rewritten (its MACs, group and metadata);
    /// - one whose owner is not live (its lease ended: a dead or stopped host) is
    ///   taken over, by a transaction on the revision read, unless `force` is false
    ///   and the owner is live ([`Claim::OwnedByLive`]);
    /// - `force` takes it from a live owner (the guest is here now: its first frame
    ///   was seen here, or the operator moved it).
    ///
    /// A value that does not decode is not overwritten (an error names the key).
    pub async fn claim_port(
        &self,
        name: &str,
        port: &LogicalPort,
        force: bool,
    ) -> Result<Claim, ClusterError> {
        let key = self.keys.port(name);
        let mut c = self.client.clone();
        let resp = within(self.timeout, c.get(key.clone(), None)).await?;
        let (compare, from) = match resp.kvs().first() {
            None => (
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                None,
            ),
            Some(kv) => {
                let cur: LogicalPort = schema::decode(&key, kv.value())?;
                if cur.owner != port.owner
                    && !force
                    && cur.state == schema::PortState::Active
                    && self.host_live(&cur.owner).await?
                {
                    return Ok(Claim::OwnedByLive { owner: cur.owner });
                }
                let from = (cur.owner != port.owner).then_some(cur.owner);
                (
                    Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision()),
                    from,
                )
            }
        };
        let txn = Txn::new().when([compare]).and_then([TxnOp::put(
            key.clone(),
            schema::encode(port),
            None,
        )]);
        let resp = within(self.timeout, c.txn(txn)).await?;
        if !resp.succeeded() {
            return Ok(Claim::Lost);
        }
        Ok(Claim::Owned {
            revision: resp.header().map_or(0, |h| h.revision()),
            from,
        })
    }

    /// Marks port `name` away (its guest left this host), if this host still owns
    /// it at `owned_revision`; answers whether it did.
    pub async fn release_port(
        &self,
        name: &str,
        owned_revision: i64,
        port: &LogicalPort,
    ) -> Result<bool, ClusterError> {
        let op = TxnOp::put(self.keys.port(name), schema::encode(port), None);
        self.as_owner(name, owned_revision, vec![op]).await
    }

    /// The bindings of logical port `name`: (VLAN, address, value).
    pub async fn port_bindings(
        &self,
        name: &str,
    ) -> Result<Vec<(u16, IpAddr, BindingValue)>, ClusterError> {
        let (list, _) = self
            .list::<BindingValue>(&self.keys.port_bindings(name))
            .await?;
        let mut out = Vec::with_capacity(list.len());
        for (key, v) in list {
            let Some(Ok(schema::KeyKind::Binding { vlan, ip, .. })) = self.keys.kind(&key) else {
                return Err(SchemaError::UnknownKey { key }.into());
            };
            out.push((vlan, ip, v?.value));
        }
        Ok(out)
    }

    /// Writes changes to the bindings of port `name`, in transactions of at most
    /// [`MAX_TXN_OPS`] ops, each guarded by the port key's `owned_revision` (the
    /// revision this host's claim produced). Answers `false` when the guard failed:
    /// the port is not this host's any more, and nothing was written.
    pub async fn write_bindings(
        &self,
        name: &str,
        owned_revision: i64,
        changes: &[(u16, IpAddr, Option<BindingValue>)],
    ) -> Result<bool, ClusterError> {
        let ops = changes
            .iter()
            .map(|(vlan, ip, v)| {
                let k = self.keys.binding(name, *vlan, *ip);
                match v {
                    Some(v) => TxnOp::put(k, schema::encode(v), None),
                    None => TxnOp::delete(k, None),
                }
            })
            .collect();
        self.as_owner(name, owned_revision, ops).await
    }

    /// Runs `ops` in transactions of at most [`MAX_TXN_OPS`], each guarded by port
    /// `name`'s key still being at `owned_revision`; `false` at the first guard
    /// that fails (what was written before it stays: it was written as owner).
    async fn as_owner(
        &self,
        name: &str,
        owned_revision: i64,
        ops: Vec<TxnOp>,
    ) -> Result<bool, ClusterError> {
        let mut c = self.client.clone();
        let key = self.keys.port(name);
        for chunk in ops.chunks(MAX_TXN_OPS) {
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    owned_revision,
                )])
                .and_then(chunk.to_vec());
            if !within(self.timeout, c.txn(txn)).await?.succeeded() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The sticky secure MACs of logical port `name`.
    pub async fn port_secure_macs(
        &self,
        name: &str,
    ) -> Result<Vec<portcullis_dataplane::MacAddr>, ClusterError> {
        let (list, _) = self
            .list::<schema::SecureMacValue>(&self.keys.port_secure_macs(name))
            .await?;
        let mut out = Vec::with_capacity(list.len());
        for (key, v) in list {
            let Some(Ok(schema::KeyKind::SecureMac { mac, .. })) = self.keys.kind(&key) else {
                return Err(SchemaError::UnknownKey { key }.into());
            };
            v?;
            out.push(mac);
        }
        Ok(out)
    }

    /// Adds sticky secure MACs of port `name`, guarded by the port's
    /// `owned_revision` like [`Store::write_bindings`]; answers `false` when the
    /// port is not this host's any more.
    pub async fn add_secure_macs(
        &self,
        name: &str,
        owned_revision: i64,
        macs: &[(portcullis_dataplane::MacAddr, schema::SecureMacValue)],
    ) -> Result<bool, ClusterError> {
        let ops = macs
            .iter()
            .map(|(mac, v)| TxnOp::put(self.keys.secure_mac(name, *mac), schema::encode(v), None))
            .collect();
        self.as_owner(name, owned_revision, ops).await
    }

    /// Statuses and hosts, for `cluster status` and `check --cluster`.
    pub async fn hosts(
        &self,
    ) -> Result<Vec<(String, Result<Read<HostRecord>, SchemaError>)>, ClusterError> {
        Ok(self.list(&self.keys.hosts()).await?.0)
    }
    pub async fn statuses(
        &self,
    ) -> Result<Vec<(String, Result<Read<HostStatus>, SchemaError>)>, ClusterError> {
        Ok(self.list(&self.keys.statuses()).await?.0)
    }
    pub async fn ports(
        &self,
    ) -> Result<Vec<(String, Result<Read<LogicalPort>, SchemaError>)>, ClusterError> {
        Ok(self.list(&self.keys.ports()).await?.0)
    }
}

/// Where the next [`Store::connect`] starts in its list of members.
static NEXT_ENDPOINT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Keys read per request by [`Store::list`].
pub const PAGE: i64 = 5000;

/// The end of the range of keys starting with `prefix` (etcd's prefix end: the
/// prefix with its last byte below 0xff incremented).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// Whether a process `pid` runs on this machine (its /proc entry exists).
fn pid_running(pid: u32) -> bool {
    pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Ends lease `lease` (its keys go at once): a host leaving the cluster.
pub async fn revoke(store: &Store, lease: i64) -> Result<(), ClusterError> {
    let mut c = store.client();
    within(store.timeout, c.lease_revoke(lease)).await?;
    Ok(())
}

/// The most ops in one transaction (etcd's default `--max-txn-ops` is 128; one
/// is the guard).
pub const MAX_TXN_OPS: usize = 100;

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_where_its_last_byte_below_0xff_is_incremented() {
        assert_eq!(prefix_end(b"/p/v1/"), b"/p/v10".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
