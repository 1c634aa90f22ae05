//! The data plane's promise: no allocation per frame. A counting global allocator
//! watches the pipeline process batches of every kind of frame — known unicast,
//! broadcast, unknown unicast, uplink traffic, forged and malformed frames, and
//! guests changing their MAC (the event path) — after a warm-up batch; and ARP
//! from guests feeding the IP-seen table past its capacity (evictions) with two
//! guests claiming the same addresses (duplicate-IP events and hold-downs). Each
//! forwarded frame also goes through `Switch::output` (its copies and tags).

use portcullis_dataplane::*;

mod support;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

fn vid(v: u16) -> Vid {
    Vid::new(v).unwrap()
}

fn frame(dst: [u8; 6], src: [u8; 6], tag: Option<u16>) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    if let Some(v) = tag {
        f.extend_from_slice(&[0x81, 0x00, (v >> 8) as u8, v as u8]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    f.resize(60, 0);
    f
}

#[test]
fn the_pipeline_does_not_allocate_per_frame() {
    let mac = |i: u8| [0x52, 0x54, 0, 0, 0, i];
    let accept_all = SecurityPolicy {
        promiscuous: Policy::Accept,
        mac_changes: Policy::Accept,
        forged_transmits: Policy::Reject,
    };
    let mut ports = vec![PortSpec {
        name: "uplink".into(),
        role: PortRole::Uplink,
        vlan: VlanMode::Trunk {
            allowed: VlanSet::from_vids([vid(10), vid(20)]),
            native: None,
        },
        security: SecurityPolicy::default(),
        initial_mac: None,
        features: Default::default(),
    }];
    for i in 1..=8u8 {
        ports.push(PortSpec {
            name: format!("g{i}"),
            role: PortRole::Guest,
            vlan: if i == 8 {
                VlanMode::Trunk {
                    allowed: VlanSet::from_vids([vid(10), vid(20)]),
                    native: None,
                }
            } else {
                VlanMode::Access(vid(10))
            },
            security: if i >= 7 {
                accept_all
            } else {
                SecurityPolicy::default()
            },
            initial_mac: (i < 6).then_some(MacAddr(mac(i))),
            features: Default::default(),
        });
    }
    let spec = SwitchSpec {
        name: "a".into(),
        mac_table_size: 64,
        mac_aging_secs: 10,
        ports,
        mac_acls: Vec::new(),
        max_bindings: DEFAULT_MAX_BINDINGS,
        host_table_size: 4,
        overlay: None,
        static_bindings: vec![],
        arp_acls: vec![],
    };
    let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();

    let mut batch: Vec<(PortId, Vec<u8>)> = Vec::new();
    for round in 0..4u8 {
        batch.push((PortId(1), frame(mac(2), mac(1), None))); // known unicast
        batch.push((PortId(2), frame([0xff; 6], mac(2), None))); // broadcast
        batch.push((PortId(3), frame(mac(99), mac(3), None))); // unknown unicast
        batch.push((
            PortId(0),
            frame(mac(1), [0, 0x1b, 0x21, 0, 0, round], Some(10)),
        )); // uplink, learning
        batch.push((PortId(0), frame([0xff; 6], mac(2), Some(10)))); // reflection
        batch.push((PortId(4), frame(mac(2), mac(77), None))); // forged
        batch.push((PortId(5), vec![1, 2, 3])); // runt
        batch.push((PortId(6), frame([0xff; 6], mac(60 + round), None))); // learns, then forged
        batch.push((PortId(7), frame([0xff; 6], mac(100 + round), None))); // MAC change (accept)
        batch.push((PortId(8), frame([0xff; 6], mac(120 + round), Some(20)))); // trunk guest changes MAC
    }
    // ARP who-has from g1 and g2 (both access VLAN 10, configured MACs) claiming the
    // same 8 addresses: every address is new to the table (capacity 4: evictions),
    // and g2's claims conflict with g1's (events, hold-down entries). One set of
    // addresses for the warm-up, another for the measured runs.
    let arp_batch = |first: u8| -> Vec<(PortId, Vec<u8>)> {
        let mut v = Vec::new();
        for k in 0..8u8 {
            for (port, i) in [(PortId(1), 1u8), (PortId(2), 2u8)] {
                let mut f = vec![0xff; 6];
                f.extend_from_slice(&mac(i));
                f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
                f.extend_from_slice(&mac(i));
                f.extend_from_slice(&[198, 18, 10, first + k]);
                f.extend_from_slice(&[0; 6]);
                f.extend_from_slice(&[198, 18, 10, 254]);
                f.resize(60, 0);
                v.push((port, f));
            }
        }
        v
    };
    let (arps_warm, arps) = (arp_batch(1), arp_batch(100));
    let mut verdicts = Vec::with_capacity(batch.len() + arps.len());
    let mut copies = 0usize;
    let mut run = |sw: &mut Switch, t: u64, arps: &[(PortId, Vec<u8>)]| {
        for (port, data) in batch.iter().chain(arps) {
            let v = sw.process(
                Timestamp::from_secs(t),
                *port,
                &IngressFrame { data, tag: None },
            );
            if let Verdict::Forward(fwd) = v {
                // What leaves: the copies with their tags.
                let out = sw.output(*port, &fwd, data, false);
                copies += out.copies().filter(|c| c.tci.is_some()).count() + 1;
            }
            verdicts.push(v);
        }
        verdicts.clear();
        sw.tick(Timestamp::from_secs(t));
    };
    run(&mut sw, 1, &arps_warm); // warm-up: first-frame learning
    let _ = sw.drain_events().count();
    let before = sw.hosts().stats();

    let (after, allocs) = support::allocations_in(|| {
        run(&mut sw, 2, &arps);
        run(&mut sw, 30, &arps); // the learned uplink MACs age out during the sweep
        run(&mut sw, 400, &arps); // past the hold-downs: conflicts reported again
        let after = sw.hosts().stats();
        sw.tick(Timestamp::from_secs(800)); // the IP-seen entries age out
        after
    });
    assert_eq!(allocs, 0, "allocations on the packet path");
    assert!(copies > 0, "the batch did exercise the output path");
    assert_eq!(after.entries, 4, "the IP-seen table stayed at its capacity");
    assert!(after.evicted > before.evicted, "{before:?} → {after:?}");
    let swept = sw.hosts().stats();
    assert_eq!((swept.entries, swept.aged_out), (0, 4), "{swept:?}");
    assert_eq!(
        after.conflicts_reported - before.conflicts_reported,
        16,
        "8 addresses at t=2 and again after their hold-down (t=400)"
    );
    assert!(
        sw.drain_events().count() > 0,
        "the batch did exercise the event path"
    );
    let forged: u64 = sw
        .ports()
        .iter()
        .map(|p| sw.counters(p.id).unwrap().rx_drops[DropReason::ForgedTransmit as usize])
        .sum();
    assert!(forged > 0);
}
