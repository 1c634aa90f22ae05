//! Pipeline stages: one module per security concern, each a pure check over the
//! switch state and the parsed frame. `pipeline.rs` runs them in order. Also owns
//! `refuse`, the one way an enforcing stage refuses a frame: drop it, or in
//! observe mode count it and let it pass.

pub mod arp_inspection;
pub mod arp_proxy;
pub mod dhcp_snooping;
pub mod dhcpv6_guard;
pub mod ip_conflict;
pub mod ip_source_guard;
pub mod ipv6_common;
pub mod ipv6_source_guard;
pub mod mac_acl;
pub mod nd_inspection;
pub mod port_security;
pub mod ra_guard;
pub mod storm_control;
pub mod vswitch_policy;

use crate::spec::EnforceMode;
use crate::switch::Switch;
use crate::trace::{Observer, Outcome, Step};
use crate::types::PortId;
use crate::verdict::DropReason;

/// Drops, or in observe mode counts and lets pass; reports it to `t` as the step
/// `step` builds from the outcome.
#[inline]
pub(crate) fn refuse<O: Observer>(
    sw: &mut Switch,
    port: PortId,
    mode: EnforceMode,
    reason: DropReason,
    t: &mut O,
    step: impl FnOnce(Outcome) -> Step,
) -> Result<(), DropReason> {
    match mode {
        EnforceMode::Enforce => {
            t.note(|| step(Outcome::Drop(reason)));
            Err(reason)
        }
        EnforceMode::Observe => {
            sw.counters[port.index()].observed[reason as usize] += 1;
            t.note(|| step(Outcome::Observe(reason)));
            Ok(())
        }
    }
}
