//! The switch state: ports (with their initial and effective MACs and up/down
//! state), per-VLAN membership sets derived from them, the MAC table, counters and
//! the event ring. The pipeline (`pipeline.rs`) reads and updates it per frame; the
//! runtime changes it through the control methods here, between batches.
//!
//! Invariant: the derived per-VLAN sets (`VlanState`) always agree with the ports'
//! state: every control method that changes a port ends with `rebuild_vlans`. They
//! are rebuilt on the control path only, never per frame.

use crate::bindings::{
    BadBindingIp, Binding, BindingEntry, BindingHolder, BindingSource, BindingTable,
};
use crate::counters::PortCounters;
use crate::egress::{Egress, Originated, TxCopy};
use crate::events::BindingRemoval;
use crate::events::{EventKind, EventRing, MacChangeSource};
use crate::hosts::HostTable;
use crate::mac_table::{MacInsertError, MacTable};
use crate::mac_table::{MacKind, SecureKind};
use crate::port_state::{
    DaiPortState, DhcpPortState, Dhcpv6PortState, NdPortState, SecureState, StormState, TokenBucket,
};
use crate::spec::PortFeatures;
use crate::spec::{ArpAclSpec, IpSourceGuardSpec, Ipv6SourceGuardSpec, RaGuardSpec};
use crate::spec::{Policy, PortRole, PortSpec, SecurityPolicy, SpecError, SwitchSpec, VlanMode};
use crate::stages::mac_acl::BoundAcl;
use crate::teaming::{self, NO_PIN, Team};
use crate::types::{MacAddr, PortId, PortSet, Timestamp, Vid};
use crate::verdict::DropReason;
use crate::wire::announce;
use std::net::IpAddr;

/// The most addresses [`Switch::announce_guest`] announces for one guest.
pub const ANNOUNCED_ADDRESSES: usize = 16;

// Re-exported: the public API has named it `switch::ErrDisableCause`.
pub use crate::errdisable::ErrDisableCause;

// Re-exported: the public API has named it `switch::EVENT_RING_CAPACITY`.
pub use crate::events::EVENT_RING_CAPACITY;

/// Runtime state of one port.
#[derive(Clone, Debug)]
pub struct Port {
    pub id: PortId,
    pub name: String,
    pub role: PortRole,
    pub vlan: VlanMode,
    pub security: SecurityPolicy,
    /// The guest's initial MAC (configured, or learned from its first frame).
    pub initial_mac: Option<MacAddr>,
    /// The MAC the guest uses now (DESIGN.md §3).
    pub effective_mac: Option<MacAddr>,
    /// The initial MAC is configured (not learned from the first frame).
    pub configured_mac: bool,
    /// Administratively up (false: every frame in or out is dropped as PortDown).
    pub admin_up: bool,
    /// Link (carrier) up; uplinks only, guests are always up.
    pub link_up: bool,
    /// Error-disabled: nothing in or out until recovery.
    pub err_disabled: Option<ErrDisabled>,
    /// The features in force (from the spec), for display.
    pub features: PortFeatures,
    /// Port security state, when enabled.
    pub secure: Option<SecureState>,
    pub(crate) storm: StormState,
    pub(crate) recovery_ns: Option<u64>,
    /// Index into the switch's ACLs of the ACL on frames the port receives / sends.
    pub(crate) acl_in: Option<u16>,
    pub(crate) acl_out: Option<u16>,
    /// The port's teaming (guests only; `None`: originating-port over every uplink).
    pub team: Option<Team>,
    pub(crate) dhcp: Option<DhcpPortState>,
    pub(crate) dai: Option<DaiPortState>,
    pub(crate) ipsg: Option<IpSourceGuardSpec>,
    pub(crate) ra_guard: Option<RaGuardSpec>,
    pub(crate) nd: Option<NdPortState>,
    pub(crate) ipv6sg: Option<Ipv6SourceGuardSpec>,
    pub(crate) dhcpv6: Option<Dhcpv6PortState>,
    pub(crate) untagged_vid: Option<Vid>,
}

/// An error-disabled port's state.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ErrDisabled {
    pub cause: ErrDisableCause,
    pub since: Timestamp,
}

impl Port {
    /// mac_changes = reject and the guest's effective MAC is not its initial MAC:
    /// frames to the port are dropped.
    pub fn mac_change_blocked(&self) -> bool {
        self.role == PortRole::Guest
            && self.security.mac_changes == Policy::Reject
            && self.effective_mac.is_some()
            && self.effective_mac != self.initial_mac
    }
    /// Forwarding frames in and out.
    #[inline]
    pub fn is_up(&self) -> bool {
        self.admin_up && self.link_up && self.err_disabled.is_none()
    }
    /// Why frames cannot go in or out of the port, if they cannot.
    #[inline]
    pub fn down_reason(&self) -> Option<DropReason> {
        if !self.admin_up || !self.link_up {
            Some(DropReason::PortDown)
        } else if self.err_disabled.is_some() {
            Some(DropReason::ErrDisabled)
        } else {
            None
        }
    }
    /// 4 if frames of `vid` leave this port tagged, else 0.
    #[inline]
    pub(crate) fn egress_tag_len(&self, vid: Vid) -> u32 {
        if self.untagged_vid == Some(vid) { 0 } else { 4 }
    }
    /// The tag (TCI) frames of `vid` carry when they leave this port, if any.
    #[inline]
    pub fn egress_tci(&self, vid: Vid, pcp_dei: u8) -> Option<u16> {
        crate::egress::egress_tci(self.untagged_vid, vid, pcp_dei)
    }
}

/// Membership of one VLAN, derived from the ports.
#[derive(Clone, Debug, Default)]
pub(crate) struct VlanState {
    /// Guest ports of the VLAN that are up and not MAC-change blocked: flood targets.
    pub guests: PortSet,
    /// Of those, the ones with promiscuous = accept.
    pub promiscuous: PortSet,
    /// Guest ports of the VLAN blocked by mac_changes = reject (counted when skipped).
    pub blocked: PortSet,
    pub any_blocked: bool,
    /// Uplinks that carry the VLAN and are up, in port order.
    pub uplinks: Vec<PortId>,
    /// DHCP snooping is on in this VLAN (some port of it has it configured).
    pub dhcp_snooping: bool,
    /// Some port of the VLAN inserts option 82 (so server replies are stripped).
    pub option82_insert: bool,
    /// Ports of the VLAN (guests and uplinks) that are not trusted for DHCP.
    pub dhcp_untrusted: PortSet,
    /// DHCPv6 guard is on in this VLAN (some guest port of it has it configured).
    pub dhcpv6_guard: bool,
    /// Ports of the VLAN (guests and uplinks) that are not trusted for DHCPv6.
    pub dhcpv6_untrusted: PortSet,
    /// Per port (by index): the uplink it is pinned to in this VLAN, or NO_PIN.
    pub pin: Vec<u16>,
    /// Per port: the uplinks a per-frame policy (source-mac-hash, ip-hash) picks from.
    pub sets: Vec<Vec<PortId>>,
    /// Per entry of `uplinks`: the guests that accept broadcasts from that uplink.
    pub flood_from: Vec<PortSet>,
    /// The overlay port, when it carries the VLAN and is up.
    pub overlay: Option<PortId>,
}

/// A control-plane request the switch refuses.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ControlError {
    NoSuchPort,
    NotAGuestPort,
    InvalidMac,
    MacInUse(PortId),
    MacTableFull,
    BindingTableFull,
    /// A binding's address cannot be bound.
    InvalidBindingIp(BadBindingIp),
    /// A binding's port does not carry its VLAN.
    VlanNotCarried,
    /// Another binding holds the address (see `bindings::claim`).
    BindingHeld(BindingHolder),
    /// The address is bound by the configuration: neither the API nor a lease may
    /// replace or remove that binding.
    StaticBinding(BindingHolder),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::NoSuchPort => f.write_str("no such port"),
            ControlError::NotAGuestPort => f.write_str("not a guest port"),
            ControlError::InvalidMac => f.write_str("not a unicast MAC address"),
            ControlError::MacInUse(p) => write!(f, "the MAC is in use by port {}", p.0),
            ControlError::MacTableFull => f.write_str("the MAC table is full"),
            ControlError::BindingTableFull => f.write_str("the binding table is full"),
            ControlError::InvalidBindingIp(e) => write!(f, "{e}"),
            ControlError::VlanNotCarried => f.write_str("the port does not carry the VLAN"),
            ControlError::BindingHeld(h) => write!(
                f,
                "the address is bound to {} on port {} ({})",
                h.mac,
                h.port.0,
                h.source.name()
            ),
            ControlError::StaticBinding(h) => write!(
                f,
                "the address is a configured static binding of {} on port {}: change it in the configuration",
                h.mac, h.port.0
            ),
        }
    }
}
impl std::error::Error for ControlError {}

/// One logical switch.
#[derive(Clone, Debug)]
pub struct Switch {
    pub(crate) name: String,
    pub(crate) ports: Vec<Port>,
    pub(crate) counters: Vec<PortCounters>,
    /// VID → index into `vlans`, plus one (0: the switch carries no such VLAN).
    pub(crate) vlan_index: Box<[u16; 4096]>,
    pub(crate) vlans: Vec<VlanState>,
    pub(crate) macs: MacTable,
    pub(crate) events: EventRing,
    /// Next time error-disabled ports are checked for automatic recovery.
    next_recovery_check: Timestamp,
    /// The MAC ACLs, compiled, with their caches and hit counters.
    pub(crate) acls: Vec<BoundAcl>,
    /// Ports with an outbound ACL.
    pub(crate) acl_out_ports: PortSet,
    /// Whether any port has one (skips the per-frame set arithmetic when none does).
    pub(crate) any_acl_out: bool,
    /// DHCP snooping, static and API bindings.
    pub(crate) bindings: BindingTable,
    pub(crate) arp_acls: Vec<ArpAclSpec>,
    /// Addresses seen on guest ports, and the duplicate-IP hold-down.
    pub(crate) hosts: HostTable,
    next_binding_sweep: Timestamp,
    /// The latest time the runtime told the switch (stamps events of control-path
    /// changes).
    last_now: Timestamp,
    /// Rewrite buffers, option-82 ids and the frames the switch originates.
    pub(crate) egress: Egress,
    /// The VXLAN overlay, when the spec has one (`overlay.rs`).
    pub(crate) overlay: Option<crate::overlay::Overlay>,
}

impl Switch {
    /// Builds a switch from a checked spec; `now` stamps the configured MACs.
    pub fn new(spec: &SwitchSpec, now: Timestamp) -> Result<Switch, SpecError> {
        spec.check()?;
        let ports: Vec<Port> = spec
            .ports
            .iter()
            .enumerate()
            .map(|(i, p)| Port::from_spec(PortId(i as u16), p, now))
            .collect();
        let mut macs = MacTable::new(spec.mac_table_size, spec.mac_aging_secs);
        let guests = ports.iter().filter(|p| p.role == PortRole::Guest).count();
        macs.set_guest_reserve(guests);
        let mut sw = Switch {
            name: spec.name.clone(),
            counters: vec![PortCounters::default(); ports.len()],
            ports,
            vlan_index: Box::new([0; 4096]),
            vlans: Vec::new(),
            macs,
            events: EventRing::new(EVENT_RING_CAPACITY),
            next_recovery_check: now,
            acls: spec.mac_acls.iter().map(BoundAcl::new).collect(),
            acl_out_ports: PortSet::EMPTY,
            any_acl_out: false,
            bindings: BindingTable::new(spec.max_bindings),
            arp_acls: spec.arp_acls.clone(),
            hosts: HostTable::new(
                spec.host_table_size.min(crate::spec::MAX_HOST_TABLE_SIZE),
                spec.mac_aging_secs,
            ),
            next_binding_sweep: now,
            last_now: now,
            egress: Egress::new(
                &spec.name,
                spec.ports
                    .iter()
                    .map(|p| (p.name.as_str(), p.vlan.untagged_vid())),
            ),
            overlay: None,
        };
        if let Some(o) = &spec.overlay
            && let Some(i) = spec.ports.iter().position(|p| p.role == PortRole::Overlay)
        {
            sw.overlay = Some(crate::overlay::Overlay::new(o, PortId(i as u16)));
        }
        for (p, ps) in sw.ports.iter_mut().zip(&spec.ports) {
            p.dai = ps.features.arp_inspection.as_ref().map(|d| DaiPortState {
                spec: d.clone(),
                bucket: d.rate_limit_pps.map(|r| TokenBucket::new(r, now)),
                acl: d
                    .acl
                    .as_ref()
                    .and_then(|n| spec.arp_acls.iter().position(|a| &a.name == n))
                    .map(|i| i as u16),
            });
        }
        for sb in &spec.static_bindings {
            let b = Binding {
                mac: sb.mac,
                port: PortId(sb.port as u16),
                lease_end: None,
                source: BindingSource::Static,
                duid: None,
            };
            sw.bindings
                .upsert(sb.vid, sb.ip, b)
                .map_err(|_| SpecError::BadBinding {
                    reason: format!(
                        "more static bindings than max_bindings ({})",
                        spec.max_bindings
                    ),
                })?;
        }
        let acl_index = |name: &Option<String>| {
            name.as_ref()
                .and_then(|n| spec.mac_acls.iter().position(|a| &a.name == n))
                .map(|i| i as u16)
        };
        let uplink_id = |n: &str| {
            spec.ports
                .iter()
                .position(|q| q.role == PortRole::Uplink && q.name == n)
                .map(|i| PortId(i as u16))
        };
        for (p, ps) in sw.ports.iter_mut().zip(&spec.ports) {
            p.team = ps
                .features
                .teaming
                .as_ref()
                .map(|t| Team::resolve(t, uplink_id));
            p.acl_in = acl_index(&ps.features.mac_acl_in);
            p.acl_out = acl_index(&ps.features.mac_acl_out);
            if p.acl_out.is_some() {
                sw.acl_out_ports.insert(p.id);
                sw.any_acl_out = true;
            }
        }
        let too_small = |_| SpecError::MacTableTooSmall {
            needed: spec.ports.iter().map(|p| p.configured_macs().len()).sum(),
            size: spec.mac_table_size,
        };
        for (i, ps) in spec.ports.iter().enumerate() {
            let id = PortId(i as u16);
            // check() proved the MACs distinct and the table large enough.
            for vid in ps.vlan.iter_vids() {
                if let (PortRole::Guest, Some(mac)) = (ps.role, ps.initial_mac) {
                    sw.macs.insert_guest(vid, mac, id, now).map_err(too_small)?;
                }
                if let Some(sec) = &ps.features.port_security {
                    let secure = |k| MacKind::Secure(k);
                    for (macs, kind) in [
                        (&sec.static_macs, SecureKind::Static),
                        (&sec.sticky_macs, SecureKind::Sticky),
                    ] {
                        for mac in macs.iter().filter(|m| Some(**m) != ps.initial_mac) {
                            sw.macs
                                .insert_local(vid, *mac, id, secure(kind), now)
                                .map_err(too_small)?;
                        }
                    }
                }
            }
        }
        sw.rebuild_vlans();
        Ok(sw)
    }

    /// Recomputes the per-VLAN sets from the ports, and the teaming pins; reports
    /// every pin that moved. Control path only.
    pub(crate) fn rebuild_vlans(&mut self) {
        let old_index = std::mem::replace(&mut self.vlan_index, Box::new([0; 4096]));
        let old_vlans = std::mem::take(&mut self.vlans);
        let old_pin = |vid: Vid, p: PortId| -> Option<PortId> {
            let i = old_index[vid.get() as usize];
            let pin = *old_vlans
                .get((i as usize).checked_sub(1)?)?
                .pin
                .get(p.index())?;
            (pin != NO_PIN).then_some(PortId(pin))
        };
        let mut vids: Vec<Vid> = self.ports.iter().flat_map(|p| p.vlan.vids()).collect();
        vids.sort();
        vids.dedup();
        self.vlan_index.fill(0);
        self.vlans = vids.iter().map(|_| VlanState::default()).collect();
        for (i, vid) in vids.iter().enumerate() {
            self.vlan_index[vid.get() as usize] = i as u16 + 1;
        }
        for p in &self.ports {
            for vid in p.vlan.vids() {
                let v = &mut self.vlans[self.vlan_index[vid.get() as usize] as usize - 1];
                if p.role == PortRole::Guest && p.dhcp.is_some() {
                    v.dhcp_snooping = true;
                }
                // Uplinks too: an untrusted uplink has no server behind it that
                // snooping would let answer.
                if !p.dhcp.is_some_and(|d| d.spec.trusted) {
                    v.dhcp_untrusted.insert(p.id);
                }
                if p.role == PortRole::Guest && p.dhcpv6.is_some() {
                    v.dhcpv6_guard = true;
                }
                if !p.dhcpv6.is_some_and(|d| d.spec.trusted) {
                    v.dhcpv6_untrusted.insert(p.id);
                }
                if p.dhcp.is_some_and(|d| {
                    !d.spec.trusted && d.spec.option82 == crate::spec::Option82::Insert
                }) {
                    v.option82_insert = true;
                }
                match p.role {
                    PortRole::Uplink if p.is_up() => v.uplinks.push(p.id),
                    PortRole::Uplink => {}
                    PortRole::Overlay if p.is_up() => v.overlay = Some(p.id),
                    PortRole::Overlay => {}
                    PortRole::Guest if !p.is_up() => {}
                    PortRole::Guest if p.mac_change_blocked() => {
                        v.blocked.insert(p.id);
                        v.any_blocked = true;
                    }
                    PortRole::Guest => {
                        v.guests.insert(p.id);
                        if p.security.promiscuous == Policy::Accept {
                            v.promiscuous.insert(p.id);
                        }
                    }
                }
            }
        }
        let first_build = old_vlans.is_empty();
        let now = self.last_now;
        for (vi, vid) in vids.iter().enumerate() {
            let v = &mut self.vlans[vi];
            v.pin = vec![NO_PIN; self.ports.len()];
            v.sets = vec![Vec::new(); self.ports.len()];
            v.flood_from = vec![PortSet::EMPTY; v.uplinks.len()];
            for p in self
                .ports
                .iter()
                .filter(|p| p.role == PortRole::Guest && p.vlan.carries(*vid))
            {
                let team = p.team.as_ref();
                let cands = teaming::candidates(team, &v.uplinks);
                let old = old_pin(*vid, p.id);
                let failback = team.is_none_or(|t| t.failback);
                let pin = match old {
                    Some(o) if !failback && teaming::team_usable(team, &v.uplinks, o) => Some(o),
                    _ => teaming::preferred_pin(team, p.id, p.effective_mac, &cands),
                };
                if let Some(u) = pin {
                    v.pin[p.id.index()] = u.0;
                    if let Some(k) = v.uplinks.iter().position(|x| *x == u) {
                        v.flood_from[k].insert(p.id);
                    }
                }
                if teaming::accepts_all(team) {
                    for f in &mut v.flood_from {
                        f.insert(p.id);
                    }
                }
                if teaming::per_frame(team) {
                    v.sets[p.id.index()] = cands;
                }
                if !first_build
                    && pin != old
                    && let Some(to) = pin
                    && p.is_up()
                {
                    self.events.push(
                        now,
                        EventKind::UplinkMoved {
                            port: p.id,
                            vid: vid.get(),
                            from: old,
                            to,
                        },
                    );
                    if let (Some(mac), Some(uplink)) = (p.effective_mac, self.ports.get(to.index()))
                    {
                        // vSphere's "notify switches": a RARP from the guest's MAC
                        // on its new uplink, so the physical network relearns it.
                        let tci = uplink.egress_tci(*vid, 0);
                        self.egress.announce(TxCopy::to(to, tci), mac, p.id);
                    }
                }
            }
        }
    }

    #[inline]
    pub(crate) fn vlan(&self, vid: Vid) -> Option<&VlanState> {
        match self.vlan_index[vid.get() as usize] {
            0 => None,
            i => Some(&self.vlans[i as usize - 1]),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }
    pub fn port(&self, id: PortId) -> Option<&Port> {
        self.ports.get(id.index())
    }
    pub fn port_id(&self, name: &str) -> Option<PortId> {
        self.ports.iter().find(|p| p.name == name).map(|p| p.id)
    }
    pub fn counters(&self, id: PortId) -> Option<&PortCounters> {
        self.counters.get(id.index())
    }
    pub fn mac_table(&self) -> &MacTable {
        &self.macs
    }
    /// The MAC ACLs with their hit counters.
    pub fn mac_acls(&self) -> &[BoundAcl] {
        &self.acls
    }
    /// The names of the ACLs bound to a port (in, out).
    pub fn port_acls(&self, id: PortId) -> (Option<&str>, Option<&str>) {
        let name = |i: Option<u16>| {
            i.and_then(|i| self.acls.get(i as usize))
                .map(|a| a.spec.name.as_str())
        };
        self.ports
            .get(id.index())
            .map_or((None, None), |p| (name(p.acl_in), name(p.acl_out)))
    }
    /// Events queued since the last drain.
    pub fn drain_events(&mut self) -> impl Iterator<Item = crate::events::Event> + '_ {
        self.events.drain()
    }
    /// Hands every frame the switch originated since the last drain to `send`, in
    /// order, each with its port and tag (`egress.rs`), and empties the queue. No
    /// allocation.
    pub fn drain_emitted(&mut self, send: impl FnMut(crate::egress::Emitted<'_>)) {
        self.egress.drain(send);
    }
    /// The frames waiting to be drained, each with the port it speaks for.
    pub fn emitted(
        &self,
    ) -> impl Iterator<Item = (TxCopy, crate::egress::Originated, PortId)> + '_ {
        self.egress.queued()
    }
    /// Originated frames dropped because their queue was full.
    pub fn emit_dropped(&self) -> u64 {
        self.egress.emit_dropped
    }
    /// Forgets the events queued since the last drain and the frames queued with
    /// them (the RARP announcements of `UplinkMoved`): a switch being set up (its
    /// initial carrier, its bindings loaded) has nothing to report or announce.
    pub fn discard_events(&mut self) {
        let _ = self.events.drain().count();
        self.egress.retain_emitted(|_| false);
    }
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped
    }

    /// Housekeeping between batches, at most once a second: ages the MAC table
    /// (learned entries, and dynamic secure MACs by their port's rule) and recovers
    /// error-disabled ports whose recovery interval has passed. The IP-seen table's
    /// aged entries are removed on every call (O(removed)).
    pub fn tick(&mut self, now: Timestamp) {
        self.last_now = now;
        if self.macs.sweep_due(now) {
            let ports = &mut self.ports;
            let events = &mut self.events;
            self.macs.sweep(now, |vid, mac, e| {
                let Some(s) = ports[e.port.index()].secure.as_mut() else {
                    return false;
                };
                let aged = e.kind == MacKind::Secure(SecureKind::Dynamic)
                    && s.expired(e.learned_at, e.last_seen, now);
                if aged {
                    s.count = s.count.saturating_sub(1);
                    events.push(
                        now,
                        EventKind::SecureMacAged {
                            port: e.port,
                            vid: vid.get(),
                            mac,
                        },
                    );
                }
                aged
            });
        }
        if self.bindings_sweep_due(now) {
            let events = &mut self.events;
            self.bindings.sweep(now, |e| {
                events.push(
                    now,
                    crate::events::binding_removed(
                        e.vid,
                        e.ip,
                        e.binding.mac,
                        e.binding.port,
                        BindingRemoval::Expired,
                    ),
                );
            });
        }
        self.hosts.sweep(now);
        if now >= self.next_recovery_check {
            self.next_recovery_check = Timestamp(now.0 + 1_000_000_000);
            for i in 0..self.ports.len() {
                let p = &self.ports[i];
                if let (Some(ed), Some(after)) = (p.err_disabled, p.recovery_ns)
                    && now.saturating_since(ed.since) >= after
                {
                    self.recover_port(PortId(i as u16), now, true);
                }
            }
        }
    }

    fn bindings_sweep_due(&mut self, now: Timestamp) -> bool {
        if now >= self.next_binding_sweep {
            self.next_binding_sweep = Timestamp(now.0 + 1_000_000_000);
            return !self.bindings.is_empty();
        }
        false
    }

    /// Error-disables a port: nothing in or out until recovery; its dynamic secure
    /// MACs are forgotten.
    pub(crate) fn err_disable(&mut self, id: PortId, cause: ErrDisableCause, now: Timestamp) {
        let port = &mut self.ports[id.index()];
        if port.err_disabled.is_some() {
            return;
        }
        port.err_disabled = Some(ErrDisabled { cause, since: now });
        let removed = self
            .macs
            .remove_local_where(id, |e| e.kind == MacKind::Secure(SecureKind::Dynamic));
        if let Some(s) = self.ports[id.index()].secure.as_mut() {
            s.count = s.count.saturating_sub(removed as u16);
        }
        self.events
            .push(now, EventKind::ErrDisabled { port: id, cause });
        self.rebuild_vlans();
    }

    fn recover_port(&mut self, id: PortId, now: Timestamp, by_timer: bool) {
        let port = &mut self.ports[id.index()];
        if port.err_disabled.take().is_some() {
            port.storm = StormState::new(port.features.storm_control.as_ref(), now);
            self.events
                .push(now, EventKind::ErrDisableRecovered { port: id, by_timer });
            self.rebuild_vlans();
        }
    }

    /// Brings an error-disabled port back (`portcullis port recover`). Returns
    /// whether it was error-disabled.
    pub fn recover(&mut self, id: PortId, now: Timestamp) -> Result<bool, ControlError> {
        let was = self
            .ports
            .get(id.index())
            .ok_or(ControlError::NoSuchPort)?
            .err_disabled
            .is_some();
        self.recover_port(id, now, false);
        Ok(was)
    }

    /// Announces guest port `id`'s guest, which has just moved here from another
    /// host (a cluster claim), on the uplink it is pinned to in each of its VLANs:
    /// a RARP from its MAC (as after an uplink failover) so that the physical
    /// network learns where the MAC is now, then a gratuitous ARP of each IPv4
    /// address and an unsolicited NA of each IPv6 address bound to it in that VLAN
    /// (at most [`ANNOUNCED_ADDRESSES`] in all), so that neighbours' caches follow.
    /// Answers how many frames were queued (none for a port without a known MAC or
    /// without an uplink up). Runs on a command, not per frame: it may allocate.
    pub fn announce_guest(&mut self, id: PortId) -> usize {
        let Some(p) = self.ports.get(id.index()) else {
            return 0;
        };
        let Some(mac) = p.effective_mac else {
            return 0;
        };
        let mut copies: Vec<(Vid, TxCopy)> = Vec::new();
        for vid in p.vlan.iter_vids() {
            let Some(v) = self.vlan(vid) else { continue };
            let Some(&pin) = v.pin.get(id.index()) else {
                continue;
            };
            if pin == NO_PIN {
                continue;
            }
            let to = PortId(pin);
            if let Some(uplink) = self.ports.get(to.index()) {
                copies.push((vid, TxCopy::to(to, uplink.egress_tci(vid, 0))));
            }
        }
        let bound: Vec<BindingEntry> = if copies.is_empty() {
            Vec::new()
        } else {
            self.bindings
                .entries()
                .into_iter()
                .filter(|e| e.binding.port == id && e.binding.mac == mac)
                .take(ANNOUNCED_ADDRESSES)
                .collect()
        };
        let mut n = 0;
        for (vid, copy) in copies {
            self.egress.announce(copy, mac, id);
            n += 1;
            for e in bound.iter().filter(|e| e.vid == vid) {
                let frame = match e.ip {
                    IpAddr::V4(ip) => Originated::Garp(announce::Garp { mac, ip }),
                    IpAddr::V6(ip) => {
                        Originated::UnsolicitedNa(announce::UnsolicitedNa { mac, ip })
                    }
                };
                self.egress.announce_address(copy, frame, id);
                n += 1;
            }
        }
        n
    }

    /// Sets a port administratively up or down.
    pub fn set_admin_up(&mut self, id: PortId, up: bool) -> Result<(), ControlError> {
        self.ports
            .get_mut(id.index())
            .ok_or(ControlError::NoSuchPort)?
            .admin_up = up;
        self.rebuild_vlans();
        Ok(())
    }

    /// Records a port's link state (carrier, or its interface gone and back). A port
    /// whose link is down is left out of every flood, and unicast to it is dropped as
    /// `port_down`. A change is reported as an event.
    pub fn set_link_up(
        &mut self,
        id: PortId,
        up: bool,
        now: Timestamp,
    ) -> Result<(), ControlError> {
        self.last_now = self.last_now.max(now);
        let port = self
            .ports
            .get_mut(id.index())
            .ok_or(ControlError::NoSuchPort)?;
        if port.link_up != up {
            port.link_up = up;
            self.events
                .push(now, EventKind::LinkStateChanged { port: id, up });
            self.rebuild_vlans();
        }
        Ok(())
    }

    /// The hypervisor reports the guest's effective MAC (DESIGN.md §3, way (a)).
    /// Under mac_changes = reject a MAC other than the initial one blocks the port's
    /// receive side until the initial MAC is reported back.
    pub fn report_effective_mac(
        &mut self,
        id: PortId,
        mac: MacAddr,
        now: Timestamp,
    ) -> Result<(), ControlError> {
        let port = self.ports.get(id.index()).ok_or(ControlError::NoSuchPort)?;
        if port.role != PortRole::Guest {
            return Err(ControlError::NotAGuestPort);
        }
        if !mac.is_valid_source() {
            return Err(ControlError::InvalidMac);
        }
        self.change_effective_mac(id, mac, now, MacChangeSource::Report)
            .map_err(|e| match e {
                MacInsertError::Full => ControlError::MacTableFull,
                MacInsertError::OwnedBy(p) => ControlError::MacInUse(p),
            })?;
        self.rebuild_vlans();
        Ok(())
    }

    /// The interface behind guest port `id` was re-created (a VM or container
    /// restarted, perhaps with a new random MAC): a MAC the port learned from its
    /// first frame is forgotten, with its guest entries, so that the next first
    /// frame is learned afresh instead of being dropped as a forged transmit. A
    /// configured MAC stays. Returns the MAC forgotten, if any.
    pub fn forget_learned_mac(
        &mut self,
        id: PortId,
        now: Timestamp,
    ) -> Result<Option<MacAddr>, ControlError> {
        let port = self.ports.get(id.index()).ok_or(ControlError::NoSuchPort)?;
        if port.role != PortRole::Guest || port.configured_mac {
            return Ok(None);
        }
        let Some(mac) = port.effective_mac else {
            return Ok(None);
        };
        let initial = port.initial_mac;
        let mut removed = false;
        for vid in port.vlan.iter_vids() {
            removed |= self.macs.remove_local(vid, mac, id).is_some();
            if let Some(initial) = initial.filter(|m| *m != mac) {
                self.macs.remove_local(vid, initial, id);
            }
        }
        let port = &mut self.ports[id.index()];
        if let Some(sec) = port.secure.as_mut() {
            sec.count = sec.count.saturating_sub(u16::from(removed));
        }
        port.initial_mac = None;
        port.effective_mac = None;
        self.events
            .push(now, EventKind::LearnedMacForgotten { port: id, mac });
        self.rebuild_vlans();
        Ok(Some(mac))
    }

    /// Moves a guest port's MAC table entries from its effective MAC to `new`. On a
    /// conflict nothing changes. Does not rebuild the VLAN sets.
    pub(crate) fn change_effective_mac(
        &mut self,
        id: PortId,
        new: MacAddr,
        now: Timestamp,
        source: MacChangeSource,
    ) -> Result<(), MacInsertError> {
        let port = &self.ports[id.index()];
        let old = port.effective_mac;
        if old == Some(new) {
            return Ok(());
        }
        // No allocation: this runs on the packet path when a guest moves its MAC.
        let vids = port.vlan.iter_vids();
        // `new` may already be one of the port's local MACs (a secure MAC it learned,
        // or one carried over by an apply): taking it as the effective MAC turns that
        // entry into the guest entry, so it is not a new secure MAC.
        let already_local = vids.clone().any(|vid| {
            self.macs
                .lookup(vid, new, now)
                .is_some_and(|e| e.kind.is_local() && e.port == id)
        });
        for (i, vid) in vids.clone().enumerate() {
            if let Err(e) = self.macs.insert_guest(vid, new, id, now) {
                for undo in vids.take(i) {
                    self.macs.remove_local(undo, new, id);
                }
                let kind = match e {
                    MacInsertError::OwnedBy(owner) => EventKind::MacConflict {
                        port: id,
                        mac: new,
                        owner,
                    },
                    MacInsertError::Full => EventKind::MacTableFull { port: id, mac: new },
                };
                self.events.push(now, kind);
                return Err(e);
            }
        }
        let mut old_removed = false;
        for vid in vids {
            if let Some(old) = old {
                old_removed |= self.macs.remove_local(vid, old, id).is_some();
            }
        }
        let port = &mut self.ports[id.index()];
        port.effective_mac = Some(new);
        // Port security counts the port's local MACs: `new` joins them unless it was
        // one already, and the old effective MAC leaves them.
        if let Some(sec) = port.secure.as_mut() {
            sec.count = sec
                .count
                .saturating_add(u16::from(!already_local))
                .saturating_sub(u16::from(old_removed));
        }
        match old {
            None => {
                port.initial_mac = Some(new);
                self.events
                    .push(now, EventKind::InitialMacLearned { port: id, mac: new });
            }
            Some(old) => {
                let blocked = port.mac_change_blocked();
                self.events.push(
                    now,
                    EventKind::EffectiveMacChanged {
                        port: id,
                        old,
                        new,
                        source,
                        blocked,
                    },
                );
            }
        }
        Ok(())
    }

    /// The IP-seen table (addresses seen on guest ports) and its counters.
    pub fn hosts(&self) -> &HostTable {
        &self.hosts
    }

    /// The bindings (DHCP snooping, static, API), sorted. Allocates: control path.
    pub fn bindings(&self) -> Vec<BindingEntry> {
        self.bindings.entries()
    }
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }
    pub fn binding_capacity(&self) -> usize {
        self.bindings.capacity()
    }

    /// Zeroes every port's counters.
    pub fn clear_counters(&mut self) {
        for c in &mut self.counters {
            *c = PortCounters::default();
        }
        for a in &mut self.acls {
            a.hits.fill(0);
        }
    }
}

impl Port {
    fn from_spec(id: PortId, s: &PortSpec, now: Timestamp) -> Port {
        let untagged_vid = s.vlan.untagged_vid();
        let f = &s.features;
        Port {
            id,
            name: s.name.clone(),
            role: s.role,
            vlan: s.vlan.clone(),
            security: s.security,
            initial_mac: s.initial_mac,
            effective_mac: s.initial_mac,
            configured_mac: s.initial_mac.is_some(),
            admin_up: true,
            link_up: true,
            err_disabled: None,
            secure: f
                .port_security
                .as_ref()
                .map(|ps| SecureState::new(ps, s.configured_macs().len())),
            storm: StormState::new(f.storm_control.as_ref(), now),
            recovery_ns: f
                .errdisable_recovery_secs
                .map(|s| s.saturating_mul(1_000_000_000)),
            features: f.clone(),
            acl_in: None,
            acl_out: None,
            team: None,
            dhcp: f.dhcp_snooping.map(|d| DhcpPortState::new(d, now)),
            dai: None,
            ipsg: f.ip_source_guard,
            ra_guard: f.ra_guard,
            nd: f.nd_inspection.map(|n| NdPortState::new(n, now)),
            ipv6sg: f.ipv6_source_guard,
            dhcpv6: f.dhcpv6_guard.map(|d| Dhcpv6PortState::new(d, now)),
            untagged_vid,
        }
    }
}

impl Switch {
    /// The uplink a guest port's traffic in its (first) VLAN leaves by now, if any
    /// (esxtop's TEAM-PNIC).
    pub fn uplink_of(&self, id: PortId) -> Option<PortId> {
        let p = self.ports.get(id.index())?;
        if p.role != PortRole::Guest {
            return None;
        }
        let vid = *p.vlan.vids().first()?;
        let pin = *self.vlan(vid)?.pin.get(id.index())?;
        (pin != NO_PIN).then_some(PortId(pin))
    }
}
