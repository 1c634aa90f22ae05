//! The CNI protocol as this plugin speaks it (CNI spec 1.0 and 1.1): the
//! environment of a call, the network configuration on stdin, the result and the
//! error printed on stdout, and the names the plugin derives from an attachment.
//!
//! Invariants: parsing never panics and says what is wrong; a container id and an
//! interface name are checked against the spec's rules before any name is derived
//! from them, so a derived port name is always a valid port name (1..=64 of
//! `A-Za-z0-9._-`) and a host veth name a valid Linux interface name (≤ 15 bytes).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// The spec versions this plugin accepts in `cniVersion` (GC and STATUS are 1.1).
pub const SUPPORTED_VERSIONS: &[&str] = &["1.0.0", "1.1.0"];

/// The owner key that marks a port as this plugin's (GC removes only those).
pub const OWNER_MARK: (&str, &str) = ("cni", "portcullis");

/// The spec's well-known error codes, and ours (100+).
pub mod code {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO_FAILURE: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_CONFIG: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    pub const NOT_AVAILABLE: u32 = 50;
    /// The switch refused the change (its API error is in the message).
    pub const SWITCH_REFUSED: u32 = 100;
    /// CHECK found the attachment not as ADD left it.
    pub const CHECK_FAILED: u32 = 101;
}

/// A CNI error, printed as `{"cniVersion", "code", "msg", "details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniError {
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }
}

/// One attachment the runtime still uses (GC's `cni.dev/valid-attachments`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The network configuration on stdin: the spec's keys and ours. Unknown keys are
/// accepted (runtimes add their own, such as `runtimeConfig` or `args`).
#[derive(Debug, Clone, Deserialize)]
pub struct NetConf {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The IPAM plugin's configuration; its `type` names the plugin in CNI_PATH.
    #[serde(default)]
    pub ipam: Option<Value>,
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<CniResult>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The daemon's Unix socket (else PORTCULLIS_SOCKET, else the default).
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Reach the daemon over TCP+TLS instead (`host:port`), trusting `ca`, with the
    /// bearer token in `token_file`.
    #[serde(default)]
    pub api: Option<String>,
    #[serde(default)]
    pub ca: Option<PathBuf>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// The port group; or `vlan`, the access VLAN naming one group.
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub vlan: Option<u16>,
    /// The veth's MTU (both ends); the kernel's default when absent.
    #[serde(default)]
    pub mtu: Option<u32>,
}

impl NetConf {
    /// Parses and checks the configuration: the version, our keys.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(
                code::DECODE,
                format!("the network configuration on stdin is not valid: {e}"),
            )
        })?;
        if conf.kind.is_empty() || conf.name.is_empty() {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "the network configuration needs \"name\" and \"type\"",
            ));
        }
        if !SUPPORTED_VERSIONS.contains(&conf.cni_version.as_str()) {
            return Err(CniError::new(
                code::INCOMPATIBLE_VERSION,
                format!(
                    "cniVersion {:?} is not supported: portcullis-cni speaks {}",
                    conf.cni_version,
                    SUPPORTED_VERSIONS.join(", ")
                ),
            ));
        }
        if conf.group.is_none() && conf.vlan.is_none() {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!(
                    "network {:?}: the configuration needs \"group\" (a port group of the switch) or \"vlan\" (an access VLAN)",
                    conf.name
                ),
            ));
        }
        if let Some(mtu) = conf.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("\"mtu\" {mtu} is not in 68..=65535"),
            ));
        }
        Ok(conf)
    }

    /// The IPAM plugin's name (`ipam.type`), checked to be a plain file name.
    pub fn ipam_type(&self) -> Result<Option<&str>, CniError> {
        let Some(ipam) = &self.ipam else {
            return Ok(None);
        };
        let kind = ipam.get("type").and_then(Value::as_str).ok_or_else(|| {
            CniError::new(
                code::INVALID_CONFIG,
                "\"ipam\" has no \"type\" (the IPAM plugin, e.g. \"host-local\")",
            )
        })?;
        if kind.is_empty() || kind.contains('/') || kind.starts_with('.') {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                format!("ipam type {kind:?} is not a plugin name"),
            ));
        }
        Ok(Some(kind))
    }
}

/// A CNI result (spec 1.0/1.1 shape).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub dns: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IpConfig {
    /// CIDR: `198.18.5.2/16`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address and prefix length.
    pub fn cidr(&self) -> Result<(std::net::IpAddr, u8), CniError> {
        parse_cidr(&self.address)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub dst: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
    /// The spec's other route keys (`mtu`, `priority`, …), passed through.
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// `198.18.5.2/16` → (address, 16).
pub fn parse_cidr(s: &str) -> Result<(std::net::IpAddr, u8), CniError> {
    let bad = || CniError::new(code::DECODE, format!("{s:?} is not an address/prefix"));
    let (ip, prefix) = s.split_once('/').ok_or_else(bad)?;
    let ip: std::net::IpAddr = ip.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok((ip, prefix))
}

/// The spec's rule for a container id: an alphanumeric, then alphanumerics, `_`,
/// `.`, `-`.
pub fn check_container_id(id: &str) -> Result<(), CniError> {
    let ok = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            format!(
                "CNI_CONTAINERID {id:?} is not a container id (an alphanumeric, then alphanumerics, '_', '.', '-')"
            ),
        ))
    }
}

/// The spec's rule for an interface name: 1..=15 bytes, no `/`, `:` or white
/// space, not `.` or `..`.
pub fn check_ifname(name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_IFNAME {name:?} is not an interface name"),
        ))
    }
}

fn digest(container_id: &str, ifname: &str) -> String {
    let mut h = Sha256::new();
    h.update(container_id.as_bytes());
    h.update([0]);
    h.update(ifname.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The switch port of an attachment: `cni-` + the container id's first 12
/// characters + `-` + 8 hex of a hash of (container id, ifname). 25 bytes at most.
pub fn port_name(container_id: &str, ifname: &str) -> String {
    let short: String = container_id.chars().take(12).collect();
    format!("cni-{short}-{}", &digest(container_id, ifname)[..8])
}

/// The host end of the attachment's veth: `pc` + 11 hex of the same hash (13
/// bytes).
pub fn host_veth(container_id: &str, ifname: &str) -> String {
    format!("pc{}", &digest(container_id, ifname)[..11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_follow_the_rules_and_differ_per_attachment() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let p = port_name(id, "eth0");
        assert!(p.len() <= 64 && p.starts_with("cni-0123456789ab-"), "{p}");
        assert!(
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
        assert_ne!(p, port_name(id, "eth1"));
        assert_ne!(
            port_name("test-container-1", "eth0"),
            port_name("test-container-2", "eth0")
        );
        let v = host_veth(id, "eth0");
        assert_eq!(v.len(), 13);
        assert_ne!(v, host_veth(id, "eth1"));
    }

    #[test]
    fn ids_and_interface_names_are_checked() {
        assert!(check_container_id("abc-1.2_3").is_ok());
        for bad in ["", "-abc", "a/b", "a b", "ä"] {
            assert_eq!(check_container_id(bad).unwrap_err().code, code::INVALID_ENV);
        }
        assert!(check_ifname("eth0").is_ok());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "0123456789abcdef"] {
            assert!(check_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_config_is_checked_with_the_right_codes() {
        let e = NetConf::parse(b"{not json").unwrap_err();
        assert_eq!(e.code, code::DECODE);
        let e = NetConf::parse(
            br#"{"cniVersion":"0.3.1","name":"n","type":"portcullis-cni","group":"g"}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, code::INCOMPATIBLE_VERSION);
        let e = NetConf::parse(br#"{"cniVersion":"1.0.0","name":"n","type":"portcullis-cni"}"#)
            .unwrap_err();
        assert_eq!(e.code, code::INVALID_CONFIG);
        let c = NetConf::parse(
            br#"{"cniVersion":"1.1.0","name":"n","type":"portcullis-cni","group":"g",
                "ipam":{"type":"host-local"},"runtimeConfig":{},"cni.dev/valid-attachments":[{"containerID":"c1","ifname":"eth0"}]}"#,
        )
        .unwrap();
        assert_eq!(c.ipam_type().unwrap(), Some("host-local"));
        assert_eq!(c.valid_attachments.unwrap()[0].container_id, "c1");
    }

    #[test]
    fn the_docs_network_example_is_a_valid_configuration() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cni.md");
        let docs = std::fs::read_to_string(path).unwrap();
        let block = docs
            .split("```json\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .find(|b| b.contains("\"plugins\""))
            .expect("docs/cni.md shows a conflist");
        let list: Value = serde_json::from_str(block).unwrap();
        let mut plugin = list["plugins"][0].clone();
        plugin["cniVersion"] = list["cniVersion"].clone();
        plugin["name"] = list["name"].clone();
        let conf = NetConf::parse(plugin.to_string().as_bytes()).unwrap();
        assert_eq!(conf.kind, "portcullis-cni");
        assert_eq!(conf.ipam_type().unwrap(), Some("host-local"));
    }

    #[test]
    fn a_result_round_trips_with_the_spec_keys() {
        let text = r#"{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","mac":"aa:bb:cc:dd:ee:ff","sandbox":"/run/netns/x"}],
            "ips":[{"address":"198.18.5.2/16","gateway":"198.18.0.1","interface":0}],
            "routes":[{"dst":"0.0.0.0/0","priority":5}],"dns":{"nameservers":["198.18.0.1"]}}"#;
        let r: CniResult = serde_json::from_str(text).unwrap();
        assert_eq!(r.ips[0].cidr().unwrap().1, 16);
        assert_eq!(r.routes[0].other["priority"], 5);
        let back: Value = serde_json::to_value(&r).unwrap();
        assert_eq!(back["interfaces"][0]["sandbox"], "/run/netns/x");
        assert_eq!(back["routes"][0]["priority"], 5);
    }
}
