//! Stage 1 of validation: each value as written → its domain type (VLAN IDs and
//! ranges, MAC addresses, policy words, numeric bounds). Every bad value is an
//! error; all of them are collected. Cross-references are checked in
//! [`super::compile`].

use super::error::ConfigError;
use super::model::*;
use super::raw::*;
use super::source::{Sources, join_key};
use portcullis_dataplane::{MacAddr, Policy, Vid};
use std::collections::HashSet;

/// What stage 1 could not convert and stage 2 must therefore not judge.
#[derive(Debug, Default)]
pub(crate) struct Poison {
    /// Port groups whose VLAN setting is invalid: the VLANs of their ports are
    /// unknown, so duplicate-MAC checks skip them.
    pub groups: HashSet<String>,
}

pub(crate) struct Converter<'a> {
    pub sources: &'a Sources,
    pub errors: Vec<ConfigError>,
    pub poison: Poison,
}

impl<'a> Converter<'a> {
    pub fn new(sources: &'a Sources) -> Self {
        Converter {
            sources,
            errors: Vec::new(),
            poison: Poison::default(),
        }
    }

    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(self.sources.error(key, message));
    }

    pub fn profile(&mut self, raw: RawProfileFile) -> Profile {
        let switch = SwitchSettings {
            name: raw.switch.name,
            mac_table_size: self.bounded(
                "switch.mac_table_size",
                raw.switch.mac_table_size,
                DEFAULT_MAC_TABLE_SIZE,
                MAC_TABLE_SIZE_RANGE,
            ),
            mac_aging_secs: self.bounded(
                "switch.mac_aging_secs",
                raw.switch.mac_aging_secs,
                DEFAULT_MAC_AGING_SECS,
                MAC_AGING_SECS_RANGE,
            ),
        };
        let uplink_policy = raw.uplink_policy.map(|u| UplinkPolicy {
            uplinks: u.uplinks,
            allowed_vlans: self.vlan_list("uplink_policy.allowed_vlans", &u.allowed_vlans),
            native_vlan: u
                .native_vlan
                .and_then(|v| self.vid("uplink_policy.native_vlan", v)),
        });
        let port_groups = raw
            .port_group
            .into_iter()
            .enumerate()
            .map(|(i, g)| self.port_group(i, g))
            .collect();
        Profile {
            switch,
            uplink_policy,
            port_groups,
        }
    }

    fn port_group(&mut self, i: usize, g: RawPortGroup) -> PortGroup {
        let key = format!("port_group[{i}]");
        let errors_before = self.errors.len();
        let vlan = match (g.vlan, g.vlans) {
            (Some(_), Some(_)) => {
                self.error(
                    &format!("{key}.vlans"),
                    "a port group has either `vlan` (access) or `vlans` (guest-tagging trunk), not both",
                );
                None
            }
            (None, None) => {
                self.error(
                    &key,
                    format!(
                        "port group {:?} needs `vlan = <id>` (access) or `vlans = [...]` (guest-tagging trunk)",
                        g.name
                    ),
                );
                None
            }
            (Some(v), None) => {
                if g.native_vlan.is_some() {
                    self.error(
                        &format!("{key}.native_vlan"),
                        "native_vlan applies only to a guest-tagging trunk (`vlans = [...]`); an access group's `vlan` is already untagged",
                    );
                }
                self.vid(&format!("{key}.vlan"), v).map(GroupVlan::Access)
            }
            (None, Some(list)) => {
                let vlans = self.vlan_list(&format!("{key}.vlans"), &list);
                let native_vlan = g
                    .native_vlan
                    .and_then(|v| self.vid(&format!("{key}.native_vlan"), v));
                Some(GroupVlan::Trunk { vlans, native_vlan })
            }
        };
        if self.errors.len() != errors_before {
            self.poison.groups.insert(g.name.clone());
        }
        PortGroup {
            security: self.security(&format!("{key}.security"), &g.security),
            name: g.name,
            // Placeholder for an invalid setting; the group is poisoned.
            vlan: vlan.unwrap_or(GroupVlan::Trunk {
                vlans: Vec::new(),
                native_vlan: None,
            }),
        }
    }

    /// The host binding, `host.uplinks` in file order.
    pub fn host(&mut self, raw: RawHost) -> HostBinding {
        let mut uplinks: Vec<UplinkBinding> = raw
            .uplinks
            .0
            .into_iter()
            .map(|(uplink, interface)| UplinkBinding { uplink, interface })
            .collect();
        // Serde hands table entries over sorted; restore the order of the file.
        let file = self.sources.file_of("host");
        uplinks.sort_by_key(|u| {
            file.offset_exact(&join_key("host.uplinks", &u.uplink))
                .unwrap_or(usize::MAX)
        });
        let ports = raw
            .port
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let key = format!("host.port[{i}]");
                HostPort {
                    mac: p.mac.and_then(|m| self.mac(&format!("{key}.mac"), &m)),
                    security: self.security(&format!("{key}.security"), &p.security),
                    name: p.name,
                    interface: p.interface,
                    port_group: p.port_group,
                    tap: p.tap,
                }
            })
            .collect();
        HostBinding { uplinks, ports }
    }

    fn bounded(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        match value {
            None => default,
            Some(v) => match u64::try_from(v) {
                Ok(v) => v,
                Err(_) => {
                    self.error(key, out_of_range(v, &range));
                    default
                }
            },
        }
    }

    fn vid(&mut self, key: &str, v: i64) -> Option<Vid> {
        let vid = u16::try_from(v).ok().and_then(Vid::new);
        if vid.is_none() {
            self.error(key, bad_vid(v));
        }
        vid
    }

    fn vlan_list(&mut self, key: &str, list: &[RawVlan]) -> Vec<VlanRange> {
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let key = format!("{key}[{i}]");
            match item {
                RawVlan::Id(v) => {
                    if let Some(v) = self.vid(&key, *v) {
                        out.push(VlanRange::single(v));
                    }
                }
                RawVlan::Text(s) => match parse_vlan_range(s) {
                    Ok(r) => out.push(r),
                    Err(m) => self.error(&key, m),
                },
            }
        }
        out
    }

    fn security(&mut self, key: &str, raw: &RawSecurity) -> SecurityOverride {
        SecurityOverride {
            promiscuous: self.policy(&format!("{key}.promiscuous"), &raw.promiscuous),
            mac_changes: self.policy(&format!("{key}.mac_changes"), &raw.mac_changes),
            forged_transmits: self
                .policy(&format!("{key}.forged_transmits"), &raw.forged_transmits),
        }
    }

    fn policy(&mut self, key: &str, word: &Option<String>) -> Option<Policy> {
        match word.as_deref()? {
            "accept" => Some(Policy::Accept),
            "reject" => Some(Policy::Reject),
            other => {
                self.error(
                    key,
                    format!("{other:?} is not a policy: expected \"accept\" or \"reject\""),
                );
                None
            }
        }
    }

    fn mac(&mut self, key: &str, s: &str) -> Option<MacAddr> {
        match parse_mac(s) {
            Some(m) => Some(m),
            None => {
                self.error(
                    key,
                    format!("{s:?} is not a MAC address: expected six hex octets like \"52:54:00:12:34:56\""),
                );
                None
            }
        }
    }
}

pub(crate) fn out_of_range(
    v: impl std::fmt::Display,
    range: &std::ops::RangeInclusive<u64>,
) -> String {
    format!(
        "{v} is out of range: allowed {}..={}",
        range.start(),
        range.end()
    )
}

fn bad_vid(v: i64) -> String {
    let why = match v {
        0 => " (0 means priority-tagged only)",
        4095 => " (4095 is reserved)",
        _ => "",
    };
    format!("VLAN {v} is outside 1..=4094{why}")
}

/// `"10"`, `"100-199"` (spaces around the dash allowed).
fn parse_vlan_range(s: &str) -> Result<VlanRange, String> {
    let malformed = || format!("{s:?} is not a VLAN ID or range: expected e.g. 10 or \"100-199\"");
    let num = |t: &str| -> Result<i64, String> {
        let t = t.trim();
        if t.is_empty() || t.len() > 9 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        t.parse::<i64>().map_err(|_| malformed())
    };
    let vid = |v: i64| -> Result<Vid, String> {
        u16::try_from(v)
            .ok()
            .and_then(Vid::new)
            .ok_or_else(|| format!("in {s:?}: {}", bad_vid(v)))
    };
    match s.split_once('-') {
        None => Ok(VlanRange::single(vid(num(s)?)?)),
        Some((a, b)) => {
            let (first, last) = (vid(num(a)?)?, vid(num(b)?)?);
            if first > last {
                return Err(format!("range {s:?} is reversed: write \"{last}-{first}\""));
            }
            Ok(VlanRange { first, last })
        }
    }
}

/// Six two-digit hex octets separated all by ':' or all by '-'.
pub(crate) fn parse_mac(s: &str) -> Option<MacAddr> {
    let sep = if s.contains(':') { ':' } else { '-' };
    let parts: Vec<&str> = s.split(sep).collect();
    if parts.len() != 6
        || !parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_ranges() {
        let r = parse_vlan_range("100-199").unwrap();
        assert_eq!((r.first.get(), r.last.get()), (100, 199));
        assert_eq!(parse_vlan_range(" 7 ").unwrap().to_string(), "7");
        assert_eq!(parse_vlan_range("10 - 12").unwrap().to_string(), "10-12");
        for bad in [
            "",
            "-",
            "10-",
            "-10",
            "a",
            "1-2-3",
            "+5",
            "0-10",
            "4000-4095",
            "10--12",
        ] {
            assert!(parse_vlan_range(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_vlan_range("20-10").unwrap_err().contains("reversed"));
    }

    #[test]
    fn macs() {
        assert!(parse_mac("52:54:00:12:34:56").is_some());
        assert!(parse_mac("52-54-00-AB-cd-56").is_some());
        for bad in [
            "52:54:00:12:34",
            "52:54-00:12:34:56",
            "+2:54:00:12:34:56",
            "525400123456",
            "",
        ] {
            assert!(parse_mac(bad).is_none(), "{bad:?} accepted");
        }
    }
}
