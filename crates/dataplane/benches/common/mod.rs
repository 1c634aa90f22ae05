//! The bench model shared by `pipeline`, `workers` and `security`: 64 ports (62 guests + 2
//! uplinks) on 4 VLANs, 64-byte frames, ~90% known unicast / 10% broadcast.

#![allow(dead_code)]

use portcullis_dataplane::*;

pub const GUESTS: usize = 62;
pub const UPLINKS: usize = 2;
pub const VLANS: u16 = 4;
pub const BATCH: usize = 256;

pub fn mac(i: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8])
}

/// A 10/50/100/1000-rule ACL that the bench traffic walks to the end of: deny rules
/// for other hosts and other EtherTypes, then a final permit.
pub fn acl(rules: usize) -> MacAclSpec {
    let mut r: Vec<MacAclRule> = (0..rules.saturating_sub(1))
        .map(|i| MacAclRule {
            action: AclAction::Deny,
            src: (i % 2 == 0).then_some(MacMatch {
                mac: MacAddr([0x02, 0, 0, 0, (i >> 8) as u8, i as u8]),
                mask: MacAddr([0xff; 6]),
            }),
            dst: None,
            ethertype: (i % 2 == 1).then_some(0x9000 + i as u16),
            vlan: None,
            cos: None,
        })
        .collect();
    r.push(MacAclRule {
        action: AclAction::Permit,
        src: None,
        dst: None,
        ethertype: None,
        vlan: None,
        cos: None,
    });
    MacAclSpec {
        name: format!("acl{rules}"),
        rules: r,
    }
}

/// Port security as the benches set it on every guest: one MAC, shutdown on violation.
pub fn port_security_one_mac() -> PortSecuritySpec {
    PortSecuritySpec {
        max_macs: 1,
        violation: Violation::Shutdown,
        sticky: false,
        aging: SecureAging::None,
        aging_secs: 0,
        static_macs: vec![],
        sticky_macs: vec![],
    }
}

/// `secure_acl`: port security (max 1 MAC, shutdown) on every guest and an inbound
/// ACL of that many rules on every port.
pub fn spec(policy: Policy, secure_acl: Option<usize>) -> SwitchSpec {
    let security = SecurityPolicy {
        promiscuous: policy,
        mac_changes: policy,
        forged_transmits: policy,
    };
    let features = |guest: bool| PortFeatures {
        port_security: (guest && secure_acl.is_some()).then(port_security_one_mac),
        mac_acl_in: secure_acl.map(|n| format!("acl{n}")),
        ..Default::default()
    };
    // promiscuous accept would copy every unicast to every port: the "off" run keeps
    // promiscuous reject on the guests and turns the MAC policing off.
    let guest_security = SecurityPolicy {
        promiscuous: Policy::Reject,
        ..security
    };
    let acls = secure_acl.map(acl).into_iter().collect();
    switch_spec(security, guest_security, features, acls)
}

/// The bench switch: `UPLINKS` trunks carrying the `VLANS` VLANs 10, 20, … and
/// `GUESTS` guest ports, guest g with MAC [`mac`]`(g)` on access VLAN
/// `(g % VLANS + 1) × 10`; `features(guest)` for each port.
pub fn switch_spec(
    uplink_security: SecurityPolicy,
    guest_security: SecurityPolicy,
    features: impl Fn(bool) -> PortFeatures,
    mac_acls: Vec<MacAclSpec>,
) -> SwitchSpec {
    let vids: Vec<Vid> = (1..=VLANS).map(|v| Vid::new(v * 10).unwrap()).collect();
    let mut ports: Vec<PortSpec> = (0..UPLINKS)
        .map(|u| PortSpec {
            name: format!("uplink{u}"),
            role: PortRole::Uplink,
            vlan: VlanMode::Trunk {
                allowed: VlanSet::from_vids(vids.clone()),
                native: None,
            },
            security: uplink_security,
            initial_mac: None,
            features: features(false),
        })
        .collect();
    for g in 0..GUESTS {
        ports.push(PortSpec {
            name: format!("vm{g}"),
            role: PortRole::Guest,
            vlan: VlanMode::Access(vids[g % VLANS as usize]),
            security: guest_security,
            initial_mac: Some(mac(g)),
            features: features(true),
        });
    }
    SwitchSpec {
        name: "bench".into(),
        mac_table_size: 4096,
        mac_aging_secs: 300,
        ports,
        mac_acls,
        max_bindings: DEFAULT_MAX_BINDINGS,
        host_table_size: portcullis_dataplane::DEFAULT_HOST_TABLE_SIZE,
        static_bindings: vec![],
        arp_acls: vec![],
    }
}

/// (ingress port, frame bytes): guest g sends to guest g+4 (same VLAN) or broadcasts.
pub fn traffic() -> Vec<(PortId, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let g = i % GUESTS;
            let dst = if i % 10 == 9 {
                MacAddr::BROADCAST
            } else {
                mac((g + VLANS as usize) % GUESTS)
            };
            let mut f = Vec::with_capacity(64);
            f.extend_from_slice(&dst.0);
            f.extend_from_slice(&mac(g).0);
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            f.resize(60, 0);
            (PortId((UPLINKS + g) as u16), f)
        })
        .collect()
}
