//! `portcullis adopt bridge BR`: the phased migration of a running Linux bridge's
//! guests into Portcullis (the vSS → vDS migration), one port at a time, with a way
//! back. It is a host tool (root: it changes the bridge) and an API client (the
//! ports it moves are runtime ports).
//!
//! The shape: `--prepare` reads the bridge (ports, the guests' MACs from its
//! forwarding table, VLAN filtering), cables it to Portcullis with a veth pair (one
//! end a bridge port, the other the switch's uplink `bridge`) and writes the
//! profile and host binding to start the daemon with. Each move then takes a guest
//! port out of the bridge and adds it as a runtime port (group from `--group`, its
//! MAC as read, owner `adopted_from = BR`): moved and unmoved guests keep talking
//! through the veth, which the bridge sees as one more port and Portcullis as its
//! uplink. `--back` reverses moves.
//!
//! Invariants: a port is never in the bridge and in Portcullis at once (it leaves
//! the bridge before the runtime port opens it, so the bridge never learns a moved
//! guest's MAC from two ports); a move that Portcullis refuses puts the port back
//! into the bridge; only guest ports move (a physical NIC — one with a `device` in
//! sysfs — stays the bridge's); the interconnect's names are derived from the
//! bridge's, so every step finds it again.

use crate::client::ApiOpts;
use anyhow::{Context, bail};
use clap::Args;
use portcullis_api::Method;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Args, Debug)]
pub struct AdoptArgs {
    /// What to adopt: `bridge`.
    #[arg(value_parser = ["bridge"])]
    pub kind: String,
    /// The Linux bridge.
    pub bridge: String,
    /// Cable the bridge to Portcullis and write the configuration to start the
    /// daemon with (to --output, or standard output); moves nothing.
    #[arg(long, conflicts_with = "back")]
    pub prepare: bool,
    /// Where --prepare writes the configuration.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// The port group the guests join (--prepare writes it; moves use it).
    #[arg(long, default_value = "guests")]
    pub group: String,
    /// The VLAN the bridge's untagged traffic is in (--prepare).
    #[arg(long, default_value_t = 1)]
    pub vlan: u16,
    /// The guest ports to move (or move back), in this order; without it, every
    /// guest port, in the bridge's port order.
    #[arg(long = "port", value_name = "IF")]
    pub ports: Vec<String>,
    /// Move ports back from Portcullis into the bridge (the rollback).
    #[arg(long)]
    pub back: bool,
}

/// What a bridge port is, for the migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// A TAP or veth of a guest: moves.
    Guest,
    /// A physical NIC: stays with the bridge (the network beyond it).
    Nic,
    /// The bridge's end of the cable to Portcullis.
    Interconnect,
}

/// One port of the bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePort {
    pub ifname: String,
    pub kind: PortKind,
    /// The MACs the bridge learned on it (not its own), as `aa:bb:…`.
    pub macs: Vec<String>,
}

/// The bridge as far as sysfs tells.
#[derive(Debug, Clone)]
pub struct BridgeView {
    pub ports: Vec<BridgePort>,
    pub vlan_filtering: bool,
}

/// The veth pair between `bridge` and Portcullis: (the switch's end, the bridge's
/// end), named from a hash of the bridge's name (15 bytes at most).
pub fn interconnect(bridge: &str) -> (String, String) {
    // FNV-1a, 24 bits: stable across runs and versions.
    let mut h: u32 = 0x811c_9dc5;
    for b in bridge.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let tag = format!("{:06x}", h & 0x00ff_ffff);
    (format!("pcla{tag}u"), format!("pcla{tag}b"))
}

fn sysfs(bridge: &str) -> PathBuf {
    Path::new("/sys/class/net").join(bridge)
}

/// Parses the bridge's forwarding table (`/sys/class/net/BR/brforward`: 16-byte
/// `struct __fdb_entry` records) into (port number, MAC, is_local).
pub fn parse_brforward(bytes: &[u8]) -> Vec<(u16, [u8; 6], bool)> {
    bytes
        .chunks_exact(16)
        .map(|e| {
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&e[..6]);
            let port = u16::from(e[6]) | (u16::from(e[12]) << 8);
            (port, mac, e[7] != 0)
        })
        .collect()
}

fn mac_text(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Reads `bridge` from sysfs.
pub fn read_bridge(bridge: &str) -> anyhow::Result<BridgeView> {
    let dir = sysfs(bridge);
    if !dir.join("bridge").is_dir() {
        bail!(
            "{bridge:?} is not a Linux bridge (no {}/bridge)",
            dir.display()
        );
    }
    let vlan_filtering = std::fs::read_to_string(dir.join("bridge/vlan_filtering"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    let (_, ours) = interconnect(bridge);
    let mut numbered = Vec::new();
    for e in std::fs::read_dir(dir.join("brif")).context("reading the bridge's ports")? {
        let ifname = e?.file_name().to_string_lossy().into_owned();
        let no = std::fs::read_to_string(dir.join("brif").join(&ifname).join("port_no"))
            .ok()
            .and_then(|s| u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
            .unwrap_or(u16::MAX);
        let kind = if ifname == ours {
            PortKind::Interconnect
        } else if Path::new("/sys/class/net")
            .join(&ifname)
            .join("device")
            .exists()
        {
            PortKind::Nic
        } else {
            PortKind::Guest
        };
        numbered.push((
            no,
            BridgePort {
                ifname,
                kind,
                macs: Vec::new(),
            },
        ));
    }
    numbered.sort_by_key(|(no, _)| *no);
    let fdb = std::fs::read(dir.join("brforward")).unwrap_or_default();
    for (no, mac, local) in parse_brforward(&fdb) {
        if local {
            continue;
        }
        if let Some((_, p)) = numbered.iter_mut().find(|(n, _)| *n == no) {
            p.macs.push(mac_text(&mac));
        }
    }
    Ok(BridgeView {
        ports: numbered.into_iter().map(|(_, p)| p).collect(),
        vlan_filtering,
    })
}

/// The configuration `--prepare` writes: the bridge as the uplink `bridge`,
/// untagged in `vlan`, and one group for the guests.
pub fn configuration(bridge: &str, view: &BridgeView, group: &str, vlan: u16) -> String {
    let (switch_end, _) = interconnect(bridge);
    let mut guests = String::new();
    for p in view.ports.iter().filter(|p| p.kind == PortKind::Guest) {
        let macs = if p.macs.is_empty() {
            "MAC not seen yet: learned from its first frame".to_string()
        } else {
            p.macs.join(", ")
        };
        guests.push_str(&format!("#   {} ({macs})\n", p.ifname));
    }
    format!(
        r#"# Written by `portcullis adopt bridge {bridge} --prepare`: the switch that takes over
# the guests of the Linux bridge {bridge:?}. The bridge stays the way to the network:
# Portcullis reaches it through the uplink "bridge" (interface {switch_end}, a veth
# whose other end is a port of {bridge}). Guests move with
# `portcullis adopt bridge {bridge} [--port IF]` and back with `--back`.
#
# Guest ports found:
{guests}
[switch]
name = "{bridge}"

[uplink_policy]
uplinks = ["bridge"]
allowed_vlans = [{vlan}]
native_vlan = {vlan}

[[port_group]]
name = "{group}"
vlan = {vlan}
security = {{ promiscuous = "reject", mac_changes = "reject", forged_transmits = "reject" }}

[host.uplinks]
bridge = "{switch_end}"
"#
    )
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// `--prepare`: the veth pair, its bridge end in the bridge; the configuration.
fn prepare(args: &AdoptArgs, view: &BridgeView) -> anyhow::Result<()> {
    let bridge = &args.bridge;
    let (switch_end, bridge_end) = interconnect(bridge);
    if !portcullis_io::interface_exists(&switch_end) {
        ip(&[
            "link",
            "add",
            &switch_end,
            "type",
            "veth",
            "peer",
            "name",
            &bridge_end,
        ])?;
    }
    if !view.ports.iter().any(|p| p.kind == PortKind::Interconnect) {
        portcullis_io::bridge_add_port(bridge, &bridge_end)
            .with_context(|| format!("adding {bridge_end} to {bridge}"))?;
    }
    for end in [&switch_end, &bridge_end] {
        portcullis_io::set_link_up(end).with_context(|| format!("setting {end} up"))?;
    }
    let text = configuration(bridge, view, &args.group, args.vlan);
    match &args.output {
        Some(p) => std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    eprintln!(
        "{bridge} is cabled to Portcullis ({bridge_end} in the bridge, {switch_end} for the switch); start the daemon with this configuration, then move guests with `portcullis adopt bridge {bridge}`"
    );
    Ok(())
}

/// The ports to act on: those named (each must be among `candidates`), or all.
fn selected<'a>(
    names: &[String],
    candidates: &'a [String],
    what: &str,
) -> anyhow::Result<Vec<&'a String>> {
    if names.is_empty() {
        return Ok(candidates.iter().collect());
    }
    names
        .iter()
        .map(|n| {
            candidates
                .iter()
                .find(|c| *c == n)
                .with_context(|| format!("{n:?} is not {what}"))
        })
        .collect()
}

/// Moves guest ports out of the bridge into Portcullis.
fn move_in(args: &AdoptArgs, view: &BridgeView, api: &ApiOpts) -> anyhow::Result<()> {
    let bridge = &args.bridge;
    if !view.ports.iter().any(|p| p.kind == PortKind::Interconnect) {
        bail!(
            "{bridge} is not cabled to Portcullis yet: run `portcullis adopt bridge {bridge} --prepare` and start the daemon first"
        );
    }
    let guests: Vec<String> = view
        .ports
        .iter()
        .filter(|p| p.kind == PortKind::Guest)
        .map(|p| p.ifname.clone())
        .collect();
    for ifname in selected(&args.ports, &guests, &format!("a guest port of {bridge}"))? {
        let port = view
            .ports
            .iter()
            .find(|p| &p.ifname == ifname)
            .expect("selected");
        // One MAC seen: the guest's, configured. None or several: learned.
        let mac = match port.macs.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        };
        let mut owner = portcullis_api::PortOwner::new();
        owner.insert("adopted_from".into(), bridge.clone());
        let body = portcullis_api::NewPort {
            interface: ifname.clone(),
            group: Some(args.group.clone()),
            mac: mac.clone(),
            owner,
            ..Default::default()
        };
        let t0 = Instant::now();
        portcullis_io::bridge_remove_port(bridge, ifname)
            .with_context(|| format!("taking {ifname} out of {bridge}"))?;
        let added = api.call(
            Method::POST,
            &format!("/v1/ports/{ifname}"),
            Some(serde_json::to_value(&body)?),
        );
        if let Err(e) = added {
            // Refused: the guest goes back where it was.
            portcullis_io::bridge_add_port(bridge, ifname)
                .with_context(|| format!("putting {ifname} back into {bridge} after: {e:#}"))?;
            return Err(e.context(format!("{ifname} stays in {bridge}")));
        }
        println!(
            "{ifname}: moved from {bridge} to Portcullis in {:.1} ms (group {}, MAC {})",
            t0.elapsed().as_secs_f64() * 1e3,
            args.group,
            mac.as_deref().unwrap_or("learned from its first frame")
        );
    }
    Ok(())
}

/// Moves adopted ports back into the bridge.
fn move_back(args: &AdoptArgs, api: &ApiOpts) -> anyhow::Result<()> {
    let bridge = &args.bridge;
    let config: portcullis_api::ConfigView =
        serde_json::from_value(api.call(Method::GET, "/v1/config", None)?)?;
    let adopted: Vec<String> = config
        .runtime_ports
        .iter()
        .filter(|p| p.owner.get("adopted_from") == Some(bridge))
        .map(|p| p.name.clone())
        .collect();
    for name in selected(
        &args.ports,
        &adopted,
        &format!("a port adopted from {bridge}"),
    )? {
        let p = config
            .runtime_ports
            .iter()
            .find(|p| &p.name == name)
            .expect("selected");
        let t0 = Instant::now();
        api.call(Method::DELETE, &format!("/v1/ports/{name}"), None)?;
        portcullis_io::bridge_add_port(bridge, &p.interface)
            .with_context(|| format!("putting {} back into {bridge}", p.interface))?;
        portcullis_io::set_link_up(&p.interface)?;
        println!(
            "{}: moved back into {bridge} in {:.1} ms",
            p.interface,
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
}

pub fn run(args: &AdoptArgs, api: &ApiOpts) -> anyhow::Result<()> {
    if args.back {
        return move_back(args, api);
    }
    let view = read_bridge(&args.bridge)?;
    if view.vlan_filtering {
        bail!(
            "{} filters VLANs: its per-port VLANs are not read here (this kernel has no VLAN filtering to test with); write the groups by hand",
            args.bridge
        );
    }
    if args.prepare {
        prepare(args, &view)
    } else {
        move_in(args, &view, api)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interconnect_is_named_from_the_bridge_within_15_bytes() {
        let (a, b) = interconnect("vmbr0");
        assert_eq!((a.len(), b.len()), (11, 11));
        assert_eq!(interconnect("vmbr0"), (a.clone(), b.clone()), "stable");
        assert_ne!(interconnect("vmbr1").0, a);
        assert!(a.ends_with('u') && b.ends_with('b'));
    }

    #[test]
    fn fdb_records_are_read_with_their_port_number_and_locality() {
        let mut bytes = vec![0u8; 32];
        bytes[..6].copy_from_slice(&[0x52, 0x54, 0, 0, 0, 1]);
        bytes[6] = 3;
        bytes[12] = 1; // port_hi: port 259
        bytes[16..22].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        bytes[22] = 1;
        bytes[23] = 1; // local
        bytes.push(0xff); // a torn record is ignored
        assert_eq!(
            parse_brforward(&bytes),
            vec![
                (259, [0x52, 0x54, 0, 0, 0, 1], false),
                (1, [2, 0, 0, 0, 0, 2], true)
            ]
        );
    }

    #[test]
    fn the_written_configuration_is_valid_and_lists_the_guests() {
        let view = BridgeView {
            ports: vec![
                BridgePort {
                    ifname: "tap100i0".into(),
                    kind: PortKind::Guest,
                    macs: vec!["52:54:00:00:00:01".into()],
                },
                BridgePort {
                    ifname: "eth0".into(),
                    kind: PortKind::Nic,
                    macs: vec![],
                },
            ],
            vlan_filtering: false,
        };
        let text = configuration("vmbr0", &view, "guests", 10);
        assert!(text.contains("#   tap100i0 (52:54:00:00:00:01)"), "{text}");
        assert!(!text.contains("#   eth0"), "{text}");
        let config = portcullis_control::parse_str(&text, "adopt.toml", None).expect("valid");
        assert_eq!(config.host.uplinks[0].interface, interconnect("vmbr0").0);
    }
}
