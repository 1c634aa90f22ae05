//! The VXLAN overlay (RFC 7348) as the switch sees it: which VLANs travel between
//! hosts as which VNIs, the remote tunnel endpoints, and the remote-MAC table that
//! says behind which endpoint each remote guest MAC sits. The overlay is one port of
//! the switch (role [`PortRole::Overlay`](crate::PortRole)); its frames arrive with
//! the endpoint that sent them ([`Switch::process_tunneled`]) and leave with the
//! endpoint they go to ([`crate::TxCopy::tunnel`]).
//!
//! The control plane fills the tables — the spec's static peers, the cluster's port
//! records ([`Switch::set_overlay_peers`]) — and frames never do: there is no
//! flood-and-learn (RFC 7348 §4.1's learning is replaced by the control plane).
//!
//! Security (from a remote endpoint E): a datagram from an address that is not an
//! endpoint is dropped (`overlay_unknown_endpoint`); one whose inner source MAC is
//! not a MAC the control plane placed behind E in that VLAN is dropped
//! (`overlay_forged_source`); a VNI this host does not map, a header without the
//! I flag, or an inner 802.1Q tag (RFC 7348 §6.1: SHOULD be discarded) is dropped
//! (`overlay_bad_header`). What passes is an ordinary frame received on the overlay
//! port in the VNI's VLAN, and every later stage applies to it.
//!
//! Invariants: at most [`MAX_ENDPOINTS`] endpoints and `max_remote_macs` remote
//! MACs; a MAC that does not fit, or that another endpoint already has in that VLAN,
//! is refused and counted (`refused_macs`); an endpoint is a flood target of
//! exactly the VLANs of its MACs (head-end replication, RFC 7348 §4.2 without
//! multicast); no lookup allocates.

use crate::egress::TunnelDst;
use crate::frame::IngressFrame;
use crate::switch::Switch;
use crate::types::{MacAddr, PortId, Timestamp, Vid, VlanSet};
use crate::verdict::{DropReason, Verdict};
use crate::wire::vxlan::{self, Vni};
use rustc_hash::FxBuildHasher;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// The most remote tunnel endpoints (hosts) one switch knows.
pub const MAX_ENDPOINTS: usize = 1024;
/// Default capacity of the remote-MAC table.
pub const DEFAULT_MAX_REMOTE_MACS: usize = 65_536;
/// The overlay port's name.
pub const PORT_NAME: &str = "overlay";

/// The overlay of a switch spec: the VLAN → VNI map, this host's endpoint and the
/// static peers (without a cluster).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OverlaySpec {
    /// VLAN → VNI; each VLAN and each VNI at most once.
    pub vnis: Vec<(Vid, Vni)>,
    /// The UDP port VXLAN is sent to and received on (4789).
    pub udp_port: u16,
    /// Answer ARP requests for addresses bound behind the overlay from the binding
    /// table instead of replicating them to every endpoint.
    pub arp_proxy: bool,
    /// This host's tunnel endpoint address.
    pub local_ip: IpAddr,
    /// The underlay interface the endpoint sends and receives on (`None`: any).
    pub interface: Option<String>,
    /// Datagrams above the underlay's path MTU are fragmented by the kernel
    /// (`true`) or refused and counted (`false`).
    pub fragment: bool,
    /// Endpoints given in the configuration, with the MACs behind each.
    pub peers: Vec<OverlayPeer>,
    /// Capacity of the remote-MAC table.
    pub max_remote_macs: usize,
}

/// A remote endpoint and the guest MACs behind it (the control plane's word).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct OverlayPeer {
    pub address: IpAddr,
    /// (VLAN, MAC) of every guest MAC behind the endpoint.
    pub macs: Vec<(Vid, MacAddr)>,
}

/// What a tunneled frame's copy needs besides its port: the endpoint it goes to
/// (unicast), or every endpoint of the frame's VLAN (head-end replication).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Tunnel {
    /// No copy goes to the overlay.
    #[default]
    None,
    /// The copy to the overlay goes to this endpoint (index in the endpoint table).
    Endpoint(u16),
    /// The copy to the overlay goes to every endpoint with MACs in the frame's VLAN.
    Flood,
}

/// Counters of one remote endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub struct EndpointCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames from the endpoint whose inner source MAC is not behind it.
    pub forged_source: u64,
    /// Frames from the endpoint with a bad header or an unmapped VNI.
    pub bad_header: u64,
}

/// One remote endpoint.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub address: IpAddr,
    /// The VLANs it has guest MACs in (its flood targets).
    pub vlans: VlanSet,
    /// Its guest MACs.
    pub macs: usize,
    /// From the configuration (else: from the control plane at run time).
    pub configured: bool,
    pub counters: EndpointCounters,
}

/// The overlay's state in a running switch.
#[derive(Clone, Debug)]
pub struct Overlay {
    pub(crate) port: PortId,
    udp_port: u16,
    arp_proxy: bool,
    local_ip: IpAddr,
    interface: Option<String>,
    vni_of: Vec<Option<Vni>>,
    /// (VNI, VLAN), sorted by VNI.
    vlan_of: Vec<(Vni, Vid)>,
    configured: Vec<OverlayPeer>,
    dynamic: Vec<OverlayPeer>,
    endpoints: Vec<Endpoint>,
    by_address: HashMap<IpAddr, u16, FxBuildHasher>,
    remote: HashMap<(Vid, MacAddr), u16, FxBuildHasher>,
    max_remote_macs: usize,
    refused_macs: u64,
    refused_endpoints: u64,
    /// Datagrams from addresses that are not endpoints.
    pub unknown_endpoint: u64,
}

/// The result of replacing the control plane's peers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, serde::Serialize)]
pub struct PeersInstalled {
    pub endpoints: usize,
    pub macs: usize,
    /// MACs not installed: the table is full, or another endpoint has the MAC in
    /// that VLAN already (the first one keeps it).
    pub refused_macs: usize,
    /// Endpoints not installed: more than [`MAX_ENDPOINTS`], or this host's own.
    pub refused_endpoints: usize,
}

impl Overlay {
    pub(crate) fn new(spec: &OverlaySpec, port: PortId) -> Overlay {
        let mut vni_of = vec![None; 4096];
        for (vid, vni) in &spec.vnis {
            vni_of[vid.get() as usize] = Some(*vni);
        }
        let mut vlan_of: Vec<(Vni, Vid)> = spec.vnis.iter().map(|(v, n)| (*n, *v)).collect();
        vlan_of.sort();
        let max_remote_macs = spec.max_remote_macs.max(1);
        let mut o = Overlay {
            port,
            udp_port: spec.udp_port,
            arp_proxy: spec.arp_proxy,
            local_ip: spec.local_ip,
            interface: spec.interface.clone(),
            vni_of,
            vlan_of,
            configured: spec.peers.clone(),
            dynamic: Vec::new(),
            endpoints: Vec::new(),
            by_address: HashMap::with_capacity_and_hasher(MAX_ENDPOINTS, FxBuildHasher),
            remote: HashMap::with_capacity_and_hasher(max_remote_macs, FxBuildHasher),
            max_remote_macs,
            refused_macs: 0,
            refused_endpoints: 0,
            unknown_endpoint: 0,
        };
        o.rebuild();
        o
    }

    /// The overlay port.
    pub fn port(&self) -> PortId {
        self.port
    }
    /// The UDP port of the tunnels.
    pub fn udp_port(&self) -> u16 {
        self.udp_port
    }
    /// This host's endpoint address.
    pub fn local_ip(&self) -> IpAddr {
        self.local_ip
    }
    /// The underlay interface, if one is named.
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }
    /// Whether ARP for remote bound addresses is answered locally.
    pub fn arp_proxy(&self) -> bool {
        self.arp_proxy
    }
    /// VLAN → VNI, by VLAN.
    pub fn vnis(&self) -> impl Iterator<Item = (Vid, Vni)> + '_ {
        self.vni_of
            .iter()
            .enumerate()
            .filter_map(|(v, n)| Some((Vid::new(v as u16)?, (*n)?)))
    }
    /// The endpoints, in table order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }
    /// Every remote MAC: (VLAN, MAC, endpoint index), sorted.
    pub fn remote_macs(&self) -> Vec<(Vid, MacAddr, u16)> {
        let mut v: Vec<_> = self.remote.iter().map(|((a, b), e)| (*a, *b, *e)).collect();
        v.sort();
        v
    }
    /// MACs and endpoints refused since the switch was built.
    pub fn refused(&self) -> (u64, u64) {
        (self.refused_macs, self.refused_endpoints)
    }
    /// The control plane's peers (not the configured ones), as last installed.
    pub fn dynamic_peers(&self) -> &[OverlayPeer] {
        &self.dynamic
    }

    /// The VNI of `vid`, if the overlay carries it.
    #[inline]
    pub fn vni(&self, vid: Vid) -> Option<Vni> {
        *self.vni_of.get(vid.get() as usize)?
    }
    /// The VLAN of `vni`, if this host maps it.
    #[inline]
    pub fn vlan(&self, vni: Vni) -> Option<Vid> {
        let i = self.vlan_of.binary_search_by_key(&vni, |(n, _)| *n).ok()?;
        Some(self.vlan_of[i].1)
    }
    /// The endpoint `mac` sits behind in `vid`, if it is remote.
    #[inline]
    pub fn remote(&self, vid: Vid, mac: MacAddr) -> Option<u16> {
        if self.remote.is_empty() {
            return None;
        }
        self.remote.get(&(vid, mac)).copied()
    }
    /// The index of the endpoint at `address`.
    #[inline]
    pub fn endpoint_at(&self, address: IpAddr) -> Option<u16> {
        self.by_address.get(&address).copied()
    }

    /// The tunnel destinations of a copy of a frame of `vid` to the overlay: one
    /// endpoint, or each endpoint with MACs in `vid`.
    pub fn destinations(&self, tunnel: Tunnel, vid: Vid) -> Destinations<'_> {
        let vni = self.vni(vid);
        let (single, all) = match (tunnel, vni) {
            (_, None) | (Tunnel::None, _) => (None, [].iter()),
            (Tunnel::Endpoint(e), _) => (self.endpoints.get(e as usize), [].iter()),
            (Tunnel::Flood, _) => (None, self.endpoints.iter()),
        };
        Destinations {
            single,
            all,
            vid,
            vni: vni.unwrap_or(Vni::new(0).expect("0 is a VNI")),
            port: self.udp_port,
        }
    }

    /// Replaces the control plane's peers (the configured ones stay) and rebuilds
    /// the tables; counters of endpoints that stay are kept.
    pub(crate) fn set_peers(&mut self, peers: Vec<OverlayPeer>) -> PeersInstalled {
        self.dynamic = peers;
        self.rebuild()
    }

    /// Takes the control plane's peers and every endpoint's counters from the
    /// overlay of the switch this one replaces (an apply).
    pub(crate) fn carry_from(&mut self, old: &Overlay) {
        self.dynamic = old.dynamic.clone();
        self.rebuild();
        for e in &mut self.endpoints {
            if let Some(i) = old.endpoint_at(e.address) {
                e.counters = old.endpoints[i as usize].counters;
            }
        }
        self.unknown_endpoint = old.unknown_endpoint;
    }

    fn rebuild(&mut self) -> PeersInstalled {
        let old: HashMap<IpAddr, EndpointCounters> = self
            .endpoints
            .iter()
            .map(|e| (e.address, e.counters))
            .collect();
        self.endpoints.clear();
        self.by_address.clear();
        self.remote.clear();
        let mut r = PeersInstalled::default();
        let peers = self
            .configured
            .iter()
            .map(|p| (p, true))
            .chain(self.dynamic.iter().map(|p| (p, false)));
        for (peer, configured) in peers {
            let e = match self.by_address.get(&peer.address) {
                Some(e) => *e,
                None if self.endpoints.len() >= MAX_ENDPOINTS || peer.address == self.local_ip => {
                    r.refused_endpoints += 1;
                    continue;
                }
                None => {
                    let e = self.endpoints.len() as u16;
                    self.endpoints.push(Endpoint {
                        address: peer.address,
                        vlans: VlanSet::default(),
                        macs: 0,
                        configured,
                        counters: old.get(&peer.address).copied().unwrap_or_default(),
                    });
                    self.by_address.insert(peer.address, e);
                    e
                }
            };
            for (vid, mac) in &peer.macs {
                if self.vni(*vid).is_none() {
                    continue; // a VLAN this host does not carry over the overlay
                }
                if self.remote.len() >= self.max_remote_macs
                    || self.remote.contains_key(&(*vid, *mac))
                {
                    r.refused_macs += 1;
                    continue;
                }
                self.remote.insert((*vid, *mac), e);
                let ep = &mut self.endpoints[e as usize];
                ep.vlans.insert(*vid);
                ep.macs += 1;
                r.macs += 1;
            }
        }
        r.endpoints = self.endpoints.len();
        self.refused_macs += r.refused_macs as u64;
        self.refused_endpoints += r.refused_endpoints as u64;
        r
    }
}

/// The tunnel destinations of one copy ([`Overlay::destinations`]).
#[derive(Clone, Debug)]
pub struct Destinations<'a> {
    single: Option<&'a Endpoint>,
    all: std::slice::Iter<'a, Endpoint>,
    vid: Vid,
    vni: Vni,
    port: u16,
}

impl Iterator for Destinations<'_> {
    type Item = TunnelDst;
    #[inline]
    fn next(&mut self) -> Option<TunnelDst> {
        let e = match self.single.take() {
            Some(e) => e,
            None => self.all.by_ref().find(|e| e.vlans.contains(self.vid))?,
        };
        Some(TunnelDst {
            remote: SocketAddr::new(e.address, self.port),
            vni: self.vni,
        })
    }
}

impl Switch {
    /// The overlay, if the switch has one.
    pub fn overlay(&self) -> Option<&Overlay> {
        self.overlay.as_ref()
    }

    /// Replaces the control plane's overlay peers (the cluster's view of which
    /// guest MACs sit behind which host). Control path: allocates.
    pub fn set_overlay_peers(&mut self, peers: Vec<OverlayPeer>) -> Option<PeersInstalled> {
        Some(self.overlay.as_mut()?.set_peers(peers))
    }

    /// The overlay's checks of a VXLAN datagram (`payload`: the UDP payload) from
    /// `peer`: the inner frame, tagged with its VLAN as metadata, and the sending
    /// endpoint — or why it is dropped.
    #[inline]
    fn decapsulate<'a>(
        &self,
        peer: IpAddr,
        payload: &'a [u8],
    ) -> Result<(IngressFrame<'a>, u16), (DropReason, Option<u16>)> {
        let Some(o) = self.overlay.as_ref() else {
            return Err((DropReason::OverlayUnknownEndpoint, None));
        };
        let Some(e) = o.endpoint_at(peer) else {
            return Err((DropReason::OverlayUnknownEndpoint, None));
        };
        let bad = (DropReason::OverlayBadHeader, Some(e));
        let (vni, inner) = vxlan::parse(payload).map_err(|_| bad)?;
        let vid = o.vlan(vni).ok_or(bad)?;
        if inner.len() < 14 || matches!(inner[12..14], [0x81, 0x00] | [0x88, 0xa8]) {
            return Err(bad);
        }
        let src = MacAddr(inner[6..12].try_into().map_err(|_| bad)?);
        if o.remote(vid, src) != Some(e) {
            return Err((DropReason::OverlayForgedSource, Some(e)));
        }
        let tag = crate::frame::VlanTag {
            tpid: 0x8100,
            tci: vid.get(),
        };
        Ok((
            IngressFrame {
                data: inner,
                tag: Some(tag),
            },
            e,
        ))
    }

    /// Decides one VXLAN datagram received on the overlay port `port` from `peer`
    /// (`payload`: the UDP payload, header and inner frame): the overlay's checks
    /// (see the module comment), then the pipeline on the inner frame. A forwarded
    /// frame's bytes are the inner frame, `payload[vxlan::HEADER_LEN..]`.
    pub fn process_tunneled(
        &mut self,
        now: Timestamp,
        port: PortId,
        peer: IpAddr,
        payload: &[u8],
    ) -> Verdict {
        if self.overlay.as_ref().is_none_or(|o| o.port != port) {
            return self.refuse_tunneled(port, payload, DropReason::OverlayUnknownEndpoint, None);
        }
        match self.decapsulate(peer, payload) {
            Ok((inner, e)) => {
                if let Some(c) = self.endpoint_counters(e) {
                    c.rx_frames += 1;
                    c.rx_bytes += payload.len() as u64;
                }
                self.process(now, port, &inner)
            }
            Err((reason, e)) => self.refuse_tunneled(port, payload, reason, e),
        }
    }

    fn refuse_tunneled(
        &mut self,
        port: PortId,
        payload: &[u8],
        reason: DropReason,
        e: Option<u16>,
    ) -> Verdict {
        if let Some(c) = self.counters.get_mut(port.index()) {
            c.rx_frames += 1;
            c.rx_bytes += payload.len() as u64;
            c.rx_drop(reason);
        }
        match (e.and_then(|e| self.endpoint_counters(e)), reason) {
            (Some(c), DropReason::OverlayForgedSource) => c.forged_source += 1,
            (Some(c), _) => c.bad_header += 1,
            (None, _) => {
                if let Some(o) = self.overlay.as_mut() {
                    o.unknown_endpoint += 1;
                }
            }
        }
        Verdict::Drop(reason)
    }

    #[inline]
    fn endpoint_counters(&mut self, e: u16) -> Option<&mut EndpointCounters> {
        let o = self.overlay.as_mut()?;
        Some(&mut o.endpoints.get_mut(e as usize)?.counters)
    }

    /// The trace's record of a forwarded frame's tunnel decision.
    pub(crate) fn tunnel_step(&self, tunnel: Tunnel, vid: Vid) -> crate::trace::Step {
        let o = self.overlay.as_ref();
        let vni = o.and_then(|o| o.vni(vid));
        let endpoint = match tunnel {
            Tunnel::Endpoint(e) => o
                .and_then(|o| o.endpoints.get(e as usize))
                .map(|e| e.address),
            _ => None,
        };
        let copies = o.map_or(0, |o| o.destinations(tunnel, vid).count()) as u16;
        crate::trace::Step::new(
            crate::trace::Stage::Overlay,
            crate::trace::Outcome::Pass,
            crate::trace::Detail::Tunnel {
                vid,
                vni,
                endpoint,
                copies,
            },
        )
    }

    /// Counts a forwarded frame's copies to the overlay on their endpoints.
    #[inline]
    pub(crate) fn count_tunneled(&mut self, tunnel: Tunnel, vid: Vid, bytes: u64) {
        let Some(o) = self.overlay.as_mut() else {
            return;
        };
        match tunnel {
            Tunnel::None => {}
            Tunnel::Endpoint(e) => {
                if let Some(ep) = o.endpoints.get_mut(e as usize) {
                    ep.counters.tx_frames += 1;
                    ep.counters.tx_bytes += bytes;
                }
            }
            Tunnel::Flood => {
                for ep in o.endpoints.iter_mut().filter(|ep| ep.vlans.contains(vid)) {
                    ep.counters.tx_frames += 1;
                    ep.counters.tx_bytes += bytes;
                }
            }
        }
    }
}
