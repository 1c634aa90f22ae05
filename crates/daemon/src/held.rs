//! Held DHCPACKs (DESIGN.md §3, durability rule): an ACK that creates or renews a
//! binding is copied aside, its binding goes to the binding log's group
//! commit (`crate::binding_log`), and the ACK is sent only once the commit is reported — or dropped
//! if it failed (fail closed). Bindings added through the API take the same path.
//!
//! Invariants: at most [`MAX_HELD`] ACKs wait at once (more are dropped and
//! counted, the client retries); nothing here blocks the data-plane thread: submits
//! never wait and results are polled between batches.

use crate::binding_log::{BindingCommits, BindingOp, BindingRecord, CommitResult};
use portcullis_dataplane::bindings::{Binding, BindingHolder, BindingSource, BindingUpdate};
use portcullis_dataplane::{ControlError, Forward, MacAddr, PortId, Switch, Timestamp, Vid};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::mpsc::Receiver;
use std::time::SystemTime;
use tokio::sync::oneshot;

/// ACKs that may wait for their commit at once.
pub const MAX_HELD: usize = 4096;

/// One held ACK.
#[derive(Debug)]
pub struct HeldFrame {
    pub ingress: PortId,
    pub fwd: Forward,
    pub binding: BindingUpdate,
    /// The frame as received (the tag the backend took out is re-added from `fwd`).
    pub data: Vec<u8>,
    /// Its checksum was left to offload (see `portcullis_io::RxFrame::csum_partial`).
    pub csum_partial: bool,
}

/// A binding the API asked for, waiting for its commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiBinding {
    pub vid: Vid,
    pub ip: IpAddr,
    pub mac: MacAddr,
    pub port: PortId,
    /// Replace another (non-static) holder of the address (`binding add --replace`).
    pub replace: bool,
}

/// Why the API's binding was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindingRefusal {
    /// The switch refused it (invalid, held by another binding, static, table full).
    Refused(ControlError),
    /// The store is not available or could not commit.
    Unavailable(String),
}

/// The answer to an API binding: the holder it replaced, if any.
pub type ApiReply = oneshot::Sender<Result<Option<BindingHolder>, BindingRefusal>>;

/// One commit outcome [`Held::drain`] hands back, in commit order (so that an API
/// binding and a held ACK for the same address are installed in the order the
/// store wrote them).
#[derive(Debug)]
pub enum Committed {
    /// A held ACK and whether its binding is durable.
    Frame(HeldFrame, bool),
    /// An API request and whether its binding is durable.
    Api(ApiReply, ApiBinding, bool),
}

/// Counters of the hold path (an API view type).
pub use portcullis_api::HeldStats;

/// The hold path of the data-plane thread.
#[derive(Debug)]
pub struct Held {
    committer: Option<Box<dyn BindingCommits>>,
    results: Option<Receiver<CommitResult>>,
    frames: HashMap<u64, HeldFrame>,
    api: HashMap<u64, (ApiReply, ApiBinding)>,
    next_ticket: u64,
    port_names: Vec<String>,
    pub stats: HeldStats,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Held {
    /// `committer` None: no binding store — every held ACK is dropped (fail closed).
    pub fn new(
        committer: Option<(Box<dyn BindingCommits>, Receiver<CommitResult>)>,
        port_names: Vec<String>,
    ) -> Held {
        let (committer, results) = committer.map_or((None, None), |(c, r)| (Some(c), Some(r)));
        Held {
            committer,
            results,
            frames: HashMap::new(),
            api: HashMap::new(),
            next_ticket: 1,
            port_names,
            stats: HeldStats::default(),
        }
    }

    fn submit(&mut self, op: BindingOp) -> Option<u64> {
        let c = self.committer.as_ref()?;
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        c.submit(ticket, op).ok().map(|_| ticket)
    }

    /// Holds an ACK whose binding must be committed first.
    pub fn hold(
        &mut self,
        switch: &mut Switch,
        ingress: PortId,
        frame: portcullis_io::RxFrame<'_>,
        fwd: &Forward,
        b: &BindingUpdate,
        now: Timestamp,
    ) {
        let data = frame.data;
        if self.frames.len() >= MAX_HELD {
            self.stats.queue_full += 1;
            switch.release_held(ingress, fwd, b, data.len(), false, now);
            return;
        }
        let unix = unix_now();
        let record = BindingRecord {
            ip: b.ip,
            mac: b.mac,
            vlan: b.vid.get(),
            port: self
                .port_names
                .get(b.port.index())
                .cloned()
                .unwrap_or_default(),
            lease_end_unix: b.lease_secs.map(|l| unix + u64::from(l)),
            source: b.source,
            updated_unix: unix,
            duid: b.duid,
        };
        match self.submit(BindingOp::Upsert(record)) {
            Some(ticket) => {
                self.stats.held += 1;
                self.frames.insert(
                    ticket,
                    HeldFrame {
                        ingress,
                        fwd: *fwd,
                        binding: *b,
                        data: data.to_vec(),
                        csum_partial: frame.csum_partial,
                    },
                );
            }
            None => {
                self.stats.failed += 1;
                switch.release_held(ingress, fwd, b, data.len(), false, now);
            }
        }
    }

    /// Asks for a binding through the API (already checked against the switch);
    /// `reply` is answered after its commit.
    pub fn add_api_binding(&mut self, b: ApiBinding, reply: ApiReply) {
        let unix = unix_now();
        let record = BindingRecord {
            ip: b.ip,
            mac: b.mac,
            vlan: b.vid.get(),
            port: self
                .port_names
                .get(b.port.index())
                .cloned()
                .unwrap_or_default(),
            lease_end_unix: None,
            source: BindingSource::Api,
            updated_unix: unix,
            duid: None,
        };
        match self.submit(BindingOp::Upsert(record)) {
            Some(ticket) => {
                self.api.insert(ticket, (reply, b));
            }
            None => {
                let _ = reply.send(Err(BindingRefusal::Unavailable(
                    "the binding store is not available".into(),
                )));
            }
        }
    }

    /// Makes the store say what the index says of (`vid`, `ip`) — `current`, read
    /// at `now` — after a committed binding was refused at installation (another
    /// binding took the address while it was being written): the holder's record
    /// is written back, or the key removed. Static bindings are configuration, not
    /// stored. No one waits for it.
    pub fn resync(&mut self, vid: Vid, ip: IpAddr, current: Option<Binding>, now: Timestamp) {
        let op = match current {
            Some(b) if b.source != BindingSource::Static => {
                let unix = unix_now();
                BindingOp::Upsert(BindingRecord {
                    ip,
                    mac: b.mac,
                    vlan: vid.get(),
                    port: self
                        .port_names
                        .get(b.port.index())
                        .cloned()
                        .unwrap_or_default(),
                    lease_end_unix: b
                        .lease_end
                        .map(|end| unix + end.saturating_since(now).div_ceil(1_000_000_000)),
                    source: b.source,
                    updated_unix: unix,
                    duid: b.duid,
                })
            }
            _ => BindingOp::Remove {
                vlan: vid.get(),
                ip,
            },
        };
        let _ = self.submit(op);
    }

    /// Makes a removal durable (no one waits for it: a removal lost in a crash
    /// leaves a binding that expires with its lease).
    pub fn remove(&mut self, vid: Vid, ip: IpAddr) {
        let _ = self.submit(BindingOp::Remove {
            vlan: vid.get(),
            ip,
        });
    }

    /// An apply renumbered the ports: `new_of_old[i]` is the new id of old port `i`
    /// (`None`: removed). Held ACKs keep waiting with their ports renumbered; one
    /// whose ingress or binding port was removed is dropped (counted as failed: its
    /// client retries), and outputs to removed ports are left out. Pending API
    /// bindings on a removed port are answered with an error.
    pub fn renumber_ports(&mut self, new_of_old: &[Option<PortId>], port_names: Vec<String>) {
        let map = |p: PortId| new_of_old.get(p.index()).copied().flatten();
        let mut dropped = 0;
        self.frames.retain(|_, h| {
            let (Some(ingress), Some(bport)) = (map(h.ingress), map(h.binding.port)) else {
                dropped += 1;
                return false;
            };
            h.ingress = ingress;
            h.binding.port = bport;
            let mut out = portcullis_dataplane::PortSet::default();
            for o in h.fwd.out.iter().filter_map(map) {
                out.insert(o);
            }
            h.fwd.out = out;
            true
        });
        self.stats.failed += dropped;
        let tickets: Vec<u64> = self.api.keys().copied().collect();
        for t in tickets {
            let port = self.api[&t].1.port;
            match map(port) {
                Some(p) => {
                    if let Some(e) = self.api.get_mut(&t) {
                        e.1.port = p;
                    }
                }
                None => {
                    if let Some((reply, _)) = self.api.remove(&t) {
                        let _ = reply.send(Err(BindingRefusal::Unavailable(
                            "the port was removed by an apply".into(),
                        )));
                    }
                }
            }
        }
        self.port_names = port_names;
        self.stats.waiting = self.frames.len() as u64;
    }

    /// The commits reported since the last call, in commit order: held ACKs with
    /// whether their binding is durable, and API requests with theirs.
    pub fn drain(&mut self) -> Vec<Committed> {
        let mut out = Vec::new();
        let Some(rx) = &self.results else {
            return out;
        };
        while let Ok(r) = rx.try_recv() {
            if let Some(h) = self.frames.remove(&r.ticket) {
                if r.ok {
                    self.stats.released += 1;
                } else {
                    self.stats.failed += 1;
                }
                out.push(Committed::Frame(h, r.ok));
            } else if let Some((reply, b)) = self.api.remove(&r.ticket) {
                out.push(Committed::Api(reply, b, r.ok));
            }
        }
        self.stats.waiting = self.frames.len() as u64;
        out
    }
}
