//! The bounded MAC table: (VLAN, MAC) → port, IEEE 802.1Q §8.8 filtering database in
//! the vSwitch model of DESIGN.md §2.
//!
//! Guest MACs are *known*: the initial or effective MAC of each guest port, entered
//! from configuration, from the guest's first frame, or by a MAC change; they never
//! age and live as long as the port holds them. MACs seen as sources on uplinks are
//! *learned* for visibility (`show mac`) and age out after `aging` of inactivity;
//! forwarding never depends on them (unknown unicast from a guest goes to its uplink
//! by teaming anyway).
//!
//! Invariants: the table never holds more than `capacity` entries and never
//! allocates after construction. `reserve` slots are kept free for guest MACs:
//! learning from uplinks stops `reserve` entries short of full, so a flood on the
//! physical network cannot keep a guest from being known. A full table refuses the
//! insert, and the caller drops and counts.

use crate::types::{Instant, MacAddr, PortId, Vid};
use rustc_hash::FxBuildHasher;
use serde::Serialize;
use std::collections::HashMap;

/// How an entry came to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MacKind {
    /// A guest port's MAC (configured, first frame, or MAC change). Never ages.
    Guest,
    /// Seen as a source on an uplink. Ages.
    Learned,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MacEntry {
    pub port: PortId,
    pub kind: MacKind,
    pub last_seen: Instant,
}

/// Why an insert failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MacInsertError {
    Full,
    /// Another port already holds this MAC as a guest MAC in this VLAN.
    OwnedBy(PortId),
}

#[inline]
fn key(vid: Vid, mac: MacAddr) -> u64 {
    (vid.get() as u64) << 48 | mac.to_u64()
}

/// Bounded (VLAN, MAC) → port table.
#[derive(Debug)]
pub struct MacTable {
    map: HashMap<u64, MacEntry, FxBuildHasher>,
    capacity: usize,
    reserve: usize,
    aging_ns: u64,
    /// Learned entries refused because the table (less the guest reserve) was full.
    pub learn_refused: u64,
    /// Learned entries removed by aging.
    pub aged_out: u64,
    last_sweep: Instant,
}

impl MacTable {
    pub fn new(capacity: usize, aging_secs: u64) -> MacTable {
        MacTable {
            // Twice the capacity: hashbrown then always rehashes tombstones in place
            // (it does so while len <= buckets/2) and never reallocates.
            map: HashMap::with_capacity_and_hasher(capacity.saturating_mul(2), FxBuildHasher),
            capacity,
            reserve: 0,
            aging_ns: aging_secs.saturating_mul(1_000_000_000),
            learn_refused: 0,
            aged_out: 0,
            last_sweep: Instant(0),
        }
    }

    /// Keeps `n` slots free of learned entries (one per guest port).
    pub fn set_guest_reserve(&mut self, n: usize) {
        self.reserve = n.min(self.capacity);
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    #[inline]
    fn live(&self, e: &MacEntry, now: Instant) -> bool {
        e.kind == MacKind::Guest || now.saturating_since(e.last_seen) < self.aging_ns
    }

    /// The entry for (vid, mac), if present and not aged out.
    #[inline]
    pub fn lookup(&self, vid: Vid, mac: MacAddr, now: Instant) -> Option<MacEntry> {
        self.map
            .get(&key(vid, mac))
            .copied()
            .filter(|e| self.live(e, now))
    }

    /// Records `mac` as a guest MAC of `port` in `vid`. Replaces a learned entry;
    /// refuses a MAC another port holds as a guest MAC.
    pub fn insert_guest(
        &mut self,
        vid: Vid,
        mac: MacAddr,
        port: PortId,
        now: Instant,
    ) -> Result<(), MacInsertError> {
        let k = key(vid, mac);
        match self.map.get(&k) {
            Some(e) if e.kind == MacKind::Guest && e.port != port => {
                return Err(MacInsertError::OwnedBy(e.port));
            }
            Some(_) => {}
            None if self.map.len() >= self.capacity => {
                self.sweep(now);
                if self.map.len() >= self.capacity {
                    return Err(MacInsertError::Full);
                }
            }
            None => {}
        }
        self.map.insert(
            k,
            MacEntry {
                port,
                kind: MacKind::Guest,
                last_seen: now,
            },
        );
        Ok(())
    }

    /// Removes the guest entry of `port` for (vid, mac), if it holds it.
    pub fn remove_guest(&mut self, vid: Vid, mac: MacAddr, port: PortId) {
        let k = key(vid, mac);
        if self
            .map
            .get(&k)
            .is_some_and(|e| e.kind == MacKind::Guest && e.port == port)
        {
            self.map.remove(&k);
        }
    }

    /// Notes `mac` seen as a source on uplink `port`. Returns the guest entry when the
    /// MAC is a local guest's (the caller treats that as a reflection).
    #[inline]
    pub fn learn(
        &mut self,
        vid: Vid,
        mac: MacAddr,
        port: PortId,
        now: Instant,
    ) -> Option<MacEntry> {
        let k = key(vid, mac);
        let len = self.map.len();
        let limit = self.capacity - self.reserve;
        match self.map.get_mut(&k) {
            Some(e) if e.kind == MacKind::Guest => Some(*e),
            Some(e) => {
                e.port = port;
                e.last_seen = now;
                None
            }
            None => {
                if len < limit {
                    self.map.insert(
                        k,
                        MacEntry {
                            port,
                            kind: MacKind::Learned,
                            last_seen: now,
                        },
                    );
                } else {
                    self.learn_refused += 1;
                }
                None
            }
        }
    }

    /// Removes aged-out learned entries. O(capacity): the runtime calls it at most
    /// once a second (see [`MacTable::maybe_sweep`]).
    pub fn sweep(&mut self, now: Instant) {
        let aging = self.aging_ns;
        let before = self.map.len();
        self.map
            .retain(|_, e| e.kind == MacKind::Guest || now.saturating_since(e.last_seen) < aging);
        self.aged_out += (before - self.map.len()) as u64;
        self.last_sweep = now;
    }

    /// Sweeps if the last sweep is at least a second old.
    pub fn maybe_sweep(&mut self, now: Instant) {
        if now.saturating_since(self.last_sweep) >= 1_000_000_000 {
            self.sweep(now);
        }
    }

    /// Removes every entry of `port`.
    pub fn flush_port(&mut self, port: PortId) {
        self.map.retain(|_, e| e.port != port);
    }

    /// Every live entry as (vid, mac, entry), sorted. Allocates: control path only.
    pub fn entries(&self, now: Instant) -> Vec<(Vid, MacAddr, MacEntry)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|(_, e)| self.live(e, now))
            .filter_map(|(k, e)| {
                let vid = Vid::new((k >> 48) as u16)?;
                let b = k.to_be_bytes();
                Some((vid, MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]]), *e))
            })
            .collect();
        v.sort_by_key(|(vid, mac, _)| (*vid, *mac));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }
    fn mac(last: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, last])
    }

    #[test]
    fn guest_entries_are_exclusive_per_vlan() {
        let mut t = MacTable::new(8, 300);
        let now = Instant::from_secs(1);
        t.insert_guest(vid(10), mac(1), PortId(1), now).unwrap();
        assert_eq!(
            t.insert_guest(vid(10), mac(1), PortId(2), now),
            Err(MacInsertError::OwnedBy(PortId(1)))
        );
        t.insert_guest(vid(20), mac(1), PortId(2), now).unwrap();
        assert_eq!(t.lookup(vid(10), mac(1), now).unwrap().port, PortId(1));
        assert_eq!(t.lookup(vid(20), mac(1), now).unwrap().port, PortId(2));
    }

    #[test]
    fn learned_entries_age_and_guest_entries_do_not() {
        let mut t = MacTable::new(8, 10);
        let t0 = Instant::from_secs(100);
        t.insert_guest(vid(10), mac(1), PortId(1), t0).unwrap();
        assert_eq!(t.learn(vid(10), mac(2), PortId(0), t0), None);
        let later = Instant::from_secs(111);
        assert!(
            t.lookup(vid(10), mac(2), later).is_none(),
            "learned entry ages"
        );
        assert!(
            t.lookup(vid(10), mac(1), later).is_some(),
            "guest entry stays"
        );
        t.sweep(later);
        assert_eq!(t.len(), 1);
        assert_eq!(t.aged_out, 1);
    }

    #[test]
    fn full_table_refuses_and_reserve_protects_guests() {
        let mut t = MacTable::new(3, 300);
        t.set_guest_reserve(1);
        let now = Instant::from_secs(1);
        for i in 0..5 {
            t.learn(vid(10), mac(10 + i), PortId(0), now);
        }
        assert_eq!(t.len(), 2);
        assert_eq!(t.learn_refused, 3);
        t.insert_guest(vid(10), mac(1), PortId(1), now).unwrap();
        assert_eq!(
            t.insert_guest(vid(10), mac(2), PortId(2), now),
            Err(MacInsertError::Full)
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn learning_a_guest_mac_reports_it() {
        let mut t = MacTable::new(4, 300);
        let now = Instant::from_secs(1);
        t.insert_guest(vid(10), mac(1), PortId(3), now).unwrap();
        assert_eq!(
            t.learn(vid(10), mac(1), PortId(0), now).unwrap().port,
            PortId(3)
        );
    }

    #[test]
    fn entries_round_trip() {
        let mut t = MacTable::new(4, 300);
        let now = Instant::from_secs(1);
        t.insert_guest(vid(4094), mac(7), PortId(3), now).unwrap();
        let e = t.entries(now);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, vid(4094));
        assert_eq!(e[0].1, mac(7));
    }
}
