//! ND inspection and FCFS-SAVI as guests and an attacker meet it, on one VLAN: an
//! uplink (trusted, as `nd_trusted` defaults), a router guest r1 (trusted), guests a
//! and b and c (untrusted, at most 3 addresses each, lifetime 100 s). A guest's DAD
//! for its link-local and SLAAC addresses is held, then bound; a second guest's DAD
//! for the same address, NAs spoofing the router's gleaned address or another
//! guest's, a lying link-layer option and an unsolicited override are dropped, each
//! under its reason; privacy addresses bind up to the cap; bindings age, refresh on
//! use and re-file; a moved guest re-claims; an upstream owner defends its address;
//! observe mode counts and forwards. Each step asserts the verdict and exactly what
//! changed in the whole switch state.

use portcullis_dataplane::bindings::BindingUpdate;
use portcullis_dataplane::dump::{SwitchState, dump};
use portcullis_dataplane::events::BindingRemoval;
use portcullis_dataplane::wire::nd::{NdMessage, NdOption, solicited_node};
use portcullis_dataplane::*;
use std::net::{IpAddr, Ipv6Addr};

mod support;
use support::ipv6::*;
use support::*;

const UPLINK: PortId = PortId(0);
const ROUTER: PortId = PortId(1);
const A: PortId = PortId(2);
const B: PortId = PortId(3);
const C: PortId = PortId(4);
/// An upstream router behind the uplink.
const UPSTREAM_MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0, 0xfe, 0xfe]);
const LIFETIME: u32 = 100;

fn nd_spec(trusted: bool, mode: EnforceMode) -> Option<NdInspectionSpec> {
    Some(NdInspectionSpec {
        trusted,
        max_addresses: 3,
        rate_limit_pps: Some(100),
        mode,
        binding_lifetime_secs: LIFETIME,
    })
}

/// The lab; `mode`: the guests' ND inspection mode.
fn switch(mode: EnforceMode) -> Switch {
    let mut up = trunk("uplink", &[10], Some(10));
    up.features.nd_inspection = nd_spec(true, EnforceMode::Enforce);
    let mut r = access("r1", 10, Some(mac(1)));
    r.features.nd_inspection = nd_spec(true, EnforceMode::Enforce);
    let guest = |name: &str, i: u8| {
        let mut g = access(name, 10, Some(mac(i)));
        g.features.nd_inspection = nd_spec(false, mode);
        g
    };
    let ports = vec![up, r, guest("a", 2), guest("b", 3), guest("c", 4)];
    Switch::new(&switch_spec("savi", ports), Timestamp(0)).unwrap()
}

fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(secs)
}

/// Sends `l3` from `port` (source MAC `src`) to `dst` at `secs`; returns the verdict
/// and the state before it.
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

/// The binding a first claim of `ip` by guest MAC `m` on `port` holds.
fn claim(ip: Ipv6Addr, m: MacAddr, port: PortId) -> BindingUpdate {
    BindingUpdate {
        vid: vid(10),
        ip: IpAddr::V6(ip),
        mac: m,
        port,
        lease_secs: Some(LIFETIME),
        source: bindings::BindingSource::Nd,
        duid: None,
    }
}

/// Commits a held frame (`len` bytes, received on `port` at `secs`) as the runtime
/// does once its binding is durable; asserts it was held for `want`.
#[track_caller]
fn commit(sw: &mut Switch, secs: u64, port: PortId, v: Verdict, len: usize, want: BindingUpdate) {
    let Verdict::Hold(fwd, b) = v else {
        panic!("not held: {v:?}");
    };
    assert_eq!(b, want);
    assert!(sw.release_held(port, &fwd, &b, len, true, t(secs)));
}

/// An NA from `src` for `target` with the guest's `lladdr` as TLLAO.
fn na(src: Ipv6Addr, target: Ipv6Addr, solicited: bool, over: bool, lladdr: MacAddr) -> Vec<u8> {
    let dst = if solicited { ll(0x99) } else { ALL_NODES };
    nd(
        src,
        dst,
        NdMessage::NeighborAdvertisement {
            router: false,
            solicited,
            override_flag: over,
            target,
        },
        &[NdOption::TargetLinkLayer(lladdr)],
    )
}

/// An NS from `src` asking for `target`, with `lladdr` as SLLAO.
fn ns(src: Ipv6Addr, target: Ipv6Addr, lladdr: MacAddr) -> Vec<u8> {
    nd(
        src,
        solicited_node(&target),
        NdMessage::NeighborSolicitation { target },
        &[NdOption::SourceLinkLayer(lladdr)],
    )
}

/// A privacy-style random link-local address (no EUI-64).
fn random_ll() -> Ipv6Addr {
    "fe80::1c4e:9a77:2b3c:5d11".parse().unwrap()
}
/// A stable-privacy SLAAC address and two temporary ones (RFC 7217, RFC 8981).
fn stable() -> Ipv6Addr {
    "fd00:198:18:10:8d2f:41c3:77e0:19ab".parse().unwrap()
}
fn temporary(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x198, 0x18, 0x10, 0x5a3c, 0x9e01, 0x44d2, i)
}

fn binding_line(ip: Ipv6Addr, m: MacAddr, port: &str, end: u64) -> String {
    format!("+ binding vlan 10 {ip} {m} on {port} (nd, lease end {end}s)")
}

#[test]
fn guests_bind_by_dad_and_a_second_claim_is_refused() {
    let mut sw = switch(EnforceMode::Enforce);
    // a: DAD for its random link-local: held, nothing sent yet, then bound.
    let l3 = dad(random_ll());
    let len = 14 + l3.len();
    let (v, before) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &l3);
    let mid = assert_changed(
        &before,
        &sw,
        t(1),
        &["+ port a: rx_frames 1", "+ port a: rx_bytes 78"],
    );
    commit(&mut sw, 1, A, v, len, claim(random_ll(), mac(2), A));
    let bound = binding_line(random_ll(), mac(2), "a", 101);
    let state = assert_changed(
        &mid,
        &sw,
        t(1),
        &[
            "+ port uplink: tx_frames 1",
            "+ port uplink: tx_bytes 78",
            "+ port r1: tx_frames 1",
            "+ port r1: tx_bytes 78",
            "+ port b: tx_frames 1",
            "+ port b: tx_bytes 78",
            "+ port c: tx_frames 1",
            "+ port c: tx_bytes 78",
            &bound,
        ],
    );
    // Its stable SLAAC address, by DAD too.
    let (v, _) = send6(&mut sw, 2, A, mac(2), ALL_NODES_MAC, &dad(stable()));
    commit(&mut sw, 2, A, v, len, claim(stable(), mac(2), A));
    assert_changed(
        &state,
        &sw,
        t(2),
        &[
            "~ port uplink: tx_frames 1 → 2",
            "~ port uplink: tx_bytes 78 → 156",
            "~ port r1: tx_frames 1 → 2",
            "~ port r1: tx_bytes 78 → 156",
            "~ port a: rx_frames 1 → 2",
            "~ port a: rx_bytes 78 → 156",
            "~ port b: tx_frames 1 → 2",
            "~ port b: tx_bytes 78 → 156",
            "~ port c: tx_frames 1 → 2",
            "~ port c: tx_bytes 78 → 156",
            &binding_line(stable(), mac(2), "a", 102),
        ],
    );
    // a uses it: its own address, forwarded at once.
    let ping = echo(stable(), ula(3));
    let (v, _) = send6(&mut sw, 3, A, mac(2), mac(3), &ping);
    assert_eq!(out(&v), vec![3]);
    // b's DAD for a's address: dropped, a keeps it (DAD stealing).
    let (v, before) = send6(&mut sw, 4, B, mac(3), ALL_NODES_MAC, &dad(stable()));
    assert_eq!(v, Verdict::Drop(DropReason::NdAddressOwned));
    assert_changed(
        &before,
        &sw,
        t(4),
        &[
            "+ port b: rx_frames 1",
            "+ port b: rx_bytes 78",
            "+ port b: rx_drop.nd_address_owned 1",
        ],
    );
    // b's NAs for it — solicited, or unsolicited with Override: NA spoofing.
    for (solicited, over) in [(true, false), (false, true), (false, false)] {
        let spoof = na(stable(), stable(), solicited, over, mac(3));
        let (v, _) = send6(&mut sw, 5, B, mac(3), ALL_NODES_MAC, &spoof);
        assert_eq!(v, Verdict::Drop(DropReason::NdAddressOwned));
    }
    // b sending from a's address: dropped too (data-triggered claim refused).
    let (v, _) = send6(&mut sw, 5, B, mac(3), mac(2), &echo(stable(), ula(2)));
    assert_eq!(v, Verdict::Drop(DropReason::NdAddressOwned));
    // b with its own DAD goes through as before.
    let (v, _) = send6(&mut sw, 6, B, mac(3), ALL_NODES_MAC, &dad(ula(0xb)));
    commit(&mut sw, 6, B, v, len, claim(ula(0xb), mac(3), B));
    assert_eq!(drops(&sw, B, DropReason::NdAddressOwned).0, 5);
    assert_eq!(sw.binding_count(), 3);
    assert_eq!(
        sw.binding(vid(10), IpAddr::V6(stable())).unwrap().port,
        A,
        "the owner keeps it"
    );
}

#[test]
fn the_routers_gleaned_addresses_and_another_guests_are_not_spoofed() {
    let mut sw = switch(EnforceMode::Enforce);
    // The router guest's RA: not inspected; its link-local gleaned (held once).
    let rtr_ra = ra(ll(1), mac(1));
    let (v, before) = send6(&mut sw, 1, ROUTER, mac(1), ALL_NODES_MAC, &rtr_ra);
    commit(
        &mut sw,
        1,
        ROUTER,
        v,
        14 + rtr_ra.len(),
        claim(ll(1), mac(1), ROUTER),
    );
    let after = dump(&sw, t(1));
    let changes = dump::changes(&before, &after);
    assert!(
        changes.contains(&binding_line(ll(1), mac(1), "r1", 101)),
        "{after}"
    );
    // Again: already its own, forwarded at once.
    let (v, _) = send6(&mut sw, 2, ROUTER, mac(1), ALL_NODES_MAC, &rtr_ra);
    assert_eq!(out(&v), vec![0, 2, 3, 4]);
    // An upstream router's RA through the uplink: gleaned for the uplink.
    let up_ra = ra(ll(0xfe), UPSTREAM_MAC);
    let (v, _) = send6(&mut sw, 2, UPLINK, UPSTREAM_MAC, ALL_NODES_MAC, &up_ra);
    commit(
        &mut sw,
        2,
        UPLINK,
        v,
        14 + up_ra.len(),
        claim(ll(0xfe), UPSTREAM_MAC, UPLINK),
    );
    // a binds its address.
    let (v, _) = send6(&mut sw, 3, A, mac(2), ALL_NODES_MAC, &dad(ula(0xa)));
    commit(&mut sw, 3, A, v, 78, claim(ula(0xa), mac(2), A));
    let state = dump(&sw, t(4));
    // b spoofs NAs: for the router guest's address, the upstream router's and a's.
    for (i, target) in [ll(1), ll(0xfe), ula(0xa)].into_iter().enumerate() {
        let spoof = na(target, target, false, true, mac(3));
        let (v, _) = send6(&mut sw, 4, B, mac(3), ALL_NODES_MAC, &spoof);
        assert_eq!(v, Verdict::Drop(DropReason::NdAddressOwned), "target {i}");
    }
    // From its own link-local, an unsolicited override for an address nobody
    // holds (the router's next one, say): the override is refused.
    let (v, _) = send6(&mut sw, 4, B, mac(3), ALL_NODES_MAC, &dad(ll(0xb)));
    commit(&mut sw, 4, B, v, 78, claim(ll(0xb), mac(3), B));
    let mid = dump(&sw, t(4));
    let over = na(ll(0xb), ll(0x2), false, true, mac(3));
    let (v, _) = send6(&mut sw, 4, B, mac(3), ALL_NODES_MAC, &over);
    assert_eq!(v, Verdict::Drop(DropReason::NdUnsolicitedOverride));
    let len = 14 + over.len();
    assert_changed(
        &mid,
        &sw,
        t(4),
        &[
            "~ port b: rx_frames 4 → 5",
            &format!("~ port b: rx_bytes {} → {}", 78 + 3 * len, 78 + 4 * len),
            "+ port b: rx_drop.nd_unsolicited_override 1",
        ],
    );
    // The bindings are as they were before b's attempts, plus b's own.
    let now = dump(&sw, t(4));
    assert_eq!(now.bindings.len(), state.bindings.len() + 1);
    assert_eq!(drops(&sw, B, DropReason::NdAddressOwned).0, 3);
}

#[test]
fn link_layer_options_must_name_the_sender() {
    let mut sw = switch(EnforceMode::Enforce);
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(ll(0xa)));
    commit(&mut sw, 1, A, v, 78, claim(ll(0xa), mac(2), A));
    // An NS from a's own address whose SLLAO names b's MAC: the receivers'
    // caches would point ll(0xa) at b.
    let lie = ns(ll(0xa), ll(3), mac(3));
    let (v, before) = send6(&mut sw, 2, A, mac(2), ALL_NODES_MAC, &lie);
    assert_eq!(v, Verdict::Drop(DropReason::NdLinkLayerMismatch));
    assert_changed(
        &before,
        &sw,
        t(2),
        &[
            "~ port a: rx_frames 1 → 2",
            &format!("~ port a: rx_bytes 78 → {}", 78 + 14 + lie.len()),
            "+ port a: rx_drop.nd_link_layer_mismatch 1",
        ],
    );
    // An NA for its own address with a TLLAO of another MAC: the same.
    let lie = na(ll(0xa), ll(0xa), true, true, mac(9));
    let (v, _) = send6(&mut sw, 2, A, mac(2), mac(3), &lie);
    assert_eq!(v, Verdict::Drop(DropReason::NdLinkLayerMismatch));
    // The truthful ones pass.
    let (v, _) = send6(
        &mut sw,
        3,
        A,
        mac(2),
        ALL_NODES_MAC,
        &ns(ll(0xa), ll(3), mac(2)),
    );
    assert_eq!(out(&v), vec![0, 1, 3, 4]);
    let (v, _) = send6(
        &mut sw,
        3,
        A,
        mac(2),
        mac(3),
        &na(ll(0xa), ll(0xa), true, true, mac(2)),
    );
    assert_eq!(out(&v), vec![3]);
}

#[test]
fn invalid_ns_and_na_are_dropped_as_malformed() {
    let mut sw = switch(EnforceMode::Enforce);
    // Hop limit 254: could come from off-link (RFC 4861 §7.1.1).
    let mut off_link = dad(ll(0xa));
    off_link[7] = 254;
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &off_link);
    assert_eq!(v, Verdict::Drop(DropReason::NdMalformed));
    // A bad checksum.
    let mut bad = dad(ll(0xa));
    let n = bad.len();
    bad[n - 1] ^= 0xff;
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &bad);
    assert_eq!(v, Verdict::Drop(DropReason::NdMalformed));
    // An NA from :: (only DAD's NS may use it).
    let from_nothing = na(Ipv6Addr::UNSPECIFIED, ll(0xa), false, false, mac(2));
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &from_nothing);
    assert_eq!(v, Verdict::Drop(DropReason::NdMalformed));
    assert_eq!(drops(&sw, A, DropReason::NdMalformed).0, 3);
    assert_eq!(sw.binding_count(), 0, "nothing bound by invalid messages");
}

#[test]
fn privacy_addresses_bind_up_to_the_cap_and_age_out() {
    let mut sw = switch(EnforceMode::Enforce);
    // A random link-local, a stable-privacy address and a temporary one, the
    // temporary one bound by use (data-triggered: its first packet is held).
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(random_ll()));
    commit(&mut sw, 1, A, v, 78, claim(random_ll(), mac(2), A));
    let (v, _) = send6(&mut sw, 2, A, mac(2), ALL_NODES_MAC, &dad(stable()));
    commit(&mut sw, 2, A, v, 78, claim(stable(), mac(2), A));
    let first = echo(temporary(1), ula(3));
    let (v, _) = send6(&mut sw, 3, A, mac(2), mac(3), &first);
    commit(&mut sw, 3, A, v, 70, claim(temporary(1), mac(2), A));
    // The next temporary address is one too many.
    let state = dump(&sw, t(4));
    let (v, _) = send6(&mut sw, 4, A, mac(2), mac(3), &echo(temporary(2), ula(3)));
    assert_eq!(v, Verdict::Drop(DropReason::NdMaxAddresses));
    let (v, _) = send6(&mut sw, 4, A, mac(2), ALL_NODES_MAC, &dad(temporary(3)));
    assert_eq!(v, Verdict::Drop(DropReason::NdMaxAddresses));
    assert_changed(
        &state,
        &sw,
        t(4),
        &[
            "~ port a: rx_frames 3 → 5",
            "~ port a: rx_bytes 226 → 374",
            "+ port a: rx_drop.nd_max_addresses 2",
        ],
    );
    // Other guests are not limited by a's count.
    let (v, _) = send6(&mut sw, 4, B, mac(3), mac(2), &echo(temporary(9), ula(2)));
    commit(&mut sw, 4, B, v, 70, claim(temporary(9), mac(3), B));
    // a keeps using its link-local and stable address; the temporary one falls
    // silent and ages out after its lifetime (bound at 3 s: ends at 103 s).
    for s in [60, 90] {
        for src in [random_ll(), stable()] {
            let (v, _) = send6(&mut sw, s, A, mac(2), mac(3), &echo(src, ula(3)));
            assert_eq!(out(&v), vec![3]);
        }
    }
    let _ = events(&mut sw);
    sw.tick(t(103));
    assert_eq!(
        events(&mut sw),
        vec![EventKind::BindingRemoved {
            vid: 10,
            ip: IpAddr::V6(temporary(1)),
            mac: mac(2),
            port: A,
            why: BindingRemoval::Expired,
        }]
    );
    // Room again: the next temporary address binds.
    let (v, _) = send6(&mut sw, 104, A, mac(2), mac(3), &echo(temporary(2), ula(3)));
    commit(&mut sw, 104, A, v, 70, claim(temporary(2), mac(2), A));
}

#[test]
fn a_binding_in_use_is_refreshed_once_per_half_lifetime() {
    let mut sw = switch(EnforceMode::Enforce);
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(ula(0xa)));
    commit(&mut sw, 1, A, v, 78, claim(ula(0xa), mac(2), A));
    let _ = events(&mut sw);
    let ping = echo(ula(0xa), ula(3));
    // 71 s left of 100: not yet.
    let before = dump(&sw, t(30));
    send6(&mut sw, 30, A, mac(2), mac(3), &ping);
    assert!(events(&mut sw).is_empty());
    // 41 s left: refreshed to 60 + 100 s, once.
    send6(&mut sw, 60, A, mac(2), mac(3), &ping);
    assert_changed(
        &before,
        &sw,
        t(60),
        &[
            "~ port a: rx_frames 1 → 3",
            "~ port a: rx_bytes 78 → 218",
            "~ port b: tx_frames 1 → 3",
            "~ port b: tx_bytes 78 → 218",
            "~ binding vlan 10 fd00:198:18:10::a 52:54:00:00:00:02 on a (nd, lease end 101s) → 160s)",
        ],
    );
    assert_eq!(
        events(&mut sw),
        vec![EventKind::BindingRefreshed {
            vid: 10,
            ip: IpAddr::V6(ula(0xa)),
            mac: mac(2),
            port: A,
            lease_secs: LIFETIME,
        }]
    );
    send6(&mut sw, 61, A, mac(2), mac(3), &ping);
    assert!(events(&mut sw).is_empty(), "once per half lifetime");
    // Past the first lease end, the binding stays (the sweep re-files it)…
    sw.tick(t(102));
    assert!(events(&mut sw).is_empty());
    assert!(sw.binding(vid(10), IpAddr::V6(ula(0xa))).is_some());
    // …and ends at the refreshed one when unused.
    sw.tick(t(160));
    assert!(matches!(
        events(&mut sw)[..],
        [EventKind::BindingRemoved {
            why: BindingRemoval::Expired,
            ..
        }]
    ));
    assert_eq!(sw.binding_count(), 0);
}

#[test]
fn a_moved_guest_reclaims_its_addresses() {
    let mut sw = switch(EnforceMode::Enforce);
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(ula(0xa)));
    commit(&mut sw, 1, A, v, 78, claim(ula(0xa), mac(2), A));
    // The VM moves from port a to port c: the hypervisor reports the MACs.
    sw.report_effective_mac(A, mac(0x22), t(2)).unwrap();
    sw.report_effective_mac(C, mac(2), t(2)).unwrap();
    // Its next packet from c re-claims the address (same MAC: a move, not theft).
    let ping = echo(ula(0xa), ula(3));
    let (v, before) = send6(&mut sw, 3, C, mac(2), mac(3), &ping);
    commit(&mut sw, 3, C, v, 70, claim(ula(0xa), mac(2), C));
    let after = dump(&sw, t(3));
    let moved: Vec<String> = dump::changes(&before, &after)
        .into_iter()
        .filter(|c| c.contains("binding"))
        .collect();
    assert_eq!(
        moved,
        vec![
            "- binding vlan 10 fd00:198:18:10::a 52:54:00:00:00:02 on a (nd, lease end 101s)",
            "+ binding vlan 10 fd00:198:18:10::a 52:54:00:00:00:02 on c (nd, lease end 103s)",
        ],
        "{after}"
    );
    assert_eq!(sw.binding_count(), 1);
    // Another MAC on a (the port's new guest) cannot take it back.
    let (v, _) = send6(&mut sw, 4, A, mac(0x22), mac(3), &ping);
    assert_eq!(v, Verdict::Drop(DropReason::NdAddressOwned));
}

#[test]
fn an_owner_behind_the_uplink_defends_its_address() {
    let mut sw = switch(EnforceMode::Enforce);
    // c claims an address that a host upstream holds (its DAD went out the uplink).
    let (v, _) = send6(&mut sw, 1, C, mac(4), ALL_NODES_MAC, &dad(ula(0x77)));
    commit(&mut sw, 1, C, v, 78, claim(ula(0x77), mac(4), C));
    let _ = events(&mut sw);
    // The upstream owner answers the DAD: c's binding goes, the NA reaches c.
    let defend = na(ula(0x77), ula(0x77), false, true, UPSTREAM_MAC);
    let (v, before) = send6(&mut sw, 1, UPLINK, UPSTREAM_MAC, ALL_NODES_MAC, &defend);
    assert_eq!(out(&v), vec![1, 2, 3, 4]);
    let len = 14 + defend.len();
    assert_changed(
        &before,
        &sw,
        t(1),
        &[
            "~ port r1: tx_frames 1 → 2",
            &format!("~ port r1: tx_bytes 78 → {}", 78 + len),
            "~ port a: tx_frames 1 → 2",
            &format!("~ port a: tx_bytes 78 → {}", 78 + len),
            "~ port b: tx_frames 1 → 2",
            &format!("~ port b: tx_bytes 78 → {}", 78 + len),
            "- binding vlan 10 fd00:198:18:10::77 52:54:00:00:00:04 on c (nd, lease end 101s)",
            "+ port uplink: rx_frames 1",
            &format!("+ port uplink: rx_bytes {len}"),
            "+ port c: tx_frames 1",
            &format!("+ port c: tx_bytes {len}"),
            // The upstream router's MAC, learned on the uplink.
            "+ mac vlan 10 52:54:00:00:fe:fe on uplink (learned)",
        ],
    );
    assert_eq!(
        events(&mut sw),
        vec![EventKind::BindingRemoved {
            vid: 10,
            ip: IpAddr::V6(ula(0x77)),
            mac: mac(4),
            port: C,
            why: BindingRemoval::Defended,
        }]
    );
}

#[test]
fn observe_mode_counts_and_forwards_and_still_binds() {
    let mut sw = switch(EnforceMode::Observe);
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(ula(0xa)));
    commit(&mut sw, 1, A, v, 78, claim(ula(0xa), mac(2), A));
    let steal = dad(ula(0xa));
    let (v, before) = send6(&mut sw, 2, B, mac(3), ALL_NODES_MAC, &steal);
    assert_eq!(out(&v), vec![0, 1, 2, 4], "observed, forwarded");
    assert_changed(
        &before,
        &sw,
        t(2),
        &[
            "~ port uplink: tx_frames 1 → 2",
            "~ port uplink: tx_bytes 78 → 156",
            "~ port r1: tx_frames 1 → 2",
            "~ port r1: tx_bytes 78 → 156",
            "~ port c: tx_frames 1 → 2",
            "~ port c: tx_bytes 78 → 156",
            "+ port a: tx_frames 1",
            "+ port a: tx_bytes 78",
            "+ port b: rx_frames 1",
            "+ port b: rx_bytes 78",
            "+ port b: observed.nd_address_owned 1",
        ],
    );
    assert_eq!(sw.binding(vid(10), IpAddr::V6(ula(0xa))).unwrap().port, A);
}

#[test]
fn the_rate_limit_error_disables_the_port() {
    let mut sw = switch(EnforceMode::Enforce);
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(ll(0xa)));
    commit(&mut sw, 1, A, v, 78, claim(ll(0xa), mac(2), A));
    let probe = ns(ll(0xa), ll(3), mac(2));
    // 100 per second of burst (one already taken by the DAD), then the limit.
    for i in 0..99 {
        let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &probe);
        assert!(matches!(v, Verdict::Forward(_)), "message {i}");
    }
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &probe);
    assert_eq!(v, Verdict::Drop(DropReason::NdRateLimit));
    assert_eq!(
        sw.port(A).unwrap().err_disabled.map(|e| e.cause),
        Some(ErrDisableCause::NdRateLimit)
    );
    // Data is not rate-limited (only RS, NS, NA are): but the port is down now.
    let (v, _) = send6(&mut sw, 1, A, mac(2), mac(3), &echo(ll(0xa), ll(3)));
    assert_eq!(v, Verdict::Drop(DropReason::ErrDisabled));
}

#[test]
fn trusted_ports_and_ports_without_the_feature_are_not_inspected() {
    let mut sw = switch(EnforceMode::Enforce);
    // The router may answer for any address (it is trusted): no drop.
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(ula(0xa)));
    commit(&mut sw, 1, A, v, 78, claim(ula(0xa), mac(2), A));
    let from_router = na(ll(1), ll(0x5), true, false, mac(1));
    let (v, _) = send6(&mut sw, 2, ROUTER, mac(1), mac(2), &from_router);
    assert!(matches!(v, Verdict::Forward(_) | Verdict::Hold(..)));
    // Without the feature nothing is bound and nothing dropped.
    let mut plain = access("p", 10, Some(mac(7)));
    plain.features = PortFeatures::default();
    let mut sw = Switch::new(
        &switch_spec("plain", vec![trunk("uplink", &[10], Some(10)), plain]),
        Timestamp(0),
    )
    .unwrap();
    let (v, _) = send6(&mut sw, 1, PortId(1), mac(7), ALL_NODES_MAC, &dad(ula(0xa)));
    assert_eq!(out(&v), vec![0]);
    assert_eq!(sw.binding_count(), 0);
}

/// The explanation of each IPv6 stage for `l3` from `port`, traced on a copy of
/// `sw` (the same verdict as the real pipeline's), and the verdict in words.
fn explain(sw: &Switch, secs: u64, port: PortId, src: MacAddr, l3: &[u8]) -> (Vec<String>, String) {
    let f = eth6(ALL_NODES_MAC, src, l3);
    let rx = IngressFrame {
        data: &f,
        tag: None,
    };
    let mut copy = sw.clone();
    let mut plain = sw.clone();
    let mut tr = trace::Trace::default();
    let v = copy.process_traced(t(secs), port, &rx, &mut tr);
    assert_eq!(v, plain.process(t(secs), port, &rx), "trace = pipeline");
    let lines = tr
        .explain(&copy)
        .into_iter()
        .filter(|e| e.stage == "nd_inspection" || e.stage == "ipv6_source_guard")
        .map(|e| format!("{} {} {}", e.stage, e.decision, e.text))
        .collect();
    (lines, trace::describe_verdict(&copy, &v))
}

#[test]
fn the_trace_says_what_nd_inspection_and_the_guard_decided() {
    let mut sw = switch(EnforceMode::Enforce);
    let (lines, verdict) = explain(&sw, 1, A, mac(2), &dad(ula(0xa)));
    assert_eq!(
        lines,
        vec![
            "nd_inspection pass first claim of fd00:198:18:10::a (DAD): bound to 52:54:00:00:00:02 on this port, held until the binding is committed",
            "ipv6_source_guard skip IPv6 Source Guard is off on this port",
        ]
    );
    assert!(
        verdict.starts_with(
            "hold (first claim of fd00:198:18:10::a until its ND binding is committed) → "
        ),
        "{verdict}"
    );
    let (v, _) = send6(&mut sw, 1, A, mac(2), ALL_NODES_MAC, &dad(ula(0xa)));
    commit(&mut sw, 1, A, v, 78, claim(ula(0xa), mac(2), A));
    let (lines, verdict) = explain(&sw, 2, B, mac(3), &dad(ula(0xa)));
    assert_eq!(
        lines,
        vec![
            "nd_inspection drop claims fd00:198:18:10::a → 52:54:00:00:00:02 on a (ND): another port's or MAC's address"
        ]
    );
    assert_eq!(verdict, "drop: nd_address_owned");
    let (lines, _) = explain(&sw, 2, ROUTER, mac(1), &ra(ll(1), mac(1)));
    assert_eq!(
        lines[0],
        "nd_inspection skip a trusted port: not inspected; its router's fe80::1 gleaned (held until the binding is committed)"
    );
}

#[test]
fn an_apply_carries_the_nd_bindings_and_their_count() {
    let mut old = switch(EnforceMode::Enforce);
    for (i, a) in [ll(0xa), ula(0xa), ula(0xaa)].into_iter().enumerate() {
        let (v, _) = send6(&mut old, 1 + i as u64, A, mac(2), ALL_NODES_MAC, &dad(a));
        commit(&mut old, 1 + i as u64, A, v, 78, claim(a, mac(2), A));
    }
    let mut sw = switch(EnforceMode::Enforce);
    let report = sw.carry_over_from(old, t(5));
    assert_eq!(report.bindings_kept, 3);
    assert_eq!(sw.binding_count(), 3);
    // The count came along: a fourth address is one too many on a, and b's DAD
    // for a's address is still refused.
    let (v, _) = send6(&mut sw, 6, A, mac(2), ALL_NODES_MAC, &dad(ula(0xab)));
    assert_eq!(v, Verdict::Drop(DropReason::NdMaxAddresses));
    let (v, _) = send6(&mut sw, 6, B, mac(3), ALL_NODES_MAC, &dad(ula(0xa)));
    assert_eq!(v, Verdict::Drop(DropReason::NdAddressOwned));
}
