//! RA guard as an attacker meets it: on one VLAN, a router guest (trusted), an
//! attacker and a victim (untrusted) and an uplink (trusted, as `ra_trusted`
//! defaults). Rogue Router Advertisements — plain, behind Hop-by-Hop and
//! Destination Options headers, fragmented with the ICMPv6 header in the second
//! fragment or in the first — and Redirects from the attacker are dropped, each
//! under its reason; the router's and the uplink's RAs reach everyone; the
//! attacker's NS, NA and echo still pass; observe mode counts and forwards; chains
//! the guard cannot read are dropped as such. Each step asserts the verdict and
//! exactly what changed in the whole switch state.

use portcullis_dataplane::dump::{SwitchState, dump};
use portcullis_dataplane::wire::ipv6::next_header as nh;
use portcullis_dataplane::wire::nd::{NdMessage, NdOption};
use portcullis_dataplane::*;

mod support;
use support::ipv6::*;
use support::*;

const UPLINK: PortId = PortId(0);
const ROUTER: PortId = PortId(1);
const ATTACKER: PortId = PortId(2);
const VICTIM: PortId = PortId(3);

fn guard(trusted: bool, mode: EnforceMode) -> Option<RaGuardSpec> {
    Some(RaGuardSpec { trusted, mode })
}

/// The lab: uplink (trunk, native 10), router r1 (mac 1), attacker a (mac 2),
/// victim v (mac 3), all in VLAN 10; `attacker_mode` is the attacker's guard mode.
fn switch(attacker_mode: EnforceMode, uplink_trusted: bool) -> Switch {
    let mut up = trunk("uplink", &[10], Some(10));
    up.features.ra_guard = guard(uplink_trusted, EnforceMode::Enforce);
    let mut r = access("r1", 10, Some(mac(1)));
    r.features.ra_guard = guard(true, EnforceMode::Enforce);
    let mut a = access("a", 10, Some(mac(2)));
    a.features.ra_guard = guard(false, attacker_mode);
    let mut v = access("v", 10, Some(mac(3)));
    v.features.ra_guard = guard(false, EnforceMode::Enforce);
    Switch::new(&switch_spec("ra", vec![up, r, a, v]), Timestamp(0)).unwrap()
}

/// Sends the IPv6 packet `l3` from `port` (source MAC `src`) to the all-nodes
/// group at `secs`; returns the verdict and the state before it.
fn send6(
    sw: &mut Switch,
    secs: u64,
    port: PortId,
    src: MacAddr,
    l3: &[u8],
) -> (Verdict, SwitchState) {
    let before = dump(sw, Timestamp::from_secs(secs));
    let v = send_secs(sw, secs, port, &eth6(ALL_NODES_MAC, src, l3));
    (v, before)
}

/// The rows a frame of `len` bytes received on `port` and dropped for `reason`
/// adds to the state (its first frame on the port).
fn first_drop(port: &str, len: usize, reason: &str) -> Vec<String> {
    vec![
        format!("+ port {port}: rx_frames 1"),
        format!("+ port {port}: rx_bytes {len}"),
        format!("+ port {port}: rx_drop.{reason} 1"),
    ]
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn rogue_ra() -> Vec<u8> {
    ra(ll(0xbad), mac(2))
}

#[test]
fn rogue_ra_is_dropped_plain_behind_extension_headers_and_fragmented() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let plain = rogue_ra();
    let (v, before) = send6(&mut sw, 1, ATTACKER, mac(2), &plain);
    assert_eq!(v, Verdict::Drop(DropReason::RaGuardRouterMessage));
    let len = 14 + plain.len();
    assert_changed(
        &before,
        &sw,
        Timestamp::from_secs(1),
        &strs(&first_drop("a", len, "ra_guard_router_message")),
    );

    // Behind Hop-by-Hop and Destination Options: the chain is walked to the RA.
    let hidden = with_exts(
        &plain,
        &[
            pad_ext(nh::HOP_BY_HOP, 0),
            pad_ext(nh::DESTINATION_OPTIONS, 1),
        ],
    );
    let (v, _) = send6(&mut sw, 2, ATTACKER, mac(2), &hidden);
    assert_eq!(v, Verdict::Drop(DropReason::RaGuardRouterMessage));

    // Fragmented, the ICMPv6 header in the second fragment: the first fragment's
    // chain stops short of the upper layer (RFC 7112) and is dropped; the second
    // is data (RFC 7113 §3 judges the first) and alone cannot be reassembled.
    let with_dst = with_exts(&plain, &[pad_ext(nh::DESTINATION_OPTIONS, 0)]);
    let (first, second) = split(&with_dst, 1, 7);
    let (v, _) = send6(&mut sw, 3, ATTACKER, mac(2), &first);
    assert_eq!(v, Verdict::Drop(DropReason::Ipv6IncompleteChain));
    let (v, _) = send6(&mut sw, 3, ATTACKER, mac(2), &second);
    assert_eq!(out(&v), vec![0, 1, 3], "a non-first fragment passes");

    // An RA-carrying first fragment: the ICMPv6 header is there, the RA judged.
    let (first, _) = split(&plain, 2, 8);
    let (v, before) = send6(&mut sw, 4, ATTACKER, mac(2), &first);
    assert_eq!(v, Verdict::Drop(DropReason::RaGuardRouterMessage));
    // 14 + 40 + 8 (Fragment) + 16 (the RA's first 16 bytes) = 78 bytes.
    assert_eq!(first.len(), 64);
    assert_changed(
        &before,
        &sw,
        Timestamp::from_secs(4),
        &[
            "~ port a: rx_frames 4 → 5",
            "~ port a: rx_bytes 456 → 534",
            "~ port a: rx_drop.ra_guard_router_message 2 → 3",
        ],
    );
    // The victim received only the harmless non-first fragment.
    let c = sw.counters(VICTIM).unwrap();
    assert_eq!(c.tx_frames, 1);
}

#[test]
fn redirect_from_untrusted_port_is_dropped() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let r = redirect(ll(2), ula(3), ll(2), ula(0x99));
    let before = dump(&sw, Timestamp::from_secs(1));
    let v = send_secs(&mut sw, 1, ATTACKER, &eth6(mac(3), mac(2), &r));
    assert_eq!(v, Verdict::Drop(DropReason::RaGuardRouterMessage));
    assert_changed(
        &before,
        &sw,
        Timestamp::from_secs(1),
        &strs(&first_drop("a", 14 + r.len(), "ra_guard_router_message")),
    );
}

#[test]
fn trusted_router_port_and_uplink_advertise_to_everyone() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let (v, _) = send6(&mut sw, 1, ROUTER, mac(1), &ra(ll(1), mac(1)));
    assert_eq!(out(&v), vec![0, 2, 3]);
    let (v, _) = send6(&mut sw, 1, UPLINK, ROUTER_MAC, &ra(ll(0xfe), ROUTER_MAC));
    assert_eq!(out(&v), vec![1, 2, 3]);
    for p in [UPLINK, ROUTER] {
        assert_eq!(sw.counters(p).unwrap().rx_drops.iter().sum::<u64>(), 0);
    }
    // A router's Redirect passes too.
    let r = redirect(ll(1), ula(3), ll(1), ula(0x99));
    let v = send_secs(&mut sw, 2, ROUTER, &eth6(mac(3), mac(1), &r));
    assert_eq!(out(&v), vec![3], "to the victim, whose MAC is configured");
}

#[test]
fn an_untrusted_uplink_is_guarded() {
    let mut sw = switch(EnforceMode::Enforce, false);
    let (v, _) = send6(&mut sw, 1, UPLINK, ROUTER_MAC, &ra(ll(0xfe), ROUTER_MAC));
    assert_eq!(v, Verdict::Drop(DropReason::RaGuardRouterMessage));
}

#[test]
fn guests_keep_neighbor_discovery_and_ping() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let ns = nd(
        ll(2),
        ll(3),
        NdMessage::NeighborSolicitation { target: ll(3) },
        &[NdOption::SourceLinkLayer(mac(2))],
    );
    let na = nd(
        ll(2),
        ALL_NODES,
        NdMessage::NeighborAdvertisement {
            router: false,
            solicited: false,
            override_flag: true,
            target: ll(2),
        },
        &[NdOption::TargetLinkLayer(mac(2))],
    );
    let rs = nd(ll(2), ll(0xff02), NdMessage::RouterSolicitation, &[]);
    let ping = echo(ula(2), ula(3));
    let dad = with_exts(&ns, &[pad_ext(nh::HOP_BY_HOP, 0)]);
    for (i, l3) in [ns, na, rs, ping, dad].iter().enumerate() {
        let before = dump(&sw, Timestamp::from_secs(1));
        let v = send_secs(&mut sw, 1, ATTACKER, &eth6(ALL_NODES_MAC, mac(2), l3));
        assert_eq!(out(&v), vec![0, 1, 3], "packet {i}");
        let after = dump(&sw, Timestamp::from_secs(1));
        assert!(
            !portcullis_dataplane::dump::changes(&before, &after)
                .iter()
                .any(|c| c.contains("drop")),
            "packet {i}: {after}"
        );
    }
    assert_eq!(
        sw.counters(ATTACKER).unwrap().rx_drops.iter().sum::<u64>(),
        0
    );
}

#[test]
fn observe_mode_counts_and_forwards() {
    let mut sw = switch(EnforceMode::Observe, true);
    let plain = rogue_ra();
    let (v, before) = send6(&mut sw, 1, ATTACKER, mac(2), &plain);
    assert_eq!(out(&v), vec![0, 1, 3]);
    let len = 14 + plain.len();
    let after = dump(&sw, Timestamp::from_secs(1));
    let changes = portcullis_dataplane::dump::changes(&before, &after);
    assert!(
        changes.contains(&"+ port a: observed.ra_guard_router_message 1".to_owned()),
        "{after}"
    );
    assert!(
        changes.contains(&format!("+ port v: tx_bytes {len}")),
        "{after}"
    );
    assert!(!changes.iter().any(|c| c.contains("rx_drop")), "{after}");
}

#[test]
fn chains_the_guard_cannot_read_are_dropped_and_esp_passes() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let ping = echo(ula(2), ula(3));
    // Mobility (135) hides what follows: never "not ICMPv6".
    let mut mobility = pad_ext(nh::MOBILITY, 0);
    mobility.0 = nh::MOBILITY;
    let unknown = with_exts(&ping, &[mobility]);
    let (v, _) = send6(&mut sw, 1, ATTACKER, mac(2), &unknown);
    assert_eq!(v, Verdict::Drop(DropReason::Ipv6UnknownHeader));
    // Hop-by-Hop after Destination Options: malformed (RFC 8200 §4.1).
    let misplaced = with_exts(
        &ping,
        &[
            pad_ext(nh::DESTINATION_OPTIONS, 0),
            pad_ext(nh::HOP_BY_HOP, 0),
        ],
    );
    let (v, _) = send6(&mut sw, 1, ATTACKER, mac(2), &misplaced);
    assert_eq!(v, Verdict::Drop(DropReason::Ipv6Malformed));
    // A header cut short: malformed.
    let (v, _) = send6(&mut sw, 1, ATTACKER, mac(2), &ping[..30]);
    assert_eq!(v, Verdict::Drop(DropReason::Ipv6Malformed));
    // ESP: encrypted for a peer; passes (see stages/ra_guard.rs).
    let mut esp = ping[..40].to_vec();
    esp[6] = nh::ESP;
    esp.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0]);
    esp[4..6].copy_from_slice(&16u16.to_be_bytes());
    let (v, _) = send6(&mut sw, 1, ATTACKER, mac(2), &esp);
    assert_eq!(out(&v), vec![0, 1, 3]);
    let d = |r: DropReason| drops(&sw, ATTACKER, r).0;
    assert_eq!(
        (
            d(DropReason::Ipv6UnknownHeader),
            d(DropReason::Ipv6Malformed)
        ),
        (1, 2)
    );
}
