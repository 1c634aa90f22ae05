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

/// Who a runtime port belongs to, as the hypervisor or container runtime that adds
/// it says (libvirt: domain name and UUID; CNI: container id; ovs-vsctl
/// `external-ids`). Shown by `show ports` and `top` as USED-BY; never interpreted.
pub type PortOwner = BTreeMap<String, String>;

/// At most this many owner keys per port, each key ≤ 64 and value ≤ 256 bytes.
pub const OWNER_MAX_KEYS: usize = 16;
pub const OWNER_MAX_KEY_LEN: usize = 64;
pub const OWNER_MAX_VALUE_LEN: usize = 256;

/// `POST /v1/ports/{name}`: a runtime port (host state kept in the state
/// directory, not configuration; see `docs/runtime-ports.md`).
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NewPort {
    /// The Linux interface (TAP, veth) the port attaches to. It need not exist
    /// yet: the port waits in state `no-interface` and attaches when it appears.
    /// Exactly one of `interface` and `vhost_user` is given.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// A vhost-user socket instead of an interface (docs/vhost-user.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost_user: Option<VhostUserSocket>,
    /// The port group. May be left out when `vlan` names the one group with that
    /// access VLAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The access VLAN: selects the group (or, with `group`, must be its VLAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// The guest's initial MAC; without it the port learns it from its first frame
    /// (and afresh whenever its interface is re-created).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Create `interface` as a persistent TAP when it does not exist.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_tap: bool,
    /// The owner's metadata (`domain`, `domain_uuid`, `container_id`, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owner: PortOwner,
    /// Succeed without change if a runtime port of this name exists with the same
    /// interface (`ovs-vsctl --may-exist add-port`); its group, MAC and owner are
    /// then updated as by `PATCH`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub may_exist: bool,
}

/// `PATCH /v1/ports/{name}`: what to change on a runtime port (fields left out
/// stay).
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// A new initial MAC (`""` forgets it: the port learns it again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Owner keys to set; a key with an empty value is removed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owner: PortOwner,
}

/// `DELETE /v1/ports/{name}` query.
#[derive(Serialize, Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RemovePortQuery {
    /// Succeed when there is no such port (`ovs-vsctl --if-exists del-port`).
    #[serde(default)]
    pub if_exists: bool,
}

/// A runtime port's vhost-user socket (`vhost_user` of `NewPort` and
/// `RuntimePortView`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VhostUserSocket {
    /// The Unix socket's absolute path.
    pub socket: String,
    /// `server` (the switch listens, QEMU connects; the default) or `client`
    /// (QEMU listens with `server=on`, the switch connects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// A runtime port as kept in the state directory and shown by
/// `GET /v1/runtime-ports`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RuntimePortView {
    pub name: String,
    /// Its interface; empty for a vhost-user port.
    #[serde(default)]
    pub interface: String,
    /// Its vhost-user socket (mode always given), instead of an interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost_user: Option<VhostUserSocket>,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub create_tap: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub owner: PortOwner,
}

/// `POST`, `PATCH` and `DELETE /v1/ports/{name}` answer.
#[derive(Serialize, Deserialize, Debug)]
pub struct PortChangeAnswer {
    pub port: String,
    /// `added`, `removed`, `changed`, `unchanged` or (`if_exists`) `absent`.
    pub outcome: String,
    /// The runtime port now (none once removed).
    pub runtime_port: Option<RuntimePortView>,
    /// Bindings of the removed port kept aside for its return
    /// (`docs/runtime-ports.md`, grace period).
    #[serde(default)]
    pub bindings_parked: usize,
    /// Parked bindings the added port got back (same port name, or its MAC).
    #[serde(default)]
    pub bindings_restored: usize,
    pub notes: Vec<String>,
}
