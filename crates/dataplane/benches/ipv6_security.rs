//! The cost of the IPv6 first-hop stages on the pipeline (issue 15: "≤ 15 % against
//! the same mix with them off, same run"). One VLAN, 30 guests and an uplink; each
//! guest's link-local and global addresses are ND bindings. The mix, per batch of
//! 256 frames: ~94 % ICMPv6 echo requests from a guest's own global address to the
//! next guest (known unicast), ~6 % Neighbor Solicitations from its own link-local
//! with its SLLAO (multicast, flooded) — so every stage has real work and passes
//! every frame.
//!
//! Variants, in one run:
//! (a) `a_off`: no IPv6 feature (the arm walks nothing);
//! (b) `b_on`: RA guard, DHCPv6 guard, ND inspection (no rate limits: the bench
//!     sends far more ND per port than any real limit would allow) and IPv6 Source
//!     Guard `ip-mac` on every guest — the strict template's IPv6 set; the uplink
//!     trusted.
//!
//! Both assert that no frame was dropped. After criterion's figures, an interleaved
//! comparison (round-robin cells through `Switch::process_batch`, as
//! `benches/security.rs` does) prints the cost of (b) against (a) measured in the
//! same rounds. Without `--bench` (clippy's and `cargo test --all-targets`' builds)
//! that pass is tiny.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_dataplane::bindings::{BindingSource, NewBinding};
use portcullis_dataplane::wire::icmpv6::{self, msg_type};
use portcullis_dataplane::wire::ipv6::{self, next_header};
use portcullis_dataplane::wire::nd::{NdEmit, NdMessage, NdOption, solicited_node};
use portcullis_dataplane::*;
use std::hint::black_box;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Instant as Clock;

const GUESTS: usize = 30;
const BATCH: usize = 256;

fn mac(g: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, 1, g as u8])
}
fn ll(g: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe00, g as u16)
}
fn global(g: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x198, 0x18, 0x10, 0, 0, 0, g as u16)
}
fn vid10() -> Vid {
    Vid::new(10).unwrap()
}

fn eth(dst: MacAddr, src: MacAddr, l3: &[u8]) -> Vec<u8> {
    let mut f = dst.0.to_vec();
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&ipv6::ETHERTYPE.to_be_bytes());
    f.extend_from_slice(l3);
    f
}

fn echo(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut msg = vec![msg_type::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1];
    msg.extend_from_slice(b"portcull");
    icmpv6::fill_checksum(&mut msg, &src, &dst).unwrap();
    let mut l3 = vec![0; ipv6::HEADER_LEN];
    ipv6::emit_header(
        &mut l3,
        msg.len() as u16,
        next_header::ICMPV6,
        64,
        &src,
        &dst,
    )
    .unwrap();
    l3.extend_from_slice(&msg);
    l3
}

fn ns(src: Ipv6Addr, target: Ipv6Addr, lladdr: MacAddr) -> Vec<u8> {
    let opts = [NdOption::SourceLinkLayer(lladdr)];
    let e = NdEmit {
        src,
        dst: solicited_node(&target),
        message: NdMessage::NeighborSolicitation { target },
        options: &opts,
    };
    let mut l3 = vec![0; e.buffer_len()];
    e.emit(&mut l3).unwrap();
    l3
}

/// Guest `g` is port `g + 1` (port 0 is the uplink).
fn traffic() -> Vec<(PortId, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let g = i % GUESTS;
            let next = (g + 1) % GUESTS;
            let f = if i % 16 == 15 {
                let t = ll(next);
                let s = solicited_node(&t).octets();
                let dst = MacAddr([0x33, 0x33, s[12], s[13], s[14], s[15]]);
                eth(dst, mac(g), &ns(ll(g), t, mac(g)))
            } else {
                eth(mac(next), mac(g), &echo(global(g), global(next)))
            };
            (PortId(g as u16 + 1), f)
        })
        .collect()
}

fn switch(on: bool) -> Switch {
    let mut ports = vec![PortSpec {
        name: "uplink".into(),
        role: PortRole::Uplink,
        vlan: VlanMode::Trunk {
            allowed: VlanSet::default(),
            native: Some(vid10()),
        },
        security: SecurityPolicy::default(),
        initial_mac: None,
        features: PortFeatures::default(),
    }];
    let nd = |trusted| NdInspectionSpec {
        trusted,
        max_addresses: 8,
        rate_limit_pps: None,
        mode: EnforceMode::Enforce,
        binding_lifetime_secs: 3600,
    };
    if on {
        ports[0].features.ra_guard = Some(RaGuardSpec {
            trusted: true,
            mode: EnforceMode::Enforce,
        });
        ports[0].features.nd_inspection = Some(nd(true));
        ports[0].features.dhcpv6_guard = Some(Dhcpv6GuardSpec {
            trusted: true,
            rate_limit_pps: None,
            mode: EnforceMode::Enforce,
        });
    }
    for g in 0..GUESTS {
        let mut features = PortFeatures::default();
        if on {
            features.ra_guard = Some(RaGuardSpec {
                trusted: false,
                mode: EnforceMode::Enforce,
            });
            features.nd_inspection = Some(nd(false));
            features.dhcpv6_guard = Some(Dhcpv6GuardSpec {
                trusted: false,
                rate_limit_pps: None,
                mode: EnforceMode::Enforce,
            });
            features.ipv6_source_guard = Some(Ipv6SourceGuardSpec {
                check: SourceGuard::IpMac,
                mode: EnforceMode::Enforce,
            });
        }
        ports.push(PortSpec {
            name: format!("g{g}"),
            role: PortRole::Guest,
            vlan: VlanMode::Access(vid10()),
            security: SecurityPolicy::default(),
            initial_mac: Some(mac(g)),
            features,
        });
    }
    let spec = SwitchSpec {
        name: "ipv6".into(),
        ports,
        mac_table_size: 1024,
        mac_aging_secs: 300,
        mac_acls: vec![],
        max_bindings: DEFAULT_MAX_BINDINGS,
        arp_acls: vec![],
        static_bindings: vec![],
        host_table_size: DEFAULT_HOST_TABLE_SIZE,
        overlay: None,
    };
    let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();
    for g in 0..GUESTS {
        for ip in [ll(g), global(g)] {
            sw.install_binding(
                NewBinding {
                    vid: vid10(),
                    ip: IpAddr::V6(ip),
                    mac: mac(g),
                    port: PortId(g as u16 + 1),
                    lease_secs: Some(3600),
                    source: BindingSource::Nd,
                    duid: None,
                },
                Timestamp(0),
            )
            .unwrap();
        }
    }
    sw
}

fn run_batch(sw: &mut Switch, frames: &[(PortId, Vec<u8>)], now: Timestamp) {
    for (p, f) in frames {
        black_box(sw.process(now, *p, &IngressFrame { data: f, tag: None }));
    }
}

fn assert_no_drops(sw: &Switch, label: &str) {
    for p in sw.ports() {
        let c = sw.counters(p.id).unwrap();
        let d: u64 = c
            .rx_drops
            .iter()
            .chain(&c.tx_drops)
            .chain(&c.observed)
            .sum();
        assert_eq!(d, 0, "{label}: port {} dropped", p.name);
    }
}

fn bench(c: &mut Criterion) {
    let frames = traffic();
    let variants = [(false, "a_off"), (true, "b_on")];
    let mut group = c.benchmark_group("ipv6_security");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (on, label) in variants {
        let mut sw = switch(on);
        let mut t = 0u64;
        group.bench_function(label, |b| {
            b.iter(|| {
                t += 1000;
                run_batch(&mut sw, &frames, Timestamp(t));
            })
        });
        assert_no_drops(&sw, label);
    }
    group.finish();
    interleaved(&frames);
}

/// Both variants in alternating cells through `process_batch`; the cost of (b)
/// against (a), per round.
fn interleaved(frames: &[(PortId, Vec<u8>)]) {
    let full = std::env::args().any(|a| a == "--bench");
    let (rounds, batches) = if full { (201, 200) } else { (3, 4) };
    let mut switches = [switch(false), switch(true)];
    let mut verdicts = Vec::with_capacity(BATCH);
    let mut ns: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    let mut t = 0u64;
    for r in 0..rounds {
        for k in 0..2 {
            let i = (r + k) % 2;
            let start = Clock::now();
            for _ in 0..batches {
                t += 1000;
                for (p, f) in frames {
                    let one = std::iter::once(IngressFrame { data: f, tag: None });
                    switches[i].process_batch(Timestamp(t), *p, one, &mut verdicts);
                    black_box(&verdicts);
                }
            }
            ns[i].push(start.elapsed().as_nanos() as f64 / (batches * frames.len()) as f64);
        }
    }
    assert_no_drops(&switches[0], "a_off");
    assert_no_drops(&switches[1], "b_on");
    let mut cost: Vec<f64> = ns[1]
        .iter()
        .zip(&ns[0])
        .map(|(b, a)| (b / a - 1.0) * 100.0)
        .collect();
    cost.sort_by(f64::total_cmp);
    let p = |v: &[f64], q: usize| v[v.len() * q / 100];
    println!(
        "ipv6_security, interleaved: {rounds} rounds; b_on vs a_off per round: p50 {:+.1}% [p25 {:+.1}%, p75 {:+.1}%]",
        p(&cost, 50),
        p(&cost, 25),
        p(&cost, 75)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
