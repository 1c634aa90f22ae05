//! The pipeline alone: 64-byte frames, 64 ports (62 guests + 2 uplinks) on 4 VLANs,
//! ~90% known unicast / 10% broadcast, with the vSwitch policies on (all reject)
//! and off (all accept). Throughput is reported in frames (elements) per second on
//! one core; compare the two in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_dataplane::*;
use std::hint::black_box;

const GUESTS: usize = 62;
const UPLINKS: usize = 2;
const VLANS: u16 = 4;
const BATCH: usize = 256;

fn mac(i: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8])
}

fn spec(policy: Policy) -> SwitchSpec {
    let security = SecurityPolicy {
        promiscuous: policy,
        mac_changes: policy,
        forged_transmits: policy,
    };
    let vids: Vec<Vid> = (1..=VLANS).map(|v| Vid::new(v * 10).unwrap()).collect();
    let mut ports: Vec<PortSpec> = (0..UPLINKS)
        .map(|u| PortSpec {
            name: format!("uplink{u}"),
            role: PortRole::Uplink,
            vlan: VlanMode::Trunk {
                allowed: VlanSet::from_vids(vids.clone()),
                native: None,
            },
            security,
            initial_mac: None,
            features: Default::default(),
        })
        .collect();
    for g in 0..GUESTS {
        ports.push(PortSpec {
            name: format!("vm{g}"),
            role: PortRole::Guest,
            vlan: VlanMode::Access(vids[g % VLANS as usize]),
            // promiscuous accept would copy every unicast to every port: the "off" run
            // keeps promiscuous reject and turns the MAC policing off.
            security: SecurityPolicy {
                promiscuous: Policy::Reject,
                ..security
            },
            initial_mac: Some(mac(g)),
            features: Default::default(),
        });
    }
    SwitchSpec {
        name: "bench".into(),
        mac_table_size: 4096,
        mac_aging_secs: 300,
        ports,
        mac_acls: Vec::new(),
    }
}

/// (ingress port, frame bytes): guest g sends to guest g+4 (same VLAN) or broadcasts.
fn traffic() -> Vec<(PortId, Vec<u8>)> {
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

fn bench(c: &mut Criterion) {
    let frames = traffic();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (label, policy) in [
        ("policies_on", Policy::Reject),
        ("policies_off", Policy::Accept),
    ] {
        let mut sw = Switch::new(&spec(policy), Instant(0)).unwrap();
        let mut t = 0u64;
        group.bench_function(label, |b| {
            b.iter(|| {
                t += 1000;
                let now = Instant(t);
                for (port, data) in &frames {
                    black_box(sw.process(now, *port, &RxFrame { data, tag: None }));
                }
            })
        });
        let dropped: u64 = sw
            .ports()
            .iter()
            .map(|p| sw.counters(p.id).unwrap().rx_dropped())
            .sum();
        assert_eq!(dropped, 0, "the bench traffic is all legitimate");
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
