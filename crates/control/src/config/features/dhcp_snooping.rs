//! DHCP snooping, whole: `dhcp_snooping = {...}` on a port group or a port, and
//! the uplinks' trust (`uplink_policy.dhcp_trusted`) — its raw shape, its model (a
//! partial table merged port over group; option 82's policy is part of it), its
//! conversion and range checks, its part of a guest port's and an uplink's spec,
//! and its flattening for diff. Static bindings, which DHCP snooping, ARP
//! inspection and IP Source Guard all accept, are `static_bindings.rs`.
//!
//! Invariant: an uplink snoops only when some group or port enables snooping, in
//! the strictest mode any of them asks for (the assembly computes the mode), and
//! is never policed or stripped of option 82.

use crate::config::check::Checker;
use crate::config::flat::{Flat, OFF, mode, opt, put};
use crate::config::value::{Converter, RECOVERY_SECS_RANGE, RateLimit, RawRate};
use portcullis_dataplane::{DhcpSnoopingSpec, EnforceMode, Option82};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDhcpSnooping {
    pub enabled: Option<bool>,
    pub trusted: Option<bool>,
    pub rate_limit_pps: Option<RawRate>,
    pub option82: Option<String>,
    pub drop_untrusted_option82: Option<bool>,
    pub mode: Option<String>,
    pub recovery_secs: Option<i64>,
}

// ---- model --------------------------------------------------------------------------

/// A partial `dhcp_snooping` table, merged like [`PortSecurityOverride`](crate::config::PortSecurityOverride).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct DhcpSnoopingOverride {
    /// Default `true`: the table's presence enables DHCP snooping.
    pub enabled: Option<bool>,
    /// Default `false`: guest ports are untrusted.
    pub trusted: Option<bool>,
    /// Default: no limit.
    pub rate_limit_pps: Option<RateLimit>,
    /// Default `keep`.
    pub option82: Option<Option82>,
    /// Default `true`.
    pub drop_untrusted_option82: Option<bool>,
    /// Default `enforce`.
    pub mode: Option<EnforceMode>,
    /// Err-disable auto-recovery interval (after the rate limit).
    pub recovery_secs: Option<u64>,
}

impl DhcpSnoopingOverride {
    /// With the defaults applied; `None` when `enabled = false`.
    pub fn resolve(&self) -> Option<DhcpSnoopingSpec> {
        if !self.enabled.unwrap_or(true) {
            return None;
        }
        Some(DhcpSnoopingSpec {
            trusted: self.trusted.unwrap_or(false),
            rate_limit_pps: self.rate_limit_pps.and_then(RateLimit::pps),
            option82: self.option82.unwrap_or_default(),
            drop_untrusted_option82: self.drop_untrusted_option82.unwrap_or(true),
            mode: self.mode.unwrap_or_default(),
        })
    }
}

crate::config::value::impl_override!(DhcpSnoopingOverride {
    enabled,
    trusted,
    rate_limit_pps,
    option82,
    drop_untrusted_option82,
    mode,
    recovery_secs
});

/// Why `uplink_policy.dhcp_snooping` is refused.
pub(crate) const ON_UPLINKS: &str = "DHCP snooping is enabled per [[port_group]] or [[host.port]]; the uplinks' part is their trust: `dhcp_trusted = true` (the default) or `false`";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `dhcp_snooping = {...}` at dotted `key`.
    pub(crate) fn dhcp_snooping(
        &mut self,
        key: &str,
        raw: Option<&RawDhcpSnooping>,
    ) -> Option<DhcpSnoopingOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let out = DhcpSnoopingOverride {
            enabled: raw.enabled,
            trusted: raw.trusted,
            rate_limit_pps: raw
                .rate_limit_pps
                .as_ref()
                .and_then(|r| self.rate(&format!("{key}.rate_limit_pps"), r)),
            option82: raw.option82.as_ref().and_then(|w| {
                self.word(
                    &format!("{key}.option82"),
                    w,
                    "policy for option 82",
                    &[("keep", Option82::Keep), ("insert", Option82::Insert)],
                )
            }),
            drop_untrusted_option82: raw.drop_untrusted_option82,
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
    /// The values of one `dhcp_snooping` table at `key`.
    pub(crate) fn dhcp_table(&mut self, key: &str, t: &DhcpSnoopingOverride) {
        self.rate_limit(key, t.rate_limit_pps);
        self.recovery_range(key, t.recovery_secs);
    }
}

// ---- spec ---------------------------------------------------------------------------

/// DHCP snooping on an uplink when some group or port enables it, in `mode`.
pub(crate) fn uplink_spec(trusted: bool, mode: EnforceMode) -> DhcpSnoopingSpec {
    // An untrusted uplink is never policed (it carries a whole network) and
    // keeps option 82 (relay agents upstream add it).
    DhcpSnoopingSpec {
        trusted,
        rate_limit_pps: None,
        option82: Option82::Keep,
        drop_untrusted_option82: false,
        mode,
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.dhcp_snooping…` of the merged table `dhcp`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, dhcp: Option<DhcpSnoopingOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match dhcp.as_ref().and_then(DhcpSnoopingOverride::resolve) {
        None => put(f, &k("dhcp_snooping"), OFF),
        Some(d) => {
            put(f, &k("dhcp_snooping.trusted"), d.trusted);
            put(f, &k("dhcp_snooping.rate_limit_pps"), opt(d.rate_limit_pps));
            put(f, &k("dhcp_snooping.option82"), option82(d.option82));
            put(
                f,
                &k("dhcp_snooping.drop_untrusted_option82"),
                d.drop_untrusted_option82,
            );
            put(f, &k("dhcp_snooping.mode"), mode(d.mode));
            put(
                f,
                &k("dhcp_snooping.recovery_secs"),
                opt(dhcp.and_then(|t| t.recovery_secs)),
            );
        }
    }
}

pub(crate) fn option82(o: Option82) -> &'static str {
    match o {
        Option82::Keep => "keep",
        Option82::Insert => "insert",
    }
}
