//! The views of the running switch that the API serves as JSON: ports, counters,
//! the MAC table, port security, MAC ACLs, uplinks, bindings, hosts and the
//! overlay. Plain
//! data: the daemon fills them from the switch (`portcullis_daemon::snapshot`),
//! clients read them.
//!
//! Invariant: nothing here knows the data plane's types; every field is a number,
//! a string or another view, so the JSON schema is these structs and nothing else.

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

/// How a port carries VLANs: `{"mode": "access", "vid": 10}`, or
/// `{"mode": "trunk", "allowed": [{"first": 10, "last": 10}, {"first": 20, "last": 29}],
/// "native": 1}` (allowed VLANs as ranges, in order; `native` absent when the trunk
/// has none).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "mode", rename_all = "lowercase")]
pub enum VlanView {
    Access {
        vid: u16,
    },
    Trunk {
        allowed: Vec<VlanRange>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        native: Option<u16>,
    },
}

/// VLANs `first` to `last`, both included.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VlanRange {
    pub first: u16,
    pub last: u16,
}

impl VlanView {
    /// A trunk carrying `vids` (in any order, repeats allowed), as ranges.
    pub fn trunk(vids: impl IntoIterator<Item = u16>, native: Option<u16>) -> VlanView {
        let mut v: Vec<u16> = vids.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        let mut allowed: Vec<VlanRange> = Vec::new();
        for vid in v {
            match allowed.last_mut() {
                Some(r) if r.last + 1 == vid => r.last = vid,
                _ => allowed.push(VlanRange {
                    first: vid,
                    last: vid,
                }),
            }
        }
        VlanView::Trunk { allowed, native }
    }
}

/// As the tables show it: `access 10`, `trunk 10,20-29 native 1`, `trunk -`.
impl std::fmt::Display for VlanView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VlanView::Access { vid } => write!(f, "access {vid}"),
            VlanView::Trunk { allowed, native } => {
                f.write_str("trunk ")?;
                if allowed.is_empty() {
                    f.write_str("-")?;
                }
                for (i, r) in allowed.iter().enumerate() {
                    let sep = if i == 0 { "" } else { "," };
                    if r.first == r.last {
                        write!(f, "{sep}{}", r.first)?;
                    } else {
                        write!(f, "{sep}{}-{}", r.first, r.last)?;
                    }
                }
                match native {
                    Some(n) => write!(f, " native {n}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortView {
    pub id: u16,
    pub name: String,
    pub role: String,
    pub interface: String,
    /// The I/O backend actually in use: "af_packet", "af_xdp" (an AF_XDP port that
    /// could not be opened falls back to "af_packet"), "vhost_user" (a vhost-user
    /// socket), or "memory" (in-memory ports).
    #[serde(default)]
    pub backend: String,
    /// For an AF_XDP port, how the kernel runs its socket: "native, copy" (veth),
    /// "native, zero-copy" (a NIC driver with zero-copy), "skb, copy".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xdp_mode: Option<String>,
    /// The port group of a guest port; `None` for an uplink.
    pub port_group: Option<String>,
    /// The VLANs the port carries, and how (see [`VlanView`]).
    pub vlan: VlanView,
    /// "up", "down" (admin), "no-interface" (its interface does not exist: it
    /// attaches when the interface appears), "link-down", "err-disabled".
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
    /// Added at run time (`port add`, an integration), not by the configuration.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub runtime: bool,
    /// The owner's metadata of a runtime port (USED-BY).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owner: BTreeMap<String, String>,
}

impl PortView {
    /// Who uses a runtime port, in a few characters (USED-BY): the libvirt domain
    /// (`vm:web1`), the container (`ctr:` and 12 characters of its id), the VM's
    /// UUID (`domain_uuid`; ovs-vsctl's `vm-uuid` or libvirt's `vm-id`), or the first owner key; `runtime` without an owner; `None` for a
    /// configured port.
    pub fn owner_summary(&self) -> Option<String> {
        if !self.runtime {
            return None;
        }
        let o = &self.owner;
        let short = |s: &str| s.chars().take(12).collect::<String>();
        Some(if let Some(d) = o.get("domain") {
            format!("vm:{d}")
        } else if let Some(c) = o.get("container_id") {
            format!("ctr:{}", short(c))
        } else if let Some(u) = o
            .get("domain_uuid")
            .or_else(|| o.get("vm-uuid"))
            .or_else(|| o.get("vm-id"))
        {
            format!("vm:{}", short(u))
        } else if let Some((k, v)) = o.iter().next() {
            format!("{k}:{v}")
        } else {
            "runtime".into()
        })
    }
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
    pub vlan: VlanView,
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
    /// A DHCPv6 binding's client DUID: hex with colons (`00:03:00:01:…`), or
    /// `sha256:` and the hex of a long DUID's digest prefix. Absent for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duid: Option<String>,
}

/// The binding table and the hold path's counters.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindingsView {
    pub capacity: usize,
    pub bindings: Vec<BindingView>,
    pub held: HeldStats,
}

/// Counters of the hold path (DHCP ACKs held until their binding is durable).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HeldStats {
    pub held: u64,
    pub released: u64,
    pub failed: u64,
    pub queue_full: u64,
    pub waiting: u64,
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
    pub table: HostTableStats,
}

/// The counters of the switch's host tables (IP-seen and duplicate-IP hold-down).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTableStats {
    /// Entries the IP-seen table holds (live or not yet swept).
    pub entries: usize,
    pub capacity: usize,
    /// Addresses evicted, least recently seen first, to make room for new ones.
    pub evicted: u64,
    /// Addresses removed after the MAC aging time without a sighting.
    pub aged_out: u64,
    /// Duplicate-IP claims reported as events.
    pub conflicts_reported: u64,
    /// Duplicate-IP claims not reported: their address was reported less than the
    /// hold-down before.
    pub conflicts_suppressed: u64,
    /// Hold-down entries evicted before their hold-down had passed.
    pub holddown_evicted: u64,
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

/// `GET /v1/overlay`: the VXLAN overlay (RFC 7348) of the switch — its VLAN → VNI
/// map, this host's tunnel endpoint, the remote endpoints with their counters and
/// the remote MACs the control plane placed behind them. The overlay port's drops
/// by reason are in its port counters (`GET /v1/counters`, port `port`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverlayView {
    /// The overlay port's name (`overlay`).
    pub port: String,
    /// This host's tunnel endpoint address.
    pub local_ip: String,
    /// The UDP port of the tunnels (4789).
    pub udp_port: u16,
    /// The underlay interface the endpoint uses (`None`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// ARP for addresses bound behind the overlay is answered locally.
    pub arp_proxy: bool,
    /// VLAN → VNI, by VLAN.
    pub vnis: Vec<VniView>,
    pub endpoints: Vec<OverlayEndpointView>,
    /// Remote MACs installed (the length of `remote_macs` when it is filled).
    pub remote_mac_count: usize,
    /// Every remote MAC, by VLAN and MAC (left empty where only the counts were
    /// asked for: the metrics).
    #[serde(default)]
    pub remote_macs: Vec<RemoteMacView>,
    /// MACs the control plane gave that were not installed (the table full, or
    /// another endpoint had the MAC in that VLAN), since the switch was built.
    pub refused_macs: u64,
    /// Endpoints not installed (more than the most endpoints, or this host's own).
    pub refused_endpoints: u64,
    /// Datagrams from addresses that are not endpoints (dropped).
    pub unknown_endpoint: u64,
}

/// One VLAN the overlay carries, and its VNI.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VniView {
    pub vlan: u16,
    pub vni: u32,
}

/// One remote tunnel endpoint (another host).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverlayEndpointView {
    pub address: String,
    /// `configured` (a static peer of the configuration) or `cluster` (from the
    /// cluster's port records).
    pub source: String,
    /// The VLANs it has guest MACs in (where floods are replicated to it).
    pub vlans: Vec<u16>,
    /// Guest MACs behind it.
    pub macs: usize,
    pub counters: OverlayEndpointCounters,
}

/// The counters of one remote endpoint.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OverlayEndpointCounters {
    /// Frames received from it that passed the overlay's checks, and their bytes
    /// (the UDP payload: VXLAN header and inner frame).
    pub rx_frames: u64,
    pub rx_bytes: u64,
    /// Frames sent to it (a flood counts once per endpoint), and their bytes (the
    /// inner frame).
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames from it whose inner source MAC is not one placed behind it (dropped).
    pub forged_source: u64,
    /// Frames from it with a bad VXLAN header, an unmapped VNI or an inner 802.1Q
    /// tag (dropped).
    pub bad_header: u64,
}

/// One remote guest MAC and the endpoint it sits behind.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RemoteMacView {
    pub vlan: u16,
    pub mac: String,
    /// The endpoint's address.
    pub endpoint: String,
}
