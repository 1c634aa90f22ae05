//! Duplicate IP detection and the IP-seen table, as a network engineer meets them:
//! two guests claiming one address by ARP (the "ghost adapter"), the hold-down that
//! keeps one conflict from flooding the event log, a binding for an address another
//! MAC still answers for, DAI dropping a spoof before it is ever seen, and the table
//! staying within its capacity — each step asserting verdicts, events, counters and
//! the table's contents.

use portcullis_dataplane::events::BindingRemoval;
use portcullis_dataplane::hosts::IP_CONFLICT_HOLD_DOWN_SECS;
use portcullis_dataplane::*;
use std::net::{IpAddr, Ipv4Addr};

mod support;
use support::*;

const UPLINK: PortId = PortId(0);
const A: PortId = PortId(1);
const B: PortId = PortId(2);

const GATEWAY: Ipv4Addr = SERVER_IP;

/// An uplink (trunk, native VLAN 10) and `guests` guest ports g1… in VLAN 10 with
/// MACs mac(1)…; `dai` turns ARP inspection on (enforce) on the guests.
fn switch(guests: u8, table: usize, dai: bool) -> Switch {
    let mut ports = vec![trunk("uplink", &[10], Some(10))];
    for i in 1..=guests {
        let mut p = access(&format!("g{i}"), 10, Some(mac(i)));
        p.features.arp_inspection = dai.then_some(ArpInspectionSpec {
            trusted: false,
            validate_src_mac: true,
            validate_dst_mac: false,
            validate_ip: false,
            rate_limit_pps: None,
            acl: None,
            mode: EnforceMode::Enforce,
        });
        ports.push(p);
    }
    let mut spec = switch_spec("hosts", ports);
    spec.mac_table_size = 256;
    spec.max_bindings = 64;
    spec.host_table_size = table;
    Switch::new(&spec, Timestamp(0)).unwrap()
}

/// An ARP message (RFC 826) from Ethernet source `src`: requests are broadcast,
/// replies go to the router; the target MAC is zero.
fn arp(oper: u16, src: MacAddr, sender: (MacAddr, Ipv4Addr), target: Ipv4Addr) -> Vec<u8> {
    let dst = if oper == 1 {
        MacAddr::BROADCAST
    } else {
        ROUTER_MAC
    };
    support::arp(dst, src, oper, sender, (MacAddr([0; 6]), target))
}

/// Guest `i` asks for the gateway (who-has), from its own MAC and `addr`.
fn who_has(i: u8, addr: Ipv4Addr) -> Vec<u8> {
    arp(1, mac(i), (mac(i), addr), GATEWAY)
}

/// Guest `i` announces `addr` (gratuitous ARP: sender = target).
fn announce(i: u8, addr: Ipv4Addr) -> Vec<u8> {
    arp(1, mac(i), (mac(i), addr), addr)
}

fn conflicts(sw: &mut Switch) -> Vec<EventKind> {
    sw.drain_events()
        .map(|e| e.kind)
        .filter(|k| matches!(k, EventKind::IpConflict { .. }))
        .collect()
}

fn observed(sw: &Switch, p: PortId) -> u64 {
    sw.counters(p).unwrap().observed[DropReason::IpConflict as usize]
}

fn seen(sw: &Switch, addr: Ipv4Addr, secs: u64) -> Option<HostEntry> {
    sw.hosts()
        .lookup(vid(10), IpAddr::V4(addr), Timestamp::from_secs(secs))
}

#[test]
fn two_guests_claiming_one_address_raise_one_conflict_naming_both() {
    let mut sw = switch(2, 64, false);
    let v = send_secs(&mut sw, 1, A, &who_has(1, ip(5)));
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    assert_eq!(
        seen(&sw, ip(5), 1).map(|e| (e.mac, e.port)),
        Some((mac(1), A))
    );
    assert!(conflicts(&mut sw).is_empty(), "one claimant is no conflict");

    // The clone comes up with the same static address and announces it.
    let v = send_secs(&mut sw, 2, B, &announce(2, ip(5)));
    assert!(
        matches!(v, Verdict::Forward(_)),
        "detection, not enforcement: the announcement still goes out: {v:?}"
    );
    assert_eq!(
        conflicts(&mut sw),
        vec![EventKind::IpConflict {
            vid: 10,
            ip: IpAddr::V4(ip(5)),
            port: B,
            mac: mac(2),
            claim: IpClaimSource::Arp,
            owner: A,
            owner_mac: mac(1),
            owner_by: IpClaimSource::Arp,
        }]
    );
    assert_eq!(observed(&sw, B), 1);
    assert_eq!(observed(&sw, A), 0);
    assert_eq!(sw.counters(B).unwrap().rx_dropped(), 0);
    // The table follows the latest claimant (what the neighbours' ARP caches hold).
    let e = seen(&sw, ip(5), 2).unwrap();
    assert_eq!(
        (e.mac, e.port, e.first_seen),
        (mac(2), B, Timestamp::from_secs(2))
    );
    let st = sw.hosts().stats();
    assert_eq!((st.conflicts_reported, st.conflicts_suppressed), (1, 0));
}

#[test]
fn repeated_claims_within_the_hold_down_are_counted_not_reported() {
    let mut sw = switch(2, 64, false);
    send_secs(&mut sw, 1, A, &who_has(1, ip(5)));
    send_secs(&mut sw, 2, B, &who_has(2, ip(5)));
    assert_eq!(conflicts(&mut sw).len(), 1);
    // Both keep answering for the address: every claim flips the holder and
    // conflicts, but the (VLAN, IP) is in hold-down.
    for t in 3..40 {
        let (port, i) = if t % 2 == 0 { (B, 2) } else { (A, 1) };
        send_secs(&mut sw, t, port, &announce(i, ip(5)));
    }
    assert!(
        conflicts(&mut sw).is_empty(),
        "no new event within the hold-down"
    );
    assert_eq!(
        observed(&sw, A) + observed(&sw, B),
        1 + 37,
        "each claim counted"
    );
    let st = sw.hosts().stats();
    assert_eq!((st.conflicts_reported, st.conflicts_suppressed), (1, 37));
    // A different address is not held down by this one.
    send_secs(&mut sw, 40, A, &who_has(1, ip(6)));
    send_secs(&mut sw, 41, B, &who_has(2, ip(6)));
    assert_eq!(conflicts(&mut sw).len(), 1);
    // Once the hold-down has passed, the next claim is reported again.
    let after = 2 + IP_CONFLICT_HOLD_DOWN_SECS;
    send_secs(&mut sw, after, B, &announce(2, ip(5))); // A answered last (t = 39)
    let c = conflicts(&mut sw);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(matches!(
        c[0],
        EventKind::IpConflict {
            port: B,
            owner: A,
            ..
        }
    ));
}

#[test]
fn probes_and_own_refreshes_claim_nothing_and_replies_do() {
    let mut sw = switch(2, 64, false);
    send_secs(&mut sw, 1, A, &who_has(1, ip(5)));
    send_secs(&mut sw, 2, A, &announce(1, ip(5)));
    send_secs(&mut sw, 3, A, &arp(2, mac(1), (mac(1), ip(5)), GATEWAY));
    // An RFC 5227 probe from B for .5: sender 0.0.0.0 asks, it does not claim.
    send_secs(
        &mut sw,
        4,
        B,
        &arp(1, mac(2), (mac(2), Ipv4Addr::UNSPECIFIED), ip(5)),
    );
    assert!(conflicts(&mut sw).is_empty());
    assert_eq!(observed(&sw, B), 0);
    assert_eq!(
        seen(&sw, ip(5), 4).unwrap().last_seen,
        Timestamp::from_secs(3)
    );
    assert_eq!(
        seen(&sw, ip(5), 4).unwrap().first_seen,
        Timestamp::from_secs(1)
    );
    // B answers for .5 anyway (an ARP reply): that claims it.
    send_secs(&mut sw, 5, B, &arp(2, mac(2), (mac(2), ip(5)), GATEWAY));
    assert_eq!(conflicts(&mut sw).len(), 1);
    assert_eq!(sw.hosts().len(), 1, "the probe's 0.0.0.0 was not recorded");
}

#[test]
fn an_arp_claim_on_a_bound_address_names_the_binding() {
    let mut sw = switch(2, 64, false);
    let b = api_binding(mac(1), ip(7), A);
    sw.install_binding(b, Timestamp::from_secs(1)).unwrap();
    let _ = sw.drain_events().count();
    assert!(
        seen(&sw, ip(7), 1).is_none(),
        "an API binding is no sighting"
    );
    let v = send_secs(&mut sw, 2, B, &announce(2, ip(7)));
    assert!(matches!(v, Verdict::Forward(_)), "no DAI here: {v:?}");
    assert_eq!(
        conflicts(&mut sw),
        vec![EventKind::IpConflict {
            vid: 10,
            ip: IpAddr::V4(ip(7)),
            port: B,
            mac: mac(2),
            claim: IpClaimSource::Arp,
            owner: A,
            owner_mac: mac(1),
            owner_by: IpClaimSource::Binding,
        }]
    );
    // The binding holder's own ARP is no conflict with its binding — but the
    // address was just seen from B, so A's claim conflicts with that sighting
    // (held down here: same address).
    send_secs(&mut sw, 3, A, &announce(1, ip(7)));
    assert!(conflicts(&mut sw).is_empty());
    assert_eq!(observed(&sw, A), 1);
}

/// The committed ACK of a DHCP lease of `addr` to guest `i` on `port`, as the runtime
/// releases it (the binding is installed and the client counted as seen).
fn lease(sw: &mut Switch, secs: u64, i: u8, port: PortId, addr: Ipv4Addr) -> bool {
    let fwd = Forward {
        vid: vid(10),
        pcp_dei: 0,
        body_offset: 12,
        out: PortSet::single(port),
        rewrite: Rewrite::None,
        tunnel: Default::default(),
    };
    let ack = portcullis_dataplane::stages::dhcp_snooping::BindingUpdate {
        vid: vid(10),
        ip: std::net::IpAddr::V4(addr),
        mac: mac(i),
        port,
        lease_secs: Some(3600),
        source: portcullis_dataplane::bindings::BindingSource::Dhcp,
        duid: None,
    };
    sw.release_held(UPLINK, &fwd, &ack, 342, true, Timestamp::from_secs(secs))
}

#[test]
fn a_lease_of_an_address_another_mac_answers_for_is_a_conflict() {
    let mut sw = switch(2, 64, false);
    // A uses .9 without a lease (static configuration in the guest).
    send_secs(&mut sw, 1, A, &who_has(1, ip(9)));
    // The DHCP server then leases .9 to B: the held ACK's binding is committed.
    assert!(lease(&mut sw, 2, 2, B, ip(9)));
    assert_eq!(
        conflicts(&mut sw),
        vec![EventKind::IpConflict {
            vid: 10,
            ip: IpAddr::V4(ip(9)),
            port: B,
            mac: mac(2),
            claim: IpClaimSource::Binding,
            owner: A,
            owner_mac: mac(1),
            owner_by: IpClaimSource::Arp,
        }]
    );
    assert_eq!(observed(&sw, B), 1);
    assert!(
        sw.bindings().iter().any(|e| e.binding.mac == mac(2)),
        "detection only: the binding is installed"
    );
    assert_eq!(
        seen(&sw, ip(9), 2).map(|e| (e.mac, e.port)),
        Some((mac(2), B)),
        "the ACK is a sighting of its client"
    );
    // B's renewal after the hold-down is no conflict: B is the holder now.
    assert!(lease(&mut sw, 3 + IP_CONFLICT_HOLD_DOWN_SECS, 2, B, ip(9)));
    assert!(conflicts(&mut sw).is_empty());
    assert_eq!(observed(&sw, B), 1);
    // A still answering for .9 is the conflict, seen from the other side.
    send_secs(
        &mut sw,
        4 + IP_CONFLICT_HOLD_DOWN_SECS,
        A,
        &announce(1, ip(9)),
    );
    let c = conflicts(&mut sw);
    assert!(
        matches!(
            c.as_slice(),
            [EventKind::IpConflict {
                port: A,
                owner: B,
                owner_by: IpClaimSource::Binding,
                ..
            }]
        ),
        "{c:?}"
    );
}

#[test]
fn a_binding_replacing_another_macs_binding_is_a_conflict() {
    let mut sw = switch(2, 64, false);
    let nb = |m, p| dhcp_binding(m, ip(11), p, 3600);
    sw.install_binding(nb(mac(1), A), Timestamp::from_secs(1))
        .unwrap();
    // Another MAC's live lease holds the address: refused, nothing reported …
    assert!(matches!(
        sw.install_binding(nb(mac(2), B), Timestamp::from_secs(2)),
        Err(ControlError::BindingHeld(_))
    ));
    assert!(conflicts(&mut sw).is_empty());
    // … unless replaced explicitly (the API's `replace`): that is the conflict.
    sw.replace_binding(nb(mac(2), B), Timestamp::from_secs(2))
        .unwrap();
    let c = conflicts(&mut sw);
    assert!(
        matches!(
            c.as_slice(),
            [EventKind::IpConflict {
                port: B,
                owner: A,
                claim: IpClaimSource::Binding,
                owner_by: IpClaimSource::Binding,
                ..
            }]
        ),
        "{c:?}"
    );
}

#[test]
fn a_released_address_may_be_taken_by_another_host() {
    let mut sw = switch(2, 64, false);
    let b = dhcp_binding(mac(1), ip(12), A, 3600);
    sw.install_binding(b, Timestamp::from_secs(1)).unwrap();
    send_secs(&mut sw, 2, A, &announce(1, ip(12)));
    assert!(seen(&sw, ip(12), 2).is_some());
    assert!(sw.remove_binding(
        vid(10),
        IpAddr::V4(ip(12)),
        BindingRemoval::Release,
        Timestamp::from_secs(3)
    ));
    assert!(seen(&sw, ip(12), 3).is_none(), "A gave the address up");
    send_secs(&mut sw, 4, B, &announce(2, ip(12)));
    assert!(conflicts(&mut sw).is_empty());
}

#[test]
fn a_sighting_older_than_the_aging_time_is_no_conflict() {
    let mut sw = switch(2, 64, false);
    send_secs(&mut sw, 1, A, &who_has(1, ip(5)));
    sw.tick(Timestamp::from_secs(301));
    assert_eq!(sw.hosts().len(), 0);
    assert_eq!(sw.hosts().stats().aged_out, 1);
    send_secs(&mut sw, 302, B, &who_has(2, ip(5)));
    assert!(conflicts(&mut sw).is_empty());
    assert_eq!(seen(&sw, ip(5), 302).unwrap().port, B);
}

#[test]
fn dai_drops_the_spoof_before_it_is_seen() {
    let mut sw = switch(2, 64, true);
    let b = api_binding(mac(1), ip(5), A);
    sw.install_binding(b, Timestamp::from_secs(1)).unwrap();
    let _ = sw.drain_events().count();
    assert!(matches!(
        send_secs(&mut sw, 2, A, &announce(1, ip(5))),
        Verdict::Forward(_)
    ));
    let v = send_secs(&mut sw, 3, B, &announce(2, ip(5)));
    assert_eq!(v, Verdict::Drop(DropReason::ArpNoBinding));
    assert!(conflicts(&mut sw).is_empty(), "DAI reports it, as a drop");
    assert_eq!(observed(&sw, B), 0);
    assert_eq!(seen(&sw, ip(5), 3).unwrap().mac, mac(1));
}

#[test]
fn arp_from_the_uplink_is_not_tracked() {
    let mut sw = switch(1, 64, false);
    send_secs(&mut sw, 1, A, &who_has(1, ip(5)));
    let reply = arp(2, ROUTER_MAC, (ROUTER_MAC, ip(5)), ip(5));
    send_secs(&mut sw, 2, UPLINK, &reply);
    assert!(conflicts(&mut sw).is_empty());
    assert_eq!(sw.hosts().len(), 1);
    assert_eq!(seen(&sw, ip(5), 2).unwrap().mac, mac(1));
}

#[test]
fn the_table_stays_within_its_capacity_and_counts_evictions() {
    let mut sw = switch(10, 4, false);
    for i in 1..=10u8 {
        send_secs(&mut sw, i as u64, PortId(i as u16), &who_has(i, ip(i)));
    }
    assert_eq!(sw.hosts().len(), 4);
    assert_eq!(sw.hosts().capacity(), 4);
    assert_eq!(sw.hosts().stats().evicted, 6);
    let left: Vec<IpAddr> = sw
        .hosts()
        .entries(Timestamp::from_secs(10))
        .iter()
        .map(|h| h.ip)
        .collect();
    let newest: Vec<IpAddr> = (7..=10).map(|i| IpAddr::V4(ip(i))).collect();
    assert_eq!(left, newest, "the least recently seen went first");
    // An evicted address claimed by another MAC is not known any more: no conflict.
    send_secs(&mut sw, 11, PortId(2), &who_has(2, ip(1)));
    assert!(conflicts(&mut sw).is_empty());
}

#[test]
fn the_table_survives_an_apply_with_ports_renumbered() {
    let mut old = switch(2, 64, false);
    send_secs(&mut old, 1, A, &who_has(1, ip(1)));
    send_secs(&mut old, 1, A, &who_has(1, ip(3)));
    send_secs(&mut old, 2, B, &who_has(2, ip(2)));
    send_secs(&mut old, 3, B, &announce(2, ip(1))); // a conflict: .1 now seen from g2
    assert_eq!(conflicts(&mut old).len(), 1);
    // The new spec drops g1: g2 becomes port 1.
    let new_spec = SwitchSpec {
        name: "hosts".into(),
        mac_table_size: 256,
        mac_aging_secs: 300,
        ports: vec![
            PortSpec {
                name: "uplink".into(),
                role: PortRole::Uplink,
                vlan: VlanMode::Trunk {
                    allowed: VlanSet::from_vids([vid(10)]),
                    native: Some(vid(10)),
                },
                security: SecurityPolicy::default(),
                initial_mac: None,
                features: PortFeatures::default(),
            },
            PortSpec {
                name: "g2".into(),
                role: PortRole::Guest,
                vlan: VlanMode::Access(vid(10)),
                security: SecurityPolicy::default(),
                initial_mac: Some(mac(2)),
                features: PortFeatures::default(),
            },
        ],
        mac_acls: vec![],
        max_bindings: 64,
        static_bindings: vec![],
        arp_acls: vec![],
        host_table_size: 64,
        overlay: None,
    };
    let mut new = Switch::new(&new_spec, Timestamp::from_secs(4)).unwrap();
    new.carry_over_from(old, Timestamp::from_secs(4));
    let e = seen(&new, ip(2), 4).expect("g2's address moved");
    assert_eq!((e.mac, e.port), (mac(2), PortId(1)));
    let e = seen(&new, ip(1), 4).expect("g2's claim on .1 moved");
    assert_eq!(
        (e.mac, e.port, e.first_seen),
        (mac(2), PortId(1), Timestamp::from_secs(3))
    );
    assert!(seen(&new, ip(3), 4).is_none(), "g1's port is gone");
    assert_eq!(new.hosts().len(), 2);
    assert_eq!(new.hosts().stats().conflicts_reported, 1, "counters move");
}
