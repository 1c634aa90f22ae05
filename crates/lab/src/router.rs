//! An upstream router behind an 802.1Q trunk, for the tests and the demo.
//!
//! These machines' kernels have no 802.1Q devices and no VLAN-filtering bridges, so
//! a namespace cannot terminate a trunk by itself. The upstream namespace therefore
//! runs a second Portcullis as its "physical switch": its uplink is the namespace's
//! `eth0` (the trunk from the switch under test), its one guest port a veth `r0`
//! whose peer `r1` holds the router's address, untagged in one VLAN.

use crate::{Guest, LabError, check_cidr};

/// Creates `r0`/`r1` in `upstream`'s namespace with `cidr` (198.18.0.0/15 only) on
/// `r1`, and returns the Portcullis profile that terminates VLAN `vid` on `eth0` and
/// delivers it to `r0`. Run it in the namespace (`upstream.command(portcullis)`).
pub fn trunk_router(upstream: &Guest, vid: u16, cidr: &str) -> Result<String, LabError> {
    check_cidr(cidr)?;
    if !(1..=4094).contains(&vid) {
        return Err(LabError::InvalidArg(format!(
            "VLAN {vid} is outside 1..=4094"
        )));
    }
    upstream.run(
        "ip",
        &["link", "add", "r0", "type", "veth", "peer", "name", "r1"],
    )?;
    upstream.run("ip", &["link", "set", "r0", "up"])?;
    upstream.run("ip", &["link", "set", "r1", "up"])?;
    upstream.add_addr("r1", cidr)?;
    Ok(format!(
        r#"[switch]
name = "upstream"

[uplink_policy]
uplinks = ["trunk"]
allowed_vlans = [{vid}]

[[port_group]]
name = "router"
vlan = {vid}

[host.uplinks]
trunk = "eth0"

[[host.port]]
name = "router"
interface = "r0"
port_group = "router"
"#
    ))
}
