//! The pipeline alone: 64-byte frames, 64 ports (62 guests + 2 uplinks) on 4 VLANs,
//! ~90% known unicast / 10% broadcast, with the vSwitch policies on (all reject)
//! and off (all accept), and with port security plus a 10/50/100/1000-rule inbound
//! MAC ACL on every port. Throughput is reported in frames (elements) per second on
//! one core; compare the two in the same run.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_dataplane::*;
use std::hint::black_box;

mod common;

use common::*;

fn bench(c: &mut Criterion) {
    let frames = traffic();
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(BATCH as u64));
    let runs = [
        ("policies_off", Policy::Accept, None),
        ("policies_on", Policy::Reject, None),
        ("policies_on+port_security+acl10", Policy::Reject, Some(10)),
        ("policies_on+port_security+acl50", Policy::Reject, Some(50)),
        (
            "policies_on+port_security+acl100",
            Policy::Reject,
            Some(100),
        ),
        (
            "policies_on+port_security+acl1000",
            Policy::Reject,
            Some(1000),
        ),
    ];
    for (label, policy, secure_acl) in runs {
        let mut sw = Switch::new(&spec(policy, secure_acl), Timestamp(0)).unwrap();
        let mut t = 0u64;
        group.bench_function(label, |b| {
            b.iter(|| {
                t += 1000;
                let now = Timestamp(t);
                for (port, data) in &frames {
                    black_box(sw.process(now, *port, &IngressFrame { data, tag: None }));
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
