//! The VXLAN overlay (`overlay.rs`), as a network engineer would walk it: guests on
//! this host in VLANs 10 and 20, an uplink trunk, and the overlay to two other
//! hosts (endpoints E1 and E2) whose guest MACs the control plane told us. Each step
//! checks where the copies go — which port, which endpoint, which VNI — and what
//! the switch counted.

use portcullis_dataplane::*;
use std::net::{IpAddr, SocketAddr};

mod support;
use support::*;

const UP: PortId = PortId(0);
const OVERLAY: PortId = PortId(1);
const A: PortId = PortId(2);
const B: PortId = PortId(3);
const C: PortId = PortId(4);

const E1: &str = "198.18.100.2";
const E2: &str = "198.18.100.3";
const STRANGER: &str = "198.18.100.99";

/// Remote guests: r1 behind E1 (VLAN 10); r2 (VLAN 10) behind E2.
fn r1() -> MacAddr {
    mac(0x21)
}
fn r2() -> MacAddr {
    mac(0x31)
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn vni(v: u32) -> Vni {
    Vni::new(v).unwrap()
}

/// The overlay lab of `support::overlay_spec`, without the ARP proxy.
fn switch() -> Switch {
    Switch::new(&overlay_spec(false), Timestamp(0)).unwrap()
}

/// A copy as the tests compare it: port, egress tag, tunnel endpoint and VNI.
type Copy = (u16, Option<u16>, Option<(IpAddr, u32)>);

/// Every copy of a forwarded frame.
fn copies(sw: &mut Switch, from: PortId, data: &[u8], v: &Verdict) -> Vec<Copy> {
    let Verdict::Forward(fwd) = v else {
        return vec![];
    };
    let o = sw.output(from, fwd, data, false);
    o.copies()
        .map(|c| {
            let t = c.tunnel.map(|t| {
                assert_eq!(t.remote.port(), 4789);
                (t.remote.ip(), t.vni.get())
            });
            (c.port.0, c.tci, t)
        })
        .collect()
}

fn datagram(vni_: u32, inner: &[u8]) -> Vec<u8> {
    vxlan_datagram(vni_, inner)
}

fn from_endpoint(sw: &mut Switch, e: &str, payload: &[u8]) -> Verdict {
    sw.process_tunneled(Timestamp(1_000), OVERLAY, addr(e), payload)
}

fn endpoint(sw: &Switch, e: &str) -> overlay::Endpoint {
    let o = sw.overlay().unwrap();
    o.endpoints()[o.endpoint_at(addr(e)).unwrap() as usize].clone()
}

#[test]
fn a_broadcast_goes_to_the_local_guests_one_uplink_and_once_to_each_endpoint_of_its_vlan() {
    let mut sw = switch();
    let f = frame(MacAddr::BROADCAST, mac(1));
    let v = send_secs(&mut sw, 1, A, &f);
    let got = copies(&mut sw, A, &f, &v);
    assert_eq!(
        got,
        vec![
            (UP.0, Some(10), None),
            (OVERLAY.0, None, Some((addr(E1), 10010))),
            (OVERLAY.0, None, Some((addr(E2), 10010))),
            (B.0, None, None),
        ]
    );
    assert_eq!(endpoint(&sw, E1).counters.tx_frames, 1);
    assert_eq!(endpoint(&sw, E2).counters.tx_frames, 1);

    // VLAN 20: only E2 has members there.
    let f = frame(MacAddr::BROADCAST, mac(3));
    let v = send_secs(&mut sw, 1, C, &f);
    assert_eq!(
        copies(&mut sw, C, &f, &v),
        vec![
            (UP.0, Some(20), None),
            (OVERLAY.0, None, Some((addr(E2), 10020))),
        ]
    );
    assert_eq!(endpoint(&sw, E1).counters.tx_frames, 1);
    assert_eq!(endpoint(&sw, E2).counters.tx_frames, 2);
}

#[test]
fn unicast_to_a_remote_guest_goes_only_to_its_endpoint() {
    let mut sw = switch();
    let f = frame(r2(), mac(1));
    let v = send_secs(&mut sw, 1, A, &f);
    assert_eq!(
        copies(&mut sw, A, &f, &v),
        vec![(OVERLAY.0, None, Some((addr(E2), 10010)))]
    );
    // Not in VLAN 20: r2 is a VLAN 10 guest, unknown there — flooded as unknown
    // unicast to the uplink and to E2, the only endpoint in VLAN 20.
    let f = frame(r2(), mac(3));
    let v = send_secs(&mut sw, 1, C, &f);
    assert_eq!(
        copies(&mut sw, C, &f, &v),
        vec![
            (UP.0, Some(20), None),
            (OVERLAY.0, None, Some((addr(E2), 10020)))
        ]
    );
}

#[test]
fn a_remote_guests_frame_reaches_local_guests_only() {
    let mut sw = switch();
    // Unicast from r1 to a.
    let inner = frame(mac(1), r1());
    let d = datagram(10010, &inner);
    let v = from_endpoint(&mut sw, E1, &d);
    assert_eq!(out(&v), vec![A.0]);
    assert_eq!(
        copies(&mut sw, OVERLAY, &inner, &v),
        vec![(A.0, None, None)]
    );
    // Broadcast from r1: every local guest of VLAN 10, never the uplink (split
    // horizon) nor back into the overlay.
    let inner = frame(MacAddr::BROADCAST, r1());
    let v = from_endpoint(&mut sw, E1, &datagram(10010, &inner));
    assert_eq!(out(&v), vec![A.0, B.0]);
    assert_eq!(endpoint(&sw, E1).counters.rx_frames, 2);
    // And a broadcast from the uplink does not enter the overlay.
    let f = frame64(MacAddr::BROADCAST, ROUTER_MAC, Some(10));
    let v = send_secs(&mut sw, 1, UP, &f);
    assert_eq!(out(&v), vec![A.0, B.0]);
}

#[test]
fn the_overlay_refuses_strangers_forged_sources_and_bad_headers_and_counts_each() {
    let mut sw = switch();
    let inner = frame(mac(1), r1());
    // From an address that is no endpoint.
    let v = from_endpoint(&mut sw, STRANGER, &datagram(10010, &inner));
    assert_eq!(v, Verdict::Drop(DropReason::OverlayUnknownEndpoint));
    assert_eq!(sw.overlay().unwrap().unknown_endpoint, 1);
    // E2 sends r1's MAC: r1 is behind E1.
    let v = from_endpoint(&mut sw, E2, &datagram(10010, &inner));
    assert_eq!(v, Verdict::Drop(DropReason::OverlayForgedSource));
    // E1 sends a local guest's MAC.
    let forged = frame(mac(2), mac(1));
    let v = from_endpoint(&mut sw, E1, &datagram(10010, &forged));
    assert_eq!(v, Verdict::Drop(DropReason::OverlayForgedSource));
    // r1 is in VLAN 10, not 20.
    let v = from_endpoint(&mut sw, E1, &datagram(10020, &frame(mac(3), r1())));
    assert_eq!(v, Verdict::Drop(DropReason::OverlayForgedSource));
    // A VNI this host does not map; the I flag clear; a tagged inner frame; short.
    let v = from_endpoint(&mut sw, E1, &datagram(777, &inner));
    assert_eq!(v, Verdict::Drop(DropReason::OverlayBadHeader));
    let mut no_i = datagram(10010, &inner);
    no_i[0] = 0;
    assert_eq!(
        from_endpoint(&mut sw, E1, &no_i),
        Verdict::Drop(DropReason::OverlayBadHeader)
    );
    let tagged = frame64(mac(1), r1(), Some(10));
    let v = from_endpoint(&mut sw, E1, &datagram(10010, &tagged));
    assert_eq!(v, Verdict::Drop(DropReason::OverlayBadHeader));
    let v = from_endpoint(&mut sw, E1, &datagram(10010, &inner[..10]));
    assert_eq!(v, Verdict::Drop(DropReason::OverlayBadHeader));
    let v = from_endpoint(&mut sw, E1, &[0x08, 0, 0]);
    assert_eq!(v, Verdict::Drop(DropReason::OverlayBadHeader));

    assert_eq!(drops(&sw, OVERLAY, DropReason::OverlayUnknownEndpoint).0, 1);
    assert_eq!(drops(&sw, OVERLAY, DropReason::OverlayForgedSource).0, 3);
    assert_eq!(drops(&sw, OVERLAY, DropReason::OverlayBadHeader).0, 5);
    let (e1, e2) = (endpoint(&sw, E1), endpoint(&sw, E2));
    assert_eq!((e1.counters.forged_source, e1.counters.bad_header), (2, 5));
    assert_eq!((e2.counters.forged_source, e2.counters.bad_header), (1, 0));
    assert_eq!(e1.counters.rx_frames + e2.counters.rx_frames, 0);
    // Nothing reached a guest, and nothing was learned from the refused frames.
    for p in [A, B, C, UP] {
        assert_eq!(sw.counters(p).unwrap().tx_frames, 0);
    }
    assert_eq!(sw.mac_table().lookup(vid(10), r1(), Timestamp(1_000)), None);
}

#[test]
fn the_control_plane_moves_a_guest_to_another_endpoint_and_a_claimed_mac_stays_put() {
    let mut sw = switch();
    let moving = mac(0x41);
    let at = |sw: &mut Switch| {
        let f = frame(moving, mac(1));
        let v = send_secs(sw, 1, A, &f);
        copies(sw, A, &f, &v)
    };
    let peer = |e: &str, macs: Vec<(Vid, MacAddr)>| OverlayPeer {
        address: addr(e),
        macs,
        addresses: vec![],
    };
    let r = sw
        .set_overlay_peers(vec![peer("198.18.100.4", vec![(vid(10), moving)])])
        .unwrap();
    assert_eq!((r.endpoints, r.macs, r.refused_macs), (3, 4, 0));
    assert_eq!(
        at(&mut sw),
        vec![(OVERLAY.0, None, Some((addr("198.18.100.4"), 10010)))]
    );
    // The guest migrated: its port record now names host .5.
    sw.set_overlay_peers(vec![peer("198.18.100.5", vec![(vid(10), moving)])]);
    assert_eq!(
        at(&mut sw),
        vec![(OVERLAY.0, None, Some((addr("198.18.100.5"), 10010)))]
    );
    assert!(
        sw.overlay()
            .unwrap()
            .endpoint_at(addr("198.18.100.4"))
            .is_none()
    );
    // A cluster peer cannot take a configured endpoint's MAC, nor be this host.
    let r = sw
        .set_overlay_peers(vec![
            peer("198.18.100.5", vec![(vid(10), r1())]),
            peer("198.18.100.1", vec![(vid(10), mac(0x51))]),
        ])
        .unwrap();
    assert_eq!((r.refused_macs, r.refused_endpoints), (1, 1));
    let f = frame(r1(), mac(1));
    let v = send_secs(&mut sw, 1, A, &f);
    assert_eq!(
        copies(&mut sw, A, &f, &v),
        vec![(OVERLAY.0, None, Some((addr(E1), 10010)))]
    );
}

#[test]
fn the_remote_mac_table_is_bounded_and_refuses_what_does_not_fit() {
    let mut sw = switch();
    let macs: Vec<(Vid, MacAddr)> = (0..40).map(|i| (vid(10), mac(0x80 + i))).collect();
    let r = sw
        .set_overlay_peers(vec![OverlayPeer {
            address: addr("198.18.100.7"),
            macs,
            addresses: vec![],
        }])
        .unwrap();
    // 16 entries, 3 of them configured.
    assert_eq!((r.macs, r.refused_macs), (16, 27));
    assert_eq!(sw.overlay().unwrap().remote_macs().len(), 16);
}

/// What `portcullis trace` would say of `frame` from guest `a`.
fn explained(sw: &mut Switch, frame: &[u8]) -> String {
    let mut t = trace::Trace::default();
    let f = IngressFrame {
        data: frame,
        tag: None,
    };
    sw.process_traced(Timestamp(1), A, &f, &mut t);
    t.explain(sw).into_iter().map(|e| e.text + "\n").collect()
}

#[test]
fn the_trace_shows_the_encapsulation_decision() {
    let mut sw = switch();
    let text = explained(&mut sw, &frame(r1(), mac(1)));
    assert!(
        text.contains("remote guest behind endpoint 198.18.100.2; encapsulated in VXLAN"),
        "{text}"
    );
    let text = explained(&mut sw, &frame(MacAddr::BROADCAST, mac(1)));
    assert!(
        text.contains("head-end replication, one VXLAN copy to each of 2 endpoint(s)"),
        "{text}"
    );
}

#[test]
fn an_overlay_port_without_an_overlay_or_two_overlay_ports_are_refused() {
    let mut p = trunk("overlay", &[10], None);
    p.role = PortRole::Overlay;
    let spec = switch_spec("sw", vec![p.clone(), access("a", 10, None)]);
    assert!(matches!(
        Switch::new(&spec, Timestamp(0)),
        Err(SpecError::BadOverlay(_))
    ));
    let mut q = p.clone();
    q.name = "overlay2".into();
    let mut spec = switch_spec("sw", vec![p, q]);
    spec.overlay = switch().overlay().map(|_| OverlaySpec {
        vnis: vec![(vid(10), vni(1))],
        udp_port: 4789,
        arp_proxy: false,
        local_ip: addr("198.18.100.1"),
        interface: None,
        fragment: false,
        peers: vec![],
        max_remote_macs: 4,
    });
    assert!(matches!(
        Switch::new(&spec, Timestamp(0)),
        Err(SpecError::BadOverlay(_))
    ));
    let _ = SocketAddr::new(addr(E1), 4789);
}

#[test]
fn the_arp_proxy_answers_for_bound_and_remote_addresses_and_floods_the_rest() {
    // The switch of `switch()` with arp_proxy on and b's address bound.
    let mut spec = overlay_spec(true);
    spec.static_bindings = vec![static_binding(mac(2), ip(2), B.index())];
    let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();
    sw.set_overlay_peers(vec![OverlayPeer {
        address: addr(E1),
        macs: vec![(vid(10), r1())],
        // r1's address, and one claimed for a MAC that is not behind E1 (ignored).
        addresses: vec![(vid(10), ip(50), r1()), (vid(10), ip(51), mac(2))],
    }]);
    let who_has = |target| {
        arp(
            MacAddr::BROADCAST,
            mac(1),
            1,
            (mac(1), ip(1)),
            (MacAddr([0; 6]), target),
        )
    };
    let answers = |sw: &mut Switch| {
        let mut got = Vec::new();
        sw.drain_emitted(|e| {
            let f = [e.frame.head, e.frame.body].concat();
            got.push((e.copy.port, f));
        });
        got
    };
    // b's bound address (a local guest) and r1's (remote): answered, not flooded.
    for (target, owner) in [(ip(2), mac(2)), (ip(50), r1())] {
        let v = send_secs(&mut sw, 1, A, &who_has(target));
        assert_eq!(v, Verdict::Drop(DropReason::ArpProxyAnswered));
        let got = answers(&mut sw);
        assert_eq!(got.len(), 1);
        let (port, f) = &got[0];
        assert_eq!(*port, A);
        let reply = arp(mac(1), owner, 2, (owner, target), (mac(1), ip(1)));
        assert_eq!(f, &reply, "the reply the owner would send");
    }
    // An address nobody bound (and the one claimed for a MAC not behind E1):
    // flooded as usual, replicated to E1.
    for target in [ip(9), ip(51)] {
        let v = send_secs(&mut sw, 1, A, &who_has(target));
        assert_eq!(out(&v), vec![UP.0, OVERLAY.0, B.0]);
        assert!(answers(&mut sw).is_empty());
    }
    // A probe and a gratuitous ARP are never answered.
    let probe = arp(
        MacAddr::BROADCAST,
        mac(1),
        1,
        (mac(1), std::net::Ipv4Addr::UNSPECIFIED),
        (MacAddr([0; 6]), ip(2)),
    );
    assert!(matches!(
        send_secs(&mut sw, 1, A, &probe),
        Verdict::Forward(_)
    ));
    assert_eq!(drops(&sw, A, DropReason::ArpProxyAnswered).0, 2);
}
