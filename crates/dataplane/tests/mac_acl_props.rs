//! The compiled MAC ACL against its reference: for random ACLs (up to 300 rules, and
//! a few of up to MAX_ACL_RULES) and random keys, `CompiledMacAcl::evaluate` equals
//! `evaluate_linear` — same first matching rule, same action, implicit deny included.
//! Field values come from small pools so that rules overlap and keys match at every
//! depth; masks include 0, all-ones, the OUI and the group bit, and random ones.
//! Also: `evaluate` allocates nothing (a counting global allocator watches it).

use portcullis_dataplane::stages::mac_acl::{AclDecision, AclKey, CompiledMacAcl, evaluate_linear};
use portcullis_dataplane::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

mod support;

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

const MACS: [[u8; 6]; 6] = [
    [0x52, 0x54, 0x00, 0x00, 0x00, 0x01],
    [0x52, 0x54, 0x00, 0x00, 0x00, 0x02],
    [0x52, 0x54, 0x01, 0x00, 0x00, 0x01],
    [0x02, 0x00, 0x00, 0x00, 0x00, 0x01],
    [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01],
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
];
const MASKS: [[u8; 6]; 5] = [
    [0x00; 6],
    [0xff; 6],
    [0xff, 0xff, 0xff, 0x00, 0x00, 0x00],
    [0x01, 0x00, 0x00, 0x00, 0x00, 0x00],
    [0xff, 0xff, 0xff, 0xff, 0xff, 0xf0],
];
const ETHERTYPES: [u16; 4] = [0x0800, 0x0806, 0x86dd, 0x88cc];

fn arb_mac() -> impl Strategy<Value = MacAddr> {
    prop_oneof![
        6 => proptest::sample::select(&MACS[..]).prop_map(MacAddr),
        1 => any::<[u8; 6]>().prop_map(MacAddr),
    ]
}

fn arb_mask() -> impl Strategy<Value = MacAddr> {
    prop_oneof![
        5 => proptest::sample::select(&MASKS[..]).prop_map(MacAddr),
        1 => any::<[u8; 6]>().prop_map(MacAddr),
    ]
}

fn arb_ethertype() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => proptest::sample::select(&ETHERTYPES[..]),
        1 => any::<u16>(),
    ]
}

fn arb_vid() -> impl Strategy<Value = Vid> {
    prop_oneof![
        6 => 1u16..=4,
        1 => Just(4094u16),
        1 => Vid::MIN..=Vid::MAX,
    ]
    .prop_map(|v| Vid::new(v).unwrap())
}

fn arb_cos() -> impl Strategy<Value = u8> {
    prop_oneof![8 => 0u8..=7, 1 => any::<u8>()]
}

fn arb_match() -> impl Strategy<Value = MacMatch> {
    (arb_mac(), arb_mask()).prop_map(|(mac, mask)| MacMatch { mac, mask })
}

fn arb_rule() -> impl Strategy<Value = MacAclRule> {
    // Each field is set with probability 0.6, so a rule matches roughly one pool key
    // in twenty and first matches land deep in the list; a rule that sets nothing
    // gets an EtherType, except for the rare (0.5%) deliberate catch-all.
    (
        any::<bool>(),
        proptest::option::weighted(0.6, arb_match()),
        proptest::option::weighted(0.6, arb_match()),
        proptest::option::weighted(0.6, arb_ethertype()),
        proptest::option::weighted(0.6, arb_vid()),
        proptest::option::weighted(0.6, arb_cos()),
        proptest::bool::weighted(0.005),
        arb_ethertype(),
    )
        .prop_map(
            |(permit, src, dst, ethertype, vlan, cos, catch_all, fallback)| {
                let action = if permit {
                    AclAction::Permit
                } else {
                    AclAction::Deny
                };
                if catch_all {
                    return MacAclRule {
                        action,
                        src: None,
                        dst: None,
                        ethertype: None,
                        vlan: None,
                        cos: None,
                    };
                }
                let narrows = |m: &Option<MacMatch>| m.is_some_and(|m| m.mask != MacAddr::ZERO);
                let none = !narrows(&src)
                    && !narrows(&dst)
                    && ethertype.is_none()
                    && vlan.is_none()
                    && cos.is_none();
                MacAclRule {
                    action,
                    src,
                    dst,
                    ethertype: if none { Some(fallback) } else { ethertype },
                    vlan,
                    cos,
                }
            },
        )
}

fn arb_acl(rules: std::ops::Range<usize>) -> impl Strategy<Value = MacAclSpec> {
    proptest::collection::vec(arb_rule(), rules).prop_map(|rules| MacAclSpec {
        name: "prop".into(),
        rules,
    })
}

fn arb_key() -> impl Strategy<Value = AclKey> {
    (arb_mac(), arb_mac(), arb_ethertype(), arb_vid(), arb_cos()).prop_map(
        |(src, dst, ethertype, vid, cos)| AclKey {
            src,
            dst,
            ethertype,
            vid,
            cos,
        },
    )
}

/// A key that satisfies `rule`: its set fields, with the free bits and fields from
/// `fill`. Such keys match at every depth, not only where the pools collide.
fn key_for(rule: &MacAclRule, fill: &AclKey) -> AclKey {
    let fit = |m: Option<MacMatch>, free: MacAddr| {
        m.map_or(free, |m| {
            let (mac, mask, free) = (m.mac.to_u64(), m.mask.to_u64(), free.to_u64());
            let v = (mac & mask) | (free & !mask);
            MacAddr::from_slice(&v.to_be_bytes()[2..])
        })
    };
    AclKey {
        src: fit(rule.src, fill.src),
        dst: fit(rule.dst, fill.dst),
        ethertype: rule.ethertype.unwrap_or(fill.ethertype),
        vid: rule.vlan.unwrap_or(fill.vid),
        cos: rule.cos.unwrap_or(fill.cos),
    }
}

fn agree(spec: &MacAclSpec, compiled: &CompiledMacAcl, key: &AclKey) -> AclDecision {
    let want = evaluate_linear(spec, key);
    assert_eq!(compiled.evaluate(key), want, "key {key:?}\nacl {spec:#?}");
    want
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn compiled_equals_linear(
        spec in arb_acl(0..300),
        keys in proptest::collection::vec(arb_key(), 1..48),
    ) {
        let compiled = CompiledMacAcl::compile(&spec);
        prop_assert_eq!(compiled.len(), spec.rules.len());
        for k in &keys {
            agree(&spec, &compiled, k);
        }
        // Keys aimed at each rule: the first match is that rule or an earlier one.
        for (i, r) in spec.rules.iter().enumerate() {
            let k = key_for(r, &keys[i % keys.len()]);
            let d = agree(&spec, &compiled, &k);
            prop_assert!(d.rule.is_some_and(|m| m as usize <= i));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn compiled_equals_linear_on_large_acls(
        spec in arb_acl(3000..MAX_ACL_RULES + 1),
        keys in proptest::collection::vec(arb_key(), 64),
    ) {
        let compiled = CompiledMacAcl::compile(&spec);
        for k in &keys {
            agree(&spec, &compiled, k);
        }
        for (i, r) in spec.rules.iter().enumerate().step_by(7) {
            agree(&spec, &compiled, &key_for(r, &keys[i % keys.len()]));
        }
    }
}

/// The generator is worth its salt: keys aimed at rules find first matches deep in
/// long ACLs, both actions occur, and so does the implicit deny.
#[test]
fn generated_acls_match_deep() {
    let mut rng = proptest::test_runner::TestRunner::deterministic();
    let (mut deepest, mut permits, mut denies, mut implicit) = (0, 0, 0, 0);
    for _ in 0..20 {
        let spec = arb_acl(200..300).new_tree(&mut rng).unwrap().current();
        let fill = arb_key().new_tree(&mut rng).unwrap().current();
        for r in &spec.rules {
            let d = evaluate_linear(&spec, &key_for(r, &fill));
            deepest = deepest.max(d.rule.unwrap_or(0));
            let k = arb_key().new_tree(&mut rng).unwrap().current();
            match evaluate_linear(&spec, &k) {
                AclDecision { rule: None, .. } => implicit += 1,
                AclDecision {
                    action: AclAction::Permit,
                    ..
                } => permits += 1,
                AclDecision {
                    action: AclAction::Deny,
                    ..
                } => denies += 1,
            }
        }
    }
    eprintln!(
        "deepest {deepest}, random keys: {permits} permit, {denies} deny, {implicit} implicit deny"
    );
    assert!(deepest > 150, "deepest first match {deepest}");
    assert!(
        permits > 0 && denies > 0 && implicit > 0,
        "{permits} {denies} {implicit}"
    );
}

#[test]
fn evaluate_does_not_allocate() {
    let mut rng = proptest::test_runner::TestRunner::deterministic();
    let spec = arb_acl(900..1000).new_tree(&mut rng).unwrap().current();
    let keys: Vec<AclKey> = (0..2000)
        .map(|_| arb_key().new_tree(&mut rng).unwrap().current())
        .chain(spec.rules.iter().map(|r| {
            key_for(
                r,
                &AclKey {
                    src: MacAddr(MACS[0]),
                    dst: MacAddr(MACS[5]),
                    ethertype: 0x0800,
                    vid: Vid::new(1).unwrap(),
                    cos: 0,
                },
            )
        }))
        .collect();
    let compiled = CompiledMacAcl::compile(&spec);
    let (permits, allocs) = support::allocations_in(|| {
        keys.iter()
            .filter(|k| compiled.evaluate(k).action == AclAction::Permit)
            .count()
    });
    assert_eq!(allocs, 0, "evaluate allocated");
    assert!(
        permits > 0 && permits < keys.len(),
        "{permits} of {} permitted; {} rules",
        keys.len(),
        spec.rules.len()
    );
}
