//! The audit log as the API shows it: one [`AuditRecord`] (the line format of the
//! log `portcullis_control::audit` writes) and `GET /v1/audit`'s query and answer.
//!
//! Invariant: a record is shown exactly as stored (its `hash` and `prev` fields
//! included), so a client can check the chain itself.

use serde::{Deserialize, Serialize};

/// One audited call.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    /// 1 for the first record, then +1 per record.
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds (`2026-11-26T21:51:50.123Z`).
    pub time: String,
    /// The caller (`uid:0`).
    pub user: String,
    /// The caller's role (`admin`, or `none` for a caller without one).
    pub role: String,
    /// Where the call came from (`unix:pid=123,uid=0`).
    pub source: String,
    /// What was asked (`binding.add`, `port.recover`, …).
    pub action: String,
    /// The call's arguments.
    pub args: serde_json::Value,
    /// `ok`, `refused: …` or `error: …`.
    pub result: String,
    /// `hash` of the previous record.
    pub prev: String,
    /// SHA-256 of this record's line with `hash` empty.
    pub hash: String,
}

/// `GET /v1/audit` filters.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub user: Option<String>,
    pub action: Option<String>,
    /// RFC 3339.
    pub since: Option<String>,
    /// The last N matching records (default 1000).
    pub limit: Option<usize>,
}

/// `GET /v1/audit` answer.
#[derive(Serialize, Deserialize, Debug)]
pub struct AuditView {
    /// `null` when the chain verifies, else the first bad record.
    pub verify_error: Option<String>,
    pub total: usize,
    pub records: Vec<AuditRecord>,
}
