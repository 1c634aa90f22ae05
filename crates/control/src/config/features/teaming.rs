//! NIC teaming, whole: `teaming = {...}` on a port group or a port — its raw
//! shape, its model (a partial table merged port over group; `active` and
//! `standby` replaced whole, resolved over the switch's uplinks), its conversion,
//! the checks of one table and of the lists in force, and its flattening for diff.
//! Whether the uplinks of a team carry the group's VLANs spans port groups and
//! `[uplink_policy]`, so that check is the assembly's (`compile.rs`).
//!
//! Invariant: a team in force names only logical uplinks, each once and in one
//! list, with at least one active; no `teaming` is `teaming = {}`
//! (originating-port over every uplink, failback on).

use crate::config::check::{Checker, quoted_list};
use crate::config::flat::{Flat, list, put};
use crate::config::value::Converter;
use portcullis_dataplane::{TeamingPolicy, TeamingSpec};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

/// `teaming = {...}`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTeaming {
    pub policy: Option<String>,
    pub active: Option<Vec<String>>,
    pub standby: Option<Vec<String>>,
    pub failback: Option<bool>,
}

// ---- model --------------------------------------------------------------------------

/// The words of `teaming.policy`, in documentation order.
pub const TEAMING_POLICY_WORDS: &[(&str, TeamingPolicy)] = &[
    ("originating-port", TeamingPolicy::OriginatingPort),
    ("source-mac-hash", TeamingPolicy::SourceMacHash),
    ("ip-hash", TeamingPolicy::IpHash),
    ("explicit-failover", TeamingPolicy::ExplicitFailover),
];

/// A partial `teaming` table, merged field by field; `active` and `standby` are
/// replaced whole.
#[derive(Clone, Debug, PartialEq, Eq, Default, Hash)]
pub struct TeamingOverride {
    /// Default `originating-port`.
    pub policy: Option<TeamingPolicy>,
    /// Logical uplink names, in order. Default: every uplink of
    /// `uplink_policy.uplinks` (in that order) that `standby` does not list.
    pub active: Option<Vec<String>>,
    /// Default: none.
    pub standby: Option<Vec<String>>,
    /// Default `true`.
    pub failback: Option<bool>,
}

impl TeamingOverride {
    /// With the defaults applied, over the switch's logical `uplinks` (in
    /// `uplink_policy.uplinks` order).
    pub fn resolve(&self, uplinks: &[String]) -> TeamingSpec {
        let standby = self.standby.clone().unwrap_or_default();
        let active = self.active.clone().unwrap_or_else(|| {
            uplinks
                .iter()
                .filter(|u| !standby.contains(u))
                .cloned()
                .collect()
        });
        TeamingSpec {
            policy: self.policy.unwrap_or_default(),
            active,
            standby,
            failback: self.failback.unwrap_or(true),
        }
    }
}

crate::config::value::impl_override!(TeamingOverride {
    policy,
    active,
    standby,
    failback
});

/// Why `uplink_policy.teaming` is refused.
pub(crate) const ON_UPLINKS: &str = "teaming is set per [[port_group]] or [[host.port]]: it chooses which uplink a guest's traffic leaves by (the uplinks themselves are `uplinks` here)";

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    /// `teaming = {...}` at dotted `key`. (The uplink names are stage 2's.)
    pub(crate) fn teaming(
        &mut self,
        key: &str,
        raw: Option<&RawTeaming>,
    ) -> Option<TeamingOverride> {
        let raw = raw?;
        let before = self.errors.len();
        let out = TeamingOverride {
            policy: raw.policy.as_ref().and_then(|w| {
                self.word(
                    &format!("{key}.policy"),
                    w,
                    "teaming policy",
                    TEAMING_POLICY_WORDS,
                )
            }),
            active: raw.active.clone(),
            standby: raw.standby.clone(),
            failback: raw.failback,
        };
        if self.errors.len() != before {
            self.poison.tables.insert(key.to_owned());
        }
        Some(out)
    }
}

// ---- checks -------------------------------------------------------------------------

impl Checker<'_> {
    /// One `teaming` table at `key` on its own: the switch has uplinks
    /// (`uplink_policy.uplinks`, `None` without `[uplink_policy]`), and the lists
    /// name them, each once, `active` not empty. Returns `false` when the switch
    /// has no uplinks (nothing else is worth checking).
    pub(crate) fn team_table(
        &mut self,
        key: &str,
        t: &TeamingOverride,
        uplinks: Option<&[String]>,
    ) -> bool {
        let uplinks: &[String] = match uplinks {
            None => {
                self.error(
                    key,
                    "teaming chooses among the uplinks, and the profile has no [uplink_policy]: add one with `uplinks = [...]`, or remove `teaming`",
                );
                return false;
            }
            Some([]) => {
                let msg = format!(
                    "teaming chooses among the uplinks, and uplink_policy.uplinks is empty ({}): list the uplinks there, or remove `teaming`",
                    self.sources.describe("uplink_policy.uplinks")
                );
                self.error(key, msg);
                return false;
            }
            Some(u) => u,
        };
        if t.active.as_ref().is_some_and(Vec::is_empty) {
            self.error(
                &format!("{key}.active"),
                "the active list is empty: name at least one uplink, or leave `active` out for every uplink that `standby` does not list",
            );
        }
        for (field, list) in [("active", &t.active), ("standby", &t.standby)] {
            let Some(list) = list else {
                continue;
            };
            for (j, u) in list.iter().enumerate() {
                let ukey = format!("{key}.{field}[{j}]");
                if !uplinks.contains(u) {
                    let known: Vec<&str> = uplinks.iter().map(String::as_str).collect();
                    self.error(
                        &ukey,
                        format!(
                            "unknown uplink {u:?}; known uplinks: {} (uplink_policy.uplinks)",
                            quoted_list(&known)
                        ),
                    );
                } else if let Some(k) = list[..j].iter().position(|x| x == u) {
                    self.error(
                        &ukey,
                        format!("uplink {u:?} is listed twice (first as {key}.{field}[{k}])"),
                    );
                }
            }
        }
        true
    }

    /// The team in force at `key` (a port's table over its group's, `base`: the
    /// group's key and table): no uplink both active and standby, and at least one
    /// active uplink. Reported at the table that states the offending list; what
    /// comes only from the group is the group's to report.
    pub(crate) fn team_lists(
        &mut self,
        key: &str,
        own: &TeamingOverride,
        base: Option<(&str, &TeamingOverride)>,
        uplinks: &[String],
    ) {
        let list = |field: &str, pick: fn(&TeamingOverride) -> Option<&Vec<String>>| match pick(own)
        {
            Some(l) => Some((format!("{key}.{field}"), l, true)),
            None => base.and_then(|(bk, b)| Some((format!("{bk}.{field}"), pick(b)?, false))),
        };
        let active = list("active", |t| t.active.as_ref());
        let standby = list("standby", |t| t.standby.as_ref());
        match (active, standby) {
            (Some((ak, a, a_own)), Some((sk, s, s_own))) if a_own || s_own => {
                for (j, u) in s.iter().enumerate() {
                    if !uplinks.contains(u) || s[..j].contains(u) {
                        continue;
                    }
                    let Some(k) = a.iter().position(|x| x == u) else {
                        continue;
                    };
                    let (at, other) = if s_own {
                        (format!("{sk}[{j}]"), format!("{ak}[{k}]"))
                    } else {
                        (format!("{ak}[{k}]"), format!("{sk}[{j}]"))
                    };
                    let msg = format!(
                        "uplink {u:?} is both active and standby ({} lists it too): an uplink is in one list or the other",
                        self.sources.describe(&other)
                    );
                    self.error(&at, msg);
                }
            }
            (None, Some((sk, s, true))) if uplinks.iter().all(|u| s.contains(u)) => {
                self.error(
                    &sk,
                    "standby lists every uplink, which leaves none active: state `active` (the uplinks used while they are up)",
                );
            }
            _ => {}
        }
    }
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.teaming…` of the merged table `team` over the switch's `uplinks`.
pub(crate) fn flatten(
    f: &mut Flat,
    prefix: &str,
    team: Option<TeamingOverride>,
    uplinks: &[String],
) {
    let k = |field: &str| format!("{prefix}.{field}");
    // No `teaming` behaves as `teaming = {}`: originating-port over every uplink.
    let team = team.unwrap_or_default().resolve(uplinks);
    put(f, &k("teaming.policy"), teaming_policy(team.policy));
    put(f, &k("teaming.active"), list(&team.active));
    put(f, &k("teaming.standby"), list(&team.standby));
    put(f, &k("teaming.failback"), team.failback);
}

pub(crate) fn teaming_policy(p: TeamingPolicy) -> &'static str {
    TEAMING_POLICY_WORDS
        .iter()
        .find(|(_, v)| *v == p)
        .map_or("originating-port", |(w, _)| w)
}
