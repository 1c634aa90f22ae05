//! NIC teaming as an operator sees it: eight guests spread over two uplinks, a
//! failover when an uplink loses its link (and back, with failback), an explicit
//! failover order with a standby that carries nothing while the active is up, hash
//! policies, and a flapping link — asserting pins, output ports and events.

use portcullis_dataplane::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

mod support;
use portcullis_dataplane::dump::dump;
use support::*;

const UP1: PortId = PortId(0);
const UP2: PortId = PortId(1);

fn switch(team: Option<TeamingSpec>, guests: u8) -> Switch {
    let mut ports = vec![
        trunk("uplink1", &[10], Some(10)),
        trunk("uplink2", &[10], Some(10)),
    ];
    for i in 0..guests {
        let mut p = access(&format!("vm{i}"), 10, Some(mac(i)));
        p.features.teaming = team.clone();
        ports.push(p);
    }
    Switch::new(&switch_spec("team", ports), Timestamp(0)).unwrap()
}

fn guest(i: u8) -> PortId {
    PortId(2 + i as u16)
}

/// An IPv4/UDP datagram from `src` to the router, padded to 60 bytes.
fn ipv4(src: MacAddr, sip: [u8; 4], dip: [u8; 4]) -> Vec<u8> {
    let ends = (Ipv4Addr::from(sip), Ipv4Addr::from(dip));
    udp4(ROUTER_MAC, src, ends, (9, 9), &[0; 18])
}

fn send(sw: &mut Switch, port: PortId, data: &[u8]) -> Verdict {
    send_at(sw, Timestamp::from_secs(1), port, data)
}

fn uplinks_of(sw: &Switch, n: u8) -> Vec<Option<PortId>> {
    (0..n).map(|i| sw.uplink_of(guest(i))).collect()
}

fn moves(sw: &mut Switch) -> Vec<(PortId, Option<PortId>, PortId)> {
    sw.drain_events()
        .filter_map(|e| match e.kind {
            EventKind::UplinkMoved { port, from, to, .. } => Some((port, from, to)),
            _ => None,
        })
        .collect()
}

#[test]
fn originating_port_spreads_eight_guests_and_fails_over_and_back() {
    let mut sw = switch(None, 8);
    let pins = uplinks_of(&sw, 8);
    assert_eq!(pins.iter().filter(|p| **p == Some(UP1)).count(), 4);
    assert_eq!(pins.iter().filter(|p| **p == Some(UP2)).count(), 4);
    // A guest's broadcast leaves by its uplink only; a broadcast from an uplink
    // reaches only the guests pinned to it.
    for i in 0..8 {
        let o = out(&send(&mut sw, guest(i), &frame(MacAddr::BROADCAST, mac(i))));
        let ups: Vec<u16> = o.iter().copied().filter(|p| *p < 2).collect();
        assert_eq!(ups, vec![pins[i as usize].unwrap().0], "guest {i}");
    }
    let router = MacAddr([0, 0x1b, 0x21, 0, 0, 1]);
    for up in [UP1, UP2] {
        let o = out(&send(&mut sw, up, &frame(MacAddr::BROADCAST, router)));
        let want: Vec<u16> = (0..8)
            .filter(|i| pins[*i as usize] == Some(up))
            .map(|i| guest(i).0)
            .collect();
        assert_eq!(o, want, "broadcast from {up:?}");
    }
    let _ = sw.drain_events().count();

    // uplink1 loses its link: its four guests move to uplink2, each announced.
    let both_up = dump(&sw, Timestamp::from_secs(2));
    sw.set_link_up(UP1, false, Timestamp::from_secs(2)).unwrap();
    // The whole switch: uplink1 down and its guests re-pinned; nothing else.
    assert_changed(
        &both_up,
        &sw,
        Timestamp::from_secs(2),
        &[
            "- port uplink1: uplink, admin up, link up, oper up",
            "~ port vm0: pinned to uplink1 → uplink2",
            "~ port vm2: pinned to uplink1 → uplink2",
            "~ port vm4: pinned to uplink1 → uplink2",
            "~ port vm6: pinned to uplink1 → uplink2",
            "+ port uplink1: uplink, admin up, link down, oper down",
        ],
    );
    assert!(uplinks_of(&sw, 8).iter().all(|p| *p == Some(UP2)));
    let moved = moves(&mut sw);
    assert_eq!(moved.len(), 4);
    assert!(
        moved
            .iter()
            .all(|(_, from, to)| *from == Some(UP1) && *to == UP2)
    );
    assert_eq!(
        out(&send(&mut sw, guest(0), &frame(router, mac(0)))),
        vec![UP2.0]
    );
    // Back up, failback on: they return.
    sw.set_link_up(UP1, true, Timestamp::from_secs(3)).unwrap();
    assert_eq!(uplinks_of(&sw, 8), pins);
    assert_eq!(moves(&mut sw).len(), 4);
}

#[test]
fn without_failback_moved_guests_stay_on_the_standby() {
    let team = TeamingSpec {
        policy: TeamingPolicy::OriginatingPort,
        active: vec!["uplink1".into(), "uplink2".into()],
        standby: vec![],
        failback: false,
    };
    let mut sw = switch(Some(team), 4);
    let pins = uplinks_of(&sw, 4);
    sw.set_link_up(UP1, false, Timestamp::from_secs(2)).unwrap();
    sw.set_link_up(UP1, true, Timestamp::from_secs(3)).unwrap();
    let after = uplinks_of(&sw, 4);
    assert!(
        after.iter().all(|p| *p == Some(UP2)),
        "stayed: {after:?} (were {pins:?})"
    );
}

#[test]
fn explicit_failover_uses_the_standby_only_while_the_active_is_down() {
    let team = TeamingSpec {
        policy: TeamingPolicy::ExplicitFailover,
        active: vec!["uplink1".into()],
        standby: vec!["uplink2".into()],
        failback: true,
    };
    let mut sw = switch(Some(team), 4);
    assert!(uplinks_of(&sw, 4).iter().all(|p| *p == Some(UP1)));
    for i in 0..4 {
        let o = out(&send(&mut sw, guest(i), &frame(MacAddr::BROADCAST, mac(i))));
        assert!(
            o.contains(&UP1.0) && !o.contains(&UP2.0),
            "the standby carries nothing"
        );
    }
    sw.set_link_up(UP1, false, Timestamp::from_secs(2)).unwrap();
    assert!(uplinks_of(&sw, 4).iter().all(|p| *p == Some(UP2)));
    sw.set_link_up(UP1, true, Timestamp::from_secs(3)).unwrap();
    assert!(uplinks_of(&sw, 4).iter().all(|p| *p == Some(UP1)));
}

#[test]
fn hash_policies_are_deterministic_and_ip_hash_accepts_broadcasts_everywhere() {
    let team = |policy| TeamingSpec {
        policy,
        active: vec!["uplink1".into(), "uplink2".into()],
        standby: vec![],
        failback: true,
    };
    let mut sw = switch(Some(team(TeamingPolicy::SourceMacHash)), 2);
    let a = out(&send(
        &mut sw,
        guest(0),
        &frame(MacAddr([0, 0x1b, 0x21, 0, 0, 9]), mac(0)),
    ));
    for _ in 0..5 {
        assert_eq!(
            out(&send(
                &mut sw,
                guest(0),
                &frame(MacAddr([0, 0x1b, 0x21, 0, 0, 9]), mac(0))
            )),
            a
        );
    }

    let mut sw = switch(Some(team(TeamingPolicy::IpHash)), 1);
    let mut seen = std::collections::BTreeSet::new();
    for d in 0..32u8 {
        let o = out(&send(
            &mut sw,
            guest(0),
            &ipv4(mac(0), [198, 18, 10, 1], [198, 18, 20, d]),
        ));
        assert_eq!(o.len(), 1);
        seen.insert(o[0]);
        // The same flow always takes the same uplink.
        assert_eq!(
            out(&send(
                &mut sw,
                guest(0),
                &ipv4(mac(0), [198, 18, 10, 1], [198, 18, 20, d])
            )),
            o
        );
    }
    assert_eq!(seen.len(), 2, "flows spread over both uplinks");
    let router = MacAddr([0, 0x1b, 0x21, 0, 0, 1]);
    for up in [UP1, UP2] {
        assert_eq!(
            out(&send(&mut sw, up, &frame(MacAddr::BROADCAST, router))),
            vec![guest(0).0]
        );
    }
}

#[test]
fn a_flapping_uplink_does_not_wedge_the_switch() {
    let mut sw = switch(None, 8);
    let pins = uplinks_of(&sw, 8);
    for i in 0..50 {
        sw.set_link_up(UP1, false, Timestamp::from_millis(1000 + 2 * i))
            .unwrap();
        sw.set_link_up(UP1, true, Timestamp::from_millis(1001 + 2 * i))
            .unwrap();
    }
    assert_eq!(uplinks_of(&sw, 8), pins);
    let events = sw.drain_events().count();
    assert_eq!(
        events,
        50 * 2 * (1 + 4),
        "link changes and the moves, every one reported"
    );
    assert_eq!(
        out(&send(&mut sw, guest(0), &frame(MacAddr::BROADCAST, mac(0)))).len(),
        8
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Under random link flaps and frames: a guest's frame leaves by exactly one
    /// uplink, and it is up; a broadcast from an uplink reaches only guests pinned
    /// to it; never uplink → uplink.
    #[test]
    fn teaming_invariants(
        policy in 0u8..4,
        flaps in proptest::collection::vec((0u16..2, any::<bool>()), 0..40),
        frames in proptest::collection::vec((0u8..10, any::<bool>(), any::<u8>()), 1..60),
    ) {
        let policy = [TeamingPolicy::OriginatingPort, TeamingPolicy::SourceMacHash, TeamingPolicy::IpHash, TeamingPolicy::ExplicitFailover][policy as usize];
        let team = TeamingSpec { policy, active: vec!["uplink1".into()], standby: vec!["uplink2".into()], failback: true };
        let mut sw = switch(Some(team), 8);
        let mut t = 1u64;
        for ((up, state), (port, bcast, d)) in flaps.iter().cycle().zip(frames.iter()) {
            t += 1;
            sw.set_link_up(PortId(*up), *state, Timestamp::from_secs(t)).unwrap();
            let ingress = PortId(*port as u16);
            let dst = if *bcast { MacAddr::BROADCAST } else { MacAddr([0, 0x1b, 0x21, 0, 0, *d]) };
            let data = if ingress.0 >= 2 { ipv4(mac(*port - 2), [198, 18, 10, 1], [198, 18, 20, *d]) } else { frame(dst, MacAddr([0, 0x1b, 0x21, 0, 0, 7])) };
            let mut data = data;
            if ingress.0 >= 2 { data[..6].copy_from_slice(&dst.0); }
            let v = sw.process(Timestamp::from_secs(t), ingress, &IngressFrame { data: &data, tag: None });
            let o = v.out_ports();
            let ups: Vec<PortId> = o.iter().filter(|p| p.0 < 2).collect();
            if ingress.0 < 2 {
                prop_assert!(ups.is_empty(), "uplink → uplink");
                for g in o.iter() {
                    prop_assert_eq!(sw.uplink_of(g).filter(|_| policy != TeamingPolicy::IpHash).unwrap_or(ingress), ingress);
                }
            } else if let Verdict::Forward(_) = v {
                prop_assert!(ups.len() <= 1, "one uplink at most: {:?}", ups);
                for u in ups {
                    prop_assert!(sw.port(u).unwrap().is_up());
                }
            }
        }
    }
}
