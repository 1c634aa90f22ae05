//! The cost of the DHCP-snooping family on the pipeline. Same traffic model as
//! `benches/pipeline.rs` — 64-byte frames, 64 ports (62 guests + 2 uplinks) on 4
//! VLANs, ~90% known unicast / 10% broadcast — but the unicast frames are IPv4/UDP
//! from each guest's own bound address and the broadcasts are ARP requests from the
//! guest's own (MAC, IP), so every stage has real work and passes every frame.
//!
//! Variants, cumulative, in one run:
//! (a) `a_foundation`: the vSwitch policies (all reject), nothing else;
//! (b) `b_snooping`: + DHCP snooping on every guest port (untrusted), uplinks trusted;
//! (c) `c_snooping_dai`: + dynamic ARP inspection, validate src-mac, dst-mac and ip;
//! (d) `d_snooping_dai_ipsg`: + IP Source Guard ip-mac;
//! (e) `e_full`: + port security (maximum 1 MAC, shutdown) on every guest and a
//!     10-rule inbound MAC ACL on every port (the traffic walks to its final permit):
//!     the full security profile, the configuration of the 20 Mpps target.
//!
//! One binding per guest is installed with `Switch::install_binding` in every variant
//! (only (c) and (d) read them). Rate limits are off: the bench sends millions of
//! DHCP-free frames and ARP requests per second per port, which any real limit would
//! (rightly) error-disable. Every variant asserts that no frame was dropped (nor
//! would have been, in observe terms), so a broken variant cannot report the speed
//! of its drops.
//!
//! After criterion's figures (and `security_parts`, the stages' building blocks
//! alone), a drift-resistant comparison runs the variants interleaved through
//! `Switch::process_batch`, the daemon's entry point (round-robin, many short cells;
//! see `interleaved`) and prints Mpps and the cost of each variant against (a)
//! measured in the same rounds. `security_process_batch` gives criterion's figures
//! for (a) and (d) on that path: the main group calls `Switch::process` in a loop,
//! as `benches/pipeline.rs` does, and where the compiler inlines `process` changes
//! the absolute figures (not much the ratios). Without
//! `--bench` (clippy's and `cargo test --all-targets`' builds) that pass is tiny;
//! with `--profile-time` (for `perf record`) it is skipped.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::{ArpEthIpv4Packet, ArpOperation, PacketBuilder};
use portcullis_dataplane::bindings::{BindingSource, NewBinding};
use portcullis_dataplane::*;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

mod common;

use common::{
    BATCH, GUESTS, UPLINKS, VLANS, assert_no_drops, by_port, mac, run_batch, run_batch_daemon,
};

/// Frame length without FCS (a 64-byte frame on the wire).
const FRAME_LEN: usize = 60;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Variant {
    Foundation,
    DhcpSnooping,
    Dai,
    Ipsg,
    Full,
}

const VARIANTS: [(Variant, &str); 5] = [
    (Variant::Foundation, "a_foundation"),
    (Variant::DhcpSnooping, "b_snooping"),
    (Variant::Dai, "c_snooping_dai"),
    (Variant::Ipsg, "d_snooping_dai_ipsg"),
    (Variant::Full, "e_full"),
];

fn vid_of(g: usize) -> Vid {
    Vid::new((g % VLANS as usize + 1) as u16 * 10).unwrap()
}

/// Guest g's address: 198.18.<vid>.<g+1>.
fn ip(g: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, vid_of(g).get() as u8, g as u8 + 1)
}

fn spec(v: Variant) -> SwitchSpec {
    let security = SecurityPolicy {
        promiscuous: Policy::Reject,
        mac_changes: Policy::Reject,
        forged_transmits: Policy::Reject,
    };
    let features = |guest: bool| PortFeatures {
        dhcp_snooping: (v >= Variant::DhcpSnooping).then_some(DhcpSnoopingSpec {
            trusted: !guest,
            rate_limit_pps: None,
            option82: Option82::Keep,
            drop_untrusted_option82: false,
            mode: EnforceMode::Enforce,
        }),
        arp_inspection: (v >= Variant::Dai).then_some(ArpInspectionSpec {
            trusted: !guest,
            validate_src_mac: true,
            validate_dst_mac: true,
            validate_ip: true,
            rate_limit_pps: None,
            acl: None,
            mode: EnforceMode::Enforce,
        }),
        ip_source_guard: (v >= Variant::Ipsg && guest).then_some(IpSourceGuardSpec {
            check: SourceGuard::IpMac,
            mode: EnforceMode::Enforce,
        }),
        port_security: (v >= Variant::Full && guest).then(common::port_security_one_mac),
        mac_acl_in: (v >= Variant::Full).then(|| "acl10".to_string()),
        ..Default::default()
    };
    let acls = if v >= Variant::Full {
        vec![common::acl(10)]
    } else {
        vec![]
    };
    common::switch_spec(security, security, features, acls)
}

fn switch(v: Variant) -> Switch {
    let mut sw = Switch::new(&spec(v), Timestamp(0)).unwrap();
    for g in 0..GUESTS {
        sw.install_binding(
            NewBinding {
                vid: vid_of(g),
                ip: IpAddr::V4(ip(g)),
                mac: mac(g),
                port: PortId((UPLINKS + g) as u16),
                lease_secs: Some(86_400),
                source: BindingSource::Dhcp,
                duid: None,
            },
            Timestamp(0),
        )
        .unwrap();
    }
    sw.drain_events().for_each(drop);
    sw
}

/// (ingress port, frame bytes): guest g sends UDP to guest g+4 (same VLAN) from its
/// bound address, or broadcasts an ARP request for g+4's address.
fn traffic() -> Vec<(PortId, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let g = i % GUESTS;
            let peer = (g + VLANS as usize) % GUESTS;
            let mut f = Vec::with_capacity(FRAME_LEN);
            if i % 10 == 9 {
                let arp = ArpEthIpv4Packet {
                    operation: ArpOperation::REQUEST,
                    sender_mac: mac(g).0,
                    sender_ipv4: ip(g).octets(),
                    target_mac: [0; 6],
                    target_ipv4: ip(peer).octets(),
                };
                PacketBuilder::ethernet2(mac(g).0, MacAddr::BROADCAST.0)
                    .arp(arp.to_arp_packet())
                    .write(&mut f)
                    .unwrap();
            } else {
                // 14 + 20 + 8 header bytes, the rest UDP payload: 60 bytes in all.
                let payload = [0u8; FRAME_LEN - 42];
                PacketBuilder::ethernet2(mac(g).0, mac(peer).0)
                    .ipv4(ip(g).octets(), ip(peer).octets(), 64)
                    .udp(40_000 + g as u16, 5001)
                    .write(&mut f, &payload)
                    .unwrap();
            }
            f.resize(FRAME_LEN, 0); // Ethernet padding (ARP is 42 bytes)
            (PortId((UPLINKS + g) as u16), f)
        })
        .collect()
}

/// Checks the verdicts of one batch before timing anything.
fn check_verdicts(v: Variant, label: &str, frames: &[(PortId, Vec<u8>)]) {
    common::check_all_forwarded(switch(v), label, frames);
}

fn bench(c: &mut Criterion) {
    let frames = traffic();
    for (v, label) in VARIANTS {
        check_verdicts(v, label, &frames);
    }
    let mut group = c.benchmark_group("security");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (v, label) in VARIANTS {
        let mut sw = switch(v);
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

    // The same, through the daemon's entry point: the figure depends on where the
    // compiler puts `process` (see docs/performance.md).
    let ports = by_port(&frames);
    let mut group = c.benchmark_group("security_process_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (v, label) in [VARIANTS[0], VARIANTS[3], VARIANTS[4]] {
        let mut sw = switch(v);
        let mut verdicts = Vec::with_capacity(BATCH);
        let mut t = 0u64;
        group.bench_function(label, |b| {
            b.iter(|| {
                t += 1000;
                run_batch_daemon(&mut sw, &frames, &ports, &mut verdicts, Timestamp(t));
            })
        });
        assert_no_drops(&sw, label);
    }
    group.finish();
    parts(c, &frames);
    interleaved(&frames);
}

/// The building blocks the stages run per frame, each alone: where a stage's cost
/// comes from. Per call, over the IPv4 (or ARP) frames of the batch.
fn parts(c: &mut Criterion, frames: &[(PortId, Vec<u8>)]) {
    let l3 = |ethertype: u16| -> Vec<&[u8]> {
        frames
            .iter()
            .filter(|(_, f)| f[12..14] == ethertype.to_be_bytes())
            .map(|(_, f)| &f[14..])
            .collect()
    };
    let (ipv4, arps) = (l3(0x0800), l3(0x0806));
    let sw = switch(Variant::Ipsg);
    let mut table = bindings::BindingTable::new(GUESTS);
    for e in sw.bindings() {
        table.upsert(e.vid, e.ip, e.binding).unwrap();
    }
    let keys: Vec<(Vid, IpAddr)> = (0..ipv4.len())
        .map(|i| (vid_of(i % GUESTS), IpAddr::V4(ip(i % GUESTS))))
        .collect();
    let mut group = c.benchmark_group("security_parts");
    group.throughput(Throughput::Elements(ipv4.len() as u64));
    // What the pipeline runs on every IPv4 frame of a guarded port: one parse for
    // snooping and IP Source Guard (`dhcp::Ipv4Facts`); the etherparse-based parse
    // of the whole IPv4/UDP header beside it, for comparison.
    group.bench_function("ipv4_facts(ipv4)", |b| {
        b.iter(|| {
            for l in &ipv4 {
                black_box(dhcp::Ipv4Facts::parse(black_box(l)));
            }
        })
    });
    group.bench_function("ipv4_udp_etherparse(ipv4)", |b| {
        b.iter(|| {
            for l in &ipv4 {
                let _ = black_box(dhcp::ipv4_udp(black_box(l)));
            }
        })
    });
    group.bench_function("binding_lookup(62)", |b| {
        b.iter(|| {
            for (vid, ip) in &keys {
                black_box(table.lookup(*vid, black_box(*ip)));
            }
        })
    });
    group.throughput(Throughput::Elements(arps.len() as u64));
    group.bench_function("arp_parse(arp)", |b| {
        b.iter(|| {
            for l in &arps {
                black_box(arp::parse(black_box(l)).unwrap());
            }
        })
    });
    // RA guard on each IPv6 packet of a guarded untrusted port: the walk of the
    // extension-header chain and the ICMPv6 type (`stages::ra_guard::judge`), over
    // an echo request behind a Hop-by-Hop header.
    let echo6 = echo6_behind_hop_by_hop();
    group.throughput(Throughput::Elements(1));
    group.bench_function("ra_guard_judge(echo6_hbh)", |b| {
        b.iter(|| black_box(stages::ra_guard::judge(black_box(&echo6))))
    });
    group.finish();
}

/// An ICMPv6 echo request (8 bytes of data) behind an 8-byte Hop-by-Hop header.
fn echo6_behind_hop_by_hop() -> Vec<u8> {
    use portcullis_dataplane::wire::{icmpv6, ipv6};
    let (src, dst) = (
        "fd00:198:18::1".parse().unwrap(),
        "fd00:198:18::2".parse().unwrap(),
    );
    let mut msg = vec![128, 0, 0, 0, 0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8];
    icmpv6::fill_checksum(&mut msg, &src, &dst).unwrap();
    let mut pkt = vec![0; ipv6::HEADER_LEN];
    let plen = (8 + msg.len()) as u16;
    ipv6::emit_header(
        &mut pkt,
        plen,
        ipv6::next_header::HOP_BY_HOP,
        64,
        &src,
        &dst,
    )
    .unwrap();
    pkt.extend_from_slice(&[ipv6::next_header::ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
    pkt.extend_from_slice(&msg);
    pkt
}

/// The variants interleaved through `process_batch` (see `common::interleaved`).
fn interleaved(frames: &[(PortId, Vec<u8>)]) {
    let switches = VARIANTS.iter().map(|(v, l)| (*l, switch(*v))).collect();
    common::interleaved("security", frames, switches);
}

criterion_group!(benches, bench);
criterion_main!(benches);
