//! Runtime ports: the guest ports that hypervisors, container runtimes and
//! operators add, change and remove while the switch runs (`POST`, `PATCH` and
//! `DELETE /v1/ports/{name}`; `portcullis port add|set|remove`; the integrations).
//! They are host state, like the host binding — never part of a profile — kept in
//! `runtime-ports.json` in the state directory and merged, after the configured
//! ports, into every configuration the daemon compiles: at start, on an apply, on a
//! port change. A port change is therefore an apply of the running configuration
//! with one port more, less or different (the one reconfiguration path,
//! `plan::prepare` and the carry-over): every other port keeps its socket and state.
//!
//! Invariants: the file lists exactly the runtime ports that run (it is written
//! after a change is swapped in, and a change whose file cannot be written is taken
//! back); it is replaced atomically (written beside, fsync'd, renamed, the directory
//! fsync'd); a runtime port's name and interface are unique among all ports; an
//! unreadable file stops the start with its path rather than dropping ports.

use portcullis_api::{
    NewPort, OWNER_MAX_KEY_LEN, OWNER_MAX_KEYS, OWNER_MAX_VALUE_LEN, VhostUserSocket,
};
pub use portcullis_api::{PortOwner, RuntimePortView as RuntimePort};
use portcullis_control::config::{HostPort, VhostUser, VhostUserMode};
use portcullis_control::{CompiledConfig, Config, ConfigErrors};
use portcullis_dataplane::MacAddr;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file in the state directory.
pub const FILE: &str = "runtime-ports.json";

/// The most runtime ports a switch holds (the data plane numbers ports with a u16;
/// this leaves room for the configured ones).
pub const MAX_RUNTIME_PORTS: usize = 4096;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDisk {
    /// Format version: 1.
    version: u32,
    ports: Vec<RuntimePort>,
}

/// The runtime ports, in the order they were added (their place in the switch's
/// port numbering, after the configured ports).
#[derive(Debug, Clone)]
pub struct RuntimePorts {
    path: PathBuf,
    pub ports: Vec<RuntimePort>,
}

impl RuntimePorts {
    /// Reads `runtime-ports.json` from `state_dir` (none: no runtime ports).
    pub fn load(state_dir: &Path) -> Result<RuntimePorts, String> {
        let path = state_dir.join(FILE);
        let ports = match std::fs::read(&path) {
            Ok(bytes) => {
                let disk: OnDisk = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{}: not a runtime-port file: {e}", path.display()))?;
                if disk.version != 1 {
                    return Err(format!(
                        "{}: format version {} is not one this daemon reads (1)",
                        path.display(),
                        disk.version
                    ));
                }
                disk.ports
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        Ok(RuntimePorts { path, ports })
    }

    /// None, kept nowhere (in-memory daemons of the tests).
    pub fn none(state_dir: &Path) -> RuntimePorts {
        RuntimePorts {
            path: state_dir.join(FILE),
            ports: Vec::new(),
        }
    }

    /// Writes the file (blocking: fsync).
    pub fn save(&self) -> std::io::Result<()> {
        let disk = OnDisk {
            version: 1,
            ports: self.ports.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&disk).map_err(std::io::Error::other)?;
        crate::running_config::write_atomically(&self.path, &bytes)
    }

    pub fn get(&self, name: &str) -> Option<&RuntimePort> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// Owner metadata by port name, for the API's views.
    pub fn owners(&self) -> std::collections::BTreeMap<String, PortOwner> {
        self.ports
            .iter()
            .map(|p| (p.name.clone(), p.owner.clone()))
            .collect()
    }
}

/// How long a removed runtime port's bindings wait for the port (or another port
/// with its MAC) to come back: a VM restarting or migrating back keeps its leases.
pub const BINDING_GRACE_SECS: u64 = 3600;

/// The most bindings kept parked (the oldest go first).
pub const MAX_PARKED: usize = 16384;

/// The bindings of removed runtime ports, waiting for their port (by name) or their
/// guest (by MAC) to come back, for [`BINDING_GRACE_SECS`] at most and never past
/// their lease. Their records stay in the binding database meanwhile; one whose
/// grace ends is removed from it (unless a port holds the address again).
/// Invariant: at most [`MAX_PARKED`] entries, one per (VLAN, IP), oldest first.
#[derive(Debug, Default)]
pub struct ParkedBindings {
    entries: std::collections::VecDeque<(crate::bindings_store::BindingRecord, u64)>,
}

impl ParkedBindings {
    /// Parks `records` (their port was removed) at `now_unix`; the oldest parked
    /// bindings make room, and are returned to be dropped from the store.
    pub fn park(
        &mut self,
        records: Vec<crate::bindings_store::BindingRecord>,
        now_unix: u64,
    ) -> Vec<crate::bindings_store::BindingRecord> {
        let mut evicted = Vec::new();
        for r in records {
            self.entries
                .retain(|(p, _)| !(p.vlan == r.vlan && p.ip == r.ip));
            if self.entries.len() == MAX_PARKED
                && let Some((old, _)) = self.entries.pop_front()
            {
                evicted.push(old);
            }
            self.entries.push_back((r, now_unix));
        }
        evicted
    }

    /// Takes the live parked bindings of port `name`, or of a guest with `mac`.
    pub fn take_for(
        &mut self,
        name: &str,
        mac: Option<MacAddr>,
        now_unix: u64,
    ) -> Vec<crate::bindings_store::BindingRecord> {
        let mut taken = Vec::new();
        self.entries.retain(|(r, at)| {
            let mine = r.port == name || Some(r.mac) == mac;
            let live = now_unix < at + BINDING_GRACE_SECS && !r.expired_at(now_unix);
            if mine && live {
                taken.push(r.clone());
                false
            } else {
                true
            }
        });
        taken
    }

    /// Removes and returns the bindings whose grace or lease has ended.
    pub fn expire(&mut self, now_unix: u64) -> Vec<crate::bindings_store::BindingRecord> {
        let mut gone = Vec::new();
        self.entries.retain(|(r, at)| {
            let live = now_unix < at + BINDING_GRACE_SECS && !r.expired_at(now_unix);
            if !live {
                gone.push(r.clone());
            }
            live
        });
        gone
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `config` with the runtime ports appended to its host binding's ports.
pub fn merged(config: &Config, ports: &[RuntimePort]) -> Result<Config, String> {
    let mut c = config.clone();
    for p in ports {
        let mac = p
            .mac
            .as_deref()
            .map(parse_mac)
            .transpose()
            .map_err(|e| format!("runtime port {:?}: {e}", p.name))?;
        let mut port = HostPort::plain(&p.name, &p.interface, &p.group, mac, p.create_tap);
        if let Some(v) = &p.vhost_user {
            port.vhost_user =
                Some(vhost_user(v).map_err(|e| format!("runtime port {:?}: {e}", p.name))?);
        }
        c.host.ports.push(port);
    }
    Ok(c)
}

/// What the daemon runs: `config` with the runtime ports, compiled.
pub fn compile(config: &Config, ports: &[RuntimePort]) -> Result<CompiledConfig, String> {
    merged(config, ports)?
        .compile()
        .map_err(|e: ConfigErrors| e.to_string())
}

/// A MAC as `aa:bb:cc:dd:ee:ff`: a unicast address a guest may use.
pub fn parse_mac(s: &str) -> Result<MacAddr, String> {
    let mac: MacAddr = s
        .parse()
        .map_err(|_| format!("{s:?} is not a MAC address (aa:bb:cc:dd:ee:ff)"))?;
    if !mac.is_valid_source() {
        return Err(format!(
            "{s:?} cannot be a guest's MAC (multicast, broadcast or all zeros)"
        ));
    }
    Ok(mac)
}

/// A Linux interface name: 1..=15 bytes, no '/', ':', whitespace or control
/// characters, not `.` or `..` (what the kernel's `dev_valid_name` accepts, less ':'
/// which names aliases).
pub fn check_interface_name(s: &str) -> Result<(), String> {
    let bad = s.is_empty()
        || s.len() > 15
        || s == "."
        || s == ".."
        || s.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(format!(
            "{s:?} is not an interface name (1 to 15 bytes, no '/', ':' or whitespace)"
        ));
    }
    Ok(())
}

/// A port name: 1..=64 characters of `[A-Za-z0-9._-]` (what a URL path carries
/// without escaping, and what libvirt, Proxmox and CNI name NICs with).
pub fn check_port_name(s: &str) -> Result<(), String> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{s:?} is not a port name (1 to 64 of A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// Owner metadata within its bounds.
pub fn check_owner(owner: &PortOwner) -> Result<(), String> {
    if owner.len() > OWNER_MAX_KEYS {
        return Err(format!("at most {OWNER_MAX_KEYS} owner keys"));
    }
    for (k, v) in owner {
        if k.is_empty() || k.len() > OWNER_MAX_KEY_LEN || k.chars().any(char::is_control) {
            return Err(format!(
                "owner key {k:?}: 1 to {OWNER_MAX_KEY_LEN} bytes without control characters"
            ));
        }
        if v.len() > OWNER_MAX_VALUE_LEN || v.chars().any(char::is_control) {
            return Err(format!(
                "owner value of {k:?}: at most {OWNER_MAX_VALUE_LEN} bytes without control characters"
            ));
        }
    }
    Ok(())
}

/// The port group a request names: `group`, or the one group whose access VLAN is
/// `vlan`; with both, the group's VLAN must be `vlan`.
pub fn resolve_group(
    config: &Config,
    group: Option<&str>,
    vlan: Option<u16>,
) -> Result<String, String> {
    use portcullis_control::config::GroupVlan;
    let access = |g: &portcullis_control::config::PortGroup| match &g.vlan {
        GroupVlan::Access(v) => Some(v.get()),
        GroupVlan::Trunk { .. } => None,
    };
    let groups = &config.profile.port_groups;
    match (group, vlan) {
        (Some(name), vlan) => {
            let g = groups
                .iter()
                .find(|g| g.name == name)
                .ok_or_else(|| format!("no port group named {name:?}"))?;
            if let Some(v) = vlan
                && access(g) != Some(v)
            {
                return Err(format!(
                    "port group {name:?} is not access VLAN {v} (the VLAN comes from the group)"
                ));
            }
            Ok(g.name.clone())
        }
        (None, Some(v)) => {
            let mut with = groups.iter().filter(|g| access(g) == Some(v));
            match (with.next(), with.next()) {
                (Some(g), None) => Ok(g.name.clone()),
                (None, _) => Err(format!(
                    "no port group has access VLAN {v}: name one with `group`"
                )),
                (Some(a), Some(b)) => Err(format!(
                    "port groups {:?} and {:?} both have access VLAN {v}: name one with `group`",
                    a.name, b.name
                )),
            }
        }
        (None, None) => Err("a port needs a group (or an access VLAN that names one)".into()),
    }
}

/// The most bytes of a vhost-user socket path (what `sockaddr_un` holds, less its
/// terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// A runtime port's vhost-user socket as the configuration's: an absolute path
/// that fits a Unix socket address, and a known mode (`server` when left out).
pub fn vhost_user(v: &VhostUserSocket) -> Result<VhostUser, String> {
    let s = &v.socket;
    if !s.starts_with('/')
        || s.len() > MAX_SOCKET_PATH
        || s.chars().any(|c| c == '\0' || c.is_control())
        || s.ends_with('/')
    {
        return Err(format!(
            "{s:?} is not a vhost-user socket path (absolute, at most {MAX_SOCKET_PATH} bytes, no control characters)"
        ));
    }
    let mode = match v.mode.as_deref() {
        None => VhostUserMode::Server,
        Some(m) => VhostUserMode::from_name(m)
            .ok_or_else(|| format!("unknown vhost-user mode {m:?}; modes: server, client"))?,
    };
    Ok(VhostUser {
        socket: s.clone(),
        mode,
    })
}

/// The runtime port a request describes, checked on its own (names, MAC, owner,
/// group; exactly one of an interface and a vhost-user socket); what it conflicts
/// with is the caller's to check against the switch.
pub fn from_request(config: &Config, name: &str, req: &NewPort) -> Result<RuntimePort, String> {
    check_port_name(name)?;
    let vhost_user = match (&req.vhost_user, req.interface.is_empty()) {
        (Some(_), false) => {
            return Err("a port has an interface or a vhost-user socket, not both".into());
        }
        (None, true) => {
            return Err("a port needs an interface or a vhost-user socket".into());
        }
        (Some(v), true) => {
            let v = vhost_user(v)?;
            if req.create_tap {
                return Err("a vhost-user port has no TAP to create".into());
            }
            Some(VhostUserSocket {
                socket: v.socket,
                mode: Some(v.mode.name().to_string()),
            })
        }
        (None, false) => {
            check_interface_name(&req.interface)?;
            None
        }
    };
    check_owner(&req.owner)?;
    let mac = req.mac.as_deref().map(parse_mac).transpose()?;
    let group = resolve_group(config, req.group.as_deref(), req.vlan)?;
    Ok(RuntimePort {
        name: name.to_string(),
        interface: req.interface.clone(),
        vhost_user,
        group,
        mac: mac.map(|m| m.to_string()),
        create_tap: req.create_tap,
        owner: req.owner.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        portcullis_control::parse_str(
            r#"
[switch]
name = "t"
[[port_group]]
name = "web"
vlan = 10
[[port_group]]
name = "web-b"
vlan = 10
[[port_group]]
name = "db"
vlan = 20
[[port_group]]
name = "trunk"
vlans = [10, 20]
"#,
            "t.toml",
            None,
        )
        .expect("valid")
    }

    fn req(interface: &str) -> NewPort {
        NewPort {
            interface: interface.into(),
            group: Some("db".into()),
            ..NewPort::default()
        }
    }

    #[test]
    fn a_group_is_named_or_found_by_its_access_vlan() {
        let c = config();
        assert_eq!(resolve_group(&c, Some("db"), None).unwrap(), "db");
        assert_eq!(resolve_group(&c, None, Some(20)).unwrap(), "db");
        assert_eq!(resolve_group(&c, Some("db"), Some(20)).unwrap(), "db");
        let two = resolve_group(&c, None, Some(10)).unwrap_err();
        assert!(two.contains("\"web\" and \"web-b\""), "{two}");
        assert!(
            resolve_group(&c, None, Some(30))
                .unwrap_err()
                .contains("no port group")
        );
        assert!(
            resolve_group(&c, Some("db"), Some(10))
                .unwrap_err()
                .contains("not access VLAN 10")
        );
        assert!(
            resolve_group(&c, Some("nope"), None)
                .unwrap_err()
                .contains("no port group named")
        );
        assert!(resolve_group(&c, None, None).is_err());
    }

    #[test]
    fn bad_names_macs_and_owners_are_refused_with_the_reason() {
        let c = config();
        for name in ["", "a/b", "a b", &"x".repeat(65), "é"] {
            assert!(from_request(&c, name, &req("veth0")).is_err(), "{name:?}");
        }
        // (No interface at all is refused as neither an interface nor a socket.)
        for ifname in ["a/b", "eth0:1", "sixteen-bytes-xx", ".", ".."] {
            let e = from_request(&c, "p", &req(ifname)).unwrap_err();
            assert!(e.contains("interface name"), "{ifname:?}: {e}");
        }
        for mac in [
            "ff:ff:ff:ff:ff:ff",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
            "nope",
        ] {
            let r = NewPort {
                mac: Some(mac.into()),
                ..req("veth0")
            };
            assert!(from_request(&c, "p", &r).is_err(), "{mac}");
        }
        let mut owner = PortOwner::new();
        owner.insert("domain".into(), "bad\nvalue".into());
        let r = NewPort {
            owner,
            ..req("veth0")
        };
        assert!(
            from_request(&c, "p", &r)
                .unwrap_err()
                .contains("owner value")
        );
        let ok = from_request(
            &c,
            "vm-1.eth0",
            &NewPort {
                mac: Some("52:54:00:AA:bb:01".into()),
                ..req("vnet0")
            },
        )
        .unwrap();
        assert_eq!(ok.mac.as_deref(), Some("52:54:00:aa:bb:01"));
        assert_eq!(ok.group, "db");
    }

    #[test]
    fn runtime_ports_compile_after_the_configured_ones_and_clash_like_them() {
        let c = config();
        let p = from_request(&c, "vm1", &req("vnet1")).unwrap();
        let compiled = compile(&c, std::slice::from_ref(&p)).unwrap();
        let names: Vec<_> = compiled
            .spec
            .ports
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names.last(), Some(&"vm1"));
        // The same interface twice is the configuration's own error.
        let q = RuntimePort {
            name: "vm2".into(),
            ..p.clone()
        };
        assert!(compile(&c, &[p, q]).is_err());
    }

    fn vhost(socket: &str, mode: Option<&str>) -> NewPort {
        NewPort {
            vhost_user: Some(VhostUserSocket {
                socket: socket.into(),
                mode: mode.map(str::to_string),
            }),
            group: Some("db".into()),
            ..NewPort::default()
        }
    }

    #[test]
    fn a_vhost_user_port_needs_exactly_one_of_interface_and_socket() {
        let c = config();
        let both = NewPort {
            interface: "vnet0".into(),
            ..vhost("/run/vm1.sock", None)
        };
        let e = from_request(&c, "p", &both).unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = from_request(&c, "p", &req("")).unwrap_err();
        assert!(e.contains("an interface or a vhost-user socket"), "{e}");
        let long = format!("/{}", "s".repeat(MAX_SOCKET_PATH));
        for bad in ["run/vm1.sock", "", "/run/a\nb", "/run/", long.as_str()] {
            let e = from_request(&c, "p", &vhost(bad, None)).unwrap_err();
            assert!(e.contains("socket path"), "{bad:?}: {e}");
        }
        let e = from_request(&c, "p", &vhost("/run/vm1.sock", Some("both"))).unwrap_err();
        assert!(e.contains("unknown vhost-user mode \"both\""), "{e}");
        let tap = NewPort {
            create_tap: true,
            ..vhost("/run/vm1.sock", None)
        };
        assert!(from_request(&c, "p", &tap).unwrap_err().contains("TAP"));
        // The mode is kept named: server when left out.
        let p = from_request(&c, "vm1", &vhost("/run/vm1.sock", None)).unwrap();
        assert_eq!(p.interface, "");
        assert_eq!(
            p.vhost_user,
            Some(VhostUserSocket {
                socket: "/run/vm1.sock".into(),
                mode: Some("server".into())
            })
        );
        let q = from_request(&c, "vm2", &vhost("/run/vm2.sock", Some("client"))).unwrap();
        assert_eq!(
            q.vhost_user.as_ref().unwrap().mode.as_deref(),
            Some("client")
        );
    }

    #[test]
    fn vhost_user_runtime_ports_compile_to_their_sockets_and_clash_on_one() {
        let c = config();
        let p = from_request(&c, "vm1", &vhost("/run/vm1.sock", None)).unwrap();
        let q = from_request(&c, "vm2", &vhost("/run/vm2.sock", Some("client"))).unwrap();
        let compiled = compile(&c, &[p.clone(), q.clone()]).unwrap();
        let n = compiled.spec.ports.len();
        assert_eq!(compiled.spec.ports[n - 2].name, "vm1");
        assert_eq!(
            compiled.vhost_user[n - 2],
            Some(VhostUser {
                socket: "/run/vm1.sock".into(),
                mode: VhostUserMode::Server
            })
        );
        assert_eq!(
            compiled.vhost_user[n - 1].as_ref().map(|v| v.mode),
            Some(VhostUserMode::Client)
        );
        // Two vhost-user ports have no interface, and do not clash for it; one
        // socket twice is the configuration's own error.
        let same = RuntimePort {
            name: "vm3".into(),
            ..p.clone()
        };
        let e = compile(&c, &[p.clone(), same]).unwrap_err();
        assert!(e.contains("/run/vm1.sock"), "{e}");
        // Kept across restarts: the file round-trips it.
        let dir = tempfile::tempdir().unwrap();
        let mut rp = RuntimePorts::load(dir.path()).unwrap();
        rp.ports = vec![p, q];
        rp.save().unwrap();
        assert_eq!(RuntimePorts::load(dir.path()).unwrap().ports, rp.ports);
    }

    fn record(
        ip: u8,
        mac: u8,
        port: &str,
        lease_end: Option<u64>,
    ) -> crate::bindings_store::BindingRecord {
        crate::bindings_store::BindingRecord {
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 10, ip)),
            mac: MacAddr([0x52, 0x54, 0, 0, 0, mac]),
            vlan: 10,
            port: port.into(),
            lease_end_unix: lease_end,
            source: portcullis_dataplane::bindings::BindingSource::Dhcp,
            updated_unix: 0,
            duid: None,
        }
    }

    #[test]
    fn parked_bindings_come_back_by_port_name_or_mac_within_their_grace() {
        let mut p = ParkedBindings::default();
        p.park(
            vec![
                record(1, 1, "vnet0", Some(5_000)),
                record(2, 2, "vnet1", None),
                record(3, 3, "vnet2", Some(1_500)),
            ],
            1_000,
        );
        // vnet0 comes back under its name; vnet1's guest comes back on another port.
        let back = p.take_for("vnet0", None, 1_100);
        assert_eq!(back, vec![record(1, 1, "vnet0", Some(5_000))]);
        let moved = p.take_for("vnet7", Some(MacAddr([0x52, 0x54, 0, 0, 0, 2])), 1_100);
        assert_eq!(moved.len(), 1);
        assert_eq!(p.len(), 1);
        // vnet2's lease ends before it returns: it is not given back, and expires.
        assert!(p.take_for("vnet2", None, 1_600).is_empty());
        assert_eq!(p.expire(1_600).len(), 1);
        assert!(p.is_empty());
        // The grace ends even for a binding that never expires.
        p.park(vec![record(4, 4, "vnet3", None)], 2_000);
        assert!(p.expire(2_000 + BINDING_GRACE_SECS - 1).is_empty());
        assert_eq!(p.expire(2_000 + BINDING_GRACE_SECS).len(), 1);
        // One entry per address, the newest wins; the table is bounded.
        p.park(vec![record(5, 5, "a", None)], 3_000);
        p.park(vec![record(5, 6, "b", None)], 3_001);
        assert_eq!(p.len(), 1);
        let many: Vec<_> = (0..MAX_PARKED + 3)
            .map(|i| {
                let mut r = record(0, 9, "x", None);
                r.ip = std::net::IpAddr::V6(std::net::Ipv6Addr::from(i as u128 + 1));
                r
            })
            .collect();
        let evicted = p.park(many, 4_000);
        assert_eq!(p.len(), MAX_PARKED);
        assert_eq!(evicted.len(), 4, "the oldest make room");
    }

    #[test]
    fn the_file_round_trips_and_a_foreign_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut rp = RuntimePorts::load(dir.path()).unwrap();
        assert!(rp.ports.is_empty(), "no file: no ports");
        let c = config();
        let mut r = req("vnet1");
        r.owner.insert("domain".into(), "web1".into());
        rp.ports.push(from_request(&c, "vm1", &r).unwrap());
        rp.save().unwrap();
        let back = RuntimePorts::load(dir.path()).unwrap();
        assert_eq!(back.ports, rp.ports);
        std::fs::write(dir.path().join(FILE), b"{\"version\": 9, \"ports\": []}").unwrap();
        let e = RuntimePorts::load(dir.path()).unwrap_err();
        assert!(e.contains(FILE) && e.contains("version 9"), "{e}");
        std::fs::write(dir.path().join(FILE), b"garbage").unwrap();
        assert!(RuntimePorts::load(dir.path()).unwrap_err().contains(FILE));
    }
}
