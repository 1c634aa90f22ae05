//! Property tests: random bytes and random port/VLAN configurations through the
//! pipeline. Invariants: no panic; a frame never leaves on its ingress port; never
//! uplink → uplink; never into a VLAN the output port does not carry; counters add up.

use portcullis_dataplane::*;
use proptest::prelude::*;

mod support;
use support::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pipeline_invariants(
        spec in arb_vlan_spec(),
        frames in proptest::collection::vec((0usize..8, arb_frame_with_meta(), 0u64..30), 1..64),
        reports in proptest::collection::vec((0usize..8, 0u8..8), 0..3),
    ) {
        let Ok(mut sw) = Switch::new(&spec, Timestamp(0)) else { return Ok(()) };
        let n = spec.ports.len();
        for (p, m) in reports {
            let _ = sw.report_effective_mac(PortId((p % n) as u16), MacAddr([0x52, 0x54, 0, 0, 0, m]), Timestamp(0));
        }
        let mut total = 0u64;
        let mut forwarded_copies = 0u64;
        let mut drops = 0u64;
        for (p, (data, tag), t) in frames {
            let ingress = PortId((p % n) as u16);
            let v = sw.process(Timestamp::from_secs(t), ingress, &IngressFrame { data: &data, tag });
            total += 1;
            match v {
                Verdict::Drop(_) => drops += 1,
                Verdict::Hold(..) => prop_assert!(false, "no DHCP snooping in these specs"),
                Verdict::Forward(f) => {
                    prop_assert!(!f.out.is_empty());
                    prop_assert!(!f.out.contains(ingress), "left on its ingress port");
                    let in_role = spec.ports[ingress.index()].role;
                    for out in f.out.iter() {
                        let o = sw.port(out).unwrap();
                        prop_assert!(!(in_role == PortRole::Uplink && o.role == PortRole::Uplink), "uplink → uplink");
                        prop_assert!(o.vlan.carries(f.vid), "VLAN {} not carried by {}", f.vid, o.name);
                        prop_assert!(o.is_up());
                        prop_assert!(!o.mac_change_blocked());
                    }
                    prop_assert!(spec.ports[ingress.index()].vlan.carries(f.vid));
                    prop_assert!((f.body_offset as usize) + 2 <= data.len());
                    forwarded_copies += f.out.len() as u64;
                }
            }
            prop_assert!(sw.mac_table().len() <= spec.mac_table_size);
        }
        let rx: u64 = (0..n).map(|i| sw.counters(PortId(i as u16)).unwrap().rx_frames).sum();
        let tx: u64 = (0..n).map(|i| sw.counters(PortId(i as u16)).unwrap().tx_frames).sum();
        let counted_drops: u64 = (0..n)
            .map(|i| {
                let c = sw.counters(PortId(i as u16)).unwrap();
                c.rx_dropped() + c.tx_dropped()
            })
            .sum();
        prop_assert_eq!(rx, total);
        prop_assert_eq!(tx, forwarded_copies);
        // Every dropped frame is counted once; flood skips of blocked ports add tx drops.
        prop_assert!(counted_drops >= drops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Port security and storm control under random frames and clock steps: no port
    /// ever holds more secure MACs than its maximum (and on an access port its count
    /// is exactly its entries in the MAC table); an error-disabled port sends and
    /// receives nothing.
    #[test]
    fn port_security_bounds_and_err_disabled_ports_are_silent(
        features in proptest::collection::vec(arb_security_features(), 3),
        forged_accept in proptest::collection::vec(any::<bool>(), 3),
        frames in proptest::collection::vec((0usize..4, 0u8..12, 0u8..12, 0u64..800), 1..120),
    ) {
        let v10 = Vid::new(10).unwrap();
        let mut ports = vec![PortSpec {
            name: "up".into(),
            role: PortRole::Uplink,
            vlan: VlanMode::Trunk { allowed: VlanSet::from_vids([v10]), native: None },
            security: SecurityPolicy::default(),
            initial_mac: None,
            features: PortFeatures::default(),
        }];
        for i in 0..3 {
            let mut f = features[i].clone();
            if i == 2 { f.port_security = None; }
            ports.push(PortSpec {
                name: format!("g{i}"),
                role: PortRole::Guest,
                vlan: VlanMode::Access(v10),
                security: SecurityPolicy {
                    forged_transmits: if forged_accept[i] { Policy::Accept } else { Policy::Reject },
                    ..Default::default()
                },
                initial_mac: (i != 1).then_some(MacAddr([0x52, 0x54, 0, 0, 1, i as u8])),
                features: f,
            });
        }
        let spec = SwitchSpec { name: "p".into(), mac_table_size: 24, mac_aging_secs: 10, ports, mac_acls: vec![], max_bindings: DEFAULT_MAX_BINDINGS, static_bindings: vec![], arp_acls: vec![], host_table_size: DEFAULT_HOST_TABLE_SIZE, overlay: None };
        let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();
        let mut now = Timestamp(0);
        for (p, src, dst, step_ms) in frames {
            now = Timestamp(now.0 + step_ms * 1_000_000);
            sw.tick(now);
            let ingress = PortId(p as u16);
            let disabled_before: Vec<bool> = sw.ports().iter().map(|p| p.err_disabled.is_some()).collect();
            let mut f = if dst == 11 { vec![0xff; 6] } else { vec![0x52, 0x54, 0, 0, 1, dst] };
            f.extend_from_slice(&[0x52, 0x54, 0, 0, 1, src]);
            if p == 0 { f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]); }
            f.extend_from_slice(&[0x08, 0x00]);
            f.resize(60, 0);
            let v = sw.process(now, ingress, &IngressFrame { data: &f, tag: None });
            if disabled_before[p] {
                prop_assert_eq!(v, Verdict::Drop(DropReason::ErrDisabled));
            }
            for out in v.out_ports().iter() {
                prop_assert!(sw.port(out).unwrap().err_disabled.is_none(), "sent to an error-disabled port");
            }
            for port in sw.ports() {
                if let Some(s) = port.secure {
                    prop_assert!(s.count <= s.max_macs, "{}: {} > {}", port.name, s.count, s.max_macs);
                    prop_assert_eq!(sw.mac_table().entries_of(port.id).len(), s.count as usize, "{}", &port.name);
                }
            }
        }
    }
}
