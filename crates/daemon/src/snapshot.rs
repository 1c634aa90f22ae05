//! Read-only views of the running switch, built by the data-plane thread on request
//! and served by the API as JSON. These types are the API's response schema.

use crate::runtime::RuntimeCounters;
use portcullis_dataplane::{DropReason, Instant, PortCounters, PortRole, Switch, VlanMode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// I/O counters of one port, kept by the runtime.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IoStats {
    pub rx_frames: u64,
    pub rx_errors: u64,
    pub tx_ring_full: u64,
    pub tx_too_big: u64,
    pub tx_errors: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortView {
    pub id: u16,
    pub name: String,
    pub role: String,
    pub interface: String,
    pub port_group: String,
    /// "access 10" or "trunk 10,20 native 1".
    pub vlan: String,
    /// "up", "down" (admin), "link-down", "err-disabled".
    pub state: String,
    /// Why the port is error-disabled (port_security, storm_control), if it is.
    pub err_disabled: Option<String>,
    pub initial_mac: Option<String>,
    pub effective_mac: Option<String>,
    /// mac_changes = reject and effective ≠ initial.
    pub mac_change_blocked: bool,
    pub security: BTreeMap<String, String>,
    /// The uplink this port's traffic leaves by (esxtop's TEAM-PNIC).
    pub uplink: Option<String>,
    pub counters: CountersView,
    pub io: IoStats,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct CountersView {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    /// Non-zero ingress drops by reason name.
    pub rx_drops: BTreeMap<String, u64>,
    /// Non-zero egress drops by reason name.
    pub tx_drops: BTreeMap<String, u64>,
}

impl From<&PortCounters> for CountersView {
    fn from(c: &PortCounters) -> Self {
        let by_reason = |d: &[u64; DropReason::COUNT]| {
            DropReason::ALL
                .iter()
                .filter(|r| d[**r as usize] != 0)
                .map(|r| (r.name().to_string(), d[*r as usize]))
                .collect()
        };
        CountersView {
            rx_frames: c.rx_frames,
            rx_bytes: c.rx_bytes,
            tx_frames: c.tx_frames,
            tx_bytes: c.tx_bytes,
            rx_dropped: c.rx_dropped(),
            tx_dropped: c.tx_dropped(),
            rx_drops: by_reason(&c.rx_drops),
            tx_drops: by_reason(&c.tx_drops),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MacView {
    pub vlan: u16,
    pub mac: String,
    pub port: String,
    /// "guest" (a port's effective MAC), "static", "sticky", "dynamic" (secure
    /// MACs), or "learned" (seen on an uplink; ages).
    pub kind: String,
    /// Seconds since last seen (learned entries).
    pub age_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MacTableView {
    pub capacity: usize,
    pub entries: Vec<MacView>,
    pub learn_refused: u64,
    pub aged_out: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Snapshot {
    pub switch: String,
    pub uptime_secs: u64,
    pub ports: Vec<PortView>,
    pub mac_table: MacTableView,
    /// Drops over all ports and both directions, by reason (non-zero only).
    pub drops: BTreeMap<String, u64>,
    pub events_lost: u64,
    pub batches: u64,
    pub port_security: Vec<PortSecurityView>,
    pub mac_acls: Vec<MacAclView>,
    pub uplinks: Vec<UplinkView>,
}

/// One uplink (`show uplinks`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UplinkView {
    pub name: String,
    pub interface: String,
    /// "up", "down", "link-down".
    pub state: String,
    pub vlan: String,
    /// Guest ports whose traffic leaves by this uplink now (TEAM-PNIC).
    pub guests: Vec<String>,
    pub rx_frames: u64,
    pub tx_frames: u64,
}

/// One MAC ACL with its hit counters (`show mac-acl`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MacAclView {
    pub name: String,
    pub rules: Vec<AclRuleView>,
    /// Frames no rule matched (denied).
    pub implicit_deny_hits: u64,
    pub bound_in: Vec<String>,
    pub bound_out: Vec<String>,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AclRuleView {
    /// 1-based, as in the configuration.
    pub seq: usize,
    /// e.g. "deny ethertype 0x86dd", "permit src 52:54:00:00:00:00/ff:ff:ff:00:00:00".
    pub rule: String,
    pub hits: u64,
}

/// A rule in words, fields in configuration order.
pub fn rule_text(r: &portcullis_dataplane::MacAclRule) -> String {
    let mut s = format!("{:?}", r.action).to_lowercase();
    let mac = |m: &portcullis_dataplane::MacMatch| {
        if m.mask == portcullis_dataplane::MacAddr([0xff; 6]) {
            m.mac.to_string()
        } else {
            format!("{}/{}", m.mac, m.mask)
        }
    };
    if let Some(m) = &r.src {
        s.push_str(&format!(" src {}", mac(m)));
    }
    if let Some(m) = &r.dst {
        s.push_str(&format!(" dst {}", mac(m)));
    }
    if let Some(e) = r.ethertype {
        s.push_str(&format!(" ethertype 0x{e:04x}"));
    }
    if let Some(v) = r.vlan {
        s.push_str(&format!(" vlan {v}"));
    }
    if let Some(c) = r.cos {
        s.push_str(&format!(" cos {c}"));
    }
    if r.src.is_none()
        && r.dst.is_none()
        && r.ethertype.is_none()
        && r.vlan.is_none()
        && r.cos.is_none()
    {
        s.push_str(" any");
    }
    s
}

/// Port security of one port (`show port-security`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortSecurityView {
    pub port: String,
    pub max_macs: u16,
    /// Secure MACs in use, the effective MAC included.
    pub count: u16,
    pub violation: String,
    pub sticky: bool,
    pub aging: String,
    pub aging_secs: u64,
    pub violations: u64,
    /// "MAC in VLAN N" of the last violation.
    pub last_violation: Option<String>,
    pub err_disabled: Option<String>,
    pub secure_macs: Vec<MacView>,
}

fn vlan_text(m: &VlanMode) -> String {
    match m {
        VlanMode::Access(v) => format!("access {v}"),
        VlanMode::Trunk { allowed, native } => {
            let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
            let mut s = format!(
                "trunk {}",
                if list.is_empty() {
                    "-".into()
                } else {
                    list.join(",")
                }
            );
            if let Some(n) = native {
                s.push_str(&format!(" native {n}"));
            }
            s
        }
    }
}

impl Snapshot {
    pub fn build(
        sw: &Switch,
        interfaces: &[String],
        groups: &[String],
        rt: &RuntimeCounters,
        now: Instant,
    ) -> Snapshot {
        let name_of = |id: portcullis_dataplane::PortId| {
            sw.port(id).map(|p| p.name.clone()).unwrap_or_default()
        };
        let mut drops: BTreeMap<String, u64> = BTreeMap::new();
        let ports = sw
            .ports()
            .iter()
            .map(|p| {
                let c = sw.counters(p.id).expect("every port has counters");
                for r in DropReason::ALL {
                    let n = c.drops(*r);
                    if n != 0 {
                        *drops.entry(r.name().to_string()).or_default() += n;
                    }
                }
                let state = if !p.admin_up {
                    "down"
                } else if !p.link_up {
                    "link-down"
                } else if p.err_disabled.is_some() {
                    "err-disabled"
                } else {
                    "up"
                };
                let pol = |v: portcullis_dataplane::Policy| format!("{v:?}").to_lowercase();
                let security = if p.role == PortRole::Guest {
                    [
                        ("promiscuous".to_string(), pol(p.security.promiscuous)),
                        ("mac_changes".to_string(), pol(p.security.mac_changes)),
                        (
                            "forged_transmits".to_string(),
                            pol(p.security.forged_transmits),
                        ),
                    ]
                    .into_iter()
                    .collect()
                } else {
                    BTreeMap::new()
                };
                PortView {
                    id: p.id.0,
                    name: p.name.clone(),
                    role: format!("{:?}", p.role).to_lowercase(),
                    interface: interfaces.get(p.id.index()).cloned().unwrap_or_default(),
                    port_group: groups.get(p.id.index()).cloned().unwrap_or_default(),
                    vlan: vlan_text(&p.vlan),
                    state: state.into(),
                    err_disabled: p.err_disabled.map(|e| cause_name(e.cause)),
                    initial_mac: p.initial_mac.map(|m| m.to_string()),
                    effective_mac: p.effective_mac.map(|m| m.to_string()),
                    mac_change_blocked: p.mac_change_blocked(),
                    security,
                    uplink: sw.uplink_of(p.id).map(name_of),
                    counters: c.into(),
                    io: rt.io.get(p.id.index()).cloned().unwrap_or_default(),
                }
            })
            .collect();
        let t = sw.mac_table();
        let entries = t
            .entries(now)
            .into_iter()
            .map(|(vid, mac, e)| MacView {
                vlan: vid.get(),
                mac: mac.to_string(),
                port: name_of(e.port),
                kind: e.kind.name().into(),
                age_secs: now.saturating_since(e.last_seen) / 1_000_000_000,
            })
            .collect();
        let port_security = sw
            .ports()
            .iter()
            .filter_map(|p| {
                let s = p.secure?;
                let word = |v: &dyn std::fmt::Debug| format!("{v:?}").to_lowercase();
                Some(PortSecurityView {
                    port: p.name.clone(),
                    max_macs: s.max_macs,
                    count: s.count,
                    violation: word(&s.violation),
                    sticky: s.sticky,
                    aging: word(&s.aging),
                    aging_secs: s.aging_ns / 1_000_000_000,
                    violations: s.violations,
                    last_violation: s.last_violation.map(|(m, v)| format!("{m} in VLAN {v}")),
                    err_disabled: p.err_disabled.map(|e| cause_name(e.cause)),
                    secure_macs: t
                        .entries_of(p.id)
                        .into_iter()
                        .map(|(vid, mac, e)| MacView {
                            vlan: vid.get(),
                            mac: mac.to_string(),
                            port: p.name.clone(),
                            kind: e.kind.name().into(),
                            age_secs: now.saturating_since(e.learned_at) / 1_000_000_000,
                        })
                        .collect(),
                })
            })
            .collect();
        let mac_acls = sw
            .mac_acls()
            .iter()
            .map(|a| {
                let bound = |dir: usize| {
                    sw.ports()
                        .iter()
                        .filter(|p| {
                            let (i, o) = sw.port_acls(p.id);
                            [i, o][dir] == Some(a.spec.name.as_str())
                        })
                        .map(|p| p.name.clone())
                        .collect()
                };
                MacAclView {
                    name: a.spec.name.clone(),
                    rules: a
                        .spec
                        .rules
                        .iter()
                        .enumerate()
                        .map(|(i, r)| AclRuleView {
                            seq: i + 1,
                            rule: rule_text(r),
                            hits: a.hits[i],
                        })
                        .collect(),
                    implicit_deny_hits: a.hits.last().copied().unwrap_or(0),
                    bound_in: bound(0),
                    bound_out: bound(1),
                    cache_hits: a.cache_hits,
                    cache_misses: a.cache_misses,
                }
            })
            .collect();
        let uplinks = sw
            .ports()
            .iter()
            .filter(|p| p.role == PortRole::Uplink)
            .map(|u| {
                let c = sw.counters(u.id).expect("every port has counters");
                UplinkView {
                    name: u.name.clone(),
                    interface: interfaces.get(u.id.index()).cloned().unwrap_or_default(),
                    state: if !u.admin_up {
                        "down".into()
                    } else if !u.link_up {
                        "link-down".into()
                    } else {
                        "up".into()
                    },
                    vlan: vlan_text(&u.vlan),
                    guests: sw
                        .ports()
                        .iter()
                        .filter(|g| g.role == PortRole::Guest && sw.uplink_of(g.id) == Some(u.id))
                        .map(|g| g.name.clone())
                        .collect(),
                    rx_frames: c.rx_frames,
                    tx_frames: c.tx_frames,
                }
            })
            .collect();
        Snapshot {
            uplinks,
            mac_acls,
            port_security,
            switch: sw.name().to_string(),
            uptime_secs: now.0 / 1_000_000_000,
            ports,
            mac_table: MacTableView {
                capacity: t.capacity(),
                entries,
                learn_refused: t.learn_refused,
                aged_out: t.aged_out,
            },
            drops,
            events_lost: rt.events_lost + sw.events_dropped(),
            batches: rt.batches,
        }
    }
}

fn cause_name(c: portcullis_dataplane::ErrDisableCause) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One binding (`show bindings`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindingView {
    pub vlan: u16,
    pub ip: String,
    pub mac: String,
    pub port: String,
    /// dhcp, static, api …
    pub source: String,
    /// Seconds left on the lease; `None`: no expiry.
    pub lease_left_secs: Option<u64>,
}

/// The binding table and the hold path's counters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindingsView {
    pub capacity: usize,
    pub bindings: Vec<BindingView>,
    pub held: crate::held::HeldStats,
}

impl BindingsView {
    pub fn build(sw: &Switch, now: Instant, held: crate::held::HeldStats) -> BindingsView {
        let bindings = sw
            .bindings()
            .into_iter()
            .map(|e| BindingView {
                vlan: e.vid.get(),
                ip: e.ip.to_string(),
                mac: e.binding.mac.to_string(),
                port: sw
                    .port(e.binding.port)
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                source: serde_json::to_value(e.binding.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                lease_left_secs: e
                    .binding
                    .lease_end
                    .map(|end| end.saturating_since(now) / 1_000_000_000),
            })
            .collect();
        BindingsView {
            capacity: sw.binding_capacity(),
            bindings,
            held,
        }
    }
}
