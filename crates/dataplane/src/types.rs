//! Wire-level value types shared by every stage: MAC addresses, VLAN IDs, port IDs,
//! port sets and VLAN sets.
//!
//! Invariant: every value here is valid by construction — a [`Vid`] is 1..=4094
//! (IEEE 802.1Q-2018 §9.6: 0 means "priority tag only" and 4095 is reserved), a
//! [`PortId`] indexes the switch's port table and is below [`MAX_PORTS`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The most ports one switch holds (guest ports and uplinks together). Port sets
/// are fixed-size bitmaps of this many bits, so a verdict never allocates.
pub const MAX_PORTS: usize = 1024;
const PORT_WORDS: usize = MAX_PORTS / 64;

/// An IEEE 802 MAC-48 address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Group (multicast or broadcast) address: the I/G bit, the low bit of the first octet.
    #[inline]
    pub fn is_group(self) -> bool {
        self.0[0] & 1 == 1
    }
    #[inline]
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }
    /// A usable unicast source: not a group address and not all zeros.
    #[inline]
    pub fn is_valid_source(self) -> bool {
        !self.is_group() && self != Self::ZERO
    }
    /// The address packed into the low 48 bits of a u64, for hashing.
    #[inline]
    pub fn to_u64(self) -> u64 {
        let b = self.0;
        u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    #[inline]
    pub fn from_slice(s: &[u8]) -> MacAddr {
        let mut m = [0u8; 6];
        m.copy_from_slice(&s[..6]);
        MacAddr(m)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MacParseError;

impl fmt::Display for MacParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a MAC address like 52:54:00:12:34:56")
    }
}
impl std::error::Error for MacParseError {}

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let p = parts.next().ok_or(MacParseError)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(MacParseError);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| MacParseError)?;
        }
        if parts.next().is_some() {
            return Err(MacParseError);
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An 802.1Q VLAN identifier, 1..=4094.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize)]
#[serde(transparent)]
pub struct Vid(u16);

impl Vid {
    pub const MIN: u16 = 1;
    pub const MAX: u16 = 4094;
    /// A VLAN ID, or `None` for 0 (priority tag) and 4095 (reserved) and above.
    #[inline]
    pub const fn new(v: u16) -> Option<Vid> {
        if v >= Self::MIN && v <= Self::MAX {
            Some(Vid(v))
        } else {
            None
        }
    }
    #[inline]
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for Vid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Vid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = u16::deserialize(d)?;
        Vid::new(v).ok_or_else(|| serde::de::Error::custom(format!("VLAN {v} is outside 1..=4094")))
    }
}

/// Index of a port in the switch's port table.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PortId(pub u16);

impl PortId {
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of ports: a fixed bitmap of [`MAX_PORTS`] bits, with a summary of which
/// 64-bit words hold any port.
///
/// Invariant: bit `w` of `live` is set exactly when `words[w]` is not zero, so that
/// emptiness, size and iteration touch only the words in use — on a switch of up to
/// 64 ports, one word — instead of all 16 on every frame.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct PortSet {
    words: [u64; PORT_WORDS],
    live: u16,
}

const _: () = assert!(PORT_WORDS <= 16, "`live` has one bit per word");

impl PortSet {
    pub const EMPTY: PortSet = PortSet {
        words: [0; PORT_WORDS],
        live: 0,
    };

    #[inline]
    pub fn single(p: PortId) -> PortSet {
        let mut s = Self::EMPTY;
        s.insert(p);
        s
    }
    #[inline]
    pub fn insert(&mut self, p: PortId) {
        let w = p.index() / 64;
        self.words[w] |= 1 << (p.index() % 64);
        self.live |= 1 << w;
    }
    #[inline]
    pub fn remove(&mut self, p: PortId) {
        let w = p.index() / 64;
        self.words[w] &= !(1 << (p.index() % 64));
        if self.words[w] == 0 {
            self.live &= !(1 << w);
        }
    }
    #[inline]
    pub fn contains(&self, p: PortId) -> bool {
        self.words[p.index() / 64] & (1 << (p.index() % 64)) != 0
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }
    #[inline]
    pub fn len(&self) -> usize {
        live_words(self.live)
            .map(|w| self.words[w].count_ones() as usize)
            .sum()
    }
    #[inline]
    pub fn union(&self, o: &PortSet) -> PortSet {
        let mut r = *self;
        for w in live_words(o.live) {
            r.words[w] |= o.words[w];
        }
        r.live |= o.live;
        r
    }
    #[inline]
    pub fn intersect(&self, o: &PortSet) -> PortSet {
        let mut r = PortSet::EMPTY;
        r.assign_intersection(self, o);
        r
    }
    #[inline]
    pub fn minus(&self, o: &PortSet) -> PortSet {
        let mut r = *self;
        r.remove_all(o);
        r
    }
    /// Makes this set equal to `o`, touching only the words either uses (cheaper
    /// than a copy of the whole bitmap on a switch of few ports).
    #[inline]
    pub fn assign(&mut self, o: &PortSet) {
        for w in live_words(self.live & !o.live) {
            self.words[w] = 0;
        }
        for w in live_words(o.live) {
            self.words[w] = o.words[w];
        }
        self.live = o.live;
    }
    /// Makes this set `a ∩ b`, touching only the words in use (see [`PortSet::assign`]).
    #[inline]
    pub fn assign_intersection(&mut self, a: &PortSet, b: &PortSet) {
        for w in live_words(self.live) {
            self.words[w] = 0;
        }
        self.live = 0;
        for w in live_words(a.live & b.live) {
            self.words[w] = a.words[w] & b.words[w];
            self.live |= u16::from(self.words[w] != 0) << w;
        }
    }
    /// Removes the ports of `o` from this set, in place.
    #[inline]
    pub fn remove_all(&mut self, o: &PortSet) {
        for w in live_words(self.live & o.live) {
            self.words[w] &= !o.words[w];
            self.live &= !(u16::from(self.words[w] == 0) << w);
        }
    }
    /// The ports in ascending order.
    #[inline]
    pub fn iter(&self) -> PortSetIter<'_> {
        PortSetIter {
            words: &self.words,
            live: self.live,
            word: 0,
            bits: 0,
        }
    }
}

/// The indexes of the set bits of `live`, ascending.
#[inline]
fn live_words(mut live: u16) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if live == 0 {
            return None;
        }
        let w = live.trailing_zeros() as usize;
        live &= live - 1;
        Some(w)
    })
}

/// The ports of a [`PortSet`] in ascending order (see [`PortSet::iter`]).
#[derive(Clone, Debug)]
pub struct PortSetIter<'a> {
    words: &'a [u64; PORT_WORDS],
    /// The words not yet started.
    live: u16,
    /// The word being walked, and its bits not yet returned.
    word: usize,
    bits: u64,
}

impl Iterator for PortSetIter<'_> {
    type Item = PortId;
    #[inline]
    fn next(&mut self) -> Option<PortId> {
        while self.bits == 0 {
            if self.live == 0 {
                return None;
            }
            self.word = self.live.trailing_zeros() as usize;
            self.live &= self.live - 1;
            self.bits = self.words[self.word];
        }
        let bit = self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(PortId((self.word * 64 + bit) as u16))
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|p| p.0)).finish()
    }
}

/// A set of VLAN IDs: a 4096-bit bitmap.
#[derive(Clone, PartialEq, Eq)]
pub struct VlanSet(Box<[u64; 64]>);

impl Default for VlanSet {
    fn default() -> Self {
        VlanSet(Box::new([0; 64]))
    }
}

impl VlanSet {
    pub fn from_vids(vids: impl IntoIterator<Item = Vid>) -> VlanSet {
        let mut s = VlanSet::default();
        for v in vids {
            s.insert(v);
        }
        s
    }
    #[inline]
    pub fn insert(&mut self, v: Vid) {
        self.0[v.get() as usize / 64] |= 1 << (v.get() % 64);
    }
    #[inline]
    pub fn contains(&self, v: Vid) -> bool {
        self.0[v.get() as usize / 64] & (1 << (v.get() % 64)) != 0
    }
    /// The VLANs in ascending order, by set bits (no allocation).
    pub fn iter(&self) -> impl Iterator<Item = Vid> + Clone + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as u16;
                w &= w - 1;
                Some(wi as u16 * 64 + bit)
            })
            .filter_map(Vid::new)
        })
    }
}

impl fmt::Debug for VlanSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter().map(|v| v.get())).finish()
    }
}

/// A point in time on the switch's monotonic clock, in nanoseconds. The data plane
/// never reads a clock; the runtime passes one in with every batch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const fn from_secs(s: u64) -> Timestamp {
        Timestamp(s * 1_000_000_000)
    }
    pub const fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms * 1_000_000)
    }
    #[inline]
    pub fn saturating_since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "52:54:00:12:34:56".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:12:34:56");
        assert!("52:54:00:12:34".parse::<MacAddr>().is_err());
        assert!("52:54:00:12:34:56:78".parse::<MacAddr>().is_err());
        assert!("zz:54:00:12:34:56".parse::<MacAddr>().is_err());
        assert!("+f:54:00:12:34:56".parse::<MacAddr>().is_err());
        assert!(MacAddr::BROADCAST.is_group());
        assert!(!m.is_group());
    }

    #[test]
    fn vid_range() {
        assert!(Vid::new(0).is_none());
        assert!(Vid::new(4095).is_none());
        assert_eq!(Vid::new(4094).unwrap().get(), 4094);
    }

    #[test]
    fn portset_ops() {
        let mut a = PortSet::EMPTY;
        a.insert(PortId(3));
        a.insert(PortId(64));
        a.insert(PortId(1023));
        assert_eq!(a.iter().map(|p| p.0).collect::<Vec<_>>(), vec![3, 64, 1023]);
        assert_eq!(a.len(), 3);
        let b = PortSet::single(PortId(64));
        assert_eq!(a.minus(&b).len(), 2);
        assert_eq!(a.intersect(&b), b);
    }

    /// A set built by any sequence of operations agrees with a `BTreeSet` model, and
    /// its word summary is exact (so `==` and emptiness are by content).
    fn check_model(s: &PortSet, m: &std::collections::BTreeSet<u16>) {
        assert_eq!(
            s.iter().map(|p| p.0).collect::<Vec<_>>(),
            m.iter().copied().collect::<Vec<_>>()
        );
        assert_eq!(s.len(), m.len());
        assert_eq!(s.is_empty(), m.is_empty());
        for w in 0..PORT_WORDS {
            assert_eq!(
                s.live & (1 << w) != 0,
                s.words[w] != 0,
                "summary of word {w}"
            );
        }
    }

    fn build(ops: &[(bool, u16)]) -> (PortSet, std::collections::BTreeSet<u16>) {
        let (mut s, mut m) = (PortSet::EMPTY, std::collections::BTreeSet::new());
        for &(add, p) in ops {
            let p = p % MAX_PORTS as u16;
            if add {
                s.insert(PortId(p));
                m.insert(p);
            } else {
                s.remove(PortId(p));
                m.remove(&p);
            }
        }
        (s, m)
    }

    proptest::proptest! {
        #[test]
        fn portset_agrees_with_a_model(
            a in proptest::collection::vec((proptest::bool::weighted(0.7), 0u16..1024), 0..40),
            b in proptest::collection::vec((proptest::bool::weighted(0.7), 0u16..1024), 0..40),
        ) {
            let ((sa, ma), (sb, mb)) = (build(&a), build(&b));
            check_model(&sa, &ma);
            check_model(&sb, &mb);
            check_model(&sa.union(&sb), &ma.union(&mb).copied().collect());
            check_model(&sa.intersect(&sb), &ma.intersection(&mb).copied().collect());
            check_model(&sa.minus(&sb), &ma.difference(&mb).copied().collect());
            proptest::prop_assert_eq!(sa == sb, ma == mb);
            let mut x = sb;
            x.assign(&sa);
            check_model(&x, &ma);
            let mut x = sb;
            x.assign_intersection(&sa, &sb);
            check_model(&x, &ma.intersection(&mb).copied().collect());
            let mut x = sa;
            x.remove_all(&sb);
            check_model(&x, &ma.difference(&mb).copied().collect());
            for p in mb.iter().take(4) {
                proptest::prop_assert_eq!(sa.contains(PortId(*p)), ma.contains(p));
            }
        }
    }
}
