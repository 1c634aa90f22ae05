//! The IPv6 common case (`stages/ipv6_common.rs`) decides exactly as the four IPv6
//! stages do. A switch with the strict template's IPv6 set — RA guard, DHCPv6
//! guard, ND inspection and IPv6 Source Guard `ip-mac` on the guests, the router
//! port and the uplink trusted — and bound addresses of every kind (an `nd` binding
//! with time to spare, one due for a refresh, one ended, a `dhcpv6` one) takes
//! random sequences of IPv6 packets: TCP, UDP to ordinary and DHCPv6 ports, ICMPv6
//! of every kind, from bound, unbound, foreign and unspecified sources, with
//! foreign MACs, odd payload lengths, extension headers and mutated bytes, at
//! moments before and after a refresh is due. One copy of the switch takes each
//! packet through `process` (the common case applies), the other through
//! `process_traced` (traced frames always take the stages): the verdicts, and the
//! whole switch state after each packet, are equal. And the common case does
//! apply — the test counts the packets it took.

use portcullis_dataplane::bindings::{BindingSource, NewBinding};
use portcullis_dataplane::dump::dump;
use portcullis_dataplane::stages::ipv6_common;
use portcullis_dataplane::trace::Trace;
use portcullis_dataplane::wire::ipv6::{self, next_header as nh};
use portcullis_dataplane::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv6Addr};

mod support;
use support::ipv6::*;
use support::*;

const UPLINK: PortId = PortId(0);
const ROUTER: PortId = PortId(1);
const A: PortId = PortId(2);
const B: PortId = PortId(3);
/// Nd bindings last this long.
const LIFETIME: u32 = 60;

fn switch() -> Switch {
    let nd = |trusted| {
        Some(NdInspectionSpec {
            trusted,
            max_addresses: 8,
            rate_limit_pps: Some(1000),
            mode: EnforceMode::Enforce,
            binding_lifetime_secs: LIFETIME,
        })
    };
    let v6 = |trusted| {
        Some(Dhcpv6GuardSpec {
            trusted,
            rate_limit_pps: Some(1000),
            mode: EnforceMode::Enforce,
        })
    };
    let ra = |trusted| {
        Some(RaGuardSpec {
            trusted,
            mode: EnforceMode::Enforce,
        })
    };
    let sg = Some(Ipv6SourceGuardSpec {
        check: SourceGuard::IpMac,
        mode: EnforceMode::Enforce,
    });
    let mut up = trunk("uplink", &[10], Some(10));
    (up.features.ra_guard, up.features.nd_inspection) = (ra(true), nd(true));
    up.features.dhcpv6_guard = v6(true);
    let mut r = access("r1", 10, Some(mac(1)));
    (r.features.ra_guard, r.features.nd_inspection) = (ra(true), nd(true));
    r.features.dhcpv6_guard = v6(true);
    let mut guests = vec![];
    for (name, m) in [("a", 2), ("b", 3)] {
        let mut g = access(name, 10, Some(mac(m)));
        (g.features.ra_guard, g.features.nd_inspection) = (ra(false), nd(false));
        g.features.dhcpv6_guard = v6(false);
        g.features.ipv6_source_guard = sg;
        guests.push(g);
    }
    let [a, b] = <[PortSpec; 2]>::try_from(guests).unwrap();
    let mut sw = Switch::new(&switch_spec("common", vec![up, r, a, b]), Timestamp(0)).unwrap();
    // a: ula(2) with its whole lifetime, ula(20) due for a refresh from 31 s on,
    // ula(21) ended at 10 s; b: ula(3) from DHCPv6, ll(3) by ND.
    let bind = |sw: &mut Switch, ip: Ipv6Addr, m: u8, port, lease_secs, source| {
        let b = NewBinding {
            vid: vid(10),
            ip: IpAddr::V6(ip),
            mac: mac(m),
            port,
            lease_secs,
            source,
            duid: None,
        };
        sw.install_binding(b, Timestamp(0)).unwrap();
    };
    bind(&mut sw, ula(2), 2, A, Some(LIFETIME), BindingSource::Nd);
    bind(&mut sw, ula(20), 2, A, Some(40), BindingSource::Nd);
    bind(&mut sw, ula(21), 2, A, Some(10), BindingSource::Nd);
    bind(&mut sw, ula(3), 3, B, Some(3600), BindingSource::Dhcpv6);
    bind(&mut sw, ll(3), 3, B, Some(LIFETIME), BindingSource::Nd);
    sw
}

/// One random IPv6 packet and where and when it arrives.
#[derive(Clone, Debug)]
struct Packet {
    port: PortId,
    frame: Vec<u8>,
    secs: u64,
}

fn upper(protocol: u8, selector: u16, body: &[u8]) -> Vec<u8> {
    let mut u = match protocol {
        nh::TCP => {
            let mut t = vec![0; 20];
            t[..2].copy_from_slice(&40000u16.to_be_bytes());
            t[2..4].copy_from_slice(&selector.to_be_bytes());
            t[12] = 5 << 4;
            t
        }
        nh::UDP => {
            let mut u = vec![0; 8];
            u[..2].copy_from_slice(&40000u16.to_be_bytes());
            u[2..4].copy_from_slice(&selector.to_be_bytes());
            u
        }
        _ => vec![selector as u8, 0, 0, 0, 0, 1, 0, 1],
    };
    u.extend_from_slice(body);
    if protocol == nh::UDP {
        let len = u.len() as u16;
        u[4..6].copy_from_slice(&len.to_be_bytes());
    }
    u
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    let src = prop::sample::select(vec![
        ula(2),
        ula(20),
        ula(21),
        ula(3),
        ll(3),
        ula(9),
        Ipv6Addr::UNSPECIFIED,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
    ]);
    let protocol = prop::sample::select(vec![nh::TCP, nh::UDP, nh::ICMPV6, nh::HOP_BY_HOP, 59]);
    let selector = prop_oneof![
        prop::sample::select(vec![
            53u16, 546, 547, 128, 129, 130, 133, 134, 135, 136, 137, 143
        ]),
        any::<u16>(),
    ];
    let port = prop::sample::select(vec![UPLINK, ROUTER, A, B]);
    let src_mac = prop::sample::select(vec![mac(1), mac(2), mac(3), mac(9)]);
    let body = prop::collection::vec(any::<u8>(), 0..24);
    let length_skew = prop_oneof![8 => Just(0i32), 1 => -8..8i32];
    let mutation = prop::option::weighted(0.2, (0usize..80, any::<u8>()));
    (
        (src, protocol, selector, body),
        (port, src_mac, length_skew, mutation),
        prop::sample::select(vec![1u64, 35, 70]),
    )
        .prop_map(
            |((src, protocol, selector, body), (port, src_mac, skew, mutation), secs)| {
                let dst = ula(7);
                let mut u = upper(protocol, selector, &body);
                if protocol == nh::HOP_BY_HOP {
                    // A Hop-by-Hop header (PadN) before ICMPv6.
                    let mut h = vec![nh::ICMPV6, 0, 1, 4, 0, 0, 0, 0];
                    h.extend_from_slice(&upper(nh::ICMPV6, selector, &body));
                    u = h;
                }
                let plen = (u.len() as i32 + skew).clamp(0, 0xffff) as u16;
                let mut l3 = vec![0; ipv6::HEADER_LEN];
                ipv6::emit_header(&mut l3, u.len() as u16, protocol, 64, &src, &dst).unwrap();
                l3[4..6].copy_from_slice(&plen.to_be_bytes());
                l3.extend_from_slice(&u);
                if let Some((at, byte)) = mutation
                    && at < l3.len()
                {
                    l3[at] = byte;
                }
                let frame = eth6(mac(7), src_mac, &l3);
                Packet { port, frame, secs }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn the_common_case_decides_as_the_stages_do(packets in prop::collection::vec(arb_packet(), 1..12)) {
        let base = switch();
        let (mut fast, mut staged) = (base.clone(), base);
        for p in &packets {
            let now = Timestamp::from_secs(p.secs);
            let rx = IngressFrame { data: &p.frame, tag: None };
            let v = fast.process(now, p.port, &rx);
            let mut t = Trace::new();
            let w = staged.process_traced(now, p.port, &rx, &mut t);
            prop_assert_eq!(v, w, "{:?}", p);
            prop_assert_eq!(dump(&fast, now), dump(&staged, now), "{:?}", p);
        }
    }
}

/// The generator reaches the common case, and the cases around it.
#[test]
fn the_common_case_is_taken_for_a_bound_guests_ordinary_packets() {
    let sw = switch();
    let view_of = |frame: &[u8]| {
        FrameView::parse(&IngressFrame {
            data: frame,
            tag: None,
        })
        .unwrap()
    };
    let pkt = |src: Ipv6Addr, m: MacAddr, protocol: u8, selector: u16| {
        let u = upper(protocol, selector, b"payload");
        let mut l3 = vec![0; ipv6::HEADER_LEN];
        ipv6::emit_header(&mut l3, u.len() as u16, protocol, 64, &src, &ula(7)).unwrap();
        l3.extend_from_slice(&u);
        eth6(mac(7), m, &l3)
    };
    let passes = |port, frame: &[u8], secs| {
        let view = view_of(frame);
        let l3 = &frame[14..];
        ipv6_common::passes(&sw, port, vid(10), &view, l3, Timestamp::from_secs(secs))
    };
    // a's own, live, not due: TCP, UDP to DNS, an echo request.
    assert!(passes(A, &pkt(ula(2), mac(2), nh::TCP, 443), 1));
    assert!(passes(A, &pkt(ula(2), mac(2), nh::UDP, 53), 1));
    assert!(passes(A, &pkt(ula(2), mac(2), nh::ICMPV6, 128), 1));
    // b's DHCPv6 address (never refreshed by ND).
    assert!(passes(B, &pkt(ula(3), mac(3), nh::UDP, 53), 35));
    // The stages' business: DHCPv6 ports, router and neighbour messages.
    assert!(!passes(A, &pkt(ula(2), mac(2), nh::UDP, 547), 1));
    assert!(!passes(A, &pkt(ula(2), mac(2), nh::UDP, 546), 1));
    for ty in 133..=137 {
        assert!(!passes(A, &pkt(ula(2), mac(2), nh::ICMPV6, ty), 1), "{ty}");
    }
    // A refresh due, an ended lease, another's address, another MAC, no binding.
    assert!(!passes(A, &pkt(ula(20), mac(2), nh::TCP, 443), 35));
    assert!(passes(A, &pkt(ula(20), mac(2), nh::TCP, 443), 1));
    assert!(!passes(A, &pkt(ula(21), mac(2), nh::TCP, 443), 35));
    assert!(!passes(A, &pkt(ula(3), mac(2), nh::TCP, 443), 1));
    assert!(!passes(A, &pkt(ula(2), mac(9), nh::TCP, 443), 1));
    assert!(!passes(A, &pkt(ula(9), mac(2), nh::TCP, 443), 1));
    // Trusted ports glean: the stages.
    assert!(!passes(ROUTER, &pkt(ula(2), mac(1), nh::TCP, 443), 1));
}
