//! ovs-vsctl's command line, as libvirt, Proxmox and os-vif write it: global
//! options, then commands separated by `--`, each with its own `--may-exist` /
//! `--if-exists`, and `column[:key]=value` settings in OVSDB's value syntax.
//!
//! Invariant: parsing is pure and total — any argv gives either a whole
//! [`Invocation`] or an [`Error`] worded as ovs-vsctl words it; nothing is sent to
//! the daemon before the whole command line has parsed.

use std::fmt;

/// A refusal, printed as `ovs-vsctl: <message>` with exit status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn err<T>(message: impl Into<String>) -> Result<T, Error> {
    Err(Error(message.into()))
}

/// The global options the callers use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Global {
    /// `--timeout=N` (`-t N`): seconds before the program gives up (0: never).
    pub timeout: Option<u32>,
    /// `--oneline`: each command's output on one line (os-vif).
    pub oneline: bool,
    /// `--no-heading(s)`.
    pub no_headings: bool,
    /// `--format=F` (`-f F`): `list`, `table`, `json`, `csv`, `html`.
    pub format: Option<String>,
    /// `--data=D` (`-d D`): `string`, `bare`, `json`.
    pub data: Option<String>,
    /// `--columns=a,b`.
    pub columns: Option<Vec<String>>,
    /// `--version`: print the version and stop.
    pub version: bool,
    /// `--help`: print the help and stop.
    pub help: bool,
}

/// The OVSDB tables the commands name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Interface,
    Port,
    Bridge,
}

impl Table {
    fn parse(s: &str) -> Result<Table, Error> {
        // ovs-vsctl matches table names case-insensitively.
        match s.to_ascii_lowercase().as_str() {
            "interface" => Ok(Table::Interface),
            "port" => Ok(Table::Port),
            "bridge" => Ok(Table::Bridge),
            _ => err(format!(
                "unknown table \"{s}\" (this front knows Interface, Port and Bridge)"
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Interface => "Interface",
            Table::Port => "Port",
            Table::Bridge => "Bridge",
        }
    }

    /// The columns of the table this front knows (OVS has more; naming one of
    /// those is refused as an unknown column).
    fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Interface => &[
                "name",
                "type",
                "mtu",
                "mtu_request",
                "mac_in_use",
                "external_ids",
                "options",
                "statistics",
                "ingress_policing_rate",
                "ingress_policing_burst",
            ],
            Table::Port => &[
                "name",
                "tag",
                "trunks",
                "vlan_mode",
                "other_config",
                "external_ids",
            ],
            Table::Bridge => &["name", "datapath_type", "external_ids"],
        }
    }

    /// The column `s` names: its full name, or a unique prefix of one (libvirt
    /// writes `trunk=` for `trunks`), `-` and `_` alike (`external-ids`).
    pub fn column(self, s: &str) -> Result<&'static str, Error> {
        let s = s.replace('-', "_");
        let cols = self.columns();
        if let Some(c) = cols.iter().find(|c| **c == s) {
            return Ok(c);
        }
        let mut matches = cols.iter().filter(|c| !s.is_empty() && c.starts_with(&s));
        match (matches.next(), matches.next()) {
            (Some(c), None) => Ok(c),
            _ => err(format!(
                "{} does not contain a column whose name matches \"{s}\"",
                self.name()
            )),
        }
    }
}

/// `column[:key]=value`, the value unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub column: &'static str,
    pub key: Option<String>,
    pub value: String,
}

/// `column[:key]` of `get` and `clear`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRef {
    pub column: &'static str,
    pub key: Option<String>,
}

/// One command of the invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddPort {
        bridge: String,
        port: String,
        settings: Vec<Setting>,
    },
    DelPort {
        bridge: Option<String>,
        port: String,
    },
    Set {
        table: Table,
        record: String,
        settings: Vec<Setting>,
    },
    Get {
        table: Table,
        record: String,
        columns: Vec<ColumnRef>,
    },
    Clear {
        table: Table,
        record: String,
        columns: Vec<&'static str>,
    },
    List {
        table: Table,
        records: Vec<String>,
    },
    PortToBr(String),
    IfaceToBr(String),
    ListBr,
    BrExists(String),
    ListPorts(String),
    ListIfaces(String),
    AddBr(String),
    DelBr(String),
}

/// A command with its own options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub may_exist: bool,
    pub if_exists: bool,
    pub command: Command,
}

/// The whole command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub global: Global,
    pub steps: Vec<Step>,
}

/// Parses `args` (without the program name).
pub fn parse(args: &[String]) -> Result<Invocation, Error> {
    let mut global = Global::default();
    let mut first_opts: Vec<String> = Vec::new();
    let mut i = 0;
    // Global options come first; the first command's own options may be among them
    // (`ovs-vsctl --if-exists get …`), as ovs-vsctl allows.
    while i < args.len() {
        let a = args[i].as_str();
        if a == "--" || !a.starts_with('-') || a == "-" {
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (a, None),
        };
        let value = |i: &mut usize| -> Result<String, Error> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            *i += 1;
            args.get(*i)
                .cloned()
                .ok_or_else(|| Error(format!("option '{name}' requires an argument")))
        };
        match name {
            "--timeout" | "-t" => {
                let v = value(&mut i)?;
                global.timeout = Some(
                    v.parse()
                        .map_err(|_| Error(format!("value {v} on -t or --timeout is invalid")))?,
                );
            }
            "--oneline" => global.oneline = true,
            "--no-heading" | "--no-headings" => global.no_headings = true,
            "--format" | "-f" => global.format = Some(value(&mut i)?),
            "--data" | "-d" => global.data = Some(value(&mut i)?),
            "--columns" => {
                global.columns = Some(value(&mut i)?.split(',').map(str::to_string).collect())
            }
            "--may-exist" | "--if-exists" => first_opts.push(name.to_string()),
            "--version" | "-V" => global.version = true,
            "--help" | "-h" => global.help = true,
            "--db" => {
                return err(
                    "--db: this front talks to the Portcullis daemon (PORTCULLIS_SOCKET), not to an OVSDB server",
                );
            }
            _ => return err(format!("unrecognized option '{a}'")),
        }
        i += 1;
    }
    if global.version || global.help {
        return Ok(Invocation {
            global,
            steps: Vec::new(),
        });
    }
    let mut steps = Vec::new();
    let mut segment: Vec<String> = first_opts;
    for a in &args[i..] {
        if a == "--" {
            if let Some(s) = step(&segment)? {
                steps.push(s);
            }
            segment = Vec::new();
        } else {
            segment.push(a.clone());
        }
    }
    if let Some(s) = step(&segment)? {
        steps.push(s);
    }
    if steps.is_empty() {
        return err("missing command name (use --help for help)");
    }
    Ok(Invocation { global, steps })
}

/// One `--`-separated segment: its options, then the command and its arguments.
fn step(seg: &[String]) -> Result<Option<Step>, Error> {
    let mut may_exist = false;
    let mut if_exists = false;
    let mut j = 0;
    while j < seg.len() && seg[j].starts_with("--") {
        match seg[j].as_str() {
            "--may-exist" => may_exist = true,
            "--if-exists" => if_exists = true,
            o => {
                let cmd = seg.get(j + 1).map(String::as_str).unwrap_or("");
                return err(format!("'{cmd}' command has no '{o}' option"));
            }
        }
        j += 1;
    }
    let Some(name) = seg.get(j) else {
        if may_exist || if_exists {
            return err("missing command name (use --help for help)");
        }
        return Ok(None);
    };
    let args = &seg[j + 1..];
    let command = command(name, args)?;
    let allowed: (bool, bool) = match &command {
        Command::AddPort { .. } | Command::AddBr(_) => (true, false),
        Command::DelPort { .. }
        | Command::DelBr(_)
        | Command::Set { .. }
        | Command::Get { .. }
        | Command::Clear { .. }
        | Command::List { .. } => (false, true),
        _ => (false, false),
    };
    if may_exist && !allowed.0 {
        return err(format!("'{name}' command has no '--may-exist' option"));
    }
    if if_exists && !allowed.1 {
        return err(format!("'{name}' command has no '--if-exists' option"));
    }
    Ok(Some(Step {
        may_exist,
        if_exists,
        command,
    }))
}

fn nargs(name: &str, args: &[String], min: usize, max: usize) -> Result<(), Error> {
    if args.len() < min {
        return err(format!(
            "'{name}' command requires at least {min} arguments"
        ));
    }
    if args.len() > max {
        return err(format!("'{name}' command takes at most {max} arguments"));
    }
    Ok(())
}

fn command(name: &str, args: &[String]) -> Result<Command, Error> {
    let a = |k: usize| args[k].clone();
    Ok(match name {
        "add-port" => {
            nargs(name, args, 2, usize::MAX)?;
            Command::AddPort {
                bridge: a(0),
                port: a(1),
                settings: settings(Table::Port, &args[2..])?,
            }
        }
        "del-port" => {
            nargs(name, args, 1, 2)?;
            if args.len() == 2 {
                Command::DelPort {
                    bridge: Some(a(0)),
                    port: a(1),
                }
            } else {
                Command::DelPort {
                    bridge: None,
                    port: a(0),
                }
            }
        }
        "set" => {
            nargs(name, args, 3, usize::MAX)?;
            let table = Table::parse(&args[0])?;
            Command::Set {
                table,
                record: a(1),
                settings: settings(table, &args[2..])?,
            }
        }
        "get" => {
            nargs(name, args, 3, usize::MAX)?;
            let table = Table::parse(&args[0])?;
            let columns = args[2..]
                .iter()
                .map(|c| column_ref(table, c))
                .collect::<Result<_, _>>()?;
            Command::Get {
                table,
                record: a(1),
                columns,
            }
        }
        "clear" => {
            nargs(name, args, 3, usize::MAX)?;
            let table = Table::parse(&args[0])?;
            let columns = args[2..]
                .iter()
                .map(|c| table.column(c))
                .collect::<Result<_, _>>()?;
            Command::Clear {
                table,
                record: a(1),
                columns,
            }
        }
        "list" => {
            nargs(name, args, 1, usize::MAX)?;
            Command::List {
                table: Table::parse(&args[0])?,
                records: args[1..].to_vec(),
            }
        }
        "port-to-br" => {
            nargs(name, args, 1, 1)?;
            Command::PortToBr(a(0))
        }
        "iface-to-br" => {
            nargs(name, args, 1, 1)?;
            Command::IfaceToBr(a(0))
        }
        "list-br" => {
            nargs(name, args, 0, 0)?;
            Command::ListBr
        }
        "br-exists" => {
            nargs(name, args, 1, 1)?;
            Command::BrExists(a(0))
        }
        "list-ports" => {
            nargs(name, args, 1, 1)?;
            Command::ListPorts(a(0))
        }
        "list-ifaces" => {
            nargs(name, args, 1, 1)?;
            Command::ListIfaces(a(0))
        }
        "add-br" => {
            nargs(name, args, 1, 3)?;
            Command::AddBr(a(0))
        }
        "del-br" => {
            nargs(name, args, 1, 1)?;
            Command::DelBr(a(0))
        }
        _ => return err(format!("unknown command '{name}'; use --help for help")),
    })
}

fn column_ref(table: Table, s: &str) -> Result<ColumnRef, Error> {
    let (col, key) = match s.split_once(':') {
        Some((c, k)) => (c, Some(unquote(k)?)),
        None => (s, None),
    };
    Ok(ColumnRef {
        column: table.column(col)?,
        key,
    })
}

fn settings(table: Table, args: &[String]) -> Result<Vec<Setting>, Error> {
    args.iter()
        .map(|s| {
            let Some((lhs, value)) = s.split_once('=') else {
                return err(format!(
                    "{s}: argument does not end in \"=\" followed by a value"
                ));
            };
            let r = column_ref(table, lhs)?;
            Ok(Setting {
                column: r.column,
                key: r.key,
                value: unquote(value)?,
            })
        })
        .collect()
}

/// An OVSDB string atom: bare, or in double quotes with backslash escapes
/// (libvirt writes `external-ids:attached-mac="52:54:00:…"`).
pub fn unquote(s: &str) -> Result<String, Error> {
    let Some(inner) = s.strip_prefix('"') else {
        return Ok(s.to_string());
    };
    let Some(inner) = inner.strip_suffix('"') else {
        return err(format!("{s}: missing quote at end of quoted string"));
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if c == '"' {
                return err(format!("{s}: unescaped quote inside quoted string"));
            }
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(c @ ('"' | '\\')) => out.push(c),
            _ => return err(format!("{s}: bad escape in quoted string")),
        }
    }
    Ok(out)
}

/// A string as ovs-vsctl prints it: bare when it is an identifier-like word
/// (a letter or `_`, then letters, digits, `_`, `-`, `.`) that is not `true`,
/// `false` or a UUID; else quoted.
pub fn quote(s: &str) -> String {
    let mut chars = s.chars();
    let bare = matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s != "true"
        && s != "false"
        && !is_uuid(s);
    if bare {
        return s.to_string();
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A VLAN set value: `10`, `10,20`, `[10,20]`, `[10, 20]`, ranges `10-20`
/// accepted; empty (`[]`) is the empty set.
pub fn vlan_set(s: &str) -> Result<std::collections::BTreeSet<u16>, Error> {
    let t = s.trim();
    let t = t.strip_prefix('[').unwrap_or(t);
    let t = t.strip_suffix(']').unwrap_or(t);
    let mut set = std::collections::BTreeSet::new();
    for part in t.split([',', ' ', ';']).filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b) = (vid(a, s)?, vid(b, s)?);
        if a > b {
            return err(format!("{s}: {part} is not a VLAN range"));
        }
        set.extend(a..=b);
    }
    Ok(set)
}

/// A VLAN id, 1 to 4094 (`tag=0` is not a VLAN for Portcullis).
pub fn vid(s: &str, whole: &str) -> Result<u16, Error> {
    match s.trim().parse::<u16>() {
        Ok(v) if (1..=4094).contains(&v) => Ok(v),
        _ => err(format!("{whole}: {s} is not a VLAN (1 to 4094)")),
    }
}

/// libvirt's src/util/virnetdevopenvswitch.c, virNetDevOpenvswitchUpdateVlan: the
/// command line both the parser's and the planner's tests take.
#[cfg(test)]
pub(crate) const LIBVIRT_UPDATE_VLAN: &[&str] = &[
    "--timeout=5",
    "--",
    "--if-exists",
    "clear",
    "Port",
    "vnet0",
    "tag",
    "--",
    "--if-exists",
    "clear",
    "Port",
    "vnet0",
    "trunk",
    "--",
    "--if-exists",
    "clear",
    "Port",
    "vnet0",
    "vlan_mode",
    "--",
    "--if-exists",
    "set",
    "Port",
    "vnet0",
    "tag=20",
];

#[cfg(test)]
mod tests {
    use super::*;

    pub fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn set(col: &'static str, key: Option<&str>, value: &str) -> Setting {
        Setting {
            column: col,
            key: key.map(str::to_string),
            value: value.to_string(),
        }
    }

    #[test]
    fn libvirt_add_port_parses_into_one_add_and_its_settings() {
        // libvirt src/util/virnetdevopenvswitch.c, virNetDevOpenvswitchAddPort (with
        // virNetDevOpenvswitchConstructVlans for an access VLAN).
        let inv = parse(&argv(&[
            "--timeout=5",
            "--",
            "--may-exist",
            "add-port",
            "ovsbr0",
            "vnet0",
            "--",
            "set",
            "Port",
            "vnet0",
            "other_config:transient=true",
            "tag=10",
            "--",
            "set",
            "Interface",
            "vnet0",
            "external-ids:attached-mac=\"52:54:00:12:34:56\"",
            "--",
            "set",
            "Interface",
            "vnet0",
            "external-ids:iface-id=\"0b4c6e8a-9d1f-4a3e-8f2b-1c2d3e4f5a6b\"",
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
        ]))
        .unwrap();
        assert_eq!(inv.global.timeout, Some(5));
        assert_eq!(inv.steps.len(), 6);
        assert!(inv.steps[0].may_exist);
        assert_eq!(
            inv.steps[0].command,
            Command::AddPort {
                bridge: "ovsbr0".into(),
                port: "vnet0".into(),
                settings: vec![]
            }
        );
        assert_eq!(
            inv.steps[1].command,
            Command::Set {
                table: Table::Port,
                record: "vnet0".into(),
                settings: vec![
                    set("other_config", Some("transient"), "true"),
                    set("tag", None, "10")
                ]
            }
        );
        assert_eq!(
            inv.steps[2].command,
            Command::Set {
                table: Table::Interface,
                record: "vnet0".into(),
                settings: vec![set(
                    "external_ids",
                    Some("attached-mac"),
                    "52:54:00:12:34:56"
                )]
            }
        );
    }

    #[test]
    fn libvirt_trunk_abbreviation_and_native_mode_parse() {
        // virNetDevOpenvswitchConstructVlans writes `trunk=` (a prefix of `trunks`).
        let inv = parse(&argv(&[
            "--timeout=5",
            "--",
            "--may-exist",
            "add-port",
            "ovsbr0",
            "vnet1",
            "--",
            "set",
            "Port",
            "vnet1",
            "other_config:transient=true",
            "vlan_mode=native-untagged",
            "tag=10",
            "trunk=10,20",
        ]))
        .unwrap();
        let Command::Set { settings, .. } = &inv.steps[1].command else {
            panic!("{inv:?}")
        };
        assert_eq!(settings[1], set("vlan_mode", None, "native-untagged"));
        assert_eq!(settings[3], set("trunks", None, "10,20"));
        assert_eq!(
            vlan_set("10,20").unwrap().into_iter().collect::<Vec<_>>(),
            [10, 20]
        );
    }

    #[test]
    fn libvirt_remove_get_and_vlan_update_parse() {
        // virNetDevOpenvswitchRemovePort.
        let inv = parse(&argv(&[
            "--timeout=5",
            "--",
            "--if-exists",
            "del-port",
            "vnet0",
        ]))
        .unwrap();
        assert!(inv.steps[0].if_exists);
        assert_eq!(
            inv.steps[0].command,
            Command::DelPort {
                bridge: None,
                port: "vnet0".into()
            }
        );
        // virNetDevOpenvswitchGetMigrateData: the command's option before it, among
        // the global options.
        let inv = parse(&argv(&[
            "--timeout=5",
            "--if-exists",
            "get",
            "Interface",
            "vnet0",
            "external_ids:PortData",
        ]))
        .unwrap();
        assert!(inv.steps[0].if_exists);
        assert_eq!(
            inv.steps[0].command,
            Command::Get {
                table: Table::Interface,
                record: "vnet0".into(),
                columns: vec![ColumnRef {
                    column: "external_ids",
                    key: Some("PortData".into())
                }]
            }
        );
        let inv = parse(&argv(LIBVIRT_UPDATE_VLAN)).unwrap();
        assert_eq!(inv.steps.len(), 4);
        assert_eq!(
            inv.steps[1].command,
            Command::Clear {
                table: Table::Port,
                record: "vnet0".into(),
                columns: vec!["trunks"]
            }
        );
        // virNetDevOpenvswitchInterfaceStats.
        let inv = parse(&argv(&[
            "--timeout=5",
            "--if-exists",
            "--format=list",
            "--data=json",
            "--no-headings",
            "--columns=statistics",
            "list",
            "Interface",
            "vnet0",
        ]))
        .unwrap();
        assert_eq!(inv.global.format.as_deref(), Some("list"));
        assert_eq!(inv.global.data.as_deref(), Some("json"));
        assert!(inv.global.no_headings);
        assert_eq!(inv.global.columns, Some(vec!["statistics".to_string()]));
        // virNetDevOpenvswitchInterfaceGetMaster.
        let inv = parse(&argv(&["--timeout=5", "iface-to-br", "vnet0"])).unwrap();
        assert_eq!(inv.steps[0].command, Command::IfaceToBr("vnet0".into()));
    }

    #[test]
    fn proxmox_command_lines_parse() {
        // pve-common src/PVE/Network.pm, $ovs_bridge_add_port (tag and trunks).
        let inv = parse(&argv(&[
            "--",
            "add-port",
            "vmbr1",
            "tap100i0",
            "tag=10",
            "trunks=10,20",
            "vlan_mode=native-untagged",
            "--",
            "set",
            "Interface",
            "tap100i0",
            "mtu_request=1500",
        ]))
        .unwrap();
        assert!(!inv.steps[0].may_exist);
        assert_eq!(
            inv.steps[0].command,
            Command::AddPort {
                bridge: "vmbr1".into(),
                port: "tap100i0".into(),
                settings: vec![
                    set("tag", None, "10"),
                    set("trunks", None, "10,20"),
                    set("vlan_mode", None, "native-untagged")
                ]
            }
        );
        assert_eq!(
            inv.steps[1].command,
            Command::Set {
                table: Table::Interface,
                record: "tap100i0".into(),
                settings: vec![set("mtu_request", None, "1500")]
            }
        );
        // tap_plug / tap_unplug: `ovs-vsctl del-port $iface`.
        let inv = parse(&argv(&["del-port", "tap100i0"])).unwrap();
        assert!(!inv.steps[0].if_exists);
        // is_ovs_bridge: `ovs-vsctl br-exists $bridge`.
        assert_eq!(
            parse(&argv(&["br-exists", "vmbr1"])).unwrap().steps[0].command,
            Command::BrExists("vmbr1".into())
        );
        assert_eq!(
            parse(&argv(&["port-to-br", "tap100i0"])).unwrap().steps[0].command,
            Command::PortToBr("tap100i0".into())
        );
        assert_eq!(
            parse(&argv(&["list-br"])).unwrap().steps[0].command,
            Command::ListBr
        );
        // The firewall's internal port: parsed, refused later.
        let inv = parse(&argv(&[
            "--",
            "add-port",
            "vmbr1",
            "fwln100o0",
            "tag=10",
            "--",
            "set",
            "Interface",
            "fwln100o0",
            "mtu_request=1500",
            "--",
            "set",
            "Interface",
            "fwln100o0",
            "type=internal",
        ]))
        .unwrap();
        assert_eq!(inv.steps.len(), 3);
    }

    #[test]
    fn os_vif_command_lines_parse() {
        // os-vif vif_plug_ovs/ovsdb/impl_vsctl.py (Transaction.opts) with
        // ovsdb_lib.py BaseOVS.create_ovs_vif_port and delete_ovs_vif_port.
        let inv = parse(&argv(&[
            "--timeout=120",
            "--oneline",
            "--format=json",
            "--",
            "--may-exist",
            "add-br",
            "br-int",
            "--",
            "set",
            "Bridge",
            "br-int",
            "datapath_type=system",
            "--",
            "--may-exist",
            "add-port",
            "br-int",
            "tap1234",
            "--",
            "set",
            "Interface",
            "tap1234",
            "external_ids:iface-id=4f9b",
            "external_ids:iface-status=active",
            "external_ids:attached-mac=fa:16:3e:00:00:01",
            "external_ids:vm-uuid=0c6b7a1e-0000-4000-8000-000000000002",
        ]))
        .unwrap();
        assert!(inv.global.oneline);
        assert_eq!(inv.steps.len(), 4);
        assert_eq!(inv.steps[0].command, Command::AddBr("br-int".into()));
        let inv = parse(&argv(&[
            "--timeout=120",
            "--oneline",
            "--format=json",
            "--",
            "--if-exists",
            "del-port",
            "br-int",
            "tap1234",
        ]))
        .unwrap();
        assert_eq!(
            inv.steps[0].command,
            Command::DelPort {
                bridge: Some("br-int".into()),
                port: "tap1234".into()
            }
        );
    }

    #[test]
    fn bad_command_lines_are_refused_in_ovs_vsctl_words() {
        let e = |a: &[&str]| parse(&argv(a)).unwrap_err().0;
        assert_eq!(e(&["frob"]), "unknown command 'frob'; use --help for help");
        assert_eq!(e(&["--bogus", "list-br"]), "unrecognized option '--bogus'");
        assert_eq!(
            e(&["--", "--if-exists", "add-port", "b", "p"]),
            "'add-port' command has no '--if-exists' option"
        );
        assert_eq!(
            e(&["set", "Port", "p", "frob=1"]),
            "Port does not contain a column whose name matches \"frob\""
        );
        assert!(e(&["set", "Interface", "p", "mtu_request"]).contains("does not end in"));
        assert!(e(&["--db=unix:/x", "list-br"]).starts_with("--db"));
        assert!(e(&["--timeout=x", "list-br"]).contains("invalid"));
        assert!(e(&[]).contains("missing command"));
        assert!(e(&["del-port"]).contains("at least 1"));
        assert!(e(&["set", "Interface", "p", "external_ids:a=\"x"]).contains("missing quote"));
        assert!(vlan_set("0").is_err() && vlan_set("4095").is_err() && vlan_set("20-10").is_err());
    }

    #[test]
    fn strings_are_quoted_as_ovs_vsctl_prints_them() {
        assert_eq!(quote("vmbr1"), "vmbr1");
        assert_eq!(quote("52:54:00:12:34:56"), "\"52:54:00:12:34:56\"");
        assert_eq!(
            quote("5b2c1d3e-0000-4000-8000-000000000001"),
            "\"5b2c1d3e-0000-4000-8000-000000000001\""
        );
        assert_eq!(quote("true"), "\"true\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(unquote("\"a\\\"b\"").unwrap(), "a\"b");
    }
}
