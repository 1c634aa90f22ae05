//! The shared leaf of stage 2 (names, cross-references, limits): the [`Checker`]
//! context every feature's checks run on, and the helpers they share to name
//! things in messages (quoted lists, VLAN lists, names in file order).
//!
//! Invariant: a check only records located errors; it never changes the model, so
//! the order in which the features run their checks changes only the order of
//! errors before they are sorted by position.

use super::error::ConfigError;
use super::source::Sources;
use super::value::out_of_range;
use super::value::{
    MAX_NAME_LEN, NO_LIMIT_WORD, RATE_LIMIT_PPS_RANGE, RECOVERY_SECS_RANGE, RateLimit,
};
use portcullis_dataplane::Vid;
use std::collections::HashMap;

pub(crate) struct Checker<'a> {
    pub(crate) sources: &'a Sources,
    pub(crate) errors: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(self.sources.error(key, message));
    }

    /// Switch, uplink, port group, port and MAC ACL names: 1..=64 bytes, no
    /// whitespace or control characters.
    pub(crate) fn name(&mut self, key: &str, what: &str, name: &str) {
        let problem = if name.is_empty() {
            Some(format!("{what} name must not be empty"))
        } else if name.len() > MAX_NAME_LEN {
            Some(format!(
                "{what} name is {} bytes long; at most {MAX_NAME_LEN} allowed",
                name.len()
            ))
        } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            Some(format!(
                "{what} name {name:?} contains whitespace or control characters"
            ))
        } else {
            None
        };
        if let Some(m) = problem {
            self.error(key, m);
        }
    }
}

/// `"a", "b", "c"`.
pub(crate) fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The names of `map` (name → index) in index order.
pub(crate) fn names_in_order<'a>(map: &HashMap<&'a str, usize>) -> Vec<&'a str> {
    let mut known: Vec<(&str, usize)> = map.iter().map(|(n, i)| (*n, *i)).collect();
    known.sort_by_key(|(_, i)| *i);
    known.into_iter().map(|(n, _)| n).collect()
}

/// VLANs as a short list with ranges: `10, 20, 100-103`.
pub(crate) fn vid_list(vids: &[Vid]) -> String {
    portcullis_dataplane::vid_list(vids.iter().copied(), ", ")
}

impl Checker<'_> {
    /// A rate limit at `key.rate_limit_pps` is in range.
    pub(crate) fn rate_limit(&mut self, key: &str, r: Option<RateLimit>) {
        let Some(RateLimit::Pps(n)) = r else {
            return;
        };
        if RATE_LIMIT_PPS_RANGE.contains(&u64::from(n)) {
            return;
        }
        let mut msg = out_of_range(n, &RATE_LIMIT_PPS_RANGE);
        if n == 0 {
            msg.push_str(&format!(
                "; for no limit write rate_limit_pps = \"{NO_LIMIT_WORD}\""
            ));
        }
        self.error(&format!("{key}.rate_limit_pps"), msg);
    }

    /// `recovery_secs` at `key.recovery_secs` is in range.
    pub(crate) fn recovery_range(&mut self, key: &str, r: Option<u64>) {
        if let Some(r) = r.filter(|r| !RECOVERY_SECS_RANGE.contains(r)) {
            self.error(
                &format!("{key}.recovery_secs"),
                out_of_range(r, &RECOVERY_SECS_RANGE),
            );
        }
    }
}
