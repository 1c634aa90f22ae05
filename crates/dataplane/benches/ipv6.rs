//! The cost of IPv6 first-hop security on the pipeline (issue 15: "the pipeline with
//! the IPv6 features on, over an IPv6 traffic mix, costs ≤ 15 % against the same
//! mix with them off, same run"). Same port model as `benches/pipeline.rs` and
//! `benches/security.rs` — 64 ports (62 guests + 2 uplinks) on 4 VLANs — with an
//! IPv6 traffic mix in which every guest uses its own addresses and MAC, so every
//! stage has real work and passes every frame:
//!
//! - 60 % UDP and 20 % TCP between guests of the same VLAN (86-byte frames), from a
//!   global address of the sender's;
//! - 10 % Neighbor Solicitations (from the sender's address, to the peer's
//!   solicited-node group, with SLLAO) and 8 % solicited Neighbor Advertisements
//!   (unicast, S and O flags, TLLAO);
//! - 2 % DHCPv6 SOLICITs (to ff02::1:2, from the sender's link-local, 546 → 547),
//!   which DHCPv6 guard delivers to the uplinks (trusted) only.
//!
//! Variants, cumulative, in one run: (a) `a_off`: the vSwitch policies (all reject),
//! no IPv6 feature; (b) `b_ra_guard`: + RA guard on every guest port (untrusted),
//! uplinks trusted; (c) `c_ipv6_fhs`: + DHCPv6 guard, ND inspection and IPv6 source
//! guard `ip-mac` on the guests (uplinks trusted), each guest's global and
//! link-local address installed as an `Nd` binding of its port and MAC. Rate limits
//! are off (the bench sends millions of NS per second per port). Every variant asserts that every
//! frame is forwarded and nothing dropped or observed, so a broken variant cannot
//! report the speed of its drops.
//!
//! criterion's `ipv6` group calls `Switch::process` in a loop; then the variants run
//! interleaved through `Switch::process_batch` (round-robin, many short cells, 10th
//! percentile, `common::interleaved`) and the cost of each against (a) in the
//! same rounds is printed. Without `--bench` (clippy, `cargo test --benches`) that
//! pass is tiny.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis_dataplane::bindings::{BindingSource, NewBinding};
use portcullis_dataplane::wire::{dhcpv6, nd};
use portcullis_dataplane::*;
use std::net::{IpAddr, Ipv6Addr};

mod common;

use common::{BATCH, GUESTS, UPLINKS, VLANS, assert_no_drops, mac, run_batch};

/// Data frames: 14 + 40 + 8 (UDP) or 20 (TCP) bytes of headers and some payload.
const DATA_LEN: usize = 86;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Variant {
    Off,
    RaGuard,
    Full,
}

const VARIANTS: [(Variant, &str); 3] = [
    (Variant::Off, "a_off"),
    (Variant::RaGuard, "b_ra_guard"),
    (Variant::Full, "c_ipv6_fhs"),
];

fn vid_of(g: usize) -> Vid {
    Vid::new((g % VLANS as usize + 1) as u16 * 10).unwrap()
}

/// Guest g's global address: fd00:198:18:<vid>::<g+1>.
fn global(g: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x198, 0x18, vid_of(g).get(), 0, 0, 0, g as u16 + 1)
}

/// Guest g's link-local address: fe80::<g+1>.
fn link_local(g: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, g as u16 + 1)
}

fn spec(v: Variant) -> SwitchSpec {
    let security = SecurityPolicy {
        promiscuous: Policy::Reject,
        mac_changes: Policy::Reject,
        forged_transmits: Policy::Reject,
    };
    let features = |guest: bool| PortFeatures {
        ra_guard: (v >= Variant::RaGuard).then_some(RaGuardSpec {
            trusted: !guest,
            mode: EnforceMode::Enforce,
        }),
        dhcpv6_guard: (v >= Variant::Full).then_some(Dhcpv6GuardSpec {
            trusted: !guest,
            rate_limit_pps: None,
            mode: EnforceMode::Enforce,
        }),
        nd_inspection: (v >= Variant::Full).then_some(NdInspectionSpec {
            trusted: !guest,
            max_addresses: 8,
            rate_limit_pps: None,
            mode: EnforceMode::Enforce,
            binding_lifetime_secs: 86_400,
        }),
        ipv6_source_guard: (v >= Variant::Full && guest).then_some(Ipv6SourceGuardSpec {
            check: SourceGuard::IpMac,
            mode: EnforceMode::Enforce,
        }),
        ..Default::default()
    };
    common::switch_spec(security, security, features, vec![])
}

/// The switch of variant `v`; for (c), each guest's two addresses bound to its
/// port and MAC (`Nd`), as ND inspection would have bound them from their DAD.
fn switch(v: Variant) -> Switch {
    let mut sw = Switch::new(&spec(v), Timestamp(0)).unwrap();
    if v >= Variant::Full {
        for g in 0..GUESTS {
            for ip in [global(g), link_local(g)] {
                sw.install_binding(
                    NewBinding {
                        vid: vid_of(g),
                        ip: IpAddr::V6(ip),
                        mac: mac(g),
                        port: PortId((UPLINKS + g) as u16),
                        lease_secs: Some(86_400),
                        source: BindingSource::Nd,
                        duid: None,
                    },
                    Timestamp(0),
                )
                .unwrap();
            }
        }
        sw.drain_events().for_each(drop);
    }
    sw
}

fn ethernet(src: MacAddr, dst: MacAddr, l3: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + l3.len());
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&0x86ddu16.to_be_bytes());
    f.extend_from_slice(l3);
    f.resize(f.len().max(60), 0);
    f
}

/// The multicast MAC of an IPv6 group (RFC 2464 §7).
fn group_mac(a: Ipv6Addr) -> MacAddr {
    let o = a.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

fn nd_frame(
    src: MacAddr,
    dst: MacAddr,
    ip: (Ipv6Addr, Ipv6Addr),
    m: nd::NdMessage,
    o: &[nd::NdOption<'_>],
) -> Vec<u8> {
    let e = nd::NdEmit {
        src: ip.0,
        dst: ip.1,
        message: m,
        options: o,
    };
    let mut l3 = vec![0; e.buffer_len()];
    e.emit(&mut l3).unwrap();
    ethernet(src, dst, &l3)
}

/// (ingress port, frame): the mix in the module comment, guest g to g+4 (same VLAN).
fn traffic() -> Vec<(PortId, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let g = i % GUESTS;
            let peer = (g + VLANS as usize) % GUESTS;
            let (me, them) = (global(g), global(peer));
            let f = match i % 50 {
                0..=29 => {
                    let mut f = Vec::with_capacity(DATA_LEN);
                    etherparse::PacketBuilder::ethernet2(mac(g).0, mac(peer).0)
                        .ipv6(me.octets(), them.octets(), 64)
                        .udp(40_000 + g as u16, 5001)
                        .write(&mut f, &[0; DATA_LEN - 62])
                        .unwrap();
                    f
                }
                30..=39 => {
                    let mut f = Vec::with_capacity(DATA_LEN);
                    etherparse::PacketBuilder::ethernet2(mac(g).0, mac(peer).0)
                        .ipv6(me.octets(), them.octets(), 64)
                        .tcp(40_000 + g as u16, 443, 1, 1024)
                        .write(&mut f, &[0; DATA_LEN - 74])
                        .unwrap();
                    f
                }
                40..=44 => {
                    let group = nd::solicited_node(&them);
                    nd_frame(
                        mac(g),
                        group_mac(group),
                        (me, group),
                        nd::NdMessage::NeighborSolicitation { target: them },
                        &[nd::NdOption::SourceLinkLayer(mac(g))],
                    )
                }
                45..=48 => nd_frame(
                    mac(g),
                    mac(peer),
                    (me, them),
                    nd::NdMessage::NeighborAdvertisement {
                        router: false,
                        solicited: true,
                        override_flag: true,
                        target: me,
                    },
                    &[nd::NdOption::TargetLinkLayer(mac(g))],
                ),
                _ => {
                    let duid = [0, 3, 0, 1, 0x52, 0x54, 0, 0, 0, g as u8];
                    let opts = [
                        dhcpv6::Dhcpv6OptionOut::ClientId(&duid),
                        dhcpv6::Dhcpv6OptionOut::ElapsedTime(0),
                    ];
                    let m = dhcpv6::Dhcpv6Emit {
                        msg_type: dhcpv6::MessageType::Solicit,
                        transaction_id: i as u32,
                        options: &opts,
                    };
                    let mut payload = vec![0; m.buffer_len()];
                    m.emit(&mut payload).unwrap();
                    let all_agents = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
                    let mut l3 = vec![0; 48 + payload.len()];
                    dhcpv6::emit_udp(&mut l3, &link_local(g), &all_agents, 546, 547, &payload)
                        .unwrap();
                    ethernet(mac(g), group_mac(all_agents), &l3)
                }
            };
            (PortId((UPLINKS + g) as u16), f)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let frames = traffic();
    for (v, label) in VARIANTS {
        common::check_all_forwarded(switch(v), label, &frames);
    }
    let mut group = c.benchmark_group("ipv6");
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
    let switches = VARIANTS.iter().map(|(v, l)| (*l, switch(*v))).collect();
    common::interleaved("ipv6", &frames, switches);
}

criterion_group!(benches, bench);
criterion_main!(benches);
