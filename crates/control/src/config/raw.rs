//! The configuration exactly as written: serde structures that check the shape
//! (known keys, value types, required keys) and nothing else. Value domains (VLAN
//! ranges, MAC syntax, policy words) are checked afterwards, so that all of those
//! errors are reported at once. This is the assembly of the shape: each
//! feature's own table (`Raw*`) lives in its module under `features/`.

use super::features::*;
use super::management::RawManagement;
use super::value::RawVlan;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;

/// A profile file: the profile, and optionally the host binding.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProfileFile {
    pub switch: RawSwitch,
    pub uplink_policy: Option<RawUplinkPolicy>,
    #[serde(default)]
    pub port_group: Vec<RawPortGroup>,
    #[serde(default)]
    pub mac_acl: Vec<RawMacAcl>,
    #[serde(default)]
    pub arp_acl: Vec<RawArpAcl>,
    pub overlay: Option<RawOverlay>,
    pub host: Option<RawHost>,
    /// Accepted by the shape only to be refused with a precise message: static
    /// bindings name ports, so they belong to the host binding.
    pub static_binding: Option<de::IgnoredAny>,
    /// Likewise: management identities and keys are host-specific.
    pub management: Option<de::IgnoredAny>,
}

/// A separate host-binding file: only `[host]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHostFile {
    pub host: RawHost,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUplinkPolicy {
    pub uplinks: Vec<String>,
    pub allowed_vlans: Vec<RawVlan>,
    pub native_vlan: Option<i64>,
    pub storm_control: Option<RawStormControl>,
    pub mac_acl_in: Option<String>,
    pub mac_acl_out: Option<String>,
    pub dhcp_trusted: Option<bool>,
    pub arp_trusted: Option<bool>,
    pub ra_trusted: Option<bool>,
    pub nd_trusted: Option<bool>,
    pub dhcpv6_trusted: Option<bool>,
    /// Accepted by the shape only to be refused with a precise message: port
    /// security applies to guest ports.
    pub port_security: Option<de::IgnoredAny>,
    /// Likewise: the uplinks' part in DHCP snooping and ARP inspection is
    /// `dhcp_trusted` / `arp_trusted`, and IP Source Guard is for guest ports.
    pub dhcp_snooping: Option<de::IgnoredAny>,
    pub arp_inspection: Option<de::IgnoredAny>,
    pub ip_source_guard: Option<de::IgnoredAny>,
    /// Likewise: the uplinks' part in RA guard is `ra_trusted`.
    pub ra_guard: Option<de::IgnoredAny>,
    /// Likewise: the uplinks' part in ND inspection is `nd_trusted`; IPv6 Source
    /// Guard applies to guest ports.
    pub nd_inspection: Option<de::IgnoredAny>,
    pub ipv6_source_guard: Option<de::IgnoredAny>,
    /// Likewise: the uplinks' part in DHCPv6 guard is `dhcpv6_trusted`.
    pub dhcpv6_guard: Option<de::IgnoredAny>,
    /// Likewise: teaming is a guest port's choice among the uplinks.
    pub teaming: Option<de::IgnoredAny>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPortGroup {
    pub name: String,
    pub vlan: Option<i64>,
    pub vlans: Option<Vec<RawVlan>>,
    pub native_vlan: Option<i64>,
    #[serde(default)]
    pub security: RawSecurity,
    pub port_security: Option<RawPortSecurity>,
    pub storm_control: Option<RawStormControl>,
    pub mac_acl_in: Option<String>,
    pub mac_acl_out: Option<String>,
    pub dhcp_snooping: Option<RawDhcpSnooping>,
    pub arp_inspection: Option<RawArpInspection>,
    pub ip_source_guard: Option<RawIpSourceGuard>,
    pub ra_guard: Option<RawRaGuard>,
    pub nd_inspection: Option<RawNdInspection>,
    pub ipv6_source_guard: Option<RawIpSourceGuard>,
    pub dhcpv6_guard: Option<RawDhcpv6Guard>,
    pub teaming: Option<RawTeaming>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHost {
    #[serde(default)]
    pub uplinks: RawUplinkMap,
    #[serde(default)]
    pub port: Vec<RawHostPort>,
    /// `[host.uplink_backend]`: logical uplink → I/O backend name.
    #[serde(default)]
    pub uplink_backend: RawUplinkMap,
    #[serde(default)]
    pub static_binding: Vec<RawStaticBinding>,
    pub management: Option<RawManagement>,
    /// Make a dummy netdev named after the switch (the ovs-vsctl front's bridge).
    #[serde(default)]
    pub bridge_netdev: bool,
    /// `[host.overlay]`: this host's tunnel endpoint.
    pub overlay: Option<RawHostOverlay>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHostPort {
    pub name: String,
    /// The Linux interface; absent on a vhost-user port.
    pub interface: Option<String>,
    /// `vhost_user = { socket, mode }`: a vhost-user port instead of an interface.
    pub vhost_user: Option<RawVhostUser>,
    pub port_group: String,
    pub mac: Option<String>,
    #[serde(default)]
    pub security: RawSecurity,
    #[serde(default)]
    pub tap: bool,
    #[serde(default)]
    pub secure_macs: Vec<String>,
    pub port_security: Option<RawPortSecurity>,
    pub storm_control: Option<RawStormControl>,
    pub mac_acl_in: Option<String>,
    pub mac_acl_out: Option<String>,
    pub dhcp_snooping: Option<RawDhcpSnooping>,
    pub arp_inspection: Option<RawArpInspection>,
    pub ip_source_guard: Option<RawIpSourceGuard>,
    pub ra_guard: Option<RawRaGuard>,
    pub nd_inspection: Option<RawNdInspection>,
    pub ipv6_source_guard: Option<RawIpSourceGuard>,
    pub dhcpv6_guard: Option<RawDhcpv6Guard>,
    pub teaming: Option<RawTeaming>,
    /// The I/O backend name (`"af_packet"`, `"af_xdp"`), checked in validation.
    pub backend: Option<String>,
}

/// `[host.uplinks]`: logical uplink name → NIC, as (name, NIC) pairs.
#[derive(Debug, Default)]
pub(crate) struct RawUplinkMap(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for RawUplinkMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawUplinkMap;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of logical uplink = \"NIC name\"")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawUplinkMap, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(RawUplinkMap(out))
            }
        }
        d.deserialize_map(V)
    }
}
