//! Port security, whole: `port_security = {...}` on a port group or a port — its
//! raw shape, its model (a partial table merged port over group, resolved with
//! the defaults), its conversion and range checks, its part of a guest port's
//! spec, and its flattening for diff. The static secure MACs (`secure_macs`) are
//! the port's and are counted against `max_macs` in the assembly, which sees the
//! port's initial MAC too.
//!
//! Invariant: port security is in force when the merged table exists and does not
//! say `enabled = false`; `aging` other than `none` needs `aging_secs`.

use crate::config::check::Checker;
use crate::config::flat::{Flat, OFF, opt, put};
use crate::config::value::{Converter, RECOVERY_SECS_RANGE, out_of_range};
use portcullis_dataplane::{MacAddr, PortSecuritySpec, SecureAging, Violation};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPortSecurity {
    pub enabled: Option<bool>,
    pub max_macs: Option<i64>,
    pub violation: Option<String>,
    pub sticky: Option<bool>,
    pub aging: Option<String>,
    pub aging_secs: Option<i64>,
    pub recovery_secs: Option<i64>,
}

// ---- model --------------------------------------------------------------------------

/// Default of `port_security.max_macs`.
pub const DEFAULT_MAX_MACS: u16 = 1;

/// Bounds of `port_security.max_macs`.
pub const MAX_MACS_RANGE: std::ops::RangeInclusive<u64> = 1..=4096;

/// Bounds of `port_security.aging_secs`.
pub const SECURE_AGING_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=1_000_000;

/// A partial port-security table: the settings a group or port states. A port's
/// settings are merged over its group's, field by field; unstated fields take the
/// defaults ([`PortSecurityOverride::resolve`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct PortSecurityOverride {
    /// Default `true`: the table's presence enables port security.
    pub enabled: Option<bool>,
    pub max_macs: Option<u16>,
    pub violation: Option<Violation>,
    pub sticky: Option<bool>,
    pub aging: Option<SecureAging>,
    pub aging_secs: Option<u64>,
    /// Err-disable auto-recovery interval.
    pub recovery_secs: Option<u64>,
}

/// Port security in force on a port, the static and sticky MACs aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResolvedPortSecurity {
    pub max_macs: u16,
    pub violation: Violation,
    pub sticky: bool,
    pub aging: SecureAging,
    /// 0 when not stated (meaningless while `aging` is `None`).
    pub aging_secs: u64,
    pub recovery_secs: Option<u64>,
}

impl PortSecurityOverride {
    /// With the defaults applied; `None` when `enabled = false`.
    pub fn resolve(&self) -> Option<ResolvedPortSecurity> {
        if !self.enabled.unwrap_or(true) {
            return None;
        }
        Some(ResolvedPortSecurity {
            max_macs: self.max_macs.unwrap_or(DEFAULT_MAX_MACS),
            violation: self.violation.unwrap_or_default(),
            sticky: self.sticky.unwrap_or(false),
            aging: self.aging.unwrap_or_default(),
            aging_secs: self.aging_secs.unwrap_or(0),
            recovery_secs: self.recovery_secs,
        })
    }
}

crate::config::value::impl_override!(PortSecurityOverride {
    enabled,
    max_macs,
    violation,
    sticky,
    aging,
    aging_secs,
    recovery_secs
});

/// Why `uplink_policy.port_security` is refused.
pub(crate) const ON_UPLINKS: &str = "port security applies to guest ports only: uplinks carry the MACs of the whole network (set it on a [[port_group]] or [[host.port]])";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `port_security = {...}` at dotted `key`.
    pub(crate) fn port_security(
        &mut self,
        key: &str,
        raw: Option<&RawPortSecurity>,
    ) -> Option<PortSecurityOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let out = PortSecurityOverride {
            enabled: raw.enabled,
            max_macs: raw
                .max_macs
                .and_then(|v| self.int(&format!("{key}.max_macs"), v, &MAX_MACS_RANGE)),
            violation: raw.violation.as_ref().and_then(|w| {
                self.word(
                    &format!("{key}.violation"),
                    w,
                    "violation action",
                    &[
                        ("protect", Violation::Protect),
                        ("restrict", Violation::Restrict),
                        ("shutdown", Violation::Shutdown),
                    ],
                )
            }),
            sticky: raw.sticky,
            aging: raw.aging.as_ref().and_then(|w| {
                self.word(
                    &format!("{key}.aging"),
                    w,
                    "secure-MAC aging",
                    &[
                        ("none", SecureAging::None),
                        ("absolute", SecureAging::Absolute),
                        ("inactivity", SecureAging::Inactivity),
                    ],
                )
            }),
            aging_secs: raw
                .aging_secs
                .and_then(|v| self.int(&format!("{key}.aging_secs"), v, &SECURE_AGING_SECS_RANGE)),
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
    /// The values of one `port_security` table at `key` (ranges; stage 1 checked
    /// what did not fit the model's types).
    /// A table at `key` on its own and over `merged` (the table in force: the
    /// table itself for a group's, the port's over its group's for a port's):
    /// its values, and `aging` with `aging_secs` (`poisoned`: a value of either
    /// table did not convert).
    pub(crate) fn port_security_over(
        &mut self,
        key: &str,
        ps: &PortSecurityOverride,
        merged: Option<&PortSecurityOverride>,
        poisoned: bool,
    ) {
        self.port_security_table(key, ps);
        if !poisoned && let Some(m) = merged {
            self.aging_needs_secs(key, ps, m);
        }
    }

    pub(crate) fn port_security_table(&mut self, key: &str, ps: &PortSecurityOverride) {
        if let Some(m) = ps
            .max_macs
            .filter(|m| !MAX_MACS_RANGE.contains(&u64::from(*m)))
        {
            self.error(&format!("{key}.max_macs"), out_of_range(m, &MAX_MACS_RANGE));
        }
        if let Some(a) = ps
            .aging_secs
            .filter(|a| !SECURE_AGING_SECS_RANGE.contains(a))
        {
            self.error(
                &format!("{key}.aging_secs"),
                out_of_range(a, &SECURE_AGING_SECS_RANGE),
            );
        }
        if let Some(r) = ps
            .recovery_secs
            .filter(|r| !RECOVERY_SECS_RANGE.contains(r))
        {
            self.error(
                &format!("{key}.recovery_secs"),
                out_of_range(r, &RECOVERY_SECS_RANGE),
            );
        }
    }

    /// `aging` stated in the table at `key` needs `aging_secs` in the merged table.
    pub(crate) fn aging_needs_secs(
        &mut self,
        key: &str,
        stated: &PortSecurityOverride,
        merged: &PortSecurityOverride,
    ) {
        let Some(aging) = stated.aging.filter(|a| *a != SecureAging::None) else {
            return;
        };
        if merged.aging_secs.is_none() {
            let word = match aging {
                SecureAging::Absolute => "absolute",
                _ => "inactivity",
            };
            self.error(
                &format!("{key}.aging"),
                format!(
                    "aging = \"{word}\" needs aging_secs ({}..={}): how long a dynamic secure MAC lives",
                    SECURE_AGING_SECS_RANGE.start(),
                    SECURE_AGING_SECS_RANGE.end()
                ),
            );
        }
    }
}

// ---- spec ---------------------------------------------------------------------------

/// The spec of port security in force, with the port's static secure MACs.
pub(crate) fn spec(r: ResolvedPortSecurity, static_macs: &[MacAddr]) -> PortSecuritySpec {
    PortSecuritySpec {
        max_macs: r.max_macs,
        violation: r.violation,
        sticky: r.sticky,
        aging: r.aging,
        aging_secs: r.aging_secs,
        static_macs: static_macs.to_vec(),
        sticky_macs: Vec::new(),
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.port_security…` of the merged table `ps`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, ps: Option<PortSecurityOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match ps.and_then(|t| t.resolve()) {
        None => put(f, &k("port_security"), OFF),
        Some(r) => {
            put(f, &k("port_security.max_macs"), r.max_macs);
            put(f, &k("port_security.violation"), violation(r.violation));
            put(f, &k("port_security.sticky"), r.sticky);
            put(f, &k("port_security.aging"), aging(r.aging));
            // The interval means nothing without aging.
            if r.aging != SecureAging::None {
                put(f, &k("port_security.aging_secs"), r.aging_secs);
            }
            put(f, &k("port_security.recovery_secs"), opt(r.recovery_secs));
        }
    }
}

pub(crate) fn violation(v: Violation) -> &'static str {
    match v {
        Violation::Protect => "protect",
        Violation::Restrict => "restrict",
        Violation::Shutdown => "shutdown",
    }
}

pub(crate) fn aging(a: SecureAging) -> &'static str {
    match a {
        SecureAging::None => "none",
        SecureAging::Absolute => "absolute",
        SecureAging::Inactivity => "inactivity",
    }
}
