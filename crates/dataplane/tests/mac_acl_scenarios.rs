//! MAC ACLs bound to ports, as an operator uses them: inbound and outbound, the
//! implicit deny, per-rule hit counters, and what each refusal is counted as.

use portcullis_dataplane::*;

mod support;
use support::*;

const UPLINK: PortId = PortId(0);
const A: PortId = PortId(1);
const B: PortId = PortId(2);
const C: PortId = PortId(3);

fn rule(action: AclAction, ethertype: Option<u16>, src: Option<MacAddr>) -> MacAclRule {
    MacAclRule {
        action,
        src: src.map(|m| MacMatch {
            mac: m,
            mask: MacAddr([0xff; 6]),
        }),
        dst: None,
        ethertype,
        vlan: None,
        cos: None,
    }
}

/// uplink (ACL in: "edge"), a (ACL in: "no-ipv6"), b (ACL out: "not-from-a"), c.
fn switch() -> Switch {
    let acls = vec![
        MacAclSpec {
            name: "no-ipv6".into(),
            rules: vec![
                rule(AclAction::Deny, Some(0x86dd), None),
                rule(AclAction::Permit, None, None),
            ],
        },
        MacAclSpec {
            name: "not-from-a".into(),
            rules: vec![
                rule(AclAction::Deny, None, Some(mac(1))),
                rule(AclAction::Permit, None, None),
            ],
        },
        // Only ARP and IPv4 from the network; everything else meets the implicit deny.
        MacAclSpec {
            name: "edge".into(),
            rules: vec![
                rule(AclAction::Permit, Some(0x0806), None),
                rule(AclAction::Permit, Some(0x0800), None),
            ],
        },
    ];
    let port = |name: &str, i: u8, acl_in: Option<&str>, acl_out: Option<&str>| {
        let mut p = access(name, 10, Some(mac(i)));
        p.features.mac_acl_in = acl_in.map(Into::into);
        p.features.mac_acl_out = acl_out.map(Into::into);
        p
    };
    let mut uplink = trunk("uplink", &[10], Some(10));
    uplink.features.mac_acl_in = Some("edge".into());
    let mut spec = switch_spec(
        "acl",
        vec![
            uplink,
            port("a", 1, Some("no-ipv6"), None),
            port("b", 2, None, Some("not-from-a")),
            port("c", 3, None, None),
        ],
    );
    spec.mac_table_size = 16;
    spec.mac_acls = acls;
    Switch::new(&spec, Timestamp(0)).unwrap()
}

fn send(sw: &mut Switch, port: PortId, dst: MacAddr, src: MacAddr, ethertype: u16) -> Verdict {
    send_at(
        sw,
        Timestamp::from_secs(1),
        port,
        &eth(dst, src, ethertype, &[]),
    )
}

fn hits(sw: &Switch, name: &str) -> Vec<u64> {
    sw.mac_acls()
        .iter()
        .find(|a| a.spec.name == name)
        .unwrap()
        .hits
        .clone()
}

fn drop_count(sw: &Switch, p: PortId) -> (u64, u64) {
    let c = sw.counters(p).unwrap();
    (
        c.rx_drops[DropReason::MacAclDeny as usize],
        c.tx_drops[DropReason::MacAclDeny as usize],
    )
}

#[test]
fn an_inbound_acl_denying_ipv6_blocks_it_but_not_ipv4() {
    let mut sw = switch();
    assert_eq!(
        send(&mut sw, A, mac(3), mac(1), 0x86dd),
        Verdict::Drop(DropReason::MacAclDeny)
    );
    assert_eq!(out(&send(&mut sw, A, mac(3), mac(1), 0x0800)), vec![3]);
    assert_eq!(out(&send(&mut sw, A, mac(3), mac(1), 0x0800)), vec![3]);
    assert_eq!(
        hits(&sw, "no-ipv6"),
        vec![1, 2, 0],
        "rule 1 deny ipv6, rule 2 permit, implicit deny"
    );
    assert_eq!(drop_count(&sw, A), (1, 0));
    // c has no ACL: its IPv6 passes.
    assert_eq!(out(&send(&mut sw, C, mac(1), mac(3), 0x86dd)), vec![1]);
}

#[test]
fn an_outbound_acl_filters_each_copy_and_counts_it_on_the_refusing_port() {
    let mut sw = switch();
    // a's broadcast: b's outbound ACL refuses its copy; c and the uplink get theirs.
    assert_eq!(
        out(&send(&mut sw, A, MacAddr::BROADCAST, mac(1), 0x0806)),
        vec![0, 3]
    );
    assert_eq!(drop_count(&sw, B), (0, 1));
    // a → b unicast: dropped, counted once, on b.
    assert_eq!(
        send(&mut sw, A, mac(2), mac(1), 0x0800),
        Verdict::Drop(DropReason::MacAclDeny)
    );
    assert_eq!(drop_count(&sw, B), (0, 2));
    assert_eq!(sw.counters(B).unwrap().tx_frames, 0);
    // c → b passes.
    assert_eq!(out(&send(&mut sw, C, mac(2), mac(3), 0x0800)), vec![2]);
    assert_eq!(hits(&sw, "not-from-a"), vec![2, 1, 0]);
}

#[test]
fn the_implicit_deny_ends_a_bound_acl() {
    let mut sw = switch();
    let router = MacAddr([0, 0x1b, 0x21, 0, 0, 1]);
    assert_eq!(
        out(&send(&mut sw, UPLINK, MacAddr::BROADCAST, router, 0x0806)),
        vec![1, 2, 3]
    );
    assert_eq!(out(&send(&mut sw, UPLINK, mac(1), router, 0x0800)), vec![1]);
    assert_eq!(
        send(&mut sw, UPLINK, mac(1), router, 0x88cc),
        Verdict::Drop(DropReason::MacAclDeny)
    );
    assert_eq!(
        send(&mut sw, UPLINK, mac(1), router, 0x86dd),
        Verdict::Drop(DropReason::MacAclDeny)
    );
    assert_eq!(hits(&sw, "edge"), vec![1, 1, 2]);
    assert_eq!(drop_count(&sw, UPLINK), (2, 0));
    sw.clear_counters();
    assert_eq!(hits(&sw, "edge"), vec![0, 0, 0]);
}
