//! The management commands: `apply`, `profile export`, port operations — clients
//! of the daemon's API (Unix socket, or TCP+TLS with `--api`, `--ca` and a token).
//!
//! Invariant: configuration goes to the daemon as texts read here, never as paths
//! the daemon would open.

use super::ApiOpts;
use anyhow::Context;
use clap::Subcommand;
use portcullis_api::{ApplyAnswer, ConfigView, Method};
use std::path::{Path, PathBuf};

#[derive(Subcommand, Debug)]
pub enum ProfileOp {
    /// Write the running profile (golden: without the host binding) to a file or
    /// stdout; `--host-out` also writes the host binding.
    Export {
        /// Write the profile to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Also write the running host binding (`[host]`: uplink NICs, ports) to
        /// this file.
        #[arg(long)]
        host_out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PortCmd {
    /// Report a guest's effective MAC (as a hypervisor hook does when the guest
    /// reprograms its NIC). Under mac_changes = reject a MAC other than the initial
    /// one blocks frames to the port until the initial MAC is reported back.
    ReportMac {
        /// The port's name.
        port: String,
        /// The MAC the guest now uses (aa:bb:cc:dd:ee:ff).
        mac: String,
    },
    /// Bring an error-disabled port back (port security shutdown, storm control).
    Recover {
        /// The port's name.
        port: String,
    },
    /// Administratively shut a port down (nothing in or out).
    Shutdown {
        /// The port's name.
        port: String,
    },
    /// Enable a port that was shut down.
    Enable {
        /// The port's name.
        port: String,
    },
    /// Add a runtime port: host state kept in the daemon's state directory across
    /// restarts, not configuration (docs/runtime-ports.md). Its interface need not
    /// exist yet: the port waits (state no-interface) and attaches when it appears.
    /// A vhost-user port (--vhost-user SOCKET) serves a QEMU guest's virtio-net
    /// instead (docs/vhost-user.md).
    Add {
        /// The port's name (1 to 64 of A-Z a-z 0-9 . _ -).
        port: String,
        /// The Linux interface (TAP, veth) it attaches to.
        #[arg(
            long,
            required_unless_present = "vhost_user",
            conflicts_with = "vhost_user"
        )]
        interface: Option<String>,
        /// A vhost-user port on this Unix socket (absolute path) instead of an
        /// interface.
        #[arg(long, value_name = "SOCKET")]
        vhost_user: Option<String>,
        /// server: the switch listens on the socket and QEMU connects (the
        /// default); client: QEMU listens (server=on) and the switch connects.
        #[arg(long, requires = "vhost_user", conflicts_with = "interface", value_parser = ["server", "client"])]
        vhost_user_mode: Option<String>,
        /// The port group (optional when --vlan names the one group with that access VLAN).
        #[arg(long)]
        group: Option<String>,
        /// The access VLAN: selects the group, or must be the group's.
        #[arg(long)]
        vlan: Option<u16>,
        /// The guest's initial MAC; without it the first frame's is learned.
        #[arg(long)]
        mac: Option<String>,
        /// Create the interface as a persistent TAP if it does not exist (removed
        /// with the port).
        #[arg(long)]
        create_tap: bool,
        /// Owner metadata, KEY=VALUE, repeatable (domain=web1, container_id=…),
        /// shown as USED-BY.
        #[arg(long = "owner", value_name = "KEY=VALUE")]
        owner: Vec<String>,
        /// Succeed if a runtime port of this name exists on the same interface
        /// (then changed in place as asked).
        #[arg(long)]
        may_exist: bool,
    },
    /// Change a runtime port: its group, initial MAC or owner metadata.
    Set {
        /// The port's name.
        port: String,
        /// The new port group.
        #[arg(long)]
        group: Option<String>,
        /// The access VLAN: selects the group, or must be the group's.
        #[arg(long)]
        vlan: Option<u16>,
        /// The new initial MAC ("" to learn it from the next first frame).
        #[arg(long)]
        mac: Option<String>,
        /// Owner metadata to set, KEY=VALUE (KEY= removes the key); repeatable.
        #[arg(long = "owner", value_name = "KEY=VALUE")]
        owner: Vec<String>,
    },
    /// Remove a runtime port (its MAC entries and secure MACs go with it).
    Remove {
        /// The port's name.
        port: String,
        /// Succeed when there is no such port.
        #[arg(long)]
        if_exists: bool,
    },
}

/// A runtime port in one line: `vnet0 interface=vnet0 group=web mac=… owner domain=web1`.
pub fn runtime_port_line(p: &portcullis_api::RuntimePortView) -> String {
    let mut line = format!("{} {} group={}", p.name, attachment(p), p.group);
    if let Some(m) = &p.mac {
        line.push_str(&format!(" mac={m}"));
    }
    if !p.owner.is_empty() {
        let owner: Vec<String> = p.owner.iter().map(|(k, v)| format!("{k}={v}")).collect();
        line.push_str(&format!(" owner {}", owner.join(",")));
    }
    line
}

/// `interface=vnet0`, or `vhost-user=/run/vm1.sock mode=server`.
fn attachment(p: &portcullis_api::RuntimePortView) -> String {
    match &p.vhost_user {
        Some(v) => format!(
            "vhost-user={} mode={}",
            v.socket,
            v.mode.as_deref().unwrap_or("server")
        ),
        None => format!("interface={}", p.interface),
    }
}

/// `KEY=VALUE` pairs as a map.
fn owner_map(pairs: &[String]) -> anyhow::Result<portcullis_api::PortOwner> {
    pairs
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("--owner {kv:?}: write KEY=VALUE"))
        })
        .collect()
}

fn print_change(v: serde_json::Value) -> anyhow::Result<()> {
    let a: portcullis_api::PortChangeAnswer = serde_json::from_value(v)?;
    match &a.runtime_port {
        Some(p) => println!(
            "port {}: {} ({}, group {}{})",
            a.port,
            a.outcome,
            attachment(p).replacen('=', " ", 1),
            p.group,
            p.mac
                .as_deref()
                .map(|m| format!(", MAC {m}"))
                .unwrap_or_default()
        ),
        None => println!("port {}: {}", a.port, a.outcome),
    }
    for n in &a.notes {
        println!("note: {n}");
    }
    Ok(())
}

fn write_out(path: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display())),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

pub fn profile(op: ProfileOp, api: &ApiOpts) -> anyhow::Result<()> {
    match op {
        ProfileOp::Export { output, host_out } => {
            let v: ConfigView =
                serde_json::from_value(api.call(Method::GET, "/v1/config", None)?)?;
            write_out(output.as_deref(), &v.profile.text)?;
            if let Some(h) = host_out {
                let mut text = v.host.text.clone();
                if !v.runtime_ports.is_empty() {
                    // For the reader: they run, but are host state kept by the
                    // daemon, not configuration (an apply of this file keeps them).
                    text.push_str("\n# Runtime ports (host state in the daemon's state directory, not part\n# of this file; `portcullis port add|set|remove` changes them):\n");
                    for p in &v.runtime_ports {
                        text.push_str(&format!("#   {}\n", runtime_port_line(p)));
                    }
                }
                write_out(Some(&h), &text)?;
            }
            Ok(())
        }
    }
}

fn read_source(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(serde_json::json!({ "name": path.display().to_string(), "text": text }))
}

/// `portcullis apply FILE [--host FILE] [--dry-run]`: exit 0 applied (or nothing
/// to apply), 1 refused.
pub fn apply(file: &Path, host: Option<&Path>, dry_run: bool, api: &ApiOpts) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "profile": read_source(file)?,
        "host": host.map(read_source).transpose()?,
        "dry_run": dry_run,
    });
    let v = api.call(Method::POST, "/v1/config/apply", Some(body))?;
    let a: ApplyAnswer = serde_json::from_value(v)?;
    print!("{}", a.diff);
    if !a.diff.ends_with('\n') {
        println!();
    }
    for n in &a.notes {
        println!("note: {n}");
    }
    if dry_run {
        println!("dry run: {} change(s), nothing applied", a.changes.len());
    } else if a.applied {
        let c = a.carry_over.unwrap_or_default();
        println!(
            "applied {} change(s); kept {} MAC entries and {} bindings (dropped {} and {})",
            a.changes.len(),
            c["macs_kept"],
            c["bindings_kept"],
            c["macs_dropped"],
            c["bindings_dropped"],
        );
    } else {
        println!("nothing to apply: the running configuration is the same");
    }
    Ok(())
}

pub fn port(op: PortCmd, api: &ApiOpts) -> anyhow::Result<()> {
    match op {
        PortCmd::ReportMac { port, mac } => {
            api.call(
                Method::PUT,
                &format!("/v1/ports/{port}/effective-mac"),
                Some(serde_json::json!({ "mac": mac })),
            )?;
            println!("port {port}: effective MAC {mac} reported");
        }
        PortCmd::Recover { port } => {
            let v = api.call(Method::POST, &format!("/v1/ports/{port}/recover"), None)?;
            if v["recovered"] == true {
                println!("port {port}: recovered");
            } else {
                println!("port {port}: was not error-disabled");
            }
        }
        PortCmd::Shutdown { port } => {
            api.call(Method::POST, &format!("/v1/ports/{port}/shutdown"), None)?;
            println!("port {port}: administratively down");
        }
        PortCmd::Enable { port } => {
            api.call(Method::POST, &format!("/v1/ports/{port}/enable"), None)?;
            println!("port {port}: enabled");
        }
        PortCmd::Add {
            port,
            interface,
            vhost_user,
            vhost_user_mode,
            group,
            vlan,
            mac,
            create_tap,
            owner,
            may_exist,
        } => {
            let body = portcullis_api::NewPort {
                interface: interface.unwrap_or_default(),
                vhost_user: vhost_user.map(|socket| portcullis_api::VhostUserSocket {
                    socket,
                    mode: vhost_user_mode,
                }),
                group,
                vlan,
                mac,
                create_tap,
                owner: owner_map(&owner)?,
                may_exist,
            };
            let v = api.call(
                Method::POST,
                &format!("/v1/ports/{port}"),
                Some(serde_json::to_value(body)?),
            )?;
            print_change(v)?;
        }
        PortCmd::Set {
            port,
            group,
            vlan,
            mac,
            owner,
        } => {
            let body = portcullis_api::PortPatch {
                group,
                vlan,
                mac,
                owner: owner_map(&owner)?,
            };
            let v = api.call(
                Method::PATCH,
                &format!("/v1/ports/{port}"),
                Some(serde_json::to_value(body)?),
            )?;
            print_change(v)?;
        }
        PortCmd::Remove { port, if_exists } => {
            let q = if if_exists { "?if_exists=true" } else { "" };
            let v = api.call(Method::DELETE, &format!("/v1/ports/{port}{q}"), None)?;
            print_change(v)?;
        }
    }
    Ok(())
}
