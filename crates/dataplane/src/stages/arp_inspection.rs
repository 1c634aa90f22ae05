//! Dynamic ARP inspection (Cisco `ip arp inspection`, DESIGN.md §3): on untrusted
//! ports, an ARP request or reply (RFC 826) passes only if its sender (MAC, IP) is
//! bound in the frame's VLAN — by DHCP snooping, a static or API binding — or an ARP
//! ACL permits it; optional validation of the Ethernet source (= sender MAC), of the
//! Ethernet destination of replies (= target MAC) and of the addresses; a rate above
//! the limit (default 15 pps, 1 s burst) error-disables the port.
//!
//! Invariant: on a port where inspection is on and not trusted, no ARP frame whose
//! sender IP is bound to another MAC ever leaves the switch (observe mode aside), so
//! a guest cannot poison another's ARP cache. ARP probes (sender 0.0.0.0, RFC 5227)
//! claim nothing and pass unless `validate ip` is set.

use crate::arp::{self, ArpOp};
use crate::errdisable::ErrDisableCause;
use crate::frame::FrameView;
use crate::spec::{AclAction, ArpAclSpec, EnforceMode};
use crate::stages::refuse;
use crate::switch::Switch;
use crate::trace::{ArpCheck, ArpNote, Detail, Observer, Outcome, Stage, Step};
use crate::types::{PortId, Timestamp, Vid};
use crate::verdict::DropReason;
use std::net::{IpAddr, Ipv4Addr};

pub use crate::port_state::DaiPortState;

fn bad_ip(ip: Ipv4Addr) -> bool {
    ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast()
}

/// The ACL's verdict for a sender: Some((rule index, permit?)) for the first
/// matching rule.
fn acl_match(acl: &ArpAclSpec, ip: Ipv4Addr, mac: crate::types::MacAddr) -> Option<(u16, bool)> {
    acl.rules.iter().enumerate().find_map(|(i, r)| {
        let mask = if r.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - r.prefix_len.min(32))
        };
        let ip_ok = u32::from(ip) & mask == u32::from(r.ip) & mask;
        let mac_ok = r.mac.is_none_or(|m| m.matches(mac));
        (ip_ok && mac_ok).then_some((i as u16, r.action == AclAction::Permit))
    })
}

/// Inspects an ARP frame (`l3` is the ARP message) received on `port`.
pub fn inspect<O: Observer>(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    now: Timestamp,
    t: &mut O,
) -> Result<(), DropReason> {
    let step = |outcome, mode, arp, note| {
        Step::new(
            Stage::ArpInspection,
            outcome,
            Detail::Arp { mode, arp, note },
        )
    };
    let Some(st) = sw.ports[port.index()].dai.as_mut() else {
        t.note(|| step(Outcome::Skip, EnforceMode::Enforce, None, ArpNote::Off));
        return Ok(());
    };
    let mode = st.spec.mode;
    if st.spec.trusted {
        t.note(|| step(Outcome::Skip, mode, None, ArpNote::Trusted));
        return Ok(());
    }
    if let Some(b) = st.bucket.as_mut()
        && !b.admit(now)
    {
        let pps = st.spec.rate_limit_pps.unwrap_or(0);
        if mode == EnforceMode::Enforce {
            sw.err_disable(port, ErrDisableCause::ArpRateLimit, now);
        }
        return refuse(sw, port, mode, DropReason::ArpRateLimit, t, |o| {
            step(o, mode, None, ArpNote::RateLimit { pps })
        });
    }
    let st = sw.ports[port.index()].dai.as_ref().expect("checked above");
    let (v_src, v_dst, v_ip, acl) = (
        st.spec.validate_src_mac,
        st.spec.validate_dst_mac,
        st.spec.validate_ip,
        st.acl,
    );
    let Ok(a) = arp::parse(l3) else {
        return refuse(sw, port, mode, DropReason::ArpMalformed, t, |o| {
            step(o, mode, None, ArpNote::Malformed)
        });
    };
    let arp = Some(a);
    let reply = a.oper == ArpOp::Reply;
    let invalid = if v_src && view.src != a.sender_mac {
        Some(ArpCheck::SrcMac)
    } else if v_dst && reply && view.dst != a.target_mac {
        Some(ArpCheck::DstMac)
    } else if v_ip && (bad_ip(a.sender_ip) || (reply && bad_ip(a.target_ip))) {
        Some(ArpCheck::Ip)
    } else {
        None
    };
    if let Some(check) = invalid {
        return refuse(sw, port, mode, DropReason::ArpInvalid, t, |o| {
            step(o, mode, arp, ArpNote::Invalid { check })
        });
    }
    if a.is_probe() {
        t.note(|| step(Outcome::Pass, mode, arp, ArpNote::Probe));
        return Ok(());
    }
    if let Some((i, acl)) = acl.and_then(|i| sw.arp_acls.get(i as usize).map(|a| (i, a))) {
        let m = acl_match(acl, a.sender_ip, a.sender_mac);
        let note = |rule: Option<u16>, permit| ArpNote::Acl {
            acl: i,
            rule,
            permit,
        };
        match m {
            Some((r, true)) => {
                t.note(|| step(Outcome::Pass, mode, arp, note(Some(r), true)));
                return Ok(());
            }
            Some((r, false)) => {
                return refuse(sw, port, mode, DropReason::ArpAclDeny, t, |o| {
                    step(o, mode, arp, note(Some(r), false))
                });
            }
            None if acl.static_only => {
                return refuse(sw, port, mode, DropReason::ArpAclDeny, t, |o| {
                    step(o, mode, arp, note(None, false))
                });
            }
            None => {}
        }
    }
    match sw.bindings.lookup(vid, IpAddr::V4(a.sender_ip)).copied() {
        Some(b) if b.mac == a.sender_mac => {
            t.note(|| step(Outcome::Pass, mode, arp, ArpNote::Binding(Some(b))));
            Ok(())
        }
        b => refuse(sw, port, mode, DropReason::ArpNoBinding, t, |o| {
            step(o, mode, arp, ArpNote::Binding(b))
        }),
    }
}
