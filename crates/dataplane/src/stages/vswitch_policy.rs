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
use crate::trace::{Detail, Observer, PolicyCheck, Stage, Step};
use crate::types::{MacAddr, PortId, Timestamp, Vid};
use crate::verdict::DropReason;

/// Checks (and, where the policy says so, follows) the source MAC of a frame from
/// guest port `port`.
#[inline]
pub fn check_source(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    src: MacAddr,
    now: Timestamp,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let p = &sw.ports[port.index()];
    let forged_ok = p.security.forged_transmits == Policy::Accept;
    let (r, check) = match p.effective_mac {
        Some(eff) if eff == src => (Ok(()), PolicyCheck::EffectiveMac),
        // With forged transmits accepted and port security on, extra source MACs
        // are port security's to admit (capped learning), not MAC changes.
        Some(eff)
            if p.security.mac_changes == Policy::Accept && !(forged_ok && p.secure.is_some()) =>
        {
            follow(sw, port, src, now, MacChangeSource::Guest, Some(eff))
        }
        Some(effective) if forged_ok => match sw.macs.lookup(vid, src, now) {
            // Accepting forged transmits never lets a guest use another port's MAC.
            Some(e) if e.kind.is_local() && e.port != port => (
                Err(DropReason::MacConflict),
                PolicyCheck::ForgedConflict { owner: e.port },
            ),
            _ => (Ok(()), PolicyCheck::ForgedAccepted { effective }),
        },
        Some(effective) => (
            Err(DropReason::ForgedTransmit),
            PolicyCheck::Forged { effective },
        ),
        None => follow(sw, port, src, now, MacChangeSource::Guest, None),
    };
    t.note(|| Step::of(Stage::VswitchPolicy, &r, Detail::Policy { mac: src, check }));
    r
}

#[cold]
fn follow(
    sw: &mut Switch,
    port: PortId,
    src: MacAddr,
    now: Timestamp,
    source: MacChangeSource,
    from: Option<MacAddr>,
) -> (Result<(), DropReason>, PolicyCheck) {
    let (r, owner) = match sw.change_effective_mac(port, src, now, source) {
        Ok(()) => (Ok(()), None),
        Err(MacInsertError::Full) => (Err(DropReason::MacTableFull), None),
        Err(MacInsertError::OwnedBy(o)) => (Err(DropReason::MacConflict), Some(o)),
    };
    (r, PolicyCheck::MacChange { from, owner })
}
