//! `portcullis-cni`: a CNI plugin (spec 1.0 and 1.1) that attaches containers to
//! the Portcullis switch. ADD creates a veth whose peer is the container's
//! interface, delegates addressing to the IPAM plugin (host-local …), adds the host
//! end as a runtime port with the container's MAC, and binds each IPv4 address the
//! IPAM plugin gave to that MAC and port, so IP Source Guard and ARP inspection
//! protect the container from its first packet. See docs/cni.md.
//!
//! Invariants: the plugin is a pure client of the daemon's API and keeps no state
//! of its own; it prints exactly one JSON document on stdout — the result, the
//! version answer, or a CNI error (`{"cniVersion", "code", "msg", "details"}`,
//! exit status 1) — and nothing else there.

mod commands;
mod ipam;
mod netlink;
mod spec;
mod switch;

use spec::{CniError, NetConf, SUPPORTED_VERSIONS, code};
use std::io::Read;
use std::process::ExitCode;

/// The version of the spec errors and VERSION answers claim when stdin names none.
const LATEST: &str = "1.1.0";

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let command = std::env::var("CNI_COMMAND").unwrap_or_default();
    // A stdin that cannot be read is an empty configuration: refused below as one
    // that does not decode (VERSION alone needs none).
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let version = serde_json::from_slice::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_owned))
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| LATEST.into());
    match run(&command, &stdin, &version) {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            let mut body = serde_json::json!({
                "cniVersion": version,
                "code": e.code,
                "msg": e.msg,
            });
            if !e.details.is_empty() {
                body["details"] = e.details.into();
            }
            println!("{body}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: &str, stdin: &[u8], version: &str) -> Result<Option<String>, CniError> {
    if command == "VERSION" {
        return Ok(Some(
            serde_json::json!({
                "cniVersion": version,
                "supportedVersions": SUPPORTED_VERSIONS,
            })
            .to_string(),
        ));
    }
    if command.is_empty() {
        return Err(CniError::new(
            code::INVALID_ENV,
            "CNI_COMMAND is not set: portcullis-cni is a CNI plugin, run by a container runtime (docs/cni.md)",
        ));
    }
    if !matches!(command, "ADD" | "DEL" | "CHECK" | "GC" | "STATUS") {
        return Err(CniError::new(
            code::INVALID_ENV,
            format!("CNI_COMMAND {command:?} is not one of ADD, DEL, CHECK, GC, STATUS, VERSION"),
        ));
    }
    let conf = NetConf::parse(stdin)?;
    let call = commands::Call::from_env()?;
    match command {
        "ADD" => {
            let result = commands::add(&call, &conf, stdin)?;
            serde_json::to_string(&result)
                .map(Some)
                .map_err(|e| CniError::new(code::IO_FAILURE, e.to_string()))
        }
        "DEL" => commands::del(&call, &conf, stdin).map(|()| None),
        "CHECK" => commands::check(&call, &conf, stdin).map(|()| None),
        "GC" => commands::gc(&call, &conf, stdin).map(|_| None),
        _ => commands::status(&conf).map(|()| None),
    }
}
