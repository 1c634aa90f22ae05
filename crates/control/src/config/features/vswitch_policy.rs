//! The vSwitch security policy, whole: `security = { promiscuous, mac_changes,
//! forged_transmits }` on a port group or a port — its raw shape, its model (a
//! partial policy: port over group over `reject`), its conversion, its part of a
//! guest port's spec, and its flattening for diff.
//!
//! Invariant: an unstated setting is `reject`; uplinks always run the default
//! (all `reject`), which only guest-facing checks read.

use crate::config::flat::{Flat, put};
use crate::config::value::Converter;
use portcullis_dataplane::{Policy, SecurityPolicy};
use serde::Deserialize;

// ---- shape --------------------------------------------------------------------------

#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSecurity {
    pub promiscuous: Option<String>,
    pub mac_changes: Option<String>,
    pub forged_transmits: Option<String>,
}

// ---- model --------------------------------------------------------------------------

/// A partial security policy: the settings a group or port states. Unstated
/// settings come from the level above (port ← group ← `reject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct SecurityOverride {
    pub promiscuous: Option<Policy>,
    pub mac_changes: Option<Policy>,
    pub forged_transmits: Option<Policy>,
}

impl SecurityOverride {
    /// `base` with the stated settings replaced.
    pub fn apply(&self, base: SecurityPolicy) -> SecurityPolicy {
        SecurityPolicy {
            promiscuous: self.promiscuous.unwrap_or(base.promiscuous),
            mac_changes: self.mac_changes.unwrap_or(base.mac_changes),
            forged_transmits: self.forged_transmits.unwrap_or(base.forged_transmits),
        }
    }
    pub fn is_empty(&self) -> bool {
        *self == SecurityOverride::default()
    }
}

// ---- conversion ---------------------------------------------------------------------

impl Converter<'_> {
    pub(crate) fn security(&mut self, key: &str, raw: &RawSecurity) -> SecurityOverride {
        SecurityOverride {
            promiscuous: self.policy(&format!("{key}.promiscuous"), &raw.promiscuous),
            mac_changes: self.policy(&format!("{key}.mac_changes"), &raw.mac_changes),
            forged_transmits: self
                .policy(&format!("{key}.forged_transmits"), &raw.forged_transmits),
        }
    }

    pub(crate) fn policy(&mut self, key: &str, word: &Option<String>) -> Option<Policy> {
        match word.as_deref()? {
            "accept" => Some(Policy::Accept),
            "reject" => Some(Policy::Reject),
            other => {
                self.error(
                    key,
                    format!("{other:?} is not a policy: expected \"accept\" or \"reject\""),
                );
                None
            }
        }
    }
}

// ---- spec ---------------------------------------------------------------------------

/// The policy in force on a guest port: the port's settings over its group's over
/// `reject` (`port`: `None` for the group's own view).
pub(crate) fn spec(group: &SecurityOverride, port: Option<&SecurityOverride>) -> SecurityPolicy {
    let group_policy = group.apply(SecurityPolicy::default());
    port.map_or(group_policy, |p| p.apply(group_policy))
}

// ---- flattening for diff ------------------------------------------------------------

/// `<prefix>.security.…`: the three settings in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, sec: SecurityPolicy) {
    let k = |field: &str| format!("{prefix}.{field}");
    put(f, &k("security.promiscuous"), policy(sec.promiscuous));
    put(f, &k("security.mac_changes"), policy(sec.mac_changes));
    put(
        f,
        &k("security.forged_transmits"),
        policy(sec.forged_transmits),
    );
}

pub(crate) fn policy(p: Policy) -> &'static str {
    match p {
        Policy::Accept => "accept",
        Policy::Reject => "reject",
    }
}
