//! The DHCP-snooping binding database: every (VLAN, IP) → (MAC, port, lease) binding
//! that DHCP snooping, static configuration, the API or IPv6 first-hop security
//! created, in its own redb file (`bindings.redb` in the state directory), written
//! through a group-commit thread.
//!
//! Invariant (DESIGN §3, durability rule): a binding is reported committed only after
//! the write transaction that holds it has been committed with
//! [`redb::Durability::Immediate`] (fsync'd). The runtime holds a DHCPACK until its
//! ticket comes back with `ok == true` and drops it otherwise (fail closed), so after
//! any crash every client that was handed a lease finds its binding on disk.
//!
//! Group commit: [`Committer`] owns the [`BindingStore`] on a thread of its own. It
//! waits for the first op, takes every op already queued without blocking (at most
//! [`CommitterOptions::max_group`]), applies them all in one transaction, and then
//! reports each ticket. A burst of N ACKs therefore costs a handful of fsyncs, not N.
//!
//! # On-disk encoding
//!
//! Table `bindings`, key `[u8; 19]` (fixed width, so redb stores no length), sorted
//! by VLAN, then family, then address:
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 2    | VLAN, big-endian                                         |
//! | 2      | 1    | family: 4 or 6                                           |
//! | 3      | 16   | address: IPv6 as is; IPv4 in bytes 3..7, then 12 zeros   |
//!
//! An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is keyed as the IPv4 address, as
//! in the data plane's binding index: one binding per (VLAN, IP) in both. The value
//! remembers which form was written, so a record reads back exactly as written.
//!
//! Value `&[u8]`, hand-packed (45 bytes + the port name; the same record as JSON is
//! ~140 bytes). Version 2, written since DHCPv6 snooping (issue 15), carries the
//! client's DUID; version 1 (25 bytes + the port name, no DUID) is still read, as
//! a record without one:
//!
//! | offset | size | field                                                    |
//! |--------|------|----------------------------------------------------------|
//! | 0      | 1    | format version, `2` (or `1`)                             |
//! | 1      | 1    | source: 0 dhcp, 1 static, 2 api, 3 dhcpv6, 4 nd          |
//! | 2      | 1    | flags: bit 0 = the lease has an end, bit 1 = the IP was  |
//! |        |      | written as IPv4-mapped IPv6, bit 2 = a DUID follows (v2) |
//! | 3      | 6    | MAC                                                      |
//! | 9      | 8    | lease end, Unix seconds, little-endian (0 if no end)     |
//! | 17     | 8    | updated, Unix seconds, little-endian                     |
//! | 25     | 1    | v2 only: DUID length 1..=19, or 255 for a SHA-256 digest |
//! |        |      | of a longer DUID (`DuidKey`); 0 without a DUID           |
//! | 26     | 19   | v2 only: the DUID (zero-padded) or the digest's first 19 |
//! |        |      | bytes; zeros without a DUID                              |
//! | 45     | rest | port name, UTF-8 (at 25 in version 1)                    |
//!
//! A value with an unknown version, source or flag, or a name that is not UTF-8, is
//! reported as an error rather than skipped: redb checksums every page, so such a
//! value means a newer or foreign writer, and the operator must know.

use portcullis_dataplane::MacAddr;
use redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;

/// The database file in the state directory.
pub const BINDINGS_FILE: &str = "bindings.redb";

/// Key width: VLAN (2) + family (1) + address (16).
const KEY_LEN: usize = 19;
/// Value header width, before the port name.
const VALUE_HEADER: usize = 45;
/// Version 1's header (no DUID).
const VALUE_HEADER_V1: usize = 25;
const FORMAT_VERSION: u8 = 2;
const FORMAT_VERSION_1: u8 = 1;
const FLAG_LEASE_END: u8 = 1;
const FLAG_V4_MAPPED: u8 = 2;
const FLAG_DUID: u8 = 4;

/// (VLAN, IP) → the packed binding.
const BINDINGS: TableDefinition<&[u8; KEY_LEN], &[u8]> = TableDefinition::new("bindings");

/// Where a binding came from: the data plane's own type, so that a record moves
/// between the binding index and the store unchanged.
pub use portcullis_dataplane::bindings::BindingSource;
pub use portcullis_dataplane::bindings::DuidKey;

fn source_code(s: BindingSource) -> u8 {
    match s {
        BindingSource::Dhcp => 0,
        BindingSource::Static => 1,
        BindingSource::Api => 2,
        BindingSource::Dhcpv6 => 3,
        BindingSource::Nd => 4,
    }
}

fn source_from_code(c: u8) -> Option<BindingSource> {
    Some(match c {
        0 => BindingSource::Dhcp,
        1 => BindingSource::Static,
        2 => BindingSource::Api,
        3 => BindingSource::Dhcpv6,
        4 => BindingSource::Nd,
        _ => return None,
    })
}

/// One binding: IPv4 and IPv6 alike.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BindingRecord {
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub vlan: u16,
    /// Port NAME (stable across configuration changes).
    pub port: String,
    /// Unix seconds; `None` = no expiry (static/API bindings).
    pub lease_end_unix: Option<u64>,
    pub source: BindingSource,
    pub updated_unix: u64,
    /// The DHCPv6 client's DUID (DHCPv6 bindings; `None` for the others and for
    /// version-1 records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duid: Option<DuidKey>,
}

impl BindingRecord {
    /// Whether the lease has ended at `now_unix` (a lease ending at `now` has ended).
    pub fn expired_at(&self, now_unix: u64) -> bool {
        self.lease_end_unix.is_some_and(|end| end <= now_unix)
    }
}

/// One change to the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingOp {
    /// Creates or renews (replaces) the binding of (`vlan`, `ip`).
    Upsert(BindingRecord),
    /// Removes the binding of (`vlan`, `ip`); removing an absent binding is not an error.
    Remove { vlan: u16, ip: IpAddr },
}

/// Why the binding store failed.
#[derive(Debug, thiserror::Error)]
#[error("binding store {path}: {message}")]
pub struct BindingStoreError {
    pub path: PathBuf,
    pub message: String,
}

/// The open binding database.
#[derive(Debug)]
pub struct BindingStore {
    db: Database,
    path: PathBuf,
    #[cfg(test)]
    hooks: Arc<tests::Hooks>,
}

fn encode_key(vlan: u16, ip: IpAddr) -> [u8; KEY_LEN] {
    let mut k = [0u8; KEY_LEN];
    k[0..2].copy_from_slice(&vlan.to_be_bytes());
    match ip.to_canonical() {
        IpAddr::V4(a) => {
            k[2] = 4;
            k[3..7].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            k[2] = 6;
            k[3..19].copy_from_slice(&a.octets());
        }
    }
    k
}

fn decode_key(k: &[u8; KEY_LEN]) -> Option<(u16, IpAddr)> {
    let vlan = u16::from_be_bytes([k[0], k[1]]);
    let ip = match k[2] {
        4 if k[7..].iter().all(|b| *b == 0) => IpAddr::V4(Ipv4Addr::new(k[3], k[4], k[5], k[6])),
        6 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&k[3..19]);
            IpAddr::V6(Ipv6Addr::from(a))
        }
        _ => return None,
    };
    Some((vlan, ip))
}

fn encode_value(r: &BindingRecord, out: &mut Vec<u8>) {
    out.clear();
    out.reserve(VALUE_HEADER + r.port.len());
    out.push(FORMAT_VERSION);
    out.push(source_code(r.source));
    let mut flags = 0;
    if r.lease_end_unix.is_some() {
        flags |= FLAG_LEASE_END;
    }
    if matches!(r.ip, IpAddr::V6(a) if a.to_ipv4_mapped().is_some()) {
        flags |= FLAG_V4_MAPPED;
    }
    if r.duid.is_some() {
        flags |= FLAG_DUID;
    }
    out.push(flags);
    out.extend_from_slice(&r.mac.0);
    out.extend_from_slice(&r.lease_end_unix.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&r.updated_unix.to_le_bytes());
    let (len, bytes) = r.duid.map_or((0, [0; DuidKey::INLINE]), |d| d.to_parts());
    out.push(len);
    out.extend_from_slice(&bytes);
    out.extend_from_slice(r.port.as_bytes());
}

fn decode_value(vlan: u16, ip: IpAddr, v: &[u8]) -> Option<BindingRecord> {
    let (header, flags) = match v.first() {
        Some(&FORMAT_VERSION_1) => (VALUE_HEADER_V1, FLAG_LEASE_END | FLAG_V4_MAPPED),
        Some(&FORMAT_VERSION) => (VALUE_HEADER, FLAG_LEASE_END | FLAG_V4_MAPPED | FLAG_DUID),
        _ => return None,
    };
    if v.len() < header || v[2] & !flags != 0 {
        return None;
    }
    let duid = if v[2] & FLAG_DUID != 0 {
        let mut bytes = [0u8; DuidKey::INLINE];
        bytes.copy_from_slice(&v[26..26 + DuidKey::INLINE]);
        Some(DuidKey::from_parts(v[25], bytes)?)
    } else {
        None
    };
    let source = source_from_code(v[1])?;
    let ip = match ip {
        IpAddr::V4(a) if v[2] & FLAG_V4_MAPPED != 0 => IpAddr::V6(a.to_ipv6_mapped()),
        IpAddr::V6(_) if v[2] & FLAG_V4_MAPPED != 0 => return None,
        ip => ip,
    };
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&v[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&v[3..9]);
    Some(BindingRecord {
        ip,
        mac: MacAddr(mac),
        vlan,
        port: std::str::from_utf8(&v[header..]).ok()?.to_owned(),
        lease_end_unix: (v[2] & FLAG_LEASE_END != 0).then(|| u64_at(9)),
        source,
        updated_unix: u64_at(17),
        duid,
    })
}

fn decode(k: &[u8; KEY_LEN], v: &[u8]) -> Result<BindingRecord, String> {
    decode_key(k)
        .and_then(|(vlan, ip)| decode_value(vlan, ip, v))
        .ok_or_else(|| format!("undecodable binding (key {k:02x?})"))
}

impl BindingStore {
    /// Opens (or creates) [`BINDINGS_FILE`] in `dir`. After a crash redb repairs the
    /// file here (the last committed transaction is kept).
    pub fn open(dir: &Path) -> Result<BindingStore, BindingStoreError> {
        let path = dir.join(BINDINGS_FILE);
        let err = |e: &dyn std::fmt::Display| BindingStoreError {
            path: path.clone(),
            message: e.to_string(),
        };
        let db = Database::create(&path).map_err(|e| err(&e))?;
        let store = BindingStore {
            db,
            path: path.clone(),
            #[cfg(test)]
            hooks: Arc::default(),
        };
        // Make sure the table exists, so reads never fail on a fresh store.
        let txn = store.db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(BINDINGS).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
        Ok(store)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> BindingStoreError {
        BindingStoreError {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// All bindings whose lease has not ended at `now_unix`, in key order (VLAN,
    /// family, address); the expired ones are deleted (one commit) and not returned.
    pub fn load_live(&self, now_unix: u64) -> Result<Vec<BindingRecord>, BindingStoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        let mut live = Vec::new();
        let mut expired = 0usize;
        let mut bad: Option<String> = None;
        {
            let mut t = txn.open_table(BINDINGS).map_err(|e| self.err(e))?;
            live.reserve(t.len().map_err(|e| self.err(e))? as usize);
            // One pass: decode, keep the live ones, delete the expired ones.
            t.retain(|k, v| match decode(k, v) {
                Ok(r) if r.expired_at(now_unix) => {
                    expired += 1;
                    false
                }
                Ok(r) => {
                    live.push(r);
                    true
                }
                Err(e) => {
                    bad.get_or_insert(e);
                    true
                }
            })
            .map_err(|e| self.err(e))?;
        }
        if let Some(e) = bad {
            txn.abort().map_err(|e| self.err(e))?;
            return Err(self.err(e));
        }
        if expired > 0 {
            txn.commit().map_err(|e| self.err(e))?;
        } else {
            txn.abort().map_err(|e| self.err(e))?;
        }
        Ok(live)
    }

    /// Applies `ops`, in order, in ONE write transaction, committed (fsync'd) before
    /// this returns. On an error nothing of `ops` is applied.
    pub fn apply(&self, ops: &[BindingOp]) -> Result<(), BindingStoreError> {
        if ops.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        let _gate = self.hooks.gate.lock();
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        {
            let mut t = txn.open_table(BINDINGS).map_err(|e| self.err(e))?;
            let mut value = Vec::with_capacity(64);
            for op in ops {
                match op {
                    BindingOp::Upsert(r) => {
                        encode_value(r, &mut value);
                        t.insert(&encode_key(r.vlan, r.ip), value.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    BindingOp::Remove { vlan, ip } => {
                        t.remove(&encode_key(*vlan, *ip)).map_err(|e| self.err(e))?;
                    }
                }
            }
        }
        #[cfg(test)]
        if self.hooks.fail.load(Ordering::SeqCst) {
            txn.abort().map_err(|e| self.err(e))?;
            return Err(self.err("injected failure"));
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// The binding of (`vlan`, `ip`), expired or not.
    pub fn get(&self, vlan: u16, ip: IpAddr) -> Result<Option<BindingRecord>, BindingStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(BINDINGS).map_err(|e| self.err(e))?;
        let key = encode_key(vlan, ip);
        match t.get(&key).map_err(|e| self.err(e))? {
            Some(v) => decode(&key, v.value()).map(Some).map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    /// How many bindings are stored (expired ones included until the next
    /// [`BindingStore::load_live`]).
    pub fn len(&self) -> Result<usize, BindingStoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(BINDINGS).map_err(|e| self.err(e))?;
        Ok(t.len().map_err(|e| self.err(e))? as usize)
    }

    /// Gives the space of deleted and replaced bindings back to the file system
    /// (redb never shrinks the file on its own). Meant for start-up, after
    /// [`BindingStore::load_live`] and before the [`Committer`] takes the store;
    /// returns whether anything was compacted.
    pub fn compact(&mut self) -> Result<bool, BindingStoreError> {
        self.db.compact().map_err(|e| BindingStoreError {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }

    /// Whether no binding is stored.
    pub fn is_empty(&self) -> Result<bool, BindingStoreError> {
        Ok(self.len()? == 0)
    }
}

/// The result of one submitted op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitResult {
    pub ticket: u64,
    /// The op is on disk: release the held ACK. `false`: drop it (fail closed).
    pub ok: bool,
    /// Why the group failed (`None` when `ok`).
    pub error: Option<String>,
}

/// Why [`Committer::submit`] refused an op (the caller drops the ACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the binding committer's queue is full")]
    Full,
    #[error("the binding committer is gone")]
    Gone,
}

/// How the committer runs.
#[derive(Clone)]
pub struct CommitterOptions {
    /// Most ops per transaction (1 = no group commit).
    pub max_group: usize,
    /// Most ops waiting; [`Committer::submit`] refuses more with [`SubmitError::Full`].
    pub queue: usize,
    /// Called on the committer thread after each group's results were sent, e.g. to
    /// wake a thread that polls the results (an eventfd write).
    pub notify: Option<Arc<dyn Fn() + Send + Sync>>,
    /// Called on the committer thread with each group that committed, before its
    /// results are sent: a cluster's replica of the log (`cluster.rs`), which may
    /// delay the results by its own bounded wait.
    pub after_commit: Option<AfterCommit>,
}

/// See [`CommitterOptions::after_commit`].
pub type AfterCommit = Arc<dyn Fn(&[BindingOp]) + Send + Sync>;

impl Default for CommitterOptions {
    fn default() -> Self {
        CommitterOptions {
            max_group: 1024,
            queue: 65536,
            notify: None,
            after_commit: None,
        }
    }
}

impl std::fmt::Debug for CommitterOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommitterOptions")
            .field("max_group", &self.max_group)
            .field("queue", &self.queue)
            .field("notify", &self.notify.is_some())
            .field("after_commit", &self.after_commit.is_some())
            .finish()
    }
}

/// What the committer has done so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitterStats {
    /// Transactions committed.
    pub commits: u64,
    /// Groups whose transaction failed (every ticket reported failed).
    pub failed_commits: u64,
    /// Ops taken from the queue (committed or failed).
    pub ops: u64,
    /// The largest group so far.
    pub largest_group: u64,
}

#[derive(Debug, Default)]
struct Counters {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    ops: AtomicU64,
    largest_group: AtomicU64,
}

/// The group-commit thread; see the module documentation.
#[derive(Debug)]
pub struct Committer {
    queue: Option<SyncSender<(u64, BindingOp)>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Committer {
    /// Starts the committer with the default options (groups of at most 1024 ops,
    /// 65536 ops queued). Results come back on the receiver, one per ticket, in
    /// commit order; poll it with `try_recv`.
    pub fn start(store: BindingStore) -> (Committer, Receiver<CommitResult>) {
        Committer::start_with(store, CommitterOptions::default())
    }

    /// Starts the committer. If its thread cannot be started, every submit is
    /// refused with [`SubmitError::Gone`] (fail closed).
    pub fn start_with(
        store: BindingStore,
        options: CommitterOptions,
    ) -> (Committer, Receiver<CommitResult>) {
        let (queue_tx, queue_rx) = mpsc::sync_channel(options.queue.max(1));
        let (results_tx, results_rx) = mpsc::channel();
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let path = store.path.clone();
        let spawned = std::thread::Builder::new()
            .name("portcullis-bind".into())
            .spawn(move || run(store, queue_rx, results_tx, &c, &options));
        let (queue, thread) = match spawned {
            Ok(h) => (Some(queue_tx), Some(h)),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot start the binding committer");
                (None, None)
            }
        };
        (
            Committer {
                queue,
                thread,
                counters,
            },
            results_rx,
        )
    }

    /// Queues `op`; its result comes back under `ticket`. Never blocks.
    pub fn submit(&self, ticket: u64, op: BindingOp) -> Result<(), SubmitError> {
        let q = self.queue.as_ref().ok_or(SubmitError::Gone)?;
        q.try_send((ticket, op)).map_err(|e| match e {
            TrySendError::Full(_) => SubmitError::Full,
            TrySendError::Disconnected(_) => SubmitError::Gone,
        })
    }

    /// Transactions committed so far.
    pub fn commits(&self) -> u64 {
        self.counters.commits.load(Ordering::Relaxed)
    }

    /// Counters so far.
    pub fn stats(&self) -> CommitterStats {
        let c = &self.counters;
        CommitterStats {
            commits: c.commits.load(Ordering::Relaxed),
            failed_commits: c.failed_commits.load(Ordering::Relaxed),
            ops: c.ops.load(Ordering::Relaxed),
            largest_group: c.largest_group.load(Ordering::Relaxed),
        }
    }

    /// Commits what is queued (and reports it), then ends the thread. Dropping the
    /// committer does the same.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // The thread drains the queue, then sees it disconnected and ends.
        drop(self.queue.take());
        if let Some(h) = self.thread.take()
            && h.join().is_err()
        {
            tracing::error!("the binding committer panicked");
        }
    }
}

fn run(
    store: BindingStore,
    queue: Receiver<(u64, BindingOp)>,
    results: mpsc::Sender<CommitResult>,
    counters: &Counters,
    options: &CommitterOptions,
) {
    let max = options.max_group.max(1);
    let mut tickets: Vec<u64> = Vec::with_capacity(max.min(4096));
    let mut ops: Vec<BindingOp> = Vec::with_capacity(max.min(4096));
    // Wait for the first op, then take what is already waiting.
    while let Ok((t, op)) = queue.recv() {
        tickets.push(t);
        ops.push(op);
        while ops.len() < max {
            match queue.try_recv() {
                Ok((t, op)) => {
                    tickets.push(t);
                    ops.push(op);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let n = ops.len() as u64;
        let error = store.apply(&ops).err().map(|e| e.to_string());
        counters.ops.fetch_add(n, Ordering::Relaxed);
        counters.largest_group.fetch_max(n, Ordering::Relaxed);
        if error.is_none()
            && let Some(after) = &options.after_commit
        {
            after(&ops);
        }
        match &error {
            None => counters.commits.fetch_add(1, Ordering::Relaxed),
            Some(e) => {
                tracing::error!(ops = n, error = %e, "binding commit failed; the ACKs are dropped");
                counters.failed_commits.fetch_add(1, Ordering::Relaxed)
            }
        };
        for ticket in tickets.drain(..) {
            // A dropped receiver only means nobody waits for the result any more.
            let _ = results.send(CommitResult {
                ticket,
                ok: error.is_none(),
                error: error.clone(),
            });
        }
        ops.clear();
        if let Some(notify) = &options.notify {
            notify();
        }
    }
}

/// redb on this host: the [`BindingLog`](crate::binding_log::BindingLog) of a
/// daemon without a cluster.
impl crate::binding_log::BindingLog for BindingStore {
    fn load_live(&self, now_unix: u64) -> Result<Vec<BindingRecord>, BindingStoreError> {
        BindingStore::load_live(self, now_unix)
    }

    fn apply(&self, ops: &[BindingOp]) -> Result<(), BindingStoreError> {
        BindingStore::apply(self, ops)
    }

    fn start_commits(
        self: Box<Self>,
    ) -> (
        Box<dyn crate::binding_log::BindingCommits>,
        Receiver<CommitResult>,
    ) {
        let (committer, results) = Committer::start(*self);
        (Box::new(committer), results)
    }
}

impl crate::binding_log::BindingCommits for Committer {
    fn submit(&self, ticket: u64, op: BindingOp) -> Result<(), SubmitError> {
        Committer::submit(self, ticket, op)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    /// Failure injection: `fail` makes every commit fail (after the ops were
    /// applied, so the transaction is aborted as a failed fsync would leave it);
    /// holding `gate` stalls the next `apply`.
    #[derive(Debug, Default)]
    pub(super) struct Hooks {
        pub(super) fail: AtomicBool,
        pub(super) gate: Mutex<()>,
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = std::env::temp_dir().join(format!(
                "portcullis-bindings-{name}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn rec(vlan: u16, ip: &str, mac: u8, lease_end: Option<u64>) -> BindingRecord {
        BindingRecord {
            ip: ip.parse().unwrap(),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, mac]),
            vlan,
            port: format!("vm{mac}"),
            lease_end_unix: lease_end,
            source: if ip.contains(':') {
                BindingSource::Dhcpv6
            } else {
                BindingSource::Dhcp
            },
            updated_unix: 1_000,
            duid: None,
        }
    }

    fn ticket_op(t: u64) -> BindingOp {
        BindingOp::Upsert(BindingRecord {
            ip: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + t as u32)),
            mac: MacAddr([2, 0, 0, 0, (t >> 8) as u8, t as u8]),
            vlan: 100,
            port: format!("p{}", t % 7),
            lease_end_unix: Some(10_000_000_000 + t),
            source: BindingSource::Dhcp,
            updated_unix: t,
            duid: None,
        })
    }

    #[test]
    fn encoding_round_trips_every_field() {
        for r in [
            rec(1, "10.1.2.3", 1, Some(u64::MAX)),
            rec(4094, "2001:db8::1", 2, None),
            BindingRecord {
                port: String::new(),
                source: BindingSource::Nd,
                lease_end_unix: Some(0),
                ..rec(0, "::ffff:10.1.2.3", 3, None)
            },
        ] {
            let mut v = Vec::new();
            encode_value(&r, &mut v);
            assert_eq!(v.len(), VALUE_HEADER + r.port.len());
            assert_eq!(decode(&encode_key(r.vlan, r.ip), &v), Ok(r));
        }
        assert_eq!(
            encode_key(5, "::ffff:10.1.2.3".parse().unwrap()),
            encode_key(5, "10.1.2.3".parse().unwrap()),
            "one key for both forms, as in the data plane's index"
        );
        let k = encode_key(7, "10.0.0.1".parse().unwrap());
        assert!(decode(&k, &[9; 30]).is_err(), "unknown version refused");
    }

    /// Version 2 carries a DHCPv6 binding's DUID: inline up to 19 bytes, else a
    /// digest; a record without one reads back without one.
    #[test]
    fn version_2_round_trips_the_duid() {
        let ll = [0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 2];
        let en: Vec<u8> = [&[0u8, 2, 0, 0, 0x9d, 0x10][..], &[7; 60]].concat();
        for duid in [DuidKey::of(&ll), DuidKey::of(&en), None] {
            let r = BindingRecord {
                duid,
                ..rec(10, "fd00:198:18:10::100", 2, Some(4_000_000_000))
            };
            let mut v = Vec::new();
            encode_value(&r, &mut v);
            assert_eq!(v[0], 2, "written as version 2");
            assert_eq!(v.len(), VALUE_HEADER + r.port.len());
            assert_eq!(decode(&encode_key(r.vlan, r.ip), &v), Ok(r));
        }
        let long = DuidKey::of(&en).unwrap();
        assert!(long.is_digest());
        assert_eq!(DuidKey::of(&ll).unwrap().bytes(), &ll[..]);
        // A digest length that is no DUID's length is refused, not misread.
        let mut v = Vec::new();
        let r = BindingRecord {
            duid: DuidKey::of(&ll),
            ..rec(10, "fd00:198:18:10::100", 2, None)
        };
        encode_value(&r, &mut v);
        v[25] = 40;
        assert!(decode(&encode_key(10, r.ip), &v).is_err());
    }

    /// A version-1 value (before DHCPv6 snooping; 25-byte header, no DUID), as
    /// that version wrote it, still reads — as a record without a DUID.
    #[test]
    fn version_1_records_still_read() {
        #[rustfmt::skip]
        let mut v1: Vec<u8> = vec![
            1,                                   // version 1
            3,                                   // source dhcpv6
            FLAG_LEASE_END,                      // flags
            0x52, 0x54, 0, 0, 0, 2,              // MAC
        ];
        v1.extend_from_slice(&4_000_000_000u64.to_le_bytes());
        v1.extend_from_slice(&1_000u64.to_le_bytes());
        v1.extend_from_slice(b"vm2");
        let ip: IpAddr = "fd00:198:18:10::100".parse().unwrap();
        let got = decode(&encode_key(10, ip), &v1).unwrap();
        assert_eq!(
            got,
            BindingRecord {
                ip,
                mac: MacAddr([0x52, 0x54, 0, 0, 0, 2]),
                vlan: 10,
                port: "vm2".into(),
                lease_end_unix: Some(4_000_000_000),
                source: BindingSource::Dhcpv6,
                updated_unix: 1_000,
                duid: None,
            }
        );
        // Version 1 never had the DUID flag.
        v1[2] |= FLAG_DUID;
        assert!(decode(&encode_key(10, ip), &v1).is_err());
    }

    #[test]
    fn upsert_renew_remove_and_reopen() {
        let dir = TempDir::new("crud");
        let a = rec(10, "192.0.2.10", 1, Some(5_000));
        let b = rec(10, "2001:db8::10", 2, Some(6_000));
        let c = rec(20, "192.0.2.10", 3, None); // same IP, other VLAN: another binding
        // The IPv4-mapped form is the same key as the IPv4 address.
        let mapped = rec(20, "::ffff:192.0.2.10", 4, None);
        {
            let s = BindingStore::open(&dir.0).unwrap();
            assert!(s.is_empty().unwrap());
            s.apply(&[
                BindingOp::Upsert(a.clone()),
                BindingOp::Upsert(b.clone()),
                BindingOp::Upsert(mapped.clone()),
            ])
            .unwrap();
            assert_eq!(s.len().unwrap(), 3);
            // Either form finds it; it reads back as written.
            assert_eq!(s.get(20, c.ip).unwrap(), Some(mapped.clone()));
            s.apply(&[BindingOp::Upsert(c.clone())]).unwrap();
            assert_eq!(s.len().unwrap(), 3, "the IPv4 form replaced the mapped one");
            assert_eq!(s.get(20, mapped.ip).unwrap(), Some(c.clone()));
            // Renew: same key, new lease and time.
            let renewed = BindingRecord {
                lease_end_unix: Some(9_000),
                updated_unix: 2_000,
                ..a.clone()
            };
            s.apply(&[BindingOp::Upsert(renewed.clone())]).unwrap();
            assert_eq!(s.len().unwrap(), 3);
            assert_eq!(s.get(10, a.ip).unwrap(), Some(renewed));
            // Removing what is absent is not an error; ops apply in order.
            s.apply(&[
                BindingOp::Remove { vlan: 99, ip: a.ip },
                BindingOp::Upsert(rec(30, "198.51.100.1", 5, None)),
                BindingOp::Upsert(rec(40, "10.9.9.9", 6, None)),
                BindingOp::Remove {
                    vlan: 30,
                    ip: "198.51.100.1".parse().unwrap(),
                },
                BindingOp::Remove {
                    vlan: 40,
                    ip: "::ffff:10.9.9.9".parse().unwrap(),
                },
            ])
            .unwrap();
            assert_eq!(s.len().unwrap(), 3);
            assert_eq!(
                s.get(10, a.ip).unwrap().unwrap().lease_end_unix,
                Some(9_000)
            );
        }
        let s = BindingStore::open(&dir.0).unwrap();
        let live = s.load_live(1_000).unwrap();
        let a2 = BindingRecord {
            lease_end_unix: Some(9_000),
            updated_unix: 2_000,
            ..a
        };
        assert_eq!(live, vec![a2, b, c], "key order: VLAN, family, address");
    }

    #[test]
    fn load_live_drops_and_deletes_expired() {
        let dir = TempDir::new("expiry");
        {
            let s = BindingStore::open(&dir.0).unwrap();
            s.apply(&[
                BindingOp::Upsert(rec(1, "10.0.0.1", 1, Some(100))),
                BindingOp::Upsert(rec(1, "10.0.0.2", 2, Some(150))), // ends exactly now
                BindingOp::Upsert(rec(1, "10.0.0.3", 3, Some(200))),
                BindingOp::Upsert(rec(1, "fe80::3", 3, Some(120))),
                BindingOp::Upsert(rec(1, "10.0.0.4", 4, None)),
            ])
            .unwrap();
            let live = s.load_live(150).unwrap();
            let ips: Vec<String> = live.iter().map(|r| r.ip.to_string()).collect();
            assert_eq!(ips, ["10.0.0.3", "10.0.0.4"]);
            assert_eq!(s.len().unwrap(), 2, "expired bindings deleted");
            assert_eq!(s.load_live(150).unwrap(), live, "nothing else to delete");
            let mut s = s;
            s.compact().unwrap();
            assert_eq!(
                s.load_live(150).unwrap(),
                live,
                "compaction keeps everything"
            );
        }
        let s = BindingStore::open(&dir.0).unwrap();
        assert_eq!(s.len().unwrap(), 2, "the deletion was committed");
        assert_eq!(s.load_live(10_000).unwrap().len(), 1, "no expiry stays");
    }

    #[test]
    fn group_commit_of_10000_submits() {
        let dir = TempDir::new("group");
        let (c, results) = Committer::start(BindingStore::open(&dir.0).unwrap());
        const N: u64 = 10_000;
        std::thread::scope(|s| {
            s.spawn(|| {
                for t in 0..N {
                    loop {
                        match c.submit(t, ticket_op(t)) {
                            Ok(()) => break,
                            Err(SubmitError::Full) => std::thread::yield_now(),
                            Err(SubmitError::Gone) => panic!("committer gone"),
                        }
                    }
                }
            });
            let mut seen = vec![false; N as usize];
            for _ in 0..N {
                let r = results
                    .recv_timeout(std::time::Duration::from_secs(60))
                    .unwrap();
                assert!(r.ok, "{r:?}");
                assert!(!std::mem::replace(&mut seen[r.ticket as usize], true));
            }
        });
        let stats = c.stats();
        assert_eq!(stats.ops, N);
        assert_eq!(stats.failed_commits, 0);
        assert!(
            stats.commits * 5 <= N,
            "group commit did not happen: {stats:?}"
        );
        assert!(stats.largest_group > 1, "{stats:?}");
        eprintln!("10000 ops in {} commits: {stats:?}", c.commits());
        c.stop();
        assert_eq!(
            BindingStore::open(&dir.0).unwrap().len().unwrap(),
            N as usize
        );
    }

    #[test]
    fn stop_commits_what_is_queued() {
        let dir = TempDir::new("stop");
        let (c, results) = Committer::start(BindingStore::open(&dir.0).unwrap());
        for t in 0..500 {
            c.submit(t, ticket_op(t)).unwrap();
        }
        c.stop();
        let got: Vec<CommitResult> = results.try_iter().collect();
        assert_eq!(got.len(), 500);
        assert!(got.iter().all(|r| r.ok));
        assert_eq!(BindingStore::open(&dir.0).unwrap().len().unwrap(), 500);
    }

    #[test]
    fn a_failed_commit_fails_its_whole_group_and_the_next_group_retries() {
        let dir = TempDir::new("fail");
        let store = BindingStore::open(&dir.0).unwrap();
        let hooks = store.hooks.clone();
        let (c, results) = Committer::start_with(
            store,
            CommitterOptions {
                queue: 8,
                ..CommitterOptions::default()
            },
        );
        hooks.fail.store(true, Ordering::SeqCst);
        {
            // Stall the committer so that the ops pile up into one group.
            let _gate = hooks.gate.lock().unwrap();
            for t in 0..8 {
                c.submit(t, ticket_op(t)).unwrap();
            }
            // The queue is bounded and submit never blocks.
            let mut full = false;
            for t in 8..20 {
                full |= c.submit(t, ticket_op(t)) == Err(SubmitError::Full);
            }
            assert!(full, "a full queue refuses");
        }
        let timeout = std::time::Duration::from_secs(30);
        let mut failed: Vec<u64> = Vec::new();
        while failed.len() < 8 {
            let r = results.recv_timeout(timeout).unwrap();
            assert!(!r.ok && r.error.as_deref().unwrap().contains("injected"));
            failed.push(r.ticket);
        }
        let stats = c.stats();
        assert_eq!(stats.commits, 0);
        assert!(
            (1..8).contains(&stats.failed_commits),
            "a group of several failed: {stats:?}"
        );
        // Some of 8..20 may have been queued while the first group was applied.
        while let Ok(r) = results.recv_timeout(std::time::Duration::from_millis(200)) {
            assert!(!r.ok);
        }
        hooks.fail.store(false, Ordering::SeqCst);
        c.submit(100, ticket_op(100)).unwrap();
        let r = results.recv_timeout(timeout).unwrap();
        assert_eq!((r.ticket, r.ok, r.error), (100, true, None));
        c.stop();
        let s = BindingStore::open(&dir.0).unwrap();
        assert_eq!(s.len().unwrap(), 1, "nothing of a failed group is on disk");
        assert!(
            s.get(100, IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + 100)))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_gone_committer_refuses() {
        let dir = TempDir::new("gone");
        let (c, results) = Committer::start(BindingStore::open(&dir.0).unwrap());
        drop(results); // nobody listens: the committer still commits
        c.submit(1, ticket_op(1)).unwrap();
        c.stop();
        assert_eq!(BindingStore::open(&dir.0).unwrap().len().unwrap(), 1);
        let (mut c, _r) = Committer::start(BindingStore::open(&dir.0).unwrap());
        drop(c.queue.take());
        assert_eq!(c.submit(2, ticket_op(2)), Err(SubmitError::Gone));
    }
}
