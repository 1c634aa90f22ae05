//! Port security and storm control, as a network engineer would walk through them:
//! each step asserts the verdict, the counters, the MAC table and the events.

use portcullis_dataplane::*;

mod support;
use portcullis_dataplane::dump::dump;
use support::*;

const UPLINK: PortId = PortId(0);
const A: PortId = PortId(1);
const B: PortId = PortId(2);
const C: PortId = PortId(3);

/// uplink + guests a, b, c on VLAN 10 with MACs :01, :02, :03; `a` gets `features`
/// and `a_security`.
fn switch(a_security: SecurityPolicy, features: PortFeatures) -> Switch {
    let mut a = access("a", 10, Some(mac(1)));
    a.security = a_security;
    a.features = features;
    let mut b = access("b", 10, Some(mac(2)));
    b.features.port_security = Some(port_security(1, Violation::Shutdown));
    let mut spec = switch_spec(
        "ps",
        vec![
            trunk("uplink", &[10], None),
            a,
            b,
            access("c", 10, Some(mac(3))),
        ],
    );
    spec.mac_table_size = 32;
    Switch::new(&spec, Timestamp::from_secs(0)).unwrap()
}

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn send(sw: &mut Switch, t: Timestamp, port: PortId, dst: MacAddr, src: MacAddr) -> Verdict {
    send_at(sw, t, port, &frame(dst, src))
}

fn capped(max: u16, violation: Violation) -> (SecurityPolicy, PortFeatures) {
    (
        SecurityPolicy {
            forged_transmits: Policy::Accept,
            ..Default::default()
        },
        PortFeatures {
            port_security: Some(port_security(max, violation)),
            errdisable_recovery_secs: Some(30),
            ..Default::default()
        },
    )
}

#[test]
fn a_mac_flood_on_a_shutdown_port_error_disables_it_and_the_rest_keep_switching() {
    let (sec, feat) = capped(2, Violation::Shutdown);
    let mut sw = switch(sec, feat);
    let bcast = MacAddr::BROADCAST;
    // The guest's own MAC plus one more: within max_macs = 2.
    assert_eq!(
        out(&send(&mut sw, at(1000), A, bcast, mac(0x40))),
        vec![0, 2, 3]
    );
    assert_eq!(sw.port(A).unwrap().secure.unwrap().count, 2);
    let within = dump(&sw, at(1000));
    // macof starts: the third source MAC is a violation → error-disabled.
    assert_eq!(
        send(&mut sw, at(1001), A, bcast, mac(0x41)),
        Verdict::Drop(DropReason::SecureMacLimit)
    );
    let p = sw.port(A).unwrap();
    assert!(p.err_disabled.is_some());
    assert_eq!(
        p.secure.unwrap().count,
        1,
        "dynamic secure MACs are forgotten on shutdown"
    );
    assert_eq!(p.secure.unwrap().violations, 1);
    // The whole switch: a is down for port security, its dynamic MAC is gone.
    assert_changed(
        &within,
        &sw,
        at(1001),
        &[
            "~ port a: guest, admin up, link up, oper up → down",
            "- port a: secure macs 2/2, violations 0",
            "~ port a: rx_frames 1 → 2",
            "~ port a: rx_bytes 60 → 120",
            "- mac vlan 10 52:54:00:00:00:40 on a (dynamic)",
            "+ port a: err-disabled by PortSecurity",
            "+ port a: secure macs 1/2, violations 1",
            "+ port a: rx_drop.secure_mac_limit 1",
        ],
    );
    // The rest of the flood: dropped at the door, nothing learned.
    for i in 0..200u8 {
        assert_eq!(
            send(&mut sw, at(1002), A, bcast, mac(i)),
            Verdict::Drop(DropReason::ErrDisabled)
        );
    }
    assert_eq!(sw.mac_table().len(), 3, "a, b and c only");
    assert_eq!(drops(&sw, A, DropReason::ErrDisabled), (200, 0));
    // Nothing goes to the error-disabled port either; b and c carry on.
    assert_eq!(
        send(&mut sw, at(1003), B, mac(1), mac(2)),
        Verdict::Drop(DropReason::ErrDisabled)
    );
    assert_eq!(drops(&sw, A, DropReason::ErrDisabled), (200, 1));
    assert_eq!(out(&send(&mut sw, at(1003), B, bcast, mac(2))), vec![0, 3]);
    assert_eq!(out(&send(&mut sw, at(1003), B, mac(3), mac(2))), vec![3]);
    let ev = events(&mut sw);
    assert!(
        matches!(ev[0], EventKind::SecureMacLearned { port: A, mac: m, sticky: false, .. } if m == mac(0x40))
    );
    assert!(matches!(
        ev[1],
        EventKind::PortSecurityViolation { port: A, vid: 10, kind: ViolationKind::TooMany, action: Violation::Shutdown, mac: m } if m == mac(0x41)
    ));
    assert_eq!(
        ev[2],
        EventKind::ErrDisabled {
            port: A,
            cause: ErrDisableCause::PortSecurity
        }
    );

    // The operator recovers it: the guest is back with its own MAC.
    let disabled = dump(&sw, at(2000));
    assert_eq!(sw.recover(A, at(2000)), Ok(true));
    assert_changed(
        &disabled,
        &sw,
        at(2000),
        &[
            "~ port a: guest, admin up, link up, oper down → up",
            "- port a: err-disabled by PortSecurity",
        ],
    );
    assert_eq!(out(&send(&mut sw, at(2001), A, mac(2), mac(1))), vec![2]);
    assert_eq!(
        events(&mut sw),
        vec![EventKind::ErrDisableRecovered {
            port: A,
            by_timer: false
        }]
    );
    // Another flood: disabled again, then the 30 s recovery interval brings it back.
    send(&mut sw, at(3000), A, bcast, mac(0x50));
    send(&mut sw, at(3000), A, bcast, mac(0x51));
    assert!(sw.port(A).unwrap().err_disabled.is_some());
    sw.tick(at(32_000));
    assert!(sw.port(A).unwrap().err_disabled.is_some(), "29 s: not yet");
    sw.tick(at(33_500));
    assert!(
        sw.port(A).unwrap().err_disabled.is_none(),
        "30 s: recovered"
    );
    assert!(events(&mut sw).contains(&EventKind::ErrDisableRecovered {
        port: A,
        by_timer: true
    }));
}

#[test]
fn protect_drops_quietly_and_restrict_reports_each_violation() {
    let (sec, feat) = capped(1, Violation::Protect);
    let mut sw = switch(sec, feat);
    for i in 0..5u8 {
        assert_eq!(
            send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(0x60 + i)),
            Verdict::Drop(DropReason::SecureMacLimit)
        );
    }
    assert_eq!(drops(&sw, A, DropReason::SecureMacLimit), (5, 0));
    assert!(sw.port(A).unwrap().err_disabled.is_none());
    assert!(events(&mut sw).is_empty(), "protect is silent");
    assert_eq!(
        out(&send(&mut sw, at(2), A, mac(2), mac(1))),
        vec![2],
        "its own MAC still works"
    );

    let (sec, feat) = capped(1, Violation::Restrict);
    let mut sw = switch(sec, feat);
    for i in 0..3u8 {
        send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(0x60 + i));
    }
    let ev = events(&mut sw);
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|e| matches!(
        e,
        EventKind::PortSecurityViolation {
            action: Violation::Restrict,
            ..
        }
    )));
    assert_eq!(sw.port(A).unwrap().secure.unwrap().violations, 3);
    assert!(sw.port(A).unwrap().err_disabled.is_none());
}

#[test]
fn capped_learning_lets_a_nested_hypervisor_use_n_macs_that_are_then_known() {
    let (sec, mut feat) = capped(3, Violation::Restrict);
    feat.port_security.as_mut().unwrap().aging = SecureAging::Inactivity;
    feat.port_security.as_mut().unwrap().aging_secs = 60;
    let mut sw = switch(sec, feat);
    let nested1 = mac(0x71);
    let nested2 = mac(0x72);
    send(&mut sw, at(1000), A, MacAddr::BROADCAST, nested1);
    send(&mut sw, at(1000), A, MacAddr::BROADCAST, nested2);
    // Frames to the nested guests are delivered to port a, and from the uplink too.
    assert_eq!(out(&send(&mut sw, at(2000), C, nested1, mac(3))), vec![1]);
    let mut tagged = frame(nested2, mac(0x99));
    tagged.splice(12..12, [0x81, 0x00, 0x00, 0x0a]);
    assert_eq!(
        out(&sw.process(
            at(2000),
            UPLINK,
            &IngressFrame {
                data: &tagged,
                tag: None
            }
        )),
        vec![1]
    );
    let entry = sw.mac_table().lookup(vid(10), nested1, at(2000)).unwrap();
    assert_eq!(
        (entry.port, entry.kind),
        (A, MacKind::Secure(SecureKind::Dynamic))
    );
    // A fourth MAC is one too many.
    assert_eq!(
        send(&mut sw, at(3000), A, MacAddr::BROADCAST, mac(0x73)),
        Verdict::Drop(DropReason::SecureMacLimit)
    );
    // nested1 keeps talking; nested2 goes quiet and ages out after 60 s of inactivity.
    send(&mut sw, at(50_000), A, MacAddr::BROADCAST, nested1);
    sw.tick(at(61_500));
    assert!(
        sw.mac_table()
            .lookup(vid(10), nested2, at(61_500))
            .is_none(),
        "inactive: aged out"
    );
    assert!(
        sw.mac_table()
            .lookup(vid(10), nested1, at(61_500))
            .is_some(),
        "active: kept"
    );
    assert_eq!(sw.port(A).unwrap().secure.unwrap().count, 2);
    assert!(events(&mut sw).contains(&EventKind::SecureMacAged {
        port: A,
        vid: 10,
        mac: nested2
    }));
    // Its slot is free again.
    assert_eq!(
        out(&send(&mut sw, at(62_000), A, MacAddr::BROADCAST, mac(0x73))),
        vec![0, 2, 3]
    );
}

#[test]
fn absolute_aging_releases_even_an_active_mac() {
    let (sec, mut feat) = capped(2, Violation::Protect);
    feat.port_security.as_mut().unwrap().aging = SecureAging::Absolute;
    feat.port_security.as_mut().unwrap().aging_secs = 10;
    let mut sw = switch(sec, feat);
    send(&mut sw, at(1000), A, MacAddr::BROADCAST, mac(0x71));
    for t in 2..11 {
        send(&mut sw, at(t * 1000), A, MacAddr::BROADCAST, mac(0x71));
        sw.tick(at(t * 1000));
    }
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac(0x71), at(10_500))
            .is_some()
    );
    sw.tick(at(11_000));
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac(0x71), at(11_000))
            .is_none()
    );
}

#[test]
fn a_secure_mac_seen_on_another_port_is_a_mac_move_and_the_owner_keeps_its_traffic() {
    let (sec, feat) = capped(4, Violation::Restrict);
    let mut sw = switch(sec, feat);
    // a takes b's MAC (ip link set address): a MAC-move violation on a.
    assert_eq!(
        send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(2)),
        Verdict::Drop(DropReason::SecureMacMove)
    );
    assert!(matches!(
        events(&mut sw)[0],
        EventKind::PortSecurityViolation {
            port: A,
            kind: ViolationKind::MacMove,
            ..
        }
    ));
    // b still owns it: frames to b's MAC go to b.
    assert_eq!(out(&send(&mut sw, at(2), C, mac(2), mac(3))), vec![2]);
    assert_eq!(
        sw.mac_table().lookup(vid(10), mac(2), at(2)).unwrap().port,
        B
    );
    // Without port security on c, forged-transmit rules apply (reject by default).
    assert_eq!(
        send(&mut sw, at(3), C, MacAddr::BROADCAST, mac(2)),
        Verdict::Drop(DropReason::ForgedTransmit)
    );
    // And b, secure with max 1, cannot move onto a's MAC either.
    assert_eq!(
        send(&mut sw, at(3), B, MacAddr::BROADCAST, mac(1)),
        Verdict::Drop(DropReason::SecureMacMove)
    );
    assert!(
        sw.port(B).unwrap().err_disabled.is_some(),
        "b's policy is shutdown"
    );
}

#[test]
fn forged_transmits_accept_never_lets_a_guest_use_another_ports_mac() {
    let mut sw = switch(
        SecurityPolicy {
            forged_transmits: Policy::Accept,
            ..Default::default()
        },
        PortFeatures::default(),
    );
    assert_eq!(
        send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(3)),
        Verdict::Drop(DropReason::MacConflict)
    );
    assert_eq!(
        out(&send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(0x33))),
        vec![0, 2, 3]
    );
}

#[test]
fn sticky_macs_are_reported_and_restored_as_secure() {
    let (sec, mut feat) = capped(2, Violation::Protect);
    feat.port_security.as_mut().unwrap().sticky = true;
    let mut sw = switch(sec, feat.clone());
    send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(0x44));
    let ev = events(&mut sw);
    assert_eq!(
        ev,
        vec![EventKind::SecureMacLearned {
            port: A,
            vid: 10,
            mac: mac(0x44),
            sticky: true
        }]
    );
    assert_eq!(
        sw.mac_table()
            .lookup(vid(10), mac(0x44), at(1))
            .unwrap()
            .kind,
        MacKind::Secure(SecureKind::Sticky)
    );
    // Sticky MACs never age.
    sw.tick(at(10_000_000));
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac(0x44), at(10_000_000))
            .is_some()
    );

    // After a restart the daemon restores it: it is secure from the start, and a
    // new MAC is still refused.
    feat.port_security.as_mut().unwrap().sticky_macs = vec![mac(0x44)];
    let mut sw = switch(sec, feat);
    assert_eq!(sw.port(A).unwrap().secure.unwrap().count, 2);
    assert_eq!(out(&send(&mut sw, at(1), C, mac(0x44), mac(3))), vec![1]);
    assert_eq!(
        send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(0x45)),
        Verdict::Drop(DropReason::SecureMacLimit)
    );
}

#[test]
fn storm_control_caps_broadcast_and_unknown_unicast_per_second() {
    let feat = PortFeatures {
        storm_control: Some(StormControlSpec {
            broadcast_pps: Some(10),
            multicast_pps: None,
            unknown_unicast_pps: Some(5),
            shutdown: false,
        }),
        ..Default::default()
    };
    let mut sw = switch(SecurityPolicy::default(), feat);
    let passed = (0..50)
        .filter(|_| {
            matches!(
                send(&mut sw, at(1000), A, MacAddr::BROADCAST, mac(1)),
                Verdict::Forward(_)
            )
        })
        .count();
    assert_eq!(passed, 10);
    assert_eq!(drops(&sw, A, DropReason::StormControl), (40, 0));
    // Multicast has no limit here.
    let mcast = MacAddr([0x01, 0x00, 0x5e, 0, 0, 1]);
    assert!((0..50).all(|_| matches!(
        send(&mut sw, at(1000), A, mcast, mac(1)),
        Verdict::Forward(_)
    )));
    // Known unicast is never limited; unknown unicast is.
    assert!((0..50).all(|_| matches!(
        send(&mut sw, at(1000), A, mac(2), mac(1)),
        Verdict::Forward(_)
    )));
    let unknown = (0..50)
        .filter(|_| {
            matches!(
                send(&mut sw, at(1000), A, mac(0x99), mac(1)),
                Verdict::Forward(_)
            )
        })
        .count();
    assert_eq!(unknown, 5);
    // Half a second later: half the rate is back.
    let passed = (0..50)
        .filter(|_| {
            matches!(
                send(&mut sw, at(1500), A, MacAddr::BROADCAST, mac(1)),
                Verdict::Forward(_)
            )
        })
        .count();
    assert_eq!(passed, 5);
}

#[test]
fn storm_control_with_shutdown_error_disables_the_port() {
    let feat = PortFeatures {
        storm_control: Some(StormControlSpec {
            broadcast_pps: Some(2),
            multicast_pps: None,
            unknown_unicast_pps: None,
            shutdown: true,
        }),
        ..Default::default()
    };
    let mut sw = switch(SecurityPolicy::default(), feat);
    send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(1));
    send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(1));
    assert_eq!(
        send(&mut sw, at(1), A, MacAddr::BROADCAST, mac(1)),
        Verdict::Drop(DropReason::StormControl)
    );
    assert_eq!(
        sw.port(A).unwrap().err_disabled.map(|e| e.cause),
        Some(ErrDisableCause::StormControl)
    );
    assert_eq!(
        send(&mut sw, at(1), A, mac(2), mac(1)),
        Verdict::Drop(DropReason::ErrDisabled)
    );
}
