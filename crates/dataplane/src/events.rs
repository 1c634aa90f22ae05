//! Events the data plane reports to the control plane (MAC learned or changed,
//! conflicts), queued in a bounded ring the runtime drains between batches.
//!
//! Invariant: pushing never allocates and never blocks; when the ring is full the
//! event is dropped and counted in `dropped`.

use crate::types::{MacAddr, PortId, Timestamp};
use serde::Serialize;
use std::collections::VecDeque;

use crate::errdisable::ErrDisableCause;
use crate::spec::Violation;

/// What kind of port-security violation.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// A new MAC beyond the port's maximum.
    TooMany,
    /// A MAC local to another port of the VLAN.
    MacMove,
}

/// Why a binding was removed.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingRemoval {
    Release,
    Decline,
    Nak,
    Expired,
    /// By the API (an operator or the hypervisor).
    Api,
    /// ND inspection: the address's owner behind a trusted port (a router, an
    /// uplink) used or defended it — an NA for it, or an ND message from it — so
    /// the untrusted port's Nd binding of it goes (`stages/nd_inspection.rs`).
    Defended,
}

/// How the switch knows who claims an address, on either side of an
/// [`EventKind::IpConflict`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpClaimSource {
    /// A binding: DHCP snooping (the ACK), a static or an API binding.
    Binding,
    /// The sender fields of an ARP request or reply (gratuitous ARP included).
    Arp,
}

/// Who changed a port's effective MAC.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MacChangeSource {
    /// The guest sent from a new source MAC under `mac_changes = accept`.
    Guest,
    /// The hypervisor (or an operator) reported it through the API.
    Report,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A port without a configured MAC learned its initial MAC from its first frame.
    InitialMacLearned { port: PortId, mac: MacAddr },
    /// The interface behind a port without a configured MAC was re-created (a VM
    /// or container restarted): the MAC it had learned is forgotten, and the next
    /// first frame is learned again.
    LearnedMacForgotten { port: PortId, mac: MacAddr },
    /// A port's effective MAC changed.
    EffectiveMacChanged {
        port: PortId,
        old: MacAddr,
        new: MacAddr,
        source: MacChangeSource,
        blocked: bool,
    },
    /// A port tried to take a MAC another port holds.
    MacConflict {
        port: PortId,
        mac: MacAddr,
        owner: PortId,
    },
    /// The MAC table could not hold a guest's MAC.
    MacTableFull { port: PortId, mac: MacAddr },
    /// A port's link went down (or its interface disappeared) or came back.
    LinkStateChanged { port: PortId, up: bool },
    /// Port security learned a secure MAC.
    SecureMacLearned {
        port: PortId,
        vid: u16,
        mac: MacAddr,
        sticky: bool,
    },
    /// A dynamic secure MAC aged out.
    SecureMacAged {
        port: PortId,
        vid: u16,
        mac: MacAddr,
    },
    /// A port-security violation (restrict and shutdown report them).
    PortSecurityViolation {
        port: PortId,
        vid: u16,
        mac: MacAddr,
        kind: ViolationKind,
        action: Violation,
    },
    /// The port was error-disabled: nothing in or out until it recovers.
    ErrDisabled {
        port: PortId,
        cause: ErrDisableCause,
    },
    /// An error-disabled port recovered (by command or after its interval).
    ErrDisableRecovered { port: PortId, by_timer: bool },
    /// A binding entered the index (after it was committed, for DHCP).
    BindingAdded {
        vid: u16,
        ip: std::net::IpAddr,
        mac: MacAddr,
        port: PortId,
        source: crate::bindings::BindingSource,
        lease_secs: Option<u32>,
    },
    /// ND inspection moved an Nd binding's lease end: its owner is using it
    /// (`stages/nd_inspection.rs`, at most once per half lifetime). The runtime
    /// writes the binding's record again; nothing waits for it.
    BindingRefreshed {
        vid: u16,
        ip: std::net::IpAddr,
        mac: MacAddr,
        port: PortId,
        lease_secs: u32,
    },
    /// A guest's traffic in a VLAN moved to another uplink (failover, failback, an
    /// uplink returning); the switch announces its MAC there (RARP, `Switch::drain_emitted`).
    UplinkMoved {
        port: PortId,
        vid: u16,
        from: Option<PortId>,
        to: PortId,
    },
    /// A binding left the index.
    BindingRemoved {
        vid: u16,
        ip: std::net::IpAddr,
        mac: MacAddr,
        port: PortId,
        why: BindingRemoval,
    },
    /// Duplicate IP address: `mac` on `port` claims `ip` in VLAN `vid`, which is
    /// bound to, or was recently seen from, `owner_mac` on `owner` (the "ghost
    /// adapter" conflict). Detection only: no frame is dropped for it. At most one
    /// per (VLAN, IP) per [`crate::hosts::IP_CONFLICT_HOLD_DOWN_SECS`].
    IpConflict {
        vid: u16,
        ip: std::net::IpAddr,
        /// The claimant.
        port: PortId,
        mac: MacAddr,
        /// How the claim was made.
        claim: IpClaimSource,
        /// The holder the switch knew of.
        owner: PortId,
        owner_mac: MacAddr,
        /// How the switch knew the holder.
        owner_by: IpClaimSource,
    },
    /// DHCP snooping refused a DHCPACK: its address is held by another binding
    /// (static, API, or a live lease of another MAC). The ACK is dropped
    /// (`dhcp_binding_conflict`) and the holder's binding stays.
    BindingRefused {
        vid: u16,
        ip: std::net::IpAddr,
        /// The client the ACK was for.
        port: PortId,
        mac: MacAddr,
        /// The holder.
        owner: PortId,
        owner_mac: MacAddr,
        owner_source: crate::bindings::BindingSource,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize)]
pub struct Event {
    /// Data-plane time, nanoseconds.
    pub at_ns: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// Reports a removed binding (the runtime makes the removal durable).
pub(crate) fn binding_removed(
    vid: crate::types::Vid,
    ip: std::net::IpAddr,
    mac: MacAddr,
    port: PortId,
    why: BindingRemoval,
) -> EventKind {
    EventKind::BindingRemoved {
        vid: vid.get(),
        ip,
        mac,
        port,
        why,
    }
}

/// Capacity of the event ring between two drains.
pub const EVENT_RING_CAPACITY: usize = 4096;

/// A bounded FIFO of events.
#[derive(Clone, Debug)]
pub struct EventRing {
    q: VecDeque<Event>,
    cap: usize,
    pub dropped: u64,
}

impl EventRing {
    pub fn new(cap: usize) -> EventRing {
        EventRing {
            q: VecDeque::with_capacity(cap),
            cap,
            dropped: 0,
        }
    }
    #[inline]
    pub fn push(&mut self, now: Timestamp, kind: EventKind) {
        if self.q.len() < self.cap {
            self.q.push_back(Event { at_ns: now.0, kind });
        } else {
            self.dropped += 1;
        }
    }
    pub fn drain(&mut self) -> impl Iterator<Item = Event> + '_ {
        self.q.drain(..)
    }
    pub fn len(&self) -> usize {
        self.q.len()
    }
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}
