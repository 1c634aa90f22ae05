//! The builder of the API's views of the running switch: the data-plane thread
//! fills `portcullis_api`'s view types (re-exported here) from the `Switch` on
//! request, and the API serves them as JSON.
//!
//! Invariant: the conversion from the switch's types to the views is here and
//! only here; the views themselves (the response schema) are plain data in
//! `portcullis_api::views`. It does not depend on the runtime (which calls it).

use portcullis_dataplane::{DropReason, PortCounters, PortRole, Switch, Timestamp, VlanMode};
use std::collections::BTreeMap;

pub use portcullis_api::views::*;

/// A port's counters as the API shows them (drop reasons by name, non-zero only).
pub fn counters_view(c: &PortCounters) -> CountersView {
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
        observed: by_reason(&c.observed),
    }
}

fn vlan_view(m: &VlanMode) -> portcullis_api::VlanView {
    match m {
        VlanMode::Access(v) => portcullis_api::VlanView::Access { vid: v.get() },
        VlanMode::Trunk { allowed, native } => portcullis_api::VlanView::trunk(
            allowed.iter().map(|v| v.get()),
            native.map(|n| n.get()),
        ),
    }
}

/// The whole view of the switch: its ports with their `interfaces`, the backend
/// each port's I/O uses (`in_use`; `None`: memory), port `groups` and the
/// runtime's I/O counters (`io`), all by port index, plus the runtime's lost
/// events and batch count.
pub fn build(
    sw: &Switch,
    interfaces: &[String],
    in_use: &[Option<crate::ports::BackendInUse>],
    groups: &[String],
    io: &[IoStats],
    (events_lost, batches): (u64, u64),
    now: Timestamp,
) -> Snapshot {
    let name_of =
        |id: portcullis_dataplane::PortId| sw.port(id).map(|p| p.name.clone()).unwrap_or_default();
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
            let in_use = in_use.get(p.id.index()).copied().flatten();
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
                backend: in_use.map_or("memory", |u| u.name()).to_string(),
                xdp_mode: in_use.and_then(|u| u.xdp_mode).map(str::to_string),
                port_group: (p.role == PortRole::Guest)
                    .then(|| groups.get(p.id.index()).cloned().unwrap_or_default()),
                vlan: vlan_view(&p.vlan),
                state: state.into(),
                err_disabled: p.err_disabled.map(|e| e.cause.name().to_string()),
                initial_mac: p.initial_mac.map(|m| m.to_string()),
                effective_mac: p.effective_mac.map(|m| m.to_string()),
                mac_change_blocked: p.mac_change_blocked(),
                security,
                uplink: sw.uplink_of(p.id).map(name_of),
                counters: counters_view(c),
                io: io.get(p.id.index()).cloned().unwrap_or_default(),
                // The control plane's (runtime ports), filled in by the API.
                runtime: false,
                owner: BTreeMap::new(),
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
                err_disabled: p.err_disabled.map(|e| e.cause.name().to_string()),
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
                        rule: r.to_string(),
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
                vlan: vlan_view(&u.vlan),
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
        events_lost: events_lost + sw.events_dropped(),
        batches,
    }
}

/// The binding table and the hold path's counters.
pub fn bindings_view(sw: &Switch, now: Timestamp, held: HeldStats) -> BindingsView {
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
            duid: e.binding.duid.map(|d| d.to_string()),
        })
        .collect();
    BindingsView {
        capacity: sw.binding_capacity(),
        bindings,
        held,
    }
}

/// The hosts behind each VLAN and subnet (of one VLAN only with `vlan`).
/// Allocates: control path.
pub fn hosts_view(sw: &Switch, now: Timestamp, vlan: Option<u16>) -> HostsView {
    use portcullis_dataplane::MacKind;
    use std::net::IpAddr;
    let name_of =
        |id: portcullis_dataplane::PortId| sw.port(id).map(|p| p.name.clone()).unwrap_or_default();
    let secs = |t: Timestamp| now.saturating_since(t) / 1_000_000_000;
    let wanted = |v: u16| vlan.is_none_or(|w| w == v);
    // (vlan) → (ip → hosts), in address order.
    type ByIp = BTreeMap<(u8, u128), (IpAddr, Vec<HostView>)>;
    let mut vlans: BTreeMap<u16, ByIp> = BTreeMap::new();
    let key = |ip: IpAddr| match ip {
        IpAddr::V4(a) => (4, u128::from(u32::from(a))),
        IpAddr::V6(a) => (6, u128::from(a)),
    };
    let seen = sw.hosts().entries(now);
    let seen_at: std::collections::HashMap<(u16, IpAddr), portcullis_dataplane::HostEntry> = seen
        .iter()
        .map(|h| ((h.vid.get(), h.ip), h.entry))
        .collect();
    let bindings = sw.bindings();
    let bound: std::collections::HashMap<(u16, IpAddr), portcullis_dataplane::MacAddr> = bindings
        .iter()
        .map(|b| ((b.vid.get(), b.ip), b.binding.mac))
        .collect();
    let mut with_ip: std::collections::BTreeSet<(u16, portcullis_dataplane::MacAddr)> =
        Default::default();
    for b in bindings.iter().filter(|b| wanted(b.vid.get())) {
        let vid = b.vid.get();
        let source = serde_json::to_value(b.binding.source)
            .ok()
            .and_then(|v| v.as_str().map(|s| format!("binding-{s}")))
            .unwrap_or_else(|| "binding".into());
        let age = seen_at
            .get(&(vid, b.ip))
            .filter(|h| h.mac == b.binding.mac)
            .map(|h| secs(h.last_seen));
        with_ip.insert((vid, b.binding.mac));
        vlans
            .entry(vid)
            .or_default()
            .entry(key(b.ip))
            .or_insert_with(|| (b.ip, Vec::new()))
            .1
            .push(HostView {
                ip: Some(b.ip.to_string()),
                mac: b.binding.mac.to_string(),
                port: name_of(b.binding.port),
                source,
                age_secs: age,
            });
    }
    for h in seen.iter().filter(|h| wanted(h.vid.get())) {
        let vid = h.vid.get();
        let bound_same = bound.get(&(vid, h.ip)) == Some(&h.entry.mac);
        with_ip.insert((vid, h.entry.mac));
        if bound_same {
            continue;
        }
        vlans
            .entry(vid)
            .or_default()
            .entry(key(h.ip))
            .or_insert_with(|| (h.ip, Vec::new()))
            .1
            .push(HostView {
                ip: Some(h.ip.to_string()),
                mac: h.entry.mac.to_string(),
                port: name_of(h.entry.port),
                source: "arp".into(),
                age_secs: Some(secs(h.entry.last_seen)),
            });
    }
    let mut mac_only: BTreeMap<u16, Vec<HostView>> = BTreeMap::new();
    for (vid, mac, e) in sw.mac_table().entries(now) {
        let vid = vid.get();
        if !e.kind.is_local() || !wanted(vid) || with_ip.contains(&(vid, mac)) {
            continue;
        }
        mac_only.entry(vid).or_default().push(HostView {
            ip: None,
            mac: mac.to_string(),
            port: name_of(e.port),
            source: "mac-only".into(),
            age_secs: (e.kind != MacKind::Guest).then(|| secs(e.last_seen)),
        });
    }
    let mut vids: Vec<u16> = vlans.keys().chain(mac_only.keys()).copied().collect();
    vids.sort_unstable();
    vids.dedup();
    let vlans = vids
        .into_iter()
        .map(|vid| {
            let mut subnets: Vec<SubnetHostsView> = Vec::new();
            for (ip, hosts) in vlans.remove(&vid).unwrap_or_default().into_values() {
                let subnet = subnet_of(ip);
                match subnets.last_mut() {
                    Some(s) if s.subnet == subnet => s.hosts.extend(hosts),
                    _ => subnets.push(SubnetHostsView {
                        subnet,
                        count: 0,
                        hosts,
                    }),
                }
            }
            for s in &mut subnets {
                s.count = s.hosts.len();
            }
            let mac_only = mac_only.remove(&vid).unwrap_or_default();
            VlanHostsView {
                vlan: vid,
                count: subnets.iter().map(|s| s.count).sum::<usize>() + mac_only.len(),
                subnets,
                mac_only,
            }
        })
        .collect();
    HostsView {
        vlans,
        table: host_table_stats(sw.hosts().stats()),
    }
}

/// The host tables' counters as the API shows them.
/// The overlay's view (`None`: the switch has no overlay); the remote MACs listed
/// only with `remote_macs` (there may be 65 536 of them: the metrics take counts).
pub fn overlay_view(sw: &Switch, remote_macs: bool) -> Option<OverlayView> {
    let o = sw.overlay()?;
    let endpoints = o.endpoints();
    let address = |e: u16| {
        endpoints
            .get(e as usize)
            .map(|e| e.address.to_string())
            .unwrap_or_default()
    };
    let (refused_macs, refused_endpoints) = o.refused();
    Some(OverlayView {
        port: sw
            .port(o.port())
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        local_ip: o.local_ip().to_string(),
        udp_port: o.udp_port(),
        interface: o.interface().map(str::to_string),
        arp_proxy: o.arp_proxy(),
        vnis: o
            .vnis()
            .map(|(vid, vni)| VniView {
                vlan: vid.get(),
                vni: vni.get(),
            })
            .collect(),
        endpoints: endpoints
            .iter()
            .map(|e| {
                let c = e.counters;
                OverlayEndpointView {
                    address: e.address.to_string(),
                    source: if e.configured {
                        "configured"
                    } else {
                        "cluster"
                    }
                    .into(),
                    vlans: e.vlans.iter().map(|v| v.get()).collect(),
                    macs: e.macs,
                    counters: OverlayEndpointCounters {
                        rx_frames: c.rx_frames,
                        rx_bytes: c.rx_bytes,
                        tx_frames: c.tx_frames,
                        tx_bytes: c.tx_bytes,
                        forged_source: c.forged_source,
                        bad_header: c.bad_header,
                    },
                }
            })
            .collect(),
        // Every installed MAC is counted on its endpoint.
        remote_mac_count: endpoints.iter().map(|e| e.macs).sum(),
        remote_macs: if remote_macs {
            o.remote_macs()
                .into_iter()
                .map(|(vid, mac, e)| RemoteMacView {
                    vlan: vid.get(),
                    mac: mac.to_string(),
                    endpoint: address(e),
                })
                .collect()
        } else {
            Vec::new()
        },
        refused_macs,
        refused_endpoints,
        unknown_endpoint: o.unknown_endpoint,
    })
}

fn host_table_stats(s: portcullis_dataplane::HostStats) -> HostTableStats {
    let portcullis_dataplane::HostStats {
        entries,
        capacity,
        evicted,
        aged_out,
        conflicts_reported,
        conflicts_suppressed,
        holddown_evicted,
    } = s;
    HostTableStats {
        entries,
        capacity,
        evicted,
        aged_out,
        conflicts_reported,
        conflicts_suppressed,
        holddown_evicted,
    }
}

#[cfg(test)]
mod tests {
    use portcullis_dataplane::ErrDisableCause;

    /// The API shows a port's err-disable cause by its name, which is the name its
    /// events serialize (the names this file used to take from serde).
    #[test]
    fn err_disable_causes_are_named_as_serialized() {
        for c in [
            ErrDisableCause::PortSecurity,
            ErrDisableCause::StormControl,
            ErrDisableCause::DhcpRateLimit,
            ErrDisableCause::ArpRateLimit,
            ErrDisableCause::NdRateLimit,
            ErrDisableCause::Dhcpv6RateLimit,
        ] {
            assert_eq!(serde_json::to_value(c).unwrap(), c.name());
        }
    }
}
