//! The wire parsers (`arp`, `dhcp`) and the option 82 rewriter against real DHCP
//! messages built with dhcproto, and under proptest: random bytes, random mutations
//! of valid DHCP and ARP frames, and random DHCP option lists in frames with valid
//! checksums. The IPv6 parsers (`ipv6`, `icmpv6`, `nd`, `dhcpv6`) run on every one
//! of those inputs too, and on random IPv6-looking bytes (their own cases and
//! properties are in `ipv6_wire.rs`).
//!
//! Invariants: nothing panics; every `Ok` is internally consistent — ranges inside
//! the buffer, fields equal to an independent (naive) reading of the bytes, and a
//! rewritten frame with IPv4 total length, header checksum, UDP length and
//! checksum right (checked naively and with etherparse); a DHCP message parses
//! exactly when the naive reading accepts it; strip(insert(x)) gives x back.

use dhcproto::v4::relay::{RelayAgentInformation, RelayCode, RelayInfo};
use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Encodable};
use etherparse::{PacketBuilder, VlanId};
use portcullis_dataplane::MacAddr;
use portcullis_dataplane::arp::{self, ArpOp};
use portcullis_dataplane::dhcp::{
    self, DhcpMessageType, MAX_OPTION_WALK, WireError, insert_option82, strip_option82,
};
use portcullis_dataplane::wire::{dhcpv6, icmpv6, ipv6, nd};
use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::ops::Range;

mod support;
use support::many_cases;

mod regressions;

const CLIENT_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef];
const SERVER_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 23);
const SERVER_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 50, 1);

// ---- fixtures -------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Discover,
    Offer,
    Request,
    Ack,
    Release,
}

const KINDS: [Kind; 5] = [
    Kind::Discover,
    Kind::Offer,
    Kind::Request,
    Kind::Ack,
    Kind::Release,
];

/// A DHCP message of `kind`, encoded by dhcproto. The ACK carries option 82 as a
/// server echoes it back to a relay agent.
fn dhcproto_message(kind: Kind) -> Vec<u8> {
    let unspec = Ipv4Addr::UNSPECIFIED;
    let client_id = DhcpOption::ClientIdentifier([&[1u8][..], &CLIENT_MAC].concat());
    let mut m = match kind {
        Kind::Discover | Kind::Request => {
            Message::new_with_id(0x2a2b_2c2d, unspec, unspec, unspec, unspec, &CLIENT_MAC)
        }
        Kind::Offer | Kind::Ack => Message::new_with_id(
            0x2a2b_2c2d,
            unspec,
            CLIENT_IP,
            SERVER_IP,
            unspec,
            &CLIENT_MAC,
        ),
        Kind::Release => {
            Message::new_with_id(0x0bad_cafe, CLIENT_IP, unspec, unspec, unspec, &CLIENT_MAC)
        }
    };
    let o = m.opts_mut();
    match kind {
        Kind::Discover => {
            o.insert(DhcpOption::MessageType(MessageType::Discover));
            o.insert(client_id);
            o.insert(DhcpOption::ParameterRequestList(vec![
                OptionCode::SubnetMask,
                OptionCode::Router,
                OptionCode::DomainNameServer,
            ]));
        }
        Kind::Request => {
            o.insert(DhcpOption::MessageType(MessageType::Request));
            o.insert(client_id);
            o.insert(DhcpOption::RequestedIpAddress(CLIENT_IP));
            o.insert(DhcpOption::ServerIdentifier(SERVER_IP));
            o.insert(DhcpOption::Hostname("guest-1".into()));
        }
        Kind::Offer | Kind::Ack => {
            o.insert(DhcpOption::MessageType(if kind == Kind::Offer {
                MessageType::Offer
            } else {
                MessageType::Ack
            }));
            o.insert(DhcpOption::ServerIdentifier(SERVER_IP));
            o.insert(DhcpOption::AddressLeaseTime(86_400));
            o.insert(DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)));
            o.insert(DhcpOption::Router(vec![SERVER_IP]));
            if kind == Kind::Ack {
                let mut info = RelayAgentInformation::default();
                info.insert(RelayInfo::AgentCircuitId(b"vlan10:port3".to_vec()));
                info.insert(RelayInfo::AgentRemoteId(b"portcullis-1".to_vec()));
                o.insert(DhcpOption::RelayAgentInformation(info));
            }
        }
        Kind::Release => {
            o.insert(DhcpOption::MessageType(MessageType::Release));
            o.insert(DhcpOption::ServerIdentifier(SERVER_IP));
            o.insert(client_id);
        }
    }
    if kind == Kind::Discover {
        m.set_flags(Flags::default().set_broadcast());
    }
    if matches!(kind, Kind::Offer | Kind::Ack) {
        m.set_opcode(Opcode::BootReply);
    }
    m.to_vec().expect("dhcproto encodes")
}

/// An Ethernet frame carrying `payload` in UDP/IPv4, built (checksums included)
/// by etherparse. Client messages go 68 → 67 to the broadcast address; server
/// messages 67 → 68. Returns the frame and its `body_offset`.
fn udp_frame(payload: &[u8], from_server: bool, tagged: bool) -> (Vec<u8>, usize) {
    let (smac, sip, sport, dport) = if from_server {
        (SERVER_MAC, SERVER_IP, 67, 68)
    } else {
        (CLIENT_MAC, Ipv4Addr::UNSPECIFIED, 68, 67)
    };
    let mut out = Vec::new();
    if tagged {
        PacketBuilder::ethernet2(smac, [0xff; 6])
            .single_vlan(VlanId::try_new(10).unwrap())
            .ipv4(sip.octets(), [255; 4], 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap();
        (out, 16)
    } else {
        PacketBuilder::ethernet2(smac, [0xff; 6])
            .ipv4(sip.octets(), [255; 4], 64)
            .udp(sport, dport)
            .write(&mut out, payload)
            .unwrap();
        (out, 12)
    }
}

fn dhcp_frame(kind: Kind, tagged: bool) -> (Vec<u8>, usize) {
    let from_server = matches!(kind, Kind::Offer | Kind::Ack);
    udp_frame(&dhcproto_message(kind), from_server, tagged)
}

/// An Ethernet ARP frame: `oper`, sender and target.
fn arp_frame(oper: u16, sip: [u8; 4], tip: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&oper.to_be_bytes());
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&sip);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tip);
    f.resize(60, 0);
    f
}

// ---- independent checks ---------------------------------------------------------

/// RFC 1071 checksum, the slow obvious way.
fn naive_checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u64 = 0;
    for pair in bytes.chunks(2) {
        sum += (u64::from(pair[0]) << 8) | pair.get(1).copied().map_or(0, u64::from);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn be16(b: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([b[at], b[at + 1]]))
}

/// Asserts a frame's IPv4 total length and header checksum and its UDP length and
/// checksum (naively, and with etherparse), for a frame that ends with its UDP
/// datagram. Returns (IPv4 header length, UDP checksum field).
fn assert_ip_udp_consistent(f: &[u8], body: usize) -> (usize, u16) {
    let l3 = &f[body + 2..];
    let ihl = usize::from(l3[0] & 0x0f) * 4;
    assert_eq!(be16(l3, 2), l3.len(), "IPv4 total length");
    assert_eq!(naive_checksum(&[&l3[..ihl]]), 0, "IPv4 header checksum");
    let ip = etherparse::Ipv4HeaderSlice::from_slice(l3)
        .unwrap()
        .to_header();
    // etherparse's header has no field for the reserved flag bit (RFC 791), so it
    // gives a second opinion only without it (see regressions::reserved_flag_bit).
    if l3[6] & 0x80 == 0 {
        let computed = ip.calc_header_checksum();
        // 0x0000 and 0xffff are the same number in one's complement.
        assert!(
            computed == ip.header_checksum || computed ^ ip.header_checksum == 0xffff,
            "etherparse IPv4 checksum"
        );
    }
    let udp = &l3[ihl..];
    assert_eq!(be16(udp, 4), udp.len(), "UDP length");
    let stored = be16(udp, 6) as u16;
    if stored != 0 {
        let pseudo = [&l3[12..20], &[0, 17], &udp[4..6]].concat();
        assert_eq!(naive_checksum(&[&pseudo, udp]), 0, "UDP checksum");
        let h = etherparse::UdpHeaderSlice::from_slice(udp)
            .unwrap()
            .to_header();
        assert_eq!(h.calc_checksum_ipv4(&ip, &udp[8..]).unwrap(), stored);
    }
    (ihl, stored)
}

/// Copies `f` with the IPv4 total length and checksum and the UDP length and
/// checksum fields zeroed, for comparing frames whose lengths were rewritten.
fn masked(f: &[u8], body: usize) -> Vec<u8> {
    let mut m = f.to_vec();
    let l3 = body + 2;
    let ihl = usize::from(m[l3] & 0x0f) * 4;
    for at in [l3 + 2, l3 + 3, l3 + 10, l3 + 11] {
        m[at] = 0;
    }
    for at in [l3 + ihl + 4, l3 + ihl + 5, l3 + ihl + 6, l3 + ihl + 7] {
        m[at] = 0;
    }
    m
}

/// Best-effort repair after a mutation: optionally set the IPv4 total length and
/// UDP length to fill the frame, then recompute the IPv4 header checksum and (if
/// non-zero) the UDP checksum, so the rewriters get past checksum verification.
/// Never panics on any input.
fn refresh(f: &mut [u8], body: usize, fix_lengths: bool) {
    let l3 = body + 2;
    let Some(&vihl) = f.get(l3) else { return };
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 || f.len() < l3 + ihl + 8 {
        return;
    }
    if fix_lengths {
        let total = (f.len() - l3).min(65535);
        f[l3 + 2..l3 + 4].copy_from_slice(&(total as u16).to_be_bytes());
        if let Some(udp_len) = total.checked_sub(ihl) {
            f[l3 + ihl + 4..l3 + ihl + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        }
    }
    f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
    let c = naive_checksum(&[&f[l3..l3 + ihl]]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    let udp_len = be16(f, l3 + ihl + 4);
    let end = l3 + ihl + udp_len;
    if udp_len >= 8 && end <= f.len() && be16(f, l3 + ihl + 6) != 0 {
        f[l3 + ihl + 6..l3 + ihl + 8].copy_from_slice(&[0, 0]);
        let pseudo = [
            &f[l3 + 12..l3 + 20],
            &[0, 17],
            &f[l3 + ihl + 4..l3 + ihl + 6],
        ]
        .concat();
        let mut c = naive_checksum(&[&pseudo, &f[l3 + ihl..end]]);
        if c == 0 {
            c = 0xffff;
        }
        f[l3 + ihl + 6..l3 + ihl + 8].copy_from_slice(&c.to_be_bytes());
    }
}

/// What a naive reading of a DHCP message finds.
#[derive(Debug, PartialEq, Eq)]
struct Naive {
    message_type: Option<u8>,
    requested_ip: Option<[u8; 4]>,
    lease_secs: Option<u32>,
    server_id: Option<[u8; 4]>,
    client_id: Option<Range<usize>>,
    relay: Option<Range<usize>>,
    end: usize,
}

/// An independent, allocation-happy reading of a DHCP message with the rules of
/// the module documentation. `None`: the message must be refused.
fn naive_dhcp(p: &[u8]) -> Option<Naive> {
    if p.len() < 240 || p[236..240] != [99, 130, 83, 99] {
        return None;
    }
    if !(p[0] == 1 || p[0] == 2) || p[1] != 1 || p[2] != 6 {
        return None;
    }
    let mut opts: Vec<(u8, Range<usize>)> = Vec::new();
    let mut i = 240;
    let mut steps = 0;
    let end = loop {
        steps += 1;
        if steps > MAX_OPTION_WALK {
            return None;
        }
        match *p.get(i)? {
            0 => i += 1,
            255 => break i,
            c => {
                let len = usize::from(*p.get(i + 1)?);
                if i + 2 + len > p.len() {
                    return None;
                }
                opts.push((c, i + 2..i + 2 + len));
                i += 2 + len;
            }
        }
    };
    let values = |code: u8| -> Vec<&[u8]> {
        opts.iter()
            .filter(|(c, _)| *c == code)
            .map(|(_, r)| &p[r.clone()])
            .collect()
    };
    let first = |code: u8, lens: &dyn Fn(usize) -> bool| -> Result<Option<&[u8]>, ()> {
        let v = values(code);
        if v.iter().any(|x| !lens(x.len())) || v.windows(2).any(|w| w[0] != w[1]) {
            return Err(());
        }
        Ok(v.first().copied())
    };
    if opts.iter().any(|(c, _)| *c == 52) {
        return None;
    }
    let mt = first(53, &|l| l == 1).ok()?.map(|v| v[0]);
    let req = first(50, &|l| l == 4).ok()?.map(|v| v.try_into().unwrap());
    let lease = first(51, &|l| l == 4)
        .ok()?
        .map(|v| u32::from_be_bytes(v.try_into().unwrap()));
    let sid = first(54, &|l| l == 4).ok()?.map(|v| v.try_into().unwrap());
    first(61, &|l| l >= 2).ok()?;
    let cid = opts.iter().find(|(c, _)| *c == 61).map(|(_, r)| r.clone());
    let relays: Vec<_> = opts.iter().filter(|(c, _)| *c == 82).collect();
    let relay = match relays.as_slice() {
        [] => None,
        [(_, r)] => {
            // Sub-options: at least one, each code + len + value, exactly filling.
            let v = &p[r.clone()];
            if v.is_empty() {
                return None;
            }
            let mut j = 0;
            while j < v.len() {
                if j + 2 > v.len() || j + 2 + usize::from(v[j + 1]) > v.len() {
                    return None;
                }
                j += 2 + usize::from(v[j + 1]);
            }
            Some(r.start - 2..r.end)
        }
        _ => return None,
    };
    Some(Naive {
        message_type: mt,
        requested_ip: req,
        lease_secs: lease,
        server_id: sid,
        client_id: cid,
        relay,
        end,
    })
}

/// Feeds `f` (with EtherType at `body`) to every parser and both rewriters, and
/// checks every `Ok` against the bytes. Panics (fails) on any inconsistency.
fn check_everything(f: &[u8], body: usize, circuit: &[u8], remote: &[u8], out_len: usize) {
    let l3 = f.get(body + 2..).unwrap_or(&[]);

    // ARP
    if let Ok(a) = arp::parse(l3) {
        assert!(l3.len() >= 28);
        assert_eq!(&l3[..6], &[0, 1, 8, 0, 6, 4]);
        assert_eq!(a.oper.code(), be16(l3, 6) as u16);
        assert_eq!(a.sender_mac, MacAddr(l3[8..14].try_into().unwrap()));
        assert_eq!(a.sender_ip.octets(), l3[14..18]);
        assert_eq!(a.target_mac, MacAddr(l3[18..24].try_into().unwrap()));
        assert_eq!(a.target_ip.octets(), l3[24..28]);
        assert_eq!(
            a.is_probe(),
            a.oper == ArpOp::Request && l3[14..18] == [0; 4]
        );
    } else {
        assert!(l3.len() < 28 || l3[..6] != [0, 1, 8, 0, 6, 4]);
    }

    // IPv4 / UDP
    let src = dhcp::ipv4_source(l3);
    match dhcp::ipv4_udp(l3) {
        Ok(u) => {
            let ihl = usize::from(l3[0] & 0x0f) * 4;
            let total = be16(l3, 2);
            assert_eq!(l3[0] >> 4, 4);
            assert!(ihl >= 20 && total >= ihl && total <= l3.len());
            assert_eq!(l3[9], 17);
            assert_eq!(be16(l3, 6) & 0x3fff, 0, "not a fragment");
            assert_eq!(u.ip_header_len, ihl);
            assert_eq!(u.payload.start, ihl + 8);
            assert_eq!(u.payload.end, ihl + be16(l3, ihl + 4));
            assert!(u.payload.end <= total);
            assert_eq!(u.src.octets(), l3[12..16]);
            assert_eq!(u.dst.octets(), l3[16..20]);
            assert_eq!(
                (u.sport, u.dport),
                (be16(l3, ihl) as u16, be16(l3, ihl + 2) as u16)
            );
            assert_eq!(
                dhcp::udp_ports(l3),
                Some((u.src, u.dst, u.sport, u.dport, u.payload.start))
            );
            assert_eq!(src, Some(u.src));
            check_dhcp(&l3[u.payload.clone()]);
            // The stage passes everything after the UDP header; that parses too
            // (maybe differently, if the message only ends in the padding).
            check_dhcp(&l3[u.payload.start..]);
        }
        Err(_) => assert_eq!(dhcp::udp_ports(l3), None),
    }
    if let Some(s) = src {
        assert_eq!(s.octets(), l3[12..16]);
    }
    // Parsed once for the pipeline: the same answers as the separate parsers.
    let facts = dhcp::Ipv4Facts::parse(l3);
    assert_eq!(facts.src, src);
    assert_eq!(
        facts.udp.map(|u| (u.sport, u.dport, u.payload())),
        dhcp::ipv4_udp(l3)
            .ok()
            .map(|u| (u.sport, u.dport, u.payload))
    );
    assert_eq!(facts.dhcp, naive_candidate(l3));
    // Any byte string as a DHCP message, too.
    check_dhcp(l3);

    check_insert(f, body, circuit, remote, out_len);
    check_strip(f, body, out_len);
    check_ipv6(l3);
}

/// The IPv6 parsers on any bytes: no panic, and every answer inside the bytes.
fn check_ipv6(l3: &[u8]) {
    let Ok(f) = ipv6::Ipv6Facts::parse(l3) else {
        assert!(l3.len() < 40 || l3[0] >> 4 != 6);
        return;
    };
    let end = f.end as usize;
    assert!(end <= l3.len());
    if let Some((protocol, offset)) = f.upper() {
        assert!(!ipv6::is_extension_header(protocol));
        assert!(offset + ipv6::upper_header_len(protocol) <= end);
    }
    if let Ok(icmp) = icmpv6::parse(l3, &f) {
        assert_eq!(icmp.offset + icmp.message.len(), end);
        if let Ok(v) = nd::parse(&icmp) {
            assert!({ v.options }.all(|o| o.is_ok()));
            let _ = v.violation(&f.header);
        }
    }
    let d = dhcpv6::Dhcpv6Facts::classify(l3, &f);
    if let Some(u) = d.udp {
        assert_eq!(u.payload().end, end);
        assert!(u.payload().start <= end);
        let _ = dhcpv6::udp_checksum_ok(l3, &f, &u);
        if let Ok((outer, inner, _)) = dhcpv6::innermost(&l3[u.payload()]) {
            assert!(
                outer
                    .raw_options()
                    .chain(inner.raw_options())
                    .all(|o| o.is_ok())
            );
        }
    }
    let _ = dhcpv6::parse(l3);
}

fn check_dhcp(p: &[u8]) {
    let got = dhcp::parse(p);
    let naive = naive_dhcp(p);
    match (&got, &naive) {
        (Ok(v), Some(n)) => {
            assert_eq!(v.op, p[0]);
            assert_eq!((v.htype, v.hlen), (1, 6));
            assert_eq!(v.xid, u32::from_be_bytes(p[4..8].try_into().unwrap()));
            assert_eq!(v.ciaddr.octets(), p[12..16]);
            assert_eq!(v.yiaddr.octets(), p[16..20]);
            assert_eq!(v.siaddr.octets(), p[20..24]);
            assert_eq!(v.giaddr.octets(), p[24..28]);
            assert_eq!(v.chaddr.0, p[28..34]);
            assert_eq!(v.message_type.map(DhcpMessageType::code), n.message_type);
            assert_eq!(v.requested_ip.map(|a| a.octets()), n.requested_ip);
            assert_eq!(v.lease_secs, n.lease_secs);
            assert_eq!(v.server_id.map(|a| a.octets()), n.server_id);
            assert_eq!(v.client_id, n.client_id);
            assert_eq!(v.relay_agent_info, n.relay);
            assert_eq!(v.options_end, n.end);
            assert_eq!(p[v.options_end], 255);
            if let Some(r) = &v.relay_agent_info {
                assert!(r.end <= v.options_end);
                assert_eq!(p[r.start], 82);
                assert_eq!(usize::from(p[r.start + 1]), r.len() - 2);
            }
            if let Some(r) = &v.client_id {
                assert!(r.end <= v.options_end && r.len() >= 2);
            }
        }
        (Err(_), None) => {}
        _ => panic!("parse {got:?} but naive reading {naive:?}"),
    }
}

/// Where the naive reading puts a frame's DHCP message: (IPv4 header length, UDP
/// length, DHCP offset in the frame).
fn naive_layout(f: &[u8], body: usize) -> (usize, usize, usize) {
    let l3 = body + 2;
    let ihl = usize::from(f[l3] & 0x0f) * 4;
    (ihl, be16(f, l3 + ihl + 4), l3 + ihl + 8)
}

fn check_insert(f: &[u8], body: usize, circuit: &[u8], remote: &[u8], out_len: usize) {
    let mut out = vec![0u8; out_len];
    let Ok(n) = insert_option82(f, body, circuit, remote, &mut out) else {
        return;
    };
    assert!(n <= out_len);
    let ins = &out[..n];
    let (ihl, udp_len, dhcp_at) = naive_layout(f, body);
    let in_csum = be16(f, body + 2 + ihl + 6);
    let (_, out_csum) = assert_ip_udp_consistent(ins, body);
    assert_eq!(
        in_csum == 0,
        out_csum == 0,
        "a zero UDP checksum stays zero"
    );

    // Oracle: the original up to END, the option, the rest of the UDP datagram.
    let naive = naive_dhcp(&f[dhcp_at..body + 2 + ihl + udp_len]).expect("valid DHCP");
    assert_eq!(naive.relay, None);
    let mut opt = vec![82, 0];
    for (code, id) in [(1u8, circuit), (2, remote)] {
        if !id.is_empty() {
            opt.extend_from_slice(&[code, id.len() as u8]);
            opt.extend_from_slice(id);
        }
    }
    opt[1] = (opt.len() - 2) as u8;
    let end = dhcp_at + naive.end;
    let want = [&f[..end], &opt[..], &f[end..body + 2 + ihl + udp_len]].concat();
    assert_eq!(masked(ins, body), masked(&want, body));

    let v = dhcp::parse(&ins[dhcp_at..]).unwrap();
    let p = &ins[dhcp_at..];
    assert_eq!(v.relay_agent_info, Some(naive.end..naive.end + opt.len()));
    assert_eq!(v.options_end, naive.end + opt.len());
    if !circuit.is_empty() {
        assert_eq!(v.relay_sub_option(p, 1), Some(circuit));
    }
    if !remote.is_empty() {
        assert_eq!(v.relay_sub_option(p, 2), Some(remote));
    }

    // And back.
    let mut back = vec![0u8; 2048 + 512];
    let m = strip_option82(ins, body, &mut back).expect("strip what was inserted");
    let original = &f[..body + 2 + ihl + udp_len];
    assert_eq!(masked(&back[..m], body), masked(original, body));
    assert_ip_udp_consistent(&back[..m], body);
    if be16(f, body + 4) == ihl + udp_len {
        // No bytes between the UDP datagram and the IPv4 total length: exact.
        let orig_ip_csum = be16(f, body + 12);
        let got_ip_csum = be16(&back, body + 12);
        if orig_ip_csum == got_ip_csum {
            assert_eq!(&back[..m], original);
        }
    }
}

fn check_strip(f: &[u8], body: usize, out_len: usize) {
    let mut out = vec![0u8; out_len];
    let Ok(n) = strip_option82(f, body, &mut out) else {
        return;
    };
    let (ihl, udp_len, dhcp_at) = naive_layout(f, body);
    let naive = naive_dhcp(&f[dhcp_at..body + 2 + ihl + udp_len]).expect("valid DHCP");
    match naive.relay {
        None => assert_eq!(&out[..n], f, "copied unchanged"),
        Some(r) => {
            assert_ip_udp_consistent(&out[..n], body);
            let cut = dhcp_at + r.start..dhcp_at + r.end;
            let want = [&f[..cut.start], &f[cut.end..body + 2 + ihl + udp_len]].concat();
            assert_eq!(masked(&out[..n], body), masked(&want, body));
            let v = dhcp::parse(&out[dhcp_at..n]).unwrap();
            assert_eq!(v.relay_agent_info, None);
        }
    }
}

// ---- fixtures through the parsers -----------------------------------------------

#[test]
fn dhcproto_messages_parse() {
    for kind in KINDS {
        let bytes = dhcproto_message(kind);
        let v = dhcp::parse(&bytes).unwrap();
        let m = Message::from_bytes(&bytes).unwrap();
        let want_op = if matches!(kind, Kind::Offer | Kind::Ack) {
            2
        } else {
            1
        };
        assert_eq!(v.op, want_op, "{kind:?}");
        assert_eq!(v.xid, m.xid());
        assert_eq!(v.flags, u16::from(m.flags()));
        assert_eq!(v.ciaddr, m.ciaddr());
        assert_eq!(v.yiaddr, m.yiaddr());
        assert_eq!(v.siaddr, m.siaddr());
        assert_eq!(v.giaddr, m.giaddr());
        assert_eq!(&v.chaddr.0[..], &m.chaddr()[..6]);
        let mt = m.opts().msg_type().map(u8::from);
        assert_eq!(v.message_type.map(DhcpMessageType::code), mt);
        let expected = match kind {
            Kind::Discover => DhcpMessageType::Discover,
            Kind::Offer => DhcpMessageType::Offer,
            Kind::Request => DhcpMessageType::Request,
            Kind::Ack => DhcpMessageType::Ack,
            Kind::Release => DhcpMessageType::Release,
        };
        assert_eq!(v.message_type, Some(expected));
        assert_eq!(
            expected.is_server_message(),
            matches!(kind, Kind::Offer | Kind::Ack)
        );
        assert_eq!(expected.is_client_message(), !expected.is_server_message());
        let opt_ip = |code| match m.opts().get(code) {
            Some(DhcpOption::RequestedIpAddress(a) | DhcpOption::ServerIdentifier(a)) => Some(*a),
            _ => None,
        };
        assert_eq!(v.requested_ip, opt_ip(OptionCode::RequestedIpAddress));
        assert_eq!(v.server_id, opt_ip(OptionCode::ServerIdentifier));
        let lease = match m.opts().get(OptionCode::AddressLeaseTime) {
            Some(DhcpOption::AddressLeaseTime(s)) => Some(*s),
            _ => None,
        };
        assert_eq!(v.lease_secs, lease);
        let cid = match m.opts().get(OptionCode::ClientIdentifier) {
            Some(DhcpOption::ClientIdentifier(id)) => Some(id.as_slice()),
            _ => None,
        };
        assert_eq!(v.client_id(&bytes), cid);
        assert_eq!(
            v.relay_agent_info.is_some(),
            m.opts().get(OptionCode::RelayAgentInformation).is_some()
        );
        assert_eq!(bytes[v.options_end], 255);
        check_dhcp(&bytes);
    }
}

#[test]
fn dhcproto_ack_relay_info() {
    let bytes = dhcproto_message(Kind::Ack);
    let v = dhcp::parse(&bytes).unwrap();
    assert_eq!(v.relay_sub_option(&bytes, 1), Some(&b"vlan10:port3"[..]));
    assert_eq!(v.relay_sub_option(&bytes, 2), Some(&b"portcullis-1"[..]));
    // dhcproto writes option 82 last, just before END.
    assert_eq!(v.relay_agent_info.unwrap().end, v.options_end);
}

#[test]
fn dhcproto_frames_round_trip_through_option82() {
    for kind in KINDS {
        for tagged in [false, true] {
            let (f, body) = dhcp_frame(kind, tagged);
            let (ihl, udp_len, dhcp_at) = naive_layout(&f, body);
            assert_eq!(
                dhcp::ipv4_udp(&f[body + 2..]).unwrap().payload.len(),
                udp_len - 8
            );
            check_everything(&f, body, b"port-7", b"portcullis", 2048);
            let mut out = [0u8; 2048];
            let original = Message::from_bytes(&f[dhcp_at..]).unwrap();
            if kind == Kind::Ack {
                // Strip what the server echoed; dhcproto sees the rest unchanged.
                let n = strip_option82(&f, body, &mut out).unwrap();
                assert_eq!(n, f.len() - (2 + 2 + 12 + 2 + 12));
                assert_ip_udp_consistent(&out[..n], body);
                let mut want = original.clone();
                want.opts_mut().remove(OptionCode::RelayAgentInformation);
                assert_eq!(Message::from_bytes(&out[dhcp_at..n]).unwrap(), want);
                assert_eq!(
                    insert_option82(&f, body, b"a", b"b", &mut out),
                    Err(WireError::RelayInfoPresent)
                );
                continue;
            }
            let n = insert_option82(&f, body, b"port-7", b"portcullis", &mut out).unwrap();
            assert_eq!(n, body + 2 + ihl + udp_len + 2 + 8 + 12);
            assert_ip_udp_consistent(&out[..n], body);
            let got = Message::from_bytes(&out[dhcp_at..n]).unwrap();
            match got.opts().get(OptionCode::RelayAgentInformation) {
                Some(DhcpOption::RelayAgentInformation(info)) => {
                    assert_eq!(
                        info.get(RelayCode::AgentCircuitId),
                        Some(&RelayInfo::AgentCircuitId(b"port-7".to_vec()))
                    );
                    assert_eq!(
                        info.get(RelayCode::AgentRemoteId),
                        Some(&RelayInfo::AgentRemoteId(b"portcullis".to_vec()))
                    );
                }
                other => panic!("no option 82: {other:?}"),
            }
            let mut without = got.clone();
            without.opts_mut().remove(OptionCode::RelayAgentInformation);
            assert_eq!(without, original);
            let mut back = [0u8; 2048];
            let m = strip_option82(&out[..n], body, &mut back).unwrap();
            assert_eq!(&back[..m], &f[..]);
        }
    }
}

#[test]
fn arp_frames_parse() {
    let f = arp_frame(1, [0; 4], CLIENT_IP.octets());
    let a = arp::parse(&f[14..]).unwrap();
    assert!(a.is_probe());
    let f = arp_frame(2, CLIENT_IP.octets(), CLIENT_IP.octets());
    let a = arp::parse(&f[14..]).unwrap();
    assert!(a.is_gratuitous() && !a.is_probe());
    assert_eq!(a.sender_mac, MacAddr(CLIENT_MAC));
    check_everything(&f, 12, b"c", b"r", 2048);
}

// ---- properties -----------------------------------------------------------------

#[derive(Clone, Debug)]
enum Mutation {
    Set(usize, u8),
    Xor(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        3 => (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Xor(i, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        1 => (any::<usize>(), 1usize..8).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(f: &mut Vec<u8>, m: &Mutation) {
    let len = f.len().max(1);
    match m {
        Mutation::Set(i, b) => {
            if let Some(x) = f.get_mut(i % len) {
                *x = *b;
            }
        }
        Mutation::Xor(i, b) => {
            if let Some(x) = f.get_mut(i % len) {
                *x ^= *b;
            }
        }
        Mutation::Truncate(i) => f.truncate(i % (len + 1)),
        Mutation::Insert(i, v) => {
            let at = i % (f.len() + 1);
            f.splice(at..at, v.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let at = i % len;
            let end = (at + n).min(f.len());
            if at < end {
                f.drain(at..end);
            }
        }
    }
}

/// A valid frame to mutate: one of the DHCP fixtures (tagged or not, maybe with a
/// zero UDP checksum, maybe padded) or an ARP frame.
fn arb_base() -> impl Strategy<Value = (Vec<u8>, usize)> {
    (0usize..7, any::<bool>(), any::<bool>(), 0usize..20).prop_map(
        |(which, tagged, zero_csum, pad)| {
            let (mut f, body) = match which {
                0..=4 => dhcp_frame(KINDS[which], tagged),
                5 => (arp_frame(1, CLIENT_IP.octets(), SERVER_IP.octets()), 12),
                _ => (arp_frame(2, SERVER_IP.octets(), CLIENT_IP.octets()), 12),
            };
            if which <= 4 && zero_csum {
                f[body + 2 + 20 + 6] = 0;
                f[body + 2 + 20 + 7] = 0;
            }
            f.extend(std::iter::repeat_n(0u8, pad));
            (f, body)
        },
    )
}

fn arb_id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..16),
        1 => proptest::collection::vec(any::<u8>(), 0..300),
    ]
}

fn arb_out_len() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(2048usize), 1 => 0usize..700]
}

/// One DHCP option as bytes: mostly well-formed, sometimes with a lying length,
/// from a code set biased towards the ones the parser reads.
fn arb_option() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        Just(53u8),
        Just(50),
        Just(51),
        Just(54),
        Just(61),
        Just(82),
        Just(52),
        Just(12),
        Just(55),
        any::<u8>(),
    ];
    let good_len = |c: u8| match c {
        53 => 1usize,
        50 | 51 | 54 => 4,
        _ => 2,
    };
    prop_oneof![
        // Well-formed, with the length the RFC wants for the code.
        4 => (code.clone(), proptest::collection::vec(any::<u8>(), 0..8)).prop_map(
            move |(c, mut v)| {
                if c != 82 && c != 0 && c != 255 {
                    v.resize(good_len(c).max(v.len().min(if c == 61 { 8 } else { 0 })), 7);
                }
                let mut o = vec![c, v.len() as u8];
                o.extend(v);
                o
            }
        ),
        // Option 82 with well-formed sub-options.
        2 => proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..6)), 1..4)
            .prop_map(|subs| {
                let mut v = Vec::new();
                for (c, s) in subs {
                    v.push(c);
                    v.push(s.len() as u8);
                    v.extend(s);
                }
                let mut o = vec![82, v.len() as u8];
                o.extend(v);
                o
            }),
        // Any code, any claimed length, any bytes.
        2 => (code, any::<u8>(), proptest::collection::vec(any::<u8>(), 0..8)).prop_map(|(c, l, v)| {
            let mut o = vec![c, l];
            o.extend(v);
            o
        }),
        1 => Just(vec![0u8]),
        1 => Just(vec![255u8]),
    ]
}

/// A DHCP message from random options in a frame with correct checksums.
fn arb_dhcp_frame() -> impl Strategy<Value = (Vec<u8>, usize)> {
    (
        proptest::collection::vec(arb_option(), 0..12),
        any::<bool>(),
        prop_oneof![8 => Just(1u8), 8 => Just(2u8), 1 => any::<u8>()],
        any::<bool>(),
        any::<bool>(),
        0usize..12,
        proptest::collection::vec(any::<u8>(), 0..6),
    )
        .prop_map(|(opts, end, op, tagged, zero_csum, pad, trailer)| {
            let mut m = dhcproto_message(Kind::Discover);
            m.truncate(240);
            m[0] = op;
            for o in opts {
                m.extend(o);
            }
            if end {
                m.push(255);
            }
            m.extend(std::iter::repeat_n(0u8, pad));
            m.extend(trailer);
            let (mut f, body) = udp_frame(&m, op == 2, tagged);
            if zero_csum {
                f[body + 2 + 20 + 6] = 0;
                f[body + 2 + 20 + 7] = 0;
            }
            (f, body)
        })
}

/// 4096 cases per property, or `PROPTEST_CASES` for a longer hunt.
/// Whether an IPv4 datagram could be DHCP, read naively: a valid IPv4 header
/// (etherparse), protocol UDP, and the two bytes after the header (wherever the
/// total length ends) naming port 67 or 68 — or a first fragment too short for a
/// UDP header. Fragments are `Fragment`; an unfragmented one is `Message` if
/// etherparse-based `ipv4_udp` reads it, `BadUdp` otherwise.
fn naive_candidate(l3: &[u8]) -> dhcp::DhcpCandidate {
    use dhcp::DhcpCandidate::*;
    let Some(_) = dhcp::ipv4_source(l3) else {
        return No;
    };
    let ihl = usize::from(l3[0] & 0x0f) * 4;
    if l3[9] != 17 {
        return No;
    }
    let to_dhcp = l3.len() >= ihl + 4 && matches!(be16(l3, ihl + 2), 67 | 68);
    let frag = be16(l3, 6) & 0x3fff;
    if frag != 0 {
        let tiny = frag & 0x1fff == 0 && be16(l3, 2) < ihl + 8;
        return if to_dhcp || tiny { Fragment } else { No };
    }
    match (to_dhcp, dhcp::ipv4_udp(l3)) {
        (true, Ok(_)) => Message,
        (true, Err(_)) => BadUdp,
        (false, _) => No,
    }
}

proptest! {
    #![proptest_config(many_cases())]

    /// IPv4/UDP headers near every boundary the pipeline's one-pass parser checks
    /// (header, total and UDP lengths around the buffer's, fragments, protocol,
    /// version): the same answers as the etherparse-based parsers.
    #[test]
    fn ipv4_facts_agree_with_the_parsers_at_the_edges(
        version in prop_oneof![Just(4u8), 0u8..16],
        ihl in 0u8..16,
        frag in prop_oneof![Just(0u16), Just(0x4000u16), any::<u16>()],
        udp in any::<bool>(),
        buf_len in 0usize..80,
        total_delta in -3i32..4,
        udp_len_delta in -3i32..4,
        fill in any::<u8>(),
        sport in prop_oneof![Just(67u16), Just(68u16), Just(1067u16), any::<u16>()],
        dport in prop_oneof![Just(67u16), Just(68u16), any::<u16>()],
    ) {
        let ihl_bytes = usize::from(ihl) * 4;
        let mut l3 = vec![fill; buf_len];
        if let Some(h) = l3.get_mut(..20) {
            h[0] = version << 4 | ihl;
            let total = (buf_len as i32 + total_delta).clamp(0, 0xffff) as u16;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[6..8].copy_from_slice(&frag.to_be_bytes());
            h[9] = if udp { 17 } else { 6 };
            let udp_len =
                (i32::from(total) - ihl_bytes as i32 + udp_len_delta).clamp(0, 0xffff) as u16;
            if let Some(u) = l3.get_mut(ihl_bytes + 4..ihl_bytes + 6) {
                u.copy_from_slice(&udp_len.to_be_bytes());
            }
        }
        // The ports, where they fit (a short buffer keeps what it has).
        let ports = [sport.to_be_bytes(), dport.to_be_bytes()].concat();
        for (i, b) in ports.iter().enumerate() {
            if ihl_bytes >= 20 && let Some(x) = l3.get_mut(ihl_bytes + i) {
                *x = *b;
            }
        }
        let facts = dhcp::Ipv4Facts::parse(&l3);
        prop_assert_eq!(facts.src, dhcp::ipv4_source(&l3));
        prop_assert_eq!(
            facts.udp.map(|u| (u.sport, u.dport, u.payload())),
            dhcp::ipv4_udp(&l3).ok().map(|u| (u.sport, u.dport, u.payload))
        );
        prop_assert_eq!(facts.dhcp, naive_candidate(&l3));
    }

    #[test]
    fn random_bytes_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..400),
        body in 0usize..24,
        ipv4_prefix in any::<bool>(),
        circuit in arb_id(),
        remote in arb_id(),
        out_len in arb_out_len(),
    ) {
        // Half the time, an IPv4 EtherType and version/IHL byte, to get further in.
        if ipv4_prefix && let Some(p) = bytes.get_mut(body..body + 3) {
            p.copy_from_slice(&[0x08, 0x00, 0x45]);
        }
        check_everything(&bytes, body, &circuit, &remote, out_len);
    }

    /// Random bytes behind an IPv6 EtherType, version nibble and a payload length
    /// that matches (so the chain walk runs), with a chosen first Next Header.
    #[test]
    fn random_ipv6_bytes_never_panic(
        mut l3 in proptest::collection::vec(any::<u8>(), 40..300),
        next in prop_oneof![Just(0u8), Just(43u8), Just(44u8), Just(51u8), Just(58u8), Just(60u8), Just(17u8), any::<u8>()],
    ) {
        l3[0] = 0x60 | (l3[0] & 0x0f);
        let plen = (l3.len() - 40) as u16;
        l3[4..6].copy_from_slice(&plen.to_be_bytes());
        l3[6] = next;
        check_ipv6(&l3);
    }

    #[test]
    fn mutated_frames_stay_consistent(
        (base, body) in arb_base(),
        mutations in proptest::collection::vec(arb_mutation(), 1..5),
        repair in 0u8..3,
        circuit in arb_id(),
        remote in arb_id(),
        out_len in arb_out_len(),
    ) {
        let mut f = base;
        for m in &mutations {
            apply(&mut f, m);
        }
        // 0: leave checksums broken; 1: fix checksums; 2: fix lengths and checksums.
        if repair > 0 {
            refresh(&mut f, body, repair == 2);
        }
        check_everything(&f, body, &circuit, &remote, out_len);
    }

    #[test]
    fn random_dhcp_options_stay_consistent(
        (f, body) in arb_dhcp_frame(),
        circuit in arb_id(),
        remote in arb_id(),
        out_len in arb_out_len(),
    ) {
        check_everything(&f, body, &circuit, &remote, out_len);
    }
}
