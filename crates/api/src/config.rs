//! The configuration endpoints' bodies: `GET /v1/config` and
//! `POST /v1/config/apply`, and one [`Change`] of a diff (which
//! `portcullis_control::diff` computes).
//!
//! Invariant: configuration travels as texts ([`SourceText`]), never as paths the
//! daemon would open.

use serde::{Deserialize, Serialize};

/// A configuration file's text and the name that labels it in errors.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SourceText {
    pub name: String,
    pub text: String,
}

/// `POST /v1/config/apply`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    pub profile: SourceText,
    /// The host binding; omitted: the profile's own `[host]`, or else the running one.
    #[serde(default)]
    pub host: Option<SourceText>,
    /// Validate and show the diff only.
    #[serde(default)]
    pub dry_run: bool,
}

/// The answer of an apply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApplyAnswer {
    pub applied: bool,
    pub changes: Vec<Change>,
    /// `changes`, rendered one per line.
    pub diff: String,
    /// What the swap kept and dropped (absent for a dry run or no change).
    pub carry_over: Option<serde_json::Value>,
    /// Changes that take effect only at the next daemon start.
    pub notes: Vec<String>,
}

/// `GET /v1/config`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConfigView {
    /// The profile, without the host binding (golden, host-independent).
    pub profile: SourceText,
    /// The host binding, as a file whose only table is `[host]`.
    pub host: SourceText,
    /// Every effective setting as `key = value` (profile and per port).
    pub flat: std::collections::BTreeMap<String, String>,
    /// The runtime ports: host state kept by the daemon, not part of the profile
    /// or the host binding (`docs/runtime-ports.md`).
    #[serde(default)]
    pub runtime_ports: Vec<crate::endpoints::RuntimePortView>,
}

/// One difference between two flat views: `before` is `None` for an added key,
/// `after` is `None` for a removed one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub key: String,
    pub before: Option<String>,
    pub after: Option<String>,
}
