//! `portcullis-ovs-vsctl`: the subset of `ovs-vsctl` that libvirt, Proxmox and
//! os-vif run to plug guests into an Open vSwitch bridge, answered by a Portcullis
//! switch through its API (docs/ovs-vsctl.md). The bridge is the switch
//! (`[switch] name`); `tag`/`trunks` select a port group; a port is a runtime port.
//!
//! Invariant: a pure API client without state of its own. The whole command line is
//! parsed and checked against the switch's state before the first change is sent,
//! and a refused command line changes nothing. It refuses to run where a real Open
//! vSwitch runs, so that installed as `ovs-vsctl` it never shadows one.

mod args;
mod plan;

use args::{Error, Invocation};
use plan::{Group, GroupVlan, Op, Plan, PortRec, World};
use portcullis_api::{ApiOpts, ClientError, DEFAULT_SOCKET, Method, PortView};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// A real Open vSwitch's database socket: where it is, this front must not run.
const OVSDB_SOCKETS: &[&str] = &["/run/openvswitch/db.sock", "/var/run/openvswitch/db.sock"];

const HELP: &str = "\
portcullis-ovs-vsctl: the ovs-vsctl commands libvirt, Proxmox and os-vif use, on a Portcullis switch

usage: ovs-vsctl [--timeout=N] [--oneline] [--no-headings] [--format=F] [--data=D] [--columns=C]
                 [--] [--may-exist|--if-exists] COMMAND ARGS… [-- [OPTIONS] COMMAND ARGS…]…

  add-port BR PORT [tag=N] [trunks=N,…] [vlan_mode=native-untagged]
  del-port [BR] PORT              set Interface|Port|Bridge NAME COL[:KEY]=VALUE…
  get Interface|Port|Bridge NAME COL[:KEY]…   clear Port NAME tag|trunks|vlan_mode
  list Interface NAME…            port-to-br PORT   iface-to-br IFACE
  list-br   br-exists BR   list-ports BR   list-ifaces BR
  (add-br and del-br are refused: the bridge is the Portcullis switch, `[switch] name`)

The daemon: PORTCULLIS_SOCKET (default /run/portcullis/portcullis.sock), or PORTCULLIS_API,
PORTCULLIS_CA and PORTCULLIS_TOKEN for TCP+TLS. See docs/ovs-vsctl.md.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ovs-vsctl: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, Error> {
    let inv = args::parse(args)?;
    if inv.global.help {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    if inv.global.version {
        println!(
            "ovs-vsctl (portcullis-ovs-vsctl) {}: an ovs-vsctl front for Portcullis, not Open vSwitch",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(ExitCode::SUCCESS);
    }
    real_ovs(OVSDB_SOCKETS)?;
    if let Some(t) = inv.global.timeout.filter(|t| *t > 0) {
        // As ovs-vsctl: past the timeout SIGALRM ends the program.
        // SAFETY: alarm(2) takes an integer and touches no memory.
        unsafe { libc::alarm(t) };
    }
    let api = api_opts();
    let world = world(&api, &inv)?;
    let plan = plan::plan(&world, &inv.steps, &inv.global)?;
    execute(&api, &plan)?;
    print(&inv, &plan);
    Ok(if plan.exit_2 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Refuses when one of `sockets` (a real OVSDB server's) exists.
fn real_ovs(sockets: &[&str]) -> Result<(), Error> {
    match sockets.iter().find(|s| Path::new(s).exists()) {
        Some(s) => args::err(format!(
            "a real Open vSwitch runs on this host ({s} exists): use its ovs-vsctl, not portcullis-ovs-vsctl"
        )),
        None => Ok(()),
    }
}

/// The daemon's address from the environment, as the `portcullis` CLI reads it.
fn api_opts() -> ApiOpts {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    ApiOpts {
        socket: env("PORTCULLIS_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
        api: env("PORTCULLIS_API").map(|v| v.to_string_lossy().into_owned()),
        ca: env("PORTCULLIS_CA").map(PathBuf::from),
        token_file: None,
    }
}

fn api_error(e: ClientError) -> Error {
    match e {
        ClientError::Api { code, message, .. } => Error(format!("{message} (portcullis: {code})")),
        // This program has no `--socket`: only the environment says where.
        e => Error(
            e.to_string()
                .replace("--socket or PORTCULLIS_SOCKET", "set PORTCULLIS_SOCKET"),
        ),
    }
}

fn call(
    api: &ApiOpts,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<serde_json::Value, Error> {
    api.call(method, path, body).map_err(api_error)
}

/// The switch's name, groups and guest ports, and the MTUs of the interfaces the
/// command line names.
fn world(api: &ApiOpts, inv: &Invocation) -> Result<World, Error> {
    let status = call(api, Method::GET, "/v1/status", None)?;
    let bridge = status["switch"].as_str().unwrap_or_default().to_string();
    let ports: Vec<PortView> = serde_json::from_value(call(api, Method::GET, "/v1/ports", None)?)
        .map_err(|e| Error(format!("the daemon's port list: {e}")))?;
    let config = call(api, Method::GET, "/v1/config", None)?;
    let flat: std::collections::BTreeMap<String, String> =
        serde_json::from_value(config["flat"].clone()).unwrap_or_default();
    let mut w = World {
        bridge,
        groups: groups(&flat),
        ..World::default()
    };
    for p in ports {
        let Some(group) = p.port_group.clone() else {
            continue;
        };
        let c = &p.counters;
        w.ports.insert(
            p.name.clone(),
            PortRec {
                interface: p.interface.clone(),
                group,
                runtime: p.runtime,
                mac: p.initial_mac.clone(),
                owner: p.owner.clone(),
                // OVS counts on the interface from the switch's side, as
                // Portcullis does (rx: from the guest).
                stats: vec![
                    ("rx_bytes", c.rx_bytes),
                    ("rx_dropped", c.rx_dropped),
                    ("rx_packets", c.rx_frames),
                    ("tx_bytes", c.tx_bytes),
                    ("tx_dropped", c.tx_dropped),
                    ("tx_packets", c.tx_frames),
                ],
            },
        );
    }
    let named = inv
        .steps
        .iter()
        .flat_map(|s| record_names(&s.command))
        .chain(w.ports.values().map(|p| p.interface.clone()))
        .collect::<Vec<_>>();
    for n in named {
        if let Some(m) = read_mtu(&n) {
            w.mtus.insert(n, m);
        }
    }
    Ok(w)
}

fn record_names(c: &args::Command) -> Vec<String> {
    use args::Command as C;
    match c {
        C::AddPort { port, .. } | C::DelPort { port, .. } => vec![port.clone()],
        C::Set { record, .. } | C::Get { record, .. } | C::Clear { record, .. } => {
            vec![record.clone()]
        }
        C::List { records, .. } => records.clone(),
        _ => Vec::new(),
    }
}

/// `/sys/class/net/<name>/mtu`, for a name that can be an interface's.
fn read_mtu(name: &str) -> Option<u32> {
    let ok = !name.is_empty()
        && name.len() < 16
        && !name.contains(['/', '\0'])
        && name != "."
        && name != "..";
    if !ok {
        return None;
    }
    std::fs::read_to_string(format!("/sys/class/net/{name}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The port groups from the running configuration's flat view
/// (`port_group.<name>.vlan = 10`, `….vlans = [10-11, 20]`, `….native_vlan = 10`).
fn groups(flat: &std::collections::BTreeMap<String, String>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (k, v) in flat {
        let Some(rest) = k.strip_prefix("port_group.") else {
            continue;
        };
        let (name, field) = if let Some(q) = rest.strip_prefix('"') {
            match q.split_once("\".") {
                Some((n, f)) => (n.to_string(), f),
                None => continue,
            }
        } else {
            match rest.split_once('.') {
                Some((n, f)) => (n.to_string(), f),
                None => continue,
            }
        };
        let idx = match out.iter().position(|g| g.name == name) {
            Some(i) => i,
            None => {
                out.push(Group {
                    name,
                    vlan: GroupVlan::Trunk {
                        vlans: Default::default(),
                        native: None,
                    },
                });
                out.len() - 1
            }
        };
        let g = &mut out[idx];
        match field {
            "vlan" => {
                if let Ok(vid) = v.parse() {
                    g.vlan = GroupVlan::Access(vid);
                }
            }
            "vlans" => {
                if let (GroupVlan::Trunk { vlans, .. }, Ok(set)) = (&mut g.vlan, args::vlan_set(v))
                {
                    *vlans = set;
                }
            }
            "native_vlan" => {
                if let GroupVlan::Trunk { native, .. } = &mut g.vlan {
                    *native = v.parse().ok();
                }
            }
            _ => {}
        }
    }
    // A group seen only through other keys (no VLAN key) is not a guest group.
    out.retain(|g| !matches!(&g.vlan, GroupVlan::Trunk { vlans, .. } if vlans.is_empty()));
    out
}

/// Sends the plan's calls in order.
fn execute(api: &ApiOpts, plan: &Plan) -> Result<(), Error> {
    let json = |v: serde_json::Result<serde_json::Value>| {
        v.map_err(|e| Error(format!("request body: {e}")))
    };
    for op in &plan.ops {
        let (method, name, body) = match op {
            Op::Add(name, np) => (Method::POST, name, Some(json(serde_json::to_value(np))?)),
            Op::Patch(name, p) => (Method::PATCH, name, Some(json(serde_json::to_value(p))?)),
            Op::Delete(name) => (Method::DELETE, name, None),
        };
        call(api, method, &format!("/v1/ports/{name}"), body)?;
    }
    Ok(())
}

/// Prints each command's output; with `--oneline`, one line per command.
fn print(inv: &Invocation, plan: &Plan) {
    let mut out = std::io::stdout().lock();
    for o in &plan.outputs {
        let _ = if inv.global.oneline {
            writeln!(out, "{}", o.trim_end_matches('\n').replace('\n', "\\n"))
        } else {
            write!(out, "{o}")
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_the_flat_view() {
        let flat: std::collections::BTreeMap<String, String> = [
            ("port_group.web.vlan", "10"),
            ("port_group.web.security.promiscuous", "reject"),
            ("port_group.\"a.b\".vlans", "[10-11, 20]"),
            ("port_group.\"a.b\".native_vlan", "off"),
            ("port_group.mixed.vlans", "[10, 30]"),
            ("port_group.mixed.native_vlan", "10"),
            ("port.vm1.vlan", "10"),
            ("switch.name", "vmbr1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut g = groups(&flat);
        g.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            g,
            vec![
                Group {
                    name: "a.b".into(),
                    vlan: GroupVlan::Trunk {
                        vlans: [10, 11, 20].into(),
                        native: None
                    }
                },
                Group {
                    name: "mixed".into(),
                    vlan: GroupVlan::Trunk {
                        vlans: [10, 30].into(),
                        native: Some(10)
                    }
                },
                Group {
                    name: "web".into(),
                    vlan: GroupVlan::Access(10)
                },
            ]
        );
    }

    /// The invariant above, checked: this program names no server-side crate
    /// (it shares a package with the daemon, so the compiler would let it).
    #[test]
    fn it_is_an_api_client_only() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin/portcullis-ovs-vsctl");
        let forbidden = [
            "portcullis_daemon",
            "portcullis_dataplane",
            "portcullis_control",
            "portcullis_io",
            "portcullis_lab",
        ];
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            // This test names what it forbids: the scan stops at it.
            let lines = text
                .lines()
                .take_while(|l| !l.contains("The invariant above, checked"));
            for (n, line) in lines.enumerate() {
                for name in forbidden {
                    assert!(!line.contains(name), "{}:{}: {line}", path.display(), n + 1);
                }
            }
        }
    }

    #[test]
    fn a_real_open_vswitch_is_never_answered_for() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("db.sock");
        let sock = sock.to_str().unwrap();
        assert!(real_ovs(&[sock]).is_ok());
        std::fs::write(sock, "").unwrap();
        let e = real_ovs(&["/nonexistent/db.sock", sock]).unwrap_err().0;
        assert!(e.contains("a real Open vSwitch") && e.contains(sock), "{e}");
    }

    #[test]
    fn mtus_are_read_only_for_interface_names() {
        assert!(read_mtu("lo").is_some_and(|m| m >= 68));
        assert_eq!(read_mtu("../../etc"), None);
        assert_eq!(read_mtu(".."), None);
        assert_eq!(read_mtu("a-name-far-too-long"), None);
    }
}
