//! ND inspection's and IPv6 Source Guard's invariants over random mutations of real
//! packets an attacker sends: DAD for a victim's address, NAs spoofing the victim
//! and the router (plain, behind extension headers, fragmented), NSs with lying
//! link-layer options, echoes from the victim's address and its own, MLD and DHCPv6
//! from `::` — with random bytes overwritten (biased to the headers) and random
//! truncation; and the same mutations sent by the trusted router.
//!
//! The lab is the strict template's: RA guard, ND inspection and IPv6 Source Guard
//! (`ip-mac`) on every untrusted guest, enforcing; the victim's link-local and
//! global addresses, the attacker's link-local and the router's link-local are
//! bound before each case.
//!
//! The judge of an NA or DAD is a sloppy host, written here: it walks every
//! extension header it can skip by its length (unknown ones too), ignores the
//! checksum, hop limit and payload length, but — as RFC 6980 §5 requires and Linux
//! does — ignores ND that arrives in fragments.
//!
//! Invariants, from the untrusted attacker port:
//! 1. no packet whose IPv6 source is bound to another port (or MAC) is forwarded;
//! 2. no NA, and no DAD NS, whose target such a host reads as bound to another port
//!    is forwarded;
//! 3. nothing panics, and every frame is counted exactly once (dropped, sent or
//!    held), from the attacker and from the router alike.
//!
//! And the packet path with ND inspection and the guard allocates nothing per frame
//! (claims, refreshes, drops, defended removals included).

use portcullis_dataplane::wire::ipv6::next_header as nh;
use portcullis_dataplane::wire::nd::{NdMessage, NdOption, solicited_node};
use portcullis_dataplane::*;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv6Addr};

mod support;
use support::ipv6::*;
use support::*;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

const UPLINK: PortId = PortId(0);
const ROUTER: PortId = PortId(1);
const VICTIM: PortId = PortId(2);
const ATTACKER: PortId = PortId(3);

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

fn na(src: Ipv6Addr, target: Ipv6Addr, solicited: bool, lladdr: MacAddr) -> Vec<u8> {
    nd(
        src,
        ALL_NODES,
        NdMessage::NeighborAdvertisement {
            router: false,
            solicited,
            override_flag: true,
            target,
        },
        &[NdOption::TargetLinkLayer(lladdr)],
    )
}

/// Sends `l3` from `port` and, if held, commits it as the runtime does.
fn send_commit(sw: &mut Switch, secs: u64, port: PortId, m: MacAddr, l3: &[u8]) -> Verdict {
    let f = eth6(ALL_NODES_MAC, m, l3);
    let v = send_secs(sw, secs, port, &f);
    if let Verdict::Hold(fwd, b) = v {
        assert!(sw.release_held(port, &fwd, &b, f.len(), true, t(secs)));
    }
    v
}

/// The lab, with the victim's ll(0xa) and ula(0xa), the attacker's ll(0xb) and the
/// router's ll(1) bound.
fn switch() -> Switch {
    let nd_spec = |trusted| {
        Some(NdInspectionSpec {
            trusted,
            max_addresses: 4,
            rate_limit_pps: Some(1000),
            mode: EnforceMode::Enforce,
            binding_lifetime_secs: 600,
        })
    };
    let strict = |p: &mut PortSpec, trusted| {
        p.features.ra_guard = Some(RaGuardSpec {
            trusted,
            mode: EnforceMode::Enforce,
        });
        p.features.nd_inspection = nd_spec(trusted);
        p.features.ipv6_source_guard = Some(Ipv6SourceGuardSpec {
            check: SourceGuard::IpMac,
            mode: EnforceMode::Enforce,
        });
    };
    let mut up = trunk("uplink", &[10], Some(10));
    up.features.nd_inspection = nd_spec(true);
    let mut r = access("r1", 10, Some(mac(1)));
    strict(&mut r, true);
    let mut v = access("v", 10, Some(mac(2)));
    strict(&mut v, false);
    let mut a = access("a", 10, Some(mac(3)));
    strict(&mut a, false);
    let mut sw = Switch::new(&switch_spec("savi", vec![up, r, v, a]), t(0)).unwrap();
    send_commit(&mut sw, 1, ROUTER, mac(1), &ra(ll(1), mac(1)));
    send_commit(&mut sw, 1, VICTIM, mac(2), &dad(ll(0xa)));
    send_commit(&mut sw, 1, VICTIM, mac(2), &dad(ula(0xa)));
    send_commit(&mut sw, 1, ATTACKER, mac(3), &dad(ll(0xb)));
    assert_eq!(sw.binding_count(), 4);
    sw
}

/// The real packets the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let steal = dad(ula(0xa));
    let spoof_victim = na(ula(0xa), ula(0xa), false, mac(3));
    let spoof_router = na(ll(0xb), ll(1), false, mac(3));
    let lie = nd(
        ll(0xb),
        solicited_node(&ll(0xa)),
        NdMessage::NeighborSolicitation { target: ll(0xa) },
        &[NdOption::SourceLinkLayer(mac(2))],
    );
    let from_victim = echo(ula(0xa), ula(0x99));
    vec![
        steal.clone(),
        with_exts(&steal, &[pad_ext(nh::HOP_BY_HOP, 0)]),
        spoof_victim.clone(),
        with_exts(&spoof_victim, &[pad_ext(nh::DESTINATION_OPTIONS, 1)]),
        split(
            &with_exts(&spoof_victim, &[pad_ext(nh::DESTINATION_OPTIONS, 0)]),
            1,
            4,
        )
        .0,
        spoof_router,
        lie,
        from_victim.clone(),
        split(
            &with_exts(&from_victim, &[pad_ext(nh::DESTINATION_OPTIONS, 2)]),
            2,
            5,
        )
        .1,
        echo(ll(0xb), ll(0xa)),
        echo(ula(0x77), ll(0xa)),
        mld_report(Ipv6Addr::UNSPECIFIED, true),
        udp6_probe(
            Ipv6Addr::UNSPECIFIED,
            546,
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2),
            547,
        ),
    ]
}

/// A seed, up to 6 bytes overwritten (biased to the first 80: the headers), and
/// perhaps a truncation.
fn arb_packet() -> impl Strategy<Value = Vec<u8>> {
    let n = seeds().len();
    (
        0..n,
        proptest::collection::vec((0usize..200, any::<u8>(), any::<bool>()), 0..6),
        proptest::option::of(0usize..200),
    )
        .prop_map(|(i, edits, cut)| {
            let mut p = seeds().swap_remove(i);
            for (at, byte, header) in edits {
                let at = if header { at % 80 } else { at };
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

fn addr(b: &[u8]) -> Option<Ipv6Addr> {
    <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
}

/// The IPv6 source of `l3`, as any reader of the fixed header takes it.
fn source(l3: &[u8]) -> Option<Ipv6Addr> {
    if l3.len() < 40 || l3[0] >> 4 != 6 {
        return None;
    }
    addr(&l3[8..24])
}

/// The target a sloppy host reads in an NA, or in an NS from `::` (DAD), if any.
fn sloppy_host_reads_claim(l3: &[u8]) -> Option<Ipv6Addr> {
    let src = source(l3)?;
    let mut next = l3[6];
    let mut at = 40usize;
    for _ in 0..64 {
        let h = l3.get(at..)?;
        match next {
            nh::ICMPV6 => {
                return match h.first()? {
                    136 => addr(h.get(8..24)?),
                    135 if src.is_unspecified() => addr(h.get(8..24)?),
                    _ => None,
                };
            }
            // Fragmented ND is ignored (RFC 6980 §5); an atomic fragment is whole.
            nh::FRAGMENT => {
                let [n, _, hi, lo, ..] = h else { return None };
                if u16::from_be_bytes([*hi, *lo]) != 0 {
                    return None;
                }
                next = *n;
                at += 8;
            }
            nh::AH => {
                let [n, len, ..] = h else { return None };
                next = *n;
                at += (usize::from(*len) + 2) * 4;
            }
            nh::HOP_BY_HOP
            | nh::ROUTING
            | nh::DESTINATION_OPTIONS
            | nh::MOBILITY
            | nh::HIP
            | nh::SHIM6
            | nh::EXPERIMENT_1
            | nh::EXPERIMENT_2 => {
                let [n, len, ..] = h else { return None };
                next = *n;
                at += (usize::from(*len) + 1) * 8;
            }
            _ => return None,
        }
    }
    None
}

/// Whether `a` is bound in VLAN 10 to another port than `port` or MAC than `m`.
fn bound_elsewhere(sw: &Switch, a: Ipv6Addr, port: PortId, m: MacAddr) -> bool {
    sw.binding(vid(10), IpAddr::V6(a))
        .is_some_and(|b| b.port != port || b.mac != m)
}

proptest! {
    #![proptest_config(many_cases())]

    #[test]
    fn no_claim_of_another_ports_address_leaves_the_attackers_port(l3 in arb_packet()) {
        let mut sw = switch();
        let f = eth6(ALL_NODES_MAC, mac(3), &l3);
        let src_taken = source(&l3).is_some_and(|s| bound_elsewhere(&sw, s, ATTACKER, mac(3)));
        let claim_taken = sloppy_host_reads_claim(&l3)
            .is_some_and(|a| bound_elsewhere(&sw, a, ATTACKER, mac(3)));
        let before = sw.bindings();
        let rx_before = sw.counters(ATTACKER).unwrap().clone();
        let v = sw.process(t(2), ATTACKER, &IngressFrame { data: &f, tag: None });
        if src_taken || claim_taken {
            prop_assert!(
                v.out_ports().is_empty() && !matches!(v, Verdict::Hold(..)),
                "another port's address got out: {v:?}\n{l3:02x?}"
            );
        }
        // The attacker never takes another's binding.
        for b in before.iter().filter(|b| b.binding.port != ATTACKER) {
            prop_assert_eq!(sw.binding(b.vid, b.ip), Some(b.binding));
        }
        let c = sw.counters(ATTACKER).unwrap();
        prop_assert_eq!(c.rx_frames, rx_before.rx_frames + 1);
        let dropped: u64 = c.rx_drops.iter().sum::<u64>() - rx_before.rx_drops.iter().sum::<u64>();
        let forwarded = !v.out_ports().is_empty() || matches!(v, Verdict::Hold(..));
        prop_assert_eq!(dropped, u64::from(!forwarded), "{:?}", v);
    }

    #[test]
    fn a_trusted_port_never_panics_nor_drops_for_nd(l3 in arb_packet()) {
        let mut sw = switch();
        let f = eth6(ALL_NODES_MAC, mac(1), &l3);
        let rx_before = sw.counters(ROUTER).unwrap().rx_frames;
        let v = sw.process(t(2), ROUTER, &IngressFrame { data: &f, tag: None });
        if let Some(r) = v.drop_reason() {
            // RA guard and the guard skip a trusted port; ND inspection never drops
            // on one. What may drop it is the frame itself (no destination …).
            prop_assert!(
                !matches!(
                    r,
                    DropReason::NdAddressOwned
                        | DropReason::NdLinkLayerMismatch
                        | DropReason::NdUnsolicitedOverride
                        | DropReason::NdMaxAddresses
                        | DropReason::NdRateLimit
                        | DropReason::NdMalformed
                        | DropReason::Ipv6SourceGuard
                ),
                "{r:?}"
            );
        }
        let c = sw.counters(ROUTER).unwrap();
        prop_assert_eq!(c.rx_frames, rx_before + 1);
        let v2 = sw.process(t(3), UPLINK, &IngressFrame { data: &eth6(ALL_NODES_MAC, mac(0x77), &l3), tag: None });
        prop_assert!(v2.drop_reason().is_none_or(|r| r != DropReason::NdAddressOwned));
    }
}

#[test]
fn every_seed_is_judged_as_the_invariant_says() {
    let want = [
        Some(DropReason::NdAddressOwned), // DAD stealing
        Some(DropReason::NdAddressOwned), // … behind Hop-by-Hop
        Some(DropReason::NdAddressOwned), // NA spoofing the victim
        Some(DropReason::NdAddressOwned), // … behind Destination Options
        // A first fragment of that NA, its ICMPv6 header in the second: RA guard
        // drops the incomplete chain first.
        Some(DropReason::Ipv6IncompleteChain),
        Some(DropReason::NdAddressOwned), // NA spoofing the router
        Some(DropReason::NdLinkLayerMismatch), // an NS naming the victim's MAC
        Some(DropReason::NdAddressOwned), // an echo from the victim's address
        Some(DropReason::NdAddressOwned), // … its non-first fragment
        None,                             // the attacker's own link-local
        None,                             // a new address: claimed (held)
        None,                             // MLD from ::
        None,                             // DHCPv6 Solicit from ::
    ];
    for (i, l3) in seeds().iter().enumerate() {
        let mut sw = switch();
        let v = send_secs(&mut sw, 2, ATTACKER, &eth6(ALL_NODES_MAC, mac(3), l3));
        assert_eq!(v.drop_reason(), want[i], "seed {i}: {v:?}");
    }
}

#[test]
fn the_pipeline_with_nd_inspection_does_not_allocate_per_frame() {
    let mut sw = switch();
    let frames: Vec<(PortId, Vec<u8>)> = [
        (ATTACKER, mac(3), dad(ula(0xa))),
        (ATTACKER, mac(3), na(ula(0xa), ula(0xa), false, mac(3))),
        (ATTACKER, mac(3), echo(ll(0xb), ll(0xa))),
        (ATTACKER, mac(3), echo(ula(0x55), ll(0xa))),
        (VICTIM, mac(2), echo(ula(0xa), ll(0xb))),
        (ROUTER, mac(1), ra(ll(1), mac(1))),
        (ROUTER, mac(1), na(ll(1), ll(0xb), false, mac(1))),
        (ATTACKER, mac(3), mld_report(Ipv6Addr::UNSPECIFIED, true)),
    ]
    .into_iter()
    .map(|(p, m, l3)| (p, eth6(ALL_NODES_MAC, m, &l3)))
    .collect();
    let run = |sw: &mut Switch, secs: u64| {
        let mut n = 0;
        for (p, f) in &frames {
            let v = sw.process(t(secs), *p, &IngressFrame { data: f, tag: None });
            n += v.out_ports().len();
        }
        n
    };
    run(&mut sw, 2); // warm-up
    // 400 s later (lifetime 600): the victim's and router's bindings refresh.
    let (_, allocs) = allocations_in(|| run(&mut sw, 400));
    assert_eq!(allocs, 0);
    let refreshed = sw
        .drain_events()
        .filter(|e| matches!(e.kind, EventKind::BindingRefreshed { .. }))
        .count();
    assert!(refreshed >= 1, "the run refreshed a binding");
}
