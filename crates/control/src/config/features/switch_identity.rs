//! The switch itself, whole: `[switch]` — its name and table sizes (MAC table,
//! MAC aging, bindings) — its raw shape, model, conversion, checks and its
//! flattening for diff. The spec's header (`SwitchSpec`) is built by the assembly.
//!
//! Invariant: every size in a compiled spec is within its documented bounds (the
//! checks run on configurations built in code too, not only on parsed ones).

use crate::config::check::Checker;
use crate::config::flat::{Flat, put};
use crate::config::value::{Converter, out_of_range};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSwitch {
    pub name: String,
    pub mac_table_size: Option<i64>,
    pub mac_aging_secs: Option<i64>,
    pub max_bindings: Option<i64>,
}

// ---- model --------------------------------------------------------------------------

/// Default of `switch.mac_table_size`.
pub const DEFAULT_MAC_TABLE_SIZE: u64 = 65_536;

/// Bounds of `switch.mac_table_size`.
pub const MAC_TABLE_SIZE_RANGE: std::ops::RangeInclusive<u64> = 1..=1_048_576;

/// Default of `switch.mac_aging_secs`.
pub const DEFAULT_MAC_AGING_SECS: u64 = 300;

/// Bounds of `switch.mac_aging_secs`.
pub const MAC_AGING_SECS_RANGE: std::ops::RangeInclusive<u64> = 10..=1_000_000;

/// Default of `switch.max_bindings` (the data plane's default).
pub const DEFAULT_MAX_BINDINGS: u64 = portcullis_dataplane::DEFAULT_MAX_BINDINGS as u64;

/// Bounds of `switch.max_bindings`.
pub const MAX_BINDINGS_RANGE: std::ops::RangeInclusive<u64> = 1..=16_777_216;

/// `[switch]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchSettings {
    pub name: String,
    pub mac_table_size: u64,
    pub mac_aging_secs: u64,
    /// The most bindings (DHCP snooping, static, API) the switch holds.
    pub max_bindings: u64,
}

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `[switch]`, with the defaults of the sizes not stated.
    pub(crate) fn switch(&mut self, raw: RawSwitch) -> SwitchSettings {
        SwitchSettings {
            name: raw.name,
            mac_table_size: self.bounded(
                "switch.mac_table_size",
                raw.mac_table_size,
                DEFAULT_MAC_TABLE_SIZE,
                MAC_TABLE_SIZE_RANGE,
            ),
            mac_aging_secs: self.bounded(
                "switch.mac_aging_secs",
                raw.mac_aging_secs,
                DEFAULT_MAC_AGING_SECS,
                MAC_AGING_SECS_RANGE,
            ),
            max_bindings: self.bounded(
                "switch.max_bindings",
                raw.max_bindings,
                DEFAULT_MAX_BINDINGS,
                MAX_BINDINGS_RANGE,
            ),
        }
    }
}

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// `[switch]`: a valid name, every size in its bounds.
    pub(crate) fn switch(&mut self, sw: &SwitchSettings) {
        self.name("switch.name", "switch", &sw.name);
        if !MAC_TABLE_SIZE_RANGE.contains(&sw.mac_table_size) {
            self.error(
                "switch.mac_table_size",
                out_of_range(sw.mac_table_size, &MAC_TABLE_SIZE_RANGE),
            );
        }
        if !MAC_AGING_SECS_RANGE.contains(&sw.mac_aging_secs) {
            self.error(
                "switch.mac_aging_secs",
                out_of_range(sw.mac_aging_secs, &MAC_AGING_SECS_RANGE),
            );
        }
        if !MAX_BINDINGS_RANGE.contains(&sw.max_bindings) {
            self.error(
                "switch.max_bindings",
                out_of_range(sw.max_bindings, &MAX_BINDINGS_RANGE),
            );
        }
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `switch.…`: the name and the sizes, defaults included.
pub(crate) fn flatten(f: &mut Flat, sw: &SwitchSettings) {
    put(f, "switch.name", &sw.name);
    put(f, "switch.mac_table_size", sw.mac_table_size);
    put(f, "switch.mac_aging_secs", sw.mac_aging_secs);
    put(f, "switch.max_bindings", sw.max_bindings);
}
