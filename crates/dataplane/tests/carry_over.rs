//! Hitless apply (`Switch::carry_over_from`) as an operator lives it: run a switch,
//! edit the configuration, build the new switch, carry the run-time state over, and
//! check the whole state (ports, counters, MAC table, bindings, pins, events) and
//! that traffic keeps flowing without a flood.

use portcullis_dataplane::bindings::{BindingSource, NewBinding};
use portcullis_dataplane::stages::port_security::SecureState;
use portcullis_dataplane::*;
use proptest::prelude::*;
use std::net::IpAddr;

mod support;
use support::*;

fn at(s: u64) -> Timestamp {
    Timestamp::from_secs(s)
}
const ROUTER: MacAddr = MacAddr([0, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]);
const BCAST: MacAddr = MacAddr::BROADCAST;

/// A switch of `ports` ("apply") with a MAC table of `table` entries and 16 bindings.
fn apply_spec(ports: Vec<PortSpec>, table: usize) -> SwitchSpec {
    let mut spec = switch_spec("apply", ports);
    spec.mac_table_size = table;
    spec.max_bindings = 16;
    spec
}

/// Port security with learning beyond the guest's own MAC (forged transmits
/// accepted: capped learning).
fn capped(mut p: PortSpec, max: u16, sticky: bool) -> PortSpec {
    p.security.forged_transmits = Policy::Accept;
    p.features.port_security = Some(PortSecuritySpec {
        sticky,
        ..port_security(max, Violation::Restrict)
    });
    p
}

/// A frame from a guest (untagged).
fn send(sw: &mut Switch, t: Timestamp, port: PortId, dst: MacAddr, src: MacAddr) -> Verdict {
    send_at(sw, t, port, &frame64(dst, src, None))
}

/// A frame from an uplink, tagged with `v`.
fn send_tagged(
    sw: &mut Switch,
    t: Timestamp,
    port: PortId,
    v: u16,
    dst: MacAddr,
    src: MacAddr,
) -> Verdict {
    send_at(sw, t, port, &frame64(dst, src, Some(v)))
}

fn id(sw: &Switch, name: &str) -> PortId {
    sw.port_id(name).unwrap()
}

fn name(sw: &Switch, p: PortId) -> String {
    sw.port(p).unwrap().name.clone()
}

fn moves(sw: &mut Switch) -> Vec<(String, u16, Option<String>, String)> {
    let ev: Vec<EventKind> = sw.drain_events().map(|e| e.kind).collect();
    ev.into_iter()
        .filter_map(|k| match k {
            EventKind::UplinkMoved {
                port,
                vid,
                from,
                to,
            } => Some((name(sw, port), vid, from.map(|f| name(sw, f)), name(sw, to))),
            _ => None,
        })
        .collect()
}

/// One port's whole run-time state, by name (independent of port indexes).
#[derive(Debug, PartialEq, Clone)]
struct PortState {
    name: String,
    counters: PortCounters,
    admin_up: bool,
    link_up: bool,
    initial_mac: Option<MacAddr>,
    effective_mac: Option<MacAddr>,
    err_disabled: Option<ErrDisabled>,
    secure: Option<SecureState>,
    uplink: Option<String>,
}

type MacRow = (u16, MacAddr, String, MacKind, Timestamp, Timestamp);
type BindingRow = (
    u16,
    IpAddr,
    MacAddr,
    String,
    Option<Timestamp>,
    BindingSource,
);

/// The whole switch state an operator sees (`show ports|counters|mac|bindings|uplinks`).
#[derive(Debug, PartialEq, Clone)]
struct State {
    ports: Vec<PortState>,
    macs: Vec<MacRow>,
    bindings: Vec<BindingRow>,
    acl_hits: Vec<(String, Vec<u64>)>,
}

impl State {
    fn port(&self, name: &str) -> &PortState {
        self.ports.iter().find(|p| p.name == name).unwrap()
    }
    fn macs_of(&self, name: &str) -> Vec<MacRow> {
        self.macs.iter().filter(|m| m.2 == name).cloned().collect()
    }
}

fn state(sw: &Switch, now: Timestamp) -> State {
    let mut ports: Vec<PortState> = sw
        .ports()
        .iter()
        .map(|p| PortState {
            name: p.name.clone(),
            counters: sw.counters(p.id).unwrap().clone(),
            admin_up: p.admin_up,
            link_up: p.link_up,
            initial_mac: p.initial_mac,
            effective_mac: p.effective_mac,
            err_disabled: p.err_disabled,
            secure: p.secure,
            uplink: sw.uplink_of(p.id).map(|u| name(sw, u)),
        })
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name));
    let mut macs: Vec<MacRow> = sw
        .mac_table()
        .entries(now)
        .into_iter()
        .map(|(v, m, e)| {
            (
                v.get(),
                m,
                name(sw, e.port),
                e.kind,
                e.learned_at,
                e.last_seen,
            )
        })
        .collect();
    macs.sort_by_key(|r| (r.0, r.1));
    let bindings = sw
        .bindings()
        .into_iter()
        .map(|b| {
            (
                b.vid.get(),
                b.ip,
                b.binding.mac,
                name(sw, b.binding.port),
                b.binding.lease_end,
                b.binding.source,
            )
        })
        .collect();
    let acl_hits = sw
        .mac_acls()
        .iter()
        .map(|a| (a.spec.name.clone(), a.hits.clone()))
        .collect();
    State {
        ports,
        macs,
        bindings,
        acl_hits,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bind(sw: &mut Switch, v: u16, addr: &str, m: MacAddr, port: PortId, lease: Option<u32>) {
    let source = if lease.is_some() {
        BindingSource::Dhcp
    } else {
        BindingSource::Api
    };
    sw.install_binding(
        NewBinding {
            vid: vid(v),
            ip: ip(addr),
            mac: m,
            port,
            lease_secs: lease,
            source,
            duid: None,
        },
        at(6),
    )
    .unwrap();
}

/// uplink1, uplink2 (trunks 10, 20); web1 (10, :01, inbound ACL), web2 (10, MAC
/// learned from its first frame), db1 (20, :03, port security max 3 with capped
/// learning, a static binding).
fn lab_spec() -> SwitchSpec {
    let mut web1 = access("web1", 10, Some(mac(1)));
    web1.features.mac_acl_in = Some("vm-in".into());
    let mut s = apply_spec(
        vec![
            trunk("uplink1", &[10, 20], None),
            trunk("uplink2", &[10, 20], None),
            web1,
            access("web2", 10, None),
            capped(access("db1", 20, Some(mac(3))), 3, false),
        ],
        32,
    );
    s.mac_acls = vec![MacAclSpec {
        name: "vm-in".into(),
        rules: vec![MacAclRule {
            action: AclAction::Permit,
            src: None,
            dst: None,
            ethertype: None,
            vlan: None,
            cos: None,
        }],
    }];
    s.static_bindings = vec![StaticBindingSpec {
        mac: mac(3),
        ip: ip("198.18.20.3"),
        vid: vid(20),
        port: 4,
    }];
    s
}

/// The lab after some traffic: web1 ARPs, web2 appears, web1 and web2 talk, the
/// router answers web1 through uplink1, db1 uses a second MAC, and two bindings.
fn busy_lab() -> Switch {
    let mut sw = Switch::new(&lab_spec(), at(0)).unwrap();
    let (web1, web2, db1) = (PortId(2), PortId(3), PortId(4));
    assert!(!out(&send(&mut sw, at(1), web1, BCAST, mac(1))).is_empty());
    assert_eq!(out(&send(&mut sw, at(2), web2, mac(1), mac(2))), vec![2]);
    assert_eq!(out(&send(&mut sw, at(3), web1, mac(2), mac(1))), vec![3]);
    assert_eq!(
        out(&send_tagged(&mut sw, at(4), PortId(0), 10, mac(1), ROUTER)),
        vec![2]
    );
    assert!(!out(&send(&mut sw, at(5), db1, BCAST, mac(0x33))).is_empty());
    bind(&mut sw, 10, "198.18.10.1", mac(1), web1, Some(3600));
    bind(&mut sw, 10, "198.18.10.2", mac(2), web2, None);
    let _ = sw.drain_events().count();
    sw
}

#[test]
fn applying_the_same_configuration_changes_nothing_and_traffic_flows_on() {
    let old = busy_lab();
    let before = state(&old, at(20));
    assert_eq!(
        before.macs.len(),
        5,
        "web1, web2, db1, db1's second MAC, router"
    );
    assert_eq!(before.bindings.len(), 3);
    assert!(before.acl_hits[0].1[0] > 0);

    let mut new = Switch::new(&lab_spec(), at(20)).unwrap();
    let report = new.carry_over_from(old, at(20));
    assert_eq!(
        report,
        CarryOver {
            port_map: (0..5).map(|i| Some(PortId(i))).collect(),
            ports_added: vec![],
            ports_removed: vec![],
            macs_kept: 5,
            macs_dropped: 0,
            bindings_kept: 3,
            bindings_dropped: 0,
        }
    );
    assert_eq!(state(&new, at(20)), before);
    assert_eq!(moves(&mut new), vec![], "no pin moved: no announcement");

    // web1 → web2 is known unicast: web2 only, no flood; the router's reply too.
    let (web1, web2) = (id(&new, "web1"), id(&new, "web2"));
    assert_eq!(out(&send(&mut new, at(21), web1, mac(2), mac(1))), vec![3]);
    assert_eq!(out(&send(&mut new, at(21), web2, mac(1), mac(2))), vec![2]);
    assert_eq!(
        out(&send_tagged(
            &mut new,
            at(21),
            PortId(0),
            10,
            mac(1),
            ROUTER
        )),
        vec![2]
    );
    let c = new.counters(web2).unwrap();
    assert_eq!(
        (c.rx_frames, c.tx_frames),
        (
            before.port("web2").counters.rx_frames + 1,
            before.port("web2").counters.tx_frames + 1
        )
    );
}

/// Four guests on VLAN 10 (web2 without a configured MAC), db1 on VLAN 20.
fn group_spec(web2_vlan: u16) -> SwitchSpec {
    apply_spec(
        vec![
            trunk("uplink1", &[10, 20], None),
            access("web1", 10, Some(mac(1))),
            access("web2", web2_vlan, None),
            access("web3", 10, Some(mac(3))),
            access("db1", 20, Some(mac(4))),
        ],
        32,
    )
}

#[test]
fn a_port_moved_to_another_port_group_takes_its_mac_along_and_the_rest_is_untouched() {
    let mut old = Switch::new(&group_spec(10), at(0)).unwrap();
    let (up, web1, web2, web3, db1) = (PortId(0), PortId(1), PortId(2), PortId(3), PortId(4));
    assert_eq!(out(&send(&mut old, at(1), web2, mac(1), mac(2))), vec![1]);
    assert_eq!(out(&send(&mut old, at(2), web1, mac(3), mac(1))), vec![3]);
    assert_eq!(out(&send(&mut old, at(2), web3, mac(1), mac(3))), vec![1]);
    assert_eq!(
        out(&send_tagged(&mut old, at(3), up, 10, mac(1), ROUTER)),
        vec![1]
    );
    let _ = out(&send(&mut old, at(4), db1, BCAST, mac(4)));
    let before = state(&old, at(10));
    assert_eq!(
        before.macs_of("web2"),
        vec![(10, mac(2), "web2".into(), MacKind::Guest, at(1), at(1))]
    );

    // The operator moves web2 to the db port group (VLAN 20).
    let mut new = Switch::new(&group_spec(20), at(10)).unwrap();
    let report = new.carry_over_from(old, at(10));
    assert_eq!((report.macs_kept, report.macs_dropped), (4, 1));
    assert!(report.ports_added.is_empty() && report.ports_removed.is_empty());
    let after = state(&new, at(10));
    // web2's MAC left VLAN 10 and is known in VLAN 20.
    assert_eq!(
        after.macs_of("web2"),
        vec![(20, mac(2), "web2".into(), MacKind::Guest, at(10), at(10))]
    );
    assert_eq!(after.port("web2").effective_mac, Some(mac(2)));
    assert_eq!(after.port("web2").counters, before.port("web2").counters);
    // Everything else is exactly as it was.
    for p in ["uplink1", "web1", "web3", "db1"] {
        assert_eq!(after.port(p), before.port(p), "{p}");
        assert_eq!(after.macs_of(p), before.macs_of(p), "{p}");
    }
    // web1 ↔ web3 stay known unicast right after the swap.
    assert_eq!(out(&send(&mut new, at(11), web1, mac(3), mac(1))), vec![3]);
    assert_eq!(out(&send(&mut new, at(11), web3, mac(1), mac(3))), vec![1]);
    // In VLAN 10 web2 is now unknown (to the uplink only); in VLAN 20 db1 reaches it.
    assert_eq!(out(&send(&mut new, at(11), web1, mac(2), mac(1))), vec![0]);
    assert_eq!(out(&send(&mut new, at(11), db1, mac(2), mac(4))), vec![2]);
}

#[test]
fn a_removed_port_takes_its_state_with_it_and_an_added_port_starts_empty() {
    let spec = |ports: Vec<PortSpec>| apply_spec(ports, 32);
    let db1 = capped(access("db1", 10, Some(mac(3))), 2, false);
    let mut old = Switch::new(
        &spec(vec![
            trunk("uplink1", &[10], None),
            access("web1", 10, Some(mac(1))),
            db1,
            access("web2", 10, Some(mac(2))),
        ]),
        at(0),
    )
    .unwrap();
    let (web1, db1, web2) = (PortId(1), PortId(2), PortId(3));
    let _ = send(&mut old, at(1), db1, BCAST, mac(0x33));
    assert_eq!(out(&send(&mut old, at(2), web1, mac(2), mac(1))), vec![3]);
    bind(&mut old, 10, "198.18.10.3", mac(3), db1, Some(600));
    bind(&mut old, 10, "198.18.10.2", mac(2), web2, Some(600));
    let before = state(&old, at(10));
    assert_eq!(before.macs_of("db1").len(), 2);

    // db1 is deleted; web9 is a new VM.
    let mut new = Switch::new(
        &spec(vec![
            trunk("uplink1", &[10], None),
            access("web1", 10, Some(mac(1))),
            access("web2", 10, Some(mac(2))),
            access("web9", 10, Some(mac(9))),
        ]),
        at(10),
    )
    .unwrap();
    let report = new.carry_over_from(old, at(10));
    assert_eq!(
        report,
        CarryOver {
            port_map: vec![Some(PortId(0)), Some(PortId(1)), Some(PortId(3)), None],
            ports_added: vec!["web9".into()],
            ports_removed: vec!["db1".into()],
            macs_kept: 2,
            macs_dropped: 2,
            bindings_kept: 1,
            bindings_dropped: 1,
        }
    );
    let after = state(&new, at(10));
    assert!(after.ports.iter().all(|p| p.name != "db1"));
    assert!(after.macs.iter().all(|m| m.1 != mac(3) && m.1 != mac(0x33)));
    assert_eq!(
        after.bindings,
        vec![(
            10,
            ip("198.18.10.2"),
            mac(2),
            "web2".into(),
            Some(Timestamp(at(6).0 + 600_000_000_000)),
            BindingSource::Dhcp
        )]
    );
    // web2 moved from index 3 to 2: its entry and its binding follow.
    assert_eq!(new.bindings()[0].binding.port, PortId(2));
    assert_eq!(out(&send(&mut new, at(11), web1, mac(2), mac(1))), vec![2]);
    assert_eq!(after.port("web2").counters, before.port("web2").counters);
    let web9 = after.port("web9");
    assert_eq!(web9.counters, PortCounters::default());
    assert_eq!(
        after.macs_of("web9"),
        vec![(10, mac(9), "web9".into(), MacKind::Guest, at(10), at(10))]
    );
}

#[test]
fn lowering_max_macs_keeps_the_most_recent_secure_macs_and_their_kind() {
    // max_macs counts the guest's own MAC: 4 = own + 3 learned; lowered to 2 = own
    // + the most recent one (and to 1: the guest's own MAC alone).
    let spec = |max_a: u16, max_b: u16| {
        apply_spec(
            vec![
                trunk("uplink1", &[10], None),
                capped(access("a", 10, Some(mac(1))), max_a, false),
                capped(access("b", 10, Some(mac(2))), max_b, true),
            ],
            32,
        )
    };
    let mut old = Switch::new(&spec(4, 4), at(0)).unwrap();
    for (i, t) in [(0x10u8, 1u64), (0x11, 3), (0x12, 2)] {
        assert!(!out(&send(&mut old, at(t), PortId(1), BCAST, mac(i))).is_empty());
        assert!(!out(&send(&mut old, at(t), PortId(2), BCAST, mac(i + 0x10))).is_empty());
    }
    // A learned MAC sends again later: it becomes the most recently seen.
    let _ = send(&mut old, at(5), PortId(1), BCAST, mac(0x10));
    assert_eq!(old.port(PortId(1)).unwrap().secure.unwrap().count, 4);
    let violations_before = old.port(PortId(1)).unwrap().secure.unwrap().violations;

    let mut new = Switch::new(&spec(2, 2), at(10)).unwrap();
    let report = new.carry_over_from(old, at(10));
    assert_eq!((report.macs_kept, report.macs_dropped), (4, 4));
    let after = state(&new, at(10));
    assert_eq!(
        after.macs_of("a"),
        vec![
            (10, mac(1), "a".into(), MacKind::Guest, at(0), at(0)),
            (
                10,
                mac(0x10),
                "a".into(),
                MacKind::Secure(SecureKind::Dynamic),
                at(1),
                at(5)
            ),
        ]
    );
    assert_eq!(
        after.macs_of("b"),
        vec![
            (10, mac(2), "b".into(), MacKind::Guest, at(0), at(0)),
            (
                10,
                mac(0x21),
                "b".into(),
                MacKind::Secure(SecureKind::Sticky),
                at(3),
                at(3)
            ),
        ]
    );
    let a = after.port("a").secure.unwrap();
    assert_eq!(
        (a.count, a.max_macs, a.violations),
        (2, 2, violations_before)
    );
    assert_eq!(after.port("b").secure.unwrap().count, 2);
    // The port is full: a new MAC is a violation, a kept one still passes.
    assert_eq!(
        send(&mut new, at(11), PortId(1), BCAST, mac(0x13)),
        Verdict::Drop(DropReason::SecureMacLimit)
    );
    assert!(!out(&send(&mut new, at(11), PortId(1), BCAST, mac(0x10))).is_empty());

    // Down to 1: only the guest's own MAC.
    let mut old = Switch::new(&spec(4, 4), at(0)).unwrap();
    let _ = send(&mut old, at(1), PortId(1), BCAST, mac(0x10));
    let mut new = Switch::new(&spec(1, 4), at(10)).unwrap();
    let report = new.carry_over_from(old, at(10));
    assert_eq!((report.macs_kept, report.macs_dropped), (2, 1));
    assert_eq!(state(&new, at(10)).macs_of("a").len(), 1);
    assert_eq!(new.port(PortId(1)).unwrap().secure.unwrap().count, 1);
}

/// a: port security max 1, shutdown, recovery after 60 s; a second MAC shuts it.
fn err_disabled_switch(spec: &SwitchSpec) -> Switch {
    let mut sw = Switch::new(spec, at(0)).unwrap();
    assert_eq!(
        send(&mut sw, at(5), PortId(1), BCAST, mac(0x10)),
        Verdict::Drop(DropReason::SecureMacLimit)
    );
    let ed = sw.port(PortId(1)).unwrap().err_disabled.unwrap();
    assert_eq!((ed.cause, ed.since), (ErrDisableCause::PortSecurity, at(5)));
    let _ = sw.drain_events().count();
    sw
}

#[test]
fn err_disabled_by_port_security_stays_while_port_security_does() {
    let mut a = capped(access("a", 10, Some(mac(1))), 1, false);
    a.features.port_security.as_mut().unwrap().violation = Violation::Shutdown;
    a.features.errdisable_recovery_secs = Some(60);
    let with = apply_spec(
        vec![
            trunk("uplink1", &[10], None),
            a.clone(),
            access("b", 10, Some(mac(2))),
        ],
        8,
    );
    let mut without = with.clone();
    without.ports[1].features.port_security = None;

    // Port security stays: still error-disabled, same cause and time, so the 60 s
    // recovery keeps its schedule.
    let old = err_disabled_switch(&with);
    let before = state(&old, at(10));
    let mut new = Switch::new(&with, at(10)).unwrap();
    new.carry_over_from(old, at(10));
    assert_eq!(state(&new, at(10)), before);
    assert_eq!(
        send(&mut new, at(11), PortId(2), mac(1), mac(2)),
        Verdict::Drop(DropReason::ErrDisabled)
    );
    new.tick(at(64));
    assert!(new.port(PortId(1)).unwrap().err_disabled.is_some(), "59 s");
    new.tick(at(66));
    assert!(new.port(PortId(1)).unwrap().err_disabled.is_none(), "61 s");

    // Port security removed: the cause is gone, the port is back at once.
    let old = err_disabled_switch(&with);
    let mut new = Switch::new(&without, at(10)).unwrap();
    new.carry_over_from(old, at(10));
    let p = new.port(PortId(1)).unwrap();
    assert_eq!((p.err_disabled, p.secure), (None, None));
    assert_eq!(
        out(&send(&mut new, at(11), PortId(2), mac(1), mac(2))),
        vec![1]
    );
    assert_eq!(
        out(&send(&mut new, at(11), PortId(1), mac(2), mac(1))),
        vec![2]
    );
}

fn team_spec(active: &[&str]) -> SwitchSpec {
    let team = TeamingSpec {
        policy: TeamingPolicy::ExplicitFailover,
        active: active.iter().map(|s| s.to_string()).collect(),
        standby: vec![],
        failback: true,
    };
    let mut ports = vec![trunk("uplink1", &[10], None), trunk("uplink2", &[10], None)];
    for i in 0..4u8 {
        let mut g = access(&format!("vm{i}"), 10, Some(mac(i)));
        if i < 2 {
            g.features.teaming = Some(team.clone());
        }
        ports.push(g);
    }
    apply_spec(ports, 16)
}

#[test]
fn a_link_down_uplink_stays_down_and_a_new_teaming_order_moves_pins_with_announcements() {
    // Originating-port guests (vm2, vm3) and explicit-failover guests (vm0, vm1):
    // uplink1 has lost carrier, so all of them use uplink2.
    let mut old = Switch::new(&team_spec(&["uplink1", "uplink2"]), at(0)).unwrap();
    old.set_link_up(PortId(0), false, at(1)).unwrap();
    let _ = old.drain_events().count();
    let before = state(&old, at(2));
    assert!(
        before
            .ports
            .iter()
            .filter(|p| p.name.starts_with("vm"))
            .all(|p| p.uplink.as_deref() == Some("uplink2"))
    );

    let mut new = Switch::new(&team_spec(&["uplink1", "uplink2"]), at(2)).unwrap();
    new.carry_over_from(old, at(2));
    assert_eq!(state(&new, at(2)), before);
    assert!(!new.port(PortId(0)).unwrap().link_up);
    assert_eq!(moves(&mut new), vec![], "nobody moved");
    // Broadcasts go out by uplink2 only.
    assert_eq!(
        out(&send(&mut new, at(3), PortId(2), BCAST, mac(0))),
        vec![1, 3, 4, 5]
    );

    // Carrier back, and the operator puts uplink2 first: vm0 and vm1 move, announced.
    let mut old = Switch::new(&team_spec(&["uplink1", "uplink2"]), at(0)).unwrap();
    let _ = old.drain_events().count();
    assert_eq!(old.uplink_of(PortId(2)), Some(PortId(0)));
    let mut new = Switch::new(&team_spec(&["uplink2", "uplink1"]), at(5)).unwrap();
    new.carry_over_from(old, at(6));
    let ev: Vec<Event> = new.drain_events().collect();
    assert!(
        ev.iter().all(|e| e.at_ns == at(6).0),
        "stamped at the apply"
    );
    let moved: Vec<_> = ev
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::UplinkMoved {
                port,
                vid,
                from,
                to,
            } => Some((port, vid, from, to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        moved,
        vec![
            (PortId(2), 10, Some(PortId(0)), PortId(1)),
            (PortId(3), 10, Some(PortId(0)), PortId(1)),
        ]
    );
    assert_eq!(
        out(&send(&mut new, at(7), PortId(2), ROUTER, mac(0))),
        vec![1]
    );
}

#[test]
fn a_smaller_mac_table_keeps_guests_first_then_the_freshest_learned_macs() {
    let spec = |table: usize| {
        apply_spec(
            vec![
                trunk("uplink1", &[10], None),
                access("web1", 10, Some(mac(1))),
                access("web2", 10, None),
                access("spare", 10, None),
            ],
            table,
        )
    };
    let mut old = Switch::new(&spec(64), at(0)).unwrap();
    let _ = send(&mut old, at(1), PortId(2), BCAST, mac(2));
    // 20 hosts behind the uplink, host i last seen at 10 + i s.
    for i in 0..20u8 {
        let host = MacAddr([0, 0x1b, 0x21, 0, 0, i]);
        let _ = send_tagged(&mut old, at(10 + i as u64), PortId(0), 10, BCAST, host);
    }
    assert_eq!(old.mac_table().len(), 22);

    let mut new = Switch::new(&spec(8), at(40)).unwrap();
    let report = new.carry_over_from(old, at(40));
    // 8 slots: web1 and web2, one kept free for "spare" (its MAC is not known yet),
    // and the 5 hosts seen last.
    assert_eq!((report.macs_kept, report.macs_dropped), (7, 15));
    let after = state(&new, at(40));
    assert_eq!(new.mac_table().len(), 7);
    assert_eq!(after.macs_of("web1").len() + after.macs_of("web2").len(), 2);
    let hosts: Vec<u8> = after.macs_of("uplink1").iter().map(|m| m.1.0[5]).collect();
    assert_eq!(hosts, vec![15, 16, 17, 18, 19]);
    // "spare" still gets its MAC; then the table is full.
    assert!(!out(&send(&mut new, at(41), PortId(3), BCAST, mac(9))).is_empty());
    assert_eq!(new.mac_table().len(), 8);
    assert_eq!(new.mac_table().capacity(), 8);
}

#[test]
fn an_effective_mac_reported_at_run_time_survives_the_apply() {
    let spec = || {
        let mut web1 = access("web1", 10, Some(mac(1)));
        web1.security.mac_changes = Policy::Accept;
        apply_spec(
            vec![
                trunk("uplink1", &[10], None),
                web1,
                access("web2", 10, Some(mac(2))),
            ],
            16,
        )
    };
    let mut old = Switch::new(&spec(), at(0)).unwrap();
    // The hypervisor reports that web1's guest now uses :41.
    old.report_effective_mac(PortId(1), mac(0x41), at(3))
        .unwrap();
    let _ = old.drain_events().count();
    let before = state(&old, at(5));

    let mut new = Switch::new(&spec(), at(5)).unwrap();
    let report = new.carry_over_from(old, at(5));
    assert_eq!((report.macs_kept, report.macs_dropped), (2, 0));
    let after = state(&new, at(5));
    assert_eq!(after, before);
    let p = after.port("web1");
    assert_eq!(
        (p.initial_mac, p.effective_mac),
        (Some(mac(1)), Some(mac(0x41)))
    );
    assert_eq!(
        after.macs_of("web1"),
        vec![(10, mac(0x41), "web1".into(), MacKind::Guest, at(3), at(3))]
    );
    // Frames to the reported MAC reach web1; the configured one is no longer its.
    assert_eq!(
        out(&send(&mut new, at(6), PortId(2), mac(0x41), mac(2))),
        vec![1]
    );
    assert_eq!(
        out(&send(&mut new, at(6), PortId(2), mac(1), mac(2))),
        vec![0]
    );
}

#[test]
fn bindings_follow_the_configuration_and_a_smaller_table_keeps_api_bindings_and_long_leases() {
    let spec = |statics: Vec<StaticBindingSpec>, max: usize| {
        let mut s = apply_spec(
            vec![
                trunk("uplink1", &[10], None),
                access("web1", 10, Some(mac(1))),
                access("web2", 10, Some(mac(2))),
            ],
            16,
        );
        s.static_bindings = statics;
        s.max_bindings = max;
        s
    };
    let fixed = |addr: &str, m: MacAddr, port: usize| StaticBindingSpec {
        mac: m,
        ip: ip(addr),
        vid: vid(10),
        port,
    };
    let mut old = Switch::new(&spec(vec![fixed("198.18.10.1", mac(1), 1)], 16), at(0)).unwrap();
    let (web1, web2) = (PortId(1), PortId(2));
    bind(&mut old, 10, "198.18.10.2", mac(2), web2, Some(100));
    bind(&mut old, 10, "198.18.10.22", mac(2), web2, Some(1000));
    bind(&mut old, 10, "198.18.10.5", mac(2), web2, Some(500));
    bind(&mut old, 10, "198.18.10.11", mac(1), web1, None);
    assert_eq!(old.binding_count(), 5);

    // The operator deletes the static binding of .1, pins .2 statically, and cuts
    // the table to 3: the spec's .2, then the API binding, then the longest lease.
    let mut new = Switch::new(&spec(vec![fixed("198.18.10.2", mac(2), 2)], 3), at(10)).unwrap();
    let report = new.carry_over_from(old, at(10));
    assert_eq!((report.bindings_kept, report.bindings_dropped), (3, 2));
    let lease_end = |s: u64| Some(Timestamp(at(6).0 + s * 1_000_000_000));
    assert_eq!(
        state(&new, at(10)).bindings,
        vec![
            (
                10,
                ip("198.18.10.2"),
                mac(2),
                "web2".into(),
                None,
                BindingSource::Static
            ),
            (
                10,
                ip("198.18.10.11"),
                mac(1),
                "web1".into(),
                None,
                BindingSource::Api
            ),
            (
                10,
                ip("198.18.10.22"),
                mac(2),
                "web2".into(),
                lease_end(1000),
                BindingSource::Dhcp
            ),
        ]
    );
    assert_eq!(
        new.drain_events().count(),
        0,
        "carried bindings are not new"
    );
}

#[test]
fn acl_hit_counters_move_only_for_an_unchanged_acl() {
    let permit = MacAclRule {
        action: AclAction::Permit,
        src: None,
        dst: None,
        ethertype: None,
        vlan: None,
        cos: None,
    };
    let spec = |edit_rules: Vec<MacAclRule>| {
        let mut web1 = access("web1", 10, Some(mac(1)));
        web1.features.mac_acl_in = Some("keep".into());
        let mut web2 = access("web2", 10, Some(mac(2)));
        web2.features.mac_acl_in = Some("edit".into());
        let mut s = apply_spec(vec![trunk("uplink1", &[10], None), web1, web2], 16);
        s.mac_acls = vec![
            MacAclSpec {
                name: "keep".into(),
                rules: vec![permit],
            },
            MacAclSpec {
                name: "edit".into(),
                rules: edit_rules,
            },
        ];
        s
    };
    let mut old = Switch::new(&spec(vec![permit]), at(0)).unwrap();
    for t in 1..4 {
        assert_eq!(
            out(&send(&mut old, at(t), PortId(1), mac(2), mac(1))),
            vec![2]
        );
        assert_eq!(
            out(&send(&mut old, at(t), PortId(2), mac(1), mac(2))),
            vec![1]
        );
    }
    let deny_arp = MacAclRule {
        action: AclAction::Deny,
        ethertype: Some(0x0806),
        ..permit
    };
    let mut new = Switch::new(&spec(vec![deny_arp, permit]), at(5)).unwrap();
    new.carry_over_from(old, at(5));
    assert_eq!(
        state(&new, at(5)).acl_hits,
        vec![("keep".into(), vec![3, 0]), ("edit".into(), vec![0, 0, 0])]
    );
}

// ---------------------------------------------------------------------------------
// Property: random small switches, random traffic, random configuration edits.

#[derive(Clone, Debug)]
struct GuestGen {
    vlan: u16,
    configured_mac: bool,
    /// (max_macs, sticky)
    port_security: Option<(u16, bool)>,
    forged_accept: bool,
    mac_changes_accept: bool,
}

fn arb_guest() -> impl Strategy<Value = GuestGen> {
    (
        1u16..=3,
        any::<bool>(),
        proptest::option::of((1u16..4, any::<bool>())),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(vlan, configured_mac, port_security, forged_accept, mac_changes_accept)| GuestGen {
                vlan,
                configured_mac,
                port_security,
                forged_accept,
                mac_changes_accept,
            },
        )
}

/// What the operator changes: per old guest (0 keep, 1 move to `vlan`, 2 delete,
/// and a new `max_macs`), whether the second uplink is deleted, guests added, and
/// the MAC table and binding table sizes.
#[derive(Clone, Debug)]
struct Edit {
    guests: Vec<(u8, u16, Option<u16>)>,
    drop_uplink2: bool,
    added: Vec<GuestGen>,
    table: usize,
    max_bindings: usize,
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    (
        proptest::collection::vec((0u8..3, 1u16..=3, proptest::option::of(1u16..4)), 6),
        any::<bool>(),
        proptest::collection::vec(arb_guest(), 0..3),
        4usize..24,
        0usize..6,
    )
        .prop_map(|(guests, drop_uplink2, added, table, max_bindings)| Edit {
            guests,
            drop_uplink2,
            added,
            table,
            max_bindings,
        })
}

fn guest_spec(name: String, g: &GuestGen, m: MacAddr) -> PortSpec {
    let mut p = access(&name, g.vlan, g.configured_mac.then_some(m));
    p.security.forged_transmits = if g.forged_accept {
        Policy::Accept
    } else {
        Policy::Reject
    };
    p.security.mac_changes = if g.mac_changes_accept {
        Policy::Accept
    } else {
        Policy::Reject
    };
    p.features.port_security = g.port_security.map(|(max, sticky)| PortSecuritySpec {
        max_macs: max,
        violation: Violation::Restrict,
        sticky,
        aging: SecureAging::None,
        aging_secs: 0,
        static_macs: vec![],
        sticky_macs: vec![],
    });
    p
}

fn random_spec(uplinks: usize, guests: &[GuestGen], table: usize) -> SwitchSpec {
    let mut ports: Vec<PortSpec> = (0..uplinks)
        .map(|i| trunk(&format!("u{i}"), &[1, 2, 3], None))
        .collect();
    for (i, g) in guests.iter().enumerate() {
        ports.push(guest_spec(format!("g{i}"), g, mac(i as u8)));
    }
    let mut s = apply_spec(ports, table);
    s.max_bindings = 6;
    s
}

fn edited(old: &SwitchSpec, uplinks: usize, e: &Edit) -> SwitchSpec {
    let mut s = old.clone();
    s.mac_table_size = e.table;
    s.max_bindings = e.max_bindings;
    s.ports.clear();
    for (i, p) in old.ports.iter().enumerate() {
        if i < uplinks {
            if !(i == 1 && e.drop_uplink2) {
                s.ports.push(p.clone());
            }
            continue;
        }
        let (action, v, max) = e.guests[i - uplinks];
        let mut p = p.clone();
        match action {
            2 => continue,
            1 => p.vlan = VlanMode::Access(vid(v)),
            _ => {}
        }
        if let (Some(ps), Some(max)) = (p.features.port_security.as_mut(), max) {
            ps.max_macs = max;
        }
        s.ports.push(p);
    }
    for (i, g) in e.added.iter().enumerate() {
        s.ports
            .push(guest_spec(format!("n{i}"), g, mac(0x80 + i as u8)));
    }
    s
}

/// A frame: (ingress port, source, destination, VLAN tag for uplinks, ms step).
type FrameGen = (usize, u8, u8, u16, u64);

fn arb_frames(n: std::ops::Range<usize>) -> impl Strategy<Value = Vec<FrameGen>> {
    proptest::collection::vec((0usize..8, 0u8..12, 0u8..13, 1u16..=3, 0u64..3000), n)
}

/// Pool of MACs: 0..8 are guests' configured MACs, 8..12 hosts behind the uplinks,
/// 12 is broadcast.
fn pool(i: u8) -> MacAddr {
    match i {
        0..8 => mac(i),
        12.. => BCAST,
        _ => MacAddr([0, 0x1b, 0x21, 0, 0, i]),
    }
}

struct Sent {
    total: u64,
    copies: u64,
    drops: u64,
}

fn drive(sw: &mut Switch, now: &mut Timestamp, frames: &[FrameGen]) -> Result<Sent, TestCaseError> {
    let n = sw.ports().len();
    let mut sent = Sent {
        total: 0,
        copies: 0,
        drops: 0,
    };
    for &(p, src, dst, v, step) in frames {
        *now = Timestamp(now.0 + step * 1_000_000);
        sw.tick(*now);
        let ingress = PortId((p % n) as u16);
        let uplink = sw.port(ingress).unwrap().role == PortRole::Uplink;
        let data = frame64(pool(dst), pool(src), uplink.then_some(v));
        let verdict = sw.process(
            *now,
            ingress,
            &IngressFrame {
                data: &data,
                tag: None,
            },
        );
        sent.total += 1;
        match verdict {
            Verdict::Drop(_) => sent.drops += 1,
            Verdict::Hold(..) => prop_assert!(false, "no DHCP snooping here"),
            Verdict::Forward(f) => {
                prop_assert!(!f.out.contains(ingress));
                for o in f.out.iter() {
                    let op = sw.port(o).unwrap();
                    prop_assert!(
                        op.vlan.carries(f.vid),
                        "{} does not carry {}",
                        op.name,
                        f.vid
                    );
                    prop_assert!(op.is_up(), "{} is down", op.name);
                    prop_assert!(!(uplink && op.role == PortRole::Uplink));
                }
                sent.copies += f.out.len() as u64;
            }
        }
    }
    Ok(sent)
}

fn totals(sw: &Switch) -> (u64, u64, u64) {
    sw.ports().iter().fold((0, 0, 0), |(rx, tx, d), p| {
        let c = sw.counters(p.id).unwrap();
        (
            rx + c.rx_frames,
            tx + c.tx_frames,
            d + c.rx_dropped() + c.tx_dropped(),
        )
    })
}

/// The invariants of a switch after an apply (and after any traffic).
fn check_invariants(sw: &Switch, now: Timestamp) -> Result<(), TestCaseError> {
    let t = sw.mac_table();
    prop_assert!(t.len() <= t.capacity(), "{} > {}", t.len(), t.capacity());
    for (v, m, e) in t.entries(now) {
        let p = sw.port(e.port).unwrap();
        prop_assert!(
            p.vlan.carries(v),
            "{m} on {} in VLAN {v} it does not carry",
            p.name
        );
        prop_assert_eq!(
            e.kind.is_local(),
            p.role == PortRole::Guest,
            "{} {:?}",
            m,
            e
        );
    }
    for p in sw.ports() {
        if let Some(s) = p.secure {
            prop_assert!(
                s.count <= s.max_macs,
                "{}: {} > {}",
                p.name,
                s.count,
                s.max_macs
            );
            prop_assert_eq!(t.entries_of(p.id).len(), s.count as usize, "{}", &p.name);
        }
        if let Some(e) = p.effective_mac {
            let v = p.vlan.vids()[0];
            let entry = t.lookup(v, e, now);
            prop_assert!(
                entry.is_some_and(|x| x.port == p.id && x.kind == MacKind::Guest),
                "{}",
                &p.name
            );
        }
        if p.role == PortRole::Guest
            && let Some(u) = sw.uplink_of(p.id)
        {
            let up = sw.port(u).unwrap();
            prop_assert!(up.role == PortRole::Uplink && up.is_up());
            prop_assert!(up.vlan.carries(p.vlan.vids()[0]));
        }
    }
    for b in sw.bindings() {
        prop_assert!(sw.port(b.binding.port).unwrap().vlan.carries(b.vid));
    }
    prop_assert!(sw.binding_count() <= sw.binding_capacity());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_apply_keeps_the_switch_consistent(
        uplinks in 1usize..=2,
        guests in proptest::collection::vec(arb_guest(), 2..=6),
        table in 8usize..24,
        before in arb_frames(1..60),
        link_down in proptest::option::of(0usize..2),
        reports in proptest::collection::vec((0usize..8, 0u8..12), 0..2),
        leases in proptest::collection::vec((0usize..8, 1u16..=3, 0u8..8, proptest::option::of(1u32..100)), 0..5),
        edit in arb_edit(),
        after in arb_frames(1..40),
    ) {
        let spec = random_spec(uplinks, &guests, table);
        let Ok(mut old) = Switch::new(&spec, Timestamp(0)) else { return Ok(()) };
        let n = spec.ports.len();
        let mut now = Timestamp(0);
        if let Some(u) = link_down {
            let _ = old.set_link_up(PortId((u % uplinks) as u16), false, now);
        }
        for (p, m) in reports {
            let _ = old.report_effective_mac(PortId((p % n) as u16), pool(m), now);
        }
        drive(&mut old, &mut now, &before)?;
        for (i, (p, v, host, lease)) in leases.into_iter().enumerate() {
            let _ = old.install_binding(NewBinding {
                vid: vid(v),
                ip: IpAddr::from([198, 18, v as u8, i as u8 + 1]),
                mac: mac(host),
                port: PortId((p % n) as u16),
                lease_secs: lease,
                source: if lease.is_some() { BindingSource::Dhcp } else { BindingSource::Api },
                duid: None,
            }, now);
        }
        let _ = old.drain_events().count();
        let old_state = state(&old, now);
        let old_bindings = old.binding_count();

        let new_spec = edited(&spec, uplinks, &edit);
        let Ok(mut new) = Switch::new(&new_spec, now) else { return Ok(()) };
        let report = new.carry_over_from(old, now);

        // The report matches the specs.
        prop_assert_eq!(report.port_map.len(), new_spec.ports.len());
        for (p, o) in new.ports().iter().zip(&report.port_map) {
            prop_assert_eq!(o.is_some(), spec.ports.iter().any(|q| q.name == p.name));
            if let Some(o) = o {
                prop_assert_eq!(&spec.ports[o.index()].name, &p.name);
                // Counters and admin/link state moved unchanged.
                let was = old_state.port(&p.name);
                prop_assert_eq!(new.counters(p.id).unwrap(), &was.counters);
                prop_assert_eq!((p.admin_up, p.link_up), (was.admin_up, was.link_up));
            }
        }
        prop_assert_eq!(report.ports_added.len(), report.port_map.iter().filter(|o| o.is_none()).count());
        prop_assert_eq!(report.ports_removed.len() + (new_spec.ports.len() - report.ports_added.len()), spec.ports.len());
        prop_assert_eq!(report.macs_kept + report.macs_dropped, old_state.macs.len());
        prop_assert_eq!(report.bindings_kept + report.bindings_dropped, old_bindings);
        for e in new.drain_events() {
            if let EventKind::UplinkMoved { port, .. } = e.kind {
                prop_assert!(report.port_map[port.index()].is_some(), "a new port announced");
            }
        }
        check_invariants(&new, now)?;

        // Traffic after the swap: no panic, and the counters add up.
        let (rx0, tx0, d0) = totals(&new);
        let sent = drive(&mut new, &mut now, &after)?;
        let (rx1, tx1, d1) = totals(&new);
        prop_assert_eq!(rx1 - rx0, sent.total);
        prop_assert_eq!(tx1 - tx0, sent.copies);
        prop_assert!(d1 - d0 >= sent.drops);
        check_invariants(&new, now)?;
    }
}

/// Regression (proptest seed f119a123…): g0 (port security max 2, forged transmits
/// accepted, no configured MAC) learns :01 as its MAC and :04 as a dynamic secure
/// MAC. The apply drops :01 (g1's configured MAC) and g0 is left without an effective
/// MAC but with :04; its next frame from :04 takes :04 as its MAC. That turns the
/// secure entry into the guest entry: still one local MAC, so the count stays 1
/// (it was counted twice).
#[test]
fn a_carried_secure_mac_taken_as_the_effective_mac_is_counted_once() {
    let guests = [
        GuestGen {
            vlan: 2,
            configured_mac: false,
            port_security: Some((2, false)),
            forged_accept: true,
            mac_changes_accept: false,
        },
        GuestGen {
            vlan: 2,
            configured_mac: true,
            port_security: None,
            forged_accept: false,
            mac_changes_accept: true,
        },
    ];
    let spec = random_spec(1, &guests, 8);
    let mut old = Switch::new(&spec, Timestamp(0)).unwrap();
    let mut now = Timestamp(0);
    drive(
        &mut old,
        &mut now,
        &[(2, 2, 0, 1, 0), (4, 1, 0, 1, 0), (1, 4, 0, 1, 0)],
    )
    .unwrap();
    check_invariants(&old, now).unwrap();
    let g0 = id(&old, "g0");
    assert_eq!(old.port(g0).unwrap().effective_mac, Some(mac(1)));
    assert_eq!(old.port(g0).unwrap().secure.unwrap().count, 2);

    let edit = Edit {
        guests: vec![(0, 1, None); 6],
        drop_uplink2: false,
        added: vec![],
        table: 4,
        max_bindings: 0,
    };
    let mut new = Switch::new(&edited(&spec, 1, &edit), now).unwrap();
    let report = new.carry_over_from(old, now);
    assert_eq!((report.macs_kept, report.macs_dropped), (2, 1));
    check_invariants(&new, now).unwrap();
    let g0 = id(&new, "g0");
    assert_eq!(new.port(g0).unwrap().effective_mac, None);
    assert_eq!(
        state(&new, now).macs_of("g0"),
        vec![(
            2,
            mac(4),
            "g0".into(),
            MacKind::Secure(SecureKind::Dynamic),
            Timestamp(0),
            Timestamp(0)
        )]
    );

    drive(&mut new, &mut now, &[(1, 4, 0, 1, 0)]).unwrap();
    let p = new.port(g0).unwrap();
    assert_eq!(p.effective_mac, Some(mac(4)));
    assert_eq!(p.secure.unwrap().count, 1);
    assert_eq!(
        state(&new, now).macs_of("g0"),
        vec![(2, mac(4), "g0".into(), MacKind::Guest, now, now)]
    );
    check_invariants(&new, now).unwrap();
}
