//! The cluster's keys in etcd and the format of every value (docs/cluster.md).
//!
//! Layout, under one prefix (`/portcullis/v1/` by default):
//!
//! | key                               | value            | lease      |
//! |-----------------------------------|------------------|------------|
//! | `profile`                         | [`ProfileRecord`]| none       |
//! | `canary`                          | [`CanaryRecord`] | none       |
//! | `hosts/{host}`                    | [`HostRecord`]   | the host's |
//! | `status/{host}`                   | [`HostStatus`]   | the host's |
//! | `ports/{port}`                    | [`LogicalPort`]  | none       |
//! | `bindings/{port}/{vlan}/{ip}`     | [`BindingValue`] | none       |
//! | `secure-macs/{port}/{mac}`        | [`SecureMacValue`]| none      |
//!
//! The profile's generation is its key's etcd `mod_revision`: every store makes a
//! new one, and it orders them. A port's owner changes only by a transaction that
//! compares the port key's `mod_revision` with the one the claimant read, so two
//! claims of one revision cannot both win. Bindings are keyed by the logical port
//! (its name, unique in the cluster), not by the host serving it.
//!
//! Invariant: every value carries `format`; a reader accepts exactly
//! [`FORMAT`] and refuses anything else with a [`SchemaError`] naming the key —
//! a value written by hand, or by a newer release, is reported, never guessed at
//! and never overwritten by a host that cannot read it.

use portcullis_dataplane::MacAddr;
use portcullis_dataplane::bindings::{BindingSource, DuidKey};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The value format this release writes and reads.
pub const FORMAT: u32 = 1;

/// The default key prefix (schema version 1).
pub const DEFAULT_PREFIX: &str = "/portcullis/v1/";

/// Why a stored value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("key {key}: value is not JSON of the expected shape: {message}")]
    Malformed { key: String, message: String },
    #[error("key {key}: value format {found} is not {FORMAT}, the format this release reads")]
    UnknownFormat { key: String, found: u64 },
    #[error("key {key} is not a key of the cluster's layout")]
    UnknownKey { key: String },
}

/// The switch profile every host applies (profile only: each host keeps its own
/// host binding).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRecord {
    pub format: u32,
    /// A label for messages (the file it was stored from).
    pub name: String,
    /// The profile's TOML, without `[host]`.
    pub text: String,
    /// Who stored it (user@machine), and when (Unix seconds).
    pub stored_by: String,
    pub stored_unix: u64,
}

/// A profile tried on one host first (`apply --cluster --canary HOST`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRecord {
    pub format: u32,
    pub host: String,
    pub name: String,
    pub text: String,
    pub stored_by: String,
    pub stored_unix: u64,
}

/// A live host (under its lease: the key goes when the host stops renewing it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRecord {
    pub format: u32,
    pub host: String,
    /// The daemon's release.
    pub version: String,
    /// The machine's name and the daemon's PID (for "host-id already live").
    pub hostname: String,
    pub pid: u32,
    pub started_unix: u64,
    /// The host's API address (`[host.management] tcp_listen`), if it has one.
    #[serde(default)]
    pub api: Option<String>,
    /// The host's overlay tunnel endpoint (`[host.overlay] local_ip`), if any.
    #[serde(default)]
    pub overlay_endpoint: Option<IpAddr>,
}

/// What a host reports of itself (under its lease, rewritten when it changes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostStatus {
    pub format: u32,
    pub host: String,
    pub version: String,
    /// `ok`, or `degraded` with the reason in `error`.
    pub health: String,
    /// The profile generation (the `profile` key's mod_revision) last applied; 0:
    /// none yet.
    pub generation: i64,
    /// The canary generation applied, while this host is the canary.
    #[serde(default)]
    pub canary_generation: Option<i64>,
    /// Why the last profile (or canary) was not applied; `None` when it was.
    #[serde(default)]
    pub error: Option<String>,
    pub ports: usize,
    pub bindings: usize,
    /// The running profile and host binding (for `check --cluster`).
    pub profile_text: String,
    pub host_text: String,
    pub updated_unix: u64,
}

/// A logical port: a guest NIC of the switch, wherever it is served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalPort {
    pub format: u32,
    /// The host serving it.
    pub owner: String,
    /// Its guest's MACs (configured or learned).
    pub macs: Vec<MacAddr>,
    pub group: String,
    /// The owner metadata of the runtime port (USED-BY).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub claimed_unix: u64,
    /// `away`: its owner no longer serves it (the guest stopped there); any host
    /// may claim it without waiting for the guest's first frame.
    pub state: PortState,
}

/// Whether a logical port is being served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Active,
    Away,
}

/// One binding of a logical port (its port, VLAN and address are in the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindingValue {
    pub format: u32,
    pub mac: MacAddr,
    pub source: BindingSource,
    /// Unix seconds; `None`: no expiry (API bindings).
    pub lease_end_unix: Option<u64>,
    pub updated_unix: u64,
    #[serde(default)]
    pub duid: Option<DuidKey>,
    /// The host that wrote it (provenance).
    pub written_by: String,
}

/// A sticky secure MAC of port security learned on a logical port (its port and
/// MAC are in the key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureMacValue {
    pub format: u32,
    pub learned_unix: u64,
    pub written_by: String,
}

/// The keys under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

/// What a key under the prefix names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Profile,
    Canary,
    Host(String),
    Status(String),
    Port(String),
    Binding { port: String, vlan: u16, ip: IpAddr },
    SecureMac { port: String, mac: MacAddr },
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    /// `prefix` ends with `/` (added if missing).
    pub fn new(prefix: &str) -> Keys {
        let mut prefix = prefix.to_string();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Keys { prefix }
    }
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn profile(&self) -> String {
        format!("{}profile", self.prefix)
    }
    pub fn canary(&self) -> String {
        format!("{}canary", self.prefix)
    }
    pub fn hosts(&self) -> String {
        format!("{}hosts/", self.prefix)
    }
    pub fn host(&self, host: &str) -> String {
        format!("{}hosts/{host}", self.prefix)
    }
    pub fn statuses(&self) -> String {
        format!("{}status/", self.prefix)
    }
    pub fn status(&self, host: &str) -> String {
        format!("{}status/{host}", self.prefix)
    }
    pub fn ports(&self) -> String {
        format!("{}ports/", self.prefix)
    }
    pub fn port(&self, port: &str) -> String {
        format!("{}ports/{port}", self.prefix)
    }
    pub fn bindings(&self) -> String {
        format!("{}bindings/", self.prefix)
    }
    /// The bindings of one port (a prefix).
    pub fn port_bindings(&self, port: &str) -> String {
        format!("{}bindings/{port}/", self.prefix)
    }
    pub fn binding(&self, port: &str, vlan: u16, ip: IpAddr) -> String {
        format!("{}bindings/{port}/{vlan}/{ip}", self.prefix)
    }
    /// The secure MACs of one port (a prefix).
    pub fn port_secure_macs(&self, port: &str) -> String {
        format!("{}secure-macs/{port}/", self.prefix)
    }
    pub fn secure_mac(&self, port: &str, mac: MacAddr) -> String {
        format!("{}secure-macs/{port}/{mac}", self.prefix)
    }

    /// The range of keys a host watches, [from, to): `canary`, `hosts/…`,
    /// `ports/…` and `profile` (they sort between `canary` and `profile\0`), not
    /// `bindings/…`, `secure-macs/…` or `status/…`.
    pub fn watched_range(&self) -> (String, String) {
        (self.canary(), format!("{}\0", self.profile()))
    }

    /// What `key` names; `None` for a key outside the prefix.
    pub fn kind(&self, key: &str) -> Option<Result<KeyKind, SchemaError>> {
        let rest = key.strip_prefix(&self.prefix)?;
        let unknown = || SchemaError::UnknownKey {
            key: key.to_string(),
        };
        let name = |s: &str| (!s.is_empty() && !s.contains('/')).then(|| s.to_string());
        let parts: Vec<&str> = rest.split('/').collect();
        let kind = match parts.as_slice() {
            ["profile"] => Some(KeyKind::Profile),
            ["canary"] => Some(KeyKind::Canary),
            ["hosts", h] => name(h).map(KeyKind::Host),
            ["status", h] => name(h).map(KeyKind::Status),
            ["ports", p] => name(p).map(KeyKind::Port),
            ["bindings", p, vlan, ip] => match (name(p), vlan.parse::<u16>(), ip.parse()) {
                (Some(port), Ok(vlan), Ok(ip)) if (1..=4094).contains(&vlan) => {
                    Some(KeyKind::Binding { port, vlan, ip })
                }
                _ => None,
            },
            ["secure-macs", p, mac] => match (name(p), mac.parse::<MacAddr>()) {
                (Some(port), Ok(mac)) => Some(KeyKind::SecureMac { port, mac }),
                _ => None,
            },
            _ => None,
        };
        Some(kind.ok_or_else(unknown))
    }
}

/// Reads a value of `key`: JSON with `format` equal to [`FORMAT`].
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, SchemaError> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| SchemaError::Malformed {
            key: key.to_string(),
            message: e.to_string(),
        })?;
    match v.get("format").and_then(serde_json::Value::as_u64) {
        Some(f) if f == u64::from(FORMAT) => {}
        Some(found) => {
            return Err(SchemaError::UnknownFormat {
                key: key.to_string(),
                found,
            });
        }
        None => {
            return Err(SchemaError::Malformed {
                key: key.to_string(),
                message: "no numeric \"format\" field".into(),
            });
        }
    }
    serde_json::from_value(v).map_err(|e| SchemaError::Malformed {
        key: key.to_string(),
        message: e.to_string(),
    })
}

/// Writes a value (JSON).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // The schema's types are plain data: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_round_trip_through_their_kind() {
        let k = Keys::default();
        let ip: IpAddr = "fd00:198:18::5".parse().unwrap();
        assert_eq!(
            k.kind(&k.binding("vm1", 10, ip)),
            Some(Ok(KeyKind::Binding {
                port: "vm1".into(),
                vlan: 10,
                ip
            }))
        );
        assert_eq!(
            k.kind(&k.port("vm1")),
            Some(Ok(KeyKind::Port("vm1".into())))
        );
        assert_eq!(k.kind(&k.host("h1")), Some(Ok(KeyKind::Host("h1".into()))));
        assert_eq!(k.kind(&k.profile()), Some(Ok(KeyKind::Profile)));
        assert_eq!(k.kind("/other/profile"), None);
        for bad in [
            "bindings/vm1/0/198.18.0.1",
            "bindings/vm1/10/x",
            "ports/",
            "x",
            "ports/a/b",
        ] {
            assert!(
                matches!(
                    k.kind(&format!("/portcullis/v1/{bad}")),
                    Some(Err(SchemaError::UnknownKey { .. }))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_watched_range_holds_what_a_host_acts_on_and_no_lease_traffic() {
        let k = Keys::default();
        let (from, to) = k.watched_range();
        let ip: IpAddr = "198.18.10.5".parse().unwrap();
        let inside = |key: &str| key >= from.as_str() && key < to.as_str();
        for key in [k.canary(), k.host("h1"), k.port("vm1"), k.profile()] {
            assert!(inside(&key), "{key}");
        }
        for key in [
            k.binding("vm1", 10, ip),
            k.secure_mac("vm1", MacAddr([2, 0, 0, 0, 0, 1])),
            k.status("h1"),
            "/portcullis/v1/profile-x".to_string(),
        ] {
            assert!(!inside(&key), "{key}");
        }
    }

    #[test]
    fn a_value_of_another_format_or_shape_is_refused_by_name() {
        let port = LogicalPort {
            format: FORMAT,
            owner: "h1".into(),
            macs: vec![MacAddr([0x52, 0x54, 0, 0, 0, 1])],
            group: "web".into(),
            metadata: BTreeMap::new(),
            claimed_unix: 5,
            state: PortState::Active,
        };
        let bytes = encode(&port);
        assert_eq!(decode::<LogicalPort>("k", &bytes), Ok(port));
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["format"] = 2.into();
        assert_eq!(
            decode::<LogicalPort>("k", &serde_json::to_vec(&v).unwrap()),
            Err(SchemaError::UnknownFormat {
                key: "k".into(),
                found: 2
            })
        );
        v["format"] = 1.into();
        v["surprise"] = true.into();
        assert!(matches!(
            decode::<LogicalPort>("k", &serde_json::to_vec(&v).unwrap()),
            Err(SchemaError::Malformed { .. })
        ));
        assert!(matches!(
            decode::<LogicalPort>("k", b"owner=h1"),
            Err(SchemaError::Malformed { .. })
        ));
    }

    proptest! {
        /// Any bytes under any key: an error or a value, never a panic.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), key in ".{0,40}") {
            let _ = decode::<BindingValue>(&key, &bytes);
            let _ = decode::<HostStatus>(&key, &bytes);
            let _ = Keys::default().kind(&key);
        }
    }
}
