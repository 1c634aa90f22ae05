//! DHCPv6 guard and snooping, whole: `dhcpv6_guard = {...}` on a port group or a
//! port, and the uplinks' trust (`uplink_policy.dhcpv6_trusted`) — its raw shape,
//! its model (a partial table merged port over group), its conversion and range
//! checks, its part of a guest port's and an uplink's spec, and its flattening for
//! diff. Keys as in the issue-15 contract (DESIGN.md §8.1); a DHCPv6 server or
//! relay guest says `trusted = true`, as for DHCP snooping.
//!
//! Invariant: a guest port is untrusted unless it says `trusted = true`; an uplink
//! is trusted unless `dhcpv6_trusted = false`, guards only when some group or port
//! enables the guard (in enforce mode if any of them enforces), and is never
//! rate-limited (it carries a whole network).

use crate::config::check::Checker;
use crate::config::flat::{Flat, OFF, mode, opt, put};
use crate::config::value::{Converter, RateLimit, RawRate};
use portcullis_dataplane::{Dhcpv6GuardSpec, EnforceMode};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDhcpv6Guard {
    pub enabled: Option<bool>,
    pub trusted: Option<bool>,
    pub rate_limit_pps: Option<RawRate>,
    pub mode: Option<String>,
}

// ---- model --------------------------------------------------------------------------

/// A partial `dhcpv6_guard` table, merged field by field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct Dhcpv6GuardOverride {
    /// Default `true`: the table's presence enables the guard.
    pub enabled: Option<bool>,
    /// Default `false`: guest ports are untrusted; a server or relay guest says `true`.
    pub trusted: Option<bool>,
    /// Default: no limit.
    pub rate_limit_pps: Option<RateLimit>,
    /// Default `enforce`.
    pub mode: Option<EnforceMode>,
}

impl Dhcpv6GuardOverride {
    /// With the defaults applied; `None` when `enabled = false`.
    pub fn resolve(&self) -> Option<Dhcpv6GuardSpec> {
        if !self.enabled.unwrap_or(true) {
            return None;
        }
        Some(Dhcpv6GuardSpec {
            trusted: self.trusted.unwrap_or(false),
            rate_limit_pps: self.rate_limit_pps.and_then(RateLimit::pps),
            mode: self.mode.unwrap_or_default(),
        })
    }
}

crate::config::value::impl_override!(Dhcpv6GuardOverride {
    enabled,
    trusted,
    rate_limit_pps,
    mode
});

/// Why `uplink_policy.dhcpv6_guard` is refused.
pub(crate) const ON_UPLINKS: &str = "DHCPv6 guard is enabled per [[port_group]] or [[host.port]]; the uplinks' part is their trust: `dhcpv6_trusted = true` (the default: servers are upstream) or `false`";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `dhcpv6_guard = {...}` at dotted `key`.
    pub(crate) fn dhcpv6_guard(
        &mut self,
        key: &str,
        raw: Option<&RawDhcpv6Guard>,
    ) -> Option<Dhcpv6GuardOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let out = Dhcpv6GuardOverride {
            enabled: raw.enabled,
            trusted: raw.trusted,
            rate_limit_pps: raw
                .rate_limit_pps
                .as_ref()
                .and_then(|r| self.rate(&format!("{key}.rate_limit_pps"), r)),
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

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// The values of one `dhcpv6_guard` table at `key`.
    pub(crate) fn dhcpv6_table(&mut self, key: &str, t: &Dhcpv6GuardOverride) {
        self.rate_limit(key, t.rate_limit_pps);
    }
}

// ---- spec ---------------------------------------------------------------------------

/// DHCPv6 guard on an uplink when some group or port enables it, in `mode`: never
/// policed.
pub(crate) fn uplink_spec(trusted: bool, mode: EnforceMode) -> Dhcpv6GuardSpec {
    Dhcpv6GuardSpec {
        trusted,
        rate_limit_pps: None,
        mode,
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.dhcpv6_guard…` of the merged table `g`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, g: Option<Dhcpv6GuardOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match g.and_then(|g| g.resolve()) {
        None => put(f, &k("dhcpv6_guard"), OFF),
        Some(d) => {
            put(f, &k("dhcpv6_guard.trusted"), d.trusted);
            put(f, &k("dhcpv6_guard.rate_limit_pps"), opt(d.rate_limit_pps));
            put(f, &k("dhcpv6_guard.mode"), mode(d.mode));
        }
    }
}
