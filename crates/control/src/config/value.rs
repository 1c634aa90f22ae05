//! The shared leaf of stage 1 (values): the [`Converter`] that every feature's
//! conversion runs on (its error list and its [`Poison`]), and the value helpers
//! the features share — bounded integers, policy words, VLAN IDs and lists, MAC
//! addresses and masks, rate limits, enforcement modes, ACL references — with the
//! messages they give.
//!
//! Invariant: a helper that refuses a value records exactly one located error and
//! returns `None` (or a documented placeholder); it never judges a cross-reference,
//! which is stage 2's ([`super::check`]). The value types several features share
//! (VLAN ranges, ACL references, rate limits, the [`Override`] merge) live here too.

use super::error::ConfigError;
use super::source::Sources;
use portcullis_dataplane::{EnforceMode, MacAddr, MacMatch, Vid, VlanSet};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// What stage 1 could not convert and stage 2 must therefore not judge.
/// The longest switch, uplink, port group or port name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Bounds of `recovery_secs` (err-disable auto-recovery), in `port_security` and
/// `storm_control`.
pub const RECOVERY_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;

/// Bounds of the DHCP-snooping and ARP-inspection rate limits (`rate_limit_pps`).
pub const RATE_LIMIT_PPS_RANGE: std::ops::RangeInclusive<u64> = 1..=10_000;

/// The word that removes an inherited rate limit (`rate_limit_pps = "none"`).
pub const NO_LIMIT_WORD: &str = "none";

/// The word that unbinds an inherited MAC ACL (`mac_acl_in = "none"`); no ACL may
/// have this name.
pub const NO_ACL: &str = "none";

/// An inclusive VLAN range as written: `10` is `10-10`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanRange {
    pub first: Vid,
    pub last: Vid,
}

impl VlanRange {
    pub fn single(v: Vid) -> VlanRange {
        VlanRange { first: v, last: v }
    }
    /// The VLANs of the range; empty if `first > last`.
    pub fn vids(&self) -> impl Iterator<Item = Vid> + use<> {
        (self.first.get()..=self.last.get()).filter_map(Vid::new)
    }
}

impl fmt::Display for VlanRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// The set of VLANs in `ranges`.
pub fn vlan_set(ranges: &[VlanRange]) -> VlanSet {
    VlanSet::from_vids(ranges.iter().flat_map(VlanRange::vids))
}

/// A MAC ACL binding as written: an ACL's name, or `"none"`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AclRef {
    /// `mac_acl_in = "name"`.
    Named(String),
    /// `mac_acl_in = "none"`: no ACL, even if the group binds one.
    None,
}

impl AclRef {
    /// The named ACL, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            AclRef::Named(n) => Some(n),
            AclRef::None => None,
        }
    }
    /// The binding in force: the port's if it states one, else the group's.
    pub fn merge<'a>(group: Option<&'a AclRef>, port: Option<&'a AclRef>) -> Option<&'a str> {
        port.or(group).and_then(AclRef::name)
    }
}

/// A rate limit as written: a number of packets per second, or `"none"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RateLimit {
    /// `rate_limit_pps = "none"`: no limit, even if the group states one.
    Unlimited,
    /// `rate_limit_pps = N`.
    Pps(u32),
}

impl RateLimit {
    /// The limit in force: `None` for no limit.
    pub fn pps(self) -> Option<u32> {
        match self {
            RateLimit::Unlimited => None,
            RateLimit::Pps(n) => Some(n),
        }
    }
}

/// A per-feature table a port may state over its group's, field by field.
pub trait Override: Clone + Default {
    /// `self`'s stated fields over `base`'s.
    fn over_base(&self, base: &Self) -> Self;

    /// The port's table merged over its group's; `None` when neither has one.
    fn merge(group: Option<&Self>, port: Option<&Self>) -> Option<Self> {
        match (group, port) {
            (None, None) => None,
            (g, p) => Some(
                p.cloned()
                    .unwrap_or_default()
                    .over_base(&g.cloned().unwrap_or_default()),
            ),
        }
    }
}

/// `impl Override for T` by `T::over`, for each feature's partial table.
macro_rules! impl_override {
    ($t:ident { $($field:ident),* $(,)? }) => {
        impl $t {
            /// `self`'s stated fields over `base`'s, field by field.
            pub fn over(&self, base: &$t) -> $t {
                $t {
                    $($field: Clone::clone(&self.$field).or_else(|| Clone::clone(&base.$field)),)*
                }
            }
        }
        impl $crate::config::value::Override for $t {
            fn over_base(&self, base: &Self) -> Self {
                self.over(base)
            }
        }
    };
}
pub(crate) use impl_override;

/// A value the file may give as a number or as a string: the enum, and a
/// `Deserialize` that keeps either as it is for the validation step to judge.
macro_rules! number_or_text {
    ($(#[$doc:meta])* $name:ident, $number:ident, $expecting:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub(crate) enum $name {
            $number(i64),
            Text(String),
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$name, E> {
                        Ok($name::$number(v))
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$name, E> {
                        Ok($name::$number(i64::try_from(v).unwrap_or(i64::MAX)))
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        Ok($name::Text(v.to_owned()))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

number_or_text!(
    /// One element of a VLAN list: an ID, or a string holding an ID or a range.
    RawVlan,
    Id,
    "a VLAN ID like 10 or a range string like \"100-199\""
);
number_or_text!(
    /// An EtherType: a number, or a string holding a name or a `0x` number.
    RawEthertype,
    Number,
    "an EtherType like 0x86dd or a name like \"ipv4\""
);
number_or_text!(
    /// A rate limit: a number, or a string (`"none"`).
    RawRate,
    Number,
    "packets per second like 15, or \"none\""
);

#[derive(Debug, Default)]
pub(crate) struct Poison {
    /// Port groups whose VLAN setting is invalid: the VLANs of their ports are
    /// unknown, so duplicate-MAC checks skip them.
    pub groups: HashSet<String>,
    /// `port_security` and `storm_control` tables (dotted keys) with a value that
    /// could not be converted: their merged settings are unknown, so the checks
    /// that combine them (MAC count, aging, limits, recovery) skip them.
    pub tables: HashSet<String>,
    /// For a `[[host.port]]` (by index) whose `secure_macs` lost unparsable
    /// elements: the file index of each element kept.
    pub secure_mac_index: HashMap<usize, Vec<usize>>,
    /// When `[[host.static_binding]]` lost unconvertible entries: the file index of
    /// each entry kept.
    pub static_binding_index: Option<Vec<usize>>,
    /// `uplink_policy.allowed_vlans` or `native_vlan` lost a value that could not
    /// be converted: which VLANs the uplinks carry is unknown, so the teaming
    /// check of a group's VLANs against them is skipped.
    pub uplink_vlans: bool,
    /// `host.management.tcp_listen` is present but unparsable: whether TCP is
    /// wanted is known, so the TLS files are not "without tcp_listen".
    pub management_listen: bool,
    /// Only one of `tls_cert` and `tls_key` is present (already an error).
    pub management_tls: bool,
    /// An `[overlay] vni` entry could not be converted: which VLANs are mapped is
    /// unknown, so "no VLAN mapped" and the peers' VLANs are not judged.
    pub overlay_vnis: bool,
    /// A `[host.overlay]` value could not be converted: the peers' indices and the
    /// endpoint are not the file's, so the peers are not judged.
    pub overlay_host: bool,
}

impl Poison {
    /// Whether stage 1 already refused a value of a feature table, so the spec
    /// built from the placeholders must not be judged.
    pub(crate) fn any_table(&self) -> bool {
        !self.tables.is_empty()
    }
    /// The index in the file of static binding `j` of the model.
    pub(crate) fn static_binding_file_index(&self, j: usize) -> usize {
        self.static_binding_index
            .as_ref()
            .and_then(|v| v.get(j).copied())
            .unwrap_or(j)
    }
    /// The index in the file of element `j` of port `port`'s `secure_macs`.
    pub(crate) fn secure_mac_file_index(&self, port: usize, j: usize) -> usize {
        self.secure_mac_index
            .get(&port)
            .and_then(|v| v.get(j).copied())
            .unwrap_or(j)
    }
}

pub(crate) struct Converter<'a> {
    pub sources: &'a Sources,
    pub errors: Vec<ConfigError>,
    pub poison: Poison,
}

impl<'a> Converter<'a> {
    pub(crate) fn new(sources: &'a Sources) -> Self {
        Converter {
            sources,
            errors: Vec::new(),
            poison: Poison::default(),
        }
    }

    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(self.sources.error(key, message));
    }

    pub(crate) fn mode(&mut self, key: &str, word: &str) -> Option<EnforceMode> {
        self.word(
            key,
            word,
            "mode",
            &[
                ("enforce", EnforceMode::Enforce),
                ("observe", EnforceMode::Observe),
            ],
        )
    }

    /// A rate limit: packets per second, or `"none"`. (The range is stage 2's.)
    pub(crate) fn rate(&mut self, key: &str, raw: &RawRate) -> Option<RateLimit> {
        match raw {
            RawRate::Number(v) => self
                .int::<u32>(key, *v, &RATE_LIMIT_PPS_RANGE)
                .map(RateLimit::Pps),
            RawRate::Text(t) if t == NO_LIMIT_WORD => Some(RateLimit::Unlimited),
            RawRate::Text(t) => {
                self.error(key, bad_rate(&format!("{t:?}")));
                None
            }
        }
    }

    /// `v` in the integer type `T`; out of `T`'s range is an error in `range`'s
    /// words. (Whether `v` is in `range` is checked in stage 2, which also sees
    /// configurations built in code.)
    pub(crate) fn int<T: TryFrom<i64>>(
        &mut self,
        key: &str,
        v: i64,
        range: &std::ops::RangeInclusive<u64>,
    ) -> Option<T> {
        let out = T::try_from(v).ok();
        if out.is_none() {
            self.error(key, out_of_range(v, range));
        }
        out
    }

    /// One of the lower-case `choices`.
    pub(crate) fn word<T: Copy>(
        &mut self,
        key: &str,
        word: &str,
        what: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        if let Some((_, v)) = choices.iter().find(|(w, _)| *w == word) {
            return Some(*v);
        }
        let names: Vec<String> = choices.iter().map(|(w, _)| format!("{w:?}")).collect();
        let expected = match names.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        };
        self.error(
            key,
            format!("{word:?} is not a {what}: expected {expected}"),
        );
        None
    }

    pub(crate) fn bounded(
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

    pub(crate) fn vid(&mut self, key: &str, v: i64) -> Option<Vid> {
        let vid = u16::try_from(v).ok().and_then(Vid::new);
        if vid.is_none() {
            self.error(key, bad_vid(v));
        }
        vid
    }

    pub(crate) fn vlan_list(&mut self, key: &str, list: &[RawVlan]) -> Vec<VlanRange> {
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

    pub(crate) fn mac(&mut self, key: &str, s: &str) -> Option<MacAddr> {
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

pub(crate) fn bad_rate(v: &str) -> String {
    format!(
        "{v} is not a rate limit: expected packets per second ({}..={}) or \"{NO_LIMIT_WORD}\" for no limit",
        RATE_LIMIT_PPS_RANGE.start(),
        RATE_LIMIT_PPS_RANGE.end()
    )
}

/// `"none"` unbinds; anything else names an ACL (checked in stage 2).
pub(crate) fn acl_ref(name: String) -> AclRef {
    if name == NO_ACL {
        AclRef::None
    } else {
        AclRef::Named(name)
    }
}

/// `"MAC"` (exact), `"MAC/MASK"` with the mask written as a MAC, or `"MAC/LEN"`
/// with a prefix length 0..=48.
pub(crate) fn parse_mac_match(s: &str) -> Result<MacMatch, String> {
    let bad = || {
        format!(
            "{s:?} is not a MAC address or MAC/mask: expected e.g. \"52:54:00:12:34:56\", \"52:54:00:00:00:00/ff:ff:ff:00:00:00\" or \"52:54:00:00:00:00/24\""
        )
    };
    let (mac, mask) = match s.split_once('/') {
        None => (s, None),
        Some((m, k)) => (m, Some(k)),
    };
    let mac = parse_mac(mac.trim()).ok_or_else(bad)?;
    let mask = match mask.map(str::trim) {
        None => MacAddr::BROADCAST,
        Some(k) if !k.is_empty() && k.len() <= 2 && k.bytes().all(|b| b.is_ascii_digit()) => {
            let len: u32 = k.parse().map_err(|_| bad())?;
            if len > 48 {
                return Err(format!(
                    "{s:?}: prefix length {len} is out of range: allowed 0..=48"
                ));
            }
            let bits = if len == 0 {
                0
            } else {
                (u64::MAX << (64 - len)) >> 16
            };
            let b = bits.to_be_bytes();
            MacAddr([b[2], b[3], b[4], b[5], b[6], b[7]])
        }
        Some(k) => parse_mac(k).ok_or_else(bad)?,
    };
    Ok(MacMatch { mac, mask })
}

pub(crate) fn bad_vid(v: i64) -> String {
    let why = match v {
        0 => " (0 means priority-tagged only)",
        4095 => " (4095 is reserved)",
        _ => "",
    };
    format!("VLAN {v} is outside 1..=4094{why}")
}

/// `"10"`, `"100-199"` (spaces around the dash allowed).
pub(crate) fn parse_vlan_range(s: &str) -> Result<VlanRange, String> {
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
    fn mac_matches() {
        let m = |s: &str| parse_mac_match(s).unwrap();
        let exact = m("52:54:00:12:34:56");
        assert_eq!(exact.mask, MacAddr::BROADCAST);
        let oui = m("52:54:00:00:00:00/ff:ff:ff:00:00:00");
        assert_eq!(oui, m("52:54:00:00:00:00/24"));
        assert_eq!(oui, m("52-54-00-00-00-00 / FF-FF-FF-00-00-00"));
        assert!(oui.matches("52:54:00:aa:bb:cc".parse().unwrap()));
        assert_eq!(m("00:00:00:00:00:00/0").mask, MacAddr::ZERO);
        assert_eq!(m("01:00:00:00:00:00/1").mask.0, [0x80, 0, 0, 0, 0, 0]);
        assert_eq!(
            m("01:00:00:00:00:00/47").mask.0,
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]
        );
        assert_eq!(m("01:00:00:00:00:00/48").mask, MacAddr::BROADCAST);
        // Any mask, not only prefixes.
        assert_eq!(
            m("01:00:00:00:00:00/01:00:00:00:00:00").mask.0,
            [1, 0, 0, 0, 0, 0]
        );
        for bad in [
            "",
            "/24",
            "52:54:00:00:00:00/",
            "52:54:00:00:00:00/49",
            "52:54:00/24",
            "52:54:00:00:00:00/ff:ff",
            "52:54:00:00:00:00/24/24",
            "52:54:00:00:00:00/-1",
        ] {
            assert!(parse_mac_match(bad).is_err(), "{bad:?} accepted");
        }
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
