//! The switch's own wire formats: one module per protocol it reads or writes, over
//! one error type ([`WireError`]). Parsers take the bytes as received and return
//! views (`frame`, `arp`, `dhcp`; for IPv6 first-hop security `ipv6` — the header
//! and the whole extension-header chain — `icmpv6`, `nd` and `dhcpv6`); the `emit`
//! side writes the frames the switch builds itself (a moved guest's announcements: RARP, gratuitous ARP, unsolicited NA, `announce`; ND
//! and DHCPv6 messages, `nd`, `dhcpv6`) and the rewrites it makes (DHCP option 82,
//! `dhcp`).
//!
//! Invariant: nothing here panics, allocates or reads or writes past the slices it is
//! given, whatever the bytes; every failure is a `Copy` [`WireError`] (the frame
//! view's, which the pipeline counts directly, is a [`crate::DropReason`]).

pub mod announce;
pub mod arp;
pub mod dhcp;
pub mod dhcpv6;
pub mod frame;
pub mod icmpv6;
pub mod ipv6;
pub mod nd;
pub mod vxlan;

macro_rules! wire_errors {
    ($( $(#[doc = $doc:expr])* $name:ident => $text:literal, )*) => {
        /// Why bytes are not the packet a parser or rewriter expected. `Copy`, no
        /// formatting: meant to be counted and mapped to a drop reason.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum WireError {
            $( $(#[doc = $doc])* $name, )*
        }

        impl WireError {
            /// Every error, in a stable order.
            pub const ALL: &'static [WireError] = &[$(WireError::$name,)*];

            /// A short, stable snake_case name for counters and logs.
            pub const fn name(self) -> &'static str {
                match self { $(WireError::$name => $text,)* }
            }
        }
    };
}

wire_errors! {
    /// The bytes end before a fixed-size part: the ARP packet (28 bytes), the IPv4
    /// header or its total length, the UDP header, the DHCP fixed header and cookie
    /// (240 bytes), the frame before its EtherType, the IPv6 header (40 bytes), the
    /// ICMPv6 header, an ND message's fixed part, or a DHCPv6 (relay) header.
    Truncated => "truncated",
    /// ARP not for Ethernet/IPv4 (htype 1, ptype 0x0800, hlen 6, plen 4), or a DHCP
    /// message whose hardware is not Ethernet (htype 1, hlen 6).
    Unsupported => "unsupported",
    /// The EtherType is not IPv4, or the IPv4 version is not 4 or its IHL below 5.
    NotIpv4 => "not_ipv4",
    /// An IPv4 fragment (MF set or a non-zero fragment offset).
    Fragmented => "fragmented",
    /// The IPv4 protocol is not UDP (17).
    NotUdp => "not_udp",
    /// IPv4 total length shorter than its header, or UDP length below 8 or past the
    /// IPv4 payload.
    BadLength => "bad_length",
    /// The IPv4 header checksum or a non-zero UDP checksum does not verify.
    BadChecksum => "bad_checksum",
    /// The BOOTP `op` is neither BOOTREQUEST (1) nor BOOTREPLY (2).
    BadOp => "bad_op",
    /// The options do not start with the magic cookie 99.130.83.99.
    BadMagicCookie => "bad_magic_cookie",
    /// An option's length byte is missing, or its value runs past the end (DHCP, ND,
    /// and DHCPv6 at every level of nesting).
    OptionTruncated => "option_truncated",
    /// The options end without an END (255) option.
    MissingEnd => "missing_end",
    /// An option the snooper reads has a length its RFC forbids (53: 1; 50, 51, 54:
    /// 4; 61: at least 2; 82: well-formed sub-options, at least one); an ND option
    /// read by `nd` with the wrong length; a DHCPv6 DUID outside 3..=130 bytes, or an
    /// IA, IA Address, IA Prefix, Status Code or Rapid Commit of the wrong length.
    BadOptionLength => "bad_option_length",
    /// An option repeated with different contents, or option 82 repeated (also: ND
    /// link-layer address options, DHCPv6 Client/Server Identifier and Relay
    /// Message).
    ConflictingOption => "conflicting_option",
    /// Option overload (52) is present: options hidden in `sname`/`file` are refused.
    OptionOverload => "option_overload",
    /// More than [`dhcp::MAX_OPTION_WALK`] options and PAD bytes before END.
    TooManyOptions => "too_many_options",
    /// Inserting option 82 into a message that already has one.
    RelayInfoPresent => "relay_info_present",
    /// The option 82 to insert would be empty or longer than 255 bytes.
    BadRelayInfo => "bad_relay_info",
    /// The output buffer is too small, or the grown datagram would exceed 65535 bytes.
    NoRoom => "no_room",
    /// The IPv6 version is not 6.
    NotIpv6 => "not_ipv6",
    /// The IPv6 header chain does not lead, inside one whole packet, to the upper
    /// layer a parser reads (ICMPv6, UDP), or the packet is a fragment.
    NotIpv6Upper => "not_ipv6_upper",
    /// The ICMPv6 message is not the Neighbor Discovery message parsed (RFC 4861 §4).
    NotNd => "not_nd",
    /// An ND option of length 0 (RFC 4861 §4.6), or a DHCPv6 relay message without a
    /// Relay Message option.
    BadOption => "bad_option",
    /// DHCPv6 relay messages nested deeper than [`dhcpv6::MAX_RELAY_DEPTH`], or more
    /// options than [`dhcpv6::MAX_OPTIONS`].
    TooDeep => "too_deep",
}
