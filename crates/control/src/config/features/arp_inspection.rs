//! Dynamic ARP inspection, whole: `arp_inspection = {...}` on a port group or a
//! port, and the uplinks' trust (`uplink_policy.arp_trusted`) — its raw shape, its
//! model (a partial table merged port over group; `validate` and `acl` replaced
//! whole), its conversion and checks, its part of a guest port's and an uplink's
//! spec, and its flattening for diff. The ARP ACLs it binds are `acls.rs`.
//!
//! Invariant: an untrusted port is rate limited by default
//! (`DEFAULT_ARP_RATE_LIMIT_PPS`), a trusted one is not; an uplink inspects only
//! when some group or port enables inspection, and never validates or limits.

use crate::config::check::Checker;
use crate::config::features::acls::Acls;
use crate::config::flat::{Flat, NONE, OFF, list, mode, opt, put};
use crate::config::value::{AclRef, Converter, RECOVERY_SECS_RANGE, RateLimit, RawRate, acl_ref};
use portcullis_dataplane::{ArpInspectionSpec, EnforceMode};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawArpInspection {
    pub enabled: Option<bool>,
    pub trusted: Option<bool>,
    pub validate: Option<Vec<String>>,
    pub rate_limit_pps: Option<RawRate>,
    pub acl: Option<String>,
    pub mode: Option<String>,
    pub recovery_secs: Option<i64>,
}

// ---- model --------------------------------------------------------------------------

/// Default ARP-inspection rate limit of an untrusted port (Cisco's default).
pub const DEFAULT_ARP_RATE_LIMIT_PPS: u32 = 15;

/// The checks `arp_inspection.validate` turns on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct ArpValidation {
    /// `"src-mac"`: Ethernet source = ARP sender MAC.
    pub src_mac: bool,
    /// `"dst-mac"`: in replies, Ethernet destination = ARP target MAC.
    pub dst_mac: bool,
    /// `"ip"`: no 0.0.0.0, broadcast or multicast sender (or reply target) IP.
    pub ip: bool,
}

/// The words of `arp_inspection.validate`, in documentation order.
pub const ARP_VALIDATE_WORDS: &[&str] = &["src-mac", "dst-mac", "ip"];

impl ArpValidation {
    /// Turns on the check named `word` (see [`ARP_VALIDATE_WORDS`]); `false` for an
    /// unknown word.
    pub fn set(&mut self, word: &str) -> bool {
        match word {
            "src-mac" => self.src_mac = true,
            "dst-mac" => self.dst_mac = true,
            "ip" => self.ip = true,
            _ => return false,
        }
        true
    }
}

/// A partial `arp_inspection` table, merged field by field; `validate` and `acl`
/// are replaced whole.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct ArpInspectionOverride {
    /// Default `true`: the table's presence enables ARP inspection.
    pub enabled: Option<bool>,
    /// Default `false`: guest ports are untrusted.
    pub trusted: Option<bool>,
    /// Default: no extra validation.
    pub validate: Option<ArpValidation>,
    /// Default: [`DEFAULT_ARP_RATE_LIMIT_PPS`] on an untrusted port, none on a
    /// trusted one.
    pub rate_limit_pps: Option<RateLimit>,
    /// An `[[arp_acl]]` checked before the bindings, or `"none"`.
    pub acl: Option<AclRef>,
    /// Default `enforce`.
    pub mode: Option<EnforceMode>,
    /// Err-disable auto-recovery interval (after the rate limit).
    pub recovery_secs: Option<u64>,
}

impl ArpInspectionOverride {
    /// With the defaults applied; `None` when `enabled = false`.
    pub fn resolve(&self) -> Option<ArpInspectionSpec> {
        if !self.enabled.unwrap_or(true) {
            return None;
        }
        let trusted = self.trusted.unwrap_or(false);
        let validate = self.validate.unwrap_or_default();
        let default_limit = (!trusted).then_some(DEFAULT_ARP_RATE_LIMIT_PPS);
        Some(ArpInspectionSpec {
            trusted,
            validate_src_mac: validate.src_mac,
            validate_dst_mac: validate.dst_mac,
            validate_ip: validate.ip,
            rate_limit_pps: self.rate_limit_pps.map_or(default_limit, RateLimit::pps),
            acl: self.acl.as_ref().and_then(AclRef::name).map(str::to_owned),
            mode: self.mode.unwrap_or_default(),
        })
    }
}

crate::config::value::impl_override!(ArpInspectionOverride {
    enabled,
    trusted,
    validate,
    rate_limit_pps,
    acl,
    mode,
    recovery_secs
});

/// Why `uplink_policy.arp_inspection` is refused.
pub(crate) const ON_UPLINKS: &str = "ARP inspection is enabled per [[port_group]] or [[host.port]]; the uplinks' part is their trust: `arp_trusted = true` (the default) or `false`";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `arp_inspection = {...}` at dotted `key`.
    pub(crate) fn arp_inspection(
        &mut self,
        key: &str,
        raw: Option<&RawArpInspection>,
    ) -> Option<ArpInspectionOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let validate = raw.validate.as_ref().map(|words| {
            let mut v = ArpValidation::default();
            for (j, w) in words.iter().enumerate() {
                let wkey = format!("{key}.validate[{j}]");
                if let Some(k) = words[..j].iter().position(|x| x == w) {
                    self.error(
                        &wkey,
                        format!("{w:?} is listed twice (first as {key}.validate[{k}])"),
                    );
                } else if !v.set(w) {
                    self.error(
                        &wkey,
                        format!(
                            "{w:?} is not an ARP validation check; known checks: {}",
                            ARP_VALIDATE_WORDS
                                .iter()
                                .map(|w| format!("{w:?}"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
            }
            v
        });
        let out = ArpInspectionOverride {
            enabled: raw.enabled,
            trusted: raw.trusted,
            validate,
            rate_limit_pps: raw
                .rate_limit_pps
                .as_ref()
                .and_then(|r| self.rate(&format!("{key}.rate_limit_pps"), r)),
            acl: raw.acl.clone().map(acl_ref),
            mode: raw
                .mode
                .as_ref()
                .and_then(|w| self.mode(&format!("{key}.mode"), w)),
            recovery_secs: raw
                .recovery_secs
                .and_then(|v| self.int(&format!("{key}.recovery_secs"), v, &RECOVERY_SECS_RANGE)),
        };
        if self.errors.len() != before {
            self.poison.tables.insert(key.to_owned());
        }
        Some(out)
    }
}

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// The values of one `arp_inspection` table at `key`.
    pub(crate) fn arp_table(&mut self, key: &str, t: &ArpInspectionOverride, acls: &Acls) {
        self.rate_limit(key, t.rate_limit_pps);
        self.recovery_range(key, t.recovery_secs);
        self.arp_acl_ref(&format!("{key}.acl"), t.acl.as_ref(), acls);
    }
}

// ---- spec ---------------------------------------------------------------------------

/// ARP inspection on an uplink when some group or port enables it, in `mode`.
pub(crate) fn uplink_spec(trusted: bool, mode: EnforceMode) -> ArpInspectionSpec {
    ArpInspectionSpec {
        trusted,
        validate_src_mac: false,
        validate_dst_mac: false,
        validate_ip: false,
        rate_limit_pps: None,
        acl: None,
        mode,
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.arp_inspection…` of the merged table `arp`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, arp: Option<ArpInspectionOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match arp.as_ref().and_then(ArpInspectionOverride::resolve) {
        None => put(f, &k("arp_inspection"), OFF),
        Some(a) => {
            put(f, &k("arp_inspection.trusted"), a.trusted);
            let checks = [
                (a.validate_src_mac, "src-mac"),
                (a.validate_dst_mac, "dst-mac"),
                (a.validate_ip, "ip"),
            ];
            let words: Vec<&str> = checks.iter().filter(|c| c.0).map(|c| c.1).collect();
            put(f, &k("arp_inspection.validate"), list(&words));
            put(
                f,
                &k("arp_inspection.rate_limit_pps"),
                opt(a.rate_limit_pps),
            );
            put(
                f,
                &k("arp_inspection.acl"),
                a.acl.as_deref().unwrap_or(NONE),
            );
            put(f, &k("arp_inspection.mode"), mode(a.mode));
            put(
                f,
                &k("arp_inspection.recovery_secs"),
                opt(arp.and_then(|t| t.recovery_secs)),
            );
        }
    }
}
