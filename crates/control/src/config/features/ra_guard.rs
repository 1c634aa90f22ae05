//! IPv6 RA guard, whole: `ra_guard = {...}` on a port group or a port, and the
//! uplinks' trust (`uplink_policy.ra_trusted`) — its raw shape, its model (a partial
//! table merged port over group), its conversion, its part of a guest port's and an
//! uplink's spec, and its flattening for diff. Keys as in DESIGN.md §8.1; Cisco's
//! `ipv6 nd raguard` policy calls a router port `device-role router`, here
//! `trusted = true` as for DHCP snooping and ARP inspection (docs/decisions.md).
//!
//! Invariant: a guest port is untrusted unless it says `trusted = true`; an uplink
//! is trusted unless `ra_trusted = false`, and guards only when some group or port
//! enables RA guard (in enforce mode if any of them enforces).

use crate::config::flat::{Flat, OFF, mode, put};
use crate::config::value::Converter;
use portcullis_dataplane::{EnforceMode, RaGuardSpec};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRaGuard {
    pub enabled: Option<bool>,
    pub trusted: Option<bool>,
    pub mode: Option<String>,
}

// ---- model --------------------------------------------------------------------------

/// A partial `ra_guard` table, merged field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct RaGuardOverride {
    /// Default `true`: the table's presence enables RA guard.
    pub enabled: Option<bool>,
    /// Default `false`: guest ports are untrusted; a router guest says `true`.
    pub trusted: Option<bool>,
    /// Default `enforce`.
    pub mode: Option<EnforceMode>,
}

impl RaGuardOverride {
    /// With the defaults applied; `None` when `enabled = false`.
    pub fn resolve(&self) -> Option<RaGuardSpec> {
        if !self.enabled.unwrap_or(true) {
            return None;
        }
        Some(RaGuardSpec {
            trusted: self.trusted.unwrap_or(false),
            mode: self.mode.unwrap_or_default(),
        })
    }
}

crate::config::value::impl_override!(RaGuardOverride {
    enabled,
    trusted,
    mode
});

/// Why `uplink_policy.ra_guard` is refused.
pub(crate) const ON_UPLINKS: &str = "RA guard is enabled per [[port_group]] or [[host.port]]; the uplinks' part is their trust: `ra_trusted = true` (the default: routers are upstream) or `false`";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `ra_guard = {...}` at dotted `key`.
    pub(crate) fn ra_guard(
        &mut self,
        key: &str,
        raw: Option<&RawRaGuard>,
    ) -> Option<RaGuardOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let out = RaGuardOverride {
            enabled: raw.enabled,
            trusted: raw.trusted,
            mode: raw
                .mode
                .as_ref()
                .and_then(|w| self.mode(&format!("{key}.mode"), w)),
        };
        if self.errors.len() != before {
            self.poison.tables.insert(key.to_owned());
        }
        Some(out)
    }
}

// ---- spec ---------------------------------------------------------------------------

/// RA guard on an uplink when some group or port enables it, in `mode`.
pub(crate) fn uplink_spec(trusted: bool, mode: EnforceMode) -> RaGuardSpec {
    RaGuardSpec { trusted, mode }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.ra_guard…` of the merged table `ra`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, ra: Option<RaGuardOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match ra.and_then(|r| r.resolve()) {
        None => put(f, &k("ra_guard"), OFF),
        Some(r) => {
            put(f, &k("ra_guard.trusted"), r.trusted);
            put(f, &k("ra_guard.mode"), mode(r.mode));
        }
    }
}
