//! IPv6 Source Guard as guests and an attacker meet it, on one VLAN: an uplink, a
//! router guest r1 (trusted for ND inspection: not guarded), guests a and b with ND
//! inspection and the guard (`ip-mac`), and guest s with the guard alone (its
//! address an API binding; forged transmits accepted, so a second MAC reaches the
//! guard). A guest without an address may send only DAD, MLD with Router Alert and
//! DHCPv6 client messages from `::` — found behind extension headers too; its first
//! packet from a new address passes with the binding ND inspection holds; spoofed,
//! unbound and other-MAC sources are dropped as `ipv6_source_guard`; non-first
//! fragments are judged by their source; observe mode counts and forwards. Each
//! step asserts the verdict and exactly what changed in the whole switch state.

use portcullis_dataplane::bindings::{BindingSource, NewBinding};
use portcullis_dataplane::dump::{SwitchState, dump};
use portcullis_dataplane::wire::ipv6::next_header as nh;
use portcullis_dataplane::*;
use std::net::{IpAddr, Ipv6Addr};

mod support;
use support::ipv6::*;
use support::*;

const ROUTER: PortId = PortId(1);
const A: PortId = PortId(2);
const B: PortId = PortId(3);
const S: PortId = PortId(4);
const MLD_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 0x16]);
const DHCP_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 1, 0, 2]);

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// The lab; `mode`: the guard's mode on a, b and s; `check`: on s.
fn switch(mode: EnforceMode, check: SourceGuard) -> Switch {
    let nd = |trusted| {
        Some(NdInspectionSpec {
            trusted,
            max_addresses: 4,
            rate_limit_pps: None,
            mode: EnforceMode::Enforce,
            binding_lifetime_secs: 600,
        })
    };
    let guard = |check| Some(Ipv6SourceGuardSpec { check, mode });
    let mut up = trunk("uplink", &[10], Some(10));
    up.features.nd_inspection = nd(true);
    let mut r = access("r1", 10, Some(mac(1)));
    r.features.nd_inspection = nd(true);
    r.features.ipv6_source_guard = guard(SourceGuard::IpMac);
    let mut a = access("a", 10, Some(mac(2)));
    a.features.nd_inspection = nd(false);
    a.features.ipv6_source_guard = guard(SourceGuard::IpMac);
    let mut b = access("b", 10, Some(mac(3)));
    b.features.nd_inspection = nd(false);
    b.features.ipv6_source_guard = guard(SourceGuard::IpMac);
    let mut s = access("s", 10, Some(mac(4)));
    s.security.forged_transmits = Policy::Accept;
    s.features.ipv6_source_guard = guard(check);
    let mut sw = Switch::new(&switch_spec("sg6", vec![up, r, a, b, s]), t(0)).unwrap();
    sw.install_binding(
        NewBinding {
            vid: vid(10),
            ip: IpAddr::V6(ula(4)),
            mac: mac(4),
            port: S,
            lease_secs: None,
            source: BindingSource::Api,
            duid: None,
        },
        t(0),
    )
    .unwrap();
    sw
}

fn send6(
    sw: &mut Switch,
    secs: u64,
    port: PortId,
    src: MacAddr,
    dst: MacAddr,
    l3: &[u8],
) -> (Verdict, SwitchState) {
    let before = dump(sw, t(secs));
    let v = send_secs(sw, secs, port, &eth6(dst, src, l3));
    (v, before)
}

/// Releases a held frame as the runtime does once its binding is durable.
#[track_caller]
fn commit(sw: &mut Switch, secs: u64, port: PortId, v: Verdict, len: usize) {
    let Verdict::Hold(fwd, b) = v else {
        panic!("not held: {v:?}");
    };
    assert!(sw.release_held(port, &fwd, &b, len, true, t(secs)));
}

#[test]
fn from_unspecified_only_dad_mld_and_dhcpv6_clients_pass() {
    let mut sw = switch(EnforceMode::Enforce, SourceGuard::IpMac);
    // MLD report with Router Alert, from :: (the link-local is still tentative).
    let (v, before) = send6(
        &mut sw,
        1,
        A,
        mac(2),
        MLD_MAC,
        &mld_report(Ipv6Addr::UNSPECIFIED, true),
    );
    assert_eq!(out(&v), vec![0, 1, 3, 4]);
    assert!(
        dump::changes(&before, &dump(&sw, t(1)))
            .iter()
            .all(|c| !c.contains("drop"))
    );
    // DAD: held by ND inspection for its claim, passed by the guard.
    let (v, _) = send6(&mut sw, 1, A, mac(2), MLD_MAC, &dad(ll(0xa)));
    assert!(matches!(v, Verdict::Hold(..)), "{v:?}");
    // DAD behind a Destination Options header: the chain is walked.
    let hidden = with_exts(&dad(ll(0xaa)), &[pad_ext(nh::DESTINATION_OPTIONS, 0)]);
    let (v, _) = send6(&mut sw, 1, A, mac(2), MLD_MAC, &hidden);
    assert!(matches!(v, Verdict::Hold(..)), "{v:?}");
    // A DHCPv6 client (to 547).
    let solicit = udp6_probe(
        Ipv6Addr::UNSPECIFIED,
        546,
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2),
        547,
    );
    let (v, _) = send6(&mut sw, 1, A, mac(2), DHCP_MAC, &solicit);
    assert_eq!(out(&v), vec![0, 1, 3, 4]);
    // Everything else from :: is dropped, each counted once.
    let refused = [
        mld_report(Ipv6Addr::UNSPECIFIED, false),
        udp6_probe(Ipv6Addr::UNSPECIFIED, 547, ll(3), 546),
        echo(Ipv6Addr::UNSPECIFIED, ll(3)),
        // A DHCPv6 Solicit in two fragments: none of the uses fragments.
        split(
            &with_exts(&solicit, &[pad_ext(nh::DESTINATION_OPTIONS, 0)]),
            2,
            9,
        )
        .0,
    ];
    let before = dump(&sw, t(2));
    let mut bytes = 0;
    for (i, l3) in refused.iter().enumerate() {
        let (v, _) = send6(&mut sw, 2, B, mac(3), MLD_MAC, l3);
        assert_eq!(v, Verdict::Drop(DropReason::Ipv6SourceGuard), "packet {i}");
        bytes += 14 + l3.len();
    }
    assert_changed(
        &before,
        &sw,
        t(2),
        &[
            "+ port b: rx_frames 4",
            &format!("+ port b: rx_bytes {bytes}"),
            "+ port b: rx_drop.ipv6_source_guard 4",
        ],
    );
}

#[test]
fn a_first_packet_passes_with_its_held_binding_and_then_as_bound() {
    let mut sw = switch(EnforceMode::Enforce, SourceGuard::IpMac);
    let ping = echo(ula(0xa), ula(4));
    let (v, _) = send6(&mut sw, 1, A, mac(2), mac(4), &ping);
    let Verdict::Hold(_, b) = v else {
        panic!("{v:?}");
    };
    assert_eq!((b.ip, b.port), (IpAddr::V6(ula(0xa)), A));
    commit(&mut sw, 1, A, v, 14 + ping.len());
    let (v, before) = send6(&mut sw, 2, A, mac(2), mac(4), &ping);
    assert_eq!(out(&v), vec![4]);
    assert_changed(
        &before,
        &sw,
        t(2),
        &[
            "~ port a: rx_frames 1 → 2",
            "~ port a: rx_bytes 70 → 140",
            "~ port s: tx_frames 1 → 2",
            "~ port s: tx_bytes 70 → 140",
        ],
    );
    // Non-first fragments are judged by their source (in the fixed header).
    let big = with_exts(&ping, &[pad_ext(nh::DESTINATION_OPTIONS, 2)]);
    let (_, second) = split(&big, 2, 5);
    let (v, _) = send6(&mut sw, 3, A, mac(2), mac(4), &second);
    assert_eq!(out(&v), vec![4], "a's own fragment");
    let mut spoofed = second.clone();
    spoofed[8..24].copy_from_slice(&ula(0x99).octets());
    let (v, _) = send6(&mut sw, 3, S, mac(4), mac(2), &spoofed);
    assert_eq!(
        v,
        Verdict::Drop(DropReason::Ipv6SourceGuard),
        "an unbound source's fragment"
    );
}

#[test]
fn spoofed_unbound_and_other_mac_sources_are_dropped() {
    let mut sw = switch(EnforceMode::Enforce, SourceGuard::IpMac);
    let ping = echo(ula(0xa), ula(4));
    let (v, _) = send6(&mut sw, 1, A, mac(2), mac(4), &ping);
    commit(&mut sw, 1, A, v, 14 + ping.len());
    // s (no ND inspection: nothing binds for it) from its API-bound address: passes.
    let (v, _) = send6(&mut sw, 2, S, mac(4), mac(2), &echo(ula(4), ula(0xa)));
    assert_eq!(out(&v), vec![2]);
    // From a's address, an unbound one, and its own with another MAC (ip-mac).
    let before = dump(&sw, t(3));
    for (src, m) in [(ula(0xa), mac(4)), (ula(0x99), mac(4)), (ula(4), mac(0x44))] {
        let (v, _) = send6(&mut sw, 3, S, m, mac(2), &echo(src, ula(0xa)));
        assert_eq!(
            v,
            Verdict::Drop(DropReason::Ipv6SourceGuard),
            "{src} from {m}"
        );
    }
    assert_changed(
        &before,
        &sw,
        t(3),
        &[
            "~ port s: rx_frames 1 → 4",
            "~ port s: rx_bytes 70 → 280",
            "+ port s: rx_drop.ipv6_source_guard 3",
        ],
    );
    // The trusted router is not guarded.
    let (v, _) = send6(
        &mut sw,
        4,
        ROUTER,
        mac(1),
        mac(2),
        &echo(ula(0x1234), ula(0xa)),
    );
    assert_eq!(out(&v), vec![2]);
}

#[test]
fn in_ip_mode_the_address_alone_is_checked() {
    let mut sw = switch(EnforceMode::Enforce, SourceGuard::Ip);
    let (v, _) = send6(&mut sw, 1, S, mac(0x44), mac(2), &echo(ula(4), ula(0xa)));
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    let (v, _) = send6(&mut sw, 1, S, mac(4), mac(2), &echo(ula(0x99), ula(0xa)));
    assert_eq!(v, Verdict::Drop(DropReason::Ipv6SourceGuard));
}

#[test]
fn observe_mode_counts_and_forwards() {
    let mut sw = switch(EnforceMode::Observe, SourceGuard::IpMac);
    let spoof = echo(ula(0x99), ula(0xa));
    let (v, before) = send6(&mut sw, 1, S, mac(4), mac(2), &spoof);
    assert_eq!(out(&v), vec![2]);
    assert_changed(
        &before,
        &sw,
        t(1),
        &[
            "+ port a: tx_frames 1",
            "+ port a: tx_bytes 70",
            "+ port s: rx_frames 1",
            "+ port s: rx_bytes 70",
            "+ port s: observed.ipv6_source_guard 1",
        ],
    );
}
