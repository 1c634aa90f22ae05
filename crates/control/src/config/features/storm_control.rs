//! Storm control, whole: `storm_control = {...}` on a port group, a port or
//! `[uplink_policy]` — its raw shape, its model (a partial table merged port over
//! group), its conversion and range checks, its part of a port's spec, and its
//! flattening for diff.
//!
//! Invariant: storm control is in force only when enabled (the default once the
//! table is written) and at least one limit is stated; a table that enables it
//! without a limit is refused (`NO_LIMIT`), and a table that is not in force
//! flattens to `off`.

use crate::config::check::Checker;
use crate::config::flat::{Flat, OFF, opt, put};
use crate::config::value::{Converter, Override, RECOVERY_SECS_RANGE, out_of_range};
use portcullis_dataplane::StormControlSpec;
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStormControl {
    pub enabled: Option<bool>,
    pub broadcast_pps: Option<i64>,
    pub multicast_pps: Option<i64>,
    pub unknown_unicast_pps: Option<i64>,
    pub action: Option<String>,
    pub recovery_secs: Option<i64>,
}

// ---- model --------------------------------------------------------------------------

/// Bounds of the storm-control limits (`*_pps`).
pub const STORM_PPS_RANGE: std::ops::RangeInclusive<u64> = 0..=10_000_000;

/// What storm control does with traffic over a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum StormAction {
    /// Drop the excess (the default).
    #[default]
    Drop,
    /// Error-disable the port.
    Shutdown,
}

/// A partial storm-control table, merged like [`PortSecurityOverride`](crate::config::PortSecurityOverride).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct StormControlOverride {
    /// Default `true`: the table's presence enables storm control.
    pub enabled: Option<bool>,
    pub broadcast_pps: Option<u32>,
    pub multicast_pps: Option<u32>,
    pub unknown_unicast_pps: Option<u32>,
    pub action: Option<StormAction>,
    /// Err-disable auto-recovery interval.
    pub recovery_secs: Option<u64>,
}

impl StormControlOverride {
    /// Whether storm control is on: enabled (by default) and at least one limit.
    pub fn is_active(&self) -> bool {
        self.enabled.unwrap_or(true) && self.has_limit()
    }

    /// Whether any of the three limits is stated.
    pub fn has_limit(&self) -> bool {
        self.broadcast_pps.is_some()
            || self.multicast_pps.is_some()
            || self.unknown_unicast_pps.is_some()
    }
}

crate::config::value::impl_override!(StormControlOverride {
    enabled,
    broadcast_pps,
    multicast_pps,
    unknown_unicast_pps,
    action,
    recovery_secs
});

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `storm_control = {...}` at dotted `key`.
    pub(crate) fn storm_control(
        &mut self,
        key: &str,
        raw: Option<&RawStormControl>,
    ) -> Option<StormControlOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let mut pps = |field: &str, v: Option<i64>| {
            v.and_then(|v| self.int(&format!("{key}.{field}"), v, &STORM_PPS_RANGE))
        };
        let out = StormControlOverride {
            enabled: raw.enabled,
            broadcast_pps: pps("broadcast_pps", raw.broadcast_pps),
            multicast_pps: pps("multicast_pps", raw.multicast_pps),
            unknown_unicast_pps: pps("unknown_unicast_pps", raw.unknown_unicast_pps),
            action: raw.action.as_ref().and_then(|w| {
                self.word(
                    &format!("{key}.action"),
                    w,
                    "storm-control action",
                    &[
                        ("drop", StormAction::Drop),
                        ("shutdown", StormAction::Shutdown),
                    ],
                )
            }),
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
    /// The values of one `storm_control` table at `key`.
    /// A table of its own at `key` (a group's, or the uplinks'): its values, and a
    /// limit when it enables storm control (`poisoned`: a value of it did not
    /// convert, so whether it states a limit is unknown).
    pub(crate) fn storm_control_own(
        &mut self,
        key: &str,
        sc: &StormControlOverride,
        poisoned: bool,
    ) {
        self.storm_table(key, sc);
        if sc.enabled != Some(false) && !sc.has_limit() && !poisoned {
            self.error(key, NO_LIMIT);
        }
    }

    /// A port's table at `key` over its group's (`group`): its values, and a limit
    /// in the merged table when that enables storm control — unless the group's
    /// own table was already refused for the same reason.
    pub(crate) fn storm_control_port(
        &mut self,
        key: &str,
        own: &StormControlOverride,
        group: Option<&StormControlOverride>,
        poisoned: bool,
    ) {
        self.storm_table(key, own);
        let group_reported = group.is_some_and(|g| g.enabled != Some(false) && !g.has_limit());
        if let Some(m) = StormControlOverride::merge(group, Some(own))
            && m.enabled != Some(false)
            && !m.has_limit()
            && !group_reported
            && !poisoned
        {
            self.error(key, NO_LIMIT);
        }
    }

    pub(crate) fn storm_table(&mut self, key: &str, sc: &StormControlOverride) {
        for (field, v) in [
            ("broadcast_pps", sc.broadcast_pps),
            ("multicast_pps", sc.multicast_pps),
            ("unknown_unicast_pps", sc.unknown_unicast_pps),
        ] {
            if let Some(v) = v.filter(|v| !STORM_PPS_RANGE.contains(&u64::from(*v))) {
                self.error(&format!("{key}.{field}"), out_of_range(v, &STORM_PPS_RANGE));
            }
        }
        if let Some(r) = sc
            .recovery_secs
            .filter(|r| !RECOVERY_SECS_RANGE.contains(r))
        {
            self.error(
                &format!("{key}.recovery_secs"),
                out_of_range(r, &RECOVERY_SECS_RANGE),
            );
        }
    }
}

pub(crate) const NO_LIMIT: &str = "storm control sets no limit: state broadcast_pps, multicast_pps and/or unknown_unicast_pps (or `enabled = false`)";

// ---- spec ---------------------------------------------------------------------------

pub(crate) fn spec(sc: &StormControlOverride) -> StormControlSpec {
    StormControlSpec {
        broadcast_pps: sc.broadcast_pps,
        multicast_pps: sc.multicast_pps,
        unknown_unicast_pps: sc.unknown_unicast_pps,
        shutdown: sc.action == Some(StormAction::Shutdown),
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.storm_control…`: off unless enabled with at least one limit.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, sc: Option<StormControlOverride>) {
    let k = |field: &str| format!("{prefix}.storm_control{field}");
    match sc.filter(StormControlOverride::is_active) {
        None => put(f, &k(""), OFF),
        Some(sc) => {
            put(f, &k(".broadcast_pps"), opt(sc.broadcast_pps));
            put(f, &k(".multicast_pps"), opt(sc.multicast_pps));
            put(f, &k(".unknown_unicast_pps"), opt(sc.unknown_unicast_pps));
            let action = match sc.action.unwrap_or_default() {
                StormAction::Drop => "drop",
                StormAction::Shutdown => "shutdown",
            };
            put(f, &k(".action"), action);
            put(f, &k(".recovery_secs"), opt(sc.recovery_secs));
        }
    }
}
