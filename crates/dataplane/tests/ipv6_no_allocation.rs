//! The IPv6 wire layer's promise (`wire::ipv6`, `icmpv6`, `nd`, `dhcpv6`): parsing,
//! walking the options and emitting into a caller's buffer allocate nothing. A
//! counting global allocator watches every parser and emitter run over an RA behind
//! extension headers, an NA, a DAD NS, a fragmented RA, a DHCPv6 REPLY with an
//! IA_NA inside two relays, and random bytes.

use portcullis_dataplane::MacAddr;
use portcullis_dataplane::wire::dhcpv6::{
    self, Dhcpv6Emit, Dhcpv6Facts, Dhcpv6OptionOut, MessageType, RelayHeader,
};
use portcullis_dataplane::wire::ipv6::Ipv6Facts;
use portcullis_dataplane::wire::nd::{
    self, NdEmit, NdMessage, NdOption, PrefixInfo, RouterAdvertisement,
};
use portcullis_dataplane::wire::{icmpv6, ipv6};
use std::hint::black_box;
use std::net::Ipv6Addr;

mod support;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
const HOST: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const GLOBAL_ADDR: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const DUID: [u8; 10] = [0, 3, 0, 1, 2, 0, 0, 0, 0, 1];
const RDNSS: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53,
];

/// Everything a stage could call on `l3`, results consumed.
fn read_all(l3: &[u8]) -> usize {
    let mut n = 0;
    let Ok(f) = Ipv6Facts::parse(l3) else {
        return 0;
    };
    n += black_box(f.upper()).map_or(0, |(_, o)| o);
    n += usize::from(icmpv6::type_code(l3, &f).is_some());
    if let Ok(icmp) = icmpv6::parse(l3, &f)
        && let Ok(v) = nd::parse(&icmp)
    {
        n += { v.options }.filter(Result::is_ok).count();
        n += v.prefixes().count();
        n += usize::from(v.violation(&f.header).is_some() || v.is_dad(&f.header));
    }
    let d = Dhcpv6Facts::classify(l3, &f);
    if let Some(u) = d.udp {
        n += usize::from(dhcpv6::udp_checksum_ok(l3, &f, &u));
        if let Ok((outer, inner, depth)) = dhcpv6::innermost(&l3[u.payload()]) {
            n += depth + outer.raw_options().count();
            n += inner.client_id.map_or(0, |c| c.bytes().len());
            for ia in inner.ia_nas().chain(inner.ia_pds()) {
                n += ia.addresses().count() + ia.prefixes().count();
                n += usize::from(ia.status().is_some());
            }
        }
    }
    n
}

#[test]
fn the_ipv6_wire_layer_does_not_allocate() {
    let pio = PrefixInfo {
        prefix_len: 64,
        on_link: true,
        autonomous: true,
        valid_lifetime: 600,
        preferred_lifetime: 300,
        prefix: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0),
    };
    let ra_opts = [
        NdOption::SourceLinkLayer(MacAddr([2, 0, 0, 0, 0, 1])),
        NdOption::PrefixInformation(pio),
        NdOption::Mtu(1500),
        NdOption::Rdnss {
            lifetime: 60,
            addresses: &RDNSS,
        },
    ];
    let ra = NdEmit {
        src: ROUTER,
        dst: ALL_NODES,
        message: NdMessage::RouterAdvertisement(RouterAdvertisement {
            cur_hop_limit: 64,
            flags: 0,
            router_lifetime: 1800,
            reachable_time: 0,
            retrans_timer: 0,
        }),
        options: &ra_opts,
    };
    let na = NdEmit {
        src: HOST,
        dst: ALL_NODES,
        message: NdMessage::NeighborAdvertisement {
            router: false,
            solicited: false,
            override_flag: true,
            target: HOST,
        },
        options: &[NdOption::TargetLinkLayer(MacAddr([2, 0, 0, 0, 0, 2]))],
    };
    let ns = NdEmit {
        src: Ipv6Addr::UNSPECIFIED,
        dst: nd::solicited_node(&HOST),
        message: NdMessage::NeighborSolicitation { target: HOST },
        options: &[],
    };
    let addrs = [(GLOBAL_ADDR, 300, 600)];
    let reply_opts = [
        Dhcpv6OptionOut::ClientId(&DUID),
        Dhcpv6OptionOut::ServerId(&DUID),
        Dhcpv6OptionOut::IaNa {
            iaid: 1,
            t1: 100,
            t2: 200,
            addresses: &addrs,
        },
        Dhcpv6OptionOut::StatusCode {
            code: 0,
            message: b"ok",
        },
    ];
    let reply = Dhcpv6Emit {
        msg_type: MessageType::Reply,
        transaction_id: 7,
        options: &reply_opts,
    };
    let relay = RelayHeader {
        hop_count: 0,
        link_address: GLOBAL_ADDR,
        peer_address: HOST,
    };

    // Buffers and inputs, allocated before counting.
    let mut out = vec![0u8; 2048];
    let mut msg = vec![0u8; 512];
    let mut relay1 = vec![0u8; 512];
    let mut relay2 = vec![0u8; 512];
    let mut ra_hbh = vec![0u8; 40 + 8];
    ra_hbh.resize(ra.buffer_len() + 8, 0);
    let mut noise = vec![0u8; 300];
    let mut x = 0x9e37_79b9u32;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    noise[0] = 0x60;
    noise[4..6].copy_from_slice(&260u16.to_be_bytes());
    noise[6] = 0;

    let (total, allocations) = support::allocations_in(|| {
        let mut total = 0;
        for _ in 0..4 {
            // RA, then the same RA behind a Hop-by-Hop header.
            let n = ra.emit(&mut out).unwrap();
            total += read_all(&out[..n]);
            ra_hbh[..40].copy_from_slice(&out[..40]);
            ra_hbh[6] = ipv6::next_header::HOP_BY_HOP;
            ra_hbh[4..6].copy_from_slice(&((n - 40 + 8) as u16).to_be_bytes());
            ra_hbh[40..48].copy_from_slice(&[ipv6::next_header::ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
            ra_hbh[48..].copy_from_slice(&out[40..n]);
            total += read_all(&ra_hbh);
            // The RA split after 8 bytes of ICMPv6: a first fragment.
            let mut frag = [0u8; 64];
            frag[..40].copy_from_slice(&out[..40]);
            frag[4..6].copy_from_slice(&16u16.to_be_bytes());
            frag[6] = ipv6::next_header::FRAGMENT;
            frag[40..48].copy_from_slice(&[ipv6::next_header::ICMPV6, 0, 0, 1, 0, 0, 0, 9]);
            frag[48..56].copy_from_slice(&out[40..48]);
            total += read_all(&frag[..56]);
            let n = na.emit(&mut out).unwrap();
            total += read_all(&out[..n]);
            let n = ns.emit(&mut out).unwrap();
            total += read_all(&out[..n]);
            // A REPLY inside two relays, in UDP from port 1547.
            let m = reply.emit(&mut msg).unwrap();
            let r1 =
                dhcpv6::emit_relay(&mut relay1, MessageType::RelayRepl, &relay, &msg[..m]).unwrap();
            let r2 = dhcpv6::emit_relay(&mut relay2, MessageType::RelayRepl, &relay, &relay1[..r1])
                .unwrap();
            let n = dhcpv6::emit_udp(&mut out, &ROUTER, &HOST, 1547, 547, &relay2[..r2]).unwrap();
            total += read_all(&out[..n]);
            total += read_all(&noise);
            total += read_all(&noise[..47]);
        }
        total
    });
    assert!(total > 0);
    assert_eq!(allocations, 0, "the IPv6 wire layer allocated");
}
