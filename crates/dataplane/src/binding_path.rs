//! The binding path of the switch: how a binding enters the index (checked, the
//! `bindings::claim` rule applied, a duplicate IP reported by
//! `stages/ip_conflict.rs`, an event pushed), how one leaves it, and how a held
//! DHCPACK is released. Control-path methods of [`Switch`], apart from `switch.rs`
//! so that the switch's state does not depend on the stages that read it.
//!
//! Invariant: every binding the index gains or loses is reported by exactly one
//! event (`BindingAdded`, `BindingRemoved`, or `BindingRefused` for one it would
//! not take), and no binding is installed that [`Switch::check_binding`] refuses or
//! whose address another binding holds (unless replaced explicitly, never over a
//! static one).

use crate::bindings::{
    Binding, BindingClaim, BindingHolder, BindingSource, BindingUpdate, NewBinding,
};
use crate::events::{BindingRemoval, EventKind};
use crate::switch::{ControlError, Switch};
use crate::types::{PortId, Timestamp, Vid};
use crate::verdict::{DropReason, Forward};

impl Switch {
    /// Checks what a binding must be whatever its source, as the configuration
    /// checks static ones: a known port that carries the VLAN, a unicast MAC, a
    /// unicast host address.
    pub fn check_binding(&self, b: &NewBinding) -> Result<(), ControlError> {
        let port = self
            .ports
            .get(b.port.index())
            .ok_or(ControlError::NoSuchPort)?;
        if !b.mac.is_valid_source() {
            return Err(ControlError::InvalidMac);
        }
        crate::bindings::check_binding_ip(b.ip).map_err(ControlError::InvalidBindingIp)?;
        if !port.vlan.carries(b.vid) {
            return Err(ControlError::VlanNotCarried);
        }
        Ok(())
    }

    /// Who holds the address `b` claims, if that is a conflict (the rule:
    /// `bindings::claim`). `None` also when the same client is already bound there by
    /// configuration or the API (`BindingClaim::Covered`).
    pub fn binding_conflict(&self, b: &NewBinding, now: Timestamp) -> Option<BindingHolder> {
        match self
            .bindings
            .claim(b.vid, b.ip, b.mac, b.port, b.source, now)
        {
            BindingClaim::Held(h) => Some(h),
            BindingClaim::Free | BindingClaim::Covered => None,
        }
    }

    /// Puts a committed binding into the index (and reports it, and a duplicate IP
    /// if another MAC held the address: `stages/ip_conflict.rs`). Refuses a binding
    /// [`Switch::check_binding`] refuses and one that conflicts with the address's
    /// holder; a learned binding the same client already has by configuration or the
    /// API changes nothing.
    pub fn install_binding(&mut self, b: NewBinding, now: Timestamp) -> Result<(), ControlError> {
        match self.checked_claim(&b, now)? {
            BindingClaim::Held(h) => Err(ControlError::BindingHeld(h)),
            BindingClaim::Covered => Ok(()),
            BindingClaim::Free => self.put_binding(b, now),
        }
    }

    /// Installs `b` even over another holder (the API's explicit `replace`), never
    /// over a static binding; returns the holder it replaced, if another held it.
    pub fn replace_binding(
        &mut self,
        b: NewBinding,
        now: Timestamp,
    ) -> Result<Option<BindingHolder>, ControlError> {
        match self.checked_claim(&b, now)? {
            BindingClaim::Held(h) => self.put_binding(b, now).map(|_| Some(h)),
            BindingClaim::Covered => Ok(None),
            BindingClaim::Free => self.put_binding(b, now).map(|_| None),
        }
    }

    /// `b` checked ([`Switch::check_binding`]) and what it would find at its
    /// address ([`crate::bindings::claim`]); a static holder refuses it whatever the
    /// caller (neither a lease nor the API replaces a configured binding).
    fn checked_claim(&self, b: &NewBinding, now: Timestamp) -> Result<BindingClaim, ControlError> {
        self.check_binding(b)?;
        match self
            .bindings
            .claim(b.vid, b.ip, b.mac, b.port, b.source, now)
        {
            BindingClaim::Held(h) if h.source == BindingSource::Static => {
                Err(ControlError::StaticBinding(h))
            }
            claim => Ok(claim),
        }
    }

    fn put_binding(&mut self, b: NewBinding, now: Timestamp) -> Result<(), ControlError> {
        let lease_end = b
            .lease_secs
            .map(|s| Timestamp(now.0.saturating_add(u64::from(s) * 1_000_000_000)));
        let binding = Binding {
            mac: b.mac,
            port: b.port,
            lease_end,
            source: b.source,
            duid: b.duid,
        };
        let replaced = self
            .bindings
            .upsert(b.vid, b.ip, binding)
            .map_err(|_| ControlError::BindingTableFull)?;
        crate::stages::ip_conflict::binding_claim(self, b.vid, b.ip, b.mac, b.port, replaced, now);
        self.events.push(
            now,
            EventKind::BindingAdded {
                vid: b.vid.get(),
                ip: b.ip,
                mac: b.mac,
                port: b.port,
                source: b.source,
                lease_secs: b.lease_secs,
            },
        );
        Ok(())
    }

    /// The binding of `ip` in `vid`, if any.
    pub fn binding(&self, vid: Vid, ip: std::net::IpAddr) -> Option<Binding> {
        self.bindings.lookup(vid, ip).copied()
    }

    /// Removes a binding (and reports it); returns whether one was removed. Only
    /// the binding's own kind of authority removes it: a RELEASE, DECLINE, NAK or
    /// expiry removes learned (DHCP) bindings only; the API removes API and learned
    /// ones; a static binding leaves only with the configuration that made it.
    pub fn remove_binding(
        &mut self,
        vid: Vid,
        ip: std::net::IpAddr,
        why: BindingRemoval,
        now: Timestamp,
    ) -> bool {
        let removable = |b: &Binding| match why {
            BindingRemoval::Api => b.source != BindingSource::Static,
            BindingRemoval::Release
            | BindingRemoval::Decline
            | BindingRemoval::Nak
            | BindingRemoval::Expired => b.source.is_learned(),
            BindingRemoval::Defended => b.source == BindingSource::Nd,
        };
        if !self.bindings.lookup(vid, ip).is_some_and(removable) {
            return false;
        }
        match self.bindings.remove(vid, ip) {
            Some(b) => {
                // The host gave the address up (or was refused it): it no longer
                // counts as seen with it.
                if matches!(
                    why,
                    BindingRemoval::Release | BindingRemoval::Decline | BindingRemoval::Nak
                ) {
                    self.hosts.forget(vid, ip, b.mac);
                }
                self.events.push(
                    now,
                    crate::events::binding_removed(vid, ip, b.mac, b.port, why),
                );
                true
            }
            None => false,
        }
    }

    /// A held DHCPACK's binding was committed (`committed`) or could not be: installs
    /// the binding and counts the frame as sent to `fwd.out`, or counts it dropped
    /// on `ingress` — `binding_store_failed` (fail closed), `binding_table_full`, or
    /// `dhcp_binding_conflict` when another binding took the address while the ACK
    /// was held (an API binding, say: the rule is checked again here, with an
    /// event). `frame_len` is the received length. Returns whether the runtime
    /// should send the frame.
    pub fn release_held(
        &mut self,
        ingress: PortId,
        fwd: &Forward,
        binding: &BindingUpdate,
        frame_len: usize,
        committed: bool,
        now: Timestamp,
    ) -> bool {
        let new = binding.as_new();
        let nd = new.source == BindingSource::Nd;
        let refused = if !committed {
            Some(DropReason::BindingStoreFailed)
        } else if nd && self.nd_over_cap(&new, now) {
            // Several claims of one port were held at once: the cap holds at
            // installation too.
            Some(DropReason::NdMaxAddresses)
        } else {
            match self.install_binding(new, now) {
                Ok(()) => None,
                Err(ControlError::BindingHeld(h) | ControlError::StaticBinding(h)) => {
                    self.binding_refused(&new, h, now);
                    Some(if nd {
                        DropReason::NdAddressOwned
                    } else if new.source == BindingSource::Dhcpv6 {
                        DropReason::Dhcpv6BindingConflict
                    } else {
                        DropReason::DhcpBindingConflict
                    })
                }
                Err(ControlError::BindingTableFull) => Some(DropReason::BindingTableFull),
                // An address or client no binding can hold (the hold decision
                // refuses these before they are held).
                Err(_) if nd => Some(DropReason::NdMalformed),
                Err(_) => Some(DropReason::DhcpMalformed),
            }
        };
        if refused.is_none() {
            // The ACK is a sighting of the client with its address.
            self.hosts.saw(new.vid, new.ip, new.mac, new.port, now);
        }
        let Some(c) = self.counters.get_mut(ingress.index()) else {
            return false;
        };
        if let Some(reason) = refused {
            c.rx_drop(reason);
            return false;
        }
        let body = frame_len.saturating_sub(fwd.body_offset as usize) as u64 + 12;
        for out in fwd.out.iter() {
            let tag = self.ports[out.index()].egress_tag_len(fwd.vid) as u64;
            let c = &mut self.counters[out.index()];
            c.tx_frames += 1;
            c.tx_bytes += body + tag;
        }
        true
    }

    /// Whether installing the Nd binding `b` would take its port past its
    /// `max_addresses` (a binding it already holds there is not a new one).
    fn nd_over_cap(&self, b: &NewBinding, now: Timestamp) -> bool {
        let Some(nd) = self.ports.get(b.port.index()).and_then(|p| p.nd) else {
            return false;
        };
        let new = !matches!(
            self.bindings
                .claim(b.vid, b.ip, b.mac, b.port, b.source, now),
            BindingClaim::Covered
        );
        new && self.bindings.nd_count(b.port) >= u32::from(nd.spec.max_addresses)
    }

    /// Reports a learned binding refused because `holder` holds its address.
    pub(crate) fn binding_refused(
        &mut self,
        b: &NewBinding,
        holder: BindingHolder,
        now: Timestamp,
    ) {
        self.events.push(
            now,
            EventKind::BindingRefused {
                vid: b.vid.get(),
                ip: b.ip,
                port: b.port,
                mac: b.mac,
                owner: holder.port,
                owner_mac: holder.mac,
                owner_source: holder.source,
            },
        );
    }
}
