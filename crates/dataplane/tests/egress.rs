//! What leaves the switch (`egress.rs`): each copy's port and egress tag, the bytes
//! as received or as the switch rewrote them (DHCP option 82 with the spec's
//! circuit-id and remote-id, a partial checksum completed first), and the RARP
//! announcements the switch originates when a guest moves to another uplink.

use dhcproto::v4::MessageType;
use portcullis_dataplane::*;
use std::net::Ipv4Addr;

mod support;
use support::*;

const UP1: PortId = PortId(0);
const UP2: PortId = PortId(1);
const A: PortId = PortId(2);
const B: PortId = PortId(3);

/// Uplinks up1 (VLAN 10 tagged, untagged 20) and up2 (VLAN 10 tagged), guests a and
/// b on VLAN 10 (untagged), a inserting option 82, both active on up1, standby up2.
fn switch() -> Switch {
    switch_with(&[("a", 1, "up1"), ("b", 2, "up1")])
}

/// The uplinks of [`switch`] and `guests`: (name, MAC, active uplink; the other is
/// the standby), the first inserting option 82. DHCP snooping everywhere, trusted
/// on the uplinks.
fn switch_with(guests: &[(&str, u8, &str)]) -> Switch {
    let mut ports = vec![
        trunk("up1", &[10, 20], Some(20)),
        trunk("up2", &[10, 20], None),
    ];
    for p in &mut ports {
        p.features.dhcp_snooping = Some(snooping(true, Option82::Keep));
    }
    for (k, (name, i, active)) in guests.iter().enumerate() {
        let mut p = access(name, 10, Some(mac(*i)));
        let option82 = if k == 0 {
            Option82::Insert
        } else {
            Option82::Keep
        };
        p.features.dhcp_snooping = Some(snooping(false, option82));
        p.features.teaming = Some(TeamingSpec {
            policy: TeamingPolicy::ExplicitFailover,
            active: vec![active.to_string()],
            standby: vec![if *active == "up1" { "up2" } else { "up1" }.into()],
            failback: true,
        });
        ports.push(p);
    }
    let mut spec = switch_spec("sw", ports);
    spec.max_bindings = 8;
    Switch::new(&spec, Timestamp::from_secs(0)).unwrap()
}

fn snooping(trusted: bool, option82: Option82) -> DhcpSnoopingSpec {
    DhcpSnoopingSpec {
        trusted,
        rate_limit_pps: None,
        option82,
        drop_untrusted_option82: true,
        mode: EnforceMode::Enforce,
    }
}

/// A DHCPDISCOVER from guest `i` (from 0.0.0.0, broadcast), UDP checksum computed.
fn discover(i: u8) -> Vec<u8> {
    let any = Ipv4Addr::UNSPECIFIED;
    dhcp(MessageType::Discover, mac(i), mac(i), any, any)
}

fn forward(sw: &mut Switch, port: PortId, data: &[u8]) -> Forward {
    match sw.process(
        Timestamp::from_secs(1),
        port,
        &IngressFrame { data, tag: None },
    ) {
        Verdict::Forward(f) => f,
        v => panic!("not forwarded: {v:?}"),
    }
}

/// The bytes of one copy as they go on the wire.
fn wire(o: &Output<'_>, c: TxCopy) -> Vec<u8> {
    let mut f = o.frame.head.to_vec();
    if let Some(tci) = c.tci {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&tci.to_be_bytes());
    }
    f.extend_from_slice(o.frame.body);
    f
}

#[test]
fn a_plain_frame_leaves_as_received_with_each_ports_tag() {
    let mut sw = switch();
    let mut f = MacAddr::BROADCAST.0.to_vec();
    f.extend_from_slice(&mac(1).0);
    f.extend_from_slice(&[0x08, 0x06]);
    f.resize(60, 0);
    let fwd = forward(&mut sw, A, &f);
    let o = sw.output(A, &fwd, &f, false);
    assert!(!o.rewritten && !o.rewrite_failed);
    assert!(std::ptr::eq(o.frame.head.as_ptr(), f.as_ptr()), "no copy");
    let copies: Vec<TxCopy> = o.copies().collect();
    assert_eq!(
        copies,
        vec![TxCopy::to(UP1, Some(10)), TxCopy::to(B, None),]
    );
    assert_eq!(wire(&o, copies[1]), f);
    // The frame from up1 tagged 10 reaches a untagged, its priority bits kept on
    // the way out elsewhere.
    let mut t = MacAddr::BROADCAST.0.to_vec();
    t.extend_from_slice(&[0, 0x1b, 0x21, 0, 0, 1]);
    t.extend_from_slice(&[0x81, 0x00, 0xa0, 0x0a, 0x08, 0x06]);
    t.resize(64, 0);
    let fwd = forward(&mut sw, UP1, &t);
    let o = sw.output(UP1, &fwd, &t, false);
    assert_eq!(
        o.copies().collect::<Vec<_>>(),
        vec![TxCopy::to(A, None), TxCopy::to(B, None)]
    );
    assert_eq!(o.frame.body, &t[16..], "the ingress tag is cut out");
    // A copy is never listed on its ingress port, whatever `out` says.
    let mut bad = fwd;
    bad.out.insert(UP1);
    assert!(
        sw.output(UP1, &bad, &t, false)
            .copies()
            .all(|c| c.port != UP1)
    );
}

#[test]
fn option_82_is_inserted_with_the_specs_ids_and_a_partial_checksum_completed() {
    let mut sw = switch();
    let d = discover(1);
    let fwd = forward(&mut sw, A, &d);
    assert_eq!(fwd.rewrite, Rewrite::InsertOption82);
    let o = sw.output(A, &fwd, &d, false);
    assert!(o.rewritten && !o.rewrite_failed);
    let copies: Vec<TxCopy> = o.copies().collect();
    assert_eq!(
        copies,
        vec![TxCopy::to(UP1, Some(10))],
        "trusted ports only"
    );
    let out = wire(&o, copies[0]);
    let l3 = &out[18..];
    let udp = dhcp::ipv4_udp(l3).unwrap();
    let view = dhcp::parse(&l3[udp.payload.clone()]).unwrap();
    let relay = &l3[udp.payload][view.relay_agent_info.unwrap()];
    // Option 82: circuit-id "sw/a", remote-id "sw".
    assert_eq!(relay, b"\x52\x0a\x01\x04sw/a\x02\x02sw");
    // Its checksums are right: stripping (which verifies them) gives back d.
    let mut back = vec![0; 2048];
    let n = dhcp::strip_option82(&out, 16, &mut back).unwrap();
    assert_eq!([&back[..12], &back[16..n]].concat(), d);

    // The same frame with its UDP checksum left to offload: completed, then rewritten.
    let mut partial = d.clone();
    let l4 = 14 + 20;
    let pseudo: u32 = [0u16, 0, 0xffff, 0xffff, 17, (d.len() - l4) as u16]
        .iter()
        .map(|w| u32::from(*w))
        .sum();
    let folded = ((pseudo & 0xffff) + (pseudo >> 16)) as u16;
    partial[l4 + 6..l4 + 8].copy_from_slice(&folded.to_be_bytes());
    let o = sw.output(A, &fwd, &partial, true);
    assert!(o.rewritten, "completed first");
    assert_eq!(wire(&o, copies[0]), out);
    // Not marked partial, it does not verify: sent unchanged, flagged.
    let o = sw.output(A, &fwd, &partial, false);
    assert!(!o.rewritten && o.rewrite_failed);
    assert_eq!(o.frame.body, &partial[12..]);
}

#[test]
fn a_guest_moved_to_another_uplink_is_announced_there_with_its_tag() {
    let mut sw = switch();
    let _ = sw.drain_events().count();
    let mut sent = Vec::new();
    sw.drain_emitted(|e| sent.push(e.copy));
    assert!(sent.is_empty());
    sw.set_link_up(UP1, false, Timestamp::from_secs(2)).unwrap();
    let mut frames = Vec::new();
    sw.drain_emitted(|e| frames.push((e.copy, [e.frame.head, e.frame.body].concat())));
    assert_eq!(frames.len(), 2, "a and b: {frames:?}");
    for ((copy, bytes), i) in frames.iter().zip([1, 2]) {
        assert_eq!(*copy, TxCopy::to(UP2, Some(10)));
        let mut want = [0u8; 60];
        want[..6].copy_from_slice(&[0xff; 6]);
        want[6..12].copy_from_slice(&mac(i).0);
        want[12..22].copy_from_slice(&[0x80, 0x35, 0, 1, 0x08, 0x00, 6, 4, 0, 3]);
        want[22..28].copy_from_slice(&mac(i).0);
        want[32..38].copy_from_slice(&mac(i).0);
        assert_eq!(bytes[..], want[..]);
    }
    sw.drain_emitted(|_| panic!("drained once"));
    // Back to up1, whose VLAN 10 is tagged too; discarded with the events when asked.
    sw.set_link_up(UP1, true, Timestamp::from_secs(3)).unwrap();
    assert_eq!(sw.emitted().count(), 2);
    assert!(sw.emitted().all(|(c, _, _)| c.port == UP1));
    sw.discard_events();
    assert_eq!(sw.emitted().count(), 0);
    assert_eq!(sw.drain_events().count(), 0);
    assert_eq!(sw.emit_dropped(), 0);
}

/// An apply announces the guests it moves to another uplink, as a failover does —
/// only those it carries over (a port the apply adds has nothing to announce).
#[test]
fn an_apply_announces_the_guests_it_moves_and_only_those() {
    let mut old = switch();
    old.set_link_up(UP2, false, Timestamp::from_secs(1))
        .unwrap();
    old.set_link_up(UP2, true, Timestamp::from_secs(1)).unwrap();
    assert_eq!(old.emitted().count(), 0, "a and b stayed on up1");
    // a moves to up2 (its active uplink now), b stays, c is new.
    let mut new = switch_with(&[("a", 1, "up2"), ("b", 2, "up1"), ("c", 3, "up2")]);
    let c = PortId(4);
    let report = new.carry_over_from(old, Timestamp::from_secs(2));
    assert_eq!(report.ports_added, vec!["c".to_string()]);
    let queued: Vec<(TxCopy, PortId)> = new.emitted().map(|(t, _, about)| (t, about)).collect();
    assert_eq!(
        queued,
        vec![(TxCopy::to(UP2, Some(10)), A)],
        "a announced on up2; c, new, not"
    );
    assert!(new.uplink_of(c) == Some(UP2) && new.uplink_of(B) == Some(UP1));
}

/// A guest moved here from another host (a cluster claim) is announced on the
/// uplink it is pinned to: a RARP from its MAC, then a gratuitous ARP of its bound
/// IPv4 address and an unsolicited NA of its bound IPv6 address — not another
/// port's addresses, and nothing for a port whose uplink is down.
#[test]
fn a_guest_moved_from_another_host_is_announced_with_its_addresses() {
    let mut sw = switch();
    let now = Timestamp::from_secs(1);
    let bind = |sw: &mut Switch, port: PortId, m: u8, ip: &str| {
        sw.install_binding(
            bindings::NewBinding {
                vid: Vid::new(10).unwrap(),
                ip: ip.parse().unwrap(),
                mac: mac(m),
                port,
                lease_secs: Some(600),
                source: bindings::BindingSource::Dhcp,
                duid: None,
            },
            now,
        )
        .unwrap();
    };
    bind(&mut sw, A, 1, "198.18.10.1");
    bind(&mut sw, A, 1, "fd00:198:18::1");
    bind(&mut sw, B, 2, "198.18.10.2");
    let _ = sw.drain_events().count();
    assert_eq!(sw.announce_guest(A), 3);
    let mut frames = Vec::new();
    sw.drain_emitted(|e| frames.push((e.copy, [e.frame.head, e.frame.body].concat())));
    assert!(frames.iter().all(|(c, _)| *c == TxCopy::to(UP1, Some(10))));
    let ethertypes: Vec<[u8; 2]> = frames.iter().map(|(_, b)| [b[12], b[13]]).collect();
    assert_eq!(ethertypes, [[0x80, 0x35], [0x08, 0x06], [0x86, 0xdd]]);
    let arp = wire::arp::parse(&frames[1].1[14..]).unwrap();
    assert!(arp.is_gratuitous());
    assert_eq!(
        (arp.sender_mac, arp.sender_ip),
        (mac(1), Ipv4Addr::new(198, 18, 10, 1))
    );
    let (_, na) = wire::nd::parse_l3(&frames[2].1[14..]).unwrap();
    assert_eq!(
        na.message,
        wire::nd::NdMessage::NeighborAdvertisement {
            router: false,
            solicited: false,
            override_flag: true,
            target: "fd00:198:18::1".parse().unwrap()
        }
    );
    // Both uplinks down: nowhere to announce.
    sw.set_link_up(UP1, false, Timestamp::from_secs(2)).unwrap();
    sw.set_link_up(UP2, false, Timestamp::from_secs(2)).unwrap();
    sw.drain_emitted(|_| {});
    assert_eq!(sw.announce_guest(A), 0);
    assert_eq!(sw.emit_dropped(), 0);
}
