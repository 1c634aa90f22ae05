//! NIC teaming (vSphere teaming policies, DESIGN.md §4): which uplink a guest's
//! traffic leaves by, and on which uplink the switch accepts broadcasts for it.
//!
//! - originating-port: each guest port is pinned to one uplink, port id modulo the
//!   usable uplinks; explicit-failover: the first usable uplink in `active` order,
//!   else in `standby` order; source-mac-hash: by the frame's source MAC (pinned by
//!   the port's effective MAC for broadcasts); ip-hash: by source and destination IP
//!   (other frames by source MAC), broadcasts accepted on every uplink (it needs a
//!   static EtherChannel upstream).
//! - "Usable" means up and carrying the VLAN; standby uplinks are used only while no
//!   active one is. With failback off a port stays on the uplink it moved to while
//!   that uplink is up.
//!
//! Invariants: a frame from a guest leaves by exactly one uplink, one that is up and
//! carries its VLAN; from the physical network a guest accepts a broadcast only on
//! the uplink it is pinned to (so it never receives its own broadcast back, and never
//! twice); pins are recomputed on the control path only (`Switch::rebuild_vlans`).

use crate::frame::FrameView;
use crate::spec::{TeamingPolicy, TeamingSpec};
use crate::types::{MacAddr, PortId, Vid};
use std::hash::{BuildHasher, Hash};

/// A resolved teaming: uplinks by port id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Team {
    pub policy: TeamingPolicy,
    pub active: Vec<PortId>,
    pub standby: Vec<PortId>,
    pub failback: bool,
}

impl Team {
    /// Resolves uplink names against the switch's ports (checked by the spec).
    pub(crate) fn resolve(spec: &TeamingSpec, uplink_id: impl Fn(&str) -> Option<PortId>) -> Team {
        Team {
            policy: spec.policy,
            active: spec.active.iter().filter_map(|n| uplink_id(n)).collect(),
            standby: spec.standby.iter().filter_map(|n| uplink_id(n)).collect(),
            failback: spec.failback,
        }
    }
}

/// No pin.
pub(crate) const NO_PIN: u16 = u16::MAX;

/// Uplinks a port may use in a VLAN, in preference order: active ones that are
/// usable, else standby ones that are (`usable` = the VLAN's up uplinks).
pub(crate) fn candidates(team: Option<&Team>, usable: &[PortId]) -> Vec<PortId> {
    let Some(t) = team else {
        return usable.to_vec();
    };
    let pick = |list: &[PortId]| -> Vec<PortId> {
        list.iter()
            .copied()
            .filter(|u| usable.contains(u))
            .collect()
    };
    let active = pick(&t.active);
    if active.is_empty() {
        pick(&t.standby)
    } else {
        active
    }
}

/// Every uplink of the team that is usable (for failback off: may the port stay?).
pub(crate) fn team_usable(team: Option<&Team>, usable: &[PortId], u: PortId) -> bool {
    usable.contains(&u) && team.is_none_or(|t| t.active.contains(&u) || t.standby.contains(&u))
}

fn hash_of(v: impl Hash) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(v)
}

fn pick(set: &[PortId], h: u64) -> Option<PortId> {
    (!set.is_empty()).then(|| set[(h % set.len() as u64) as usize])
}

/// The uplink a port is pinned to in a VLAN (for broadcasts from the network, and
/// the per-port policies' output), before failback is taken into account.
/// `team`, `port` and `mac` are the port's team, id and effective MAC.
pub(crate) fn preferred_pin(
    team: Option<&Team>,
    port: PortId,
    mac: Option<MacAddr>,
    cands: &[PortId],
) -> Option<PortId> {
    let policy = team.map_or(TeamingPolicy::OriginatingPort, |t| t.policy);
    match policy {
        TeamingPolicy::OriginatingPort => pick(cands, port.0 as u64),
        TeamingPolicy::ExplicitFailover => cands.first().copied(),
        TeamingPolicy::SourceMacHash => mac.and_then(|m| pick(cands, hash_of(m.to_u64()))),
        TeamingPolicy::IpHash => None,
    }
}

/// Whether the policy of a port's `team` decides per frame (the candidate set is
/// kept).
pub(crate) fn per_frame(team: Option<&Team>) -> bool {
    matches!(
        team.map(|t| t.policy),
        Some(TeamingPolicy::SourceMacHash | TeamingPolicy::IpHash)
    )
}

/// Whether a port with `team` accepts broadcasts from every uplink (ip-hash).
pub(crate) fn accepts_all(team: Option<&Team>) -> bool {
    team.is_some_and(|t| t.policy == TeamingPolicy::IpHash)
}

/// The uplink of one frame under a per-frame policy.
#[inline]
pub(crate) fn per_frame_uplink(
    policy: TeamingPolicy,
    set: &[PortId],
    view: &FrameView,
    l3: &[u8],
) -> Option<PortId> {
    let by_mac = |m: MacAddr| pick(set, hash_of(m.to_u64()));
    match policy {
        TeamingPolicy::IpHash => {
            let ips = match view.ethertype {
                0x0800 => l3.get(12..20),
                0x86dd => l3.get(8..40),
                _ => None,
            };
            match ips {
                Some(b) => pick(set, hash_of(b)),
                None => by_mac(view.src),
            }
        }
        _ => by_mac(view.src),
    }
}

/// A pin moved (failover, failback, or an uplink returning): the switch announces
/// the port's MAC on the new uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinMove {
    pub port: PortId,
    pub vid: Vid,
    pub from: Option<PortId>,
    pub to: PortId,
}
