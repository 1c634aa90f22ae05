//! What the pipeline decides for one frame: a [`Verdict`] (forward to a set of ports,
//! or drop with a [`DropReason`]), and where a drop is counted ([`DropSide`]).
//!
//! Invariant: `DropReason` is a closed enum; every drop the data plane makes carries
//! exactly one reason and is counted under it (see `counters.rs`). A forwarded frame
//! never lists its ingress port, never goes uplink → uplink, and only lists ports that
//! carry its VLAN.

use crate::types::{PortId, PortSet, Vid};
use serde::Serialize;

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $name:ident => $text:literal, )*) => {
        /// Why a frame was dropped. Counted per port and direction.
        #[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord, Serialize)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons (size of a per-reason counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// A short, stable snake_case name for APIs, metrics and logs.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$name => $text,)* }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than its Ethernet (14 bytes) or 802.1Q (18 bytes) header.
    Truncated => "truncated",
    /// EtherType/length field in the undefined range 1501..=1535 (IEEE 802.3 §3.2.6).
    BadEthertype => "bad_ethertype",
    /// Source MAC is a group (multicast/broadcast) address or all zeros.
    InvalidSourceMac => "invalid_source_mac",
    /// IEEE 802.1D reserved link-local group address 01:80:c2:00:00:0x (STP, LACP,
    /// 802.1X, LLDP …): a bridge never forwards these.
    LinkLocalReserved => "link_local_reserved",
    /// The port is administratively down or error-disabled.
    PortDown => "port_down",
    /// A tagged frame (not priority-tagged) arrived on an access port, or a double-tagged one.
    TaggedOnAccessPort => "tagged_on_access_port",
    /// The frame's VLAN is not carried by the port (trunk allowed list, no native VLAN).
    VlanNotAllowed => "vlan_not_allowed",
    /// forged_transmits = reject: the source MAC is not the port's effective MAC.
    ForgedTransmit => "forged_transmit",
    /// mac_changes = reject and the port's effective MAC differs from its initial MAC:
    /// frames to the port are dropped.
    MacChangeBlocked => "mac_change_blocked",
    /// The guest moved to (or the first frame claims) a MAC another port owns in this VLAN.
    MacConflict => "mac_conflict",
    /// A frame from an uplink whose source MAC is a local guest MAC (a loop or a spoof).
    Reflection => "reflection",
    /// Unicast from an uplink to a MAC that is not local, and no promiscuous port.
    UnknownUnicast => "unknown_unicast",
    /// The frame needs an uplink and none that carries its VLAN is up.
    NoUplink => "no_uplink",
    /// Unicast to the MAC of the port it came from.
    Hairpin => "hairpin",
    /// Nowhere to deliver it (a flood with no other member of the VLAN).
    NoDestination => "no_destination",
    /// The MAC table is full: the guest's MAC could not be recorded.
    MacTableFull => "mac_table_full",
    /// The port is error-disabled (port security shutdown, storm control …).
    ErrDisabled => "err_disabled",
    /// Port security: a new source MAC beyond the port's maximum.
    SecureMacLimit => "secure_mac_limit",
    /// Port security: a source MAC that is local to another port of the VLAN.
    SecureMacMove => "secure_mac_move",
    /// Storm control: over the port's broadcast/multicast/unknown-unicast rate.
    StormControl => "storm_control",
    /// A MAC ACL denied the frame (a deny rule or the implicit deny).
    MacAclDeny => "mac_acl_deny",
    /// DHCP snooping: a server message (OFFER, ACK, NAK …) from an untrusted port.
    DhcpServerUntrusted => "dhcp_server_untrusted",
    /// DHCP snooping: client hardware address ≠ Ethernet source on an untrusted port.
    DhcpChaddrMismatch => "dhcp_chaddr_mismatch",
    /// DHCP snooping: a client message from an untrusted port already carries option 82.
    DhcpOption82Untrusted => "dhcp_option82_untrusted",
    /// DHCP snooping: RELEASE/DECLINE for a binding held by another port.
    DhcpReleaseForeignPort => "dhcp_release_foreign_port",
    /// DHCP snooping: over the port's DHCP rate (the port is error-disabled).
    DhcpRateLimit => "dhcp_rate_limit",
    /// DHCP snooping: a DHCP message that does not parse, or, from an untrusted
    /// port, UDP to port 67/68 whose UDP length is wrong.
    DhcpMalformed => "dhcp_malformed",
    /// DHCP snooping: an ACK for a client the switch does not know, which would
    /// have reached only untrusted ports (a lease without a binding).
    DhcpAckUnknownClient => "dhcp_ack_unknown_client",
    /// DHCP snooping: from an untrusted port, an IPv4 fragment of UDP to port 67 or
    /// 68 (or a first fragment too short to show its UDP ports): a fragmented DHCP
    /// message cannot be checked (see `dhcp.rs`).
    DhcpFragment => "dhcp_fragment",
    /// DHCP snooping: from an untrusted port, a BOOTREQUEST whose message type no
    /// client sends (LEASEQUERY and its kin, or an unknown type).
    DhcpUnexpectedMessage => "dhcp_unexpected_message",
    /// DHCP snooping: a client message with no trusted port to deliver it to
    /// (client messages reach trusted ports and uplinks only).
    DhcpNoTrustedPort => "dhcp_no_trusted_port",
    /// DHCP snooping: from an untrusted port, an IPv4 packet whose header does not
    /// parse (version, header length, total length): it could be read as anything,
    /// DHCP included.
    Ipv4Malformed => "ipv4_malformed",
    /// The binding table is full: the ACK that would create a binding is dropped.
    BindingTableFull => "binding_table_full",
    /// The binding store could not commit: the ACK is dropped (fail closed).
    BindingStoreFailed => "binding_store_failed",
    /// Dynamic ARP inspection: no binding (or ACL entry) for the sender (MAC, IP).
    ArpNoBinding => "arp_no_binding",
    /// Dynamic ARP inspection: a validate check failed (src-mac, dst-mac, ip).
    ArpInvalid => "arp_invalid",
    /// Dynamic ARP inspection: an ARP ACL denied it.
    ArpAclDeny => "arp_acl_deny",
    /// Dynamic ARP inspection: over the port's ARP rate (the port is error-disabled).
    ArpRateLimit => "arp_rate_limit",
    /// Dynamic ARP inspection: an ARP message that does not parse.
    ArpMalformed => "arp_malformed",
    /// IP Source Guard: the IPv4 source (and MAC) is not bound to the port.
    IpSourceGuard => "ip_source_guard",
    /// Duplicate IP detection: a claim (ARP sender, binding) of an address bound to
    /// or recently seen from another MAC. Never a drop — detection only: counted in
    /// `observed` on the claimant's port, the frame goes on (see
    /// `stages/ip_conflict.rs`).
    IpConflict => "ip_conflict",
    /// DHCP snooping: a DHCPACK for an address another binding holds — a configured
    /// static or API binding, or a live lease of another MAC. The ACK is dropped so
    /// the client gets no lease IP Source Guard would not honour (see
    /// `bindings::claim`).
    DhcpBindingConflict => "dhcp_binding_conflict",
    /// RA guard: a Router Advertisement or Redirect (ICMPv6 134, 137) from an
    /// untrusted port — also behind extension headers or in a first fragment.
    RaGuardRouterMessage => "ra_guard_router_message",
    /// RA guard: from an untrusted port, a first fragment whose IPv6 header chain
    /// does not reach the upper-layer header (RFC 7112, RFC 7113 §3).
    Ipv6IncompleteChain => "ipv6_incomplete_chain",
    /// RA guard: from an untrusted port, an extension header the switch does not
    /// walk (Mobility, HIP, Shim6, experimental): what follows it is unknown.
    Ipv6UnknownHeader => "ipv6_unknown_header",
    /// RA guard: from an untrusted port, an IPv6 packet whose header or extension
    /// header chain does not parse (lengths, order, too many headers).
    Ipv6Malformed => "ipv6_malformed",
    /// ND inspection (FCFS-SAVI, RFC 6620): from an untrusted port, a claim of an
    /// address bound to another port or MAC — DAD for it (DAD stealing), an NA for
    /// it (NA spoofing), or a packet from it.
    NdAddressOwned => "nd_address_owned",
    /// ND inspection: a Source or Target Link-Layer Address option that is not the
    /// frame's source MAC (RFC 4861 §7.2: the neighbour cache would take it).
    NdLinkLayerMismatch => "nd_link_layer_mismatch",
    /// ND inspection: an unsolicited NA with the Override flag for an address the
    /// sender does not hold (RFC 4861 §7.2.5: it would overwrite a cache entry).
    NdUnsolicitedOverride => "nd_unsolicited_override",
    /// ND inspection: a new binding beyond the port's `max_addresses`.
    NdMaxAddresses => "nd_max_addresses",
    /// ND inspection: over the port's ND rate (the port is error-disabled in
    /// enforce mode).
    NdRateLimit => "nd_rate_limit",
    /// ND inspection: an NS or NA that fails RFC 4861 §7.1 validity (hop limit,
    /// code, checksum, options, DAD rules).
    NdMalformed => "nd_malformed",
    /// IPv6 Source Guard: the IPv6 source is not bound to the port (or, in `ip-mac`
    /// mode, is bound to another MAC); `::` other than DAD, MLD or a DHCPv6 client.
    Ipv6SourceGuard => "ipv6_source_guard",
    /// DHCPv6 guard: a server message (ADVERTISE, REPLY, RECONFIGURE, RELAY-REPL,
    /// or a relay message whose innermost message is one) — or anything UDP to the
    /// client port 546 — from an untrusted port, whatever its UDP source port.
    Dhcpv6ServerUntrusted => "dhcpv6_server_untrusted",
    /// DHCPv6 guard: from an untrusted port, a fragment of UDP to port 546 or 547
    /// (a first fragment without its UDP header is `ipv6_incomplete_chain`).
    Dhcpv6Fragment => "dhcpv6_fragment",
    /// DHCPv6 guard: from an untrusted port, a DHCPv6 candidate that does not parse
    /// (UDP length, options, relay nesting). A hidden upper layer is refused under
    /// the `ipv6_*` reasons.
    Dhcpv6Malformed => "dhcpv6_malformed",
    /// DHCPv6 guard: over the port's DHCPv6 rate (the port is error-disabled).
    Dhcpv6RateLimit => "dhcpv6_rate_limit",
    /// DHCPv6 guard: a RELEASE/DECLINE for an address bound on another port, to
    /// another MAC or to another DUID.
    Dhcpv6ReleaseForeignPort => "dhcpv6_release_foreign_port",
    /// DHCPv6 snooping: a REPLY for an address another binding holds
    /// (`bindings::claim`).
    Dhcpv6BindingConflict => "dhcpv6_binding_conflict",
    /// DHCPv6 guard: a client message with no trusted port left to deliver it to.
    Dhcpv6NoTrustedPort => "dhcpv6_no_trusted_port",
    /// DHCPv6 snooping: a REPLY for a client the switch does not know, which
    /// would have reached only untrusted ports (an address without a binding).
    Dhcpv6ReplyUnknownClient => "dhcpv6_reply_unknown_client",
    /// A VXLAN datagram from an address that is not a tunnel endpoint of the overlay.
    OverlayUnknownEndpoint => "overlay_unknown_endpoint",
    /// A VXLAN datagram without the I flag, with a VNI this host does not map, or
    /// whose inner frame is short or 802.1Q-tagged (RFC 7348 §5, §6.1).
    OverlayBadHeader => "overlay_bad_header",
    /// A frame from a tunnel endpoint whose source MAC is not a guest MAC behind
    /// that endpoint (spoofing through the overlay).
    OverlayForgedSource => "overlay_forged_source",
    /// An ARP request the overlay's ARP proxy answered from the binding table (the
    /// switch sent the reply; the request was not flooded). Not an attack.
    ArpProxyAnswered => "arp_proxy_answered",
}

/// Where a forwarded frame goes and how it is encapsulated.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Forward {
    /// The VLAN the frame belongs to.
    pub vid: Vid,
    /// 802.1p priority (PCP) and DEI bits from the ingress tag, kept on egress tags.
    pub pcp_dei: u8,
    /// Offset in the received bytes of the EtherType that follows the VLAN tag the
    /// switch consumed: egress bytes are `data[..12]`, the egress tag (if any), then
    /// `data[body_offset..]`.
    pub body_offset: u16,
    /// The output ports.
    pub out: PortSet,
    /// A change to the copies' bytes (DHCP option 82), made by [`crate::Switch::output`].
    pub rewrite: Rewrite,
    /// Where the copy to the overlay port (if `out` has it) is tunneled to.
    pub tunnel: crate::overlay::Tunnel,
}

/// A change to a forwarded frame's bytes. Only DHCP snooping asks for one;
/// [`crate::Switch::output`] makes it in the switch's own buffer (`egress.rs`, with
/// `dhcp::insert_option82`, `strip_option82`) — the received bytes are never written.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Rewrite {
    #[default]
    None,
    /// Insert option 82 (circuit-id: switch/port of the ingress port; remote-id:
    /// the switch name) into a client message from an untrusted port.
    InsertOption82,
    /// Strip option 82 from a server message going to untrusted ports.
    StripOption82,
}

/// The pipeline's decision for one frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    Forward(Forward),
    Drop(DropReason),
    /// A DHCPACK to hold until its binding is durable (DESIGN.md §3, durability
    /// rule): the runtime commits the binding, then calls
    /// [`crate::Switch::release_held`] and sends the frame as `Forward` says — or
    /// drops it if the commit failed. Not yet counted as sent.
    Hold(Forward, crate::bindings::BindingUpdate),
}

impl Verdict {
    pub fn drop_reason(&self) -> Option<DropReason> {
        match self {
            Verdict::Drop(r) => Some(*r),
            Verdict::Forward(_) | Verdict::Hold(..) => None,
        }
    }
    pub fn out_ports(&self) -> PortSet {
        match self {
            Verdict::Forward(f) | Verdict::Hold(f, _) => f.out,
            Verdict::Drop(_) => PortSet::EMPTY,
        }
    }
}

/// Where a drop was decided: on the way in (ingress port) or at an output port.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DropSide {
    Ingress,
    Egress(PortId),
    /// Already counted on the ports concerned (outbound ACLs refusing every copy).
    Counted,
}
