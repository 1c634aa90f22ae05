//! Hitless apply, data-plane half: moves the run-time state of the running switch
//! into a switch just built from a new spec ([`Switch::carry_over_from`]). The
//! runtime builds the new switch off the data-plane thread, then, on that thread
//! between two batches and after draining the old switch's events, calls
//! `new.carry_over_from(old, now)` and swaps. This module owns the rules of what
//! survives an apply; the switch's own modules keep owning their invariants.
//!
//! Ports are matched by name. For a port present in both switches:
//! - counters move unchanged (an apply does not reset `show counters`), and so do
//!   the port-security violation count and last violation;
//! - `admin_up` moves, and `link_up` moves (carrier, or an interface gone, is a fact
//!   about the interface, not configuration; the runtime reports it for uplinks and
//!   guests alike);
//! - the effective MAC moves (a guest port's MAC reported or adopted at run time is
//!   still the one frames must reach); the initial MAC moves unless the new spec
//!   configures one (the spec wins; with `mac_changes = reject` a port whose
//!   carried effective MAC differs from a newly configured initial MAC is then
//!   blocked until the hypervisor reports the configured one). The effective MAC
//!   does not move, and the port keeps the new spec's, when another port of the new
//!   spec is configured with it in one of the port's VLANs, when the port's new
//!   `max_macs` cannot hold it beside its configured secure MACs, or when the table
//!   has no room for it;
//! - `err_disabled` (cause and time, so automatic recovery keeps its schedule) moves
//!   while the new port still has the feature that caused it (port security, storm
//!   control, DHCP snooping rate limit, DAI rate limit); otherwise it is cleared;
//! - the port-security count is recomputed from the MAC table as carried: the
//!   distinct MACs among the port's local entries (on an access port, its local
//!   entries).
//!
//! MAC table (the new switch already holds the new spec's configured guest, static
//! and sticky entries; those always stay). Carried, in this order while there is
//! room: (1) guest entries, following each port's carried effective MAC into every
//! VLAN the new port carries (the configured initial MAC's guest entry is replaced
//! when they differ; kept as a secure MAC if the spec also lists it as one);
//! (2) secure entries — sticky and dynamic ones, with kind and timestamps, only on a
//! port that still has port security and carries the VLAN, most recently seen first,
//! up to the port's new `max_macs`; static ones only if the new spec still
//! configures them (static is configuration); (3) learned uplink entries that have
//! not aged out under the new aging, most recently seen first, leaving one slot per
//! guest port whose MAC is not known yet (what the guest reserve is for). An entry
//! whose port is gone, whose VLAN the port no longer carries, or whose kind no
//! longer fits the port's role is dropped. An entry present in both tables for the
//! same port and kind keeps its old timestamps. `macs_kept + macs_dropped` is the
//! old table's live entry count; PortIds are re-mapped to the new indexes.
//!
//! Bindings: kept when their port exists and carries their VLAN, with lease ends
//! unchanged, without a `BindingAdded` event (the daemon's store already has them).
//! A key the new spec binds statically keeps the spec's binding (counted kept if it
//! names the same MAC and port). A static binding the new spec no longer configures
//! is dropped (static is configuration). When the new capacity is short, bindings
//! without a lease end (API) go first, then the longest leases.
//!
//! IP-seen table (`hosts.rs`): entries move, least recently seen first so their
//! recency order is kept, while their port exists as a guest port that carries
//! their VLAN (PortIds re-mapped), up to the new capacity (the least recent go);
//! they then age under the new aging time. The duplicate-IP hold-downs and the
//! table's counters move too.
//!
//! MAC ACL hit counters move for an ACL of the same name and rules; its decision
//! cache starts empty. Storm-control, DHCP and ARP rate-limit token buckets start
//! fresh (full: one second of burst), as after a recovery.
//!
//! Teaming: the new switch recomputes the pins with the carried link, admin and
//! err-disable state, starting from the old switch's pins (so a port whose team has
//! failback off stays where it is while that uplink is usable), and pushes an
//! `UplinkMoved` event for every up guest port present in both switches whose pin in
//! a VLAN differs from its old pin there, exactly as a failover does, and queues its
//! RARP announcement (`egress.rs`; those of ports not carried over are dropped with
//! their events). Events left in the old switch's ring are discarded
//! and counted in the new switch's dropped-events count.
//!
//! Invariant (as after any control method): the per-VLAN sets agree with the ports;
//! every MAC-table entry's port carries the entry's VLAN; the table holds at most its
//! capacity; every port-security port's count is at most its `max_macs` and equals
//! the distinct MACs of its local entries. Never panics; allocates (control path).

use crate::errdisable::ErrDisableCause;
use crate::events::{Event, EventKind};
use crate::mac_table::{MacEntry, MacKind, SecureKind};
use crate::spec::{PortFeatures, PortRole};
use crate::switch::{Switch, VlanState};
use crate::teaming::NO_PIN;
use crate::types::{MacAddr, PortId, Timestamp, Vid};
use serde::Serialize;
use std::cmp::Reverse;

/// What moved and what did not (for the apply's answer and the log).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CarryOver {
    /// For each port of the new switch (by index): the index of the same-named port in the old one.
    pub port_map: Vec<Option<PortId>>,
    /// Ports of the new switch that the old one did not have (they start fresh).
    pub ports_added: Vec<String>,
    /// Ports of the old switch that the new one does not have (their state is gone).
    pub ports_removed: Vec<String>,
    /// Live entries of the old MAC table present in the new one.
    pub macs_kept: usize,
    /// Live entries of the old MAC table not carried (port gone, VLAN no longer
    /// carried, over a limit, or displaced by the new configuration).
    pub macs_dropped: usize,
    /// Bindings of the old switch present in the new one.
    pub bindings_kept: usize,
    /// Bindings of the old switch not carried.
    pub bindings_dropped: usize,
}

/// Whether the feature that error-disabled a port is still configured on it.
fn cause_still_configured(f: &PortFeatures, cause: ErrDisableCause) -> bool {
    match cause {
        ErrDisableCause::PortSecurity => f.port_security.is_some(),
        ErrDisableCause::StormControl => f.storm_control.is_some(),
        ErrDisableCause::DhcpRateLimit => {
            f.dhcp_snooping.is_some_and(|d| d.rate_limit_pps.is_some())
        }
        ErrDisableCause::ArpRateLimit => f
            .arp_inspection
            .as_ref()
            .is_some_and(|a| a.rate_limit_pps.is_some()),
        ErrDisableCause::NdRateLimit => f
            .nd_inspection
            .is_some_and(|n| !n.trusted && n.rate_limit_pps.is_some()),
        ErrDisableCause::Dhcpv6RateLimit => {
            f.dhcpv6_guard.is_some_and(|d| d.rate_limit_pps.is_some())
        }
    }
}

/// The secure kind the port's configuration gives `mac`, if any.
fn configured_secure(f: &PortFeatures, mac: MacAddr) -> Option<SecureKind> {
    let ps = f.port_security.as_ref()?;
    if ps.static_macs.contains(&mac) {
        Some(SecureKind::Static)
    } else if ps.sticky_macs.contains(&mac) {
        Some(SecureKind::Sticky)
    } else {
        None
    }
}

/// Old port index → new port id, from the new → old map.
fn invert(port_map: &[Option<PortId>], old_len: usize) -> Vec<Option<PortId>> {
    let mut old_to_new = vec![None; old_len];
    for (n, o) in port_map.iter().enumerate() {
        if let Some(slot) = o.and_then(|o| old_to_new.get_mut(o.index())) {
            *slot = Some(PortId(n as u16));
        }
    }
    old_to_new
}

impl Switch {
    /// Moves the run-time state of `old` (the running switch) into `self` (just built
    /// from the new spec), matching ports by name. Call on the data-plane thread between
    /// batches, after draining `old`'s events. Never panics; allocation is allowed
    /// (control path). See the module documentation for what moves.
    pub fn carry_over_from(&mut self, old: Switch, now: Timestamp) -> CarryOver {
        let port_map: Vec<Option<PortId>> =
            self.ports.iter().map(|p| old.port_id(&p.name)).collect();
        let old_to_new = invert(&port_map, old.ports.len());
        let ports_added = self
            .ports
            .iter()
            .zip(&port_map)
            .filter(|(_, o)| o.is_none())
            .map(|(p, _)| p.name.clone())
            .collect();
        let ports_removed = old
            .ports
            .iter()
            .zip(&old_to_new)
            .filter(|(_, n)| n.is_none())
            .map(|(p, _)| p.name.clone())
            .collect();

        self.carry_port_state(&old, &port_map);
        self.carry_effective_macs(&old, &port_map, now);
        self.carry_secure_and_learned(&old, &old_to_new, now);
        let (macs_kept, macs_dropped) = self.count_carried_macs(&old, &old_to_new, now);
        self.recount_secure_macs();
        let (bindings_kept, bindings_dropped) = self.carry_bindings(&old, &old_to_new);
        if let (Some(new), Some(prev)) = (self.overlay.as_mut(), old.overlay.as_ref()) {
            new.carry_from(prev);
        }
        let ports = &self.ports;
        self.hosts.carry_from(&old.hosts, |p, vid| {
            let n = (*old_to_new.get(p.index())?)?;
            let np = ports.get(n.index())?;
            (np.role == PortRole::Guest && np.vlan.carries(vid)).then_some(n)
        });
        for acl in &mut self.acls {
            if let Some(o) = old.acls.iter().find(|o| o.spec == acl.spec)
                && o.hits.len() == acl.hits.len()
            {
                acl.hits.copy_from_slice(&o.hits);
            }
        }
        self.macs.learn_refused += old.macs.learn_refused;
        self.macs.aged_out += old.macs.aged_out;
        self.carry_pins(&old, &port_map, &old_to_new, now);
        self.events.dropped += old.events.dropped + old.events.len() as u64;

        CarryOver {
            port_map,
            ports_added,
            ports_removed,
            macs_kept,
            macs_dropped,
            bindings_kept,
            bindings_dropped,
        }
    }

    /// Counters, admin and link state, error-disable, violation statistics.
    fn carry_port_state(&mut self, old: &Switch, port_map: &[Option<PortId>]) {
        for (n, o) in port_map.iter().enumerate() {
            let Some(op) = o.and_then(|o| old.ports.get(o.index())) else {
                continue;
            };
            if let (Some(c), Some(oc)) = (self.counters.get_mut(n), old.counters.get(op.id.index()))
            {
                *c = oc.clone();
            }
            let Some(p) = self.ports.get_mut(n) else {
                continue;
            };
            p.admin_up = op.admin_up;
            p.link_up = op.link_up;
            p.err_disabled = op
                .err_disabled
                .filter(|ed| cause_still_configured(&p.features, ed.cause));
            if let (Some(s), Some(os)) = (p.secure.as_mut(), op.secure) {
                s.violations = os.violations;
                s.last_violation = os.last_violation;
            }
        }
    }

    /// Distinct MACs among a port's local entries.
    fn local_macs(&self, id: PortId) -> Vec<MacAddr> {
        let mut v: Vec<MacAddr> = self
            .macs
            .entries_of(id)
            .into_iter()
            .map(|(_, m, _)| m)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Guest entries follow each guest port's carried effective MAC; the initial MAC
    /// moves unless the spec configures one.
    fn carry_effective_macs(&mut self, old: &Switch, port_map: &[Option<PortId>], now: Timestamp) {
        for (n, o) in port_map.iter().enumerate() {
            let id = PortId(n as u16);
            let Some(op) = o.and_then(|o| old.ports.get(o.index())) else {
                continue;
            };
            let Some(p) = self.ports.get(n) else { continue };
            if p.role != PortRole::Guest || op.role != PortRole::Guest {
                continue;
            }
            let Some(eff) = op.effective_mac else {
                continue;
            };
            let configured = p.initial_mac;
            let vids = p.vlan.vids();
            if configured != Some(eff) && !self.claim_effective_mac(id, eff, configured, now) {
                continue; // the port keeps the new spec's MAC (or learns one again)
            }
            // Same MAC, same port: the old entries' timestamps move.
            for vid in vids {
                if let Some(e) = old
                    .macs
                    .lookup(vid, eff, now)
                    .filter(|e| e.port == op.id && e.kind == MacKind::Guest)
                {
                    self.macs.restore(vid, eff, MacEntry { port: id, ..e }, now);
                }
            }
            let p = &mut self.ports[n];
            p.effective_mac = Some(eff);
            p.initial_mac = configured.or(op.initial_mac);
        }
    }

    /// Makes `eff` guest port `id`'s MAC in each VLAN it carries in place of its
    /// configured initial MAC, if another port does not hold it, the port's
    /// `max_macs` allows it and the table has room. All or nothing.
    fn claim_effective_mac(
        &mut self,
        id: PortId,
        eff: MacAddr,
        configured: Option<MacAddr>,
        now: Timestamp,
    ) -> bool {
        let p = &self.ports[id.index()];
        let vids = p.vlan.vids();
        // The configured initial MAC stays as a secure MAC if the spec lists it as one.
        let keep_as = configured.and_then(|c| configured_secure(&p.features, c).map(|k| (c, k)));
        let mut needed = 0usize;
        let mut freed = 0usize;
        for vid in &vids {
            match self.macs.lookup(*vid, eff, now) {
                Some(e) if e.kind.is_local() && e.port != id => return false,
                Some(e) if e.kind.is_local() => {}
                Some(_) => return false, // learned entries are not carried yet
                None => needed += 1,
            }
            if let Some(c) = configured
                && keep_as.is_none()
                && self
                    .macs
                    .lookup(*vid, c, now)
                    .is_some_and(|e| e.port == id && e.kind.is_local())
            {
                freed += 1;
            }
        }
        if self.macs.len() + needed > self.macs.capacity() + freed {
            return false;
        }
        if let Some(sec) = p.secure {
            let mut macs = self.local_macs(id);
            if keep_as.is_none() {
                macs.retain(|m| Some(*m) != configured);
            }
            if !macs.contains(&eff) {
                macs.push(eff);
            }
            if macs.len() > sec.max_macs as usize {
                return false;
            }
        }
        for vid in &vids {
            if let Some(c) = configured {
                match keep_as {
                    Some((c, kind)) => {
                        let e = MacEntry {
                            port: id,
                            kind: MacKind::Secure(kind),
                            last_seen: now,
                            learned_at: now,
                        };
                        self.macs.restore(*vid, c, e, now);
                    }
                    None => {
                        self.macs.remove_local(*vid, c, id);
                    }
                }
            }
            let e = MacEntry {
                port: id,
                kind: MacKind::Guest,
                last_seen: now,
                learned_at: now,
            };
            self.macs.restore(*vid, eff, e, now);
        }
        true
    }

    /// Secure entries (most recent first, within each port's `max_macs`), then
    /// learned uplink entries (most recent first, leaving room for the guests whose
    /// MAC is not known yet).
    fn carry_secure_and_learned(
        &mut self,
        old: &Switch,
        old_to_new: &[Option<PortId>],
        now: Timestamp,
    ) {
        let mut secure = Vec::new();
        let mut learned = Vec::new();
        for (vid, mac, e) in old.macs.entries(now) {
            let Some(id) = old_to_new.get(e.port.index()).copied().flatten() else {
                continue;
            };
            let p = &self.ports[id.index()];
            if !p.vlan.carries(vid) {
                continue;
            }
            let entry = MacEntry { port: id, ..e };
            match (e.kind, p.role) {
                (MacKind::Secure(_), PortRole::Guest) if p.secure.is_some() => {
                    secure.push((vid, mac, entry))
                }
                (MacKind::Learned, PortRole::Uplink) => learned.push((vid, mac, entry)),
                _ => {}
            }
        }
        let recency = |(vid, mac, e): &(Vid, MacAddr, MacEntry)| {
            (Reverse(e.last_seen), Reverse(e.learned_at), *vid, *mac)
        };
        secure.sort_by_key(recency);
        learned.sort_by_key(recency);

        let mut port_macs: Vec<Option<Vec<MacAddr>>> = vec![None; self.ports.len()];
        for (vid, mac, e) in secure {
            let id = e.port;
            if let Some(have) = self.macs.lookup(vid, mac, now) {
                // Configured by the new spec too: the spec's kind stays, and the old
                // timestamps move when the kind is the same.
                if have.port == id && have.kind == e.kind {
                    self.macs.restore(vid, mac, e, now);
                }
                continue;
            }
            if e.kind == MacKind::Secure(SecureKind::Static) {
                continue; // static secure MACs are configuration: the new spec's only
            }
            let Some(max) = self.ports[id.index()].secure.map(|s| s.max_macs as usize) else {
                continue;
            };
            let macs = port_macs[id.index()].get_or_insert_with(|| self.local_macs(id));
            let new_mac = !macs.contains(&mac);
            if new_mac && macs.len() >= max {
                continue;
            }
            if self.macs.restore(vid, mac, e, now) && new_mac {
                macs.push(mac);
            }
        }

        let unknown_guests = self
            .ports
            .iter()
            .filter(|p| p.role == PortRole::Guest && p.effective_mac.is_none())
            .count();
        let limit = self.macs.capacity().saturating_sub(unknown_guests);
        for (vid, mac, e) in learned {
            if self.macs.len() >= limit {
                break;
            }
            self.macs.restore(vid, mac, e, now);
        }
    }

    /// (kept, dropped) over the old table's live entries: kept when the new table
    /// holds the key for the re-mapped port with the same locality.
    fn count_carried_macs(
        &self,
        old: &Switch,
        old_to_new: &[Option<PortId>],
        now: Timestamp,
    ) -> (usize, usize) {
        let old_entries = old.macs.entries(now);
        let kept = old_entries
            .iter()
            .filter(|(vid, mac, e)| {
                let Some(id) = old_to_new.get(e.port.index()).copied().flatten() else {
                    return false;
                };
                self.macs
                    .lookup(*vid, *mac, now)
                    .is_some_and(|n| n.port == id && n.kind.is_local() == e.kind.is_local())
            })
            .count();
        (kept, old_entries.len() - kept)
    }

    /// Port security counts from the MAC table as carried.
    fn recount_secure_macs(&mut self) {
        for i in 0..self.ports.len() {
            if self.ports[i].secure.is_none() {
                continue;
            }
            let n = self.local_macs(PortId(i as u16)).len();
            if let Some(s) = self.ports[i].secure.as_mut() {
                s.count = n.min(u16::MAX as usize) as u16;
            }
        }
    }

    /// Bindings whose port exists and carries their VLAN, within the new capacity.
    fn carry_bindings(&mut self, old: &Switch, old_to_new: &[Option<PortId>]) -> (usize, usize) {
        use crate::bindings::BindingSource;
        let old_entries = old.bindings.entries();
        let mut kept = 0;
        let mut candidates = Vec::new();
        for be in &old_entries {
            let Some(id) = old_to_new.get(be.binding.port.index()).copied().flatten() else {
                continue;
            };
            if !self.ports[id.index()].vlan.carries(be.vid) {
                continue;
            }
            if let Some(have) = self.bindings.lookup(be.vid, be.ip) {
                // The new spec binds this address statically: its binding wins.
                kept += usize::from(have.mac == be.binding.mac && have.port == id);
                continue;
            }
            if be.binding.source == BindingSource::Static {
                continue; // no longer configured
            }
            let mut c = *be;
            c.binding.port = id;
            candidates.push(c);
        }
        // Without a lease end (API) first, then the longest leases.
        candidates.sort_by_key(|c| {
            (
                c.binding.lease_end.is_some(),
                Reverse(c.binding.lease_end),
                c.vid,
                c.ip,
            )
        });
        let room = self.bindings.capacity().saturating_sub(self.bindings.len());
        candidates.truncate(room);
        // In the order the old MAC index had them (those it had dropped first, each
        // client's latest last), so the new index keeps the same addresses in the
        // same order.
        let recency = |c: &crate::bindings::BindingEntry| {
            old.bindings
                .addresses_of(c.vid, c.binding.mac)
                .filter(|ip| ip.is_ipv4() == c.ip.is_ipv4())
                .position(|ip| ip == c.ip)
        };
        candidates.sort_by_key(|c| recency(c));
        for c in candidates {
            if self.bindings.upsert(c.vid, c.ip, c.binding).is_ok() {
                kept += 1;
            }
        }
        (kept, old_entries.len() - kept)
    }

    /// Recomputes the per-VLAN sets and pins from the carried port state, starting
    /// from the old switch's pins (re-mapped), and reports the pins that moved for
    /// ports present in both switches.
    fn carry_pins(
        &mut self,
        old: &Switch,
        port_map: &[Option<PortId>],
        old_to_new: &[Option<PortId>],
        now: Timestamp,
    ) {
        let remap_uplink = |pin: u16| -> u16 {
            old_to_new
                .get(pin as usize)
                .copied()
                .flatten()
                .filter(|u| self.ports[u.index()].role == PortRole::Uplink)
                .map_or(NO_PIN, |u| u.0)
        };
        let mut index = Box::new([0u16; 4096]);
        let mut vlans = Vec::with_capacity(old.vlans.len());
        for (vid, &i) in old.vlan_index.iter().enumerate() {
            let Some(ov) = (i as usize).checked_sub(1).and_then(|i| old.vlans.get(i)) else {
                continue;
            };
            let pin = port_map
                .iter()
                .map(|o| {
                    o.and_then(|o| ov.pin.get(o.index()))
                        .filter(|p| **p != NO_PIN)
                        .map_or(NO_PIN, |p| remap_uplink(*p))
                })
                .collect();
            vlans.push(VlanState {
                pin,
                ..VlanState::default()
            });
            index[vid] = vlans.len() as u16;
        }
        self.vlan_index = index;
        self.vlans = vlans;
        let before = self.events.len();
        self.rebuild_vlans();
        // rebuild_vlans reported every pin that moved since the old switch, stamped
        // with the time the new switch was built: keep those of ports that were there
        // before, stamped now.
        let events: Vec<Event> = self.events.drain().collect();
        for (k, ev) in events.into_iter().enumerate() {
            if k < before {
                self.events.push(Timestamp(ev.at_ns), ev.kind);
                continue;
            }
            match ev.kind {
                EventKind::UplinkMoved { port, .. }
                    if port_map.get(port.index()).copied().flatten().is_none() => {}
                kind => self.events.push(now, kind),
            }
        }
        // Their announcements likewise (a new switch has queued none before this).
        self.egress
            .retain_emitted(|p| port_map.get(p.index()).copied().flatten().is_some());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::*;
    use crate::types::VlanSet;

    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }

    /// Uplinks u1, u2 (trunks 10, 20); guests a and c on VLAN 10, b on `guest_vlan`.
    fn spec(guest_vlan: u16) -> SwitchSpec {
        let uplink = |name: &str| PortSpec {
            name: name.into(),
            role: PortRole::Uplink,
            vlan: VlanMode::Trunk {
                allowed: VlanSet::from_vids([vid(10), vid(20)]),
                native: None,
            },
            security: SecurityPolicy::default(),
            initial_mac: None,
            features: PortFeatures::default(),
        };
        let guest = |name: &str, v: u16, i: u8| PortSpec {
            name: name.into(),
            role: PortRole::Guest,
            vlan: VlanMode::Access(vid(v)),
            security: SecurityPolicy::default(),
            initial_mac: Some(MacAddr([0x52, 0x54, 0, 0, 0, i])),
            features: PortFeatures::default(),
        };
        SwitchSpec {
            name: "s".into(),
            mac_table_size: 16,
            mac_aging_secs: 300,
            ports: vec![
                uplink("u1"),
                uplink("u2"),
                guest("a", 10, 1),
                guest("b", guest_vlan, 2),
                guest("c", 10, 3),
            ],
            mac_acls: vec![],
            max_bindings: 8,
            host_table_size: crate::spec::DEFAULT_HOST_TABLE_SIZE,
            overlay: None,
            static_bindings: vec![],
            arp_acls: vec![],
        }
    }

    /// The derived per-VLAN sets of `sw`, as a comparable snapshot.
    fn snapshot(sw: &Switch) -> Vec<String> {
        (1..4095u16)
            .filter_map(|v| sw.vlan(vid(v)).map(|s| (v, s)))
            .map(|(v, s)| {
                format!(
                    "{v}: guests {:?} promisc {:?} blocked {:?} uplinks {:?} pins {:?} sets {:?} flood_from {:?}",
                    s.guests, s.promiscuous, s.blocked, s.uplinks, s.pin, s.sets, s.flood_from
                )
            })
            .collect()
    }

    /// After a carry, the derived sets are exactly what a rebuild from the carried
    /// ports gives (the switch's invariant), with a link down, a port error-disabled
    /// and a port moved to another VLAN.
    #[test]
    fn vlan_state_agrees_with_the_carried_ports() {
        let t0 = Timestamp::from_secs(1);
        let s = spec(10);
        let mut old = Switch::new(&s, t0).unwrap();
        old.set_link_up(PortId(0), false, t0).unwrap();
        old.err_disable(PortId(4), ErrDisableCause::StormControl, t0);
        old.set_admin_up(PortId(2), false).unwrap();
        let _ = old.drain_events().count();

        let mut s2 = spec(20);
        s2.ports[4].features.storm_control = Some(StormControlSpec::default());
        let mut new = Switch::new(&s2, t0).unwrap();
        let before = snapshot(&new);
        new.carry_over_from(old, Timestamp::from_secs(2));
        let carried = snapshot(&new);
        assert_ne!(before, carried, "the carried state changes the sets");
        new.rebuild_vlans();
        assert_eq!(snapshot(&new), carried);
        let up = |i: u16| new.ports[i as usize].is_up();
        assert!(!up(0) && up(1) && !up(2) && up(3) && !up(4));
        // Every guest is pinned to the uplink that is up.
        for v in [10, 20] {
            let st = new.vlan(vid(v)).unwrap();
            assert_eq!(st.uplinks, vec![PortId(1)]);
        }
    }

    #[test]
    fn an_err_disable_cause_that_is_no_longer_configured_is_cleared() {
        let mut f = PortFeatures::default();
        for cause in [
            ErrDisableCause::PortSecurity,
            ErrDisableCause::StormControl,
            ErrDisableCause::DhcpRateLimit,
            ErrDisableCause::ArpRateLimit,
        ] {
            assert!(!cause_still_configured(&f, cause));
        }
        f.dhcp_snooping = Some(DhcpSnoopingSpec {
            trusted: false,
            rate_limit_pps: None,
            option82: Option82::Keep,
            drop_untrusted_option82: false,
            mode: EnforceMode::Enforce,
        });
        assert!(
            !cause_still_configured(&f, ErrDisableCause::DhcpRateLimit),
            "snooping without a rate limit cannot have caused it"
        );
        f.dhcp_snooping.as_mut().unwrap().rate_limit_pps = Some(10);
        assert!(cause_still_configured(&f, ErrDisableCause::DhcpRateLimit));
    }
}
