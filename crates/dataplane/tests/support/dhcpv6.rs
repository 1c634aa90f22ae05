//! DHCPv6 builders for the DHCPv6 guard tests: client and server messages written
//! by the crate's own `dhcpv6` emitter, relay wrapping, and the IPv6/UDP datagram
//! around them. All return L3 bytes (after the EtherType) unless said otherwise;
//! `ipv6::eth6` wraps them in a frame.

use portcullis_dataplane::MacAddr;
use portcullis_dataplane::wire::dhcpv6::{
    self, CLIENT_PORT, Dhcpv6Emit, Dhcpv6OptionOut as Opt, MessageType, RelayHeader, SERVER_PORT,
};
use std::net::Ipv6Addr;

/// ff02::1:2, All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1).
pub const ALL_DHCP: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// Its MAC, 33:33:00:01:00:02 (RFC 2464 §7).
pub const ALL_DHCP_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 1, 0, 2]);

/// A DUID-LL (type 3, hardware type 1) of `m`: 10 bytes, kept inline.
pub fn duid_ll(m: MacAddr) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend_from_slice(&m.0);
    d
}

/// A DUID-EN (type 2) of 40 bytes: longer than a binding keeps inline.
pub fn duid_en(seed: u8) -> Vec<u8> {
    let mut d = vec![0, 2, 0, 0, 0x9d, 0x10];
    d.extend_from_slice(&[seed; 34]);
    d
}

/// A DHCPv6 message (the UDP payload) of `msg_type` with `options`.
pub fn message(msg_type: MessageType, xid: u32, options: &[Opt<'_>]) -> Vec<u8> {
    let e = Dhcpv6Emit {
        msg_type,
        transaction_id: xid,
        options,
    };
    let mut buf = vec![0; e.buffer_len()];
    assert_eq!(e.emit(&mut buf), Ok(buf.len()));
    buf
}

/// A client message: Client Identifier `duid`, an IA_NA (IAID 1) with `addresses`
/// (address, preferred, valid) — empty for a SOLICIT — and an Elapsed Time.
pub fn client(
    msg_type: MessageType,
    xid: u32,
    duid: &[u8],
    addresses: &[(Ipv6Addr, u32, u32)],
) -> Vec<u8> {
    message(
        msg_type,
        xid,
        &[
            Opt::ClientId(duid),
            Opt::ElapsedTime(0),
            Opt::IaNa {
                iaid: 1,
                t1: 0,
                t2: 0,
                addresses,
            },
        ],
    )
}

/// The server's DUID in these tests.
pub fn server_duid() -> Vec<u8> {
    duid_ll(MacAddr([0x52, 0x54, 0, 0, 0, 1]))
}

/// A server message (ADVERTISE, REPLY …) to the client `client_duid`, giving
/// `addresses` (address, preferred, valid) in an IA_NA (IAID 1).
pub fn server(
    msg_type: MessageType,
    xid: u32,
    client_duid: &[u8],
    addresses: &[(Ipv6Addr, u32, u32)],
) -> Vec<u8> {
    let sid = server_duid();
    message(
        msg_type,
        xid,
        &[
            Opt::ClientId(client_duid),
            Opt::ServerId(&sid),
            Opt::IaNa {
                iaid: 1,
                t1: 1800,
                t2: 2880,
                addresses,
            },
        ],
    )
}

/// `inner` wrapped in a relay message of `msg_type` (RELAY-FORW or RELAY-REPL).
pub fn relay(msg_type: MessageType, inner: &[u8]) -> Vec<u8> {
    let h = RelayHeader {
        hop_count: 0,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: super::ipv6::ll(2),
    };
    let mut buf = vec![0; dhcpv6::RELAY_HEADER_LEN + 4 + inner.len()];
    let n = dhcpv6::emit_relay(&mut buf, msg_type, &h, inner).unwrap();
    buf.truncate(n);
    buf
}

/// The IPv6/UDP datagram carrying `payload` from `src`:`sport` to `dst`:`dport`.
pub fn udp6(src: Ipv6Addr, dst: Ipv6Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0; 48 + payload.len()];
    let n = dhcpv6::emit_udp(&mut buf, &src, &dst, sport, dport, payload).unwrap();
    buf.truncate(n);
    buf
}

/// A client's message from its link-local `src` to All_DHCP (546 → 547).
pub fn to_servers(src: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    udp6(src, ALL_DHCP, CLIENT_PORT, SERVER_PORT, payload)
}

/// A server's message from its link-local `src` to the client's link-local `dst`
/// (547 → 546), as a relay-less server sends it.
pub fn to_client(src: Ipv6Addr, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    udp6(src, dst, SERVER_PORT, CLIENT_PORT, payload)
}
