//! Proptest strategies shared by the property tests. Where two tests need
//! different generators, both are here, named for what they generate.

use super::build::*;
use dhcproto::v4::MessageType;
use portcullis_dataplane::*;
use proptest::prelude::*;
use std::net::IpAddr;

/// 4096 cases, unless `PROPTEST_CASES` says otherwise.
pub fn many_cases() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 4096;
    }
    c
}

// ---------------------------------------------------------------------------------
// Random VLAN layouts and policies, no feature (properties.rs)
// ---------------------------------------------------------------------------------

pub fn arb_policy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Policy::Accept), Just(Policy::Reject)]
}

pub fn arb_security() -> impl Strategy<Value = SecurityPolicy> {
    (arb_policy(), arb_policy(), arb_policy()).prop_map(
        |(promiscuous, mac_changes, forged_transmits)| SecurityPolicy {
            promiscuous,
            mac_changes,
            forged_transmits,
        },
    )
}

pub fn arb_small_vid() -> impl Strategy<Value = Vid> {
    (1u16..=5).prop_map(|v| Vid::new(v).unwrap())
}

pub fn arb_vlan_port(i: usize) -> impl Strategy<Value = PortSpec> {
    (
        any::<bool>(),
        arb_small_vid(),
        proptest::collection::vec(arb_small_vid(), 0..4),
        proptest::option::of(arb_small_vid()),
        arb_security(),
        any::<bool>(),
    )
        .prop_map(
            move |(uplink, access, allowed, native, security, has_mac)| {
                let role = if uplink {
                    PortRole::Uplink
                } else {
                    PortRole::Guest
                };
                let vlan = if uplink || (allowed.len() > 1 && i.is_multiple_of(3)) {
                    VlanMode::Trunk {
                        allowed: VlanSet::from_vids(allowed),
                        native,
                    }
                } else {
                    VlanMode::Access(access)
                };
                let initial_mac =
                    (has_mac && !uplink).then_some(MacAddr([0x52, 0x54, 0, 0, 0, i as u8]));
                PortSpec {
                    name: format!("p{i}"),
                    role,
                    vlan,
                    security,
                    initial_mac,
                    features: Default::default(),
                }
            },
        )
}

pub fn arb_vlan_spec() -> impl Strategy<Value = SwitchSpec> {
    (1usize..8, 1usize..16).prop_flat_map(|(n, table)| {
        let ports: Vec<_> = (0..n).map(arb_vlan_port).collect();
        ports.prop_map(move |ports| SwitchSpec {
            name: "p".into(),
            mac_table_size: table.max(n),
            mac_aging_secs: 10,
            ports,
            mac_acls: Vec::new(),
            max_bindings: DEFAULT_MAX_BINDINGS,
            host_table_size: DEFAULT_HOST_TABLE_SIZE,
            overlay: None,
            static_bindings: vec![],
            arp_acls: vec![],
        })
    })
}

/// Frames that are mostly well-formed so the interesting paths are reached: random
/// addresses from a small pool, optional tags, random tails — and some pure noise.
pub fn arb_frame_with_meta() -> impl Strategy<Value = (Vec<u8>, Option<VlanTag>)> {
    let mac = prop_oneof![
        (0u8..8).prop_map(|i| [0x52, 0x54, 0, 0, 0, i]),
        Just([0xff; 6]),
        Just([0x01, 0x00, 0x5e, 0, 0, 1]),
        Just([0x01, 0x80, 0xc2, 0, 0, 0]),
        any::<[u8; 6]>(),
    ];
    let structured = (
        mac.clone(),
        mac,
        proptest::option::of((
            prop_oneof![Just(0x8100u16), Just(0x88a8), any::<u16>()],
            0u16..8,
        )),
        prop_oneof![Just(0x0800u16), Just(0x0806), Just(0x8100), any::<u16>()],
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::option::of((Just(0x8100u16), 0u16..8)),
    )
        .prop_map(|(dst, src, tag, et, tail, meta)| {
            let mut f = Vec::new();
            f.extend_from_slice(&dst);
            f.extend_from_slice(&src);
            if let Some((tpid, v)) = tag {
                f.extend_from_slice(&tpid.to_be_bytes());
                f.extend_from_slice(&v.to_be_bytes());
            }
            f.extend_from_slice(&et.to_be_bytes());
            f.extend_from_slice(&tail);
            (f, meta.map(|(tpid, tci)| VlanTag { tpid, tci }))
        });
    prop_oneof![
        4 => structured,
        1 => proptest::collection::vec(any::<u8>(), 0..40).prop_map(|b| (b, None)),
    ]
}

pub fn arb_security_features() -> impl Strategy<Value = PortFeatures> {
    let ps = (1u16..4, 0u8..3, any::<bool>(), 0u8..3, 1u64..5).prop_map(
        |(max, v, sticky, aging, secs)| PortSecuritySpec {
            max_macs: max,
            violation: [Violation::Protect, Violation::Restrict, Violation::Shutdown][v as usize],
            sticky,
            aging: [
                SecureAging::None,
                SecureAging::Absolute,
                SecureAging::Inactivity,
            ][aging as usize],
            aging_secs: secs,
            static_macs: vec![],
            sticky_macs: vec![],
        },
    );
    let storm = (
        proptest::option::of(0u32..20),
        proptest::option::of(0u32..20),
        any::<bool>(),
    )
        .prop_map(|(b, u, shutdown)| StormControlSpec {
            broadcast_pps: b,
            multicast_pps: b,
            unknown_unicast_pps: u,
            shutdown,
        });
    (
        proptest::option::of(ps),
        proptest::option::of(storm),
        proptest::option::of(1u64..4),
    )
        .prop_map(|(port_security, storm_control, rec)| PortFeatures {
            port_security,
            storm_control,
            errdisable_recovery_secs: rec,
            ..Default::default()
        })
}

// ---------------------------------------------------------------------------------
// Guests with every feature on two uplinks (trace.rs)
// ---------------------------------------------------------------------------------

pub fn arb_mode() -> impl Strategy<Value = EnforceMode> {
    prop_oneof![Just(EnforceMode::Enforce), Just(EnforceMode::Observe)]
}

/// Guest features: each one on or off, with small limits so they trigger — the
/// IPv6 first-hop ones (ND inspection, IPv6 Source Guard) added to the others.
pub fn arb_guest_features() -> impl Strategy<Value = PortFeatures> {
    (
        arb_guest_features_but_nd(),
        proptest::option::of((any::<bool>(), 1u16..3, arb_mode())),
        proptest::option::of((any::<bool>(), arb_mode())),
    )
        .prop_map(|(f, nd, ipsg6)| PortFeatures {
            nd_inspection: nd.map(|(trusted, max, mode)| NdInspectionSpec {
                trusted,
                max_addresses: max,
                rate_limit_pps: Some(5),
                mode,
                binding_lifetime_secs: 2,
            }),
            ipv6_source_guard: ipsg6.map(|(ip_mac, mode)| Ipv6SourceGuardSpec {
                check: if ip_mac {
                    SourceGuard::IpMac
                } else {
                    SourceGuard::Ip
                },
                mode,
            }),
            ..f
        })
}

/// Guest features but ND inspection and IPv6 Source Guard.
fn arb_guest_features_but_nd() -> impl Strategy<Value = PortFeatures> {
    (
        proptest::option::of((1u16..3, 0usize..3, any::<bool>())),
        proptest::option::of((0u32..3, any::<bool>())),
        proptest::option::of(0usize..2),
        proptest::option::of(0usize..2),
        proptest::option::of((any::<bool>(), proptest::option::of(1u32..4), arb_mode())),
        proptest::option::of((any::<bool>(), any::<bool>(), any::<bool>(), arb_mode())),
        proptest::option::of((any::<bool>(), arb_mode())),
        proptest::option::of((0usize..4, any::<bool>())),
        proptest::option::of((any::<bool>(), arb_mode())),
        proptest::option::of((any::<bool>(), proptest::option::of(1u32..4), arb_mode())),
    )
        .prop_map(
            |(ps, storm, acl_in, acl_out, dhcp, dai, ipsg, team, ra, v6)| {
                let violation =
                    |v: usize| [Violation::Protect, Violation::Restrict, Violation::Shutdown][v];
                PortFeatures {
                    port_security: ps.map(|(max, v, sticky)| PortSecuritySpec {
                        max_macs: max,
                        violation: violation(v),
                        sticky,
                        aging: SecureAging::None,
                        aging_secs: 0,
                        static_macs: vec![],
                        sticky_macs: vec![],
                    }),
                    storm_control: storm.map(|(pps, shutdown)| StormControlSpec {
                        broadcast_pps: Some(pps),
                        multicast_pps: Some(pps),
                        unknown_unicast_pps: Some(pps + 1),
                        shutdown,
                    }),
                    mac_acl_in: acl_in.map(|i| format!("acl{i}")),
                    mac_acl_out: acl_out.map(|i| format!("acl{i}")),
                    errdisable_recovery_secs: Some(1),
                    dhcp_snooping: dhcp.map(|(trusted, rate, mode)| DhcpSnoopingSpec {
                        trusted,
                        rate_limit_pps: rate,
                        option82: Option82::Insert,
                        drop_untrusted_option82: true,
                        mode,
                    }),
                    arp_inspection: dai.map(|(trusted, v_src, with_acl, mode)| ArpInspectionSpec {
                        trusted,
                        validate_src_mac: v_src,
                        validate_dst_mac: true,
                        validate_ip: true,
                        rate_limit_pps: Some(3),
                        acl: with_acl.then(|| "arp".to_string()),
                        mode,
                    }),
                    ip_source_guard: ipsg.map(|(ip_mac, mode)| IpSourceGuardSpec {
                        check: if ip_mac {
                            SourceGuard::IpMac
                        } else {
                            SourceGuard::Ip
                        },
                        mode,
                    }),
                    ra_guard: ra.map(|(trusted, mode)| RaGuardSpec { trusted, mode }),
                    dhcpv6_guard: v6.map(|(trusted, rate_limit_pps, mode)| Dhcpv6GuardSpec {
                        trusted,
                        rate_limit_pps,
                        mode,
                    }),
                    nd_inspection: None,
                    ipv6_source_guard: None,
                    teaming: team.map(|(p, failback)| TeamingSpec {
                        policy: [
                            TeamingPolicy::OriginatingPort,
                            TeamingPolicy::SourceMacHash,
                            TeamingPolicy::IpHash,
                            TeamingPolicy::ExplicitFailover,
                        ][p],
                        active: vec!["u1".into()],
                        standby: vec!["u0".into()],
                        failback,
                    }),
                }
            },
        )
}

pub fn arb_featured_spec() -> impl Strategy<Value = SwitchSpec> {
    let guest = (
        1u16..3,
        (arb_policy(), arb_policy(), arb_policy()),
        any::<bool>(),
        arb_guest_features(),
    );
    (
        proptest::collection::vec(guest, 1..5),
        any::<bool>(),
        proptest::collection::vec((0u8..6, 1u8..5, 0usize..5), 0..3),
    )
        .prop_map(|(guests, uplink_dhcp_trusted, bindings)| {
            let trunk = VlanMode::Trunk {
                allowed: VlanSet::from_vids([vid(1), vid(2)]),
                native: Some(vid(1)),
            };
            let mut ports: Vec<PortSpec> = ["u0", "u1"]
                .into_iter()
                .map(|n| PortSpec {
                    name: n.into(),
                    role: PortRole::Uplink,
                    vlan: trunk.clone(),
                    security: SecurityPolicy::default(),
                    initial_mac: None,
                    features: PortFeatures {
                        dhcp_snooping: Some(DhcpSnoopingSpec {
                            trusted: uplink_dhcp_trusted,
                            rate_limit_pps: None,
                            option82: Option82::Keep,
                            drop_untrusted_option82: false,
                            mode: EnforceMode::Enforce,
                        }),
                        ..Default::default()
                    },
                })
                .collect();
            for (i, (v, (promiscuous, mac_changes, forged_transmits), has_mac, features)) in
                guests.into_iter().enumerate()
            {
                ports.push(PortSpec {
                    name: format!("g{i}"),
                    role: PortRole::Guest,
                    vlan: VlanMode::Access(vid(v)),
                    security: SecurityPolicy {
                        promiscuous,
                        mac_changes,
                        forged_transmits,
                    },
                    initial_mac: has_mac.then(|| mac(i as u8)),
                    features,
                });
            }
            let n = ports.len();
            let acl = |name: &str, deny: u16| MacAclSpec {
                name: name.into(),
                rules: vec![
                    MacAclRule {
                        action: AclAction::Deny,
                        src: None,
                        dst: None,
                        ethertype: Some(deny),
                        vlan: None,
                        cos: None,
                    },
                    MacAclRule {
                        action: AclAction::Permit,
                        src: Some(MacMatch {
                            mac: mac(0),
                            mask: MacAddr([0xff, 0xff, 0xff, 0xff, 0xff, 0xf8]),
                        }),
                        dst: None,
                        ethertype: None,
                        vlan: None,
                        cos: None,
                    },
                ],
            };
            SwitchSpec {
                name: "prop".into(),
                mac_table_size: 16,
                mac_aging_secs: 10,
                ports,
                mac_acls: vec![acl("acl0", 0x86dd), acl("acl1", 0x0806)],
                max_bindings: 4,
                host_table_size: DEFAULT_HOST_TABLE_SIZE,
                overlay: None,
                static_bindings: bindings
                    .into_iter()
                    .map(|(m, i, p)| StaticBindingSpec {
                        mac: mac(m),
                        ip: IpAddr::V4(ip(i)),
                        vid: vid(1 + (p % 2) as u16),
                        port: p % n,
                    })
                    .collect(),
                arp_acls: vec![ArpAclSpec {
                    name: "arp".into(),
                    static_only: false,
                    rules: vec![ArpAclRule {
                        action: AclAction::Deny,
                        ip: ip(4),
                        prefix_len: 32,
                        mac: None,
                    }],
                }],
            }
        })
}

/// Frames that reach every stage: plain, ARP, IPv4/UDP, DHCP of every kind and IPv6
/// router messages (RA, Redirect, an RA behind Hop-by-Hop), from
/// a small pool of MACs and addresses; some tagged; some noise.
pub fn arb_stage_frame() -> impl Strategy<Value = Vec<u8>> {
    let m = prop_oneof![
        6 => (0u8..8).prop_map(mac),
        1 => Just(MacAddr::BROADCAST),
        1 => Just(MacAddr([1, 0, 0x5e, 0, 0, 1])),
    ];
    let a = (1u8..6).prop_map(ip);
    let kind = prop_oneof![
        Just(MessageType::Discover),
        Just(MessageType::Request),
        Just(MessageType::Offer),
        Just(MessageType::Ack),
        Just(MessageType::Nak),
        Just(MessageType::Release),
    ];
    prop_oneof![
        (
            m.clone(),
            m.clone(),
            prop_oneof![Just(0x0800u16), Just(0x86dd), Just(0x88b5)]
        )
            .prop_map(|(d, s, t)| eth(d, s, t, &[])),
        (
            m.clone(),
            m.clone(),
            1u16..3,
            (m.clone(), a.clone()),
            a.clone()
        )
            .prop_map(|(d, s, op, sender, tip)| arp(
                d,
                s,
                op,
                sender,
                (MacAddr([0; 6]), tip)
            )),
        (m.clone(), m.clone(), a.clone(), a.clone()).prop_map(|(d, s, sip, dip)| udp4(
            d,
            s,
            (sip, dip),
            (1000, 53),
            &[0; 8]
        )),
        (kind, m.clone(), m.clone(), a.clone()).prop_map(|(k, s, c, y)| dhcp_broadcast(k, s, c, y)),
        (m.clone(), m.clone(), 0u8..3).prop_map(|(d, s, k)| {
            use super::ipv6::*;
            let rogue = ra(ll(1), s);
            let l3 = match k {
                0 => rogue,
                1 => redirect(ll(1), ula(2), ll(1), ula(3)),
                _ => with_exts(&rogue, &[pad_ext(0, 0)]),
            };
            eth6(d, s, &l3)
        }),
        (m.clone(), m, 1u16..3).prop_map(|(d, s, v)| {
            let mut f = eth(d, s, 0x8100, &[0, v as u8, 8, 0]);
            f.truncate(64);
            f
        }),
        proptest::collection::vec(any::<u8>(), 0..30),
    ]
}

/// One of `seeds()`, up to 6 bytes overwritten (those with the bias flag within the
/// first `header_len` bytes: the headers), and perhaps truncated: the mutations of
/// the IPv6 guards' property tests.
pub fn arb_mutated(
    seeds: fn() -> Vec<Vec<u8>>,
    header_len: usize,
    span: usize,
) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds().len();
    (
        0..n,
        proptest::collection::vec((0..span, any::<u8>(), any::<bool>()), 0..6),
        proptest::option::of(0..span),
    )
        .prop_map(move |(i, edits, cut)| {
            let mut p = seeds().swap_remove(i);
            for (at, byte, header) in edits {
                let at = if header { at % header_len } else { at };
                let len = p.len().max(1);
                if let Some(b) = p.get_mut(at % len) {
                    *b = byte;
                }
            }
            if let Some(c) = cut {
                p.truncate(c);
            }
            p
        })
}
