//! IP Source Guard, whole: `ip_source_guard = "off" | "ip" | "ip-mac"` or a table
//! on a port group or a port — its raw shape (a word or a table), its model (a
//! partial setting merged port over group), its conversion, its part of a guest
//! port's spec (uplinks never guard), and its flattening for diff.
//!
//! Invariant: the word form and the table form of one setting convert to the same
//! model, so they compile and flatten the same.

use crate::config::flat::{Flat, OFF, mode, put};
use crate::config::value::Converter;
use portcullis_dataplane::{EnforceMode, IpSourceGuardSpec, SourceGuard};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use std::fmt;

// ---- shape --------------------------------------------------------------------------

/// `ip_source_guard`: a word, or a table.
#[derive(Debug)]
pub(crate) enum RawIpSourceGuard {
    Word(String),
    Table(RawIpSourceGuardTable),
}

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIpSourceGuardTable {
    pub enabled: Option<bool>,
    pub check: Option<String>,
    pub mode: Option<String>,
}

impl<'de> Deserialize<'de> for RawIpSourceGuard {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawIpSourceGuard;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "\"off\", \"ip\", \"ip-mac\" or a table like { check = \"ip-mac\", mode = \"observe\" }",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawIpSourceGuard, E> {
                Ok(RawIpSourceGuard::Word(v.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawIpSourceGuard, A::Error> {
                RawIpSourceGuardTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawIpSourceGuard::Table)
            }
        }
        d.deserialize_any(V)
    }
}

// ---- model --------------------------------------------------------------------------

/// A partial IP Source Guard setting: `"off"` is `enabled = false`, `"ip"` and
/// `"ip-mac"` are `check` (and `enabled = true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct IpSourceGuardOverride {
    /// Default `true`: stating the guard enables it.
    pub enabled: Option<bool>,
    /// Default `ip-mac`.
    pub check: Option<SourceGuard>,
    /// Default `enforce`.
    pub mode: Option<EnforceMode>,
}

impl IpSourceGuardOverride {
    /// With the defaults applied; `None` when off.
    pub fn resolve(&self) -> Option<IpSourceGuardSpec> {
        if !self.enabled.unwrap_or(true) {
            return None;
        }
        Some(IpSourceGuardSpec {
            check: self.check.unwrap_or(SourceGuard::IpMac),
            mode: self.mode.unwrap_or_default(),
        })
    }
}

crate::config::value::impl_override!(IpSourceGuardOverride {
    enabled,
    check,
    mode
});

/// Why `uplink_policy.ip_source_guard` is refused.
pub(crate) const ON_UPLINKS: &str = "IP Source Guard applies to guest ports only: uplinks carry the addresses of the whole network (set it on a [[port_group]] or [[host.port]])";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `ip_source_guard = "..."` or `{...}` at dotted `key`.
    pub(crate) fn ip_source_guard(
        &mut self,
        key: &str,
        raw: Option<&RawIpSourceGuard>,
    ) -> Option<IpSourceGuardOverride> {
        let before = self.errors.len();
        let out = match raw? {
            RawIpSourceGuard::Word(w) => {
                let word = self.word(
                    key,
                    w,
                    "source-guard setting",
                    &[
                        ("off", None),
                        ("ip", Some(SourceGuard::Ip)),
                        ("ip-mac", Some(SourceGuard::IpMac)),
                    ],
                );
                match word {
                    Some(None) => IpSourceGuardOverride {
                        enabled: Some(false),
                        ..Default::default()
                    },
                    Some(Some(check)) => IpSourceGuardOverride {
                        enabled: Some(true),
                        check: Some(check),
                        mode: None,
                    },
                    None => IpSourceGuardOverride::default(),
                }
            }
            RawIpSourceGuard::Table(t) => IpSourceGuardOverride {
                enabled: t.enabled,
                check: t.check.as_ref().and_then(|w| {
                    let ckey = format!("{key}.check");
                    if w == "off" {
                        self.error(
                            &ckey,
                            "\"off\" is not a check: the check is \"ip\" or \"ip-mac\"; turn the guard off with `enabled = false` (or `ip_source_guard = \"off\"`)",
                        );
                        return None;
                    }
                    self.word(
                        &ckey,
                        w,
                        "source-guard check",
                        &[("ip", SourceGuard::Ip), ("ip-mac", SourceGuard::IpMac)],
                    )
                }),
                mode: t
                    .mode
                    .as_ref()
                    .and_then(|w| self.mode(&format!("{key}.mode"), w)),
            },
        };
        if self.errors.len() != before {
            self.poison.tables.insert(key.to_owned());
        }
        Some(out)
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.ip_source_guard…` of the merged setting `ipsg`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, ipsg: Option<IpSourceGuardOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match ipsg.and_then(|i| i.resolve()) {
        None => put(f, &k("ip_source_guard"), OFF),
        Some(i) => {
            put(f, &k("ip_source_guard.check"), source_guard(i.check));
            put(f, &k("ip_source_guard.mode"), mode(i.mode));
        }
    }
}

pub(crate) fn source_guard(s: SourceGuard) -> &'static str {
    match s {
        SourceGuard::Ip => "ip",
        SourceGuard::IpMac => "ip-mac",
    }
}
