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
                write_out(Some(&h), &v.host.text)?;
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
    }
    Ok(())
}
