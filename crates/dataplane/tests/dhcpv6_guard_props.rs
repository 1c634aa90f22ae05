//! DHCPv6 guard's invariant over random mutations of real frames: rogue server
//! messages (ADVERTISE, REPLY from 547 and from odd source ports, to 546 and to
//! 547, wrapped in RELAY-REPL and RELAY-FORW, behind Hop-by-Hop and Destination
//! Options headers, as first and second fragments) and client messages, with random
//! bytes overwritten — Next Header fields, lengths, fragment fields, UDP ports,
//! message types, option lengths — and random truncation.
//!
//! The judge is not our parser but a sloppy DHCPv6 stack, written here over the
//! sloppy host of `support::ipv6::sloppy_upper`: it ignores the IPv6 payload length
//! and the UDP length and checksum, walks every extension header it can skip by its
//! length field (unknown ones too), follows a first or atomic fragment, and reads
//! whatever UDP it finds: anything to port 546 is for a
//! client; to 547, the message type, following Relay Message options down through
//! relay messages.
//!
//! Invariants, from an untrusted port in enforce mode:
//! 1. nothing such a stack could read as a server message (ADVERTISE, REPLY,
//!    RECONFIGURE, RELAY-REPL, or a relay message wrapping one), nor anything to
//!    the client port 546, is forwarded anywhere;
//! 2. nothing it could read as a message to 547 reaches an untrusted port (only the
//!    uplink and the server port, both trusted);
//! 3. nothing panics, and every frame is counted exactly once (dropped or sent).

use portcullis_dataplane::wire::dhcpv6::{CLIENT_PORT, MessageType as M, SERVER_PORT};
use portcullis_dataplane::wire::ipv6::next_header as nh;
use portcullis_dataplane::*;
use proptest::prelude::*;

mod support;
use support::dhcpv6::*;
use support::ipv6::*;
use support::*;

const ATTACKER: PortId = PortId(2);
/// The trusted ports: the uplink and the server.
const TRUSTED: [u16; 2] = [0, 1];

fn switch(mode: EnforceMode) -> Switch {
    let guard = |trusted, mode| {
        Some(Dhcpv6GuardSpec {
            trusted,
            rate_limit_pps: None,
            mode,
        })
    };
    let mut up = trunk("uplink", &[10], Some(10));
    up.features.dhcpv6_guard = guard(true, EnforceMode::Enforce);
    let mut s = access("s1", 10, Some(mac(1)));
    s.features.dhcpv6_guard = guard(true, EnforceMode::Enforce);
    let mut a = access("a", 10, Some(mac(2)));
    a.features.dhcpv6_guard = guard(false, mode);
    let mut c = access("c", 10, Some(mac(3)));
    c.features.dhcpv6_guard = guard(false, EnforceMode::Enforce);
    let mut b = access("b", 10, Some(mac(4)));
    b.features.dhcpv6_guard = guard(false, EnforceMode::Enforce);
    Switch::new(&switch_spec("v6", vec![up, s, a, c, b]), Timestamp(0)).unwrap()
}

/// What the sloppy stack reads in `l3`.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Nothing,
    /// UDP to 546: a client takes it.
    ToClient,
    /// UDP to 547 with this innermost message type (None: unreadable).
    ToServer(Option<u8>),
}

/// The innermost message type of a DHCPv6 payload, following Relay Message
/// options (at most 32 levels), as a sloppy stack does.
fn innermost_type(mut msg: &[u8]) -> Option<u8> {
    for _ in 0..32 {
        let t = *msg.first()?;
        if t != 12 && t != 13 {
            return Some(t);
        }
        let mut opts = msg.get(34..)?;
        let mut inner = None;
        while let [c0, c1, l0, l1, rest @ ..] = opts {
            let len = usize::from(u16::from_be_bytes([*l0, *l1]));
            let value = rest.get(..len.min(rest.len()))?;
            if u16::from_be_bytes([*c0, *c1]) == 9 {
                inner = Some(value);
                break;
            }
            opts = rest.get(len..).unwrap_or(&[]);
        }
        // A relay without a Relay Message: its own type is all there is.
        let Some(i) = inner else { return Some(t) };
        msg = i;
    }
    None
}

/// What the sloppy stack reads: the upper layer as `support::ipv6::sloppy_upper`
/// finds it, then UDP's destination port and, to 547, the innermost message type.
fn sloppy_stack_reads(l3: &[u8]) -> Read {
    let Some((nh::UDP, at)) = sloppy_upper(l3) else {
        return Read::Nothing;
    };
    let Some([_, _, d0, d1, _, _, _, _, payload @ ..]) = l3.get(at..) else {
        return Read::Nothing;
    };
    match u16::from_be_bytes([*d0, *d1]) {
        CLIENT_PORT => Read::ToClient,
        SERVER_PORT => Read::ToServer(innermost_type(payload)),
        _ => Read::Nothing,
    }
}

/// A server message type, or a relay the stack could not see into.
fn is_server(t: Option<u8>) -> bool {
    matches!(t, Some(2 | 7 | 10 | 13))
}

/// The real messages the mutations start from.
fn seeds() -> Vec<Vec<u8>> {
    let victim = duid_ll(mac(3));
    let reply = server(M::Reply, 1, &victim, &[(ula(0xbad), 1800, 3600)]);
    let adv = server(M::Advertise, 1, &victim, &[(ula(0xbad), 1800, 3600)]);
    let solicit = client(M::Solicit, 2, &duid_ll(mac(2)), &[]);
    let rogue = udp6(ll(2), ll(3), SERVER_PORT, CLIENT_PORT, &reply);
    let with_dst = with_exts(&rogue, &[pad_ext(nh::DESTINATION_OPTIONS, 0)]);
    vec![
        rogue.clone(),
        udp6(ll(2), ll(3), 1547, CLIENT_PORT, &adv),
        udp6(ll(2), ALL_DHCP, SERVER_PORT, SERVER_PORT, &reply),
        udp6(
            ll(2),
            ALL_DHCP,
            40000,
            SERVER_PORT,
            &relay(M::RelayRepl, &reply),
        ),
        udp6(
            ll(2),
            ALL_DHCP,
            CLIENT_PORT,
            SERVER_PORT,
            &relay(M::RelayForw, &adv),
        ),
        udp6(
            ll(2),
            ALL_DHCP,
            SERVER_PORT,
            SERVER_PORT,
            &relay(M::RelayForw, &relay(M::RelayRepl, &reply)),
        ),
        with_exts(
            &rogue,
            &[
                pad_ext(nh::HOP_BY_HOP, 0),
                pad_ext(nh::DESTINATION_OPTIONS, 1),
            ],
        ),
        split(&rogue, 2, 1).0,
        split(&with_dst, 1, 2).0,
        split(&with_dst, 1, 2).1,
        to_servers(ll(2), &solicit),
        with_exts(&to_servers(ll(2), &solicit), &[pad_ext(nh::HOP_BY_HOP, 0)]),
        udp6(ll(2), ll(3), SERVER_PORT, 5353, &reply),
        echo(ula(2), ula(3)),
    ]
}

/// A seed, up to 6 bytes overwritten (biased to the first 120: the IPv6, extension
/// and UDP headers and the message's start), and perhaps a truncation.
fn arb_packet() -> impl Strategy<Value = Vec<u8>> {
    arb_mutated(seeds, 120, 400)
}

/// Checks the invariants for one frame from the attacker; returns its verdict.
fn check(sw: &mut Switch, l3: &[u8]) -> Result<Verdict, TestCaseError> {
    let f = eth6(ALL_DHCP_MAC, mac(2), l3);
    let v = sw.process(
        Timestamp::from_secs(1),
        ATTACKER,
        &IngressFrame {
            data: &f,
            tag: None,
        },
    );
    let outs = out(&v);
    match sloppy_stack_reads(&f[14..]) {
        Read::ToClient => {
            prop_assert!(outs.is_empty(), "UDP to 546 got out: {v:?}\n{l3:02x?}")
        }
        Read::ToServer(t) if is_server(t) => {
            prop_assert!(
                outs.is_empty(),
                "a server message got out: {v:?}\n{l3:02x?}"
            )
        }
        Read::ToServer(_) => prop_assert!(
            outs.iter().all(|p| TRUSTED.contains(p)),
            "a message to 547 reached an untrusted port: {v:?}\n{l3:02x?}"
        ),
        Read::Nothing => {}
    }
    // Nothing from an untrusted port binds, or is held to bind.
    prop_assert!(!matches!(v, Verdict::Hold(..)), "held: {v:?}");
    prop_assert_eq!(sw.binding_count(), 0);
    let c = sw.counters(ATTACKER).unwrap();
    prop_assert_eq!(c.rx_frames, 1);
    let dropped: u64 = c.rx_drops.iter().sum();
    prop_assert_eq!(dropped, u64::from(outs.is_empty()));
    Ok(v)
}

proptest! {
    #![proptest_config(many_cases())]

    #[test]
    fn no_server_message_leaves_and_no_client_message_reaches_an_untrusted_port(
        l3 in arb_packet()
    ) {
        let mut sw = switch(EnforceMode::Enforce);
        check(&mut sw, &l3)?;
    }
}

/// REPLYs from the trusted server, to the client c (mac 3), as the mutations start.
fn reply_seeds() -> Vec<Vec<u8>> {
    let duid = duid_ll(mac(3));
    let one = server(M::Reply, 1, &duid, &[(ula(0x100), 1800, 3600)]);
    let two = server(
        M::Reply,
        2,
        &duid,
        &[(ula(0x101), 1800, 3600), (ula(0x102), 900, 1800)],
    );
    vec![
        udp6(ll(1), ll(3), SERVER_PORT, CLIENT_PORT, &one),
        udp6(ll(1), ll(3), SERVER_PORT, CLIENT_PORT, &two),
        with_exts(
            &udp6(ll(1), ll(3), SERVER_PORT, CLIENT_PORT, &one),
            &[pad_ext(nh::HOP_BY_HOP, 0)],
        ),
    ]
}

proptest! {
    #![proptest_config(many_cases())]

    /// Whatever the server's REPLY has become, a hold binds only a unicast address
    /// to the frame's destination MAC on the port the MAC table gives it (the
    /// client's), with the DHCPv6 source, and nothing enters the index before the
    /// commit.
    #[test]
    fn a_trusted_reply_binds_only_its_destination_on_its_port(
        l3 in arb_mutated(reply_seeds, 120, 400),
        dst in prop_oneof![Just(mac(3)), Just(mac(4)), Just(MacAddr([2, 0, 0, 0, 0, 9])), Just(ALL_DHCP_MAC)],
    ) {
        let mut sw = switch(EnforceMode::Enforce);
        let f = eth6(dst, mac(1), &l3);
        let v = sw.process(Timestamp::from_secs(1), PortId(1), &IngressFrame { data: &f, tag: None });
        prop_assert_eq!(sw.binding_count(), 0);
        if let Verdict::Hold(fwd, b) = v {
            let port = match dst {
                d if d == mac(3) => PortId(3),
                d if d == mac(4) => PortId(4),
                _ => return Err(TestCaseError::fail(format!("held for an unknown client: {v:?}"))),
            };
            prop_assert_eq!((b.mac, b.port, b.source), (dst, port, bindings::BindingSource::Dhcpv6));
            prop_assert!(portcullis_dataplane::bindings::check_binding_ip(b.ip).is_ok());
            prop_assert_eq!(out(&Verdict::Forward(fwd)), vec![port.0]);
        }
    }
}

#[test]
fn every_seed_is_judged_as_the_stack_reads_it() {
    for (i, l3) in seeds().iter().enumerate() {
        let mut sw = switch(EnforceMode::Enforce);
        let v = check(&mut sw, l3).unwrap_or_else(|e| panic!("seed {i}: {e}"));
        let read = sloppy_stack_reads(l3);
        // Seed 8 is a first fragment without its UDP header: no stack reads it, and
        // the guard drops it all the same (a fragment of what could be DHCPv6). Its
        // second fragment (seed 9) is data and passes: alone it cannot be
        // reassembled.
        let fragment = i == 8;
        let dropped =
            matches!(read, Read::ToClient) || matches!(read, Read::ToServer(t) if is_server(t));
        assert_eq!(
            v.out_ports().is_empty(),
            dropped || fragment,
            "seed {i} ({read:?}): {v:?}"
        );
    }
}

/// The judge catches a guard that is not there: in observe mode the same seeds
/// break invariant 1 (so the property above can fail).
#[test]
fn the_property_fails_without_enforcement() {
    let broken = seeds()
        .iter()
        .filter(|l3| {
            let mut sw = switch(EnforceMode::Observe);
            check(&mut sw, l3).is_err()
        })
        .count();
    assert!(
        broken >= 7,
        "only {broken} seeds break the invariant in observe mode"
    );
}

/// The REPLY property is not vacuous: every unmutated REPLY seed to the client is
/// held for it; to a MAC the switch does not know, none is.
#[test]
fn every_reply_seed_is_held_for_its_client() {
    for (i, l3) in reply_seeds().iter().enumerate() {
        let mut sw = switch(EnforceMode::Enforce);
        let v = send_secs(&mut sw, 1, PortId(1), &eth6(mac(3), mac(1), l3));
        assert!(
            matches!(v, Verdict::Hold(_, b) if b.port == PortId(3)),
            "seed {i}: {v:?}"
        );
        let stranger = MacAddr([2, 0, 0, 0, 0, 9]);
        let v = send_secs(&mut sw, 1, PortId(1), &eth6(stranger, mac(1), l3));
        assert_eq!(out(&v), vec![0], "seed {i}: the uplink only");
    }
}
