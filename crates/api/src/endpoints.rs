//! Request and answer bodies of the API's endpoints (`/v1/...`) other than the
//! switch views (`views`), configuration (`config`) and audit (`audit`): status,
//! counters, events, port operations, bindings, identity, trace and capture.
//!
//! Invariant: plain serde data; a request type refuses unknown fields where the
//! daemon does, so a typo is an error and not an ignored option.

use crate::views::CountersView;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One event as the API shows it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventRecord {
    /// Position in the daemon's event stream: 1, 2, 3 … since it started
    /// (`GET /v1/events?after_seq=N` answers the events after N).
    #[serde(default)]
    pub seq: u64,
    /// Wall-clock time, RFC 3339 in UTC with milliseconds
    /// (`2026-12-07T06:20:31.512Z`), as the audit log writes it.
    pub time: String,
    pub port: String,
    pub event: String,
    pub detail: serde_json::Value,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct StatusView {
    pub switch: String,
    pub uptime_secs: u64,
    pub ports: usize,
    pub mac_entries: usize,
    pub drops: BTreeMap<String, u64>,
    pub events_lost: u64,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct CountersResponse {
    pub ports: Vec<PortCountersEntry>,
    /// All ports, both directions, by reason.
    pub drops: BTreeMap<String, u64>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct PortCountersEntry {
    pub name: String,
    pub counters: CountersView,
}

/// `GET /v1/events` filter.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Only the events after this sequence number (what a follower saw last). A
    /// number beyond the newest event — the daemon restarted since — answers the
    /// whole history.
    pub after_seq: Option<u64>,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ReportMac {
    pub mac: String,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct RecoverAnswer {
    pub port: String,
    /// Whether the port was error-disabled.
    pub recovered: bool,
}

/// `GET /v1/hosts` filter.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct HostsQuery {
    /// Only this VLAN.
    pub vlan: Option<u16>,
}

/// `POST /v1/bindings`: a binding that never expires (source api).
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewBinding {
    pub mac: String,
    pub ip: String,
    pub vlan: u16,
    pub port: String,
    /// Take the address from another (non-static) binding that holds it; without
    /// it such a binding is refused (409 `binding_conflict`). Audited.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// `GET /v1/whoami`.
#[derive(Serialize, Deserialize, Debug)]
pub struct WhoAmI {
    pub user: String,
    pub role: Option<String>,
    pub source: String,
}

/// `POST /v1/ports/{name}/shutdown|enable` answer.
#[derive(Serialize, Deserialize, Debug)]
pub struct AdminStateAnswer {
    pub port: String,
    pub admin_up: bool,
}

/// `POST /v1/trace`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct TraceRequest {
    pub port: String,
    /// The frame from its destination MAC on, as hex.
    pub hex: String,
}

/// `POST /v1/ports/{name}/capture`: every field optional.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// Stop after this many drops (1..=100000, default 1000).
    pub count: Option<u64>,
    /// Stop after this many seconds (1..=300, default 10).
    pub seconds: Option<u64>,
    /// Bytes kept of each frame (1..=65535, default 256).
    pub snaplen: Option<u32>,
}

/// The bounds of a capture request.
pub const CAPTURE_MAX_COUNT: u64 = 100_000;
pub const CAPTURE_MAX_SECONDS: u64 = 300;
pub const CAPTURE_MAX_SNAPLEN: u32 = 65_535;
pub const CAPTURE_DEFAULT_COUNT: u64 = 1000;
pub const CAPTURE_DEFAULT_SECONDS: u64 = 10;
pub const CAPTURE_DEFAULT_SNAPLEN: u32 = 256;

/// One captured frame.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrameView {
    /// Wall-clock receive time, ns since the Unix epoch.
    pub time_ns: u64,
    /// The drop reason (`DropReason::name`).
    pub reason: String,
    /// Length on the wire (the frame may be cut to `snaplen` in `hex`).
    pub orig_len: u32,
    /// Its number among the drops the capture saw (lost frames leave gaps).
    pub seq: u64,
    /// The frame from its destination MAC on, as hex (VLAN tag included).
    pub hex: String,
}

/// `POST /v1/ports/{name}/capture` answer.
#[derive(Serialize, Deserialize, Debug)]
pub struct CaptureAnswer {
    pub port: String,
    pub snaplen: u32,
    pub frames: Vec<CapturedFrameView>,
    /// Drops seen but not copied (the capture's slots were full).
    pub lost: u64,
}
