//! How many refusal records (401/403) reach the audit log: a token bucket per peer
//! and one for all peers together, so that nobody who can reach a listener can fill
//! the disk with refusals. What is not recorded is counted: a peer's next record
//! carries `suppressed_before` (its refusals left out since its last record), and a
//! periodic summary record (`audit.refusals_suppressed`) names the peers with
//! refusals left out since the last summary.
//!
//! Invariants: the clock is passed in; the peer table holds at most [`MAX_PEERS`]
//! entries (the peer seen least recently makes room, its count going to the
//! summary's total); every refusal is either admitted or counted, never lost.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Refusal records a peer may have written at once.
pub const PEER_BURST: u32 = 10;
/// After its burst, a peer gets one more record per this interval.
pub const PEER_REFILL: Duration = Duration::from_secs(6);
/// Refusal records all peers together may have written at once.
pub const GLOBAL_BURST: u32 = 100;
/// After the global burst, one more record per this interval (all peers).
pub const GLOBAL_REFILL: Duration = Duration::from_secs(1);
/// Peers tracked at once.
pub const MAX_PEERS: usize = 1024;
/// How often the summary of suppressed refusals is written (when there is one).
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
/// Peers named in one summary (the most suppressed first).
pub const SUMMARY_PEERS: usize = 8;

/// The key of a refused caller: its IP address over TCP (an IPv6 address by its
/// /64: one host has a whole prefix), its uid on the Unix socket.
pub fn peer_key(peer: &super::Peer) -> String {
    match peer.tcp.map(|a| a.ip()) {
        Some(IpAddr::V4(ip)) => format!("tcp:{ip}"),
        Some(IpAddr::V6(ip)) => {
            let s = ip.segments();
            format!("tcp:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => format!(
            "unix:uid={}",
            peer.uid.map_or_else(|| "?".into(), |u| u.to_string())
        ),
    }
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(burst),
            at: now,
        }
    }

    fn refill(&mut self, burst: u32, every: Duration, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() / every.as_secs_f64();
        self.tokens = (self.tokens + earned).min(f64::from(burst));
        self.at = now;
    }
}

#[derive(Debug)]
struct PeerState {
    bucket: Bucket,
    /// Left out since this peer's last record.
    suppressed: u64,
    /// Left out since the last summary.
    unsummarized: u64,
}

/// The decision for one refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Write the record; `suppressed_before` of this peer's refusals were left out
    /// since its previous record.
    Record { suppressed_before: u64 },
    /// Count it, write nothing.
    Suppress,
}

/// The refusal-record limiter.
#[derive(Debug, Default)]
pub struct RefusalLimiter {
    global: Option<Bucket>,
    peers: HashMap<String, PeerState>,
    /// Suppressed refusals of peers that were evicted from the table since the last
    /// summary.
    evicted_unsummarized: u64,
    /// Refusals left out since the daemon started.
    pub suppressed_total: u64,
}

/// What the summary record says: refusals left out since the previous summary.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub suppressed: u64,
    /// How many peers had refusals left out.
    pub peers: usize,
    /// The [`SUMMARY_PEERS`] peers with the most, most first.
    pub top: Vec<(String, u64)>,
}

impl RefusalLimiter {
    /// Whether the refusal of `peer` at `now` is recorded.
    pub fn admit(&mut self, peer: &str, now: Instant) -> Admit {
        if !self.peers.contains_key(peer) && self.peers.len() >= MAX_PEERS {
            self.evict_oldest();
        }
        let global = self
            .global
            .get_or_insert_with(|| Bucket::full(GLOBAL_BURST, now));
        global.refill(GLOBAL_BURST, GLOBAL_REFILL, now);
        let state = self.peers.entry(peer.to_owned()).or_insert(PeerState {
            bucket: Bucket::full(PEER_BURST, now),
            suppressed: 0,
            unsummarized: 0,
        });
        state.bucket.refill(PEER_BURST, PEER_REFILL, now);
        if state.bucket.tokens >= 1.0 && global.tokens >= 1.0 {
            state.bucket.tokens -= 1.0;
            global.tokens -= 1.0;
            let suppressed_before = std::mem::take(&mut state.suppressed);
            Admit::Record { suppressed_before }
        } else {
            state.suppressed += 1;
            state.unsummarized += 1;
            self.suppressed_total += 1;
            Admit::Suppress
        }
    }

    /// The refusals left out since the previous summary (`None`: none), and forgets
    /// the peers whose buckets are full again (they behave).
    pub fn take_summary(&mut self, now: Instant) -> Option<Summary> {
        let mut top: Vec<(String, u64)> = self
            .peers
            .iter_mut()
            .filter(|(_, s)| s.unsummarized > 0)
            .map(|(k, s)| (k.clone(), std::mem::take(&mut s.unsummarized)))
            .collect();
        let suppressed = top.iter().map(|(_, n)| n).sum::<u64>()
            + std::mem::take(&mut self.evicted_unsummarized);
        self.peers.retain(|_, s| {
            s.bucket.refill(PEER_BURST, PEER_REFILL, now);
            s.suppressed > 0 || s.bucket.tokens < f64::from(PEER_BURST)
        });
        if suppressed == 0 {
            return None;
        }
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let peers = top.len();
        top.truncate(SUMMARY_PEERS);
        Some(Summary {
            suppressed,
            peers,
            top,
        })
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .peers
            .iter()
            .min_by_key(|(_, s)| s.bucket.at)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest
            && let Some(s) = self.peers.remove(&k)
        {
            self.evicted_unsummarized += s.unsummarized;
        }
    }

    /// Peers tracked now.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Admit {
        Admit::Record {
            suppressed_before: n,
        }
    }

    #[test]
    fn a_peer_gets_its_burst_then_one_record_per_refill_interval() {
        let t0 = Instant::now();
        let mut l = RefusalLimiter::default();
        for _ in 0..PEER_BURST {
            assert_eq!(l.admit("tcp:198.18.0.7", t0), record(0));
        }
        for _ in 0..5 {
            assert_eq!(l.admit("tcp:198.18.0.7", t0), Admit::Suppress);
        }
        // Another peer is not affected.
        assert_eq!(l.admit("tcp:198.18.0.8", t0), record(0));
        // One interval later: one record, carrying the count left out.
        let t1 = t0 + PEER_REFILL;
        assert_eq!(l.admit("tcp:198.18.0.7", t1), record(5));
        assert_eq!(l.admit("tcp:198.18.0.7", t1), Admit::Suppress);
        assert_eq!(l.suppressed_total, 6);
        let s = l.take_summary(t1).expect("a summary");
        assert_eq!(s.suppressed, 6);
        assert_eq!(s.peers, 1);
        assert_eq!(s.top, vec![("tcp:198.18.0.7".to_string(), 6)]);
        assert_eq!(l.take_summary(t1), None, "each refusal is summarized once");
    }

    #[test]
    fn all_peers_together_are_bounded() {
        let t0 = Instant::now();
        let mut l = RefusalLimiter::default();
        let mut recorded = 0;
        for i in 0..1000u32 {
            if l.admit(&format!("tcp:10.0.{}.{}", i / 256, i % 256), t0) != Admit::Suppress {
                recorded += 1;
            }
        }
        assert_eq!(recorded, GLOBAL_BURST);
        assert_eq!(l.suppressed_total, 1000 - u64::from(GLOBAL_BURST));
        let s = l.take_summary(t0).unwrap();
        assert_eq!(s.suppressed, 900);
        assert_eq!(s.peers, 900);
        assert_eq!(s.top.len(), SUMMARY_PEERS);
    }

    #[test]
    fn the_peer_table_is_bounded_and_evicted_counts_are_kept() {
        let t0 = Instant::now();
        let mut l = RefusalLimiter::default();
        // One peer exhausts its burst and has 3 refusals left out.
        for _ in 0..PEER_BURST + 3 {
            l.admit("unix:uid=1000", t0);
        }
        // Then many other peers arrive, later, after the global bucket refilled.
        let t1 = t0 + GLOBAL_REFILL * (GLOBAL_BURST * 20);
        for i in 0..(MAX_PEERS as u32 + 10) {
            l.admit(&format!("tcp:10.1.{}.{}", i / 256, i % 256), t1);
        }
        assert!(l.peers() <= MAX_PEERS);
        let s = l.take_summary(t1).unwrap();
        assert!(s.suppressed >= 3, "{s:?}");
        assert_eq!(s.suppressed, l.suppressed_total);
    }

    #[test]
    fn ipv6_peers_are_keyed_by_their_64() {
        let p = |a: &str| super::super::Peer {
            tcp: Some(a.parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            peer_key(&p("[2001:db8:1:2::5]:4000")),
            peer_key(&p("[2001:db8:1:2:ffff::9]:4001"))
        );
        assert_ne!(
            peer_key(&p("[2001:db8:1:2::5]:4000")),
            peer_key(&p("[2001:db8:1:3::5]:4000"))
        );
        assert_eq!(peer_key(&p("198.18.0.1:1")), "tcp:198.18.0.1");
    }
}
