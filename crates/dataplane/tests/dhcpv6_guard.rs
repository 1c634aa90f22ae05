//! DHCPv6 guard and snooping as a client, a server and an attacker meet it: on one
//! VLAN, an uplink (trusted, as `dhcpv6_trusted` defaults), a DHCPv6 server guest
//! (trusted), a client, an attacker and a bystander (untrusted). The client's
//! SOLICIT/REQUEST reach the server and the uplink only; the server's ADVERTISE
//! reaches the client; its REPLY is held until the client's binding (MAC, port,
//! DUID, valid lifetime) is committed; RENEW renews it; a RELEASE from the wrong
//! port or with the wrong DUID is refused and removes nothing, the client's own
//! removes it once delivered. The attacker's server messages — from odd UDP
//! ports, to 547, wrapped in relay messages, behind a Hop-by-Hop header, as a
//! first fragment — are dropped, each under its reason; its rate above the limit
//! error-disables its port; observe mode counts and forwards. A REPLY as dnsmasq
//! sends one (built by hand) binds as the emitter's does.

use portcullis_dataplane::bindings::{BindingSource, DuidKey, NewBinding};
use portcullis_dataplane::wire::dhcpv6::{CLIENT_PORT, MessageType as M, SERVER_PORT};
use portcullis_dataplane::wire::ipv6::next_header as nh;
use portcullis_dataplane::*;
use std::net::{IpAddr, Ipv6Addr};

mod support;
use support::dhcpv6::*;
use support::ipv6::*;
use support::*;

const UPLINK: PortId = PortId(0);
const SERVER: PortId = PortId(1);
const CLIENT: PortId = PortId(2);
const ATTACKER: PortId = PortId(3);
const BYSTANDER: PortId = PortId(4);

fn guard(trusted: bool, rate: Option<u32>, mode: EnforceMode) -> Option<Dhcpv6GuardSpec> {
    Some(Dhcpv6GuardSpec {
        trusted,
        rate_limit_pps: rate,
        mode,
    })
}

/// The lab: uplink (trunk, native 10; `uplink_trusted`), server s1 (mac 1,
/// trusted), client c (mac 2), attacker a (mac 3; rate 5 pps, `attacker_mode`),
/// bystander b (mac 4), all in VLAN 10.
fn switch(attacker_mode: EnforceMode, uplink_trusted: bool) -> Switch {
    switch_with(attacker_mode, uplink_trusted, Some(5))
}

/// [`switch`] with the attacker's rate limit `attacker_rate`.
fn switch_with(
    attacker_mode: EnforceMode,
    uplink_trusted: bool,
    attacker_rate: Option<u32>,
) -> Switch {
    let mut up = trunk("uplink", &[10], Some(10));
    up.features.dhcpv6_guard = guard(uplink_trusted, None, EnforceMode::Enforce);
    let mut s = access("s1", 10, Some(mac(1)));
    s.features.dhcpv6_guard = guard(true, None, EnforceMode::Enforce);
    let mut c = access("c", 10, Some(mac(2)));
    c.features.dhcpv6_guard = guard(false, Some(20), EnforceMode::Enforce);
    let mut a = access("a", 10, Some(mac(3)));
    a.features.dhcpv6_guard = guard(false, attacker_rate, attacker_mode);
    let mut b = access("b", 10, Some(mac(4)));
    b.features.dhcpv6_guard = guard(false, None, EnforceMode::Enforce);
    Switch::new(&switch_spec("v6", vec![up, s, c, a, b]), Timestamp(0)).unwrap()
}

fn v10() -> Vid {
    vid(10)
}

/// The client's address.
fn addr() -> Ipv6Addr {
    ula(0x100)
}

fn client_duid() -> Vec<u8> {
    duid_ll(mac(2))
}

/// The client's message (`payload`) sent from c to All_DHCP at `secs`.
fn from_client(sw: &mut Switch, secs: u64, payload: &[u8]) -> Verdict {
    let l3 = to_servers(ll(2), payload);
    send_secs(sw, secs, CLIENT, &eth6(ALL_DHCP_MAC, mac(2), &l3))
}

/// The server's message (`payload`) sent from s1 to the client's link-local and MAC.
fn from_server(sw: &mut Switch, secs: u64, payload: &[u8]) -> Verdict {
    let l3 = to_client(ll(1), ll(2), payload);
    send_secs(sw, secs, SERVER, &eth6(mac(2), mac(1), &l3))
}

/// The IPv6 packet `l3` sent by the attacker to `dst` at `secs`.
fn from_attacker(sw: &mut Switch, secs: u64, dst: MacAddr, l3: &[u8]) -> Verdict {
    send_secs(sw, secs, ATTACKER, &eth6(dst, mac(3), l3))
}

/// Commits a held REPLY's binding and releases it (as the runtime does once the
/// store reports the commit); returns its output ports.
fn commit(sw: &mut Switch, v: Verdict, len: usize, secs: u64) -> Vec<u16> {
    let Verdict::Hold(fwd, b) = v else {
        panic!("expected a held REPLY, got {v:?}");
    };
    assert!(sw.release_held(SERVER, &fwd, &b, len, true, Timestamp::from_secs(secs)));
    fwd.out.iter().map(|p| p.0).collect()
}

/// The client bound to `addr()` by a REPLY (valid `valid` seconds) at `secs`,
/// committed; returns the client's DUID.
fn bind_client(sw: &mut Switch, secs: u64, valid: u32) -> Vec<u8> {
    let duid = client_duid();
    let reply = server(M::Reply, 8, &duid, &[(addr(), valid / 2, valid)]);
    let v = from_server(sw, secs, &reply);
    commit(sw, v, 100, secs);
    assert!(sw.binding(v10(), IpAddr::V6(addr())).is_some());
    duid
}

fn observed(sw: &Switch, p: PortId, r: DropReason) -> u64 {
    sw.counters(p).unwrap().observed[r as usize]
}

#[test]
fn a_client_gets_its_address_and_its_binding_renews_and_releases_it() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let duid = client_duid();
    // SOLICIT: to the server and the uplink, never to the other guests.
    let v = from_client(&mut sw, 1, &client(M::Solicit, 7, &duid, &[]));
    assert_eq!(out(&v), vec![UPLINK.0, SERVER.0]);
    assert_eq!(sw.binding_count(), 0);
    // ADVERTISE: to the client.
    let adv = server(M::Advertise, 7, &duid, &[(addr(), 1800, 3600)]);
    assert_eq!(out(&from_server(&mut sw, 1, &adv)), vec![2]);
    assert_eq!(sw.binding_count(), 0, "an ADVERTISE binds nothing");
    // REQUEST: to the server and the uplink.
    let req = client(M::Request, 8, &duid, &[(addr(), 0, 0)]);
    assert_eq!(out(&from_client(&mut sw, 2, &req)), vec![0, 1]);
    // REPLY: held until the binding is durable; not in the index before.
    let reply = server(M::Reply, 8, &duid, &[(addr(), 1800, 3600)]);
    let v = from_server(&mut sw, 2, &reply);
    let Verdict::Hold(_, b) = v else {
        panic!("the REPLY is held: {v:?}");
    };
    assert_eq!(
        (b.vid, b.ip, b.mac, b.port, b.lease_secs, b.source),
        (
            v10(),
            IpAddr::V6(addr()),
            mac(2),
            CLIENT,
            Some(3600),
            BindingSource::Dhcpv6
        )
    );
    assert_eq!(b.duid, DuidKey::of(&duid));
    assert_eq!(
        sw.binding(v10(), IpAddr::V6(addr())),
        None,
        "not before the commit"
    );
    let len = 14 + 48 + reply.len();
    assert_eq!(commit(&mut sw, v, len, 2), vec![2]);
    let bound = sw.binding(v10(), IpAddr::V6(addr())).unwrap();
    assert_eq!(
        (bound.mac, bound.port, bound.source, bound.duid),
        (mac(2), CLIENT, BindingSource::Dhcpv6, DuidKey::of(&duid))
    );
    assert_eq!(bound.lease_end, Some(Timestamp::from_secs(2 + 3600)));

    // RENEW and its REPLY: the lease is the new valid lifetime.
    let renew = client(M::Renew, 9, &duid, &[(addr(), 0, 0)]);
    assert_eq!(out(&from_client(&mut sw, 1000, &renew)), vec![0, 1]);
    let reply = server(M::Reply, 9, &duid, &[(addr(), 3600, 7200)]);
    let v = from_server(&mut sw, 1000, &reply);
    assert_eq!(commit(&mut sw, v, len, 1000), vec![2]);
    let renewed = sw.binding(v10(), IpAddr::V6(addr())).unwrap();
    assert_eq!(renewed.lease_end, Some(Timestamp::from_secs(1000 + 7200)));
    assert_eq!(sw.binding_count(), 1);

    // A RELEASE of the client's address from the attacker's port, with the
    // client's own DUID: refused, the binding stays.
    let release = client(M::Release, 10, &duid, &[(addr(), 0, 0)]);
    let l3 = to_servers(ll(3), &release);
    let v = from_attacker(&mut sw, 1001, ALL_DHCP_MAC, &l3);
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6ReleaseForeignPort));
    assert_eq!(sw.binding(v10(), IpAddr::V6(addr())), Some(renewed));
    // From the client's port and MAC, with another DUID: refused too.
    let forged = client(M::Release, 11, &duid_en(9), &[(addr(), 0, 0)]);
    let v = from_client(&mut sw, 1002, &forged);
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6ReleaseForeignPort));
    assert_eq!(sw.binding(v10(), IpAddr::V6(addr())), Some(renewed));
    // The client's own RELEASE: delivered to the server side, the binding gone.
    let v = from_client(&mut sw, 1003, &release);
    assert_eq!(out(&v), vec![0, 1]);
    assert_eq!(sw.binding(v10(), IpAddr::V6(addr())), None);
    assert_eq!(sw.binding_count(), 0);
}

#[test]
fn a_release_no_server_can_receive_releases_nothing() {
    // No trusted port at all: the uplink is untrusted and the server port down.
    let mut sw = switch(EnforceMode::Enforce, false);
    let duid = bind_client(&mut sw, 2, 3600);
    sw.set_admin_up(SERVER, false).unwrap();
    let release = client(M::Release, 10, &duid, &[(addr(), 0, 0)]);
    let v = from_client(&mut sw, 4, &release);
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6NoTrustedPort));
    assert!(
        sw.binding(v10(), IpAddr::V6(addr())).is_some(),
        "a RELEASE that was not delivered removes nothing"
    );
    let v = from_client(&mut sw, 5, &client(M::Solicit, 1, &duid, &[]));
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6NoTrustedPort));
}

#[test]
fn rogue_server_messages_are_dropped_whatever_their_ports_and_wrapping() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let victim = duid_ll(mac(4));
    let rogue_reply = server(M::Reply, 1, &victim, &[(ula(0xbad), 1800, 3600)]);
    let adv = server(M::Advertise, 1, &victim, &[(ula(0xbad), 1800, 3600)]);
    let to_victim = |sport, dport, payload: &[u8]| udp6(ll(3), ll(4), sport, dport, payload);
    let cases: Vec<(&str, Vec<u8>, MacAddr, DropReason)> = vec![
        (
            "ADVERTISE 547 → 546",
            to_victim(SERVER_PORT, CLIENT_PORT, &adv),
            mac(4),
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "REPLY from 1547 → 546",
            to_victim(1547, CLIENT_PORT, &rogue_reply),
            mac(4),
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "REPLY 547 → 547 (to servers and relays)",
            udp6(ll(3), ALL_DHCP, SERVER_PORT, SERVER_PORT, &rogue_reply),
            ALL_DHCP_MAC,
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "RECONFIGURE to 546",
            to_victim(SERVER_PORT, CLIENT_PORT, &message(M::Reconfigure, 0, &[])),
            mac(4),
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "RELAY-REPL wrapping a REPLY, to 547",
            udp6(
                ll(3),
                ALL_DHCP,
                40000,
                SERVER_PORT,
                &relay(M::RelayRepl, &rogue_reply),
            ),
            ALL_DHCP_MAC,
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "RELAY-FORW wrapping an ADVERTISE, to 547",
            udp6(
                ll(3),
                ALL_DHCP,
                CLIENT_PORT,
                SERVER_PORT,
                &relay(M::RelayForw, &adv),
            ),
            ALL_DHCP_MAC,
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "a SOLICIT to the client port 546 (reaches clients only)",
            to_victim(
                CLIENT_PORT,
                CLIENT_PORT,
                &client(M::Solicit, 1, &victim, &[]),
            ),
            mac(4),
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "a REPLY behind Hop-by-Hop and Destination Options",
            with_exts(
                &to_victim(SERVER_PORT, CLIENT_PORT, &rogue_reply),
                &[
                    pad_ext(nh::HOP_BY_HOP, 0),
                    pad_ext(nh::DESTINATION_OPTIONS, 1),
                ],
            ),
            mac(4),
            DropReason::Dhcpv6ServerUntrusted,
        ),
        (
            "a REPLY's first fragment",
            split(&to_victim(SERVER_PORT, CLIENT_PORT, &rogue_reply), 2, 5).0,
            mac(4),
            DropReason::Dhcpv6Fragment,
        ),
        (
            "a first fragment without the UDP header",
            split(
                &with_exts(
                    &to_victim(SERVER_PORT, CLIENT_PORT, &rogue_reply),
                    &[pad_ext(nh::DESTINATION_OPTIONS, 0)],
                ),
                1,
                6,
            )
            .0,
            mac(4),
            DropReason::Ipv6IncompleteChain,
        ),
        (
            "a REPLY that does not parse",
            to_victim(
                SERVER_PORT,
                SERVER_PORT,
                &rogue_reply[..rogue_reply.len() - 3],
            ),
            mac(4),
            DropReason::Dhcpv6Malformed,
        ),
        (
            "a REPLY behind an experimental extension header",
            with_exts(
                &to_victim(SERVER_PORT, CLIENT_PORT, &rogue_reply),
                &[pad_ext(nh::EXPERIMENT_1, 0)],
            ),
            mac(4),
            DropReason::Ipv6UnknownHeader,
        ),
    ];
    for (i, (what, l3, dst, reason)) in cases.into_iter().enumerate() {
        let v = from_attacker(&mut sw, 1 + i as u64, dst, &l3);
        assert_eq!(v, Verdict::Drop(reason), "{what}");
    }
    assert_eq!(sw.binding_count(), 0);
    // The attacker's port is not err-disabled: 5 pps, one a second.
    assert!(sw.port(ATTACKER).unwrap().err_disabled.is_none());

    // Not DHCPv6: UDP from 547 to a port no DHCPv6 stack listens on passes, and so
    // does a second fragment (its first is the one judged).
    let other = udp6(ll(3), ll(4), SERVER_PORT, 5353, &rogue_reply);
    assert_eq!(out(&from_attacker(&mut sw, 30, mac(4), &other)), vec![4]);
    // The attacker's own client messages go to the trusted ports only.
    let l3 = to_servers(ll(3), &client(M::Solicit, 2, &duid_ll(mac(3)), &[]));
    assert_eq!(
        out(&from_attacker(&mut sw, 31, ALL_DHCP_MAC, &l3)),
        vec![0, 1]
    );
    // A relay guest's RELAY-FORW of a client message: a client-side message.
    let fwd = relay(M::RelayForw, &client(M::Solicit, 3, &victim, &[]));
    let l3 = udp6(ll(3), ALL_DHCP, SERVER_PORT, SERVER_PORT, &fwd);
    assert_eq!(
        out(&from_attacker(&mut sw, 32, ALL_DHCP_MAC, &l3)),
        vec![0, 1]
    );
}

#[test]
fn the_same_rogue_messages_pass_with_the_guard_off_or_observing() {
    // The guard off on every port: the rogue REPLY reaches the victim.
    let spec = switch_spec(
        "off",
        vec![
            trunk("uplink", &[10], Some(10)),
            access("s1", 10, Some(mac(1))),
            access("c", 10, Some(mac(2))),
            access("a", 10, Some(mac(3))),
            access("b", 10, Some(mac(4))),
        ],
    );
    let mut off = Switch::new(&spec, Timestamp(0)).unwrap();
    let rogue = server(M::Reply, 1, &duid_ll(mac(4)), &[(ula(0xbad), 1800, 3600)]);
    let l3 = udp6(ll(3), ll(4), SERVER_PORT, CLIENT_PORT, &rogue);
    assert_eq!(out(&from_attacker(&mut off, 1, mac(4), &l3)), vec![4]);
    // Observe mode: forwarded, counted as observed.
    let mut sw = switch(EnforceMode::Observe, true);
    assert_eq!(out(&from_attacker(&mut sw, 1, mac(4), &l3)), vec![4]);
    assert_eq!(
        observed(&sw, ATTACKER, DropReason::Dhcpv6ServerUntrusted),
        1
    );
    assert_eq!(
        drops(&sw, ATTACKER, DropReason::Dhcpv6ServerUntrusted),
        (0, 0)
    );
}

#[test]
fn above_its_rate_an_untrusted_port_is_error_disabled() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let l3 = to_servers(ll(3), &client(M::Solicit, 2, &duid_ll(mac(3)), &[]));
    for _ in 0..5 {
        assert_eq!(
            out(&from_attacker(&mut sw, 1, ALL_DHCP_MAC, &l3)),
            vec![0, 1]
        );
    }
    let v = from_attacker(&mut sw, 1, ALL_DHCP_MAC, &l3);
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6RateLimit));
    let e = sw.port(ATTACKER).unwrap().err_disabled.unwrap();
    assert_eq!(e.cause, ErrDisableCause::Dhcpv6RateLimit);
    let v = from_attacker(&mut sw, 2, ALL_DHCP_MAC, &l3);
    assert_eq!(v, Verdict::Drop(DropReason::ErrDisabled));
    // Other IPv6 traffic is not counted against the limit: the bystander's echoes.
    let echo6 = echo(ll(4), ll(2));
    for _ in 0..50 {
        let v = send_secs(&mut sw, 3, BYSTANDER, &eth6(mac(2), mac(4), &echo6));
        assert_eq!(out(&v), vec![2]);
    }
    // Observe mode: counted, forwarded, the port stays up.
    let mut sw = switch(EnforceMode::Observe, true);
    for _ in 0..8 {
        assert_eq!(
            out(&from_attacker(&mut sw, 1, ALL_DHCP_MAC, &l3)),
            vec![0, 1]
        );
    }
    assert_eq!(observed(&sw, ATTACKER, DropReason::Dhcpv6RateLimit), 3);
    assert!(sw.port(ATTACKER).unwrap().err_disabled.is_none());
}

#[test]
fn a_reply_for_an_unknown_client_reaches_trusted_ports_only() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let stranger = MacAddr([0x52, 0x54, 0, 0, 0, 0x77]);
    let reply = server(M::Reply, 8, &duid_ll(stranger), &[(addr(), 1800, 3600)]);
    let l3 = to_client(ll(1), ll(0x77), &reply);
    let v = send_secs(&mut sw, 1, SERVER, &eth6(stranger, mac(1), &l3));
    assert_eq!(out(&v), vec![0], "the uplink only, no guest");
    assert_eq!(sw.binding_count(), 0);
    // With an untrusted uplink, nowhere to go.
    let mut sw = switch(EnforceMode::Enforce, false);
    let v = send_secs(&mut sw, 1, SERVER, &eth6(stranger, mac(1), &l3));
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6ReplyUnknownClient));
}

#[test]
fn a_reply_for_an_address_another_binding_holds_is_dropped() {
    let mut sw = switch(EnforceMode::Enforce, true);
    // The bystander holds the address by the API.
    let api = NewBinding {
        vid: v10(),
        ip: IpAddr::V6(addr()),
        mac: mac(4),
        port: BYSTANDER,
        lease_secs: None,
        source: BindingSource::Api,
        duid: None,
    };
    sw.install_binding(api, Timestamp::from_secs(1)).unwrap();
    let reply = server(M::Reply, 8, &client_duid(), &[(addr(), 1800, 3600)]);
    let v = from_server(&mut sw, 2, &reply);
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6BindingConflict));
    assert_eq!(sw.binding(v10(), IpAddr::V6(addr())).unwrap().mac, mac(4));
    // One address of several in conflict drops the whole REPLY.
    let two = server(
        M::Reply,
        9,
        &client_duid(),
        &[(ula(0x101), 1800, 3600), (addr(), 1800, 3600)],
    );
    let v = from_server(&mut sw, 3, &two);
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6BindingConflict));
    assert_eq!(sw.binding(v10(), IpAddr::V6(ula(0x101))), None);
}

/// A REPLY with several addresses: held on the first; the rest installed when it
/// is released (the runtime writes them to the store then), each through the claim
/// rule.
#[test]
fn a_reply_with_several_addresses_binds_them_all_once_released() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let duid = client_duid();
    let three = server(
        M::Reply,
        8,
        &duid,
        &[
            (addr(), 1800, 3600),
            (ula(0x101), 900, 1800),
            (ula(0x102), 1, 0),
        ],
    );
    let frame = eth6(mac(2), mac(1), &to_client(ll(1), ll(2), &three));
    let v = send_secs(&mut sw, 2, SERVER, &frame);
    let Verdict::Hold(fwd, b) = v else {
        panic!("held: {v:?}");
    };
    assert_eq!(b.ip, IpAddr::V6(addr()), "held on the first address");
    assert_eq!(
        sw.binding(v10(), IpAddr::V6(ula(0x101))),
        None,
        "nothing before the commit"
    );
    assert!(sw.release_held(SERVER, &fwd, &b, frame.len(), true, Timestamp::from_secs(2)));
    let mut rest = Vec::new();
    stages::dhcpv6_guard::install_reply_rest(
        &mut sw,
        &fwd,
        &b,
        &frame,
        Timestamp::from_secs(2),
        |n| rest.push(n),
    );
    assert_eq!(rest.len(), 1, "valid lifetime 0 binds nothing: {rest:?}");
    assert_eq!(rest[0].ip, IpAddr::V6(ula(0x101)));
    let second = sw.binding(v10(), IpAddr::V6(ula(0x101))).unwrap();
    assert_eq!(
        (
            second.mac,
            second.port,
            second.source,
            second.duid,
            second.lease_end
        ),
        (
            mac(2),
            CLIENT,
            BindingSource::Dhcpv6,
            DuidKey::of(&duid),
            Some(Timestamp::from_secs(2 + 1800))
        )
    );
    assert_eq!(sw.binding_count(), 2);

    // An address another binding took while the REPLY was held: refused, with its
    // event, the holder's binding kept.
    let mut sw = switch(EnforceMode::Enforce, true);
    let two = server(
        M::Reply,
        9,
        &duid,
        &[(addr(), 1800, 3600), (ula(0x101), 900, 1800)],
    );
    let frame = eth6(mac(2), mac(1), &to_client(ll(1), ll(2), &two));
    let Verdict::Hold(fwd, b) = send_secs(&mut sw, 2, SERVER, &frame) else {
        panic!("held");
    };
    let api = NewBinding {
        vid: v10(),
        ip: IpAddr::V6(ula(0x101)),
        mac: mac(4),
        port: BYSTANDER,
        lease_secs: None,
        source: BindingSource::Api,
        duid: None,
    };
    sw.install_binding(api, Timestamp::from_secs(2)).unwrap();
    assert!(sw.release_held(SERVER, &fwd, &b, frame.len(), true, Timestamp::from_secs(3)));
    let _ = events(&mut sw);
    let mut rest = Vec::new();
    stages::dhcpv6_guard::install_reply_rest(
        &mut sw,
        &fwd,
        &b,
        &frame,
        Timestamp::from_secs(3),
        |n| rest.push(n.ip),
    );
    // Handed back all the same: the runtime makes the store say what the index
    // says of it (its record, committed with the REPLY, is taken back out).
    assert_eq!(rest, [IpAddr::V6(ula(0x101))]);
    assert_eq!(
        sw.binding(v10(), IpAddr::V6(ula(0x101))).unwrap().mac,
        mac(4)
    );
    assert!(
        events(&mut sw)
            .iter()
            .any(|e| matches!(e, EventKind::BindingRefused { owner, .. } if *owner == BYSTANDER)),
        "the refusal is reported"
    );
}

#[test]
fn valid_lifetime_zero_in_a_reply_removes_the_binding() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let duid = bind_client(&mut sw, 2, 3600);
    let ended = server(M::Reply, 9, &duid, &[(addr(), 0, 0)]);
    let v = from_server(&mut sw, 3, &ended);
    assert_eq!(out(&v), vec![2], "it reaches the client: nothing to hold");
    assert_eq!(sw.binding(v10(), IpAddr::V6(addr())), None);
}

#[test]
fn a_lease_ends_with_its_valid_lifetime() {
    let mut sw = switch(EnforceMode::Enforce, true);
    bind_client(&mut sw, 2, 60);
    sw.tick(Timestamp::from_secs(61));
    assert!(sw.binding(v10(), IpAddr::V6(addr())).is_some());
    sw.tick(Timestamp::from_secs(63));
    assert_eq!(sw.binding(v10(), IpAddr::V6(addr())), None);
}

#[test]
fn a_long_duid_is_kept_as_a_digest_and_still_tells_clients_apart() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let long = duid_en(1);
    let reply = server(M::Reply, 8, &long, &[(addr(), 1800, 3600)]);
    let v = from_server(&mut sw, 2, &reply);
    commit(&mut sw, v, 100, 2);
    let key = sw.binding(v10(), IpAddr::V6(addr())).unwrap().duid.unwrap();
    assert!(key.is_digest());
    assert_ne!(Some(key), DuidKey::of(&duid_en(2)));
    let v = from_client(
        &mut sw,
        3,
        &client(M::Release, 1, &duid_en(2), &[(addr(), 0, 0)]),
    );
    assert_eq!(v, Verdict::Drop(DropReason::Dhcpv6ReleaseForeignPort));
    let v = from_client(&mut sw, 4, &client(M::Decline, 2, &long, &[(addr(), 0, 0)]));
    assert_eq!(out(&v), vec![0, 1]);
    assert_eq!(sw.binding(v10(), IpAddr::V6(addr())), None);
}

/// One option, by hand: code, length, value.
fn opt(code: u16, value: &[u8]) -> Vec<u8> {
    let mut o = code.to_be_bytes().to_vec();
    o.extend_from_slice(&(value.len() as u16).to_be_bytes());
    o.extend_from_slice(value);
    o
}

/// A REPLY as dnsmasq (no relay) sends it, built byte by byte rather than with
/// the crate's emitter: from the server's link-local port 547 to the client's
/// link-local port 546, Ethernet destination the client's MAC; Client
/// Identifier, Server Identifier (a DUID-LLT), IA_NA (T1 3600, T2 6300) with one
/// IA Address (preferred 7200, valid 10800) and a Status Code "success" inside
/// the IA, then DNS servers.
#[test]
fn a_reply_as_dnsmasq_sends_it_is_held_and_binds() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let client_duid = client_duid();
    let server_llt = [0, 1, 0, 1, 0x2e, 0x9f, 0x6a, 0x10, 0x52, 0x54, 0, 0, 0, 1];
    let mut ia_addr = addr().octets().to_vec();
    ia_addr.extend_from_slice(&7200u32.to_be_bytes());
    ia_addr.extend_from_slice(&10800u32.to_be_bytes());
    let mut ia_na = vec![0, 0, 0, 1, 0, 0, 0x0e, 0x10, 0, 0, 0x18, 0x9c];
    ia_na.extend(opt(5, &ia_addr));
    ia_na.extend(opt(13, b"\0\0success"));
    let mut reply = vec![7, 0x12, 0x34, 0x56];
    reply.extend(opt(1, &client_duid));
    reply.extend(opt(2, &server_llt));
    reply.extend(opt(3, &ia_na));
    reply.extend(opt(23, &ll(1).octets()));
    let l3 = udp6(ll(1), ll(2), SERVER_PORT, CLIENT_PORT, &reply);
    let frame = eth6(mac(2), mac(1), &l3);
    let v = send_secs(&mut sw, 5, SERVER, &frame);
    let Verdict::Hold(fwd, b) = v else {
        panic!("dnsmasq's REPLY is held: {v:?}");
    };
    assert_eq!((b.ip, b.mac, b.port), (IpAddr::V6(addr()), mac(2), CLIENT));
    assert_eq!(b.lease_secs, Some(10800));
    assert_eq!(b.duid, DuidKey::of(&client_duid));
    assert!(sw.release_held(SERVER, &fwd, &b, frame.len(), true, Timestamp::from_secs(5)));
    assert_eq!(fwd.out.iter().map(|p| p.0).collect::<Vec<_>>(), vec![2]);
    assert!(sw.binding(v10(), IpAddr::V6(addr())).is_some());
}

#[test]
fn a_store_failure_drops_the_held_reply_and_binds_nothing() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let reply = server(M::Reply, 8, &client_duid(), &[(addr(), 1800, 3600)]);
    let Verdict::Hold(fwd, b) = from_server(&mut sw, 2, &reply) else {
        panic!("held");
    };
    assert!(!sw.release_held(SERVER, &fwd, &b, 100, false, Timestamp::from_secs(2)));
    assert_eq!(sw.binding_count(), 0);
    assert_eq!(drops(&sw, SERVER, DropReason::BindingStoreFailed), (1, 0));
}

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

/// The guard allocates nothing per frame: client messages, rogue server messages
/// (relayed, behind headers, fragmented), a held REPLY with a long DUID (the
/// digest), a REPLY for an unknown client, a foreign RELEASE, and the traced path.
#[test]
fn the_guard_allocates_nothing_per_frame() {
    // No rate limit: every frame goes the whole way through the guard.
    let mut sw = switch_with(EnforceMode::Enforce, true, None);
    let long = duid_en(5);
    let rogue = server(M::Reply, 1, &duid_ll(mac(4)), &[(ula(0xbad), 1800, 3600)]);
    let to_victim = udp6(ll(3), ll(4), SERVER_PORT, CLIENT_PORT, &rogue);
    let frames: Vec<(PortId, Vec<u8>)> = vec![
        (
            CLIENT,
            eth6(
                ALL_DHCP_MAC,
                mac(2),
                &to_servers(ll(2), &client(M::Solicit, 1, &long, &[])),
            ),
        ),
        (ATTACKER, eth6(mac(4), mac(3), &to_victim)),
        (
            ATTACKER,
            eth6(
                ALL_DHCP_MAC,
                mac(3),
                &udp6(
                    ll(3),
                    ALL_DHCP,
                    1,
                    SERVER_PORT,
                    &relay(M::RelayRepl, &rogue),
                ),
            ),
        ),
        (
            ATTACKER,
            eth6(
                mac(4),
                mac(3),
                &with_exts(&to_victim, &[pad_ext(nh::HOP_BY_HOP, 0)]),
            ),
        ),
        (ATTACKER, eth6(mac(4), mac(3), &split(&to_victim, 2, 9).0)),
        (
            SERVER,
            eth6(
                mac(2),
                mac(1),
                &to_client(
                    ll(1),
                    ll(2),
                    &server(M::Reply, 2, &long, &[(addr(), 1800, 3600)]),
                ),
            ),
        ),
        (
            SERVER,
            eth6(
                MacAddr([2, 0, 0, 0, 0, 9]),
                mac(1),
                &to_client(ll(1), ll(9), &server(M::Reply, 3, &long, &[(ula(9), 1, 2)])),
            ),
        ),
        (
            ATTACKER,
            eth6(
                ALL_DHCP_MAC,
                mac(3),
                &to_servers(ll(3), &client(M::Release, 4, &long, &[(ula(0x55), 0, 0)])),
            ),
        ),
    ];
    // A binding for the foreign RELEASE to find.
    let held = NewBinding {
        vid: v10(),
        ip: IpAddr::V6(ula(0x55)),
        mac: mac(2),
        port: CLIENT,
        lease_secs: Some(3600),
        source: BindingSource::Dhcpv6,
        duid: DuidKey::of(&long),
    };
    sw.install_binding(held, Timestamp::from_secs(1)).unwrap();
    let mut trace = portcullis_dataplane::trace::Trace::default();
    let mut run = |sw: &mut Switch, secs| {
        let mut n = 0usize;
        for (p, f) in &frames {
            let rx = IngressFrame { data: f, tag: None };
            n += sw
                .process(Timestamp::from_secs(secs), *p, &rx)
                .out_ports()
                .len();
            n += sw
                .process_traced(Timestamp::from_secs(secs), *p, &rx, &mut trace)
                .out_ports()
                .len();
        }
        n
    };
    let warm = run(&mut sw, 2);
    let before = drops(&sw, ATTACKER, DropReason::Dhcpv6ServerUntrusted).0;
    let (again, allocs) = allocations_in(|| run(&mut sw, 3));
    assert_eq!(
        drops(&sw, ATTACKER, DropReason::Dhcpv6ServerUntrusted).0,
        before + 6,
        "the rogue messages reached the guard (twice each)"
    );
    assert!(sw.port(ATTACKER).unwrap().err_disabled.is_none());
    assert_eq!(allocs, 0, "the guard allocated per frame");
    assert_eq!(warm, again);
    assert!(warm > 0);
}

/// `portcullis trace` says what the guard saw: the rogue REPLY's type, ports and
/// why it is dropped; the held REPLY's binding; a client message's delivery.
#[test]
fn a_trace_explains_the_guard() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let mut trace = portcullis_dataplane::trace::Trace::default();
    let explain =
        |sw: &mut Switch, port, f: &[u8], trace: &mut portcullis_dataplane::trace::Trace| {
            let rx = IngressFrame { data: f, tag: None };
            sw.process_traced(Timestamp::from_secs(1), port, &rx, trace);
            trace.explain(sw)
        };
    let rogue = server(
        M::Reply,
        0x42,
        &duid_ll(mac(4)),
        &[(ula(0xbad), 1800, 3600)],
    );
    let f = eth6(
        mac(4),
        mac(3),
        &udp6(ll(3), ll(4), 1547, CLIENT_PORT, &rogue),
    );
    let steps = explain(&mut sw, ATTACKER, &f, &mut trace);
    let g = steps
        .iter()
        .find(|e| e.stage == "dhcpv6_guard")
        .expect("a guard step");
    assert_eq!(
        (g.decision, g.reason),
        ("drop", Some("dhcpv6_server_untrusted"))
    );
    assert!(
        g.text.contains("Reply") && g.text.contains("1547 → 546"),
        "{}",
        g.text
    );
    assert!(g.text.contains("server message"), "{}", g.text);

    let reply = server(M::Reply, 8, &client_duid(), &[(addr(), 1800, 3600)]);
    let f = eth6(mac(2), mac(1), &to_client(ll(1), ll(2), &reply));
    let steps = explain(&mut sw, SERVER, &f, &mut trace);
    let g = steps.iter().find(|e| e.stage == "dhcpv6_guard").unwrap();
    assert_eq!(g.decision, "pass");
    assert!(
        g.text.contains(&format!("binds {}", addr())) && g.text.contains("held"),
        "{}",
        g.text
    );

    let f = eth6(
        ALL_DHCP_MAC,
        mac(2),
        &to_servers(ll(2), &client(M::Solicit, 1, &client_duid(), &[])),
    );
    let steps = explain(&mut sw, CLIENT, &f, &mut trace);
    let g = steps.iter().find(|e| e.stage == "dhcpv6_guard").unwrap();
    assert!(
        g.text.contains("trusted ports and uplinks only"),
        "{}",
        g.text
    );
    assert!(
        steps
            .iter()
            .any(|e| e.stage == "dhcp_trusted_delivery" && e.decision == "pass")
    );
}
