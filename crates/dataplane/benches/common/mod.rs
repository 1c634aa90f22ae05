//! The bench model shared by `pipeline`, `workers` and `security`: 64 ports (62 guests + 2
//! uplinks) on 4 VLANs, 64-byte frames, ~90% known unicast / 10% broadcast.

#![allow(dead_code)]

use portcullis_dataplane::*;

pub const GUESTS: usize = 62;
pub const UPLINKS: usize = 2;
pub const VLANS: u16 = 4;
pub const BATCH: usize = 256;

pub fn mac(i: usize) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8])
}

/// A 10/50/100/1000-rule ACL that the bench traffic walks to the end of: deny rules
/// for other hosts and other EtherTypes, then a final permit.
pub fn acl(rules: usize) -> MacAclSpec {
    let mut r: Vec<MacAclRule> = (0..rules.saturating_sub(1))
        .map(|i| MacAclRule {
            action: AclAction::Deny,
            src: (i % 2 == 0).then_some(MacMatch {
                mac: MacAddr([0x02, 0, 0, 0, (i >> 8) as u8, i as u8]),
                mask: MacAddr([0xff; 6]),
            }),
            dst: None,
            ethertype: (i % 2 == 1).then_some(0x9000 + i as u16),
            vlan: None,
            cos: None,
        })
        .collect();
    r.push(MacAclRule {
        action: AclAction::Permit,
        src: None,
        dst: None,
        ethertype: None,
        vlan: None,
        cos: None,
    });
    MacAclSpec {
        name: format!("acl{rules}"),
        rules: r,
    }
}

/// Port security as the benches set it on every guest: one MAC, shutdown on violation.
pub fn port_security_one_mac() -> PortSecuritySpec {
    PortSecuritySpec {
        max_macs: 1,
        violation: Violation::Shutdown,
        sticky: false,
        aging: SecureAging::None,
        aging_secs: 0,
        static_macs: vec![],
        sticky_macs: vec![],
    }
}

/// `secure_acl`: port security (max 1 MAC, shutdown) on every guest and an inbound
/// ACL of that many rules on every port.
pub fn spec(policy: Policy, secure_acl: Option<usize>) -> SwitchSpec {
    let security = SecurityPolicy {
        promiscuous: policy,
        mac_changes: policy,
        forged_transmits: policy,
    };
    let features = |guest: bool| PortFeatures {
        port_security: (guest && secure_acl.is_some()).then(port_security_one_mac),
        mac_acl_in: secure_acl.map(|n| format!("acl{n}")),
        ..Default::default()
    };
    // promiscuous accept would copy every unicast to every port: the "off" run keeps
    // promiscuous reject on the guests and turns the MAC policing off.
    let guest_security = SecurityPolicy {
        promiscuous: Policy::Reject,
        ..security
    };
    let acls = secure_acl.map(acl).into_iter().collect();
    switch_spec(security, guest_security, features, acls)
}

/// The bench switch: `UPLINKS` trunks carrying the `VLANS` VLANs 10, 20, … and
/// `GUESTS` guest ports, guest g with MAC [`mac`]`(g)` on access VLAN
/// `(g % VLANS + 1) × 10`; `features(guest)` for each port.
pub fn switch_spec(
    uplink_security: SecurityPolicy,
    guest_security: SecurityPolicy,
    features: impl Fn(bool) -> PortFeatures,
    mac_acls: Vec<MacAclSpec>,
) -> SwitchSpec {
    let vids: Vec<Vid> = (1..=VLANS).map(|v| Vid::new(v * 10).unwrap()).collect();
    let mut ports: Vec<PortSpec> = (0..UPLINKS)
        .map(|u| PortSpec {
            name: format!("uplink{u}"),
            role: PortRole::Uplink,
            vlan: VlanMode::Trunk {
                allowed: VlanSet::from_vids(vids.clone()),
                native: None,
            },
            security: uplink_security,
            initial_mac: None,
            features: features(false),
        })
        .collect();
    for g in 0..GUESTS {
        ports.push(PortSpec {
            name: format!("vm{g}"),
            role: PortRole::Guest,
            vlan: VlanMode::Access(vids[g % VLANS as usize]),
            security: guest_security,
            initial_mac: Some(mac(g)),
            features: features(true),
        });
    }
    SwitchSpec {
        name: "bench".into(),
        mac_table_size: 4096,
        mac_aging_secs: 300,
        ports,
        mac_acls,
        max_bindings: DEFAULT_MAX_BINDINGS,
        host_table_size: portcullis_dataplane::DEFAULT_HOST_TABLE_SIZE,
        overlay: None,
        static_bindings: vec![],
        arp_acls: vec![],
    }
}

/// (ingress port, frame bytes): guest g sends to guest g+4 (same VLAN) or broadcasts.
pub fn traffic() -> Vec<(PortId, Vec<u8>)> {
    (0..BATCH)
        .map(|i| {
            let g = i % GUESTS;
            let dst = if i % 10 == 9 {
                MacAddr::BROADCAST
            } else {
                mac((g + VLANS as usize) % GUESTS)
            };
            let mut f = Vec::with_capacity(64);
            f.extend_from_slice(&dst.0);
            f.extend_from_slice(&mac(g).0);
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            f.resize(60, 0);
            (PortId((UPLINKS + g) as u16), f)
        })
        .collect()
}

/// A batch of the bench traffic: (ingress port, frame bytes).
pub type Frames = [(PortId, Vec<u8>)];

/// One batch through the switch, `process` in a loop. Never inlined, so that
/// callgrind can count it alone (`--toggle-collect='*run_batch*'`, see
/// docs/performance.md).
#[inline(never)]
pub fn run_batch(sw: &mut Switch, frames: &Frames, now: Timestamp) {
    for (port, data) in frames {
        std::hint::black_box(sw.process(now, *port, &IngressFrame { data, tag: None }));
    }
}

/// The batch as the daemon hands it over: per ingress port, its frames in order.
pub type PortBatches = Vec<(PortId, Vec<usize>)>;

pub fn by_port(frames: &Frames) -> PortBatches {
    let mut out: PortBatches = Vec::new();
    for (i, (port, _)) in frames.iter().enumerate() {
        match out.iter_mut().find(|(p, _)| p == port) {
            Some((_, v)) => v.push(i),
            None => out.push((*port, vec![i])),
        }
    }
    out
}

/// One batch through `Switch::process_batch`, the daemon's entry point (runtime.rs),
/// one call per ingress port; `verdicts` is reused, as the daemon does. Never
/// inlined (callgrind: `--toggle-collect='*run_batch_daemon*'`).
#[inline(never)]
pub fn run_batch_daemon(
    sw: &mut Switch,
    frames: &Frames,
    ports: &PortBatches,
    verdicts: &mut Vec<Verdict>,
    now: Timestamp,
) {
    for (port, idx) in ports {
        let rx = idx.iter().map(|&i| IngressFrame {
            data: &frames[i].1,
            tag: None,
        });
        sw.process_batch(now, *port, rx, verdicts);
        std::hint::black_box(&verdicts);
    }
}

/// Every frame forwarded, nothing dropped, nothing that observe mode would drop.
pub fn assert_no_drops(sw: &Switch, label: &str) {
    let mut dropped = 0;
    for p in sw.ports() {
        let c = sw.counters(p.id).unwrap();
        dropped += c.rx_dropped() + c.tx_dropped() + c.observed.iter().sum::<u64>();
    }
    assert_eq!(dropped, 0, "{label}: the bench traffic is all legitimate");
}

/// Checks the verdicts of one batch on `sw` before timing anything: every frame
/// forwarded somewhere, nothing dropped or observed.
pub fn check_all_forwarded(mut sw: Switch, label: &str, frames: &Frames) {
    for (port, data) in frames {
        let verdict = sw.process(Timestamp(1), *port, &IngressFrame { data, tag: None });
        assert!(
            matches!(verdict, Verdict::Forward(ref f) if !f.out.is_empty()),
            "{label}: {verdict:?}"
        );
    }
    assert_no_drops(&sw, label);
}

/// Through `process_batch` (the daemon's path), round-robin over the variants (the
/// starting variant rotates each round), many short cells of `batches` batches
/// each. On a shared machine most cells of a long run are preempted at some point;
/// short cells leave most of them clean, and the 10th percentile per variant
/// estimates the uncontended cost. The cost against the first variant is also given
/// per round (the same few milliseconds of load), as a median with its
/// interquartile range. Skipped under `--profile-time`; tiny without `--bench`.
pub fn interleaved(title: &str, frames: &Frames, mut switches: Vec<(&str, Switch)>) {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--profile-time") {
        return; // profiling one variant under perf: no comparison wanted
    }
    let full = args.iter().any(|a| a == "--bench");
    let (rounds, batches) = if full { (401, 200) } else { (3, 10) };
    let n = switches.len();
    let ports = by_port(frames);
    let mut verdicts = Vec::with_capacity(BATCH);
    let mut ns_per_frame: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); n];
    let mut t = 0u64;
    for r in 0..rounds {
        for k in 0..n {
            let i = (r + k) % n;
            let sw = &mut switches[i].1;
            let start = std::time::Instant::now();
            for _ in 0..batches {
                t += 1000;
                run_batch_daemon(sw, frames, &ports, &mut verdicts, Timestamp(t));
            }
            let ns = start.elapsed().as_nanos() as f64;
            ns_per_frame[i].push(ns / (batches * frames.len()) as f64);
        }
    }
    for (label, sw) in &switches {
        assert_no_drops(sw, label);
    }
    let pct = |v: &[f64], p: usize| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() * p / 100]
    };
    println!();
    println!(
        "{title}, interleaved, process_batch: {rounds} rounds x {batches} batches x {} frames per variant",
        frames.len()
    );
    println!(
        "{:<20} {:>9} {:>9} {:>9} {:>9} {:>22}",
        "variant", "ns p10", "ns p50", "Mpps p10", "vs (a)", "vs (a) per round p50"
    );
    let a10 = pct(&ns_per_frame[0], 10);
    for (i, (label, _)) in switches.iter().enumerate() {
        let (p10, p50) = (pct(&ns_per_frame[i], 10), pct(&ns_per_frame[i], 50));
        let cost: Vec<f64> = ns_per_frame[i]
            .iter()
            .zip(&ns_per_frame[0])
            .map(|(x, a)| (x / a - 1.0) * 100.0)
            .collect();
        println!(
            "{:<20} {:>9.1} {:>9.1} {:>9.2} {:>+8.1}% {:>+7.1}% [{:+.1}..{:+.1}]",
            label,
            p10,
            p50,
            1e3 / p10,
            (p10 / a10 - 1.0) * 100.0,
            pct(&cost, 50),
            pct(&cost, 25),
            pct(&cost, 75),
        );
    }
}
