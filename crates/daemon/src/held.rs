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
    Frame(Box<HeldFrame>, bool),
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
    /// A held REPLY's further bindings: their tickets → the held frame's (at most
    /// `dhcpv6_guard::MAX_REPLY_REST` per held frame).
    rest: HashMap<u64, u64>,
    /// Held frames one of whose further bindings did not commit: dropped, not sent,
    /// whatever their own result.
    doomed: std::collections::HashSet<u64>,
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
            rest: HashMap::new(),
            doomed: std::collections::HashSet::new(),
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
        let record = |s: &Self, b: &portcullis_dataplane::bindings::NewBinding| BindingRecord {
            ip: b.ip,
            mac: b.mac,
            vlan: b.vid.get(),
            port: s
                .port_names
                .get(b.port.index())
                .cloned()
                .unwrap_or_default(),
            lease_end_unix: b.lease_secs.map(|l| unix + u64::from(l)),
            source: b.source,
            updated_unix: unix,
            duid: b.duid,
        };
        // A REPLY's further addresses are written before its held one, so their
        // results come back first (the committer reports in submission order):
        // the REPLY leaves only when every binding it creates is durable.
        let mut rest = Vec::new();
        if b.source == BindingSource::Dhcpv6 {
            portcullis_dataplane::stages::dhcpv6_guard::reply_rest(fwd, b, data, |n| rest.push(n));
        }
        let mut rest_tickets = Vec::with_capacity(rest.len());
        let mut rest_lost = false;
        for n in &rest {
            match self.submit(BindingOp::Upsert(record(self, n))) {
                Some(t) => rest_tickets.push(t),
                None => rest_lost = true,
            }
        }
        match self.submit(BindingOp::Upsert(record(self, &b.as_new()))) {
            Some(ticket) => {
                for t in rest_tickets {
                    self.rest.insert(t, ticket);
                }
                if rest_lost {
                    self.doomed.insert(ticket);
                }
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
                BindingOp::Upsert(self.record(vid, ip, &b, now))
            }
            _ => BindingOp::Remove {
                vlan: vid.get(),
                ip,
            },
        };
        let _ = self.submit(op);
    }

    /// The store's record of binding `b` of (`vid`, `ip`), read at `now`: its port
    /// by name, its lease end in Unix seconds.
    pub fn record(&self, vid: Vid, ip: IpAddr, b: &Binding, now: Timestamp) -> BindingRecord {
        let unix = unix_now();
        BindingRecord {
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
        }
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
            if let Some(main) = self.rest.remove(&r.ticket) {
                if !r.ok {
                    self.doomed.insert(main);
                }
                continue;
            }
            let doomed = self.doomed.remove(&r.ticket);
            if let Some(h) = self.frames.remove(&r.ticket) {
                let ok = r.ok && !doomed;
                if ok {
                    self.stats.released += 1;
                } else {
                    self.stats.failed += 1;
                }
                out.push(Committed::Frame(Box::new(h), ok));
            } else if let Some((reply, b)) = self.api.remove(&r.ticket) {
                out.push(Committed::Api(reply, b, r.ok));
            }
        }
        self.stats.waiting = self.frames.len() as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings_store::SubmitError;
    use portcullis_dataplane::wire::dhcpv6::{
        self, CLIENT_PORT, Dhcpv6Emit, Dhcpv6OptionOut as Opt, MessageType, SERVER_PORT,
    };
    use portcullis_dataplane::{IngressFrame, Verdict};
    use std::net::Ipv6Addr;
    use std::sync::{Arc, Mutex, mpsc};

    /// A committer that only records what it is given; the test reports results.
    #[derive(Debug, Default, Clone)]
    struct Recorder(Arc<Mutex<Vec<(u64, BindingOp)>>>);

    impl BindingCommits for Recorder {
        fn submit(&self, ticket: u64, op: BindingOp) -> Result<(), SubmitError> {
            self.0.lock().unwrap().push((ticket, op));
            Ok(())
        }
    }

    const CONFIG: &str = "[switch]\nname = \"held\"\n\n[[port_group]]\nname = \"web\"\nvlan = 10\ndhcpv6_guard = {}\n\n[[host.port]]\nname = \"vm1\"\ninterface = \"mem-vm1\"\nport_group = \"web\"\nmac = \"52:54:00:00:00:01\"\n\n[[host.port]]\nname = \"srv\"\ninterface = \"mem-srv\"\nport_group = \"web\"\nmac = \"52:54:00:00:00:02\"\ndhcpv6_guard = { trusted = true }\n";
    const VM1: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
    const SRV: [u8; 6] = [0x52, 0x54, 0, 0, 0, 2];

    fn ll(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
    }
    fn ula(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfd00, 0x198, 0x18, 0x10, 0, 0, 0, last)
    }

    /// An Ethernet frame of a DHCPv6 message from `src_ip`:`sport` to `dst_ip`:`dport`.
    fn frame(
        dst: [u8; 6],
        src: [u8; 6],
        (src_ip, sport): (Ipv6Addr, u16),
        (dst_ip, dport): (Ipv6Addr, u16),
        msg_type: MessageType,
        options: &[Opt<'_>],
    ) -> Vec<u8> {
        let e = Dhcpv6Emit {
            msg_type,
            transaction_id: 7,
            options,
        };
        let mut payload = vec![0; e.buffer_len()];
        e.emit(&mut payload).unwrap();
        let mut l3 = vec![0; 48 + payload.len()];
        let n = dhcpv6::emit_udp(&mut l3, &src_ip, &dst_ip, sport, dport, &payload).unwrap();
        l3.truncate(n);
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x86, 0xdd]);
        f.extend_from_slice(&l3);
        f
    }

    /// A switch that has seen vm1's SOLICIT and holds the server's REPLY giving it
    /// two addresses; the hold path on a recording committer; the REPLY's frame.
    fn held_reply() -> (Switch, Held, Recorder, mpsc::Sender<CommitResult>, Vec<u8>) {
        let spec = portcullis_control::parse_str(CONFIG, "held.toml", None)
            .unwrap()
            .compile()
            .unwrap()
            .spec;
        let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();
        let duid = [0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 1];
        let none: [(Ipv6Addr, u32, u32); 0] = [];
        let solicit = frame(
            [0x33, 0x33, 0, 1, 0, 2],
            VM1,
            (ll(1), CLIENT_PORT),
            (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2), SERVER_PORT),
            MessageType::Solicit,
            &[
                Opt::ClientId(&duid),
                Opt::IaNa {
                    iaid: 1,
                    t1: 0,
                    t2: 0,
                    addresses: &none,
                },
            ],
        );
        let v = sw.process(
            Timestamp(1),
            PortId(0),
            &IngressFrame {
                data: &solicit,
                tag: None,
            },
        );
        assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
        let sid = [0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, 2];
        let addresses = [(ula(1), 3600, 7200), (ula(2), 3600, 7200)];
        let reply = frame(
            VM1,
            SRV,
            (ll(2), SERVER_PORT),
            (ll(1), CLIENT_PORT),
            MessageType::Reply,
            &[
                Opt::ClientId(&duid),
                Opt::ServerId(&sid),
                Opt::IaNa {
                    iaid: 1,
                    t1: 1800,
                    t2: 2880,
                    addresses: &addresses,
                },
            ],
        );
        let rec = Recorder::default();
        let (tx, rx) = mpsc::channel();
        let mut held = Held::new(
            Some((Box::new(rec.clone()), rx)),
            vec!["vm1".into(), "srv".into()],
        );
        let v = sw.process(
            Timestamp(2),
            PortId(1),
            &IngressFrame {
                data: &reply,
                tag: None,
            },
        );
        let Verdict::Hold(fwd, b) = v else {
            panic!("the REPLY is held: {v:?}")
        };
        let rx_frame = portcullis_io::RxFrame {
            data: &reply,
            tag: None,
            csum_partial: false,
            vnet: None,
            peer: None,
        };
        held.hold(&mut sw, PortId(1), rx_frame, &fwd, &b, Timestamp(2));
        (sw, held, rec, tx, reply)
    }

    /// The tickets and addresses submitted, in order.
    fn submitted(rec: &Recorder) -> Vec<(u64, IpAddr)> {
        rec.0
            .lock()
            .unwrap()
            .iter()
            .map(|(t, op)| match op {
                BindingOp::Upsert(r) => (*t, r.ip),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn result(tx: &mpsc::Sender<CommitResult>, ticket: u64, ok: bool) {
        let error = (!ok).then(|| "injected".to_string());
        tx.send(CommitResult { ticket, ok, error }).unwrap();
    }

    #[test]
    fn a_reply_with_two_addresses_leaves_only_when_both_bindings_are_durable() {
        let (_sw, mut held, rec, tx, reply) = held_reply();
        // The further address is written first, the held one last: the committer
        // reports in that order, so the REPLY's own result comes after both.
        let s = submitted(&rec);
        assert_eq!(
            s.iter().map(|(_, ip)| *ip).collect::<Vec<_>>(),
            [IpAddr::V6(ula(2)), IpAddr::V6(ula(1))]
        );
        let [(rest, _), (main, _)] = s[..] else {
            panic!("{s:?}")
        };
        for (_, op) in rec.0.lock().unwrap().iter() {
            let BindingOp::Upsert(r) = op else {
                unreachable!()
            };
            assert_eq!(r.source, BindingSource::Dhcpv6, "{r:?}");
            assert!(r.duid.is_some(), "keyed by the client's DUID too: {r:?}");
        }
        result(&tx, rest, true);
        assert!(
            held.drain().is_empty(),
            "nothing leaves on the further binding alone"
        );
        result(&tx, main, true);
        match &held.drain()[..] {
            [Committed::Frame(h, true)] => assert_eq!(h.data, reply),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_reply_whose_further_binding_did_not_commit_is_dropped() {
        let (_sw, mut held, rec, tx, _) = held_reply();
        let s = submitted(&rec);
        let [(rest, _), (main, _)] = s[..] else {
            panic!("{s:?}")
        };
        result(&tx, rest, false);
        result(&tx, main, true);
        match &held.drain()[..] {
            [Committed::Frame(_, false)] => {}
            other => panic!("fail closed: {other:?}"),
        }
        assert_eq!(held.stats.failed, 1);
        assert_eq!(held.stats.released, 0);
    }
}
