//! IPv6 Source Guard, whole: `ipv6_source_guard = "off" | "ip" | "ip-mac"` or a
//! table on a port group or a port. Its shape, model and conversion are IP Source
//! Guard's (`ip_source_guard.rs`: the same words and table, merged the same way —
//! this feature's meaning mirrors that one's, so it reuses them); here are its part
//! of a guest port's spec (uplinks never guard), its flattening for diff and why it
//! is refused in `[uplink_policy]`. The stage is
//! `portcullis_dataplane::stages::ipv6_source_guard`; it reads the bindings ND
//! inspection, DHCPv6 snooping, the configuration and the API make.
//!
//! Invariant: the word form and the table form of one setting convert to the same
//! model, so they compile and flatten the same.

use crate::config::features::ip_source_guard::{IpSourceGuardOverride, source_guard};
use crate::config::flat::{Flat, OFF, mode, put};
use portcullis_dataplane::Ipv6SourceGuardSpec;

/// Why `uplink_policy.ipv6_source_guard` is refused.
pub(crate) const ON_UPLINKS: &str = "IPv6 Source Guard applies to guest ports only: uplinks carry the addresses of the whole network (set it on a [[port_group]] or [[host.port]])";

/// The guard in force for the merged setting `g`, if on.
pub(crate) fn spec(g: Option<IpSourceGuardOverride>) -> Option<Ipv6SourceGuardSpec> {
    g.and_then(|g| g.resolve()).map(|s| Ipv6SourceGuardSpec {
        check: s.check,
        mode: s.mode,
    })
}

/// `<prefix>.ipv6_source_guard…` of the merged setting `g`: off unless in force.
pub(crate) fn flatten(f: &mut Flat, prefix: &str, g: Option<IpSourceGuardOverride>) {
    let k = |field: &str| format!("{prefix}.{field}");
    match spec(g) {
        None => put(f, &k("ipv6_source_guard"), OFF),
        Some(s) => {
            put(f, &k("ipv6_source_guard.check"), source_guard(s.check));
            put(f, &k("ipv6_source_guard.mode"), mode(s.mode));
        }
    }
}
