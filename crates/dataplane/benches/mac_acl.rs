//! MAC ACL classification: the compiled bit-vector classifier against the linear
//! first-match scan, on ACLs of 10, 100 and 1000 rules. The rules are a realistic
//! mix — group-address and multicast-source denies on top, then OUI denies, host
//! MAC permits (per VLAN), destination host rules, EtherType denies and VLAN denies,
//! and a final permit — and the keys are aimed so that first matches land at depths
//! spread evenly over the whole list (the final permit included). One iteration is
//! one evaluation of the next key, so the reported time is the time per evaluation.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use portcullis_dataplane::stages::mac_acl::{AclKey, CompiledMacAcl, evaluate_linear};
use portcullis_dataplane::*;
use std::hint::black_box;

const SIZES: [usize; 3] = [10, 100, 1000];
/// Keys per ACL, at evenly spread depths.
const KEYS: usize = 64;

const ALL: MacAddr = MacAddr::BROADCAST;
const OUI: MacAddr = MacAddr([0xff, 0xff, 0xff, 0, 0, 0]);

fn vid(v: u16) -> Vid {
    Vid::new(v).unwrap()
}

fn rule(action: AclAction) -> MacAclRule {
    MacAclRule {
        action,
        src: None,
        dst: None,
        ethertype: None,
        vlan: None,
        cos: None,
    }
}

fn masked(mac: [u8; 6], mask: MacAddr) -> Option<MacMatch> {
    Some(MacMatch {
        mac: MacAddr(mac),
        mask,
    })
}

/// An ACL of `n` rules (n ≥ 3).
fn acl(n: usize) -> MacAclSpec {
    let mut rules = vec![
        // IEEE 802.1D reserved group addresses.
        MacAclRule {
            dst: masked(
                [0x01, 0x80, 0xc2, 0, 0, 0],
                MacAddr([0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]),
            ),
            ..rule(AclAction::Deny)
        },
        // Multicast source: never valid.
        MacAclRule {
            src: masked([0x01, 0, 0, 0, 0, 0], MacAddr([0x01, 0, 0, 0, 0, 0])),
            ..rule(AclAction::Deny)
        },
    ];
    for i in 0..n - 3 {
        let (hi, lo) = ((i >> 8) as u8, i as u8);
        rules.push(match i % 10 {
            // A banned vendor.
            0 => MacAclRule {
                src: masked([0x02, hi, lo, 0, 0, 0], OUI),
                ..rule(AclAction::Deny)
            },
            // A protocol not allowed (only EtherTypes no real key uses).
            1 => MacAclRule {
                ethertype: Some(0x9000 + i as u16),
                ..rule(AclAction::Deny)
            },
            // A VLAN closed to this port.
            2 => MacAclRule {
                vlan: Some(vid(100 + i as u16)),
                ..rule(AclAction::Deny)
            },
            // Traffic to a protected host, IPv4 only.
            3 => MacAclRule {
                dst: masked([0x52, 0x54, 0x01, 0, hi, lo], ALL),
                ethertype: Some(0x0800),
                ..rule(AclAction::Permit)
            },
            // A known guest MAC on its VLAN.
            _ => MacAclRule {
                src: masked([0x52, 0x54, 0x00, 0, hi, lo], ALL),
                vlan: Some(vid(1 + (i % 50) as u16)),
                ..rule(AclAction::Permit)
            },
        });
    }
    rules.push(rule(AclAction::Permit));
    MacAclSpec {
        name: format!("bench-{n}"),
        rules,
    }
}

/// Keys that match rule by rule: each rule's fields over a background no rule names,
/// then `KEYS` of them at evenly spread first-match depths.
fn keys(spec: &MacAclSpec) -> Vec<AclKey> {
    let background = AclKey {
        src: MacAddr([0x52, 0x54, 0x00, 0xee, 0, 1]),
        dst: MacAddr([0x52, 0x54, 0x00, 0xee, 0, 2]),
        ethertype: 0x0800,
        vid: vid(4000),
        cos: 0,
    };
    let mut all: Vec<(u32, AclKey)> = spec
        .rules
        .iter()
        .map(|r| AclKey {
            src: r.src.map_or(background.src, |m| m.mac),
            dst: r.dst.map_or(background.dst, |m| m.mac),
            ethertype: r.ethertype.unwrap_or(background.ethertype),
            vid: r.vlan.unwrap_or(background.vid),
            cos: r.cos.unwrap_or(background.cos),
        })
        .map(|k| (evaluate_linear(spec, &k).rule.unwrap(), k))
        .collect();
    all.sort_by_key(|(depth, _)| *depth);
    all.dedup_by_key(|(depth, _)| *depth);
    let n = all.len();
    let picked: Vec<AclKey> = (0..KEYS.min(n))
        .map(|j| all[j * (n - 1) / (KEYS.min(n) - 1).max(1)].1)
        .collect();
    picked
}

fn bench(c: &mut Criterion) {
    for n in SIZES {
        let spec = acl(n);
        let compiled = CompiledMacAcl::compile(&spec);
        let keys = keys(&spec);
        let depths: Vec<u32> = keys
            .iter()
            .map(|k| {
                let d = compiled.evaluate(k);
                assert_eq!(d, evaluate_linear(&spec, k));
                d.rule.unwrap()
            })
            .collect();
        let mean = depths.iter().map(|&d| d as f64).sum::<f64>() / depths.len() as f64;
        eprintln!(
            "{n} rules: {} keys, first-match depth {}..={} (mean {mean:.0}); {compiled:?}",
            keys.len(),
            depths.iter().min().unwrap(),
            depths.iter().max().unwrap(),
        );

        let mut group = c.benchmark_group(format!("mac_acl/{n}_rules"));
        group.bench_function(BenchmarkId::from_parameter("compiled"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % keys.len();
                compiled.evaluate(black_box(&keys[i]))
            })
        });
        group.bench_function(BenchmarkId::from_parameter("linear"), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % keys.len();
                evaluate_linear(black_box(&spec), black_box(&keys[i]))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
