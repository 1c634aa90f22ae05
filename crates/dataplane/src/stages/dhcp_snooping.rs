//! DHCP snooping (RFC 2131; Cisco `ip dhcp snooping`, DESIGN.md §3): in a VLAN where
//! snooping is on, ports are untrusted unless marked trusted (uplinks are, by
//! default). DHCP is any UDP datagram to port 67 or 68, whatever its source port
//! ([`dhcp::DhcpCandidate`]). On untrusted ports: server messages are dropped, and
//! so is every fragment of UDP to 67/68, every unreadable one, every IPv4 packet
//! whose header does not parse, and every BOOTREQUEST of a type no client sends;
//! client messages whose chaddr is not the Ethernet source are dropped; client
//! messages that already carry option 82 may be dropped; RELEASE/DECLINE is accepted
//! only from the port that holds the binding; a per-port rate above its limit
//! error-disables the port. Client messages, from any port, are delivered to trusted
//! ports and uplinks only (other clients never see an xid, a client id or an
//! inserted option 82). From trusted ports: a DHCPACK for a client on a snooping
//! port creates or renews its binding — the ACK is *held* (a
//! [`crate::Verdict::Hold`]) until the runtime has made the binding durable, unless
//! another binding holds the address (`bindings::claim`: dropped,
//! `dhcp_binding_conflict`); a DHCPNAK removes the client's DHCP binding on its
//! port — never a static or API binding.
//!
//! Invariants: no server message from an untrusted port reaches any port, and no
//! client message reaches an untrusted port (observe mode aside;
//! `tests/wire_props.rs` checks both on random datagrams); no binding enters the
//! index before it is committed (the runtime installs it with
//! [`crate::Switch::install_binding`]); observe mode counts what it would drop and
//! drops nothing.

use crate::bindings::{BindingClaim, BindingSource};
use crate::dhcp::{self, DhcpCandidate, DhcpMessageType};
use crate::errdisable::ErrDisableCause;
use crate::events::BindingRemoval;
use crate::frame::FrameView;
use crate::spec::{EnforceMode, Option82};
use crate::stages::refuse;
use crate::switch::Switch;
use crate::trace::{Detail, DhcpNote, DhcpSummary, Observer, Outcome, Stage, Step};
use crate::types::{PortId, Timestamp, Vid};
use crate::verdict::{DropReason, Rewrite};
use std::net::{IpAddr, Ipv4Addr};

pub use crate::port_state::DhcpPortState;

// The binding a held ACK creates or renews lives in `crate::bindings`; it is
// re-exported here because `DhcpAction::Hold` carries it.
pub use crate::bindings::BindingUpdate;

/// What snooping wants besides forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DhcpAction {
    Forward(Rewrite),
    /// Forward, but not to untrusted ports of the VLAN; dropped under this reason
    /// if no port is left.
    ForwardTrustedOnly(Rewrite, DropReason),
    /// A client's RELEASE or DECLINE from the port that holds this DHCP binding:
    /// forwarded as `ForwardTrustedOnly` (dropped as `dhcp_no_trusted_port` if no
    /// port is left), and the binding removed only when the frame is — a message a
    /// later stage drops releases nothing.
    Release(Rewrite, Ipv4Addr, BindingRemoval),
    /// Hold the frame until this binding is committed.
    Hold(BindingUpdate, Rewrite),
}

/// Whether snooping looks at an IPv4 datagram, parsed once by the pipeline
/// ([`dhcp::Ipv4Facts`]): anything that could be DHCP, and an IPv4 header that does
/// not parse (which only untrusted ports are refused).
#[inline]
pub fn concerns(ip: &dhcp::Ipv4Facts) -> bool {
    ip.dhcp != DhcpCandidate::No || ip.src.is_none()
}

/// What a trace shows of a DHCP message.
fn summary(msg: &dhcp::DhcpView) -> DhcpSummary {
    DhcpSummary {
        op: msg.op,
        message_type: msg.message_type,
        chaddr: msg.chaddr,
        ciaddr: msg.ciaddr,
        yiaddr: msg.yiaddr,
    }
}

/// Inspects an IPv4 datagram that [`concerns`] snooping (`ip`: what the pipeline
/// parsed of `l3`), received on `port` in snooping VLAN `vid`.
#[allow(clippy::too_many_arguments)]
pub fn inspect<O: Observer>(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    ip: &dhcp::Ipv4Facts,
    now: Timestamp,
    t: &mut O,
) -> Result<DhcpAction, DropReason> {
    let st = sw.ports[port.index()].dhcp;
    let trusted = st.is_some_and(|s| s.spec.trusted);
    let mode = st.map_or(EnforceMode::Enforce, |s| s.spec.mode);
    // One step of this stage: `msg` as read so far, what was done.
    let step = move |outcome, msg, note| {
        let detail = Detail::Dhcp {
            trusted,
            mode,
            msg,
            note,
        };
        Step::new(Stage::DhcpSnooping, outcome, detail)
    };
    let pass = Ok(DhcpAction::Forward(Rewrite::None));
    if trusted {
        // From a trusted port only whole messages are read (for bindings); the
        // rest is the network's own business.
        if ip.dhcp != DhcpCandidate::Message {
            return pass;
        }
    } else if ip.src.is_none() {
        refuse(sw, port, mode, DropReason::Ipv4Malformed, t, |o| {
            step(o, None, DhcpNote::Ipv4Malformed)
        })?;
        return pass;
    }
    if !trusted
        && let Some(b) = sw.ports[port.index()]
            .dhcp
            .as_mut()
            .and_then(|s| s.bucket.as_mut())
        && !b.admit(now)
    {
        if mode == EnforceMode::Enforce {
            sw.err_disable(port, ErrDisableCause::DhcpRateLimit, now);
        }
        let pps = st.and_then(|s| s.spec.rate_limit_pps).unwrap_or(0);
        refuse(sw, port, mode, DropReason::DhcpRateLimit, t, |o| {
            step(o, None, DhcpNote::RateLimit { pps })
        })?;
    }
    match ip.dhcp {
        DhcpCandidate::Message => {}
        DhcpCandidate::Fragment => {
            refuse(sw, port, mode, DropReason::DhcpFragment, t, |o| {
                step(o, None, DhcpNote::Fragment)
            })?;
            return pass;
        }
        DhcpCandidate::BadUdp => {
            refuse(sw, port, mode, DropReason::DhcpMalformed, t, |o| {
                step(o, None, DhcpNote::Malformed)
            })?;
            return pass;
        }
        DhcpCandidate::No => return pass,
    }
    let Ok(msg) = ip
        .udp
        .and_then(|u| l3.get(u.payload()))
        .ok_or(dhcp::WireError::Truncated)
        .and_then(dhcp::parse)
    else {
        refuse(sw, port, mode, DropReason::DhcpMalformed, t, |o| {
            step(o, None, DhcpNote::Malformed)
        })?;
        return Ok(DhcpAction::Forward(Rewrite::None));
    };
    let read = || Some(summary(&msg));
    let mtype = msg.message_type;
    let server = msg.op == dhcp::BOOTREPLY || mtype.is_some_and(|t| t.is_server_message());
    if !trusted {
        if server {
            refuse(sw, port, mode, DropReason::DhcpServerUntrusted, t, |o| {
                step(o, read(), DhcpNote::ServerUntrusted)
            })?;
            return pass;
        }
        if mtype.is_some_and(|t| !t.is_client_message()) {
            refuse(sw, port, mode, DropReason::DhcpUnexpectedMessage, t, |o| {
                step(o, read(), DhcpNote::UnexpectedMessage)
            })?;
            return pass;
        }
        if msg.chaddr != view.src {
            refuse(sw, port, mode, DropReason::DhcpChaddrMismatch, t, |o| {
                step(o, read(), DhcpNote::ChaddrMismatch)
            })?;
        }
        if msg.relay_agent_info.is_some() && st.is_some_and(|s| s.spec.drop_untrusted_option82) {
            refuse(sw, port, mode, DropReason::DhcpOption82Untrusted, t, |o| {
                step(o, read(), DhcpNote::Option82Untrusted)
            })?;
        }
        let released = match mtype {
            Some(DhcpMessageType::Release) => Some((msg.ciaddr, BindingRemoval::Release)),
            Some(DhcpMessageType::Decline) => {
                msg.requested_ip.map(|ip| (ip, BindingRemoval::Decline))
            }
            _ => None,
        };
        let insert = st.is_some_and(|s| s.spec.option82 == Option82::Insert)
            && msg.op == dhcp::BOOTREQUEST
            && msg.relay_agent_info.is_none();
        let rewrite = if insert {
            Rewrite::InsertOption82
        } else {
            Rewrite::None
        };
        if let Some((ip, why)) = released {
            match sw.bindings.lookup(vid, IpAddr::V4(ip)) {
                Some(b) if b.port != port => {
                    let holder = b.port;
                    refuse(sw, port, mode, DropReason::DhcpReleaseForeignPort, t, |o| {
                        step(o, read(), DhcpNote::ReleaseForeign { ip, holder })
                    })?
                }
                Some(b)
                    if b.source == BindingSource::Dhcp
                        && b.mac == msg.chaddr
                        && mode == EnforceMode::Enforce =>
                {
                    // Removed once the message is on its way (every later check
                    // passed), by the pipeline.
                    t.note(|| step(Outcome::Pass, read(), DhcpNote::Releases { ip, why }));
                    t.note(|| step(Outcome::Pass, read(), DhcpNote::Forward { rewrite }));
                    return Ok(DhcpAction::Release(rewrite, ip, why));
                }
                _ => {}
            }
        }
        t.note(|| step(Outcome::Pass, read(), DhcpNote::Forward { rewrite }));
        return Ok(DhcpAction::ForwardTrustedOnly(
            rewrite,
            DropReason::DhcpNoTrustedPort,
        ));
    }
    // From a trusted port: option 82 a server echoes back is not for untrusted eyes.
    let strip = msg.relay_agent_info.is_some() && sw.vlan(vid).is_some_and(|v| v.option82_insert);
    let rewrite = if strip {
        Rewrite::StripOption82
    } else {
        Rewrite::None
    };
    match mtype {
        Some(DhcpMessageType::Ack) if msg.yiaddr != Ipv4Addr::UNSPECIFIED => {
            // The client must be local, on a port that is not trusted. An ACK for a
            // client the switch does not know (yet: e.g. right after a restart) may
            // go to trusted ports and uplinks, never to untrusted ones — it would
            // give a lease without a binding. The client retries; its REQUEST
            // teaches the switch where it is.
            let Some(e) = sw
                .macs
                .lookup(vid, msg.chaddr, now)
                .filter(|e| e.kind.is_local())
            else {
                t.note(|| step(Outcome::Pass, read(), DhcpNote::AckUnknownClient));
                return Ok(DhcpAction::ForwardTrustedOnly(
                    rewrite,
                    DropReason::DhcpAckUnknownClient,
                ));
            };
            if sw.ports[e.port.index()]
                .dhcp
                .is_some_and(|s| s.spec.trusted)
            {
                let note = DhcpNote::AckClientTrusted { port: e.port };
                t.note(|| step(Outcome::Pass, read(), note));
                return Ok(DhcpAction::Forward(rewrite));
            }
            let ip = IpAddr::V4(msg.yiaddr);
            if crate::bindings::check_binding_ip(ip).is_err() {
                // A lease of a broadcast, multicast or loopback address: no binding
                // can hold it, and no client should take it.
                refuse(sw, port, mode, DropReason::DhcpMalformed, t, |o| {
                    step(o, read(), DhcpNote::Malformed)
                })?;
                return Ok(DhcpAction::Forward(rewrite));
            }
            let binding = BindingUpdate {
                vid,
                ip,
                mac: msg.chaddr,
                port: e.port,
                lease_secs: msg.lease_secs.filter(|l| *l != u32::MAX),
                source: BindingSource::Dhcp,
                duid: None,
            };
            // Provenance (bindings::claim): a lease never takes an address a static
            // or API binding, or another client's live lease, holds.
            match sw
                .bindings
                .claim(vid, ip, msg.chaddr, e.port, BindingSource::Dhcp, now)
            {
                BindingClaim::Held(holder) => {
                    let new = binding.as_new();
                    sw.binding_refused(&new, holder, now);
                    let note = DhcpNote::BindingConflict {
                        ip: msg.yiaddr,
                        holder,
                    };
                    refuse(sw, port, mode, DropReason::DhcpBindingConflict, t, |o| {
                        step(o, read(), note)
                    })?;
                    // Observe mode: the ACK passes, the holder's binding stays.
                    return Ok(DhcpAction::Forward(rewrite));
                }
                BindingClaim::Covered => {
                    let source = sw
                        .bindings
                        .lookup(vid, ip)
                        .map_or(BindingSource::Static, |b| b.source);
                    let note = DhcpNote::AckCovered {
                        ip: msg.yiaddr,
                        source,
                    };
                    t.note(|| step(Outcome::Pass, read(), note));
                    return Ok(DhcpAction::Forward(rewrite));
                }
                BindingClaim::Free => {}
            }
            if sw.bindings.lookup(vid, ip).is_none() && sw.bindings.len() >= sw.bindings.capacity()
            {
                let r = DropReason::BindingTableFull;
                t.note(|| step(Outcome::Drop(r), read(), DhcpNote::TableFull));
                return Err(r);
            }
            t.note(|| step(Outcome::Pass, read(), DhcpNote::Hold(binding)));
            Ok(DhcpAction::Hold(binding, rewrite))
        }
        Some(DhcpMessageType::Nak) => {
            // A NAK removes only the lease DHCP gave this client (chaddr) in this
            // VLAN on the port it is on: never a static or API binding — anyone can
            // draw a NAK for another guest's MAC.
            let client_port = sw
                .macs
                .lookup(vid, msg.chaddr, now)
                .filter(|e| e.kind.is_local())
                .map(|e| e.port);
            // Its DHCP (IPv4) leases there, whatever static or API bindings the same
            // MAC also has; each removal drops it from the MAC index, so the loop
            // ends (no allocation).
            let learned = |sw: &Switch| {
                sw.bindings
                    .addresses_of(vid, msg.chaddr)
                    .filter(IpAddr::is_ipv4)
                    .find(|ip| {
                        sw.bindings.lookup(vid, *ip).is_some_and(|b| {
                            b.source == BindingSource::Dhcp
                                && b.mac == msg.chaddr
                                && Some(b.port) == client_port
                        })
                    })
            };
            let mut removed = false;
            while let Some(ip) = learned(sw) {
                if !sw.remove_binding(vid, ip, BindingRemoval::Nak, now) {
                    break; // a DHCP binding is always removable: not reached
                }
                removed = true;
                let why = BindingRemoval::Nak;
                t.note(|| step(Outcome::Pass, read(), DhcpNote::BindingRemoved { ip, why }));
            }
            if !removed {
                t.note(|| step(Outcome::Pass, read(), DhcpNote::NakNoLearnedBinding));
            }
            t.note(|| step(Outcome::Pass, read(), DhcpNote::Forward { rewrite }));
            Ok(DhcpAction::Forward(rewrite))
        }
        _ => {
            t.note(|| step(Outcome::Pass, read(), DhcpNote::Forward { rewrite }));
            if server {
                Ok(DhcpAction::Forward(rewrite))
            } else {
                // A client's message, from a trusted port too: for servers only.
                Ok(DhcpAction::ForwardTrustedOnly(
                    rewrite,
                    DropReason::DhcpNoTrustedPort,
                ))
            }
        }
    }
}
