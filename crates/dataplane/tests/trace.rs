//! `Switch::process_traced`: one scenario per stage, each asserting the step that
//! decided (its structured facts and its explanation) and that the traced verdict
//! is exactly `process`'s verdict on an identical switch; then a property: for
//! random specifications and frames, tracing returns `process`'s verdicts, its steps
//! agree with the verdict, and a switch that traced every frame ends in the same
//! state as one that did not (a traced frame is processed: counted, learned, rate
//! limited — exactly as `process` does it).

use dhcproto::v4::MessageType;
use portcullis_dataplane::events::ViolationKind;
use portcullis_dataplane::trace::{
    ArpNote, Detail, DhcpNote, IpsgNote, Outcome, PolicyCheck, SecureCheck, Stage, Step, Trace,
    describe_verdict,
};
use portcullis_dataplane::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

mod support;
use support::*;

const UPLINK1: PortId = PortId(0);
const UPLINK2: PortId = PortId(1);
const VM1: PortId = PortId(2);
const VM2: PortId = PortId(3);
const VM3: PortId = PortId(4);

/// uplink1, uplink2 (trunks, native VLAN 10), vm1..vm3 (access VLAN 10, MACs :01..:03,
/// every policy reject, no feature), changed by `edit`.
fn lab(edit: impl FnOnce(&mut SwitchSpec)) -> SwitchSpec {
    let mut spec = switch_spec(
        "lab",
        vec![
            trunk("uplink1", &[10], Some(10)),
            trunk("uplink2", &[10], Some(10)),
            access("vm1", 10, Some(mac(1))),
            access("vm2", 10, Some(mac(2))),
            access("vm3", 10, Some(mac(3))),
        ],
    );
    spec.max_bindings = 16;
    spec.static_bindings = vec![static_binding(mac(1), ip(1), VM1.index())];
    edit(&mut spec);
    spec
}

fn features(spec: &mut SwitchSpec, port: PortId) -> &mut PortFeatures {
    &mut spec.ports[port.index()].features
}

fn udp(dst: MacAddr, src: MacAddr, sip: Ipv4Addr, dip: Ipv4Addr, ports: (u16, u16)) -> Vec<u8> {
    udp4(dst, src, (sip, dip), ports, &[0; 8])
}

/// What a traced frame gave: the verdict, the trace and the traced switch.
struct Traced {
    verdict: Verdict,
    trace: Trace,
    sw: Switch,
}

impl Traced {
    /// The first step of `stage`; the whole trace on failure.
    fn step(&self, stage: Stage) -> Step {
        *self
            .trace
            .steps()
            .iter()
            .find(|s| s.stage == stage)
            .unwrap_or_else(|| panic!("no {stage:?} step in {:#?}", self.trace.steps()))
    }
    /// The explanation of the first step of `stage`.
    fn text(&self, stage: Stage) -> String {
        self.trace
            .explain(&self.sw)
            .into_iter()
            .find(|e| e.stage == stage.name())
            .map(|e| e.text)
            .unwrap_or_else(|| panic!("no {stage:?} step in {:#?}", self.trace.steps()))
    }
    fn out(&self) -> Vec<&str> {
        self.verdict
            .out_ports()
            .iter()
            .map(|p| self.sw.port(p).unwrap().name.as_str())
            .collect()
    }
}

/// Builds two switches from `spec`, feeds both `before` with `process`, then the
/// frame: `process` on one, `process_traced` on the other. Asserts the verdicts are
/// equal and returns the traced one.
fn trace(spec: &SwitchSpec, before: &[(PortId, Vec<u8>)], port: PortId, frame: &[u8]) -> Traced {
    let mut plain = Switch::new(spec, Timestamp(0)).unwrap();
    let mut traced = Switch::new(spec, Timestamp(0)).unwrap();
    let mut now = Timestamp::from_secs(1);
    for (p, f) in before {
        let rx = IngressFrame { data: f, tag: None };
        assert_eq!(plain.process(now, *p, &rx), traced.process(now, *p, &rx));
        now = Timestamp(now.0 + 1_000_000);
    }
    let rx = IngressFrame {
        data: frame,
        tag: None,
    };
    let expected = plain.process(now, port, &rx);
    let mut t = Trace::new();
    let verdict = traced.process_traced(now, port, &rx, &mut t);
    assert_eq!(verdict, expected, "traced verdict = process verdict");
    assert_eq!(t.verdict, Some(verdict));
    Traced {
        verdict,
        trace: t,
        sw: traced,
    }
}

#[test]
fn an_honest_unicast_passes_every_stage_in_pipeline_order() {
    let spec = lab(|_| {});
    let t = trace(&spec, &[], VM1, &eth(mac(2), mac(1), 0x0800, &[]));
    assert_eq!(t.out(), ["vm2"]);
    let stages: Vec<Stage> = t.trace.steps().iter().map(|s| s.stage).collect();
    assert_eq!(
        stages,
        [
            Stage::Port,
            Stage::Parse,
            Stage::LinkLocal,
            Stage::SourceMac,
            Stage::Vlan,
            Stage::PortSecurity,
            Stage::VswitchPolicy,
            Stage::MacAclIn,
            Stage::IpSourceGuard,
            Stage::Forwarding,
        ]
    );
    assert!(
        t.trace
            .steps()
            .iter()
            .all(|s| matches!(s.outcome, Outcome::Pass | Outcome::Skip))
    );
    assert_eq!(t.text(Stage::Port), "vm1 (guest): admin up, link up");
    assert_eq!(
        t.text(Stage::Parse),
        "52:54:00:00:00:01 → 52:54:00:00:00:02, untagged, EtherType 0x0800 (IPv4), 60 bytes"
    );
    assert_eq!(
        t.text(Stage::Vlan),
        "untagged → VLAN 10 (port: access VLAN 10)"
    );
    assert_eq!(
        t.text(Stage::Forwarding),
        "MAC table: 52:54:00:00:00:02 in VLAN 10 is on vm2 (guest)"
    );
    assert_eq!(
        describe_verdict(&t.sw, &t.verdict),
        "forward → vm2 (VLAN 10)"
    );
}

#[test]
fn forged_transmit_names_the_policy_and_the_effective_mac() {
    let spec = lab(|_| {});
    let t = trace(&spec, &[], VM1, &eth(mac(2), mac(0x66), 0x0800, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::ForgedTransmit));
    let s = t.step(Stage::VswitchPolicy);
    assert_eq!(s.outcome, Outcome::Drop(DropReason::ForgedTransmit));
    assert_eq!(
        s.detail,
        Detail::Policy {
            mac: mac(0x66),
            check: PolicyCheck::Forged { effective: mac(1) }
        }
    );
    assert_eq!(
        t.text(Stage::VswitchPolicy),
        "promiscuous=reject mac_changes=reject forged_transmits=reject: source 52:54:00:00:00:66 \
         is not the port's effective MAC 52:54:00:00:00:01: forged transmit"
    );
    assert_eq!(
        t.trace.steps().last().map(|s| s.stage),
        Some(Stage::VswitchPolicy),
        "nothing after the stage that dropped"
    );
    assert_eq!(describe_verdict(&t.sw, &t.verdict), "drop: forged_transmit");
}

#[test]
fn a_mac_change_accepted_shows_old_and_new_mac() {
    let spec = lab(|s| s.ports[VM1.index()].security.mac_changes = Policy::Accept);
    let t = trace(&spec, &[], VM1, &eth(mac(2), mac(0x11), 0x0800, &[]));
    assert!(matches!(t.verdict, Verdict::Forward(_)));
    assert_eq!(
        t.step(Stage::VswitchPolicy).detail,
        Detail::Policy {
            mac: mac(0x11),
            check: PolicyCheck::MacChange {
                from: Some(mac(1)),
                owner: None
            }
        }
    );
    assert!(
        t.text(Stage::VswitchPolicy)
            .ends_with("MAC change 52:54:00:00:00:01 → 52:54:00:00:00:11")
    );
    // A MAC another port holds: refused, and the owner named.
    let t = trace(&spec, &[], VM1, &eth(mac(3), mac(2), 0x0800, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::MacConflict));
    assert!(
        t.text(Stage::VswitchPolicy).ends_with(
            "MAC change 52:54:00:00:00:01 → 52:54:00:00:00:02, but port vm2 holds 52:54:00:00:00:02"
        ),
        "{}",
        t.text(Stage::VswitchPolicy)
    );
}

#[test]
fn a_promiscuous_port_gets_a_copy_and_the_trace_says_why() {
    let spec = lab(|s| s.ports[VM3.index()].security.promiscuous = Policy::Accept);
    let t = trace(&spec, &[], VM1, &eth(mac(2), mac(1), 0x0800, &[]));
    assert_eq!(t.out(), ["vm2", "vm3"]);
    assert_eq!(
        t.text(Stage::Forwarding),
        "MAC table: 52:54:00:00:00:02 in VLAN 10 is on vm2 (guest); promiscuous copies: vm3"
    );
    // Unknown unicast from a guest: the uplink and the promiscuous copy.
    let t = trace(&spec, &[], VM1, &eth(mac(0x99), mac(1), 0x0800, &[]));
    assert_eq!(t.out(), ["uplink1", "vm3"]);
    let text = t.text(Stage::Forwarding);
    assert!(
        text.starts_with("MAC table: 52:54:00:00:00:99 unknown in VLAN 10; teaming originating-port: uplink uplink1"),
        "{text}"
    );
    assert!(text.ends_with("; promiscuous copies: vm3"), "{text}");
}

fn guests_in() -> MacAclSpec {
    let rule = |action, ethertype| MacAclRule {
        action,
        src: None,
        dst: None,
        ethertype,
        vlan: None,
        cos: None,
    };
    MacAclSpec {
        name: "guests-in".into(),
        rules: vec![
            rule(AclAction::Permit, Some(0x0800)),
            rule(AclAction::Permit, Some(0x0806)),
            rule(AclAction::Deny, Some(0x86dd)),
        ],
    }
}

#[test]
fn a_mac_acl_deny_names_the_acl_and_the_rule_number() {
    let spec = lab(|s| {
        s.mac_acls.push(guests_in());
        features(s, VM1).mac_acl_in = Some("guests-in".into());
    });
    let t = trace(&spec, &[], VM1, &eth(mac(2), mac(1), 0x86dd, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::MacAclDeny));
    assert_eq!(
        t.step(Stage::MacAclIn).detail,
        Detail::Acl {
            port: VM1,
            acl: 0,
            rule: Some(2),
            action: AclAction::Deny
        }
    );
    assert_eq!(
        t.text(Stage::MacAclIn),
        "ACL \"guests-in\" rule 3 (deny ethertype 0x86dd) → deny"
    );
    // No rule matches: the implicit deny.
    let t = trace(&spec, &[], VM1, &eth(mac(2), mac(1), 0x88b5, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::MacAclDeny));
    assert_eq!(
        t.text(Stage::MacAclIn),
        "ACL \"guests-in\": no rule matched (3 rules) → implicit deny"
    );
    // A permitted frame names the rule that permitted it.
    let t = trace(&spec, &[], VM1, &eth(mac(2), mac(1), 0x0806, &[]));
    assert_eq!(
        t.text(Stage::MacAclIn),
        "ACL \"guests-in\" rule 2 (permit ethertype 0x0806) → permit"
    );
}

#[test]
fn an_outbound_acl_refusing_one_copy_of_a_flood_is_attributed_to_that_port() {
    let spec = lab(|s| {
        s.mac_acls.push(guests_in());
        features(s, VM3).mac_acl_out = Some("guests-in".into());
    });
    let t = trace(
        &spec,
        &[],
        VM1,
        &eth(MacAddr::BROADCAST, mac(1), 0x86dd, &[]),
    );
    assert_eq!(t.out(), ["uplink1", "vm2"]);
    let outs: Vec<Step> = t
        .trace
        .steps()
        .iter()
        .filter(|s| s.stage == Stage::MacAclOut)
        .copied()
        .collect();
    assert_eq!(outs.len(), 1, "{outs:#?}");
    assert_eq!(outs[0].outcome, Outcome::Drop(DropReason::MacAclDeny));
    assert_eq!(
        t.text(Stage::MacAclOut),
        "vm3: ACL \"guests-in\" rule 3 (deny ethertype 0x86dd) → deny (this copy is not sent)"
    );
    // Permitted: the copy goes, and the rule is named.
    let t = trace(
        &spec,
        &[],
        VM1,
        &eth(MacAddr::BROADCAST, mac(1), 0x0800, &[]),
    );
    assert_eq!(t.out(), ["uplink1", "vm2", "vm3"]);
    assert_eq!(t.step(Stage::MacAclOut).outcome, Outcome::Pass);
}

#[test]
fn dhcp_snooping_refuses_a_server_reply_from_an_untrusted_port() {
    let snoop = |trusted| DhcpSnoopingSpec {
        trusted,
        rate_limit_pps: None,
        option82: Option82::Keep,
        drop_untrusted_option82: false,
        mode: EnforceMode::Enforce,
    };
    let spec = lab(|s| {
        features(s, UPLINK1).dhcp_snooping = Some(snoop(true));
        features(s, VM2).dhcp_snooping = Some(snoop(false));
    });
    let offer = dhcp_broadcast(MessageType::Offer, mac(2), mac(1), ip(50));
    let t = trace(&spec, &[], VM2, &offer);
    assert_eq!(t.verdict, Verdict::Drop(DropReason::DhcpServerUntrusted));
    let s = t.step(Stage::DhcpSnooping);
    assert_eq!(s.outcome, Outcome::Drop(DropReason::DhcpServerUntrusted));
    assert!(matches!(
        s.detail,
        Detail::Dhcp {
            trusted: false,
            note: DhcpNote::ServerUntrusted,
            ..
        }
    ));
    assert_eq!(
        t.text(Stage::DhcpSnooping),
        "DHCPOFFER chaddr 52:54:00:00:00:01, yiaddr 198.18.10.50; untrusted port: a server \
         message from an untrusted port (a rogue DHCP server?)"
    );
    // From the trusted uplink, an ACK for vm2 is held until its binding is committed.
    let ack = dhcp_broadcast(
        MessageType::Ack,
        MacAddr([0, 0x1b, 0x21, 0, 0, 1]),
        mac(2),
        ip(50),
    );
    let t = trace(&spec, &[], UPLINK1, &ack);
    assert!(matches!(t.verdict, Verdict::Hold(..)), "{:?}", t.verdict);
    assert!(
        t.text(Stage::DhcpSnooping).ends_with(
            "trusted port: ACK binds 198.18.10.50 → 52:54:00:00:00:02 on vm2 in VLAN 10 (lease 3600 s): held until the binding is committed"
        ),
        "{}",
        t.text(Stage::DhcpSnooping)
    );
    assert!(
        describe_verdict(&t.sw, &t.verdict)
            .starts_with("hold (DHCP ACK until its binding is committed) → ")
    );
}

fn dai() -> ArpInspectionSpec {
    ArpInspectionSpec {
        trusted: false,
        validate_src_mac: false,
        validate_dst_mac: false,
        validate_ip: false,
        rate_limit_pps: None,
        acl: None,
        mode: EnforceMode::Enforce,
    }
}

#[test]
fn arp_inspection_shows_the_binding_it_looked_up() {
    let spec = lab(|s| features(s, VM2).arp_inspection = Some(dai()));
    let unknown = (MacAddr([0; 6]), ip(9));
    // No binding for the sender IP.
    let t = trace(
        &spec,
        &[],
        VM2,
        &arp(MacAddr::BROADCAST, mac(2), 1, (mac(2), ip(99)), unknown),
    );
    assert_eq!(t.verdict, Verdict::Drop(DropReason::ArpNoBinding));
    assert!(matches!(
        t.step(Stage::ArpInspection).detail,
        Detail::Arp {
            note: ArpNote::Binding(None),
            ..
        }
    ));
    assert_eq!(
        t.text(Stage::ArpInspection),
        "ARP request sender 198.18.10.99 52:54:00:00:00:02 → target 198.18.10.9: no binding for \
         198.18.10.99 in this VLAN"
    );
    // vm2 claims vm1's address: the binding names vm1's MAC.
    let t = trace(
        &spec,
        &[],
        VM2,
        &arp(MacAddr::BROADCAST, mac(2), 2, (mac(2), ip(1)), unknown),
    );
    assert_eq!(t.verdict, Verdict::Drop(DropReason::ArpNoBinding));
    assert!(
        t.text(Stage::ArpInspection).ends_with(
            "binding 198.18.10.1 → 52:54:00:00:00:01 on vm1 (static): the sender claims 52:54:00:00:00:02"
        ),
        "{}",
        t.text(Stage::ArpInspection)
    );
    // vm1 itself passes, and the trace says which binding vouched for it.
    let t = trace(
        &spec,
        &[],
        VM1,
        &arp(MacAddr::BROADCAST, mac(1), 1, (mac(1), ip(1)), unknown),
    );
    assert!(matches!(t.verdict, Verdict::Forward(_)));
    assert_eq!(
        t.step(Stage::ArpInspection).outcome,
        Outcome::Skip,
        "vm1 has no DAI"
    );
}

#[test]
fn ip_source_guard_names_the_unbound_source() {
    let guard = |mode| IpSourceGuardSpec {
        check: SourceGuard::IpMac,
        mode,
    };
    let spec = lab(|s| features(s, VM2).ip_source_guard = Some(guard(EnforceMode::Enforce)));
    let t = trace(
        &spec,
        &[],
        VM2,
        &udp(mac(3), mac(2), ip(50), ip(3), (1000, 53)),
    );
    assert_eq!(t.verdict, Verdict::Drop(DropReason::IpSourceGuard));
    assert_eq!(
        t.step(Stage::IpSourceGuard).detail,
        Detail::Ipsg {
            mode: EnforceMode::Enforce,
            note: IpsgNote::Lookup {
                src: Some(ip(50)),
                binding: None,
                check: SourceGuard::IpMac
            }
        }
    );
    assert_eq!(
        t.text(Stage::IpSourceGuard),
        "check ip-mac: no binding for source 198.18.10.50 in this VLAN"
    );
    // vm1's address from vm2: bound, but to another port.
    let t = trace(
        &spec,
        &[],
        VM2,
        &udp(mac(3), mac(2), ip(1), ip(3), (1000, 53)),
    );
    assert_eq!(t.verdict, Verdict::Drop(DropReason::IpSourceGuard));
    assert!(
        t.text(Stage::IpSourceGuard)
            .ends_with(": another port's address")
    );
    // Observe mode: counted, passed, and the trace says so.
    let spec = lab(|s| features(s, VM2).ip_source_guard = Some(guard(EnforceMode::Observe)));
    let t = trace(
        &spec,
        &[],
        VM2,
        &udp(mac(3), mac(2), ip(50), ip(3), (1000, 53)),
    );
    assert_eq!(t.out(), ["vm3"]);
    assert_eq!(
        t.step(Stage::IpSourceGuard).outcome,
        Outcome::Observe(DropReason::IpSourceGuard)
    );
    assert!(
        t.text(Stage::IpSourceGuard)
            .ends_with("(observe mode: counted, not dropped)")
    );
    assert_eq!(
        t.sw.counters(VM2).unwrap().observed[DropReason::IpSourceGuard as usize],
        1
    );
}

#[test]
fn a_port_security_violation_shows_count_limit_and_action() {
    let spec = lab(|s| {
        s.ports[VM2.index()].security.forged_transmits = Policy::Accept;
        features(s, VM2).port_security = Some(PortSecuritySpec {
            max_macs: 1,
            violation: Violation::Shutdown,
            sticky: false,
            aging: SecureAging::None,
            aging_secs: 0,
            static_macs: vec![],
            sticky_macs: vec![],
        });
    });
    let t = trace(&spec, &[], VM2, &eth(mac(3), mac(0x44), 0x0800, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::SecureMacLimit));
    assert_eq!(
        t.step(Stage::PortSecurity).detail,
        Detail::Secure {
            mac: mac(0x44),
            vid: vid(10),
            check: SecureCheck::Violation {
                kind: ViolationKind::TooMany,
                owner: None,
                count: 1,
                max: 1,
                action: Violation::Shutdown
            }
        }
    );
    assert_eq!(
        t.text(Stage::PortSecurity),
        "52:54:00:00:00:44 would be secure MAC 2 of at most 1 (1 in use): violation (shutdown: \
         error-disable the port)"
    );
    // The next frame finds the port error-disabled.
    let before = [(VM2, eth(mac(3), mac(0x44), 0x0800, &[]))];
    let t = trace(&spec, &before, VM2, &eth(mac(3), mac(2), 0x0800, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::ErrDisabled));
    assert!(
        t.text(Stage::Port)
            .starts_with("vm2 (guest): admin up, link up, error-disabled by port security at "),
        "{}",
        t.text(Stage::Port)
    );
    // A MAC of another port: a MAC-move violation naming the owner.
    let t = trace(&spec, &[], VM2, &eth(mac(3), mac(1), 0x0800, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::SecureMacMove));
    assert!(
        t.text(Stage::PortSecurity)
            .starts_with("52:54:00:00:00:01 is local to port vm1 in VLAN 10: MAC-move violation"),
        "{}",
        t.text(Stage::PortSecurity)
    );
}

#[test]
fn teaming_names_the_policy_and_the_uplink_chosen() {
    let spec = lab(|s| {
        features(s, VM1).teaming = Some(TeamingSpec {
            policy: TeamingPolicy::ExplicitFailover,
            active: vec!["uplink2".into()],
            standby: vec!["uplink1".into()],
            failback: true,
        });
    });
    let t = trace(
        &spec,
        &[],
        VM1,
        &eth(MacAddr::BROADCAST, mac(1), 0x0800, &[]),
    );
    assert_eq!(t.out(), ["uplink2", "vm2", "vm3"]);
    match t.step(Stage::Forwarding).detail {
        Detail::Forwarding(f) => {
            assert_eq!(f.uplink, Some(UPLINK2));
            assert!(f.pinned);
            assert_eq!(f.policy, TeamingPolicy::ExplicitFailover);
        }
        d => panic!("{d:?}"),
    }
    assert_eq!(
        t.text(Stage::Forwarding),
        "broadcast: flooded to the guests of VLAN 10; teaming explicit-failover (active uplink2; \
         standby uplink1): uplink uplink2 (the port's pinned uplink in this VLAN)"
    );
    // ip-hash picks per frame.
    let spec = lab(|s| {
        features(s, VM1).teaming = Some(TeamingSpec {
            policy: TeamingPolicy::IpHash,
            active: vec!["uplink1".into(), "uplink2".into()],
            standby: vec![],
            failback: true,
        });
    });
    let t = trace(
        &spec,
        &[],
        VM1,
        &udp(mac(0x99), mac(1), ip(1), ip(200), (1, 2)),
    );
    let Detail::Forwarding(f) = t.step(Stage::Forwarding).detail else {
        panic!()
    };
    assert!(!f.pinned);
    let chosen = f.uplink.expect("an uplink");
    assert_eq!(t.verdict.out_ports(), PortSet::single(chosen));
    assert!(t.text(Stage::Forwarding).ends_with(&format!(
        "uplink {} (chosen for this frame)",
        t.sw.port(chosen).unwrap().name
    )));
    // With both uplinks down, the trace says there is none.
    let mut plain = Switch::new(&spec, Timestamp(0)).unwrap();
    let mut traced = Switch::new(&spec, Timestamp(0)).unwrap();
    for sw in [&mut plain, &mut traced] {
        sw.set_link_up(UPLINK1, false, Timestamp(0)).unwrap();
        sw.set_link_up(UPLINK2, false, Timestamp(0)).unwrap();
    }
    let f = udp(mac(0x99), mac(1), ip(1), ip(200), (1, 2));
    let rx = IngressFrame {
        data: &f,
        tag: None,
    };
    let mut tr = Trace::new();
    let v = traced.process_traced(Timestamp(5), VM1, &rx, &mut tr);
    assert_eq!(v, plain.process(Timestamp(5), VM1, &rx));
    assert_eq!(v, Verdict::Drop(DropReason::NoUplink));
    let text = tr
        .explain(&traced)
        .into_iter()
        .find(|e| e.stage == "forwarding")
        .unwrap()
        .text;
    assert!(
        text.ends_with(
            "no usable uplink in this VLAN: it needs an uplink and none that carries the VLAN is up"
        ),
        "{text}"
    );
}

#[test]
fn uplink_frames_pass_the_reflection_filter_and_a_guest_mac_from_the_network_is_refused() {
    let spec = lab(|_| {});
    let t = trace(&spec, &[], UPLINK1, &eth(mac(1), mac(0x77), 0x0800, &[]));
    assert_eq!(t.out(), ["vm1"]);
    assert_eq!(
        t.text(Stage::ReflectionFilter),
        "52:54:00:00:00:77 learned on this uplink"
    );
    let t = trace(&spec, &[], UPLINK1, &eth(mac(2), mac(1), 0x0800, &[]));
    assert_eq!(t.verdict, Verdict::Drop(DropReason::Reflection));
    assert!(
        t.text(Stage::ReflectionFilter)
            .starts_with("52:54:00:00:00:01 is local to port vm1 (guest)")
    );
}

#[test]
fn storm_control_and_early_drops_are_explained() {
    let spec = lab(|s| {
        features(s, VM1).storm_control = Some(StormControlSpec {
            broadcast_pps: Some(1),
            ..Default::default()
        })
    });
    let bcast = eth(MacAddr::BROADCAST, mac(1), 0x0800, &[]);
    let t = trace(&spec, &[(VM1, bcast.clone())], VM1, &bcast);
    assert_eq!(t.verdict, Verdict::Drop(DropReason::StormControl));
    assert_eq!(
        t.text(Stage::StormControl),
        "broadcast over the port's limit of 1 frames/s: dropped"
    );
    let t = trace(
        &spec,
        &[],
        VM1,
        &eth(MacAddr([1, 0x80, 0xc2, 0, 0, 0]), mac(1), 0x0800, &[]),
    );
    assert_eq!(t.verdict, Verdict::Drop(DropReason::LinkLocalReserved));
    let t = trace(&spec, &[], VM1, &[0u8; 10]);
    assert_eq!(t.verdict, Verdict::Drop(DropReason::Truncated));
    assert_eq!(
        t.text(Stage::Parse),
        "shorter than its Ethernet (14 bytes) or 802.1Q (18 bytes) header"
    );
    let mut tagged = eth(mac(2), mac(1), 0x8100, &[0, 20, 8, 0]);
    tagged.truncate(60);
    let t = trace(&spec, &[], VM1, &tagged);
    assert_eq!(t.verdict, Verdict::Drop(DropReason::TaggedOnAccessPort));
    assert_eq!(
        t.text(Stage::Vlan),
        "802.1Q tag VID 20 PCP 0 on an access VLAN 10: refused"
    );
    // Not a port of the switch: one step, never a panic.
    let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();
    let mut tr = Trace::new();
    let rx = IngressFrame {
        data: &bcast,
        tag: None,
    };
    let v = sw.process_traced(Timestamp(0), PortId(99), &rx, &mut tr);
    assert_eq!(v, Verdict::Drop(DropReason::PortDown));
    assert_eq!(tr.steps().len(), 1);
    assert_eq!(tr.steps()[0].detail, Detail::NoSuchPort);
}

#[test]
fn a_trace_is_reused_without_leftovers() {
    let spec = lab(|_| {});
    let mut sw = Switch::new(&spec, Timestamp(0)).unwrap();
    let mut tr = Trace::new();
    let long = eth(mac(2), mac(1), 0x0800, &[]);
    let short = [0u8; 4];
    sw.process_traced(
        Timestamp(1),
        VM1,
        &IngressFrame {
            data: &long,
            tag: None,
        },
        &mut tr,
    );
    let n = tr.steps().len();
    sw.process_traced(
        Timestamp(2),
        VM1,
        &IngressFrame {
            data: &short,
            tag: None,
        },
        &mut tr,
    );
    assert_eq!(tr.steps().len(), 2, "port and parse only");
    assert!(n > 2);
    assert_eq!(tr.verdict, Some(Verdict::Drop(DropReason::Truncated)));
    assert_eq!(tr.lost(), 0);
}

// ---------------------------------------------------------------------------------
// Property: tracing is the pipeline.
// ---------------------------------------------------------------------------------

/// Everything a frame can change, in comparable form.
fn state(sw: &mut Switch, now: Timestamp) -> String {
    let mut s = String::new();
    for p in sw.ports() {
        s += &format!(
            "{} eff={:?} init={:?} err={:?} sec={:?} {:?}\n",
            p.name,
            p.effective_mac,
            p.initial_mac,
            p.err_disabled,
            p.secure,
            sw.counters(p.id)
        );
    }
    let mut macs = sw.mac_table().entries(now);
    macs.sort_by_key(|(v, m, _)| (*v, m.0));
    s += &format!("{macs:?}\n");
    for a in sw.mac_acls() {
        s += &format!("{} {:?}\n", a.spec.name, a.hits);
    }
    let mut b = sw.bindings();
    b.sort_by_key(|e| (e.vid, e.ip));
    s += &format!("{b:?}\n");
    let events: Vec<Event> = sw.drain_events().collect();
    s += &format!("{events:?} dropped={}\n", sw.events_dropped());
    s
}

#[test]
fn ra_guard_names_the_router_message_and_the_chain_it_could_not_read() {
    use portcullis_dataplane::trace::RaGuardNote;
    use portcullis_dataplane::wire::ipv6::{Chain, next_header as nh};
    use support::ipv6::*;
    let spec = lab(|s| {
        for p in [VM1, VM2] {
            features(s, p).ra_guard = Some(RaGuardSpec {
                trusted: p == VM2,
                mode: EnforceMode::Enforce,
            });
        }
    });
    let rogue = ra(ll(0xbad), mac(1));
    let t = trace(&spec, &[], VM1, &eth6(ALL_NODES_MAC, mac(1), &rogue));
    let drop = Outcome::Drop(DropReason::RaGuardRouterMessage);
    assert_eq!(t.step(Stage::RaGuard).outcome, drop);
    assert!(matches!(
        t.step(Stage::RaGuard).detail,
        Detail::RaGuard {
            note: RaGuardNote::Chain {
                chain: Chain::Upper { protocol: 58, .. },
                icmp: Some((134, 0)),
                ..
            },
            ..
        }
    ));
    assert_eq!(
        t.text(Stage::RaGuard),
        "a Router Advertisement from an untrusted port"
    );
    // The first fragment of an RA whose ICMPv6 header is in the second.
    let dst = with_exts(&rogue, &[pad_ext(nh::DESTINATION_OPTIONS, 0)]);
    let first = split(&dst, 1, 9).0;
    let t = trace(&spec, &[], VM1, &eth6(ALL_NODES_MAC, mac(1), &first));
    assert_eq!(
        t.step(Stage::RaGuard).outcome,
        Outcome::Drop(DropReason::Ipv6IncompleteChain)
    );
    assert_eq!(
        t.text(Stage::RaGuard),
        "a first fragment without the whole header chain (RFC 7112)"
    );
    // The router's port is trusted; an uplink without the guard says it is off.
    let router = ra(ll(2), mac(2));
    let t = trace(&spec, &[], VM2, &eth6(ALL_NODES_MAC, mac(2), &router));
    assert_eq!(t.step(Stage::RaGuard).outcome, Outcome::Skip);
    assert_eq!(t.text(Stage::RaGuard), "a trusted router port: not checked");
    assert_eq!(
        t.out(),
        ["uplink2", "vm1", "vm3"],
        "vm2 is pinned to uplink2"
    );
    let t = trace(
        &spec,
        &[],
        UPLINK1,
        &eth6(ALL_NODES_MAC, ROUTER_MAC, &router),
    );
    assert_eq!(t.text(Stage::RaGuard), "RA guard is off on this port");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tracing_is_the_pipeline(
        spec in arb_featured_spec(),
        frames in proptest::collection::vec((0usize..6, arb_stage_frame(), 0u64..400_000_000), 1..40),
    ) {
        let Ok(mut plain) = Switch::new(&spec, Timestamp(0)) else {
            return Ok(());
        };
        let mut traced = Switch::new(&spec, Timestamp(0)).unwrap();
        let mut tr = Trace::new();
        let mut now = Timestamp(0);
        for (p, data, dt) in &frames {
            now = Timestamp(now.0 + dt);
            let port = PortId((*p % spec.ports.len()) as u16);
            let rx = IngressFrame { data, tag: None };
            plain.tick(now);
            traced.tick(now);
            let v = plain.process(now, port, &rx);
            let t = traced.process_traced(now, port, &rx, &mut tr);
            prop_assert_eq!(v, t);
            if let Verdict::Hold(f, b) = v {
                let len = data.len();
                plain.release_held(port, &f, &b, len, true, now);
                traced.release_held(port, &f, &b, len, true, now);
            }
            // The steps agree with the verdict: a drop is the outcome of some step; a
            // forwarded frame was dropped by no stage (an outbound ACL refuses copies).
            match v {
                Verdict::Drop(r) => prop_assert!(
                    tr.steps().iter().any(|s| s.outcome == Outcome::Drop(r)),
                    "{:?} not in {:#?}", r, tr.steps()
                ),
                Verdict::Forward(_) | Verdict::Hold(..) => prop_assert!(
                    tr.steps().iter().all(|s| s.stage == Stage::MacAclOut
                        || !matches!(s.outcome, Outcome::Drop(_))),
                    "{:#?}", tr.steps()
                ),
            }
            // Every step explains itself.
            for e in tr.explain(&traced) {
                prop_assert!(!e.text.is_empty(), "{:?}", e);
            }
            prop_assert_eq!(tr.lost(), 0);
        }
        prop_assert_eq!(state(&mut plain, now), state(&mut traced, now));
    }
}
