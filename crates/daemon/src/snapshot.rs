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
    /// GSO super-frames received (up to 64 KiB of TCP/UDP as one frame).
    #[serde(default)]
    pub rx_gso_frames: u64,
    /// Segments this port's backend cut from super-frames in software (the port
    /// does not take them whole).
    #[serde(default)]
    pub tx_gso_segments: u64,
    /// Frames whose offload request did not fit their headers (dropped).
    #[serde(default)]
    pub tx_bad_offload: u64,
    /// Frames the kernel dropped because the port's receive ring was full (the
    /// switch never saw them), since the port was opened.
    #[serde(default)]
    pub rx_kernel_drops: u64,
    /// Frames that arrived cut short (bigger than the receive path takes whole) and
    /// were skipped, since the port was opened.
    #[serde(default)]
    pub rx_truncated: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortView {
    pub id: u16,
    pub name: String,
    pub role: String,
    pub interface: String,
    /// The I/O backend actually in use: "af_packet", "af_xdp" (an AF_XDP port that
    /// could not be opened falls back to "af_packet"), or "memory" (in-memory
    /// ports).
    #[serde(default)]
    pub backend: String,
    /// For an AF_XDP port, how the kernel runs its socket: "native, copy" (veth),
    /// "native, zero-copy" (a NIC driver with zero-copy), "skb, copy".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<String>,
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
    /// Non-zero counts of what a feature in observe mode would have dropped, and of
    /// detections that never drop (`ip_conflict`), by reason name.
    #[serde(default)]
    pub observed: BTreeMap<String, u64>,
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
            observed: by_reason(&c.observed),
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
        in_use: &[Option<crate::ports::BackendInUse>],
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
                    backend: in_use.map_or("memory", |u| u.backend.name()).to_string(),
                    xdp_mode: in_use.and_then(|u| u.xdp_mode).map(str::to_string),
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

/// One host (`portcullis hosts`): an address with the MAC that holds it, or a MAC
/// the switch knows without an address.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostView {
    /// `None` for a MAC-only host.
    pub ip: Option<String>,
    pub mac: String,
    pub port: String,
    /// `binding-dhcp`, `binding-static`, `binding-api`, `binding-dhcpv6`,
    /// `binding-nd` (the binding table), `arp` (seen as an ARP sender), `mac-only`
    /// (a guest's MAC-table entry with no address known).
    pub source: String,
    /// Seconds since the host was last seen with the address (IP-seen table) or,
    /// for a MAC-only host, since its MAC-table entry was refreshed; `None` when the
    /// switch has no such time (a binding never seen on the wire, a guest MAC).
    pub age_secs: Option<u64>,
}

/// The hosts of one subnet of a VLAN.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SubnetHostsView {
    /// The /24 (IPv4) or /64 (IPv6) the addresses fall in, e.g. `198.18.10.0/24`.
    pub subnet: String,
    /// Hosts listed (an address two MACs claim is listed once per MAC).
    pub count: usize,
    pub hosts: Vec<HostView>,
}

/// The hosts behind one VLAN.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VlanHostsView {
    pub vlan: u16,
    /// All hosts of the VLAN: the subnets' counts plus the MAC-only hosts.
    pub count: usize,
    pub subnets: Vec<SubnetHostsView>,
    pub mac_only: Vec<HostView>,
}

/// `GET /v1/hosts`: the hosts behind each VLAN and subnet, from the switch's own
/// tables (bindings, the IP-seen table, the MAC table), and the IP-seen table's
/// counters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostsView {
    pub vlans: Vec<VlanHostsView>,
    pub table: portcullis_dataplane::HostStats,
}

/// The /24 of an IPv4 address, the /64 of an IPv6 one.
pub fn subnet_of(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let n = u32::from(v4) & 0xffff_ff00;
            format!("{}/24", std::net::Ipv4Addr::from(n))
        }
        std::net::IpAddr::V6(v6) => {
            let n = u128::from(v6) & !((1u128 << 64) - 1);
            format!("{}/64", std::net::Ipv6Addr::from(n))
        }
    }
}

impl HostsView {
    /// Builds the view (of one VLAN only with `vlan`). Allocates: control path.
    pub fn build(sw: &Switch, now: Instant, vlan: Option<u16>) -> HostsView {
        use portcullis_dataplane::MacKind;
        use std::net::IpAddr;
        let name_of = |id: portcullis_dataplane::PortId| {
            sw.port(id).map(|p| p.name.clone()).unwrap_or_default()
        };
        let secs = |t: Instant| now.saturating_since(t) / 1_000_000_000;
        let wanted = |v: u16| vlan.is_none_or(|w| w == v);
        // (vlan) → (ip → hosts), in address order.
        type ByIp = BTreeMap<(u8, u128), (IpAddr, Vec<HostView>)>;
        let mut vlans: BTreeMap<u16, ByIp> = BTreeMap::new();
        let key = |ip: IpAddr| match ip {
            IpAddr::V4(a) => (4, u128::from(u32::from(a))),
            IpAddr::V6(a) => (6, u128::from(a)),
        };
        let seen = sw.hosts().entries(now);
        let seen_at: std::collections::HashMap<(u16, IpAddr), portcullis_dataplane::HostEntry> =
            seen.iter()
                .map(|h| ((h.vid.get(), h.ip), h.entry))
                .collect();
        let bindings = sw.bindings();
        let bound: std::collections::HashMap<(u16, IpAddr), portcullis_dataplane::MacAddr> =
            bindings
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
            table: sw.hosts().stats(),
        }
    }
}
