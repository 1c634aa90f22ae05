//! The flat view's shared leaf: the [`Flat`] map (dotted key → canonical value
//! text), the words for "off" and "not set", and the writers every feature's
//! flattening uses. What the view holds and why is `crate::diff`'s comment; each
//! feature flattens its own settings in its module.
//!
//! Invariant: one canonical text per value (as in TOML, without quotes), so two
//! configurations that behave the same flatten to the same map.

use portcullis_dataplane::EnforceMode;
use std::collections::BTreeMap;

/// Dotted key → canonical value text, every effective setting included (defaults
/// too), so that two configurations that behave the same flatten the same however
/// they were written.
pub type Flat = BTreeMap<String, String>;

/// The value of a feature that is off.
pub const OFF: &str = "off";

/// The value of an optional setting that is not set.
pub const NONE: &str = "none";

pub(crate) fn put(f: &mut Flat, key: &str, value: impl ToString) {
    f.insert(key.to_owned(), value.to_string());
}

/// An optional setting: its value, or `none`.
pub(crate) fn opt(v: Option<impl ToString>) -> String {
    v.map_or_else(|| NONE.to_owned(), |v| v.to_string())
}

/// `[a, b]`.
pub(crate) fn list(items: &[impl AsRef<str>]) -> String {
    let items: Vec<&str> = items.iter().map(AsRef::as_ref).collect();
    format!("[{}]", items.join(", "))
}
pub(crate) fn mode(m: EnforceMode) -> &'static str {
    match m {
        EnforceMode::Enforce => "enforce",
        EnforceMode::Observe => "observe",
    }
}
