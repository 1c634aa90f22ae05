//! The CNI commands: ADD attaches a container to the switch, DEL detaches it,
//! CHECK verifies the attachment, GC removes the attachments the runtime no longer
//! knows, STATUS says whether the switch answers.
//!
//! Invariants: ADD either completes or leaves nothing — each step it completed is
//! undone in reverse order (bindings, port, IPAM lease, veth) when a later one
//! fails, and nothing it did not create is undone. DEL is idempotent: what is
//! already gone (netns, veth, port, binding, prevResult) is no error. A port is this
//! plugin's only if its owner carries `cni=portcullis` and the network's name; GC
//! touches no other.

use crate::ipam;
use crate::netlink::Netlink;
use crate::spec::{
    self, Attachment, CniError, CniResult, Interface, IpConfig, NetConf, OWNER_MARK, code,
};
use crate::switch::{Switch, access_vlan};
use portcullis_api::{NewBinding, NewPort, OWNER_MAX_VALUE_LEN, PortOwner};
use std::net::IpAddr;
use std::path::PathBuf;

/// The environment of a call (CNI_*).
#[derive(Debug, Clone, Default)]
pub struct Call {
    pub container_id: String,
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub path: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn need(name: &str) -> Result<String, CniError> {
    env(name).ok_or_else(|| {
        CniError::new(
            code::INVALID_ENV,
            format!("{name} is not set: the runtime must give it"),
        )
    })
}

impl Call {
    /// Reads CNI_COMMAND and, for the commands that act on one attachment,
    /// CNI_CONTAINERID, CNI_IFNAME, CNI_PATH (and CNI_NETNS where needed).
    pub fn from_env() -> Result<Call, CniError> {
        let command = need("CNI_COMMAND")?;
        let mut call = Call {
            path: env("CNI_PATH").unwrap_or_default(),
            netns: env("CNI_NETNS").map(PathBuf::from),
            ..Call::default()
        };
        if matches!(command.as_str(), "ADD" | "DEL" | "CHECK") {
            call.container_id = need("CNI_CONTAINERID")?;
            spec::check_container_id(&call.container_id)?;
            call.ifname = need("CNI_IFNAME")?;
            spec::check_ifname(&call.ifname)?;
            call.path = need("CNI_PATH")?;
        }
        Ok(call)
    }
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> CniError {
    move |e| CniError::new(code::IO_FAILURE, format!("{what}: {e}"))
}

/// What ADD has done so far, to undo in reverse on failure.
enum Done {
    Veth(String),
    Ipam,
    Port(String),
    Binding(u16, String),
}

/// ADD: veth, MAC, IPAM, port, bindings, addresses and routes; prints nothing
/// itself, answers the result.
pub fn add(call: &Call, conf: &NetConf, stdin: &[u8]) -> Result<CniResult, CniError> {
    let mut done = Vec::new();
    match add_steps(call, conf, stdin, &mut done) {
        Ok(r) => Ok(r),
        Err(e) => {
            let notes = undo(call, conf, stdin, done);
            Err(if notes.is_empty() {
                e
            } else {
                let d = format!("undoing the ADD also failed: {}", notes.join("; "));
                e.with_details(d)
            })
        }
    }
}

fn add_steps(
    call: &Call,
    conf: &NetConf,
    stdin: &[u8],
    done: &mut Vec<Done>,
) -> Result<CniResult, CniError> {
    let ipam_type = conf.ipam_type()?;
    let netns_path = call.netns.clone().ok_or_else(|| {
        CniError::new(
            code::INVALID_ENV,
            "CNI_NETNS is not set: ADD needs the container's network namespace",
        )
    })?;
    let netns = std::fs::File::open(&netns_path).map_err(|e| {
        CniError::new(
            code::UNKNOWN_CONTAINER,
            format!(
                "the container's network namespace {} cannot be opened: {e}",
                netns_path.display()
            ),
        )
    })?;
    let switch = Switch::new(conf);
    // Fail early, before creating anything, when the daemon does not answer.
    switch.status()?;
    let host = spec::host_veth(&call.container_id, &call.ifname);
    let port = spec::port_name(&call.container_id, &call.ifname);

    let mut nl = Netlink::open().map_err(io("opening rtnetlink".into()))?;
    let mut cnl = Netlink::open_in(&netns_path).map_err(io(format!(
        "entering the namespace {}",
        netns_path.display()
    )))?;
    use std::os::fd::AsRawFd;
    nl.create_veth(&host, &call.ifname, netns.as_raw_fd(), conf.mtu)
        .map_err(io(format!(
            "creating the veth {host} with {} in {}",
            call.ifname,
            netns_path.display()
        )))?;
    done.push(Done::Veth(host.clone()));
    let hl = nl
        .link(&host)
        .map_err(io(format!("reading {host}")))?
        .ok_or_else(|| CniError::new(code::IO_FAILURE, format!("{host} vanished")))?;
    nl.set_up(hl.index)
        .map_err(io(format!("bringing {host} up")))?;
    let cl = cnl
        .link(&call.ifname)
        .map_err(io(format!("reading {} in the container", call.ifname)))?
        .ok_or_else(|| {
            CniError::new(
                code::IO_FAILURE,
                format!("{} is not in the container's namespace", call.ifname),
            )
        })?;

    let mut ipam_result = CniResult::default();
    if let Some(kind) = ipam_type {
        ipam_result = ipam::delegate(&call.path, kind, "ADD", stdin, &[])?.unwrap_or_default();
        done.push(Done::Ipam);
    }

    let mut owner = PortOwner::new();
    owner.insert(OWNER_MARK.0.into(), OWNER_MARK.1.into());
    owner.insert("network".into(), conf.name.clone());
    owner.insert("container_id".into(), call.container_id.clone());
    owner.insert("ifname".into(), call.ifname.clone());
    let ns = netns_path.display().to_string();
    if ns.len() <= OWNER_MAX_VALUE_LEN {
        owner.insert("netns".into(), ns.clone());
    }
    switch.add_port(
        &port,
        &NewPort {
            interface: host.clone(),
            group: conf.group.clone(),
            vlan: conf.vlan,
            mac: Some(cl.mac.clone()),
            owner,
            ..NewPort::default()
        },
    )?;
    done.push(Done::Port(port.clone()));

    let view = switch.port(&port)?.ok_or_else(|| {
        CniError::new(
            code::SWITCH_REFUSED,
            format!("port {port} vanished after it was added"),
        )
    })?;
    let vlan = access_vlan(&view).ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            format!("port {port} is not an access port: its group must have an access VLAN"),
        )
    })?;
    for ipc in &ipam_result.ips {
        let (ip, _) = ipc.cidr()?;
        if let IpAddr::V4(v4) = ip {
            switch.add_binding(&NewBinding {
                mac: cl.mac.clone(),
                ip: v4.to_string(),
                vlan,
                port: port.clone(),
                replace: false,
            })?;
            done.push(Done::Binding(vlan, v4.to_string()));
        }
    }

    // Addresses and routes last: the container has no address until the switch
    // knows its binding.
    for ipc in &ipam_result.ips {
        let (ip, prefix) = ipc.cidr()?;
        cnl.add_address(cl.index, ip, prefix)
            .map_err(io(format!("adding {} to {}", ipc.address, call.ifname)))?;
    }
    cnl.set_up(cl.index)
        .map_err(io(format!("bringing {} up", call.ifname)))?;
    for r in &ipam_result.routes {
        let (dst, prefix) = spec::parse_cidr(&r.dst)?;
        let gw = match &r.gw {
            Some(g) => Some(g.parse::<IpAddr>().map_err(|_| {
                CniError::new(
                    code::DECODE,
                    format!("route gateway {g:?} is not an address"),
                )
            })?),
            // The spec: a route without gw goes via the gateway of the IPAM address
            // of its family.
            None => ipam_result
                .ips
                .iter()
                .filter_map(|i| i.gateway.as_deref()?.parse::<IpAddr>().ok())
                .find(|g| g.is_ipv4() == dst.is_ipv4()),
        };
        cnl.add_route(cl.index, dst, prefix, gw)
            .map_err(io(format!("adding the route {} in the container", r.dst)))?;
    }

    Ok(CniResult {
        cni_version: conf.cni_version.clone(),
        interfaces: vec![
            Interface {
                name: host,
                mac: hl.mac,
                mtu: conf.mtu,
                sandbox: None,
            },
            Interface {
                name: call.ifname.clone(),
                mac: cl.mac,
                mtu: conf.mtu,
                sandbox: Some(netns_path.display().to_string()),
            },
        ],
        ips: ipam_result
            .ips
            .into_iter()
            .map(|i| IpConfig {
                interface: Some(1),
                ..i
            })
            .collect(),
        routes: ipam_result.routes,
        dns: ipam_result.dns,
    })
}

/// Undoes `done` in reverse; answers what could not be undone.
fn undo(call: &Call, conf: &NetConf, stdin: &[u8], done: Vec<Done>) -> Vec<String> {
    let switch = Switch::new(conf);
    let mut notes = Vec::new();
    for step in done.into_iter().rev() {
        let r = match step {
            Done::Binding(vlan, ip) => switch.remove_binding(vlan, &ip),
            Done::Port(name) => switch.remove_port(&name),
            Done::Ipam => match conf.ipam_type() {
                Ok(Some(kind)) => ipam::delegate(&call.path, kind, "DEL", stdin, &[]).map(drop),
                _ => Ok(()),
            },
            Done::Veth(name) => Netlink::open()
                .and_then(|mut nl| nl.delete_link(&name))
                .map(drop)
                .map_err(io(format!("deleting {name}"))),
        };
        if let Err(e) = r {
            notes.push(e.msg);
        }
    }
    notes
}

/// DEL: bindings, port, IPAM lease, veth — each if it is there. Every step runs;
/// the first failure is the answer.
pub fn del(call: &Call, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let switch = Switch::new(conf);
    let port = spec::port_name(&call.container_id, &call.ifname);
    let host = spec::host_veth(&call.container_id, &call.ifname);
    let mut first: Option<CniError> = None;
    let mut keep = |r: Result<(), CniError>| {
        if let Err(e) = r
            && first.is_none()
        {
            first = Some(e);
        }
    };
    keep(remove_attachment(&switch, &port, conf.prev_result.as_ref()));
    if let Ok(Some(kind)) = conf.ipam_type() {
        keep(ipam::delegate(&call.path, kind, "DEL", stdin, &[]).map(drop));
    }
    keep(
        Netlink::open()
            .and_then(|mut nl| nl.delete_link(&host))
            .map(drop)
            .map_err(io(format!("deleting {host}"))),
    );
    first.map_or(Ok(()), Err)
}

/// The port's bindings (the daemon's list, and prevResult's addresses on the port's
/// VLAN), then the port.
fn remove_attachment(
    switch: &Switch,
    port: &str,
    prev: Option<&CniResult>,
) -> Result<(), CniError> {
    let mut gone: Vec<(u16, String)> = switch
        .bindings_of(port)?
        .into_iter()
        // A static binding is the configuration's: the API never removes it.
        .filter(|b| b.source != "static")
        .map(|b| (b.vlan, b.ip))
        .collect();
    if let (Some(prev), Some(view)) = (prev, switch.port(port)?)
        && let Some(vlan) = access_vlan(&view)
    {
        for ipc in &prev.ips {
            if let Ok((IpAddr::V4(v4), _)) = ipc.cidr() {
                let b = (vlan, v4.to_string());
                if !gone.contains(&b) {
                    gone.push(b);
                }
            }
        }
    }
    for (vlan, ip) in &gone {
        switch.remove_binding(*vlan, ip)?;
    }
    switch.remove_port(port)
}

/// CHECK: the veth, the container's interface and MAC, the port with that MAC on
/// that veth, a binding for each IPv4 address of prevResult, and the IPAM lease.
pub fn check(call: &Call, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let failed = |m: String| CniError::new(code::CHECK_FAILED, m);
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "CHECK needs prevResult (the result of ADD)",
        )
    })?;
    let netns = call
        .netns
        .clone()
        .ok_or_else(|| CniError::new(code::INVALID_ENV, "CNI_NETNS is not set: CHECK needs it"))?;
    let host = spec::host_veth(&call.container_id, &call.ifname);
    let port = spec::port_name(&call.container_id, &call.ifname);
    let mut nl = Netlink::open().map_err(io("opening rtnetlink".into()))?;
    nl.link(&host)
        .map_err(io(format!("reading {host}")))?
        .ok_or_else(|| failed(format!("the host veth {host} is missing")))?;
    let mut cnl = Netlink::open_in(&netns)
        .map_err(|e| CniError::new(code::UNKNOWN_CONTAINER, format!("{}: {e}", netns.display())))?;
    let cl = cnl
        .link(&call.ifname)
        .map_err(io(format!("reading {}", call.ifname)))?
        .ok_or_else(|| failed(format!("{} is missing in the container", call.ifname)))?;
    if let Some(want) = prev
        .interfaces
        .iter()
        .find(|i| i.sandbox.is_some() && i.name == call.ifname)
        && !want.mac.is_empty()
        && want.mac != cl.mac
    {
        return Err(failed(format!(
            "{} has MAC {}, not {} as ADD left it",
            call.ifname, cl.mac, want.mac
        )));
    }
    let switch = Switch::new(conf);
    let view = switch
        .port(&port)?
        .ok_or_else(|| failed(format!("the switch has no port {port}")))?;
    if view["interface"] != host.as_str() || view["initial_mac"] != cl.mac.as_str() {
        return Err(failed(format!(
            "port {port} is on {} with MAC {}, not on {host} with {}",
            view["interface"], view["initial_mac"], cl.mac
        )));
    }
    let bindings = switch.bindings_of(&port)?;
    for ipc in &prev.ips {
        if let (IpAddr::V4(v4), _) = ipc.cidr()?
            && !bindings
                .iter()
                .any(|b| b.ip == v4.to_string() && b.mac == cl.mac)
        {
            return Err(failed(format!(
                "port {port} has no binding of {v4} to {}",
                cl.mac
            )));
        }
    }
    if let Some(kind) = conf.ipam_type()? {
        ipam::delegate(&call.path, kind, "CHECK", stdin, &[])?;
    }
    Ok(())
}

/// GC: removes this network's ports (bindings, port, IPAM lease, veth) whose
/// attachment is not in `cni.dev/valid-attachments`; answers the ports removed.
pub fn gc(call: &Call, conf: &NetConf, stdin: &[u8]) -> Result<Vec<String>, CniError> {
    let valid: &[Attachment] = conf.valid_attachments.as_deref().ok_or_else(|| {
        CniError::new(
            code::INVALID_CONFIG,
            "GC needs \"cni.dev/valid-attachments\" (the attachments still in use)",
        )
    })?;
    let switch = Switch::new(conf);
    let mut removed = Vec::new();
    for p in switch.ports()? {
        let owner = &p["owner"];
        if p["runtime"] != true
            || owner[OWNER_MARK.0] != OWNER_MARK.1
            || owner["network"] != conf.name.as_str()
        {
            continue;
        }
        let (Some(name), Some(cid), Some(ifname)) = (
            p["name"].as_str(),
            owner["container_id"].as_str(),
            owner["ifname"].as_str(),
        ) else {
            continue;
        };
        if valid
            .iter()
            .any(|a| a.container_id == cid && a.ifname == ifname)
        {
            continue;
        }
        remove_attachment(&switch, name, None)?;
        // The IPAM plugin's lease of that attachment, released as its DEL would.
        if let Some(kind) = conf.ipam_type()? {
            let env = [("CNI_CONTAINERID", cid), ("CNI_IFNAME", ifname)];
            ipam::delegate(&call.path, kind, "DEL", stdin, &env)?;
        }
        let host = spec::host_veth(cid, ifname);
        Netlink::open()
            .and_then(|mut nl| nl.delete_link(&host))
            .map_err(io(format!("deleting {host}")))?;
        removed.push(name.to_owned());
    }
    Ok(removed)
}

/// STATUS: the switch answers (else 50, "the plugin is not available").
pub fn status(conf: &NetConf) -> Result<(), CniError> {
    Switch::new(conf).status().map(drop).map_err(|e| {
        CniError::new(
            code::NOT_AVAILABLE,
            format!("the switch is not available: {}", e.msg),
        )
    })
}
