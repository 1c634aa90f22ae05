//! Port security (Cisco Nexus 1000V `switchport port-security`, DESIGN.md §3): a
//! guest port may use at most `max_macs` source MACs — its effective MAC, static and
//! sticky secure MACs from the configuration, and MACs it learns up to the limit
//! (dynamic, aging `absolute` or `inactivity`, or sticky, kept for good). Learned
//! secure MACs are *known*: frames to them are delivered to the port (capped
//! learning for nested hypervisors and container bridges).
//!
//! Violations: a new MAC beyond the maximum (`secure_mac_limit`), or a MAC that is
//! local to another port of the VLAN (`secure_mac_move`). Actions: protect (drop,
//! counted), restrict (drop, counted, event), shutdown (error-disable the port).
//!
//! Invariants: a port never holds more than `max_macs` secure MACs (its `count`
//! equals its local entries in the MAC table, its effective MAC included); the
//! pipeline calls [`check_source`] before the vSwitch policy and [`admit`] after it.

use crate::errdisable::ErrDisableCause;
use crate::events::{EventKind, ViolationKind};
use crate::mac_table::{MacInsertError, MacKind, SecureKind};
use crate::spec::Violation;
use crate::switch::Switch;
use crate::trace::{Detail, Observer, Outcome, SecureCheck, Stage, Step};
use crate::types::{MacAddr, PortId, Timestamp, Vid};
use crate::verdict::DropReason;

pub use crate::port_state::SecureState;

/// Before the vSwitch policy, for a source MAC other than the port's effective MAC:
/// a MAC that is local to another port of the VLAN is a MAC-move violation, and a new
/// MAC on a port that already has its maximum is a limit violation. So a secure port
/// meets a MAC flood with its violation action (protect, restrict, shutdown) whatever
/// its forged-transmits setting; new MACs *below* the limit still go through the
/// vSwitch policy, and are learned only if it lets them pass.
#[inline]
pub fn check_source(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    src: MacAddr,
    now: Timestamp,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let note = |t: &mut _, r: &Result<(), DropReason>, check| {
        observe(t, Stage::PortSecurity, r, src, vid, check)
    };
    let p = &sw.ports[port.index()];
    let Some(sec) = p.secure else {
        note(t, &Ok(()), SecureCheck::Off);
        return Ok(());
    };
    if p.effective_mac == Some(src) {
        note(t, &Ok(()), SecureCheck::EffectiveMac);
        return Ok(());
    }
    let (count, max, action) = (sec.count, sec.max_macs, sec.violation);
    let (r, check) = match sw.macs.lookup(vid, src, now) {
        Some(e) if e.kind.is_local() && e.port == port => {
            (Ok(()), SecureCheck::KnownSecure(e.kind))
        }
        Some(e) if e.kind.is_local() => {
            let r = Err(violation(sw, port, vid, src, ViolationKind::MacMove, now));
            let (kind, owner) = (ViolationKind::MacMove, Some(e.port));
            (
                r,
                SecureCheck::Violation {
                    kind,
                    owner,
                    count,
                    max,
                    action,
                },
            )
        }
        _ if sec.count >= sec.max_macs => {
            let r = Err(violation(sw, port, vid, src, ViolationKind::TooMany, now));
            let (kind, owner) = (ViolationKind::TooMany, None);
            (
                r,
                SecureCheck::Violation {
                    kind,
                    owner,
                    count,
                    max,
                    action,
                },
            )
        }
        _ => (Ok(()), SecureCheck::Room { count, max }),
    };
    note(t, &r, check);
    r
}

/// Reports port security's view of `mac` to `t` (when tracing).
#[inline(always)]
fn observe(
    t: &mut impl Observer,
    stage: Stage,
    r: &Result<(), DropReason>,
    mac: MacAddr,
    vid: Vid,
    check: SecureCheck,
) {
    t.note(|| {
        let outcome = match (r, check) {
            (Ok(()), SecureCheck::Off) => Outcome::Skip,
            (Ok(()), _) => Outcome::Pass,
            (Err(e), _) => Outcome::Drop(*e),
        };
        Step::new(stage, outcome, Detail::Secure { mac, vid, check })
    });
}

/// After the vSwitch policy: a known secure MAC is refreshed; a new one is learned
/// while the port is under its maximum; beyond it, a violation.
#[inline]
pub fn admit(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    src: MacAddr,
    now: Timestamp,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let note = |t: &mut _, r: &Result<(), DropReason>, check| {
        observe(t, Stage::PortSecurityAdmit, r, src, vid, check)
    };
    let p = &sw.ports[port.index()];
    let Some(sec) = p.secure else { return Ok(()) };
    if p.effective_mac == Some(src) {
        note(t, &Ok(()), SecureCheck::EffectiveMac);
        return Ok(());
    }
    let (count, max, action) = (sec.count, sec.max_macs, sec.violation);
    match sw.macs.lookup(vid, src, now) {
        Some(e) if e.kind.is_local() && e.port == port => {
            sw.macs.touch(vid, src, now);
            note(t, &Ok(()), SecureCheck::KnownSecure(e.kind));
            return Ok(());
        }
        Some(e) if e.kind.is_local() => {
            let r = Err(violation(sw, port, vid, src, ViolationKind::MacMove, now));
            let (kind, owner) = (ViolationKind::MacMove, Some(e.port));
            note(
                t,
                &r,
                SecureCheck::Violation {
                    kind,
                    owner,
                    count,
                    max,
                    action,
                },
            );
            return r;
        }
        _ => {}
    }
    if sec.count >= sec.max_macs {
        let r = Err(violation(sw, port, vid, src, ViolationKind::TooMany, now));
        let (kind, owner) = (ViolationKind::TooMany, None);
        note(
            t,
            &r,
            SecureCheck::Violation {
                kind,
                owner,
                count,
                max,
                action,
            },
        );
        return r;
    }
    let kind = if sec.sticky {
        SecureKind::Sticky
    } else {
        SecureKind::Dynamic
    };
    match sw
        .macs
        .insert_local(vid, src, port, MacKind::Secure(kind), now)
    {
        Ok(()) => {}
        Err(MacInsertError::Full) => {
            sw.events
                .push(now, EventKind::MacTableFull { port, mac: src });
            let r = Err(DropReason::MacTableFull);
            note(t, &r, SecureCheck::TableFull);
            return r;
        }
        Err(MacInsertError::OwnedBy(owner)) => {
            let r = Err(violation(sw, port, vid, src, ViolationKind::MacMove, now));
            let (kind, owner) = (ViolationKind::MacMove, Some(owner));
            note(
                t,
                &r,
                SecureCheck::Violation {
                    kind,
                    owner,
                    count,
                    max,
                    action,
                },
            );
            return r;
        }
    }
    if let Some(s) = sw.ports[port.index()].secure.as_mut() {
        s.count += 1;
    }
    let (sticky, count) = (sec.sticky, count + 1);
    note(t, &Ok(()), SecureCheck::Learned { sticky, count, max });
    sw.events.push(
        now,
        EventKind::SecureMacLearned {
            port,
            vid: vid.get(),
            mac: src,
            sticky: sec.sticky,
        },
    );
    Ok(())
}

/// Counts a violation and applies the port's action; returns the drop reason.
#[cold]
pub fn violation(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    mac: MacAddr,
    kind: ViolationKind,
    now: Timestamp,
) -> DropReason {
    let reason = match kind {
        ViolationKind::TooMany => DropReason::SecureMacLimit,
        ViolationKind::MacMove => DropReason::SecureMacMove,
    };
    let Some(sec) = sw.ports[port.index()].secure.as_mut() else {
        return reason;
    };
    sec.violations += 1;
    sec.last_violation = Some((mac, vid));
    let action = sec.violation;
    match action {
        Violation::Protect => {}
        Violation::Restrict => {
            sw.events.push(
                now,
                EventKind::PortSecurityViolation {
                    port,
                    vid: vid.get(),
                    mac,
                    kind,
                    action,
                },
            );
        }
        Violation::Shutdown => {
            sw.events.push(
                now,
                EventKind::PortSecurityViolation {
                    port,
                    vid: vid.get(),
                    mac,
                    kind,
                    action,
                },
            );
            sw.err_disable(port, ErrDisableCause::PortSecurity, now);
        }
    }
    reason
}
