//! MAC ACLs and ARP ACLs, whole: `[[mac_acl]]` and `[[arp_acl]]` — their raw
//! shapes, models, conversion of rules (MAC masks, EtherTypes, CoS, IPv4
//! prefixes), the checks they share (names, the reserved `"none"`, rule counts),
//! the checks of every reference to one (`mac_acl_in`/`mac_acl_out`,
//! `arp_inspection.acl`, each pointing at the other kind when misused), their
//! spec, and their flattening for diff. The two kinds are one module because
//! their names, headers and reference messages are defined against each other.
//!
//! Invariant: a reference is either `"none"` or the name of a defined ACL of its
//! kind; no ACL is named `"none"`; a rule's fields are in their domains (EtherType
//! ≥ 0x0600, CoS ≤ 7, an ARP prefix without host bits).

use crate::config::check::{Checker, names_in_order, quoted_list};
use crate::config::flat::{Flat, NONE, put};
use crate::config::keys::key_segment;
use crate::config::value::{AclRef, Converter, NO_ACL, RawEthertype, parse_mac_match};
use portcullis_dataplane::{
    AclAction, ArpAclRule, ArpAclSpec, MAX_ACL_RULES, MacAclRule, MacAclSpec, MacAddr, MacMatch,
};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;

// ---- shape --------------------------------------------------------------------------

/// `[[mac_acl]]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMacAcl {
    pub name: String,
    pub rules: Vec<RawAclRule>,
}

/// One element of `mac_acl.rules`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAclRule {
    pub action: String,
    pub src: Option<String>,
    pub dst: Option<String>,
    pub ethertype: Option<RawEthertype>,
    pub vlan: Option<i64>,
    pub cos: Option<i64>,
}

/// `[[arp_acl]]`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArpAcl {
    pub name: String,
    #[serde(rename = "static", default)]
    pub static_only: bool,
    pub rules: Vec<RawArpAclRule>,
}

/// One element of `arp_acl.rules`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArpAclRule {
    pub action: String,
    pub ip: Option<String>,
    pub mac: Option<String>,
}

// ---- model --------------------------------------------------------------------------

/// The smallest EtherType a MAC ACL rule may match: below it, the field of an
/// Ethernet frame is an 802.3 length, not a type.
pub const MIN_ETHERTYPE: u16 = 0x0600;

/// `[[mac_acl]]`: a named, ordered list of rules. The first matching rule decides;
/// a frame no rule matches is denied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacAcl {
    pub name: String,
    /// In file order.
    pub rules: Vec<MacAclRule>,
}

/// The EtherType names a MAC ACL rule understands, with their values.
pub const ETHERTYPE_NAMES: &[(&str, u16)] = &[
    ("ipv4", 0x0800),
    ("arp", 0x0806),
    ("wol", 0x0842),
    ("rarp", 0x8035),
    ("appletalk", 0x809b),
    ("aarp", 0x80f3),
    ("vlan", 0x8100),
    ("ipx", 0x8137),
    ("ipv6", 0x86dd),
    ("flow-control", 0x8808),
    ("lacp", 0x8809),
    ("mpls", 0x8847),
    ("mpls-multicast", 0x8848),
    ("pppoe-discovery", 0x8863),
    ("pppoe-session", 0x8864),
    ("eapol", 0x888e),
    ("profinet", 0x8892),
    ("aoe", 0x88a2),
    ("ethercat", 0x88a4),
    ("qinq", 0x88a8),
    ("lldp", 0x88cc),
    ("macsec", 0x88e5),
    ("pbb", 0x88e7),
    ("ptp", 0x88f7),
    ("cfm", 0x8902),
    ("fcoe", 0x8906),
    ("fip", 0x8914),
    ("roce", 0x8915),
    ("hsr", 0x892f),
    ("nsh", 0x894f),
];

/// The value of EtherType `name` (see [`ETHERTYPE_NAMES`]).
pub fn ethertype_by_name(name: &str) -> Option<u16> {
    ETHERTYPE_NAMES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
}

/// `[[arp_acl]]`: a named, ordered list of rules on the ARP sender (IP, MAC),
/// checked by ARP inspection before the bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpAcl {
    pub name: String,
    /// `static = true`: a sender no rule matches is dropped without looking at the
    /// bindings.
    pub static_only: bool,
    /// In file order.
    pub rules: Vec<ArpAclRule>,
}

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    pub(crate) fn arp_acl(&mut self, i: usize, raw: RawArpAcl) -> ArpAcl {
        let rules = raw
            .rules
            .iter()
            .enumerate()
            .map(|(j, r)| self.arp_acl_rule(&format!("arp_acl[{i}].rules[{j}]"), r))
            .collect();
        ArpAcl {
            name: raw.name,
            static_only: raw.static_only,
            rules,
        }
    }

    /// One ARP ACL rule; a field that cannot be converted matches anything (the
    /// configuration is refused anyway).
    pub(crate) fn arp_acl_rule(&mut self, key: &str, r: &RawArpAclRule) -> ArpAclRule {
        let action = self
            .word(
                &format!("{key}.action"),
                &r.action,
                "rule action",
                &[("permit", AclAction::Permit), ("deny", AclAction::Deny)],
            )
            .unwrap_or(AclAction::Deny);
        let (ip, prefix_len) = match r.ip.as_deref().map(parse_ipv4_prefix) {
            None => (Ipv4Addr::UNSPECIFIED, 0),
            Some(Ok(p)) => p,
            Some(Err(msg)) => {
                self.error(&format!("{key}.ip"), msg);
                (Ipv4Addr::UNSPECIFIED, 0)
            }
        };
        let mac = match r.mac.as_deref().map(parse_mac_match) {
            None => None,
            Some(Ok(m)) => Some(m),
            Some(Err(msg)) => {
                self.error(&format!("{key}.mac"), msg);
                None
            }
        };
        ArpAclRule {
            action,
            ip,
            prefix_len,
            mac,
        }
    }

    pub(crate) fn mac_acl(&mut self, i: usize, raw: RawMacAcl) -> MacAcl {
        let rules = raw
            .rules
            .iter()
            .enumerate()
            .map(|(j, r)| self.acl_rule(&format!("mac_acl[{i}].rules[{j}]"), r))
            .collect();
        MacAcl {
            name: raw.name,
            rules,
        }
    }

    /// One rule; a field that cannot be converted is left out (the configuration
    /// is refused anyway).
    pub(crate) fn acl_rule(&mut self, key: &str, r: &RawAclRule) -> MacAclRule {
        let action = self
            .word(
                &format!("{key}.action"),
                &r.action,
                "rule action",
                &[("permit", AclAction::Permit), ("deny", AclAction::Deny)],
            )
            .unwrap_or(AclAction::Deny);
        let mut mac_match = |field: &str, s: &Option<String>| {
            let s = s.as_deref()?;
            match parse_mac_match(s) {
                Ok(m) => Some(m),
                Err(msg) => {
                    self.error(&format!("{key}.{field}"), msg);
                    None
                }
            }
        };
        let src = mac_match("src", &r.src);
        let dst = mac_match("dst", &r.dst);
        let ethertype = r
            .ethertype
            .as_ref()
            .and_then(|e| self.ethertype(&format!("{key}.ethertype"), e));
        let vlan = r.vlan.and_then(|v| self.vid(&format!("{key}.vlan"), v));
        let cos = r.cos.and_then(|c| {
            let cos = u8::try_from(c).ok();
            if cos.is_none() {
                self.error(&format!("{key}.cos"), bad_cos(c));
            }
            cos
        });
        MacAclRule {
            action,
            src,
            dst,
            ethertype,
            vlan,
            cos,
        }
    }

    pub(crate) fn ethertype(&mut self, key: &str, raw: &RawEthertype) -> Option<u16> {
        match raw {
            RawEthertype::Number(v) => {
                let t = u16::try_from(*v).ok();
                if t.is_none() {
                    self.error(key, bad_ethertype(v));
                }
                t
            }
            RawEthertype::Text(s) => match parse_ethertype(s) {
                Ok(t) => Some(t),
                Err(msg) => {
                    self.error(key, msg);
                    None
                }
            },
        }
    }
}

/// `"a.b.c.d"` (one address, /32) or `"a.b.c.d/len"` with `len` 0..=32. (Host
/// bits under the prefix are stage 2's.)
pub(crate) fn parse_ipv4_prefix(s: &str) -> Result<(Ipv4Addr, u8), String> {
    let (addr, len) = match s.split_once('/') {
        None => (s, None),
        Some((a, l)) => (a, Some(l)),
    };
    let ip = addr.trim().parse::<Ipv4Addr>().map_err(|_| {
        if addr.trim().parse::<std::net::Ipv6Addr>().is_ok() {
            format!("{s:?} is IPv6; ARP carries IPv4 addresses only")
        } else {
            format!(
                "{s:?} is not an IPv4 address or prefix: expected e.g. \"198.18.10.1\" or \"198.18.0.0/15\""
            )
        }
    })?;
    let len = match len.map(str::trim) {
        None => 32,
        Some(l) if !l.is_empty() && l.len() <= 2 && l.bytes().all(|b| b.is_ascii_digit()) => {
            let n: u8 = l.parse().unwrap_or(u8::MAX);
            if n > 32 {
                return Err(format!(
                    "{s:?}: prefix length {n} is out of range: allowed 0..=32"
                ));
            }
            n
        }
        Some(_) => {
            return Err(format!(
                "{s:?} is not an IPv4 address or prefix: expected e.g. \"198.18.10.1\" or \"198.18.0.0/15\""
            ));
        }
    };
    Ok((ip, len))
}

pub(crate) fn bad_cos(v: impl std::fmt::Display) -> String {
    format!("CoS {v} is out of range: allowed 0..=7 (the 802.1p priority)")
}

pub(crate) fn bad_ethertype(v: impl std::fmt::Display) -> String {
    format!(
        "{v} is not an EtherType: allowed 0x0600..=0xffff (values below 0x0600 are 802.3 lengths; match LLC frames such as STP by destination MAC instead)"
    )
}

/// A name of [`ETHERTYPE_NAMES`] or a hexadecimal `0x` number.
pub(crate) fn parse_ethertype(s: &str) -> Result<u16, String> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad_ethertype(format!("{s:?}")));
        }
        return u16::from_str_radix(hex, 16).map_err(|_| bad_ethertype(format!("{s:?}")));
    }
    ethertype_by_name(s).ok_or_else(|| {
        let names: Vec<&str> = ETHERTYPE_NAMES.iter().map(|(n, _)| *n).collect();
        format!(
            "unknown EtherType name {s:?}; known names: {} (or a number like 0x86dd)",
            names.join(", ")
        )
    })
}

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// The checks every ACL table shares: a valid, unreserved, unique name and at
    /// most `MAX_ACL_RULES` rules. Records the name in `acls`.
    pub(crate) fn acl_header<'p>(
        &mut self,
        key: &str,
        kind: AclKind,
        name: &'p str,
        rules: usize,
        i: usize,
        acls: &mut HashMap<&'p str, usize>,
    ) {
        let (what, table, bind, article) = match kind {
            AclKind::Mac => ("MAC ACL", "mac_acl", "mac_acl_in", "a"),
            AclKind::Arp => ("ARP ACL", "arp_acl", "acl", "an"),
        };
        self.name(&format!("{key}.name"), what, name);
        if name == NO_ACL {
            self.error(
                &format!("{key}.name"),
                format!("{NO_ACL:?} is reserved (`{bind} = \"{NO_ACL}\"` unbinds an ACL); choose another name"),
            );
        }
        if let Some(&first) = acls.get(name) {
            let msg = format!(
                "{what} {name:?} is already defined by {}",
                self.sources.describe(&format!("{table}[{first}]"))
            );
            self.error(&format!("{key}.name"), msg);
        } else {
            acls.insert(name, i);
        }
        if rules > MAX_ACL_RULES {
            self.error(
                &format!("{key}.rules"),
                format!("{rules} rules; {article} {what} holds at most {MAX_ACL_RULES}"),
            );
        }
    }

    /// `[[mac_acl]]`: names, limits and rule values. Returns name → index.
    pub(crate) fn mac_acls<'p>(&mut self, mac_acls: &'p [MacAcl]) -> HashMap<&'p str, usize> {
        let mut acls: HashMap<&str, usize> = HashMap::new();
        for (i, acl) in mac_acls.iter().enumerate() {
            let key = format!("mac_acl[{i}]");
            self.acl_header(&key, AclKind::Mac, &acl.name, acl.rules.len(), i, &mut acls);
            for (j, r) in acl.rules.iter().enumerate() {
                if let Some(cos) = r.cos.filter(|c| *c > 7) {
                    self.error(&format!("{key}.rules[{j}].cos"), bad_cos(cos));
                }
                if let Some(t) = r.ethertype.filter(|t| *t < MIN_ETHERTYPE) {
                    self.error(
                        &format!("{key}.rules[{j}].ethertype"),
                        bad_ethertype(format!("{t:#06x}")),
                    );
                }
            }
        }
        acls
    }

    /// `mac_acl_in` / `mac_acl_out` at `key` names a defined MAC ACL (or is "none").
    pub(crate) fn acl_ref(&mut self, key: &str, r: Option<&AclRef>, acls: &Acls) {
        self.acl_reference(AclKind::Mac, key, r, acls);
    }

    /// `arp_inspection.acl` at `key` names a defined ARP ACL (or is "none").
    pub(crate) fn arp_acl_ref(&mut self, key: &str, r: Option<&AclRef>, acls: &Acls) {
        self.acl_reference(AclKind::Arp, key, r, acls);
    }

    /// A reference at `key` to an ACL of `kind` names one that is defined (or is
    /// "none"); naming one of the other kind says so.
    fn acl_reference(&mut self, kind: AclKind, key: &str, r: Option<&AclRef>, acls: &Acls) {
        let Some(AclRef::Named(name)) = r else {
            return;
        };
        let (own, other, what, table, known_what, other_hint) = match kind {
            AclKind::Mac => (
                &acls.mac,
                &acls.arp,
                "MAC ACL",
                "mac_acl",
                "ACLs",
                "is an [[arp_acl]], which `arp_inspection.acl` binds",
            ),
            AclKind::Arp => (
                &acls.arp,
                &acls.mac,
                "ARP ACL",
                "arp_acl",
                "ARP ACLs",
                "is a [[mac_acl]], but ARP inspection needs an [[arp_acl]]",
            ),
        };
        if own.contains_key(name.as_str()) {
            return;
        }
        let known = names_in_order(own);
        let mut msg = if known.is_empty() {
            format!(
                "unknown {what} {name:?}: the profile defines no [[{table}]] (or \"{NO_ACL}\" for no ACL)"
            )
        } else {
            format!(
                "unknown {what} {name:?}; known {known_what}: {} (or \"{NO_ACL}\" for no ACL)",
                quoted_list(&known)
            )
        };
        if other.contains_key(name.as_str()) {
            msg.push_str(&format!("; {name:?} {other_hint}"));
        }
        self.error(key, msg);
    }

    /// `[[arp_acl]]`: names, limits and rule values. Returns name → index.
    pub(crate) fn arp_acls<'p>(&mut self, arp_acls: &'p [ArpAcl]) -> HashMap<&'p str, usize> {
        let mut acls: HashMap<&str, usize> = HashMap::new();
        for (i, acl) in arp_acls.iter().enumerate() {
            let key = format!("arp_acl[{i}]");
            self.acl_header(&key, AclKind::Arp, &acl.name, acl.rules.len(), i, &mut acls);
            for (j, r) in acl.rules.iter().enumerate() {
                let ikey = format!("{key}.rules[{j}].ip");
                if r.prefix_len > 32 {
                    self.error(
                        &ikey,
                        format!(
                            "prefix length {} is out of range: allowed 0..=32",
                            r.prefix_len
                        ),
                    );
                } else if let Some(net) = host_bits_set(r.ip, r.prefix_len) {
                    self.error(
                        &ikey,
                        format!(
                            "\"{}/{}\" has host bits set: write \"{net}/{}\" for the network, or \"{}\" for the one address",
                            r.ip, r.prefix_len, r.prefix_len, r.ip
                        ),
                    );
                }
            }
        }
        acls
    }
}

/// Which kind of ACL table.
#[derive(Clone, Copy, Debug)]
pub(crate) enum AclKind {
    Mac,
    Arp,
}

/// The MAC ACLs and ARP ACLs by name (→ index in the file).
pub(crate) struct Acls<'p> {
    pub(crate) mac: HashMap<&'p str, usize>,
    pub(crate) arp: HashMap<&'p str, usize>,
}

/// The network address of `ip/len` when `ip` has bits set outside the prefix.
pub(crate) fn host_bits_set(ip: std::net::Ipv4Addr, len: u8) -> Option<std::net::Ipv4Addr> {
    let mask = if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    };
    let bits = u32::from(ip);
    (bits & !mask != 0).then(|| std::net::Ipv4Addr::from(bits & mask))
}

// ---- spec ---------------------------------------------------------------------------

/// The spec of each `[[mac_acl]]`, in file order.
pub(crate) fn mac_acl_specs(acls: &[MacAcl]) -> Vec<MacAclSpec> {
    acls.iter()
        .map(|a| MacAclSpec {
            name: a.name.clone(),
            rules: a.rules.clone(),
        })
        .collect()
}

/// The spec of each `[[arp_acl]]`, in file order.
pub(crate) fn arp_acl_specs(acls: &[ArpAcl]) -> Vec<ArpAclSpec> {
    acls.iter()
        .map(|a| ArpAclSpec {
            name: a.name.clone(),
            static_only: a.static_only,
            rules: a.rules.clone(),
        })
        .collect()
}

// ---- flattening for diff ------------------------------------------------------------

pub(crate) fn flatten_mac_acl(f: &mut Flat, a: &MacAcl) {
    let prefix = format!("mac_acl.{}", key_segment(&a.name));
    if a.rules.is_empty() {
        put(f, &format!("{prefix}.rules"), "[]");
    }
    for (i, r) in a.rules.iter().enumerate() {
        put(f, &format!("{prefix}.rule[{i}]"), mac_acl_rule(r));
    }
}

pub(crate) fn flatten_arp_acl(f: &mut Flat, a: &ArpAcl) {
    let prefix = format!("arp_acl.{}", key_segment(&a.name));
    put(f, &format!("{prefix}.static"), a.static_only);
    if a.rules.is_empty() {
        put(f, &format!("{prefix}.rules"), "[]");
    }
    for (i, r) in a.rules.iter().enumerate() {
        put(f, &format!("{prefix}.rule[{i}]"), arp_acl_rule(r));
    }
}

/// One MAC ACL rule as an inline table: fields in a fixed order, MACs masked, a
/// match-anything field left out.
pub fn mac_acl_rule(r: &MacAclRule) -> String {
    let mut parts = vec![format!("action = {}", acl_action(r.action))];
    if let Some(m) = r.src.and_then(mac_match) {
        parts.push(format!("src = {m}"));
    }
    if let Some(m) = r.dst.and_then(mac_match) {
        parts.push(format!("dst = {m}"));
    }
    if let Some(t) = r.ethertype {
        let name = ETHERTYPE_NAMES.iter().find(|(_, v)| *v == t);
        match name {
            Some((n, _)) => parts.push(format!("ethertype = {n}")),
            None => parts.push(format!("ethertype = 0x{t:04x}")),
        }
    }
    if let Some(v) = r.vlan {
        parts.push(format!("vlan = {v}"));
    }
    if let Some(c) = r.cos {
        parts.push(format!("cos = {c}"));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// One ARP ACL rule as an inline table (`ip` left out when it matches any sender,
/// written without `/32` for one address).
pub fn arp_acl_rule(r: &ArpAclRule) -> String {
    let mut parts = vec![format!("action = {}", acl_action(r.action))];
    let len = r.prefix_len.min(32);
    if len > 0 {
        let mask = u32::MAX << (32 - u32::from(len));
        let net = std::net::Ipv4Addr::from(u32::from(r.ip) & mask);
        if len == 32 {
            parts.push(format!("ip = {net}"));
        } else {
            parts.push(format!("ip = {net}/{len}"));
        }
    }
    if let Some(m) = r.mac.and_then(mac_match) {
        parts.push(format!("mac = {m}"));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// A MAC match: `mac` for an exact match, `mac/len` for a prefix mask, `mac/mask`
/// otherwise, with the MAC's bits outside the mask cleared; `None` for a mask of
/// zero (matches any MAC).
pub(crate) fn mac_match(m: MacMatch) -> Option<String> {
    const ALL: u64 = 0xffff_ffff_ffff;
    let mask = m.mask.to_u64() & ALL;
    if mask == 0 {
        return None;
    }
    let mac = mac_from_u64(m.mac.to_u64() & mask);
    if mask == ALL {
        return Some(mac.to_string());
    }
    let len = (mask << 16).leading_ones();
    let prefix = u64::MAX.checked_shl(64 - len).unwrap_or(0) >> 16;
    if len > 0 && prefix == mask {
        Some(format!("{mac}/{len}"))
    } else {
        Some(format!("{mac}/{}", mac_from_u64(mask)))
    }
}

pub(crate) fn mac_from_u64(v: u64) -> MacAddr {
    let b = v.to_be_bytes();
    MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
}

pub(crate) fn acl_action(a: AclAction) -> &'static str {
    match a {
        AclAction::Permit => "permit",
        AclAction::Deny => "deny",
    }
}

pub(crate) fn acl_name(r: Option<&AclRef>) -> &str {
    r.and_then(AclRef::name).unwrap_or(NONE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethertypes() {
        assert_eq!(parse_ethertype("ipv6"), Ok(0x86dd));
        assert_eq!(parse_ethertype("0x88CC"), Ok(0x88cc));
        assert_eq!(
            parse_ethertype("0x0042"),
            Ok(0x42),
            "the range is stage 2's"
        );
        for bad in ["IPv4", "ip", "0x", "0x12345", "0xg0", "2048", ""] {
            assert!(parse_ethertype(bad).is_err(), "{bad:?} accepted");
        }
        let e = parse_ethertype("ip").unwrap_err();
        assert!(e.contains("ipv4, arp"), "{e}");
        for (n, _) in ETHERTYPE_NAMES {
            assert!(parse_ethertype(n).unwrap() >= MIN_ETHERTYPE, "{n}");
        }
    }

    #[test]
    fn ipv4_prefixes() {
        let p = |s: &str| parse_ipv4_prefix(s).unwrap();
        assert_eq!(p("198.18.10.1"), (Ipv4Addr::new(198, 18, 10, 1), 32));
        assert_eq!(p("198.18.0.0/15"), (Ipv4Addr::new(198, 18, 0, 0), 15));
        assert_eq!(p(" 10.0.0.0 / 8 "), (Ipv4Addr::new(10, 0, 0, 0), 8));
        assert_eq!(p("0.0.0.0/0"), (Ipv4Addr::UNSPECIFIED, 0));
        assert_eq!(p("10.1.2.3/8").1, 8, "host bits are stage 2's");
        for bad in [
            "",
            "/8",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "010.0.0.1",
            "10.0.0.0/100",
            "::1",
        ] {
            assert!(parse_ipv4_prefix(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_ipv4_prefix("::1").unwrap_err().contains("IPv6"));
        assert!(
            parse_ipv4_prefix("10.0.0.0/33")
                .unwrap_err()
                .contains("0..=32")
        );
    }

    #[test]
    fn mac_matches_are_masked_and_named_by_prefix() {
        let m = |mac: u64, mask: u64| MacMatch {
            mac: mac_from_u64(mac),
            mask: mac_from_u64(mask),
        };
        assert_eq!(
            mac_match(m(0x5254_0012_3456, 0xffff_ffff_ffff)).as_deref(),
            Some("52:54:00:12:34:56")
        );
        assert_eq!(
            mac_match(m(0x5254_0012_3456, 0xffff_ff00_0000)).as_deref(),
            Some("52:54:00:00:00:00/24")
        );
        assert_eq!(
            mac_match(m(0x0180_c200_0003, 0xffff_ffff_fff0)).as_deref(),
            Some("01:80:c2:00:00:00/44")
        );
        assert_eq!(
            mac_match(m(0x0100_0000_00ff, 0x0100_0000_000f)).as_deref(),
            Some("01:00:00:00:00:0f/01:00:00:00:00:0f")
        );
        assert_eq!(mac_match(m(0x0100_0000_0000, 0)), None);
    }

    #[test]
    fn references_name_their_kind_and_the_other_kind() {
        use crate::config::source::{SourceFile, Sources};
        let sources = Sources {
            profile: SourceFile::new("p.toml", ""),
            host: None,
        };
        let mut c = Checker {
            sources: &sources,
            errors: Vec::new(),
        };
        let acls = Acls {
            mac: [("m1", 0)].into(),
            arp: [("a1", 0)].into(),
        };
        let none = Acls {
            mac: HashMap::new(),
            arp: HashMap::new(),
        };
        let named = |n: &str| AclRef::Named(n.into());
        c.acl_ref("k", Some(&named("a1")), &acls);
        c.arp_acl_ref("k", Some(&named("m1")), &acls);
        c.acl_ref("k", Some(&named("x")), &none);
        c.arp_acl_ref("k", Some(&named("x")), &none);
        c.acl_ref("k", Some(&named("m1")), &acls);
        c.arp_acl_ref("k", Some(&named("a1")), &acls);
        c.arp_acl_ref("k", Some(&AclRef::None), &none);
        let messages: Vec<&str> = c.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown MAC ACL \"a1\"; known ACLs: \"m1\" (or \"none\" for no ACL); \"a1\" is an [[arp_acl]], which `arp_inspection.acl` binds",
                "unknown ARP ACL \"m1\"; known ARP ACLs: \"a1\" (or \"none\" for no ACL); \"m1\" is a [[mac_acl]], but ARP inspection needs an [[arp_acl]]",
                "unknown MAC ACL \"x\": the profile defines no [[mac_acl]] (or \"none\" for no ACL)",
                "unknown ARP ACL \"x\": the profile defines no [[arp_acl]] (or \"none\" for no ACL)",
            ]
        );
    }
}
