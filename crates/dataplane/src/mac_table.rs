//! The bounded MAC table: (VLAN, MAC) → port, IEEE 802.1Q §8.8 filtering database in
//! the vSwitch model of DESIGN.md §2.
//!
//! Guest MACs are *known*: the initial or effective MAC of each guest port, entered
//! from configuration, from the guest's first frame, or by a MAC change; they never
//! age and live as long as the port holds them. Port security's secure MACs are
//! local too: static and sticky ones never age, dynamic ones are removed by the
//! switch's sweep when their port's aging rule says so. MACs seen as sources on uplinks are
//! *learned* for visibility (`show mac`) and age out after `aging` of inactivity;
//! forwarding never depends on them (unknown unicast from a guest goes to its uplink
//! by teaming anyway).
//!
//! Invariants: the table never holds more than `capacity` entries and never
//! allocates after construction. `reserve` slots are kept free for guest MACs:
//! learning from uplinks stops `reserve` entries short of full, so a flood on the
//! physical network cannot keep a guest from being known. A full table refuses the
//! insert, and the caller drops and counts.

use crate::types::{MacAddr, PortId, Timestamp, Vid};
use rustc_hash::FxBuildHasher;
use serde::Serialize;
use std::collections::HashMap;

/// How a secure MAC (port security) came to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SecureKind {
    /// From the configuration.
    Static,
    /// Learned and kept for good (persisted by the daemon).
    Sticky,
    /// Learned; ages by the port's rule.
    Dynamic,
}

/// How an entry came to be.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum MacKind {
    /// A guest port's effective MAC (configured, first frame, or MAC change). Never
    /// ages.
    Guest,
    /// Seen as a source on an uplink. Ages.
    Learned,
    /// A secure MAC of a guest port (port security).
    Secure(SecureKind),
}

impl MacKind {
    /// Owned by a guest port (frames to it are delivered there), as opposed to
    /// learned from the network.
    #[inline]
    pub fn is_local(self) -> bool {
        !matches!(self, MacKind::Learned)
    }

    /// A stable name for APIs: guest, learned, static, sticky, dynamic.
    pub fn name(self) -> &'static str {
        match self {
            MacKind::Guest => "guest",
            MacKind::Learned => "learned",
            MacKind::Secure(SecureKind::Static) => "static",
            MacKind::Secure(SecureKind::Sticky) => "sticky",
            MacKind::Secure(SecureKind::Dynamic) => "dynamic",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MacEntry {
    pub port: PortId,
    pub kind: MacKind,
    /// Last time the MAC was seen as a source (learned and secure entries).
    pub last_seen: Timestamp,
    /// When the entry was made.
    pub learned_at: Timestamp,
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

fn split_key(k: u64) -> Option<(Vid, MacAddr)> {
    let vid = Vid::new((k >> 48) as u16)?;
    let b = k.to_be_bytes();
    Some((vid, MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])))
}

/// Bounded (VLAN, MAC) → port table.
#[derive(Clone, Debug)]
pub struct MacTable {
    map: HashMap<u64, MacEntry, FxBuildHasher>,
    capacity: usize,
    reserve: usize,
    aging_ns: u64,
    /// Learned entries refused because the table (less the guest reserve) was full.
    pub learn_refused: u64,
    /// Learned entries removed by aging.
    pub aged_out: u64,
    last_sweep: Timestamp,
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
            last_sweep: Timestamp(0),
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

    /// Learned entries age lazily here; local entries live until removed (the
    /// switch's sweep removes aged dynamic secure MACs, keeping its counts exact).
    #[inline]
    fn live(&self, e: &MacEntry, now: Timestamp) -> bool {
        e.kind.is_local() || now.saturating_since(e.last_seen) < self.aging_ns
    }

    /// The entry for (vid, mac), if present and not aged out.
    #[inline]
    pub fn lookup(&self, vid: Vid, mac: MacAddr, now: Timestamp) -> Option<MacEntry> {
        self.map
            .get(&key(vid, mac))
            .copied()
            .filter(|e| self.live(e, now))
    }

    /// Records `mac` as a local MAC of `port` in `vid` (its effective MAC, or a
    /// secure MAC of `kind`). Replaces a learned entry and refreshes the port's own;
    /// refuses a MAC another port holds.
    pub fn insert_local(
        &mut self,
        vid: Vid,
        mac: MacAddr,
        port: PortId,
        kind: MacKind,
        now: Timestamp,
    ) -> Result<(), MacInsertError> {
        debug_assert!(kind.is_local());
        let k = key(vid, mac);
        match self.map.get(&k) {
            Some(e) if e.kind.is_local() && e.port != port => {
                return Err(MacInsertError::OwnedBy(e.port));
            }
            Some(_) => {}
            None if self.map.len() >= self.capacity => {
                self.sweep_learned(now);
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
                kind,
                last_seen: now,
                learned_at: now,
            },
        );
        Ok(())
    }

    /// Records `mac` as the effective MAC of guest `port` in `vid`.
    pub fn insert_guest(
        &mut self,
        vid: Vid,
        mac: MacAddr,
        port: PortId,
        now: Timestamp,
    ) -> Result<(), MacInsertError> {
        self.insert_local(vid, mac, port, MacKind::Guest, now)
    }

    /// Removes the local entry of `port` for (vid, mac), if it holds one; returns it.
    pub fn remove_local(&mut self, vid: Vid, mac: MacAddr, port: PortId) -> Option<MacEntry> {
        let k = key(vid, mac);
        if self
            .map
            .get(&k)
            .is_some_and(|e| e.kind.is_local() && e.port == port)
        {
            return self.map.remove(&k);
        }
        None
    }

    /// Notes a local entry's MAC seen as a source again (inactivity aging).
    #[inline]
    pub fn touch(&mut self, vid: Vid, mac: MacAddr, now: Timestamp) {
        if let Some(e) = self.map.get_mut(&key(vid, mac)) {
            e.last_seen = now;
        }
    }

    /// Notes `mac` seen as a source on uplink `port`. Returns the local entry when
    /// the MAC is a guest's (the caller treats that as a reflection).
    #[inline]
    pub fn learn(
        &mut self,
        vid: Vid,
        mac: MacAddr,
        port: PortId,
        now: Timestamp,
    ) -> Option<MacEntry> {
        let k = key(vid, mac);
        let len = self.map.len();
        let limit = self.capacity - self.reserve;
        match self.map.get_mut(&k) {
            Some(e) if e.kind.is_local() => Some(*e),
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
                            learned_at: now,
                        },
                    );
                } else {
                    self.learn_refused += 1;
                }
                None
            }
        }
    }

    /// Removes aged-out learned entries. O(capacity).
    pub fn sweep_learned(&mut self, now: Timestamp) {
        self.sweep(now, |_, _, _| false);
    }

    /// Removes aged-out learned entries, and the local entries for which `expire`
    /// returns true (it is called for every local entry, and does what removing
    /// one means to its caller). O(capacity): the switch calls it at most once a
    /// second.
    pub fn sweep(
        &mut self,
        now: Timestamp,
        mut expire: impl FnMut(Vid, MacAddr, &MacEntry) -> bool,
    ) {
        let aging = self.aging_ns;
        let mut aged = 0;
        self.map.retain(|k, e| {
            if e.kind.is_local() {
                return match split_key(*k) {
                    Some((vid, mac)) => !expire(vid, mac, e),
                    None => true,
                };
            }
            let keep = now.saturating_since(e.last_seen) < aging;
            aged += !keep as u64;
            keep
        });
        self.aged_out += aged;
        self.last_sweep = now;
    }

    /// Whether the last sweep is at least a second old.
    pub fn sweep_due(&self, now: Timestamp) -> bool {
        now.saturating_since(self.last_sweep) >= 1_000_000_000
    }

    /// Removes the local entries of `port` that `f` picks; returns how many.
    pub fn remove_local_where(
        &mut self,
        port: PortId,
        mut f: impl FnMut(&MacEntry) -> bool,
    ) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, e| !(e.kind.is_local() && e.port == port && f(e)));
        before - self.map.len()
    }

    /// Puts `entry` in place as given, kind and timestamps included: a configuration
    /// apply carrying an entry over from the running switch's table
    /// (`carry_over.rs`). Replaces an entry of the same port and locality (so a
    /// carried guest entry can take over its configured twin); refuses, returning
    /// false, a key another port or the other locality holds, a new key when the
    /// table is full, and a learned entry already aged out at `now` under this
    /// table's aging. Control path; no allocation beyond the table's own.
    pub(crate) fn restore(
        &mut self,
        vid: Vid,
        mac: MacAddr,
        entry: MacEntry,
        now: Timestamp,
    ) -> bool {
        if !self.live(&entry, now) {
            return false;
        }
        let k = key(vid, mac);
        match self.map.get(&k) {
            Some(e) if e.port != entry.port || e.kind.is_local() != entry.kind.is_local() => {
                return false;
            }
            Some(_) => {}
            None if self.map.len() >= self.capacity => return false,
            None => {}
        }
        self.map.insert(k, entry);
        true
    }

    /// Removes every entry of `port`.
    pub fn flush_port(&mut self, port: PortId) {
        self.map.retain(|_, e| e.port != port);
    }

    /// Every live entry as (vid, mac, entry), sorted. Allocates: control path only.
    pub fn entries(&self, now: Timestamp) -> Vec<(Vid, MacAddr, MacEntry)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|(_, e)| self.live(e, now))
            .filter_map(|(k, e)| split_key(*k).map(|(vid, mac)| (vid, mac, *e)))
            .collect();
        v.sort_by_key(|(vid, mac, _)| (*vid, *mac));
        v
    }

    /// The local entries of `port` as (vid, mac, entry). Allocates: control path only.
    pub fn entries_of(&self, port: PortId) -> Vec<(Vid, MacAddr, MacEntry)> {
        let mut v: Vec<_> = self
            .map
            .iter()
            .filter(|(_, e)| e.kind.is_local() && e.port == port)
            .filter_map(|(k, e)| split_key(*k).map(|(vid, mac)| (vid, mac, *e)))
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
        let now = Timestamp::from_secs(1);
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
        let t0 = Timestamp::from_secs(100);
        t.insert_guest(vid(10), mac(1), PortId(1), t0).unwrap();
        assert_eq!(t.learn(vid(10), mac(2), PortId(0), t0), None);
        let later = Timestamp::from_secs(111);
        assert!(
            t.lookup(vid(10), mac(2), later).is_none(),
            "learned entry ages"
        );
        assert!(
            t.lookup(vid(10), mac(1), later).is_some(),
            "guest entry stays"
        );
        t.sweep_learned(later);
        assert_eq!(t.len(), 1);
        assert_eq!(t.aged_out, 1);
    }

    #[test]
    fn full_table_refuses_and_reserve_protects_guests() {
        let mut t = MacTable::new(3, 300);
        t.set_guest_reserve(1);
        let now = Timestamp::from_secs(1);
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
        let now = Timestamp::from_secs(1);
        t.insert_guest(vid(10), mac(1), PortId(3), now).unwrap();
        assert_eq!(
            t.learn(vid(10), mac(1), PortId(0), now).unwrap().port,
            PortId(3)
        );
    }

    #[test]
    fn entries_round_trip() {
        let mut t = MacTable::new(4, 300);
        let now = Timestamp::from_secs(1);
        t.insert_guest(vid(4094), mac(7), PortId(3), now).unwrap();
        let e = t.entries(now);
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, vid(4094));
        assert_eq!(e[0].1, mac(7));
    }
}
