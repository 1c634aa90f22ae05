//! The IPv6 wire layer of issue 15 (`wire::ipv6`, `wire::icmpv6`, `wire::nd`,
//! `wire::dhcpv6`): one case per RFC rule the first-hop stages rely on, frames
//! cross-checked against etherparse (IPv6 chains, ICMPv6/UDP checksums) and
//! dhcproto (DHCPv6 messages), and properties: no input panics, and the chain walk
//! agrees with etherparse on every valid chain.

use dhcproto::v6 as dp;
use dhcproto::{Decodable, Encodable};
use etherparse::{Ipv6Slice, LaxIpv6Slice, PacketBuilder};
use portcullis_dataplane::MacAddr;
use portcullis_dataplane::wire::WireError;
use portcullis_dataplane::wire::dhcpv6::{
    self, Dhcpv6Candidate, Dhcpv6Emit, Dhcpv6Facts, Dhcpv6OptionOut, MessageType, RelayHeader,
};
use portcullis_dataplane::wire::icmpv6::{self, msg_type};
use portcullis_dataplane::wire::ipv6::{
    self, Chain, FragmentKind, Ipv6Facts, Malformation, next_header as nh,
};
use portcullis_dataplane::wire::nd::{
    self, NdEmit, NdMessage, NdOption, NdViolation, PrefixInfo, RouterAdvertisement,
};
use proptest::prelude::*;
use std::net::Ipv6Addr;

mod support;
/// Puts extension headers between a packet's fixed header and its upper layer.
use support::ipv6::with_exts as chain;

const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const HOST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x5054, 0xff, 0xfe12, 0x3456);
const GLOBAL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_DHCP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const RMAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
const RDNSS: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
];

// ---------------------------------------------------------------------------------
// Builders.
// ---------------------------------------------------------------------------------

fn emit(e: &NdEmit<'_>) -> Vec<u8> {
    let mut buf = vec![0; e.buffer_len()];
    assert_eq!(e.emit(&mut buf), Ok(buf.len()));
    buf
}

fn ra_fields() -> RouterAdvertisement {
    RouterAdvertisement {
        cur_hop_limit: 64,
        flags: 0xc0,
        router_lifetime: 1800,
        reachable_time: 30_000,
        retrans_timer: 1000,
    }
}

const PIO: PrefixInfo = PrefixInfo {
    prefix_len: 64,
    on_link: true,
    autonomous: true,
    valid_lifetime: 86_400,
    preferred_lifetime: 14_400,
    prefix: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
};

/// A rogue RA: link-local source, all-nodes, SLLAO, PIO, MTU, RDNSS.
fn ra() -> Vec<u8> {
    emit(&NdEmit {
        src: ROUTER,
        dst: ALL_NODES,
        message: NdMessage::RouterAdvertisement(ra_fields()),
        options: &[
            NdOption::SourceLinkLayer(RMAC),
            NdOption::PrefixInformation(PIO),
            NdOption::Mtu(1500),
            NdOption::Rdnss {
                lifetime: 600,
                addresses: &RDNSS,
            },
        ],
    })
}

fn na(src: Ipv6Addr, dst: Ipv6Addr, solicited: bool) -> Vec<u8> {
    emit(&NdEmit {
        src,
        dst,
        message: NdMessage::NeighborAdvertisement {
            router: false,
            solicited,
            override_flag: true,
            target: src,
        },
        options: &[NdOption::TargetLinkLayer(MAC)],
    })
}

fn ns(src: Ipv6Addr, dst: Ipv6Addr, target: Ipv6Addr, sllao: bool) -> Vec<u8> {
    let opts = [NdOption::SourceLinkLayer(MAC)];
    emit(&NdEmit {
        src,
        dst,
        message: NdMessage::NeighborSolicitation { target },
        options: if sllao { &opts } else { &[] },
    })
}

/// An options-style extension header (Hop-by-Hop, Destination Options, Routing)
/// of `units + 1` eight-octet units; its Next Header is filled by `chain`.
fn opts_ext(kind: u8, units: u8) -> (u8, Vec<u8>) {
    let mut h = vec![0u8; (usize::from(units) + 1) * 8];
    h[1] = units;
    if kind == nh::HOP_BY_HOP || kind == nh::DESTINATION_OPTIONS {
        // One PadN option filling the rest.
        h[2] = 1;
        h[3] = (h.len() - 4) as u8;
    }
    if kind == nh::ROUTING {
        h[2] = 4; // a Segment Routing-style type with segments left 0
    }
    (kind, h)
}

fn frag_ext(offset: u16, more: bool, id: u32) -> (u8, Vec<u8>) {
    let mut h = vec![0u8; 8];
    h[2..4].copy_from_slice(&((offset << 3) | u16::from(more)).to_be_bytes());
    h[4..8].copy_from_slice(&id.to_be_bytes());
    (nh::FRAGMENT, h)
}

/// AH whose Payload Len field is `field` ((field + 2) * 4 bytes).
fn ah_ext(field: u8) -> (u8, Vec<u8>) {
    let mut h = vec![0u8; (usize::from(field) + 2) * 4];
    h[1] = field;
    h[4..8].copy_from_slice(&0x100u32.to_be_bytes()); // SPI
    (nh::AH, h)
}

/// Splits `pkt` (whose fixed header's Next Header starts the fragmentable part) into
/// two fragments: the first carries `first_units` × 8 bytes of it.
fn fragments(pkt: &[u8], first_units: usize, id: u32) -> (Vec<u8>, Vec<u8>) {
    let part = &pkt[40..];
    let cut = first_units * 8;
    let mk = |offset: u16, more: bool, bytes: &[u8]| {
        let mut f = pkt[..40].to_vec();
        let mut h = frag_ext(offset, more, id).1;
        h[0] = pkt[6];
        f[6] = nh::FRAGMENT;
        f.extend_from_slice(&h);
        f.extend_from_slice(bytes);
        let plen = (f.len() - 40) as u16;
        f[4..6].copy_from_slice(&plen.to_be_bytes());
        f
    };
    (
        mk(0, true, &part[..cut]),
        mk(first_units as u16, false, &part[cut..]),
    )
}

fn dhcp_payload(msg: MessageType, options: &[Dhcpv6OptionOut<'_>]) -> Vec<u8> {
    let e = Dhcpv6Emit {
        msg_type: msg,
        transaction_id: 0x00ab_cdef,
        options,
    };
    let mut buf = vec![0; e.buffer_len()];
    assert_eq!(e.emit(&mut buf), Ok(buf.len()));
    buf
}

const CLIENT_DUID: [u8; 14] = [
    0, 1, 0, 1, 0x2c, 0x3d, 0x4e, 0x5f, 0x52, 0x54, 0, 0x12, 0x34, 0x56,
];
const SERVER_DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];

fn reply_payload() -> Vec<u8> {
    dhcp_payload(
        MessageType::Reply,
        &[
            Dhcpv6OptionOut::ClientId(&CLIENT_DUID),
            Dhcpv6OptionOut::ServerId(&SERVER_DUID),
            Dhcpv6OptionOut::IaNa {
                iaid: 7,
                t1: 1800,
                t2: 2880,
                addresses: &[(GLOBAL, 3600, 7200)],
            },
            Dhcpv6OptionOut::RapidCommit,
        ],
    )
}

fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; 48 + payload.len()];
    assert_eq!(
        dhcpv6::emit_udp(&mut buf, &src, &dst, sport, dport, payload),
        Ok(buf.len())
    );
    buf
}

fn walk(l3: &[u8]) -> Ipv6Facts {
    Ipv6Facts::parse(l3).unwrap()
}

/// etherparse's view of a valid chain: (upper protocol, its offset, fragmented).
fn etherparse_upper(l3: &[u8]) -> Option<(u8, usize, bool)> {
    let s = Ipv6Slice::from_slice(l3).ok()?;
    let p = s.payload();
    let offset = p.payload.as_ptr() as usize - l3.as_ptr() as usize;
    Some((p.ip_number.0, offset, s.is_payload_fragmented()))
}

fn lax_upper(l3: &[u8]) -> Option<(u8, usize)> {
    let (s, _) = LaxIpv6Slice::from_slice(l3).ok()?;
    let p = s.payload();
    Some((
        p.ip_number.0,
        p.payload.as_ptr() as usize - l3.as_ptr() as usize,
    ))
}

// ---------------------------------------------------------------------------------
// RFC 8200 header and chain.
// ---------------------------------------------------------------------------------

#[test]
fn plain_ra_is_icmpv6_at_40_as_etherparse_says() {
    let p = ra();
    let f = walk(&p);
    assert_eq!(
        f.chain,
        Chain::Upper {
            protocol: nh::ICMPV6,
            offset: 40
        }
    );
    assert_eq!(f.fragment, None);
    assert_eq!(f.header.hop_limit, 255);
    assert_eq!(f.header.src, ROUTER);
    assert_eq!(f.header.dst, ALL_NODES);
    assert_eq!(etherparse_upper(&p), Some((nh::ICMPV6, 40, false)));
}

#[test]
fn ra_behind_hop_by_hop_and_destination_options_is_found() {
    let p = chain(
        &ra(),
        &[
            opts_ext(nh::HOP_BY_HOP, 0),
            opts_ext(nh::DESTINATION_OPTIONS, 3),
        ],
    );
    let f = walk(&p);
    let offset = 40 + 8 + 32;
    assert_eq!(
        f.chain,
        Chain::Upper {
            protocol: nh::ICMPV6,
            offset
        }
    );
    assert_eq!(f.extension_headers, 2);
    assert_eq!(
        etherparse_upper(&p),
        Some((nh::ICMPV6, offset as usize, false))
    );
    // The checksum does not cover extension headers: the RA still verifies.
    let (_, view) = nd::parse_l3(&p).unwrap();
    assert!(matches!(view.message, NdMessage::RouterAdvertisement(_)));
    assert_eq!(view.violation(&f.header), None);
}

#[test]
fn ra_with_its_icmpv6_header_in_the_second_fragment_is_an_incomplete_chain() {
    // Fragmentable part: Destination Options (24 bytes), then the RA. The first
    // fragment carries the options only.
    let whole = chain(&ra(), &[opts_ext(nh::DESTINATION_OPTIONS, 2)]);
    let (first, second) = fragments(&whole, 3, 0x1234);
    let f1 = walk(&first);
    assert_eq!(f1.chain, Chain::IncompleteChain);
    let frag = f1.fragment.unwrap();
    assert_eq!(frag.kind(), FragmentKind::First);
    assert_eq!((frag.offset, frag.more, frag.id), (0, true, 0x1234));
    assert_eq!(icmpv6::parse(&first, &f1), Err(WireError::NotIpv6Upper));

    let f2 = walk(&second);
    assert_eq!(f2.chain, Chain::NonFirstFragment);
    assert_eq!(f2.fragment_kind(), Some(FragmentKind::NonFirst));
    assert_eq!(f2.fragment.unwrap().offset, 3);
    assert_eq!(icmpv6::parse(&second, &f2), Err(WireError::NotIpv6Upper));

    // A first fragment ending 2 bytes into the ICMPv6 header: still incomplete.
    let (first, _) = fragments(&whole, 3, 1);
    let mut first = first;
    first.extend_from_slice(&whole[40 + 24..40 + 26]);
    let plen = (first.len() - 40) as u16;
    first[4..6].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(walk(&first).chain, Chain::IncompleteChain);
}

#[test]
fn first_fragment_holding_the_icmpv6_header_is_found_but_not_parsed() {
    let whole = ra();
    let (first, _) = fragments(&whole, 1, 9);
    let f = walk(&first);
    assert_eq!(
        f.chain,
        Chain::Upper {
            protocol: nh::ICMPV6,
            offset: 48
        }
    );
    assert_eq!(f.fragment_kind(), Some(FragmentKind::First));
    assert_eq!(etherparse_upper(&first), Some((nh::ICMPV6, 48, true)));
    // Its checksum and body are in two packets: no view, but its type is known.
    assert_eq!(icmpv6::parse(&first, &f), Err(WireError::NotIpv6Upper));
    assert_eq!(
        icmpv6::type_code(&first, &f),
        Some((msg_type::ROUTER_ADVERTISEMENT, 0))
    );
    assert_eq!(icmpv6::type_code(&whole, &walk(&whole)), Some((134, 0)));
    let (_, second) = fragments(&whole, 1, 9);
    assert_eq!(icmpv6::type_code(&second, &walk(&second)), None);
}

#[test]
fn atomic_fragment_is_a_whole_packet() {
    let p = chain(&ra(), &[frag_ext(0, false, 77)]);
    let f = walk(&p);
    assert_eq!(f.fragment_kind(), Some(FragmentKind::Atomic));
    assert_eq!(f.upper(), Some((nh::ICMPV6, 48)));
    assert_eq!(etherparse_upper(&p), Some((nh::ICMPV6, 48, false)));
    let (_, v) = nd::parse_l3(&p).unwrap();
    assert!(v.icmp.checksum_ok);
    // An atomic fragment cut inside its ICMPv6 header is malformed, not incomplete.
    let mut cut = p[..48 + 2].to_vec();
    cut[4..6].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(walk(&cut).chain, Chain::Malformed(Malformation::PastEnd));
}

#[test]
fn unknown_extension_headers_are_unknown_not_upper_layers() {
    for kind in [nh::MOBILITY, nh::HIP, nh::SHIM6, 253, 254] {
        let (_, h) = opts_ext(nh::DESTINATION_OPTIONS, 0);
        let p = chain(&ra(), &[opts_ext(nh::DESTINATION_OPTIONS, 1), (kind, h)]);
        let f = walk(&p);
        assert_eq!(f.chain, Chain::Unknown(kind), "{kind}");
        assert_eq!(f.upper(), None);
        assert_eq!(
            Dhcpv6Facts::classify(&p, &f).candidate,
            Dhcpv6Candidate::Opaque
        );
        assert!(ipv6::is_extension_header(kind));
    }
    // Upper layers we do not read are still upper layers (nothing hides behind them).
    for proto in [nh::TCP, 47, 41, 132] {
        assert!(!ipv6::is_extension_header(proto));
    }
}

#[test]
fn authentication_header_uses_the_rfc_4302_length_rule() {
    // Payload Len 4: (4 + 2) * 4 = 24 bytes.
    let p = chain(&ra(), &[ah_ext(4)]);
    let f = walk(&p);
    assert_eq!(f.upper(), Some((nh::ICMPV6, 64)));
    assert_eq!(etherparse_upper(&p), Some((nh::ICMPV6, 64, false)));
    // Payload Len 1: 12 bytes, not a multiple of 8 for IPv6.
    let p = chain(&ra(), &[ah_ext(1)]);
    assert_eq!(walk(&p).chain, Chain::Malformed(Malformation::BadAhLength));
    // Payload Len 0: 8 bytes, shorter than AH's fixed fields.
    let p = chain(&ra(), &[ah_ext(0)]);
    assert_eq!(walk(&p).chain, Chain::Malformed(Malformation::BadAhLength));
}

#[test]
fn esp_and_no_next_header() {
    let mut esp = ra();
    esp[6] = nh::ESP;
    let f = walk(&esp);
    assert_eq!(f.chain, Chain::Esp { offset: 40 });
    assert_eq!(
        Dhcpv6Facts::classify(&esp, &f).candidate,
        Dhcpv6Candidate::Opaque
    );
    let p = chain(&esp, &[opts_ext(nh::HOP_BY_HOP, 0)]);
    assert_eq!(walk(&p).chain, Chain::Esp { offset: 48 });

    let mut none = ra();
    none[6] = nh::NO_NEXT_HEADER;
    assert_eq!(walk(&none).chain, Chain::NoNextHeader { offset: 40 });
    assert_eq!(
        Dhcpv6Facts::classify(&none, &walk(&none)).candidate,
        Dhcpv6Candidate::No
    );
}

#[test]
fn malformed_chains() {
    use Malformation::*;
    // Hop-by-Hop after another header (RFC 8200 §4.1).
    let p = chain(
        &ra(),
        &[
            opts_ext(nh::DESTINATION_OPTIONS, 0),
            opts_ext(nh::HOP_BY_HOP, 0),
        ],
    );
    assert_eq!(walk(&p).chain, Chain::Malformed(HopByHopNotFirst));
    assert!(Ipv6Slice::from_slice(&p).is_err(), "etherparse agrees");
    // Two Fragment headers.
    let p = chain(&ra(), &[frag_ext(0, false, 1), frag_ext(0, false, 2)]);
    assert_eq!(walk(&p).chain, Chain::Malformed(RepeatedFragment));
    // The bound: 8 extension headers pass, 9 do not.
    let eight: Vec<_> = (0..8)
        .map(|_| opts_ext(nh::DESTINATION_OPTIONS, 0))
        .collect();
    assert_eq!(walk(&chain(&ra(), &eight)).upper(), Some((nh::ICMPV6, 104)));
    assert_eq!(ipv6::MAX_EXTENSION_HEADERS, 8);
    let nine: Vec<_> = (0..9)
        .map(|_| opts_ext(nh::DESTINATION_OPTIONS, 0))
        .collect();
    assert_eq!(
        walk(&chain(&ra(), &nine)).chain,
        Chain::Malformed(TooManyHeaders)
    );
    // An extension header whose length runs past the payload.
    let mut p = chain(&ra(), &[opts_ext(nh::DESTINATION_OPTIONS, 0)]);
    p[41] = 200;
    assert_eq!(walk(&p).chain, Chain::Malformed(PastEnd));
    // An extension header cut before its 8 bytes.
    let mut p = ra()[..44].to_vec();
    p[6] = nh::ROUTING;
    p[4..6].copy_from_slice(&4u16.to_be_bytes());
    assert_eq!(walk(&p).chain, Chain::Malformed(PastEnd));
}

#[test]
fn payload_length_must_match_the_bytes() {
    let p = ra();
    // Longer than the bytes.
    let mut long = p.clone();
    let plen = u16::from_be_bytes([p[4], p[5]]) + 1;
    long[4..6].copy_from_slice(&plen.to_be_bytes());
    assert_eq!(
        walk(&long).chain,
        Chain::Malformed(Malformation::PayloadLength)
    );
    // Zero (a jumbogram).
    let mut zero = p.clone();
    zero[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(
        walk(&zero).chain,
        Chain::Malformed(Malformation::PayloadLength)
    );
    // Trailing bytes after a packet longer than a padded frame.
    let mut trailing = p.clone();
    trailing.extend_from_slice(&[0; 8]);
    assert_eq!(
        walk(&trailing).chain,
        Chain::Malformed(Malformation::PayloadLength)
    );
    // Ethernet padding after a short packet is fine.
    let mut short = p[..41].to_vec();
    short[6] = 47; // GRE: an upper layer whose header this module does not read
    short[4..6].copy_from_slice(&1u16.to_be_bytes());
    short.resize(ipv6::MAX_PADDED_L3, 0);
    let f = walk(&short);
    assert_eq!(f.upper(), Some((47, 40)));
    assert_eq!(f.end, 41);
}

#[test]
fn the_largest_packet_ends_past_65535() {
    // Payload length 65535: the packet ends at 65575 in `l3`.
    let mut p = Vec::new();
    PacketBuilder::ipv6(HOST.octets(), ROUTER.octets(), 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut p, &vec![0xa5; 65535 - 8])
        .unwrap();
    assert_eq!(p.len(), 65575);
    let (f, v) = icmpv6::parse_l3(&p).unwrap();
    assert_eq!(f.end, 65575);
    assert_eq!(v.message.len(), 65535);
    assert!(v.checksum_ok);
}

#[test]
fn fixed_header_errors() {
    let p = ra();
    for len in 0..40 {
        assert_eq!(Ipv6Facts::parse(&p[..len]), Err(WireError::Truncated));
    }
    let mut v4 = p.clone();
    v4[0] = 0x45;
    assert_eq!(Ipv6Facts::parse(&v4), Err(WireError::NotIpv6));
    let h = ipv6::header(&p).unwrap();
    assert_eq!((h.traffic_class, h.flow_label), (0, 0));
}

// ---------------------------------------------------------------------------------
// ICMPv6 checksum (RFC 4443 §2.3) against etherparse.
// ---------------------------------------------------------------------------------

#[test]
fn icmpv6_checksum_agrees_with_etherparse() {
    let mut p = Vec::new();
    PacketBuilder::ipv6(HOST.octets(), ROUTER.octets(), 64)
        .icmpv6_echo_request(0x42, 7)
        .write(&mut p, b"ping payload, odd length")
        .unwrap();
    let (f, v) = icmpv6::parse_l3(&p).unwrap();
    assert_eq!(f.upper(), Some((nh::ICMPV6, 40)));
    assert_eq!((v.msg_type, v.code), (msg_type::ECHO_REQUEST, 0));
    assert!(v.checksum_ok);
    assert_eq!(nd::parse(&v).map(|_| ()), Err(WireError::NotNd));
    // One flipped bit anywhere in the message or the addresses breaks it.
    for at in (8..40).chain(40..p.len()) {
        let mut q = p.clone();
        q[at] ^= 0x10;
        let (_, v) = icmpv6::parse_l3(&q).unwrap();
        assert!(!v.checksum_ok, "bit at {at}");
    }
    // Our emitted RA verifies under etherparse's own checksum.
    let ra = ra();
    let s = etherparse::Icmpv6Slice::from_slice(&ra[40..]).unwrap();
    let hdr = s.header();
    let expected = hdr
        .icmp_type
        .calc_checksum(ROUTER.octets(), ALL_NODES.octets(), s.payload())
        .unwrap();
    assert_eq!(hdr.checksum, expected);
}

// ---------------------------------------------------------------------------------
// Neighbor Discovery (RFC 4861 §4).
// ---------------------------------------------------------------------------------

#[test]
fn ra_fields_and_options() {
    let p = ra();
    let (f, v) = nd::parse_l3(&p).unwrap();
    let NdMessage::RouterAdvertisement(a) = v.message else {
        panic!("{:?}", v.message)
    };
    assert_eq!(a, ra_fields());
    assert!(a.managed() && a.other());
    assert_eq!(v.source_ll, Some(RMAC));
    assert_eq!(v.target_ll, None);
    assert_eq!(v.prefixes().collect::<Vec<_>>(), vec![PIO]);
    let opts: Vec<_> = v.options.map(Result::unwrap).collect();
    assert_eq!(opts.len(), 4);
    assert_eq!(opts[2], NdOption::Mtu(1500));
    assert_eq!(
        opts[3],
        NdOption::Rdnss {
            lifetime: 600,
            addresses: &RDNSS
        }
    );
    assert_eq!(v.violation(&f.header), None);
    // An RA from a global source breaks §6.1.2.
    let mut g = NdEmit {
        src: GLOBAL,
        dst: ALL_NODES,
        message: v.message,
        options: &[],
    };
    let q = emit(&g);
    let (f, v) = nd::parse_l3(&q).unwrap();
    assert_eq!(
        v.violation(&f.header),
        Some(NdViolation::SourceNotLinkLocal)
    );
    g.src = ROUTER;
    let q = emit(&g);
    let (f, v) = nd::parse_l3(&q).unwrap();
    assert_eq!(v.violation(&f.header), None);
}

#[test]
fn validity_is_reported_not_enforced() {
    // Hop limit 64.
    let mut p = ra();
    p[7] = 64;
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(v.violation(&f.header), Some(NdViolation::HopLimit));
    // Code 1, checksum recomputed.
    let mut p = ra();
    p[41] = 1;
    icmpv6::fill_checksum(&mut p[40..], &ROUTER, &ALL_NODES).unwrap();
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(v.violation(&f.header), Some(NdViolation::Code));
    // A bad checksum.
    let mut p = ra();
    p[42] ^= 1;
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(v.violation(&f.header), Some(NdViolation::Checksum));
}

#[test]
fn neighbor_solicitation_and_dad() {
    let target = HOST;
    let sn = nd::solicited_node(&target);
    assert!(nd::is_solicited_node(&sn));
    assert!(!nd::is_solicited_node(&ALL_NODES));
    // DAD: from ::, to the solicited-node group, no SLLAO.
    let p = ns(Ipv6Addr::UNSPECIFIED, sn, target, false);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert!(v.is_dad(&f.header));
    assert_eq!(v.message, NdMessage::NeighborSolicitation { target });
    assert_eq!(v.message.target(), Some(target));
    assert_eq!(v.violation(&f.header), None);
    let p = ns(Ipv6Addr::UNSPECIFIED, sn, target, true);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(
        v.violation(&f.header),
        Some(NdViolation::UnspecifiedWithSllao)
    );
    let p = ns(Ipv6Addr::UNSPECIFIED, ALL_NODES, target, false);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(
        v.violation(&f.header),
        Some(NdViolation::DadNotToSolicitedNode)
    );
    // An ordinary NS with SLLAO.
    let p = ns(HOST, sn, ROUTER, true);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert!(!v.is_dad(&f.header));
    assert_eq!(v.source_ll, Some(MAC));
    assert_eq!(v.violation(&f.header), None);
    let p = ns(HOST, sn, ALL_NODES, true);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(v.violation(&f.header), Some(NdViolation::TargetMulticast));
}

#[test]
fn neighbor_advertisement_flags() {
    let p = na(HOST, ROUTER, true);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(
        v.message,
        NdMessage::NeighborAdvertisement {
            router: false,
            solicited: true,
            override_flag: true,
            target: HOST
        }
    );
    assert_eq!(v.target_ll, Some(MAC));
    assert_eq!(v.violation(&f.header), None);
    let p = na(HOST, ALL_NODES, true);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(
        v.violation(&f.header),
        Some(NdViolation::SolicitedToMulticast)
    );
    let p = na(HOST, ALL_NODES, false);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(v.violation(&f.header), None);
    let p = na(Ipv6Addr::UNSPECIFIED, ALL_NODES, false);
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(v.violation(&f.header), Some(NdViolation::UnspecifiedSource));
    // Each flag bit on its own.
    for (bit, want) in [(0x80, (true, false, false)), (0x40, (false, true, false))] {
        let mut q = p.clone();
        q[44] = bit;
        icmpv6::fill_checksum(&mut q[40..], &HOST, &ALL_NODES).unwrap();
        let (_, v) = nd::parse_l3(&q).unwrap();
        let NdMessage::NeighborAdvertisement {
            router,
            solicited,
            override_flag,
            ..
        } = v.message
        else {
            panic!()
        };
        assert_eq!((router, solicited, override_flag), want);
    }
}

#[test]
fn redirect_and_rs() {
    let inner = [0x60u8; 16];
    let p = emit(&NdEmit {
        src: ROUTER,
        dst: HOST,
        message: NdMessage::Redirect {
            target: Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x99),
            destination: GLOBAL,
        },
        options: &[
            NdOption::TargetLinkLayer(RMAC),
            NdOption::RedirectedHeader(&inner),
        ],
    });
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert!(matches!(v.message, NdMessage::Redirect { destination, .. } if destination == GLOBAL));
    let opts: Vec<_> = v.options.map(Result::unwrap).collect();
    assert_eq!(opts[1], NdOption::RedirectedHeader(&[0x60; 16]));
    assert_eq!(v.violation(&f.header), None);
    // §8.1: the target is link-local or the destination itself.
    for (target, want) in [
        (GLOBAL, None),
        (
            Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            Some(NdViolation::RedirectTarget),
        ),
        (ALL_NODES, Some(NdViolation::TargetMulticast)),
    ] {
        let p = emit(&NdEmit {
            src: ROUTER,
            dst: HOST,
            message: NdMessage::Redirect {
                target,
                destination: GLOBAL,
            },
            options: &[],
        });
        let (f, v) = nd::parse_l3(&p).unwrap();
        assert_eq!(v.violation(&f.header), want, "{target}");
    }
    let p = emit(&NdEmit {
        src: GLOBAL,
        dst: HOST,
        message: v.message,
        options: &[],
    });
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(
        v.violation(&f.header),
        Some(NdViolation::SourceNotLinkLocal)
    );

    let p = emit(&NdEmit {
        src: Ipv6Addr::UNSPECIFIED,
        dst: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
        message: NdMessage::RouterSolicitation,
        options: &[NdOption::SourceLinkLayer(MAC)],
    });
    let (f, v) = nd::parse_l3(&p).unwrap();
    assert_eq!(v.message, NdMessage::RouterSolicitation);
    assert_eq!(
        v.violation(&f.header),
        Some(NdViolation::UnspecifiedWithSllao)
    );
}

/// Rewrites the ICMPv6 message of `p` (options changed) with lengths and checksum
/// fixed.
fn with_options(p: &[u8], fixed: usize, options: &[u8]) -> Vec<u8> {
    let mut q = p[..40 + fixed].to_vec();
    q.extend_from_slice(options);
    let plen = (q.len() - 40) as u16;
    q[4..6].copy_from_slice(&plen.to_be_bytes());
    let (src, dst) = (ipv6::header(&q).unwrap().src, ipv6::header(&q).unwrap().dst);
    icmpv6::fill_checksum(&mut q[40..], &src, &dst).unwrap();
    q
}

#[test]
fn bad_nd_options() {
    let base = na(HOST, ROUTER, true);
    let tllao = [2u8, 1, 2, 0, 0, 0, 0, 1];
    let ok = with_options(&base, 24, &tllao);
    assert!(nd::parse_l3(&ok).is_ok());
    // A zero-length option (RFC 4861 §4.6) makes the message invalid.
    let bad = with_options(&base, 24, &[&tllao[..], &[9, 0, 0, 0, 0, 0, 0, 0]].concat());
    assert_eq!(nd::parse_l3(&bad).map(|_| ()), Err(WireError::BadOption));
    // Past the end.
    let bad = with_options(&base, 24, &[9, 2, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        nd::parse_l3(&bad).map(|_| ()),
        Err(WireError::OptionTruncated)
    );
    // A lone byte after the options.
    let bad = with_options(&base, 24, &[&tllao[..], &[1]].concat());
    assert_eq!(
        nd::parse_l3(&bad).map(|_| ()),
        Err(WireError::OptionTruncated)
    );
    // Link-layer address of length 2 on Ethernet; PIO of length 3; RDNSS of length 2.
    for opt in [
        &[2u8, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0][..],
        &[
            3, 3, 64, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ][..],
        &[25, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
    ] {
        let bad = with_options(&base, 24, opt);
        assert_eq!(
            nd::parse_l3(&bad).map(|_| ()),
            Err(WireError::BadOptionLength),
            "{opt:?}"
        );
    }
    // Two different TLLAOs; the same one twice is fine.
    let two = [&tllao[..], &[2, 1, 2, 0, 0, 0, 0, 2]].concat();
    let bad = with_options(&base, 24, &two);
    assert_eq!(
        nd::parse_l3(&bad).map(|_| ()),
        Err(WireError::ConflictingOption)
    );
    let same = with_options(&base, 24, &[tllao, tllao].concat());
    assert!(nd::parse_l3(&same).is_ok());
    // Unknown options are carried.
    let other = with_options(&base, 24, &[200, 1, 1, 2, 3, 4, 5, 6]);
    let (_, v) = nd::parse_l3(&other).unwrap();
    let mut options = v.options;
    assert_eq!(
        options.next(),
        Some(Ok(NdOption::Other {
            kind: 200,
            data: &[1, 2, 3, 4, 5, 6]
        }))
    );
    // A message shorter than its fixed part.
    let short = with_options(&base, 20, &[]);
    assert_eq!(nd::parse_l3(&short).map(|_| ()), Err(WireError::Truncated));
}

#[test]
fn nd_emit_round_trips_and_needs_room() {
    for p in [ra(), na(HOST, ROUTER, true), ns(HOST, ROUTER, ROUTER, true)] {
        let (f, v) = nd::parse_l3(&p).unwrap();
        assert!(v.icmp.checksum_ok);
        let opts: Vec<_> = v.options.map(Result::unwrap).collect();
        let again = emit(&NdEmit {
            src: f.header.src,
            dst: f.header.dst,
            message: v.message,
            options: &opts,
        });
        assert_eq!(again, p);
        let e = NdEmit {
            src: f.header.src,
            dst: f.header.dst,
            message: v.message,
            options: &opts,
        };
        assert_eq!(e.emit(&mut vec![0; p.len() - 1]), Err(WireError::NoRoom));
        // etherparse reads what we write.
        assert_eq!(etherparse_upper(&p), Some((nh::ICMPV6, 40, false)));
    }
}

// ---------------------------------------------------------------------------------
// DHCPv6 (RFC 8415).
// ---------------------------------------------------------------------------------

#[test]
fn dhcpv6_reply_fields() {
    let m = reply_payload();
    let v = dhcpv6::parse(&m).unwrap();
    assert_eq!(v.msg_type, MessageType::Reply);
    assert!(v.msg_type.is_server_message());
    assert_eq!(v.transaction_id, 0x00ab_cdef);
    assert_eq!(v.client_id.unwrap().bytes(), CLIENT_DUID);
    assert_eq!(v.client_id.unwrap().duid_type(), 1);
    assert_eq!(v.server_id.unwrap().bytes(), SERVER_DUID);
    assert!(v.rapid_commit);
    assert_eq!((v.ia_na_count, v.ia_pd_count), (1, 0));
    let ia = v.ia_nas().next().unwrap();
    assert_eq!((ia.iaid, ia.t1, ia.t2), (7, 1800, 2880));
    let a: Vec<_> = ia.addresses().collect();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].address, a[0].preferred_lifetime, a[0].valid_lifetime),
        (GLOBAL, 3600, 7200)
    );
    assert_eq!(ia.status(), None);
    // dhcproto reads what we write.
    let d = dp::Message::decode(&mut dhcproto::Decoder::new(&m)).unwrap();
    assert_eq!(d.msg_type(), dp::MessageType::Reply);
    assert_eq!(d.xid(), [0xab, 0xcd, 0xef]);
}

#[test]
fn dhcpv6_messages_from_dhcproto() {
    for (t, ours) in [
        (dp::MessageType::Solicit, MessageType::Solicit),
        (dp::MessageType::Advertise, MessageType::Advertise),
        (dp::MessageType::Request, MessageType::Request),
        (dp::MessageType::Reply, MessageType::Reply),
        (dp::MessageType::Release, MessageType::Release),
    ] {
        let mut m = dp::Message::new_with_id(t, [1, 2, 3]);
        m.opts_mut()
            .insert(dp::DhcpOption::ClientId(CLIENT_DUID.to_vec()));
        m.opts_mut().insert(dp::DhcpOption::IANA(dp::IANA {
            id: 9,
            t1: 10,
            t2: 20,
            opts: {
                let mut o = dp::DhcpOptions::new();
                o.insert(dp::DhcpOption::IAAddr(dp::IAAddr {
                    addr: GLOBAL,
                    preferred_life: 100,
                    valid_life: 200,
                    opts: dp::DhcpOptions::new(),
                }));
                o.insert(dp::DhcpOption::StatusCode(dp::StatusCode {
                    status: dp::Status::Success,
                    msg: "ok".into(),
                }));
                o
            },
        }));
        let bytes = m.to_vec().unwrap();
        let v = dhcpv6::parse(&bytes).unwrap();
        assert_eq!(v.msg_type, ours);
        assert_eq!(v.transaction_id, 0x010203);
        assert_eq!(v.client_id.unwrap().bytes(), CLIENT_DUID);
        let ia = v.ia_nas().next().unwrap();
        assert_eq!(ia.iaid, 9);
        assert_eq!(ia.addresses().next().unwrap().address, GLOBAL);
        assert_eq!(
            ia.status().map(|s| (s.code, s.message)),
            Some((0, &b"ok"[..]))
        );
    }
    for t in [1u8, 3, 4, 5, 6, 8, 9, 11, 12] {
        assert!(!MessageType::from(t).is_server_message(), "{t}");
        assert_eq!(MessageType::from(t).code(), t);
    }
}

#[test]
fn dhcpv6_ia_pd() {
    let mut m = dp::Message::new_with_id(dp::MessageType::Reply, [0, 0, 1]);
    m.opts_mut().insert(dp::DhcpOption::IAPD(dp::IAPD {
        id: 5,
        t1: 1,
        t2: 2,
        opts: {
            let mut o = dp::DhcpOptions::new();
            o.insert(dp::DhcpOption::IAPrefix(dp::IAPrefix {
                preferred_lifetime: 30,
                valid_lifetime: 60,
                prefix_len: 56,
                prefix_ip: Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0),
                opts: dp::DhcpOptions::new(),
            }));
            o
        },
    }));
    let bytes = m.to_vec().unwrap();
    let v = dhcpv6::parse(&bytes).unwrap();
    assert_eq!(v.ia_pd_count, 1);
    let pd = v.ia_pds().next().unwrap();
    let p = pd.prefixes().next().unwrap();
    assert_eq!(
        (p.prefix_len, p.preferred_lifetime, p.valid_lifetime),
        (56, 30, 60)
    );
    assert_eq!(p.prefix, Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0));
}

#[test]
fn duid_bounds() {
    for (len, ok) in [(0, false), (2, false), (3, true), (130, true), (131, false)] {
        let duid = vec![0u8; len];
        let m = dhcp_payload(MessageType::Solicit, &[Dhcpv6OptionOut::ClientId(&duid)]);
        assert_eq!(dhcpv6::parse(&m).is_ok(), ok, "client id of {len}");
        let m = dhcp_payload(MessageType::Advertise, &[Dhcpv6OptionOut::ServerId(&duid)]);
        assert_eq!(dhcpv6::parse(&m).is_ok(), ok, "server id of {len}");
        if !ok {
            assert_eq!(dhcpv6::parse(&m), Err(WireError::BadOptionLength));
        }
    }
    // Two different client ids.
    let m = dhcp_payload(
        MessageType::Request,
        &[
            Dhcpv6OptionOut::ClientId(&CLIENT_DUID),
            Dhcpv6OptionOut::ClientId(&SERVER_DUID),
        ],
    );
    assert_eq!(dhcpv6::parse(&m), Err(WireError::ConflictingOption));
}

#[test]
fn dhcpv6_bad_options() {
    let m = reply_payload();
    // An option running past the end, at the top and inside the IA_NA.
    let mut bad = m.clone();
    bad.truncate(bad.len() - 1);
    bad.extend_from_slice(&[0, 99, 0]);
    assert_eq!(dhcpv6::parse(&bad), Err(WireError::OptionTruncated));
    for cut in 0..m.len() {
        // Every truncation is an error or a shorter, well-formed message.
        if let Ok(v) = dhcpv6::parse(&m[..cut]) {
            assert!(v.raw_options().all(|o| o.is_ok()));
        }
    }
    // IA_NA shorter than 12; IA Address shorter than 24; Rapid Commit with a value.
    for opt in [
        Dhcpv6OptionOut::Other {
            code: 3,
            data: &[0; 11],
        },
        Dhcpv6OptionOut::Other {
            code: 3,
            data: &[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 4, 1, 2, 3, 4],
        },
        Dhcpv6OptionOut::Other {
            code: 14,
            data: &[1],
        },
        Dhcpv6OptionOut::Other {
            code: 13,
            data: &[1],
        },
    ] {
        let m = dhcp_payload(MessageType::Reply, &[opt]);
        assert_eq!(
            dhcpv6::parse(&m),
            Err(WireError::BadOptionLength),
            "{opt:?}"
        );
    }
    assert_eq!(dhcpv6::parse(&[]), Err(WireError::Truncated));
    assert_eq!(dhcpv6::parse(&[7, 0, 0]), Err(WireError::Truncated));
}

fn relay(msg: MessageType, hop_count: u8, inner: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; dhcpv6::RELAY_HEADER_LEN + 4 + inner.len()];
    let h = RelayHeader {
        hop_count,
        link_address: GLOBAL,
        peer_address: HOST,
    };
    assert_eq!(dhcpv6::emit_relay(&mut buf, msg, &h, inner), Ok(buf.len()));
    buf
}

#[test]
fn nested_relays() {
    let reply = reply_payload();
    let one = relay(MessageType::RelayRepl, 0, &reply);
    let two = relay(MessageType::RelayRepl, 1, &one);
    let (outer, inner, depth) = dhcpv6::innermost(&two).unwrap();
    assert_eq!(outer.msg_type, MessageType::RelayRepl);
    assert!(outer.msg_type.is_server_message());
    let r = outer.relay.unwrap();
    assert_eq!(
        (r.hop_count, r.link_address, r.peer_address),
        (1, GLOBAL, HOST)
    );
    assert_eq!(depth, 2);
    assert_eq!(inner.msg_type, MessageType::Reply);
    assert_eq!(inner.client_id.unwrap().bytes(), CLIENT_DUID);
    // dhcproto reads the outer relay.
    let d = dp::RelayMessage::decode(&mut dhcproto::Decoder::new(&two)).unwrap();
    assert_eq!(d.hop_count(), 1);

    // The deepest nesting allowed, and one more.
    let mut m = reply.clone();
    for i in 0..dhcpv6::MAX_RELAY_DEPTH {
        m = relay(MessageType::RelayForw, i as u8, &m);
    }
    assert_eq!(dhcpv6::innermost(&m).unwrap().2, dhcpv6::MAX_RELAY_DEPTH);
    let m = relay(MessageType::RelayForw, 9, &m);
    assert_eq!(dhcpv6::innermost(&m).map(|x| x.2), Err(WireError::TooDeep));
    // A relay message without a Relay Message option.
    let empty = &relay(MessageType::RelayRepl, 0, &[])[..dhcpv6::RELAY_HEADER_LEN];
    assert_eq!(dhcpv6::parse(empty).unwrap().relay_message, None);
    assert_eq!(
        dhcpv6::innermost(empty).map(|x| x.2),
        Err(WireError::BadOption)
    );
    // A relay header cut short.
    assert_eq!(dhcpv6::parse(&one[..33]), Err(WireError::Truncated));
}

// ---------------------------------------------------------------------------------
// The DHCPv6 candidate classification (the IPv4 lesson).
// ---------------------------------------------------------------------------------

fn candidate(l3: &[u8]) -> Dhcpv6Candidate {
    Dhcpv6Facts::parse(l3).unwrap().1.candidate
}

#[test]
fn any_udp_to_546_or_547_is_a_candidate_whatever_its_source_port() {
    let m = reply_payload();
    for (sport, dport, want) in [
        (547, 546, Dhcpv6Candidate::Message),
        (1547, 546, Dhcpv6Candidate::Message),
        (53, 546, Dhcpv6Candidate::Message),
        (546, 547, Dhcpv6Candidate::Message),
        (546, 53, Dhcpv6Candidate::No),
        (547, 5460, Dhcpv6Candidate::No),
    ] {
        let p = udp6(ROUTER, HOST, sport, dport, &m);
        let (f, d) = Dhcpv6Facts::parse(&p).unwrap();
        assert_eq!(d.candidate, want, "{sport} -> {dport}");
        let u = d.udp.unwrap();
        assert_eq!((u.sport, u.dport), (sport, dport));
        assert_eq!(&p[u.payload()], &m[..]);
        assert!(dhcpv6::udp_checksum_ok(&p, &f, &u));
    }
    // The checksum agrees with etherparse's, and zero is invalid over IPv6.
    let mut e = Vec::new();
    PacketBuilder::ipv6(ROUTER.octets(), ALL_DHCP.octets(), 1)
        .udp(1547, 546)
        .write(&mut e, &m)
        .unwrap();
    assert_eq!(e, udp6(ROUTER, ALL_DHCP, 1547, 546, &m));
    let (f, d) = Dhcpv6Facts::parse(&e).unwrap();
    assert_eq!(d.candidate, Dhcpv6Candidate::Message);
    let mut z = e.clone();
    z[46..48].copy_from_slice(&[0, 0]);
    assert!(!dhcpv6::udp_checksum_ok(&z, &f, &d.udp.unwrap()));
}

#[test]
fn dhcpv6_behind_extension_headers_fragments_and_bad_udp() {
    let m = reply_payload();
    let p = udp6(ROUTER, HOST, 547, 546, &m);
    // Behind Hop-by-Hop and Destination Options: still a message.
    let q = chain(
        &p,
        &[
            opts_ext(nh::HOP_BY_HOP, 0),
            opts_ext(nh::DESTINATION_OPTIONS, 0),
        ],
    );
    assert_eq!(candidate(&q), Dhcpv6Candidate::Message);
    // An atomic fragment is a whole datagram.
    let q = chain(&p, &[frag_ext(0, false, 3)]);
    assert_eq!(candidate(&q), Dhcpv6Candidate::Message);
    // Both fragments of a split REPLY.
    let (first, second) = fragments(&p, 4, 5);
    assert_eq!(candidate(&first), Dhcpv6Candidate::Fragment);
    // The second fragment reads as UDP to 546 only if crafted so; this one does not.
    assert_eq!(candidate(&second), Dhcpv6Candidate::No);
    let mut crafted = second.clone();
    crafted[48..56].copy_from_slice(&p[40..48]);
    assert_eq!(candidate(&crafted), Dhcpv6Candidate::Fragment);
    // UDP header in the second fragment.
    let q = chain(&p, &[opts_ext(nh::DESTINATION_OPTIONS, 0)]);
    let (first, _) = fragments(&q, 1, 6);
    assert_eq!(candidate(&first), Dhcpv6Candidate::IncompleteChain);
    // UDP length disagreeing with the payload.
    let mut bad = p.clone();
    bad[44..46].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(candidate(&bad), Dhcpv6Candidate::BadUdp);
    let mut bad = p.clone();
    let l = u16::from_be_bytes([p[44], p[45]]) - 1;
    bad[44..46].copy_from_slice(&l.to_be_bytes());
    assert_eq!(candidate(&bad), Dhcpv6Candidate::BadUdp);
    // Hidden behind an unknown header or ESP: opaque.
    let (_, h) = opts_ext(nh::DESTINATION_OPTIONS, 0);
    assert_eq!(
        candidate(&chain(&p, &[(nh::SHIM6, h)])),
        Dhcpv6Candidate::Opaque
    );
    let mut esp = p.clone();
    esp[6] = nh::ESP;
    assert_eq!(candidate(&esp), Dhcpv6Candidate::Opaque);
    // ICMPv6 is not DHCPv6.
    assert_eq!(candidate(&ra()), Dhcpv6Candidate::No);
}

// ---------------------------------------------------------------------------------
// Properties.
// ---------------------------------------------------------------------------------

/// Runs every parser on `l3`; checks the walk's invariants.
fn check_all(l3: &[u8]) {
    let Ok(f) = Ipv6Facts::parse(l3) else {
        return;
    };
    assert!(f.end as usize <= l3.len());
    assert!(usize::from(f.extension_headers) <= ipv6::MAX_EXTENSION_HEADERS);
    if let Chain::Upper { protocol, offset } = f.chain {
        assert!(!ipv6::is_extension_header(protocol));
        assert!(offset as usize + ipv6::upper_header_len(protocol) <= f.end as usize);
        // etherparse agrees on every chain we accept that it walks (no Fragment
        // repeated, Hop-by-Hop first).
        assert_eq!(lax_upper(l3).map(|(p, _)| p), Some(protocol));
        assert_eq!(lax_upper(l3).map(|(_, o)| o), Some(offset as usize));
    }
    if let Ok(icmp) = icmpv6::parse(l3, &f) {
        assert_eq!(icmp.message.len(), f.end as usize - icmp.offset);
        if let Ok(v) = nd::parse(&icmp) {
            assert!({ v.options }.all(|o| o.is_ok()));
            let _ = v.violation(&f.header);
            let _ = v.prefixes().count();
        }
    }
    let d = Dhcpv6Facts::classify(l3, &f);
    if d.candidate == Dhcpv6Candidate::Message {
        let u = d.udp.unwrap();
        let _ = dhcpv6::udp_checksum_ok(l3, &f, &u);
        let payload = &l3[u.payload()];
        if let Ok(v) = dhcpv6::parse(payload) {
            assert!(v.raw_options().all(|o| o.is_ok()));
            for ia in v.ia_nas().chain(v.ia_pds()) {
                let _ = (ia.addresses().count(), ia.prefixes().count(), ia.status());
            }
        }
        let _ = dhcpv6::innermost(payload);
    }
    if let Some(frag) = f.fragment {
        let _ = frag.kind();
    }
}

/// A reader that ignores the payload length and every bound — the most a careless
/// receiver could make of the bytes: follows Hop-by-Hop, Routing, Fragment,
/// Destination Options and AH in any order and number to the end of the buffer,
/// stopping only at a non-first fragment (no stack reads one as a packet). Returns
/// the upper layer and its offset.
fn careless_upper(l3: &[u8]) -> Option<(u8, usize)> {
    let mut next = *l3.get(6)?;
    let mut at = 40;
    loop {
        let h = l3.get(at..at + 8)?;
        let len = match next {
            nh::HOP_BY_HOP | nh::ROUTING | nh::DESTINATION_OPTIONS => (usize::from(h[1]) + 1) * 8,
            nh::AH => (usize::from(h[1]) + 2) * 4,
            nh::FRAGMENT => {
                if u16::from_be_bytes([h[2], h[3]]) >> 3 != 0 {
                    return None;
                }
                8
            }
            _ => return Some((next, at)),
        };
        next = h[0];
        at += len;
    }
}

/// The stages' guarantee: whenever a careless reader could find ICMPv6, or UDP to
/// 546/547, in these bytes, the walk either finds the same thing at the same place
/// or flags the packet (incomplete, unknown, ESP, malformed) — it never says "some
/// other upper layer", "no next header" or "not DHCPv6".
fn check_nothing_hidden(l3: &[u8]) {
    let Ok(f) = Ipv6Facts::parse(l3) else {
        return;
    };
    let Some((proto, at)) = careless_upper(l3) else {
        return;
    };
    let flagged = matches!(
        f.chain,
        Chain::IncompleteChain | Chain::Unknown(_) | Chain::Esp { .. } | Chain::Malformed(_)
    );
    if proto == nh::ICMPV6 {
        assert!(
            flagged || f.upper() == Some((nh::ICMPV6, at)),
            "ICMPv6 at {at} hidden as {:?}",
            f.chain
        );
    }
    let to_dhcp = l3
        .get(at + 2..at + 4)
        .is_some_and(|p| matches!(u16::from_be_bytes([p[0], p[1]]), 546 | 547));
    if proto == nh::UDP && to_dhcp {
        let c = Dhcpv6Facts::classify(l3, &f).candidate;
        assert_ne!(
            c,
            Dhcpv6Candidate::No,
            "UDP to 546/547 at {at} hidden: {:?}",
            f.chain
        );
    }
}

fn arb_ext() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        (0u8..4).prop_map(|u| opts_ext(nh::DESTINATION_OPTIONS, u)),
        (0u8..4).prop_map(|u| opts_ext(nh::ROUTING, u)),
        (1u8..4).prop_map(|u| ah_ext(u * 2)),
    ]
}

#[derive(Debug, Clone)]
enum Base {
    Ra,
    Na,
    Ns,
    Dhcp(u16, u16),
    Relay,
}

fn base_packet(b: &Base) -> Vec<u8> {
    match b {
        Base::Ra => ra(),
        Base::Na => na(HOST, ROUTER, true),
        Base::Ns => ns(
            Ipv6Addr::UNSPECIFIED,
            nd::solicited_node(&HOST),
            HOST,
            false,
        ),
        Base::Dhcp(s, d) => udp6(ROUTER, HOST, *s, *d, &reply_payload()),
        Base::Relay => udp6(
            ROUTER,
            HOST,
            547,
            547,
            &relay(MessageType::RelayRepl, 0, &reply_payload()),
        ),
    }
}

fn arb_base() -> impl Strategy<Value = Base> {
    prop_oneof![
        Just(Base::Ra),
        Just(Base::Na),
        Just(Base::Ns),
        (any::<u16>(), prop_oneof![Just(546u16), Just(547u16)]).prop_map(|(s, d)| Base::Dhcp(s, d)),
        Just(Base::Relay),
    ]
}

/// A valid chain: optional Hop-by-Hop, then up to 6 of Destination Options,
/// Routing, AH, with an optional atomic or first-fragment header among them.
fn arb_chain() -> impl Strategy<Value = (Base, Vec<(u8, Vec<u8>)>)> {
    (
        arb_base(),
        any::<bool>(),
        (0u8..3).prop_map(|u| opts_ext(nh::HOP_BY_HOP, u)),
        proptest::collection::vec(arb_ext(), 0..6),
        proptest::option::of((any::<prop::sample::Index>(), any::<bool>(), any::<u32>())),
    )
        .prop_map(|(b, hbh, h, mut rest, frag)| {
            if let Some((at, more, id)) = frag {
                let i = at.index(rest.len() + 1);
                rest.insert(i, frag_ext(0, more, id));
            }
            if hbh {
                rest.insert(0, h);
            }
            (b, rest)
        })
}

fn config() -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = 2048;
    }
    c
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes_never_panic(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
        version6 in any::<bool>(),
        fix_len in any::<bool>(),
        next in prop_oneof![Just(0u8), Just(43u8), Just(44u8), Just(51u8), Just(58u8), Just(60u8), Just(17u8), any::<u8>()],
    ) {
        if version6 && let Some(b) = bytes.first_mut() {
            *b = 0x60 | (*b & 0x0f);
        }
        if fix_len && bytes.len() >= 40 {
            let plen = (bytes.len() - 40) as u16;
            bytes[4..6].copy_from_slice(&plen.to_be_bytes());
            bytes[6] = next;
        }
        check_all(&bytes);
        let _ = dhcpv6::parse(&bytes);
        let _ = dhcpv6::innermost(&bytes);
        let _ = nd::NdOptions::new(&bytes).count();
        // The common case's read (stages/ipv6_common.rs) says exactly what the walk
        // says of a whole TCP, UDP or ICMPv6 packet without extension headers.
        let simple = portcullis_dataplane::wire::ipv6::simple_upper(&bytes);
        let walked = Ipv6Facts::parse(&bytes).ok().and_then(|f| match f.chain {
            Chain::Upper { protocol: p @ (6 | 17 | 58), offset: 40 } if f.fragment.is_none() => {
                Some((p, f.header.src))
            }
            _ => None,
        });
        prop_assert_eq!(simple, walked);
    }

    /// Every valid chain: the walk finds the upper layer where etherparse does, and
    /// reports the Fragment header's kind as etherparse's "fragmented" flag.
    #[test]
    fn valid_chains_agree_with_etherparse((b, exts) in arb_chain()) {
        let base = base_packet(&b);
        let p = chain(&base, &exts);
        let f = walk(&p);
        let offset = p.len() - (base.len() - 40);
        prop_assert_eq!(f.upper(), Some((base[6], offset)));
        prop_assert_eq!(usize::from(f.extension_headers), exts.len());
        let fragmented = matches!(f.fragment_kind(), Some(FragmentKind::First));
        prop_assert_eq!(etherparse_upper(&p), Some((base[6], offset, fragmented)));
        prop_assert_eq!(lax_upper(&p), Some((base[6], offset)));
        let d = Dhcpv6Facts::classify(&p, &f).candidate;
        match b {
            Base::Dhcp(..) | Base::Relay if fragmented => prop_assert_eq!(d, Dhcpv6Candidate::Fragment),
            Base::Dhcp(..) | Base::Relay => prop_assert_eq!(d, Dhcpv6Candidate::Message),
            _ => {
                prop_assert_eq!(d, Dhcpv6Candidate::No);
                let icmp = icmpv6::parse(&p, &f);
                prop_assert_eq!(icmp.is_ok(), !fragmented);
                if let Ok(icmp) = icmp {
                    prop_assert!(icmp.checksum_ok);
                    let v = nd::parse(&icmp).unwrap();
                    prop_assert_eq!(v.violation(&f.header), None);
                }
            }
        }
        check_all(&p);
    }

    /// The same chains ending in ESP, No Next Header or an upper layer this module
    /// does not read: where etherparse says the payload starts, the walk says ESP,
    /// No Next Header or that upper layer.
    #[test]
    fn other_chain_ends_agree_with_etherparse(
        (b, exts) in arb_chain(),
        last in prop_oneof![Just(nh::ESP), Just(nh::NO_NEXT_HEADER), Just(nh::TCP), Just(47u8), Just(41u8), Just(132u8)],
    ) {
        let mut base = base_packet(&b);
        base[6] = last;
        let p = chain(&base, &exts);
        let offset = p.len() - (base.len() - 40);
        let want = match last {
            nh::ESP => Chain::Esp { offset: offset as u32 },
            nh::NO_NEXT_HEADER => Chain::NoNextHeader { offset: offset as u32 },
            protocol => Chain::Upper { protocol, offset: offset as u32 },
        };
        prop_assert_eq!(walk(&p).chain, want);
        let fragmented = matches!(walk(&p).fragment_kind(), Some(FragmentKind::First));
        prop_assert_eq!(etherparse_upper(&p), Some((last, offset, fragmented)));
        check_all(&p);
    }

    /// The same chains cut anywhere before the end of the upper-layer header: never
    /// "upper layer found"; incomplete only in a first fragment.
    #[test]
    fn cut_chains_are_never_an_upper_layer((b, exts) in arb_chain(), cut in any::<prop::sample::Index>()) {
        let base = base_packet(&b);
        let p = chain(&base, &exts);
        let upper_end = p.len() - (base.len() - 40) + ipv6::upper_header_len(base[6]);
        let at = 41 + cut.index(upper_end - 41);
        let mut q = p[..at].to_vec();
        let plen = (q.len() - 40) as u16;
        q[4..6].copy_from_slice(&plen.to_be_bytes());
        let f = walk(&q);
        prop_assert_eq!(f.upper(), None);
        let first_frag_seen = f.fragment.is_some_and(|fr| fr.kind() == FragmentKind::First);
        if first_frag_seen {
            prop_assert_eq!(f.chain, Chain::IncompleteChain);
        } else {
            prop_assert_eq!(f.chain, Chain::Malformed(Malformation::PastEnd));
        }
        prop_assert_ne!(Dhcpv6Facts::classify(&q, &f).candidate, Dhcpv6Candidate::No);
        check_all(&q);
    }

    /// Random mutations of valid RA/NA/NS/DHCPv6 packets (with and without
    /// extension headers) never panic and keep the invariants.
    #[test]
    fn mutated_packets_never_panic(
        (b, exts) in arb_chain(),
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in proptest::option::of(any::<prop::sample::Index>()),
        fix in any::<bool>(),
    ) {
        let mut p = chain(&base_packet(&b), &exts);
        for (i, v) in &mutations {
            let at = i.index(p.len());
            p[at] = *v;
        }
        if let Some(t) = truncate {
            p.truncate(t.index(p.len() + 1));
        }
        if fix && p.len() >= 40 {
            let plen = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
        }
        check_all(&p);
        check_nothing_hidden(&p);
    }

    /// Chains whose Next Header and length bytes are rewritten at random (the
    /// places an attacker aims at): nothing a careless reader finds is hidden.
    #[test]
    fn rewritten_chains_hide_nothing(
        (b, exts) in arb_chain(),
        edits in proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                any::<bool>(),
                prop_oneof![
                    Just(nh::HOP_BY_HOP), Just(nh::ROUTING), Just(nh::FRAGMENT),
                    Just(nh::ESP), Just(nh::AH), Just(nh::ICMPV6), Just(nh::NO_NEXT_HEADER),
                    Just(nh::DESTINATION_OPTIONS), Just(nh::UDP), Just(nh::TCP),
                    Just(nh::MOBILITY), any::<u8>(),
                ],
            ),
            1..4,
        ),
        fix in any::<bool>(),
    ) {
        let mut p = chain(&base_packet(&b), &exts);
        // The offsets of the fixed header's Next Header and of each extension header.
        let mut heads = vec![6usize];
        let mut at = 40;
        for (_, h) in &exts {
            heads.push(at);
            at += h.len();
        }
        for (i, length, v) in &edits {
            let h = heads[i.index(heads.len())];
            if *length && h != 6 {
                p[h + 1] = *v % 8;
            } else {
                p[h] = *v;
            }
        }
        if fix {
            let plen = (p.len() - 40) as u16;
            p[4..6].copy_from_slice(&plen.to_be_bytes());
        }
        check_all(&p);
        check_nothing_hidden(&p);
    }
}
