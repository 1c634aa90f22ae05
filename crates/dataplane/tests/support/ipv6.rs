//! IPv6 builders for the first-hop security tests: ND messages written by the
//! crate's own `nd` emitter, an ICMPv6 echo, extension headers spliced into a
//! packet, and a packet split into two fragments. All return the L3 bytes (after
//! the EtherType); `eth6` wraps them in a frame.

use portcullis_dataplane::MacAddr;
use portcullis_dataplane::wire::icmpv6::{self, msg_type};
use portcullis_dataplane::wire::ipv6::{self, next_header as nh};
use portcullis_dataplane::wire::nd::{
    NdEmit, NdMessage, NdOption, PrefixInfo, RouterAdvertisement,
};
use std::net::Ipv6Addr;

/// A link-local address fe80::`last`.
pub fn ll(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
}
/// An address of the lab's IPv6 prefix fd00:198:18:10::`last`.
pub fn ula(last: u16) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x198, 0x18, 0x10, 0, 0, 0, last)
}
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// 33:33:00:00:00:01, the all-nodes group's MAC (RFC 2464 §7).
pub const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

/// An Ethernet frame carrying the IPv6 packet `l3`.
pub fn eth6(dst: MacAddr, src: MacAddr, l3: &[u8]) -> Vec<u8> {
    super::build::eth(dst, src, ipv6::ETHERTYPE, l3)
}

/// An ND message from `src` to `dst`, as the crate emits it.
pub fn nd(src: Ipv6Addr, dst: Ipv6Addr, message: NdMessage, options: &[NdOption<'_>]) -> Vec<u8> {
    let e = NdEmit {
        src,
        dst,
        message,
        options,
    };
    let mut buf = vec![0; e.buffer_len()];
    assert_eq!(e.emit(&mut buf), Ok(buf.len()));
    buf
}

/// A Router Advertisement from `router` (link-local) with `lladdr`, announcing
/// fd00:198:18:10::/64 for SLAAC and a default route.
pub fn ra(router: Ipv6Addr, lladdr: MacAddr) -> Vec<u8> {
    let fields = RouterAdvertisement {
        cur_hop_limit: 64,
        flags: 0,
        router_lifetime: 1800,
        reachable_time: 0,
        retrans_timer: 0,
    };
    let pio = PrefixInfo {
        prefix_len: 64,
        on_link: true,
        autonomous: true,
        valid_lifetime: 86_400,
        preferred_lifetime: 14_400,
        prefix: ula(0),
    };
    nd(
        router,
        ALL_NODES,
        NdMessage::RouterAdvertisement(fields),
        &[
            NdOption::SourceLinkLayer(lladdr),
            NdOption::PrefixInformation(pio),
            NdOption::Mtu(1500),
        ],
    )
}

/// A Redirect from `router` telling `victim` to reach `destination` by `target`.
pub fn redirect(
    router: Ipv6Addr,
    victim: Ipv6Addr,
    target: Ipv6Addr,
    destination: Ipv6Addr,
) -> Vec<u8> {
    nd(
        router,
        victim,
        NdMessage::Redirect {
            target,
            destination,
        },
        &[],
    )
}

/// An Echo Request (RFC 4443 §4.1) with 8 bytes of data.
pub fn echo(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    let mut msg = vec![msg_type::ECHO_REQUEST, 0, 0, 0, 0, 1, 0, 1];
    msg.extend_from_slice(b"portcull");
    icmpv6::fill_checksum(&mut msg, &src, &dst).unwrap();
    let mut pkt = vec![0; ipv6::HEADER_LEN];
    ipv6::emit_header(&mut pkt, msg.len() as u16, nh::ICMPV6, 64, &src, &dst).unwrap();
    pkt.extend_from_slice(&msg);
    pkt
}

/// An options-style extension header (Hop-by-Hop, Destination Options) of
/// `units + 1` eight-octet units holding one PadN; `with_exts` fills its Next Header.
pub fn pad_ext(kind: u8, units: u8) -> (u8, Vec<u8>) {
    let mut h = vec![0u8; (usize::from(units) + 1) * 8];
    h[1] = units;
    h[2] = 1;
    h[3] = (h.len() - 4) as u8;
    (kind, h)
}

/// `pkt` with `exts` between its fixed header and its upper layer, the Next Header
/// fields chained and the payload length fixed.
pub fn with_exts(pkt: &[u8], exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let upper = pkt[6];
    let mut out = pkt[..40].to_vec();
    let mut next_at = 6;
    for (kind, h) in exts {
        out[next_at] = *kind;
        next_at = out.len();
        out.extend_from_slice(h);
    }
    out[next_at] = upper;
    out.extend_from_slice(&pkt[40..]);
    let plen = (out.len() - 40) as u16;
    out[4..6].copy_from_slice(&plen.to_be_bytes());
    out
}

/// `pkt` split after `first_units` × 8 bytes of everything after its fixed header
/// (extension headers included) into a first and a last fragment.
pub fn split(pkt: &[u8], first_units: usize, id: u32) -> (Vec<u8>, Vec<u8>) {
    let part = &pkt[40..];
    let cut = first_units * 8;
    let frag = |offset: usize, more: bool, bytes: &[u8]| {
        let mut f = pkt[..40].to_vec();
        f[6] = nh::FRAGMENT;
        f.extend_from_slice(&[pkt[6], 0]);
        f.extend_from_slice(&(((offset as u16) << 3) | u16::from(more)).to_be_bytes());
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(bytes);
        let plen = (f.len() - 40) as u16;
        f[4..6].copy_from_slice(&plen.to_be_bytes());
        f
    };
    (
        frag(0, true, &part[..cut]),
        frag(first_units, false, &part[cut..]),
    )
}

/// An MLDv2 Report (ICMPv6 143, no records) from `src` to ff02::16, behind a
/// Hop-by-Hop header with a Router Alert option when `router_alert` (RFC 3810 §5).
pub fn mld_report(src: Ipv6Addr, router_alert: bool) -> Vec<u8> {
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
    let mut msg = vec![msg_type::MLDV2_REPORT, 0, 0, 0, 0, 0, 0, 0];
    icmpv6::fill_checksum(&mut msg, &src, &dst).unwrap();
    let mut pkt = vec![0; ipv6::HEADER_LEN];
    ipv6::emit_header(&mut pkt, msg.len() as u16, nh::ICMPV6, 1, &src, &dst).unwrap();
    pkt.extend_from_slice(&msg);
    // Router Alert (type 5, length 2, value 0: MLD), then a PadN of 2.
    let hbh = if router_alert {
        vec![0, 0, 5, 2, 0, 0, 1, 0]
    } else {
        vec![0, 0, 1, 4, 0, 0, 0, 0]
    };
    with_exts(&pkt, &[(nh::HOP_BY_HOP, hbh)])
}

/// A UDP datagram from `src`:`sport` to `dst`:`dport` with 8 bytes of payload
/// (its checksum left zero: no stage here reads it).
pub fn udp6_probe(src: Ipv6Addr, sport: u16, dst: Ipv6Addr, dport: u16) -> Vec<u8> {
    let mut pkt = vec![0; ipv6::HEADER_LEN];
    ipv6::emit_header(&mut pkt, 16, nh::UDP, 64, &src, &dst).unwrap();
    pkt.extend_from_slice(&sport.to_be_bytes());
    pkt.extend_from_slice(&dport.to_be_bytes());
    pkt.extend_from_slice(&16u16.to_be_bytes());
    pkt.extend_from_slice(&[0, 0, 1, 0x12, 0x34, 0x56, 0, 0, 0, 0]);
    pkt
}

/// Duplicate Address Detection for `target` (RFC 4862 §5.4.2): an NS from `::` to
/// the target's solicited-node group, without options.
pub fn dad(target: Ipv6Addr) -> Vec<u8> {
    nd(
        Ipv6Addr::UNSPECIFIED,
        portcullis_dataplane::wire::nd::solicited_node(&target),
        NdMessage::NeighborSolicitation { target },
        &[],
    )
}

/// Where a sloppy host finds the upper layer of `l3`: (protocol, offset). It ignores
/// the payload length (reads to the end of the frame, padding included), walks
/// every extension header it can skip by its length field — the unknown ones too,
/// as a host that knows Mobility or HIP would — and follows a first or atomic
/// fragment. `None`: no IPv6, a non-first fragment, or a header past the end. The
/// judge of the guards' property tests (never the crate's own parser).
pub fn sloppy_upper(l3: &[u8]) -> Option<(u8, usize)> {
    if l3.len() < 40 || l3[0] >> 4 != 6 {
        return None;
    }
    let mut next = l3[6];
    let mut at = 40usize;
    for _ in 0..64 {
        let h = l3.get(at..)?;
        match next {
            nh::FRAGMENT => {
                let [n, _, hi, lo, ..] = h else { return None };
                if u16::from_be_bytes([*hi, *lo]) >> 3 != 0 {
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
            upper => return Some((upper, at)),
        }
    }
    None
}
