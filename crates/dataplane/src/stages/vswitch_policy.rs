//! VMware vSwitch security policy (DESIGN.md §3): forged transmits and MAC address
//! changes on ingress from a guest; promiscuous mode and MAC-change blocking are
//! applied on egress by the per-VLAN sets `forwarding.rs` uses.
//!
//! Invariants, for a guest port with effective MAC E and initial MAC I:
//! - a frame with source S ≠ E passes only if mac_changes = accept (then E := S,
//!   unless another port holds S in one of the port's VLANs) or forged_transmits =
//!   accept (then S is not learned and E stays);
//! - a port without a configured MAC takes its first valid source as I and E;
//! - with mac_changes = reject and E ≠ I, nothing is delivered to the port.

use crate::events::MacChangeSource;
use crate::mac_table::MacInsertError;
use crate::spec::Policy;
use crate::switch::Switch;
use crate::types::{Instant, MacAddr, PortId};
use crate::verdict::DropReason;

/// Checks (and, where the policy says so, follows) the source MAC of a frame from
/// guest port `port`.
#[inline]
pub fn check_source(
    sw: &mut Switch,
    port: PortId,
    src: MacAddr,
    now: Instant,
) -> Result<(), DropReason> {
    let p = &sw.ports[port.index()];
    match p.effective_mac {
        Some(eff) if eff == src => Ok(()),
        Some(_) if p.security.mac_changes == Policy::Accept => {
            follow(sw, port, src, now, MacChangeSource::Guest)
        }
        Some(_) if p.security.forged_transmits == Policy::Accept => Ok(()),
        Some(_) => Err(DropReason::ForgedTransmit),
        None => follow(sw, port, src, now, MacChangeSource::Guest),
    }
}

#[cold]
fn follow(
    sw: &mut Switch,
    port: PortId,
    src: MacAddr,
    now: Instant,
    source: MacChangeSource,
) -> Result<(), DropReason> {
    sw.change_effective_mac(port, src, now, source)
        .map_err(|e| match e {
            MacInsertError::Full => DropReason::MacTableFull,
            MacInsertError::OwnedBy(_) => DropReason::MacConflict,
        })
}
