//! DHCP snooping, dynamic ARP inspection and IP Source Guard as a network engineer
//! walks through them: a client gets its lease through a trusted uplink (the ACK is
//! held until its binding is committed), then a rogue server, a spoofer and an ARP
//! poisoner on untrusted ports are refused — each step asserting verdicts, counters,
//! bindings and events.

use dhcproto::v4::MessageType;
use portcullis_dataplane::bindings::BindingSource;
use portcullis_dataplane::events::BindingRemoval;
use portcullis_dataplane::*;
use std::net::{IpAddr, Ipv4Addr};

mod support;
use portcullis_dataplane::dump::dump;
use support::*;

const UPLINK: PortId = PortId(0);
const A: PortId = PortId(1);
const B: PortId = PortId(2);
const ROGUE: PortId = PortId(3);

const SERVER: MacAddr = ROUTER_MAC;
const A_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 2);

fn snooping(trusted: bool, mode: EnforceMode) -> DhcpSnoopingSpec {
    DhcpSnoopingSpec {
        trusted,
        rate_limit_pps: Some(20),
        option82: Option82::Keep,
        drop_untrusted_option82: true,
        mode,
    }
}

fn dai(trusted: bool) -> ArpInspectionSpec {
    ArpInspectionSpec {
        trusted,
        validate_src_mac: true,
        validate_dst_mac: true,
        validate_ip: true,
        rate_limit_pps: Some(15),
        acl: None,
        mode: EnforceMode::Enforce,
    }
}

/// uplink (trusted; trunk, native VLAN 10), guests a, b, rogue (MACs :01..:03) with
/// snooping, DAI and IP Source Guard (rogue's in `rogue_mode`); `static_b`: b's
/// address is statically bound.
fn switch(rogue_mode: EnforceMode, static_b: bool) -> Switch {
    let guest = |name: &str, i: u8, mode| {
        let mut p = access(name, 10, Some(mac(i)));
        p.features = PortFeatures {
            dhcp_snooping: Some(snooping(false, mode)),
            arp_inspection: Some(dai(false)),
            ip_source_guard: Some(IpSourceGuardSpec {
                check: SourceGuard::IpMac,
                mode,
            }),
            ..Default::default()
        };
        p
    };
    let mut uplink = trunk("uplink", &[10], Some(10));
    uplink.features.dhcp_snooping = Some(snooping(true, EnforceMode::Enforce));
    uplink.features.arp_inspection = Some(dai(true));
    let mut spec = switch_spec(
        "snoop",
        vec![
            uplink,
            guest("a", 1, EnforceMode::Enforce),
            guest("b", 2, EnforceMode::Enforce),
            guest("rogue", 3, rogue_mode),
        ],
    );
    spec.max_bindings = 8;
    if static_b {
        spec.static_bindings = vec![static_binding(mac(2), B_IP, 2)];
    }
    Switch::new(&spec, Timestamp::from_secs(0)).unwrap()
}

fn ipv4(src: MacAddr, sip: Ipv4Addr, dst: MacAddr, dip: Ipv4Addr) -> Vec<u8> {
    udp4(dst, src, (sip, dip), (5000, 9), b"x")
}

/// Drops of `r` received on `p`.
fn rx_drops(sw: &Switch, p: PortId, r: DropReason) -> u64 {
    sw.counters(p).unwrap().rx_drops[r as usize]
}

/// Runs a's DORA; the ACK is held and committed (or not). Returns the ACK verdict.
fn lease(sw: &mut Switch, committed: bool) -> Verdict {
    let u = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        out(&send_ms(
            sw,
            1000,
            A,
            &dhcp(MessageType::Discover, mac(1), mac(1), u, u)
        )),
        vec![0],
        "a client's broadcast reaches the trusted uplink only"
    );
    assert_eq!(
        out(&send_ms(
            sw,
            1001,
            UPLINK,
            &dhcp(MessageType::Offer, SERVER, mac(1), u, A_IP)
        )),
        vec![1]
    );
    assert_eq!(
        out(&send_ms(
            sw,
            1002,
            A,
            &dhcp(MessageType::Request, mac(1), mac(1), u, u)
        )),
        vec![0]
    );
    let ack = dhcp(MessageType::Ack, SERVER, mac(1), u, A_IP);
    let v = send_ms(sw, 1003, UPLINK, &ack);
    let Verdict::Hold(fwd, b) = v else {
        panic!("the ACK must be held: {v:?}")
    };
    assert_eq!(
        (b.vid, b.ip, b.mac, b.port, b.lease_secs, b.source),
        (
            vid(10),
            IpAddr::V4(A_IP),
            mac(1),
            A,
            Some(3600),
            BindingSource::Dhcp
        )
    );
    assert_eq!(sw.binding_count(), 0, "nothing is bound before the commit");
    let tx_before = sw.counters(A).unwrap().tx_frames;
    let send_it = sw.release_held(
        UPLINK,
        &fwd,
        &b,
        ack.len(),
        committed,
        Timestamp::from_millis(1004),
    );
    assert_eq!(send_it, committed);
    assert_eq!(
        sw.counters(A).unwrap().tx_frames,
        tx_before + committed as u64
    );
    v
}

#[test]
fn a_client_gets_a_lease_and_its_binding_then_guards_its_address() {
    let mut sw = switch(EnforceMode::Enforce, false);
    let start = dump(&sw, Timestamp::from_secs(1));
    lease(&mut sw, true);
    // The whole switch after the DORA: a's binding, and the four messages counted.
    assert_changed(
        &start,
        &sw,
        Timestamp::from_secs(1),
        &[
            "+ port uplink: rx_frames 2",
            "+ port uplink: rx_bytes 596",
            "+ port uplink: tx_frames 2",
            "+ port uplink: tx_bytes 572",
            "+ port a: rx_frames 2",
            "+ port a: rx_bytes 572",
            "+ port a: tx_frames 2",
            "+ port a: tx_bytes 596",
            "+ mac vlan 10 00:1b:21:00:00:01 on uplink (learned)",
            "+ binding vlan 10 198.18.10.1 52:54:00:00:00:01 on a (dhcp, lease end 3601004ms)",
        ],
    );
    let bound = sw.bindings();
    assert_eq!(bound.len(), 1);
    assert_eq!(
        (bound[0].ip, bound[0].binding.mac, bound[0].binding.port),
        (IpAddr::V4(A_IP), mac(1), A)
    );
    assert_eq!(bound[0].binding.source, BindingSource::Dhcp);
    assert!(events(&mut sw).iter().any(|e| matches!(
        e,
        EventKind::BindingAdded {
            port: A,
            lease_secs: Some(3600),
            ..
        }
    )));

    // IP Source Guard: a's own address passes, another address or a's address with
    // another MAC (ip-mac) does not.
    assert_eq!(
        out(&send_ms(
            &mut sw,
            2000,
            A,
            &ipv4(mac(1), A_IP, SERVER, SERVER_IP)
        )),
        vec![0]
    );
    assert_eq!(
        send_ms(&mut sw, 2000, A, &ipv4(mac(1), B_IP, SERVER, SERVER_IP)),
        Verdict::Drop(DropReason::IpSourceGuard)
    );
    assert_eq!(rx_drops(&sw, A, DropReason::IpSourceGuard), 1);
    // b has no lease: its IPv4 is refused, but its DHCP is exempt.
    assert_eq!(
        send_ms(&mut sw, 2000, B, &ipv4(mac(2), B_IP, SERVER, SERVER_IP)),
        Verdict::Drop(DropReason::IpSourceGuard)
    );
    let u = Ipv4Addr::UNSPECIFIED;
    assert_eq!(
        out(&send_ms(
            &mut sw,
            2000,
            B,
            &dhcp(MessageType::Discover, mac(2), mac(2), u, u)
        )),
        vec![0]
    );

    // ARP inspection: a's ARP for the router passes; b claiming a's address does not.
    let guarded = dump(&sw, Timestamp::from_secs(2));
    let who_has = arp(
        MacAddr::BROADCAST,
        mac(1),
        1,
        (mac(1), A_IP),
        (MacAddr::ZERO, SERVER_IP),
    );
    assert_eq!(out(&send_ms(&mut sw, 2001, A, &who_has)), vec![0, 2, 3]);
    let poison = arp(SERVER, mac(2), 2, (mac(2), A_IP), (SERVER, SERVER_IP));
    assert_eq!(
        send_ms(&mut sw, 2001, B, &poison),
        Verdict::Drop(DropReason::ArpNoBinding)
    );
    // Validation: Ethernet source ≠ sender MAC.
    let lying = arp(
        MacAddr::BROADCAST,
        mac(2),
        1,
        (mac(1), A_IP),
        (MacAddr::ZERO, SERVER_IP),
    );
    assert_eq!(
        send_ms(&mut sw, 2002, B, &lying),
        Verdict::Drop(DropReason::ArpInvalid)
    );
    // The router's ARP from the trusted uplink is not inspected.
    let router = arp(mac(1), SERVER, 2, (SERVER, SERVER_IP), (mac(1), A_IP));
    assert_eq!(out(&send_ms(&mut sw, 2003, UPLINK, &router)), vec![1]);
    assert_eq!(
        (
            rx_drops(&sw, B, DropReason::ArpNoBinding),
            rx_drops(&sw, B, DropReason::ArpInvalid)
        ),
        (1, 1)
    );
    // The whole switch: counters only (a's ARP flooded to the uplink, b and rogue;
    // b's two refused; the router's reply to a); its MAC was learned in the DORA.
    assert_changed(
        &guarded,
        &sw,
        Timestamp::from_secs(2),
        &[
            "~ port uplink: rx_frames 2 → 3",
            "~ port uplink: rx_bytes 596 → 656",
            "~ port uplink: tx_frames 4 → 5",
            "~ port uplink: tx_bytes 901 → 961",
            "~ port a: rx_frames 4 → 5",
            "~ port a: rx_bytes 658 → 718",
            "~ port a: tx_frames 2 → 3",
            "~ port a: tx_bytes 596 → 656",
            "~ port b: rx_frames 2 → 4",
            "~ port b: rx_bytes 329 → 449",
            "+ port b: tx_frames 1",
            "+ port b: tx_bytes 60",
            "+ port b: rx_drop.arp_no_binding 1",
            "+ port b: rx_drop.arp_invalid 1",
            "+ port rogue: tx_frames 1",
            "+ port rogue: tx_bytes 60",
        ],
    );
}

#[test]
fn a_rogue_dhcp_server_is_refused_and_observe_mode_only_counts_it() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    let offer = dhcp(MessageType::Offer, mac(3), mac(1), u, B_IP);
    assert_eq!(
        send_ms(&mut sw, 1, ROGUE, &offer),
        Verdict::Drop(DropReason::DhcpServerUntrusted)
    );
    let ack = dhcp(MessageType::Ack, mac(3), mac(1), u, B_IP);
    assert_eq!(
        send_ms(&mut sw, 1, ROGUE, &ack),
        Verdict::Drop(DropReason::DhcpServerUntrusted)
    );
    assert_eq!(rx_drops(&sw, ROGUE, DropReason::DhcpServerUntrusted), 2);
    assert_eq!(
        sw.counters(A).unwrap().tx_frames,
        0,
        "a never sees the rogue's messages"
    );
    assert_eq!(sw.binding_count(), 0);

    let mut sw = switch(EnforceMode::Observe, false);
    assert_eq!(out(&send_ms(&mut sw, 1, ROGUE, &offer)), vec![1]);
    let c = sw.counters(ROGUE).unwrap();
    assert_eq!(c.rx_dropped(), 0);
    assert_eq!(c.observed[DropReason::DhcpServerUntrusted as usize], 1);
    assert_eq!(
        c.observed[DropReason::IpSourceGuard as usize],
        1,
        "its source guard observes too"
    );
}

#[test]
fn client_messages_are_checked_on_untrusted_ports() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    // chaddr ≠ Ethernet source (a DHCP starvation tool's trick).
    let spoofed = dhcp(MessageType::Discover, mac(1), mac(0x77), u, u);
    assert_eq!(
        send_ms(&mut sw, 1, A, &spoofed),
        Verdict::Drop(DropReason::DhcpChaddrMismatch)
    );
    // Over 20 DHCP messages a second from one port: error-disabled.
    let discover = dhcp(MessageType::Discover, mac(2), mac(2), u, u);
    let passed = (0..25)
        .filter(|_| matches!(send_ms(&mut sw, 5000, B, &discover), Verdict::Forward(_)))
        .count();
    assert_eq!(passed, 20);
    assert_eq!(
        sw.port(B).unwrap().err_disabled.map(|e| e.cause),
        Some(ErrDisableCause::DhcpRateLimit)
    );
    assert_eq!(rx_drops(&sw, B, DropReason::DhcpRateLimit), 1);
    assert_eq!(rx_drops(&sw, B, DropReason::ErrDisabled), 4);
}

#[test]
fn release_only_from_the_binding_port_and_nak_and_expiry_remove_bindings() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    lease(&mut sw, true);
    let _ = events(&mut sw);
    // b releases a's lease (chaddr = its own MAC, ciaddr = a's IP): refused.
    let foreign = dhcp(MessageType::Release, mac(2), mac(2), A_IP, u);
    assert_eq!(
        send_ms(&mut sw, 3000, B, &foreign),
        Verdict::Drop(DropReason::DhcpReleaseForeignPort)
    );
    assert_eq!(sw.binding_count(), 1, "the binding survives");
    // a releases it: gone, and reported for the store.
    let own = dhcp(MessageType::Release, mac(1), mac(1), A_IP, u);
    let v = send_ms(&mut sw, 3001, A, &own);
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    assert_eq!(sw.binding_count(), 0);
    assert!(matches!(
        events(&mut sw)[..],
        [EventKind::BindingRemoved {
            why: BindingRemoval::Release,
            port: A,
            ..
        }]
    ));
    // A new lease, then a NAK from the server.
    lease(&mut sw, true);
    assert!(matches!(
        send_ms(
            &mut sw,
            4000,
            UPLINK,
            &dhcp(MessageType::Nak, SERVER, mac(1), u, u)
        ),
        Verdict::Forward(_)
    ));
    assert_eq!(sw.binding_count(), 0);
    // And one that simply runs out (3600 s).
    lease(&mut sw, true);
    sw.tick(Timestamp::from_secs(3000));
    assert_eq!(sw.binding_count(), 1);
    sw.tick(Timestamp::from_secs(3606));
    assert_eq!(sw.binding_count(), 0);
    assert!(events(&mut sw).iter().any(|e| matches!(
        e,
        EventKind::BindingRemoved {
            why: BindingRemoval::Expired,
            ..
        }
    )));
}

#[test]
fn an_ack_whose_binding_cannot_be_committed_is_dropped() {
    let mut sw = switch(EnforceMode::Enforce, false);
    lease(&mut sw, false);
    assert_eq!(sw.binding_count(), 0);
    assert_eq!(rx_drops(&sw, UPLINK, DropReason::BindingStoreFailed), 1);
    // Without a binding, a's traffic stays blocked by IP Source Guard.
    assert_eq!(
        send_ms(&mut sw, 2000, A, &ipv4(mac(1), A_IP, SERVER, SERVER_IP)),
        Verdict::Drop(DropReason::IpSourceGuard)
    );
}

// ---- Binding provenance (issue 13, items 4 and 7): who may take or remove a binding.

/// The static binding of b's address (`switch(_, true)`), as the API reports holders.
fn static_b() -> bindings::BindingHolder {
    bindings::BindingHolder {
        mac: mac(2),
        port: B,
        source: BindingSource::Static,
    }
}

/// b, statically bound, is reachable and passes IP Source Guard.
fn b_passes(sw: &mut Switch, t: u64) -> bool {
    matches!(
        send_ms(sw, t, B, &ipv4(mac(2), B_IP, SERVER, SERVER_IP)),
        Verdict::Forward(_)
    )
}

#[test]
fn a_nak_for_a_statically_bound_mac_leaves_its_binding() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, true);
    assert!(b_passes(&mut sw, 1));
    // Anyone can draw a NAK for b's MAC (a REQUEST for a wrong address with b's
    // chaddr, through a relay or from a port where chaddr is not checked).
    let nak = dhcp(MessageType::Nak, SERVER, mac(2), u, u);
    assert!(matches!(
        send_ms(&mut sw, 2, UPLINK, &nak),
        Verdict::Forward(_)
    ));
    assert_eq!(
        sw.binding(vid(10), IpAddr::V4(B_IP)).map(|b| b.source),
        Some(BindingSource::Static),
        "a NAK removes only a DHCP lease"
    );
    assert!(
        !events(&mut sw)
            .iter()
            .any(|e| matches!(e, EventKind::BindingRemoved { .. })),
        "nothing removed"
    );
    assert!(b_passes(&mut sw, 3), "b is not cut off");
    // The same for an API binding (a's address, pinned by the operator).
    sw.install_binding(api_binding(mac(1), A_IP, A), Timestamp::from_secs(1))
        .unwrap();
    let nak = dhcp(MessageType::Nak, SERVER, mac(1), u, u);
    assert!(matches!(
        send_ms(&mut sw, 4, UPLINK, &nak),
        Verdict::Forward(_)
    ));
    assert_eq!(
        sw.binding(vid(10), IpAddr::V4(A_IP)).map(|b| b.source),
        Some(BindingSource::Api)
    );
}

/// b, statically bound to `B_IP`, takes a DHCP lease of another address on the same
/// port; the operator then pins a third one through the API (so the lease is neither
/// the first nor the last of b's bindings). A NAK for b removes the lease only.
#[test]
fn a_nak_removes_the_clients_lease_and_leaves_its_static_and_api_bindings() {
    const B_LEASE: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 3);
    const B_API: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 4);
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, true);
    for (t, port, m) in [
        (1, B, dhcp(MessageType::Discover, mac(2), mac(2), u, u)),
        (
            2,
            UPLINK,
            dhcp(MessageType::Offer, SERVER, mac(2), u, B_LEASE),
        ),
        (3, B, dhcp(MessageType::Request, mac(2), mac(2), u, u)),
    ] {
        assert!(matches!(send_ms(&mut sw, t, port, &m), Verdict::Forward(_)));
    }
    let ack = dhcp(MessageType::Ack, SERVER, mac(2), u, B_LEASE);
    let v = send_ms(&mut sw, 4, UPLINK, &ack);
    let Verdict::Hold(fwd, held) = v else {
        panic!("the ACK must be held: {v:?}")
    };
    assert_eq!(
        (held.ip, held.mac, held.port, held.source),
        (IpAddr::V4(B_LEASE), mac(2), B, BindingSource::Dhcp)
    );
    assert!(sw.release_held(
        UPLINK,
        &fwd,
        &held,
        ack.len(),
        true,
        Timestamp::from_millis(5)
    ));
    sw.install_binding(api_binding(mac(2), B_API, B), Timestamp::from_millis(6))
        .unwrap();
    let source = |sw: &Switch, ip| sw.binding(vid(10), IpAddr::V4(ip)).map(|b| b.source);
    let all = |sw: &Switch| [B_IP, B_LEASE, B_API].map(|ip| source(sw, ip));
    assert_eq!(
        all(&sw),
        [
            Some(BindingSource::Static),
            Some(BindingSource::Dhcp),
            Some(BindingSource::Api)
        ]
    );
    let _ = events(&mut sw);
    let nak = dhcp(MessageType::Nak, SERVER, mac(2), u, u);
    assert!(matches!(
        send_ms(&mut sw, 7, UPLINK, &nak),
        Verdict::Forward(_)
    ));
    assert_eq!(
        all(&sw),
        [Some(BindingSource::Static), None, Some(BindingSource::Api)],
        "the NAK removes the lease only"
    );
    assert_eq!(
        events(&mut sw),
        vec![EventKind::BindingRemoved {
            vid: 10,
            ip: IpAddr::V4(B_LEASE),
            mac: mac(2),
            port: B,
            why: BindingRemoval::Nak,
        }]
    );
    assert!(b_passes(&mut sw, 8), "b keeps its static address");
    // A second NAK finds nothing to remove.
    assert!(matches!(
        send_ms(&mut sw, 9, UPLINK, &nak),
        Verdict::Forward(_)
    ));
    assert_eq!(sw.binding_count(), 2);
    assert!(events(&mut sw).is_empty());
}

#[test]
fn release_decline_nak_and_expiry_never_remove_static_or_api_bindings() {
    let mut sw = switch(EnforceMode::Enforce, true);
    sw.install_binding(api_binding(mac(1), A_IP, A), Timestamp::from_secs(1))
        .unwrap();
    for why in [
        BindingRemoval::Release,
        BindingRemoval::Decline,
        BindingRemoval::Nak,
        BindingRemoval::Expired,
    ] {
        for ip in [A_IP, B_IP] {
            assert!(
                !sw.remove_binding(vid(10), IpAddr::V4(ip), why, Timestamp::from_secs(2)),
                "{why:?} removed the binding of {ip}"
            );
        }
    }
    // The API removes its own bindings (and DHCP leases), never a static one.
    assert!(!sw.remove_binding(
        vid(10),
        IpAddr::V4(B_IP),
        BindingRemoval::Api,
        Timestamp::from_secs(3)
    ));
    assert!(sw.remove_binding(
        vid(10),
        IpAddr::V4(A_IP),
        BindingRemoval::Api,
        Timestamp::from_secs(3)
    ));
    assert_eq!(sw.binding_count(), 1);
    // b releases its own statically bound address: it passes, the binding stays.
    let u = Ipv4Addr::UNSPECIFIED;
    let release = dhcp(MessageType::Release, mac(2), mac(2), B_IP, u);
    assert!(matches!(
        send_ms(&mut sw, 4000, B, &release),
        Verdict::Forward(_)
    ));
    sw.tick(Timestamp::from_secs(1_000_000));
    assert_eq!(sw.binding_count(), 1);
    assert!(b_passes(&mut sw, 1_000_001_000));
}

#[test]
fn an_ack_for_an_address_another_binding_holds_is_dropped_and_reported() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, true);
    // a asks; the server leases it b's statically bound address.
    send_ms(
        &mut sw,
        1,
        A,
        &dhcp(MessageType::Discover, mac(1), mac(1), u, u),
    );
    let _ = events(&mut sw);
    let ack = dhcp(MessageType::Ack, SERVER, mac(1), u, B_IP);
    assert_eq!(
        send_ms(&mut sw, 2, UPLINK, &ack),
        Verdict::Drop(DropReason::DhcpBindingConflict)
    );
    assert_eq!(rx_drops(&sw, UPLINK, DropReason::DhcpBindingConflict), 1);
    assert_eq!(
        events(&mut sw),
        vec![EventKind::BindingRefused {
            vid: 10,
            ip: IpAddr::V4(B_IP),
            port: A,
            mac: mac(1),
            owner: B,
            owner_mac: mac(2),
            owner_source: BindingSource::Static,
        }]
    );
    assert_eq!(sw.bindings()[0].binding.source, BindingSource::Static);
    assert!(b_passes(&mut sw, 3));
    // A live lease of another MAC is held just as firmly: a has A_IP, b is offered it.
    let mut sw = switch(EnforceMode::Enforce, false);
    lease(&mut sw, true);
    send_ms(
        &mut sw,
        3,
        B,
        &dhcp(MessageType::Discover, mac(2), mac(2), u, u),
    );
    let ack = dhcp(MessageType::Ack, SERVER, mac(2), u, A_IP);
    assert_eq!(
        send_ms(&mut sw, 5000, UPLINK, &ack),
        Verdict::Drop(DropReason::DhcpBindingConflict)
    );
    assert_eq!(sw.binding(vid(10), IpAddr::V4(A_IP)).unwrap().mac, mac(1));
    // Once a's lease has ended (not yet swept), the address is free for b.
    let later = 1_004 + 3_600_000;
    send_ms(
        &mut sw,
        later,
        B,
        &dhcp(MessageType::Discover, mac(2), mac(2), u, u),
    );
    let v = send_ms(&mut sw, later + 1, UPLINK, &ack);
    assert!(matches!(v, Verdict::Hold(..)), "{v:?}");
}

#[test]
fn an_ack_for_the_clients_own_static_address_passes_and_keeps_it_static() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, true);
    send_ms(
        &mut sw,
        1,
        B,
        &dhcp(MessageType::Discover, mac(2), mac(2), u, u),
    );
    let ack = dhcp(MessageType::Ack, SERVER, mac(2), u, B_IP);
    let v = send_ms(&mut sw, 2, UPLINK, &ack);
    assert_eq!(out(&v), vec![2], "forwarded to b, not held: {v:?}");
    let b = sw.binding(vid(10), IpAddr::V4(B_IP)).unwrap();
    assert_eq!((b.source, b.lease_end), (BindingSource::Static, None));
    // Even if such an ACK was held, its release leaves the static binding alone.
    let fwd = Forward {
        vid: vid(10),
        pcp_dei: 0,
        body_offset: 12,
        out: PortSet::single(B),
        rewrite: Rewrite::None,
        tunnel: Default::default(),
    };
    let upd = stages::dhcp_snooping::BindingUpdate {
        vid: vid(10),
        ip: IpAddr::V4(B_IP),
        mac: mac(2),
        port: B,
        lease_secs: Some(60),
        source: BindingSource::Dhcp,
        duid: None,
    };
    assert!(sw.release_held(UPLINK, &fwd, &upd, ack.len(), true, Timestamp::from_secs(3)));
    sw.tick(Timestamp::from_secs(100));
    let b = sw.binding(vid(10), IpAddr::V4(B_IP)).unwrap();
    assert_eq!((b.source, b.lease_end), (BindingSource::Static, None));
}

#[test]
fn an_api_binding_made_while_an_ack_is_held_wins_at_its_release() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    send_ms(
        &mut sw,
        1,
        A,
        &dhcp(MessageType::Discover, mac(1), mac(1), u, u),
    );
    let ack = dhcp(MessageType::Ack, SERVER, mac(1), u, A_IP);
    let Verdict::Hold(fwd, held) = send_ms(&mut sw, 2, UPLINK, &ack) else {
        panic!("held")
    };
    // The operator binds A_IP to b meanwhile.
    sw.install_binding(api_binding(mac(2), A_IP, B), Timestamp::from_millis(3))
        .unwrap();
    let _ = events(&mut sw);
    assert!(!sw.release_held(
        UPLINK,
        &fwd,
        &held,
        ack.len(),
        true,
        Timestamp::from_millis(4)
    ));
    assert_eq!(rx_drops(&sw, UPLINK, DropReason::DhcpBindingConflict), 1);
    assert_eq!(rx_drops(&sw, UPLINK, DropReason::BindingTableFull), 0);
    let b = sw.binding(vid(10), IpAddr::V4(A_IP)).unwrap();
    assert_eq!((b.mac, b.port, b.source), (mac(2), B, BindingSource::Api));
    assert!(matches!(
        events(&mut sw)[..],
        [EventKind::BindingRefused {
            owner: B,
            owner_source: BindingSource::Api,
            ..
        }]
    ));
}

#[test]
fn api_bindings_are_checked_like_configured_ones_and_replace_only_on_request() {
    let mut sw = switch(EnforceMode::Enforce, true);
    let t = Timestamp::from_secs(1);
    // Validation: what the configuration refuses, the API refuses too.
    let mut bcast = api_binding(MacAddr::BROADCAST, A_IP, A);
    assert_eq!(sw.install_binding(bcast, t), Err(ControlError::InvalidMac));
    bcast.mac = MacAddr([0x01, 0, 0x5e, 0, 0, 1]);
    assert_eq!(sw.install_binding(bcast, t), Err(ControlError::InvalidMac));
    for bad in ["224.0.0.1", "255.255.255.255", "0.0.0.0", "127.0.0.1"] {
        let mut b = api_binding(mac(1), A_IP, A);
        b.ip = bad.parse().unwrap();
        assert!(
            matches!(
                sw.install_binding(b, t),
                Err(ControlError::InvalidBindingIp(_))
            ),
            "{bad}"
        );
    }
    let mut other_vlan = api_binding(mac(1), A_IP, A);
    other_vlan.vid = vid(20);
    assert_eq!(
        sw.install_binding(other_vlan, t),
        Err(ControlError::VlanNotCarried)
    );
    assert_eq!(sw.binding_count(), 1, "nothing stored");
    // The static binding of b's address cannot be shadowed, replaced or taken.
    for (m, p) in [(mac(1), A), (mac(2), B), (mac(2), A)] {
        assert_eq!(
            sw.install_binding(api_binding(m, B_IP, p), t),
            Err(ControlError::StaticBinding(static_b()))
        );
        assert_eq!(
            sw.replace_binding(api_binding(m, B_IP, p), t),
            Err(ControlError::StaticBinding(static_b()))
        );
    }
    // Another port's API binding: refused, unless replaced explicitly.
    sw.install_binding(api_binding(mac(1), A_IP, A), t).unwrap();
    sw.install_binding(api_binding(mac(1), A_IP, A), t).unwrap(); // the same again: fine
    let holder = bindings::BindingHolder {
        mac: mac(1),
        port: A,
        source: BindingSource::Api,
    };
    assert_eq!(
        sw.install_binding(api_binding(mac(3), A_IP, ROGUE), t),
        Err(ControlError::BindingHeld(holder))
    );
    assert_eq!(
        sw.replace_binding(api_binding(mac(3), A_IP, ROGUE), t),
        Ok(Some(holder))
    );
    assert_eq!(sw.binding(vid(10), IpAddr::V4(A_IP)).unwrap().port, ROGUE);
    // A DHCP lease of the same MAC moving ports is a migration, not a conflict.
    let lease = |port| bindings::NewBinding {
        vid: vid(10),
        ip: IpAddr::V4(Ipv4Addr::new(198, 18, 10, 9)),
        mac: mac(1),
        port,
        lease_secs: Some(60),
        source: BindingSource::Dhcp,
        duid: None,
    };
    sw.install_binding(lease(A), t).unwrap();
    sw.install_binding(lease(ROGUE), t).unwrap();
    assert_eq!(
        sw.binding(vid(10), IpAddr::V4(Ipv4Addr::new(198, 18, 10, 9)))
            .unwrap()
            .port,
        ROGUE
    );
}

#[test]
fn static_bindings_serve_arp_inspection_and_source_guard() {
    let mut sw = switch(EnforceMode::Enforce, true);
    assert_eq!(
        out(&send_ms(
            &mut sw,
            1,
            B,
            &ipv4(mac(2), B_IP, SERVER, SERVER_IP)
        )),
        vec![0]
    );
    let announce = arp(
        MacAddr::BROADCAST,
        mac(2),
        1,
        (mac(2), B_IP),
        (MacAddr::ZERO, B_IP),
    );
    assert_eq!(out(&send_ms(&mut sw, 1, B, &announce)), vec![0, 1, 3]);
    assert_eq!(sw.bindings()[0].binding.source, BindingSource::Static);
}

#[test]
fn an_ack_for_a_client_the_switch_does_not_know_never_reaches_untrusted_ports() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    // Right after a restart the switch has not seen the client yet; a broadcast ACK
    // would give it a lease without a binding.
    let stranger = MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]);
    let mut ack = dhcp(
        MessageType::Ack,
        SERVER,
        stranger,
        u,
        Ipv4Addr::new(198, 18, 10, 77),
    );
    ack[..6].copy_from_slice(&[0xff; 6]);
    assert_eq!(
        send_ms(&mut sw, 1, UPLINK, &ack),
        Verdict::Drop(DropReason::DhcpAckUnknownClient)
    );
    assert_eq!(rx_drops(&sw, UPLINK, DropReason::DhcpAckUnknownClient), 1);
    assert_eq!(sw.binding_count(), 0);
    for p in [A, B, ROGUE] {
        assert_eq!(sw.counters(p).unwrap().tx_frames, 0);
    }
}

// ---------------------------------------------------------------------------------
// An attacker's DHCP: odd ports, fragments, spoofed sources (issue 13, items 1–3).
// ---------------------------------------------------------------------------------

/// `frame` (from [`dhcp`]) with other UDP ports.
fn ports(mut frame: Vec<u8>, sport: u16, dport: u16) -> Vec<u8> {
    frame[34..36].copy_from_slice(&sport.to_be_bytes());
    frame[36..38].copy_from_slice(&dport.to_be_bytes());
    frame
}

/// `frame` with the IPv4 flags/fragment-offset field set to `frag` (0x2000: MF)
/// and its header checksum made right again.
fn fragment(mut frame: Vec<u8>, frag: u16) -> Vec<u8> {
    frame[20..22].copy_from_slice(&frag.to_be_bytes());
    frame[24..26].copy_from_slice(&[0, 0]);
    let sum = etherparse::Ipv4HeaderSlice::from_slice(&frame[14..34])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

/// `frame` with the IPv4 source address `ip`.
fn from_ip(mut frame: Vec<u8>, ip: Ipv4Addr) -> Vec<u8> {
    frame[26..30].copy_from_slice(&ip.octets());
    frame
}

/// `frame`'s DHCP message type option (53) set to `t`.
fn message_type(mut frame: Vec<u8>, t: u8) -> Vec<u8> {
    let at = (282..frame.len() - 2)
        .find(|&i| frame[i] == 53 && frame[i + 1] == 1)
        .expect("option 53");
    frame[at + 2] = t;
    frame
}

/// Frames any port (but `from`) was sent, for asserting that nothing got through.
fn sent_to_guests(sw: &Switch) -> u64 {
    [A, B, ROGUE]
        .iter()
        .map(|p| sw.counters(*p).unwrap().tx_frames)
        .sum()
}

#[test]
fn a_rogue_server_answering_from_odd_ports_or_in_fragments_never_reaches_a_client() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    let offer = dhcp(MessageType::Offer, mac(3), mac(1), u, B_IP);
    let ack = dhcp(MessageType::Ack, mac(3), mac(1), u, B_IP);
    // Whatever the source port, a datagram to a client's port 68 (or a server's 67)
    // is DHCP: the rogue's replies are server messages from an untrusted port.
    for (sport, dport) in [(1067, 68), (68, 68), (4242, 68), (67, 67), (53, 67)] {
        for m in [&offer, &ack] {
            assert_eq!(
                send_ms(&mut sw, 1, ROGUE, &ports(m.clone(), sport, dport)),
                Verdict::Drop(DropReason::DhcpServerUntrusted),
                "{sport} → {dport}"
            );
        }
    }
    assert_eq!(rx_drops(&sw, ROGUE, DropReason::DhcpServerUntrusted), 10);
    // A whole reply with MF set (a raw-socket client that checks only the offset
    // takes it), and one whose MF is set and whose port is odd too.
    assert_eq!(
        send_ms(&mut sw, 1, ROGUE, &fragment(ack.clone(), 0x2000)),
        Verdict::Drop(DropReason::DhcpFragment)
    );
    assert_eq!(
        send_ms(
            &mut sw,
            1,
            ROGUE,
            &fragment(ports(ack.clone(), 1067, 68), 0x2000)
        ),
        Verdict::Drop(DropReason::DhcpFragment)
    );
    // A later fragment whose bytes read as UDP to 68 (a client that ignores the
    // fragment fields would read it as one), DF set or not.
    for frag in [0x0001, 0x2010, 0x4001] {
        assert_eq!(
            send_ms(&mut sw, 1, ROGUE, &fragment(ack.clone(), frag)),
            Verdict::Drop(DropReason::DhcpFragment),
            "frag {frag:#06x}"
        );
    }
    // A first fragment too short to show its UDP header (RFC 1858).
    let mut tiny = fragment(ack.clone(), 0x2000);
    tiny[16..18].copy_from_slice(&24u16.to_be_bytes());
    let tiny = fragment(tiny, 0x2000);
    assert_eq!(
        send_ms(&mut sw, 1, ROGUE, &tiny),
        Verdict::Drop(DropReason::DhcpFragment)
    );
    // UDP to 68 whose UDP length runs past the datagram: unreadable, dropped.
    let mut long = ack.clone();
    long[38..40].copy_from_slice(&0xfff0u16.to_be_bytes());
    assert_eq!(
        send_ms(&mut sw, 1, ROGUE, &long),
        Verdict::Drop(DropReason::DhcpMalformed)
    );
    // An IPv4 header that claims more bytes than the frame has.
    let mut bogus = ack.clone();
    bogus[16..18].copy_from_slice(&0xffffu16.to_be_bytes());
    assert_eq!(
        send_ms(&mut sw, 1, ROGUE, &bogus),
        Verdict::Drop(DropReason::Ipv4Malformed)
    );
    assert_eq!(rx_drops(&sw, ROGUE, DropReason::DhcpFragment), 6);
    assert_eq!(sent_to_guests(&sw), 0, "no client saw any of it");
    assert_eq!(sw.counters(UPLINK).unwrap().tx_frames, 0);
    assert_eq!(sw.binding_count(), 0);
    assert!(
        sw.port(ROGUE).unwrap().err_disabled.is_none(),
        "17 messages in a second: under the limit of 20"
    );
}

#[test]
fn ordinary_fragmented_udp_from_a_guest_still_flows() {
    let mut sw = switch(EnforceMode::Enforce, true);
    // b (statically bound) sends a datagram to the server in two fragments, as a
    // DNS server answering with EDNS might.
    let first = udp4(SERVER, mac(2), (B_IP, SERVER_IP), (53, 40000), &[0xab; 64]);
    let later = fragment(first.clone(), 0x0009);
    let first = fragment(first, 0x2000);
    assert_eq!(out(&send_ms(&mut sw, 1, B, &first)), vec![0]);
    assert_eq!(out(&send_ms(&mut sw, 1, B, &later)), vec![0]);
    assert_eq!(sw.counters(B).unwrap().rx_dropped(), 0);
}

#[test]
fn client_messages_from_odd_ports_or_in_fragments_are_checked_or_dropped() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    // Starvation with MF set: every fragment is dropped before the server sees it.
    for i in 0..5u8 {
        let req = dhcp(MessageType::Request, mac(1), mac(0x80 + i), u, u);
        assert_eq!(
            send_ms(&mut sw, 1, A, &fragment(req, 0x2000)),
            Verdict::Drop(DropReason::DhcpFragment)
        );
    }
    // From source port 1068: still a client message, still checked.
    let spoofed = ports(
        dhcp(MessageType::Request, mac(1), mac(0x77), u, u),
        1068,
        67,
    );
    assert_eq!(
        send_ms(&mut sw, 1, A, &spoofed),
        Verdict::Drop(DropReason::DhcpChaddrMismatch)
    );
    assert_eq!(sw.counters(UPLINK).unwrap().tx_frames, 0);
    // A LEASEQUERY (10) from a guest: no client sends one.
    let query = message_type(dhcp(MessageType::Request, mac(1), mac(1), u, u), 10);
    assert_eq!(
        send_ms(&mut sw, 1, A, &query),
        Verdict::Drop(DropReason::DhcpUnexpectedMessage)
    );

    // A RELEASE of a's lease from b's port, from source port 1068: refused.
    lease(&mut sw, true);
    let foreign = ports(
        dhcp(MessageType::Release, mac(2), mac(2), A_IP, u),
        1068,
        67,
    );
    let foreign = from_ip(foreign, u);
    assert_eq!(
        send_ms(&mut sw, 3000, B, &foreign),
        Verdict::Drop(DropReason::DhcpReleaseForeignPort)
    );
    assert_eq!(sw.binding_count(), 1, "a's binding survives");
    // The rate limit counted them all: a is over 20 messages in its second.
    for _ in 0..20 {
        send_ms(&mut sw, 1, A, &spoofed);
    }
    assert_eq!(
        sw.port(A).unwrap().err_disabled.map(|e| e.cause),
        Some(ErrDisableCause::DhcpRateLimit)
    );
}

#[test]
fn client_broadcasts_reach_trusted_ports_only() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, true);
    let discover = dhcp(MessageType::Discover, mac(1), mac(1), u, u);
    let v = send_ms(&mut sw, 1, A, &discover);
    assert_eq!(out(&v), vec![0], "the server's side only: {v:?}");
    // Unicast to another guest (a client renewing with a rogue server): nowhere.
    let mut to_rogue = dhcp(MessageType::Request, mac(1), mac(1), u, u);
    to_rogue[..6].copy_from_slice(&mac(3).0);
    assert_eq!(
        send_ms(&mut sw, 2, A, &to_rogue),
        Verdict::Drop(DropReason::DhcpNoTrustedPort)
    );
    // A client behind the uplink: its broadcast reaches no untrusted guest either.
    let remote = MacAddr([0x02, 0, 0, 0, 0, 0x42]);
    assert_eq!(
        send_ms(
            &mut sw,
            3,
            UPLINK,
            &dhcp(MessageType::Discover, remote, remote, u, u)
        ),
        Verdict::Drop(DropReason::DhcpNoTrustedPort)
    );
    assert_eq!(sent_to_guests(&sw), 0);
    assert_eq!(rx_drops(&sw, A, DropReason::DhcpNoTrustedPort), 1);
    assert_eq!(rx_drops(&sw, UPLINK, DropReason::DhcpNoTrustedPort), 1);
    // Ordinary broadcasts still reach everyone.
    let who_has = arp(
        MacAddr::BROADCAST,
        mac(2),
        1,
        (mac(2), B_IP),
        (MacAddr::ZERO, SERVER_IP),
    );
    let v = send_ms(&mut sw, 4, B, &who_has);
    assert_eq!(out(&v), vec![0, 1, 3], "{v:?}");
}

#[test]
fn source_guard_exempts_only_a_client_without_an_address() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    let discover = dhcp(MessageType::Discover, mac(1), mac(1), u, u);
    assert_eq!(out(&send_ms(&mut sw, 1, A, &discover)), vec![0]);
    // A BOOTREQUEST from an address a does not hold: checked like any IPv4.
    for spoofed in [B_IP, SERVER_IP, Ipv4Addr::new(198, 18, 99, 9)] {
        assert_eq!(
            send_ms(&mut sw, 2, A, &from_ip(discover.clone(), spoofed)),
            Verdict::Drop(DropReason::IpSourceGuard),
            "from {spoofed}"
        );
    }
    // From 0.0.0.0 to some other port than 67: not a client getting a lease.
    assert_eq!(
        send_ms(&mut sw, 2, A, &ipv4(mac(1), u, SERVER, SERVER_IP)),
        Verdict::Drop(DropReason::IpSourceGuard)
    );
    assert_eq!(rx_drops(&sw, A, DropReason::IpSourceGuard), 4);
    // Once bound, a renews from its own address, and releases it.
    lease(&mut sw, true);
    let renew = from_ip(dhcp(MessageType::Request, mac(1), mac(1), A_IP, u), A_IP);
    assert_eq!(out(&send_ms(&mut sw, 3000, A, &renew)), vec![0]);
    let release = dhcp(MessageType::Release, mac(1), mac(1), A_IP, u);
    assert_eq!(out(&send_ms(&mut sw, 3001, A, &release)), vec![0]);
    assert_eq!(sw.binding_count(), 0, "released once it was on its way");
}

#[test]
fn a_release_that_a_later_check_drops_releases_nothing() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Enforce, false);
    lease(&mut sw, true);
    // a's own RELEASE, but from an address it does not hold: IP Source Guard drops
    // it after snooping read it, so the server never sees it — nor may the switch
    // act on it.
    let release = from_ip(
        dhcp(MessageType::Release, mac(1), mac(1), A_IP, u),
        Ipv4Addr::new(198, 18, 10, 99),
    );
    assert_eq!(
        send_ms(&mut sw, 3000, A, &release),
        Verdict::Drop(DropReason::IpSourceGuard)
    );
    assert_eq!(sw.binding_count(), 1);
}

#[test]
fn observe_mode_counts_the_new_checks_and_drops_nothing() {
    let u = Ipv4Addr::UNSPECIFIED;
    let mut sw = switch(EnforceMode::Observe, false);
    let ack = fragment(dhcp(MessageType::Ack, mac(3), mac(1), u, B_IP), 0x2000);
    let v = send_ms(&mut sw, 1, ROGUE, &ack);
    assert!(matches!(v, Verdict::Forward(_)), "{v:?}");
    let c = sw.counters(ROGUE).unwrap();
    assert_eq!(c.rx_dropped(), 0);
    assert_eq!(c.observed[DropReason::DhcpFragment as usize], 1);
}
