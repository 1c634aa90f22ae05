//! Scenario tests: a network engineer's stories, asserting the whole switch state
//! (verdicts, counters per port and reason, MAC table) after each step.

use portcullis_dataplane::*;

mod support;
use portcullis_dataplane::dump::dump;
use support::*;

const UPLINK: PortId = PortId(0);
const WEB1: PortId = PortId(1);
const WEB2: PortId = PortId(2);
const DB1: PortId = PortId(3);
const SNIFF: PortId = PortId(4);

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn guest(name: &str, v: u16, m: Option<&str>, security: SecurityPolicy) -> PortSpec {
    let mut p = access(name, v, m.map(mac));
    p.security = security;
    p
}

/// uplink (trunk 10,20, native 1), web1+web2 on VLAN 10, db1 on VLAN 20, sniff on VLAN 10.
fn lab(sniff_security: SecurityPolicy) -> Switch {
    let hardened = SecurityPolicy::default();
    let spec = switch_spec(
        "lab",
        vec![
            trunk("uplink1", &[10, 20], Some(1)),
            guest("web1", 10, Some("52:54:00:00:00:01"), hardened),
            guest("web2", 10, Some("52:54:00:00:00:02"), hardened),
            guest("db1", 20, Some("52:54:00:00:00:03"), hardened),
            guest("sniff", 10, Some("52:54:00:00:00:04"), sniff_security),
        ],
    );
    Switch::new(&spec, Timestamp::from_secs(1)).unwrap()
}

/// A 60-byte frame of `ethertype` between MACs written out.
fn eth(dst: &str, src: &str, ethertype: u16) -> Vec<u8> {
    support::eth(mac(dst), mac(src), ethertype, &[])
}

/// A 64-byte IPv4-typed frame tagged with VLAN `v`.
fn tagged(dst: &str, src: &str, v: u16) -> Vec<u8> {
    frame64(mac(dst), mac(src), Some(v))
}

fn c(sw: &Switch, p: PortId) -> &PortCounters {
    sw.counters(p).unwrap()
}

/// Asserts every port's rx/tx frame counts at once.
fn assert_frames(sw: &Switch, expect: &[(PortId, u64, u64)]) {
    for (p, rx, tx) in expect {
        let k = c(sw, *p);
        assert_eq!(
            (k.rx_frames, k.tx_frames),
            (*rx, *tx),
            "port {} rx/tx: {k:?}",
            p.0
        );
    }
}

const W1: &str = "52:54:00:00:00:01";
const W2: &str = "52:54:00:00:00:02";
const DB: &str = "52:54:00:00:00:03";
const SN: &str = "52:54:00:00:00:04";
const ROUTER: &str = "00:1b:21:aa:bb:cc";
const BCAST: &str = "ff:ff:ff:ff:ff:ff";

#[test]
fn web_servers_talk_inside_their_vlan_and_reach_the_router_through_the_uplink() {
    let mut sw = lab(SecurityPolicy::default());
    let start = dump(&sw, Timestamp::from_secs(2));

    // web1 ARPs for web2: the broadcast reaches web2, sniff, and one uplink (tagged 10) — not db1.
    let v = send_secs(&mut sw, 2, WEB1, &eth(BCAST, W1, 0x0806));
    assert_eq!(out(&v), vec![0, 2, 4]);
    let Verdict::Forward(f) = v else { panic!() };
    assert_eq!(f.vid, vid(10));
    assert_eq!(
        sw.port(UPLINK).unwrap().egress_tci(f.vid, f.pcp_dei),
        Some(10)
    );
    assert_eq!(sw.port(WEB2).unwrap().egress_tci(f.vid, f.pcp_dei), None);

    // web2 answers unicast: only web1 gets it (sniff is not promiscuous).
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB2, &eth(W1, W2, 0x0806))),
        vec![1]
    );

    // web1 → router (unknown unicast) leaves by the uplink only.
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB1, &eth(ROUTER, W1, 0x0800))),
        vec![0]
    );

    // The router answers tagged 10 on the uplink: delivered to web1 untagged, and the router is learned.
    assert_eq!(
        out(&send_secs(&mut sw, 2, UPLINK, &tagged(W1, ROUTER, 10))),
        vec![1]
    );
    let learned = sw
        .mac_table()
        .lookup(vid(10), mac(ROUTER), Timestamp::from_secs(2))
        .unwrap();
    assert_eq!((learned.port, learned.kind), (UPLINK, MacKind::Learned));

    assert_frames(
        &sw,
        &[
            (UPLINK, 1, 2),
            (WEB1, 2, 2),
            (WEB2, 1, 1),
            (DB1, 0, 0),
            (SNIFF, 0, 1),
        ],
    );
    assert_eq!(sw.mac_table().len(), 5, "4 guest MACs + the router");
    for p in [UPLINK, WEB1, WEB2, DB1, SNIFF] {
        assert_eq!(c(&sw, p).rx_dropped() + c(&sw, p).tx_dropped(), 0);
    }
    // The whole switch: frame and byte counters, and the router learned on the
    // uplink — nothing else (uplink frames are 4 bytes longer: tagged).
    assert_changed(
        &start,
        &sw,
        Timestamp::from_secs(2),
        &[
            "+ port uplink1: rx_frames 1",
            "+ port uplink1: rx_bytes 64",
            "+ port uplink1: tx_frames 2",
            "+ port uplink1: tx_bytes 128",
            "+ port web1: rx_frames 2",
            "+ port web1: rx_bytes 120",
            "+ port web1: tx_frames 2",
            "+ port web1: tx_bytes 120",
            "+ port web2: rx_frames 1",
            "+ port web2: rx_bytes 60",
            "+ port web2: tx_frames 1",
            "+ port web2: tx_bytes 60",
            "+ port sniff: tx_frames 1",
            "+ port sniff: tx_bytes 60",
            "+ mac vlan 10 00:1b:21:aa:bb:cc on uplink1 (learned)",
        ],
    );
}

#[test]
fn vlans_are_isolated() {
    let mut sw = lab(SecurityPolicy::default());
    // web1 sends straight to db1's MAC: db1 is in VLAN 20, so in VLAN 10 it is unknown → uplink only.
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB1, &eth(DB, W1, 0x0800))),
        vec![0]
    );
    // db1's broadcast stays in VLAN 20: only the uplink carries it.
    assert_eq!(
        out(&send_secs(&mut sw, 2, DB1, &eth(BCAST, DB, 0x0806))),
        vec![0]
    );
    assert_frames(
        &sw,
        &[
            (UPLINK, 0, 2),
            (WEB1, 1, 0),
            (WEB2, 0, 0),
            (DB1, 1, 0),
            (SNIFF, 0, 0),
        ],
    );
}

#[test]
fn a_guest_forging_another_source_mac_is_dropped_and_counted() {
    let mut sw = lab(SecurityPolicy::default());
    let start = dump(&sw, Timestamp::from_secs(2));
    let v = send_secs(&mut sw, 2, WEB1, &eth(W2, "52:54:00:66:66:66", 0x0800));
    assert_eq!(v, Verdict::Drop(DropReason::ForgedTransmit));
    // Impersonating web2 itself is forged too.
    let v = send_secs(&mut sw, 2, WEB1, &eth(BCAST, W2, 0x0806));
    assert_eq!(v, Verdict::Drop(DropReason::ForgedTransmit));
    assert_eq!(
        c(&sw, WEB1).rx_drops[DropReason::ForgedTransmit as usize],
        2
    );
    assert_frames(
        &sw,
        &[(UPLINK, 0, 0), (WEB1, 2, 0), (WEB2, 0, 0), (SNIFF, 0, 0)],
    );
    // The MAC table did not move: web2's MAC still belongs to web2.
    assert_eq!(
        sw.mac_table()
            .lookup(vid(10), mac(W2), Timestamp::from_secs(2))
            .unwrap()
            .port,
        WEB2
    );
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac("52:54:00:66:66:66"), Timestamp::from_secs(2))
            .is_none()
    );
    // The whole switch: only web1's counters moved, nothing was learned or moved.
    assert_changed(
        &start,
        &sw,
        Timestamp::from_secs(2),
        &[
            "+ port web1: rx_frames 2",
            "+ port web1: rx_bytes 120",
            "+ port web1: rx_drop.forged_transmit 2",
        ],
    );
}

#[test]
fn forged_transmits_accept_lets_any_source_through_without_learning_it() {
    let mut sw = lab(SecurityPolicy {
        forged_transmits: Policy::Accept,
        ..Default::default()
    });
    assert_eq!(
        out(&send_secs(
            &mut sw,
            2,
            SNIFF,
            &eth(W1, "52:54:00:66:66:66", 0x0800)
        )),
        vec![1]
    );
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac("52:54:00:66:66:66"), Timestamp::from_secs(2))
            .is_none()
    );
    assert_eq!(sw.port(SNIFF).unwrap().effective_mac, Some(mac(SN)));
}

#[test]
fn promiscuous_reject_sees_only_its_own_frames_accept_sees_the_vlan() {
    let mut sw = lab(SecurityPolicy::default());
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB1, &eth(W2, W1, 0x0800))),
        vec![2]
    );
    assert_eq!(c(&sw, SNIFF).tx_frames, 0);

    let mut sw = lab(SecurityPolicy {
        promiscuous: Policy::Accept,
        ..Default::default()
    });
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB1, &eth(W2, W1, 0x0800))),
        vec![2, 4]
    );
    // Unknown unicast from the uplink reaches only the promiscuous port.
    assert_eq!(
        out(&send_secs(
            &mut sw,
            2,
            UPLINK,
            &tagged("52:54:00:99:99:99", ROUTER, 10)
        )),
        vec![4]
    );
    // …but not the promiscuous port of another VLAN's traffic.
    assert_eq!(
        out(&send_secs(&mut sw, 2, DB1, &eth(ROUTER, DB, 0x0800))),
        vec![0]
    );
    assert_frames(
        &sw,
        &[
            (UPLINK, 1, 1),
            (WEB1, 1, 0),
            (WEB2, 0, 1),
            (DB1, 1, 0),
            (SNIFF, 0, 2),
        ],
    );
}

#[test]
fn mac_change_reported_under_reject_blocks_the_port_until_reverted() {
    let mut sw = lab(SecurityPolicy::default());
    let new = mac("52:54:00:00:00:99");
    // The guest reprograms its MAC; before the report, frames from the new MAC are forged.
    assert_eq!(
        send_secs(&mut sw, 2, WEB2, &eth(BCAST, "52:54:00:00:00:99", 0x0806)),
        Verdict::Drop(DropReason::ForgedTransmit)
    );

    // The hypervisor reports it.
    sw.report_effective_mac(WEB2, new, Timestamp::from_secs(3))
        .unwrap();
    let p = sw.port(WEB2).unwrap();
    assert!(p.mac_change_blocked());
    assert_eq!((p.initial_mac, p.effective_mac), (Some(mac(W2)), Some(new)));
    let ev: Vec<Event> = sw.drain_events().collect();
    assert_eq!(ev.len(), 1);
    assert!(matches!(
        ev[0].kind,
        EventKind::EffectiveMacChanged {
            blocked: true,
            source: MacChangeSource::Report,
            ..
        }
    ));

    // Unicast to the new MAC and broadcasts are not delivered to web2; both counted there.
    assert_eq!(
        send_secs(&mut sw, 4, WEB1, &eth("52:54:00:00:00:99", W1, 0x0800)),
        Verdict::Drop(DropReason::MacChangeBlocked)
    );
    assert_eq!(
        out(&send_secs(&mut sw, 4, WEB1, &eth(BCAST, W1, 0x0806))),
        vec![0, 4]
    );
    assert_eq!(
        c(&sw, WEB2).tx_drops[DropReason::MacChangeBlocked as usize],
        2
    );
    assert_eq!(c(&sw, WEB2).tx_frames, 0);
    // Its old MAC is unknown now → the frame goes to the uplink.
    assert_eq!(
        out(&send_secs(&mut sw, 4, WEB1, &eth(W2, W1, 0x0800))),
        vec![0]
    );

    // Reverting to the initial MAC unblocks it.
    sw.report_effective_mac(WEB2, mac(W2), Timestamp::from_secs(5))
        .unwrap();
    assert!(!sw.port(WEB2).unwrap().mac_change_blocked());
    assert_eq!(
        out(&send_secs(&mut sw, 6, WEB1, &eth(W2, W1, 0x0800))),
        vec![2]
    );
}

#[test]
fn mac_changes_accept_follows_the_guest_and_the_old_mac_becomes_forged() {
    let mut sw = lab(SecurityPolicy {
        mac_changes: Policy::Accept,
        ..Default::default()
    });
    let new = "52:54:00:00:00:44";
    assert_eq!(
        out(&send_secs(&mut sw, 2, SNIFF, &eth(BCAST, new, 0x0806))),
        vec![0, 1, 2]
    );
    assert_eq!(sw.port(SNIFF).unwrap().effective_mac, Some(mac(new)));
    assert!(!sw.port(SNIFF).unwrap().mac_change_blocked());
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB1, &eth(new, W1, 0x0800))),
        vec![4]
    );
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac(SN), Timestamp::from_secs(2))
            .is_none()
    );
    // Moving onto web1's MAC is a conflict: refused, nothing changes.
    assert_eq!(
        send_secs(&mut sw, 3, SNIFF, &eth(BCAST, W1, 0x0806)),
        Verdict::Drop(DropReason::MacConflict)
    );
    assert_eq!(
        sw.mac_table()
            .lookup(vid(10), mac(W1), Timestamp::from_secs(3))
            .unwrap()
            .port,
        WEB1
    );
    assert_eq!(sw.port(SNIFF).unwrap().effective_mac, Some(mac(new)));
    let kinds: Vec<_> = sw.drain_events().map(|e| e.kind).collect();
    assert!(matches!(
        kinds[0],
        EventKind::EffectiveMacChanged {
            source: MacChangeSource::Guest,
            blocked: false,
            ..
        }
    ));
    assert!(matches!(
        kinds[1],
        EventKind::MacConflict { owner: WEB1, .. }
    ));
}

#[test]
fn uplink_rules_reflection_unknown_unicast_and_vlan_filter() {
    let mut sw = lab(SecurityPolicy::default());
    // Our own guest's MAC coming back from the physical network: reflection.
    assert_eq!(
        send_secs(&mut sw, 2, UPLINK, &tagged(BCAST, W1, 10)),
        Verdict::Drop(DropReason::Reflection)
    );
    // Unknown unicast from the uplink: dropped.
    assert_eq!(
        send_secs(&mut sw, 2, UPLINK, &tagged("52:54:00:99:99:99", ROUTER, 10)),
        Verdict::Drop(DropReason::UnknownUnicast)
    );
    // VLAN 30 is not allowed on the trunk.
    assert_eq!(
        send_secs(&mut sw, 2, UPLINK, &tagged(BCAST, ROUTER, 30)),
        Verdict::Drop(DropReason::VlanNotAllowed)
    );
    // Untagged = native VLAN 1, which has no guests.
    assert_eq!(
        send_secs(&mut sw, 2, UPLINK, &eth(BCAST, ROUTER, 0x0806)),
        Verdict::Drop(DropReason::NoDestination)
    );
    // A broadcast in VLAN 20 reaches db1 only — never back to an uplink.
    assert_eq!(
        out(&send_secs(&mut sw, 2, UPLINK, &tagged(BCAST, ROUTER, 20))),
        vec![3]
    );
    let k = c(&sw, UPLINK);
    assert_eq!(k.rx_frames, 5);
    for r in [
        DropReason::Reflection,
        DropReason::UnknownUnicast,
        DropReason::VlanNotAllowed,
        DropReason::NoDestination,
    ] {
        assert_eq!(k.rx_drops[r as usize], 1, "{r:?}");
    }
}

#[test]
fn bad_frames_are_counted_drops() {
    let mut sw = lab(SecurityPolicy::default());
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &[0x52; 10]),
        Verdict::Drop(DropReason::Truncated)
    );
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &tagged(BCAST, W1, 10)),
        Verdict::Drop(DropReason::TaggedOnAccessPort)
    );
    let mut qinq = tagged(BCAST, W1, 0);
    qinq.splice(16..16, [0x81, 0x00, 0x00, 0x0a]);
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &qinq),
        Verdict::Drop(DropReason::TaggedOnAccessPort)
    );
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &eth(BCAST, W1, 0x05ff)),
        Verdict::Drop(DropReason::BadEthertype)
    );
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &eth(BCAST, BCAST, 0x0800)),
        Verdict::Drop(DropReason::InvalidSourceMac)
    );
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &eth("01:80:c2:00:00:00", W1, 0x0026)),
        Verdict::Drop(DropReason::LinkLocalReserved)
    );
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &eth(W1, W1, 0x0800)),
        Verdict::Drop(DropReason::Hairpin)
    );
    // A priority-tagged frame (VID 0) is the access VLAN's.
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB1, &tagged(W2, W1, 0))),
        vec![2]
    );
    let k = c(&sw, WEB1);
    assert_eq!((k.rx_frames, k.rx_dropped(), k.tx_frames), (8, 7, 0));
}

#[test]
fn a_port_without_a_configured_mac_learns_it_from_its_first_frame() {
    let spec = SwitchSpec {
        name: "s".into(),
        mac_table_size: 2,
        mac_aging_secs: 300,
        ports: (0..3)
            .map(|i| guest(&format!("g{i}"), 10, None, SecurityPolicy::default()))
            .collect(),
        mac_acls: Vec::new(),
        max_bindings: DEFAULT_MAX_BINDINGS,
        host_table_size: DEFAULT_HOST_TABLE_SIZE,
        overlay: None,
        static_bindings: vec![],
        arp_acls: vec![],
    };
    let mut sw = Switch::new(&spec, Timestamp::from_secs(0)).unwrap();
    assert_eq!(
        out(&send_secs(&mut sw, 1, PortId(0), &eth(BCAST, W1, 0x0806))),
        vec![1, 2]
    );
    assert_eq!(sw.port(PortId(0)).unwrap().initial_mac, Some(mac(W1)));
    // Now it is pinned: another source is forged.
    assert_eq!(
        send_secs(&mut sw, 1, PortId(0), &eth(BCAST, W2, 0x0806)),
        Verdict::Drop(DropReason::ForgedTransmit)
    );
    // A second port may not claim a MAC the first holds.
    assert_eq!(
        send_secs(&mut sw, 1, PortId(1), &eth(BCAST, W1, 0x0806)),
        Verdict::Drop(DropReason::MacConflict)
    );
    assert_eq!(
        out(&send_secs(&mut sw, 1, PortId(1), &eth(BCAST, W2, 0x0806))),
        vec![0, 2]
    );
    // The table holds two MACs: the third guest's MAC does not fit → counted drop.
    assert_eq!(
        send_secs(&mut sw, 1, PortId(2), &eth(BCAST, DB, 0x0806)),
        Verdict::Drop(DropReason::MacTableFull)
    );
    assert_eq!(
        c(&sw, PortId(2)).rx_drops[DropReason::MacTableFull as usize],
        1
    );
    assert_eq!(sw.mac_table().len(), 2);
}

#[test]
fn an_admin_down_port_neither_sends_nor_receives() {
    let mut sw = lab(SecurityPolicy::default());
    sw.set_admin_up(WEB2, false).unwrap();
    assert_eq!(
        send_secs(&mut sw, 2, WEB2, &eth(BCAST, W2, 0x0806)),
        Verdict::Drop(DropReason::PortDown)
    );
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &eth(W2, W1, 0x0800)),
        Verdict::Drop(DropReason::PortDown)
    );
    assert_eq!(
        out(&send_secs(&mut sw, 2, WEB1, &eth(BCAST, W1, 0x0806))),
        vec![0, 4]
    );
    assert_eq!(c(&sw, WEB2).rx_drops[DropReason::PortDown as usize], 1);
    assert_eq!(c(&sw, WEB2).tx_drops[DropReason::PortDown as usize], 1);
    // An uplink whose link is down: unknown unicast from a guest has nowhere to go.
    let before = dump(&sw, Timestamp::from_secs(2));
    sw.set_link_up(UPLINK, false, Timestamp::from_secs(2))
        .unwrap();
    // The whole switch: the uplink is down and no guest is pinned to it any more.
    assert_changed(
        &before,
        &sw,
        Timestamp::from_secs(2),
        &[
            "- port uplink1: uplink, admin up, link up, oper up",
            "- port web1: pinned to uplink1",
            "- port web2: pinned to uplink1",
            "- port db1: pinned to uplink1",
            "- port sniff: pinned to uplink1",
            "+ port uplink1: uplink, admin up, link down, oper down",
        ],
    );
    assert_eq!(
        send_secs(&mut sw, 2, WEB1, &eth(ROUTER, W1, 0x0800)),
        Verdict::Drop(DropReason::NoUplink)
    );
    // A guest whose interface went away: out of floods, unicast to it dropped as port_down.
    sw.set_link_up(WEB1, false, Timestamp::from_secs(3))
        .unwrap();
    assert_eq!(
        out(&send_secs(&mut sw, 3, SNIFF, &eth(BCAST, SN, 0x0806))),
        Vec::<u16>::new()
    );
    assert_eq!(
        send_secs(&mut sw, 3, SNIFF, &eth(W1, SN, 0x0800)),
        Verdict::Drop(DropReason::PortDown)
    );
    assert_eq!(c(&sw, WEB1).tx_drops[DropReason::PortDown as usize], 1);
    let ev: Vec<_> = sw.drain_events().map(|e| e.kind).collect();
    assert_eq!(
        ev,
        vec![
            EventKind::LinkStateChanged {
                port: UPLINK,
                up: false
            },
            EventKind::LinkStateChanged {
                port: WEB1,
                up: false
            }
        ]
    );
    sw.set_link_up(WEB1, false, Timestamp::from_secs(4))
        .unwrap();
    assert_eq!(sw.drain_events().count(), 0, "no change, no event");
}

#[test]
fn learned_uplink_macs_age_out() {
    let mut sw = lab(SecurityPolicy::default());
    // The lab as built: every port up, each guest pinned to the one uplink, the guests'
    // MACs in the table, no counter moved.
    assert_eq!(
        dump(&sw, Timestamp::from_secs(1)).to_string(),
        "port uplink1: uplink, admin up, link up, oper up\n\
         port web1: guest, admin up, link up, oper up\n\
         port web1: initial mac 52:54:00:00:00:01, effective mac 52:54:00:00:00:01\n\
         port web1: pinned to uplink1\n\
         port web2: guest, admin up, link up, oper up\n\
         port web2: initial mac 52:54:00:00:00:02, effective mac 52:54:00:00:00:02\n\
         port web2: pinned to uplink1\n\
         port db1: guest, admin up, link up, oper up\n\
         port db1: initial mac 52:54:00:00:00:03, effective mac 52:54:00:00:00:03\n\
         port db1: pinned to uplink1\n\
         port sniff: guest, admin up, link up, oper up\n\
         port sniff: initial mac 52:54:00:00:00:04, effective mac 52:54:00:00:00:04\n\
         port sniff: pinned to uplink1\n\
         mac vlan 10 52:54:00:00:00:01 on web1 (guest)\n\
         mac vlan 10 52:54:00:00:00:02 on web2 (guest)\n\
         mac vlan 10 52:54:00:00:00:04 on sniff (guest)\n\
         mac vlan 20 52:54:00:00:00:03 on db1 (guest)\n"
    );
    send_secs(&mut sw, 10, UPLINK, &tagged(W1, ROUTER, 10));
    let learned = dump(&sw, Timestamp::from_secs(10));
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac(ROUTER), Timestamp::from_secs(309))
            .is_some()
    );
    sw.tick(Timestamp::from_secs(311));
    assert!(
        sw.mac_table()
            .lookup(vid(10), mac(ROUTER), Timestamp::from_secs(311))
            .is_none()
    );
    assert_eq!(sw.mac_table().len(), 4);
    assert_eq!(sw.mac_table().aged_out, 1);
    // The whole switch: the router's entry is gone, and nothing else changed.
    assert_changed(
        &learned,
        &sw,
        Timestamp::from_secs(311),
        &["- mac vlan 10 00:1b:21:aa:bb:cc on uplink1 (learned)"],
    );
}
