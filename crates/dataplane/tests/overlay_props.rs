//! The overlay's promises under any input (`overlay.rs`): whatever datagram arrives
//! from whatever address, the switch neither panics nor allocates; it counts the
//! datagram once on the overlay port; and what it forwards comes from an endpoint,
//! carries a source MAC the control plane placed behind that endpoint, and goes to
//! local guests only (never an uplink, never back into the overlay).

use portcullis_dataplane::*;
use proptest::prelude::*;
use std::net::IpAddr;

mod support;
use support::*;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

const OVERLAY: PortId = PortId(1);

fn peer() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        Just("198.18.100.2".parse().unwrap()),
        Just("198.18.100.3".parse().unwrap()),
        Just("198.18.100.1".parse().unwrap()),
        any::<[u8; 4]>().prop_map(IpAddr::from),
    ]
}

/// Datagrams near the valid ones: a good header and an inner frame whose MACs come
/// from a small set (so that some pass), or any bytes.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let macs = prop_oneof![
        Just(mac(1)),
        Just(mac(2)),
        Just(mac(3)),
        Just(mac(0x21)),
        Just(mac(0x31)),
        Just(mac(0x32)),
        Just(MacAddr::BROADCAST),
        any::<[u8; 6]>().prop_map(MacAddr),
    ];
    let vni = prop_oneof![Just(10010u32), Just(10020), 0u32..=0xff_ffff];
    let framed =
        (vni, macs.clone(), macs, any::<u16>(), 0usize..80).prop_map(|(vni, dst, src, et, len)| {
            let mut inner = eth(dst, src, et, &vec![0x5a; len]);
            inner.truncate(14 + len);
            vxlan_datagram(vni, &inner)
        });
    prop_oneof![framed, proptest::collection::vec(any::<u8>(), 0..120)]
}

proptest! {
    #[test]
    fn any_datagram_is_counted_once_and_reaches_local_guests_only(
        traffic in proptest::collection::vec((peer(), datagram()), 1..40)
    ) {
        let mut sw = Switch::new(&overlay_spec(true), Timestamp(0)).unwrap();
        let remote: Vec<(IpAddr, MacAddr)> = vec![
            ("198.18.100.2".parse().unwrap(), mac(0x21)),
            ("198.18.100.3".parse().unwrap(), mac(0x31)),
            ("198.18.100.3".parse().unwrap(), mac(0x32)),
        ];
        for (i, (from, d)) in traffic.iter().enumerate() {
            let before = sw.counters(OVERLAY).unwrap().rx_frames;
            let v = sw.process_tunneled(Timestamp(1_000 + i as u64), OVERLAY, *from, d);
            prop_assert_eq!(sw.counters(OVERLAY).unwrap().rx_frames, before + 1);
            if let Verdict::Forward(fwd) = v {
                let src = MacAddr(d[14..20].try_into().unwrap());
                prop_assert!(remote.contains(&(*from, src)), "{from} {src}");
                for p in fwd.out.iter() {
                    prop_assert!(p.0 >= 2, "to {p:?}: only guests");
                }
                let o = sw.output(OVERLAY, &fwd, &d[8..], false);
                prop_assert!(o.copies().all(|c| c.tunnel.is_none()));
            }
        }
    }
}

#[test]
fn the_overlay_path_does_not_allocate_per_frame() {
    let mut spec = overlay_spec(true);
    spec.static_bindings = vec![static_binding(mac(2), ip(2), 3)];
    let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();
    let e1: IpAddr = "198.18.100.2".parse().unwrap();
    let stranger: IpAddr = "198.18.100.77".parse().unwrap();
    let frames: Vec<(PortId, Option<IpAddr>, Vec<u8>)> = vec![
        // Guests: to a remote MAC, broadcast (replicated), unknown unicast.
        (PortId(2), None, frame(mac(0x21), mac(1))),
        (PortId(2), None, frame(MacAddr::BROADCAST, mac(1))),
        (PortId(4), None, frame(mac(0x77), mac(3))),
        // An ARP request the proxy answers (b's address is bound), and one it floods.
        (
            PortId(2),
            None,
            arp(
                MacAddr::BROADCAST,
                mac(1),
                1,
                (mac(1), ip(1)),
                (MacAddr([0; 6]), ip(2)),
            ),
        ),
        (
            PortId(2),
            None,
            arp(
                MacAddr::BROADCAST,
                mac(1),
                1,
                (mac(1), ip(1)),
                (MacAddr([0; 6]), ip(9)),
            ),
        ),
        // From the overlay: good, forged, stranger, bad VNI.
        (
            OVERLAY,
            Some(e1),
            vxlan_datagram(10010, &frame(mac(1), mac(0x21))),
        ),
        (
            OVERLAY,
            Some(e1),
            vxlan_datagram(10010, &frame(mac(1), mac(0x31))),
        ),
        (
            OVERLAY,
            Some(stranger),
            vxlan_datagram(10010, &frame(mac(1), mac(0x21))),
        ),
        (
            OVERLAY,
            Some(e1),
            vxlan_datagram(4, &frame(mac(1), mac(0x21))),
        ),
    ];
    let run = |sw: &mut Switch, t: u64| {
        for (k, (port, peer, data)) in frames.iter().enumerate() {
            let now = Timestamp(t + k as u64);
            let (v, inner) = match peer {
                Some(p) => (sw.process_tunneled(now, *port, *p, data), &data[8..]),
                None => {
                    let f = IngressFrame { data, tag: None };
                    (sw.process(now, *port, &f), &data[..])
                }
            };
            if let Verdict::Forward(fwd) = v {
                let o = sw.output(*port, &fwd, inner, false);
                for c in o.copies() {
                    std::hint::black_box(c);
                }
            }
            sw.drain_emitted(|e| {
                std::hint::black_box(e.copy);
            });
        }
    };
    run(&mut sw, 1_000); // warm-up: the MAC table learns, buffers reach their size
    let ((), allocs) = support::allocations_in(|| run(&mut sw, 2_000));
    assert_eq!(allocs, 0, "allocations on the overlay's packet path");
}
