//! Builders the scenario tests share: addresses, port and switch specs, frames
//! (etherparse and dhcproto write them), sending a frame and reading the result.
//! Where two tests need different frames, both are here under names that say how
//! they differ.

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::{Encodable, Encoder};
use etherparse::{
    ArpHardwareId, ArpOperation, ArpPacket, EtherType, Ethernet2Header, PacketBuilder,
    SingleVlanHeader, VlanId, VlanPcp,
};
use portcullis_dataplane::bindings::{BindingSource, NewBinding};
use portcullis_dataplane::*;
use std::net::{IpAddr, Ipv4Addr};

// ---------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------

pub fn vid(v: u16) -> Vid {
    Vid::new(v).unwrap()
}

/// Guest MAC number `i`: 52:54:00:00:00:i.
pub fn mac(i: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 0, i])
}

/// Address `last` of the test subnet: 198.18.10.last.
pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 10, last)
}

/// The router / DHCP server beyond the uplink.
pub const ROUTER_MAC: MacAddr = MacAddr([0, 0x1b, 0x21, 0, 0, 1]);
/// The router's and DHCP server's address: 198.18.10.254.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 254);

// ---------------------------------------------------------------------------------
// Specs
// ---------------------------------------------------------------------------------

/// An uplink: an 802.1Q trunk carrying `vids`, untagged frames in `native`; no feature.
pub fn trunk(name: &str, vids: &[u16], native: Option<u16>) -> PortSpec {
    PortSpec {
        name: name.into(),
        role: PortRole::Uplink,
        vlan: VlanMode::Trunk {
            allowed: VlanSet::from_vids(vids.iter().map(|v| vid(*v))),
            native: native.map(vid),
        },
        security: SecurityPolicy::default(),
        initial_mac: None,
        features: PortFeatures::default(),
    }
}

/// A guest port on access VLAN `v`: every policy reject, no feature.
pub fn access(name: &str, v: u16, initial_mac: Option<MacAddr>) -> PortSpec {
    PortSpec {
        name: name.into(),
        role: PortRole::Guest,
        vlan: VlanMode::Access(vid(v)),
        security: SecurityPolicy::default(),
        initial_mac,
        features: PortFeatures::default(),
    }
}

/// A switch of `ports`: a 64-entry MAC table aging in 300 s, default binding and host
/// tables, no ACL, no static binding.
pub fn switch_spec(name: &str, ports: Vec<PortSpec>) -> SwitchSpec {
    SwitchSpec {
        name: name.into(),
        mac_table_size: 64,
        mac_aging_secs: 300,
        ports,
        mac_acls: vec![],
        max_bindings: DEFAULT_MAX_BINDINGS,
        host_table_size: DEFAULT_HOST_TABLE_SIZE,
        overlay: None,
        static_bindings: vec![],
        arp_acls: vec![],
    }
}

/// Port security with at most `max` MACs, no sticky learning, no aging.
pub fn port_security(max: u16, violation: Violation) -> PortSecuritySpec {
    PortSecuritySpec {
        max_macs: max,
        violation,
        sticky: false,
        aging: SecureAging::None,
        aging_secs: 0,
        static_macs: vec![],
        sticky_macs: vec![],
    }
}

/// A configured binding of `m` to `addr` in VLAN 10 on port number `port`.
pub fn static_binding(m: MacAddr, addr: Ipv4Addr, port: usize) -> StaticBindingSpec {
    StaticBindingSpec {
        mac: m,
        ip: IpAddr::V4(addr),
        vid: vid(10),
        port,
    }
}

// ---------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------

/// An Ethernet II frame carrying `payload`, padded to the 60-byte minimum.
pub fn eth(dst: MacAddr, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Ethernet2Header {
        source: src.0,
        destination: dst.0,
        ether_type: EtherType(ethertype),
    }
    .to_bytes()
    .to_vec();
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

/// A 60-byte untagged IPv4-typed frame of zeros: the plain unicast/broadcast probe.
pub fn frame(dst: MacAddr, src: MacAddr) -> Vec<u8> {
    eth(dst, src, 0x0800, &[])
}

/// A 64-byte IPv4-typed frame of zeros, 802.1Q-tagged with VLAN `tag` if given (the
/// same length tagged or not).
pub fn frame64(dst: MacAddr, src: MacAddr, tag: Option<u16>) -> Vec<u8> {
    let ipv4 = EtherType(0x0800);
    let mut f = Ethernet2Header {
        source: src.0,
        destination: dst.0,
        ether_type: if tag.is_some() {
            EtherType(0x8100)
        } else {
            ipv4
        },
    }
    .to_bytes()
    .to_vec();
    if let Some(v) = tag {
        let tag = SingleVlanHeader {
            pcp: VlanPcp::ZERO,
            drop_eligible_indicator: false,
            vlan_id: VlanId::try_new(v).unwrap(),
            ether_type: ipv4,
        };
        f.extend_from_slice(&tag.to_bytes());
    }
    f.resize(64, 0);
    f
}

/// An untagged IPv4/UDP datagram carrying `payload`.
pub fn udp4(
    dst: MacAddr,
    src: MacAddr,
    (sip, dip): (Ipv4Addr, Ipv4Addr),
    (sport, dport): (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src.0, dst.0)
        .ipv4(sip.octets(), dip.octets(), 64)
        .udp(sport, dport)
        .write(&mut f, payload)
        .unwrap();
    f
}

/// An Ethernet/IPv4 ARP message (RFC 826), padded to 60 bytes.
pub fn arp(
    dst: MacAddr,
    src: MacAddr,
    op: u16,
    sender: (MacAddr, Ipv4Addr),
    target: (MacAddr, Ipv4Addr),
) -> Vec<u8> {
    let a = ArpPacket::new(
        ArpHardwareId::ETHERNET,
        EtherType::IPV4,
        ArpOperation(op),
        &sender.0.0,
        &sender.1.octets(),
        &target.0.0,
        &target.1.octets(),
    )
    .unwrap();
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src.0, dst.0)
        .arp(a)
        .write(&mut f)
        .unwrap();
    f.resize(f.len().max(60), 0);
    f
}

/// The BOOTP/DHCP message (transaction 7) of `kind` about client `chaddr`; server
/// messages (OFFER, ACK, NAK) are replies naming [`SERVER_IP`] with a 3600 s lease.
fn dhcp_message(kind: MessageType, chaddr: MacAddr, ciaddr: Ipv4Addr, yiaddr: Ipv4Addr) -> Vec<u8> {
    let mut m = Message::new_with_id(
        7,
        ciaddr,
        yiaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        &chaddr.0,
    );
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    if is_server(kind) {
        m.set_opcode(Opcode::BootReply);
        m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER_IP));
        m.opts_mut().insert(DhcpOption::AddressLeaseTime(3600));
    }
    let mut payload = Vec::new();
    m.encode(&mut Encoder::new(&mut payload)).unwrap();
    payload
}

fn is_server(kind: MessageType) -> bool {
    matches!(
        kind,
        MessageType::Offer | MessageType::Ack | MessageType::Nak
    )
}

/// A DHCP message from `src` (MAC) about client `chaddr`. Clients broadcast from
/// `ciaddr` (68 → 67); the server answers the client unicast, to `chaddr` and
/// `yiaddr` (67 → 68).
pub fn dhcp(
    kind: MessageType,
    src: MacAddr,
    chaddr: MacAddr,
    ciaddr: Ipv4Addr,
    yiaddr: Ipv4Addr,
) -> Vec<u8> {
    let payload = dhcp_message(kind, chaddr, ciaddr, yiaddr);
    if is_server(kind) {
        udp4(chaddr, src, (SERVER_IP, yiaddr), (67, 68), &payload)
    } else {
        let to = (ciaddr, Ipv4Addr::BROADCAST);
        udp4(MacAddr::BROADCAST, src, to, (68, 67), &payload)
    }
}

/// As [`dhcp`], but every message is broadcast (Ethernet and IP), clients send from
/// 0.0.0.0, and the server's replies too go to 255.255.255.255.
pub fn dhcp_broadcast(
    kind: MessageType,
    src: MacAddr,
    chaddr: MacAddr,
    yiaddr: Ipv4Addr,
) -> Vec<u8> {
    let payload = dhcp_message(kind, chaddr, Ipv4Addr::UNSPECIFIED, yiaddr);
    let (sip, ports) = if is_server(kind) {
        (SERVER_IP, (67, 68))
    } else {
        (Ipv4Addr::UNSPECIFIED, (68, 67))
    };
    let to = (sip, Ipv4Addr::BROADCAST);
    udp4(MacAddr::BROADCAST, src, to, ports, &payload)
}

// ---------------------------------------------------------------------------------
// Sending and reading results
// ---------------------------------------------------------------------------------

/// `data` received untagged on `port` at `now`.
pub fn send_at(sw: &mut Switch, now: Timestamp, port: PortId, data: &[u8]) -> Verdict {
    sw.process(now, port, &IngressFrame { data, tag: None })
}

/// `data` received untagged on `port`, `secs` seconds after the clock's origin.
pub fn send_secs(sw: &mut Switch, secs: u64, port: PortId, data: &[u8]) -> Verdict {
    send_at(sw, Timestamp::from_secs(secs), port, data)
}

/// `data` received untagged on `port`, `ms` milliseconds after the clock's origin.
pub fn send_ms(sw: &mut Switch, ms: u64, port: PortId, data: &[u8]) -> Verdict {
    send_at(sw, Timestamp::from_millis(ms), port, data)
}

/// The output ports of a verdict, by number.
pub fn out(v: &Verdict) -> Vec<u16> {
    v.out_ports().iter().map(|p| p.0).collect()
}

/// The events since the last drain.
pub fn events(sw: &mut Switch) -> Vec<EventKind> {
    sw.drain_events().map(|e| e.kind).collect()
}

/// Drops of `r` on port `p`: (received, sent).
pub fn drops(sw: &Switch, p: PortId, r: DropReason) -> (u64, u64) {
    let c = sw.counters(p).unwrap();
    (c.rx_drops[r as usize], c.tx_drops[r as usize])
}

/// A binding of `m` to `addr` in VLAN 10 on `port`, made through the API (no lease
/// end).
pub fn api_binding(m: MacAddr, addr: Ipv4Addr, port: PortId) -> NewBinding {
    NewBinding {
        vid: vid(10),
        ip: IpAddr::V4(addr),
        mac: m,
        port,
        lease_secs: None,
        source: BindingSource::Api,
        duid: None,
    }
}

/// A binding of `m` to `addr` in VLAN 10 on `port` as DHCP snooping learns it, with
/// a lease of `lease_secs`.
pub fn dhcp_binding(m: MacAddr, addr: Ipv4Addr, port: PortId, lease_secs: u32) -> NewBinding {
    NewBinding {
        lease_secs: Some(lease_secs),
        source: BindingSource::Dhcp,
        ..api_binding(m, addr, port)
    }
}

// ---------------------------------------------------------------------------------
// The overlay
// ---------------------------------------------------------------------------------

/// The overlay lab of the overlay tests: ports `up` (trunk 10, 20), `overlay`
/// (VLAN 10 → VNI 10010, 20 → 10020, endpoint 198.18.100.1), guests `a` and `b` in
/// VLAN 10 (MACs 1, 2), `c` in VLAN 20 (MAC 3); endpoint 198.18.100.2 has MAC 0x21
/// in VLAN 10, 198.18.100.3 has 0x31 in VLAN 10 and 0x32 in VLAN 20.
pub fn overlay_spec(arp_proxy: bool) -> SwitchSpec {
    let mut overlay_port = trunk(overlay::PORT_NAME, &[10, 20], None);
    overlay_port.role = PortRole::Overlay;
    let mut spec = switch_spec(
        "sw",
        vec![
            trunk("up", &[10, 20], None),
            overlay_port,
            access("a", 10, Some(mac(1))),
            access("b", 10, Some(mac(2))),
            access("c", 20, Some(mac(3))),
        ],
    );
    let addr = |s: &str| s.parse::<IpAddr>().unwrap();
    let vni = |v| Vni::new(v).unwrap();
    spec.overlay = Some(OverlaySpec {
        vnis: vec![(vid(10), vni(10010)), (vid(20), vni(10020))],
        udp_port: wire::vxlan::DEFAULT_UDP_PORT,
        arp_proxy,
        local_ip: addr("198.18.100.1"),
        interface: None,
        fragment: false,
        peers: vec![
            OverlayPeer {
                address: addr("198.18.100.2"),
                macs: vec![(vid(10), mac(0x21))],
                addresses: vec![],
            },
            OverlayPeer {
                address: addr("198.18.100.3"),
                macs: vec![(vid(10), mac(0x31)), (vid(20), mac(0x32))],
                addresses: vec![],
            },
        ],
        max_remote_macs: 16,
    });
    spec
}

/// A VXLAN datagram (header and `inner`) of VNI `vni`.
pub fn vxlan_datagram(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut d = wire::vxlan::header(Vni::new(vni).unwrap()).to_vec();
    d.extend_from_slice(inner);
    d
}
