//! IP Source Guard (Cisco `ip verify source`, DESIGN.md §3; RFC 7039's source
//! address validation for IPv4): on an untrusted port with the guard on, an IPv4
//! frame passes only if its source address is bound to this port in the frame's
//! VLAN (`ip`), and in `ip-mac` mode also to its source MAC. A client without an
//! address getting its lease is exempt: an unfragmented UDP datagram from 0.0.0.0 to
//! port 67 (RFC 2131 §4.1: a client in INIT, SELECTING or INIT-REBOOT sends from
//! 0.0.0.0). A client renewing or rebinding sends from its own bound address, which
//! the ordinary check passes; DHCP from any other source is checked like the rest.
//!
//! Invariant: from a guarded port, no IPv4 datagram with a source address the port
//! does not hold leaves the switch, 0.0.0.0 → UDP 67 aside (observe mode aside).
//! Other EtherTypes are not this stage's (ARP is inspection's).

use crate::dhcp;
use crate::frame::FrameView;
use crate::spec::SourceGuard;
use crate::stages::refuse;
use crate::switch::Switch;
use crate::trace::{Detail, IpsgNote, Observer, Outcome, Stage, Step};
use crate::types::{PortId, Vid};
use crate::verdict::DropReason;
use std::net::{IpAddr, Ipv4Addr};

/// Checks an IPv4 frame from `port` (`ip`: its datagram, parsed once by the pipeline).
#[inline]
pub fn check(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    ip: &dhcp::Ipv4Facts,
    t: &mut impl Observer,
) -> Result<(), DropReason> {
    let step =
        |outcome, mode, note| Step::new(Stage::IpSourceGuard, outcome, Detail::Ipsg { mode, note });
    let p = &sw.ports[port.index()];
    let Some(g) = p.ipsg else {
        t.note(|| {
            step(
                Outcome::Skip,
                crate::spec::EnforceMode::Enforce,
                IpsgNote::Off,
            )
        });
        return Ok(());
    };
    if p.dhcp.is_some_and(|d| d.spec.trusted) {
        t.note(|| step(Outcome::Skip, g.mode, IpsgNote::Trusted));
        return Ok(());
    }
    if ip.dhcp == dhcp::DhcpCandidate::Message
        && ip.src == Some(Ipv4Addr::UNSPECIFIED)
        && ip.udp.is_some_and(|u| u.dport == dhcp::SERVER_PORT)
    {
        t.note(|| step(Outcome::Pass, g.mode, IpsgNote::DhcpExempt));
        return Ok(());
    }
    let src = ip.src;
    let binding = src.and_then(|src| sw.bindings.lookup(vid, IpAddr::V4(src)).copied());
    let ok = binding
        .is_some_and(|b| b.port == port && (g.check == SourceGuard::Ip || b.mac == view.src));
    let note = IpsgNote::Lookup {
        src,
        binding,
        check: g.check,
    };
    if ok {
        t.note(|| step(Outcome::Pass, g.mode, note));
        Ok(())
    } else {
        refuse(sw, port, g.mode, DropReason::IpSourceGuard, t, |o| {
            step(o, g.mode, note)
        })
    }
}
