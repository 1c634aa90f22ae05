//! RA guard's invariant over random mutations of real router messages: Router
//! Advertisements and Redirects (plain, behind Hop-by-Hop and Destination Options,
//! as first fragments) and echoes, with random bytes overwritten — Next Header
//! fields, lengths, fragment fields, ICMPv6 types — and random truncation.
//!
//! The judge is not our parser but a sloppy host, written here: it ignores the
//! payload length (reads to the end of the frame, padding included), walks every
//! extension header it can skip by its length field — the unknown ones too, as a
//! host that knows Mobility or HIP would — follows a first or atomic fragment,
//! and takes ICMPv6 type 134 or 137 as a router message.
//!
//! Invariants, from an untrusted port in enforce mode:
//! 1. nothing such a host could read as an RA or a Redirect is forwarded anywhere;
//! 2. nothing panics, and every frame is counted exactly once (dropped or sent).

use portcullis_dataplane::wire::ipv6::next_header as nh;
use portcullis_dataplane::*;
use proptest::prelude::*;

mod support;
use support::ipv6::*;
use support::*;

const ATTACKER: PortId = PortId(2);

fn switch() -> Switch {
    let guard = |trusted| {
        Some(RaGuardSpec {
            trusted,
            mode: EnforceMode::Enforce,
        })
    };
    let mut up = trunk("uplink", &[10], Some(10));
    up.features.ra_guard = guard(true);
    let mut r = access("r1", 10, Some(mac(1)));
    r.features.ra_guard = guard(true);
    let mut a = access("a", 10, Some(mac(2)));
    a.features.ra_guard = guard(false);
    let mut v = access("v", 10, Some(mac(3)));
    v.features.ra_guard = guard(false);
    Switch::new(&switch_spec("ra", vec![up, r, a, v]), Timestamp(0)).unwrap()
}

/// Whether a sloppy host (`support::ipv6::sloppy_upper`) could read `l3` as a
/// Router Advertisement or Redirect.
fn sloppy_host_reads_router_message(l3: &[u8]) -> bool {
    matches!(sloppy_upper(l3), Some((nh::ICMPV6, at)) if matches!(l3.get(at), Some(134 | 137)))
}

/// The real messages the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let rogue = ra(ll(0xbad), mac(2));
    let hidden = with_exts(
        &rogue,
        &[
            pad_ext(nh::HOP_BY_HOP, 0),
            pad_ext(nh::DESTINATION_OPTIONS, 1),
        ],
    );
    let dst = with_exts(&rogue, &[pad_ext(nh::DESTINATION_OPTIONS, 0)]);
    let dst16 = with_exts(&rogue, &[pad_ext(nh::DESTINATION_OPTIONS, 1)]);
    let redir = redirect(ll(2), ula(3), ll(2), ula(0x99));
    vec![
        rogue.clone(),
        hidden.clone(),
        split(&rogue, 2, 1).0,
        split(&dst, 1, 2).0,
        split(&dst, 1, 2).1,
        split(&dst16, 3, 3).0,
        redir.clone(),
        with_exts(&redir, &[pad_ext(nh::HOP_BY_HOP, 0)]),
        echo(ula(2), ula(3)),
    ]
}

/// A seed, up to 6 bytes overwritten (biased to the first 80: the headers), and
/// perhaps a truncation.
fn arb_packet() -> impl Strategy<Value = Vec<u8>> {
    arb_mutated(seeds, 80, 200)
}

proptest! {
    #![proptest_config(many_cases())]

    #[test]
    fn no_ra_or_redirect_from_an_untrusted_port_is_forwarded(l3 in arb_packet()) {
        let mut sw = switch();
        let f = eth6(ALL_NODES_MAC, mac(2), &l3);
        let v = sw.process(Timestamp::from_secs(1), ATTACKER, &IngressFrame { data: &f, tag: None });
        if sloppy_host_reads_router_message(&f[14..]) {
            prop_assert!(v.out_ports().is_empty(), "a router message got out: {v:?}\n{l3:02x?}");
        }
        let c = sw.counters(ATTACKER).unwrap();
        prop_assert_eq!(c.rx_frames, 1);
        let dropped: u64 = c.rx_drops.iter().sum();
        prop_assert_eq!(dropped, u64::from(v.out_ports().is_empty()));
    }
}

#[test]
fn every_seed_router_message_is_judged_as_the_host_reads_it() {
    for (i, l3) in seeds().iter().enumerate() {
        let mut sw = switch();
        let f = eth6(ALL_NODES_MAC, mac(2), l3);
        let v = send_secs(&mut sw, 1, ATTACKER, &f);
        let host = sloppy_host_reads_router_message(&f[14..]);
        // Seed 3 is a first fragment without its ICMPv6 header: no host reads an RA
        // in it, and the guard drops it all the same (an incomplete chain).
        let incomplete_chain = i == 3;
        assert_eq!(
            v.out_ports().is_empty(),
            host || incomplete_chain,
            "seed {i}: {v:?}"
        );
    }
}
