//! The hosts the switch has seen on its guest ports: the IP-seen table, (VLAN, IP)
//! → (MAC, port, first and last seen), fed from the sender fields of ARP requests
//! and replies from guest ports (gratuitous ARP included) and from DHCP bindings
//! when their ACK is released; and the hold-down table that rate-limits duplicate
//! IP reports (see `stages/ip_conflict.rs`).
//!
//! Invariants: each table holds at most its capacity and never allocates after
//! construction (the slots and the hash map are sized up front), so refreshing,
//! inserting and evicting are safe on the packet path. The IP-seen table is ordered
//! by recency: a sighting moves its entry to the front; when the table is full a new
//! address evicts the least recently seen one (counted in `evicted`). Entries age
//! out after the MAC aging time without a sighting: lookups ignore them at once, the
//! once-a-second sweep removes them (counted in `aged_out`). The hold-down table
//! keeps, per (VLAN, IP), when a conflict was last reported; full, it evicts the
//! least recently reported address (counted in `holddown_evicted` — that address
//! may then be reported again before its hold-down has passed).
//!
//! Addresses are keyed like the binding table: IPv4 as IPv4-mapped IPv6.

use crate::types::{MacAddr, PortId, Timestamp, Vid};
use rustc_hash::FxBuildHasher;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;

/// At most one duplicate-IP event per (VLAN, IP) per this many seconds.
pub const IP_CONFLICT_HOLD_DOWN_SECS: u64 = 60;
/// Addresses whose last conflict report is remembered (the hold-down table).
pub const IP_CONFLICT_TABLE_SIZE: usize = 1024;

const NIL: u32 = u32::MAX;

/// (VLAN, address as u128).
type Key = (u16, u128);

#[inline]
fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn key_ip(k: u128) -> IpAddr {
    let v6 = std::net::Ipv6Addr::from(k);
    match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    }
}

#[derive(Clone, Copy, Debug)]
struct Slot<V> {
    key: Key,
    value: V,
    /// Towards the most recent entry (NIL at the front).
    prev: u32,
    /// Towards the least recent entry (NIL at the back); the free list's link for
    /// a free slot.
    next: u32,
}

/// A bounded map in recency order: a doubly linked list threaded through a slab of
/// `capacity` slots, indexed by a hash map. Every operation is O(1) and none
/// allocates once the table is built.
#[derive(Clone, Debug)]
struct Lru<V> {
    map: HashMap<Key, u32, FxBuildHasher>,
    slots: Vec<Slot<V>>,
    free: u32,
    front: u32,
    back: u32,
    capacity: usize,
}

impl<V: Copy> Lru<V> {
    fn new(capacity: usize) -> Lru<V> {
        let capacity = capacity.min(NIL as usize - 1);
        Lru {
            // Twice the capacity: hashbrown then rehashes tombstones in place and
            // never reallocates (as in the MAC table).
            map: HashMap::with_capacity_and_hasher(capacity.saturating_mul(2), FxBuildHasher),
            slots: Vec::with_capacity(capacity),
            free: NIL,
            front: NIL,
            back: NIL,
            capacity,
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    #[inline]
    fn get(&self, key: &Key) -> Option<&V> {
        self.map.get(key).map(|&i| &self.slots[i as usize].value)
    }

    fn unlink(&mut self, i: u32) {
        let Slot { prev, next, .. } = self.slots[i as usize];
        match prev {
            NIL => self.front = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.back = prev,
            n => self.slots[n as usize].prev = prev,
        }
    }

    fn link_front(&mut self, i: u32) {
        let old = self.front;
        let s = &mut self.slots[i as usize];
        s.prev = NIL;
        s.next = old;
        match old {
            NIL => self.back = i,
            o => self.slots[o as usize].prev = i,
        }
        self.front = i;
    }

    /// Inserts or replaces `key` as the most recent entry. When the table is full and
    /// `key` is new, the least recent entry makes room and is returned. A table of
    /// capacity 0 holds nothing.
    fn put(&mut self, key: Key, value: V) -> Option<(Key, V)> {
        if let Some(&i) = self.map.get(&key) {
            self.slots[i as usize].value = value;
            self.unlink(i);
            self.link_front(i);
            return None;
        }
        if self.capacity == 0 {
            return None;
        }
        let mut evicted = None;
        let i = if self.free != NIL {
            let i = self.free;
            self.free = self.slots[i as usize].next;
            i
        } else if self.slots.len() < self.capacity {
            self.slots.push(Slot {
                key,
                value,
                prev: NIL,
                next: NIL,
            });
            (self.slots.len() - 1) as u32
        } else {
            let i = self.back;
            self.unlink(i);
            let old = self.slots[i as usize];
            self.map.remove(&old.key);
            evicted = Some((old.key, old.value));
            i
        };
        let s = &mut self.slots[i as usize];
        s.key = key;
        s.value = value;
        self.map.insert(key, i);
        self.link_front(i);
        evicted
    }

    fn remove(&mut self, key: &Key) -> Option<V> {
        let i = self.map.remove(key)?;
        self.unlink(i);
        let s = &mut self.slots[i as usize];
        s.next = self.free;
        self.free = i;
        Some(s.value)
    }

    /// The least recent entry.
    fn oldest(&self) -> Option<(Key, V)> {
        (self.back != NIL).then(|| {
            let s = &self.slots[self.back as usize];
            (s.key, s.value)
        })
    }

    /// Entries from the least to the most recent.
    fn iter_oldest_first(&self) -> impl Iterator<Item = (Key, V)> + '_ {
        let mut i = self.back;
        std::iter::from_fn(move || {
            let s = self.slots.get(i as usize)?;
            i = s.prev;
            Some((s.key, s.value))
        })
    }
}

/// One address seen on a guest port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostEntry {
    pub mac: MacAddr,
    pub port: PortId,
    /// When this MAC was first seen with the address (reset when another MAC
    /// claims it).
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
}

/// A seen address with its key, as the switch reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSeen {
    pub vid: Vid,
    pub ip: IpAddr,
    pub entry: HostEntry,
}

/// The counters of the host tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStats {
    /// Entries the IP-seen table holds (live or not yet swept).
    pub entries: usize,
    pub capacity: usize,
    /// Addresses evicted, least recently seen first, to make room for new ones.
    pub evicted: u64,
    /// Addresses removed after the MAC aging time without a sighting.
    pub aged_out: u64,
    /// Duplicate-IP claims reported as events.
    pub conflicts_reported: u64,
    /// Duplicate-IP claims not reported: their address was reported less than
    /// [`IP_CONFLICT_HOLD_DOWN_SECS`] before.
    pub conflicts_suppressed: u64,
    /// Hold-down entries evicted before their hold-down had passed.
    pub holddown_evicted: u64,
}

/// The IP-seen table and the duplicate-IP hold-down table.
#[derive(Clone, Debug)]
pub struct HostTable {
    seen: Lru<HostEntry>,
    aging_ns: u64,
    /// Last report time per (VLAN, IP).
    holddown: Lru<Timestamp>,
    holddown_ns: u64,
    stats: HostStats,
}

impl HostTable {
    /// A table of `capacity` addresses (0: none are tracked) whose entries age after
    /// `aging_secs` without a sighting.
    pub fn new(capacity: usize, aging_secs: u64) -> HostTable {
        let seen = Lru::new(capacity);
        HostTable {
            stats: HostStats {
                capacity: seen.capacity,
                ..HostStats::default()
            },
            seen,
            aging_ns: aging_secs.saturating_mul(1_000_000_000),
            holddown: Lru::new(IP_CONFLICT_TABLE_SIZE),
            holddown_ns: IP_CONFLICT_HOLD_DOWN_SECS * 1_000_000_000,
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }
    pub fn is_empty(&self) -> bool {
        self.seen.len() == 0
    }
    pub fn capacity(&self) -> usize {
        self.seen.capacity
    }
    pub fn stats(&self) -> HostStats {
        HostStats {
            entries: self.seen.len(),
            ..self.stats
        }
    }

    #[inline]
    fn live(&self, e: &HostEntry, now: Timestamp) -> bool {
        now.saturating_since(e.last_seen) < self.aging_ns
    }

    /// The entry of `ip` in `vid`, if it was seen within the aging time.
    #[inline]
    pub fn lookup(&self, vid: Vid, ip: IpAddr, now: Timestamp) -> Option<HostEntry> {
        self.seen
            .get(&(vid.get(), ip_key(ip)))
            .copied()
            .filter(|e| self.live(e, now))
    }

    /// Records `ip` in `vid` seen from `mac` on `port` at `now`: refreshes its entry
    /// (a new MAC, or an entry that had aged, starts a new `first_seen`) and makes it
    /// the most recent. No allocation.
    #[inline]
    pub(crate) fn saw(&mut self, vid: Vid, ip: IpAddr, mac: MacAddr, port: PortId, now: Timestamp) {
        let key = (vid.get(), ip_key(ip));
        let first_seen = match self.seen.get(&key) {
            Some(e) if e.mac == mac && self.live(e, now) => e.first_seen,
            _ => now,
        };
        let entry = HostEntry {
            mac,
            port,
            first_seen,
            last_seen: now,
        };
        if self.seen.put(key, entry).is_some() {
            self.stats.evicted += 1;
        }
    }

    /// Forgets `ip` in `vid` if `mac` holds it (the host gave the address up).
    pub(crate) fn forget(&mut self, vid: Vid, ip: IpAddr, mac: MacAddr) {
        let key = (vid.get(), ip_key(ip));
        if self.seen.get(&key).is_some_and(|e| e.mac == mac) {
            self.seen.remove(&key);
        }
    }

    /// Whether a conflict on `ip` in `vid` may be reported now (nothing reported for
    /// it within the hold-down); if so, the report is recorded. Counts both ways.
    #[inline]
    pub(crate) fn may_report_conflict(&mut self, vid: Vid, ip: IpAddr, now: Timestamp) -> bool {
        let key = (vid.get(), ip_key(ip));
        if let Some(last) = self.holddown.get(&key)
            && now.saturating_since(*last) < self.holddown_ns
        {
            self.stats.conflicts_suppressed += 1;
            return false;
        }
        if let Some((_, last)) = self.holddown.put(key, now)
            && now.saturating_since(last) < self.holddown_ns
        {
            self.stats.holddown_evicted += 1;
        }
        self.stats.conflicts_reported += 1;
        true
    }

    /// Removes the entries that have aged out, and the hold-down entries whose
    /// hold-down has passed. O(removed): both lists are walked from their oldest end.
    pub(crate) fn sweep(&mut self, now: Timestamp) {
        while let Some((key, e)) = self.seen.oldest() {
            if self.live(&e, now) {
                break;
            }
            self.seen.remove(&key);
            self.stats.aged_out += 1;
        }
        while let Some((key, last)) = self.holddown.oldest() {
            if now.saturating_since(last) < self.holddown_ns {
                break;
            }
            self.holddown.remove(&key);
        }
    }

    /// The live entries, sorted by VLAN and address. Allocates: control path only.
    pub fn entries(&self, now: Timestamp) -> Vec<HostSeen> {
        let mut v: Vec<(Key, HostEntry)> = self
            .seen
            .iter_oldest_first()
            .filter(|(_, e)| self.live(e, now))
            .collect();
        v.sort_by_key(|(k, _)| *k);
        v.into_iter()
            .filter_map(|((vid, ip), entry)| {
                Some(HostSeen {
                    vid: Vid::new(vid)?,
                    ip: key_ip(ip),
                    entry,
                })
            })
            .collect()
    }

    /// Hitless apply: takes `old`'s entries, oldest first (so recency is kept),
    /// re-mapping each entry's port with `map` (`None`: the port is gone or no longer
    /// carries the VLAN, and the entry is dropped), its hold-down records and its
    /// counters. Returns how many entries were carried. Control path.
    pub(crate) fn carry_from(
        &mut self,
        old: &HostTable,
        map: impl Fn(PortId, Vid) -> Option<PortId>,
    ) -> usize {
        let mut kept = 0;
        for ((vid, ip), e) in old.seen.iter_oldest_first() {
            let Some(port) = Vid::new(vid).and_then(|v| map(e.port, v)) else {
                continue;
            };
            if self.seen.put((vid, ip), HostEntry { port, ..e }).is_some() {
                self.stats.evicted += 1;
            } else {
                kept += 1;
            }
        }
        for (key, last) in old.holddown.iter_oldest_first() {
            self.holddown.put(key, last);
        }
        let o = old.stats;
        self.stats.evicted += o.evicted;
        self.stats.aged_out += o.aged_out;
        self.stats.conflicts_reported += o.conflicts_reported;
        self.stats.conflicts_suppressed += o.conflicts_suppressed;
        self.stats.holddown_evicted += o.holddown_evicted;
        kept.min(self.seen.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }
    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 10, last])
    }
    fn mac(i: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, i])
    }
    fn keys(t: &HostTable, now: Timestamp) -> Vec<IpAddr> {
        t.entries(now).into_iter().map(|h| h.ip).collect()
    }

    #[test]
    fn the_least_recently_seen_address_makes_room() {
        let mut t = HostTable::new(3, 300);
        for i in 1..=3 {
            t.saw(
                vid(10),
                ip(i),
                mac(i),
                PortId(1),
                Timestamp::from_secs(i as u64),
            );
        }
        // .1 is seen again: .2 is now the least recent.
        t.saw(vid(10), ip(1), mac(1), PortId(1), Timestamp::from_secs(4));
        t.saw(vid(10), ip(4), mac(4), PortId(1), Timestamp::from_secs(5));
        assert_eq!(t.len(), 3);
        assert_eq!(t.stats().evicted, 1);
        assert_eq!(
            keys(&t, Timestamp::from_secs(5)),
            vec![ip(1), ip(3), ip(4)],
            ".2 was evicted"
        );
        let e = t.lookup(vid(10), ip(1), Timestamp::from_secs(5)).unwrap();
        assert_eq!(e.first_seen, Timestamp::from_secs(1));
        assert_eq!(e.last_seen, Timestamp::from_secs(4));
        assert!(t.lookup(vid(20), ip(1), Timestamp::from_secs(5)).is_none());
    }

    #[test]
    fn entries_age_and_the_sweep_removes_only_aged_ones() {
        let mut t = HostTable::new(8, 10);
        t.saw(vid(10), ip(1), mac(1), PortId(1), Timestamp::from_secs(0));
        t.saw(vid(10), ip(2), mac(2), PortId(2), Timestamp::from_secs(5));
        assert!(t.lookup(vid(10), ip(1), Timestamp::from_secs(10)).is_none());
        assert!(t.lookup(vid(10), ip(2), Timestamp::from_secs(10)).is_some());
        t.sweep(Timestamp::from_secs(10));
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().aged_out, 1);
        // A MAC seen again after aging starts over.
        t.saw(vid(10), ip(2), mac(2), PortId(2), Timestamp::from_secs(30));
        let e = t.lookup(vid(10), ip(2), Timestamp::from_secs(30)).unwrap();
        assert_eq!(e.first_seen, Timestamp::from_secs(30));
    }

    #[test]
    fn removal_reuses_slots_and_forget_needs_the_holder() {
        let mut t = HostTable::new(2, 300);
        t.saw(vid(10), ip(1), mac(1), PortId(1), Timestamp(0));
        t.saw(vid(10), ip(2), mac(2), PortId(1), Timestamp(0));
        t.forget(vid(10), ip(1), mac(9));
        assert_eq!(t.len(), 2, "another MAC cannot make the switch forget .1");
        t.forget(vid(10), ip(1), mac(1));
        assert_eq!(t.len(), 1);
        t.saw(vid(10), ip(3), mac(3), PortId(1), Timestamp(0));
        assert_eq!(t.stats().evicted, 0, "the freed slot took .3");
        assert_eq!(keys(&t, Timestamp(0)), vec![ip(2), ip(3)]);
    }

    #[test]
    fn a_zero_capacity_table_tracks_nothing() {
        let mut t = HostTable::new(0, 300);
        t.saw(vid(10), ip(1), mac(1), PortId(1), Timestamp(0));
        assert!(t.is_empty());
        assert!(t.lookup(vid(10), ip(1), Timestamp(0)).is_none());
    }

    #[test]
    fn conflicts_are_reported_once_per_hold_down() {
        let mut t = HostTable::new(4, 300);
        let s = Timestamp::from_secs;
        assert!(t.may_report_conflict(vid(10), ip(1), s(0)));
        assert!(!t.may_report_conflict(vid(10), ip(1), s(59)));
        assert!(t.may_report_conflict(vid(20), ip(1), s(59)), "another VLAN");
        assert!(t.may_report_conflict(vid(10), ip(1), s(60)));
        let st = t.stats();
        assert_eq!((st.conflicts_reported, st.conflicts_suppressed), (3, 1));
        t.sweep(s(200));
        assert_eq!(t.holddown.len(), 0, "passed hold-downs are swept");
    }

    #[test]
    fn a_full_hold_down_table_evicts_the_oldest_report_and_counts_it() {
        let mut t = HostTable::new(4, 300);
        for i in 0..=IP_CONFLICT_TABLE_SIZE {
            let a = IpAddr::from([198, 18, (i >> 8) as u8, i as u8]);
            assert!(t.may_report_conflict(vid(10), a, Timestamp(i as u64)));
        }
        assert_eq!(t.holddown.len(), IP_CONFLICT_TABLE_SIZE);
        assert_eq!(t.stats().holddown_evicted, 1);
        // The evicted (first) address may be reported again at once.
        assert!(t.may_report_conflict(vid(10), IpAddr::from([198, 18, 0, 0]), Timestamp(5000)));
    }

    #[test]
    fn carry_over_keeps_recency_and_remaps_ports() {
        let mut old = HostTable::new(4, 300);
        old.saw(vid(10), ip(1), mac(1), PortId(1), Timestamp(1));
        old.saw(vid(10), ip(2), mac(2), PortId(2), Timestamp(2));
        old.saw(vid(20), ip(3), mac(3), PortId(3), Timestamp(3));
        let mut new = HostTable::new(2, 300);
        let kept = new.carry_from(&old, |p, v| (v.get() == 10).then_some(PortId(p.0 + 10)));
        assert_eq!(kept, 2);
        let e = new.lookup(vid(10), ip(2), Timestamp(3)).unwrap();
        assert_eq!(e.port, PortId(12));
        assert!(new.lookup(vid(20), ip(3), Timestamp(3)).is_none());
        // .1 is the least recent in the new table too.
        new.saw(vid(10), ip(9), mac(9), PortId(1), Timestamp(4));
        assert!(new.lookup(vid(10), ip(1), Timestamp(4)).is_none());
    }

    #[test]
    fn ipv6_addresses_round_trip() {
        let mut t = HostTable::new(4, 300);
        let a: IpAddr = "2001:db8::5".parse().unwrap();
        t.saw(vid(10), a, mac(1), PortId(1), Timestamp(0));
        assert_eq!(t.entries(Timestamp(0))[0].ip, a);
    }
}
