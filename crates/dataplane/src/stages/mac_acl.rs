//! MAC ACLs (DESIGN.md §3): an ordered list of permit/deny rules on source and
//! destination MAC (each under a mask), EtherType (the one after the VLAN tag), VLAN
//! and CoS (802.1p PCP, 0 for untagged frames). The first rule whose set fields all
//! match decides; a frame no rule matches is denied (the implicit deny of a bound ACL).
//!
//! This module owns the compiled form of one ACL, [`CompiledMacAcl`], built on the
//! control path from a checked [`MacAclSpec`], the per-frame decision, and
//! `acl_key`, the key a frame presents to an ACL. It does not bind ACLs to ports or
//! count: the pipeline (inbound) and forwarding (outbound) do.
//!
//! Invariant: for every spec `s` and every key `k`,
//! `CompiledMacAcl::compile(&s).evaluate(&k) == evaluate_linear(&s, &k)` — the same
//! first matching rule and the same action, the implicit deny included. `evaluate`
//! does not allocate, lock or panic; an internal inconsistency would deny (fail closed).
//!
//! # Algorithm
//!
//! The bit-vector scheme of T. V. Lakshman and D. Stiliadis, "High-speed
//! policy-based packet forwarding using efficient multi-dimensional range matching",
//! ACM SIGCOMM 1998. Rule `i` is bit `i` of a bitset of `ceil(n / 64)` u64 words. For
//! each field, compilation precomputes, for every value some rule names, the bitset of
//! the rules that field value satisfies (the rules naming that value plus the rules
//! that leave the field unset); a value no rule names gets the wildcard bitset. A
//! frame's decision is the lowest set bit of the AND of its five bitsets: a rule
//! matches iff every field matches, and rule order is bit order.
//!
//! - CoS: a 256-entry table (any `u8`, so even an unchecked CoS above 7 is exact).
//! - VLAN: a 4096-entry table indexed by the VID.
//! - EtherType: an `FxHashMap` from the values rules name; a miss is the wildcard.
//! - Source and destination MAC are masked matches: the rules are grouped by distinct
//!   mask ("tuple space search", Srinivasan, Suri and Varghese, SIGCOMM 1999), each
//!   group an `FxHashMap` from `mac & mask` to a bitset. The field's bitset is the OR
//!   of the hits of every group (a rule with mask 0 is a wildcard). One hit — the
//!   usual case — is used in place; two or more are ORed into a stack array.
//!
//! Every bitset lives once in one flat pool (identical bitsets are shared), addressed
//! by word offset; the all-zero bitset has its own offset so that a CoS, VLAN or
//! EtherType no rule accepts denies without touching the pool.
//!
//! Cost per frame: three table or hash lookups, one hash lookup per distinct mask of
//! each MAC field (ACLs use a handful: host, OUI, group bit), and at most
//! `ceil(n / 64)` five-way word ANDs, stopping at the first non-zero word — against up
//! to `n` rule comparisons for the linear scan. The mask count is the one term not
//! bounded by a constant: an ACL giving every rule its own mask degrades the MAC
//! lookups to one probe per rule, as tuple space search does. Nothing on the frame
//! path allocates: a union of hits uses a 512-byte stack array per MAC field, built
//! only when two groups hit. Memory is the price: up to
//! `d · n² / 8` bytes for `d` fields of all-distinct values in the worst case (about
//! 8 MiB at [`MAX_ACL_RULES`]), far less for real ACLs, whose values repeat.

use crate::frame::FrameView;
use crate::spec::{AclAction, MAX_ACL_RULES, MacAclRule, MacAclSpec, MacMatch};
use crate::types::{MacAddr, Vid};
use rustc_hash::FxHashMap;
use std::fmt;

/// Bitset words of the largest ACL.
const MAX_WORDS: usize = MAX_ACL_RULES / 64;
/// Entries of the VLAN table: every 12-bit VID.
const VLAN_TABLE: usize = 4096;
/// Entries of the CoS table: every `u8`.
const COS_TABLE: usize = 256;

/// The fields of a frame an ACL looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclKey {
    pub src: MacAddr,
    pub dst: MacAddr,
    /// The EtherType after the VLAN tag (or the 802.3 length for LLC frames).
    pub ethertype: u16,
    /// The frame's VLAN (for an untagged frame, the VLAN the port puts it in).
    pub vid: Vid,
    /// 802.1p priority (PCP) 0..=7; 0 for untagged frames.
    pub cos: u8,
}

/// The fields a MAC ACL looks at.
#[inline]
pub(crate) fn acl_key(view: &FrameView, vid: Vid) -> AclKey {
    AclKey {
        src: view.src,
        dst: view.dst,
        ethertype: view.ethertype,
        vid,
        cos: view.outer.map_or(0, |t| t.pcp_dei >> 1),
    }
}

/// The outcome: the index of the first matching rule (None = the implicit deny) and the action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AclDecision {
    pub rule: Option<u32>,
    pub action: AclAction,
}

const IMPLICIT_DENY: AclDecision = AclDecision {
    rule: None,
    action: AclAction::Deny,
};

/// A MAC ACL compiled for classification in (nearly) constant time; see the module
/// documentation. Immutable once built: a rule change compiles a new one.
#[derive(Clone)]
pub struct CompiledMacAcl {
    name: String,
    actions: Box<[AclAction]>,
    sets: Sets,
    /// Offset of the all-zero bitset.
    empty: u32,
    src: MacField,
    dst: MacField,
    /// EtherType → bitset; a miss is `ethertype_any`.
    ethertype: FxHashMap<u16, u32>,
    ethertype_any: u32,
    /// VID → bitset, [`VLAN_TABLE`] entries.
    vlan: Box<[u32]>,
    /// CoS → bitset, [`COS_TABLE`] entries.
    cos: Box<[u32]>,
}

/// Every distinct bitset of an ACL, `words` u64 each, end to end.
#[derive(Clone)]
struct Sets {
    words: usize,
    pool: Box<[u64]>,
}

impl Sets {
    /// The bitset at `off`. Offsets come from compilation and are always in range;
    /// were one not, the empty slice makes the decision an implicit deny.
    #[inline]
    fn get(&self, off: u32) -> &[u64] {
        let off = off as usize;
        self.pool.get(off..off + self.words).unwrap_or(&[])
    }
}

/// One masked MAC field: rules grouped by mask.
#[derive(Clone)]
struct MacField {
    /// Rules that leave the field unset or mask it out entirely.
    any: u32,
    groups: Box<[MaskGroup]>,
}

/// The rules of one field sharing one non-zero mask.
#[derive(Clone)]
struct MaskGroup {
    mask: u64,
    /// `mac & mask` → the rules of this group with that value, plus the field's
    /// wildcard rules.
    sets: FxHashMap<u64, u32>,
}

impl MacField {
    /// The bitset of the rules `mac` satisfies: the union of every group's hit, or
    /// the wildcard rules if no group hits. `buf` holds a union of several hits.
    #[inline]
    fn resolve<'a>(
        &self,
        sets: &'a Sets,
        mac: MacAddr,
        buf: &'a mut Option<[u64; MAX_WORDS]>,
    ) -> &'a [u64] {
        let mac = mac.to_u64();
        let mut hit = None;
        for g in self.groups.iter() {
            let Some(&off) = g.sets.get(&(mac & g.mask)) else {
                continue;
            };
            match hit {
                None => hit = Some(off),
                Some(first) => {
                    let acc = buf.get_or_insert_with(|| {
                        let mut a = [0; MAX_WORDS];
                        for (a, b) in a.iter_mut().zip(sets.get(first)) {
                            *a = *b;
                        }
                        a
                    });
                    for (a, b) in acc.iter_mut().zip(sets.get(off)) {
                        *a |= *b;
                    }
                }
            }
        }
        match (buf, hit) {
            (Some(acc), _) => acc.get(..sets.words).unwrap_or(&[]),
            (None, Some(off)) => sets.get(off),
            (None, None) => sets.get(self.any),
        }
    }
}

impl CompiledMacAcl {
    /// Compiles a checked spec (≤ MAX_ACL_RULES rules). Allocates; control path only.
    ///
    /// # Panics
    ///
    /// If the spec holds more than [`MAX_ACL_RULES`] rules, which
    /// [`crate::SwitchSpec::check`] refuses.
    pub fn compile(spec: &MacAclSpec) -> CompiledMacAcl {
        let rules = &spec.rules;
        assert!(
            rules.len() <= MAX_ACL_RULES,
            "MAC ACL {:?}: {} rules; at most {MAX_ACL_RULES}",
            spec.name,
            rules.len()
        );
        let mut b = Builder::new(rules.len());
        let empty = b.intern(&b.zero());

        let (cos_any, cos_sets) = b.exact_field(rules, |r| r.cos);
        let mut cos = vec![cos_any; COS_TABLE];
        for (c, off) in cos_sets {
            cos[usize::from(c)] = off;
        }
        let (vlan_any, vlan_sets) = b.exact_field(rules, |r| r.vlan.map(Vid::get));
        let mut vlan = vec![vlan_any; VLAN_TABLE];
        for (v, off) in vlan_sets {
            // A Vid is 1..=4094, inside the table.
            if let Some(slot) = vlan.get_mut(usize::from(v)) {
                *slot = off;
            }
        }
        let (ethertype_any, ethertype) = b.exact_field(rules, |r| r.ethertype);
        let src = b.mac_field(rules, |r| r.src);
        let dst = b.mac_field(rules, |r| r.dst);

        CompiledMacAcl {
            name: spec.name.clone(),
            actions: rules.iter().map(|r| r.action).collect(),
            sets: Sets {
                words: b.words,
                pool: b.pool.into_boxed_slice(),
            },
            empty,
            src,
            dst,
            ethertype: ethertype.into_iter().collect(),
            ethertype_any,
            vlan: vlan.into_boxed_slice(),
            cos: cos.into_boxed_slice(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.actions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The decision for one frame. MUST NOT allocate, lock or panic; deterministic.
    #[inline]
    pub fn evaluate(&self, key: &AclKey) -> AclDecision {
        let cos = self
            .cos
            .get(usize::from(key.cos))
            .copied()
            .unwrap_or(self.empty);
        let vlan = self
            .vlan
            .get(usize::from(key.vid.get()))
            .copied()
            .unwrap_or(self.empty);
        let ethertype = self
            .ethertype
            .get(&key.ethertype)
            .copied()
            .unwrap_or(self.ethertype_any);
        if cos == self.empty || vlan == self.empty || ethertype == self.empty {
            return IMPLICIT_DENY;
        }
        let sets = &self.sets;
        let (mut src_buf, mut dst_buf) = (None, None);
        let src = self.src.resolve(sets, key.src, &mut src_buf);
        let dst = self.dst.resolve(sets, key.dst, &mut dst_buf);
        let words = src
            .iter()
            .zip(dst)
            .zip(sets.get(ethertype))
            .zip(sets.get(vlan))
            .zip(sets.get(cos));
        for (w, ((((s, d), e), v), c)) in words.enumerate() {
            let m = s & d & e & v & c;
            if m != 0 {
                let rule = w * 64 + m.trailing_zeros() as usize;
                return match self.actions.get(rule) {
                    Some(&action) => AclDecision {
                        rule: Some(rule as u32),
                        action,
                    },
                    None => IMPLICIT_DENY,
                };
            }
        }
        IMPLICIT_DENY
    }
}

impl fmt::Debug for CompiledMacAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let distinct = self
            .sets
            .pool
            .len()
            .checked_div(self.sets.words)
            .unwrap_or(0);
        f.debug_struct("CompiledMacAcl")
            .field("name", &self.name)
            .field("rules", &self.actions.len())
            .field("words", &self.sets.words)
            .field("distinct_bitsets", &distinct)
            .field("src_masks", &self.src.groups.len())
            .field("dst_masks", &self.dst.groups.len())
            .field("ethertypes", &self.ethertype.len())
            .finish_non_exhaustive()
    }
}

/// Builds the bitsets of one ACL and interns them in the pool.
struct Builder {
    words: usize,
    pool: Vec<u64>,
    index: FxHashMap<Box<[u64]>, u32>,
}

impl Builder {
    fn new(rules: usize) -> Builder {
        Builder {
            words: rules.div_ceil(64),
            pool: Vec::new(),
            index: FxHashMap::default(),
        }
    }

    fn zero(&self) -> Vec<u64> {
        vec![0; self.words]
    }

    /// The pool offset of `set`, added if it is new.
    fn intern(&mut self, set: &[u64]) -> u32 {
        if let Some(&off) = self.index.get(set) {
            return off;
        }
        let off = u32::try_from(self.pool.len()).expect("ACL bitset pool beyond 4 G words");
        self.pool.extend_from_slice(set);
        self.index.insert(set.into(), off);
        off
    }

    /// For a field matched exactly: the wildcard bitset (rules leaving it unset) and,
    /// for each value some rule names, the bitset of that value, in first-use order.
    fn exact_field<T: Copy + Eq + std::hash::Hash>(
        &mut self,
        rules: &[MacAclRule],
        field: impl Fn(&MacAclRule) -> Option<T>,
    ) -> (u32, Vec<(T, u32)>) {
        let mut any = self.zero();
        for (i, r) in rules.iter().enumerate() {
            if field(r).is_none() {
                set_bit(&mut any, i);
            }
        }
        let mut values = Values::default();
        for (i, r) in rules.iter().enumerate() {
            if let Some(v) = field(r) {
                values.add(v, i, &any);
            }
        }
        let any_off = self.intern(&any);
        let values = values.intern(self);
        (any_off, values)
    }

    /// For a masked MAC field: the wildcard bitset and one hash per distinct mask.
    fn mac_field(
        &mut self,
        rules: &[MacAclRule],
        field: impl Fn(&MacAclRule) -> Option<MacMatch>,
    ) -> MacField {
        let masked = |r: &MacAclRule| field(r).filter(|m| m.mask.to_u64() != 0);
        let mut any = self.zero();
        for (i, r) in rules.iter().enumerate() {
            if masked(r).is_none() {
                set_bit(&mut any, i);
            }
        }
        // Groups in first-use order, values in first-use order within each.
        let mut groups: Vec<(u64, Values<u64>)> = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let Some(m) = masked(r) else { continue };
            let mask = m.mask.to_u64();
            let g = match groups.iter().position(|g| g.0 == mask) {
                Some(g) => g,
                None => {
                    groups.push((mask, Values::default()));
                    groups.len() - 1
                }
            };
            groups[g].1.add(m.mac.to_u64() & mask, i, &any);
        }
        MacField {
            any: self.intern(&any),
            groups: groups
                .into_iter()
                .map(|(mask, values)| MaskGroup {
                    mask,
                    sets: values.intern(self).into_iter().collect(),
                })
                .collect(),
        }
    }
}

/// The bitsets of the values of one field (or mask group), built rule by rule.
struct Values<T> {
    /// The values in first-use order, so that the pool layout is deterministic.
    order: Vec<T>,
    sets: FxHashMap<T, Vec<u64>>,
}

impl<T> Default for Values<T> {
    fn default() -> Self {
        Values {
            order: Vec::new(),
            sets: FxHashMap::default(),
        }
    }
}

impl<T: Copy + Eq + std::hash::Hash> Values<T> {
    /// Rule `rule` names `value`; a value's bitset starts as the wildcard rules `any`.
    fn add(&mut self, value: T, rule: usize, any: &[u64]) {
        let set = self.sets.entry(value).or_insert_with(|| {
            self.order.push(value);
            any.to_vec()
        });
        set_bit(set, rule);
    }

    /// Each value with the pool offset of its bitset.
    fn intern(self, b: &mut Builder) -> Vec<(T, u32)> {
        let Values { order, sets } = self;
        order
            .into_iter()
            .map(|v| (v, b.intern(&sets[&v])))
            .collect()
    }
}

fn set_bit(set: &mut [u64], i: usize) {
    set[i / 64] |= 1 << (i % 64);
}

/// Whether every field `rule` sets matches `key`.
#[inline]
fn rule_matches(rule: &MacAclRule, key: &AclKey) -> bool {
    rule.src.is_none_or(|m| m.matches(key.src))
        && rule.dst.is_none_or(|m| m.matches(key.dst))
        && rule.ethertype.is_none_or(|e| e == key.ethertype)
        && rule.vlan.is_none_or(|v| v == key.vid)
        && rule.cos.is_none_or(|c| c == key.cos)
}

/// The obvious reference: first rule in order whose fields all match. Used by tests and as documentation of the semantics.
pub fn evaluate_linear(spec: &MacAclSpec, key: &AclKey) -> AclDecision {
    spec.rules
        .iter()
        .enumerate()
        .find(|(_, r)| rule_matches(r, key))
        .map_or(IMPLICIT_DENY, |(i, r)| AclDecision {
            rule: Some(i as u32),
            action: r.action,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameView, IngressFrame};
    use AclAction::{Deny, Permit};

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }
    fn vid(v: u16) -> Vid {
        Vid::new(v).unwrap()
    }
    fn host(s: &str) -> Option<MacMatch> {
        Some(MacMatch {
            mac: mac(s),
            mask: MacAddr::BROADCAST,
        })
    }
    fn masked(m: &str, mask: &str) -> Option<MacMatch> {
        Some(MacMatch {
            mac: mac(m),
            mask: mac(mask),
        })
    }
    /// A rule that matches everything, to refine with struct update syntax.
    fn any(action: AclAction) -> MacAclRule {
        MacAclRule {
            action,
            src: None,
            dst: None,
            ethertype: None,
            vlan: None,
            cos: None,
        }
    }
    fn acl(rules: Vec<MacAclRule>) -> MacAclSpec {
        MacAclSpec {
            name: "test-acl".into(),
            rules,
        }
    }

    /// The key of a frame given as bytes, received on a port whose untagged VLAN is
    /// `port_vid`: as the pipeline builds it (PCP of the tag, else CoS 0).
    fn key_of(bytes: &[u8], port_vid: u16) -> AclKey {
        let v = FrameView::parse(&IngressFrame {
            data: bytes,
            tag: None,
        })
        .unwrap();
        let (vid, cos) = match v.outer {
            Some(t) if t.vid != 0 => (t.vid, t.pcp_dei >> 1),
            Some(t) => (port_vid, t.pcp_dei >> 1),
            None => (port_vid, 0),
        };
        AclKey {
            src: v.src,
            dst: v.dst,
            ethertype: v.ethertype,
            vid: Vid::new(vid).unwrap(),
            cos,
        }
    }

    /// Both evaluators, which must agree.
    fn decide(spec: &MacAclSpec, key: &AclKey) -> AclDecision {
        let compiled = CompiledMacAcl::compile(spec).evaluate(key);
        assert_eq!(compiled, evaluate_linear(spec, key), "{spec:?} {key:?}");
        compiled
    }
    fn hit(rule: u32, action: AclAction) -> AclDecision {
        AclDecision {
            rule: Some(rule),
            action,
        }
    }

    /// ARP request, broadcast, untagged, from 52:54:00:12:34:56.
    const ARP_UNTAGGED: [u8; 14] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06,
    ];
    /// IPv4 unicast 52:54:00:12:34:56 → 52:54:00:ab:cd:ef, tagged VLAN 10, PCP 5.
    const IPV4_VLAN10_PCP5: [u8; 18] = [
        0x52, 0x54, 0x00, 0xab, 0xcd, 0xef, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x81, 0x00, 0xa0,
        0x0a, 0x08, 0x00,
    ];
    /// IPv6 multicast from another OUI, 02:00:00:00:00:09 → 33:33:00:00:00:01, untagged.
    const IPV6_MCAST: [u8; 14] = [
        0x33, 0x33, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x09, 0x86, 0xdd,
    ];
    /// LLDP to the nearest-bridge group address, untagged.
    const LLDP: [u8; 14] = [
        0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x88, 0xcc,
    ];

    #[test]
    fn keys_from_fixtures() {
        let k = key_of(&IPV4_VLAN10_PCP5, 1);
        assert_eq!(k.src, mac("52:54:00:12:34:56"));
        assert_eq!(k.dst, mac("52:54:00:ab:cd:ef"));
        assert_eq!((k.ethertype, k.vid.get(), k.cos), (0x0800, 10, 5));
        let k = key_of(&ARP_UNTAGGED, 20);
        assert_eq!((k.ethertype, k.vid.get(), k.cos), (0x0806, 20, 0));
    }

    #[test]
    fn first_match_decides() {
        let from_vm = MacAclRule {
            src: host("52:54:00:12:34:56"),
            ..any(Permit)
        };
        let arp = MacAclRule {
            ethertype: Some(0x0806),
            ..any(Deny)
        };
        let k = key_of(&ARP_UNTAGGED, 1);
        assert_eq!(decide(&acl(vec![from_vm, arp]), &k), hit(0, Permit));
        assert_eq!(decide(&acl(vec![arp, from_vm]), &k), hit(0, Deny));
        // A later rule matching too does not change the decision.
        assert_eq!(decide(&acl(vec![any(Deny), any(Permit)]), &k), hit(0, Deny));
        // The IPv4 frame skips the ARP rule and takes the host rule.
        let k = key_of(&IPV4_VLAN10_PCP5, 1);
        assert_eq!(decide(&acl(vec![arp, from_vm]), &k), hit(1, Permit));
    }

    #[test]
    fn oui_and_group_masks() {
        let spec = acl(vec![
            MacAclRule {
                dst: masked("01:80:c2:00:00:00", "ff:ff:ff:ff:ff:f0"),
                ..any(Deny)
            },
            MacAclRule {
                src: masked("52:54:00:00:00:00", "ff:ff:ff:00:00:00"),
                ..any(Permit)
            },
            MacAclRule {
                dst: masked("01:00:00:00:00:00", "01:00:00:00:00:00"),
                ..any(Permit)
            },
        ]);
        assert_eq!(decide(&spec, &key_of(&LLDP, 1)), hit(0, Deny));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 1)), hit(1, Permit));
        assert_eq!(decide(&spec, &key_of(&IPV4_VLAN10_PCP5, 1)), hit(1, Permit));
        // Another OUI: only the group-address rule on the destination.
        assert_eq!(decide(&spec, &key_of(&IPV6_MCAST, 1)), hit(2, Permit));
        let mut k = key_of(&IPV6_MCAST, 1);
        k.dst = mac("02:00:00:00:00:01");
        assert_eq!(decide(&spec, &k), IMPLICIT_DENY);
        // The masked-out bits of the rule's MAC do not matter.
        let sloppy = acl(vec![MacAclRule {
            src: masked("52:54:00:ff:ff:ff", "ff:ff:ff:00:00:00"),
            ..any(Permit)
        }]);
        assert_eq!(decide(&sloppy, &key_of(&ARP_UNTAGGED, 1)), hit(0, Permit));
    }

    #[test]
    fn mask_zero_is_a_wildcard_and_all_ones_is_exact() {
        let spec = acl(vec![
            MacAclRule {
                src: host("52:54:00:12:34:57"),
                ..any(Deny)
            },
            MacAclRule {
                src: masked("aa:bb:cc:dd:ee:ff", "00:00:00:00:00:00"),
                ethertype: Some(0x0806),
                ..any(Permit)
            },
        ]);
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 1)), hit(1, Permit));
        assert_eq!(decide(&spec, &key_of(&IPV4_VLAN10_PCP5, 1)), IMPLICIT_DENY);
    }

    #[test]
    fn several_masks_hit_at_once() {
        // The source hits three mask groups; the union must keep the first rule.
        let spec = acl(vec![
            MacAclRule {
                src: masked("52:00:00:00:00:00", "ff:00:00:00:00:00"),
                vlan: Some(vid(99)),
                ..any(Deny)
            },
            MacAclRule {
                src: masked("52:54:00:00:00:00", "ff:ff:ff:00:00:00"),
                ethertype: Some(0x86dd),
                ..any(Deny)
            },
            MacAclRule {
                src: host("52:54:00:12:34:56"),
                cos: Some(5),
                ..any(Permit)
            },
            MacAclRule {
                src: masked("52:54:00:00:00:00", "ff:ff:ff:00:00:00"),
                ..any(Deny)
            },
        ]);
        assert_eq!(decide(&spec, &key_of(&IPV4_VLAN10_PCP5, 1)), hit(2, Permit));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 99)), hit(0, Deny));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 1)), hit(3, Deny));
    }

    #[test]
    fn ethertype_is_the_one_after_the_tag() {
        let spec = acl(vec![
            MacAclRule {
                ethertype: Some(0x8100),
                ..any(Deny)
            },
            MacAclRule {
                ethertype: Some(0x0800),
                ..any(Permit)
            },
            MacAclRule {
                ethertype: Some(0x86dd),
                ..any(Deny)
            },
        ]);
        assert_eq!(decide(&spec, &key_of(&IPV4_VLAN10_PCP5, 1)), hit(1, Permit));
        assert_eq!(decide(&spec, &key_of(&IPV6_MCAST, 1)), hit(2, Deny));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 1)), IMPLICIT_DENY);
    }

    #[test]
    fn vlan_of_tag_or_port() {
        let spec = acl(vec![
            MacAclRule {
                vlan: Some(vid(10)),
                ..any(Permit)
            },
            MacAclRule {
                vlan: Some(vid(4094)),
                ..any(Permit)
            },
        ]);
        assert_eq!(decide(&spec, &key_of(&IPV4_VLAN10_PCP5, 1)), hit(0, Permit));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 10)), hit(0, Permit));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 4094)), hit(1, Permit));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 20)), IMPLICIT_DENY);
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 1)), IMPLICIT_DENY);
    }

    #[test]
    fn cos_from_pcp_and_zero_untagged() {
        let spec = acl(vec![
            MacAclRule {
                cos: Some(5),
                ..any(Deny)
            },
            MacAclRule {
                cos: Some(0),
                ..any(Permit)
            },
        ]);
        assert_eq!(decide(&spec, &key_of(&IPV4_VLAN10_PCP5, 1)), hit(0, Deny));
        assert_eq!(decide(&spec, &key_of(&ARP_UNTAGGED, 1)), hit(1, Permit));
        // A priority-tagged frame (VID 0, PCP 3): the port's VLAN, CoS 3.
        let mut prio = ARP_UNTAGGED[..12].to_vec();
        prio.extend_from_slice(&[0x81, 0x00, 0x60, 0x00, 0x08, 0x06]);
        let k = key_of(&prio, 7);
        assert_eq!((k.vid.get(), k.cos), (7, 3));
        assert_eq!(decide(&spec, &k), IMPLICIT_DENY);
        // Out-of-range CoS (refused by the spec check) still agrees with the reference.
        let odd = acl(vec![MacAclRule {
            cos: Some(200),
            ..any(Permit)
        }]);
        let mut k = key_of(&ARP_UNTAGGED, 1);
        assert_eq!(decide(&odd, &k), IMPLICIT_DENY);
        k.cos = 200;
        assert_eq!(decide(&odd, &k), hit(0, Permit));
    }

    #[test]
    fn every_field_must_match() {
        let all = MacAclRule {
            action: Permit,
            src: host("52:54:00:12:34:56"),
            dst: masked("52:54:00:00:00:00", "ff:ff:ff:00:00:00"),
            ethertype: Some(0x0800),
            vlan: Some(vid(10)),
            cos: Some(5),
        };
        let k = key_of(&IPV4_VLAN10_PCP5, 1);
        assert_eq!(decide(&acl(vec![all]), &k), hit(0, Permit));
        let misses = [
            AclKey {
                src: mac("52:54:00:12:34:57"),
                ..k
            },
            AclKey {
                dst: mac("52:55:00:ab:cd:ef"),
                ..k
            },
            AclKey {
                ethertype: 0x0806,
                ..k
            },
            AclKey { vid: vid(11), ..k },
            AclKey { cos: 4, ..k },
        ];
        for miss in misses {
            assert_eq!(decide(&acl(vec![all, any(Deny)]), &miss), hit(1, Deny));
        }
    }

    #[test]
    fn implicit_and_empty_deny() {
        let spec = acl(vec![MacAclRule {
            src: host("02:00:00:00:00:01"),
            ..any(Permit)
        }]);
        for bytes in [&ARP_UNTAGGED[..], &IPV4_VLAN10_PCP5, &LLDP] {
            assert_eq!(decide(&spec, &key_of(bytes, 1)), IMPLICIT_DENY);
        }
        let empty = acl(Vec::new());
        let c = CompiledMacAcl::compile(&empty);
        assert!(c.is_empty());
        assert_eq!((c.len(), c.name()), (0, "test-acl"));
        for bytes in [&ARP_UNTAGGED[..], &IPV4_VLAN10_PCP5, &IPV6_MCAST, &LLDP] {
            assert_eq!(decide(&empty, &key_of(bytes, 1)), IMPLICIT_DENY);
        }
    }

    /// Rule `i` permits exactly host 52:54:00:00:ii:ii (deny on odd `i`).
    fn hosts(n: usize) -> Vec<MacAclRule> {
        (0..n)
            .map(|i| MacAclRule {
                src: Some(MacMatch {
                    mac: host_mac(i),
                    mask: MacAddr::BROADCAST,
                }),
                ..any(if i % 2 == 0 { Permit } else { Deny })
            })
            .collect()
    }
    fn host_mac(i: usize) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, (i >> 8) as u8, i as u8])
    }

    #[test]
    fn word_boundaries() {
        let base = key_of(&ARP_UNTAGGED, 1);
        for n in [1, 63, 64, 65, 127, 128, 129, MAX_ACL_RULES] {
            let spec = acl(hosts(n));
            let c = CompiledMacAcl::compile(&spec);
            assert_eq!(c.len(), n);
            for i in [0, 62, 63, 64, 65, 126, 127, 128, n - 1] {
                if i >= n {
                    continue;
                }
                let k = AclKey {
                    src: host_mac(i),
                    ..base
                };
                let want = hit(i as u32, if i % 2 == 0 { Permit } else { Deny });
                assert_eq!(c.evaluate(&k), want, "n={n} i={i}");
                assert_eq!(evaluate_linear(&spec, &k), want);
            }
            assert_eq!(c.evaluate(&base), IMPLICIT_DENY, "n={n}");
            // The final permit-any takes whatever no host rule does.
            let mut rules = hosts(n);
            rules.push(any(Permit));
            if n < MAX_ACL_RULES {
                assert_eq!(decide(&acl(rules), &base), hit(n as u32, Permit));
            }
        }
    }

    #[test]
    fn identical_bitsets_are_shared() {
        // 100 rules on 100 VLANs, nothing else: the VLAN field adds 100 bitsets and
        // every other field is the all-rules bitset, stored once.
        let spec = acl((1..=100)
            .map(|v| MacAclRule {
                vlan: Some(vid(v)),
                ..any(Permit)
            })
            .collect());
        let c = CompiledMacAcl::compile(&spec);
        // empty + all + the 100 single-rule bitsets.
        assert_eq!(c.sets.pool.len(), 102 * c.sets.words);
        assert!(format!("{c:?}").contains("distinct_bitsets: 102"));
    }
}

/// Slots of a bound ACL's decision cache (a power of two).
pub const DECISION_CACHE_SLOTS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CacheSlot {
    key: u128,
    /// The first matching rule, or `u32::MAX` for the implicit deny.
    rule: u32,
    permit: bool,
    valid: bool,
}

const EMPTY_SLOT: CacheSlot = CacheSlot {
    key: 0,
    rule: 0,
    permit: false,
    valid: false,
};

/// An ACL bound to ports: the compiled classifier, an exact-match decision cache in
/// front of it, and a hit counter per rule (the last one counts the implicit deny).
///
/// The cache is direct-mapped over the whole [`AclKey`] (127 bits), so a hit is the
/// classifier's own answer for that very key; flows that repeat — nearly all
/// traffic — cost one hash and one compare, and a miss (a flood of random MACs) falls
/// back to the classifier. It never allocates after construction and is rebuilt with
/// the ACL, so it never holds a decision of an older rule set.
#[derive(Clone, Debug)]
pub struct BoundAcl {
    pub acl: CompiledMacAcl,
    /// The rules as configured (for display and tracing).
    pub spec: MacAclSpec,
    /// Hits per rule; index `len()` counts the implicit deny.
    pub hits: Vec<u64>,
    cache: Box<[CacheSlot]>,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

impl BoundAcl {
    pub fn new(spec: &MacAclSpec) -> BoundAcl {
        BoundAcl {
            acl: CompiledMacAcl::compile(spec),
            spec: spec.clone(),
            hits: vec![0; spec.rules.len() + 1],
            cache: vec![EMPTY_SLOT; DECISION_CACHE_SLOTS].into_boxed_slice(),
            cache_hits: 0,
            cache_misses: 0,
        }
    }

    /// Packs the key into 127 bits: src 48 | dst 48 | EtherType 16 | VID 12 | CoS 3.
    #[inline]
    fn pack(key: &AclKey) -> u128 {
        (key.src.to_u64() as u128) << 79
            | (key.dst.to_u64() as u128) << 31
            | (key.ethertype as u128) << 15
            | (key.vid.get() as u128) << 3
            | (key.cos & 7) as u128
    }

    /// Decides a frame and counts the hit. No allocation.
    #[inline]
    pub fn decide(&mut self, key: &AclKey) -> AclDecision {
        // CoS outside 0..=7 cannot be packed exactly: never cached.
        let packed = Self::pack(key);
        let h = ((packed as u64) ^ ((packed >> 64) as u64)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = (h >> (64 - DECISION_CACHE_SLOTS.trailing_zeros())) as usize;
        let cached = self.cache[slot];
        let d = if cached.valid && cached.key == packed && key.cos <= 7 {
            self.cache_hits += 1;
            AclDecision {
                rule: (cached.rule != u32::MAX).then_some(cached.rule),
                action: if cached.permit {
                    AclAction::Permit
                } else {
                    AclAction::Deny
                },
            }
        } else {
            self.cache_misses += 1;
            let d = self.acl.evaluate(key);
            if key.cos <= 7 {
                self.cache[slot] = CacheSlot {
                    key: packed,
                    rule: d.rule.unwrap_or(u32::MAX),
                    permit: d.action == AclAction::Permit,
                    valid: true,
                };
            }
            d
        };
        let i = d.rule.map_or(self.hits.len() - 1, |r| r as usize);
        if let Some(h) = self.hits.get_mut(i) {
            *h += 1;
        }
        d
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::spec::MacMatch;

    fn mac(i: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, i])
    }

    #[test]
    fn the_cache_answers_as_the_classifier_and_counts_hits() {
        let spec = MacAclSpec {
            name: "t".into(),
            rules: vec![
                MacAclRule {
                    action: AclAction::Deny,
                    src: Some(MacMatch {
                        mac: mac(1),
                        mask: MacAddr([0xff; 6]),
                    }),
                    dst: None,
                    ethertype: None,
                    vlan: None,
                    cos: None,
                },
                MacAclRule {
                    action: AclAction::Permit,
                    src: None,
                    dst: None,
                    ethertype: Some(0x0800),
                    vlan: None,
                    cos: None,
                },
            ],
        };
        let mut b = BoundAcl::new(&spec);
        let vid = Vid::new(10).unwrap();
        let key = |src, ethertype, cos| AclKey {
            src,
            dst: mac(9),
            ethertype,
            vid,
            cos,
        };
        for _ in 0..3 {
            for k in [
                key(mac(1), 0x0800, 0),
                key(mac(2), 0x0800, 5),
                key(mac(2), 0x86dd, 0),
                key(mac(2), 0x0800, 200),
            ] {
                assert_eq!(b.decide(&k), evaluate_linear(&spec, &k));
            }
        }
        assert_eq!(b.hits, vec![3, 6, 3]);
        assert_eq!(
            b.cache_misses,
            3 + 3,
            "three distinct cacheable keys, and CoS 200 never cached"
        );
        assert_eq!(b.cache_hits, 6);
    }
}
