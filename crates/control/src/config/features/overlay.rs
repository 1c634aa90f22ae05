//! The VXLAN overlay between hosts (RFC 7348), whole: the profile's `[overlay]`
//! (which VLANs travel between hosts as which VNIs, the UDP port, ARP proxy, the
//! remote-MAC table's size) and the host binding's `[host.overlay]` (this host's
//! tunnel endpoint and its static peers) — their raw shapes, models, conversion,
//! checks, the spec's `OverlaySpec` and their flattening for diff. The overlay
//! port itself (its place among the ports, its trust, the names it takes) is the
//! assembly's (`compile.rs`): it spans the uplinks' policy and the guest ports.
//!
//! Invariant: a compiled overlay maps each VLAN and each VNI at most once, every
//! VNI fits in 24 bits, every static peer is a unicast address of the local
//! endpoint's family other than the local endpoint, listed once, with at most
//! [`MAX_ENDPOINTS`] peers, and each peer's MACs are unicast, in mapped VLANs and
//! behind no other peer.

use crate::config::check::{Checker, vid_list};
use crate::config::flat::{Flat, OFF, list, opt, put};
use crate::config::keys::join_key;
use crate::config::value::{Converter, out_of_range};
use portcullis_dataplane::overlay::{DEFAULT_MAX_REMOTE_MACS, MAX_ENDPOINTS};
use portcullis_dataplane::wire::vxlan::DEFAULT_UDP_PORT;
use portcullis_dataplane::{MacAddr, OverlayPeer, OverlaySpec, Vid, Vni};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

// ---- shape --------------------------------------------------------------------------

/// `[overlay]` in the profile.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOverlay {
    pub vni: RawVniMap,
    pub udp_port: Option<i64>,
    pub arp_proxy: Option<bool>,
    pub max_remote_macs: Option<i64>,
    /// Accepted by the shape only to be refused with a precise message: the
    /// endpoint is host-specific.
    pub local_ip: Option<de::IgnoredAny>,
    pub interface: Option<de::IgnoredAny>,
    pub peers: Option<de::IgnoredAny>,
}

/// `vni = { 10 = 10010, … }`: (VLAN as written, VNI) pairs.
#[derive(Debug, Default)]
pub(crate) struct RawVniMap(pub Vec<(String, i64)>);

impl<'de> Deserialize<'de> for RawVniMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawVniMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of VLAN = VNI, like { 10 = 10010, 20 = 10020 }")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawVniMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, i64>()? {
                    out.push((k, v));
                }
                Ok(RawVniMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// `[host.overlay]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHostOverlay {
    pub local_ip: String,
    pub interface: Option<String>,
    pub fragment: Option<bool>,
    #[serde(default)]
    pub peers: Vec<RawPeer>,
    /// Accepted by the shape only to be refused with a precise message: the VLAN
    /// ↔ VNI map is the profile's, the same on every host.
    pub vni: Option<de::IgnoredAny>,
}

/// One element of `peers`: the table form, or a bare address (DESIGN.md §8.1's
/// first sketch), which is refused with the table form.
#[derive(Debug)]
pub(crate) enum RawPeer {
    Table(RawPeerTable),
    Bare(String),
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeerTable {
    pub address: String,
    #[serde(default)]
    pub macs: Vec<RawPeerMac>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPeerMac {
    pub vlan: i64,
    pub mac: String,
}

impl<'de> Deserialize<'de> for RawPeer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawPeer;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a peer table { address = \"…\", macs = [ { vlan = N, mac = \"…\" } ] }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawPeer, E> {
                Ok(RawPeer::Bare(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawPeer, A::Error> {
                RawPeerTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawPeer::Table)
            }
        }
        d.deserialize_any(V)
    }
}

// ---- model --------------------------------------------------------------------------

/// Bounds of `overlay.udp_port`.
pub const OVERLAY_UDP_PORT_RANGE: std::ops::RangeInclusive<u64> = 1..=65_535;

/// Bounds of `overlay.max_remote_macs`.
pub const MAX_REMOTE_MACS_RANGE: std::ops::RangeInclusive<u64> = 1..=1_048_576;

/// Bounds of a VNI (24 bits).
pub const VNI_RANGE: std::ops::RangeInclusive<u64> = 0..=Vni::MAX as u64;

/// `[overlay]`: the golden, host-independent part of the overlay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlaySettings {
    /// VLAN → VNI, sorted by VLAN (converted ones; a bad entry is an error).
    pub vnis: Vec<(Vid, Vni)>,
    /// Default [`DEFAULT_UDP_PORT`] (4789, IANA's VXLAN port).
    pub udp_port: u64,
    /// Default `false`.
    pub arp_proxy: bool,
    /// Default [`DEFAULT_MAX_REMOTE_MACS`].
    pub max_remote_macs: u64,
}

/// `[host.overlay]`: this host's tunnel endpoint and its static peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOverlay {
    pub local_ip: IpAddr,
    /// The underlay interface (`None`: any, as routing chooses).
    pub interface: Option<String>,
    /// Let the kernel fragment datagrams above the underlay's path MTU (default
    /// `false`: refused and counted; RFC 7348 §4.3: VTEPs must not fragment).
    pub fragment: bool,
    /// Static endpoints, in file order (converted ones).
    pub peers: Vec<StaticPeer>,
}

/// One `[host.overlay] peers` element: a remote endpoint and the guest MACs
/// behind it (needed: a frame from it with any other source MAC is forged).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticPeer {
    pub address: IpAddr,
    /// (VLAN, MAC), in file order.
    pub macs: Vec<(Vid, MacAddr)>,
}

/// Why a bare-string peer is refused: the table form it must take.
pub(crate) fn bare_peer(address: &str) -> String {
    format!(
        "a peer is a table naming the guest MACs behind it (a frame from it with another source MAC is dropped as forged): write {{ address = {address:?}, macs = [ {{ vlan = 10, mac = \"52:54:00:00:00:02\" }} ] }}"
    )
}

/// Why `[host.overlay]` without `[overlay]` is refused.
pub(crate) const HOST_WITHOUT_PROFILE: &str = "the profile has no [overlay]: the VLAN ↔ VNI map is the profile's (the same on every host); add [overlay] with `vni = { VLAN = VNI }` to the profile, or remove [host.overlay]";

/// Why `[overlay]` is refused without `[host.overlay]` in a host binding.
pub(crate) const PROFILE_WITHOUT_HOST: &str =
    "the profile has an [overlay]: this host needs [host.overlay] local_ip";

/// The overlay port's name (the data plane's).
pub(crate) use portcullis_dataplane::overlay::PORT_NAME;

/// Why a port or uplink named [`PORT_NAME`] is refused while the overlay is on.
pub(crate) const NAME_TAKEN: &str = "\"overlay\" is the name of the overlay port while the profile has an [overlay]; name this one otherwise";

/// Why an endpoint key is refused in the profile's `[overlay]`.
const ENDPOINT_IN_PROFILE: &str =
    "the tunnel endpoint is host-specific: write it under [host.overlay] in the host binding";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `[overlay]`: the VNI map sorted by VLAN, the defaults of what is not stated.
    pub(crate) fn overlay(&mut self, raw: RawOverlay) -> OverlaySettings {
        for (field, stated) in [
            ("local_ip", raw.local_ip.is_some()),
            ("interface", raw.interface.is_some()),
            ("peers", raw.peers.is_some()),
        ] {
            if stated {
                self.error(&format!("overlay.{field}"), ENDPOINT_IN_PROFILE);
            }
        }
        let mut vnis = Vec::new();
        let errors_before = self.errors.len();
        for (vlan, vni) in &raw.vni.0 {
            let key = join_key("overlay.vni", vlan);
            let vid = match vlan.trim().parse::<i64>() {
                Ok(v) => self.vid(&key, v),
                Err(_) => {
                    self.error(
                        &key,
                        format!("{vlan:?} is not a VLAN ID: the keys of `vni` are VLANs (1..=4094), like {{ 10 = 10010 }}"),
                    );
                    None
                }
            };
            let vni = match u32::try_from(*vni).ok().and_then(Vni::new) {
                Some(n) => Some(n),
                None => {
                    self.error(
                        &key,
                        format!("VNI {}; a VNI has 24 bits", out_of_range(vni, &VNI_RANGE)),
                    );
                    None
                }
            };
            if let (Some(vid), Some(vni)) = (vid, vni) {
                vnis.push((vid, vni));
            }
        }
        if self.errors.len() != errors_before {
            self.poison.overlay_vnis = true;
        }
        vnis.sort();
        OverlaySettings {
            vnis,
            udp_port: self.bounded(
                "overlay.udp_port",
                raw.udp_port,
                u64::from(DEFAULT_UDP_PORT),
                OVERLAY_UDP_PORT_RANGE,
            ),
            arp_proxy: raw.arp_proxy.unwrap_or(false),
            max_remote_macs: self.bounded(
                "overlay.max_remote_macs",
                raw.max_remote_macs,
                DEFAULT_MAX_REMOTE_MACS as u64,
                MAX_REMOTE_MACS_RANGE,
            ),
        }
    }

    /// `[host.overlay]`: the peers and MACs that convert, in file order (a peer or
    /// MAC that does not is an error, and the overlay is poisoned).
    pub(crate) fn host_overlay(&mut self, raw: RawHostOverlay) -> HostOverlay {
        let errors_before = self.errors.len();
        if raw.vni.is_some() {
            self.error(
                "host.overlay.vni",
                "the VLAN ↔ VNI map is the profile's (the same on every host): write it as `vni` under [overlay] in the profile",
            );
        }
        let local_ip = match parse_endpoint(&raw.local_ip) {
            Ok(ip) => ip,
            Err(m) => {
                self.error("host.overlay.local_ip", m);
                IpAddr::from([0, 0, 0, 0])
            }
        };
        let mut peers = Vec::new();
        for (i, p) in raw.peers.iter().enumerate() {
            let key = format!("host.overlay.peers[{i}]");
            let p = match p {
                RawPeer::Table(t) => t,
                RawPeer::Bare(s) => {
                    self.error(&key, bare_peer(s));
                    continue;
                }
            };
            let address = match parse_endpoint(&p.address) {
                Ok(ip) => Some(ip),
                Err(m) => {
                    self.error(&format!("{key}.address"), m);
                    None
                }
            };
            let mut macs = Vec::new();
            for (j, m) in p.macs.iter().enumerate() {
                let mkey = format!("{key}.macs[{j}]");
                let vid = self.vid(&format!("{mkey}.vlan"), m.vlan);
                let mac = self.mac(&format!("{mkey}.mac"), &m.mac);
                if let (Some(vid), Some(mac)) = (vid, mac) {
                    macs.push((vid, mac));
                }
            }
            if let Some(address) = address {
                peers.push(StaticPeer { address, macs });
            }
        }
        if self.errors.len() != errors_before {
            self.poison.overlay_host = true;
        }
        HostOverlay {
            local_ip,
            interface: raw.interface,
            fragment: raw.fragment.unwrap_or(false),
            peers,
        }
    }
}

/// A tunnel endpoint's address as written: one IPv4 or IPv6 address.
fn parse_endpoint(s: &str) -> Result<IpAddr, String> {
    match s.parse::<IpAddr>() {
        Ok(ip) => Ok(ip),
        Err(_) if s.contains('/') => Err(format!(
            "{s:?} is not an IP address: an endpoint is one address, not a prefix"
        )),
        Err(_) => Err(format!(
            "{s:?} is not an IP address: expected IPv4 like \"198.18.100.1\" or IPv6 like \"2001:db8::1\""
        )),
    }
}

/// Why `ip` cannot be a tunnel endpoint, if it cannot.
fn endpoint_problem(ip: IpAddr) -> Option<&'static str> {
    if ip.is_unspecified() {
        return Some("the unspecified address cannot be a tunnel endpoint");
    }
    if ip.is_multicast() {
        return Some(
            "a multicast address cannot be a tunnel endpoint (the overlay replicates to each endpoint by unicast)",
        );
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Some("the broadcast address cannot be a tunnel endpoint");
    }
    None
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// `[overlay]` on its own: at least one VLAN, each VLAN and VNI once, the
    /// sizes in their bounds.
    pub(crate) fn overlay(&mut self, o: &OverlaySettings, poisoned: bool) {
        if o.vnis.is_empty() && !poisoned {
            self.error(
                "overlay.vni",
                "the overlay carries no VLAN: map at least one, like vni = { 10 = 10010 }",
            );
        }
        let mut vnis: HashMap<Vni, Vid> = HashMap::new();
        for (i, (vid, vni)) in o.vnis.iter().enumerate() {
            let key = join_key("overlay.vni", &vid.to_string());
            if o.vnis[..i].iter().any(|(v, _)| v == vid) {
                self.error(&key, format!("VLAN {vid} is mapped twice"));
                continue;
            }
            if let Some(first) = vnis.get(vni) {
                self.error(
                    &key,
                    format!("VNI {vni} is already the VNI of VLAN {first}: a VNI carries one VLAN"),
                );
                continue;
            }
            vnis.insert(*vni, *vid);
        }
        if !OVERLAY_UDP_PORT_RANGE.contains(&o.udp_port) {
            self.error(
                "overlay.udp_port",
                out_of_range(o.udp_port, &OVERLAY_UDP_PORT_RANGE),
            );
        }
        if !MAX_REMOTE_MACS_RANGE.contains(&o.max_remote_macs) {
            self.error(
                "overlay.max_remote_macs",
                out_of_range(o.max_remote_macs, &MAX_REMOTE_MACS_RANGE),
            );
        }
    }

    /// `[host.overlay]` against `[overlay]`: usable endpoint addresses of one
    /// family, each peer once and not this host, at most [`MAX_ENDPOINTS`] of them,
    /// their MACs unicast, in mapped VLANs, behind one peer each, and not a MAC of
    /// this host (`local_mac`: the key of the local port that claims a (VLAN, MAC),
    /// if one does).
    pub(crate) fn host_overlay(
        &mut self,
        o: &OverlaySettings,
        h: &HostOverlay,
        poisoned: bool,
        local_mac: impl Fn(Vid, MacAddr) -> Option<String>,
    ) {
        // A value stage 1 refused: indices and the endpoint are not the file's.
        if poisoned {
            return;
        }
        if let Some(m) = endpoint_problem(h.local_ip) {
            self.error("host.overlay.local_ip", m);
        }
        if h.peers.len() > MAX_ENDPOINTS {
            self.error(
                &format!("host.overlay.peers[{MAX_ENDPOINTS}]"),
                format!(
                    "{} peers: an overlay knows at most {MAX_ENDPOINTS} endpoints",
                    h.peers.len()
                ),
            );
        }
        let mapped: Vec<Vid> = o.vnis.iter().map(|(v, _)| *v).collect();
        let mut seen: HashMap<IpAddr, usize> = HashMap::new();
        let mut behind: HashMap<(Vid, MacAddr), IpAddr> = HashMap::new();
        for (i, p) in h.peers.iter().enumerate() {
            let key = format!("host.overlay.peers[{i}]");
            let akey = format!("{key}.address");
            if let Some(m) = endpoint_problem(p.address) {
                self.error(&akey, m);
            } else if p.address == h.local_ip {
                self.error(
                    &akey,
                    format!(
                        "{} is this host's own endpoint (host.overlay.local_ip); list the other hosts",
                        p.address
                    ),
                );
            } else if p.address.is_ipv4() != h.local_ip.is_ipv4() {
                self.error(
                    &akey,
                    format!(
                        "{} is {}, but local_ip {} is {}: the tunnels of one endpoint use one family",
                        p.address,
                        family(p.address),
                        h.local_ip,
                        family(h.local_ip)
                    ),
                );
            }
            if let Some(&first) = seen.get(&p.address) {
                let msg = format!(
                    "peer {} is listed twice (first as {})",
                    p.address,
                    self.sources
                        .describe(&format!("host.overlay.peers[{first}]"))
                );
                self.error(&akey, msg);
                continue;
            }
            seen.insert(p.address, i);
            for (j, (vid, mac)) in p.macs.iter().enumerate() {
                let mkey = format!("{key}.macs[{j}]");
                let problem = if mac.is_group() {
                    Some(format!(
                        "{mac} is a multicast address; a guest MAC behind a peer must be unicast"
                    ))
                } else if *mac == MacAddr::ZERO {
                    Some("00:00:00:00:00:00 is not a usable MAC address".to_owned())
                } else if !mapped.contains(vid) {
                    Some(if mapped.is_empty() {
                        format!("VLAN {vid} is not mapped to a VNI: [overlay] vni maps no VLAN")
                    } else {
                        format!(
                            "VLAN {vid} is not mapped to a VNI (overlay.vni maps {})",
                            vid_list(&mapped)
                        )
                    })
                } else if let Some(first) = behind.get(&(*vid, *mac)) {
                    Some(format!(
                        "MAC {mac} in VLAN {vid} is already behind peer {first}: a MAC sits behind one endpoint"
                    ))
                } else {
                    local_mac(*vid, *mac).map(|k| {
                        format!(
                            "MAC {mac} in VLAN {vid} is a MAC of this host ({}); it cannot be behind a peer too",
                            self.sources.describe(&k)
                        )
                    })
                };
                match problem {
                    Some(m) => self.error(&mkey, m),
                    None => {
                        behind.insert((*vid, *mac), p.address);
                    }
                }
            }
        }
    }
}

// ---- spec ---------------------------------------------------------------------------

/// The spec's overlay, of a configuration that passed the checks.
pub(crate) fn spec(o: &OverlaySettings, h: &HostOverlay) -> OverlaySpec {
    OverlaySpec {
        vnis: o.vnis.clone(),
        udp_port: u16::try_from(o.udp_port).unwrap_or(DEFAULT_UDP_PORT),
        arp_proxy: o.arp_proxy,
        local_ip: h.local_ip,
        interface: h.interface.clone(),
        fragment: h.fragment,
        peers: h
            .peers
            .iter()
            .map(|p| OverlayPeer {
                address: p.address,
                macs: p.macs.clone(),
                addresses: Vec::new(),
            })
            .collect(),
        max_remote_macs: usize::try_from(o.max_remote_macs).unwrap_or(DEFAULT_MAX_REMOTE_MACS),
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `overlay = off`, or `overlay.vni.<vlan>` (one key per VLAN), `overlay.udp_port`,
/// `overlay.arp_proxy` and `overlay.max_remote_macs`, defaults included.
pub(crate) fn flatten(f: &mut Flat, o: Option<&OverlaySettings>) {
    let Some(o) = o else {
        put(f, "overlay", OFF);
        return;
    };
    for (vid, vni) in &o.vnis {
        put(f, &format!("overlay.vni.{vid}"), vni);
    }
    put(f, "overlay.udp_port", o.udp_port);
    put(f, "overlay.arp_proxy", o.arp_proxy);
    put(f, "overlay.max_remote_macs", o.max_remote_macs);
}

/// `host.overlay.local_ip`, `host.overlay.interface`, `host.overlay.fragment` and one
/// `host.overlay.peer.<address>` per static peer (its MACs sorted, as
/// `[VLAN MAC, …]`: their order has no meaning); nothing without `[host.overlay]`.
pub(crate) fn flatten_host(f: &mut Flat, h: Option<&HostOverlay>) {
    let Some(h) = h else {
        return;
    };
    put(f, "host.overlay.local_ip", h.local_ip);
    put(f, "host.overlay.interface", opt(h.interface.as_deref()));
    put(f, "host.overlay.fragment", h.fragment);
    for p in &h.peers {
        let mut macs: Vec<(Vid, MacAddr)> = p.macs.clone();
        macs.sort();
        let texts: Vec<String> = macs.iter().map(|(v, m)| format!("{v} {m}")).collect();
        put(
            f,
            &join_key("host.overlay.peer", &p.address.to_string()),
            list(&texts),
        );
    }
}
