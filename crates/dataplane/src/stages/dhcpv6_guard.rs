//! DHCPv6 guard and snooping (RFC 7610 "DHCPv6-Shield", RFC 8415; Cisco `ipv6 dhcp
//! guard`), the IPv6 twin of `dhcp_snooping.rs`: in a VLAN where the guard is on,
//! ports are untrusted unless marked trusted (uplinks are, by default:
//! `uplink_policy.dhcpv6_trusted`). A DHCPv6 candidate is any UDP datagram to port
//! 546 or 547, whatever its source port ([`Dhcpv6Facts::classify`], after the walk
//! of the whole extension-header chain).
//!
//! From an untrusted port, dropped, each under its reason:
//! - anything UDP to the client port 546 (RFC 7610 §5: only servers and relay
//!   agents send to clients), and a server message — ADVERTISE, REPLY,
//!   RECONFIGURE, RELAY-REPL, or a relay message whose innermost message is one —
//!   to 547: `dhcpv6_server_untrusted`;
//! - a fragment of UDP to 546/547: `dhcpv6_fragment`;
//! - a wrong UDP length, or a message to 547 that does not parse (options, relay
//!   nesting): `dhcpv6_malformed`;
//! - a packet whose upper layer cannot be seen, under RA guard's IPv6 reasons: a
//!   first fragment without its UDP header (RFC 7112, `ipv6_incomplete_chain`), an
//!   extension header the switch does not walk (`ipv6_unknown_header`), a header
//!   or chain that does not parse (`ipv6_malformed`). ESP passes: its upper layer
//!   is encrypted under a security association only a peer can share, as for RA
//!   guard;
//! - above the port's rate: `dhcpv6_rate_limit`, and the port error-disables
//!   (enforce mode);
//! - a RELEASE/DECLINE of an address bound on another port, or to another MAC or
//!   DUID: `dhcpv6_release_foreign_port`.
//!
//! UDP *from* 547 to a port other than 546/547 is not DHCPv6: no client listens
//! anywhere but 546 and no server or relay anywhere but 547, so a "server message"
//! to any other port reaches no DHCPv6 stack (docs/decisions.md).
//!
//! Client messages (SOLICIT, REQUEST, CONFIRM, RENEW, REBIND, RELEASE, DECLINE,
//! INFORMATION-REQUEST, RELAY-FORW of a relay guest, unknown types), from any
//! port, are delivered to trusted ports and uplinks only (`dhcpv6_no_trusted_port`
//! if none is left): other clients never see a DUID or a transaction id.
//!
//! From trusted ports, snooping: a REPLY (not relayed) to a client on an untrusted
//! port of the VLAN — found by the REPLY's destination MAC in the MAC table —
//! with IA_NA addresses creates or renews the client's binding, keyed by its MAC
//! and carrying its DUID (`bindings::DuidKey`). The REPLY is *held* until the
//! binding is durable ([`crate::Verdict::Hold`]), as a DHCPACK is. One hold
//! carries one binding: the first address the claim rule lets the client take;
//! the hold path commits the REPLY's further addresses ([`reply_rest`]) with it,
//! before the REPLY leaves, and they are installed when it is released
//! ([`install_reply_rest`]); any address of the REPLY that another binding holds
//! drops the whole REPLY (`dhcpv6_binding_conflict`, `bindings::claim`). An address with valid lifetime
//! 0 removes the client's DHCPv6 binding of it. A REPLY with addresses for a
//! client the switch does not know goes to trusted ports only
//! (`dhcpv6_reply_unknown_client`). IA_PD prefixes are not bound (a delegated
//! prefix is routed to the requesting router, not an address of its link).
//!
//! Invariants: no server message from an untrusted port reaches any port, and no
//! client message reaches an untrusted port (observe mode aside;
//! `tests/dhcpv6_guard_props.rs`); no binding enters the index before it is
//! committed; RELEASE/DECLINE remove a binding only once the message is delivered
//! (the pipeline calls [`release_delivered`]). No allocation.

use crate::bindings::{BindingClaim, BindingSource, BindingUpdate, DuidKey};
use crate::errdisable::ErrDisableCause;
use crate::events::BindingRemoval;
use crate::frame::FrameView;
use crate::spec::EnforceMode;
use crate::stages::refuse;
use crate::switch::Switch;
use crate::trace::{Detail, Dhcpv6Note, Dhcpv6Summary, Observer, Outcome, Stage, Step};
use crate::types::{MacAddr, PortId, Timestamp, Vid};
use crate::verdict::DropReason;
use crate::wire::dhcpv6::{
    self, CLIENT_PORT, Dhcpv6Candidate, Dhcpv6Facts, Dhcpv6View, MessageType,
};
use crate::wire::ipv6::{Chain, Ipv6Facts};
use std::net::{IpAddr, Ipv6Addr};

pub use crate::port_state::Dhcpv6PortState;

/// What the guard wants besides forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dhcpv6Action {
    Forward,
    /// Forward, but not to untrusted ports of the VLAN; dropped under this reason
    /// if no port is left.
    ForwardTrustedOnly(DropReason),
    /// A client's RELEASE/DECLINE from the port, MAC and DUID its bindings have:
    /// forwarded as `ForwardTrustedOnly(dhcpv6_no_trusted_port)`, and the bindings
    /// removed ([`release_delivered`]) only once the frame is.
    Release(BindingRemoval),
    /// Hold the frame until this binding is committed.
    Hold(BindingUpdate),
}

/// The IPv6 facts the stage reads: the chain walk, or why the header does not parse.
pub type Ipv6Read = Result<Ipv6Facts, crate::wire::WireError>;

/// A message read whole: the outer one, the innermost one, relay layers crossed.
type Read<'a> = (Dhcpv6View<'a>, Dhcpv6View<'a>, usize);

fn summary(udp: &dhcpv6::Udp6, m: &Read<'_>) -> Dhcpv6Summary {
    Dhcpv6Summary {
        outer: m.0.msg_type,
        inner: m.1.msg_type,
        relays: m.2 as u8,
        transaction_id: m.1.transaction_id,
        ports: (udp.sport, udp.dport),
    }
}

/// The DHCPv6 message of `l3` (a [`Dhcpv6Candidate::Message`]), read whole.
fn read_message<'a>(l3: &'a [u8], facts: &Dhcpv6Facts) -> Option<(dhcpv6::Udp6, Read<'a>)> {
    let udp = facts.udp?;
    let m = dhcpv6::innermost(l3.get(udp.payload())?).ok()?;
    Some((udp, m))
}

/// The key of a message's Client Identifier, if it has one.
fn client_duid(m: &Dhcpv6View<'_>) -> Option<DuidKey> {
    m.client_id.and_then(|d| DuidKey::of(d.bytes()))
}

/// Inspects an IPv6 packet (`l3`, its chain walk `ip`) received on `port` in VLAN
/// `vid`, where the guard is on.
#[allow(clippy::too_many_arguments)]
pub fn inspect<O: Observer>(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    ip: &Ipv6Read,
    now: Timestamp,
    t: &mut O,
) -> Result<Dhcpv6Action, DropReason> {
    let st = sw.ports[port.index()].dhcpv6;
    let trusted = st.is_some_and(|s| s.spec.trusted);
    let mode = st.map_or(EnforceMode::Enforce, |s| s.spec.mode);
    let step = move |outcome, msg, note| {
        let detail = Detail::Dhcpv6 {
            trusted,
            mode,
            msg,
            note,
        };
        Step::new(Stage::Dhcpv6Guard, outcome, detail)
    };
    let pass = Ok(Dhcpv6Action::Forward);
    let facts = match ip {
        Ok(f) => Dhcpv6Facts::classify(l3, f),
        Err(_) if trusted => return pass,
        Err(_) => {
            // Could be read as anything, DHCPv6 included (RA guard's reason).
            refuse(sw, port, mode, DropReason::Ipv6Malformed, t, |o| {
                step(o, None, Dhcpv6Note::Hidden)
            })?;
            return pass;
        }
    };
    if facts.candidate == Dhcpv6Candidate::No {
        return pass;
    }
    if trusted {
        if facts.candidate != Dhcpv6Candidate::Message {
            return pass;
        }
        return from_trusted(sw, port, vid, view, l3, &facts, mode, now, t);
    }
    if facts.candidate == Dhcpv6Candidate::Opaque
        && matches!(ip, Ok(f) if matches!(f.chain, Chain::Esp { .. }))
    {
        t.note(|| step(Outcome::Pass, None, Dhcpv6Note::Encrypted));
        return pass;
    }
    if let Some(b) = sw.ports[port.index()]
        .dhcpv6
        .as_mut()
        .and_then(|s| s.bucket.as_mut())
        && !b.admit(now)
    {
        if mode == EnforceMode::Enforce {
            sw.err_disable(port, ErrDisableCause::Dhcpv6RateLimit, now);
        }
        let pps = st.and_then(|s| s.spec.rate_limit_pps).unwrap_or(0);
        refuse(sw, port, mode, DropReason::Dhcpv6RateLimit, t, |o| {
            step(o, None, Dhcpv6Note::RateLimit { pps })
        })?;
    }
    // What hides the upper layer is refused under RA guard's IPv6 reasons (the
    // same packets, the same reasons, whichever IPv6 stage meets them first).
    let hidden = match ip {
        Ok(f) => match f.chain {
            Chain::Unknown(_) => DropReason::Ipv6UnknownHeader,
            _ => DropReason::Ipv6Malformed,
        },
        Err(_) => DropReason::Ipv6Malformed,
    };
    let (reason, note) = match facts.candidate {
        Dhcpv6Candidate::Message => (None, Dhcpv6Note::Forward),
        Dhcpv6Candidate::Fragment => (Some(DropReason::Dhcpv6Fragment), Dhcpv6Note::Fragment),
        Dhcpv6Candidate::IncompleteChain => {
            (Some(DropReason::Ipv6IncompleteChain), Dhcpv6Note::Fragment)
        }
        Dhcpv6Candidate::BadUdp => (Some(DropReason::Dhcpv6Malformed), Dhcpv6Note::Malformed),
        Dhcpv6Candidate::Opaque => (Some(hidden), Dhcpv6Note::Hidden),
        Dhcpv6Candidate::No => (None, Dhcpv6Note::Forward),
    };
    if let Some(r) = reason {
        refuse(sw, port, mode, r, t, |o| step(o, None, note))?;
        return pass;
    }
    let Some((udp, m)) = read_message(l3, &facts) else {
        if facts.udp.is_some_and(|u| u.dport == CLIENT_PORT) {
            // Whatever it is, nothing but a server or relay sends to a client.
            refuse(sw, port, mode, DropReason::Dhcpv6ServerUntrusted, t, |o| {
                step(o, None, Dhcpv6Note::ServerUntrusted)
            })?;
        } else {
            refuse(sw, port, mode, DropReason::Dhcpv6Malformed, t, |o| {
                step(o, None, Dhcpv6Note::Malformed)
            })?;
        }
        return pass;
    };
    let read = || Some(summary(&udp, &m));
    let (outer, inner) = (m.0.msg_type, m.1.msg_type);
    if udp.dport == CLIENT_PORT || outer == MessageType::RelayRepl || inner.is_server_message() {
        refuse(sw, port, mode, DropReason::Dhcpv6ServerUntrusted, t, |o| {
            step(o, read(), Dhcpv6Note::ServerUntrusted)
        })?;
        return pass;
    }
    // A client's own RELEASE/DECLINE (not relayed): its bindings must be this
    // port's, this MAC's and this DUID's.
    let why = match outer {
        MessageType::Release => Some(BindingRemoval::Release),
        MessageType::Decline => Some(BindingRemoval::Decline),
        _ => None,
    };
    if let Some(why) = why {
        let duid = client_duid(&m.0);
        let mut releases = false;
        for a in m.0.ia_nas().flat_map(dhcpv6::Ia::into_addresses) {
            let Some(b) = sw.bindings.lookup(vid, IpAddr::V6(a.address)).copied() else {
                continue;
            };
            let own = b.port == port && b.mac == view.src && (b.duid.is_none() || b.duid == duid);
            if !own {
                let holder = crate::bindings::BindingHolder {
                    mac: b.mac,
                    port: b.port,
                    source: b.source,
                };
                let note = Dhcpv6Note::ReleaseForeign {
                    ip: a.address,
                    holder,
                };
                refuse(
                    sw,
                    port,
                    mode,
                    DropReason::Dhcpv6ReleaseForeignPort,
                    t,
                    |o| step(o, read(), note),
                )?;
                // Observe mode: it goes on, and removes nothing.
                t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::ClientMessage));
                return Ok(Dhcpv6Action::ForwardTrustedOnly(
                    DropReason::Dhcpv6NoTrustedPort,
                ));
            }
            releases |= b.source == BindingSource::Dhcpv6;
        }
        if releases && mode == EnforceMode::Enforce {
            t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::Releases { why }));
            return Ok(Dhcpv6Action::Release(why));
        }
    }
    t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::ClientMessage));
    Ok(Dhcpv6Action::ForwardTrustedOnly(
        DropReason::Dhcpv6NoTrustedPort,
    ))
}

/// A whole DHCPv6 message from a trusted port: server messages pass, a REPLY binds,
/// client messages go to trusted ports only.
#[allow(clippy::too_many_arguments)]
fn from_trusted<O: Observer>(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    view: &FrameView,
    l3: &[u8],
    facts: &Dhcpv6Facts,
    mode: EnforceMode,
    now: Timestamp,
    t: &mut O,
) -> Result<Dhcpv6Action, DropReason> {
    let step = move |outcome, msg, note| {
        let detail = Detail::Dhcpv6 {
            trusted: true,
            mode,
            msg,
            note,
        };
        Step::new(Stage::Dhcpv6Guard, outcome, detail)
    };
    let Some((udp, m)) = read_message(l3, facts) else {
        refuse(sw, port, mode, DropReason::Dhcpv6Malformed, t, |o| {
            step(o, None, Dhcpv6Note::Malformed)
        })?;
        return Ok(Dhcpv6Action::Forward);
    };
    let read = || Some(summary(&udp, &m));
    let (outer, inner) = (m.0.msg_type, m.1.msg_type);
    let server = outer == MessageType::RelayRepl || inner.is_server_message();
    if !server {
        // A client's message, from a trusted port too: for servers only.
        t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::ClientMessage));
        return Ok(Dhcpv6Action::ForwardTrustedOnly(
            DropReason::Dhcpv6NoTrustedPort,
        ));
    }
    let forward = |t: &mut O| {
        t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::Forward));
        Ok(Dhcpv6Action::Forward)
    };
    let reply = m.0;
    let addresses = || reply.ia_nas().flat_map(dhcpv6::Ia::into_addresses);
    if outer != MessageType::Reply || !addresses().any(|a| a.valid_lifetime != 0) {
        // Valid lifetime 0: the server ends these addresses (RFC 8415) — the
        // client's DHCPv6 bindings of them on its port go.
        if outer == MessageType::Reply
            && let Some(client) = local_client(sw, vid, view.dst, now)
        {
            for a in addresses().filter(|a| a.valid_lifetime == 0) {
                if remove_own(
                    sw,
                    vid,
                    a.address,
                    view.dst,
                    client,
                    BindingRemoval::Release,
                    now,
                ) {
                    let ip = a.address;
                    t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::BindingRemoved { ip }));
                }
            }
        }
        return forward(t);
    }
    // The client must be local, on a port not trusted for DHCPv6. A REPLY for a
    // client the switch does not know goes to trusted ports and uplinks only.
    let Some(client) = local_client(sw, vid, view.dst, now) else {
        t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::ReplyUnknownClient));
        return Ok(Dhcpv6Action::ForwardTrustedOnly(
            DropReason::Dhcpv6ReplyUnknownClient,
        ));
    };
    if sw.ports[client.index()]
        .dhcpv6
        .is_some_and(|s| s.spec.trusted)
    {
        let note = Dhcpv6Note::ReplyClientTrusted { port: client };
        t.note(|| step(Outcome::Pass, read(), note));
        return Ok(Dhcpv6Action::Forward);
    }
    let mac = view.dst;
    let duid = client_duid(&reply);
    let mut first: Option<BindingUpdate> = None;
    for a in addresses() {
        let ip = IpAddr::V6(a.address);
        if a.valid_lifetime == 0 {
            if remove_own(
                sw,
                vid,
                a.address,
                mac,
                client,
                BindingRemoval::Release,
                now,
            ) {
                let ip = a.address;
                t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::BindingRemoved { ip }));
            }
            continue;
        }
        if crate::bindings::check_binding_ip(ip).is_err() {
            // Multicast, loopback, unspecified, IPv4-mapped: no binding can hold
            // it, and no client should take it.
            refuse(sw, port, mode, DropReason::Dhcpv6Malformed, t, |o| {
                step(o, read(), Dhcpv6Note::Malformed)
            })?;
            return Ok(Dhcpv6Action::Forward);
        }
        let update = BindingUpdate {
            vid,
            ip,
            mac,
            port: client,
            lease_secs: lease(a.valid_lifetime),
            source: BindingSource::Dhcpv6,
            duid,
        };
        match sw
            .bindings
            .claim(vid, ip, mac, client, BindingSource::Dhcpv6, now)
        {
            BindingClaim::Held(holder) => {
                sw.binding_refused(&update.as_new(), holder, now);
                let note = Dhcpv6Note::BindingConflict {
                    ip: a.address,
                    holder,
                };
                refuse(sw, port, mode, DropReason::Dhcpv6BindingConflict, t, |o| {
                    step(o, read(), note)
                })?;
                // Observe mode: the REPLY passes, the holder's binding stays.
                return Ok(Dhcpv6Action::Forward);
            }
            BindingClaim::Covered => {
                let ip = a.address;
                t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::Covered { ip }));
            }
            BindingClaim::Free => {
                first.get_or_insert(update);
            }
        }
    }
    let Some(binding) = first else {
        return forward(t);
    };
    if sw.bindings.lookup(vid, binding.ip).is_none() && sw.bindings.len() >= sw.bindings.capacity()
    {
        let r = DropReason::BindingTableFull;
        t.note(|| step(Outcome::Drop(r), read(), Dhcpv6Note::TableFull));
        return Err(r);
    }
    t.note(|| step(Outcome::Pass, read(), Dhcpv6Note::Hold(binding)));
    Ok(Dhcpv6Action::Hold(binding))
}

/// A lease of `valid` seconds (RFC 8415 §7.7: 0xffffffff is infinity).
fn lease(valid: u32) -> Option<u32> {
    (valid != u32::MAX).then_some(valid)
}

/// The port of `mac`, if it is a local MAC of `vid` (a unicast destination).
fn local_client(sw: &Switch, vid: Vid, mac: MacAddr, now: Timestamp) -> Option<PortId> {
    if mac.is_group() {
        return None;
    }
    sw.macs
        .lookup(vid, mac, now)
        .filter(|e| e.kind.is_local())
        .map(|e| e.port)
}

/// Removes the DHCPv6 binding of `ip` if it is `mac`'s on `port`.
fn remove_own(
    sw: &mut Switch,
    vid: Vid,
    ip: Ipv6Addr,
    mac: MacAddr,
    port: PortId,
    why: BindingRemoval,
    now: Timestamp,
) -> bool {
    let ip = IpAddr::V6(ip);
    sw.bindings
        .lookup(vid, ip)
        .is_some_and(|b| b.source == BindingSource::Dhcpv6 && b.mac == mac && b.port == port)
        && sw.remove_binding(vid, ip, why, now)
}

/// A RELEASE/DECLINE [`inspect`] answered with [`Dhcpv6Action::Release`] is on its
/// way: removes each DHCPv6 binding of its IA_NA addresses that is the sender's
/// (port, MAC, DUID). Reads the message again (no allocation).
pub fn release_delivered(
    sw: &mut Switch,
    port: PortId,
    vid: Vid,
    src: MacAddr,
    l3: &[u8],
    why: BindingRemoval,
    now: Timestamp,
) {
    let Ok((ip, facts)) = Dhcpv6Facts::parse(l3) else {
        return;
    };
    let _ = ip;
    let Some((_, m)) = read_message(l3, &facts) else {
        return;
    };
    let duid = client_duid(&m.0);
    for a in m.0.ia_nas().flat_map(dhcpv6::Ia::into_addresses) {
        let key = IpAddr::V6(a.address);
        let own = sw.bindings.lookup(vid, key).is_some_and(|b| {
            b.source == BindingSource::Dhcpv6
                && b.port == port
                && b.mac == src
                && (b.duid.is_none() || b.duid == duid)
        });
        if own {
            sw.remove_binding(vid, key, why, now);
        }
    }
}

/// The further addresses a REPLY carries besides its held one, the most a hold
/// makes durable with it.
pub const MAX_REPLY_REST: usize = 8;

/// A held REPLY's further bindings: one per IA_NA address of the REPLY in `data`
/// (the frame as received; `fwd` its verdict) besides `held`'s, with a valid
/// lifetime, at most [`MAX_REPLY_REST`] — for the hold path to make durable with
/// the held one, before the REPLY leaves. Pure: reads the frame only.
pub fn reply_rest(
    fwd: &crate::verdict::Forward,
    held: &BindingUpdate,
    data: &[u8],
    mut each: impl FnMut(crate::bindings::NewBinding),
) {
    let Some(l3) = data.get(usize::from(fwd.body_offset) + 2..) else {
        return;
    };
    let Ok((_, facts)) = Dhcpv6Facts::parse(l3) else {
        return;
    };
    let Some((_, m)) = read_message(l3, &facts) else {
        return;
    };
    if m.0.msg_type != MessageType::Reply {
        return;
    }
    let rest =
        m.0.ia_nas()
            .flat_map(dhcpv6::Ia::into_addresses)
            .filter(|a| a.valid_lifetime != 0 && IpAddr::V6(a.address) != held.ip)
            .take(MAX_REPLY_REST);
    for a in rest {
        each(crate::bindings::NewBinding {
            ip: IpAddr::V6(a.address),
            lease_secs: lease(a.valid_lifetime),
            ..held.as_new()
        });
    }
}

/// A held REPLY's other addresses, once the REPLY is released (its binding, `held`,
/// committed and installed, and the further ones committed with it by the hold
/// path, [`reply_rest`]): installs a binding for each that the claim rule lets the
/// same client take; an address another binding took meanwhile is refused with its
/// event. Each address is handed to `done`, installed or not, so that the runtime
/// makes the store say what the index says of it. Control path: called by the
/// runtime after [`Switch::release_held`] said to send the REPLY.
pub fn install_reply_rest(
    sw: &mut Switch,
    fwd: &crate::verdict::Forward,
    held: &BindingUpdate,
    data: &[u8],
    now: Timestamp,
    mut done: impl FnMut(crate::bindings::NewBinding),
) {
    reply_rest(fwd, held, data, |new| {
        match sw.install_binding(new, now) {
            Ok(()) => {}
            Err(
                crate::switch::ControlError::BindingHeld(h)
                | crate::switch::ControlError::StaticBinding(h),
            ) => sw.binding_refused(&new, h, now),
            Err(_) => {}
        }
        done(new);
    });
}
