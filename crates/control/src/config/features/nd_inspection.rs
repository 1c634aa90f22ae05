//! ND inspection and SAVI for SLAAC, whole: `nd_inspection = {...}` on a port group
//! or a port, and the uplinks' trust (`uplink_policy.nd_trusted`) — its raw shape,
//! its model (a partial table merged port over group), its conversion and range
//! checks, its part of a guest port's and an uplink's spec, and its flattening for
//! diff. Keys as in DESIGN.md §8.1; a router guest says `trusted = true` as for RA
//! guard. The stage is `portcullis_dataplane::stages::nd_inspection`.
//!
//! Invariant: a guest port is untrusted unless it says `trusted = true`; an uplink
//! is trusted unless `nd_trusted = false`, and takes part only when some group or
//! port enables ND inspection (in enforce mode if any of them enforces), with
//! [`UPLINK_MAX_ADDRESSES`] gleaned router addresses, no rate limit and the default
//! lifetime.

use crate::config::check::Checker;
use crate::config::flat::{Flat, OFF, mode, opt, put};
use crate::config::value::{Converter, RateLimit, RawRate, out_of_range};
use portcullis_dataplane::{EnforceMode, NdInspectionSpec};
use serde::Deserialize;

/// Default `max_addresses`: a host's link-local, stable and a few temporary
/// addresses (RFC 8981 keeps several temporary ones while they are deprecated).
pub const DEFAULT_ND_MAX_ADDRESSES: u16 = 8;
pub const ND_MAX_ADDRESSES_RANGE: std::ops::RangeInclusive<u64> = 1..=64;
/// Default `rate_limit_pps` of RS, NS and NA from an untrusted port.
pub const DEFAULT_ND_RATE_LIMIT_PPS: u32 = 30;
/// Default `binding_lifetime_secs`: an hour (longer than any neighbour's
/// reachability; a host using its address refreshes it).
pub const DEFAULT_ND_BINDING_LIFETIME_SECS: u32 = 3600;
pub const ND_BINDING_LIFETIME_SECS_RANGE: std::ops::RangeInclusive<u64> = 60..=604_800;
/// Router addresses an uplink may have gleaned at once (across its VLANs).
pub const UPLINK_MAX_ADDRESSES: u16 = 64;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNdInspection {
    pub enabled: Option<bool>,
    pub trusted: Option<bool>,
    pub max_addresses: Option<i64>,
    pub rate_limit_pps: Option<RawRate>,
    pub mode: Option<String>,
    pub binding_lifetime_secs: Option<i64>,
}

// ---- model --------------------------------------------------------------------------

/// A partial `nd_inspection` table, merged field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct NdInspectionOverride {
    /// Default `true`: the table's presence enables ND inspection.
    pub enabled: Option<bool>,
    /// Default `false`: guest ports are untrusted; a router guest says `true`.
    pub trusted: Option<bool>,
    /// Default [`DEFAULT_ND_MAX_ADDRESSES`].
    pub max_addresses: Option<u16>,
    /// Default [`DEFAULT_ND_RATE_LIMIT_PPS`]; `"none"`: no limit.
    pub rate_limit_pps: Option<RateLimit>,
    /// Default `enforce`.
    pub mode: Option<EnforceMode>,
    /// Default [`DEFAULT_ND_BINDING_LIFETIME_SECS`].
    pub binding_lifetime_secs: Option<u32>,
}

impl NdInspectionOverride {
    /// With the defaults applied; `None` when `enabled = false`.
    pub fn resolve(&self) -> Option<NdInspectionSpec> {
        if !self.enabled.unwrap_or(true) {
            return None;
        }
        Some(NdInspectionSpec {
            trusted: self.trusted.unwrap_or(false),
            max_addresses: self.max_addresses.unwrap_or(DEFAULT_ND_MAX_ADDRESSES),
            rate_limit_pps: self
                .rate_limit_pps
                .map_or(Some(DEFAULT_ND_RATE_LIMIT_PPS), RateLimit::pps),
            mode: self.mode.unwrap_or_default(),
            binding_lifetime_secs: self
                .binding_lifetime_secs
                .unwrap_or(DEFAULT_ND_BINDING_LIFETIME_SECS),
        })
    }
}

crate::config::value::impl_override!(NdInspectionOverride {
    enabled,
    trusted,
    max_addresses,
    rate_limit_pps,
    mode,
    binding_lifetime_secs
});

/// Why `uplink_policy.nd_inspection` is refused.
pub(crate) const ON_UPLINKS: &str = "ND inspection is enabled per [[port_group]] or [[host.port]]; the uplinks' part is their trust: `nd_trusted = true` (the default: routers are upstream) or `false`";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `nd_inspection = {...}` at dotted `key`.
    pub(crate) fn nd_inspection(
        &mut self,
        key: &str,
        raw: Option<&RawNdInspection>,
    ) -> Option<NdInspectionOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let out = NdInspectionOverride {
            enabled: raw.enabled,
            trusted: raw.trusted,
            max_addresses: raw.max_addresses.and_then(|v| {
                self.int(&format!("{key}.max_addresses"), v, &ND_MAX_ADDRESSES_RANGE)
            }),
            rate_limit_pps: raw
                .rate_limit_pps
                .as_ref()
                .and_then(|r| self.rate(&format!("{key}.rate_limit_pps"), r)),
            mode: raw
                .mode
                .as_ref()
                .and_then(|w| self.mode(&format!("{key}.mode"), w)),
            binding_lifetime_secs: raw.binding_lifetime_secs.and_then(|v| {
                self.int(
                    &format!("{key}.binding_lifetime_secs"),
                    v,
                    &ND_BINDING_LIFETIME_SECS_RANGE,
                )
            }),
        };
        if self.errors.len() != before {
            self.poison.tables.insert(key.to_owned());
        }
        Some(out)
    }
}

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// The values of one `nd_inspection` table at `key` (ranges; stage 1 checked
    /// what did not fit the model's types).
    pub(crate) fn nd_table(&mut self, key: &str, t: &NdInspectionOverride) {
        if let Some(m) = t
            .max_addresses
            .filter(|m| !ND_MAX_ADDRESSES_RANGE.contains(&u64::from(*m)))
        {
            self.error(
                &format!("{key}.max_addresses"),
                out_of_range(m, &ND_MAX_ADDRESSES_RANGE),
            );
        }
        if let Some(l) = t
            .binding_lifetime_secs
            .filter(|l| !ND_BINDING_LIFETIME_SECS_RANGE.contains(&u64::from(*l)))
        {
            self.error(
                &format!("{key}.binding_lifetime_secs"),
                out_of_range(l, &ND_BINDING_LIFETIME_SECS_RANGE),
            );
        }
        self.rate_limit(key, t.rate_limit_pps);
    }
}

// ---- spec ---------------------------------------------------------------------------

/// ND inspection on an uplink when some group or port enables it, in `mode`: it
/// gleans its routers' addresses (trusted) or is inspected like a guest port
/// (`trusted = false`); never rate-limited (it carries a whole network).
pub(crate) fn uplink_spec(trusted: bool, mode: EnforceMode) -> NdInspectionSpec {
    NdInspectionSpec {
        trusted,
        max_addresses: UPLINK_MAX_ADDRESSES,
        rate_limit_pps: None,
        mode,
        binding_lifetime_secs: DEFAULT_ND_BINDING_LIFETIME_SECS,
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.nd_inspection…` of the merged table `nd`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, nd: Option<NdInspectionOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match nd.and_then(|n| n.resolve()) {
        None => put(f, &k("nd_inspection"), OFF),
        Some(n) => {
            put(f, &k("nd_inspection.trusted"), n.trusted);
            put(f, &k("nd_inspection.max_addresses"), n.max_addresses);
            put(f, &k("nd_inspection.rate_limit_pps"), opt(n.rate_limit_pps));
            put(f, &k("nd_inspection.mode"), mode(n.mode));
            put(
                f,
                &k("nd_inspection.binding_lifetime_secs"),
                n.binding_lifetime_secs,
            );
        }
    }
}
