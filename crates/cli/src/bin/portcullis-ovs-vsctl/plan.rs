//! The transaction: runs every command of an invocation against a copy of the
//! switch's state ([`World`], read from the API), then turns the difference into at
//! most one API call per port ([`Op`]) and the text ovs-vsctl would print.
//!
//! Invariant: pure — nothing here talks to the daemon. A refusal anywhere in the
//! invocation refuses all of it before any call is made, so a rejected command
//! line changes nothing.

use crate::args::{self, Command, Error, Setting, Step, Table, err, quote};
use portcullis_api::{NewPort, PortOwner, PortPatch};
use std::collections::{BTreeMap, BTreeSet};

/// How a port group carries VLANs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupVlan {
    Access(u16),
    Trunk {
        vlans: BTreeSet<u16>,
        native: Option<u16>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub vlan: GroupVlan,
}

/// A guest port of the switch as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PortRec {
    pub interface: String,
    pub group: String,
    /// Added at run time; a configured port is never changed from here.
    pub runtime: bool,
    /// The configured (initial) MAC.
    pub mac: Option<String>,
    pub owner: PortOwner,
    /// Counters for `statistics`: (name, value) in ovs-vsctl's names.
    pub stats: Vec<(&'static str, u64)>,
}

/// What the transaction starts from.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// The one bridge: the switch's name.
    pub bridge: String,
    pub groups: Vec<Group>,
    /// Guest ports by name.
    pub ports: BTreeMap<String, PortRec>,
    /// Interface MTUs (`/sys/class/net/<if>/mtu`) of the interfaces named.
    pub mtus: BTreeMap<String, u32>,
}

/// One API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Add(String, NewPort),
    Patch(String, PortPatch),
    Delete(String),
}

/// What an invocation does: the calls to make, then the text to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// One entry per command (empty for commands without output), each ending
    /// with a newline when not empty.
    pub outputs: Vec<String>,
    /// `br-exists` of an unknown bridge: exit status 2.
    pub exit_2: bool,
}

/// The VLAN columns of a port being added or changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct VlanCols {
    tag: Option<u16>,
    trunks: BTreeSet<u16>,
    mode: Option<String>,
}

/// A port in the transaction's copy of the state.
#[derive(Debug, Clone)]
struct VPort {
    rec: PortRec,
    /// Set when a command changed its VLAN columns: the group is resolved from
    /// them at the end.
    vlan: Option<VlanCols>,
    /// Added by this invocation.
    added: bool,
    /// Added with `--may-exist`: sent as `may_exist`, so that a port of this name
    /// and interface made meanwhile (by a concurrent call) is no error.
    may_exist: bool,
}

struct Txn<'w> {
    world: &'w World,
    ports: BTreeMap<String, VPort>,
    /// Ports removed by this invocation (and perhaps added again).
    removed: BTreeSet<String>,
    outputs: Vec<String>,
    exit_2: bool,
}

/// Runs `steps` against `world`.
pub fn plan(world: &World, steps: &[Step], global: &args::Global) -> Result<Plan, Error> {
    let mut t = Txn {
        world,
        ports: world
            .ports
            .iter()
            .map(|(n, r)| {
                (
                    n.clone(),
                    VPort {
                        rec: r.clone(),
                        vlan: None,
                        added: false,
                        may_exist: false,
                    },
                )
            })
            .collect(),
        removed: BTreeSet::new(),
        outputs: Vec::new(),
        exit_2: false,
    };
    for s in steps {
        let out = t.step(s, global)?;
        t.outputs.push(out);
    }
    let ops = t.ops()?;
    Ok(Plan {
        ops,
        outputs: t.outputs,
        exit_2: t.exit_2,
    })
}

/// Port names the switch accepts (1 to 64 of `A-Z a-z 0-9 . _ -`) that are also
/// interface names (at most 15 bytes).
fn check_port_name(p: &str) -> Result<(), Error> {
    let ok = !p.is_empty()
        && p.len() <= 15
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        err(format!(
            "{p:?}: a Portcullis port is named after its interface: 1 to 15 of A-Z a-z 0-9 . _ -"
        ))
    }
}

impl Txn<'_> {
    fn bridge(&self, br: &str) -> Result<(), Error> {
        if br == self.world.bridge {
            Ok(())
        } else {
            err(format!(
                "no bridge named {br} (this host's Portcullis switch is the bridge {}; see `[switch] name`)",
                self.world.bridge
            ))
        }
    }

    fn port_mut(&mut self, name: &str, table: Table) -> Result<&mut VPort, Error> {
        let what = match table {
            Table::Interface => "Interface",
            _ => "Port",
        };
        self.ports
            .get_mut(name)
            .ok_or_else(|| Error(format!("no row \"{name}\" in table {what}")))
    }

    fn configured(&self, name: &str) -> Result<(), Error> {
        match self.ports.get(name) {
            Some(p) if !p.rec.runtime && !p.added => err(format!(
                "{name} is a port of Portcullis's configuration files: change it there and `portcullis apply`, not with ovs-vsctl"
            )),
            _ => Ok(()),
        }
    }

    fn step(&mut self, s: &Step, global: &args::Global) -> Result<String, Error> {
        let world = self.world;
        let br = &world.bridge;
        match &s.command {
            Command::ListBr => Ok(format!("{br}\n")),
            Command::BrExists(b) => {
                if b != br {
                    self.exit_2 = true;
                }
                Ok(String::new())
            }
            Command::ListPorts(b) | Command::ListIfaces(b) => {
                self.bridge(b)?;
                Ok(self.ports.keys().map(|p| format!("{p}\n")).collect())
            }
            Command::PortToBr(p) => {
                if self.ports.contains_key(p) {
                    Ok(format!("{br}\n"))
                } else {
                    err(format!("no port named {p}"))
                }
            }
            Command::IfaceToBr(i) => {
                if self.ports.values().any(|p| &p.rec.interface == i) {
                    Ok(format!("{br}\n"))
                } else {
                    err(format!("no interface named {i}"))
                }
            }
            Command::AddBr(b) => {
                if s.may_exist && b == br {
                    return Ok(String::new());
                }
                err(format!(
                    "add-br {b}: bridges are Portcullis switches, made by their configuration (`[switch] name`), not created with ovs-vsctl; this host's is {br}"
                ))
            }
            Command::DelBr(b) => err(format!(
                "del-br {b}: bridges are Portcullis switches: stop or reconfigure the switch instead"
            )),
            Command::AddPort {
                bridge,
                port,
                settings,
            } => {
                self.bridge(bridge)?;
                check_port_name(port)?;
                if let Some(p) = self.ports.get(port) {
                    if s.may_exist {
                        // As ovs-vsctl: an existing port is kept as it is; its
                        // columns change only by the `set` commands that follow.
                        return Ok(String::new());
                    }
                    let _ = p;
                    return err(format!(
                        "cannot create a port named {port} because a port named {port} already exists on bridge {bridge}"
                    ));
                }
                if let Some((other, _)) = self.ports.iter().find(|(_, p)| &p.rec.interface == port)
                {
                    return err(format!(
                        "cannot create a port named {port}: its interface is already the port {other}"
                    ));
                }
                let mut v = VPort {
                    rec: PortRec {
                        interface: port.clone(),
                        runtime: true,
                        ..PortRec::default()
                    },
                    vlan: Some(VlanCols::default()),
                    added: true,
                    may_exist: s.may_exist,
                };
                port_settings(&mut v, settings)?;
                self.ports.insert(port.clone(), v);
                Ok(String::new())
            }
            Command::DelPort { bridge, port } => {
                if let Some(b) = bridge {
                    self.bridge(b)?;
                }
                if !self.ports.contains_key(port) {
                    if s.if_exists {
                        return Ok(String::new());
                    }
                    return err(format!("no port named {port}"));
                }
                self.configured(port)?;
                self.ports.remove(port);
                self.removed.insert(port.clone());
                Ok(String::new())
            }
            Command::Set {
                table,
                record,
                settings,
            } => {
                if *table == Table::Bridge {
                    self.bridge(record)?;
                    for st in settings {
                        let ok = st.column == "datapath_type"
                            && matches!(st.value.as_str(), "" | "system");
                        if !ok {
                            return err(format!(
                                "set Bridge {record} {}: bridges are Portcullis switches, configured in its configuration files",
                                st.column
                            ));
                        }
                    }
                    return Ok(String::new());
                }
                if !self.ports.contains_key(record) && s.if_exists {
                    return Ok(String::new());
                }
                self.configured(record)?;
                // The MTU of the port's interface (a new port's is its name).
                let ifname = self.ports.get(record).map(|p| p.rec.interface.as_str());
                let mtu = world.mtus.get(ifname.unwrap_or(record)).copied();
                let v = self.port_mut(record, *table)?;
                match table {
                    Table::Port => port_settings(v, settings)?,
                    _ => iface_settings(v, record, settings, mtu)?,
                }
                Ok(String::new())
            }
            Command::Clear {
                table,
                record,
                columns,
            } => {
                if !self.ports.contains_key(record) && s.if_exists {
                    return Ok(String::new());
                }
                self.configured(record)?;
                let groups = &world.groups;
                let v = self.port_mut(record, *table)?;
                for c in columns {
                    match (table, *c) {
                        (Table::Port, "tag" | "trunks" | "vlan_mode") => {
                            let cur = current_vlan(v, groups);
                            let cols = v.vlan.get_or_insert(cur);
                            match *c {
                                "tag" => cols.tag = None,
                                "trunks" => cols.trunks.clear(),
                                _ => cols.mode = None,
                            }
                        }
                        (Table::Port | Table::Interface, "external_ids") => v.rec.owner.clear(),
                        (Table::Port, "other_config") => {}
                        _ => {
                            return err(format!(
                                "clear {} {record} {c}: not a column this front can clear",
                                table.name()
                            ));
                        }
                    }
                }
                Ok(String::new())
            }
            Command::Get {
                table,
                record,
                columns,
            } => {
                if *table == Table::Bridge {
                    if record != br {
                        if s.if_exists {
                            return Ok(String::new());
                        }
                        return err(format!("no row \"{record}\" in table Bridge"));
                    }
                    let mut out = String::new();
                    for c in columns {
                        let line = match (c.column, &c.key) {
                            ("name", None) => quote(br),
                            ("datapath_type", None) => "system".into(),
                            ("external_ids", None) => "{}".into(),
                            _ => {
                                return err(format!(
                                    "get Bridge {record} {}: not a column this front shows",
                                    c.column
                                ));
                            }
                        };
                        out.push_str(&line);
                        out.push('\n');
                    }
                    return Ok(out);
                }
                let Some(v) = self.ports.get(record) else {
                    if s.if_exists {
                        return Ok(String::new());
                    }
                    return err(format!("no row \"{record}\" in table {}", table.name()));
                };
                let mut out = String::new();
                for c in columns {
                    let line = match (*table, c.column, &c.key) {
                        (_, "name", None) => quote(record),
                        (_, "external_ids", None) => map_text(&external_ids(v)),
                        (_, "external_ids", Some(k)) => match external_ids(v).get(k) {
                            Some(val) => quote(val),
                            None if s.if_exists => continue,
                            None => {
                                return err(format!(
                                    "no key \"{k}\" in {} record \"{record}\" column external_ids",
                                    table.name()
                                ));
                            }
                        },
                        (Table::Interface, "mtu", None) => match world.mtus.get(&v.rec.interface) {
                            Some(m) => m.to_string(),
                            None => "[]".into(),
                        },
                        (Table::Interface, "mtu_request", None) => "[]".into(),
                        (Table::Interface, "type", None) => "\"\"".into(),
                        (Table::Interface, "mac_in_use", None) => match &v.rec.mac {
                            Some(m) => quote(m),
                            None => "[]".into(),
                        },
                        (Table::Port, "tag", None) => match current_vlan(v, &world.groups).tag {
                            Some(t) => t.to_string(),
                            None => "[]".into(),
                        },
                        (Table::Port, "trunks", None) => {
                            set_text(&current_vlan(v, &world.groups).trunks)
                        }
                        (Table::Port, "vlan_mode", None) => {
                            match current_vlan(v, &world.groups).mode {
                                Some(m) => m,
                                None => "[]".into(),
                            }
                        }
                        (Table::Port, "other_config", None) => "{}".into(),
                        _ => {
                            return err(format!(
                                "get {} {record} {}: not a column this front shows",
                                table.name(),
                                c.column
                            ));
                        }
                    };
                    out.push_str(&line);
                    out.push('\n');
                }
                Ok(out)
            }
            Command::List { table, records } => {
                if *table != Table::Interface || records.is_empty() {
                    return err(
                        "list: this front lists only named Interface records (`list Interface NAME`)",
                    );
                }
                let columns = global
                    .columns
                    .clone()
                    .unwrap_or_else(|| vec!["name".into()]);
                let json = global.data.as_deref() == Some("json");
                let mut out = String::new();
                for r in records {
                    let Some(v) = self.ports.get(r) else {
                        if s.if_exists {
                            continue;
                        }
                        return err(format!("no row \"{r}\" in table Interface"));
                    };
                    for c in &columns {
                        let line = match Table::Interface.column(c)? {
                            "name" if json => serde_json::Value::from(r.as_str()).to_string(),
                            "name" => quote(r),
                            "statistics" if json => {
                                let pairs: Vec<serde_json::Value> = v
                                    .rec
                                    .stats
                                    .iter()
                                    .map(|(k, n)| serde_json::json!([k, n]))
                                    .collect();
                                serde_json::json!(["map", pairs]).to_string()
                            }
                            "statistics" => format!(
                                "{{{}}}",
                                v.rec
                                    .stats
                                    .iter()
                                    .map(|(k, n)| format!("{k}={n}"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                            other => {
                                return err(format!(
                                    "list Interface: column {other} is not one this front lists (name, statistics)"
                                ));
                            }
                        };
                        out.push_str(&line);
                        out.push('\n');
                    }
                }
                Ok(out)
            }
        }
    }

    /// The calls that take the switch from the world to the transaction's copy.
    fn ops(&self) -> Result<Vec<Op>, Error> {
        let mut ops = Vec::new();
        let names: BTreeSet<&String> = self.ports.keys().chain(self.removed.iter()).collect();
        for name in names {
            let before = self.world.ports.get(name);
            let after = self.ports.get(name);
            match (before, after) {
                (None, None) => {}
                (Some(_), None) => ops.push(Op::Delete(name.clone())),
                (before, Some(v)) => {
                    let recreated = before.is_some() && self.removed.contains(name);
                    if recreated {
                        ops.push(Op::Delete(name.clone()));
                    }
                    if before.is_none() || recreated {
                        let group =
                            self.resolve(name, v.vlan.as_ref().unwrap_or(&VlanCols::default()))?;
                        ops.push(Op::Add(
                            name.clone(),
                            NewPort {
                                interface: v.rec.interface.clone(),
                                group: Some(group),
                                mac: v.rec.mac.clone(),
                                owner: v.rec.owner.clone(),
                                may_exist: v.may_exist,
                                ..NewPort::default()
                            },
                        ));
                        continue;
                    }
                    let Some(old) = before else { continue };
                    let mut patch = PortPatch::default();
                    if let Some(cols) = &v.vlan {
                        let group = self.resolve(name, cols)?;
                        if group != old.group {
                            patch.group = Some(group);
                        }
                    }
                    if v.rec.mac != old.mac {
                        patch.mac = Some(v.rec.mac.clone().unwrap_or_default());
                    }
                    for (k, val) in &v.rec.owner {
                        if old.owner.get(k) != Some(val) {
                            patch.owner.insert(k.clone(), val.clone());
                        }
                    }
                    for k in old.owner.keys() {
                        if !v.rec.owner.contains_key(k) {
                            patch.owner.insert(k.clone(), String::new());
                        }
                    }
                    if patch != PortPatch::default() {
                        ops.push(Op::Patch(name.clone(), patch));
                    }
                }
            }
        }
        Ok(ops)
    }

    /// The port group a port's VLAN columns select (docs/ovs-vsctl.md's table).
    fn resolve(&self, port: &str, c: &VlanCols) -> Result<String, Error> {
        let groups = &self.world.groups;
        let br = &self.world.bridge;
        let list = || {
            groups
                .iter()
                .map(|g| match &g.vlan {
                    GroupVlan::Access(v) => format!("{} (tag={v})", g.name),
                    GroupVlan::Trunk { vlans, native } => format!(
                        "{} (trunks={}{})",
                        g.name,
                        vlans
                            .iter()
                            .map(u16::to_string)
                            .collect::<Vec<_>>()
                            .join(","),
                        native.map(|n| format!(" tag={n}")).unwrap_or_default()
                    ),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mode = c.mode.as_deref();
        if let Some(m) = mode
            && !matches!(m, "access" | "trunk" | "native-untagged")
        {
            return err(format!(
                "{port}: vlan_mode={m} is not supported (Portcullis's native VLAN is untagged: use vlan_mode=native-untagged or none)"
            ));
        }
        let found: Vec<&Group> = if !c.trunks.is_empty()
            || mode == Some("trunk")
            || mode == Some("native-untagged")
        {
            if c.trunks.is_empty() {
                return err(format!(
                    "{port}: a trunk of every VLAN is not supported: list its VLANs with trunks=…"
                ));
            }
            groups
                .iter()
                .filter(|g| {
                    matches!(&g.vlan, GroupVlan::Trunk { vlans, native }
                        if *vlans == c.trunks && *native == c.tag)
                })
                .collect()
        } else if let Some(tag) = c.tag {
            groups
                .iter()
                .filter(|g| g.vlan == GroupVlan::Access(tag))
                .collect()
        } else {
            if groups.len() == 1 {
                return Ok(groups[0].name.clone());
            }
            return err(format!(
                "{port}: no tag= and bridge {br} has {} port groups: say which with tag=N (access VLAN) or trunks=… (groups: {})",
                groups.len(),
                list()
            ));
        };
        let want = if !c.trunks.is_empty() {
            format!(
                "trunks={}{}",
                c.trunks
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                c.tag.map(|t| format!(" tag={t}")).unwrap_or_default()
            )
        } else {
            format!("tag={}", c.tag.unwrap_or_default())
        };
        match found.as_slice() {
            [g] => Ok(g.name.clone()),
            [] => err(format!(
                "{port}: {want}: no port group of bridge {br} has these VLANs (groups: {})",
                list()
            )),
            more => err(format!(
                "{port}: {want}: several port groups have these VLANs ({}): ovs-vsctl cannot say which",
                more.iter()
                    .map(|g| g.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The VLAN columns an existing port shows, from its group.
fn current_vlan(v: &VPort, groups: &[Group]) -> VlanCols {
    if let Some(c) = &v.vlan {
        return c.clone();
    }
    match groups
        .iter()
        .find(|g| g.name == v.rec.group)
        .map(|g| &g.vlan)
    {
        Some(GroupVlan::Access(t)) => VlanCols {
            tag: Some(*t),
            ..VlanCols::default()
        },
        Some(GroupVlan::Trunk { vlans, native }) => VlanCols {
            tag: *native,
            trunks: vlans.clone(),
            mode: Some(
                if native.is_some() {
                    "native-untagged"
                } else {
                    "trunk"
                }
                .into(),
            ),
        },
        None => VlanCols::default(),
    }
}

/// A port's `external_ids`: its owner keys, and its MAC as `attached-mac`.
fn external_ids(v: &VPort) -> BTreeMap<String, String> {
    let mut m = v.rec.owner.clone();
    if let Some(mac) = &v.rec.mac {
        m.insert("attached-mac".into(), mac.clone());
    }
    m
}

fn map_text(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

fn set_text(s: &BTreeSet<u16>) -> String {
    format!(
        "[{}]",
        s.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
    )
}

/// `tag`, `trunks`, `vlan_mode`, `other_config`, `external_ids` of a Port.
fn port_settings(v: &mut VPort, settings: &[Setting]) -> Result<(), Error> {
    for s in settings {
        match (s.column, &s.key) {
            ("tag", None) => {
                let cols = v.vlan.get_or_insert_with(VlanCols::default);
                cols.tag = if s.value == "[]" {
                    None
                } else {
                    Some(args::vid(&s.value, &format!("tag={}", s.value))?)
                };
            }
            ("trunks", None) => {
                v.vlan.get_or_insert_with(VlanCols::default).trunks = args::vlan_set(&s.value)?;
            }
            ("vlan_mode", None) => {
                v.vlan.get_or_insert_with(VlanCols::default).mode =
                    (s.value != "[]").then(|| s.value.clone());
            }
            // libvirt marks its ports transient (removed when OVS restarts); a
            // runtime port lives until it is removed, and libvirt removes it.
            ("other_config", Some(k)) if k == "transient" => {}
            ("external_ids", Some(k)) => external_id(v, k, &s.value)?,
            (c, _) => {
                return err(format!(
                    "set Port {c}: not supported by this front (tag, trunks, vlan_mode, external_ids)"
                ));
            }
        }
    }
    Ok(())
}

/// `external_ids:KEY=VALUE`, `mtu_request`, `type`, ingress policing of an
/// Interface.
fn iface_settings(
    v: &mut VPort,
    name: &str,
    settings: &[Setting],
    mtu: Option<u32>,
) -> Result<(), Error> {
    for s in settings {
        match (s.column, &s.key) {
            ("external_ids", Some(k)) => external_id(v, k, &s.value)?,
            ("mtu_request", None) => {
                let want: u32 = s
                    .value
                    .parse()
                    .map_err(|_| Error(format!("mtu_request={}: not a number", s.value)))?;
                // Portcullis does not change interface MTUs: the caller (Proxmox's
                // tap_create) has set the TAP's MTU to the bridge's already.
                if let Some(m) = mtu
                    && m != want
                {
                    return err(format!(
                        "mtu_request={want}: {name} has MTU {m} and this front does not change MTUs: set it with `ip link set {name} mtu {want}`"
                    ));
                }
            }
            ("type", None) if matches!(s.value.as_str(), "" | "system") => {}
            ("type", None) => {
                return err(format!(
                    "type={}: Portcullis attaches to existing interfaces and makes no {} ports (on Proxmox, turn the NIC's firewall off: its firewall bridge needs an OVS internal port)",
                    s.value, s.value
                ));
            }
            ("ingress_policing_rate" | "ingress_policing_burst", None) if s.value == "0" => {}
            (c, _) => {
                return err(format!(
                    "set Interface {c}: not supported by this front (external_ids, mtu_request)"
                ));
            }
        }
    }
    Ok(())
}

/// An `external_ids` key: `attached-mac` is the port's MAC; any other key is an
/// owner key of the same name (an empty value removes it).
fn external_id(v: &mut VPort, key: &str, value: &str) -> Result<(), Error> {
    if key == "attached-mac" {
        v.rec.mac = (!value.is_empty()).then(|| value.to_ascii_lowercase());
    } else if value.is_empty() {
        v.rec.owner.remove(key);
    } else {
        v.rec.owner.insert(key.to_string(), value.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::parse;

    fn world() -> World {
        let mut w = World {
            bridge: "vmbr1".into(),
            groups: vec![
                Group {
                    name: "web".into(),
                    vlan: GroupVlan::Access(10),
                },
                Group {
                    name: "db".into(),
                    vlan: GroupVlan::Access(20),
                },
                Group {
                    name: "vgt".into(),
                    vlan: GroupVlan::Trunk {
                        vlans: [10, 20].into(),
                        native: None,
                    },
                },
                Group {
                    name: "mixed".into(),
                    vlan: GroupVlan::Trunk {
                        vlans: [10, 20].into(),
                        native: Some(10),
                    },
                },
            ],
            ..World::default()
        };
        w.ports.insert(
            "a".into(),
            PortRec {
                interface: "veth-a".into(),
                group: "web".into(),
                ..PortRec::default()
            },
        );
        w.mtus.insert("tap100i0".into(), 1500);
        w
    }

    fn run(w: &World, a: &[&str]) -> Result<Plan, Error> {
        let inv = parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        plan(w, &inv.steps, &inv.global)
    }

    #[test]
    fn libvirt_add_port_is_one_post_with_mac_and_owner_keys() {
        let p = run(
            &world(),
            &[
                "--timeout=5",
                "--",
                "--may-exist",
                "add-port",
                "vmbr1",
                "vnet0",
                "--",
                "set",
                "Port",
                "vnet0",
                "other_config:transient=true",
                "tag=20",
                "--",
                "set",
                "Interface",
                "vnet0",
                "external-ids:attached-mac=\"52:54:00:AB:cd:01\"",
                "--",
                "set",
                "Interface",
                "vnet0",
                "external-ids:iface-id=\"abc\"",
                "--",
                "set",
                "Interface",
                "vnet0",
                "external-ids:vm-id=\"5b2c1d3e-0000-4000-8000-000000000001\"",
                "--",
                "set",
                "Interface",
                "vnet0",
                "external-ids:iface-status=active",
            ],
        )
        .unwrap();
        let [Op::Add(name, np)] = p.ops.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!(name, "vnet0");
        assert_eq!(np.interface, "vnet0");
        assert_eq!(np.group.as_deref(), Some("db"));
        assert_eq!(np.mac.as_deref(), Some("52:54:00:ab:cd:01"));
        assert_eq!(np.owner["iface-id"], "abc");
        assert_eq!(np.owner["vm-id"], "5b2c1d3e-0000-4000-8000-000000000001");
        assert_eq!(np.owner["iface-status"], "active");
        assert!(np.may_exist, "--may-exist is sent along");
        assert_eq!(p.outputs, vec![""; 6]);
    }

    #[test]
    fn proxmox_tags_and_trunks_select_groups() {
        let w = world();
        let group = |a: &[&str]| match run(&w, a).unwrap().ops.as_slice() {
            [Op::Add(_, np)] => np.group.clone().unwrap(),
            o => panic!("{o:?}"),
        };
        let mtu = ["--", "set", "Interface", "tap100i0", "mtu_request=1500"];
        let with = |head: &[&'static str]| [head, &mtu[..]].concat();
        assert_eq!(
            group(&with(&["--", "add-port", "vmbr1", "tap100i0", "tag=10"])),
            "web"
        );
        assert_eq!(
            group(&with(&[
                "--",
                "add-port",
                "vmbr1",
                "tap100i0",
                "trunks=10,20"
            ])),
            "vgt"
        );
        assert_eq!(
            group(&with(&[
                "--",
                "add-port",
                "vmbr1",
                "tap100i0",
                "tag=10",
                "trunks=10,20",
                "vlan_mode=native-untagged"
            ])),
            "mixed"
        );
        // No tag with several groups, a tag no group has, an MTU change, an
        // internal port, another bridge: refused, nothing to send.
        let e = |a: &[&str]| run(&w, a).unwrap_err().0;
        assert!(e(&["--", "add-port", "vmbr1", "tap100i0"]).contains("say which"));
        let m = e(&["--", "add-port", "vmbr1", "tap100i0", "tag=30"]);
        assert!(m.contains("tag=30") && m.contains("web (tag=10)"), "{m}");
        assert!(
            e(&[
                "--",
                "add-port",
                "vmbr1",
                "tap100i0",
                "tag=10",
                "--",
                "set",
                "Interface",
                "tap100i0",
                "mtu_request=9000"
            ])
            .contains("does not change MTUs")
        );
        assert!(
            e(&[
                "--",
                "add-port",
                "vmbr1",
                "tap100i0",
                "tag=10",
                "--",
                "set",
                "Interface",
                "tap100i0",
                "type=internal"
            ])
            .contains("firewall")
        );
        assert!(
            e(&["--", "add-port", "vmbr9", "tap100i0", "tag=10"]).contains("no bridge named vmbr9")
        );
        assert!(e(&["add-br", "vmbr2"]).contains("not created"));
        assert!(e(&["del-br", "vmbr1"]).contains("Portcullis switches"));
        assert!(e(&["--", "add-port", "vmbr1", "a", "tag=10"]).contains("already exists"));
        assert!(e(&["--", "add-port", "vmbr1", "veth-a", "tag=10"]).contains("already the port a"));
    }

    #[test]
    fn one_group_needs_no_tag_and_queries_answer_like_ovs_vsctl() {
        let mut w = world();
        w.groups.truncate(1);
        w.mtus.insert("veth-a".into(), 9000);
        let p = run(&w, &["--", "add-port", "vmbr1", "tap100i0"]).unwrap();
        assert!(matches!(&p.ops[..], [Op::Add(_, np)] if np.group.as_deref() == Some("web")));
        let out = |a: &[&str]| run(&w, a).unwrap().outputs.concat();
        assert_eq!(out(&["list-br"]), "vmbr1\n");
        assert_eq!(out(&["port-to-br", "a"]), "vmbr1\n");
        assert_eq!(out(&["iface-to-br", "veth-a"]), "vmbr1\n");
        assert_eq!(out(&["list-ports", "vmbr1"]), "a\n");
        assert_eq!(out(&["get", "Port", "a", "tag"]), "10\n");
        // A port's MTU is its interface's (the configured port a is on veth-a).
        assert_eq!(
            run(&w, &["get", "Interface", "a", "mtu"])
                .unwrap()
                .outputs
                .concat(),
            "9000\n"
        );
        assert!(
            run(&w, &["set", "Interface", "a", "mtu_request=9000"])
                .unwrap_err()
                .0
                .contains("configuration files")
        );
        assert!(!run(&w, &["br-exists", "vmbr1"]).unwrap().exit_2);
        assert!(run(&w, &["br-exists", "vmbr2"]).unwrap().exit_2);
        assert_eq!(
            run(&w, &["port-to-br", "zz"]).unwrap_err().0,
            "no port named zz"
        );
        assert_eq!(out(&["--may-exist", "add-br", "vmbr1"]), "");
    }

    #[test]
    fn del_port_set_and_get_of_runtime_ports() {
        let mut w = world();
        let mut owner = PortOwner::new();
        owner.insert("iface-id".into(), "abc".into());
        w.ports.insert(
            "vnet0".into(),
            PortRec {
                interface: "vnet0".into(),
                group: "web".into(),
                runtime: true,
                mac: Some("52:54:00:00:00:01".into()),
                owner,
                stats: vec![("rx_packets", 3), ("tx_packets", 4)],
            },
        );
        let e = |a: &[&str]| run(&w, a).unwrap_err().0;
        let ops = |a: &[&str]| run(&w, a).unwrap().ops;
        assert_eq!(
            ops(&["--timeout=5", "--", "--if-exists", "del-port", "vnet9"]),
            vec![]
        );
        assert_eq!(e(&["del-port", "vnet9"]), "no port named vnet9");
        assert_eq!(
            ops(&["del-port", "vnet0"]),
            vec![Op::Delete("vnet0".into())]
        );
        assert!(e(&["del-port", "a"]).contains("configuration files"));
        assert!(e(&["del-port", "vmbr9", "vnet0"]).contains("no bridge"));
        // libvirt's VLAN update: clear, then set the new tag.
        let p = ops(crate::args::LIBVIRT_UPDATE_VLAN);
        assert_eq!(
            p,
            vec![Op::Patch(
                "vnet0".into(),
                PortPatch {
                    group: Some("db".into()),
                    ..PortPatch::default()
                }
            )]
        );
        // external_ids: set one, read them back.
        let p = ops(&["set", "Interface", "vnet0", "external_ids:vm-uuid=u1"]);
        let [Op::Patch(_, patch)] = p.as_slice() else {
            panic!("{p:?}")
        };
        assert_eq!(patch.owner["vm-uuid"], "u1");
        let out = |a: &[&str]| run(&w, a).unwrap().outputs.concat();
        assert_eq!(
            out(&["get", "Interface", "vnet0", "external_ids:attached-mac"]),
            "\"52:54:00:00:00:01\"\n"
        );
        assert_eq!(out(&["get", "Interface", "vnet0", "name"]), "vnet0\n");
        assert_eq!(
            out(&[
                "--timeout=5",
                "--if-exists",
                "get",
                "Interface",
                "vnet0",
                "external_ids:PortData"
            ]),
            ""
        );
        assert!(e(&["get", "Interface", "vnet0", "external_ids:PortData"]).contains("no key"));
        assert_eq!(
            out(&[
                "--timeout=5",
                "--if-exists",
                "--format=list",
                "--data=json",
                "--no-headings",
                "--columns=statistics",
                "list",
                "Interface",
                "vnet0"
            ]),
            "[\"map\",[[\"rx_packets\",3],[\"tx_packets\",4]]]\n"
        );
        // --may-exist add-port of the port there: no call at all.
        assert_eq!(
            ops(&["--", "--may-exist", "add-port", "vmbr1", "vnet0", "tag=20"]),
            vec![]
        );
    }
}
