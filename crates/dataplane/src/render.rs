//! How the data plane's configuration types read as text, once for every user:
//! a MAC ACL rule (`Display for MacAclRule`: the trace's explanations and the API's
//! `show mac-acl`), a VLAN list with ranges ([`vid_list`]: the trace, the
//! configuration's errors and its diff) and an error-disable cause
//! ([`ErrDisableCause::name`] for the API and events, [`ErrDisableCause::words`]
//! for explanations).
//!
//! Invariant: the texts are API (the `rule` of `GET /v1/mac-acls`, the port's
//! `err_disabled`, the diff's values), so a change here is a change of the API.

use crate::errdisable::ErrDisableCause;
use crate::spec::{AclAction, MacAclRule, MacMatch};
use crate::types::{MacAddr, Vid};
use std::fmt::{self, Write as _};

impl fmt::Display for AclAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AclAction::Permit => "permit",
            AclAction::Deny => "deny",
        })
    }
}

impl fmt::Display for MacMatch {
    /// The MAC alone when every bit counts, else `mac/mask`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mask == MacAddr([0xff; 6]) {
            write!(f, "{}", self.mac)
        } else {
            write!(f, "{}/{}", self.mac, self.mask)
        }
    }
}

impl fmt::Display for MacAclRule {
    /// The rule in words, fields in configuration order: "deny ethertype 0x86dd",
    /// "permit src 52:54:00:00:00:00/ff:ff:ff:00:00:00", "permit any".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.action)?;
        if let Some(m) = &self.src {
            write!(f, " src {m}")?;
        }
        if let Some(m) = &self.dst {
            write!(f, " dst {m}")?;
        }
        if let Some(e) = self.ethertype {
            write!(f, " ethertype 0x{e:04x}")?;
        }
        if let Some(v) = self.vlan {
            write!(f, " vlan {v}")?;
        }
        if let Some(c) = self.cos {
            write!(f, " cos {c}")?;
        }
        if self.src.is_none()
            && self.dst.is_none()
            && self.ethertype.is_none()
            && self.vlan.is_none()
            && self.cos.is_none()
        {
            f.write_str(" any")?;
        }
        Ok(())
    }
}

/// VLAN IDs with each run of consecutive IDs as one range, joined by `sep`
/// (`vid_list([10, 20, 100, 101, 102, 103], ",")` is "10,20,100-103"); empty for
/// none. The IDs are taken in the order given (callers sort them first where the
/// list stands for a set).
pub fn vid_list(vids: impl IntoIterator<Item = Vid>, sep: &str) -> String {
    let mut out = String::new();
    let mut flush = |(a, b): (u16, u16)| {
        if !out.is_empty() {
            out.push_str(sep);
        }
        let _ = if a == b {
            write!(out, "{a}")
        } else {
            write!(out, "{a}-{b}")
        };
    };
    let mut run: Option<(u16, u16)> = None;
    for v in vids.into_iter().map(Vid::get) {
        run = match run {
            Some((a, b)) if Some(v) == b.checked_add(1) => Some((a, v)),
            Some(r) => {
                flush(r);
                Some((v, v))
            }
            None => Some((v, v)),
        };
    }
    if let Some(r) = run {
        flush(r);
    }
    out
}

impl ErrDisableCause {
    /// The stable name the API, metrics and events use (its serde name):
    /// `port_security`, `storm_control`, `dhcp_rate_limit`, `arp_rate_limit`, `nd_rate_limit`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrDisableCause::PortSecurity => "port_security",
            ErrDisableCause::StormControl => "storm_control",
            ErrDisableCause::DhcpRateLimit => "dhcp_rate_limit",
            ErrDisableCause::ArpRateLimit => "arp_rate_limit",
            ErrDisableCause::NdRateLimit => "nd_rate_limit",
            ErrDisableCause::Dhcpv6RateLimit => "dhcpv6_rate_limit",
        }
    }

    /// The cause in words, for explanations ("error-disabled by …").
    pub const fn words(self) -> &'static str {
        match self {
            ErrDisableCause::PortSecurity => "port security",
            ErrDisableCause::StormControl => "storm control",
            ErrDisableCause::DhcpRateLimit => "the DHCP rate limit",
            ErrDisableCause::ArpRateLimit => "the ARP rate limit",
            ErrDisableCause::NdRateLimit => "the ND rate limit",
            ErrDisableCause::Dhcpv6RateLimit => "the DHCPv6 rate limit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }

    #[test]
    fn vlan_lists_are_runs_joined() {
        let l = |v: &[u16], sep| vid_list(v.iter().map(|v| vid(*v)), sep);
        assert_eq!(l(&[10, 20, 100, 101, 102, 103], ","), "10,20,100-103");
        assert_eq!(l(&[10, 11, 20], ", "), "10-11, 20");
        assert_eq!(l(&[5], ","), "5");
        assert_eq!(l(&[], ","), "");
        assert_eq!(l(&[3, 2, 2, 4094], ","), "3,2,2,4094", "taken as given");
    }

    #[test]
    fn acl_rules_read_in_configuration_order() {
        let m = |mac: [u8; 6], mask: [u8; 6]| MacMatch {
            mac: MacAddr(mac),
            mask: MacAddr(mask),
        };
        let any = MacAclRule {
            action: AclAction::Permit,
            src: None,
            dst: None,
            ethertype: None,
            vlan: None,
            cos: None,
        };
        assert_eq!(any.to_string(), "permit any");
        let r = MacAclRule {
            action: AclAction::Deny,
            src: Some(m([0x52, 0x54, 0, 0, 0, 0], [0xff, 0xff, 0xff, 0, 0, 0])),
            dst: Some(m([0xff; 6], [0xff; 6])),
            ethertype: Some(0x86dd),
            vlan: Some(vid(10)),
            cos: Some(5),
        };
        assert_eq!(
            r.to_string(),
            "deny src 52:54:00:00:00:00/ff:ff:ff:00:00:00 dst ff:ff:ff:ff:ff:ff ethertype 0x86dd vlan 10 cos 5"
        );
    }
}
