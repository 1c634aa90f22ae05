//! Static bindings, whole but for one check: `[[host.static_binding]]` — its raw
//! shape, its model, its conversion (MAC, IP address, VLAN), its part of the spec
//! and its flattening for diff. The check that a binding names a known port that
//! carries its VLAN, uses no other port's MAC and fits `max_bindings` spans ports,
//! port groups, uplinks and the switch, so it is the assembly's (`compile.rs`).
//!
//! Invariant: a binding without `vlan` belongs to its port's only VLAN; the flat
//! view lists a port's bindings sorted, since their order has no meaning.

use crate::config::flat::{Flat, list, opt, put};
use crate::config::keys::key_segment;
use crate::config::value::Converter;
use portcullis_dataplane::{MacAddr, StaticBindingSpec, Vid, VlanMode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

// ---- shape --------------------------------------------------------------------------

/// `[[host.static_binding]]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStaticBinding {
    pub mac: String,
    pub ip: String,
    pub vlan: Option<i64>,
    pub port: String,
}

// ---- model --------------------------------------------------------------------------

/// One `[[host.static_binding]]`: this MAC uses this IP address in this VLAN on
/// this port, for good (DHCP snooping, ARP inspection and IP Source Guard accept it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StaticBinding {
    pub mac: MacAddr,
    pub ip: IpAddr,
    /// `None`: the port's only VLAN (an access port's VLAN).
    pub vlan: Option<Vid>,
    /// A `[[host.port]]` or logical uplink name.
    pub port: String,
}

/// Why a top-level `[[static_binding]]` in the profile is refused.
pub(crate) const IN_PROFILE: &str = "static bindings name ports, which are host-specific: write them as [[host.static_binding]] in the host binding";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `[[host.static_binding]]`: the entries whose values convert, in file order
    /// (the file index of each kept entry goes to `Poison` when some are lost).
    pub(crate) fn static_bindings(&mut self, raw: &[RawStaticBinding]) -> Vec<StaticBinding> {
        let mut static_bindings = Vec::new();
        let mut index = Vec::new();
        for (j, b) in raw.iter().enumerate() {
            let key = format!("host.static_binding[{j}]");
            let mac = self.mac(&format!("{key}.mac"), &b.mac);
            let ip = match parse_ip(&b.ip) {
                Ok(ip) => Some(ip),
                Err(msg) => {
                    self.error(&format!("{key}.ip"), msg);
                    None
                }
            };
            let vlan = match b.vlan {
                None => Some(None),
                Some(v) => self.vid(&format!("{key}.vlan"), v).map(Some),
            };
            if let (Some(mac), Some(ip), Some(vlan)) = (mac, ip, vlan) {
                static_bindings.push(StaticBinding {
                    mac,
                    ip,
                    vlan,
                    port: b.port.clone(),
                });
                index.push(j);
            }
        }
        if index.len() != raw.len() {
            self.poison.static_binding_index = Some(index);
        }
        static_bindings
    }
}

// ---- spec ---------------------------------------------------------------------------

/// The spec of each binding, over the spec's ports (`ports`: name and VLAN mode,
/// in spec order); a binding of an unknown port or without a VLAN is left out
/// (refused by the checks before).
pub(crate) fn spec(
    bindings: &[StaticBinding],
    ports: &[(&str, &VlanMode)],
) -> Vec<StaticBindingSpec> {
    let mut out = Vec::new();
    for b in bindings {
        let Some(port) = ports.iter().position(|p| p.0 == b.port) else {
            continue; // unreachable after check()
        };
        let vid = match b.vlan {
            Some(v) => Some(v),
            None => ports[port].1.iter_vids().next(),
        };
        if let Some(vid) = vid {
            out.push(StaticBindingSpec {
                mac: b.mac,
                ip: b.ip,
                vid,
                port,
            });
        }
    }
    out
}

// ---- flattening for diff ------------------------------------------------------------

/// `host.static_binding.<port>`: one key per port, its bindings sorted (their
/// order has no meaning). `access_vlan`: the VLAN of an access port, for a binding
/// that does not state one.
pub(crate) fn flatten(
    f: &mut Flat,
    bindings: &[StaticBinding],
    access_vlan: impl Fn(&str) -> Option<Vid>,
) {
    let mut by_port: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for b in bindings {
        let vlan = b.vlan.or_else(|| access_vlan(&b.port));
        let text = format!(
            "{{ mac = {}, ip = {}, vlan = {} }}",
            b.mac,
            b.ip,
            opt(vlan.map(|v| v.get()))
        );
        by_port.entry(&b.port).or_default().push(text);
    }
    for (port, mut texts) in by_port {
        texts.sort();
        put(
            f,
            &format!("host.static_binding.{}", key_segment(port)),
            list(&texts),
        );
    }
}

/// An IPv4 or IPv6 address, for a static binding.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    if s.contains('/') {
        return Err(format!(
            "{s:?} is not an IP address: a binding holds one address, not a prefix"
        ));
    }
    Err(format!(
        "{s:?} is not an IP address: expected IPv4 like \"198.18.10.5\" or IPv6 like \"2001:db8::5\""
    ))
}

/// Why `ip` cannot be a binding's address, if it cannot (the data plane's rule,
/// which the API applies too).
pub(crate) fn check_binding_ip(ip: IpAddr) -> Result<(), String> {
    portcullis_dataplane::bindings::check_binding_ip(ip).map_err(|e| format!("{ip} is {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(crate) fn binding_ips() {
        assert!(parse_ip("198.18.10.5").unwrap().is_ipv4());
        assert!(parse_ip("2001:db8::5").unwrap().is_ipv6());
        assert!(
            parse_ip("198.18.10.0/24")
                .unwrap_err()
                .contains("not a prefix")
        );
        for bad in ["", "198.18.10", "fe80::1%eth0", "[::1]", "1.2.3.4 "] {
            assert!(parse_ip(bad).is_err(), "{bad:?} accepted");
        }
    }
}
